"""dlmath.nn.conv_math against PyTorch: output sizes vs layer shapes, the Toeplitz convolution (forward and
input gradient, zero and circular padding), receptive fields vs measured gradient supports, parameter counts
vs torch modules; bad input gives clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import dlmath as dm
from dlmath.nn import conv_math as cm

FEW = settings(max_examples=12, deadline=None)


@st.composite
def conv_config(draw: st.DrawFn) -> tuple[int, int, int, int, int, int]:
    H = draw(st.integers(3, 12))
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 3))
    d = draw(st.integers(1, 2))
    p = draw(st.integers(0, 2))
    W = draw(st.integers(3, 12))
    return H, W, k, s, p, d


@FEW
@given(conv_config())
def test_output_size_matches_torch_layer_shapes(cfg: tuple[int, int, int, int, int, int]) -> None:
    H, W, k, s, p, d = cfg
    if min(H, W) + 2 * p < d * (k - 1) + 1:
        with pytest.raises(ValueError, match="conv_output_size"):
            cm.conv_output_size(min(H, W), k, s, p, d)
        return
    y = TF.conv2d(torch.zeros(1, 1, H, W), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d)
    assert y.shape[2:] == (cm.conv_output_size(H, k, s, p, d), cm.conv_output_size(W, k, s, p, d))
    if 2 * p <= k:  # torch's pooling allows padding up to half the kernel
        pooled = TF.max_pool2d(torch.zeros(1, 1, H, W), k, s, p, d)
        assert pooled.shape[2:] == (cm.conv_output_size(H, k, s, p, d), cm.conv_output_size(W, k, s, p, d))


@FEW
@given(conv_config(), st.sampled_from(["zeros", "circular"]), st.integers(1, 3), st.integers(1, 3))
def test_toeplitz_conv2d_matches_torch_forward_and_input_gradient(
        cfg: tuple[int, int, int, int, int, int], mode: str, c_in: int, c_out: int) -> None:
    H, W, k, s, p, d = cfg
    if min(H, W) + 2 * p < d * (k - 1) + 1 or (mode == "circular" and p > min(H, W)):
        return
    rng = np.random.default_rng(H * 100 + W)
    x, w, b = rng.standard_normal((2, c_in, H, W)), rng.standard_normal((c_out, c_in, k, k)), rng.standard_normal(c_out)
    layer = torch.nn.Conv2d(c_in, c_out, k, s, p, d, padding_mode=mode).double()
    layer.load_state_dict({"weight": torch.tensor(w), "bias": torch.tensor(b)})
    xt = torch.tensor(x, requires_grad=True)
    yt = layer(xt)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    xd = dm.tensor(x, requires_grad=True)
    y = cm.toeplitz_conv2d(xd, w, b, s, p, d, mode)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    dm.sum(y * g).backward()
    np.testing.assert_allclose(xd.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layers", [[(3, 1)] * 3, [(3, 1), (2, 2)] * 3, [(5, 2), (3, 1, 2), (2, 2)], [(1, 1)]])
def test_receptive_field_matches_the_gradient_support_in_torch(layers: list[tuple[int, ...]]) -> None:
    rf = cm.receptive_field(layers)
    x = torch.ones(1, 1, rf + 5, rf + 5, dtype=torch.float64, requires_grad=True)
    y = x
    for layer in layers:
        k, s = layer[0], layer[1]
        d = layer[2] if len(layer) > 2 else 1
        y = TF.conv2d(y, torch.rand(1, 1, k, k, dtype=torch.float64) + 0.5, stride=s, dilation=d)
    y[0, 0, 0, 0].backward()
    rows = np.nonzero(x.grad[0, 0].sum(dim=1).numpy())[0]
    assert rows[-1] - rows[0] + 1 == rf


@pytest.mark.parametrize(("c_in", "c_out", "k", "bias", "groups"),
                         [(3, 64, 3, False, 1), (3, 64, 3, True, 1), (4, 8, (3, 5), True, 2), (6, 6, 1, False, 6)])
def test_parameter_counts_match_torch_modules(c_in: int, c_out: int, k: int | tuple[int, int], bias: bool,
                                              groups: int) -> None:
    layer = torch.nn.Conv2d(c_in, c_out, k, bias=bias, groups=groups)
    assert cm.conv2d_parameter_count(c_in, c_out, k, bias, groups) == sum(p.numel() for p in layer.parameters())
    lin = torch.nn.Linear(c_in * 5, c_out * 7, bias=bias)
    assert cm.linear_parameter_count(c_in * 5, c_out * 7, bias) == sum(p.numel() for p in lin.parameters())


def test_riemann_sum_grid_and_values() -> None:
    xs, v = cm.convolution_riemann_sum(np.ones(3), np.array([1.0, 2.0]), 0.5, -1.0, 2.0)
    np.testing.assert_allclose(xs, [1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(v, 0.5 * np.array([1.0, 3.0, 3.0, 2.0]))


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(ValueError, match="conv_output_size: input size 2"):
        cm.conv_output_size(2, 5)
    with pytest.raises(ValueError, match="stride=0"):
        cm.conv_output_size(8, 3, stride=0)
    with pytest.raises(dm.ShapeError, match=r"conv2d_toeplitz_matrix: weight must be \(C_out, C_in, k_h, k_w\)"):
        cm.conv2d_toeplitz_matrix(np.ones((3, 3)), (5, 5))
    with pytest.raises(ValueError, match="padding_mode must be 'zeros' or 'circular'"):
        cm.conv2d_toeplitz_matrix(np.ones((1, 1, 3, 3)), (5, 5), padding_mode="reflect")
    with pytest.raises(dm.ShapeError, match=r"toeplitz_conv2d: input of shape \(1, 2, 5, 5\)"):
        cm.toeplitz_conv2d(np.ones((1, 2, 5, 5)), np.ones((1, 3, 3, 3)))
    with pytest.raises(dm.ShapeError, match="convolution_riemann_sum"):
        cm.convolution_riemann_sum(np.ones((2, 2)), np.ones(2), 0.1)
    with pytest.raises(ValueError, match="groups=2 must divide in_channels=3"):
        cm.conv2d_parameter_count(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="stride must be an int or a pair"):
        cm.conv2d_toeplitz_matrix(np.ones((1, 1, 3, 3)), (5, 5), stride=(1, 1, 1))
