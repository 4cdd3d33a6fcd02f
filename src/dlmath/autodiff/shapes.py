r"""Products and shape functions with NumPy's signatures, written as composites of the table's primitives.

Each function here is a composition of primitives of ``ops.py`` (einsum, getitem, reshape, transpose,
concatenate, where, broadcast_to, flip, pad, prod, cumsum), so it needs no derivative rule of its own:
reverse and forward mode, and every higher order, come from the primitives'. ``sort`` is a gather
through the sorting permutation, so its gradient scatters back through that permutation.
``argsort``, ``argmax`` and ``argmin`` are integer-valued (their derivative is zero almost
everywhere): they return plain integer arrays, as ``Tensor.argmax`` does.

On plain arrays a function returns plain arrays; with a Tensor among its operands, a Tensor.
"""

from __future__ import annotations

import builtins
import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ops
from .core import Tensor
from .core import unwrap as _data
from .errors import ShapeError


def _arr(x: Any) -> Any:
    """A Tensor as it is; anything else as a NumPy array (lists and numbers, as NumPy reads them)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (list, tuple)) and _holds_tensor(x):
        return array(x)
    return np.asarray(x)


def _holds_tensor(obj: Any) -> bool:
    if isinstance(obj, Tensor):
        return True
    if isinstance(obj, (list, tuple)):
        return builtins.any(_holds_tensor(o) for o in obj)
    return False


def _axis(axis: Any, ndim: int, op: str) -> int:
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ShapeError(f"{op}: axis {axis!r} is out of range for an array of {ndim} dimensions "
                         f"(expected an int in [{-ndim}, {ndim - 1}])")
    return int(axis) % ndim


def _need_ndim(x: Any, least: int, op: str, what: str = "a") -> None:
    if x.ndim < least:
        raise ShapeError(f"{op}: argument {what} has shape {x.shape}; expected at least {least} dimensions")


def _zero(x: Any) -> np.ndarray:
    """A 0-d zero of x's dtype (so that ``where(mask, x, zero)`` keeps x's dtype)."""
    return np.zeros((), dtype=_data(x).dtype)


# ----- construction ----------------------------------------------------------------------------------------------
def array(obj: Any, dtype: Any = None) -> Any:
    """``np.array`` that understands Tensors: nested lists mixing Tensors, arrays and Python numbers are
    stacked (differentiable in the Tensors); without a Tensor inside, a plain NumPy array."""
    if isinstance(obj, Tensor):
        out = ops.identity(obj) if obj.requires_grad or obj._tangent is not None else Tensor(np.array(obj.data))
        return out if dtype is None else ops.astype(out, dtype)
    if not _holds_tensor(obj):
        return np.array(obj, dtype=dtype)
    if isinstance(obj, (list, tuple)) and len(obj) == 0:
        return np.array(obj, dtype=dtype)
    out = ops.stack(list(obj))  # nested lists and Python numbers: see ops.stack
    return out if dtype is None else ops.astype(out, dtype)


# ----- products --------------------------------------------------------------------------------------------------
def _letters(n: int, skip: str = "") -> str:
    return "".join(c for c in string.ascii_letters if c not in skip)[:n]


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    r"""$\sum_{k} a_{\dots k}\,b_{k \dots}$ over the named axes (NumPy's ``tensordot``: ``axes`` an int N,
    the last N axes of a with the first N of b, or a pair of axis sequences)."""
    a, b = _arr(a), _arr(b)
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > a.ndim or n > b.ndim:
            raise ShapeError(f"tensordot: axes={n} but the operands have shapes {a.shape} and {b.shape}")
        ax_a, ax_b = list(range(a.ndim - n, a.ndim)), list(range(n))
    else:
        try:
            ax_a, ax_b = axes
        except (TypeError, ValueError):
            raise ShapeError(f"tensordot: axes must be an int or a pair of axis sequences, got {axes!r}") from None
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
        if len(ax_a) != len(ax_b):
            raise ShapeError(f"tensordot: axes {axes!r} name {len(ax_a)} axes of a but {len(ax_b)} of b")
        ax_a = [_axis(x, a.ndim, "tensordot") for x in ax_a]
        ax_b = [_axis(x, b.ndim, "tensordot") for x in ax_b]
    for i, j in zip(ax_a, ax_b, strict=True):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"tensordot: axis {i} of a (shape {a.shape}) and axis {j} of b (shape {b.shape}) "
                             f"differ in size")
    if a.ndim + b.ndim > 52:
        raise ShapeError("tensordot: too many dimensions")
    la = list(_letters(a.ndim))
    lb = list(_letters(b.ndim, "".join(la)))
    for i, j in zip(ax_a, ax_b, strict=True):
        lb[j] = la[i]
    out = [c for i, c in enumerate(la) if i not in ax_a] + [c for j, c in enumerate(lb) if j not in ax_b]
    return ops.einsum("".join(la) + "," + "".join(lb) + "->" + "".join(out), a, b)


def dot(a: Any, b: Any) -> Any:
    r"""NumPy's ``dot``: the product for scalars, the matrix product for 1-D and 2-D operands,
    otherwise $\sum_k a_{\dots k}\, b_{\dots k m}$ (last axis of a with the second-to-last of b)."""
    a, b = _arr(a), _arr(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if b.ndim <= 2 and a.ndim <= 2:
        if a.shape[-1] != b.shape[0]:
            raise ShapeError(f"dot: shapes {a.shape} and {b.shape} are not aligned "
                             f"({a.shape[-1]} (dim {a.ndim - 1}) != {b.shape[0]} (dim 0))")
        return ops.matmul(a, b)
    return tensordot(a, b, ([a.ndim - 1], [builtins.max(b.ndim - 2, 0)]))


def vdot(a: Any, b: Any) -> Any:
    r"""$\sum_i a_i b_i$ over the flattened operands (real arrays: no conjugation is needed)."""
    a, b = ravel(a), ravel(b)
    if a.shape != b.shape:
        raise ShapeError(f"vdot: the operands have {a.shape[0]} and {b.shape[0]} elements; expected the same")
    return ops.matmul(a, b)


def inner(a: Any, b: Any) -> Any:
    r"""$\sum_k a_{\dots k}\,b_{\dots k}$ over the last axes (the product for scalars)."""
    a, b = _arr(a), _arr(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return tensordot(a, b, ([a.ndim - 1], [b.ndim - 1]))


def outer(a: Any, b: Any) -> Any:
    r"""$M_{ij} = a_i b_j$ of the flattened operands."""
    return ops.reshape(ravel(a), (-1, 1)) * ops.reshape(ravel(b), (1, -1))


def kron(a: Any, b: Any) -> Any:
    r"""Kronecker product: the blocks $a_{i\dots}\,b$ (NumPy's ``kron``, leading axes of 1 added to the
    operand with fewer dimensions)."""
    a, b = _arr(a), _arr(b)
    nd = builtins.max(a.ndim, b.ndim)
    sa, sb = (1,) * (nd - a.ndim) + a.shape, (1,) * (nd - b.ndim) + b.shape
    ra = ops.reshape(a, tuple(s for d in sa for s in (d, 1)))
    rb = ops.reshape(b, tuple(s for d in sb for s in (1, d)))
    return ops.reshape(ra * rb, tuple(x * y for x, y in zip(sa, sb, strict=True)))


# ----- diagonals and triangles -----------------------------------------------------------------------------------
def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    r"""The diagonal $a_{i,\,i+\text{offset}}$ of the (axis1, axis2) planes, as the last axis (NumPy's layout)."""
    a = _arr(a)
    _need_ndim(a, 2, "diagonal")
    ax1, ax2 = _axis(axis1, a.ndim, "diagonal"), _axis(axis2, a.ndim, "diagonal")
    if ax1 == ax2:
        raise ShapeError(f"diagonal: axis1 and axis2 are the same axis ({axis1}, {axis2})")
    rest = [i for i in range(a.ndim) if i not in (ax1, ax2)]
    moved = ops.transpose(a, (*rest, ax1, ax2))
    n, m = a.shape[ax1], a.shape[ax2]
    length = builtins.max(0, builtins.min(n + builtins.min(offset, 0), m - builtins.max(offset, 0)))
    rows = np.arange(length) + builtins.max(-offset, 0)
    cols = np.arange(length) + builtins.max(offset, 0)
    return ops.getitem(moved, (Ellipsis, rows, cols))


def trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    r"""$\sum_i a_{i,\,i+\text{offset}}$ (over the last axis of ``diagonal``)."""
    return ops.sum(diagonal(a, offset, axis1, axis2), axis=-1)


def diag(v: Any, k: int = 0) -> Any:
    """NumPy's ``diag``: a 1-D ``v`` gives the square matrix with ``v`` on diagonal ``k``; a 2-D ``v`` gives
    its diagonal ``k``."""
    v = _arr(v)
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ShapeError(f"diag: expected a 1-D or 2-D array, got shape {v.shape}")
    n = v.shape[0] + builtins.abs(k)
    padded = ops.pad(v, [(0, builtins.abs(k))])
    mask = np.eye(n, k=k, dtype=bool)
    column = ops.reshape(padded, (n, 1)) if k >= 0 else ops.reshape(padded, (1, n))
    return ops.where(mask, column, _zero(v))


def diagflat(v: Any, k: int = 0) -> Any:
    """The flattened input on diagonal ``k`` of a square matrix."""
    return diag(ravel(v), k)


def tril(m: Any, k: int = 0) -> Any:
    """Zero above diagonal ``k`` of the last two axes."""
    m = _arr(m)
    if m.ndim < 2:
        raise ShapeError(f"tril: argument m has shape {m.shape}; expected at least 2 dimensions")
    return ops.where(np.tri(*m.shape[-2:], k=k, dtype=bool), m, _zero(m))


def triu(m: Any, k: int = 0) -> Any:
    """Zero below diagonal ``k`` of the last two axes."""
    m = _arr(m)
    if m.ndim < 2:
        raise ShapeError(f"triu: argument m has shape {m.shape}; expected at least 2 dimensions")
    return ops.where(~np.tri(*m.shape[-2:], k=k - 1, dtype=bool), m, _zero(m))


# ----- cumulative, differences, sorting --------------------------------------------------------------------------
def cumsum(a: Any, axis: int | None = None) -> Any:
    r"""$y_i = \sum_{j \le i} x_j$ along ``axis`` (over the flattened input when it is None)."""
    a = _arr(a)
    if axis is not None:
        axis = _axis(axis, a.ndim, "cumsum")
    return ops.cumsum(a, axis=axis)


def cumprod(a: Any, axis: int | None = None) -> Any:
    r"""$y_i = \prod_{j \le i} x_j$ along ``axis`` (over the flattened input when it is None); exact
    gradients with zeros."""
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    return ops.cumprod(a, _axis(axis, a.ndim, "cumprod"))


def diff(a: Any, n: int = 1, axis: int = -1) -> Any:
    r"""The ``n``-th forward difference $x_{i+1} - x_i$ along ``axis``."""
    a = _arr(a)
    _need_ndim(a, 1, "diff")
    ax = _axis(axis, a.ndim, "diff")
    if n < 0:
        raise ShapeError(f"diff: order n={n} must be non-negative")
    lead = (slice(None),) * ax
    for _ in range(n):
        a = ops.getitem(a, (*lead, slice(1, None))) - ops.getitem(a, (*lead, slice(None, -1)))
    return a


def argsort(a: Any, axis: int | None = -1, kind: str | None = None) -> np.ndarray:
    """The indices that sort ``a`` along ``axis`` (an integer array; not differentiable)."""
    return np.argsort(np.asarray(_data(a)), axis=axis, kind=kind)


def argmax(a: Any, axis: int | None = None) -> Any:
    """Index of the largest element (an integer array; not differentiable)."""
    return np.argmax(np.asarray(_data(a)), axis=axis)


def argmin(a: Any, axis: int | None = None) -> Any:
    """Index of the smallest element (an integer array; not differentiable)."""
    return np.argmin(np.asarray(_data(a)), axis=axis)


def _take_along(a: Any, idx: np.ndarray, ax: int) -> Any:
    grids = np.ogrid[tuple(slice(s) for s in idx.shape)]
    index = tuple(idx if i == ax else grids[i] for i in range(idx.ndim))
    return ops.getitem(a, index)


def take_along_axis(a: Any, indices: Any, axis: int | None) -> Any:
    """``a`` gathered at integer ``indices`` along ``axis`` (NumPy's ``take_along_axis``; differentiable in a)."""
    a = _arr(a)
    idx = np.asarray(_data(indices))
    if axis is None:
        a, axis = ravel(a), 0
    if idx.ndim != a.ndim:
        raise ShapeError(f"take_along_axis: indices have {idx.ndim} dimensions, a has {a.ndim}")
    return _take_along(a, idx, _axis(axis, a.ndim, "take_along_axis"))


def sort(a: Any, axis: int | None = -1, kind: str | None = None) -> Any:
    r"""Sorted copy along ``axis``: a gather through the sorting permutation $\pi$, $y_i = x_{\pi(i)}$,
    so the gradient is scattered back, $\bar x_{\pi(i)} = \bar y_i$ (ties keep NumPy's order)."""
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    if a.ndim == 0:
        raise ShapeError("sort: cannot sort a 0-d array along an axis (pass axis=None)")
    ax = _axis(axis, a.ndim, "sort")
    return _take_along(a, np.argsort(np.asarray(_data(a)), axis=ax, kind=kind), ax)


# ----- repetition and rearrangement ------------------------------------------------------------------------------
def repeat(a: Any, repeats: Any, axis: int | None = None) -> Any:
    """Repeat each element ``repeats`` times along ``axis`` (of the flattened input when None)."""
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    ax = _axis(axis, a.ndim, "repeat")
    try:
        idx = np.repeat(np.arange(a.shape[ax]), repeats)
    except ValueError as exc:
        raise ShapeError(f"repeat: repeats {repeats!r} do not fit axis {ax} of size {a.shape[ax]}: {exc}") from None
    return ops.getitem(a, (slice(None),) * ax + (idx,))


def tile(a: Any, reps: Any) -> Any:
    """``a`` repeated ``reps`` times along each axis (NumPy's ``tile``), by broadcasting."""
    a = _arr(a)
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    nd = builtins.max(a.ndim, len(reps))
    shape = (1,) * (nd - a.ndim) + a.shape
    reps = (1,) * (nd - len(reps)) + reps
    interleaved = ops.reshape(a, tuple(x for s in shape for x in (1, s)))
    big = ops.broadcast_to(interleaved, tuple(x for r, s in zip(reps, shape, strict=True) for x in (r, s)))
    return ops.reshape(big, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def moveaxis(a: Any, source: Any, destination: Any) -> Any:
    """Move axes to new positions; the others keep their order."""
    a = _arr(a)
    src = [source] if isinstance(source, (int, np.integer)) else list(source)
    dst = [destination] if isinstance(destination, (int, np.integer)) else list(destination)
    if len(src) != len(dst):
        raise ShapeError(f"moveaxis: source {source!r} and destination {destination!r} differ in length")
    src = [_axis(s, a.ndim, "moveaxis") for s in src]
    dst = [_axis(d, a.ndim, "moveaxis") for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ShapeError(f"moveaxis: repeated axis in source {source!r} or destination {destination!r}")
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return ops.transpose(a, tuple(order))


def ravel(a: Any) -> Any:
    """The flattened array (1-D)."""
    return ops.reshape(_arr(a), (-1,))


def _atleast(arys: tuple[Any, ...], fn: Any) -> Any:
    out = [fn(_arr(a)) for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_1d(*arys: Any) -> Any:
    """Inputs viewed with at least one dimension (0-d becomes shape (1,))."""
    return _atleast(arys, lambda a: ops.reshape(a, (1,)) if a.ndim == 0 else a)


def atleast_2d(*arys: Any) -> Any:
    """Inputs with at least two dimensions: (N,) becomes (1, N)."""
    return _atleast(arys, lambda a: ops.reshape(a, (1,) * (2 - a.ndim) + a.shape) if a.ndim < 2 else a)


def _to_3d(a: Any) -> Any:
    if a.ndim == 0:
        return ops.reshape(a, (1, 1, 1))
    if a.ndim == 1:
        return ops.reshape(a, (1, a.shape[0], 1))
    if a.ndim == 2:
        return ops.reshape(a, (*a.shape, 1))
    return a


def atleast_3d(*arys: Any) -> Any:
    """Inputs with at least three dimensions: (N,) becomes (1, N, 1), (M, N) becomes (M, N, 1)."""
    return _atleast(arys, _to_3d)


def _sequence(tup: Any, op: str) -> list[Any]:
    if isinstance(tup, (Tensor, np.ndarray)) or not isinstance(tup, Sequence) or len(tup) == 0:
        raise ShapeError(f"{op}: expected a non-empty sequence of arrays, got {type(tup).__name__}")
    return [_arr(t) for t in tup]


def vstack(tup: Sequence[Any]) -> Any:
    """Stack along the first axis (1-D inputs become rows)."""
    return ops.concatenate([atleast_2d(t) for t in _sequence(tup, "vstack")], axis=0)


def hstack(tup: Sequence[Any]) -> Any:
    """Stack along the second axis (along the first for 1-D inputs)."""
    items = [atleast_1d(t) for t in _sequence(tup, "hstack")]
    return ops.concatenate(items, axis=0 if items[0].ndim == 1 else 1)


def column_stack(tup: Sequence[Any]) -> Any:
    """1-D inputs as columns of a 2-D array; 2-D inputs side by side."""
    items = [ops.reshape(t, (-1, 1)) if t.ndim < 2 else t for t in _sequence(tup, "column_stack")]
    return ops.concatenate(items, axis=1)


def dstack(tup: Sequence[Any]) -> Any:
    """Stack along the third axis (inputs made at least 3-D first)."""
    return ops.concatenate([_to_3d(t) for t in _sequence(tup, "dstack")], axis=2)


def array_split(a: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    """``split`` that allows unequal parts: ``N`` sections of an axis of length ``l`` are ``l % N`` parts of
    ``l // N + 1`` and the rest of ``l // N``."""
    a = _arr(a)
    ax = _axis(axis, a.ndim, "array_split")
    n = a.shape[ax]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ShapeError(f"array_split: number of sections must be positive, got {sections}")
        each, extra = divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        bounds = np.cumsum([0, *sizes]).tolist()
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    lead = (slice(None),) * ax
    return [ops.getitem(a, (*lead, slice(lo, hi))) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def hsplit(a: Any, indices_or_sections: Any) -> list[Any]:
    """Split along the second axis (the first for 1-D input) into equal parts or at indices."""
    a = _arr(a)
    _need_ndim(a, 1, "hsplit")
    return ops.split(a, indices_or_sections, axis=1 if a.ndim > 1 else 0)


def vsplit(a: Any, indices_or_sections: Any) -> list[Any]:
    """Split along the first axis of an array of at least 2 dimensions."""
    a = _arr(a)
    _need_ndim(a, 2, "vsplit")
    return ops.split(a, indices_or_sections, axis=0)


def flipud(m: Any) -> Any:
    """Reverse the first axis."""
    m = _arr(m)
    _need_ndim(m, 1, "flipud", "m")
    return ops.flip(m, 0)


def fliplr(m: Any) -> Any:
    """Reverse the second axis."""
    m = _arr(m)
    _need_ndim(m, 2, "fliplr", "m")
    return ops.flip(m, 1)


def rot90(m: Any, k: int = 1, axes: tuple[int, int] = (0, 1)) -> Any:
    """Rotate by 90 degrees ``k`` times in the plane of ``axes`` (from the first axis towards the second)."""
    m = _arr(m)
    if len(axes) != 2:
        raise ShapeError(f"rot90: axes must name two axes, got {axes!r}")
    a0, a1 = _axis(axes[0], m.ndim, "rot90"), _axis(axes[1], m.ndim, "rot90")
    if a0 == a1:
        raise ShapeError(f"rot90: axes {axes!r} name the same axis twice")
    k %= 4
    if k == 0:
        return ops.getitem(m, (Ellipsis,)) if isinstance(m, Tensor) else m.copy()
    if k == 2:
        return ops.flip(ops.flip(m, a0), a1)
    perm = list(range(m.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return ops.transpose(ops.flip(m, a1), tuple(perm))
    return ops.flip(ops.transpose(m, tuple(perm)), a1)


__all__ = [
    "argmax", "argmin", "argsort", "array", "array_split", "atleast_1d", "atleast_2d", "atleast_3d",
    "column_stack", "cumprod", "cumsum", "diag", "diagflat", "diagonal", "diff", "dot", "dstack", "fliplr",
    "flipud", "hsplit", "hstack", "inner", "kron", "moveaxis", "outer", "ravel", "repeat", "rot90", "sort",
    "take_along_axis", "tensordot", "tile", "trace", "tril", "triu", "vdot", "vsplit", "vstack",
]
