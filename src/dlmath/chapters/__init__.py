"""One module per chapter of the module "Deep Learning Mathematics": its claims and experiments.

Each chapter module registers its claims with `dlmath.verify.claim` when imported;
`load_all` (chapter discovery) imports them all. The registry itself never imports a
chapter: imports point from the chapters to the registry, and from the CLI to both.
"""

from __future__ import annotations

import importlib
import pkgutil

from .. import verify


def load_all() -> dict[str, verify.Claim]:
    """Import every chapter module (each registers its claims); the registry, id -> claim."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return verify.REGISTRY
