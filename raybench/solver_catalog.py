"""The registered solvers as a reader of results needs them: names, families, the checks an
answer rests on, and each solver's options with their bounds, without importing a solver.

Each solver declares all of this in its own file (``raybench/solvers/<name>.py``), which
imports torch; a report or ``raybench.load`` must not pay for that. So the declarations are
also kept in ``solver_catalog.json`` beside this module, written from the registry by

    python tests/test_solver_catalog.py --write

and that test fails, naming this command, whenever the registry and the catalog differ: a
solver changed in its file is never read stale here. (This module never imports a solver:
the registry imports it.)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from raybench.config import Bound

CATALOG = Path(__file__).resolve().with_name("solver_catalog.json")

# In the order of the report's Table 2: baselines, then first-order up to exact second-order.
FAMILIES = ("baseline", "first-order", "implicit", "penalty", "second-order")

_KINDS: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


def family_rank(family: str | None) -> int:
    """Position in Table 2's order, for sorting reports (unknown families last)."""
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


@functools.lru_cache(maxsize=1)
def catalog() -> dict[str, dict[str, Any]]:
    """Solver name -> ``family``, ``assumptions`` and ``options`` (knob -> bound), in the
    registry's order."""
    return json.loads(CATALOG.read_text(encoding="utf-8"))["solvers"]


def solver_names() -> tuple[str, ...]:
    return tuple(catalog())


def family_of(solver: str | None) -> str | None:
    """A registered solver's family (None for a name this raybench does not know)."""
    entry = catalog().get(str(solver))
    return entry["family"] if entry else None


def solver_assumptions(solver: str | None) -> tuple[str, ...]:
    """The checks a registered solver's answer rests on (none for other solvers, or a name
    an old store knows and this raybench does not)."""
    entry = catalog().get(str(solver))
    return tuple(entry["assumptions"]) if entry else ()


def option_bounds() -> dict[str, dict[str, Bound]]:
    """Each solver's options (``SOLVER.KNOB`` settings) and their bounds."""
    return {
        name: {knob: _bound(spec) for knob, spec in entry["options"].items()}
        for name, entry in catalog().items()
    }


def _bound(spec: Mapping[str, Any]) -> Bound:
    choices = spec["choices"]
    return Bound(
        _KINDS[spec["kind"]],
        spec["low"],
        spec["high"],
        low_open=spec["low_open"],
        choices=None if choices is None else tuple(choices),
        optional=spec["optional"],
        help=spec["help"],
    )


def _spec(bound: Bound) -> dict[str, Any]:
    return {
        "kind": bound.kind.__name__,
        "low": bound.low,
        "high": bound.high,
        "low_open": bound.low_open,
        "choices": None if bound.choices is None else list(bound.choices),
        "optional": bound.optional,
        "help": bound.help,
    }


def describe(registry: Mapping[str, type], implicit: type) -> dict[str, dict[str, Any]]:
    """The catalog's entries for ``registry`` (``raybench.solvers.SOLVERS``; ``implicit``
    the base class of solvers whose answer rests on checks), as the file holds them."""
    from raybench.config import bounds_of

    return {
        name: {
            "family": cls.family,
            "assumptions": list(cls.assumptions if issubclass(cls, implicit) else ()),
            "options": {k: _spec(b) for k, b in bounds_of(cls.Options).items()},
        }
        for name, cls in registry.items()
    }


def catalog_text(registry: Mapping[str, type], implicit: type) -> str:
    """The catalog file's text for ``registry``."""
    return json.dumps({"solvers": describe(registry, implicit)}, indent=1) + "\n"
