"""``pointctl accounts ...``: point accounts (SPEC §3)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.options import DescOption, FormatOption, SearchOption
from pointctl.cli.render import OutputFormat, emit_record, emit_result, emit_rows
from pointctl.core.errors import InvalidInputError

app = typer.Typer(help="Point accounts: the balances every user can hold.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Account name (case-insensitive).")]
LIST_COLUMNS = [
    ("id", "id"), ("name", "name"), ("group", "group"), ("status", "status"),
    ("default", "default"), ("allow_negative", "negative"), ("max_balance", "max balance"),
    ("qualifying", "qualifying"), ("pending_for", "pending for"), ("source_count", "sources"),
]
FIELDS = [
    ("id", "id"), ("name", "name"), ("group", "group"), ("status", "status"),
    ("default", "default"), ("allow_negative", "allow negative"),
    ("max_balance", "max balance"), ("qualifying", "qualifying"),
    ("pending_for", "pending for"), ("sources", "sources"), ("created_at", "created (UTC)"),
    ("updated_at", "updated (UTC)"),
]


class AccountStatus(str, Enum):
    active = "active"
    inactive = "inactive"
    all = "all"


class AccountSort(str, Enum):
    name = "name"
    group = "group"
    status = "status"
    created = "created"
    sources = "sources"


def _services() -> Any:
    from pointctl.services import accounts

    return accounts


@app.command()
def create(
    name: NameArg,
    group: Annotated[str | None, typer.Option(
        "--group", "-g", help="Grouping label; balances show one total per label.")] = None,
    default: Annotated[bool, typer.Option(
        "--default", help="Spends draw from this account when none is named.")] = False,
    allow_negative: Annotated[bool, typer.Option(
        "--allow-negative/--no-negative",
        help="Whether spends and returns may take the balance below zero.")] = True,
    max_balance: Annotated[int | None, typer.Option(
        "--max-balance", help="Highest balance the account may reach.")] = None,
    qualifying: Annotated[bool, typer.Option(
        "--qualifying", help="Tier qualifying: never spent from; cannot be --default.")] = False,
    pending_for: Annotated[str | None, typer.Option(
        "--pending-for", metavar="DURATION",
        help="New points become spendable only after this long (e.g. 30d).")] = None,
    link: Annotated[list[str] | None, typer.Option(
        "--link", metavar="SOURCE", help="Link an active source (repeatable).")] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Create a point account (active)."""
    services = _services()
    result = state.call(
        services.create_account, write=True, name=name, group=group, is_default=default,
        allow_negative=allow_negative, max_balance=max_balance, qualifying=qualifying,
        pending_for=pending_for, link=link or [],
    )
    emit_result(result, fmt, FIELDS, f"Created account {result['name']!r} (id {result['id']})")


@app.command("list")
def list_(
    search: SearchOption = None,
    status: Annotated[AccountStatus, typer.Option(
        "--status", case_sensitive=False, help="Show only accounts in this status.")
    ] = AccountStatus.all,
    sort: Annotated[AccountSort, typer.Option(
        "--sort", case_sensitive=False, help="Sort key.")] = AccountSort.name,
    desc: DescOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List point accounts with the number of linked sources."""
    rows = state.call(
        _services().list_accounts, write=False, search=search,
        status=None if status is AccountStatus.all else status.value, sort=sort.value,
        descending=desc,
    )
    emit_rows(rows, fmt, LIST_COLUMNS, title="Point accounts", empty="No accounts.")


@app.command()
def show(name: NameArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Show one point account with its linked sources."""
    record = state.call(_services().show_account, write=False, name=name)
    emit_record(record, fmt, FIELDS, title=f"Account {record['name']}")


@app.command()
def edit(
    name: NameArg,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename the account.")] = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Set the grouping label.")
                     ] = None,
    no_group: Annotated[bool, typer.Option("--no-group", help="Remove the grouping label.")
                        ] = False,
    default: Annotated[bool | None, typer.Option(
        "--default/--no-default", help="Make it a default account, or not.",
        show_default=False)] = None,
    allow_negative: Annotated[bool | None, typer.Option(
        "--allow-negative/--no-negative", help="Allow negative balances, or not.",
        show_default=False)] = None,
    max_balance: Annotated[int | None, typer.Option(
        "--max-balance", help="Set the maximum balance.")] = None,
    no_max_balance: Annotated[bool, typer.Option(
        "--no-max-balance", help="Remove the maximum balance.")] = False,
    qualifying: Annotated[bool | None, typer.Option(
        "--qualifying/--no-qualifying", help="Mark as tier qualifying, or not.",
        show_default=False)] = None,
    pending_for: Annotated[str | None, typer.Option(
        "--pending-for", metavar="DURATION", help="Set the accrual effectivity delay.")] = None,
    no_pending: Annotated[bool, typer.Option(
        "--no-pending", help="New points become spendable at once.")] = False,
    link: Annotated[list[str] | None, typer.Option(
        "--link", metavar="SOURCE", help="Link an active source (repeatable).")] = None,
    unlink: Annotated[list[str] | None, typer.Option(
        "--unlink", metavar="SOURCE", help="Unlink a source (repeatable).")] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Change an active account. Inactive accounts can only be activated."""
    services = _services()
    changes: dict[str, Any] = {}
    for value, clear, key, flag in ((group, no_group, "group", "--group"),
                                    (max_balance, no_max_balance, "max_balance", "--max-balance"),
                                    (pending_for, no_pending, "pending_for", "--pending-for")):
        if value is not None and clear:
            raise InvalidInputError(f"{flag} and its --no- form cannot be used together")
        if value is not None:
            changes[key] = value
        elif clear:
            changes[key] = None
    if new_name is not None:
        changes["new_name"] = new_name
    for key, value in (("is_default", default), ("allow_negative", allow_negative),
                       ("qualifying", qualifying)):
        if value is not None:
            changes[key] = value
    if not changes and not link and not unlink:
        raise InvalidInputError("nothing to change: give at least one option "
                                "(see 'pointctl accounts edit --help')")
    result = state.call(services.edit_account, write=True, name=name, link=link or [],
                        unlink=unlink or [], **changes)
    emit_result(result, fmt, FIELDS, f"Updated account {result['name']!r}")


def _set_status(name: str, status: str, fmt: OutputFormat) -> None:
    result = state.call(_services().set_account_status, write=True, name=name, status=status)
    verb = "activated" if status == "active" else "deactivated"
    note = (f"Account {result['name']!r} {verb}" if result["changed"]
            else f"Account {result['name']!r} is already {status}; nothing changed")
    emit_result(result, fmt, FIELDS, note)


@app.command()
def activate(name: NameArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Activate an account: it takes points and spends again."""
    _set_status(name, "active", fmt)


@app.command()
def deactivate(name: NameArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Deactivate an account: balances stay (and keep expiring); no new points, no spends."""
    _set_status(name, "inactive", fmt)
