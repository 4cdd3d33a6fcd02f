"""Convolution, padding and pooling against PyTorch (float64): forward values, gradients of input, weight and
bias, forward mode (torch.func.jvp), second order, finite differences, and the errors for bad input.

Hypothesis draws shapes, stride, padding (ints, pairs, 'same', 'valid'), dilation, groups, padding modes and
unbatched inputs; each drawn case runs the same arrays (or the same state dict) through dlmath and torch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.func as tfunc
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dlmath as dm
import dlmath.nn as nn
import dlmath.nn.functional as F
from dlmath.nn.functional import conv as conv_mod
from dlmath.nn.functional import pooling as pool_mod
from test_jvp_torch import check_jvp
from test_ops_torch import compare

FEW = settings(max_examples=25, deadline=None)
SOME = settings(max_examples=12, deadline=None)
RTOL, ATOL = 1e-10, 1e-11

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning",
                                        "ignore:Using padding='same':UserWarning")


@st.composite
def conv_cases(draw, nd: int):
    """(x shape, w shape, kwargs) of a valid conv1d/conv2d call."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    size = tuple(draw(st.integers(1, 9)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    if kind == "same":
        stride = (1,) * nd
        padding = "same"
    else:
        stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
        padding = "valid" if kind == "valid" else (draw(st.integers(0, 2)) if kind == "int"
                                                   else tuple(draw(st.integers(0, 2)) for _ in range(nd)))
    pads = [0] * nd if padding in ("valid", "same") else ([padding] * nd if isinstance(padding, int) else padding)
    if padding != "same":
        assume(all(s + 2 * p >= d * (kk - 1) + 1 for s, p, d, kk in zip(size, pads, dil, k, strict=True)))
    unbatched = draw(st.booleans()) and n == 1
    xs = ((groups * cg,) if unbatched else (n, groups * cg)) + size
    ws = (groups * og, cg) + k
    kw = dict(stride=stride if draw(st.booleans()) else stride[0] if len(set(stride)) == 1 else stride,
              padding=padding, dilation=dil, groups=groups)
    return xs, ws, kw, draw(st.booleans())


@FEW
@given(case=conv_cases(2), seed=st.integers(0, 2**31))
def test_conv2d_matches_torch(case, seed):
    xs, ws, kw, with_bias = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws)] + ([rng.standard_normal(ws[0])] if with_bias else [])
    compare(lambda *a: F.conv2d(*a[:2], a[2] if with_bias else None, **kw),
            lambda *a: TF.conv2d(*a[:2], a[2] if with_bias else None, **kw), *arrays, rtol=RTOL, atol=ATOL, seed=seed)


@FEW
@given(case=conv_cases(1), seed=st.integers(0, 2**31))
def test_conv1d_matches_torch(case, seed):
    xs, ws, kw, with_bias = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws)] + ([rng.standard_normal(ws[0])] if with_bias else [])
    compare(lambda *a: F.conv1d(*a[:2], a[2] if with_bias else None, **kw),
            lambda *a: TF.conv1d(*a[:2], a[2] if with_bias else None, **kw), *arrays, rtol=RTOL, atol=ATOL, seed=seed)


def _load_and_compare(layer, tlayer, x: np.ndarray, seed: int = 0, rtol: float = RTOL, atol: float = ATOL):
    """Same weights (torch's state dict loaded into dlmath), same input and cotangent: compare the output, the
    input gradient and every parameter gradient."""
    layer.load_state_dict({k: v.detach().numpy() for k, v in tlayer.state_dict().items()})
    xd, xt = dm.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yd, yt = layer(xd), tlayer(xt)
    np.testing.assert_allclose(yd.data, yt.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    ct = np.random.default_rng(seed).standard_normal(yd.shape)
    (yd * ct).sum().backward()
    (yt * torch.tensor(ct)).sum().backward()
    np.testing.assert_allclose(xd.grad.data, xt.grad.numpy(), rtol=rtol, atol=atol, err_msg="input grad")
    tparams = dict(tlayer.named_parameters())
    names = [n for n, _ in layer.named_parameters()]
    assert names == list(tparams), (names, list(tparams))
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad.data, tparams[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    return yd


@SOME
@given(case=conv_cases(2), mode=st.sampled_from(["zeros", "circular", "reflect", "replicate"]),
       seed=st.integers(0, 2**31))
def test_conv2d_module_matches_torch(case, mode, seed):
    xs, ws, kw, with_bias = case
    if mode != "zeros":   # torch's non-zero modes need the padding to fit the input (reflect: < size)
        pads = [0, 0] if kw["padding"] in ("valid", "same") else (
            [kw["padding"]] * 2 if isinstance(kw["padding"], int) else list(kw["padding"]))
        if kw["padding"] == "same":
            pads = [d * (k - 1) - d * (k - 1) // 2 for d, k in zip(kw["dilation"], ws[2:], strict=True)]
        assume(all(p < s for p, s in zip(pads, xs[-2:], strict=True)))
    args = (xs[-3], ws[0], ws[2:])
    torch.manual_seed(seed % 1000)
    tl = torch.nn.Conv2d(*args, bias=with_bias, padding_mode=mode, dtype=torch.float64, **kw)
    dl = nn.Conv2d(*args, bias=with_bias, padding_mode=mode, dtype=np.float64, **kw)
    _load_and_compare(dl, tl, np.random.default_rng(seed).standard_normal(xs), seed)


@SOME
@given(case=conv_cases(1), mode=st.sampled_from(["zeros", "circular"]), seed=st.integers(0, 2**31))
def test_conv1d_module_matches_torch(case, mode, seed):
    xs, ws, kw, with_bias = case
    if mode == "circular":
        p = 0 if kw["padding"] in ("valid", "same") else (kw["padding"] if isinstance(kw["padding"], int)
                                                           else kw["padding"][0])
        if kw["padding"] == "same":
            p = kw["dilation"][0] * (ws[2] - 1)
        assume(p <= xs[-1])
    tl = torch.nn.Conv1d(xs[-2], ws[0], ws[2:], bias=with_bias, padding_mode=mode, dtype=torch.float64, **kw)
    dl = nn.Conv1d(xs[-2], ws[0], ws[2:], bias=with_bias, padding_mode=mode, dtype=np.float64, **kw)
    _load_and_compare(dl, tl, np.random.default_rng(seed).standard_normal(xs), seed)


def test_conv_module_defaults_match_torch():
    """Parameter names, shapes and dtype; the default initialisation's bound 1/sqrt(fan_in)."""
    dl, tl = nn.Conv2d(6, 8, (3, 5), groups=2), torch.nn.Conv2d(6, 8, (3, 5), groups=2)
    assert {k: v.shape for k, v in dl.state_dict().items()} == {k: tuple(v.shape) for k, v in tl.state_dict().items()}
    assert dl.weight.dtype == np.float32
    bound = 1 / np.sqrt(3 * 3 * 5)
    assert np.abs(dl.weight.data).max() <= bound and np.abs(dl.weight.data).max() > 0.8 * bound
    assert np.abs(dl.bias.data).max() <= bound
    x = np.random.default_rng(0).standard_normal((2, 6, 7, 9)).astype(np.float32)
    dl.load_state_dict({k: v.numpy() for k, v in tl.state_dict().items()})
    y = dl(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, tl(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["constant", "circular", "reflect", "replicate"])
@pytest.mark.parametrize("pad", [(1, 2), (2, 0, 1, 3), (0, 1, 1, 0)])
def test_pad_matches_torch(mode, pad):
    # torch's non-constant modes pad one axis of a 2-D/3-D input or two of a 3-D/4-D one
    shape = (3, 4, 5) if len(pad) == 2 and mode != "constant" else (2, 3, 4, 5)
    x = np.random.default_rng(0).standard_normal(shape)
    compare(lambda a: F.pad(a, pad, mode=mode, **({"value": 0.5} if mode == "constant" else {})),
            lambda a: TF.pad(a, pad, mode=mode, **({"value": 0.5} if mode == "constant" else {})), x)


# ----- pooling ---------------------------------------------------------------------------------------------
@st.composite
def pool_cases(draw, nd: int, dilation: bool = True):
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = None if draw(st.booleans()) else tuple(draw(st.integers(1, 3)) for _ in range(nd))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd)) if dilation else (1,) * nd
    size = tuple(draw(st.integers(1, 9)) for _ in range(nd))
    assume(all(n + 2 * pp >= dd * (kk - 1) + 1 for n, pp, dd, kk in zip(size, p, d, k, strict=True)))
    unbatched = draw(st.booleans())
    xs = ((2,) if unbatched else (2, 3)) + size
    return xs, k, s, p, d, draw(st.booleans())


@FEW
@given(case=pool_cases(2), seed=st.integers(0, 2**31))
def test_max_pool2d_matches_torch(case, seed):
    xs, k, s, p, d, ceil = case
    # values on a coarse grid: windows with ties, where the first maximum must win as in torch
    x = np.round(np.random.default_rng(seed).standard_normal(xs) * 2) / 2
    # a window wholly in the padding is -inf on both sides; torch still routes its gradient somewhere
    assume(np.isfinite(TF.max_pool2d(torch.tensor(x), k, s, p, d, ceil_mode=ceil).numpy()).all())
    compare(lambda a: F.max_pool2d(a, k, s, p, d, ceil_mode=ceil),
            lambda a: TF.max_pool2d(a, k, s, p, d, ceil_mode=ceil), x, seed=seed)
    _, idx = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil, return_indices=True)
    _, tidx = TF.max_pool2d(torch.tensor(x), k, s, p, d, ceil_mode=ceil, return_indices=True)
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert idx.dtype == np.int64


@SOME
@given(case=pool_cases(1), seed=st.integers(0, 2**31))
def test_max_pool1d_matches_torch(case, seed):
    xs, k, s, p, d, ceil = case
    x = np.round(np.random.default_rng(seed).standard_normal(xs) * 2) / 2
    # a window wholly in the padding is -inf on both sides; torch still routes its gradient somewhere
    assume(np.isfinite(TF.max_pool1d(torch.tensor(x), k, s, p, d, ceil_mode=ceil).numpy()).all())
    compare(lambda a: F.max_pool1d(a, k, s, p, d, ceil_mode=ceil),
            lambda a: TF.max_pool1d(a, k, s, p, d, ceil_mode=ceil), x, seed=seed)


@FEW
@given(case=pool_cases(2, dilation=False), include=st.booleans(), override=st.sampled_from([None, None, 3]),
       seed=st.integers(0, 2**31))
def test_avg_pool2d_matches_torch(case, include, override, seed):
    xs, k, s, p, _, ceil = case
    x = np.random.default_rng(seed).standard_normal(xs)
    compare(lambda a: F.avg_pool2d(a, k, s, p, ceil, include, override),
            lambda a: TF.avg_pool2d(a, k, s, p, ceil, include, override), x, seed=seed)


@SOME
@given(case=pool_cases(1, dilation=False), include=st.booleans(), seed=st.integers(0, 2**31))
def test_avg_pool1d_matches_torch(case, include, seed):
    xs, k, s, p, _, ceil = case
    x = np.random.default_rng(seed).standard_normal(xs)
    compare(lambda a: F.avg_pool1d(a, k, s, p, ceil, include),
            lambda a: TF.avg_pool1d(a, k, s, p, ceil, include), x, seed=seed)


@SOME
@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.sampled_from([1, 2, 3, 5, None]),
       ow=st.integers(1, 6), unbatched=st.booleans(), seed=st.integers(0, 2**31))
def test_adaptive_avg_pool2d_matches_torch(h, w, oh, ow, unbatched, seed):
    xs = (3, h, w) if unbatched else (2, 3, h, w)
    x = np.random.default_rng(seed).standard_normal(xs)
    compare(lambda a: F.adaptive_avg_pool2d(a, (oh, ow)), lambda a: TF.adaptive_avg_pool2d(a, (oh, ow)), x)


def test_pool_modules_match_torch():
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 8))
    for dl, tl in [(nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
                   (nn.MaxPool2d(2, ceil_mode=True), torch.nn.MaxPool2d(2, ceil_mode=True)),
                   (nn.AvgPool2d(3, 2, 1, count_include_pad=False),
                    torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
                   (nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3))),
                   (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1))]:
        _load_and_compare(dl, tl, x)
    x1 = x[:, :, 0]
    for dl, tl in [(nn.MaxPool1d(3, 2, 1), torch.nn.MaxPool1d(3, 2, 1)), (nn.AvgPool1d(2), torch.nn.AvgPool1d(2))]:
        _load_and_compare(dl, tl, x1)
    _, idx = nn.MaxPool2d(2, return_indices=True)(x)
    np.testing.assert_array_equal(idx, torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))[1].numpy())


# ----- forward mode, second order, finite differences -------------------------------------------------------
CONV_KW = [dict(stride=1, padding=1), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
           dict(stride=2, padding=0, groups=2), dict(padding="same", dilation=2)]


@pytest.mark.parametrize("kw", CONV_KW)
def test_conv_jvp_matches_torch(kw):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 4 // kw.get("groups", 1), 3, 3))
    check_jvp(conv_mod.conv2d_valid, lambda a, b: F.conv2d(a, b, **kw), lambda a, b: TF.conv2d(a, b, **kw), x, w)


@pytest.mark.parametrize("kw", CONV_KW)
def test_conv_adjoint_primitives_jvp_match_torch(kw):
    """The input- and weight-gradient maps are primitives of their own: their forward rules against torch's
    forward-over-reverse of conv2d."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 4 // kw.get("groups", 1), 3, 3))
    gy = rng.standard_normal(TF.conv2d(torch.tensor(x), torch.tensor(w), **kw).shape)

    def t_input_grad(g, b):
        return tfunc.vjp(lambda a: TF.conv2d(a, b, **kw), torch.tensor(x))[1](g)[0]

    def t_weight_grad(a, g):
        return tfunc.vjp(lambda b: TF.conv2d(a, b, **kw), torch.tensor(w))[1](g)[0]

    def d_input_grad(g, b):
        return dm.vjp(lambda a: F.conv2d(a, b, **kw), x)[1](g)[0]

    def d_weight_grad(a, g):
        return dm.vjp(lambda b: F.conv2d(a, b, **kw), w)[1](g)[0]

    check_jvp(conv_mod.conv2d_input_grad, d_input_grad, t_input_grad, gy, w)
    check_jvp(conv_mod.conv2d_weight_grad, d_weight_grad, t_weight_grad, x, gy)


def test_pool_jvp_matches_torch():
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 6))
    check_jvp(pool_mod.plane_gather, lambda a: F.max_pool2d(a, 3, 2, 1), lambda a: TF.max_pool2d(a, 3, 2, 1), x)
    check_jvp(conv_mod.conv2d_valid, lambda a: F.avg_pool2d(a, 3, 2, 1, True, False),
              lambda a: TF.avg_pool2d(a, 3, 2, 1, True, False), x)
    check_jvp(None, lambda a: F.adaptive_avg_pool2d(a, (3, 4)), lambda a: TF.adaptive_avg_pool2d(a, (3, 4)), x)
    gy = np.random.default_rng(6).standard_normal((2, 3, 4, 3))
    check_jvp(pool_mod.plane_scatter, lambda g: dm.vjp(lambda a: F.max_pool2d(a, 3, 2, 1), x)[1](g)[0],
              lambda g: tfunc.vjp(lambda a: TF.max_pool2d(a, 3, 2, 1), torch.tensor(x))[1](g)[0], gy)


@pytest.mark.parametrize("kw", CONV_KW[:3])
def test_conv_second_order_matches_torch(kw):
    """grad of (|dL/dW|^2 + |dL/dx|^2) with L = sum(conv(x, W)^3): reverse over reverse through all three maps."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((4, 4 // kw.get("groups", 1), 2, 3))

    def dm_f(a, b):
        ga, gb = dm.grad(lambda a_, b_: (F.conv2d(a_, b_, **kw) ** 3).sum(), argnums=(0, 1))(a, b)
        return (ga ** 2).sum() + (gb ** 2).sum()

    def t_f(a, b):
        ga, gb = torch.autograd.grad((TF.conv2d(a, b, **kw) ** 3).sum(), (a, b), create_graph=True)
        return (ga ** 2).sum() + (gb ** 2).sum()

    compare(dm_f, t_f, x, w, rtol=1e-9, atol=1e-9)


def test_conv_and_pool_gradcheck():
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((1, 2, 5, 4)), rng.standard_normal((4, 1, 2, 3)), rng.standard_normal(4)
    dm.gradcheck(lambda a, c, d: F.conv2d(a, c, d, stride=(1, 2), padding=1, groups=2), x, w, b)
    dm.gradcheck(lambda a, c: F.conv1d(a, c, padding="same", dilation=2), x[:, :, 0], rng.standard_normal((3, 2, 3)))
    dm.gradcheck(lambda a: F.max_pool2d(a, 2, 1, 1), x)
    dm.gradcheck(lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True, count_include_pad=False), x)
    dm.gradcheck(lambda a: F.adaptive_avg_pool2d(a, (2, 3)), x)
    dm.gradcheck(lambda a: F.pad(a, (1, 2, 2, 1), mode="reflect"), x)


def test_float32_stays_float32():
    x = np.ones((2, 3, 5, 5), np.float32)
    w = dm.tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y.sum().backward()
    assert y.dtype == np.float32 and w.grad.dtype == np.float32
    assert F.max_pool2d(x, 2).dtype == np.float32 and F.avg_pool2d(x, 2).dtype == np.float32


def test_count_flops():
    x, w = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3))
    with dm.count_flops() as c:
        F.conv2d(x, w, padding=1)
    assert c.total == 2 * 2 * 8 * 8 * 4 * 3 * 3 * 3


# ----- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, err, match", [
    (lambda: F.conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), groups=2), ValueError, "divisible by groups"),
    (lambda: F.conv2d(np.ones((1, 4, 5, 5)), np.ones((4, 3, 3, 3))), dm.ShapeError, "input channels"),
    (lambda: F.conv2d(np.ones((1, 3, 2, 2)), np.ones((4, 3, 3, 3))), dm.ShapeError, "bigger than the padded input"),
    (lambda: F.conv2d(np.ones((3, 3)), np.ones((4, 3, 3, 3))), dm.ShapeError, "3-D"),
    (lambda: F.conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3))), dm.ShapeError, "weight must be 4-D"),
    (lambda: F.conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), padding="full"), ValueError, "'same'"),
    (lambda: F.conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), padding="same", stride=2), ValueError,
     "strided"),
    (lambda: F.conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), stride=0), ValueError, "stride must be >= 1"),
    (lambda: F.conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), np.ones(3)), dm.ShapeError, "bias"),
    (lambda: F.conv2d(np.ones((1, 3, 5, 5), np.float32), np.ones((4, 3, 3, 3))), dm.DtypeError, "same dtype"),
    (lambda: F.conv1d(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3))), dm.ShapeError, "conv1d: input must be"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "divisible by groups"),
    (lambda: nn.Conv2d(3, 4, 3, padding_mode="mirror"), ValueError, "padding_mode"),
    (lambda: F.max_pool2d(np.ones((1, 3, 5, 5)), 2, padding=2), ValueError, "at most half"),
    (lambda: F.max_pool2d(np.ones((5, 5)), 2), dm.ShapeError, "3-D"),
    (lambda: F.avg_pool2d(np.ones((1, 1, 2, 2)), 3), dm.ShapeError, "too small"),
    (lambda: F.pad(np.ones((2, 3)), (1, 2, 3)), ValueError, "even-length"),
    (lambda: F.pad(np.ones((2, 3)), (3, 3), mode="reflect"), ValueError, "too large"),
    (lambda: F.adaptive_avg_pool2d(np.ones((1, 2, 3, 3)), 0), ValueError, "positive"),
])
def test_bad_input_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_results_never_alias_the_scratch_buffers():
    """1x1 kernels on one channel make the internal views contiguous: the outputs must still be fresh arrays."""
    x = np.random.default_rng(9).standard_normal((2, 1, 4, 5))
    w = np.ones((1, 1, 1, 1))
    y1 = F.conv2d(x, w)
    y2 = F.conv2d(2 * x, w)
    np.testing.assert_array_equal(y1, x)
    np.testing.assert_array_equal(y2, 2 * x)
    a1 = F.avg_pool2d(x, 1)
    F.avg_pool2d(3 * x, 1)
    np.testing.assert_array_equal(a1, x)
    g1 = dm.vjp(lambda a: F.conv2d(a, w), x)[1](x)[0]
    dm.vjp(lambda a: F.conv2d(a, w), x)[1](5 * x)
    np.testing.assert_array_equal(g1, x)
