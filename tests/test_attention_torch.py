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


# ----- MultiheadAttention --------------------------------------------------------------------------------------
def _torch_module_grads(tm):
    return {n: (None if p.grad is None else p.grad.numpy()) for n, p in tm.named_parameters()}


def _check_module(dm_module, torch_module, inputs, call_dm, call_torch, outputs=(0,), rtol=RTOL, atol=ATOL):
    """Same weights (torch's state dict loaded), same inputs: outputs, input grads and parameter grads."""
    dm_module.load_state_dict(torch_module.state_dict())
    xs = [dm.tensor(x, requires_grad=True) for x in inputs]
    ts = [torch.tensor(x, requires_grad=True) for x in inputs]
    out, tout = call_dm(dm_module, *xs), call_torch(torch_module, *ts)
    out = out if isinstance(out, tuple) else (out,)
    tout = tout if isinstance(tout, tuple) else (tout,)
    rng = np.random.default_rng(99)
    loss, tloss = 0.0, 0.0
    for i in outputs:
        o, to = out[i], tout[i]
        assert o.shape == tuple(to.shape), (i, o.shape, tuple(to.shape))
        np.testing.assert_allclose(o.data, to.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"output {i}")
        ct = rng.standard_normal(o.shape)
        loss = loss + (o * ct).sum()
        tloss = tloss + (to * torch.from_numpy(ct)).sum()
    loss.backward()
    tloss.backward()
    for k, (x, t) in enumerate(zip(xs, ts, strict=True)):
        np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"input grad {k}")
    tgrads = _torch_module_grads(torch_module)
    for n, p in dm_module.named_parameters():
        assert tgrads[n] is not None, n
        np.testing.assert_allclose(p.grad.data, tgrads[n], rtol=rtol, atol=atol, err_msg=f"grad of {n}")
    return out


def _mha_pair(E, H, **kw):
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H, dtype=torch.float64, **kw)
    return nn.MultiheadAttention(E, H, dtype=np.float64, **kw), tm


def test_mha_parameter_names_shapes_and_init():
    m, tm = _mha_pair(8, 2)
    assert [(n, p.shape) for n, p in m.named_parameters()] == [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
    assert set(m.state_dict()) == set(tm.state_dict())
    m2, tm2 = _mha_pair(8, 2, kdim=5, vdim=3, add_bias_kv=True)
    assert sorted((n, p.shape) for n, p in m2.named_parameters()) == sorted(
        (n, tuple(p.shape)) for n, p in tm2.named_parameters())
    # init: zero biases, xavier-uniform bound sqrt(6 / (E + 3E)) on the packed projection
    assert np.all(m.in_proj_bias.data == 0) and np.all(m.out_proj.bias.data == 0)
    bound = np.sqrt(6 / (8 + 24))
    assert np.abs(m.in_proj_weight.data).max() <= bound and np.abs(m.in_proj_weight.data).max() > 0.8 * bound
    assert m.in_proj_weight.dtype == np.float64 and nn.MultiheadAttention(8, 2).in_proj_weight.dtype == np.float32


def _call_mha(**kw):
    return (lambda m, q, k, v: m(q, k, v, **kw)), (lambda m, q, k, v: m(q, k, v, **{
        a: (torch.from_numpy(b) if isinstance(b, np.ndarray) else b) for a, b in kw.items()}))


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("average", [True, False])
def test_mha_self_attention_against_torch(need_weights, average):
    rng = np.random.default_rng(20)
    m, tm = _mha_pair(8, 2)
    x = rng.standard_normal((5, 3, 8))
    cd, ct = _call_mha(need_weights=need_weights, average_attn_weights=average)
    out = _check_module(m, tm, [x, x, x], cd, ct, outputs=(0, 1) if need_weights else (0,))
    if need_weights:
        assert out[1].shape == ((3, 5, 5) if average else (3, 2, 5, 5))
    else:
        assert out[1] is None


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("mask_kind", ["bool", "float", "per-head", "padding", "both"])
def test_mha_masks_against_torch(need_weights, mask_kind):
    rng = np.random.default_rng(21)
    L, S, N, H = 4, 6, 3, 2
    m, tm = _mha_pair(6, H, kdim=5, vdim=7)
    q, k, v = rng.standard_normal((L, N, 6)), rng.standard_normal((S, N, 5)), rng.standard_normal((S, N, 7))
    kw: dict = {"need_weights": need_weights}
    am = rng.random((L, S)) > 0.6
    am[:, 0] = False
    kp = rng.random((N, S)) > 0.6
    kp[:, 1] = False
    if mask_kind == "bool":
        kw["attn_mask"] = am
    elif mask_kind == "float":
        kw["attn_mask"] = rng.standard_normal((L, S))
    elif mask_kind == "per-head":
        kw["attn_mask"] = rng.standard_normal((N * H, L, S))
    elif mask_kind == "padding":
        kw["key_padding_mask"] = kp
    else:
        kw["attn_mask"], kw["key_padding_mask"] = np.where(am, -np.inf, 0.0), np.where(kp, -np.inf, 0.0)
        kw["attn_mask"][:, 0] = kw["key_padding_mask"][:, 0] = 0.0
    cd, ct = _call_mha(**kw)
    _check_module(m, tm, [q, k, v], cd, ct, outputs=(0, 1) if need_weights else (0,))


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_causal_hint_batch_first_cross_attention(need_weights):
    rng = np.random.default_rng(22)
    L = 5
    m, tm = _mha_pair(8, 4, batch_first=True)
    q, kv = rng.standard_normal((2, L, 8)), rng.standard_normal((2, L, 8))
    causal = ~np.tri(L, dtype=bool)  # torch's convention here: True = not allowed
    cd, ct = _call_mha(attn_mask=causal, is_causal=True, need_weights=need_weights)
    _check_module(m, tm, [q, kv, kv], cd, ct)


@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"add_bias_kv": True}, {"add_zero_attn": True},
                                {"add_bias_kv": True, "add_zero_attn": True, "kdim": 3, "vdim": 4}])
def test_mha_options_and_unbatched_against_torch(kw):
    rng = np.random.default_rng(23)
    m, tm = _mha_pair(6, 3, **kw)
    kd, vd = kw.get("kdim", 6), kw.get("vdim", 6)
    kp = np.array([False, True, False, False])
    for batched in (True, False):
        lead = (2,) if batched else ()
        q = rng.standard_normal((3, *lead, 6))
        k, v = rng.standard_normal((4, *lead, kd)), rng.standard_normal((4, *lead, vd))
        mask = np.where(np.broadcast_to(kp, (*lead, 4)), -np.inf, 0.0)
        cd, ct = _call_mha(key_padding_mask=mask, attn_mask=np.zeros((3, 4)))
        tm.zero_grad()
        m.zero_grad()
        _check_module(m, tm, [q, k, v], cd, ct, outputs=(0, 1))


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.booleans(), st.booleans(),
       st.integers(0, 1000))
def test_mha_random_configs(H, hd, L, S, batch_first, need_weights, seed):
    rng = np.random.default_rng(seed)
    E, N = H * hd, 2
    m, tm = _mha_pair(E, H, batch_first=batch_first)
    shape = (lambda n: (N, n, E)) if batch_first else (lambda n: (n, N, E))
    q, k, v = rng.standard_normal(shape(L)), rng.standard_normal(shape(S)), rng.standard_normal(shape(S))
    cd, ct = _call_mha(need_weights=need_weights)
    _check_module(m, tm, [q, k, v], cd, ct, outputs=(0, 1) if need_weights else (0,))


def test_mha_dropout_in_training_only_and_bad_inputs():
    m = nn.MultiheadAttention(4, 2, dropout=0.5, dtype=np.float64)
    x = dm.tensor(np.random.default_rng(0).standard_normal((3, 2, 4)))
    _, w = m(x, x, x)
    assert not np.allclose(w.data.sum(-1), 1)  # weights are returned after dropout (as torch)
    m.eval()
    _, w = m(x, x, x)
    np.testing.assert_allclose(w.data.sum(-1), 1, rtol=1e-12)
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(5, 2)
    with pytest.raises(dm.ShapeError, match="embed_dim"):
        m(dm.tensor(np.zeros((3, 2, 5))), x, x)
    with pytest.raises(ValueError, match="is_causal"):
        m(x, x, x, is_causal=True)
    with pytest.raises(dm.ShapeError, match="attn_mask"):
        m(x, x, x, attn_mask=np.zeros((2, 2)))


# ----- TransformerEncoderLayer / TransformerEncoder ------------------------------------------------------------
def _call_layer(**kw):
    return (lambda m, x: m(x, **kw)), (lambda m, x: m(x, **{
        a: (torch.from_numpy(b) if isinstance(b, np.ndarray) else b) for a, b in kw.items()}))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_layer_against_torch(norm_first, activation, batch_first):
    rng = np.random.default_rng(30)
    kw = dict(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, activation=activation, batch_first=batch_first,
              norm_first=norm_first)
    torch.manual_seed(0)
    tm = torch.nn.TransformerEncoderLayer(**kw, dtype=torch.float64)
    m = nn.TransformerEncoderLayer(**kw, dtype=np.float64)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()]
    x = rng.standard_normal((3, 5, 8))
    kp = np.zeros((3 if batch_first else 5, 5 if batch_first else 3), dtype=bool)
    kp[0, -1] = True
    cd, ct = _call_layer(src_key_padding_mask=kp)
    _check_module(m, tm, [x], cd, ct)


def test_encoder_stack_unbatched_causal_and_bias_free_against_torch():
    rng = np.random.default_rng(31)
    kw = dict(d_model=6, nhead=3, dim_feedforward=10, dropout=0.0, bias=False, norm_first=True)
    torch.manual_seed(0)
    tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(**kw, dtype=torch.float64), 2,
                                     enable_nested_tensor=False)
    m = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw, dtype=np.float64), 2)
    assert set(m.state_dict()) == set(tm.state_dict())
    x = rng.standard_normal((4, 6))
    mask = ~np.tri(4, dtype=bool)
    cd, ct = _call_layer(mask=mask, is_causal=True)
    _check_module(m, tm, [x], cd, ct)


def test_sinusoidal_positional_encoding_matches_the_formula():
    pe = nn.sinusoidal_positional_encoding(7, 6, dtype=np.float64)
    pos, i = 5, 2
    assert pe[pos, 2 * i] == pytest.approx(np.sin(pos / 10000 ** (2 * i / 6)), abs=1e-15)
    assert pe[pos, 2 * i + 1] == pytest.approx(np.cos(pos / 10000 ** (2 * i / 6)), abs=1e-15)
    assert nn.sinusoidal_positional_encoding(3, 5).shape == (3, 5)
    assert nn.sinusoidal_positional_encoding(3, 5).dtype == np.float32


def test_docs_training_example_learns_the_task():
    """docs/attention.md's example trains a transformer encoder with dlmath alone."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "attention.md").read_text(encoding="utf-8")
    block = re.findall(r"```python\n(.*?)```", doc, flags=re.S)[0]
    scope: dict[str, object] = {}
    exec(compile(block, "docs/attention.md", "exec"), scope)
    assert scope["accuracy"] > 0.9


def test_sdpa_float64_mask_keeps_float32_attention():
    rng = np.random.default_rng(40)
    q, k, v = (x.astype(np.float32) for x in _qkv(rng, (), 4, 5, 3, 2))
    for method in METHODS:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=rng.standard_normal((4, 5)), method=method)
        assert np.asarray(out).dtype == np.float32
