r"""Batch normalization and layer normalization (``torch.nn.functional.batch_norm`` / ``layer_norm``).

Batch normalization (Ioffe & Szegedy 2015), per channel $c$ over the batch and spatial axes
($m$ values each):

$$\mu = \tfrac1m\sum_i x_i,\quad \sigma^2 = \tfrac1m\sum_i (x_i-\mu)^2,\quad
\hat x_i = \frac{x_i-\mu}{\sqrt{\sigma^2+\epsilon}},\quad y_i = \gamma\hat x_i + \beta .$$

Training mode runs the fused primitive `batch_norm_train` whose backward is the closed form of
Ioffe & Szegedy (2015, Sec. 3), written by hand; `batch_norm_composed` is the same function
written with the engine's ops and differentiated automatically. The batchnorm chapter compares
the two with each other and with PyTorch. The running statistics are updated with the unbiased
variance $\tfrac{m}{m-1}\sigma^2$ (as PyTorch), while normalisation uses the biased $\sigma^2$.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import autodiff as ad
from ...autodiff import Primitive, ShapeError
from ._common import innermost as _data

__all__ = ["batch_norm", "batch_norm_composed", "batch_norm_train", "layer_norm"]


def _reduce_axes(ndim: int) -> tuple[int, ...]:
    """The axes batch norm averages over: every axis but the channel axis 1."""
    return (0, *range(2, ndim))


def _channel_shape(ndim: int, c: int) -> tuple[int, ...]:
    """(1, C, 1, ...): a per-channel vector broadcast against an (N, C, ...) input."""
    return (1, c) + (1,) * (ndim - 2)


def _normalized_stats(x: Any, eps: float) -> tuple[Any, Any, int]:
    r"""$(\hat x, 1/\sqrt{\sigma^2+\epsilon}, m)$ with the batch statistics, written with dm ops
    (so that the rules below, which call it, are differentiable again).

    A plain-array backward pass calls it from the x and the weight rules with the same x: the
    result is kept (per thread) for that second call, which saves three passes over the input.
    The forward clears it, so an input changed in place since cannot see stale statistics."""
    cache = getattr(_STATS, "last", None)
    if cache is not None and cache[0] is x and cache[1] == eps:
        _STATS.last = None  # used by both rules now
        return cache[2]
    axes = _reduce_axes(np.ndim(_data(x)))
    m = int(np.prod([np.shape(_data(x))[a] for a in axes]))
    xc = x - ad.mean(x, axis=axes, keepdims=True)
    inv_std = 1.0 / ad.sqrt(ad.mean(xc * xc, axis=axes, keepdims=True) + eps)
    out = (xc * inv_std, inv_std, m)
    # only plain arrays are cached: Tensors belong to one graph (create_graph, nested transforms)
    _STATS.last = (x, eps, out) if isinstance(x, np.ndarray) else None
    return out


_STATS = threading.local()


def _batch_norm_train_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    _STATS.last = None
    axes = _reduce_axes(x.ndim)
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, axis=axes, keepdims=True)
    shape = _channel_shape(x.ndim, x.shape[1])
    scale = weight.reshape(shape) / np.sqrt(var + eps)  # gamma / sigma folded into one multiply
    out = xc * scale
    out += bias.reshape(shape)
    return out


def _bn_vjp_x(g: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    r"""Ioffe & Szegedy (2015), with $\bar y = g$ and $\bar{\hat x} = \gamma g$:
    $\bar x = \frac{1}{m\sigma}\big(m\,\bar{\hat x} - \sum_i \bar{\hat x}_i
    - \hat x \sum_i \bar{\hat x}_i \hat x_i\big)$,
    $\sigma = \sqrt{\sigma_B^2+\epsilon}$."""
    xhat, inv_std, _ = _normalized_stats(x, eps)
    nd = np.ndim(_data(x))
    axes = _reduce_axes(nd)
    # gamma is constant per channel, so it factors out of both sums: with the means of g and g*xhat,
    # (1/(m sigma))(m gamma g - sum gamma g - xhat sum gamma g xhat) = gamma/sigma (g - mean g - xhat mean(g xhat))
    mean_g = ad.mean(g, axis=axes, keepdims=True)
    mean_gxhat = ad.mean(g * xhat, axis=axes, keepdims=True)
    scale = ad.reshape(weight, _channel_shape(nd, np.shape(_data(x))[1])) * inv_std
    return (g - mean_g - xhat * mean_gxhat) * scale


def _bn_vjp_weight(g: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    r"""$\bar\gamma = \sum_i g_i \hat x_i$."""
    xhat, _, _ = _normalized_stats(x, eps)
    return ad.sum(g * xhat, axis=_reduce_axes(np.ndim(_data(x))))


def _bn_vjp_bias(g: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    r"""$\bar\beta = \sum_i g_i$."""
    return ad.sum(g, axis=_reduce_axes(np.ndim(_data(x))))


def _bn_jvp_x(t: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    r"""Forward mode, derived by pushing a perturbation $\dot x$ through the forward pass:
    $\dot\mu = \overline{\dot x}$, $\dot{\sigma^2} = \tfrac2m\sum_i (x_i-\mu)\dot x_i$,
    $\dot{\hat x} = \dot x/\sigma - \dot\mu/\sigma - \hat x\,\dot{\sigma^2}/(2\sigma^2)$,
    $\dot y = \gamma\dot{\hat x}$."""
    nd = np.ndim(_data(x))
    axes = _reduce_axes(nd)
    xhat, inv_std, _ = _normalized_stats(x, eps)
    t_mean = ad.mean(t, axis=axes, keepdims=True)
    # d(sigma^2) / (2 sigma^2) = mean((x - mu) t) / sigma^2 = mean(xhat t) / sigma
    dvar_half = ad.mean(xhat * t, axis=axes, keepdims=True) * inv_std
    dxhat = (t - t_mean) * inv_std - xhat * dvar_half
    return dxhat * ad.reshape(weight, _channel_shape(nd, np.shape(_data(x))[1]))


def _bn_jvp_weight(t: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    nd = np.ndim(_data(x))
    xhat, _, _ = _normalized_stats(x, eps)
    return xhat * ad.reshape(t, _channel_shape(nd, np.shape(_data(x))[1]))


def _bn_jvp_bias(t: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    nd = np.ndim(_data(x))
    return ad.broadcast_to(ad.reshape(t, _channel_shape(nd, np.shape(_data(x))[1])), np.shape(_data(x)))


batch_norm_train = Primitive(
    "batch_norm_train", _batch_norm_train_forward,
    lambda out, x, *a, **k: 8 * int(np.size(x)),
    r"training-mode batch norm $\gamma (x-\mu_B)/\sqrt{\sigma_B^2+\epsilon} + \beta$ per channel (axis 1) "
    r"over the other axes (Ioffe & Szegedy 2015), with the hand-derived closed-form backward",
).defvjp(_bn_vjp_x, _bn_vjp_weight, _bn_vjp_bias).defjvp(_bn_jvp_x, _bn_jvp_weight, _bn_jvp_bias)


def _check_bn_args(name: str, input: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any,
                   training: bool) -> int:
    shape = np.shape(_data(input))
    if len(shape) < 2:
        raise ShapeError(f"{name}: expected an input of shape (N, C, ...) with at least 2 dimensions, got {shape}")
    c = shape[1]
    for arg, v in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                   ("bias", bias)):
        if v is not None and np.shape(_data(v)) != (c,):
            raise ShapeError(f"{name}: {arg} of shape {np.shape(_data(v))} does not fit input of shape {shape} "
                             f"(expected ({c},), one per channel)")
    if training and int(np.prod(shape)) // c <= 1:
        raise ValueError(f"{name}: expected more than 1 value per channel when training, got input of shape {shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{name}: running_mean and running_var are needed when training=False")
    return c


def _update_running(input: Any, running_mean: np.ndarray | None, running_var: np.ndarray | None,
                    momentum: float) -> None:
    r"""$r \leftarrow (1-\text{momentum})\,r + \text{momentum}\cdot s$, with $s$ the batch mean and the
    *unbiased* batch variance $\tfrac{m}{m-1}\sigma_B^2$ (PyTorch's convention), in place."""
    x = np.asarray(_data(input))
    axes = _reduce_axes(x.ndim)
    m = x.size // x.shape[1]
    if running_mean is not None:
        mean = x.mean(axis=axes)
        running_mean *= 1 - momentum
        running_mean += (momentum * mean).astype(running_mean.dtype, copy=False)
    if running_var is not None:
        var = x.var(axis=axes) * (m / (m - 1))
        running_var *= 1 - momentum
        running_var += (momentum * var).astype(running_var.dtype, copy=False)


def _eval_norm(input: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any, eps: float) -> Any:
    r"""$\gamma (x - \hat\mu)/\sqrt{\hat\sigma^2+\epsilon} + \beta$ with the running statistics (constants)."""
    nd = np.ndim(_data(input))
    shape = _channel_shape(nd, np.shape(_data(input))[1])
    rm, rv = np.asarray(_data(running_mean)), np.asarray(_data(running_var))
    scale = 1.0 / np.sqrt(rv + eps)
    y = (input - rm.reshape(shape)) * scale.reshape(shape).astype(rm.dtype, copy=False)
    if weight is not None:
        y = y * ad.reshape(weight, shape)
    if bias is not None:
        y = y + ad.reshape(bias, shape)
    return y


def batch_norm(input: Any, running_mean: np.ndarray | None, running_var: np.ndarray | None, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Any:
    r"""Batch normalization of an (N, C, ...) input per channel (Ioffe & Szegedy 2015).

    ``training=True``: batch statistics, through the fused primitive `batch_norm_train`; the running
    statistics, if given, are updated in place with ``momentum`` (unbiased variance).
    ``training=False``: the running statistics normalise.
    """
    c = _check_bn_args("batch_norm", input, running_mean, running_var, weight, bias, training)
    if not training:
        return _eval_norm(input, running_mean, running_var, weight, bias, eps)
    _update_running(input, running_mean, running_var, momentum)
    dt = np.asarray(_data(input)).dtype
    dt = dt if dt.kind == "f" else np.dtype(np.float64)
    w = np.ones(c, dtype=dt) if weight is None else weight
    b = np.zeros(c, dtype=dt) if bias is None else bias
    return batch_norm_train(input, w, b, eps=float(eps))


def batch_norm_composed(input: Any, running_mean: np.ndarray | None, running_var: np.ndarray | None,
                        weight: Any = None, bias: Any = None, training: bool = False, momentum: float = 0.1,
                        eps: float = 1e-5) -> Any:
    r"""`batch_norm` written with the engine's ops (mean, subtract, sqrt, divide) and differentiated by
    autodiff: the reference the hand-written backward of `batch_norm_train` is checked against."""
    _check_bn_args("batch_norm_composed", input, running_mean, running_var, weight, bias, training)
    if not training:
        return _eval_norm(input, running_mean, running_var, weight, bias, eps)
    _update_running(input, running_mean, running_var, momentum)
    nd = np.ndim(_data(input))
    axes = _reduce_axes(nd)
    mu = ad.mean(input, axis=axes, keepdims=True)
    var = ad.var(input, axis=axes, keepdims=True)
    y = (input - mu) / ad.sqrt(var + eps)
    shape = _channel_shape(nd, np.shape(_data(input))[1])
    if weight is not None:
        y = y * ad.reshape(weight, shape)
    if bias is not None:
        y = y + ad.reshape(bias, shape)
    return y


def layer_norm(input: Any, normalized_shape: int | Sequence[int], weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    r"""Layer normalization (Ba, Kiros & Hinton 2016) over the trailing ``normalized_shape`` axes:
    $y = \gamma\,(x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta$, biased variance.

    Composed from the engine's ops (mean, var, sqrt): reverse and forward mode and higher
    derivatives come from their rules, and no second hand-written backward needs checking; a
    fused rule would save about one pass over the input, which is not where transformer or MLP
    time goes in this library (the matrix products are).
    """
    ns = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    shape = np.shape(_data(input))
    k = len(ns)
    if k == 0 or len(shape) < k or tuple(shape[-k:]) != tuple(ns):
        raise ShapeError(f"layer_norm: normalized_shape {list(ns)} does not match the trailing dimensions of an "
                         f"input of shape {shape}")
    for arg, v in (("weight", weight), ("bias", bias)):
        if v is not None and np.shape(_data(v)) != tuple(ns):
            raise ShapeError(f"layer_norm: {arg} of shape {np.shape(_data(v))}, expected {tuple(ns)}")
    axes = tuple(range(len(shape) - k, len(shape)))
    mu = ad.mean(input, axis=axes, keepdims=True)
    xc = input - mu
    var = ad.mean(xc * xc, axis=axes, keepdims=True)
    y = xc / ad.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


