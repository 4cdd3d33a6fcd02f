"""Attention: dlmath's blockwise scaled_dot_product_attention against torch's, and its peak memory.

(a) Time: forward + backward of ``scaled_dot_product_attention`` at batch 4, 8 heads, seq 1024, head dim 64,
float32 (PyTorch's default dtype), dlmath's exact blockwise path (online softmax, fused primitive) against
``torch.nn.functional.scaled_dot_product_attention`` (its CPU kernel), same threads, interleaved by the shared
harness. Target: dlmath / torch <= 2. A correctness line compares outputs and gradients.

(b) Memory: peak bytes traced by ``tracemalloc`` during forward + backward at seq 4096 (batch 1, 1 head, head
dim 64, float32) for the naive path (stores the n x n matrices) and the blockwise path. Target: blockwise <= 1/4
of naive. NumPy reports its allocations to tracemalloc, so this counts the arrays both paths allocate.

Run (unset the environment's OPENBLAS_* overrides as for the other benchmarks):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_attention.py
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as TF

import dlmath as dm
from _harness import (
    LoadMonitor,
    apply_guard_args,
    common_parser,
    guard_report,
    med,
    print_machine_info,
    print_table,
    reset_guard_stats,
    thread_limit,
    time_interleaved,
)
from dlmath.nn import functional as F

TIME_TARGET = 2.0
MEMORY_TARGET = 0.25


def runner(arrays: list[np.ndarray], engine: str, block: int) -> Callable[[], list[np.ndarray]]:
    ct = np.random.default_rng(1).standard_normal(arrays[0].shape[:-1] + (arrays[2].shape[-1],)).astype(np.float32)

    def run() -> list[np.ndarray]:
        if engine == "dlmath":
            xs = [dm.tensor(x, requires_grad=True) for x in arrays]
            (F.scaled_dot_product_attention(*xs, method="blockwise", block_size=block) * ct).sum().backward()
            return [x.grad.data for x in xs]
        ts = [torch.tensor(x, requires_grad=True) for x in arrays]
        (TF.scaled_dot_product_attention(*ts) * torch.from_numpy(ct)).sum().backward()
        return [t.grad.numpy() for t in ts]
    return run


def peak_bytes(n: int, method: str, block: int) -> int:
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((1, 1, n, 64)).astype(np.float32) for _ in range(3)]
    tracemalloc.start()
    try:
        xs = [dm.tensor(x, requires_grad=True) for x in arrays]
        F.scaled_dot_product_attention(*xs, method=method, block_size=block).sum().backward()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    p = common_parser(__doc__.splitlines()[0], repeat=6, warmup=1)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--block-size", type=int, default=256)
    p.add_argument("--memory-seq", type=int, default=4096)
    args = p.parse_args()
    apply_guard_args(args)
    print_machine_info(f"scaled_dot_product_attention fwd+bwd, (4, 8, {args.seq}, 64) float32", args.threads)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((4, 8, args.seq, 64)).astype(np.float32) for _ in range(3)]
    fns = {"dlmath": runner(arrays, "dlmath", args.block_size), "torch": runner(arrays, "torch", args.block_size)}
    got, ref = fns["dlmath"](), fns["torch"]()
    err = max(float(np.max(np.abs(g - r)) / np.max(np.abs(r))) for g, r in zip(got, ref, strict=True))
    print(f"correctness (float32): max |grad (dlmath) - grad (torch)| / max |grad (torch)| = {err:.1e}")
    summary = []
    for n in args.threads:
        reset_guard_stats()
        with thread_limit(n), LoadMonitor() as load:
            times = time_interleaved({k: (lambda f=f: f() and None) for k, f in fns.items()}, args.repeat,
                                     args.warmup, args.block if args.block > 0 else 1,
                                     args.settle if args.settle >= 0 else 0.0)
        t = {k: med(v["total"]) for k, v in times.items()}
        ratio = t["dlmath"] / t["torch"]
        print(f"-- {n} thread(s): median of {args.repeat} calls --")
        print_table(["engine", "median ms"], [(k, f"{v * 1e3:.0f}") for k, v in t.items()])
        print(f"dlmath / torch = {ratio:.2f} (target <= {TIME_TARGET})")
        print(load.describe())
        print(guard_report())
        summary.append((n, t["dlmath"], t["torch"], ratio))
    naive = peak_bytes(args.memory_seq, "naive", args.block_size)
    block = peak_bytes(args.memory_seq, "blockwise", args.block_size)
    print()
    print("Markdown tables:")
    print()
    print_table(["threads", "dlmath blockwise ms", "torch SDPA ms", "dlmath / torch"],
                [(str(n), f"{a * 1e3:.0f}", f"{b * 1e3:.0f}", f"{r:.2f}") for n, a, b, r in summary])
    print()
    print_table([f"seq {args.memory_seq}, fwd+bwd, float32", "peak traced MiB"],
                [("naive", f"{naive / 2**20:.1f}"), (f"blockwise (block {args.block_size})", f"{block / 2**20:.1f}"),
                 ("blockwise / naive", f"{block / naive:.3f} (target <= {MEMORY_TARGET})")])


if __name__ == "__main__":
    main()
