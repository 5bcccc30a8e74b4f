"""The root ``pointctl`` command: global options and the mapping of errors to exit codes.

Every failure ends as one ``Error: ...`` line on stderr and its documented exit
code (README: Exit codes and errors)
(0 done, 1 refused, 2 invalid input, 3 not found, 4 database unavailable or schema not
upgraded); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Annotated, Any

import typer
from typer import _click
from typer.models import TyperInfo

from pointctl import __version__
from pointctl.cli import complete, helpstyle, lazy, state
from pointctl.cli.lazy import Definition
from pointctl.core.errors import PointctlError

helpstyle.apply()


def _fail(message: str, code: int) -> None:
    from pointctl.db.session import redact  # only reached on errors

    one_line = " ".join(redact(message, state.current.db_url).split())
    print(f"Error: {one_line}", file=sys.stderr)
    sys.exit(code)


def _usage_message(text: str) -> str:
    """A usage error in pointctl's words: no parser wording, and the closest choice named."""
    import re

    from pointctl.core.validation import did_you_mean

    text = text.replace("Value error, ", "")
    wrong = re.search(r"'([^']*)' is not one of ((?:'[^']*'(?:, )?)+)", text)
    if wrong:
        choices = re.findall(r"'([^']*)'", wrong.group(2))
        text = text.rstrip(".") + did_you_mean(wrong.group(1), choices)
    return text


def _negative_number(error: Any) -> str | None:
    """``issue u1 -5``: the parser took -5 for an option; say what the number must be."""
    import re

    if error.ctx is None or not re.fullmatch(r"-[0-9][0-9_.,]*", error.option_name or ""):
        return None
    for param in error.ctx.command.params:
        descriptor = getattr(param, "type_descriptor", None)
        parser: Any = getattr(getattr(descriptor, "parameter_info", None), "parser", None)
        if param.param_type_name == "argument" and hasattr(parser, "pointctl_number"):
            try:
                parser(error.option_name)
            except PointctlError as refusal:
                return refusal.message
    return None


class PointctlGroup(lazy.LazyGroup):
    """The root: builds only the command that runs (``COMMANDS``), runs it in non-standalone
    mode and maps every error to an exit code."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        settings = {"pretty_exceptions_short": app.pretty_exceptions_short,
                    "rich_markup_mode": self.rich_markup_mode,
                    "suggest_commands": self.suggest_commands}
        self.commands = lazy.LazyCommands(
            {name: functools.partial(_definition, name) for name in COMMANDS}, settings)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, complete.with_shell_values(args))

    def _main_shell_completion(self, ctx_args: Any, prog_name: str,
                               complete_var: str | None = None) -> None:
        if os.environ.get(complete.COMPLETE_VAR):  # the shell asks for completions
            complete.use_typer_protocol()
        super()._main_shell_completion(ctx_args, prog_name, complete_var)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        given = list(sys.argv[1:] if args is None else args)
        for index, arg in enumerate(given, start=1):
            if "\0" in arg:  # no name, id or text holds one; PostgreSQL could not even look
                _fail(f"argument {index} contains a NUL character, which no name, id or text "
                      "may hold", 2)
        try:
            result = super().main(args=given, prog_name=prog_name or "pointctl",
                                  complete_var=complete_var, standalone_mode=False,
                                  windows_expand_args=windows_expand_args, **extra)
        except _click.exceptions.NoArgsIsHelpError as error:
            print(error.ctx.get_help() if error.ctx else "", file=sys.stdout)
            sys.exit(0)
        except _click.exceptions.NoSuchOption as error:
            _fail(_negative_number(error) or _usage_message(error.format_message()), 2)
        except _click.exceptions.UsageError as error:
            _fail(_usage_message(error.format_message()), 2)
        except _click.exceptions.ClickException as error:
            _fail(error.format_message(), error.exit_code)
        except typer.Abort:
            _fail("aborted", 1)
        except PointctlError as error:
            if state.current.debug:  # the traceback, and still the documented exit code
                import traceback

                traceback.print_exc()
            _fail(error.message, error.exit_code)
        except Exception as error:  # a bug or an unmapped driver error: still one clean line
            if state.current.debug:
                import traceback

                traceback.print_exc()
            if isinstance(error, OSError) and isinstance(error.filename, str):
                # a file named on the command line cannot be read or written
                reason = (error.strerror or str(error)).lower()
                _fail(f"cannot use {error.filename[:200]!r}: {reason}", 2)
            _fail(f"unexpected {type(error).__name__}: {error} (run with --debug for the "
                  "traceback)", 1)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=PointctlGroup,
    name="pointctl",
    help="Administer the point economy of a loyalty program: accounts, sources, the ledger, "
         "expiration and reports.",
    no_args_is_help=True,
    add_completion=False,  # --install-completion and --show-completion are the root's own
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"pointctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    db: Annotated[str, typer.Option(
        "--db", envvar="POINTCTL_DATABASE_URL", metavar="URL",
        help="Database URL: sqlite:///path.db (default sqlite:///pointctl.db) or "
             "postgresql://user@host/db.")] = state.DEFAULT_URL,
    actor: Annotated[str | None, typer.Option(
        "--actor", envvar="POINTCTL_ACTOR",
        help="Who is acting, recorded on every entry (default: the OS user).")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the traceback of an error before its one line (the exit code "
        "stays the documented one).")] = False,
    read_only: Annotated[bool, typer.Option(
        "--read-only", envvar="POINTCTL_READ_ONLY",
        help="Support mode: every command that writes is refused, and the database is opened "
             "read-only.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_version, is_eager=True,
        help="Show the version and exit.")] = False,
    install_completion: Annotated[str | None, typer.Option(
        "--install-completion", metavar="[SHELL]", callback=complete.install_script,
        is_eager=True, expose_value=False,
        help="Install completion for SHELL (bash, zsh, fish, powershell or pwsh; default: the "
             "shell running pointctl).")] = None,
    show_completion: Annotated[str | None, typer.Option(
        "--show-completion", metavar="[SHELL]", callback=complete.show_script,
        is_eager=True, expose_value=False,
        help="Print the completion script for SHELL (bash, zsh, fish, powershell or pwsh; "
             "default: the shell running pointctl), to put where you like.")] = None,
) -> None:
    from pointctl.core.validation import MAX_ACTOR_LENGTH, check_text

    state.current = state.Settings(
        db_url=db, actor=(actor or "").strip() or state.default_actor(), debug=debug,
        read_only=read_only,
    )
    check_text(state.current.actor, what="--actor", max_length=MAX_ACTOR_LENGTH)
    from pointctl.core import clock

    clock.set_zone_loader(state.program_zone_name)


# Every top-level command, in the order `pointctl --help` lists them, and the module that
# defines it: "MODULE" for a command registered on the module's `commands` app, "MODULE:app"
# for a group (the module's `app`). Only the module of the command that runs is imported.
COMMANDS = {
    "issue": "ledger", "spend": "ledger", "reverse": "ledger", "adjust": "ledger",
    "transfer": "ledger", "hold": "holds:app", "reactivate": "ledger", "balance": "ledger",
    "history": "ledger",
    "activity": "ledger", "customer": "customer", "enroll": "customer", "tier": "tiers",
    "batch": "batch",
    "verify": "report", "db": "db:app", "accounts": "accounts:app", "sources": "sources:app",
    "restrictions": "restrictions:app", "expire": "expire:app", "tiers": "tiers:app",
    "report": "report:app",
    "config": "config:app",
}


def _definition(name: str) -> Definition:
    module_name, _, group = COMMANDS[name].partition(":")
    module = import_module(f"pointctl.cli.{module_name}")
    if group:
        return TyperInfo(getattr(module, group), name=name)
    return next(info for info in module.commands.registered_commands
                if lazy.command_name(info) == name)


def main() -> None:
    """Console-script entry point."""
    typer.main.get_command(app).main(prog_name="pointctl")
