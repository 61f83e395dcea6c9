"""Run configurations as data: to and from the JSON stored with runs and YAML files.

A config file is what ``raybench sweep`` writes as a solver's best configuration and what
``raybench run --config`` reads back; its ``settings`` are exactly ``--set`` overrides, so a
file, the command line and the store describe a run the same way, checked the same way.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from raybench.atomic import atomic_write_bytes
from raybench.config import RUN_BOUNDS, RunConfig
from raybench.errors import RaybenchError
from raybench.solvers import make_config


def settings_of(config: RunConfig) -> dict[str, Any]:
    """Every setting of a config as overrides (solver options as ``solver.knob``)."""
    settings = {name: getattr(config, name) for name in RUN_BOUNDS}
    for knob, value in config.solver_options.items():
        settings[f"{config.solver}.{knob}"] = value
    return settings


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """A config from ``RunConfig.to_dict()`` output (e.g. a run's ``config_json``),
    validated again rather than trusted."""
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(data) - fields
    if unknown:
        raise RaybenchError(f"unknown config keys: {', '.join(sorted(unknown))}")
    solver = data.get("solver", "maml")
    overrides = {k: v for k, v in data.items() if k in RUN_BOUNDS}
    for knob, value in (data.get("solver_options") or {}).items():
        overrides[f"{solver}.{knob}"] = value
    return make_config(solver, data.get("preset", "paper"), overrides)


def config_from_json(text: str) -> RunConfig:
    return config_from_dict(json.loads(text))


def write_config_file(path: Path, config: RunConfig, note: str = "") -> None:
    """A YAML file that ``raybench run --config`` accepts."""
    body = {"solver": config.solver, "preset": config.preset, "settings": settings_of(config)}
    body["settings"].pop("seed")
    header = "".join(f"# {line}\n" for line in note.splitlines())
    atomic_write_bytes(path, (header + yaml.safe_dump(body, sort_keys=False)).encode("utf-8"))


def read_config_file(path: Path) -> tuple[str, str, dict[str, Any]]:
    """``(solver, preset, overrides)`` from a config file; one-line errors naming the file."""
    try:
        body = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RaybenchError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise RaybenchError(
            f"{path}: not UTF-8 text (byte {exc.start}); a config file is YAML, saved as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        raise RaybenchError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(body, dict) or not isinstance(body.get("solver"), str):
        raise RaybenchError(f"{path}: expected a mapping with a 'solver' key")
    unknown = set(body) - {"solver", "preset", "settings"}
    if unknown:
        raise RaybenchError(
            f"{path}: unknown key {sorted(unknown, key=str)[0]!r} (solver, preset, settings)"
        )
    settings = body.get("settings") or {}
    if not isinstance(settings, dict):
        raise RaybenchError(f"{path}: 'settings' must be a mapping of key: value")
    named = [key for key in settings if not isinstance(key, str)]
    if named:
        raise RaybenchError(f"{path}: setting {named[0]!r} is not a name (like inner_lr)")
    solver, preset = body["solver"], str(body.get("preset", "paper"))
    try:  # the file alone is a configuration: its own errors name it
        make_config(solver, preset, settings)
    except RaybenchError as exc:
        raise RaybenchError(f"{path}: {exc}") from None
    return solver, preset, dict(settings)
