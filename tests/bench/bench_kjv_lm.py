#!/usr/bin/python3
"""Side-by-side speed of one kjv_lm training step: trainperf vs PyTorch on CPU.

Same model as workloads/kjv_lm (the default, not a variant): a character-level decoder-only
Transformer, context T = 64, width D = 128, 4 pre-LN blocks (LayerNorm eps 1e-6; causal
multi-head self-attention with 4 heads of 32, separate query / key / value / output 128 x 128
projections WITHOUT biases, softmax(q k^T / sqrt(32)) with the future masked; MLP 128 -> 512 ->
128 with biases and tanh-approximate GELU; residual adds), token embedding (V, D) plus a learned
position embedding (T, D), a final LayerNorm, an untied output projection D -> V with bias;
softmax cross-entropy averaged over all B * T positions, no label smoothing, no dropout
(bench_step's default rate is 0). V = 63 (the distinct bytes of the text): 815,679 parameters.
Batch 16 windows (the config's batch_size_hint: 1,024 characters), AdamW (lr 1e-3, wd 0.01, eps
1e-8), one thread. The run alternates rounds of bench_step (a trainperf step exactly as a worker
runs it) and of PyTorch (benchlib.side_by_side).

Data: the real text on both sides, the file the workload's prepare step writes
($XDG_CACHE_HOME or ~/.cache, then trainperf/kjv/kjv-v1.txt). trainperf draws windows of its
train split (57 books); the PyTorch side draws random non-overlapping windows of T + 1 characters
of the whole file (input the first T, targets the last T), token id = rank of the byte among
the file's distinct bytes, as the workload's vocabulary. Which windows makes no difference to
the work. The attention is written out (PyTorch 1.13 has no public fused one, and
nn.MultiheadAttention packs q / k / v into one projection with biases): batched matmuls over
(B, H) for q k^T and P v, a masked_fill for the causal mask, as trainperf's per-(b, h) sgemms
that compute the full T x T scores and zero the masked probabilities. The init differs (it does
not matter for speed).

FLOPs per step (the count printed and used for GFLOP/s): only the matrix products, 2 per
multiply-add, the full T x T attention products counted (both sides compute them, mask or not).
Forward multiply-adds per window: per block the four projections 4*T*D*D = 4,194,304, the MLP
2*T*D*F = 8,388,608, q k^T and P v 2*T*T*D = 1,048,576 (13,631,488 a block, 54,525,952 for 4);
the output projection T*D*V = 516,096: 55,042,048 in all. The embeddings are lookups (no
products). A training step is 3x the forward (forward, weight gradient, input gradient of every
product; attention backward has twice its forward's products): 2 * B * 3 * 55,042,048 = 5.284
GFLOP at B = 16. LayerNorm, softmax, GELU, the adds and the embedding gathers are not counted.

Kernels: both sides use OpenBLAS (Debian's PyTorch 1.13 calls libblas.so.3, OpenBLAS here).
OPENBLAS_CORETYPE as in benchlib: the value a trainperf host gives its workers when unset and
OpenBLAS would pick weaker kernels.

Run by hand (never by ctest), after building and after the text is prepared (once:
build/trainperf run --workload kjv_lm --optimizer adamw --max-steps 1):
    /usr/bin/python3 tests/bench/bench_kjv_lm.py [--rounds 5] [--steps 50] [--batch 16]
Needs Debian's python3-torch and python3-numpy.
"""
import argparse
import os
import sys

from benchlib import (ROOT, bench_step_exe, cfg_batch_hint, ensure_coretype, index_sampler,
                      side_by_side, torch_adamw, torch_round)

CFG = os.path.join(ROOT, "workloads", "kjv_lm", "kjv_lm.cfg")
T, D, DEPTH, HEADS, F = 64, 128, 4, 4, 512


def kjv_text():
    """The prepared text as bytes (kjv_lm.c's default data.dir)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(cache, "trainperf", "kjv", "kjv-v1.txt")
    if not os.path.exists(path):
        sys.exit(f"{path} not found: prepare it once with `build/trainperf run --workload kjv_lm "
                 f"--optimizer adamw --max-steps 1` (needs Debian's bible-kjv)")
    with open(path, "rb") as f:
        return f.read()


def kjv_flops(batch, vocab):
    """FLOPs of one training step by the rule in the docstring."""
    block = 4 * T * D * D + 2 * T * D * F + 2 * T * T * D
    macs = DEPTH * block + T * D * vocab
    return 2.0 * batch * 3 * macs


def model(vocab):
    import torch
    from torch import nn

    class CausalAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(D, D, bias=False) for _ in range(4))
            self.register_buffer("future", torch.ones(T, T, dtype=torch.bool).triu(1))

        def forward(self, x):  # x (B, T, D)
            b, t, _ = x.shape

            def heads(z):  # (B, T, D) -> (B, H, T, D / H)
                return z.view(b, t, HEADS, D // HEADS).transpose(1, 2)
            q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
            s = (q @ k.transpose(-2, -1) * (D // HEADS) ** -0.5).masked_fill(self.future[:t, :t],
                                                                               float("-inf"))
            return self.o((torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, t, D))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn = nn.LayerNorm(D, eps=1e-6), CausalAttention()
            self.ln2 = nn.LayerNorm(D, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(D, F), nn.GELU(approximate="tanh"), nn.Linear(F, D))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, D)
            self.pos = nn.Parameter(torch.randn(T, D) * 0.02)
            self.blocks = nn.Sequential(*(Block() for _ in range(DEPTH)))
            self.ln_f = nn.LayerNorm(D, eps=1e-6)
            self.head = nn.Linear(D, vocab)

        def forward(self, ids):  # (B, T) int64
            x = self.blocks(self.tok(ids) + self.pos)  # (B, T, D)
            return self.head(self.ln_f(x))  # (B, T, V)

    return LM()


def torch_setup(batch, text):
    import numpy as np
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    raw = np.frombuffer(text, dtype=np.uint8)
    alphabet = np.unique(raw)  # ascending: id = rank of the byte
    rank = np.zeros(256, dtype=np.int64)
    rank[alphabet] = np.arange(len(alphabet))
    n = len(raw) // (T + 1)
    windows = torch.from_numpy(rank[raw[:n * (T + 1)]].reshape(n, T + 1))  # (n, T + 1)
    net = model(len(alphabet))
    sample = index_sampler(n)

    def next_batch(b):
        w = windows[sample(b)]  # (b, T + 1)
        return w[:, :-1], w[:, 1:]

    state = {"model": net, "opt": torch_adamw(net), "next_batch": next_batch}
    with torch.no_grad():  # a large first forward pass, as bench_fmnist_mlp.py's
        net(next_batch(4 * batch)[0])
    torch_round(state, 10, batch)  # warm-up steps
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=cfg_batch_hint(CFG))
    args = ap.parse_args()
    exe = bench_step_exe(args.build)
    ensure_coretype(exe)  # same kernels for both sides, chosen as the host chooses for workers
    text = kjv_text()
    vocab = len(set(text))
    side_by_side("kjv_lm", exe, CFG, args.batch, args.steps, args.rounds,
                 kjv_flops(args.batch, vocab), lambda b: torch_setup(b, text), torch_round,
                 warmup=10)


if __name__ == "__main__":
    main()
