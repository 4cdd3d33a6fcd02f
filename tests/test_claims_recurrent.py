"""Every chapter-9 claim can fail: break what it checks and its verdict turns to "fail" (then "pass" after undo).

The breakers monkeypatch the subject of each claim: a fused primitive's forward or rule, the derivative the
rules use, a formula of the chapter, a layer's direction handling, a flop count, the clipping function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from dlmath.autodiff.core import Primitive
from dlmath.chapters import recurrent as rec
from dlmath.nn import recurrent as layers
from dlmath.nn import recurrent_ops as ro

Breaker = Callable[[pytest.MonkeyPatch], None]


def _scaled_vjp(mp: pytest.MonkeyPatch, prim: Primitive, argnum: int, factor: float) -> None:
    rules = list(prim.vjps)
    rule = rules[argnum]
    rules[argnum] = lambda g, ans, *args, **kw: factor * rule(g, ans, *args, **kw)
    mp.setattr(prim, "vjps", tuple(rules))


def _rnn_transposed_weight(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ro.rnn_scan, "forward",
               lambda xg, h0, w, nonlinearity="tanh", mask=None: ro._rnn_forward(xg, h0, w.T, nonlinearity, mask))


def _derivative_scaled(factor: float) -> Breaker:
    def breaker(mp: pytest.MonkeyPatch) -> None:
        original = ro._rnn_derivative
        mp.setattr(ro, "_rnn_derivative", lambda S, nl: factor * original(S, nl))
    return breaker


def _derivative_one(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ro, "_rnn_derivative", lambda S, nl: np.ones_like(np.asarray(getattr(S, "data", S))))


def _lstm_gates_i_f_swapped(mp: pytest.MonkeyPatch) -> None:
    def forward(xg: np.ndarray, h0: np.ndarray, c0: np.ndarray, w: np.ndarray, mask: Any = None) -> np.ndarray:
        H = h0.shape[-1]
        perm = np.r_[H:2 * H, 0:H, 2 * H:4 * H]
        return ro._lstm_forward(xg[..., perm], h0, c0, w[perm], mask)
    mp.setattr(ro.lstm_scan, "forward", forward)


def _gru_chung_convention(mp: pytest.MonkeyPatch) -> None:
    def forward(xg: np.ndarray, h0: np.ndarray, w: np.ndarray, b: np.ndarray, mask: Any = None) -> np.ndarray:
        H = h0.shape[-1]
        sign = np.ones(3 * H)
        sign[H:2 * H] = -1  # sigma(-a) = 1 - sigma(a): z becomes 1 - z
        return ro._gru_forward(xg * sign, h0, w * sign[:, None], b * sign, mask)
    mp.setattr(ro.gru_scan, "forward", forward)


def _gru_with_four_gates(mp: pytest.MonkeyPatch) -> None:
    mp.setitem(layers._GATES, "GRU", 4)


def _reverse_direction_uses_forward_weights(mp: pytest.MonkeyPatch) -> None:
    original = layers.RNNBase._input_projection
    mp.setattr(layers.RNNBase, "_input_projection", lambda self, x, layer, d: original(self, x, layer, 0))
    original_scan = layers.RNNBase._scan
    mp.setattr(layers.RNNBase, "_scan", lambda self, xg, h0, c0, layer, d, mask: original_scan(
        self, xg, h0, c0, layer, 0, mask))


def _one_way_reads_reversed_time(mp: pytest.MonkeyPatch) -> None:
    original = layers.RNNBase._input_projection
    mp.setattr(layers.RNNBase, "_input_projection", lambda self, x, layer, d: original(self, x, layer, d)[::-1])


def _lstm_scan_counts_no_flops(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(ro.lstm_scan, "flops", lambda *a, **k: 0)


def _clip_each_parameter_separately(mp: pytest.MonkeyPatch) -> None:
    def clip(params: Any, max_norm: float) -> float:
        params = list(params)
        total = float(np.sqrt(sum(float((p.grad.data ** 2).sum()) for p in params)))
        for p in params:
            n = float(np.linalg.norm(p.grad.data))
            if n > 0:
                p.grad.data[...] *= max_norm / n / np.sqrt(len(params))
        return total
    mp.setattr(rec, "clip_grad_norm_", clip)


BREAKERS: dict[str, Breaker] = {
    "recurrent.elman-equations": _rnn_transposed_weight,
    "recurrent.bptt-sum-over-time": lambda mp: _scaled_vjp(mp, ro.rnn_scan, 2, 1.1),
    "recurrent.jacobian-ordered-product":
        lambda mp: mp.setattr(rec, "hidden_jacobian_product", rec.printed_jacobian_product),
    "recurrent.vanishing-bound": _derivative_scaled(1.5),
    "recurrent.rate-vs-spectral-radius": _derivative_scaled(1.5),
    "recurrent.exploding-needs-more-than-norm": _derivative_one,
    "recurrent.forget-gate-product": lambda mp: _scaled_vjp(mp, ro.lstm_scan, 2, 1.1),
    "recurrent.constant-error-carousel": lambda mp: _scaled_vjp(mp, ro.lstm_scan, 2, 0.9),
    "recurrent.lstm-equations": _lstm_gates_i_f_swapped,
    "recurrent.gru-convention": _gru_chung_convention,
    "recurrent.gru-update-gate-copies": lambda mp: _scaled_vjp(mp, ro.gru_scan, 1, 1.1),
    "recurrent.parameter-counts": _gru_with_four_gates,
    "recurrent.bidirectional-concatenates": _reverse_direction_uses_forward_weights,
    "recurrent.bidirectional-sees-the-future": _one_way_reads_reversed_time,
    "recurrent.forward-cost": _lstm_scan_counts_no_flops,
    "recurrent.clip-grad-norm": _clip_each_parameter_separately,
}
