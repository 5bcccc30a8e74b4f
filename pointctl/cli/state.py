"""Global options of one invocation (--db, --actor, --debug), set by the root callback."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
DEFAULT_URL = "sqlite:///pointctl.db"


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in containers without a passwd entry
        return os.environ.get("USER") or "unknown"


@dataclass
class Settings:
    db_url: str = DEFAULT_URL
    actor: str = ""
    debug: bool = False


current = Settings()


def call(service: Callable[..., T], *, write: bool, **kwargs: Any) -> T:
    """Run one service function in the command's one transaction (commit only when ``write``).

    The database stack is imported here, not at module level, so --help stays light.
    """
    from pointctl.db.session import run_in_transaction

    return run_in_transaction(current.db_url, lambda session: service(session, **kwargs),
                              write=write)


class _RollBack(Exception):
    def __init__(self, result: Any) -> None:
        self.result = result


def call_rolled_back(service: Callable[..., T], **kwargs: Any) -> T:
    """Run a service in one write transaction and roll it back: dry runs and previews that
    work out the answer by doing the work."""
    from pointctl.db.session import transaction

    try:
        with transaction(current.db_url, write=True) as session:
            raise _RollBack(service(session, **kwargs))
    except _RollBack as done:
        return done.result


def program_zone_name() -> str | None:
    """The ``timezone`` setting, read in its own short transaction (the clock asks for it the
    first time a time without an offset is read)."""
    from pointctl.core.errors import PointctlError
    from pointctl.db.session import transaction
    from pointctl.services.settings import get

    try:
        with transaction(current.db_url, write=False) as session:
            return get(session, "timezone")
    except PointctlError:  # no usable database yet (db upgrade): the command says so itself
        return None
