"""Planning a command's runs before anything trains: which solvers, presets and seeds, which
experiment folder, what ``--resume`` continues. Values in, values out (a refusal is a
:class:`~raybench.errors.RaybenchError`), so the API and the CLI plan alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from raybench.config import RunConfig, check_preset
from raybench.errors import ParameterError, RaybenchError

if TYPE_CHECKING:
    from raybench.results import ExperimentStore


def resolve_solvers(spec: str) -> list[str]:
    """``all`` or a comma-separated list, each name checked against the registry."""
    from raybench.solvers import SOLVERS, solver_class

    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ParameterError("{solvers} is empty: give solver names or 'all'")
    if names == ["all"]:
        return list(SOLVERS)
    for name in names:
        solver_class(name)
    return list(dict.fromkeys(names))


def build_configs(
    solvers: Sequence[str],
    preset: str,
    overrides: dict[str, str],
    seeds: Sequence[int],
) -> list[RunConfig]:
    """Every (solver, seed) config, all validated before anything starts."""
    from raybench.solvers import make_config

    return [
        make_config(solver, preset, {**overrides, "seed": seed})
        for solver in solvers
        for seed in seeds
    ]


def refuse_with_resume(given: list[str]) -> None:
    """``resume`` continues runs as they were started: parameters (``given``, by their API
    names) that would define other runs (another run id) or another experiment have no
    meaning there."""
    if given:
        them = "it" if len(given) == 1 else "them"
        raise ParameterError(
            "{resume} continues the experiment's runs as they were started; "
            + ", ".join(f"{{{name}}}" for name in given)
            + " would make other runs. Leave {them} out ({solvers} narrows what is "
            "continued), or start the new runs with `raybench run ... --experiment NAME`",
            them=them,
        )


@dataclasses.dataclass(frozen=True)
class Resumption:
    """What ``--resume`` continues: the unfinished runs (narrowed to the solvers asked
    for), where each was first planned, and the lines that say so (Rich markup)."""

    configs: list[RunConfig]
    sources: dict[str, str]
    lines: list[str]


def resume_configs(store: ExperimentStore, solvers: str) -> Resumption:
    """Every unfinished run of every command in the experiment (narrowed to ``solvers``),
    each said with where it goes on from."""
    from raybench.results.plans import plan_resume

    plan = plan_resume(store)
    lines = [
        f"[yellow]{escape(str(path))}: {escape(why)}; not continued "
        f"(`raybench store check -e {escape(str(store.root))} --fix` moves it away)[/]"
        for path, why in plan.unusable_states
    ]
    configs = plan.configs
    if solvers != "all":
        wanted = set(resolve_solvers(solvers))
        configs = [c for c in configs if c.solver in wanted]
    if not configs:
        lines.append(
            f"[bold]raybench[/] nothing to resume in {escape(str(store.root))}: "
            f"{plan.finished} run(s) finished, none unfinished"
            + ("" if solvers == "all" else f" among --solvers {escape(solvers)}")
        )
        return Resumption([], plan.sources, lines)
    lines.append(
        f"[bold]raybench[/] resuming {escape(str(store.root))}: {len(configs)} unfinished "
        f"run(s) ({plan.finished} finished, kept)"
    )
    for config in configs:
        step = plan.from_step.get(config.run_id)
        if step is not None:
            where = f"from step {step} of {config.meta_steps} (saved state)"
        elif config.run_id in plan.failed:
            where = "from step 0 (stored as failed, no saved state)"
        else:
            where = "from step 0 (not started)"
        lines.append(f"  {config.solver} seed {config.seed} ({config.run_id}): {where}")
    return Resumption(configs, plan.sources, lines)


def one_preset(command: str, spec: str) -> str:
    """The one preset a command that takes one was given (``raybench COMMAND``)."""
    presets = resolve_presets(spec)
    if len(presets) != 1:
        raise ParameterError("raybench {command} takes one {preset}", command=command)
    return presets[0]


def resolve_presets(spec: str) -> list[str]:
    """One preset or a comma-separated list, each checked."""
    presets = [p.strip() for p in spec.split(",") if p.strip()]
    if not presets:
        raise ParameterError("{preset} is empty")
    for preset in presets:
        check_preset(preset)
    return list(dict.fromkeys(presets))


SMOKE_PRESETS = ("smoke",)
DEFAULT_SEEDS = 3


def default_seeds(presets: Sequence[str]) -> int:
    """One rule for ``--seeds`` in run, sweep and study: 3 seeds, the fewest with which
    the report's intervals and its paired comparison estimate seed-to-seed variation with
    more than one degree of freedom (with one seed they can only use the test tasks, and
    say so); 1 when every preset is ``smoke``, which checks that things run and measures
    nothing."""
    if presets and all(p in SMOKE_PRESETS for p in presets):
        return 1
    return DEFAULT_SEEDS


def experiment_name(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ParameterError(
            "{experiment} {name!r}: a plain visible folder name, or a folder as a path (./x)",
            name=name,
        )
    return name


def resume_store(name: str, out: Path) -> ExperimentStore:
    """An existing experiment folder, by name under ``out`` or by path."""
    from raybench.results import ExperimentStore

    for path in (out / name, Path(name)):
        if path.is_dir():
            return ExperimentStore(path)
    raise RaybenchError(f"nothing to resume: no experiment {name!r} under {out}")


def configs_from_files(
    files: Sequence[Path], overrides: dict[str, str], seeds: Sequence[int]
) -> list[RunConfig]:
    from raybench.configfile import read_config_file
    from raybench.solvers import make_config

    configs = []
    for path in files:
        solver, preset, settings = read_config_file(path)
        for seed in seeds:
            configs.append(make_config(solver, preset, {**settings, **overrides, "seed": seed}))
    return configs


def newest_experiment(out: Path) -> str:
    """The experiment under ``out`` whose runs or study tables changed last."""
    from raybench.results.store import EXPERIMENT_TABLES

    found = [
        (t.stat().st_mtime, str(p))
        for p in (out.glob("*") if out.is_dir() else [])
        for t in (p / name for name in EXPERIMENT_TABLES)
        if t.is_dir()
    ]
    if not found:
        raise RaybenchError(f"no experiments under {out}: run `raybench run` first")
    return max(found)[1]


def experiment_store(experiment: str, out: Path, force: bool = False) -> ExperimentStore:
    """``-e``'s experiment in every command that writes one: a plain name under ``out``, or
    a folder; refused in one line where results cannot or should not be written (a system
    or foreign folder unless ``force``, a kernel file system, an unwritable place)."""
    from raybench.results import ExperimentStore
    from raybench.results.conformance import name_problem
    from raybench.results.store import claim_folder, ensure_writable

    if "/" in experiment or experiment in (".", ".."):
        store = ExperimentStore(Path(experiment))
    else:
        store = ExperimentStore(out / experiment_name(experiment))
    name = store.root.resolve().name  # every stored row names the experiment so
    if not name or name_problem(name):
        raise ParameterError(
            "{experiment} {given!r}: the experiment's folder is named {name!r}, which every "
            "stored row would carry; choose a plain visible name (like sweep-2)",
            given=experiment,
            name=name,
        )
    ensure_writable(store.root)
    claim_folder(store.root, force)
    return store
