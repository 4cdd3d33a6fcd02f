"""dlmath.nn: networks built from the engine's public ops, with PyTorch's names and layouts.

``Module``/``Parameter``/``Sequential``/``ModuleList`` (module.py), the layers (one module
per family), ``dlmath.nn.functional`` (the same operations as functions) and
``dlmath.nn.init`` (initialisers and the default random generator). Chapter 3's
plain-weights MLP (``MLP``, ``mlp_logits``) and the losses live here too.
"""

from . import (
    deep,  # chapter 4's plain and residual MLPs (ch-resbn)
    functional,
    fusion,  # BN folding (ch-resbn)
    init,
    resnet,  # torchvision's ImageNet ResNets (ch-resbn)
    utils,
)
from .activation import GELU, Flatten, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .attention import MultiheadAttention
from .batchnorm import BatchNorm1d, BatchNorm2d
from .conv import Conv1d, Conv2d
from .dropout import Dropout, Dropout1d, Dropout2d
from .functional.loss import cross_entropy, mse_loss
from .init import manual_seed
from .linear import Identity, Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .mlp import MLP, mlp_logits
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential, StateDictError
from .normalization import LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .residual import BasicBlock, PreActBlock, ResNetSmall, resnet_small
from .transformer import TransformerEncoder, TransformerEncoderLayer, sinusoidal_positional_encoding
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell

__all__ = [
    "GELU",
    "MLP",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "BCEWithLogitsLoss",
    "BasicBlock",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Flatten",
    "Identity",
    "IncompatibleKeys",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "PreActBlock",
    "ReLU",
    "ResNetSmall",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "StateDictError",
    "Tanh",
    "cross_entropy",
    "deep",
    "functional",
    "fusion",
    "init",
    "manual_seed",
    "mlp_logits",
    "mse_loss",
    "resnet",
    "resnet_small",
    "utils",
]

from . import conv_math
from .conv_math import (
    conv2d_parameter_count,
    conv2d_toeplitz_matrix,
    conv_output_size,
    convolution_riemann_sum,
    linear_parameter_count,
    receptive_field,
    toeplitz_conv2d,
)

__all__ += [
    "conv2d_parameter_count", "conv2d_toeplitz_matrix", "conv_math", "conv_output_size", "convolution_riemann_sum",
    "linear_parameter_count", "receptive_field", "toeplitz_conv2d",
]
__all__ += ["MultiheadAttention"]
__all__ += ["TransformerEncoder", "TransformerEncoderLayer", "sinusoidal_positional_encoding"]
__all__ += ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell"]  # recurrent.py
