r"""Constructive universal approximation: given f and eps, build a one-hidden-layer network and certify it.

``approximate(f, domain, eps)`` returns an `Approximation`: the network, its width, an error bound,
a certificate (which theorem, which constants, proved or estimated) and the error measured on a
dense check grid.

* n = 1, ReLU: the piecewise-linear interpolant at uniform knots, written exactly as
  $N(x) = f(a) + \sum_i c_i\,\mathrm{relu}(x - t_i)$, with spacing from $Lh/2$ or $Mh^2/8$
  (`interpolation_error_bound`).
* n = 1, sigmoid: Cybenko's staircase $f(t_0) + \sum_i (f(t_i)-f(t_{i-1}))\,\sigma(k(x - s_i))$
  (`staircase_error_bound`).
* n >= 2 on a box: ReLU ridge units $\mathrm{relu}(w_i^\top x + b_i)$ with random directions and offsets,
  output weights by least squares (Barron 1993's ridge form); the error is certified on a check
  grid by `grid_certificate` (corner errors plus, per cell, Lipschitz or curvature terms).

A function whose estimated Lipschitz constant keeps growing as the sampling grid is refined is
reported as looking discontinuous: no bound is claimed for it (``error_bound = inf``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..autodiff import AllocationError, ShapeError
from .networks import ApproximationError, ShallowNet, logistic

__all__ = [
    "Approximation",
    "Domain",
    "approximate",
    "estimate_lipschitz",
    "grid_certificate",
    "interpolation_error_bound",
    "relu_interpolant",
    "sigmoid_bump",
    "sigmoid_staircase",
    "staircase_error_bound",
]

F64_EPS = float(np.finfo(np.float64).eps)
DEFAULT_MAX_WIDTH = 200_000          # hidden units; beyond it `approximate` raises AllocationError
MAX_CHECK_POINTS = 4_000_000         # points of a dense check grid
ESTIMATE_SAFETY = 1.5                # estimated constants are inflated by this factor (and marked not proved)
TARGET = 0.9                         # constructions aim at TARGET * eps: room for the rounding term
STAIRCASE_STEEPNESS = 40.0           # k h of the sigmoid staircase: tails e^{-kh/2} ~ 2e-9


@dataclass(frozen=True)
class Domain:
    """A box $\\prod_j [\\text{lower}_j, \\text{upper}_j]$."""

    lower: np.ndarray
    upper: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.lower.shape[0])

    @classmethod
    def parse(cls, domain: Any, owner: str = "approximate") -> Domain:
        """(a, b) for an interval, or a sequence of (lower, upper) pairs for a box."""
        try:
            arr = np.asarray(domain, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ApproximationError(f"{owner}: domain must be (a, b) or [(a1, b1), ...], got {domain!r}") from exc
        if arr.shape == (2,):
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
            raise ApproximationError(f"{owner}: domain must be (a, b) or a sequence of (lower, upper) pairs, "
                                     f"got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ApproximationError(f"{owner}: domain bounds must be finite, got {arr.tolist()}")
        bad = np.nonzero(arr[:, 0] >= arr[:, 1])[0]
        if bad.size:
            j = int(bad[0])
            raise ApproximationError(f"{owner}: domain needs lower < upper; coordinate {j} has lower "
                                     f"{arr[j, 0]} >= upper {arr[j, 1]}")
        return cls(arr[:, 0].copy(), arr[:, 1].copy())

    def grid(self, per_axis: int) -> np.ndarray:
        """The tensor grid with `per_axis` points per coordinate (end points included), shape (per_axis^n, n)."""
        axes = [np.linspace(lo, hi, per_axis) for lo, hi in zip(self.lower, self.upper, strict=True)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)


def evaluate(f: Callable[[np.ndarray], Any], X: np.ndarray, owner: str = "approximate") -> np.ndarray:
    """f at points X (N, n) as a finite float64 (N,) array, or a clear error."""
    try:
        y = np.asarray(f(X), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ApproximationError(f"{owner}: f must map an array of shape (N, n) to N real values; calling it "
                                 f"on shape {X.shape} failed: {exc}") from exc
    if y.shape == (X.shape[0], 1):
        y = y[:, 0]
    if y.shape != (X.shape[0],):
        raise ShapeError(f"{owner}: f must return shape ({X.shape[0]},) (or ({X.shape[0]}, 1)) for input of "
                         f"shape {X.shape}; it returned shape {y.shape}")
    bad = ~np.isfinite(y)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise ApproximationError(f"{owner}: f returned {y[i]} at x = {X[i].tolist()} ({int(bad.sum())} non-finite "
                                 "values); f must be finite on the domain")
    return y


# ----- error bounds (each formula once) ---------------------------------------------------------------
def interpolation_error_bound(h: float, lipschitz: float | None = None,
                              second_derivative_bound: float | None = None) -> float:
    r"""Sup error of piecewise-linear interpolation with knot spacing h (the smaller bound that applies).

    $\|f - I_h f\|_\infty \le L h / 2$ for L-Lipschitz f, and $\le M h^2 / 8$ when $|f''| \le M$
    (the interpolation remainder $f(x) - I_hf(x) = f''(\xi)(x - t_i)(x - t_{i+1})/2$).
    """
    bounds = []
    if lipschitz is not None:
        bounds.append(lipschitz * h / 2)
    if second_derivative_bound is not None:
        bounds.append(second_derivative_bound * h * h / 8)
    if not bounds:
        raise ApproximationError("interpolation_error_bound: needs a Lipschitz or a second-derivative bound")
    return min(bounds)


def staircase_error_bound(h: float, lipschitz: float, steepness: float = STAIRCASE_STEEPNESS) -> float:
    r"""Sup error of the sigmoid staircase with knot spacing h and sigmoid slope k = steepness / h.

    Near a step the network is a convex combination of $f(t_{j-1})$ and $f(t_j)$, within $Lh$ of $f(x)$;
    every other step is off by $|\Delta f_i|\,|\sigma(k(x-s_i)) - \mathbb 1[x > s_i]| \le Lh\,e^{-k|x-s_i|}$
    with $|x - s_i| \ge (m - \tfrac12)h$ for the m-th neighbour on each side, so
    $\|N - f\|_\infty \le Lh\,(1 + 2e^{-kh/2}/(1-e^{-kh}))$ (Cybenko 1989's construction, made quantitative).
    """
    kh = steepness
    return lipschitz * h * (1 + 2 * math.exp(-kh / 2) / (1 - math.exp(-kh)))


def sigmoid_bump(x: np.ndarray, a: float, b: float, k: float) -> np.ndarray:
    r"""$\sigma(k(x-a)) - \sigma(k(x-b))$, which tends to $\mathbb 1_{[a,b]}(x)$ as $k\to\infty$ for $x\notin\{a,b\}$.

    Away from the end points by $\delta$ the error is at most $2e^{-k\delta}$ (each sigmoid is within
    $\sigma(-k\delta) \le e^{-k\delta}$ of its step); Cybenko 1989, the bump behind the staircase.
    """
    return logistic(k * (x - a)) - logistic(k * (x - b))


# ----- estimating constants from samples --------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A constant estimated from samples on grids refined 4x per level; `grows` flags divergence."""

    value: float
    history: tuple[float, ...]
    grows: bool


def estimate_lipschitz(f: Callable[[np.ndarray], Any], domain: Domain,
                       levels: Sequence[int] | None = None) -> Estimate:
    r"""$\max |f(x_{k+1}) - f(x_k)| / h$ along each axis of grids refined 4x per level (a lower estimate of L).

    For a Lipschitz f the estimates settle; for a jump of size J they grow like J/h, for a cusp
    such as $\sqrt{|x|}$ like $h^{-1/2}$: a ratio above 1.5 between the last two levels is reported
    as ``grows``.
    """
    n = domain.dim
    if levels is None:
        levels = (256, 1024, 4096) if n == 1 else ((24, 96, 384) if n == 2 else (8, 16, 32))
    history = []
    for m in levels:
        X = domain.grid(m)
        y = evaluate(f, X).reshape((m,) * n)
        h = (domain.upper - domain.lower) / (m - 1)
        est = 0.0
        for j in range(n):
            est = max(est, float(np.max(np.abs(np.diff(y, axis=j)))) / h[j])
        history.append(est)
    grows = len(history) >= 2 and history[-1] > 1.5 * max(history[-2], 1e-300)
    return Estimate(history[-1], tuple(history), grows)


def estimate_second_derivative(f: Callable[[np.ndarray], Any], domain: Domain) -> Estimate:
    """max |second difference| / h^2 on 1-d grids refined 4x per level (a lower estimate of max |f''|)."""
    history = []
    for m in (256, 1024, 4096):
        X = domain.grid(m)
        y = evaluate(f, X)
        h = float(domain.upper[0] - domain.lower[0]) / (m - 1)
        history.append(float(np.max(np.abs(np.diff(y, 2)))) / h ** 2)
    grows = history[-1] > 1.5 * max(history[-2], 1e-300)
    return Estimate(history[-1], tuple(history), grows)


# ----- constructions ---------------------------------------------------------------------------------
def relu_interpolant(f: Callable[[np.ndarray], Any], a: float, b: float, knots: int) -> ShallowNet:
    r"""The piecewise-linear interpolant of f at `knots` + 1 uniform knots as a ReLU net of width `knots`.

    $N(x) = f(a) + \sum_{i=0}^{K-1} c_i\,\mathrm{relu}(x - t_i)$ with $c_0 = m_0$ and $c_i = m_i - m_{i-1}$,
    where $m_i$ is the slope on $[t_i, t_{i+1}]$: each unit switches on the next slope at its knot.
    """
    t = np.linspace(a, b, knots + 1)
    y = evaluate(f, t[:, None])
    slopes = np.diff(y) / np.diff(t)
    c = np.concatenate([[slopes[0]], np.diff(slopes)])
    return ShallowNet(np.ones((knots, 1)), -t[:-1], c, float(y[0]), activation="relu")


def sigmoid_staircase(f: Callable[[np.ndarray], Any], a: float, b: float, knots: int,
                      steepness: float = STAIRCASE_STEEPNESS) -> ShallowNet:
    r"""Cybenko's staircase: $N(x) = f(t_0) + \sum_{i=1}^{K} (f(t_i) - f(t_{i-1}))\,\sigma(k(x - s_i))$.

    Knots $t_i$ uniform with spacing h, steps at the midpoints $s_i = (t_{i-1}+t_i)/2$, slope k = steepness/h.
    """
    t = np.linspace(a, b, knots + 1)
    y = evaluate(f, t[:, None])
    h = (b - a) / knots
    k = steepness / h
    s = 0.5 * (t[:-1] + t[1:])
    return ShallowNet(np.full((knots, 1), k), -k * s, np.diff(y), float(y[0]), activation="sigmoid")


def ridge_features(domain: Domain, directions: int, knots: int,
                   rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""ReLU ridge units $\mathrm{relu}(u_k^\top \tilde x - \tau_{kj})$ on the box rescaled to $[0,1]^n$.

    Directions $u_k$: $\theta_k = k\pi/K$ on the circle when n = 2, Gaussian directions (from ``rng``)
    otherwise; for each, `knots` offsets $\tau_{kj}$ uniform over the range of $u_k^\top\tilde x$ on the
    cube, so that each direction carries a piecewise-linear ridge profile (sums of K ridge
    polynomials reproduce every polynomial of degree < K in two variables).
    Returned as weights (K*knots, n) and biases in the original coordinates.
    """
    n = domain.dim
    if n == 2:
        th = np.arange(directions) * np.pi / directions
        U = np.stack([np.cos(th), np.sin(th)], axis=1)
    else:
        rng = np.random.default_rng(0) if rng is None else rng
        U = rng.standard_normal((directions, n))
        U /= np.linalg.norm(U, axis=1, keepdims=True)
    lo = np.minimum(U, 0).sum(axis=1)                     # range of u . x~ over the unit cube
    hi = np.maximum(U, 0).sum(axis=1)
    frac = np.arange(knots) / knots
    tau = lo[:, None] + frac[None, :] * (hi - lo)[:, None]            # (K, knots)
    scale = domain.upper - domain.lower
    W = np.repeat(U / scale, knots, axis=0)                            # u . (x - lower)/scale
    b = -tau.reshape(-1) - np.repeat((U / scale) @ domain.lower, knots)
    return W, b


def fit_output_layer(H: np.ndarray, y: np.ndarray, ridge: float = 1e-10) -> tuple[np.ndarray, float]:
    r"""Least squares for the output layer $[c; c_0] = \arg\min \|Hc + c_0 - y\|^2 + \lambda\|c\|^2$ (λ tiny, for
    conditioning), solved through the normal equations in float64."""
    Hb = np.concatenate([H, np.ones((H.shape[0], 1))], axis=1)
    G = Hb.T @ Hb
    G[np.diag_indices_from(G)] += ridge * np.trace(G) / G.shape[0]
    sol = np.linalg.solve(G, Hb.T @ y)
    return sol[:-1], float(sol[-1])


@dataclass(frozen=True)
class GridCertificate:
    """A bound on sup |N - f| over a box from a check grid: corner errors plus per-cell terms."""

    bound: float
    max_grid_error: float
    cell_term: float
    per_axis: int


def grid_certificate(net: ShallowNet, f: Callable[[np.ndarray], Any], domain: Domain, per_axis: int,
                     lipschitz: float | None, second_derivative_bound: float | None) -> GridCertificate:
    r"""Certify $\sup_{\text{box}} |N - f|$ for a ReLU ShallowNet from a tensor check grid.

    On each grid cell with corners $v$ (side $\delta_j$) and error $e = N - f$:

    * with $\|\nabla^2 f\| \le M$: multilinear interpolation $I$ reproduces affine functions and is a
      convex combination of the corners, so $|e| \le \max_v |e(v)| + nM\max_j\delta_j^2/8
      + \sum_{i\ \text{switching}} |c_i|\,\rho_i/2$, where unit i switches in the cell when its
      pre-activation changes sign over the corners and $\rho_i = \sum_j |w_{ij}|\delta_j$ bounds the
      Jensen gap of $\mathrm{relu}$ (relu(z) = (z + |z|)/2, gap $\le E|Z - EZ|/2$);
    * with only $\mathrm{Lip}(f) \le L$: $|e| \le \max_v|e(v)| + (L + L_N^{\text{cell}})\,r$ with $r$ the
      half-diagonal and $L_N^{\text{cell}} = \|\sum_{\text{active}} c_iw_i\| + \sum_{\text{switching}}|c_i|\|w_i\|$.
    """
    if net.activation != "relu":
        raise ApproximationError("grid_certificate: certifies ReLU networks only")
    n = domain.dim
    delta = (domain.upper - domain.lower) / (per_axis - 1)
    X = domain.grid(per_axis)
    err = np.abs(net(X) - evaluate(f, X)).reshape((per_axis,) * n)
    # corner maxima per cell: max over the 2^n shifted views
    def corner_reduce(a: np.ndarray, op: Callable[..., np.ndarray]) -> np.ndarray:
        out = None
        for corner in np.ndindex(*(2,) * n):
            view = a[tuple(slice(c, c + per_axis - 1) for c in corner)]
            out = view if out is None else op(out, view)
        return out
    cell_err = corner_reduce(err, np.maximum)
    # per unit: does it switch in the cell? pre-activations on the grid, unit by unit chunks
    cells = (per_axis - 1,) * n
    switch_term = np.zeros(cells)
    active_grad = np.zeros(cells + (n,))
    rho = np.abs(net.weights) @ delta
    wnorm = np.linalg.norm(net.weights, axis=1)
    step = max(1, (16 * 2**20) // (8 * X.shape[0]))
    for s in range(0, net.width, step):
        Z = (X @ net.weights[s:s + step].T + net.biases[s:s + step]).reshape((per_axis,) * n + (-1,))
        zmin, zmax = corner_reduce(Z, np.minimum), corner_reduce(Z, np.maximum)
        switching = (zmin < 0) & (zmax > 0)
        c = net.out_weights[s:s + step]
        if second_derivative_bound is not None:
            switch_term += switching @ (np.abs(c) * rho[s:s + step] / 2)
        else:
            switch_term += switching @ (np.abs(c) * wnorm[s:s + step])
            on = (zmin >= 0) & ~switching
            active_grad += on @ (c[:, None] * net.weights[s:s + step])
    if second_derivative_bound is not None:
        cell_term = n * second_derivative_bound * float(np.max(delta)) ** 2 / 8 + switch_term
    else:
        if lipschitz is None:
            raise ApproximationError("grid_certificate: needs lipschitz or second_derivative_bound")
        r = float(np.linalg.norm(delta)) / 2
        cell_term = (lipschitz + np.linalg.norm(active_grad, axis=-1) + switch_term) * r
    total = cell_err + cell_term
    # floating point: the network's sum of W terms and f's own evaluation, a few ulps of the scale
    scale = float(np.max(np.abs(net.out_weights)) * net.width + abs(net.out_bias) + 1.0)
    bound = float(np.max(total)) + 16 * F64_EPS * scale * (1 + float(np.max(np.abs(X))))
    return GridCertificate(bound, float(np.max(err)), float(np.max(cell_term)), per_axis)


# ----- the result --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Approximation:
    """What `approximate` built: the network, its certified bound and how the bound was obtained."""

    network: ShallowNet
    error_bound: float
    certificate: str
    measured_error: float
    proved: bool
    method: str
    lipschitz: float | None = None
    second_derivative_bound: float | None = None

    @property
    def width(self) -> int:
        return self.network.width

    def __call__(self, x: Any) -> np.ndarray:
        return self.network(x)


def measured_sup_error(net: ShallowNet, f: Callable[[np.ndarray], Any], domain: Domain, spacing: float,
                       rng: np.random.Generator | None = None) -> float:
    """max |N - f| on a uniform grid of the given spacing (capped at MAX_CHECK_POINTS) plus random points."""
    n = domain.dim
    per_axis = int(min(math.ceil(float(np.max(domain.upper - domain.lower)) / spacing) + 1,
                       max(2, int(MAX_CHECK_POINTS ** (1 / n)))))
    X = domain.grid(per_axis)
    rng = np.random.default_rng(12345) if rng is None else rng
    R = domain.lower + rng.random((min(20_000, X.shape[0]), n)) * (domain.upper - domain.lower)
    worst = 0.0
    for pts in (X, R):
        for s in range(0, pts.shape[0], 200_000):
            chunk = pts[s:s + 200_000]
            worst = max(worst, float(np.max(np.abs(net(chunk) - evaluate(f, chunk)))))
    return worst


def _check_args(eps: float, activation: str, method: str, lipschitz: float | None,
                second_derivative_bound: float | None) -> None:
    if not (isinstance(eps, (int, float, np.floating)) and math.isfinite(eps) and eps > 0):
        raise ApproximationError(f"approximate: eps must be a positive finite number, got {eps!r}")
    if activation not in ("relu", "sigmoid"):
        raise ApproximationError(f"approximate: activation must be 'relu' or 'sigmoid', got {activation!r}")
    if method not in ("auto", "interpolation", "staircase", "ridge"):
        raise ApproximationError(f"approximate: method must be 'auto', 'interpolation', 'staircase' or 'ridge', "
                                 f"got {method!r}")
    for name, v in (("lipschitz", lipschitz), ("second_derivative_bound", second_derivative_bound)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise ApproximationError(f"approximate: {name} must be a finite number >= 0, got {v!r}")


def _need_width(width: int, max_width: int) -> None:
    if width > max_width:
        raise AllocationError(f"approximate: the construction needs width {width}, beyond max_width={max_width} "
                              "(memory limit); raise max_width or eps")


def approximate(f: Callable[[np.ndarray], Any], domain: Any, eps: float, activation: str = "relu",
                lipschitz: float | None = None, second_derivative_bound: float | None = None,
                method: str = "auto", max_width: int = DEFAULT_MAX_WIDTH, seed: int = 0) -> Approximation:
    r"""A one-hidden-layer network N with $\sup_{\text{domain}}|N - f| < \varepsilon$, and how we know.

    f maps an array (N, n) to N values; domain is (a, b) or [(a1, b1), ..., (an, bn)]. Constants given
    here (Lipschitz L, bound M on |f''| or the Hessian's operator norm) make the bound proved; without
    them they are estimated from samples (inflated by ESTIMATE_SAFETY) and the certificate says "not proved".
    """
    _check_args(eps, activation, method, lipschitz, second_derivative_bound)
    dom = Domain.parse(domain)
    if dom.dim > 1 and method in ("interpolation", "staircase"):
        raise ApproximationError(f"approximate: method {method!r} is one-dimensional; the domain has "
                                 f"{dom.dim} coordinates (use 'ridge' or 'auto')")
    if method == "ridge":
        if activation != "relu":
            raise ApproximationError("approximate: method 'ridge' uses ReLU units (activation='relu')")
        return _approximate_ridge(f, dom, float(eps), lipschitz, second_derivative_bound, max_width, seed)
    if dom.dim == 1:
        if activation == "sigmoid" or method == "staircase":
            return _approximate_staircase(f, dom, float(eps), lipschitz, max_width)
        return _approximate_interpolation(f, dom, float(eps), lipschitz, second_derivative_bound, max_width)
    if activation != "relu":
        raise ApproximationError("approximate: in n >= 2 dimensions only activation='relu' is implemented")
    return _approximate_ridge(f, dom, float(eps), lipschitz, second_derivative_bound, max_width, seed)


def _estimated(f: Callable[[np.ndarray], Any], dom: Domain, what: str) -> tuple[Estimate, str]:
    est = estimate_lipschitz(f, dom) if what == "L" else estimate_second_derivative(f, dom)
    hist = " -> ".join(f"{v:.3g}" for v in est.history)
    text = f"{what} estimated from samples on grids refined 4x ({hist}), times {ESTIMATE_SAFETY} (not proved)"
    return est, text


def _discontinuous(what: str, est: Estimate) -> str:
    hist = " -> ".join(f"{v:.3g}" for v in est.history)
    return (f"WARNING: the estimated {what} keeps growing as the grid is refined ({hist}): f looks discontinuous "
            "(or not Lipschitz) at this resolution. No error bound is claimed (error_bound = inf); the network "
            "is the interpolant at the knots and its error is only measured")


def _checked(r: Approximation) -> Approximation:
    """Never a false claim: a measured error above the bound voids it (the constants do not hold for f)."""
    if r.measured_error <= r.error_bound:
        return r
    text = (f"WARNING: the measured error {r.measured_error:.3g} exceeds the bound {r.error_bound:.3g}, so the "
            "constants used (given or estimated) do not hold for f; no bound is claimed (error_bound = inf). "
            + r.certificate)
    return Approximation(r.network, math.inf, text, r.measured_error, False, r.method, r.lipschitz,
                         r.second_derivative_bound)


def _approximate_interpolation(f: Callable[[np.ndarray], Any], dom: Domain, eps: float, L: float | None,
                               M: float | None, max_width: int) -> Approximation:
    a, b = float(dom.lower[0]), float(dom.upper[0])
    proved, notes = True, []
    warning = None
    if L is None and M is None:
        proved = False
        estL, tL = _estimated(f, dom, "L")
        estM, tM = _estimated(f, dom, "M")
        if estL.grows:
            warning = _discontinuous("Lipschitz constant", estL)
        else:
            L = ESTIMATE_SAFETY * estL.value
            notes.append(tL)
            if not estM.grows:
                M = ESTIMATE_SAFETY * estM.value
                notes.append(tM)
    # knot count from the bound: target eps/2 so that rounding and the safety margin stay below eps
    if warning is not None:
        knots = min(max_width, 4096)            # no bound to aim for: a fixed, fine interpolant
    else:
        candidates = []
        if L is not None:
            candidates.append(math.ceil(L * (b - a) / (2 * TARGET * eps)))          # L h / 2 <= 0.9 eps
        if M is not None:
            candidates.append(math.ceil((b - a) * math.sqrt(M / (8 * TARGET * eps))))  # M h^2 / 8 <= 0.9 eps
        knots = max(1, min(candidates))
        _need_width(knots, max_width)
    net = relu_interpolant(f, a, b, knots)
    h = (b - a) / knots
    measured = measured_sup_error(net, f, dom, h / 16)
    if warning is not None:
        cert = (f"piecewise-linear interpolation at {knots + 1} uniform knots (h = {h:.3g}) as a ReLU net "
                f"N(x) = f(a) + sum_i c_i relu(x - t_i), width {knots}. {warning}; measured sup error "
                f"{measured:.3g} on a grid of spacing h/16")
        return Approximation(net, math.inf, cert, measured, False, "interpolation", L, M)
    bound = interpolation_error_bound(h, L, M)
    rounding = 8 * F64_EPS * knots * (abs(net.out_bias) + float(np.sum(np.abs(net.out_weights))) * (b - a))
    bound += rounding
    which = []
    if L is not None:
        which.append(f"L h/2 = {L * h / 2:.3g} (L = {L:.4g})")
    if M is not None:
        which.append(f"M h^2/8 = {M * h * h / 8:.3g} (M = {M:.4g})")
    status = "proved (constants given)" if proved else "NOT proved: " + "; ".join(notes)
    cert = (f"piecewise-linear interpolation at {knots + 1} uniform knots on [{a:g}, {b:g}] (h = {h:.3g}), written "
            f"exactly as the ReLU net N(x) = f(a) + sum_i c_i relu(x - t_i) of width {knots}; interpolation "
            f"error bound min({', '.join(which)}) plus rounding {rounding:.1e} = {bound:.3g} < eps = {eps:g}: "
            f"{status}. Measured sup error {measured:.3g} on a grid of spacing h/16 and random points")
    return _checked(Approximation(net, bound, cert, measured, proved, "interpolation", L, M))


def _approximate_staircase(f: Callable[[np.ndarray], Any], dom: Domain, eps: float, L: float | None,
                           max_width: int) -> Approximation:
    a, b = float(dom.lower[0]), float(dom.upper[0])
    proved, note = True, ""
    if L is None:
        proved = False
        est, note = _estimated(f, dom, "L")
        if est.grows:
            net = sigmoid_staircase(f, a, b, min(max_width, 1024))
            measured = measured_sup_error(net, f, dom, (b - a) / 1024 / 8)
            return Approximation(net, math.inf, "sigmoid staircase (Cybenko 1989). "
                                 + _discontinuous("Lipschitz constant", est) + f"; measured {measured:.3g}",
                                 measured, False, "staircase")
        L = ESTIMATE_SAFETY * est.value
    factor = staircase_error_bound(1.0, 1.0)
    knots = max(1, math.ceil(factor * L * (b - a) / (TARGET * eps)))
    _need_width(knots, max_width)
    net = sigmoid_staircase(f, a, b, knots)
    h = (b - a) / knots
    bound = staircase_error_bound(h, L) + 8 * F64_EPS * knots * (abs(net.out_bias) + float(np.abs(
        net.out_weights).sum()))
    measured = measured_sup_error(net, f, dom, h / 8)
    status = "proved (L given)" if proved else "NOT proved: " + note
    cert = (f"sigmoid staircase (Cybenko 1989): N(x) = f(t_0) + sum_i (f(t_i) - f(t_(i-1))) sigma(k(x - s_i)), "
            f"{knots} units, h = {h:.3g}, k h = {STAIRCASE_STEEPNESS:g}; bound L h (1 + 2e^(-kh/2)/(1-e^(-kh))) "
            f"= {bound:.3g} < eps = {eps:g} with L = {L:.4g}: {status}. Measured sup error {measured:.3g} "
            f"on a grid of spacing h/8 and random points")
    return _checked(Approximation(net, bound, cert, measured, proved, "staircase", L))


RIDGE_SCHEDULE = ((6, 8), (8, 12), (10, 16), (12, 24), (16, 32), (24, 48), (32, 64), (48, 96), (64, 128))


def _approximate_ridge(f: Callable[[np.ndarray], Any], dom: Domain, eps: float, L: float | None,
                       M: float | None, max_width: int, seed: int) -> Approximation:
    n = dom.dim
    rng = np.random.default_rng(seed)
    proved, note = True, ""
    if L is None and M is None:
        proved = False
        est, note = _estimated(f, dom, "L")
        if est.grows:
            raise ApproximationError("approximate: " + _discontinuous("Lipschitz constant", est).replace(
                "the network is the interpolant at the knots and its error is only measured",
                "no network is returned in n >= 2 dimensions"))
        L = ESTIMATE_SAFETY * est.value
    max_points = 1_100_000
    per_axis = 65 if n <= 2 else 9
    best: tuple[float, ShallowNet, GridCertificate] | None = None
    for directions, knots in RIDGE_SCHEDULE:
        K = directions if n == 2 else directions * n
        _need_width(K * knots, max_width)
        W, b = ridge_features(dom, K, knots, rng)
        fit_axis = max(8, math.ceil((6 * W.shape[0]) ** (1 / n)))
        Xfit = dom.grid(fit_axis)
        c, c0 = fit_output_layer(np.maximum(Xfit @ W.T + b, 0.0), evaluate(f, Xfit))
        net = ShallowNet(W, b, c, c0, activation="relu")
        while True:
            cert = grid_certificate(net, f, dom, per_axis, L, M)
            if best is None or cert.bound < best[0]:
                best = (cert.bound, net, cert)
            if cert.bound < eps or cert.max_grid_error > eps / 2 or (2 * per_axis - 1) ** n > max_points:
                break
            per_axis = 2 * per_axis - 1           # the cell terms dominate: a finer check grid
        if best[0] < eps:
            break
    assert best is not None
    bound, net, cert = best
    measured = measured_sup_error(net, f, dom, float(np.max(dom.upper - dom.lower)) / (2 * (cert.per_axis - 1)))
    which = (f"|Hessian f| <= M = {M:.4g}: corner error + n M delta^2/8 + Jensen gaps of the units switching in a "
             "cell" if M is not None else
             f"Lip(f) <= L = {L:.4g}: corner error + (L + Lip(N on the cell)) * half-diagonal")
    status = "proved (constants given; Lip/Jensen terms of N computed exactly per cell)" if proved else \
        "NOT proved: " + note
    ok = "<" if bound < eps else ">="
    text = (f"one hidden layer of {net.width} ReLU ridge units relu(w_i.x + b_i) (fixed directions, uniform "
            f"offsets, output weights by least squares: a sum of piecewise-linear ridge profiles); certified on a "
            f"{cert.per_axis}^{n} check "
            f"grid with {which}: max grid error {cert.max_grid_error:.3g} + cell terms <= {cert.cell_term:.3g}, "
            f"bound {bound:.3g} {ok} eps = {eps:g}: {status}. Measured sup error {measured:.3g} on a grid 2x finer "
            "and random points")
    if bound >= eps:
        text += ". The bound did NOT reach eps within the search (width/grid limits)"
    return _checked(Approximation(net, bound, text, measured, proved and bound < eps, "ridge", L, M))
