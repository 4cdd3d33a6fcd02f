r"""Experiments for plots and reports: the gallery, error-vs-width curves, random features, Barron's rate.

Every function returns plain data (dicts of lists and floats) and draws nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .construct import (
    RIDGE_SCHEDULE,
    Domain,
    evaluate,
    fit_output_layer,
    grid_certificate,
    interpolation_error_bound,
    measured_sup_error,
    relu_interpolant,
    ridge_features,
)
from .networks import ShallowNet

__all__ = ["GALLERY", "GalleryFunction", "barron_constant_gaussian", "error_vs_width", "fitted_slope",
           "random_features_fit", "sample_ball"]


@dataclass(frozen=True)
class GalleryFunction:
    """A test function with its domain and proved constants (Lipschitz L, |f''| or Hessian bound M)."""

    name: str
    f: Callable[[np.ndarray], np.ndarray]
    domain: tuple[tuple[float, float], ...]
    lipschitz: float
    second_derivative_bound: float | None
    description: str


def _runge(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + 25.0 * (x[:, 0] - 0.5) ** 2)


def _kink(x: np.ndarray) -> np.ndarray:
    return np.abs(x[:, 0] - 1.0 / 3.0)


def _oscillatory(x: np.ndarray) -> np.ndarray:
    return np.sin(20.0 * x[:, 0])


def _wave2d(x: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * x[:, 0]) * np.cos(np.pi * x[:, 1])


def _bump2d(x: np.ndarray) -> np.ndarray:
    return np.exp(-4.0 * ((x[:, 0] - 0.5) ** 2 + (x[:, 1] - 0.3) ** 2))


GALLERY: tuple[GalleryFunction, ...] = (
    # g(u) = 1/(1+u^2): |g'| <= 3 sqrt(3)/8, |g''| <= 2; u = 5(x - 1/2)
    GalleryFunction("runge", _runge, ((0.0, 1.0),), 5 * 3 * math.sqrt(3) / 8, 50.0,
                    "smooth: 1/(1 + 25(x - 1/2)^2) on [0, 1]"),
    GalleryFunction("kink", _kink, ((0.0, 1.0),), 1.0, None, "Lipschitz, not C^1: |x - 1/3| on [0, 1]"),
    GalleryFunction("sin20", _oscillatory, ((0.0, 1.0),), 20.0, 400.0, "oscillatory: sin(20x) on [0, 1]"),
    # |grad| <= pi; Hessian = -pi^2 [[a, b], [b, a]], eigenvalues -(a +- b), |a| + |b| <= 1
    GalleryFunction("wave2d", _wave2d, ((0.0, 1.0), (0.0, 1.0)), math.pi, math.pi ** 2,
                    "2-d smooth: sin(pi x) cos(pi y) on [0, 1]^2"),
    # exp(-a r^2), a = 4: |grad| <= sqrt(2a) e^{-1/2}, Hessian eigenvalues bounded by 2a
    GalleryFunction("bump2d", _bump2d, ((0.0, 1.0), (0.0, 1.0)), math.sqrt(8.0) * math.exp(-0.5), 8.0,
                    "2-d Gaussian bump: exp(-4|x - (0.5, 0.3)|^2) on [0, 1]^2"),
)


def fitted_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (a rate exponent)."""
    lx, ly = np.log(np.asarray(x, dtype=np.float64)), np.log(np.asarray(y, dtype=np.float64))
    return float(np.polyfit(lx, ly, 1)[0])


def error_vs_width(gallery: Sequence[GalleryFunction] = GALLERY,
                   widths_1d: Sequence[int] = (8, 16, 32, 64, 128, 256),
                   schedule_2d: Sequence[tuple[int, int]] = RIDGE_SCHEDULE[:5]) -> dict[str, dict[str, Any]]:
    """Sup error against width for each gallery function: the ReLU interpolant in 1-d (with its proved bound),
    the least-squares ridge network in 2-d (with its certified bound). Also the fitted log-log slope."""
    out: dict[str, dict[str, Any]] = {}
    for g in gallery:
        dom = Domain.parse(g.domain)
        widths, errors, bounds = [], [], []
        if dom.dim == 1:
            for K in widths_1d:
                net = relu_interpolant(g.f, 0.0, 1.0, K) if g.domain[0] == (0.0, 1.0) else \
                    relu_interpolant(g.f, g.domain[0][0], g.domain[0][1], K)
                h = float(dom.upper[0] - dom.lower[0]) / K
                widths.append(K)
                errors.append(measured_sup_error(net, g.f, dom, h / 16))
                bounds.append(interpolation_error_bound(h, g.lipschitz, g.second_derivative_bound))
        else:
            for directions, knots in schedule_2d:
                W, b = ridge_features(dom, directions, knots)
                Xfit = dom.grid(max(8, math.ceil(math.sqrt(6 * W.shape[0]))))
                c, c0 = fit_output_layer(np.maximum(Xfit @ W.T + b, 0.0), evaluate(g.f, Xfit))
                net = ShallowNet(W, b, c, c0)
                widths.append(net.width)
                cert = grid_certificate(net, g.f, dom, 65, g.lipschitz, g.second_derivative_bound)
                errors.append(measured_sup_error(net, g.f, dom, 1 / 256))
                bounds.append(cert.bound)
        out[g.name] = {"description": g.description, "width": widths, "sup_error": errors, "bound": bounds,
                       "slope": fitted_slope(widths, errors)}
    return out


def random_features_fit(f: Callable[[np.ndarray], np.ndarray], X: np.ndarray, width: int, activation: Callable[
        [np.ndarray], np.ndarray], rng: np.random.Generator, scale: float = 1.0,
        centers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    r"""Random features $\sigma(w_i^\top x + b_i)$ fitted by least squares on the points X.

    $w_i = \text{scale}\cdot g_i$, $g_i\sim N(0, I)$, and $b_i = -w_i^\top p_i$ with $p_i$ drawn from
    ``centers`` (default: the rows of X), so each unit bends where the data are. Returns
    (W, b, c, c0): the caller wraps them (a ShallowNet for a named activation).
    """
    n = X.shape[1]
    W = scale * rng.standard_normal((width, n))
    P = (X if centers is None else centers)[rng.integers(0, (X if centers is None else centers).shape[0], width)]
    b = -np.sum(W * P, axis=1)
    c, c0 = fit_output_layer(activation(X @ W.T + b), evaluate(f, X))
    return W, b, c, c0


def sample_ball(rng: np.random.Generator, count: int, d: int, radius: float = 1.0) -> np.ndarray:
    """Uniform points in the d-dimensional ball: Gaussian directions, radii radius * U^(1/d)."""
    g = rng.standard_normal((count, d))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g * (radius * rng.random((count, 1)) ** (1.0 / d))


def barron_constant_gaussian(d: int) -> float:
    r"""$C_f = \int |\omega|\,|\tilde F(\omega)|\,d\omega$ for $f(x) = e^{-|x|^2/2}$ on $\mathbb R^d$.

    $\tilde F(\omega) = (2\pi)^{-d/2} e^{-|\omega|^2/2}$ is the standard normal density, so
    $C_f = E|\omega| = \sqrt2\,\Gamma(\tfrac{d+1}{2})/\Gamma(\tfrac d2)$ (Barron 1993, *Universal approximation
    bounds for superpositions of a sigmoidal function*, IEEE Trans. Inf. Theory 39:930).
    """
    return math.sqrt(2.0) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
