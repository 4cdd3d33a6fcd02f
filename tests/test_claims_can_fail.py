"""Every chapter-3 claim can fail: break what it checks and its verdict turns to "fail".

A claim that cannot fail is a defect (DESIGN.md). For each registered claim of
``dlmath.chapters.backprop`` there is a breaker below: it monkeypatches the subject of
the claim (a VJP rule, a second-order behaviour of a rule, a flop formula, the
hand-written oracle) and the test asserts that `verify.run_claim` then says "fail".
A new claim cannot be registered without a breaker (`test_every_claim_has_a_breaker`).

Further tests break things that only a cross-check can see (a rule and a closed form
wrong in the same way; a flop counter that misses the backward pass) and assert that
the main measurement still passes while the verdict fails: the cross-checks are what
make those claims honest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dlmath as dm
from dlmath import chapters
from dlmath import verify as vf
from dlmath.autodiff.core import Primitive
from dlmath.autodiff.flops import FlopCounter
from dlmath.chapters import backprop as bp

Breaker = Callable[[pytest.MonkeyPatch], None]


# ----- helpers that break one rule of one primitive ---------------------------------------------------
def _detach(x: Any) -> Any:
    return x.data if isinstance(x, dm.Tensor) else x


def scaled_vjp(prim: Primitive, argnum: int, factor: float) -> tuple[Any, ...]:
    """``prim.vjps`` with the rule of argument ``argnum`` multiplied by ``factor`` (wrong at first order)."""
    rules = list(prim.vjps)
    rule = rules[argnum]
    assert rule is not None, f"{prim.name} has no VJP rule for argument {argnum}"
    rules[argnum] = lambda g, ans, *args, **kw: factor * rule(g, ans, *args, **kw)
    return tuple(rules)


def first_order_only_vjp(prim: Primitive, argnum: int) -> tuple[Any, ...]:
    """``prim.vjps`` with the rule of argument ``argnum`` reading its primal inputs and output as
    constants: identical values in every first-order backward pass, but its own derivative (taken by
    grad-of-grad, hvp, hessian) misses the terms through those inputs. Wrong at second order only."""
    rules = list(prim.vjps)
    rule = rules[argnum]
    assert rule is not None
    rules[argnum] = lambda g, ans, *args, **kw: rule(g, _detach(ans), *(_detach(a) for a in args), **kw)
    return tuple(rules)


def _wrong_axis_matmul_flops(out: Any, a: Any, b: Any) -> int:
    """2 * size(out) * n, with the output's last axis n mistaken for the contracted axis k."""
    return 2 * int(np.size(out)) * int(np.shape(b)[-1])


def _recomputing(rule: Any) -> Any:
    """A matmul VJP rule that recomputes the forward product instead of reusing the tape's work."""
    def wasteful(g: Any, ans: Any, a: Any, b: Any) -> Any:
        dm.ops.matmul(_detach(a), _detach(b))
        return rule(g, ans, a, b)
    return wasteful


# ----- one breaker per claim ----------------------------------------------------------------------------
def _tanh_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.tanh, "vjps", scaled_vjp(dm.ops.tanh, 0, 1.1))


def _weight_gradient_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    # z = a @ W^T: the weight gradient comes from matmul's rule for its second operand
    mp.setattr(dm.ops.matmul, "vjps", scaled_vjp(dm.ops.matmul, 1, 1.1))


def _log_softmax_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.log_softmax, "vjps", scaled_vjp(dm.ops.log_softmax, 0, 1.1))


def _softmax_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.softmax, "vjps", scaled_vjp(dm.ops.softmax, 0, 1.1))


def _matmul_flops_wrong_axis(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.matmul, "flops", _wrong_axis_matmul_flops)


def _matmul_rules_recompute_forward(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.matmul, "vjps", tuple(_recomputing(r) for r in dm.ops.matmul.vjps))


def _sin_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.sin, "vjps", scaled_vjp(dm.ops.sin, 0, 1.1))


def _tanh_rule_wrong_at_second_order(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.tanh, "vjps", first_order_only_vjp(dm.ops.tanh, 0))


def _sigmoid_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.sigmoid, "vjps", scaled_vjp(dm.ops.sigmoid, 0, 1.1))


BREAKERS: dict[str, Breaker] = {
    "backprop.chain-rule": _tanh_rule_off_by_10pc,
    "backprop.matrix-form": _weight_gradient_off_by_10pc,
    "backprop.softmax-cross-entropy-gradient": _log_softmax_rule_off_by_10pc,
    "backprop.softmax-jacobian": _softmax_rule_off_by_10pc,
    "backprop.cheap-gradient": _matmul_flops_wrong_axis,
    "backprop.backward-cost-ratio": _matmul_rules_recompute_forward,
    "backprop.forward-vs-reverse-mode": _sin_rule_off_by_10pc,
    "backprop.hvp-finite-differences": _tanh_rule_wrong_at_second_order,
    "backprop.hessian-symmetry": _tanh_rule_wrong_at_second_order,
    "backprop.gradcheck-float64": _tanh_rule_off_by_10pc,
    "backprop.gradcheck-float32": _tanh_rule_off_by_10pc,
    "backprop.mse-output-gradient": _sigmoid_rule_off_by_10pc,
}


def _chapter3_claims() -> dict[str, vf.Claim]:
    chapters.load_all()
    return {cid: c for cid, c in vf.REGISTRY.items()
            if c.chapter == "backprop" and c.check.__module__ == bp.__name__}


def _run(claim_id: str, seed: int = 0) -> vf.Result:
    return vf.run_claim(_chapter3_claims()[claim_id], seed=seed)


# ----- what only the cross-checks see ---------------------------------------------------------------------
def _fails_by_cross_check(claim_id: str, name: str, main_fooled: bool = True) -> vf.Evidence:
    r = _run(claim_id)
    assert r.error is None and r.evidence is not None, r.error
    ev = r.evidence
    assert r.verdict == "fail"
    if main_fooled:
        assert ev.main_passed, "expected the main measurement to be fooled"
    failed = [c.name for c in ev.cross_checks if not c.passed]
    assert failed == [name], failed
    return ev


def test_softmax_jacobian_consistently_wrong_rule_and_formula_fail_by_finite_differences(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the VJP rule and the closed form both say diag(p) - 2 p p^T: reverse mode matches the "closed form";
    # the forward-mode Jacobian (its own JVP rule) and finite differences of softmax itself disagree
    monkeypatch.setattr(dm.ops.softmax, "vjps", (
        lambda g, ans, x, axis=-1: ans * (g - 2 * dm.sum(g * ans, axis=axis, keepdims=True)),))
    monkeypatch.setattr(bp, "softmax_jacobian_closed_form",
                        lambda z: np.diag(bp._softmax(z)) - 2 * np.outer(bp._softmax(z), bp._softmax(z)))
    _fails_by_cross_check("backprop.softmax-jacobian", "finite-differences", main_fooled=False)


def test_softmax_xent_consistently_wrong_rule_and_formula_fail_by_finite_differences(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _log_softmax_rule_off_by_10pc(monkeypatch)
    closed = bp.softmax_xent_gradient_closed_form
    monkeypatch.setattr(bp, "softmax_xent_gradient_closed_form", lambda z, label: 1.1 * closed(z, label))
    _fails_by_cross_check("backprop.softmax-cross-entropy-gradient", "finite-differences")


def test_hessian_symmetry_with_a_rule_wrong_at_second_order_fails_by_finite_differences(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the review's finding: a tanh rule that is right on arrays and wrong when differentiated again
    # leaves the computed Hessian symmetric; the finite-difference Hessian sees it
    _tanh_rule_wrong_at_second_order(monkeypatch)
    ev = _fails_by_cross_check("backprop.hessian-symmetry", "finite-difference-hessian")
    assert ev.cross_checks[0].measured > 1e-3


def test_hessian_symmetry_with_an_asymmetric_second_order_error_fails_its_main_measurement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # matmul's rule for W reads the activations as constants: d(dL/dW)/da is lost but d(dL/da)/dW is not
    monkeypatch.setattr(dm.ops.matmul, "vjps", first_order_only_vjp(dm.ops.matmul, 1))
    r = _run("backprop.hessian-symmetry")
    assert r.evidence is not None and not r.evidence.main_passed and r.verdict == "fail"


def test_cheap_gradient_fails_when_the_backward_pass_is_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    record = FlopCounter.record

    def forward_only(self: FlopCounter, prim: Any, raw: Any, out: Any, kwargs: Any) -> None:
        if self.phase == "forward":
            record(self, prim, raw, out, kwargs)
    monkeypatch.setattr(FlopCounter, "record", forward_only)
    _fails_by_cross_check("backprop.cheap-gradient", "backward-counted")


def test_gradcheck_float32_fails_with_a_wrong_gradient_by_its_float64_cross_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _tanh_rule_off_by_10pc(monkeypatch)
    ev = _run("backprop.gradcheck-float32").evidence
    assert ev is not None
    assert not {c.name: c for c in ev.cross_checks}["float64-gradient-right"].passed


def test_matrix_form_fails_with_a_wrong_hand_written_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    manual = bp.manual_backprop

    def oracle_off_by_10pc_on_W1(net: Any, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        grads = manual(net, X, y)
        return [1.1 * grads[0], *grads[1:]]
    monkeypatch.setattr(bp, "manual_backprop", oracle_off_by_10pc_on_W1)
    assert _run("backprop.matrix-form").verdict == "fail"


def test_forward_vs_reverse_with_a_wrong_sin_rule_fails_by_finite_differences(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # While dm.jvp is the double-VJP trick, forward mode reuses the reverse rules: a wrong sin rule
    # makes both modes wrong in the same way and only finite differences see it. Once forward mode has
    # its own JVP rules (prim.jvps), the main measurement itself turns (next test).
    _sin_rule_off_by_10pc(monkeypatch)
    r = _run("backprop.forward-vs-reverse-mode")
    assert r.verdict == "fail"
    assert r.evidence is not None
    assert not {c.name: c for c in r.evidence.cross_checks}["finite-differences"].passed


def test_forward_vs_reverse_with_a_wrong_sin_jvp_rule_fails_its_main_measurement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sin = dm.ops.sin
    rules = list(sin.jvps)
    rule = rules[0]
    rules[0] = lambda *args, **kw: 1.1 * rule(*args, **kw)
    monkeypatch.setattr(sin, "jvps", tuple(rules))
    r = _run("backprop.forward-vs-reverse-mode")
    assert r.evidence is not None and not r.evidence.main_passed and r.verdict == "fail"


def test_forward_vs_reverse_fails_when_a_jvp_costs_far_more_than_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # a right but wasteful tangent rule for sin (it recomputes the op several times): the values still
    # agree, the cost cross-check does not
    def wasteful(t, ans, x):
        return dm.cos(x) * t + 0.0 * (dm.sin(x) * dm.sin(x) * dm.sin(x) * dm.sin(x) * dm.sin(x) * dm.sin(x))
    monkeypatch.setattr(dm.ops.sin, "jvps", (wasteful,))
    _fails_by_cross_check("backprop.forward-vs-reverse-mode", "jvp-cost")
