"""Ledger commands at the top level: issue, spend, reverse, adjust, transfer, reactivate,
balance, activity.

Each is one service call in one transaction, then rendering.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.complete import account_names, source_names
from pointctl.cli.numbers import whole
from pointctl.cli.options import (
    AtOption,
    FormatOption,
    IdempotencyKeyOption,
    ReferenceIdOption,
    ReferenceTypeOption,
)
from pointctl.cli.render import OutputFormat, confirm, emit_record, emit_result, emit_rows

# top-level commands (`pointctl issue, spend, ...`): the root finds them here by name
commands = typer.Typer()

UserArg = Annotated[str, typer.Argument(metavar="USER", help="The customer's id.")]
PointsArg = Annotated[int, typer.Argument(metavar="POINTS", parser=whole("POINTS"),
                                          help="Whole points, > 0.")]
# adjust takes -N: a negative number must not be read as an option
SIGNED_ARGS = {"ignore_unknown_options": True}


def _ledger() -> Any:
    from pointctl.services import ledger

    return ledger


def _options(at: str | None, reference_id: str | None, reference_type: str | None,
             idempotency_key: str | None) -> Any:
    from pointctl.core.clock import parse_time

    return _ledger().WriteOptions(
        actor=state.current.actor, at=parse_time(at, what="--at") if at is not None else None,
        reference_id=reference_id, reference_type=reference_type,
        idempotency_key=idempotency_key,
    )


def _replayed(result: dict[str, Any], note: str) -> str:
    return f"Replayed (idempotency key seen before): {note}" if result.get("replay") else note


def _flat_fields(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(key, key.replace("_", " ")) for key, value in result.items()
            if not isinstance(value, list | dict)]


@commands.command()
@state.writes
def issue(
    user: UserArg,
    points: PointsArg,
    source: Annotated[str, typer.Option("--source", "-s", help="The source to issue from.",
                                                  autocompletion=source_names)],
    account: Annotated[str | None, typer.Option(
        "--account", "-a", autocompletion=account_names,
        help="Target account (optional when the source links exactly one "
        "active account).")] = None,
    clamp: Annotated[bool, typer.Option(
        "--clamp", help="Issue only what restrictions, inventory and max balance allow instead of "
        "refusing (nothing allowed is still refused)."
    )] = False,
    reference_id: ReferenceIdOption = None,
    reference_type: ReferenceTypeOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Issue POINTS from a source into USER's account."""
    result = state.call(_ledger().issue, write=True, user=user, points=points, source=source,
                        account=account, clamp=clamp,
                        options=_options(at, reference_id, reference_type, idempotency_key))
    note = (f"Issued {result['points']} points from {result['source']!r} to {result['user']} "
            f"in {result['account']!r} (entry {result['entry']}); balance {result['balance']}")
    if result["clamped"]:
        note += f"; clamped from {result['requested']} ({result['clamped_by']})"
    if result["debt_repaid"]:
        note += f"; {result['debt_repaid']} repaid debt"
    if result["pending_until"]:
        note += f"; pending until {result['pending_until']}"
    if result["source_paused"]:
        note += f"; source {result['source']!r} paused itself at zero inventory"
    emit_result(result, fmt, _flat_fields(result), _replayed(result, note))


@commands.command()
@state.writes
def spend(
    user: UserArg,
    points: PointsArg,
    account: Annotated[list[str] | None, typer.Option(
        "--account", "-a", autocompletion=account_names,
        help="Spend from these accounts in this order (repeatable); "
        "default: the active default accounts, FIFO.")] = None,
    clamp: Annotated[bool, typer.Option(
        "--clamp", help="Where the account's max debt would be passed, spend only what it "
        "allows instead of refusing.")] = False,
    reference_id: ReferenceIdOption = None,
    reference_type: ReferenceTypeOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Spend POINTS of USER, oldest points first."""
    result = state.call(_ledger().spend, write=True, user=user, points=points,
                        accounts=account or [], clamp=clamp,
                        options=_options(at, reference_id, reference_type, idempotency_key))
    parts = ", ".join(f"{e['points']} from {e['account']!r} (entry {e['entry']}, balance "
                      f"{e['balance']})" for e in result["entries"])
    note = f"Spent {result['points']} points of {result['user']}: {parts}"
    if result["debt_created"]:
        note += f"; {result['debt_created']} became debt"
    if result.get("clamped"):
        note += f"; clamped from {result['requested']} (the max debt)"
    _emit_nested(result, fmt, "entries", _replayed(result, note))


def _emit_nested(result: dict[str, Any], fmt: OutputFormat, rows_key: str, note: str) -> None:
    """Results with a list inside: JSON as is, CSV one line per item, table just the note."""
    confirm(note)
    if fmt is OutputFormat.json:
        emit_record(result, fmt, [])
    elif fmt is OutputFormat.csv:
        rows = result[rows_key]
        columns = [(key, key) for key in (rows[0] if rows else {})]
        emit_rows(rows, fmt, columns)


@commands.command()
@state.writes
def reverse(
    entry: Annotated[int | None, typer.Option(
        "--entry", "-e", metavar="ID", parser=whole("--entry"), help="The entry to reverse.")
                     ] = None,
    reference_id: Annotated[str | None, typer.Option(
        "--reference-id", help="Reverse the issues/spends with this reference id.")] = None,
    reference_type: Annotated[str | None, typer.Option(
        "--reference-type", help="With --reference-id: only entries of this reference type.")
    ] = None,
    points: Annotated[int | None, typer.Option(
        "--points", "-p", metavar="N", parser=whole("--points"),
        help="Reverse only this many points (default: all that is left).")
    ] = None,
    clamp: Annotated[bool, typer.Option(
        "--clamp", help="Where returning spent points would pass the account's max debt, "
        "reverse only what it allows instead of refusing.")] = False,
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Undo an issue (a return of goods) or a spend, whole or in part."""
    result = state.call(_ledger().reverse, write=True, entry_id=entry,
                        reference_id=reference_id, reference_type=reference_type,
                        points=points, clamp=clamp,
                        options=_options(at, None, None, idempotency_key))
    parts = []
    for r in result["reversals"]:
        part = f"{r['points']} of {r['type']} entry {r['reverses']} (entry {r['entry']}"
        if r["type"] == "issue":
            part += f"; {r['returned_to_source']} back to the source"
            if r["inventory_expired"]:
                part += " (archived: they expire from its inventory at once)"
            if r["debt_created"]:
                part += f", {r['debt_created']} owed as debt"
            if r["written_off"]:
                part += f", {r['written_off']} written off"
        parts.append(part + f"; balance {r['balance']})")
    note = f"Reversed {result['points']} points: " + "; ".join(parts)
    if result.get("clamped"):
        note += f"; clamped from {result['requested']} (the max debt)"
    _emit_nested(result, fmt, "reversals", _replayed(result, note))


@commands.command(context_settings=SIGNED_ARGS)
@state.writes
def adjust(
    user: UserArg,
    points: Annotated[int, typer.Argument(metavar="±POINTS",
                                          parser=whole("±POINTS", signed=True),
                                          help="+N adds (needs --source), -N removes.")],
    account: Annotated[str, typer.Option("--account", "-a", help="The account to correct.",
                                                    autocompletion=account_names)],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the entry).")],
    source: Annotated[str | None, typer.Option(
        "--source", "-s", help="Where added points come from (required for +N).",
        autocompletion=source_names)] = None,
    reference_id: ReferenceIdOption = None,
    reference_type: ReferenceTypeOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Correct USER's balance by hand: +N from a source, or -N."""
    result = state.call(_ledger().adjust, write=True, user=user, points=points,
                        account=account, reason=reason, source=source,
                        options=_options(at, reference_id, reference_type, idempotency_key))
    note = (f"Adjusted {result['user']} in {result['account']!r} by {result['points']:+d} "
            f"(entry {result['entry']}); balance {result['balance']}")
    emit_result(result, fmt, _flat_fields(result), _replayed(result, note))


@commands.command()
@state.writes
def transfer(
    user: UserArg,
    points: PointsArg,
    from_account: Annotated[str, typer.Option("--from", help="Account to take points from.",
                                                        autocompletion=account_names)],
    to_account: Annotated[str, typer.Option("--to", help="Account to put them in.",
                                                      autocompletion=account_names)],
    to_user: Annotated[str | None, typer.Option(
        "--to-user", help="Another user receives them (default: the same user).")] = None,
    reference_id: ReferenceIdOption = None,
    reference_type: ReferenceTypeOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Move POINTS between USER's accounts or to another user (oldest points first)."""
    result = state.call(_ledger().transfer, write=True, user=user, points=points,
                        from_account=from_account, to_account=to_account, to_user=to_user,
                        options=_options(at, reference_id, reference_type, idempotency_key))
    note = (f"Transferred {result['points']} points from {result['user']} "
            f"{result['from']!r} to {result['to_user']} {result['to']!r} "
            f"(entries {result['entries'][0]}, {result['entries'][1]})")
    emit_result(result, fmt, _flat_fields(result), _replayed(result, note))


@commands.command()
@state.writes
def reactivate(
    user: UserArg,
    account: Annotated[str, typer.Option("--account", "-a", autocompletion=account_names,
                                         help="The account whose expired points come back.")],
    points: Annotated[int | None, typer.Option(
        "--points", "-p", metavar="N", parser=whole("--points"),
        help="How many (default: all that expired within the account's "
        "reactivation window).")] = None,
    reference_id: ReferenceIdOption = None,
    reference_type: ReferenceTypeOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Turn points of USER that expired within the account's reactivation window back into
    points (newest expirations first, same sources)."""
    from pointctl.services.reactivation import reactivate as run_reactivate

    result = state.call(run_reactivate, write=True, user=user, account=account, points=points,
                        options=_options(at, reference_id, reference_type, idempotency_key))
    note = (f"Reactivated {result['points']} points for {result['user']} in "
            f"{result['account']!r} (entry {result['entry']}); balance {result['balance']}")
    emit_result(result, fmt, _flat_fields(result), _replayed(result, note))


BALANCE_COLUMNS = [("account", "account"), ("group", "group"), ("balance", "balance"),
                   ("available", "available"), ("held", "held"), ("pending", "pending"),
                   ("debt", "debt"), ("status", "status")]
GROUP_COLUMNS = [("group", "group"), ("balance", "balance"), ("available", "available"),
                 ("held", "held"), ("pending", "pending"), ("debt", "debt")]


def _with_groups(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV table: a row per account, then a row per group label (``row`` says which)."""
    return [*({"row": "account", **row} for row in result["accounts"]),
            *({"row": "group", **row} for row in result["groups"])]


@commands.command()
def balance(user: UserArg, fmt: FormatOption = OutputFormat.table) -> None:
    """USER's balance per account (balance, available, pending, debt) and per group label."""
    result = state.call_punctual(_ledger().balance, user=user)
    if fmt is OutputFormat.json:
        emit_record(result, fmt, [])
        return
    if fmt is OutputFormat.csv:
        emit_rows(_with_groups(result), fmt, [("row", "row"), *BALANCE_COLUMNS])
        return
    emit_rows(result["accounts"], fmt, BALANCE_COLUMNS, title=f"Balances of {result['user']}")
    if result["groups"]:
        emit_rows(result["groups"], fmt, GROUP_COLUMNS, title="Per group label")


@commands.command()
def history(
    user: UserArg,
    at: Annotated[str, typer.Option("--at", metavar="TIME", help="The moment (ISO-8601; "
                                    "without an offset: program time zone).")],
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """USER's balances as they were at a past moment, computed from the ledger."""
    from pointctl.core import clock
    from pointctl.services.history import history as run_history

    result = state.call_punctual(run_history, user=user,
                        at=clock.parse_time(at, what="--at"))
    if fmt is OutputFormat.json:
        emit_record(result, fmt, [])
        return
    columns = [("account", "account"), ("group", "group"), ("balance", "balance"),
               ("pending", "pending")]
    if fmt is OutputFormat.csv:
        emit_rows(_with_groups(result), fmt, [("row", "row"), *columns])
        return
    emit_rows(result["accounts"], fmt, columns,
              title=f"Balances of {result['user']} at {result['at']}",
              empty=f"{result['user']} had no entries yet at {result['at']}.")
    if result["groups"]:
        emit_rows(result["groups"], fmt, [("group", "group"), ("balance", "balance"),
                                          ("pending", "pending")], title="Per group label")


@commands.command()
@state.writes
def activity(
    user: UserArg,
    event: Annotated[str, typer.Argument(metavar="EVENT", help="e.g. login, store-visit.")],
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Record an activity event of USER (counts as activity for inactivity expiry)."""
    result = state.call(_ledger().record_activity, write=True, user=user, event=event,
                        options=_options(at, None, None, idempotency_key))
    emit_result(result, fmt, _flat_fields(result),
                _replayed(result, f"Recorded {result['event']!r} for {result['user']} at "
                                  f"{result['at']}"))
