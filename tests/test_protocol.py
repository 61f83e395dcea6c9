"""The tuning protocol without Ray: its rungs are ASHA's, unequal budgets are refused unless
told, the default of every solver is a point of its shipped space, the selection rule, and
bad protocol files or disagreeing flags are one-line errors through the real CLI (before
anything starts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import run_main

from raybench.errors import RaybenchError
from raybench.search.protocol import differences, from_json, make_protocol
from raybench.search.spaces import decode, load_space
from raybench.search.trials import mark_selected, selected_row
from raybench.solvers import SOLVERS, make_config, solver_class


def protocol(**kwargs):
    solvers = kwargs.pop("solvers", ["fomaml", "maml", "imaml"])
    values = dict(
        solvers=solvers,
        preset="smoke",
        overrides={},
        spaces=[load_space(s) for s in solvers],
        trials=4,
        steps=12,
        seeds=3,
        final_steps=None,
    )
    return make_protocol(**{**values, **kwargs})


@pytest.mark.parametrize(("steps", "every", "grace", "rf"), [(12, 2, None, 3), (200, 10, 2, 2)])
def test_rungs_are_the_meta_steps_at_which_ray_tunes_asha_compares(steps, every, grace, rf):
    from ray.tune.schedulers import ASHAScheduler

    made = protocol(steps=steps, overrides={"eval_every": every}, grace=grace, reduction_factor=rf)
    asha = ASHAScheduler(
        time_attr="training_iteration",
        max_t=made.evaluations,
        grace_period=made.grace_evaluations,
        reduction_factor=rf,
    )
    milestones = sorted(m for m, _ in asha._brackets[0]._rungs)
    assert made.rungs() == [min(m * every, steps) for m in milestones]
    assert made.rungs()  # a rung at all: otherwise ASHA never stops anything


def test_the_protocol_says_what_a_reader_checks_and_survives_its_file():
    made = protocol(seeds=[0, 1, 2], search_seed=7)
    text = "\n".join(made.lines())
    for phrase in (
        "4 per solver, the solver's default configuration first",
        "12 meta-steps per trial",
        "seed 7",
        "final validation accuracy (test tasks unseen)",
        "seeds 0-2, 4 meta-steps",  # the smoke preset's length
    ):
        assert phrase in text
    again = from_json(json.loads(json.dumps(made.to_json())))
    assert differences(made, again) == []
    assert again.rungs() == made.rungs()
    spaces = [load_space("fomaml"), load_space("maml"), load_space("penalty")]
    narrower = protocol(seeds=[0, 1, 2], search_seed=7, spaces=spaces)
    assert differences(made, narrower) == ["search space of imaml, penalty changed"]
    assert differences(made, protocol(seeds=[0, 1, 2], search_seed=7, trials=5)) == [
        "trials 4 -> 5"
    ]


def test_unequal_budgets_are_refused_unless_told(tmp_path: Path):
    with pytest.raises(RaybenchError, match=r"unequal budgets: unequal trials \(fomaml 4"):
        protocol(trials={"fomaml": 4, "maml": 8, "imaml": 4})
    told = protocol(trials={"fomaml": 4, "maml": 8, "imaml": 4}, unequal_budgets=True)
    assert "unequal, as told" in told.lines()[1]
    with pytest.raises(RaybenchError, match="no trials for imaml"):
        protocol(trials={"fomaml": 4, "maml": 4})
    (tmp_path / "maml.yaml").write_text(
        "inner_lr: {distribution: loguniform, low: 0.001, high: 1.0}\n"
        "meta_steps: {distribution: int, low: 4, high: 40}\n"
    )
    spaces = [load_space("maml", tmp_path)]
    with pytest.raises(RaybenchError, match="maml's space searches meta_steps"):
        protocol(solvers=["maml"], spaces=spaces)
    assert protocol(solvers=["maml"], spaces=spaces, unequal_budgets=True).unequal_budgets


@pytest.mark.parametrize("preset", ["smoke", "quick", "paper"])
def test_every_solvers_default_is_a_point_of_its_shipped_space(preset):
    for solver in SOLVERS:
        space, config = load_space(solver), make_config(solver, preset)
        point = decode(space.default_point(config))
        assert set(point) == set(space.keys)
        # the point trains the default: the same config once None options are resolved
        fallbacks = solver_class(solver).defaults_from
        for key, value in point.items():
            _, dot, knob = key.partition(".")
            if dot and config.solver_options.get(knob) is None:
                assert value == getattr(config, fallbacks[knob])
            else:
                assert value == (config.solver_options[knob] if dot else getattr(config, key))


def test_a_space_that_leaves_out_the_default_is_refused(tmp_path: Path):
    (tmp_path / "fomaml.yaml").write_text(
        "inner_lr: {distribution: loguniform, low: 0.1, high: 1}\n"
    )
    space = load_space("fomaml", tmp_path)
    with pytest.raises(RaybenchError, match=r"fomaml.yaml: inner_lr's default 0.01 .* widen"):
        space.default_point(make_config("fomaml", "smoke"))


def row(trial: str, status: str, val: float | None, default: bool = False) -> dict:
    return {"trial_id": trial, "status": status, "val_acc": val, "default": default}


def test_selection_is_the_best_completed_trial_on_validation_the_default_on_a_tie():
    rows = [
        row("a", "stopped", 90.0),  # ASHA stopped it: never selected, however high
        row("b", "completed", 60.0, default=True),
        row("c", "completed", 70.0),
        row("d", "errored", None),
    ]
    assert selected_row(rows)["trial_id"] == "c"
    tie = [row("c", "completed", 60.0), row("b", "completed", 60.0, default=True)]
    assert selected_row(tie)["trial_id"] == "b"
    assert [r["selected"] for r in mark_selected(rows)] == [False, False, True, False]
    assert selected_row([row("a", "stopped", 90.0)]) is None


@pytest.mark.parametrize(
    ("body", "flags", "message"),
    [
        ("trials: 3\nbudget: 7\n", [], "unknown key 'budget'"),
        ("trials: 0\n", [], "bad trials 0"),
        ("seeds: [0, 0]\n", [], "bad seeds [0, 0]"),
        ("reduction_factor: 1\n", [], "bad reduction_factor 1"),
        ("trials: 3\n", ["--trials", "4"], "--trials 4 disagrees with"),
        ("trials: {fomaml: 2, imaml: 3}\n", [], "unequal budgets"),
        ("- 3\n", [], "expected a mapping"),
        # issue 46: values that failed late, inside numpy, Ray Tune or the planner
        ("trials: {1: 2}\n", [], "bad trials {1: 2}"),
        ("search_seed: 4294967296\n", [], "bad search_seed 4294967296"),
        ("reduction_factor: 1000000000000000000000\n", [], "bad reduction_factor"),
        ("seeds: [0, 2199023255552]\n", [], "bad seeds"),
        ("steps: 12\n", ["--search-seed", "-1"], "--search-seed -1 is out of range (a whole"),
        ("steps: 12\n", ["--final-steps", "20000000"], "--final-steps 20000000 is out"),
    ],
)
def test_bad_protocols_are_one_line_refusals_before_anything_starts(
    tmp_path: Path, body, flags, message
):
    path = tmp_path / "protocol.yaml"
    path.write_text(body)
    proc = run_main(  # in this process: a refusal starts no interpreter (seconds each)
        "sweep", "--solvers", "fomaml,imaml", "--preset", "smoke", "--protocol", str(path),
        *flags, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert message in line
    assert not (tmp_path / "outputs").exists()  # nothing written


def test_a_rule_out_of_range_from_python_names_the_keyword():
    from raybench.errors import ParameterError
    from raybench.search.protocol import asked_rules

    for rule, value in (("search_seed", -1), ("reduction_factor", 10**21), ("trials", 0)):
        with pytest.raises(ParameterError, match=f"^{rule} .* is out of range"):
            asked_rules({rule: value}, None)
    assert asked_rules({"search_seed": 2**32 - 1, "seeds": (0, 5)}, None)["search_seed"] > 0


def interrupted_sweep(tmp_path: Path) -> Path:
    """A sweep's store as an interrupted ``raybench sweep`` leaves it (fabricated: no
    trial ran), under ``tmp_path/outputs/sw``."""
    from stores import sweep_store

    store, _ = sweep_store(tmp_path / "outputs" / "sw", seeds=range(3))
    store.write_manifest(
        "sweep",
        {"solvers": ["maml", "fomaml", "penalty"], "options": {}, "final": True, "spaces": None},
    )
    return store.root


def test_a_resumed_sweep_refuses_every_changed_flag(tmp_path: Path) -> None:
    """Issue 46, case 5: --preset, --set, --device, --spaces, --solvers and -e given with
    --resume and differing from the sweep are refused in one line naming each, before Ray
    starts; the same values as the sweep's are accepted as far as Ray (not started here)."""
    from cli_checks import one_line_error, run_main

    root = interrupted_sweep(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    resume = ("sweep", "--resume", "sw", "--no-final")
    for flags, named in (
        (("--preset", "smoke"), "--preset changes it (paper was tuned)"),
        (("--set", "inner_lr=0.2"), "--set changes it"),
        (("--device", "cuda"), "--device changes it (the sweep ran on auto)"),
        (("--solvers", "maml,fomaml"), "--solvers changes it"),
        (("-e", "other"), "--experiment changes it"),
    ):
        one_line_error(run_main(*resume, *flags, cwd=tmp_path), "--resume continues", named)
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    for solver in ("maml", "fomaml", "penalty"):
        text = (Path(__file__).parents[1] / "search_spaces" / f"{solver}.yaml").read_text()
        (spaces / f"{solver}.yaml").write_text(text)
    both = run_main(*resume, "--spaces", str(spaces), "--preset", "quick", cwd=tmp_path)
    one_line_error(both, "--preset changes it")
    assert "--spaces" not in both.stderr  # the same spaces, elsewhere
    text = (spaces / "fomaml.yaml").read_text()
    (spaces / "fomaml.yaml").write_text(text.replace("high: 1.0}", "high: 0.5}", 1))
    moved = run_main(*resume, "--spaces", str(spaces), cwd=tmp_path)
    one_line_error(moved, "--spaces changes it")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("optuna", ("optuna.db is not an Optuna study database", "move it away")),
        ("best", ("maml.yaml", "unknown setting 'inner_lrr'")),
        ("protocol", ("protocol.json is damaged: bad trials [4, 4]", "move it away")),
    ],
)
def test_a_resumed_sweep_refuses_damaged_files_before_anything_runs(
    tmp_path: Path, damage: str, words: tuple[str, ...]
) -> None:
    """Issue 46, case 3: a study database that is not one, a selected configuration that
    names no setting, a protocol whose trials are a list: one line naming the file."""
    from cli_checks import one_line_error, run_main

    root = interrupted_sweep(tmp_path)
    if damage == "optuna":
        (root / "optuna.db").write_bytes(b"not a database\n" * 10)
    elif damage == "best":
        (root / "best").mkdir()
        (root / "best" / "maml.yaml").write_text("solver: maml\nsettings:\n  inner_lrr: 0.1\n")
    else:
        data = json.loads((root / "protocol.json").read_text())
        data["trials"] = [4, 4]
        (root / "protocol.json").write_text(json.dumps(data))
        one_line_error(run_main("report", "-e", "sw", cwd=tmp_path), *words)
    one_line_error(run_main("sweep", "--resume", "sw", cwd=tmp_path), *words)
