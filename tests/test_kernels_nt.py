"""dlmath.kernels against neural-tangents 0.6.5 (JAX), run in its own venv in a subprocess.

neural-tangents is never a dependency of dlmath: the tests run ``tests/_nt_oracle.py`` with the interpreter named
by DLMATH_NT_PYTHON (default /work/nt-venv/bin/python) and are skipped, with the reason shown, where it is absent.
Agreement: 1e-6 relative in float64 (the same formulas in a different order of operations agree to ~1e-14).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dlmath.kernels as K

NT_PYTHON = os.environ.get("DLMATH_NT_PYTHON", "/work/nt-venv/bin/python")
ORACLE = Path(__file__).with_name("_nt_oracle.py")
pytestmark = pytest.mark.skipif(not os.path.exists(NT_PYTHON),
                                reason=f"neural-tangents venv not found at {NT_PYTHON} (set DLMATH_NT_PYTHON)")


def build(s: list[Any]) -> K.Layer:
    """The dlmath architecture of a spec (the same spec `_nt_oracle.build` reads)."""
    kind, args = s[0], s[1:]
    if kind == "serial":
        return K.serial(*map(build, args))
    if kind == "parallel":
        return K.parallel(*map(build, args))
    if kind == "residual":
        return K.residual(build(args[0]))
    if kind == "Dense":
        out, w, b, p = args
        return K.Dense(out, w, b, p)
    if kind == "FanOut":
        return K.FanOut(args[0])
    if kind == "LeakyRelu":
        return K.LeakyRelu(args[0])
    if kind == "ABRelu":
        return K.ABRelu(*args)
    if kind == "Dropout":
        return K.Dropout(args[0])
    if kind == "Conv":
        out, filt, padding, w, b = args
        return K.Conv(out, filt, padding, w, b)
    if kind == "AvgPool":
        return K.AvgPool(*args)
    return getattr(K, kind)()


SPECS = {
    "relu-depth5": ["serial", *[["Dense", 64, 1.5, 0.05, "ntk"], ["Relu"]] * 5, ["Dense", 1, 1.5, 0.05, "ntk"]],
    "erf-gelu-sin-standard": ["serial", ["Dense", 32, 1.2, 0.1, "standard"], ["Erf"],
                              ["Dense", 32, 1.1, None, "standard"], ["Gelu"], ["Dense", 32, 0.9, 0.3, "ntk"],
                              ["Sin"], ["Dense", 1, 1.0, 0.2, "standard"]],
    "leaky-abs-abrelu": ["serial", ["Dense", 16, 2.0, 0.0, "ntk"], ["LeakyRelu", 0.1], ["Dense", 16, 1.0, 0.5, "ntk"],
                         ["Abs"], ["Dense", 16, 4.0, 0.1, "ntk"], ["ABRelu", -0.3, 1.2], ["Dense", 1, 1.0, 0.0, "ntk"]],
    "residual-fanout-concat": [
        "serial", ["Dense", 64, 1.5, 0.05, "ntk"], ["Relu"], ["Dense", 64, 1.5, 0.05, "ntk"],
        ["residual", ["serial", ["Gelu"], ["Dense", 64, 1.2, 0.1, "ntk"]]], ["Erf"],
        ["Dense", 8, 1.3, 0.2, "standard"], ["FanOut", 2],
        ["parallel", ["serial", ["Sin"], ["Dense", 6, 1.0, 0.0, "ntk"]],
         ["serial", ["LeakyRelu", 0.2], ["Dense", 6, 1.1, 0.3, "ntk"]]],
        ["FanInSum"], ["Dense", 9, 1.4, 0.1, "ntk"], ["Abs"], ["Dense", 1, 1.0, 0.1, "standard"]],
    "dense-layernorm-relu": ["serial", ["Dense", 32, 1.7, 0.3, "ntk"], ["LayerNorm"], ["Relu"],
                             ["Dense", 32, 1.2, 0.1, "standard"], ["LayerNorm"], ["Erf"],
                             ["Dense", 1, 1.0, 0.1, "ntk"]],
    "dropout-flatten": ["serial", ["Flatten"], ["Dense", 32, 1.5, 0.1, "ntk"], ["Relu"], ["Dropout", 0.3],
                        ["Dense", 32, 1.3, 0.2, "ntk"], ["Gelu"], ["Dropout", 0.5], ["Dense", 1, 1.0, 0.0, "ntk"]],
}
CONV = ["Conv", 8, [3], "SAME", 1.5, 0.1]
SPATIAL_SPECS = {  # channels-last images: 1-d (N, 7, 3) and 2-d (N, 5, 4, 2)
    "conv1d-relu-conv-flatten-dense": ["serial", CONV, ["Relu"], ["Conv", 8, [2], "VALID", 1.3, 0.2], ["Flatten"],
                                       ["Dense", 1, 1.0, 0.1, "ntk"]],
    "conv2d-relu-conv-flatten-dense": ["serial", ["Conv", 8, [3, 2], "SAME", 1.5, 0.1], ["Relu"],
                                       ["Conv", 8, [2, 3], "VALID", 1.3, 0.2], ["Relu"], ["Flatten"],
                                       ["Dense", 1, 1.0, 0.1, "ntk"]],
    "conv2d-erf-avgpool-globalavgpool": ["serial", ["Conv", 8, [3, 3], "SAME", 1.2, 0.3], ["Erf"],
                                         ["AvgPool", [2, 2], "SAME"], ["Conv", 8, [2, 2], "VALID", 1.4, None],
                                         ["Gelu"], ["GlobalAvgPool"], ["Dense", 1, 1.0, 0.0, "ntk"]],
    "conv1d-layernorm-dropout-avgpool": ["serial", CONV, ["LayerNorm"], ["Relu"], ["Dropout", 0.3],
                                         ["AvgPool", [3], "VALID"], CONV, ["Relu"], ["GlobalAvgPool"],
                                         ["Dense", 1, 1.0, 0.1, "ntk"]],
}
SPATIAL_X = {"conv1d": (np.random.default_rng(2).standard_normal((4, 7, 3)),
                        np.random.default_rng(3).standard_normal((3, 7, 3))),
             "conv2d": (np.random.default_rng(4).standard_normal((3, 5, 4, 2)),
                        np.random.default_rng(5).standard_normal((2, 5, 4, 2)))}


def _spatial_x(name: str) -> tuple[np.ndarray, np.ndarray]:
    return SPATIAL_X[name.split("-")[0]]


X1 = np.random.default_rng(0).standard_normal((6, 5))
X1[1] = 0.0          # a zero-norm input
X1[2] = 2 * X1[0]    # a parallel pair
X2 = np.random.default_rng(1).standard_normal((4, 5))


@pytest.fixture(scope="module")
def nt_kernels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Every spec's kernels from neural-tangents, in one subprocess (importing JAX takes seconds)."""
    tmp = tmp_path_factory.mktemp("nt")
    xs = {f"{w}/{name}": x for name in SPATIAL_SPECS for w, x in zip(("x1", "x2"), _spatial_x(name), strict=True)}
    np.savez(tmp / "in.npz", x1=X1, x2=X2, specs=json.dumps({**SPECS, **SPATIAL_SPECS}), **xs)
    run = subprocess.run([NT_PYTHON, str(ORACLE), str(tmp / "in.npz"), str(tmp / "out.npz")],
                         capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(np.load(tmp / "out.npz"))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_analytic_kernels_equal_neural_tangents(name: str, nt_kernels: dict[str, np.ndarray]) -> None:
    ours = build(SPECS[name]).kernel(X1, X2, dtype=np.float64)
    for key in ("nngp", "ntk"):
        a, b = getattr(ours, key), nt_kernels[f"{key}/{name}"]
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(b)), (name, key, np.max(np.abs(a - b)))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_analytic_kernels_of_a_batch_with_itself_equal_neural_tangents(name: str, nt_kernels: dict[str, np.ndarray]
                                                                       ) -> None:
    """x2=None: the diagonal pairs each sample with itself (where Dropout's kernel differs), computed whole and in
    blocks (whose diagonal blocks alone hold such pairs)."""
    for batch_size in (None, 4):
        ours = build(SPECS[name]).kernel(X1, None, dtype=np.float64, batch_size=batch_size, threads=1)
        for key in ("nngp", "ntk"):
            a, b = getattr(ours, key), nt_kernels[f"{key}11/{name}"]
            assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(b)), (name, key, batch_size)


@pytest.mark.parametrize("name", sorted(SPATIAL_SPECS))
def test_convolutional_kernels_equal_neural_tangents(name: str, nt_kernels: dict[str, np.ndarray]) -> None:
    """Conv (1-d, 2-d, SAME/VALID), AvgPool, GlobalAvgPool, Flatten, and LayerNorm/Dropout on images (Novak et al.
    2019; Arora et al. 2019): x1 against x2, and x1 with itself whole and in blocks."""
    x1, x2 = _spatial_x(name)
    arch = build(SPATIAL_SPECS[name])
    runs = [("", arch.kernel(x1, x2, dtype=np.float64)), ("11", arch.kernel(x1, dtype=np.float64)),
            ("11", arch.kernel(x1, dtype=np.float64, batch_size=2, threads=1))]
    for suffix, ours in runs:
        for key in ("nngp", "ntk"):
            a, b = getattr(ours, key), nt_kernels[f"{key}{suffix}/{name}"]
            assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(b)), (name, key, suffix, np.max(np.abs(a - b)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
