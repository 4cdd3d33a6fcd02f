"""Every chapter-7 (dropout) claim can fail: break what it checks and its verdict turns to "fail".

The pattern of tests/test_claims_can_fail.py: one breaker per registered claim of
``dlmath.chapters.dropout`` (it monkeypatches the claim's subject: dlmath's dropout, a rule of
the op it is built from, a closed form, the estimator), then the verdict must be "fail", and
"pass" again once the patch is undone. `test_every_claim_has_a_breaker` keeps the list complete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dlmath as dm
from dlmath import chapters
from dlmath import verify as vf
from dlmath.chapters import dropout as dp
from dlmath.nn import functional as F
from dlmath.nn import init as nn_init

Breaker = Callable[[pytest.MonkeyPatch], None]


def _dropout_with(keep_prob: Callable[[float], float], scale: Callable[[float], float]) -> Callable[..., Any]:
    """A wrong dropout: keeps with probability keep_prob(p) and multiplies by scale(p)."""
    def wrong(x: Any, p: float = 0.5, training: bool = True, inplace: bool = False, generator: Any = None) -> Any:
        if not training:
            return x
        shape = np.shape(getattr(x, "data", x))
        keep = (nn_init.default_generator().random(shape) < keep_prob(p)).astype(np.float64)
        return dm.multiply(x, keep * scale(p))
    return wrong


def _classical_dropout_in_training(mp: pytest.MonkeyPatch) -> None:
    # no 1/(1-p) rescaling: E[h~] = (1-p) h
    mp.setattr(F, "dropout", _dropout_with(lambda p: 1 - p, lambda p: 1.0))


def _p_read_as_retain_probability(mp: pytest.MonkeyPatch) -> None:
    # Srivastava et al.'s convention (p = retain probability) mixed with PyTorch's (p = drop probability)
    mp.setattr(F, "dropout", _dropout_with(lambda p: p, lambda p: 1 / (1 - p)))


def _multiply_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    rules = list(dm.ops.multiply.vjps)
    rule = rules[0]
    rules[0] = lambda g, ans, *args, **kw: 1.1 * rule(g, ans, *args, **kw)
    mp.setattr(dm.ops.multiply, "vjps", tuple(rules))


def _penalty_as_plain_l2(mp: pytest.MonkeyPatch) -> None:
    def plain_l2(X: np.ndarray, y: np.ndarray, w: np.ndarray, p: float) -> float:
        q = 1 - p
        r = y - q * (X @ w)
        return float(r @ r + q * (1 - q) * np.sum(w * w))
    mp.setattr(dp, "dropout_linear_regression_expected_loss", plain_l2)


def _arithmetic_instead_of_geometric_mean(mp: pytest.MonkeyPatch) -> None:
    def arithmetic(log_probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        a = np.tensordot(weights, np.exp(log_probs), axes=(0, 0))
        return a / a.sum(axis=-1, keepdims=True)
    mp.setattr(dp, "normalised_geometric_mean", arithmetic)


def _mc_variance_without_the_mean(mp: pytest.MonkeyPatch) -> None:
    def wrong(model: Any, x: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
        model.train()
        out = np.asarray(model(np.repeat(x[None], T, axis=0)).data)
        model.eval()
        return out.mean(axis=0), np.mean(out**2, axis=0)
    mp.setattr(dp, "mc_dropout_predict", wrong)


def _mc_dropout_leaves_the_model_in_training_mode(mp: pytest.MonkeyPatch) -> None:
    # the module's MCDropout.forward: a correct estimate, but BatchNorm layers would now train
    right = dp.mc_dropout_predict

    def leaves_train_mode(model: Any, x: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
        out = right(model, x, T)
        model.train()
        return out
    mp.setattr(dp, "mc_dropout_predict", leaves_train_mode)


def _elementwise_instead_of_channel_masks(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(F, "dropout2d", lambda x, p=0.5, training=True, inplace=False, generator=None: F.dropout(x, p, training))


def _fisher_weights_ignored(mp: pytest.MonkeyPatch) -> None:
    # plain L2 with the logistic curvature at eta = 0 (1/4) for every datum
    mp.setattr(dp, "dropout_glm_quadratic_penalty",
               lambda X, eta, w, p: float(0.5 * p / (1 - p) * 0.25 * np.sum(np.sum(X * X, axis=0) * w * w)))


def _masks_resampled_every_step(mp: pytest.MonkeyPatch) -> None:
    def per_step(x: np.ndarray, U: np.ndarray, W: np.ndarray, p: float) -> Any:
        T, B, _ = x.shape
        h = np.zeros((B, W.shape[0]))
        for t in range(T):
            h = dm.tanh(dm.matmul(F.dropout(x[t], p), U.T) + dm.matmul(F.dropout(h, p), W.T))
        return h
    mp.setattr(dp, "rnn_with_variational_dropout", per_step)


def _entropy_missing_a_term(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(dp, "bernoulli_entropy", lambda p: -np.asarray(p, dtype=np.float64) * np.log(p))


BREAKERS: dict[str, Breaker] = {
    "dropout.inverted-expectation": _classical_dropout_in_training,
    "dropout.backward-mask": _multiply_rule_off_by_10pc,
    "dropout.linear-regression-penalty": _penalty_as_plain_l2,
    "dropout.geometric-mean": _arithmetic_instead_of_geometric_mean,
    "dropout.mc-dropout": _mc_variance_without_the_mean,
    "dropout.gal-variational-family": _p_read_as_retain_probability,
    "dropout.bernoulli-entropy": _entropy_missing_a_term,
    "dropout.dropconnect": _p_read_as_retain_probability,
    "dropout.spatial-dropout": _elementwise_instead_of_channel_masks,
    "dropout.glm-fisher-penalty": _fisher_weights_ignored,
    "dropout.variational-rnn": _masks_resampled_every_step,
}


def _chapter_claims() -> dict[str, vf.Claim]:
    chapters.load_all()
    return {cid: c for cid, c in vf.REGISTRY.items() if c.chapter == "dropout" and c.check.__module__ == dp.__name__}


def _run(claim_id: str, seed: int = 0) -> vf.Result:
    return vf.run_claim(_chapter_claims()[claim_id], seed=seed)


def test_the_p_convention_mix_up_fails_the_expectation_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    _p_read_as_retain_probability(monkeypatch)
    assert _run("dropout.inverted-expectation").verdict == "fail"


def test_mc_dropout_fails_when_the_model_is_left_in_training_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    _mc_dropout_leaves_the_model_in_training_mode(monkeypatch)
    ev = _run("dropout.mc-dropout").evidence
    assert ev is not None and ev.main_passed and not ev.passed
