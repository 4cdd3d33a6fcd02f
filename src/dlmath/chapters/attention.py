r"""Chapter 6 — Attention: $\mathrm{Attention}(Q, K, V) = \mathrm{softmax}(QK^\top/\sqrt{d_k})V$, multi-head,
self- and cross-attention, masks, cost, exact memory-efficient attention and linear attention.

Oracles nobody here wrote: SciPy's softmax, closed forms (the softmax Jacobian), finite differences,
Monte-Carlo estimates with their standard errors, exact zeros, tracemalloc's byte counts, and the flop
counter's per-op formulas. The layers checked are ``dlmath.nn``'s (``scaled_dot_product_attention``,
``MultiheadAttention``, ``TransformerEncoderLayer``, ``linear_attention``); PyTorch checks them in the tests.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special as sps

import dlmath as dm

from .. import nn
from ..measure import max_relative_error as _rel
from ..nn import functional as F
from ..verify import CrossCheck, Evidence, PrintedForm, RunContext, claim

F64_EPS = float(np.finfo(np.float64).eps)
VASWANI = "Vaswani et al. (2017), Attention is all you need, NeurIPS"


def _np(x: Any) -> np.ndarray:
    """The array of a result (a layer's output is a Tensor on the tape: its values, without the gradient)."""
    return x.data if isinstance(x, dm.Tensor) else np.asarray(x)


def _reference_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """softmax(Q K^T s) V with SciPy's softmax: the oracle."""
    return sps.softmax(q @ np.swapaxes(k, -1, -2) * scale, axis=-1) @ v


def _mha(rng: np.random.Generator, E: int, H: int, **kw: Any) -> nn.MultiheadAttention:
    """A float64 MultiheadAttention with random (non-zero) biases, so every parameter matters."""
    m = nn.MultiheadAttention(E, H, dtype=np.float64, generator=rng, **kw)
    if m.in_proj_bias is not None:
        m.in_proj_bias.data[...] = 0.1 * rng.standard_normal(m.in_proj_bias.shape)
        m.out_proj.bias.data[...] = 0.1 * rng.standard_normal(m.out_proj.bias.shape)
    return m


# ----- C1: the formula ---------------------------------------------------------------------------------------------
@claim("attention.definition",
       title="Scaled dot-product attention is softmax(QK^T/sqrt(d_k))V, shape n x d_v",
       statement=r"\mathrm{Attention}(Q,K,V)=\mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right)V\in"
                 r"\mathbb R^{n\times d_v},\quad Q\in\mathbb R^{n\times d_k},K\in\mathbb R^{m\times d_k},"
                 r"V\in\mathbb R^{m\times d_v}",
       source=VASWANI + ", eq. (1)")
def definition(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    n, m, dk, dv = (12, 17, 8, 5) if not ctx.thorough else (64, 80, 32, 24)
    q, k, v = rng.standard_normal((3, n, dk)), rng.standard_normal((3, m, dk)), rng.standard_normal((3, m, dv))
    ref = _reference_attention(q, k, v, 1 / np.sqrt(dk))
    naive = F.scaled_dot_product_attention(q, k, v, method="naive")
    block = F.scaled_dot_product_attention(q, k, v, method="blockwise", block_size=5)
    shape_ok = float(naive.shape != (3, n, dv) or block.shape != (3, n, dv))
    reason = f"sums of {m} terms in float64: relative rounding ~ m eps ~ {m * F64_EPS:.0e}; 1e-13 leaves margin"
    return Evidence.at_most(
        _rel(naive, ref), 1e-13, reason,
        f"Q (3,{n},{dk}), K (3,{m},{dk}), V (3,{m},{dv}); dlmath's naive path vs SciPy's softmax formula; the "
        f"output shape is (3, {n}, {dv}) = (batch, n, d_v)",
        cross_checks=(CrossCheck("blockwise-path", _rel(block, ref), 1e-13, reason),
                      CrossCheck("output-shape-mismatch", shape_ok, 0.0, "exact: shapes are integers")))


# ----- C3: rows are probability vectors ------------------------------------------------------------------------------
@claim("attention.rows-are-distributions",
       title="Every row of the attention matrix is a probability vector (also with masks)",
       statement=r"P=\mathrm{softmax}(QK^\top/\sqrt{d_k}+B):\ P_{ij}\ge 0,\ \sum_j P_{ij}=1",
       source=VASWANI + "; the weights returned after dropout (train mode) are not (the chapter's code)")
def rows_are_distributions(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    n, dk = (16, 8) if not ctx.thorough else (128, 32)
    q, k = rng.standard_normal((4, n, dk)) * 3, rng.standard_normal((4, n, dk)) * 3  # large logits too
    mask = rng.random((n, n)) > 0.5
    mask[:, 0] = True
    worst_sum, most_negative = 0.0, 0.0
    for bias, causal in ((None, False), (np.where(mask, 0.0, -np.inf), False), (None, True)):
        p = _np(F.attention_probabilities(q, k, bias, causal=causal))
        worst_sum = max(worst_sum, float(np.max(np.abs(p.sum(-1) - 1))))
        most_negative = min(most_negative, float(p.min()))
    mha = nn.MultiheadAttention(8, 2, dropout=0.5, dtype=np.float64, generator=rng)
    x = rng.standard_normal((n, 2, 8))
    _, w_train = mha(x, x, x)
    train_dev = float(np.max(np.abs(_np(w_train).sum(-1) - 1)))
    return Evidence.at_most(
        worst_sum, n * F64_EPS * 4, f"a sum of n={n} terms each rounded: |error| <= n eps; x4 margin",
        f"max |row sum - 1| over plain, boolean-masked and causal attention: {worst_sum:.1e}; smallest entry "
        f"{most_negative:.1e}. The chapter's code returns weights after dropout: in train mode (p=0.5) their "
        f"rows deviate from 1 by up to {train_dev:.2f} (not probability vectors; PyTorch does the same).",
        cross_checks=(CrossCheck("nonnegative", -most_negative, 0.0, "exact: exp >= 0"),
                      CrossCheck("dropout-weights-not-normalised", train_dev, 0.05,
                                 "rows of inverted-dropout weights sum to (kept mass)/(1-p), far from 1", ">=")))


# ----- C2: Var(q.k) = d_k ---------------------------------------------------------------------------------------
@claim("attention.dot-product-variance",
       title="Var(q.k) = d_k for i.i.d. unit-variance entries, so 1/sqrt(d_k) gives unit-variance logits",
       statement=r"\mathbb E[q\cdot k]=0,\ \mathrm{Var}[q\cdot k]=d_k,\ "
                 r"\mathrm{Var}[q\cdot k/\sqrt{d_k}]=1",
       source=VASWANI + ", footnote 4")
def dot_product_variance(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    N = 8000 if not ctx.thorough else 100_000
    z_var, z_mean, z_scaled = 0.0, 0.0, 0.0
    rows = []
    for d in (16, 64, 256):
        q, k = rng.standard_normal((N, d)), rng.standard_normal((N, d))
        x = np.einsum("nd,nd->n", q, k)
        # sample variance of a sum of d products of N(0,1): mu4 = 3d^2 + 6d, so Var(s^2) ~ (2d^2 + 6d)/N
        se_rel = np.sqrt((2 + 6 / d) / N)
        ratio = x.var() / d
        scaled = (x * F.attention_scale(d)).var()
        z_var = max(z_var, abs(ratio - 1) / se_rel)
        z_scaled = max(z_scaled, abs(scaled - 1) / se_rel)
        z_mean = max(z_mean, abs(x.mean()) / np.sqrt(d / N))
        rows.append(f"d_k={d}: Var/d_k={ratio:.4f}, scaled Var={scaled:.4f} (SE {se_rel:.4f})")
    reason = ("Monte Carlo, N samples per d_k: the sample variance's standard error is sqrt((2+6/d_k)/N) "
              "relative (fourth moment 3d^2+6d); 4 SE bounds the largest of three z-scores (p ~ 2e-4)")
    return Evidence.at_most(
        z_var, 4.0, reason, "; ".join(rows) + f"; z-scores: variance {z_var:.2f}, scaled {z_scaled:.2f}, "
        f"mean {z_mean:.2f}",
        cross_checks=(CrossCheck("scaled-logits-unit-variance", z_scaled, 4.0, reason + " (dlmath's scale)"),
                      CrossCheck("zero-mean", z_mean, 4.0, "mean's SE sqrt(d_k/N); 4 SE")))


# ----- saturation without the scale ----------------------------------------------------------------------------------
def _entropy_and_gradient(q: np.ndarray, k: np.ndarray, scale: float, rng: np.random.Generator) -> tuple[float, float]:
    """Mean softmax entropy of the rows and mean norm of the gradient of <P, U> w.r.t. the logits."""
    s = dm.tensor((q @ np.swapaxes(k, -1, -2)) * scale, requires_grad=True)
    p = dm.softmax(s, axis=-1)
    (p * rng.standard_normal(p.shape)).sum().backward()
    pd = p.data
    ent = -np.sum(np.where(pd > 0, pd * np.log(np.where(pd > 0, pd, 1.0)), 0.0), axis=-1)
    return float(ent.mean()), float(np.linalg.norm(s.grad.data, axis=-1).mean())


@claim("attention.softmax-saturation",
       title="Without 1/sqrt(d_k) the softmax saturates as d_k grows: entropy and gradient collapse",
       statement=r"\mathrm{std}(q\cdot k)=\sqrt{d_k}\ \Rightarrow\ H(\mathrm{softmax}(q^\top K))\to 0,\ "
                 r"\|\partial\,\mathrm{softmax}\|\to 0;\ \text{with } 1/\sqrt{d_k}\text{ both stay constant}",
       source=VASWANI + ", section 3.2.1")
def softmax_saturation(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    N, n = (1500, 16) if not ctx.thorough else (4000, 16)
    dims = (4, 16, 64, 256)
    scaled, unscaled = [], []
    for d in dims:
        q, k = rng.standard_normal((N, 1, d)), rng.standard_normal((N, n, d))
        scaled.append(_entropy_and_gradient(q, k, F.attention_scale(d), rng))
        unscaled.append(_entropy_and_gradient(q, k, 1.0, rng))
    h_s = np.array([e for e, _ in scaled])
    h_u = np.array([e for e, _ in unscaled])
    g_s, g_u = scaled[-1][1], unscaled[-1][1]
    g_un = np.array([g for _, g in unscaled])
    ratio = h_u[-1] / h_s[-1]
    reason = (f"mean entropies over N={N} rows have SE <= 0.02 (row std <= 0.6 nats / sqrt(N)); 'saturated' "
              f"means below a quarter of the scaled entropy (log {n} = {np.log(n):.2f} is the maximum)")
    return Evidence.at_most(
        ratio, 0.25, reason,
        f"{n} keys; mean entropy with 1/sqrt(d_k) at d_k={dims}: {np.round(h_s, 3).tolist()}; without: "
        f"{np.round(h_u, 3).tolist()}; mean gradient norm scaled {g_s:.3f} at d_k={dims[-1]}; without: "
        f"{np.round(g_un, 4).tolist()}",
        cross_checks=(
            CrossCheck("scaled-entropy-flat", float(h_s.max() / h_s.min() - 1), 0.05,
                       "unit-variance logits for every d_k: the entropy varies only by the logits' non-Gaussian "
                       "shape at small d_k (~1%) and SE; 5% bound"),
            CrossCheck("unscaled-entropy-decreasing", float(np.max(np.diff(h_u))), 0.0,
                       "each 4x larger d_k doubles the logit std; differences >> SE", "<="),
            CrossCheck("unscaled-gradient-vanishes", g_u / g_s, 1 / 3,
                       "saturated softmax: the Jacobian diag(p) - pp^T tends to 0 at a one-hot p; below a third "
                       "of the scaled gradient at the largest d_k"),
            CrossCheck("unscaled-gradient-decreasing", float(np.max(np.diff(g_un))), 0.0,
                       "falls with every 4x larger d_k (differences >> SE)")))


# ----- the softmax Jacobian ------------------------------------------------------------------------------------------
@claim("attention.softmax-jacobian",
       title="The softmax Jacobian is diag(p) - p p^T (reverse and forward mode, finite differences)",
       statement=r"\frac{\partial\,\mathrm{softmax}(x)_i}{\partial x_j}=p_i(\delta_{ij}-p_j),\quad "
                 r"J=\mathrm{diag}(p)-pp^\top",
       source="Bridle (1990); Goodfellow, Bengio & Courville (2016), section 6.2.2.3")
def softmax_jacobian(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    n = 7 if not ctx.thorough else 40
    x = rng.standard_normal(n) * 2
    p = sps.softmax(x)
    closed = np.diag(p) - np.outer(p, p)

    def f(z: Any) -> Any:
        return dm.softmax(z, axis=-1)
    rev = _np(dm.jacobian(f, mode="reverse")(x))
    fwd = _np(dm.jacobian(f, mode="forward")(x))
    h = 1e-6
    fd = np.stack([(sps.softmax(x + h * e) - sps.softmax(x - h * e)) / (2 * h) for e in np.eye(n)], axis=1)
    reason = "closed form and autodiff both in float64: a few eps per entry"
    return Evidence.at_most(
        float(np.max(np.abs(rev - closed))), 1e2 * F64_EPS, reason,
        f"n={n}; max |J_reverse - (diag p - pp^T)|; forward mode and central differences (h=1e-6) as cross-checks",
        cross_checks=(CrossCheck("forward-mode", float(np.max(np.abs(fwd - closed))), 1e2 * F64_EPS, reason),
                      CrossCheck("finite-differences", float(np.max(np.abs(fd - closed))), 1e-8,
                                 "central differences, h=1e-6: truncation ~h^2, rounding ~eps/h ~ 2e-10")))


# ----- permutation equivariance -----------------------------------------------------------------------------------
@claim("attention.permutation-equivariance",
       title="Self-attention without positions is permutation-equivariant; sinusoidal positions break it",
       statement=r"f(\Pi X)=\Pi f(X)\ \text{for } f(X)=\mathrm{MHA}(X,X,X);\quad "
                 r"g(\Pi X)\ne\Pi g(X)\ \text{for } g(X)=f(X+PE)",
       source=VASWANI + ", sections 3.2 and 3.5 (sinusoidal positional encoding)")
def permutation_equivariance(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    L, E = (7, 8) if not ctx.thorough else (32, 16)
    mha = _mha(rng, E, 2)
    layer = nn.TransformerEncoderLayer(E, 2, dim_feedforward=16, dropout=0.0, dtype=np.float64)
    x = rng.standard_normal((L, 1, E))
    perm = rng.permutation(L)
    while np.all(perm == np.arange(L)):
        perm = rng.permutation(L)
    pe = nn.sinusoidal_positional_encoding(L, E, dtype=np.float64)[:, None, :]

    def attn(z: np.ndarray) -> np.ndarray:
        return _np(mha(z, z, z, need_weights=False)[0])

    equi = _rel(attn(x[perm]), attn(x)[perm])
    equi_layer = _rel(_np(layer(x[perm])), _np(layer(x))[perm])
    with_pe = _rel(attn(x[perm] + pe), attn(x + pe)[perm])
    reason = "the same sums in a permuted order: float64 rounding, a few eps; 1e-12 leaves margin"
    return Evidence.at_most(
        equi, 1e-12, reason,
        f"L={L}, E={E}, 2 heads; relative |f(PX) - P f(X)|: MultiheadAttention {equi:.1e}, "
        f"TransformerEncoderLayer {equi_layer:.1e}; with sinusoidal positions added: {with_pe:.2f}",
        cross_checks=(CrossCheck("encoder-layer-equivariant", equi_layer, 1e-12, reason),
                      CrossCheck("positions-break-equivariance", with_pe, 1e-3,
                                 "positions differ by O(1) entries: the outputs move by O(1), far above rounding",
                                 ">=")))


# ----- C4: multi-head = concat + output projection -----------------------------------------------------------------
@claim("attention.multi-head-concat",
       title="Multi-head attention is the concatenation of the heads followed by the output projection",
       statement=r"\mathrm{MultiHead}(Q,K,V)=\mathrm{Concat}(\mathrm{head}_1,\dots,\mathrm{head}_h)W^O,\ "
                 r"\mathrm{head}_i=\mathrm{Attention}(QW_i^Q,KW_i^K,VW_i^V),\ d_k=d_v=d_{model}/h=64",
       source=VASWANI + ", section 3.2.2 (d_model = 512, h = 8)")
def multi_head_concat(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    E, H, L, N = 512, 8, (5 if not ctx.thorough else 32), 2
    mha = _mha(rng, E, H)
    x = rng.standard_normal((L, N, E))
    y = rng.standard_normal((L + 2, N, E))
    W, b = mha.in_proj_weight.data, mha.in_proj_bias.data
    dh = E // H
    heads = []
    for i in range(H):
        rows = slice(i * dh, (i + 1) * dh)
        qi = x @ W[:E][rows].T + b[:E][rows]
        ki = y @ W[E:2 * E][rows].T + b[E:2 * E][rows]
        vi = y @ W[2 * E:][rows].T + b[2 * E:][rows]
        heads.append(_reference_attention(qi.transpose(1, 0, 2), ki.transpose(1, 0, 2), vi.transpose(1, 0, 2),
                                          1 / np.sqrt(dh)))
    concat = np.concatenate(heads, axis=-1)                                  # (N, L, h d_v)
    ref = (concat @ mha.out_proj.weight.data.T + mha.out_proj.bias.data).transpose(1, 0, 2)
    out_w = _np(mha(x, y, y)[0])
    out_f = _np(mha(x, y, y, need_weights=False)[0])
    reason = f"sums of {E} products in float64: relative rounding ~ {E * F64_EPS:.0e}; 1e-12 with margin"
    return Evidence.at_most(
        _rel(out_w, ref), 1e-12, reason,
        f"d_model={E}, h={H}, head dim {mha.head_dim}; MultiheadAttention (explicit-weights path) vs the heads "
        f"computed one by one with SciPy's softmax, concatenated and projected by W^O",
        cross_checks=(CrossCheck("fused-path", _rel(out_f, ref), 1e-12, reason),
                      CrossCheck("head-dim-is-64", abs(mha.head_dim - 64), 0, "exact: 512 / 8")))


# ----- C5: cross-attention -----------------------------------------------------------------------------------------
@claim("attention.cross-attention",
       title="Cross-attention: queries from one sequence, keys/values from another; queries do not interact",
       statement=r"\mathrm{out}_i=\mathrm{MHA}(x_i, Y, Y)\ \text{depends on } x_i \text{ and } Y \text{ only, and is "
                 r"invariant to permuting } Y",
       source=VASWANI + ", section 3.2.3. Note (erratum E2): CLIP does not use cross-attention; it is a dual "
                        "encoder trained with a symmetric contrastive (InfoNCE) loss on L2-normalised embeddings "
                        "with a learned temperature (Radford et al. 2021, Learning transferable visual models "
                        "from natural language supervision)")
def cross_attention(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    L, S, E = (4, 6, 6) if not ctx.thorough else (10, 16, 12)
    mha = _mha(rng, E, 2, kdim=5, vdim=3)
    x, y_k, y_v = rng.standard_normal((L, E)), rng.standard_normal((S, 5)), rng.standard_normal((S, 3))

    def f(xx: Any) -> Any:
        return mha(xx, y_k, y_v, need_weights=False)[0]
    J = _np(dm.jacobian(f)(x))                                        # (L, E, L, E)
    off = max(float(np.max(np.abs(J[i, :, j, :]))) for i in range(L) for j in range(L) if i != j)
    own = min(float(np.max(np.abs(J[i, :, i, :]))) for i in range(L))
    perm = rng.permutation(S)
    inv = _rel(_np(f(x)), _np(mha(x, y_k[perm], y_v[perm], need_weights=False)[0]))
    return Evidence.at_most(
        off, 0.0, "exact: no operation couples two queries, so the cross-query Jacobian blocks are exact zeros",
        f"L={L} queries (dim {E}), S={S} keys (kdim 5, vdim 3); max |d out_i / d x_j| for i != j: {off:.1e}; "
        f"smallest own-block norm {own:.2f}; output change when Y is permuted: {inv:.1e}",
        cross_checks=(CrossCheck("key-permutation-invariance", inv, 1e-12, "a sum over keys in another order: "
                                 "float64 rounding"),
                      CrossCheck("own-query-matters", own, 1e-6, "the Jacobian w.r.t. the own query is O(1)", ">=")))


# ----- C12: the memory-efficient path is exact -------------------------------------------------------------------
def _peak_bytes(fn: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _attention_pass(rng: np.random.Generator, n: int, method: str) -> Callable[[], None]:
    q, k, v = (rng.standard_normal((1, n, 16)) for _ in range(3))

    def run() -> None:
        ts = [dm.tensor(a, requires_grad=True) for a in (q, k, v)]
        F.scaled_dot_product_attention(*ts, method=method, block_size=64).sum().backward()
    return run


@claim("attention.blockwise-exact",
       title="Memory-efficient (blockwise, online softmax) attention equals the naive formula, in O(n) memory",
       statement=r"m_i'=\max(m_i,\max_j S_{ij}),\ \ell_i'=\ell_i e^{m_i-m_i'}+\sum_j e^{S_{ij}-m_i'}\ \Rightarrow\ "
                 r"O=\mathrm{softmax}(S)V \text{ exactly, with } O(n\cdot\text{block}) \text{ extra memory}",
       source="Milakov & Gimelshein (2018); Rabe & Staats (2021); Dao et al. (2022), FlashAttention")
def blockwise_exact(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    n, d = (40, 8) if not ctx.thorough else (300, 32)
    q, k, v = (rng.standard_normal((2, 3, n, d)) for _ in range(3))
    bias = np.where(rng.random((n, n)) > 0.2, 0.0, -np.inf) + rng.standard_normal((n, n))
    worst_out, worst_grad = 0.0, 0.0
    for kw in ({"attn_mask": bias}, {"is_causal": True}):
        res = {}
        for method in ("naive", "blockwise"):
            ts = [dm.tensor(a, requires_grad=True) for a in (q, k, v)]
            out = F.scaled_dot_product_attention(*ts, method=method, block_size=7, **kw)
            (out * np.cos(np.arange(d))).sum().backward()
            res[method] = (out.data, [t.grad.data for t in ts])
        worst_out = max(worst_out, _rel(res["blockwise"][0], res["naive"][0]))
        worst_grad = max(worst_grad, *(_rel(a, b) for a, b in zip(res["blockwise"][1], res["naive"][1], strict=True)))
    sizes = (256, 512) if not ctx.thorough else (512, 1024)
    peaks = {m: [_peak_bytes(_attention_pass(rng, s, m)) for s in sizes] for m in ("naive", "blockwise")}
    slope = {m: float(np.log(p[1] / p[0]) / np.log(sizes[1] / sizes[0])) for m, p in peaks.items()}
    ratio = peaks["blockwise"][1] / peaks["naive"][1]
    reason = f"the same sums regrouped by blocks: float64 rounding ~ n eps ~ {n * F64_EPS:.0e}; 1e-12 with margin"
    return Evidence.at_most(
        max(worst_out, worst_grad), 1e-12, reason,
        f"(2, 3, n={n}, d={d}), blocks of 7 keys, a random float+boolean mask and causal: max rel. difference "
        f"output {worst_out:.1e}, gradients {worst_grad:.1e}. Peak traced memory of forward+backward at n={sizes}: "
        f"naive {peaks['naive']}, blockwise {peaks['blockwise']} bytes; growth exponents {slope['naive']:.2f} "
        f"(naive) and {slope['blockwise']:.2f} (blockwise); ratio at n={sizes[1]}: {ratio:.3f}",
        cross_checks=(CrossCheck("blockwise-memory-linear", slope["blockwise"], 1.3,
                                 "O(n * block) memory: exponent 1 (+ fixed costs)"),
                      CrossCheck("naive-memory-quadratic", slope["naive"], 1.7, "the n x n matrices: exponent 2",
                                 ">="),
                      CrossCheck("memory-ratio", ratio, 0.25, "blockwise at most a quarter of naive (issue target)")))


# ----- C13: causal masking -----------------------------------------------------------------------------------------
@claim("attention.causal-mask",
       title="A causal mask makes output t independent of inputs after t (checked through the Jacobian)",
       statement=r"M_{ij}=-\infty\ (j>i)\ \Rightarrow\ \frac{\partial\,\mathrm{out}_t}{\partial x_s}=0\ \ (s>t)",
       source=VASWANI + ", section 3.2.3 (masking in the decoder)")
def causal_mask(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    L, d = (6, 3) if not ctx.thorough else (24, 8)
    W = rng.standard_normal((3, d, d)) / np.sqrt(d)  # logits of order 1: no weight underflows
    x = rng.standard_normal((L, d))
    future, past_min, perturb = 0.0, np.inf, 0.0
    for method in ("naive", "blockwise"):
        def f(z: Any, method: str = method) -> Any:
            return F.scaled_dot_product_attention(z @ W[0], z @ W[1], z @ W[2], is_causal=True, method=method,
                                                  block_size=4)
        J = _np(dm.jacobian(f)(x))                                   # (L, d, L, d)
        future = max([future] + [float(np.max(np.abs(J[t, :, s, :]))) for t in range(L) for s in range(t + 1, L)])
        past_min = min(past_min, min(float(np.max(np.abs(J[t, :, s, :]))) for t in range(L) for s in range(t + 1)))
        t0 = L // 2
        x2 = x.copy()
        x2[t0 + 1:] += rng.standard_normal((L - t0 - 1, d))
        perturb = max(perturb, float(np.max(np.abs(_np(f(x2))[: t0 + 1] - _np(f(x))[: t0 + 1]))))
    return Evidence.at_most(
        future, 0.0, "exact: masked scores get weight exp(-inf) = 0 and their gradient is exactly 0",
        f"L={L}, d={d}, self-attention with projections, naive and blockwise paths; max |d out_t/d x_s| for s > t: "
        f"{future:.1e}; smallest past block (s <= t): {past_min:.2e}; changing x after t={L // 2} moves outputs "
        f"up to t by {perturb:.1e}",
        cross_checks=(CrossCheck("perturbing-the-future", perturb, 0.0, "exact zeros (as the Jacobian)"),
                      CrossCheck("past-matters", past_min, 1e-8, "the past blocks are O(1)", ">=")))


# ----- C6: cost n^2 d ----------------------------------------------------------------------------------------------
def _flops(fn: Callable[[], Any]) -> int:
    with dm.count_flops() as c:
        fn()
    return c.forward


def _rnn_layer(x: np.ndarray, U: np.ndarray, W: np.ndarray) -> Any:
    r"""$h_t = \tanh(x_t U + h_{t-1} W)$ over the sequence: the recurrent layer of Vaswani's Table 1."""
    h = np.zeros(W.shape[0])
    for t in range(x.shape[0]):
        h = dm.tanh(dm.matmul(x[t], U) + dm.matmul(h, W))
    return h


@claim("attention.cost-n2d",
       title="Self-attention costs O(n^2 d) flops; a recurrent layer O(n d^2)",
       statement=r"\mathrm{cost}(\mathrm{softmax}(QK^\top)V)=\Theta(n^2 d),\quad"
                 r"\mathrm{cost}(\mathrm{RNN})=\Theta(n d^2)",
       source=VASWANI + ", Table 1")
def cost_n2d(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    ns, ds = (64, 128, 256), (16, 32, 64)

    def attn(n: int, d: int) -> int:
        q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
        return _flops(lambda: F.scaled_dot_product_attention(q, k, v, method="naive"))

    def rnn(n: int, d: int) -> int:
        return _flops(lambda: _rnn_layer(rng.standard_normal((n, d)), rng.standard_normal((d, d)),
                                         rng.standard_normal((d, d))))
    slope_n = float(np.polyfit(np.log(ns), np.log([attn(n, 64) for n in ns]), 1)[0])
    slope_d = float(np.polyfit(np.log(ds), np.log([attn(128, d) for d in ds]), 1)[0])
    rnn_n = float(np.polyfit(np.log((8, 16, 32)), np.log([rnn(n, 32) for n in (8, 16, 32)]), 1)[0])
    rnn_d = float(np.polyfit(np.log(ds), np.log([rnn(8, d) for d in ds]), 1)[0])
    return Evidence.at_most(
        abs(slope_n - 2), 0.05, "flop counts are exact; lower-order O(n d) terms (scaling) move the slope < 0.02",
        f"log-log slopes of counted forward flops: attention vs n (d=64) {slope_n:.3f}, vs d (n=128) {slope_d:.3f}; "
        f"recurrent layer vs n {rnn_n:.3f}, vs d {rnn_d:.3f}",
        cross_checks=(CrossCheck("attention-linear-in-d", abs(slope_d - 1), 0.1,
                                 "the O(n^2) softmax terms (~5 n^2 vs 4 n^2 d) lower the d-slope by ~0.03"),
                      CrossCheck("rnn-linear-in-n", abs(rnn_n - 1), 0.05, "exact counts, one step per position"),
                      CrossCheck("rnn-quadratic-in-d", abs(rnn_d - 2), 0.15,
                                 "O(n d) tanh/add terms lower the slope by ~2/d")))


# ----- E1: linear attention needs its normaliser -----------------------------------------------------------------
@claim("attention.linear-attention-normaliser",
       title="Linear attention is D^{-1} phi(Q)(phi(K)^T V): without D the rows are not convex combinations",
       statement=r"\mathrm{Attn}=D^{-1}\phi(Q)\big(\phi(K)^\top V\big),\ "
                 r"D=\mathrm{diag}\big(\phi(Q)(\phi(K)^\top\mathbf 1_n)\big)",
       source="Katharopoulos et al. (2020), Transformers are RNNs, eq. (6); Choromanski et al. (2021), "
              "Rethinking attention with Performers (cost O(n r d) with r features)",
       erratum=True)
def linear_attention_normaliser(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    n, d = (24, 6) if not ctx.thorough else (256, 32)
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    phi = F.attention.elu_feature_map
    A = _np(phi(q)) @ _np(phi(k)).T
    ref = (A / A.sum(-1, keepdims=True)) @ v                                  # the quadratic form, normalised
    ones = np.ones((n, 1))
    rows = float(np.max(np.abs(_np(F.linear_attention(q, k, ones)) - 1)))
    rows_printed = float(np.max(np.abs(_np(F.linear_attention(q, k, ones, normalize=False)) - 1)))
    err = _rel(F.linear_attention(q, k, v), ref)
    err_printed = _rel(F.linear_attention(q, k, v, normalize=False), ref)
    reason = f"float64 rounding over n={n} terms: ~n eps; 1e-12 with margin"
    return Evidence.at_most(
        err, 1e-12, reason,
        f"phi = elu + 1, n={n}, d={d}; the linear form (phi(K)^T V first) vs the explicit normalised kernel "
        f"attention: {err:.1e}; printed form without D: {err_printed:.2f}. Row sums of the implied attention "
        f"matrix (V = 1): with D off by {rows:.1e}, without D by {rows_printed:.1f}",
        cross_checks=(CrossCheck("rows-convex-with-D", rows, 1e-12, reason),),
        printed=PrintedForm(r"\mathrm{Attn}=\phi(Q)\big(\phi(K)^\top V\big)", err_printed,
                            "Katharopoulos et al. (2020), eq. (6); Choromanski et al. (2021)"))


# ----- C11: Performer's random features ---------------------------------------------------------------------------
@claim("attention.performer-features",
       title="FAVOR+ positive random features approximate softmax attention with error ~ 1/sqrt(r), in O(n)",
       statement=r"\phi(x)=\tfrac{1}{\sqrt r}e^{\omega^\top x-\|x\|^2/2},\ "
                 r"\mathbb E[\phi(q)^\top\phi(k)]=e^{q^\top k}:\ \mathrm{error}=O(r^{-1/2}),\ \mathrm{cost}=O(nrd)",
       source="Choromanski et al. (2021), Rethinking attention with Performers, ICLR")
def performer_features(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    n, d, draws = (32, 4, 48) if not ctx.thorough else (64, 8, 200)
    q, k = 0.3 * rng.standard_normal((n, d)), 0.3 * rng.standard_normal((n, d))
    v = rng.standard_normal((n, d))
    ref = _reference_attention(q, k, v, 1 / np.sqrt(d))
    rs = (16, 64, 256, 1024)
    rmse = []
    for r in rs:
        sq = []
        for _ in range(draws):
            omega = rng.standard_normal((r, d))
            out = F.linear_attention(q, k, v, feature_map=lambda x, om=omega: F.positive_random_features(
                x / d ** 0.25, om))
            sq.append(np.mean((_np(out) - ref) ** 2))
        rmse.append(float(np.sqrt(np.mean(sq))))
    slope = float(np.polyfit(np.log(rs), np.log(rmse), 1)[0])
    flops = [_flops(lambda m=m: F.linear_attention(rng.standard_normal((m, d)), rng.standard_normal((m, d)),
                                                   rng.standard_normal((m, d)), feature_map=lambda x: F.
                                                   positive_random_features(x, np.ones((64, d))))) for m in (64, 256)]
    flop_slope = float(np.log(flops[1] / flops[0]) / np.log(4))
    return Evidence.at_most(
        abs(slope + 0.5), 0.1, f"Monte Carlo over {draws} feature draws per r: the RMSE's own relative error is "
        f"~1/sqrt(2 x {draws}) ~ 0.1 per point over a 64x range of r, so the fitted slope is within ~0.05 of -1/2 "
        f"(small |q|, |k| keep the estimator's tails light; at larger norms heavy tails bias short runs)",
        f"n={n}, d={d}, |q|,|k| small (entries N(0, 0.09)); RMSE vs exact softmax attention at r={rs}: "
        f"{np.round(rmse, 4).tolist()}; fitted exponent {slope:.3f}; flop-count exponent in n (r=64) "
        f"{flop_slope:.3f}",
        cross_checks=(CrossCheck("linear-in-n", abs(flop_slope - 1), 0.05, "exact flop counts, no n x n product"),))


# ----- the chapter's code: batch_first misuse -------------------------------------------------------------------------
@claim("attention.batch-first-misuse",
       title="TransformerEncoderLayer with batch_first=False on [batch, seq, feat] attends across the batch",
       statement=r"\text{batch\_first=True: } \partial\,\mathrm{out}_{b'}/\partial x_b = 0\ (b'\ne b)",
       source="PyTorch documentation, torch.nn.TransformerEncoderLayer (batch_first defaults to False: input "
              "(seq, batch, feature)). Note (erratum E3): BERT (Devlin et al. 2019) is an encoder-only model, "
              "not a machine-translation model",
       erratum=True)
def batch_first_misuse(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    B, S, E = 3, 5, 8

    def leak(batch_first: bool) -> float:
        layer = nn.TransformerEncoderLayer(E, 2, dim_feedforward=16, dropout=0.0, batch_first=batch_first,
                                           dtype=np.float64, generator=np.random.default_rng(0))
        x = rng.standard_normal((B, S, E))                                   # [batch, seq, feat], as the snippet
        x2 = x.copy()
        x2[0] += rng.standard_normal((S, E))                                 # change sample 0 only
        return _rel(_np(layer(x2))[1:], _np(layer(x))[1:])
    right, wrong = leak(True), leak(False)
    return Evidence.at_most(
        right, 1e-14, "samples 1.. are computed by the same operations on the same numbers: rounding at most",
        f"[batch={B}, seq={S}, feat={E}] into an encoder layer; change of samples 1..{B - 1} when sample 0 changes: "
        f"batch_first=True {right:.1e}; the chapter's snippet (default batch_first=False) {wrong:.2f}: attention "
        f"runs over the batch axis",
        printed=PrintedForm(r"\texttt{nn.TransformerEncoderLayer(d\_model, n\_heads)}(x_{[B,S,F]})", wrong,
                            "PyTorch documentation: pass batch_first=True or transpose to (S, B, F)"))


# ----- C15: graph attention is masked attention ---------------------------------------------------------------------
@claim("attention.graph-attention",
       title="Graph attention (GAT) is attention masked to each node's neighbourhood",
       statement=r"h_i'=\sigma\Big(\sum_{j\in\mathcal N(i)}\alpha_{ij}Wh_j\Big),\ "
                 r"\alpha_{ij}=\mathrm{softmax}_{j\in\mathcal N(i)}"
                 r"\big(\mathrm{LeakyReLU}(a^\top[Wh_i\,\|\,Wh_j])\big)",
       source="Veličković et al. (2018), Graph attention networks, ICLR, eqs. (1)-(4)")
def graph_attention(ctx: RunContext) -> Evidence:
    rng = ctx.rng
    n, f, f2 = (9, 4, 3) if not ctx.thorough else (60, 8, 6)
    h = rng.standard_normal((n, f))
    W, a = rng.standard_normal((f2, f)), rng.standard_normal(2 * f2)
    adj = rng.random((n, n)) < 0.3
    adj |= adj.T
    np.fill_diagonal(adj, True)                                              # self-loops, as in the paper
    wh = h @ W.T
    e = wh @ a[:f2][:, None] + (wh @ a[f2:])[None, :]                        # a^T [W h_i || W h_j]
    e = np.where(e > 0, e, 0.2 * e)                                          # LeakyReLU, slope 0.2
    # the paper's sum, node by node over its neighbours
    ref = np.stack([sps.softmax(e[i, adj[i]]) @ wh[adj[i]] for i in range(n)])
    # the same as masked attention: zero dot-product scores, the GAT logits as the float mask, -inf off-graph
    out = _np(F.scaled_dot_product_attention(np.zeros((n, 1)), np.zeros((n, 1)), wh,
                                             attn_mask=np.where(adj, e, -np.inf)))
    p = _np(F.attention_probabilities(np.zeros((n, 1)), np.zeros((n, 1)), np.where(adj, e, -np.inf)))
    off_graph = float(np.max(np.abs(p[~adj])))
    reason = f"sums over at most n={n} neighbours in float64: rounding ~ n eps; 1e-13 with margin"
    return Evidence.at_most(
        _rel(out, ref), 1e-13, reason,
        f"{n} nodes, {int(adj.sum())} directed edges with self-loops; GAT layer (before sigma) as masked "
        f"scaled_dot_product_attention vs the neighbour-by-neighbour sum with SciPy's softmax; largest weight "
        f"off the graph {off_graph:.1e}",
        cross_checks=(CrossCheck("no-weight-off-the-graph", off_graph, 0.0, "exact: exp(-inf) = 0"),))
