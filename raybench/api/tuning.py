"""Tuning from Python: :func:`sweep` (``raybench sweep``): every solver searched under one
protocol with Ray Tune + Optuna, then each solver's default and selected configuration
trained on the protocol's seeds, tested and stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from raybench.api.parameters import checked
from raybench.api.reading import Experiment, PathLike, optional_path
from raybench.api.training import names_text, setting_overrides
from raybench.errors import ParameterError
from raybench.execution.options import DEFAULTS as RUN_DEFAULTS

if TYPE_CHECKING:
    from rich.console import Console

    from raybench.execution import ExecutionOptions
    from raybench.search.protocol import Protocol
    from raybench.search.sweep import SweepOptions


@dataclass(frozen=True)
class Tuned:
    """What :func:`sweep` made: the experiment (its trials, ``best/`` configurations and
    final runs; this call's final runs and how each ended in ``experiment.outcomes``) and
    the protocol every solver was tuned under."""

    experiment: Experiment
    protocol: Protocol

    @property
    def failed(self) -> bool:
        """Whether a final run of this call failed."""
        return any(o.status == "failed" for o in self.experiment.outcomes)


@checked("sweep")
def sweep(
    solvers: str | Sequence[str] | None = None,
    preset: str | None = None,
    *,
    settings: Mapping[str, Any] | Sequence[str] | None = None,
    trials: int | None = None,
    steps: int | None = None,
    seeds: int | Sequence[int] | None = None,
    final_steps: int | None = None,
    search_seed: int | None = None,
    protocol_file: PathLike | None = None,
    unequal_budgets: bool = False,
    final: bool = True,
    spaces: PathLike | None = None,
    device: str | None = None,
    experiment: str | None = None,
    out: PathLike = "outputs",
    data_dir: PathLike | None = None,
    options: SweepOptions | None = None,
    address: str | None = None,
    dashboard: bool = False,
    resume: str | None = None,
    log_every: float = RUN_DEFAULTS.log_every,
    connect_timeout: float = RUN_DEFAULTS.connect_timeout,
    tracker: str | Sequence[str] | None = None,
    tracker_uri: str | None = None,
    console: Console | None = None,
    force: bool = False,
) -> Tuned:
    """Tune every solver under one protocol (the default configuration first, Optuna TPE,
    ASHA, selection on validation), then train each solver's default and selected
    configuration with the same seeds and test them, as ``raybench sweep`` does.

    Args:
        solvers: names, comma-separated text or ``"all"`` (the default).
        preset: the preset (default ``"paper"``); ``settings`` overrides (a mapping or
            ``key=value`` texts); ``device``: auto, cpu or cuda.
        trials, steps, seeds, final_steps, search_seed: the protocol's rules (trials per
            solver, default 32; meta-steps per trial, default 500; seeds of the final runs,
            a count or the seeds; their length; the sampler's seed), each also readable
            from ``protocol_file`` (YAML or JSON), which given rules must agree with.
        unequal_budgets: allow solvers different trial budgets.
        final: train the final runs after the search (default).
        spaces: the folder of search spaces (default ``./search_spaces`` or the
            package's).
        experiment: its name under ``out`` or a folder (default ``sweep``).
        options: how trials execute (:class:`raybench.search.sweep.SweepOptions`:
            concurrency, GPUs and CPUs per trial, retries); ``address``: a Ray cluster.
        resume: an interrupted sweep's experiment: finished trials and runs are kept,
            the rest continued under its own protocol (given rules, solvers, preset,
            settings, device and spaces must agree with it; no other experiment).
        tracker: ``"mlflow"`` and/or ``"tensorboard"`` (``tracker_uri``: MLflow's URI).
        console: where progress goes (a new Rich console by default).
        force: create the experiment even in a system or foreign folder.

    Returns:
        :class:`Tuned`: the experiment and the protocol.

    Raises:
        RaybenchError: an unknown solver, preset, setting or space; rules that disagree
            with the protocol file or with the resumed sweep's protocol.

    Example::

        tuned = raybench.api.sweep("fomaml,reptile", "smoke", trials=4, steps=20, seeds=2)
        tuned.experiment.summary[["solver", "config_source", "test_acc", "tuning_gain"]]
    """
    from rich.console import Console

    from raybench.config import check_preset
    from raybench.configfile import read_config_file
    from raybench.errors import RaybenchError
    from raybench.execution import ExecutionOptions, check_local_devices
    from raybench.execution.ray_backend import ray_session
    from raybench.planning import default_seeds, experiment_store, resolve_solvers, resume_store
    from raybench.results.store import ensure_writable
    from raybench.search.finals import train_finals
    from raybench.search.protocol import (
        RULE_DEFAULTS,
        asked_rules,
        make_protocol,
        resumed_protocol,
    )
    from raybench.search.spaces import default_spaces
    from raybench.search.sweep import SweepOptions, check_spaces, check_study_db, run_sweep
    from raybench.solvers import make_config
    from raybench.trackers import tracker_spec

    out = Path(out)
    given = {"trials": trials, "steps": steps, "seeds": seeds, "final_steps": final_steps,
             "search_seed": search_seed}  # fmt: skip
    asked = asked_rules(given, optional_path(protocol_file))
    options = options or SweepOptions()
    spaces_dir = optional_path(spaces)
    trackers = tracker_spec(tracker, tracker_uri)
    if resume is not None:
        store = resume_store(resume, out)
        plan = store.read_manifest("sweep")
        try:
            known = set(SweepOptions.__dataclass_fields__)
            stored_options = {k: v for k, v in plan["options"].items() if k in known}
            options = replace(SweepOptions(**stored_options), resume=True)
            final = plan["final"]
            spaces_dir = Path(plan["spaces"]) if plan.get("spaces") else None
            names = plan["solvers"]
        except (KeyError, TypeError, AttributeError) as exc:
            raise RaybenchError(
                f"{store.root / 'sweep.json'} is damaged (bad or missing {exc}); move it away"
            ) from None
        protocol = resumed_protocol(store, asked, check_spaces(names, spaces_dir), unequal_budgets)
        check_study_db(store.root / "optuna.db")
        for path in sorted((store.root / "best").glob("*.yaml")):
            read_config_file(path)  # the finals read them: damaged ones refused now
        refuse_changes(
            protocol, names, solvers=solvers, preset=preset, settings=settings,
            device=device, spaces=spaces, experiment=experiment,
        )  # fmt: skip
    else:
        preset = "paper" if preset is None else preset
        check_preset(preset)
        names = resolve_solvers(names_text("all" if solvers is None else solvers))
        overrides = setting_overrides(settings, device=device)
        # every setting checked before anything starts, CUDA where it is asked for too
        firsts = [make_config(name, preset, overrides) for name in names]
        check_local_devices(firsts, ExecutionOptions(address=address))
        spaces_dir = spaces_dir if spaces_dir is not None else default_spaces()
        protocol = make_protocol(
            solvers=names,
            preset=preset,
            overrides=overrides,
            spaces=check_spaces(names, spaces_dir),
            trials=asked.get("trials", RULE_DEFAULTS["trials"]),
            steps=asked.get("steps", RULE_DEFAULTS["steps"]),
            seeds=asked.get("seeds", default_seeds([preset])),
            final_steps=asked.get("final_steps"),
            search_seed=asked.get("search_seed", RULE_DEFAULTS["search_seed"]),
            grace=asked.get("grace"),
            reduction_factor=asked.get("reduction_factor", 3),
            unequal_budgets=unequal_budgets,
        )
        for space in check_spaces(names, spaces_dir):  # the default must be a trial
            space.default_point(
                make_config(space.solver, preset, {**overrides, "meta_steps": protocol.steps})
            )
        store = experiment_store(experiment or "sweep", out, force)
        manifest = {
            "solvers": names,
            "options": asdict(options),
            "final": final,
            "spaces": str(spaces_dir.resolve()) if spaces_dir else None,
        }
    ensure_writable(store.root)
    console = console or Console()
    console.print(
        f"[bold]raybench sweep[/] {escape(', '.join(names))}; "
        f"experiment {escape(str(store.root))}\n"
        + "\n".join(f"  {escape(line)}" for line in protocol.lines()),
        soft_wrap=True,
    )
    data = optional_path(data_dir)
    outcomes = []
    with ray_session(address, dashboard, connect_timeout):
        if resume is None:  # recorded once the sweep is under way
            store.write_manifest("protocol", protocol.to_json())
            store.write_manifest("sweep", manifest)
        run_sweep(
            protocol,
            store,
            options,
            console,
            spaces_dir=spaces_dir,
            data_dir=data,
            trackers=trackers,
            log_every=log_every,
        )
        if final:
            outcomes = train_finals(
                protocol, store, options, console, data, log_every, connect_timeout, trackers
            )
    return Tuned(Experiment(store, outcomes), protocol)


def refuse_changes(
    protocol: Protocol,
    names: Sequence[str],
    *,
    solvers: str | Sequence[str] | None,
    preset: str | None,
    settings: Mapping[str, Any] | Sequence[str] | None,
    device: str | None,
    spaces: PathLike | None,
    experiment: str | None,
) -> None:
    """A resumed sweep continues what it started: each of these given (not None) must
    say what the stored protocol says, else one line naming every change."""
    from raybench.planning import resolve_solvers
    from raybench.search.spaces import load_space
    from raybench.solvers import make_config

    changed: list[tuple[str, str]] = []
    if experiment is not None:
        changed.append(("experiment", f"{experiment} is another experiment"))
    if solvers is not None and set(resolve_solvers(names_text(solvers))) != set(names):
        changed.append(("solvers", f"{', '.join(names)} were tuned"))
    if preset is not None and preset != protocol.preset:
        changed.append(("preset", f"{protocol.preset} was tuned"))
    if device is not None and device != protocol.overrides.get("device", "auto"):
        changed.append(("device", f"the sweep ran on {protocol.overrides.get('device', 'auto')}"))
    if settings:
        given = {**protocol.overrides, **setting_overrides(settings)}  # a restatement is fine
        for name in names:
            before = make_config(name, protocol.preset, protocol.overrides).to_dict()
            if make_config(name, protocol.preset, given).to_dict() != before:
                stored = " ".join(f"{k}={v}" for k, v in sorted(protocol.overrides.items()))
                changed.append(("settings", f"the sweep set {stored or 'none'}"))
                break
    if spaces is not None:
        folder = Path(spaces)
        given_spaces = {n: load_space(n, folder).describe() for n in names}
        if given_spaces != {n: protocol.spaces.get(n) for n in names}:
            changed.append(("spaces", "the sweep's spaces differ"))
    if changed:
        raise ParameterError(
            "{resume} continues the sweep as it was started, and "
            + "; ".join(
                f"{{{name}}} changes it ({{why{i}}})" for i, (name, _) in enumerate(changed)
            )
            + ": leave them out, or start a new experiment",
            **{f"why{i}": why for i, (_, why) in enumerate(changed)},
        )


@dataclass(frozen=True)
class Replicated:
    """What :func:`replicate` made: the replication's experiment (this call's runs and how
    each ended in ``experiment.outcomes``), its seeds, and the comparison's rows (one per
    verdict of the published tables: ``raybench.report.replication.FIELDS``)."""

    experiment: Experiment
    seeds: tuple[int, ...]
    rows: list[dict[str, Any]]

    @property
    def held(self) -> int:
        """How many of the published verdicts the replication gave again."""
        return sum(1 for r in self.rows if r["same"])


@checked("replicate")
def replicate(
    published: PathLike,
    into: str | None = None,
    *,
    seeds: str | Sequence[int] | None = None,
    out: PathLike = "outputs",
    data_dir: PathLike | None = None,
    execution: ExecutionOptions | None = None,
    console: Console | None = None,
    force: bool = False,
) -> Replicated:
    """A published sweep's final runs trained again on fresh seeds (every solver's default
    and selected configuration, no new search), then its verdicts compared with the
    published ones, as ``raybench replicate`` does. Runs already in the replication are
    kept: call it again to continue an interrupted one (none left: nothing trains).

    Args:
        published: the sweep, a name under ``out`` or a folder.
        into: the replication's experiment (default ``<published>-replication`` beside it).
        seeds: fresh seeds, ``"8-15"``, ``"8,9,10"`` or a sequence (default: as many as
            the published runs', the next after them).
        execution: where runs train (:class:`raybench.execution.ExecutionOptions`; default
            Ray, one CPU a run; ``backend="inline"`` in this process).
        console: where progress goes (a new Rich console by default).
        force: create the replication even in a system or foreign folder.

    Returns:
        :class:`Replicated`: the experiment, its seeds and the verdicts compared.

    Raises:
        RaybenchError: not a sweep, seeds shared with the published runs or malformed, a
            replication folder of other seeds.

    Example::

        rep = raybench.api.replicate("benchmarks/results/published", seeds="8-15")
        rep.held, len(rep.rows)
    """
    from rich.console import Console

    from raybench.api.reading import open_store
    from raybench.execution import ExecutionOptions, execute
    from raybench.planning import experiment_store
    from raybench.report.experiment import replication_records
    from raybench.results.store import ensure_writable
    from raybench.search.finals import REPLICATION_MANIFEST, parse_seeds, replication_plan
    from raybench.search.protocol import seed_text

    options = replace(execution or ExecutionOptions(), source="tuned")  # checked first
    wanted = None if seeds is None else parse_seeds(seeds)
    out = Path(out)
    source = open_store(published, out)
    where = into or str(source.root.parent / f"{source.root.name}-replication")
    target = experiment_store(where, out, force)
    plan, manifest = replication_plan(source, wanted, target)
    finished = target.finished_ids()  # once: it reads every runs file
    missing = [c for c in plan.configs if c.run_id not in finished]
    console = console or Console()
    outcomes = []
    if missing:
        ensure_writable(target.root)
        target.root.mkdir(parents=True, exist_ok=True)
        target.write_manifest(REPLICATION_MANIFEST, manifest)
        console.print(
            f"[bold]raybench replicate[/] {escape(str(source.root))} on seeds "
            f"{seed_text(manifest['seeds'])} into {escape(str(target.root))}: "
            f"{len(missing)} of {len(plan.configs)} runs to train"
        )
        data = optional_path(data_dir)  # execute opens Ray (backend "ray") for what it trains
        outcomes = execute(plan.configs, target, console, options, data, sources=plan.sources)
    rows = replication_records(source, target)
    return Replicated(Experiment(target, outcomes), tuple(manifest["seeds"]), rows)
