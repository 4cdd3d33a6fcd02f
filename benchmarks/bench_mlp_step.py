"""One SGD step of an MLP 784-512-512-10 (ReLU, softmax cross-entropy, batch 128, float32):
dlmath against PyTorch CPU eager, a hand-written NumPy backprop and HIPS autograd.

Target (issue): dlmath at most 1.25x PyTorch.

Run (the environment's OPENBLAS_* variables force a slow OpenBLAS kernel; unset them):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mlp_step.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mlp_step.py --threads 1 --repeat 500
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import torch

import _mlp
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

TARGET = 1.25


def raw_matmul_times(repeat: int, warmup: int, block: int, settle: float) -> dict[str, float]:
    """Median seconds of the 8 matrix products of one step (3 forward, 5 backward), NumPy vs torch."""
    params = _mlp.init_params()
    x, _ = _mlp.make_batch()
    rng = np.random.default_rng(2)
    b = _mlp.BATCH
    h1 = rng.standard_normal((b, 512), dtype=np.float32)
    h2 = rng.standard_normal((b, 512), dtype=np.float32)
    dz = rng.standard_normal((b, 10), dtype=np.float32)
    w1, w2, w3 = params[0], params[2], params[4]
    pairs = [(x, w1), (h1, w2), (h2, w3),                        # forward
             (h2.T, dz), (dz, w3.T), (h1.T, h2), (h2, w2.T), (x.T, h1)]  # backward (as the engine forms them)
    tpairs = [(torch.from_numpy(np.ascontiguousarray(a.T)).T if not a.flags.c_contiguous else torch.from_numpy(a),
               torch.from_numpy(np.ascontiguousarray(c.T)).T if not c.flags.c_contiguous else torch.from_numpy(c))
              for a, c in pairs]

    def np_all() -> None:
        for a, c in pairs:
            np.matmul(a, c)

    def torch_all() -> None:
        for a, c in tpairs:
            torch.matmul(a, c)

    t = time_interleaved({"numpy": np_all, "torch": torch_all}, repeat, warmup, block, settle)
    return {k: med(v["total"]) for k, v in t.items()}


def main() -> None:
    p = common_parser(__doc__.splitlines()[0], repeat=300, warmup=20)
    p.add_argument("--no-check", action="store_true", help="skip the one-step correctness check")
    args = p.parse_args()
    apply_guard_args(args)
    print_machine_info("MLP SGD step, 784-512-512-10, batch 128, float32", args.threads,
                       {"autograd": importlib.metadata.version("autograd")})

    if not args.no_check:
        print("Correctness: one step from the same weights and batch on every engine, "
              "compared with the hand-written NumPy step")
        rows = _mlp.check_one_step()
        print_table(["engine", "loss", "|loss - numpy|", "max |W' - W'_numpy| (all params)"],
                    [(n, f"{loss:.7f}", f"{dl:.2e}", f"{dw:.2e}") for n, loss, dl, dw in rows])
        print(f"dlmath gradient dtypes: {sorted(set(_mlp.dlmath_grad_dtypes(_mlp.init_params(), *_mlp.make_batch())))}")
        print()

    flops = _mlp.flops_per_step(_mlp.SIZES, _mlp.BATCH)
    verdicts = []
    for n in args.threads:
        block, settle = schedule(n, args.block, args.settle)
        reset_guard_stats()
        with thread_limit(n), LoadMonitor() as load:
            params = _mlp.init_params()
            x, labels = _mlp.make_batch()
            steps = {name: make(params, x, labels) for name, make in _mlp.ENGINES.items()}
            times = time_interleaved(steps, args.repeat, args.warmup, block, settle)
            mm = raw_matmul_times(args.repeat, args.warmup, block, settle)
        t = {name: med(v["total"]) for name, v in times.items()}
        dl = t["dlmath"]
        print(f"-- {n} thread(s): median of {args.repeat} steps after {args.warmup} warm-up steps each, "
              f"blocks of {block}, settle {settle} s (matmul flops/step {flops / 1e6:.0f} M) --")
        rows = []
        for name, v in times.items():
            q = np.percentile(v["total"], [25, 75]) * 1e3
            rows.append((name, f"{t[name] * 1e3:.3f}", f"{q[0]:.3f}-{q[1]:.3f}", f"{flops / t[name] / 1e9:.1f}",
                         "1.00" if name == "dlmath" else f"{dl / t[name]:.2f}"))
        print_table(["engine", "median ms", "IQR ms", "GFLOP/s", "dlmath / this"], rows)
        print(f"raw matrix products of one step (8 matmuls, same shapes/layouts): NumPy {mm['numpy'] * 1e3:.3f} ms, "
              f"torch {mm['torch'] * 1e3:.3f} ms (NumPy/torch {mm['numpy'] / mm['torch']:.2f})")
        print(f"non-matmul time per step: dlmath {(dl - mm['numpy']) * 1e3:.3f} ms, "
              f"numpy by hand {(t['numpy by hand'] - mm['numpy']) * 1e3:.3f} ms, "
              f"torch {(t['torch (same ops)'] - mm['torch']) * 1e3:.3f} ms")
        t_norm = t["torch (same ops)"] - mm["torch"] + mm["numpy"]
        print(f"BLAS-neutral view: torch (same ops) with its matmuls at NumPy's speed would take "
              f"~{t_norm * 1e3:.3f} ms; dlmath / that = {dl / t_norm:.2f}")
        print(load.describe())
        print(guard_report())
        worst = max(dl / t["torch (same ops)"], dl / t["torch (F.linear+cross_entropy)"])
        ok = worst <= TARGET
        verdicts.append((n, worst, ok))
        print()
    for n, worst, ok in verdicts:
        print(f"TARGET dlmath <= {TARGET}x PyTorch, {n} thread(s): dlmath / fastest torch variant = {worst:.2f} -> "
              f"{'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
