"""Hostile input, generated (Hypothesis): protocol files, stored protocols, config files,
text in a store's columns and every API keyword. Whatever is drawn, raybench answers with
a result or a one-line error (a RaybenchError; exit 2 from the CLI), never another
exception, never a write outside the experiment. No example is timed (a deadline would fail
on a slow or busy machine): the API keywords go through probes whose body does nothing, so
nothing there can hang. Issue 46."""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from cli_checks import API_NEEDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raybench import api
from raybench.errors import ParameterError, RaybenchError

PROPERTY = settings(
    max_examples=60,
    deadline=None,  # no clock: a slow or busy machine must not fail an example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run and machine
)

# Values a hand-written or damaged file may hold: every JSON and YAML kind, numbers at and
# beyond every bound, text with separators, markup and control characters.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 3, -1, 2**31, 2**32, 2**63, 10**21]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "all", "[/]", "../x", "1_0", "nan", "inf", "\x00", "maml"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(), st.none()), inner, max_size=4
        ),
    ),
    max_leaves=8,
)


def yaml_text(data: Any) -> str:
    """``data`` as a YAML document (keys of any kind, as a hand-written file may have)."""
    return yaml.safe_dump(data, allow_unicode=True)


# ---------------------------------------------------------------- protocol files


PROTOCOL_KEYS = st.sampled_from(
    ["trials", "steps", "seeds", "final_steps", "search_seed", "grace", "reduction_factor",
     "other", 1]
)  # fmt: skip


@PROPERTY
@given(body=st.one_of(VALUES, st.dictionaries(PROTOCOL_KEYS, VALUES, max_size=5)))
def test_a_protocol_file_is_rules_or_one_line(body: Any) -> None:
    """Read as ``--protocol`` is: rules every later step takes (the protocol, its rungs,
    its lines), or a RaybenchError."""
    from raybench.search.protocol import asked_rules, make_protocol
    from raybench.search.spaces import load_space

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "protocol.yaml"
        path.write_text(yaml_text(body), encoding="utf-8")
        try:
            rules = asked_rules({}, path)
        except RaybenchError:
            return
    solvers = ["fomaml", "maml"]
    try:
        protocol = make_protocol(
            solvers=solvers, preset="smoke", overrides={},
            spaces=[load_space(s) for s in solvers],
            trials=rules.get("trials", 2), steps=rules.get("steps", 20),
            seeds=rules.get("seeds", 2), final_steps=rules.get("final_steps"),
            search_seed=rules.get("search_seed", 0), grace=rules.get("grace"),
            reduction_factor=rules.get("reduction_factor", 3),
        )  # fmt: skip
    except RaybenchError:
        return
    assert protocol.rungs() == sorted(protocol.rungs())
    assert all(1 <= r <= protocol.steps for r in protocol.rungs())
    assert len(protocol.lines()) == 7


@PROPERTY
@given(change=st.dictionaries(st.sampled_from(
    ["preset", "overrides", "solvers", "trials", "steps", "eval_every", "seeds", "final_steps",
     "search_seed", "grace", "reduction_factor", "sampler", "defaults_first", "spaces"]),
    VALUES, min_size=1, max_size=3))  # fmt: skip
def test_a_stored_protocol_is_read_whole_or_refused(change: dict[str, Any]) -> None:
    """A ``protocol.json`` with fields changed to anything: the report's lines and the
    rungs, or a RaybenchError naming the file."""
    from raybench.search.protocol import from_json, make_protocol
    from raybench.search.spaces import load_space

    good = make_protocol(
        solvers=["maml"], preset="smoke", overrides={}, spaces=[load_space("maml")],
        trials=2, steps=20, seeds=2, final_steps=None,
    ).to_json()  # fmt: skip
    data = json.loads(json.dumps({**good, **change}, default=str))
    try:
        protocol = from_json(data, "protocol.json")
    except RaybenchError as exc:
        assert str(exc).startswith("protocol.json is damaged")
        return
    assert protocol.lines() and isinstance(protocol.rungs(), list)


# ---------------------------------------------------------------- config files

SETTING_KEYS = st.one_of(
    st.sampled_from(["inner_lr", "ways", "meta_steps", "hidden", "imaml.lam", "maml.x",
                     "cuda_graph", "device", "seed", 1]),
    st.text(max_size=10), st.none(), st.integers(),
)  # fmt: skip


@PROPERTY
@given(
    solver=st.one_of(st.sampled_from(["maml", "imaml", "fomaml"]), VALUES),
    preset=st.one_of(st.sampled_from(["smoke", "paper"]), VALUES),
    values=st.dictionaries(SETTING_KEYS, VALUES, max_size=4),
    extra=st.one_of(st.none(), st.dictionaries(st.text(max_size=6), VALUES, max_size=2)),
)
def test_a_config_file_is_a_configuration_or_one_line(
    solver: Any, preset: Any, values: dict, extra: dict | None
) -> None:
    """A ``--config`` or ``best/*.yaml`` file: a configuration that builds, or a
    RaybenchError naming the file."""
    from raybench.configfile import read_config_file
    from raybench.solvers import make_config

    body = {"solver": solver, "preset": preset, "settings": values, **(extra or {})}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "best.yaml"
        path.write_text(yaml_text(body), encoding="utf-8")
        try:
            name, chosen, overrides = read_config_file(path)
        except RaybenchError as exc:
            assert str(path) in str(exc)
            return
    config = make_config(name, chosen, {**overrides, "seed": 3})
    assert config.solver == name and config.seed == 3


# ---------------------------------------------------------------- stored text

TEXT_COLUMNS = ("solver", "preset", "config_fingerprint", "device", "node", "error",
                "experiment", "source", "family", "run_id")  # fmt: skip
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["../../../x", "/etc/passwd", "[/]", "[bold]", "a\\b", ".hidden", "",
                     "x" * 300, "\x1b[2J", "{solver}", "%s"]),
)  # fmt: skip


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stores import comparison_store

    root = tmp_path_factory.mktemp("hostile") / "outputs" / "exp"
    comparison_store(root)
    return root


def files_outside(top: Path, experiment: Path) -> set[Path]:
    return {p for p in top.rglob("*") if not p.is_relative_to(experiment)}


def planted(base: Path, folder: Path, column: str, text: str) -> Path:
    """A copy of the store at ``base`` under ``folder`` with ``column`` of one run's
    runs, curves and tasks files (those that have it) set to ``text``."""
    root = folder / "outputs" / "exp"
    shutil.copytree(base, root)
    for table in ("runs", "curves", "tasks"):
        path = sorted((root / table).glob("*.parquet"))[0]
        data = pq.read_table(path)
        if column in data.column_names:
            at = data.column_names.index(column)
            data = data.set_column(at, column, pa.array([text] * data.num_rows, pa.string()))
            pq.write_table(data, path)
    return root


@settings(PROPERTY, max_examples=10)
@given(column=st.sampled_from(TEXT_COLUMNS), text=HOSTILE_TEXT)
def test_text_in_a_store_is_data(base_store: Path, column: str, text: str) -> None:
    """Any text in any text column of a run: report (every format), compare and store check
    answer, and nothing is written outside the experiment."""
    from cli_checks import run_main

    with tempfile.TemporaryDirectory() as folder:
        top = Path(folder)
        root = planted(base_store, top, column, text)
        before = files_outside(top, root)
        for fmt in ("rich", "markdown"):  # the others share markdown's records
            with contextlib.suppress(RaybenchError):
                assert isinstance(api.report(root, fmt=fmt, width=100), str)
        with contextlib.suppress(RaybenchError):
            api.compare(root, "fomaml", "finetune-full")
        checked = run_main("store", "check", "-e", str(root), cwd=top)
        assert checked.returncode in (0, 1, 2) and "Traceback" not in checked.stderr
        assert files_outside(top, root) == before


@settings(PROPERTY, max_examples=2)
@given(column=st.sampled_from(("solver", "preset", "experiment", "family")), text=HOSTILE_TEXT)
def test_figures_of_any_stored_text_stay_in_the_experiment(
    base_store: Path, column: str, text: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        top = Path(folder)
        root = planted(base_store, top, column, text)
        before = files_outside(top, root)
        with contextlib.suppress(RaybenchError):
            figures = api.plot(root)
            assert all(p.resolve().is_relative_to(root.resolve()) for p in figures.written)
        assert files_outside(top, root) == before


# ---------------------------------------------------------------- API keywords


def probes() -> list[tuple[str, Any]]:
    """Each checked API function as a probe: the same check, a body that does nothing."""
    from raybench.api.parameters import checked

    out = []
    for name in api.__all__:
        real = getattr(api, name)
        if not hasattr(real, "checked_by"):
            continue
        command, extra = real.checked_by

        def body(*args: Any, **kwargs: Any) -> str:
            return "ran"

        body.__signature__ = inspect.signature(real)  # type: ignore[attr-defined]
        body.__name__ = name
        out.append((name, checked(command, **extra)(body)))
    return out


PROBES = probes()


@settings(PROPERTY, max_examples=150)
@given(data=st.data())
def test_every_api_keyword_is_checked_or_refused_by_name(data: st.DataObject) -> None:
    """Any value for any keyword of any function: the function runs (here: a probe with
    its check and its signature), or a ParameterError names the keyword. A number the
    check lets through is within its flag's range."""
    from raybench.api.parameters import declared_ranges

    name, probe = data.draw(st.sampled_from(PROBES))
    parameters = inspect.signature(probe).parameters
    keyword = data.draw(st.sampled_from(sorted(parameters)))
    value = data.draw(VALUES)
    given = {**API_NEEDS.get(name, {}), keyword: value}
    try:
        assert probe(**given) == "ran"
    except ParameterError as exc:
        assert str(exc).startswith(f"{keyword} "), str(exc)
        return
    command, extra = probe.checked_by
    low, high = {**declared_ranges(command), **extra}.get(keyword, (None, None))
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert not math.isnan(value) or (low is None and high is None)
        assert low is None or value >= low
        assert high is None or value <= high
