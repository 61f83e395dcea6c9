"""What every table of the report shares: which of a configuration's runs count, and the
marks printed for nothing and for a tie with the best."""

from __future__ import annotations

from collections.abc import Sequence

from raybench.durations import MISSING

__all__ = ["MISSING", "TIED_MARK", "completed_views"]

TIED_MARK = "★"  # not significantly worse than the best row of its setting


def completed_views(members: Sequence[tuple[dict, dict]]) -> list[dict]:
    """The runs of a configuration whose test result counts (completed, tested)."""
    return [v for _, v in members if v["status"] == "completed" and v["test_acc"] is not None]
