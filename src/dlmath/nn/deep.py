r"""Deep plain and residual MLPs for the depth studies of chapter 4, and their closed-form gradient gains.

A plain net is $h^{(l)} = \phi(W^{(l)} h^{(l-1)})$; a residual net is
$h^{(l)} = h^{(l-1)} + \alpha\,W_2^{(l)}\phi(W_1^{(l)} h^{(l-1)})$ with a branch scale $\alpha$ (e.g.
$1/\sqrt L$). Layers are bias-free `Linear`s so that the ReLU nets are positively homogeneous and
the mean squared input-Jacobian has the exact product forms `relu_plain_gradient_gain` and
`relu_residual_gradient_gain`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import autodiff as _ad
from . import init
from .linear import Linear
from .module import Module, ModuleList

__all__ = [
    "INIT_VARIANCE_GAINS", "PlainMLP", "ResidualBlock", "ResidualMLP", "init_weight_",
    "relu_plain_gradient_gain", "relu_residual_gradient_gain",
]

# Var(w_ij) = gain / fan_in for each initialisation name
INIT_VARIANCE_GAINS: dict[str, float] = {
    "default": 1.0 / 3.0,  # PyTorch's Linear: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    "lecun": 1.0,          # N(0, 1/fan_in) (LeCun et al. 1998)
    "he": 2.0,             # N(0, 2/fan_in) (He et al. 2015, Delving deep into rectifiers)
}


def _activation(name: str) -> Callable[[Any], Any]:
    acts: dict[str, Callable[[Any], Any]] = {"relu": _ad.relu, "tanh": _ad.tanh, "identity": lambda x: x}
    if name not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {name!r}")
    return acts[name]


def init_weight_(weight: Any, scheme: str, generator: np.random.Generator | None = None) -> Any:
    """Fill ``weight`` with the named initialisation: 'default' (PyTorch's Linear), 'lecun' or 'he' (normal)."""
    if scheme not in INIT_VARIANCE_GAINS:
        raise ValueError(f"init must be one of {sorted(INIT_VARIANCE_GAINS)}, got {scheme!r}")
    if scheme == "default":
        return init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
    return init.normal_(weight, 0.0, math.sqrt(INIT_VARIANCE_GAINS[scheme] / fan_in), generator)


def relu_plain_gradient_gain(sigma_w2: float) -> float:
    r"""Per-layer factor of $\mathbb E\|J\|_F^2$ for a bias-free ReLU layer $h\mapsto\mathrm{relu}(Wh)$.

    With iid symmetric weights of variance $\sigma_w^2/n$, for any input $h$ and tangent $t$,
    $\mathbb E\,\|D\,W t\|^2 = \sum_i \mathbb E[\mathbb 1(w_i\cdot h>0)(w_i\cdot t)^2] = \tfrac{\sigma_w^2}{2}\|t\|^2$
    ($w\mapsto -w$ flips the gate and keeps the square), so a depth-$L$ net has
    $\mathbb E\|J\|_F^2/n = (\sigma_w^2/2)^L$ exactly at any width: vanishing for $\sigma_w^2<2$, exploding
    for $\sigma_w^2>2$, preserved for He et al.'s (2015) $\sigma_w^2 = 2$.
    """
    return sigma_w2 / 2.0


def relu_residual_gradient_gain(sigma1_2: float, sigma2_2: float, branch_scale: float) -> float:
    r"""Per-block factor of $\mathbb E\|J\|_F^2$ for $h\mapsto h + \alpha W_2\,\mathrm{relu}(W_1 h)$.

    $J = I + \alpha W_2 D W_1$ with $W_1, W_2$ independent of $h$ and of each other, variances
    $\sigma_1^2/n$ and $\sigma_2^2/n$: the cross term has mean zero, so
    $\mathbb E\|J t\|^2 = (1 + \alpha^2\sigma_1^2\sigma_2^2/2)\|t\|^2$. With $\alpha = 1$ the factor exceeds 1
    and the gradient explodes geometrically; with $\alpha = 1/\sqrt L$ the product over $L$ blocks is
    $(1 + c/L)^L \le e^{c}$, $c = \sigma_1^2\sigma_2^2/2$: bounded in depth (Hanin & Rolnick 2018; Zhang et al.
    2019, Fixup).
    """
    return 1.0 + branch_scale ** 2 * sigma1_2 * sigma2_2 / 2.0


class PlainMLP(Module):
    r"""$h^{(l)} = \phi(W^{(l)} h^{(l-1)})$, $l = 1..L$, bias-free square `Linear` layers (``layers.<l>``)."""

    def __init__(self, depth: int, width: int, activation: str = "relu", init: str = "default",
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"PlainMLP: depth must be a positive integer, got {depth!r}")
        self.activation = activation
        self._phi = _activation(activation)
        self.layers = ModuleList(Linear(width, width, bias=False, dtype=dtype) for _ in range(depth))
        for layer in self.layers:
            init_weight_(layer.weight, init, generator)

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = self._phi(layer(x))
        return x


class ResidualBlock(Module):
    r"""$y = x + \alpha\,F(x)$, $F(x) = W_2\,\phi(W_1 x)$ (``fc1``, ``fc2``), an identity shortcut.

    With ``post_activation=True`` it is the original ResNet block's order, $y = \phi(x + \alpha F(x))$
    (He et al. 2016a), whose shortcut gradient is gated by $\phi'$; without, the shortcut is a clean
    identity as in the pre-activation design (He et al. 2016b, Identity mappings in deep residual networks).
    """

    def __init__(self, width: int, activation: str = "relu", branch_scale: float = 1.0,
                 init1: str = "he", init2: str = "lecun", dtype: Any = None,
                 generator: np.random.Generator | None = None, post_activation: bool = False) -> None:
        super().__init__()
        self.activation, self.branch_scale = activation, float(branch_scale)
        self.post_activation = bool(post_activation)
        self._phi = _activation(activation)
        self.fc1 = Linear(width, width, bias=False, dtype=dtype)
        self.fc2 = Linear(width, width, bias=False, dtype=dtype)
        init_weight_(self.fc1.weight, init1, generator)
        init_weight_(self.fc2.weight, init2, generator)

    def branch(self, x: Any) -> Any:
        r"""$\alpha\,F(x) = \alpha W_2\phi(W_1 x)$."""
        return self.branch_scale * self.fc2(self._phi(self.fc1(x)))

    def forward(self, x: Any) -> Any:
        y = x + self.branch(x)
        return self._phi(y) if self.post_activation else y


class ResidualMLP(Module):
    r"""$L$ `ResidualBlock`s (``blocks.<l>``); ``branch_scale='sqrt'`` means $\alpha = 1/\sqrt L$."""

    def __init__(self, depth: int, width: int, activation: str = "relu", branch_scale: float | str = 1.0,
                 init1: str = "he", init2: str = "lecun", dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"ResidualMLP: depth must be a positive integer, got {depth!r}")
        if branch_scale == "sqrt":
            alpha = 1.0 / math.sqrt(depth)
        elif isinstance(branch_scale, (int, float)):
            alpha = float(branch_scale)
        else:
            raise ValueError(f"ResidualMLP: branch_scale must be a number or 'sqrt', got {branch_scale!r}")
        self.blocks = ModuleList(ResidualBlock(width, activation, alpha, init1, init2, dtype, generator)
                                 for _ in range(depth))

    def forward(self, x: Any) -> Any:
        for block in self.blocks:
            x = block(x)
        return x
