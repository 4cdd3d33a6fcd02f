r"""`SGD` with momentum, dampening, Nesterov and weight decay: PyTorch's update, step for step.

With $g_t = \nabla f(\theta_{t-1}) + \lambda\theta_{t-1}$ ($-\nabla f$ when ``maximize``):
$b_1 = g_1$, $b_t = \mu b_{t-1} + (1-\tau) g_t$; the step direction is $g_t + \mu b_t$ (Nesterov,
as Sutskever et al. 2013 reformulated) or $b_t$; $\theta_t = \theta_{t-1} - \eta\,\cdot$ direction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..autodiff import Tensor
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize})

    def _check_group(self, group: dict[str, Any]) -> None:
        for key in ("lr", "momentum", "weight_decay"):
            if not group[key] >= 0:
                raise ValueError(f"SGD: invalid {key} {group[key]!r} (must be >= 0)")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p: Tensor, grad: np.ndarray, group: dict[str, Any], state: dict[str, Any]) -> None:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data
        mu = group["momentum"]
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = np.array(g, dtype=p.data.dtype, copy=True)
                state["momentum_buffer"] = buf
            else:
                buf *= mu
                buf += (1 - group["dampening"]) * g
            g = g + mu * buf if group["nesterov"] else buf
        p.data -= (group["lr"] * g).astype(p.data.dtype, copy=False)
