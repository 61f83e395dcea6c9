"""Figure kinds and ``plot_experiment``, which draws every kind an experiment has data for.

A figure kind is a function of a :class:`PlotContext` that yields :class:`Planned` figures
(what, file stem, how to build the ``Figure``), or raises :class:`NothingToPlot` when the
experiment lacks its data. Register one with ``@figure_kind("name")`` in any module of this
package (every module here is imported when plotting starts), or with
:func:`register_figure` from anywhere. The built-in kinds are ``runs``, ``assumptions``,
``scaling``, ``fidelity`` and ``sweeps``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyarrow as pa
from matplotlib.figure import Figure

from raybench.report.plots.groups import RunGroup, run_groups
from raybench.report.plots.style import NothingToPlot, Output, save
from raybench.results.store import ExperimentStore


@dataclass(frozen=True)
class Planned:
    """One figure a kind can draw: ``what`` names it in skip messages, ``stem`` is its file
    name without the extension, ``build`` draws it (or raises :class:`NothingToPlot`)."""

    what: str
    stem: str
    build: Callable[[], Figure]


class PlotContext:
    """What figure kinds read: the experiment's tables (each read once) and its runs
    grouped by configuration."""

    def __init__(self, store: ExperimentStore) -> None:
        self.store = store
        self.name = store.name
        self._tables: dict[str, pa.Table] = {}

    def table(self, name: str) -> pa.Table:
        if name not in self._tables:
            self._tables[name] = self.store.read(name)
        return self._tables[name]

    @cached_property
    def groups(self) -> list[RunGroup]:
        return run_groups(self.table("runs"), self.table("curves"))


FigureKind = Callable[[PlotContext], Iterable[Planned]]
_KINDS: dict[str, tuple[int, FigureKind]] = {}


def register_figure(name: str, kind: FigureKind, *, order: int = 100) -> FigureKind:
    """Add (or replace) a figure kind; kinds are drawn in ``order``, then by name."""
    _KINDS[name] = (order, kind)
    return kind


def figure_kind(name: str, *, order: int = 100) -> Callable[[FigureKind], FigureKind]:
    """Decorator form of :func:`register_figure`."""

    def decorate(kind: FigureKind) -> FigureKind:
        return register_figure(name, kind, order=order)

    return decorate


def figure_kinds() -> list[str]:
    """The registered kinds in drawing order (every module of this package imported)."""
    _discover()
    return [name for name, _ in sorted(_KINDS.items(), key=lambda item: (item[1][0], item[0]))]


def _discover() -> None:
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")


def plot_experiment(
    store: ExperimentStore,
    out_dir: Path,
    *,
    on_skip: Callable[[str], None] | None = None,
    output: Output | None = None,
    kinds: Iterable[str] | None = None,
) -> list[Path]:
    """Every figure whose data the experiment has, written to ``out_dir`` in ``output``'s
    format; ``on_skip`` hears why each other one is left out (no runs, no curves, no
    study tables...). ``kinds`` limits it to some registered kinds."""
    skip = on_skip or (lambda _reason: None)
    output = output or Output()
    ctx = PlotContext(store)
    wanted = figure_kinds() if kinds is None else list(kinds)
    written: list[Path] = []
    for name in wanted:
        if name not in _KINDS:
            raise KeyError(f"no figure kind {name!r}; registered: {', '.join(figure_kinds())}")
        try:
            planned = list(_KINDS[name][1](ctx))
        except NothingToPlot as exc:
            skip(f"{name}: {exc}")
            continue
        for figure in planned:
            try:
                fig = figure.build()
            except NothingToPlot as exc:
                skip(f"{figure.what}: {exc}")
                continue
            written.append(save(fig, Path(out_dir), figure.stem, output))
    return written
