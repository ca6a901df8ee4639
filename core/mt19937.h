/*
 * mt19937.h - the Mersenne Twister MT19937 (Matsumoto & Nishimura, 1998) with the draws of
 * numpy's legacy RandomState that the reference's quasi-random search uses (BENCHMARK.md §5):
 * RandomState(seed) seeding, random_sample() doubles and RandomState.shuffle's bounded
 * integers. Internal to core/ (tp__ prefix).
 *
 * Not here: numpy's other seedings (arrays of seeds, SeedSequence), 64-bit bounded draws
 * (bounds above 2^32 - 1), any other distribution.
 */
#ifndef TP_CORE_MT19937_H
#define TP_CORE_MT19937_H

#include <stddef.h>
#include <stdint.h>

#define TP__MT19937_N 624

typedef struct tp__mt19937 {
    uint32_t mt[TP__MT19937_N];
    int pos; /* next word of mt to temper; TP__MT19937_N: regenerate first */
} tp__mt19937;

/* numpy.random.RandomState(seed) for an integer seed: the reference init_genrand. */
void tp__mt19937_seed(tp__mt19937 *r, uint32_t seed);

/* The next tempered 32-bit output (genrand_int32). */
uint32_t tp__mt19937_next32(tp__mt19937 *r);

/* RandomState.random_sample(): a double in [0, 1) with 53 random bits from two outputs. */
double tp__mt19937_double(tp__mt19937 *r);

/* A uniform integer in [0, max] as numpy's legacy shuffle draws it: the smallest all-ones
 * mask >= max, then 32-bit outputs masked until one is <= max (rejection). 0 draws nothing. */
uint32_t tp__mt19937_interval(tp__mt19937 *r, uint32_t max);

/* RandomState.shuffle(x) on n elements (n <= 2^32): for i = n-1 down to 1, swap x[i] with
 * x[tp__mt19937_interval(r, i)]. */
void tp__mt19937_shuffle_u32(tp__mt19937 *r, uint32_t *x, size_t n);

#endif /* TP_CORE_MT19937_H */
