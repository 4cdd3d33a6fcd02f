"""Attention against PyTorch with the same inputs and weights, forward and backward, float64.

scaled_dot_product_attention (every mask kind, causal, scale, leading axes, the naive and the
blockwise paths, rows with every key masked), the fused primitive's VJP and JVP rules
(torch.func.jvp and the dot-product identity), MultiheadAttention and TransformerEncoderLayer
(state dicts loaded from torch modules, input and parameter gradients).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import dlmath as dm
from dlmath import nn
from dlmath.nn import functional as F
from dlmath.nn.functional.attention import attention_blockwise
from test_jvp_torch import check_jvp
from test_ops_torch import compare

RTOL, ATOL = 1e-10, 1e-12
METHODS = ("naive", "blockwise")


def _sdpa(method: str, block: int = 3, **kw):
    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, method=method, block_size=block, **kw)
    return f


def _tsdpa(**kw):
    def f(q, k, v):
        if isinstance(kw.get("attn_mask"), np.ndarray):
            kw["attn_mask"] = torch.from_numpy(kw["attn_mask"])
        return TF.scaled_dot_product_attention(q, k, v, **kw)
    return f


def _qkv(rng, lead, L, S, E, Ev):
    return (rng.standard_normal((*lead, L, E)), rng.standard_normal((*lead, S, E)),
            rng.standard_normal((*lead, S, Ev)))


# ----- scaled_dot_product_attention ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "bool-broadcast", "float-per-head", "causal"])
def test_sdpa_masks_against_torch(method, mask_kind):
    rng = np.random.default_rng(1)
    L, S = 6, 7
    q, k, v = _qkv(rng, (2, 3), L, S, 4, 5)
    kw: dict = {}
    if mask_kind == "bool":
        kw["attn_mask"] = rng.random((L, S)) > 0.4
    elif mask_kind == "float":
        kw["attn_mask"] = rng.standard_normal((L, S))
    elif mask_kind == "bool-broadcast":
        kw["attn_mask"] = rng.random((2, 1, 1, S)) > 0.3  # key padding, broadcast over heads and queries
    elif mask_kind == "float-per-head":
        kw["attn_mask"] = rng.standard_normal((2, 3, L, S))
    elif mask_kind == "causal":
        kw["is_causal"] = True
    mask = kw.get("attn_mask")
    if mask is not None and mask.dtype == bool:
        mask[..., 0] = True  # no fully masked rows here (tested apart)
    compare(_sdpa(method, **kw), _tsdpa(**dict(kw)), q, k, v, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("L,S", [(1, 5), (5, 1), (9, 4), (4, 9)])
def test_sdpa_causal_rectangular_top_left(method, L, S):
    rng = np.random.default_rng(2)
    q, k, v = _qkv(rng, (2,), L, S, 3, 2)
    compare(_sdpa(method, is_causal=True), _tsdpa(is_causal=True), q, k, v, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("method", METHODS)
def test_sdpa_scale_and_broadcast_leading_axes(method):
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 3, 5, 4))
    k = rng.standard_normal((1, 3, 6, 4))  # broadcast over the batch
    v = rng.standard_normal((1, 1, 6, 2))
    compare(_sdpa(method, scale=0.37), _tsdpa(scale=0.37), q, k, v, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("method", METHODS)
def test_sdpa_no_leading_axes(method):
    rng = np.random.default_rng(4)
    q, k, v = _qkv(rng, (), 5, 6, 3, 4)
    compare(_sdpa(method), _tsdpa(), q, k, v, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["bool", "float-inf"])
def test_sdpa_fully_masked_rows_give_zeros_not_nan(method, kind):
    rng = np.random.default_rng(5)
    q, k, v = _qkv(rng, (2,), 4, 5, 3, 2)
    mask = rng.random((4, 5)) > 0.3
    mask[:, 0] = True
    mask[2] = False
    if kind == "float-inf":
        mask = np.where(mask, 0.0, -np.inf)
    _, outs = compare(_sdpa(method, attn_mask=mask), _tsdpa(attn_mask=mask), q, k, v, rtol=RTOL, atol=ATOL)
    assert np.all(outs[0].data[:, 2] == 0)
    qt, kt, vt = (dm.tensor(x, requires_grad=True) for x in (q, k, v))
    (F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, method=method) ** 2).sum().backward()
    for t in (qt, kt, vt):
        assert np.all(np.isfinite(t.grad.data))
    assert np.all(qt.grad.data[:, 2] == 0)


def test_sdpa_every_key_masked_everywhere():
    rng = np.random.default_rng(6)
    q, k, v = _qkv(rng, (), 3, 4, 2, 2)
    mask = np.zeros((3, 4), dtype=bool)
    for method in METHODS:
        out = F.scaled_dot_product_attention(dm.tensor(q), dm.tensor(k), dm.tensor(v), attn_mask=mask, method=method)
        np.testing.assert_array_equal(out.data, 0)


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(1, 4), st.integers(1, 5),
       st.booleans(), st.integers(0, 10_000))
def test_sdpa_blockwise_equals_naive_random_configs(L, S, E, Ev, block, causal, seed):
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, (2,), L, S, E, Ev)
    compare(_sdpa("blockwise", block=block, is_causal=causal), _tsdpa(is_causal=causal), q, k, v,
            rtol=RTOL, atol=ATOL)


def test_sdpa_float32_stays_float32_and_auto_switches():
    rng = np.random.default_rng(7)
    q, k, v = (x.astype(np.float32) for x in _qkv(rng, (1,), 300, 260, 8, 8))
    qt = dm.tensor(q, requires_grad=True)
    with dm.count_flops() as c:
        out = F.scaled_dot_product_attention(qt, dm.tensor(k), dm.tensor(v))
    assert out.dtype == np.float32
    assert ("forward", "attention_blockwise") in c.calls  # 300 * 260 >= AUTO_BLOCKWISE_MIN_ENTRIES
    ref = TF.scaled_dot_product_attention(*(torch.from_numpy(x) for x in (q, k, v))).numpy()
    np.testing.assert_allclose(out.data, ref, rtol=1e-5, atol=1e-6)


def test_sdpa_dropout_uses_naive_path_and_scales():
    rng = np.random.default_rng(8)
    q, k, v = _qkv(rng, (), 4, 6, 3, 2)
    v = np.ones_like(v)
    nn.manual_seed(0)
    out = F.scaled_dot_product_attention(dm.tensor(q), dm.tensor(k), dm.tensor(v), dropout_p=0.5)
    # rows of P sum to 1; dropped entries vanish and the rest are doubled: entries are P-sums in [0, 2]
    assert out.shape == (4, 2) and np.all(out.data >= 0) and np.all(out.data <= 2 + 1e-12)
    with pytest.raises(ValueError, match="blockwise"):
        F.scaled_dot_product_attention(dm.tensor(q), dm.tensor(k), dm.tensor(v), dropout_p=0.5, method="blockwise")


def test_sdpa_differentiable_float_mask_against_torch():
    rng = np.random.default_rng(9)
    q, k, v = _qkv(rng, (2,), 4, 5, 3, 2)
    bias = rng.standard_normal((4, 5))
    compare(lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b),
            lambda q, k, v, b: TF.scaled_dot_product_attention(q, k, v, attn_mask=b), q, k, v, bias,
            rtol=RTOL, atol=ATOL)


def test_sdpa_bad_inputs():
    q = dm.tensor(np.zeros((2, 3, 4)))
    with pytest.raises(dm.ShapeError, match="query"):
        F.scaled_dot_product_attention(q, dm.tensor(np.zeros((2, 3, 5))), q)
    with pytest.raises(dm.ShapeError, match="attn_mask"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.zeros((4, 4), dtype=bool))
    with pytest.raises(dm.DtypeError):
        F.scaled_dot_product_attention(q, q, dm.tensor(np.zeros((2, 3, 4), np.float32)))
    with pytest.raises(ValueError, match="is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match="method"):
        F.scaled_dot_product_attention(q, q, q, method="flash")
    with pytest.raises(ValueError, match="block_size"):
        F.scaled_dot_product_attention(q, q, q, block_size=0)


# ----- the fused primitive: VJP and JVP rules -------------------------------------------------------------------
def _torch_reference_with_lse(q, k, v, scale, mask):
    s = q @ k.transpose(-1, -2) * scale + mask
    return torch.cat([torch.softmax(s, -1) @ v, torch.logsumexp(s, -1, keepdim=True)], -1)


@pytest.mark.parametrize("causal", [False, True])
def test_fused_primitive_vjp_of_output_and_lse(causal):
    """The primitive's raw output [O, lse], both columns' cotangents, against torch's autograd."""
    rng = np.random.default_rng(10)
    q, k, v = _qkv(rng, (2,), 5, 7, 3, 4)
    mask = np.where(np.tri(5, 7, dtype=bool), 0.0, -np.inf) if causal else np.zeros((5, 7))
    compare(lambda q, k, v: attention_blockwise(q, k, v, None, scale=0.5, causal=causal, block=2),
            lambda q, k, v: _torch_reference_with_lse(q, k, v, 0.5, torch.from_numpy(mask)), q, k, v,
            rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_primitive_jvp_against_torch(causal, with_bias):
    rng = np.random.default_rng(11)
    q, k, v = _qkv(rng, (2,), 5, 6, 3, 4)
    bias = rng.standard_normal((5, 6)) if with_bias else None
    mask = np.where(np.tri(5, 6, dtype=bool), 0.0, -np.inf) if causal else np.zeros((5, 6))
    total = mask + (0 if bias is None else bias)
    check_jvp(attention_blockwise,
              lambda q, k, v: attention_blockwise(q, k, v, bias, scale=0.7, causal=causal, block=4),
              lambda q, k, v: _torch_reference_with_lse(q, k, v, 0.7, torch.from_numpy(total)), q, k, v)


def test_fused_primitive_second_order_against_torch():
    """Rules written with dm ops: the Hessian-vector product (grad of grad) matches torch's."""
    rng = np.random.default_rng(12)
    q, k, v = _qkv(rng, (), 4, 5, 3, 2)
    w = rng.standard_normal((4, 2))

    def f_dm(q):
        o = F.scaled_dot_product_attention(q, dm.tensor(k), dm.tensor(v), method="blockwise", block_size=2)
        return (dm.tanh(o) * w).sum()

    def f_t(q):
        o = TF.scaled_dot_product_attention(q, torch.from_numpy(k), torch.from_numpy(v))
        return (torch.tanh(o) * torch.from_numpy(w)).sum()

    t = rng.standard_normal(q.shape)
    hv = dm.hvp(f_dm, q, t)
    hv_t = torch.autograd.functional.hvp(f_t, torch.from_numpy(q), torch.from_numpy(t))[1].numpy()
    np.testing.assert_allclose(np.asarray(hv), hv_t, rtol=1e-9, atol=1e-11)
    # reverse over reverse: the gradient of <grad f, t> is H t too
    qt = dm.tensor(q, requires_grad=True)
    f_dm(qt).backward(create_graph=True)
    g, qt.grad = qt.grad, None
    (g * t).sum().backward()
    np.testing.assert_allclose(qt.grad.data, hv_t, rtol=1e-9, atol=1e-11)



def test_fused_backward_recomputes_once_for_three_arguments():
    rng = np.random.default_rng(13)
    q, k, v = (dm.tensor(x, requires_grad=True) for x in _qkv(rng, (), 8, 8, 4, 4))
    with dm.count_flops() as c:
        F.scaled_dot_product_attention(q, k, v, method="blockwise", block_size=4).sum().backward()
    # one recomputation pass: exp runs once per key block in the backward (2 blocks), not once per argument
    assert c.calls[("backward", "exp")] == 2, c.calls
