"""The one exception type users see: printed as a single line, exit code 2."""


class RaybenchError(Exception):
    """Bad input or a missing resource the user can fix; never shown with a traceback."""
