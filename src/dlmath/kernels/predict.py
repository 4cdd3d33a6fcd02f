r"""Closed-form predictions in the kernel regime: gradient flow on MSE, and GP inference.

Both use one symmetric eigendecomposition $K = V\,\mathrm{diag}(\lambda)\,V^\top$ of the (symmetrised)
train-train kernel. Treatment of the spectrum (where neural-tangents' users meet Cholesky failures and NaN):

- negative eigenvalues are rounding (a kernel is PSD): they are set to 0;
- eigenvalues at or below ``rcond * max(lambda)`` (default ``rcond = N * eps`` of the dtype) are treated as
  exactly zero: at finite time their directions evolve with the limit $(1 - e^{-\lambda s})/\lambda \to s$,
  and at $t = \infty$ (and in GP inference) they are left out, i.e. the pseudo-inverse; no Cholesky anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import dlmath as dm

__all__ = ["Prediction", "gp_inference", "gradient_descent_mse"]


def _sym_eigh(k: np.ndarray, what: str, rcond: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eigenvalues clipped at 0, eigenvectors, mask of the eigenvalues treated as nonzero)."""
    k = np.asarray(k, dtype=np.result_type(np.asarray(k).dtype, np.float32))
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise dm.ShapeError(f"{what}: k_train_train must be square (N, N), got {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError(f"{what}: k_train_train has NaN or infinite entries")
    lam, V = np.linalg.eigh((k + k.T) / 2)
    lam = np.maximum(lam, 0)
    tol = (k.shape[0] * np.finfo(k.dtype).eps if rcond is None else rcond) * max(float(lam.max(initial=0)), 0.0)
    return lam, V, lam > tol


def _as_2d(y: Any, n: int, what: str, name: str) -> tuple[np.ndarray, bool]:
    y = np.asarray(y, dtype=np.float64 if np.asarray(y).dtype != np.float32 else np.float32)
    flat = y.ndim == 1
    y = y[:, None] if flat else y
    if y.ndim != 2 or y.shape[0] != n:
        raise dm.ShapeError(f"{what}: {name} must have {n} rows (one per training point), got shape {y.shape}")
    return y, flat


def gradient_descent_mse(k_train_train: Any, y_train: Any, learning_rate: float, t: float,
                         k_test_train: Any = None, f_train_0: Any = None, f_test_0: Any = None,
                         normalization: float | None = None, rcond: float | None = None,
                         discrete: bool = False) -> Any:
    r"""Outputs at time ``t`` of gradient flow $\dot\theta = -\eta\nabla_\theta L$ on
    $L = \frac1{2n}\lVert f(X) - Y\rVert^2$ in the kernel regime ($n$ = ``normalization``, default
    ``y_train.size`` as neural-tangents; the chapter's $1/(2n)$ for one output):

    $f_t(X) = Y + e^{-\eta K t/n}(f_0(X) - Y)$,
    $f_t(x_*) = f_0(x_*) + K_{*X} K^{-1}\big(I - e^{-\eta K t/n}\big)(Y - f_0(X))$

    (Jacot et al. 2018; Lee et al. 2019, eq. 9–10). ``t`` may be ``np.inf`` (kernel regression). Returns the train
    outputs, or ``(train, test)`` when ``k_test_train`` is given. ``f_*_0`` default to 0.

    ``discrete=True``: ``t`` counts steps of gradient *descent* with step ``learning_rate``, and
    $e^{-\eta K t/n}$ becomes $(I - \eta K/n)^t$ (exact for the linearised network; the flow is its
    $\eta \to 0$ limit).
    """
    what = "gradient_descent_mse"
    lam, V, nz = _sym_eigh(k_train_train, what, rcond)
    n_train = lam.shape[0]
    y, flat = _as_2d(y_train, n_train, what, "y_train")
    f0 = np.zeros_like(y) if f_train_0 is None else _as_2d(f_train_0, n_train, what, "f_train_0")[0]
    if not learning_rate > 0 or not t >= 0:
        raise ValueError(f"{what}: learning_rate must be > 0 and t >= 0, got {learning_rate!r}, {t!r}")
    s = learning_rate * t / (y.size if normalization is None else normalization)
    r0 = V.T @ (f0 - y)                                         # residual in the eigenbasis
    if discrete and not np.isinf(s):
        step = learning_rate / (y.size if normalization is None else normalization)
        decay = (1 - step * lam) ** t
        gain = np.where(nz, (1 - decay) / np.where(nz, lam, 1), step * t)
    elif np.isinf(s):
        decay = np.where(nz, 0.0, 1.0)                             # zero modes never move
        gain = np.where(nz, 1 / np.where(nz, lam, 1), 0.0)         # (1 - e^{-lam s})/lam -> 1/lam; pseudo-inverse
    else:
        decay = np.exp(-lam * s)
        gain = np.where(nz, -np.expm1(-lam * s) / np.where(nz, lam, 1), s)
    f_train = y + V @ (decay[:, None] * r0)
    if flat:
        f_train = f_train[:, 0]
    if k_test_train is None:
        return f_train
    kt = np.asarray(k_test_train, dtype=lam.dtype)
    if kt.ndim != 2 or kt.shape[1] != n_train:
        raise dm.ShapeError(f"{what}: k_test_train must be (N_test, {n_train}), got {kt.shape}")
    ft0 = np.zeros((kt.shape[0], y.shape[1]), y.dtype) if f_test_0 is None else \
        _as_2d(f_test_0, kt.shape[0], what, "f_test_0")[0]
    f_test = ft0 - (kt @ V) @ (gain[:, None] * r0)
    return f_train, (f_test[:, 0] if flat else f_test)


@dataclass(frozen=True)
class Prediction:
    """GP posterior: ``mean`` (N_test, K) and ``covariance`` (N_test, N_test) or None."""

    mean: np.ndarray
    covariance: np.ndarray | None


def gp_inference(k_train_train: Any, y_train: Any, k_test_train: Any, k_test_test: Any = None,
                 diag_reg: float = 0.0, rcond: float | None = None) -> Prediction:
    r"""The posterior of a GP with prior kernel $K$ (the NNGP, or the NTK for the kernel-regression mean):

    $\mu_* = K_{*X}(K + \epsilon I)^{+} Y$, $\;\Sigma_* = K_{**} - K_{*X}(K + \epsilon I)^{+} K_{X*}$,

    with $\epsilon$ = ``diag_reg`` times the mean of $\mathrm{diag}(K)$ (neural-tangents' relative convention);
    $(\cdot)^+$ the pseudo-inverse through the eigendecomposition (Rasmussen & Williams 2006, eq. 2.19; Lee et al.
    2018 for the NNGP).
    """
    what = "gp_inference"
    k = np.asarray(k_train_train, dtype=np.float64)
    if not diag_reg >= 0:
        raise ValueError(f"{what}: diag_reg must be >= 0, got {diag_reg!r}")
    if k.ndim == 2 and k.shape[0] == k.shape[1]:
        k = k + diag_reg * float(np.mean(np.diag(k))) * np.eye(k.shape[0])
    lam, V, nz = _sym_eigh(k, what, rcond)
    y, flat = _as_2d(y_train, lam.shape[0], what, "y_train")
    kt = np.asarray(k_test_train, dtype=np.float64)
    if kt.ndim != 2 or kt.shape[1] != lam.shape[0]:
        raise dm.ShapeError(f"{what}: k_test_train must be (N_test, {lam.shape[0]}), got {kt.shape}")
    inv = np.where(nz, 1 / np.where(nz, lam, 1), 0.0)
    KV = kt @ V
    mean = KV @ (inv[:, None] * (V.T @ y))
    cov = None
    if k_test_test is not None:
        kss = np.asarray(k_test_test, dtype=np.float64)
        if kss.shape != (kt.shape[0], kt.shape[0]):
            raise dm.ShapeError(f"{what}: k_test_test must be ({kt.shape[0]}, {kt.shape[0]}), got {kss.shape}")
        cov = kss - (KV * inv) @ KV.T
        cov = (cov + cov.T) / 2
    return Prediction(mean[:, 0] if flat else mean, cov)
