"""Products and shape functions (dlmath/autodiff/shapes.py), Tensor iteration and dm.array, against PyTorch.

Each function is checked three ways: the forward value, shape and dtype and the VJP against torch
(``compare``), the JVP against ``torch.func.jvp`` with the dot-product identity <Jv, u> = <v, J^T u>
(``check_jvp``), and, on plain NumPy arrays, the forward value against NumPy itself (plain in, plain out).
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dlmath as dm
from test_jvp_torch import check_jvp
from test_ops_torch import compare

HYP = settings(max_examples=15, deadline=None)
seeds = st.integers(0, 2**32 - 1)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _rand(seed: int, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def _single(fn):
    """A function of arrays returning one array: lists of pieces are joined (jvp needs one output)."""
    def joined(*xs):
        out = fn(*xs)
        return dm.concatenate([dm.ravel(o) for o in out]) if isinstance(out, list) else out
    return joined


def _tsingle(fn):
    def joined(*ts):
        out = fn(*ts)
        return torch.cat([o.reshape(-1) for o in out]) if isinstance(out, (list, tuple)) else out
    return joined


def check(dm_fn, torch_fn, np_fn, *arrays, seed=0, jvp=True):
    """Forward + VJP vs torch, JVP + transposition vs torch.func, plain-array forward vs NumPy."""
    compare(dm_fn, torch_fn, *arrays, seed=seed)
    if jvp:
        check_jvp(None, _single(dm_fn), _tsingle(torch_fn), *arrays, seed=seed)
    if np_fn is not None:
        got, want = dm_fn(*arrays), np_fn(*arrays)
        got, want = (got, want) if isinstance(got, list) else ([got], [want])
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert isinstance(g, (np.ndarray, np.generic)), type(g)  # plain in, plain out
            assert np.shape(g) == np.shape(w) and g.dtype == w.dtype, (np.shape(g), np.shape(w), g.dtype, w.dtype)
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)
small = st.integers(1, 4)


# ----- products ------------------------------------------------------------------------------------------------
@HYP
@given(st.sampled_from(["vv", "mv", "vm", "mm", "nd-v", "nd-nd", "scalar"]), small, small, small, seeds)
def test_dot(kind, m, k, n, seed):
    shapes_ = {"vv": ((k,), (k,)), "mv": ((m, k), (k,)), "vm": ((k,), (k, n)), "mm": ((m, k), (k, n)),
               "nd-v": ((2, m, k), (k,)), "nd-nd": ((2, m, k), (3, k, n)), "scalar": ((), (m, n))}[kind]
    a, b = _rand(seed, *shapes_)

    def tdot(x, y):
        if x.ndim == 0 or y.ndim == 0:
            return x * y
        if x.ndim <= 2 and y.ndim <= 2:
            return torch.matmul(x, y)
        return torch.tensordot(x, y, dims=([x.ndim - 1], [max(y.ndim - 2, 0)]))
    check(dm.dot, tdot, np.dot, a, b, seed=seed)
    x = dm.tensor(a)
    if kind in ("mv", "mm", "vv"):
        np.testing.assert_allclose(x.dot(b).data, np.dot(a, b))


@HYP
@given(shapes, seeds)
def test_vdot_inner_outer(shape, seed):
    a, b = _rand(seed, shape, shape)
    check(dm.vdot, lambda x, y: torch.dot(x.reshape(-1), y.reshape(-1)), np.vdot, a, b, seed=seed)
    (c,) = _rand(seed + 1, (3, shape[-1]))
    check(dm.inner, torch.inner, np.inner, a, c, seed=seed)
    check(dm.outer, lambda x, y: torch.outer(x.reshape(-1), y.reshape(-1)), np.outer, a, c, seed=seed)


@HYP
@given(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3), hnp.array_shapes(min_dims=0, max_dims=3,
       min_side=1, max_side=3), st.data(), seeds)
def test_tensordot(lead, tail, data_, seed):
    n = data_.draw(st.integers(0, 2))
    mid = data_.draw(hnp.array_shapes(min_dims=n, max_dims=n, min_side=1, max_side=3)) if n else ()
    a, b = _rand(seed, lead + mid, mid + tail)
    check(lambda x, y: dm.tensordot(x, y, n), lambda x, y: torch.tensordot(x, y, dims=n),
          lambda x, y: np.tensordot(x, y, n), a, b, seed=seed)
    # pair-of-sequences axes: contract a's axis 0 with b's last axis
    k = lead[0] if lead else 2
    a2, b2 = _rand(seed, (k, *tail), (*lead[1:], k))
    check(lambda x, y: dm.tensordot(x, y, ([0], [-1])), lambda x, y: torch.tensordot(x, y, dims=([0], [y.ndim - 1])),
          lambda x, y: np.tensordot(x, y, ([0], [-1])), a2, b2, seed=seed)
    check(lambda x, y: dm.tensordot(x, y, (0, b2.ndim - 1)),
          lambda x, y: torch.tensordot(x, y, dims=([0], [y.ndim - 1])),
          lambda x, y: np.tensordot(x, y, (0, b2.ndim - 1)), a2, b2, seed=seed)


@HYP
@given(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3),
       hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3), seeds)
def test_kron(sa, sb, seed):
    a, b = _rand(seed, sa, sb)
    check(dm.kron, torch.kron, np.kron, a, b, seed=seed)


# ----- diagonals and triangles ---------------------------------------------------------------------------------
@HYP
@given(small, small, st.integers(-3, 3), seeds)
def test_diag_diagflat(m, n, k, seed):
    v, mat, v2 = _rand(seed, (n,), (m, n), (2, n))
    check(lambda x: dm.diag(x, k), lambda t: torch.diag(t, k), lambda x: np.diag(x, k), v, seed=seed)
    check(lambda x: dm.diag(x, k), lambda t: torch.diag(t, k), lambda x: np.diag(x, k), mat, seed=seed)
    check(lambda x: dm.diagflat(x, k), lambda t: torch.diagflat(t, k), lambda x: np.diagflat(x, k), v2, seed=seed)


@HYP
@given(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4), st.integers(-3, 3), st.data(), seeds)
def test_diagonal_trace(shape, offset, data_, seed):
    nd = len(shape)
    a1 = data_.draw(st.integers(-nd, nd - 1))
    a2 = data_.draw(st.integers(-nd, nd - 1).filter(lambda a: a % nd != a1 % nd))
    (x,) = _rand(seed, shape)
    check(lambda t: dm.diagonal(t, offset, a1, a2), lambda t: torch.diagonal(t, offset, a1, a2),
          lambda t: np.diagonal(t, offset, a1, a2), x, seed=seed)
    check(lambda t: dm.trace(t, offset, a1, a2), lambda t: torch.diagonal(t, offset, a1, a2).sum(-1),
          lambda t: np.trace(t, offset, a1, a2), x, seed=seed)
    t = dm.tensor(x)
    np.testing.assert_allclose(t.diagonal(offset, a1, a2).data, np.diagonal(x, offset, a1, a2))
    np.testing.assert_allclose(t.trace(offset, a1, a2).data, np.trace(x, offset, a1, a2))


@HYP
@given(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4), st.integers(-3, 3), seeds)
def test_tril_triu(shape, k, seed):
    (x,) = _rand(seed, shape)
    check(lambda t: dm.tril(t, k), lambda t: torch.tril(t, k), lambda t: np.tril(t, k), x, seed=seed)
    check(lambda t: dm.triu(t, k), lambda t: torch.triu(t, k), lambda t: np.triu(t, k), x, seed=seed)
    assert dm.tril(np.ones((3, 3), dtype=np.int64)).dtype == np.int64


# ----- cumulative, differences, sorting ------------------------------------------------------------------------
@HYP
@given(shapes, st.data(), seeds)
def test_cumsum_cumprod(shape, data_, seed):
    ax = data_.draw(st.integers(-len(shape), len(shape) - 1))
    (x,) = _rand(seed, shape)
    check(lambda t: dm.cumsum(t, ax), lambda t: torch.cumsum(t, ax), lambda t: np.cumsum(t, ax), x, seed=seed)
    check(dm.cumsum, lambda t: torch.cumsum(t.reshape(-1), 0), np.cumsum, x, seed=seed)
    check(lambda t: dm.cumprod(t, ax), lambda t: torch.cumprod(t, ax), lambda t: np.cumprod(t, ax), x, seed=seed)
    check(dm.cumprod, lambda t: torch.cumprod(t.reshape(-1), 0), np.cumprod, x, seed=seed)
    z = x * (np.random.default_rng(seed).uniform(size=shape) > 0.35)  # about a third exact zeros
    check(lambda t: dm.cumprod(t, ax), lambda t: torch.cumprod(t, ax), lambda t: np.cumprod(t, ax), z, seed=seed)
    t = dm.tensor(x)
    np.testing.assert_allclose(t.cumsum(ax).data, np.cumsum(x, ax))
    np.testing.assert_allclose(t.cumprod(ax).data, np.cumprod(x, ax))


def test_cumprod_with_zeros_and_second_order():
    x = np.array([2.0, 0.0, 3.0, 0.0, 5.0])
    compare(dm.cumprod, lambda t: torch.cumprod(t, 0), x)
    h = dm.hessian(lambda v: dm.sum(dm.cumprod(v)))(x)
    th = torch.autograd.functional.hessian(lambda v: torch.cumprod(v, 0).sum(), torch.tensor(x))
    np.testing.assert_allclose(h, th.numpy(), atol=1e-12)


@HYP
@given(shapes, st.integers(0, 3), st.data(), seeds)
def test_diff(shape, n, data_, seed):
    ax = data_.draw(st.integers(-len(shape), len(shape) - 1))
    (x,) = _rand(seed, shape)
    if n > shape[ax]:
        n = shape[ax]
    check(lambda t: dm.diff(t, n, ax), lambda t: torch.diff(t, n, ax) if n else t.clone(),
          lambda t: np.diff(t, n, ax), x, seed=seed)


@HYP
@given(shapes, st.data(), seeds)
def test_sort_argsort_argmax(shape, data_, seed):
    ax = data_.draw(st.integers(-len(shape), len(shape) - 1))
    (x,) = _rand(seed, shape)  # continuous data: no ties
    check(lambda t: dm.sort(t, ax), lambda t: torch.sort(t, ax).values, lambda t: np.sort(t, ax), x, seed=seed)
    check(lambda t: dm.sort(t, None), lambda t: torch.sort(t.reshape(-1)).values, lambda t: np.sort(t, None), x,
          seed=seed)
    t = dm.tensor(x, requires_grad=True)
    for got, want in ((dm.argsort(t, ax), np.argsort(x, ax)), (dm.argmax(t, ax), np.argmax(x, ax)),
                      (dm.argmin(t), np.argmin(x)), (t.argsort(ax), np.argsort(x, ax))):
        assert isinstance(got, (np.ndarray, np.integer)) and np.asarray(got).dtype.kind == "i"
        np.testing.assert_array_equal(got, want)
    idx = np.argsort(x, ax)
    check(lambda u: dm.take_along_axis(u, idx, ax), lambda u: torch.take_along_dim(u, torch.from_numpy(idx), ax),
          lambda u: np.take_along_axis(u, idx, ax), x, seed=seed)


# ----- repetition and rearrangement ----------------------------------------------------------------------------
@HYP
@given(shapes, st.data(), seeds)
def test_repeat_tile(shape, data_, seed):
    ax = data_.draw(st.integers(-len(shape), len(shape) - 1))
    r = data_.draw(st.integers(0, 3))
    reps = data_.draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    (x,) = _rand(seed, shape)
    check(lambda t: dm.repeat(t, r, ax), lambda t: torch.repeat_interleave(t, r, ax), lambda t: np.repeat(t, r, ax),
          x, seed=seed)
    per = list(np.random.default_rng(seed).integers(0, 3, shape[ax]))
    check(lambda t: dm.repeat(t, per, ax), lambda t: torch.repeat_interleave(t, torch.tensor(per), ax),
          lambda t: np.repeat(t, per, ax), x, seed=seed)
    check(lambda t: dm.repeat(t, 2), lambda t: torch.repeat_interleave(t.reshape(-1), 2), lambda t: np.repeat(t, 2),
          x, seed=seed)
    check(lambda t: dm.tile(t, tuple(reps)), lambda t: torch.tile(t, tuple(reps)), lambda t: np.tile(t, reps), x,
          seed=seed)
    np.testing.assert_allclose(dm.tensor(x).repeat(r, ax).data, np.repeat(x, r, ax))


@HYP
@given(shapes, st.data(), seeds)
def test_moveaxis_ravel_flips(shape, data_, seed):
    nd = len(shape)
    src = data_.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
    dst = data_.draw(st.permutations(range(nd)))[:len(src)]
    (x,) = _rand(seed, shape)
    check(lambda t: dm.moveaxis(t, src, dst), lambda t: torch.moveaxis(t, src, list(dst)),
          lambda t: np.moveaxis(t, src, dst), x, seed=seed)
    check(lambda t: dm.moveaxis(t, 0, -1), lambda t: torch.moveaxis(t, 0, -1), lambda t: np.moveaxis(t, 0, -1), x,
          seed=seed)
    check(dm.ravel, torch.ravel, np.ravel, x, seed=seed)
    check(dm.flipud, torch.flipud, np.flipud, x, seed=seed)
    if nd >= 2:
        check(dm.fliplr, torch.fliplr, np.fliplr, x, seed=seed)
        k = data_.draw(st.integers(-5, 5))
        axes = tuple(data_.draw(st.lists(st.integers(0, nd - 1), min_size=2, max_size=2, unique=True)))
        check(lambda t: dm.rot90(t, k, axes), lambda t: torch.rot90(t, k, axes), lambda t: np.rot90(t, k, axes), x,
              seed=seed)
    assert dm.tensor(x).ravel().shape == (x.size,)


@HYP
@given(st.sampled_from([(), (3,), (2, 3), (2, 3, 2), (1, 2, 1, 2)]), seeds)
def test_atleast(shape, seed):
    (x,) = _rand(seed, shape)
    for d, t in ((dm.atleast_1d, torch.atleast_1d), (dm.atleast_2d, torch.atleast_2d),
                 (dm.atleast_3d, torch.atleast_3d)):
        np_fn = getattr(np, d.__name__)
        check(d, t, np_fn, x, seed=seed)
        check(lambda a, b, d=d: d(a, b), lambda a, b, t=t: t(a, b), lambda a, b, f=np_fn: f(a, b), x, x, seed=seed,
              jvp=False)


@HYP
@given(st.sampled_from([[(3,), (3,)], [(2, 3), (4, 3)], [(2, 3, 2), (1, 3, 2)], [(), ()]]), seeds)
def test_vstack(shapes_, seed):
    xs = _rand(seed, *shapes_)
    check(lambda *a: dm.vstack(a), lambda *a: torch.vstack(a), lambda *a: np.vstack(a), *xs, seed=seed)


@HYP
@given(st.sampled_from([[(3,), (2,)], [(2, 3), (2, 1)], [(2, 3, 2), (2, 1, 2)], [(), ()]]), seeds)
def test_hstack(shapes_, seed):
    xs = _rand(seed, *shapes_)
    check(lambda *a: dm.hstack(a), lambda *a: torch.hstack(a), lambda *a: np.hstack(a), *xs, seed=seed)


@HYP
@given(st.sampled_from([[(3,), (3,)], [(3,), (3, 2)], [(2, 3), (2, 1)], [(), ()]]), seeds)
def test_column_stack(shapes_, seed):
    xs = _rand(seed, *shapes_)
    check(lambda *a: dm.column_stack(a), lambda *a: torch.column_stack(a), lambda *a: np.column_stack(a), *xs,
          seed=seed)


@HYP
@given(st.sampled_from([[(3,), (3,)], [(2, 3), (2, 3)], [(2, 3, 2), (2, 3, 1)], [(), ()]]), seeds)
def test_dstack(shapes_, seed):
    xs = _rand(seed, *shapes_)
    check(lambda *a: dm.dstack(a), lambda *a: torch.dstack(a), lambda *a: np.dstack(a), *xs, seed=seed)


@HYP
@given(shapes, st.data(), seeds)
def test_array_split_hsplit_vsplit(shape, data_, seed):
    nd = len(shape)
    ax = data_.draw(st.integers(-nd, nd - 1))
    sections = data_.draw(st.integers(1, 5))
    idx = sorted(data_.draw(st.lists(st.integers(0, shape[ax]), max_size=3)))
    (x,) = _rand(seed, shape)
    check(lambda t: dm.array_split(t, sections, ax), lambda t: list(torch.tensor_split(t, sections, ax)),
          lambda t: np.array_split(t, sections, ax), x, seed=seed)
    check(lambda t: dm.array_split(t, idx, ax), lambda t: list(torch.tensor_split(t, idx, ax)),
          lambda t: np.array_split(t, idx, ax), x, seed=seed)
    h = shape[1] if nd > 1 else shape[0]
    check(lambda t: dm.hsplit(t, h), lambda t: list(torch.hsplit(t, h)), lambda t: np.hsplit(t, h), x, seed=seed)
    if nd >= 2:
        check(lambda t: dm.vsplit(t, [1]), lambda t: list(torch.vsplit(t, [1])), lambda t: np.vsplit(t, [1]), x,
              seed=seed)


# ----- errors --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda: dm.dot(np.ones((2, 3)), np.ones((2, 3))),
    lambda: dm.tensordot(np.ones((2, 3)), np.ones((2, 3)), 1),
    lambda: dm.tensordot(np.ones((2, 3)), np.ones((2, 3)), ([0, 1], [0])),
    lambda: dm.vdot(np.ones(3), np.ones(4)),
    lambda: dm.diagonal(np.ones(3)),
    lambda: dm.diagonal(np.ones((3, 3)), 0, 1, 1),
    lambda: dm.diag(np.ones((2, 2, 2))),
    lambda: dm.tril(np.ones(3)),
    lambda: dm.cumsum(np.ones((2, 2)), 2),
    lambda: dm.repeat(np.ones(3), [1, 2]),
    lambda: dm.moveaxis(np.ones((2, 3)), [0, 0], [0, 1]),
    lambda: dm.fliplr(np.ones(3)),
    lambda: dm.vsplit(np.ones(3), 3),
    lambda: dm.hsplit(np.ones((2, 3)), 2),
    lambda: dm.array_split(np.ones(3), 0),
    lambda: dm.rot90(np.ones((2, 2)), 1, (0, 0)),
    lambda: dm.vstack(np.ones(3)),
])
def test_bad_input_raises_shape_error(call):
    with pytest.raises(dm.ShapeError):
        call()


# ----- iteration, indexing, dm.array ---------------------------------------------------------------------------
def test_tensor_iteration_is_numpy_like_and_differentiable():
    t = dm.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert [float(r) for r in t] == [1.0, 2.0, 3.0]
    a, b, c = t
    (a * b * c).backward()
    np.testing.assert_allclose(t.grad.data, [6.0, 3.0, 2.0])
    assert float(sum(dm.tensor([1.0, 2.0]))) == 3.0
    m = dm.tensor(np.arange(6.0).reshape(3, 2))
    rows = [r for r in m]
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    assert list(dm.tensor(np.zeros((0, 2)))) == []
    with pytest.raises(TypeError, match="0-d"):
        iter(dm.tensor(1.0))
    assert dm.tensor([[1.0, 2.0]]).tolist() == [[1.0, 2.0]]


def test_out_of_range_index_is_an_index_error():
    t = dm.tensor([1.0, 2.0])
    for bad in (2, -3, (0, 0)):
        with pytest.raises(IndexError):
            t[bad]
    with pytest.raises(dm.ShapeError):
        t[5]
    with pytest.raises(IndexError):
        dm.take(t, np.array([3]))


def test_grad_through_iteration():
    g = dm.grad(lambda x: sum(r * r for r in x))(np.array([1.0, -2.0, 3.0]))
    np.testing.assert_allclose(g, [2.0, -4.0, 6.0])
    g = dm.grad(lambda m: sum(dm.sum(r) ** 2 for r in m))(np.ones((2, 3)))
    np.testing.assert_allclose(g, 6.0 * np.ones((2, 3)))


def test_array_mixes_tensors_and_numbers():
    x = dm.tensor(2.0, requires_grad=True)
    y = dm.tensor([1.0, 5.0], requires_grad=True)
    a = dm.array([[x, 1.0], [3.0, x * x]])
    assert isinstance(a, dm.Tensor) and a.shape == (2, 2)
    np.testing.assert_allclose(a.data, [[2.0, 1.0], [3.0, 4.0]])
    b = dm.array([y, [7.0, x]])
    np.testing.assert_allclose(b.data, [[1.0, 5.0], [7.0, 2.0]])
    (dm.sum(a) + dm.sum(b * b)).backward()
    np.testing.assert_allclose(x.grad.data, 1.0 + 2 * 2.0 + 2 * 2.0)
    np.testing.assert_allclose(y.grad.data, [2.0, 10.0])
    plain = dm.array([[1, 2], [3, 4]])
    assert type(plain) is np.ndarray and plain.dtype == np.array([[1, 2]]).dtype
    assert dm.array([1.0, x], dtype=np.float32).dtype == np.float32
    g = dm.grad(lambda v: dm.sum(dm.array([v[0] * v[1], 1.0, [v[1]][0]]) ** 2))(np.array([2.0, 3.0]))
    np.testing.assert_allclose(g, [2 * 6.0 * 3.0, 2 * 6.0 * 2.0 + 2 * 3.0])
    x32 = dm.tensor(np.float32(2.0), requires_grad=True)
    assert dm.stack([x32, 1.0]).dtype == np.float32 and dm.array([[x32, 1], [2.0, x32]]).dtype == np.float32
    assert dm.stack([1.0, 2.0]).dtype == np.float64
    s = dm.stack([[x, 1.0], [2.0, x]])
    np.testing.assert_allclose(s.data, [[2.0, 1.0], [2.0, 2.0]])
    out, jv = dm.jvp(lambda v: dm.array([v, 2.0 * v, 1.0]), (3.0,), (1.0,))
    np.testing.assert_allclose(out, [3.0, 6.0, 1.0])
    np.testing.assert_allclose(jv, [1.0, 2.0, 0.0])


def test_methods_exist():
    x = np.arange(12.0).reshape(3, 4)
    t = dm.tensor(x)
    np.testing.assert_allclose(t.ravel().data, x.ravel())
    np.testing.assert_allclose(t.dot(x.T).data, x @ x.T)
    np.testing.assert_allclose(t.moveaxis(0, 1).data, x.T)
    np.testing.assert_allclose(t.flatten().data, x.ravel())
    assert t.all() == np.all(x) and t.any() == np.any(x)
    np.testing.assert_array_equal(t.all(axis=0, keepdims=True), np.all(x, axis=0, keepdims=True))
    np.testing.assert_array_equal(t.any(axis=1), np.any(x, axis=1))
    assert t.nbytes == x.nbytes and t.itemsize == 8


@pytest.mark.parametrize("fn", [
    lambda t: dm.dot(t, t.T), lambda t: dm.tensordot(t, t, ([0], [0])), lambda t: dm.kron(t, t),
    lambda t: dm.diag(t[0]), lambda t: dm.diagonal(t), lambda t: dm.trace(t), lambda t: dm.tril(t),
    lambda t: dm.triu(t, 1), lambda t: dm.cumsum(t, 0), lambda t: dm.cumprod(t, 1), lambda t: dm.diff(t),
    lambda t: dm.sort(t), lambda t: dm.repeat(t, 2, 0), lambda t: dm.tile(t, (2, 1)), lambda t: dm.rot90(t),
    lambda t: dm.vstack([t, t]), lambda t: dm.outer(t, t), lambda t: dm.vdot(t, t), lambda t: dm.inner(t, t),
    lambda t: dm.array([t[0, 0], 1.0]),
])
def test_float32_stays_float32(fn):
    t = dm.tensor(np.arange(1.0, 7.0).reshape(2, 3).astype(np.float32), requires_grad=True)
    out = fn(t)
    assert out.dtype == np.float32, out.dtype
    dm.sum(out * out).backward()
    assert t.grad.dtype == np.float32
