"""Configuration as code: the whole program (time zone, accounts with their expiration and
reactivation, sources with links, inventory and restrictions) as one TOML document.

``export`` reads the database into that document; ``plan`` compares a file with it (create /
update field: old -> new / unchanged); ``apply`` carries the plan out through the same services
the commands use, in the caller's one transaction. A file is checked whole before anything is
planned: every problem is reported with its table path (and line, for TOML syntax).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from pointctl.core.durations import parse_duration
from pointctl.core.errors import InvalidInputError, PointctlError, RefusedError
from pointctl.core.expiry import SNAP_TO, check_fixed_date
from pointctl.core.money import parse_point_value, point_value, value_text
from pointctl.core.schedules import parse_schedule
from pointctl.core.validation import MAX_POINTS, check_weight, clean_name
from pointctl.db.models import Restriction
from pointctl.services import accounts as account_service
from pointctl.services import (
    expiry,
    program_state,
    reactivation,
    restrictions,
    settings,
    tiers,
)
from pointctl.services import sources as source_service
from pointctl.services.changes import change_set
from pointctl.services.lookup import source_by_name
from pointctl.services.program_state import (
    ACCOUNT_FIELDS,
    SETTINGS,
    SOURCE_FIELDS,
    TIERS_FIELDS,
    show,
)

KEYS: dict[str, tuple[str, ...]] = {
    "": ("program", "accounts", "sources", "tiers"),
    "program": SETTINGS,
    "accounts": ACCOUNT_FIELDS,
    "expiration": ("type", "every", "older_than", "rollover_to", "snap_to", "date", "min_age",
                   "inactive_for", "percent", "activity"),
    "reactivation": ("window", "min_points"),
    "sources": SOURCE_FIELDS,
    "restrictions": ("max_points", "per", "per_customer"),
    "tiers": TIERS_FIELDS,
    "levels": ("name", "points"),
}
ACCOUNT_DEFAULTS = {"default": False, "allow_negative": True, "qualifying": False,
                    "status": "active"}
POLICY_FIELDS = {"rolling": ("older_than", "rollover_to", "snap_to"),
                 "fixed-date": ("date", "min_age"),
                 "inactivity": ("inactive_for", "percent", "activity")}


@dataclass
class Step:
    kind: str  # account, source, program
    name: str
    action: str  # create, update, unchanged, deactivate, pause
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)

    def text(self) -> str:
        what = "tiers" if self.kind == "tiers" else f"{self.kind} {self.name!r}"
        if self.action == "update":
            return f"update {what}: " + "; ".join(
                f"{name}: {show(old)} -> {show(new)}" for name, old, new in self.changes)
        return f"{self.action} {what}"


# --- reading and checking a file ------------------------------------------------------------

class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def keys(self, table: Any, path: str, kind: str) -> bool:
        if not isinstance(table, dict):
            self.fail(path, "expected a table")
            return False
        allowed = KEYS[kind]
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else \
                    f" (known keys: {', '.join(allowed)})"
                self.fail(f"{path}.{key}" if path else key, f"unknown key{hint}")
        return True

    def typed(self, table: dict[str, Any], key: str, path: str, kinds: tuple[type, ...],
              what: str) -> Any:
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            self.fail(f"{path}.{key}", f"expected {what}, not {value!r}")
            return None
        return value

    def points(self, table: dict[str, Any], key: str, path: str, minimum: int = 1
               ) -> int | None:
        value = self.typed(table, key, path, (int,), "a number of points")
        if value is not None and not minimum <= value <= MAX_POINTS:
            self.fail(f"{path}.{key}", f"must be between {minimum} and {MAX_POINTS}")
            return None
        return value

    def name(self, table: dict[str, Any], path: str, what: str) -> str:
        value = self.typed(table, "name", path, (str,), "a name")
        if value is None:
            self.fail(f"{path}.name", f"required: every {what} needs a name")
            return ""
        try:
            return clean_name(value, what=what)
        except InvalidInputError as error:
            self.fail(f"{path}.name", error.message)
            return ""

    def duration(self, table: dict[str, Any], key: str, path: str) -> str | None:
        value = self.typed(table, key, path, (str,), "a duration such as \"30d\"")
        if value is None:
            return None
        try:
            return str(parse_duration(value, what=key))
        except InvalidInputError as error:
            self.fail(f"{path}.{key}", error.message)
            return None


def parse(text: str) -> dict[str, Any]:
    """The TOML document, checked and normalised (the export form); exit 2 listing every
    problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInputError(f"the file is not valid TOML: {error}") from None
    check = _Checker()
    check.keys(document, "", "")
    program: dict[str, Any] = {}
    if "program" in document and check.keys(document["program"], "program", "program"):
        zone = check.typed(document["program"], "timezone", "program", (str,), "a time zone")
        if zone is not None:
            from pointctl.core.clock import load_zone

            try:
                program["timezone"] = load_zone(zone).key
            except InvalidInputError as error:
                check.fail("program.timezone", error.message)
    accounts = [_account(check, table, f"accounts[{n}]")
                for n, table in enumerate(_array(check, document, "accounts"))]
    sources = [_source(check, table, f"sources[{n}]")
               for n, table in enumerate(_array(check, document, "sources"))]
    found_tiers = _tiers(check, document["tiers"]) if "tiers" in document else None
    for kind, items in (("accounts", accounts), ("sources", sources)):
        seen: dict[str, int] = {}
        for n, item in enumerate(items):
            key = str(item.get("name") or "").casefold()
            if key and key in seen:
                check.fail(f"{kind}[{n}].name", f"duplicate name {item['name']!r} (also "
                                                f"{kind}[{seen[key]}])")
            seen.setdefault(key, n)
    if check.errors:
        raise InvalidInputError(f"{len(check.errors)} problem{'s' if len(check.errors) > 1 else ''}"
                                " in the file, nothing applied: " + "; ".join(check.errors))
    return {"program": program, "accounts": accounts, "sources": sources, "tiers": found_tiers}


def _array(check: _Checker, document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        check.fail(key, f"expected [[{key}]] tables")
        return []
    return value


def _account(check: _Checker, table: Any, path: str) -> dict[str, Any]:
    if not check.keys(table, path, "accounts"):
        return {}
    account: dict[str, Any] = {"name": check.name(table, path, "account")}
    group = check.typed(table, "group", path, (str,), "a label")
    if group and group.strip():
        account["group"] = group.strip()
    for key in ("default", "allow_negative", "qualifying"):
        value = check.typed(table, key, path, (bool,), "true or false")
        account[key] = ACCOUNT_DEFAULTS[key] if value is None else value
    for key in ("max_debt", "max_balance", *account_service.TRANSFER_LIMITS):
        limit = check.points(table, key, path)
        if limit is not None:
            account[key] = limit
    pending = check.duration(table, "pending_for", path)
    if pending:
        account["pending_for"] = pending
    for key in ("qualifying_weight", "non_qualifying_weight"):
        weight = check.typed(table, key, path, (int,), "a whole number from 0")
        if weight is not None:
            try:
                account[key] = check_weight(weight, what=key)
            except InvalidInputError as error:
                check.fail(f"{path}.{key}", error.message)
    conflict = account_service.flag_conflict(
        is_default=account["default"], qualifying=account["qualifying"], pending_for=pending,
        allow_negative=account["allow_negative"], max_debt=account.get("max_debt"),
        **{key: account.get(key) for key in account_service.TRANSFER_LIMITS})
    if conflict is not None:
        check.fail(f"{path}.{conflict[0]}", conflict[1])
    status = check.typed(table, "status", path, (str,), "active or inactive") or "active"
    if status not in ("active", "inactive"):
        check.fail(f"{path}.status", f"expected active or inactive, not {status!r}")
    account["status"] = status
    if "expiration" in table:
        account["expiration"] = _expiration(check, table["expiration"], f"{path}.expiration")
    if "reactivation" in table and check.keys(table["reactivation"], f"{path}.reactivation",
                                              "reactivation"):
        rule = table["reactivation"]
        window = check.duration(rule, "window", f"{path}.reactivation")
        if window is None and "window" not in rule:
            check.fail(f"{path}.reactivation.window", "required")
        found: dict[str, Any] = {"window": window}
        if account["qualifying"]:
            check.fail(f"{path}.reactivation", "a tier qualifying account's points cannot be "
                                               "reactivated")
        minimum = check.points(rule, "min_points", f"{path}.reactivation")
        if minimum is not None:
            found["min_points"] = minimum
        account["reactivation"] = found
    return account


def _tiers(check: _Checker, table: Any, path: str = "tiers") -> dict[str, Any]:
    """``[tiers]``: account, window, keep, every and ``[[tiers.levels]]`` (name, points)."""
    if not check.keys(table, path, "tiers"):
        return {}
    found: dict[str, Any] = {}
    account = check.typed(table, "account", path, (str,), "an account name")
    if account is None:
        check.fail(f"{path}.account", "required: the tier qualifying account")
    found["account"] = (account or "").strip()
    for key, parse_value in (("window", tiers.check_window), ("keep", tiers.check_keep)):
        value = check.typed(table, key, path, (str,), "a duration such as \"12mo\"")
        try:
            if value is not None or key == "window":
                found[key] = parse_value(value if value is not None else "12mo")
        except InvalidInputError as error:
            check.fail(f"{path}.{key}", error.message)
    every = check.typed(table, "every", path, (str,), "a schedule such as \"daily\"")
    try:
        found["every"] = parse_schedule(every or "daily").text
    except InvalidInputError as error:
        check.fail(f"{path}.every", error.message)
    levels = table.get("levels")
    if not isinstance(levels, list) or not levels:
        check.fail(f"{path}.levels", "required: [[tiers.levels]] tables with name and points")
        return found
    given = []
    for n, level in enumerate(levels):
        where = f"{path}.levels[{n}]"
        if not check.keys(level, where, "levels"):
            continue
        name = check.name(level, where, "tier level")
        points = check.points(level, "points", where)
        if points is None and "points" not in level:
            check.fail(f"{where}.points", "required: the qualifying points the level needs")
        if name and points is not None:
            given.append((name, points))
    try:
        found["levels"] = [{"name": name, "points": points}
                           for name, points in tiers.check_levels(given)]
    except InvalidInputError as error:
        check.fail(f"{path}.levels", error.message)
    return found


def _expiration(check: _Checker, rule: Any, path: str) -> dict[str, Any]:
    if not check.keys(rule, path, "expiration"):
        return {}
    kind = check.typed(rule, "type", path, (str,), "rolling, fixed-date or inactivity")
    if kind not in POLICY_FIELDS:
        check.fail(f"{path}.type", "required: rolling, fixed-date or inactivity"
                   if kind is None else f"expected rolling, fixed-date or inactivity, not "
                   f"{kind!r}")
        return {}
    every = check.typed(rule, "every", path, (str,), "a schedule such as \"daily\"") or "daily"
    try:
        every = parse_schedule(every).text
    except InvalidInputError as error:
        check.fail(f"{path}.every", error.message)
    found: dict[str, Any] = {"type": kind, "every": every}
    for key in rule:
        if key in KEYS["expiration"] and key not in ("type", "every") and \
                key not in POLICY_FIELDS[kind]:
            check.fail(f"{path}.{key}", f"does not apply to a {kind} policy")
    if kind == "rolling":
        found["older_than"] = check.duration(rule, "older_than", path)
        if "older_than" not in rule:
            check.fail(f"{path}.older_than", "required for a rolling policy")
        for key in ("rollover_to", "snap_to"):
            value = check.typed(rule, key, path, (str,), "text")
            if value is None:
                continue
            value = value.strip()
            if key == "snap_to":
                value = value.lower()
                if value not in SNAP_TO:
                    check.fail(f"{path}.snap_to", f"expected {', '.join(SNAP_TO)}, not "
                                                  f"{value!r}")
            elif not value:
                check.fail(f"{path}.rollover_to", "expected an account name")
            found[key] = value
    elif kind == "fixed-date":
        date = check.typed(rule, "date", path, (str,), "a date such as \"12-31\"")
        if date is None:
            check.fail(f"{path}.date", "required for a fixed-date policy")
        else:
            date = date.strip()
            problem = check_fixed_date(date)
            if problem:
                check.fail(f"{path}.date", f"invalid date {date!r}: {problem}")
        found["date"] = date
        if "min_age" in rule:
            found["min_age"] = check.duration(rule, "min_age", path)
    else:
        found["inactive_for"] = check.duration(rule, "inactive_for", path)
        if "inactive_for" not in rule:
            check.fail(f"{path}.inactive_for", "required for an inactivity policy")
        percent = check.typed(rule, "percent", path, (int,), "a number")
        if percent is not None and not 1 <= percent <= 100:
            check.fail(f"{path}.percent", f"must be between 1 and 100, not {percent}")
        found["percent"] = 100 if percent is None else percent
        activity = rule.get("activity")
        found["activity"] = list(expiry.DEFAULT_ACTIVITY)
        if activity is not None:
            if not isinstance(activity, list) or not all(isinstance(a, str) for a in activity):
                check.fail(f"{path}.activity", "expected a list of event names")
            else:
                try:
                    found["activity"] = expiry.events(activity).split(",")
                except InvalidInputError as error:
                    check.fail(f"{path}.activity", error.message)
    return found


def _source(check: _Checker, table: Any, path: str) -> dict[str, Any]:
    if not check.keys(table, path, "sources"):
        return {}
    source: dict[str, Any] = {"name": check.name(table, path, "source")}
    inventory = table.get("inventory", "unlimited")
    if inventory != "unlimited" and (isinstance(inventory, bool) or
                                     not isinstance(inventory, int) or inventory < 0):
        check.fail(f"{path}.inventory", f"expected a number of points or \"unlimited\", not "
                                        f"{inventory!r}")
    source["inventory"] = inventory
    links = table.get("accounts")
    if not isinstance(links, list) or not links or \
            not all(isinstance(a, str) and a.strip() for a in links):
        check.fail(f"{path}.accounts", "required: a list of at least one account name")
        links = []
    source["accounts"] = [a.strip() for a in links]
    folded = [a.casefold() for a in source["accounts"]]
    if len(set(folded)) != len(folded):
        check.fail(f"{path}.accounts", "an account is listed twice")
    status = check.typed(table, "status", path, (str,), "active, paused or archived") or "active"
    if status not in ("active", "paused", "archived"):
        check.fail(f"{path}.status", f"expected active, paused or archived, not {status!r}")
    source["status"] = status
    if "value" in table or "currency" in table:
        if isinstance(table.get("value"), float):
            check.fail(f"{path}.value", f"write the value as text, value = \"{table['value']}\" "
                                        "(a TOML float is binary, not the decimal meant)")
        elif not isinstance(table.get("currency", ""), str):
            check.fail(f"{path}.currency", "expected a currency code such as \"USD\"")
        else:
            try:
                worth = point_value(parse_point_value(table.get("value"),
                                                      table.get("currency")))
            except InvalidInputError as error:
                key = "currency" if error.message.startswith("--currency") else "value"
                check.fail(f"{path}.{key}", error.message.replace("--value", "value")
                           .replace("--currency", "currency"))
            else:
                assert worth is not None
                source["value"], source["currency"] = value_text(worth[0]), worth[1]
    if inventory == 0 and status == "active":
        check.fail(f"{path}.inventory", "a source with no inventory cannot be active: set "
                                        "status = \"paused\" or give it inventory")
    if status == "archived" and inventory not in (0, "unlimited"):
        check.fail(f"{path}.inventory", "an archived source's inventory has expired: "
                                        "inventory = 0")
    rules: list[dict[str, Any]] = []
    listed = table.get("restrictions", [])
    if not isinstance(listed, list):
        check.fail(f"{path}.restrictions", "expected [[sources.restrictions]] tables")
        listed = []
    for n, rule in enumerate(listed):
        where = f"{path}.restrictions[{n}]"
        if not check.keys(rule, where, "restrictions"):
            continue
        most = check.typed(rule, "max_points", where, (int,), "a number of points")
        if most is None or most < 1:
            check.fail(f"{where}.max_points", "required: a positive number of points")
        per = check.duration(rule, "per", where)
        if "per" not in rule:
            check.fail(f"{where}.per", "required: a window such as \"1d\"")
        per_customer = check.typed(rule, "per_customer", where, (bool,), "true or false")
        rule_key = (per, bool(per_customer))
        if any((r["per"], r["per_customer"]) == rule_key for r in rules):
            check.fail(where, f"a second {'per-customer' if per_customer else 'system'} limit "
                              f"per {per}; one limit per window and scope")
        rules.append({"max_points": most, "per": per, "per_customer": bool(per_customer)})
    source["restrictions"] = rules
    return source


# --- the database as a document -------------------------------------------------------------

def export(session: Session) -> dict[str, Any]:
    """The whole program in the file's form (accounts and sources in creation order)."""
    return program_state.current(session)


def to_toml(document: dict[str, Any]) -> str:
    import tomli_w

    clean = {key: value for key, value in document.items() if value}
    for source in clean.get("sources", []):
        if not source.get("restrictions"):
            source.pop("restrictions", None)
    return tomli_w.dumps(clean)


# --- plan and apply -------------------------------------------------------------------------

def plan(session: Session, wanted: dict[str, Any], *, prune: bool = False) -> list[Step]:
    have = export(session)
    steps: list[Step] = []
    zone = wanted["program"].get("timezone")
    if zone is not None and zone != have["program"].get("timezone"):
        steps.append(Step("setting", "timezone", "update",
                          [("timezone", have["program"].get("timezone"), zone)]))
    known_accounts = {a["name"].casefold() for a in have["accounts"]} | \
        {a["name"].casefold() for a in wanted["accounts"]}
    problems = []
    for n, account in enumerate(wanted["accounts"]):
        into = account.get("expiration", {}).get("rollover_to")
        if into and into.casefold() not in known_accounts:
            problems.append(f"accounts[{n}].expiration.rollover_to: no account named {into!r} "
                            "in the file or the database")
    for n, source in enumerate(wanted["sources"]):
        for name in source["accounts"]:
            if name.casefold() not in known_accounts:
                problems.append(f"sources[{n}].accounts: no account named {name!r} in the "
                                "file or the database")
    wanted_tiers = wanted.get("tiers")
    if wanted_tiers and wanted_tiers["account"].casefold() not in known_accounts:
        problems.append(f"tiers.account: no account named {wanted_tiers['account']!r} in the "
                        "file or the database")
    if problems:
        raise InvalidInputError(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in "
                                "the file, nothing applied: " + "; ".join(problems))
    for kind, key in (("account", "accounts"), ("source", "sources")):
        current = {item["name"].casefold(): item for item in have[key]}
        named = set()
        for item in wanted[key]:
            named.add(item["name"].casefold())
            old = current.get(item["name"].casefold())
            if old is None:
                steps.append(Step(kind, item["name"], "create"))
                continue
            changes = program_state.differences(old, item, kind)
            steps.append(Step(kind, old["name"], "update" if changes else "unchanged", changes))
        if prune:
            for name, old in current.items():
                gone = "deactivate" if kind == "account" else "pause"
                if name not in named and old["status"] == "active":
                    steps.append(Step(kind, old["name"], gone))
    had = have.get("tiers")
    if wanted_tiers:
        changes = program_state.differences(had or {}, wanted_tiers, "tiers")
        steps.append(Step("tiers", "tiers", "create" if had is None else
                          "update" if changes else "unchanged", changes if had else []))
    elif had and prune:
        steps.append(Step("tiers", "tiers", "remove"))
    return steps


def apply(session: Session, *, text: str, prune: bool = False, dry_run: bool = False,
          actor: str, yes: bool = False) -> dict[str, Any]:
    """Plan and carry out (``dry_run`` only marks the result: the caller rolls back). What
    ``prune`` would deactivate or pause is refused without ``yes`` (a dry run only shows
    it)."""
    wanted = parse(text)
    steps = plan(session, wanted, prune=prune)
    pruned = [s for s in steps if s.action in ("deactivate", "pause", "remove")]
    if pruned and not dry_run and not yes:
        listed = ", ".join(s.text() for s in pruned[:10])
        more = f" and {len(pruned) - 10} more" if len(pruned) > 10 else ""
        raise RefusedError(f"--prune would {listed}{more}; pass --yes to confirm (--dry-run "
                           "shows the whole plan)")
    with change_set(session, actor=actor, action="config apply"):
        _carry_out(session, wanted, steps, actor=actor)
        _at("tiers.account", lambda: tiers.check_account(session))
    return {"steps": [{"kind": s.kind, "name": s.name, "action": s.action,
                       "changes": [{"field": f, "old": o, "new": n} for f, o, n in s.changes],
                       "text": s.text()} for s in steps],
            "changed": sum(s.action != "unchanged" for s in steps), "dry_run": dry_run}


def _at(path: str, work: Any) -> None:
    try:
        work()
    except PointctlError as error:
        error.message = f"{path}: {error.message}"
        error.args = (error.message,)
        raise


def _carry_out(session: Session, wanted: dict[str, Any], steps: Sequence[Step], *,
               actor: str) -> None:
    by_name = {(s.kind, s.name.casefold()): s for s in steps}
    if "timezone" in wanted["program"]:
        settings.set_value(session, key="timezone", value=wanted["program"]["timezone"],
                           actor=actor)
    for n, item in enumerate(wanted["accounts"]):
        step = by_name[("account", item["name"].casefold())]
        path = f"accounts[{n}]"
        if step.action == "create":
            _at(path, lambda item=item: account_service.create_account(
                session, name=item["name"], group=item.get("group"), is_default=item["default"],
                allow_negative=item["allow_negative"], max_balance=item.get("max_balance"),
                max_debt=item.get("max_debt"),
                **{key: item.get(key) for key in account_service.TRANSFER_LIMITS},
                qualifying=item["qualifying"], pending_for=item.get("pending_for"),
                qualifying_weight=item.get("qualifying_weight"),
                non_qualifying_weight=item.get("non_qualifying_weight"), actor=actor))
        elif step.action == "update":
            _at(path, lambda item=item, step=step: _update_account(session, item, step,
                                                                   actor=actor))
    for n, item in enumerate(wanted["sources"]):
        step = by_name[("source", item["name"].casefold())]
        _at(f"sources[{n}]", lambda item=item, step=step: _put_source(session, item, step,
                                                                      actor=actor))
    # a change of qualifying re-checks every policy and reactivation rule against it
    requalified = any(name == "qualifying" for step in steps for name, _, _ in step.changes)
    for n, item in enumerate(wanted["accounts"]):
        step = by_name[("account", item["name"].casefold())]
        fields = {name for name, _, _ in step.changes}
        if requalified:
            fields |= {"expiration", "reactivation"}
        path = f"accounts[{n}]"
        if step.action == "create" or "expiration" in fields:
            _at(f"{path}.expiration", lambda item=item: _put_policy(session, item, actor=actor))
        if step.action == "create" or "reactivation" in fields:
            rule = item.get("reactivation")
            if rule or step.action == "update":
                _at(f"{path}.reactivation", lambda item=item, rule=rule:
                    reactivation.set_reactivation(
                        session, account=item["name"], window=rule["window"] if rule else None,
                        min_points=rule.get("min_points") if rule else None, actor=actor))
    for item in wanted["accounts"]:  # last: sources could not link to inactive accounts
        if item["status"] == "inactive":
            account_service.set_account_status(session, name=item["name"], status="inactive",
                                               actor=actor)
    for step in steps:
        if step.action == "deactivate":
            account_service.set_account_status(session, name=step.name, status="inactive",
                                               actor=actor)
        elif step.action == "pause":
            source_service.pause_source(session, name=step.name, actor=actor)
    for step in steps:  # the tiers last: their row is locked after every account row
        if step.kind == "tiers" and step.action in ("create", "update"):
            rule = wanted["tiers"]
            _at("tiers", lambda rule=rule: tiers.set_tiers(
                session, account=rule["account"], window=rule["window"], keep=rule.get("keep"),
                every=rule["every"], levels=[(level["name"], level["points"])
                                             for level in rule["levels"]], actor=actor))
        elif step.kind == "tiers" and step.action == "remove":
            tiers.clear_tiers(session, actor=actor)


def _update_account(session: Session, item: dict[str, Any], step: Step, *, actor: str
                    ) -> None:
    fields = {name for name, _, _ in step.changes}
    if "status" in fields and item["status"] == "active":
        account_service.set_account_status(session, name=step.name, status="active",
                                           actor=actor)
    edits: dict[str, Any] = {}
    mapping = {"group": "group", "default": "is_default", "allow_negative": "allow_negative",
               "max_balance": "max_balance", "max_debt": "max_debt",
               "qualifying": "qualifying",
               "pending_for": "pending_for", "qualifying_weight": "qualifying_weight",
               "non_qualifying_weight": "non_qualifying_weight",
               **{key: key for key in account_service.TRANSFER_LIMITS}}
    for key, argument in mapping.items():
        if key in fields:
            edits[argument] = item.get(key)
    if item["name"] != step.name:
        edits["new_name"] = item["name"]
    if edits:
        account_service.edit_account(session, name=step.name, actor=actor, check_tiers=False,
                                     **edits)


def _put_policy(session: Session, item: dict[str, Any], *, actor: str) -> None:
    rule = item.get("expiration")
    if not rule:  # clear_policy changes nothing when there is none
        expiry.clear_policy(session, account=item["name"], actor=actor)
        return
    expiry.set_policy(
        session, account=item["name"], kind=rule["type"], every=rule["every"],
        older_than=rule.get("older_than"), rollover_to=rule.get("rollover_to"),
        snap_to=rule.get("snap_to"), fixed_date=rule.get("date"), min_age=rule.get("min_age"),
        inactive_for=rule.get("inactive_for"), percent=rule.get("percent"),
        activity=rule.get("activity") or (), actor=actor)


def _put_source(session: Session, item: dict[str, Any], step: Step, *, actor: str) -> None:
    inventory = None if item["inventory"] == "unlimited" else item["inventory"]
    if step.action == "create":
        source_service.create_source(session, name=item["name"], inventory=inventory,
                                     link=item["accounts"], actor=actor,
                                     note="config apply", value=item.get("value"),
                                     currency=item.get("currency"))
        for rule in item["restrictions"]:
            restrictions.add_restriction(session, source=item["name"], actor=actor, **rule)
        _source_status(session, item, "active" if inventory != 0 else "paused", actor=actor)
        return
    if step.action != "update":
        return
    fields = {name: (old, new) for name, old, new in step.changes}
    if "name" in fields:  # a change of case
        source_service.edit_source(session, name=step.name, new_name=item["name"],
                                   actor=actor)
    name = item["name"]
    if "value" in fields or "currency" in fields:
        if item.get("value") is None:
            source_service.edit_source(session, name=name, clear_value=True, actor=actor)
        else:
            source_service.edit_source(session, name=name, value=item["value"],
                                       currency=item["currency"], actor=actor)
    if "inventory" in fields:
        old, new = fields["inventory"]
        if "unlimited" in (old, new):
            raise InvalidInputError(f"inventory: {show(old)} -> {show(new)} is not possible; "
                                    "an unlimited source stays unlimited and a limited one "
                                    "limited")
        if new != old and not (item["status"] == "archived" and new == 0):
            source_service.adjust_inventory(session, name=name, delta=new - old, actor=actor,
                                            reason="config apply")
    status = fields.get("status")
    if status and item["status"] == "active":  # before links: only an active source links
        source_service.activate_source(session, name=name, actor=actor)
    if "accounts" in fields:
        old, new = fields["accounts"]
        keep = {a.casefold() for a in new}
        had = {a.casefold() for a in old}
        source_service.edit_source(
            session, name=name, link=[a for a in new if a.casefold() not in had],
            unlink=[a for a in old if a.casefold() not in keep], actor=actor)
    if "restrictions" in fields:
        found = source_by_name(session, name)
        current = list(session.exec(select(Restriction).where(
            Restriction.source_id == found.id).order_by(Restriction.id)).all())
        wanted = {(r["per"], r["per_customer"]): r["max_points"] for r in item["restrictions"]}
        for rule in current:
            want = wanted.pop((rule.per, rule.per_customer), None)
            if want is None:
                restrictions.delete_restriction(session, restriction_id=int(rule.id or 0),
                                                actor=actor)
            elif want != rule.max_points:
                restrictions.edit_restriction(session, restriction_id=int(rule.id or 0),
                                              actor=actor, max_points=want)
        for (per, per_customer), most in wanted.items():
            restrictions.add_restriction(session, source=name, max_points=most, per=per,
                                         per_customer=per_customer, actor=actor)
    if status and item["status"] != "active":  # pause and archive last
        _source_status(session, item, source_by_name(session, name).status, actor=actor)


def _source_status(session: Session, item: dict[str, Any], current: str, *, actor: str) -> None:
    wanted = item["status"]
    if wanted == current:
        return
    if wanted == "active":
        source_service.activate_source(session, name=item["name"], actor=actor)
    elif wanted == "paused":
        source_service.pause_source(session, name=item["name"], actor=actor)
    else:
        if current == "active":
            source_service.pause_source(session, name=item["name"], actor=actor)
        source_service.archive_source(session, name=item["name"], confirmed=True, actor=actor)
