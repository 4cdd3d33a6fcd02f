"""``dm.linalg`` against ``torch.linalg``: forward + backward of eigh, cholesky + solve and svd at n = 512 (float64).

Each case builds a scalar loss from every output (random cotangents, so every VJP rule runs) and times one
forward and backward pass: dlmath with ``Tensor.backward``, PyTorch with ``torch.autograd``. Both run under the
same thread count (``torch.set_num_threads`` and threadpoolctl for NumPy's pools), interleaved by the shared
harness. The target is dlmath / torch <= 1.5. A correctness line per case compares the gradients. dlmath's
factorization cache is cleared before each call (a fresh matrix each step, as in training).

Where the time goes (measured on the 2-core development machine): PyTorch links MKL, NumPy and SciPy link
OpenBLAS. For one 512 x 512 right-hand side OpenBLAS's triangular solve takes ~6 ms against MKL's ~3.5 ms and
LU + solve ~18 ms against ~8 ms, so cholesky + solve (six triangular solves over forward and backward) is bound
by the BLAS, not by the engine. With more than one thread, NumPy's and SciPy's two OpenBLAS pools (solve and
the triangular solves use SciPy's) also compete for the cores.

Run (the environment's OPENBLAS_* variables force a slow OpenBLAS kernel; unset them):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_linalg.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_linalg.py --threads 4 --repeat 10
"""

from __future__ import annotations

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
    thread_limit,
    time_interleaved,
)

TARGET = 1.5  # dlmath forward+backward / torch forward+backward


def make_data(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n))
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    w = np.linspace(1.0, 2.0 * n, n)
    sym = (q * w) @ q.T
    return {
        "a": a, "spd": a @ a.T + n * np.eye(n), "sym": (sym + sym.T) / 2, "b": rng.standard_normal((n, n)),
        "c1": rng.standard_normal(n), "c2": rng.standard_normal((n, n)), "c3": rng.standard_normal((n, n)),
    }


def losses(d: dict[str, np.ndarray], lib: Any) -> dict[str, tuple[Callable[..., Any], tuple[str, ...]]]:
    """The same loss code for both engines: lib is dm.linalg or torch.linalg; inputs named by keys of d."""
    is_dm = lib is dm.linalg
    c1, c2, c3 = (d[k] if is_dm else torch.from_numpy(d[k]) for k in ("c1", "c2", "c3"))

    def eigh(a: Any) -> Any:
        w, v = lib.eigh(a)
        return (w * c1).sum() + (v * c2).sum()

    def cholesky_solve(a: Any, b: Any) -> Any:
        return (lib.cholesky(a) * c2).sum() + (lib.solve(a, b) * c3).sum()

    def svd(a: Any) -> Any:
        u, s, vh = lib.svd(a, full_matrices=False)
        return (u * c2).sum() + (s * c1).sum() + (vh * c3).sum()

    return {"eigh": (eigh, ("sym",)), "cholesky + solve": (cholesky_solve, ("spd", "b")), "svd": (svd, ("a",))}


def runner(loss: Callable[..., Any], arrays: list[np.ndarray], engine: str) -> Callable[[], list[np.ndarray]]:
    def run() -> list[np.ndarray]:
        if engine == "dlmath":
            # a fresh matrix each call, as in a training loop: no factorization cached from the previous call
            dm.linalg._cache.entries.clear()
            xs = [dm.tensor(x, requires_grad=True) for x in arrays]
            loss(*xs).backward()
            return [x.grad.data for x in xs]
        ts = [torch.tensor(x, requires_grad=True) for x in arrays]
        loss(*ts).backward()
        return [t.grad.numpy() for t in ts]
    return run


def main() -> None:
    p = common_parser(__doc__.splitlines()[0], repeat=10, warmup=2)
    p.add_argument("--n", type=int, default=512, help="matrix size (default 512)")
    args = p.parse_args()
    apply_guard_args(args)
    print_machine_info(f"dm.linalg vs torch.linalg, n = {args.n}, float64, forward + backward", args.threads)
    d = make_data(args.n)
    dm_losses, t_losses = losses(d, dm.linalg), losses(d, torch.linalg)
    summary = []
    for name, (dm_loss, keys) in dm_losses.items():
        arrays = [d[k] for k in keys]
        fns = {"dlmath": runner(dm_loss, arrays, "dlmath"), "torch": runner(t_losses[name][0], arrays, "torch")}
        got, ref = fns["dlmath"](), fns["torch"]()
        err = max(float(np.max(np.abs(g - r)) / max(float(np.max(np.abs(r))), 1e-300)) for g, r in zip(got, ref,
                                                                                                       strict=True))
        print(f"== {name}: forward + backward, n = {args.n} ==")
        print(f"correctness: max |grad (dlmath) - grad (torch)| / max |grad (torch)| = {err:.1e}")
        for n in args.threads:
            reset_guard_stats()
            # blocks of 3 calls after 0.2 s of untimed calls: each library's thread pools settle first (_harness)
            block = args.block if args.block > 0 else 3
            settle = args.settle if args.settle >= 0 else 0.2
            with thread_limit(n), LoadMonitor() as load:
                times = time_interleaved({k: (lambda f=f: f() and None) for k, f in fns.items()}, args.repeat,
                                         args.warmup, block, settle)
            t = {k: med(v["total"]) for k, v in times.items()}
            rows = [(k, f"{t[k] * 1e3:.1f}", f"{np.percentile(v['total'], 25) * 1e3:.1f}-"
                     f"{np.percentile(v['total'], 75) * 1e3:.1f}") for k, v in times.items()]
            print(f"-- {n} thread(s): median of {args.repeat} calls after {args.warmup} warm-up calls --")
            print_table(["engine", "median ms", "IQR ms"], rows)
            ratio = t["dlmath"] / t["torch"]
            print(f"dlmath / torch = {ratio:.2f} (target <= {TARGET})")
            print(load.describe())
            print(guard_report())
            print()
            summary.append((name, n, t["dlmath"], t["torch"], ratio))
    print("Markdown table:")
    print()
    print_table([f"case (n = {args.n}, float64, fwd + bwd)", "threads", "dlmath ms", "torch ms", "dlmath / torch"],
                [(c, str(n), f"{a * 1e3:.1f}", f"{b * 1e3:.1f}", f"{r:.2f}") for c, n, a, b, r in summary])


if __name__ == "__main__":
    main()
