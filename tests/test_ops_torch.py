"""Every op of the ``dm`` namespace against PyTorch (float64): forward values and gradients.

PyTorch is the oracle: for each op the same inputs go through dlmath and through
torch, the forward outputs are compared, then both sides backpropagate the same random
cotangent (``(out * ct).sum().backward()``) and the input gradients are compared.
Hypothesis draws shapes (with broadcasting, so that the engine's reduction of broadcast
gradients is exercised) for the elementwise binary ops, reductions, matmul and softmax.
"""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dlmath as dm
from _cases import EINSUM_CASES, shape_and_axis

RTOL = 1e-10
ATOL = 1e-12
HYP = settings(max_examples=40, deadline=None)
FEW = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**32 - 1)


# ----- the comparison harness ---------------------------------------------------------------------------
def _np_dtype(t: torch.Tensor) -> np.dtype:
    return torch.empty(0, dtype=t.dtype).numpy().dtype


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _close(actual, desired, rtol, atol, what):
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, equal_nan=False, err_msg=what)


def compare(dm_fn, torch_fn, *arrays, rtol=RTOL, atol=ATOL, seed=0, grad_rtol=None, grad_atol=None):
    """Run dm_fn on dm Tensors and torch_fn on torch tensors made from ``arrays``; compare
    outputs (shape, dtype, values) and the gradients of sum(out * ct) for a random ct."""
    grad_rtol = rtol if grad_rtol is None else grad_rtol
    grad_atol = atol if grad_atol is None else grad_atol
    rng = np.random.default_rng(seed + 7)
    xs = [dm.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    outs, touts = _as_list(dm_fn(*xs)), _as_list(torch_fn(*ts))
    assert len(outs) == len(touts)
    loss, tloss = 0.0, 0.0
    for k, (o, to) in enumerate(zip(outs, touts, strict=True)):
        assert isinstance(o, dm.Tensor), type(o)
        assert o.shape == tuple(to.shape), (o.shape, tuple(to.shape))
        assert o.dtype == _np_dtype(to), (o.dtype, to.dtype)
        _close(o.data, to.detach().numpy(), rtol, atol, f"forward output {k}")
        ct = rng.standard_normal(o.shape).astype(o.dtype)
        loss = loss + (o * ct).sum()
        tloss = tloss + (to * torch.from_numpy(np.array(ct))).sum()
    loss.backward()
    tloss.backward()
    for k, (x, t) in enumerate(zip(xs, ts, strict=True)):
        tg = np.zeros(t.shape, dtype=_np_dtype(t)) if t.grad is None else t.grad.numpy()
        assert x.grad is not None, f"no gradient reached input {k}"
        assert x.grad.shape == x.shape and x.grad.dtype == x.dtype, (x.grad.shape, x.grad.dtype, x.shape, x.dtype)
        _close(x.grad.data, tg, grad_rtol, grad_atol, f"gradient of input {k}")
    return xs, outs


def data(rng: np.random.Generator, shape, domain: str = "any") -> np.ndarray:
    shape = tuple(shape)
    if domain == "any":
        return rng.standard_normal(shape)
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "nonzero":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    if domain == "gt-1":
        return rng.uniform(-0.6, 2.0, shape)
    if domain == "moderate":
        return rng.uniform(-4.0, 4.0, shape)
    raise ValueError(domain)


# ----- elementwise binary ops with broadcasting ------------------------------------------------------------
BINARY = {
    "+": (lambda a, b: a + b, lambda a, b: a + b, "any", "any"),
    "-": (lambda a, b: a - b, lambda a, b: a - b, "any", "any"),
    "*": (lambda a, b: a * b, lambda a, b: a * b, "any", "any"),
    "/": (lambda a, b: a / b, lambda a, b: a / b, "any", "nonzero"),
    "**": (lambda a, b: a ** b, lambda a, b: a ** b, "positive", "any"),
    "add": (dm.add, torch.add, "any", "any"),
    "subtract": (dm.subtract, torch.subtract, "any", "any"),
    "multiply": (dm.multiply, torch.multiply, "any", "any"),
    "divide": (dm.divide, torch.divide, "nonzero", "nonzero"),
    "power": (dm.power, torch.pow, "positive", "any"),
    "maximum": (dm.maximum, torch.maximum, "any", "any"),
    "minimum": (dm.minimum, torch.minimum, "any", "any"),
}


@pytest.mark.parametrize("name", list(BINARY))
@HYP
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4), seed=seeds)
def test_binary_broadcasting(name, shapes, seed):
    f, tf, da, db = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = data(rng, shapes.input_shapes[0], da), data(rng, shapes.input_shapes[1], db)
    _, outs = compare(f, tf, a, b, seed=seed)
    assert outs[0].shape == shapes.result_shape


@pytest.mark.parametrize(("f", "tf", "domain"), [
    (lambda x: x ** 2, lambda x: x ** 2, "any"),
    (lambda x: x ** 3, lambda x: x ** 3, "any"),
    (lambda x: x ** 0.5, lambda x: x ** 0.5, "positive"),
    (lambda x: x ** -1.5, lambda x: x ** -1.5, "positive"),
    (lambda x: 2.0 ** x, lambda x: 2.0 ** x, "any"),
    (lambda x: 1.0 / x, lambda x: 1.0 / x, "nonzero"),
    (lambda x: 3.0 - x, lambda x: 3.0 - x, "any"),
    (lambda x: 2.5 * x + 1.0, lambda x: 2.5 * x + 1.0, "any"),
    (lambda x: x / 4.0 - 1.0, lambda x: x / 4.0 - 1.0, "any"),
    (lambda x: -x, lambda x: -x, "any"),
    (lambda x: +x * x, lambda x: +x * x, "any"),
    (lambda x: x ** x, lambda x: x ** x, "positive"),
    (lambda x: dm.power(x, 0.0), lambda x: torch.pow(x, 0.0), "any"),
], ids=["sq", "cube", "sqrtpow", "negpow", "rpow", "rdiv", "rsub", "affine", "div-scalar", "neg", "pos",
        "x**x", "pow0"])
def test_scalar_operands(f, tf, domain):
    compare(f, tf, data(np.random.default_rng(1), (3, 4), domain))


def test_power_exponent_zero_at_zero_base():
    """d(x^y)/dx is 0 where y == 0, also where x == 0 (PyTorch masks y == 0 elementwise)."""
    x = np.array([0.0, 0.0, 2.0, 0.0, 1.5])
    y = np.array([0.0, 2.0, 0.0, 3.0, 2.5])
    compare(lambda a: a ** y, lambda a: a ** torch.tensor(y), x)


# ----- unary elementwise ops -------------------------------------------------------------------------------
UNARY = {
    "negative": (dm.negative, torch.neg, "any"),
    "abs": (dm.abs, torch.abs, "any"),
    "exp": (dm.exp, torch.exp, "any"),
    "log": (dm.log, torch.log, "positive"),
    "log1p": (dm.log1p, torch.log1p, "gt-1"),
    "sqrt": (dm.sqrt, torch.sqrt, "positive"),
    "sin": (dm.sin, torch.sin, "any"),
    "cos": (dm.cos, torch.cos, "any"),
    "tanh": (dm.tanh, torch.tanh, "any"),
    "sigmoid": (dm.sigmoid, torch.sigmoid, "moderate"),
    "relu": (dm.relu, torch.relu, "any"),
    "softplus": (dm.softplus, F.softplus, "moderate"),
    "erf": (dm.erf, torch.erf, "any"),
    "gelu": (dm.gelu, lambda t: F.gelu(t, approximate="none"), "moderate"),
    "gelu-tanh": (lambda x: dm.gelu(x, approximate="tanh"), lambda t: F.gelu(t, approximate="tanh"), "moderate"),
    "abs-method": (lambda x: abs(x), torch.abs, "any"),
    "exp-method": (lambda x: x.exp(), torch.exp, "any"),
    "log-method": (lambda x: x.log(), torch.log, "positive"),
    "sqrt-method": (lambda x: x.sqrt(), torch.sqrt, "positive"),
    "tanh-method": (lambda x: x.tanh(), torch.tanh, "any"),
    "sigmoid-method": (lambda x: x.sigmoid(), torch.sigmoid, "any"),
    "relu-method": (lambda x: x.relu(), torch.relu, "any"),
}


@pytest.mark.parametrize("name", list(UNARY))
@FEW
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5), seed=seeds)
def test_unary(name, shape, seed):
    f, tf, domain = UNARY[name]
    compare(f, tf, data(np.random.default_rng(seed), shape, domain), seed=seed)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        dm.gelu(dm.tensor([1.0]), approximate="erf")


def test_kinks_match_pytorch_conventions():
    """At the kinks: relu'(0) = 0, abs'(0) = 0, clip passes the gradient on its bounds."""
    x = np.array([-1.0, 0.0, 0.5, -0.5, 2.0, 1.0])
    compare(dm.relu, torch.relu, x)
    compare(dm.abs, torch.abs, x)
    compare(lambda a: dm.clip(a, -0.5, 1.0), lambda t: torch.clamp(t, -0.5, 1.0), x)


# ----- maximum / minimum / where / clip -------------------------------------------------------------------
def test_elementwise_max_min_ties_split_like_pytorch():
    a = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
    b = np.array([1.0, 0.0, 3.0])
    compare(dm.maximum, torch.maximum, a, b)
    compare(dm.minimum, torch.minimum, a, b)


@FEW
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=4), seed=seeds)
def test_where_broadcasting(shapes, seed):
    rng = np.random.default_rng(seed)
    cond = np.asarray(rng.standard_normal(shapes.input_shapes[0]) > 0)
    a, b = data(rng, shapes.input_shapes[1]), data(rng, shapes.input_shapes[2])
    compare(lambda x, y: dm.where(cond, x, y), lambda x, y: torch.where(torch.from_numpy(cond), x, y), a, b,
            seed=seed)
    # the condition may also be a (constant) Tensor, and a branch a Python scalar
    compare(lambda x: dm.where(dm.tensor(cond), x, 0.5), lambda x: torch.where(torch.from_numpy(cond), x, 0.5), a)


@pytest.mark.parametrize(("lo", "hi"), [(-0.5, 0.7), (0.1, None), (None, 0.2), ("array", "array"), ("bigger", 0.8)])
def test_clip(lo, hi):
    rng = np.random.default_rng(3)
    x = data(rng, (4, 5))
    if lo == "bigger":  # an array bound that broadcasts x to a larger shape
        lo_a = rng.uniform(-1, 0, (3, 4, 5))
        hi_t = torch.tensor(hi, dtype=torch.float64)
        compare(lambda a: dm.clip(a, lo_a, hi), lambda t: torch.clamp(t, torch.tensor(lo_a), hi_t), x)
        return
    if lo == "array":
        lo_a, hi_a = rng.uniform(-1, 0, (4, 5)), rng.uniform(0, 1, (5,))
        compare(lambda a: dm.clip(a, lo_a, hi_a), lambda t: torch.clamp(t, torch.tensor(lo_a), torch.tensor(hi_a)), x)
        compare(lambda a: a.clip(lo_a, hi_a), lambda t: torch.clamp(t, torch.tensor(lo_a), torch.tensor(hi_a)), x)
        return
    compare(lambda a: dm.clip(a, lo, hi), lambda t: torch.clamp(t, lo, hi), x)


# ----- matmul -------------------------------------------------------------------------------------------
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
    compare(lambda x, y: x @ y, torch.matmul, a, b, seed=seed)
    compare(dm.matmul, torch.matmul, a, b, seed=seed + 1)


def test_matmul_chain_and_constant_operands():
    rng = np.random.default_rng(5)
    a, b, c = data(rng, (2, 3)), data(rng, (3, 4)), data(rng, (4,))
    compare(lambda x, y, z: (x @ y) @ z, lambda x, y, z: (x @ y) @ z, a, b, c)
    const = data(rng, (5, 2))
    # ndarray @ Tensor and Tensor @ ndarray defer to the Tensor and record the product
    compare(lambda y: const @ dm.tanh(y), lambda y: torch.from_numpy(const) @ torch.tanh(y), a)
    compare(lambda y: y @ b, lambda y: y @ torch.from_numpy(b), a)


# ----- reductions ---------------------------------------------------------------------------------------
def _torch_prod(t, dims, keepdim):
    for d in sorted((d % t.ndim for d in dims), reverse=True):
        t = t.prod(dim=d, keepdim=True)
    if not keepdim:
        t = t.reshape([s for i, s in enumerate(t.shape) if i not in {d % t.ndim for d in dims}])
    return t


REDUCTIONS = {
    "sum": (lambda x, ax, k: dm.sum(x, axis=ax, keepdims=k), lambda t, d, k: torch.sum(t, dim=d, keepdim=k), 0),
    "mean": (lambda x, ax, k: dm.mean(x, axis=ax, keepdims=k), lambda t, d, k: torch.mean(t, dim=d, keepdim=k), 0),
    "var0": (lambda x, ax, k: dm.var(x, axis=ax, keepdims=k),
             lambda t, d, k: torch.var(t, dim=d, correction=0, keepdim=k), 0),
    "var1": (lambda x, ax, k: dm.var(x, axis=ax, ddof=1, keepdims=k),
             lambda t, d, k: torch.var(t, dim=d, correction=1, keepdim=k), 1),
    "std0": (lambda x, ax, k: dm.std(x, axis=ax, keepdims=k),
             lambda t, d, k: torch.std(t, dim=d, correction=0, keepdim=k), 1),
    "std1": (lambda x, ax, k: dm.std(x, axis=ax, ddof=1, keepdims=k),
             lambda t, d, k: torch.std(t, dim=d, correction=1, keepdim=k), 1),
    "max": (lambda x, ax, k: dm.max(x, axis=ax, keepdims=k), lambda t, d, k: torch.amax(t, dim=d, keepdim=k), 0),
    "min": (lambda x, ax, k: dm.min(x, axis=ax, keepdims=k), lambda t, d, k: torch.amin(t, dim=d, keepdim=k), 0),
    "prod": (lambda x, ax, k: dm.prod(x, axis=ax, keepdims=k), _torch_prod, 0),
    "logsumexp": (lambda x, ax, k: dm.logsumexp(x, axis=ax, keepdims=k),
                  lambda t, d, k: torch.logsumexp(t, dim=d, keepdim=k), 0),
    "sum-method": (lambda x, ax, k: x.sum(axis=ax, keepdims=k), lambda t, d, k: t.sum(dim=d, keepdim=k), 0),
    "mean-method": (lambda x, ax, k: x.mean(axis=ax, keepdims=k), lambda t, d, k: t.mean(dim=d, keepdim=k), 0),
    "var-method": (lambda x, ax, k: x.var(axis=ax, ddof=1, keepdims=k),
                   lambda t, d, k: t.var(dim=d, correction=1, keepdim=k), 1),
    "std-method": (lambda x, ax, k: x.std(axis=ax, keepdims=k),
                   lambda t, d, k: t.std(dim=d, correction=0, keepdim=k), 1),
    "max-method": (lambda x, ax, k: x.max(axis=ax, keepdims=k), lambda t, d, k: t.amax(dim=d, keepdim=k), 0),
    "min-method": (lambda x, ax, k: x.min(axis=ax, keepdims=k), lambda t, d, k: t.amin(dim=d, keepdim=k), 0),
    "prod-method": (lambda x, ax, k: x.prod(axis=ax, keepdims=k), _torch_prod, 0),
    "logsumexp-method": (lambda x, ax, k: x.logsumexp(axis=ax, keepdims=k),
                         lambda t, d, k: torch.logsumexp(t, dim=d, keepdim=k), 0),
}


@st.composite
def shape_axis_keepdims(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    nd = len(shape)
    axis = draw(st.none() | st.integers(-nd, nd - 1) | hnp.valid_tuple_axes(nd, min_size=1))
    return shape, axis, draw(st.booleans())


@pytest.mark.parametrize("name", list(REDUCTIONS))
@HYP
@given(sak=shape_axis_keepdims(), seed=seeds)
def test_reductions(name, sak, seed):
    shape, axis, keepdims = sak
    f, tf, min_count = REDUCTIONS[name]
    dims = tuple(range(len(shape))) if axis is None else (axis,) if isinstance(axis, int) else axis
    count = math.prod(shape[d] for d in dims)
    assume(count > min_count)  # var with ddof=1 and std need two elements (else 0/0 or sqrt'(0))
    domain = "positive" if name.startswith("prod") else "any"
    x = data(np.random.default_rng(seed), shape, domain)
    if name.startswith("prod"):
        x = x * np.random.default_rng(seed + 1).choice([-1.0, 1.0], shape)
    compare(lambda a: f(a, axis, keepdims), lambda t: tf(t, dims, keepdims), x, seed=seed)


def test_prod_with_zeros():
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 4.0], [1.5, -2.0, 0.5]])
    for axis in (None, 0, 1, -1):
        dims = (0, 1) if axis is None else (axis,)
        compare(lambda a: dm.prod(a, axis=axis), lambda t: _torch_prod(t, dims, False), x)


@pytest.mark.parametrize("name", ["max", "min"])
def test_extremum_ties_share_gradient_like_torch_amax(name):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, 1.0, 5.0, 5.0]])
    if name == "min":
        x = -x
    f, tf = (dm.max, torch.amax) if name == "max" else (dm.min, torch.amin)
    compare(lambda a: f(a, axis=1), lambda t: tf(t, dim=1), x)
    compare(lambda a: f(a, axis=0, keepdims=True), lambda t: tf(t, dim=0, keepdim=True), x)
    compare(lambda a: f(a), lambda t: tf(t, dim=(0, 1)), x)
    compare(lambda a: f(a, axis=(0, 1)), lambda t: tf(t), x)
    # the whole-tensor torch.max also splits ties evenly
    compare(lambda a: f(a), torch.max if name == "max" else torch.min, x)


# ----- softmax family -------------------------------------------------------------------------------------
@HYP
@given(sa=shape_and_axis(), seed=seeds)
def test_softmax_and_log_softmax(sa, seed):
    shape, axis = sa
    x = 3 * data(np.random.default_rng(seed), shape)
    compare(lambda a: dm.softmax(a, axis=axis), lambda t: torch.softmax(t, dim=axis), x, seed=seed)
    compare(lambda a: dm.log_softmax(a, axis=axis), lambda t: torch.log_softmax(t, dim=axis), x, seed=seed)
    compare(lambda a: a.softmax(axis), lambda t: t.softmax(axis), x, seed=seed)
    compare(lambda a: a.log_softmax(axis), lambda t: t.log_softmax(axis), x, seed=seed)


def test_softmax_family_large_inputs_stay_finite():
    x = np.array([[1000.0, 999.0, -1000.0], [-800.0, -801.0, -799.5]])
    compare(lambda a: dm.softmax(a, axis=-1), lambda t: torch.softmax(t, -1), x)
    compare(lambda a: dm.log_softmax(a, axis=-1), lambda t: torch.log_softmax(t, -1), x)
    compare(lambda a: dm.logsumexp(a, axis=-1), lambda t: torch.logsumexp(t, -1), x)
    compare(lambda a: dm.logsumexp(a), lambda t: torch.logsumexp(t, (0, 1)), x)


# ----- shape ops ----------------------------------------------------------------------------------------------
SHAPE_CASES = [
    ("reshape", (3, 4), lambda x: dm.reshape(x, (4, -1)), lambda t: t.reshape(4, -1)),
    ("reshape-method", (2, 3, 2), lambda x: x.reshape(6, 2), lambda t: t.reshape(6, 2)),
    ("reshape-tuple", (2, 3, 2), lambda x: x.reshape((3, 1, 4)), lambda t: t.reshape(3, 1, 4)),
    ("view", (2, 6), lambda x: x.view(3, 4), lambda t: t.view(3, 4)),
    ("flatten", (2, 3, 2), lambda x: x.flatten(), lambda t: t.flatten()),
    ("transpose-default", (2, 3, 4), lambda x: dm.transpose(x), lambda t: t.permute(2, 1, 0)),
    ("transpose-axes", (2, 3, 4), lambda x: dm.transpose(x, (1, 2, 0)), lambda t: t.permute(1, 2, 0)),
    ("transpose-negative", (2, 3, 4), lambda x: dm.transpose(x, (-1, 0, -2)), lambda t: t.permute(-1, 0, -2)),
    ("T", (3, 5), lambda x: x.T, lambda t: t.T),
    ("mT", (2, 3, 5), lambda x: x.mT, lambda t: t.mT),
    ("permute", (2, 3, 4, 1), lambda x: dm.permute(x, (2, 0, 3, 1)), lambda t: t.permute(2, 0, 3, 1)),
    ("permute-method", (2, 3, 4), lambda x: x.permute(1, 0, 2), lambda t: t.permute(1, 0, 2)),
    ("transpose-method", (2, 3, 4), lambda x: x.transpose(2, 0, 1), lambda t: t.permute(2, 0, 1)),
    ("swapaxes", (2, 3, 4), lambda x: dm.swapaxes(x, 0, -1), lambda t: torch.swapaxes(t, 0, -1)),
    ("swapaxes-method", (2, 3, 4), lambda x: x.swapaxes(1, 2), lambda t: t.swapaxes(1, 2)),
    ("broadcast_to", (3, 1), lambda x: dm.broadcast_to(x, (2, 3, 4)), lambda t: torch.broadcast_to(t, (2, 3, 4))),
    ("broadcast_to-method", (1, 4), lambda x: x.broadcast_to((3, 2, 4)), lambda t: t.broadcast_to((3, 2, 4))),
    ("expand", (3, 1), lambda x: dm.broadcast_to(x, (5, 3, 2)), lambda t: t.expand(5, 3, 2)),
    ("expand-method", (3, 1), lambda x: x.expand(2, -1, 4), lambda t: t.expand(2, -1, 4)),
    ("expand-method-tuple", (1, 2), lambda x: x.expand((3, -1)), lambda t: t.expand((3, -1))),
    ("squeeze-all", (1, 3, 1, 2), lambda x: dm.squeeze(x), lambda t: torch.squeeze(t)),
    ("squeeze-axis", (1, 3, 1, 2), lambda x: dm.squeeze(x, -2), lambda t: torch.squeeze(t, -2)),
    ("squeeze-tuple", (1, 3, 1, 2), lambda x: dm.squeeze(x, (0, 2)), lambda t: torch.squeeze(t, (0, 2))),
    ("squeeze-method", (3, 1), lambda x: x.squeeze(1), lambda t: t.squeeze(1)),
    ("unsqueeze", (3, 2), lambda x: dm.unsqueeze(x, 1), lambda t: torch.unsqueeze(t, 1)),
    ("unsqueeze-neg", (3, 2), lambda x: dm.unsqueeze(x, -1), lambda t: torch.unsqueeze(t, -1)),
    ("expand_dims", (3, 2), lambda x: dm.expand_dims(x, -3), lambda t: torch.unsqueeze(t, -3)),
    ("unsqueeze-method", (3,), lambda x: x.unsqueeze(0), lambda t: t.unsqueeze(0)),
    ("flip-axis", (3, 4), lambda x: dm.flip(x, 0), lambda t: torch.flip(t, (0,))),
    ("flip-tuple", (2, 3, 4), lambda x: dm.flip(x, (0, -1)), lambda t: torch.flip(t, (0, -1))),
    ("flip-all", (2, 3, 4), lambda x: dm.flip(x), lambda t: torch.flip(t, (0, 1, 2))),
    ("flip-method", (3, 4), lambda x: x.flip(1), lambda t: t.flip(1)),
    ("roll", (3, 5), lambda x: dm.roll(x, 2, axis=1), lambda t: torch.roll(t, 2, 1)),
    ("roll-negative", (3, 5), lambda x: dm.roll(x, -4, axis=-1), lambda t: torch.roll(t, -4, -1)),
    ("roll-tuple", (3, 5), lambda x: dm.roll(x, (1, -2), axis=(0, 1)), lambda t: torch.roll(t, (1, -2), (0, 1))),
    ("roll-flat", (3, 5), lambda x: dm.roll(x, 7), lambda t: torch.roll(t, 7)),
    ("roll-method", (3, 5), lambda x: x.roll(1, 0), lambda t: t.roll(1, 0)),
    ("pad-pairs", (2, 3), lambda x: dm.pad(x, ((1, 2), (0, 3))), lambda t: F.pad(t, (0, 3, 1, 2))),
    ("pad-int", (2, 3), lambda x: dm.pad(x, 1, constant_values=2.5), lambda t: F.pad(t, (1, 1, 1, 1), value=2.5)),
    ("pad-pair", (2, 3, 2), lambda x: dm.pad(x, (2, 1)), lambda t: F.pad(t, (2, 1, 2, 1, 2, 1))),
    ("split-sections", (6, 4), lambda x: dm.split(x, 3), lambda t: torch.split(t, 2)),
    ("split-indices", (3, 7), lambda x: dm.split(x, [2, 3], axis=1), lambda t: torch.split(t, [2, 1, 4], dim=1)),
    ("split-negative-axis", (3, 4), lambda x: dm.split(x, 2, axis=-1), lambda t: torch.split(t, 2, dim=-1)),
    ("astype32", (3, 4), lambda x: dm.astype(x, np.float32), lambda t: t.to(torch.float32)),
    ("astype32-method", (3, 4), lambda x: x.astype(np.float32) * 2.0, lambda t: t.to(torch.float32) * 2.0),
    ("astype-roundtrip", (3,), lambda x: x.astype(np.float32).astype(np.float64),
     lambda t: t.to(torch.float32).to(torch.float64)),
]


@pytest.mark.parametrize(("shape", "f", "tf"), [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_shape_ops(shape, f, tf):
    compare(f, tf, data(np.random.default_rng(11), shape))


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_concatenate_and_stack(axis):
    rng = np.random.default_rng(axis + 20)
    a, b, c = data(rng, (2, 3)), data(rng, (2, 3)), data(rng, (2, 3))
    compare(lambda x, y, z: dm.concatenate([x, y, z], axis=axis), lambda x, y, z: torch.cat([x, y, z], dim=axis),
            a, b, c)
    compare(lambda x, y, z: dm.stack([x, y, z], axis=axis), lambda x, y, z: torch.stack([x, y, z], dim=axis),
            a, b, c)
    # pieces of different length along the axis, and a constant (ndarray) piece
    d = data(rng, (2, 1) if axis in (1, -1) else (1, 3))
    compare(lambda x, y: dm.concatenate([x, d, y], axis=axis),
            lambda x, y: torch.cat([x, torch.from_numpy(d), y], dim=axis), a, b)


# ----- indexing ------------------------------------------------------------------------------------------------
def _slice_idx(n, s):
    return torch.from_numpy(np.arange(n)[s].copy())


IDX = [np.array([0, 2, 0, 0, 3]), np.array([[1, 1], [0, 3]])]
MASK = np.array([True, False, True, True])
INDEX_CASES = [
    ("int", lambda x: x[1], lambda t: t[1]),
    ("negative-int", lambda x: x[-1, 2], lambda t: t[-1, 2]),
    ("slice", lambda x: x[1:3], lambda t: t[1:3]),
    ("slice-step", lambda x: x[::2, 1::2], lambda t: t[::2, 1::2]),
    ("none-ellipsis", lambda x: x[None, ..., 1], lambda t: t[None, ..., 1]),
    ("ellipsis-middle", lambda x: x[1, ..., None, :2], lambda t: t[1, ..., None, :2]),
    ("negative-step", lambda x: x[::-1], lambda t: t[_slice_idx(4, slice(None, None, -1))]),
    ("negative-step-2", lambda x: x[3:0:-2, ::-3],
     lambda t: t[_slice_idx(4, slice(3, 0, -2))][:, _slice_idx(5, slice(None, None, -3))]),
    ("int-array-dup", lambda x: x[IDX[0]], lambda t: t[torch.from_numpy(IDX[0])]),
    ("int-list-dup", lambda x: x[[3, 3, 1]], lambda t: t[[3, 3, 1]]),
    ("int-array-2d", lambda x: x[IDX[1]], lambda t: t[torch.from_numpy(IDX[1])]),
    ("array-pair-dup", lambda x: x[IDX[1], np.array([4, 4])],
     lambda t: t[torch.from_numpy(IDX[1]), torch.tensor([4, 4])]),
    ("slice-then-array", lambda x: x[:, np.array([1, 1, 4, 1])], lambda t: t[:, torch.tensor([1, 1, 4, 1])]),
    ("array-int-mixed", lambda x: x[np.array([0, 0, 2]), -1], lambda t: t[torch.tensor([0, 0, 2]), -1]),
    ("bool-rows", lambda x: x[MASK], lambda t: t[torch.from_numpy(MASK)]),
    ("bool-full", lambda x: x[x.data > 0.1], lambda t: t[t.detach() > 0.1]),
    ("bool-cols", lambda x: x[:, np.array([True, False, False, True, True])],
     lambda t: t[:, torch.tensor([True, False, False, True, True])]),
    ("tensor-index", lambda x: x[dm.tensor(np.array([2, 2, 0]))], lambda t: t[torch.tensor([2, 2, 0])]),
    ("take", lambda x: dm.take(x, (dm.tensor(np.array([1, 1])), slice(None))), lambda t: t[torch.tensor([1, 1])]),
    ("getitem", lambda x: dm.getitem(x, (slice(None), 2)), lambda t: t[:, 2]),
    ("chained", lambda x: x[1:][IDX[0] % 3][:, ::2], lambda t: t[1:][torch.from_numpy(IDX[0] % 3)][:, ::2]),
]


@pytest.mark.parametrize(("f", "tf"), [c[1:] for c in INDEX_CASES], ids=[c[0] for c in INDEX_CASES])
def test_getitem(f, tf):
    compare(f, tf, data(np.random.default_rng(13), (4, 5)))


def test_getitem_3d_mixed():
    x = data(np.random.default_rng(14), (3, 4, 5))
    compare(lambda a: a[np.array([0, 0, 2]), :, np.array([1, 4, 1])],
            lambda t: t[torch.tensor([0, 0, 2]), :, torch.tensor([1, 4, 1])], x)
    compare(lambda a: a[..., np.array([3, 3])], lambda t: t[..., torch.tensor([3, 3])], x)
    compare(lambda a: a[1:, None, ::2, -1], lambda t: t[1:, None, ::2, -1], x)


# ----- einsum ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("subscripts", "shapes"), EINSUM_CASES,
                         ids=[f"{s}:{i}" for i, (s, _) in enumerate(EINSUM_CASES)])
def test_einsum(subscripts, shapes):
    rng = np.random.default_rng(len(subscripts) + len(shapes))
    arrays = [data(rng, s) for s in shapes]
    compare(lambda *xs: dm.einsum(subscripts, *xs), lambda *ts: torch.einsum(subscripts, *ts), *arrays)


def test_einsum_with_constant_operand():
    rng = np.random.default_rng(30)
    w, x = data(rng, (3, 4)), data(rng, (5, 4))
    compare(lambda a: dm.einsum("ij,bj->bi", a, x), lambda t: torch.einsum("ij,bj->bi", t, torch.from_numpy(x)), w)


# ----- mixed expressions and dtypes ------------------------------------------------------------------------
def test_mixed_ndarray_and_tensor_operands():
    rng = np.random.default_rng(40)
    A, x, c = data(rng, (4, 3)), data(rng, (3, 2)), data(rng, (4, 2))
    _, outs = compare(lambda t: dm.tanh(A @ t) * c + 1.0 - c / 2.0,
                      lambda t: torch.tanh(torch.from_numpy(A) @ t) * torch.from_numpy(c) + 1.0
                      - torch.from_numpy(c) / 2.0, x)
    assert outs[0].op_name is not None
    # ndarray op Tensor always yields a Tensor (NumPy defers to Tensor's reflected operators)
    t = dm.tensor(x, requires_grad=True)
    for r in (A @ t, c[:3] * t, c[:3] + t, c[:3] - t, c[:3] / (t * t + 1.0), 2.0 ** t, np.float64(2.0) * t):
        assert isinstance(r, dm.Tensor) and r.requires_grad


def test_float32_preserved_forward_and_backward():
    rng = np.random.default_rng(41)
    x32, w32 = data(rng, (4, 3)).astype(np.float32), data(rng, (3, 5)).astype(np.float32)
    b64 = data(rng, (5,))

    def f(x, w):
        h = dm.tanh(x @ w + 1.0) * 0.5
        return dm.log_softmax(h, axis=-1).sum() + (dm.sigmoid(x) ** 2).mean() + dm.logsumexp(h)

    def tf(x, w):
        h = torch.tanh(x @ w + 1.0) * 0.5
        return torch.log_softmax(h, -1).sum() + (torch.sigmoid(x) ** 2).mean() + torch.logsumexp(h, (0, 1))

    xs, outs = compare(f, tf, x32, w32, rtol=2e-5, atol=1e-5)
    assert outs[0].dtype == np.float32
    assert xs[0].grad.dtype == np.float32 and xs[1].grad.dtype == np.float32
    # float32 with a float64 constant promotes (as NumPy and torch do), the gradient keeps float32
    xs, outs = compare(lambda w: w * b64, lambda w: w * torch.from_numpy(b64), w32, rtol=1e-6, atol=1e-6)
    assert outs[0].dtype == np.float64 and xs[0].grad.dtype == np.float32
    xs, outs = compare(lambda w: dm.maximum(w, 0.1) + dm.where(w.data > 0, w, 0.0) + dm.clip(w, -0.5, 0.5),
                       lambda w: torch.maximum(w, torch.tensor(0.1, dtype=torch.float32))
                       + torch.where(w > 0, w, 0.0) + torch.clamp(w, -0.5, 0.5), w32, rtol=1e-6, atol=1e-6)
    assert outs[0].dtype == np.float32 and xs[0].grad.dtype == np.float32


def test_integer_constants_promote():
    x = data(np.random.default_rng(42), (3,))
    k = np.array([1, 2, 3])
    compare(lambda a: a * k + k, lambda a: a * torch.from_numpy(k) + torch.from_numpy(k), x)
    compare(lambda a: a[k - 1] * 2, lambda a: a[torch.from_numpy(k - 1)] * 2, x)


def test_concatenate_with_axis_none_flattens_like_numpy_and_its_gradient_follows():
    a0, b0 = np.arange(6.0).reshape(2, 3), np.arange(4.0)
    a, b = dm.tensor(a0, requires_grad=True), dm.tensor(b0, requires_grad=True)
    out = dm.concatenate([a, b], axis=None)
    np.testing.assert_array_equal(out.data, np.concatenate([a0, b0], axis=None))
    ct = np.arange(10.0) + 1
    (out * ct).sum().backward()
    ta, tb = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    (torch.cat([ta.flatten(), tb]) * torch.tensor(ct)).sum().backward()
    np.testing.assert_array_equal(a.grad.data, ta.grad.numpy())
    np.testing.assert_array_equal(b.grad.data, tb.grad.numpy())
