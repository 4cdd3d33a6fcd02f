"""``dm.linalg`` against ``torch.linalg`` in float64: forward value, VJP (``compare``, vs torch.autograd), JVP
(``check_jvp``, vs torch.func.jvp, with the dot-product test <J v, u> = <v, J^T u>), second order by central
differences of the gradient, and the degenerate cases (singular, not positive definite, repeated eigenvalues,
bad shapes).

Hypothesis draws the batch dimensions and the sizes. The matrices are well conditioned by construction:
``general`` is Gaussian + n I, ``spd`` is A A^T + n I, ``separated`` is Q diag(w) Q^T with eigenvalues at
least 0.5 apart, ``rect`` is U diag(s) V^T with singular values in [1, 3] at least 0.3 apart. Tangents of the
symmetric-input functions (cholesky, eigh) are symmetric, as PyTorch's JVP formulas assume them.

Eigenvectors and singular vectors are defined up to sign, and LAPACK's choice may differ between NumPy and
PyTorch; both sides are compared through the same gauge fix (each vector multiplied by the sign of its
largest entry, a constant), which is differentiable and leaves the derivatives of the fixed vectors unique.

``COVERED`` names the test of every primitive of ``dlmath.autodiff.linalg``; ``test_jvp_torch.py`` checks that
it lists all of them and that each has a JVP rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dlmath as dm
from dlmath.autodiff import linalg
from test_jvp_torch import check_jvp, check_transpose
from test_ops_torch import compare

L = dm.linalg
RTOL, ATOL = 1e-9, 1e-11
HYP = settings(max_examples=12, deadline=None)
seeds = st.integers(0, 2**32 - 1)
batches = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)
sizes = st.integers(1, 5)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


# ----- data ---------------------------------------------------------------------------------------------------------
def general(rng, batch, n):
    return rng.standard_normal(batch + (n, n)) + n * np.eye(n)


def spd(rng, batch, n):
    a = rng.standard_normal(batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def orthogonal(rng, batch, n):
    q, r = np.linalg.qr(rng.standard_normal(batch + (n, n)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def separated(rng, batch, n):
    w = np.cumsum(rng.uniform(0.5, 1.5, batch + (n,)), axis=-1) - n / 2
    q = orthogonal(rng, batch, n)
    a = (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)
    return (a + np.swapaxes(a, -1, -2)) / 2


def rect(rng, batch, m, n):
    k = min(m, n)
    s = 1 + np.sort(np.cumsum(rng.uniform(0.3, 0.6, batch + (k,)), axis=-1))[..., ::-1]
    u = orthogonal(rng, batch, m)[..., :k]
    v = orthogonal(rng, batch, n)[..., :k]
    return (u * s[..., None, :]) @ np.swapaxes(v, -1, -2)


def sym_tangent(rng, shape):
    t = rng.standard_normal(shape)
    return t + np.swapaxes(t, -1, -2)


def both(prim, f, tf, *arrays, tangents=None, seed=0, rtol=RTOL, atol=ATOL):
    """Forward + VJP against torch.autograd, then JVP against torch.func.jvp and the dot-product test."""
    compare(f, tf, *arrays, rtol=rtol, atol=atol, seed=seed)
    check_jvp(prim, f, tf, *arrays, tangents=tangents, seed=seed, rtol=rtol, atol=atol)


# ----- gauge fixes (sign of each eigen/singular vector), the same on both sides -------------------------------------
def _signs(v: np.ndarray, axis: int) -> np.ndarray:
    """Sign of the largest-magnitude entry of each vector along ``axis`` (a constant)."""
    idx = np.argmax(np.abs(v), axis=axis)
    picked = np.take_along_axis(v, np.expand_dims(idx, axis), axis=axis)
    return np.where(np.sign(picked) == 0, 1.0, np.sign(picked))


def dm_fix_columns(v):
    return v * _signs(v.data if isinstance(v, dm.Tensor) else np.asarray(v), -2)


def _torch_signs(v, dim):
    idx = torch.argmax(torch.abs(v), dim=dim, keepdim=True)  # torch ops: functorch's tensors have no .numpy()
    sign = torch.sign(torch.take_along_dim(v, idx, dim=dim))
    return torch.where(sign == 0, torch.ones_like(sign), sign).detach()


def torch_fix_columns(v):
    return v * _torch_signs(v, -2)


def dm_fix_rows(v):
    return v * _signs(v.data if isinstance(v, dm.Tensor) else np.asarray(v), -1)


def torch_fix_rows(v):
    return v * _torch_signs(v, -1)


# ----- priority 1: solve, inv, det, slogdet, cholesky, trace ------------------------------------------------------
@HYP
@given(batches, st.integers(0, 2), st.lists(st.booleans(), min_size=2, max_size=2), sizes, st.integers(1, 3), seeds)
def test_solve_matrix_rhs(batch_a, drop, ones, n, k, seed):
    rng = np.random.default_rng(seed)
    a = general(rng, batch_a, n)
    batch_b = tuple(1 if one else d for d, one in zip(batch_a[drop:], ones, strict=False))  # broadcasts against a
    if drop == 2 and batch_a:
        a, batch_b = a[0], batch_a  # or b has the larger batch
    b = rng.standard_normal(batch_b + (n, k))
    full = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])

    def tf(x, y):  # PyTorch reads b as a batch of vectors when b.ndim == a.ndim - 1: make both batches full
        return torch.linalg.solve(x.expand(full + x.shape[-2:]), y.expand(full + y.shape[-2:]))
    both(linalg._solve, L.solve, tf, a, b, seed=seed)


@HYP
@given(batches, sizes, seeds)
def test_solve_vector_rhs(batch, n, seed):
    rng = np.random.default_rng(seed)
    a, b = general(rng, batch, n), rng.standard_normal(n)
    both(linalg._solve, L.solve, torch.linalg.solve, a, b, seed=seed)


@HYP
@given(batches, sizes, st.integers(1, 3), st.booleans(), seeds)
def test_solve_triangular(batch, n, k, lower, seed):
    rng = np.random.default_rng(seed)
    tri = np.tril if lower else np.triu
    a, b = tri(general(rng, batch, n)), rng.standard_normal(batch + (n, k))
    ta = (tri(rng.standard_normal(a.shape)), rng.standard_normal(b.shape))
    both(linalg._solve_tri, lambda x, y: L.solve_triangular(x, y, lower=lower),
         lambda x, y: torch.linalg.solve_triangular(x, y, upper=not lower), a, b, tangents=ta, seed=seed)


@HYP
@given(batches, sizes, seeds)
def test_inv(batch, n, seed):
    a = general(np.random.default_rng(seed), batch, n)
    both(linalg._inv, L.inv, torch.linalg.inv, a, seed=seed)


@HYP
@given(batches, sizes, seeds)
def test_det(batch, n, seed):
    a = general(np.random.default_rng(seed), batch, n) / n
    both(linalg._det, L.det, torch.linalg.det, a, seed=seed)


@HYP
@given(batches, sizes, seeds)
def test_slogdet(batch, n, seed):
    rng = np.random.default_rng(seed)
    a = general(rng, batch, n) * rng.choice([-1.0, 1.0], batch + (n, 1))  # both signs of det
    both(linalg._logabsdet, lambda x: L.slogdet(x)[1], lambda x: torch.linalg.slogdet(x)[1], a, seed=seed)
    sign, _ = L.slogdet(dm.tensor(a, requires_grad=True))
    np.testing.assert_array_equal(sign.data, torch.linalg.slogdet(torch.from_numpy(a))[0].numpy())
    assert not sign.requires_grad


@HYP
@given(batches, sizes, seeds)
def test_cholesky(batch, n, seed):
    rng = np.random.default_rng(seed)
    a = spd(rng, batch, n)
    both(linalg._cholesky, L.cholesky, torch.linalg.cholesky, a, tangents=(sym_tangent(rng, a.shape),), seed=seed)


@HYP
@given(batches, st.integers(1, 4), st.integers(1, 4), seeds)
def test_trace(batch, m, n, seed):
    a = np.random.default_rng(seed).standard_normal(batch + (m, n))
    both(None, L.trace, lambda x: torch.diagonal(x, dim1=-2, dim2=-1).sum(-1), a, seed=seed)
    np.testing.assert_allclose(L.trace(a), np.linalg.trace(a))


def test_plain_arrays_give_plain_arrays():
    rng = np.random.default_rng(0)
    a, s = general(rng, (), 3), spd(rng, (), 3)
    for out in (L.solve(a, a[0]), L.inv(a), L.det(a), L.cholesky(s), *L.slogdet(a), *L.eigh(s), *L.svd(a),
                *L.qr(a), L.pinv(a), L.norm(a), L.trace(a), L.matrix_power(a, 3)):
        assert not isinstance(out, dm.Tensor), type(out)
    np.testing.assert_allclose(L.solve(a, a[0]), np.linalg.solve(a, a[0]))
    np.testing.assert_allclose(L.det(a), np.linalg.det(a))


# ----- priority 2: eigh, svd, norm, pinv, qr, matrix_power ---------------------------------------------------------
@HYP
@given(batches, sizes, seeds)
def test_eigvalsh(batch, n, seed):
    rng = np.random.default_rng(seed)
    a = separated(rng, batch, n)
    both(linalg._eigh_values, L.eigvalsh, torch.linalg.eigvalsh, a, tangents=(sym_tangent(rng, a.shape),), seed=seed)
    both(linalg._eigh_values, lambda x: L.eigh(x)[0], lambda x: torch.linalg.eigh(x)[0], a,
         tangents=(sym_tangent(rng, a.shape),), seed=seed)


@HYP
@given(batches, sizes, seeds)
def test_eigh_vectors(batch, n, seed):
    rng = np.random.default_rng(seed)
    a = separated(rng, batch, n)
    both(linalg._eigh_vectors, lambda x: dm_fix_columns(L.eigh(x)[1]),
         lambda x: torch_fix_columns(torch.linalg.eigh(x)[1]), a, tangents=(sym_tangent(rng, a.shape),), seed=seed,
         rtol=1e-8, atol=1e-10)


def test_eigh_reconstructs_and_factorizes_once():
    rng = np.random.default_rng(3)
    a = dm.tensor(separated(rng, (2,), 4), requires_grad=True)
    calls = []
    real = np.linalg.eigh
    try:
        np.linalg.eigh = lambda x: calls.append(1) or real(x)
        w, v = L.eigh(a)
        ((v * w[..., None, :]) @ v.swapaxes(-1, -2)).sum().backward()
    finally:
        np.linalg.eigh = real
    np.testing.assert_allclose(((v * w[..., None, :]) @ v.swapaxes(-1, -2)).data, a.data, atol=1e-12)
    assert len(calls) == 1, f"eigh factorized {len(calls)} times for one forward and backward pass"


@HYP
@given(batches, st.integers(1, 5), st.integers(1, 5), seeds)
def test_svd(batch, m, n, seed):
    rng = np.random.default_rng(seed)
    a = rect(rng, batch, m, n)
    kw = dict(seed=seed, rtol=1e-8, atol=1e-10)
    both(linalg._svd_s, L.svdvals, torch.linalg.svdvals, a, **kw)
    both(linalg._svd_s, lambda x: L.svd(x, compute_uv=False), lambda x: torch.linalg.svdvals(x), a, **kw)
    both(linalg._svd_u, lambda x: dm_fix_columns(L.svd(x, full_matrices=False)[0]),
         lambda x: torch_fix_columns(torch.linalg.svd(x, full_matrices=False)[0]), a, **kw)
    both(linalg._svd_vh, lambda x: dm_fix_rows(L.svd(x, full_matrices=False)[2]),
         lambda x: torch_fix_rows(torch.linalg.svd(x, full_matrices=False)[2]), a, **kw)


def test_svd_gauge_invariant_function_of_all_three():
    rng = np.random.default_rng(5)
    a = rect(rng, (2,), 5, 3)

    def f(x):
        u, s, vh = L.svd(x, full_matrices=False)
        return (u * (s * s)[..., None, :]) @ vh

    def tf(x):
        u, s, vh = torch.linalg.svd(x, full_matrices=False)
        return (u * (s * s)[..., None, :]) @ vh
    both(None, f, tf, a, rtol=1e-8, atol=1e-10)


def test_svd_full_matrices():
    rng = np.random.default_rng(6)
    a = rect(rng, (), 4, 2)
    u, _, vh = L.svd(a)
    assert u.shape == (4, 4) and vh.shape == (2, 2)
    with pytest.raises(dm.GradientError, match="full_matrices"):
        L.svd(dm.tensor(a, requires_grad=True))
    sq = rect(rng, (), 3, 3)  # square: full_matrices=True is the reduced SVD, differentiable
    compare(lambda x: L.svd(x)[1], lambda x: torch.linalg.svd(x)[1], sq)


VECTOR_ORDS = [None, 1, 2, 3, 0.5, np.inf, -np.inf]


@HYP
@given(st.sampled_from(VECTOR_ORDS), batches, sizes, st.booleans(), seeds)
def test_vector_norm(ord, batch, n, keepdims, seed):
    x = np.random.default_rng(seed).standard_normal(batch + (n,))
    f = lambda t: L.norm(t, ord=ord, axis=-1, keepdims=keepdims)  # noqa: E731
    tf = lambda t: torch.linalg.norm(t, ord=ord, dim=-1, keepdim=keepdims)  # noqa: E731
    np.testing.assert_allclose(f(x), np.linalg.norm(x, ord=ord, axis=-1, keepdims=keepdims), rtol=1e-12)
    both(None, f, tf, x, seed=seed)


MATRIX_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]


@HYP
@given(st.sampled_from(MATRIX_ORDS), st.sampled_from([(-2, -1), (-1, -2), (0, 2)]), st.booleans(), seeds)
def test_matrix_norm(ord, axis, keepdims, seed):
    rng = np.random.default_rng(seed)
    x = np.moveaxis(rect(rng, (2,), 3, 4), 0, 1)  # (3, 2, 4): distinct singular values along any pair with 2 < 3
    if axis == (0, 2):
        x = np.moveaxis(x, 1, 0)
    f = lambda t: L.norm(t, ord=ord, axis=axis, keepdims=keepdims)  # noqa: E731
    tf = lambda t: torch.linalg.norm(t, ord=ord, dim=axis, keepdim=keepdims)  # noqa: E731
    np.testing.assert_allclose(f(x), np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims), rtol=1e-12)
    both(None, f, tf, x, seed=seed, rtol=1e-8, atol=1e-10)


def test_norm_defaults_and_2d():
    x = np.random.default_rng(0).standard_normal((3, 4))
    for ord in (None, "fro", "nuc", 2, 1, np.inf):
        np.testing.assert_allclose(L.norm(x, ord=ord), np.linalg.norm(x, ord=ord), rtol=1e-12)
    np.testing.assert_allclose(L.norm(x), np.linalg.norm(x))
    np.testing.assert_allclose(L.norm(x[0], ord=3), np.linalg.norm(x[0], ord=3))


@pytest.mark.parametrize("ord", [None, 2, 1, np.inf, 3])
def test_norm_subgradient_at_zero_is_zero_like_torch(ord):
    g = dm.grad(lambda t: L.norm(t, ord=ord))(np.zeros(4))
    tx = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    torch.linalg.norm(tx, ord=ord).backward()
    np.testing.assert_array_equal(np.asarray(g), 0.0)
    np.testing.assert_array_equal(tx.grad.numpy(), 0.0)
    g = dm.grad(lambda t: L.norm(t))(np.zeros((2, 2)))  # Frobenius
    np.testing.assert_array_equal(np.asarray(g), 0.0)


@HYP
@given(batches, st.integers(1, 5), st.integers(1, 5), seeds)
def test_pinv(batch, m, n, seed):
    a = rect(np.random.default_rng(seed), batch, m, n)
    both(linalg._pinv, L.pinv, torch.linalg.pinv, a, seed=seed, rtol=1e-8, atol=1e-10)


@HYP
@given(batches, st.integers(1, 5), st.integers(0, 3), seeds)
def test_qr(batch, n, extra, seed):
    a = rect(np.random.default_rng(seed), batch, n + extra, n)
    kw = dict(seed=seed, rtol=1e-8, atol=1e-10)
    # LAPACK's R may have negative diagonal entries on either side: fix the sign of Q's columns / R's rows
    both(linalg._qr_q, lambda x: dm_fix_columns(L.qr(x)[0]), lambda x: torch_fix_columns(torch.linalg.qr(x)[0]),
         a, **kw)
    both(linalg._qr_r, lambda x: dm_fix_rows(L.qr(x)[1]), lambda x: torch_fix_rows(torch.linalg.qr(x)[1]), a, **kw)


def test_qr_wide_is_not_differentiable():
    a = dm.tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True)
    q, r = L.qr(a)
    assert q.shape == (2, 2) and r.shape == (2, 3)
    with pytest.raises(dm.GradientError, match="m >= n"):
        r.sum().backward()


@pytest.mark.parametrize("power", [-2, -1, 0, 1, 2, 3, 5])
def test_matrix_power(power):
    a = general(np.random.default_rng(power + 10), (2,), 3) / 3
    f, tf = (lambda x: L.matrix_power(x, power)), (lambda x: torch.linalg.matrix_power(x, power))
    if power == 0:
        np.testing.assert_array_equal(f(a), np.broadcast_to(np.eye(3), a.shape))
        return
    both(None, f, tf, a)


# ----- second order: the gradient's own derivative by central differences ------------------------------------------
SECOND_ORDER = {
    "logabsdet": (lambda a: L.slogdet(a)[1].sum(), "general"),
    "solve": (lambda a: (L.solve(a, np.arange(1.0, 4.0)) ** 2).sum(), "general"),
    "cholesky": (lambda a: (L.cholesky(a) ** 3).sum(), "spd"),
    "eigh": (lambda a: (L.eigh(a)[1][..., 0] * np.arange(1.0, 4.0)).sum() ** 2 + (L.eigvalsh(a) ** 3).sum(),
             "separated"),
    "svd": (lambda a: (L.svdvals(a) ** 3).sum() + L.svd(a, full_matrices=False)[0][0, 0] ** 2, "rect"),
    "qr": (lambda a: (L.qr(a)[0][:, 0] ** 3).sum() + (L.qr(a)[1] ** 2).sum(), "rect"),
    "pinv": (lambda a: (L.pinv(a) ** 3).sum(), "rect"),
    "det": (lambda a: L.det(a) ** 2, "general"),
    "inv": (lambda a: (L.inv(a) ** 3).sum(), "general"),
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_second_order_by_central_differences(name):
    f, kind = SECOND_ORDER[name]
    rng = np.random.default_rng(7)
    a = {"general": lambda: general(rng, (), 3), "spd": lambda: spd(rng, (), 3),
         "separated": lambda: separated(rng, (), 3), "rect": lambda: rect(rng, (), 3, 3)}[kind]()
    v = rng.standard_normal(a.shape)
    if kind in ("spd", "separated"):
        v = v + v.T
    grad = dm.grad(f)
    eps = 1e-5
    fd = (np.asarray(grad(a + eps * v)) - np.asarray(grad(a - eps * v))) / (2 * eps)
    hv_reverse = np.asarray(dm.grad(lambda x: (dm.grad(f)(x) * v).sum())(a))  # reverse over reverse
    hv_forward = np.asarray(dm.hvp(f, a, v))                                  # forward over reverse
    scale = np.abs(fd).max() + 1
    np.testing.assert_allclose(hv_forward, fd, atol=1e-6 * scale, rtol=1e-5)
    np.testing.assert_allclose(hv_reverse, hv_forward, atol=1e-9 * scale, rtol=1e-8)


# ----- degenerate cases and errors ----------------------------------------------------------------------------------
def test_singular_solve_and_inv_raise():
    sing = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(dm.LinAlgError, match=r"solve: .*\(2, 2\).*singular"):
        L.solve(sing, np.ones(2))
    with pytest.raises(dm.LinAlgError, match=r"inv: .*\(2, 2\).*singular"):
        L.inv(dm.tensor(sing, requires_grad=True))
    with pytest.raises(dm.LinAlgError, match="singular"):
        L.solve(np.zeros((3, 2, 2)), np.ones((3, 2, 1)))
    with pytest.raises(dm.LinAlgError, match="solve_triangular"):
        L.solve_triangular(np.tril(sing) * [[0, 0], [1, 1]], np.ones(2))
    assert issubclass(dm.LinAlgError, dm.DlmathError)


@pytest.mark.parametrize("a", [
    np.array([[1.0, 2.0], [2.0, 4.0]]),
    np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [5.0, 7.0, 9.0]]),  # rank 2 (its det rounds to 4e-15, not 0)
    np.zeros((2, 3, 3)),                                              # rank 0: the cofactors are 0
    np.stack([np.diag([1.0, 0.0, 2.0]), np.eye(3) * 2]),             # a batch with one singular matrix
], ids=["2x2", "rank-2", "zeros", "batch"])
def test_det_gradient_at_singular_matrices_is_the_cofactor_matrix(a):
    """d det / dA = cof(A), also where det A = 0. det is linear in each entry, so central differences are exact
    up to rounding. (PyTorch 2.13 returns 0 for the 2x2 and diag(1, 0, 2) here, not the cofactors.)"""
    grad = np.asarray(dm.grad(lambda x: L.det(x).sum())(a))
    fd = np.zeros_like(a)
    for idx in np.ndindex(*a.shape):
        e = np.zeros_like(a)
        e[idx] = 1e-3
        fd[idx] = (np.sum(np.linalg.det(a + e)) - np.sum(np.linalg.det(a - e))) / 2e-3
    np.testing.assert_allclose(grad, fd, atol=1e-9)
    v = np.random.default_rng(0).standard_normal(a.shape)
    _, jv = dm.jvp(L.det, (a,), (v,))
    eps = 1e-5
    np.testing.assert_allclose(np.asarray(jv), (np.linalg.det(a + eps * v) - np.linalg.det(a - eps * v)) / (2 * eps),
                               atol=1e-7)
    check_transpose(L.det, (a,), (v,), np.asarray(jv))
    if np.any(np.linalg.det(a) == 0):
        with pytest.raises(dm.LinAlgError, match="inv"):  # log|det| = -inf has no gradient there
            dm.grad(lambda x: L.slogdet(x)[1].sum())(a)


def test_cholesky_not_positive_definite_raises():
    with pytest.raises(dm.LinAlgError, match=r"cholesky: .*\(2, 2\).*not positive definite"):
        L.cholesky(dm.tensor([[1.0, 2.0], [2.0, 1.0]], requires_grad=True))


@pytest.mark.parametrize(("f", "args", "match"), [
    (L.solve, (np.ones((2, 3)), np.ones(3)), "square"),
    (L.solve, (np.eye(3), np.ones(2)), r"b of shape \(2,\)"),
    (L.solve, (np.eye(3), np.ones((4, 2))), "does not fit"),
    (L.solve, (np.ones((2, 3, 3)), np.ones((4, 3, 1))), "batch"),
    (L.inv, (np.ones(3),), "square"),
    (L.det, (np.ones((2, 3)),), "square"),
    (L.slogdet, (np.ones((2, 3)),), "square"),
    (L.cholesky, (np.ones((3, 2)),), "square"),
    (L.eigh, (np.ones((3, 2)),), "square"),
    (L.eigvalsh, (np.ones((3, 2)),), "square"),
    (L.matrix_power, (np.ones((3, 2)), 2), "square"),
    (L.svd, (np.ones(3),), "2 dimensions"),
    (L.qr, (np.ones(3),), "2 dimensions"),
    (L.pinv, (np.ones(3),), "2 dimensions"),
    (L.trace, (np.ones(3),), "2 dimensions"),
])
def test_shape_errors(f, args, match):
    with pytest.raises(dm.ShapeError, match=match):
        f(*args)


def test_repeated_eigenvalues():
    """Eigenvalue gradients are fine at a repeated eigenvalue (as PyTorch); eigenvector gradients are not defined:
    PyTorch gives inf/NaN, dlmath raises LinAlgError."""
    a = np.diag([1.0, 1.0, 2.0])
    g = dm.grad(lambda x: (L.eigvalsh(x) * np.array([1.0, 2.0, 3.0])).sum())(a)
    ta = torch.tensor(a, requires_grad=True)
    (torch.linalg.eigvalsh(ta) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(np.asarray(g), ta.grad.numpy(), atol=1e-12)
    ta.grad = None
    torch.linalg.eigh(ta)[1][:, 0].sum().backward()
    assert not np.all(np.isfinite(ta.grad.numpy()))  # torch: inf/NaN
    with pytest.raises(dm.LinAlgError, match=r"eigh: .*repeated"):
        dm.grad(lambda x: L.eigh(x)[1][:, 0].sum())(a)
    with pytest.raises(dm.LinAlgError, match=r"eigh: .*repeated"):
        dm.jvp(lambda x: L.eigh(x)[1], (a,), (np.eye(3),))


def test_repeated_singular_values():
    a = np.diag([2.0, 2.0, 1.0])
    g = dm.grad(lambda x: L.svdvals(x).sum())(a)  # the nuclear norm's gradient U V^T: fine
    np.testing.assert_allclose(np.asarray(g), np.eye(3), atol=1e-12)
    with pytest.raises(dm.LinAlgError, match=r"svd: .*repeated"):
        dm.grad(lambda x: L.svd(x, full_matrices=False)[0].sum())(a)


def test_flops_are_counted():
    a = spd(np.random.default_rng(0), (), 8)
    with dm.count_flops() as c:
        L.cholesky(dm.tensor(a, requires_grad=True)).sum().backward()
    assert c.total > 8 ** 3 / 3


# every primitive of dlmath.autodiff.linalg and the test that runs it (test_jvp_torch.py checks the list)
COVERED = {
    "_solve": test_solve_matrix_rhs, "_solve_tri": test_solve_triangular, "_inv": test_inv, "_det": test_det,
    "_logabsdet": test_slogdet, "_cholesky": test_cholesky, "_eigh_values": test_eigvalsh,
    "_eigh_vectors": test_eigh_vectors, "_svd_u": test_svd, "_svd_s": test_svd, "_svd_vh": test_svd,
    "_qr_q": test_qr, "_qr_r": test_qr, "_pinv": test_pinv,
}


def test_factorization_cache_sees_in_place_changes():
    a = separated(np.random.default_rng(1), (), 3)
    w1 = L.eigvalsh(a)
    a[0, 0] += 1.0  # same array object, new values: a new factorization
    np.testing.assert_allclose(L.eigvalsh(a), np.linalg.eigvalsh(a), rtol=1e-12)
    assert not np.allclose(w1, L.eigvalsh(a))


def test_solve_backward_factorizes_once_and_solves_once():
    """Forward: one LU and one solve; backward: A^{-T} g from the same LU, once for both VJP rules."""
    rng = np.random.default_rng(2)
    a, b = general(rng, (), 4), rng.standard_normal((4, 2))
    linalg._cache.entries.clear()
    solves, factors = [], []
    sla = linalg._scipy_linalg()
    real_solve, real_factor = linalg._solve.forward, sla.lu_factor
    try:
        linalg._solve.forward = lambda *args, **kw: solves.append(1) or real_solve(*args, **kw)
        sla.lu_factor = lambda *args, **kw: factors.append(1) or real_factor(*args, **kw)
        x, y = dm.tensor(a, requires_grad=True), dm.tensor(b, requires_grad=True)
        (L.solve(x, y) ** 2).sum().backward()
    finally:
        linalg._solve.forward, sla.lu_factor = real_solve, real_factor
    assert (len(solves), len(factors)) == (2, 1)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (torch.linalg.solve(tx, ty) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(y.grad.data, ty.grad.numpy(), rtol=1e-10)
