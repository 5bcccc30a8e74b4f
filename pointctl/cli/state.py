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
