"""Published accuracies to set raybench's results beside, each with its source and protocol.

A reference applies to a row of the report by the protocol the runs actually used (solver,
ways, shots and, for the report's Table 2, the ``paper`` preset), never by a preset's name
alone. Each reference lists the settings its source used that raybench can express; a row
whose settings all match is "same protocol", otherwise "protocol differs" with the
differences named: such a reference is context, not a target.

Comparison (``verdict``): raybench's interval ``mean ± half`` against the reference's
``value ± pm`` (``pm`` = 0 for a value published without one, as in the report's Table 2):
"within" when the two intervals overlap, "above" when raybench's whole interval lies above
the reference's, "below" when it lies below. A verdict is given only where it can mean
something (``match_verdict``): the protocol is the same and raybench's 95% interval is
informative, at most ``MAX_HALF_WIDTH`` accuracy points either side; otherwise it says
"not comparable" and why. (A two-seed interval can be wider than 0-100%: it overlaps
everything and says nothing.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from raybench.config import neutral_value

# The report's Table 1 (the `paper` preset), under which its Table 2 was measured.
TABLE1 = {
    "inner_lr": 0.01,
    "outer_lr": 0.001,
    "inner_steps": 5,
    "meta_batch": 16,
    "meta_steps": 2000,
    "activation": "relu",
}

# The MAML paper's Omniglot protocol (Finn et al., 2017, section 5.2 and its code): 5-way
# trained with one inner step of 0.4 and evaluated with three, meta-batch 32; 20-way trained
# and evaluated with five steps of 0.1, meta-batch 16; K query images per class; Adam 0.001;
# 60,000 meta-steps.
MAML_PROTOCOL = {
    5: {"inner_lr": 0.4, "inner_steps": 1, "eval_inner_steps": 3, "meta_batch": 32},
    20: {"inner_lr": 0.1, "inner_steps": 5, "eval_inner_steps": 5, "meta_batch": 16},
}
MAML_COMMON = {"outer_lr": 0.001, "meta_steps": 60000, "activation": "relu"}

TABLE2 = "report Table 2 (bilevel-solvers-report.md)"
FINN = "Finn et al. 2017, MAML (ICML), Table 1"
NICHOL = "Nichol et al. 2018, Reptile (arXiv:1803.02999), Omniglot table"
RAJESWARAN = "Rajeswaran et al. 2019, iMAML (NeurIPS), Table 2"


@dataclass(frozen=True)
class Reference:
    """One published accuracy (in %) of one solver at one N-way K-shot setting."""

    solver: str
    ways: int
    shots: int
    value: float
    pm: float | None  # the published ± (None: published without one)
    source: str
    method: str  # the method's name in the source
    presets: tuple[str, ...] | None = None  # applies only to runs of these presets
    protocol: Mapping[str, Any] = field(default_factory=dict)  # settings the source used
    differs: str | None = None  # what the source did that raybench cannot (always differs)
    short: str = ""  # a label for narrow tables: T2, MAML'17, ...


@dataclass(frozen=True)
class Match:
    """A reference that applies to a row, and how the row's protocol compares with it."""

    reference: Reference
    differences: tuple[str, ...]

    @property
    def same_protocol(self) -> bool:
        return not self.differences

    @property
    def protocol_text(self) -> str:
        if self.same_protocol:
            return "same protocol"
        return "protocol differs: " + "; ".join(self.differences)


def _table2(solver: str, method: str, value: float, **extra: Any) -> Reference:
    protocol = {**TABLE1, **extra}
    return Reference(solver, 5, 1, value, None, TABLE2, method, ("paper",), protocol, short="T2")


def _maml_paper(solver: str, method: str, ways: int, shots: int, value: float, pm: float):
    protocol = {"query": shots, **MAML_PROTOCOL[ways], **MAML_COMMON}
    return Reference(solver, ways, shots, value, pm, FINN, method, None, protocol, short="MAML'17")


_REPTILE_DIFFERS = "the Reptile paper's own inner loop (Adam) and schedule"
_IMAML_HF_DIFFERS = "Hessian-free (Newton-CG, line search) inner solver; raybench's is SGD"
_GRID = ((5, 1), (5, 5), (20, 1), (20, 5))


def _references() -> tuple[Reference, ...]:
    refs = [
        # The report's Table 2 ("final accuracy", 5-way 1-shot, Table 1's settings).
        _table2("finetune-head", "Fine-tuning (Head Only)", 34.8),
        _table2("reptile", "Reptile (tuned)", 68.5),
        _table2("fomaml", "FOMAML", 74.8),
        _table2("neumann", "Neumann (k=3)", 75.2, neumann_terms=3),
        _table2("imaml", "iMAML (CG)", 78.1),
        _table2("penalty", "Penalty Method", 82.5),
        _table2("maml", "MAML", 82.7),
    ]
    maml = ((98.7, 0.4), (99.9, 0.1), (95.8, 0.3), (98.9, 0.2))
    fomaml = ((98.3, 0.5), (99.2, 0.2), (89.4, 0.5), (97.9, 0.1))
    reptile = ((97.68, 0.04), (99.48, 0.06), (89.43, 0.14), (97.12, 0.32))
    imaml_gd = ((99.16, 0.35), (99.67, 0.12), (94.46, 0.42), (98.69, 0.1))
    imaml_hf = ((99.50, 0.26), (99.74, 0.11), (96.18, 0.36), (99.14, 0.1))
    for (ways, shots), m, f, r, g, h in zip(_GRID, maml, fomaml, reptile, imaml_gd, imaml_hf):
        refs.append(_maml_paper("maml", "MAML", ways, shots, *m))
        refs.append(_maml_paper("fomaml", "MAML, first-order approx.", ways, shots, *f))
        refs.append(
            Reference(
                "reptile", ways, shots, *r, NICHOL, "Reptile + Transduction",
                differs=_REPTILE_DIFFERS, short="Reptile'18",
            )
        )  # fmt: skip
        # iMAML with gradient descent: 16 (5-way) / 25 (20-way) inner steps, lambda 2,
        # 5 CG steps for the meta-gradient (the table's caption).
        gd = {
            "inner_steps": 16 if ways == 5 else 25,
            "imaml_lam": 2.0,
            "imaml_cg_steps": 5,
            "activation": "relu",
        }
        refs.append(
            Reference(
                "imaml", ways, shots, *g, RAJESWARAN, "iMAML, GD", protocol=gd,
                short="iMAML'19 GD",
            )
        )  # fmt: skip
        refs.append(
            Reference(
                "imaml", ways, shots, *h, RAJESWARAN, "iMAML, Hessian-Free",
                protocol={"imaml_lam": 2.0, "imaml_cg_steps": 5}, differs=_IMAML_HF_DIFFERS,
                short="iMAML'19 HF",
            )
        )  # fmt: skip
    return tuple(refs)


REFERENCES: tuple[Reference, ...] = _references()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _recorded(row: Mapping[str, Any], key: str) -> Any:
    """A row's setting; a run stored before the setting existed ran at its neutral value."""
    actual = row.get(key)
    return neutral_value(key, row.get("solver")) if actual is None else actual


def _differences(ref: Reference, row: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    for key, expected in ref.protocol.items():
        actual = _recorded(row, key)
        if actual is None:
            out.append(f"{key} not recorded (ref {_show(expected)})")
        elif not _same(actual, expected):
            out.append(f"{key} {_show(actual)} (ref {_show(expected)})")
    if ref.differs:
        out.append(ref.differs)
    return tuple(out)


def references_for(row: Mapping[str, Any]) -> list[Match]:
    """The references that apply to a row (its ``solver``, ``ways``, ``shots``, ``preset``
    and settings, as in the ``runs`` table), the closest first: same protocol before
    differing ones, then the report's Table 2, then the literature in a fixed order. A row
    without its ways or shots recorded gets none: the protocol is unknown."""
    solver, ways, shots = row.get("solver"), row.get("ways"), row.get("shots")
    if solver is None or ways is None or shots is None:
        return []
    matches = [
        (i, Match(ref, _differences(ref, row)))
        for i, ref in enumerate(REFERENCES)
        if ref.solver == solver
        and ref.ways == ways
        and ref.shots == shots
        and (ref.presets is None or row.get("preset") in ref.presets)
    ]
    return [m for _, m in sorted(matches, key=lambda im: (not im[1].same_protocol, im[0]))]


def verdict(mean: float | None, half: float | None, value: float, pm: float | None) -> str | None:
    """``within``, ``above`` or ``below`` (see the module docstring); ``None`` without a
    raybench accuracy. Values in the same units (accuracy points)."""
    if mean is None:
        return None
    half, pm = half or 0.0, pm or 0.0
    eps = 1e-9  # intervals that touch overlap, whatever the float rounding
    if mean - half > value + pm + eps:
        return "above"
    if mean + half < value - pm - eps:
        return "below"
    return "within"


# The widest raybench interval (half-width, accuracy points) for which a verdict against a
# published number is given: beyond it, "within" would be true of almost any result.
MAX_HALF_WIDTH = 5.0


def match_verdict(match: Match, mean: float | None, half: float | None) -> str | None:
    """``verdict`` where the comparison is meaningful, else ``not comparable: <why>``;
    ``None`` without a raybench accuracy."""
    if mean is None:
        return None
    if not match.same_protocol:
        return "not comparable: protocol differs"
    if half is None:
        return "not comparable: no interval"
    if half > MAX_HALF_WIDTH:
        return f"not comparable: interval ±{half:.1f} wider than ±{MAX_HALF_WIDTH:g}"
    ref = match.reference
    return verdict(mean, half, ref.value, ref.pm)


def describe(match: Match) -> str:
    """One line: value ± pm, method and source, and the protocol note."""
    ref = match.reference
    value = f"{ref.value:g}" + (f" ± {ref.pm:g}" if ref.pm is not None else "")
    return f"{value} ({ref.method}; {ref.source}; {match.protocol_text})"
