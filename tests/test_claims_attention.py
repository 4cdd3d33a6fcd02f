"""Every chapter-6 (attention) claim can fail: break what it checks and its verdict turns to "fail".

The pattern of tests/test_claims_can_fail.py: one breaker per registered claim (a monkeypatched rule,
formula, constant or layer), the verdict must be "fail" while broken and "pass" again after undo.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dlmath as dm
import dlmath.nn.functional.attention as fa
from dlmath import chapters
from dlmath import nn as dnn
from dlmath import verify as vf
from dlmath.chapters import attention as ch
from test_claims_can_fail import scaled_vjp

Breaker = Callable[[pytest.MonkeyPatch], None]


def _no_scale(mp: pytest.MonkeyPatch) -> None:
    for where in (fa, dnn.functional):  # the module's own calls and the public name
        mp.setattr(where, "attention_scale", lambda d_k: 1.0)


def _unnormalised_softmax(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.softmax, "forward", lambda x, axis=-1: np.exp(x - np.max(x, axis=axis, keepdims=True)))


def _softmax_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.softmax, "vjps", scaled_vjp(dm.ops.softmax, 0, 1.1))


def _positions_are_zero(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dnn, "sinusoidal_positional_encoding", lambda L, E, dtype=None, base=10000.0: np.zeros((L, E)))


def _keys_projected_with_query_weights(mp: pytest.MonkeyPatch) -> None:
    original = dnn.MultiheadAttention._projections

    def wrong(self: Any) -> tuple[Any, Any, Any]:
        wq, _, wv = original(self)
        return wq, wq, wv
    mp.setattr(dnn.MultiheadAttention, "_projections", wrong)


def _softmax_over_queries(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(fa, "_masked_softmax", lambda s: dm.softmax(s, axis=-2))


def _blockwise_query_gradient_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(fa.attention_blockwise, "vjps", scaled_vjp(fa.attention_blockwise, 0, 1.1))


def _causal_mask_allows_everything(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(fa, "causal_mask", lambda L, S, j0=0, j1=None: np.ones((L, (S if j1 is None else j1) - j0), bool))


def _matmul_flops_wrong_axis(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dm.ops.matmul, "flops", lambda out, a, b: 2 * int(np.size(out)) * int(np.shape(b)[-1]))


def _normaliser_dropped(mp: pytest.MonkeyPatch) -> None:
    original = fa.linear_attention
    mp.setattr(dnn.functional, "linear_attention",
               lambda q, k, v, feature_map=fa.elu_feature_map, normalize=True: original(q, k, v, feature_map, False))


def _features_without_norm_correction(mp: pytest.MonkeyPatch) -> None:
    def biased(x: Any, omega: np.ndarray) -> Any:  # e^{w.x}/sqrt(r): estimates e^{q.k + |q|^2/2 + |k|^2/2}
        return dm.exp(dm.matmul(x, np.asarray(omega).T)) * (1.0 / math.sqrt(np.shape(omega)[0]))
    mp.setattr(dnn.functional, "positive_random_features", biased)


def _batch_first_ignored(mp: pytest.MonkeyPatch) -> None:
    original = dnn.MultiheadAttention.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["batch_first"] = False
        original(self, *args, **kwargs)
    mp.setattr(dnn.MultiheadAttention, "__init__", init)


BREAKERS: dict[str, Breaker] = {
    "attention.definition": _no_scale,
    "attention.rows-are-distributions": _unnormalised_softmax,
    "attention.dot-product-variance": _no_scale,
    "attention.softmax-saturation": _no_scale,
    "attention.softmax-jacobian": _softmax_rule_off_by_10pc,
    "attention.permutation-equivariance": _positions_are_zero,
    "attention.multi-head-concat": _keys_projected_with_query_weights,
    "attention.cross-attention": _softmax_over_queries,
    "attention.blockwise-exact": _blockwise_query_gradient_off_by_10pc,
    "attention.causal-mask": _causal_mask_allows_everything,
    "attention.cost-n2d": _matmul_flops_wrong_axis,
    "attention.linear-attention-normaliser": _normaliser_dropped,
    "attention.performer-features": _features_without_norm_correction,
    "attention.batch-first-misuse": _batch_first_ignored,
    "attention.graph-attention": _unnormalised_softmax,
}


def _claims() -> dict[str, vf.Claim]:
    chapters.load_all()
    return {cid: c for cid, c in vf.REGISTRY.items() if c.chapter == "attention" and c.check.__module__ == ch.__name__}


def _run(claim_id: str, seed: int = 0) -> vf.Result:
    return vf.run_claim(_claims()[claim_id], seed=seed)


def test_blockwise_memory_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 'blockwise' path that materialises the whole matrix (one block of every key) fails the memory checks."""
    original = fa._blockwise_forward
    monkeypatch.setattr(fa.attention_blockwise, "forward",
                        lambda q, k, v, bias, scale=1.0, causal=False, block=64:
                        original(q, k, v, bias, scale, causal, 10**9))
    r = _run("attention.blockwise-exact")
    assert r.verdict == "fail"
    assert r.evidence.main_passed
    failed = {c.name for c in r.evidence.cross_checks if not c.passed}
    assert "blockwise-memory-linear" in failed, failed


