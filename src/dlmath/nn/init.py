r"""Weight initialisation with PyTorch's names, formulas and per-layer defaults (``torch.nn.init``).

Every function fills a Tensor (or ndarray) in place and returns it. Randomness comes from
one default generator, reseeded by `manual_seed` (as ``torch.manual_seed``), or from an
explicit ``generator=np.random.Generator``. The numbers differ from PyTorch's for the same
seed (different generators); the distributions are the same.

Fans (``calculate_fan_in_and_fan_out``): for a weight of shape (out, in, *kernel),
fan_in = in * prod(kernel), fan_out = out * prod(kernel).

- Xavier/Glorot (Glorot & Bengio 2010): $\mathrm{Var} = g^2 \cdot 2/(\text{fan\_in}+\text{fan\_out})$.
- Kaiming/He (He et al. 2015): $\mathrm{Var} = g^2/\text{fan}$, $g = \sqrt{2/(1+a^2)}$ for leaky ReLU.
- PyTorch's default for Linear and Conv: ``kaiming_uniform_(w, a=sqrt(5))``, i.e.
  $U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})$, and the bias from the same interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autodiff import Tensor

__all__ = [
    "calculate_fan_in_and_fan_out", "calculate_gain", "constant_", "default_generator", "eye_",
    "kaiming_normal_", "kaiming_uniform_", "manual_seed", "normal_", "ones_", "orthogonal_", "uniform_",
    "xavier_normal_", "xavier_uniform_", "zeros_",
]

_GENERATOR = [np.random.default_rng(0)]


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator used by initialisers and dropout (as ``torch.manual_seed``)."""
    _GENERATOR[0] = np.random.default_rng(seed)
    return _GENERATOR[0]


def default_generator() -> np.random.Generator:
    return _GENERATOR[0]


def _gen(generator: np.random.Generator | None) -> np.random.Generator:
    return _GENERATOR[0] if generator is None else generator


def _fill(t: Any, values: np.ndarray) -> Any:
    """Write ``values`` into the Tensor or ndarray ``t`` in place, keeping its dtype."""
    arr = t.data if isinstance(t, Tensor) else t
    arr[...] = values.astype(arr.dtype, copy=False)
    if isinstance(t, Tensor):
        t._version[0] += 1
    return t


def _shape(t: Any) -> tuple[int, ...]:
    return tuple((t.data if isinstance(t, Tensor) else t).shape)


def calculate_fan_in_and_fan_out(t: Any) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel)."""
    shape = _shape(t)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight with at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gains: 1 (linear, conv, sigmoid), 5/3 (tanh), sqrt(2) (relu),
    sqrt(2/(1+a^2)) (leaky_relu, a = param or 0.01), 3/4 (selu)."""
    linear = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid"}
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def uniform_(t: Any, a: float = 0.0, b: float = 1.0, generator: np.random.Generator | None = None) -> Any:
    return _fill(t, _gen(generator).uniform(a, b, size=_shape(t)))


def normal_(t: Any, mean: float = 0.0, std: float = 1.0, generator: np.random.Generator | None = None) -> Any:
    return _fill(t, mean + std * _gen(generator).standard_normal(_shape(t)))


def constant_(t: Any, val: float) -> Any:
    return _fill(t, np.full(_shape(t), val))


def zeros_(t: Any) -> Any:
    return constant_(t, 0.0)


def ones_(t: Any) -> Any:
    return constant_(t, 1.0)


def eye_(t: Any) -> Any:
    shape = _shape(t)
    if len(shape) != 2:
        raise ValueError(f"eye_: expected a 2-d tensor, got shape {shape}")
    return _fill(t, np.eye(*shape))


def xavier_uniform_(t: Any, gain: float = 1.0, generator: np.random.Generator | None = None) -> Any:
    r"""$U(-a, a)$ with $a = g\sqrt{6/(\text{fan\_in}+\text{fan\_out})}$ (Glorot & Bengio 2010)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound, generator)


def xavier_normal_(t: Any, gain: float = 1.0, generator: np.random.Generator | None = None) -> Any:
    r"""$\mathcal N(0, g^2\, 2/(\text{fan\_in}+\text{fan\_out}))$ (Glorot & Bengio 2010)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(t: Any, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(t)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: np.random.Generator | None = None) -> Any:
    r"""$U(-b, b)$, $b = g\sqrt{3/\text{fan}}$ (He et al. 2015, Delving deep into rectifiers)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: np.random.Generator | None = None) -> Any:
    r"""$\mathcal N(0, g^2/\text{fan})$ (He et al. 2015)."""
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), generator)


def orthogonal_(t: Any, gain: float = 1.0, generator: np.random.Generator | None = None) -> Any:
    """A (semi-)orthogonal matrix from the QR of a Gaussian one, signs fixed (Saxe et al. 2014)."""
    shape = _shape(t)
    if len(shape) < 2:
        raise ValueError(f"orthogonal_: expected at least 2 dimensions, got shape {shape}")
    rows, cols = shape[0], math.prod(shape[1:])
    flat = _gen(generator).standard_normal((rows, cols))
    q, r = np.linalg.qr(flat.T if rows < cols else flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(t, gain * q.reshape(shape))


def default_bias_bound(weight: Any) -> float:
    """PyTorch's default bias interval for Linear and Conv: $1/\\sqrt{\\text{fan\\_in}}$ (0 if fan_in is 0)."""
    fan_in, _ = calculate_fan_in_and_fan_out(weight)
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
