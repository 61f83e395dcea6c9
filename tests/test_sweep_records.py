"""A sweep's records without running a sweep: the trials table's one schema (typed
parameters of every solver, older files conformed on read), the live display fed Tune's
events, and the Optuna study as the searcher tells it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from raybench.results import ExperimentStore
from raybench.results.store import write_table
from raybench.results.trials import TRIALS_SCHEMA, param_column, trials_table
from raybench.search.live import LiveSweep
from raybench.search.trials import best_trial, trial_row
from raybench.solvers import make_config


def row(solver: str, trial_id: str, params: dict, step: int, val: float | None, **extra):
    base = make_config(solver, "smoke")
    metrics = {"step": step, "val_acc": val, "training_iteration": 2, "time_total_s": 1.5}
    history = [] if val is None else [{"step": step, "val_acc": val}]
    return trial_row(solver, "exp", base, trial_id, params, history, {**metrics, **extra}, None)


def test_trials_files_of_different_solvers_read_together_typed(tmp_path: Path) -> None:
    """pandas reads the folder with every solver's parameters, integers as integers, a
    categorical choice as text, null where a solver lacks the parameter."""
    folder = tmp_path / "trials"
    imaml = [
        row("imaml", "i0", {"inner_lr": 0.1, "imaml__cg_steps": 5, "imaml__lam": 2.0}, 4, 40.0),
        row("imaml", "i1", {"inner_lr": 0.2, "imaml__linear_solver": "minres"}, 4, 45.0),
    ]
    penalty = [row("penalty", "p0", {"inner_lr": 0.3, "penalty__lam": 0.01, "inner_steps": 3},
                   4, 50.0)]  # fmt: skip
    write_table(folder / "imaml.parquet", trials_table(imaml))
    write_table(folder / "penalty.parquet", trials_table(penalty))
    assert pq.read_schema(folder / "imaml.parquet") == pq.read_schema(folder / "penalty.parquet")
    frame = pd.read_parquet(folder, dtype_backend="numpy_nullable").set_index("trial_id")
    columns = (
        "param_imaml_cg_steps", "param_imaml_lam", "param_penalty_lam", "param_inner_steps",
        "param_imaml_linear_solver", "param_neumann_terms",
    )  # fmt: skip
    for column in columns:
        assert column in frame.columns
    assert str(frame["param_imaml_cg_steps"].dtype) == "Int64"
    assert str(frame["param_inner_steps"].dtype) == "Int64"
    assert str(frame["param_penalty_lam"].dtype) == "Float64"
    assert frame.loc["i0", "param_imaml_cg_steps"] == 5
    assert frame.loc["p0", "param_inner_steps"] == 3
    assert frame.loc["p0", "param_penalty_lam"] == pytest.approx(0.01)
    assert pd.isna(frame.loc["p0", "param_imaml_lam"]) and pd.isna(
        frame.loc["i0", "param_penalty_lam"]
    )
    assert frame.loc["i1", "param_imaml_linear_solver"] == "minres"
    # the plain read (numpy dtypes) keeps every column too
    assert "param_penalty_lam" in pd.read_parquet(folder).columns


def test_every_solver_knob_has_a_typed_column() -> None:
    from raybench.solvers.base import option_bounds

    for solver, bounds in option_bounds().items():
        for knob, bound in bounds.items():
            field = TRIALS_SCHEMA.field(param_column(f"{solver}.{knob}"))
            expected = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}
            assert field.type == expected[bound.kind]


def test_an_older_trials_file_is_conformed_on_read(tmp_path: Path) -> None:
    """Written when every parameter was a float and only the solver's own were columns."""
    store = ExperimentStore(tmp_path / "exp")
    old = pa.Table.from_pylist(
        [
            {
                "schema_version": 2, "experiment": "exp", "solver": "imaml", "trial_id": "a",
                "status": "completed", "val_acc": 40.0, "param_inner_lr": 0.1,
                "param_imaml_cg_steps": 5.0, "params_json": json.dumps({"imaml.cg_steps": 5}),
            }
        ]
    )  # fmt: skip
    write_table(store.path("trials", "imaml"), old)
    new = row("penalty", "p0", {"penalty__lam": 0.5}, 4, 50.0)
    write_table(store.path("trials", "penalty"), trials_table([new]))
    table = store.read("trials")
    assert table.schema.field("param_imaml_cg_steps").type == pa.int64()
    rows = {r["trial_id"]: r for r in table.to_pylist()}
    assert rows["a"]["param_imaml_cg_steps"] == 5 and rows["a"]["param_penalty_lam"] is None
    assert rows["p0"]["param_penalty_lam"] == 0.5


def trial(trial_id: str, params: dict, step: int, val: float, status: str = "running"):
    return SimpleNamespace(
        trial_id=trial_id, config=params, error_file=None,
        last_result={"step": step, "val_acc": val, "status": status, "training_iteration": 1},
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def feed(live: LiveSweep, clock: Clock) -> None:
    """4 trials of 4 meta-steps: one stopped early after a high first value, one completed,
    one running at step 2; 100 s in."""
    stopped = trial("t-stop", {"inner_lr": 0.9, "inner_steps": 2}, 2, 90.0)
    good = trial("t-good", {"inner_lr": 0.05, "inner_steps": 3}, 4, 60.0)
    running = trial("t-run", {"inner_lr": 0.2, "inner_steps": 1}, 2, 30.0)
    for t in (stopped, good, running):
        live.on_trial_start(0, [], t)
        live.on_trial_result(0, [], t, t.last_result)
    clock.now += 40
    live.on_trial_complete(0, [], stopped)
    clock.now += 60
    live.on_trial_complete(0, [], good)


def test_live_display_in_a_terminal(tmp_path: Path) -> None:
    console = Console(record=True, width=160, force_terminal=True, file=io.StringIO())
    clock = Clock()
    base = make_config("fomaml", "smoke", {"meta_steps": 4})
    live = LiveSweep(console, "fomaml", 4, base, clock=clock)
    feed(live, clock)
    assert live.bars is not None
    console.print(live.bars)
    text = console.export_text()
    assert "sweep fomaml" in text and "2/4" in text
    assert "1 running, 1 stopped" in text
    assert "0:01:40" in text  # elapsed
    # 2 trials done and one half-way in 100 s: 1.5 trials left at 40 s each
    assert "ETA 1m 00s" in text
    # the best is the best completed trial, as the selected best config: not the stopped
    # trial's early 90%
    assert "best val 60.00% (inner_lr=0.05 inner_steps=3)" in text
    params, value = best_trial(live.rows)
    assert params == {"inner_lr": 0.05, "inner_steps": 3} and value == 60.0


def test_live_display_prints_plain_lines_in_a_log() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    clock = Clock()
    base = make_config("fomaml", "smoke", {"meta_steps": 4})
    live = LiveSweep(console, "fomaml", 4, base, clock=clock, log_every=30)
    feed(live, clock)
    lines = out.getvalue().splitlines()
    assert any("trial t-stop stopped at step 2/4, val 90.00%" in ln for ln in lines)
    assert any("trial t-good completed at step 4/4, val 60.00%" in ln for ln in lines)
    last = lines[-1]
    assert "2/4 trials done, 1 running, 1 stopped" in last
    assert "elapsed 1m 40s, ETA 1m 00s" in last
    assert "best val 60.00% (inner_lr=0.05 inner_steps=3)" in last
    assert "\x1b[" not in out.getvalue()  # no terminal codes in a log
    before = len(lines)
    clock.now += 10
    live.on_step_end(0, [])
    assert len(out.getvalue().splitlines()) == before  # not due yet
    clock.now += 25
    live.on_step_end(0, [])
    assert len(out.getvalue().splitlines()) == before + 1


def test_optuna_study_says_pruned_keys_meta_steps_and_names_tune_trials(
    tmp_path: Path,
) -> None:
    from ray import tune

    from raybench.search.optuna_study import SweepSearch

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = SweepSearch(
        {"inner_lr": tune.loguniform(0.01, 1.0)}, meta_steps=30, metric="val_acc",
        mode="max", storage=optuna.storages.RDBStorage(storage), study_name="s",
    )  # fmt: skip
    for tid in ("full", "cut", "bad"):
        suggested = search.suggest(tid)  # None would mean the search gave up
        assert suggested is not None and 0.01 <= suggested["inner_lr"] <= 1.0
    for step in (10, 20, 30):
        search.on_trial_result("full", {"val_acc": step / 1.0, "step": step, "status": "running"})
    search.on_trial_result("cut", {"val_acc": 5.0, "step": 10, "status": "running"})
    search.on_trial_result("cut", {"val_acc": 5.0, "step": 10, "status": "running"})  # a retry
    search.on_trial_complete("full", {"val_acc": 30.0, "step": 30, "status": "running"})
    # ASHA stops "cut" on its step-20 result, which Tune hands to the searcher only here
    search.on_trial_complete("cut", {"val_acc": 6.0, "step": 20, "status": "running"})
    search.on_trial_complete("bad", {"val_acc": 5.0, "step": 10}, error=True)
    study = optuna.load_study(study_name="s", storage=storage)
    told = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    state = optuna.trial.TrialState
    assert told["full"].state == state.COMPLETE and told["full"].value == 30.0
    assert told["full"].intermediate_values == {10: 10.0, 20: 20.0, 30: 30.0}
    assert told["cut"].state == state.PRUNED and told["cut"].intermediate_values == {
        10: 5.0,
        20: 6.0,
    }
    assert told["bad"].state == state.FAIL


def test_live_display_survives_tunes_pickling_without_its_console() -> None:
    import pickle

    clock = Clock()
    base = make_config("fomaml", "smoke", {"meta_steps": 4})
    console = Console(file=io.StringIO(), force_terminal=True)
    live = LiveSweep(console, "fomaml", 4, base, clock=clock)
    feed(live, clock)
    copy = pickle.loads(pickle.dumps(live))
    assert copy.bars is None and copy.counts() == live.counts()
    copy.on_trial_complete(0, [], trial("t-run", {"inner_lr": 0.2}, 4, 20.0))  # no display
    assert copy.counts()["done"] == 3


def test_tunes_advice_to_restore_its_pickled_state_is_not_passed_on(caplog) -> None:
    """After Ctrl-C Tune logs 'Resume experiment with: Tuner.restore(...)': the sweep drops
    that line (raybench never unpickles Tune's state) and takes it as the interruption;
    Tune's other warnings pass."""
    import logging

    from raybench.search.sweep import interruption_watch

    tune_run = logging.getLogger("ray.tune.tune")
    with caplog.at_level(logging.WARNING), interruption_watch() as interrupted:
        tune_run.warning("a warning of Tune's own")
        tune_run.warning(
            "Experiment has been interrupted, but the most recent state was saved.\n"
            'Resume experiment with: Tuner.restore(path="/x", trainable=...)'
        )
    assert interrupted.seen
    texts = [r.getMessage() for r in caplog.records]
    assert texts == ["a warning of Tune's own"]
    with caplog.at_level(logging.WARNING):  # outside a sweep, Tune's logging is untouched
        tune_run.warning("Resume experiment with: Tuner.restore(...)")
    assert "Tuner.restore" in caplog.records[-1].getMessage()
