r"""$y = x W^\top + b$ (``torch.nn.functional.linear``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import autodiff as ad
from ...autodiff import ShapeError


def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    r"""$y = x W^\top + b$: x (*, in), weight (out, in), bias (out,) -> (*, out)."""
    w_shape, x_shape = np.shape(getattr(weight, "data", weight)), np.shape(getattr(x, "data", x))
    if len(w_shape) != 2 or not x_shape or x_shape[-1] != w_shape[1]:
        raise ShapeError(f"linear: input of shape {x_shape} does not fit weight of shape {w_shape} "
                         f"(expected input (*, {w_shape[1] if len(w_shape) == 2 else 'in'}))")
    y = ad.matmul(x, ad.transpose(weight))
    if bias is not None:
        b_shape = np.shape(getattr(bias, "data", bias))
        if b_shape != (w_shape[0],):
            raise ShapeError(f"linear: bias of shape {b_shape}, expected ({w_shape[0]},)")
        y = y + bias
    return y
