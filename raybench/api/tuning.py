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
        solvers, preset: names, comma-separated text or ``"all"`` (the default); the
            preset (default ``"paper"``). ``settings``: overrides (a mapping or
            ``key=value`` texts); ``device``: auto, cpu or cuda.
        trials, steps, seeds, final_steps, search_seed: the protocol's rules (trials per
            solver, default 32; meta-steps per trial, default 500; the final runs' seeds,
            a count or the seeds; their length; the sampler's seed), also readable from
            ``protocol_file`` (YAML or JSON), which given rules must agree with;
            ``unequal_budgets`` allows solvers different trial budgets.
        final, spaces, experiment: train the final runs (default); the search spaces
            (default ``./search_spaces`` or the package's); a name under ``out`` or a
            folder (default ``sweep``).
        options, address: how trials execute (:class:`raybench.search.sweep.SweepOptions`:
            concurrency, GPUs and CPUs per trial, retries); a Ray cluster.
        resume: an interrupted sweep's experiment, continued under its own protocol
            (given rules, solvers, preset, settings, device and spaces must agree).
        tracker, console, force: ``"mlflow"`` and/or ``"tensorboard"`` (``tracker_uri``:
            MLflow's URI); where progress goes (a new Rich console by default); create
            the experiment even in a system or foreign folder.

    Returns:
        :class:`Tuned`: the experiment and the protocol.

    Raises:
        RaybenchError: an unknown solver, preset, setting or space; disagreeing rules.

    Example::

        tuned = raybench.api.sweep("fomaml,reptile", "smoke", trials=4, steps=20, seeds=2)
        tuned.experiment.summary[["solver", "config_source", "test_acc", "tuning_gain"]]
    """
    from raybench.search.protocol import asked_rules
    from raybench.trackers import tracker_spec

    rules = {"trials": trials, "steps": steps, "seeds": seeds, "final_steps": final_steps,
             "search_seed": search_seed}  # fmt: skip
    asked = asked_rules(rules, optional_path(protocol_file))
    run = _SweepRun(
        address, dashboard, connect_timeout, log_every, tracker_spec(tracker, tracker_uri)
    )
    given = {"solvers": solvers, "preset": preset, "settings": settings, "device": device,
             "spaces": spaces, "experiment": experiment}  # fmt: skip
    plan = _sweep_plan(
        given, resume, Path(out), asked, unequal_budgets, address, force, options, final
    )
    return _execute(plan, run, console, optional_path(data_dir), resume is None)


def _sweep_plan(
    given: dict[str, Any],
    resume: str | None,
    out: Path,
    asked: Mapping[str, Any],
    unequal_budgets: bool,
    address: str | None,
    force: bool,
    options: Any,
    final: bool,
) -> _SweepPlan:
    """A resumed sweep's plan, refusing ``given`` choices that differ from it; else a new
    one from them."""
    from raybench.search.sweep import SweepOptions

    if resume is not None:
        plan = _resumed_sweep(resume, out, asked, unequal_budgets)
        refuse_changes(plan.protocol, plan.names, **given)
        return plan
    solvers, preset = given["solvers"], given["preset"]
    return _new_sweep(
        "all" if solvers is None else solvers, "paper" if preset is None else preset,
        given["settings"], given["device"], address, asked, unequal_budgets,
        optional_path(given["spaces"]), given["experiment"] or "sweep", out, force,
        options or SweepOptions(), final,
    )  # fmt: skip


@dataclass(frozen=True)
class _SweepRun:
    """How a sweep's trials and final runs reach Ray, and what they report."""

    address: str | None
    dashboard: bool
    connect_timeout: float
    log_every: float
    trackers: Any


def _execute(plan: _SweepPlan, run: _SweepRun, console: Console | None, data: Path | None,
             new: bool) -> Tuned:  # fmt: skip
    """The search, then the final runs (unless the plan has none); a new sweep's protocol
    and manifest recorded once Ray is up."""
    from raybench.execution.ray_backend import ray_session
    from raybench.results.store import ensure_writable
    from raybench.search.finals import train_finals
    from raybench.search.sweep import run_sweep

    store, protocol, options = plan.store, plan.protocol, plan.options
    ensure_writable(store.root)
    console.print(
        f"[bold]raybench sweep[/] {escape(', '.join(plan.names))}; "
        f"experiment {escape(str(store.root))}\n"
        + "\n".join(f"  {escape(line)}" for line in protocol.lines()),
        soft_wrap=True,
    )
    outcomes = []
    with ray_session(run.address, run.dashboard, run.connect_timeout):
        if new:  # recorded once the sweep is under way
            store.write_manifest("protocol", protocol.to_json())
            store.write_manifest("sweep", plan.manifest)
        run_sweep(
            protocol, store, options, console, spaces_dir=plan.spaces_dir, data_dir=data,
            trackers=run.trackers, log_every=run.log_every,
        )  # fmt: skip
        if plan.final:
            outcomes = train_finals(
                protocol, store, options, console, data, run.log_every, run.connect_timeout,
                run.trackers,
            )  # fmt: skip
    return Tuned(Experiment(store, outcomes), protocol)


@dataclass
class _SweepPlan:
    """What a sweep runs: a new one's, or an interrupted one's as it recorded them."""

    store: Any
    protocol: Any
    names: list[str]
    options: Any
    final: bool
    spaces_dir: Path | None
    manifest: dict[str, Any] | None = None  # a new sweep's, written once it is under way


def _resumed_sweep(
    resume: str, out: Path, asked: Mapping[str, Any], unequal_budgets: bool
) -> _SweepPlan:
    """An interrupted sweep's store, protocol, solvers, options and spaces, each checked
    (a damaged manifest, study or selected configuration refused before anything runs)."""
    from raybench.configfile import read_config_file
    from raybench.errors import RaybenchError
    from raybench.planning import resume_store
    from raybench.search.protocol import resumed_protocol
    from raybench.search.sweep import SweepOptions, check_spaces, check_study_db

    store = resume_store(resume, out)
    recorded = store.read_manifest("sweep")
    try:
        known = set(SweepOptions.__dataclass_fields__)
        stored_options = {k: v for k, v in recorded["options"].items() if k in known}
        options = replace(SweepOptions(**stored_options), resume=True)
        final = recorded["final"]
        spaces_dir = Path(recorded["spaces"]) if recorded.get("spaces") else None
        names = recorded["solvers"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise RaybenchError(
            f"{store.root / 'sweep.json'} is damaged (bad or missing {exc}); move it away"
        ) from None
    protocol = resumed_protocol(store, asked, check_spaces(names, spaces_dir), unequal_budgets)
    check_study_db(store.root / "optuna.db")
    for path in sorted((store.root / "best").glob("*.yaml")):
        read_config_file(path)  # the finals read them: damaged ones refused now
    return _SweepPlan(store, protocol, names, options, final, spaces_dir)


def _new_sweep(
    solvers: str | Sequence[str],
    preset: str,
    settings: Mapping[str, Any] | Sequence[str] | None,
    device: str | None,
    address: str | None,
    asked: Mapping[str, Any],
    unequal_budgets: bool,
    spaces_dir: Path | None,
    experiment: str,
    out: Path,
    force: bool,
    options: Any,
    final: bool,
) -> _SweepPlan:
    """A new sweep's protocol from the rules asked, every setting, device and search
    space checked (each solver's default a trial of its space) before its folder exists."""
    from raybench.config import check_preset
    from raybench.execution import ExecutionOptions, check_local_devices
    from raybench.planning import default_seeds, experiment_store, resolve_solvers
    from raybench.search.protocol import RULE_DEFAULTS, make_protocol
    from raybench.search.spaces import default_spaces
    from raybench.search.sweep import check_spaces
    from raybench.solvers import make_config

    check_preset(preset)
    names = resolve_solvers(names_text(solvers))
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
    store = experiment_store(experiment, out, force)
    manifest = {
        "solvers": names,
        "options": asdict(options),
        "final": final,
        "spaces": str(spaces_dir.resolve()) if spaces_dir else None,
    }
    return _SweepPlan(store, protocol, names, options, final, spaces_dir, manifest)


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
