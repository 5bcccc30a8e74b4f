"""``pointctl tiers set|show|clear`` (the levels and how members reach them) and ``pointctl
tier USER`` (one member's level, points and lapse)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.complete import account_names
from pointctl.cli.ledger import UserArg
from pointctl.cli.options import FormatOption
from pointctl.cli.render import OutputFormat, confirm, emit_record, emit_rows

# top-level commands (`pointctl tier`): the root finds them here by name
commands = typer.Typer()

app = typer.Typer(help="Tiers: levels members reach with the qualifying points they earn over "
                  "a window, assessed on a schedule by 'expire run'.", no_args_is_help=True)

LEVEL_COLUMNS = [("level", "level"), ("points", "qualifying points"), ("members", "members")]
PROGRAM_FIELDS = [("account", "qualifying account"), ("window", "window"), ("keep", "kept for"),
                  ("schedule", "assessed"), ("timezone", "time zone"),
                  ("since", "since (UTC)"), ("last_evaluation", "last evaluation (UTC)"),
                  ("next_due", "next due (UTC)"), ("set_by", "set by")]
MEMBER_FIELDS = [("user", "user"), ("level", "level"), ("reached_at", "reached (UTC)"),
                 ("kept_until", "kept until (UTC)"), ("lapses_at", "lapses at (UTC)"),
                 ("qualifying_points", "qualifying points"), ("window", "window"),
                 ("level_now", "level the points reach now"), ("next_level", "next level"),
                 ("points_to_next", "points to the next level"),
                 ("next_evaluation", "next evaluation (UTC)"), ("account", "qualifying account")]


def _tiers() -> Any:
    from pointctl.services import tiers

    return tiers


def _levels_text(found: dict[str, Any]) -> str:
    return ", ".join(f"{level['level']} from {level['points']:,}" for level in found["levels"])


def _window_text(found: dict[str, Any]) -> str:
    return "the calendar year" if found["window"] == "calendar-year" else \
        f"the last {found['window']}"


@app.command("set")
@state.writes
def set_tiers(
    account: Annotated[str, typer.Option(
        "--account", "-a", metavar="ACCOUNT", autocompletion=account_names,
        help="The tier qualifying account whose points count.")],
    level: Annotated[list[str], typer.Option(
        "--level", metavar="NAME=POINTS", help="A level and the qualifying points it needs "
        "in the window (repeatable; e.g. --level Silver=1000 --level Gold=5000).")],
    window: Annotated[str, typer.Option(
        "--window", metavar="DURATION|calendar-year", help="Which points count: those earned "
        "in the last DURATION (e.g. 12mo, 90d) or in the calendar year.")] = "12mo",
    keep: Annotated[str | None, typer.Option(
        "--keep", metavar="DURATION", help="How long a level reached is kept at least (each "
        "evaluation that reaches it again extends it); default: only while reached.")] = None,
    every: Annotated[str | None, typer.Option(
        "--every", metavar="SCHEDULE", help="When 'expire run' assesses members (default "
        "daily): daily, 'weekly on monday', 'monthly on 1', 'yearly on 12-31' or a cron "
        "expression.")] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Define the tiers (replacing any others): levels by the qualifying points earned in a
    window, how long a level is kept, and when members are assessed."""
    tiers = _tiers()
    levels = [tiers.parse_level(value) for value in level]
    found = state.call(tiers.set_tiers, write=True, account=account, levels=levels,
                       window=window, keep=keep, every=every, actor=state.current.actor)
    if found["changed"]:
        kept = f"kept at least {found['keep']}" if found["keep"] else "kept while reached"
        confirm(f"Tiers over {found['account']!r}: {_levels_text(found)} qualifying points "
                f"earned in {_window_text(found)}; a level is {kept}; assessed "
                f"{found['schedule']} ({found['timezone']}), next {found['next_due']}")
    else:
        confirm("The tiers are already so; nothing changed")
    if fmt is not OutputFormat.table:
        emit_record(found, fmt, PROGRAM_FIELDS)


@app.command()
def show(fmt: FormatOption = OutputFormat.table) -> None:
    """The tiers: the levels with their members, the window, the keep and the schedule."""
    found = state.call(_tiers().describe, write=False)
    if fmt is OutputFormat.json:
        emit_record(found, fmt, [])
        return
    if fmt is OutputFormat.csv:
        emit_rows(found["levels"], fmt, LEVEL_COLUMNS)
        return
    emit_record(found, fmt, PROGRAM_FIELDS, title="Tiers")
    emit_rows(found["levels"], fmt, LEVEL_COLUMNS, title="Levels")


@app.command()
@state.writes
def clear(
    yes: Annotated[bool, typer.Option(
        "--yes", help="Confirm: every member's level is removed (their tier entries stay in "
        "the audit log).")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Remove the tiers and every member's level."""
    from pointctl.core.errors import RefusedError

    if not yes:
        raise RefusedError("'pointctl tiers clear' removes every member's level; pass --yes "
                           "to confirm")
    found = state.call(_tiers().clear_tiers, write=True, actor=state.current.actor)
    confirm(f"Tiers removed; {found['members_cleared']:,} members' levels cleared"
            if found["changed"] else "There are no tiers; nothing changed")
    if fmt is not OutputFormat.table:
        emit_record(found, fmt, [("tiers", "tiers"), ("changed", "changed")])


@commands.command()
def tier(user: UserArg, fmt: FormatOption = OutputFormat.table) -> None:
    """A member's tier: the level, the qualifying points in the window now, what the next
    level needs, and when the level would lapse if they earned nothing more."""
    found = state.call(_tiers().member, write=False, user=user)
    emit_record(found, fmt, MEMBER_FIELDS, title=f"Tier of {found['user']}")
