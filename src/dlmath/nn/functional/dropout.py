r"""Inverted dropout (Srivastava et al. 2014), ``torch.nn.functional.dropout``'s names.

Training: $y = x \odot m / (1-p)$ with $m_i \sim \mathrm{Bernoulli}(1-p)$ independent, so
$\mathbb E[y] = x$; evaluation: $y = x$. ``dropout1d`` / ``dropout2d`` drop whole channels
(one Bernoulli per (sample, channel); Tompson et al. 2015). Randomness comes from
``generator`` or from `dlmath.nn.init.default_generator` (reseeded by ``dlmath.nn.manual_seed``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...autodiff import ShapeError
from ..init import default_generator
from ._common import innermost as _data

__all__ = ["dropout", "dropout1d", "dropout2d"]


def _check_p(name: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p <= 1:
        raise ValueError(f"{name}: dropout probability has to be between 0 and 1, but got {p!r}")
    return float(p)


def _dropout_mask(shape: tuple[int, ...], p: float, dtype: np.dtype, generator: np.random.Generator | None) -> Any:
    r"""$m/(1-p)$ with $m_i \sim \mathrm{Bernoulli}(1-p)$; all zeros when $p = 1$ (as PyTorch)."""
    gen = default_generator() if generator is None else generator
    if p == 1.0:
        return np.zeros(shape, dtype=dtype)
    keep = gen.random(shape) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def _float_dtype(input: Any) -> np.dtype:
    dt = np.asarray(_data(input)).dtype
    return dt if dt.kind == "f" else np.dtype(np.float64)


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False,
            generator: np.random.Generator | None = None) -> Any:
    r"""Inverted dropout: each element zeroed with probability ``p``, the rest scaled by $1/(1-p)$."""
    p = _check_p("dropout", p)
    if not training or p == 0.0:
        return input
    shape = np.shape(_data(input))
    return input * _dropout_mask(shape, p, _float_dtype(input), generator)


def _channel_dropout(name: str, input: Any, p: float, training: bool, batched_ndim: int,
                     generator: np.random.Generator | None) -> Any:
    p = _check_p(name, p)
    shape = np.shape(_data(input))
    if len(shape) not in (batched_ndim - 1, batched_ndim):
        raise ShapeError(f"{name}: expected an input with {batched_ndim - 1} (unbatched) or {batched_ndim} "
                         f"(batched) dimensions, got shape {shape}")
    if not training or p == 0.0:
        return input
    lead = 2 if len(shape) == batched_ndim else 1  # (N, C) or (C,) get one draw each
    mask_shape = shape[:lead] + (1,) * (len(shape) - lead)
    return input * _dropout_mask(mask_shape, p, _float_dtype(input), generator)


def dropout1d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator: np.random.Generator | None = None) -> Any:
    """Channel-wise dropout of (N, C, L) or (C, L) inputs: whole channels zeroed with probability ``p``."""
    return _channel_dropout("dropout1d", input, p, training, 3, generator)


def dropout2d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator: np.random.Generator | None = None) -> Any:
    """Channel-wise dropout of (N, C, H, W) or (C, H, W) inputs: whole feature maps zeroed with probability ``p``."""
    return _channel_dropout("dropout2d", input, p, training, 4, generator)
