"""Function transforms in JAX's style: grad, value_and_grad, vjp, jvp, hvp, jacobian, hessian.

They take and return NumPy arrays. Called on Tensors that are part of an outer
computation (a transform inside another transform), they record what they do, so
transforms compose: ``grad(grad(f))``, ``jacobian(grad(f))``...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import ops
from .core import Tensor, check_differentiable_dtype, tangent_of, unwrap
from .errors import DtypeError, GradientError, ShapeError
from .pytree import LEAF, TreeDef, tree_flatten, tree_paths, tree_unflatten
from .state import enable_grad, no_grad, switches
from .sweep import backprop, topological_order

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


def _as_float_array(x: Any, what: str) -> np.ndarray:
    """A copy of x as an array (what f sees, and may return, is never the caller's array); ints become float64."""
    try:
        arr = np.array(unwrap(x))
    except ValueError as exc:
        raise ShapeError(f"{what}: expected an array, got {type(x).__name__} that is not rectangular "
                         f"({exc}); pass each array as its own argument") from None
    if arr.dtype.kind in "biu" and not isinstance(unwrap(x), np.ndarray):
        arr = arr.astype(np.float64)
    check_differentiable_dtype(arr, what)
    return arr


def _new_leaf(arr: np.ndarray, level: int, requires_grad: bool) -> _TransformLeaf:
    leaf = _TransformLeaf.__new__(_TransformLeaf)
    Tensor.__init__(leaf, arr, requires_grad=requires_grad)
    leaf.level = level
    return leaf


def _leaf(x: Any, what: str, level: int) -> Tensor:
    """A fresh tensor to differentiate with respect to; linked to x if x is itself on a tape.

    In forward mode x may carry a tangent: the leaf carries it too, so that a reverse pass
    inside ``dm.jvp`` (forward over reverse) pushes it through the VJP rules."""
    if isinstance(x, Tensor) and x.requires_grad:
        return ops.identity(x)
    leaf = _new_leaf(_as_float_array(x, what), level, True)
    if isinstance(x, Tensor):
        leaf._tangent = x._tangent
    return leaf


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
    arr = np.asarray(unwrap(x))
    if arr.ndim == 0:
        return arr[()]
    if not arr.flags.writeable or arr.base is not None:
        arr = np.array(arr)  # a broadcast or a view (maybe of the caller's cotangent): hand out an owned array
    return arr


def _zeros_like(x: Tensor, nested: bool) -> Any:
    return _out(np.zeros_like(x.data), nested)


def _fname(f: Function) -> str:
    return getattr(f, "__name__", "the function")


def _as_output(f: Function, out: Any) -> Tensor:
    """f's result as a Tensor, or a clear error when it is not a numeric array that can be differentiated."""
    if isinstance(out, (tuple, list, dict)):
        raise ShapeError(f"{_fname(f)} returned a {type(out).__name__}; grad needs a single scalar output "
                         f"(pass has_aux=True when f returns (output, aux); vjp, jvp and jacobian accept "
                         f"tuples, lists and dicts of arrays)")
    if out is None or isinstance(out, (str, bytes, bool, np.bool_)):
        raise GradientError(f"{_fname(f)} returned {out!r} ({type(out).__name__}); a transform needs the function "
                            f"to return a floating-point array computed from its arguments")
    t = out if isinstance(out, Tensor) else Tensor._wrap(np.asarray(out))
    if t.dtype.kind not in "fc":
        raise DtypeError(f"{_fname(f)} returned an array of dtype {t.dtype} (comparisons, casts to int or bool "
                         f"give such arrays); they have no derivative: return a floating-point array")
    if t.dtype.kind == "c":
        raise DtypeError(f"{_fname(f)} returned a complex array ({t.dtype}); gradients of complex values are "
                         f"not supported")
    return t


def _check_constant(f: Function, args: Sequence[Any], kwargs: dict[str, Any], nums: tuple[int, ...],
                    out: Tensor) -> None:
    r"""Raise when f's output is off the tape but still moves with the inputs.

    A function that returns a value cut from the tape (``float(t)``, ``t.item()``, ``t.data``,
    ``np.asarray(t)``, a NumPy function) would otherwise get a gradient of zeros, silently.
    One more call of f at inputs moved by a relative step of about $\sqrt\epsilon$ tells a
    genuinely constant function (zeros are right) from a cut one (an error, as JAX gives).
    """
    moved = list(args)
    for i in nums:
        x = np.array(unwrap(args[i]), dtype=np.float64)
        moved[i] = Tensor._wrap(x + 1.5e-8 * (1.0 + np.abs(x)))  # a Tensor, as f saw: x.data, x.numpy() work
    with no_grad():
        try:
            again = np.asarray(unwrap(f(*moved, **kwargs)), dtype=np.float64)
        except Exception:
            return
    if again.shape == out.shape and not np.array_equal(again, out.data.astype(np.float64)):
        raise GradientError(
            f"{_fname(f)} returned a value that changes with its input but is not connected to it through dlmath "
            f"ops: float(), .item(), .data, .numpy(), np.asarray or a NumPy function cut it from the tape, so its "
            f"derivative would be silently zero. Use dm.* ops on the Tensor it receives.")


def _call(f: Function, args: Sequence[Any], kwargs: dict[str, Any], nums: tuple[int, ...]
          ) -> tuple[Tensor, list[Tensor], bool]:
    """Call f on fresh leaves; return its output as a Tensor, the leaves, and whether the call is
    nested in an enclosing computation (then results are returned as Tensors on the tape)."""
    sw = switches
    recording = sw.grad_enabled
    level = sw.transform_depth + 1
    leaves = [_leaf(args[i], f"argument {i}", level) for i in nums]
    call_args = list(args)
    for i, leaf in zip(nums, leaves, strict=True):
        call_args[i] = leaf
    sw.transform_depth = level
    try:
        with enable_grad():
            out = _as_output(f, f(*call_args, **kwargs))
    finally:
        sw.transform_depth = level - 1
    if not out.requires_grad:
        _check_constant(f, args, kwargs, nums, out)
    # inside dm.jvp the reverse pass records, so that the tangents ride through the VJP rules
    nested = (recording and out.requires_grad and _depends_on_outer(out, level)) or sw.forward_depth > 0
    return out, leaves, nested


def _value_and_grad_arrays(f: Function, argnums: int | Sequence[int] = 0) -> Function:
    r"""``f`` and its gradient $\nabla f$ in one reverse pass; ``f`` must return a scalar (arguments: arrays)."""
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


def _vjp_arrays(f: Function, *primals: Any) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    r"""``(f(*primals), vjp_fn)`` where ``vjp_fn(u)`` returns $u^\top J$ for each primal.

    The tape is kept, so ``vjp_fn`` may be called many times (one reverse pass each).
    """
    out, leaves, nested = _call(f, primals, {}, tuple(range(len(primals))))

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        if np.iscomplexobj(unwrap(cotangent)):
            raise DtypeError(f"vjp: the cotangent is complex ({np.asarray(unwrap(cotangent)).dtype}); gradients of "
                             f"complex values are not supported")
        ct = cotangent if isinstance(cotangent, Tensor) else np.array(cotangent, dtype=out.dtype)
        if ct.shape != out.shape:
            raise ShapeError(f"vjp: cotangent of shape {ct.shape} does not match the output shape {out.shape}")
        deep = nested or (isinstance(cotangent, Tensor) and cotangent.requires_grad)
        if not out.requires_grad:
            return tuple(_zeros_like(x, deep) for x in leaves)
        grads = backprop([out], [ct if deep else unwrap(ct)], leaves, create_graph=deep)
        return tuple(_out(g, deep) if g is not None else _zeros_like(x, deep)
                     for g, x in zip(grads, leaves, strict=True))
    return _out(out, nested), vjp_fn


def _linearize(f: Function, primals: Sequence[Any]) -> tuple[Tensor, Tensor, list[Any], list[Tensor], bool]:
    r"""One reverse pass with a symbolic cotangent $u$: returns $y=f(x)$, $u$ and $g(u)=J^\top u$.

    $g$ is linear in $u$, so $\partial \langle g(u), v\rangle/\partial u = J v$: forward mode
    from two reverse passes (the "double-VJP trick")."""
    out, leaves, nested = _call(f, primals, {}, tuple(range(len(primals))))
    u = Tensor(np.zeros_like(out.data), requires_grad=True)
    with enable_grad():
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


def _jvp_by_double_vjp(f: Function, primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    """The fallback for a jvp nested inside another (forward over forward): two reverse passes
    on the tape, which carry the outer transform's tangents through the VJP rules."""
    out, u, gs, _, nested = _linearize(f, primals)
    nested = nested or any(isinstance(t, Tensor) and t.requires_grad for t in tangents)
    with enable_grad():
        s = _contract(gs, tangents)
    if not isinstance(s, Tensor) or not s.requires_grad:
        return _out(out, nested), _zeros_like(out, nested)
    (jv,) = backprop([s], [np.ones_like(s.data)], [u], create_graph=nested)
    return _out(out, nested), _out(jv, nested) if jv is not None else _zeros_like(out, nested)


def _tangent_for(primal: np.ndarray, tangent: Any, i: int) -> Any:
    """The tangent of argument i, checked against its primal and cast to its dtype."""
    if isinstance(tangent, Tensor) and tangent.requires_grad:
        arr = tangent.data
        t: Any = tangent if tangent.dtype == primal.dtype else ops.astype(tangent, primal.dtype)
    else:
        arr = np.asarray(unwrap(tangent))
        if arr.dtype.kind not in "biuf":
            raise DtypeError(f"jvp: tangent {i} has dtype {arr.dtype}; expected a real floating-point array")
        t = np.array(arr, dtype=primal.dtype)
    if arr.shape != primal.shape:
        raise ShapeError(f"jvp: tangent {i} has shape {arr.shape}, primal {i} has shape {primal.shape}")
    return t


def _dual_leaf(x: Any, tangent: Any, i: int, level: int, trace: object) -> Tensor:
    """A dual number: the primal (a copy, or linked to x when x is on an outer tape) carrying its tangent."""
    if isinstance(x, Tensor) and x.requires_grad:
        check_differentiable_dtype(x.data, f"primal {i}")
        previous, switches.in_jvp_rule = switches.in_jvp_rule, True  # the link itself pushes no tangent
        try:
            leaf = ops.identity(x)
        finally:
            switches.in_jvp_rule = previous
    else:
        leaf = _new_leaf(_as_float_array(x, f"primal {i}"), level, False)
    leaf._tangent = (trace, _tangent_for(leaf.data, tangent, i))
    return leaf


def _strip_tangent(x: Tensor) -> Tensor:
    """The same value on the tape without its tangent (a tangent must not outlive its dm.jvp)."""
    previous, switches.in_jvp_rule = switches.in_jvp_rule, True
    try:
        return ops.identity(x)
    finally:
        switches.in_jvp_rule = previous


def _jvp_arrays(f: Function, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    r"""``(f(*primals), J v)``: the directional derivative of ``f`` along ``tangents``, by forward mode.

    Each argument becomes a dual number $(x, \dot x)$ and every primitive pushes the tangent
    along with the value through its JVP rule, $\dot y = \sum_i \partial_i f\,\dot x_i$: one
    pass, about twice the cost of evaluating $f$, and rules independent of the VJP rules
    (Wengert 1964; Griewank & Walther 2008, ch. 3). A jvp nested inside another jvp
    falls back to two reverse passes (the double-VJP trick), which keeps the outer tangents apart.
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ShapeError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    for i, (p, t) in enumerate(zip(primals, tangents, strict=True)):
        if np.shape(unwrap(p)) != np.shape(unwrap(t)):
            raise ShapeError(f"jvp: tangent {i} has shape {np.shape(unwrap(t))}, primal {i} has shape "
                             f"{np.shape(unwrap(p))}")
    sw = switches
    if sw.forward_depth > 0 or sw.in_jvp_rule:
        return _jvp_by_double_vjp(f, primals, tangents)
    level = sw.transform_depth + 1
    trace = object()  # this jvp's token: the tangents it pushes are tagged with it
    leaves = [_dual_leaf(p, t, i, level, trace) for i, (p, t) in enumerate(zip(primals, tangents, strict=True))]
    sw.forward_depth += 1
    sw.transform_depth = level
    sw.forward_trace = trace
    try:
        with enable_grad():
            out = _as_output(f, f(*leaves))
    finally:
        sw.forward_depth -= 1
        sw.transform_depth = level - 1
        sw.forward_trace = None
    tangent = tangent_of(out, trace)
    if tangent is None:
        if not out.requires_grad:
            _check_constant(f, primals, {}, tuple(range(len(primals))), out)
        tangent = np.zeros_like(out.data)
    recording = sw.grad_enabled
    nested = recording and ((out.requires_grad and _depends_on_outer(out, level)) or
                            (isinstance(tangent, Tensor) and tangent.requires_grad
                             and _depends_on_outer(tangent, level)))
    if nested:
        primal_out = _strip_tangent(out) if out.requires_grad else Tensor._wrap(out.data)
        return primal_out, _out(tangent, True)
    return _out(out.data, False), _out(unwrap(tangent), False)


def hvp(f: Function, x: Any, v: Any) -> Any:
    r"""Hessian-vector product $\nabla^2 f(x)\,v$, forward over reverse: the JVP of $\nabla f$ along $v$
    (Pearlmutter 1994), about the cost of two gradients."""
    return jvp(grad(f), (x,), (v,))[1]


def _check_jacobian_args(mode: str, argnums: Any) -> None:
    if mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"jacobian: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    if not _single(argnums):
        raise GradientError(f"jacobian and hessian take one argnum (an int), got {argnums!r}; "
                            f"call them once per argument")


def _jacobian_arrays(f: Function, argnums: int = 0, mode: str = "auto") -> Function:
    r"""The Jacobian $J_{ij} = \partial f_i/\partial x_j$, shaped ``out.shape + x.shape``.

    ``mode='reverse'`` uses one VJP per output element, ``'forward'`` one JVP per input
    element; ``'auto'`` picks the one needing fewer passes (forward when $n < m$).
    """
    _check_jacobian_args(mode, argnums)

    def wrapped(*args: Any) -> Any:
        nums = _argnums(argnums, len(args))
        if mode == "forward":
            return _jacobian_forward(f, args, nums[0])
        # reverse mode's recorded evaluation also tells 'auto' the output size m; forward mode wins when n < m
        call = _call(f, args, {}, nums)
        if mode == "auto" and call[1][0].size < call[0].size:
            return _jacobian_forward(f, args, nums[0])
        return _jacobian_reverse(*call)
    wrapped.__name__ = f"jacobian({getattr(f, '__name__', 'f')})"
    return wrapped


def _jacobian_forward(f: Function, args: Sequence[Any], k: int) -> Any:
    """One JVP per input element: the columns $J e_j$."""
    x = args[k]
    arr = np.asarray(unwrap(x))
    shape, n = arr.shape, arr.size
    dtype = arr.dtype if arr.dtype.kind == "f" else np.float64  # integer inputs are differentiated as float64

    def along(*xs: Any) -> Any:
        call = list(args)
        call[k] = xs[0]
        return f(*call)
    columns = []
    out = None
    for j in range(n):
        e = np.zeros(n, dtype=dtype)
        e[j] = 1
        out, col = _jvp_arrays(along, (x,), (e.reshape(shape),))
        columns.append(col)
    if out is None:  # x has no elements: evaluate once for the output's shape
        with no_grad():
            out = f(*args)
        return np.zeros(np.shape(unwrap(out)) + shape, dtype=dtype)
    stacked = ops.stack(columns, axis=-1)
    return ops.reshape(stacked, np.shape(unwrap(out)) + shape)


def _jacobian_reverse(out: Tensor, leaves: list[Tensor], nested: bool) -> Any:
    """One VJP per output element of a recorded call (see `_call`): the rows $J^\top e_i$."""
    (x,) = leaves
    m = out.size
    if not out.requires_grad or m == 0 or x.size == 0:
        return _out(np.zeros(out.shape + x.shape, dtype=out.dtype), nested)
    rows = []
    for i in range(m):
        e = np.zeros(m, dtype=out.dtype)
        e[i] = 1
        seed = e.reshape(out.shape)
        (gx,) = backprop([out], [Tensor._wrap(seed) if nested else seed], [x], create_graph=nested)
        rows.append(_out(gx, nested) if gx is not None else _zeros_like(x, nested))
    stacked = ops.stack(rows, axis=0)
    return ops.reshape(stacked, out.shape + x.shape)


def hessian(f: Function, argnums: int = 0) -> Function:
    r"""The Hessian $\nabla^2 f$ of a scalar function: the Jacobian of its gradient (for a pytree argument,
    nested blocks, as JAX's)."""
    return jacobian(grad(f, argnums), argnums, mode="reverse")


# ----- pytrees and auxiliary outputs ---------------------------------------------------------------------------------
# The public transforms take and return pytrees (tuples, lists, dicts of arrays, nested; see pytree.py) and
# accept has_aux=True as JAX does. They reduce to the array transforms above: each differentiated argument is
# flattened into its leaves (one positional argument each), and a pytree output is raveled and concatenated into
# one vector, whose derivatives are split back into the output's leaves. A function of plain arrays goes straight
# to the array transforms.
_UNSET = object()


def _numeric_nest(x: Any) -> bool:
    """A (nested) list or tuple of Python numbers: an array written as a list, not a pytree of scalars."""
    if isinstance(x, (list, tuple)):
        return len(x) > 0 and type(x) in (list, tuple) and all(_numeric_nest(e) for e in x)
    return isinstance(x, (int, float, np.number)) and not isinstance(x, (bool, np.bool_))


def _arg_flatten(x: Any) -> tuple[list[Any], TreeDef]:
    """Flatten an argument into its leaves; a list of numbers stays one array-like leaf (as before pytrees)."""
    if _numeric_nest(x):
        return [x], LEAF
    return tree_flatten(x)


def _is_plain(x: Any) -> bool:
    return (not isinstance(x, (tuple, list, dict)) and x is not None) or _numeric_nest(x)


def _split_aux(f: Function, res: Any) -> tuple[Any, Any]:
    if not isinstance(res, (tuple, list)) or len(res) != 2:
        raise GradientError(f"{_fname(f)} was transformed with has_aux=True, so it must return a pair "
                            f"(output, aux); it returned {type(res).__name__}")
    return res[0], res[1]


def _aux_out(aux: Any, nested: bool) -> Any:
    """aux as f returned it; at top level its Tensors become arrays (cut from the tape), as the outputs are."""
    if nested:
        return aux
    leaves, treedef = tree_flatten(aux)
    return tree_unflatten(treedef, [_out(x, False) if isinstance(x, Tensor) else x for x in leaves])


class _Flat:
    """f as a function of the flat leaves of its differentiated arguments, returning one array.

    Records f's aux (from the first call: later calls, such as the check for outputs cut from the tape, do
    not replace it) and, when f returns a pytree, its structure and the shapes of its leaves."""

    def __init__(self, f: Function, args: Sequence[Any], kwargs: dict[str, Any], nums: tuple[int, ...],
                 has_aux: bool, tree_out: bool) -> None:
        self.f, self.args, self.kwargs, self.nums = f, list(args), kwargs, nums
        self.has_aux, self.tree_out = has_aux, tree_out
        self.__name__ = _fname(f)
        self.flat: list[Any] = []
        self.spans: list[tuple[int, int]] = []
        self.defs: list[TreeDef] = []
        self.names: list[str] = []  # each flat leaf as the user wrote it: "argument 0['w'][1]"
        for i in nums:
            if _is_plain(args[i]):  # the common case, kept cheap: one array-like leaf
                self.spans.append((len(self.flat), len(self.flat) + 1))
                self.defs.append(LEAF)
                self.flat.append(args[i])
                self.names.append(f"argument {i}")
                continue
            leaves, treedef = _arg_flatten(args[i])
            self.spans.append((len(self.flat), len(self.flat) + len(leaves)))
            self.defs.append(treedef)
            self.flat.extend(leaves)
            self.names.extend(f"argument {i}{path}" for path in tree_paths(treedef))
        self.all_leaves = all(d is LEAF for d in self.defs)
        for x, name in zip(self.flat, self.names, strict=True):
            if name.endswith("]") and not isinstance(x, Tensor):  # a leaf inside a pytree (plain ones: checked later)
                kind = np.asarray(x).dtype.kind if isinstance(x, (np.ndarray, np.generic, int, float)) else "O"
                if kind not in "biuf":
                    raise DtypeError(f"{self.__name__}: {name} is {type(x).__name__}"
                                     f"{f' of dtype {np.asarray(x).dtype}' if kind != 'O' else ''}; a differentiated "
                                     f"argument's leaves must be real numbers or arrays (pass other values as "
                                     f"arguments outside argnums, or in a closure)")
        self.aux: Any = _UNSET
        self.out_def: TreeDef | None = None  # None: f returned a single array
        self.out_shapes: list[tuple[int, ...]] = []

    def unflatten(self, flat_values: Sequence[Any]) -> list[Any]:
        """Per differentiated argument, its pytree rebuilt around ``flat_values``."""
        return [tree_unflatten(d, list(flat_values[a:b])) for d, (a, b) in zip(self.defs, self.spans, strict=True)]

    def __call__(self, *flat_leaves: Any) -> Any:
        call = list(self.args)
        if self.all_leaves:
            for i, x in zip(self.nums, flat_leaves, strict=True):
                call[i] = x
        else:
            for i, tree in zip(self.nums, self.unflatten(flat_leaves), strict=True):
                call[i] = tree
        res = self.f(*call, **self.kwargs)
        if self.has_aux:
            res, aux = _split_aux(self.f, res)
            if self.aux is _UNSET:
                self.aux = aux
        if not self.tree_out or not isinstance(res, (tuple, list, dict)) or res is None:
            return res
        leaves, treedef = tree_flatten(res)
        if not leaves:
            raise ShapeError(f"{self.__name__} returned {res!r}, a container with no arrays in it")
        bad = [x for x in leaves if x is None or isinstance(x, (str, bytes))]
        if bad:
            raise GradientError(f"{self.__name__} returned a pytree with a leaf {bad[0]!r}; its leaves must be "
                                f"floating-point arrays computed from the arguments")
        self.out_def, self.out_shapes = treedef, [tuple(np.shape(unwrap(x))) for x in leaves]
        return ops.concatenate([ops.reshape(x, (-1,)) for x in leaves])

    def split_out(self, v: Any, trail: tuple[int, ...] = ()) -> Any:
        """A value or derivative of the concatenated output (its first axis) as the output's pytree."""
        if self.out_def is None:
            return v
        nested = isinstance(v, Tensor)
        pieces, start = [], 0
        for shape in self.out_shapes:
            size = int(np.prod(shape, dtype=np.int64))
            piece = ops.reshape(ops.getitem(v, slice(start, start + size)), shape + tuple(trail))
            pieces.append(_out(piece, nested))
            start += size
        return tree_unflatten(self.out_def, pieces)

    def join_cotangent(self, cotangent: Any) -> Any:
        """A cotangent pytree of the output's structure, as one vector."""
        if self.out_def is None:
            return cotangent
        leaves, treedef = tree_flatten(cotangent)
        if treedef != self.out_def:
            raise ShapeError(f"vjp: the cotangent's structure {treedef!r} does not match the output's "
                             f"{self.out_def!r}")
        for k, (x, shape) in enumerate(zip(leaves, self.out_shapes, strict=True)):
            if tuple(np.shape(unwrap(x))) != shape:
                raise ShapeError(f"vjp: cotangent leaf {k} has shape {np.shape(unwrap(x))}, the output's leaf has "
                                 f"shape {shape}")
        if any(isinstance(x, Tensor) for x in leaves):
            return ops.concatenate([ops.reshape(x, (-1,)) for x in leaves])
        return np.concatenate([np.ravel(np.asarray(x)) for x in leaves]) if leaves else np.zeros(0)

    def aux_value(self, nested: bool) -> Any:
        return _aux_out(None if self.aux is _UNSET else self.aux, nested)


def _select(results: Sequence[Any], argnums: Any) -> Any:
    return results[0] if _single(argnums) else tuple(results)


def value_and_grad(f: Function, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Function:
    r"""``f`` and its gradient $\nabla f$ in one reverse pass; ``f`` must return a scalar.

    Arguments may be pytrees (tuples, lists, dicts of arrays, nested): the gradient has the argument's
    structure. With ``has_aux=True`` f returns ``(output, aux)`` and the result is ``((value, aux), grad)``."""
    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        nums = _argnums(argnums, len(args))
        if not has_aux and all(_is_plain(args[i]) for i in nums):
            return _value_and_grad_arrays(f, argnums)(*args, **kwargs)
        flat = _Flat(f, args, kwargs, nums, has_aux, tree_out=False)
        value, grads = _value_and_grad_arrays(flat, tuple(range(len(flat.flat))))(*flat.flat)
        result = _select(flat.unflatten(grads), argnums)
        if has_aux:
            return (value, flat.aux_value(isinstance(value, Tensor))), result
        return value, result
    wrapped.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return wrapped


def grad(f: Function, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Function:
    r"""The gradient $\nabla f$ of a scalar function, by reverse mode (one backward pass).

    Arguments may be pytrees (the gradient has the argument's structure); with ``has_aux=True`` f returns
    ``(output, aux)`` and the result is ``(grad, aux)``, as in JAX."""
    vg = value_and_grad(f, argnums, has_aux)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    wrapped.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return wrapped


def vjp(f: Function, *primals: Any, has_aux: bool = False) -> Any:
    r"""``(f(*primals), vjp_fn)`` where ``vjp_fn(u)`` returns $u^\top J$ for each primal.

    Primals, output and cotangent may be pytrees (``vjp_fn`` takes a cotangent of the output's structure and
    returns one pytree per primal). With ``has_aux=True`` f returns ``(output, aux)`` and the result is
    ``(output, vjp_fn, aux)``. The tape is kept, so ``vjp_fn`` may be called many times (one reverse pass each).
    """
    nums = tuple(range(len(primals)))
    if not has_aux and all(_is_plain(p) for p in primals):
        flat = _Flat(f, primals, {}, nums, False, tree_out=True)
        out, fn = _vjp_arrays(flat, *flat.flat)
        if flat.out_def is None:
            return out, fn
    else:
        flat = _Flat(f, primals, {}, nums, has_aux, tree_out=True)
        out, fn = _vjp_arrays(flat, *flat.flat)

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        return tuple(flat.unflatten(fn(flat.join_cotangent(cotangent))))
    result = flat.split_out(out)
    if has_aux:
        return result, vjp_fn, flat.aux_value(isinstance(out, Tensor))
    return result, vjp_fn


def jvp(f: Function, primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool = False) -> Any:
    r"""``(f(*primals), J v)``: the directional derivative of ``f`` along ``tangents``, by forward mode.

    Each argument becomes a dual number $(x, \dot x)$ and every primitive pushes the tangent
    along with the value through its JVP rule, $\dot y = \sum_i \partial_i f\,\dot x_i$: one
    pass, about twice the cost of evaluating $f$, and rules independent of the VJP rules
    (Wengert 1964; Griewank & Walther 2008, ch. 3). A jvp nested inside another jvp
    falls back to two reverse passes (the double-VJP trick), which keeps the outer tangents apart.
    Primals and tangents may be pytrees (each tangent of its primal's structure); so may the output.
    With ``has_aux=True`` f returns ``(output, aux)`` and the result is ``(output, tangent, aux)``.
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ShapeError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    flat = _Flat(f, primals, {}, tuple(range(len(primals))), has_aux, tree_out=True)
    flat_tangents: list[Any] = []
    for i, t in enumerate(tangents):
        if flat.defs[i] is LEAF:
            flat_tangents.append(t)
            continue
        leaves, treedef = tree_flatten(t)
        if treedef != flat.defs[i]:
            raise ShapeError(f"jvp: tangent {i} has structure {treedef!r}, primal {i} has {flat.defs[i]!r}")
        a = flat.spans[i][0]
        for k, leaf in enumerate(leaves):
            if np.shape(unwrap(leaf)) != np.shape(unwrap(flat.flat[a + k])):
                raise ShapeError(f"jvp: the tangent of {flat.names[a + k].replace('argument', 'primal')} has shape "
                                 f"{np.shape(unwrap(leaf))}, the primal has shape {np.shape(unwrap(flat.flat[a + k]))}")
        flat_tangents.extend(leaves)
    out, tangent_out = _jvp_arrays(flat, flat.flat, flat_tangents)
    if has_aux:
        return flat.split_out(out), flat.split_out(tangent_out), flat.aux_value(isinstance(out, Tensor))
    return flat.split_out(out), flat.split_out(tangent_out)


def jacobian(f: Function, argnums: int = 0, mode: str = "auto", has_aux: bool = False) -> Function:
    r"""The Jacobian $J_{ij} = \partial f_i/\partial x_j$, shaped ``out.shape + x.shape``.

    ``mode='reverse'`` uses one VJP per output element, ``'forward'`` one JVP per input
    element; ``'auto'`` picks the one needing fewer passes (forward when $n < m$).
    The argument and the output may be pytrees: the result is then the output's structure holding, for each
    output leaf, the argument's structure of blocks ``out_leaf.shape + x_leaf.shape`` (JAX's layout). With
    ``has_aux=True`` f returns ``(output, aux)`` and the result is ``(jacobian, aux)``.
    """
    _check_jacobian_args(mode, argnums)

    def wrapped(*args: Any) -> Any:
        nums = _argnums(argnums, len(args))
        flat = _Flat(f, args, {}, nums, has_aux, tree_out=True)
        call = list(args)
        k = nums[0]
        if flat.all_leaves:  # one array argument: f's output may still be a pytree

            def of_arg(*xs: Any) -> Any:
                return flat(xs[k])
            of_arg.__name__ = flat.__name__
            jac = flat.split_out(_jacobian_arrays(of_arg, k, mode)(*args), trail=np.shape(unwrap(args[k])))
            return (jac, flat.aux_value(isinstance(jac, Tensor))) if has_aux else jac
        blocks = []
        for j in range(len(flat.flat)):
            call[k] = flat.flat[j]

            def of_leaf(*xs: Any, j: int = j) -> Any:
                leaves = list(flat.flat)
                leaves[j] = xs[k]
                return flat(*leaves)
            of_leaf.__name__ = flat.__name__
            blocks.append(_jacobian_arrays(of_leaf, k, mode)(*call))
        if flat.out_def is None and flat.defs[0] is LEAF:
            jac = blocks[0]
        elif not blocks:
            jac = flat.unflatten([])[0]
        else:
            nested = isinstance(blocks[0], Tensor)
            per_leaf = [flat.split_out(b, trail=np.shape(unwrap(flat.flat[j]))) for j, b in enumerate(blocks)]
            if flat.out_def is None:
                jac = flat.unflatten([_out(b, nested) for b in blocks])[0]
            else:  # the output's structure outside, the argument's inside
                by_out = [tree_flatten(p)[0] for p in per_leaf]
                jac = tree_unflatten(flat.out_def, [flat.unflatten([by_out[j][i] for j in range(len(blocks))])[0]
                                                    for i in range(len(flat.out_shapes))])
        if has_aux:
            return jac, flat.aux_value(isinstance(jac, Tensor))
        return jac
    wrapped.__name__ = f"jacobian({getattr(f, '__name__', 'f')})"
    return wrapped
