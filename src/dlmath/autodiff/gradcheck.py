r"""Gradient checking by central differences.

For each input element $x_j$: $\partial f_i/\partial x_j \approx
(f_i(x + h e_j) - f_i(x - h e_j)) / 2h$, with truncation error $O(h^2)$ and rounding
error $O(\epsilon_{\text{mach}}/h)$. In float64 with $h = 10^{-6}$ both are around
$10^{-10}$ relative; in float32 ($\epsilon_{\text{mach}} \approx 1.2\times10^{-7}$) the
rounding term alone is $\sim 10^{-1}$ for that $h$, so float32 checks need far looser
tolerances (the ``backprop.gradcheck-float32`` claim measures it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .core import unwrap
from .errors import GradcheckError
from .transforms import jacobian


@dataclass(frozen=True)
class GradcheckReport:
    """Outcome of `gradcheck`: the worst disagreement and where it happened."""

    passed: bool
    max_abs_error: float
    max_rel_error: float
    worst_input: int
    worst_index: tuple[int, ...]
    analytic: float
    numeric: float
    n_checked: int
    eps: float
    dtype: str

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (f"gradcheck {verdict} ({self.dtype}, eps={self.eps:g}, {self.n_checked} entries): "
                f"max abs error {self.max_abs_error:.3e}, max rel error {self.max_rel_error:.3e}; worst at "
                f"input {self.worst_input}, index {self.worst_index} (analytic {self.analytic:.10g}, "
                f"numeric {self.numeric:.10g})")


def numerical_jacobian(f: Callable[..., Any], inputs: list[np.ndarray], k: int, eps: float) -> np.ndarray:
    """Central-difference Jacobian of f with respect to input k, shaped out.shape + x.shape."""
    x = inputs[k]
    base = np.asarray(unwrap(f(*inputs)))
    jac = np.zeros(base.shape + x.shape, dtype=np.result_type(base.dtype, x.dtype))
    for j in np.ndindex(*x.shape):
        plus = [a.copy() for a in inputs]
        minus = [a.copy() for a in inputs]
        plus[k][j] += eps
        minus[k][j] -= eps
        diff = np.asarray(unwrap(f(*plus))) - np.asarray(unwrap(f(*minus)))
        jac[(...,) + j] = diff / (2 * eps)
    return jac


def gradcheck(f: Callable[..., Any], *inputs: Any, eps: float = 1e-6, atol: float = 1e-6,
              rtol: float = 1e-5, dtype: Any = np.float64, raise_on_failure: bool = True) -> GradcheckReport:
    r"""Compare reverse-mode Jacobians of ``f`` with central differences, in ``dtype``.

    Passes when every entry satisfies $|J_{\text{ad}} - J_{\text{fd}}| \le \text{atol} +
    \text{rtol}\,|J_{\text{fd}}|$. Returns a `GradcheckReport`; raises `GradcheckError`
    (carrying the report) on failure unless ``raise_on_failure=False``.
    """
    arrays = [np.array(unwrap(x), dtype=dtype) for x in inputs]
    worst = (0.0, 0.0, 0, (), 0.0, 0.0)
    ok = True
    n = 0
    for k in range(len(arrays)):
        analytic = np.asarray(jacobian(f, argnums=k, mode="reverse")(*arrays))
        numeric = numerical_jacobian(f, arrays, k, eps)
        err = np.abs(analytic - numeric)
        scale = np.maximum(np.abs(numeric), np.abs(analytic))
        rel = np.divide(err, scale, out=np.zeros_like(err), where=scale > 0)
        ok &= bool(np.all(err <= atol + rtol * np.abs(numeric)))
        n += err.size
        if err.size and err.max() >= worst[0]:
            flat = int(np.argmax(err))
            idx = np.unravel_index(flat, err.shape)
            worst = (float(err.max()), max(worst[1], float(rel.max())), k, tuple(int(i) for i in idx),
                     float(analytic[idx]), float(numeric[idx]))
        elif err.size:
            worst = (worst[0], max(worst[1], float(rel.max())), *worst[2:])
    report = GradcheckReport(ok, worst[0], worst[1], worst[2], worst[3], worst[4], worst[5], n, eps,
                             np.dtype(dtype).name)
    if not ok and raise_on_failure:
        raise GradcheckError(str(report) + f" exceeds atol={atol:g} + rtol={rtol:g}*|numeric|", report)
    return report
