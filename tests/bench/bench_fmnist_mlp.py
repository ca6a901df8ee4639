#!/usr/bin/python3
"""Side-by-side speed of one fmnist_mlp training step: trainperf vs PyTorch on CPU.

Same model (MLP 784-256-256-10, ReLU, cross-entropy), batch 128, AdamW (lr 1e-3, wd 0.01,
eps 1e-8), one thread, fresh batches of the real Fashion-MNIST data every step. Both sides are
warmed up (PyTorch after a first large forward pass, which lets glibc raise its mmap
threshold; measured at ~8.7 ms/step before and ~2.6 ms after on this kind of machine). The
two run in alternating rounds in one invocation so machine noise hits both; the report gives
per-round medians, their median, the ratio trainperf/PyTorch, and GFLOP/s next to the
single-thread cblas_sgemm rate on the model's own GEMM shapes (measured by bench_step).

Kernels: both sides use OpenBLAS (Debian's PyTorch 1.13 calls libblas.so.3, which is
OpenBLAS here). When OPENBLAS_CORETYPE is unset and OpenBLAS would fall back to kernels weaker
than the CPU runs (0.3.21 on newer CPUs), the script applies the rule a trainperf host applies
to its workers (core/runner.c) to both sides: it re-executes itself with the suggested
OPENBLAS_CORETYPE. A value already set is used as it is.

Run by hand (never by ctest), after building:  /usr/bin/python3 tests/bench/bench_fmnist_mlp.py
Needs Debian's python3-torch and python3-numpy.
"""
import argparse
import os
import statistics
import time

from benchlib import ROOT, bench_step_exe, ensure_coretype, load_fmnist, trainperf_round


def torch_round(state, steps, batch):
    import torch
    model, opt, x, y, perm, pos = state["model"], state["opt"], state["x"], state["y"], \
        state["perm"], state["pos"]
    lossf = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        if pos + batch > len(perm):
            perm = torch.randperm(len(x))
            pos = 0
        idx = perm[pos:pos + batch]
        pos += batch
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xb), yb)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    state["perm"], state["pos"] = perm, pos
    return statistics.median(times)


def torch_setup(batch):
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    xn, yn = load_fmnist()
    x, y = torch.from_numpy(xn[:50000].copy()), torch.from_numpy(yn[:50000].copy())
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    with torch.no_grad():  # the large first forward pass (see the docstring)
        model(x[:10000])
    state = {"model": model, "opt": opt, "x": x, "y": y, "perm": torch.randperm(len(x)), "pos": 0}
    torch_round(state, 200, batch)  # warm-up steps
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    exe = bench_step_exe(args.build)
    ensure_coretype(exe)  # same kernels for both sides, chosen as the host chooses for workers

    info = trainperf_round(exe, args.steps, args.batch, sgemm=True)
    state = torch_setup(args.batch)
    tp_t, pt_t = [info["step_median_s"]], []
    for r in range(args.rounds):
        pt_t.append(torch_round(state, args.steps, args.batch))
        if r:
            tp_t.append(trainperf_round(exe, args.steps, args.batch)["step_median_s"])
    tp_med, pt_med = statistics.median(tp_t), statistics.median(pt_t)
    flops = info["flops_per_step"]
    peak = info["sgemm_shapes_gflops"]
    print(f"fmnist_mlp step, batch {args.batch}, AdamW, 1 thread, {args.rounds} alternating "
          f"rounds of {args.steps} steps (per-round medians)")
    print(f"  OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
          f"trainperf: {info['blas']}")
    print(f"  trainperf : median {tp_med * 1e3:7.3f} ms  ({flops / tp_med * 1e-9:6.1f} GFLOP/s)"
          f"  rounds: {' '.join(f'{t * 1e3:.3f}' for t in tp_t)}")
    print(f"  PyTorch   : median {pt_med * 1e3:7.3f} ms  ({flops / pt_med * 1e-9:6.1f} GFLOP/s)"
          f"  rounds: {' '.join(f'{t * 1e3:.3f}' for t in pt_t)}")
    print(f"  ratio trainperf / PyTorch step time: {tp_med / pt_med:.3f}  (goal <= 0.8)")
    print(f"  cblas_sgemm alone on the step's GEMM shapes: {info['sgemm_floor_s'] * 1e3:.3f} ms "
          f"= {peak:.1f} GFLOP/s (1024^3: {info['sgemm_1024_gflops']:.1f} GFLOP/s)")
    print(f"  trainperf reaches {100 * (flops / tp_med * 1e-9) / peak:.0f}% of that sgemm rate "
          f"(goal >= 70%)")


if __name__ == "__main__":
    main()
