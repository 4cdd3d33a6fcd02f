"""Conv2d forward+backward and a small-ResNet SGD step: dlmath against PyTorch CPU eager (float32).

1. Conv2d(16 -> 32, 3x3, padding 1) on N=32 images of 32x32: forward, then backward of a fixed cotangent
   (gradients of input, weight and bias). Also a straightforward NumPy im2col (sliding_window_view, one
   tensordot forward, tensordot + scatter over the 9 offsets backward) for scale.
2. `resnet_small(width=16, blocks=4)` (conv stem, 4 BasicBlocks in two stages, global average pool, Linear)
   on a batch of 32 3x32x32 images: forward, cross-entropy, backward, SGD step (momentum 0.9), against the
   same architecture in torch (the same state dict loaded into both).

Targets (issue 7): dlmath at most 3x PyTorch for both.

Run (the environment's OPENBLAS_* variables force a slow OpenBLAS kernel; unset them):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_conv.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_conv.py --threads 1 --repeat 60
"""

from __future__ import annotations

import time

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn as tnn

import dlmath as dm
import dlmath.nn as nn
import dlmath.optim as optim
from _harness import (
    LoadMonitor,
    apply_guard_args,
    common_parser,
    guard_report,
    med,
    print_machine_info,
    print_table,
    reset_guard_stats,
    schedule,
    thread_limit,
    time_interleaved,
)

TARGET = 3.0
N, C_IN, C_OUT, H, K = 32, 16, 32, 32, 3


# ----- 1. one convolution --------------------------------------------------------------------------------
def conv_contenders() -> dict[str, object]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C_IN, H, H), dtype=np.float32)
    ct = rng.standard_normal((N, C_OUT, H, H), dtype=np.float32)
    tconv = tnn.Conv2d(C_IN, C_OUT, K, padding=1)
    dconv = nn.Conv2d(C_IN, C_OUT, K, padding=1)
    dconv.load_state_dict({k: v.detach().numpy() for k, v in tconv.state_dict().items()})
    tx, tct = torch.tensor(x, requires_grad=True), torch.tensor(ct)
    w, b = dconv.weight.data, dconv.bias.data

    def dlmath_step() -> None:
        xd = dm.tensor(x, requires_grad=True)
        dconv.zero_grad()
        dconv(xd).backward(ct)

    def torch_step() -> None:
        tx.grad = None
        tconv.zero_grad()
        tconv(tx).backward(tct)

    def numpy_im2col_step() -> None:
        # the straightforward version: an im2col copy, one GEMM, and col2im by scatter over the 9 offsets
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = sliding_window_view(xp, (K, K), axis=(2, 3))              # (N, C, H, W, K, K) view
        y = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2) + b[:, None, None]
        gw = np.tensordot(ct, cols, axes=([0, 2, 3], [0, 2, 3]))        # (O, C, K, K)
        gb = ct.sum(axis=(0, 2, 3))
        gcols = np.tensordot(ct, w, axes=([1], [0]))                     # (N, H, W, C, K, K)
        gxp = np.zeros_like(xp)
        for i in range(K):
            for j in range(K):
                gxp[:, :, i:i + H, j:j + H] += gcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        del y, gw, gb

    # correctness: dlmath against torch on these very arrays
    dlmath_step()
    torch_step()
    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).max() / np.abs(b).max())

    err = max(rel(dconv.weight.grad.data, tconv.weight.grad.numpy()),
              rel(dconv(x).data, tconv(torch.tensor(x)).detach().numpy()))
    print(f"Conv2d check: max |dlmath - torch| / max |torch| over output and weight gradient = {err:.1e} (float32)")
    return {"dlmath": dlmath_step, "torch": torch_step, "numpy im2col": numpy_im2col_step}


# ----- 2. a small ResNet training step -------------------------------------------------------------------
class _TBasicBlock(tnn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: tnn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + identity)


class _TResNetSmall(tnn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.conv1 = tnn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(width)
        self.relu = tnn.ReLU(inplace=True)
        self.layer1 = tnn.Sequential(_TBasicBlock(width, width), _TBasicBlock(width, width))
        down = tnn.Sequential(tnn.Conv2d(width, 2 * width, 1, 2, bias=False), tnn.BatchNorm2d(2 * width))
        self.layer2 = tnn.Sequential(_TBasicBlock(width, 2 * width, 2, down), _TBasicBlock(2 * width, 2 * width))
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.flatten = tnn.Flatten()
        self.dropout = tnn.Dropout(0.0)
        self.fc = tnn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.fc(self.dropout(self.flatten(self.avgpool(self.layer2(self.layer1(x))))))


def resnet_contenders() -> dict[str, object]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, 3, H, H), dtype=np.float32)
    labels = rng.integers(0, 10, N)
    torch.manual_seed(0)
    tmodel = _TResNetSmall()
    dmodel = nn.resnet_small(num_classes=10, width=16, blocks=4)
    dmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    dopt = optim.SGD(dmodel.parameters(), lr=0.01, momentum=0.9)
    tx, tl = torch.tensor(x), torch.tensor(labels)

    def dlmath_step() -> None:
        dopt.zero_grad()
        loss = nn.functional.cross_entropy(dmodel(x), labels)
        loss.backward()
        dopt.step()

    def torch_step() -> None:
        topt.zero_grad()
        loss = tnn.functional.cross_entropy(tmodel(tx), tl)
        loss.backward()
        topt.step()

    ld = float(nn.functional.cross_entropy(dmodel(x), labels).data)
    lt = float(tnn.functional.cross_entropy(tmodel(tx), tl).detach())
    print(f"ResNet check: first-step loss dlmath {ld:.6f}, torch {lt:.6f} (same weights, float32)")
    return {"dlmath": dlmath_step, "torch": torch_step}


def thread_cpu_times(fns: dict[str, object], repeat: int) -> dict[str, float]:
    """Median CPU time of the calling thread per call (1 thread only: BLAS and torch then run inline).

    Less sensitive than wall time to other processes on a shared machine (they still share caches)."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.thread_time()
            fn()
            out[name].append(time.thread_time() - t0)
    return {name: med(v) for name, v in out.items()}


def main() -> None:
    p = common_parser(__doc__.splitlines()[0], repeat=60, warmup=3)
    args = p.parse_args()
    apply_guard_args(args)
    print_machine_info("Conv2d forward+backward and small-ResNet SGD step, float32", args.threads)
    verdicts = []
    for n in args.threads:
        block, settle = schedule(n, args.block if args.block else 5, args.settle)
        for title, make in (("Conv2d 16->32, 3x3, pad 1, N=32, 32x32: forward + backward", conv_contenders),
                            ("resnet_small (4 BasicBlocks, width 16), batch 32, 32x32: SGD step", resnet_contenders)):
            reset_guard_stats()
            with thread_limit(n), LoadMonitor() as load:
                fns = make()
                times = time_interleaved(fns, args.repeat, args.warmup, block, settle)
            t = {name: med(v["total"]) for name, v in times.items()}
            print(f"-- {title}; {n} thread(s): median of {args.repeat} calls, blocks of {block} --")
            rows = []
            for name, v in times.items():
                q = np.percentile(v["total"], [25, 75]) * 1e3
                rows.append((name, f"{t[name] * 1e3:.2f}", f"{q[0]:.2f}-{q[1]:.2f}", f"{t[name] / t['torch']:.2f}"))
            print_table(["engine", "median ms", "IQR ms", "this / torch"], rows)
            if n == 1:
                with thread_limit(1):
                    cpu = thread_cpu_times(fns, max(args.repeat // 2, 3))
                print("thread CPU time (median ms): " + ", ".join(
                    f"{name} {v * 1e3:.2f} ({v / cpu['torch']:.2f}x torch)" for name, v in cpu.items()))
            print(load.describe())
            print(guard_report())
            ratio = t["dlmath"] / t["torch"]
            verdicts.append((title.split(":")[0], n, ratio, ratio <= TARGET))
            print()
    for what, n, ratio, ok in verdicts:
        print(f"TARGET dlmath <= {TARGET}x PyTorch, {what}, {n} thread(s): {ratio:.2f} -> {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
