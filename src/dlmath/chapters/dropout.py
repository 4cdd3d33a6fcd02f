r"""Chapter 7 — Dropout: masks, expectations, the implicit penalty, sub-network averaging, MC dropout.

Notation (chapter C1, C4): a mask $m\sim\mathrm{Bernoulli}(q)^d$ with retain probability
$q = 1-p$ (p is the *drop* probability, PyTorch's convention; Srivastava et al. 2014 write p
for the *retain* probability); inverted dropout $\tilde h = h\odot m/q$ in training, the identity
at test time.

Every check compares dlmath's dropout with something it did not compute: exact enumeration of
all $2^d$ masks, a closed form, or Monte Carlo with a tolerance of k standard errors (stated).
Monte-Carlo checks draw their masks from dlmath's default generator, seeded from the claim's
own seed, so every run is reproducible.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

import dlmath as dm

from .. import nn
from ..nn import functional as F
from ..nn import init as nn_init
from ..verify import CrossCheck, Evidence, PrintedForm, RunContext, claim

F64_EPS = float(np.finfo(np.float64).eps)
Z_TOL = 5.0
Z_REASON = ("Monte Carlo: every estimate is compared with its exact value in units of its standard error; "
            "|z| <= 5 over the few dozen estimates has a false-alarm probability below 1e-4 (Gaussian tails), "
            "while a 10% error in the subject gives z in the tens")


# ----- helpers -------------------------------------------------------------------------------------------
def _seeded(seed: int) -> None:
    """Reset dlmath's default generator: masks drawn after this are a function of ``seed`` only."""
    nn_init.manual_seed(seed)


def _all_masks(d: int) -> np.ndarray:
    """Every binary mask of length d, one per row (2^d rows)."""
    return np.array(list(itertools.product((0.0, 1.0), repeat=d)))


def mask_probabilities(masks: np.ndarray, p: float) -> np.ndarray:
    r"""$P(m) = \prod_i q^{m_i}(1-q)^{1-m_i}$ with retain probability $q=1-p$."""
    q = 1.0 - p
    return np.prod(np.where(masks > 0, q, p), axis=1)


# ----- closed forms ---------------------------------------------------------------------------------------
def inverted_dropout_variance(h: np.ndarray, p: float) -> np.ndarray:
    r"""$\mathrm{Var}[\tilde h_i] = h_i^2\,\frac{p}{1-p}$ for inverted dropout (a scaled Bernoulli)."""
    return h**2 * p / (1.0 - p)


def dropout_linear_regression_expected_loss(X: np.ndarray, y: np.ndarray, w: np.ndarray, p: float) -> float:
    r"""$\mathbb E_m\|y - X(m\odot w)\|^2 = \|y - qXw\|^2 + q(1-q)\|\Gamma w\|^2$,
    $\Gamma=\mathrm{diag}(X^\top X)^{1/2}$.

    Exact for every p (no small-p approximation); q = 1-p is the retain probability.
    Srivastava et al. (2014), JMLR 15, §9.1.
    """
    q = 1.0 - p
    r = y - q * (X @ w)
    gamma_sq = np.sum(X * X, axis=0)  # diag(X^T X)
    return float(r @ r + q * (1.0 - q) * np.sum(gamma_sq * w * w))


def dropout_glm_quadratic_penalty(X: np.ndarray, eta: np.ndarray, w: np.ndarray, p: float) -> float:
    r"""$R^q(w) = \tfrac12\,\tfrac{p}{1-p}\sum_j w_j^2 \sum_i A''(\eta_i)\,x_{ij}^2$: Wager et al.'s quadratic
    approximation of the dropout penalty $\mathbb E[\ell(\tilde x\cdot w)] - \ell(x\cdot w)$ of a GLM with log-partition
    A (logistic: $A''(\eta) = \sigma(\eta)(1-\sigma(\eta))$), an L2 penalty weighted by the diagonal of the Fisher
    information $X^\top V X$. Wager, Wang & Liang (2013), NeurIPS, eq. (9)-(10).
    """
    s = 1.0 / (1.0 + np.exp(-eta))
    return float(0.5 * p / (1.0 - p) * np.sum((s * (1 - s)) @ (X * X) * w * w))


def normalised_geometric_mean(log_probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    r"""$G(y) \propto \exp\big(\sum_m P(m)\log p(y\mid m)\big)$, normalised over y (rows of ``log_probs`` are masks)."""
    s = np.tensordot(weights, log_probs, axes=(0, 0))
    s = s - s.max(axis=-1, keepdims=True)
    g = np.exp(s)
    return g / g.sum(axis=-1, keepdims=True)


def bernoulli_entropy(p: np.ndarray | float) -> np.ndarray:
    r"""$H(p) = -p\log p - (1-p)\log(1-p)$ in nats."""
    p = np.asarray(p, dtype=np.float64)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def mc_dropout_predict(model: nn.Module, x: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    r"""MC dropout: $\hat\mu = \frac1T\sum_t f(x; W_t)$ and $\hat\sigma^2 = \frac1T\sum_t f(x;W_t)^2 - \hat\mu^2$.

    Only the model's Dropout layers are put in training mode (a fresh mask per pass; the T
    passes are one batch of T copies of x), and every layer's mode is restored afterwards: a
    BatchNorm layer must keep its running statistics. Gal & Ghahramani (2016), ICML, eq. (7)-(8).
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        for m in model.modules():
            m.training = isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d))
        with dm.no_grad():
            out = _data(model(np.repeat(x[None], T, axis=0)))
    finally:
        for m, mode in modes:
            m.training = mode
    mean = out.mean(axis=0)
    return mean, np.mean(out**2, axis=0) - mean**2


def _z(estimate: np.ndarray, exact: np.ndarray, se: np.ndarray) -> float:
    """max |estimate - exact| / se over the entries (a z-score per estimate)."""
    return float(np.max(np.abs(estimate - exact) / se))


def _data(x: Any) -> np.ndarray:
    return np.asarray(getattr(x, "data", x))


# ----- claims ----------------------------------------------------------------------------------------------
@claim("dropout.inverted-expectation",
       title="Inverted dropout keeps the expectation; the variance it adds is h^2 p/(1-p)",
       statement=r"m\sim\mathrm{Bernoulli}(1-p)^d,\ \tilde h = h\odot m/(1-p):\ \mathbb E[\tilde h] = h,\ "
                 r"\mathrm{Var}[\tilde h_i] = h_i^2\,\tfrac{p}{1-p};\ \tilde h = h\ \text{at test time}",
       source="Srivastava et al. (2014), JMLR 15 (they write p for the retain probability; here and in "
              "PyTorch p is the drop probability); Hinton et al. (2012), arXiv:1207.0580")
def inverted_expectation(ctx: RunContext) -> Evidence:
    """Chapter C1-C4: Monte-Carlo mean and variance of dlmath's dropout per unit, vs h and h^2 p/(1-p)."""
    rng = ctx.rng
    d, N = 12, (200_000 if ctx.thorough else 20_000)
    h = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d)
    z_worst, support_err, z_keep = 0.0, 0.0, 0.0
    for p in (0.2, 0.5):
        q = 1.0 - p
        _seeded(ctx.seed)
        out = _data(F.dropout(np.tile(h, (N, 1)), p))
        # the variance through the second moment E[h~^2] = h^2 + Var (its estimator's SE is never degenerate,
        # unlike the sample variance's delta-method SE, which vanishes at p = 1/2)
        sq = out**2
        z_worst = max(z_worst, _z(out.mean(axis=0), h, out.std(axis=0, ddof=1) / np.sqrt(N)),
                      _z(sq.mean(axis=0), h**2 + inverted_dropout_variance(h, p), sq.std(axis=0, ddof=1) / np.sqrt(N)))
        # C1/C4: every entry is 0 or h/q, and the kept fraction is q
        support_err = max(support_err, float(np.max(np.minimum(np.abs(out), np.abs(out - h / q)) / np.abs(h / q))))
        kept = float(np.mean(out != 0))
        z_keep = max(z_keep, abs(kept - q) / np.sqrt(p * q / out.size))
    x = rng.standard_normal((3, d))
    eval_err = max(float(np.max(np.abs(_data(nn.Dropout(0.5).eval()(x)) - x))),
                   float(np.max(np.abs(_data(F.dropout(x, 0.5, training=False)) - x))))
    return Evidence.at_most(
        z_worst, Z_TOL, Z_REASON,
        f"d={d} units, N={N} draws, p in (0.2, 0.5): max |z| of the per-unit sample mean against h and of the "
        f"second moment against h^2 + h^2 p/(1-p) = {z_worst:.2f} (standard errors from the samples: "
        f"std(x)/sqrt N and std(x^2)/sqrt N). Classical dropout (no 1/(1-p)) has E[h m] = (1-p) h, hence the "
        f"classical test-time rescaling by 1-p (C2, C3); inverted dropout moves that factor into training.",
        cross_checks=(
            CrossCheck("values-0-or-h/(1-p)", support_err, 4 * F64_EPS,
                       "each entry is exactly 0 or h/(1-p): one rounding of the product"),
            CrossCheck("kept-fraction", z_keep, Z_TOL, "kept fraction vs 1-p in binomial standard errors; " + Z_REASON),
            CrossCheck("identity-at-test-time", eval_err, 0.0,
                       "nn.Dropout in eval mode and F.dropout(training=False) return the input unchanged"),
        ))


@claim("dropout.backward-mask",
       title="Dropout's backward pass multiplies by the same mask and 1/(1-p)",
       statement=r"\frac{\partial\mathcal L}{\partial h} = "
                 r"\frac{\partial\mathcal L}{\partial\tilde h}\odot\frac{m}{1-p}",
       source="Srivastava et al. (2014), JMLR 15")
def backward_mask(ctx: RunContext) -> Evidence:
    """Chapter C8: autodiff's gradient vs g * m/(1-p), with m read from the forward output; finite differences."""
    rng = ctx.rng
    p, q = 0.3, 0.7
    x = rng.uniform(0.5, 2.0, (6, 10)) * rng.choice([-1.0, 1.0], (6, 10))
    g = rng.standard_normal(x.shape)
    _seeded(ctx.seed)
    xt = dm.tensor(x, requires_grad=True)
    out = F.dropout(xt, p)
    dm.sum(out * g).backward()
    grad = xt.grad.data
    m = (_data(out) != 0).astype(np.float64)
    err = float(np.max(np.abs(grad - g * m / q)) / np.max(np.abs(g / q)))

    def loss(xx: np.ndarray) -> float:  # the same mask: the generator is reset before each draw
        _seeded(ctx.seed)
        return float(np.sum(_data(F.dropout(xx, p)) * g))
    V, step = rng.standard_normal(x.shape), 1e-3  # the loss is linear in x for a fixed mask: no truncation error
    fd = (loss(x + step * V) - loss(x - step * V)) / (2 * step)
    fd_err = abs(fd - float(np.sum(grad * V))) / (np.linalg.norm(grad) * np.linalg.norm(V))
    return Evidence.at_most(
        err, 4 * F64_EPS, "g * m/(1-p) is one or two roundings of the same products",
        f"x (6, 10), p={p}: max |autodiff grad - g*m/(1-p)| / max|g/(1-p)| = {err:.1e}; kept {int(m.sum())} of "
        f"{m.size}. Directional central difference with the same mask (generator reset): rel. error {fd_err:.1e}.",
        cross_checks=(CrossCheck("finite-differences", fd_err, 1e-10,
                                 "the loss is linear in x for a fixed mask, so the central difference has no "
                                 "truncation error; rounding ~eps|L|/h ~ 1e-13"),))


@claim("dropout.linear-regression-penalty",
       title="For linear regression, expected dropout loss = loss + data-dependent L2 penalty (exact, any p)",
       statement=r"\mathbb E_m\|y - X(m\odot w)\|^2 = \|y - qXw\|^2 + q(1-q)\|\Gamma w\|^2,\quad "
                 r"\Gamma = \mathrm{diag}(X^\top X)^{1/2},\ q = 1-p",
       source="Srivastava et al. (2014), JMLR 15, §9.1 (exact, any p); Wager, Wang & Liang (2013), NeurIPS "
              "(GLMs: to second order an L2 penalty weighted by the diagonal of the Fisher information)",
       erratum=True)
def linear_regression_penalty(ctx: RunContext) -> Evidence:
    """Chapter C9, erratum E2: exact enumeration of all 2^d masks vs the closed form; MC through dropout."""
    rng = ctx.rng
    n, d = 40, (12 if ctx.thorough else 8)
    X = rng.standard_normal((n, d)) * np.geomspace(0.2, 3.0, d)  # unequal column norms: Gamma != c I
    y = X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n)
    w = rng.standard_normal(d)
    masks = _all_masks(d)
    worst, worst_inv = 0.0, 0.0
    for p in (0.1, 0.5, 0.8):
        q = 1.0 - p
        P = mask_probabilities(masks, p)
        enum = float(P @ np.sum((y - (masks * w) @ X.T) ** 2, axis=1))
        worst = max(worst, abs(enum - dropout_linear_regression_expected_loss(X, y, w, p)) / enum)
        # inverted dropout (m/q): the plain loss ||y - Xw||^2 plus (p/q)||Gamma w||^2 -- the same identity at w/q
        enum_inv = float(P @ np.sum((y - (masks * w / q) @ X.T) ** 2, axis=1))
        worst_inv = max(worst_inv, abs(enum_inv - dropout_linear_regression_expected_loss(X, y, w / q, p)) / enum_inv)
    # Monte Carlo through dlmath's dropout, p = 0.5
    p, T = 0.5, (100_000 if ctx.thorough else 20_000)
    _seeded(ctx.seed)
    Wt = _data(F.dropout(np.tile(w, (T, 1)), p))
    losses = np.sum((y - Wt @ X.T) ** 2, axis=1)
    z_mc = abs(losses.mean() - dropout_linear_regression_expected_loss(X, y, w / (1 - p), p)) / (
        losses.std(ddof=1) / np.sqrt(T))
    # the printed form: plain loss + lambda ||w||^2 with the best single lambda over K weight vectors
    K, P_half = 8, mask_probabilities(masks, 0.5)
    ws = rng.standard_normal((K, d))
    expected = np.array([float(P_half @ np.sum((y - (masks * wk / 0.5) @ X.T) ** 2, axis=1)) for wk in ws])
    plain = np.sum((y - ws @ X.T) ** 2, axis=1)
    norms = np.sum(ws**2, axis=1)
    lam = float(np.sum((expected - plain) * norms) / np.sum(norms**2))
    printed_err = float(np.max(np.abs(expected - plain - lam * norms) / expected))
    tol = 1e3 * F64_EPS
    return Evidence.at_most(
        worst, tol, "enumeration and closed form differ by rounding in sums of 2^d terms: ~1000 ulps",
        f"n={n}, d={d}, column scales 0.2..3, p in (0.1, 0.5, 0.8): max rel. error of the closed form against "
        f"enumeration of all {2**d} masks {worst:.1e}; inverted form ||y-Xw||^2 + (p/q)||Γw||^2 {worst_inv:.1e}; "
        f"Monte Carlo through dlmath's dropout (T={T}, p=0.5) z = {z_mc:.2f}. Printed form with the best single "
        f"lambda = {lam:.3g} over {K} weight vectors: max rel. error {printed_err:.2e} — the penalty weights w_j "
        f"by ||X_j||^2, so no single lambda fits unless the columns have equal norms.",
        cross_checks=(
            CrossCheck("inverted-dropout-form", worst_inv, tol, "as the main check: rounding only"),
            CrossCheck("monte-carlo", z_mc, Z_TOL, Z_REASON),
        ),
        printed=PrintedForm(r"\mathbb E[\mathcal L_{drop}] \approx \mathcal L + \lambda\|W\|^2", printed_err,
                            "Srivastava et al. (2014), JMLR 15, §9.1"))


@claim("dropout.geometric-mean",
       title="One softmax layer: the test-time network is the normalised geometric mean of all 2^n sub-networks",
       statement=r"\frac{\exp\big(\sum_m P(m)\log\mathrm{softmax}(W(m\odot x)/q + b)\big)}{\sum_{y'}\exp(\cdots)}"
                 r" = \mathrm{softmax}(Wx + b)",
       source="Hinton et al. (2012), arXiv:1207.0580 (p=1/2); Baldi & Sadowski (2013), NeurIPS (any p, "
              "weighted geometric mean); Srivastava et al. (2014), JMLR 15, §7.5")
def geometric_mean(ctx: RunContext) -> Evidence:
    """Chapter C5 and the weight-scaling rule: exact enumeration of all 2^n input masks."""
    rng = ctx.rng
    n, k = (14 if ctx.thorough else 10), 4
    W, b, x = rng.standard_normal((k, n)), rng.standard_normal(k), rng.standard_normal(n)
    masks = _all_masks(n)
    worst, arith_gap, deep_gap = 0.0, 0.0, 0.0
    for p in (0.5, 0.2):
        q = 1.0 - p
        P = mask_probabilities(masks, p)
        logp = _data(dm.log_softmax(dm.matmul(masks * x / q, W.T) + b, axis=-1))   # every sub-network
        G = normalised_geometric_mean(logp, P)
        test_net = nn.Sequential(nn.Dropout(p), nn.Linear(n, k)).double()
        test_net.load_state_dict({"1.weight": W, "1.bias": b})
        test = _data(dm.softmax(test_net.eval()(x), axis=-1))
        worst = max(worst, float(np.max(np.abs(G - test))))
        arith_gap = max(arith_gap, float(np.max(np.abs(P @ np.exp(logp) - test))))
        # with a hidden tanh layer before the dropped units the rule is only approximate
        V = rng.standard_normal((n, n)) / np.sqrt(n)
        hid = np.tanh(V @ x)
        logp_deep = _data(dm.log_softmax(dm.matmul(np.tanh((masks * x / q) @ V.T), W.T) + b, axis=-1))
        deep_gap = max(deep_gap, float(np.max(np.abs(normalised_geometric_mean(logp_deep, P)
                                                       - _data(dm.softmax(W @ hid + b))))))
    distinct = len({m.tobytes() for m in masks})
    return Evidence.at_most(
        worst, 1e2 * F64_EPS, "probabilities O(1); exact identity up to rounding of sums of 2^n logs",
        f"n={n} inputs, {k} classes, p in (0.5, 0.2) (mask probabilities as weights): max |geometric mean - "
        f"test-time softmax| = {worst:.1e}. The arithmetic mean of the sub-networks differs by {arith_gap:.2e}; "
        f"with a hidden tanh layer between the dropped inputs and the softmax the weight-scaling rule is off by "
        f"{deep_gap:.2e} (an approximation there).",
        cross_checks=(CrossCheck("2^n-subnetworks", abs(distinct - 2**n), 0.0,
                                 f"C5: the enumeration holds {distinct} distinct masks; exact count"),))


@claim("dropout.mc-dropout",
       title="MC dropout estimates the predictive mean and variance, converging as T^-1/2",
       statement=r"\hat\mu_T = \frac1T\sum_{t=1}^T f(x;W_t)\to\mathbb E_{q}[f(x;W)],\ "
                 r"\hat\sigma^2_T\to\mathrm{Var}_q[f(x;W)],\ |\hat\mu_T-\mu| = O(T^{-1/2})",
       source="Gal & Ghahramani (2016), ICML, eq. (7)-(8)")
def mc_dropout(ctx: RunContext) -> Evidence:
    """Chapter C6: a 1-hidden-layer net with dropout on its H hidden units; exact moments by enumeration."""
    rng = ctx.rng
    d_in, H, p = 5, 8, 0.5
    W1, b1 = rng.standard_normal((H, d_in)), rng.standard_normal(H)
    W2, b2 = rng.standard_normal((1, H)), rng.standard_normal(1)
    x = rng.standard_normal(d_in)

    model = nn.Sequential(nn.Linear(d_in, H), nn.Tanh(), nn.Dropout(p), nn.Linear(H, 1)).double()
    model.load_state_dict({"0.weight": W1, "0.bias": b1, "3.weight": W2, "3.bias": b2})
    model.eval()
    hid = np.tanh(W1 @ x + b1)
    masks = _all_masks(H)
    P = mask_probabilities(masks, p)
    outs = (masks * hid / (1 - p)) @ W2[0] + b2[0]
    mu = float(P @ outs)
    var = float(P @ (outs - mu) ** 2)
    m4 = float(P @ (outs - mu) ** 4)
    T = 40_000 if ctx.thorough else 4_000
    _seeded(ctx.seed)
    mean_hat, var_hat = mc_dropout_predict(model, x, T)
    z_mean = abs(float(mean_hat[0]) - mu) / np.sqrt(var / T)
    z_var = abs(float(var_hat[0]) - var) / np.sqrt((m4 - var**2) / T)
    # convergence: RMS error of the mean over R repeats, for growing T; slope of log-log
    R, Ts = 40, (64, 256, 1024, 4096)
    rms = [float(np.sqrt(np.mean([(mc_dropout_predict(model, x, t)[0][0] - mu) ** 2 for _ in range(R)])))
           for t in Ts]
    slope = float(np.polyfit(np.log(Ts), np.log(rms), 1)[0])
    return Evidence.at_most(
        max(z_mean, z_var), Z_TOL, Z_REASON,
        f"net {d_in}-{H}-1, tanh, dropout p={p} on the hidden units; exact predictive mean {mu:.4f} and variance "
        f"{var:.4f} by enumeration of all {2**H} masks; MC dropout with T={T}: mean {float(mean_hat[0]):.4f} "
        f"(z={z_mean:.2f}, SE sqrt(var/T)), variance {float(var_hat[0]):.4f} (z={z_var:.2f}, SE from the exact "
        f"fourth moment). RMS error of the mean over {R} repeats at T={Ts}: "
        + ", ".join(f"{r:.3g}" for r in rms) + f"; log-log slope {slope:.3f} (T^-1/2 predicts -0.5).",
        cross_checks=(CrossCheck("modes-restored", float(any(m.training for m in model.modules())), 0.0,
                                 "after MC dropout every layer is back in eval mode (0 = restored)"),
                      CrossCheck("convergence-rate", abs(slope + 0.5), 0.15,
                                 f"each RMS over R={R} repeats has relative SE ~1/sqrt(2R) = 0.11; over a log-T span "
                                 "of 4.2 the slope's SE is ~0.04; 0.15 is ~4 SE"),))


@claim("dropout.gal-variational-family",
       title="MC dropout's variational family is W = M diag(z), z ~ Bernoulli(1-p): not Bernoulli weights",
       statement=r"q(W) :\ W = M\,\mathrm{diag}(z),\ z_j\sim\mathrm{Bernoulli}(1-p)\ \Rightarrow\ "
                 r"\mathbb E[Wx] = (1-p)Mx,\ \mathrm{Cov}[Wx] = p(1-p)\,M\,\mathrm{diag}(x^2)M^\top",
       source="Gal & Ghahramani (2016), ICML, §3 (W_i = M_i diag([z_ij]), z_ij ~ Bernoulli(p_i))",
       erratum=True)
def gal_variational_family(ctx: RunContext) -> Evidence:
    """Chapter C7, erratum E1: the moments of dropout-on-inputs outputs vs both families' closed forms."""
    rng = ctx.rng
    n_out, n_in, p = 3, 6, 0.3
    q = 1.0 - p
    M, x = rng.standard_normal((n_out, n_in)), rng.standard_normal(n_in)
    T = 200_000 if ctx.thorough else 20_000
    _seeded(ctx.seed)
    Y = q * _data(dm.matmul(F.dropout(np.tile(x, (T, 1)), p), M.T))   # classical (non-inverted) dropout on inputs

    def z_moments(mean: np.ndarray, cov: np.ndarray) -> float:
        m = Y.mean(axis=0)
        D = Y - m
        prods = D[:, :, None] * D[:, None, :]
        cov_hat = prods.mean(axis=0)
        return max(_z(m, mean, Y.std(axis=0, ddof=1) / np.sqrt(T)),
                   _z(cov_hat, cov, prods.std(axis=0, ddof=1) / np.sqrt(T)))
    z_gal = z_moments(q * M @ x, p * q * (M * x**2) @ M.T)
    # as printed: every weight an independent Bernoulli(1-p) variable in {0, 1}
    z_printed = z_moments(q * np.full(n_out, x.sum()), p * q * float(np.sum(x**2)) * np.eye(n_out))
    return Evidence.at_most(
        z_gal, Z_TOL, Z_REASON,
        f"linear layer M ({n_out}x{n_in}), classical dropout p={p} on its input, T={T}: max |z| of the output mean "
        f"and covariance against W = M diag(z) is {z_gal:.2f}; against the printed family (i.i.d. Bernoulli "
        f"weights, which ignores M and makes outputs uncorrelated) {z_printed:.3g}.",
        printed=PrintedForm(r"q(W) = \prod_i \mathrm{Bernoulli}(w_i;\,1-p)", z_printed,
                            "Gal & Ghahramani (2016), ICML, §3"))


@claim("dropout.bernoulli-entropy",
       title="p = 1/2 maximises the entropy of the dropout mask (sub-network diversity)",
       statement=r"H(m) = d\,H_b(p),\ H_b(p) = -p\log p-(1-p)\log(1-p),\ \arg\max_p H_b(p) = \tfrac12",
       source="Srivastava et al. (2014), JMLR 15; Cover & Thomas (2006), Elements of Information Theory, §2.1")
def bernoulli_entropy_max(ctx: RunContext) -> Evidence:
    """Chapter C10: the closed form's argmax on a grid, and the mask entropy by enumeration of 2^d masks."""
    grid = np.round(np.linspace(0.01, 0.99, 99), 12)
    H = bernoulli_entropy(grid)
    argmax = float(grid[int(np.argmax(H))])
    d = 6
    masks = _all_masks(d)
    enum_err = 0.0
    for p in (0.1, 0.3, 0.5, 0.9):
        P = mask_probabilities(masks, p)
        enum = float(-P @ np.log(P))
        enum_err = max(enum_err, abs(enum - d * float(bernoulli_entropy(p))) / enum)
    return Evidence.at_most(
        abs(argmax - 0.5), 0.005, "grid step 0.01: the argmax is located to half a step",
        f"argmax of H_b on a 0.01 grid: {argmax}; H_b(1/2) = {float(bernoulli_entropy(0.5)):.12f} = log 2. "
        f"Entropy of the mask distribution by enumeration of 2^{d} masks vs d H_b(p): rel. error {enum_err:.1e}.",
        cross_checks=(CrossCheck("enumeration", enum_err, 1e2 * F64_EPS, "sums of 64 terms: ~100 ulps"),))


@claim("dropout.dropconnect",
       title="DropConnect: unbiased, independent per-output noise (unlike unit dropout)",
       statement=r"h = (W\odot M)x/(1-p):\ \mathbb E[h] = Wx,\ \mathrm{Cov}[h] = \tfrac{p}{1-p}\,"
                 r"\mathrm{diag}\big(\textstyle\sum_j W_{ij}^2x_j^2\big)",
       source="Wan et al. (2013), Regularization of Neural Networks using DropConnect, ICML")
def dropconnect(ctx: RunContext) -> Evidence:
    """Chapter C11: dlmath's dropout applied to the weight matrix; moments vs the closed form."""
    rng = ctx.rng
    n_out, n_in, p = 3, 6, 0.4
    W, x = rng.standard_normal((n_out, n_in)), rng.standard_normal(n_in)
    T = 200_000 if ctx.thorough else 20_000
    _seeded(ctx.seed)
    Y = _data(dm.einsum("tij,j->ti", F.dropout(np.broadcast_to(W, (T, n_out, n_in)).copy(), p), x))
    m = Y.mean(axis=0)
    D = Y - m
    prods = D[:, :, None] * D[:, None, :]
    cov = p / (1 - p) * np.diag(np.sum(W**2 * x**2, axis=1))
    z = max(_z(m, W @ x, Y.std(axis=0, ddof=1) / np.sqrt(T)),
            _z(prods.mean(axis=0), cov, prods.std(axis=0, ddof=1) / np.sqrt(T)))
    return Evidence.at_most(
        z, Z_TOL, Z_REASON,
        f"W ({n_out}x{n_in}), p={p}, T={T}: max |z| of the output mean and covariance against Wx and "
        f"(p/q) diag(sum_j W_ij^2 x_j^2) = {z:.2f}. Unit dropout on x shares one mask across outputs, so its "
        f"outputs are correlated: off-diagonal covariance (p/q) sum_j W_ij W_kj x_j^2.")


@claim("dropout.spatial-dropout",
       title="Spatial dropout drops whole channels and scales the rest by 1/(1-p)",
       statement=r"\tilde x_{n,c,:,:} = x_{n,c,:,:}\,m_{n,c}/(1-p),\ m_{n,c}\sim\mathrm{Bernoulli}(1-p):\ "
                 r"\mathbb E[\tilde x] = x",
       source="Tompson et al. (2015), Efficient Object Localization Using Convolutional Networks, CVPR")
def spatial_dropout(ctx: RunContext) -> Evidence:
    """Chapter C12: F.dropout2d's masks are constant per (sample, channel); kept fraction and mean by MC."""
    rng = ctx.rng
    N, C, p = (20_000 if ctx.thorough else 2_000), 6, 0.3
    q = 1.0 - p
    x = rng.uniform(0.5, 2.0, (1, C, 4, 4))
    _seeded(ctx.seed)
    out = _data(F.dropout2d(np.repeat(x, N, axis=0), p))
    scaled = x / q
    # each feature map is all zeros or all x/q
    per_map = np.minimum(np.max(np.abs(out), axis=(2, 3)), np.max(np.abs(out - scaled), axis=(2, 3)))
    structure_err = float(np.max(per_map) / np.max(scaled))
    kept = (np.max(np.abs(out), axis=(2, 3)) > 0).mean()
    z_keep = abs(kept - q) / np.sqrt(p * q / (N * C))
    z_mean = _z(out.mean(axis=0), x[0], out.std(axis=0, ddof=1) / np.sqrt(N))
    return Evidence.at_most(
        structure_err, 4 * F64_EPS, "each map is exactly 0 or x/(1-p): one rounding of the product",
        f"{N} samples of a ({C}, 4, 4) input, p={p}: every feature map all zero or all x/(1-p) (max deviation "
        f"{structure_err:.1e}); kept fraction {kept:.4f} (z={z_keep:.2f}); per-element mean vs x: max |z| = "
        f"{z_mean:.2f}.",
        cross_checks=(CrossCheck("kept-fraction", z_keep, Z_TOL, Z_REASON),
                      CrossCheck("mean", z_mean, Z_TOL, Z_REASON)))


@claim("dropout.glm-fisher-penalty",
       title="Logistic regression: dropout's penalty is to second order an L2 penalty weighted by the Fisher diagonal",
       statement=r"\mathbb E_m\sum_i\big[A(\eta_i + \tilde x_i\cdot w) - A(\eta_i + x_i\cdot w)\big] = "
                 r"\tfrac12\tfrac{p}{1-p}\sum_j w_j^2\,(X^\top V X)_{jj}\,(1 + O(\|w\|^2)),\ "
                 r"V = \mathrm{diag}(A''(\eta))",
       source="Wager, Wang & Liang (2013), Dropout Training as Adaptive Regularization, NeurIPS, eq. (9)-(10)")
def glm_fisher_penalty(ctx: RunContext) -> Evidence:
    """Chapter E2, third point: exact enumeration of all 2^d masks vs the quadratic form, as w -> c w, c -> 0."""
    rng = ctx.rng
    n, d, p = 30, 8, 0.5  # at p = 1/2 the noise m/q - 1 is symmetric: odd terms vanish, the error is O(c^2)
    q = 1.0 - p
    X = rng.standard_normal((n, d)) * np.geomspace(0.3, 2.0, d)
    offset = 2.0 * rng.standard_normal(n)  # a feature that is not dropped: Fisher weights A''(eta_i) differ per datum
    w0 = rng.standard_normal(d)
    masks = _all_masks(d)
    P = mask_probabilities(masks, p)

    def A(e: np.ndarray) -> np.ndarray:  # logistic log-partition log(1 + e^eta)
        return np.logaddexp(0.0, e)
    scales = np.array([0.02, 0.01, 0.005, 0.0025, 0.00125])
    rel = []
    for c in scales:
        w = c * w0
        exact = float(P @ np.sum(A(offset + (masks * w / q) @ X.T) - A(offset + X @ w), axis=1))
        rel.append((exact - dropout_glm_quadratic_penalty(X, offset + X @ w, w, p)) / exact)
    # signed relative error = alpha + a c^2 + b c^4 + ...: the quadratic form is right to second order iff alpha = 0
    alpha, a, b = np.linalg.lstsq(np.stack([np.ones_like(scales), scales**2, scales**4], axis=1), np.array(rel),
                                  rcond=None)[0]
    return Evidence.at_most(
        abs(alpha), 1e-4,
        "alpha is the part of the signed rel. error (fitted by alpha + a c^2 + b c^4 over c in [0.00125, 0.02]; odd "
        "orders vanish at p = 1/2) that does not vanish as c -> 0: the c^6 terms left out of the fit shift it by "
        "< 1e-5 and rounding by ~1e-9, while a penalty with the wrong weights leaves alpha = O(0.1)",
        f"logistic regression, n={n}, d={d}, p={p}, non-dropped offsets ~ N(0, 4), exact expectation over all "
        f"{2**d} masks; signed rel. error of the Fisher-weighted quadratic form at c = {scales.tolist()}: "
        + ", ".join(f"{r:.2e}" for r in rel) + f"; fit alpha = {alpha:.1e}, a = {a:.3g}, b = {b:.3g} (the error "
        "is O(c^2)). For linear regression (A'' = 1) the quadratic form is exact (dropout.linear-regression-penalty).",
        cross_checks=(CrossCheck("small-scale-accuracy", abs(rel[-1]), 1e-3,
                                 "at c = 0.00125 the O(c^2) remainder is ~1e-6 of the penalty; 1e-3 leaves margin"),))


def rnn_with_variational_dropout(x: np.ndarray, U: np.ndarray, W: np.ndarray, p: float) -> Any:
    r"""$h_t = \tanh(U x_t + W(h_{t-1}\odot z_h))$, $x_t\odot z_x$, with masks $z_x, z_h$ drawn ONCE per sequence
    (inverted, from dlmath's F.dropout) and reused at every time step; x (T, B, D) -> h_T (B, H).

    Gal & Ghahramani (2016b), A Theoretically Grounded Application of Dropout in Recurrent Neural Networks, §4.
    """
    T, B, D = x.shape
    H = W.shape[0]
    z_x, z_h = _data(F.dropout(np.ones((B, D)), p)), _data(F.dropout(np.ones((B, H)), p))
    h = np.zeros((B, H))
    for t in range(T):  # a loop over time steps, not over elements: each step depends on the last
        h = dm.tanh(dm.matmul(x[t] * z_x, U.T) + dm.matmul(h * z_h, W.T))
    return h


@claim("dropout.variational-rnn",
       title="Variational RNN dropout: one mask per sequence = one sample of the weights for the whole sequence",
       statement=r"h_t = \tanh\big(U(x_t\odot z_x) + W(h_{t-1}\odot z_h)\big)\ \forall t \iff "
                 r"h_t = \tanh(\tilde U x_t + \tilde W h_{t-1}),\ \tilde U = U\,\mathrm{diag}(z_x),\ "
                 r"\tilde W = W\,\mathrm{diag}(z_h)",
       source="Gal & Ghahramani (2016b), A Theoretically Grounded Application of Dropout in Recurrent Neural "
              "Networks, NeurIPS, §4")
def variational_rnn(ctx: RunContext) -> Evidence:
    """Chapter C13: the tied-mask RNN equals a deterministic RNN whose weight columns are dropped once."""
    rng = ctx.rng
    T, B, D, H, p = 12, 4, 5, 6, 0.3
    x = rng.standard_normal((T, B, D))
    U, W = rng.standard_normal((H, D)) / np.sqrt(D), rng.standard_normal((H, H)) / np.sqrt(H)
    _seeded(ctx.seed)
    h_var = _data(rnn_with_variational_dropout(x, U, W, p))
    _seeded(ctx.seed)  # the same draws again: z_x, then z_h (one row per sequence of the batch)
    z_x, z_h = _data(F.dropout(np.ones((B, D)), p)), _data(F.dropout(np.ones((B, H)), p))
    err, gap = 0.0, 0.0
    for b in range(B):  # each sequence has its own weight sample
        Ub, Wb = U * z_x[b], W * z_h[b]          # U diag(z_x), W diag(z_h)
        h, h_step = np.zeros(H), np.zeros(H)
        for t in range(T):
            h = np.tanh(Ub @ x[t, b] + Wb @ h)
            # naive dropout: a fresh mask at every step is no single weight sample
            m_x, m_h = (rng.random(D) >= p) / (1 - p), (rng.random(H) >= p) / (1 - p)
            h_step = np.tanh(U @ (x[t, b] * m_x) + W @ (h_step * m_h))
        err = max(err, float(np.max(np.abs(h_var[b] - h))))
        gap = max(gap, float(np.max(np.abs(h_step - h))))
    return Evidence.at_most(
        err, 1e2 * F64_EPS, "the same products, associated differently, through 12 tanh steps: ~100 ulps",
        f"T={T} steps, batch {B}, {D} inputs, {H} hidden units, p={p}: max |h_T(tied masks) - h_T(one weight "
        f"sample U diag(z_x), W diag(z_h))| = {err:.1e}; with a fresh mask per step the final state differs from "
        f"that weight sample by {gap:.2f}.",
        cross_checks=(CrossCheck("per-step-masks-differ", gap, 1e-2,
                                 "fresh masks at every step change h_T by O(1)", ">="),))
