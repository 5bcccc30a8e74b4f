"""``pointctl sources ...``: point sources, their status machine and inventory."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.complete import account_names, source_names
from pointctl.cli.numbers import whole
from pointctl.cli.options import DescOption, FormatOption, QuietOption, SearchOption
from pointctl.cli.render import OutputFormat, emit_record, emit_result, emit_rows, message
from pointctl.core.errors import InvalidInputError

app = typer.Typer(help="Point sources: the banks points are issued from.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Source name (case-insensitive).",
                                        autocompletion=source_names)]
NewNameArg = Annotated[str, typer.Argument(metavar="NAME", help="Source name.")]
LIST_COLUMNS = [
    ("id", "id"), ("name", "name"), ("status", "status"), ("inventory", "inventory"),
    ("account_count", "accounts"),
]
FIELDS = [
    ("id", "id"), ("name", "name"), ("status", "status"), ("inventory", "inventory"),
    ("point_value", "value per point"), ("accounts", "linked accounts"),
    ("created_at", "created (UTC)"), ("updated_at", "updated (UTC)"),
]
HISTORY_COLUMNS = [
    ("entry", "entry"), ("change", "change"), ("reference_type", "type"), ("note", "note"),
    ("actor", "actor"), ("time", "time (UTC)"),
]


class SourceStatus(str, Enum):
    active = "active"
    paused = "paused"
    archived = "archived"
    all = "all"


class SourceSort(str, Enum):
    name = "name"
    status = "status"
    inventory = "inventory"
    created = "created"
    accounts = "accounts"


def _services() -> Any:
    from pointctl.services import sources

    return sources


ValueOption = Annotated[str | None, typer.Option(
    "--value", metavar="AMOUNT", help="What one point is worth, a decimal with at most 6 "
    "decimals, such as 0.01 or 0.005 (with --currency).")]
CurrencyOption = Annotated[str | None, typer.Option(
    "--currency", metavar="CODE", help="The currency of --value: an ISO 4217 code such as USD, "
    "EUR or JPY.")]


def _display(record: dict[str, Any], fmt: OutputFormat) -> dict[str, Any]:
    """Tables and CSV say 'unlimited' and '0.01 USD'; JSON keeps inventory null with
    unlimited: true, and the value and its currency apart."""
    if fmt is OutputFormat.json:
        return record
    value = record.get("point_value")
    return {**record, "inventory": "unlimited" if record["unlimited"] else record["inventory"],
            "point_value": f"{value} {record['currency']}" if value is not None else "not set"}


@app.command()
@state.writes
def create(
    name: NewNameArg,
    inventory: Annotated[int | None, typer.Option(
        "--inventory", metavar="N", parser=whole("--inventory", minimum=0),
        help="Limited inventory: points the source can still issue.")] = None,
    unlimited: Annotated[bool, typer.Option(
        "--unlimited", help="Unlimited inventory (the default when --inventory is not given).")
    ] = False,
    link: Annotated[list[str] | None, typer.Option(
        "--link", metavar="ACCOUNT", autocompletion=account_names,
        help="Link an active account (repeatable; default: every active account).")] = None,
    value: ValueOption = None,
    currency: CurrencyOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Create a point source (active; paused if created with an inventory of 0)."""
    if inventory is not None and unlimited:
        raise InvalidInputError("--inventory and --unlimited cannot be used together")
    result = state.call(_services().create_source, write=True, name=name, inventory=inventory,
                        link=link or [], actor=state.current.actor, value=value,
                        currency=currency)
    note = f"Created source {result['name']!r} (id {result['id']})"
    if result["status"] == "paused":
        note += ", paused because its inventory is 0"
    emit_result(_display(result, fmt), fmt, FIELDS, note)


@app.command("list")
def list_(
    search: SearchOption = None,
    status: Annotated[SourceStatus, typer.Option(
        "--status", case_sensitive=False, help="Show only sources in this status.")
    ] = SourceStatus.all,
    sort: Annotated[SourceSort, typer.Option(
        "--sort", case_sensitive=False, help="Sort key.")] = SourceSort.name,
    desc: DescOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List point sources with their inventory and number of linked accounts."""
    rows = state.call(
        _services().list_sources, write=False, search=search,
        status=None if status is SourceStatus.all else status.value, sort=sort.value,
        descending=desc,
    )
    emit_rows([_display(row, fmt) for row in rows], fmt, LIST_COLUMNS, title="Point sources",
              empty="No sources.")


@app.command()
def show(name: NameArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Show one point source: status, inventory, linked accounts, restrictions and inventory
    history."""
    record = state.call(_services().show_source, write=False, name=name)
    emit_record(_display(record, fmt), fmt, FIELDS, title=f"Source {record['name']}")
    if fmt is OutputFormat.table and record["restrictions"]:
        from pointctl.cli.restrictions import COLUMNS

        emit_rows(record["restrictions"], fmt, COLUMNS, title="Restrictions")
    if fmt is OutputFormat.table and record["inventory_history"]:
        emit_rows(record["inventory_history"], fmt, HISTORY_COLUMNS, title="Inventory history")


@app.command()
@state.writes
def edit(
    name: NameArg,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename the source.")] = None,
    link: Annotated[list[str] | None, typer.Option(
        "--link", metavar="ACCOUNT", autocompletion=account_names,
        help="Link an active account (repeatable).")] = None,
    unlink: Annotated[list[str] | None, typer.Option(
        "--unlink", metavar="ACCOUNT", autocompletion=account_names,
        help="Unlink an account (repeatable); a source keeps at least one.")] = None,
    value: ValueOption = None,
    currency: CurrencyOption = None,
    no_value: Annotated[bool, typer.Option(
        "--no-value", help="Clear the value per point (the points then show no money).")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Rename a source, change the accounts it deposits into, or set what its points are
    worth."""
    if new_name is None and not link and not unlink and value is None and currency is None \
            and not no_value:
        raise InvalidInputError("nothing to change: give --name, --link, --unlink, --value, "
                                "--currency or --no-value")
    result = state.call(_services().edit_source, write=True, actor=state.current.actor,
                        name=name, new_name=new_name, link=link or [], unlink=unlink or [],
                        value=value, currency=currency, clear_value=no_value)
    emit_result(_display(result, fmt), fmt, FIELDS, f"Updated source {result['name']!r}")


def _status_note(result: dict[str, Any], verb: str, status: str) -> str:
    if result["changed"]:
        return f"Source {result['name']!r} {verb}"
    return f"Source {result['name']!r} is already {status}; nothing changed"


@app.command()
@state.writes
def pause(name: NameArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Pause a source: it issues no points until activated."""
    result = state.call(_services().pause_source, write=True, name=name,
                        actor=state.current.actor)
    emit_result(_display(result, fmt), fmt, FIELDS, _status_note(result, "paused", "paused"))


@app.command()
@state.writes
def activate(name: NameArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Activate a paused or archived source (refused while its inventory is 0)."""
    result = state.call(_services().activate_source, write=True, name=name,
                        actor=state.current.actor)
    emit_result(_display(result, fmt), fmt, FIELDS,
                _status_note(result, "activated", "active"))


@app.command()
@state.writes
def archive(
    name: NameArg,
    yes: Annotated[bool, typer.Option(
        "--yes", help="Confirm: archiving expires the remaining inventory.")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Archive a paused source, expiring its remaining inventory (needs --yes)."""
    result = state.call(_services().archive_source, write=True, name=name, confirmed=yes,
                        actor=state.current.actor)
    note = _status_note(result, "archived", "archived")
    if result["expired_inventory"]:
        note += f"; {result['expired_inventory']} points of inventory expired"
    emit_result(_display(result, fmt), fmt, FIELDS, note)


@app.command()
def inventory(
    name: NameArg,
    adjust: Annotated[int | None, typer.Option(
        "--adjust", metavar="+N|-N", parser=whole("--adjust", signed=True),
        help="Add (+N) or remove (-N) inventory; recorded as an audit entry.")] = None,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Why, recorded on the audit entry.")] = None,
    quiet: QuietOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Show a source's inventory and its history, or adjust it with --adjust."""
    if adjust is not None:
        state.refuse_writes()
        state.current.quiet = quiet
    services = _services()
    if adjust is None:
        record = state.call(services.get_inventory, write=False, name=name)
        if fmt is OutputFormat.json:
            emit_record(record, fmt, [])
            return
        shown = "unlimited" if record["unlimited"] else record["inventory"]
        message(f"Source {record['source']!r} ({record['status']}): inventory {shown}")
        emit_rows(record["history"], fmt, HISTORY_COLUMNS, title="Inventory history",
                  empty="No inventory changes recorded.")
        return
    result = state.call(services.adjust_inventory, write=True, name=name, delta=adjust,
                        reason=reason, actor=state.current.actor)
    note = (f"Inventory of {result['name']!r} {'+' if adjust > 0 else ''}{adjust}: "
            f"now {result['inventory']}")
    if result["paused"]:
        note += "; the source paused itself at zero inventory"
    emit_result(_display(result, fmt), fmt, FIELDS, note)
