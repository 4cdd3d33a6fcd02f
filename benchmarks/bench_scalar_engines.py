"""The MLP SGD step of bench_mlp_step.py on engines of another kind, for scale: HIPS autograd
(arrays, tracing through boxed NumPy) and a micrograd-style scalar engine (one Python object
per number, benchmarks/_scalar_engine.py).

A scalar engine cannot run 784-512-512-10 x 128 in reasonable time (about 85 M multiply-adds
forward), so it runs a reduced model (784-16-10, batch 1 and batch 8 by default) and its time
per matrix-product flop is EXTRAPOLATED to the full size; the array engines run both sizes.

Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_scalar_engines.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_scalar_engines.py --small 784 32 10 --batches 4
"""

from __future__ import annotations

import gc
import importlib.metadata
from collections.abc import Callable
from typing import Any

import numpy as np
import torch  # noqa: F401  (imported so that thread_limit and the machine info cover it)

import _mlp
import _scalar_engine as se
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

SCALAR = "scalar Value engine"
SCALAR_NOGC = "scalar Value engine, GC off"


def without_gc(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``fn`` with Python's cyclic garbage collector paused (the engine makes no cycles)."""
    def run() -> Any:
        gc.disable()
        try:
            return fn()
        finally:
            gc.enable()
    return run


ARRAY_ENGINES = {
    "dlmath": _mlp.make_dlmath,
    "torch (same ops)": _mlp.make_torch,
    "HIPS autograd": _mlp.make_autograd,
}


def make_scalar(sizes: tuple[int, ...], batch: int, lr: float = _mlp.LR) -> tuple[Callable[[], Any], se.MLP]:
    params = _mlp.init_params(sizes, dtype=np.float64)
    x, labels = _mlp.make_batch(batch, sizes, dtype=np.float64)
    model = se.MLP([p.tolist() for p in params])
    xs = x.tolist()
    ys = labels.tolist()
    return (lambda: se.sgd_step(model, xs, ys, lr)), model


def check_scalar(sizes: tuple[int, ...], batch: int) -> tuple[float, float, float]:
    """One scalar-engine step against the hand-written NumPy step in float64: (loss, |dloss|, max |dW|)."""
    step, model = make_scalar(sizes, batch)
    loss = step()
    params = _mlp.init_params(sizes, dtype=np.float64)
    x, labels = _mlp.make_batch(batch, sizes, dtype=np.float64)
    ref = _mlp.make_numpy(params, x, labels)
    ref_loss = float(ref())
    dw = max(float(np.max(np.abs(np.asarray(a) - b))) for a, b in zip(model.weights_as_lists(), ref.params(),
                                                                       strict=True))
    return loss, abs(loss - ref_loss), dw


def main() -> None:
    p = common_parser(__doc__.splitlines()[0], repeat=100, warmup=10)
    p.add_argument("--small", type=int, nargs="+", default=[784, 16, 10],
                   help="reduced layer sizes (default 784 16 10)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="reduced batch sizes (default 1 8)")
    p.add_argument("--scalar-repeat", type=int, default=3, help="timed scalar-engine steps per size (default 3)")
    args = p.parse_args()
    apply_guard_args(args)
    small = tuple(args.small)
    print_machine_info("MLP SGD step on HIPS autograd and a scalar (micrograd-style) engine", args.threads,
                       {"autograd": importlib.metadata.version("autograd")})

    for b in args.batches:
        loss, dl, dw = check_scalar(small, b)
        print(f"correctness, scalar engine {'-'.join(map(str, small))} batch {b}, float64, one step vs NumPy by hand: "
              f"loss {loss:.6f}, |dloss| {dl:.1e}, max |dW| {dw:.1e}")
    print()

    full_flops = _mlp.flops_per_step(_mlp.SIZES, _mlp.BATCH)
    for n in args.threads:
        block, settle = schedule(n, args.block, args.settle)
        reset_guard_stats()
        with thread_limit(n), LoadMonitor() as load:
            params = _mlp.init_params()
            x, labels = _mlp.make_batch()
            full = time_interleaved({k: f(params, x, labels) for k, f in ARRAY_ENGINES.items()},
                                    args.repeat, args.warmup, block, settle)
            t_full = {k: med(v["total"]) for k, v in full.items()}
            reduced: dict[int, dict[str, float]] = {}
            for b in args.batches:
                ps = _mlp.init_params(small)
                xs, ls = _mlp.make_batch(b, small)
                arr = time_interleaved({k: f(ps, xs, ls) for k, f in ARRAY_ENGINES.items()},
                                       args.repeat, args.warmup, block, settle)
                reduced[b] = {k: med(v["total"]) for k, v in arr.items()}
                step, _ = make_scalar(small, b)
                sc = time_interleaved({SCALAR: step, SCALAR_NOGC: without_gc(step)}, args.scalar_repeat, 1)
                for k, v in sc.items():
                    reduced[b][k] = med(v["total"])

        print(f"-- {n} thread(s) --")
        rows = []
        for b in args.batches:
            fl = _mlp.flops_per_step(small, b)
            for k, t in reduced[b].items():
                rows.append((f"{'-'.join(map(str, small))} x {b}", k, f"{t * 1e3:.3f}", f"{t / fl * 1e9:.2f}",
                             f"{reduced[b]['dlmath'] / t:.3g}"))
        print("reduced model, measured (median ms per SGD step; ns per matmul flop, flops counted as in _mlp.py):")
        print_table(["model x batch", "engine", "ms/step", "ns/flop", "dlmath / this"], rows)
        print()
        rows = []
        for k, t in t_full.items():
            rows.append((k, "measured", f"{t * 1e3:.3f}", f"{t / full_flops * 1e9:.4f}", f"{t_full['dlmath'] / t:.3g}"))
        b_big = max(args.batches)
        ests = {}
        for k in (SCALAR, SCALAR_NOGC):
            per_flop = reduced[b_big][k] / _mlp.flops_per_step(small, b_big)
            ests[k] = est = per_flop * full_flops
            rows.append((k, f"EXTRAPOLATED from {'-'.join(map(str, small))} x {b_big}",
                         f"{est * 1e3:.0f}", f"{per_flop * 1e9:.2f}", f"{t_full['dlmath'] / est:.3g}"))
        print(f"full model 784-512-512-10 x 128 ({full_flops / 1e6:.0f} M matmul flops per step):")
        print_table(["engine", "how", "ms/step", "ns/flop", "dlmath / this"], rows)
        print(f"EXTRAPOLATION: the scalar engine's full-size time is its measured time per flop at "
              f"{'-'.join(map(str, small))} x {b_big} times the full model's flops; the scalar engine's cost is "
              f"linear in the number of multiply-adds (one mul node + one add node each); the per-flop times "
              f"at batch sizes {args.batches} above show how well that holds (with Python's cyclic GC on, the "
              f"collector's full passes grow with the live graph, so the per-flop time creeps up with size and "
              f"the GC-on estimate is a lower bound). Estimated full step: {ests[SCALAR]:.0f} s with GC "
              f"(~{ests[SCALAR] / t_full['dlmath']:.0f}x dlmath), {ests[SCALAR_NOGC]:.0f} s without "
              f"(~{ests[SCALAR_NOGC] / t_full['dlmath']:.0f}x dlmath).")
        print(load.describe())
        print(guard_report())
        print()


if __name__ == "__main__":
    main()
