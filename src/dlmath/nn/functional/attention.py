r"""Scaled dot-product attention (``torch.nn.functional.scaled_dot_product_attention``).

$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\big(QK^\top \cdot s + B\big)\,V$ with
$s = 1/\sqrt{d_k}$ by default and $B$ an additive bias built from the mask (Vaswani et al. 2017,
"Attention is all you need", eq. 1).

Two exact paths compute it:

* ``naive``: a composite of the engine's ops (matmul, softmax, matmul); it stores the
  $n \times m$ probability matrix for the backward pass.
* ``blockwise``: one fused primitive, ``attention_blockwise``, that walks the keys in blocks
  with an online softmax (a running row maximum and a running sum, rescaled as each block
  arrives: Milakov & Gimelshein 2018, "Online normalizer calculation for softmax"; Rabe &
  Staats 2021, "Self-attention does not need O(n^2) memory"; Dao et al. 2022,
  "FlashAttention"). Its forward keeps only the output and each row's log-sum-exp; its
  backward recomputes each block's probabilities from them. Extra memory is $O(n \cdot
  \text{block})$ instead of $O(n m)$; the results equal the naive formula to rounding.

A query row that may attend to no key (every key masked) gives an output of zeros and zero
gradients, as PyTorch's kernels do: never a NaN.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ... import autodiff as ad
from ...autodiff import DtypeError, ShapeError, Tensor
from ...autodiff.core import Primitive, unwrap
from .dropout import dropout

__all__ = ["AUTO_BLOCKWISE_MIN_ENTRIES", "DEFAULT_BLOCK_SIZE", "attention_probabilities", "attention_scale",
           "causal_mask", "linear_attention", "positive_random_features", "scaled_dot_product_attention"]

# method='auto' takes the blockwise path when a score matrix per head has at least this many entries
# (below it the n x m matrix is small and the composite path is as fast)
AUTO_BLOCKWISE_MIN_ENTRIES = 256 * 256
DEFAULT_BLOCK_SIZE = 256


# ----- masks ---------------------------------------------------------------------------------------------------
def causal_mask(L: int, S: int, j0: int = 0, j1: int | None = None) -> np.ndarray:
    r"""PyTorch's ``is_causal`` mask: query $i$ may attend to key $j$ iff $j \le i$ (top-left aligned
    lower triangle, ``torch.ones(L, S).tril()``), as a boolean array, True = may attend; columns
    $j_0 \le j < j_1$ only (a block of keys) when given."""
    cols = np.arange(j0, S if j1 is None else j1)
    return cols[None, :] <= np.arange(L)[:, None]


def attention_scale(d_k: int) -> float:
    r"""The default score scale $1/\sqrt{d_k}$: for $q, k$ with i.i.d. zero-mean unit-variance entries,
    $\mathrm{Var}(q \cdot k) = d_k$, so the scaled logits have unit variance (Vaswani et al. 2017, footnote 4)."""
    return 1.0 / math.sqrt(d_k)


def _additive_bias(attn_mask: Any, dtype: np.dtype, L: int, S: int, fn: str) -> Any:
    """The mask as an additive bias: a boolean mask (True = may attend) becomes 0 / -inf in ``dtype``;
    a float mask is returned as it is (a Tensor stays a Tensor, so a bias can be differentiated)."""
    raw = unwrap(attn_mask)
    arr = np.asarray(raw)
    try:
        np.broadcast_shapes(arr.shape, (L, S))
    except ValueError:
        raise ShapeError(f"{fn}: attn_mask of shape {arr.shape} does not broadcast to the score matrix "
                         f"(..., L={L}, S={S})") from None
    if arr.dtype == bool:
        return np.where(arr, np.zeros((), dtype), np.array(-np.inf, dtype))
    if arr.dtype.kind != "f":
        raise DtypeError(f"{fn}: attn_mask must be boolean (True = may attend) or floating (added to the "
                         f"scores), got dtype {arr.dtype}")
    if arr.dtype != dtype:  # the scores keep the inputs' dtype (a float64 mask must not promote float32 attention)
        return ad.astype(attn_mask, dtype) if isinstance(attn_mask, Tensor) else arr.astype(dtype)
    return attn_mask


# ----- the naive path (a composite: no rules of its own) ------------------------------------------------------
def _scores(q: Any, k: Any, bias: Any, scale: float, causal: bool) -> Any:
    r"""$S = Q K^\top s + B$, with $-\infty$ above the diagonal when ``causal``."""
    s = ad.matmul(q, ad.swapaxes(k, -1, -2)) * scale
    if bias is not None:
        s = s + bias
    if causal:
        s = ad.where(~causal_mask(s.shape[-2], s.shape[-1]), -np.inf, s)
    return s


def _masked_softmax(s: Any) -> Any:
    """softmax over the last axis, with rows whose scores are all -inf (nothing to attend to) set to zeros."""
    dead = np.all(np.isneginf(unwrap(s)), axis=-1, keepdims=True)
    if not dead.any():
        return ad.softmax(s, axis=-1)
    return ad.where(dead, 0.0, ad.softmax(ad.where(dead, 0.0, s), axis=-1))


def attention_probabilities(q: Any, k: Any, bias: Any = None, scale: float | None = None,
                            causal: bool = False) -> Any:
    r"""The attention matrix $P = \mathrm{softmax}(Q K^\top s + B)$ row by row (rows with no admissible key:
    zeros). ``bias`` is additive (see ``scaled_dot_product_attention`` for boolean masks)."""
    if scale is None:
        scale = attention_scale(np.shape(unwrap(q))[-1])
    return _masked_softmax(_scores(q, k, bias, scale, causal))


def _attention_naive(q: Any, k: Any, v: Any, bias: Any, scale: float, causal: bool, dropout_p: float) -> Any:
    p = attention_probabilities(q, k, bias, scale, causal)
    if dropout_p > 0.0:
        p = dropout(p, dropout_p)
    return ad.matmul(p, v)


# ----- the blockwise path: one fused primitive ---------------------------------------------------------------
def _score_block(qs: Any, k: Any, bias: Any, causal: bool, j0: int, j1: int) -> Any:
    r"""Scores of all queries against keys $j_0 \le j < j_1$:
    $S_{:, j_0:j_1} = (Q s) K_{j_0:j_1}^\top + B_{:, j_0:j_1}$.
    Written with dm ops, so forward (arrays), backward and tangent passes share it and it is differentiable."""
    s = ad.matmul(qs, ad.swapaxes(k[..., j0:j1, :], -1, -2))
    if bias is not None:
        b_s = np.shape(unwrap(bias))
        s = s + (bias[..., j0:j1] if b_s and b_s[-1] != 1 else bias)
    if causal:
        L = np.shape(unwrap(qs))[-2]
        if j1 - 1 > 0:  # some key of the block lies after some query
            allowed = causal_mask(L, j1, j0, j1)
            if not allowed.all():
                s = ad.where(~allowed, -np.inf, s)
    return s


def _score_block_into(out: np.ndarray, qs: np.ndarray, k: np.ndarray, bias: np.ndarray | None, causal: bool,
                      j0: int, j1: int) -> np.ndarray:
    """``_score_block`` for arrays, written into ``out`` (the forward and a plain backward pass reuse one buffer)."""
    np.matmul(qs, k[..., j0:j1, :].swapaxes(-1, -2), out=out)
    if bias is not None:
        out += bias[..., j0:j1] if bias.shape and bias.shape[-1] != 1 else bias
    if causal and j1 - 1 > 0:
        allowed = causal_mask(out.shape[-2], j1, j0, j1)
        if not allowed.all():
            np.copyto(out, np.asarray(-np.inf, out.dtype), where=~allowed)
    return out


def _key_blocks(S: int, L: int, block: int, causal: bool) -> list[tuple[int, int]]:
    """Blocks of keys to visit; with a causal mask, blocks that start after the last query are skipped."""
    return [(j0, min(S, j0 + block)) for j0 in range(0, S, block) if not (causal and j0 > L - 1)]


def _lead_shape(q: Any, k: Any, v: Any, bias: Any) -> tuple[int, ...]:
    shapes = [np.shape(unwrap(q))[:-2], np.shape(unwrap(k))[:-2], np.shape(unwrap(v))[:-2]]
    if bias is not None and np.ndim(unwrap(bias)) > 2:
        shapes.append(np.shape(unwrap(bias))[:-2])
    return np.broadcast_shapes(*shapes)


def _blockwise_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: Any, scale: float = 1.0,
                       causal: bool = False, block: int = DEFAULT_BLOCK_SIZE) -> np.ndarray:
    r"""Online softmax over key blocks (Milakov & Gimelshein 2018): with running row max $m$, sum $\ell$ and
    accumulator $a$, a block of scores $S_b$ updates $m' = \max(m, \max_j S_b)$,
    $\ell' = \ell e^{m - m'} + \sum_j e^{S_b - m'}$, $a' = a e^{m - m'} + e^{S_b - m'} V_b$ (once every row has
    a finite $m$, $m$ is kept while no block overflows it: the result does not depend on the shift). At the end
    $O = a/\ell$ and $\mathrm{lse} = m + \log \ell$. Returns $[O, \mathrm{lse}]$ joined on the last axis."""
    L, Ev = q.shape[-2], v.shape[-1]
    dtype = np.result_type(q, k, v)
    lead = _lead_shape(q, k, v, bias)
    m = np.full((*lead, L, 1), -np.inf, dtype)
    # acc holds [a, l]: the row sums ride in the value matmul as a column of ones, [P V, P 1] = P [V, 1]
    # (one pass over each L x block matrix fewer)
    acc = np.zeros((*lead, L, Ev + 1), dtype)
    va = np.concatenate([np.broadcast_to(v, (*lead, v.shape[-2], Ev)), np.ones((*lead, v.shape[-2], 1), dtype)],
                        axis=-1)
    qs = q * np.asarray(scale, dtype)
    E = q.shape[-1]
    # [Qs, -m] [K, 1]^T = Qs K^T - m: the shift rides in the score matmul as one extra column
    qa = np.concatenate([qs, np.zeros((*lead, L, 1), dtype)], axis=-1)
    ka = np.concatenate([np.broadcast_to(k, (*lead, k.shape[-2], E)), np.ones((*lead, k.shape[-2], 1), dtype)],
                        axis=-1)
    # one L x block buffer reused by every block (a fresh 32 MiB array per block costs its page faults)
    bufs: dict[int, np.ndarray] = {}
    m_blk, m_new, correction = np.empty_like(m), np.empty_like(m), np.empty_like(m)
    term = np.empty_like(acc)
    for j0, j1 in _key_blocks(k.shape[-2], L, block, causal):
        if j1 - j0 not in bufs:
            bufs[j1 - j0] = np.empty((*lead, L, j1 - j0), dtype)
        s = bufs[j1 - j0]
        if np.isfinite(m).all():
            # Every row has seen a score, so its shift m is attained (l >= 1): keep m as the shift unless this
            # block overflows it. The softmax does not depend on the shift, so this is the same formula without
            # the row-max pass; a block whose row sum exceeds 2^64 (a score above m + 44) takes the exact update.
            _score_block_into(s, qa, ka, bias, causal, j0, j1)
            np.exp(s, out=s)
            np.matmul(s, va[..., j0:j1, :], out=term)
            if np.all(term[..., Ev:] <= 2.0 ** 64) and np.isfinite(term).all():
                acc += term
                continue
        _score_block_into(s, qs, k, bias, causal, j0, j1)
        np.maximum(m, s.max(axis=-1, keepdims=True, out=m_blk), out=m_new)
        m_safe = np.where(np.isfinite(m_new), m_new, 0)  # rows with nothing yet: exp(-inf - 0) = 0
        s -= m_safe
        p = np.exp(s, out=s)
        np.subtract(m, m_safe, out=correction)
        np.exp(correction, out=correction)
        acc *= correction
        acc += np.matmul(p, va[..., j0:j1, :], out=term)
        m, m_new = m_new, m
        np.negative(m, out=qa[..., E:])
    ell = acc[..., Ev:]
    acc = acc[..., :Ev]
    alive = ell > 0
    out = np.where(alive, acc / np.where(alive, ell, 1), 0)
    with np.errstate(divide="ignore"):
        lse = np.where(alive, m + np.log(np.where(alive, ell, 1)), -np.inf)
    return np.concatenate([out.astype(dtype, copy=False), lse.astype(dtype, copy=False)], axis=-1)


def _fresh_sub(a: Any, b: Any) -> Any:
    """a - b, written into ``a`` when it is a plain array made just now (a plain backward pass: no tape, so the
    result is the same and one n x block temporary is saved); the recorded op otherwise."""
    if type(a) is np.ndarray and not isinstance(b, Tensor):
        return np.subtract(a, b, out=a)
    return a - b


def _fresh_exp(a: Any) -> Any:
    """exp(a), in place for a plain array made just now (see ``_fresh_sub``)."""
    if type(a) is np.ndarray:
        return np.exp(a, out=a)
    return ad.exp(a)


def _fresh_mul(a: Any, b: Any) -> Any:
    """a * b, in place for a plain array ``a`` made just now (see ``_fresh_sub``)."""
    if type(a) is np.ndarray and not isinstance(b, Tensor):
        return np.multiply(a, b, out=a)
    return a * b


def _split_answer(ans: Any, ev: int) -> tuple[Any, Any]:
    r"""The output O and a log-sum-exp safe to subtract: +inf where a row has no admissible key (so that
    $e^{S - \mathrm{lse}} = 0$ there, not NaN)."""
    o, lse = ans[..., :ev], ans[..., ev:]
    finite = np.isfinite(unwrap(lse))
    return o, (lse if finite.all() else ad.where(finite, lse, np.inf))


def _blockwise_cotangents(g: Any, ans: Any, q: Any, k: Any, v: Any, bias: Any, scale: float, causal: bool,
                          block: int) -> tuple[Any, Any, Any]:
    r"""FlashAttention's backward (Dao et al. 2022, Alg. 4), recomputing $P_b = e^{S_b - \mathrm{lse}}$ per block:
    $\bar V_b = P_b^\top \bar O$, $\bar P_b = \bar O V_b^\top$,
    $\bar S_b = P_b \odot (\bar P_b - D + \overline{\mathrm{lse}})$ with $D = \mathrm{rowsum}(\bar O \odot O)$,
    $\bar Q = s \sum_b \bar S_b K_b$, $\bar K_b = \bar S_b^\top (Q s)$.
    The lse column's cotangent enters because $\partial\,\mathrm{lse}_i/\partial S_{ij} = P_{ij}$."""
    ev = np.shape(unwrap(v))[-1]
    if all(type(x) is np.ndarray for x in (g, ans, q, k, v)) and (bias is None or type(bias) is np.ndarray):
        return _blockwise_cotangents_arrays(g, ans, q, k, v, bias, scale, causal, block)
    o, lse = _split_answer(ans, ev)
    go, glse = g[..., :ev], g[..., ev:]
    if type(go) is np.ndarray:
        go = np.ascontiguousarray(go)  # a strided view of [O, lse]'s cotangent: BLAS prefers it packed
    delta = ad.sum(go * o, axis=-1, keepdims=True) - glse
    qs = q * scale
    L, S = np.shape(unwrap(q))[-2], np.shape(unwrap(k))[-2]
    lead = _lead_shape(q, k, v, bias)
    dtype = unwrap(ans).dtype
    dqs: Any = None
    dks: list[Any] = []
    dvs: list[Any] = []
    blocks = _key_blocks(S, L, block, causal)
    for j0, j1 in blocks:
        p = _fresh_exp(_fresh_sub(_score_block(qs, k, bias, causal, j0, j1), lse))
        dvs.append(ad.matmul(ad.swapaxes(p, -1, -2), go))
        dp = ad.matmul(go, ad.swapaxes(v[..., j0:j1, :], -1, -2))
        ds = _fresh_mul(_fresh_sub(dp, delta), p)
        term = ad.matmul(ds, k[..., j0:j1, :])
        dqs = term if dqs is None else dqs + term
        dks.append(ad.matmul(ad.swapaxes(ds, -1, -2), qs))
    done = blocks[-1][1] if blocks else 0
    if done < S:  # causal: keys after the last query receive nothing
        dks.append(np.zeros((*lead, S - done, np.shape(unwrap(k))[-1]), dtype))
        dvs.append(np.zeros((*lead, S - done, ev), dtype))
    dq = np.zeros(np.shape(unwrap(q)), dtype) if dqs is None else dqs * scale
    return dq, ad.concatenate(dks, axis=-2), ad.concatenate(dvs, axis=-2)


def _blockwise_cotangents_arrays(g: np.ndarray, ans: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                                 bias: np.ndarray | None, scale: float, causal: bool,
                                 block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_blockwise_cotangents`` for a plain backward pass (every argument an array, nothing recorded): the same
    formulas, evaluated in place in two reused L x block buffers (a fresh 32 MiB array per block costs its page
    faults) and written straight into dK, dV (no list to concatenate)."""
    ev = v.shape[-1]
    lead = _lead_shape(q, k, v, bias)
    dtype = ans.dtype
    L, S = q.shape[-2], k.shape[-2]
    o, lse = ans[..., :ev], ans[..., ev:]
    # a row with no admissible key has lse = -inf and scores all -inf: any finite shift gives exp(-inf) = 0 there
    lse = np.where(np.isfinite(lse), lse, 0).astype(dtype, copy=False)
    go = np.ascontiguousarray(np.broadcast_to(g[..., :ev], (*lead, L, ev)))
    delta = np.sum(go * o, axis=-1, keepdims=True, dtype=dtype)
    delta -= g[..., ev:]
    E = q.shape[-1]
    qs = np.ascontiguousarray(np.broadcast_to(q * np.asarray(scale, dtype), (*lead, L, E)))
    # the row shifts ride in the matmuls as one extra column, saving two passes over each L x block matrix:
    # [Qs, -lse] [K, 1]^T = Qs K^T - lse and [dO, -D] [V, 1]^T = dO V^T - D
    qa = np.concatenate([qs, -lse], axis=-1)
    goa = np.concatenate([go, -delta], axis=-1)
    ka = np.concatenate([np.broadcast_to(k, (*lead, S, E)), np.ones((*lead, S, 1), dtype)], axis=-1)
    va = np.concatenate([np.broadcast_to(v, (*lead, S, ev)), np.ones((*lead, S, 1), dtype)], axis=-1)
    dq = np.zeros((*lead, L, E), dtype)
    dk = np.zeros((*lead, S, E), dtype)
    dv = np.zeros((*lead, S, ev), dtype)
    bufs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    term = np.empty_like(dq)
    for j0, j1 in _key_blocks(S, L, block, causal):
        n = j1 - j0
        if n not in bufs:
            bufs[n] = (np.empty((*lead, L, n), dtype), np.empty((*lead, L, n), dtype))
        p, ds = bufs[n]
        _score_block_into(p, qa, ka, bias, causal, j0, j1)  # S_b - lse
        np.exp(p, out=p)
        dv[..., j0:j1, :] = np.matmul(p.swapaxes(-1, -2), go)
        np.matmul(goa, va[..., j0:j1, :].swapaxes(-1, -2), out=ds)  # dP_b - D
        ds *= p
        dq += np.matmul(ds, ka[..., j0:j1, :E], out=term)
        dk[..., j0:j1, :] = np.matmul(ds.swapaxes(-1, -2), qs)
    dq *= np.asarray(scale, dtype)
    return dq, dk, dv


class _Memo(threading.local):
    """The three VJP rules of one node run back to back on the same objects: one recomputation serves all."""

    entry: tuple[Any, ...] | None = None


_memo = _Memo()


def _cached_cotangents(g: Any, ans: Any, q: Any, k: Any, v: Any, bias: Any, scale: float = 1.0,
                       causal: bool = False, block: int = DEFAULT_BLOCK_SIZE) -> tuple[Any, Any, Any]:
    key = (g, ans, q, k, v, bias)
    e = _memo.entry
    if e is not None and all(a is b for a, b in zip(e[0], key, strict=True)) and e[1] == (scale, causal, block):
        return e[2]
    result = _blockwise_cotangents(g, ans, q, k, v, bias, scale, causal, block)
    _memo.entry = (key, (scale, causal, block), result)
    return result


def _blockwise_tangent(which: int, t: Any, ans: Any, q: Any, k: Any, v: Any, bias: Any, scale: float,
                       causal: bool, block: int) -> Any:
    r"""Forward mode, written apart from the backward: a tangent $\dot S$ of the scores moves
    $\dot{\mathrm{lse}}_i = \sum_j P_{ij}\dot S_{ij}$ and
    $\dot O = \sum_j P_{ij}(\dot S_{ij} - \dot{\mathrm{lse}}_i)V_j$;
    a tangent of V moves $\dot O = P\dot V$. Here $\dot S = \dot Q s K^\top$ (which=0) or $Q s \dot K^\top$
    (which=1); which=2 is V. Accumulated over key blocks, $P_b$ recomputed from the saved lse."""
    ev = np.shape(unwrap(v))[-1]
    o, lse = _split_answer(ans, ev)
    qs = q * scale
    L, S = np.shape(unwrap(q))[-2], np.shape(unwrap(k))[-2]
    acc: Any = None
    dl: Any = None
    for j0, j1 in _key_blocks(S, L, block, causal):
        p = ad.exp(_score_block(qs, k, bias, causal, j0, j1) - lse)
        if which == 2:
            term = ad.matmul(p, t[..., j0:j1, :])
        else:
            kt = ad.swapaxes((k if which == 0 else t)[..., j0:j1, :], -1, -2)
            ds = ad.matmul(t * scale if which == 0 else qs, kt)
            pds = p * ds
            row = ad.sum(pds, axis=-1, keepdims=True)
            dl = row if dl is None else dl + row
            term = ad.matmul(pds, v[..., j0:j1, :])
        acc = term if acc is None else acc + term
    if acc is None:  # no key at all
        return ad.concatenate([o * 0.0, lse[..., :1] * 0.0], axis=-1)
    if which == 2:
        return ad.concatenate([acc, acc[..., :1] * 0.0], axis=-1)
    return ad.concatenate([acc - dl * o, dl], axis=-1)


def _blockwise_flops(out: Any, q: Any, k: Any, v: Any, bias: Any, scale: float = 1.0, causal: bool = False,
                     block: int = DEFAULT_BLOCK_SIZE) -> int:
    """2 n m d (scores) + 2 n m d_v (weighted values) + 4 n m (exp, max, sum, rescale) per leading index."""
    L, E = np.shape(q)[-2:]
    S, Ev = np.shape(v)[-2:]
    heads = int(np.prod(_lead_shape(q, k, v, bias), dtype=np.int64))
    return heads * L * S * (2 * E + 2 * Ev + 4)


attention_blockwise = Primitive(
    "attention_blockwise", _blockwise_forward, _blockwise_flops,
    r"exact attention by key blocks with an online softmax: returns $[\mathrm{softmax}(QK^\top s + B)V,\ "
    r"\mathrm{lse}]$ (Rabe & Staats 2021; Dao et al. 2022)", reads_output=True).defvjp(
    lambda g, ans, q, k, v, bias, **kw: _cached_cotangents(g, ans, q, k, v, bias, **kw)[0],
    lambda g, ans, q, k, v, bias, **kw: _cached_cotangents(g, ans, q, k, v, bias, **kw)[1],
    lambda g, ans, q, k, v, bias, **kw: _cached_cotangents(g, ans, q, k, v, bias, **kw)[2]).defjvp(
    lambda t, ans, q, k, v, bias, scale=1.0, causal=False, block=DEFAULT_BLOCK_SIZE:
        _blockwise_tangent(0, t, ans, q, k, v, bias, scale, causal, block),
    lambda t, ans, q, k, v, bias, scale=1.0, causal=False, block=DEFAULT_BLOCK_SIZE:
        _blockwise_tangent(1, t, ans, q, k, v, bias, scale, causal, block),
    lambda t, ans, q, k, v, bias, scale=1.0, causal=False, block=DEFAULT_BLOCK_SIZE:
        _blockwise_tangent(2, t, ans, q, k, v, bias, scale, causal, block))


# ----- the public function -------------------------------------------------------------------------------------
def _differentiable(x: Any) -> bool:
    return isinstance(x, Tensor) and (x.requires_grad or x._tangent is not None)


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None, *, method: str = "auto",
                                 block_size: int = DEFAULT_BLOCK_SIZE) -> Any:
    r"""$\mathrm{softmax}(QK^\top s + B)\,V$ with PyTorch's semantics.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); leading (batch, head) axes
    broadcast. ``attn_mask`` broadcasts to (..., L, S): boolean (True = may attend) or floating (added
    to the scores). ``is_causal``: query $i$ attends to keys $j \le i$ (top-left aligned, as torch; no
    attn_mask allowed with it). ``scale`` defaults to $1/\sqrt{E}$. ``dropout_p`` drops attention
    probabilities (inverted dropout, default generator; the naive path).

    ``method``: ``'naive'`` (composite of ops, stores the L x S matrix), ``'blockwise'`` (the fused
    online-softmax primitive, extra memory O(L * block_size)) or ``'auto'`` (blockwise when L*S >=
    AUTO_BLOCKWISE_MIN_ENTRIES and no dropout or differentiable mask asks for the naive path). A query
    whose keys are all masked gets zeros (and zero gradients), as PyTorch.
    """
    fn = "scaled_dot_product_attention"
    shapes = [np.shape(unwrap(x)) for x in (query, key, value)]
    for name, s in zip(("query", "key", "value"), shapes, strict=True):
        if len(s) < 2:
            raise ShapeError(f"{fn}: {name} must have at least 2 dimensions (..., seq, features), got shape {s}")
    (qs_, ks_, vs_) = shapes
    if qs_[-1] != ks_[-1] or ks_[-2] != vs_[-2]:
        raise ShapeError(f"{fn}: query {qs_}, key {ks_}, value {vs_} do not fit (expected query (..., L, E), "
                         f"key (..., S, E), value (..., S, Ev))")
    try:
        np.broadcast_shapes(qs_[:-2], ks_[:-2], vs_[:-2])
    except ValueError:
        raise ShapeError(f"{fn}: the leading axes of query {qs_}, key {ks_}, value {vs_} do not broadcast") from None
    dtypes = {np.asarray(unwrap(x)).dtype for x in (query, key, value)}
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
        raise DtypeError(f"{fn}: query, key and value must share one floating dtype, got "
                         f"{sorted(str(d) for d in dtypes)}")
    dtype = next(iter(dtypes))
    if method not in ("auto", "naive", "blockwise"):
        raise ValueError(f"{fn}: method must be 'auto', 'naive' or 'blockwise', got {method!r}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{fn}: dropout_p must be in [0, 1], got {dropout_p}")
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"{fn}: block_size must be a positive integer, got {block_size!r}")
    if is_causal and attn_mask is not None:
        raise ValueError(f"{fn}: give either attn_mask or is_causal=True, not both (as torch)")
    L, S = qs_[-2], ks_[-2]
    scale = attention_scale(qs_[-1]) if scale is None else float(scale)
    bias = None if attn_mask is None else _additive_bias(attn_mask, dtype, L, S, fn)
    needs_naive = dropout_p > 0.0 or _differentiable(bias)
    if method == "blockwise" and needs_naive:
        raise ValueError(f"{fn}: method='blockwise' is exact and deterministic and treats the mask as a constant; "
                         f"dropout_p > 0 or a mask that requires grad needs method='naive' (or 'auto')")
    blockwise = method == "blockwise" or (method == "auto" and not needs_naive and L * S >= AUTO_BLOCKWISE_MIN_ENTRIES)
    if not blockwise:
        return _attention_naive(query, key, value, bias, scale, is_causal, dropout_p)
    bias_arr = None if bias is None else unwrap(bias)
    both = attention_blockwise(query, key, value, bias_arr, scale=scale, causal=bool(is_causal),
                               block=int(block_size))
    return both[..., : vs_[-1]]


# ----- linear attention (kernelised; no n x m matrix) --------------------------------------------------------
def elu_feature_map(x: Any) -> Any:
    r"""$\phi(x) = \mathrm{elu}(x) + 1 > 0$, the feature map of Katharopoulos et al. (2020)."""
    return ad.where(unwrap(x) > 0, x + 1.0, ad.exp(ad.minimum(x, 0.0)))


def positive_random_features(x: Any, omega: np.ndarray) -> Any:
    r"""FAVOR+ positive random features (Choromanski et al. 2021, "Rethinking attention with Performers"):
    $\phi(x) = e^{\omega^\top x - \|x\|^2/2}/\sqrt r$ for $\omega_1..\omega_r \sim N(0, I)$ (rows of ``omega``,
    (r, d)), so that $\mathbb E[\phi(q)^\top\phi(k)] = e^{q^\top k}$. Apply to $x/d^{1/4}$ for the softmax
    kernel $e^{q^\top k/\sqrt d}$."""
    r = np.shape(omega)[0]
    sq = ad.sum(x * x, axis=-1, keepdims=True) * 0.5
    return ad.exp(ad.matmul(x, np.asarray(omega).T) - sq) * (1.0 / math.sqrt(r))


def linear_attention(query: Any, key: Any, value: Any, feature_map: Any = elu_feature_map,
                     normalize: bool = True) -> Any:
    r"""Kernelised attention in $O(n r d)$: $\mathrm{Attn} = D^{-1}\phi(Q)\big(\phi(K)^\top V\big)$ with
    $D = \mathrm{diag}\big(\phi(Q)(\phi(K)^\top \mathbf 1)\big)$ (Katharopoulos et al. 2020, eq. 6;
    Choromanski et al. 2021). With a positive $\phi$ the rows of the implied attention matrix
    $D^{-1}\phi(Q)\phi(K)^\top$ are convex weights. ``normalize=False`` drops $D$ (the form printed in the
    module, whose rows are not convex combinations)."""
    fq, fk = feature_map(query), feature_map(key)
    out = ad.matmul(fq, ad.matmul(ad.swapaxes(fk, -1, -2), value))
    if not normalize:
        return out
    z = ad.matmul(fq, ad.swapaxes(ad.sum(fk, axis=-2, keepdims=True), -1, -2))  # phi(Q) (phi(K)^T 1)
    return out / z
