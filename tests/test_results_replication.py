"""The published experiment's replication, as the results page (docs/results.md) shows it,
is what its two stores say.

The store under ``benchmarks/results/published-replication`` must be the published final
runs again (every solver's default and selected configuration, unchanged) on fresh seeds, by
the same training code, and the table between the page's ``results: replication`` markers
exactly what ``raybench replicate`` prints from the two stores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from cli_checks import run_main

from raybench import api
from raybench.results import open_experiment

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "benchmarks" / "results" / "published"
REPLICATION = ROOT / "benchmarks" / "results" / "published-replication"
COMMAND = "raybench replicate -e benchmarks/results/published --format markdown"
START = f"<!-- results: replication: {COMMAND} -->"
END = "<!-- /results -->"


def results_page() -> str:
    """The page that shows the replication (docs/results.md; the README links to it)."""
    return (ROOT / "docs" / "results.md").read_text(encoding="utf-8")


def configuration(run: dict) -> str:
    """A run's configuration without its seed: what default and tuned runs must repeat."""
    config = json.loads(run["config_json"])
    config.pop("seed")
    return json.dumps(config, sort_keys=True)


def test_the_replication_is_the_published_final_runs_on_fresh_seeds() -> None:
    manifest = json.loads((REPLICATION / "replication.json").read_text(encoding="utf-8"))
    assert (REPLICATION / manifest["of"]).resolve() == PUBLISHED.resolve()
    published = pq.read_table(PUBLISHED / "runs").to_pylist()
    replicated = pq.read_table(REPLICATION / "runs").to_pylist()
    assert manifest["published_seeds"] == sorted({r["seed"] for r in published})
    seeds = manifest["seeds"]
    assert len(seeds) == len(manifest["published_seeds"])
    assert not set(seeds) & set(manifest["published_seeds"])  # fresh seeds
    assert {r["status"] for r in replicated} == {"completed"}
    assert len(replicated) == len(published) and len({r["run_id"] for r in replicated}) == len(
        replicated
    )
    groups = {(r["solver"], r["source"]) for r in published}
    for solver, source in groups:
        mine = [r for r in published if (r["solver"], r["source"]) == (solver, source)]
        again = [r for r in replicated if (r["solver"], r["source"]) == (solver, source)]
        assert sorted(r["seed"] for r in again) == seeds, (solver, source)
        assert {configuration(r) for r in again} == {configuration(mine[0])}, (solver, source)
    assert {(r["solver"], r["source"]) for r in replicated} == groups
    # the training code that made the published runs made these
    assert {r["code_fingerprint"] for r in replicated} == {r["code_fingerprint"] for r in published}
    assert pq.read_table(REPLICATION / "tasks").num_rows == len(replicated) * 300
    for seed in seeds:  # one initial network per seed, shared by every solver's runs
        assert len({r["init_fingerprint"] for r in replicated if r["seed"] == seed}) == 1
    assert not {r["init_fingerprint"] for r in replicated} & {
        r["init_fingerprint"] for r in published
    }
    for left_out in ("checkpoints", "progress", "tune", "locks", "manifests"):
        assert not (REPLICATION / left_out).exists(), left_out  # Parquet results only


def test_results_page_replication_table_is_what_the_stores_say(tmp_path: Path) -> None:
    """Printed again by the marker's command, on copies (reading writes summaries)."""
    text = results_page()
    start = text.index(START) + len(START) + 1
    shown = text[start : text.index(END, start)]
    results = tmp_path / "benchmarks" / "results"
    shutil.copytree(PUBLISHED, results / "published")
    shutil.copytree(REPLICATION, results / "published-replication")
    proc = run_main(*COMMAND.split()[1:], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == shown, (
        "docs/results.md's replication table drifted from its stores: "
        f"regenerate it with `{COMMAND}`"
    )


def replication_rows(tmp_path: Path) -> dict[tuple[str, str, str], dict]:
    results = tmp_path / "results"
    shutil.copytree(PUBLISHED, results / "published")
    shutil.copytree(REPLICATION, results / "published-replication")
    rows = api.replication_records(
        open_experiment("published", results),
        open_experiment("published-replication", results),
    )
    return {(r["table"], r["solver"], r["verdict"]): r for r in rows}


def test_results_page_replication_prose_is_what_the_stores_say(tmp_path: Path) -> None:
    """The paragraphs around the table: every verdict the same, the near ones, no shift."""
    rows = replication_rows(tmp_path)
    text = results_page()
    assert len(rows) == 24 and all(r["same"] for r in rows.values())
    assert "Yes, all 24." in text and "every verdict replicated" in text

    def gap(solver: str, side: str) -> float:
        tuned = {s: r[f"{side}_acc"] for (t, s, v), r in rows.items() if t == "tuned"}
        return tuned[solver] - tuned["maml"]

    near = {s: rows[("tuned", s, "vs best")]["expected"] for s in ("imaml", "penalty")}
    assert f"{near['imaml']:.2f}" == "0.84" and f"{near['penalty']:.2f}" == "0.98"
    imaml = f"narrowed from {gap('imaml', 'published'):.1f} to {gap('imaml', 'replicated'):.1f}"
    penalty = f"(0.98; {gap('penalty', 'published'):.1f} to {gap('penalty', 'replicated'):.1f})"
    assert imaml in text and penalty in text
    assert all(abs(r["shift"]) < r["shift_ci95"] for r in rows.values())
    widest = max(rows.values(), key=lambda r: r["shift_ci95"])
    assert (widest["table"], widest["solver"]) == ("defaults", "penalty")
    assert f"({widest['shift']:+.1f} ± {widest['shift_ci95']:.1f})" in text
