"""dlmath.nn.functional: the layers' operations as functions (``torch.nn.functional``'s names).

Each submodule holds one family; this package re-exports them all.
"""

from .conv import conv1d, conv2d, pad
from .linear import linear
from .pooling import adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d

__all__ = [
    "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d", "linear", "max_pool1d", "max_pool2d", "pad",
]
