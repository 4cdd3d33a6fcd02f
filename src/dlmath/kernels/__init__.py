"""dlmath.kernels: architecture combinators giving a finite network and its infinite-width
NNGP/NTK kernels, empirical NTKs and training-dynamics predictions (chapter 2).

Chapters that need kernels import them from here. Guide: docs/kernels.md.
"""

from . import formulas, predict
from .empirical import empirical_nngp, empirical_ntk, empirical_ntk_generic, empirical_ntk_structured, monte_carlo
from .formulas import (
                       arccos_kernel_degree0,
                       arccos_kernel_degree1,
                       erf_kernel,
                       gauss_hermite_kernel,
                       gelu_kernel,
                       relu_kernel,
                       sin_kernel,
)
from .stax import (
                       ABRelu,
                       Abs,
                       AvgPool,
                       Conv,
                       Dense,
                       Dropout,
                       Elementwise,
                       Erf,
                       FanInConcat,
                       FanInSum,
                       FanOut,
                       Flatten,
                       Gelu,
                       GlobalAvgPool,
                       Identity,
                       Kernel,
                       Layer,
                       LayerNorm,
                       LeakyRelu,
                       NoAnalyticKernelError,
                       Relu,
                       Sigmoid,
                       Sin,
                       Softplus,
                       Tanh,
                       custom,
                       parallel,
                       residual,
                       serial,
)

__all__: list[str] = [
    "ABRelu", "Abs", "AvgPool", "Conv", "Dense", "Dropout", "Elementwise", "Erf", "FanInConcat", "FanInSum", "FanOut",
    "Flatten", "Gelu", "GlobalAvgPool", "Identity", "Kernel", "Layer", "LayerNorm", "LeakyRelu",
    "NoAnalyticKernelError", "Relu", "Sigmoid", "Sin", "Softplus", "Tanh",
    "arccos_kernel_degree0", "arccos_kernel_degree1", "custom", "empirical_nngp", "empirical_ntk",
    "empirical_ntk_generic", "empirical_ntk_structured", "erf_kernel", "formulas", "gauss_hermite_kernel",
    "gelu_kernel", "monte_carlo", "parallel", "predict", "relu_kernel", "residual", "serial", "sin_kernel",
]
