"""The Optuna study of a sweep, as Optuna's own tools should read it.

Ray Tune's ``OptunaSearch`` tells Optuna every trial that ended with a value as complete,
ASHA's early stops included, and keys intermediate values by Tune's report count. Here a
trial that ASHA stopped before its last meta-step is told ``PRUNED``, an errored one
``FAIL``, intermediate values are keyed by meta-step, and each Optuna trial names its Ray
Tune trial (user attribute ``tune_trial_id``, the ``trial_id`` of the trials table).
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)


class SweepSearch(OptunaSearch):
    """``OptunaSearch`` that records the search truthfully (see the module docstring).
    ``meta_steps``: a trial's length unless its sampled ``meta_steps`` says otherwise."""

    def __init__(self, *args: Any, meta_steps: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._meta_steps = meta_steps
        self._lengths: dict[str, int] = {}
        self._reported: dict[str, set[int]] = {}

    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        if params is not None:
            self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
            self._lengths[trial_id] = int(params.get("meta_steps", self._meta_steps))
        return params

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """An evaluation point: its validation accuracy at its meta-step (a retry's repeat
        of a step already reported, or a diverged trial's closing report, is left out)."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict) -> None:
        if result.get("status") != "running" or result.get(self.metric) is None:
            return
        step = int(result.get("step") or 0)
        reported = self._reported.setdefault(trial_id, set())
        if step not in reported:
            self._ot_trials[trial_id].report(float(result[self.metric]), step)
            reported.add(step)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        import optuna

        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if result:  # the result on which the scheduler stopped it reaches only here
            self._report(trial_id, result)
        state = optuna.trial.TrialState
        value = None if not result else result.get(self.metric)
        steps = int((result or {}).get("step") or 0)
        if error or value is None:
            told, value = (state.FAIL if error else state.PRUNED), None
        elif result.get("status") != "diverged" and steps < self._lengths.get(trial_id, 0):
            told, value = state.PRUNED, None  # Optuna keeps its last intermediate value
        else:
            told = state.COMPLETE
        try:
            self._ot_study.tell(self._ot_trials[trial_id], value, state=told)
        except Exception as exc:
            logger.warning(exc)
        self._completed_trials.add(trial_id)
