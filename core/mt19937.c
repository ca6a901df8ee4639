/*
 * mt19937.c - see mt19937.h. Written from the published algorithm (Matsumoto & Nishimura,
 * "Mersenne Twister: a 623-dimensionally equidistributed uniform pseudo-random number
 * generator", 1998, with the 2002 initialisation) and from numpy's documented legacy
 * behaviour; tests/unit/test_searchspace.c checks every draw against numpy-produced values.
 *
 * Not here: the other numpy seedings and distributions (see the header).
 */
#include "core/mt19937.h"

#include <assert.h>

#define MT_M         397
#define MT_MATRIX_A  0x9908b0dfu
#define MT_UPPER     0x80000000u
#define MT_LOWER     0x7fffffffu
#define MT_INIT_MULT 1812433253u

void tp__mt19937_seed(tp__mt19937 *r, uint32_t seed)
{
    r->mt[0] = seed;
    for (uint32_t i = 1; i < TP__MT19937_N; i++) {
        uint32_t prev = r->mt[i - 1];
        r->mt[i] = MT_INIT_MULT * (prev ^ (prev >> 30)) + i; /* mod 2^32 by unsigned wrap */
    }
    r->pos = TP__MT19937_N;
}

/* Regenerate all N words of the state (the "twist"). */
static void mt_twist(tp__mt19937 *r)
{
    for (int k = 0; k < TP__MT19937_N; k++) {
        uint32_t y = (r->mt[k] & MT_UPPER) | (r->mt[(k + 1) % TP__MT19937_N] & MT_LOWER);
        r->mt[k] = r->mt[(k + MT_M) % TP__MT19937_N] ^ (y >> 1) ^ ((y & 1u) ? MT_MATRIX_A : 0u);
    }
    r->pos = 0;
}

uint32_t tp__mt19937_next32(tp__mt19937 *r)
{
    if (r->pos >= TP__MT19937_N)
        mt_twist(r);
    uint32_t y = r->mt[r->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

double tp__mt19937_double(tp__mt19937 *r)
{
    /* 27 high bits of the first output, 26 of the second: (a * 2^26 + b) / 2^53. */
    uint32_t a = tp__mt19937_next32(r) >> 5;
    uint32_t b = tp__mt19937_next32(r) >> 6;
    return ((double)a * 67108864.0 + (double)b) / 9007199254740992.0;
}

uint32_t tp__mt19937_interval(tp__mt19937 *r, uint32_t max)
{
    if (max == 0)
        return 0;
    uint32_t mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    uint32_t v;
    do {
        v = tp__mt19937_next32(r) & mask;
    } while (v > max);
    return v;
}

void tp__mt19937_shuffle_u32(tp__mt19937 *r, uint32_t *x, size_t n)
{
    assert((n == 0 || n - 1 <= UINT32_MAX) && "tp__mt19937_shuffle_u32: n above 2^32");
    for (size_t i = n > 0 ? n - 1 : 0; i >= 1; i--) {
        size_t j = tp__mt19937_interval(r, (uint32_t)i);
        uint32_t t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}
