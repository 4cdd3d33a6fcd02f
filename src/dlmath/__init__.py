"""dlmath: the mathematics of deep learning, as code you can run and claims you can check.

``import dlmath as dm`` gives a NumPy-like differentiable namespace (``dm.tanh``,
``dm.einsum``...), the Tensor, JAX-style transforms (``dm.grad``, ``dm.jvp``...),
and the claim registry behind ``dlmath verify``.

The engine's names are loaded on first use (PEP 562), so that ``import dlmath.cli``
(the ``dlmath`` command) starts without importing NumPy or SciPy.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers and editors: the names the engine exports
    from .autodiff import *  # noqa: F403


def _engine() -> Any:
    return importlib.import_module(f"{__name__}.autodiff")


def _is_submodule(name: str) -> bool:
    here = os.path.dirname(__file__)
    return os.path.isfile(os.path.join(here, f"{name}.py")) or os.path.isdir(os.path.join(here, name))


def __getattr__(name: str) -> Any:
    if (name.startswith("__") and name != "__all__") or _is_submodule(name):
        # __path__, __file__... and `from dlmath import verify` (before it is imported): not the engine's
        raise AttributeError(f"module 'dlmath' has no attribute {name!r}")
    if name in ("save", "load"):  # safetensors state dicts (dlmath.serialization)
        value = getattr(importlib.import_module(f"{__name__}.serialization"), name)
        globals()[name] = value
        return value
    engine = _engine()
    if name == "__all__":
        return [*engine.__all__, "__version__"]
    if name in engine.__all__:
        value = getattr(engine, name)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    raise AttributeError(f"module 'dlmath' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_engine().__all__})
