#!/usr/bin/python3
"""Side-by-side speed of one fmnist_vit training step: trainperf vs PyTorch on CPU.

Same model as workloads/fmnist_vit (the default, not a variant): 7x7 patches cut in the data
path into (B, 16, 49) rows, a dense patch embedding 49 -> 64 with bias, a learned position
embedding (16, 64) added, 4 pre-LN encoder blocks (LayerNorm eps 1e-6; multi-head self-attention
with 4 heads of 16, separate query / key / value / output 64 x 64 projections with biases,
softmax(q k^T / 4); MLP 64 -> 256 -> 64 with biases and tanh-approximate GELU; residual adds), a
final LayerNorm, the mean over the 16 tokens, dense 64 -> 10; softmax cross-entropy, no label
smoothing, no dropout (bench_step's default rate is 0). 204,938 parameters. Batch 128 (the
config's batch_size_hint), AdamW (lr 1e-3, wd 0.01, eps 1e-8), one thread, fresh batches of the
real Fashion-MNIST data every step, patchified in each step on both sides. The run alternates
rounds of bench_step (a trainperf step exactly as a worker runs it) and of PyTorch
(benchlib.side_by_side). The PyTorch attention is written out (PyTorch 1.13 has no public fused
one, and nn.MultiheadAttention packs q / k / v into one projection): a batched matmul for q k^T
and one for P v over (B, H) as trainperf's per-(b, h) sgemms. The init differs (it does not
matter for speed).

FLOPs per step (the count printed and used for GFLOP/s): only the matrix products, 2 per
multiply-add. Forward multiply-adds per example (T = 16, D = 64, F = 256): patch embedding
T*49*D = 50,176; per block the four projections 4*T*D*D = 262,144, the MLP 2*T*D*F = 524,288 and
the attention products q k^T and P v, 2*T*T*D = 32,768 (819,200 a block, 3,276,800 for 4); head
640: 3,327,616 in all. A training step is 3x the forward (forward, weight gradient, input
gradient; attention backward has twice its forward's products) less the patch embedding's input
gradient, which the data does not need: 2 * B * (3 * 3,327,616 - 50,176) = 2.543 GFLOP at
B = 128. LayerNorm, softmax, GELU, the adds and the pooling are not counted.

Kernels: both sides use OpenBLAS (Debian's PyTorch 1.13 calls libblas.so.3, OpenBLAS here).
OPENBLAS_CORETYPE as in benchlib: the value a trainperf host gives its workers when unset and
OpenBLAS would pick weaker kernels.

Run by hand (never by ctest), after building:
    /usr/bin/python3 tests/bench/bench_fmnist_vit.py [--rounds 5] [--steps 100] [--batch 128]
Needs Debian's python3-torch and python3-numpy.
"""
import argparse
import os

from benchlib import (ROOT, bench_step_exe, cfg_batch_hint, ensure_coretype, index_sampler,
                      load_fmnist, side_by_side, torch_adamw, torch_round)

CFG = os.path.join(ROOT, "workloads", "fmnist_vit", "fmnist_vit.cfg")
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530  # fmnist_vit.c's FV_PIXEL_MEAN / FV_PIXEL_STD
P, D, DEPTH, HEADS, F = 7, 64, 4, 4, 256
GRID = 28 // P
T = GRID * GRID


def vit_flops(batch):
    """FLOPs of one training step by the rule in the docstring."""
    patch = T * P * P * D
    block = 4 * T * D * D + 2 * T * D * F + 2 * T * T * D
    macs = patch + DEPTH * block + D * 10
    return 2.0 * batch * (3 * macs - patch)


def model():
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))

        def forward(self, x):  # x (B, T, D)
            b, t, _ = x.shape

            def heads(z):  # (B, T, D) -> (B, H, T, D / H)
                return z.view(b, t, HEADS, D // HEADS).transpose(1, 2)
            q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
            p = torch.softmax(q @ k.transpose(-2, -1) * (D // HEADS) ** -0.5, dim=-1)
            return self.o((p @ v).transpose(1, 2).reshape(b, t, D))  # (B, T, D)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn = nn.LayerNorm(D, eps=1e-6), Attention()
            self.ln2 = nn.LayerNorm(D, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(D, F), nn.GELU(approximate="tanh"), nn.Linear(F, D))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Linear(P * P, D)
            self.pos = nn.Parameter(torch.randn(T, D) * 0.02)
            self.blocks = nn.Sequential(*(Block() for _ in range(DEPTH)))
            self.norm = nn.LayerNorm(D, eps=1e-6)
            self.head = nn.Linear(D, 10)

        def forward(self, patches):  # (B, T, P * P)
            x = self.blocks(self.patch(patches) + self.pos)  # (B, T, D)
            return self.head(self.norm(x).mean(1))  # (B, 10)

    return ViT()


def torch_setup(batch):
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    xn, yn = load_fmnist()
    x = torch.from_numpy((xn[:50000] - PIXEL_MEAN) / PIXEL_STD)
    y = torch.from_numpy(yn[:50000].copy())
    net = model()
    sample = index_sampler(len(x))

    def next_batch(b):
        # (b, 784) -> (b, 16, 49): patches in row-major order, pixels row-major in each.
        idx = sample(b)
        patches = x[idx].view(b, GRID, P, GRID, P).permute(0, 1, 3, 2, 4).reshape(b, T, P * P)
        return patches, y[idx]

    state = {"model": net, "opt": torch_adamw(net), "next_batch": next_batch}
    with torch.no_grad():  # a large first forward pass, as bench_fmnist_mlp.py's
        net(next_batch(4 * batch)[0])
    torch_round(state, 20, batch)  # warm-up steps
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=cfg_batch_hint(CFG))
    args = ap.parse_args()
    exe = bench_step_exe(args.build)
    ensure_coretype(exe)  # same kernels for both sides, chosen as the host chooses for workers
    side_by_side("fmnist_vit", exe, CFG, args.batch, args.steps, args.rounds,
                 vit_flops(args.batch), torch_setup, torch_round, warmup=20)


if __name__ == "__main__":
    main()
