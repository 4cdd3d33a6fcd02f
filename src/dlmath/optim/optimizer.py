"""`Optimizer`: the base class with PyTorch's structure (``param_groups``, ``state``, ``zero_grad``, ``step``).

``param_groups`` is a list of dicts, each with its ``params`` (a list of Parameters) and its
hyper-parameters (filled from the optimizer's defaults); ``state`` maps a parameter to a dict of
its buffers (momentum, moments, step count). A step changes ``p.data`` in place under
`no_grad` and bumps the parameter's version counter, as the init functions do, so a graph
recorded before the step and needing the old value raises instead of using the new one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..autodiff import Tensor, no_grad

__all__ = ["Optimizer"]


class Optimizer:
    """Base class: subclasses define ``_update(p, grad, group, state)`` for one parameter."""

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (the rest from the defaults)."""
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise TypeError(f"{type(self).__name__}: a parameter group is a dict with a 'params' entry")
        group = dict(param_group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in ps:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__}")
            if p.data.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__} can only optimize floating Tensors, got dtype {p.data.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one parameter group")
        group["params"] = ps
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate one group's hyper-parameters (subclasses)."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the parameters' gradients (None by default, as PyTorch >= 2.0)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = Tensor(np.zeros_like(p.data))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; ``closure`` re-evaluates the loss first."""
        loss = None
        if closure is not None:
            from ..autodiff import enable_grad

            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = np.asarray(p.grad.data if isinstance(p.grad, Tensor) else p.grad)
                    state = self.state.setdefault(p, {})
                    self._update(p, grad, group, state)
                    p._version[0] += 1
        return loss

    def _update(self, p: Tensor, grad: np.ndarray, group: dict[str, Any], state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout: ``{"state": {index: {name: value}}, "param_groups": [{..., "params": [index...]}]}``,
        parameters numbered in the order of the groups; arrays are copies."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v)
                                for k, v in st.items()}
                 for p, st in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyper-parameters and buffers saved by `state_dict` from an optimizer over parameters of
        the same shapes, in the same groups. A ``torch.optim`` optimizer's state dict of the same class
        loads too (its tensors read as arrays)."""
        groups = state_dict.get("param_groups") if isinstance(state_dict, Mapping) else None
        if groups is None or "state" not in state_dict or len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a state dict with 'state' and "
                             f"{len(self.param_groups)} 'param_groups'")
        params: dict[int, Tensor] = {}
        for mine, saved in zip(self.param_groups, groups, strict=True):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: a parameter group of "
                                 f"{len(saved['params'])} parameters does not fit one of {len(mine['params'])}")
            params.update(zip(saved["params"], mine["params"], strict=True))
        new_state: dict[Tensor, dict[str, Any]] = {}
        for i, st in state_dict["state"].items():
            p = params[int(i)]
            new_state[p] = {}
            for k, v in st.items():
                if hasattr(v, "detach") and hasattr(v, "numpy"):  # a torch optimizer's state (torch tensors)
                    v = v.detach().cpu().numpy()
                    v = v.item() if v.ndim == 0 else v  # torch keeps the step count as a 0-d tensor
                if isinstance(v, np.ndarray) and v.shape == p.data.shape:
                    v = np.array(v, dtype=p.data.dtype, copy=True)
                elif isinstance(v, np.ndarray):
                    raise ValueError(f"{type(self).__name__}.load_state_dict: state {k!r} of parameter {i} has "
                                     f"shape {v.shape}, the parameter {p.data.shape}")
                new_state[p][k] = v
        for mine, saved in zip(self.param_groups, groups, strict=True):
            mine.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join([*lines, ")"])
