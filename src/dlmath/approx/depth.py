r"""The power of depth: Telgarsky's sawtooth, Montúfar's folding maps, exact linear pieces, parity.

`count_linear_regions` is exact along a segment: it propagates the affine pieces of every
layer's pre-activations in the segment's parameter $s\in[0,1]$, splitting a piece where a unit's
pre-activation crosses zero (no sampling, so no piece is missed however thin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .networks import ApproximationError, ReLUNet, ShallowNet, as_relu_layers

__all__ = ["LinearPieces", "count_linear_regions", "folding_net", "linear_pieces", "parity_network",
           "parity_relu_network", "sawtooth", "tent_map_layers"]


def tent_map_layers() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    r"""Telgarsky's tent map $t(x) = 2\,\mathrm{relu}(x) - 4\,\mathrm{relu}(x - \tfrac12)$ as (hidden, output) layers.

    On [0, 1] it is $2x$ then $2 - 2x$ (Telgarsky 2016, *Benefits of depth in neural networks*, COLT).
    """
    return (np.array([[1.0], [1.0]]), np.array([0.0, -0.5])), (np.array([[2.0, -4.0]]), np.array([0.0]))


def sawtooth(k: int) -> ReLUNet:
    r"""$t^{\circ k}$, the tent map composed k times: k hidden layers of 2 ReLU units, $2^k$ linear pieces on [0, 1].

    Consecutive layers are fused (the output layer of one tent map times the input layer of the next),
    so the network has depth k and 2k hidden units (Telgarsky 2016).
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ApproximationError(f"sawtooth: k must be a positive integer, got {k!r}")
    (A1, b1), (A2, b2) = tent_map_layers()
    layers = [(A1, b1)]
    for _ in range(int(k) - 1):
        layers.append((A1 @ A2, A1 @ b2 + b1))  # relu(A1 (A2 h + b2) + b1)
    layers.append((A2, b2))
    return ReLUNet(layers)


def folding_net(width: int, depth: int) -> ReLUNet:
    r"""A 1-d ReLU net with `depth` hidden layers of `width` units and $\text{width}^{\text{depth}}$ pieces on [0, 1].

    Each layer computes the zigzag $g(x) = w\,\mathrm{relu}(x) + \sum_{j=1}^{w-1} 2w(-1)^j\,\mathrm{relu}(x - j/w)$,
    which maps each of $[j/w, (j+1)/w]$ onto [0, 1] (Montúfar, Pascanu, Cho & Bengio 2014, *On the number of
    linear regions of deep neural networks*, NeurIPS); composed `depth` times it has $w^L$ pieces.
    """
    if width < 1 or depth < 1:
        raise ApproximationError(f"folding_net: width and depth must be >= 1, got {width}, {depth}")
    w = int(width)
    A_in = np.ones((w, 1))
    b_in = -np.arange(w) / w
    c = np.array([w] + [2 * w * (-1) ** j for j in range(1, w)], dtype=np.float64)[None, :]
    layers = [(A_in, b_in)]
    for _ in range(depth - 1):
        layers.append((A_in @ c, b_in.copy()))
    layers.append((c, np.zeros(1)))
    return ReLUNet(layers)


@dataclass(frozen=True)
class LinearPieces:
    """The exact affine pieces of a ReLU network along a segment p + s (q - p), s in [0, 1].

    breakpoints: the s where the function's slope changes (interior, sorted); regions: number of
    intervals of constant activation pattern; pieces: number of maximal affine pieces of the output
    (adjacent regions with the same output slope merged).
    """

    breakpoints: np.ndarray
    region_bounds: np.ndarray
    regions: int
    pieces: int


def _segment(segment: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(segment, dtype=np.float64)
    if n == 1 and arr.shape == (2,):
        arr = arr[:, None]
    if arr.shape != (2, n):
        raise ApproximationError(f"count_linear_regions: segment must be two points of dimension {n} "
                                 f"(shape (2, {n})), got shape {arr.shape}")
    if np.allclose(arr[0], arr[1], rtol=0, atol=0):
        raise ApproximationError("count_linear_regions: the segment's two end points coincide")
    return arr[0], arr[1]


def linear_pieces(net: Any, segment: Any, rtol: float = 1e-9) -> LinearPieces:
    r"""Exact affine pieces of a ReLU network (ReLUNet, ReLU ShallowNet, nn.Sequential) along a segment.

    Layer by layer, on each current interval the layer's input is affine in s, $h(s) = \alpha s + \beta$;
    a unit's pre-activation $z(s) = (A\alpha) s + (A\beta + b)$ has at most one zero $s^* = -z_0/z_1$ inside
    the interval, where the interval is split. ``rtol``: slopes that agree to this relative tolerance
    count as equal when merging regions into pieces (rounding in a deep composition).
    """
    layers = as_relu_layers(net)
    p, q = _segment(segment, layers[0][0].shape[1])
    bounds = np.array([0.0, 1.0])
    alpha, beta = (q - p)[None, :], p[None, :]               # input on each interval: alpha s + beta
    for A, b in layers[:-1]:
        z1, z0 = alpha @ A.T, beta @ A.T + b                  # (P, m): pre-activation z1 s + z0
        with np.errstate(divide="ignore", invalid="ignore"):
            roots = -z0 / z1
        lo, hi = bounds[:-1, None], bounds[1:, None]
        inside = np.isfinite(roots) & (roots > lo) & (roots < hi)
        new = np.unique(np.concatenate([bounds, roots[inside]]))
        # drop splits closer than rounding can resolve (coincident zeros of several units)
        keep = np.concatenate([[True], np.diff(new) > 1e-13])
        new = new[keep]
        new[-1] = 1.0
        mid = 0.5 * (new[:-1] + new[1:])
        parent = np.clip(np.searchsorted(bounds, mid, side="right") - 1, 0, len(bounds) - 2)
        z1p, z0p = z1[parent], z0[parent]
        active = (z1p * mid[:, None] + z0p) > 0
        alpha, beta, bounds = z1p * active, z0p * active, new
    A, b = layers[-1]
    slope = alpha @ A.T                                         # (P, out)
    scale = max(float(np.max(np.abs(slope))), 1e-300)
    change = np.any(np.abs(np.diff(slope, axis=0)) > rtol * scale, axis=1)
    breakpoints = bounds[1:-1][change]
    return LinearPieces(breakpoints, bounds, int(len(bounds) - 1), int(change.sum() + 1))


def count_linear_regions(net: Any, segment: Any) -> int:
    """The exact number of affine pieces of a ReLU network's output along a segment (see `linear_pieces`)."""
    return linear_pieces(net, segment).pieces


def parity_network(d: int) -> ShallowNet:
    r"""Parity on $\{0,1\}^d$ with one hidden layer of d threshold units.

    $\mathrm{parity}(x) = \sum_{k=1}^{d} (-1)^{k+1}\,\mathbb 1[\sum_i x_i \ge k]$ (Minsky & Papert 1969;
    Siu, Roychowdhury & Kailath 1995): d units, not $2^d$.
    """
    k = np.arange(1, d + 1, dtype=np.float64)
    return ShallowNet(np.ones((d, d)), -k + 0.5, (-1.0) ** (k + 1), 0.0, activation="heaviside")


def parity_relu_network(d: int) -> ShallowNet:
    r"""Parity on $\{0,1\}^d$ with 2d ReLU units.

    $\mathbb 1[s\ge k] = \mathrm{relu}(s-k+1) - \mathrm{relu}(s-k)$ on integers s.
    """
    k = np.arange(1, d + 1, dtype=np.float64)
    sign = (-1.0) ** (k + 1)
    W = np.ones((2 * d, d))
    b = np.concatenate([-k + 1, -k])
    c = np.concatenate([sign, -sign])
    return ShallowNet(W, b, c, 0.0, activation="relu")
