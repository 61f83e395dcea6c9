"""Measurements of the solvers themselves rather than of trained accuracies (the bench,
meta-gradient fidelity, memory and time scaling, the sensitivity study's configurations).

``fidelity``: how close each solver's meta-gradient is to the exact unrolled MAML one.
``scaling``: memory and time of one meta-step as the number of inner steps grows.
``measure``: how both ``scaling`` and ``bench`` time a meta-step and read its memory.

Each returns a pyarrow table (stored by ``raybench.results``, shown by
``raybench.report.measurements``, which draws the bench, A/B and study tables too: nothing
here imports the report); the CLI wires them up. Nothing is imported here, so that
``python -m raybench.measurements.measure`` (a fresh process per CPU measurement) stays light.
"""
