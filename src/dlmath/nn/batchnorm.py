r"""`BatchNorm1d` and `BatchNorm2d` with PyTorch's arguments, buffers and state-dict keys.

Parameters ``weight`` ($\gamma$, ones) and ``bias`` ($\beta$, zeros) when ``affine``; buffers
``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked`` (int64) when
``track_running_stats``. Training mode normalises with the batch statistics and updates the
running ones (momentum, or the cumulative average when ``momentum=None``); evaluation mode
normalises with the running statistics (Ioffe & Szegedy 2015). The mathematics lives in
`dlmath.nn.functional.batch_norm`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F
from .linear import default_dtype
from .module import Module, Parameter, check_input_shape

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()
    _expected = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"{name}: num_features must be a positive integer, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps!r}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        dt = default_dtype(dtype)
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        if self.affine:
            self.weight = Parameter(np.ones(num_features, dtype=dt))
            self.bias = Parameter(np.zeros(num_features, dtype=dt))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dt))
            self.register_buffer("running_var", np.ones(num_features, dtype=dt))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            self.bias.data[...] = 0
            self.weight._version[0] += 1
            self.bias._version[0] += 1

    def forward(self, input: Any) -> Any:
        name = type(self).__name__
        check_input_shape(input, self._ndims, name, self._expected)
        c = np.shape(getattr(input, "data", input))[1]
        if c != self.num_features:
            raise ValueError(f"{name}: expected {self.num_features} channels (num_features) on axis 1, got input of "
                             f"shape {np.shape(getattr(input, 'data', input))}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            # momentum=None: cumulative moving average, factor 1/n after n batches (PyTorch's rule)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch = self.training or self.running_mean is None
        tracking = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if tracking else None,
                            self.running_var if tracking else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs, per channel C."""

    _ndims = (2, 3)
    _expected = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs, per channel C."""

    _ndims = (4,)
    _expected = "(N, C, H, W)"
