"""benchlib.py - what the side-by-side speed benchmarks (tests/bench/bench_<workload>.py) share:
running bench_step (a trainperf training step of a workload exactly as a worker runs it, with
AdamW and the default data selection) and a PyTorch step of the same model in alternating
rounds, so machine noise hits both, and printing the per-round medians, their median, the
speed ratio and the GFLOP/s against the measured single-thread sgemm rate.

Kernels: both sides use OpenBLAS (Debian's PyTorch calls libblas.so.3, OpenBLAS here). When
OPENBLAS_CORETYPE is unset and OpenBLAS would pick kernels weaker than the CPU runs, the
script re-executes itself with the value a trainperf host gives its workers (core/runner.c),
for both sides; a value already set is used as it is. One thread on both sides.

A benchmark script gives: the workload config, the batch size, FLOPs per step (its own model
count), and two callables: torch_setup(batch) -> state (model, optimizer, data; warmed up) and
torch_round(state, steps, batch) -> median seconds per step over `steps` fresh batches.
Never run by ctest: speed is measured by hand on a quiet machine.
"""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FMNIST = "/usr/share/datasets/fashion-mnist"


def bench_step_exe(build):
    exe = os.path.join(build, "bench", "bench_step")
    if not os.access(exe, os.X_OK):
        sys.exit(f"{exe} not found: build the project first (bash .ci/setup)")
    return exe


def ensure_coretype(exe):
    """Re-execute this script with the OPENBLAS_CORETYPE a trainperf host would give its
    workers, when it is unset and OpenBLAS's own choice is weaker than the CPU."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    core = subprocess.run([exe, "--blas-suggest"], check=True, capture_output=True,
                          text=True).stdout.strip()
    if core:
        env = dict(os.environ, OPENBLAS_CORETYPE=core)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def load_fmnist(split="train"):
    """Fashion-MNIST as numpy: (x float32 (n, 784) in [0, 1], y int64)."""
    import gzip
    import numpy as np
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(FMNIST, f"{prefix}-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(FMNIST, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


def trainperf_round(exe, steps, batch, cfg=None, warmup=100, sgemm=False, optimizer=None,
                    hparams=None):
    cmd = [exe, "--steps", str(steps), "--warmup", str(warmup), "--batch", str(batch)]
    if cfg:
        cmd += ["--workload-config", cfg]
    if optimizer:
        cmd += ["--optimizer", optimizer]
    if hparams:
        cmd += ["--hparams", hparams]
    if sgemm:
        cmd.append("--sgemm")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def side_by_side(name, exe, cfg, batch, steps, rounds, flops, torch_setup, torch_round,
                 warmup=100):
    """Alternating rounds; prints the report and returns (trainperf s, PyTorch s, ratio)."""
    import torch
    torch.set_num_threads(1)
    info = trainperf_round(exe, steps, batch, cfg, warmup, sgemm=True)
    state = torch_setup(batch)
    tp_t, pt_t = [info["step_median_s"]], []
    for r in range(rounds):
        pt_t.append(torch_round(state, steps, batch))
        if r:
            tp_t.append(trainperf_round(exe, steps, batch, cfg, warmup)["step_median_s"])
    tp_med, pt_med = statistics.median(tp_t), statistics.median(pt_t)
    peak = info["sgemm_1024_gflops"]
    print(f"{name} step, batch {batch}, AdamW, 1 thread, {rounds} alternating rounds of "
          f"{steps} steps (per-round medians); {flops / 1e9:.3f} GFLOP per step")
    print(f"  OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
          f"trainperf: {info['blas']}")
    print(f"  trainperf : median {tp_med * 1e3:8.3f} ms  ({flops / tp_med * 1e-9:6.1f} GFLOP/s)"
          f"  rounds: {' '.join(f'{t * 1e3:.3f}' for t in tp_t)}")
    print(f"  PyTorch   : median {pt_med * 1e3:8.3f} ms  ({flops / pt_med * 1e-9:6.1f} GFLOP/s)"
          f"  rounds: {' '.join(f'{t * 1e3:.3f}' for t in pt_t)}")
    print(f"  speed of trainperf relative to PyTorch (PyTorch time / trainperf time): "
          f"{pt_med / tp_med:.3f}  (goal >= 0.8)")
    print(f"  single-thread cblas_sgemm 1024^3: {peak:.1f} GFLOP/s; trainperf reaches "
          f"{100 * flops / tp_med * 1e-9 / peak:.0f}% of it")
    return tp_med, pt_med, pt_med / tp_med
