r"""``dm.linalg``: linear algebra, differentiable in reverse and forward mode, batched as ``numpy.linalg``.

The table of this module's primitives comes first (forward, one VJP rule and one JVP rule per argument, a flop
count), then the public functions, some of which are composites of the primitives (``trace``, ``norm``,
``matrix_power``). Every rule is written with dm ops, so it runs on arrays in a plain backward pass and on Tensors
when recorded (higher-order derivatives). All functions work on the last two axes and broadcast over the leading
ones, as ``numpy.linalg`` does.

References for the rules: M. Giles, "An extended collection of matrix derivative results for forward and reverse
mode automatic differentiation" (2008) for solve, inv, det, slogdet, eigh; I. Murray, "Differentiation of the
Cholesky decomposition" (2016) for cholesky; J. Townsend, "Differentiating the singular value decomposition" (2016)
for svd; the QR rules follow from $dA = dQ\,R + Q\,dR$ with $Q^\top dQ$ skew (Walter & Lehmann 2018).

**Several outputs.** An engine primitive returns one array. ``eigh``, ``svd``, ``qr`` and ``slogdet`` are
therefore split into one primitive per output (``eigh_values``/``eigh_vectors``, ``svd_u``/``svd_s``/``svd_vh``,
``qr_q``/``qr_r``, and ``logabsdet`` with a constant sign). Each of them runs the same LAPACK factorization,
which is computed once: a small per-thread cache remembers the last few factorizations of each kind together
with a copy of their inputs, and a call on an equal array (same shape, dtype and values) reuses one. So
``dm.linalg.eigh(a)`` factorizes once, and the VJP rules (which need the other output: the gradient of the
eigenvalues is $V\,\mathrm{diag}(\bar\lambda)\,V^\top$) find the factorization in the cache instead of recomputing it.

**Symmetric inputs.** ``cholesky``, ``eigh`` and ``eigvalsh`` read one triangle (the lower one, as NumPy), but
their gradients are the symmetric matrices PyTorch returns, and their JVP rules use the symmetric part
$(\dot A + \dot A^\top)/2$ of the tangent, so forward and reverse mode agree for any tangent.

**Degenerate points.** Gradients of eigenvectors and singular vectors divide by the gaps
$\lambda_j - \lambda_i$ (resp. $\sigma_j^2 - \sigma_i^2$): at a repeated eigen/singular value they are not
defined. PyTorch returns inf/NaN there; dlmath raises ``dm.LinAlgError`` naming the function instead (the values'
own gradients stay fine). A nearly repeated value gives large but finite results, as in PyTorch. The singular
vectors of a non-square matrix also divide by the singular values: a zero singular value raises likewise.
``solve`` keeps a's LU factors (SciPy's ``lu_factor``) in the same cache, so its backward pass solves with
$A^\top$ without factorizing again, once for both VJP rules. A singular matrix in ``solve``/``inv`` (and in
the gradient of ``slogdet``; ``det``'s is the cofactor matrix) and a matrix that is not positive definite in
``cholesky`` raise ``dm.LinAlgError``, never a NaN.
``svd(full_matrices=True)`` of a non-square matrix is not differentiable (the extra columns are not unique), as
in PyTorch: a Tensor that requires grad raises ``GradientError``; use ``full_matrices=False``. QR is
differentiable for $m \ge n$ (reduced).
``norm``'s subgradient at 0 is 0, as in PyTorch.
"""

from __future__ import annotations

import builtins
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import ops as _ops
from .core import Primitive, Tensor
from .core import unwrap as _data
from .errors import GradientError, LinAlgError, ShapeError
from .ops import (
    abs,
    getitem,
    matmul,
    max,
    min,
    power,
    prod,
    reshape,
    sqrt,
    squeeze,
    sum,
    swapaxes,
    transpose,
    unsqueeze,
    where,
)


def _scipy_linalg() -> Any:
    """scipy.linalg, imported on first use: it takes about 0.3 s, which `import dlmath` should not pay."""
    import scipy.linalg

    return scipy.linalg

__all__ = [
    "cholesky", "det", "eigh", "eigvalsh", "inv", "matrix_power", "norm", "pinv", "qr", "slogdet", "solve",
    "solve_triangular", "svd", "svdvals", "trace",
]


# ----- helpers written with dm ops (differentiable) --------------------------------------------------------------
def _mT(x: Any) -> Any:
    """Transpose of the last two axes."""
    return swapaxes(x, -1, -2)


def _eye(n: int, like: Any) -> np.ndarray:
    return np.eye(n, dtype=_data(like).dtype)


def _tril(x: Any, k: int = 0) -> Any:
    if not isinstance(x, Tensor):
        return np.tril(x, k)
    n = np.shape(x)[-1]
    return x * np.tril(np.ones((n, n), dtype=_data(x).dtype), k)


def _triu(x: Any, k: int = 0) -> Any:
    if not isinstance(x, Tensor):
        return np.triu(x, k)
    n = np.shape(x)[-1]
    return x * np.triu(np.ones((n, n), dtype=_data(x).dtype), k)


def _offdiag(x: Any) -> Any:
    n = np.shape(x)[-1]
    return x * (1 - _eye(n, x))


def _diagonal(x: Any) -> Any:
    """The diagonal of the last two axes, shape (..., n)."""
    n = builtins.min(np.shape(x)[-2:])
    r = np.arange(n)
    return getitem(x, (Ellipsis, r, r))


def _sym(x: Any) -> Any:
    return (x + _mT(x)) * 0.5


def _batch(x: Any) -> int:
    shape = np.shape(x)
    return int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1


def _gaps(v: Any, op: str, what: str) -> Any:
    r"""$E_{ij} = v_j - v_i$ off the diagonal, 1 on it; LinAlgError where an off-diagonal gap is exactly 0."""
    n = np.shape(v)[-1]
    e = unsqueeze(v, -2) - unsqueeze(v, -1)
    off = ~np.eye(n, dtype=bool)
    if np.any((_data(e) == 0) & off):
        raise LinAlgError(f"{op}: the gradient of the {what} is not defined at a repeated value (input has "
                          f"{n} values per matrix, two of them equal); gradients of the values alone are fine")
    return e + _eye(n, v)


# ----- the factorization cache ------------------------------------------------------------------------------------
_CACHE_SIZE = 4  # factorizations kept per kind and thread (a graph with a few eigh/svd/qr/solve nodes reuses all)


class _Cache(threading.local):
    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}


_cache = _Cache()


def _factor(kind: str, a: np.ndarray, compute: Callable[[np.ndarray], Any]) -> Any:
    """compute(a), reused when one of the last few calls of this kind (this thread) saw an equal array."""
    a = np.asarray(a)
    recent: list[tuple[np.ndarray, Any]] = _cache.entries.setdefault(kind, [])
    for i, (saved, result) in enumerate(recent):
        if saved.shape == a.shape and saved.dtype == a.dtype and np.array_equal(saved, a):
            if i:
                recent.insert(0, recent.pop(i))
            return result
    result = compute(a)
    recent.insert(0, (np.array(a), result))
    del recent[_CACHE_SIZE:]
    return result


# ----- checks ------------------------------------------------------------------------------------------------------
def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(_data(x)))


def _check_square(a: Any, op: str, arg: str = "a") -> None:
    s = _shape(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ShapeError(f"{op}: {arg} must be a square matrix or a stack of them (shape (..., n, n)), got shape {s}")


def _check_matrix(a: Any, op: str, arg: str = "a") -> None:
    s = _shape(a)
    if len(s) < 2:
        raise ShapeError(f"{op}: {arg} must have at least 2 dimensions (shape (..., m, n)), got shape {s}")


def _finite_or_raise(out: np.ndarray, op: str, a: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(out)) and np.all(np.isfinite(a)):
        raise LinAlgError(f"{op}: the matrix of shape {a.shape} is singular to working precision "
                          f"(the result is not finite)")
    return out


# ----- solve and triangular solve --------------------------------------------------------------------------------
def _lu(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LU factors of a (batched), computed once per matrix (the cache), or LinAlgError if a is singular."""
    def compute(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _scipy_linalg().LinAlgWarning)  # exact singularity: checked just below
            lu, piv = _scipy_linalg().lu_factor(x, check_finite=False)
        if np.any(np.diagonal(lu, axis1=-2, axis2=-1) == 0):
            raise LinAlgError(f"solve: the matrix a of shape {x.shape} is singular")
        return lu, piv
    return _factor("lu", a, compute)


def _solve_forward(a: np.ndarray, b: np.ndarray, transpose: bool = False) -> np.ndarray:
    r"""$A^{-1}B$ (or $A^{-\top}B$) from a's LU factors, which the VJP rules reuse for $A^{-\top}\bar X$."""
    if not np.all(np.isfinite(a)):
        raise LinAlgError(f"solve: the matrix a of shape {a.shape} has non-finite entries")
    lu, piv = _lu(a)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if batch != a.shape[:-2]:
        lu, piv = np.broadcast_to(lu, batch + lu.shape[-2:]), np.broadcast_to(piv, batch + piv.shape[-1:])
    if batch != b.shape[:-2]:
        b = np.broadcast_to(b, batch + b.shape[-2:])
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    out = _scipy_linalg().lu_solve((lu, piv), b, trans=1 if transpose else 0, check_finite=False)
    out = out.astype(dtype, copy=False)
    return _finite_or_raise(out, "solve", a)


def _solve_flops(out: Any, a: Any, b: Any, transpose: bool = False) -> int:
    n, k = np.shape(a)[-1], np.shape(out)[-1]
    return _batch(out) * (2 * n ** 3 // 3 + 2 * n * n * k)


def _op(x: Any, transpose: bool) -> Any:
    return _mT(x) if transpose else x


def _solve_cotangent(g: Any, a: Any, transpose: bool) -> Any:
    r"""$\bar B = \mathrm{op}(A)^{-\top}\bar X$, needed by both VJP rules: computed once in a plain backward pass
    (the second rule takes the first one's result, once). Recorded rules (higher order) solve each time."""
    if isinstance(g, Tensor) or isinstance(a, Tensor):
        return _solve(a, g, transpose=not transpose)
    # the two rules of one node run back to back in the sweep, on the same a and g objects: keyed by identity
    hit = _cache.entries.pop("solve-cotangent", None)
    if hit is not None:
        (sa, sg, st), result = hit
        if sa is a and sg is g and st == transpose:
            return result
    result = _solve(a, g, transpose=not transpose)
    _cache.entries["solve-cotangent"] = ((a, g, transpose), np.array(result))
    return result


_solve = Primitive("solve", _solve_forward, _solve_flops, r"$X = A^{-1}B$ (or $A^{-\top}B$), B of shape (..., n, k)",
                   reads_output=True).defvjp(
    # Giles (2008): \bar B = A^{-T} \bar X, \bar A = -\bar B X^T (for op(A) = A^T: the transpose of that)
    lambda g, ans, a, b, transpose=False: _op(-matmul(_solve_cotangent(g, a, transpose), _mT(ans)), transpose),
    lambda g, ans, a, b, transpose=False: _solve_cotangent(g, a, transpose)).defjvp(
    # \dot X = op(A)^{-1}(\dot B - op(\dot A) X)
    lambda t, ans, a, b, transpose=False: -_solve(a, matmul(_op(t, transpose), ans), transpose=transpose),
    lambda t, ans, a, b, transpose=False: _solve(a, t, transpose=transpose))


def _solve_tri_forward(a: np.ndarray, b: np.ndarray, lower: bool = True) -> np.ndarray:
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    if np.any(np.diagonal(a, axis1=-2, axis2=-1) == 0):
        raise LinAlgError(f"solve_triangular: the triangular matrix of shape {a.shape} is singular "
                          f"(a zero on its diagonal)")
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    if not batch:
        return _scipy_linalg().solve_triangular(a, b, lower=lower, check_finite=False).astype(dtype, copy=False)
    out = np.empty(batch + (a.shape[-1], b.shape[-1]), dtype=dtype)
    for i in np.ndindex(*batch):
        out[i] = _scipy_linalg().solve_triangular(a[i], b[i], lower=lower, check_finite=False)
    return out


def _solve_tri_flops(out: Any, a: Any, b: Any, lower: bool = True) -> int:
    n, k = np.shape(a)[-1], np.shape(out)[-1]
    return _batch(out) * n * n * k


def _tri_mask(x: Any, lower: bool) -> Any:
    return _tril(x) if lower else _triu(x)


_solve_tri = Primitive("solve_triangular", _solve_tri_forward, _solve_tri_flops,
                       r"$X = A^{-1}B$ for triangular A (only its triangle is read)", reads_output=True).defvjp(
    lambda g, ans, a, b, lower=True: -_tri_mask(matmul(_solve_tri(_mT(a), g, lower=not lower), _mT(ans)), lower),
    lambda g, ans, a, b, lower=True: _solve_tri(_mT(a), g, lower=not lower)).defjvp(
    lambda t, ans, a, b, lower=True: -_solve_tri(a, matmul(_tri_mask(t, lower), ans), lower=lower),
    lambda t, ans, a, b, lower=True: _solve_tri(a, t, lower=lower))


def _check_solve(a: Any, b: Any, op: str) -> bool:
    """Shape checks of solve; returns whether b is a vector (NumPy 2: exactly when b.ndim == 1)."""
    _check_square(a, op)
    sa, sb = _shape(a), _shape(b)
    vector = len(sb) == 1
    if len(sb) == 0 or sb[-1 if vector else -2] != sa[-1]:
        raise ShapeError(f"{op}: b of shape {sb} does not fit a of shape {sa} (expected b of shape ({sa[-1]},) "
                         f"or (..., {sa[-1]}, k))")
    if not vector:
        try:
            np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise ShapeError(f"{op}: the batch dimensions of a {sa[:-2]} and b {sb[:-2]} do not broadcast") from None
    return vector


def solve(a: Any, b: Any) -> Any:
    r"""Solve $AX = B$ (``numpy.linalg.solve``, NumPy 2 semantics: b is a vector exactly when ``b.ndim == 1``).

    Derivatives (Giles 2008): $\bar B = A^{-\top}\bar X$, $\bar A = -\bar B X^\top$;
    $\dot X = A^{-1}(\dot B - \dot A X)$. A singular a raises ``dm.LinAlgError``."""
    if _check_solve(a, b, "solve"):
        return getitem(_solve(a, unsqueeze(b, -1)), (Ellipsis, 0))
    return _solve(a, b)


def solve_triangular(a: Any, b: Any, lower: bool = True) -> Any:
    r"""Solve $AX = B$ for a triangular a (only its lower or upper triangle is read; b as in ``solve``).

    Derivatives: $\bar B = A^{-\top}\bar X$, $\bar A = -\mathrm{tri}(\bar B X^\top)$ (projected onto the triangle);
    $\dot X = A^{-1}(\dot B - \mathrm{tri}(\dot A) X)$."""
    if _check_solve(a, b, "solve_triangular"):
        return getitem(_solve_tri(a, unsqueeze(b, -1), lower=lower), (Ellipsis, 0))
    return _solve_tri(a, b, lower=lower)


# ----- inverse, determinant ----------------------------------------------------------------------------------------
def _inv_forward(a: np.ndarray) -> np.ndarray:
    try:
        out = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        raise LinAlgError(f"inv: the matrix of shape {a.shape} is singular") from None
    return _finite_or_raise(out, "inv", a)


_inv = Primitive("inv", _inv_forward, lambda out, a: _batch(out) * 2 * np.shape(a)[-1] ** 3,
                 r"$A^{-1}$", reads_inputs=False, reads_output=True).defvjp(
    # \bar A = -A^{-T} \bar Y A^{-T}
    lambda g, ans, a: -matmul(matmul(_mT(ans), g), _mT(ans))).defjvp(
    # \dot Y = -A^{-1} \dot A A^{-1}
    lambda t, ans, a: -matmul(ans, matmul(t, ans)))


def _trace_solve(a: Any, t: Any) -> Any:
    r"""$\mathrm{tr}(A^{-1}\dot A)$, by a solve (the JVP route; the VJP rules use $A^{-\top}$)."""
    return sum(_diagonal(_solve(a, t)), axis=-1)


def _det_forward(a: np.ndarray) -> np.ndarray:
    return np.linalg.det(a)


def _adjugate_parts(a: Any) -> tuple[Any, Any, Any, np.ndarray]:
    r"""$U$, $\pi$, $V_h$ and $\det U \det V_h$ with
    $\mathrm{adj}(A)^\top = \det U\det V_h\,U\,\mathrm{diag}(\pi)\,V_h$,
    $\pi_i = \prod_{j \ne i} s_j$ (from $A = U\,\mathrm{diag}(s)\,V_h$): defined at singular matrices too."""
    u, s, vh = _svd_pieces(a)
    n = np.shape(s)[-1]
    pi = prod(where(np.eye(n, dtype=bool), 1.0, unsqueeze(s, -2)), axis=-1)
    sign = np.linalg.det(_data(u)) * np.linalg.det(_data(vh))
    return u, pi, vh, np.asarray(sign)


def _det_vjp(g: Any, ans: Any, a: Any) -> Any:
    r"""$\bar A = \bar y\det(A)A^{-\top}$; at a singular matrix ($\det A = 0$) the cofactor matrix
    $\bar y\,\mathrm{adj}(A)^\top$ from the SVD (PyTorch 2.13 returns 0 for some singular matrices)."""
    g2 = unsqueeze(unsqueeze(g, -1), -1)
    if np.any(_data(ans) == 0):
        u, pi, vh, sign = _adjugate_parts(a)
        return g2 * matmul(u * unsqueeze(pi, -2), vh) * sign[..., None, None]
    return g2 * unsqueeze(unsqueeze(ans, -1), -1) * _mT(_inv(a))


def _det_jvp(t: Any, ans: Any, a: Any) -> Any:
    r"""$\dot y = \det(A)\,\mathrm{tr}(A^{-1}\dot A)$; at a singular matrix $\mathrm{tr}(\mathrm{adj}(A)\dot A)
    = \det U\det V_h\sum_i \pi_i (U^\top\dot A V)_{ii}$."""
    if np.any(_data(ans) == 0):
        u, pi, vh, sign = _adjugate_parts(a)
        return sum(pi * sum(u * matmul(t, _mT(vh)), axis=-2), axis=-1) * sign
    return ans * _trace_solve(a, t)


_det = Primitive("det", _det_forward, lambda out, a: _batch(a) * 2 * np.shape(a)[-1] ** 3 // 3,
                 r"$\det A$", reads_output=True).defvjp(_det_vjp).defjvp(_det_jvp)

_logabsdet = Primitive("logabsdet", lambda a: np.linalg.slogdet(a)[1],
                       lambda out, a: _batch(a) * 2 * np.shape(a)[-1] ** 3 // 3, r"$\log|\det A|$").defvjp(
    # \bar A = \bar y A^{-T}
    lambda g, ans, a: unsqueeze(unsqueeze(g, -1), -1) * _mT(_inv(a))).defjvp(
    lambda t, ans, a: _trace_solve(a, t))


def inv(a: Any) -> Any:
    r"""$A^{-1}$. $\bar A = -A^{-\top}\bar Y A^{-\top}$, $\dot Y = -A^{-1}\dot A A^{-1}$ (Giles 2008).
    A singular matrix raises ``dm.LinAlgError``."""
    _check_square(a, "inv")
    return _inv(a)


def det(a: Any) -> Any:
    r"""$\det A$. $\bar A = \bar y \det(A)\,A^{-\top}$, $\dot y = \det(A)\,\mathrm{tr}(A^{-1}\dot A)$ (Giles 2008).
    At an exactly singular matrix the gradient is the cofactor matrix $\mathrm{adj}(A)^\top$, from the SVD
    (PyTorch 2.13 returns 0 there for some matrices, e.g. [[1, 2], [2, 4]])."""
    _check_square(a, "det")
    return _det(a)


def slogdet(a: Any) -> tuple[Any, Any]:
    r"""``(sign, logabsdet)`` with $\det A = \mathrm{sign}\cdot e^{\mathrm{logabsdet}}$. The sign is a constant;
    $\partial \log|\det A| / \partial A = A^{-\top}$, $\dot y = \mathrm{tr}(A^{-1}\dot A)$."""
    _check_square(a, "slogdet")
    sign = np.linalg.slogdet(_data(a))[0]
    return (Tensor._wrap(sign) if isinstance(a, Tensor) else sign), _logabsdet(a)


def trace(a: Any) -> Any:
    r"""$\mathrm{tr} A = \sum_i A_{ii}$ over the last two axes (``numpy.linalg.trace``); a composite."""
    _check_matrix(a, "trace")
    return sum(_diagonal(a), axis=-1)


# ----- Cholesky ----------------------------------------------------------------------------------------------------
def _cholesky_forward(a: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        raise LinAlgError(f"cholesky: the matrix of shape {a.shape} is not positive definite") from None


def _cholesky_vjp(g: Any, ans: Any, a: Any) -> Any:
    r"""Murray (2016), in PyTorch's symmetric form: $\Phi = \mathrm{tril}(L^\top\bar L)$,
    $S = \tfrac12(\Phi + \mathrm{tril}(\Phi,-1)^\top)$, $\bar A = L^{-\top} S L^{-1}$."""
    p = _tril(matmul(_mT(ans), g))
    s = (p + _mT(_tril(p, -1))) * 0.5
    x = _solve_tri(_mT(ans), s, lower=False)                      # L^{-T} S
    return _mT(_solve_tri(_mT(ans), _mT(x), lower=False))         # (L^{-T} X^T)^T = X L^{-1}


def _cholesky_jvp(t: Any, ans: Any, a: Any) -> Any:
    r"""$\dot L = L\,\Phi(L^{-1}\dot A_s L^{-\top})$, $\Phi$ = lower triangle with the diagonal halved."""
    z = _solve_tri(ans, _sym(t), lower=True)                      # L^{-1} dA
    y = _mT(_solve_tri(ans, _mT(z), lower=True))                  # L^{-1} dA L^{-T}
    return matmul(ans, _tril(y) - y * (0.5 * _eye(np.shape(y)[-1], y)))


_cholesky = Primitive("cholesky", _cholesky_forward, lambda out, a: _batch(a) * np.shape(a)[-1] ** 3 // 3,
                      r"lower $L$ with $LL^\top = A$", reads_inputs=False, reads_output=True).defvjp(
    _cholesky_vjp).defjvp(_cholesky_jvp)


def cholesky(a: Any) -> Any:
    r"""Lower-triangular $L$ with $A = LL^\top$ (``numpy.linalg.cholesky``; reads the lower triangle).
    Rules: Murray (2016). A matrix that is not positive definite raises ``dm.LinAlgError``."""
    _check_square(a, "cholesky")
    return _cholesky(a)


# ----- eigh ----------------------------------------------------------------------------------------------------------
def _eigh_both(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _factor("eigh", a, lambda x: np.linalg.eigh(x))


def _eigh_flops(out: Any, a: Any) -> int:
    return _batch(a) * 9 * np.shape(a)[-1] ** 3


def _eigh_vectors_vjp(g: Any, ans: Any, a: Any) -> Any:
    r"""$\bar A = V\,(\mathrm{skew}(V^\top\bar V)/E)\,V^\top$, $E_{ij} = \lambda_j - \lambda_i$ (PyTorch's form)."""
    w = _eigh_values(a)
    x = matmul(_mT(ans), g)
    f = ((x - _mT(x)) * 0.5) / _gaps(w, "eigh", "eigenvectors")
    return matmul(matmul(ans, f), _mT(ans))


def _eigh_vectors_jvp(t: Any, ans: Any, a: Any) -> Any:
    r"""$\dot V = V\,(F \circ V^\top \dot A_s V)$, $F_{ij} = 1/(\lambda_j - \lambda_i)$ off the diagonal, 0 on it."""
    w = _eigh_values(a)
    m = _offdiag(matmul(_mT(ans), matmul(_sym(t), ans)))
    return matmul(ans, m / _gaps(w, "eigh", "eigenvectors"))


_eigh_values = Primitive("eigh_values", lambda a: _eigh_both(a)[0], _eigh_flops,
                         "eigenvalues of a symmetric matrix, ascending").defvjp(
    # \bar A = V diag(\bar\lambda) V^T
    lambda g, ans, a: matmul(_eigh_vectors(a) * unsqueeze(g, -2), _mT(_eigh_vectors(a)))).defjvp(
    # \dot\lambda_i = v_i^T \dot A_s v_i
    lambda t, ans, a: sum(_eigh_vectors(a) * matmul(_sym(t), _eigh_vectors(a)), axis=-2))
_eigh_vectors = Primitive("eigh_vectors", lambda a: _eigh_both(a)[1], _eigh_flops,
                          "eigenvectors of a symmetric matrix (columns)", reads_output=True).defvjp(
    _eigh_vectors_vjp).defjvp(_eigh_vectors_jvp)


def eigh(a: Any, UPLO: str = "L") -> tuple[Any, Any]:
    r"""``(w, V)`` with $A = V\,\mathrm{diag}(w)\,V^\top$, w ascending (``numpy.linalg.eigh``, UPLO='L' only).

    $\bar A = V(\mathrm{diag}(\bar w) + \mathrm{skew}(V^\top\bar V)/E)V^\top$, $E_{ij} = w_j - w_i$ (Giles 2008);
    the eigenvector part raises ``dm.LinAlgError`` at a repeated eigenvalue (PyTorch gives inf/NaN)."""
    _check_uplo(UPLO, "eigh")
    _check_square(a, "eigh")
    return _eigh_values(a), _eigh_vectors(a)


def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    r"""Eigenvalues of a symmetric matrix, ascending; $\bar A = V\,\mathrm{diag}(\bar w)\,V^\top$."""
    _check_uplo(UPLO, "eigvalsh")
    _check_square(a, "eigvalsh")
    return _eigh_values(a)


def _check_uplo(uplo: str, op: str) -> None:
    if uplo != "L":
        raise ValueError(f"{op}: only UPLO='L' is supported (got {uplo!r}); pass the transpose for 'U'")


# ----- SVD ----------------------------------------------------------------------------------------------------
def _svd_all(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _factor("svd", a, lambda x: np.linalg.svd(x, full_matrices=False))


def _svd_flops(out: Any, a: Any) -> int:
    m, n = np.shape(a)[-2:]
    k, big = builtins.min(m, n), builtins.max(m, n)
    return _batch(a) * (4 * big * big * k + 8 * big * k * k + 9 * k ** 3)


def _svd_pieces(a: Any) -> tuple[Any, Any, Any]:
    return _svd_u(a), _svd_s(a), _svd_vh(a)


def _check_nonzero(s: Any, op: str) -> None:
    if np.any(_data(s) == 0):
        raise LinAlgError(f"{op}: the gradient of the singular vectors of a non-square matrix is not defined "
                          f"at a zero singular value")


def _svd_u_vjp(g: Any, ans: Any, a: Any) -> Any:
    r"""Townsend (2016), as PyTorch: $\bar A = U[(\mathrm{skew}(U^\top\bar U)/E)S]V^\top
    + (I - UU^\top)\bar U S^{-1}V^\top$, $E_{ij} = s_j^2 - s_i^2$, skew(X) = X - X^T."""
    u, s, vh = _svd_pieces(a)
    x = matmul(_mT(u), g)
    core = (x - _mT(x)) * unsqueeze(s, -2) / _gaps(s * s, "svd", "singular vectors")
    out = matmul(u, core)
    if np.shape(a)[-2] > np.shape(s)[-1]:
        _check_nonzero(s, "svd")
        out = out + (g - matmul(u, x)) / unsqueeze(s, -2)
    return matmul(out, vh)


def _svd_vh_vjp(g: Any, ans: Any, a: Any) -> Any:
    r"""$\bar A = U[S(\mathrm{skew}(V^\top\bar V)/E)]V^\top + U S^{-1}\bar V^\top(I - VV^\top)$,
    $\bar V = \bar V_h^\top$."""
    u, s, vh = _svd_pieces(a)
    y = matmul(vh, _mT(g))                                        # V^T \bar V
    core = unsqueeze(s, -1) * (y - _mT(y)) / _gaps(s * s, "svd", "singular vectors")
    out = matmul(matmul(u, core), vh)
    if np.shape(a)[-1] > np.shape(s)[-1]:
        _check_nonzero(s, "svd")
        out = out + matmul(u / unsqueeze(s, -2), g - matmul(matmul(g, _mT(vh)), vh))
    return out


def _svd_u_jvp(t: Any, ans: Any, a: Any) -> Any:
    r"""$\dot U = U\,\Omega_U + (I - UU^\top)\dot A V S^{-1}$, $\Omega_U = (\dot P S + S\dot P^\top)/E$ off the
    diagonal, $\dot P = U^\top \dot A V$."""
    u, s, vh = _svd_pieces(a)
    av = matmul(t, _mT(vh))
    dp = matmul(_mT(u), av)
    omega = _offdiag(dp * unsqueeze(s, -2) + unsqueeze(s, -1) * _mT(dp)) / _gaps(s * s, "svd", "singular vectors")
    out = matmul(u, omega)
    if np.shape(a)[-2] > np.shape(s)[-1]:
        _check_nonzero(s, "svd")
        out = out + (av - matmul(u, dp)) / unsqueeze(s, -2)
    return out


def _svd_vh_jvp(t: Any, ans: Any, a: Any) -> Any:
    r"""$\dot V = V\,\Omega_V + (I - VV^\top)\dot A^\top U S^{-1}$, $\Omega_V = (S\dot P + \dot P^\top S)/E$ off the
    diagonal; the output is $\dot V^\top$."""
    u, s, vh = _svd_pieces(a)
    atu = matmul(_mT(t), u)
    dp = matmul(_mT(u), matmul(t, _mT(vh)))
    omega = _offdiag(unsqueeze(s, -1) * dp + _mT(dp) * unsqueeze(s, -2)) / _gaps(s * s, "svd", "singular vectors")
    dv = matmul(_mT(vh), omega)
    if np.shape(a)[-1] > np.shape(s)[-1]:
        _check_nonzero(s, "svd")
        dv = dv + (atu - matmul(_mT(vh), _mT(dp))) / unsqueeze(s, -2)
    return _mT(dv)


_svd_u = Primitive("svd_u", lambda a: _svd_all(a)[0], _svd_flops, "left singular vectors (reduced)",
                   reads_output=True).defvjp(_svd_u_vjp).defjvp(_svd_u_jvp)
_svd_s = Primitive("svd_s", lambda a: _svd_all(a)[1], _svd_flops, "singular values, descending").defvjp(
    # \bar A = U diag(\bar s) V^T
    lambda g, ans, a: matmul(_svd_u(a) * unsqueeze(g, -2), _svd_vh(a))).defjvp(
    # \dot s_i = u_i^T \dot A v_i
    lambda t, ans, a: sum(_svd_u(a) * matmul(t, _mT(_svd_vh(a))), axis=-2))
_svd_vh = Primitive("svd_vh", lambda a: _svd_all(a)[2], _svd_flops, "right singular vectors, transposed (reduced)",
                    reads_output=True).defvjp(_svd_vh_vjp).defjvp(_svd_vh_jvp)


def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True) -> Any:
    r"""``(U, S, Vh)`` with $A = U\,\mathrm{diag}(S)\,V_h$ (``numpy.linalg.svd``), or S alone with
    ``compute_uv=False``. Rules: Townsend (2016), in PyTorch's form. ``full_matrices=True`` of a non-square
    matrix is not differentiable (a Tensor that requires grad or carries a tangent raises ``GradientError``)."""
    _check_matrix(a, "svd")
    if not compute_uv:
        return _svd_s(a)
    m, n = _shape(a)[-2:]
    if full_matrices and m != n:
        if isinstance(a, Tensor) and (a.requires_grad or a._tangent is not None):
            raise GradientError(f"svd: full_matrices=True of a non-square matrix (shape {_shape(a)}) is not "
                                f"differentiable (the extra singular vectors are not unique); use "
                                f"full_matrices=False")
        u, s, vh = np.linalg.svd(_data(a), full_matrices=True)
        if isinstance(a, Tensor):
            return Tensor._wrap(u), Tensor._wrap(s), Tensor._wrap(vh)
        return u, s, vh
    return _svd_u(a), _svd_s(a), _svd_vh(a)


def svdvals(a: Any) -> Any:
    r"""Singular values, descending; $\bar A = U\,\mathrm{diag}(\bar s)\,V_h$."""
    _check_matrix(a, "svdvals")
    return _svd_s(a)


# ----- QR (reduced, m >= n) ------------------------------------------------------------------------------------------
def _qr_both(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _factor("qr", a, lambda x: np.linalg.qr(x, mode="reduced"))


def _qr_flops(out: Any, a: Any) -> int:
    m, n = np.shape(a)[-2:]
    return _batch(a) * 4 * m * n * n


def _qr_check(a: Any) -> None:
    m, n = np.shape(a)[-2:]
    if m < n:
        raise GradientError(f"qr: derivatives are implemented for m >= n only, got shape {np.shape(a)}")


def _right_solve_rt(x: Any, r: Any) -> Any:
    """$X R^{-\\top}$ for upper-triangular R: $(R^{-1}X^\\top)^\\top$."""
    return _mT(_solve_tri(r, _mT(x), lower=False))


def _qr_vjp(gq: Any, gr: Any, q: Any, r: Any) -> Any:
    r"""$\bar A = [Q N + \bar Q - QQ^\top\bar Q] R^{-\top}$, $N = \bar R R^\top + \mathrm{tril}(M - M^\top, -1)$,
    $M = Q^\top\bar Q - \bar R R^\top$ (from $dA = dQ\,R + Q\,dR$, $Q^\top dQ$ skew)."""
    qtg = matmul(_mT(q), gq) if gq is not None else 0.0
    grr = matmul(gr, _mT(r)) if gr is not None else 0.0
    m = qtg - grr
    nn = grr + _tril(m - _mT(m), -1) if gq is not None or gr is not None else 0.0
    inner = matmul(q, nn)
    if gq is not None:
        inner = inner + gq - matmul(q, qtg)
    return _right_solve_rt(inner, r)


def _qr_jvp_parts(t: Any, q: Any, r: Any) -> tuple[Any, Any]:
    r"""$C = Q^\top\dot A R^{-1}$, $\Omega = \mathrm{tril}(C,-1) - \mathrm{tril}(C,-1)^\top$;
    $\dot Q = Q\Omega + (I - QQ^\top)\dot A R^{-1}$, $\dot R = (C - \Omega) R$."""
    ar = _mT(_solve_tri(_mT(r), _mT(t), lower=True))             # \dot A R^{-1}
    c = matmul(_mT(q), ar)
    low = _tril(c, -1)
    omega = low - _mT(low)
    return omega, ar, c


def _qr_q_jvp(t: Any, ans: Any, a: Any) -> Any:
    q, r = ans, _qr_r(a)
    omega, ar, c = _qr_jvp_parts(t, q, r)
    return matmul(q, omega) + ar - matmul(q, c)


def _qr_r_jvp(t: Any, ans: Any, a: Any) -> Any:
    q, r = _qr_q(a), ans
    omega, _, c = _qr_jvp_parts(t, q, r)
    return matmul(c - omega, r)


def _qr_q_vjp(g: Any, ans: Any, a: Any) -> Any:
    _qr_check(a)
    return _qr_vjp(g, None, ans, _qr_r(a))


def _qr_r_vjp(g: Any, ans: Any, a: Any) -> Any:
    _qr_check(a)
    return _qr_vjp(None, g, _qr_q(a), ans)


def _qr_q_jvp_checked(t: Any, ans: Any, a: Any) -> Any:
    _qr_check(a)
    return _qr_q_jvp(t, ans, a)


def _qr_r_jvp_checked(t: Any, ans: Any, a: Any) -> Any:
    _qr_check(a)
    return _qr_r_jvp(t, ans, a)


_qr_q = Primitive("qr_q", lambda a: _qr_both(a)[0], _qr_flops, "Q of the reduced QR decomposition",
                  reads_output=True).defvjp(_qr_q_vjp).defjvp(_qr_q_jvp_checked)
_qr_r = Primitive("qr_r", lambda a: _qr_both(a)[1], _qr_flops, "R of the reduced QR decomposition",
                  reads_output=True).defvjp(_qr_r_vjp).defjvp(_qr_r_jvp_checked)


def qr(a: Any, mode: str = "reduced") -> tuple[Any, Any]:
    r"""``(Q, R)`` of the reduced QR decomposition $A = QR$ (``numpy.linalg.qr``); differentiable for $m \ge n$."""
    if mode != "reduced":
        raise ValueError(f"qr: only mode='reduced' is supported, got {mode!r}")
    _check_matrix(a, "qr")
    return _qr_q(a), _qr_r(a)


# ----- pseudo-inverse ----------------------------------------------------------------------------------------------
def _pinv_extra(g: Any, p: Any, a: Any) -> Any:
    r"""The two rank terms of the pinv VJP (Golub & Pereyra 1973, transposed):
    $(I - AA^+)\bar Y^\top A^+A^{+\top} + A^{+\top}A^+\bar Y^\top(I - A^+A)$."""
    pt = _mT(p)
    gt = _mT(g)
    # d(A^+) = -A^+ dA A^+ + A^+ A^{+T} dA^T (I - A A^+) + (I - A^+ A) dA^T A^{+T} A^+
    # <G, A^+ A^{+T} dA^T (I - AA^+)> = <(I - AA^+) G^T A^+ A^{+T}, dA>
    t2 = matmul(gt - matmul(matmul(a, p), gt), matmul(p, pt))
    # <G, (I - A^+A) dA^T A^{+T} A^+> = <A^{+T} A^+ G^T (I - A^+ A), dA>
    t3 = matmul(matmul(pt, p), gt - matmul(gt, matmul(p, a)))
    return t2 + t3


def _pinv_jvp(t: Any, ans: Any, a: Any) -> Any:
    r"""$\dot Y = -A^+\dot A A^+ + A^+A^{+\top}\dot A^\top(I - AA^+) + (I - A^+A)\dot A^\top A^{+\top}A^+$."""
    p = ans
    tt = _mT(t)
    out = -matmul(p, matmul(t, p))
    out = out + matmul(matmul(p, _mT(p)), tt - matmul(tt, matmul(a, p)))
    out = out + matmul(tt - matmul(matmul(p, a), tt), matmul(_mT(p), p))
    return out


_pinv = Primitive("pinv", lambda a: np.linalg.pinv(a), _svd_flops,
                  "Moore-Penrose pseudo-inverse", reads_output=True).defvjp(
    lambda g, ans, a: -matmul(matmul(_mT(ans), g), _mT(ans)) + _pinv_extra(g, ans, a)).defjvp(_pinv_jvp)


def pinv(a: Any) -> Any:
    r"""Moore-Penrose pseudo-inverse $A^+$ (``numpy.linalg.pinv``, default rcond). Derivative (Golub & Pereyra
    1973), valid where the rank is locally constant: $dA^+ = -A^+\,dA\,A^+ + A^+A^{+\top}dA^\top(I - AA^+)
    + (I - A^+A)\,dA^\top A^{+\top}A^+$."""
    _check_matrix(a, "pinv")
    return _pinv(a)


# ----- composites ------------------------------------------------------------------------------------------
def matrix_power(a: Any, n: int) -> Any:
    r"""$A^n$ by repeated squaring (a composite of matmul; $n < 0$ inverts first, $n = 0$ gives I)."""
    _check_square(a, "matrix_power")
    if not isinstance(n, (int, np.integer)):
        raise TypeError(f"matrix_power: the exponent must be an int, got {type(n).__name__}")
    if n == 0:
        eye = np.broadcast_to(_eye(_shape(a)[-1], a), _shape(a)).copy()
        return Tensor._wrap(eye) if isinstance(a, Tensor) else eye
    if n < 0:
        a, n = inv(a), -n
    result = None
    base = a
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


def _safe_sqrt(x: Any) -> Any:
    """sqrt with gradient 0 where x == 0 (PyTorch's subgradient of a norm at 0)."""
    positive = _data(x) > 0
    return where(positive, sqrt(where(positive, x, 1.0)), 0.0)


def _vector_norm(x: Any, ord: Any, axis: Any, keepdims: bool) -> Any:
    if ord is None or ord == 2:
        return _safe_sqrt(sum(x * x, axis=axis, keepdims=keepdims))
    if ord == 1:
        return sum(abs(x), axis=axis, keepdims=keepdims)
    if ord == np.inf:
        return max(abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return min(abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:
        out = np.sum(_data(x) != 0, axis=axis, keepdims=keepdims).astype(_data(x).dtype)
        return Tensor._wrap(out) if isinstance(x, Tensor) else out
    if isinstance(ord, str):
        raise ValueError(f"norm: ord={ord!r} is not a vector norm")
    p = float(ord)
    ax = abs(x)
    s = sum(power(ax, p), axis=axis, keepdims=keepdims)
    positive = _data(s) > 0
    return where(positive, power(where(positive, s, 1.0), 1.0 / p), 0.0)


def _matrix_norm(x: Any, ord: Any, axis: tuple[int, int], keepdims: bool) -> Any:
    nd = len(_shape(x))
    r, c = (axis[0] % nd, axis[1] % nd)
    if r == c:
        raise ShapeError(f"norm: the two axes of a matrix norm must differ, got {axis}")
    if ord is None or ord == "fro":
        out = _safe_sqrt(sum(x * x, axis=(r, c), keepdims=True))
    elif ord in (1, -1, np.inf, -np.inf):
        along, other = (r, c) if ord in (1, -1) else (c, r)
        sums = sum(abs(x), axis=along, keepdims=True)
        out = max(sums, axis=other, keepdims=True) if ord > 0 else min(sums, axis=other, keepdims=True)
    elif ord in (2, -2, "nuc"):
        moved = x
        if (r, c) != (nd - 2, nd - 1):
            moved = transpose(x, tuple([i for i in range(nd) if i not in (r, c)] + [r, c]))
        s = _svd_s(moved)
        v = sum(s, axis=-1) if ord == "nuc" else (max(s, axis=-1) if ord == 2 else min(s, axis=-1))
        if not keepdims:
            return v
        shape = list(_shape(x))
        shape[r] = shape[c] = 1
        return reshape(v, tuple(shape))
    else:
        raise ValueError(f"norm: invalid ord {ord!r} for a matrix norm (expected None, 'fro', 'nuc', 1, -1, 2, -2, "
                         f"inf or -inf)")
    if keepdims:
        return out
    return squeeze(out, axis=(r, c))


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    r"""Vector or matrix norm, as ``numpy.linalg.norm`` (a composite).

    Vector: $\|x\|_p = (\sum_i |x_i|^p)^{1/p}$, ord in None/2, 1, inf, -inf, 0 (a count, constant), other p.
    Matrix (a 2-D input with axis=None, or a pair of axes): 'fro'/None, 'nuc' (sum of singular values), 2/-2
    (largest/smallest singular value), 1/-1 (max/min column sum of |x|), inf/-inf (max/min row sum).
    At $x = 0$ the (sub)gradient is 0, as in PyTorch (the 2-norm's $x/\|x\|$ is 0/0 there)."""
    nd = len(_shape(x))
    if axis is None:
        if ord is not None and nd == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        if ord is not None and nd != 1:
            raise ShapeError(f"norm: ord={ord!r} with axis=None needs a 1-D or 2-D input, got shape {_shape(x)}")
        out = _vector_norm(x, ord if ord != "fro" else None, None, keepdims)
        return out
    if isinstance(axis, (tuple, list)) and len(axis) == 2:
        return _matrix_norm(x, ord, (int(axis[0]), int(axis[1])), keepdims)
    if isinstance(axis, (tuple, list)):
        if len(axis) != 1:
            raise ShapeError(f"norm: axis must be an int or a pair of ints, got {axis}")
        axis = int(axis[0])
    if not -nd <= axis < nd:
        raise ShapeError(f"norm: axis {axis} is out of range for shape {_shape(x)}")
    return _vector_norm(x, ord, axis, keepdims)


def primitives() -> dict[str, Primitive]:
    """Every primitive defined in this module (not those imported from ops), by attribute name."""
    imported = {id(p) for p in vars(_ops).values() if isinstance(p, Primitive)}
    return {k: p for k, p in globals().items() if isinstance(p, Primitive) and id(p) not in imported}


def primitives_without_jvp() -> list[str]:
    """Names of this module's primitives without a forward-mode rule (target: none)."""
    return sorted(name for name, p in primitives().items() if not p.has_jvp)
