"""Function transforms in JAX's style: grad, value_and_grad, vjp, jvp, hvp, jacobian, hessian.

They take and return NumPy arrays. Called on Tensors that are part of an outer
computation (a transform inside another transform), they record what they do, so
transforms compose: ``grad(grad(f))``, ``jacobian(grad(f))``...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import ops, state
from .backprop import backprop, topological_order
from .errors import GradientError, ShapeError
from .tensor import Tensor, check_differentiable_dtype

Function = Callable[..., Any]


def _single(argnums: Any) -> bool:
    return isinstance(argnums, (int, np.integer))


def _argnums(argnums: int | Sequence[int], n: int) -> tuple[int, ...]:
    nums = (argnums,) if _single(argnums) else tuple(argnums)  # type: ignore[arg-type]
    out = []
    for a in nums:
        if not _single(a):
            raise GradientError(f"argnums must be an int or a sequence of ints, got {argnums!r}")
        if not -n <= a < n:
            raise GradientError(f"argnums={argnums} but the function was called with {n} positional arguments")
        out.append(int(a) % n)
    if len(set(out)) != len(out):
        raise GradientError(f"argnums={argnums} names the same argument twice")
    return tuple(out)


class _TransformLeaf(Tensor):
    """A leaf made by a transform, marked with the nesting level of that transform."""

    __slots__ = ("level",)


_depth = 0  # how many transforms are calling their function right now


def _leaf(x: Any, what: str, level: int) -> Tensor:
    """A fresh tensor to differentiate with respect to; linked to x if x is itself on a tape."""
    if isinstance(x, Tensor):
        if x.requires_grad:
            return ops.identity(x)
        arr = x.data
    else:
        try:
            arr = np.array(x)  # a copy: what f sees (and may return) is never the caller's array
        except ValueError as exc:
            raise ShapeError(f"{what}: expected an array, got {type(x).__name__} that is not rectangular "
                             f"({exc}); pass each array as its own argument") from None
        if arr.dtype.kind in "biu" and not isinstance(x, np.ndarray):
            arr = arr.astype(np.float64)
    check_differentiable_dtype(arr, what)
    leaf = _TransformLeaf.__new__(_TransformLeaf)
    Tensor.__init__(leaf, arr if not isinstance(x, Tensor) else np.array(arr), requires_grad=True)
    leaf.level = level
    return leaf


def _nested(args: Sequence[Any]) -> bool:
    return state.grad_enabled and any(isinstance(a, Tensor) and a.requires_grad for a in args)


def _depends_on_outer(out: Tensor, level: int) -> bool:
    """Does ``out`` depend on a leaf of an enclosing computation?

    That is a leaf of an outer transform (lower level) or one the user made (level 0). It
    reaches the function as an argument (then this transform's leaf is linked to it) or by
    closure, as in ``grad(lambda x: x * grad(lambda y: x * y)(2.0))``: either way the result
    must stay on the tape so that the outer transform can differentiate it. Leaves of inner
    transforms that escaped (higher level) do not count.
    """
    return any(t._node is None and getattr(t, "level", 0) < level for t in topological_order([out]))


def _out(x: Any, nested: bool) -> Any:
    """What a transform returns: arrays at top level, Tensors when nested."""
    if nested:
        return x if isinstance(x, Tensor) else Tensor._wrap(np.asarray(x))
    arr = x.data if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim == 0:
        return arr[()]
    if not arr.flags.writeable or arr.base is not None:
        arr = np.array(arr)  # a broadcast or a view (maybe of the caller's cotangent): hand out an owned array
    return arr


def _zeros_like(x: Tensor, nested: bool) -> Any:
    return _out(np.zeros_like(x.data), nested)


def _call(f: Function, args: Sequence[Any], kwargs: dict[str, Any], nums: tuple[int, ...]
          ) -> tuple[Tensor, list[Tensor], bool]:
    """Call f on fresh leaves; return its output as a Tensor, the leaves, and whether the call is
    nested in an enclosing computation (then results are returned as Tensors on the tape)."""
    global _depth
    recording = state.grad_enabled
    level = _depth + 1
    leaves = [_leaf(args[i], f"argument {i}", level) for i in nums]
    call_args = list(args)
    for i, leaf in zip(nums, leaves, strict=True):
        call_args[i] = leaf
    _depth = level
    try:
        with state.enable_grad():
            out = f(*call_args, **kwargs)
    finally:
        _depth = level - 1
    if isinstance(out, (tuple, list, dict)):
        raise ShapeError(f"{getattr(f, '__name__', 'the function')} returned a {type(out).__name__}; "
                         f"transforms need a single array output (differentiate each output separately)")
    if not isinstance(out, Tensor):
        out = Tensor._wrap(np.asarray(out))
    nested = recording and out.requires_grad and _depends_on_outer(out, level)
    return out, leaves, nested


def value_and_grad(f: Function, argnums: int | Sequence[int] = 0) -> Function:
    r"""``f`` and its gradient $\nabla f$ in one reverse pass; ``f`` must return a scalar."""
    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        nums = _argnums(argnums, len(args))
        out, leaves, nested = _call(f, args, kwargs, nums)
        if out.size != 1:
            raise ShapeError(f"grad: the function must return a scalar, it returned shape {out.shape} "
                             f"(use dm.jacobian or dm.vjp for vector outputs)")
        if out.requires_grad:
            grads = backprop([out], [np.ones_like(out.data)], leaves, create_graph=nested)
        else:
            grads = [None] * len(leaves)
        res = [_out(g, nested) if g is not None else _zeros_like(x, nested) for g, x in zip(grads, leaves, strict=True)]
        value = _out(out if nested else out.data.reshape(()), nested)
        return value, (res[0] if _single(argnums) else tuple(res))
    wrapped.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return wrapped


def grad(f: Function, argnums: int | Sequence[int] = 0) -> Function:
    r"""The gradient $\nabla f$ of a scalar function, by reverse mode (one backward pass)."""
    vg = value_and_grad(f, argnums)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return vg(*args, **kwargs)[1]
    wrapped.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return wrapped


def vjp(f: Function, *primals: Any) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    r"""``(f(*primals), vjp_fn)`` where ``vjp_fn(u)`` returns $u^\top J$ for each primal.

    The tape is kept, so ``vjp_fn`` may be called many times (one reverse pass each).
    """
    out, leaves, nested = _call(f, primals, {}, tuple(range(len(primals))))

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        ct = cotangent if isinstance(cotangent, Tensor) else np.array(cotangent, dtype=out.dtype)
        if ct.shape != out.shape:
            raise ShapeError(f"vjp: cotangent of shape {ct.shape} does not match the output shape {out.shape}")
        deep = nested or (isinstance(cotangent, Tensor) and cotangent.requires_grad)
        if not out.requires_grad:
            return tuple(_zeros_like(x, deep) for x in leaves)
        grads = backprop([out], [ct if deep else _raw(ct)], leaves, create_graph=deep)
        return tuple(_out(g, deep) if g is not None else _zeros_like(x, deep)
                     for g, x in zip(grads, leaves, strict=True))
    return _out(out, nested), vjp_fn


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _linearize(f: Function, primals: Sequence[Any]) -> tuple[Tensor, Tensor, list[Any], list[Tensor], bool]:
    r"""One reverse pass with a symbolic cotangent $u$: returns $y=f(x)$, $u$ and $g(u)=J^\top u$.

    $g$ is linear in $u$, so $\partial \langle g(u), v\rangle/\partial u = J v$: forward mode
    from two reverse passes (the "double-VJP trick")."""
    out, leaves, nested = _call(f, primals, {}, tuple(range(len(primals))))
    u = Tensor(np.zeros_like(out.data), requires_grad=True)
    with state.enable_grad():
        gs = backprop([out], [u], leaves, create_graph=True) if out.requires_grad else [None] * len(leaves)
    return out, u, gs, leaves, nested


def _contract(gs: Sequence[Any], tangents: Sequence[Any]) -> Any:
    total: Any = None
    for g, t in zip(gs, tangents, strict=True):
        if g is None:
            continue
        term = ops.sum(g * t)
        total = term if total is None else total + term
    return total


def jvp(f: Function, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    r"""``(f(*primals), J v)``: the directional derivative of ``f`` along ``tangents``."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ShapeError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    for i, (p, t) in enumerate(zip(primals, tangents, strict=True)):
        if np.shape(p) != np.shape(t):
            raise ShapeError(f"jvp: tangent {i} has shape {np.shape(t)}, primal {i} has shape {np.shape(p)}")
    out, u, gs, _, nested = _linearize(f, primals)
    nested = nested or _nested(tangents)
    with state.enable_grad():
        s = _contract(gs, tangents)
    if not isinstance(s, Tensor) or not s.requires_grad:
        return _out(out, nested), _zeros_like(out, nested)
    (jv,) = backprop([s], [np.ones_like(s.data)], [u], create_graph=nested)
    return _out(out, nested), _out(jv, nested) if jv is not None else _zeros_like(out, nested)


def hvp(f: Function, x: Any, v: Any) -> Any:
    r"""Hessian-vector product $\nabla^2 f(x)\,v = \nabla_x \langle \nabla f(x), v\rangle$ (reverse over reverse)."""
    g = grad(f)
    return grad(lambda y: ops.sum(g(y) * v))(x)


def jacobian(f: Function, argnums: int = 0, mode: str = "auto") -> Function:
    r"""The Jacobian $J_{ij} = \partial f_i/\partial x_j$, shaped ``out.shape + x.shape``.

    ``mode='reverse'`` uses one VJP per output element, ``'forward'`` one JVP per input
    element; ``'auto'`` picks the one needing fewer passes (forward when $n < m$).
    """
    if mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"jacobian: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    if not _single(argnums):
        raise GradientError(f"jacobian and hessian take one argnum (an int), got {argnums!r}; "
                            f"call them once per argument")

    def wrapped(*args: Any) -> Any:
        nums = _argnums(argnums, len(args))
        out, leaves, nested = _call(f, args, {}, nums)
        (x,) = leaves
        m, n = out.size, x.size
        use_forward = mode == "forward" or (mode == "auto" and n < m)
        rows = []
        if not out.requires_grad or m == 0 or n == 0:
            return _out(np.zeros(out.shape + x.shape, dtype=out.dtype), nested)
        if use_forward:
            u = Tensor(np.zeros_like(out.data), requires_grad=True)
            with state.enable_grad():
                (gx,) = backprop([out], [u], [x], create_graph=True)
            for j in range(n):
                e = np.zeros(n, dtype=x.dtype)
                e[j] = 1
                with state.enable_grad():
                    s = ops.sum(gx * e.reshape(x.shape)) if gx is not None else None
                if not isinstance(s, Tensor) or not s.requires_grad:
                    rows.append(_zeros_like(out, nested))
                    continue
                (col,) = backprop([s], [np.ones_like(s.data)], [u], create_graph=nested)
                rows.append(_out(col, nested) if col is not None else _zeros_like(out, nested))
            stacked = ops.stack(rows, axis=-1)
            return ops.reshape(stacked, out.shape + x.shape)
        for i in range(m):
            e = np.zeros(m, dtype=out.dtype)
            e[i] = 1
            seed = e.reshape(out.shape)
            (gx,) = backprop([out], [Tensor._wrap(seed) if nested else seed], [x], create_graph=nested)
            rows.append(_out(gx, nested) if gx is not None else _zeros_like(x, nested))
        stacked = ops.stack(rows, axis=0)
        return ops.reshape(stacked, out.shape + x.shape)
    wrapped.__name__ = f"jacobian({getattr(f, '__name__', 'f')})"
    return wrapped


def hessian(f: Function, argnums: int = 0) -> Function:
    r"""The Hessian $\nabla^2 f$ of a scalar function: the Jacobian of its gradient."""
    return jacobian(grad(f, argnums), argnums, mode="reverse")
