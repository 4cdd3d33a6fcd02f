r"""Closed-form Gaussian expectations behind the infinite-width kernel maps.

For a pre-activation pair $(u, v) \sim \mathcal N\big(0, \begin{smallmatrix} q_1 & c \\ c & q_2
\end{smallmatrix}\big)$ each function here returns $\mathbb E[\phi(u)\phi(v)]$ (the next NNGP entry)
and/or $\mathbb E[\phi'(u)\phi'(v)]$ (the factor $\dot\Sigma$ multiplying the NTK), elementwise over
arrays of $c$ (``cov``) and of $q_1 q_2$ (``prod``) or $q_1, q_2$.

Every formula appears once, here; the layers of `dlmath.kernels.stax` call them. Numerical care:
the angle is computed as $\theta = \operatorname{atan2}(\sqrt{\max(q_1q_2-c^2, 0)}, c)$, accurate near
$\cos\theta = \pm 1$ (where $\arccos$ loses half the digits) and defined (as $\pi/2$) at zero norm,
so inputs that are equal, parallel or zero give finite kernels, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = [
    "arccos_angle",
    "arccos_kernel_degree0",
    "arccos_kernel_degree1",
    "erf_kernel",
    "gauss_hermite_kernel",
    "gelu_kernel",
    "relu_kernel",
    "sin_kernel",
]


def arccos_angle(norms: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""$(\|u\|\|v\|\sin\theta,\ \theta)$ with $\cos\theta = \rho = c/(\|u\|\|v\|)$, computed without $\arccos$.

    ``norms`` is $\|u\|\|v\| = \sqrt{q_1}\sqrt{q_2}$ (never $q_1q_2$, which overflows float32 when the variances
    pass 1e19). $\rho$ is clipped to $[-1, 1]$, $\sin\theta = \sqrt{(1-\rho)(1+\rho)}$ and
    $\theta = \operatorname{atan2}(\sin\theta, \rho) \in [0, \pi]$, accurate near $\rho = \pm 1$ where $\arccos$ loses
    half the digits; at zero norm $\rho = 0$, $\theta = \pi/2$ (orthogonal to everything), as in neural-tangents.
    """
    norms = np.asarray(norms)
    if norms.size and norms.min() > 0:            # the usual case: one division, no masks
        rho = np.asarray(cov / norms)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.asarray(np.where(norms > 0, cov / np.where(norms > 0, norms, 1), 0.0))
    rho = rho.astype(np.result_type(cov, norms), copy=False)
    np.clip(rho, -1, 1, out=rho)
    sin = np.asarray(1 - rho)
    sin *= 1 + rho                                 # (1 - rho)(1 + rho): exact 1 - rho near rho = 1 (Sterbenz)
    np.sqrt(sin, out=sin)
    theta = np.arctan2(sin, rho)
    sin *= norms
    return sin, theta


def arccos_kernel_degree0(theta: np.ndarray) -> np.ndarray:
    r"""Arc-cosine kernel of degree 0: $k_0(x, y) = 1 - \theta/\pi = 2\,\mathbb E[\Theta(w\cdot x)\Theta(w\cdot y)]$.

    Cho & Saul (2009), *Kernel methods for deep learning*, eq. (4) with $n = 0$; $\Theta$ the step function,
    $w \sim \mathcal N(0, I)$. It is twice the ReLU derivative kernel $\dot\Sigma$.
    """
    return 1 - theta / np.pi


def arccos_kernel_degree1(s: np.ndarray, theta: np.ndarray, cov: np.ndarray) -> np.ndarray:
    r"""Arc-cosine kernel of degree 1: $k_1(x, y) = \frac1\pi\|x\|\|y\|\big(\sin\theta + (\pi-\theta)\cos\theta\big)
    = 2\,\mathbb E[\mathrm{ReLU}(w\cdot x)\,\mathrm{ReLU}(w\cdot y)]$.

    Written as $(s + (\pi - \theta)\,c)/\pi$ with $s = \|x\|\|y\|\sin\theta$, $c = x\cdot y$ (no division by the
    norms, so zero inputs are safe). Cho & Saul (2009), eq. (4) with $n = 1$.
    """
    return (s + (np.pi - theta) * cov) / np.pi


def relu_kernel(norms: np.ndarray, cov: np.ndarray, a: float = 0.0, b: float = 1.0
                ) -> tuple[np.ndarray, np.ndarray]:
    r"""$\big(\mathbb E[\phi(u)\phi(v)],\ \mathbb E[\phi'(u)\phi'(v)]\big)$ for $\phi(x) = a\min(x,0) + b\max(x,0)$.

    Writing $\phi(x) = \tfrac{a+b}2 x + \tfrac{b-a}2 |x|$ and $|x| = 2\,\mathrm{ReLU}(x) - x$ gives
    $\mathbb E[\phi\phi] = \tfrac{(a-b)^2}{2} k_1 + ab\,c$ and $\mathbb E[\phi'\phi'] = \tfrac{(a-b)^2}2 k_0 + ab$
    (ReLU: $a=0, b=1$; leaky ReLU: $a=\alpha$; $|x|$: $a=-1$). Cho & Saul (2009); Tsuchida, Roosta & Gallagher
    (2018), *Invariance of weight distributions in rectified MLPs*. ``norms`` = $\sqrt{q_1}\sqrt{q_2}$.
    """
    s, theta = arccos_angle(norms, cov)
    h = (a - b) ** 2 / 2
    nngp = h * arccos_kernel_degree1(s, theta, cov)
    dot = h * arccos_kernel_degree0(theta)
    if a * b != 0:
        nngp = nngp + a * b * cov
        dot = dot + a * b
    return nngp, dot


def erf_kernel(q1: np.ndarray, q2: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""$\mathbb E[\operatorname{erf}(u)\operatorname{erf}(v)] = \frac2\pi\arcsin\frac{2c}{\sqrt{(1+2q_1)(1+2q_2)}}$ and
    $\mathbb E[\operatorname{erf}'(u)\operatorname{erf}'(v)] = \frac4\pi\big((1+2q_1)(1+2q_2) - 4c^2\big)^{-1/2}$.

    Williams (1997), *Computing with infinite networks*; the arcsine as $\operatorname{atan2}(2c, \sqrt{\cdot})$,
    which stays finite when $|2c| \to \sqrt{(1+2q_1)(1+2q_2)}$. ``q1``, ``q2`` broadcast against ``cov``.
    """
    prod = (1 + 2 * q1) * (1 + 2 * q2)
    root = np.sqrt(np.maximum(prod - 4 * cov * cov, 0))
    nngp = (2 / np.pi) * np.arctan2(2 * cov, root)
    with np.errstate(divide="ignore"):
        dot = (4 / np.pi) / root
    return nngp, dot


def gelu_kernel(q1: np.ndarray, q2: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact GELU ($x\,\Phi(x)$) kernels. With $P = (1+q_1)(1+q_2)$, $\Delta = \sqrt{P - c^2}$,
    $\theta = \operatorname{atan2}(c, \Delta)$:
    $\mathbb E[\phi\phi] = \frac c4 + \frac1{2\pi}\Big(c\,\theta + \frac{c^2 + q_1q_2\Delta^2}{P\,\Delta}\Big)$,
    $\mathbb E[\phi'\phi'] = \frac14 + \frac\theta{2\pi} + \frac{c}{2\pi\Delta}\Big(\frac1{\Delta^2}
    + \frac{1-q_1q_2}{P} + 1\Big)$.

    Tsuchida, Pearce, van der Heide, Roosta & Gallagher (2021), *Avoiding kernel fixed points: computing with
    ELU and GELU infinite networks* (AAAI); the same expressions as neural-tangents' ``stax.Gelu``.
    """
    P = (1 + q1) * (1 + q2)
    prod = q1 * q2
    d2 = np.maximum(P - cov * cov, np.finfo(np.result_type(cov, np.float32)).tiny)
    d = np.sqrt(d2)
    theta = np.arctan2(cov, d)
    nngp = cov / 4 + (cov * theta + (cov * cov + prod * d2) / (P * d)) / (2 * np.pi)
    dot = 0.25 + theta / (2 * np.pi) + cov / (2 * np.pi * d) * (1 / d2 + (1 - prod) / P + 1)
    return nngp, dot


def sin_kernel(q1: np.ndarray, q2: np.ndarray, cov: np.ndarray, a: float = 1.0, b: float = 1.0,
               c: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    r"""For $\phi(x) = a\sin(bx + c)$, with $s_\pm = e^{-b^2(q_1+q_2 \mp 2\,\mathrm{cov})/2}$:
    $\mathbb E[\phi\phi] = \frac{a^2}2\big(s_+ - s_-\cos 2c\big)$,
    $\mathbb E[\phi'\phi'] = \frac{a^2b^2}2\big(s_+ + s_-\cos 2c\big)$.

    From $\sin\alpha\sin\beta = \frac12(\cos(\alpha-\beta) - \cos(\alpha+\beta))$ and
    $\mathbb E[\cos(tz)] = e^{-t^2\mathrm{Var}(z)/2}$ (the Gaussian characteristic function); cf. Pearce et al.
    (2019), *Expressive priors in Bayesian neural networks*.
    """
    half = (q1 + q2) / 2
    s_plus = np.exp(b * b * (cov - half))
    s_minus = np.exp(-b * b * (cov + half)) * math.cos(2 * c)
    return a * a / 2 * (s_plus - s_minus), a * a * b * b / 2 * (s_plus + s_minus)


def gauss_hermite_kernel(fn: Callable[[np.ndarray], np.ndarray], dfn: Callable[[np.ndarray], np.ndarray] | None,
                         q1: np.ndarray, q2: np.ndarray, cov: np.ndarray, degree: int = 40
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    r"""$\mathbb E[f(u)f(v)]$ and $\mathbb E[f'(u)f'(v)]$ by tensor Gauss–Hermite quadrature of the given degree.

    $u = \sqrt{q_1}\,z_1$, $v = \sqrt{q_2}\,(\rho z_1 + \sqrt{1-\rho^2}\,z_2)$ with $\rho = c/\sqrt{q_1q_2}$ and
    $z_i \sim \mathcal N(0,1)$; $\mathbb E[g(z)] \approx \pi^{-1/2}\sum_k w_k g(\sqrt2 t_k)$ with the physicists'
    nodes $t_k$, exact for polynomials of degree $< 2\,$``degree`` (Golub & Welsch 1969). Accurate for smooth
    $f$ (tanh, sigmoid, softplus: ~1e-10 at degree 40 for moderate variances); slow to converge for kinks.
    Cost: ``degree**2`` evaluations per entry.
    """
    t, w = np.polynomial.hermite.hermgauss(degree)
    z = np.sqrt(2.0) * t
    w = w / np.sqrt(np.pi)
    shape = np.broadcast(q1, q2, cov).shape
    q1b, q2b, cb = (np.broadcast_to(np.asarray(v, np.float64), shape).ravel() for v in (q1, q2, cov))
    norm = np.sqrt(q1b * q2b)
    rho = np.clip(np.divide(cb, norm, out=np.zeros_like(cb), where=norm > 0), -1.0, 1.0)
    root = np.sqrt(1 - rho * rho)
    u = np.sqrt(q1b)[:, None] * z[None, :]                                        # (E, K)
    v = np.sqrt(q2b)[:, None, None] * (rho[:, None, None] * z[None, :, None] + root[:, None, None] * z[None, None, :])
    ww = w[:, None] * w[None, :]

    def expect(g: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        gu = np.asarray(g(u))                                                      # (E, K)
        gv = np.asarray(g(v))                                                      # (E, K, K)
        return np.einsum("ek,ekj,kj->e", gu, gv, ww).reshape(shape)
    nngp = expect(fn)
    dot = None if dfn is None else expect(dfn)
    return nngp, dot
