r"""`Linear` ($y = x W^\top + b$, PyTorch's layout: weight (out_features, in_features)) and `Identity`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["Identity", "Linear", "default_dtype"]


def default_dtype(dtype: Any) -> np.dtype:
    """A layer's parameter dtype: float32 unless given (PyTorch's default)."""
    dt = np.dtype(np.float32 if dtype is None else dtype)
    if dt.kind != "f":
        raise TypeError(f"layer dtype must be a floating type, got {dt}")
    return dt


class Identity(Module):
    """Returns its input (a placeholder, e.g. a shortcut without projection)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Linear(Module):
    r"""$y = x W^\top + b$ on the last axis: input (*, in_features) -> (*, out_features).

    Initialised as PyTorch does: $W, b \sim U(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})$
    (``kaiming_uniform_(a=sqrt(5))``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"Linear: {name} must be a non-negative integer, got {v!r}")
        dt = default_dtype(dtype)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dt))
        self.bias = Parameter(np.empty(out_features, dtype=dt)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = init.default_bias_bound(self.weight)
            init.uniform_(self.bias, -bound, bound, generator)

    def forward(self, x: Any) -> Any:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
