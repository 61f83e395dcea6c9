"""Parquet results store: versioned schema, atomic per-run files, one-call reads."""

from raybench.results.schema import CURVES_SCHEMA, RUNS_SCHEMA, SCHEMA_VERSION
from raybench.results.store import ExperimentStore, load_checkpoint, open_experiment

__all__ = [
    "CURVES_SCHEMA",
    "RUNS_SCHEMA",
    "SCHEMA_VERSION",
    "ExperimentStore",
    "load_checkpoint",
    "open_experiment",
]
