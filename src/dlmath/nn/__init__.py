"""dlmath.nn: networks built from the engine's public ops (PyTorch's names and layouts).

So far: the multilayer perceptron of chapter 3 (`MLP`, `mlp_logits`) and the losses
`cross_entropy` and `mse_loss`. The layers issue grows this package into PyTorch's
``Module``/``Linear``/``Conv2d``... family.
"""

from .losses import cross_entropy, mse_loss
from .mlp import MLP, mlp_logits

__all__ = ["MLP", "cross_entropy", "mlp_logits", "mse_loss"]
__all__ += ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell"]  # recurrent.py
