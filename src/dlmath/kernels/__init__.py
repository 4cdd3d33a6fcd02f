"""dlmath.kernels: architecture combinators giving a finite network and its infinite-width
NNGP/NTK kernels, empirical NTKs and training-dynamics predictions (chapter 2).

Empty until the neural-tangent-kernel issue; chapters that need kernels import them from here.
"""

__all__: list[str] = []
