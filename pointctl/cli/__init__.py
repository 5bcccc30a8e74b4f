"""The root ``pointctl`` command: global options and the mapping of errors to exit codes.

Every failure ends as one ``Error: ...`` line on stderr and its documented exit
code (README: Exit codes and errors)
(0 done, 1 refused, 2 invalid input, 3 not found, 4 database unavailable or schema not
upgraded); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer import _click
from typer.core import TyperGroup

from pointctl import __version__
from pointctl.cli import helpstyle, state
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
        parser = getattr(getattr(descriptor, "parameter_info", None), "parser", None)
        if param.param_type_name == "argument" and hasattr(parser, "pointctl_number"):
            try:
                parser(error.option_name)
            except PointctlError as refusal:
                return refusal.message
    return None


class PointctlGroup(TyperGroup):
    """Runs the command tree in non-standalone mode and maps every error to an exit code."""

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
        except OSError as error:  # a file named on the command line cannot be used
            if state.current.debug:
                import traceback

                traceback.print_exc()
            name = error.filename if isinstance(error.filename, str) else "the file"
            _fail(f"cannot use {name[:200]!r}: {(error.strerror or str(error)).lower()}", 2)
        except Exception as error:  # a bug or an unmapped driver error: still one clean line
            if state.current.debug:
                import traceback

                traceback.print_exc()
            _fail(f"unexpected {type(error).__name__}: {error} (run with --debug for the "
                  "traceback)", 1)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=PointctlGroup,
    name="pointctl",
    help="Administer the point economy of a loyalty program: accounts, sources, the ledger, "
         "expiration and reports.",
    no_args_is_help=True,
    add_completion=True,
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
) -> None:
    from pointctl.core.validation import MAX_ACTOR_LENGTH, check_text

    state.current = state.Settings(
        db_url=db, actor=(actor or "").strip() or state.default_actor(), debug=debug,
        read_only=read_only,
    )
    check_text(state.current.actor, what="--actor", max_length=MAX_ACTOR_LENGTH)
    from pointctl.core import clock

    clock.set_zone_loader(state.program_zone_name)


def _register() -> None:
    from pointctl.cli import (
        accounts,
        batch,
        config,
        customer,
        db,
        expire,
        ledger,
        report,
        restrictions,
        sources,
    )

    app.add_typer(db.app, name="db")
    app.add_typer(accounts.app, name="accounts")
    app.add_typer(sources.app, name="sources")
    app.add_typer(restrictions.app, name="restrictions")
    ledger.register(app)
    customer.register(app)
    batch.register(app)
    app.add_typer(expire.app, name="expire")
    app.add_typer(report.app, name="report")
    report.register(app)
    app.add_typer(config.app, name="config")


_register()


def main() -> None:
    """Console-script entry point."""
    typer.main.get_command(app).main(prog_name="pointctl")
