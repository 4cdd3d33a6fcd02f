"""The Tensor: an n-d NumPy array that remembers how it was made.

Every operator and method here is a one-line delegation to a primitive or
composite of `ops.py`; the derivatives live there and only there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import state
from .errors import DtypeError, GradientError, InplaceModificationError, ShapeError

ArrayLike = Any


def _as_float_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Python scalars and lists become float64; arrays keep their dtype (float32 stays float32)."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=dtype)
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, np.generic):
        return np.asarray(data)
    try:
        arr = np.asarray(data)
    except ValueError as exc:  # ragged nested lists
        raise ShapeError(f"tensor: data does not form a rectangular array: {exc}") from None
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    return arr


def check_differentiable_dtype(arr: np.ndarray, what: str) -> None:
    if arr.dtype.kind == "c":
        raise DtypeError(f"{what} has dtype {arr.dtype}; gradients of complex tensors are not supported "
                         f"(their conjugation convention is not implemented): use real and imaginary parts")
    if arr.dtype.kind != "f":
        raise DtypeError(f"{what} has dtype {arr.dtype}; only floating-point tensors can require "
                         f"gradients (convert with dm.tensor(x, dtype=np.float64) or .astype(np.float64))")


class Tensor:
    """An n-d array with reverse-mode automatic differentiation.

    Attributes: ``data`` (the NumPy array), ``grad`` (a Tensor, filled by
    ``backward`` on leaves), ``requires_grad``.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "_version", "__weakref__")
    __array_ufunc__ = None  # `ndarray op Tensor` defers to Tensor's reflected operators
    __array_priority__ = 1000

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> None:
        arr = _as_float_array(data, dtype)
        if requires_grad:
            check_differentiable_dtype(arr, "tensor")
        self.data: np.ndarray = arr
        self.grad: Tensor | None = None
        self.requires_grad: bool = requires_grad
        self._node: Any = None
        # a one-element list, shared with .detach()ed views of the same data, bumped by in-place ops
        self._version: list[int] = [0]

    @classmethod
    def _wrap(cls, arr: Any) -> Tensor:
        """A constant Tensor around an array produced by an op (no copy, no checks)."""
        t = cls.__new__(cls)
        t.data = arr if type(arr) is np.ndarray else np.asarray(arr)
        t.grad = None
        t.requires_grad = False
        t._node = None
        t._version = [0]
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

    def backward(self, grad: ArrayLike | None = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` seeds the pass (the cotangent of self); it may be omitted only for a
        single-element tensor. With ``create_graph=True`` the gradients are themselves
        recorded, so they can be differentiated again (any order).
        """
        from .backprop import backward
        backward(self, grad, create_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ----- in-place ops (bump the version so saved tensors can be checked) ------------------
    def _check_inplace(self, what: str) -> None:
        if self.requires_grad and state.grad_enabled:
            kind = "a leaf tensor that requires grad" if self._node is None else "a tensor on the tape"
            raise InplaceModificationError(
                f"{what} on {kind} {describe_tensor(self)}; do it under dm.no_grad() "
                f"(as an optimizer does) or on a copy (dm.tensor(t))")

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace("item assignment")
        if isinstance(value, Tensor) and value.requires_grad and state.grad_enabled:
            raise GradientError(
                f"item assignment of a tensor that requires grad (shape {value.shape}) would drop its "
                f"gradient; build the result with dm.where, dm.concatenate or dm.stack instead")
        self.data[_index(index)] = value.data if isinstance(value, Tensor) else value
        self._version[0] += 1

    def _inplace(self, ufunc: np.ufunc, other: Any, what: str) -> Tensor:
        self._check_inplace(what)
        ufunc(self.data, other.data if isinstance(other, Tensor) else other, out=self.data, casting="same_kind")
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

    def zero_(self) -> Tensor:
        self._check_inplace("zero_()")
        self.data[...] = 0
        self._version[0] += 1
        return self

    # ----- arithmetic --------------------------------------------------------------------------
    def __add__(self, o: Any) -> Tensor:
        return _apply(_ops.add, (self, o), _NO_KWARGS)

    def __radd__(self, o: Any) -> Tensor:
        return _apply(_ops.add, (o, self), _NO_KWARGS)

    def __sub__(self, o: Any) -> Tensor:
        return _apply(_ops.subtract, (self, o), _NO_KWARGS)

    def __rsub__(self, o: Any) -> Tensor:
        return _apply(_ops.subtract, (o, self), _NO_KWARGS)

    def __mul__(self, o: Any) -> Tensor:
        return _apply(_ops.multiply, (self, o), _NO_KWARGS)

    def __rmul__(self, o: Any) -> Tensor:
        return _apply(_ops.multiply, (o, self), _NO_KWARGS)

    def __truediv__(self, o: Any) -> Tensor:
        return _apply(_ops.divide, (self, o), _NO_KWARGS)

    def __rtruediv__(self, o: Any) -> Tensor:
        return _apply(_ops.divide, (o, self), _NO_KWARGS)

    def __pow__(self, o: Any) -> Tensor:
        return _apply(_ops.power, (self, o), _NO_KWARGS)

    def __rpow__(self, o: Any) -> Tensor:
        return _apply(_ops.power, (o, self), _NO_KWARGS)

    def __matmul__(self, o: Any) -> Tensor:
        return _apply(_ops.matmul, (self, o), _NO_KWARGS)

    def __rmatmul__(self, o: Any) -> Tensor:
        return _apply(_ops.matmul, (o, self), _NO_KWARGS)

    def __neg__(self) -> Tensor:
        return _apply(_ops.negative, (self,), _NO_KWARGS)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ops.abs(self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, _index(index))

    # Comparisons are not differentiable: they give constant boolean Tensors.
    def __lt__(self, o: Any) -> Tensor:
        return Tensor._wrap(self.data < _raw(o))

    def __le__(self, o: Any) -> Tensor:
        return Tensor._wrap(self.data <= _raw(o))

    def __gt__(self, o: Any) -> Tensor:
        return Tensor._wrap(self.data > _raw(o))

    def __ge__(self, o: Any) -> Tensor:
        return Tensor._wrap(self.data >= _raw(o))

    def __eq__(self, o: Any) -> Tensor:  # type: ignore[override]
        return Tensor._wrap(self.data == _raw(o))

    def __ne__(self, o: Any) -> Tensor:  # type: ignore[override]
        return Tensor._wrap(self.data != _raw(o))

    # ----- methods mirroring the dm namespace ------------------------------------------------
    @property
    def T(self) -> Tensor:
        return _ops.transpose(self)

    @property
    def mT(self) -> Tensor:
        return _ops.swapaxes(self, -1, -2)

    def sum(self, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Tensor:
        return _numpy_reduction(_ops.sum(self, axis=axis, keepdims=keepdims), "sum", numpy_kwargs)

    def mean(self, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Tensor:
        return _numpy_reduction(_ops.mean(self, axis=axis, keepdims=keepdims), "mean", numpy_kwargs)

    def var(self, axis: Any = None, ddof: int = 0, keepdims: bool = False, **numpy_kwargs: Any) -> Tensor:
        return _numpy_reduction(_ops.var(self, axis=axis, ddof=ddof, keepdims=keepdims), "var", numpy_kwargs)

    def std(self, axis: Any = None, ddof: int = 0, keepdims: bool = False, **numpy_kwargs: Any) -> Tensor:
        return _numpy_reduction(_ops.std(self, axis=axis, ddof=ddof, keepdims=keepdims), "std", numpy_kwargs)

    def max(self, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Tensor:
        return _numpy_reduction(_ops.max(self, axis=axis, keepdims=keepdims), "max", numpy_kwargs)

    def min(self, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Tensor:
        return _numpy_reduction(_ops.min(self, axis=axis, keepdims=keepdims), "min", numpy_kwargs)

    def prod(self, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Tensor:
        return _numpy_reduction(_ops.prod(self, axis=axis, keepdims=keepdims), "prod", numpy_kwargs)

    def argmax(self, axis: Any = None) -> np.ndarray:
        return np.argmax(self.data, axis=axis)

    def argmin(self, axis: Any = None) -> np.ndarray:
        return np.argmin(self.data, axis=axis)

    def reshape(self, *shape: Any) -> Tensor:
        return _ops.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def view(self, *shape: Any) -> Tensor:
        return self.reshape(*shape)

    def flatten(self) -> Tensor:
        return _ops.reshape(self, (-1,))

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    def permute(self, *axes: Any) -> Tensor:
        return self.transpose(*axes)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        return _ops.swapaxes(self, axis1, axis2)

    def expand(self, *shape: Any) -> Tensor:
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        # PyTorch convention: -1 keeps that dimension's size
        offset = len(shape) - self.ndim
        full = tuple(self.shape[i - offset] if s == -1 else s for i, s in enumerate(shape))
        return _ops.broadcast_to(self, full)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return _ops.broadcast_to(self, tuple(shape))

    def squeeze(self, axis: Any = None) -> Tensor:
        return _ops.squeeze(self, axis)

    def unsqueeze(self, axis: int) -> Tensor:
        return _ops.unsqueeze(self, axis)

    def flip(self, axis: Any = None) -> Tensor:
        return _ops.flip(self, axis)

    def roll(self, shift: Any, axis: Any = None) -> Tensor:
        return _ops.roll(self, shift, axis)

    def astype(self, dtype: Any) -> Tensor:
        return _ops.astype(self, dtype)

    def exp(self) -> Tensor:
        return _ops.exp(self)

    def log(self) -> Tensor:
        return _ops.log(self)

    def sqrt(self) -> Tensor:
        return _ops.sqrt(self)

    def tanh(self) -> Tensor:
        return _ops.tanh(self)

    def sigmoid(self) -> Tensor:
        return _ops.sigmoid(self)

    def relu(self) -> Tensor:
        return _ops.relu(self)

    def abs(self) -> Tensor:
        return _ops.abs(self)

    def clip(self, a_min: Any = None, a_max: Any = None) -> Tensor:
        return _ops.clip(self, a_min, a_max)

    def softmax(self, axis: int = -1) -> Tensor:
        return _ops.softmax(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return _ops.log_softmax(self, axis=axis)

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops.logsumexp(self, axis=axis, keepdims=keepdims)


def _numpy_reduction(result: Tensor, name: str, numpy_kwargs: dict[str, Any]) -> Tensor:
    """Accept the keywords NumPy passes when ``np.sum(t)`` (etc.) delegates to the method."""
    out = numpy_kwargs.pop("out", None)
    dtype = numpy_kwargs.pop("dtype", None)
    if out is not None or numpy_kwargs:
        bad = ["out"] * (out is not None) + sorted(numpy_kwargs)
        raise TypeError(f"Tensor.{name}() does not support {', '.join(bad)}")
    return result if dtype is None else result.astype(dtype)


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _index(index: Any) -> Any:
    """Indices may contain Tensors (e.g. labels); they index by their values."""
    if isinstance(index, tuple):
        return tuple(_index_tensor(i) for i in index)
    return _index_tensor(index)


def _index_tensor(i: Any) -> Any:
    if not isinstance(i, Tensor):
        return i
    if i.data.dtype.kind not in "biu":
        raise DtypeError(f"an index tensor must hold integers or booleans, got {i.data.dtype} (dm.tensor makes "
                         f"lists float64: index with np.array([...]) or dm.tensor(..., dtype=np.int64))")
    return i.data


def describe_tensor(t: Tensor) -> str:
    return f"of shape {t.shape} ({t.dtype})"


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a Tensor. Python scalars and lists become float64; arrays keep their dtype.

    The array is copied (as `torch.tensor` does), so later changes to ``data`` do not
    reach the tensor.
    """
    if isinstance(data, Tensor):
        data = data.data
    arr = np.array(data, dtype=dtype) if dtype is not None or isinstance(data, np.ndarray) else _as_float_array(data)
    return Tensor(arr, requires_grad=requires_grad)


def as_tensor(data: ArrayLike, dtype: Any = None) -> Tensor:
    """A constant Tensor sharing memory with ``data`` where possible."""
    if isinstance(data, Tensor) and dtype is None:
        return data
    return Tensor(_as_float_array(data, dtype))


from . import ops as _ops  # noqa: E402  (ops needs Tensor; Tensor's methods need ops at call time)
from .primitive import apply as _apply  # noqa: E402

# operators call `apply` directly (one call less per op than going through Primitive.__call__)
_NO_KWARGS: dict[str, Any] = {}
