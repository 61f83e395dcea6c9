"""Whether a published sweep's verdicts replicate on fresh seeds, on fabricated stores (no
training; the command through the CLI at the smoke scale is in test_sweep.py): a verdict
that holds is said to hold, one planted to flip is found, each with the probability of the
same verdict by chance alone, and each accuracy's shift between the seed sets is the
independent-seeds comparison of the two."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from cli_checks import one_line_error, run_main
from scipy import stats
from stores import N_TASKS, run_result, sweep_store

from raybench import api
from raybench.errors import RaybenchError
from raybench.report.power import power_at
from raybench.report.replication import agreement
from raybench.report.significance import compare


def rows_by_key(rows: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(r["table"], r["solver"], r["verdict"]): r for r in rows}


def planted_flip(tmp_path: Path):
    """A published sweep (seeds 0-2) and its replication on seeds 3-5 where the penalty
    method's default, 13 points below the best when published, is planted a fifth of a
    point below it: (published store, its matrices, replication store, its matrices)."""
    published, pub = sweep_store(tmp_path / "pub", seeds=range(3))
    replicated, rep = sweep_store(
        tmp_path / "rep", seeds=range(3, 6), means={"penalty-default": 82.8}, draw=4
    )
    return published, pub, replicated, rep


def test_a_planted_flip_is_found_and_a_holding_verdict_holds(tmp_path: Path) -> None:
    published, pub, replicated, rep = planted_flip(tmp_path)
    rows = api.replication_records(published, replicated)
    by = rows_by_key(rows)
    published_rows = {r["solver"]: r for r in api.summary_records(published)}
    assert {k[0] for k in by} == {"tuned", "defaults"}
    best = by["tuned", "maml", "vs best"]
    assert best["published"] == best["replicated"] == "best" and best["same"] is True
    flipped = by["tuned", "penalty", "vs best"]
    assert flipped["published"] == "worse" and flipped["replicated"] == "tied"
    assert flipped["same"] is False
    # a difference of 13 points at this standard error replicates almost surely: the flip
    # is a fragile claim (here: planted), not chance
    penalty = published_rows["penalty"]
    assert flipped["expected"] == pytest.approx(
        power_at(penalty["vs_best"], penalty["vs_best_se"], penalty["vs_best_df"])
    )
    assert flipped["expected"] > 0.95
    # the probability the best stays best: each rival's normal approximation, multiplied
    rivals = [r for r in published_rows.values() if r["vs_best_verdict"] != "best"]
    assert len(rivals) == 2 and best["expected"] == pytest.approx(
        math.prod(stats.norm.cdf(-r["vs_best"] / r["vs_best_se"]) for r in rivals)
    )
    # the tuning gain's verdict, with the power of the replication against its estimate
    gain = by["tuned", "maml", "tuning gain"]
    maml = published_rows["maml"]
    assert gain["published"] == "significant"
    assert gain["expected"] == pytest.approx(
        power_at(maml["tuning_gain"], maml["tuning_gain_se"], maml["tuning_gain_df"])
    )
    # each accuracy's shift: replicated minus published, seeds independent, same tasks
    for key, solver, table in (
        ("penalty-default", "penalty", "tuned"),
        ("maml-tuned", "maml", "tuned"),
        ("maml-default", "maml", "defaults"),
    ):
        row = by[table, solver, "vs best"]
        expected = compare(rep[key], pub[key], paired=False)
        assert row["shift"] == pytest.approx(expected.diff)
        assert row["shift"] == pytest.approx(rep[key].mean() - pub[key].mean())
        assert row["shift_ci95"] == pytest.approx(expected.half_width)
        assert row["published_acc"] == pytest.approx(pub[key].mean())
        assert row["replicated_acc"] == pytest.approx(rep[key].mean())
    assert by["tuned", "penalty", "vs best"]["shift_p"] < 0.05
    held, compared, chance = agreement(rows)
    assert compared == len(rows) and held == sum(r["same"] for r in rows) < compared
    assert chance == pytest.approx(sum(r["expected"] for r in rows))


def test_a_replication_of_the_same_truth_mostly_agrees(tmp_path: Path) -> None:
    """No plant: the same means on fresh seeds. The clear verdicts (the best, a 13-point
    gap) hold; the whole table matches what the probabilities say, within chance."""
    published, _ = sweep_store(tmp_path / "pub", seeds=range(3))
    replicated, _ = sweep_store(tmp_path / "rep", seeds=range(3, 6), draw=5)
    rows = api.replication_records(published, replicated)
    by = rows_by_key(rows)
    assert by["tuned", "maml", "vs best"]["same"] is True
    assert by["tuned", "penalty", "vs best"]["same"] is True
    assert by["defaults", "penalty", "vs best"]["same"] is True
    for r in rows:
        assert 0.0 <= r["expected"] <= 1.0
        assert r["shift"] is not None and abs(r["shift"]) < 3 * r["shift_ci95"] + 1e-9


def test_replicate_refuses_in_one_line(tmp_path: Path) -> None:
    sweep_store(tmp_path / "outputs" / "pub", seeds=range(3))
    shared = run_main("replicate", "-e", "pub", "--seeds", "2-4", cwd=tmp_path)
    one_line_error(shared, "seeds 2", "fresh seeds")
    bad = run_main("replicate", "-e", "pub", "--seeds", "eight", cwd=tmp_path)
    one_line_error(bad, "--seeds 'eight'")
    elsewhere = run_main("replicate", "-e", "pub", "--backend", "slurm", cwd=tmp_path)
    one_line_error(elsewhere, "unknown backend 'slurm'", "ray, inline")
    assert not (tmp_path / "outputs" / "pub-replication").exists()  # refused before any write
    (tmp_path / "outputs" / "other").mkdir()
    (tmp_path / "outputs" / "other" / "notes.txt").write_text("mine")
    taken = run_main("replicate", "-e", "pub", "--into", "other", cwd=tmp_path)
    one_line_error(taken, "not a raybench experiment")
    assert (tmp_path / "outputs" / "other" / "notes.txt").read_text() == "mine"
    sweep_store(tmp_path / "outputs" / "plain", seeds=range(2))
    (tmp_path / "outputs" / "plain" / "protocol.json").unlink()
    plain = run_main("replicate", "-e", "plain", cwd=tmp_path)
    one_line_error(plain, "not a sweep under a protocol")


def test_the_replication_manifest_names_its_published_store_relatively(tmp_path: Path) -> None:
    """The committed replication.json names no machine's path: the published store is found
    from the replication's own folder, and a moved pair of stores still continues."""
    from raybench.cli.options import API_FLAGS
    from raybench.results import ExperimentStore
    from raybench.search.finals import replication_plan

    published, _ = sweep_store(tmp_path / "a" / "pub", seeds=range(3))
    target = ExperimentStore(tmp_path / "b" / "rep")
    plan, manifest = replication_plan(published, None, target)
    assert not Path(manifest["of"]).is_absolute()
    assert (target.root / manifest["of"]).resolve() == published.root.resolve()
    assert manifest["seeds"] == [3, 4, 5] and manifest["published_seeds"] == [0, 1, 2]
    assert {c.seed for c in plan.configs} == {3, 4, 5}
    target.root.mkdir(parents=True)
    target.write_manifest("replication", manifest)
    replication_plan(published, (3, 4, 5), target)  # the same seeds continue it
    with pytest.raises(RaybenchError, match="replicates pub on seeds 3-5") as other:
        replication_plan(published, (6, 7, 8), target)
    assert str(other.value).endswith("choose another into, or the same seeds to continue it")
    assert "choose another --into," in other.value.spelled(API_FLAGS)


def test_the_markdown_table_has_every_verdict_and_the_agreement(tmp_path: Path) -> None:
    from raybench.report.replication import replication_markdown

    published, _, replicated, _ = planted_flip(tmp_path)
    rows = api.replication_records(published, replicated)
    text = replication_markdown(rows)
    lines = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert len(lines) == 1 + len(rows)  # the header, then one line per verdict
    assert sum("**no**" in ln for ln in lines) == sum(not r["same"] for r in rows)
    (flip,) = [ln for ln in lines if ln.startswith("| tuned | penalty | vs best |")]
    assert "| tuned | penalty | vs best | worse | tied | **no** |" in flip
    r = rows_by_key(rows)["tuned", "penalty", "vs best"]
    assert f"{r['shift']:+.2f} ± {r['shift_ci95']:.2f}" in flip
    held, compared, chance = agreement(rows)
    assert f"- {held} of {compared} verdicts replicated; {chance:.1f} expected" in text


def test_a_replication_of_another_sweep_of_the_same_name_is_refused(tmp_path: Path) -> None:
    """Issue 46, case 2: two sweeps named ``sw`` (their protocols differ in one rule). The
    replication made for the second is refused as the first's, through the CLI before
    anything is written and from Python, and its runs are never compared with the first's."""
    import json

    from raybench.results import ExperimentStore
    from raybench.search.finals import published_identity, replication_plan

    mine, _ = sweep_store(tmp_path / "outputs" / "sw", seeds=range(3))
    other, _ = sweep_store(tmp_path / "elsewhere" / "sw", seeds=range(3))
    protocol = json.loads((other.root / "protocol.json").read_text())
    protocol["steps"] += 1
    other.write_manifest("protocol", protocol)
    assert published_identity(mine) != published_identity(other)
    _, manifest = replication_plan(other, None, ExperimentStore(tmp_path / "outputs" / "theirs"))
    target, _ = sweep_store(tmp_path / "outputs" / "theirs", seeds=range(3, 6), draw=5)
    target.write_manifest("replication", manifest)
    before = (target.root / "replication.json").read_bytes()
    mixed = run_main("replicate", "-e", "sw", "--into", "theirs", cwd=tmp_path)
    one_line_error(mixed, "replicates another sweep named sw", "choose another --into")
    assert (target.root / "replication.json").read_bytes() == before
    with pytest.raises(RaybenchError, match="replicates another sweep than"):
        api.replication_records(mine, target)
    # its own sweep reads it
    assert api.replication_records(other, target)


def test_a_replication_compares_only_the_runs_it_planned(tmp_path: Path) -> None:
    """Runs of a configuration the sweep never published, and of seeds the replication did
    not plan, change no row; a folder holding such runs is refused for training into (a
    manifest of before identities were recorded included)."""
    from raybench.results import ExperimentStore
    from raybench.search.finals import replication_plan

    published, _ = sweep_store(tmp_path / "outputs" / "pub", seeds=range(3))
    where = ExperimentStore(tmp_path / "outputs" / "pub-replication")
    _, manifest = replication_plan(published, None, where)
    replicated, _ = sweep_store(where.root, seeds=range(3, 6))
    replicated.write_manifest("replication", manifest)
    clean = api.replication_records(published, replicated)
    for seed, overrides in ((4, {"inner_lr": 0.3}), (9, {})):  # not planned: another config, seed
        result = run_result("maml", seed, np.full(N_TASKS, 1.0), overrides=overrides)
        replicated.write_run(result, source="tuned")
    assert api.replication_records(published, replicated) == clean
    del manifest["published"]  # written before a replication recorded what it replicates
    replicated.write_manifest("replication", manifest)
    assert api.replication_records(published, replicated) == clean
    refused = run_main("replicate", "-e", "pub", cwd=tmp_path)
    one_line_error(refused, "does not plan", "choose another --into")
