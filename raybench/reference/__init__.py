"""Plain per-task loops written like the report's listings: the correctness and speed
reference the vectorised solvers are checked and timed against."""

from raybench.reference.loop import LoopReference, loop_meta_grad

__all__ = ["LoopReference", "loop_meta_grad"]
