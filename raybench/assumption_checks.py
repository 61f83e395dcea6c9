"""Whether an implicit solver's assumptions held, judged from the measurements training
stored (``raybench.assumptions`` measures them): the checks, their tolerances, and the
report's verdict per row. Plain numbers in, text out: no torch, so a report reads it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from raybench.solver_catalog import solver_assumptions

STATIONARITY_TOL = 0.1  # ||grad F(phi)|| at most this fraction of ||grad F(theta)||
SOLVE_TOL = 0.1  # ||A g - b|| at most this fraction of ||b||

# What must hold, per check (docs/solvers.md and the report's notes say the same).
CHECKS: dict[str, str] = {
    "stationary": f"inner problem solved: ||grad F(phi)|| <= {STATIONARITY_TOL:g} "
    "||grad F(theta)||",
    "convex": "I + H/lam positive definite: the proximal inner problem strongly convex",
    "contraction": "spectral radius of H/lam (= alpha H) below 1: the Neumann series converges",
    "solved": f"linear system solved: ||A g - b|| <= {SOLVE_TOL:g} ||b||",
}
# How a failed check reads in the report.
VIOLATIONS: dict[str, str] = {
    "stationary": "not stationary",
    "convex": "indefinite",
    "contraction": "series diverges",
    "solved": "inaccurate solve",
}

__all__ = [
    "CHECKS", "SOLVE_TOL", "STATIONARITY_TOL", "VIOLATIONS", "solver_assumptions", "verdict",
    "violations",
]  # fmt: skip


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _holds(check: str, row: Mapping[str, Any]) -> bool:
    """A check on one measured row; a missing or non-finite value does not hold."""
    key, ok = {
        "stationary": ("diag_stationarity", lambda v: v <= STATIONARITY_TOL),
        "convex": ("diag_convexity", lambda v: v > 0),
        "contraction": ("diag_spectral_radius", lambda v: v < 1),
        "solved": ("diag_solve_residual", lambda v: v <= SOLVE_TOL),
    }[check]
    value = _finite(row.get(key))
    return value is not None and ok(value)


def violations(row: Mapping[str, Any], checks: Sequence[str]) -> list[str] | None:
    """The checks that fail on one measured row (``[]``: all hold); None if the row has no
    measurements."""
    if not checks or not row.get("diag_tasks"):
        return None
    return [c for c in checks if not _holds(c, row)]


def verdict(solver: str | None, rows: Iterable[Mapping[str, Any]]) -> str | None:
    """The report's per-row summary over evaluation points: ``hold (n evaluations)`` or
    ``violated: indefinite 20/20, not stationary 20/20``; None without measurements."""
    checks = solver_assumptions(solver)
    measured = [v for row in rows if (v := violations(row, checks)) is not None]
    if not measured:
        return None
    n = len(measured)
    counts = Counter(name for failed in measured for name in failed)
    if not counts:
        return f"hold ({n} evaluation{'s' if n > 1 else ''})"
    return "violated: " + ", ".join(f"{VIOLATIONS[c]} {counts[c]}/{n}" for c in checks if counts[c])
