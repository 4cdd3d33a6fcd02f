"""The elementwise functions and ``dm.special`` against PyTorch / ``torch.special`` (float64).

Each function goes through ``compare`` (forward value, dtype, shape and the VJP of a random
cotangent, from test_ops_torch) and ``check_jvp`` (``dm.jvp`` against ``torch.func.jvp`` and the
dot-product identity <J v, u> = <v, J^T u>, from test_jvp_torch), on hypothesis shapes with
batch dimensions; the binary ones on mutually broadcastable shapes. A few have second-order
checks (reverse over reverse against torch's double backward, and ``dm.hvp``).

Inputs are drawn inside each function's domain, away from its kinks and poles: arcsin/arccos/
arctanh/erfinv on (-0.95, 0.95), arccosh on (1.05, 3), logit on (0.05, 0.95), log/log2/log10/
gammaln/digamma/polygamma at positive x, cbrt and reciprocal away from 0, tan on (-1.2, 1.2),
remainder's divisor away from 0 (continuous data never lands on its jumps). Deliberate
differences from PyTorch (docs/engine.md) are tested on their own, not against torch:
``fmax``/``fmin`` split the gradient ½–½ on ties (as ``maximum``; ``torch.fmax`` gives it all
to the first operand), ``hypot`` has gradient 0 at (0, 0) and ``xlogy``'s ∂/∂y is 0 where
x = 0 (PyTorch: NaN at 0/0). Outside a domain the forward gives NumPy's NaN, and
``dm.detect_anomaly()`` names the op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import scipy.special as sps
import torch
import torch.special as ts
from hypothesis import given, settings
from hypothesis import strategies as st

import dlmath as dm
from dlmath.autodiff import ops, special
from dlmath.autodiff.core import Primitive
from test_jvp_torch import check_jvp
from test_ops_torch import compare

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
              # nan_to_num's default posinf is the largest float: the harness's out * cotangent overflows
              pytest.mark.filterwarnings("ignore:overflow encountered in multiply:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:overflow encountered in reduce:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")]

FEW = settings(max_examples=15, deadline=None)
seeds = st.integers(0, 2**32 - 1)
SPECIAL_TOL = 1e-9  # SciPy's and torch's series for the gamma family agree to ~1e-13; a margin


def draw(rng: np.random.Generator, shape: tuple[int, ...], domain: str) -> np.ndarray:
    """Random float64 data inside a function's domain."""
    shape = tuple(shape)
    lo_hi = {"any": None, "unit": (-0.95, 0.95), "gt1": (1.05, 3.0), "positive": (0.2, 4.0), "prob": (0.05, 0.95),
             "tan": (-1.2, 1.2), "moderate": (-4.0, 4.0), "wide": (-30.0, 6.0)}
    if domain == "any":
        return np.asarray(rng.standard_normal(shape))
    if domain == "nonzero":
        return np.asarray(rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape))
    if domain == "zeros":  # about a third exact zeros
        return np.asarray(rng.standard_normal(shape) * (rng.uniform(size=shape) > 0.35))
    if domain == "halves":  # many ties of round/floor's neighbourhood are irrelevant (zero gradient); x.5 values
        return np.asarray(rng.integers(-6, 6, shape) + rng.choice([0.5, 0.25, 0.0], shape))
    if domain == "nonfinite":
        x = np.asarray(rng.standard_normal(shape))
        return np.where(rng.uniform(size=shape) < 0.3, rng.choice([np.nan, np.inf, -np.inf], shape), x)
    lo, hi = lo_hi[domain]
    return np.asarray(rng.uniform(lo, hi, shape))


@dataclass(frozen=True)
class Case:
    prim: Primitive
    dm_fn: Callable[..., Any]
    torch_fn: Callable[..., Any]
    domains: tuple[str, ...] = ("any",)
    tol: float = 1e-10


def _cbrt(t: torch.Tensor) -> torch.Tensor:
    return torch.sign(t) * t.abs() ** (1 / 3)


UNARY = {
    "tan": Case(ops.tan, dm.tan, torch.tan, ("tan",)),
    "sinh": Case(ops.sinh, dm.sinh, torch.sinh),
    "cosh": Case(ops.cosh, dm.cosh, torch.cosh),
    "arcsin": Case(ops.arcsin, dm.arcsin, torch.asin, ("unit",)),
    "arccos": Case(ops.arccos, dm.arccos, torch.acos, ("unit",)),
    "arctan": Case(ops.arctan, dm.arctan, torch.atan, ("moderate",)),
    "arcsinh": Case(ops.arcsinh, dm.arcsinh, torch.asinh, ("moderate",)),
    "arccosh": Case(ops.arccosh, dm.arccosh, torch.acosh, ("gt1",)),
    "arctanh": Case(ops.arctanh, dm.arctanh, torch.atanh, ("unit",)),
    "expm1": Case(ops.expm1, dm.expm1, torch.expm1),
    "exp2": Case(ops.exp2, dm.exp2, torch.exp2),
    "log2": Case(ops.log2, dm.log2, torch.log2, ("positive",)),
    "log10": Case(ops.log10, dm.log10, torch.log10, ("positive",)),
    "square": Case(ops.square, dm.square, torch.square),
    "reciprocal": Case(ops.reciprocal, dm.reciprocal, torch.reciprocal, ("nonzero",)),
    "cbrt": Case(ops.cbrt, dm.cbrt, _cbrt, ("nonzero",)),
    "sign": Case(ops.sign, dm.sign, torch.sign, ("zeros",)),
    "floor": Case(ops.floor, dm.floor, torch.floor, ("halves",)),
    "ceil": Case(ops.ceil, dm.ceil, torch.ceil, ("halves",)),
    "round": Case(ops.round, dm.round, torch.round, ("halves",)),  # half to even in both
    "round-decimals": Case(ops.round, lambda x: dm.round(x, decimals=1), lambda t: torch.round(t, decimals=1)),
    "nan_to_num": Case(ops.nan_to_num, dm.nan_to_num, torch.nan_to_num, ("nonfinite",)),
    "nan_to_num-args": Case(ops.nan_to_num, lambda x: dm.nan_to_num(x, nan=1.5, posinf=9.0, neginf=-9.0),
                            lambda t: torch.nan_to_num(t, nan=1.5, posinf=9.0, neginf=-9.0), ("nonfinite",)),
    # dm.special
    "erfc": Case(special.erfc, dm.erfc, ts.erfc, ("moderate",)),
    "erfinv": Case(special.erfinv, dm.erfinv, ts.erfinv, ("unit",)),
    "gammaln": Case(special.gammaln, dm.gammaln, ts.gammaln, ("positive",), SPECIAL_TOL),
    "digamma": Case(special.digamma, dm.digamma, ts.digamma, ("positive",), SPECIAL_TOL),
    "polygamma1": Case(special._polygamma, lambda x: dm.polygamma(1, x), lambda t: ts.polygamma(1, t),
                       ("positive",), SPECIAL_TOL),
    "polygamma3": Case(special._polygamma, lambda x: dm.special.polygamma(3, x), lambda t: ts.polygamma(3, t),
                       ("positive",), SPECIAL_TOL),
    "logit": Case(special.logit, dm.logit, ts.logit, ("prob",)),
    "expit": Case(ops.sigmoid, dm.special.expit, ts.expit, ("moderate",)),
    "ndtr": Case(special.ndtr, dm.ndtr, ts.ndtr, ("moderate",)),
    "log_ndtr": Case(special.log_ndtr, dm.special.log_ndtr, ts.log_ndtr, ("wide",)),
}

BINARY = {
    "arctan2": Case(ops.arctan2, dm.arctan2, torch.atan2, ("any", "nonzero")),
    "hypot": Case(ops.hypot, dm.hypot, torch.hypot),
    "logaddexp": Case(ops.logaddexp, dm.logaddexp, torch.logaddexp),
    "fmax": Case(ops.fmax, dm.fmax, torch.fmax),  # continuous data: no ties
    "fmin": Case(ops.fmin, dm.fmin, torch.fmin),
    "remainder": Case(ops.remainder, dm.remainder, torch.remainder, ("any", "nonzero")),
    "mod": Case(ops.mod, dm.mod, torch.remainder, ("any", "nonzero")),
    "%": Case(ops.remainder, lambda a, b: a % b, lambda a, b: a % b, ("any", "nonzero")),
    "xlogy": Case(special.xlogy, dm.xlogy, ts.xlogy, ("zeros", "positive")),
}

# the coverage hook of test_jvp_torch: every primitive these tables run through check_jvp
_NAMES: dict[int, str] = {}  # the first name of each primitive object (remainder, not its alias mod), as there
for _module in (ops, special):
    for _name, _v in vars(_module).items():
        if isinstance(_v, Primitive):
            _NAMES.setdefault(id(_v), _name)
JVP_COVERED = sorted({_NAMES[id(c.prim)] for table in (UNARY, BINARY) for c in table.values()})

# the flop-table hook of test_flop_table: one flop per output element, uncounted by torch's FlopCounterMode
_X = np.linspace(-0.9, 0.9, 12).reshape(3, 4)
_P = np.linspace(0.1, 0.9, 12).reshape(3, 4)
_R = np.linspace(0.5, 2.0, 4)


def _unary_flops(name: str, x: np.ndarray = _X) -> tuple[Callable[[], Any], Callable[[], Any], int]:
    c = UNARY[name]
    return (lambda: c.dm_fn(x), lambda: c.torch_fn(torch.tensor(x)), x.size)


def _binary_flops(name: str) -> tuple[Callable[[], Any], Callable[[], Any], int]:
    c = BINARY[name]
    return (lambda: c.dm_fn(_P, _R), lambda: c.torch_fn(torch.tensor(_P), torch.tensor(_R)), _P.size)


FLOP_CONVENTION = {
    **{name: _unary_flops(name) for name in ("tan", "sinh", "cosh", "arcsin", "arccos", "arctan", "arcsinh",
                                             "arctanh", "expm1", "exp2", "square", "reciprocal", "cbrt", "sign",
                                             "floor", "ceil", "round", "nan_to_num", "erfc", "erfinv", "ndtr",
                                             "log_ndtr")},
    **{name: _unary_flops(name, _P) for name in ("log2", "log10", "gammaln", "digamma", "logit")},
    "arccosh": _unary_flops("arccosh", _P + 1.0),
    "polygamma": _unary_flops("polygamma1", _P),
    **{name: _binary_flops(name) for name in ("arctan2", "hypot", "logaddexp", "fmax", "fmin", "remainder",
                                              "xlogy")},
}


unary_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
binary_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4)


@pytest.mark.parametrize("name", list(UNARY))
@FEW
@given(shape=unary_shapes, seed=seeds)
def test_unary_forward_and_vjp(name, shape, seed):
    c = UNARY[name]
    x = draw(np.random.default_rng(seed), shape, c.domains[0])
    compare(c.dm_fn, c.torch_fn, x, seed=seed, rtol=c.tol, atol=c.tol * 1e-2)


@pytest.mark.parametrize("name", list(UNARY))
@FEW
@given(shape=unary_shapes, seed=seeds)
def test_unary_jvp(name, shape, seed):
    c = UNARY[name]
    x = draw(np.random.default_rng(seed), shape, c.domains[0])
    check_jvp(c.prim, c.dm_fn, c.torch_fn, x, seed=seed, rtol=c.tol, atol=c.tol * 1e-2)


@pytest.mark.parametrize("name", list(BINARY))
@FEW
@given(shapes=binary_shapes, seed=seeds)
def test_binary_forward_and_vjp(name, shapes, seed):
    c = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = (draw(rng, s, d) for s, d in zip(shapes.input_shapes, (c.domains * 2)[:2], strict=True))
    _, outs = compare(c.dm_fn, c.torch_fn, a, b, seed=seed, rtol=c.tol, atol=c.tol * 1e-2)
    assert outs[0].shape == shapes.result_shape


@pytest.mark.parametrize("name", list(BINARY))
@FEW
@given(shapes=binary_shapes, seed=seeds)
def test_binary_jvp(name, shapes, seed):
    c = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = (draw(rng, s, d) for s, d in zip(shapes.input_shapes, (c.domains * 2)[:2], strict=True))
    out, _ = check_jvp(c.prim, c.dm_fn, c.torch_fn, a, b, seed=seed, rtol=c.tol, atol=c.tol * 1e-2)
    assert out.shape == shapes.result_shape


@pytest.mark.parametrize(("f", "tf"), [
    (lambda x: x % 1.5, lambda t: t % 1.5),
    # __rmod__ (torch has no derivative for a scalar % tensor: a full tensor there)
    (lambda x: 2.5 % x, lambda t: torch.full_like(t, 2.5) % t),
    (lambda x: np.float64(-2.5) % x, lambda t: torch.full_like(t, -2.5) % t),
    (lambda x: dm.xlogy(2.0, x), lambda t: ts.xlogy(2.0, t)),
    (lambda x: dm.arctan2(1.0, x), lambda t: torch.atan2(torch.tensor(1.0, dtype=torch.float64), t)),
], ids=["mod-scalar", "rmod", "rmod-np", "xlogy-const-x", "atan2-const-y"])
def test_scalar_operands(f, tf):
    x = draw(np.random.default_rng(5), (3, 4), "nonzero") + 3.0
    compare(f, tf, x)
    check_jvp(None, f, tf, x)


# ----- second order -------------------------------------------------------------------------------------------
SECOND = ["tan", "arcsin", "arccosh", "arctanh", "cbrt", "erfinv", "gammaln", "digamma", "polygamma1", "logit",
          "log_ndtr", "ndtr", "reciprocal", "expm1"]


@pytest.mark.parametrize("name", SECOND)
def test_unary_second_order(name):
    """Reverse over reverse against torch's double backward, and dm.hvp (forward over reverse)."""
    c = UNARY[name]
    rng = np.random.default_rng(11)
    x0, w, v = draw(rng, (2, 3), c.domains[0]), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))

    def loss(x):
        return dm.sum(c.dm_fn(x) * w)

    hv = dm.grad(lambda x: dm.sum(dm.grad(loss)(x) * v))(x0)
    xt = torch.tensor(x0, requires_grad=True)
    (g,) = torch.autograd.grad((c.torch_fn(xt) * torch.from_numpy(w)).sum(), xt, create_graph=True)
    (thv,) = torch.autograd.grad((g * torch.from_numpy(v)).sum(), xt)
    np.testing.assert_allclose(hv, thv.numpy(), rtol=c.tol * 10, atol=1e-11)
    np.testing.assert_allclose(dm.hvp(loss, x0, v), thv.numpy(), rtol=c.tol * 10, atol=1e-11)


@pytest.mark.parametrize("name", ["arctan2", "hypot", "logaddexp", "xlogy", "remainder"])
def test_binary_second_order(name):
    c = BINARY[name]
    rng = np.random.default_rng(12)
    da, db = (c.domains * 2)[:2]
    a0, b0 = draw(rng, (3, 1), "nonzero" if da == "zeros" else da), draw(rng, (4,), db)
    w, va, vb = rng.standard_normal((3, 4)), rng.standard_normal((3, 1)), rng.standard_normal(4)

    def loss(a, b):
        return dm.sum(c.dm_fn(a, b) * w)

    def gv(a, b):
        ga, gb = dm.grad(loss, argnums=(0, 1))(a, b)
        return dm.sum(ga * va) + dm.sum(gb * vb)

    ha, hb = dm.grad(gv, argnums=(0, 1))(a0, b0)
    at, bt = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    ga, gb = torch.autograd.grad((c.torch_fn(at, bt) * torch.from_numpy(w)).sum(), (at, bt), create_graph=True)
    tha, thb = torch.autograd.grad((ga * torch.from_numpy(va)).sum() + (gb * torch.from_numpy(vb)).sum(), (at, bt),
                                   allow_unused=True)
    tha = torch.zeros_like(at) if tha is None else tha
    thb = torch.zeros_like(bt) if thb is None else thb
    np.testing.assert_allclose(ha, tha.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(hb, thb.numpy(), rtol=1e-9, atol=1e-11)


def test_polygamma_derivatives_of_every_order():
    """d^k/dx^k gammaln = polygamma(k - 1): four nested grads, against SciPy."""
    x0 = np.array([0.4, 1.3, 5.0])
    f = dm.gammaln
    for k in range(1, 5):
        prev = f
        f = (lambda p: lambda x: dm.grad(lambda y: dm.sum(p(y)))(x))(prev)
        np.testing.assert_allclose(f(x0), sps.polygamma(k - 1, x0), rtol=1e-12)


# ----- semantics ----------------------------------------------------------------------------------------------
def test_names_and_namespace():
    assert dm.expit is dm.sigmoid and dm.special.expit is dm.sigmoid
    assert dm.mod is dm.remainder
    for name in special.__all__:
        assert getattr(dm.special, name) is getattr(dm, name), name
    assert dm.special.erf is dm.erf


def test_plain_in_plain_out_and_dtypes():
    x = np.linspace(0.1, 0.9, 5)
    for f in (dm.tan, dm.arcsin, dm.square, dm.cbrt, dm.floor, dm.erfinv, dm.logit, dm.log_ndtr, dm.gammaln):
        out = f(x)
        assert type(out) is np.ndarray and out.dtype == np.float64, f
    assert type(dm.hypot(x, x)) is np.ndarray and type(dm.polygamma(2, x)) is np.ndarray
    x32 = x.astype(np.float32)
    t = dm.tensor(x32, requires_grad=True)
    dm.sum(dm.arctanh(t) + dm.hypot(t, t) + dm.square(t) + dm.expm1(t)).backward()
    assert t.grad.dtype == np.float32
    assert dm.square(np.arange(3)).dtype == np.square(np.arange(3)).dtype  # NumPy's integer semantics


def test_numpy_values_exactly():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 3)), rng.uniform(0.5, 2, (3,))
    for f, nf in [(dm.sinh, np.sinh), (dm.exp2, np.exp2), (dm.sign, np.sign), (dm.round, np.round),
                  (dm.erfc, sps.erfc), (dm.ndtr, sps.ndtr)]:
        np.testing.assert_array_equal(f(dm.tensor(x)).data, nf(x))
    for f, nf in [(dm.remainder, np.remainder), (dm.fmax, np.fmax), (dm.logaddexp, np.logaddexp),
                  (dm.xlogy, sps.xlogy), (dm.arctan2, np.arctan2)]:
        np.testing.assert_array_equal(f(dm.tensor(x), y).data, nf(x, y))


def test_zero_gradient_ops_stay_on_the_tape():
    """sign, floor, ceil, round: primitives with zero derivatives (PyTorch's convention), so a function
    built from them is differentiable and its gradient through them is 0."""
    x0 = np.array([-1.7, -0.5, 0.0, 0.3, 2.5])
    for f in (dm.sign, dm.floor, dm.ceil, dm.round):
        np.testing.assert_array_equal(dm.grad(lambda x, f=f: dm.sum(f(x)))(x0), np.zeros(5))
        np.testing.assert_array_equal(dm.grad(lambda x, f=f: dm.sum(f(x) * x))(x0), np.asarray(f(x0)))
        out = f(dm.tensor(x0, requires_grad=True))
        assert out.requires_grad and out.op_name == f.name
        _, jv = dm.jvp(f, (x0,), (np.ones(5),))
        np.testing.assert_array_equal(jv, np.zeros(5))
    # x - floor(x): the fractional part, derivative 1, also at second order 0
    assert dm.grad(lambda x: dm.sum(x - dm.floor(x)))(x0).tolist() == [1.0] * 5


def test_remainder_gradient_in_the_divisor():
    """d(x mod y)/dy = -floor(x/y), as torch.remainder; the sign follows the divisor, as NumPy."""
    x, y = np.array([5.5, -5.5, 5.5, -5.5]), np.array([2.0, 2.0, -2.0, -2.0])
    gx, gy = dm.grad(lambda a, b: dm.sum(a % b), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, np.ones(4))
    np.testing.assert_array_equal(gy, -np.floor_divide(x, y))
    np.testing.assert_array_equal(np.asarray(dm.tensor(x) % y), np.remainder(x, y))


def test_fmax_fmin_nan_semantics_and_ties():
    """NaN is ignored (NumPy's fmax): the gradient goes to the non-NaN operand; ties split ½–½ as maximum
    (torch.fmax gives a tie wholly to its first operand: a deliberate difference)."""
    x = np.array([np.nan, 1.0, 2.0, np.nan, 3.0])
    y = np.array([1.0, np.nan, 2.0, np.nan, 1.0])
    for f, nf in ((dm.fmax, np.fmax), (dm.fmin, np.fmin)):
        a, b = dm.tensor(x, requires_grad=True), dm.tensor(y, requires_grad=True)
        out = f(a, b)
        np.testing.assert_array_equal(out.data, nf(x, y))
        dm.sum(out).backward()
        wins_x = 1.0 if f is dm.fmax else 0.0
        np.testing.assert_array_equal(a.grad.data, [0.0, 1.0, 0.5, 1.0, wins_x])
        np.testing.assert_array_equal(b.grad.data, [1.0, 0.0, 0.5, 0.0, 1 - wins_x])
        _, jv = dm.jvp(f, (x, y), (np.ones(5), 2 * np.ones(5)))
        np.testing.assert_array_equal(jv, [2.0, 1.0, 1.5, 1.0, 2 - wins_x])
    # away from ties, torch agrees (NaN inputs included)
    xt, yt = torch.tensor(x[[0, 1, 4]], requires_grad=True), torch.tensor(y[[0, 1, 4]], requires_grad=True)
    torch.fmax(xt, yt).sum().backward()
    a, b = dm.tensor(x[[0, 1, 4]], requires_grad=True), dm.tensor(y[[0, 1, 4]], requires_grad=True)
    dm.sum(dm.fmax(a, b)).backward()
    np.testing.assert_array_equal(a.grad.data, xt.grad.numpy())
    np.testing.assert_array_equal(b.grad.data, yt.grad.numpy())


def test_hypot_and_xlogy_at_the_origin():
    """hypot's gradient at (0, 0) and xlogy's d/dy at x = 0 are 0 (PyTorch: NaN from 0/0)."""
    z = np.zeros(2)
    gx, gy = dm.grad(lambda a, b: dm.sum(dm.hypot(a, b)), argnums=(0, 1))(z, z)
    assert gx.tolist() == [0.0, 0.0] and gy.tolist() == [0.0, 0.0]
    _, jv = dm.jvp(dm.hypot, (z, z), (np.ones(2), np.ones(2)))
    assert jv.tolist() == [0.0, 0.0]
    x, y = np.array([0.0, 0.0, 2.0]), np.array([0.0, 3.0, 3.0])
    assert dm.xlogy(x, y).tolist() == [0.0, 0.0, 2 * np.log(3.0)]
    gx, gy = dm.grad(lambda a, b: dm.sum(dm.xlogy(a, b)), argnums=(0, 1))(x, y)
    assert gy.tolist() == [0.0, 0.0, 2 / 3]
    # d/dx = log y, also at x = 0, except where y <= 0 too (0 there), as torch's xlogy
    assert gx.tolist() == [0.0, np.log(3.0), np.log(3.0)]
    _, jv = dm.jvp(dm.xlogy, (x, y), (np.zeros(3), np.ones(3)))
    assert jv.tolist() == [0.0, 0.0, 2 / 3]


def test_log_ndtr_is_stable_far_in_the_tail():
    """log Φ(x) and its derivative φ/Φ ≈ -x at x = -40, -200 (Φ itself underflows to 0 there)."""
    x0 = np.array([-200.0, -40.0, -5.0, 0.0, 8.0, 40.0])
    xt = torch.tensor(x0, requires_grad=True)
    ts.log_ndtr(xt).sum().backward()
    g = dm.grad(lambda x: dm.sum(dm.log_ndtr(x)))(x0)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(dm.log_ndtr(x0), ts.log_ndtr(torch.tensor(x0)).numpy(), rtol=1e-12)
    _, jv = dm.jvp(dm.log_ndtr, (x0,), (np.ones(6),))
    np.testing.assert_allclose(jv, xt.grad.numpy(), rtol=1e-10, atol=1e-300)


def test_logaddexp_is_stable_for_large_arguments():
    x, y = np.array([1000.0, -1000.0, 0.0]), np.array([999.0, -1001.0, 0.0])
    gx, gy = dm.grad(lambda a, b: dm.sum(dm.logaddexp(a, b)), argnums=(0, 1))(x, y)
    s = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(gx, [s, s, 0.5], rtol=1e-14)
    np.testing.assert_allclose(gy, [1 - s, 1 - s, 0.5], rtol=1e-14)


@pytest.mark.parametrize(("f", "x", "name"), [
    (dm.arcsin, 2.0, "arcsin"), (dm.arccosh, 0.5, "arccosh"), (dm.log2, -1.0, "log2"),
    (dm.logit, 1.5, "logit"), (dm.erfinv, 1.0, "erfinv"), (dm.gammaln, -2.0, "gammaln"),
    (lambda t: dm.polygamma(1, t), 0.0, "polygamma"), (dm.reciprocal, 0.0, "reciprocal"),
])
def test_outside_the_domain_numpy_semantics_and_anomaly(f, x, name):
    """The forward gives NumPy/SciPy's value (NaN or inf); detect_anomaly names the op."""
    arr = np.array([0.5 if name not in ("arccosh",) else 1.5, x])
    with np.errstate(all="ignore"):
        plain = f(arr)
    assert not np.isfinite(plain[1])
    with dm.detect_anomaly(), pytest.raises(dm.AnomalyError, match=f"'{name}'"), np.errstate(all="ignore"):
        f(dm.tensor(arr, requires_grad=True))


def test_anomaly_in_the_backward_names_the_op():
    """arcsin at 1 is finite (π/2), its derivative is infinite: the backward phase names it."""
    with dm.detect_anomaly(), np.errstate(all="ignore"):
        t = dm.tensor([0.2, 1.0], requires_grad=True)
        out = dm.sum(dm.arcsin(t))
        with pytest.raises(dm.AnomalyError, match=r"backward .*'arcsin'"):
            out.backward()


def test_polygamma_order_is_checked():
    with pytest.raises(dm.DlmathError, match="polygamma: n must be a non-negative integer"):
        dm.polygamma(-1, 1.0)
    with pytest.raises(dm.DlmathError, match="polygamma"):
        dm.polygamma(1.5, 1.0)
    np.testing.assert_array_equal(dm.polygamma(0, np.array([0.7, 3.0])), sps.digamma([0.7, 3.0]))
    # an array of orders broadcasts as SciPy's
    np.testing.assert_allclose(dm.polygamma(np.array([1, 2]), np.array([0.7, 3.0])), sps.polygamma([1, 2], [0.7, 3.0]))


def test_flops_one_per_output_element():
    x = np.ones((3, 4))
    with dm.count_flops() as c:
        dm.square(x), dm.hypot(x, x[0]), dm.erfinv(x * 0.5), dm.floor(x)
    assert c.total == 4 * 12  # x * 0.5 on plain arrays is NumPy's own, not the engine's
