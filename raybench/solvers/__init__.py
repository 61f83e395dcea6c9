"""Every module in this package that defines a solver registers it on import."""

from __future__ import annotations

import importlib
import pkgutil

from raybench.solvers.base import (
    FAMILIES,
    METRICS,
    SOLVERS,
    TRAIN_METRICS,
    Solver,
    make_config,
    make_solver,
    register,
    solver_class,
)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "FAMILIES",
    "METRICS",
    "SOLVERS",
    "TRAIN_METRICS",
    "Solver",
    "make_config",
    "make_solver",
    "register",
    "solver_class",
]
