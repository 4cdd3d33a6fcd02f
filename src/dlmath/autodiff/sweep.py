"""The reverse sweep: walk the tape backwards and apply each primitive's VJP rules.

One function, `backprop`, serves `Tensor.backward` (accumulate into leaves' `.grad`)
and the function transforms (return gradients with respect to chosen tensors). The
rules run in one of three modes, each a named helper below:

* `_arrays_mode`: plain NumPy arrays (an ordinary backward pass, the fast path);
* `_counting_mode`: constant Tensors, so that the flop counter sees every op of the rules;
* `_graph_mode` (``create_graph=True``): the tape's own Tensors, so the rules are recorded and
  the gradient can be differentiated again (and, in forward mode, carries tangents).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ops
from .core import Node, Tensor, check_finite, unwrap
from .errors import DtypeError, GradientError, InplaceModificationError, ShapeError
from .state import switches


def topological_order(roots: Sequence[Tensor]) -> list[Tensor]:
    """Tensors that require grad reachable from ``roots``, every parent before its children.

    Iterative, so a chain of a million ops does not hit Python's recursion limit.
    """
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in roots]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        node = t._node
        if node is not None:
            for a in node.args:
                if isinstance(a, Tensor) and a.requires_grad and id(a) not in seen:
                    stack.append((a, False))
    return order


def reduce_to_shape(g: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    r"""Sum a broadcast cotangent back to an input's shape and dtype.

    If $y = \mathrm{broadcast}(x)$ then $\bar x = \sum_{\text{broadcast axes}} \bar y$:
    leading axes that broadcasting added are summed away, and so are axes where the
    input had size 1. Works on arrays and (for create_graph) on Tensors.
    """
    gshape = g.shape
    if gshape != shape:
        lead = len(gshape) - len(shape)
        if lead < 0:
            raise ShapeError(f"internal: cotangent of shape {gshape} cannot reduce to input shape {shape}")
        axes = tuple(range(lead)) + tuple(
            i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1)
        if axes:
            g = ops.sum(g, axis=axes, keepdims=True)
        if lead or g.shape != shape:
            g = ops.reshape(g, shape)
    if g.dtype != dtype:
        g = ops.astype(g, dtype)
    return g


def _check_versions(t: Tensor) -> None:
    node = t._node
    if node.prim.reads_output and t._version[0] != node.out_version:
        raise InplaceModificationError(
            f"the output of op '{node.prim.name}' (shape {t.shape}, {t.dtype}) was modified in place "
            f"after it was computed, and its backward needs it (version {node.out_version} -> "
            f"{t._version[0]}); the gradient would be wrong. Modify a copy (dm.tensor(y)) instead.")
    saved = node.versions
    if saved is None:
        return
    current = tuple(a._version[0] for a in node.args if isinstance(a, Tensor))
    if saved != current:
        k = next(i for i, (s, c) in enumerate(zip(saved, current, strict=True)) if s != c)
        arg = [a for a in node.args if isinstance(a, Tensor)][k]
        raise InplaceModificationError(
            f"a tensor of shape {arg.shape} ({arg.dtype}) saved for the backward of op "
            f"'{node.prim.name}' was modified in place after it was saved (version {saved[k]} -> "
            f"{current[k]}); the gradient would be wrong. Clone it (dm.tensor(x)) before modifying.")


def _memory_owner(a: np.ndarray) -> int:
    """Identity of the array that owns a's memory (a itself unless a is a view)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return id(a)


# ----- the three modes: what the VJP rules receive, and what they must return -------------------------
def _arrays_mode(t: Tensor, g: Any) -> tuple[Any, tuple[Any, ...], Any]:
    """Rules run on plain arrays: nothing is recorded (an ordinary backward pass)."""
    # unwrap() inlined: this runs once per node of every backward pass
    return g, tuple([a.data if isinstance(a, Tensor) else a for a in t._node.args]), t.data


def _counting_mode(t: Tensor, g: Any) -> tuple[Any, tuple[Any, ...], Any]:
    """Rules run on constant Tensors, so that every op inside them reaches the flop counter."""
    args = tuple(Tensor._wrap(a.data) if isinstance(a, Tensor) else a for a in t._node.args)
    return Tensor._wrap(unwrap(g)), args, Tensor._wrap(t.data)


def _graph_mode(t: Tensor, g: Any) -> tuple[Any, tuple[Any, ...], Any]:
    """Rules run on the tape's own Tensors and are recorded (create_graph=True)."""
    return g, t._node.args, t


def _as_cotangent(gi: Any, create_graph: bool) -> Any:
    """A rule's result in the sweep's currency: a Tensor when recording, else a plain array."""
    if create_graph:
        return gi if isinstance(gi, Tensor) else Tensor._wrap(np.asarray(gi))
    gi = unwrap(gi)
    return gi if type(gi) is np.ndarray else np.asarray(gi)


def _relevant(order: list[Tensor], targets: dict[int, int]) -> set[int]:
    """Tensors with a path to one of the targets (parents come first, so one pass finds them all)."""
    relevant: set[int] = set()
    for t in order:
        if id(t) in targets or (t._node is not None and any(
                isinstance(a, Tensor) and id(a) in relevant for a in t._node.args)):
            relevant.add(id(t))
    return relevant


def _vjp_of_node(t: Tensor, node: Node, g: Any, mode: Any, create_graph: bool, relevant: set[int] | None,
                 grads: dict[int, Any]) -> None:
    """Apply the node's VJP rules and add each argument's cotangent to ``grads``."""
    prim = node.prim
    g, args, ans = mode(t, g)
    kwargs = node.kwargs
    anomaly = switches.anomaly_enabled
    if anomaly:
        switches.anomaly_context = f"backward of op '{prim.name}' (an op inside its VJP rule)"
    for i, a in enumerate(node.args):
        if not (isinstance(a, Tensor) and a.requires_grad):
            continue
        if relevant is not None and id(a) not in relevant:
            continue
        rule = prim.vjps[i] if prim.vjp_any is None and i < len(prim.vjps) else None
        gi = (rule or prim.vjp_rule(i))(g, ans, *args, **kwargs)
        if create_graph or type(gi) is not np.ndarray:  # the common case, an array in a plain pass, skips this
            gi = _as_cotangent(gi, create_graph)
        data = a.data
        if gi.shape != data.shape or gi.dtype != data.dtype:
            gi = reduce_to_shape(gi, data.shape, data.dtype)
        if anomaly:
            check_finite(gi, prim, tuple(unwrap(x) for x in node.args), f"backward (gradient of argument {i})")
        prev = grads.get(id(a))
        grads[id(a)] = gi if prev is None else prev + gi


def backprop(outputs: Sequence[Tensor], seeds: Sequence[Any], inputs: Sequence[Tensor] | None,
             create_graph: bool) -> list[Any] | None:
    """Propagate cotangents ``seeds`` from ``outputs`` backwards.

    With ``inputs`` None, accumulate into ``.grad`` of every leaf that requires grad and
    return None. Otherwise return the cotangent of each input (None where it has no path).
    """
    order = topological_order(outputs)
    targets = {id(x): k for k, x in enumerate(inputs)} if inputs is not None else {}
    relevant = _relevant(order, targets) if inputs is not None else None
    results: list[Any] = [None] * (len(inputs) if inputs is not None else 0)

    grads: dict[int, Any] = {}
    # ids of the seeds and of the arrays already stored in a leaf's .grad in this pass: a leaf
    # receiving one of them gets a copy, so that no two .grad arrays (nor a caller's seed) alias
    handed: set[int] = set()
    for out, seed in zip(outputs, seeds, strict=True):
        if create_graph and not isinstance(seed, Tensor):
            seed = Tensor._wrap(seed)
        prev = grads.get(id(out))
        grads[id(out)] = seed if prev is None else prev + seed
        handed.add(id(seed))
        if isinstance(seed, np.ndarray):
            handed.add(_memory_owner(seed))

    sw = switches
    counter = sw.flop_counter
    mode = _graph_mode if create_graph else (_counting_mode if counter is not None else _arrays_mode)
    previous_mode, sw.grad_enabled = sw.grad_enabled, create_graph
    if counter is not None:
        previous_phase, counter.phase = counter.phase, "backward"
    try:
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if id(t) in targets:
                results[targets[id(t)]] = g
            node = t._node
            if node is None:
                if inputs is None:
                    _accumulate_leaf(t, g, create_graph, handed)
                continue
            _check_versions(t)
            _vjp_of_node(t, node, g, mode, create_graph, relevant, grads)
    finally:
        sw.grad_enabled = previous_mode
        sw.anomaly_context = None
        if counter is not None:
            counter.phase = previous_phase
    return results if inputs is not None else None


def _accumulate_leaf(leaf: Tensor, g: Any, create_graph: bool, handed: set[int]) -> None:
    if create_graph:
        if leaf.grad is None and id(g) in handed:
            g = g + 0.0  # a new Tensor (still on the tape) rather than one another leaf or the caller holds
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        handed.add(id(leaf.grad))
        return
    if leaf.grad is None:
        # VJP rules return fresh arrays or views of their cotangent, so a gradient needs a copy only
        # if it is read-only (a broadcast) or shares memory with a seed or another leaf's .grad;
        # views such as the transpose of dW are kept as they are (no copy of a weight-sized array)
        owner = _memory_owner(g)
        if not g.flags.writeable or owner in handed or id(g) in handed:
            g = np.array(g)
            owner = id(g)
        handed.add(owner)
        leaf.grad = Tensor._wrap(g)
    else:
        leaf.grad = Tensor._wrap(leaf.grad.data + g)


def make_seed(out: Tensor, grad: Any) -> Any:
    """The cotangent that starts a backward pass from ``out``."""
    if grad is None:
        if out.data.size != 1:
            raise GradientError(
                f"backward() of a non-scalar tensor of shape {out.shape} needs grad= (a cotangent of "
                f"the same shape); reduce it first, e.g. out.sum().backward()")
        return np.ones_like(out.data)
    g = grad if isinstance(grad, Tensor) else None
    raw = unwrap(grad)
    if np.iscomplexobj(raw):
        raise DtypeError(f"backward(grad=...) got a complex cotangent ({np.asarray(raw).dtype}); gradients of "
                         f"complex values are not supported")
    try:
        arr = raw if isinstance(grad, Tensor) else np.asarray(grad, dtype=out.dtype)
    except (TypeError, ValueError):
        raise DtypeError(f"backward(grad=...) needs a numeric array of the output's shape {out.shape}, "
                         f"got {type(grad).__name__}") from None
    if arr.shape != out.shape:
        raise ShapeError(f"backward(grad=...) got a cotangent of shape {arr.shape}; "
                         f"expected the output's shape {out.shape}")
    return g if g is not None else np.array(arr)


def backward(out: Tensor, grad: Any, create_graph: bool) -> None:
    if not out.requires_grad:
        raise GradientError("backward() on a tensor that does not require grad: no input of the "
                            "computation was created with requires_grad=True (or it ran under no_grad)")
    seed = make_seed(out, grad)
    if create_graph and not isinstance(seed, Tensor):
        seed = Tensor._wrap(seed)
    elif not create_graph and isinstance(seed, Tensor):
        seed = seed.data
    backprop([out], [seed], None, create_graph)
