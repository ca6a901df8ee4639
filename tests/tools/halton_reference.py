#!/usr/bin/python3
"""halton_reference.py - an independent numpy implementation of AlgoPerf's quasi-random search
(BENCHMARK.md section 5) that writes the fixtures tests/unit/test_searchspace.c compares
against, under tests/data/searchspace/. The fixtures are checked in; the C tests never run
Python.

It is written from the description in BENCHMARK.md section 5 and the facts established from
the reference (algoperf/halton.py), not from trainperf's C code, and it leans on numpy itself
for everything random: numpy.random.RandomState for the MT19937 outputs, doubles and shuffles,
numpy.random.seed / numpy.random.shuffle for the row order. What it writes:

  mt19937.txt        raw 32-bit outputs and random_sample() doubles for a few seeds
  shuffle.txt        RandomState(seed).shuffle(arange(n)), then the next random_sample()
  halton_d<D>_n<N>.txt             tp_halton_points(D, N): rows in the order the reference
                                   gives after numpy.random.seed(0)
  halton_d3_n15_sequence.txt       the same points in sequence order (no row shuffle)
  <space>_n<N>.txt   generate_search(<space>, N) as "name=value,..." lines, same row order

Values are Python reprs (shortest decimal that reads back exactly).

Run from anywhere with /usr/bin/python3 (numpy 1.24 was used):
    /usr/bin/python3 tests/tools/halton_reference.py
"""

import json
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "searchspace")
SKIP = 100  # points dropped from the start of each dimension's sequence
ROW_SEED = 0  # numpy.random.seed before the row shuffle (the reference leaves it unseeded)


# --------------------------------------------------------------------------------------------
# Bases

def odd_primes_below(limit):
    """Odd primes p < limit, ascending, by trial division (independent of any sieve)."""
    out = []
    for c in range(3, limit, 2):
        if all(c % q for q in out if q * q <= c):
            out.append(c)
    return out


def bases(num_dims):
    """The d odd primes just below the largest odd prime under 1000 k, for the smallest k that
    has at least d + 1 of them (d = 3: 977, 983, 991)."""
    k = 1
    while True:
        primes = odd_primes_below(1000 * k)
        if len(primes) >= num_dims + 1:
            return primes[len(primes) - num_dims - 1:len(primes) - 1]
        k += 1


# --------------------------------------------------------------------------------------------
# The sequence

def dimension(base, count):
    """Points 1..count of the scrambled, shifted radical inverse in `base`."""
    rs = np.random.RandomState(base)
    tail = np.arange(1, base)
    rs.shuffle(tail)
    digit_map = np.concatenate(([0], tail))
    shift = rs.random_sample()
    values = []
    for i in range(1, count + 1):
        acc, scale, rest = 0.0, base, i
        while rest:  # lowest digit first, as the reference sums them
            rest, digit = divmod(rest, base)
            acc += int(digit_map[digit]) / scale
            scale *= base
        values.append(math.fmod(acc + shift, 1.0))
    return values


def halton(num_dims, n, shuffle_rows=True):
    columns = [dimension(p, n + SKIP)[SKIP:] for p in bases(num_dims)]
    rows = [tuple(r) for r in zip(*columns)]
    if shuffle_rows:
        np.random.seed(ROW_SEED)
        np.random.shuffle(rows)
    return rows


# --------------------------------------------------------------------------------------------
# generate_search

def value_of(space, u):
    if "feasible_points" in space:
        pts = space["feasible_points"]
        return pts[int(math.floor(u * len(pts)))]
    lo, hi = space["min"], space["max"]
    if space["scaling"] == "log":
        return lo * math.exp(u * math.log(hi / lo))
    return u * (hi - lo) + lo


def generate_search(search_space, n):
    if isinstance(search_space, list):
        return [list(p.items()) for p in search_space[:n]]
    names = list(search_space)  # file order (json keeps it)
    rows = halton(len(names), n)
    return [[(k, value_of(search_space[k], u)) for k, u in zip(names, row)] for row in rows]


# --------------------------------------------------------------------------------------------
# Writing

def write(name, header, lines):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="ascii") as f:
        f.write("# %s\n# written by tests/tools/halton_reference.py (numpy %s)\n"
                % (header, np.__version__))
        for line in lines:
            f.write(line + "\n")
    print("wrote", os.path.relpath(path, ROOT))


def fixtures_mt19937():
    lines = []
    for seed in (5489, 977, 0, 1, 4294967295):
        raw = np.random.RandomState(seed)._bit_generator.random_raw(1300)
        for start, count in ((0, 10), (620, 10), (1245, 10)):
            vals = raw[start:start + count]
            lines.append("raw %d %d %s" % (seed, start, " ".join(str(int(v)) for v in vals)))
        rs = np.random.RandomState(seed)
        lines.append("double %d %s" % (seed, " ".join(repr(rs.random_sample()) for _ in range(6))))
    write("mt19937.txt",
          "raw <seed> <index of first> <32-bit outputs...> | double <seed> <random_sample()...>",
          lines)


def fixtures_shuffle():
    lines = []
    for seed, n in ((977, 976), (0, 5), (0, 15), (5, 10), (123, 1), (7, 2), (42, 1025),
                    (3, 600), (4294967295, 257)):
        rs = np.random.RandomState(seed)
        x = np.arange(n)
        rs.shuffle(x)
        after = rs.random_sample()
        # The reference shuffles Python lists; numpy's list and array paths must agree.
        rs2 = np.random.RandomState(seed)
        lst = list(range(n))
        rs2.shuffle(lst)
        assert lst == x.tolist() and rs2.random_sample() == after
        lines.append("%d %d %r %s" % (seed, n, after, " ".join(str(int(v)) for v in x)))
    write("shuffle.txt", "<seed> <n> <random_sample() after> <shuffled arange(n)...>", lines)


def fixtures_halton():
    for d in (1, 2, 3, 7):
        for n in (5, 15):
            rows = halton(d, n)
            write("halton_d%d_n%d.txt" % (d, n),
                  "tp_halton_points(%d, %d): bases %s, rows after numpy.random.seed(%d)"
                  % (d, n, bases(d), ROW_SEED),
                  [" ".join(repr(u) for u in r) for r in rows])
    rows = halton(170, 5)  # more dimensions than odd primes below 1000: bases below 2000
    write("halton_d170_n5.txt", "tp_halton_points(170, 5): bases %d..%d" % (bases(170)[0],
                                                                           bases(170)[-1]),
          [" ".join(repr(u) for u in r) for r in rows])
    rows = halton(3, 15, shuffle_rows=False)
    write("halton_d3_n15_sequence.txt", "points 101..115 of the 3-dimensional sequence, unshuffled",
          [" ".join(repr(u) for u in r) for r in rows])


def fixtures_search():
    spaces = (("adamw", "submissions/adamw/tuning_search_space.json"),
              ("sgd", "submissions/sgd/tuning_search_space.json"),
              ("linear", "tests/data/searchspace/linear.json"),
              ("list", "tests/data/searchspace/list.json"))
    for name, rel in spaces:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            space = json.load(f)
        for n in (1, 5, 15):
            if isinstance(space, list) and n > len(space):
                continue
            pts = generate_search(space, n)
            write("%s_n%d.txt" % (name, n), "generate_search(%s, %d)" % (rel, n),
                  [",".join("%s=%r" % (k, float(v)) for k, v in p) for p in pts])


def main():
    if not os.path.isdir(OUT):
        sys.exit("no directory %s" % OUT)
    fixtures_mt19937()
    fixtures_shuffle()
    fixtures_halton()
    fixtures_search()


if __name__ == "__main__":
    main()
