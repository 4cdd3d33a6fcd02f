"""dlmath.nn: networks built from the engine's public ops, with PyTorch's names and layouts.

``Module``/``Parameter``/``Sequential``/``ModuleList`` (module.py), the layers (one module
per family), ``dlmath.nn.functional`` (the same operations as functions) and
``dlmath.nn.init`` (initialisers and the default random generator). Chapter 3's
plain-weights MLP (``MLP``, ``mlp_logits``) and the losses live here too.
"""

from . import functional, init, utils
from .activation import GELU, Flatten, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .dropout import Dropout, Dropout1d, Dropout2d
from .functional.loss import cross_entropy, mse_loss
from .init import manual_seed
from .linear import Identity, Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .mlp import MLP, mlp_logits
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential, StateDictError
from .normalization import LayerNorm
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell

__all__ = [
    "GELU",
    "MLP",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
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
    "Module",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "StateDictError",
    "Tanh",
    "cross_entropy",
    "functional",
    "init",
    "manual_seed",
    "mlp_logits",
    "mse_loss",
    "utils",
]
__all__ += ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell"]  # recurrent.py
