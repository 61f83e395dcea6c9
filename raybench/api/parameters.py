"""Every API call's arguments checked before anything runs, by the declarations the CLI
parses its flags with, so Python and the command line refuse the same values.

Each argument is checked against its annotation (``int | None``, ``Sequence[str]``,
``PathLike``, ...): a value of another kind is a :class:`~raybench.errors.ParameterError`
naming the keyword, never a ``TypeError`` from deep inside. A number is then checked against
the range its flag declares (:mod:`raybench.limits`, with which the CLI declares
``typer.Option(min=, max=)``; a keyword spelled otherwise on the command line is found
through :data:`API_FLAGS`), and against ``extra`` ranges for the keywords the command line does not
have. Everything else (a solver's name, a setting's value) is checked
by the code it concerns, as for the CLI.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from raybench.errors import ParameterError
from raybench.limits import RANGES, Range, range_of, within

F = TypeVar("F", bound=Callable[..., Any])

# Names the API's annotations use for its own classes: a value is of one when its class,
# or a base of it, has the name (no import of what it names).
_CLASSES = ("Console", "ExecutionOptions", "SweepOptions", "ExperimentStore")


def checked(command: str | None, **extra: Range) -> Callable[[F], F]:
    """The decorated API function checks each argument given by its annotation and by the
    range the CLI command ``command`` declares for it (``extra``: ranges of keywords the
    command line lacks) before its body runs."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise ParameterError(
                    "{function}: {why}", function=function.__name__, why=exc
                ) from None
            ranges = {**declared_ranges(command), **extra}
            for name, value in bound.arguments.items():
                parameter = signature.parameters[name]
                if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                    continue
                check_argument(name, value, str(parameter.annotation), ranges.get(name))
            return function(*args, **kwargs)

        call.checked_by = (command, extra)  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return decorate


def check_argument(name: str, value: Any, annotation: str, bounds: Range | None) -> None:
    """``value`` of the kind ``annotation`` says and, a number, within ``bounds``; else a
    :class:`ParameterError` naming ``name``."""
    if annotation != str(inspect.Parameter.empty) and not _is(value, annotation):
        raise ParameterError(
            "{" + name + "} {value}: expected {kind}", value=_shown(value), kind=annotation
        )
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if bounds is not None and number:
        within(name, value, bounds)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is(value: Any, annotation: str) -> bool:
    """Whether ``value`` is of the kind an annotation's text names (its alternatives split
    at the top level's ``|``)."""
    return any(_is_one(value, kind.strip()) for kind in _top_level(annotation, "|"))


def _top_level(text: str, separator: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += c == "["
        depth -= c == "]"
        if c == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _is_one(value: Any, kind: str) -> bool:
    if kind == "Any":
        return True
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "PathLike":
        return isinstance(value, str | os.PathLike)
    if kind in _CLASSES:
        return any(c.__name__ == kind for c in type(value).__mro__)
    outer, _, inner = kind.partition("[")
    inner = inner.removesuffix("]")
    if outer == "Sequence":
        return isinstance(value, list | tuple | range) and all(_is(v, inner) for v in value)
    if outer == "Mapping":
        key, item = (p.strip() for p in _top_level(inner, ","))
        return isinstance(value, Mapping) and all(
            _is(k, key) and _is(v, item) for k, v in value.items()
        )
    return True  # a kind not described here is checked where it is used


# The API's parameters whose flag is not ``--name-with-dashes``: an error about one of them
# (:class:`raybench.errors.ParameterError`) names the flag on the command line, and the flag's
# range is the keyword's.
API_FLAGS = {
    "settings": "--set",
    "source": "--from",
    "checkpoints": "--checkpoint",
    "sweeps": "--sweep",
    "config_files": "--config",
    "first_seed": "--seed",
    "threads": "--cpus-per-run",
    "rounds": "--timed-steps",
    "fmt": "--format",
    "protocol_file": "--protocol",
    "cpus_per_trial": "--cpus-per-run",
    "gpus_per_trial": "--gpus-per-run",
}


@functools.cache
def declared_ranges(command: str | None) -> dict[str, Range]:
    """Each API keyword's range in ``command`` (None: a function no command calls)."""
    if command is None:
        return {}
    ranges = {k: range_of(k, command) for k in RANGES}
    for keyword, flag in API_FLAGS.items():
        name = flag.removeprefix("--").replace("-", "_")
        if name in ranges:
            ranges[keyword] = ranges[name]
    return ranges
