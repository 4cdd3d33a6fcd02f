"""Process-wide switches of the engine: grad mode, anomaly detection, flop counting.

They are plain module attributes rather than thread-locals because every primitive
call reads them; a thread-local lookup would be a noticeable share of the per-op
overhead on tiny tensors. The engine is therefore not meant to be driven from
several threads at once with different modes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

grad_enabled: bool = True
anomaly_enabled: bool = False
# While detect_anomaly() is on and a VJP rule runs: which op's backward it is (for error messages)
anomaly_context: str | None = None
# The active FlopCounter (see flops.py) or None; typed loosely to keep this module at the bottom.
flop_counter: Any = None


@contextlib.contextmanager
def _switched(name: str, value: Any) -> Iterator[None]:
    """Set this module's switch ``name`` to ``value`` for the block, then restore it."""
    previous = globals()[name]
    globals()[name] = value
    try:
        yield
    finally:
        globals()[name] = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Within this context, ops record nothing on the tape (inference costs plain NumPy)."""
    return _switched("grad_enabled", False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Re-enable recording inside a `no_grad()` block."""
    return _switched("grad_enabled", True)


def is_grad_enabled() -> bool:
    """Whether ops currently record on the tape."""
    return grad_enabled


def detect_anomaly() -> contextlib.AbstractContextManager[None]:
    """Raise `AnomalyError` at the first op whose forward or backward makes a NaN or Inf.

    The error names the op (or the op whose backward produced it), the input shapes
    and which inputs were already non-finite, so a NaN can be traced to where it was made.
    """
    return _switched("anomaly_enabled", True)
