r"""Folding an evaluation-mode batch norm into the layer before it (``torch.nn.utils.fusion``'s names).

In eval mode $\mathrm{BN}(Wx + b) = \gamma\,(Wx + b - \hat\mu)/\sqrt{\hat\sigma^2+\epsilon} + \beta$ is affine in x,
so one layer computes both: $W' = sW$, $b' = \beta + (b - \hat\mu)s$ with $s = \gamma/\sqrt{\hat\sigma^2+\epsilon}$
per output channel (Jacob et al. 2018, §3.2). The layer's bias $b$ must be kept: Linear and Conv default
to ``bias=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fuse_conv_bn_weights", "fuse_linear_bn_weights"]


def _arr(x: Any) -> np.ndarray | None:
    return None if x is None else np.asarray(getattr(x, "data", x))


def fuse_conv_bn_weights(conv_w: Any, conv_b: Any, bn_rm: Any, bn_rv: Any, bn_eps: float, bn_w: Any, bn_b: Any,
                         transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    r"""$(W', b')$ with $W' = sW$ scaled per output channel and $b' = \beta + (b-\hat\mu)s$,
    $s = \gamma/\sqrt{\hat\sigma^2+\epsilon}$ (``gamma``/``beta`` default to 1/0, ``conv_b`` to 0).

    The output channel is axis 0 of the weight (axis 1 when ``transpose``, as for ConvTranspose)."""
    w, rm, rv = _arr(conv_w), _arr(bn_rm), _arr(bn_rv)
    if w is None or rm is None or rv is None:
        raise ValueError("fuse_conv_bn_weights: the weight and the running statistics are required")
    c = w.shape[1 if transpose else 0]
    if rm.shape != (c,) or rv.shape != (c,):
        raise ValueError(f"fuse_conv_bn_weights: running statistics of shapes {rm.shape}, {rv.shape} do not fit "
                         f"a weight of shape {w.shape} ({c} output channels)")
    b = np.zeros(c, dtype=w.dtype) if conv_b is None else _arr(conv_b)
    gamma = np.ones(c, dtype=w.dtype) if bn_w is None else _arr(bn_w)
    beta = np.zeros(c, dtype=w.dtype) if bn_b is None else _arr(bn_b)
    s = gamma / np.sqrt(rv + bn_eps)
    shape = [1] * w.ndim
    shape[1 if transpose else 0] = c
    return w * s.reshape(shape), beta + (b - rm) * s


def fuse_linear_bn_weights(linear_w: Any, linear_b: Any, bn_rm: Any, bn_rv: Any, bn_eps: float, bn_w: Any,
                           bn_b: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""`fuse_conv_bn_weights` for a Linear layer (weight (out, in)): $W' = sW$, $b' = \beta + (b-\hat\mu)s$."""
    return fuse_conv_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)
