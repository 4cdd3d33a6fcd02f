"""Per-op overhead on tiny tensors: a chain of 1000 elementwise ops (y*a, y+b, tanh, sin, repeated)
on float64 shape (4,) and shape () tensors, forward and backward, dlmath against PyTorch eager.

Target (issue): dlmath at most 2x PyTorch. The work per op is a few flops, so the times
measure the engines' bookkeeping: dispatch, recording the tape, the reverse sweep.
``a`` and ``b`` are leaves that require grad (each is used 250 times, so their gradients
accumulate), as in a tiny recurrent cell. References: the same chain in plain NumPy
(no autodiff; the floor of an engine built on NumPy calls), HIPS autograd, and for
shape () a micrograd-style scalar engine (benchmarks/_scalar_engine.py).

Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_op_overhead.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_op_overhead.py --ops 4000 --shape vec
"""

from __future__ import annotations

import importlib.metadata
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

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
    schedule,
    thread_limit,
    time_interleaved,
)
from _scalar_engine import Value

TARGET = 2.0
SHAPES = {"vec": (4,), "scalar": ()}


def initial(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, shape)
    a = rng.uniform(0.9, 1.1, shape)
    b = rng.uniform(-0.1, 0.1, shape)
    return np.asarray(x), np.asarray(a), np.asarray(b)


Contender = Callable[[], dict[str, float]]


def _make_chain(leaf: Callable[[np.ndarray], Any], tanh: Callable[[Any], Any], sin: Callable[[Any], Any],
                to_numpy: Callable[[Any], np.ndarray], shape: tuple[int, ...], n_ops: int
                ) -> tuple[Contender, Callable[[], list[np.ndarray]]]:
    """The chain on one engine: ``leaf`` makes a tensor that requires grad, ``to_numpy`` reads a .grad.

    Both engines run this very code, so the comparison is op for op."""
    x, a, b = (leaf(v) for v in initial(shape))
    clock = time.perf_counter

    def run() -> dict[str, float]:
        t0 = clock()
        y = x
        for _ in range(n_ops // 4):
            y = y * a
            y = y + b
            y = tanh(y)
            y = sin(y)
        loss = y.sum()
        t1 = clock()
        loss.backward()
        t2 = clock()
        x.grad = a.grad = b.grad = None
        return {"forward": t1 - t0, "backward": t2 - t1}

    def grads() -> list[np.ndarray]:
        y = x
        for _ in range(n_ops // 4):
            y = sin(tanh(y * a + b))
        y.sum().backward()
        out = [to_numpy(t.grad) for t in (x, a, b)]
        x.grad = a.grad = b.grad = None
        return out

    return run, grads


def make_dlmath(shape: tuple[int, ...], n_ops: int) -> tuple[Contender, Callable[[], list[np.ndarray]]]:
    return _make_chain(lambda v: dm.tensor(v, requires_grad=True), dm.tanh, dm.sin,
                       lambda g: np.array(g.data), shape, n_ops)


def make_torch(shape: tuple[int, ...], n_ops: int) -> tuple[Contender, Callable[[], list[np.ndarray]]]:
    return _make_chain(lambda v: torch.tensor(v, requires_grad=True), torch.tanh, torch.sin,
                       lambda g: g.numpy().copy(), shape, n_ops)


def make_numpy(shape: tuple[int, ...], n_ops: int) -> Contender:
    """The forward chain with plain NumPy calls: what the arithmetic itself costs at this size."""
    x, a, b = initial(shape)
    tanh, sin, mul, add = np.tanh, np.sin, np.multiply, np.add
    clock = time.perf_counter

    def run() -> dict[str, float]:
        t0 = clock()
        y = x
        for _ in range(n_ops // 4):
            y = mul(y, a)
            y = add(y, b)
            y = tanh(y)
            y = sin(y)
        y.sum()
        t1 = clock()
        return {"forward": t1 - t0}

    return run


def make_autograd(shape: tuple[int, ...], n_ops: int) -> tuple[Contender, Callable[[], list[np.ndarray]]]:
    import autograd.numpy as anp
    from autograd.core import make_vjp

    x0, a0, b0 = initial(shape)
    clock = time.perf_counter

    def f(params: tuple[Any, Any, Any]) -> Any:
        y, a, b = params
        for _ in range(n_ops // 4):
            y = y * a
            y = y + b
            y = anp.tanh(y)
            y = anp.sin(y)
        return anp.sum(y)

    def run() -> dict[str, float]:
        t0 = clock()
        vjp, _ = make_vjp(f, (x0, a0, b0))
        t1 = clock()
        vjp(1.0)
        t2 = clock()
        return {"forward": t1 - t0, "backward": t2 - t1}

    def grads() -> list[np.ndarray]:
        vjp, _ = make_vjp(f, (x0, a0, b0))
        return [np.asarray(g) for g in vjp(1.0)]

    return run, grads


def make_scalar(shape: tuple[int, ...], n_ops: int) -> tuple[Contender, Callable[[], list[np.ndarray]]]:
    x0, a0, b0 = (float(v) for v in initial(shape))
    x, a, b = Value(x0), Value(a0), Value(b0)
    clock = time.perf_counter

    def run() -> dict[str, float]:
        t0 = clock()
        y = x
        for _ in range(n_ops // 4):
            y = y * a
            y = y + b
            y = y.tanh()
            y = y.sin()
        t1 = clock()
        y.backward()
        t2 = clock()
        x.grad = a.grad = b.grad = 0.0
        return {"forward": t1 - t0, "backward": t2 - t1}

    def grads() -> list[np.ndarray]:
        y = x
        for _ in range(n_ops // 4):
            y = (y * a + b).tanh().sin()
        y.backward()
        out = [np.asarray(v.grad) for v in (x, a, b)]
        x.grad = a.grad = b.grad = 0.0
        return out

    return run, grads


def main() -> None:
    p = common_parser(__doc__.splitlines()[0], repeat=200, warmup=10)
    p.add_argument("--ops", type=int, default=1000, help="chain length (a multiple of 4; default 1000)")
    p.add_argument("--shape", choices=["vec", "scalar", "both"], default="both",
                   help="vec: float64 shape (4,); scalar: float64 shape (); default both")
    args = p.parse_args()
    apply_guard_args(args)
    n_ops = args.ops - args.ops % 4
    print_machine_info(f"per-op overhead, chain of {n_ops} tiny ops (mul, add, tanh, sin), float64", args.threads,
                       {"autograd": importlib.metadata.version("autograd")})

    shapes = ["vec", "scalar"] if args.shape == "both" else [args.shape]
    verdicts = []
    for shape_name in shapes:
        shape = SHAPES[shape_name]
        # correctness first: the same gradients on every engine
        dl_run, dl_grads = make_dlmath(shape, n_ops)
        th_run, th_grads = make_torch(shape, n_ops)
        ag_run, ag_grads = make_autograd(shape, n_ops)
        contenders: dict[str, Contender] = {"dlmath": dl_run, "torch": th_run, "HIPS autograd": ag_run}
        checks = {"torch": th_grads, "HIPS autograd": ag_grads}
        if shape == ():
            sc_run, sc_grads = make_scalar(shape, n_ops)
            contenders["scalar Value engine"] = sc_run
            checks["scalar Value engine"] = sc_grads
        contenders["numpy, no autodiff"] = make_numpy(shape, n_ops)
        ref = dl_grads()
        diffs = {name: max(float(np.max(np.abs(g - r))) for g, r in zip(fn(), ref, strict=True))
                 for name, fn in checks.items()}
        print(f"shape {shape}: max |grad - grad_dlmath| over x, a, b: "
              + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))

        for n in args.threads:
            block, settle = schedule(n, args.block, args.settle)
            reset_guard_stats()
            with thread_limit(n), LoadMonitor() as load:
                times = time_interleaved(contenders, args.repeat, args.warmup, block, settle)
            m = {name: {ph: med(v) for ph, v in phases.items()} for name, phases in times.items()}
            dl = m["dlmath"]
            print(f"-- shape {shape}, {n} thread(s): median of {args.repeat} chains after {args.warmup} warm-up; "
                  f"microseconds per op (chain time / {n_ops}) --")
            rows = []
            for name, ph in m.items():
                fwd = ph["forward"] / n_ops * 1e6
                bwd = ph.get("backward", math.nan) / n_ops * 1e6
                tot = fwd + bwd if "backward" in ph else math.nan
                if name == "dlmath" or "backward" not in ph:
                    ratios = ("1.00", "1.00", "1.00") if name == "dlmath" else ("-", "-", "-")
                else:
                    ratios = (f"{dl['forward'] / ph['forward']:.2f}", f"{dl['backward'] / ph['backward']:.2f}",
                              f"{(dl['forward'] + dl['backward']) / (ph['forward'] + ph['backward']):.2f}")
                rows.append((name, f"{fwd:.2f}", f"{bwd:.2f}" if bwd == bwd else "-",
                             f"{tot:.2f}" if tot == tot else "-", *ratios))
            print_table(["engine", "fwd us/op", "bwd us/op", "fwd+bwd us/op", "dlmath/this fwd", "bwd", "fwd+bwd"],
                        rows)
            print(load.describe())
            print(guard_report())
            th = m["torch"]
            ratio = (dl["forward"] + dl["backward"]) / (th["forward"] + th["backward"])
            verdicts.append((shape, n, dl["forward"] / th["forward"], dl["backward"] / th["backward"], ratio))
            print()
    for shape, n, rf, rb, r in verdicts:
        print(f"TARGET dlmath <= {TARGET}x PyTorch, shape {shape}, {n} thread(s): "
              f"forward {rf:.2f}x, backward {rb:.2f}x, forward+backward {r:.2f}x -> "
              f"{'MET' if r <= TARGET else 'NOT MET'}"
              + ("" if max(rf, rb) <= TARGET else " (not met for each phase separately)"))


if __name__ == "__main__":
    main()
