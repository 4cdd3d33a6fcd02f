r"""Chapter 3's multilayer perceptron, built on `dlmath.nn`: Linear layers with tanh between them.

$z^{(l)} = W^{(l)} a^{(l-1)} + b^{(l)}$, $a^{(l)} = \sigma(z^{(l)})$, with a linear last layer;
batched as $Z = A W^\top + \mathbf 1 b^\top$ (Rumelhart, Hinton & Williams 1986).
`MLP` is a `Sequential` (``Linear, Tanh, Linear, ..., Linear``), so its state dict has the keys of
``torch.nn.Sequential(Linear, Tanh, ...)``; `mlp_logits` is the same forward pass as a function
of the flat parameter list [W1, b1, W2, b2, ...], which the chapter's claims differentiate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import autodiff as ad
from . import functional as F
from .activation import Tanh
from .linear import Linear
from .module import Module, Sequential

__all__ = ["MLP", "mlp_logits"]


class MLP(Sequential):
    """``Linear(sizes[0], sizes[1]), activation(), ..., Linear(sizes[-2], sizes[-1])`` (no activation at the end).

    Float64 by default (the chapter's checks are float64). ``W`` / ``b`` list the weights (out, in)
    and biases as arrays (the live data, PyTorch's Linear layout); `params` gives them interleaved.
    """

    def __init__(self, sizes: Sequence[int], activation: Callable[[], Module] = Tanh, bias: bool = True,
                 dtype: Any = np.float64, generator: np.random.Generator | None = None) -> None:
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {list(sizes)}")
        layers: list[Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(Linear(n_in, n_out, bias=bias, dtype=dtype, generator=generator))
            if i < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)
        self.sizes = tuple(int(s) for s in sizes)

    @classmethod
    def random(cls, sizes: Sequence[int], rng: np.random.Generator, dtype: type = np.float64) -> MLP:
        r"""$W_{ij} \sim \mathcal N(0, 1/n_\text{in})$ (LeCun scaling), $b_i \sim \mathcal N(0, 0.01)$, drawn
        from ``rng`` (all weights, then all biases)."""
        # the layers' default init is overwritten below; a private generator keeps rng's draws for the weights
        net = cls(sizes, dtype=dtype, generator=np.random.default_rng(0))
        W = [rng.standard_normal((n_out, n_in)) / np.sqrt(n_in) for n_in, n_out in zip(sizes[:-1], sizes[1:],
                                                                                         strict=True)]
        b = [0.1 * rng.standard_normal(n_out) for n_out in sizes[1:]]
        for lin, w, bb in zip(net.linears, W, b, strict=True):
            lin.weight.data[...] = w
            lin.bias.data[...] = bb
            lin.weight._version[0] += 1
            lin.bias._version[0] += 1
        return net

    @property
    def linears(self) -> list[Linear]:
        return [m for m in self if isinstance(m, Linear)]

    @property
    def W(self) -> list[np.ndarray]:
        """The weight matrices (out, in), as arrays."""
        return [lin.weight.data for lin in self.linears]

    @property
    def b(self) -> list[np.ndarray]:
        """The bias vectors, as arrays."""
        return [lin.bias.data for lin in self.linears]

    def params(self) -> list[np.ndarray]:
        """[W1, b1, W2, b2, ...]: the order `mlp_logits` takes."""
        return [p for pair in zip(self.W, self.b, strict=True) for p in pair]


def mlp_logits(params: Sequence[Any], X: Any, activation: Callable[[Any], Any] = ad.tanh) -> Any:
    """Forward pass of an MLP given [W1, b1, W2, b2, ...]; the last layer is linear."""
    a = X
    n_layers = len(params) // 2
    for l in range(n_layers):
        z = F.linear(a, params[2 * l], params[2 * l + 1])
        a = activation(z) if l < n_layers - 1 else z
    return a
