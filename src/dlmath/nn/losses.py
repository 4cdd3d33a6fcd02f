"""Losses, with PyTorch's names and reductions (mean over the batch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import autodiff as ad


def cross_entropy(logits: Any, labels: np.ndarray) -> Any:
    r"""Mean softmax cross-entropy $-\frac1B\sum_b \log \mathrm{softmax}(z_b)_{y_b}$ from logits
    (B, K) and integer labels (B,); computed through ``log_softmax``, stable for large logits."""
    logp = ad.log_softmax(logits, axis=-1)
    return -ad.mean(logp[np.arange(len(labels)), labels])


def mse_loss(prediction: Any, target: Any) -> Any:
    r"""Mean squared error $\frac1N\sum_i (\hat y_i - y_i)^2$ over every element (PyTorch's default)."""
    diff = prediction - target
    return ad.mean(diff * diff)
