/*
 * arena.c - the per-step bump allocator of core/nn (tp_arena_*).
 *
 * Memory comes in blocks from aligned_alloc. When the current block is full a new one is
 * chained (at least twice the capacity so far); on reset, if more than one block was used, all
 * are replaced by a single block of the total size, so from the second step on a step that
 * allocates what the previous one did touches only memory it has touched before: no malloc,
 * no mmap, no page faults.
 *
 * Not here: freeing individual allocations, thread safety (one arena per thread).
 */
#include "core/nn/nn.h"

#include <assert.h>
#include <stdlib.h>

#define TP_ARENA_DEFAULT_BYTES ((size_t)1 << 20)

typedef struct tp_arena_block {
    struct tp_arena_block *prev; /* older block, NULL for the first */
    size_t size;                 /* usable bytes in data */
    size_t used;
    unsigned char *data; /* TP_ARENA_ALIGN-aligned */
} tp_arena_block;

struct tp_arena {
    tp_arena_block *cur; /* newest block; allocations come from here */
    size_t capacity;     /* sum of block sizes */
    size_t used_before;  /* bytes used in the blocks before cur */
    uint64_t sys_allocs;
};

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

static tp_arena_block *block_new(tp_arena *a, size_t size)
{
    size = round_up(size, TP_ARENA_ALIGN);
    tp_arena_block *b = malloc(sizeof *b);
    if (!b)
        return NULL;
    b->data = aligned_alloc(TP_ARENA_ALIGN, size);
    if (!b->data) {
        free(b);
        return NULL;
    }
    b->prev = NULL;
    b->size = size;
    b->used = 0;
    a->sys_allocs++;
    return b;
}

static void blocks_free(tp_arena_block *b)
{
    while (b) {
        tp_arena_block *prev = b->prev;
        free(b->data);
        free(b);
        b = prev;
    }
}

tp_arena *tp_arena_new(size_t initial_bytes)
{
    tp_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->cur = block_new(a, initial_bytes ? initial_bytes : TP_ARENA_DEFAULT_BYTES);
    if (!a->cur) {
        free(a);
        return NULL;
    }
    a->capacity = a->cur->size;
    return a;
}

void tp_arena_free(tp_arena *a)
{
    if (!a)
        return;
    blocks_free(a->cur);
    free(a);
}

void *tp_arena_alloc(tp_arena *a, size_t bytes)
{
    assert(a && "tp_arena_alloc: arena is NULL (tp_arena_new failed or was not called)");
    size_t need = round_up(bytes ? bytes : 1, TP_ARENA_ALIGN);
    if (need < bytes)
        return NULL; /* overflow */
    tp_arena_block *b = a->cur;
    if (b->size - b->used < need) {
        size_t size = a->capacity * 2 > need ? a->capacity * 2 : need;
        tp_arena_block *nb = block_new(a, size);
        if (!nb)
            return NULL;
        nb->prev = b;
        a->used_before += b->used;
        a->capacity += nb->size;
        a->cur = b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

void tp_arena_reset(tp_arena *a)
{
    if (!a)
        return;
    if (a->cur->prev) {
        /* Several blocks: replace them with one that holds everything, once. If that fails
         * keep the chain; it still works, only with a block switch per step. */
        tp_arena_block *one = block_new(a, a->capacity);
        if (one) {
            blocks_free(a->cur);
            a->cur = one;
            a->capacity = one->size;
        } else {
            for (tp_arena_block *b = a->cur; b; b = b->prev)
                b->used = 0;
            /* Allocation restarts in the newest (largest) block. */
        }
    }
    a->cur->used = 0;
    a->used_before = 0;
}

size_t tp_arena_used(const tp_arena *a)
{
    return a ? a->used_before + a->cur->used : 0;
}

size_t tp_arena_capacity(const tp_arena *a)
{
    return a ? a->capacity : 0;
}

uint64_t tp_arena_sys_allocs(const tp_arena *a)
{
    return a ? a->sys_allocs : 0;
}
