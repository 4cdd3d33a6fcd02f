"""Forward mode: ``dm.jvp`` against ``torch.func.jvp`` on (a) an MLP forward pass with a tangent in
every weight and bias and (b) a chain of small elementwise ops (mul, add, tanh, sin repeated).

For each engine the script times the JVP (primal and tangent output together) and a plain
forward pass of the same function (dlmath: Tensors that do not require grad, so no tape; torch:
``torch.no_grad``),
and prints jvp-time / forward-time per engine, dlmath / torch for the JVP, and the flop ratio
jvp / forward from ``dm.count_flops()`` (deterministic; forward mode done with its own JVP
rules should cost about 2-3 forward passes, the double-VJP trick about 3 reverse passes).
Both engines run under the same thread count (``torch.set_num_threads`` and threadpoolctl
for NumPy's pools). A markdown table for BENCHMARKS.md is printed at the end.

Run (the environment's OPENBLAS_* variables force a slow OpenBLAS kernel; unset them):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_jvp.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_jvp.py --case mlp --threads 1 --repeat 400
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.func as tfunc

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

TARGET_JVP_OVER_FORWARD = 2.0  # the forward-mode rewrite's goal for dlmath (about 2x a forward pass)


# ----- (a) MLP forward, tangent in the weights --------------------------------------------------------------
def mlp_setup(widths: Sequence[int], batch: int, dtype: np.dtype) -> tuple[np.ndarray, list[np.ndarray],
                                                                              list[np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, widths[0])).astype(dtype)
    params, tangents = [], []
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        params += [(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype),
                   (0.1 * rng.standard_normal(n_out)).astype(dtype)]
    for p in params:
        tangents.append(rng.standard_normal(p.shape).astype(dtype))
    return x, params, tangents


def mlp_fn(x: Any, tanh: Callable[[Any], Any]) -> Callable[..., Any]:
    """The same code runs on both engines: tanh hidden layers, a linear last layer."""
    def f(*params: Any) -> Any:
        a = x
        n = len(params) // 2
        for i in range(n):
            a = a @ params[2 * i] + params[2 * i + 1]
            if i < n - 1:
                a = tanh(a)
        return a
    return f


# ----- (b) a chain of small elementwise ops ---------------------------------------------------------------------
def chain_setup(size: int, dtype: np.dtype) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size).astype(dtype)
    a = rng.uniform(0.9, 1.1, size).astype(dtype)
    b = rng.uniform(-0.1, 0.1, size).astype(dtype)
    tangents = [rng.standard_normal(size).astype(dtype) for _ in range(3)]
    return [x, a, b], tangents


def chain_fn(n_ops: int, tanh: Callable[[Any], Any], sin: Callable[[Any], Any]) -> Callable[..., Any]:
    def f(x: Any, a: Any, b: Any) -> Any:
        y = x
        for _ in range(n_ops // 4):
            y = y * a
            y = y + b
            y = tanh(y)
            y = sin(y)
        return y
    return f


# ----- one case on both engines ---------------------------------------------------------------------------------------
class Case:
    def __init__(self, name: str, title: str, dm_f: Callable[..., Any], t_f: Callable[..., Any],
                 primals: list[np.ndarray], tangents: list[np.ndarray]) -> None:
        self.name, self.title = name, title
        self.primals, self.tangents = tuple(primals), tuple(tangents)
        # dlmath's forward pass: the same function on Tensors that do not require grad (dlmath's
        # dispatch, no tape), so that the flop counter sees every op and per-op overhead is included
        self.dm_inputs = tuple(dm.tensor(p) for p in primals)
        self.tprimals = tuple(torch.from_numpy(p) for p in primals)
        self.ttangents = tuple(torch.from_numpy(t) for t in tangents)

        def dm_jvp() -> None:
            dm.jvp(dm_f, self.primals, self.tangents)

        def dm_forward() -> None:
            dm_f(*self.dm_inputs)

        def t_jvp() -> None:
            tfunc.jvp(t_f, self.tprimals, self.ttangents)

        def t_forward() -> None:
            with torch.no_grad():
                t_f(*self.tprimals)

        self.contenders = {"dlmath jvp": dm_jvp, "dlmath forward": dm_forward,
                           "torch jvp": t_jvp, "torch forward": t_forward}
        self.dm_f, self.t_f = dm_f, t_f

    def check(self) -> float:
        """max |dlmath tangent - torch tangent| / max |torch tangent|."""
        _, jv = dm.jvp(self.dm_f, self.primals, self.tangents)
        _, tjv = tfunc.jvp(self.t_f, self.tprimals, self.ttangents)
        ref = tjv.numpy()
        return float(np.max(np.abs(np.asarray(jv) - ref)) / max(float(np.max(np.abs(ref))), 1e-300))

    def flops(self) -> tuple[int, int, int]:
        """Flops of one forward pass, and of one jvp (its forward and backward phases)."""
        with dm.count_flops() as fwd:
            self.dm_f(*self.dm_inputs)
        with dm.count_flops() as jvp:
            dm.jvp(self.dm_f, self.primals, self.tangents)
        return fwd.total, jvp.forward, jvp.backward


def main() -> None:
    p = common_parser(__doc__.splitlines()[0], repeat=200, warmup=5)
    p.add_argument("--case", choices=["mlp", "chain", "both"], default="both")
    p.add_argument("--widths", type=int, nargs="+", default=[256, 1024, 1024, 256],
                   help="MLP layer widths, input first (default 256 1024 1024 256)")
    p.add_argument("--batch", type=int, default=64, help="MLP batch (default 64)")
    p.add_argument("--ops", type=int, default=400, help="chain length, a multiple of 4 (default 400)")
    p.add_argument("--size", type=int, default=16, help="chain vector length (default 16)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="MLP dtype (default float32); the chain always runs in float64")
    args = p.parse_args()
    apply_guard_args(args)
    n_ops = args.ops - args.ops % 4
    dtype = np.dtype(args.dtype)
    print_machine_info("forward mode: dm.jvp vs torch.func.jvp", args.threads)

    cases = []
    if args.case in ("mlp", "both"):
        x, params, tangents = mlp_setup(args.widths, args.batch, dtype)
        xt = torch.from_numpy(x)
        name = f"MLP {'-'.join(map(str, args.widths))} tanh, batch {args.batch}, {dtype.name}"
        cases.append(Case(name, f"{name}, tangent in all {len(params)} weights and biases",
                          mlp_fn(x, dm.tanh), mlp_fn(xt, torch.tanh), params, tangents))
    if args.case in ("chain", "both"):
        primals, tangents = chain_setup(args.size, np.dtype(np.float64))
        name = f"chain of {n_ops} ops on shape ({args.size},), float64"
        cases.append(Case(name, f"{name}: y = sin(tanh(y * a + b)) repeated, tangent in x, a, b",
                          chain_fn(n_ops, dm.tanh, dm.sin),
                          chain_fn(n_ops, torch.tanh, torch.sin), primals, tangents))

    summary = []
    for case in cases:
        print(f"== {case.title} ==")
        print(f"correctness: max |J v (dlmath) - J v (torch)| / max |J v (torch)| = {case.check():.1e}")
        f_fwd, j_fwd, j_bwd = case.flops()
        flop_ratio = (j_fwd + j_bwd) / f_fwd if f_fwd else float("nan")
        print(f"flops (dm.count_flops): forward pass {f_fwd:,}; jvp {j_fwd + j_bwd:,} "
              f"(its forward phase {j_fwd:,}, backward phase {j_bwd:,}); jvp / forward = {flop_ratio:.2f}")
        for n in args.threads:
            block, settle = schedule(n, args.block, args.settle)
            reset_guard_stats()
            with thread_limit(n), LoadMonitor() as load:
                times = time_interleaved(case.contenders, args.repeat, args.warmup, block, settle)
            t = {name: med(v["total"]) for name, v in times.items()}
            rows = []
            for name, v in times.items():
                q = np.percentile(v["total"], [25, 75]) * 1e3
                rows.append((name, f"{t[name] * 1e3:.3f}", f"{q[0]:.3f}-{q[1]:.3f}"))
            print(f"-- {n} thread(s): median of {args.repeat} calls after {args.warmup} warm-up calls each, "
                  f"blocks of {block}, settle {settle} s --")
            print_table(["contender", "median ms", "IQR ms"], rows)
            dm_ratio = t["dlmath jvp"] / t["dlmath forward"]
            t_ratio = t["torch jvp"] / t["torch forward"]
            vs = t["dlmath jvp"] / t["torch jvp"]
            print(f"jvp / forward: dlmath {dm_ratio:.2f}, torch {t_ratio:.2f}; dlmath jvp / torch jvp = {vs:.2f}")
            print(load.describe())
            print(guard_report())
            print()
            summary.append((case.name, n, t, dm_ratio, t_ratio, vs, flop_ratio))

    print("Markdown table (paste into BENCHMARKS.md):")
    print()
    print(f"dlmath source: see the header above. Forward = the same function without differentiation "
          f"(dlmath: Tensors that do not require grad, no tape; torch: no_grad). Target for dlmath's jvp / forward: "
          f"about {TARGET_JVP_OVER_FORWARD:.0f}x.")
    print()
    print_table(["case", "threads", "dlmath jvp ms", "dlmath fwd ms", "dlmath jvp/fwd", "torch jvp ms",
                 "torch fwd ms", "torch jvp/fwd", "dlmath/torch (jvp)", "jvp/fwd flops (dlmath)"],
                [(name, n, f"{t['dlmath jvp'] * 1e3:.3f}", f"{t['dlmath forward'] * 1e3:.3f}", f"{dr:.2f}",
                  f"{t['torch jvp'] * 1e3:.3f}", f"{t['torch forward'] * 1e3:.3f}", f"{tr:.2f}", f"{vs:.2f}",
                  f"{fr:.2f}")
                 for name, n, t, dr, tr, vs, fr in summary])


if __name__ == "__main__":
    main()
