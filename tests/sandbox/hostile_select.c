/*
 * hostile_select.c - the hostile-submission suite's data-selection fixture: hands out the next
 * batch of the host's stream for a few steps, then dereferences NULL in select_batch. The
 * trial must fail with the signal as its reason, like a crash in the optimizer.
 */
#include <stdint.h>

#include <trainperf/trainperf.h>

#define CRASH_AT_CALL 4

static volatile uintptr_t zero_address;

/* Not instrumented in sanitizer builds (see hostile_optimizer.c). */
__attribute__((no_sanitize_undefined, no_sanitize_address, noinline)) static void segfault(void)
{
    volatile int *p = (volatile int *)zero_address;
    *p = 42; /* SIGSEGV */
}

static int crash_select(void *state, const tp_host *host, tp_ctx *ctx, tp_batch *batch,
                        tp_error *err)
{
    static unsigned calls;
    if (++calls == CRASH_AT_CALL)
        segfault();
    batch->size = batch->capacity;
    batch->weights = NULL;
    return host->next_indices(ctx, batch->size, batch->idx);
}

static const tp_plugin_desc desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "segv_select",
    .kind = TP_PLUGIN_DATA_SELECTION,
    .description = "segfaults in its fourth select_batch (tests/sandbox)",
    .select_batch = crash_select,
};

TP_PLUGIN_ENTRY(index)
{
    return index == 0 ? &desc : NULL;
}
