"""Search-space files: every shipped space loads; malformed ones are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from raybench.configfile import read_config_file
from raybench.errors import RaybenchError
from raybench.search.spaces import DEFAULT_DIR, decode, load_space
from raybench.solvers import SOLVERS, make_config

CONFIGS = DEFAULT_DIR.parent / "configs"


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_every_solver_has_a_valid_space(solver: str) -> None:
    space = load_space(solver)
    assert {"inner_lr", "outer_lr", "inner_steps"} <= set(space.keys)
    tune_space = space.to_tune()
    # a sample of every space is a configuration `raybench run` accepts
    sample = {k: d.sample() if hasattr(d, "sample") else d for k, d in tune_space.items()}
    config = make_config(solver, "paper", decode(sample))
    assert config.solver == solver


def test_solver_knobs_are_searched() -> None:
    assert {"imaml.lam", "imaml.cg_steps", "imaml.proximal_steps", "imaml.proximal_lr"} <= set(
        load_space("imaml").keys
    )
    assert {"neumann.alpha", "neumann.terms"} <= set(load_space("neumann").keys)
    assert "penalty.lam" in load_space("penalty").keys
    assert DEFAULT_DIR.is_dir()


@pytest.mark.parametrize("name", ["imaml-paper-definite.yaml", "imaml-paper-smooth.yaml"])
def test_the_imaml_space_reaches_the_documented_paper_configurations(name: str) -> None:
    """Every setting of each iMAML configuration at the paper preset that
    docs/imaml-assumptions.md documents is inside the space, or not searched and then equal
    to the paper preset's value (what a sweep keeps)."""
    solver, preset, settings = read_config_file(CONFIGS / name)
    assert (solver, preset) == ("imaml", "paper")
    config = make_config(solver, preset, settings)
    paper = make_config(solver, preset)
    dimensions = {d.key: d for d in load_space("imaml").dimensions}
    keys = ("inner_lr", "inner_steps", "outer_lr", "activation", "pooling")
    values = {k: getattr(config, k) for k in keys}
    values.update({f"imaml.{k}": v for k, v in config.solver_options.items()})
    for key, value in values.items():
        dim = dimensions.get(key)
        if dim is None:
            default = paper.solver_options[key[6:]] if "." in key else getattr(paper, key)
            assert value == default, key
        elif dim.distribution == "categorical":
            assert value in dim.values, key
        else:
            assert dim.low <= value <= dim.high, key
    assert settings  # it changes something


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("inner_lr: [1, 2", ["not valid YAML"]),
        ("- inner_lr", ["expected a mapping"]),
        (
            "iner_lr: {distribution: uniform, low: 0.1, high: 0.2}",
            ["iner_lr", "did you mean 'inner_lr'"],
        ),
        (
            "inner_lr: {distribution: logunif, low: 0.1, high: 0.2}",
            ["inner_lr", "unknown distribution"],
        ),
        ("inner_lr: {distribution: uniform, low: 0.3, high: 0.2}", ["inner_lr", "low < high"]),
        ("inner_lr: {distribution: uniform, low: -1, high: 0.2}", ["inner_lr", "> 0"]),
        ("inner_lr: {distribution: uniform, low: 0.1}", ["inner_lr", "needs 'low' and 'high'"]),
        ("inner_steps: {distribution: loguniform, low: 1, high: 5}", ["inner_steps", "integer"]),
        ("inner_lr: {distribution: int, low: 1, high: 5}", ["inner_lr", "'int' only fits"]),
        ("imaml.lam: {distribution: uniform, low: 1, high: 2}", ["imaml.lam", "not of 'maml'"]),
        ("maml.lam: {distribution: uniform, low: 1, high: 2}", ["maml.lam", "unknown option"]),
        ("seed: {distribution: int, low: 1, high: 2}", ["seed", "cannot be searched"]),
        ("split: {distribution: categorical, values: [maml, random]}", ["split"]),
        (
            "inner_lr: {distribution: uniform, low: 0.1, high: 0.2, step: 1}",
            ["unexpected field 'step'"],
        ),
    ],
)
def test_bad_spaces_are_one_line_errors_naming_file_and_key(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    (tmp_path / "maml.yaml").write_text(text + "\n")
    with pytest.raises(RaybenchError) as info:
        load_space("maml", tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "maml.yaml") in message
    for word in words:
        assert word in message


def test_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(RaybenchError, match="no search space for 'maml'"):
        load_space("maml", tmp_path)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_every_shipped_range_says_why(solver: str) -> None:
    """The protocol's spaces are a claim a reader checks: each searched key is named by a
    comment line of its file (the justification of its range), before the key itself."""
    space = load_space(solver)
    lines = space.path.read_text().splitlines()
    for key in space.keys:
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        comments = [line for line in lines[:at] if line.startswith("#")]
        assert any(f" {key}:" in c or f" {key}," in c for c in comments), key
