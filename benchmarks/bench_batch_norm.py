"""Batch norm forward + backward: dlmath's fused ``batch_norm_train`` primitive (hand-derived backward)
against ``batch_norm_composed`` (the formula in dm ops, autodiff'd) and PyTorch CPU eager, same threads;
and layer norm (the fused ``layer_norm_affine``) against PyTorch.

Batch norm: input (32, 16, 32, 32) (a ResNet stage's activations), affine, training mode. Layer norm:
(32, 128, 256) over the last axis (a transformer's activations). The backward seeds a fixed random
cotangent. Prints medians and the ratios.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_batch_norm.py --threads 1
"""

from __future__ import annotations

import numpy as np
import torch

import dlmath as dm
from _harness import (
    apply_guard_args,
    common_parser,
    med,
    print_machine_info,
    print_table,
    thread_limit,
    time_interleaved,
)
from dlmath.nn import functional as F


def contenders(dtype: type) -> dict[str, object]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 16, 32, 32)).astype(dtype)
    w, b = rng.uniform(0.5, 2, 16).astype(dtype), rng.standard_normal(16).astype(dtype)
    ct = rng.standard_normal(x.shape).astype(dtype)
    tct = torch.from_numpy(ct)

    def dlmath_run(fn):
        def run() -> None:
            xt, wt, bt = (dm.tensor(a, requires_grad=True) for a in (x, w, b))
            fn(xt, None, None, wt, bt, training=True).backward(ct)
        return run

    def torch_run() -> None:
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True).backward(tct)

    return {"fused": dlmath_run(F.batch_norm), "composed": dlmath_run(F.batch_norm_composed), "torch": torch_run}


def layer_norm_contenders(dtype: type) -> dict[str, object]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 128, 256)).astype(dtype)
    w, b = rng.uniform(0.5, 2, 256).astype(dtype), rng.standard_normal(256).astype(dtype)
    ct = rng.standard_normal(x.shape).astype(dtype)
    tct = torch.from_numpy(ct)

    def dlmath_run() -> None:
        xt, wt, bt = (dm.tensor(a, requires_grad=True) for a in (x, w, b))
        F.layer_norm(xt, (256,), wt, bt).backward(ct)

    def torch_run() -> None:
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        torch.nn.functional.layer_norm(xt, (256,), wt, bt).backward(tct)

    return {"dlmath": dlmath_run, "torch": torch_run}


def main() -> None:
    args = common_parser(__doc__.splitlines()[0], repeat=40, warmup=3).parse_args()
    apply_guard_args(args)
    print_machine_info("batch norm forward+backward", args.threads)
    rows = []
    for threads in args.threads:
        with thread_limit(threads):
            for dtype in (np.float32, np.float64):
                t = time_interleaved(contenders(dtype), args.repeat, args.warmup)
                m = {k: med(v["total"]) for k, v in t.items()}
                rows.append([threads, np.dtype(dtype).name, f"{m['fused'] * 1e3:.2f}", f"{m['composed'] * 1e3:.2f}",
                             f"{m['torch'] * 1e3:.2f}", f"{m['fused'] / m['torch']:.2f}x",
                             f"{m['composed'] / m['fused']:.2f}x"])
    print_table(["threads", "dtype", "fused ms", "composed ms", "torch ms", "fused/torch", "composed/fused"], rows)
    rows = []
    for threads in args.threads:
        with thread_limit(threads):
            for dtype in (np.float32, np.float64):
                t = time_interleaved(layer_norm_contenders(dtype), args.repeat, args.warmup)
                m = {k: med(v["total"]) for k, v in t.items()}
                rows.append([threads, np.dtype(dtype).name, f"{m['dlmath'] * 1e3:.2f}", f"{m['torch'] * 1e3:.2f}",
                             f"{m['dlmath'] / m['torch']:.2f}x"])
    print("\nlayer norm (32, 128, 256), forward + backward")
    print_table(["threads", "dtype", "dlmath ms", "torch ms", "dlmath/torch"], rows)


if __name__ == "__main__":
    main()
