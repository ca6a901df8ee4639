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
torch_round(state, steps, batch) -> median seconds per step over `steps` fresh batches. The
PyTorch side of a step can be built from torch_adamw (bench_step's AdamW), index_sampler (fresh
batches by random permutation) and torch_round (one round of timed steps with cross-entropy).
Never run by ctest: speed is measured by hand on a quiet machine.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

# One thread on the PyTorch side too. torch.set_num_threads(1) sets OpenMP's count (oneDNN's and
# PyTorch's own loops) but not OpenBLAS's: Debian's pthread build of OpenBLAS starts a thread per
# core when it is loaded, and PyTorch's matmuls then run on two cores here. OpenBLAS reads this
# when loaded, so it is set on import, before any script imports torch (bench_step gets it too).
os.environ["OPENBLAS_NUM_THREADS"] = "1"

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


def cfg_batch_hint(cfg):
    """The batch_size_hint of a workload config (the batch a benchmark uses by default)."""
    with open(cfg) as f:
        m = re.search(r"^\s*batch_size_hint\s*=\s*(\d+)\s*;", f.read(), re.M)
    if not m:
        sys.exit(f"{cfg}: no batch_size_hint")
    return int(m.group(1))


def torch_adamw(model):
    """PyTorch's AdamW with the hyperparameters bench_step gives the adamw plugin (learning_rate
    1e-3, weight_decay 0.01 on every parameter, its defaults beta1 0.9, beta2 0.999, eps 1e-8)."""
    import torch
    return torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0.01)


def index_sampler(n):
    """sample(batch) -> (batch) int64 indices into n examples: a random permutation consumed in
    order, a fresh one when fewer than batch are left (as bench_fmnist_mlp.py's batches)."""
    import torch
    perm, pos = torch.randperm(n), 0

    def sample(batch):
        nonlocal perm, pos
        if pos + batch > n:
            perm, pos = torch.randperm(n), 0
        pos += batch
        return perm[pos - batch:pos]
    return sample


def torch_round(state, steps, batch):
    """Median seconds per PyTorch training step over `steps` steps. state: "model", "opt" and
    "next_batch" (batch -> (inputs, int64 targets)). A step is: the batch, zero_grad, forward,
    the mean softmax cross-entropy over every position of the last dim's logits (an image's one,
    a sequence's T), backward, the optimizer step; the batch is timed, as bench_step times data
    selection and the gather."""
    import torch
    model, opt, next_batch = state["model"], state["opt"], state["next_batch"]
    lossf = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        x, y = next_batch(batch)
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = lossf(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
    threads = len(os.listdir("/proc/self/task"))  # 1 unless a library started workers
    peak = info["sgemm_1024_gflops"]
    print(f"{name} step, batch {batch}, AdamW, 1 thread, {rounds} alternating rounds of "
          f"{steps} steps (per-round medians); {flops / 1e9:.3f} GFLOP per step")
    print(f"  OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
          f"trainperf: {info['blas']}; threads of the PyTorch process: {threads}")
    print(f"  trainperf : median {tp_med * 1e3:8.3f} ms  ({flops / tp_med * 1e-9:6.1f} GFLOP/s)"
          f"  rounds: {' '.join(f'{t * 1e3:.3f}' for t in tp_t)}")
    print(f"  PyTorch   : median {pt_med * 1e3:8.3f} ms  ({flops / pt_med * 1e-9:6.1f} GFLOP/s)"
          f"  rounds: {' '.join(f'{t * 1e3:.3f}' for t in pt_t)}")
    print(f"  speed of trainperf relative to PyTorch (PyTorch time / trainperf time): "
          f"{pt_med / tp_med:.3f}  (goal >= 0.8)")
    print(f"  single-thread cblas_sgemm 1024^3: {peak:.1f} GFLOP/s; trainperf reaches "
          f"{100 * flops / tp_med * 1e-9 / peak:.0f}% of it")
    return tp_med, pt_med, pt_med / tp_med
