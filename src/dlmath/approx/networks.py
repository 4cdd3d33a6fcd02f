r"""Networks as plain NumPy weights: one hidden layer (`ShallowNet`) and deep ReLU nets (`ReLUNet`).

A `ShallowNet` is $N(x) = \sum_{i=1}^{W} c_i\,\sigma(w_i^\top x + b_i) + c_0$ (Cybenko 1989's form);
a `ReLUNet` is $x \mapsto A_L\,\mathrm{relu}(\cdots\mathrm{relu}(A_1 x + b_1)\cdots) + b_L$.
Both evaluate NumPy arrays of shape (N, n) in float64, in row chunks so that a wide network
never allocates more than `CHUNK_BYTES` of hidden activations at once, and both convert to a
`dlmath.nn.Sequential` of ``Linear`` and activation modules and back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..autodiff import DlmathError, ShapeError

__all__ = ["ACTIVATIONS", "Activation", "ApproximationError", "ReLUNet", "ShallowNet", "as_relu_layers"]

CHUNK_BYTES = 32 * 2**20  # hidden activations evaluated per chunk: bounded memory for any width


class ApproximationError(DlmathError, ValueError):
    """Bad input to a construction of dlmath.approx (domain, eps, the function's values)."""


def relu(z: np.ndarray) -> np.ndarray:
    r"""$\mathrm{relu}(z) = \max(z, 0)$."""
    return np.maximum(z, 0.0)


def logistic(z: np.ndarray) -> np.ndarray:
    r"""$\sigma(z) = 1/(1+e^{-z})$ (SciPy's expit: no overflow for large $|z|$)."""
    from scipy.special import expit

    return expit(z)


def heaviside(z: np.ndarray) -> np.ndarray:
    r"""The threshold unit $\mathbb 1[z \ge 0]$ (McCulloch & Pitts 1943)."""
    return (z >= 0).astype(np.float64)


def square(z: np.ndarray) -> np.ndarray:
    r"""$\sigma(z) = z^2$: a polynomial activation, never universal (Leshno et al. 1993)."""
    return z * z


@dataclass(frozen=True)
class Activation:
    """An activation: its function and a Lipschitz constant (inf when it has none)."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    lipschitz: float


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation("relu", relu, 1.0),
    "sigmoid": Activation("sigmoid", logistic, 0.25),
    "tanh": Activation("tanh", np.tanh, 1.0),
    "heaviside": Activation("heaviside", heaviside, math.inf),
    "square": Activation("square", square, math.inf),
}


def _activation(name: str, owner: str) -> Activation:
    if name not in ACTIVATIONS:
        raise ApproximationError(f"{owner}: activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def as_points(x: Any, n: int, owner: str) -> np.ndarray:
    """Input points as a float64 (N, n) array; a 1-d array is read as N points when n == 1."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1 and n == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ShapeError(f"{owner}: input must have shape (N, {n}), got {arr.shape}")
    return arr


def _chunk_rows(width: int) -> int:
    """Rows per chunk so that a chunk's hidden activations take at most CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // (8 * max(width, 1)))


def _relu_1d(x: np.ndarray, w: np.ndarray, b: np.ndarray, c: np.ndarray, c0: float) -> np.ndarray:
    r"""$\sum_i c_i\,\mathrm{relu}(w_i x + b_i) + c_0$ for scalar inputs in $O((N + W)\log W)$.

    Unit i is active on one side of its breakpoint $-b_i/w_i$ and there contributes the affine
    $c_iw_i x + c_ib_i$; cumulative sums over the sorted breakpoints give, for each x, the sum of
    the affine parts of the active units (the same function, summed in another order).
    """
    out = np.full(x.shape, c0, dtype=np.float64)
    flat = w == 0
    out += float(np.sum(c[flat] * np.maximum(b[flat], 0.0)))
    for sign in (1.0, -1.0):
        sel = (w * sign) > 0
        if not sel.any():
            continue
        ws, bs, cs = w[sel], b[sel], c[sel]
        t = -bs / ws
        order = np.argsort(t)
        t, slope, icpt = t[order], (cs * ws)[order], (cs * bs)[order]
        if sign > 0:   # active where x > t: the units with t < x, a prefix of the sorted breakpoints
            k = np.searchsorted(t, x, side="left")
            S = np.concatenate([[0.0], np.cumsum(slope)])
            C = np.concatenate([[0.0], np.cumsum(icpt)])
        else:          # active where x < t: a suffix
            k = np.searchsorted(t, x, side="right")
            S = np.concatenate([np.cumsum(slope[::-1])[::-1], [0.0]])
            C = np.concatenate([np.cumsum(icpt[::-1])[::-1], [0.0]])
        out += S[k] * x + C[k]
    return out


class ShallowNet:
    r"""One hidden layer: $N(x) = \sum_i c_i\,\sigma(w_i^\top x + b_i) + c_0$ on inputs of shape (N, n).

    weights: (W, n) input weights $w_i$; biases: (W,); out_weights: (W,) $c_i$; out_bias: $c_0$.
    """

    def __init__(self, weights: Any, biases: Any, out_weights: Any, out_bias: float = 0.0,
                 activation: str = "relu") -> None:
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        b = np.asarray(biases, dtype=np.float64).reshape(-1)
        c = np.asarray(out_weights, dtype=np.float64).reshape(-1)
        if not (w.shape[0] == b.shape[0] == c.shape[0]):
            raise ShapeError(f"ShallowNet: weights {w.shape}, biases {b.shape} and out_weights {c.shape} "
                             "must agree on the width (W, n), (W,), (W,)")
        self.activation = _activation(activation, "ShallowNet").name
        self.weights, self.biases, self.out_weights = w, b, c
        self.out_bias = float(out_bias)

    @property
    def width(self) -> int:
        """The number of hidden units W."""
        return int(self.weights.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.weights.shape[1])

    def hidden(self, x: Any) -> np.ndarray:
        """Hidden activations $\\sigma(x w_i + b_i)$, shape (N, W) (one chunk's worth: call on few points)."""
        X = as_points(x, self.in_features, "ShallowNet.hidden")
        return ACTIVATIONS[self.activation].fn(X @ self.weights.T + self.biases)

    def __call__(self, x: Any) -> np.ndarray:
        """N(x) for x of shape (N, n) (or (N,) when n == 1): shape (N,)."""
        X = as_points(x, self.in_features, "ShallowNet")
        if self.activation == "relu" and self.in_features == 1 and self.width > 64:
            return _relu_1d(X[:, 0], self.weights[:, 0], self.biases, self.out_weights, self.out_bias)
        act = ACTIVATIONS[self.activation].fn
        out = np.empty(X.shape[0])
        step = _chunk_rows(self.width)
        for s in range(0, X.shape[0], step):
            Z = X[s:s + step] @ self.weights.T + self.biases
            out[s:s + step] = act(Z) @ self.out_weights + self.out_bias
        return out

    def lipschitz_bound(self) -> float:
        r"""A Lipschitz constant in the Euclidean norm: $\mathrm{Lip}(\sigma)\sum_i |c_i|\,\|w_i\|_2$."""
        return float(ACTIVATIONS[self.activation].lipschitz
                     * np.sum(np.abs(self.out_weights) * np.linalg.norm(self.weights, axis=1)))

    def to_module(self, dtype: Any = np.float64) -> Any:
        """A `dlmath.nn.Sequential(Linear(n, W), <activation module>, Linear(W, 1))` with these weights."""
        from .. import nn

        modules = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}
        cls_name = modules.get(self.activation)
        if cls_name is None or not hasattr(nn, cls_name):
            raise ApproximationError(f"ShallowNet.to_module: dlmath.nn has no module for activation "
                                     f"{self.activation!r}")
        first, second = nn.Linear(self.in_features, self.width, dtype=dtype), nn.Linear(self.width, 1, dtype=dtype)
        first.weight.data[...] = self.weights
        first.bias.data[...] = self.biases
        second.weight.data[...] = self.out_weights[None, :]
        second.bias.data[...] = self.out_bias
        return nn.Sequential(first, getattr(nn, cls_name)(), second)

    @classmethod
    def from_module(cls, module: Any) -> ShallowNet:
        """The inverse of `to_module`: a Sequential(Linear(n, W), activation, Linear(W, 1))."""
        mods = list(module)
        names = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}
        if len(mods) != 3 or type(mods[1]).__name__ not in names:
            raise ApproximationError("ShallowNet.from_module: expected Sequential(Linear, ReLU|Sigmoid|Tanh, "
                                     f"Linear), got {[type(m).__name__ for m in mods]}")
        first, second = mods[0], mods[2]
        if second.weight.data.shape[0] != 1:
            raise ShapeError(f"ShallowNet.from_module: the last Linear must have one output, got "
                             f"{second.weight.data.shape[0]}")
        b1 = np.zeros(first.weight.data.shape[0]) if first.bias is None else first.bias.data
        b2 = 0.0 if second.bias is None else float(second.bias.data[0])
        return cls(first.weight.data, b1, second.weight.data[0], b2, names[type(mods[1]).__name__])


class ReLUNet:
    r"""A deep ReLU network $x\mapsto A_L\,\mathrm{relu}(\cdots\mathrm{relu}(A_1x+b_1)\cdots)+b_L$.

    layers: [(A_1, b_1), ..., (A_L, b_L)] with A_l of shape (n_l, n_{l-1}); ReLU after every layer
    but the last.
    """

    def __init__(self, layers: Sequence[tuple[Any, Any]]) -> None:
        if len(layers) < 1:
            raise ShapeError("ReLUNet: needs at least one layer")
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        prev = None
        for i, (A, b) in enumerate(layers):
            A2 = np.atleast_2d(np.asarray(A, dtype=np.float64))
            b2 = np.asarray(b, dtype=np.float64).reshape(-1)
            if b2.shape[0] != A2.shape[0] or (prev is not None and A2.shape[1] != prev):
                raise ShapeError(f"ReLUNet: layer {i} has weight {A2.shape} and bias {b2.shape}; "
                                 f"expected ({'?' if prev is None else prev} inputs) and matching bias")
            prev = A2.shape[0]
            self.layers.append((A2, b2))

    @property
    def in_features(self) -> int:
        return int(self.layers[0][0].shape[1])

    @property
    def depth(self) -> int:
        """Number of hidden (ReLU) layers."""
        return len(self.layers) - 1

    @property
    def units(self) -> int:
        """Number of hidden units."""
        return int(sum(A.shape[0] for A, _ in self.layers[:-1]))

    def __call__(self, x: Any) -> np.ndarray:
        """The network's output: shape (N,) for one output, (N, m) for m outputs."""
        h = as_points(x, self.in_features, "ReLUNet")
        for A, b in self.layers[:-1]:
            h = relu(h @ A.T + b)
        A, b = self.layers[-1]
        out = h @ A.T + b
        return out[:, 0] if out.shape[1] == 1 else out

    def activation_patterns(self, x: Any) -> np.ndarray:
        """Boolean (N, units): which hidden units are active (pre-activation > 0) at each point."""
        h = as_points(x, self.in_features, "ReLUNet.activation_patterns")
        pats = []
        for A, b in self.layers[:-1]:
            z = h @ A.T + b
            pats.append(z > 0)
            h = relu(z)
        return np.concatenate(pats, axis=1)

    def to_module(self, dtype: Any = np.float64) -> Any:
        """A `dlmath.nn.Sequential` of Linear and ReLU modules with these weights."""
        from .. import nn

        if not hasattr(nn, "ReLU"):
            raise ApproximationError("ReLUNet.to_module: dlmath.nn has no ReLU module")
        mods: list[Any] = []
        for i, (A, b) in enumerate(self.layers):
            lin = nn.Linear(A.shape[1], A.shape[0], dtype=dtype)
            lin.weight.data[...] = A
            lin.bias.data[...] = b
            mods.append(lin)
            if i < len(self.layers) - 1:
                mods.append(nn.ReLU())
        return nn.Sequential(*mods)


def as_relu_layers(net: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The affine layers of a ReLU network (ReLU between consecutive layers).

    Accepts a `ReLUNet`, a ReLU `ShallowNet`, or a `dlmath.nn.Sequential` of Linear and ReLU modules.
    """
    if isinstance(net, ReLUNet):
        return net.layers
    if isinstance(net, ShallowNet):
        if net.activation != "relu":
            raise ApproximationError(f"a ReLU network was expected; this ShallowNet uses {net.activation!r}")
        return [(net.weights, net.biases), (net.out_weights[None, :], np.array([net.out_bias]))]
    mods = list(net) if hasattr(net, "__iter__") else None
    if mods is None:
        raise ApproximationError(f"not a ReLU network: {type(net).__name__}")
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    expect_linear = True
    for m in mods:
        name = type(m).__name__
        if expect_linear and name == "Linear":
            W = np.asarray(m.weight.data, dtype=np.float64)
            b = np.zeros(W.shape[0]) if m.bias is None else np.asarray(m.bias.data, dtype=np.float64)
            layers.append((W, b))
            expect_linear = False
        elif not expect_linear and name == "ReLU":
            expect_linear = True
        else:
            raise ApproximationError(f"not a Linear/ReLU alternation: found {name} at position {len(layers)}")
    if expect_linear:
        raise ApproximationError("a ReLU network must end with a Linear layer")
    return layers
