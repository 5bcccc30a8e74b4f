"""``pointctl config ...``: program settings (``config set timezone Europe/Berlin``)."""

from __future__ import annotations

from typing import Annotated

import typer

from pointctl.cli import state
from pointctl.cli.options import FormatOption
from pointctl.cli.render import OutputFormat, emit_result, emit_rows

app = typer.Typer(help="Program settings.", no_args_is_help=True)


@app.command("set")
def set_(
    key: Annotated[str, typer.Argument(help="The setting: timezone.")],
    value: Annotated[str, typer.Argument(help="Its value, e.g. Europe/Berlin.")],
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Change a program setting (timezone: an IANA name such as Europe/Berlin)."""
    from pointctl.services.settings import set_value

    result = state.call(set_value, write=True, key=key, value=value)
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
