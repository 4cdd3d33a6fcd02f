"""`Dropout`, `Dropout1d`, `Dropout2d`: inverted dropout in training mode, the identity in evaluation mode."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F
from .functional.dropout import _check_p
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d"]


class Dropout(Module):
    r"""Zero each element with probability ``p`` and scale the rest by $1/(1-p)$ while training.

    ``generator`` (a NumPy Generator) fixes the masks; by default the shared generator of
    `dlmath.nn.init` (``dlmath.nn.manual_seed``) draws them.
    """

    _fn = staticmethod(F.dropout)

    def __init__(self, p: float = 0.5, inplace: bool = False, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self.p = _check_p(type(self).__name__, p)
        self.inplace = inplace
        self.generator = generator

    def forward(self, input: Any) -> Any:
        return type(self)._fn(input, self.p, self.training, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    """Channel-wise dropout for (N, C, L) or (C, L) inputs."""

    _fn = staticmethod(F.dropout1d)


class Dropout2d(Dropout):
    """Channel-wise dropout for (N, C, H, W) or (C, H, W) inputs."""

    _fn = staticmethod(F.dropout2d)
