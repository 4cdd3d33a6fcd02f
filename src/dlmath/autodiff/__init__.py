"""dlmath.autodiff: automatic differentiation over NumPy, reverse and forward mode.

Layers of this package, bottom up (imports point one way): ``state`` (per-thread switches),
``errors``, ``core`` (the Tensor's state, the tape's Node, Primitive and `apply`), ``ops``
(the table of primitives with their VJP and JVP rules), ``sweep`` (the reverse sweep),
``methods`` (the Tensor's operators, attached from the table), ``transforms`` (grad, vjp,
jvp...), ``gradcheck``, ``flops``.
"""

from . import linalg, ops
from . import methods as _methods  # noqa: F401  (attaches the Tensor's operators and methods)
from .core import Primitive, Tensor, as_tensor, primitive, tensor
from .errors import (
    AllocationError,
    AnomalyError,
    DlmathError,
    DtypeError,
    GradcheckError,
    GradientError,
    InplaceModificationError,
    LinAlgError,
    ShapeError,
)
from .flops import FlopCounter, count_flops
from .gradcheck import GradcheckReport, gradcheck, numerical_jacobian
from .ops import (
    abs,
    add,
    astype,
    broadcast_to,
    clip,
    concatenate,
    cos,
    divide,
    einsum,
    erf,
    exp,
    expand_dims,
    flip,
    gelu,
    getitem,
    log,
    log1p,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    negative,
    pad,
    permute,
    power,
    prod,
    relu,
    reshape,
    roll,
    sigmoid,
    sin,
    softmax,
    softplus,
    split,
    sqrt,
    squeeze,
    stack,
    std,
    subtract,
    sum,
    swapaxes,
    take,
    tanh,
    transpose,
    unsqueeze,
    var,
    where,
)
from .state import detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .sweep import reduce_to_shape
from .transforms import grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp

__all__ = [
    "AllocationError", "AnomalyError", "DlmathError", "DtypeError", "FlopCounter", "GradcheckError", "GradcheckReport",
    "GradientError", "InplaceModificationError", "LinAlgError", "Primitive", "ShapeError", "Tensor", "abs", "add",
    "as_tensor", "astype", "broadcast_to", "clip", "concatenate", "cos", "count_flops", "detect_anomaly",
    "divide", "einsum", "enable_grad", "erf", "exp", "expand_dims", "flip", "gelu", "getitem",
    "grad", "gradcheck", "hessian", "hvp", "is_grad_enabled", "jacobian", "jvp", "linalg", "log", "log1p",
    "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum", "multiply",
    "negative", "no_grad", "numerical_jacobian", "ops", "pad", "permute", "power", "primitive", "prod",
    "reduce_to_shape", "relu", "reshape", "roll", "sigmoid", "sin", "softmax", "softplus", "split",
    "sqrt", "squeeze", "stack", "std", "subtract", "sum", "swapaxes", "take", "tanh", "tensor",
    "transpose", "unsqueeze", "value_and_grad", "var", "vjp", "where",
]
