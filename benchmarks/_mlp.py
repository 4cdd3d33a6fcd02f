"""One SGD step of an MLP classifier, written once per engine from the same weights and data.

Model: ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` fully connected layers with ReLU between
them, softmax cross-entropy (mean over the batch), plain SGD ``p -= lr * grad``.
Weights are stored ``(in, out)`` so that a layer is ``x @ W + b`` on every side.

Each ``make_*`` returns a ``Step``: calling it performs one full step in place on that
engine's own copy of the parameters (forward, loss, backward, update) and returns the loss;
``.params()`` gives the current parameters as NumPy arrays (for the correctness check).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

SIZES = (784, 512, 512, 10)
BATCH = 128
LR = 0.05


def init_params(sizes: Sequence[int] = SIZES, seed: int = 0, dtype: Any = np.float32) -> list[np.ndarray]:
    """[W1, b1, W2, b2, ...] with PyTorch's nn.Linear default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        bound = 1.0 / np.sqrt(n_in)
        params.append(rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype))
        params.append(rng.uniform(-bound, bound, (n_out,)).astype(dtype))
    return params


def make_batch(batch: int = BATCH, sizes: Sequence[int] = SIZES, seed: int = 1,
               dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], batch).astype(np.int64)
    return x, labels


class Step:
    """A callable SGD step plus an accessor for the current parameters."""

    def __init__(self, step: Callable[[], Any], params: Callable[[], list[np.ndarray]],
                 loss_value: Callable[[Any], float] = float) -> None:
        self._step = step
        self.params = params
        self.loss_value = loss_value

    def __call__(self) -> Any:
        return self._step()


# ----- dlmath --------------------------------------------------------------------------------------
def _dlmath_loss(ps: Sequence[Any], h: Any, labels: np.ndarray, rows: np.ndarray) -> Any:
    """Mean softmax cross-entropy of the ReLU MLP (x @ W + b per layer) on dlmath."""
    import dlmath as dm

    n_layers = len(ps) // 2
    for i in range(n_layers):
        h = h @ ps[2 * i] + ps[2 * i + 1]
        if i < n_layers - 1:
            h = dm.relu(h)
    return -dm.log_softmax(h, axis=-1)[rows, labels].mean()


def make_dlmath(params: Sequence[np.ndarray], x: np.ndarray, labels: np.ndarray, lr: float = LR) -> Step:
    import dlmath as dm

    ps = [dm.tensor(p, requires_grad=True) for p in params]   # dm.tensor copies
    xt = dm.tensor(x)
    rows = np.arange(len(labels))

    def step() -> Any:
        loss = _dlmath_loss(ps, xt, labels, rows)
        loss.backward()
        with dm.no_grad():
            for p in ps:
                p -= lr * p.grad
                p.grad = None
        return loss

    return Step(step, lambda: [p.data.copy() for p in ps], lambda loss: float(loss.data))


def dlmath_grad_dtypes(params: Sequence[np.ndarray], x: np.ndarray, labels: np.ndarray) -> list[str]:
    """dtypes of dlmath's parameter gradients (float32 in, float32 out, or a silent upcast?)."""
    import dlmath as dm

    ps = [dm.tensor(p, requires_grad=True) for p in params]
    _dlmath_loss(ps, dm.tensor(x), labels, np.arange(len(labels))).backward()
    return [str(p.grad.dtype) for p in ps]


# ----- PyTorch -------------------------------------------------------------------------------------
def make_torch(params: Sequence[np.ndarray], x: np.ndarray, labels: np.ndarray, lr: float = LR) -> Step:
    """PyTorch eager, op for op the same program as dlmath's (x @ W + b, relu, log_softmax, index, mean)."""
    import torch

    ps = [torch.tensor(p, requires_grad=True) for p in params]
    xt = torch.from_numpy(x.copy())
    lt = torch.from_numpy(labels.copy())
    rows = torch.arange(len(labels))
    n_layers = len(ps) // 2

    def step() -> Any:
        h = xt
        for i in range(n_layers):
            h = h @ ps[2 * i] + ps[2 * i + 1]
            if i < n_layers - 1:
                h = torch.relu(h)
        lp = torch.log_softmax(h, dim=-1)
        loss = -lp[rows, lt].mean()
        loss.backward()
        with torch.no_grad():
            for p in ps:
                p -= lr * p.grad
                p.grad = None
        return loss

    return Step(step, lambda: [p.detach().numpy().copy() for p in ps], lambda loss: float(loss.item()))


def make_torch_idiomatic(params: Sequence[np.ndarray], x: np.ndarray, labels: np.ndarray, lr: float = LR) -> Step:
    """PyTorch as usually written: F.linear on (out, in) weights (addmm) and fused F.cross_entropy."""
    import torch
    import torch.nn.functional as F

    ps = []
    for i, p in enumerate(params):
        arr = p.T.copy() if i % 2 == 0 else p.copy()
        ps.append(torch.tensor(arr, requires_grad=True))
    xt = torch.from_numpy(x.copy())
    lt = torch.from_numpy(labels.copy())
    n_layers = len(ps) // 2

    def step() -> Any:
        h = xt
        for i in range(n_layers):
            h = F.linear(h, ps[2 * i], ps[2 * i + 1])
            if i < n_layers - 1:
                h = F.relu(h)
        loss = F.cross_entropy(h, lt)
        loss.backward()
        with torch.no_grad():
            for p in ps:
                p.add_(p.grad, alpha=-lr)
                p.grad = None
        return loss

    def current() -> list[np.ndarray]:
        return [p.detach().numpy().T.copy() if i % 2 == 0 else p.detach().numpy().copy() for i, p in enumerate(ps)]

    return Step(step, current, lambda loss: float(loss.item()))


# ----- hand-written NumPy backprop ----------------------------------------------------------------
def make_numpy(params: Sequence[np.ndarray], x: np.ndarray, labels: np.ndarray, lr: float = LR) -> Step:
    """The same step with the backward pass derived by hand: the floor an engine on NumPy can reach."""
    ps = [np.array(p) for p in params]
    x = x.copy()
    rows = np.arange(len(labels))
    n = len(labels)
    n_layers = len(ps) // 2

    def step() -> Any:
        pre: list[np.ndarray] = []
        acts = [x]
        h = x
        for i in range(n_layers):
            a = h @ ps[2 * i] + ps[2 * i + 1]
            if i < n_layers - 1:
                pre.append(a)
                h = np.maximum(a, 0)
                acts.append(h)
            else:
                h = a
        z = h
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        loss = -(z[rows, labels] - m[:, 0] - np.log(s[:, 0])).mean()
        dz = e / s
        dz[rows, labels] -= 1
        dz /= n
        grads: list[np.ndarray] = [None] * len(ps)  # type: ignore[list-item]
        for i in reversed(range(n_layers)):
            grads[2 * i] = acts[i].T @ dz
            grads[2 * i + 1] = dz.sum(axis=0)
            if i > 0:
                dz = dz @ ps[2 * i].T
                dz *= pre[i - 1] > 0
        for p, g in zip(ps, grads, strict=True):
            p -= lr * g
        return loss

    return Step(step, lambda: [p.copy() for p in ps])


# ----- HIPS autograd --------------------------------------------------------------------------------
def make_autograd(params: Sequence[np.ndarray], x: np.ndarray, labels: np.ndarray, lr: float = LR) -> Step:
    import autograd.numpy as anp
    from autograd import value_and_grad
    from autograd.scipy.special import logsumexp

    ps = [np.array(p) for p in params]
    x = x.copy()
    rows = np.arange(len(labels))
    n_layers = len(ps) // 2

    def loss_fn(ps: list[Any]) -> Any:
        h = x
        for i in range(n_layers):
            h = anp.dot(h, ps[2 * i]) + ps[2 * i + 1]
            if i < n_layers - 1:
                h = anp.maximum(h, 0.0)
        lp = h - logsumexp(h, axis=1, keepdims=True)
        return -anp.mean(lp[rows, labels])

    vg = value_and_grad(loss_fn)

    def step() -> Any:
        loss, grads = vg(ps)
        for p, g in zip(ps, grads, strict=True):
            p -= lr * g
        return loss

    return Step(step, lambda: [p.copy() for p in ps])


ENGINES: dict[str, Callable[..., Step]] = {
    "dlmath": make_dlmath,
    "torch (same ops)": make_torch,
    "torch (F.linear+cross_entropy)": make_torch_idiomatic,
    "numpy by hand": make_numpy,
    "HIPS autograd": make_autograd,
}


def flops_per_step(sizes: Sequence[int], batch: int) -> int:
    """Matrix-product flops of one step: forward 2*B*sum(in*out), backward twice that except
    the input gradient of the first layer (not needed). Elementwise work is ignored (<1%)."""
    fwd = sum(2 * batch * i * o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    bwd = 2 * fwd - 2 * batch * sizes[0] * sizes[1]
    return fwd + bwd


def check_one_step(sizes: Sequence[int] = SIZES, batch: int = BATCH, lr: float = LR,
                   engines: dict[str, Callable[..., Step]] | None = None) -> list[tuple[str, float, float, float]]:
    """One step from the same weights and data on every engine, compared with the NumPy reference.

    Returns rows (engine, loss, |loss - loss_ref|, max |updated param - updated param_ref|).
    """
    engines = engines or ENGINES
    params = init_params(sizes)
    x, labels = make_batch(batch, sizes)
    ref = make_numpy(params, x, labels, lr)
    ref_loss = float(ref())
    ref_params = ref.params()
    rows = []
    for name, make in engines.items():
        s = make(params, x, labels, lr)
        loss = s.loss_value(s())
        diff = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(s.params(), ref_params, strict=True))
        rows.append((name, loss, abs(loss - ref_loss), diff))
    return rows
