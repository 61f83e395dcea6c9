"""The aggregated report: stability measures, seeds, references, grouping and formats.

Runs are fabricated (no training) with validation curves designed so that every number in
the report is known by hand.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_checks import run_main
from rich.console import Console
from rich.table import Table

from raybench.cli.commands import report
from raybench.config import PRESETS
from raybench.report import references as refs
from raybench.report import stability as st
from raybench.report.flat import plain_cell, render_flat
from raybench.report.records import (
    RUN_RECORD_SCHEMA,
    SUMMARY_SCHEMA,
    aggregate_runs,
    caption_lines,
    run_records,
    summary_arrow,
)
from raybench.report.tables import summary_tables
from raybench.results import ExperimentStore
from raybench.solvers import METRICS, make_config
from raybench.train import RunResult

RAYBENCH = Path(sys.executable).parent / "raybench"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
FAMILIES = {
    "maml": "second-order",
    "fomaml": "first-order",
    "reptile": "first-order",
    "imaml": "implicit",
    "finetune-full": "baseline",
}

# Validation accuracy (%) at steps 100..500 of each seed of the MAML runs at `paper`.
# seed 0: smoothed 104/3, 164/3, 224/3 -> roughness 20; final 80: 90% = 72 ->
#         step 300 (74), 95% = 76 -> step 500.
# seed 1: a plateau -> roughness 0; final 60: 90% = 54 and 95% = 57 -> step 100.
# seed 2: smoothed 30, 40, 40 -> roughness (10 + 0) / 2 = 5; final 48:
#         90% = 43.2 and 95% = 45.6 -> step 200.
CURVES = {
    0: [10.0, 20.0, 74.0, 70.0, 80.0],
    1: [60.0, 60.0, 60.0, 60.0, 60.0],
    2: [30.0, 48.0, 12.0, 60.0, 48.0],
}
TEST = {0: 80.0, 1: 82.0, 2: 87.0}


def curve_rows(values: list[float], every: int = 100) -> list[dict[str, float]]:
    return [
        {"step": every * (i + 1), "train_time_s": 1.0, "ms_per_step": 10.0, "grad_norm": 1.0}
        | {f"{w}_{m}": 50.0 for w in ("train", "val") for m in METRICS}
        | {"val_query_acc_post": v}
        for i, v in enumerate(values)
    ]


def fake_run(
    solver: str,
    seed: int,
    curve: list[float],
    test: float | None,
    preset: str = "paper",
    overrides: dict[str, Any] | None = None,
    **kw: Any,
) -> RunResult:
    config = make_config(solver, preset, {"seed": seed, **(overrides or {})})
    finite = [v for v in curve if not math.isnan(v)]
    fields: dict[str, Any] = dict(
        config=config,
        family=FAMILIES[solver],
        steps_done=100 * len(curve),
        curves=curve_rows(curve),
        final_val_acc=finite[-1] if finite else None,
        test_acc_mean=test,
        test_acc_ci95=2.0 if test is not None else None,
        test_tasks_n=600,
        wall_time_s=100.0 + seed,
        ms_per_step=40.0 + seed,
        peak_memory_mb=900.0 + seed,
        memory_kind="cpu_peak_rss",
        device="cpu: test",
        git_commit="test",
        started_at=NOW,
        ended_at=NOW,
    )
    fields.update(kw)
    return RunResult(**fields)


@pytest.fixture
def store(tmp_path: Path) -> ExperimentStore:
    """Two settings: `paper` (5-way 1-shot) and 20-way 5-shot.

    paper: MAML x 3 completed seeds + 1 diverged; MAML tuned (another config, one seed);
    FOMAML one seed; fine-tuning (full) one seed. 20-way 5-shot: MAML one seed.
    """
    store = ExperimentStore(tmp_path / "exp")
    for seed, curve in CURVES.items():
        store.write_run(fake_run("maml", seed, curve, TEST[seed]))
    store.write_run(
        fake_run("maml", 3, [30.0, float("nan")], None, status="diverged", peak_memory_mb=2000.0)
    )
    store.write_run(
        fake_run("maml", 0, [50.0, 90.0], 95.0, overrides={"inner_lr": 0.05}), source="tuned"
    )
    store.write_run(fake_run("fomaml", 0, [40.0, 60.0, 70.0], 70.0, ms_per_step=10.0))
    store.write_run(fake_run("finetune-full", 0, [30.0], 40.0))
    twenty = {"ways": 20, "shots": 5}
    store.write_run(fake_run("maml", 0, [50.0, 90.0], 96.0, overrides=twenty))
    return store


def records_of(store: ExperimentStore) -> list[dict[str, Any]]:
    return aggregate_runs(store.read("runs"), store.read("curves"))


def render(tables) -> str:
    console = Console(record=True, width=250, color_system=None)
    for table in tables:
        console.print(table)
    return console.export_text()


# ---------------------------------------------------------------- stability measures


def test_moving_average_and_roughness_by_hand() -> None:
    values = [0.1, 0.2, 0.6, 0.3, 0.5]
    smooth = st.moving_average(values)
    assert smooth == pytest.approx([0.3, 1.1 / 3, 1.4 / 3])
    # |1.1/3 - 0.3| = 0.2/3 and |1.4/3 - 1.1/3| = 0.1: mean 1/12
    assert st.roughness(values) == pytest.approx((0.2 / 3 + 0.1) / 2)
    assert st.roughness([0.6] * 6) == 0.0
    assert st.roughness([0.1, 0.9, 0.1]) is None  # one smoothed point: no change to measure
    assert st.roughness([]) is None
    for seed, expected in ((0, 20.0), (1, 0.0), (2, 5.0)):
        assert st.roughness(CURVES[seed]) == pytest.approx(expected)


def test_steps_to_fraction_by_hand() -> None:
    curve = [(100, 0.2), (200, 0.5), (300, 0.74), (400, 0.77), (500, 0.8)]
    assert st.steps_to_fraction(curve, 0.9) == 300  # 0.72
    assert st.steps_to_fraction(curve, 0.95) == 400  # 0.76
    assert st.steps_to_fraction(curve[::-1][:1], 0.9) == 500  # a single evaluation
    assert st.steps_to_fraction([], 0.9) is None
    assert st.steps_to_fraction([(100, 0.0)], 0.9) is None


def test_run_stability_handles_nan_unsorted_and_missing() -> None:
    diverged = st.run_stability([(200, float("nan")), (100, 0.3), (None, 0.5)])
    assert diverged.evaluations == 1 and diverged.final_val_acc == 0.3
    assert diverged.roughness is None and diverged.steps_90 == 100
    unsorted = st.run_stability([(500, 0.8), (100, 0.1), (300, 0.74), (200, 0.2), (400, 0.7)])
    assert (unsorted.roughness, unsorted.steps_90, unsorted.steps_95) == (
        pytest.approx(0.2),
        300,
        500,
    )
    empty = st.run_stability([])
    assert (empty.evaluations, empty.roughness, empty.steps_90) == (0, None, None)
    assert st.curves_by_run(pa.table({"run_id": ["a"], "step": [1]})) == {}
    assert st.curves_by_run(pa.table({})) == {}


def test_seed_statistics() -> None:
    assert st.t975(2) == pytest.approx(4.3027)
    assert st.t975(30) == pytest.approx(2.0423, abs=1e-4)
    assert st.t975(40) == pytest.approx(2.0211, abs=1e-3)
    assert st.t975(10**6) == pytest.approx(1.95996, abs=1e-4)
    values = [0.80, 0.82, 0.87]
    std = math.sqrt((0.03**2 + 0.01**2 + 0.04**2) / 2)
    assert st.std_or_none(values) == pytest.approx(std)
    assert st.seed_interval(values) == pytest.approx(4.3027 * std / math.sqrt(3))
    assert st.seed_interval([0.8]) is None and st.std_or_none([0.8, None]) is None
    assert st.mean_or_none([None, float("nan")]) is None


# ---------------------------------------------------------------- references


def row(solver: str, ways: int = 5, shots: int = 1, preset: str = "paper", **settings) -> dict:
    config = make_config(solver, preset, {"ways": ways, "shots": shots, **settings})
    data = {f.name: getattr(config, f.name) for f in config.__dataclass_fields__.values()}
    data["eval_inner_steps"] = config.adapt_steps_eval
    for knob, value in config.solver_options.items():
        data[f"{solver}_{knob}"] = value
    return data


def test_paper_preset_gets_table_2_first() -> None:
    matches = refs.references_for(row("maml"))
    first = matches[0]
    assert first.reference.value == 82.7 and first.reference.source == refs.TABLE2
    assert first.same_protocol and first.protocol_text == "same protocol"
    maml_paper = matches[1]
    assert (maml_paper.reference.value, maml_paper.reference.pm) == (98.7, 0.4)
    assert maml_paper.reference.source == refs.FINN and not maml_paper.same_protocol
    assert "inner_lr 0.01 (ref 0.4)" in maml_paper.protocol_text
    table2 = {
        s: refs.references_for(row(s))[0].reference.value
        for s in ("finetune-head", "reptile", "fomaml", "neumann", "imaml", "penalty", "maml")
    }
    assert table2 == {
        "finetune-head": 34.8,
        "reptile": 68.5,
        "fomaml": 74.8,
        "neumann": 75.2,
        "imaml": 78.1,
        "penalty": 82.5,
        "maml": 82.7,
    }
    # Table 2 applies with the paper's settings changed, but says the protocol differs
    changed = refs.references_for(row("neumann", **{"neumann.terms": 5, "meta_steps": 100}))[0]
    assert changed.reference.source == refs.TABLE2 and not changed.same_protocol
    assert "neumann_terms 5 (ref 3)" in changed.protocol_text
    assert "meta_steps 100 (ref 2000)" in changed.protocol_text


def test_the_network_is_part_of_the_protocol() -> None:
    """A smooth network is not the report's or the literature's; a run stored before the
    network had choices (no ``activation`` column) ran the report's ReLU network."""
    smooth = refs.references_for(row("imaml", activation="gelu", pooling="avg"))
    assert smooth and not any(m.same_protocol for m in smooth)
    assert "activation gelu (ref relu)" in smooth[0].protocol_text
    old = {k: v for k, v in row("maml").items() if k not in ("activation", "pooling")}
    assert refs.references_for(old)[0].same_protocol


def test_other_presets_get_only_the_literature() -> None:
    # 5-way 1-shot, not preset paper: no Table 2; the MAML paper's protocol differs
    smoke = refs.references_for(row("maml", preset="smoke"))
    assert [m.reference.source for m in smoke] == [refs.FINN]
    assert smoke[0].protocol_text.startswith("protocol differs: ")
    imaml = refs.references_for(row("imaml", preset="smoke"))
    assert [(m.reference.method, m.reference.value) for m in imaml] == [
        ("iMAML, GD", 99.16),
        ("iMAML, Hessian-Free", 99.50),
    ]
    assert "Hessian-free" in imaml[1].protocol_text
    reptile = refs.references_for(row("reptile", preset="smoke"))
    assert [(m.reference.value, m.reference.pm) for m in reptile] == [(97.68, 0.04)]
    assert not reptile[0].same_protocol  # Reptile's own inner loop, always
    # 20-way 5-shot: the right row of each table
    assert [m.reference.value for m in refs.references_for(row("maml", 20, 5))] == [98.9]
    assert [m.reference.value for m in refs.references_for(row("fomaml", 20, 5))] == [97.9]
    assert [m.reference.value for m in refs.references_for(row("reptile", 20, 1))] == [89.43]
    assert [m.reference.value for m in refs.references_for(row("imaml", 5, 5))] == [99.67, 99.74]
    # no published value, or an unknown protocol
    assert refs.references_for(row("finetune-full")) == []
    assert refs.references_for(row("penalty", preset="smoke")) == []
    assert refs.references_for({"solver": "nosuch", "ways": 5, "shots": 1}) == []
    assert refs.references_for({"solver": "maml"}) == []  # old store: no ways/shots


def test_maml_protocol_is_the_same_protocol() -> None:
    maml_5w1s = {
        "query": 1,
        "inner_lr": 0.4,
        "inner_steps": 1,
        "eval_inner_steps": 3,
        "meta_batch": 32,
        "meta_steps": 60000,
    }
    matches = refs.references_for(row("maml", preset="smoke", **maml_5w1s))
    assert matches[0].same_protocol and matches[0].reference.value == 98.7
    fomaml = refs.references_for(row("fomaml", preset="smoke", **maml_5w1s))
    assert fomaml[0].same_protocol and (fomaml[0].reference.value, fomaml[0].reference.pm) == (
        98.3,
        0.5,
    )
    # at 20-way the MAML paper used 5 steps of 0.1
    twenty = refs.references_for(row("maml", 20, 1, preset="smoke", **maml_5w1s))[0]
    assert twenty.reference.value == 95.8 and "inner_lr 0.4 (ref 0.1)" in twenty.protocol_text


@pytest.mark.skipif("literature-5w1s" not in PRESETS, reason="no literature presets yet")
@pytest.mark.parametrize(
    ("ways", "shots", "maml", "fomaml"),
    [(5, 1, 98.7, 98.3), (5, 5, 99.9, 99.2), (20, 1, 95.8, 89.4), (20, 5, 98.9, 97.9)],
)
def test_literature_presets_match_the_maml_paper(
    ways: int, shots: int, maml: float, fomaml: float
) -> None:
    preset = f"literature-{ways}w{shots}s"
    for solver, value in (("maml", maml), ("fomaml", fomaml)):
        first = refs.references_for(row(solver, ways, shots, preset=preset))[0]
        assert first.same_protocol, first.protocol_text
        assert first.reference.value == value and first.reference.source == refs.FINN


def test_verdict_within_above_below() -> None:
    assert refs.verdict(80.0, 1.0, 82.7, None) == "below"
    assert refs.verdict(90.0, 1.0, 82.7, None) == "above"
    assert refs.verdict(82.0, 1.0, 82.7, None) == "within"
    assert refs.verdict(81.7, 1.0, 82.7, None) == "within"  # touching counts as overlap
    assert refs.verdict(82.7, None, 82.7, None) == "within"
    assert refs.verdict(98.0, 0.2, 98.7, 0.4) == "below"  # 98.2 < 98.3
    assert refs.verdict(98.2, 0.2, 98.7, 0.4) == "within"  # 98.4 >= 98.3
    assert refs.verdict(99.3, 0.3, 98.7, 0.4) == "within"
    assert refs.verdict(99.4, 0.3, 98.7, 0.4) == "within"  # 99.1 touches 99.1
    assert refs.verdict(99.5, 0.3, 98.7, 0.2) == "above"  # 99.2 > 98.9
    assert refs.verdict(None, None, 98.7, 0.4) is None


# ---------------------------------------------------------------- aggregation


def test_aggregation_over_seeds_by_hand(store: ExperimentStore) -> None:
    records = records_of(store)
    maml = next(r for r in records if r["solver"] == "maml" and r["source"] == "preset"
                and r["ways"] == 5)  # fmt: skip
    assert (maml["runs"], maml["seeds"]) == (4, 4)
    assert (maml["completed"], maml["diverged"], maml["failed"]) == (3, 1, 0)
    accs = [80.0, 82.0, 87.0]
    std = math.sqrt((3.0**2 + 1.0**2 + 4.0**2) / 2)
    assert maml["test_acc"] == pytest.approx(83.0)
    assert maml["test_std"] == pytest.approx(std)  # stored at full precision
    assert maml["test_ci95"] == pytest.approx(4.3027 * std / math.sqrt(3), rel=1e-5)
    assert maml["ci_over"] == "seeds"
    assert sum(accs) / 3 == pytest.approx(maml["test_acc"])
    # final validation accuracies 80, 60, 48 -> 62.67 %
    assert maml["val_acc"] == pytest.approx(188 / 3)
    # roughness 20, 0, 5 points -> mean 8.333 points
    assert maml["roughness"] == pytest.approx(25 / 3)
    # steps to 90%: 300, 100, 200; to 95%: 500, 100, 200
    assert maml["steps_90"] == pytest.approx(200.0)
    assert maml["steps_95"] == pytest.approx(800 / 3)
    # wall time over the completed seeds (100, 101, 102); ms/step over completed and
    # diverged (40..43); peak memory: the max, the diverged run's included
    assert maml["wall_time_s"] == pytest.approx(101.0)
    assert maml["ms_per_step"] == pytest.approx(41.5)
    assert maml["peak_memory_mb"] == 2000.0
    assert maml["meta_steps"] == 2000 and maml["source"] == "preset"
    # the reference: Table 2's 82.7 lies in 83.0 ± 8.96, but an interval that wide says
    # nothing: no verdict
    assert (maml["ref_acc"], maml["ref_pm"], maml["ref_source"]) == (82.7, None, refs.TABLE2)
    assert maml["ref_protocol"] == "same protocol"
    assert maml["vs_ref"] == "not comparable: interval ±9.0 wider than ±5"
    assert "98.7 ± 0.4" in maml["other_refs"]
    assert maml["other_refs"].endswith(": not comparable: protocol differs")


def test_one_seed_uses_its_own_interval_and_configs_are_separate(store: ExperimentStore):
    records = records_of(store)
    fomaml = next(r for r in records if r["solver"] == "fomaml")
    assert (fomaml["test_acc"], fomaml["test_ci95"], fomaml["ci_over"]) == (70.0, 2.0, "test tasks")
    assert fomaml["test_std"] is None and fomaml["roughness"] is None  # 3 evaluations only
    assert fomaml["vs_ref"] == "below"  # 72.0 < 74.8
    tuned = [r for r in records if r["solver"] == "maml" and r["source"] == "tuned"]
    assert len(tuned) == 1 and tuned[0]["runs"] == 1 and tuned[0]["test_acc"] == 95.0
    assert tuned[0]["vs_ref"] == "not comparable: protocol differs"
    assert "inner_lr 0.05" in tuned[0]["ref_protocol"]
    # what the tuned row changed, against the solver's other configuration in the setting
    assert tuned[0]["differs"] == "inner_lr=0.05"
    preset = [r["differs"] for r in records if r["solver"] == "maml" and r["source"] == "preset"]
    assert preset == ["inner_lr=0.01", None]  # the 20-way row has no peer
    assert fomaml["differs"] is None
    finetune = next(r for r in records if r["solver"] == "finetune-full")
    assert finetune["ref_acc"] is None and finetune["vs_ref"] is None
    assert finetune["other_refs"] is None


def test_grouped_by_setting_in_table_2_order(store: ExperimentStore) -> None:
    records = records_of(store)
    assert [(r["setting"], r["solver"], r["source"]) for r in records] == [
        ("5-way 1-shot, paper", "finetune-full", "preset"),
        ("5-way 1-shot, paper", "fomaml", "preset"),
        ("5-way 1-shot, paper", "maml", "preset"),
        ("5-way 1-shot, paper", "maml", "tuned"),
        ("20-way 5-shot, paper", "maml", "preset"),
    ]
    twenty = records[-1]
    assert (twenty["ref_acc"], twenty["ref_pm"]) == (98.9, 0.2)
    assert twenty["vs_ref"] == "not comparable: protocol differs"
    assert twenty["ref_source"] == refs.FINN and twenty["ref_protocol"].startswith("protocol")
    tables = summary_tables(records, store.read("runs"), title="exp")
    titles = [t.title for t in tables if isinstance(t, Table)]
    assert titles == ["5-way 1-shot, paper — exp", "20-way 5-shot, paper — exp"]
    text = render(tables)
    assert "83.00 ± 8.96" in text and "82.7 T2: n/c, CI ±9.0 wider than ±5" in text
    assert "≠ 98.9±0.2 MAML'17" in text and "MAML'17: " not in text  # no verdict
    assert "≠ 82.7 T2" in text  # the tuned config: Table 2, other settings
    assert "roughness: mean absolute" in text and "Student-t" in text  # notes under the last
    assert text.index("finetune-full") < text.index("fomaml") < text.index("│ maml")
    # best values per setting: the tuned MAML's accuracy in the first table; the single
    # row of the second setting is not highlighted
    console = Console(record=True, width=250, force_terminal=True, color_system="standard")
    for table in tables:
        console.print(table)
    styled = console.export_text(styles=True)
    assert "\x1b[1;32m95.00 ± 2.00" in styled
    assert "\x1b[1;32m96.00" not in styled


def test_old_store_and_a_single_run(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "old")
    old = pa.table({"run_id": ["old-1"], "solver": ["fomaml"], "status": ["completed"],
                    "test_acc_mean": [0.5]})  # fmt: skip
    (store.root / "runs").mkdir(parents=True)
    pq.write_table(old, store.root / "runs" / "old-1.parquet")
    runs = store.read("runs")
    records = aggregate_runs(runs, store.read("curves"))
    assert len(records) == 1
    only = records[0]
    assert only["setting"] == "?-way ?-shot, ?" and only["test_acc"] == 50.0
    assert only["test_ci95"] is None and only["ref_acc"] is None and only["roughness"] is None
    text = render(summary_tables(records, runs, title="old"))
    assert "50.00" in text and "—" in text
    assert json.loads(render_flat(records, "json"))[0]["test_acc"] == 50.0
    assert summary_arrow(records).schema == SUMMARY_SCHEMA
    # one ordinary run
    single = ExperimentStore(tmp_path / "one")
    single.write_run(fake_run("maml", 0, CURVES[0], 80.0))
    (rec,) = aggregate_runs(single.read("runs"), single.read("curves"))
    assert (rec["runs"], rec["test_acc"], rec["test_ci95"], rec["ci_over"]) == (
        1,
        80.0,
        2.0,
        "test tasks",
    )
    assert rec["roughness"] == pytest.approx(20.0) and rec["steps_90"] == 300.0
    assert render(summary_tables([rec], single.read("runs")))


def test_per_run_records(store: ExperimentStore) -> None:
    rows = run_records(store.read("runs"), store.read("curves"))
    assert len(rows) == 8 and set(rows[0]) == set(RUN_RECORD_SCHEMA.names)
    seed0 = next(r for r in rows if r["solver"] == "maml" and r["seed"] == 0
                 and r["source"] == "preset" and r["setting"].startswith("5-way"))  # fmt: skip
    assert seed0["roughness"] == pytest.approx(20.0)
    assert (seed0["steps_90"], seed0["steps_95"]) == (300, 500)
    assert seed0["test_acc"] == 80.0 and seed0["evaluations"] == 5
    diverged = next(r for r in rows if r["status"] == "diverged")
    assert diverged["evaluations"] == 1 and diverged["test_acc"] is None


# ---------------------------------------------------------------- formats and storage


def test_every_format_is_the_same_table(store: ExperimentStore) -> None:
    records = records_of(store)
    names = SUMMARY_SCHEMA.names
    assert all(list(r) == names for r in records)
    as_json = json.loads(render_flat(records, "json"))
    assert as_json == records
    rows = list(csv.reader(io.StringIO(render_flat(records, "csv"))))
    assert rows[0] == names and len(rows) == len(records) + 1
    for record, line in zip(records, rows[1:]):
        assert line == ["" if record[n] is None else str(record[n]) for n in names]
    captions = caption_lines(store.read("runs"))
    markdown = render_flat(records, "markdown", captions=captions).splitlines()
    table = [line for line in markdown if line.startswith("|")]
    assert len(table) == 2 + len(records)
    assert markdown[len(table)] == "" and markdown[len(table) + 1].startswith("- 5-way 1-shot")
    assert [c.strip() for c in table[0].strip("|").split("|")] == names
    for record, line in zip(records, table[2:]):
        cells = [c.strip().replace("\\|", "|") for c in line[2:-2].split(" | ")]
        assert cells == [plain_cell(record[n], n) for n in names]
    # Markdown rounds for reading; the stored and machine-readable values do not
    maml = next(r for r in records if r["solver"] == "maml" and r["ways"] == 5)
    assert plain_cell(maml["test_ci95"], "test_ci95") == "8.96"
    assert maml["test_ci95"] != round(maml["test_ci95"], 2)
    with pytest.raises(ValueError, match="unknown format"):
        render_flat(records, "xml")


def test_report_writes_summary_parquet(store: ExperimentStore, tmp_path: Path) -> None:
    console = Console(record=True, width=250, color_system=None)
    report(str(store.root), tmp_path, console)
    text = console.export_text()
    assert "5-way 1-shot, paper" in text and "20-way 5-shot, paper" in text
    stored = pq.read_table(store.root / "summary.parquet")
    assert stored.schema == SUMMARY_SCHEMA
    assert stored.to_pylist() == records_of(store)
    assert not list(store.root.glob(".tmp-*"))
    # computed again from the store every time: a new run shows up
    store.write_run(fake_run("fomaml", 1, [40.0, 60.0, 70.0], 74.0))
    out = tmp_path / "report.md"
    report(str(store.root), tmp_path, console, fmt="markdown", output=out)
    fomaml = [r for r in pq.read_table(store.root / "summary.parquet").to_pylist()
              if r["solver"] == "fomaml"]  # fmt: skip
    assert fomaml[0]["runs"] == 2 and fomaml[0]["ci_over"] == "seeds"
    assert out.read_text().startswith("| setting | ways |")
    runs_csv = tmp_path / "runs.csv"
    report(str(store.root), tmp_path, console, fmt="csv", output=runs_csv, show_runs=True)
    assert next(csv.reader(io.StringIO(runs_csv.read_text()))) == RUN_RECORD_SCHEMA.names
    console = Console(record=True, width=250, color_system=None)
    report(str(store.root), tmp_path, console, show_runs=True)
    assert "per run" in console.export_text()


def test_cli_report_json_and_invalid_format(store: ExperimentStore, tmp_path: Path) -> None:
    proc = run_main("report", "-e", "exp", "--out", str(tmp_path), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == records_of(store)
    assert (store.root / "summary.parquet").is_file()
    bad = run_main("report", "-e", "exp", "--out", str(tmp_path), "--format", "xml", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raybench: error: ") and "xml" in lines[0]


def test_the_caption_names_each_solvers_own_tuned_values(tmp_path: Path) -> None:
    """Tuned runs differ per solver: the caption says which value is whose, not ``a/b``."""
    store = ExperimentStore(tmp_path / "tuned")
    for solver, lr in (("fomaml", 0.044), ("imaml", 0.778), ("reptile", 0.044)):
        store.write_run(fake_run(solver, 0, [50.0], 60.0, overrides={"inner_lr": lr}))
    (line, *_) = caption_lines(store.read("runs"))
    assert "inner lr 0.044 (fomaml, reptile), 0.778 (imaml) x 5 steps" in line, line
    assert "outer lr 0.001," in line  # one value for all: said once
    store.write_run(fake_run("fomaml", 1, [50.0], 60.0, overrides={"inner_lr": 0.3}))
    (line, *_) = caption_lines(store.read("runs"))
    assert "inner lr 0.044/0.3/0.778 x" in line  # a solver with several values: all of them
