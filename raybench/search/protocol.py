"""The tuning protocol: the one rule every solver of a sweep is tuned under, written down.

A reader checks a tuned result against its protocol, as MLCommons AlgoPerf's external
tuning ruleset, benchopt and DeepOBS state theirs: every solver gets the same number of
trials from its declared search space, each trial the same meta-step budget, the same
scheduler and sampler; each solver's default configuration is its first trial, so tuning
can only match or beat it on validation; the selected configuration is the best completed
trial by final **validation** accuracy (test tasks are never seen while tuning); then the
default and the selected configuration are trained again with the same final seeds (common
random numbers) at full length and tested.

The protocol is ``<experiment>/protocol.json``, written when the sweep starts, printed by
``raybench report``; ``--resume`` continues it and refuses, in one line, a changed one.
A protocol file (``raybench sweep --protocol FILE``, YAML or JSON) sets any of
``trials``, ``steps``, ``seeds``, ``final_steps``, ``search_seed``, ``grace``,
``reduction_factor``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from raybench.config import RUN_BOUNDS
from raybench.errors import ParameterError, RaybenchError

if TYPE_CHECKING:
    from raybench.results import ExperimentStore

SELECTION = "the best completed trial by final validation accuracy (test tasks unseen)"
FILE_KEYS = (
    "trials", "steps", "seeds", "final_steps", "search_seed", "grace", "reduction_factor",
)  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    """Everything that decides which configuration a sweep selects and how it is tested."""

    preset: str  # the scale
    overrides: Mapping[str, Any]  # --set settings, for every solver
    solvers: tuple[str, ...]
    trials: Mapping[str, int]  # per solver (equal unless unequal_budgets)
    steps: int  # meta-steps of each trial
    eval_every: int  # meta-steps between evaluations: ASHA's unit
    seeds: tuple[int, ...]  # of the final runs, shared by every configuration
    final_steps: int  # meta-steps of the final runs
    search_seed: int = 0  # TPE's seed
    grace: int | None = None  # evaluations before ASHA may stop a trial (None: a quarter)
    reduction_factor: int = 3
    sampler: str = "Optuna TPE"
    scheduler: str = "ASHA (Ray Tune), on validation accuracy"
    defaults_first: bool = True
    selection: str = SELECTION
    unequal_budgets: bool = False  # allowed by --unequal-budgets
    spaces: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        """ASHA's ``max_t``: a trial's evaluations."""
        return max(1, math.ceil(self.steps / self.eval_every))

    @property
    def grace_evaluations(self) -> int:
        return self.grace if self.grace is not None else max(1, self.evaluations // 4)

    def rungs(self) -> list[int]:
        """The meta-steps at which ASHA compares trials (Ray Tune's one-bracket rungs)."""
        low, top, rf = self.grace_evaluations, self.evaluations, self.reduction_factor
        if low >= top:
            return []
        count = int(math.log(top / low) / math.log(rf) + 1)
        return sorted({min(low * rf**k * self.eval_every, self.steps) for k in range(count)})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["solvers"], data["seeds"] = list(self.solvers), list(self.seeds)
        data["trials"], data["overrides"] = dict(self.trials), dict(self.overrides)
        data["spaces"] = {k: list(v) for k, v in self.spaces.items()}
        data["rungs"] = self.rungs()  # derived: for readers of the file
        return data

    def lines(self) -> list[str]:
        """The protocol as a reader checks it, one line per rule."""
        trials = sorted(set(self.trials.values()))
        per = (
            f"{trials[0]} per solver"
            if len(trials) == 1
            else ", ".join(f"{s} {n}" for s, n in self.trials.items()) + " (unequal, as told)"
        )
        first = ", the solver's default configuration first" if self.defaults_first else ""
        rungs = ", ".join(str(r) for r in self.rungs()) or "none"
        sets = " ".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))
        return [
            f"scale: preset {self.preset}" + (f" with {sets}" if sets else ""),
            f"trials: {per}{first}",
            f"budget: {self.steps} meta-steps per trial, validation every {self.eval_every}",
            f"scheduler: {self.scheduler}, stops at meta-steps {rungs} "
            f"(reduction factor {self.reduction_factor})",
            f"sampler: {self.sampler}, seed {self.search_seed}",
            f"selection: {self.selection}",
            f"final runs: default and selected configuration, seeds {seed_text(self.seeds)}, "
            f"{self.final_steps} meta-steps, tested",
        ]


def seed_text(seeds: Sequence[int]) -> str:
    seeds = list(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def from_json(data: Mapping[str, Any], source: object = "the stored protocol") -> Protocol:
    """A stored protocol, every field checked; a damaged one is a one-line error naming
    the field and ``source`` (the file)."""
    if not isinstance(data, Mapping):
        raise RaybenchError(f"{source} is damaged: expected a mapping of the protocol's rules")
    known = set(Protocol.__dataclass_fields__)
    values = {k: v for k, v in data.items() if k in known}
    for name, field_ in Protocol.__dataclass_fields__.items():
        required = field_.default is MISSING and field_.default_factory is MISSING
        if name not in values and not required:
            continue
        if name not in values or not _STORED_RULES[name](values[name]):
            shown = repr(values.get(name, "missing"))
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise RaybenchError(f"{source} is damaged: bad {name} {shown}; move it away")
    values["solvers"] = tuple(values["solvers"])
    values["seeds"] = tuple(values["seeds"])
    return Protocol(**values)


def read_protocol(store: ExperimentStore) -> Protocol:
    """The protocol a sweep's store holds (``protocol.json``), checked."""
    return from_json(store.read_manifest("protocol"), store.root / "protocol.json")


def read_file(path: Path) -> dict[str, Any]:
    """A protocol file's settings, checked: known keys, whole numbers where whole."""
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RaybenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RaybenchError(f"{path}: not a YAML or JSON protocol ({type(exc).__name__})") from None
    if not isinstance(body, dict):
        raise RaybenchError(f"{path}: expected a mapping of {', '.join(FILE_KEYS)}")
    for key, value in body.items():
        if key not in FILE_KEYS:
            raise RaybenchError(f"{path}: unknown key {key!r} (known: {', '.join(FILE_KEYS)})")
        if not _valid(key, value):
            raise RaybenchError(f"{path}: bad {key} {value!r}")
    return body


# Each rule's whole-number range: a search seed numpy takes, a reduction factor that makes
# rungs, counts a machine can run (beyond them Ray Tune, numpy or the clock fail late).
_STEPS = (1, int(RUN_BOUNDS["meta_steps"].high or 10**7))  # a run's meta-steps
RULE_RANGES = {
    "trials": (1, 10**6),
    "steps": _STEPS,
    "final_steps": _STEPS,
    "search_seed": (0, 2**32 - 1),
    "grace": _STEPS,
    "reduction_factor": (2, 1000),
}
SEED_RANGE = (0, int(RUN_BOUNDS["seed"].high or 2**31 - 1))  # a run's seed


def _names(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, str) for v in value)
    )


def _text_keys(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)


# What each field of a stored protocol may hold (a file written by hand or damaged is read
# by report, replicate and sweep --resume).
_STORED_RULES: dict[str, Callable[[Any], bool]] = {
    "preset": lambda v: isinstance(v, str),
    "overrides": _text_keys,
    "solvers": _names,
    "trials": lambda v: _text_keys(v) and bool(v) and _valid("trials", dict(v)),
    "steps": lambda v: _whole(v, *RULE_RANGES["steps"]),
    "eval_every": lambda v: _whole(v, *RULE_RANGES["steps"]),
    "seeds": lambda v: not isinstance(v, int) and _seeds_ok(v),
    "final_steps": lambda v: _whole(v, *RULE_RANGES["final_steps"]),
    "search_seed": lambda v: _whole(v, *RULE_RANGES["search_seed"]),
    "grace": lambda v: v is None or _whole(v, *RULE_RANGES["grace"]),
    "reduction_factor": lambda v: _whole(v, *RULE_RANGES["reduction_factor"]),
    "sampler": lambda v: isinstance(v, str),
    "scheduler": lambda v: isinstance(v, str),
    "defaults_first": lambda v: isinstance(v, bool),
    "selection": lambda v: isinstance(v, str),
    "unequal_budgets": lambda v: isinstance(v, bool),
    "spaces": lambda v: (
        _text_keys(v)
        and all(isinstance(d, list) and all(isinstance(x, dict) for x in d) for d in v.values())
    ),
}


def _valid(key: str, value: Any) -> bool:
    if key == "seeds":
        return _seeds_ok(value)
    if key == "trials" and isinstance(value, dict):
        return bool(value) and all(
            isinstance(k, str) and _whole(v, *RULE_RANGES["trials"]) for k, v in value.items()
        )
    return _whole(value, *RULE_RANGES[key])


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _seeds_ok(value: Any) -> bool:
    if _whole(value, 1, 10**4):
        return True  # a count: seeds 0..n-1
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(_whole(v, *SEED_RANGE) for v in value)
        and len(set(value)) == len(value)
    )


def seeds_of(value: int | Sequence[int]) -> tuple[int, ...]:
    return tuple(range(value)) if isinstance(value, int) else tuple(value)


def budget_problems(protocol: Protocol) -> list[str]:
    """What would give the solvers unequal budgets: unequal trial counts, or a space that
    searches a trial's length."""
    problems = []
    if len(set(protocol.trials.values())) > 1:
        problems.append(
            "unequal trials ("
            + ", ".join(f"{s} {n}" for s, n in sorted(protocol.trials.items()))
            + ")"
        )
    for solver, dims in sorted(protocol.spaces.items()):
        for dim in dims:
            if dim["key"] in ("meta_steps", "eval_every"):
                problems.append(f"{solver}'s space searches {dim['key']}")
    return problems


def check_budgets(protocol: Protocol) -> None:
    problems = budget_problems(protocol)
    if problems and not protocol.unequal_budgets:
        raise ParameterError(
            "the solvers would be tuned with unequal budgets: {problems}. Make them equal, or "
            "pass {unequal_budgets} to say so in the protocol",
            problems="; ".join(problems),
        )


def differences(stored: Protocol, asked: Protocol) -> list[str]:
    """``field: stored -> asked`` for each rule that differs (the derived rungs aside)."""
    a, b = stored.to_json(), asked.to_json()
    out = []
    for key in a:
        if a[key] != b.get(key):
            if key == "spaces":
                changed = sorted(
                    s for s in set(a[key]) | set(b[key]) if a[key].get(s) != b[key].get(s)
                )
                out.append(f"search space of {', '.join(changed)} changed")
            elif key != "rungs":
                out.append(f"{key} {_short(a[key])} -> {_short(b.get(key))}")
    return out


def _short(value: Any) -> str:
    if isinstance(value, dict) and len(set(value.values())) == 1:
        value = next(iter(value.values()))  # equal trials: the number
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def make_protocol(
    *,
    solvers: Sequence[str],
    preset: str,
    overrides: Mapping[str, Any],
    spaces: Sequence[Any],
    trials: int | Mapping[str, int],
    steps: int | None,
    seeds: int | Sequence[int],
    final_steps: int | None,
    search_seed: int = 0,
    grace: int | None = None,
    reduction_factor: int = 3,
    unequal_budgets: bool = False,
) -> Protocol:
    """The protocol of a sweep of ``solvers`` over ``spaces`` (their ``SearchSpace``),
    checked: trials for every solver, equal budgets unless ``unequal_budgets``."""
    from raybench.solvers import make_config

    base = make_config(solvers[0], preset, dict(overrides))
    if isinstance(trials, Mapping):
        missing = [s for s in solvers if s not in trials]
        extra = [s for s in trials if s not in solvers]
        if missing or extra:
            what = f"no trials for {', '.join(missing)}" if missing else ""
            what += ("; " if missing and extra else "") + (
                f"trials for {', '.join(extra)}, not swept" if extra else ""
            )
            raise RaybenchError(f"protocol: {what}")
        per_solver = {s: int(trials[s]) for s in solvers}
    else:
        per_solver = dict.fromkeys(solvers, int(trials))
    protocol = Protocol(
        preset=preset,
        overrides=dict(overrides),
        solvers=tuple(solvers),
        trials=per_solver,
        steps=steps or base.meta_steps,
        eval_every=base.eval_every,
        seeds=seeds_of(seeds),
        final_steps=final_steps or base.meta_steps,
        search_seed=search_seed,
        grace=grace,
        reduction_factor=reduction_factor,
        unequal_budgets=unequal_budgets,
        spaces={space.solver: space.describe() for space in spaces},
    )
    if protocol.grace is not None and protocol.grace > protocol.evaluations:
        raise RaybenchError(
            f"protocol: grace {protocol.grace} is more than a trial's {protocol.evaluations} "
            "evaluations"
        )
    check_budgets(protocol)
    return protocol


RULE_DEFAULTS = {"trials": 32, "steps": 500, "search_seed": 0}  # a sweep's, unless given


def asked_rules(given: Mapping[str, Any], protocol_file: Path | None) -> dict[str, Any]:
    """The rules a sweep is asked for: a protocol file's, and ``given`` (the rules passed
    one by one, None where not), which must agree with the file."""
    values = {} if protocol_file is None else read_file(protocol_file)
    for key, value in given.items():
        if value is None:
            continue
        if key in FILE_KEYS and not _valid(key, value):
            low, high = RULE_RANGES.get(key, (None, None))
            within = f" (a whole number, {low} to {high})" if low is not None else ""
            raise ParameterError("{" + key + "} {value!r} is out of range" + within, value=value)
        if key in values:
            same = (
                seeds_of(values[key]) == seeds_of(value) if key == "seeds" else values[key] == value
            )
            if not same:
                raise ParameterError(
                    "{" + key + "} {value} disagrees with {path}'s {key} {stored}; give one "
                    "of them",
                    value=value,
                    path=protocol_file,
                    key=key,
                    stored=values[key],
                )
        values[key] = value
    return values


def resumed_protocol(
    store: ExperimentStore, asked: Mapping[str, Any], spaces: Sequence[Any], unequal: bool
) -> Protocol:
    """The protocol an experiment was started with; what the resumed sweep asked for
    (``asked``: :func:`asked_rules`) must agree with it (a change is refused in one line)."""
    from dataclasses import replace

    path = store.root / "protocol.json"
    if not path.is_file():
        raise RaybenchError(
            f"{store.root} has no protocol.json (a sweep of an older raybench); its trials "
            "and runs are kept, but it cannot be resumed: start a new sweep"
        )
    stored = read_protocol(store)
    values = {k: (seeds_of(v) if k == "seeds" else v) for k, v in asked.items()}
    if "trials" in values and not isinstance(values["trials"], dict):
        values["trials"] = dict.fromkeys(stored.solvers, values["trials"])
    if unequal:
        values["unequal_budgets"] = True
    values["spaces"] = {space.solver: space.describe() for space in spaces}
    changed = differences(stored, replace(stored, **values))
    if changed:
        raise ParameterError(
            "{resume} continues {name}'s protocol, and this one differs ({changed}): resume "
            "without the change, or start a new experiment",
            name=store.name,
            changed="; ".join(changed),
        )
    return stored
