r"""Every primitive of the engine, in one table: forward, VJP rules, flop count.

Reading guide. ``prim.defvjp(rule_0, rule_1, ...)`` gives, for each argument, the
map from the output cotangent $\bar y$ (``g``) to that argument's cotangent
$\bar x_i = J_i^\top \bar y$; ``ans`` is the primal output. Rules are written with
operators and the ops of this file, so they run on arrays in a plain backward pass
and on Tensors when ``create_graph=True`` (higher-order derivatives). Rules may
return a broadcast shape; the engine sums it back (``backprop.reduce_to_shape``).
Masks that are piecewise constant (relu, clip, max) are computed on raw data: their
derivative is zero almost everywhere, which is the correct higher-order behaviour.

Flop convention (used by ``dm.count_flops``): one flop per output element for
elementwise ops (transcendentals included), one per input element for reductions,
$2mkn$ per $(m,k)\times(k,n)$ matrix product, zero for shape and indexing ops.

Composite functions (mean, var, gelu, stack, split...) at the bottom are written
with the primitives and need no derivative of their own.
"""

from __future__ import annotations

import builtins
import math
import string
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special as _special

from .core import Primitive, Tensor, index_of
from .core import unwrap as _data
from .errors import DlmathError, ShapeError


def _ew_flops(out: Any, *args: Any, **kwargs: Any) -> int:
    return int(np.size(out))


def _reduce_flops(out: Any, x: Any, *args: Any, **kwargs: Any) -> int:
    return int(np.size(x))


def _unary(name: str, fn: Any, vjp: Any, jvp: Any, doc: str, reads_inputs: bool = True,
           reads_output: bool = False) -> Primitive:
    """An elementwise primitive with its VJP rule ``vjp(g, ans, x)`` and JVP rule ``jvp(t, ans, x)``.

    Both are $f'(x)$ times the incoming vector, but they are written separately on purpose:
    forward and reverse mode then check each other (a wrong rule in one table shows up as a
    disagreement between ``dm.jvp`` and ``dm.vjp``)."""
    return Primitive(name, fn, _ew_flops, doc, reads_inputs, reads_output).defvjp(vjp).defjvp(jvp)


# ----- elementwise arithmetic (NumPy broadcasting) -------------------------------------------
# add and subtract are linear, but their tangents are written out: adding a zero tangent for a constant
# operand (x + 1.0, the common case) would cost a flop per element for nothing
add = Primitive("add", np.add, _ew_flops, "x + y", reads_inputs=False).defvjp(
    lambda g, ans, x, y: g,
    lambda g, ans, x, y: g).defjvp(
    lambda t, ans, x, y: t,
    lambda t, ans, x, y: t)
subtract = Primitive("subtract", np.subtract, _ew_flops, "x - y", reads_inputs=False).defvjp(
    lambda g, ans, x, y: g,
    lambda g, ans, x, y: -g).defjvp(
    lambda t, ans, x, y: t,
    lambda t, ans, x, y: -t)
multiply = Primitive("multiply", np.multiply, _ew_flops, "x * y").defvjp(
    lambda g, ans, x, y: g * y,
    lambda g, ans, x, y: g * x).defjvp(
    lambda t, ans, x, y: t * y,
    lambda t, ans, x, y: x * t)
divide = Primitive("divide", np.true_divide, _ew_flops, "x / y", reads_output=True).defvjp(
    lambda g, ans, x, y: g / y,
    lambda g, ans, x, y: -g * ans / y).defjvp(
    lambda t, ans, x, y: t / y,
    lambda t, ans, x, y: -(ans / y) * t)


def _power_vjp_base(g: Any, ans: Any, x: Any, y: Any) -> Any:
    r"""$\partial x^y/\partial x = y x^{y-1}$ (zero where $y = 0$, as PyTorch)."""
    if not isinstance(y, Tensor) and np.all(np.asarray(y) == 0):
        return g * 0
    both = (np.asarray(_data(y)) == 0) & (np.asarray(_data(x)) == 0)
    if np.any(both):  # y x^(y-1) is 0 where y == 0, also where x == 0 (not 0 * inf = NaN)
        return where(both, 0.0, g * y * x ** where(both, 1.0, y - 1))
    return g * y * x ** (y - 1)


def _power_vjp_exponent(g: Any, ans: Any, x: Any, y: Any) -> Any:
    r"""$\partial x^y/\partial y = x^y \log x$, taken as 0 where $x \le 0$."""
    positive = _data(x) > 0
    return where(positive, g * ans * log(where(positive, x, 1.0)), 0.0)


def _power_jvp_base(t: Any, ans: Any, x: Any, y: Any) -> Any:
    r"""$\dot y = y x^{y-1}\dot x$, written as $(y/x)\,x^y\,\dot x$ where $x \ne 0$ and by the power
    rule where $x = 0$ (0 where the exponent is 0, as the VJP)."""
    xd, yd = np.asarray(_data(x)), np.asarray(_data(y))
    at_zero = xd == 0
    if not np.any(at_zero):
        return t * y * ans / x
    safe_x = where(at_zero, 1.0, x)
    at_origin = at_zero & (yd == 0)
    by_power = y * where(at_origin, 0.0, x) ** where(at_origin, 1.0, y - 1)
    return t * where(at_zero, where(at_origin, 0.0, by_power), y * ans / safe_x)


def _power_jvp_exponent(t: Any, ans: Any, x: Any, y: Any) -> Any:
    r"""$\dot z = x^y \log(x)\,\dot y$, 0 where $x \le 0$ (as the VJP)."""
    positive = _data(x) > 0
    return where(positive, log(where(positive, x, 1.0)) * ans * t, 0.0)


power = Primitive("power", np.power, _ew_flops, "x ** y", reads_output=True).defvjp(
    _power_vjp_base, _power_vjp_exponent).defjvp(_power_jvp_base, _power_jvp_exponent)
negative = Primitive("negative", np.negative, _ew_flops, "-x", reads_inputs=False, linear=(0,)).defvjp(
    lambda g, ans, x: -g)
abs = _unary("abs", np.abs, lambda g, ans, x: g * np.sign(_data(x)), lambda t, ans, x: np.sign(_data(x)) * t,
             "|x| (gradient sign(x), 0 at 0)")
exp = _unary("exp", np.exp, lambda g, ans, x: g * ans, lambda t, ans, x: ans * t, "e^x", reads_output=True)
log = _unary("log", np.log, lambda g, ans, x: g / x, lambda t, ans, x: t / x, "natural logarithm")
log1p = _unary("log1p", np.log1p, lambda g, ans, x: g / (1 + x), lambda t, ans, x: t / (x + 1),
               "log(1 + x), accurate near 0")
sqrt = _unary("sqrt", np.sqrt, lambda g, ans, x: g / (2 * ans), lambda t, ans, x: 0.5 * t / ans, "square root",
              reads_output=True)
sin = _unary("sin", np.sin, lambda g, ans, x: g * cos(x), lambda t, ans, x: cos(x) * t, "sine")
cos = _unary("cos", np.cos, lambda g, ans, x: -(g * sin(x)), lambda t, ans, x: -sin(x) * t, "cosine")
tanh = _unary("tanh", np.tanh, lambda g, ans, x: g * (1 - ans * ans), lambda t, ans, x: t - t * ans * ans,
              "hyperbolic tangent", reads_output=True)
sigmoid = _unary("sigmoid", _special.expit, lambda g, ans, x: g * ans * (1 - ans),
                 lambda t, ans, x: (ans - ans * ans) * t,
                 r"logistic sigmoid $\sigma(x) = 1/(1+e^{-x})$, computed without overflow", reads_output=True)
relu = _unary("relu", lambda x: np.maximum(x, 0), lambda g, ans, x: g * (_data(x) > 0),
              lambda t, ans, x: where(_data(x) > 0, t, 0.0), "max(x, 0) (gradient 0 at 0, as PyTorch)")
softplus = _unary("softplus", lambda x: np.logaddexp(0, x), lambda g, ans, x: g * sigmoid(x),
                  lambda t, ans, x: sigmoid(x) * t, r"$\log(1+e^x)$, computed without overflow")
erf = _unary("erf", _special.erf, lambda g, ans, x: g * (2 / math.sqrt(math.pi)) * exp(-(x * x)),
             lambda t, ans, x: exp(-(x * x)) * t * (2 / math.sqrt(math.pi)), "the error function")


def _tie_split(x: Any, y: Any) -> Any:
    """Weight of x in max(x, y): 1 where x wins, 1/2 on ties (PyTorch's convention)."""
    xd, yd = _data(x), _data(y)
    return (xd > yd) + 0.5 * (xd == yd)


maximum = Primitive("maximum", np.maximum, _ew_flops, "elementwise max (ties split the gradient)").defvjp(
    lambda g, ans, x, y: g * _tie_split(x, y),
    lambda g, ans, x, y: g * _tie_split(y, x)).defjvp(
    lambda t, ans, x, y: _tie_split(x, y) * t,
    lambda t, ans, x, y: _tie_split(y, x) * t)
minimum = Primitive("minimum", np.minimum, _ew_flops, "elementwise min (ties split the gradient)").defvjp(
    lambda g, ans, x, y: g * _tie_split(y, x),
    lambda g, ans, x, y: g * _tie_split(x, y)).defjvp(
    lambda t, ans, x, y: _tie_split(y, x) * t,
    lambda t, ans, x, y: _tie_split(x, y) * t)
# ----- more elementwise functions (NumPy names and broadcasting) ----------------------------------------------
_LN2, _LN10 = math.log(2.0), math.log(10.0)

tan = _unary("tan", np.tan, lambda g, ans, x: g * (1 + ans * ans), lambda t, ans, x: t + ans * ans * t,
             r"tangent; $\tan' = 1 + \tan^2$", reads_output=True)
sinh = _unary("sinh", np.sinh, lambda g, ans, x: g * cosh(x), lambda t, ans, x: cosh(x) * t, "hyperbolic sine")
cosh = _unary("cosh", np.cosh, lambda g, ans, x: g * sinh(x), lambda t, ans, x: sinh(x) * t, "hyperbolic cosine")
arcsin = _unary("arcsin", np.arcsin, lambda g, ans, x: g / sqrt(1 - x * x),
                lambda t, ans, x: t / sqrt((1 - x) * (1 + x)),
                r"inverse sine on $[-1, 1]$ (NaN outside, as NumPy); $\arcsin' x = 1/\sqrt{1-x^2}$")
arccos = _unary("arccos", np.arccos, lambda g, ans, x: -g / sqrt(1 - x * x),
                lambda t, ans, x: -(t / sqrt((1 - x) * (1 + x))),
                r"inverse cosine on $[-1, 1]$ (NaN outside, as NumPy); $\arccos' x = -1/\sqrt{1-x^2}$")
arctan = _unary("arctan", np.arctan, lambda g, ans, x: g / (1 + x * x), lambda t, ans, x: t / (x * x + 1),
                r"inverse tangent; $\arctan' x = 1/(1+x^2)$")
arcsinh = _unary("arcsinh", np.arcsinh, lambda g, ans, x: g / sqrt(x * x + 1), lambda t, ans, x: t / hypot(x, 1.0),
                 r"inverse hyperbolic sine; $\operatorname{arsinh}' x = 1/\sqrt{x^2+1}$")
arccosh = _unary("arccosh", np.arccosh, lambda g, ans, x: g / sqrt(x * x - 1),
                 lambda t, ans, x: t / sqrt((x - 1) * (x + 1)),
                 r"inverse hyperbolic cosine on $[1, \infty)$; $\operatorname{arcosh}' x = 1/\sqrt{x^2-1}$")
arctanh = _unary("arctanh", np.arctanh, lambda g, ans, x: g / (1 - x * x), lambda t, ans, x: t / ((1 - x) * (1 + x)),
                 r"inverse hyperbolic tangent on $(-1, 1)$; $\operatorname{artanh}' x = 1/(1-x^2)$")
expm1 = _unary("expm1", np.expm1, lambda g, ans, x: g * (ans + 1), lambda t, ans, x: t + ans * t,
               r"$e^x - 1$, accurate near 0; its derivative is $e^x$ = ans + 1", reads_output=True)
exp2 = _unary("exp2", np.exp2, lambda g, ans, x: g * ans * _LN2, lambda t, ans, x: (_LN2 * ans) * t,
              r"$2^x$; derivative $2^x \ln 2$", reads_output=True)
log2 = _unary("log2", np.log2, lambda g, ans, x: g / (x * _LN2), lambda t, ans, x: (t / x) * (1 / _LN2),
              r"base-2 logarithm; derivative $1/(x \ln 2)$")
log10 = _unary("log10", np.log10, lambda g, ans, x: g / (x * _LN10), lambda t, ans, x: (t / x) * (1 / _LN10),
               r"base-10 logarithm; derivative $1/(x \ln 10)$")
square = _unary("square", np.square, lambda g, ans, x: g * (2 * x), lambda t, ans, x: 2 * x * t,
                "$x^2$ (one flop)")
reciprocal = _unary("reciprocal", np.reciprocal, lambda g, ans, x: -(g * ans * ans), lambda t, ans, x: -(ans * ans) * t,
                    r"$1/x$ (NumPy's: integer arrays give integer results); derivative $-1/x^2$", reads_output=True)
cbrt = _unary("cbrt", np.cbrt, lambda g, ans, x: g / (3 * ans * ans), lambda t, ans, x: (t / 3) / (ans * ans),
              r"real cube root (defined for negative x); derivative $1/(3\sqrt[3]{x}^2)$ (infinite at 0)",
              reads_output=True)


def _hypot_share(x: Any, ans: Any) -> Any:
    r"""$\partial\,\mathrm{hypot}(x, y)/\partial x = x/\mathrm{hypot}(x, y)$, taken as 0 where both are 0
    (a subgradient, as ``abs`` at 0; PyTorch gives NaN there)."""
    zero = _data(ans) == 0
    if not np.any(zero):
        return x / ans
    return where(zero, 0.0, x / where(zero, 1.0, ans))


def _hypot_tangent(t: Any, ans: Any, x: Any) -> Any:
    r"""$\dot h = (x/h)\,\dot x$, 0 at $h = 0$ (as the VJP)."""
    origin = _data(ans) == 0
    if not np.any(origin):
        return t * x / ans
    return where(origin, 0.0, t * x / where(origin, 1.0, ans))


hypot = Primitive("hypot", np.hypot, _ew_flops, r"$\sqrt{x^2+y^2}$ without overflow", reads_output=True).defvjp(
    lambda g, ans, x, y: g * _hypot_share(x, ans),
    lambda g, ans, x, y: g * _hypot_share(y, ans)).defjvp(
    lambda t, ans, x, y: _hypot_tangent(t, ans, x),
    lambda t, ans, x, y: _hypot_tangent(t, ans, y))
arctan2 = Primitive("arctan2", np.arctan2, _ew_flops,
                    r"$\operatorname{atan2}(y, x)$, the angle of $(x, y)$; "
                    r"$\partial_y = x/(x^2+y^2)$, $\partial_x = -y/(x^2+y^2)$").defvjp(
    lambda g, ans, y, x: g * x / (x * x + y * y),
    lambda g, ans, y, x: -(g * y) / (x * x + y * y)).defjvp(
    lambda t, ans, y, x: (x / (y * y + x * x)) * t,
    lambda t, ans, y, x: -(y / (y * y + x * x)) * t)
logaddexp = Primitive("logaddexp", np.logaddexp, _ew_flops,
                      r"$\log(e^x + e^y)$ without overflow; $\partial_x = \sigma(x - y)$").defvjp(
    lambda g, ans, x, y: g * sigmoid(x - y),
    lambda g, ans, x, y: g * sigmoid(y - x)).defjvp(
    lambda t, ans, x, y: sigmoid(x - y) * t,
    lambda t, ans, x, y: sigmoid(y - x) * t)


def _nan_split(x: Any, y: Any, larger: bool) -> np.ndarray:
    """Weight of x in fmax(x, y) (``larger``) or fmin(x, y): 1 where x wins or y is NaN, 1/2 on ties,
    0 where x loses or x alone is NaN. The weight of y is one minus it."""
    xd, yd = _data(x), _data(y)
    wins = xd > yd if larger else xd < yd
    return np.where(np.isnan(yd), 1.0, wins + 0.5 * (xd == yd))


fmax = Primitive("fmax", np.fmax, _ew_flops,
                 "elementwise max ignoring NaN (NumPy's fmax); the gradient goes to the non-NaN operand, "
                 "ties split it").defvjp(
    lambda g, ans, x, y: g * _nan_split(x, y, True),
    lambda g, ans, x, y: g * (1 - _nan_split(x, y, True))).defjvp(
    lambda t, ans, x, y: _nan_split(x, y, True) * t,
    lambda t, ans, x, y: (1 - _nan_split(x, y, True)) * t)
fmin = Primitive("fmin", np.fmin, _ew_flops,
                 "elementwise min ignoring NaN (NumPy's fmin); the gradient goes to the non-NaN operand, "
                 "ties split it").defvjp(
    lambda g, ans, x, y: g * _nan_split(x, y, False),
    lambda g, ans, x, y: g * (1 - _nan_split(x, y, False))).defjvp(
    lambda t, ans, x, y: _nan_split(x, y, False) * t,
    lambda t, ans, x, y: (1 - _nan_split(x, y, False)) * t)
remainder = Primitive("remainder", np.remainder, _ew_flops,
                      r"$x - y\lfloor x/y \rfloor$ (sign of the divisor, as NumPy and torch.remainder); "
                      r"$\partial_x = 1$, $\partial_y = -\lfloor x/y \rfloor$").defvjp(
    lambda g, ans, x, y: g,
    lambda g, ans, x, y: -g * np.floor_divide(_data(x), _data(y))).defjvp(
    lambda t, ans, x, y: t,
    lambda t, ans, x, y: -np.floor_divide(_data(x), _data(y)) * t)
mod = remainder


def _zero_cotangent(g: Any, ans: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    """Piecewise constant: the derivative is 0 almost everywhere (PyTorch's convention for floor, sign...)."""
    return np.zeros(np.shape(_data(x)), dtype=_data(g).dtype)


def _zero_tangent_rule(t: Any, ans: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    return np.zeros(np.shape(_data(ans)), dtype=_data(t).dtype)


def _step(name: str, fn: Any, doc: str) -> Primitive:
    """A piecewise-constant op: on the tape like any other, with zero derivatives (as in PyTorch)."""
    return Primitive(name, fn, _ew_flops, doc, reads_inputs=False).defvjp(_zero_cotangent).defjvp(_zero_tangent_rule)


sign = _step("sign", np.sign, "sign of x (-1, 0, 1; NaN stays NaN); zero gradient")
floor = _step("floor", np.floor, r"$\lfloor x \rfloor$; zero gradient")
ceil = _step("ceil", np.ceil, r"$\lceil x \rceil$; zero gradient")
round = _step("round", lambda x, decimals=0: np.round(x, decimals),
              "round half to even (NumPy's round, with ``decimals``); zero gradient")


def _finite(x: Any) -> np.ndarray:
    return np.isfinite(_data(x))


nan_to_num = Primitive("nan_to_num", lambda x, nan=0.0, posinf=None, neginf=None:
                       np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf), _ew_flops,
                       "NaN and infinities replaced by finite numbers (NumPy's defaults); the gradient passes "
                       "where x is finite and is 0 where a value was replaced (as PyTorch)").defvjp(
    lambda g, ans, x, nan=0.0, posinf=None, neginf=None: g * _finite(x)).defjvp(
    lambda t, ans, x, nan=0.0, posinf=None, neginf=None: where(_finite(x), t, 0.0))


_where = Primitive("where", np.where, _ew_flops, "cond ? x : y", reads_inputs=False, linear=(1, 2)).defvjp(
    None,
    lambda g, ans, c, x, y: where(c, g, 0.0),
    lambda g, ans, c, x, y: where(c, 0.0, g))


def _clip_inside(x: Any, a_min: Any, a_max: Any) -> np.ndarray:
    """Where the gradient of clip passes: a_min <= x <= a_max (both ends included, as PyTorch)."""
    xd = _data(x)
    inside = np.ones(xd.shape, dtype=bool)
    if a_min is not None:  # not in place: array bounds may broadcast x to a larger shape
        inside = inside & (xd >= a_min)
    if a_max is not None:
        inside = inside & (xd <= a_max)
    return inside


_clip = Primitive("clip", lambda x, a_min=None, a_max=None: np.clip(x, a_min, a_max), _ew_flops,
                  "clamp to [a_min, a_max] (gradient passes where a_min <= x <= a_max)").defvjp(
    lambda g, ans, x, a_min=None, a_max=None: g * _clip_inside(x, a_min, a_max)).defjvp(
    lambda t, ans, x, a_min=None, a_max=None: where(_clip_inside(x, a_min, a_max), t, 0.0))


def _astype_forward(x: Any, dtype: Any) -> Any:
    return np.asarray(x).astype(dtype, copy=False)


_astype = Primitive("astype", _astype_forward, None, "cast to another floating dtype", reads_inputs=False,
                    linear=(0,)).defvjp(
    lambda g, ans, x, dtype: astype(g, _data(x).dtype))


def astype(x: Any, dtype: Any) -> Any:
    """Cast to ``dtype``. A cast to a floating dtype is differentiable; a cast to an integer or
    boolean dtype gives a constant (its derivative is zero almost everywhere), as in PyTorch."""
    if np.dtype(dtype).kind == "f":
        return _astype(x, dtype)
    cast = np.asarray(_data(x)).astype(dtype)
    return Tensor._wrap(cast) if isinstance(x, Tensor) else cast


# ----- matrix product --------------------------------------------------------------------------
def _matmul_flops(out: Any, a: Any, b: Any) -> int:
    k = np.shape(a)[-1]
    return 2 * int(np.size(out)) * int(k)


def _matmul_vjp_a(g: Any, ans: Any, a: Any, b: Any) -> Any:
    r"""$C = AB \Rightarrow \bar A = \bar C B^\top$ (1-D operands promoted as NumPy does)."""
    if b.ndim == 1:
        if a.ndim == 1:
            return g * b
        return unsqueeze(g, -1) * b                   # (..., m, 1) * (k,)
    if a.ndim == 1:
        return squeeze(matmul(b, unsqueeze(g, -1)), -1)  # (..., k, n) @ (..., n, 1)
    return matmul(g, swapaxes(b, -1, -2))


def _matmul_vjp_b(g: Any, ans: Any, a: Any, b: Any) -> Any:
    r"""$C = AB \Rightarrow \bar B = A^\top \bar C$."""
    if a.ndim == 1:
        if b.ndim == 1:
            return g * a
        return unsqueeze(a, -1) * unsqueeze(g, -2)    # (k, 1) * (..., 1, n)
    if b.ndim == 1:
        return squeeze(matmul(swapaxes(a, -1, -2), unsqueeze(g, -1)), -1)
    return matmul(swapaxes(a, -1, -2), g)


matmul = Primitive("matmul", np.matmul, _matmul_flops, "matrix product, batched over leading axes").defvjp(
    _matmul_vjp_a, _matmul_vjp_b).defjvp(
    # bilinear: the product rule, with NumPy's own promotion of 1-D operands
    lambda t, ans, a, b: matmul(t, b),
    lambda t, ans, a, b: matmul(a, t))


# ----- reductions --------------------------------------------------------------------------------
def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    try:
        return tuple(sorted(int(a) % ndim if ndim else 0 for a in axis))
    except ZeroDivisionError:
        return ()


def _keepdims_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    axes = _axes(axis, len(shape))
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _expand_to(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """Broadcast a reduced cotangent back over the reduced axes of x."""
    if not keepdims:
        g = reshape(g, _keepdims_shape(x.shape, axis))
    return broadcast_to(g, x.shape)


def _keep(v: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """A reduced value reshaped so that it broadcasts against x."""
    return v if keepdims else reshape(v, _keepdims_shape(x.shape, axis))


sum = Primitive("sum", lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
                _reduce_flops, "sum over axes", reads_inputs=False, linear=(0,)).defvjp(
    lambda g, ans, x, axis=None, keepdims=False: _expand_to(g, x, axis, keepdims))


def _extremum_share(x: Any, ans: Any, axis: Any, keepdims: bool) -> np.ndarray:
    """Weights of the positions that attain the max/min: equal shares of 1 (PyTorch amax's convention)."""
    xd = _data(x)
    hit = xd == _keep(_data(ans), xd, axis, keepdims)
    return hit / np.sum(hit, axis=_axes(axis, xd.ndim), keepdims=True)


def _extremum_vjp(g: Any, ans: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Gradient of max/min: shared equally among the positions that attain it."""
    return _keep(g, _data(x), axis, keepdims) * _extremum_share(x, ans, axis, keepdims)


def _extremum_jvp(t: Any, ans: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Tangent of max/min: the mean of the tangents at the positions that attain it."""
    return sum(t * _extremum_share(x, ans, axis, keepdims), axis=axis, keepdims=keepdims)


max = Primitive("max", lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
                _reduce_flops, "maximum over axes (ties share the gradient)", reads_output=True).defvjp(
    _extremum_vjp).defjvp(_extremum_jvp)
min = Primitive("min", lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims),
                _reduce_flops, "minimum over axes (ties share the gradient)", reads_output=True).defvjp(
    _extremum_vjp).defjvp(_extremum_jvp)


def _prod_vjp(g: Any, ans: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    r"""$\partial \prod_j x_j / \partial x_i = \prod_{j \ne i} x_j$.

    Without zeros this is ans/x (differentiable again); with zeros the products of the
    others are formed with exclusive cumulative products, or, when the rule is itself
    recorded (create_graph), as prods of x with x_i replaced by 1 (differentiable again).
    """
    xd = _data(x)
    if np.all(xd != 0):
        return _keep(g, xd, axis, keepdims) * _keep(ans, xd, axis, keepdims) / x
    axes = _axes(axis, xd.ndim)
    if isinstance(x, Tensor):
        rest = [a for a in range(xd.ndim) if a not in axes]
        perm = (*rest, *axes)
        moved_t = transpose(x, perm)
        lead, red = moved_t.shape[:len(rest)], moved_t.shape[len(rest):]
        n = int(np.prod(red, dtype=np.int64))
        rows = where(np.eye(n, dtype=bool), 1.0, unsqueeze(reshape(moved_t, (*lead, n)), -2))  # (..., n, n)
        others_t = transpose(reshape(prod(rows, axis=-1), moved_t.shape), _inverse_permutation(perm, xd.ndim))
        return _keep(g, xd, axis, keepdims) * others_t
    moved = np.moveaxis(xd, axes, tuple(range(-len(axes), 0)))
    flat = moved.reshape(moved.shape[:moved.ndim - len(axes)] + (-1,))
    left = np.cumprod(np.concatenate([np.ones_like(flat[..., :1]), flat[..., :-1]], -1), -1)
    right = np.cumprod(np.concatenate([np.ones_like(flat[..., :1]), flat[..., :0:-1]], -1), -1)[..., ::-1]
    others = np.moveaxis((left * right).reshape(moved.shape), tuple(range(-len(axes), 0)), axes)
    return _keep(g, xd, axis, keepdims) * others


def _prod_jvp(t: Any, ans: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    r"""$\dot p = p \sum_i \dot x_i / x_i$ without zeros (the logarithmic derivative); with zeros,
    $\sum_i \dot x_i \prod_{j\ne i} x_j$ through the products of the others."""
    if np.all(_data(x) != 0):
        return ans * sum(t / x, axis=axis, keepdims=keepdims)
    ones = np.ones(np.shape(_data(ans)), dtype=_data(x).dtype)
    others = _prod_vjp(ones, ans, x, axis, keepdims)  # the cotangent of ones is exactly prod_{j != i} x_j
    return sum(t * others, axis=axis, keepdims=keepdims)


prod = Primitive("prod", lambda x, axis=None, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims),
                 _reduce_flops, "product over axes", reads_output=True).defvjp(_prod_vjp).defjvp(_prod_jvp)


def _logsumexp_forward(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=_axes(axis, np.ndim(x)))


logsumexp = Primitive("logsumexp", _logsumexp_forward, lambda out, x, *a, **k: 3 * int(np.size(x)),
                      r"$\log\sum_i e^{x_i}$, shifted by the max for stability", reads_output=True).defvjp(
    lambda g, ans, x, axis=None, keepdims=False:
        _keep(g, x, axis, keepdims) * exp(x - _keep(ans, x, axis, keepdims))).defjvp(
    # the tangent is the softmax-weighted mean of the input tangents
    lambda t, ans, x, axis=None, keepdims=False: sum(exp(x - _keep(ans, x, axis, keepdims)) * t, axis=axis,
                                                     keepdims=keepdims))


def _softmax_forward(x: Any, axis: int = -1) -> Any:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


softmax = Primitive("softmax", _softmax_forward, lambda out, x, *a, **k: 4 * int(np.size(x)),
                    r"$\mathrm{softmax}(x)_i = e^{x_i}/\sum_j e^{x_j}$", reads_output=True).defvjp(
    # J = diag(p) - p p^T, so J^T g = p * (g - <g, p>)
    lambda g, ans, x, axis=-1: ans * (g - sum(g * ans, axis=axis, keepdims=True))).defjvp(
    # J t with J = diag(p) - p p^T
    lambda t, ans, x, axis=-1: ans * t - ans * sum(ans * t, axis=axis, keepdims=True))


def _log_softmax_forward(x: Any, axis: int = -1) -> Any:
    shifted = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


log_softmax = Primitive("log_softmax", _log_softmax_forward, lambda out, x, *a, **k: 4 * int(np.size(x)),
                        r"$x_i - \log\sum_j e^{x_j}$", reads_output=True).defvjp(
    lambda g, ans, x, axis=-1: g - exp(ans) * sum(g, axis=axis, keepdims=True)).defjvp(
    # J = I - 1 p^T: every output moves by its own tangent minus the p-weighted mean tangent
    lambda t, ans, x, axis=-1: t - sum(exp(ans) * t, axis=axis, keepdims=True))


identity = Primitive("identity", lambda x: x, None, "x itself, as a new node on the tape", reads_inputs=False,
                     linear=(0,)).defvjp(
    lambda g, ans, x: g)


# ----- shape and indexing (no flops) ---------------------------------------------------------------
reshape = Primitive("reshape", lambda x, shape: np.reshape(x, shape), None, "new shape, same data",
                    reads_inputs=False, linear=(0,)).defvjp(
    lambda g, ans, x, shape: reshape(g, x.shape))


def _inverse_permutation(axes: Any, ndim: int) -> Any:
    if axes is None:
        return None
    return tuple(np.argsort([a % ndim for a in axes]))


transpose = Primitive("transpose", lambda x, axes=None: np.transpose(x, axes), None,
                      "permute axes (reverse them by default)", reads_inputs=False, linear=(0,)).defvjp(
    lambda g, ans, x, axes=None: transpose(g, _inverse_permutation(axes, x.ndim)))
broadcast_to = Primitive("broadcast_to", lambda x, shape: np.broadcast_to(x, shape), None,
                         "broadcast to a shape (the engine sums the gradient back)", reads_inputs=False,
                         linear=(0,)).defvjp(
    lambda g, ans, x, shape: g)


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return builtins.all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)) for i in items)


def _scatter_add_forward(g: Any, shape: tuple[int, ...], index: Any) -> np.ndarray:
    out = np.zeros(shape, dtype=np.asarray(g).dtype)
    if _is_basic_index(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


scatter_add = Primitive("scatter_add", _scatter_add_forward, None,
                        "zeros(shape) with g added at index (duplicates accumulate)", reads_inputs=False,
                        linear=(0,)).defvjp(
    lambda gg, ans, g, shape, index: getitem(gg, index))
getitem = Primitive("getitem", lambda x, index: x[index], None,
                    "basic and advanced indexing (the gradient scatter-adds)", reads_inputs=False,
                    linear=(0,)).defvjp(
    lambda g, ans, x, index: scatter_add(g, x.shape, index))


def _concatenate_vjp(i: int, g: Any, ans: Any, *xs: Any, axis: int | None = 0) -> Any:
    if axis is None:  # NumPy flattens every input first
        start = builtins.sum(x.size for x in xs[:i])
        return reshape(getitem(g, slice(start, start + xs[i].size)), xs[i].shape)
    ax = axis % ans.ndim
    start = builtins.sum(x.shape[ax] for x in xs[:i])
    sl = (slice(None),) * ax + (slice(start, start + xs[i].shape[ax]),)
    return getitem(g, sl)


_concatenate = Primitive("concatenate", lambda *xs, axis=0: np.concatenate(xs, axis=axis), None,
                         "join along an existing axis", reads_inputs=False,
                         linear="all").defvjp_any(_concatenate_vjp)


def _pad_width(pad_width: Any, ndim: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(pad_width, dtype=int), (ndim, 2))


def _pad_vjp(g: Any, ans: Any, x: Any, pad_width: Any, constant_values: float = 0.0) -> Any:
    widths = _pad_width(pad_width, x.ndim)
    return getitem(g, tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, x.shape, strict=True)))


_pad = Primitive("pad", lambda x, pad_width, constant_values=0.0:
                 np.pad(x, _pad_width(pad_width, np.ndim(x)), constant_values=constant_values), None,
                 "constant padding", reads_inputs=False).defvjp(_pad_vjp).defjvp(
    # linear in x, but the padding constant is not part of the tangent: pad the tangent with zeros
    lambda t, ans, x, pad_width, constant_values=0.0: _pad(t, pad_width))
flip = Primitive("flip", lambda x, axis=None: np.flip(x, axis), None, "reverse along axes", reads_inputs=False,
            linear=(0,)).defvjp(
    lambda g, ans, x, axis=None: flip(g, axis))


def _negate_shift(shift: Any) -> Any:
    return tuple(-s for s in shift) if isinstance(shift, (tuple, list)) else -shift


roll = Primitive("roll", lambda x, shift, axis=None: np.roll(x, shift, axis), None,
                 "cyclic shift along axes", reads_inputs=False, linear=(0,)).defvjp(
    lambda g, ans, x, shift, axis=None: roll(g, _negate_shift(shift), axis))


def _cumsum_vjp(g: Any, ans: Any, x: Any, axis: int | None = None) -> Any:
    r"""$y_i = \sum_{j \le i} x_j \Rightarrow \bar x_j = \sum_{i \ge j} \bar y_i$: the cumulative sum of
    $\bar y$ taken from the end."""
    if axis is None:  # NumPy flattens first
        return reshape(flip(cumsum(flip(g, 0), 0), 0), x.shape)
    return flip(cumsum(flip(g, axis), axis), axis)


cumsum = Primitive("cumsum", lambda x, axis=None: np.cumsum(x, axis=axis), _ew_flops,
                   r"cumulative sum $y_i = \sum_{j \le i} x_j$ along an axis (flattened when axis is None)",
                   reads_inputs=False, linear=(0,)).defvjp(_cumsum_vjp)


def _cumprod_rows(x: Any, axis: int) -> tuple[Any, np.ndarray]:
    r"""x's axis moved last and spread into rows $R_{ij} = x_j$ for $j \le i$, 1 above the diagonal: row i's
    product is $y_i$ (the route through ``prod``'s rules when x holds zeros)."""
    xm = swapaxes(x, axis, -1)
    n = xm.shape[-1]
    tri = np.tri(n, dtype=bool)
    return where(tri, unsqueeze(xm, -2), np.ones((), dtype=_data(x).dtype)), tri


def _cumprod_vjp(g: Any, ans: Any, x: Any, axis: int) -> Any:
    r"""$\bar x_j = \sum_{i \ge j} \bar y_i\,y_i / x_j$ (a reversed cumulative sum) without zeros; with
    zeros, $\sum_{i \ge j} \bar y_i \prod_{k \le i, k \ne j} x_k$ through ``prod``'s exact rule (differentiable
    again, at $O(n^2)$ along the axis)."""
    if np.all(_data(x) != 0):
        return flip(cumsum(flip(g * ans, axis), axis), axis) / x
    rows, tri = _cumprod_rows(x, axis)
    rows_ct = _prod_vjp(swapaxes(g, axis, -1), swapaxes(ans, axis, -1), rows, axis=-1)
    return swapaxes(sum(where(tri, rows_ct, 0.0), axis=-2), axis, -1)


def _cumprod_jvp(t: Any, ans: Any, x: Any, axis: int) -> Any:
    r"""$\dot y_i = y_i \sum_{j \le i} \dot x_j / x_j$ without zeros; with zeros, each row's product rule
    (``prod``'s JVP on the rows of ``_cumprod_rows``)."""
    if np.all(_data(x) != 0):
        return ans * cumsum(t / x, axis)
    rows, tri = _cumprod_rows(x, axis)
    rows_t = where(tri, unsqueeze(swapaxes(t, axis, -1), -2), 0.0)
    return swapaxes(_prod_jvp(rows_t, swapaxes(ans, axis, -1), rows, axis=-1), axis, -1)


cumprod = Primitive("cumprod", lambda x, axis: np.cumprod(x, axis=axis), _ew_flops,
                    r"cumulative product $y_i = \prod_{j \le i} x_j$ along an axis", reads_output=True).defvjp(
    _cumprod_vjp).defjvp(_cumprod_jvp)


# ----- einsum --------------------------------------------------------------------------------------
def _parse_einsum(subscripts: str, ndims: Sequence[int]) -> tuple[list[str], str]:
    """Explicit per-operand index strings and output string, with '...' spelled out."""
    subscripts = subscripts.replace(" ", "")
    lhs, arrow, rhs = subscripts.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(ndims):
        raise ShapeError(f"einsum: '{subscripts}' names {len(ins)} operands but {len(ndims)} were given")
    used = set(subscripts) - set(".,->")
    spare = [c for c in string.ascii_letters if c not in used]
    ell = builtins.max([nd - len(s.replace("...", "")) for s, nd in zip(ins, ndims, strict=True)
                        if "..." in s] or [0])
    ell_letters = "".join(spare[:ell])
    ins = [s.replace("...", ell_letters[ell - (nd - len(s.replace("...", ""))):]) if "..." in s else s
           for s, nd in zip(ins, ndims, strict=True)]
    if arrow:
        out = rhs.replace("...", ell_letters)
    else:
        counts: dict[str, int] = {}
        for s in ins:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell_letters + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell_letters))
    return ins, out


def _einsum_forward(subscripts: str, *operands: Any) -> Any:
    big = builtins.sum(np.size(o) for o in operands) > 4096
    return np.einsum(subscripts, *operands, optimize=big or len(operands) > 2)


def _einsum_flops(out: Any, subscripts: str, *operands: Any) -> int:
    ins, _ = _parse_einsum(subscripts, [np.ndim(o) for o in operands])
    sizes: dict[str, int] = {}
    for s, o in zip(ins, operands, strict=True):
        sizes.update({c: builtins.max(sizes.get(c, 1), d) for c, d in zip(s, np.shape(o), strict=True)})
    return 2 * int(np.prod(list(sizes.values()), dtype=np.float64))


def _einsum_vjp(i: int, g: Any, ans: Any, subscripts: str, *operands: Any) -> Any:
    if i == 0:
        raise DlmathError("einsum: the subscripts string is not differentiable")
    k = i - 1
    ins, out = _parse_einsum(subscripts, [o.ndim for o in operands])
    target = ins[k]
    if len(set(target)) != len(target):
        raise DlmathError(f"einsum: gradient through a repeated index in one operand ('{target}', a "
                          f"diagonal) is not supported; take the diagonal with indexing instead")
    others = [ins[j] for j in range(len(ins)) if j != k]
    available = set(out).union(*others)
    kept = "".join(c for c in target if c in available)
    expr = ",".join([out, *others]) + "->" + kept
    r = einsum(expr, g, *[operands[j] for j in range(len(operands)) if j != k])
    if kept != target:  # indices summed only inside operand k: its gradient is constant along them
        shape = operands[k].shape
        # kept letters take r's sizes (larger than operand k's where its ellipsis broadcasts; the engine sums back)
        sizes = dict(zip(kept, r.shape, strict=True))
        r = broadcast_to(reshape(r, tuple(sizes.get(c, 1) for c in target)),
                         tuple(sizes.get(c, n) for c, n in zip(target, shape, strict=True)))
    shape = operands[k].shape
    if r.shape != shape:  # operand k had size 1 where another operand broadcast it: expand, the engine sums
        full = np.broadcast_shapes(r.shape, shape)
        if full != r.shape:
            r = broadcast_to(r, full)
    return r


def _einsum_jvp(i: int, t: Any, ans: Any, subscripts: str, *operands: Any) -> Any:
    """Multilinear: the tangent of operand k is contracted with the other operands as they are."""
    k = i - 1
    return einsum(subscripts, *operands[:k], t, *operands[k + 1:])


_einsum = Primitive("einsum", _einsum_forward, _einsum_flops, "Einstein summation").defvjp_any(
    _einsum_vjp).defjvp_any(_einsum_jvp)


def einsum(subscripts: str, *operands: Any) -> Any:
    """Einstein summation, as ``numpy.einsum`` (differentiable in every operand)."""
    return _einsum(subscripts, *operands)


# ----- composites and NumPy-style wrappers ------------------------------------------------------------
def where(condition: Any, x: Any, y: Any) -> Any:
    """Elementwise ``x if condition else y`` (the condition is not differentiated)."""
    return _where(_data(condition), x, y)


def clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    """Clamp to ``[a_min, a_max]`` (bounds are constants)."""
    return _clip(x, _data(a_min), _data(a_max))


def concatenate(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join a sequence of arrays along an existing axis."""
    return _concatenate(*arrays, axis=axis)


def _check_axis(axis: Any, ndim: int, op: str) -> int:
    """``axis`` as a non-negative int, or a ShapeError naming the op and the valid range."""
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ShapeError(f"{op}: axis {axis!r} is out of range for {ndim} dimensions "
                         f"(expected an int in [{-ndim}, {ndim - 1}])")
    return int(axis) % ndim


def unsqueeze(x: Any, axis: int) -> Any:
    """Insert a new axis of size 1 at ``axis`` (PyTorch's name for ``expand_dims``)."""
    shape = list(np.shape(x))
    ax = _check_axis(axis, len(shape) + 1, "unsqueeze")
    return reshape(x, tuple(shape[:ax] + [1] + shape[ax:]))


expand_dims = unsqueeze


def squeeze(x: Any, axis: Any = None) -> Any:
    """Remove axes of size 1 (all of them, or those named)."""
    shape = np.shape(x)
    if axis is None:
        drop = {i for i, s in enumerate(shape) if s == 1}
    else:
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        drop = {_check_axis(a, len(shape), "squeeze") for a in axes}
        bad = [a for a in drop if shape[a] != 1]
        if bad:
            raise ShapeError(f"squeeze: axis {bad[0]} of a tensor of shape {shape} has size {shape[bad[0]]}, not 1")
    return reshape(x, tuple(s for i, s in enumerate(shape) if i not in drop))


def _array_dtypes(obj: Any) -> list[np.dtype]:
    if isinstance(obj, (list, tuple)):
        return [d for o in obj for d in _array_dtypes(o)]
    return [np.asarray(_data(obj)).dtype] if isinstance(obj, (Tensor, np.ndarray, np.generic)) else []


def _nested(obj: Any, number_dtype: Any) -> Any:
    """Nested lists stacked, Python numbers as arrays of ``number_dtype`` (the arrays' own dtype)."""
    if isinstance(obj, (list, tuple)):
        return stack([_nested(o, number_dtype) for o in obj])
    if isinstance(obj, (Tensor, np.ndarray)) or number_dtype is None:
        return obj
    return np.asarray(obj, dtype=number_dtype)


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays of one shape along a new axis. Items may mix Tensors, arrays and Python numbers, and may
    be nested lists of them (stacked first, as ``np.array`` would read them); Python numbers take the arrays'
    floating dtype (float32 stays float32), as JAX's weakly typed scalars do."""
    items = list(arrays)
    if not builtins.all(isinstance(a, (Tensor, np.ndarray)) for a in items):
        dtypes = _array_dtypes(items)
        common = np.result_type(*dtypes) if dtypes else None
        items = [_nested(a, common if common is not None and common.kind == "f" else None) for a in items]
    return concatenate([unsqueeze(a, axis) for a in items], axis=axis)


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    """Split into pieces along ``axis`` (NumPy's ``split`` semantics)."""
    n = np.shape(x)[_check_axis(axis, np.ndim(x), "split")]
    if isinstance(indices_or_sections, (int, np.integer)):
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise ShapeError(f"split: axis {axis} of size {n} does not divide into {indices_or_sections} equal parts")
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0, *indices_or_sections, n]
    ax = axis % np.ndim(x)
    return [getitem(x, (slice(None),) * ax + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """Exchange two axes."""
    axes = list(range(np.ndim(x)))
    a1, a2 = _check_axis(axis1, len(axes), "swapaxes"), _check_axis(axis2, len(axes), "swapaxes")
    axes[a1], axes[a2] = axes[a2], axes[a1]
    return transpose(x, tuple(axes))


def permute(x: Any, axes: Sequence[int]) -> Any:
    """Reorder axes (PyTorch's name for ``transpose`` with an axis order)."""
    return transpose(x, tuple(axes))


def pad(x: Any, pad_width: Any, constant_values: float = 0.0) -> Any:
    """Constant padding with NumPy's ``pad_width`` convention."""
    return _pad(x, pad_width, constant_values=constant_values)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    r"""$\frac1n\sum_i x_i$ over the axes."""
    n = int(np.prod([np.shape(x)[a] for a in _axes(axis, np.ndim(x))]))
    return sum(x, axis=axis, keepdims=keepdims) / n


def var(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    r"""$\frac{1}{n-\mathrm{ddof}}\sum_i (x_i-\bar x)^2$ (NumPy's default ddof=0, the biased estimate)."""
    n = int(np.prod([np.shape(x)[a] for a in _axes(axis, np.ndim(x))]))
    centered = x - mean(x, axis=axis, keepdims=True)
    return sum(centered * centered, axis=axis, keepdims=keepdims) / (n - ddof)


def std(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    r"""Square root of ``var``; where the variance is 0 the gradient is taken as 0 (as PyTorch),
    not the NaN that $\partial\sqrt v/\partial v = \infty$ times 0 would give."""
    v = var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    positive = _data(v) > 0
    return where(positive, sqrt(where(positive, v, 1.0)), 0.0)


def gelu(x: Any, approximate: str = "none") -> Any:
    r"""Gaussian error linear unit, $x\,\Phi(x) = \tfrac x2(1+\mathrm{erf}(x/\sqrt2))$
    (Hendrycks & Gimpel 2016); ``approximate='tanh'`` gives
    $\tfrac x2(1+\tanh(\sqrt{2/\pi}(x+0.044715x^3)))$ as PyTorch."""
    if approximate == "tanh":
        return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


def take(x: Any, index: Any) -> Any:
    """``x[index]`` as a function (index may hold Tensors)."""
    return getitem(x, index_of(index))


def primitives() -> dict[str, Primitive]:
    """Every primitive of the table, by name."""
    return {p.name: p for p in globals().values() if isinstance(p, Primitive)}


def primitives_without_jvp() -> list[str]:
    """Names of the primitives that forward mode cannot push a tangent through (target: none)."""
    return sorted(name for name, p in primitives().items() if not p.has_jvp)
