"""Issuing points (SPEC §7 ``issue``, and the add side of ``adjust``): the one implementation of
the rules, for one request (``pointctl issue``) or a chunk of a thousand (``pointctl batch``).

A chunk is handled set-wise: validate every request; look up idempotency keys, names and links
with one query each; lock the balance rows (sorted by user, account), then the source rows (by
id), then the per-customer restriction locks; load debts and balances; decide every request in
order in memory (restrictions, inventory, max balance, debt repayment), so a refused request
changes nothing and a later one sees the effects of the earlier ones; and write the entries,
lots, draws, balances, sources and idempotency records with one executemany each.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from pointctl.core import clock
from pointctl.core.durations import parse_duration
from pointctl.core.errors import (
    InvalidInputError,
    PointctlError,
    RefusedError,
    RetryableConflict,
)
from pointctl.core.validation import check_points, name_key
from pointctl.db.models import (
    Account,
    AccountSource,
    IdempotencyRecord,
    Restriction,
    Source,
)
from pointctl.services import restrictions
from pointctl.services.idempotency import check_key, request_hash
from pointctl.services.ledger import create_balances, lock_source
from pointctl.services.lookup import by_name
from pointctl.services.writes import DEFAULT_REFERENCE_TYPES, WriteOptions, clean_user

Outcome = dict[str, Any] | PointctlError
_IN_GROUP = 400  # pairs per IN (...) list: far below SQLite's limit on bound variables


@dataclass(frozen=True)
class IssueRequest:
    user: str
    points: int
    source: str
    options: WriteOptions
    account: str | None = None
    clamp: bool = False
    entry_type: str = "issue"  # "adjustment" for adjust +N: not limited by restrictions
    reference_type: str | None = None
    note: str | None = None

    def fingerprint(self, user: str) -> str:
        return request_hash(self.entry_type, {
            "user": user, "points": self.points, "source": self.source.casefold(),
            "account": self.account.casefold() if self.account else None, "clamp": self.clamp,
            "note": self.note, **self.options.request()})


def issue_many(session: Session, requests: Sequence[IssueRequest]) -> list[Outcome]:
    """Apply the requests in order; each outcome is the result of one request or the error
    that refused it (nothing of a refused request is written)."""
    return _Chunk(session, requests).run()


@dataclass
class _Op:
    index: int
    request: IssueRequest
    user: str
    moment: datetime
    key: str | None = None
    digest: str | None = None
    source: Source | None = None
    account: Account | None = None


@dataclass
class _SourceState:
    id: int
    name: str
    status: str
    inventory: int | None


@dataclass
class _Writes:
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    lots: list[tuple[Any, ...]] = field(default_factory=list)
    repays: list[tuple[int, int]] = field(default_factory=list)  # (row of lots, points)
    records: list[tuple[str, str, int]] = field(default_factory=list)  # key, digest, op index


class _Chunk:
    def __init__(self, session: Session, requests: Sequence[IssueRequest]) -> None:
        self.session = session
        self.connection = session.connection()
        self.postgres = self.connection.dialect.name == "postgresql"
        self.requests = requests
        self.outcomes: list[Outcome | None] = [None] * len(requests)
        self.now = clock.now()
        self.repeats: list[tuple[_Op, _Op]] = []

    # -- steps ---------------------------------------------------------------------------

    def run(self) -> list[Outcome]:
        ops = self._validate()
        ops = self._idempotency(ops)
        ops = self._resolve(ops)
        if ops:
            self._apply(ops)
        self._repeats()
        assert all(outcome is not None for outcome in self.outcomes)
        return self.outcomes  # type: ignore[return-value]

    def _fail(self, op: _Op, error: PointctlError) -> None:
        self.outcomes[op.index] = error

    def _validate(self) -> list[_Op]:
        ops = []
        for index, request in enumerate(self.requests):
            try:
                user = clean_user(request.user)
                check_points(request.points, what="points")
                key = check_key(request.options.idempotency_key)
            except PointctlError as error:
                self.outcomes[index] = error
                continue
            op = _Op(index, request, user, request.options.at or self.now, key)
            if key is not None:
                op.digest = request.fingerprint(user)
            ops.append(op)
        return ops

    def _idempotency(self, ops: list[_Op]) -> list[_Op]:
        """Replays and conflicts of keys recorded before; a key repeated within the chunk is
        decided after the first one (see ``_repeats``)."""
        keys = sorted({op.key for op in ops if op.key is not None})
        if not keys:
            return ops
        recorded: dict[str, IdempotencyRecord] = {}
        for group in _groups(keys):
            for record in self.session.exec(select(IdempotencyRecord).where(
                    col(IdempotencyRecord.key).in_(group))).scalars():
                recorded[record.key] = record
        first: dict[str, _Op] = {}
        remaining = []
        for op in ops:
            record = recorded.get(op.key) if op.key else None
            if record is not None:
                self.outcomes[op.index] = _replay(op, record.request_hash, record.result)
            elif op.key is not None and op.key in first:
                self.repeats.append((op, first[op.key]))  # decided after the first one
            else:
                if op.key is not None:
                    first[op.key] = op
                remaining.append(op)
        return remaining

    def _resolve(self, ops: list[_Op]) -> list[_Op]:
        sources = self._named(Source, {op.request.source for op in ops})
        accounts = self._named(Account, {op.request.account for op in ops if op.request.account})
        source_ids = {s.id for s in sources.values()}
        links: dict[int, list[Account]] = defaultdict(list)
        linked: set[tuple[int, int]] = set()
        if source_ids:
            rows = self.session.execute(
                select(AccountSource.source_id, Account).join(
                    Account, col(Account.id) == col(AccountSource.account_id))
                .where(col(AccountSource.source_id).in_(source_ids)).order_by(col(Account.id)))
            for source_id, account in rows:
                linked.add((account.id, source_id))
                if account.status == "active":
                    links[source_id].append(account)
        resolved = []
        for op in ops:
            try:
                op.source = sources.get(name_key(op.request.source)) or by_name(
                    self.session, Source, op.request.source)
                op.account = self._target(op, accounts, links, linked)
            except PointctlError as error:
                self._fail(op, error)
                continue
            resolved.append(op)
        return resolved

    def _named(self, model: type[Any], names: Iterable[str]) -> dict[str, Any]:
        keys = sorted({name_key(name) for name in names})
        found: dict[str, Any] = {}
        for group in _groups(keys):
            for row in self.session.exec(select(model).where(col(model.name_key).in_(group))
                                         ).scalars():
                found[row.name_key] = row
        return found

    def _target(self, op: _Op, accounts: dict[str, Account], links: dict[int, list[Account]],
                linked: set[tuple[int, int]]) -> Account:
        source = op.source
        assert source is not None
        if op.request.account is None:
            candidates = links.get(source.id, [])
            if len(candidates) != 1:
                names = ", ".join(a.name for a in candidates) or "none"
                raise InvalidInputError(
                    f"source {source.name!r} links {len(candidates)} active accounts ({names}); "
                    "name one with --account")
            return candidates[0]
        account = accounts.get(name_key(op.request.account)) or by_name(
            self.session, Account, op.request.account)
        if (account.id, source.id) not in linked:
            raise RefusedError(f"source {source.name!r} is not linked to account "
                               f"{account.name!r}")
        if account.status != "active":
            raise RefusedError(f"account {account.name!r} is inactive; it allows no new points")
        return account

    # -- locks and state -----------------------------------------------------------------

    def _lock_balances(self, pairs: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Create missing balance rows, lock them all in (user, account) order; their debts."""
        create_balances(self.session, pairs, self.now)
        debts: dict[tuple[str, int], int] = dict.fromkeys(pairs, 0)
        # PostgreSQL: lock every row, in the order of the single commands (code points);
        # SQLite: BEGIN IMMEDIATE holds the database, only debts matter
        query = ("SELECT user_id, account_id, debt FROM balance WHERE (user_id, account_id) "
                 "IN (VALUES {pairs}) ORDER BY user_id COLLATE \"C\", account_id FOR UPDATE"
                 if self.postgres else
                 "SELECT user_id, account_id, debt FROM balance WHERE debt > 0 AND "
                 "(user_id, account_id) IN (VALUES {pairs})")
        for user, account, debt in self._pairs_query(query, pairs):
            debts[(user, account)] = int(debt)
        return debts

    def _pairs_query(self, query: str, pairs: Sequence[tuple[str, int]]) -> Iterator[Any]:
        """Rows of ``query`` whose ``{pairs}`` is filled with (user, account) pairs, a few
        hundred at a time."""
        mark = "%s" if self.postgres else "?"
        for group in _groups(pairs):
            sql = query.format(pairs=", ".join([f"({mark}, {mark})"] * len(group)))
            yield from self.connection.exec_driver_sql(
                sql, tuple(value for pair in group for value in pair))

    def _lock_sources(self, ops: list[_Op]) -> tuple[dict[int, _SourceState],
                                                       dict[int, list[Restriction]]]:
        limited: dict[int, bool] = defaultdict(bool)  # source id -> restricted issues from it
        for op in ops:
            assert op.source is not None and op.source.id is not None
            limited[op.source.id] |= op.request.entry_type == "issue"
        locked: dict[int, _SourceState] = {}
        rules: dict[int, list[Restriction]] = {}
        for source_id in sorted(limited):
            source = self.session.get(Source, source_id)
            system = limited[source_id] and restrictions.has_system_restriction(
                self.session, source_id)
            row = lock_source(self.session, source, exclusive=system)
            # a plain copy: the ORM object stays as loaded (the chunk writes with plain SQL)
            locked[source_id] = _SourceState(row.id, row.name, row.status, row.inventory)
            if limited[source_id]:
                rules[source_id] = restrictions.lock_for_issues(
                    self.session, source_id, (op.user for op in ops if op.source is not None
                                              and op.source.id == source_id),
                    exclusive=system or source.inventory is not None)
        return locked, rules

    def _totals(self, pairs: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The remaining points of each pair (user, account)."""
        totals: dict[tuple[str, int], int] = dict.fromkeys(pairs, 0)
        for user, account, total in self._pairs_query(
                "SELECT user_id, account_id, sum(remaining) FROM lot WHERE remaining > 0 AND "
                "(user_id, account_id) IN (VALUES {pairs}) GROUP BY user_id, account_id", pairs):
            totals[(user, account)] = int(total)
        return totals

    # -- deciding and writing ------------------------------------------------------------

    def _apply(self, ops: list[_Op]) -> None:
        pairs = sorted({(op.user, op.account.id) for op in ops})
        debts = self._lock_balances(pairs)
        sources, rules = self._lock_sources(ops)
        # balances are needed for max balance, for results that are kept (idempotency) or
        # shown (one request); a plain bulk load does without them
        wanted = sorted({(op.user, op.account.id) for op in ops
                         if op.account.max_balance is not None or op.key is not None
                         or len(self.requests) == 1})
        totals: dict[tuple[str, int], int | None] = defaultdict(lambda: None)
        totals.update(self._totals(wanted))
        pending: dict[tuple[int, str | None], list[tuple[datetime, int]]] = defaultdict(list)
        delays: dict[int, Any] = {}
        writes = _Writes()
        changed_debts: set[tuple[str, int]] = set()
        changed_sources: set[int] = set()
        for op in ops:
            source = sources[op.source.id]
            account = op.account
            assert account is not None
            pair = (op.user, account.id)
            total = totals[pair]
            try:
                allowed, limits = self._allowed(op, source, account, rules, pending,
                                                None if total is None else total - debts[pair])
            except PointctlError as error:
                self._fail(op, error)
                continue
            # apply in memory
            entry_row = len(writes.entries)
            writes.entries.append(self._entry(op, source, account, allowed))
            if account.pending_for and account.id not in delays:
                delays[account.id] = parse_duration(account.pending_for)
            available_at = delays[account.id].add_to(op.moment) if account.pending_for \
                else op.moment
            repaid = min(debts[pair], allowed)
            writes.lots.append((entry_row, op.user, account.id, source.id, allowed, repaid,
                                op.moment, available_at))
            if repaid:
                debts[pair] -= repaid
                changed_debts.add(pair)
                writes.repays.append((len(writes.lots) - 1, repaid))
            if total is not None:
                totals[pair] = total = total + allowed - repaid
            paused = False
            if source.inventory is not None:
                source.inventory -= allowed
                if source.inventory == 0:
                    source.status, paused = "paused", True
                changed_sources.add(source.id)
            if op.request.entry_type == "issue":
                for rule in rules.get(source.id, []):
                    pending[(rule.id, op.user if rule.per_customer else None)].append(
                        (op.moment, allowed))
            self.outcomes[op.index] = {
                "entry": entry_row, "type": op.request.entry_type, "user": op.user,
                "account": account.name, "source": source.name, "points": allowed,
                "requested": op.request.points, "clamped": allowed < op.request.points,
                "clamped_by": "; ".join(limits) if allowed < op.request.points else None,
                "debt_repaid": repaid, "lot": len(writes.lots) - 1,
                "pending_until": clock.format_time(available_at)
                if available_at > op.moment else None,
                "balance": None if total is None else total - debts[pair],
                "inventory": source.inventory, "source_paused": paused,
            }
            if op.key is not None:
                writes.records.append((op.key, op.digest or "", op.index))
        self._write(ops, writes, debts, changed_debts, sources, changed_sources)

    def _allowed(self, op: _Op, source: _SourceState, account: Account,
                 rules: dict[int, list[Restriction]],
                 pending: dict[tuple[int, str | None], list[tuple[datetime, int]]],
                 current: int | None) -> tuple[int, list[str]]:
        if source.status != "active":
            raise RefusedError(f"source {source.name!r} is {source.status}; only active sources "
                               "issue points")
        points = op.request.points
        allowed, limits = points, []
        if op.request.entry_type == "issue":
            for rule in rules.get(source.id, []):
                found = restrictions.allowance(
                    self.session, rule, source_id=source.id, user=op.user, moment=op.moment,
                    pending=pending.get((rule.id, op.user if rule.per_customer else None), ()))
                if found.allowed < allowed:
                    allowed = found.allowed
                    limits.append(found.reason(source.name, op.user))
        if source.inventory is not None and source.inventory < allowed:
            allowed = source.inventory
            limits.append(f"source {source.name!r} has {source.inventory} points of inventory")
        if account.max_balance is not None and current is not None:
            room = max(0, account.max_balance - current)
            if room < allowed:
                allowed = room
                limits.append(f"{op.user} has {current} of max balance {account.max_balance} "
                              f"in {account.name!r} (room for {room})")
        if allowed < points and (not op.request.clamp or allowed == 0):
            hint = "" if op.request.clamp else \
                f"; --clamp issues the {allowed} allowed" if allowed else ""
            raise RefusedError(f"cannot issue {points} points: {'; '.join(limits)}{hint}")
        return allowed, limits

    def _entry(self, op: _Op, source: _SourceState, account: Account, points: int
               ) -> tuple[Any, ...]:
        request, options = op.request, op.request.options
        reference_type = options.reference_type or request.reference_type or \
            DEFAULT_REFERENCE_TYPES["issue"]
        return (request.entry_type, op.user, account.id, source.id, points,
                options.reference_id, reference_type, request.note, options.actor, op.moment)

    def _write(self, ops: list[_Op], writes: _Writes, debts: dict[tuple[str, int], int],
               changed_debts: set[tuple[str, int]], sources: dict[int, _SourceState],
               changed_sources: set[int]) -> None:
        if not writes.entries:
            return
        entry_ids = self._ids("entry", len(writes.entries))
        lot_ids = self._ids("lot", len(writes.lots))
        time = _time_writer(self.postgres)
        now = time(self.now)
        run = self.connection.exec_driver_sql
        mark = "%s" if self.postgres else "?"

        def sql(table: str, columns: str) -> str:
            count = columns.count(",") + 1
            return f"INSERT INTO {table} ({columns}) VALUES ({', '.join([mark] * count)})"

        run(sql("entry", "id, type, user_id, account_id, source_id, points, reference_id, "
                         "reference_type, note, actor, occurred_at, recorded_at, written_off"),
            [(entry_ids[i], *row[:9], time(row[9]), now, 0)
             for i, row in enumerate(writes.entries)])
        run(sql("lot", "id, entry_id, user_id, account_id, source_id, original, spent, expired, "
                       "moved, remaining, created_at, available_at"),
            [(lot_ids[i], entry_ids[row[0]], row[1], row[2], row[3], row[4], row[5], 0, 0,
              row[4] - row[5], time(row[6]), time(row[7]))
             for i, row in enumerate(writes.lots)])
        if writes.repays:
            run(sql("draw", "entry_id, lot_id, kind, points"),
                [(entry_ids[writes.lots[lot][0]], lot_ids[lot], "repay", points)
                 for lot, points in writes.repays])
        if changed_debts:
            run(f"UPDATE balance SET debt = {mark} WHERE user_id = {mark} AND account_id = {mark}",
                [(debts[pair], *pair) for pair in sorted(changed_debts)])
        for source_id in sorted(changed_sources):
            source = sources[source_id]
            run(f"UPDATE source SET inventory = {mark}, status = {mark}, updated_at = {mark} "
                f"WHERE id = {mark}", (source.inventory, source.status, now, source.id))
        for op in ops:
            outcome = self.outcomes[op.index]
            if isinstance(outcome, dict):
                outcome["entry"] = entry_ids[outcome["entry"]]
                outcome["lot"] = lot_ids[outcome["lot"]]
        if writes.records:
            try:
                run(sql("idempotency", "key, request_hash, result, created_at"),
                    [(key, digest, json.dumps(self.outcomes[index], default=str), now)
                     for key, digest, index in writes.records])
            except IntegrityError:
                raise RetryableConflict("an idempotency key is being used concurrently; "
                                        "retrying") from None

    def _ids(self, table: str, count: int) -> list[int]:
        """``count`` new ids for ``table`` (the write lock or the sequence makes them ours)."""
        if count == 0:
            return []
        if self.postgres:
            rows = self.connection.exec_driver_sql(
                f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                "FROM generate_series(1, %s)", (count,))
            return [row[0] for row in rows]
        last = self.connection.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}"
                                               ).scalar_one()
        return list(range(last + 1, last + 1 + count))

    def _repeats(self) -> None:
        """A key used twice in one chunk: the later request is a replay of the first one's
        result when it is the same request, refused otherwise."""
        for op, first in self.repeats:
            result = self.outcomes[first.index]
            if isinstance(result, dict):
                self.outcomes[op.index] = _replay(op, first.digest or "",
                                                  json.dumps(result, default=str))
            else:  # the first was refused: so is its repetition
                self.outcomes[op.index] = result


def _replay(op: _Op, digest: str, result: str) -> Outcome:
    if digest != op.digest:
        return RefusedError(f"idempotency key {op.key!r} was already used for a different "
                            "request; use a new key for a new request")
    return {**json.loads(result), "replay": True}


def _groups(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    items = list(items)
    for start in range(0, len(items), _IN_GROUP):
        yield items[start:start + _IN_GROUP]


def _time_writer(postgres: bool) -> Any:
    """Datetimes as the driver wants them: objects for psycopg, SQLAlchemy's text form for
    SQLite (so that raw and ORM writes compare equal)."""
    if postgres:
        return lambda moment: moment
    return lambda moment: moment.isoformat(" ", "microseconds")
