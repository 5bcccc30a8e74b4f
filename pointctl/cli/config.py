"""``pointctl config ...``: program settings (``config set timezone Europe/Berlin``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pointctl.cli import state
from pointctl.cli.options import FormatOption
from pointctl.cli.render import (
    OutputFormat,
    confirm,
    emit_record,
    emit_result,
    emit_rows,
    message,
)

app = typer.Typer(help="Program settings, and the whole program as a TOML file (apply, export).",
                  no_args_is_help=True)


@app.command("set")
@state.writes
def set_(
    key: Annotated[str, typer.Argument(help="The setting: timezone.")],
    value: Annotated[str, typer.Argument(help="Its value, e.g. Europe/Berlin.")],
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Change a program setting (timezone: an IANA name such as Europe/Berlin)."""
    from pointctl.services.settings import set_value

    result = state.call(set_value, write=True, key=key, value=value,
                        actor=state.current.actor)
    note = (f"Set {result['key']} to {result['value']}" if result["changed"]
            else f"{result['key']} is already {result['value']}; nothing changed")
    emit_result(result, fmt, [("key", "setting"), ("value", "value"),
                              ("previous", "previous")], note)


@app.command("show")
def show(fmt: FormatOption = OutputFormat.table) -> None:
    """List the program settings."""
    from pointctl.services.settings import show as run_show

    emit_rows(state.call(run_show, write=False), fmt,
              [("key", "setting"), ("value", "value"), ("meaning", "meaning")],
              title="Settings")


@app.command("apply")
@state.writes
def apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="The program as TOML (see the README).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Deactivate accounts and pause sources the file does not mention "
        "(never deletes); needs --yes.")] = False,
    yes: Annotated[bool, typer.Option(
        "--yes", help="Confirm what --prune deactivates and pauses.")] = False,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="With --dry-run: exit 0 when nothing would change, 5 when "
        "changes are pending (a drift check for CI).")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Make the database match FILE: checks the whole file, prints the plan (create / update
    field: old -> new / unchanged), applies it in one transaction."""
    from pointctl.services.program import apply as run_apply

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        from pointctl.core.errors import InvalidInputError

        raise InvalidInputError(f"cannot read {file}: {error}") from None
    if detailed_exitcode and not dry_run:
        from pointctl.core.errors import InvalidInputError

        raise InvalidInputError("--detailed-exitcode goes with --dry-run")
    kwargs = {"text": text, "prune": prune, "actor": state.current.actor, "dry_run": dry_run,
              "yes": yes}
    # a dry run does the whole work, so that it meets every refusal, then rolls it back
    result = state.call_rolled_back(run_apply, **kwargs) if dry_run else \
        state.call(run_apply, write=True, **kwargs)
    if fmt is OutputFormat.json:
        emit_record(result, fmt, [])
    else:
        emit_rows(result["steps"], fmt, [("action", "action"), ("kind", "kind"),
                                         ("name", "name"), ("text", "plan")],
                  title=f"Plan for {file.name}", empty="The file names nothing.")
    changed = result["changed"]
    if dry_run:
        confirm(f"Dry run: {changed} change{'s' if changed != 1 else ''} planned, nothing "
                "applied")
        if detailed_exitcode and changed:
            raise typer.Exit(CHANGES_PENDING)
    elif changed:
        confirm(f"Applied {file.name}: {changed} change{'s' if changed != 1 else ''}")
    else:
        confirm(f"{file.name} is already applied; nothing changed")


CHANGES_PENDING = 5  # config apply --dry-run --detailed-exitcode: the file is not applied yet


@app.command("export")
def export(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", dir_okay=False, help="Write to this file (default: stdout).")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="TIME", help="The program as it was at this moment, rebuilt from the "
        "change history (ISO-8601; without an offset: program time zone).")] = None,
) -> None:
    """The whole program as TOML, ready for 'pointctl config apply'."""
    from pointctl.services.program import to_toml

    if at is None:
        from pointctl.services.program import export as run_export

        text = to_toml(state.call(run_export, write=False))
    else:
        from pointctl.services.changes import document_at

        text = to_toml(state.call(document_at, write=False, at=at))
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        from pointctl.core.errors import InvalidInputError

        raise InvalidInputError(f"cannot write {output}: {error.strerror or error}") from None
    message(f"Wrote the program to {output}")
