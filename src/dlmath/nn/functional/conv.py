r"""Convolution (``torch.nn.functional.conv1d``/``conv2d``/``pad``): three fused bilinear primitives.

Deep learning's "convolution" is cross-correlation (LeCun et al. 1998; Goodfellow et al. 2016, ch. 9):

$$ y_{n,o,h,w} = b_o + \sum_{c=0}^{C/G-1}\sum_{i,j} W_{o,c,i,j}\,
   x^{\mathrm{pad}}_{n,\,g(o) C/G + c,\; s_h h + d_h i,\; s_w w + d_w j} $$

with stride $s$, dilation $d$, groups $G$ ($g(o) = \lfloor o\,G/O \rfloor$) and output size
$H_{out} = \lfloor (H + p_0 + p_1 - d(k-1) - 1)/s \rfloor + 1$.

The map $(x, W) \mapsto y$ is bilinear. Its two partial adjoints are again bilinear maps, and the
three close under differentiation, so every derivative of any order is one of them:

- ``conv2d_valid(x, W)``: $y = x \star W$ (the forward);
- ``conv2d_input_grad(g, W)``: $\bar x = $ the adjoint in $x$ (a transposed convolution, col2im);
- ``conv2d_weight_grad(x, g)``: $\bar W = $ the adjoint in $W$ (a correlation of $x$ with $g$).

Layout (see docs/conv.md). The padded input is stored channels-last and flattened over
(batch, row, column) into a buffer of shape (rows, C). For stride 1, output pixel $(h, w)$
of image $n$ reads buffer rows $q + i d_h W_q + j d_w$ with $q = n H_p W_q + h W_q + w$:
each kernel offset is a *contiguous* (or, for stride $s_w$, evenly strided) slice of the
buffer, so the GEMM runs on a view and no im2col matrix is ever built. Grid positions that
fall in the padding or between images are computed and thrown away (a few percent for 3x3
on 32x32). With groups = 1 and unit column dilation the $k_w$ offsets of a kernel row are
adjacent in memory and fuse into one GEMM with inner dimension $k_w C$.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ... import autodiff as ad
from ...autodiff import DtypeError, Primitive, ShapeError

__all__ = ["conv1d", "conv2d", "conv_output_size", "pad"]

Pair = tuple[int, int]


class _Geometry(NamedTuple):
    """Everything the three conv kernels need to know about shapes (2-D; 1-D uses H = 1)."""

    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    groups: int
    stride: Pair
    pad: tuple[Pair, Pair]
    dilation: Pair
    hp: int        # padded height
    wq: int        # padded width rounded up to a multiple of the column stride (buffer row length)
    ho: int
    wo: int
    r: int         # output-grid row length: sh * wq / sw
    q_img: int     # output-grid positions per image: hp * wq / sw
    m: int         # output-grid positions in all: n * q_img
    rows: int      # buffer rows (with a zero tail so every view stays inside)
    fused: bool    # kw offsets of a kernel row fused into one GEMM


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int | Pair = 0, dilation: int = 1) -> int:
    r"""$\lfloor (n + p_0 + p_1 - d(k-1) - 1)/s \rfloor + 1$, the output length of a convolution or pooling
    window (``padding`` an int $p = p_0 = p_1$ or a pair $(p_0, p_1)$)."""
    p0, p1 = (padding, padding) if isinstance(padding, (int, np.integer)) else padding
    return (size + p0 + p1 - dilation * (kernel - 1) - 1) // stride + 1


def _geometry(x_shape: Sequence[int], w_shape: Sequence[int], stride: Pair, padding: tuple[Pair, Pair],
              dilation: Pair, groups: int) -> _Geometry:
    n, c, h, w = x_shape
    o, _, kh, kw = w_shape
    (sh, sw), (dh, dw) = stride, dilation
    hp, wp = h + padding[0][0] + padding[0][1], w + padding[1][0] + padding[1][1]
    ho, wo = conv_output_size(hp, kh, sh, 0, dh), conv_output_size(wp, kw, sw, 0, dw)
    wq = sw * -(-wp // sw)
    q_img = hp * wq // sw
    rows = n * hp * wq + (kh - 1) * dh * wq + (kw - 1) * dw + 1
    return _Geometry(n, c, h, w, o, kh, kw, groups, stride, padding, dilation, hp, wq, ho, wo,
                     sh * wq // sw, q_img, n * q_img, rows, groups == 1 and dw == 1)


_SCRATCH = threading.local()


def _scratch(key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A work array reused between calls (one per key, dtype and thread; it grows as needed).

    Why: a fresh multi-megabyte array comes from mmap and page-faults on first touch, every call;
    measured here that doubled the conv's time (docs/conv.md). Only intermediates live here: every
    array a primitive returns is a fresh copy."""
    store = getattr(_SCRATCH, "arrays", None)
    if store is None:
        store = _SCRATCH.arrays = {}
    dt = np.dtype(dtype)
    n = math.prod(shape)
    arr = store.get((key, dt))
    if arr is None or arr.size < n:
        arr = store[(key, dt)] = np.empty(n, dtype=dt)
    return arr[:n].reshape(shape)


def _to_buffer(x: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The zero-padded input, channels-last, flattened to (rows, C): one copy of x."""
    buf = _scratch("buf", (geo.rows, geo.c), x.dtype)
    (p0, _), (q0, _) = geo.pad
    img = buf[:geo.n * geo.hp * geo.wq].reshape(geo.n, geo.hp, geo.wq, geo.c)
    # zero only what the copy below leaves (the border, the row padding and the tail), not the whole buffer
    _zero_outside(img, (p0, p0 + geo.h), (q0, q0 + geo.w))
    buf[geo.n * geo.hp * geo.wq:] = 0
    img[:, p0:p0 + geo.h, q0:q0 + geo.w, :] = x.transpose(0, 2, 3, 1)
    return buf


def _zero_outside(img: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> None:
    """Zero an (N, H, W, C) array outside the window [rows) x [cols) of its axes 1 and 2."""
    img[:, :rows[0]] = 0
    img[:, rows[1]:] = 0
    img[:, rows[0]:rows[1], :cols[0]] = 0
    img[:, rows[0]:rows[1], cols[1]:] = 0


def _from_buffer(buf: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The inverse of `_to_buffer` on the unpadded region: (rows, C) -> (N, C, H, W)."""
    (p0, _), (q0, _) = geo.pad
    img = buf[:geo.n * geo.hp * geo.wq].reshape(geo.n, geo.hp, geo.wq, geo.c)
    # always a copy (ascontiguousarray would return the scratch buffer itself when the view happens to be contiguous)
    return np.array(img[:, p0:p0 + geo.h, q0:q0 + geo.w, :].transpose(0, 3, 1, 2), order="C")


def _blocks(geo: _Geometry) -> list[tuple[int, Any]]:
    """(buffer row offset, kernel index) of each GEMM: one per kernel row when fused, else one per offset."""
    dh, dw = geo.dilation
    if geo.fused:
        return [(i * dh * geo.wq, i) for i in range(geo.kh)]
    return [(i * dh * geo.wq + j * dw, (i, j)) for i in range(geo.kh) for j in range(geo.kw)]


def _source(x: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The buffer the GEMMs read. Fused: row p holds the kw adjacent pixels p..p+kw-1 (rows, kw*C), a
    kw-fold copy (a third of im2col's for 3x3) that makes every kernel row a BLAS-ready view; else (rows, C)."""
    buf = _to_buffer(x, geo)
    if not geo.fused:
        return buf
    it = buf.itemsize
    src = _scratch("src", (geo.rows - geo.kw + 1, geo.kw * geo.c), buf.dtype)
    np.copyto(src, as_strided(buf, shape=src.shape, strides=(geo.c * it, it), writeable=False))
    return src


def _window_view(src: np.ndarray, geo: _Geometry, offset: int, groups: int) -> np.ndarray:
    """(G, M, K) view of the source buffer: grid position q reads row sw*q + offset, the channels of group g.

    Rows are ``src.shape[1]`` apart (>= K), so BLAS takes the view as it is (no copy)."""
    it, row = src.itemsize, src.shape[1]
    k = row // groups
    start = src.reshape(-1)[offset * row:]
    return as_strided(start, shape=(groups, geo.m, k), strides=(k * it, geo.stride[1] * row * it, it),
                      writeable=False)


def _grid_view(acc: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The valid outputs inside the (G, M, Og) grid, as an (N, G, Og, Ho, Wo) view."""
    g, _, og = acc.shape
    it = acc.itemsize
    return as_strided(acc, shape=(geo.n, g, og, geo.ho, geo.wo),
                      strides=(geo.q_img * og * it, geo.m * og * it, it, geo.r * og * it, og * it))


def _weight_block(w: np.ndarray, geo: _Geometry, k: Any) -> np.ndarray:
    """The kernel slice matching a block, as a (G, K, Og) right-hand side."""
    if geo.fused:   # (O, C, kw) -> (1, kw*C, O): the order of a source row's entries
        return w[:, :, k, :].transpose(2, 1, 0).reshape(1, geo.kw * geo.c, geo.o)
    i, j = k
    g = geo.groups
    return w[:, :, i, j].reshape(g, geo.o // g, geo.c // g).transpose(0, 2, 1)


def _conv_forward(x: np.ndarray, w: np.ndarray, geo: _Geometry) -> np.ndarray:
    """y = x * W (cross-correlation), (N, C, H, W) -> (N, O, Ho, Wo): one GEMM per block on buffer views.

    The GEMMs are (M, K) x (K, Og) with the long axis M first: OpenBLAS runs this orientation about 1.7x
    faster than (Og, K) x (K, M) for these thin shapes (measured, docs/conv.md)."""
    src = _source(x, geo)
    g = 1 if geo.fused else geo.groups
    dt = np.result_type(x, w)
    acc = _scratch("acc", (g, geo.m, geo.o // g), dt)
    for b, (offset, k) in enumerate(_blocks(geo)):
        if b == 0:
            np.matmul(_window_view(src, geo, offset, g), _weight_block(w, geo, k), out=acc)
        else:
            part = np.matmul(_window_view(src, geo, offset, g), _weight_block(w, geo, k),
                             out=_scratch("part", acc.shape, dt))
            np.add(acc, part, out=acc)
    # a copy out of the scratch grid, always (see _from_buffer)
    return np.array(_grid_view(acc, geo), order="C").reshape(geo.n, geo.o, geo.ho, geo.wo)


def _grid_cotangent(gy: np.ndarray, geo: _Geometry, groups: int) -> np.ndarray:
    """The output cotangent placed on the (G, M, Og) grid, zero at thrown-away positions."""
    og = geo.o // groups
    acc = _scratch("grid", (groups, geo.m, og), gy.dtype)
    if groups == 1 and geo.stride == (1, 1):  # position (i, j) of image n is grid row (n * hp + i) * wq + j
        _zero_outside(acc.reshape(geo.n, geo.hp, geo.wq, og), (0, geo.ho), (0, geo.wo))
    else:
        acc.fill(0)
    _grid_view(acc, geo)[...] = gy.reshape(geo.n, groups, og, geo.ho, geo.wo)
    return acc


def _conv_input_grad(gy: np.ndarray, w: np.ndarray, geo: _Geometry) -> np.ndarray:
    r"""x-bar = adjoint of x -> x * W at gy.

    Stride 1 (the common case): the adjoint is itself a correlation, of gy padded by $d(k-1) - p$ with
    the kernel flipped in space and its in/out channels swapped, $\bar x = \mathrm{pad}(g) \star
    \mathrm{flip}(W)^\top$, so it runs on the forward's kernels (measured faster than the scatter).
    Otherwise col2im: a GEMM per block, scatter-added into the buffer over the kernel offsets."""
    (dh, dw), (sh, sw) = geo.dilation, geo.stride
    reach = (dh * (geo.kh - 1), dw * (geo.kw - 1))
    if (sh, sw) == (1, 1) and all(p <= r for r, pair in zip(reach, geo.pad, strict=True) for p in pair):
        gr = geo.groups
        w_t = w.reshape(gr, geo.o // gr, geo.c // gr, geo.kh, geo.kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
        w_t = w_t.reshape(geo.c, geo.o // gr, geo.kh, geo.kw)
        pads = tuple((r - p0, r - p1) for r, (p0, p1) in zip(reach, geo.pad, strict=True))
        return _conv_forward(gy, w_t, _geometry(gy.shape, w_t.shape, (1, 1), pads, geo.dilation, gr))
    return _conv_input_grad_scatter(gy, w, geo)


def _conv_input_grad_scatter(gy: np.ndarray, w: np.ndarray, geo: _Geometry) -> np.ndarray:
    """col2im: x-bar by one GEMM per block, scatter-added into the buffer over the kernel offsets."""
    g = 1 if geo.fused else geo.groups
    gg = _grid_cotangent(gy, geo, g)                                           # (G, M, Og)
    dt = np.result_type(gy, w)
    dbuf = _scratch("dbuf", (geo.rows, geo.c), dt)
    dbuf.fill(0)
    cg, it, sw = geo.c // g, dbuf.itemsize, geo.stride[1]
    flat = dbuf.reshape(-1)
    kb = geo.kw * geo.c if geo.fused else cg
    for offset, k in _blocks(geo):
        part = np.matmul(gg, _weight_block(w, geo, k).transpose(0, 2, 1),
                         out=_scratch("part", (g, geo.m, kb), dt))                # (G, M, K)
        # fused rows overlap between neighbouring grid positions: add one kernel column at a time
        cols = [(offset + j, part[:, :, j * geo.c:(j + 1) * geo.c]) for j in range(geo.kw)] if geo.fused \
            else [(offset, part)]
        for off, p in cols:
            target = as_strided(flat[off * geo.c:], shape=(g, geo.m, cg), strides=(cg * it, sw * geo.c * it, it))
            target += p
    return _from_buffer(dbuf, geo)


def _conv_weight_grad(x: np.ndarray, gy: np.ndarray, geo: _Geometry) -> np.ndarray:
    """W-bar = adjoint of W -> x * W at gy: one GEMM (view^T times grid cotangent) per block."""
    g = 1 if geo.fused else geo.groups
    gg = _grid_cotangent(gy, geo, g)                                           # (G, M, Og)
    src = _source(x, geo)
    dw = np.empty((geo.o, geo.c // geo.groups, geo.kh, geo.kw), dtype=np.result_type(x, gy))
    for offset, k in _blocks(geo):
        part = np.matmul(_window_view(src, geo, offset, g).transpose(0, 2, 1), gg)    # (G, K, Og)
        if geo.fused:
            dw[:, :, k, :] = part.reshape(geo.kw, geo.c, geo.o).transpose(2, 1, 0)
        else:
            i, j = k
            dw[:, :, i, j] = part.transpose(0, 2, 1).reshape(geo.o, geo.c // geo.groups)
    return dw


def _valid_flops(out: Any, x: Any, w: Any, **kw: Any) -> int:
    # 2 N Ho Wo O (C/G) kh kw: one multiply-add per kernel entry per output pixel (the same for all three maps)
    y = np.shape(out)
    return int(2 * y[0] * y[2] * y[3] * math.prod(np.shape(w)))


def _input_grad_flops(out: Any, gy: Any, w: Any, **kw: Any) -> int:
    y = np.shape(gy)
    return int(2 * y[0] * y[2] * y[3] * math.prod(np.shape(w)))


def _weight_grad_flops(out: Any, x: Any, gy: Any, **kw: Any) -> int:
    y = np.shape(gy)
    return int(2 * y[0] * y[2] * y[3] * math.prod(np.shape(out)))


def _geo_x(x_shape: Sequence[int], w_shape: Sequence[int], kw: dict[str, Any]) -> _Geometry:
    return _geometry(x_shape, w_shape, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])


def _fwd_valid(x: Any, w: Any, **kw: Any) -> np.ndarray:
    return _conv_forward(x, w, _geo_x(x.shape, w.shape, kw))


def _fwd_input_grad(gy: Any, w: Any, x_shape: tuple[int, ...] = (), **kw: Any) -> np.ndarray:
    return _conv_input_grad(gy, w, _geo_x(x_shape, w.shape, kw))


def _fwd_weight_grad(x: Any, gy: Any, w_shape: tuple[int, ...] = (), **kw: Any) -> np.ndarray:
    return _conv_weight_grad(x, gy, _geo_x(x.shape, w_shape, kw))


_DOC = "2-D cross-correlation (N, C, H, W) x (O, C/G, kh, kw) -> (N, O, Ho, Wo), zero padding fused"
conv2d_valid = Primitive("conv2d", _fwd_valid, _valid_flops, _DOC)
conv2d_input_grad = Primitive("conv2d_input_grad", _fwd_input_grad, _input_grad_flops,
                              "adjoint of conv2d in its input (transposed convolution, col2im)")
conv2d_weight_grad = Primitive("conv2d_weight_grad", _fwd_weight_grad, _weight_grad_flops,
                               "adjoint of conv2d in its weight (correlation of the input with the cotangent)")

# Reverse rules. <g, conv(x, W)> = <input_grad(g, W), x> = <weight_grad(x, g), W>: every adjoint below is
# one of these two identities read in another argument.
conv2d_valid.defvjp(
    lambda g, ans, x, w, **kw: conv2d_input_grad(g, w, x_shape=tuple(x.shape), **kw),
    lambda g, ans, x, w, **kw: conv2d_weight_grad(x, g, w_shape=tuple(w.shape), **kw))
conv2d_input_grad.defvjp(
    lambda c, ans, gy, w, x_shape=(), **kw: conv2d_valid(c, w, **kw),
    lambda c, ans, gy, w, x_shape=(), **kw: conv2d_weight_grad(c, gy, w_shape=tuple(w.shape), **kw))
conv2d_weight_grad.defvjp(
    lambda c, ans, x, gy, w_shape=(), **kw: conv2d_input_grad(gy, c, x_shape=tuple(x.shape), **kw),
    lambda c, ans, x, gy, w_shape=(), **kw: conv2d_valid(x, c, **kw))

# Forward rules: each map is bilinear, so its tangent is the map with one argument replaced by its tangent.
conv2d_valid.defjvp(
    lambda t, ans, x, w, **kw: conv2d_valid(t, w, **kw),
    lambda t, ans, x, w, **kw: conv2d_valid(x, t, **kw))
conv2d_input_grad.defjvp(
    lambda t, ans, gy, w, x_shape=(), **kw: conv2d_input_grad(t, w, x_shape=x_shape, **kw),
    lambda t, ans, gy, w, x_shape=(), **kw: conv2d_input_grad(gy, t, x_shape=x_shape, **kw))
conv2d_weight_grad.defjvp(
    lambda t, ans, x, gy, w_shape=(), **kw: conv2d_weight_grad(t, gy, w_shape=w_shape, **kw),
    lambda t, ans, x, gy, w_shape=(), **kw: conv2d_weight_grad(x, t, w_shape=w_shape, **kw))


# ----- argument handling ----------------------------------------------------------------------------------
def _shape(a: Any) -> tuple[int, ...]:
    return tuple(np.shape(getattr(a, "data", a)))


def _dtype(a: Any) -> np.dtype:
    return np.asarray(getattr(a, "data", a)).dtype


def _tuple(v: Any, n: int, fn: str, name: str, minimum: int) -> tuple[int, ...]:
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n or not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in vals):
        raise ValueError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    if any(e < minimum for e in vals):
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {v!r}")
    return tuple(int(e) for e in vals)


def _conv_nd(fn: str, nd: int, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
             groups: int) -> Any:
    xs, ws = _shape(x), _shape(weight)
    if len(xs) not in (nd + 1, nd + 2):
        raise ShapeError(f"{fn}: input must be {nd + 1}-D (unbatched C{', L' if nd == 1 else ', H, W'}) or "
                         f"{nd + 2}-D (batched N, C{', L' if nd == 1 else ', H, W'}), got shape {xs}")
    if len(ws) != nd + 2:
        raise ShapeError(f"{fn}: weight must be {nd + 2}-D (out_channels, in_channels/groups, *kernel), got {ws}")
    for name, a in (("input", x), ("weight", weight)):
        if _dtype(a).kind != "f":
            raise DtypeError(f"{fn}: {name} must be floating point, got dtype {_dtype(a)}")
    if _dtype(x) != _dtype(weight):
        raise DtypeError(f"{fn}: input ({_dtype(x)}) and weight ({_dtype(weight)}) must have the same dtype")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive integer, got {groups!r}")
    unbatched = len(xs) == nd + 1
    full = (1, *xs) if unbatched else xs
    c, o, cg = full[1], ws[0], ws[1]
    if c % groups or o % groups:
        raise ValueError(f"{fn}: in_channels ({c}) and out_channels ({o}) must both be divisible by groups ({groups})")
    if cg * groups != c:
        raise ShapeError(f"{fn}: weight of shape {ws} expects {cg * groups} input channels (in_channels/groups = "
                         f"{cg}, groups = {groups}), got input of shape {xs} with {c} channels")
    stride_t = _tuple(stride, nd, fn, "stride", 1)
    dil_t = _tuple(dilation, nd, fn, "dilation", 1)
    kernel, spatial = ws[2:], full[2:]
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0),) * nd
        elif padding == "same":
            if any(s != 1 for s in stride_t):
                raise ValueError(f"{fn}: padding='same' is not supported for strided convolutions (stride={stride})")
            # PyTorch's rule: total d(k-1), the extra element of an odd total on the right/bottom
            pads = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for d, k in zip(dil_t, kernel, strict=True))
        else:
            raise ValueError(f"{fn}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    else:
        pads = tuple((p, p) for p in _tuple(padding, nd, fn, "padding", 0))
    for s, k, d, (p0, p1) in zip(spatial, kernel, dil_t, pads, strict=True):
        if s + p0 + p1 < d * (k - 1) + 1:
            padded = tuple(s_ + a + b for s_, (a, b) in zip(spatial, pads, strict=True))
            raise ShapeError(f"{fn}: kernel of size {tuple(kernel)} (dilation {dil_t}, effective size "
                             f"{d * (k - 1) + 1}) is bigger than the padded input {padded} (input shape {xs})")
    if b_shape := (None if bias is None else _shape(bias)):
        if b_shape != (o,):
            raise ShapeError(f"{fn}: bias of shape {b_shape}, expected ({o},)")
    if nd == 1:   # a 1-D convolution is a 2-D one on images of height 1
        x = ad.reshape(x, (full[0], c, 1, full[2]))
        weight = ad.reshape(weight, (o, cg, 1, ws[2]))
        stride_t, dil_t, pads = (1, *stride_t), (1, *dil_t), ((0, 0), *pads)
    elif unbatched:
        x = ad.reshape(x, full)
    y = conv2d_valid(x, weight, stride=stride_t, padding=pads, dilation=dil_t, groups=int(groups))
    if bias is not None:
        y = y + ad.reshape(bias, (o, 1, 1))
    out_shape = _shape(y)
    if nd == 1:
        out_shape = (out_shape[0], o, out_shape[3])
        y = ad.reshape(y, out_shape)
    if unbatched:
        y = ad.reshape(y, out_shape[1:])
    return y


def conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1) -> Any:
    r"""2-D cross-correlation, as ``torch.nn.functional.conv2d``:
    $y_{n,o} = b_o + \sum_c W_{o,c} \star x_{n,c}$ over the channels of o's group.

    input (N, C, H, W) or (C, H, W); weight (O, C/groups, kh, kw); bias (O,); padding an int, a pair,
    'valid' or 'same' (stride 1; odd totals put the extra zero on the bottom/right, as PyTorch).
    Differentiable to any order in input and weight (reverse and forward mode)."""
    return _conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1) -> Any:
    r"""1-D cross-correlation, as ``torch.nn.functional.conv1d``:
    $y_{n,o,l} = b_o + \sum_{c,i} W_{o,c,i}\, x_{n,c,\,s l + d i}$ (the 2-D kernels on images of height 1).

    input (N, C, L) or (C, L); weight (O, C/groups, k); bias (O,)."""
    return _conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


# ----- padding --------------------------------------------------------------------------------------------
def pad(input: Any, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Any:
    r"""Pad the last ``len(pad)/2`` axes, as ``torch.nn.functional.pad``: ``pad = (left, right, top, bottom, ...)``
    starting from the last axis. Modes: 'constant' (``value``), 'circular' ($x_{i \bmod n}$, periodic),
    'reflect' (mirror without repeating the edge), 'replicate' (repeat the edge).

    Written with slicing, flip and concatenate, so it is differentiable to any order."""
    xs = _shape(input)
    pads = tuple(pad)
    if len(pads) % 2 or len(pads) // 2 > len(xs) or not all(isinstance(p, (int, np.integer)) for p in pads):
        raise ValueError(f"pad: pad must be an even-length tuple of ints with at most {2 * len(xs)} entries for "
                         f"an input of shape {xs}, got {pad!r}")
    pairs = [(int(pads[2 * k]), int(pads[2 * k + 1])) for k in range(len(pads) // 2)]   # last axis first
    if mode == "constant":
        if any(p < 0 for pr in pairs for p in pr):
            raise ValueError(f"pad: negative padding {pad!r} is not supported")
        width = [(0, 0)] * (len(xs) - len(pairs)) + pairs[::-1]
        return ad.pad(input, width, constant_values=value)
    if mode not in ("circular", "reflect", "replicate"):
        raise ValueError(f"pad: mode must be 'constant', 'circular', 'reflect' or 'replicate', got {mode!r}")
    if len(pairs) >= len(xs):
        raise ValueError(f"pad: mode '{mode}' pads at most the last {len(xs) - 1} axes of an input of shape {xs}")
    y = input
    for k, (lo, hi) in enumerate(pairs):
        axis = len(xs) - 1 - k
        n = xs[axis]
        if lo < 0 or hi < 0:
            raise ValueError(f"pad: negative padding {pad!r} is not supported in mode '{mode}'")
        limit = n if mode == "circular" else n - 1 if mode == "reflect" else math.inf
        if lo > limit or hi > limit:
            raise ValueError(f"pad: padding ({lo}, {hi}) of axis {axis} (size {n}) too large for mode '{mode}' "
                             f"(at most {limit})")
        y = _pad_axis(y, axis, lo, hi, mode)
    return y


def _slice(x: Any, axis: int, start: int, stop: int) -> Any:
    return ad.getitem(x, (slice(None),) * axis + (slice(start, stop),))


def _pad_axis(x: Any, axis: int, lo: int, hi: int, mode: str) -> Any:
    n = _shape(x)[axis]
    parts = []
    if mode == "circular":
        left, right = (_slice(x, axis, n - lo, n) if lo else None), (_slice(x, axis, 0, hi) if hi else None)
    elif mode == "reflect":
        left = ad.flip(_slice(x, axis, 1, lo + 1), axis) if lo else None
        right = ad.flip(_slice(x, axis, n - 1 - hi, n - 1), axis) if hi else None
    else:   # replicate
        def edge(i: int, k: int) -> Any:
            shape = list(_shape(x))
            shape[axis] = k
            return ad.broadcast_to(_slice(x, axis, i, i + 1), tuple(shape))
        left, right = (edge(0, lo) if lo else None), (edge(n - 1, hi) if hi else None)
    parts = [p for p in (left, x, right) if p is not None]
    return ad.concatenate(parts, axis=axis) if len(parts) > 1 else x
