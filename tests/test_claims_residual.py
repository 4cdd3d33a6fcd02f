"""Every chapter-4 (residual) claim can fail: break what it checks and its verdict turns to "fail".

The pattern of test_claims_can_fail.py: one breaker per registered claim of
``dlmath.chapters.residual`` (a broken shortcut, a wrong VJP rule, a branch scale ignored),
the claim must then fail, and pass again once the monkeypatch is undone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dlmath as dm
from dlmath import chapters
from dlmath import verify as vf
from dlmath.chapters import residual as res
from dlmath.nn import Conv2d, deep, resnet
from dlmath.nn import residual as nn_residual
from dlmath.nn.functional import normalization as norm
from test_claims_can_fail import scaled_vjp

Breaker = Callable[[pytest.MonkeyPatch], None]


def _shortcut_scaled_by_0_9(mp: pytest.MonkeyPatch) -> None:
    """y = 0.9 x + alpha F(x): the identity path is no longer the identity."""
    def forward(self: deep.ResidualBlock, x: Any) -> Any:
        y = 0.9 * x + self.branch(x)
        return self._phi(y) if self.post_activation else y
    mp.setattr(deep.ResidualBlock, "forward", forward)


def _branch_scale_ignored(mp: pytest.MonkeyPatch) -> None:
    """F is never scaled: alpha = 1/sqrt(L) silently becomes 1."""
    mp.setattr(deep.ResidualBlock, "branch", lambda self, x: self.fc2(self._phi(self.fc1(x))))


def _tanh_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.tanh, "vjps", scaled_vjp(dm.ops.tanh, 0, 1.1))


def _relu_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.relu, "vjps", scaled_vjp(dm.ops.relu, 0, 1.1))


def _input_side_matmul_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.matmul, "vjps", scaled_vjp(dm.ops.matmul, 0, 1.1))


def _relu_leaks(mp: pytest.MonkeyPatch) -> None:
    """relu's forward lets 1% of negative inputs through (and its rule still says 0 there)."""
    mp.setattr(dm.ops.relu, "forward", lambda x: np.where(x > 0, x, 0.01 * x))


def _conv3x3_with_bias(mp: pytest.MonkeyPatch) -> None:
    """torchvision's 3x3 convolutions have no bias (BN follows); one with a bias adds parameters."""
    def conv3x3(i: int, o: int, stride: int = 1, dtype: Any = None) -> Conv2d:
        return Conv2d(i, o, 3, stride=stride, padding=1, dtype=dtype)
    mp.setattr(nn_residual, "conv3x3", conv3x3)
    mp.setattr(resnet, "conv3x3", conv3x3)


def _bn_input_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(norm.batch_norm_train, "vjps", scaled_vjp(norm.batch_norm_train, 0, 1.1))


BREAKERS: dict[str, Breaker] = {
    "residual.unrolled-sum": _shortcut_scaled_by_0_9,
    "residual.block-jacobian": _shortcut_scaled_by_0_9,
    "residual.gradient-product": _tanh_rule_off_by_10pc,
    "residual.small-branch-gradient": _shortcut_scaled_by_0_9,
    "residual.gradient-norm-vs-depth": _branch_scale_ignored,
    "residual.post-activation-gating": _relu_rule_off_by_10pc,
    "residual.input-gradient-both-paths": _input_side_matmul_rule_off_by_10pc,
    "residual.veit-paths": _shortcut_scaled_by_0_9,
    "residual.weight-gradient-through-bn": _bn_input_rule_off_by_10pc,
    "residual.aggregated-transforms": _relu_leaks,
    "residual.resnet-parameter-counts": _conv3x3_with_bias,
}


def _claims() -> dict[str, vf.Claim]:
    chapters.load_all()
    return {cid: c for cid, c in vf.REGISTRY.items() if c.chapter == "residual" and c.check.__module__ == res.__name__}


def _run(claim_id: str, seed: int = 0) -> vf.Result:
    return vf.run_claim(_claims()[claim_id], seed=seed)


def test_gradient_norm_claim_fails_when_the_closed_form_gain_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Monte-Carlo measurement must be able to tell the exact gain from one 10% off."""
    monkeypatch.setattr(deep, "relu_plain_gradient_gain", lambda s2: 1.1 * s2 / 2.0)
    assert _run("residual.gradient-norm-vs-depth").verdict == "fail"


def test_thorough_runs_pass() -> None:
    """The larger sweeps of --thorough (width 128, 12 seeds for the depth claim); the ResNet-152 count is left
    to `dlmath verify --thorough` (building 60M parameters takes seconds)."""
    for cid in _claims():
        if cid != "residual.resnet-parameter-counts":
            r = vf.run_claim(_claims()[cid], seed=0, thorough=True)
            assert r.verdict == "pass", (cid, r.error, r.evidence)
