"""Finding accounts and sources by name (case-insensitively), optionally locking their rows."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, select

from pointctl.core.errors import NotFoundError
from pointctl.core.validation import name_key
from pointctl.db.models import Account, AccountSource, Source

_SUGGESTIONS = 10


def _not_found(kind: str, name: str, known: list[str]) -> NotFoundError:
    if not known:
        return NotFoundError(f"no {kind} named {name!r} (there are no {kind}s yet)")
    shown = ", ".join(sorted(known)[:_SUGGESTIONS])
    more = "" if len(known) <= _SUGGESTIONS else ", ..."
    return NotFoundError(f"no {kind} named {name!r} (known {kind}s: {shown}{more})")


def account_by_name(session: Session, name: str, *, lock: bool = False) -> Account:
    query = select(Account).where(Account.name_key == name_key(name))
    if lock:
        query = query.with_for_update()
    account = session.exec(query).first()
    if account is None:
        raise _not_found("account", name, list(session.exec(select(Account.name)).all()))
    return account


def source_by_name(session: Session, name: str, *, lock: bool = False) -> Source:
    query = select(Source).where(Source.name_key == name_key(name))
    if lock:
        query = query.with_for_update()
    source = session.exec(query).first()
    if source is None:
        raise _not_found("source", name, list(session.exec(select(Source.name)).all()))
    return source


def lock_sources(session: Session, source_ids: Iterable[int | None]) -> None:
    """Lock source rows in id order (the fixed order that keeps two commands from deadlocking)."""
    ids = sorted({source_id for source_id in source_ids if source_id is not None})
    if ids:
        session.exec(select(Source.id).where(Source.id.in_(ids)).order_by(Source.id)
                     .with_for_update()).all()


def linked_source_names(session: Session, account_id: int) -> list[str]:
    query = (select(Source.name).join(AccountSource, AccountSource.source_id == Source.id)
             .where(AccountSource.account_id == account_id).order_by(Source.name_key))
    return list(session.exec(query).all())


def linked_account_names(session: Session, source_id: int) -> list[str]:
    query = (select(Account.name).join(AccountSource, AccountSource.account_id == Account.id)
             .where(AccountSource.source_id == source_id).order_by(Account.name_key))
    return list(session.exec(query).all())


def dedupe_names(names: Iterable[str]) -> list[str]:
    """Names in the order given, without case-insensitive repeats."""
    seen: set[str] = set()
    unique = []
    for name in names:
        key = name_key(name)
        if key not in seen:
            seen.add(key)
            unique.append(name)
    return unique
