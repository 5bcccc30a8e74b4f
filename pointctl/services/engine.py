"""The ledger engine: every balance operation (issue, adjust +/-, spend, reverse, transfer,
activity, reactivate) decided a chunk at a time, for one request (a single command) or a thousand
(``pointctl batch``), through the same code.

A chunk is handled set-wise:

1. check every request on its own (malformed input: exit 2, nothing recorded);
2. look up idempotency keys, names, links and the entries to reverse with a query each;
3. take the locks of ``pointctl.services.locks`` in their one order: balance rows, sources,
   per-customer restriction locks;
4. load the state the requests need (debts, open lots, the draws of spends to reverse);
5. decide every request in order in memory, so a refused request changes nothing and a later
   one sees the effects of the earlier ones; a refusal of a request with an idempotency key is
   recorded under the key like a result, and replayed for the same request;
6. write the entries, lots, lot changes, draws, balances, sources, activity and idempotency
   records with one executemany each.

The rules live here once: ``_issue`` (restrictions, inventory and the pause at zero, max
balance), ``_credit`` (pending, debt repayment), ``_fifo`` (the debit order), ``_spendable``,
``_debt_account`` (which account takes a shortfall), ``_max_balance_room``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from pointctl.core import clock, draws
from pointctl.core.draws import spendable
from pointctl.core.durations import parse_duration
from pointctl.core.errors import (
    InvalidInputError,
    NotFoundError,
    PointctlError,
    RefusedError,
    RetryableConflict,
)
from pointctl.core.validation import MAX_POINTS, check_points, check_text, name_key
from pointctl.db import bulk
from pointctl.db.models import (
    Account,
    AccountSource,
    ExpirationPolicy,
    IdempotencyRecord,
    Restriction,
    Source,
)
from pointctl.services import locks, restrictions
from pointctl.services.idempotency import check_key, request_hash
from pointctl.services.lookup import dedupe_names
from pointctl.services.writes import (
    DEFAULT_HOLD_TIME,
    DEFAULT_REFERENCE_TYPES,
    MAX_HOLD_DAYS,
    MAX_NOTE_LENGTH,
    MAX_REFERENCE_LENGTH,
    WriteOptions,
    check_options,
    check_reason,
    clean_event,
    clean_user,
)

Outcome = dict[str, Any] | PointctlError
Pair = locks.Pair


# --- requests -------------------------------------------------------------------------------

@dataclass(frozen=True)
class IssueRequest:
    """issue, or adjust +N (``entry_type`` "adjustment": not limited by restrictions)."""

    user: str
    points: int
    source: str
    options: WriteOptions
    account: str | None = None
    clamp: bool = False
    entry_type: str = "issue"
    reference_type: str | None = None
    note: str | None = None

    def fingerprint(self, user: str) -> str:
        return request_hash(self.entry_type, {
            "user": user, "points": self.points, "source": self.source.casefold(),
            "account": self.account.casefold() if self.account else None, "clamp": self.clamp,
            "note": self.note, **self.options.request()})


@dataclass(frozen=True)
class SpendRequest:
    user: str
    points: int
    options: WriteOptions
    accounts: tuple[str, ...] = ()
    clamp: bool = False  # spend only what a max debt allows

    def fingerprint(self, user: str) -> str:
        return request_hash("spend", {"user": user, "points": self.points,
                                      "accounts": [a.casefold() for a in self.accounts],
                                      **({"clamp": True} if self.clamp else {}),
                                      **self.options.request()})


@dataclass(frozen=True)
class SubtractRequest:
    """adjust -N: ``points`` is negative."""

    user: str
    points: int
    account: str
    reason: str
    options: WriteOptions

    def fingerprint(self, user: str) -> str:
        return request_hash("adjust", {"user": user, "points": self.points,
                                       "account": self.account.casefold(),
                                       "reason": self.reason.strip(),
                                       **self.options.request()})


@dataclass(frozen=True)
class TransferRequest:
    user: str
    points: int
    from_account: str
    to_account: str
    options: WriteOptions
    to_user: str | None = None

    def fingerprint(self, user: str) -> str:
        receiver = clean_user(self.to_user, what="--to-user") if self.to_user is not None \
            else user
        return request_hash("transfer", {"user": user, "points": self.points,
                                         "from": self.from_account.casefold(),
                                         "to": self.to_account.casefold(), "to_user": receiver,
                                         **self.options.request()})


@dataclass(frozen=True)
class ReverseRequest:
    options: WriteOptions  # reference id and type select the targets, they are not copied
    entry_id: int | None = None
    reference_id: str | None = None
    reference_type: str | None = None
    points: int | None = None
    clamp: bool = False  # reverse only what a max debt allows

    def fingerprint(self, user: str) -> str:
        return request_hash("reverse", {"entry": self.entry_id,
                                        "reference_id": self.reference_id,
                                        "reference_type": self.reference_type,
                                        "points": self.points,
                                        **({"clamp": True} if self.clamp else {}),
                                        **self.options.request()})


@dataclass(frozen=True)
class HoldRequest:
    """Reserve points FIFO like a spend would, under ``options.reference_id`` (required)."""

    user: str
    points: int
    options: WriteOptions
    accounts: tuple[str, ...] = ()
    expires_in: str = DEFAULT_HOLD_TIME

    def fingerprint(self, user: str) -> str:
        return request_hash("hold", {"user": user, "points": self.points,
                                     "accounts": [a.casefold() for a in self.accounts],
                                     "expires_in": self.expires_in, **self.options.request()})


@dataclass(frozen=True)
class CaptureRequest:
    """Turn hold ``reference_id`` into a spend of ``points`` (None: all); release the rest."""

    reference_id: str
    options: WriteOptions
    points: int | None = None

    def fingerprint(self, user: str) -> str:
        return request_hash("capture", {"hold": self.reference_id, "points": self.points,
                                        **self.options.request()})


# an ended hold is released as of just before its end: the write catches up the evaluations
# due before it, not one due at the very moment the hold ended
RELEASE_EARLY = timedelta(microseconds=1)


@dataclass(frozen=True)
class VoidRequest:
    """Release hold ``reference_id``; ``expired``: ``expire run`` releasing a hold past its
    time (a hold released already, or not yet due, is left as it is)."""

    reference_id: str
    options: WriteOptions
    expired: bool = False

    def fingerprint(self, user: str) -> str:
        return request_hash("void", {"hold": self.reference_id, **self.options.request()})


@dataclass(frozen=True)
class ActivityRequest:
    user: str
    event: str
    options: WriteOptions

    def fingerprint(self, user: str) -> str:
        return request_hash("activity", {"user": user, "event": clean_event(self.event),
                                         **self.options.request()})


@dataclass(frozen=True)
class ReactivateRequest:
    """Points that expired within the account's reactivation window become a new lot again."""

    user: str
    account: str
    options: WriteOptions
    points: int | None = None  # None: all that can be reactivated

    def fingerprint(self, user: str) -> str:
        return request_hash("reactivate", {"user": user, "account": self.account.casefold(),
                                           "points": self.points, **self.options.request()})


@dataclass(frozen=True)
class RolloverRequest:
    """The credit side of an expiration that rolls points over into another account: a new
    lot there, with that account's pending delay, repaying its debt first, like every credit.
    The debit (the expired lot's draw and entry) is written set-based by the evaluation."""

    user: str
    account_id: int
    source_id: int
    points: int
    origin_lot_id: int
    debit_entry_id: int
    note: str
    options: WriteOptions  # the evaluation's time and actor
    ignore_max_balance: bool = False  # what expired is never lost: the evaluation says True

    def fingerprint(self, user: str) -> str:  # never keyed
        return ""


Request = (IssueRequest | SpendRequest | SubtractRequest | TransferRequest | ReverseRequest
           | HoldRequest | CaptureRequest | VoidRequest
           | ActivityRequest | ReactivateRequest | RolloverRequest)


class _CatchUp(Exception):
    """Request ``index`` of a chunk writes at ``moment`` to balances whose accounts have
    evaluations due at or before it that ``expire run`` has not performed yet: ``due`` maps
    each user to those accounts."""

    def __init__(self, index: int, due: dict[str, set[int]], moment: datetime) -> None:
        self.index, self.due, self.moment = index, due, moment


_MIN_WINDOW = 16  # the fewest requests a chunk after a catch-up takes


def apply(session: Session, requests: Sequence[Request], *, lock: bool = True,
          catch_up: bool = True) -> list[Outcome]:
    """Decide and write the requests in order; each outcome is the result of one request or
    the error that refused it (nothing of a refused request is written but, when it had an
    idempotency key, the refusal itself). ``lock=False``: no row locks, for work that is rolled
    back (previews), so that it never blocks the writers next to it.

    Catch-up: a request that writes at time T to a user's balance in an account first has the
    account's evaluations due at or before T applied to that user alone, when ``expire run``
    is late (``expiry.catch_up``), and so do the accounts that roll over into it: the ledger
    then ends as if cron had run on time. The chunk is cut before each such request. With cron
    on time this costs a comparison per account a request touches. ``catch_up=False``: the
    credits of an evaluation itself, which come after every evaluation due before it."""
    from pointctl.services.expiry import catch_up as perform_due

    outcomes: list[Outcome] = []
    rest = list(requests)
    before: dict[str, set[int]] | None = None
    left: set[Pair] = set()  # balance rows created by a chunk that stopped for a catch-up
    used: set[Pair] = set()
    # The first chunk takes every request: before it stops for a catch-up it has locked, in
    # the one lock order, the balance rows of all of them (source rows and customer locks are
    # taken by each chunk that gets that far, in order within it, as the chunks after a stop
    # always did). A later chunk takes a window of the requests left, which doubles while no
    # catch-up stops it and starts again at twice the distance to the last stop: when late
    # evaluations stop the requests every few lines, each restart reads a few requests, not
    # all that are left. Every chunk has the same "now", so a request without a time of its
    # own has one moment whichever chunk decides it.
    window = len(rest)
    now = clock.now()
    while rest:
        chunk = _Chunk(session, rest[:window], lock=lock, catch_up=catch_up, now=now)
        try:
            outcomes += chunk.run()
            used |= chunk.used
            rest = rest[window:]
            window *= 2
            before = None
            continue
        except _CatchUp as stop:
            late = stop  # the name of an except clause ends with it
            left |= chunk.created
        if late.index:
            head = _Chunk(session, rest[:late.index], lock=lock, catch_up=False, now=now)
            outcomes += head.run()
            used |= head.used
        try:
            if late.index == 0 and late.due == before:  # the catch-up made no progress
                raise RefusedError("an expiration evaluation due before this operation could "
                                   "not be applied; run 'pointctl expire run' first")
            perform_due(session, late.due, through=late.moment,
                        actor=rest[late.index].options.actor, lock=lock)
        except PointctlError as error:  # this request is refused; the others go on
            outcomes.append(error)
            rest = rest[late.index + 1:]
            before = None
            window = max(_MIN_WINDOW, 2 * late.index)
            continue
        rest = rest[late.index:]
        before = late.due
        window = max(_MIN_WINDOW, 2 * late.index)
    # rows the stopped chunks created for requests refused since, that hold nothing
    locks.drop_empty_balances(session, left - used)
    return outcomes


def apply_one(session: Session, request: Request) -> dict[str, Any]:
    """A single command: a chunk of one. A refusal is raised; when it was recorded under an
    idempotency key, the error asks the transaction to commit that record."""
    (outcome,) = apply(session, [request])
    if isinstance(outcome, PointctlError):
        raise outcome
    return {**outcome, "replay": outcome.get("replay", False)}


# --- in-memory state ------------------------------------------------------------------------

@dataclass(slots=True, eq=False)
class _Lot:
    """A lot; its times in the database's own form (text on SQLite, which orders and compares
    like the times themselves), so that thousands of lots are read without parsing."""

    id: int
    entry_id: int
    user: str
    account: int
    source: int
    original: int
    spent: int
    expired: int
    moved: int
    remaining: int
    created_at: Any
    available_at: Any
    origin: int | None
    held: int = 0  # earmarked by open holds
    new: bool = False
    dirty: bool = False


@dataclass(slots=True, eq=False)
class _Hold:
    """A hold as read (or made) by this chunk; ``draws``: (lot id, points) it earmarks."""

    id: int
    reference_id: str
    user: str
    points: int
    captured: int
    status: str
    expires_at: datetime
    entry_id: int
    created_at: Any
    closed_at: Any
    draws: list[tuple[int, int]] = field(default_factory=list)
    new: bool = False
    dirty: bool = False


@dataclass(slots=True, eq=False)
class _Draw:
    id: int
    entry_id: int
    lot_id: int | None
    kind: str
    points: int
    reverses: int | None = None
    restored: int = 0  # what later restore draws gave back of it


@dataclass(slots=True, eq=False)
class _Entry:
    id: int
    type: str
    user: str | None
    account: int | None
    source: int | None
    points: int
    reference_id: str | None
    reference_type: str | None
    note: str | None = None
    related: int | None = None
    written_off: int = 0
    actor: str = ""
    occurred_at: datetime | None = None


@dataclass(slots=True, eq=False)
class _Pair:
    debt: int
    db_total: int | None = None  # the lots' remaining before this chunk (None: not read)
    delta: int = 0  # change of the lots' remaining in this chunk
    loaded: bool = False  # every open lot of the pair is in ``lots``
    lots: dict[int, _Lot] = field(default_factory=dict)
    repays: list[_Draw] | None = None  # repay draws (None: not read yet)
    new_repays: list[_Draw] = field(default_factory=list)
    dirty: bool = False


@dataclass(slots=True, frozen=True)
class _Account:
    """What the engine reads of an account, copied once per chunk (no ORM attribute access in
    the hot loop)."""

    id: int
    name: str
    name_key: str
    status: str
    is_default: bool
    allow_negative: bool
    max_balance: int | None
    qualifying: bool
    pending_for: str | None
    reactivation_window: str | None
    reactivation_min_points: int | None
    max_debt: int | None
    transfer_min: int | None
    transfer_max: int | None
    transfer_yearly_max: int | None

    @classmethod
    def of(cls, row: Account) -> _Account:
        assert row.id is not None
        return cls(row.id, row.name, row.name_key, row.status, row.is_default,
                   row.allow_negative, row.max_balance, row.qualifying, row.pending_for,
                   row.reactivation_window, row.reactivation_min_points, row.max_debt,
                   row.transfer_min, row.transfer_max, row.transfer_yearly_max)


@dataclass(slots=True, eq=False)
class _Source:
    id: int
    name: str
    status: str
    inventory: int | None
    dirty: bool = False


@dataclass
class _Op:
    index: int
    request: Request
    user: str
    moment: datetime
    key: str | None = None
    digest: str | None = None
    error: PointctlError | None = None  # found while resolving names, raised in turn
    source: Source | None = None
    account: _Account | None = None
    accounts: list[_Account] = field(default_factory=list)
    receiver: str | None = None


class _Ids:
    """New ids of one table, handed out in the order asked (the write lock makes max(id) + 1
    ours on SQLite; PostgreSQL's sequence hands them out)."""

    def __init__(self, chunk: _Chunk, table: str) -> None:
        self.chunk, self.table = chunk, table
        self.free: list[int] = []
        self.next_id: int | None = None

    def take(self) -> int:
        if not self.chunk.postgres:
            if self.next_id is None:
                self.next_id = int(self.chunk.connection.exec_driver_sql(
                    f"SELECT coalesce(max(id), 0) FROM {self.table}").scalar_one()) + 1
            self.next_id += 1
            return self.next_id - 1
        if not self.free:
            # as many as requests are left to decide: a single command takes its ids one by
            # one (no gaps); a chunk leaves at most a few unused at its end
            count = max(1, len(self.chunk.requests) - self.chunk.decided)
            self.free = [row[0] for row in self.chunk.connection.exec_driver_sql(
                f"SELECT nextval(pg_get_serial_sequence('{self.table}', 'id')) "
                "FROM generate_series(1, %s)", (count,))]
            self.free.reverse()
        return self.free.pop()


# --- the chunk ------------------------------------------------------------------------------

class _Chunk:
    def __init__(self, session: Session, requests: Sequence[Request], *, lock: bool = True,
                 catch_up: bool = True, now: datetime | None = None) -> None:
        self.session = session
        self.lock = lock
        self.catch_up = catch_up
        self.rollover_to: dict[int, int] = {}  # account -> the account its policy rolls into
        self.connection = session.connection()
        self.postgres = self.connection.dialect.name == "postgresql"
        self.requests = requests
        self.outcomes: list[Outcome | None] = [None] * len(requests)
        self.now = now or clock.now()
        self.decided = 0
        # times as the database stores them (psycopg: datetimes; SQLite: SQLAlchemy's text)
        self.stored: Any = (lambda moment: moment) if self.postgres else self._text_time
        self._texts: dict[datetime, str] = {}
        self.moment: Any = (lambda stored: stored) if self.postgres else datetime.fromisoformat
        self.ids = {table: _Ids(self, table)
                    for table in ("entry", "lot", "draw", "activity", "hold")}
        self.holds: dict[str, _Hold] = {}  # by reference id: those the requests name
        self.hold_pairs: dict[str, list[Pair]] = {}  # the balance rows of their lots
        self.pairs: dict[Pair, _Pair] = {}
        self.lots: dict[int, _Lot] = {}
        self.lot_of_entry: dict[int, _Lot] = {}
        self.sources: dict[int, _Source] = {}
        self.rules: dict[int, list[Restriction]] = {}
        self.pending_use: dict[tuple[int, str | None], list[tuple[datetime, int]]] = \
            defaultdict(list)
        self.delays: dict[int, Any] = {}
        self.accounts: dict[int, _Account] = {}
        # reversal targets: entries by id and by reference id, with what is left of them
        self.targets: dict[int, _Entry] = {}
        self.by_reference: dict[str, list[_Entry]] = defaultdict(list)
        self.reversed: dict[int, int] = defaultdict(int)  # issue entry -> points reversed
        self.spend_draws: dict[int, list[_Draw]] = defaultdict(list)  # spend entry -> draws
        # what is written at the end
        self.entries: list[_Entry] = []
        self.new_draws: list[_Draw] = []
        self.activity: list[tuple[Any, ...]] = []
        self.records: dict[str, tuple[str, str]] = {}  # key -> (digest, result) this chunk
        self.recorded: dict[str, IdempotencyRecord] = {}
        self.expired: dict[Pair, list[tuple[datetime, _Draw]]] = {}  # expire draws
        self.created: set[Pair] = set()  # balance rows created by this chunk
        self.used: set[Pair] = set()  # balance rows an applied request needed
        self.paused: dict[int, str] = {}  # sources an issue paused -> the issue's actor
        # (sender, account, calendar year) -> points transferred to other members, this chunk
        # included (read from the ledger when first needed, under the sender's balance lock)
        self.sent: dict[tuple[str, int, int], int] = {}

    def _text_time(self, moment: datetime) -> str:
        """SQLite's text form of a time (most requests of a chunk share a few moments)."""
        text = self._texts.get(moment)
        if text is None:
            text = self._texts[moment] = moment.isoformat(" ", "microseconds")
        return text

    def run(self) -> list[Outcome]:
        ops = self._check()
        self._load_keys(ops)
        ops = self._resolve(ops)
        suspects = self._suspects(ops) if self.catch_up else {}
        self._lock_and_load(ops, suspects)
        for op in ops:
            self._decide(op)
            self.decided += 1
        self._write()
        if self.paused and self.lock:  # (a preview, rolled back, records nothing)
            from pointctl.services.changes import record_change
            from pointctl.services.sources import PAUSED_AT_ZERO

            for source_id, actor in sorted(self.paused.items()):
                record_change(self.session, kind="source", key=source_id, actor=actor,
                              action="pause", reason=PAUSED_AT_ZERO)
        assert all(outcome is not None for outcome in self.outcomes)
        return self.outcomes  # type: ignore[return-value]

    # -- 1. checks of each request on its own -----------------------------------------------

    def _check(self) -> list[_Op]:
        ops = []
        for index, request in enumerate(self.requests):
            try:
                op = self._checked(index, request)
            except PointctlError as error:
                self.outcomes[index] = error
                continue
            ops.append(op)
        return ops

    def _checked(self, index: int, request: Request) -> _Op:
        user = ""
        receiver = None
        if isinstance(request, CaptureRequest | VoidRequest):
            check_text(request.reference_id, what="the hold's reference id",
                       max_length=MAX_REFERENCE_LENGTH)
            if not request.reference_id.strip():
                raise InvalidInputError("a hold is named by its reference id; give one")
            if isinstance(request, CaptureRequest) and request.points is not None:
                check_points(request.points, what="--points")
        elif isinstance(request, ReverseRequest):
            if request.entry_id is not None:
                check_points(request.entry_id, what="--entry")
            if request.points is not None:
                check_points(request.points, what="points")
            if (request.entry_id is None) == (request.reference_id is None):
                raise InvalidInputError("give exactly one of --entry ID or --reference-id R")
        else:
            user = clean_user(request.user)
        if isinstance(request, ActivityRequest):
            clean_event(request.event)
        elif isinstance(request, ReactivateRequest):
            if request.points is not None and request.points <= 0:
                raise InvalidInputError(f"--points must be a positive number, not "
                                        f"{request.points}")
        elif isinstance(request, SubtractRequest):
            if not isinstance(request.points, int) or request.points >= 0:
                raise InvalidInputError("points must be a non-zero whole number (+N adds, -N "
                                        "removes)")
            check_points(-request.points, what="points")
            check_reason(request.reason)
        elif not isinstance(request, ReverseRequest | CaptureRequest | VoidRequest):
            check_points(request.points, what="points")
        if isinstance(request, HoldRequest):
            if not (request.options.reference_id or "").strip():
                raise InvalidInputError("a hold needs --reference-id R: the order it is for, "
                                        "by which it is captured or voided")
            length = parse_duration(request.expires_in, what="--expires-in duration")
            if length.add_to(self.now) > self.now + timedelta(days=MAX_HOLD_DAYS):
                raise InvalidInputError(f"--expires-in {request.expires_in!r} is too long: a "
                                        f"hold lasts at most {MAX_HOLD_DAYS} days")
        if isinstance(request, TransferRequest):
            receiver = clean_user(request.to_user, what="--to-user") \
                if request.to_user is not None else user
            if receiver == user and name_key(request.from_account) == \
                    name_key(request.to_account):
                raise InvalidInputError("a transfer needs a different account or --to-user")
        if isinstance(request, IssueRequest) and request.note is not None:
            check_text(request.note, what="--reason", max_length=MAX_NOTE_LENGTH)
        # a rollover is dated by its evaluation, a hold's release by its end: a preview runs
        # them ahead of now
        if not isinstance(request, RolloverRequest) and not (
                isinstance(request, VoidRequest) and request.expired):
            check_options(request.options)
        key = check_key(request.options.idempotency_key)
        op = _Op(index, request, user, request.options.at or self.now, key, receiver=receiver)
        if key is not None:
            op.digest = request.fingerprint(user)
        return op

    # -- 2. keys, names, links and targets --------------------------------------------------

    def _load_keys(self, ops: list[_Op]) -> None:
        keys = sorted({op.key for op in ops if op.key is not None})
        for group in locks.groups(keys):
            for record in self.session.exec(select(IdempotencyRecord).where(
                    col(IdempotencyRecord.key).in_(group))).scalars():
                self.recorded[record.key] = record

    def _resolve(self, ops: list[_Op]) -> list[_Op]:
        for row in self.session.exec(select(Account)).scalars():
            account = _Account.of(row)
            self.accounts[account.id] = account
        by_key = {account.name_key: account for account in self.accounts.values()}
        issues = [op for op in ops if isinstance(op.request, IssueRequest)]
        sources = self._sources_named({op.request.source for op in issues})
        links: dict[int, list[_Account]] = defaultdict(list)
        linked: set[tuple[int, int]] = set()
        if sources:
            rows = self.session.execute(
                select(AccountSource.source_id, AccountSource.account_id)
                .where(col(AccountSource.source_id).in_([s.id for s in sources.values()]))
                .order_by(col(AccountSource.account_id)))
            for source_id, account_id in rows:
                linked.add((account_id, source_id))
                if self.accounts[account_id].status == "active":
                    links[source_id].append(self.accounts[account_id])
        defaults = [a for a in sorted(self.accounts.values(), key=lambda a: a.id or 0)
                    if a.is_default and a.status == "active" and not a.qualifying]
        for op in ops:
            try:
                self._resolve_one(op, by_key, sources, links, linked, defaults)
            except PointctlError as error:
                op.error = error
        self._load_targets([op for op in ops if isinstance(op.request, ReverseRequest)])
        self._load_holds(ops)
        return ops

    def _load_holds(self, ops: list[_Op]) -> None:
        """The holds the requests name, as committed before this chunk, with the lots they
        earmark (their pairs are locked with the requests')."""
        refs = sorted({op.request.reference_id for op in ops
                       if isinstance(op.request, CaptureRequest | VoidRequest)}
                      | {op.request.options.reference_id or "" for op in ops
                         if isinstance(op.request, HoldRequest)})
        columns = ("SELECT id, reference_id, user_id, points, captured, status, expires_at, "
                   "entry_id, created_at, closed_at FROM hold WHERE ")
        for group in locks.groups(refs):
            for row in self._raw(columns + f"reference_id IN ({self._marks(len(group))})",
                                 group):
                self.holds[row[1]] = _Hold(int(row[0]), row[1], row[2], int(row[3]),
                                           int(row[4]), row[5], self.moment(row[6]),
                                           int(row[7]), row[8], row[9])
        held = {h.id: h for h in self.holds.values() if h.status == "open"}
        for group in locks.groups(sorted(h.reference_id for h in held.values())):
            for ref, lot_id, points in self._raw(
                    "SELECT e.reference_id, d.lot_id, d.points FROM draw d JOIN entry e "
                    "ON e.id = d.entry_id WHERE e.type = 'hold' AND d.kind = 'hold' AND "
                    f"e.reference_id IN ({self._marks(len(group))}) ORDER BY d.id", group):
                self.holds[ref].draws.append((int(lot_id), int(points)))
        lot_ids = sorted({lot for h in self.holds.values() for lot, _ in h.draws})
        where: dict[int, Pair] = {}
        for group in locks.groups(lot_ids):
            for lot_id, user, account in self._raw(
                    f"SELECT id, user_id, account_id FROM lot WHERE id IN "
                    f"({self._marks(len(group))})", group):
                where[int(lot_id)] = (user, int(account))
        for hold in self.holds.values():
            self.hold_pairs[hold.reference_id] = sorted({where[lot] for lot, _ in hold.draws})

    def _account(self, by_key: dict[str, _Account], name: str) -> _Account:
        from pointctl.services.lookup import by_name

        found = by_key.get(name_key(name))
        # not loaded: NotFoundError naming the known accounts, or one created meanwhile
        return found or _Account.of(by_name(self.session, Account, name))

    def _sources_named(self, names: Iterable[str]) -> dict[str, Source]:
        keys = sorted({name_key(name) for name in names})
        found: dict[str, Source] = {}
        for group in locks.groups(keys):
            for row in self.session.exec(select(Source).where(col(Source.name_key).in_(group))
                                         ).scalars():
                found[row.name_key] = row
        return found

    def _resolve_one(self, op: _Op, by_key: dict[str, _Account], sources: dict[str, Source],
                     links: dict[int, list[_Account]], linked: set[tuple[int, int]],
                     defaults: list[_Account]) -> None:
        from pointctl.services.lookup import by_name

        request = op.request
        if isinstance(request, IssueRequest):
            op.source = sources.get(name_key(request.source)) or by_name(
                self.session, Source, request.source)
            op.account = self._issue_target(op, request, by_key, links, linked)
        elif isinstance(request, SpendRequest | HoldRequest):
            op.accounts = self._spend_accounts(request, by_key, defaults)
        elif isinstance(request, SubtractRequest):
            op.account = self._account(by_key, request.account)
            _usable(op.account, action="changes")
        elif isinstance(request, RolloverRequest):
            op.account = self.accounts[request.account_id]
        elif isinstance(request, ReactivateRequest):
            target = op.account = self._account(by_key, request.account)
            if target.qualifying:
                raise RefusedError(f"account {target.name!r} is tier qualifying; its points "
                                   "cannot be reactivated")
            if not target.reactivation_window:
                raise RefusedError(f"account {target.name!r} does not allow reactivation; "
                                   "allow it with 'pointctl accounts reactivation NAME --window "
                                   "DURATION'")
            _usable(target, action="new points")
        elif isinstance(request, TransferRequest):
            giver = self._account(by_key, request.from_account)
            taker = self._account(by_key, request.to_account)
            if giver.qualifying:
                raise RefusedError(f"account {giver.name!r} is tier qualifying; its points "
                                   "cannot be moved")
            if taker.qualifying:
                raise RefusedError(f"account {taker.name!r} is tier qualifying; spendable "
                                   f"points from {giver.name!r} cannot be moved into it "
                                   "(qualifying points are earned, not transferred)")
            _usable(giver, action="transfers out")
            _usable(taker, action="new points")
            op.accounts = [giver, taker]

    def _issue_target(self, op: _Op, request: IssueRequest, by_key: dict[str, _Account],
                      links: dict[int, list[_Account]], linked: set[tuple[int, int]]
                      ) -> _Account:
        source = op.source
        assert source is not None and source.id is not None
        if request.account is None:
            candidates = links.get(source.id, [])
            if len(candidates) != 1:
                names = ", ".join(a.name for a in candidates) or "none"
                raise InvalidInputError(
                    f"source {source.name!r} links {len(candidates)} active accounts ({names}); "
                    "name one with --account")
            return candidates[0]
        account = self._account(by_key, request.account)
        if (account.id, source.id) not in linked:
            raise RefusedError(f"source {source.name!r} is not linked to account "
                               f"{account.name!r}")
        _usable(account, action="new points")
        return account

    def _spend_accounts(self, request: SpendRequest | HoldRequest, by_key: dict[str, _Account],
                        defaults: list[_Account]) -> list[_Account]:
        if not request.accounts:
            if not defaults:
                raise RefusedError("there is no active default account to spend from; "
                                   "name one with --account")
            return defaults
        accounts = [self._account(by_key, name) for name in dedupe_names(request.accounts)]
        for account in accounts:
            if account.qualifying:
                raise RefusedError(f"account {account.name!r} is tier qualifying; its points "
                                   "can never be spent")
            _usable(account, action="spends")
        return accounts

    def _load_targets(self, ops: list[_Op]) -> None:
        """The issues and spends the reversals may name, as committed before this chunk, with
        what is left of them: reversed points of issues, the draws of spends."""
        ids = sorted({op.request.entry_id for op in ops
                      if op.request.entry_id is not None})
        refs = sorted({op.request.reference_id for op in ops
                       if op.request.reference_id is not None})
        columns = ("SELECT id, type, user_id, account_id, source_id, points, reference_id, "
                   "reference_type FROM entry WHERE ")
        found: list[Any] = []
        for group in locks.groups(ids):
            found += self._raw(columns + f"id IN ({self._marks(len(group))})", group)
        for group in locks.groups(refs):
            found += self._raw(columns + "type IN ('issue', 'spend') AND reference_id IN "
                               f"({self._marks(len(group))})", group)
        for row in found:
            if row[0] in self.targets:
                continue
            entry = _Entry(int(row[0]), row[1], row[2], row[3], row[4], int(row[5]), row[6],
                           row[7])
            self.targets[entry.id] = entry
            if entry.reference_id is not None and entry.type in ("issue", "spend"):
                self.by_reference[entry.reference_id].append(entry)
        for entries in self.by_reference.values():
            entries.sort(key=lambda e: e.id)

    def _load_target_state(self) -> None:
        """Under the locks: the lots of the issues to reverse and what was reversed of them,
        the draws of the spends to reverse and what was restored of them, and their lots."""
        issues = sorted(e.id for e in self.targets.values() if e.type == "issue")
        spends = sorted(e.id for e in self.targets.values() if e.type == "spend")
        for group in locks.groups(issues):
            marks = self._marks(len(group))
            for related, total in self._raw(
                    "SELECT related_entry_id, sum(written_off - points) FROM entry WHERE "
                    f"type = 'reversal' AND related_entry_id IN ({marks}) "
                    "GROUP BY related_entry_id", group):
                self.reversed[int(related)] = int(total)
            self._load_lots(f"entry_id IN ({marks})", group, by_entry=True)
        lot_ids: set[int] = set()
        for group in locks.groups(spends):
            for row in self._raw(
                    "SELECT d.id, d.entry_id, d.lot_id, d.kind, d.points, "
                    "(SELECT coalesce(sum(r.points), 0) FROM draw r WHERE r.kind = 'restore' "
                    "AND r.reverses_draw_id = d.id) FROM draw d WHERE d.kind IN "
                    f"('spend', 'debt') AND d.entry_id IN ({self._marks(len(group))}) "
                    "ORDER BY d.id", group):
                draw = _Draw(int(row[0]), int(row[1]), row[2], row[3], int(row[4]),
                             restored=int(row[5]))
                self.spend_draws[draw.entry_id].append(draw)
                if draw.lot_id is not None:
                    lot_ids.add(int(draw.lot_id))
        for group in locks.groups(sorted(lot_ids - set(self.lots))):
            self._load_lots(f"id IN ({self._marks(len(group))})", group)

    def _load_hold_state(self) -> None:
        """Under the locks: what became of the holds read before them (a capture, a void or
        an expiry that committed meanwhile), and the lots they earmark."""
        known = {h.id: h for h in self.holds.values() if not h.new}
        for group in locks.groups(sorted(known)):
            for hold_id, status, captured, closed in self._raw(
                    "SELECT id, status, captured, closed_at FROM hold WHERE id IN "
                    f"({self._marks(len(group))})", group):
                hold = known[int(hold_id)]
                hold.status, hold.captured, hold.closed_at = status, int(captured), closed
        lot_ids = sorted({lot for h in known.values() for lot, _ in h.draws} - set(self.lots))
        for group in locks.groups(lot_ids):
            self._load_lots(f"id IN ({self._marks(len(group))})", group)

    # -- 3. and 4. locks and state ----------------------------------------------------------

    def _op_pairs(self, op: _Op) -> list[Pair]:
        """The balance rows a request locks (a reversal: those of its targets, locked with
        every target the chunk may name)."""
        if isinstance(op.request, IssueRequest | SubtractRequest | ReactivateRequest
                      | RolloverRequest):
            assert op.account is not None and op.account.id is not None
            return [(op.user, op.account.id)]
        if isinstance(op.request, SpendRequest | HoldRequest):
            return [(op.user, a.id) for a in op.accounts if a.id is not None]
        if isinstance(op.request, CaptureRequest | VoidRequest):
            return self.hold_pairs.get(op.request.reference_id, [])
        if isinstance(op.request, TransferRequest):
            assert op.receiver is not None
            giver, taker = op.accounts
            assert giver.id is not None and taker.id is not None
            return [(op.user, giver.id), (op.receiver, taker.id)]
        return []

    # -- 3a. late expiration runs ------------------------------------------------------------

    def _touched(self, op: _Op) -> list[Pair]:
        """The balances a request writes to (a reversal: those of the entries it may name)."""
        request = op.request
        if not isinstance(request, ReverseRequest):
            return self._op_pairs(op)
        if request.entry_id is not None:
            named = [self.targets[request.entry_id]] if request.entry_id in self.targets else []
        else:
            named = self.by_reference.get(request.reference_id or "", [])
        return [(e.user, e.account) for e in named
                if e.user is not None and e.account is not None]

    def _suspects(self, ops: list[_Op]) -> dict[int, list[Pair]]:
        """Per request (by position), the balances whose accounts may have an evaluation due
        at or before its time that has not been performed: the one comparison with each
        policy's next due time. An account counts with the accounts that roll over into it."""
        policies = {int(account): (into, due) for account, into, due in self.session.execute(
            select(ExpirationPolicy.account_id, ExpirationPolicy.rollover_to_id,
                   ExpirationPolicy.next_due_at))}
        if not policies:
            return {}
        feeders: dict[int, list[int]] = defaultdict(list)
        for account, (into, _) in policies.items():
            if into is not None:
                feeders[int(into)].append(account)
                self.rollover_to[account] = int(into)
        # per account: itself and every account that rolls over into it, with a policy and
        # a next due time, and the earliest of those times
        closure: dict[int, list[tuple[int, datetime]]] = {}
        earliest: dict[int, datetime] = {}
        touched = [self._touched(op) if op.error is None else [] for op in ops]
        for start in {pair[1] for pairs in touched for pair in pairs}:
            todo, seen, found = [start], set(), []
            while todo:
                current = todo.pop()
                if current in seen:
                    continue
                seen.add(current)
                todo += feeders.get(current, [])
                due = policies.get(current, (None, None))[1]
                if due is not None:
                    found.append((current, due))
            if found:
                closure[start] = found
                earliest[start] = min(due for _, due in found)
        result: dict[int, list[Pair]] = {}
        for position, op in enumerate(ops):
            if op.error is not None or (op.key is not None and op.key in self.recorded):
                continue
            late = [(user, account) for user, start in touched[position]
                    if start in earliest and earliest[start] <= op.moment  # the comparison
                    for account, due in closure[start] if due <= op.moment]
            if late:
                result[position] = late
        return result

    def _check_due(self, ops: list[_Op], suspects: dict[int, list[Pair]]) -> None:
        """Under the locks: the first request that an evaluation due for one of its users has
        not reached yet (each user's ``evaluated_through``, else the policy's last evaluation)
        stops the chunk before it."""
        from pointctl.core.schedules import parse_schedule
        from pointctl.services.expiry import resumes_after
        from pointctl.services.settings import program_zone

        zone = program_zone(self.session)
        pairs = sorted({pair for late in suspects.values() for pair in late})
        # a row created by this chunk held nothing before the chunk's first request to it:
        # it counts as evaluated through that request's time
        first: dict[Pair, datetime] = {}
        for op in ops:
            if op.error is None:
                for pair in self._touched(op):
                    first.setdefault(pair, op.moment)
        through: dict[Pair, Any] = {}  # the balance rows that hold something to evaluate
        for user, account, moment in locks.pairs_query(
                self.session, "SELECT user_id, account_id, evaluated_through FROM balance "
                "WHERE {pairs}", pairs):
            pair = (user, int(account))
            if pair in self.created:
                if pair in first:
                    through[pair] = first[pair]
                continue  # created only to be locked: nothing in it yet
            through[pair] = moment if self.postgres or moment is None else \
                datetime.fromisoformat(moment)
        policies = {p.account_id: p for p in self.session.exec(
            select(ExpirationPolicy).where(col(ExpirationPolicy.account_id).in_(
                sorted({a for _, a in pairs}))).execution_options(populate_existing=True)
        ).scalars()}
        for position in sorted(suspects):
            op = ops[position]
            due: dict[str, set[int]] = defaultdict(set)
            for user, account in suspects[position]:
                policy = policies.get(account)
                if policy is None or (user, account) not in through:
                    continue
                after = resumes_after(policy, through.get((user, account)))
                upcoming = parse_schedule(policy.schedule).next_after(after, zone,
                                                                      policy.starts_at)
                if upcoming is not None and upcoming <= op.moment:
                    due[user].add(account)
            if due:
                raise _CatchUp(op.index, dict(due), op.moment)

    def _lock_and_load(self, ops: list[_Op], suspects: dict[int, list[Pair]] | None = None
                       ) -> None:
        late = sorted({pair for found in (suspects or {}).values() for pair in found})
        if late and self.lock:  # step 1: the policies of the evaluations a write may run
            locks.share_policies(self.session, sorted({account for _, account in late}))
        pairs: set[Pair] = set()
        # step 2 takes every balance row a catch-up may write: the late accounts' rows and
        # those of the accounts they roll over into (created when missing)
        for user, account in late:
            pairs.add((user, account))
            into = self.rollover_to.get(account)
            while into is not None and (user, into) not in pairs:
                pairs.add((user, into))
                into = self.rollover_to.get(into)
        lots_needed: set[Pair] = set()
        totals_needed: set[Pair] = set()
        issue_sources: dict[int, bool] = defaultdict(bool)  # -> restricted issues from it
        returning: set[int] = set()  # sources of issues that may be reversed
        for op in ops:
            if op.error is not None:
                continue
            request = op.request
            own = self._op_pairs(op)
            pairs.update(own)
            if isinstance(request, IssueRequest):
                assert op.account is not None and op.source is not None
                if op.account.max_balance is not None or op.key is not None or \
                        len(self.requests) == 1:
                    totals_needed.update(own)
                issue_sources[op.source.id] |= request.entry_type == "issue"
            elif isinstance(request, SpendRequest | SubtractRequest | HoldRequest):
                lots_needed.update(own)
            elif isinstance(request, CaptureRequest | VoidRequest):
                totals_needed.update(own)
            elif isinstance(request, ReactivateRequest):
                totals_needed.update(own)
            elif isinstance(request, RolloverRequest) and not request.ignore_max_balance:
                totals_needed.update(own)
            elif isinstance(request, TransferRequest):
                lots_needed.add(own[0])
                totals_needed.add(own[1])
        for target in self.targets.values():
            if target.user is not None and target.account is not None:
                pairs.add((target.user, target.account))
                totals_needed.add((target.user, target.account))
            if target.type == "issue" and target.source is not None:
                returning.add(target.source)
        debts, self.created = locks.lock_balances(self.session, pairs, self.now,
                                                  lock=self.lock)
        if suspects:  # before any source lock: raises _CatchUp when an evaluation is due
            self._check_due(ops, suspects)
        for pair, debt in debts.items():
            self.pairs[pair] = _Pair(debt)
        self._load_target_state()
        self._load_hold_state()
        self._lock_sources(ops, issue_sources, returning)
        self._load_open_lots(sorted(lots_needed))
        self._load_totals(sorted(p for p in totals_needed if self.pairs[p].db_total is None))

    def _lock_sources(self, ops: list[_Op], issue_sources: dict[int, bool],
                      returning: set[int]) -> None:
        system = {source_id for source_id, limited in issue_sources.items()
                  if limited and restrictions.has_system_restriction(self.session, source_id)}
        limited = {s.id for s in self.session.exec(
            select(Source).where(col(Source.id).in_(sorted(set(issue_sources) | returning)),
                                 col(Source.inventory).is_not(None))).scalars()}
        found = locks.lock_sources(self.session, set(issue_sources) | returning,
                                   system | limited)
        for source_id, (name, status, inventory) in found.items():
            self.sources[source_id] = _Source(source_id, name, status, inventory)
        for source_id in sorted(issue_sources):
            if issue_sources[source_id]:
                users = (op.user for op in ops if op.error is None and op.source is not None
                         and op.source.id == source_id)
                # the lock taken decides, as read before taking it (not the inventory read under
                # the lock, which an administrator may have changed in between)
                exclusive = source_id in system or source_id in limited
                self.rules[source_id] = restrictions.lock_for_issues(
                    self.session, source_id, users, exclusive=exclusive)

    def _add_lots(self, rows: Iterable[Any], *, by_entry: bool = False) -> None:
        """Lots as read (the columns of ``_LOT_COLUMNS``); one object per lot id, a lot
        already known being newer than its row."""
        lots, pairs = self.lots, self.pairs
        for row in rows:
            lot = lots.get(row[0])
            if lot is None:
                lot = lots[row[0]] = _Lot(*row)
                pair = pairs.get((lot.user, lot.account))
                if pair is not None:
                    pair.lots[lot.id] = lot
            if by_entry:
                self.lot_of_entry.setdefault(lot.entry_id, lot)

    _LOT_COLUMNS = ("SELECT id, entry_id, user_id, account_id, source_id, original, spent, "
                    "expired, moved, remaining, created_at, available_at, origin_lot_id, held "
                    "FROM lot ")

    def _load_lots(self, where: str, params: Sequence[Any], *, by_entry: bool = False) -> None:
        self._add_lots(self._raw(self._LOT_COLUMNS + "WHERE " + where, params),
                       by_entry=by_entry)

    def _load_open_lots(self, pairs: list[Pair]) -> None:
        todo = [pair for pair in pairs if not self.pairs[pair].loaded]
        totals: dict[Pair, int] = dict.fromkeys(todo, 0)
        rows = locks.pairs_query(
            self.session, self._LOT_COLUMNS + "WHERE remaining > 0 AND {pairs}", todo,
            key=(2, 3))
        for row in rows:
            totals[(row[2], row[3])] += row[9]
        self._add_lots(rows)
        for pair in todo:
            state = self.pairs[pair]
            state.loaded = True
            state.db_total = totals[pair]

    def _load_totals(self, pairs: list[Pair]) -> None:
        totals: dict[Pair, int] = dict.fromkeys(pairs, 0)
        for user, account, total in locks.pairs_query(
                self.session, "SELECT user_id, account_id, sum(remaining) FROM lot WHERE "
                "remaining > 0 AND {pairs} GROUP BY user_id, account_id", pairs):
            totals[(user, int(account))] = int(total)
        for pair, total in totals.items():
            self.pairs[pair].db_total = total

    def _raw(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return locks.fetch(self.session, sql, params)

    def _marks(self, count: int) -> str:
        return ", ".join(["%s" if self.postgres else "?"] * count)

    # -- reading the state while deciding ---------------------------------------------------

    def _total(self, pair: Pair) -> int:
        """The pair's remaining points (pending included) now, in this chunk."""
        state = self.pairs[pair]
        if state.db_total is None:
            self._load_totals([pair])
        return (state.db_total or 0) + state.delta

    def _balance(self, pair: Pair) -> int:
        return self._total(pair) - self.pairs[pair].debt

    def _open_lots(self, pair: Pair, moment: datetime | None) -> list[_Lot]:
        """The pair's open lots in FIFO order (oldest first, then lowest id); ``moment`` None
        includes pending lots."""
        state = self.pairs[pair]
        if not state.loaded:
            self._load_open_lots([pair])
        stamp = None if moment is None else self.stored(moment)
        return sorted((lot for lot in state.lots.values() if lot.remaining > 0
                       and (stamp is None or lot.available_at <= stamp)),
                      key=lambda lot: (lot.created_at, lot.id))

    def _spendable(self, pair: Pair, lots: Sequence[_Lot]) -> int:
        """What can be drawn from the pair's available ``lots``: never the points owed as
        debt."""
        held = sum(lot.held for lot in lots)  # (only available lots are ever held)
        return spendable(sum(draws.free(lot.remaining, lot.held) for lot in lots),
                         self._total(pair) - held, self.pairs[pair].debt)

    def _repays(self, pair: Pair) -> list[_Draw]:
        """The pair's repay draws, newest first, with what was restored of each."""
        state = self.pairs[pair]
        if state.repays is None:
            state.repays = []
            for row in self._raw(
                    "SELECT d.id, d.entry_id, d.lot_id, d.points, (SELECT coalesce(sum(r.points), "
                    "0) FROM draw r WHERE r.kind = 'restore' AND r.reverses_draw_id = d.id) "
                    "FROM draw d JOIN lot ON lot.id = d.lot_id WHERE d.kind = 'repay' AND "
                    f"lot.user_id = {self._marks(1)} AND lot.account_id = {self._marks(1)}",
                    pair):
                state.repays.append(_Draw(int(row[0]), int(row[1]), int(row[2]), "repay",
                                          int(row[3]), restored=int(row[4])))
            lot_ids = sorted({d.lot_id for d in state.repays
                              if d.lot_id is not None and d.lot_id not in self.lots})
            for group in locks.groups(lot_ids):
                self._load_lots(f"id IN ({self._marks(len(group))})", group)
        return sorted([*state.repays, *state.new_repays], key=lambda d: -d.id)

    # -- 5. deciding ------------------------------------------------------------------------

    def _decide(self, op: _Op) -> None:
        if op.key is not None and self._replayed(op):
            return
        try:
            if op.error is not None:
                raise op.error
            result = self._decide_one(op)
            self.used.update(self._op_pairs(op))
        except PointctlError as error:
            self.outcomes[op.index] = error
            if op.key is not None and error.exit_code != InvalidInputError.exit_code:
                self.records[op.key] = (op.digest or "", json.dumps(
                    {"refused": error.message, "exit_code": error.exit_code}))
                error.commit = True
            return
        self.outcomes[op.index] = result
        if op.key is not None:
            self.records[op.key] = (op.digest or "", json.dumps(result, default=str))

    def _replayed(self, op: _Op) -> bool:
        """A key seen before: the first outcome again for the same request, a refusal for a
        different one."""
        assert op.key is not None
        if op.key in self.records:
            digest, result = self.records[op.key]
        elif op.key in self.recorded:
            record = self.recorded[op.key]
            digest, result = record.request_hash, record.result
        else:
            return False
        if digest != op.digest:
            self.outcomes[op.index] = RefusedError(
                f"idempotency key {op.key!r} was already used for a different request; use a "
                "new key for a new request")
            return True
        first = json.loads(result)
        if "refused" in first and "exit_code" in first:
            kind = {NotFoundError.exit_code: NotFoundError}.get(first["exit_code"],
                                                                RefusedError)
            error = kind(first["refused"])
            error.replay = True
            self.outcomes[op.index] = error
        else:
            self.outcomes[op.index] = {**first, "replay": True}
        return True

    def _decide_one(self, op: _Op) -> dict[str, Any]:
        request = op.request
        if isinstance(request, IssueRequest):
            return self._issue(op, request)
        if isinstance(request, SpendRequest):
            return self._spend(op, request)
        if isinstance(request, SubtractRequest):
            return self._subtract(op, request)
        if isinstance(request, TransferRequest):
            return self._transfer(op, request)
        if isinstance(request, ReverseRequest):
            return self._reverse(op, request)
        if isinstance(request, ReactivateRequest):
            return self._reactivate(op, request)
        if isinstance(request, RolloverRequest):
            return self._rollover(op, request)
        if isinstance(request, HoldRequest):
            return self._hold(op, request)
        if isinstance(request, CaptureRequest):
            return self._capture(op, request)
        if isinstance(request, VoidRequest):
            return self._void(op, request)
        return self._activity(op, request)

    def _entry(self, op: _Op, *, type: str, user: str | None, account: int | None,
               source: int | None, points: int, reference_type: str,
               reference_id: str | None = None, note: str | None = None,
               related: int | None = None, written_off: int = 0) -> _Entry:
        options = op.request.options
        entry = _Entry(self.ids["entry"].take(), type, user, account, source, points,
                       options.reference_id or reference_id,
                       options.reference_type or reference_type, note, related, written_off,
                       options.actor, op.moment)
        self.entries.append(entry)
        self.targets[entry.id] = entry  # a reversal by id says what it is, if not reversible
        if entry.type in ("issue", "spend") and entry.reference_id is not None:
            self.by_reference[entry.reference_id].append(entry)
        return entry

    def _draw(self, entry: _Entry, lot: _Lot | None, kind: str, points: int,
              reverses: _Draw | None = None) -> _Draw:
        """Record a draw and apply its effect (``pointctl.core.draws``) to the lot."""
        draw = _Draw(self.ids["draw"].take(), entry.id, None if lot is None else lot.id, kind,
                     points, None if reverses is None else reverses.id)
        self.new_draws.append(draw)
        if lot is not None:
            delta = 0
            if kind in draws.TAKES:
                bucket = draws.TAKES[kind]
                setattr(lot, bucket, getattr(lot, bucket) + points)
                delta = -points
            elif kind in draws.RESTORES:
                bucket = draws.RESTORES[kind]
                setattr(lot, bucket, getattr(lot, bucket) - points)
                delta = points
            elif kind in draws.SHIFTS:
                source, target = draws.SHIFTS[kind]
                setattr(lot, source, getattr(lot, source) - points)
                setattr(lot, target, getattr(lot, target) + points)
            elif kind in draws.HOLDS:
                lot.held += draws.HOLDS[kind] * points
            lot.remaining += delta
            lot.dirty = True
            self.pairs[(lot.user, lot.account)].delta += delta
        if reverses is not None:
            reverses.restored += points
        if kind in ("spend", "debt") and entry.type == "spend":
            self.spend_draws[entry.id].append(draw)
        return draw

    def _add_debt(self, entry: _Entry, pair: Pair, points: int) -> None:
        if points:
            state = self.pairs[pair]
            state.debt += points
            state.dirty = True
            self._draw(entry, None, "debt", points)

    def _credit(self, pair: Pair, account: _Account, *, source: int, points: int,
                entry: _Entry, moment: datetime, origin: _Lot | int | None = None
                ) -> tuple[_Lot, int]:
        """A new lot of ``points`` (pending for the account's delay); its points first repay
        the account's debt. Returns the lot and the debt repaid. ``origin``: the lot whose
        points move here (transfer, reactivation), or the id of their issued lot (rollover)."""
        if account.pending_for:
            if account.id not in self.delays:
                self.delays[account.id] = parse_duration(account.pending_for)
            available_at = self.delays[account.id].add_to(moment)
        else:
            available_at = moment
        lot = _Lot(self.ids["lot"].take(), entry.id, pair[0], pair[1], source, points, 0, 0, 0,
                   points, self.stored(moment), self.stored(available_at),
                   origin if origin is None or isinstance(origin, int)
                   else origin.origin or origin.id, new=True)
        self.lots[lot.id] = lot
        self.lot_of_entry.setdefault(entry.id, lot)
        state = self.pairs[pair]
        state.lots[lot.id] = lot
        state.delta += points
        repaid = min(state.debt, points)
        if repaid:
            state.debt -= repaid
            state.dirty = True
            state.new_repays.append(self._draw(entry, lot, "repay", repaid))
        return lot, repaid

    @staticmethod
    def _fifo(lots: Sequence[_Lot], points: int, caps: dict[int, int]
              ) -> list[tuple[_Lot, int]]:
        """Which lots give how much, FIFO, never more than each account's cap."""
        plan: list[tuple[_Lot, int]] = []
        left = points
        caps = dict(caps)
        for lot in lots:
            if left == 0:
                break
            take = min(draws.free(lot.remaining, lot.held), left, caps.get(lot.account, 0))
            if take > 0:
                plan.append((lot, take))
                caps[lot.account] -= take
                left -= take
        return plan

    @staticmethod
    def _debt_account(accounts: Sequence[_Account]) -> _Account | None:
        """Where a debit's shortfall goes: the first account in play that allows a negative
        balance."""
        return next((a for a in accounts if a.allow_negative), None)

    def _debt_allowed(self, account: _Account, pair: Pair, debt: int, *, clamp: bool,
                      doing: str, total: int) -> int:
        """The credit limit, for every debit that creates debt (a spend's shortfall, a return
        of spent points, a deduction): how much of ``debt`` the account's max debt lets the
        user owe on top of what they owe already. All of it, or with ``clamp`` the part
        allowed (never none); otherwise a refusal that says what is allowed. ``total``: the
        points of the whole debit, ``debt`` the part of them that would be owed."""
        if account.max_debt is None or not debt:
            return debt
        owed = self.pairs[pair].debt
        room = max(0, account.max_debt - owed)
        if debt <= room:
            return debt
        allowed = total - debt + room
        if clamp and allowed > 0:
            return room
        user = pair[0]
        hint = f"; --clamp {doing} the {allowed} allowed" if allowed and doing else ""
        raise RefusedError(
            f"{user} would owe {owed + debt} points in {account.name!r}, above its max debt of "
            f"{account.max_debt} (owing {owed} now); at most {allowed} of the {total} points "
            f"can be taken{hint}")

    @staticmethod
    def _max_balance_room(account: _Account, current: int) -> int | None:
        """How many points the account still takes (None: no max balance)."""
        if account.max_balance is None:
            return None
        return max(0, account.max_balance - current)

    # issue and adjust +N

    def _issue(self, op: _Op, request: IssueRequest) -> dict[str, Any]:
        assert op.source is not None and op.account is not None
        source = self.sources[op.source.id]
        account = op.account
        pair: Pair = (op.user, account.id)
        state = self.pairs[pair]
        known = state.db_total is not None
        allowed, limits = self._allowed(op, request, source, account,
                                        self._balance(pair) if known else None)
        entry = self._entry(
            op, type=request.entry_type, user=op.user, account=account.id, source=source.id,
            points=allowed, reference_type=request.reference_type or
            DEFAULT_REFERENCE_TYPES["issue"], note=request.note)
        lot, repaid = self._credit(pair, account, source=source.id, points=allowed, entry=entry,
                                   moment=op.moment)
        paused = False
        if source.inventory is not None:
            source.inventory -= allowed
            source.dirty = True
            if source.inventory == 0:
                source.status, paused = "paused", True
                self.paused[source.id] = op.request.options.actor
        if request.entry_type == "issue":
            for rule in self.rules.get(source.id, []):
                self.pending_use[(rule.id, op.user if rule.per_customer else None)].append(
                    (op.moment, allowed))
        return {
            "entry": entry.id, "type": request.entry_type, "user": op.user,
            "account": account.name, "source": source.name, "points": allowed,
            "requested": request.points, "clamped": allowed < request.points,
            "clamped_by": "; ".join(limits) if allowed < request.points else None,
            "debt_repaid": repaid, "lot": lot.id,
            "pending_until": clock.format_time(self.moment(lot.available_at))
            if lot.available_at > self.stored(op.moment) else None,
            "balance": self._balance(pair) if known else None,
            "inventory": source.inventory, "source_paused": paused,
        }

    def _allowed(self, op: _Op, request: IssueRequest, source: _Source, account: _Account,
                 current: int | None) -> tuple[int, list[str]]:
        """How many of the points may be issued: restrictions, inventory, max balance; with
        --clamp the allowed part, otherwise all or a refusal."""
        if source.status != "active":
            raise RefusedError(f"source {source.name!r} is {source.status}; only active sources "
                               "issue points")
        points = request.points
        allowed, limits = points, []
        if request.entry_type == "issue":
            for rule in self.rules.get(source.id, []):
                found = restrictions.allowance(
                    self.session, rule, source_id=source.id, user=op.user, moment=op.moment,
                    pending=self.pending_use.get((rule.id,
                                                  op.user if rule.per_customer else None), ()))
                if found.allowed < allowed:
                    allowed = found.allowed
                    limits.append(found.reason(source.name, op.user))
        if source.inventory is not None and source.inventory < allowed:
            allowed = source.inventory
            limits.append(f"source {source.name!r} has {source.inventory} points of inventory")
        room = None if current is None else self._max_balance_room(account, current)
        if room is not None and room < allowed:
            allowed = room
            limits.append(f"{op.user} has {current} of max balance {account.max_balance} "
                          f"in {account.name!r} (room for {room})")
        if allowed < points and (not request.clamp or allowed == 0):
            hint = "" if request.clamp else \
                f"; --clamp issues the {allowed} allowed" if allowed else ""
            raise RefusedError(f"cannot issue {points} points: {'; '.join(limits)}{hint}")
        return allowed, limits

    # spend and adjust -N

    def _debit_plan(self, op: _Op, points: int
                    ) -> tuple[dict[int, Pair], dict[int, list[_Lot]], list[tuple[_Lot, int]]]:
        """The FIFO plan of a debit over the accounts in play (a spend, a hold): each
        account's pair and available lots, and which lots give how much (never more than
        each account's spendable points)."""
        in_play = op.accounts
        pairs = {a.id: (op.user, a.id) for a in in_play}
        open_lots = {a.id: self._open_lots(pairs[a.id], op.moment) for a in in_play}
        caps = {a.id: self._spendable(pairs[a.id], open_lots[a.id]) for a in in_play}
        lots = open_lots[in_play[0].id] if len(in_play) == 1 else sorted(
            (lot for lots in open_lots.values() for lot in lots),
            key=lambda lot: (lot.created_at, lot.id))
        return pairs, open_lots, self._fifo(lots, points, caps)

    def _spend(self, op: _Op, request: SpendRequest) -> dict[str, Any]:
        in_play = op.accounts
        points = request.points
        pairs, _, plan = self._debit_plan(op, points)
        shortfall = points - sum(take for _, take in plan)
        debt_account = self._debt_account(in_play)
        if shortfall and debt_account is None:
            names = ", ".join(repr(a.name) for a in in_play)
            raise RefusedError(f"insufficient points: {op.user} has {points - shortfall} "
                               f"available in {names}; {points} needed, and no account in play "
                               "allows a negative balance")
        if shortfall and debt_account is not None:
            owed = self._debt_allowed(debt_account, pairs[debt_account.id], shortfall,
                                      clamp=request.clamp, doing="spends", total=points)
            points, shortfall = points - shortfall + owed, owed
        by_account: dict[int, list[tuple[_Lot, int]]] = defaultdict(list)
        for lot, take in plan:
            by_account[lot.account].append((lot, take))
        results = []
        for account in in_play:
            account_plan = by_account.get(account.id, [])
            debt = shortfall if debt_account is not None and account.id == debt_account.id \
                else 0
            taken = sum(take for _, take in account_plan)
            if not taken and not debt:
                continue
            sources = {lot.source for lot, _ in account_plan}
            entry = self._entry(op, type="spend", user=op.user, account=account.id,
                                source=sources.pop() if len(sources) == 1 else None,
                                points=-(taken + debt),
                                reference_type=DEFAULT_REFERENCE_TYPES["spend"])
            for lot, take in account_plan:
                self._draw(entry, lot, "spend", take)
            pair = pairs[account.id]
            self._add_debt(entry, pair, debt)
            results.append({"entry": entry.id, "account": account.name, "points": taken + debt,
                            "debt_created": debt, "balance": self._balance(pair)})
        return {"user": op.user, "points": points, "requested": request.points,
                "clamped": points < request.points, "entries": results,
                "debt_created": shortfall}

    def _subtract(self, op: _Op, request: SubtractRequest) -> dict[str, Any]:
        target = op.account
        assert target is not None
        pair: Pair = (op.user, target.id)
        wanted = -request.points
        plan = self._fifo(self._open_lots(pair, None), wanted, {target.id: MAX_POINTS})
        shortfall = wanted - sum(take for _, take in plan)
        if shortfall and not target.allow_negative:
            raise RefusedError(f"cannot remove {wanted} points: {op.user} has "
                               f"{wanted - shortfall} in {target.name!r}, which does not allow "
                               "a negative balance")
        self._debt_allowed(target, pair, shortfall, clamp=False, doing="", total=wanted)
        sources = {lot.source for lot, _ in plan}
        entry = self._entry(op, type="adjustment", user=op.user, account=target.id,
                            source=sources.pop() if len(sources) == 1 else None,
                            points=request.points,
                            reference_type=DEFAULT_REFERENCE_TYPES["adjust_subtract"],
                            note=request.reason.strip())
        for lot, take in plan:
            self._draw(entry, lot, "adjust", take)
        self._add_debt(entry, pair, shortfall)
        return {"entry": entry.id, "type": "adjustment", "user": op.user,
                "account": target.name, "points": request.points, "debt_created": shortfall,
                "balance": self._balance(pair)}

    # transfer

    def _transfer(self, op: _Op, request: TransferRequest) -> dict[str, Any]:
        giver_account, taker_account = op.accounts
        assert op.receiver is not None
        giver: Pair = (op.user, giver_account.id)
        taker: Pair = (op.receiver, taker_account.id)
        points = request.points
        sent_key = None
        if op.receiver != op.user:  # from one member to another: the account's limits
            sent_key = self._transfer_allowed(op, giver_account, points)
        giver_lots = self._open_lots(giver, op.moment)
        spendable = self._spendable(giver, giver_lots)
        if spendable < points:
            raise RefusedError(f"insufficient points: {op.user} has {spendable} available in "
                               f"{giver_account.name!r}; {points} needed (a transfer never "
                               "creates debt)")
        room = self._max_balance_room(taker_account, self._balance(taker))
        if room is not None and room < points:
            raise RefusedError(
                f"transfer would take {op.receiver} to {self._balance(taker) + points} in "
                f"{taker_account.name!r}, above its max balance {taker_account.max_balance}")
        plan = self._fifo(giver_lots, points,
                          {giver_account.id: spendable})
        sources = {lot.source for lot, _ in plan}
        single_source = sources.pop() if len(sources) == 1 else None
        out = self._entry(op, type="transfer", user=op.user, account=giver_account.id,
                          source=single_source, points=-points,
                          reference_type=DEFAULT_REFERENCE_TYPES["transfer"])
        for lot, take in plan:
            self._draw(out, lot, "transfer", take)
        into = self._entry(op, type="transfer", user=op.receiver, account=taker_account.id,
                           source=single_source, points=points, related=out.id,
                           reference_type=DEFAULT_REFERENCE_TYPES["transfer"])
        repaid = 0
        for lot, take in plan:
            repaid += self._credit(taker, taker_account, source=lot.source, points=take,
                                   entry=into, moment=op.moment, origin=lot)[1]
        if sent_key is not None:
            self.sent[sent_key] += points
        return {"entries": [out.id, into.id], "user": op.user, "to_user": op.receiver,
                "from": giver_account.name, "to": taker_account.name, "points": points,
                "debt_repaid": repaid, "balance_from": self._balance(giver),
                "balance_to": self._balance(taker)}

    def _transfer_allowed(self, op: _Op, account: _Account, points: int
                          ) -> tuple[str, int, int] | None:
        """The transfer limits of the sending account, for a transfer to another member: the
        fewest and the most points per transfer, and the most per sender and calendar year of
        the program time zone (what was sent that year, this chunk included). A refusal says
        what is still allowed; otherwise the key under which the points sent are counted."""
        least, most, yearly = account.transfer_min, account.transfer_max, \
            account.transfer_yearly_max
        if least is None and most is None and yearly is None:
            return None
        key, sent, year = None, 0, 0
        if yearly is not None:
            from pointctl.services.settings import program_zone

            zone = program_zone(self.session)
            year = clock.to_local(op.moment, zone).year
            key = (op.user, account.id, year)
            if key not in self.sent:
                start = clock.to_utc(datetime(year, 1, 1), zone)
                end = clock.to_utc(datetime(year + 1, 1, 1), zone) if year < 9999 else \
                    datetime(9999, 12, 31)
                mark = self._marks(1)
                rows = self._raw(
                    "SELECT COALESCE(SUM(-d.points), 0) FROM entry d JOIN entry c "
                    "ON c.related_entry_id = d.id AND c.type = 'transfer' "
                    "WHERE d.type = 'transfer' AND d.points < 0 AND c.user_id <> d.user_id "
                    f"AND d.user_id = {mark} AND d.account_id = {mark} "
                    f"AND d.occurred_at >= {mark} AND d.occurred_at < {mark}",
                    (op.user, account.id, self.stored(start), self.stored(end)))
                self.sent[key] = int(rows[0][0])
            sent = self.sent[key]
        # the most one transfer may carry now, by every limit; none when below the minimum
        cap = min(c for c in (most, None if yearly is None else max(0, yearly - sent),
                              MAX_POINTS) if c is not None)
        if least is not None and cap < least:
            cap = 0
        if (least is None or points >= least) and points <= cap:
            return key
        where = f"{op.user} may transfer to another member out of {account.name!r}"
        rules = [f"at least {least}" if least is not None else "",
                 f"at most {most} points a transfer" if most is not None else "",
                 f"at most {yearly} a calendar year ({sent} transferred in {year})"
                 if yearly is not None else ""]
        allowed = (f"from {least} to {cap} points now" if least is not None else
                   f"up to {cap} points now") if cap else \
            ("nothing more this year" if yearly is not None else "nothing")
        raise RefusedError(f"{where} {'; '.join(r for r in rules if r)}: {points} asked, "
                           f"{allowed}")

    # reverse

    def _reversal_targets(self, request: ReverseRequest) -> list[_Entry]:
        if request.entry_id is not None:
            entry = self.targets.get(request.entry_id)
            if entry is None:
                raise NotFoundError(f"no entry {request.entry_id}")
            if entry.type not in ("issue", "spend"):
                raise RefusedError(f"entry {request.entry_id} is a {entry.type}; only issues "
                                   "and spends can be reversed")
            return [entry]
        found = [e for e in self.by_reference.get(request.reference_id or "", [])
                 if request.reference_type is None or e.reference_type == request.reference_type]
        if not found:
            raise NotFoundError(f"no issue or spend with reference id "
                                f"{request.reference_id!r}")
        return found

    def _left(self, target: _Entry) -> int:
        if target.type == "issue":
            return target.points - self.reversed[target.id]
        return sum(d.points - d.restored for d in self.spend_draws[target.id])

    def _reverse(self, op: _Op, request: ReverseRequest) -> dict[str, Any]:
        targets = self._reversal_targets(request)
        lefts = {t.id: self._left(t) for t in targets}
        total_left = sum(lefts.values())
        wanted = total_left if request.points is None else request.points
        if total_left == 0:
            raise RefusedError("nothing is left to reverse: already fully reversed")
        if wanted > total_left:
            raise RefusedError(f"only {total_left} points are left to reverse; asked for {wanted}")
        asked = wanted
        parts: list[tuple[_Entry, int]] = []  # latest target first, as the points reach
        for target in reversed(targets):
            part = min(wanted, lefts[target.id])
            if part:
                parts.append((target, part))
                wanted -= part
            if wanted == 0:
                break
        parts = self._debt_parts(parts, clamp=request.clamp, asked=asked)
        results = []
        for target, part in parts:
            if part == 0:
                continue
            if target.type == "issue":
                results.append(self._reverse_issue(op, target, part))
            else:
                results.append(self._reverse_spend(op, target, part))
        done = sum(r["points"] for r in results)
        return {"reversals": results, "points": done, "requested": asked,
                "clamped": done < asked}

    def _debt_parts(self, parts: list[tuple[_Entry, int]], *, clamp: bool, asked: int
                    ) -> list[tuple[_Entry, int]]:
        """The credit limit over a whole reversal, before anything is changed: per balance,
        the debt it would leave (``_debt_after``) against the account's max debt
        (``_debt_allowed``). With ``clamp`` the issue parts that create debt shrink, the
        oldest first, until what is owed is allowed."""
        shrunk = list(parts)
        while True:
            cut_any = False
            for pair, after in self._debt_after(shrunk).items():
                account = self.accounts[pair[1]]
                more = after - self.pairs[pair].debt
                if account.max_debt is None or more <= 0:
                    continue
                allowed = self._debt_allowed(account, pair, more, clamp=clamp,
                                             doing="reverses", total=asked)
                cut = more - allowed
                for index in reversed(range(len(shrunk))):  # the oldest issue parts first
                    target, part = shrunk[index]
                    debt = self._issue_debt(target, part)
                    if cut == 0:
                        break
                    if debt and (target.user, target.account) == pair:
                        less = min(cut, debt)
                        shrunk[index] = (target, part - less)
                        cut -= less
                        cut_any = True
            if not cut_any:
                return shrunk

    def _issue_debt(self, target: _Entry, part: int) -> int:
        """The debt reversing ``part`` of an issue creates: what its lot no longer holds."""
        if target.type != "issue" or target.account is None or \
                not self.accounts[target.account].allow_negative:
            return 0
        return part - self._issue_take(target, part)

    def _debt_after(self, parts: list[tuple[_Entry, int]]) -> dict[Pair, int]:
        """What each balance would owe after the reversal's parts, in their order: an issue
        part adds the debt it creates, a spend part cancels debt with its debt draws (newest
        first, as ``_reverse_spend`` gives them back), never below zero. An estimate that is
        never lower than what the reversal leaves."""
        owed: dict[Pair, int] = {}
        for target, part in parts:
            assert target.user is not None and target.account is not None
            pair = (target.user, target.account)
            debt = owed.get(pair, self.pairs[pair].debt)
            if target.type == "issue":
                debt += self._issue_debt(target, part)
            else:
                for draw, give in self._give_back(target, part):
                    if draw.lot_id is None:
                        debt -= min(give, debt)
            owed[pair] = debt
        return owed

    def _give_back(self, target: _Entry, points: int) -> list[tuple[_Draw, int]]:
        """What reversing ``points`` of a spend gives back to each of its draws: the newest
        first, each at most what is left of it."""
        found, left = [], points
        for draw in sorted(self.spend_draws[target.id], key=lambda d: -d.id):
            give = min(left, draw.points - draw.restored)
            if give <= 0:
                continue
            found.append((draw, give))
            left -= give
            if left == 0:
                break
        return found

    def _issue_take(self, target: _Entry, part: int) -> int:
        """What reversing ``part`` of an issue takes back from its lot: what the lot still
        holds, not earmarked by a hold (the rest is owed or written off)."""
        lot = self.lot_of_entry[target.id]
        return min(part, draws.free(lot.remaining, lot.held))

    def _reverse_issue(self, op: _Op, target: _Entry, points: int) -> dict[str, Any]:
        assert target.user is not None and target.account is not None
        pair = (target.user, target.account)
        account = self.accounts[target.account]
        lot = self.lot_of_entry[target.id]
        take = self._issue_take(target, points)
        rest = points - take
        debt = rest if account.allow_negative else 0  # (within the max debt: _debt_parts)
        written_off = rest - debt
        entry = self._entry(op, type="reversal", user=target.user, account=target.account,
                            source=target.source, points=-(take + debt), related=target.id,
                            reference_type=DEFAULT_REFERENCE_TYPES["reversal"],
                            reference_id=target.reference_id, written_off=written_off)
        if take:
            self._draw(entry, lot, "reverse", take)
        self._add_debt(entry, pair, debt)
        self.reversed[target.id] += points
        source = self.sources[lot.source]
        expired = 0
        if source.inventory is not None and take:
            source.inventory += take
            source.dirty = True
            if source.status == "archived":  # archiving expired the inventory; so do returns
                self._entry(op, type="inventory", user=None, account=None, source=source.id,
                            points=-take, related=entry.id,
                            reference_type=DEFAULT_REFERENCE_TYPES["archived_return"])
                source.inventory -= take
                expired = take
        return {"entry": entry.id, "reverses": target.id, "type": "issue", "points": points,
                "returned_to_source": take, "inventory_expired": expired,
                "debt_created": debt, "written_off": written_off,
                "balance": self._balance(pair)}

    def _reverse_spend(self, op: _Op, target: _Entry, points: int) -> dict[str, Any]:
        assert target.user is not None and target.account is not None
        pair = (target.user, target.account)
        state = self.pairs[pair]
        entry = self._entry(op, type="reversal", user=target.user, account=target.account,
                            source=target.source, points=points, related=target.id,
                            reference_type=DEFAULT_REFERENCE_TYPES["reversal"],
                            reference_id=target.reference_id)
        for draw, give in self._give_back(target, points):
            if draw.lot_id is None:  # the shortfall that became debt: cancel it
                cancel = min(give, state.debt)
                state.debt -= cancel
                state.dirty = True
                if give > cancel:
                    self._restore_repaid(entry, pair, give - cancel)
                self._draw(entry, None, "restore", give, reverses=draw)
            else:
                self._draw(entry, self.lots[draw.lot_id], "restore", give, reverses=draw)
        return {"entry": entry.id, "reverses": target.id, "type": "spend", "points": points,
                "balance": self._balance(pair)}

    def _restore_repaid(self, entry: _Entry, pair: Pair, points: int) -> None:
        """Debt already repaid by later credits: give those repayments back, newest first."""
        left = points
        for draw in self._repays(pair):
            give = min(left, draw.points - draw.restored)
            if give <= 0:
                continue
            assert draw.lot_id is not None
            self._draw(entry, self.lots[draw.lot_id], "restore", give, reverses=draw)
            left -= give
            if left == 0:
                break

    # reactivate

    def _expired_parts(self, pair: Pair) -> list[tuple[datetime, _Draw]]:
        """The expire draws of the pair's lots, newest first (time of the expiration, then
        draw id), with what was reactivated of each (``restored``)."""
        if pair not in self.expired:
            found = []
            for row in self._raw(
                    "SELECT d.id, d.entry_id, d.lot_id, d.points, e.occurred_at, (SELECT "
                    "coalesce(sum(r.points), 0) FROM draw r WHERE r.kind = 'reactivate' AND "
                    "r.reverses_draw_id = d.id) FROM draw d JOIN lot ON lot.id = d.lot_id "
                    "JOIN entry e ON e.id = d.entry_id WHERE d.kind = 'expire' AND "
                    f"lot.user_id = {self._marks(1)} AND lot.account_id = {self._marks(1)}",
                    pair):
                at = row[4] if isinstance(row[4], datetime) else datetime.fromisoformat(row[4])
                found.append((at, _Draw(int(row[0]), int(row[1]), int(row[2]), "expire",
                                        int(row[3]), restored=int(row[5]))))
            found.sort(key=lambda part: (part[0], part[1].id), reverse=True)
            lot_ids = sorted({d.lot_id for _, d in found
                              if d.lot_id is not None and d.lot_id not in self.lots})
            for group in locks.groups(lot_ids):
                self._load_lots(f"id IN ({self._marks(len(group))})", group)
            self.expired[pair] = found
        return self.expired[pair]

    def _reactivate(self, op: _Op, request: ReactivateRequest) -> dict[str, Any]:
        from pointctl.core.expiry import before
        from pointctl.services.settings import program_zone

        target = op.account
        assert target is not None and target.id is not None and target.reactivation_window
        pair: Pair = (op.user, target.id)
        window = parse_duration(target.reactivation_window)
        since = before(op.moment, window, program_zone(self.session))
        parts = [(draw, draw.points - draw.restored) for at, draw in self._expired_parts(pair)
                 if since < at <= op.moment and draw.points > draw.restored]
        left = sum(part for _, part in parts)
        if left == 0:
            raise RefusedError(f"{op.user} has no points that expired in {target.name!r} within "
                               f"the last {window}")
        wanted = left if request.points is None else request.points
        if wanted > left:
            raise RefusedError(f"only {left} points expired in {target.name!r} within the last "
                               f"{window} and can be reactivated; {wanted} asked")
        minimum = target.reactivation_min_points
        if minimum and wanted < minimum:
            raise RefusedError(f"at least {minimum} points must be reactivated at a time in "
                               f"{target.name!r}; {wanted} asked")
        room = self._max_balance_room(target, self._balance(pair))
        if room is not None and room < wanted:
            raise RefusedError(f"reactivation would take {op.user} to "
                               f"{self._balance(pair) + wanted} in {target.name!r}, above its "
                               f"max balance {target.max_balance}")
        plan: list[tuple[_Draw, _Lot, int]] = []
        need = wanted
        for draw, part in parts:
            assert draw.lot_id is not None
            take = min(part, need)
            plan.append((draw, self.lots[draw.lot_id], take))
            need -= take
            if need == 0:
                break
        sources = {lot.source for _, lot, _ in plan}
        entry = self._entry(op, type="reactivation", user=op.user, account=target.id,
                            source=next(iter(sources)) if len(sources) == 1 else None,
                            points=wanted, reference_type=DEFAULT_REFERENCE_TYPES["reactivation"])
        # one new lot per origin: the liability report follows the points to their issue
        per_origin: dict[int, tuple[_Lot, int]] = {}
        for draw, lot, take in plan:
            self._draw(entry, lot, "reactivate", take, reverses=draw)
            origin = lot.origin or lot.id
            per_origin[origin] = (lot, per_origin.get(origin, (lot, 0))[1] + take)
        repaid = 0
        for lot, total in per_origin.values():
            repaid += self._credit(pair, target, source=lot.source, points=total, entry=entry,
                                   moment=op.moment, origin=lot)[1]
        return {"entry": entry.id, "user": op.user, "account": target.name, "points": wanted,
                "left_to_reactivate": left - wanted, "debt_repaid": repaid,
                "balance": self._balance(pair)}

    # holds: reserve, then capture (a spend) or release

    def _hold(self, op: _Op, request: HoldRequest) -> dict[str, Any]:
        ref = request.options.reference_id or ""  # as given: it names the hold exactly
        if ref in self.holds:
            raise RefusedError(f"there is already a hold {ref!r} ({self.holds[ref].status}); "
                               "a reference id names one hold")
        in_play = op.accounts
        pairs, open_lots, plan = self._debit_plan(op, request.points)
        free = sum(take for _, take in plan)
        if free < request.points:
            names = ", ".join(repr(a.name) for a in in_play)
            raise RefusedError(f"insufficient points: {op.user} has {free} available in "
                               f"{names}; {request.points} needed (a hold never creates debt)")
        expires = parse_duration(request.expires_in).add_to(op.moment)
        if expires <= self.now:
            raise RefusedError(f"a hold placed at {clock.format_time(op.moment)} for "
                               f"{request.expires_in} would have expired at "
                               f"{clock.format_time(expires)}, before now")
        hold = _Hold(self.ids["hold"].take(), ref, op.user, request.points, 0, "open",
                     expires, 0, op.moment, None, new=True)
        note = f"{request.points} points held until {clock.format_time(expires)}"
        entries: list[dict[str, Any]] = []
        for account in in_play:
            mine = [(lot, take) for lot, take in plan if lot.account == account.id]
            if not mine:
                continue
            sources = {lot.source for lot, _ in mine}
            entry = self._entry(op, type="hold", user=op.user, account=account.id,
                                source=sources.pop() if len(sources) == 1 else None, points=0,
                                reference_type=DEFAULT_REFERENCE_TYPES["hold"], note=note)
            for lot, take in mine:
                self._draw(entry, lot, "hold", take)
            entries.append({"entry": entry.id, "account": account.name,
                            "points": sum(take for _, take in mine),
                            "available": self._spendable(pairs[account.id],
                                                         open_lots[account.id])})
        hold.entry_id = int(entries[0]["entry"])
        hold.draws = [(lot.id, take) for lot, take in plan]  # FIFO over the accounts
        self.holds[ref] = hold
        self.hold_pairs[ref] = sorted({pairs[a.id] for a in in_play})
        return {"hold": ref, "user": op.user, "points": request.points, "status": "open",
                "expires_at": clock.format_time(expires), "entries": entries}

    def _open_hold(self, ref: str) -> _Hold:
        hold = self.holds.get(ref)
        if hold is None:
            raise NotFoundError(f"no hold {ref!r} (see 'pointctl hold list')")
        return hold

    def _release(self, op: _Op, hold: _Hold, *, status: str, why: str) -> list[int]:
        """Free every point the hold earmarks: one release entry per account."""
        entries: dict[int, _Entry] = {}
        for lot_id, points in hold.draws:
            lot = self.lots[lot_id]
            if lot.account not in entries:
                entries[lot.account] = self._entry(
                    op, type="release", user=hold.user, account=lot.account, source=None,
                    points=0, reference_id=hold.reference_id,
                    reference_type=DEFAULT_REFERENCE_TYPES["release"], related=hold.entry_id,
                    note=why)
            self._draw(entries[lot.account], lot, "release", points)
        hold.status, hold.closed_at, hold.dirty = status, op.moment, True
        return [entry.id for entry in entries.values()]

    def _capture(self, op: _Op, request: CaptureRequest) -> dict[str, Any]:
        hold = self._open_hold(request.reference_id)
        ref = hold.reference_id
        if hold.status != "open":
            raise RefusedError(f"hold {ref!r} is {hold.status}; only an open hold can be "
                               "captured")
        if hold.expires_at <= max(op.moment, self.now):  # (--at cannot bring it back)
            raise RefusedError(f"hold {ref!r} expired at {clock.format_time(hold.expires_at)};"
                               " it can no longer be captured (its points are released by "
                               "'pointctl expire run')")
        points = hold.points if request.points is None else request.points
        if points > hold.points:
            raise RefusedError(f"hold {ref!r} holds {hold.points} points; cannot capture "
                               f"{points}")
        released = self._release(op, hold, status="captured",
                                 why=f"hold captured: {points} of {hold.points} points spent")
        hold.captured = points
        spends: dict[int, _Entry] = {}
        left = points
        earmarked = sorted(hold.draws, key=lambda d: (self.lots[d[0]].created_at, d[0]))
        for lot_id, held in earmarked:  # the earmarked points, oldest lot first
            take = min(held, left)
            if take == 0:
                break
            lot = self.lots[lot_id]
            if lot.account not in spends:
                spends[lot.account] = self._entry(
                    op, type="spend", user=hold.user, account=lot.account, source=None,
                    points=0, reference_id=ref,
                    reference_type=DEFAULT_REFERENCE_TYPES["capture"], related=hold.entry_id)
            self._draw(spends[lot.account], lot, "spend", take)
            spends[lot.account].points -= take
            left -= take
        results = []
        for account_id, entry in spends.items():
            pair = (hold.user, account_id)
            results.append({"entry": entry.id, "account": self.accounts[account_id].name,
                            "points": -entry.points, "balance": self._balance(pair)})
        return {"hold": ref, "user": hold.user, "points": points, "held": hold.points,
                "released": hold.points - points, "status": "captured", "entries": results,
                "release_entries": released}

    def _void(self, op: _Op, request: VoidRequest) -> dict[str, Any]:
        hold = self._open_hold(request.reference_id)
        ref = hold.reference_id
        if hold.status != "open" or (request.expired
                                     and hold.expires_at > op.moment + RELEASE_EARLY):
            if request.expired:  # released already (another run), or not due: nothing to do
                return {"hold": ref, "user": hold.user, "points": 0, "status": hold.status}
            raise RefusedError(f"hold {ref!r} is {hold.status}; only an open hold can be "
                               "voided")
        if not request.expired and hold.expires_at <= max(op.moment, self.now):
            # its release belongs before the evaluations that came after its end
            raise RefusedError(f"hold {ref!r} ended at {clock.format_time(hold.expires_at)}; "
                               "'pointctl expire run' releases it")
        status = "expired" if request.expired else "voided"
        why = (f"hold expired at {clock.format_time(hold.expires_at)}" if request.expired
               else "hold voided")
        entries = self._release(op, hold, status=status, why=why)
        return {"hold": ref, "user": hold.user, "points": hold.points, "status": status,
                "release_entries": entries}

    # the credit of a rollover

    def _rollover(self, op: _Op, request: RolloverRequest) -> dict[str, Any]:
        account = op.account
        assert account is not None
        pair: Pair = (op.user, account.id)
        if not request.ignore_max_balance:
            room = self._max_balance_room(account, self._balance(pair))
            if room is not None and room < request.points:
                raise RefusedError(f"a rollover of {request.points} points would take "
                                   f"{op.user} above the max balance of {account.name!r}")
        entry = self._entry(op, type="rollover", user=op.user, account=account.id,
                            source=request.source_id, points=request.points,
                            reference_type=DEFAULT_REFERENCE_TYPES["rollover"], note=request.note,
                            related=request.debit_entry_id)
        lot, repaid = self._credit(pair, account, source=request.source_id,
                                   points=request.points, entry=entry, moment=op.moment,
                                   origin=request.origin_lot_id)
        return {"entry": entry.id, "lot": lot.id, "debt_repaid": repaid}

    # activity

    def _activity(self, op: _Op, request: ActivityRequest) -> dict[str, Any]:
        event = clean_event(request.event)
        activity_id = self.ids["activity"].take()
        self.activity.append((activity_id, op.user, event, request.options.actor, op.moment))
        return {"activity": activity_id, "user": op.user, "event": event,
                "at": clock.format_time(op.moment)}

    # -- 6. writing -------------------------------------------------------------------------

    def _write(self) -> None:
        time = self.stored
        now = time(self.now)
        connection = self.connection
        bulk.insert(connection, "entry", _ENTRY_COLUMNS, [
            (e.id, e.type, e.user, e.account, e.source, e.points, e.reference_id,
             e.reference_type, e.note, e.related, e.written_off, e.actor, time(e.occurred_at),
             now) for e in self.entries])
        new_lots = sorted((lot for lot in self.lots.values() if lot.new), key=lambda lot: lot.id)
        bulk.insert(connection, "lot", _LOT_COLUMNS, [
            (lot.id, lot.entry_id, lot.user, lot.account, lot.source, lot.original, lot.spent,
             lot.expired, lot.moved, lot.remaining, lot.created_at, lot.available_at,
             lot.origin, lot.held) for lot in new_lots])
        changed = sorted((lot for lot in self.lots.values() if lot.dirty and not lot.new),
                         key=lambda lot: lot.id)
        bulk.update(connection, "lot", [("id", "bigint")],
                    [("spent", "bigint"), ("expired", "bigint"), ("moved", "bigint"),
                     ("remaining", "bigint"), ("held", "bigint")],
                    [(lot.spent, lot.expired, lot.moved, lot.remaining, lot.held, lot.id)
                     for lot in changed])
        bulk.insert(connection, "draw", _DRAW_COLUMNS, [
            (d.id, d.entry_id, d.lot_id, d.kind, d.points, d.reverses) for d in self.new_draws])
        locks.drop_unused_balances(self.session, self.created - self.used)
        debts = sorted(pair for pair, state in self.pairs.items() if state.dirty)
        bulk.update(connection, "balance", [("user_id", "text"), ("account_id", "integer")],
                    [("debt", "bigint")], [(self.pairs[pair].debt, *pair) for pair in debts])
        bulk.update(connection, "source", [("id", "integer")],
                    [("inventory", "bigint"), ("status", "text"), ("updated_at", "timestamp")],
                    [(source.inventory, source.status, now, source.id)
                     for source in sorted(self.sources.values(), key=lambda s: s.id)
                     if source.dirty])
        try:
            bulk.insert(connection, "hold", _HOLD_COLUMNS, [
                (h.id, h.reference_id, h.user, h.points, h.captured, h.status,
                 time(h.expires_at), h.entry_id, time(h.created_at),
                 None if h.closed_at is None else time(h.closed_at))
                for h in self.holds.values() if h.new])
        except IntegrityError:
            raise RetryableConflict("a hold's reference id is being used concurrently; "
                                    "retrying") from None
        bulk.update(connection, "hold", [("id", "bigint")],
                    [("status", "text"), ("captured", "bigint"), ("closed_at", "timestamp")],
                    [(h.status, h.captured, None if h.closed_at is None else time(h.closed_at),
                      h.id) for h in self.holds.values() if h.dirty and not h.new])
        bulk.insert(connection, "activity", _ACTIVITY_COLUMNS,
                    [(a[0], a[1], a[2], a[3], time(a[4])) for a in self.activity])
        if self.records:
            try:
                bulk.insert(connection, "idempotency", _RECORD_COLUMNS,
                            [(key, digest, result, now)
                             for key, (digest, result) in self.records.items()])
            except IntegrityError:
                raise RetryableConflict("an idempotency key is being used concurrently; "
                                        "retrying") from None


_ENTRY_COLUMNS = [
    ("id", "bigint"), ("type", "text"), ("user_id", "text"), ("account_id", "integer"),
    ("source_id", "integer"), ("points", "bigint"), ("reference_id", "text"),
    ("reference_type", "text"), ("note", "text"), ("related_entry_id", "bigint"),
    ("written_off", "bigint"), ("actor", "text"), ("occurred_at", "timestamp"),
    ("recorded_at", "timestamp")]
_LOT_COLUMNS = [
    ("id", "bigint"), ("entry_id", "bigint"), ("user_id", "text"), ("account_id", "integer"),
    ("source_id", "integer"), ("original", "bigint"), ("spent", "bigint"),
    ("expired", "bigint"), ("moved", "bigint"), ("remaining", "bigint"),
    ("created_at", "timestamp"), ("available_at", "timestamp"), ("origin_lot_id", "bigint"),
    ("held", "bigint")]
_DRAW_COLUMNS = [("id", "bigint"), ("entry_id", "bigint"), ("lot_id", "bigint"),
                 ("kind", "text"), ("points", "bigint"), ("reverses_draw_id", "bigint")]
_HOLD_COLUMNS = [("id", "bigint"), ("reference_id", "text"), ("user_id", "text"),
                 ("points", "bigint"), ("captured", "bigint"), ("status", "text"),
                 ("expires_at", "timestamp"), ("entry_id", "bigint"),
                 ("created_at", "timestamp"), ("closed_at", "timestamp")]
_ACTIVITY_COLUMNS = [("id", "bigint"), ("user_id", "text"), ("event", "text"),
                     ("actor", "text"), ("occurred_at", "timestamp")]
_RECORD_COLUMNS = [("key", "text"), ("request_hash", "text"), ("result", "text"),
                   ("created_at", "timestamp")]


def _usable(account: _Account, *, action: str) -> None:
    if account.status != "active":
        raise RefusedError(f"account {account.name!r} is inactive; it allows no {action}")
