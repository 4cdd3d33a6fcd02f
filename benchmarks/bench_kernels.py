"""dlmath.kernels against neural-tangents 0.6.5 (JAX, CPU) and torch.func: analytic and empirical NTKs.

(a) Analytic NNGP + NTK of a depth-5 ReLU network (Dense(512, W_std=1.5, b_std=0.05) + Relu, five times, and a
    Dense(1) readout) on N = 1000 and N = 4000 inputs of dimension 64, float32 and float64. neural-tangents'
    kernel_fn is jitted; its first call (compilation) is reported separately.
(b) Empirical NTK (full, 256 x 256) of a 3-layer width-512 ReLU MLP on 256 inputs of dimension 64, float32:
    dlmath's structured form against neural-tangents' implementation 3 (structured derivatives) and a
    torch.func jacrev + contraction.

neural-tangents runs in its own venv (DLMATH_NT_PYTHON, default /work/nt-venv/bin/python) in a subprocess
(benchmarks/_nt_side.py); the ratio is dlmath's median over theirs, both measured in the same run. Thread counts:
NumPy's pools and torch are limited to --threads; JAX uses its default CPU client (all cores).

    python benchmarks/bench_kernels.py [--threads 2] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import dlmath.kernels as K

NT_PYTHON = os.environ.get("DLMATH_NT_PYTHON", "/work/nt-venv/bin/python")


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def analytic_arch() -> K.Layer:
    layers: list[K.Layer] = []
    for _ in range(5):
        layers += [K.Dense(512, 1.5, 0.05), K.Relu()]
    return K.serial(*layers, K.Dense(1, 1.5, 0.05))


def torch_empirical(x: np.ndarray, params: list[Any]) -> Callable[[], Any]:
    import torch
    from torch.func import functional_call, jacrev

    net = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 1))
    p = {k: v.detach() for k, v in net.named_parameters()}
    xt = torch.as_tensor(x)

    def ntk() -> Any:
        jac = jacrev(lambda q: functional_call(net, q, (xt,)))(p)
        flat = torch.cat([j.reshape(x.shape[0], -1) for j in jac.values()], dim=1)
        return flat @ flat.T
    return ntk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--ns", type=int, nargs="+", default=[1000, 4000])
    args = ap.parse_args()
    import threadpoolctl
    import torch
    torch.set_num_threads(args.threads)
    rows: list[tuple[str, float, float | None, float | None]] = []
    have_nt = os.path.exists(NT_PYTHON)
    nt: dict[str, Any] = {}
    if have_nt:
        cfg = json.dumps({"ns": args.ns, "dtypes": ["float32", "float64"], "repeat": args.repeat})
        run = subprocess.run([NT_PYTHON, str(Path(__file__).with_name("_nt_side.py")), cfg], capture_output=True,
                             text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
        if run.returncode == 0:
            nt = json.loads(run.stdout.strip().splitlines()[-1])
        else:
            print("neural-tangents side failed:\n" + run.stderr[-2000:], file=sys.stderr)
    with threadpoolctl.threadpool_limits(args.threads):
        arch = analytic_arch()
        for n in args.ns:
            for dt in ("float32", "float64"):
                x = np.random.default_rng(0).standard_normal((n, 64)).astype(dt)
                ours = median_time(lambda x=x: arch.kernel(x, threads=args.threads), args.repeat)
                theirs = nt.get(f"analytic/{n}/{dt}")
                rows.append((f"analytic NNGP+NTK N={n} {dt}", ours,
                             statistics.median(theirs["times"]) if theirs else None,
                             theirs["compile_s"] if theirs else None))
        mlp = K.serial(K.Dense(512), K.Relu(), K.Dense(512), K.Relu(), K.Dense(1))
        x = np.random.default_rng(1).standard_normal((256, 64)).astype(np.float32)
        params = mlp.init(0, x.shape)
        params = [tuple(None if a is None else np.asarray(a, np.float32) for a in p) if p else p for p in params]
        ours = median_time(lambda: K.empirical_ntk(mlp, params, x), args.repeat)
        theirs = nt.get("empirical/impl3")
        rows.append(("empirical NTK 3-layer w512, 256 inputs: vs nt impl 3", ours,
                     statistics.median(theirs["times"]) if theirs else None, theirs["compile_s"] if theirs else None))
        t_torch = median_time(torch_empirical(x, params), max(2, args.repeat // 2))
        rows.append(("empirical NTK 3-layer w512, 256 inputs: vs torch.func jacrev", ours, t_torch, None))
    print(f"dlmath.kernels benchmark (measured under load: {os.getloadavg()[0]:.1f} load average), "
          f"threads={args.threads}, neural-tangents {'found' if nt else 'absent'}")
    print("| case | dlmath (s) | other (s) | other / dlmath | other's compile (s) |")
    print("| --- | --- | --- | --- | --- |")
    for name, ours, other, compile_s in rows:
        ratio = f"{other / ours:.2f}x" if other else "n/a"
        print(f"| {name} | {ours:.4f} | {other if other is None else f'{other:.4f}'} | {ratio} | "
              f"{'' if compile_s is None else f'{compile_s:.2f}'} |")


if __name__ == "__main__":
    main()
