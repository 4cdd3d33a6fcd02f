r"""Losses with ``torch.nn.functional``'s names, arguments and reductions.

All work from logits through ``log_softmax`` / ``softplus``, so they are finite for logits of any
size (no $\log$ of a rounded-to-zero probability, no overflowing $e^x$).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ... import autodiff as ad
from ...autodiff import DtypeError, IndexOutOfRangeError, ShapeError
from ._common import innermost as _data

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "mse_loss", "nll_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss: Any, reduction: str) -> Any:
    if reduction == "mean":
        return ad.mean(loss)
    if reduction == "sum":
        return ad.sum(loss)
    return loss


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    r"""$\ell = (\hat y - y)^2$ elementwise, then the reduction (mean over every element by default)."""
    _check_reduction("mse_loss", reduction)
    si, st = np.shape(_data(input)), np.shape(_data(target))
    if si != st:
        try:
            np.broadcast_shapes(si, st)
        except ValueError:
            raise ShapeError(f"mse_loss: input of shape {si} and target of shape {st} do not broadcast") from None
        warnings.warn(f"mse_loss: target size {st} is different from the input size {si}; they are broadcast, "
                      "which is likely not what you want (as PyTorch warns)", UserWarning, stacklevel=2)
    diff = input - target
    return _reduce(diff * diff, reduction)


def _class_targets(name: str, logp_shape: tuple[int, ...], target: Any, ignore_index: int) -> tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """Integer class targets checked against the input: (targets with ignored entries set to 0, kept mask)."""
    t = np.asarray(_data(target))
    if t.dtype.kind not in "iu":
        raise DtypeError(f"{name}: expected integer class targets, got dtype {t.dtype}")
    expected = logp_shape[:1] + logp_shape[2:] if len(logp_shape) >= 2 else ()
    if t.shape != expected:
        raise ShapeError(f"{name}: target of shape {t.shape} does not fit input of shape {logp_shape} "
                         f"(expected {expected})")
    n_classes = logp_shape[1] if len(logp_shape) >= 2 else logp_shape[0]
    kept = t != ignore_index
    bad = kept & ((t < 0) | (t >= n_classes))
    if np.any(bad):
        raise IndexOutOfRangeError(f"{name}: target {int(t[bad].flat[0])} is out of bounds for {n_classes} classes")
    return np.where(kept, t, 0), kept


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> Any:
    r"""Negative log-likelihood of log-probabilities (N, C, ...) at integer targets (N, ...):
    $\ell_i = -w_{y_i}\,\log p_{i, y_i}$; ``mean`` divides by $\sum_i w_{y_i}$ over the kept targets
    (``ignore_index`` entries count neither way), as PyTorch."""
    _check_reduction("nll_loss", reduction)
    shape = np.shape(_data(input))
    if len(shape) == 0:
        raise ShapeError("nll_loss: expected an input of shape (C,), (N, C) or (N, C, d1, ...), got a scalar")
    unbatched = len(shape) == 1
    if unbatched:
        input, target = ad.reshape(input, (1, shape[0])), np.reshape(np.asarray(_data(target)), (1,))
        shape = (1, shape[0])
    safe, kept = _class_targets("nll_loss", shape, target, ignore_index)
    picked = ad.squeeze(ad.take_along_axis(input, np.expand_dims(safe, 1), axis=1), axis=1)
    if weight is not None:
        wv = np.asarray(_data(weight))
        if wv.shape != (shape[1],):
            raise ShapeError(f"nll_loss: weight of shape {wv.shape}, expected ({shape[1]},) (one per class)")
        w = ad.take(weight, safe) * kept.astype(wv.dtype)
    else:
        w = kept.astype(np.asarray(_data(input)).dtype)
    loss = -(picked * w)
    if reduction == "none":
        return ad.reshape(loss, ()) if unbatched else loss
    if reduction == "sum":
        return ad.sum(loss)
    return ad.sum(loss) / ad.sum(w)


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Any:
    r"""Softmax cross-entropy from logits (C,), (N, C) or (N, C, d1, ...).

    Integer targets: $\ell_i = -w_{y_i}\log\mathrm{softmax}(z_i)_{y_i}$ (``nll_loss`` of
    ``log_softmax``). With label smoothing $\varepsilon$ (Szegedy et al. 2016):
    $(1-\varepsilon)\,\ell_i + \tfrac{\varepsilon}{C}\sum_c -w_c \log p_{i,c}$, both parts reduced as
    PyTorch does (``mean`` divides by $\sum_i w_{y_i}$). Float targets of the input's shape are class
    probabilities: $\ell_i = -\sum_c w_c\, q_{i,c} \log p_{i,c}$, ``mean`` over the N (x d) positions.
    """
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    shape = np.shape(_data(input))
    if len(shape) == 0:
        raise ShapeError("cross_entropy: expected logits of shape (C,), (N, C) or (N, C, d1, ...), got a scalar")
    class_dim = 0 if len(shape) == 1 else 1
    n_classes = shape[class_dim]
    logp = ad.log_softmax(input, axis=class_dim)
    wshape = [1] * len(shape)
    wshape[class_dim] = n_classes
    if weight is not None and np.shape(_data(weight)) != (n_classes,):
        raise ShapeError(f"cross_entropy: weight of shape {np.shape(_data(weight))}, expected ({n_classes},)")
    t = np.asarray(_data(target))
    if t.dtype.kind == "f":  # class probabilities
        if t.shape != shape:
            raise ShapeError(f"cross_entropy: probability targets of shape {t.shape} must match the input's {shape}")
        q = target
        if label_smoothing > 0:
            q = q * (1 - label_smoothing) + label_smoothing / n_classes
        wl = logp if weight is None else logp * ad.reshape(weight, tuple(wshape))
        loss = -ad.sum(wl * q, axis=class_dim)
        if reduction == "mean":
            return ad.sum(loss) / (int(np.prod(shape)) // n_classes)
        return _reduce(loss, reduction)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    kept = t != ignore_index
    wl = logp if weight is None else logp * ad.reshape(weight, tuple(wshape))
    smooth = -ad.sum(wl, axis=class_dim) * kept.astype(np.asarray(_data(input)).dtype)
    if reduction == "mean":
        safe = np.where(kept, t, 0)
        denom = np.sum(np.asarray(_data(weight))[safe] * kept) if weight is not None else np.sum(kept)
        smooth = ad.sum(smooth) / float(denom)  # a Python float keeps float32 losses float32
    elif reduction == "sum":
        smooth = ad.sum(smooth)
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / n_classes)


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Any:
    r"""$\ell = -w\,[p\,y\log\sigma(x) + (1-y)\log(1-\sigma(x))]$ from logits x, computed as
    $p\,y\,\mathrm{softplus}(-x) + (1-y)\,\mathrm{softplus}(x)$ (since $-\log\sigma(x) = \mathrm{softplus}(-x)$
    and $-\log(1-\sigma(x)) = \mathrm{softplus}(x)$), finite for logits of any size and accurate to rounding
    in both tails: PyTorch's $(1-y)\,x + (1+(p-1)y)\,\mathrm{softplus}(-x)$ cancels when $y=0$, $x \ll 0$
    (a loss of $e^{x}$ computed as $x + (-x + e^{x})$). ``pos_weight`` p broadcasts over the last (class) axis."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    si, st = np.shape(_data(input)), np.shape(_data(target))
    if si != st:
        raise ShapeError(f"binary_cross_entropy_with_logits: target of shape {st} must match the input's {si}")
    positive = target * ad.softplus(-input)
    if pos_weight is not None:
        positive = pos_weight * positive
    loss = positive + (1 - target) * ad.softplus(input)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)
