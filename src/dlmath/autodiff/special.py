r"""SciPy's special functions, differentiable: the ``dm.special`` namespace (also at ``dm.<name>``).

A second table in the style of ``ops.py``: each primitive has its SciPy forward, one VJP
rule and one separately written JVP rule per argument, written with dm ops so that they are
differentiable again (``digamma``'s derivative is ``polygamma(1, x)``, whose derivative is
``polygamma(2, x)``...). ``expit`` is ``ops.sigmoid`` itself and ``erf`` is ``ops.erf``.
Outside a function's domain the forward gives SciPy's value (NaN or ±inf), as NumPy would;
``dm.detect_anomaly()`` names the op that made it.

References for the derivatives: DLMF §7.2 (erf, erfc), §5.15 (polygamma), §5.2 (digamma);
the normal CDF $\Phi$ and $\log\Phi$ as in ``torch.special.ndtr`` / ``log_ndtr``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special as _sp

from .core import Primitive
from .core import unwrap as _data
from .errors import DlmathError
from .ops import _ew_flops, _unary, exp, log, sigmoid, where
from .ops import erf as erf

_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_HALF_SQRT_PI = math.sqrt(math.pi) / 2
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)

expit = sigmoid  # the same primitive: dm.expit is dm.sigmoid

erfc = _unary("erfc", _sp.erfc, lambda g, ans, x: -(g * exp(-(x * x))) * _TWO_OVER_SQRT_PI,
              lambda t, ans, x: exp(-(x * x)) * (-_TWO_OVER_SQRT_PI) * t,
              r"complementary error function $1 - \mathrm{erf}(x)$, accurate for large x; "
              r"$\mathrm{erfc}'(x) = -\frac{2}{\sqrt\pi} e^{-x^2}$")
erfinv = _unary("erfinv", _sp.erfinv, lambda g, ans, x: g * _HALF_SQRT_PI * exp(ans * ans),
                lambda t, ans, x: exp(ans * ans) * t * _HALF_SQRT_PI,
                r"inverse of erf on $(-1, 1)$ (±inf at ±1, NaN outside); "
                r"$(\mathrm{erf}^{-1})'(x) = \frac{\sqrt\pi}{2} e^{\mathrm{erf}^{-1}(x)^2}$", reads_output=True)


def _polygamma_forward(n: Any, x: Any) -> Any:
    return _sp.polygamma(n, x)


_polygamma = Primitive("polygamma", _polygamma_forward, _ew_flops,
                       r"$\psi^{(n)}(x) = \frac{d^{n+1}}{dx^{n+1}}\log\Gamma(x)$ "
                       "(differentiable in x; n fixed)").defvjp(
    None, lambda g, ans, n, x: g * polygamma(n + 1, x)).defjvp(
    None, lambda t, ans, n, x: polygamma(n + 1, x) * t)


def polygamma(n: Any, x: Any) -> Any:
    r"""$\psi^{(n)}(x)$, the n-th derivative of the digamma function (DLMF 5.15); its derivative
    in x is $\psi^{(n+1)}(x)$. ``n``: a non-negative integer (or integer array), not differentiated."""
    nd = np.asarray(_data(n))
    if nd.dtype.kind not in "iub" and not (nd.dtype.kind == "f" and np.all(nd == np.floor(nd))):
        raise DlmathError(f"polygamma: n must be a non-negative integer, got {n!r}")
    if np.any(nd < 0):
        raise DlmathError(f"polygamma: n must be a non-negative integer, got {n!r}")
    return _polygamma(nd.astype(np.int64) if nd.ndim else int(nd), x)


digamma = _unary("digamma", _sp.digamma, lambda g, ans, x: g * polygamma(1, x),
                 lambda t, ans, x: polygamma(1, x) * t,
                 r"$\psi(x) = \Gamma'(x)/\Gamma(x)$; $\psi'(x) = \psi^{(1)}(x)$ (DLMF 5.15.1)")
gammaln = _unary("gammaln", _sp.gammaln, lambda g, ans, x: g * digamma(x), lambda t, ans, x: digamma(x) * t,
                 r"$\log|\Gamma(x)|$ (torch's lgamma); $\frac{d}{dx}\log|\Gamma(x)| = \psi(x)$")
logit = _unary("logit", _sp.logit, lambda g, ans, x: g / (x * (1 - x)), lambda t, ans, x: t / (x - x * x),
               r"$\log\frac{p}{1-p}$ on $(0, 1)$, the inverse of expit; derivative $\frac{1}{p(1-p)}$")
ndtr = _unary("ndtr", _sp.ndtr, lambda g, ans, x: g * exp(-0.5 * (x * x)) * _INV_SQRT_2PI,
              lambda t, ans, x: (_INV_SQRT_2PI * t) * exp(-(x * x) / 2),
              r"the standard normal CDF $\Phi(x) = \frac12\mathrm{erfc}(-x/\sqrt2)$; "
              r"$\Phi'(x) = \varphi(x) = e^{-x^2/2}/\sqrt{2\pi}$")
log_ndtr = _unary("log_ndtr", _sp.log_ndtr,
                  lambda g, ans, x: g * exp(-0.5 * (x * x) - ans - _LOG_SQRT_2PI),
                  lambda t, ans, x: exp(-(x * x) / 2 - _LOG_SQRT_2PI - ans) * t,
                  r"$\log\Phi(x)$, accurate for very negative x; its derivative "
                  r"$\varphi(x)/\Phi(x) = \exp(\log\varphi(x) - \log\Phi(x))$ is formed in log space "
                  r"(no 0/0 where $\Phi$ underflows)", reads_output=True)


def _xlogy_dx(x: Any, y: Any) -> Any:
    r"""$\partial_x\, x\log y = \log y$, taken as 0 where $x = 0$ and $y \le 0$ (``torch.special.xlogy``'s
    rule: there the function is 0 along x = 0 and $\log y$ is not finite)."""
    off = (_data(x) == 0) & (_data(y) <= 0)
    if not np.any(off):
        return log(y)
    return where(off, 0.0, log(where(off, 1.0, y)))


def _y_over(x: Any, y: Any) -> Any:
    r"""$x / y$, taken as 0 where x = 0 (the function is identically 0 along x = 0; PyTorch gives
    NaN at x = y = 0)."""
    zero = _data(x) == 0
    if not np.any(zero):
        return x / y
    return where(zero, 0.0, x / where(zero, 1.0, y))


def _xlogy_tangent_x(t: Any, ans: Any, x: Any, y: Any) -> Any:
    r"""$\dot z = \log(y)\,\dot x$, 0 where x = 0 and y <= 0 (as the VJP)."""
    xd, yd = _data(x), _data(y)
    if np.all(yd > 0):
        return log(y) * t
    off = (xd == 0) & (yd <= 0)
    return where(off, 0.0, log(where(off, 1.0, y)) * t)


def _xlogy_tangent_y(t: Any, ans: Any, x: Any, y: Any) -> Any:
    r"""$\dot z = (x/y)\,\dot y$, 0 where x = 0 (as the VJP)."""
    at_zero = _data(x) == 0
    if not np.any(at_zero):
        return t * x / y
    return where(at_zero, 0.0, t * x / where(at_zero, 1.0, y))


xlogy = Primitive("xlogy", _sp.xlogy, _ew_flops,
                  r"$x \log y$, 0 where $x = 0$ (SciPy's and torch's xlogy); "
                  r"$\partial_x = \log y$ (0 where x = 0 and y <= 0), $\partial_y = x / y$ (0 where x = 0)").defvjp(
    lambda g, ans, x, y: g * _xlogy_dx(x, y),
    lambda g, ans, x, y: g * _y_over(x, y)).defjvp(
    _xlogy_tangent_x, _xlogy_tangent_y)

__all__ = ["digamma", "erf", "erfc", "erfinv", "expit", "gammaln", "log_ndtr", "logit", "ndtr", "polygamma",
           "xlogy"]
