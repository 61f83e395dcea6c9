"""The one exception type users see: printed as a single line, exit code 2.

An error about a parameter names it as the caller spelled it: the API's keyword
(``checkpoints``) from Python, the flag (``--checkpoint``) from the command line. Such a
message is written once with the parameter's name as a format field, rendered for each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from string import Formatter


class RaybenchError(Exception):
    """Bad input or a missing resource the user can fix; never shown with a traceback."""

    def spelled(self, flags: Mapping[str, str]) -> str:
        """The message with parameters named by ``flags`` (the CLI's): a plain error has
        none to rename."""
        return str(self)


class ParameterError(RaybenchError):
    """Bad value of a named parameter. ``template`` is a :meth:`str.format` text: each
    field given in ``values`` is that value (user text, never read as a field), every other
    field a parameter's name.

    ``str()`` names parameters as the API spells them (the keyword); :meth:`spelled` as
    the CLI does, each looked up in its flags (``--name-with-dashes`` when not listed)."""

    def __init__(self, template: str, **values: object) -> None:
        self.template, self.values = template, values
        super().__init__(self._render(lambda name: name))

    def __reduce__(self) -> tuple:  # pickled as given (a Ray worker's error), not as text
        return (_parameter_error, (self.template, self.values))

    def spelled(self, flags: Mapping[str, str]) -> str:
        return self._render(lambda name: flags.get(name, "--" + name.replace("_", "-")))

    def _render(self, name_of: Callable[[str], str]) -> str:
        fields = {field for _, field, _, _ in Formatter().parse(self.template) if field}
        names = {field: name_of(field) for field in fields - set(self.values)}
        return self.template.format(**names, **self.values)


def _parameter_error(template: str, values: dict[str, object]) -> ParameterError:
    return ParameterError(template, **values)
