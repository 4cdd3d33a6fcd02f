"""dlmath.nn.functional: the layers' operations as functions (``torch.nn.functional``'s names).

Each submodule holds one family; this package re-exports them all.
"""

from .attention import attention_probabilities, causal_mask, scaled_dot_product_attention
from .linear import linear

__all__ = ["linear"]
__all__ += ["attention_probabilities", "causal_mask", "scaled_dot_product_attention"]
