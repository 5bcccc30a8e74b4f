"""Point sources: create, list, show, edit, the status machine, and inventory.

Every inventory change (initial inventory, adjustment, expiry at archive) is an audit entry of
type ``inventory`` whose points are the signed change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from pointctl.core import clock
from pointctl.core.errors import InvalidInputError, RefusedError
from pointctl.core.money import parse_point_value, point_value, value_text
from pointctl.core.validation import MAX_POINTS, check_points, check_text, clean_name, name_key
from pointctl.db.models import Account, AccountSource, Source
from pointctl.services import restrictions
from pointctl.services.audit import inventory_history, record_entry
from pointctl.services.changes import record_change
from pointctl.services.lookup import (
    account_by_name,
    account_names_by_source,
    dedupe_names,
    ensure_name_free,
    flush_unique,
    search_and_sort,
    source_by_name,
)
from pointctl.services.writes import MAX_NOTE_LENGTH

SOURCE_SORTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda row: (),
    "status": lambda row: row["status"],
    # unlimited sorts above every number
    "inventory": lambda row: (row["unlimited"], row["inventory"] or 0),
    "created": lambda row: (row["created_at"], row["id"]),
    "accounts": lambda row: row["account_count"],
}
INITIAL_INVENTORY = "Initial Inventory"
INVENTORY_ADJUSTMENT = "Inventory Adjustment"
ARCHIVE_EXPIRY = "Inventory Expired at Archive"
PAUSED_AT_ZERO = "its inventory reached zero"  # why a source paused itself


def describe_source(
    session: Session, source: Source, accounts: list[str] | None = None
) -> dict[str, Any]:
    if accounts is None:
        accounts = account_names_by_source(session, source.id).get(source.id, [])
    return {
        "id": source.id,
        "name": source.name,
        "status": source.status,
        "unlimited": source.inventory is None,
        "inventory": source.inventory,
        "point_value": None if source.value_micros is None else value_text(source.value_micros),
        "currency": source.currency,
        "accounts": accounts,
        "account_count": len(accounts),
        "created_at": clock.format_time(source.created_at),
        "updated_at": clock.format_time(source.updated_at),
    }


def _accounts_to_link(session: Session, names: Sequence[str]) -> list[Account]:
    accounts = [account_by_name(session, name) for name in dedupe_names(names)]
    for account in accounts:
        if account.status != "active":
            raise RefusedError(
                f"account {account.name!r} is inactive; it takes no new points, so no source "
                "can be linked to it"
            )
    return accounts


def create_source(
    session: Session,
    *,
    name: str,
    inventory: int | None = None,
    link: Sequence[str] = (),
    actor: str,
    note: str | None = None,
    value: str | int | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    """A new active source; ``inventory=None`` means unlimited. Without ``link``, the source
    links to every active account. An initial inventory of 0 creates it paused (a source
    with no inventory cannot be active). ``value`` and ``currency``: what one point is worth
    (``money.point_value``)."""
    name = clean_name(name, what="source")
    if inventory is not None:
        check_points(inventory, what="--inventory", minimum=0)
    worth = point_value(parse_point_value(value, currency))
    ensure_name_free(session, Source, name)
    if link:
        accounts = _accounts_to_link(session, link)
    else:
        accounts = list(session.exec(
            select(Account).where(Account.status == "active").order_by(Account.id)
        ).all())
        if not accounts:
            raise RefusedError(
                "a source needs at least one linked account and there is no active account; "
                "create one first ('pointctl accounts create NAME') or pass --link"
            )
    moment = clock.now()
    source = Source(
        name=name, name_key=name_key(name), inventory=inventory,
        status="paused" if inventory == 0 else "active", created_at=moment, updated_at=moment,
        value_micros=worth[0] if worth else None, currency=worth[1] if worth else None,
    )
    session.add(source)
    flush_unique(session, Source, name)
    for account in accounts:
        session.add(AccountSource(account_id=account.id, source_id=source.id))
    if inventory:
        record_entry(session, type="inventory", points=inventory, actor=actor,
                     source_id=source.id, reference_type=INITIAL_INVENTORY, note=note)
    session.flush()
    _record(session, source, actor=actor, action="create")
    return describe_source(session, source)


def _record(session: Session, source: Source, *, actor: str, action: str,
            reason: str | None = None) -> None:
    record_change(session, kind="source", key=int(source.id or 0), actor=actor, action=action,
                  reason=reason)


def list_sources(
    session: Session,
    *,
    search: str | None = None,
    status: str | None = None,
    sort: str = "name",
    descending: bool = False,
) -> list[dict[str, Any]]:
    query = select(Source)
    if status is not None:
        query = query.where(Source.status == status)
    names = account_names_by_source(session)
    rows = [describe_source(session, source, names.get(source.id, []))
            for source in session.exec(query).all()]
    return search_and_sort(rows, search=search, search_fields=("name",), sorts=SOURCE_SORTS,
                           sort=sort, descending=descending)


def show_source(session: Session, *, name: str) -> dict[str, Any]:
    source = source_by_name(session, name)
    return {**describe_source(session, source),
            "restrictions": restrictions.by_source(session, source),
            "inventory_history": inventory_history(session, source_id=source.id)}


def edit_source(
    session: Session,
    *,
    name: str,
    new_name: str | None = None,
    link: Sequence[str] = (),
    unlink: Sequence[str] = (),
    value: str | int | None = None,
    currency: str | None = None,
    clear_value: bool = False,
    actor: str,
) -> dict[str, Any]:
    """Rename, link and unlink, set or clear the value per point. Only an active source can be
    linked to more accounts; a source keeps at least one linked account."""
    if clear_value and (value is not None or currency is not None):
        raise InvalidInputError("--no-value cannot be used with --value or --currency")
    given = parse_point_value(value, currency)  # bad input: exit 2 whatever the name
    source = source_by_name(session, name, lock=True)
    current = None if source.value_micros is None or source.currency is None else \
        (source.value_micros, source.currency)
    worth = None if clear_value else point_value(given, current=current)
    source.value_micros, source.currency = worth if worth else (None, None)
    if new_name is not None:
        new_name = clean_name(new_name, what="source")
        ensure_name_free(session, Source, new_name, except_id=source.id)
        source.name, source.name_key = new_name, name_key(new_name)
    if link:
        if source.status != "active":
            raise RefusedError(
                f"source {source.name!r} is {source.status}; only active sources can be linked"
            )
        linked = set(session.exec(
            select(AccountSource.account_id).where(AccountSource.source_id == source.id)
        ).all())
        for account in _accounts_to_link(session, link):
            if account.id not in linked:
                session.add(AccountSource(account_id=account.id, source_id=source.id))
        session.flush()
    if unlink:
        for account in [account_by_name(session, n) for n in dedupe_names(unlink)]:
            row = session.get(AccountSource, (account.id, source.id))
            if row is not None:
                session.delete(row)
        session.flush()
        remaining = session.exec(
            select(func.count()).select_from(AccountSource)
            .where(AccountSource.source_id == source.id)
        ).one()
        if remaining == 0:
            raise RefusedError(
                f"source {source.name!r} would have no linked account left; a source keeps at "
                "least one (link another account in the same command with --link)"
            )
    source.updated_at = clock.now()
    session.add(source)
    flush_unique(session, Source, source.name)
    _record(session, source, actor=actor, action="edit")
    return describe_source(session, source)


def _set_status(session: Session, source: Source, status: str) -> None:
    source.status = status
    source.updated_at = clock.now()
    session.add(source)
    session.flush()


def pause_source(session: Session, *, name: str, actor: str) -> dict[str, Any]:
    source = source_by_name(session, name, lock=True)
    if source.status == "archived":
        raise RefusedError(f"source {source.name!r} is archived; an archived source can only "
                           "be activated")
    changed = source.status != "paused"
    if changed:
        _set_status(session, source, "paused")
        _record(session, source, actor=actor, action="pause")
    return {**describe_source(session, source), "changed": changed}


def activate_source(session: Session, *, name: str, actor: str) -> dict[str, Any]:
    source = source_by_name(session, name, lock=True)
    changed = source.status != "active"
    if changed:
        if source.inventory == 0:
            raise RefusedError(
                f"source {source.name!r} has no inventory left; add some with 'pointctl sources "
                f"inventory {source.name} --adjust +N' before activating it"
            )
        _set_status(session, source, "active")
        _record(session, source, actor=actor, action="activate")
    return {**describe_source(session, source), "changed": changed}


def archive_source(session: Session, *, name: str, confirmed: bool, actor: str) -> dict[str, Any]:
    """paused -> archived, expiring the remaining inventory as one audit entry."""
    source = source_by_name(session, name, lock=True)
    if source.status == "archived":
        return {**describe_source(session, source), "changed": False, "expired_inventory": 0}
    if source.status != "paused":
        raise RefusedError(
            f"source {source.name!r} is {source.status}; only a paused source can be archived "
            f"(run 'pointctl sources pause {source.name}' first)"
        )
    remaining = source.inventory or 0
    if not confirmed:
        what = (f"expires its remaining inventory of {remaining} points" if remaining
                else "stops it issuing points")
        raise RefusedError(f"archiving source {source.name!r} {what}; pass --yes to confirm")
    if remaining:
        record_entry(session, type="inventory", points=-remaining, actor=actor,
                     source_id=source.id, reference_type=ARCHIVE_EXPIRY)
        source.inventory = 0
    _set_status(session, source, "archived")
    _record(session, source, actor=actor, action="archive")
    return {**describe_source(session, source), "changed": True, "expired_inventory": remaining}


def adjust_inventory(
    session: Session, *, name: str, delta: int, actor: str, reason: str | None = None
) -> dict[str, Any]:
    """Add to or take from a limited source's inventory; never below zero. An active source
    whose inventory reaches zero pauses itself in the same transaction."""
    if delta == 0:
        raise InvalidInputError("--adjust must not be zero")
    check_points(abs(delta), what="--adjust")
    check_text(reason, what="--reason", max_length=MAX_NOTE_LENGTH)
    source = source_by_name(session, name, lock=True)
    if source.inventory is None:
        raise RefusedError(f"source {source.name!r} has unlimited inventory, which cannot be "
                           "adjusted (an unlimited source stays unlimited)")
    new_inventory = source.inventory + delta
    if new_inventory < 0:
        raise RefusedError(f"source {source.name!r} has {source.inventory} points of inventory; "
                           f"cannot take {-delta}")
    if new_inventory > MAX_POINTS:
        raise RefusedError(f"source {source.name!r} inventory would exceed {MAX_POINTS} points")
    record_entry(session, type="inventory", points=delta, actor=actor, source_id=source.id,
                 reference_type=INVENTORY_ADJUSTMENT, note=reason)
    source.inventory = new_inventory
    paused = new_inventory == 0 and source.status == "active"
    if paused:
        source.status = "paused"
    _set_status(session, source, source.status)
    if paused:
        _record(session, source, actor=actor, action="pause", reason=PAUSED_AT_ZERO)
    return {**describe_source(session, source), "change": delta, "paused": paused}


def get_inventory(session: Session, *, name: str) -> dict[str, Any]:
    source = source_by_name(session, name)
    return {
        "source": source.name,
        "status": source.status,
        "unlimited": source.inventory is None,
        "inventory": source.inventory,
        "history": inventory_history(session, source_id=source.id),
    }
