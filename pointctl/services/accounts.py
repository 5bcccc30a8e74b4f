"""Point accounts: create, list, show, edit, activate, deactivate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from pointctl.core import clock
from pointctl.core.durations import parse_duration
from pointctl.core.errors import InvalidInputError, RefusedError
from pointctl.core.validation import check_points, check_weight, clean_name, name_key
from pointctl.db.models import Account, AccountSource, Balance, ExpirationPolicy
from pointctl.services import locks
from pointctl.services.changes import record_change
from pointctl.services.lookup import (
    account_by_name,
    dedupe_names,
    ensure_name_free,
    flush_unique,
    search_and_sort,
    source_by_name,
    source_names_by_account,
)

ACCOUNT_SORTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda row: (),
    "group": lambda row: (row["group"] or "").casefold(),
    "status": lambda row: row["status"],
    "created": lambda row: (row["created_at"], row["id"]),
    "sources": lambda row: row["source_count"],
}


class Unset:
    """Marks an edit option that was not given (None means 'clear it')."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = Unset()


def describe_account(
    session: Session, account: Account, sources: list[str] | None = None
) -> dict[str, Any]:
    if sources is None:
        sources = source_names_by_account(session, account.id).get(account.id, [])
    return {
        "id": account.id,
        "name": account.name,
        "group": account.group_label,
        "status": account.status,
        "default": account.is_default,
        "allow_negative": account.allow_negative,
        "max_debt": account.max_debt,
        "max_balance": account.max_balance,
        "qualifying": account.qualifying,
        "pending_for": account.pending_for,
        "qualifying_weight": account.qualifying_weight,
        "non_qualifying_weight": account.non_qualifying_weight,
        **{key: getattr(account, key) for key in TRANSFER_LIMITS},
        "expiration": _expiration_words(session, account),
        "reactivation": _reactivation_words(account),
        "sources": sources,
        "source_count": len(sources),
        "created_at": clock.format_time(account.created_at),
        "updated_at": clock.format_time(account.updated_at),
    }


def _expiration_words(session: Session, account: Account) -> str:
    from pointctl.services.expiry import policy_words

    policy = session.get(ExpirationPolicy, account.id)
    if policy is None:
        return "never"
    into = session.get(Account, policy.rollover_to_id) if policy.rollover_to_id else None
    names = {into.id: into.name} if into is not None and into.id is not None else {}
    return f"{policy_words(policy, names)}; {policy.schedule}"


def _reactivation_words(account: Account) -> str:
    from pointctl.services.reactivation import describe

    return describe(account)


def _clean_group(group: str | None) -> str | None:
    if group is None or not group.strip():
        return None
    return clean_name(group, what="group label")


def _clean_pending(pending_for: str | None) -> str | None:
    if pending_for is None:
        return None
    return str(parse_duration(pending_for, what="--pending-for duration"))


TRANSFER_LIMITS = ("transfer_min", "transfer_max", "transfer_yearly_max")


def flag_conflict(*, is_default: bool, qualifying: bool, pending_for: str | None,
                  allow_negative: bool = True, max_debt: int | None = None,
                  transfer_min: int | None = None, transfer_max: int | None = None,
                  transfer_yearly_max: int | None = None) -> tuple[str, str] | None:
    """The account settings that exclude each other, as (the setting refused, why); None when
    they agree. Account create and edit and ``config apply`` all ask this."""
    if qualifying and is_default:
        return "qualifying", ("a tier qualifying account cannot be a default account: "
                              "qualifying points are never spent, and default accounts are "
                              "where spends draw from")
    if qualifying and pending_for:
        return "pending_for", ("a tier qualifying account cannot hold points pending: its "
                               "points count toward a tier as they are earned and are never "
                               "spent, so there is nothing to hold back")
    if max_debt is not None and not allow_negative:
        return "max_debt", ("a max debt needs negative balances allowed: without them no "
                            "customer can owe points (remove the max debt, or allow negative "
                            "balances)")
    for key, most in (("transfer_max", transfer_max), ("transfer_yearly_max",
                                                        transfer_yearly_max)):
        if transfer_min is not None and most is not None and transfer_min > most:
            return "transfer_min", (f"the transfer minimum ({transfer_min}) is above the "
                                    f"{'yearly ' if 'yearly' in key else ''}maximum ({most}): "
                                    "no transfer could be made")
    return None


def _weights(qualifying: int | None, non_qualifying: int | None) -> dict[str, int | None]:
    """The promotion weights given (UNSET ones left out), checked."""
    found: dict[str, int | None] = {}
    for key, value, flag in (("qualifying_weight", qualifying, "--qualifying-weight"),
                             ("non_qualifying_weight", non_qualifying,
                              "--non-qualifying-weight")):
        if value is not UNSET:
            found[key] = None if value is None else check_weight(value, what=flag)
    return found


def _limits(given: dict[str, int | None]) -> dict[str, int | None]:
    """Transfer limits given (None: no limit), each a positive number of points."""
    for key, value in given.items():
        if value is not None:
            check_points(value, what="--" + key.replace("_", "-"))
    return given


def _check_flags(*, is_default: bool, qualifying: bool, pending_for: str | None,
                 name: str, allow_negative: bool, max_debt: int | None,
                 limits: dict[str, int | None]) -> None:
    conflict = flag_conflict(is_default=is_default, qualifying=qualifying,
                             pending_for=pending_for, allow_negative=allow_negative,
                             max_debt=max_debt, **limits)
    if conflict is not None:
        raise InvalidInputError(f"account {name!r}: {conflict[1]}")


def _link_sources(session: Session, account: Account, source_names: Sequence[str]
                  ) -> list[int]:
    """Link the sources named; the ids of those newly linked. Their rows are locked first:
    the link's foreign key would otherwise share-lock them, and the change history's lock of
    each (``changes.record_change``) would then wait on a concurrent linker doing the same."""
    sources = [source_by_name(session, name) for name in dedupe_names(source_names)]
    for source in sorted(sources, key=lambda s: s.id or 0):
        locks.lock_program_row(session, "source", int(source.id or 0))
        session.refresh(source)
    for source in sources:
        if source.status != "active":
            raise RefusedError(
                f"source {source.name!r} is {source.status}; only active sources can be linked"
            )
    already = set(session.exec(
        select(AccountSource.source_id).where(AccountSource.account_id == account.id)
    ).all())
    linked = []
    for source in sources:
        if source.id not in already:
            session.add(AccountSource(account_id=account.id, source_id=source.id))
            linked.append(int(source.id or 0))
    return linked


def _unlink_sources(session: Session, account: Account, source_names: Sequence[str]
                    ) -> list[int]:
    """Unlink the sources named; the ids of those that were linked."""
    sources = [source_by_name(session, name) for name in dedupe_names(source_names)]
    locks.lock_sources(session, (), (s.id for s in sources if s.id is not None))
    unlinked = []
    for source in sources:
        link = session.get(AccountSource, (account.id, source.id))
        if link is None:
            continue
        unlinked.append(int(source.id or 0))
        remaining = session.exec(
            select(func.count()).select_from(AccountSource)
            .where(AccountSource.source_id == source.id)
        ).one()
        if remaining <= 1:
            raise RefusedError(
                f"source {source.name!r} would have no linked account left; a source keeps at "
                "least one (link it to another account first)"
            )
        session.delete(link)
        session.flush()
    return unlinked


def _record(session: Session, account: Account, *, actor: str, action: str,
            sources: Sequence[int] = ()) -> None:
    """The account's change, then that of each source whose links it changed."""
    record_change(session, kind="account", key=int(account.id or 0), actor=actor,
                  action=action)
    for source_id in sources:
        record_change(session, kind="source", key=source_id, actor=actor, action="link",
                      reason=f"linked or unlinked by account {account.name!r}")


def create_account(
    session: Session,
    *,
    name: str,
    group: str | None = None,
    is_default: bool = False,
    allow_negative: bool = True,
    max_balance: int | None = None,
    qualifying: bool = False,
    pending_for: str | None = None,
    qualifying_weight: int | None = None,
    non_qualifying_weight: int | None = None,
    link: Sequence[str] = (),
    max_debt: int | None = None,
    transfer_min: int | None = None,
    transfer_max: int | None = None,
    transfer_yearly_max: int | None = None,
    actor: str,
) -> dict[str, Any]:
    name = clean_name(name, what="account")
    weights = _weights(qualifying_weight, non_qualifying_weight)
    pending = _clean_pending(pending_for)
    if max_debt is not None:
        check_points(max_debt, what="--max-debt")
    limits = _limits({"transfer_min": transfer_min, "transfer_max": transfer_max,
                      "transfer_yearly_max": transfer_yearly_max})
    _check_flags(is_default=is_default, qualifying=qualifying, pending_for=pending, name=name,
                 allow_negative=allow_negative, max_debt=max_debt, limits=limits)
    if max_balance is not None:
        check_points(max_balance, what="--max-balance")
    group_label = _clean_group(group)
    ensure_name_free(session, Account, name)
    moment = clock.now()
    account = Account(
        name=name, name_key=name_key(name), group_label=group_label, status="active",
        is_default=is_default, allow_negative=allow_negative, max_balance=max_balance,
        max_debt=max_debt, **limits,
        qualifying=qualifying, pending_for=pending, created_at=moment, updated_at=moment,
        **weights,
    )
    session.add(account)
    flush_unique(session, Account, name)
    linked = _link_sources(session, account, link)
    session.flush()
    _record(session, account, actor=actor, action="create", sources=linked)
    return describe_account(session, account)


def list_accounts(
    session: Session,
    *,
    search: str | None = None,
    status: str | None = None,
    sort: str = "name",
    descending: bool = False,
) -> list[dict[str, Any]]:
    query = select(Account)
    if status is not None:
        query = query.where(Account.status == status)
    names = source_names_by_account(session)
    rows = [describe_account(session, account, names.get(account.id, []))
            for account in session.exec(query).all()]
    return search_and_sort(rows, search=search, search_fields=("name", "group"),
                           sorts=ACCOUNT_SORTS, sort=sort, descending=descending)


def show_account(session: Session, *, name: str) -> dict[str, Any]:
    return describe_account(session, account_by_name(session, name))


def edit_account(
    session: Session,
    *,
    name: str,
    new_name: str | None = None,
    group: str | None = UNSET,
    is_default: bool | None = None,
    allow_negative: bool | None = None,
    max_balance: int | None = UNSET,
    qualifying: bool | None = None,
    pending_for: str | None = UNSET,
    qualifying_weight: int | None = UNSET,
    non_qualifying_weight: int | None = UNSET,
    link: Sequence[str] = (),
    unlink: Sequence[str] = (),
    max_debt: int | None = UNSET,
    transfer_min: int | None = UNSET,
    transfer_max: int | None = UNSET,
    transfer_yearly_max: int | None = UNSET,
    actor: str,
    check_tiers: bool = True,
) -> dict[str, Any]:
    """Change the given fields of an active account; UNSET leaves a field, None clears it.
    ``check_tiers=False``: a program file moves the tiers too (checked once it is applied)."""
    weights = _weights(qualifying_weight, non_qualifying_weight)
    account = account_by_name(session, name, lock=True)
    if account.status != "active":
        raise RefusedError(
            f"account {account.name!r} is inactive; only active accounts can be edited "
            f"(run 'pointctl accounts activate {account.name}' first)"
        )
    if new_name is not None:
        new_name = clean_name(new_name, what="account")
        ensure_name_free(session, Account, new_name, except_id=account.id)
        account.name, account.name_key = new_name, name_key(new_name)
    if group is not UNSET:
        account.group_label = _clean_group(group)
    if is_default is not None:
        account.is_default = is_default
    turning_off = allow_negative is False and account.allow_negative
    if allow_negative is not None:
        account.allow_negative = allow_negative
    if max_balance is not UNSET:
        if max_balance is not None:
            check_points(max_balance, what="--max-balance")
        account.max_balance = max_balance
    if qualifying is False and account.qualifying and check_tiers:
        from pointctl.services.tiers import qualifying_account_id

        if qualifying_account_id(session) == account.id:
            raise RefusedError(f"account {account.name!r} is the tiers' qualifying account; it "
                               "stays tier qualifying while tiers count it (pointctl tiers set "
                               "--account ANOTHER, or tiers clear)")
    if qualifying is not None:
        account.qualifying = qualifying
    if pending_for is not UNSET:
        account.pending_for = _clean_pending(pending_for)
    for key, value in weights.items():
        setattr(account, key, value)
    if max_debt is not UNSET:
        if max_debt is not None:
            check_points(max_debt, what="--max-debt")
        account.max_debt = max_debt
    given = {"transfer_min": transfer_min, "transfer_max": transfer_max,
             "transfer_yearly_max": transfer_yearly_max}
    for key, value in _limits({k: v for k, v in given.items() if v is not UNSET}).items():
        setattr(account, key, value)
    _check_flags(is_default=account.is_default, qualifying=account.qualifying,
                 pending_for=account.pending_for, name=account.name,
                 allow_negative=account.allow_negative, max_debt=account.max_debt,
                 limits={key: getattr(account, key) for key in TRANSFER_LIMITS})
    if turning_off:  # (after the settings' own checks: bad input is exit 2 whoever owes)
        owing = session.exec(select(func.count()).select_from(Balance).where(
            Balance.account_id == account.id, Balance.debt > 0)).one()
        if owing:
            raise RefusedError(
                f"{owing} users owe points (debt) in account {account.name!r}; negative "
                "balances cannot be turned off until the debts are repaid"
            )
    account.updated_at = clock.now()
    session.add(account)
    flush_unique(session, Account, account.name)
    changed = _link_sources(session, account, link)
    changed += _unlink_sources(session, account, unlink)
    session.flush()
    _record(session, account, actor=actor, action="edit", sources=changed)
    return describe_account(session, account)


def set_account_status(session: Session, *, name: str, status: str, actor: str
                       ) -> dict[str, Any]:
    """Activate or deactivate; asking for the status it already has changes nothing."""
    account = account_by_name(session, name, lock=True)
    changed = account.status != status
    if changed:
        account.status = status
        account.updated_at = clock.now()
        session.add(account)
        session.flush()
        _record(session, account, actor=actor,
                action="activate" if status == "active" else "deactivate")
    return {**describe_account(session, account), "changed": changed}

