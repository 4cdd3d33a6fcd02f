"""Helpers shared by the functional submodules."""

from __future__ import annotations

from typing import Any

from ...autodiff import Tensor


def innermost(x: Any) -> Any:
    """The innermost array of ``x`` (a dual number's data may itself be a Tensor under nested transforms)."""
    while isinstance(x, Tensor):
        x = x.data
    return x
