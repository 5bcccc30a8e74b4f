"""``pointctl accounts ...``: point accounts."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.complete import account_names, source_names
from pointctl.cli.numbers import whole
from pointctl.cli.options import DescOption, FormatOption, SearchOption
from pointctl.cli.render import OutputFormat, emit_record, emit_result, emit_rows
from pointctl.core.errors import InvalidInputError
from pointctl.core.validation import check_weight

app = typer.Typer(help="Point accounts: the balances every user can hold.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Account name (case-insensitive).",
                                        autocompletion=account_names)]
NewNameArg = Annotated[str, typer.Argument(metavar="NAME", help="Account name.")]
LIST_COLUMNS = [
    ("id", "id"), ("name", "name"), ("group", "group"), ("status", "status"),
    ("default", "default"), ("allow_negative", "negative"), ("max_balance", "max balance"),
    ("qualifying", "qualifying"), ("pending_for", "pending for"), ("source_count", "sources"),
]
FIELDS = [
    ("id", "id"), ("name", "name"), ("group", "group"), ("status", "status"),
    ("default", "default"), ("allow_negative", "allow negative"), ("max_debt", "max debt"),
    ("max_balance", "max balance"), ("qualifying", "qualifying"),
    ("pending_for", "pending for"), ("qualifying_weight", "qualifying weight"),
    ("non_qualifying_weight", "non-qualifying weight"), ("transfer_min", "transfer min"),
    ("transfer_max", "transfer max"), ("transfer_yearly_max", "transfer yearly max"),
    ("expiration", "expiration"),
    ("reactivation", "reactivation"), ("sources", "sources"), ("created_at", "created (UTC)"),
    ("updated_at", "updated (UTC)"),
]


TransferMin = Annotated[int | None, typer.Option(
    "--transfer-min", metavar="N", parser=whole("--transfer-min"),
    help="Fewest points one member may transfer to another out of this account at once.")]
TransferMax = Annotated[int | None, typer.Option(
    "--transfer-max", metavar="N", parser=whole("--transfer-max"),
    help="Most points one member may transfer to another out of this account at once.")]
TransferYearlyMax = Annotated[int | None, typer.Option(
    "--transfer-yearly-max", metavar="N", parser=whole("--transfer-yearly-max"),
    help="Most points one member may transfer to others out of this account per calendar "
    "year (program time zone).")]
QualifyingWeight = Annotated[int | None, typer.Option(
    "--qualifying-weight", metavar="N",
    parser=whole("--qualifying-weight", rule=check_weight),
    help="Weight of the account's qualifying points when a promotion engine chooses between "
    "promotions that both apply (0 or more).")]
NonQualifyingWeight = Annotated[int | None, typer.Option(
    "--non-qualifying-weight", metavar="N",
    parser=whole("--non-qualifying-weight", rule=check_weight),
    help="Weight of the account's non-qualifying points when a promotion engine chooses "
    "between promotions (0 or more).")]


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
@state.writes
def create(
    name: NewNameArg,
    group: Annotated[str | None, typer.Option(
        "--group", "-g", help="Grouping label; balances show one total per label.")] = None,
    default: Annotated[bool, typer.Option(
        "--default", help="Spends draw from this account when none is named.")] = False,
    allow_negative: Annotated[bool, typer.Option(
        "--allow-negative/--no-negative",
        help="Whether spends and returns may take the balance below zero.")] = True,
    max_debt: Annotated[int | None, typer.Option(
        "--max-debt", metavar="N", parser=whole("--max-debt"),
        help="Most points a customer may owe here (needs negative balances allowed); a "
        "spend, return or deduction that would go further is refused.")] = None,
    max_balance: Annotated[int | None, typer.Option(
        "--max-balance", metavar="N", parser=whole("--max-balance"),
        help="Highest balance the account may reach.")] = None,
    qualifying: Annotated[bool, typer.Option(
        "--qualifying", help="Tier qualifying: never spent from; cannot be --default.")] = False,
    pending_for: Annotated[str | None, typer.Option(
        "--pending-for", metavar="DURATION",
        help="New points become spendable only after this long (e.g. 30d); not with "
        "--qualifying.")] = None,
    qualifying_weight: QualifyingWeight = None,
    non_qualifying_weight: NonQualifyingWeight = None,
    transfer_min: TransferMin = None,
    transfer_max: TransferMax = None,
    transfer_yearly_max: TransferYearlyMax = None,
    link: Annotated[list[str] | None, typer.Option(
        "--link", metavar="SOURCE", help="Link an active source (repeatable).",
        autocompletion=source_names)] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Create a point account (active)."""
    services = _services()
    result = state.call(
        services.create_account, write=True, actor=state.current.actor, name=name, group=group,
        is_default=default,
        allow_negative=allow_negative, max_balance=max_balance, qualifying=qualifying,
        pending_for=pending_for, qualifying_weight=qualifying_weight,
        non_qualifying_weight=non_qualifying_weight, link=link or [], max_debt=max_debt,
        transfer_min=transfer_min, transfer_max=transfer_max,
        transfer_yearly_max=transfer_yearly_max,
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
@state.writes
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
        "--max-balance", metavar="N", parser=whole("--max-balance"),
        help="Set the maximum balance.")] = None,
    no_max_balance: Annotated[bool, typer.Option(
        "--no-max-balance", help="Remove the maximum balance.")] = False,
    max_debt: Annotated[int | None, typer.Option(
        "--max-debt", metavar="N", parser=whole("--max-debt"),
        help="Set the most points a customer may owe here.")] = None,
    no_max_debt: Annotated[bool, typer.Option(
        "--no-max-debt", help="Remove the max debt: debt without limit.")] = False,
    qualifying: Annotated[bool | None, typer.Option(
        "--qualifying/--no-qualifying", help="Mark as tier qualifying, or not.",
        show_default=False)] = None,
    pending_for: Annotated[str | None, typer.Option(
        "--pending-for", metavar="DURATION", help="Set the accrual effectivity delay.")] = None,
    no_pending: Annotated[bool, typer.Option(
        "--no-pending", help="New points become spendable at once.")] = False,
    qualifying_weight: QualifyingWeight = None,
    no_qualifying_weight: Annotated[bool, typer.Option(
        "--no-qualifying-weight", help="Remove the qualifying weight.")] = False,
    non_qualifying_weight: NonQualifyingWeight = None,
    no_non_qualifying_weight: Annotated[bool, typer.Option(
        "--no-non-qualifying-weight", help="Remove the non-qualifying weight.")] = False,
    transfer_min: TransferMin = None,
    no_transfer_min: Annotated[bool, typer.Option(
        "--no-transfer-min", help="Remove the minimum per transfer.")] = False,
    transfer_max: TransferMax = None,
    no_transfer_max: Annotated[bool, typer.Option(
        "--no-transfer-max", help="Remove the maximum per transfer.")] = False,
    transfer_yearly_max: TransferYearlyMax = None,
    no_transfer_yearly_max: Annotated[bool, typer.Option(
        "--no-transfer-yearly-max", help="Remove the yearly maximum per member.")] = False,
    link: Annotated[list[str] | None, typer.Option(
        "--link", metavar="SOURCE", help="Link an active source (repeatable).",
        autocompletion=source_names)] = None,
    unlink: Annotated[list[str] | None, typer.Option(
        "--unlink", metavar="SOURCE", help="Unlink a source (repeatable).",
        autocompletion=source_names)] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Change an active account. Inactive accounts can only be activated."""
    services = _services()
    changes: dict[str, Any] = {}
    for value, clear, key, flag in ((group, no_group, "group", "--group"),
                                    (max_balance, no_max_balance, "max_balance", "--max-balance"),
                                    (max_debt, no_max_debt, "max_debt", "--max-debt"),
                                    (pending_for, no_pending, "pending_for", "--pending-for"),
                                    (qualifying_weight, no_qualifying_weight,
                                     "qualifying_weight", "--qualifying-weight"),
                                    (non_qualifying_weight, no_non_qualifying_weight,
                                     "non_qualifying_weight", "--non-qualifying-weight"),
                                    (transfer_min, no_transfer_min, "transfer_min",
                                     "--transfer-min"),
                                    (transfer_max, no_transfer_max, "transfer_max",
                                     "--transfer-max"),
                                    (transfer_yearly_max, no_transfer_yearly_max,
                                     "transfer_yearly_max", "--transfer-yearly-max")):
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
    result = state.call(services.edit_account, write=True, actor=state.current.actor,
                        name=name, link=link or [], unlink=unlink or [], **changes)
    emit_result(result, fmt, FIELDS, f"Updated account {result['name']!r}")


def _set_status(name: str, status: str, fmt: OutputFormat) -> None:
    result = state.call(_services().set_account_status, write=True, name=name, status=status,
                        actor=state.current.actor)
    verb = "activated" if status == "active" else "deactivated"
    note = (f"Account {result['name']!r} {verb}" if result["changed"]
            else f"Account {result['name']!r} is already {status}; nothing changed")
    emit_result(result, fmt, FIELDS, note)


@app.command()
@state.writes
def activate(name: NameArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Activate an account: it takes points and spends again."""
    _set_status(name, "active", fmt)


@app.command()
@state.writes
def deactivate(name: NameArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Deactivate an account: balances stay (and keep expiring); no new points, no spends."""
    _set_status(name, "inactive", fmt)


POLICY_FIELDS = [
    ("account", "account"), ("policy", "policy"), ("rule", "rule"), ("schedule", "schedule"),
    ("timezone", "time zone"), ("since", "since (UTC)"), ("next_due", "next due (UTC)"),
]


@app.command()
@state.writes
def expiration(
    name: NameArg,
    rolling: Annotated[bool, typer.Option(
        "--rolling", help="Points older than --older-than expire (or roll over).")] = False,
    fixed_date: Annotated[str | None, typer.Option(
        "--fixed-date", metavar="MM-DD", help="Points expire on this day of the year.")] = None,
    inactivity: Annotated[bool, typer.Option(
        "--inactivity", help="Points of users inactive for --inactive-for expire.")] = False,
    none: Annotated[bool, typer.Option("--none", help="Points never expire.")] = False,
    every: Annotated[str | None, typer.Option(
        "--every", metavar="SCHEDULE", help="When evaluations happen (default daily): daily, "
        "'daily at 03:00', 'weekly on monday', 'every 4 weeks on monday', 'monthly on 1', "
        "'every 3 months on 15', 'yearly on 12-31' or a cron expression.")] = None,
    older_than: Annotated[str | None, typer.Option(
        "--older-than", metavar="DURATION", help="Rolling: age at which points expire.")] = None,
    rollover_to: Annotated[str | None, typer.Option(
        "--rollover-to", metavar="ACCOUNT", autocompletion=account_names,
        help="Rolling: move the points into this account "
        "of the same user instead of expiring them (escrow).")] = None,
    snap_to: Annotated[str | None, typer.Option(
        "--snap-to", help="Rolling: expire at the next first of month, quarter, year or the "
        "user's enrollment anniversary after the age is reached.")] = None,
    min_age: Annotated[str | None, typer.Option(
        "--min-age", metavar="DURATION", help="Fixed date: only points at least this old "
        "(younger ones wait for the next year's date).")] = None,
    inactive_for: Annotated[str | None, typer.Option(
        "--inactive-for", metavar="DURATION", help="Inactivity: no activity for this long.")
    ] = None,
    percent: Annotated[int | None, typer.Option(
        "--percent", metavar="N", parser=whole("--percent", ranged_by_service=True),
        help="Inactivity: percent of the available points that expire at each "
        "evaluation (default 100).")] = None,
    activity: Annotated[list[str] | None, typer.Option(
        "--activity", metavar="EVENTS", help="Inactivity: events that count as activity "
        "(comma-separated or repeated; default issue,spend).")] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Set the account's one expiration policy, replacing any other."""
    from pointctl.services import expiry

    chosen = [flag for flag, on in (("--rolling", rolling), ("--fixed-date", fixed_date),
                                    ("--inactivity", inactivity), ("--none", none)) if on]
    if len(chosen) != 1:
        raise InvalidInputError("choose exactly one of --rolling, --fixed-date MM-DD, "
                                "--inactivity or --none" +
                                (f" (got {', '.join(chosen)})" if chosen else ""))
    if none:
        extra = [opt for opt, value in (
            ("--every", every), ("--older-than", older_than), ("--rollover-to", rollover_to),
            ("--snap-to", snap_to), ("--min-age", min_age), ("--inactive-for", inactive_for),
            ("--percent", percent), ("--activity", activity)) if value is not None]
        if extra:
            raise InvalidInputError(f"{', '.join(extra)} does not apply with --none")
        result = state.call(expiry.clear_policy, write=True, account=name,
                            actor=state.current.actor)
        note = (f"Account {result['account']!r}: points no longer expire" if result["changed"]
                else f"Account {result['account']!r} has no expiration policy; nothing changed")
        emit_result(result, fmt, [("account", "account"), ("policy", "policy")], note)
        return
    kind = "rolling" if rolling else "fixed-date" if fixed_date is not None else "inactivity"
    result = state.call(expiry.set_policy, write=True, account=name, kind=kind, every=every,
                        older_than=older_than, rollover_to=rollover_to, snap_to=snap_to,
                        fixed_date=fixed_date, min_age=min_age, inactive_for=inactive_for,
                        percent=percent, activity=activity or [], actor=state.current.actor)
    note = (f"Account {result['account']!r}: {result['rule']}, {result['schedule']} "
            f"({result['timezone']}); next evaluation {result['next_due']}" if result["changed"]
            else f"Account {result['account']!r} already has this policy; nothing changed")
    emit_result(result, fmt, POLICY_FIELDS, note)


@app.command()
@state.writes
def reactivation(
    name: NameArg,
    window: Annotated[str | None, typer.Option(
        "--window", metavar="DURATION", help="Points that expired this recently can be "
        "reactivated, e.g. 6mo.")] = None,
    min_points: Annotated[int | None, typer.Option(
        "--min-points", metavar="N", parser=whole("--min-points"),
        help="The fewest points one reactivation may restore.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Allow no reactivation.")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Allow (or stop) reactivating expired points in the account (never tier qualifying)."""
    from pointctl.services.reactivation import set_reactivation

    if off == (window is not None):
        raise InvalidInputError("give either --window DURATION [--min-points N] or --off")
    result = state.call(set_reactivation, write=True, actor=state.current.actor,
                        account=name, window=window, min_points=min_points)
    note = (f"Account {result['account']!r}: reactivation {result['reactivation']}"
            if result["changed"] else
            f"Account {result['account']!r}: reactivation is already {result['reactivation']};"
            " nothing changed")
    emit_result(result, fmt, [("account", "account"), ("reactivation", "reactivation")], note)
