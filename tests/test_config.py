"""Presets, overrides and their validation."""

from __future__ import annotations

import re

import pytest

from raybench.config import PRESETS, RunConfig, parse_assignments
from raybench.errors import RaybenchError
from raybench.solvers import make_config


def test_paper_preset_is_table_1() -> None:
    cfg = make_config("maml", "paper")
    assert (cfg.inner_lr, cfg.outer_lr, cfg.inner_steps, cfg.meta_batch, cfg.meta_steps) == (
        0.01,
        0.001,
        5,
        16,
        2000,
    )
    assert (cfg.ways, cfg.shots, cfg.query, cfg.bn) == (5, 1, 15, "batch")
    assert cfg.adapt_steps_eval == 5


def test_overrides_are_parsed_and_validated() -> None:
    cfg = make_config("fomaml", "smoke", parse_assignments(["inner_lr=0.4", "rotations=off"]))
    assert cfg.inner_lr == 0.4 and cfg.rotations is False
    assert cfg.meta_steps == PRESETS["smoke"]["meta_steps"]
    assert make_config("maml", "paper", {"eval_inner_steps": "10"}).adapt_steps_eval == 10


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("inner_lr", "-1", "inner_lr: expected a number > 0"),
        ("inner_lr", "fast", "inner_lr"),
        ("meta_batch", "0", "meta_batch: expected an integer >= 1"),
        ("inner_steps", "2.5", "inner_steps: expected an integer"),
        ("split", "random", "split: expected one of maml, lake"),
        ("rotations", "maybe", "rotations: expected true or false"),
        ("outer_lr", "nan", "outer_lr"),
    ],
)
def test_bad_values_name_the_key_and_range(key: str, value: str, words: str) -> None:
    with pytest.raises(RaybenchError, match=words) as info:
        make_config("maml", "paper", {key: value})
    assert "\n" not in str(info.value)


def test_unknown_keys_and_presets_suggest_the_right_name() -> None:
    with pytest.raises(RaybenchError, match="did you mean 'inner_lr'"):
        make_config("maml", "paper", {"iner_lr": "0.1"})
    with pytest.raises(RaybenchError, match="did you mean 'smoke'"):
        make_config("maml", "smoky")
    with pytest.raises(RaybenchError, match="key=value"):
        parse_assignments(["inner_lr"])
    with pytest.raises(RaybenchError, match="unknown solver 'mam'"):
        make_config("maml", "paper", {"mam.lam": "1"})
    with pytest.raises(RaybenchError, match=r"unknown option 'maml\.lam'"):
        make_config("maml", "paper", {"maml.lam": "1"})


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("imaml.lam", "0", "imaml.lam"),
        ("imaml.cg", "3", "unknown option 'imaml.cg' for solver 'imaml'"),
        ("neumann.terms", "many", "neumann.terms"),
    ],
)
def test_options_of_a_solver_not_run_are_checked_all_the_same(
    key: str, value: str, words: str
) -> None:
    """``--solvers fomaml --set imaml.lam=0`` is refused as ``--solvers imaml`` would be."""
    with pytest.raises(RaybenchError, match=re.escape(words)):
        make_config("imaml", "paper", {key: value})
    with pytest.raises(RaybenchError, match=re.escape(words)):
        make_config("fomaml", "paper", {key: value})
    assert make_config("fomaml", "paper", {"imaml.lam": "2"}).solver_options == (
        make_config("fomaml", "paper").solver_options
    )


def test_task_larger_than_a_character_is_rejected() -> None:
    with pytest.raises(RaybenchError, match="20 drawings"):
        make_config("maml", "paper", {"shots": "5", "query": "16"})


def test_run_id_names_solver_seed_and_configuration() -> None:
    a = make_config("maml", "smoke", {"seed": 3})
    b = make_config("maml", "smoke", {"seed": 4})
    c = make_config("maml", "smoke", {"seed": 3, "inner_lr": "0.1"})
    assert a.run_id.startswith("maml-s3-")
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.run_id != c.run_id
    assert RunConfig().to_json() == RunConfig().to_json()


def test_stored_run_ids_stay_the_same_across_versions() -> None:
    """Ids of stored runs: if this fails, a change renamed every run (list a new setting
    in ADDED_SETTINGS with its neutral value, unless it really changes what runs do)."""
    assert make_config("maml", "paper").run_id == "maml-s0-71f9dd43ed"
    assert make_config("fomaml", "paper").run_id == "fomaml-s0-50f4992618"


def test_an_added_setting_at_its_neutral_value_leaves_the_id_alone(monkeypatch) -> None:
    """An older raybench, simulated by a to_dict without two settings, and this one with
    them listed in ADDED_SETTINGS give the same ids; other values still count."""
    import raybench.config as config

    full_dict = RunConfig.to_dict

    def older_dict(self: RunConfig) -> dict:
        data = full_dict(self)
        del data["cuda_graph"]
        data["solver_options"].pop("damping", None)
        return data

    changed = {"cuda_graph": "true", "imaml.damping": "0.5"}
    monkeypatch.setattr(RunConfig, "to_dict", older_dict)
    older = make_config("imaml", "paper").fingerprint()
    monkeypatch.setattr(RunConfig, "to_dict", full_dict)
    without_list = make_config("imaml", "paper").fingerprint()
    changed_before = make_config("imaml", "paper", changed).fingerprint()
    assert without_list != older  # what happened before ADDED_SETTINGS: every id changed

    # penalty.lam at imaml's lam default: another solver's knob, must not touch imaml
    listed = {**config.ADDED_SETTINGS, "cuda_graph": False, "imaml.damping": 0.0}
    listed["penalty.lam"] = 2.0
    monkeypatch.setattr(config, "ADDED_SETTINGS", listed)
    assert make_config("imaml", "paper").fingerprint() == older
    assert make_config("imaml", "paper", changed).fingerprint() == changed_before != older
    assert make_config("imaml", "paper", {"cuda_graph": "true"}).fingerprint() != older


def test_imaml_evaluated_its_own_way_before_keeps_its_old_id(monkeypatch) -> None:
    """eval_adaptation came with a changed default for iMAML only: iMAML runs of the older
    raybench (evaluated by their own loop) keep their ids and are told apart from the new
    default; every other solver's ids are untouched (plain SGD was theirs already)."""
    full_dict = RunConfig.to_dict

    def older_dict(self: RunConfig) -> dict:
        data = full_dict(self)
        del data["eval_adaptation"]
        return data

    monkeypatch.setattr(RunConfig, "to_dict", older_dict)
    old = {s: make_config(s, "paper").fingerprint() for s in ("imaml", "maml", "reptile")}
    monkeypatch.setattr(RunConfig, "to_dict", full_dict)
    own = make_config("imaml", "paper", {"eval_adaptation": "solver"})
    assert own.fingerprint() == old["imaml"] != make_config("imaml", "paper").fingerprint()
    for solver in ("maml", "reptile"):
        assert make_config(solver, "paper").fingerprint() == old[solver]
        changed = make_config(solver, "paper", {"eval_adaptation": "solver"}).fingerprint()
        assert changed != old[solver]


def test_assumption_settings_leave_stored_ids_alone(monkeypatch) -> None:
    """The diagnostics' settings and iMAML's new options, at their defaults, keep the ids of
    runs stored before they existed; other values are other configurations."""
    full_dict = RunConfig.to_dict

    def older_dict(self: RunConfig) -> dict:
        data = full_dict(self)
        del data["diag_tasks"], data["diag_lanczos_steps"]
        for knob in ("linear_solver", "proximal_steps", "proximal_lr", "proximal_tol"):
            data["solver_options"].pop(knob, None)
        return data

    cases = {
        "imaml": {"eval_adaptation": "solver"},  # as the older raybench evaluated it
        "neumann": {},
        "maml": {},
    }
    monkeypatch.setattr(RunConfig, "to_dict", older_dict)
    old = {s: make_config(s, "paper", o).fingerprint() for s, o in cases.items()}
    monkeypatch.setattr(RunConfig, "to_dict", full_dict)
    for solver, overrides in cases.items():
        assert make_config(solver, "paper", overrides).fingerprint() == old[solver]
    # the ids of the version before, pinned
    assert make_config("imaml", "paper", cases["imaml"]).run_id == "imaml-s0-aa0371784c"
    assert make_config("neumann", "paper").run_id == "neumann-s0-b938814867"
    for changed in (
        {"imaml.linear_solver": "minres"},
        {"imaml.proximal_steps": "5"},  # even equal to inner_steps: set, so recorded
        {"imaml.proximal_lr": "0.01"},
        {"imaml.proximal_tol": "0.1"},
        {"diag_tasks": "0"},
        {"diag_lanczos_steps": "30"},
    ):
        config = make_config("imaml", "paper", {**cases["imaml"], **changed})
        assert config.fingerprint() != old["imaml"], changed


def test_every_network_choice_has_its_layer() -> None:
    """The settings' choices (config) and the layers that build them (models) agree."""
    from raybench.config import ACTIVATIONS, POOLINGS
    from raybench.models import ACTIVATION_LAYERS, POOLING_LAYERS

    assert set(ACTIVATION_LAYERS) == set(ACTIVATIONS)
    assert set(POOLING_LAYERS) == set(POOLINGS)
