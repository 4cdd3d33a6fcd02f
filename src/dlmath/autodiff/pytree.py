"""Pytrees: nested tuples, lists and dicts of arrays, with JAX's ``tree_util`` semantics.

A pytree is a container (tuple, named tuple, list, dict) of pytrees, ``None`` (a container
with no children), or a leaf (anything else: arrays, Tensors, numbers). ``tree_flatten`` lists
the leaves in a fixed order (dict keys sorted, as JAX does) together with a ``TreeDef``
describing the containers; ``tree_unflatten`` rebuilds the same structure around new leaves.
The transforms use it to take and return parameters as dicts or nested tuples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_CONTAINERS = (tuple, list, dict)


class TreeDef:
    """The structure of a pytree: its containers, without its leaves."""

    __slots__ = ("kind", "node_type", "keys", "children", "num_leaves")

    def __init__(self, kind: str, node_type: Any = None, keys: tuple[Any, ...] = (),
                 children: tuple[TreeDef, ...] = ()) -> None:
        self.kind = kind            # "leaf", "none", "tuple", "list" or "dict"
        self.node_type = node_type  # the container's type (a named tuple's class, a dict subclass...)
        self.keys = keys
        self.children = children
        self.num_leaves: int = 1 if kind == "leaf" else sum(c.num_leaves for c in children)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TreeDef) and self.kind == other.kind and self.node_type == other.node_type
                and self.keys == other.keys and self.children == other.children)

    def __hash__(self) -> int:
        return hash((self.kind, self.keys, self.children))

    def __repr__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind == "dict":
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.keys, self.children, strict=True))
            return "{" + inner + "}"
        return f"[{inner}]" if self.kind == "list" else f"({inner})"


LEAF = TreeDef("leaf")


def is_leaf(x: Any) -> bool:
    """Is x a leaf (not a tuple, list, dict or None)?"""
    return x is not None and not isinstance(x, _CONTAINERS)


def _sorted_keys(d: dict[Any, Any]) -> list[Any]:
    try:
        return sorted(d)
    except TypeError:  # keys of mixed types: insertion order
        return list(d)


def tree_flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """The leaves of ``tree`` in order (dict keys sorted) and its structure."""
    leaves: list[Any] = []

    def walk(x: Any) -> TreeDef:
        if x is None:
            return TreeDef("none")
        if isinstance(x, tuple):
            return TreeDef("tuple", type(x), (), tuple(walk(c) for c in x))
        if isinstance(x, list):
            return TreeDef("list", type(x), (), tuple(walk(c) for c in x))
        if isinstance(x, dict):
            keys = _sorted_keys(x)
            return TreeDef("dict", type(x), tuple(keys), tuple(walk(x[k]) for k in keys))
        leaves.append(x)
        return LEAF
    return leaves, walk(tree)


def tree_unflatten(treedef: TreeDef, leaves: Any) -> Any:
    """The pytree of structure ``treedef`` with ``leaves`` (in ``tree_flatten``'s order)."""
    n = treedef.num_leaves

    def build(d: TreeDef) -> Any:
        if d.kind == "leaf":
            return next(it)
        if d.kind == "none":
            return None
        children = [build(c) for c in d.children]
        if d.kind == "dict":
            out = dict(zip(d.keys, children, strict=True))
            return out if d.node_type is dict else d.node_type(out)
        if d.kind == "list":
            return children if d.node_type is list else d.node_type(children)
        if d.node_type is tuple:
            return tuple(children)
        if hasattr(d.node_type, "_fields"):  # a named tuple
            return d.node_type(*children)
        return d.node_type(children)
    leaves = list(leaves)
    if len(leaves) != n:
        raise ValueError(f"tree_unflatten: the structure {treedef!r} has {n} leaves, got {len(leaves)}")
    it = iter(leaves)
    return build(treedef)


def tree_paths(treedef: TreeDef) -> list[str]:
    """Where each leaf sits, in ``tree_flatten``'s order, written as indexing: ``['w'][0]`` ("" for a lone leaf)."""
    paths: list[str] = []

    def walk(d: TreeDef, prefix: str) -> None:
        if d.kind == "leaf":
            paths.append(prefix)
        elif d.kind == "dict":
            for k, c in zip(d.keys, d.children, strict=True):
                walk(c, f"{prefix}[{k!r}]")
        else:
            for i, c in enumerate(d.children):
                walk(c, f"{prefix}[{i}]")
    walk(treedef, "")
    return paths


def tree_leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree``, in order."""
    return tree_flatten(tree)[0]


def tree_structure(tree: Any) -> TreeDef:
    """The structure of ``tree``."""
    return tree_flatten(tree)[1]


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``f`` applied leaf by leaf; ``rest`` are pytrees of the same structure (their leaves are f's
    further arguments)."""
    leaves, treedef = tree_flatten(tree)
    others = []
    for r in rest:
        r_leaves, r_def = tree_flatten(r)
        if r_def != treedef:
            raise ValueError(f"tree_map: structures differ: {treedef!r} and {r_def!r}")
        others.append(r_leaves)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others, strict=True)])
