"""Shell completion: the scripts for each shell, and account and source names from the
database.

``--show-completion SHELL`` prints the script of the shell named (bash, zsh, fish, powershell,
pwsh), whatever shell runs pointctl; ``--install-completion [SHELL]`` installs it (without
SHELL: for the shell that runs pointctl). The scripts and the protocol are Typer's: the shell
runs ``pointctl`` with ``_POINTCTL_COMPLETE=complete_SHELL`` and the words typed, and Typer
completes commands and options. The name callbacks below add the names of accounts and
sources wherever a command takes one. They run only while the shell asks for completions: they
read the database of ``--db`` / ``POINTCTL_DATABASE_URL`` through a read-only connection of the
database's own driver, and any problem (no database yet, server down) just means no
suggestions, never an error on the user's prompt.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pointctl.cli import state

_SHELL_SPECIAL = re.compile(r"([^\w@%+=:,./-])")
PROG = "pointctl"
COMPLETE_VAR = "_POINTCTL_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
SHELL_OPTIONS = ("--install-completion", "--show-completion")


def with_shell_values(args: list[str]) -> list[str]:
    """``--install-completion`` and ``--show-completion`` take an optional SHELL: given none
    (last on the line, or before another option) they get '' (the shell running pointctl)."""
    args = list(args)
    for index in range(len(args) - 1, -1, -1):
        if args[index] in SHELL_OPTIONS and (index + 1 == len(args)
                                             or args[index + 1].startswith("-")):
            args.insert(index + 1, "")
    return args


def _shell(ctx: Any, param: Any, value: str) -> str:
    from typer import _click

    if value:
        if value not in SHELLS:
            choices = ", ".join(f"'{shell}'" for shell in SHELLS)
            raise _click.exceptions.BadParameter(f"{value!r} is not one of {choices}", ctx=ctx,
                                                 param=param)
        return value
    from typer._completion_shared import _get_shell_name

    found = _get_shell_name()
    if found not in SHELLS:
        raise _click.exceptions.UsageError(
            f"cannot tell which shell to complete for (this one is {found or 'unknown'}); name "
            f"it: {param.opts[0]} {'|'.join(SHELLS[:3])}", ctx=ctx)
    return found


def show_script(ctx: Any, param: Any, value: str | None) -> None:
    """``--show-completion [SHELL]``: print the script of SHELL."""
    if value is None or ctx.resilient_parsing:
        return
    import typer
    from typer._completion_shared import get_completion_script

    print(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR,
                                shell=_shell(ctx, param, value)))
    raise typer.Exit(0)


def install_script(ctx: Any, param: Any, value: str | None) -> None:
    """``--install-completion [SHELL]``: install the script of SHELL where that shell reads
    it (bash: ~/.bash_completions, sourced from ~/.bashrc; zsh: ~/.zfunc; fish:
    ~/.config/fish/completions)."""
    if value is None or ctx.resilient_parsing:
        return
    import typer
    from typer._completion_shared import install

    shell, path = install(shell=_shell(ctx, param, value), prog_name=PROG,
                          complete_var=COMPLETE_VAR)
    print(f"{shell} completion installed in {path}; it works in shells opened from now on")
    raise typer.Exit(0)


def _zsh_answer(items: list[tuple[str, str | None]]) -> str:
    r"""What zsh evals (``eval $(...)`` in the zsh script): ``_arguments`` with the completions
    as a ``((value:description ...))`` list. Three readers in turn: the unquoted ``$(...)``
    splits on whitespace and eval re-joins with one space, so the whole list is one ``$'...'``
    word without whitespace (``\x20``); ``_arguments`` evals the list into words, so each item
    is single-quoted; ``_describe`` splits value from description at ``:``, so colons in
    either are ``\:``. (Typer's own format loses quotes and runs of spaces.)"""
    def quoted(text: str) -> str:
        return "'" + text.replace("'", "'\\''") + "'"

    words = [quoted(value.replace(":", "\\:") + ("" if not help else ":" + help.replace(
        ":", "\\:"))) for value, help in items]
    spec = "*: :((" + " ".join(words) + "))"
    encoded = "".join(
        (f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\U{ord(char):08x}")
        if char.isspace() or not char.isprintable()
        else "\\" + char if char in "\\'" else char for char in spec)
    return f"_arguments $'{encoded}'"


def use_typer_protocol() -> None:
    """The answers to ``_POINTCTL_COMPLETE=complete_SHELL`` in the format of Typer's scripts
    (zsh: quoted so that any name arrives whole)."""
    from typer._click.shell_completion import add_completion_class
    from typer._completion_classes import ZshComplete, _sanitize_help_text, completion_init

    class Zsh(ZshComplete):
        def complete(self) -> str:
            args, incomplete = self.get_completion_args()
            found = [(item.value, _sanitize_help_text(item.help) if item.help else None)
                     for item in self.get_completions(args, incomplete)]
            return _zsh_answer(found) if found else "_files"

    completion_init()
    add_completion_class(Zsh, "zsh")


def _database(ctx: Any) -> str:
    root = ctx.find_root() if ctx is not None else None
    url = root.params.get("db") if root is not None else None
    return url or os.environ.get("POINTCTL_DATABASE_URL") or state.DEFAULT_URL


def _read_names(url: str, table: str) -> list[str]:
    """The names of ``table``, read with the database's own driver on a read-only connection:
    a Tab press then costs little more than Python's start-up, without SQLAlchemy and the
    models (which took a second per Tab on a slow machine)."""
    from urllib.parse import unquote

    scheme, _, rest = url.partition("://")
    backend = scheme.split("+")[0]
    sql = f"SELECT name FROM {table} ORDER BY name_key"
    if backend == "sqlite":
        path = unquote(rest[1:].split("?")[0])  # sqlite:///relative.db, sqlite:////absolute.db
        if not path or path == ":memory:" or not os.path.exists(path):
            return []  # no database yet: nothing to suggest, and nothing created
        import sqlite3
        from pathlib import Path

        connection = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True)
        try:
            return [name for (name,) in connection.execute(sql)]
        finally:
            connection.close()
    if backend in ("postgresql", "postgres"):
        import psycopg

        with psycopg.connect(f"postgresql://{rest}", connect_timeout=5) as server:
            server.read_only = True
            return [name for (name,) in server.execute(sql)]
    return []


def _names(ctx: Any, kind: str, incomplete: str) -> list[str]:
    try:
        names = _read_names(_database(ctx), kind)
    except Exception:  # noqa: BLE001 - completion never fails loudly
        return []
    # names are case-insensitive: "ride" completes to "ride Share Partner", keeping what was
    # typed (the shell only offers completions that start with it)
    found = [incomplete + name[len(incomplete):] for name in names
             if name[:len(incomplete)].lower() == incomplete.lower()]
    if os.environ.get("_POINTCTL_COMPLETE") == "complete_bash":
        # bash inserts a completion as typed text: escape what the shell would read, as
        # printf %q does ("Ride\ Share\ Partner", "Kids\ \&\ Teens"); so in bash,
        # complete before typing the first such character
        found = [_SHELL_SPECIAL.sub(r"\\\1", name) for name in found]
    return found


def account_names(ctx: Any, incomplete: str) -> list[str]:
    return _names(ctx, "account", incomplete)


def source_names(ctx: Any, incomplete: str) -> list[str]:
    return _names(ctx, "source", incomplete)
