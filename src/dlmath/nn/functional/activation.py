r"""Activation functions with ``torch.nn.functional``'s names and arguments.

Each is the engine's primitive or a composite of them (``relu``, ``tanh``, ``sigmoid``, ``softmax``,
``log_softmax`` are primitives of ``dlmath.autodiff.ops``; ``gelu`` is the engine's composite), so
reverse and forward mode and higher derivatives come from the engine's rules.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ... import autodiff as ad
from ...autodiff import ShapeError
from ._common import innermost as _data

__all__ = ["flatten", "gelu", "leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]


def relu(input: Any, inplace: bool = False) -> Any:
    r"""$\max(x, 0)$ (gradient 0 at 0, as PyTorch). ``inplace`` is accepted and ignored: the result is new."""
    return ad.relu(input)


def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Any:
    r"""$x$ for $x > 0$, $a x$ otherwise (Maas et al. 2013); the derivative at 0 is $a$, as PyTorch."""
    x = input
    return ad.where(np.asarray(_data(x)) > 0, x, x * negative_slope)


def tanh(input: Any) -> Any:
    r"""$\tanh x$."""
    return ad.tanh(input)


def sigmoid(input: Any) -> Any:
    r"""$\sigma(x) = 1/(1+e^{-x})$, without overflow."""
    return ad.sigmoid(input)


def gelu(input: Any, approximate: str = "none") -> Any:
    r"""$x\,\Phi(x)$ (Hendrycks & Gimpel 2016); ``approximate='tanh'`` gives PyTorch's tanh form."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return ad.gelu(input, approximate=approximate)


def _softmax_dim(name: str, input: Any, dim: int | None) -> int:
    ndim = np.ndim(_data(input))
    if dim is None:  # PyTorch's legacy implicit choice, with its warning
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                      "as an argument.", UserWarning, stacklevel=3)
        return 0 if ndim in (0, 1, 3) else 1
    if not isinstance(dim, (int, np.integer)) or not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ShapeError(f"{name}: dim {dim!r} is out of range for an input with {ndim} dimensions")
    return int(dim)


def softmax(input: Any, dim: int | None = None, dtype: Any = None) -> Any:
    r"""$\mathrm{softmax}(x)_i = e^{x_i}/\sum_j e^{x_j}$ along ``dim``, stable for large logits."""
    axis = _softmax_dim("softmax", input, dim)
    x = input if dtype is None else ad.astype(input, dtype)
    return ad.softmax(x, axis=axis)


def log_softmax(input: Any, dim: int | None = None, dtype: Any = None) -> Any:
    r"""$x_i - \log\sum_j e^{x_j}$ along ``dim``, stable for large logits."""
    axis = _softmax_dim("log_softmax", input, dim)
    x = input if dtype is None else ad.astype(input, dtype)
    return ad.log_softmax(x, axis=axis)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    """Merge dimensions ``start_dim..end_dim`` into one (``torch.flatten``)."""
    shape = np.shape(_data(input))
    nd = max(len(shape), 1)
    for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
        if not -nd <= d < nd:
            raise ShapeError(f"flatten: {name}={d} is out of range for an input of shape {shape}")
    if not shape:
        return ad.reshape(input, (1,))
    s, e = start_dim % nd, end_dim % nd
    if s > e:
        raise ShapeError(f"flatten: start_dim ({start_dim}) cannot come after end_dim ({end_dim}) for shape {shape}")
    new = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
    return ad.reshape(input, new)
