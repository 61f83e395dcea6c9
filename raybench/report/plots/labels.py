"""Point labels that never overlap: each label tries positions around its point, nearest
first, and takes the first whose box is inside the axes and clear of every other label and
point; a label with no free place is left out (the legend names every point anyway).

A greedy version of what adjustText does, enough for the dozen points of a figure. Boxes are
measured with the figure's renderer after the layout is final, and the layout is then frozen,
so that what was measured is what gets saved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

# (dx, dy) directions tried around a point, nearest to "upper right" first.
_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
_DISTANCES = (6, 14, 26, 40, 60)  # points from the data point
_PAD_PX = 2.0


def freeze_layout(ax: Axes) -> Any:
    """Run the layout once and keep it (a later re-layout would move the axes under the
    placed labels); returns the renderer."""
    fig = ax.figure
    fig.canvas.draw()
    fig.set_layout_engine("none")
    return fig.canvas.get_renderer()


def place_labels(
    ax: Axes,
    points: Sequence[tuple[float, float]],
    texts: Sequence[str],
    *,
    colors: Sequence[Any] | None = None,
    marker_px: float = 6.0,
    fontsize: str = "small",
) -> list[Annotation | None]:
    """Annotate ``points`` (data coordinates) with ``texts`` without any two labels, or a
    label and a point, overlapping; None for a label that found no free place."""
    renderer = freeze_layout(ax)
    frame = ax.get_window_extent(renderer)
    scale = ax.figure.dpi / 72  # points -> pixels
    to_px = ax.transData.transform
    obstacles = []
    for x, y in points:
        px, py = to_px((x, y))
        r = marker_px * scale
        obstacles.append(Bbox.from_extents(px - r, py - r, px + r, py + r))
    placed: list[Annotation | None] = []
    for i, ((x, y), text) in enumerate(zip(points, texts)):
        color = colors[i] if colors is not None else "black"
        found = None
        for distance in _DISTANCES:
            for dx, dy in _DIRECTIONS:
                norm = math.hypot(dx, dy)
                offset = (distance * dx / norm, distance * dy / norm)
                label = ax.annotate(
                    text, (x, y), xytext=offset, textcoords="offset points",
                    ha="left" if dx > 0 else "right" if dx < 0 else "center",
                    va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                    fontsize=fontsize, color=color,
                    arrowprops=None if distance <= 14 else
                    {"arrowstyle": "-", "color": color, "linewidth": 0.6, "shrinkA": 0,
                     "shrinkB": 4},
                )  # fmt: skip
                label.set_in_layout(False)
                box = text_box(label, renderer).padded(_PAD_PX)
                inside = (
                    box.x0 >= frame.x0
                    and box.x1 <= frame.x1
                    and box.y0 >= frame.y0
                    and box.y1 <= frame.y1
                )
                if inside and not any(box.overlaps(o) for o in obstacles):
                    found = label
                    obstacles.append(box)
                    break
                label.remove()
            if found is not None:
                break
        placed.append(found)
    return placed


def text_box(label: Annotation, renderer: Any) -> Bbox:
    """The display box of an annotation's text alone (its leader line leaves the point)."""
    label.update_positions(renderer)
    return Text.get_window_extent(label, renderer)


def label_boxes(ax: Axes) -> list[Bbox]:
    """The display boxes of the texts of the annotations on ``ax``."""
    renderer = ax.figure.canvas.get_renderer()
    return [text_box(a, renderer) for a in ax.texts if isinstance(a, Annotation)]
