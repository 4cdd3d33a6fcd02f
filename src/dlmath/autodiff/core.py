"""The bottom of the engine: the Tensor's state, the tape's Node, the Primitive and `apply`.

Everything else imports this module one way. The op table (``ops.py``) creates the
primitives; ``methods.py`` attaches the Tensor's operators and methods from that table;
``sweep.py`` walks the tape backwards; ``transforms.py`` builds grad/vjp/jvp on top.

A primitive bundles a NumPy forward, one VJP rule and one JVP rule per differentiable
argument (or a declaration that it is linear there) and a floating-point-operation count,
as HIPS autograd's primitives do. Rules are written with generic arithmetic and the
`dm.*` ops, so the same rule runs on plain arrays and, when recorded, on Tensors: that is
what makes higher-order derivatives free (DeZero's design).

Calling a primitive:
* no Tensor among the arguments  -> plain NumPy, nothing recorded;
* Tensors, but none requires grad (or grad mode off) -> a Tensor, nothing recorded;
* otherwise -> a Tensor with a `Node` that remembers the op, its arguments and the
  versions of the tensors it saved;
* and in every case, if an argument carries a tangent (forward mode, `dm.jvp`), the
  output carries the tangent the JVP rules give (dual numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import (
    AllocationError,
    AnomalyError,
    DlmathError,
    DtypeError,
    GradientError,
    IndexOutOfRangeError,
    InplaceModificationError,
    ShapeError,
)
from .state import switches

VjpRule = Callable[..., Any]
JvpRule = Callable[..., Any]
FlopRule = Callable[..., int]
ArrayLike = Any


# ================================================================================ the Tensor
def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Python scalars and lists become float64; arrays keep their dtype (float32 stays float32).

    Data that is not numeric (strings, None, objects) is refused here, at construction."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) and dtype is None:
        arr = data
    elif isinstance(data, np.generic) and dtype is None:
        arr = np.asarray(data)
    else:
        try:
            arr = np.asarray(data, dtype=dtype)
        except ValueError as exc:  # ragged nested lists, or strings that are not numbers
            raise ShapeError(f"tensor: data does not form a rectangular numeric array: {exc}") from None
        except TypeError as exc:
            raise DtypeError(f"tensor: cannot make a numeric array from {type(data).__name__}: {exc}") from None
        if dtype is None and arr.dtype.kind in "biu" and not isinstance(data, np.ndarray):
            arr = arr.astype(np.float64)
    if arr.dtype.kind not in "biufc":
        raise DtypeError(f"tensor: data of type {type(data).__name__} gives a NumPy array of dtype {arr.dtype}; "
                         f"a Tensor holds numbers (bool, int, float or complex)")
    return arr


def check_differentiable_dtype(arr: np.ndarray, what: str) -> None:
    """Raise DtypeError unless ``arr`` is floating point (complex and integers cannot carry gradients)."""
    if arr.dtype.kind == "c":
        raise DtypeError(f"{what} has dtype {arr.dtype}; gradients of complex tensors are not supported "
                         f"(their conjugation convention is not implemented): use real and imaginary parts")
    if arr.dtype.kind != "f":
        raise DtypeError(f"{what} has dtype {arr.dtype}; only floating-point tensors can require "
                         f"gradients (convert with dm.tensor(x, dtype=np.float64) or .astype(np.float64))")


class Tensor:
    """An n-d array with automatic differentiation.

    Attributes: ``data`` (the NumPy array), ``grad`` (a Tensor, filled by ``backward`` on
    leaves), ``requires_grad``. The operators and the NumPy-like methods (``+``, ``@``,
    ``.sum()``, ``.reshape()``...) are attached by ``methods.py`` from the op table, so the
    derivative of each lives in one place, ``ops.py``.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "_version", "_tangent", "__weakref__")
    __array_ufunc__ = None  # `ndarray op Tensor` defers to Tensor's reflected operators
    __array_priority__ = 1000

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> None:
        arr = _as_array(data, dtype)
        if requires_grad:
            check_differentiable_dtype(arr, "tensor")
        self.data: np.ndarray = arr
        self.grad: Tensor | None = None
        self.requires_grad: bool = requires_grad
        self._node: Node | None = None
        # a one-element list, shared with .detach()ed views of the same data, bumped by in-place ops
        self._version: list[int] = [0]
        # forward mode: (trace, tangent) of a dual number, the tangent an array or a Tensor on a tape
        self._tangent: tuple[object, Any] | None = None

    @classmethod
    def _wrap(cls, arr: Any) -> Tensor:
        """A constant Tensor around an array produced by an op (no copy, no checks)."""
        t = cls.__new__(cls)
        t.data = arr if type(arr) is np.ndarray else np.asarray(arr)
        t.grad = None
        t.requires_grad = False
        t._node = None
        t._version = [0]
        t._tangent = None
        return t

    # ----- introspection -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def op_name(self) -> str | None:
        """Name of the primitive that produced this tensor (None for a leaf)."""
        return None if self._node is None else self._node.prim.name

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype != np.float64:
            extra += f", dtype={self.data.dtype}"
        if self._node is not None:
            extra += f", grad_fn={self._node.prim.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        if self._tangent is not None:
            extra += ", dual"
        return f"tensor({body}{extra})"

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> float:
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self.requires_grad:
            raise GradientError("cannot convert a Tensor that requires grad to a NumPy array implicitly "
                                "(the gradient would be lost silently); use t.detach().numpy()")
        return self.data if dtype is None else self.data.astype(dtype)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    __hash__ = object.__hash__

    # ----- autograd --------------------------------------------------------------------
    def detach(self) -> Tensor:
        """A Tensor sharing the data (and its version counter), cut from the tape."""
        t = Tensor._wrap(self.data)
        t._version = self._version
        return t

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag:
            check_differentiable_dtype(self.data, "tensor")
        if not flag and self._node is not None:
            raise GradientError("requires_grad_(False) on a non-leaf tensor; use .detach()")
        self.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ----- in-place ops (bump the version so saved tensors can be checked) ------------------
    def _check_inplace(self, what: str) -> None:
        if self.requires_grad and switches.grad_enabled:
            kind = "a leaf tensor that requires grad" if self._node is None else "a tensor on the tape"
            raise InplaceModificationError(
                f"{what} on {kind} of shape {self.shape} ({self.dtype}); do it under dm.no_grad() "
                f"(as an optimizer does) or on a copy (dm.tensor(t))")

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace("item assignment")
        if isinstance(value, Tensor) and value.requires_grad and switches.grad_enabled:
            raise GradientError(
                f"item assignment of a tensor that requires grad (shape {value.shape}) would drop its "
                f"gradient; build the result with dm.where, dm.concatenate or dm.stack instead")
        self.data[index_of(index)] = unwrap(value)
        self._version[0] += 1

    def _inplace(self, ufunc: np.ufunc, other: Any, what: str) -> Tensor:
        self._check_inplace(what)
        ufunc(self.data, unwrap(other), out=self.data, casting="same_kind")
        self._version[0] += 1
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(np.add, other, "in-place +=")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(np.subtract, other, "in-place -=")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(np.multiply, other, "in-place *=")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(np.divide, other, "in-place /=")

    def __imod__(self, other: Any) -> Tensor:
        return self._inplace(np.remainder, other, "in-place %=")

    def zero_(self) -> Tensor:
        self._check_inplace("zero_()")
        self.data[...] = 0
        self._version[0] += 1
        return self


def unwrap(x: Any) -> Any:
    """The array inside a Tensor; anything else unchanged."""
    return x.data if isinstance(x, Tensor) else x


def index_of(index: Any) -> Any:
    """An index for NumPy: Tensors inside it (e.g. labels) index by their integer or boolean values."""
    if isinstance(index, tuple):
        return tuple(_index_value(i) for i in index)
    return _index_value(index)


def _index_value(i: Any) -> Any:
    if not isinstance(i, Tensor):
        return i
    if i.data.dtype.kind not in "biu":
        raise DtypeError(f"an index tensor must hold integers or booleans, got {i.data.dtype} (dm.tensor makes "
                         f"lists float64: index with np.array([...]) or dm.tensor(..., dtype=np.int64))")
    return i.data


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a Tensor. Python scalars and lists become float64; arrays keep their dtype.

    The array is copied (as `torch.tensor` does), so later changes to ``data`` do not
    reach the tensor. Strings, None and other non-numeric data are refused with a DtypeError.
    """
    arr = _as_array(data, dtype)
    return Tensor(np.array(arr), requires_grad=requires_grad)


def as_tensor(data: ArrayLike, dtype: Any = None) -> Tensor:
    """A constant Tensor sharing memory with ``data`` where possible (as `torch.from_numpy`): changing the
    array in place later changes the tensor too, which is the point of sharing."""
    if isinstance(data, Tensor) and dtype is None:
        return data
    return Tensor(_as_array(data, dtype))


# ================================================================================ primitives
def _zero_flops(*_args: Any, **_kwargs: Any) -> int:
    return 0


class Primitive:
    """A differentiable NumPy function: forward, VJP and JVP rules, flop count.

    Reverse mode: ``vjps[i](g, ans, *args, **kwargs)`` returns the cotangent of argument
    ``i`` given the output cotangent ``g``; it may have a broadcast shape, which the sweep
    sums back to the argument's shape. ``vjp_any(i, g, ans, *args, **kwargs)`` serves
    variadic ops.

    Forward mode: ``jvps[i](t, ans, *args, **kwargs)`` returns the output tangent that the
    tangent ``t`` of argument ``i`` causes (contributions of several arguments are summed;
    a contribution may have a shape that broadcasts to the output's). ``jvp_any`` serves
    variadic ops. A primitive that is *linear* in its differentiable arguments declares
    them (``linear=(0, 1)`` or ``linear="all"``) and needs no JVP rule: its output tangent
    is the op itself applied to the tangents (zeros where an argument has none).
    """

    def __init__(self, name: str, forward: Callable[..., Any], flops: FlopRule | None = None,
                 doc: str | None = None, reads_inputs: bool = True, reads_output: bool = False,
                 linear: tuple[int, ...] | str | None = None) -> None:
        self.name = name
        # False for ops whose VJP rules use only shapes (add, reshape, getitem...): changing their
        # inputs in place after the forward cannot make the gradient wrong, so it is not an error
        self.reads_inputs = reads_inputs
        # True for ops whose VJP rules use the output (exp: g * ans): it must not change either
        self.reads_output = reads_output
        self.linear = linear
        self.__name__ = name
        self.__qualname__ = name
        self.forward = forward
        self.vjps: tuple[VjpRule | None, ...] = ()
        self.vjp_any: Callable[..., Any] | None = None
        self.jvps: tuple[JvpRule | None, ...] = ()
        self.jvp_any: Callable[..., Any] | None = None
        self.flops = flops or _zero_flops
        self.__doc__ = doc or forward.__doc__

    def defvjp(self, *rules: VjpRule | None) -> Primitive:
        self.vjps = rules
        return self

    def defvjp_any(self, rule: Callable[..., Any]) -> Primitive:
        self.vjp_any = rule
        return self

    def defjvp(self, *rules: JvpRule | None) -> Primitive:
        self.jvps = rules
        return self

    def defjvp_any(self, rule: Callable[..., Any]) -> Primitive:
        self.jvp_any = rule
        return self

    @property
    def has_jvp(self) -> bool:
        """Whether forward mode has a rule of its own (written, or linearity declared)."""
        return self.linear is not None or self.jvp_any is not None or any(r is not None for r in self.jvps)

    def vjp_rule(self, argnum: int) -> VjpRule:
        if self.vjp_any is not None:
            rule = self.vjp_any
            return lambda g, ans, *args, **kw: rule(argnum, g, ans, *args, **kw)
        if argnum < len(self.vjps) and self.vjps[argnum] is not None:
            return self.vjps[argnum]  # type: ignore[return-value]
        raise DlmathError(f"op '{self.name}' is not differentiable with respect to argument {argnum}")

    def jvp_rule(self, argnum: int) -> JvpRule:
        if self.jvp_any is not None:
            rule = self.jvp_any
            return lambda t, ans, *args, **kw: rule(argnum, t, ans, *args, **kw)
        if argnum < len(self.jvps) and self.jvps[argnum] is not None:
            return self.jvps[argnum]  # type: ignore[return-value]
        raise DlmathError(f"op '{self.name}' has no forward-mode (JVP) rule for argument {argnum}")

    def __repr__(self) -> str:
        return f"<dlmath primitive {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for a in args:
            if isinstance(a, Tensor):
                return apply(self, args, kwargs)
        sw = switches
        if sw.flop_counter is not None or sw.anomaly_enabled:
            return apply(self, args, kwargs, plain=True)
        try:
            return self.forward(*args, **kwargs)
        except (ValueError, IndexError) as exc:
            raise _shape_error(self, args, exc) from None
        except TypeError as exc:
            raise _type_error(self, args, exc) from None
        except MemoryError:
            raise _allocation_error(self, args) from None


class Node:
    """One entry of the tape: the op that made a tensor and what it consumed."""

    __slots__ = ("prim", "args", "kwargs", "versions", "out_version")

    def __init__(self, prim: Primitive, args: tuple[Any, ...], kwargs: dict[str, Any],
                 versions: tuple[int, ...] | None, out_version: int) -> None:
        self.prim = prim
        self.args = args
        self.kwargs = kwargs
        self.versions = versions        # of the Tensor arguments, when the VJP rules read them
        self.out_version = out_version  # of the output, checked when the VJP rules read it (ans)


def describe(x: Any) -> str:
    """A short description of an argument for error messages: shape and dtype."""
    if isinstance(x, Tensor):
        x = x.data
    if isinstance(x, np.ndarray):
        return f"array{tuple(x.shape)} {x.dtype}"
    if isinstance(x, (list, tuple)) and x and all(isinstance(e, (Tensor, np.ndarray)) for e in x):
        return "[" + ", ".join(describe(e) for e in x) + "]"
    return type(x).__name__


def _shape_error(prim: Primitive, args: tuple[Any, ...], exc: Exception) -> DlmathError:
    shapes = ", ".join(describe(a) for a in args)
    if isinstance(exc, IndexError):
        return IndexOutOfRangeError(f"{prim.name}: the index does not fit ({shapes}): {exc}")
    return ShapeError(f"{prim.name}: operands do not fit ({shapes}): {exc}")


def _type_error(prim: Primitive, args: tuple[Any, ...], exc: Exception) -> DlmathError:
    kinds = ", ".join(describe(a) for a in args)
    return DtypeError(f"{prim.name}: cannot apply to ({kinds}); expected numeric arrays, Tensors or "
                      f"Python numbers: {exc}")


def _allocation_error(prim: Primitive, args: tuple[Any, ...]) -> DlmathError:
    shapes = ", ".join(describe(a) for a in args)
    return AllocationError(f"{prim.name}: not enough memory to compute the result for inputs ({shapes}); "
                           f"use smaller shapes, a smaller batch or float32")


def apply(prim: Primitive, args: tuple[Any, ...], kwargs: dict[str, Any], plain: bool = False) -> Any:
    """Run a primitive on Tensors/arrays; record it on the tape and push tangents when needed."""
    # one pass over the arguments: this function runs once per op, so its cost is the engine's
    # per-op overhead on small tensors (see BENCHMARKS.md)
    raw = []
    record = dual = plain_arrays = False
    for a in args:
        if isinstance(a, Tensor):
            raw.append(a.data)
            if a.requires_grad:
                record = True
            if a._tangent is not None:
                dual = True
        else:
            raw.append(a)
            if type(a) is np.ndarray:
                plain_arrays = True
    try:
        out = prim.forward(*raw, **kwargs)
    except (ValueError, IndexError) as exc:
        raise _shape_error(prim, args, exc) from None
    except TypeError as exc:
        raise _type_error(prim, args, exc) from None
    except MemoryError:
        raise _allocation_error(prim, args) from None
    sw = switches
    counter = sw.flop_counter
    if counter is not None:
        counter.record(prim, tuple(raw), out, kwargs)
    if sw.anomaly_enabled:
        phase = "forward" if sw.anomaly_context is None else sw.anomaly_context
        check_finite(out, prim, tuple(raw), phase)
    if plain:
        return out
    data = out if type(out) is np.ndarray else np.asarray(out)
    t = Tensor.__new__(Tensor)
    t.data = data
    t.grad = None
    t._tangent = None
    t._version = version = _version_counter(data, args)
    record = record and sw.grad_enabled
    if record:
        if data.dtype.kind == "c":
            raise _complex_error(prim, args, data)
        if prim.reads_inputs:
            if plain_arrays:
                # a plain array the backward reads is copied: changing it in place after the forward pass
                # must not change the gradient (Tensors are protected by their version counters instead)
                args = tuple([np.array(a) if type(a) is np.ndarray and a.flags.writeable else a for a in args])
            versions = tuple([a._version[0] for a in args if isinstance(a, Tensor)])
        else:
            versions = None
        t.requires_grad = True
        t._node = Node(prim, args, kwargs, versions, version[0])
    else:
        t.requires_grad = False
        t._node = None
    if dual and not sw.in_jvp_rule and sw.forward_trace is not None:
        tangent = push_tangents(prim, args, raw, t if record else data, kwargs, record)
        if tangent is not None:
            if data.dtype.kind == "c":
                raise _complex_error(prim, args, data)
            t._tangent = (sw.forward_trace, tangent)
    return t


def tangent_of(x: Any, trace: object) -> Any:
    """The tangent that ``x`` carries in forward trace ``trace`` (None: none, or a stale one from another trace)."""
    if isinstance(x, Tensor) and x._tangent is not None and x._tangent[0] is trace:
        return x._tangent[1]
    return None


def _complex_error(prim: Primitive, args: tuple[Any, ...], data: np.ndarray) -> DlmathError:
    return DtypeError(f"{prim.name} made a complex result (dtype {data.dtype}) from "
                      f"({', '.join(describe(a) for a in args)}) inside a differentiated computation; "
                      f"gradients of complex values are not supported: work with real and imaginary parts")


def push_tangents(prim: Primitive, args: tuple[Any, ...], raw: list[Any], ans: Any, kwargs: dict[str, Any],
                  on_tape: bool) -> Any:
    r"""The output tangent $\dot y = \sum_i \partial_i f\,\dot x_i$ from the arguments' tangents in the
    active forward trace (None when no argument has one).

    The rules see the primal arguments as Tensors when the output is on a reverse tape (so
    that the tangent can be differentiated again, reverse over forward), as plain arrays
    otherwise (so forward mode on arrays costs plain NumPy). Their own ops do not push
    tangents again.
    """
    sw = switches
    trace = sw.forward_trace
    tangents = [tangent_of(a, trace) for a in args]
    if all(t is None for t in tangents):
        return None
    primals: Any = args if on_tape else raw
    if sw.flop_counter is not None and not on_tape:
        # operators between plain arrays inside the rules would be invisible to the counter: run the
        # rules on constant Tensors, as the reverse sweep's counting mode does
        primals = [Tensor._wrap(p) if isinstance(a, Tensor) else p for p, a in zip(primals, args, strict=True)]
        tangents = [Tensor._wrap(t) if isinstance(t, np.ndarray) else t for t in tangents]
        ans = Tensor._wrap(ans)
    previous, sw.in_jvp_rule = sw.in_jvp_rule, True
    try:
        if prim.linear is not None:
            positions = range(len(args)) if prim.linear == "all" else prim.linear
            substituted = list(primals)
            for i in positions:
                substituted[i] = tangents[i] if tangents[i] is not None else _zero_tangent(raw[i])
            out = prim(*substituted, **kwargs)
        else:
            out = None
            for i, t in enumerate(tangents):
                if t is None:
                    continue
                contribution = prim.jvp_rule(i)(t, ans, *primals, **kwargs)
                out = contribution if out is None else out + contribution
    finally:
        sw.in_jvp_rule = previous
    shape, dtype = unwrap(ans).shape, unwrap(ans).dtype
    if isinstance(out, Tensor) and not on_tape and not out.requires_grad:
        out = out.data  # a constant Tensor from the counting path: back to an array
    if isinstance(out, Tensor):
        if out.shape != shape:
            out = out.broadcast_to(shape)
        if out.dtype != dtype:
            out = out.astype(dtype)
        return out
    out = np.asarray(out)
    if out.shape != shape:
        out = np.broadcast_to(out, shape)
    if out.dtype != dtype:
        out = out.astype(dtype)
    return out


def _zero_tangent(x: Any) -> Any:
    """The tangent of an argument that has none: zeros of its shape (a broadcast view: no allocation)."""
    arr = np.asarray(x)
    dtype = arr.dtype if arr.dtype.kind == "f" else np.float64
    return np.broadcast_to(np.zeros((), dtype=dtype), arr.shape)


def _version_counter(data: np.ndarray, args: tuple[Any, ...]) -> list[int]:
    """A new counter for fresh data; the input's counter when ``data`` is a view of an input's data,
    so that an in-place change through the view is seen by every op that saved the input (as torch)."""
    if data.base is None:
        for a in args:
            if isinstance(a, Tensor) and a.data is data:
                return a._version
        return [0]
    for a in args:
        if isinstance(a, Tensor) and np.may_share_memory(data, a.data):
            return a._version
    return [0]


def check_finite(out: Any, prim: Primitive, raw: tuple[Any, ...], phase: str) -> None:
    """Raise AnomalyError if `out` holds a NaN/Inf (detect_anomaly mode only)."""
    arr = unwrap(out)
    if isinstance(arr, (np.ndarray, np.generic, float)) and np.issubdtype(np.asarray(arr).dtype, np.inexact):
        if not np.all(np.isfinite(arr)):
            shapes = ", ".join(describe(a) for a in raw)
            bad_inputs = [
                i for i, a in enumerate(raw)
                if isinstance(a, (np.ndarray, np.generic, float))
                and np.issubdtype(np.asarray(a).dtype, np.inexact) and not np.all(np.isfinite(a))
            ]
            origin = (f"inputs {bad_inputs} were already non-finite" if bad_inputs
                      else "all inputs were finite, so this op made it")
            what = "NaN" if np.any(np.isnan(arr)) else "Inf"
            raise AnomalyError(f"{what} produced in the {phase} of op '{prim.name}' "
                               f"(inputs: {shapes}; {origin})")


def primitive(name: str | None = None, flops: FlopRule | None = None) -> Callable[[Callable[..., Any]], Primitive]:
    """Decorator: turn a NumPy function into a Primitive (rules added with `.defvjp` / `.defjvp`)."""
    def wrap(fn: Callable[..., Any]) -> Primitive:
        return Primitive(name or fn.__name__, fn, flops)
    return wrap
