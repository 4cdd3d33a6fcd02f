"""dlmath.optim: optimizers with PyTorch's names, arguments and update formulas (``torch.optim``)."""

from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]
