"""raybench: bilevel-optimization solvers for meta-learning, benchmarked side by side.

The Python API (see :mod:`raybench.api`)::

    import raybench

    exp = raybench.run(["maml", "fomaml"], preset="smoke", backend="inline")
    exp.summary                                  # the report's table, a DataFrame
    raybench.load("paper").curves                # any stored experiment's tables
    raybench.compare("paper", "maml", "fomaml")  # the paired comparison

Importing the package is cheap: the API, pandas, torch, Ray and Optuna load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Experiment", "Figures", "__version__", "agreement", "compare", "load", "plot",
    "replication", "run", "summary",
]  # fmt: skip

if TYPE_CHECKING:
    from raybench.api import (
        Experiment,
        Figures,
        agreement,
        compare,
        load,
        plot,
        replication,
        run,
        summary,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from raybench import api

        return getattr(api, name)
    raise AttributeError(f"module 'raybench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
