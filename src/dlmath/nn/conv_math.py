r"""The arithmetic of convolutional layers: output sizes, receptive fields, parameter counts,
the discrete form of the convolution integral, and convolution as a (doubly block) Toeplitz matrix.

Each formula lives here once; the convolution chapter checks them against PyTorch's layer
shapes, measured input-gradient supports, SciPy and closed forms. Conventions are PyTorch's:
weights ``(C_out, C_in / groups, k_h, k_w)``, inputs ``(C_in, H, W)``, deep-learning
"convolution" is cross-correlation, ``padding_mode`` is ``'zeros'`` or ``'circular'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autodiff import ShapeError
from .functional.conv import conv_output_size as _conv_output_size

__all__ = [
    "conv2d_parameter_count",
    "conv2d_toeplitz_matrix",
    "conv_output_size",
    "convolution_riemann_sum",
    "linear_parameter_count",
    "receptive_field",
    "toeplitz_conv2d",
]


def _pair(v: int | Sequence[int], name: str, where: str) -> tuple[int, int]:
    t = (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)  # type: ignore[arg-type]
    if len(t) != 2:
        raise ValueError(f"{where}: {name} must be an int or a pair, got {v!r}")
    return t  # type: ignore[return-value]


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    r"""$H_{out} = \left\lfloor \frac{H_{in} + 2p - d(k-1) - 1}{s} \right\rfloor + 1$, with its arguments checked.

    With dilation d = 1 this is the textbook $\lfloor (H_{in} + 2p - k)/s\rfloor + 1$
    (Dumoulin & Visin 2016, "A guide to convolution arithmetic", relationship 6). The formula
    itself is `dlmath.nn.functional.conv.conv_output_size` (the one the conv layers document);
    this adds the checks a user-facing calculator needs.
    """
    if kernel_size < 1 or stride < 1 or dilation < 1 or padding < 0:
        raise ValueError(f"conv_output_size: kernel_size={kernel_size}, stride={stride}, dilation={dilation} "
                         f"must be >= 1 and padding={padding} >= 0")
    if size + 2 * padding < dilation * (kernel_size - 1) + 1:
        raise ValueError(f"conv_output_size: input size {size} with padding {padding} is smaller than the "
                         f"dilated kernel {dilation * (kernel_size - 1) + 1}")
    return _conv_output_size(size, kernel_size, stride, padding, dilation)


def receptive_field(layers: Sequence[tuple[int, ...]]) -> int:
    r"""$r_L = 1 + \sum_{l=1}^{L} d_l(k_l - 1)\prod_{i<l} s_i$ for layers ``(k, s)`` or ``(k, s, d)``.

    Equivalently $r_l = r_{l-1} + (k_l-1)\prod_{i<l}s_i$, $r_0 = 1$ (Araujo, Norris & Sim 2019,
    "Computing receptive fields of convolutional neural networks", Distill, eq. 2).
    """
    r, jump = 1, 1
    for layer in layers:
        k, s = int(layer[0]), int(layer[1])
        d = int(layer[2]) if len(layer) > 2 else 1
        r += d * (k - 1) * jump
        jump *= s
    return r


def conv2d_parameter_count(in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                           bias: bool = True, groups: int = 1) -> int:
    r"""$k_h k_w \frac{C_{in}}{g} C_{out} + C_{out}[\text{bias}]$ (weights shared over positions)."""
    kh, kw = _pair(kernel_size, "kernel_size", "conv2d_parameter_count")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"conv2d_parameter_count: groups={groups} must divide in_channels={in_channels} "
                         f"and out_channels={out_channels}")
    return kh * kw * (in_channels // groups) * out_channels + (out_channels if bias else 0)


def linear_parameter_count(in_features: int, out_features: int, bias: bool = True) -> int:
    r"""$n_{in} n_{out} + n_{out}[\text{bias}]$: a dense map from $n_{in}$ to $n_{out}$ numbers.

    Between tensors of shapes $H\times W\times C_{in}$ and $H'\times W'\times C_{out}$ this is
    $(HWC_{in})(H'W'C_{out})$ weights.
    """
    return in_features * out_features + (out_features if bias else 0)


def convolution_riemann_sum(f: np.ndarray, g: np.ndarray, dx: float, f_start: float = 0.0,
                            g_start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    r"""$(f*g)(x_k) = \int f(t)g(x_k-t)\,dt \approx \Delta x\sum_j f(t_j)\,g(x_k - t_j)$ on a uniform grid.

    ``f`` sampled at ``f_start + j dx``, ``g`` at ``g_start + j dx``; returns the grid
    $x_k = $ ``f_start + g_start + k dx`` (k = 0 .. len(f)+len(g)-2) and the sums (the full
    discrete convolution times dx).
    """
    f, g = np.asarray(f, dtype=np.float64), np.asarray(g, dtype=np.float64)
    if f.ndim != 1 or g.ndim != 1:
        raise ShapeError(f"convolution_riemann_sum: f and g must be 1-D samples, got shapes {f.shape} and {g.shape}")
    values = dx * np.convolve(f, g)
    return f_start + g_start + dx * np.arange(values.size), values


def conv2d_toeplitz_matrix(weight: np.ndarray, input_size: tuple[int, int], stride: int | Sequence[int] = 1,
                           padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                           padding_mode: str = "zeros") -> np.ndarray:
    r"""The matrix A with $\mathrm{vec}(\mathrm{conv2d}(x, K)) = A\,\mathrm{vec}(x)$ (cross-correlation).

    $A_{(o,i,j),(c,\,is_h+md_h-p_h,\,js_w+nd_w-p_w)} = K_{o,c,m,n}$, rows ordered ``(C_out, H_out, W_out)``
    and columns ``(C_in, H, W)`` (C order, PyTorch's layout); indices outside the input are
    dropped ('zeros') or wrapped modulo H, W ('circular'). For one channel and stride 1 it is
    doubly block Toeplitz: block $(i, i')$ depends only on $i'-i$ and is itself a Toeplitz
    matrix built from kernel row $i'-i$ (Goodfellow, Bengio & Courville 2016, §9.1;
    Dumoulin & Visin 2016, §4).
    """
    w = np.asarray(weight, dtype=np.float64)
    where = "conv2d_toeplitz_matrix"
    if w.ndim != 4:
        raise ShapeError(f"{where}: weight must be (C_out, C_in, k_h, k_w), got shape {w.shape}")
    if padding_mode not in ("zeros", "circular"):
        raise ValueError(f"{where}: padding_mode must be 'zeros' or 'circular', not {padding_mode!r}")
    C_out, C_in, kh, kw = w.shape
    H, W = (int(a) for a in input_size)
    (sh, sw), (ph, pw), (dh, dw) = (_pair(v, n, where) for v, n in
                                    ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    Ho, Wo = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    o, i, j, c, m, n = np.ix_(*(np.arange(k) for k in (C_out, Ho, Wo, C_in, kh, kw)))
    ii, jj = i * sh + m * dh - ph, j * sw + n * dw - pw
    shape = (C_out, Ho, Wo, C_in, kh, kw)
    if padding_mode == "circular":
        ii, jj = ii % H, jj % W
        valid = np.ones(shape, dtype=bool)
    else:
        valid = np.broadcast_to((ii >= 0) & (ii < H) & (jj >= 0) & (jj < W), shape)
    rows = np.broadcast_to((o * Ho + i) * Wo + j, shape)[valid]
    cols = np.broadcast_to((c * H + ii) * W + jj, shape)[valid]
    vals = np.broadcast_to(w[:, None, None, :, :, :], shape)[valid]
    A = np.zeros((C_out * Ho * Wo, C_in * H * W))
    np.add.at(A, (rows, cols), vals)  # add: with circular padding two taps may wrap onto one pixel
    return A


def toeplitz_conv2d(x: Any, weight: np.ndarray, bias: np.ndarray | None = None, stride: int | Sequence[int] = 1,
                    padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                    padding_mode: str = "zeros") -> Any:
    r"""conv2d as one matrix product $y = A\,\mathrm{vec}(x) + b$: x (N, C_in, H, W) -> (N, C_out, H_out, W_out).

    Differentiable in x through ``dlmath.matmul`` (the weight enters as a constant matrix).
    A reference implementation for small inputs: A has $C_{out}H_{out}W_{out}\times C_{in}HW$ entries.
    """
    from .. import autodiff as ad

    shape = np.shape(getattr(x, "data", x))
    if len(shape) != 4 or shape[1] != np.shape(weight)[1]:
        raise ShapeError(f"toeplitz_conv2d: input of shape {shape} does not fit weight of shape "
                         f"{np.shape(weight)} (expected (N, {np.shape(weight)[1]}, H, W))")
    N, _, H, W = shape
    C_out, _, kh, kw = np.shape(weight)
    (sh, sw), (ph, pw), (dh, dw) = (_pair(v, n, "toeplitz_conv2d") for v, n in
                                    ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    Ho, Wo = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
    A = conv2d_toeplitz_matrix(weight, (H, W), stride, padding, dilation, padding_mode)
    y = ad.reshape(ad.matmul(ad.reshape(x, (N, -1)), A.T), (N, C_out, Ho, Wo))
    if bias is not None:
        y = y + np.asarray(bias).reshape(1, C_out, 1, 1)
    return y
