"""dlmath.nn: networks built from the engine's public ops, with PyTorch's names and layouts.

``Module``/``Parameter``/``Sequential``/``ModuleList`` (module.py), the layers (one module
per family), ``dlmath.nn.functional`` (the same operations as functions) and
``dlmath.nn.init`` (initialisers and the default random generator). Chapter 3's
plain-weights MLP (``MLP``, ``mlp_logits``) and the losses live here too.
"""

from . import functional, init
from .init import manual_seed
from .linear import Identity, Linear
from .losses import cross_entropy, mse_loss
from .mlp import MLP, mlp_logits
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential, StateDictError
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell

__all__ = [
    "MLP", "Identity", "IncompatibleKeys", "Linear", "Module", "ModuleList", "Parameter", "Sequential",
    "StateDictError", "cross_entropy", "functional", "init", "manual_seed", "mlp_logits", "mse_loss",
]
__all__ += ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell"]  # recurrent.py
