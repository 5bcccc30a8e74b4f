"""``pointctl hold ...``: checkout holds. ``pointctl hold USER POINTS ...`` places one (the
``place`` sub-command, named or not); ``capture``, ``void`` and ``list`` act on them."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.complete import account_names
from pointctl.cli.lazy import LazyGroup
from pointctl.cli.ledger import PointsArg, UserArg, _emit_nested, _options, _replayed
from pointctl.cli.numbers import whole
from pointctl.cli.options import AtOption, FormatOption, IdempotencyKeyOption
from pointctl.cli.render import OutputFormat, emit_rows


class HoldGroup(LazyGroup):
    """``hold USER POINTS`` is ``hold place USER POINTS``: a first argument that is not a
    sub-command's name is a user."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["place", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=HoldGroup, no_args_is_help=True,
                  help="Checkout holds: reserve a customer's points for an order, then "
                  "capture them (a spend) or void them. 'pointctl hold USER POINTS "
                  "--reference-id R' places one.")

RefArg = Annotated[str, typer.Argument(metavar="R", help="The hold's reference id.")]
COLUMNS = [("hold", "hold"), ("user", "user"), ("points", "points"), ("captured", "captured"),
           ("status", "status"), ("expires_at", "expires (UTC)"),
           ("created_at", "placed (UTC)"), ("closed_at", "closed (UTC)")]


def _ledger() -> Any:
    from pointctl.services import ledger

    return ledger


@app.command()
@state.writes
def place(
    user: UserArg,
    points: PointsArg,
    reference_id: Annotated[str, typer.Option(
        "--reference-id", metavar="R",
        help="The order the points are held for; it names the hold.")],
    account: Annotated[list[str] | None, typer.Option(
        "--account", "-a", autocompletion=account_names,
        help="Hold from these accounts in this order (repeatable); default: the active "
        "default accounts, FIFO, as a spend.")] = None,
    expires_in: Annotated[str, typer.Option(
        "--expires-in", metavar="DURATION",
        help="How long the hold lasts before 'expire run' releases it (e.g. 30min, 2h, "
        "7d; at most 366 days).")] = "30min",
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Reserve POINTS of USER, oldest points first, as a spend would take them: available
    drops, the balance stays, nothing is owed."""
    result = state.call(_ledger().hold, write=True, user=user, points=points,
                        accounts=account or [], expires_in=expires_in,
                        options=_options(at, reference_id, None, idempotency_key))
    parts = ", ".join(f"{e['points']} in {e['account']!r} (entry {e['entry']}, available "
                      f"{e['available']})" for e in result["entries"])
    note = (f"Held {result['points']} points of {result['user']} as {result['hold']!r} until "
            f"{result['expires_at']}: {parts}")
    _emit_nested(result, fmt, "entries", _replayed(result, note))


@app.command()
@state.writes
def capture(
    reference: RefArg,
    points: Annotated[int | None, typer.Option(
        "--points", "-p", metavar="N", parser=whole("--points"),
        help="Spend only N of the held points (default: all); the rest is released.")] = None,
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Turn hold R into a spend of its points (or of N of them), releasing the rest."""
    result = state.call(_ledger().capture, write=True, reference_id=reference, points=points,
                        options=_options(at, None, None, idempotency_key))
    note = (f"Captured {result['points']} of the {result['held']} points held as "
            f"{result['hold']!r}" + (f"; {result['released']} released"
                                     if result["released"] else ""))
    _emit_nested(result, fmt, "entries", _replayed(result, note))


@app.command()
@state.writes
def void(
    reference: RefArg,
    idempotency_key: IdempotencyKeyOption = None,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Release every point of hold R (an order cancelled)."""
    result = state.call(_ledger().void, write=True, reference_id=reference,
                        options=_options(at, None, None, idempotency_key))
    note = f"Released the {result['points']} points held as {result['hold']!r}"
    _emit_nested(result, fmt, "release_entries", _replayed(result, note))


class HoldStatus(str, Enum):
    open = "open"
    captured = "captured"
    voided = "voided"
    expired = "expired"
    all = "all"


@app.command("list")
def list_(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")] = None,
    status: Annotated[HoldStatus, typer.Option(
        "--status", help="Which holds (default: the open ones).")] = HoldStatus.open,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Holds, newest first: the open ones unless --status says otherwise."""
    rows = state.call(_ledger().list_holds, write=False, user=user, status=status.value)
    emit_rows(rows, fmt, COLUMNS, title="Holds", empty="No holds.")
