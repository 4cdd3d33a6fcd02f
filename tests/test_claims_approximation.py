"""Every chapter-1 claim can fail: break what it checks and its verdict turns to "fail".

For each registered claim of ``dlmath.chapters.approximation`` a breaker monkeypatches the
subject of the claim (an error-bound formula, a construction, an activation, a counting rule, a
constant) and the test asserts that `verify.run_claim` then says "fail", and "pass" after undo.
A new claim cannot be registered without a breaker (`test_every_claim_has_a_breaker`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dlmath.approx as ap
from dlmath import chapters
from dlmath import verify as vf
from dlmath.approx import construct, depth
from dlmath.chapters import approximation as ch

Breaker = Callable[[pytest.MonkeyPatch], None]


def _bound_formula_four_times_too_small(mp: pytest.MonkeyPatch) -> None:
    orig = construct.interpolation_error_bound
    mp.setattr(construct, "interpolation_error_bound", lambda *a, **k: orig(*a, **k) / 4)


def _interpolant_of_noisy_values(mp: pytest.MonkeyPatch) -> None:
    # the interpolant is built from values off by 1e-4: the error floors and the rate is lost
    orig = ap.relu_interpolant
    mp.setattr(ap, "relu_interpolant",
               lambda f, a, b, K: orig(lambda x: f(x) + 1e-4 * np.sin(1e3 * x[:, 0]), a, b, K))


def _barron_constant_over_d(mp: pytest.MonkeyPatch) -> None:
    orig = ap.barron_constant_gaussian
    mp.setattr(ap, "barron_constant_gaussian", lambda d: orig(d) / d)


def _random_features_never_fitted(mp: pytest.MonkeyPatch) -> None:
    orig = ap.random_features_fit

    def unfitted(*a: Any, **k: Any) -> Any:
        W, b, c, c0 = orig(*a, **k)
        return W, b, np.zeros_like(c), c0
    mp.setattr(ap, "random_features_fit", unfitted)


def _relu_replaced_by_a_polynomial(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ch, "_relu", np.square)


def _bump_built_from_tanh(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(construct, "logistic", np.tanh)


def _bumps_fifty_times_too_flat(mp: pytest.MonkeyPatch) -> None:
    orig = ap.sigmoid_bump
    mp.setattr(ap, "sigmoid_bump", lambda x, a, b, k: orig(x, a, b, k / 50))


def _riemann_threshold_off_by_one(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ch, "RIEMANN_MARGIN", 1.5)


def _parity_signs_flipped(mp: pytest.MonkeyPatch) -> None:
    def wrong(d: int) -> ap.ShallowNet:
        net = depth.parity_network(d)
        return ap.ShallowNet(net.weights, net.biases, -net.out_weights, 0.0, activation="heaviside")
    mp.setattr(ap, "parity_network", wrong)


def _tent_with_wrong_slope(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(depth, "tent_map_layers", lambda: ((np.array([[1.0], [1.0]]), np.array([0.0, -0.5])),
                                                   (np.array([[2.0, -3.0]]), np.array([0.0]))))


def _l1_lower_bound_doubled(mp: pytest.MonkeyPatch) -> None:
    orig = ch.sawtooth_l1_lower_bound
    mp.setattr(ch, "sawtooth_l1_lower_bound", lambda k, p: 2 * orig(k, p))


def _region_counter_counts_one_too_many(mp: pytest.MonkeyPatch) -> None:
    orig = ap.linear_pieces

    def wrong(net: Any, segment: Any) -> depth.LinearPieces:
        r = orig(net, segment)
        return depth.LinearPieces(r.breakpoints, r.region_bounds, r.regions + 1, r.pieces + 1)
    mp.setattr(ap, "linear_pieces", wrong)


def _region_bound_of_scalar_input(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ch, "hyperplane_region_bound", lambda widths, n0: int(np.prod([n + 1 for n in widths])))


def _leaky_relu(mp: pytest.MonkeyPatch) -> None:
    mp.setitem(ap.ACTIVATIONS, "relu", ap.Activation("relu", lambda z: np.maximum(z, 0.01 * z), 1.0))


def _devore_exponent_d_times_s(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ch, "devore_neurons", lambda inv_eps, d, s: inv_eps ** (d * s))


BREAKERS: dict[str, Breaker] = {
    "approximation.constructive-uat": _bound_formula_four_times_too_small,
    "approximation.rate-smooth": _interpolant_of_noisy_values,
    "approximation.rate-lipschitz": _interpolant_of_noisy_values,
    "approximation.barron-rate": _barron_constant_over_d,
    "approximation.sigmoid-random-features": _random_features_never_fitted,
    "approximation.non-polynomial-activation": _relu_replaced_by_a_polynomial,
    "approximation.sigmoid-bump": _bump_built_from_tanh,
    "approximation.box-indicator": _bumps_fifty_times_too_flat,
    "approximation.riemann-sum-neurons": _riemann_threshold_off_by_one,
    "approximation.parity-threshold": _parity_signs_flipped,
    "approximation.sawtooth-pieces": _tent_with_wrong_slope,
    "approximation.depth-separation": _l1_lower_bound_doubled,
    "approximation.linear-regions-1d": _region_counter_counts_one_too_many,
    "approximation.linear-regions-input-dimension": _region_bound_of_scalar_input,
    "approximation.abs-two-relus": _leaky_relu,
    "approximation.worked-arithmetic": _devore_exponent_d_times_s,
}


def _chapter_claims() -> dict[str, vf.Claim]:
    chapters.load_all()
    return {cid: c for cid, c in vf.REGISTRY.items()
            if c.chapter == "approximation" and c.check.__module__ == ch.__name__}


def _run(claim_id: str, seed: int = 0) -> vf.Result:
    return vf.run_claim(_chapter_claims()[claim_id], seed=seed)


def test_constructive_uat_wrong_bound_is_voided_by_approximate_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # a bound formula that is too optimistic: approximate's own dense check sees the error above the bound,
    # voids it (error_bound = inf, not proved) and the claim's main measurement fails
    _bound_formula_four_times_too_small(monkeypatch)
    ev = _run("approximation.constructive-uat").evidence
    assert ev is not None and not ev.main_passed and ev.measured == float("inf")
    g = ap.GALLERY[2]
    r = ap.approximate(g.f, g.domain, 1e-2, lipschitz=g.lipschitz, second_derivative_bound=g.second_derivative_bound)
    assert not r.proved and "WARNING" in r.certificate
