r"""Chapter 5 — Batch normalization: the transform, its statistics, its invariance, its backward pass.

The subjects are `dlmath.nn.functional.batch_norm` (the fused primitive `batch_norm_train`, with
its hand-derived backward), `batch_norm_composed` (the formula written with the engine's ops),
`nn.BatchNorm1d/2d` and `nn.LayerNorm`. Oracles: the chapter's formulas transcribed in NumPy
(Ioffe & Szegedy 2015, Alg. 1 and the step-by-step backward of §3), central finite differences, exact
algebra, and, under ``--thorough`` (importing PyTorch takes seconds), PyTorch itself.

Not measurable here, so not claims: DCGAN (catalogue E4) uses BN in both the generator and the
discriminator, leaving it out only of the generator's output and the discriminator's input layer
(Radford, Metz & Chintala 2016); C8 and C13 are empirical; C11 (instance norm) and group norm have no
dlmath layer yet.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

import dlmath as dm

from .. import nn
from ..measure import max_relative_error as _rel
from ..nn import functional as F
from ..verify import CrossCheck, Evidence, PrintedForm, RunContext, claim

F64_EPS = float(np.finfo(np.float64).eps)
ROUNDING_TOL = 1e3 * F64_EPS
ROUNDING_REASON = "the computations differ only in rounding order: a few hundred ulps of float64"
FD_TOL = 1e-6
FD_REASON = ("central differences in float64 with h=1e-6: truncation ~h^2 and rounding ~eps/h ~ 2e-10 relative "
             "to the largest entry; 1e-6 leaves margin for the 1/sigma amplification")
TORCH_REASON = "PyTorch in float64 computes the same function: rounding only"
SOURCE_IS = "Ioffe & Szegedy (2015), Batch normalization: accelerating deep network training by reducing " \
            "internal covariate shift"


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.data if isinstance(x, dm.Tensor) else x, dtype=np.float64)


def _torch(ctx: RunContext) -> ModuleType | None:
    """PyTorch as an extra oracle under --thorough, when installed (importing it costs seconds)."""
    if not ctx.thorough:
        return None
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _channel_axes(x: np.ndarray) -> tuple[int, ...]:
    return (0, *range(2, x.ndim))


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_printed(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    r"""The chapter's training transform (C1) in NumPy, per channel (axis 1) over the other axes:
    $\mu_B = \frac1m\sum x_i$, $\sigma_B^2 = \frac1m\sum (x_i-\mu_B)^2$,
    $\hat x = (x-\mu_B)/\sqrt{\sigma_B^2+\epsilon}$,
    $y = \gamma\hat x + \beta$."""
    axes = _channel_axes(x)
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return _per_channel(gamma, x.ndim) * (x - mu) / np.sqrt(var + eps) + _per_channel(beta, x.ndim)


def ioffe_szegedy_backward(g: np.ndarray, x: np.ndarray, gamma: np.ndarray,
                           eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The step-by-step backward of Ioffe & Szegedy (2015, §3), as the chapter prints it (C7), for an (m, C) batch:
    $\partial\hat x_i = \gamma g_i$,
    $\partial\sigma^2 = \sum_i\partial\hat x_i(x_i-\mu)(-\tfrac12)(\sigma^2+\epsilon)^{-3/2}$,
    $\partial\mu = -\sum_i\partial\hat x_i/\sqrt{\sigma^2+\epsilon} + \partial\sigma^2\,(-2/m)\sum_i(x_i-\mu)$,
    $\partial x_i = \partial\hat x_i/\sqrt{\sigma^2+\epsilon} + \partial\sigma^2\,2(x_i-\mu)/m + \partial\mu/m$,
    $\partial\gamma = \sum_i g_i\hat x_i$, $\partial\beta = \sum_i g_i$."""
    m = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    xhat = (x - mu) / np.sqrt(var + eps)
    dxhat = gamma * g
    dvar = np.sum(dxhat * (x - mu), axis=0) * -0.5 * (var + eps) ** -1.5
    dmu = -np.sum(dxhat, axis=0) / np.sqrt(var + eps) + dvar * (-2.0 / m) * np.sum(x - mu, axis=0)
    dx = dxhat / np.sqrt(var + eps) + dvar * 2 * (x - mu) / m + dmu / m
    return dx, np.sum(g * xhat, axis=0), np.sum(g, axis=0)


def _batch(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Channels with different means and scales (0.03 to 3), so that eps and the statistics matter."""
    c = shape[1]
    scales = np.exp(rng.uniform(np.log(0.03), np.log(3.0), c))
    return _per_channel(rng.normal(0, 2, c), len(shape)) + _per_channel(scales, len(shape)) * rng.standard_normal(shape)


# ----- C1: the training transform ------------------------------------------------------------------------------
@claim("batchnorm.training-formula",
       title="Training-mode batch norm is the printed per-channel formula with the biased batch variance",
       statement=r"\mu_B = \tfrac1m\sum_i x_i,\ \sigma_B^2 = \tfrac1m\sum_i(x_i-\mu_B)^2,\ "
                 r"y_i = \gamma\frac{x_i-\mu_B}{\sqrt{\sigma_B^2+\epsilon}} + \beta\ \text{ per channel}",
       source=SOURCE_IS + ", Alg. 1")
def training_formula(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    shapes = [(16, 5), (6, 4, 7), (4, 3, 5, 6)] + ([(64, 32), (8, 16, 8, 8)] if ctx.thorough else [])
    worst, worst_composed, worst_torch = 0.0, 0.0, 0.0
    torch = _torch(ctx)
    for shape in shapes:
        x = _batch(rng, shape)
        c = shape[1]
        gamma, beta = rng.uniform(0.5, 2, c), rng.normal(0, 1, c)
        printed = batch_norm_printed(x, gamma, beta, 1e-5)
        worst = max(worst, _rel(_np(F.batch_norm(x, None, None, gamma, beta, training=True)), printed))
        worst_composed = max(worst_composed, _rel(_np(F.batch_norm_composed(x, None, None, gamma, beta,
                                                                            training=True)), printed))
        if torch is not None:
            ref = torch.nn.functional.batch_norm(torch.tensor(x), None, None, torch.tensor(gamma), torch.tensor(beta),
                                                 training=True).numpy()
            worst_torch = max(worst_torch, _rel(printed, ref))
    checks = [CrossCheck("composed", worst_composed, ROUNDING_TOL, ROUNDING_REASON)]
    if torch is not None:
        checks.append(CrossCheck("pytorch", worst_torch, ROUNDING_TOL, TORCH_REASON))
    return Evidence.at_most(
        worst, ROUNDING_TOL, ROUNDING_REASON,
        f"shapes {shapes}, channel scales 0.03..3: max rel. error of F.batch_norm(training=True) (fused primitive) "
        f"against the printed formula in NumPy {worst:.1e}; batch_norm_composed {worst_composed:.1e}"
        + (f"; the printed formula against torch.nn.functional.batch_norm {worst_torch:.1e}" if torch else
           "; PyTorch compared under --thorough"),
        cross_checks=tuple(checks))


# ----- C5, E5: the moments of x-hat -------------------------------------------------------------------------------
@claim("batchnorm.normalized-moments", erratum=True,
       title="Per channel, x-hat has batch mean 0 and biased batch variance sigma^2/(sigma^2 + eps), not exactly 1",
       statement=r"\frac1m\sum_i\hat x_i = 0,\qquad \frac1m\sum_i\hat x_i^2 = \frac{\sigma_B^2}{\sigma_B^2+\epsilon}",
       source=SOURCE_IS + ", Alg. 1 (catalogue E5: variance 1 holds only as eps/sigma^2 -> 0)")
def normalized_moments(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    n, c = (256, 64) if ctx.thorough else (32, 8)
    x = _batch(rng, (n, c))
    x[:, 0] *= 1e-2                 # a channel whose variance is comparable to eps
    eps = 1e-5
    xhat = _np(F.batch_norm(x, None, None, None, None, training=True, eps=eps))
    var_b = x.var(axis=0)
    mean_err = float(np.max(np.abs(xhat.mean(axis=0))))
    var_err = float(np.max(np.abs(xhat.var(axis=0) - var_b / (var_b + eps))))
    printed_err = float(np.max(np.abs(xhat.var(axis=0) - 1.0)))
    amplification = float(max(1.0, np.max(np.abs(x.mean(axis=0)) / np.sqrt(var_b + eps))))
    return Evidence.at_most(
        max(mean_err, var_err), 1e3 * F64_EPS * amplification,
        "exact identities; x - mu rounds relative to |mu| and 1/sqrt(sigma^2+eps) amplifies that by "
        f"max |mu|/sqrt(sigma^2+eps) = {amplification:.1e}: a few hundred ulps times that factor",
        f"batch {n} x {c} channels, eps = {eps:g}, the smallest channel variance {var_b.min():.1e}: "
        f"max |batch mean of x-hat| {mean_err:.1e}, max |batch variance - sigma^2/(sigma^2+eps)| {var_err:.1e}; "
        f"max |batch variance - 1| (the printed 'Var = 1') {printed_err:.1e}",
        printed=PrintedForm(r"\mathrm{Var}[\hat x] = 1", printed_err,
                            "Alg. 1's eps: the variance is sigma^2/(sigma^2+eps); 1 only in the limit"))


# ----- C2, E2: the running statistics -----------------------------------------------------------------------------
@claim("batchnorm.running-statistics", erratum=True,
       title="Running statistics are a momentum average of the batch mean and the UNBIASED batch variance",
       statement=r"\hat\mu \leftarrow (1-\alpha)\hat\mu + \alpha\mu_B,\quad "
                 r"\hat\sigma^2 \leftarrow (1-\alpha)\hat\sigma^2 + \alpha\,\frac{m}{m-1}\sigma_B^2,\quad \alpha = 0.1",
       source=SOURCE_IS + ", Alg. 2 (the unbiased m/(m-1) E[sigma_B^2] for inference); PyTorch's BatchNorm "
              "(catalogue E2: the chapter's update uses the biased sigma_B^2)")
def running_statistics(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    steps, m, c = (5, 6, 16) if ctx.thorough else (3, 6, 4)
    bn = nn.BatchNorm1d(c, dtype=np.float64)
    batches = [_batch(rng, (m, c)) for _ in range(steps)]
    mean, var, var_printed = np.zeros(c), np.ones(c), np.ones(c)
    for x in batches:
        bn(x)
        mean = 0.9 * mean + 0.1 * x.mean(axis=0)
        var = 0.9 * var + 0.1 * x.var(axis=0, ddof=1)
        var_printed = 0.9 * var_printed + 0.1 * x.var(axis=0)
    err = max(_rel(bn.running_mean, mean), _rel(bn.running_var, var))
    err_printed = _rel(bn.running_var, var_printed)
    checks = []
    torch = _torch(ctx)
    if torch is not None:
        tb = torch.nn.BatchNorm1d(c, dtype=torch.float64)
        for x in batches:
            tb(torch.tensor(x))
        checks.append(CrossCheck("pytorch", max(_rel(bn.running_mean, tb.running_mean.numpy()),
                                                _rel(bn.running_var, tb.running_var.numpy())),
                                 ROUNDING_TOL, TORCH_REASON))
    return Evidence.at_most(
        err, ROUNDING_TOL, ROUNDING_REASON,
        f"nn.BatchNorm1d({c}), {steps} training steps of batch m = {m}: running_mean/var against the momentum "
        f"average with the unbiased variance: {err:.1e}; against the printed biased update: {err_printed:.2f} "
        f"(the factor m/(m-1) = {m / (m - 1):.3f})"
        + ("" if torch else "; PyTorch's buffers compared under --thorough"),
        cross_checks=tuple(checks),
        printed=PrintedForm(r"\hat\sigma^2 \leftarrow (1-\alpha)\hat\sigma^2 + \alpha\,\sigma_B^2", err_printed,
                            "Ioffe & Szegedy (2015), Alg. 2; torch.nn.BatchNorm1d"))


# ----- C3: inference --------------------------------------------------------------------------------------------------
@claim("batchnorm.eval-mode",
       title="In evaluation mode batch norm uses the running statistics, not the batch's",
       statement=r"y = \gamma\frac{x-\hat\mu}{\sqrt{\hat\sigma^2+\epsilon}} + \beta",
       source=SOURCE_IS + ", Alg. 2")
def eval_mode(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    c = 16 if ctx.thorough else 5
    bn = nn.BatchNorm2d(c, dtype=np.float64)
    for _ in range(3):
        bn(_batch(rng, (4, c, 3, 3)))
    bn.running_var[:] = rng.uniform(1e-4, 1e-3, c)   # small enough that forgetting eps shows
    bn.weight.data[:] = rng.uniform(0.5, 2, c)
    bn.bias.data[:] = rng.normal(0, 1, c)
    x = _batch(rng, (3, c, 4, 4))
    bn.eval()
    out = _np(bn(x))
    nd = x.ndim
    expected = (_per_channel(bn.weight.data, nd) * (x - _per_channel(bn.running_mean, nd))
                / np.sqrt(_per_channel(bn.running_var, nd) + bn.eps) + _per_channel(bn.bias.data, nd))
    err = _rel(out, expected)
    train_gap = _rel(batch_norm_printed(x, bn.weight.data, bn.bias.data, bn.eps), expected)
    checks = [CrossCheck("differs-from-batch-statistics", train_gap, 1e-3, "the batch's own statistics give a "
                         "different output (it must not be what eval mode computes)", comparison=">=")]
    torch = _torch(ctx)
    if torch is not None:
        tb = torch.nn.BatchNorm2d(c, dtype=torch.float64)
        tb.load_state_dict({k: torch.tensor(v) for k, v in bn.state_dict().items()})
        tb.eval()
        checks.append(CrossCheck("pytorch", _rel(out, tb(torch.tensor(x)).detach().numpy()), ROUNDING_TOL,
                                 TORCH_REASON))
    return Evidence.at_most(
        err, ROUNDING_TOL, ROUNDING_REASON,
        f"nn.BatchNorm2d({c}) after 3 training steps, eval(): output against the formula with the running "
        f"statistics {err:.1e}; the batch statistics would give a rel. difference of {train_gap:.2f}",
        cross_checks=tuple(checks))


# ----- C4: BN can represent the identity ------------------------------------------------------------------------------
@claim("batchnorm.identity-recovery",
       title="gamma = sqrt(sigma_B^2 + eps) and beta = mu_B make batch norm the identity",
       statement=r"\gamma = \sqrt{\sigma_B^2+\epsilon},\ \beta = \mu_B\ \Rightarrow\ y_i = x_i",
       source=SOURCE_IS + ", §3")
def identity_recovery(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    x = _batch(rng, (64, 32) if ctx.thorough else (12, 6))
    x[:, 0] *= 1e-2
    eps = 1e-5
    y = _np(F.batch_norm(x, None, None, np.sqrt(x.var(axis=0) + eps), x.mean(axis=0), training=True, eps=eps))
    err = _rel(y, x)
    return Evidence.at_most(
        err, ROUNDING_TOL, ROUNDING_REASON,
        f"batch {x.shape}, eps {eps:g}, one channel with variance {x.var(axis=0).min():.1e}: "
        f"max rel. |y - x| {err:.1e}")


# ----- C6, E3: scale invariance and the gradient ----------------------------------------------------------------------
@claim("batchnorm.scale-invariance", erratum=True,
       title="BN(aWu) = BN(Wu); the gradient is orthogonal to each row of W and scales as 1/a",
       statement=r"\mathrm{BN}(aWu) = \mathrm{BN}(Wu),\quad \nabla_{aW}\mathcal L = \tfrac1a\nabla_W\mathcal L,\quad "
                 r"\langle(\nabla_W\mathcal L)_{j\cdot}, W_{j\cdot}\rangle = 0\ (\epsilon = 0)",
       source=SOURCE_IS + ", §3.3 (and §3.2: BN sits before the nonlinearity, z = g(BN(Wu)); the chapter's "
              "bn_position_experiment mislabels 'after the activation' as the original, catalogue E1); Arora, Li & "
              "Lyu (2019), Theoretical analysis of auto rate-tuning by batch normalization (catalogue E3: the "
              "gradient scales with 1/||W||, not with 1/||Wx|| of one sample)")
def scale_invariance(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    m, d_in, d_out = (64, 32, 16) if ctx.thorough else (16, 6, 4)
    U = rng.standard_normal((m, d_in))
    W = rng.standard_normal((d_out, d_in))
    G = rng.standard_normal((m, d_out))                     # a fixed linear loss downstream: L = <G, tanh(BN)>
    eps = 0.0

    def loss(Wm: Any) -> Any:
        return dm.sum(dm.tanh(F.batch_norm(dm.matmul(U, dm.transpose(Wm)), None, None, training=True, eps=eps)) * G)

    def bn_out(Wm: np.ndarray) -> np.ndarray:
        return _np(F.batch_norm(U @ Wm.T, None, None, training=True, eps=eps))
    a = 3.7
    inv_err = _rel(bn_out(a * W), bn_out(W))
    flip_err = _rel(bn_out(-a * W), -bn_out(W))            # the scope a > 0: a negative scale flips the sign
    gW = _np(dm.grad(loss)(W))
    gaW = _np(dm.grad(loss)(a * W))
    scale_err = _rel(gaW, gW / a)
    ortho = float(np.max(np.abs(np.sum(gW * W, axis=1)) / (np.linalg.norm(gW, axis=1) * np.linalg.norm(W, axis=1))))
    # auto rate-tuning: a gradient step can only grow ||W||: ||W - eta g||^2 = ||W||^2 + eta^2 ||g||^2
    eta = 0.1
    step_err = abs(np.sum((W - eta * gW) ** 2) - np.sum(W ** 2) - eta ** 2 * np.sum(gW ** 2)) / np.sum(W ** 2)
    # E3: scale one row j by a; per-row invariance says row j's gradient scales by 1/a and the others do not
    # change, while "grad ~ 1/||Wx||" predicts the whole gradient scales by mean ||Wx|| / mean ||W'x||
    Wr = W.copy()
    Wr[0] *= a
    gr = _np(dm.grad(loss)(Wr))
    expected = gW.copy()
    expected[0] /= a
    row_err = _rel(gr, expected)
    ratio = np.mean(np.linalg.norm(U @ W.T, axis=1)) / np.mean(np.linalg.norm(U @ Wr.T, axis=1))
    printed_err = _rel(gr, gW * ratio)
    fd_dir = rng.standard_normal(W.shape)
    h = 1e-6
    fd = (float(_np(loss(W + h * fd_dir))) - float(_np(loss(W - h * fd_dir)))) / (2 * h)
    fd_err = abs(fd - float(np.sum(gW * fd_dir))) / (np.linalg.norm(gW) * np.linalg.norm(fd_dir))
    # with eps > 0 the invariance is approximate: (a^2 sigma^2 + eps) vs (sigma^2 + eps)
    eps_gap = _rel(_np(F.batch_norm(U @ (a * W).T, None, None, training=True, eps=1e-2)),
                   _np(F.batch_norm(U @ W.T, None, None, training=True, eps=1e-2)))
    measured = max(inv_err, scale_err, ortho, row_err, step_err)
    return Evidence.at_most(
        measured, 1e4 * F64_EPS,
        "exact identities at eps = 0 evaluated in float64 through a tanh and a batch of m; 1e4 ulps covers "
        "the cancellation in the orthogonality ratio",
        f"U {m}x{d_in}, W {d_out}x{d_in}, loss <G, tanh(BN(U W^T))>, a = {a}: rel. |BN(aWu) - BN(Wu)| {inv_err:.1e} "
        f"(and |BN(-aWu) + BN(Wu)| {flip_err:.1e}: a > 0 is needed); "
        f"|grad(aW) - grad(W)/a| {scale_err:.1e}; max per-row cos(grad_j, W_j) {ortho:.1e}; one GD step "
        f"||W - eta g||^2 - ||W||^2 - eta^2 ||g||^2 (rel.) {step_err:.1e}; one row scaled by a: its gradient /a, "
        f"others unchanged {row_err:.1e}, while the printed '1/||Wx||' predicts {printed_err:.2f}. With eps = 1e-2 "
        f"the invariance is approximate: {eps_gap:.1e}. Directional finite differences of the gradient: {fd_err:.1e}",
        cross_checks=(CrossCheck("finite-differences", fd_err, FD_TOL, FD_REASON),
                      CrossCheck("negative-scale-flips-sign", flip_err, 1e4 * F64_EPS,
                                 "BN(-aWu) = -BN(Wu) exactly: the invariance needs a > 0")),
        printed=PrintedForm(r"\partial\,\mathrm{BN}(Wx)/\partial W \propto 1/\|Wx\|", printed_err,
                            "Ioffe & Szegedy (2015), §3.3: scale invariance, the gradient scales as 1/a per row"))


# ----- C7: the backward pass ------------------------------------------------------------------------------------------
@claim("batchnorm.backward-closed-form",
       title="The step-by-step closed-form backward of Ioffe & Szegedy equals the engine's gradients",
       statement=r"\frac{\partial\mathcal L}{\partial x_i} = \frac{\partial\mathcal L}{\partial\hat x_i}"
                 r"\frac{1}{\sqrt{\sigma^2+\epsilon}} + \frac{\partial\mathcal L}{\partial\sigma^2}\frac{2(x_i-\mu)}{m}"
                 r"+ \frac{\partial\mathcal L}{\partial\mu}\frac1m,\ \ \frac{\partial\mathcal L}{\partial\gamma} = "
                 r"\sum_i g_i\hat x_i,\ \ \frac{\partial\mathcal L}{\partial\beta} = \sum_i g_i",
       source=SOURCE_IS + ", §3 (backward formulas)")
def backward_closed_form(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    m, c = (64, 16) if ctx.thorough else (10, 4)
    x = _batch(rng, (m, c))
    gamma, beta = rng.uniform(0.5, 2, c), rng.normal(0, 1, c)
    g = rng.standard_normal((m, c))
    eps = 1e-5
    oracle = ioffe_szegedy_backward(g, x, gamma, eps)

    def fused(xx: Any, gg: Any, bb: Any) -> Any:
        return dm.sum(F.batch_norm(xx, None, None, gg, bb, training=True, eps=eps) * g)

    def composed(xx: Any, gg: Any, bb: Any) -> Any:
        return dm.sum(F.batch_norm_composed(xx, None, None, gg, bb, training=True, eps=eps) * g)
    hand = [_np(t) for t in dm.grad(fused, argnums=(0, 1, 2))(x, gamma, beta)]
    auto = [_np(t) for t in dm.grad(composed, argnums=(0, 1, 2))(x, gamma, beta)]
    err_hand = max(_rel(a, b) for a, b in zip(hand, oracle, strict=True))
    err_auto = max(_rel(a, b) for a, b in zip(auto, oracle, strict=True))
    # forward mode of the fused primitive against the same closed form: <dL/dx, v> = J v . g
    v = rng.standard_normal(x.shape)
    _, tangent = dm.jvp(lambda xx: F.batch_norm(xx, None, None, gamma, beta, training=True, eps=eps), (x,), (v,))
    jvp_err = abs(float(np.sum(_np(tangent) * g)) - float(np.sum(oracle[0] * v))) / (
        np.linalg.norm(oracle[0]) * np.linalg.norm(v))
    fd = dm.numerical_jacobian(lambda xx: np.array([np.sum(batch_norm_printed(xx, gamma, beta, eps) * g)]),
                               [x.copy()], 0, 1e-6)[0]
    fd_err = _rel(fd, oracle[0])
    checks = [CrossCheck("composed-autodiff", err_auto, 1e4 * F64_EPS, "rounding of two different orders of "
                         "evaluation, amplified by 1/sigma for the small channels: 1e4 ulps"),
              CrossCheck("forward-mode", jvp_err, 1e4 * F64_EPS, "the primitive's JVP rule, written separately"),
              CrossCheck("finite-differences", fd_err, FD_TOL, FD_REASON)]
    torch = _torch(ctx)
    if torch is not None:
        tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
        (torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=eps) * torch.tensor(g)).sum()\
            .backward()
        err_torch = max(_rel(t.grad.numpy(), o) for t, o in zip((tx, tg, tb), oracle, strict=True))
        checks.append(CrossCheck("pytorch", err_torch, 1e4 * F64_EPS, TORCH_REASON))
    return Evidence.at_most(
        err_hand, 1e4 * F64_EPS,
        "rounding of two different orders of evaluation, amplified by 1/sigma for the small channels: 1e4 ulps",
        f"batch {m} x {c}, channel scales 0.03..3, eps {eps:g}: max rel. error (x, gamma, beta) of the fused "
        f"primitive's hand-written VJP against the step-by-step formulas (NumPy) {err_hand:.1e}; autodiff of "
        f"batch_norm_composed {err_auto:.1e}; the primitive's JVP paired with g {jvp_err:.1e}; central differences "
        f"{fd_err:.1e}" + ("; PyTorch autograd compared" if torch else "; PyTorch compared under --thorough"),
        cross_checks=tuple(checks))


# ----- C9, C10, code erratum: the normalisation axes ------------------------------------------------------------------
@claim("batchnorm.normalization-axes", erratum=True,
       title="BatchNorm normalises per channel over (N, H, W) or (N, L); LayerNorm per sample over (C, H, W)",
       statement=r"\mathrm{BN}:\ \mu_c = \frac{1}{NHW}\sum_{n,h,w}x_{nchw},\qquad "
                 r"\mathrm{LN}:\ \mu_n = \frac{1}{CHW}\sum_{c,h,w}x_{nchw}",
       source="Wu & He (2018), Group normalization, Fig. 2; Ba, Kiros & Hinton (2016), Layer normalization "
              "(code erratum: the chapter's from-scratch BatchNorm1d broadcasts a (C,) mean along the last axis of "
              "an (N, C, L) input)")
def normalization_axes(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    N, C, H, W = (8, 6, 5, 5) if ctx.thorough else (4, 3, 4, 5)
    eps = 1e-5
    x = _batch(rng, (N, C, H, W))
    bn2 = _np(nn.BatchNorm2d(C, dtype=np.float64)(x))
    mu, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    err_bn2 = _rel(bn2, (x - mu) / np.sqrt(var + eps))
    ln = _np(nn.LayerNorm([C, H, W], dtype=np.float64)(x))
    mu_l, var_l = x.mean(axis=(1, 2, 3), keepdims=True), x.var(axis=(1, 2, 3), keepdims=True)
    err_ln = _rel(ln, (x - mu_l) / np.sqrt(var_l + eps))
    # (N, C, L) with L = C: PyTorch's BatchNorm1d normalises channel c over (N, L)
    x3 = _batch(rng, (N, C, C))
    bn1 = _np(nn.BatchNorm1d(C, dtype=np.float64)(x3))
    mu3, var3 = x3.mean(axis=(0, 2), keepdims=True), x3.var(axis=(0, 2), keepdims=True)
    err_bn1 = _rel(bn1, (x3 - mu3) / np.sqrt(var3 + eps))
    # the printed code: mean and var of shape (C,) subtracted without .view(1, C, 1): they broadcast along L
    printed = (x3 - mu3.reshape(C)) / np.sqrt(var3.reshape(C) + eps)
    err_printed = _rel(bn1, printed)
    checks = []
    torch = _torch(ctx)
    if torch is not None:
        t = torch.tensor
        err_t = max(_rel(bn2, torch.nn.functional.batch_norm(t(x), None, None, training=True).numpy()),
                    _rel(ln, torch.nn.functional.layer_norm(t(x), [C, H, W]).numpy()),
                    _rel(bn1, torch.nn.functional.batch_norm(t(x3), None, None, training=True).numpy()))
        checks.append(CrossCheck("pytorch", err_t, ROUNDING_TOL, TORCH_REASON))
    return Evidence.at_most(
        max(err_bn2, err_ln, err_bn1), ROUNDING_TOL, ROUNDING_REASON,
        f"x {N}x{C}x{H}x{W}: BatchNorm2d against the reduction over (N, H, W) {err_bn2:.1e}; LayerNorm([C, H, W]) "
        f"against the reduction over (C, H, W) {err_ln:.1e}; BatchNorm1d on an ({N}, {C}, {C}) input against the "
        f"reduction over (N, L) {err_bn1:.1e}; the printed code's (C,)-shaped statistics: {err_printed:.2f}",
        cross_checks=tuple(checks),
        printed=PrintedForm(r"(x - \mu_{(C,)})/\sqrt{\sigma^2_{(C,)}+\epsilon}\ \text{on } (N, C, L)", err_printed,
                            "reshape the statistics (and gamma, beta) to (1, C, 1), as torch.nn.BatchNorm1d does"))


# ----- C12, code erratum: folding BN into the preceding layer ---------------------------------------------------------
@claim("batchnorm.fold-into-linear", erratum=True,
       title="An eval-mode BN folds into the preceding layer, bias included",
       statement=r"W' = \frac{\gamma}{\sqrt{\hat\sigma^2+\epsilon}}W,\quad "
                 r"b' = \beta + (b - \hat\mu)\frac{\gamma}{\sqrt{\hat\sigma^2+\epsilon}}",
       source="Jacob et al. (2018), Quantization and training of neural networks for efficient integer-arithmetic-"
              "only inference, §3.2 (code erratum: the chapter's fusion drops the conv bias b; nn.Conv2d and "
              "nn.Linear default to bias=True)")
def fold_into_linear(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    d_in, d_out, m = (32, 16, 64) if ctx.thorough else (6, 4, 8)
    lin = nn.Linear(d_in, d_out, dtype=np.float64, generator=rng)
    bn = nn.BatchNorm1d(d_out, dtype=np.float64)
    for _ in range(3):
        bn(lin(_batch(rng, (m, d_in))))
    bn.weight.data[:] = rng.uniform(0.5, 2, d_out)
    bn.bias.data[:] = rng.normal(0, 1, d_out)
    bn.eval()
    x = rng.standard_normal((m, d_in))
    ref = _np(bn(lin(x)))
    stats = (bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    W, b = nn.fusion.fuse_linear_bn_weights(lin.weight, lin.bias, *stats)
    err = _rel(x @ W.T + b, ref)
    Wp, bp = nn.fusion.fuse_linear_bn_weights(lin.weight, None, *stats)   # the printed code: the bias ignored
    err_printed = _rel(x @ Wp.T + bp, ref)
    checks = []
    torch = _torch(ctx)
    if torch is not None:
        t = torch.tensor
        tW, tb = torch.nn.utils.fusion.fuse_linear_bn_weights(
            t(_np(lin.weight)), t(_np(lin.bias)), t(bn.running_mean), t(bn.running_var), bn.eps, t(_np(bn.weight)),
            t(_np(bn.bias)))
        checks.append(CrossCheck("pytorch", max(_rel(W, tW.detach().numpy()), _rel(b, tb.detach().numpy())),
                                 ROUNDING_TOL, "torch.nn.utils.fusion.fuse_linear_bn_weights: " + TORCH_REASON))
    return Evidence.at_most(
        err, ROUNDING_TOL, ROUNDING_REASON,
        f"Linear({d_in}, {d_out}) with bias then BatchNorm1d in eval mode (running statistics from 3 steps): the "
        f"folded layer (nn.fusion.fuse_linear_bn_weights) against the two {err:.1e}; the fusion without the "
        f"layer's bias {err_printed:.2f}" + ("" if torch else "; PyTorch's fusion compared under --thorough"),
        cross_checks=tuple(checks),
        printed=PrintedForm(r"b' = \beta - \hat\mu\,\gamma/\sqrt{\hat\sigma^2+\epsilon}", err_printed,
                            "the algebra of gamma (W x + b - mu)/sigma + beta"))
