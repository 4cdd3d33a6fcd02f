"""Every chapter-2 (ntk) claim can fail: break what it checks and its verdict turns to "fail".

For each registered claim of ``dlmath.chapters.ntk`` a breaker monkeypatches the subject of the claim (an
arc-cosine formula, a VJP rule, a closed form, the parameterisation, the 1/n of the function-space ODE) and the
test asserts that `verify.run_claim` then says "fail", and "pass" again after undo. A new claim cannot be
registered without a breaker (`test_every_claim_has_a_breaker`). The pattern is tests/test_claims_can_fail.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dlmath as dm
from dlmath import chapters
from dlmath import kernels as K
from dlmath import verify as vf
from dlmath.chapters import ntk
from dlmath.kernels import formulas as fm
from dlmath.kernels import predict

Breaker = Callable[[pytest.MonkeyPatch], None]


def _scaled(fn: Callable[..., Any], factor: float) -> Callable[..., Any]:
    return lambda *args, **kw: factor * fn(*args, **kw)


def _tanh_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    rules = list(dm.ops.tanh.vjps)
    rule = rules[0]
    rules[0] = lambda g, ans, *args, **kw: 1.1 * rule(g, ans, *args, **kw)
    mp.setattr(dm.ops.tanh, "vjps", tuple(rules))


def _relu_derivative_kernel_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(fm, "arccos_kernel_degree0", _scaled(fm.arccos_kernel_degree0, 1.1))


def _relu_derivative_kernel_off_by_25pc(mp: pytest.MonkeyPatch) -> None:
    # the recursion's Monte-Carlo (8 networks of width 512, depth 4) resolves ~15%: a 25% error compounds over the
    # layers to ~40% and is seen; the printed form (Sigma and dot-Sigma swapped) is off by ~90%
    mp.setattr(fm, "arccos_kernel_degree0", _scaled(fm.arccos_kernel_degree0, 1.25))


def _relu_nngp_kernel_off_by_20pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(fm, "arccos_kernel_degree1", _scaled(fm.arccos_kernel_degree1, 1.2))


def _two_layer_ntk_as_printed(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ntk, "two_layer_relu_ntk", ntk.two_layer_relu_ntk_as_printed)


def _standard_parameterisation(mp: pytest.MonkeyPatch) -> None:
    # the same description in standard parameterisation: the NTK grows with width, training is not lazy at a
    # width-independent learning rate (it diverges), so the scalings the claim measures are gone
    def standard_mlp(width: int, hidden: int, W_std: float = np.sqrt(2.0), b_std: float | None = None) -> K.Layer:
        layers: list[K.Layer] = []
        for _ in range(hidden):
            layers += [K.Dense(width, W_std, b_std, "standard"), K.Relu()]
        return K.serial(*layers, K.Dense(1, W_std, b_std, "standard"))
    mp.setattr(ntk, "relu_mlp", standard_mlp)


def _prediction_assumes_zero_initial_outputs(mp: pytest.MonkeyPatch) -> None:
    # the module's ntk_predict assumes u(0) = 0 (CHAPTER-CLAIMS, ch. 2 "Code"): the kernel prediction then misses f_0
    flow = predict.gradient_descent_mse

    def zero_start(k: Any, y: Any, lr: float, t: float, k_test: Any = None, f0: Any = None, ft0: Any = None,
                   **kw: Any) -> Any:
        return flow(k, y, lr, t, k_test, **kw)
    mp.setattr(predict, "gradient_descent_mse", zero_start)


def _function_space_step_without_1_over_n(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ntk, "function_space_velocity", ntk.function_space_velocity_as_printed)


def _kernel_flow_without_1_over_n(mp: pytest.MonkeyPatch) -> None:
    flow = predict.gradient_descent_mse
    mp.setattr(predict, "gradient_descent_mse", lambda *a, **kw: flow(*a, **{**kw, "normalization": 1.0}))


BREAKERS: dict[str, Breaker] = {
    "ntk.definition": _tanh_rule_off_by_10pc,
    "ntk.recursion": _relu_derivative_kernel_off_by_25pc,
    "ntk.two-layer-relu": _two_layer_ntk_as_printed,
    "ntk.convergence-at-init": _relu_derivative_kernel_off_by_10pc,
    "ntk.lazy-training": _standard_parameterisation,
    "ntk.linearisation": _prediction_assumes_zero_initial_outputs,
    "ntk.function-space-step": _function_space_step_without_1_over_n,
    "ntk.global-convergence": _kernel_flow_without_1_over_n,
    "ntk.nngp-gaussian": _relu_nngp_kernel_off_by_20pc,
}


def _claims() -> dict[str, vf.Claim]:
    chapters.load_all()
    return {cid: c for cid, c in vf.REGISTRY.items() if c.chapter == "ntk" and c.check.__module__ == ntk.__name__}


def _run(claim_id: str, seed: int = 0) -> vf.Result:
    return vf.run_claim(_claims()[claim_id], seed=seed)


def test_two_layer_closed_form_consistent_with_kernels_fails_only_by_monte_carlo(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # break the arc-cosine kernel itself: the closed form and dlmath.kernels agree (both wrong); Monte-Carlo sees it
    _relu_nngp_kernel_off_by_20pc(monkeypatch)
    r = _run("ntk.two-layer-relu")
    assert r.evidence is not None and not r.evidence.main_passed and r.verdict == "fail"
    assert {c.name: c.passed for c in r.evidence.cross_checks}["kernels-recursion"]
