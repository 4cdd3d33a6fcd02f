"""Counting floating-point operations of the ops that run, forward and backward.

The count is deterministic (it depends on shapes only), which makes claims about the
cost of reverse mode reproducible on any machine, unlike timings. The per-op formula
lives beside each primitive in ops.py; the convention is documented there.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

from .state import switches


class FlopCounter:
    """Totals of flops by phase ('forward', 'backward') and by (phase, op)."""

    def __init__(self, parent: FlopCounter | None = None) -> None:
        self.parent = parent  # an enclosing count_flops block, which counts these flops too
        self.phase = "forward"
        self.by_phase: Counter[str] = Counter()
        self.by_op: Counter[tuple[str, str]] = Counter()
        self.calls: Counter[tuple[str, str]] = Counter()

    def record(self, prim: Any, raw: tuple[Any, ...], out: Any, kwargs: dict[str, Any]) -> None:
        n = int(prim.flops(out, *raw, **kwargs))
        self.by_phase[self.phase] += n
        self.by_op[(self.phase, prim.name)] += n
        self.calls[(self.phase, prim.name)] += 1
        if self.parent is not None:
            saved, self.parent.phase = self.parent.phase, self.phase
            self.parent.record(prim, raw, out, kwargs)
            self.parent.phase = saved

    @property
    def forward(self) -> int:
        return self.by_phase["forward"]

    @property
    def backward(self) -> int:
        return self.by_phase["backward"]

    @property
    def total(self) -> int:
        return self.forward + self.backward

    def __repr__(self) -> str:
        return f"FlopCounter(forward={self.forward}, backward={self.backward})"


@contextlib.contextmanager
def count_flops() -> Iterator[FlopCounter]:
    """Count the flops of every primitive run inside the block, forward and backward.

    >>> with dm.count_flops() as c:
    ...     loss = f(w); loss.backward()
    >>> c.backward / c.forward

    Only dlmath ops are counted; a block that ran none (plain NumPy on arrays) gives a
    RuntimeWarning rather than a silent zero.
    """
    previous = switches.flop_counter
    counter = FlopCounter(previous)
    switches.flop_counter = counter
    try:
        yield counter
    finally:
        switches.flop_counter = previous
    if not counter.calls:
        warnings.warn("count_flops() saw no dlmath op in its block: NumPy operators and functions on plain arrays "
                      "(a @ b, a * b, np.tanh(a)) are invisible to it. Use dm.* functions, or make the inputs "
                      "Tensors (dm.tensor) so that operators go through dlmath.", RuntimeWarning, stacklevel=3)
