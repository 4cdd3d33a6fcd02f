r"""Architectures as combinators, each with three faces from one description.

A `Layer` has ``init(seed, input_shape) -> params``, ``apply(params, x)`` (on the dlmath engine:
differentiable when ``x`` or ``params`` hold Tensors, plain NumPy otherwise) and ``kernel_map(k)``,
which propagates the infinite-width kernels: the NNGP $\Sigma(x, x')$, the NTK $\Theta(x, x')$ and the
diagonal variances $\Sigma(x, x)$, $\Sigma(x', x')$ the activations need. The names and the meaning of
``W_std``, ``b_std`` and ``parameterization`` are neural-tangents' ``stax`` (Novak et al. 2020), so the
same architecture gives the same kernel values in both libraries.

    >>> arch = serial(Dense(512, W_std=1.5, b_std=0.05), Relu(), Dense(1, W_std=1.5, b_std=0.05))
    >>> k = arch.kernel(x1, x2)          # k.nngp, k.ntk: (N1, N2)
    >>> params = arch.init(0, x1.shape)  # a finite network of the same description
    >>> f = arch.apply(params, x1)

The recursion (Jacot, Gabriel & Hongler 2018, Thm 1; Lee et al. 2018): through a dense layer
$\Sigma \mapsto \sigma_w^2\Sigma + \sigma_b^2$ and $\Theta \mapsto \sigma_w^2\Theta + \Sigma_{\text{new}}$
(NTK parameterisation); through an elementwise $\phi$,
$\Sigma \mapsto \mathbb E[\phi(u)\phi(v)]$ and $\Theta \mapsto \Theta\cdot\mathbb E[\phi'(u)\phi'(v)]$.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

import dlmath as dm

from . import formulas as fm

__all__ = [
    "ABRelu",
    "Abs",
    "AvgPool",
    "Conv",
    "Dense",
    "Dropout",
    "Elementwise",
    "Erf",
    "FanInConcat",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Gelu",
    "GlobalAvgPool",
    "Identity",
    "Kernel",
    "Layer",
    "LayerNorm",
    "LeakyRelu",
    "NoAnalyticKernelError",
    "Relu",
    "Sigmoid",
    "Sin",
    "Softplus",
    "Tanh",
    "custom",
    "parallel",
    "residual",
    "serial",
]

Shape = tuple[int, ...]
AUTO_BLOCK = 256  # kernel.batch_size when none is given and N1 * N2 > AUTO_BLOCK^2 (0.5 MiB float64 blocks: L2-sized)


class NoAnalyticKernelError(dm.DlmathError, NotImplementedError):
    """A layer whose infinite-width kernel has no closed form here: estimate it with `monte_carlo`."""


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A Generator from a seed (or the Generator itself)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@dataclass(frozen=True)
class Kernel:
    """The kernels between two batches of inputs at one point of an architecture.

    ``nngp`` $\\Sigma(x_i, x'_j)$ and ``ntk`` $\\Theta(x_i, x'_j)$ are (N1, N2); ``cov1`` = $\\Sigma(x_i, x_i)$ (N1,)
    and ``cov2`` = $\\Sigma(x'_j, x'_j)$ (N2,) are the variances the activations need; ``width`` is the number
    of channels of the finite network at this point (used by the standard parameterisation and by concatenation).
    ``ntk`` is None when only the NNGP was asked for.

    Convolutional kernels (inputs (N, *spatial, C), channels last as neural-tangents): ``nngp``/``ntk`` are
    (N1, N2, S1, S1', S2, S2', ...), a covariance over every pair of positions (the position axes of x and x'
    interleaved, neural-tangents' layout); ``cov1`` (N1, S1, S1', ...) and ``cov2`` are each sample's covariance over
    pairs of its own positions. Without spatial axes these are the (N1, N2), (N1,), (N2,) arrays above.
    """

    nngp: np.ndarray
    ntk: np.ndarray | None
    cov1: np.ndarray
    cov2: np.ndarray
    width: int
    is_gaussian: bool = False
    x1_is_x2: bool = False  # the kernel of a batch with itself: its diagonal pairs a sample with itself (Dropout)

    @classmethod
    def of_inputs(cls, x1: np.ndarray, x2: np.ndarray | None, want_ntk: bool, gram: np.ndarray | None = None
                  ) -> Kernel:
        r"""The input layer: $\Sigma^{(0)}(x, x') = x\cdot x'/d$, $\Theta^{(0)} = 0$ (neural-tangents' convention).
        ``gram``: $x_1 x_2^\top$ when already computed. Spatial inputs (N, *S, C): the same per pair of positions,
        divided by the number of channels C."""
        if x1.ndim > 2:
            return cls._of_spatial_inputs(x1, x2, want_ntk)
        d = x1.shape[1]
        if x2 is None:
            gram = x1 @ x1.T if gram is None else gram
            gram = (gram + gram.T) / 2            # exactly symmetric, so every later map keeps it so
            cov1 = np.einsum("ij,ij->i", x1, x1) / d
            cov2 = cov1
        else:
            gram = x1 @ x2.T if gram is None else gram
            cov1 = np.einsum("ij,ij->i", x1, x1) / d
            cov2 = np.einsum("ij,ij->i", x2, x2) / d
        nngp = gram / d
        if x2 is None:
            # the diagonal is the variance, bitwise: every later map then computes both with the same arithmetic, so
            # Sigma(x, x) = cov stays exact even in the chaotic phase, where rounding of rho = 1 would grow
            np.fill_diagonal(nngp, cov1)
        return cls(nngp, np.zeros_like(nngp) if want_ntk else None, cov1, cov2, d, x1_is_x2=x2 is None)

    @classmethod
    def _of_spatial_inputs(cls, x1: np.ndarray, x2: np.ndarray | None, want_ntk: bool) -> Kernel:
        c, ns = x1.shape[-1], x1.ndim - 2
        sp, sq = "hwd"[:ns], "HWD"[:ns]
        pairs = "".join(a + b for a, b in zip(sp, sq, strict=True))
        cov1 = np.einsum(f"n{sp}c,n{sq}c->n{pairs}", x1, x1, optimize=True) / c
        cov2 = cov1 if x2 is None else np.einsum(f"n{sp}c,n{sq}c->n{pairs}", x2, x2, optimize=True) / c
        nngp = np.einsum(f"n{sp}c,m{sq}c->nm{pairs}", x1, x1 if x2 is None else x2, optimize=True) / c
        return cls(nngp, np.zeros_like(nngp) if want_ntk else None, cov1, cov2, c, x1_is_x2=x2 is None)


def _check_kernel(layer: str, k: Any) -> Kernel:
    if not isinstance(k, Kernel):
        raise dm.ShapeError(f"{layer}: expects one input (a Kernel), got {type(k).__name__}; "
                            f"a list of branches must be merged first (FanInSum, FanInConcat)")
    return k


def n_spatial(k: Kernel) -> int:
    """The number of spatial axes of the inputs behind ``k`` (0 for (batch, features) inputs)."""
    return (k.nngp.ndim - 2) // 2


def _position_variances(cov: np.ndarray, ns: int) -> np.ndarray:
    """(N, S1, S2, ...): the variance at each position, the diagonal of a (N, S1, S1', S2, S2', ...) covariance."""
    for _ in range(ns):          # the first pair (axes 1, 2) each time: the diagonal axis goes last, so after ns
        cov = np.diagonal(cov, axis1=1, axis2=2)  # steps the positions are back in order
    return cov


def _outer(q1: np.ndarray, q2: np.ndarray, ns: int, batch2: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-position variances broadcast against a kernel's layout: (N1, [N2,] S1, S1', ...) with q1 on the unprimed
    and q2 on the primed position axes; ``batch2``: the kernel has a second batch axis (nngp), not (cov1)."""
    n1 = q1.shape[0]
    a = q1.reshape((n1,) + ((1,) if batch2 else ()) + tuple(x for s in q1.shape[1:] for x in (s, 1)))
    lead = (1, q2.shape[0]) if batch2 else (q2.shape[0],)
    b = q2.reshape(lead + tuple(x for s in q2.shape[1:] for x in (1, s)))
    return a, b


def _pair_diagonal_mask(shape: tuple[int, ...], lead: int) -> np.ndarray:
    """1 where every pair of axes (the batch pair when ``lead`` = 2, then the position pairs) has equal indices."""
    mask = np.ones((1,) * len(shape), bool)
    axes = ([(0, 1)] if lead == 2 else []) + [(i, i + 1) for i in range(lead, len(shape), 2)]
    for i, j in axes:
        eye = np.eye(shape[i], shape[j], dtype=bool)
        mask = mask & eye.reshape(tuple(shape[a] if a in (i, j) else 1 for a in range(len(shape))))
    return mask


class Layer:
    """One node of an architecture: ``init``, ``output_shape``, ``apply``, ``kernel_map`` and ``kernel``."""

    name: str = "Layer"

    def init(self, seed: int | np.random.Generator | None, input_shape: Any) -> Any:
        """Random parameters for inputs of ``input_shape`` (batch axis first); ``()`` when there are none."""
        return ()

    def output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def apply(self, params: Any, x: Any) -> Any:
        raise NotImplementedError

    def kernel_map(self, k: Any) -> Any:
        raise NoAnalyticKernelError(
            f"{self.name} has no analytic infinite-width kernel; estimate it with "
            f"dlmath.kernels.monte_carlo(arch, x1, x2, n_samples=..., seed=...)")

    def __call__(self, params: Any, x: Any) -> Any:
        return self.apply(params, x)

    def __repr__(self) -> str:
        return self.name

    def kernel(self, x1: Any, x2: Any = None, get: str | Sequence[str] = ("nngp", "ntk"),
               batch_size: int | None = None, dtype: Any = None, threads: int | None = None) -> Any:
        """The infinite-width kernels between ``x1`` (N1, d) and ``x2`` (N2, d) (``x2=None``: x1 with itself).

        ``get``: ``'nngp'``, ``'ntk'`` (then that array is returned) or a tuple of them (then a `Kernel` with
        ``.nngp`` and ``.ntk``). ``batch_size``: compute in (batch_size x batch_size) blocks, bounding memory by
        the blocks; with ``x2=None`` only the upper blocks are computed and mirrored. ``dtype``: float32 or
        float64 (default: x1's floating dtype, float64 for integers). ``threads``: blocks computed in parallel
        (default: all cores; 1 for none).
        """
        single = isinstance(get, str)
        gets = (get,) if single else tuple(get)
        bad = [g for g in gets if g not in ("nngp", "ntk")]
        if bad or not gets:
            raise ValueError(f"{self.name}.kernel: get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
        a1 = _as_input(x1, dtype, f"{self.name}.kernel", "x1")
        a2 = None if x2 is None else _as_input(x2, a1.dtype, f"{self.name}.kernel", "x2")
        if a2 is not None and a2.shape[1:] != a1.shape[1:]:
            raise dm.ShapeError(f"{self.name}.kernel: x1 has shape {a1.shape} and x2 {a2.shape}; "
                                f"they must agree after the batch axis")
        want_ntk = "ntk" in gets
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"{self.name}.kernel: batch_size must be a positive int or None, got {batch_size!r}")
        if batch_size is None and a1.shape[0] * (a1 if a2 is None else a2).shape[0] > AUTO_BLOCK ** 2:
            # blocks that stay in cache through every layer: the maps act entry by entry (given the diagonals), so
            # large kernels are memory-bound unblocked; with x2=None only the upper blocks are computed
            batch_size = AUTO_BLOCK
        if batch_size is None or (batch_size >= a1.shape[0] and (a2 is None or batch_size >= a2.shape[0])):
            k = self._final(self.kernel_map(Kernel.of_inputs(a1, a2, want_ntk)))
        else:
            k = self._blocked(a1, a2, want_ntk, batch_size, threads)
        if single:
            return k.nngp if gets[0] == "nngp" else k.ntk
        return k

    def _final(self, k: Any) -> Kernel:
        if not isinstance(k, Kernel):
            raise dm.ShapeError(f"{self.name}.kernel: the architecture ends in {len(k)} branches; "
                                f"merge them with FanInSum or FanInConcat")
        if n_spatial(k):
            raise dm.ShapeError(f"{self.name}.kernel: the architecture ends with spatial axes; end it with Flatten or "
                                f"GlobalAvgPool (and a Dense readout)")
        return k

    def _blocked(self, a1: np.ndarray, a2: np.ndarray | None, want_ntk: bool, b: int, threads: int | None = None
                 ) -> Kernel:
        other = a1 if a2 is None else a2
        n1, n2 = a1.shape[0], other.shape[0]
        nngp = np.empty((n1, n2), a1.dtype)
        ntk = np.empty((n1, n2), a1.dtype) if want_ntk else None
        cov1 = np.empty(n1, a1.dtype)
        cov2 = np.empty(n2, a1.dtype)
        tasks = [(i, j) for i in range(0, n1, b) for j in range(0, n2, b) if not (a2 is None and j < i)]
        # every Gram product here, in this thread (BLAS called from several Python threads at once slows later
        # BLAS calls of the process down); the blocks then do elementwise work only, on NumPy's GIL-free ufuncs
        grams = {} if a1.ndim > 2 else {(i, j): a1[i:i + b] @ other[j:j + b].T for i, j in tasks}

        def block(task: tuple[int, int]) -> tuple[int, bool]:
            i, j = task
            part = None if (a2 is None and i == j) else other[j:j + b]
            k = self._final(self.kernel_map(Kernel.of_inputs(a1[i:i + b], part, want_ntk, grams.pop(task, None))))
            nngp[i:i + b, j:j + b] = k.nngp          # blocks write disjoint slices: safe from threads
            cov1[i:i + b] = k.cov1
            cov2[j:j + b] = k.cov2
            if ntk is not None:
                ntk[i:i + b, j:j + b] = k.ntk
            if a2 is None and j > i:
                nngp[j:j + b, i:i + b] = k.nngp.T
                if ntk is not None:
                    ntk[j:j + b, i:i + b] = k.ntk.T
            return k.width, k.is_gaussian
        workers = min(len(tasks), threads or os.cpu_count() or 1)
        if workers > 1:  # NumPy releases the GIL inside ufuncs on large arrays: blocks run in parallel
            with ThreadPoolExecutor(workers) as pool:
                meta = list(pool.map(block, tasks))
        else:
            meta = [block(t) for t in tasks]
        width, gauss = meta[-1]
        return Kernel(nngp, ntk, cov1, cov2, width, gauss)


def _as_input(x: Any, dtype: Any, fn: str, name: str) -> np.ndarray:
    a = np.asarray(x.data if isinstance(x, dm.Tensor) else x)
    if dtype is None:
        dtype = a.dtype if np.issubdtype(a.dtype, np.floating) else np.float64
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise dm.DtypeError(f"{fn}: dtype must be float32 or float64, got {dtype}")
    if not 2 <= a.ndim <= 4:
        raise dm.ShapeError(f"{fn}: {name} must be (batch, features) or channels-last images (batch, *spatial, "
                            f"channels) with 1 or 2 spatial axes, got shape {a.shape}")
    return a.astype(dtype, copy=False)


# --------------------------------------------------------------------------- dense
class Dense(Layer):
    r"""Fully connected layer with neural-tangents' ``stax.Dense`` meaning.

    ``parameterization='ntk'``: $W_{ij}, b_j \sim \mathcal N(0,1)$ and
    $z = \frac{\sigma_w}{\sqrt{n_\text{in}}} x W + \sigma_b b$ (Jacot et al. 2018); kernel
    $\Sigma' = \sigma_w^2\Sigma + \sigma_b^2$, $\Theta' = \sigma_w^2\Theta + \Sigma'$.
    ``parameterization='standard'``: $W_{ij} \sim \mathcal N(0, \sigma_w^2/n_\text{in})$,
    $b_j \sim \mathcal N(0, \sigma_b^2)$, $z = xW + b$ (Sohl-Dickstein et al. 2020); same $\Sigma'$,
    $\Theta' = n_\text{in}\Sigma + \sigma_w^2\Theta + [\text{bias}]$. ``b_std=None``: no bias parameter.
    Parameters: ``(W, b)`` with W of shape (n_in, out_dim) and b (out_dim,) or None.
    """

    def __init__(self, out_dim: int, W_std: float = 1.0, b_std: float | None = 0.0,
                 parameterization: str = "ntk") -> None:
        if not isinstance(out_dim, int) or out_dim < 1:
            raise ValueError(f"Dense: out_dim must be a positive int, got {out_dim!r}")
        if parameterization not in ("ntk", "standard"):
            raise ValueError(f"Dense: parameterization must be 'ntk' or 'standard', got {parameterization!r}")
        if not W_std >= 0 or (b_std is not None and not b_std >= 0):
            raise ValueError(f"Dense: W_std and b_std must be >= 0, got W_std={W_std!r}, b_std={b_std!r}")
        self.out_dim, self.W_std, self.b_std, self.parameterization = out_dim, W_std, b_std, parameterization
        self.name = f"Dense({out_dim}, W_std={W_std}, b_std={b_std}, parameterization={parameterization!r})"

    def output_shape(self, input_shape: Any) -> Shape:
        return (*tuple(input_shape)[:-1], self.out_dim)

    def init(self, seed: int | np.random.Generator | None, input_shape: Any) -> tuple[np.ndarray, np.ndarray | None]:
        rng = as_rng(seed)
        n_in = int(input_shape[-1])
        W = rng.standard_normal((n_in, self.out_dim))
        b = None if self.b_std is None else rng.standard_normal(self.out_dim)
        if self.parameterization == "standard":
            W *= self.W_std / math.sqrt(n_in)
            b = None if b is None else b * self.b_std
        return W, b

    def weight_scale(self, n_in: int) -> float:
        """The factor multiplying x W in the forward pass."""
        return self.W_std / math.sqrt(n_in) if self.parameterization == "ntk" else 1.0

    def bias_scale(self) -> float:
        """The factor multiplying b in the forward pass (0 without a bias)."""
        if self.b_std is None:
            return 0.0
        return self.b_std if self.parameterization == "ntk" else 1.0

    def apply(self, params: Any, x: Any) -> Any:
        W, b = params
        n_in = W.shape[0]
        if np.shape(x)[-1] != n_in:
            raise dm.ShapeError(f"{self.name}: input has {np.shape(x)[-1]} features, W has {n_in} rows")
        out = dm.matmul(x, W)
        scale = self.weight_scale(n_in)
        if scale != 1.0:
            out = out * scale
        if b is not None:
            out = out + (b * self.b_std if self.parameterization == "ntk" else b)
        return out

    def kernel_map(self, k: Kernel) -> Kernel:
        k = _check_kernel(self.name, k)
        w2, b2 = self.W_std ** 2, (self.b_std or 0.0) ** 2
        nngp = w2 * k.nngp + b2
        ntk = None
        if k.ntk is not None:
            if self.parameterization == "ntk":
                ntk = w2 * k.ntk + nngp
            else:
                ntk = k.width * k.nngp + w2 * k.ntk + (0.0 if self.b_std is None else 1.0)
        return Kernel(nngp, ntk, w2 * k.cov1 + b2, w2 * k.cov2 + b2, self.out_dim, True, k.x1_is_x2)


# --------------------------------------------------------------------------- shape, normalisation, dropout
class Flatten(Layer):
    r"""Every axis after the batch axis flattened into one. Kernel (neural-tangents' ``stax.Flatten``): the next
    dense layer sums over positions and channels, so the kernels become the mean over the position diagonal,
    $\Sigma'(x, x') = \frac1P\sum_p \Sigma_{pp}(x, x')$; unchanged without spatial axes."""

    name = "Flatten"

    def output_shape(self, input_shape: Any) -> Shape:
        return (input_shape[0], math.prod(tuple(input_shape)[1:]))

    def apply(self, params: Any, x: Any) -> Any:
        return dm.reshape(x, (np.shape(x)[0], -1))

    def kernel_map(self, k: Any) -> Kernel:
        k = _check_kernel(self.name, k)
        ns = n_spatial(k)
        if ns == 0:
            return k

        def diag_mean(a: np.ndarray, lead: int) -> np.ndarray:
            for _ in range(ns):
                a = np.diagonal(a, axis1=lead, axis2=lead + 1)
            return a.mean(axis=tuple(range(lead, a.ndim)))
        cov1 = diag_mean(k.cov1, 1)
        cov2 = cov1 if k.cov2 is k.cov1 else diag_mean(k.cov2, 1)
        ntk = None if k.ntk is None else diag_mean(k.ntk, 2)
        positions = math.prod(k.nngp.shape[2::2])
        return Kernel(diag_mean(k.nngp, 2), ntk, cov1, cov2, k.width * positions, k.is_gaussian, k.x1_is_x2)


class LayerNorm(Layer):
    r"""Layer normalisation over the features, $y = (x - ar x)/\sqrt{\epsilon + \operatorname{var}(x)}$, no affine
    parameters (neural-tangents' ``stax.LayerNorm(axis=-1, eps)``).

    At infinite width the feature mean tends to 0 and the feature variance to $\Sigma(x, x)$, so the kernels are
    normalised by the diagonal: $\Sigma'(x, x') = \Sigma(x, x')/\sqrt{(\epsilon+\Sigma(x,x))(\epsilon+\Sigma(x',x'))}$,
    $\Theta'$ likewise (neural-tangents 0.6.5, ``stax.LayerNorm``; Xiong et al. 2020 for LayerNorm in the NTK).
    """

    def __init__(self, eps: float = 1e-12) -> None:
        if not eps >= 0:
            raise ValueError(f"LayerNorm: eps must be >= 0, got {eps!r}")
        self.eps, self.name = eps, f"LayerNorm(eps={eps})"

    def apply(self, params: Any, x: Any) -> Any:
        mean = dm.mean(x, axis=-1, keepdims=True)
        centred = x - mean
        var = dm.mean(centred * centred, axis=-1, keepdims=True)
        return centred / dm.sqrt(var + self.eps)

    def kernel_map(self, k: Any) -> Kernel:
        k = _check_kernel(self.name, k)
        if not k.is_gaussian:
            raise ValueError(f"{self.name}: its kernel needs Gaussian pre-activations; put a Dense layer before it "
                             f"(as neural-tangents requires)")
        ns = n_spatial(k)
        s1 = np.sqrt(self.eps + _position_variances(k.cov1, ns))
        s2 = np.sqrt(self.eps + _position_variances(k.cov2, ns))
        a, b = _outer(s1, s2, ns, True)
        norm = a * b
        ntk = None if k.ntk is None else k.ntk / norm
        a, b = _outer(s1, s1, ns, False)
        cov1 = k.cov1 / (a * b)
        a, b = _outer(s2, s2, ns, False)
        cov2 = cov1 if k.cov2 is k.cov1 else k.cov2 / (a * b)
        return Kernel(k.nngp / norm, ntk, cov1, cov2, k.width, k.is_gaussian, k.x1_is_x2)


class Dropout(Layer):
    r"""Dropout in training mode: $y = x\odot m/(1-p)$ with $m_i \sim 	ext{Bernoulli}(1-p)$ drawn afresh at every
    ``apply`` from the layer's own generator (``seed``).

    ``rate`` is the DROP probability $p$ (PyTorch's ``nn.Dropout(p)``), NOT neural-tangents' ``stax.Dropout(rate)``,
    whose ``rate`` is the KEEP probability $1-p$ (inherited from ``jax.example_libraries.stax``).
    Kernel (neural-tangents 0.6.5, ``stax.Dropout(1-p, mode='train')``): a sample shares its mask with itself only,
    so the variances and, for a batch with itself, the diagonal of $\Sigma$ and $\Theta$ are multiplied by $1/(1-p)$;
    the off-diagonal entries are unchanged ($\mathbb E[m_i m'_i] = (1-p)^2$ for independent masks).
    """

    def __init__(self, rate: float, seed: int | np.random.Generator | None = None) -> None:
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate (the drop probability) must be in [0, 1), got {rate!r}")
        self.rate, self.rng, self.name = rate, as_rng(seed), f"Dropout({rate})"

    def apply(self, params: Any, x: Any) -> Any:
        keep = 1.0 - self.rate
        mask = (self.rng.random(np.shape(x)) < keep) / keep
        return x * mask

    def kernel_map(self, k: Any) -> Kernel:
        k = _check_kernel(self.name, k)
        factor = 1.0 / (1.0 - self.rate)
        # a unit (sample, position, channel) shares its mask with itself only: the factor goes where the sample
        # (for a batch with itself) and every position pair coincide
        f1 = np.where(_pair_diagonal_mask(k.cov1.shape, 1), factor, 1.0)
        cov1 = k.cov1 * f1
        cov2 = cov1 if k.cov2 is k.cov1 else k.cov2 * np.where(_pair_diagonal_mask(k.cov2.shape, 1), factor, 1.0)
        nngp, ntk = k.nngp, k.ntk
        if k.x1_is_x2:   # different samples have independent masks: only a batch with itself changes
            f = np.where(_pair_diagonal_mask(nngp.shape, 2), factor, 1.0)
            nngp = nngp * f
            ntk = None if ntk is None else ntk * f
        return Kernel(nngp, ntk, cov1, cov2, k.width, False, k.x1_is_x2)


# --------------------------------------------------------------------------- convolutions
def _padding(name: str, padding: str, size: int) -> tuple[int, int]:
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":
        return (size - 1) // 2, size // 2       # XLA's and PyTorch's split: the extra zero after
    raise ValueError(f"{name}: padding must be 'SAME' or 'VALID', got {padding!r}")


def _window_sum(a: np.ndarray, axes: Sequence[int], size: int, pad: tuple[int, int]) -> np.ndarray:
    r"""$\sum_{o<size} a[\ldots, i+o, \ldots, j+o, \ldots]$ along ``axes`` shifted together (zero padded):
    one diagonal shift per filter offset, no loop over positions."""
    widths = [(0, 0)] * a.ndim
    for ax in axes:
        widths[ax] = pad
    a = np.pad(a, widths)
    out_len = a.shape[axes[0]] - size + 1
    if out_len < 1:
        raise dm.ShapeError(f"a window of {size} does not fit {a.shape[axes[0]]} positions (padding {pad})")
    out = None
    for o in range(size):
        idx = [slice(None)] * a.ndim
        for ax in axes:
            idx[ax] = slice(o, o + out_len)
        out = a[tuple(idx)] if out is None else out + a[tuple(idx)]
    return out


def _spatial_op(k: Kernel, fn: Callable[[np.ndarray, int], np.ndarray]) -> tuple[np.ndarray, np.ndarray | None,
                                                                               np.ndarray, np.ndarray]:
    """``fn(array, lead)`` applied to nngp, ntk (lead 2) and cov1, cov2 (lead 1)."""
    cov1 = fn(k.cov1, 1)
    cov2 = cov1 if k.cov2 is k.cov1 else fn(k.cov2, 1)
    return fn(k.nngp, 2), None if k.ntk is None else fn(k.ntk, 2), cov1, cov2


class Conv(Layer):
    r"""Convolution over 1 or 2 spatial axes, stride 1, channels last (inputs (N, L, C) or (N, H, W, C), NHWC as
    neural-tangents' ``stax.Conv``; dlmath.nn's convolutions are NCHW like PyTorch). Weights (*filter_shape, C_in,
    out_chan) (HWIO), NTK parameterisation: $z = rac{\sigma_w}{\sqrt{C_	ext{in}|F|}} W \star x + \sigma_b b$.

    Kernel (Novak et al. 2019, *Bayesian deep CNNs with many channels are Gaussian processes*; Arora et al. 2019,
    *On exact computation with an infinitely wide neural net*, CNTK): the weights are shared across positions and
    independent across filter offsets, so a pair of positions sees the SAME offset on both sides,
    $\Sigma'_{pp'} = rac{\sigma_w^2}{|F|}\sum_{o\in F}\Sigma_{p+o,\,p'+o} + \sigma_b^2$,
    $\Theta'_{pp'} = rac{\sigma_w^2}{|F|}\sum_{o\in F}\Theta_{p+o,\,p'+o} + \Sigma'_{pp'}$ (zero outside the image
    with 'SAME' padding, still divided by $|F|$, as neural-tangents). Exact; cost $O(N_1N_2P^2|F|)$.
    """

    def __init__(self, out_chan: int, filter_shape: Sequence[int], padding: str = "VALID", W_std: float = 1.0,
                 b_std: float | None = 0.0) -> None:
        if not isinstance(out_chan, int) or out_chan < 1:
            raise ValueError(f"Conv: out_chan must be a positive int, got {out_chan!r}")
        filter_shape = tuple(int(f) for f in filter_shape)
        if len(filter_shape) not in (1, 2) or min(filter_shape) < 1:
            raise ValueError(f"Conv: filter_shape must be 1 or 2 positive ints, got {filter_shape!r}")
        for f in filter_shape:
            _padding("Conv", padding, f)
        if not W_std >= 0 or (b_std is not None and not b_std >= 0):
            raise ValueError(f"Conv: W_std and b_std must be >= 0, got W_std={W_std!r}, b_std={b_std!r}")
        self.out_chan, self.filter_shape, self.padding, self.W_std, self.b_std = (
            out_chan, filter_shape, padding, W_std, b_std)
        self.name = f"Conv({out_chan}, {filter_shape}, {padding!r}, W_std={W_std}, b_std={b_std})"

    def _check(self, shape: Any) -> None:
        if len(shape) != len(self.filter_shape) + 2:
            raise dm.ShapeError(f"{self.name}: expects channels-last inputs with {len(self.filter_shape)} spatial "
                                f"axes (batch, *spatial, channels), got shape {tuple(shape)}")

    def output_shape(self, input_shape: Any) -> Shape:
        self._check(input_shape)
        sp = [n + sum(_padding(self.name, self.padding, f)) - f + 1
              for n, f in zip(tuple(input_shape)[1:-1], self.filter_shape, strict=True)]
        return (input_shape[0], *sp, self.out_chan)

    def init(self, seed: int | np.random.Generator | None, input_shape: Any) -> tuple[np.ndarray, np.ndarray | None]:
        self._check(input_shape)
        rng = as_rng(seed)
        W = rng.standard_normal((*self.filter_shape, int(input_shape[-1]), self.out_chan))
        return W, None if self.b_std is None else rng.standard_normal(self.out_chan)

    def apply(self, params: Any, x: Any) -> Any:
        from dlmath.nn import functional as F  # the engine's convolution (NCHW); imported here: nn is heavier

        W, b = params
        self._check(np.shape(x))
        ns = len(self.filter_shape)
        if np.shape(x)[-1] != W.shape[-2]:
            raise dm.ShapeError(f"{self.name}: input has {np.shape(x)[-1]} channels, W expects {W.shape[-2]}")
        to_first = (0, ns + 1, *range(1, ns + 1))
        w = dm.transpose(W, (ns + 1, ns, *range(ns)))                    # HWIO -> OIHW
        conv = F.conv1d if ns == 1 else F.conv2d
        out = conv(dm.transpose(x, to_first), w, padding=self.padding.lower())
        out = dm.transpose(out, (0, *range(2, ns + 2), 1))               # NCHW -> NHWC
        out = out * (self.W_std / math.sqrt(math.prod(W.shape[:-1])))
        return out if b is None else out + b * self.b_std

    def kernel_map(self, k: Any) -> Kernel:
        k = _check_kernel(self.name, k)
        ns = n_spatial(k)
        if ns != len(self.filter_shape):
            raise dm.ShapeError(f"{self.name}: the kernel has {ns} spatial axes, the filter {len(self.filter_shape)}")
        w2, b2, size = self.W_std ** 2, (self.b_std or 0.0) ** 2, math.prod(self.filter_shape)

        def op(a: np.ndarray, lead: int) -> np.ndarray:
            for i, f in enumerate(self.filter_shape):
                a = _window_sum(a, (lead + 2 * i, lead + 2 * i + 1), f, _padding(self.name, self.padding, f))
            return a * (w2 / size)
        nngp, ntk, cov1, cov2 = _spatial_op(k, op)
        nngp = nngp + b2
        cov1 = cov1 + b2
        cov2 = cov1 if k.cov2 is k.cov1 else cov2 + b2
        return Kernel(nngp, None if ntk is None else ntk + nngp, cov1, cov2, self.out_chan, True, k.x1_is_x2)


class AvgPool(Layer):
    r"""Average over windows of ``window_shape`` positions, stride 1, channels last (neural-tangents'
    ``stax.AvgPool(window_shape, strides=(1, ...), padding)``, ``normalize_edges=False``: 'SAME' divides by the full
    window). Kernel: each side averages its own window, $\Sigma'_{pp'} = rac1{|F|^2}\sum_{o, o'\in F}
    \Sigma_{p+o,\,p'+o'}$, and $\Theta$ likewise (no parameters)."""

    def __init__(self, window_shape: Sequence[int], padding: str = "VALID") -> None:
        self.window_shape = tuple(int(f) for f in window_shape)
        if len(self.window_shape) not in (1, 2) or min(self.window_shape) < 1:
            raise ValueError(f"AvgPool: window_shape must be 1 or 2 positive ints, got {window_shape!r}")
        for f in self.window_shape:
            _padding("AvgPool", padding, f)
        self.padding, self.name = padding, f"AvgPool({self.window_shape}, {padding!r})"

    def output_shape(self, input_shape: Any) -> Shape:
        sp = [n + sum(_padding(self.name, self.padding, f)) - f + 1
              for n, f in zip(tuple(input_shape)[1:-1], self.window_shape, strict=True)]
        return (input_shape[0], *sp, input_shape[-1])

    def apply(self, params: Any, x: Any) -> Any:
        ns = len(self.window_shape)
        if np.ndim(x) != ns + 2:
            raise dm.ShapeError(f"{self.name}: expects (batch, *spatial, channels) with {ns} spatial axes, "
                                f"got shape {np.shape(x)}")
        out = x
        for i, f in enumerate(self.window_shape):   # separable: a window sum along each spatial axis in turn
            lo, hi = _padding(self.name, self.padding, f)
            ax = 1 + i
            if lo or hi:
                out = dm.pad(out, [(lo, hi) if a == ax else (0, 0) for a in range(np.ndim(out))])
            n = np.shape(out)[ax] - f + 1
            acc = None
            for o in range(f):
                piece = out[(slice(None),) * ax + (slice(o, o + n),)]
                acc = piece if acc is None else acc + piece
            out = acc
        return out * (1.0 / math.prod(self.window_shape))

    def kernel_map(self, k: Any) -> Kernel:
        k = _check_kernel(self.name, k)
        if n_spatial(k) != len(self.window_shape):
            raise dm.ShapeError(f"{self.name}: the kernel has {n_spatial(k)} spatial axes")
        size = math.prod(self.window_shape)

        def op(a: np.ndarray, lead: int) -> np.ndarray:
            for i, f in enumerate(self.window_shape):
                pad = _padding(self.name, self.padding, f)
                a = _window_sum(a, (lead + 2 * i,), f, pad)          # x's window
                a = _window_sum(a, (lead + 2 * i + 1,), f, pad)      # x''s window, independently
            return a / (size * size)
        nngp, ntk, cov1, cov2 = _spatial_op(k, op)
        return Kernel(nngp, ntk, cov1, cov2, k.width, k.is_gaussian, k.x1_is_x2)


class GlobalAvgPool(Layer):
    r"""The mean over every spatial axis: (N, *S, C) -> (N, C). Kernel: $\Sigma'(x, x') = rac1{P^2}\sum_{p,p'}
    \Sigma_{pp'}(x, x')$, $\Theta$ likewise (neural-tangents' ``stax.GlobalAvgPool``)."""

    name = "GlobalAvgPool"

    def output_shape(self, input_shape: Any) -> Shape:
        return (input_shape[0], input_shape[-1])

    def apply(self, params: Any, x: Any) -> Any:
        if np.ndim(x) < 3:
            raise dm.ShapeError(f"GlobalAvgPool: expects (batch, *spatial, channels), got shape {np.shape(x)}")
        return dm.mean(x, axis=tuple(range(1, np.ndim(x) - 1)))

    def kernel_map(self, k: Any) -> Kernel:
        k = _check_kernel(self.name, k)
        if n_spatial(k) == 0:
            raise dm.ShapeError("GlobalAvgPool: the kernel has no spatial axes (inputs (batch, features))")
        nngp, ntk, cov1, cov2 = _spatial_op(k, lambda a, lead: a.mean(axis=tuple(range(lead, a.ndim))))
        return Kernel(nngp, ntk, cov1, cov2, k.width, k.is_gaussian, k.x1_is_x2)


# --------------------------------------------------------------------------- elementwise
KernelFormula = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


class Elementwise(Layer):
    r"""$x \mapsto \phi(x)$ elementwise, $\phi$ written with dlmath ops (so ``apply`` is differentiable).

    ``formula(q1, q2, cov) -> (E[phi phi], E[phi' phi'])`` is its closed-form kernel; without one the kernel comes
    from Gauss–Hermite quadrature (`formulas.gauss_hermite_kernel`) with $\phi'$ from the engine
    (``numerical=True``, the default for a user's function), or is refused (``numerical=False``).
    """

    def __init__(self, fn: Callable[[Any], Any], name: str | None = None, formula: KernelFormula | None = None,
                 numerical: bool = True, degree: int = 40) -> None:
        self.fn, self.formula, self.numerical, self.degree = fn, formula, numerical, degree
        self.name = name or f"Elementwise({getattr(fn, '__name__', 'fn')})"

    def apply(self, params: Any, x: Any) -> Any:
        return self.fn(x)

    def derivative(self, z: np.ndarray) -> np.ndarray:
        r"""$\phi'(z)$ from the engine (reverse mode of $\sum\phi$; elementwise, so that is the derivative)."""
        return np.asarray(dm.grad(lambda t: dm.sum(self.fn(t)))(np.asarray(z)))

    def expectations(self, q1: np.ndarray, q2: np.ndarray, cov: np.ndarray, want_dot: bool
                     ) -> tuple[np.ndarray, np.ndarray | None]:
        if self.formula is not None:
            return self.formula(q1, q2, cov)
        if not self.numerical:
            return Layer.kernel_map(self, None)
        nngp, dot = fm.gauss_hermite_kernel(lambda z: np.asarray(self.fn(z)), self.derivative if want_dot else None,
                                            q1, q2, cov, self.degree)
        return nngp.astype(cov.dtype, copy=False), None if dot is None else dot.astype(cov.dtype, copy=False)

    def kernel_map(self, k: Kernel) -> Kernel:
        k = _check_kernel(self.name, k)
        if self.name == "Identity":
            return k
        if not k.is_gaussian:
            raise ValueError(f"{self.name}: its kernel formula needs Gaussian pre-activations; put a Dense layer "
                             f"before it (as neural-tangents requires)")
        want, ns = k.ntk is not None, n_spatial(k)
        if ns == 0:
            q12, q11, q22 = (k.cov1[:, None], k.cov2[None, :]), (k.cov1, k.cov1), (k.cov2, k.cov2)
        else:
            d1, d2 = _position_variances(k.cov1, ns), _position_variances(k.cov2, ns)
            q12, q11, q22 = _outer(d1, d2, ns, True), _outer(d1, d1, ns, False), _outer(d2, d2, ns, False)
        nngp, dot = self.expectations(*q12, k.nngp, want)
        cov1 = self.expectations(*q11, k.cov1, False)[0]
        cov2 = cov1 if k.cov2 is k.cov1 else self.expectations(*q22, k.cov2, False)[0]
        ntk = None if not want else k.ntk * dot
        return Kernel(nngp, ntk, cov1, cov2, k.width, False, k.x1_is_x2)


def _relu_family(a: float, b: float) -> KernelFormula:
    def formula(q1: np.ndarray, q2: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return fm.relu_kernel(np.sqrt(q1) * np.sqrt(q2), cov, a, b)
    return formula


def ABRelu(a: float, b: float) -> Elementwise:
    r"""$\phi(x) = a\min(x, 0) + b\max(x, 0)$ (neural-tangents' ``ABRelu``); kernel `formulas.relu_kernel`."""
    def fn(x: Any) -> Any:
        return a * dm.minimum(x, 0.0) + b * dm.maximum(x, 0.0)
    return Elementwise(fn, f"ABRelu({a}, {b})", _relu_family(a, b))


def Relu() -> Elementwise:
    r"""$\max(x, 0)$: NNGP $\tfrac12 k_1$, derivative kernel $\tfrac12 k_0$ (arc-cosine kernels, Cho & Saul 2009)."""
    return Elementwise(dm.relu, "Relu", _relu_family(0.0, 1.0))


def LeakyRelu(alpha: float) -> Elementwise:
    r"""$\max(x, 0) + \alpha\min(x, 0)$."""
    layer = ABRelu(alpha, 1.0)
    layer.name = f"LeakyRelu({alpha})"
    return layer


def Abs() -> Elementwise:
    r"""$|x|$."""
    return Elementwise(dm.abs, "Abs", _relu_family(-1.0, 1.0))


def Identity() -> Elementwise:
    """$x$ itself (kernels unchanged)."""
    return Elementwise(lambda x: x, "Identity", lambda q1, q2, cov: (cov, np.ones_like(cov)))


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Elementwise:
    r"""$a\,\operatorname{erf}(bx) + c$ (neural-tangents' ``Erf``); kernel `formulas.erf_kernel` (Williams 1997)."""
    def fn(x: Any) -> Any:
        return a * dm.erf(b * x) + c

    def formula(q1: np.ndarray, q2: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nngp, dot = fm.erf_kernel(b * b * q1, b * b * q2, b * b * cov)
        return a * a * nngp + c * c, a * a * b * b * dot
    return Elementwise(fn, f"Erf({a}, {b}, {c})", formula)


def Gelu() -> Elementwise:
    r"""Exact GELU $x\Phi(x)$; kernel `formulas.gelu_kernel` (Tsuchida et al. 2021)."""
    return Elementwise(dm.gelu, "Gelu", fm.gelu_kernel)


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Elementwise:
    r"""$a\sin(bx + c)$; kernel `formulas.sin_kernel`."""
    def fn(x: Any) -> Any:
        return a * dm.sin(b * x + c)

    def formula(q1: np.ndarray, q2: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return fm.sin_kernel(q1, q2, cov, a, b, c)
    return Elementwise(fn, f"Sin({a}, {b}, {c})", formula)


def Tanh() -> Elementwise:
    """tanh; kernel by Gauss–Hermite quadrature (no closed form)."""
    return Elementwise(dm.tanh, "Tanh")


def Sigmoid() -> Elementwise:
    """The logistic sigmoid; kernel by Gauss–Hermite quadrature."""
    return Elementwise(dm.sigmoid, "Sigmoid")


def Softplus() -> Elementwise:
    r"""$\log(1 + e^x)$; kernel by Gauss–Hermite quadrature."""
    return Elementwise(dm.softplus, "Softplus")


# --------------------------------------------------------------------------- combinators
class _Serial(Layer):
    def __init__(self, layers: Sequence[Layer]) -> None:
        flat: list[Layer] = []
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"serial: expects Layers, got {type(layer).__name__}")
            flat.extend(layer.layers if isinstance(layer, _Serial) else [layer])
        self.layers = tuple(flat)
        self.name = "serial(" + ", ".join(map(repr, self.layers)) + ")"

    def init(self, seed: int | np.random.Generator | None, input_shape: Any) -> list[Any]:
        rng = as_rng(seed)
        params, shape = [], input_shape
        for layer in self.layers:
            params.append(layer.init(rng, shape))
            shape = layer.output_shape(shape)
        return params

    def output_shape(self, input_shape: Any) -> Any:
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def apply(self, params: Any, x: Any) -> Any:
        if len(params) != len(self.layers):
            raise ValueError(f"serial.apply: {len(self.layers)} layers but {len(params)} parameter entries")
        for layer, p in zip(self.layers, params, strict=True):
            x = layer.apply(p, x)
        return x

    def kernel_map(self, k: Any) -> Any:
        for layer in self.layers:
            k = layer.kernel_map(k)
        return k


def serial(*layers: Layer) -> Layer:
    """The composition ``layers[-1] o ... o layers[0]`` (nested serials are flattened)."""
    return _Serial(layers)


class _Parallel(Layer):
    def __init__(self, layers: Sequence[Layer]) -> None:
        self.layers = tuple(layers)
        self.name = "parallel(" + ", ".join(map(repr, self.layers)) + ")"

    def _n(self, xs: Any, what: str) -> None:
        if not isinstance(xs, (list, tuple)) or len(xs) != len(self.layers):
            raise dm.ShapeError(f"{self.name}: expects {len(self.layers)} branches, got {what}")

    def init(self, seed: int | np.random.Generator | None, input_shape: Any) -> list[Any]:
        rng = as_rng(seed)
        self._n(input_shape, f"input shapes {input_shape!r}")
        return [layer.init(rng, s) for layer, s in zip(self.layers, input_shape, strict=True)]

    def output_shape(self, input_shape: Any) -> list[Any]:
        return [layer.output_shape(s) for layer, s in zip(self.layers, input_shape, strict=True)]

    def apply(self, params: Any, x: Any) -> list[Any]:
        self._n(x, f"{type(x).__name__}")
        return [layer.apply(p, xi) for layer, p, xi in zip(self.layers, params, x, strict=True)]

    def kernel_map(self, k: Any) -> list[Any]:
        self._n(k, f"{type(k).__name__}")
        return [layer.kernel_map(ki) for layer, ki in zip(self.layers, k, strict=True)]


def parallel(*layers: Layer) -> Layer:
    """Layer i applied to input i of a list of inputs (after `FanOut`)."""
    return _Parallel(layers)


class FanOut(Layer):
    """One input copied into ``n`` branches."""

    def __init__(self, n: int) -> None:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"FanOut: n must be a positive int, got {n!r}")
        self.n, self.name = n, f"FanOut({n})"

    def output_shape(self, input_shape: Any) -> list[Any]:
        return [input_shape] * self.n

    def apply(self, params: Any, x: Any) -> list[Any]:
        return [x] * self.n

    def kernel_map(self, k: Any) -> list[Any]:
        return [_check_kernel(self.name, k)] * self.n


def _branches(name: str, ks: Any) -> list[Kernel]:
    if not isinstance(ks, (list, tuple)) or not ks:
        raise dm.ShapeError(f"{name}: expects a list of branches, got {type(ks).__name__}")
    return [_check_kernel(name, k) for k in ks]


class FanInSum(Layer):
    r"""The sum of the branches. Kernels add: the branches are independent at infinite width (each but one
    starts with its own random layer), as in neural-tangents."""

    name = "FanInSum"

    def output_shape(self, input_shape: Any) -> Any:
        return input_shape[0]

    def apply(self, params: Any, x: Any) -> Any:
        out = x[0]
        for xi in x[1:]:
            out = out + xi
        return out

    def kernel_map(self, ks: Any) -> Kernel:
        ks = _branches(self.name, ks)
        if len({k.width for k in ks}) > 1:
            raise dm.ShapeError(f"FanInSum: the branches have different widths {[k.width for k in ks]}")
        ntks = [k.ntk for k in ks]
        return Kernel(sum(k.nngp for k in ks), None if ntks[0] is None else sum(ntks),
                      sum(k.cov1 for k in ks), sum(k.cov2 for k in ks), ks[0].width, all(k.is_gaussian for k in ks),
                      ks[0].x1_is_x2)


class FanInConcat(Layer):
    r"""Concatenation along the feature axis. Kernels are the width-weighted average of the branches':
    the next layer normalises by the total width $\sum_i n_i$."""

    name = "FanInConcat"

    def output_shape(self, input_shape: Any) -> Any:
        return (*tuple(input_shape[0])[:-1], sum(int(s[-1]) for s in input_shape))

    def apply(self, params: Any, x: Any) -> Any:
        return dm.concatenate(list(x), axis=-1)

    def kernel_map(self, ks: Any) -> Kernel:
        ks = _branches(self.name, ks)
        n = sum(k.width for k in ks)

        def avg(get: Callable[[Kernel], Any]) -> Any:
            return sum(k.width * get(k) for k in ks) / n
        ntk = None if ks[0].ntk is None else avg(lambda k: k.ntk)
        return Kernel(avg(lambda k: k.nngp), ntk, avg(lambda k: k.cov1), avg(lambda k: k.cov2), n,
                      all(k.is_gaussian for k in ks), ks[0].x1_is_x2)


def residual(block: Layer) -> Layer:
    """$y = x + F(x)$: ``serial(FanOut(2), parallel(Identity(), block), FanInSum())``."""
    return serial(FanOut(2), parallel(Identity(), block), FanInSum())


class _Custom(Layer):
    def __init__(self, apply: Callable[[Any, Any], Any], init: Callable[[np.random.Generator, Any], Any] | None,
                 output_shape: Callable[[Any], Any] | None, name: str) -> None:
        self._apply, self._init, self._shape, self.name = apply, init, output_shape, name

    def init(self, seed: int | np.random.Generator | None, input_shape: Any) -> Any:
        return () if self._init is None else self._init(as_rng(seed), input_shape)

    def output_shape(self, input_shape: Any) -> Any:
        return input_shape if self._shape is None else self._shape(input_shape)

    def apply(self, params: Any, x: Any) -> Any:
        return self._apply(params, x)


def custom(apply: Callable[[Any, Any], Any], init: Callable[[np.random.Generator, Any], Any] | None = None,
           output_shape: Callable[[Any], Any] | None = None, name: str = "custom") -> Layer:
    """A layer from a finite-width ``apply(params, x)`` (and ``init(rng, input_shape)``) only: it has no analytic
    kernel (``kernel`` raises `NoAnalyticKernelError`), but `monte_carlo` and `empirical_ntk` work."""
    return _Custom(apply, init, output_shape, name)

