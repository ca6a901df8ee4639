#!/usr/bin/python3
"""Side-by-side speed of one fmnist_resnet training step: trainperf vs PyTorch on CPU.

Same model as workloads/fmnist_resnet (the default, not a variant): a 3x3 conv stem 1 -> 16
channels, three stages of one basic block at 16 / 32 / 64 channels on 28 / 14 / 7 pixels (the
first block of stages 2 and 3 with stride 2 and a 1x1 stride-2 projection shortcut), every conv
without bias and followed by batch norm (train mode: batch statistics, momentum 0.9 in Flax's
terms, eps 1e-5), ReLU, global average pooling, dense 64 -> 10; softmax cross-entropy, no label
smoothing. Batch 64 (the config's batch_size_hint), AdamW (lr 1e-3, wd 0.01, eps 1e-8), one
thread, fresh batches of the real Fashion-MNIST data every step. The run alternates rounds of
bench_step (a trainperf step exactly as a worker runs it) and of PyTorch (benchlib.side_by_side).

Layout: PyTorch runs channels_last (NHWC in memory, trainperf's layout), which was ~8% faster
than its default NCHW for this model here; --nchw gives the default. Differences that do not
change the work: PyTorch's stride-2 convolutions pad 1 on both sides where "SAME" pads 0 before
and 1 after (the same output shapes and FLOPs), its images are standardised once up front
(trainperf does it in the gather of each batch, 50 k flops), and the init differs (it does not
matter for speed).

FLOPs per step (the count printed and used for GFLOP/s): only the convolutions and the dense
head, 2 per multiply-add. Forward multiply-adds per example: stem 28*28*9*1*16 = 112,896;
stage 1: two 3x3 16 -> 16 convs on 28 x 28, 2 * 1,806,336; stage 2: 3x3 16 -> 32 and 32 -> 32 on
14 x 14 (903,168 + 1,806,336), the 1x1 projection 100,352; stage 3 likewise on 7 x 7 at 32 / 64
channels (903,168 + 1,806,336 + 100,352); head 640: 9,345,920 in all. A training step is 3x
the forward (forward, weight gradient, input gradient of each layer) less the stem's input
gradient, which the data does not need: 2 * B * (3 * 9,345,920 - 112,896) = 3.574 GFLOP at
B = 64. Batch norm, ReLU, the adds and the pooling are not counted.

Kernels: both sides use OpenBLAS for GEMMs (PyTorch's convolutions go to oneDNN, MKL-DNN 2.6 in
Debian's 1.13). OPENBLAS_CORETYPE as in benchlib: the value a trainperf host gives its workers
when unset and OpenBLAS would pick weaker kernels.

Run by hand (never by ctest), after building:
    /usr/bin/python3 tests/bench/bench_fmnist_resnet.py [--rounds 5] [--steps 50] [--batch 64]
                                                        [--nchw]
Needs Debian's python3-torch and python3-numpy.
"""
import argparse
import os

from benchlib import (ROOT, bench_step_exe, cfg_batch_hint, ensure_coretype, index_sampler,
                      load_fmnist, side_by_side, torch_adamw, torch_round)

CFG = os.path.join(ROOT, "workloads", "fmnist_resnet", "fmnist_resnet.cfg")
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530  # fmnist_resnet.c's FR_PIXEL_MEAN / FR_PIXEL_STD
WIDTH, STAGES = 16, 3


def resnet_flops(batch):
    """FLOPs of one training step by the rule in the docstring."""
    macs, side, cin = 28 * 28 * 9 * 1 * WIDTH, 28, WIDTH  # the stem
    stem = macs
    for s in range(STAGES):
        cout, stride = WIDTH << s, 1 if s == 0 else 2
        side = (side + stride - 1) // stride
        macs += side * side * 9 * cin * cout + side * side * 9 * cout * cout
        if cin != cout or stride != 1:
            macs += side * side * cin * cout
        cin = cout
    macs += cin * 10
    return 2.0 * batch * (3 * macs - stem)


def model():
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride):
        # PyTorch's momentum is the weight of the batch: Flax's 0.9 is PyTorch's 0.1.
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False),
                             nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = conv_bn(cin, cout, 3, stride)
            self.conv2 = conv_bn(cout, cout, 3, 1)
            self.proj = conv_bn(cin, cout, 1, stride) if cin != cout or stride != 1 else None

        def forward(self, x):
            y = self.conv2(torch.relu(self.conv1(x)))
            return torch.relu((self.proj(x) if self.proj is not None else x) + y)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv_bn(1, WIDTH, 3, 1)
            blocks, cin = [], WIDTH
            for s in range(STAGES):
                blocks.append(Block(cin, WIDTH << s, 1 if s == 0 else 2))
                cin = WIDTH << s
            self.blocks = nn.Sequential(*blocks)
            self.head = nn.Linear(cin, 10)

        def forward(self, x):  # x (B, 1, 28, 28)
            h = self.blocks(torch.relu(self.stem(x)))  # (B, 64, 7, 7)
            return self.head(h.mean((2, 3)))  # (B, 10)

    return ResNet()


def torch_setup(batch, nchw=False):
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    xn, yn = load_fmnist()
    x = torch.from_numpy((xn[:50000] - PIXEL_MEAN) / PIXEL_STD).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(yn[:50000].copy())
    net = model()
    fmt = torch.contiguous_format if nchw else torch.channels_last
    net = net.to(memory_format=fmt)
    sample = index_sampler(len(x))

    def next_batch(b):
        idx = sample(b)
        return x[idx].contiguous(memory_format=fmt), y[idx]

    state = {"model": net, "opt": torch_adamw(net), "next_batch": next_batch}
    with torch.no_grad():  # a large first forward pass, as bench_fmnist_mlp.py's
        net(x[:4 * batch])
    torch_round(state, 20, batch)  # warm-up steps
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=cfg_batch_hint(CFG))
    ap.add_argument("--nchw", action="store_true", help="PyTorch in its default layout, NCHW")
    args = ap.parse_args()
    exe = bench_step_exe(args.build)
    ensure_coretype(exe)  # same kernels for both sides, chosen as the host chooses for workers
    print(f"PyTorch layout: {'NCHW' if args.nchw else 'channels_last (NHWC)'}")
    side_by_side("fmnist_resnet", exe, CFG, args.batch, args.steps, args.rounds,
                 resnet_flops(args.batch), lambda b: torch_setup(b, args.nchw), torch_round,
                 warmup=20)


if __name__ == "__main__":
    main()
