r"""Measurements the chapters share (chapters never import each other; what they share lives here).

Only how two results are compared, never a formula of the module: that lives in nn, kernels or approx.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def max_relative_error(measured: Any, reference: Any) -> float:
    r"""$\max_i |a_i - b_i| \,/\, \max_i |b_i|$ in float64: the error of ``measured`` relative to the scale of
    ``reference`` (Tensors are read through ``.data``). A zero reference gives the absolute error over the
    smallest positive float64, so an exact match is 0 and any mismatch is huge, never NaN."""
    a = np.asarray(getattr(measured, "data", measured), dtype=np.float64)
    b = np.asarray(getattr(reference, "data", reference), dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny))
