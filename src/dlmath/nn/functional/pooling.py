r"""Pooling (``torch.nn.functional.max_pool1d/2d``, ``avg_pool1d/2d``, ``adaptive_avg_pool2d``).

Max pooling $y_{n,c,h,w} = \max_{i,j} x^{\mathrm{pad}}_{n,c,\,s h + d i,\, s w + d j}$ (padding with
$-\infty$) is a gather: the arg-max is found on the data (ties: the first maximum in the window's
row-major order, as PyTorch) and the values are taken with the primitive pair
``plane_gather``/``plane_scatter``, both linear, each the other's adjoint, so every derivative
order routes through the arg-max. Average pooling is a convolution with a kernel of ones divided
by the window's count (PyTorch's divisor rules), and adaptive average pooling is
$y = A_H\, x\, A_W^\top$ with averaging matrices of PyTorch's windows
$[\lfloor iH/h_{out} \rfloor, \lceil (i+1)H/h_{out} \rceil)$. Window sizes follow
$H_{out} = \lfloor (H + 2p - d(k-1) - 1)/s \rfloor + 1$ (ceil in ceil mode, where the last window
must start inside the input or the left padding).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ... import autodiff as ad
from ...autodiff import DtypeError, Primitive, ShapeError
from .conv import conv2d_valid, conv_output_size

__all__ = ["adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "max_pool1d", "max_pool2d", "pool_output_size"]


# ----- the gather pair ------------------------------------------------------------------------------------
def _plane_scatter_forward(g: np.ndarray, index: np.ndarray, size: int = 0) -> np.ndarray:
    b = index.shape[0]
    flat = (index + np.arange(b)[:, None] * size).ravel()
    out = np.bincount(flat, weights=np.asarray(g, dtype=np.float64).ravel(), minlength=b * size)
    return out.reshape(b, size).astype(g.dtype, copy=False)


plane_gather = Primitive("plane_gather", lambda x, index: np.take_along_axis(x, index, axis=1), None,
                         "y[b, q] = x[b, index[b, q]]: a gather along axis 1 of (B, P) planes", reads_inputs=False,
                         linear=(0,))
plane_scatter = Primitive("plane_scatter", _plane_scatter_forward, None,
                          "x[b, p] = sum of g[b, q] over index[b, q] = p: the adjoint of plane_gather",
                          reads_inputs=False, linear=(0,))
plane_gather.defvjp(lambda g, ans, x, index: plane_scatter(g, index, size=x.shape[1]))
plane_scatter.defvjp(lambda c, ans, g, index, size=0: plane_gather(c, index))


# ----- arguments ------------------------------------------------------------------------------------------
def _pair(v: Any, n: int, fn: str, name: str, minimum: int) -> tuple[int, ...]:
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n or not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in vals):
        raise ValueError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    if any(e < minimum for e in vals):
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {v!r}")
    return tuple(int(e) for e in vals)


def pool_output_size(size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    r"""PyTorch's pooling output length: $\lfloor (n + 2p - d(k-1) - 1)/s \rfloor + 1$ ($\lceil\cdot\rceil$ in
    ceil mode, minus one if the last window would start in the right padding)."""
    span = conv_output_size(size, kernel, 1, padding, dilation) - 1  # n + 2p - d(k-1) - 1: the formula is conv's
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _prepare(fn: str, nd: int, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
             ceil_mode: bool) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...],
                                       tuple[int, ...], tuple[int, ...]]:
    """Check the arguments; return (batched shape, kernel, stride, padding, dilation, output size) in 2-D."""
    xs = tuple(np.shape(getattr(x, "data", x)))
    dims = "C, L" if nd == 1 else "C, H, W"
    if len(xs) not in (nd + 1, nd + 2):
        raise ShapeError(f"{fn}: input must be {nd + 1}-D ({dims}) or {nd + 2}-D (N, {dims}), got shape {xs}")
    dt = np.asarray(getattr(x, "data", x)).dtype
    if dt.kind != "f":
        raise DtypeError(f"{fn}: input must be floating point, got dtype {dt}")
    k = _pair(kernel_size, nd, fn, "kernel_size", 1)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _pair(stride, nd, fn,
                                                                                              "stride", 1)
    p = _pair(padding, nd, fn, "padding", 0)
    d = _pair(dilation, nd, fn, "dilation", 1)
    for kk, pp in zip(k, p, strict=True):
        if pp > kk // 2:
            raise ValueError(f"{fn}: padding {padding!r} must be at most half the kernel size {kernel_size!r}")
    full = (1, *xs) if len(xs) == nd + 1 else xs
    if nd == 1:
        full, k, s, p, d = (full[0], full[1], 1, full[2]), (1, *k), (1, *s), (0, *p), (1, *d)
    out = tuple(pool_output_size(n, kk, ss, pp, dd, ceil_mode) for n, kk, ss, pp, dd in zip(full[2:], k, s, p, d,
                                                                                               strict=True))
    if any(o < 1 for o in out):
        raise ShapeError(f"{fn}: input of shape {xs} is too small for kernel {kernel_size!r} (dilation "
                         f"{dilation!r}, padding {padding!r}): the output would be empty")
    return full, k, s, p, d, out


def _finish(y: Any, xs: tuple[int, ...], nd: int) -> Any:
    """Back from the (N, C, Ho, Wo) working shape to the caller's layout."""
    shape = tuple(np.shape(getattr(y, "data", y)))
    if nd == 1:
        shape = (shape[0], shape[1], shape[3])
    if len(xs) == nd + 1:
        shape = shape[1:]
    return ad.reshape(y, shape)


# ----- max pooling ----------------------------------------------------------------------------------------
def _argmax_index(x: np.ndarray, k: tuple[int, ...], s: tuple[int, ...], p: tuple[int, ...], d: tuple[int, ...],
                  out: tuple[int, ...]) -> np.ndarray:
    """Flat index into each (H, W) plane of the window maximum (the first one on ties), shape (N, C, Ho, Wo)."""
    n, c, h, w = x.shape
    need = [(o - 1) * ss + dd * (kk - 1) + 1 for o, ss, dd, kk in zip(out, s, d, k, strict=True)]
    xp = np.full((n, c, max(need[0], h + p[0]), max(need[1], w + p[1])), -np.inf, dtype=x.dtype)
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    st = xp.strides
    win = as_strided(xp, shape=(n, c, out[0], out[1], k[0], k[1]),
                     strides=(st[0], st[1], s[0] * st[2], s[1] * st[3], d[0] * st[2], d[1] * st[3]), writeable=False)
    a = win.reshape(n, c, out[0], out[1], k[0] * k[1]).argmax(axis=-1)
    ih = np.arange(out[0])[:, None] * s[0] - p[0] + d[0] * (a // k[1])
    iw = np.arange(out[1])[None, :] * s[1] - p[1] + d[1] * (a % k[1])
    # a dilated window can lie wholly in the padding: its maximum is -inf (as PyTorch), marked by index -1
    inside = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < w)
    return np.where(inside, ih * w + iw, -1)


def max_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    r"""$y = \max$ over each (dilated) window, as ``torch.nn.functional.max_pool2d``; input (N, C, H, W) or (C, H, W).

    The gradient goes to the window's arg-max (the first maximum on ties, as PyTorch). With
    ``return_indices`` also returns the arg-max as flat indices into each input plane (int64)."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    r"""$y = \max$ over each window of the last axis, as ``torch.nn.functional.max_pool1d``;
    input (N, C, L) or (C, L)."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _max_pool(fn: str, nd: int, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool, return_indices: bool) -> Any:
    xs = tuple(np.shape(getattr(x, "data", x)))
    full, k, s, p, d, out = _prepare(fn, nd, x, kernel_size, stride, padding, dilation, ceil_mode)
    raw = np.asarray(getattr(x, "data", x)).reshape(full)
    index = _argmax_index(raw, k, s, p, d, out)
    n, c, h, w = full
    planes = ad.reshape(x, (n * c, h * w))
    empty = index < 0
    y = ad.reshape(plane_gather(planes, np.maximum(index, 0).reshape(n * c, out[0] * out[1])), (n, c, *out))
    if empty.any():
        y = ad.where(empty, np.array(-np.inf, dtype=raw.dtype), y)
    y = _finish(y, xs, nd)
    if not return_indices:
        return y
    idx_shape = tuple(np.shape(getattr(y, "data", y)))
    return y, index.reshape(idx_shape).astype(np.int64)


# ----- average pooling ------------------------------------------------------------------------------------
def _window_counts(size: int, kernel: int, stride: int, pad: int, out: int, include_pad: bool) -> np.ndarray:
    """PyTorch's divisor per output position along one axis: the window clipped to [-p, n + p), or to
    [0, n) without count_include_pad."""
    start = np.arange(out) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    if not include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return (end - start).astype(np.float64)


def avg_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Any:
    r"""$y = \frac{1}{|w|}\sum_{(i,j) \in w} x^{\mathrm{pad}}_{i,j}$ over each window, as
    ``torch.nn.functional.avg_pool2d`` (divisor: the window size, counting zero padding unless
    ``count_include_pad=False``, or ``divisor_override``); input (N, C, H, W) or (C, H, W)."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Any:
    r"""The mean over each window of the last axis, as ``torch.nn.functional.avg_pool1d``; input (N, C, L) or (C, L)."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def _avg_pool(fn: str, nd: int, x: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
              count_include_pad: bool, divisor_override: int | None) -> Any:
    xs = tuple(np.shape(getattr(x, "data", x)))
    full, k, s, p, _, out = _prepare(fn, nd, x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer)) or divisor_override < 1):
        raise ValueError(f"{fn}: divisor_override must be a positive integer, got {divisor_override!r}")
    n, c, h, w = full
    dt = np.asarray(getattr(x, "data", x)).dtype
    # the window sum is a convolution of each plane with a kernel of ones; the right/bottom padding makes
    # room for ceil mode's last window (zeros there are never counted by PyTorch's divisor)
    need = [(o - 1) * ss + kk for o, ss, kk in zip(out, s, k, strict=True)]
    pads = tuple((pp, max(nn - size - pp, pp)) for pp, nn, size in zip(p, need, (h, w), strict=True))
    planes = ad.reshape(x, (n * c, 1, h, w))
    ones = np.ones((1, 1, *k), dtype=dt)
    total = conv2d_valid(planes, ones, stride=s, padding=pads, dilation=(1, 1), groups=1)
    total = ad.getitem(total, (slice(None), 0, slice(0, out[0]), slice(0, out[1])))
    if divisor_override is not None:
        div = np.full(out, float(divisor_override))
    else:
        div = np.outer(*(_window_counts(size, kk, ss, pp, o, count_include_pad)
                         for size, kk, ss, pp, o in zip((h, w), k, s, p, out, strict=True)))
    y = total * (1.0 / div).astype(dt)
    return _finish(ad.reshape(y, (n, c, *out)), xs, nd)


def _adaptive_matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    r"""$A_{i,j} = 1/(e_i - s_i)$ for $s_i \le j < e_i$,
    $s_i = \lfloor i n/m \rfloor$, $e_i = \lceil (i+1) n/m \rceil$."""
    i = np.arange(out)
    start, end = (i * size) // out, -(-((i + 1) * size) // out)
    j = np.arange(size)
    inside = (j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Any:
    r"""$y = A_H\, x\, A_W^\top$: the mean over PyTorch's adaptive windows
    (``torch.nn.functional.adaptive_avg_pool2d``).

    ``output_size`` an int, a pair, or a pair with None (keep that size); input (N, C, H, W) or (C, H, W)."""
    xs = tuple(np.shape(getattr(input, "data", input)))
    if len(xs) not in (3, 4):
        raise ShapeError(f"adaptive_avg_pool2d: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape {xs}")
    dt = np.asarray(getattr(input, "data", input)).dtype
    if dt.kind != "f":
        raise DtypeError(f"adaptive_avg_pool2d: input must be floating point, got dtype {dt}")
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(sizes) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    oh, ow = (xs[-2] if sizes[0] is None else sizes[0]), (xs[-1] if sizes[1] is None else sizes[1])
    if not all(isinstance(v, (int, np.integer)) and v >= 1 for v in (oh, ow)):
        raise ValueError(f"adaptive_avg_pool2d: output_size must hold positive integers, got {output_size!r}")
    if xs[-2] == 0 or xs[-1] == 0:
        raise ShapeError(f"adaptive_avg_pool2d: input of shape {xs} has an empty spatial axis")
    a_h, a_w = _adaptive_matrix(xs[-2], int(oh), dt), _adaptive_matrix(xs[-1], int(ow), dt)
    return ad.matmul(ad.matmul(a_h, input), a_w.T)
