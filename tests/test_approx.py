"""dlmath.approx: constructions, certified bounds, depth, conversions and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dlmath as dm
import dlmath.approx as ap
from dlmath import nn


# ----- 1-d constructions -------------------------------------------------------------------------------------
def test_relu_interpolant_is_exact_at_the_knots() -> None:
    f = ap.GALLERY[2].f
    for K in (1, 7, 100, 1000):
        net = ap.relu_interpolant(f, 0.0, 1.0, K)
        t = np.linspace(0, 1, K + 1)
        assert net.width == K
        assert np.max(np.abs(net(t) - f(t[:, None]))) < 1e-12 * K
        # between knots it is the linear interpolant (numpy's oracle)
        x = np.random.default_rng(K).random(500)
        assert np.max(np.abs(net(x) - np.interp(x, t, f(t[:, None])))) < 1e-12 * K


def _random_lipschitz(seed: int) -> tuple[object, float]:
    """f(x) = sum_j s_j |x - a_j| + b sin(w x): Lipschitz with L = sum |s_j| + |b w|."""
    rng = np.random.default_rng(seed)
    a, s = rng.random(3), rng.standard_normal(3)
    b, w = rng.standard_normal(), rng.uniform(1, 15)

    def f(x: np.ndarray) -> np.ndarray:
        x0 = x[:, 0]
        return np.sum(s * np.abs(x0[:, None] - a), axis=1) + b * np.sin(w * x0)
    return f, float(np.sum(np.abs(s)) + abs(b * w))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eps=st.sampled_from([0.3, 0.05, 0.01]),
       activation=st.sampled_from(["relu", "sigmoid"]))
def test_bound_holds_on_dense_random_points_for_random_lipschitz_functions(seed: int, eps: float,
                                                                           activation: str) -> None:
    f, L = _random_lipschitz(seed)
    if activation == "sigmoid":
        eps = max(eps, 0.05)        # the staircase needs ~2x the units of the interpolant: keep it quick
    r = ap.approximate(f, (0.0, 1.0), eps, activation=activation, lipschitz=L)
    assert r.proved and r.error_bound < eps
    x = np.random.default_rng(seed + 1).random(50_000)
    err = np.max(np.abs(r.network(x) - f(x[:, None])))
    assert err <= r.error_bound
    assert r.measured_error <= r.error_bound
    assert "proved" in r.certificate


def test_second_derivative_bound_gives_fewer_units_than_lipschitz() -> None:
    g = ap.GALLERY[2]  # sin(20x): L = 20, M = 400
    lip = ap.approximate(g.f, g.domain, 1e-3, lipschitz=g.lipschitz)
    both = ap.approximate(g.f, g.domain, 1e-3, lipschitz=g.lipschitz, second_derivative_bound=400.0)
    assert both.width < lip.width / 5
    assert both.measured_error <= both.error_bound < 1e-3


def test_estimated_constants_are_marked_not_proved() -> None:
    r = ap.approximate(lambda x: np.cos(5 * x[:, 0]), (-1.0, 2.0), 1e-2)
    assert not r.proved and "NOT proved" in r.certificate and "estimated" in r.certificate
    assert r.measured_error < 1e-2


def test_wrong_constants_are_caught_by_the_measurement() -> None:
    # the user says L = 1 for sin(20x): the bound would be false, the measurement voids it
    r = ap.approximate(lambda x: np.sin(20 * x[:, 0]), (0.0, 1.0), 1e-2, lipschitz=1.0)
    assert r.error_bound == np.inf and not r.proved
    assert r.certificate.startswith("WARNING: the measured error")


def test_discontinuous_function_gets_a_warning_and_no_bound() -> None:
    r = ap.approximate(lambda x: np.sign(x[:, 0] - 0.3), (0.0, 1.0), 1e-2)
    assert r.error_bound == np.inf and not r.proved
    assert "WARNING" in r.certificate and "discontinuous" in r.certificate
    with pytest.raises(ap.ApproximationError, match="discontinuous"):
        ap.approximate(lambda x: (x[:, 0] > 0.5).astype(float), [(0, 1), (0, 1)], 0.1)


# ----- n >= 2 ------------------------------------------------------------------------------------------------
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_two_dimensional_bound_holds_on_random_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    A, W, ph = rng.standard_normal(3) / 3, rng.standard_normal((3, 2)) * 2, rng.random(3) * 6

    def f(x: np.ndarray) -> np.ndarray:
        return np.sin(x @ W.T + ph) @ A
    norms = np.linalg.norm(W, axis=1)
    L, M = float(np.sum(np.abs(A) * norms)), float(np.sum(np.abs(A) * norms ** 2))
    for kw in ({"lipschitz": L, "second_derivative_bound": M},):
        r = ap.approximate(f, [(0.0, 1.0), (-0.5, 1.0)], 0.1, **kw)
        X = np.column_stack([rng.random(30_000), rng.uniform(-0.5, 1.0, 30_000)])
        assert np.max(np.abs(r.network(X) - f(X))) <= r.error_bound < 0.1
        assert r.proved


def test_two_dimensional_lipschitz_only_certificate() -> None:
    g = ap.GALLERY[4]
    r = ap.approximate(g.f, g.domain, 0.1, lipschitz=g.lipschitz)
    X = np.random.default_rng(0).random((20_000, 2))
    assert np.max(np.abs(r.network(X) - g.f(X))) <= r.error_bound < 0.1
    assert "Lip(f)" in r.certificate


def test_grid_certificate_is_sound_for_a_bad_fit() -> None:
    # a network that is far from f: the bound must still dominate the true error
    g = ap.GALLERY[3]
    dom = ap.Domain.parse(g.domain)
    W, b = ap.ridge_features(dom, 4, 4)
    net = ap.ShallowNet(W, b, np.random.default_rng(0).standard_normal(W.shape[0]), 0.3)
    cert = ap.grid_certificate(net, g.f, dom, 17, g.lipschitz, g.second_derivative_bound)
    X = np.random.default_rng(1).random((50_000, 2))
    assert np.max(np.abs(net(X) - g.f(X))) <= cert.bound
    cert_l = ap.grid_certificate(net, g.f, dom, 17, g.lipschitz, None)
    assert np.max(np.abs(net(X) - g.f(X))) <= cert_l.bound


# ----- depth ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 5, 10, 14])
def test_sawtooth_has_2_to_the_k_pieces(k: int) -> None:
    net = ap.sawtooth(k)
    assert net.depth == k and net.units == 2 * k
    assert ap.count_linear_regions(net, [0.0, 1.0]) == 2 ** k
    x = np.arange(2 ** k + 1) / 2 ** k
    assert np.all(net(x) == (np.arange(2 ** k + 1) % 2))     # 0 and 1 at the dyadic points, exactly


def test_count_linear_regions_of_shallow_and_deep_nets() -> None:
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((9, 1)), rng.standard_normal(9)
    net = ap.ShallowNet(W, b, rng.standard_normal(9))
    inside = np.sum(np.abs(-b / W[:, 0]) < 5)
    assert ap.count_linear_regions(net, [-5.0, 5.0]) == inside + 1
    assert ap.count_linear_regions(ap.folding_net(3, 3), [0.0, 1.0]) == 27
    # a segment in 2-d through a net with 2-d input: compare with dense sampling of slopes
    deep = ap.ReLUNet([(rng.standard_normal((5, 2)), rng.standard_normal(5)),
                       (rng.standard_normal((5, 5)), rng.standard_normal(5)), (rng.standard_normal((1, 5)), [0.0])])
    seg = np.array([[-2.0, -1.0], [2.0, 1.5]])
    lp = ap.linear_pieces(deep, seg)
    s = np.linspace(0, 1, 100_001)
    pats = deep.activation_patterns(seg[0] + s[:, None] * (seg[1] - seg[0]))
    assert lp.regions == 1 + np.sum(np.any(pats[1:] != pats[:-1], axis=1))
    assert lp.pieces <= lp.regions


def test_parity_networks_are_exact() -> None:
    import itertools
    for d in range(1, 9):
        X = np.array(list(itertools.product((0.0, 1.0), repeat=d)))
        assert np.array_equal(ap.parity_network(d)(X), X.sum(1) % 2)
        assert np.array_equal(ap.parity_relu_network(d)(X), X.sum(1) % 2)


# ----- conversion -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_to_module_and_back_give_the_same_outputs(activation: str) -> None:
    rng = np.random.default_rng(3)
    net = ap.ShallowNet(rng.standard_normal((7, 3)), rng.standard_normal(7), rng.standard_normal(7), 0.4,
                        activation=activation)
    X = rng.standard_normal((40, 3))
    mod = net.to_module()
    assert isinstance(mod, nn.Sequential)
    np.testing.assert_allclose(mod(dm.tensor(X)).data[:, 0], net(X), rtol=1e-13, atol=1e-13)
    back = ap.ShallowNet.from_module(mod)
    np.testing.assert_allclose(back(X), net(X), rtol=1e-15, atol=1e-15)
    assert back.activation == activation
    # and PyTorch agrees with the same state dict
    tmod = torch.nn.Sequential(torch.nn.Linear(3, 7), {"relu": torch.nn.ReLU(), "sigmoid": torch.nn.Sigmoid(),
                                                       "tanh": torch.nn.Tanh()}[activation],
                               torch.nn.Linear(7, 1)).double()
    tmod.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in mod.state_dict().items()})
    np.testing.assert_allclose(tmod(torch.from_numpy(X)).detach().numpy()[:, 0], net(X), rtol=1e-12, atol=1e-12)


def test_deep_relu_net_to_module_and_region_count_of_a_module() -> None:
    net = ap.sawtooth(6)
    mod = net.to_module()
    x = np.linspace(0, 1, 333)
    np.testing.assert_allclose(mod(dm.tensor(x[:, None])).data[:, 0], net(x), atol=1e-14)
    assert ap.count_linear_regions(mod, [0.0, 1.0]) == 64


def test_wide_1d_relu_evaluation_matches_the_direct_sum() -> None:
    rng = np.random.default_rng(5)
    W = rng.standard_normal((300, 1))
    W[:7] = 0.0
    net = ap.ShallowNet(W, rng.standard_normal(300), rng.standard_normal(300), -0.2)
    x = rng.standard_normal(2000) * 3
    direct = np.maximum(x[:, None] @ W.T + net.biases, 0) @ net.out_weights - 0.2
    np.testing.assert_allclose(net(x), direct, rtol=1e-10, atol=1e-10)


# ----- bad input ------------------------------------------------------------------------------------------------
def test_bad_input_gives_clear_errors() -> None:
    f = ap.GALLERY[0].f
    with pytest.raises(ap.ApproximationError, match="lower < upper"):
        ap.approximate(f, (1.0, 0.0), 0.1)
    with pytest.raises(ap.ApproximationError, match="coordinate 1"):
        ap.approximate(f, [(0, 1), (2, 2)], 0.1)
    for eps in (0.0, -1.0, float("nan")):
        with pytest.raises(ap.ApproximationError, match="eps must be a positive"):
            ap.approximate(f, (0, 1), eps)
    with pytest.raises(dm.ShapeError, match=r"must return shape \(\d+,\)"):
        ap.approximate(lambda x: np.zeros((x.shape[0], 2)), (0, 1), 0.1, lipschitz=1.0)
    with pytest.raises(ap.ApproximationError, match="non-finite"):
        ap.approximate(lambda x: np.where(x[:, 0] > 0.5, np.nan, 0.0), (0, 1), 0.1, lipschitz=1.0)
    with pytest.raises(dm.AllocationError, match="max_width"):
        ap.approximate(f, (0, 1), 1e-9, lipschitz=1e3, max_width=10_000)
    with pytest.raises(ap.ApproximationError, match="activation"):
        ap.approximate(f, (0, 1), 0.1, activation="square")
    with pytest.raises(dm.ShapeError, match=r"\(N, 2\)"):
        ap.ShallowNet(np.ones((3, 2)), np.zeros(3), np.ones(3))(np.ones((4, 3)))
    with pytest.raises(ap.ApproximationError, match="segment"):
        ap.count_linear_regions(ap.sawtooth(2), [[0.0, 0.0], [1.0, 1.0]])


def test_methods() -> None:
    g = ap.GALLERY[0]
    r = ap.approximate(g.f, g.domain, 5e-2, method="ridge", lipschitz=g.lipschitz,
                       second_derivative_bound=g.second_derivative_bound)
    x = np.random.default_rng(0).random(20_000)
    assert r.method == "ridge" and r.proved and np.max(np.abs(r.network(x) - g.f(x[:, None]))) <= r.error_bound
    s = ap.approximate(g.f, g.domain, 5e-2, method="staircase", lipschitz=g.lipschitz)
    assert s.network.activation == "sigmoid" and s.measured_error <= s.error_bound < 5e-2
    with pytest.raises(ap.ApproximationError, match="one-dimensional"):
        ap.approximate(ap.GALLERY[3].f, ap.GALLERY[3].domain, 0.1, method="interpolation")
    with pytest.raises(ap.ApproximationError, match="method must be"):
        ap.approximate(g.f, g.domain, 0.1, method="magic")


def test_error_vs_width_returns_curves() -> None:
    out = ap.error_vs_width(ap.GALLERY[:2] + ap.GALLERY[3:4], widths_1d=(16, 32, 64), schedule_2d=((6, 8), (8, 12)))
    assert set(out) == {"runge", "kink", "wave2d"}
    assert out["kink"]["slope"] == pytest.approx(-1, abs=0.1)
    for v in out.values():
        assert len(v["width"]) == len(v["sup_error"]) == len(v["bound"])
        assert all(e <= b for e, b in zip(v["sup_error"], v["bound"], strict=True))
