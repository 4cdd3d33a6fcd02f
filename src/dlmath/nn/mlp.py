r"""A multilayer perceptron in PyTorch's Linear layout, as plain weights.

$z^{(l)} = W^{(l)} a^{(l-1)} + b^{(l)}$, $a^{(l)} = \sigma(z^{(l)})$, with a linear last layer;
batched as $Z = A W^\top + \mathbf 1 b^\top$ (Rumelhart, Hinton & Williams 1986).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import autodiff as ad


@dataclass
class MLP:
    """Weights ``W[l]`` of shape (out, in) and biases ``b[l]`` (PyTorch's Linear layout)."""

    W: list[np.ndarray]
    b: list[np.ndarray]

    @classmethod
    def random(cls, sizes: Sequence[int], rng: np.random.Generator, dtype: type = np.float64) -> MLP:
        r"""$W_{ij} \sim \mathcal N(0, 1/n_\text{in})$ (LeCun scaling), $b_i \sim \mathcal N(0, 0.01)$."""
        W = [(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
             for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]
        b = [(0.1 * rng.standard_normal(n_out)).astype(dtype) for n_out in sizes[1:]]
        return cls(W, b)

    def params(self) -> list[np.ndarray]:
        """[W1, b1, W2, b2, ...]: the order `mlp_logits` takes."""
        return [p for pair in zip(self.W, self.b, strict=True) for p in pair]


def mlp_logits(params: Sequence[Any], X: Any, activation: Callable[[Any], Any] = ad.tanh) -> Any:
    """Forward pass of an MLP given [W1, b1, W2, b2, ...]; the last layer is linear."""
    a = X
    n_layers = len(params) // 2
    for l in range(n_layers):
        z = a @ ad.transpose(params[2 * l]) + params[2 * l + 1]
        a = activation(z) if l < n_layers - 1 else z
    return a
