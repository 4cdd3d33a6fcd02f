"""dlmath.nn.functional: the layers' operations as functions (``torch.nn.functional``'s names).

Each submodule holds one family; this package re-exports them all.
"""

from .activation import flatten, gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .dropout import dropout, dropout1d, dropout2d
from .linear import linear
from .loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .normalization import batch_norm, batch_norm_composed, batch_norm_train, layer_norm

__all__ = [
    "batch_norm",
    "batch_norm_composed",
    "batch_norm_train",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "dropout",
    "dropout1d",
    "dropout2d",
    "flatten",
    "gelu",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]
