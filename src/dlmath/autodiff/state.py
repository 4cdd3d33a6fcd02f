"""The engine's switches, one set per thread: grad mode, anomaly detection, flop counting,
forward-mode traces and transform nesting.

They are per thread, as PyTorch's grad mode is, so that two threads can run forward and
backward passes on their own graphs at once. One `threading.local` object holds them all:
reading one of its attributes costs about as much as reading a module global, which matters
because every primitive call reads them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any


class _Switches(threading.local):
    """Class attributes are each thread's initial values."""

    grad_enabled: bool = True
    anomaly_enabled: bool = False
    # While detect_anomaly() is on and a VJP rule runs: which op's backward it is (for error messages)
    anomaly_context: str | None = None
    # The active FlopCounter (see flops.py) or None; typed loosely to keep this module at the bottom
    flop_counter: Any = None
    # How many true forward-mode (dual number) traces are active; while > 0, ops propagate tangents
    forward_depth: int = 0
    # The innermost active forward trace (a token made by dm.jvp): only tangents tagged with it are pushed, so
    # a dual number that escaped an earlier jvp (through a closure or a global) cannot leak its tangent
    forward_trace: object | None = None
    # True while JVP rules run: their own ops must not propagate tangents again
    in_jvp_rule: bool = False
    # How many function transforms are calling their function right now (their nesting level)
    transform_depth: int = 0


switches = _Switches()


class _Mode:
    """Set one switch for a block: a reusable context manager and a decorator.

    ``with dm.no_grad(): ...``, ``@dm.no_grad()`` and bare ``@dm.no_grad`` all work; one
    instance may be entered many times, nested or in turn (it keeps a stack of the values
    it replaced).
    """

    name: str = ""
    value: Any = None

    def __init__(self, func: Callable[..., Any] | None = None) -> None:
        self._saved: list[Any] = []
        self._func = func
        if func is not None:
            functools.update_wrapper(self, func)

    def __enter__(self) -> None:
        self._saved.append(getattr(switches, self.name))
        setattr(switches, self.name, self.value)

    def __exit__(self, *exc: object) -> None:
        setattr(switches, self.name, self._saved.pop())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._func is None:  # @no_grad(): decorate the function given
            (func,) = args
            return type(self)(func)
        with type(self)():  # a fresh instance per call: safe under recursion and threads
            return self._func(*args, **kwargs)


class no_grad(_Mode):
    """Within this block (or decorated function), ops record nothing on the tape: inference costs plain NumPy."""

    name, value = "grad_enabled", False


class enable_grad(_Mode):
    """Re-enable recording inside a `no_grad()` block."""

    name, value = "grad_enabled", True


class detect_anomaly(_Mode):
    """Raise `AnomalyError` at the first op whose forward or backward makes a NaN or Inf.

    The error names the op (or the op whose backward produced it), the input shapes
    and which inputs were already non-finite, so a NaN can be traced to where it was made.
    """

    name, value = "anomaly_enabled", True


def is_grad_enabled() -> bool:
    """Whether ops currently record on the tape (in this thread)."""
    return switches.grad_enabled
