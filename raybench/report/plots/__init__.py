"""Figures of an experiment, drawn from its Parquet store alone (``raybench plot``).

``plot_experiment`` writes every figure whose data the experiment has (PNG, PDF or SVG, at a
chosen dpi) and says why it skips the others. The modules, one idea each:

- ``style``: size and format, one colour and marker per solver in every figure, axis rules;
- ``groups``: runs grouped by configuration, their curves as mean and range over seeds;
- ``labels``: point labels placed so that none overlaps another;
- ``runs``, ``assumptions``, ``measurements``, ``sweep``: the figures (each a function
  returning a ``Figure``);
- ``registry``: figure kinds and ``plot_experiment``.

A new figure kind is a function decorated with ``@figure_kind("name")`` in a new module of
this package (every module here is imported when plotting starts), or registered with
``register_figure`` from elsewhere; see ``registry``.
"""

from raybench.report.plots.groups import RunGroup, run_groups
from raybench.report.plots.registry import (
    Planned,
    PlotContext,
    figure_kind,
    figure_kinds,
    plot_experiment,
    register_figure,
)
from raybench.report.plots.style import (
    DPI,
    FORMATS,
    PIXELS,
    NothingToPlot,
    Output,
    solver_color,
)

__all__ = [
    "DPI",
    "FORMATS",
    "PIXELS",
    "NothingToPlot",
    "Output",
    "Planned",
    "PlotContext",
    "RunGroup",
    "figure_kind",
    "figure_kinds",
    "plot_experiment",
    "register_figure",
    "run_groups",
    "solver_color",
]
