"""Every chapter-8 (convolution) claim can fail: break what it checks and its verdict turns to "fail".

The pattern of tests/test_claims_can_fail.py: one breaker per registered claim of
``dlmath.chapters.convolution`` (it monkeypatches the claim's subject: dlmath's conv2d, a
formula of `dlmath.nn.conv_math`, the Toeplitz builder), then the verdict must be "fail", and
"pass" again once the patch is undone. `test_every_claim_has_a_breaker` keeps the list complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from dlmath import chapters
from dlmath import verify as vf
from dlmath.chapters import convolution as cv
from dlmath.nn import conv_math as cm
from dlmath.nn import functional as F
from dlmath.nn.functional import conv as fconv
from dlmath.nn.functional import pooling as fpool

Breaker = Callable[[pytest.MonkeyPatch], None]

_right_conv2d = cv.conv2d
_right_toeplitz = cm.conv2d_toeplitz_matrix


def _riemann_sum_as_correlation(mp: pytest.MonkeyPatch) -> None:
    def correlated(f: np.ndarray, g: np.ndarray, dx: float, f_start: float = 0.0,
                   g_start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        values = dx * np.correlate(f, g, "full")  # g not reflected
        return f_start + g_start + dx * np.arange(values.size), values
    mp.setattr(cm, "convolution_riemann_sum", correlated)


def _conv2d_flips_the_kernel(mp: pytest.MonkeyPatch) -> None:
    def true_convolution(x: Any, weight: np.ndarray, *args: Any, **kw: Any) -> Any:
        return _right_conv2d(x, np.ascontiguousarray(weight[..., ::-1, ::-1]), *args, **kw)
    mp.setattr(cv, "conv2d", true_convolution)


def _circular_padding_read_as_zeros(mp: pytest.MonkeyPatch) -> None:
    def zeros_only(x: Any, weight: np.ndarray, bias: Any = None, stride: Any = 1, padding: Any = 0,
                   dilation: Any = 1, padding_mode: str = "zeros") -> Any:
        return _right_conv2d(x, weight, bias, stride, padding, dilation, "zeros")
    mp.setattr(cv, "conv2d", zeros_only)


def _output_size_rounds_up(mp: pytest.MonkeyPatch) -> None:
    def ceil_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
        return -(-(size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride) + 1
    mp.setattr(cm, "conv_output_size", ceil_size)


def _receptive_field_counts_own_stride(mp: pytest.MonkeyPatch) -> None:
    def wrong(layers: Sequence[tuple[int, ...]]) -> int:
        r, jump = 1, 1
        for layer in layers:
            k, s = int(layer[0]), int(layer[1])
            d = int(layer[2]) if len(layer) > 2 else 1
            jump *= s  # prod over i <= l instead of i < l
            r += d * (k - 1) * jump
        return r
    mp.setattr(cm, "receptive_field", wrong)


def _erf_standard_deviations_added(mp: pytest.MonkeyPatch) -> None:
    right = cv.effective_receptive_field_variance
    mp.setattr(cv, "effective_receptive_field_variance",
               lambda kernels: sum(np.sqrt(right([K])) for K in kernels) ** 2)


def _conv_count_without_bias(mp: pytest.MonkeyPatch) -> None:
    right = cm.conv2d_parameter_count
    mp.setattr(cm, "conv2d_parameter_count",
               lambda c_in, c_out, k, bias=True, groups=1: right(c_in, c_out, k, False, groups))


def _toeplitz_with_the_flipped_kernel(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(cm, "conv2d_toeplitz_matrix",
               lambda weight, *a, **kw: _right_toeplitz(np.asarray(weight)[..., ::-1, ::-1], *a, **kw))


def _scaled_vjp(prim: Any, argnum: int, factor: float) -> tuple[Any, ...]:
    rules = list(prim.vjps)
    rule = rules[argnum]
    rules[argnum] = lambda g, ans, *args, **kw: factor * rule(g, ans, *args, **kw)
    return tuple(rules)


def _max_pool_averages(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(F, "max_pool2d", lambda x, k, *a, **kw: F.avg_pool2d(x, k, *a, **kw))


def _pool_gather_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(fpool.plane_gather, "vjps", _scaled_vjp(fpool.plane_gather, 0, 1.1))


def _conv_weight_rule_off_by_10pc(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(fconv.conv2d_valid, "vjps", _scaled_vjp(fconv.conv2d_valid, 1, 1.1))


BREAKERS: dict[str, Breaker] = {
    "convolution.riemann-sum": _riemann_sum_as_correlation,
    "convolution.cross-correlation": _conv2d_flips_the_kernel,
    "convolution.fft-theorem": _circular_padding_read_as_zeros,
    "convolution.translation-equivariance": _circular_padding_read_as_zeros,
    "convolution.output-size": _output_size_rounds_up,
    "convolution.receptive-field": _receptive_field_counts_own_stride,
    "convolution.effective-receptive-field": _erf_standard_deviations_added,
    "convolution.parameter-count": _conv_count_without_bias,
    "convolution.toeplitz-matrix": _toeplitz_with_the_flipped_kernel,
    "convolution.max-pool-shift": _max_pool_averages,
    "convolution.pool-gradient": _pool_gather_rule_off_by_10pc,
    "convolution.conv-backward": _conv_weight_rule_off_by_10pc,
}


def _chapter_claims() -> dict[str, vf.Claim]:
    chapters.load_all()
    return {cid: c for cid, c in vf.REGISTRY.items()
            if c.chapter == "convolution" and c.check.__module__ == cv.__name__}


def _run(claim_id: str, seed: int = 0) -> vf.Result:
    return vf.run_claim(_chapter_claims()[claim_id], seed=seed)


def test_equivariance_fails_when_zero_padding_is_equivariant_at_the_border_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # circular padding everywhere: the border now matches, which the zero-padding cross-check must notice
    def circular_only(x: Any, weight: np.ndarray, bias: Any = None, stride: Any = 1, padding: Any = 0,
                      dilation: Any = 1, padding_mode: str = "zeros") -> Any:
        return _right_conv2d(x, weight, bias, stride, padding, dilation, "circular" if padding else padding_mode)
    monkeypatch.setattr(cv, "conv2d", circular_only)
    ev = _run("convolution.translation-equivariance").evidence
    assert ev is not None and ev.main_passed and not ev.passed


def test_conv_backward_fails_by_forward_mode_when_the_input_rule_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fconv.conv2d_valid, "vjps", _scaled_vjp(fconv.conv2d_valid, 0, 1.1))
    assert _run("convolution.conv-backward").verdict == "fail"


def test_receptive_field_fails_when_the_input_gradient_misses_taps(monkeypatch: pytest.MonkeyPatch) -> None:
    # an input-gradient rule that drops the last kernel column: the measured support shrinks
    rules = list(fconv.conv2d_valid.vjps)
    right = rules[0]

    def short(g: Any, ans: Any, x: Any, w: Any, **kw: Any) -> Any:
        w_cut = np.array(getattr(w, "data", w), copy=True)
        w_cut[..., -1] = 0.0
        return right(g, ans, x, w_cut, **kw)
    rules[0] = short
    monkeypatch.setattr(fconv.conv2d_valid, "vjps", tuple(rules))
    assert _run("convolution.receptive-field").verdict == "fail"
