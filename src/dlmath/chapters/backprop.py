r"""Chapter 3 — Backpropagation: the chain rule, computational graphs, efficient gradients.

Every check here compares the engine with something it did not compute: central
finite differences, a hand-written NumPy backward pass, a closed form. The MLP used
throughout is $z^{(l)} = W^{(l)} a^{(l-1)} + b^{(l)}$, $a^{(l)} = \sigma(z^{(l)})$ with
a linear last layer (chapter C1), batched as $Z = A W^\top + \mathbf 1 b^\top$.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import dlmath as dm

from ..measure import max_relative_error as _relative_error
from ..nn import MLP, cross_entropy, mlp_logits
from ..verify import CrossCheck, Evidence, PrintedForm, RunContext, claim

F64_EPS = float(np.finfo(np.float64).eps)
F32_EPS = float(np.finfo(np.float32).eps)


FD_TOL = 1e-7  # central differences in float64 with h = 1e-6: ~1e-10 relative, with margin
FD_REASON = ("central differences in float64 with h=1e-6: truncation ~h^2 ~ 1e-12 and rounding "
             "~eps/h ~ 2e-10; 1e-7 leaves margin")


def _finite_differences(measured: float, what: str) -> CrossCheck:
    """The cross-check that ties a closed form or an autodiff result to the function itself."""
    return CrossCheck("finite-differences", measured, FD_TOL, f"{what}: {FD_REASON}")


def _problem(rng: np.random.Generator, sizes: Sequence[int],
             batch: int) -> tuple[MLP, np.ndarray, np.ndarray]:
    net = MLP.random(sizes, rng)
    X = rng.standard_normal((batch, sizes[0]))
    y = rng.integers(0, sizes[-1], size=batch)
    return net, X, y


def _autodiff_grads(net: MLP, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    params = [dm.tensor(p, requires_grad=True) for p in net.params()]
    cross_entropy(mlp_logits(params, X), y).backward()
    return [p.grad.data for p in params]


# ----- claims ----------------------------------------------------------------------------------
@claim("backprop.chain-rule",
       title="Per-weight chain rule equals autodiff and finite differences",
       statement=r"\frac{\partial L}{\partial w^{(l)}_{ij}} = \frac{\partial L}{\partial z^{(l+1)}_j}"
                 r"\cdot\frac{\partial z^{(l+1)}_j}{\partial w^{(l)}_{ij}} = \delta^{(l+1)}_j\,a^{(l)}_i",
       source="Rumelhart, Hinton & Williams (1986), Learning representations by back-propagating errors")
def chain_rule(ctx: RunContext) -> Evidence:
    """Per weight: dL/dz_j by central differences on the pre-activation z_j, times dz_j/dw_ij = a_i."""
    rng = ctx.rng
    sizes = [6, 5, 4, 3] if not ctx.thorough else [10, 8, 8, 5]
    net, X, y = _problem(rng, sizes, batch=1)
    grads = _autodiff_grads(net, X, y)
    h = 1e-6
    worst_chain, worst_fd = 0.0, 0.0
    for l in range(len(net.W)):
        # forward up to layer l's input a and pre-activation z = W a + b of the next layer
        params = net.params()
        a = X
        for k in range(l):
            a = np.tanh(a @ net.W[k].T + net.b[k])
        z = a @ net.W[l].T + net.b[l]

        def loss_from_z(zz: np.ndarray, l: int = l) -> float:
            out = zz
            for k in range(l, len(net.W)):
                if k > l:
                    out = out @ net.W[k].T + net.b[k]
                if k < len(net.W) - 1:
                    out = np.tanh(out)
            return float(cross_entropy(out, y))
        dL_dz = np.array([(loss_from_z(z + h * e) - loss_from_z(z - h * e)) / (2 * h)
                          for e in np.eye(z.shape[1])[:, None, :]])          # (n_out,)
        chain = np.outer(dL_dz, a[0])                                        # dL/dw_ji = dL/dz_j * a_i
        worst_chain = max(worst_chain, _relative_error(chain, grads[2 * l]))
        # direct finite differences on a few weights of this layer
        W = params[2 * l]
        for (j, i) in [(0, 0), (W.shape[0] - 1, W.shape[1] - 1)]:
            def loss_w(v: float, j: int = j, i: int = i, l: int = l) -> float:
                p = [q.copy() for q in params]
                p[2 * l][j, i] = v
                return float(cross_entropy(mlp_logits(p, X), y))
            fd = (loss_w(W[j, i] + h) - loss_w(W[j, i] - h)) / (2 * h)
            worst_fd = max(worst_fd, abs(fd - grads[2 * l][j, i]) / max(abs(fd), 1e-12))
    reason = ("central differences with h=1e-6 in float64: truncation ~h^2 and rounding ~eps/h ~ 1e-10 "
              "relative; 1e-6 leaves margin for small entries")
    return Evidence.at_most(
        worst_chain, 1e-6, reason,
        f"MLP {sizes}, tanh, batch 1; max rel. error of dL/dz_j (central differences on z) * a_i vs "
        f"autodiff, per layer: {worst_chain:.2e}; direct finite differences on two weights per layer "
        f"vs autodiff: {worst_fd:.2e}",
        cross_checks=(CrossCheck("direct-finite-differences", worst_fd, 1e-6, reason),))


def manual_backprop(net: MLP, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    r"""The batched matrix form, written by hand in NumPy (chapter C2, C3, C5).

    $\Delta^{(L)} = (\mathrm{softmax}(Z^{(L)}) - Y)/B$,
    $\Delta^{(l)} = (\Delta^{(l+1)} W^{(l+1)}) \odot \sigma'(Z^{(l)})$,
    $\partial L/\partial W^{(l)} = \Delta^{(l)\top} A^{(l-1)}$,
    $\partial L/\partial b^{(l)} = \Delta^{(l)\top}\mathbf 1$.
    """
    A, Z = [X], []
    for l, (W, b) in enumerate(zip(net.W, net.b, strict=True)):
        Z.append(A[-1] @ W.T + b)
        A.append(np.tanh(Z[-1]) if l < len(net.W) - 1 else Z[-1])
    B = X.shape[0]
    P = np.exp(Z[-1] - Z[-1].max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    delta = (P - np.eye(P.shape[1])[y]) / B
    grads: list[np.ndarray] = []
    for l in range(len(net.W) - 1, -1, -1):
        grads[:0] = [delta.T @ A[l], delta.sum(axis=0)]
        if l > 0:
            delta = (delta @ net.W[l]) * (1 - np.tanh(Z[l - 1]) ** 2)
    return grads


@claim("backprop.matrix-form",
       title="Matrix form of backprop, written by hand, equals autodiff",
       statement=r"\delta^{(l)} = \big(W^{(l+1)\top}\delta^{(l+1)}\big)\odot\sigma'(z^{(l)}),\quad "
                 r"\frac{\partial L}{\partial W^{(l)}} = \delta^{(l)}a^{(l-1)\top},\quad "
                 r"\frac{\partial L}{\partial b^{(l)}} = \delta^{(l)}",
       source="Rumelhart, Hinton & Williams (1986); Goodfellow, Bengio & Courville (2016), Alg. 6.4")
def matrix_form(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    sizes = [20, 16, 12, 5] if not ctx.thorough else [64, 64, 64, 64, 10]
    net, X, y = _problem(rng, sizes, batch=8)
    manual = manual_backprop(net, X, y)
    auto = _autodiff_grads(net, X, y)
    errs = [_relative_error(a, m) for a, m in zip(auto, manual, strict=True)]
    measured = max(errs)
    # independent of both: the directional derivative of the loss, by central differences
    params, h, n_dirs = net.params(), 1e-6, 3
    worst_dir = 0.0
    for _ in range(n_dirs):
        V = [rng.standard_normal(p.shape) for p in params]

        def loss_along(t: float, V: list[np.ndarray] = V) -> float:
            return float(cross_entropy(mlp_logits([p + t * v for p, v in zip(params, V, strict=True)], X), y))
        fd = (loss_along(h) - loss_along(-h)) / (2 * h)
        exact = sum(float(np.sum(g * v)) for g, v in zip(manual, V, strict=True))
        scale = np.sqrt(sum(float(np.sum(g * g)) for g in manual) * sum(float(np.sum(v * v)) for v in V))
        worst_dir = max(worst_dir, abs(fd - exact) / scale)
    return Evidence.at_most(
        measured, 1e3 * F64_EPS,
        "the two computations differ only in rounding order: a few hundred ulps of float64",
        f"MLP {sizes}, batch 8; max rel. error per parameter (W1,b1,...) "
        + ", ".join(f"{e:.1e}" for e in errs) + ". The bias gradient is the column sum of Delta "
        f"(Delta^T 1), which the chapter's batched form omits. Along {n_dirs} random directions V the "
        f"hand-written gradient predicts the loss's central difference to {worst_dir:.1e} (of |grad| |V|).",
        cross_checks=(CrossCheck(
            "directional-finite-differences", worst_dir, FD_TOL,
            "|(L(θ+hV)-L(θ-hV))/2h - <grad, V>| / (|grad| |V|), float64, h=1e-6: truncation ~h^2 and "
            "rounding ~eps|L|/h ~ 2e-10; 1e-7 leaves margin"),))


def _softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max())
    return p / p.sum()


def softmax_xent_gradient_closed_form(z: np.ndarray, label: int) -> np.ndarray:
    r"""$\partial(-\log\mathrm{softmax}(z)_y)/\partial z = p - e_y$ (Bridle 1990)."""
    return _softmax(z) - np.eye(len(z))[label]


def softmax_jacobian_closed_form(z: np.ndarray) -> np.ndarray:
    r"""$\partial\,\mathrm{softmax}(z)/\partial z = \mathrm{diag}(p) - pp^\top$."""
    p = _softmax(z)
    return np.diag(p) - np.outer(p, p)


@claim("backprop.softmax-cross-entropy-gradient",
       title="Softmax cross-entropy gradient is p - y",
       statement=r"\frac{\partial}{\partial z}\Big(-\sum_k y_k\log\mathrm{softmax}(z)_k\Big) = p - y",
       source="Bridle (1990); Goodfellow, Bengio & Courville (2016), §6.2.2.3")
def softmax_xent_gradient(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    n = 200 if ctx.thorough else 20
    k_low, k_high = 2, 12
    worst_ad, worst_fd = 0.0, 0.0
    for _ in range(n):
        K = int(rng.integers(k_low, k_high))
        z = 3 * rng.standard_normal(K)
        label = int(rng.integers(K))
        closed = softmax_xent_gradient_closed_form(z, label)

        def loss(zz: np.ndarray, label: int = label) -> float:
            return -dm.log_softmax(zz)[label]
        auto = dm.grad(loss)(z)
        fd = dm.numerical_jacobian(loss, [z.copy()], 0, 1e-6)
        worst_ad = max(worst_ad, float(np.max(np.abs(auto - closed))))
        worst_fd = max(worst_fd, float(np.max(np.abs(fd - closed))))
    return Evidence.at_most(
        worst_ad, 1e2 * F64_EPS,
        "closed form vs autodiff: rounding only (entries are O(1)), so ~100 ulps",
        f"{n} random logit vectors, {k_low}-{k_high - 1} classes; max |autodiff - (p-y)| = {worst_ad:.1e}, "
        f"max |finite diff - (p-y)| = {worst_fd:.1e}",
        cross_checks=(_finite_differences(worst_fd, "max |finite diff - (p-y)|"),))


@claim("backprop.softmax-jacobian",
       title="Softmax Jacobian is diag(p) - p p^T",
       statement=r"\frac{\partial\,\mathrm{softmax}(z)}{\partial z} = \mathrm{diag}(p) - p p^\top",
       source="Bridle (1990); Goodfellow, Bengio & Courville (2016), §6.2.2.3")
def softmax_jacobian(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    worst, worst_fd = 0.0, 0.0
    sizes = (2, 5, 17) + ((64,) if ctx.thorough else ())
    for K in sizes:
        z = 2 * rng.standard_normal(K)
        closed = softmax_jacobian_closed_form(z)
        for mode in ("forward", "reverse"):
            worst = max(worst, float(np.max(np.abs(dm.jacobian(dm.softmax, mode=mode)(z) - closed))))
        fd = dm.numerical_jacobian(dm.softmax, [z.copy()], 0, 1e-6)
        worst_fd = max(worst_fd, float(np.max(np.abs(fd - closed))))
    return Evidence.at_most(
        worst, 1e2 * F64_EPS, "closed form vs autodiff differ by rounding only: ~100 ulps of float64",
        f"K in {sizes}; forward- and reverse-mode Jacobians both checked against diag(p) - pp^T "
        f"(max |difference| {worst:.1e}); finite differences of softmax agree with it to {worst_fd:.1e}. "
        "The rows sum to zero: softmax is invariant to z + c·1.",
        cross_checks=(_finite_differences(worst_fd, "max |finite diff - (diag(p) - pp^T)|"),))


FLOP_TABLE = ("flops as this engine's flop table declares them per primitive (dlmath/autodiff/ops.py): "
              "2mkn per (m,k)x(k,n) matrix product, one per output element for elementwise ops, one per "
              "input element for reductions, zero for shape ops; the matrix-product counts agree with "
              "PyTorch's FlopCounterMode (tests/test_flop_table.py)")


def _mlp_step_flops(sizes: Sequence[int], batch: int, rng: np.random.Generator) -> tuple[int, int]:
    net, X, y = _problem(rng, sizes, batch)
    with dm.count_flops() as c:
        params = [dm.tensor(p, requires_grad=True) for p in net.params()]
        loss = cross_entropy(mlp_logits(params, X, dm.relu), y)
        loss.backward()
    return c.forward, c.backward


GRIEWANK_OMEGA = 4.0


@claim("backprop.cheap-gradient",
       title="Cheap gradient principle, in this engine's flop table: the gradient costs a bounded "
             "multiple of the function",
       statement=r"\mathrm{OPS}\{f,\nabla f\} \le \omega\,\mathrm{OPS}\{f\},\ \omega\le 4,"
                 r"\ \text{independent of the number of parameters}"
                 r"\ (\mathrm{OPS}\ \text{counted with dlmath's per-primitive flop table})",
       source="Baur & Strassen (1983), The complexity of partial derivatives; Griewank & Walther (2008), "
              "Evaluating Derivatives, §4.6")
def cheap_gradient(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    widths = [16, 64, 256, 1024] + ([2048] if ctx.thorough else [])
    rows = []
    for w in widths:
        fwd, bwd = _mlp_step_flops([w, w, w, 10], 32, rng)
        rows.append((w, fwd, bwd, (fwd + bwd) / fwd))
    ratios = [r[3] for r in rows]
    backward_share = min(bwd / fwd for _, fwd, bwd, _ in rows)
    return Evidence.at_most(
        max(ratios), GRIEWANK_OMEGA,
        "Griewank & Walther's bound omega <= 4 on the cost of (f, grad f) relative to f; flops are "
        "counted exactly from the ops on the tape (deterministic)",
        "ReLU MLP [w, w, w, 10], batch 32, softmax cross-entropy; (forward+backward)/forward flops: "
        + ", ".join(f"w={w}: {r:.3f}" for w, _, _, r in rows)
        + f"; parameters grow {widths[-1] ** 2 // widths[0] ** 2}x while the ratio stays bounded. "
        f"Measured in {FLOP_TABLE}. This is an operation count, not a timing.",
        cross_checks=(CrossCheck(
            "backward-counted", backward_share, 1.0,
            "every weight W needs Delta^T A, a product as large as the forward's A W^T, so backward flops "
            "are at least the forward's: a count that missed the backward pass would pass omega <= 4 "
            "vacuously", ">="),),
        figure={"x": widths, "y": ratios, "xlabel": "width", "ylabel": "(fwd+bwd)/fwd flops"})


@claim("backprop.backward-cost-ratio",
       title="In this engine's flop table, the backward pass costs about 2x the forward pass, so a "
             "gradient costs about 3x",
       statement=r"\mathrm{OPS}_{\text{backward}} \approx 2\,\mathrm{OPS}_{\text{forward}}"
                 r"\ \Rightarrow\ \mathrm{OPS}\{f,\nabla f\} \approx 3\,\mathrm{OPS}\{f\}"
                 r"\ (\mathrm{OPS}\ \text{counted with dlmath's per-primitive flop table})",
       source="Catalogue erratum 03-E1; Griewank & Walther (2008), §4.6: each product C=AB needs "
              "two products of the same size backwards",
       erratum=True)
def backward_cost_ratio(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    w = 1024 if not ctx.thorough else 2048
    # the input X needs no gradient, so the first layer's backward skips one product; measure the
    # hidden layers, where the chapter's statement applies, as the difference of two depths
    f3, b3 = _mlp_step_flops([w, w, w, w, 10], 32, rng)
    f2, b2 = _mlp_step_flops([w, w, w, 10], 32, rng)
    per_layer = (b3 - b2) / (f3 - f2)
    total_ratio = 1 + per_layer
    printed_ratio = per_layer  # the text: "backward is only 2x forward", read as the total cost
    return Evidence.at_most(
        abs(total_ratio - 3) / 3, 0.02,
        "a hidden layer's forward is one product (2Bn^2) plus elementwise ops (O(Bn)); its backward is "
        "two products plus O(Bn): the ratio is 3 up to O(1/n) ~ 0.1% at n=1024",
        f"per hidden layer of width {w}: backward/forward = {per_layer:.4f}, "
        f"(forward+backward)/forward = {total_ratio:.4f}. Read as 'a gradient costs 2x a forward pass' "
        f"the printed statement is off by a third; read as 'the backward pass costs 2x' it holds. "
        f"Measured in {FLOP_TABLE}. This is an operation count, not a timing.",
        printed=PrintedForm(
            statement=r"\mathrm{OPS}\{f,\nabla f\} \approx 2\,\mathrm{OPS}\{f\}",
            measured=abs(printed_ratio + 1 - 2) / 2,
            correction_source="Griewank & Walther (2008), §4.6"))


TANGENT_MODE_OMEGA = 3.0


@claim("backprop.forward-vs-reverse-mode",
       title="Forward mode (JVP rules) and reverse mode (VJP rules) give the same Jacobian",
       statement=r"J\in\mathbb R^{m\times n}:\ J = [Je_1,\dots,Je_n] = [J^\top e_1,\dots,J^\top e_m]^\top,"
                 r"\quad \mathrm{OPS}\{f,\dot f\}\le\omega_{\text{tang}}\,\mathrm{OPS}\{f\}",
       source="Griewank & Walther (2008), Evaluating Derivatives, ch. 3 and §4.5; Baydin et al. (2018), "
              "Automatic differentiation in machine learning: a survey")
def forward_vs_reverse(ctx: RunContext) -> Evidence:
    """The columns come from dm.jvp (tangents pushed through each primitive's JVP rule), the rows from
    dm.vjp (cotangents pulled through its VJP rule): two independent rule tables, so a wrong rule in
    either shows up here, and finite differences tell which one is wrong."""
    rng = ctx.rng
    details = []
    worst, worst_fd, worst_cost = 0.0, 0.0, 0.0
    for n, m in ((40, 3), (3, 40)) + (((200, 5), (5, 200)) if ctx.thorough else ()):
        A = rng.standard_normal((m, n)) / np.sqrt(n)

        def f(x: np.ndarray, A: np.ndarray = A) -> dm.Tensor:
            return dm.tanh(A @ dm.sin(x)) * dm.sum(x * x)
        x = rng.standard_normal(n)
        with dm.count_flops() as f_cost:
            f(dm.tensor(x))
        with dm.count_flops() as fwd_cost:
            J_fwd = np.stack([dm.jvp(f, (x,), (e,))[1] for e in np.eye(n)], axis=1)
        with dm.count_flops() as rev_cost:
            _, vjp_fn = dm.vjp(f, x)
            J_rev = np.stack([vjp_fn(e)[0] for e in np.eye(m)], axis=0)
        J_fd = dm.numerical_jacobian(f, [x.copy()], 0, 1e-6)
        worst = max(worst, _relative_error(J_fwd, J_rev))
        worst_fd = max(worst_fd, _relative_error(J_rev, J_fd), _relative_error(J_fwd, J_fd))
        cost = fwd_cost.total / n / f_cost.total
        worst_cost = max(worst_cost, cost)
        details.append(f"n={n}, m={m}: {n} JVPs ({fwd_cost.total:,} flops, {cost:.2f}x f each) vs {m} VJPs "
                       f"({rev_cost.total:,} flops); finite differences agree to "
                       f"{max(_relative_error(J_rev, J_fd), _relative_error(J_fwd, J_fd)):.1e}")
    return Evidence.at_most(
        worst, 1e3 * F64_EPS,
        "the two modes use independent rule tables and sum in different orders: rounding only",
        "; ".join(details) + ". Reverse mode wins when m < n (a loss: m = 1), forward mode when n < m.",
        cross_checks=(
            _finite_differences(worst_fd, "max relative |J - J_finite_diff| over both modes"),
            CrossCheck("jvp-cost", worst_cost, TANGENT_MODE_OMEGA,
                       "flops of one JVP over flops of f, in this engine's flop table (one flop per element "
                       "for elementwise ops, transcendentals included): Griewank & Walther's tangent-mode "
                       "bound is 5/2 in their cost model; 3 allows for the table's cheaper transcendentals")))


def _flat_mlp_loss(sizes: Sequence[int], X: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], dm.Tensor]:
    shapes = [s for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True) for s in ((n_out, n_in), (n_out,))]

    def loss(theta: np.ndarray | dm.Tensor) -> dm.Tensor:
        params, k = [], 0
        for s in shapes:
            size = int(np.prod(s))
            params.append(dm.reshape(theta[k:k + size], s))
            k += size
        return cross_entropy(mlp_logits(params, X), y)
    loss.n_params = sum(int(np.prod(s)) for s in shapes)  # type: ignore[attr-defined]
    return loss


@claim("backprop.hvp-finite-differences",
       title="Hessian-vector products agree with finite differences of gradients",
       statement=r"\nabla^2 f(x)\,v = \lim_{h\to0}\frac{\nabla f(x+hv)-\nabla f(x-hv)}{2h}",
       source="Pearlmutter (1994), Fast exact multiplication by the Hessian")
def hvp_finite_differences(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    sizes = [5, 6, 3] if not ctx.thorough else [10, 12, 12, 4]
    X, y = rng.standard_normal((4, sizes[0])), rng.integers(0, sizes[-1], 4)
    f = _flat_mlp_loss(sizes, X, y)
    theta = rng.standard_normal(f.n_params) * 0.5  # type: ignore[attr-defined]
    h = 1e-5
    worst = 0.0
    g = dm.grad(f)
    n_dirs = 3 if not ctx.thorough else 10
    for _ in range(n_dirs):
        v = rng.standard_normal(theta.shape)
        hv = dm.hvp(f, theta, v)
        fd = (g(theta + h * v) - g(theta - h * v)) / (2 * h)
        worst = max(worst, _relative_error(hv, fd))
    return Evidence.at_most(
        worst, 1e-6,
        "central differences of float64 gradients with h=1e-5: truncation ~h^2 ~ 1e-10 and rounding "
        "~eps/h ~ 1e-11, relative; 1e-6 leaves margin",
        f"tanh MLP {sizes} as a function of its {theta.size} parameters; {n_dirs} random directions; "
        f"max relative error {worst:.1e}")


@claim("backprop.hessian-symmetry",
       title="The Hessian computed by reverse-over-reverse is symmetric",
       statement=r"\nabla^2 f = (\nabla^2 f)^\top\quad(f\in C^2,\ \text{Schwarz})",
       source="Schwarz–Clairaut theorem; Pearlmutter (1994)")
def hessian_symmetry(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    sizes = [4, 5, 3] if not ctx.thorough else [6, 8, 4]
    X, y = rng.standard_normal((4, sizes[0])), rng.integers(0, sizes[-1], 4)
    f = _flat_mlp_loss(sizes, X, y)
    theta = rng.standard_normal(f.n_params) * 0.5  # type: ignore[attr-defined]
    H = dm.hessian(f)(theta)
    scale = float(np.max(np.abs(H)))
    asym = float(np.max(np.abs(H - H.T))) / scale
    # symmetry alone passes with a rule that is wrong at second order in a symmetric way (a derivative
    # factor treated as a constant when the rule is differentiated again): compare every column of H
    # with central differences of the gradient, which use first-order rules only
    g, h = dm.grad(f), 1e-5
    H_fd = np.stack([(g(theta + h * e) - g(theta - h * e)) / (2 * h) for e in np.eye(theta.size)], axis=1)
    fd_err = float(np.max(np.abs(H - H_fd))) / scale
    eig = np.linalg.eigvalsh((H + H.T) / 2)
    return Evidence.at_most(
        asym, 1e3 * F64_EPS,
        "the two triangles come from different reverse passes: they agree up to rounding (~1000 ulps)",
        f"Hessian of a tanh MLP loss in its {theta.size} parameters; max |H - H^T| / max |H| = {asym:.1e}; "
        f"max |H - H_fd| / max |H| = {fd_err:.1e} (H_fd: central differences of the gradient, one column "
        f"per parameter); eigenvalues range [{eig.min():.3f}, {eig.max():.3f}] (indefinite: the loss is "
        "not convex)",
        cross_checks=(CrossCheck(
            "finite-difference-hessian", fd_err, 1e-6,
            "central differences of float64 gradients with h=1e-5: truncation ~h^2 ~ 1e-10 and rounding "
            "~eps/h ~ 1e-11, relative to max |H|; 1e-6 leaves margin"),))


def _gradcheck_errors(dtype: type, steps: Sequence[float], rng: np.random.Generator) -> list[float]:
    """Max relative error of central differences vs autodiff, in ``dtype``, for each step h."""
    net, X, y = _problem(rng, [6, 8, 4], batch=5)
    theta0 = [p.astype(dtype) for p in net.params()]
    Xd = X.astype(dtype)
    exact = _autodiff_grads(net, X, y)[0]  # float64 reference for W1

    def loss(W: np.ndarray) -> float:
        return float(cross_entropy(mlp_logits([W, *theta0[1:]], Xd), y))
    errors = []
    for h in steps:
        fd = np.zeros_like(exact)
        for idx in np.ndindex(*exact.shape):
            plus, minus = theta0[0].copy(), theta0[0].copy()
            plus[idx] += dtype(h)
            minus[idx] -= dtype(h)
            # the step actually taken is the representable difference, as a careful checker uses
            fd[idx] = (loss(plus) - loss(minus)) / float(plus[idx] - minus[idx])
        errors.append(_relative_error(fd, exact))
    return errors


@claim("backprop.gradcheck-float64",
       title="Gradient checking in float64: central differences agree to about 1e-8 relative or better",
       statement=r"\Big|\tfrac{f(x+h e_i)-f(x-h e_i)}{2h}-\partial_i f\Big| = O(h^2)+O(\epsilon/h),"
                 r"\ \epsilon_{64}\approx2.2\times10^{-16}",
       source="Nocedal & Wright (2006), Numerical Optimization, §8.1; CS231n notes, gradient checks")
def gradcheck_float64(ctx: RunContext) -> Evidence:
    steps = [1e-4, 1e-5, 1e-6, 1e-7]
    errors = _gradcheck_errors(np.float64, steps, ctx.rng)
    at_1e6 = errors[steps.index(1e-6)]
    return Evidence.at_most(
        at_1e6, 1e-8,
        "float64: truncation h^2|f'''|/6 ~ 1e-12 plus rounding eps|f|/h ~ 2e-10 at h=1e-6",
        "max relative error over dL/dW1 by step h: "
        + ", ".join(f"h={h:g}: {e:.1e}" for h, e in zip(steps, errors, strict=True)))


GRADCHECK_TOL = 1e-8  # the float64 gradcheck tolerance (backprop.gradcheck-float64)


@claim("backprop.gradcheck-float32",
       title="Gradient checks in float32 cannot reach float64 tolerances: rounding dominates",
       statement=r"\mathrm{err}(h) \approx a h^2 + \frac{b}{h},\ b \propto \epsilon_{32}:\ "
                 r"\min_h \mathrm{err}(h) = 3a^{1/3}(b/2)^{2/3} \sim \epsilon_{32}^{2/3} \approx 2.4\times10^{-5}"
                 r"\gg 10^{-8}\ \text{at}\ h^*=(b/2a)^{1/3}\sim\epsilon_{32}^{1/3}",
       source="Nocedal & Wright (2006), §8.1 (optimal step of central differences)")
def gradcheck_float32(ctx: RunContext) -> Evidence:
    steps = [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-5]
    errors = _gradcheck_errors(np.float32, steps, ctx.rng)
    errors64 = _gradcheck_errors(np.float64, steps, ctx.rng)  # the same network (same seed)
    best = min(errors)
    # the two constants of the error model, each measured where the other term is negligible:
    # a (truncation, |f'''|/6 relative) from float64 at h=1e-2, where rounding is ~1e-14;
    # b (rounding, ~eps32 |f|/|f'| per evaluation) from float32 at the smallest step, where a h^2 ~ 1e-10
    h_a, h_b = 1e-2, steps[-1]
    a = errors64[steps.index(h_a)] / h_a ** 2
    b = errors[-1] * h_b
    predicted = 3 * a ** (1 / 3) * (b / 2) ** (2 / 3)
    h_star = (b / (2 * a)) ** (1 / 3)
    return Evidence.at_most(
        abs(np.log10(best / predicted)), 0.5,
        "the model's minimum, from a and b measured at the ends of the step range (not at the best step), "
        "predicts the best error on the grid. Above it: the half-decade grid leaves the best step up to "
        "10^0.25 from h*, where the model is at most 1.43x its minimum (0.16 decades). Below it: the model "
        "adds the maxima of the two error terms, which fall on different entries and partly cancel, and "
        "the rounding maximum scatters ~2x between steps (0.2 decades through the 2/3 power). Hence "
        "0.5 decades (60 seeds span -0.35..+0.17), where the bare eps32^(2/3) needed 1.5",
        "float32 max relative error by step h: "
        + ", ".join(f"h={h:g}: {e:.1e}" for h, e in zip(steps, errors, strict=True))
        + f". Truncation a = {a:.2f} (float64, h={h_a:g}), rounding b = {b / F32_EPS:.1f} eps32 "
        f"(float32, h={h_b:g}): the model's minimum {predicted:.1e} at h* = {h_star:.1e} "
        f"(eps32^(2/3) = {F32_EPS ** (2 / 3):.1e}); measured best {best:.1e}. A float32 gradcheck at "
        f"rtol {GRADCHECK_TOL:g} fails for every h although the gradient is right (float64 reaches "
        f"{min(errors64):.1e}); check in float64 instead (dm.gradcheck does).",
        cross_checks=(
            CrossCheck("float64-gradient-right", min(errors64), GRADCHECK_TOL,
                       "the same check in float64 agrees: the float32 error is rounding, not a wrong "
                       "gradient (float64 rounding eps64/h ~ 2e-11 at h=1e-5)"),
            CrossCheck("float32-misses-tolerance", best, GRADCHECK_TOL,
                       "no step brings float32 central differences within the float64 tolerance", ">="),
            CrossCheck("rounding-is-eps32", b / F32_EPS, 100.0,
                       "b = beta eps32 with beta = O(1): a loss of O(1) rounded in float32 loses a few "
                       "ulps per evaluation, divided by gradient entries of O(0.1); beta <= 100 ties the "
                       "minimum to eps32^(2/3)"),
        ))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


@claim("backprop.mse-output-gradient",
       title="With a sigmoid output and MSE loss, the output error is (2/m)(A-Y)*sigma'(Z), not A-Y",
       statement=r"L=\tfrac1m\|A-Y\|^2,\ A=\sigma(Z):\ \frac{\partial L}{\partial Z}=\tfrac2m(A-Y)\odot\sigma'(Z)",
       source="Catalogue 03 code finding (High): A-Y is the gradient of binary cross-entropy, not of MSE",
       erratum=True)
def mse_output_gradient(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    m = 16
    Z = rng.standard_normal((m, 1)) * 2
    Y = rng.integers(0, 2, size=(m, 1)).astype(float)
    A = _sigmoid(Z)
    auto_mse = dm.grad(lambda z: dm.mean((dm.sigmoid(z) - Y) ** 2))(Z)
    corrected = (2 / m) * (A - Y) * A * (1 - A)
    printed = A - Y
    # printed A-Y is the gradient of the summed binary cross-entropy: show it
    auto_bce = dm.grad(lambda z: -dm.sum(Y * dm.log(dm.sigmoid(z)) + (1 - Y) * dm.log(1 - dm.sigmoid(z))))(Z)
    err_corrected = _relative_error(corrected, auto_mse)
    err_printed = _relative_error(printed, auto_mse)
    err_bce = _relative_error(printed, auto_bce)
    fd = dm.numerical_jacobian(lambda z: np.mean((_sigmoid(z) - Y) ** 2), [Z.copy()], 0, 1e-6).reshape(Z.shape)
    err_fd = _relative_error(fd, corrected)
    return Evidence.at_most(
        err_corrected, 1e2 * F64_EPS, "closed form vs autodiff: rounding only",
        f"printed A-Y is off by {err_printed:.2f} relative from the MSE gradient, but equals the gradient "
        f"of binary cross-entropy to {err_bce:.1e}: the chapter's code trains BCE while reporting MSE. "
        f"Central differences of the NumPy MSE agree with the corrected form to {err_fd:.1e}.",
        cross_checks=(
            _finite_differences(err_fd, "max relative |finite diff - (2/m)(A-Y) sigma'(Z)|"),
            CrossCheck("printed-is-bce-gradient", err_bce, 1e2 * F64_EPS,
                       "A - Y vs autodiff of summed binary cross-entropy: rounding only")),
        printed=PrintedForm(statement=r"\partial L/\partial Z = A - Y", measured=err_printed,
                            correction_source="direct differentiation of (1/m)||sigma(Z)-Y||^2"))
