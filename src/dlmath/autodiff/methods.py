"""The Tensor's operators and NumPy-like methods, attached from the op table.

Each is a one-line delegation to a primitive or composite of ``ops.py`` (the derivatives
live there and only there). Attaching them here, rather than defining them in the
Tensor's class body, keeps the import graph one-way: ``core`` (the Tensor's state) knows
nothing of ``ops``; this module knows both (as HIPS autograd's ``numpy_boxes``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import ops, shapes, sweep
from .core import Tensor, apply, index_of, unwrap

_NO_KWARGS: dict[str, Any] = {}


def _binary(prim: Any) -> tuple[Callable[[Tensor, Any], Tensor], Callable[[Tensor, Any], Tensor]]:
    """``t op o`` and ``o op t``; they call `apply` directly (one call less per op than through the primitive)."""
    def forward(self: Tensor, o: Any) -> Tensor:
        return apply(prim, (self, o), _NO_KWARGS)

    def reflected(self: Tensor, o: Any) -> Tensor:
        return apply(prim, (o, self), _NO_KWARGS)
    return forward, reflected


def _comparison(ufunc: np.ufunc) -> Callable[[Tensor, Any], Tensor]:
    """Comparisons are not differentiable: they give constant boolean Tensors."""
    def compare(self: Tensor, o: Any) -> Tensor:
        return Tensor._wrap(ufunc(self.data, unwrap(o)))
    return compare


def _numpy_reduction(result: Tensor, name: str, numpy_kwargs: dict[str, Any]) -> Tensor:
    """Accept the keywords NumPy passes when ``np.sum(t)`` (etc.) delegates to the method."""
    out = numpy_kwargs.pop("out", None)
    dtype = numpy_kwargs.pop("dtype", None)
    if out is not None or numpy_kwargs:
        bad = ["out"] * (out is not None) + sorted(numpy_kwargs)
        raise TypeError(f"Tensor.{name}() does not support {', '.join(bad)}")
    return result if dtype is None else result.astype(dtype)


def _method(prim: Any) -> Callable[..., Tensor]:
    """A primitive as a method (primitives are objects, not functions, so they do not bind by themselves)."""
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return prim(self, *args, **kwargs)
    method.__name__ = prim.__name__
    method.__doc__ = prim.__doc__
    return method


def _reduction(fn: Callable[..., Any], name: str) -> Callable[..., Tensor]:
    def method(self: Tensor, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Tensor:
        return _numpy_reduction(fn(self, axis=axis, keepdims=keepdims), name, numpy_kwargs)
    method.__name__ = name
    return method


def _spread(fn: Callable[..., Any], name: str) -> Callable[..., Tensor]:
    def method(self: Tensor, axis: Any = None, ddof: int = 0, keepdims: bool = False, **numpy_kwargs: Any) -> Tensor:
        return _numpy_reduction(fn(self, axis=axis, ddof=ddof, keepdims=keepdims), name, numpy_kwargs)
    method.__name__ = name
    return method


def _shape_args(shape: tuple[Any, ...]) -> tuple[int, ...]:
    """``t.reshape(2, 3)`` and ``t.reshape((2, 3))`` alike."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _reshape(self: Tensor, *shape: Any) -> Tensor:
    return ops.reshape(self, _shape_args(shape))


def _transpose(self: Tensor, *axes: Any) -> Tensor:
    axes = _shape_args(axes)
    return ops.transpose(self, axes or None)


def _expand(self: Tensor, *shape: Any) -> Tensor:
    """PyTorch's ``expand``: -1 keeps that dimension's size."""
    shape = _shape_args(shape)
    offset = len(shape) - self.ndim
    return ops.broadcast_to(self, tuple(self.shape[i - offset] if s == -1 else s for i, s in enumerate(shape)))


def _broadcast_to(self: Tensor, shape: Sequence[int]) -> Tensor:
    return ops.broadcast_to(self, tuple(shape))


def _backward(self: Tensor, grad: Any = None, create_graph: bool = False) -> None:
    """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

    ``grad`` seeds the pass (the cotangent of self); it may be omitted only for a
    single-element tensor. With ``create_graph=True`` the gradients are themselves
    recorded, so they can be differentiated again (any order).
    """
    sweep.backward(self, grad, create_graph)


def _iter(self: Tensor) -> Iterator[Tensor]:
    """The rows ``t[0], t[1], ...`` (differentiable, each a getitem); a 0-d tensor is not iterable, as in NumPy."""
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (ops.getitem(self, i) for i in range(self.shape[0]))


def _repeat(self: Tensor, repeats: Any, axis: Any = None) -> Tensor:
    return shapes.repeat(self, repeats, axis)


def attach() -> None:
    """Give Tensor its operators and methods (done once, when the package is imported)."""
    table: dict[str, Any] = {"backward": _backward}
    for name, prim in (("add", ops.add), ("sub", ops.subtract), ("mul", ops.multiply), ("truediv", ops.divide),
                       ("pow", ops.power), ("matmul", ops.matmul), ("mod", ops.remainder)):
        table[f"__{name}__"], table[f"__r{name}__"] = _binary(prim)
    for name, ufunc in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                        ("eq", np.equal), ("ne", np.not_equal)):
        table[f"__{name}__"] = _comparison(ufunc)
    table.update({
        "__neg__": lambda self: apply(ops.negative, (self,), _NO_KWARGS),
        "__pos__": lambda self: self,
        "__abs__": _method(ops.abs),
        "__getitem__": lambda self, index: ops.getitem(self, index_of(index)),
        "T": property(ops.transpose),
        "mT": property(lambda self: ops.swapaxes(self, -1, -2)),
        "sum": _reduction(ops.sum, "sum"), "mean": _reduction(ops.mean, "mean"),
        "max": _reduction(ops.max, "max"), "min": _reduction(ops.min, "min"),
        "prod": _reduction(ops.prod, "prod"),
        "var": _spread(ops.var, "var"), "std": _spread(ops.std, "std"),
        "argmax": lambda self, axis=None: np.argmax(self.data, axis=axis),
        "argmin": lambda self, axis=None: np.argmin(self.data, axis=axis),
        "reshape": _reshape, "view": _reshape,  # view: PyTorch's name
        "transpose": _transpose, "permute": _transpose,  # permute: PyTorch's name
        "swapaxes": ops.swapaxes, "expand": _expand, "broadcast_to": _broadcast_to,
        "squeeze": lambda self, axis=None: ops.squeeze(self, axis),
        "unsqueeze": ops.unsqueeze,
        "flip": lambda self, axis=None: ops.flip(self, axis),
        "roll": lambda self, shift, axis=None: ops.roll(self, shift, axis),
        "astype": ops.astype, "clip": lambda self, a_min=None, a_max=None: ops.clip(self, a_min, a_max),
        "softmax": lambda self, axis=-1: ops.softmax(self, axis=axis),
        "log_softmax": lambda self, axis=-1: ops.log_softmax(self, axis=axis),
        "logsumexp": lambda self, axis=None, keepdims=False: ops.logsumexp(self, axis=axis, keepdims=keepdims),
        "__iter__": _iter,
        "ravel": shapes.ravel, "dot": shapes.dot, "repeat": _repeat,
        "cumsum": lambda self, axis=None: shapes.cumsum(self, axis),
        "cumprod": lambda self, axis=None: shapes.cumprod(self, axis),
        "diagonal": lambda self, offset=0, axis1=0, axis2=1: shapes.diagonal(self, offset, axis1, axis2),
        "trace": lambda self, offset=0, axis1=0, axis2=1: shapes.trace(self, offset, axis1, axis2),
        "argsort": lambda self, axis=-1, kind=None: shapes.argsort(self, axis, kind),
        "moveaxis": shapes.moveaxis,
        # truth tests and sizes are not differentiable: plain NumPy values, as argmax
        "all": lambda self, axis=None, keepdims=False: np.all(self.data, axis=axis, keepdims=keepdims),
        "any": lambda self, axis=None, keepdims=False: np.any(self.data, axis=axis, keepdims=keepdims),
        "nbytes": property(lambda self: self.data.nbytes),
        "itemsize": property(lambda self: self.data.itemsize),
        "flatten": lambda self: ops.reshape(self, (-1,)),
    })
    # elementwise functions as methods, under the names NumPy's ufuncs and PyTorch's Tensor methods share
    for name in ("exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "sin", "cos", "tan", "sinh", "cosh",
                 "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "expm1", "log1p", "log2", "log10",
                 "exp2", "square", "reciprocal", "sign", "floor", "ceil", "round", "erf"):
        table[name] = _method(getattr(ops, name))
    for name, value in table.items():
        setattr(Tensor, name, value)


attach()
