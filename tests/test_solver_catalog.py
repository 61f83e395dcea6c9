"""The solver catalog (``raybench/solver_catalog.json``) is the registry, read without
torch: the same solvers in the same order, families, assumptions and option bounds.

Write it again after changing a solver's declarations::

    python tests/test_solver_catalog.py --write
"""

from __future__ import annotations

import json
import sys

from raybench import solver_catalog
from raybench.solvers import SOLVERS
from raybench.solvers._implicit import ImplicitSolver
from raybench.solvers.base import option_bounds

WRITE = "python tests/test_solver_catalog.py --write"


def test_the_catalog_is_the_registry() -> None:
    stored = json.loads(solver_catalog.CATALOG.read_text())["solvers"]
    assert stored == solver_catalog.describe(SOLVERS, ImplicitSolver), (
        f"a solver's declarations changed: run `{WRITE}` and commit the catalog"
    )
    assert list(stored) == list(SOLVERS)  # 'all' in the registry's order


def test_read_back_as_the_solvers_declare_them() -> None:
    assert solver_catalog.option_bounds() == option_bounds()  # every Bound, field by field
    assert solver_catalog.solver_names() == tuple(SOLVERS)
    for name, cls in SOLVERS.items():
        assert solver_catalog.family_of(name) == cls.family
        checks = tuple(cls.assumptions) if issubclass(cls, ImplicitSolver) else ()
        assert solver_catalog.solver_assumptions(name) == checks
    assert solver_catalog.solver_assumptions("imaml")  # implicit solvers rest on checks
    assert solver_catalog.family_of("gone") is None  # a name only an old store knows
    assert solver_catalog.solver_assumptions(None) == ()
    ranks = [solver_catalog.family_rank(f) for f in solver_catalog.FAMILIES]
    assert ranks == sorted(ranks) and solver_catalog.family_rank("new") == len(ranks)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    solver_catalog.CATALOG.write_text(solver_catalog.catalog_text(SOLVERS, ImplicitSolver))
    print(f"{solver_catalog.CATALOG}: {len(SOLVERS)} solvers")
