r"""`clip_grad_norm_` (``torch.nn.utils.clip_grad_norm_``): rescale gradients to a maximum total norm.

Total norm $\|g\|_p = (\sum_k \|g_k\|_p^p)^{1/p}$ over every parameter's gradient ($\max_k \max|g_k|$
for $p = \infty$); each gradient is multiplied by $\min(1, c/(\|g\|_p + 10^{-6}))$ (Pascanu et al. 2013).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ...autodiff import GradientError, Tensor

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale the gradients in place so that their total ``norm_type`` norm is at most ``max_norm``;
    returns the total norm before clipping (a float; PyTorch returns a 0-d tensor)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    arrays = [np.asarray(g.data if isinstance(g, Tensor) else g) for g in grads]
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    else:
        per = np.array([np.linalg.norm(a.ravel(), ord=norm_type) if a.size else 0.0 for a in arrays])
        total = float(np.linalg.norm(per, ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise GradientError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                                 f"{total}, so they cannot be clipped (error_if_nonfinite=True)")
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        if isinstance(g, Tensor):
            g.data *= g.data.dtype.type(coef)
            g._version[0] += 1
        else:
            g *= coef
    return total
