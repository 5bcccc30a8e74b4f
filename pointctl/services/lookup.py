"""Names of accounts and sources: finding them case-insensitively (optionally locking the row),
keeping them unique, and the links between accounts and sources."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from pointctl.core.errors import InvalidInputError, NotFoundError, RefusedError
from pointctl.core.validation import name_key
from pointctl.db.models import Account, AccountSource, Source

_SUGGESTIONS = 10
Named = TypeVar("Named", Account, Source)
_KIND = {Account: "account", Source: "source"}


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def by_name(session: Session, model: type[Named], name: str, *, lock: bool = False) -> Named:
    """The account or source called ``name`` (any case); NotFoundError lists the known ones."""
    query = select(model).where(model.name_key == name_key(name))
    if lock:  # FOR NO KEY UPDATE: see pointctl.services.locks on administration
        query = query.with_for_update(key_share=True)
    found = session.exec(query).first()
    if found is not None:
        return found
    kind = _KIND[model]
    known = sorted(session.exec(select(model.name)).all())
    if not known:
        raise NotFoundError(f"no {kind} named {name!r} (there are no {kind}s yet)")
    more = "" if len(known) <= _SUGGESTIONS else ", ..."
    raise NotFoundError(
        f"no {kind} named {name!r} (known {kind}s: {', '.join(known[:_SUGGESTIONS])}{more})"
    )


def account_by_name(session: Session, name: str, *, lock: bool = False) -> Account:
    return by_name(session, Account, name, lock=lock)


def source_by_name(session: Session, name: str, *, lock: bool = False) -> Source:
    return by_name(session, Source, name, lock=lock)


def by_names(session: Session, model: type[Named], names: Sequence[str]) -> list[Named]:
    """The accounts or sources called ``names`` (a filter's "any of these"), each once, in
    creation order; an unknown name is NotFoundError as for one name."""
    chosen = {found.id: found for found in (by_name(session, model, n) for n in names)}
    return sorted(chosen.values(), key=lambda found: found.id or 0)


def accounts_by_names(session: Session, names: Sequence[str]) -> list[Account]:
    return by_names(session, Account, names)


def sources_by_names(session: Session, names: Sequence[str]) -> list[Source]:
    return by_names(session, Source, names)


def ensure_name_free(session: Session, model: type[Named], name: str, *,
                     except_id: int | None = None) -> None:
    existing = session.exec(select(model).where(model.name_key == name_key(name))).first()
    if existing is not None and existing.id != except_id:
        kind = _KIND[model]
        same = "" if existing.name == name else f" (as {existing.name!r})"
        raise RefusedError(f"{_article(kind)} {kind} named {name!r} already exists{same}")


def flush_unique(session: Session, model: type[Named], name: str) -> None:
    """Flush, turning a unique-name violation into a refusal: another process created the same
    name between our check and our insert."""
    try:
        session.flush()
    except IntegrityError:
        kind = _KIND[model]
        raise RefusedError(f"{_article(kind)} {kind} named {name!r} already exists") from None


def source_names_by_account(session: Session, account_id: int | None = None
                            ) -> dict[int, list[str]]:
    """Each account's linked source names (one account's, or all), in one query."""
    query = (select(AccountSource.account_id, Source.name)
             .join(Source, Source.id == AccountSource.source_id).order_by(Source.name_key))
    if account_id is not None:
        query = query.where(AccountSource.account_id == account_id)
    names: dict[int, list[str]] = {}
    for owner, name in session.exec(query).all():
        names.setdefault(owner, []).append(name)
    return names


def account_names_by_source(session: Session, source_id: int | None = None
                            ) -> dict[int, list[str]]:
    """Each source's linked account names (one source's, or all), in one query."""
    query = (select(AccountSource.source_id, Account.name)
             .join(Account, Account.id == AccountSource.account_id).order_by(Account.name_key))
    if source_id is not None:
        query = query.where(AccountSource.source_id == source_id)
    names: dict[int, list[str]] = {}
    for owner, name in session.exec(query).all():
        names.setdefault(owner, []).append(name)
    return names


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


Row = dict[str, Any]


def search_and_sort(rows: list[Row], *, search: str | None, search_fields: Sequence[str],
                    sorts: dict[str, Callable[[Row], Any]], sort: str, descending: bool
                    ) -> list[Row]:
    """What every admin list does: a case-insensitive substring filter, then a sort whose ties
    fall back to the name."""
    if sort not in sorts:
        raise InvalidInputError(f"cannot sort by {sort!r}; choose one of {', '.join(sorts)}")
    if search:
        needle = search.casefold()
        rows = [row for row in rows
                if any(needle in (row[field] or "").casefold() for field in search_fields)]
    key = sorts[sort]
    return sorted(rows, key=lambda row: (key(row), row["name"].casefold()), reverse=descending)
