"""``pointctl restrictions ...``: frequency limits on sources."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.complete import source_names
from pointctl.cli.numbers import whole
from pointctl.cli.options import FormatOption
from pointctl.cli.render import OutputFormat, emit_result, emit_rows

app = typer.Typer(help="Restrictions: at most N points from a source per rolling window, per "
                       "customer or in total.", no_args_is_help=True)

IdArg = Annotated[int, typer.Argument(metavar="ID", parser=whole("ID"),
    help="Restriction id (see 'list').")]
MaxPointsOption = Annotated[int | None, typer.Option(
    "--max-points", metavar="N", parser=whole("--max-points"),
    help="At most N points (> 0) in any window.")]
PerOption = Annotated[str | None, typer.Option(
    "--per", metavar="DURATION", help="The rolling window: 30min, 12h, 1d, 1w, 1mo, ...")]
COLUMNS = [
    ("id", "id"), ("source", "source"), ("scope", "scope"), ("max_points", "max points"),
    ("per", "window"), ("used", "used now"), ("used_by", "by"), ("left", "left"),
]


def _services() -> Any:
    from pointctl.services import restrictions

    return restrictions


def _rule(result: dict[str, Any]) -> str:
    scope = "per customer" if result["scope"] == "per customer" else "in total"
    return (f"restriction #{result['id']}: at most {result['max_points']} points {scope} per "
            f"{result['per']} from {result['source']!r}")


@app.command()
@state.writes
def add(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="Source name.",
                                              autocompletion=source_names)],
    max_points: Annotated[int, typer.Option(
        "--max-points", metavar="N", parser=whole("--max-points"),
    help="At most N points (> 0) in any window.")],
    per: Annotated[str, typer.Option(
        "--per", metavar="DURATION", help="The rolling window: 30min, 12h, 1d, 1w, 1mo, ...")],
    per_customer: Annotated[bool, typer.Option(
        "--per-customer", help="Limit each customer (default: all customers together).")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Add a restriction to a source; every restriction of a source must hold."""
    result = state.call(_services().add_restriction, write=True, source=source,
                        max_points=max_points, per=per, per_customer=per_customer,
                        actor=state.current.actor)
    note = f"Added {_rule(result)}" if result["changed"] else \
        f"{_rule(result)} exists already; nothing changed"
    emit_result(result, fmt, COLUMNS, note)


@app.command("list")
def list_(
    source: Annotated[str | None, typer.Argument(
        metavar="[SOURCE]", help="Only this source's restrictions.",
        autocompletion=source_names)] = None,
    user: Annotated[str | None, typer.Option(
        "--user", "-u", help="Show this customer's use of per-customer restrictions (default: the "
                       "busiest customer's).")] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List restrictions with the points used in the window ending now."""
    rows = state.call(_services().list_restrictions, write=False, source=source, user=user)
    emit_rows(rows, fmt, COLUMNS, title="Restrictions", empty="No restrictions.")


@app.command()
@state.writes
def edit(
    restriction_id: IdArg,
    max_points: MaxPointsOption = None,
    per: PerOption = None,
    per_customer: Annotated[bool | None, typer.Option(
        "--per-customer/--system", help="Limit each customer, or all customers together.")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Change a restriction's maximum, window or scope."""
    result = state.call(_services().edit_restriction, write=True, restriction_id=restriction_id,
                        max_points=max_points, per=per, per_customer=per_customer,
                        actor=state.current.actor)
    note = f"Changed {_rule(result)} ({result['changes']})" if result["changed"] else \
        f"{_rule(result)} is already so; nothing changed"
    emit_result(result, fmt, COLUMNS, note)


@app.command()
@state.writes
def delete(restriction_id: IdArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Delete a restriction (recorded in the audit log)."""
    result = state.call(_services().delete_restriction, write=True,
                        restriction_id=restriction_id, actor=state.current.actor)
    emit_result(result, fmt, COLUMNS, f"Deleted {_rule(result)}")
