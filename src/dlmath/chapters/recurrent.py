r"""Chapter 9 — Recurrent networks: the Elman RNN, BPTT, vanishing and exploding gradients, LSTM and GRU.

The layers under test are ``dlmath.nn.RNN / LSTM / GRU`` and their fused scan primitives
(``dlmath.nn.recurrent_ops``). Oracles: PyTorch's layers with the same weights, central finite differences,
hand-written NumPy recursions, closed forms (products of Jacobians, products of forget gates, parameter
counts, matrix-product flop counts) and SciPy/NumPy linear algebra (spectral norms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import dlmath as dm

from ..measure import max_relative_error as _rel
from ..nn import GRU, LSTM, RNN
from ..nn import recurrent_ops as ro
from ..nn.utils import clip_grad_norm_
from ..verify import CrossCheck, Evidence, PrintedForm, RunContext, claim

F64_EPS = float(np.finfo(np.float64).eps)
TIGHT = 1e-10
TIGHT_REASON = "float64 recurrences of <= 50 steps: rounding ~1e-15 per step, 1e-10 leaves a wide margin"
FD_TOL = 1e-6
FD_REASON = ("central differences in float64 with h=1e-6: truncation ~h^2 and rounding ~eps/h ~ 2e-10 relative, "
             "times the loss scale; 1e-6 leaves margin")


def _torch(ctx: RunContext) -> Any:
    """PyTorch as an extra oracle under --thorough, when installed: importing it costs seconds, and it is a
    test dependency only (the main job installs dlmath alone). The default run relies on the hand-written
    recursions and finite differences."""
    if not ctx.thorough:
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def _torch_cross_checks(kind: str, ctx: RunContext, rng: np.random.Generator, **kw: Any) -> tuple[
        tuple[CrossCheck, ...], str]:
    """nn.<kind> vs torch's layer with the same weights (forward, every gradient) as cross-checks, when torch runs."""
    torch = _torch(ctx)
    if torch is None:
        return (), "torch comparison: run with --thorough (and torch installed)"
    fwd, bwd = _layer_vs_torch(torch, kind, rng, **kw)
    return ((CrossCheck("torch-forward", fwd, TIGHT, TIGHT_REASON),
             CrossCheck("torch-gradients", bwd, TIGHT, TIGHT_REASON)),
            f"{kw} nn.{kind} vs torch: forward {fwd:.1e}, every gradient {bwd:.1e}")


def _copy_to_dlmath(tm: Any, m: Any) -> Any:
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return m


def _layer_vs_torch(torch: Any, kind: str, rng: np.random.Generator, **kw: Any) -> tuple[float, float]:
    """Largest relative differences (outputs and final states; every gradient) between dlmath's layer and
    torch's with the same weights, float64."""
    torch.manual_seed(int(rng.integers(2**31)))
    tcls = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[kind]
    cls = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[kind]
    tm = tcls(3, 5, **kw).double()
    m = _copy_to_dlmath(tm, cls(3, 5, dtype=np.float64, **kw))
    x = rng.standard_normal((7, 2, 3))
    tx, xx = torch.tensor(x, requires_grad=True), dm.tensor(x, requires_grad=True)
    tout, th = tm(tx)
    out, h = m(xx)
    th, h = (th if isinstance(th, tuple) else (th,)), (h if isinstance(h, tuple) else (h,))
    fwd = max([_rel(out.data, tout.detach().numpy())]
              + [_rel(a.data, b.detach().numpy()) for a, b in zip(h, th, strict=True)])
    (sum((o ** 2).sum() for o in (tout, *th))).backward()
    (sum((o ** 2).sum() for o in (out, *h))).backward()
    params = dict(m.named_parameters())
    bwd = max([_rel(xx.grad.data, tx.grad.numpy())]
              + [_rel(params[k].grad.data, p.grad.numpy()) for k, p in tm.named_parameters()])
    return fwd, bwd


# ----- the Elman recurrence and BPTT by hand (the chapter's formulas, NumPy) ---------------------------------
def elman_states(W_hh: np.ndarray, W_xh: np.ndarray, b: np.ndarray, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    r"""$h_t = \tanh(W_{hh}h_{t-1} + W_{xh}x_t + b)$ for t = 1..T (Elman 1990), x (T, d_x) -> (T, d_h)."""
    hs, h = [], h0
    for xt in x:
        h = np.tanh(W_hh @ h + W_xh @ xt + b)
        hs.append(h)
    return np.array(hs)


def hidden_jacobian_product(hs: np.ndarray, W_hh: np.ndarray, k: int, t: int) -> np.ndarray:
    r"""$\partial h_t/\partial h_k = \prod_{i=t}^{k+1}\mathrm{diag}(1-h_i^2)\,W_{hh}$ in numerator layout, the
    factors ordered from i = t on the left down to i = k+1 on the right (hs[i-1] is $h_i$)."""
    J = np.eye(W_hh.shape[0])
    for i in range(k + 1, t + 1):
        J = (1 - hs[i - 1] ** 2)[:, None] * W_hh @ J
    return J


def printed_jacobian_product(hs: np.ndarray, W_hh: np.ndarray, k: int, t: int) -> np.ndarray:
    r"""The printed form $\prod_{i=k+1}^{t} W_{hh}^\top\mathrm{diag}(\tanh'(a_i))$, multiplied left to right in the
    printed order (denominator layout, reversed order)."""
    J = np.eye(W_hh.shape[0])
    for i in range(k + 1, t + 1):
        J = J @ (W_hh.T * (1 - hs[i - 1] ** 2)[None, :])
    return J


def bptt_by_hand(W_hh: np.ndarray, W_xh: np.ndarray, b: np.ndarray, x: np.ndarray, h0: np.ndarray,
                 targets: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    r"""BPTT for $\mathcal L = \sum_t \tfrac12\|h_t - y_t\|^2$ by the chapter's recursion
    $\partial\mathcal L/\partial h_t = \partial\mathcal L_t/\partial h_t + \partial\mathcal L/\partial h_{t+1}\,
    \partial h_{t+1}/\partial h_t$; returns $\partial\mathcal L/\partial W_{hh} = \sum_t \delta_t h_{t-1}^\top$ and
    the per-step terms (Werbos 1990)."""
    hs = elman_states(W_hh, W_xh, b, x, h0)
    T = len(hs)
    dh_next = np.zeros_like(h0)
    terms = []
    for t in range(T - 1, -1, -1):
        dh = (hs[t] - targets[t]) + dh_next
        delta = dh * (1 - hs[t] ** 2)
        h_prev = hs[t - 1] if t > 0 else h0
        terms.append(np.outer(delta, h_prev))
        dh_next = W_hh.T @ delta
    return sum(terms), terms[::-1]


def _elman_problem(rng: np.random.Generator, T: int = 8, dh: int = 4, dx: int = 3) -> dict[str, np.ndarray]:
    return {"W_hh": rng.standard_normal((dh, dh)) * 0.6, "W_xh": rng.standard_normal((dh, dx)) * 0.6,
            "b": rng.standard_normal(dh) * 0.3, "x": rng.standard_normal((T, dx)), "h0": rng.standard_normal(dh),
            "y": rng.standard_normal((T, dh))}


def _engine_hT(W_hh: Any, xg: np.ndarray, h0: Any) -> Any:
    """h_T of the Elman recurrence on the engine's fused scan (batch of one)."""
    return ro.rnn_scan(xg[:, None, :], h0[None] if not isinstance(h0, dm.Tensor) else h0.reshape(1, -1),
                       W_hh)[-1, 0]


def _jacobian_norms(W: np.ndarray, xg: np.ndarray, h0: np.ndarray) -> np.ndarray:
    r"""$\|\partial h_t/\partial h_0\|_2$ for t = 1..T, each Jacobian taken by the engine (forward mode)."""
    norms = []
    for t in range(1, len(xg) + 1):
        J = dm.jacobian(lambda h, t=t: _engine_hT(W, xg[:t], h), mode="forward")(h0)
        norms.append(np.linalg.norm(np.asarray(J), 2))
    return np.array(norms)


# ----- claims --------------------------------------------------------------------------------------------------
@claim("recurrent.elman-equations",
       title="The Elman recurrence h_t = tanh(W_hh h_{t-1} + W_xh x_t + b) is nn.RNN",
       statement=r"h_t=\tanh(W_{hh}h_{t-1}+W_{xh}x_t+b_h),\quad b_h = b_{ih}+b_{hh}\ \text{in PyTorch}",
       source="Elman (1990), Finding structure in time; PyTorch nn.RNN documentation (two biases)")
def elman_equations(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    m = RNN(3, 4, dtype=np.float64, generator=rng)
    x = rng.standard_normal((9, 1, 3))
    sd = m.state_dict()
    hand = elman_states(sd["weight_hh_l0"], sd["weight_ih_l0"], sd["bias_ih_l0"] + sd["bias_hh_l0"], x[:, 0],
                        np.zeros(4))
    out, _ = m(x)
    main = _rel(out.data[:, 0], hand)
    checks, note = _torch_cross_checks("RNN", ctx, rng, num_layers=2, bidirectional=True)
    return Evidence.at_most(main, TIGHT, TIGHT_REASON, details=f"nn.RNN vs the formula by hand: {main:.1e}; {note}",
                            cross_checks=checks)


@claim("recurrent.bptt-sum-over-time",
       title="BPTT: the gradient is the sum over time of per-step terms, and equals finite differences",
       statement=r"\frac{\partial\mathcal L}{\partial h_t}=\frac{\partial\mathcal L_t}{\partial h_t}+"
                 r"\frac{\partial\mathcal L}{\partial h_{t+1}}\frac{\partial h_{t+1}}{\partial h_t},\quad"
                 r"\frac{\partial\mathcal L}{\partial W_{hh}}=\sum_t \delta_t h_{t-1}^\top",
       source="Werbos (1990), Backpropagation through time: what it does and how to do it; "
              "Rumelhart, Hinton & Williams (1986)")
def bptt_sum_over_time(ctx: RunContext) -> Evidence:
    p = _elman_problem(ctx.rng, T=12 if ctx.thorough else 8)
    xg = p["x"] @ p["W_xh"].T + p["b"]

    def loss(W: Any) -> Any:
        S = ro.rnn_scan(xg[:, None, :], p["h0"][None], W)[:, 0]
        return 0.5 * ((S - p["y"]) ** 2).sum()

    g_engine = np.asarray(dm.grad(loss)(p["W_hh"]))
    g_hand, terms = bptt_by_hand(p["W_hh"], p["W_xh"], p["b"], p["x"], p["h0"], p["y"])
    main = _rel(g_engine, g_hand)
    h = 1e-6
    fd = np.zeros_like(p["W_hh"])
    for idx in np.ndindex(*fd.shape):
        e = np.zeros_like(fd)
        e[idx] = h
        fd[idx] = (float(loss(p["W_hh"] + e)) - float(loss(p["W_hh"] - e))) / (2 * h)
    fd_err = _rel(g_engine, fd)
    last_share = float(np.linalg.norm(terms[-1]) / np.linalg.norm(g_hand))
    return Evidence.at_most(
        main, TIGHT, TIGHT_REASON,
        details=f"T={len(terms)}: engine (fused rnn_scan BPTT rule) vs the per-step recursion summed by hand "
                f"{main:.1e}; vs central differences {fd_err:.1e}; the last step's term alone is "
                f"{last_share:.2f} of the gradient's norm (the sum matters)",
        cross_checks=(CrossCheck("finite-differences", fd_err, FD_TOL, FD_REASON),))


@claim("recurrent.jacobian-ordered-product",
       title="dh_t/dh_k is the ordered product of diag(tanh') W_hh (numerator layout); the printed form is its "
             "transpose",
       statement=r"\frac{\partial h_t}{\partial h_k}=\prod_{i=t}^{k+1}\mathrm{diag}(\tanh'(a_i))\,W_{hh}"
                 r"\quad(\text{printed: }\prod_{i=k+1}^{t}W_{hh}^\top\mathrm{diag}(\tanh'(a_i)))",
       source="Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural networks, eq. 5 "
              "(numerator layout, i from t down to k+1)",
       erratum=True)
def jacobian_ordered_product(ctx: RunContext) -> Evidence:
    p = _elman_problem(ctx.rng, T=6)
    hs = elman_states(p["W_hh"], p["W_xh"], p["b"], p["x"], p["h0"])
    xg = p["x"] @ p["W_xh"].T + p["b"]
    k, t = 1, len(hs)
    J = np.asarray(dm.jacobian(lambda h: _engine_hT(p["W_hh"], xg[k:t], h))(hs[k - 1]))
    main = _rel(hidden_jacobian_product(hs, p["W_hh"], k, t), J)
    printed = printed_jacobian_product(hs, p["W_hh"], k, t)
    printed_err = _rel(printed, J)
    transpose_err = _rel(printed.T, J)
    norm_gap = abs(np.linalg.norm(printed, 2) - np.linalg.norm(J, 2)) / np.linalg.norm(J, 2)
    return Evidence.at_most(
        main, TIGHT, TIGHT_REASON,
        details=f"dh_{t}/dh_{k} by the engine's jacobian vs the ordered product diag(1-h_i^2) W_hh: {main:.1e}; "
                f"the printed W^T diag product differs by {printed_err:.2f} (relative), its transpose by "
                f"{transpose_err:.1e}; spectral norms agree to {norm_gap:.1e} (the erratum does not change norms)",
        cross_checks=(CrossCheck("printed-is-the-transpose", transpose_err, TIGHT, TIGHT_REASON),),
        printed=PrintedForm(r"\prod_{i=k+1}^{t}W_{hh}^\top\mathrm{diag}(\tanh'(a_i))", printed_err,
                            "Pascanu, Mikolov & Bengio (2013), eq. 5"))


@claim("recurrent.vanishing-bound",
       title="||dh_T/dh_k|| <= (||W_hh|| max|f'|)^(T-k): with ||W_hh|| = 0.9 gradients vanish geometrically",
       statement=r"\Big\|\frac{\partial h_T}{\partial h_k}\Big\|_2\le(\|W_{hh}\|_2\,\gamma)^{T-k},\ "
                 r"\gamma=\max|\tanh'|=1",
       source="Bengio, Simard & Frasconi (1994); Pascanu, Mikolov & Bengio (2013), sec. 2.1 (sufficient condition)")
def vanishing_bound(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    H, T = 6, 30 if ctx.thorough else 20
    A = rng.standard_normal((H, H))
    W = 0.9 * A / np.linalg.norm(A, 2)
    xg = rng.standard_normal((T, H)) * 0.5
    norms = _jacobian_norms(W, xg, rng.standard_normal(H) * 0.5)
    steps = np.arange(1, T + 1)
    bound = 0.9 ** steps
    worst = float(np.max(norms / bound))
    rate = float(np.polyfit(steps, np.log(norms), 1)[0])
    return Evidence.at_most(
        worst, 1 + 1e-10, "an inequality between float64 numbers: equality only up to rounding (1e-10)",
        details=f"||W_hh||_2 = 0.9, T = 1..{T}: max ||dh_T/dh_0|| / 0.9^T = {worst:.3f}; fitted rate "
                f"d log||J|| / dT = {rate:.3f} <= log 0.9 = {np.log(0.9):.3f} (tanh' < 1 makes it faster); "
                f"||dh_{T}/dh_0|| = {norms[-1]:.1e}",
        cross_checks=(CrossCheck("fitted-rate", rate, float(np.log(0.9)) + 1e-9,
                                 "the least-squares slope of log||J|| over T cannot exceed log(||W|| gamma)"),),
        figure={"T": steps.tolist(), "jacobian_norm": norms.tolist(), "bound": bound.tolist()})


@claim("recurrent.rate-vs-spectral-radius",
       title="Gradient norms grow or shrink like rho(W_hh)^T in the linear regime: vanishing below 1, exploding "
             "above",
       statement=r"\frac{d}{dT}\log\Big\|\frac{\partial h_T}{\partial h_0}\Big\|\to\log\rho(W_{hh})\ "
                 r"\text{when }\tanh'\approx1",
       source="Pascanu, Mikolov & Bengio (2013), sec. 2.1; Bengio, Simard & Frasconi (1994)")
def rate_vs_spectral_radius(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    H, T = 5, 12
    A = rng.standard_normal((H, H))
    Q = np.linalg.qr(A)[0]
    radii = [0.5, 0.9, 1.1, 2.0] if not ctx.thorough else [0.3, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0]
    steps = np.arange(1, T + 1)
    worst, saturated_excess, rows = 0.0, -np.inf, []
    for rho in radii:
        W = Q @ np.diag(rho * np.linspace(1, 0.5, H)) @ Q.T  # symmetric: ||W||_2 = rho(W) = rho
        lin = _jacobian_norms(W, np.zeros((T, H)), np.zeros(H))  # h stays 0, tanh'(0) = 1: J = W^T exactly
        rate = float(np.polyfit(steps, np.log(lin), 1)[0])
        worst = max(worst, abs(rate - np.log(rho)))
        sat = _jacobian_norms(W, rng.standard_normal((T, H)) * 2.0, rng.standard_normal(H))
        sat_rate = float(np.polyfit(steps, np.log(sat), 1)[0])
        saturated_excess = max(saturated_excess, sat_rate - np.log(rho))
        rows.append(f"rho={rho}: rate {rate:.4f} (log rho {np.log(rho):.4f}), with inputs {sat_rate:.3f}")
    return Evidence.at_most(
        worst, 1e-8, "at h = 0 the Jacobian is exactly W^T; the fitted slope of log rho^T is exact up to rounding",
        details="; ".join(rows),
        cross_checks=(CrossCheck("saturation-only-slows", saturated_excess, 1e-9,
                                 "with inputs, tanh' < 1: the rate cannot exceed log rho (W symmetric)"),))


@claim("recurrent.exploding-needs-more-than-norm",
       title="||W_hh|| > 1 does not imply exploding gradients: saturated tanh makes them vanish",
       statement=r"\|W_{hh}\|>1\ \text{is necessary for exploding gradients, not sufficient}",
       source="Pascanu, Mikolov & Bengio (2013), sec. 2.1: lambda_1 > 1/gamma is only necessary",
       erratum=True)
def exploding_needs_more_than_norm(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    H, T = 5, 20
    Q = np.linalg.qr(rng.standard_normal((H, H)))[0]
    W = 2.0 * Q  # ||W||_2 = 2
    big = rng.choice([-1.0, 1.0], size=(T, H)) * 8.0  # pre-activations ~ +-8: tanh' ~ 4e-7
    sat = _jacobian_norms(W, big, np.zeros(H))[-1]
    lin = _jacobian_norms(W, np.zeros((T, H)), np.zeros(H))[-1]
    return Evidence.at_most(
        sat, 1e-3, "a counterexample needs ||dh_T/dh_0|| well below 1; it is ~1e-100 here",
        details=f"||W_hh||_2 = 2, T = {T}: with saturating inputs ||dh_T/dh_0|| = {sat:.1e}; the same W at h = 0 "
                f"(tanh' = 1) gives {lin:.1e} = 2^{T}",
        cross_checks=(CrossCheck("explodes-when-unsaturated", lin, 2.0 ** T * (1 - 1e-9),
                                 "at h = 0 the Jacobian is W^T, norm 2^T exactly", ">="),),
        printed=PrintedForm(r"\|W_{hh}\|>1\Rightarrow\|\partial h_T/\partial h_0\|\ \text{grows like}\ "
                            r"\|W_{hh}\|^T", 2.0 ** T, "Pascanu, Mikolov & Bengio (2013), sec. 2.1"))


def _lstm_with(H: int, forget_bias: float, input_bias: float, rng: np.random.Generator) -> LSTM:
    """A one-layer LSTM with W_hh = 0 (only the direct cell path couples steps) and chosen gate biases."""
    m = LSTM(H, H, dtype=np.float64, generator=rng)
    with dm.no_grad():
        m.weight_hh_l0.data[...] = 0
        m.bias_hh_l0.data[...] = 0
        m.bias_ih_l0.data[H:2 * H] = forget_bias
        m.bias_ih_l0.data[:H] = input_bias
    return m


def _cell_gradient(m: LSTM, x: np.ndarray, c0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dc_0 for L = sum(c_T), c_T) through the layer."""
    c = dm.tensor(c0[None, None], requires_grad=True)
    _, (_, cT) = m(x[:, None, :], (np.zeros((1, 1, c0.size)), c))
    cT.sum().backward()
    return c.grad.data[0, 0], cT.data[0, 0]


@claim("recurrent.forget-gate-product",
       title="The LSTM cell path carries the product of forget gates: gates in (0,1) shrink gradients",
       statement=r"\frac{\partial c_T}{\partial c_0}\Big|_{\text{direct}}=\prod_{t=1}^{T}\mathrm{diag}(f_t)\quad"
                 r"(\text{so }f\approx0.5\text{ vanishes like }0.5^T)",
       source="Gers, Schmidhuber & Cummins (2000), Learning to forget; Jozefowicz, Zaremba & Sutskever (2015) "
              "(forget-bias initialisation)",
       erratum=True)
def forget_gate_product(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    H, T = 4, 30
    x = rng.standard_normal((T, H)) * 0.1
    m = _lstm_with(H, 0.0, 0.0, rng)
    g, _ = _cell_gradient(m, x, rng.standard_normal(H))
    sd = m.state_dict()
    pre_f = x @ sd["weight_ih_l0"][H:2 * H].T + sd["bias_ih_l0"][H:2 * H]
    product = np.prod(1 / (1 + np.exp(-pre_f)), axis=0)
    main = _rel(g, product)
    m5 = _lstm_with(H, 5.0, 0.0, rng)
    g5, _ = _cell_gradient(m5, x, rng.standard_normal(H))
    printed_err = _rel(np.ones(H), g)  # "gates in (0,1) keep the gradient": it would stay ~1
    return Evidence.at_most(
        main, TIGHT, TIGHT_REASON,
        details=f"T = {T}, W_hh = 0: dc_T/dc_0 by the engine vs the product of forget gates {main:.1e}; with "
                f"forget pre-activations ~0 the gradient is {np.mean(g):.1e} (~0.5^{T} = {0.5 ** T:.1e}); with "
                f"forget bias +5 it is {np.min(g5):.3f} (sigma(5)^{T} = {(1 / (1 + np.exp(-5))) ** T:.3f})",
        cross_checks=(CrossCheck("forget-bias-5-keeps-gradient", float(np.min(g5)), 0.75,
                                 "sigma(5)^30 = 0.818 and the inputs move the gate by < 0.1", ">="),),
        printed=PrintedForm(r"f,i,o\in(0,1)\Rightarrow\text{the LSTM gradient does not vanish}", printed_err,
                            "Gers, Schmidhuber & Cummins (2000); Jozefowicz et al. (2015)"))


@claim("recurrent.constant-error-carousel",
       title="Forget gate 1, input gate 0: the cell state and its gradient pass unchanged (constant error "
             "carousel)",
       statement=r"f_t=1,\ i_t=0\ \Rightarrow\ c_T=c_0,\ \frac{\partial\mathcal L}{\partial c_0}="
                 r"\frac{\partial\mathcal L}{\partial c_T}",
       source="Hochreiter & Schmidhuber (1997), Long short-term memory (the CEC: no forget gate, i.e. f = 1)")
def constant_error_carousel(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    H, T = 4, 100
    m = _lstm_with(H, 50.0, -50.0, rng)  # sigma(50) = 1 and sigma(-50) ~ 2e-22 in float64
    c0 = rng.standard_normal(H)
    g, cT = _cell_gradient(m, rng.standard_normal((T, H)) * 0.1, c0)
    main = float(np.max(np.abs(g - 1)))
    return Evidence.at_most(
        main, 1e-12, "the gates are 1 and ~2e-22 in float64: the chain is exact up to rounding",
        details=f"T = {T}: max |dL/dc_0 - dL/dc_T| = {main:.1e}; max |c_T - c_0| = {np.max(np.abs(cT - c0)):.1e}",
        cross_checks=(CrossCheck("state-carried", float(np.max(np.abs(cT - c0))), 1e-12,
                                 "c_T = c_0 + sum of i*g terms ~ 1e-20"),))


def lstm_states(W_ih: np.ndarray, W_hh: np.ndarray, b: np.ndarray, x: np.ndarray, h0: np.ndarray,
                c0: np.ndarray) -> np.ndarray:
    r"""The LSTM equations with gates in PyTorch's order (i, f, g, o), x (T, d_x) -> h (T, d_h):
    $[i; f; g; o] = W_{ih}x_t + W_{hh}h_{t-1} + b$, $c_t = \sigma(f)\odot c_{t-1} + \sigma(i)\odot\tanh(g)$,
    $h_t = \sigma(o)\odot\tanh(c_t)$ (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000)."""
    H = h0.shape[0]
    hs, h, c = [], h0, c0
    for xt in x:
        a = W_ih @ xt + W_hh @ h + b
        i, f, o = (1 / (1 + np.exp(-a[k * H:(k + 1) * H])) for k in (0, 1, 3))
        c = f * c + i * np.tanh(a[2 * H:3 * H])
        h = o * np.tanh(c)
        hs.append(h)
    return np.array(hs)


@claim("recurrent.lstm-equations",
       title="The LSTM equations (gates i, f, g, o) are nn.LSTM, and its gradient is the derivative",
       statement=r"c_t=f\odot c_{t-1}+i\odot\tilde c,\quad h_t=o\odot\tanh c_t",
       source="Hochreiter & Schmidhuber (1997); Gers et al. (2000); PyTorch nn.LSTM (gate order i, f, g, o)")
def lstm_equations(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    m = LSTM(3, 5, dtype=np.float64, generator=rng)
    sd = m.state_dict()
    x = rng.standard_normal((8, 3))
    h0, c0 = rng.standard_normal(5), rng.standard_normal(5)
    hand = lstm_states(sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"] + sd["bias_hh_l0"], x, h0, c0)
    xx = dm.tensor(x, requires_grad=True)
    out, _ = m(xx, (h0[None], c0[None]))
    main = _rel(out.data, hand)
    (out * out).sum().backward()
    v, h = rng.standard_normal(x.shape), 1e-6

    def loss(z: np.ndarray) -> float:
        return float(np.sum(lstm_states(sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"] + sd["bias_hh_l0"],
                                        z, h0, c0) ** 2))
    fd = (loss(x + h * v) - loss(x - h * v)) / (2 * h)
    fd_err = abs(float(np.sum(xx.grad.data * v)) - fd) / max(abs(fd), 1e-300)
    checks, note = _torch_cross_checks("LSTM", ctx, rng, num_layers=2, bidirectional=True)
    return Evidence.at_most(
        main, TIGHT, TIGHT_REASON,
        details=f"nn.LSTM vs the equations by hand: {main:.1e}; input gradient vs central differences of the "
                f"hand recursion: {fd_err:.1e}; {note}",
        cross_checks=(CrossCheck("finite-differences", fd_err, FD_TOL, FD_REASON), *checks))


def gru_printed_step(h: np.ndarray, z: np.ndarray, n: np.ndarray) -> np.ndarray:
    r"""The printed (Chung et al. 2014) update $h_t=(1-z)\odot h_{t-1}+z\odot\tilde h$."""
    return (1 - z) * h + z * n


@claim("recurrent.gru-convention",
       title="nn.GRU is the printed GRU with z -> 1 - z (and the reset gate after the hidden product)",
       statement=r"h_t=(1-z)\odot n+z\odot h_{t-1}\ \text{(PyTorch)}\ =\ (1-z')\odot h_{t-1}+z'\odot\tilde h,\ "
                 r"z'=1-z",
       source="Cho et al. (2014) write h = z h + (1-z) h~ as PyTorch does; the printed form is Chung et al. "
              "(2014); PyTorch nn.GRU documentation",
       erratum=True)
def gru_convention(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    H, T = 4, 6
    m = GRU(3, H, dtype=np.float64, generator=rng)
    sd = m.state_dict()
    x = rng.standard_normal((T, 3))
    h = h_printed = rng.standard_normal(H)
    remapped, unmapped = [], []
    for xt in x:
        gi = sd["weight_ih_l0"] @ xt + sd["bias_ih_l0"]
        gh = sd["weight_hh_l0"] @ h + sd["bias_hh_l0"]
        r = 1 / (1 + np.exp(-(gi[:H] + gh[:H])))
        z = 1 / (1 + np.exp(-(gi[H:2 * H] + gh[H:2 * H])))
        n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
        h_next = gru_printed_step(h, 1 - z, n)
        unmapped.append(gru_printed_step(h, z, n))
        h = h_next
        remapped.append(h)
    out, _ = m(x, h_printed[None])
    main = _rel(np.array(remapped), out.data)
    printed = _rel(np.array(unmapped), out.data)
    checks, note = _torch_cross_checks("GRU", ctx, rng, bidirectional=True)
    return Evidence.at_most(
        main, TIGHT, TIGHT_REASON,
        details=f"printed update with z' = 1 - z vs nn.GRU: {main:.1e}; without the remap the first step already "
                f"differs by {printed:.2f}; {note}",
        cross_checks=checks,
        printed=PrintedForm(r"h_t=(1-z)\odot h_{t-1}+z\odot\tilde h\ \text{with PyTorch's } z", printed,
                            "Cho et al. (2014); PyTorch nn.GRU documentation"))


@claim("recurrent.gru-update-gate-copies",
       title="A GRU whose update gate is 1 copies its state (and its gradient)",
       statement=r"z_t=1\ (\text{PyTorch's convention})\Rightarrow h_T=h_0,\ \partial h_T/\partial h_0=I",
       source="Cho et al. (2014); Chung et al. (2014) (there z = 0 keeps the state)")
def gru_update_gate_copies(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    H, T = 4, 50
    m = GRU(3, H, dtype=np.float64, generator=rng)
    with dm.no_grad():
        m.bias_ih_l0.data[H:2 * H] = 50.0  # z = sigma(50 + ...) = 1 in float64
    h0 = dm.tensor(rng.standard_normal((1, 1, H)), requires_grad=True)
    _, hT = m(rng.standard_normal((T, 1, 3)), h0)
    (hT * hT).sum().backward()
    copy_err = float(np.max(np.abs(hT.data - h0.data)))
    grad_err = float(np.max(np.abs(h0.grad.data - 2 * hT.data)))
    return Evidence.at_most(
        max(copy_err, grad_err), 1e-12, "z = 1 exactly in float64 (sigma(50)); only rounding remains",
        details=f"T = {T}: max |h_T - h_0| = {copy_err:.1e}; dL/dh_0 vs dL/dh_T = 2 h_T: {grad_err:.1e}")


@claim("recurrent.parameter-counts",
       title="Per layer an LSTM has 4(d_h(d_h+d_x)+d_h) weights and a GRU 3(...): the GRU has fewer",
       statement=r"|\theta_{\mathrm{LSTM}}|=4(d_h(d_h+d_x)+d_h),\ |\theta_{\mathrm{GRU}}|=3(d_h(d_h+d_x)+d_h)"
                 r"\ (+4d_h,\ +3d_h\text{ for PyTorch's second bias})",
       source="Hochreiter & Schmidhuber (1997); Cho et al. (2014); PyTorch's layouts (b_ih and b_hh)")
def parameter_counts(ctx: RunContext) -> Evidence:
    torch = _torch(ctx)
    worst = 0
    rows = []
    for dx, dh in ((3, 5), (10, 7), (64, 128)):
        for gates, cls, name in ((4, LSTM, "LSTM"), (3, GRU, "GRU"), (1, RNN, "RNN")):
            formula = gates * (dh * (dh + dx) + dh) + gates * dh  # the chapter's count plus the second bias
            ours = sum(p.size for p in cls(dx, dh).parameters())
            worst = max(worst, abs(ours - formula))
            if torch is not None:
                theirs = sum(p.numel() for p in getattr(torch.nn, name)(dx, dh).parameters())
                worst = max(worst, abs(theirs - formula))
            rows.append(f"{name}({dx},{dh}): {ours}")
    also = "and to torch's count" if torch is not None else "(torch's count too under --thorough)"
    return Evidence.at_most(worst, 0, "parameter counts are integers: they must agree exactly",
                            details="; ".join(rows) + f" (each equal to the formula {also})")


@claim("recurrent.bidirectional-concatenates",
       title="A bidirectional RNN's output is [forward h_t; backward h_t], 2 * hidden wide",
       statement=r"h_t=[\overrightarrow{h}_t;\overleftarrow{h}_t]\in\mathbb R^{2d_h}",
       source="Schuster & Paliwal (1997), Bidirectional recurrent neural networks")
def bidirectional_concatenates(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    H = 4
    bi = LSTM(3, H, bidirectional=True, dtype=np.float64, generator=rng)
    fw, bw = LSTM(3, H, dtype=np.float64), LSTM(3, H, dtype=np.float64)
    sd = bi.state_dict()
    fw.load_state_dict({k: v for k, v in sd.items() if not k.endswith("_reverse")})
    bw.load_state_dict({k.replace("_reverse", ""): v for k, v in sd.items() if k.endswith("_reverse")})
    x = rng.standard_normal((6, 2, 3))
    out, _ = bi(x)
    f_out, _ = fw(x)
    b_out, _ = bw(x[::-1].copy())
    expected = np.concatenate([f_out.data, b_out.data[::-1]], axis=-1)
    main = _rel(out.data, expected)
    width_ok = float(out.shape[-1] == 2 * H)
    return Evidence.at_most(
        main, TIGHT, TIGHT_REASON,
        details=f"output width {out.shape[-1]} = 2 x {H}; vs two one-way LSTMs (the second on the reversed "
                f"sequence): {main:.1e}",
        cross_checks=(CrossCheck("width-2H", width_ok, 1.0, "the output has 2 * hidden features", ">="),))


@claim("recurrent.bidirectional-sees-the-future",
       title="A bidirectional RNN's output at t depends on later inputs, so it cannot predict the next word",
       statement=r"\partial y_t/\partial x_{t'}=0\ (t'>t)\ \text{only for the one-way RNN}",
       source="Schuster & Paliwal (1997); the printed next-word example ('The cat sat on the ___') needs a "
              "causal model (Graves & Schmidhuber 2005 use BRNNs for labelling whole sequences)",
       erratum=True)
def bidirectional_sees_future(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    T = 5

    def future_dependence(m: Any) -> float:
        J = dm.jacobian(lambda x: m(x)[0])(rng.standard_normal((T, 1, 3)))  # (T, 1, F, T, 1, 3)
        J = J.data if isinstance(J, dm.Tensor) else np.asarray(J)  # it depends on the parameters too
        return max(float(np.max(np.abs(J[t, :, :, t + 1:]))) for t in range(T - 1))

    one_way = future_dependence(RNN(3, 4, dtype=np.float64, generator=rng))
    two_way = future_dependence(RNN(3, 4, bidirectional=True, dtype=np.float64, generator=rng))
    return Evidence.at_most(
        one_way, 0.0, "the one-way recurrence never reads x_t' for t' > t: exactly zero",
        details=f"max |dy_t/dx_t'| over t' > t: one-way {one_way:.1e}, bidirectional {two_way:.2f}",
        cross_checks=(CrossCheck("bidirectional-reads-future", two_way, 1e-3,
                                 "the backward direction reads every later input", ">="),),
        printed=PrintedForm(r"\text{a BiRNN predicts the next word of 'The cat sat on the \_\_\_'}", two_way,
                            "Schuster & Paliwal (1997)"))


def _lstm_flops(T: int, N: int, dx: int, dh: int) -> int:
    with dm.count_flops() as counter:
        LSTM(dx, dh, dtype=np.float64)(np.zeros((T, N, dx)))
    return int(counter.total)


@claim("recurrent.forward-cost",
       title="Forward cost is T N (8 d_h (d_h + d_x) + O(d_h)): the input term the chapter leaves out matters",
       statement=r"\mathrm{flops}=T N\big(8 d_h(d_h+d_x)+\beta d_h\big)\quad(\text{printed: }O(T d_h^2))",
       source="The matrix products W_hh h (d_h^2) and W_xh x (d_h d_x) per step, 4 gates, 2 flops per "
              "multiply-add; Goodfellow, Bengio & Courville (2016), sec. 10.2")
def forward_cost(ctx: RunContext) -> Evidence:
    N = 2
    configs = [(10, 4, 8), (20, 4, 8), (10, 64, 8), (10, 4, 32), (7, 16, 16), (13, 3, 24)]
    flops = np.array([_lstm_flops(T, N, dx, dh) for T, dx, dh in configs], dtype=np.float64)
    full = np.array([[T * N * dh * (dh + dx), T * N * dh, N * dh] for T, dx, dh in configs], dtype=np.float64)
    coef, *_ = np.linalg.lstsq(full, flops, rcond=None)
    residual = float(np.max(np.abs(full @ coef - flops) / flops))
    short = np.array([[T * N * dh * dh, T * N * dh, N * dh] for T, dx, dh in configs], dtype=np.float64)
    coef_p, *_ = np.linalg.lstsq(short, flops, rcond=None)
    printed_residual = float(np.max(np.abs(short @ coef_p - flops) / flops))
    return Evidence.at_most(
        residual, 1e-9, "flop counts are integers and the model is exact: only the least-squares rounding remains",
        details=f"flops counted by dm.count_flops over (T, d_x, d_h) = {configs}, N = {N}: fitted "
                f"{coef[0]:.6f} T N d_h(d_h+d_x) + {coef[1]:.3f} T N d_h + {coef[2]:.3f} N d_h, worst relative "
                f"residual {residual:.1e}; without the d_h d_x term the best fit is off by {printed_residual:.2f}",
        cross_checks=(CrossCheck("eight-flops-per-weight", abs(coef[0] - 8), 1e-6,
                                 "4 gates x 2 flops per multiply-add for each weight of W_ih and W_hh"),
                      CrossCheck("input-term-needed", printed_residual, 0.05,
                                 "the model without d_h d_x must fail to fit", ">=")))


@claim("recurrent.clip-grad-norm",
       title="Gradient-norm clipping bounds the norm and keeps the direction",
       statement=r"\|g\|>\tau\Rightarrow g\leftarrow\tau\,g/\|g\|:\ \|g'\|\le\tau,\ \cos(g,g')=1",
       source="Pascanu, Mikolov & Bengio (2013), sec. 3.2; Mikolov (2012)")
def clip_grad_norm(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    m = RNN(3, 6, dtype=np.float64, generator=rng)
    with dm.no_grad():
        m.weight_hh_l0.data[...] = 3.0 * np.linalg.qr(rng.standard_normal((6, 6)))[0]  # an exploding regime
    out, _ = m(rng.standard_normal((15, 2, 3)) * 0.01)
    (out[-1] ** 2).sum().backward()
    before = np.concatenate([p.grad.data.ravel() for p in m.parameters()])
    tau = 0.1 * float(np.linalg.norm(before))  # a threshold the gradient exceeds tenfold, whatever the seed
    reported = float(np.asarray(clip_grad_norm_(m.parameters(), tau)))
    after = np.concatenate([p.grad.data.ravel() for p in m.parameters()])
    cos = float(before @ after / (np.linalg.norm(before) * np.linalg.norm(after)))
    reported_err = abs(reported - float(np.linalg.norm(before))) / float(np.linalg.norm(before))
    return Evidence.at_most(
        float(np.linalg.norm(after)) / tau, 1 + 1e-6, "clip_grad_norm_ scales by tau / (||g|| + 1e-6): at most tau",
        details=f"||g|| = {np.linalg.norm(before):.3e} (reported {reported:.3e}), tau = ||g||/10 -> "
                f"||g'|| / tau = {np.linalg.norm(after) / tau:.9f}; cosine(before, after) = {cos:.15f}",
        cross_checks=(CrossCheck("direction-kept", 1 - cos, 1e-12, "a positive scaling: cosine 1 up to rounding"),
                      CrossCheck("reported-norm", reported_err, 1e-12,
                                 "the returned total norm is ||g|| over all parameters, up to rounding")))
