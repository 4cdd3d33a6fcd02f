"""Adversarial review of dlmath.nn / dlmath.optim / dlmath.save-load against PyTorch's semantics (issues 7, 8)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

import dlmath as dm
from dlmath import nn, optim
from dlmath.nn import functional as F


@pytest.fixture(autouse=True)
def _torch_float64():
    """torch modules built in float64 in this file only (the default dtype is global: restore it)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def t2n(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


# ----- Module semantics -------------------------------------------------------------------------------------------
def test_shared_module_state_dict_keys_as_torch() -> None:
    # torch's state_dict lists a shared submodule under every path; named_parameters lists it once
    tl = torch.nn.Linear(2, 2)
    ts = torch.nn.Sequential(tl, torch.nn.ReLU(), tl)
    dl = nn.Linear(2, 2, dtype=np.float64)
    ds = nn.Sequential(dl, nn.ReLU(), dl)
    assert list(ds.state_dict()) == list(ts.state_dict())
    assert [n for n, _ in ds.named_parameters()] == [n for n, _ in ts.named_parameters()]
    ds.load_state_dict(ts.state_dict())


def test_shared_parameter_state_dict_and_named_parameters() -> None:
    tm = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    tm[1].weight = tm[0].weight
    dm_ = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    dm_[1].weight = dm_[0].weight
    assert list(dm_.state_dict()) == list(tm.state_dict())
    assert [n for n, _ in dm_.named_parameters()] == [n for n, _ in tm.named_parameters()]


def test_sequential_slice_keeps_names() -> None:
    ts = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))
    ds = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    assert list(ds[1:].state_dict()) == list(ts[1:].state_dict())
    assert isinstance(ds[1:], nn.Sequential)
    nested = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2))
    assert isinstance(nested[0][:1][0], nn.Linear)


def test_sequential_dict_slice_keeps_names() -> None:
    ts = torch.nn.Sequential(OrderedDict(a=torch.nn.Linear(2, 2), b=torch.nn.Linear(2, 2)))
    ds = nn.Sequential(OrderedDict(a=nn.Linear(2, 2), b=nn.Linear(2, 2)))
    assert list(ds[1:].state_dict()) == list(ts[1:].state_dict())


def test_buffer_none_and_delattr() -> None:
    m = nn.BatchNorm1d(3)
    m.running_mean = None
    assert "running_mean" not in m.state_dict()
    del m.running_var
    assert "running_var" not in m.state_dict()
    with pytest.raises(AttributeError):
        _ = m.running_var
    lin = nn.Linear(2, 2)
    lin.bias = None
    assert list(lin.state_dict()) == ["weight"]
    del lin.weight
    assert list(lin.state_dict()) == []


def test_train_returns_self() -> None:
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    assert m.train() is m and m.eval() is m and not m[1].training
    assert m.train(True) is m and m[1].training


def test_load_state_dict_torch_float64_into_float32() -> None:
    tl = torch.nn.Linear(3, 2).double()
    dl = nn.Linear(3, 2)  # float32
    res = dl.load_state_dict(tl.state_dict())
    assert dl.weight.data.dtype == np.float32
    np.testing.assert_allclose(dl.weight.data, t2n(tl.weight).astype(np.float32))
    assert res.missing_keys == [] and res.unexpected_keys == []


def test_load_state_dict_strict_false_as_torch() -> None:
    tl = torch.nn.Linear(3, 2)
    sd = dict(tl.state_dict())
    del sd["bias"]
    sd["extra"] = torch.zeros(1)
    tres = torch.nn.Linear(3, 2).load_state_dict(sd, strict=False)
    dres = nn.Linear(3, 2).load_state_dict(sd, strict=False)
    assert dres.missing_keys == tres.missing_keys and dres.unexpected_keys == tres.unexpected_keys


def test_zero_grad_then_backward_accumulates() -> None:
    lin = nn.Linear(3, 1, dtype=np.float64)
    x = dm.tensor(np.ones((2, 3)))
    lin(x).sum().backward()
    g1 = lin.weight.grad.data.copy()
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.data, 2 * g1)
    lin.zero_grad()
    assert lin.weight.grad is None
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.data, g1)
    lin.zero_grad(set_to_none=False)
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.data, g1)


# ----- BatchNorm ---------------------------------------------------------------------------------------------------
def test_batchnorm_batch_of_one_raises_as_torch() -> None:
    with pytest.raises(ValueError):
        torch.nn.BatchNorm1d(3)(torch.randn(1, 3))
    with pytest.raises(ValueError):
        nn.BatchNorm1d(3, dtype=np.float64)(dm.tensor(np.random.randn(1, 3)))


def _bn_pair(cls_t, cls_d, c, **kw):
    tb = cls_t(c, **kw)
    db = cls_d(c, dtype=np.float64, **kw)
    if kw.get("affine", True):
        with torch.no_grad():
            tb.weight.uniform_(0.5, 2)
            tb.bias.uniform_(-1, 1)
    db.load_state_dict(tb.state_dict())
    return tb, db


@pytest.mark.parametrize("momentum", [None, 0.1, 0.0, 1.0])
def test_batchnorm_momentum_running_stats(momentum) -> None:
    tb, db = _bn_pair(torch.nn.BatchNorm2d, nn.BatchNorm2d, 3, momentum=momentum)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(size=(4, 3, 2, 2)) * 3 + 1
        tb(torch.tensor(x))
        db(dm.tensor(x))
    for k, v in tb.state_dict().items():
        np.testing.assert_allclose(db.state_dict()[k], t2n(v), rtol=1e-12, atol=1e-14, err_msg=k)
    assert db.num_batches_tracked.dtype == np.int64
    x = rng.normal(size=(2, 3, 2, 2))
    np.testing.assert_allclose(db.eval()(dm.tensor(x)).data, t2n(tb.eval()(torch.tensor(x))), rtol=1e-12)


def test_batchnorm_no_running_stats_eval_uses_batch() -> None:
    tb, db = _bn_pair(torch.nn.BatchNorm1d, nn.BatchNorm1d, 3, track_running_stats=False)
    x = np.random.default_rng(1).normal(size=(5, 3, 4))
    tb.eval()
    db.eval()
    np.testing.assert_allclose(db(dm.tensor(x)).data, t2n(tb(torch.tensor(x))), rtol=1e-12, atol=1e-12)


def test_batchnorm_eval_after_load_state_dict() -> None:
    tb = torch.nn.BatchNorm2d(3)
    tb(torch.randn(4, 3, 2, 2) * 2 + 3)
    tb.eval()
    db = nn.BatchNorm2d(3, dtype=np.float64)
    db.load_state_dict(tb.state_dict())
    db.eval()
    x = np.random.default_rng(2).normal(size=(2, 3, 2, 2))
    np.testing.assert_allclose(db(dm.tensor(x)).data, t2n(tb(torch.tensor(x))), rtol=1e-12, atol=1e-12)
    assert int(db.num_batches_tracked) == int(tb.num_batches_tracked)


# ----- Dropout ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ["Dropout", "Dropout1d", "Dropout2d"])
def test_dropout_p0_p1(cls) -> None:
    shape = {"Dropout": (4, 5), "Dropout1d": (2, 3, 4), "Dropout2d": (2, 3, 4, 4)}[cls]
    x = dm.tensor(np.random.default_rng(3).normal(size=shape), requires_grad=True)
    y0 = getattr(nn, cls)(p=0.0)(x)
    np.testing.assert_array_equal(y0.data, x.data)
    y1 = getattr(nn, cls)(p=1.0)(x)
    np.testing.assert_array_equal(y1.data, np.zeros(shape))
    assert np.all(np.isfinite(y1.data))
    y1.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.zeros(shape))
    with pytest.raises(ValueError):
        getattr(nn, cls)(p=1.5)


# ----- losses -----------------------------------------------------------------------------------------------------
def _ce_both(logits, target, **kw):
    tl = torch.tensor(logits, requires_grad=True)
    dl = dm.tensor(logits, requires_grad=True)
    tt = torch.tensor(target)
    dt_ = target
    if "weight" in kw and kw["weight"] is not None:
        tkw = {**kw, "weight": torch.tensor(kw["weight"])}
    else:
        tkw = kw
    to = torch.nn.functional.cross_entropy(tl, tt, **tkw)
    do = F.cross_entropy(dl, dt_, **kw)
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12, equal_nan=True)
    if to.numel() and torch.isfinite(to).all():
        to.sum().backward()
        do.sum().backward()
        np.testing.assert_allclose(dl.grad.data, t2n(tl.grad), rtol=1e-10, atol=1e-12)
    return do, to


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("use_weight", [False, True])
def test_cross_entropy_spatial_weight_smoothing_ignore(reduction, smoothing, use_weight) -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 4, 3, 2))
    target = rng.integers(0, 4, size=(2, 3, 2))
    target[0, 0, 0] = -100
    w = rng.uniform(0.5, 2, size=4) if use_weight else None
    do, to = _ce_both(logits, target, weight=w, reduction=reduction, label_smoothing=smoothing)
    assert do.data.shape == tuple(to.shape)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_all_ignored(reduction) -> None:
    logits = np.random.default_rng(5).normal(size=(3, 4))
    target = np.full(3, -100)
    _ce_both(logits, target, reduction=reduction)
    _ce_both(logits, target, reduction=reduction, label_smoothing=0.1)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_1d_and_probability_targets(smoothing) -> None:
    rng = np.random.default_rng(6)
    _ce_both(rng.normal(size=5), np.array(2), label_smoothing=smoothing)
    p = rng.uniform(size=(3, 5))
    p /= p.sum(1, keepdims=True)
    w = rng.uniform(0.5, 2, size=5)
    for red in ("none", "mean", "sum"):
        _ce_both(rng.normal(size=(3, 5)), p, reduction=red, label_smoothing=smoothing)
        _ce_both(rng.normal(size=(3, 5)), p, reduction=red, label_smoothing=smoothing, weight=w)
    p4 = rng.uniform(size=(2, 5, 3, 2))
    p4 /= p4.sum(1, keepdims=True)
    _ce_both(rng.normal(size=(2, 5, 3, 2)), p4, reduction="none", label_smoothing=smoothing)


def test_nll_and_mse_bce_none_shapes() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, 4))
    y = rng.normal(size=(2, 3, 4))
    assert F.mse_loss(dm.tensor(x), dm.tensor(y), reduction="none").data.shape == (2, 3, 4)
    tgt = rng.integers(0, 3, size=(2, 4))
    lp = torch.log_softmax(torch.tensor(x), 1)
    to = torch.nn.functional.nll_loss(lp, torch.tensor(tgt), reduction="none", ignore_index=1)
    do = F.nll_loss(F.log_softmax(dm.tensor(x), 1), tgt, reduction="none", ignore_index=1)
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-12)
    pw = rng.uniform(0.5, 2, size=4)
    to = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor((y > 0) * 1.0),
                                                              pos_weight=torch.tensor(pw), reduction="none")
    do = F.binary_cross_entropy_with_logits(dm.tensor(x), (y > 0) * 1.0, pos_weight=pw, reduction="none")
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-12)


# ----- convolution and pooling ------------------------------------------------------------------------------------
def _layer_vs_torch(tm, dm_, x, atol=1e-10):
    dm_.load_state_dict(tm.state_dict())
    tx = torch.tensor(x, requires_grad=True)
    dx = dm.tensor(x, requires_grad=True)
    to = tm(tx)
    do = dm_(dx)
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=atol)
    rng = np.random.default_rng(0)
    gout = rng.normal(size=to.shape)
    (to * torch.tensor(gout)).sum().backward()
    (do * dm.tensor(gout)).sum().backward()
    np.testing.assert_allclose(dx.grad.data, t2n(tx.grad), rtol=1e-10, atol=atol)
    for (n, tp), (_, dp) in zip(tm.named_parameters(), dm_.named_parameters(), strict=True):
        np.testing.assert_allclose(dp.grad.data, t2n(tp.grad), rtol=1e-10, atol=atol, err_msg=n)


@pytest.mark.parametrize("k,d", [(2, 1), (4, 1), (2, 3), (3, 2), (4, 2)])
def test_conv_same_padding_even_kernel_dilation(k, d) -> None:
    x = np.random.default_rng(8).normal(size=(2, 4, 7, 6))
    _layer_vs_torch(torch.nn.Conv2d(4, 6, (k, k + 1), padding="same", dilation=(d, 1)),
                    nn.Conv2d(4, 6, (k, k + 1), padding="same", dilation=(d, 1), dtype=np.float64), x)
    x1 = np.random.default_rng(9).normal(size=(2, 4, 9))
    _layer_vs_torch(torch.nn.Conv1d(4, 2, k, padding="same", dilation=d),
                    nn.Conv1d(4, 2, k, padding="same", dilation=d, dtype=np.float64), x1)


def test_conv_depthwise_groups_and_padding_modes() -> None:
    x = np.random.default_rng(10).normal(size=(2, 4, 6, 5))
    _layer_vs_torch(torch.nn.Conv2d(4, 8, 3, groups=4, padding=1, stride=2),
                    nn.Conv2d(4, 8, 3, groups=4, padding=1, stride=2, dtype=np.float64), x)
    _layer_vs_torch(torch.nn.Conv2d(4, 4, 3, groups=2, padding=2, dilation=2, bias=False),
                    nn.Conv2d(4, 4, 3, groups=2, padding=2, dilation=2, bias=False, dtype=np.float64), x)
    for mode in ("reflect", "replicate", "circular"):
        _layer_vs_torch(torch.nn.Conv2d(4, 3, 3, padding=1, padding_mode=mode),
                        nn.Conv2d(4, 3, 3, padding=1, padding_mode=mode, dtype=np.float64), x)
    with pytest.raises(ValueError):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError):
        nn.Conv2d(4, 4, 3, padding="same", stride=2)


@pytest.mark.parametrize("size,k,s,p", [(5, 2, 2, 0), (6, 3, 2, 1), (7, 3, 3, 1), (4, 2, 3, 1), (8, 3, 2, 0)])
def test_pooling_ceil_mode_edge_windows(size, k, s, p) -> None:
    x = np.random.default_rng(11).normal(size=(2, 3, size, size + 1))
    _layer_vs_torch(torch.nn.MaxPool2d(k, s, p, ceil_mode=True), nn.MaxPool2d(k, s, p, ceil_mode=True), x)
    for cip in (True, False):
        _layer_vs_torch(torch.nn.AvgPool2d(k, s, p, ceil_mode=True, count_include_pad=cip),
                        nn.AvgPool2d(k, s, p, ceil_mode=True, count_include_pad=cip), x)
    x1 = x[:, :, 0]
    _layer_vs_torch(torch.nn.MaxPool1d(k, s, p, ceil_mode=True), nn.MaxPool1d(k, s, p, ceil_mode=True), x1)
    _layer_vs_torch(torch.nn.AvgPool1d(k, s, p, ceil_mode=True), nn.AvgPool1d(k, s, p, ceil_mode=True), x1)


def test_maxpool_dilation_and_adaptive_uneven() -> None:
    x = np.random.default_rng(12).normal(size=(2, 3, 9, 7))
    _layer_vs_torch(torch.nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True),
                    nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), x)
    _layer_vs_torch(torch.nn.AdaptiveAvgPool2d((4, 3)), nn.AdaptiveAvgPool2d((4, 3)), x)
    _layer_vs_torch(torch.nn.AdaptiveAvgPool2d((None, 5)), nn.AdaptiveAvgPool2d((None, 5)), x)


# ----- attention --------------------------------------------------------------------------------------------------
def _mha_pair(e=6, h=2, **kw):
    tm = torch.nn.MultiheadAttention(e, h, **kw)
    dm_ = nn.MultiheadAttention(e, h, dtype=np.float64, **kw)
    dm_.load_state_dict(tm.state_dict())
    return tm, dm_


@pytest.mark.parametrize("mask_kind", ["bool2d", "float2d", "bool3d", "float3d", "kpm_bool", "kpm_float", "both"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_masks(mask_kind, batch_first) -> None:
    rng = np.random.default_rng(13)
    L, S, N, E, H = 3, 4, 2, 6, 2
    tm, dm_ = _mha_pair(E, H, batch_first=batch_first)
    q = rng.normal(size=(N, L, E) if batch_first else (L, N, E))
    kv = rng.normal(size=(N, S, E) if batch_first else (S, N, E))
    kw_t, kw_d = {}, {}
    bool2 = rng.uniform(size=(L, S)) < 0.3
    bool2[:, 0] = False
    bool3 = rng.uniform(size=(N * H, L, S)) < 0.3
    bool3[..., 1] = False
    kpm = np.zeros((N, S), bool)
    kpm[0, -1] = kpm[1, 0] = True
    if mask_kind in ("bool2d", "both"):
        kw_t["attn_mask"], kw_d["attn_mask"] = torch.tensor(bool2), bool2
    if mask_kind == "float2d":
        m = rng.normal(size=(L, S))
        kw_t["attn_mask"], kw_d["attn_mask"] = torch.tensor(m), m
    if mask_kind == "bool3d":
        kw_t["attn_mask"], kw_d["attn_mask"] = torch.tensor(bool3), bool3
    if mask_kind == "float3d":
        m = rng.normal(size=(N * H, L, S))
        kw_t["attn_mask"], kw_d["attn_mask"] = torch.tensor(m), m
    if mask_kind in ("kpm_bool", "both"):
        kw_t["key_padding_mask"], kw_d["key_padding_mask"] = torch.tensor(kpm), kpm
    if mask_kind == "kpm_float":
        m = np.where(kpm, -np.inf, 0.0)
        kw_t["key_padding_mask"], kw_d["key_padding_mask"] = torch.tensor(m), m
    tq = torch.tensor(q, requires_grad=True)
    dq = dm.tensor(q, requires_grad=True)
    for avg in (True, False):
        to, tw = tm(tq, torch.tensor(kv), torch.tensor(kv), average_attn_weights=avg, **kw_t)
        do, dw = dm_(dq, dm.tensor(kv), dm.tensor(kv), average_attn_weights=avg, **kw_d)
        np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dw.data, t2n(tw), rtol=1e-10, atol=1e-12)
    to.sum().backward()
    do.sum().backward()
    np.testing.assert_allclose(dq.grad.data, t2n(tq.grad), rtol=1e-10, atol=1e-12)


def test_mha_unbatched_and_causal() -> None:
    rng = np.random.default_rng(14)
    tm, dm_ = _mha_pair(4, 2)
    q = rng.normal(size=(3, 4))
    to, tw = tm(torch.tensor(q), torch.tensor(q), torch.tensor(q))
    do, dw = dm_(dm.tensor(q), dm.tensor(q), dm.tensor(q))
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dw.data, t2n(tw), rtol=1e-10, atol=1e-12)
    q3 = rng.normal(size=(3, 2, 4))
    causal = np.triu(np.ones((3, 3), bool), 1)
    to, _ = tm(*(torch.tensor(q3),) * 3, attn_mask=torch.tensor(causal), is_causal=True)
    do, _ = dm_(*(dm.tensor(q3),) * 3, attn_mask=causal, is_causal=True)
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)


# ----- recurrent --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_rnn_multilayer_dropout_eval_is_deterministic(cls) -> None:
    tm = getattr(torch.nn, cls)(3, 4, num_layers=3, dropout=0.5, bidirectional=True)
    dm_ = getattr(nn, cls)(3, 4, num_layers=3, dropout=0.5, bidirectional=True, dtype=np.float64)
    dm_.load_state_dict(tm.state_dict())
    tm.eval()
    dm_.eval()
    x = np.random.default_rng(15).normal(size=(5, 2, 3))
    to, _ = tm(torch.tensor(x))
    do, _ = dm_(dm.tensor(x))
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)


# ----- optimizers -------------------------------------------------------------------------------------------------
def _opt_run(make_t, make_d, steps=4, groups=True):
    tl = torch.nn.Linear(3, 2)
    dl = nn.Linear(3, 2, dtype=np.float64)
    dl.load_state_dict(tl.state_dict())
    if groups:
        tp = [{"params": [tl.weight]}, {"params": [tl.bias], "lr": 0.3, "weight_decay": 0.0}]
        dp = [{"params": [dl.weight]}, {"params": [dl.bias], "lr": 0.3, "weight_decay": 0.0}]
    else:
        tp, dp = list(tl.parameters()), list(dl.parameters())
    topt, dopt = make_t(tp), make_d(dp)
    rng = np.random.default_rng(16)
    for _ in range(steps):
        x = rng.normal(size=(5, 3))
        topt.zero_grad()
        dopt.zero_grad()
        (tl(torch.tensor(x)) ** 2).sum().backward()
        (dl(dm.tensor(x)) ** 2).sum().backward()
        topt.step()
        dopt.step()
    for k, v in tl.state_dict().items():
        np.testing.assert_allclose(dl.state_dict()[k], t2n(v), rtol=1e-10, atol=1e-12, err_msg=k)
    return topt, dopt, tl, dl


@pytest.mark.parametrize("name,kw", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, betas=(0.5, 0.9), maximize=True)),
    ("AdamW", dict(lr=0.05, amsgrad=True, weight_decay=0.2)),
])
def test_optimizers_param_groups_vs_torch(name, kw) -> None:
    _opt_run(lambda p: getattr(torch.optim, name)(p, **kw), lambda p: getattr(optim, name)(p, **kw))


def test_sgd_nesterov_without_momentum_raises() -> None:
    lin = nn.Linear(2, 2)
    with pytest.raises(ValueError):
        torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.SGD(lin.parameters(), lr=0.1, nesterov=True)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.05, amsgrad=True))])
def test_optimizer_state_dict_round_trip(name, kw) -> None:
    topt, dopt, _, dl = _opt_run(lambda p: getattr(torch.optim, name)(p, **kw),
                                 lambda p: getattr(optim, name)(p, **kw), steps=2)
    dsd = dopt.state_dict()
    tsd = topt.state_dict()
    assert sorted(dsd["state"]) == sorted(tsd["state"])
    for i, st in tsd["state"].items():
        assert sorted(dsd["state"][i]) == sorted(st)
        for k, v in st.items():
            np.testing.assert_allclose(np.asarray(dsd["state"][i][k], dtype=float), t2n(torch.as_tensor(v)),
                                       rtol=1e-10, err_msg=k)
    # a fresh optimizer loaded from the state dict continues exactly as the original
    dl2 = nn.Linear(3, 2, dtype=np.float64)
    dl2.load_state_dict(dl.state_dict())
    dopt2 = getattr(optim, name)([{"params": [dl2.weight]}, {"params": [dl2.bias]}], **kw)
    dopt2.load_state_dict(dsd)
    assert dopt2.param_groups[1]["lr"] == 0.3
    x = np.random.default_rng(17).normal(size=(5, 3))
    for model, opt in ((dl, dopt), (dl2, dopt2)):
        opt.zero_grad()
        (model(dm.tensor(x)) ** 2).sum().backward()
        opt.step()
    np.testing.assert_array_equal(dl2.weight.data, dl.weight.data)
    # state_dict is a snapshot: later steps do not change it
    before = {i: {k: np.array(v, copy=True) for k, v in st.items()} for i, st in dsd["state"].items()}
    dopt.step()
    for i, st in before.items():
        for k, v in st.items():
            np.testing.assert_array_equal(np.asarray(dsd["state"][i][k]), v)


def test_clip_grad_norm_without_gradients_and_inf() -> None:
    lin = nn.Linear(2, 2)
    tlin = torch.nn.Linear(2, 2)
    assert float(nn.utils.clip_grad_norm_(lin.parameters(), 1.0)) == float(
        torch.nn.utils.clip_grad_norm_(tlin.parameters(), 1.0))
    tlin = torch.nn.Linear(3, 2)
    dlin = nn.Linear(3, 2, dtype=np.float64)
    dlin.load_state_dict(tlin.state_dict())
    x = np.random.default_rng(18).normal(size=(4, 3)) * 10
    (tlin(torch.tensor(x)) ** 2).sum().backward()
    (dlin(dm.tensor(x)) ** 2).sum().backward()
    for nt in (2.0, 1.0, float("inf"), 3.0):
        tg = [p.grad.clone() for p in tlin.parameters()]
        dg = [p.grad.data.copy() for p in dlin.parameters()]
        tn = torch.nn.utils.clip_grad_norm_(tlin.parameters(), 0.5, norm_type=nt)
        dn = nn.utils.clip_grad_norm_(dlin.parameters(), 0.5, norm_type=nt)
        np.testing.assert_allclose(float(dn), float(tn), rtol=1e-12)
        for (tp, dp) in zip(tlin.parameters(), dlin.parameters(), strict=True):
            np.testing.assert_allclose(dp.grad.data, t2n(tp.grad), rtol=1e-12)
        for tp, g in zip(tlin.parameters(), tg, strict=True):
            tp.grad = g
        for dp, g in zip(dlin.parameters(), dg, strict=True):
            dp.grad = dm.tensor(g)


# ----- save / load ------------------------------------------------------------------------------------------------
def test_save_load_dtypes_noncontiguous_and_empty(tmp_path) -> None:
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    sd = {"t": a.T, "strided": a[::2, ::3], "f16": a.astype(np.float16), "i32": a.astype(np.int32),
          "i64": np.array(7, dtype=np.int64), "u8": a.astype(np.uint8), "b": a > 3, "empty": np.zeros((0, 3)),
          "scalar": np.float32(2.5)}
    dm.save(sd, tmp_path / "x.safetensors")
    back = dm.load(tmp_path / "x.safetensors")
    for k, v in sd.items():
        v = np.asarray(v)
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v)
        assert back[k].flags.writeable
    dm.save({}, tmp_path / "e.safetensors")
    assert dm.load(tmp_path / "e.safetensors") == {}


def test_load_torch_saved_safetensors(tmp_path) -> None:
    from safetensors.torch import save_file

    tm = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3)).float()
    tm(torch.randn(2, 2, 5, 5, dtype=torch.float32))
    save_file(tm.state_dict(), str(tmp_path / "m.safetensors"))
    dmod = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    dmod.load_state_dict(dm.load(tmp_path / "m.safetensors"))
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(dmod.state_dict()[k], v.numpy())
    assert dmod.state_dict()["1.num_batches_tracked"].dtype == np.int64
    # and the other way: dlmath's file read by safetensors.torch
    from safetensors.torch import load_file

    dm.save(dmod.state_dict(), tmp_path / "d.safetensors")
    tm.load_state_dict(load_file(str(tmp_path / "d.safetensors")))


def test_load_bfloat16_safetensors_as_float32(tmp_path) -> None:
    from safetensors.torch import save_file

    # a torch model saved in bfloat16 (common for large checkpoints) loads, widened exactly to float32
    w = torch.randn(3, 4).to(torch.bfloat16)
    save_file({"w": w, "i": torch.arange(3), "h": torch.ones(2, dtype=torch.float16)}, str(tmp_path / "b.safetensors"))
    out = dm.load(tmp_path / "b.safetensors")
    assert out["w"].dtype == np.float32 and out["i"].dtype == np.int64 and out["h"].dtype == np.float16
    np.testing.assert_array_equal(out["w"], w.float().numpy())
    np.testing.assert_array_equal(out["i"], np.arange(3))
    lin = nn.Linear(4, 3, bias=False)
    lin.load_state_dict({"weight": out["w"]})
    dm.save({"w": w}, tmp_path / "c.safetensors")  # saving a bf16 torch tensor stores float32
    np.testing.assert_array_equal(dm.load(tmp_path / "c.safetensors")["w"], w.float().numpy())


def test_load_state_dict_from_bfloat16_torch_tensor() -> None:
    tl = torch.nn.Linear(2, 2).to(torch.bfloat16)
    dl = nn.Linear(2, 2)
    dl.load_state_dict(tl.state_dict())
    np.testing.assert_array_equal(dl.weight.data, tl.weight.float().detach().numpy())


# ----- batch statistics edge shapes, more attention and recurrent cases -------------------------------------------
def test_batchnorm_single_sample_with_length_and_eval_batch_of_one() -> None:
    tb, db = _bn_pair(torch.nn.BatchNorm1d, nn.BatchNorm1d, 3)
    x = np.random.default_rng(19).normal(size=(1, 3, 4))  # N=1 but L>1: torch accepts
    _layer_vs_torch(tb, db, x)
    np.testing.assert_allclose(db.running_var, t2n(tb.running_var), rtol=1e-12)
    tb.eval()
    db.eval()
    x1 = np.random.default_rng(20).normal(size=(1, 3))
    np.testing.assert_allclose(db(dm.tensor(x1)).data, t2n(tb(torch.tensor(x1))), rtol=1e-12)
    with pytest.raises(ValueError):
        nn.BatchNorm2d(3, dtype=np.float64)(dm.tensor(np.ones((1, 3, 1, 1))))


def test_mha_kdim_vdim_bias_kv_zero_attn_no_weights() -> None:
    rng = np.random.default_rng(21)
    tm = torch.nn.MultiheadAttention(6, 3, kdim=4, vdim=5, add_bias_kv=True, add_zero_attn=True)
    dm_ = nn.MultiheadAttention(6, 3, kdim=4, vdim=5, add_bias_kv=True, add_zero_attn=True, dtype=np.float64)
    assert list(dm_.state_dict()) == list(tm.state_dict())
    dm_.load_state_dict(tm.state_dict())
    q, k, v = rng.normal(size=(2, 3, 6)), rng.normal(size=(4, 3, 4)), rng.normal(size=(4, 3, 5))
    kpm = np.zeros((3, 4), bool)
    kpm[1, 2] = True
    am = rng.uniform(size=(2, 4)) < 0.3
    to, tw = tm(torch.tensor(q), torch.tensor(k), torch.tensor(v), key_padding_mask=torch.tensor(kpm),
                attn_mask=torch.tensor(am))
    do, dw = dm_(dm.tensor(q), dm.tensor(k), dm.tensor(v), key_padding_mask=kpm, attn_mask=am)
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dw.data, t2n(tw), rtol=1e-10, atol=1e-12)
    to, tw = tm(torch.tensor(q), torch.tensor(k), torch.tensor(v), need_weights=False)
    do, dw = dm_(dm.tensor(q), dm.tensor(k), dm.tensor(v), need_weights=False)
    assert tw is None and dw is None
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)


def test_mha_fully_masked_row_documented_divergence() -> None:
    # documented choice (nn/attention.py): a query with every key masked gets zero weights and a zero attention
    # output, as torch's scaled_dot_product_attention; torch's MultiheadAttention gives NaN there. Other rows agree.
    tm, dm_ = _mha_pair(4, 2)
    q = np.random.default_rng(22).normal(size=(3, 2, 4))
    am = np.zeros((3, 3), bool)
    am[1] = True
    to, _ = tm(*(torch.tensor(q),) * 3, attn_mask=torch.tensor(am))
    do, dw = dm_(*(dm.tensor(q),) * 3, attn_mask=am)
    assert torch.isnan(to[1]).all()
    np.testing.assert_allclose(do.data[[0, 2]], t2n(to)[[0, 2]], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(dw.data[:, 1], 0.0)
    np.testing.assert_allclose(do.data[1], np.broadcast_to(dm_.out_proj.bias.data, (2, 4)), atol=1e-15)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_layer_eval_with_padding(norm_first, activation) -> None:
    tm = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3, activation=activation, norm_first=norm_first,
                                          batch_first=True)
    dm_ = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3, activation=activation, norm_first=norm_first,
                                     batch_first=True, dtype=np.float64)
    dm_.load_state_dict(tm.state_dict())
    tm.eval()
    dm_.eval()
    x = np.random.default_rng(23).normal(size=(2, 5, 8))
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True
    with torch.no_grad():
        to = tm(torch.tensor(x), src_key_padding_mask=torch.tensor(kpm))
    do = dm_(dm.tensor(x), src_key_padding_mask=kpm)
    # torch's eval fast path returns 0 at padded positions (nested tensors); compare the others
    np.testing.assert_allclose(do.data[~kpm], t2n(to)[~kpm], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_rnn_batch_first_initial_state_and_unbatched(cls) -> None:
    rng = np.random.default_rng(24)
    tm = getattr(torch.nn, cls)(3, 4, num_layers=2, batch_first=True)
    dm_ = getattr(nn, cls)(3, 4, num_layers=2, batch_first=True, dtype=np.float64)
    dm_.load_state_dict(tm.state_dict())
    x = rng.normal(size=(2, 5, 3))
    h0 = rng.normal(size=(2, 2, 4))
    c0 = rng.normal(size=(2, 2, 4))
    th = torch.tensor(h0, requires_grad=True)
    dh = dm.tensor(h0, requires_grad=True)
    if cls == "LSTM":
        to, (thn, _) = tm(torch.tensor(x), (th, torch.tensor(c0)))
        do, (dhn, _) = dm_(dm.tensor(x), (dh, dm.tensor(c0)))
    else:
        to, thn = tm(torch.tensor(x), th)
        do, dhn = dm_(dm.tensor(x), dh)
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)
    (to.sum() + thn.sum()).backward()
    (do.sum() + dhn.sum()).backward()
    np.testing.assert_allclose(dh.grad.data, t2n(th.grad), rtol=1e-10, atol=1e-12)
    xu = rng.normal(size=(5, 3))  # unbatched (L, H_in)
    to, _ = tm(torch.tensor(xu))
    do, _ = dm_(dm.tensor(xu))
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)


# ----- simple layers, init ----------------------------------------------------------------------------------------
def test_simple_layers_vs_torch() -> None:
    rng = np.random.default_rng(25)
    x = rng.normal(size=(2, 3, 4, 5))
    _layer_vs_torch(torch.nn.LayerNorm((4, 5), elementwise_affine=True), nn.LayerNorm((4, 5), dtype=np.float64), x)
    _layer_vs_torch(torch.nn.LayerNorm(5, bias=False), nn.LayerNorm(5, bias=False, dtype=np.float64), x)
    _layer_vs_torch(torch.nn.LayerNorm(5, elementwise_affine=False),
                    nn.LayerNorm(5, elementwise_affine=False, dtype=np.float64), x)
    _layer_vs_torch(torch.nn.GELU("tanh"), nn.GELU("tanh"), x)
    _layer_vs_torch(torch.nn.LeakyReLU(0.3), nn.LeakyReLU(0.3), x)
    _layer_vs_torch(torch.nn.Softmax(dim=-2), nn.Softmax(dim=-2), x)
    _layer_vs_torch(torch.nn.LogSoftmax(dim=1), nn.LogSoftmax(dim=1), x)
    _layer_vs_torch(torch.nn.Flatten(1, 2), nn.Flatten(1, 2), x)
    _layer_vs_torch(torch.nn.Flatten(0, -2), nn.Flatten(0, -2), x)
    _layer_vs_torch(torch.nn.Linear(5, 2), nn.Linear(5, 2, dtype=np.float64), x)
    _layer_vs_torch(torch.nn.Linear(5, 2), nn.Linear(5, 2, dtype=np.float64), x[0, 0, 0])


def test_init_bounds_and_fans_as_torch() -> None:
    for shape in [(64, 32), (16, 8, 3, 3), (8, 4, 5)]:
        t = torch.empty(shape)
        assert nn.init.calculate_fan_in_and_fan_out(np.empty(shape)) == torch.nn.init._calculate_fan_in_and_fan_out(t)
    for nl, param in [("relu", None), ("leaky_relu", 0.2), ("tanh", None), ("selu", None), ("linear", None)]:
        assert nn.init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))
    w = dm.Tensor(np.empty((400, 300, 3)))
    nn.init.kaiming_uniform_(w, a=0.5, mode="fan_out", nonlinearity="leaky_relu")
    bound = torch.nn.init.calculate_gain("leaky_relu", 0.5) * np.sqrt(3.0 / (400 * 3))
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound
    lin = nn.Linear(50, 40)
    assert np.abs(lin.weight.data).max() <= 1 / np.sqrt(50) and np.abs(lin.bias.data).max() <= 1 / np.sqrt(50)
    conv = nn.Conv2d(6, 4, 3, groups=2)
    assert np.abs(conv.bias.data).max() <= 1 / np.sqrt(3 * 9)


def test_container_setitem_delitem_insert_as_torch() -> None:
    def names(m):
        return [(k, type(v).__name__) for k, v in m.named_children()]

    for tcls, dcls in ((torch.nn.Sequential, nn.Sequential), (torch.nn.ModuleList, nn.ModuleList)):
        def build(lib, cls):
            mods = [lib.Linear(2, 2), lib.ReLU(), lib.Tanh(), lib.Sigmoid()]
            return cls(*mods) if cls in (torch.nn.Sequential, nn.Sequential) else cls(mods)
        t, d = build(torch.nn, tcls), build(nn, dcls)
        t[1] = torch.nn.GELU()
        d[1] = nn.GELU()
        t[-1] = torch.nn.LeakyReLU()
        d[-1] = nn.LeakyReLU()
        assert names(d) == names(t)
        del t[0]
        del d[0]
        assert names(d) == names(t)
        t.insert(2, torch.nn.ReLU())
        d.insert(2, nn.ReLU())
        t.insert(0, torch.nn.Linear(2, 2))
        d.insert(0, nn.Linear(2, 2))
        assert names(d) == names(t)
        del t[1:3]
        del d[1:3]
        assert names(d) == names(t) and list(d.state_dict()) == list(t.state_dict())
        with pytest.raises(IndexError):
            d[7] = nn.ReLU()
        with pytest.raises(TypeError):
            d[0] = 3
    s = nn.Sequential(nn.Linear(2, 2)).extend([nn.ReLU(), nn.Tanh()])
    assert [type(m).__name__ for m in s] == ["Linear", "ReLU", "Tanh"]


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                     ("Adam", dict(lr=0.05, amsgrad=True)), ("AdamW", dict(lr=0.05))])
def test_optimizer_loads_torch_optimizer_state_dict(name, kw) -> None:
    rng = np.random.default_rng(26)
    tl = torch.nn.Linear(3, 2)
    topt = getattr(torch.optim, name)(tl.parameters(), **kw)
    for _ in range(2):
        topt.zero_grad()
        (tl(torch.tensor(rng.normal(size=(4, 3)))) ** 2).sum().backward()
        topt.step()
    dl = nn.Linear(3, 2, dtype=np.float64)
    dl.load_state_dict(tl.state_dict())
    dopt = getattr(optim, name)(dl.parameters(), **kw)
    dopt.load_state_dict(topt.state_dict())
    x = rng.normal(size=(4, 3))
    topt.zero_grad()
    (tl(torch.tensor(x)) ** 2).sum().backward()
    topt.step()
    (dl(dm.tensor(x)) ** 2).sum().backward()
    dopt.step()
    for k, v in tl.state_dict().items():
        np.testing.assert_allclose(dl.state_dict()[k], t2n(v), rtol=1e-10, atol=1e-12, err_msg=k)


# ----- where training-mode dropout sits: p=1 makes it deterministic ----------------------------------------------
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_rnn_dropout_one_between_layers_only(cls) -> None:
    tm = getattr(torch.nn, cls)(3, 4, num_layers=3, dropout=1.0, bidirectional=True)
    dm_ = getattr(nn, cls)(3, 4, num_layers=3, dropout=1.0, bidirectional=True, dtype=np.float64)
    dm_.load_state_dict(tm.state_dict())
    x = np.random.default_rng(27).normal(size=(5, 2, 3))
    to, th = tm(torch.tensor(x))
    do, dh = dm_(dm.tensor(x))
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)
    th, dh = (th[0], dh[0]) if cls == "LSTM" else (th, dh)
    np.testing.assert_allclose(dh.data, t2n(th), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
def test_attention_dropout_one_in_training(norm_first) -> None:
    rng = np.random.default_rng(28)
    tm, dm_ = _mha_pair(4, 2, dropout=1.0)
    with torch.no_grad():
        tm.out_proj.bias.uniform_()
    dm_.load_state_dict(tm.state_dict())
    q = rng.normal(size=(3, 2, 4))
    to, tw = tm(*(torch.tensor(q),) * 3)
    do, dw = dm_(*(dm.tensor(q),) * 3)
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dw.data, t2n(tw), rtol=1e-10, atol=1e-12)
    tl = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=1.0, norm_first=norm_first)
    dl = nn.TransformerEncoderLayer(8, 2, 16, dropout=1.0, norm_first=norm_first, dtype=np.float64)
    dl.load_state_dict(tl.state_dict())
    x = rng.normal(size=(5, 2, 8))
    np.testing.assert_allclose(dl(dm.tensor(x)).data, t2n(tl(torch.tensor(x))), rtol=1e-10, atol=1e-12)


def test_transformer_layer_training_grads_with_padding() -> None:
    tm = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    dm_ = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, dtype=np.float64)
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True
    x = np.random.default_rng(29).normal(size=(2, 5, 8))
    dm_.load_state_dict(tm.state_dict())
    tx = torch.tensor(x, requires_grad=True)
    dx = dm.tensor(x, requires_grad=True)
    to = tm(tx, src_key_padding_mask=torch.tensor(kpm))
    do = dm_(dx, src_key_padding_mask=kpm)
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)
    to.sum().backward()
    do.sum().backward()
    np.testing.assert_allclose(dx.grad.data, t2n(tx.grad), rtol=1e-9, atol=1e-11)
    for (n, tp), (_, dp) in zip(tm.named_parameters(), dm_.named_parameters(), strict=True):
        np.testing.assert_allclose(dp.grad.data, t2n(tp.grad), rtol=1e-9, atol=1e-11, err_msg=n)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_rnn_lengths_equal_packed_sequences(cls, batch_first) -> None:
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(30)
    tm = getattr(torch.nn, cls)(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    dm_ = getattr(nn, cls)(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first, dtype=np.float64)
    dm_.load_state_dict(tm.state_dict())
    lens = np.array([5, 2, 4])
    x = rng.normal(size=(3, 5, 3) if batch_first else (5, 3, 3))
    tx = torch.tensor(x, requires_grad=True)
    dx = dm.tensor(x, requires_grad=True)
    packed, th = tm(pack_padded_sequence(tx, torch.tensor(lens), batch_first=batch_first, enforce_sorted=False))
    to, _ = pad_packed_sequence(packed, batch_first=batch_first, total_length=5)
    do, dh = dm_(dx, lengths=lens)
    th, dh = (th[0], dh[0]) if cls == "LSTM" else (th, dh)
    np.testing.assert_allclose(do.data, t2n(to), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh.data, t2n(th), rtol=1e-10, atol=1e-12)
    (to.sum() + th.sum()).backward()
    (do.sum() + dh.sum()).backward()
    np.testing.assert_allclose(dx.grad.data, t2n(tx.grad), rtol=1e-10, atol=1e-12)


def test_float32_layers_stay_float32_with_float64_masks() -> None:
    rng = np.random.default_rng(31)
    q = dm.tensor(rng.normal(size=(3, 2, 4)).astype(np.float32))
    mha = nn.MultiheadAttention(4, 2)
    causal = np.triu(np.full((3, 3), -np.inf), 1)  # float64
    kpm = np.zeros((2, 3))
    out, w = mha(q, q, q, attn_mask=causal, key_padding_mask=kpm)
    assert out.data.dtype == np.float32 and w.data.dtype == np.float32
    layer = nn.TransformerEncoderLayer(4, 2, 8)
    assert layer(q, src_mask=causal).data.dtype == np.float32


def test_bce_with_logits_accurate_in_both_tails() -> None:
    # exact to rounding: -log sigma(x) = log(1 + e^-x) (np.logaddexp), gradient -p y sigma(-x) + (1-y) sigma(x)
    # (scipy's expit); torch's own formula cancels for y=0, x << 0 (and y=1, x >> 0 in its backward)
    from scipy.special import expit

    x = np.array([-800.0, -40.0, -30.0, -3.0, 0.0, 3.0, 30.0, 40.0, 800.0])
    for y, pw in ((np.zeros_like(x), 1.0), (np.ones_like(x), 2.0), (np.full_like(x, 0.3), 1.5)):
        exact = pw * y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x)
        exact_grad = -pw * y * expit(-x) + (1 - y) * expit(x)
        dx = dm.tensor(x, requires_grad=True)
        loss = F.binary_cross_entropy_with_logits(dx, y, pos_weight=np.full_like(x, pw), reduction="none")
        np.testing.assert_allclose(loss.data, exact, rtol=1e-14, atol=0)
        loss.sum().backward()
        np.testing.assert_allclose(dx.grad.data, exact_grad, rtol=1e-14, atol=0)


def test_in_place_clipping_and_steps_with_equal_gradients() -> None:
    # a + b gives both parameters the same upstream gradient: in-place clipping / momentum must not alias them
    c = np.array([3.0, 4.0, 12.0])
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(3))
    ta, tb = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt, topt = optim.SGD([a, b], lr=0.1, momentum=0.9), torch.optim.SGD([ta, tb], lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        ((a + b) * dm.tensor(c)).sum().backward()
        ((ta + tb) * torch.tensor(c)).sum().backward()
        n = nn.utils.clip_grad_norm_([a, b], 1.0)
        tn = torch.nn.utils.clip_grad_norm_([ta, tb], 1.0)
        assert n == pytest.approx(float(tn), rel=1e-12)
        opt.step()
        topt.step()
    np.testing.assert_allclose(a.data, t2n(ta), rtol=1e-12)
    np.testing.assert_allclose(b.data, t2n(tb), rtol=1e-12)
