"""The program's change history: every change to an account, a source or a setting is an
audit entry of type ``change`` (0 points), and the program can be rebuilt for any moment from
those entries.

``record_change`` is the one place that writes them. A service calls it after it has changed
an object; it locks the object's row, reads the object's state now (``program_state``) and
its latest recorded state, and writes an entry only when they differ: the fields that changed
(old -> new, in the note and in JSON) and the whole state after the change. The first entry of
an object is its creation (or, for what existed before the history began, the baseline the
upgrade recorded). Inside ``change_set`` (``config apply``) the changes are collected and each
object gets one entry at the end, with everything the whole apply changed in it.

``document_at`` rebuilds the export form for a past moment: each object's latest state
recorded by then, and each limited source's inventory from the ledger up to then.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from pointctl.core import clock
from pointctl.core.errors import InvalidInputError, RefusedError
from pointctl.services import program_state
from pointctl.services.audit import record_entry
from pointctl.services.locks import lock_program_row
from pointctl.services.writes import MAX_NOTE_LENGTH

ENTRY_TYPE = "change"
KINDS = ("account", "source", "setting", "tiers")
_COLLECTING = "pointctl.change_set"


def record_change(session: Session, *, kind: str, key: int | str, actor: str, action: str,
                  reason: str | None = None) -> None:
    """Record the change just made to one account, source (``key``: its id), setting
    (``key``: its name) or the tiers (``key``: "tiers"); nothing when its state is what was
    recorded last."""
    collecting = session.info.get(_COLLECTING)
    if collecting is not None:
        collecting.setdefault((kind, key), None)
        return
    _write(session, kind, key, actor=actor, action=action, reason=reason)


@contextmanager
def change_set(session: Session, *, actor: str, action: str) -> Iterator[None]:
    """Collect the changes made inside; on success, one entry per changed object."""
    collected: dict[tuple[str, int | str], None] = {}
    session.info[_COLLECTING] = collected
    try:
        yield
    finally:
        session.info.pop(_COLLECTING, None)
    for kind, key in collected:
        _write(session, kind, key, actor=actor, action=action)


def _state(session: Session, kind: str, key: int | str) -> dict[str, Any] | None:
    if kind == "account":
        return program_state.account_states(session, [int(key)]).get(int(key))
    if kind == "source":
        return program_state.source_states(session, [int(key)])[0].get(int(key))
    if kind == "tiers":  # empty when removed
        return program_state.tiers_state(session)
    return program_state.setting_states(session, [str(key)]).get(str(key))


def _where(kind: str) -> str:
    return {"account": "account_id = :key AND source_id IS NULL",
            "source": "source_id = :key AND account_id IS NULL",
            "setting": "account_id IS NULL AND source_id IS NULL AND reference_id = :key "
                       "AND reference_type LIKE 'Setting %'",
            "tiers": "account_id IS NULL AND source_id IS NULL AND reference_id = :key "
                     "AND reference_type LIKE 'Tiers %'"}[kind]


def _last(session: Session, kind: str, key: int | str) -> dict[str, Any] | None:
    found = session.execute(text(
        f"SELECT detail FROM entry WHERE type = '{ENTRY_TYPE}' AND {_where(kind)} "
        "AND detail IS NOT NULL ORDER BY id DESC LIMIT 1"), {"key": key}).scalar()
    return None if found is None else json.loads(found)["state"]


def _names(session: Session, *states: dict[str, Any] | None) -> dict[int, str]:
    """The current names of the accounts these states refer to (links, a rollover account)."""
    ids = {int(a) for state in states if state for a in state.get("accounts", [])}
    rule = [state.get("expiration") or {} for state in states if state]
    ids |= {int(r["rollover_to"]) for r in rule if isinstance(r.get("rollover_to"), int)}
    ids |= {int(state["account"]) for state in states
            if state and isinstance(state.get("account"), int)}
    if not ids:
        return {}
    listed = ", ".join(str(i) for i in sorted(ids))
    return {int(i): n for i, n in session.execute(text(
        f"SELECT id, name FROM account WHERE id IN ({listed})"))}


def _write(session: Session, kind: str, key: int | str, *, actor: str, action: str,
           reason: str | None = None) -> None:
    lock_program_row(session, kind, key)
    after = _state(session, kind, key)
    if after is None:
        return
    before = _last(session, kind, key)
    if kind == "setting":
        changes = [] if before == after else \
            [(str(key), None if before is None else before["value"], after["value"])]
        name = str(key)
    elif kind == "tiers":
        names = _names(session, before, after)
        changes = program_state.differences(
            program_state.resolve_tiers(before or {}, names),
            program_state.resolve_tiers(after, names), kind)
        name = "tiers"
    else:
        names = _names(session, before, after)
        resolve = program_state.resolve_account if kind == "account" else \
            program_state.resolve_source
        shown_after = resolve(after, names)
        changes = program_state.differences({} if before is None else resolve(before, names),
                                            shown_after, kind)
        name = after["name"]
    if not changes:
        return
    verb = "created" if before is None and kind not in ("setting", "tiers") else action
    if kind == "tiers" and not after:
        verb = "removed"
    listed = "; ".join(f"{field}: {program_state.show(old)} -> {program_state.show(new)}"
                       for field, old, new in changes)
    what = "tiers" if kind == "tiers" else f"{kind} {name!r}"
    note = f"{what} {verb}: {listed}" + (f" ({reason})" if reason else "")
    if len(note) > MAX_NOTE_LENGTH:
        note = note[:MAX_NOTE_LENGTH - 1] + "…"
    detail = {"object": kind, "id": key, "name": name,
              "action": {"created": "create", "removed": "remove"}.get(verb, action),
              "reason": reason,
              "changes": [{"field": f, "old": o, "new": n} for f, o, n in changes],
              "state": after}
    record_entry(session, type=ENTRY_TYPE, points=0, actor=actor,
                 account_id=int(key) if kind == "account" else None,
                 source_id=int(key) if kind == "source" else None,
                 reference_id=str(key) if kind in ("setting", "tiers") else None,
                 reference_type=f"{kind.capitalize()} {detail['action']}", note=note,
                 detail=json.dumps(detail))  # in the file's order of fields


# --- the program at a past moment -----------------------------------------------------------

def document_at(session: Session, *, at: str) -> dict[str, Any]:
    """The export form of the program as it was at ``at`` (a time as the user wrote it)."""
    from pointctl.services.settings import program_zone

    program_zone(session)
    moment = clock.parse_time(at, what="--at")
    now = clock.now()
    if moment > now + clock.CLOCK_SKEW:
        raise InvalidInputError(f"--at {clock.format_time(moment)} is in the future (now is "
                                f"{clock.format_time(now)}); the program can be rebuilt for "
                                "the past and the present only")
    stamp: Any = moment if session.get_bind().dialect.name == "postgresql" else \
        moment.isoformat(" ", "microseconds")
    start = session.execute(text(
        f"SELECT MIN(recorded_at) FROM entry WHERE type = '{ENTRY_TYPE}' "
        "AND reference_type LIKE '% baseline' AND detail IS NOT NULL")).scalar()
    if start is not None:
        began = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
        if moment < began:
            raise RefusedError(f"the change history begins at {clock.format_time(began)}, "
                               "when this database was upgraded to keep it; the program "
                               "cannot be rebuilt for an earlier moment")
    states: dict[str, dict[Any, dict[str, Any]]] = {kind: {} for kind in KINDS}
    for (detail,) in session.execute(text(
            f"SELECT detail FROM entry WHERE type = '{ENTRY_TYPE}' AND detail IS NOT NULL "
            "AND recorded_at <= :at ORDER BY id"), {"at": stamp}):
        found = json.loads(detail)
        states[found["object"]][found["id"]] = found["state"]
    from pointctl.services.verify import ledger_inventories

    inventories: dict[int, int | None] = dict(ledger_inventories(session, until=stamp))
    return program_state.document(states["account"], states["source"], states["setting"],
                                  inventories, states["tiers"].get("tiers"))
