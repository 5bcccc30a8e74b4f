"""The program's configuration as data: each account's, source's and setting's state in the
form ``config export`` writes, and the differences between two such states.

A *state* names other objects by id (a source's linked accounts, a rolling policy's rollover
account), so that a state recorded before an account was renamed still reads right after it;
``document`` turns states into the export form, with names, and the inventories to show. A
source's state says only whether it is limited: its inventory changes with every issue and is
read from the source row (now) or worked out from the ledger (at a past moment).

``config export`` builds its document here, and the change history (``changes``) records these
states, so both always agree on what the program is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from pointctl.core.money import value_text
from pointctl.db.models import (
    Account,
    AccountSource,
    ExpirationPolicy,
    Restriction,
    Setting,
    Source,
    TierLevel,
    TierProgram,
)
from pointctl.services import settings

# the fields of each kind, in the file's order (a state holds those that are set)
ACCOUNT_FIELDS = ("name", "group", "default", "allow_negative", "max_debt", "max_balance",
                  "qualifying",
                  "pending_for", "qualifying_weight", "non_qualifying_weight",
                  "transfer_min", "transfer_max", "transfer_yearly_max", "status",
                  "expiration", "reactivation")
SOURCE_FIELDS = ("name", "inventory", "accounts", "status", "value", "currency",
                 "restrictions")
TIERS_FIELDS = ("account", "window", "keep", "every", "levels")
SETTINGS = tuple(settings.SETTINGS)


def show(value: Any) -> str:
    """A field's value in a plan or a change note."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


# --- reading states -------------------------------------------------------------------------

def _fresh(query: Any) -> Any:
    # rows changed by the ledger engine's own statements are read again, not taken from the
    # session's identity map
    return query.execution_options(populate_existing=True)


def account_states(session: Session, ids: Sequence[int] | None = None) -> dict[int, dict[str,
                                                                                       Any]]:
    """The states of these accounts (all when ``ids`` is None), by id, in id order."""
    query = select(Account).order_by(Account.id)
    policies = select(ExpirationPolicy)
    if ids is not None:
        query = query.where(col(Account.id).in_(list(ids)))
        policies = policies.where(col(ExpirationPolicy.account_id).in_(list(ids)))
    rules = {p.account_id: p for p in session.execute(_fresh(policies)).scalars()}
    states = {}
    for account in session.execute(_fresh(query)).scalars():
        item: dict[str, Any] = {"name": account.name}
        if account.group_label:
            item["group"] = account.group_label
        item.update({"default": account.is_default, "allow_negative": account.allow_negative,
                     "qualifying": account.qualifying})
        if account.max_debt is not None:
            item["max_debt"] = account.max_debt
        if account.max_balance is not None:
            item["max_balance"] = account.max_balance
        if account.pending_for:
            item["pending_for"] = account.pending_for
        for key in ("qualifying_weight", "non_qualifying_weight", "transfer_min",
                    "transfer_max", "transfer_yearly_max"):
            if getattr(account, key) is not None:
                item[key] = getattr(account, key)
        item["status"] = account.status
        policy = rules.get(account.id or 0)
        if policy is not None:
            item["expiration"] = _policy(policy)
        if account.reactivation_window:
            item["reactivation"] = {"window": account.reactivation_window}
            if account.reactivation_min_points:
                item["reactivation"]["min_points"] = account.reactivation_min_points
        states[int(account.id or 0)] = item
    return states


def _policy(policy: ExpirationPolicy) -> dict[str, Any]:
    found: dict[str, Any] = {"type": policy.kind, "every": policy.schedule}
    if policy.kind == "rolling":
        found["older_than"] = policy.older_than
        if policy.rollover_to_id:
            found["rollover_to"] = policy.rollover_to_id  # an id until ``document``
        if policy.snap_to:
            found["snap_to"] = policy.snap_to
    elif policy.kind == "fixed-date":
        found["date"] = policy.fixed_date
        if policy.min_age:
            found["min_age"] = policy.min_age
    else:
        found.update(inactive_for=policy.inactive_for, percent=policy.percent,
                     activity=(policy.activity or "").split(","))
    return found


def source_states(session: Session, ids: Sequence[int] | None = None
                  ) -> tuple[dict[int, dict[str, Any]], dict[int, int | None]]:
    """The states of these sources (all when ``ids`` is None), by id, and their inventories
    now (None: unlimited)."""
    query = select(Source).order_by(Source.id)
    links = select(AccountSource).order_by(AccountSource.account_id)
    rules = select(Restriction).order_by(Restriction.id)
    if ids is not None:
        query = query.where(col(Source.id).in_(list(ids)))
        links = links.where(col(AccountSource.source_id).in_(list(ids)))
        rules = rules.where(col(Restriction.source_id).in_(list(ids)))
    linked: dict[int, list[int]] = {}
    for link in session.execute(links).scalars():
        linked.setdefault(link.source_id, []).append(link.account_id)
    limits: dict[int, list[dict[str, Any]]] = {}
    for rule in session.execute(_fresh(rules)).scalars():
        limits.setdefault(rule.source_id, []).append(
            {"max_points": rule.max_points, "per": rule.per, "per_customer": rule.per_customer})
    states, inventories = {}, {}
    for source in session.execute(_fresh(query)).scalars():
        key = int(source.id or 0)
        states[key] = {
            "name": source.name,
            "inventory": "unlimited" if source.inventory is None else "limited",
            "accounts": linked.get(key, []), "status": source.status,
            **({} if source.value_micros is None else {
                "value": value_text(source.value_micros), "currency": source.currency}),
            "restrictions": limits.get(key, [])}
        inventories[key] = source.inventory
    return states, inventories


def setting_states(session: Session, keys: Sequence[str] = SETTINGS) -> dict[str, dict[str,
                                                                                     Any]]:
    rows = session.execute(_fresh(select(Setting).where(
        col(Setting.key).in_(list(keys))))).scalars()
    return {row.key: {"value": row.value} for row in rows}


def tiers_state(session: Session) -> dict[str, Any]:
    """The tiers' state (the qualifying account by id); empty when there are none."""
    program = session.execute(_fresh(select(TierProgram))).scalars().first()
    if program is None:
        return {}
    state: dict[str, Any] = {"account": program.account_id, "window": program.window}
    if program.keep:
        state["keep"] = program.keep
    state["every"] = program.schedule
    state["levels"] = [{"name": level.name, "points": level.threshold} for level in
                       session.execute(_fresh(select(TierLevel).order_by(
                           col(TierLevel.position)))).scalars()]
    return state


# --- states as the file's document ----------------------------------------------------------

def resolve_account(state: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    rule = state.get("expiration")
    if rule and isinstance(rule.get("rollover_to"), int):
        return {**state, "expiration": {**rule, "rollover_to": names.get(
            rule["rollover_to"], f"#{rule['rollover_to']}")}}
    return state


def resolve_source(state: dict[str, Any], names: dict[int, str],
                   inventory: int | None | str = None) -> dict[str, Any]:
    """``inventory``: the number to show, or None to keep "limited"/"unlimited"."""
    item = {**state, "accounts": [names.get(a, f"#{a}") if isinstance(a, int) else a
                                  for a in state.get("accounts", [])]}
    if state.get("inventory") == "limited" and inventory is not None:
        item["inventory"] = inventory
    return item


def resolve_tiers(state: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    into = state.get("account")
    if isinstance(into, int):
        return {**state, "account": names.get(into, f"#{into}")}
    return state


def document(accounts: dict[int, dict[str, Any]], sources: dict[int, dict[str, Any]],
             settings: dict[str, dict[str, Any]], inventories: dict[int, int | None],
             tiers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The export form: program settings, then accounts and sources in creation (id) order,
    then the tiers (when there are any)."""
    names = {key: state["name"] for key, state in accounts.items()}
    found = {
        "program": {key: settings[key]["value"] for key in SETTINGS if key in settings},
        "accounts": [resolve_account(accounts[key], names) for key in sorted(accounts)],
        "sources": [resolve_source(sources[key], names,
                                   inventories.get(key, 0) if sources[key]["inventory"] ==
                                   "limited" else None)
                    for key in sorted(sources)],
    }
    if tiers:
        found["tiers"] = resolve_tiers(tiers, names)
    return found


def current(session: Session) -> dict[str, Any]:
    """The whole program now, in the file's form."""
    sources, inventories = source_states(session)
    return document(account_states(session), sources, setting_states(session), inventories,
                    tiers_state(session))


# --- differences ----------------------------------------------------------------------------

def differences(old: dict[str, Any], new: dict[str, Any], kind: str
                ) -> list[tuple[str, Any, Any]]:
    """What differs between two states of an account or a source in the file's form, field by
    field (names compared without case, lists of links and restrictions without order)."""
    changes = []
    fields = {"account": ACCOUNT_FIELDS, "source": SOURCE_FIELDS, "tiers": TIERS_FIELDS}[kind]
    for key in fields:
        before, after = old.get(key), new.get(key)
        if kind == "tiers" and key == "account" and before and after:
            before, after = str(before).casefold(), str(after).casefold()
        if key == "expiration" and before and after:
            before, after = _comparable(before), _comparable(after)
        if key == "accounts":
            if sorted(str(x).casefold() for x in before or []) == \
                    sorted(str(x).casefold() for x in after or []):
                continue
        if key == "restrictions":
            if sorted(map(_rule_key, before or [])) == sorted(map(_rule_key, after or [])):
                continue
        if before != after:
            changes.append((key, old.get(key), new.get(key)))
    return changes


def _comparable(rule: dict[str, Any]) -> dict[str, Any]:
    into = rule.get("rollover_to")
    return {**rule, "rollover_to": into.casefold()} if isinstance(into, str) else rule


def _rule_key(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (rule["per"], rule["per_customer"], rule["max_points"])
