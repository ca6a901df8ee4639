/*
 * rng.h - the seeded random number generator of trainperf: xoshiro256** seeded through
 * splitmix64. Deterministic across runs and machines: same seed, same stream. Used for
 * parameter init, dropout masks, data shuffling and the RNG plugins get from the host.
 *
 * Not here: numpy's MT19937 (the quasi-random search reproduces that separately).
 */
#ifndef TP_NN_RNG_H
#define TP_NN_RNG_H

#include <stdint.h>

typedef struct tp_rng {
    uint64_t s[4];
} tp_rng;

/* Seed from one 64-bit value; any seed (0 included) gives a good state. */
void tp_rng_seed(tp_rng *r, uint64_t seed);
/* Derive an independent stream: seed mixed with a stream id (e.g. "dropout", step). */
void tp_rng_seed2(tp_rng *r, uint64_t seed, uint64_t stream);
uint64_t tp_rng_u64(tp_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double tp_rng_uniform(tp_rng *r);
/* Uniform float in [0, 1) with 24 random bits. */
float tp_rng_uniformf(tp_rng *r);
/* Uniform integer in [0, n), unbiased (Lemire's method); n > 0. */
uint64_t tp_rng_below(tp_rng *r, uint64_t n);
/* Standard normal (Box-Muller; no cached second value, so the stream stays simple). */
double tp_rng_normal(tp_rng *r);
/* Fisher-Yates shuffle of n uint32 values. */
void tp_rng_shuffle_u32(tp_rng *r, uint32_t *a, uint64_t n);
/* The splitmix64 finaliser: a good 64-bit hash, used to derive seeds. */
uint64_t tp_mix64(uint64_t x);

#endif /* TP_NN_RNG_H */
