"""Ray's token-authentication notice, silenced for the Ray that raybench starts itself.

Ray (2.5x and later) turns token authentication on for every new local instance when
``RAY_AUTH_MODE`` is unset: it creates a token in ``~/.ray/auth_token`` if there is none and
logs "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to
opt out." at every start. raybench keeps the authentication: its embedded Ray listens on
127.0.0.1 only, but every local user and process can reach loopback, and anyone who can
talk to a Ray instance can run code as its owner, so the token is what keeps other users
of a shared machine out. Only the notice goes, because it is about a setting raybench has
already chosen: a ``RAY_AUTH_MODE`` set by the user is respected as Ray respects it, and
when connecting to a cluster (``--address``) Ray's messages are left as they are.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

LOGGER = "ray._private.authentication.authentication_token_setup"
NOTICE = "Token authentication is enabled for this Ray cluster"


class _DropNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(NOTICE)


@contextlib.contextmanager
def token_notice_silenced() -> Iterator[None]:
    """Drop Ray's token-authentication notice while an embedded Ray starts."""
    logger = logging.getLogger(LOGGER)
    notice = _DropNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)
