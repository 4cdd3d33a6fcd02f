"""dlmath.nn.functional: the layers' operations as functions (``torch.nn.functional``'s names).

Each submodule holds one family; this package re-exports them all.
"""

from .linear import linear

__all__ = ["linear"]
