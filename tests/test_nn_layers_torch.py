"""Activations, BatchNorm, LayerNorm, Dropout and losses against torch.nn with the same weights (float64).

Every layer gets the torch module's state dict, the same input, forward outputs are compared, then
both sides backpropagate the same random cotangent and the input gradient and every parameter
gradient are compared; running statistics are compared after several training steps. The fused
batch-norm primitive's VJP and JVP are checked against torch (``compare``, ``check_jvp``), and every
functional op passes ``dm.gradcheck``.
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
from test_jvp_torch import check_jvp
from test_ops_torch import compare

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

FEW = settings(max_examples=6, deadline=None)
TOL = {"rtol": 1e-10, "atol": 1e-12}


def _close(a, b, what="", rtol=1e-10, atol=1e-12):
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    np.testing.assert_allclose(np.asarray(getattr(a, "data", a)), b, rtol=rtol, atol=atol, err_msg=what)


def _check_module(m: nn.Module, tm: torch.nn.Module, x: np.ndarray, seed: int = 0, train: bool = True,
                  rtol: float = 1e-10, atol: float = 1e-12) -> None:
    """Same weights; forward output, input gradient, parameter gradients and buffers compared."""
    m.double()
    tm.double()
    m.load_state_dict(tm.state_dict())
    m.train(train)
    tm.train(train)
    xd, xt = dm.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = m(xd), tm(xt)
    _close(y, yt, "forward", rtol, atol)
    ct = np.random.default_rng(seed).standard_normal(y.shape)
    (y * ct).sum().backward()
    (yt * torch.tensor(ct)).sum().backward()
    _close(xd.grad, xt.grad, "input gradient", rtol, atol)
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        _close(p.grad, tparams[name].grad, f"gradient of {name}", rtol, atol)
    tstate = tm.state_dict()
    for name, v in m.state_dict().items():
        _close(v, tstate[name].numpy(), f"state {name}", rtol, atol)


# ----- activations -----------------------------------------------------------------------------------------
ACTIVATIONS = [
    (lambda: nn.ReLU(), lambda: torch.nn.ReLU()),
    (lambda: nn.LeakyReLU(), lambda: torch.nn.LeakyReLU()),
    (lambda: nn.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2)),
    (lambda: nn.Tanh(), lambda: torch.nn.Tanh()),
    (lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid()),
    (lambda: nn.GELU(), lambda: torch.nn.GELU()),
    (lambda: nn.GELU("tanh"), lambda: torch.nn.GELU("tanh")),
    (lambda: nn.Softmax(dim=1), lambda: torch.nn.Softmax(dim=1)),
    (lambda: nn.Softmax(dim=-1), lambda: torch.nn.Softmax(dim=-1)),
    (lambda: nn.LogSoftmax(dim=1), lambda: torch.nn.LogSoftmax(dim=1)),
    (lambda: nn.Flatten(), lambda: torch.nn.Flatten()),
    (lambda: nn.Flatten(0, 1), lambda: torch.nn.Flatten(0, 1)),
]


@pytest.mark.parametrize("k", range(len(ACTIVATIONS)))
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), seed=st.integers(0, 2**31))
@FEW
def test_activation_modules_match_torch(k: int, shape: list[int], seed: int) -> None:
    make, tmake = ACTIVATIONS[k]
    x = 3 * np.random.default_rng(seed).standard_normal(shape)
    _check_module(make(), tmake(), x, seed)


FUNCTIONAL = [
    (F.relu, TF.relu), (F.leaky_relu, TF.leaky_relu), (lambda x: F.leaky_relu(x, 0.3), lambda x: TF.leaky_relu(x, 0.3)),
    (F.tanh, TF.tanh), (F.sigmoid, TF.sigmoid), (F.gelu, TF.gelu),
    (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    (lambda x: F.softmax(x, dim=0), lambda x: TF.softmax(x, dim=0)),
    (lambda x: F.log_softmax(x, dim=-1), lambda x: TF.log_softmax(x, dim=-1)),
    (lambda x: F.flatten(x, 1), lambda x: torch.flatten(x, 1)),
]


@pytest.mark.parametrize("k", range(len(FUNCTIONAL)))
def test_functional_activations_match_torch_and_gradcheck(k: int) -> None:
    fn, tfn = FUNCTIONAL[k]
    x = 2 * np.random.default_rng(k).standard_normal((3, 4, 2))
    compare(fn, tfn, x, **TOL)
    dm.gradcheck(fn, x)


def test_large_logits_softmax_is_stable() -> None:
    x = np.array([[1e4, 0.0, -1e4], [5e3, 5e3, 0.0]])
    _close(F.log_softmax(dm.tensor(x), dim=1), TF.log_softmax(torch.tensor(x), dim=1))


def test_implicit_softmax_dim_warns_like_torch() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = F.softmax(x)
    _close(y, np.exp(x) / np.exp(x).sum(1, keepdims=True))


def test_bad_activation_arguments() -> None:
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    with pytest.raises(dm.ShapeError, match="softmax: dim 3"):
        F.softmax(np.zeros((2, 2)), dim=3)
    with pytest.raises(dm.ShapeError, match="flatten"):
        F.flatten(np.zeros((2, 2)), 2)


# ----- batch norm ----------------------------------------------------------------------------------------
@given(n=st.integers(2, 5), c=st.integers(1, 4), extra=st.sampled_from([(), (3,), (2, 3)]),
       affine=st.booleans(), track=st.booleans(), momentum=st.sampled_from([0.1, 0.5, None]),
       seed=st.integers(0, 2**31))
@FEW
def test_batchnorm_matches_torch_train_then_eval(n, c, extra, affine, track, momentum, seed) -> None:
    rng = np.random.default_rng(seed)
    cls, tcls = (nn.BatchNorm2d, torch.nn.BatchNorm2d) if len(extra) == 2 else (nn.BatchNorm1d, torch.nn.BatchNorm1d)
    m = cls(c, eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track)
    tm = tcls(c, eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track).double()
    if affine:
        with torch.no_grad():
            tm.weight.uniform_(0.5, 2.0)
            tm.bias.uniform_(-1, 1)
    m.double()
    m.load_state_dict(tm.state_dict())
    for step in range(3):  # running statistics accumulate over several batches
        x = 2 + 3 * rng.standard_normal((n, c, *extra))
        _check_module(m, tm, x, seed + step, train=True)
        m.zero_grad()
        tm.zero_grad()
    x = rng.standard_normal((n, c, *extra))
    _check_module(m, tm, x, seed, train=False)
    if track:
        assert m.num_batches_tracked.dtype == np.int64 and int(m.num_batches_tracked) == 3


def test_batchnorm_state_dict_keys_and_defaults() -> None:
    m, tm = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    assert list(m.state_dict()) == list(tm.state_dict())
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert m.weight.dtype == np.float32 and m.running_var.dtype == np.float32
    assert list(nn.BatchNorm1d(2, affine=False, track_running_stats=False).state_dict()) == []
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(np.zeros((1, 3)))
    with pytest.raises(dm.ShapeError, match=r"BatchNorm2d: expected input of shape \(N, C, H, W\)"):
        nn.BatchNorm2d(3)(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="expected 3 channels"):
        nn.BatchNorm1d(3)(np.zeros((4, 2)))


def _bn_torch(x, w, b):
    return TF.batch_norm(x, None, None, w, b, training=True, eps=1e-5)


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6), (3, 2, 4, 5)])
def test_fused_batch_norm_vjp_and_jvp_match_torch(shape) -> None:
    rng = np.random.default_rng(len(shape))
    x, w, b = rng.standard_normal(shape), rng.uniform(0.5, 2, shape[1]), rng.standard_normal(shape[1])

    def fused(x, w, b):
        return F.batch_norm_train(x, w, b, eps=1e-5)

    compare(fused, _bn_torch, x, w, b, **TOL)
    check_jvp(F.batch_norm_train, fused, _bn_torch, x, w, b)


def test_fused_and_composed_batch_norm_agree_to_all_orders() -> None:
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((6, 3, 4)), rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    ct = rng.standard_normal(x.shape)

    def loss(fn):
        return lambda x, w, b: dm.sum(dm.tanh(fn(x, None, None, w, b, training=True)) * ct)

    for argnum in range(3):
        g1 = dm.grad(loss(F.batch_norm), argnums=argnum)(x, w, b)
        g2 = dm.grad(loss(F.batch_norm_composed), argnums=argnum)(x, w, b)
        _close(g1, g2, f"gradient {argnum}", 1e-10, 1e-12)
    v = rng.standard_normal(x.shape)
    h1 = dm.hvp(lambda x: loss(F.batch_norm)(x, w, b), x, v)
    h2 = dm.hvp(lambda x: loss(F.batch_norm_composed)(x, w, b), x, v)
    _close(h1, h2, "Hessian-vector product", 1e-9, 1e-11)


def test_functional_batch_norm_updates_running_stats_like_torch() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 3, 2))
    for fn in (F.batch_norm, F.batch_norm_composed):
        rm, rv = np.zeros(3), np.ones(3)
        trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
        y = fn(x, rm, rv, training=True, momentum=0.3)
        ty = TF.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.3)
        _close(y, ty)
        _close(rm, trm)
        _close(rv, trv)
        _close(fn(x, rm, rv), TF.batch_norm(torch.tensor(x), trm, trv))


@pytest.mark.parametrize("fn", [F.batch_norm, F.batch_norm_composed])
def test_batch_norm_gradcheck(fn) -> None:
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((4, 2, 3)), rng.uniform(0.5, 2, 2), rng.standard_normal(2)
    dm.gradcheck(lambda x, w, b: fn(x, None, None, w, b, training=True), x, w, b)
    rm, rv = rng.standard_normal(2), rng.uniform(0.5, 2, 2)
    dm.gradcheck(lambda x, w, b: fn(x, rm, rv, w, b, training=False), x, w, b)


# ----- layer norm --------------------------------------------------------------------------------------
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), k=st.integers(1, 3), affine=st.booleans(),
       bias=st.booleans(), seed=st.integers(0, 2**31))
@FEW
def test_layernorm_matches_torch(shape, k, affine, bias, seed) -> None:
    k = min(k, len(shape))
    ns = shape[-k:]
    tm = torch.nn.LayerNorm(ns, elementwise_affine=affine, bias=bias).double()
    if affine:
        with torch.no_grad():
            for p in tm.parameters():
                p.uniform_(-1, 2)
    x = np.random.default_rng(seed).standard_normal(shape)
    _check_module(nn.LayerNorm(ns, elementwise_affine=affine, bias=bias), tm, x, seed)


def test_layer_norm_gradcheck_and_errors() -> None:
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(4)
    dm.gradcheck(lambda x, w, b: F.layer_norm(x, (4,), w, b), x, w, b)
    with pytest.raises(dm.ShapeError, match="normalized_shape"):
        F.layer_norm(x, (3,))


# ----- dropout -----------------------------------------------------------------------------------------
def test_dropout_is_inverted_and_identity_in_eval() -> None:
    x = np.ones((200, 500))
    gen = np.random.default_rng(0)
    y = F.dropout(x, 0.3, generator=gen)
    kept = y != 0
    assert set(np.unique(y)) <= {0.0, 1 / 0.7}
    # fraction kept: binomial, standard error sqrt(0.3*0.7/1e5) = 0.0014; 5 standard errors
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.21 / x.size)
    m = nn.Dropout(0.3)
    m.eval()
    xd = dm.tensor(x)
    assert m(xd) is xd
    assert F.dropout(x, 1.0).sum() == 0 and F.dropout(x, 0.0) is x


def test_dropout_gradient_is_the_mask() -> None:
    x = dm.tensor(np.random.default_rng(1).standard_normal((4, 5)), requires_grad=True)
    y = F.dropout(x, 0.5, generator=np.random.default_rng(2))
    y.sum().backward()
    mask = np.where(y.data != 0, 2.0, 0.0)
    _close(x.grad, mask)
    dm.gradcheck(lambda x: F.dropout(x, 0.5, generator=np.random.default_rng(2)), x.data)


def test_dropout_uses_the_default_generator() -> None:
    nn.manual_seed(7)
    a = nn.Dropout(0.5)(np.ones(50))
    nn.manual_seed(7)
    b = F.dropout(np.ones(50))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fn,shape", [(F.dropout1d, (30, 40, 3)), (F.dropout2d, (30, 40, 2, 3)),
                                      (F.dropout2d, (40, 2, 3))])
def test_channel_dropout_drops_whole_channels(fn, shape) -> None:
    y = fn(np.ones(shape), 0.4, generator=np.random.default_rng(3))
    lead = 2 if len(shape) in (3, 4) and not (fn is F.dropout2d and len(shape) == 3) else 1
    flat = y.reshape(int(np.prod(shape[:lead])), -1)
    assert np.all((flat == 0).all(1) | (flat == 1 / 0.6).all(1))
    assert 0.4 < (flat[:, 0] != 0).mean() < 0.8


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_dropout_probability_is_validated(p) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(np.ones(3), p)


# ----- losses ------------------------------------------------------------------------------------------
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


@given(n=st.integers(1, 5), c=st.integers(2, 5), extra=st.sampled_from([(), (3,), (2, 2)]), reduction=REDUCTIONS,
       weighted=st.booleans(), ignore=st.booleans(), smoothing=st.sampled_from([0.0, 0.1, 0.5]),
       seed=st.integers(0, 2**31))
@FEW
def test_cross_entropy_and_nll_match_torch(n, c, extra, reduction, weighted, ignore, smoothing, seed) -> None:
    rng = np.random.default_rng(seed)
    x = 3 * rng.standard_normal((n, c, *extra))
    y = rng.integers(0, c, (n, *extra))
    if ignore:
        y.flat[0] = -100
        if y.size == 1:
            y.flat[0] = 1  # an all-ignored mean is 0/0 in both libraries
    w = rng.uniform(0.5, 2, c) if weighted else None
    tw = None if w is None else torch.tensor(w)
    ty = torch.tensor(y)
    compare(lambda x: F.cross_entropy(x, y, w, reduction=reduction, label_smoothing=smoothing),
            lambda t: TF.cross_entropy(t, ty, tw, reduction=reduction, label_smoothing=smoothing), x, **TOL)
    compare(lambda x: F.nll_loss(F.log_softmax(x, 1), y, w, reduction=reduction),
            lambda t: TF.nll_loss(TF.log_softmax(t, 1), ty, tw, reduction=reduction), x, **TOL)
    m, tm = nn.CrossEntropyLoss(w, reduction=reduction, label_smoothing=smoothing), torch.nn.CrossEntropyLoss(
        tw, reduction=reduction, label_smoothing=smoothing)
    _close(m(x, y), tm(torch.tensor(x), ty))
    _close(nn.NLLLoss(w, reduction=reduction)(x, y), torch.nn.NLLLoss(tw, reduction=reduction)(torch.tensor(x), ty))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_with_probability_targets(smoothing) -> None:
    rng = np.random.default_rng(8)
    x, q = rng.standard_normal((4, 3, 2)), rng.dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1)
    w = rng.uniform(0.5, 2, 3)
    for reduction in ("mean", "sum", "none"):
        compare(lambda x: F.cross_entropy(x, q, w, reduction=reduction, label_smoothing=smoothing),
                lambda t: TF.cross_entropy(t, torch.tensor(q), torch.tensor(w), reduction=reduction,
                                           label_smoothing=smoothing), x, **TOL)


def test_cross_entropy_unbatched_and_large_logits() -> None:
    x = np.array([1e4, -1e4, 0.0])
    compare(lambda x: F.cross_entropy(x, np.array(1)), lambda t: TF.cross_entropy(t, torch.tensor(1)), x, **TOL)
    big = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 2e4]])
    yb = np.array([1, 0])
    loss = F.cross_entropy(dm.tensor(big, requires_grad=True), yb)
    assert np.isfinite(loss.data) and abs(float(loss.data) - 2e4) < 1e-6 * 2e4
    compare(lambda x: F.cross_entropy(x, yb), lambda t: TF.cross_entropy(t, torch.tensor(yb)), big, **TOL)
    compare(lambda x: F.binary_cross_entropy_with_logits(x, np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5]])),
            lambda t: TF.binary_cross_entropy_with_logits(t, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5]],
                                                                          dtype=torch.float64)), big, **TOL)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), reduction=REDUCTIONS, weighted=st.booleans(),
       pos=st.booleans(), seed=st.integers(0, 2**31))
@FEW
def test_bce_with_logits_and_mse_match_torch(shape, reduction, weighted, pos, seed) -> None:
    rng = np.random.default_rng(seed)
    x, t = 4 * rng.standard_normal(shape), rng.uniform(0, 1, shape)
    w = rng.uniform(0.5, 2, shape) if weighted else None
    pw = rng.uniform(0.5, 3, shape[-1]) if pos else None
    tt = torch.tensor(t)
    tw, tpw = (None if w is None else torch.tensor(w)), (None if pw is None else torch.tensor(pw))
    compare(lambda x: F.binary_cross_entropy_with_logits(x, t, w, reduction, pw),
            lambda a: TF.binary_cross_entropy_with_logits(a, tt, tw, reduction=reduction, pos_weight=tpw), x, **TOL)
    compare(lambda x: F.mse_loss(x, t, reduction), lambda a: TF.mse_loss(a, tt, reduction=reduction), x, **TOL)
    _close(nn.BCEWithLogitsLoss(w, reduction, pw)(x, t),
           torch.nn.BCEWithLogitsLoss(None if w is None else torch.tensor(w), reduction=reduction,
                                      pos_weight=None if pw is None else torch.tensor(pw))(torch.tensor(x), tt))
    _close(nn.MSELoss(reduction)(x, t), torch.nn.MSELoss(reduction=reduction)(torch.tensor(x), tt))


def test_losses_gradcheck() -> None:
    rng = np.random.default_rng(9)
    x, y, w = rng.standard_normal((3, 4, 2)), rng.integers(0, 4, (3, 2)), rng.uniform(0.5, 2, 4)
    t = rng.uniform(0, 1, (3, 4, 2))
    dm.gradcheck(lambda x: F.cross_entropy(x, y, w, label_smoothing=0.1), x)
    dm.gradcheck(lambda x: F.nll_loss(x, y, w), x)
    dm.gradcheck(lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=np.full(2, 2.0)), x, t)
    dm.gradcheck(lambda x, t: F.mse_loss(x, t), x, t)


def test_loss_errors_are_clear() -> None:
    x = np.zeros((2, 3))
    with pytest.raises(dm.IndexOutOfRangeError, match="target 3 is out of bounds for 3 classes"):
        F.cross_entropy(x, np.array([0, 3]))
    with pytest.raises(dm.ShapeError, match=r"target of shape \(3,\) does not fit input of shape \(2, 3\)"):
        F.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(dm.DtypeError, match="integer class targets"):
        F.nll_loss(x, np.array([0.0, 1.0]))
    with pytest.warns(UserWarning, match="broadcast"):
        F.mse_loss(x, np.zeros(3))


def test_fused_batch_norm_gradient_after_in_place_change_of_its_input() -> None:
    """The backward reuses the batch statistics between its rules; a changed input must not see old ones."""
    rng = np.random.default_rng(10)
    x = dm.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    w = dm.tensor(rng.uniform(0.5, 2, 3), requires_grad=False)  # only the x rule runs: nothing consumes the cache
    ct = rng.standard_normal((5, 3))
    for _ in range(2):
        (F.batch_norm(x, None, None, w, None, training=True) * ct).sum().backward()
        xt = torch.tensor(x.data, requires_grad=True)
        (TF.batch_norm(xt, None, None, torch.tensor(w.data), None, training=True) * torch.tensor(ct)).sum().backward()
        _close(x.grad, xt.grad)
        x.grad = None
        with dm.no_grad():
            x.data *= 3.0
            x.data += 1.0
