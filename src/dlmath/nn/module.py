"""`Module`, `Parameter` and the containers, with PyTorch's names and semantics.

A module owns three ordered dictionaries: its parameters (trainable Tensors), its buffers
(arrays that belong to the state but are not trained, such as BatchNorm's running
statistics) and its child modules. Assigning a `Parameter` or a `Module` to an attribute
registers it, as in ``torch.nn.Module``; names in `state_dict` are PyTorch's dotted
paths (``layer1.0.conv1.weight``), so a state dict moves between the two libraries key
for key.

One deliberate difference: `Module.state_dict` returns copies (PyTorch returns views of
the live storage), so a saved state is not changed by later training steps.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..autodiff import DlmathError, ShapeError, Tensor

__all__ = ["IncompatibleKeys", "Module", "ModuleList", "Parameter", "Sequential", "StateDictError"]


class StateDictError(DlmathError, KeyError):
    """A state dict that does not fit the module: missing, unexpected or mis-shaped keys."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class IncompatibleKeys(NamedTuple):
    """What `Module.load_state_dict(strict=False)` could not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Parameter(Tensor):
    """A Tensor that a `Module` registers as trainable (``requires_grad=True`` by default)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        arr = data.data if isinstance(data, Tensor) else np.asarray(data)
        super().__init__(np.array(arr, copy=True), requires_grad=requires_grad)

    def __repr__(self) -> str:
        return f"Parameter containing:\n{self.data!r}"


def _to_array(value: Any, key: str) -> np.ndarray:
    """An incoming state-dict value as an ndarray: ndarrays, Tensors, and torch tensors (via ``.numpy()``)."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16; float32 holds every bfloat16 exactly
            value = value.float()
        return value.numpy()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise StateDictError(f"state dict entry {key!r}: cannot read a {type(value).__name__} as an array") from exc


class Module:
    """Base class of every layer: subclasses set attributes in ``__init__`` and define ``forward``.

    Registered automatically on assignment: `Parameter` attributes (trainable), `Module`
    attributes (children); buffers through `register_buffer`. ``training`` is switched by
    `train` / `eval` for this module and all its descendants.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())

    # ----- registration ---------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning {name!r}")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            self.__dict__.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            self.__dict__.pop(name, None)
            modules[name] = value
        elif name in params:
            if value is not None:  # PyTorch refuses too: a plain Tensor here would silently stop training
                raise TypeError(f"{type(self).__name__}.{name} is a parameter: assign a Parameter or None, "
                                f"not {type(value).__name__}")
            params[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, np.ndarray):
                raise TypeError(f"{type(self).__name__}.{name} is a buffer: assign an ndarray or None, "
                                f"not {type(value).__name__}")
            buffers[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name} is a child module: assign a Module or None, "
                                f"not {type(value).__name__}")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: parameters, buffers and children live in the registries
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or None, a declared but absent one, like ``bias=False``)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, "
                            f"got {type(param).__name__}")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name: str, array: np.ndarray | None, persistent: bool = True) -> None:
        """Add a buffer: state that `state_dict` saves (if ``persistent``) but optimisers do not train."""
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(f"register_buffer({name!r}): expected an ndarray or None, got {type(array).__name__}")
        self.__dict__.pop(name, None)
        self._buffers[name] = array
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def register_module(self, name: str, module: Module | None) -> None:
        """Add a child module under ``name`` (what attribute assignment does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"register_module({name!r}): expected a Module, got {type(module).__name__}")
        self._modules[name] = module

    add_module = register_module

    # ----- calling --------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ----- traversal ------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", memo: set[int] | None = None) -> Iterator[tuple[str, Module]]:
        """Every module of the tree, this one first, each once, with its dotted name."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_prefix, mod in mods:
            for name, value in getattr(mod, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs, each shared parameter once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, np.ndarray]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every descendant, then on this module (PyTorch's order)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----- modes and gradients --------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch statistics) for this module and its descendants."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): expected a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget accumulated gradients (None by default, as PyTorch >= 2.0)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor(np.zeros_like(p.data))

    # ----- dtype ---------------------------------------------------------------------------
    def to(self, dtype: Any) -> Module:
        """Cast floating parameters and buffers to ``dtype`` (in place, as PyTorch's ``module.to``)."""
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise TypeError(f"Module.to(dtype): expected a floating dtype, got {dt}")
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.data.dtype.kind == "f":
                    p.data = p.data.astype(dt)
                    p.grad = None
            for name, b in m._buffers.items():
                if b is not None and b.dtype.kind == "f":
                    m._buffers[name] = b.astype(dt)
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    # ----- state ---------------------------------------------------------------------------
    def _state_items(self) -> Iterator[tuple[str, Module, str, str]]:
        """(dotted key, owner, registry, local name) for every entry of the state dict, PyTorch's order.

        A module shared between two places appears under both paths, as in PyTorch's ``state_dict``
        (which, unlike ``named_modules``, does not skip modules already visited)."""
        yield from self._state_items_at("")

    def _state_items_at(self, dot: str) -> Iterator[tuple[str, Module, str, str]]:
        for name, p in self._parameters.items():
            if p is not None:
                yield dot + name, self, "_parameters", name
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                yield dot + name, self, "_buffers", name
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_items_at(f"{dot}{name}.")

    def state_dict(self) -> dict[str, np.ndarray]:
        """name -> array (a copy) for every parameter and persistent buffer, with PyTorch's dotted names."""
        out: dict[str, np.ndarray] = {}
        for key, mod, registry, name in self._state_items():
            value = getattr(mod, registry)[name]
            out[key] = np.array(value.data if isinstance(value, Tensor) else value, copy=True)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters and buffers, keeping each one's dtype.

        Mis-shaped entries are always an error; with ``strict`` (default) so are missing and
        unexpected keys. The error names every offending key (and both shapes); nothing is
        written unless everything fits.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping name -> array, got {type(state_dict).__name__}")
        entries = list(self._state_items())
        own = {key for key, *_ in entries}
        missing = [key for key, *_ in entries if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        incoming: dict[str, np.ndarray] = {}
        mis_shaped = []
        for key, mod, registry, name in entries:
            if key not in state_dict:
                continue
            arr = _to_array(state_dict[key], key)
            current = getattr(mod, registry)[name]
            shape = current.shape
            if arr.shape != shape:
                mis_shaped.append(f"{key}: expected shape {shape}, got {arr.shape}")
            incoming[key] = arr
        problems = []
        if mis_shaped:
            problems.append("mis-shaped keys: " + "; ".join(mis_shaped))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(map(str, unexpected)))
        if problems:
            raise StateDictError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        for key, mod, registry, name in entries:
            if key not in incoming:
                continue
            current = getattr(mod, registry)[name]
            if isinstance(current, Tensor):
                current.data = np.array(incoming[key], dtype=current.data.dtype, copy=True)
                current._version[0] += 1
            else:
                getattr(mod, registry)[name] = np.array(incoming[key], dtype=current.dtype, copy=True)
        return IncompatibleKeys(missing, unexpected)

    # ----- printing ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class _IndexedContainer(Module):
    """Item assignment, deletion and insertion by position, shared by `Sequential` and `ModuleList`
    (PyTorch's: deletion renumbers the remaining children ``0, 1, ...``)."""

    def _key(self, idx: int) -> str:
        return list(self._modules)[_index(idx, len(self._modules), type(self).__name__)]

    def __setitem__(self, idx: int, module: Module) -> None:
        self._modules[self._key(idx)] = _check_module(module, f"{type(self).__name__}[{idx}] = ...")

    def __delitem__(self, idx: int | slice) -> None:
        keys = list(self._modules)[idx] if isinstance(idx, slice) else [self._key(idx)]
        for key in keys:
            del self._modules[key]
        object.__setattr__(self, "_modules", OrderedDict((str(i), m) for i, m in enumerate(self._modules.values())))

    def insert(self, index: int, module: Module) -> _IndexedContainer:
        """Insert ``module`` before position ``index`` (children renumbered ``0, 1, ...``)."""
        module = _check_module(module, f"{type(self).__name__}.insert")
        n = len(self._modules)
        if not isinstance(index, (int, np.integer)) or not -n <= index <= n:
            raise IndexError(f"{type(self).__name__}.insert: index {index} is out of range for length {n}")
        items = list(self._modules.values())
        items.insert(int(index) + n if index < 0 else int(index), module)
        object.__setattr__(self, "_modules", OrderedDict((str(i), m) for i, m in enumerate(items)))
        return self


class Sequential(_IndexedContainer):
    """Modules applied in order; children named ``0``, ``1``... (or by an OrderedDict's keys)."""

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, m in modules[0].items():
                self.register_module(str(name), _check_module(m, f"Sequential[{name!r}]"))
        else:
            for i, m in enumerate(modules):
                self.register_module(str(i), _check_module(m, f"Sequential argument {i}"))

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Any:
        items = list(self._modules.values())
        if isinstance(idx, slice):  # keeps the children's names, as PyTorch (so state-dict keys stay the same)
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return items[_index(idx, len(items), "Sequential")]

    def append(self, module: Module) -> Sequential:
        self.register_module(str(len(self)), _check_module(module, "Sequential.append"))
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        for m in modules:
            self.append(m)
        return self


class ModuleList(_IndexedContainer):
    """A list of modules whose parameters are registered (children named ``0``, ``1``...)."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        self.register_module(str(len(self)), _check_module(module, "ModuleList.append"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Any:
        items = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(items[idx])
        return items[_index(idx, len(items), "ModuleList")]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(): iterate over it")


def _check_module(m: Any, where: str) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{where}: expected a Module, got {type(m).__name__}")
    return m


def _index(idx: int, n: int, owner: str) -> int:
    if not isinstance(idx, (int, np.integer)):
        raise TypeError(f"{owner} indices must be integers or slices, not {type(idx).__name__}")
    if not -n <= idx < n:
        raise IndexError(f"{owner} index {idx} is out of range for length {n}")
    return int(idx) % n


def check_input_shape(x: Any, ndims: tuple[int, ...], layer: str, expected: str) -> None:
    """A layer's input must have one of ``ndims`` dimensions; else a ShapeError naming the layer."""
    if np.ndim(x.data if isinstance(x, Tensor) else x) not in ndims:
        raise ShapeError(f"{layer}: expected input of shape {expected}, got shape {np.shape(getattr(x, 'data', x))}")
