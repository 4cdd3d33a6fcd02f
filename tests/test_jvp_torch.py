"""Forward mode (``dm.jvp``) of every primitive against ``torch.func.jvp`` (float64).

For each primitive of ``dlmath.autodiff.ops`` (every module-level ``Primitive``, private
ones included) the same primals and tangents go through ``dm.jvp`` and ``torch.func.jvp``;
the primal outputs and the tangent outputs are compared (shape, dtype, values). Each case
also checks the transpose identity <J v, u> = <v, J^T u> between ``dm.jvp`` and ``dm.vjp``
for a random cotangent u, so forward and reverse mode must agree with each other as well as
with PyTorch. Hypothesis draws the shapes: broadcasting for binary ops, axes and keepdims for
reductions, basic / integer-array / boolean / mixed indices for getitem and scatter_add.

The tests hold for any implementation of ``dm.jvp`` (today the double-VJP trick, later true
forward mode with per-primitive JVP rules). ``test_every_primitive_is_covered`` fails when a
primitive is added to ops.py without a case here; once the forward-mode engine exposes
``ops.primitives_without_jvp()``, ``test_every_primitive_has_a_jvp_rule`` checks it is empty.

Points where dlmath deliberately differs from PyTorch (docs/engine.md) are kept out of the
drawn data: the exponent of ``x ** y`` is only differentiated at x > 0 (dlmath takes
d/dy = 0 at x <= 0, PyTorch gives NaN); ``max``/``min``/``maximum``/``minimum`` see
continuous random data, so no ties; ``softplus`` sees |x| <= 4 (PyTorch switches to x
above 20); ``std`` is only taken over two or more distinct values (non-zero variance);
``abs``/``relu``/``clip`` never see their kinks exactly (continuous data).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.autograd.functional as taf
import torch.func as tfunc
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dlmath as dm
import dlmath.nn
from _cases import EINSUM_CASES, shape_and_axis
from dlmath.autodiff import ops, special
from dlmath.autodiff.core import Primitive

RTOL = 1e-10
ATOL = 1e-12
HYP = settings(max_examples=30, deadline=None)
FEW = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**32 - 1)

# torch.func's internals call the deprecated torch.jit.script; not our concern
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


builtins_max = max


TABLES = (ops, special)  # the modules that define primitives


def all_primitives() -> dict[str, Primitive]:
    """Every module-level Primitive of the tables, by its attribute name (``_where``, ``add``...); a name
    that re-exports a primitive of an earlier table (``special.expit`` is ``ops.sigmoid``) is not counted twice."""
    found: dict[str, Primitive] = {}
    seen: set[int] = set()
    for module in TABLES:
        for name, v in vars(module).items():
            if isinstance(v, Primitive) and id(v) not in seen:
                seen.add(id(v))
                found[name] = v
    return found


# ----- the comparison harness -------------------------------------------------------------------------------------
def _np_dtype(t: torch.Tensor) -> np.dtype:
    return torch.empty(0, dtype=t.dtype).numpy().dtype


def _tangent(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    return np.asarray(rng.standard_normal(np.shape(p))).astype(np.asarray(p).dtype)


def _close(actual, desired, rtol, atol, what):
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != torch's {desired.shape}"
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, equal_nan=False, err_msg=what)


def check_jvp(prim: Primitive | None, dm_fn: Callable[..., Any], torch_fn: Callable[..., Any], *primals: Any,
              seed: int = 0, rtol: float = RTOL, atol: float = ATOL, tangents: tuple[Any, ...] | None = None,
              transpose_check: bool = True) -> tuple[Any, Any]:
    """dm.jvp(dm_fn) against torch.func.jvp(torch_fn) on the same primals and random tangents,
    then the transpose identity <J v, u> = <v, J^T u> between dm.jvp and dm.vjp.

    ``prim``: the primitive under test; the check asserts that dm_fn really runs it."""
    rng = np.random.default_rng(seed + 1234)
    given_primals = primals  # dm sees them as given (Python floats stay floats); torch gets arrays
    primals = tuple(np.asarray(p) for p in primals)
    if tangents is None:
        tangents = tuple(_tangent(rng, p) for p in primals)
    with warnings.catch_warnings():  # constant functions run no dlmath op: count_flops would warn
        warnings.simplefilter("ignore", RuntimeWarning)
        with dm.count_flops() as counter:
            out, jv = dm.jvp(dm_fn, given_primals, tangents)
    if prim is not None:
        ran = {name for _, name in counter.calls}
        assert prim.name in ran, f"the case meant for primitive '{prim.name}' did not run it (ran: {sorted(ran)})"
    tout, tjv = tfunc.jvp(torch_fn, tuple(torch.from_numpy(np.array(p)) for p in primals),
                          tuple(torch.from_numpy(np.array(t)) for t in tangents))
    out, jv = np.asarray(out), np.asarray(jv)
    assert out.dtype == _np_dtype(tout), ("primal output dtype", out.dtype, tout.dtype)
    assert jv.dtype == _np_dtype(tjv), ("tangent output dtype", jv.dtype, tjv.dtype)
    _close(out, tout.detach().numpy(), rtol, atol, "primal output")
    _close(jv, tjv.detach().numpy(), rtol, atol, "tangent output J v")
    if transpose_check:
        check_transpose(dm_fn, primals, tangents, jv, seed=seed, eps=1e-12 if rtol <= RTOL else rtol)
    return out, jv


def check_transpose(dm_fn: Callable[..., Any], primals: tuple[np.ndarray, ...], tangents: tuple[Any, ...],
                    jv: np.ndarray, seed: int = 0, eps: float = 1e-12) -> None:
    """<J v, u> = sum_i <v_i, (J^T u)_i> for a random cotangent u (dm.jvp against dm.vjp)."""
    rng = np.random.default_rng(seed + 4321)
    out, vjp_fn = dm.vjp(dm_fn, *primals)
    out = np.asarray(out)
    u = np.asarray(rng.standard_normal(out.shape)).astype(out.dtype)
    cts = vjp_fn(u)
    assert len(cts) == len(primals)
    lhs = float(np.sum(np.asarray(jv, dtype=np.float64) * u))
    terms = [np.asarray(v, dtype=np.float64) * np.asarray(c, dtype=np.float64)
             for v, c in zip(tangents, cts, strict=True)]
    rhs = float(sum(np.sum(t) for t in terms))
    # the two sides sum the same products in different orders: scale the tolerance by their magnitude
    low = any(np.asarray(a).dtype == np.float32 for a in (out, *primals))
    eps = 1e-5 if low else builtins_max(1e-12, eps)
    scale = float(np.sum(np.abs(np.asarray(jv, dtype=np.float64) * u))) + float(sum(np.sum(np.abs(t)) for t in terms))
    assert abs(lhs - rhs) <= 10 * eps * (1.0 + scale), f"<J v, u> = {lhs!r} but <v, J^T u> = {rhs!r}"


def data(rng: np.random.Generator, shape, domain: str = "any") -> np.ndarray:
    shape = tuple(shape)
    if domain == "any":
        return np.asarray(rng.standard_normal(shape))
    if domain == "positive":
        return np.asarray(rng.uniform(0.5, 2.0, shape))
    if domain == "nonzero":
        return np.asarray(rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape))
    if domain == "gt-1":
        return np.asarray(rng.uniform(-0.6, 2.0, shape))
    if domain == "moderate":
        return np.asarray(rng.uniform(-4.0, 4.0, shape))
    if domain == "zeros":  # about a third exact zeros (prod's products-of-the-others path)
        return np.asarray(rng.standard_normal(shape) * (rng.uniform(size=shape) > 0.35))
    raise ValueError(domain)


# ----- the registry: which primitive each table exercises ---------------------------------------------------------
@dataclass(frozen=True)
class Case:
    prim: Primitive
    dm_fn: Callable[..., Any]
    torch_fn: Callable[..., Any]
    domains: tuple[str, ...] = ("any",)


UNARY = {
    "negative": Case(ops.negative, dm.negative, torch.neg),
    "neg-operator": Case(ops.negative, lambda x: -x, lambda t: -t),
    "abs": Case(ops.abs, dm.abs, torch.abs, ("nonzero",)),
    "exp": Case(ops.exp, dm.exp, torch.exp),
    "log": Case(ops.log, dm.log, torch.log, ("positive",)),
    "log1p": Case(ops.log1p, dm.log1p, torch.log1p, ("gt-1",)),
    "sqrt": Case(ops.sqrt, dm.sqrt, torch.sqrt, ("positive",)),
    "sin": Case(ops.sin, dm.sin, torch.sin),
    "cos": Case(ops.cos, dm.cos, torch.cos),
    "tanh": Case(ops.tanh, dm.tanh, torch.tanh),
    "sigmoid": Case(ops.sigmoid, dm.sigmoid, torch.sigmoid, ("moderate",)),
    "relu": Case(ops.relu, dm.relu, torch.relu, ("nonzero",)),
    "softplus": Case(ops.softplus, dm.softplus, F.softplus, ("moderate",)),  # |x| <= 4: below torch's threshold 20
    "erf": Case(ops.erf, dm.erf, torch.erf),
    "identity": Case(ops.identity, ops.identity, lambda t: t),
}

BINARY = {
    "add": Case(ops.add, dm.add, torch.add),
    "subtract": Case(ops.subtract, dm.subtract, torch.subtract),
    "multiply": Case(ops.multiply, dm.multiply, torch.multiply),
    "divide": Case(ops.divide, dm.divide, torch.divide, ("nonzero", "nonzero")),
    # the exponent is differentiated too: bases stay positive (dlmath's d/dy at x <= 0 is 0, torch's NaN)
    "power": Case(ops.power, dm.power, torch.pow, ("positive", "any")),
    "maximum": Case(ops.maximum, dm.maximum, torch.maximum),  # continuous data: no ties
    "minimum": Case(ops.minimum, dm.minimum, torch.minimum),
    "+": Case(ops.add, lambda a, b: a + b, lambda a, b: a + b),
    "-": Case(ops.subtract, lambda a, b: a - b, lambda a, b: a - b),
    "*": Case(ops.multiply, lambda a, b: a * b, lambda a, b: a * b),
    "/": Case(ops.divide, lambda a, b: a / b, lambda a, b: a / b, ("any", "nonzero")),
    "**": Case(ops.power, lambda a, b: a ** b, lambda a, b: a ** b, ("positive", "any")),
}


# ----- elementwise unary ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(UNARY))
@FEW
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), seed=seeds)
def test_unary(name, shape, seed):
    c = UNARY[name]
    check_jvp(c.prim, c.dm_fn, c.torch_fn, data(np.random.default_rng(seed), shape, c.domains[0]), seed=seed)


# ----- elementwise binary with broadcasting -----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BINARY))
@HYP
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4), seed=seeds)
def test_binary_broadcasting(name, shapes, seed):
    c = BINARY[name]
    da, db = (c.domains * 2)[:2]
    rng = np.random.default_rng(seed)
    a, b = data(rng, shapes.input_shapes[0], da), data(rng, shapes.input_shapes[1], db)
    out, _ = check_jvp(c.prim, c.dm_fn, c.torch_fn, a, b, seed=seed)
    assert out.shape == shapes.result_shape


@pytest.mark.parametrize(("prim", "f", "tf", "domain"), [
    (ops.power, lambda x: x ** 2, lambda x: x ** 2, "any"),
    (ops.power, lambda x: x ** 3.0, lambda x: x ** 3.0, "any"),  # negative bases: only d/dx is taken
    (ops.power, lambda x: x ** 0.5, lambda x: x ** 0.5, "positive"),
    (ops.power, lambda x: x ** -1.5, lambda x: x ** -1.5, "positive"),
    (ops.power, lambda x: 2.0 ** x, lambda x: 2.0 ** x, "any"),
    (ops.power, lambda x: x ** x, lambda x: x ** x, "positive"),
    (ops.power, lambda x: dm.power(x, 0.0), lambda x: torch.pow(x, 0.0), "any"),
    (ops.divide, lambda x: 1.0 / x, lambda x: 1.0 / x, "nonzero"),
    (ops.subtract, lambda x: 3.0 - x, lambda x: 3.0 - x, "any"),
    (ops.multiply, lambda x: 2.5 * x + 1.0, lambda x: 2.5 * x + 1.0, "any"),
    (ops.multiply, lambda x: x * x, lambda x: x * x, "any"),  # the same operand twice
], ids=["sq", "cube", "sqrtpow", "negpow", "rpow", "x**x", "pow0", "rdiv", "rsub", "affine", "x*x"])
def test_scalar_operands(prim, f, tf, domain):
    check_jvp(prim, f, tf, data(np.random.default_rng(1), (3, 4), domain))


def test_power_zero_exponent_at_zero_base():
    """d(x^y)/dx = 0 where y == 0, also at x == 0 (no 0 * inf); only x is differentiated."""
    x = np.array([0.0, 0.0, 2.0, 0.0, 1.5])
    y = np.array([0.0, 2.0, 0.0, 3.0, 2.5])
    check_jvp(ops.power, lambda a: a ** y, lambda a: a ** torch.tensor(y), x)


# ----- where, clip, astype ----------------------------------------------------------------------------------------
@HYP
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=4), seed=seeds)
def test_where(shapes, seed):
    rng = np.random.default_rng(seed)
    cond = np.asarray(rng.standard_normal(shapes.input_shapes[0]) > 0)
    a, b = data(rng, shapes.input_shapes[1]), data(rng, shapes.input_shapes[2])
    tc = torch.from_numpy(cond)
    check_jvp(ops._where, lambda x, y: dm.where(cond, x, y), lambda x, y: torch.where(tc, x, y), a, b, seed=seed)
    # one branch constant, the condition a (constant) Tensor
    check_jvp(ops._where, lambda x: dm.where(dm.tensor(cond), 0.5, x), lambda x: torch.where(tc, 0.5, x), b,
              seed=seed)


@FEW
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4),
       bounds=st.sampled_from([(-0.5, 0.7), (0.1, None), (None, 0.2), ("array", "array"), ("bigger", 0.8)]),
       seed=seeds)
def test_clip(shape, bounds, seed):
    rng = np.random.default_rng(seed)
    x = data(rng, shape)
    lo, hi = bounds
    if lo == "bigger":  # an array bound that broadcasts x to a larger shape
        lo_a = rng.uniform(-1, 0, (2, *shape))
        check_jvp(ops._clip, lambda a: dm.clip(a, lo_a, hi),
                  lambda t: torch.clamp(t, torch.from_numpy(lo_a), torch.tensor(hi, dtype=torch.float64)), x, seed=seed)
    elif lo == "array":
        lo_a, hi_a = rng.uniform(-1, 0, shape), rng.uniform(0, 1, shape[-1:])
        check_jvp(ops._clip, lambda a: dm.clip(a, lo_a, hi_a),
                  lambda t: torch.clamp(t, torch.from_numpy(np.asarray(lo_a)), torch.from_numpy(hi_a)), x, seed=seed)
    else:
        check_jvp(ops._clip, lambda a: dm.clip(a, lo, hi), lambda t: torch.clamp(t, lo, hi), x, seed=seed)


@pytest.mark.parametrize(("src", "f", "tf", "tol"), [
    (np.float64, lambda x: dm.astype(x, np.float32), lambda t: t.to(torch.float32), 1e-6),
    (np.float32, lambda x: dm.astype(x, np.float64), lambda t: t.to(torch.float64), RTOL),
    (np.float64, lambda x: x.astype(np.float32).astype(np.float64) * 2.0,
     lambda t: t.to(torch.float32).to(torch.float64) * 2.0, 1e-6),
    (np.float32, lambda x: dm.tanh(x.astype(np.float64)) * x.astype(np.float64),
     lambda t: torch.tanh(t.to(torch.float64)) * t.to(torch.float64), RTOL),
], ids=["f64->f32", "f32->f64", "roundtrip", "f32-in-f64-math"])
def test_astype(src, f, tf, tol):
    x = data(np.random.default_rng(2), (3, 4)).astype(src)
    check_jvp(ops._astype, f, tf, x, rtol=tol, atol=tol)


def test_float32_stays_float32():
    rng = np.random.default_rng(3)
    x, w = data(rng, (4, 3)).astype(np.float32), data(rng, (3, 5)).astype(np.float32)
    out, jv = check_jvp(ops.tanh, lambda a, b: dm.tanh(a @ b) * 0.5, lambda a, b: torch.tanh(a @ b) * 0.5, x, w,
                        rtol=2e-5, atol=1e-5)
    assert out.dtype == np.float32 and jv.dtype == np.float32


# ----- matmul -----------------------------------------------------------------------------------------------------
@HYP
@given(batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       mkn=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
       vec=st.sampled_from([(False, False), (True, False), (False, True), (True, True)]), seed=seeds)
def test_matmul(batch, mkn, vec, seed):
    m, k, n = mkn
    rng = np.random.default_rng(seed)
    a_shape = (k,) if vec[0] else (*batch.input_shapes[0], m, k)
    b_shape = (k,) if vec[1] else (*batch.input_shapes[1], k, n)
    a, b = data(rng, a_shape), data(rng, b_shape)
    check_jvp(ops.matmul, lambda x, y: x @ y, torch.matmul, a, b, seed=seed)
    const = data(rng, b_shape)  # one operand constant (no tangent)
    check_jvp(ops.matmul, lambda x: dm.matmul(x, const), lambda t: torch.matmul(t, torch.from_numpy(const)), a,
              seed=seed)


# ----- reductions -------------------------------------------------------------------------------------------------
def _torch_prod(t, dims, keepdim):
    for d in sorted((d % t.ndim for d in dims), reverse=True):
        t = t.prod(dim=d, keepdim=True)
    if not keepdim:
        t = t.reshape([s for i, s in enumerate(t.shape) if i not in {d % t.ndim for d in dims}])
    return t


REDUCTIONS = {
    "sum": Case(ops.sum, lambda x, ax, k: dm.sum(x, axis=ax, keepdims=k),
                lambda t, d, k: torch.sum(t, dim=d, keepdim=k)),
    "max": Case(ops.max, lambda x, ax, k: dm.max(x, axis=ax, keepdims=k),  # continuous data: no ties
                lambda t, d, k: torch.amax(t, dim=d, keepdim=k)),
    "min": Case(ops.min, lambda x, ax, k: dm.min(x, axis=ax, keepdims=k),
                lambda t, d, k: torch.amin(t, dim=d, keepdim=k)),
    "prod": Case(ops.prod, lambda x, ax, k: dm.prod(x, axis=ax, keepdims=k), _torch_prod, ("nonzero",)),
    "prod-zeros": Case(ops.prod, lambda x, ax, k: dm.prod(x, axis=ax, keepdims=k), _torch_prod, ("zeros",)),
    "logsumexp": Case(ops.logsumexp, lambda x, ax, k: dm.logsumexp(x, axis=ax, keepdims=k),
                      lambda t, d, k: torch.logsumexp(t, dim=d, keepdim=k)),
    "sum-method": Case(ops.sum, lambda x, ax, k: x.sum(axis=ax, keepdims=k),
                       lambda t, d, k: t.sum(dim=d, keepdim=k)),
    "max-method": Case(ops.max, lambda x, ax, k: x.max(axis=ax, keepdims=k),
                       lambda t, d, k: t.amax(dim=d, keepdim=k)),
}


@st.composite
def shape_axis_keepdims(draw, min_dims=1):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=1, max_side=4))
    nd = len(shape)
    axis = draw(st.none() | st.integers(-nd, nd - 1) | hnp.valid_tuple_axes(nd, min_size=1))
    return shape, axis, draw(st.booleans())


def _dims(shape, axis):
    return tuple(range(len(shape))) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)


@pytest.mark.parametrize("name", list(REDUCTIONS))
@HYP
@given(sak=shape_axis_keepdims(), seed=seeds)
def test_reductions(name, sak, seed):
    shape, axis, keepdims = sak
    c = REDUCTIONS[name]
    x = data(np.random.default_rng(seed), shape, c.domains[0])
    dims = _dims(shape, axis)
    check_jvp(c.prim, lambda a: c.dm_fn(a, axis, keepdims), lambda t: c.torch_fn(t, dims, keepdims), x, seed=seed)


def test_prod_with_zeros():
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 4.0], [1.5, -2.0, 0.5]])
    for axis in (None, 0, 1, -1):
        dims = (0, 1) if axis is None else (axis,)
        check_jvp(ops.prod, lambda a: dm.prod(a, axis=axis), lambda t: _torch_prod(t, dims, False), x)


@pytest.mark.parametrize("name", ["max", "min"])
def test_extremum_ties_share_the_tangent_like_torch_amax(name):
    """Fixed data with ties: dlmath shares the derivative equally among the tied positions, and so does
    torch.amax's forward mode (and torch.maximum's ½–½ split): the conventions agree here too."""
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, 1.0, 5.0, 5.0]])
    if name == "min":
        x = -x
    prim, f, tf = (ops.max, dm.max, torch.amax) if name == "max" else (ops.min, dm.min, torch.amin)
    check_jvp(prim, lambda a: f(a, axis=1), lambda t: tf(t, dim=1), x)
    check_jvp(prim, lambda a: f(a, axis=0, keepdims=True), lambda t: tf(t, dim=0, keepdim=True), x)
    check_jvp(prim, lambda a: f(a), lambda t: tf(t, dim=(0, 1)), x)
    a, b = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]]), np.array([1.0, 0.0, 3.0])
    pair, tpair = (ops.maximum, torch.maximum) if name == "max" else (ops.minimum, torch.minimum)
    check_jvp(pair, pair, tpair, a, b)


@HYP
@given(sa=shape_and_axis(), seed=seeds)
def test_softmax_and_log_softmax(sa, seed):
    shape, axis = sa
    x = 3 * data(np.random.default_rng(seed), shape)
    check_jvp(ops.softmax, lambda a: dm.softmax(a, axis=axis), lambda t: torch.softmax(t, dim=axis), x, seed=seed)
    check_jvp(ops.log_softmax, lambda a: dm.log_softmax(a, axis=axis), lambda t: torch.log_softmax(t, dim=axis), x,
              seed=seed)


def test_softmax_family_large_inputs_stay_finite():
    x = np.array([[1000.0, 999.0, -1000.0], [-800.0, -801.0, -799.5]])
    check_jvp(ops.softmax, lambda a: dm.softmax(a, axis=-1), lambda t: torch.softmax(t, -1), x)
    check_jvp(ops.log_softmax, lambda a: dm.log_softmax(a, axis=-1), lambda t: torch.log_softmax(t, -1), x)
    check_jvp(ops.logsumexp, lambda a: dm.logsumexp(a, axis=-1), lambda t: torch.logsumexp(t, -1), x)


# ----- shape ops --------------------------------------------------------------------------------------------------
@FEW
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4),
       target=st.sampled_from(["flat", "reversed", "lead1", "pairs"]), seed=seeds)
def test_reshape(shape, target, seed):
    n = math.prod(shape)
    new = {"flat": (-1,), "reversed": tuple(reversed(shape)), "lead1": (1, *shape, 1),
           "pairs": (n, 1) if n % 2 else (2, n // 2)}[target]
    check_jvp(ops.reshape, lambda a: dm.reshape(a, new), lambda t: t.reshape(new), data(np.random.default_rng(seed),
                                                                                         shape), seed=seed)


@FEW
@given(data_=st.data(), seed=seeds)
def test_transpose(data_, seed):
    shape = data_.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    nd = len(shape)
    axes = data_.draw(st.none() | st.permutations(range(nd)).map(tuple)
                      | st.permutations(range(nd)).map(lambda p: tuple(a - nd for a in p)))  # negative axes
    perm = tuple(reversed(range(nd))) if axes is None else axes
    check_jvp(ops.transpose, lambda a: dm.transpose(a, axes), lambda t: t.permute(perm),
              data(np.random.default_rng(seed), shape), seed=seed)


@FEW
@given(data_=st.data(), seed=seeds)
def test_broadcast_to(data_, seed):
    target = data_.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    k = data_.draw(st.integers(0, len(target)))  # a suffix of target, some sides replaced by 1
    shape = tuple(data_.draw(st.sampled_from([1, n])) for n in target[len(target) - k:])
    check_jvp(ops.broadcast_to, lambda a: dm.broadcast_to(a, target), lambda t: torch.broadcast_to(t, target),
              data(np.random.default_rng(seed), shape), seed=seed)


@FEW
@given(sak=shape_axis_keepdims(), seed=seeds)
def test_flip(sak, seed):
    shape, axis, _ = sak
    check_jvp(ops.flip, lambda a: dm.flip(a, axis), lambda t: torch.flip(t, _dims(shape, axis)),
              data(np.random.default_rng(seed), shape), seed=seed)


@FEW
@given(data_=st.data(), seed=seeds)
def test_roll(data_, seed):
    shape = data_.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    nd = len(shape)
    kind = data_.draw(st.sampled_from(["flat", "int", "tuple"]))
    x = data(np.random.default_rng(seed), shape)
    if kind == "flat":
        shift = data_.draw(st.integers(-12, 12))
        check_jvp(ops.roll, lambda a: dm.roll(a, shift), lambda t: torch.roll(t, shift), x, seed=seed)
    elif kind == "int":
        shift, axis = data_.draw(st.integers(-7, 7)), data_.draw(st.integers(-nd, nd - 1))
        check_jvp(ops.roll, lambda a: dm.roll(a, shift, axis=axis), lambda t: torch.roll(t, shift, axis), x,
                  seed=seed)
    else:
        axes = data_.draw(hnp.valid_tuple_axes(nd, min_size=1))
        shifts = tuple(data_.draw(st.integers(-7, 7)) for _ in axes)
        check_jvp(ops.roll, lambda a: dm.roll(a, shifts, axis=axes), lambda t: torch.roll(t, shifts, axes), x,
                  seed=seed)


@FEW
@given(data_=st.data(), seed=seeds)
def test_pad(data_, seed):
    shape = data_.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    nd = len(shape)
    kind = data_.draw(st.sampled_from(["int", "pair", "pairs"]))
    value = data_.draw(st.sampled_from([0.0, 2.5]))
    if kind == "int":
        pw: Any = data_.draw(st.integers(0, 2))
        pairs = [(pw, pw)] * nd
    elif kind == "pair":
        pw = (data_.draw(st.integers(0, 2)), data_.draw(st.integers(0, 2)))
        pairs = [pw] * nd
    else:
        pairs = [(data_.draw(st.integers(0, 2)), data_.draw(st.integers(0, 2))) for _ in range(nd)]
        pw = tuple(pairs)
    torch_pad = []
    for b, e in reversed(pairs):  # F.pad lists (begin, end) from the last axis backwards
        torch_pad += [b, e]
    check_jvp(ops._pad, lambda a: dm.pad(a, pw, constant_values=value),
              lambda t: F.pad(t, torch_pad, value=value), data(np.random.default_rng(seed), shape), seed=seed)


@FEW
@given(data_=st.data(), seed=seeds)
def test_concatenate(data_, seed):
    base = data_.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    nd = len(base)
    n = data_.draw(st.integers(1, 4))
    axis = data_.draw(st.none() | st.integers(-nd, nd - 1))
    rng = np.random.default_rng(seed)
    if axis is None:  # NumPy flattens every piece: any shapes
        shapes = [data_.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)) for _ in range(n)]
    else:
        shapes = [tuple(data_.draw(st.integers(0, 3)) if d == axis % nd else s for d, s in enumerate(base))
                  for _ in range(n)]
    xs = [data(rng, s) for s in shapes]
    const = data(rng, shapes[0])  # a constant piece in the middle

    def tf(*ts):
        parts = [ts[0], torch.from_numpy(const), *ts[1:]]
        return torch.cat([t.reshape(-1) for t in parts]) if axis is None else torch.cat(parts, dim=axis)

    check_jvp(ops._concatenate, lambda *a: dm.concatenate([a[0], const, *a[1:]], axis=axis), tf, *xs, seed=seed)




@pytest.mark.parametrize(("subscripts", "shapes"), EINSUM_CASES,
                         ids=[f"{s}:{i}" for i, (s, _) in enumerate(EINSUM_CASES)])
def test_einsum(subscripts, shapes):
    rng = np.random.default_rng(len(subscripts) + len(shapes))
    arrays = [data(rng, s) for s in shapes]
    check_jvp(ops._einsum, lambda *xs: dm.einsum(subscripts, *xs), lambda *ts: torch.einsum(subscripts, *ts), *arrays)


def test_einsum_with_constant_operand():
    rng = np.random.default_rng(30)
    w, x = data(rng, (3, 4)), data(rng, (5, 4))
    check_jvp(ops._einsum, lambda a: dm.einsum("ij,bj->bi", a, x),
              lambda t: torch.einsum("ij,bj->bi", t, torch.from_numpy(x)), w)


# ----- indexing: getitem and its transpose scatter_add ------------------------------------------------------------
@st.composite
def shape_and_index(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    nd = len(shape)
    kind = draw(st.sampled_from(["basic", "int-array", "bool", "mixed"]))
    if kind == "basic":  # ints, slices (negative steps too), None, Ellipsis
        index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    elif kind == "int-array":  # duplicates and negative indices included
        index = draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2,
                                                                                      max_side=4)))
    elif kind == "bool":
        k = draw(st.integers(1, nd))
        index = draw(hnp.arrays(np.bool_, shape[:k]))
    else:  # an integer array on one axis, slices or an int elsewhere
        k = draw(st.integers(0, nd - 1))
        items: list[Any] = []
        for d, n in enumerate(shape):
            if d == k:
                items.append(draw(hnp.arrays(np.intp, draw(st.integers(1, 4)), elements=st.integers(-n, n - 1))))
            else:
                items.append(draw(st.sampled_from([slice(None), slice(None, None, -1), slice(1, None), 0, -1])))
        index = tuple(items)
    return shape, index


def _flat_positions(shape, index) -> torch.Tensor:
    """Where each element of x[index] comes from in x.reshape(-1): NumPy's own indexing, for the torch side."""
    flat = np.asarray(np.arange(math.prod(shape), dtype=np.int64).reshape(shape)[index])
    return torch.from_numpy(np.array(flat, copy=True))  # (np.ascontiguousarray would make a 0-d array 1-d)


@HYP
@given(si=shape_and_index(), seed=seeds)
def test_getitem(si, seed):
    shape, index = si
    pos = _flat_positions(shape, index)
    check_jvp(ops.getitem, lambda a: a[index], lambda t: t.reshape(-1)[pos],
              data(np.random.default_rng(seed), shape), seed=seed)


@HYP
@given(si=shape_and_index(), seed=seeds)
def test_scatter_add(si, seed):
    """scatter_add(g, shape, index): zeros(shape) with g added at index (duplicates accumulate)."""
    shape, index = si
    pos = _flat_positions(shape, index)
    g = data(np.random.default_rng(seed), pos.shape)
    n = math.prod(shape)
    check_jvp(ops.scatter_add, lambda a: ops.scatter_add(a, shape, index),
              lambda t: torch.zeros(n, dtype=t.dtype).index_add(0, pos.reshape(-1), t.reshape(-1)).reshape(shape),
              g, seed=seed)


IDX = np.array([0, 2, 0, 0, 3])
INDEX_CASES = [  # with torch's own indexing as the oracle
    ("int", lambda x: x[1], lambda t: t[1]),
    ("slice-step", lambda x: x[::2, 1::2], lambda t: t[::2, 1::2]),
    ("none-ellipsis", lambda x: x[None, ..., 1], lambda t: t[None, ..., 1]),
    ("int-array-dup", lambda x: x[IDX], lambda t: t[torch.from_numpy(IDX)]),
    ("int-list-dup", lambda x: x[[3, 3, 1]], lambda t: t[[3, 3, 1]]),
    ("slice-then-array", lambda x: x[:, np.array([1, 1, 4, 1])], lambda t: t[:, torch.tensor([1, 1, 4, 1])]),
    ("bool-full", lambda x: x[x.data > 0.1], lambda t: t[t > 0.1]),
    ("tensor-index", lambda x: x[dm.tensor(np.array([2, 2, 0]))], lambda t: t[torch.tensor([2, 2, 0])]),
    ("take", lambda x: dm.take(x, (dm.tensor(np.array([1, 1])), slice(None))), lambda t: t[torch.tensor([1, 1])]),
    ("chained", lambda x: x[1:][IDX % 3][:, ::2], lambda t: t[1:][torch.from_numpy(IDX % 3)][:, ::2]),
]


@pytest.mark.parametrize(("f", "tf"), [c[1:] for c in INDEX_CASES], ids=[c[0] for c in INDEX_CASES])
def test_getitem_torch_indexing(f, tf):
    check_jvp(ops.getitem, f, tf, data(np.random.default_rng(13), (4, 5)))


# ----- coverage: every primitive of ops.py has a case here --------------------------------------------------------
# The tables above (their Case.prim) and the primitives named by the other tests, each of which
# asserts through check_jvp(prim, ...) that its case really runs that primitive.
@HYP
@given(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), st.data(), seeds)
def test_cumsum(shape, data_, seed):
    x = data(np.random.default_rng(seed), shape)
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    check_jvp(ops.cumsum, lambda a: dm.cumsum(a, axis=axis), lambda t: torch.cumsum(t, axis), x, seed=seed)
    check_jvp(ops.cumsum, lambda a: dm.cumsum(a), lambda t: torch.cumsum(t.reshape(-1), 0), x, seed=seed)


@HYP
@given(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), st.data(), seeds)
def test_cumprod(shape, data_, seed):
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    for domain in ("any", "zeros"):
        x = data(np.random.default_rng(seed), shape, domain)
        check_jvp(ops.cumprod, lambda a: dm.cumprod(a, axis=axis), lambda t: torch.cumprod(t, axis), x, seed=seed)


OTHER_TESTS = {
    "_where": test_where, "_clip": test_clip, "_astype": test_astype, "matmul": test_matmul,
    "softmax": test_softmax_and_log_softmax, "log_softmax": test_softmax_and_log_softmax,
    "reshape": test_reshape, "transpose": test_transpose, "broadcast_to": test_broadcast_to, "flip": test_flip,
    "roll": test_roll, "_pad": test_pad, "_concatenate": test_concatenate, "_einsum": test_einsum,
    "getitem": test_getitem, "scatter_add": test_scatter_add, "cumsum": test_cumsum,
    "cumprod": test_cumprod,
}


def _covered_elsewhere() -> set[str]:
    """Primitives whose JVP cases (through check_jvp) live in other test files: each lists them in JVP_COVERED."""
    import importlib
    import pathlib
    names: set[str] = set()
    here = pathlib.Path(__file__)
    for path in sorted(here.parent.glob("test_*.py")):
        if path != here and "JVP_COVERED" in path.read_text():
            names |= set(importlib.import_module(path.stem).JVP_COVERED)
    return names


def _covered() -> set[str]:
    by_object = {id(p): name for name, p in all_primitives().items()}
    names = {by_object[id(c.prim)] for table in (UNARY, BINARY, REDUCTIONS) for c in table.values()}
    return names | set(OTHER_TESTS) | _covered_elsewhere()


def test_every_primitive_is_covered():
    prims = all_primitives()
    assert len(prims) >= 40, sorted(prims)  # sanity: the enumeration found the table
    covered = _covered()
    missing, unknown = set(prims) - covered, covered - set(prims)
    assert not missing, f"primitives of ops.py without a JVP test in this file: {sorted(missing)}"
    assert not unknown, f"this file names primitives that ops.py no longer has: {sorted(unknown)}"


@pytest.mark.skipif(not hasattr(ops, "primitives_without_jvp"),
                    reason="the forward-mode engine (per-primitive JVP rules) has not landed yet")
def test_every_primitive_has_a_jvp_rule():
    missing = list(ops.primitives_without_jvp())
    assert not missing, f"primitives without a JVP rule: {missing}"
    for name, p in all_primitives().items():  # each has per-argument rules, a variadic rule, or is linear
        has = bool(getattr(p, "linear", False)) or getattr(p, "jvp_any", None) is not None \
            or any(r is not None for r in (getattr(p, "jvps", None) or ()))
        assert has, f"primitive {name} ({p.name}) has no jvps, jvp_any or linear"


def test_every_linalg_primitive_is_covered_and_has_a_jvp_rule():
    """dm.linalg's primitives are tested in test_linalg_torch.py, whose COVERED must name each of them."""
    from dlmath.autodiff import linalg
    from test_linalg_torch import COVERED
    prims = set(linalg.primitives())
    assert len(prims) >= 10, sorted(prims)
    assert prims == set(COVERED), f"linalg primitives without a test: {sorted(prims - set(COVERED))}, " \
        f"named but gone: {sorted(set(COVERED) - prims)}"
    assert not linalg.primitives_without_jvp()


# ----- composites through jvp -------------------------------------------------------------------------------------
COMPOSITE_REDUCTIONS = {
    "mean": (lambda x, ax, k: dm.mean(x, axis=ax, keepdims=k), lambda t, d, k: torch.mean(t, dim=d, keepdim=k), 0),
    "var0": (lambda x, ax, k: dm.var(x, axis=ax, keepdims=k),
             lambda t, d, k: torch.var(t, dim=d, correction=0, keepdim=k), 0),
    "var1": (lambda x, ax, k: dm.var(x, axis=ax, ddof=1, keepdims=k),
             lambda t, d, k: torch.var(t, dim=d, correction=1, keepdim=k), 1),
    # std over >= 2 random values: non-zero variance (at zero variance dlmath's gradient is 0 by convention)
    "std0": (lambda x, ax, k: dm.std(x, axis=ax, keepdims=k),
             lambda t, d, k: torch.std(t, dim=d, correction=0, keepdim=k), 1),
    "std1": (lambda x, ax, k: dm.std(x, axis=ax, ddof=1, keepdims=k),
             lambda t, d, k: torch.std(t, dim=d, correction=1, keepdim=k), 1),
    "mean-method": (lambda x, ax, k: x.mean(axis=ax, keepdims=k), lambda t, d, k: t.mean(dim=d, keepdim=k), 0),
}


@pytest.mark.parametrize("name", list(COMPOSITE_REDUCTIONS))
@FEW
@given(sak=shape_axis_keepdims(), seed=seeds)
def test_composite_reductions(name, sak, seed):
    shape, axis, keepdims = sak
    f, tf, min_count = COMPOSITE_REDUCTIONS[name]
    dims = _dims(shape, axis)
    assume(math.prod(shape[d] for d in dims) > min_count)
    check_jvp(None, lambda a: f(a, axis, keepdims), lambda t: tf(t, dims, keepdims),
              data(np.random.default_rng(seed), shape), seed=seed)


COMPOSITES = [
    ("gelu", (3, 4), lambda x: dm.gelu(x), lambda t: F.gelu(t, approximate="none")),
    ("gelu-tanh", (3, 4), lambda x: dm.gelu(x, approximate="tanh"), lambda t: F.gelu(t, approximate="tanh")),
    ("softmax-method", (2, 5), lambda x: x.softmax(-1), lambda t: t.softmax(-1)),
    ("unsqueeze", (3, 2), lambda x: dm.unsqueeze(x, 1), lambda t: torch.unsqueeze(t, 1)),
    ("expand_dims", (3, 2), lambda x: dm.expand_dims(x, -3), lambda t: torch.unsqueeze(t, -3)),
    ("squeeze-all", (1, 3, 1, 2), lambda x: dm.squeeze(x), lambda t: torch.squeeze(t)),
    ("squeeze-tuple", (1, 3, 1, 2), lambda x: dm.squeeze(x, (0, 2)), lambda t: torch.squeeze(t, (0, 2))),
    ("swapaxes", (2, 3, 4), lambda x: dm.swapaxes(x, 0, -1), lambda t: torch.swapaxes(t, 0, -1)),
    ("permute", (2, 3, 4, 1), lambda x: dm.permute(x, (2, 0, 3, 1)), lambda t: t.permute(2, 0, 3, 1)),
    ("T", (3, 5), lambda x: x.T, lambda t: t.T),
    ("mT", (2, 3, 5), lambda x: x.mT, lambda t: t.mT),
    ("expand", (3, 1), lambda x: dm.broadcast_to(x, (5, 3, 2)), lambda t: t.expand(5, 3, 2)),
    ("flatten", (2, 3, 2), lambda x: x.flatten(), lambda t: t.flatten()),
    ("split-0", (6, 4), lambda x: dm.split(x, 3)[0], lambda t: torch.split(t, 2)[0]),
    ("split-2", (3, 7), lambda x: dm.split(x, [2, 3], axis=1)[2], lambda t: torch.split(t, [2, 1, 4], dim=1)[2]),
    ("split-sum", (3, 4), lambda x: sum(p * (i + 1) for i, p in enumerate(dm.split(x, 2, axis=-1))),
     lambda t: sum(p * (i + 1) for i, p in enumerate(torch.split(t, 2, dim=-1)))),
    ("mse_loss", (4, 3), lambda x: dlmath.nn.mse_loss(dm.tanh(x), np.ones((4, 3))),
     lambda t: F.mse_loss(torch.tanh(t), torch.ones(4, 3, dtype=torch.float64))),
    ("cross_entropy", (4, 3), lambda x: dlmath.nn.cross_entropy(x, np.array([0, 2, 1, 2])),
     lambda t: F.cross_entropy(t, torch.tensor([0, 2, 1, 2]))),
    ("layernorm", (3, 5), lambda x: (x - dm.mean(x, axis=-1, keepdims=True)) / dm.sqrt(dm.var(x, axis=-1, keepdims=True)
                                                                                     + 1e-5),
     lambda t: F.layer_norm(t, (5,), eps=1e-5)),
]


@pytest.mark.parametrize(("shape", "f", "tf"), [c[1:] for c in COMPOSITES], ids=[c[0] for c in COMPOSITES])
def test_composites(shape, f, tf):
    check_jvp(None, f, tf, data(np.random.default_rng(21), shape, "moderate"))


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_stack(axis):
    rng = np.random.default_rng(axis + 20)
    a, b, c = data(rng, (2, 3)), data(rng, (2, 3)), data(rng, (2, 3))
    check_jvp(ops._concatenate, lambda x, y, z: dm.stack([x, dm.sin(y), z], axis=axis),
              lambda x, y, z: torch.stack([x, torch.sin(y), z], dim=axis), a, b, c)


def test_several_primals_some_tangents_zero_and_unused_inputs():
    rng = np.random.default_rng(50)
    x, w, unused = data(rng, (4, 3)), data(rng, (3, 2)), data(rng, (5,))

    def f(a, b, c):
        return dm.tanh(a @ b) * 2.0

    def tf(a, b, c):
        return torch.tanh(a @ b) * 2.0

    tangents = (np.zeros_like(x), data(rng, (3, 2)), data(rng, (5,)))
    check_jvp(None, f, tf, x, w, unused, tangents=tangents)


@pytest.mark.parametrize(("f", "tf", "primals"), [
    (lambda a: a, lambda t: t, (np.arange(3.0),)),                   # the output is the input itself
    (lambda a, b: a, lambda s, t: s, (np.arange(3.0), np.ones(2))),   # an unused input
    (dm.sin, torch.sin, (0.5,)),                                       # Python float primal and tangent
    (dm.multiply, torch.multiply, (np.zeros((0, 3)), np.ones(3))),    # zero-size broadcast
    (lambda a: dm.sum(a, axis=0), lambda t: t.sum(0), (np.zeros((0, 3)),)),
], ids=["identity-fn", "unused", "python-float", "zero-size", "sum-empty"])
def test_edge_cases(f, tf, primals):
    check_jvp(None, f, tf, *primals)


def test_constant_function_has_zero_tangent():
    out, jv = dm.jvp(lambda a: dm.tensor(np.ones(3)) * 2.0, (np.arange(3.0),), (np.ones(3),))
    np.testing.assert_array_equal(out, 2 * np.ones(3))
    np.testing.assert_array_equal(jv, np.zeros(3))


def test_jvp_is_linear_in_the_tangent():
    rng = np.random.default_rng(51)
    x, v1, v2 = data(rng, (3, 4)), data(rng, (3, 4)), data(rng, (3, 4))

    def f(a):
        return dm.softmax(dm.tanh(a) * a, axis=-1)

    _, j1 = dm.jvp(f, (x,), (v1,))
    _, j2 = dm.jvp(f, (x,), (v2,))
    _, j12 = dm.jvp(f, (x,), (2.0 * v1 - 3.0 * v2,))
    np.testing.assert_allclose(j12, 2.0 * j1 - 3.0 * j2, rtol=RTOL, atol=ATOL)


# ----- higher order: forward over reverse, reverse over forward, jacobians, hvp -----------------------------------
RNG = np.random.default_rng(2024)
A = RNG.standard_normal((3, 4))
W2 = RNG.standard_normal((5, 3)) * 0.7
ONEHOT = np.eye(5)[[0, 2, 1, 4]]

SCALAR_FNS = {  # scalar functions of a (4, 5) array, once for dm and once for torch
    "mlp": (lambda w: dm.sum(dm.tanh(A @ w) @ W2) ** 2 / 10,
            lambda w: (torch.tanh(torch.from_numpy(A) @ w) @ torch.from_numpy(W2)).sum() ** 2 / 10),
    "xent": (lambda w: -dm.mean(dm.sum(dm.log_softmax(w, axis=-1) * ONEHOT, axis=-1)),
             lambda w: -(torch.log_softmax(w, -1) * torch.from_numpy(ONEHOT)).sum(-1).mean()),
    "logsumexp-prod": (lambda w: dm.logsumexp(w * dm.sin(w)) + dm.sum(dm.prod(w, axis=0)),
                       lambda w: torch.logsumexp(w * torch.sin(w), (0, 1)) + torch.prod(w, 0).sum()),
    "gelu-var": (lambda w: dm.sum(dm.gelu(w) * dm.var(w, axis=0)) + dm.sum(dm.sigmoid(w) ** 3),
                 lambda w: (F.gelu(w) * torch.var(w, 0, correction=0)).sum() + (torch.sigmoid(w) ** 3).sum()),
    "einsum-exp": (lambda w: dm.einsum("ij,ij->", dm.exp(w / 3), w) + dm.sum(dm.softplus(w) * dm.cos(w)),
                   lambda w: torch.einsum("ij,ij->", torch.exp(w / 3), w) + (F.softplus(w) * torch.cos(w)).sum()),
}
X0 = RNG.standard_normal((4, 5))
V0 = RNG.standard_normal((4, 5))


def _t(a):
    return torch.from_numpy(np.array(a, dtype=np.float64))


@pytest.mark.parametrize("name", list(SCALAR_FNS))
def test_jvp_of_grad_forward_over_reverse(name):
    f, tf = SCALAR_FNS[name]
    g, hv = dm.jvp(dm.grad(f), (X0,), (V0,))
    tg, thv = tfunc.jvp(tfunc.grad(tf), (_t(X0),), (_t(V0),))
    _close(g, tg.numpy(), 1e-9, 1e-11, "grad")
    _close(hv, thv.numpy(), 1e-9, 1e-11, "jvp of grad (H v)")
    # and equal to hvp (reverse over reverse) and torch.autograd.functional.hvp
    _close(dm.hvp(f, X0, V0), thv.numpy(), 1e-9, 1e-11, "hvp")
    _, tvhp = taf.hvp(tf, _t(X0), _t(V0))
    _close(dm.hvp(f, X0, V0), tvhp.numpy(), 1e-9, 1e-11, "hvp vs torch.autograd.functional.hvp")


@pytest.mark.parametrize("name", list(SCALAR_FNS))
def test_grad_of_jvp_output_reverse_over_forward(name):
    f, tf = SCALAR_FNS[name]

    def dm_dir(x):
        return dm.jvp(f, (x,), (V0,))[1]

    def t_dir(x):
        return tfunc.jvp(tf, (x,), (_t(V0),))[1]

    _close(dm.grad(dm_dir)(X0), tfunc.grad(t_dir)(_t(X0)).numpy(), 1e-9, 1e-11, "grad of <grad f, v>")


def test_jvp_of_jvp_second_directional_derivative():
    f, tf = SCALAR_FNS["logsumexp-prod"]
    v2 = np.random.default_rng(60).standard_normal((4, 5))

    def dm_inner(x):
        return dm.jvp(f, (x,), (V0,))[1]

    def t_inner(x):
        return tfunc.jvp(tf, (x,), (_t(V0),))[1]

    d, dd = dm.jvp(dm_inner, (X0,), (v2,))
    td, tdd = tfunc.jvp(t_inner, (_t(X0),), (_t(v2),))
    _close(d, td.numpy(), 1e-9, 1e-11, "first directional derivative")
    _close(dd, tdd.numpy(), 1e-9, 1e-11, "v2^T H v")


def test_jvp_of_vector_function_with_nested_grad_inside():
    """jvp through a function that itself takes a gradient (the inner grad closes over the primal)."""
    def f(x):
        return dm.tanh(x) * dm.grad(lambda y: dm.sum(dm.sin(x * y)))(np.ones(3))

    def tf(x):
        return torch.tanh(x) * tfunc.grad(lambda y: torch.sin(x * y).sum())(torch.ones(3, dtype=torch.float64))

    check_jvp(None, f, tf, np.array([0.3, -1.2, 0.8]))


VECTOR_FNS = {
    "softmax": (lambda x: dm.softmax(x * 2.0), lambda x: torch.softmax(x * 2.0, -1), (5,)),
    "mlp-layer": (lambda x: dm.tanh(A @ x), lambda x: torch.tanh(torch.from_numpy(A) @ x), (4, 2)),
    "outer-pad": (lambda x: dm.pad(dm.einsum("i,j->ij", x, dm.exp(x)), 1),
                  lambda x: F.pad(torch.einsum("i,j->ij", x, torch.exp(x)), (1, 1, 1, 1)), (3,)),
    "getitem-cat": (lambda x: dm.concatenate([x[::-1] ** 2, dm.roll(x, 1)[[0, 0, 2]]]),
                    lambda x: torch.cat([torch.flip(x, (0,)) ** 2, torch.roll(x, 1)[[0, 0, 2]]]), (4,)),
}


@pytest.mark.parametrize("name", list(VECTOR_FNS))
def test_jacobian_forward_vs_jacfwd(name):
    f, tf, shape = VECTOR_FNS[name]
    x = np.random.default_rng(70).standard_normal(shape)
    jf = dm.jacobian(f, mode="forward")(x)
    tj = tfunc.jacfwd(tf)(_t(x)).numpy()
    _close(jf, tj, 1e-10, 1e-12, "jacobian(mode='forward') vs torch.func.jacfwd")
    _close(dm.jacobian(f, mode="reverse")(x), tj, 1e-10, 1e-12, "jacobian(mode='reverse')")


def test_jacobian_forward_of_grad_is_the_hessian():
    f, tf = SCALAR_FNS["gelu-var"]
    x = X0[:2, :3]

    def fs(w):  # f restricted to a (2, 3) block: a small Hessian
        return f(dm.pad(w, ((0, 2), (0, 2))) + np.pad(np.zeros((2, 3)), ((0, 2), (0, 2)), constant_values=0.5))

    def tfs(w):
        return tf(F.pad(w, (0, 2, 0, 2)) + torch.from_numpy(np.pad(np.zeros((2, 3)), ((0, 2), (0, 2)),
                                                                   constant_values=0.5)))

    H = dm.jacobian(dm.grad(fs), mode="forward")(x)
    tH = tfunc.jacfwd(tfunc.grad(tfs))(_t(x)).numpy()
    _close(H, tH, 1e-9, 1e-11, "jacobian(grad(f), mode='forward')")
    _close(dm.hessian(fs)(x), tH, 1e-9, 1e-11, "hessian")
