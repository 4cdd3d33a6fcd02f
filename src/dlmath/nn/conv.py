r"""`Conv1d` and `Conv2d` (PyTorch's names, arguments, parameter layout and initialisation).

weight (out_channels, in_channels/groups, *kernel_size), bias (out_channels,), both
$U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})$ with fan_in = in_channels/groups * prod(kernel_size)
(``kaiming_uniform_(a=sqrt(5))``, PyTorch's default). ``padding_mode`` other than 'zeros' pads with
``F.pad`` first ('circular': periodic, which makes the layer exactly translation-equivariant).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import functional as F
from . import init
from .linear import default_dtype
from .module import Module, Parameter

__all__ = ["Conv1d", "Conv2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    _nd = 2
    _fn = staticmethod(F.conv2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name, nd = type(self).__name__, self._nd
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < (1 if arg == "groups" else 0):
                raise ValueError(f"{name}: {arg} must be a {'positive' if arg == 'groups' else 'non-negative'} "
                                 f"integer, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                             f"divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _ntuple(kernel_size, nd, name, "kernel_size", 1)
        self.stride = _ntuple(stride, nd, name, "stride", 1)
        self.dilation = _ntuple(dilation, nd, name, "dilation", 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding: Any = padding
        else:
            self.padding = _ntuple(padding, nd, name, "padding", 0)
        self.padding_mode = padding_mode
        # the explicit padding F.pad applies for non-zero modes, last axis first (PyTorch's order)
        if self.padding == "valid":
            pairs = [(0, 0)] * nd
        elif self.padding == "same":
            pairs = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                     for d, k in zip(self.dilation, self.kernel_size, strict=True)]
        else:
            pairs = [(p, p) for p in self.padding]
        self._reversed_padding_repeated_twice = tuple(v for pr in reversed(pairs) for v in pr)
        dt = default_dtype(dtype)
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, *self.kernel_size), dtype=dt))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound, generator)

    def forward(self, input: Any) -> Any:
        if self.padding_mode != "zeros":
            x = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return self._fn(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return self._fn(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding!r}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


def _ntuple(v: Any, n: int, layer: str, name: str, minimum: int) -> tuple[int, ...]:
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
    if len(vals) != n or not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in vals) \
            or any(e < minimum for e in vals):
        raise ValueError(f"{layer}: {name} must be an int >= {minimum} or a tuple of {n} such ints, got {v!r}")
    return tuple(int(e) for e in vals)


class Conv2d(_ConvNd):
    r"""2-D convolution (cross-correlation) layer, as ``torch.nn.Conv2d``: (N, C_in, H, W) or (C_in, H, W) ->
    (N, C_out, H_out, W_out), $H_{out} = \lfloor (H + 2p - d(k-1) - 1)/s \rfloor + 1$."""

    _nd = 2
    _fn = staticmethod(F.conv2d)


class Conv1d(_ConvNd):
    r"""1-D convolution (cross-correlation) layer, as ``torch.nn.Conv1d``: (N, C_in, L) or (C_in, L) ->
    (N, C_out, L_out)."""

    _nd = 1
    _fn = staticmethod(F.conv1d)
