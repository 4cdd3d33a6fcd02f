"""dlmath: the mathematics of deep learning, as code you can run and claims you can check.

``import dlmath as dm`` gives a NumPy-like differentiable namespace (``dm.tanh``,
``dm.einsum``...), the Tensor, JAX-style transforms (``dm.grad``, ``dm.jvp``...),
and the claim registry behind ``dlmath verify``.
"""

from .autodiff import *  # noqa: F403  (the engine's public names are dlmath's)
from .autodiff import __all__ as _autodiff_all

__version__ = "0.1.0"

__all__ = [*_autodiff_all, "__version__"]
