/*
 * rng.c - xoshiro256** (Blackman and Vigna) seeded with splitmix64; see rng.h.
 */
#include "core/nn/rng.h"

#include <math.h>

uint64_t tp_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void tp_rng_seed(tp_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        r->s[i] = z ^ (z >> 31);
    }
}

void tp_rng_seed2(tp_rng *r, uint64_t seed, uint64_t stream)
{
    tp_rng_seed(r, tp_mix64(seed) ^ tp_mix64(stream ^ 0x5851f42d4c957f2dULL));
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t tp_rng_u64(tp_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tp_rng_uniform(tp_rng *r)
{
    return (double)(tp_rng_u64(r) >> 11) * 0x1.0p-53;
}

float tp_rng_uniformf(tp_rng *r)
{
    return (float)(tp_rng_u64(r) >> 40) * 0x1.0p-24f;
}

uint64_t tp_rng_below(tp_rng *r, uint64_t n)
{
    /* Lemire's nearly-divisionless method with rejection of the biased low zone. */
    __uint128_t m = (__uint128_t)tp_rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = -n % n;
        while (lo < t) {
            m = (__uint128_t)tp_rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double tp_rng_normal(tp_rng *r)
{
    double u1 = 1.0 - tp_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = tp_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void tp_rng_shuffle_u32(tp_rng *r, uint32_t *a, uint64_t n)
{
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = tp_rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
