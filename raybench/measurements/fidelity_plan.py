"""What a fidelity study compares, decided before any tensor exists: the reference solver,
the meta-solvers, and ``--sweep`` read and checked (without torch: the API checks its
input before the study loads anything)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from raybench.errors import ParameterError
from raybench.measurements.defaults import Sweep

REFERENCE = "maml"  # exact second order: what every meta-gradient is compared with


def sweeps_text(sweeps: Mapping[str, Sweep]) -> str:
    """``imaml.cg_steps=1,2,5 neumann.terms=0,1``: sweeps as ``--sweep`` takes them."""
    return " ".join(
        f"{solver}.{knob}=" + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in vs)
        for solver, (knob, vs) in sweeps.items()
    )


def parse_sweep(spec: str) -> tuple[str, Sweep]:
    """``imaml.cg_steps=1,2,5`` -> ``("imaml", ("cg_steps", (1, 2, 5)))``; every value is
    checked against the knob's allowed range, so a typo fails before any computation."""
    from raybench.solver_catalog import option_bounds, solver_names

    key, sep, raw = spec.partition("=")
    solver, dot, knob = key.strip().partition(".")
    if not sep or not dot or not knob:
        raise ParameterError("{sweeps} expects SOLVER.KNOB=V1,V2,..., got {spec!r}", spec=spec)
    if solver not in solver_names():
        from raybench.solvers import solver_class

        solver_class(solver)  # its one-line error, with a guess at the name meant
    bounds = option_bounds()[solver]
    if knob not in bounds:
        allowed = ", ".join(sorted(bounds)) or "none"
        raise ParameterError(
            "unknown option {key!r} for solver {solver!r} (options: {allowed})",
            key=key,
            solver=solver,
            allowed=allowed,
        )
    values = tuple(bounds[knob].parse(key.strip(), v.strip()) for v in raw.split(",") if v.strip())
    if not values:
        raise ParameterError("{sweeps} {key} has no values", key=key.strip())
    return solver, (knob, tuple(dict.fromkeys(values)))


def meta_solvers(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(solvers that have a meta-gradient, baselines left out: they pre-train a classifier)."""
    from raybench.solver_catalog import family_of

    kept = [n for n in names if family_of(n) != "baseline"]
    return kept, [n for n in names if n not in kept]
