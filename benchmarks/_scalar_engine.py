"""A minimal scalar reverse-mode engine in the style of micrograd, for scale only.

Every number is a ``Value`` holding ``data``, ``grad`` and a ``_backward`` closure that
pushes its ``grad`` into its parents; ``backward()`` orders the graph topologically and
runs the closures in reverse. It is written for speed within that idea (``__slots__``,
an iterative topological sort, closures that capture locals) so that the comparison
with the array engines is not a straw man. One departure from micrograd: a closure gets
its output node as an argument instead of capturing it. Capturing it makes every node a
reference cycle (node -> closure -> node), which only the cyclic garbage collector can
free; on a graph of 10^5 nodes the collector's repeated passes then cost 4-9x the
arithmetic itself (measured here on 784-16-10, batch 1: 0.13-0.26 s per step with the
cycle, 0.03 s with the collector off).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence


def _noop(out: Value) -> None:
    return None


class Value:
    __slots__ = ("_backward", "_prev", "data", "grad")

    def __init__(self, data: float, _prev: tuple[Value, ...] = ()) -> None:
        self.data = data
        self.grad = 0.0
        self._prev = _prev
        self._backward: Callable[[Value], None] = _noop

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"

    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def _backward(out: Value) -> None:
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    __radd__ = __add__

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def _backward(out: Value) -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    __rmul__ = __mul__

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other if isinstance(other, Value) else -float(other))

    def __rsub__(self, other: float) -> Value:
        return (-self) + other

    def __truediv__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return self * other.reciprocal()
        return self * (1.0 / other)

    def reciprocal(self) -> Value:
        out = Value(1.0 / self.data, (self,))

        def _backward(out: Value) -> None:
            self.grad -= out.grad * out.data * out.data
        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(self.data if self.data > 0 else 0.0, (self,))

        def _backward(out: Value) -> None:
            if out.data > 0:
                self.grad += out.grad
        out._backward = _backward
        return out

    def exp(self) -> Value:
        out = Value(math.exp(self.data), (self,))

        def _backward(out: Value) -> None:
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self) -> Value:
        out = Value(math.log(self.data), (self,))

        def _backward(out: Value) -> None:
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def tanh(self) -> Value:
        out = Value(math.tanh(self.data), (self,))

        def _backward(out: Value) -> None:
            self.grad += (1.0 - out.data * out.data) * out.grad
        out._backward = _backward
        return out

    def sin(self) -> Value:
        out = Value(math.sin(self.data), (self,))

        def _backward(out: Value) -> None:
            self.grad += math.cos(self.data) * out.grad
        out._backward = _backward
        return out

    def backward(self) -> None:
        """Reverse sweep from this (scalar) output; leaves accumulate into ``.grad``."""
        order: list[Value] = []
        seen: set[int] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            v, expanded = stack.pop()
            if expanded:
                order.append(v)
                continue
            if id(v) in seen:
                continue
            seen.add(id(v))
            stack.append((v, True))
            for p in v._prev:
                if id(p) not in seen:
                    stack.append((p, False))
        self.grad = 1.0
        for v in reversed(order):
            v._backward(v)


def vsum(values: Iterable[Value]) -> Value:
    """Sum as a chain of additions (what ``sum()`` does in micrograd)."""
    it = iter(values)
    total = next(it)
    for v in it:
        total = total + v
    return total


def dot(ws: Sequence[Value], xs: Sequence[Value]) -> Value:
    return vsum(w * x for w, x in zip(ws, xs, strict=True))


class MLP:
    """Fully connected layers (weights (in, out) as in _mlp.py), ReLU between them."""

    def __init__(self, params: Sequence[Sequence[Sequence[float]] | Sequence[float]]) -> None:
        self.layers: list[tuple[list[list[Value]], list[Value]]] = []
        for i in range(0, len(params), 2):
            w, b = params[i], params[i + 1]
            cols = [[Value(float(w[r][c])) for r in range(len(w))] for c in range(len(w[0]))]  # per output unit
            self.layers.append((cols, [Value(float(v)) for v in b]))

    def parameters(self) -> list[Value]:
        return [v for cols, b in self.layers for col in cols for v in col] + [v for _, b in self.layers for v in b]

    def forward(self, x: Sequence[float]) -> list[Value]:
        h: Sequence[Value] = [Value(float(v)) for v in x]   # inputs become leaves once, not once per product
        for k, (cols, b) in enumerate(self.layers):
            out = [dot(col, h) + bj for col, bj in zip(cols, b, strict=True)]
            h = [v.relu() for v in out] if k < len(self.layers) - 1 else out
        return list(h)

    def weights_as_lists(self) -> list[list[list[float]] | list[float]]:
        """Current parameters as nested lists in (in, out) layout, for comparison with NumPy."""
        out: list[list[list[float]] | list[float]] = []
        for cols, b in self.layers:
            out.append([[cols[c][r].data for c in range(len(cols))] for r in range(len(cols[0]))])
            out.append([v.data for v in b])
        return out


def cross_entropy(logits: Sequence[Value], label: int) -> Value:
    """-log softmax(logits)[label], shifted by the max (a constant) for stability."""
    m = max(v.data for v in logits)
    exps = [(v - m).exp() for v in logits]
    return vsum(exps).log() - (logits[label] - m)


def sgd_step(model: MLP, xs: Sequence[Sequence[float]], labels: Sequence[int], lr: float) -> float:
    """One SGD step on a batch (mean loss); returns the loss."""
    params = model.parameters()
    for p in params:
        p.grad = 0.0
    losses = [cross_entropy(model.forward(x), int(y)) for x, y in zip(xs, labels, strict=True)]
    loss = vsum(losses) * (1.0 / len(losses))
    loss.backward()
    for p in params:
        p.data -= lr * p.grad
    return loss.data
