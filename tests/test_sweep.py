"""Sweeps with Ray Tune + Optuna through the real CLI, on a local Ray: the trials table, the
best configs (accepted back by `raybench run --config`), the Optuna study, the final tuned
runs, and an interrupted sweep resumed without redoing finished trials."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pyarrow.dataset as ds
import pytest
from cli_checks import RAYBENCH, run_main, start_raybench
from rendezvous import NEVER_S, Rendezvous

import raybench.api
from raybench.configfile import read_config_file
from raybench.errors import RaybenchError
from raybench.report.replication import replication_markdown
from raybench.results import ExperimentStore
from raybench.results.trials import param_column, searchable
from raybench.search.live import params_text
from raybench.search.spaces import load_space
from raybench.solvers import make_config

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # every test here starts Ray
RAY_TESTS_SHARE_NOTHING = True  # each test starts its own Ray through the CLI

TRIAL_COLUMNS = {
    "experiment", "solver", "trial_id", "status", "val_acc", "best_val_acc", "steps",
    "evaluations", "time_s", "error", "params_json", "history_json", "param_inner_lr",
    "param_outer_lr", "param_inner_steps",
}  # fmt: skip


SWEPT = ("fomaml", "imaml")  # the smoke sweep: two solvers, two spaces of other parameters


def cli(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RAYBENCH), *args], cwd=cwd, capture_output=True, text=True, timeout=900, **kwargs
    )


def test_sweep_trials_best_configs_study_and_final_runs(tmp_path: Path) -> None:
    proc = cli(
        "sweep", "--solvers", ",".join(SWEPT), "--preset", "smoke", "--trials", "2",
        "--steps", "4", "--seeds", "2", "-e", "sw", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = tmp_path / "outputs" / "sw"
    protocol = json.loads((exp / "protocol.json").read_text())
    assert protocol["trials"] == dict.fromkeys(SWEPT, 2) and protocol["steps"] == 4  # equal
    assert protocol["seeds"] == [0, 1] and protocol["defaults_first"] is True
    assert [d["key"] for d in protocol["spaces"]["imaml"]] == list(load_space("imaml").keys)
    trials = ExperimentStore(exp).read("trials")  # one file per solver, columns unified
    assert set(trials.column_names) >= TRIAL_COLUMNS
    assert {"param_imaml_lam", "param_imaml_cg_steps"} <= set(trials.column_names)
    for solver in SWEPT:
        rows = [r for r in trials.to_pylist() if r["solver"] == solver]
        assert len(rows) == 2
        assert {r["status"] for r in rows} <= {"completed", "stopped", "errored", "diverged"}
        assert any(r["status"] == "completed" for r in rows)
        # the best config is the best completed trial, and `run --config` accepts it
        done = [r for r in rows if r["status"] == "completed"]
        best = max(done, key=lambda r: (r["val_acc"], r["default"]))  # a tie: the default
        name, preset, settings = read_config_file(exp / "best" / f"{solver}.yaml")
        config = make_config(name, preset, settings)
        params = json.loads(best["params_json"])
        assert config.inner_lr == pytest.approx(params["inner_lr"])
        assert config.meta_steps == make_config(solver, "smoke").meta_steps
        # the Optuna study is there for Optuna's own tools, and says what happened: a trial
        # ASHA stopped is pruned, values are keyed by meta-step, each names its Tune trial
        study = optuna.load_study(
            study_name=f"sw-{solver}", storage=f"sqlite:///{exp / 'optuna.db'}"
        )
        assert len(study.trials) == 2
        # the default configuration is the first trial, and the trials table says which
        first = min(study.trials, key=lambda t: t.number)
        default = make_config(solver, "smoke")
        assert first.params["inner_lr"] == default.inner_lr
        assert first.params["inner_steps"] == default.inner_steps
        (marked,) = [r for r in rows if r["default"]]
        assert marked["trial_id"] == first.user_attrs["tune_trial_id"]
        assert sum(r["selected"] for r in rows) == 1 and best["selected"]
        told = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
        assert set(told) == {r["trial_id"] for r in rows}
        state = optuna.trial.TrialState
        expected = {
            "completed": state.COMPLETE, "stopped": state.PRUNED, "errored": state.FAIL,
            "diverged": state.COMPLETE,  # told as its value 0%: TPE learns to avoid it
        }  # fmt: skip
        for r in rows:
            assert told[r["trial_id"]].state == expected[r["status"]], r
            steps = [h["step"] for h in json.loads(r["history_json"])]
            assert sorted(told[r["trial_id"]].intermediate_values) == steps
            assert set(steps) <= {2, 4}  # the smoke preset evaluates every 2 meta-steps
        # the summary line of each solver names its own tuned values
        (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith(f"{solver}: 2 trials")]
        assert f"with {params_text(params)}" in " ".join(line.split())
    # the live display's plain lines (stdout is not a terminal): each trial, and the counts
    assert all(f"sweep {solver}: trial" in proc.stdout for solver in SWEPT)
    assert "2/2 trials done" in proc.stdout and "ETA" in proc.stdout
    # every solver's trials file has one schema: pandas reads the folder whole, each
    # solver's parameters typed (integers as integers), null where a solver lacks one
    frame = pd.read_parquet(exp / "trials", dtype_backend="numpy_nullable")
    assert len(frame) == 2 * len(SWEPT)  # two trials of each solver
    for solver in SWEPT:
        mine = frame[frame["solver"] == solver]
        others = frame[frame["solver"] != solver]
        for dim in load_space(solver).dimensions:
            column = param_column(dim.key)
            kind = searchable()[dim.key].kind  # the setting's type, whatever the distribution
            assert str(frame[column].dtype) == {int: "Int64", float: "Float64", str: "string"}[kind]
            assert mine[column].notna().all()
            if "." in dim.key:
                assert others[column].isna().all()
    assert "param_penalty_lam" in frame.columns and frame["param_penalty_lam"].isna().all()
    # final runs: each solver's default and selected configuration, the same seeds; the
    # report puts the default beside the tuned row with the seed-paired tuning gain
    runs = ds.dataset(exp / "runs").to_table().to_pylist()
    report = run_main("report", "-e", "sw", "--format", "json", cwd=tmp_path)  # reads only
    assert report.returncode == 0, report.stderr[-2000:]
    rows = {r["solver"]: r for r in json.loads(report.stdout)}
    assert sorted(rows) == sorted(SWEPT)
    for solver in SWEPT:  # both searches selected a tuned configuration when written (a
        # default selected is tests/test_tuning_report.py's and the interrupted runs' case)
        mine = sorted((r["source"], r["seed"]) for r in runs if r["solver"] == solver)
        default_won = any(r["default"] and r["selected"] for r in trials.to_pylist()
                          if r["solver"] == solver)  # fmt: skip
        if default_won:
            assert mine == [("default", 0), ("default", 1)]
            assert rows[solver]["tuned_values"] == "the default (selected by the search)"
        else:
            assert mine == [("default", 0), ("default", 1), ("tuned", 0), ("tuned", 1)]
            assert rows[solver]["tuning_gain_method"] == "seed-paired"
            assert rows[solver]["tuning_gain"] == pytest.approx(
                rows[solver]["test_acc"] - rows[solver]["default_acc"]
            )
    assert "the solver's default configuration first" in proc.stdout
    assert "Tuning protocol: selection: the best completed trial" in " ".join(proc.stdout.split())
    fomaml_best = make_config(*read_config_file(exp / "best" / "fomaml.yaml"))
    rerun = cli(
        "run", "--config", str(exp / "best" / "fomaml.yaml"), "--backend", "inline",
        "-e", "again", cwd=tmp_path,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    (row,) = ds.dataset(tmp_path / "outputs" / "again" / "runs").to_table().to_pylist()
    assert row["source"] == "config"
    assert row["inner_lr"] == pytest.approx(fomaml_best.inner_lr)
    assert row["meta_steps"] == fomaml_best.meta_steps
    # the replication: the final runs again on fresh seeds (2 and 3), no new search (here
    # inline; the published one ran on Ray); its verdicts against the published ones, the
    # same through the CLI and the API
    rep = cli("replicate", "-e", "sw", "--backend", "inline", "--format", "json",
              "-o", "rep.json", cwd=tmp_path)  # fmt: skip
    assert rep.returncode == 0, rep.stderr[-3000:]
    replica = tmp_path / "outputs" / "sw-replication"
    again = ds.dataset(replica / "runs").to_table().to_pylist()
    assert {r["status"] for r in again} == {"completed"} and {r["seed"] for r in again} == {2, 3}
    assert sorted((r["solver"], r["source"], r["seed"]) for r in again) == sorted(
        (r["solver"], r["source"], r["seed"] + 2) for r in runs
    )
    configs = {(r["solver"], r["source"], r["config_fingerprint"]) for r in runs}
    assert {(r["solver"], r["source"], r["config_fingerprint"]) for r in again} == configs
    compared = json.loads((tmp_path / "rep.json").read_text())
    api_rows = raybench.api.replication_records(ExperimentStore(exp), ExperimentStore(replica))
    assert compared == json.loads(json.dumps(api_rows))
    assert {(r["table"], r["solver"]) for r in compared if r["verdict"] == "vs best"} == {
        (table, solver) for table in ("tuned", "defaults") for solver in SWEPT
    }
    assert all(r["same"] is not None and 0 <= r["expected"] <= 1 for r in compared)
    whole = run_main("replicate", "-e", "sw", "--format", "json", cwd=tmp_path)  # no training
    assert whole.returncode == 0 and json.loads(whole.stdout) == compared
    from_python = raybench.api.replicate("sw", out=tmp_path / "outputs")  # whole: no Ray
    assert json.loads(json.dumps(from_python.rows)) == compared
    assert from_python.seeds == (2, 3) and from_python.experiment.root == replica
    assert from_python.experiment.outcomes == [] and from_python.held == sum(
        bool(r["same"]) for r in compared
    )
    with pytest.raises(RaybenchError, match="are the published runs' own"):
        raybench.api.replicate("sw", seeds="0-1", out=tmp_path / "outputs")
    table = run_main("replicate", "-e", "sw", "--format", "markdown", cwd=tmp_path)
    assert table.returncode == 0 and table.stdout == replication_markdown(compared)


def finished_trials(db: Path, states: tuple[str, ...] = ("COMPLETE", "PRUNED")) -> int:
    """Trials the Optuna study was told the end of (ASHA's early stops are PRUNED)."""
    if not db.exists():
        return 0
    marks = ",".join("?" * len(states))
    try:
        with sqlite3.connect(db) as conn:
            query = f"select count(*) from trials where state in ({marks})"
            return conn.execute(query, states).fetchone()[0]
    except sqlite3.Error:
        return 0


class Planted:
    """A pickle that runs a shell command when loaded, as a crafted results folder would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_interrupted_sweep_resumes_from_its_own_records_and_runs_no_planted_code(
    tmp_path: Path, rendezvous: Rendezvous
) -> None:
    """An interrupted sweep keeps its finished trials, samples only the rest, and never
    unpickles Ray Tune's state: a tuner.pkl planted in the folder is not executed. Every
    trial is held at its step 2 (before its first report, so ASHA cannot stop it there):
    two are let go, Ctrl-C comes while the third is held."""
    import pickle

    args = [
        "sweep", "--solvers", "fomaml", "--preset", "smoke", "--trials", "4", "--steps", "12",
        "--set", "eval_every=4", "--max-concurrent", "1", "--no-final", "-e", "cut",
    ]  # fmt: skip
    exp = tmp_path / "outputs" / "cut"
    rendezvous.gate("any", 2)
    proc = start_raybench(*args, cwd=tmp_path)
    let_go: set[str] = set()
    deadline = time.monotonic() + NEVER_S  # a backstop against a hung suite
    while not (set(rendezvous.arrived(2)) - let_go and len(let_go) == 2):
        for run_id in sorted(set(rendezvous.arrived(2)) - let_go)[: 2 - len(let_go)]:
            rendezvous.release(run_id, 2)
            let_go.add(run_id)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"rendezvous never reached by trial {len(let_go) + 1}"
        time.sleep(0.05)
    while finished_trials(exp / "optuna.db") < 2:  # the two let go are recorded
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the two trials let go never finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "Tuner.restore" not in err  # Tune's advice to unpickle its state is not passed on
    assert err.strip().splitlines()[-1].endswith("--resume continues")
    rendezvous.clear()  # the resumed sweep trains freely
    assert not (exp / "trials").exists()  # an interrupted sweep is not written up as finished
    records = exp / "trial-records" / "fomaml"
    kept = sorted(p.stem for p in records.glob("*.parquet"))
    assert len(kept) == 2  # the third trial was held when Ctrl-C came
    marker = tmp_path / "planted-code-ran"
    for pkl in [exp / "tune" / "fomaml" / "tuner.pkl", *exp.glob("tune/fomaml/*.pkl")]:
        pkl.write_bytes(pickle.dumps(Planted(marker)))
    resumed = cli("sweep", "--resume", "cut", cwd=tmp_path, env={**os.environ})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not marker.exists(), "code planted in the results folder ran"
    trials = ExperimentStore(exp).read("trials").to_pylist()
    assert len(trials) == 4 and len({t["trial_id"] for t in trials}) == 4
    assert set(kept) <= {t["trial_id"] for t in trials}  # the finished ones were kept
    assert finished_trials(exp / "optuna.db") == 4
    stopped = sum(t["status"] == "stopped" for t in trials)
    assert finished_trials(exp / "optuna.db", ("PRUNED",)) == stopped
    assert not records.exists()  # all in the trials table now
    assert sum(t["default"] for t in trials) == 1  # enqueued once, kept across the resume
    protocol = (exp / "protocol.json").read_text()
    # the same protocol may be named again; a changed one is refused in one line
    same = cli("sweep", "--resume", "cut", "--trials", "4", cwd=tmp_path)
    assert same.returncode == 0, same.stderr[-2000:]
    changed = run_main("sweep", "--resume", "cut", "--trials", "6", "--steps", "8", cwd=tmp_path)
    assert changed.returncode == 2 and "Traceback" not in changed.stderr
    (line,) = changed.stderr.strip().splitlines()
    assert "trials 4 -> 6" in line and "steps 12 -> 8" in line
    assert (exp / "protocol.json").read_text() == protocol
    assert len(ExperimentStore(exp).read("trials")) == 4


def sweep_rows(store: ExperimentStore) -> tuple[list[tuple], list[tuple]]:
    """A sweep's trials (values, score, status, selection) and its final runs (their
    numbers), each sorted: what two sweeps of one protocol must share bit for bit."""
    trials = sorted(
        (r["params_json"], r["val_acc"], r["status"], r["selected"])
        for r in store.read("trials").to_pylist()
    )
    finals = sorted(
        (r["run_id"], r["source"], r["test_acc_mean"], r["final_val_acc"])
        for r in store.read("runs").to_pylist()
    )
    return trials, finals


def test_final_runs_interrupted_and_resumed_lose_none_and_match_the_api_sweep(
    tmp_path: Path, rendezvous: Rendezvous
) -> None:
    """Ctrl-C while the final runs train: the search is finished, one default run is
    stored, another is held at its step 2. The resumed sweep keeps the protocol, the
    trials and the stored run as they are, and trains only what is missing. The same
    sweep through ``raybench.api.sweep`` (in this process, never interrupted) has the
    same protocol, trials, selected configuration and final runs, bit for bit."""
    from rich.console import Console

    from raybench.search.sweep import SweepOptions

    args = [
        "sweep", "--solvers", "fomaml", "--preset", "smoke", "--trials", "2", "--steps", "2",
        "--seeds", "2", "--max-concurrent", "2", "--no-report", "-e", "fin",
    ]  # fmt: skip
    exp = tmp_path / "outputs" / "fin"
    first = make_config("fomaml", "smoke", {"seed": 0}).run_id
    held = make_config("fomaml", "smoke", {"seed": 1}).run_id
    rendezvous.gate(held, 2)
    proc = start_raybench(*args, cwd=tmp_path)
    rendezvous.wait(held, 2, proc)
    deadline = time.monotonic() + NEVER_S  # a backstop against a hung suite
    while first not in ExperimentStore(exp).finished_ids():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the first default run never finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    rendezvous.clear()
    protocol = (exp / "protocol.json").read_text()
    trials = ExperimentStore(exp).read("trials").to_pylist()
    (stored,) = [r for r in ExperimentStore(exp).read("runs").to_pylist() if r["run_id"] == first]
    resumed = cli("sweep", "--resume", "fin", "--no-report", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "sweep already finished, kept" in resumed.stdout
    assert (exp / "protocol.json").read_text() == protocol
    assert ExperimentStore(exp).read("trials").to_pylist() == trials
    runs = ExperimentStore(exp).read("runs").to_pylist()
    (again,) = [r for r in runs if r["run_id"] == first]
    assert again["ended_at"] == stored["ended_at"]  # kept, not trained again
    default_won = any(t["default"] and t["selected"] for t in trials)
    assert len(runs) == len({r["run_id"] for r in runs}) == (2 if default_won else 4)
    assert {r["status"] for r in runs} == {"completed"}
    assert sorted(r["seed"] for r in runs if r["source"] == "default") == [0, 1]
    # the same sweep from Python, uninterrupted
    tuned = raybench.api.sweep(
        "fomaml", "smoke", trials=2, steps=2, seeds=2, options=SweepOptions(max_concurrent=2),
        experiment="by-api", out=tmp_path / "outputs", console=Console(quiet=True),
    )  # fmt: skip
    by_api = ExperimentStore(tmp_path / "outputs" / "by-api")
    assert tuned.experiment.root == by_api.root and not tuned.failed
    assert tuned.protocol.to_json() == json.loads(protocol)
    selected = [read_config_file(s / "best" / "fomaml.yaml") for s in (by_api.root, exp)]
    assert selected[0] == selected[1]
    api_trials, api_finals = sweep_rows(by_api)
    assert (api_trials, api_finals) == sweep_rows(ExperimentStore(exp))
    assert len(api_trials) == 2 and len(api_finals) == len(runs)
    assert sorted(o.run_id for o in tuned.experiment.outcomes) == [f[0] for f in api_finals]
