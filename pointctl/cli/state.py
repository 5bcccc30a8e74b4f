"""Global options of one invocation (--db, --actor, --debug, --read-only), set by the root
callback, and the calls through which every command reaches the database.

Read-only mode is enforced three times over: each command that writes is marked
``@writes`` and refuses before it reads its input or opens the database; ``call`` and
``call_rolled_back`` refuse a write transaction (a command that writes only with some options,
like ``sources inventory --adjust``); and the connection itself is opened read-only
(``db.session.make_engine``), so that even a bug cannot write.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_URL = "sqlite:///pointctl.db"
READ_ONLY_HINT = "read-only mode is on (--read-only or POINTCTL_READ_ONLY)"
ROLLED_BACK = ("works out its answer by doing the work in a transaction it rolls back, which "
               "needs write access")


def default_actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in containers without a passwd entry
        return os.environ.get("USER") or "unknown"


@dataclass
class Settings:
    db_url: str = DEFAULT_URL
    actor: str = ""
    debug: bool = False
    read_only: bool = False
    quiet: bool = False  # --quiet on a write command: no confirmation line


current = Settings()


def _command_path() -> str:
    from typer._click.globals import get_current_context

    context = get_current_context(silent=True)
    return f"'{context.command_path}'" if context is not None else "this command"


def refuse_writes(why: str = "changes the database") -> None:
    """Exit 1 in read-only mode, before anything is read or opened."""
    if current.read_only:
        from pointctl.core.errors import RefusedError

        raise RefusedError(f"{_command_path()} {why}; {READ_ONLY_HINT}")


def writes(command: F) -> F:
    """Marks a command that changes the database: refused in read-only mode, and given
    ``--quiet`` (``-q``), which drops its confirmation line."""
    return _Writes(command)  # type: ignore[return-value]


class _Writes:
    # A write command as Typer sees it: the command's parameters plus ``quiet``. The
    # signature (every annotation evaluated) is worked out when Typer builds the command, not
    # when its module is imported: ``pointctl --help`` imports every module of commands.

    __wrapped__: Callable[..., Any]

    def __init__(self, command: Callable[..., Any]) -> None:
        from pointctl.cli.options import QuietOption

        functools.update_wrapper(self, command)
        self.__annotations__ = {**command.__annotations__, "quiet": QuietOption}
        self.pointctl_writes = True  # an attribute of its own: Typer's wrapper copies it

    def __call__(self, *args: Any, quiet: bool = False, **kwargs: Any) -> Any:
        refuse_writes()
        current.quiet = quiet
        return self.__wrapped__(*args, **kwargs)

    @functools.cached_property
    def __signature__(self) -> Any:
        import inspect

        signature = inspect.signature(self.__wrapped__, eval_str=True)
        return signature.replace(parameters=[
            *signature.parameters.values(),
            inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False,
                              annotation=self.__annotations__["quiet"])])


def call(service: Callable[..., T], *, write: bool, **kwargs: Any) -> T:
    """Run one service function in the command's one transaction (commit only when ``write``).

    The database stack is imported here, not at module level, so --help stays light.
    """
    from pointctl.db.session import run_in_transaction

    if write:
        refuse_writes()
    return run_in_transaction(current.db_url, lambda session: service(session, **kwargs),
                              write=write, read_only=current.read_only)


def call_punctual(service: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """A read whose figures are as after a punctual ``expire run``: read-only first; when
    the user has evaluations due that no run has performed and a read-only transaction cannot
    apply them, once more in a rolled-back transaction. In read-only mode the ledger as
    written, and a note says so."""
    result = call(service, write=False, **kwargs)
    if result.get("late_evaluations") == "not applied" and not current.read_only:
        from pointctl.core.errors import RefusedError

        try:
            result = call_rolled_back(service, **kwargs)
        except RefusedError:  # the database refused even a transaction that writes
            pass
    if result.get("late_evaluations") == "not applied":  # read-only, or a role that reads only
        from pointctl.cli.render import message

        message("Note: expiration evaluations are due that 'pointctl expire run' has not "
                "performed yet; without write access these are the figures as the ledger "
                "stands, before them")
    return result


class _RollBack(Exception):
    def __init__(self, result: Any) -> None:
        self.result = result


def call_rolled_back(service: Callable[..., T], **kwargs: Any) -> T:
    """Run a service in one write transaction and roll it back: dry runs and previews that
    work out the answer by doing the work."""
    from pointctl.db.session import transaction

    refuse_writes(ROLLED_BACK)
    try:
        with transaction(current.db_url, write=True, read_only=current.read_only) as session:
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
        with transaction(current.db_url, write=False, read_only=current.read_only) as session:
            return get(session, "timezone")
    except PointctlError:  # no usable database yet (db upgrade): the command says so itself
        return None
