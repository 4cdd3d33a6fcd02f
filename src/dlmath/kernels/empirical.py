r"""Finite-width kernels: the exact NTK of one network, and Monte-Carlo averages over initialisations.

$\Theta(x, x'; \theta) = \frac1K\sum_{k=1}^K \nabla_\theta f_k(x)\cdot\nabla_\theta f_k(x')$ (the trace over
the K outputs, divided by K, as neural-tangents' ``trace_axes=(-1,)``), and the empirical NNGP
$\frac1K\sum_k f_k(x) f_k(x')$.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import dlmath as dm

from .stax import Dense, Elementwise, FanInSum, FanOut, Kernel, Layer, _Parallel, _Serial, as_rng

__all__ = ["empirical_nngp", "empirical_ntk", "empirical_ntk_generic", "empirical_ntk_structured", "monte_carlo"]


def _inputs(x1: Any, x2: Any) -> tuple[np.ndarray, np.ndarray | None]:
    a1 = np.asarray(x1, dtype=np.result_type(np.asarray(x1).dtype, np.float32))
    a2 = None if x2 is None else np.asarray(x2, dtype=a1.dtype)
    return a1, a2


def _outputs(f: Any, fn: str) -> np.ndarray:
    f = np.asarray(f.data if isinstance(f, dm.Tensor) else f)
    if f.ndim != 2:
        raise dm.ShapeError(f"{fn}: the network must map (N, d) inputs to (N, K) outputs, got {f.shape}")
    return f


def empirical_nngp(arch: Layer, params: Any, x1: Any, x2: Any = None) -> np.ndarray:
    r"""$\frac1K f(x_1) f(x_2)^\top$ for one network (N1 x N2)."""
    a1, a2 = _inputs(x1, x2)
    f1 = _outputs(arch.apply(params, a1), "empirical_nngp")
    f2 = f1 if a2 is None else _outputs(arch.apply(params, a2), "empirical_nngp")
    return f1 @ f2.T / f1.shape[1]


def _dense_stack(arch: Layer) -> tuple[Layer, ...] | None:
    layers = arch.layers if isinstance(arch, _Serial) else (arch,)
    ok = all(isinstance(layer, (Dense, Elementwise)) for layer in layers)
    return layers if ok and isinstance(layers[-1], Dense) else None


def _signals(layers: tuple[Layer, ...], params: Any, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    r"""For each Dense layer l: (its input $A_{l-1}$ (N, n_in), the backpropagated signal
    $G_l = \partial f/\partial z_l$ (N, K, n_out)), from one forward and one backward sweep."""
    acts: list[Any] = []
    a = x
    for layer, p in zip(layers, params, strict=True):
        acts.append(a)
        a = layer.apply(p, a)
    K = a.shape[1]
    G = np.broadcast_to(np.eye(K, dtype=a.dtype), (x.shape[0], K, K))
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for layer, p, inp in zip(reversed(layers), reversed(params), reversed(acts), strict=True):
        if isinstance(layer, Dense):
            out.append((inp, G))
            W = p[0]
            n, k, w = G.shape                         # one 2-d product (a batched one would be N small GEMVs)
            G = (G.reshape(n * k, w) @ W.T).reshape(n, k, -1) * layer.weight_scale(W.shape[0])
        else:  # elementwise: G <- G * phi'(z) at this layer's input z
            G = G * layer.derivative(inp)[:, None, :]
    return out[::-1]


def _tree_supported(layer: Layer) -> bool:
    """Dense and elementwise layers composed by serial, FanOut, parallel and FanInSum (so residual stacks)."""
    if isinstance(layer, (_Serial, _Parallel)):
        return all(_tree_supported(sub) for sub in layer.layers)
    return isinstance(layer, (Dense, Elementwise, FanOut, FanInSum))


def _tree_forward(layer: Layer, p: Any, a: Any) -> tuple[Any, Any]:
    """(output, tape): the tape keeps each Dense layer's input and each elementwise layer's pre-activation."""
    if isinstance(layer, (_Serial, _Parallel)):
        tapes = []
        if isinstance(layer, _Serial):
            for sub, q in zip(layer.layers, p, strict=True):
                tapes.append(a)
                a, t = _tree_forward(sub, q, a)
                tapes[-1] = (tapes[-1], t)
            return a, tapes
        outs = [_tree_forward(sub, q, ai) for sub, q, ai in zip(layer.layers, p, a, strict=True)]
        return [o for o, _ in outs], [t for _, t in outs]
    return np.asarray(layer.apply(p, a)), a


def _tree_backward(layer: Layer, p: Any, G: Any, tape: Any, out: list[tuple[Dense, np.ndarray, np.ndarray]]) -> Any:
    r"""The signal at the layer's input from the signal $G = \partial f/\partial(	ext{output})$ (N, K, ...), lists
    for branches; each Dense layer's (layer, input $A_{l-1}$, $G_l$) appended to ``out``."""
    if isinstance(layer, _Serial):
        for sub, q, (_, t) in zip(reversed(layer.layers), reversed(p), reversed(tape), strict=True):
            G = _tree_backward(sub, q, G, t, out)
        return G
    if isinstance(layer, _Parallel):
        return [_tree_backward(sub, q, g, t, out) for sub, q, g, t in zip(layer.layers, p, G, tape, strict=True)]
    if isinstance(layer, FanOut):          # the copies' signals add
        total = G[0]
        for g in G[1:]:
            total = total + g
        return total
    if isinstance(layer, FanInSum):        # a sum passes its signal to every branch
        return [G] * len(tape)
    if isinstance(layer, Dense):
        out.append((layer, tape, G))
        W = p[0]
        n, k, w = G.shape
        return (G.reshape(n * k, w) @ W.T).reshape(n, k, -1) * layer.weight_scale(W.shape[0])
    return G * layer.derivative(tape)[:, None, :]


def _tree_signals(arch: Layer, params: Any, x: np.ndarray) -> list[tuple[Dense, np.ndarray, np.ndarray]]:
    f, tape = _tree_forward(arch, params, x)
    if not isinstance(f, np.ndarray) or f.ndim != 2:
        raise dm.ShapeError(f"empirical_ntk_structured: the network must end in one (batch, outputs) array, got "
                            f"{type(f).__name__}")
    K = f.shape[1]
    out: list[tuple[Dense, np.ndarray, np.ndarray]] = []
    _tree_backward(arch, params, np.broadcast_to(np.eye(K, dtype=f.dtype), (x.shape[0], K, K)), tape, out)
    return out


def empirical_ntk_structured(arch: Layer, params: Any, x1: Any, x2: Any = None) -> np.ndarray:
    r"""The exact NTK of a dense or residual stack from per-layer signals, never forming the Jacobian:

    $\Theta = \frac1K\sum_l \big(\textstyle\sum_k G^{(k)}_l G'^{(k)\top}_l\big)\odot
    \big(s_l^2 A_{l-1}A'^\top_{l-1} + \beta_l^2\big)$,
    with $s_l$ the weight scale ($\sigma_w/\sqrt{n}$ or 1) and $\beta_l$ the bias scale of layer l. Since
    $\partial f_k/\partial W_l = s_l A_{l-1}^\top G^{(k)}_l$, the inner product of two such rank-one Jacobians is the
    product of the Gram matrices (Novak, Sohl-Dickstein & Schoenholz 2022, *Fast finite width neural tangent
    kernel*, "structured derivatives"). Cost: O(N^2 (n + K n)) per layer instead of O(N^2 P).
    """
    layers = _dense_stack(arch)
    a1, a2 = _inputs(x1, x2)
    if layers is not None:
        s1 = _signals(layers, params, a1)
        s2 = s1 if a2 is None else _signals(layers, params, a2)
        dense = [layer for layer in layers if isinstance(layer, Dense)]
    elif _tree_supported(arch):   # residual and branching stacks: the same sums, the signals swept through the tree
        t1 = _tree_signals(arch, params, a1)
        t2 = t1 if a2 is None else _tree_signals(arch, params, a2)
        dense = [layer for layer, _, _ in t1]
        s1 = [(A, G) for _, A, G in t1]
        s2 = s1 if a2 is None else [(A, G) for _, A, G in t2]
    else:
        raise TypeError(f"empirical_ntk_structured: {arch!r} is not built from Dense and elementwise layers with "
                        f"serial, FanOut, parallel, FanInSum (residual); use empirical_ntk_generic")
    theta = np.zeros((a1.shape[0], (a1 if a2 is None else a2).shape[0]), a1.dtype)
    if not s1:                    # no parameters: the NTK is zero
        return theta
    K = s1[0][1].shape[1]
    for layer, (A1, G1), (A2, G2) in zip(dense, s1, s2, strict=True):
        g1 = G1.reshape(G1.shape[0], -1)
        g2 = g1 if G2 is G1 else G2.reshape(G2.shape[0], -1)   # x2=None: the same array, so BLAS uses syrk
        gg = g1 @ g2.T
        w = layer.weight_scale(A1.shape[1]) ** 2 * (A1 @ A2.T) + layer.bias_scale() ** 2
        theta += gg * w
    return theta / K


def _leaves(params: Any) -> list[np.ndarray]:
    leaves: list[np.ndarray] = []

    def walk(p: Any) -> None:
        if p is None:
            return
        if isinstance(p, (list, tuple)):
            for q in p:
                walk(q)
        else:
            leaves.append(np.asarray(p))
    walk(params)
    return leaves


def _rebuild(params: Any, leaves: list[Any], pos: list[int]) -> Any:
    if params is None:
        return None
    if isinstance(params, (list, tuple)):
        out = [_rebuild(p, leaves, pos) for p in params]
        return tuple(out) if isinstance(params, tuple) else out
    pos[0] += 1
    return leaves[pos[0] - 1]


def _jacobian(arch: Layer, params: Any, x: np.ndarray) -> tuple[np.ndarray, int]:
    """(N*K, P): the Jacobian of the flattened outputs with respect to every parameter, by reverse mode."""
    leaves = _leaves(params)

    def f(*flat: Any) -> Any:
        out = arch.apply(_rebuild(params, list(flat), [0]), x)
        return dm.reshape(out, (-1,))
    out = _outputs(arch.apply(params, x), "empirical_ntk")
    jac = dm.jacobian(lambda flat: f(*flat), mode="reverse")(list(leaves))
    blocks = [np.asarray(j).reshape(out.size, -1) for j in jac]
    return np.concatenate(blocks, axis=1), out.shape[1]


def empirical_ntk_generic(arch: Layer, params: Any, x1: Any, x2: Any = None) -> np.ndarray:
    r"""The exact NTK of any architecture: $\frac1K\sum_k J_k(x_1) J_k(x_2)^\top$ with the Jacobians
    $J = \partial f/\partial\theta$ from the engine (one reverse pass per output entry); O(N K P) memory."""
    a1, a2 = _inputs(x1, x2)
    J1, K = _jacobian(arch, params, a1)
    J2 = J1 if a2 is None else _jacobian(arch, params, a2)[0]
    n1, n2 = J1.shape[0] // K, J2.shape[0] // K
    return np.einsum("akp,bkp->ab", J1.reshape(n1, K, -1), J2.reshape(n2, K, -1)) / K


def empirical_ntk(arch: Layer, params: Any, x1: Any, x2: Any = None, implementation: str = "auto") -> np.ndarray:
    """The exact NTK of the finite network ``arch`` with ``params`` (N1 x N2).

    ``implementation``: 'structured' (`empirical_ntk_structured`, dense and residual stacks), 'generic' (Jacobian
    contraction, any architecture: convolutional, LayerNorm, concatenation, custom) or 'auto' (structured when it
    applies)."""
    if implementation not in ("auto", "structured", "generic"):
        raise ValueError(f"empirical_ntk: implementation must be 'auto', 'structured' or 'generic', "
                         f"got {implementation!r}")
    if implementation == "structured" or (implementation == "auto" and _tree_supported(arch)):
        return empirical_ntk_structured(arch, params, x1, x2)
    return empirical_ntk_generic(arch, params, x1, x2)


def monte_carlo(arch: Layer, x1: Any, x2: Any = None, n_samples: int = 64, seed: int | None = 0,
                get: tuple[str, ...] = ("nngp", "ntk")) -> Kernel:
    r"""The average of the empirical NNGP and NTK over ``n_samples`` random initialisations:
    an unbiased estimate of the finite-width expected kernels (which tend to the analytic ones as width grows),
    with standard error ~ 1/sqrt(n_samples). Works for any architecture, including those with no analytic kernel.
    Returns a `Kernel` (``cov1``, ``cov2`` the diagonals of the NNGP estimate)."""
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"monte_carlo: n_samples must be a positive int, got {n_samples!r}")
    rng = as_rng(seed)
    a1, a2 = _inputs(x1, x2)
    nngp = ntk = None
    for _ in range(n_samples):
        params = arch.init(rng, a1.shape)
        if "nngp" in get:
            k = empirical_nngp(arch, params, a1, a2)
            nngp = k if nngp is None else nngp + k
        if "ntk" in get:
            t = empirical_ntk(arch, params, a1, a2)
            ntk = t if ntk is None else ntk + t
    nngp = None if nngp is None else nngp / n_samples
    ntk = None if ntk is None else ntk / n_samples
    if nngp is not None:
        d1 = np.diag(nngp).copy() if a2 is None else np.full(a1.shape[0], np.nan)
        d2 = d1 if a2 is None else np.full(a2.shape[0], np.nan)
    else:
        d1 = np.full(a1.shape[0], np.nan)
        d2 = d1
    return Kernel(nngp, ntk, d1, d2, 0)  # type: ignore[arg-type]
