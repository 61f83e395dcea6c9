"""``raybench replicate``: a published sweep's final runs again on fresh seeds, and whether
its verdicts hold (:mod:`raybench.report.replication`)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from raybench.errors import RaybenchError
from raybench.execution.options import DEFAULTS as RUN_DEFAULTS

if TYPE_CHECKING:
    from raybench.results import ExperimentStore
    from raybench.trackers import TrackerSpec

MANIFEST = "replication"  # replication.json: what was replicated, on which seeds


def parse_seeds(text: str) -> tuple[int, ...]:
    """``8-15`` or ``8,9,10``: distinct non-negative seeds, in order."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            low, _, high = part.partition("-")
            seeds += range(int(low), int(high or low) + 1)
    except ValueError:
        raise RaybenchError(f"--seeds {text!r}: expected seeds like 8-15 or 8,9,10") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise RaybenchError(f"--seeds {text!r}: expected distinct non-negative seeds")
    return tuple(seeds)


def fresh_seeds(published: tuple[int, ...]) -> tuple[int, ...]:
    """As many seeds as the published ones, the next after the largest."""
    start = max(published) + 1
    return tuple(range(start, start + len(published)))


def replication_plan(
    published: ExperimentStore, seeds: tuple[int, ...] | None, target: ExperimentStore
) -> tuple[Any, dict[str, Any]]:
    """The runs to train (:class:`raybench.search.finals.FinalPlan`) and the manifest
    recorded with them; a one-line error for a store that is not a finished sweep, seeds
    shared with the published runs, or a replication folder of other seeds or another
    experiment."""
    from raybench.search.finals import final_plan
    from raybench.search.protocol import from_json, seed_text

    if not (published.root / "protocol.json").is_file():
        raise RaybenchError(
            f"{published.root} is not a sweep under a protocol (no protocol.json): "
            "nothing to replicate"
        )
    protocol = from_json(published.read_manifest("protocol"))
    seeds = fresh_seeds(protocol.seeds) if seeds is None else seeds
    shared = sorted(set(seeds) & set(protocol.seeds))
    if shared:
        raise RaybenchError(
            f"seeds {seed_text(shared)} are the published runs' own: a replication needs "
            f"fresh seeds (the published ones are {seed_text(protocol.seeds)})"
        )
    manifest = {
        # relative to the replication's folder, so a committed store names no machine's path
        "of": os.path.relpath(Path(published.root).resolve(), Path(target.root).resolve()),
        "published_seeds": list(protocol.seeds),
        "seeds": list(seeds),
    }
    if (target.root / f"{MANIFEST}.json").is_file():
        stored = target.read_manifest(MANIFEST)
        if stored.get("seeds") != manifest["seeds"] or Path(stored.get("of", "")).name != (
            Path(manifest["of"]).name
        ):
            raise RaybenchError(
                f"{target.root} replicates {Path(stored.get('of', '?')).name} on seeds "
                f"{seed_text(stored.get('seeds') or [])}: choose another --into, or the "
                "same seeds to continue it"
            )
    elif target.root.exists() and any(target.root.iterdir()):
        raise RaybenchError(f"{target.root} exists and is not a replication: choose another --into")
    return final_plan(protocol, published.root / "best", seeds), manifest


def replicate(
    *,
    published: ExperimentStore,
    target: ExperimentStore,
    seeds: tuple[int, ...] | None,
    console: Console,
    fmt: str = "rich",
    output: Path | None = None,
    data_dir: Path | None = None,
    backend: str = "ray",
    address: str | None = None,
    max_concurrent: int | None = None,
    cpus_per_run: float = RUN_DEFAULTS.cpus_per_run,
    gpus_per_run: float | None = None,
    connect_timeout: float = RUN_DEFAULTS.connect_timeout,
    log_every: float = RUN_DEFAULTS.log_every,
    tracker: TrackerSpec | None = None,
) -> list[dict[str, Any]]:
    """Train what the replication lacks (none when it is whole: no Ray starts; ``backend``
    inline: one run after another in this process), then
    compare its verdicts with the published ones; print them (``fmt`` rich or json)."""
    from raybench import api
    from raybench.execution import ExecutionOptions, execute
    from raybench.execution.session import ray_session
    from raybench.results.store import ensure_writable
    from raybench.search.protocol import seed_text

    options = ExecutionOptions(  # checked before anything is read, as for `run`
        backend=backend,
        max_concurrent=max_concurrent,
        gpus_per_run=gpus_per_run,
        cpus_per_run=cpus_per_run,
        source="tuned",
        log_every=log_every,
        connect_timeout=connect_timeout,
        tracker=tracker,
    )
    plan, manifest = replication_plan(published, seeds, target)
    finished = target.finished_ids()  # once: it reads every runs file
    missing = [c for c in plan.configs if c.run_id not in finished]
    if missing:
        ensure_writable(target.root)
        target.root.mkdir(parents=True, exist_ok=True)
        target.write_manifest(MANIFEST, manifest)
        console.print(
            f"[bold]raybench replicate[/] {published.root} on seeds "
            f"{seed_text(manifest['seeds'])} into {target.root}: "
            f"{len(missing)} of {len(plan.configs)} runs to train"
        )
        session = (
            ray_session(address, False, connect_timeout)
            if backend == "ray"
            else contextlib.nullcontext()
        )
        with session:
            execute(plan.configs, target, console, options, data_dir, sources=plan.sources)
    rows = api.replication_records(published, target)
    show(rows, console, fmt, output)
    return rows


def show(rows: list[dict[str, Any]], console: Console, fmt: str, output: Path | None) -> None:
    if fmt in ("json", "markdown"):
        text = (
            json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
            if fmt == "json"
            else replication_markdown(rows)
        )
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
        return
    console.print(replication_table(rows))


def agreement_line(rows: list[dict[str, Any]]) -> str:
    from raybench.report.replication import agreement

    held, compared, expected = agreement(rows)
    return (
        f"{held} of {compared} verdicts replicated; {expected:.1f} expected by chance alone "
        "(the probability of the same verdict when the published difference is the true one, "
        "at the published standard error and the unadjusted 5%). Shift: replicated minus "
        "published accuracy, seeds independent, same test tasks."
    )


def replication_markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table for a README, the agreement line under it."""
    out = [
        "| table | solver | verdict | published | replicated | same | P(same) | published % "
        "| replicated % | shift (95% CI) |",
        "| --- | --- | --- | --- | --- | :---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        same = "—" if r["same"] is None else ("yes" if r["same"] else "**no**")
        shift = "—" if r["shift"] is None else f"{r['shift']:+.2f} ± {r['shift_ci95']:.2f}"
        cells = [
            r["table"], r["solver"], r["verdict"], str(r["published"]),
            str(r["replicated"] or "—"), same, _pct(r["expected"]),
            _pct(r["published_acc"]), _pct(r["replicated_acc"]), shift,
        ]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join([*out, "", f"- {agreement_line(rows)}"]) + "\n"


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def replication_table(rows: list[dict[str, Any]]) -> Table:
    """The comparison as a Rich table, the count of verdicts that held under it."""
    table = Table(title="Replication on fresh seeds", caption=agreement_line(rows))
    for name, justify in (
        ("Table", "left"), ("Solver", "left"), ("Verdict", "left"), ("Published", "left"),
        ("Replicated", "left"), ("Same", "center"), ("P(same)", "right"),
        ("Published %", "right"), ("Replicated %", "right"), ("Shift ± 95% CI", "right"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        same = "—" if r["same"] is None else ("yes" if r["same"] else "[red]no[/]")
        shift = "—" if r["shift"] is None else f"{r['shift']:+.2f} ± {r['shift_ci95']:.2f}"
        table.add_row(
            r["table"], r["solver"], r["verdict"], str(r["published"]),
            str(r["replicated"] or "—"), same, _pct(r["expected"]),
            _pct(r["published_acc"]), _pct(r["replicated_acc"]), shift,
        )  # fmt: skip
    return table
