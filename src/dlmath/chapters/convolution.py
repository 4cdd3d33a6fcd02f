r"""Chapter 8 — Convolutional networks: the convolution integral and its discrete forms, cross-correlation,
the convolution theorem, equivariance, output sizes, receptive fields, parameter counts, Toeplitz matrices.

Conventions are PyTorch's: weights ``(C_out, C_in, k_h, k_w)``, inputs ``(N, C, H, W)``, and
deep-learning "convolution" is cross-correlation,
$Y_{o,i,j} = \sum_{c,m,n} X_{c,\,is+m,\,js+n} K_{o,c,m,n} + b_o$.

The formulas live in `dlmath.nn.conv_math`; the oracles here are SciPy (``scipy.signal``,
``scipy.linalg.toeplitz``, ``scipy.integrate.quad``), NumPy's FFT, closed forms and exact
enumeration. PyTorch (a test dependency only) checks the same functions in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import dlmath as dm

from .. import nn
from ..measure import max_relative_error as _rel
from ..nn import conv_math as cm
from ..nn import functional as F
from ..verify import CrossCheck, Evidence, PrintedForm, RunContext, claim

F64_EPS = float(np.finfo(np.float64).eps)


# ----- the subject: dlmath's 2-D convolution (cross-correlation) ------------------------------------------
def conv2d(x: Any, weight: np.ndarray, bias: np.ndarray | None = None, stride: int | tuple[int, int] = 1,
           padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1, padding_mode: str = "zeros") -> Any:
    """dlmath's ``F.conv2d``; ``padding_mode='circular'`` pads with ``F.pad(mode='circular')`` first, as nn.Conv2d."""
    if padding_mode == "circular":
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        return F.conv2d(F.pad(x, (pw, pw, ph, ph), mode="circular"), weight, bias, stride, 0, dilation)
    return F.conv2d(x, weight, bias, stride, padding, dilation)


def _data(x: Any) -> np.ndarray:
    while hasattr(x, "data") and not isinstance(x, np.ndarray):
        x = x.data
    return np.asarray(x)


def _gaussian(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


# ----- claims ----------------------------------------------------------------------------------------------
@claim("convolution.riemann-sum",
       title="The discrete convolution times dx is the Riemann sum of the convolution integral",
       statement=r"(f*g)(x) = \int f(t)\,g(x-t)\,dt \approx \Delta x\sum_j f(t_j)\,g(x-t_j);\ "
                 r"\mathcal N(\mu_1,\sigma_1^2) * \mathcal N(\mu_2,\sigma_2^2) = "
                 r"\mathcal N(\mu_1+\mu_2,\sigma_1^2+\sigma_2^2)",
       source="Goodfellow, Bengio & Courville (2016), §9.1, eq. 9.1-9.3; Bracewell (2000), The Fourier Transform "
              "and its Applications, ch. 3")
def riemann_sum(ctx: RunContext) -> Evidence:
    """Chapter C1: two Gaussians on a grid; dx * np.convolve vs the closed-form Gaussian; quad at a few points."""
    from scipy import integrate

    rng = ctx.rng
    dx = 0.005 if ctx.thorough else 0.01
    t = np.arange(-12.0, 12.0 + dx / 2, dx)
    # |mean| <= 1.5 and sigma <= 1: the grid's ends are >= 10.5 sigma out, where the densities are < 1e-24
    (m1, m2), (s1, s2) = rng.uniform(-1.5, 1.5, 2), rng.uniform(0.4, 1.0, 2)
    xs, vals = cm.convolution_riemann_sum(_gaussian(t, m1, s1), _gaussian(t, m2, s2), dx, t[0], t[0])
    exact = _gaussian(xs, m1 + m2, float(np.hypot(s1, s2)))
    err = _rel(vals, exact)
    idx = np.searchsorted(xs, rng.uniform(-3, 3, 5))  # five grid points near the bulk
    probe_exact = _gaussian(xs[idx], m1 + m2, float(np.hypot(s1, s2)))
    quad_at_grid = np.array([integrate.quad(lambda u, x=x: _gaussian(u, m1, s1) * _gaussian(x - u, m2, s2),
                                            -np.inf, np.inf, epsabs=1e-14)[0] for x in xs[idx]])
    riemann_at_grid = vals[idx]
    quad_err = max(_rel(quad_at_grid, probe_exact), _rel(riemann_at_grid, quad_at_grid))
    # dlmath's conv1d is cross-correlation: with the kernel reversed and 'full' padding it is the same sum
    f_s, g_s = _gaussian(t, m1, s1), _gaussian(t, m2, s2)
    via_conv1d = dx * _data(F.conv1d(f_s[None, None], g_s[None, None, ::-1].copy(), padding=g_s.size - 1))[0, 0]
    conv1d_err = _rel(via_conv1d, vals)
    return Evidence.at_most(
        err, 1e-10,
        "a Riemann sum of a smooth, rapidly decaying integrand converges faster than any power of dx "
        "(Euler-Maclaurin: ~exp(-2 pi^2 sigma^2/dx^2)); on a grid of ±12 the truncated tails are below 1e-24, so "
        "what remains is rounding of a 2400-term sum; 1e-10 leaves margin",
        f"N({m1:.2f}, {s1:.2f}^2) * N({m2:.2f}, {s2:.2f}^2), dx={dx}, grid ±12: max |dx·np.convolve - closed form| "
        f"/ peak = {err:.1e} over the whole output grid. scipy.integrate.quad of the integral at 5 grid points "
        f"agrees with the "
        f"closed form and the Riemann sum to {quad_err:.1e} (relative to the largest); dlmath's conv1d with the "
        f"kernel reversed and padding len-1 gives the same sums to {conv1d_err:.1e}.",
        cross_checks=(CrossCheck("scipy-quad", quad_err, 1e-10, "adaptive quadrature with epsabs=1e-14"),
                      CrossCheck("conv1d-reversed-kernel", conv1d_err, 1e-12,
                                 "the same 2401-term sums in another order: rounding ~ eps sqrt(n) of the peak")))


@claim("convolution.cross-correlation",
       title="Deep-learning 'convolution' is cross-correlation: convolution with the kernel rotated by 180°",
       statement=r"Y_{o,i,j} = \sum_{c,m,n} X_{c,i+m,j+n}K_{o,c,m,n} + b_o = "
                 r"\sum_c (X_c \star K_{o,c})_{ij} + b_o = \sum_c (X_c * \mathrm{rot}_{180}K_{o,c})_{ij} + b_o",
       source="Goodfellow, Bengio & Courville (2016), §9.1 (eq. 9.6 vs 9.4); PyTorch's Conv2d documentation",
       erratum=True)
def cross_correlation(ctx: RunContext) -> Evidence:
    """Chapter C2, C3, erratum E2: dlmath's conv2d vs scipy.signal.correlate2d / convolve2d per channel pair."""
    from scipy import signal

    rng = ctx.rng
    C_in, C_out, H, W = 2, 3, 9, 10
    x, K, b = rng.standard_normal((C_in, H, W)), rng.standard_normal((C_out, C_in, 3, 3)), rng.standard_normal(C_out)
    y = _data(conv2d(x[None], K, b))[0]
    corr = np.array([sum(signal.correlate2d(x[c], K[o, c], "valid") for c in range(C_in)) + b[o]
                     for o in range(C_out)])
    flipped = np.array([sum(signal.convolve2d(x[c], K[o, c, ::-1, ::-1], "valid") for c in range(C_in)) + b[o]
                        for o in range(C_out)])
    printed = np.array([sum(signal.convolve2d(x[c], K[o, c], "valid") for c in range(C_in)) + b[o]
                        for o in range(C_out)])
    err, err_flip, err_printed = _rel(y, corr), _rel(y, flipped), _rel(y, printed)
    tol = 1e2 * F64_EPS
    return Evidence.at_most(
        err, tol, "sums of 18 products in different orders: ~100 ulps",
        f"x ({C_in}, {H}, {W}), K ({C_out}, {C_in}, 3, 3), bias: max rel. error of dlmath's conv2d against "
        f"sum_c correlate2d(X_c, K_oc, 'valid') + b_o is {err:.1e}; against convolve2d with the kernel rotated "
        f"180° {err_flip:.1e}; against true convolution with the unflipped kernel (the printed pairing) "
        f"{err_printed:.2f}.",
        cross_checks=(CrossCheck("convolve2d-rot180", err_flip, tol, "as the main check"),),
        printed=PrintedForm(r"Y_{ij} = \sum_{m,n} I(i-m, j-n)\,K(m,n)\ \text{(the 3x3 example's operation)}",
                            err_printed, "Goodfellow, Bengio & Courville (2016), §9.1"))


@claim("convolution.fft-theorem",
       title="Convolution theorem: circular convolution is a pointwise product of DFTs",
       statement=r"\mathcal F(x \circledast k) = \mathcal F(x)\cdot\mathcal F(k),\quad "
                 r"(x\circledast k)_{n} = \sum_{j} k_j\,x_{(n-j)\bmod N}",
       source="Oppenheim & Schafer (2010), Discrete-Time Signal Processing, §8.6.5; "
              "Mathieu, Henaff & LeCun (2014), Fast Training of Convolutional Networks through FFTs")
def fft_theorem(ctx: RunContext) -> Evidence:
    """dlmath's conv2d with circular padding and the flipped kernel vs numpy.fft; linear conv vs fftconvolve."""
    from scipy import signal

    rng = ctx.rng
    H, W, kh, kw = 12, 10, 3, 4
    x, k = rng.standard_normal((H, W)), rng.standard_normal((kh, kw))
    # cross-correlation with rot180(k) and circular padding k-1 is circular convolution (crop the first H x W)
    circ = _data(conv2d(x[None, None], k[None, None, ::-1, ::-1].copy(), padding=(kh - 1, kw - 1),
                        padding_mode="circular"))[0, 0, :H, :W]
    k_pad = np.zeros((H, W))
    k_pad[:kh, :kw] = k
    via_fft = np.fft.ifft2(np.fft.fft2(x) * np.fft.fft2(k_pad)).real
    err = _rel(circ, via_fft)
    # linear convolution: zero padding k-1 on each side, vs scipy's FFT-based linear convolution
    full = _data(conv2d(x[None, None], k[None, None, ::-1, ::-1].copy(), padding=(kh - 1, kw - 1)))[0, 0]
    err_lin = _rel(full, signal.fftconvolve(x, k, mode="full"))
    tol = 1e3 * F64_EPS
    return Evidence.at_most(
        err, tol, "an FFT of n points has rounding error ~eps log2(n) relative to the norm; 1000 ulps leaves margin",
        f"x ({H}, {W}), k ({kh}, {kw}): circular convolution by dlmath's conv2d (padding_mode='circular', "
        f"kernel rotated 180°) vs ifft2(fft2(x) fft2(k)): max rel. error {err:.1e}; linear ('full') convolution "
        f"with zero padding vs scipy.signal.fftconvolve: {err_lin:.1e}.",
        cross_checks=(CrossCheck("linear-convolution-fftconvolve", err_lin, tol, "as the main check"),))


@claim("convolution.translation-equivariance",
       title="Convolution is translation-equivariant (exactly with circular padding), not invariant",
       statement=r"\mathrm{conv}(T_s x) = T_s\,\mathrm{conv}(x)\ \text{(circular padding; zero padding: away from "
                 r"the border)};\ \text{invariance only after global pooling}",
       source="Goodfellow, Bengio & Courville (2016), §9.2-9.3", erratum=True)
def translation_equivariance(ctx: RunContext) -> Evidence:
    """Erratum E1: shift, then convolve, vs convolve, then shift; interior and border with zero padding."""
    rng = ctx.rng
    C_in, C_out, H, W = 2, 3, 12, 12
    s = (2, 3)
    x, K, b = rng.standard_normal((1, C_in, H, W)), rng.standard_normal((C_out, C_in, 3, 3)), rng.standard_normal(C_out)
    shifted = np.roll(x, s, axis=(2, 3))
    y_c = _data(conv2d(x, K, b, padding=1, padding_mode="circular"))
    y_c_shift = _data(conv2d(shifted, K, b, padding=1, padding_mode="circular"))
    err_circ = _rel(y_c_shift, np.roll(y_c, s, axis=(2, 3)))
    # zero padding: equal where neither output reads padding or wrapped input, i.e. rows s_h+1..H-2
    y_z, y_z_shift = _data(conv2d(x, K, b, padding=1)), _data(conv2d(shifted, K, b, padding=1))
    rolled = np.roll(y_z, s, axis=(2, 3))
    interior = np.zeros((H, W), dtype=bool)
    interior[s[0] + 1:H - 1, s[1] + 1:W - 1] = True
    err_interior = _rel(y_z_shift[..., interior], rolled[..., interior])
    border_gap = _rel(y_z_shift[..., ~interior], rolled[..., ~interior])
    invariance_gap = _rel(y_c_shift, y_c)  # the printed "invariance": conv(T x) = conv(x)
    gap_pool = _rel(y_c_shift.mean(axis=(2, 3)), y_c.mean(axis=(2, 3)))
    tol = 1e2 * F64_EPS
    return Evidence.at_most(
        err_circ, tol, "the same products summed in a different order: ~100 ulps",
        f"x ({C_in}, {H}, {W}), 3x3 kernels, shift {s}: circular padding max rel. |conv(T x) - T conv(x)| = "
        f"{err_circ:.1e}; zero padding: interior {err_interior:.1e}, border {border_gap:.2f}. The printed "
        f"invariance conv(T x) = conv(x) is off by {invariance_gap:.2f}; after global average pooling the "
        f"circular conv's output is invariant to {gap_pool:.1e}.",
        cross_checks=(
            CrossCheck("zero-padding-interior", err_interior, tol, "as the main check"),
            CrossCheck("zero-padding-border-differs", border_gap, 1e-3,
                       "the border reads zeros in one image and data in the other: O(1) differences, so "
                       "equivariance does NOT hold there", ">="),
            CrossCheck("global-pooling-invariant", gap_pool, tol, "sums of the same numbers: rounding only"),
        ),
        printed=PrintedForm(r"\mathrm{conv}(T_s x) = \mathrm{conv}(x)\ \text{(\"translation invariance\")}",
                            invariance_gap, "Goodfellow, Bengio & Courville (2016), §9.2-9.3"))


def _window_positions(size: int, k: int, s: int, p: int, d: int) -> int:
    """Count the window positions by enumeration: starts i*s with the last tap inside the padded input."""
    return sum(1 for start in range(0, size + 2 * p, s) if start + d * (k - 1) <= size + 2 * p - 1)


@claim("convolution.output-size",
       title="Output size floor((H + 2p - k)/s) + 1; 'same' padding floor(k/2) only for odd k",
       statement=r"H_{out} = \Big\lfloor\frac{H_{in} + 2p - d(k-1) - 1}{s}\Big\rfloor + 1;\ "
                 r"p = \lfloor k/2\rfloor \Rightarrow H_{out} = H_{in}\ \text{iff}\ k\ \text{odd};\ "
                 r"p = k-1\Rightarrow H_{out} = H_{in}+k-1",
       source="Dumoulin & Visin (2016), A guide to convolution arithmetic for deep learning, §2; PyTorch's "
              "Conv2d documentation; Krizhevsky, Sutskever & Hinton (2012), AlexNet, Fig. 2", erratum=True)
def output_size(ctx: RunContext) -> Evidence:
    """Chapter C10, C11, erratum E4: formula vs dlmath's conv output shapes and enumeration of window positions."""
    rng = ctx.rng
    n_cfg = 200 if ctx.thorough else 40
    mismatches, checked, pooled_checked = 0, 0, 0
    for _ in range(n_cfg):
        H, k, s, p, d = (int(rng.integers(4, 16)), int(rng.integers(1, 6)), int(rng.integers(1, 4)),
                         int(rng.integers(0, 3)), int(rng.integers(1, 3)))
        if H + 2 * p < d * (k - 1) + 1:
            continue
        formula = cm.conv_output_size(H, k, s, p, d)
        shape = np.shape(_data(conv2d(np.zeros((1, 1, H, H + 1)), np.ones((1, 1, k, k)), None, s, p, d)))
        mismatches += (formula != _window_positions(H, k, s, p, d)) + (shape[2] != formula)
        mismatches += shape[3] != cm.conv_output_size(H + 1, k, s, p, d)
        if 2 * p <= k:  # pooling windows: padding at most half the kernel (PyTorch's rule)
            pooled = np.shape(_data(F.max_pool2d(np.zeros((1, 1, H, H)), k, s, p, d)))
            mismatches += pooled[2] != formula
            pooled_checked += 1
        checked += 1
    examples = {"conv 32, k=5": (cm.conv_output_size(32, 5), 28),
                "pool 28, k=2, s=2": (cm.conv_output_size(28, 2, 2), 14),
                "AlexNet 227, k=11, s=4": (cm.conv_output_size(227, 11, 4), 55)}
    mismatches += sum(a != b for a, b in examples.values())
    # C15, AlexNet from a 227 input: conv 11/4, pool 3/2, conv 5 p2, pool 3/2, 3 x conv 3 p1, pool 3/2
    alex = [227]
    for k, s, p in [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)]:
        alex.append(cm.conv_output_size(alex[-1], k, s, p))
    alex_expected = [227, 55, 27, 27, 13, 13, 13, 13, 6]  # Krizhevsky et al. (2012), Fig. 2; 6*6*256 = 9216
    mismatches += sum(a != b for a, b in zip(alex, alex_expected, strict=True))
    # 'same' (p = floor(k/2), stride 1) and 'full' (p = k-1) padding, against np.convolve's lengths
    H = 10
    same_odd = sum(abs(cm.conv_output_size(H, k, 1, k // 2) - H) for k in (1, 3, 5, 7))
    same_printed = sum(abs(cm.conv_output_size(H, k, 1, k // 2) - H) for k in range(1, 8))
    full = sum(abs(cm.conv_output_size(H, k, 1, k - 1) - len(np.convolve(np.ones(H), np.ones(k), "full")))
               for k in range(1, 8))
    mismatches += same_odd + full
    return Evidence.at_most(
        mismatches, 0, "integer arithmetic: exact",
        f"{checked} random (H, k, s, p, d): formula vs dlmath's conv2d output shape and vs enumeration of window "
        f"positions ({pooled_checked} of them also vs F.max_pool2d's output shape); examples "
        f"{', '.join(f'{n} -> {v[0]}' for n, v in examples.items())} (227 is what makes "
        f"AlexNet's first layer integral: (224-11)/4+1 = 54.25; the whole AlexNet chain {alex}, 6*6*256 = 9216 "
        f"inputs to the first FC layer); 'full' padding k-1 gives len(np.convolve(., "
        f"'full')). 'Same' padding floor(k/2): output - input summed over odd k = {same_odd}; over k = 1..7 "
        f"= {same_printed} (even k gives H+1: needs asymmetric padding, as PyTorch's padding='same').",
        printed=PrintedForm(r"p = \lfloor k/2\rfloor\ \text{gives 'same' output size (any k)}", same_printed,
                            "Dumoulin & Visin (2016), §2.2.1 (half padding, odd k)"))


def _gradient_support(layers: Sequence[tuple[int, int, int]], rng: np.random.Generator) -> tuple[int, int]:
    """Rows and columns of the input that the centre output pixel depends on (positive random kernels)."""
    rf = cm.receptive_field(layers)
    size = rf + 6
    kernels = [rng.uniform(0.5, 1.5, (1, 1, k, k)) for k, _, _ in layers]
    sizes = [size]
    for k, s, d in layers:
        sizes.append(cm.conv_output_size(sizes[-1], k, s, 0, d))
    centre = sizes[-1] // 2

    def centre_pixel(x: Any) -> Any:
        for K, (_, s, d) in zip(kernels, layers, strict=True):
            x = conv2d(x, K, None, s, 0, d)
        return x[0, 0, centre, centre]
    g = np.abs(_data(dm.grad(centre_pixel)(np.ones((1, 1, size, size)))))[0, 0]
    rows, cols = np.nonzero(g.sum(axis=1))[0], np.nonzero(g.sum(axis=0))[0]
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


@claim("convolution.receptive-field",
       title="Receptive field r_l = r_{l-1} + (k_l - 1) prod_{i<l} s_i, vs the support of an input gradient",
       statement=r"r_0 = 1,\quad r_l = r_{l-1} + d_l(k_l-1)\prod_{i<l}s_i;\ "
                 r"3\times(3\times3, s{=}1)\to 7;\ [(3,1),(2,2)]\times3 \to 22",
       source="Araujo, Norris & Sim (2019), Computing Receptive Fields of Convolutional Neural Networks, Distill; "
              "Simonyan & Zisserman (2015), VGG, §2.3 (two 3x3 layers see 5x5)")
def receptive_field_claim(ctx: RunContext) -> Evidence:
    """Chapter C7, C17, C18: formula vs the measured support of d y_centre / d x through dlmath's conv2d."""
    rng = ctx.rng
    stacks: dict[str, list[tuple[int, int, int]]] = {
        "3 x (3x3, s1)": [(3, 1, 1)] * 3,
        "[(3,1),(2,2)] x 3 (C18)": [(3, 1, 1), (2, 2, 1)] * 3,
        "2 x (3x3) (C17)": [(3, 1, 1)] * 2,
        "5x5": [(5, 1, 1)],
        "dilated [(3,1,2),(3,2,1),(2,1,3)]": [(3, 1, 2), (3, 2, 1), (2, 1, 3)],
    }
    for _ in range(6 if ctx.thorough else 2):
        depth = int(rng.integers(1, 4))
        stacks[f"random {len(stacks)}"] = [(int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(1, 3)))
                                           for _ in range(depth)]
    worst, lines = 0, []
    for name, layers in stacks.items():
        formula = cm.receptive_field(layers)
        measured = _gradient_support(layers, rng)
        worst = max(worst, abs(measured[0] - formula), abs(measured[1] - formula))
        lines.append(f"{name}: formula {formula}, measured {measured[0]}x{measured[1]}")
    expected = {"3 x (3x3, s1)": 7, "[(3,1),(2,2)] x 3 (C18)": 22}
    worst_examples = max(abs(cm.receptive_field(stacks[n]) - v) for n, v in expected.items())
    return Evidence.at_most(
        worst, 0, "support sizes are integers: exact (positive kernels, so no cancellation hides a pixel)",
        "; ".join(lines) + ". Two 3x3 layers see 5x5 like one 5x5 layer, with 2·9 = 18 < 25 weights per channel pair.",
        cross_checks=(CrossCheck("printed-examples", worst_examples, 0, "the chapter's values 7 and 22: exact"),))


def effective_receptive_field_variance(kernels: Sequence[np.ndarray]) -> float:
    r"""$\sigma^2_{ERF} = \sum_l \mathrm{Var}_l$: a stack of linear stride-1 convolutions with non-negative kernels
    has input gradient $\propto K_1 * K_2 * \cdots * K_L$, and the variances of convolved distributions add
    (along one axis, with each normalised kernel's row marginal as the distribution). Luo et al. (2016) §2.
    """
    total = 0.0
    for K in kernels:
        marginal = np.asarray(K, dtype=np.float64).sum(axis=1)
        marginal = marginal / marginal.sum()
        pos = np.arange(marginal.size)
        mean = float(marginal @ pos)
        total += float(marginal @ (pos - mean) ** 2)
    return total


@claim("convolution.effective-receptive-field",
       title="The effective receptive field grows like sqrt(depth), the theoretical one like depth",
       statement=r"\Big|\frac{\partial y_{centre}}{\partial x}\Big| \propto K_1 * \cdots * K_L:\ "
                 r"\sigma_{ERF}^2 = \sum_l \mathrm{Var}(K_l) = \tfrac23 L\ \text{(uniform } 3\times3),\ r = 2L+1",
       source="Luo, Li, Urtasun & Zemel (2016), Understanding the Effective Receptive Field in Deep CNNs, NeurIPS")
def effective_receptive_field(ctx: RunContext) -> Evidence:
    """Chapter C8: measured std of |d y_centre/dx| (dlmath autodiff) vs the variance sum, and its sqrt(L) growth."""
    rng = ctx.rng
    depths = (1, 2, 4, 8, 16) if ctx.thorough else (1, 2, 4, 8)
    worst, stds, lines = 0.0, [], []
    for L in depths:
        for uniform in (True, False):
            kernels = [np.ones((3, 3)) if uniform else rng.uniform(0.2, 1.0, (3, 3)) for _ in range(L)]
            size = 2 * L + 3

            def centre(x: Any, kernels: list[np.ndarray] = kernels) -> Any:
                for K in kernels:
                    x = conv2d(x, K[None, None])
                return x[0, 0, 1, 1]
            g = np.abs(_data(dm.grad(centre)(np.zeros((1, 1, size, size)))))[0, 0]
            rows = g.sum(axis=1) / g.sum()
            pos = np.arange(size)
            var = float(rows @ (pos - rows @ pos) ** 2)
            closed = effective_receptive_field_variance(kernels)
            worst = max(worst, abs(var - closed) / closed)
            if uniform:
                stds.append(np.sqrt(var))
                lines.append(f"L={L}: std {np.sqrt(var):.3f} (sqrt(2L/3) = {np.sqrt(2 * L / 3):.3f}), r = {2 * L + 1}")
    slope = float(np.polyfit(np.log(depths), np.log(stds), 1)[0])
    return Evidence.at_most(
        worst, 1e3 * F64_EPS, "the variance of a product of the same numbers, summed differently: ~1000 ulps",
        f"3x3 kernels, uniform and random positive; max rel. error of the measured ERF variance (row marginal of "
        f"|grad|) vs the sum of the kernels' variances {worst:.1e}. Uniform: " + "; ".join(lines)
        + f". log-log slope of the ERF std in L: {slope:.3f} (sqrt: 0.5); the theoretical field grows with slope 1.",
        cross_checks=(CrossCheck("sqrt-depth-growth", abs(slope - 0.5), 1e-9,
                                 "std = sqrt(2L/3) exactly for uniform kernels, so the slope is 1/2 up to rounding"),))


def _vgg_parameter_count(config: Sequence[int | str]) -> tuple[int, int, int]:
    """Parameters, conv layers and FC layers of a VGG (3x3 convs, padding 1; 'M' = 2x2 max pool), 224x224 input."""
    total, c_in, n_conv = 0, 3, 0
    for v in config:
        if v == "M":
            continue
        total += cm.conv2d_parameter_count(c_in, int(v), 3)
        c_in, n_conv = int(v), n_conv + 1
    fc = [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]
    return total + sum(cm.linear_parameter_count(a, b) for a, b in fc), n_conv, len(fc)


VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


@claim("convolution.parameter-count",
       title="Parameter counts: conv k_h k_w C_in C_out (+C_out), dense (HWC_in)(H'W'C_out)",
       statement=r"\#\mathrm{conv} = k_hk_wC_{in}C_{out} + C_{out},\quad "
                 r"\#\mathrm{dense}(H\!\times\!W\!\times\!C_{in}\to H'\!\times\!W'\!\times\!C_{out}) = "
                 r"(HWC_{in})(H'W'C_{out})",
       source="LeCun et al. (1998), Gradient-based learning applied to document recognition; Simonyan & Zisserman "
              "(2015), VGG; torchvision's model table (VGG-16 138,357,544, VGG-19 143,667,240 parameters)",
       erratum=True)
def parameter_count(ctx: RunContext) -> Evidence:
    """Chapter C4, C5, C6, C14, C16, C17, erratum E3: the formulas vs published counts and the Toeplitz view."""
    vgg16, n_conv16, n_fc16 = _vgg_parameter_count(VGG16)
    vgg19, n_conv19, n_fc19 = _vgg_parameter_count(VGG19)
    lenet = (cm.conv2d_parameter_count(1, 6, 5) + cm.conv2d_parameter_count(6, 16, 5)
             + cm.linear_parameter_count(16 * 5 * 5, 120) + cm.linear_parameter_count(120, 84)
             + cm.linear_parameter_count(84, 10))
    checks = {
        "conv 3->64 3x3 no bias (C5)": (cm.conv2d_parameter_count(3, 64, 3, bias=False), 1728),
        "conv 3->64 3x3 with bias": (cm.conv2d_parameter_count(3, 64, 3), 1792),
        "FC 224x224x3 -> 1000 (C4)": (cm.linear_parameter_count(224 * 224 * 3, 1000, bias=False), 150_528_000),
        "LeNet-5 (C14)": (lenet, 61_706),
        "VGG-16 (C16)": (vgg16, 138_357_544),
        "VGG-19 (C16)": (vgg19, 143_667_240),
        "VGG-16 layers": (n_conv16 + n_fc16, 16),
        "VGG-19 layers": (n_conv19 + n_fc19, 19),
        "2 x 3x3 per channel pair (C17)": (2 * cm.conv2d_parameter_count(1, 1, 3, bias=False), 18),
    }
    # LeNet-5 built with dlmath.nn: its parameters and the shapes 32 -> 28 -> 14 -> 10 -> 5
    lenet_net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                              nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84),
                              nn.Tanh(), nn.Linear(84, 10))
    sizes, h = [], np.zeros((1, 1, 32, 32), dtype=np.float32)
    for layer in lenet_net:
        h = layer(h)
        if isinstance(layer, (nn.Conv2d, nn.AvgPool2d)):
            sizes.append(int(np.shape(_data(h))[-1]))
    checks["LeNet-5 built with dlmath.nn"] = (sum(int(np.size(_data(q))) for q in lenet_net.parameters()), 61_706)
    checks["LeNet-5 sizes 28,14,10,5"] = (int(sizes == [28, 14, 10, 5]), 1)
    checks["dlmath nn.Conv2d(3, 64, 3)"] = (sum(int(np.size(_data(q))) for q in nn.Conv2d(3, 64, 3).parameters()),
                                            cm.conv2d_parameter_count(3, 64, 3))
    worst = max(abs(a - b) / b for a, b in checks.values())
    # the Toeplitz view: a conv is a dense map whose (HWC_in) x (H'W'C_out) matrix holds only k_h k_w C_in C_out
    # distinct weights (random kernel entries are distinct with probability 1)
    rng = ctx.rng
    H, C_in, C_out, k = 6, 2, 3, 3
    K = rng.standard_normal((C_out, C_in, k, k))
    A = cm.conv2d_toeplitz_matrix(K, (H, H), padding=1)
    distinct = np.unique(A[A != 0]).size
    dense = cm.linear_parameter_count(H * H * C_in, H * H * C_out, bias=False)
    toeplitz_err = abs(distinct - cm.conv2d_parameter_count(C_in, C_out, k, bias=False)) + abs(A.size - dense)
    printed = H * H * C_in * C_out  # E3: H W C_in C_out
    printed_err = abs(printed - dense) / dense
    return Evidence.at_most(
        worst, 0, "integer arithmetic against published counts: exact",
        "; ".join(f"{n}: {a:,} (expected {b:,})" for n, (a, b) in checks.items())
        + f". Toeplitz view of a {C_in}->{C_out} 3x3 conv on {H}x{H} (padding 1): a {A.shape[0]}x{A.shape[1]} dense "
        f"matrix ({dense:,} = (HWC_in)(HWC_out) entries) with {distinct} distinct weights = k_h k_w C_in C_out. "
        f"The printed dense count H W C_in C_out = {printed} is off by {printed_err:.1%}.",
        cross_checks=(CrossCheck("toeplitz-view", toeplitz_err, 0, "integer counts: exact"),),
        printed=PrintedForm(r"\#\mathrm{dense} = H\,W\,C_{in}\,C_{out}", printed_err,
                            "arithmetic: a dense map from n_in to n_out numbers has n_in n_out weights"))


def _doubly_block_toeplitz(K: np.ndarray, H: int, W: int) -> np.ndarray:
    """The stride-1 valid cross-correlation matrix assembled from scipy.linalg.toeplitz blocks (the oracle)."""
    from scipy.linalg import toeplitz

    kh, kw = K.shape
    Ho, Wo = H - kh + 1, W - kw + 1
    A = np.zeros((Ho * Wo, H * W))
    for i in range(Ho):
        for m in range(kh):  # block (i, i+m) is the Toeplitz matrix of kernel row m
            first_row = np.zeros(W)
            first_row[:kw] = K[m]
            first_col = np.zeros(Wo)
            first_col[0] = K[m, 0]
            A[i * Wo:(i + 1) * Wo, (i + m) * W:(i + m + 1) * W] = toeplitz(first_col, first_row)
    return A


@claim("convolution.toeplitz-matrix",
       title="Convolution is multiplication by a doubly block Toeplitz matrix",
       statement=r"\mathrm{vec}(X\star K) = A\,\mathrm{vec}(X),\quad A = \big[T(K_{j-i,:})\big]_{i,j},\ "
                 r"T(k)\ \text{Toeplitz}",
       source="Goodfellow, Bengio & Courville (2016), §9.1; Gray (2006), Toeplitz and Circulant Matrices: A Review")
def toeplitz_matrix(ctx: RunContext) -> Evidence:
    """dlmath's conv2d_toeplitz_matrix vs blocks built by scipy.linalg.toeplitz; A vec(x) vs scipy correlate2d."""
    from scipy import signal

    rng = ctx.rng
    H, W = 6, 7
    K = rng.standard_normal((3, 3))
    A = cm.conv2d_toeplitz_matrix(K[None, None], (H, W))
    structure_err = float(np.max(np.abs(A - _doubly_block_toeplitz(K, H, W))))
    x = rng.standard_normal((H, W))
    prod_err = _rel((A @ x.ravel()).reshape(H - 2, W - 2), signal.correlate2d(x, K, "valid"))
    # several channels, stride 2, padding 1: against scipy on the zero-padded input, subsampled
    C_in, C_out = 2, 3
    K4, X = rng.standard_normal((C_out, C_in, 3, 3)), rng.standard_normal((C_in, 9, 8))
    Xp = np.pad(X, ((0, 0), (1, 1), (1, 1)))
    ref = np.array([sum(signal.correlate2d(Xp[c], K4[o, c], "valid") for c in range(C_in))[::2, ::2]
                    for o in range(C_out)])
    A4 = cm.conv2d_toeplitz_matrix(K4, (9, 8), stride=2, padding=1)
    strided_err = _rel((A4 @ X.ravel()).reshape(ref.shape), ref)
    conv_err = _rel(_data(conv2d(X[None], K4, None, 2, 1))[0], ref)
    tol = 1e2 * F64_EPS
    return Evidence.at_most(
        structure_err, 0.0, "the same kernel entries copied into place: exact",
        f"single channel, {H}x{W} input, 3x3 kernel: A ({A.shape[0]}x{A.shape[1]}) equals the block matrix "
        f"assembled from scipy.linalg.toeplitz (max |difference| {structure_err}); A vec(x) vs "
        f"scipy.signal.correlate2d: {prod_err:.1e}; {C_in}->{C_out} channels, stride 2, padding 1: A vec(x) vs "
        f"scipy {strided_err:.1e}, dlmath's conv2d vs scipy {conv_err:.1e}.",
        cross_checks=(CrossCheck("correlate2d", prod_err, tol, "sums of 9 products: ~100 ulps"),
                      CrossCheck("strided-multichannel", strided_err, tol, "sums of 18 products: ~100 ulps"),
                      CrossCheck("conv2d", conv_err, tol, "sums of 18 products: ~100 ulps")))


@claim("convolution.max-pool-shift",
       title="Max pooling is invariant to shifts that stay inside its windows, not to shifts in general",
       statement=r"\mathrm{maxpool}_{2\times2}(T_s x) = \mathrm{maxpool}_{2\times2}(x)\ \text{if every window's "
                 r"maximum stays in its window};\ \mathrm{maxpool}(T_{2s}x) = T_s\,\mathrm{maxpool}(x)",
       source="Goodfellow, Bengio & Courville (2016), §9.3 (pooling gives approximate invariance to small "
              "translations); Boureau, Ponce & LeCun (2010)")
def max_pool_shift(ctx: RunContext) -> Evidence:
    """Chapter C9 (worked example), E1 (invariance comes from pooling): dlmath's F.max_pool2d."""
    rng = ctx.rng
    example = _data(F.max_pool2d(np.arange(1.0, 17.0).reshape(1, 1, 4, 4), 2))[0, 0]
    example_err = float(np.max(np.abs(example - np.array([[6.0, 8.0], [14.0, 16.0]]))))
    C, H = 3, 8
    x = rng.uniform(0.0, 1.0, (1, C, H, H))
    # a large value in the left column of every 2x2 window: a shift right by one keeps it in its window
    ci, wi, wj = np.indices((C, H // 2, H // 2))
    x[0, ci, 2 * wi + rng.integers(0, 2, ci.shape), 2 * wj] = 10.0 + rng.uniform(0.0, 1.0, ci.shape)
    pooled = _data(F.max_pool2d(x, 2))
    inside = _rel(_data(F.max_pool2d(np.roll(x, 1, axis=3), 2)), pooled)
    y = rng.uniform(0.0, 1.0, (1, C, H, H))
    general = _rel(_data(F.max_pool2d(np.roll(y, 1, axis=3), 2)), _data(F.max_pool2d(y, 2)))
    by_window = _rel(_data(F.max_pool2d(np.roll(y, 2, axis=3), 2)), np.roll(_data(F.max_pool2d(y, 2)), 1, axis=3))
    return Evidence.at_most(
        max(example_err, inside), 0.0, "a maximum is selected, not computed: exact",
        f"4x4 matrix 1..16 with 2x2 max pooling: {example.tolist()}. Shift by one pixel that keeps each window's "
        f"maximum in its window: max rel. change {inside}; a random input shifted by one pixel: {general:.2f}; "
        f"shifted by the pool's stride (2): the output shifts by one, to {by_window}.",
        cross_checks=(CrossCheck("general-shift-changes-output", general, 1e-2,
                                 "uniform inputs: about half of the windows change their maximum", ">="),
                      CrossCheck("equivariant-at-the-stride", by_window, 0.0, "selection: exact")))


@claim("convolution.pool-gradient",
       title="Max-pool gradient goes to the argmax; average-pool gradient is g / k^2",
       statement=r"\frac{\partial\mathcal L}{\partial x_{p}} = \sum_{w\ni p}\frac{\partial\mathcal L}{\partial y_w}"
                 r"[p = \arg\max_w x],\quad \frac{\partial\mathcal L}{\partial x_p} = "
                 r"\frac1{k^2}\frac{\partial\mathcal L}{\partial y_{w(p)}}\ \text{(non-overlapping)}",
       source="Goodfellow, Bengio & Courville (2016), §9.3; Scherer, Müller & Behnke (2010)")
def pool_gradient(ctx: RunContext) -> Evidence:
    """Chapter C13: autodiff through F.max_pool2d / F.avg_pool2d vs the argmax mask built with NumPy."""
    rng = ctx.rng
    N, C, H, k = 2, 3, 8, 2
    x = rng.standard_normal((N, C, H, H))
    g = rng.standard_normal((N, C, H // k, H // k))
    xt = dm.tensor(x, requires_grad=True)
    dm.sum(F.max_pool2d(xt, k) * g).backward()
    windows = x.reshape(N, C, H // k, k, H // k, k).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H // k, H // k, k * k)
    is_max = (windows == windows.max(axis=-1, keepdims=True)).astype(np.float64)   # ties: probability 0
    expected = (is_max * g[..., None]).reshape(N, C, H // k, H // k, k, k).transpose(0, 1, 2, 4, 3, 5)
    err_max = _rel(xt.grad.data, expected.reshape(N, C, H, H))
    xa = dm.tensor(x, requires_grad=True)
    dm.sum(F.avg_pool2d(xa, k) * g).backward()
    err_avg = _rel(xa.grad.data, np.repeat(np.repeat(g, k, axis=2), k, axis=3) / k**2)
    return Evidence.at_most(
        err_max, 0.0, "the cotangent is copied to the argmax: exact",
        f"x ({N}, {C}, {H}, {H}), 2x2 windows, stride 2: max-pool input gradient vs g placed at each window's "
        f"argmax: {err_max}; average pool vs g/4 spread over the window: {err_avg:.1e}.",
        cross_checks=(CrossCheck("average-pool", err_avg, 4 * F64_EPS, "g/k^2: one rounding"),))


@claim("convolution.conv-backward",
       title="Conv backward: bias grad sums, weight grad correlates input with dY, input grad is a full convolution",
       statement=r"\frac{\partial\mathcal L}{\partial b_o} = \sum_{ij}G_{oij},\ "
                 r"\frac{\partial\mathcal L}{\partial K_{ocmn}} = \sum_{ij}G_{oij}X_{c,i+m,j+n},\ "
                 r"\frac{\partial\mathcal L}{\partial X_{c}} = \sum_o G_o * K_{oc}\ \text{(full)}",
       source="Goodfellow, Bengio & Courville (2016), §9.5, eq. 9.11-9.14; Dumoulin & Visin (2016), §4 "
              "(transposed convolution)")
def conv_backward(ctx: RunContext) -> Evidence:
    """Chapter C12: dlmath autodiff through F.conv2d vs the three formulas, evaluated with scipy.signal."""
    from scipy import signal

    rng = ctx.rng
    C_in, C_out, H, W = 2, 3, 7, 8
    x, K, b = rng.standard_normal((C_in, H, W)), rng.standard_normal((C_out, C_in, 3, 3)), rng.standard_normal(C_out)
    G = rng.standard_normal((C_out, H - 2, W - 2))
    xt, Kt, bt = (dm.tensor(a, requires_grad=True) for a in (x[None], K, b))
    dm.sum(F.conv2d(xt, Kt, bt) * G[None]).backward()
    db = G.sum(axis=(1, 2))
    dK = np.array([[signal.correlate2d(x[c], G[o], "valid") for c in range(C_in)] for o in range(C_out)])
    dX = np.array([sum(signal.convolve2d(G[o], K[o, c], "full") for o in range(C_out)) for c in range(C_in)])
    errs = {"bias": _rel(bt.grad.data, db), "weight": _rel(Kt.grad.data, dK), "input": _rel(xt.grad.data[0], dX)}
    # forward mode checks the reverse rules independently: <dL/dX, V> = d/dt L(X + tV)
    V = rng.standard_normal(x.shape)
    _, tangent = dm.jvp(lambda xx: dm.sum(F.conv2d(xx, K, b) * G[None]), (x[None],), (V[None],))
    jvp_err = abs(float(_data(tangent)) - float(np.sum(dX * V))) / (np.linalg.norm(dX) * np.linalg.norm(V))
    tol = 1e2 * F64_EPS
    return Evidence.at_most(
        max(errs.values()), tol, "sums of at most 50 products in different orders: ~100 ulps",
        f"x ({C_in}, {H}, {W}), K ({C_out}, {C_in}, 3, 3), stride 1: max rel. error of autodiff against the formulas "
        + ", ".join(f"{n} {e:.1e}" for n, e in errs.items())
        + f"; forward-mode directional derivative vs <dX, V>: {jvp_err:.1e}.",
        cross_checks=(CrossCheck("forward-mode", jvp_err, tol, "as the main check"),))
