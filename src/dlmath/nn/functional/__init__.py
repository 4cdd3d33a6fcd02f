"""dlmath.nn.functional: the layers' operations as functions (``torch.nn.functional``'s names).

Each submodule holds one family; this package re-exports them all.
"""

from .activation import flatten, gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .attention import (
    attention_probabilities,
    attention_scale,
    causal_mask,
    linear_attention,
    positive_random_features,
    scaled_dot_product_attention,
)
from .conv import conv1d, conv2d, conv_output_size, pad
from .dropout import dropout, dropout1d, dropout2d
from .linear import linear
from .loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .normalization import batch_norm, batch_norm_composed, batch_norm_train, layer_norm, layer_norm_affine
from .pooling import adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d, pool_output_size

__all__ = [
    "adaptive_avg_pool2d",
    "attention_probabilities",
    "attention_scale",
    "avg_pool1d",
    "avg_pool2d",
    "batch_norm",
    "batch_norm_composed",
    "batch_norm_train",
    "binary_cross_entropy_with_logits",
    "causal_mask",
    "conv1d",
    "conv2d",
    "conv_output_size",
    "cross_entropy",
    "dropout",
    "dropout1d",
    "dropout2d",
    "flatten",
    "gelu",
    "layer_norm",
    "layer_norm_affine",
    "leaky_relu",
    "linear",
    "linear_attention",
    "log_softmax",
    "max_pool1d",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "pad",
    "pool_output_size",
    "positive_random_features",
    "relu",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "tanh",
]
