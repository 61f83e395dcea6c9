"""How the report writes a value as text, in every table and format alike: a missing
value, a duration, an amount of memory, an accuracy with its interval, a fixed number of
decimals, a solver's label, and LaTeX's escaping."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from raybench.durations import duration_text
from raybench.report.views import MISSING

__all__ = [
    "MISSING",
    "acc_text",
    "fixed",
    "format_duration",
    "format_memory",
    "latex_escape",
    "solver_label",
]


def format_duration(seconds: float | None) -> str:
    """``42.0s``, ``3m 07s`` or ``2h 05m``."""
    return duration_text(seconds, second_digits=1)


def format_memory(mb: float | None) -> str:
    """``512 MiB`` or ``1.50 GiB``."""
    if mb is None:
        return MISSING
    return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def fixed(value: float | None, digits: int, missing: str = MISSING) -> str:
    return missing if value is None else f"{value:.{digits}f}"


def acc_text(acc: float | None, ci: float | None) -> str:
    """``81.20 ± 1.40``, ``81.20`` without an interval."""
    if acc is None:
        return MISSING
    return f"{acc:.2f}" if ci is None else f"{acc:.2f} ± {ci:.2f}"


def solver_label(record: Mapping[str, Any]) -> str:
    """``maml``, or ``maml (tuned)``: a configuration's source unless a preset."""
    source = record.get("source")
    return str(record["solver"]) + (f" ({source})" if source not in (None, "preset") else "")


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
    "|": r"$|$",
    "±": r"$\pm$",
    "—": "---",
    "–": "--",
    "Δ": r"$\Delta$",
    "★": r"$\star$",
    "≠": r"$\neq$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "×": r"$\times$",
    "²": r"\textsuperscript{2}",
    "‖": r"$\|$",
    "λ": r"$\lambda$",
    "α": r"$\alpha$",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIALS))


def latex_escape(text: str) -> str:
    """Text as LaTeX typesets it literally: its special characters escaped, the few
    symbols the report uses (± Δ ★ ≠ ...) as math, in one pass (no double escaping)."""
    return _LATEX_PATTERN.sub(lambda m: _LATEX_SPECIALS[m.group(0)], text)
