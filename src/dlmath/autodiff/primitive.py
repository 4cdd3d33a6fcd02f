"""Primitives: the only place where the engine meets NumPy.

A primitive bundles a NumPy forward, one VJP rule per differentiable argument and a
floating-point-operation count (HIPS autograd's design). VJP rules are written with
generic arithmetic and the `dm.*` ops, so the same rule runs on plain arrays in an
ordinary backward pass and on Tensors when `create_graph=True`, which is what makes
higher-order derivatives free (DeZero's design).

Calling a primitive:
* no Tensor among the arguments  -> plain NumPy, nothing recorded;
* Tensors, but none requires grad (or grad mode off) -> a Tensor, nothing recorded;
* otherwise -> a Tensor with a `Node` that remembers the op, its arguments and
  the versions of the tensors it saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import state
from .errors import AnomalyError, DlmathError, DtypeError, ShapeError

VjpRule = Callable[..., Any]
FlopRule = Callable[..., int]


def _zero_flops(*_args: Any, **_kwargs: Any) -> int:
    return 0


class Primitive:
    """A differentiable NumPy function: forward, VJP rules, flop count.

    ``vjps[i](g, ans, *args, **kwargs)`` returns the cotangent of argument ``i``
    given the output cotangent ``g``; it may return a broadcast shape, which the
    engine reduces to the argument's shape. ``vjp_any`` serves variadic ops
    (concatenate, einsum) as ``vjp_any(i, g, ans, *args, **kwargs)``.
    """

    def __init__(self, name: str, forward: Callable[..., Any], flops: FlopRule | None = None,
                 doc: str | None = None, reads_inputs: bool = True, reads_output: bool = False) -> None:
        self.name = name
        # False for ops whose VJP rules use only shapes (add, reshape, getitem...): changing their
        # inputs in place after the forward cannot make the gradient wrong, so it is not an error
        self.reads_inputs = reads_inputs
        # True for ops whose VJP rules use the output (exp: g * ans): it must not change either
        self.reads_output = reads_output
        self.__name__ = name
        self.__qualname__ = name
        self.forward = forward
        self.vjps: tuple[VjpRule | None, ...] = ()
        self.vjp_any: Callable[..., Any] | None = None
        self.flops = flops or _zero_flops
        self.__doc__ = doc or forward.__doc__

    def defvjp(self, *rules: VjpRule | None) -> Primitive:
        self.vjps = rules
        return self

    def defvjp_any(self, rule: Callable[..., Any]) -> Primitive:
        self.vjp_any = rule
        return self

    def vjp_rule(self, argnum: int) -> VjpRule:
        if self.vjp_any is not None:
            rule = self.vjp_any
            return lambda g, ans, *args, **kw: rule(argnum, g, ans, *args, **kw)
        if argnum < len(self.vjps) and self.vjps[argnum] is not None:
            return self.vjps[argnum]  # type: ignore[return-value]
        raise DlmathError(f"op '{self.name}' is not differentiable with respect to argument {argnum}")

    def __repr__(self) -> str:
        return f"<dlmath primitive {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for a in args:
            if isinstance(a, Tensor):
                return apply(self, args, kwargs)
        if state.flop_counter is not None or state.anomaly_enabled:
            return apply(self, args, kwargs, plain=True)
        try:
            return self.forward(*args, **kwargs)
        except (ValueError, IndexError) as exc:
            raise _shape_error(self, args, exc) from None
        except TypeError as exc:
            raise _type_error(self, args, exc) from None


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
    return ShapeError(f"{prim.name}: operands do not fit ({shapes}): {exc}")


def _type_error(prim: Primitive, args: tuple[Any, ...], exc: Exception) -> DlmathError:
    kinds = ", ".join(describe(a) for a in args)
    return DtypeError(f"{prim.name}: cannot apply to ({kinds}); expected numeric arrays, Tensors or "
                      f"Python numbers: {exc}")


def apply(prim: Primitive, args: tuple[Any, ...], kwargs: dict[str, Any], plain: bool = False) -> Any:
    """Run a primitive on Tensors/arrays and record it on the tape when needed."""
    # one pass over the arguments: this function runs once per op, so its cost is the engine's
    # per-op overhead on small tensors (see BENCHMARKS.md)
    raw = []
    record = False
    for a in args:
        if isinstance(a, Tensor):
            raw.append(a.data)
            if a.requires_grad:
                record = True
        else:
            raw.append(a)
    try:
        out = prim.forward(*raw, **kwargs)
    except (ValueError, IndexError) as exc:
        raise _shape_error(prim, args, exc) from None
    except TypeError as exc:
        raise _type_error(prim, args, exc) from None
    counter = state.flop_counter
    if counter is not None:
        counter.record(prim, tuple(raw), out, kwargs)
    if state.anomaly_enabled:
        phase = "forward" if state.anomaly_context is None else state.anomaly_context
        check_finite(out, prim, tuple(raw), phase)
    if plain:
        return out
    data = out if type(out) is np.ndarray else np.asarray(out)
    version = _version_counter(data, args)
    if record and state.grad_enabled:
        versions = (tuple([a._version[0] for a in args if isinstance(a, Tensor)])
                    if prim.reads_inputs else None)
        t = Tensor.__new__(Tensor)
        t.data = data
        t.grad = None
        t.requires_grad = True
        t._node = Node(prim, args, kwargs, versions, version[0])
        t._version = version
        return t
    t = Tensor._wrap(data)
    t._version = version
    return t


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
    arr = out.data if isinstance(out, Tensor) else out
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
    """Decorator: turn a NumPy function into a Primitive (VJPs added with `.defvjp`)."""
    def wrap(fn: Callable[..., Any]) -> Primitive:
        return Primitive(name or fn.__name__, fn, flops)
    return wrap


from .tensor import Tensor  # noqa: E402  (Tensor methods call primitives; import at the end breaks the cycle)
