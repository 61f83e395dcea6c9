"""The measuring commands' defaults, read by each measurement, by the API and by the CLI's
help: written once, here, with nothing imported (the CLI reads them at start-up)."""

from __future__ import annotations

from typing import Any

# scaling: the inner-step counts measured, and untimed meta-steps before the timed ones
DEFAULT_INNER_STEPS = (1, 2, 5, 10, 20)
DEFAULT_WARMUP = 1

# fidelity: fixed validation tasks (one batch), and each solver's knob with the values the
# study turns it through; the other knobs keep their defaults (or --set values). Solvers
# not listed get one row with their options as they are.
DEFAULT_TASKS = 16
Sweep = tuple[str, tuple[Any, ...]]  # (knob, values)
DEFAULT_SWEEPS: dict[str, Sweep] = {
    "imaml": ("cg_steps", (1, 2, 5, 10, 20)),
    "neumann": ("terms", (0, 1, 2, 3, 5, 10)),
    "penalty": ("lam", (0.0, 0.01, 0.1, 1.0)),
}
