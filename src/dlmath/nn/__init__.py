"""dlmath.nn: networks built from the engine's public ops, with PyTorch's names and layouts.

- ``Module``/``Parameter``/``Sequential``/``ModuleList`` (module.py): registration, ``state_dict``
  with PyTorch's dotted keys, ``train``/``eval``.
- Layers, one module per family: linear, activation, conv and pooling, batchnorm and
  normalization (LayerNorm), dropout, attention and transformer, recurrent (RNN/LSTM/GRU),
  residual blocks and ResNets (residual, resnet), chapter 4's deep plain/residual MLPs (deep).
- ``dlmath.nn.functional``: the same operations as functions; ``dlmath.nn.init``: initialisers
  and the default random generator (``manual_seed``); ``dlmath.nn.utils``: gradient clipping;
  ``conv_math``: convolution arithmetic (output sizes, receptive fields, Toeplitz form);
  ``fusion``: folding batch norm into the layer before it.
- Chapter 3's plain-weights MLP (``MLP``, ``mlp_logits``) and the losses.
"""

from . import conv_math, deep, functional, fusion, init, resnet, utils
from .activation import GELU, Flatten, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .attention import MultiheadAttention
from .batchnorm import BatchNorm1d, BatchNorm2d
from .conv import Conv1d, Conv2d
from .conv_math import (
    conv2d_parameter_count,
    conv2d_toeplitz_matrix,
    conv_output_size,
    convolution_riemann_sum,
    linear_parameter_count,
    receptive_field,
    toeplitz_conv2d,
)
from .deep import PlainMLP, ResidualBlock, ResidualMLP
from .dropout import Dropout, Dropout1d, Dropout2d
from .functional.loss import cross_entropy, mse_loss
from .init import manual_seed
from .linear import Identity, Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .mlp import MLP, mlp_logits
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential, StateDictError
from .normalization import LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell
from .residual import BasicBlock, PreActBlock, ResNetSmall, resnet_small
from .resnet import Bottleneck, ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from .transformer import TransformerEncoder, TransformerEncoderLayer, sinusoidal_positional_encoding

__all__ = [
    "GELU",
    "GRU",
    "LSTM",
    "MLP",
    "RNN",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "BCEWithLogitsLoss",
    "BasicBlock",
    "BatchNorm1d",
    "BatchNorm2d",
    "Bottleneck",
    "Conv1d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Flatten",
    "GRUCell",
    "Identity",
    "IncompatibleKeys",
    "LSTMCell",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "MultiheadAttention",
    "NLLLoss",
    "Parameter",
    "PlainMLP",
    "PreActBlock",
    "RNNBase",
    "RNNCell",
    "ReLU",
    "ResNet",
    "ResNetSmall",
    "ResidualBlock",
    "ResidualMLP",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "StateDictError",
    "Tanh",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "conv2d_parameter_count",
    "conv2d_toeplitz_matrix",
    "conv_math",
    "conv_output_size",
    "convolution_riemann_sum",
    "cross_entropy",
    "deep",
    "functional",
    "fusion",
    "init",
    "linear_parameter_count",
    "manual_seed",
    "mlp_logits",
    "mse_loss",
    "receptive_field",
    "resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet_small",
    "sinusoidal_positional_encoding",
    "toeplitz_conv2d",
    "utils",
]
