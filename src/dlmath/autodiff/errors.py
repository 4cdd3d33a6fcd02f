"""Exceptions raised by the engine.

Every error names the op, the shapes involved and what was expected, so that a
user never has to read a NumPy traceback from deep inside the engine.
"""

from __future__ import annotations


class DlmathError(Exception):
    """Base class of every error raised by dlmath."""


class ShapeError(DlmathError, ValueError):
    """Operands whose shapes do not fit the op (broadcasting, matmul, reshape...)."""


class IndexOutOfRangeError(ShapeError, IndexError):
    """An integer index past the end of an axis; an IndexError too, so Python's iteration protocol
    and ``except IndexError`` work as they do with NumPy arrays."""


class DtypeError(DlmathError, TypeError):
    """A dtype that cannot carry a gradient, or cannot be used by the op."""


class GradientError(DlmathError, RuntimeError):
    """A backward pass that cannot run as asked (non-scalar root without a seed...)."""


class InplaceModificationError(GradientError):
    """A tensor saved for backward was modified in place before backward ran."""


class AnomalyError(DlmathError, FloatingPointError):
    """A NaN or Inf was produced while `detect_anomaly()` was active."""


class AllocationError(DlmathError, MemoryError):
    """An op whose result cannot be allocated; the message names the op and the input shapes."""


class GradcheckError(DlmathError, AssertionError):
    """Analytic and finite-difference gradients disagree beyond tolerance."""

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


class LinAlgError(DlmathError, RuntimeError):
    """A linear-algebra failure: a singular matrix in solve/inv, a matrix that is not positive definite in
    cholesky, a gradient that is not defined at a repeated eigen/singular value (as ``torch.linalg.LinAlgError``,
    a RuntimeError; not a ValueError, so that it is not mistaken for a shape error)."""
