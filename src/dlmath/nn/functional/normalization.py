r"""Batch normalization and layer normalization (``torch.nn.functional.batch_norm`` / ``layer_norm``).

Batch normalization (Ioffe & Szegedy 2015), per channel $c$ over the batch and spatial axes
($m$ values each):

$$\mu = \tfrac1m\sum_i x_i,\quad \sigma^2 = \tfrac1m\sum_i (x_i-\mu)^2,\quad
\hat x_i = \frac{x_i-\mu}{\sqrt{\sigma^2+\epsilon}},\quad y_i = \gamma\hat x_i + \beta .$$

Training mode runs the fused primitive `batch_norm_train` whose backward is the closed form of
Ioffe & Szegedy (2015, Sec. 3), written by hand; `batch_norm_composed` is the same function
written with the engine's ops and differentiated automatically; the batchnorm chapter compares
the two with each other and with PyTorch. Layer norm (the primitive `layer_norm_affine`) is the
same normalisation over the trailing axes and shares its rules. The running statistics are updated with the unbiased
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

__all__ = ["batch_norm", "batch_norm_composed", "batch_norm_train", "layer_norm", "layer_norm_affine"]


def _reduce_axes(ndim: int) -> tuple[int, ...]:
    """The axes batch norm averages over: every axis but the channel axis 1."""
    return (0, *range(2, ndim))


def _channel_shape(ndim: int, c: int) -> tuple[int, ...]:
    """(1, C, 1, ...): a per-channel vector broadcast against an (N, C, ...) input."""
    return (1, c) + (1,) * (ndim - 2)


def _trailing_axes(ndim: int, n_axes: int) -> tuple[int, ...]:
    """The axes layer norm averages over: the last ``n_axes``."""
    return tuple(range(ndim - n_axes, ndim))


def _stats(x: Any, axes: tuple[int, ...], eps: float, token: Any = None) -> tuple[Any, Any]:
    r"""$(\hat x, 1/\sqrt{\sigma^2+\epsilon})$ with mean and biased variance over ``axes``, written with
    dm ops (so that the rules below, which call it, are differentiable again).

    A plain-array backward pass calls it from the x and the weight rules of one node, with the same
    x and the same output cotangent (``token``): the result is kept (per thread) for that second
    call, which saves three passes over the input. Both objects must match, and the forwards clear
    the cache, so an input changed in place since cannot see stale statistics."""
    cache = getattr(_STATS, "last", None)
    if token is not None and cache is not None and cache[0] is x and cache[1] is token and cache[2] == (axes, eps):
        _STATS.last = None  # used by both rules now
        return cache[3]
    xc = x - ad.mean(x, axis=axes, keepdims=True)
    inv_std = 1.0 / ad.sqrt(ad.mean(xc * xc, axis=axes, keepdims=True) + eps)
    out = (xc * inv_std, inv_std)
    # only plain arrays are cached: Tensors belong to one graph (create_graph, nested transforms)
    plain = token is not None and isinstance(x, np.ndarray) and isinstance(token, np.ndarray)
    _STATS.last = (x, token, (axes, eps), out) if plain else None
    return out


def _normalized_stats(x: Any, eps: float, token: Any = None) -> tuple[Any, Any, int]:
    """Batch norm's statistics: `_stats` over every axis but the channel axis, and the count m."""
    shape = np.shape(_data(x))
    axes = _reduce_axes(len(shape))
    xhat, inv_std = _stats(x, axes, eps, token)
    return xhat, inv_std, int(np.prod([shape[a] for a in axes]))


_STATS = threading.local()


def _normalize_forward(x: np.ndarray, axes: tuple[int, ...], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """NumPy forward: (x - mu, 1/sqrt(var + eps)) over ``axes``, for the fused primitives' forwards."""
    _STATS.last = None
    xc = x - x.mean(axis=axes, keepdims=True)
    var = np.mean(xc * xc, axis=axes, keepdims=True)
    return xc, 1.0 / np.sqrt(var + eps)


def _normalize_vjp(g_hat: Any, xhat: Any, scale: Any, axes: tuple[int, ...]) -> Any:
    r"""Cotangent of $x$ through $\hat x = (x-\mu)/\sigma$ over ``axes`` ($m$ values), given the
    cotangent $\bar{\hat x}$ of $\hat x$ (Ioffe & Szegedy 2015, Sec. 3):
    $\bar x = \frac{1}{m\sigma}\big(m\,\bar{\hat x} - \sum_i \bar{\hat x}_i
    - \hat x \sum_i \bar{\hat x}_i \hat x_i\big)$
    $= \frac1\sigma\big(\bar{\hat x} - \overline{\bar{\hat x}} - \hat x\,\overline{\bar{\hat x}\hat x}\big)$.
    ``scale`` is $1/\sigma$, times any factor constant over ``axes`` (batch norm's $\gamma$)."""
    mean_g = ad.mean(g_hat, axis=axes, keepdims=True)
    mean_gxhat = ad.mean(g_hat * xhat, axis=axes, keepdims=True)
    return (g_hat - mean_g - xhat * mean_gxhat) * scale


def _normalize_jvp(t: Any, xhat: Any, inv_std: Any, axes: tuple[int, ...]) -> Any:
    r"""Tangent of $\hat x = (x-\mu)/\sigma$ over ``axes``, derived by pushing a perturbation $\dot x$
    through the forward pass: $\dot\mu = \overline{\dot x}$,
    $\dot{\sigma^2} = \tfrac2m\sum_i (x_i-\mu)\dot x_i$,
    $\dot{\hat x} = (\dot x - \dot\mu)/\sigma - \hat x\,\dot{\sigma^2}/(2\sigma^2)$."""
    t_mean = ad.mean(t, axis=axes, keepdims=True)
    # d(sigma^2) / (2 sigma^2) = mean((x - mu) t) / sigma^2 = mean(xhat t) / sigma
    dvar_half = ad.mean(xhat * t, axis=axes, keepdims=True) * inv_std
    return (t - t_mean) * inv_std - xhat * dvar_half


# ----- batch norm: per channel (axis 1) over the other axes -------------------------------------------------
def _per_channel(v: Any, x: Any) -> Any:
    """A (C,) vector shaped (1, C, 1, ...) to broadcast against x."""
    return ad.reshape(v, _channel_shape(np.ndim(_data(x)), np.shape(_data(x))[1]))


def _channel_sums(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    r"""$\sum_i a_i$ (or $\sum_i a_i b_i$) per channel of (N, C, ...) arrays, in one read pass: einsum over
    the (N, C, L) view avoids both the temporary of ``a * b`` and NumPy's slow reduction over the
    non-adjacent axes (0, 2, 3) (about 3x faster than ``.sum(axis=(0, 2, 3))`` at (32, 16, 32, 32))."""
    a3 = a.reshape(a.shape[0], a.shape[1], -1)
    if b is None:
        return np.einsum("ncl->c", a3)
    return np.einsum("ncl,ncl->c", a3, b.reshape(a3.shape))


def _bn_plain_stats(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    r"""$(x-\mu,\ \mu,\ \sigma^2_B)$ per channel and the count $m$, for plain (N, C, ...) arrays: two read
    passes and one write (the centred copy); the variance is the mean square of the centred values
    (not $E[x^2]-\mu^2$, which cancels catastrophically)."""
    m = x.size // x.shape[1]
    shape = _channel_shape(x.ndim, x.shape[1])
    mean = _channel_sums(x) / m
    xc = x - mean.reshape(shape)
    var = _channel_sums(xc, xc) / m
    return xc, mean, var, m


def _batch_norm_train_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    _STATS.last = None
    x = np.ascontiguousarray(x)
    xc, mean, var, _ = _bn_plain_stats(x, eps)
    shape = _channel_shape(x.ndim, x.shape[1])
    inv_std = (1.0 / np.sqrt(var + eps)).astype(xc.dtype, copy=False)
    rt = np.result_type(xc, weight, bias)
    xc = xc if rt == xc.dtype else xc.astype(rt)  # promote as the out-of-place formula would
    xc *= (weight * inv_std).reshape(shape)  # gamma / sigma folded into one multiply, in place
    xc += bias.reshape(shape)
    _STATS.batch = (x, mean, var)  # for `_update_running`, called right after on the same array
    return xc


def _all_plain(*arrays: Any) -> bool:
    """True on a first-order backward of C-contiguous plain arrays (not Tensors of a nested graph): the
    rules then take the NumPy fast path below, which is not differentiable again."""
    return all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays)


def _bn_plain_xhat(x: np.ndarray, eps: float, token: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""$(\hat x, 1/\sqrt{\sigma^2+\epsilon})$ (the latter per channel, shape (C,)) for plain arrays, kept
    (per thread, like `_stats`) between the x and the weight rules of one node, keyed by x and the
    cotangent ``token``; the forwards clear it."""
    cache = getattr(_STATS, "last", None)
    if cache is not None and cache[0] is x and cache[1] is token and cache[2] == ("bn-plain", eps):
        _STATS.last = None
        return cache[3]
    xc, _, var, _ = _bn_plain_stats(x, eps)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(xc.dtype, copy=False)
    xc *= inv_std.reshape(_channel_shape(x.ndim, x.shape[1]))  # xhat, in place
    out = (xc, inv_std)
    _STATS.last = (x, token, ("bn-plain", eps), out)
    return out


def _bn_plain_vjp_x(g: np.ndarray, x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    r"""`_normalize_vjp` with $\bar{\hat x} = \gamma g$, for plain arrays: the same closed form
    $\bar x = \frac{\gamma}{\sigma}\big(g - \bar g - \hat x\,\overline{g\hat x}\big)$ (Ioffe & Szegedy 2015,
    Sec. 3) with the per-channel factors folded, so three elementwise passes and one temporary."""
    xhat, inv_std = _bn_plain_xhat(x, eps, token=g)
    m = x.size // x.shape[1]
    shape = _channel_shape(x.ndim, x.shape[1])
    scale = weight * inv_std
    mean_g = _channel_sums(g) / m
    mean_gxhat = _channel_sums(g, xhat) / m
    out = g * scale.reshape(shape)
    tmp = xhat * (scale * mean_gxhat).reshape(shape)
    out -= tmp
    out -= (scale * mean_g).reshape(shape)
    return out


def _bn_vjp_x(g: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    r"""$\bar x$ from $\bar{\hat x} = \gamma g$; $\gamma$ is constant per channel, so it moves into the scale."""
    if _all_plain(g, x, weight):
        return _bn_plain_vjp_x(g, x, weight, eps)
    xhat, inv_std, _ = _normalized_stats(x, eps, token=g)
    return _normalize_vjp(g, xhat, _per_channel(weight, x) * inv_std, _reduce_axes(np.ndim(_data(x))))


def _bn_vjp_weight(g: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    r"""$\bar\gamma = \sum_i g_i \hat x_i$."""
    if _all_plain(g, x, weight):
        xhat, _ = _bn_plain_xhat(x, eps, token=g)
        return _channel_sums(g, xhat)
    xhat, _, _ = _normalized_stats(x, eps, token=g)
    return ad.sum(g * xhat, axis=_reduce_axes(np.ndim(_data(x))))


def _bn_vjp_bias(g: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    r"""$\bar\beta = \sum_i g_i$."""
    if _all_plain(g, x, weight):
        return _channel_sums(g)
    return ad.sum(g, axis=_reduce_axes(np.ndim(_data(x))))


def _bn_jvp_x(t: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    r"""$\dot y = \gamma\,\dot{\hat x}$."""
    xhat, inv_std, _ = _normalized_stats(x, eps)
    return _normalize_jvp(t, xhat, inv_std, _reduce_axes(np.ndim(_data(x)))) * _per_channel(weight, x)


def _bn_jvp_weight(t: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    xhat, _, _ = _normalized_stats(x, eps)
    return xhat * _per_channel(t, x)


def _bn_jvp_bias(t: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    return ad.broadcast_to(_per_channel(t, x), np.shape(_data(x)))


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
    batch = getattr(_STATS, "batch", None)
    _STATS.batch = None
    # the statistics `batch_norm_train`'s forward just computed on this very array, else computed here
    mean, var = (batch[1], batch[2]) if batch is not None and batch[0] is x else (x.mean(axis=axes), x.var(axis=axes))
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += (momentum * mean).astype(running_mean.dtype, copy=False)
    if running_var is not None:
        var = var * (m / (m - 1))
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
    dt = np.asarray(_data(input)).dtype
    dt = dt if dt.kind == "f" else np.dtype(np.float64)
    w = np.ones(c, dtype=dt) if weight is None else weight
    b = np.zeros(c, dtype=dt) if bias is None else bias
    _STATS.batch = None  # only this call's forward may leave statistics for `_update_running`
    out = batch_norm_train(input, w, b, eps=float(eps))
    _update_running(input, running_mean, running_var, momentum)  # after: reuses the forward's statistics
    return out


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


# ----- layer norm: over the trailing n_axes axes, elementwise affine ---------------------------------------------
def _layer_norm_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, n_axes: int = 1,
                        eps: float = 1e-5) -> np.ndarray:
    xc, inv_std = _normalize_forward(x, _trailing_axes(x.ndim, n_axes), eps)
    out = xc * inv_std
    out *= weight
    out += bias
    return out


def _ln_vjp_x(g: Any, ans: Any, x: Any, weight: Any, bias: Any, n_axes: int = 1, eps: float = 1e-5) -> Any:
    r"""$\bar x$ from $\bar{\hat x} = \gamma \odot g$ ($\gamma$ varies along the normalised axes here)."""
    axes = _trailing_axes(np.ndim(_data(x)), n_axes)
    xhat, inv_std = _stats(x, axes, eps, token=g)
    return _normalize_vjp(g * weight, xhat, inv_std, axes)


def _ln_vjp_weight(g: Any, ans: Any, x: Any, weight: Any, bias: Any, n_axes: int = 1, eps: float = 1e-5) -> Any:
    r"""$\bar\gamma = \sum_{\text{leading axes}} g \odot \hat x$ (the sweep sums the broadcast axes)."""
    xhat, _ = _stats(x, _trailing_axes(np.ndim(_data(x)), n_axes), eps, token=g)
    return g * xhat


def _ln_jvp_x(t: Any, ans: Any, x: Any, weight: Any, bias: Any, n_axes: int = 1, eps: float = 1e-5) -> Any:
    axes = _trailing_axes(np.ndim(_data(x)), n_axes)
    xhat, inv_std = _stats(x, axes, eps)
    return _normalize_jvp(t, xhat, inv_std, axes) * weight


def _ln_jvp_weight(t: Any, ans: Any, x: Any, weight: Any, bias: Any, n_axes: int = 1, eps: float = 1e-5) -> Any:
    xhat, _ = _stats(x, _trailing_axes(np.ndim(_data(x)), n_axes), eps)
    return xhat * t


layer_norm_affine = Primitive(
    "layer_norm_affine", _layer_norm_forward,
    lambda out, x, *a, **k: 8 * int(np.size(x)),
    r"layer norm $\gamma \odot (x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta$ over the trailing ``n_axes`` axes "
    r"(Ba, Kiros & Hinton 2016), with the hand-derived backward of `_normalize_vjp`",
    reads_output=False,
).defvjp(_ln_vjp_x, _ln_vjp_weight, lambda g, ans, x, weight, bias, n_axes=1, eps=1e-5: g).defjvp(
    _ln_jvp_x, _ln_jvp_weight, lambda t, ans, x, weight, bias, n_axes=1, eps=1e-5: t)


def layer_norm(input: Any, normalized_shape: int | Sequence[int], weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    r"""Layer normalization (Ba, Kiros & Hinton 2016) over the trailing ``normalized_shape`` axes:
    $y = \gamma\,(x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta$, biased variance.

    Runs the fused primitive `layer_norm_affine`, whose rules share `_normalize_vjp` /
    `_normalize_jvp` with batch norm (the same normalisation, over other axes). Fused because the
    version composed from mean, var and sqrt took about 14x PyTorch's time for forward + backward
    of a (32, 128, 256) float32 input (about 20 passes over the input and its cotangent).
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
    dt = np.asarray(_data(input)).dtype
    dt = dt if dt.kind == "f" else np.dtype(np.float64)
    w = np.ones(ns, dtype=dt) if weight is None else weight
    b = np.zeros(ns, dtype=dt) if bias is None else bias
    return layer_norm_affine(input, w, b, n_axes=k, eps=float(eps))


