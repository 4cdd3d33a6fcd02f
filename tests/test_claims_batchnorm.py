"""Every chapter-5 (batchnorm) claim can fail: break what it checks and its verdict turns to "fail".

The pattern of test_claims_can_fail.py: one breaker per registered claim of
``dlmath.chapters.batchnorm`` (the fused primitive's forward or backward, the running-statistics
update, the eval-mode formula, the reduction axes), the claim must then fail, and pass again once
the monkeypatch is undone. The PyTorch cross-checks run under ``thorough``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from dlmath import chapters
from dlmath import verify as vf
from dlmath.chapters import batchnorm as bnc
from dlmath.nn import fusion
from dlmath.nn.functional import normalization as norm
from test_claims_can_fail import scaled_vjp

Breaker = Callable[[pytest.MonkeyPatch], None]


def _forward_with(var_ddof: int = 0, use_eps: bool = True, batch_axis_only: bool = False) -> Callable[..., np.ndarray]:
    def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
        axes = (0,) if batch_axis_only else (0, *range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        var = x.var(axis=axes, keepdims=True, ddof=var_ddof)
        xhat = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(var + (eps if use_eps else 0.0))
        return weight.reshape(shape) * xhat + bias.reshape(shape)
    return forward


def _fused_forward_unbiased_variance(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(norm.batch_norm_train, "forward", _forward_with(var_ddof=1))


def _fused_forward_without_eps(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(norm.batch_norm_train, "forward", _forward_with(use_eps=False))


def _running_var_biased(mp: pytest.MonkeyPatch) -> None:
    def update(input: Any, running_mean: Any, running_var: Any, momentum: float) -> None:
        x = np.asarray(getattr(input, "data", input))
        axes = (0, *range(2, x.ndim))
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * x.mean(axis=axes)
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * x.var(axis=axes)
    mp.setattr(norm, "_update_running", update)


def _eval_without_eps(mp: pytest.MonkeyPatch) -> None:
    orig = norm._eval_norm
    mp.setattr(norm, "_eval_norm", lambda input, rm, rv, w, b, eps: orig(input, rm, rv, w, b, 0.0))


def _vjp_without_projection(mp: pytest.MonkeyPatch) -> None:
    """dL/dx without the -xhat * sum(g xhat) term: the gradient leaves the tangent space of the sphere."""
    def rule(g: Any, ans: Any, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
        _, inv_std, m = norm._normalized_stats(x, eps)
        axes = norm._reduce_axes(np.ndim(getattr(x, "data", x)))
        gx = g * norm.ad.reshape(weight, norm._channel_shape(np.ndim(getattr(x, "data", x)),
                                                               np.shape(getattr(x, "data", x))[1]))
        return (inv_std / m) * (m * gx - norm.ad.sum(gx, axis=axes, keepdims=True))
    rules = list(norm.batch_norm_train.vjps)
    rules[0] = rule
    mp.setattr(norm.batch_norm_train, "vjps", tuple(rules))


def _vjp_x_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(norm.batch_norm_train, "vjps", scaled_vjp(norm.batch_norm_train, 0, 1.1))


def _fused_bias_drops_the_layer_bias(mp: pytest.MonkeyPatch) -> None:
    orig = fusion.fuse_conv_bn_weights
    mp.setattr(fusion, "fuse_conv_bn_weights", lambda w, b, *rest, **kw: orig(w, None, *rest, **kw))


def _reduce_over_batch_axis_only(mp: pytest.MonkeyPatch) -> None:
    """Statistics per (channel, position) over N only: the spatial axes are forgotten."""
    mp.setattr(norm.batch_norm_train, "forward", _forward_with(batch_axis_only=True))


BREAKERS: dict[str, Breaker] = {
    "batchnorm.training-formula": _fused_forward_unbiased_variance,
    "batchnorm.normalized-moments": _fused_forward_unbiased_variance,
    "batchnorm.running-statistics": _running_var_biased,
    "batchnorm.eval-mode": _eval_without_eps,
    "batchnorm.identity-recovery": _fused_forward_without_eps,
    "batchnorm.scale-invariance": _vjp_without_projection,
    "batchnorm.backward-closed-form": _vjp_x_off_by_10pc,
    "batchnorm.normalization-axes": _reduce_over_batch_axis_only,
    "batchnorm.fold-into-linear": _fused_bias_drops_the_layer_bias,
}


def _claims() -> dict[str, vf.Claim]:
    chapters.load_all()
    return {cid: c for cid, c in vf.REGISTRY.items()
            if c.chapter == "batchnorm" and c.check.__module__ == bnc.__name__}


def _run(claim_id: str, seed: int = 0, thorough: bool = False) -> vf.Result:
    return vf.run_claim(_claims()[claim_id], seed=seed, thorough=thorough)


def test_thorough_runs_pass_with_pytorch_as_a_cross_check() -> None:
    pytest.importorskip("torch")
    with_torch = 0
    for cid in _claims():
        r = _run(cid, thorough=True)
        assert r.verdict == "pass", (cid, r.error, r.evidence)
        with_torch += any(c.name == "pytorch" for c in r.evidence.cross_checks)
    assert with_torch >= 5


