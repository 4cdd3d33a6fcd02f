"""dlmath.autodiff: a reverse-mode automatic differentiation engine over NumPy.

Layers of this package, bottom up: ``state`` (modes), ``tensor`` (the Tensor),
``primitive`` (how an op is called and recorded), ``ops`` (the table of primitives
and their VJP rules), ``backprop`` (the reverse sweep), ``transforms`` (grad, vjp,
jvp...), ``gradcheck``, ``flops``.
"""

from . import ops
from .backprop import reduce_to_shape
from .errors import (
    AnomalyError,
    DlmathError,
    DtypeError,
    GradcheckError,
    GradientError,
    InplaceModificationError,
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
from .primitive import Primitive, primitive
from .state import detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, as_tensor, tensor
from .transforms import grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp

expand = broadcast_to

__all__ = [
    "AnomalyError", "DlmathError", "DtypeError", "FlopCounter", "GradcheckError", "GradcheckReport",
    "GradientError", "InplaceModificationError", "Primitive", "ShapeError", "Tensor", "abs", "add",
    "as_tensor", "astype", "broadcast_to", "clip", "concatenate", "cos", "count_flops", "detect_anomaly",
    "divide", "einsum", "enable_grad", "erf", "exp", "expand", "expand_dims", "flip", "gelu", "getitem",
    "grad", "gradcheck", "hessian", "hvp", "is_grad_enabled", "jacobian", "jvp", "log", "log1p",
    "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum", "multiply",
    "negative", "no_grad", "numerical_jacobian", "ops", "pad", "permute", "power", "primitive", "prod",
    "reduce_to_shape", "relu", "reshape", "roll", "sigmoid", "sin", "softmax", "softplus", "split",
    "sqrt", "squeeze", "stack", "std", "subtract", "sum", "swapaxes", "take", "tanh", "tensor",
    "transpose", "unsqueeze", "value_and_grad", "var", "vjp", "where",
]
