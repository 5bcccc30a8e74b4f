"""The tables of pointctl.

Conventions: points are BigInteger, times are naive UTC, names carry a ``name_key`` (casefolded)
that is unique so that names are unique case-insensitively. ``entry`` is the append-only audit
log shared by inventory changes and (later) every ledger operation; triggers created by the
migration refuse UPDATE and DELETE on it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict
from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlmodel import Field, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

# 64-bit ids on PostgreSQL; SQLite needs INTEGER PRIMARY KEY for its rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# naive UTC everywhere: the clock (pointctl.core.clock) hands out naive UTC datetimes
UtcTime = DateTime(timezone=False)

ACCOUNT_STATUSES = ("active", "inactive")
SOURCE_STATUSES = ("active", "paused", "archived")
# a literal, not a bound parameter, so that both planners match the partial indexes
ISSUES_ONLY = text("type = 'issue'")
CHANGES_ONLY = text("type = 'change'")
TIERS_ONLY = text("type = 'tier'")


class Table(SQLModel):
    """What every table shares: pydantic builds a model's validator the first time one is
    used, not when the class is defined (table models are not validated on construction, and
    building 14 validators was a tenth of a command's start-up)."""

    model_config = ConfigDict(defer_build=True)  # type: ignore[assignment]


class Account(Table, table=True):
    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(100), nullable=False)
    name_key: str = Field(sa_type=String(100), nullable=False, unique=True)
    group_label: str | None = Field(default=None, sa_type=String(100), nullable=True)
    status: str = Field(default="active", sa_type=String(16), nullable=False)
    is_default: bool = Field(default=False, nullable=False)
    allow_negative: bool = Field(default=True, nullable=False)
    # the most points a customer may owe here (NULL: no limit); only with allow_negative
    max_debt: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    max_balance: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    qualifying: bool = Field(default=False, nullable=False)
    pending_for: str | None = Field(default=None, sa_type=String(32), nullable=True)
    created_at: datetime = Field(sa_type=UtcTime, nullable=False)
    updated_at: datetime = Field(sa_type=UtcTime, nullable=False)
    # points expired within this window may be reactivated (NULL: not allowed)
    reactivation_window: str | None = Field(default=None, sa_type=String(32), nullable=True)
    reactivation_min_points: int | None = Field(default=None, sa_type=BigInteger,
                                                nullable=True)
    # what a promotion engine weighs when several promotions apply (NULL: not set)
    qualifying_weight: int | None = Field(default=None, nullable=True)
    non_qualifying_weight: int | None = Field(default=None, nullable=True)
    # limits of transfers from one member to another out of this account (NULL: none): per
    # transfer, and per sending member and calendar year of the program time zone
    transfer_min: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    transfer_max: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    transfer_yearly_max: int | None = Field(default=None, sa_type=BigInteger, nullable=True)


class Enrollment(Table, table=True):
    """When a member joined the program, recorded once (anniversary expiration counts from
    it; without it, from the member's first ledger entry)."""

    __tablename__ = "enrollment"

    user_id: str = Field(sa_column=Column(String(200), primary_key=True))
    enrolled_at: datetime = Field(sa_type=UtcTime, nullable=False)
    actor: str = Field(sa_type=String(200), nullable=False)
    recorded_at: datetime = Field(sa_type=UtcTime, nullable=False)


class Setting(Table, table=True):
    """Program settings (``config set KEY VALUE``): ``timezone`` for now."""

    __tablename__ = "setting"

    key: str = Field(sa_column=Column(String(50), primary_key=True))
    value: str = Field(sa_type=String(200), nullable=False)
    updated_at: datetime = Field(sa_type=UtcTime, nullable=False)


class ExpirationPolicy(Table, table=True):
    """The one expiration policy of an account: a schedule and a rule.

    ``kind`` is rolling, fixed-date or inactivity; the columns of the other kinds are NULL.
    ``last_evaluated_at`` is the latest evaluation performed; evaluations are due at the
    schedule's times after it (after ``starts_at`` when there is none yet). Writers lock this
    row first, so two ``expire run`` processes perform each evaluation once.
    """

    __tablename__ = "expiration_policy"

    account_id: int = Field(
        sa_column=Column(Integer, ForeignKey("account.id"), primary_key=True)
    )
    kind: str = Field(sa_type=String(16), nullable=False)
    schedule: str = Field(sa_type=String(100), nullable=False)
    older_than: str | None = Field(default=None, sa_type=String(32), nullable=True)
    rollover_to_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("account.id"), nullable=True)
    )
    snap_to: str | None = Field(default=None, sa_type=String(16), nullable=True)
    fixed_date: str | None = Field(default=None, sa_type=String(5), nullable=True)
    min_age: str | None = Field(default=None, sa_type=String(32), nullable=True)
    inactive_for: str | None = Field(default=None, sa_type=String(32), nullable=True)
    percent: int | None = Field(default=None, nullable=True)
    activity: str | None = Field(default=None, sa_type=String(500), nullable=True)
    starts_at: datetime = Field(sa_type=UtcTime, nullable=False)
    last_evaluated_at: datetime | None = Field(default=None, sa_type=UtcTime, nullable=True)
    # the next evaluation after the last one (or the start); NULL: none within 60 years
    next_due_at: datetime | None = Field(default=None, sa_type=UtcTime, nullable=True)
    set_by: str = Field(sa_type=String(200), nullable=False)
    updated_at: datetime = Field(sa_type=UtcTime, nullable=False)


class ExpirationRun(Table, table=True):
    """One performed evaluation: (account, evaluation time) is the primary key, so each is
    recorded, and performed, exactly once."""

    __tablename__ = "expiration_run"

    account_id: int = Field(
        sa_column=Column(Integer, ForeignKey("account.id"), primary_key=True)
    )
    evaluated_at: datetime = Field(sa_column=Column(UtcTime, primary_key=True))
    policy: str = Field(sa_type=String(300), nullable=False)
    users: int = Field(sa_type=BigInteger, nullable=False)
    lots: int = Field(sa_type=BigInteger, nullable=False)
    expired: int = Field(sa_type=BigInteger, nullable=False)
    rolled_over: int = Field(sa_type=BigInteger, nullable=False)
    actor: str = Field(sa_type=String(200), nullable=False)
    performed_at: datetime = Field(sa_type=UtcTime, nullable=False)


class Source(Table, table=True):
    __tablename__ = "source"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(100), nullable=False)
    name_key: str = Field(sa_type=String(100), nullable=False, unique=True)
    status: str = Field(default="active", sa_type=String(16), nullable=False)
    # NULL means unlimited; an unlimited source stays unlimited.
    inventory: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    created_at: datetime = Field(sa_type=UtcTime, nullable=False)
    updated_at: datetime = Field(sa_type=UtcTime, nullable=False)
    # what one point is worth, in millionths of ``currency``'s unit (NULL: no value set)
    value_micros: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    currency: str | None = Field(default=None, sa_type=String(3), nullable=True)


class Restriction(Table, table=True):
    """A frequency limit on a source: at most ``max_points`` issued in any rolling
    window of ``per``, to each customer (``per_customer``) or to all together."""

    __tablename__ = "restriction"

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(
        sa_column=Column(Integer, ForeignKey("source.id"), nullable=False, index=True)
    )
    max_points: int = Field(sa_type=BigInteger, nullable=False)
    per: str = Field(sa_type=String(32), nullable=False)  # a canonical duration: "1d", "12h"
    per_customer: bool = Field(nullable=False)
    created_at: datetime = Field(sa_type=UtcTime, nullable=False)
    updated_at: datetime = Field(sa_type=UtcTime, nullable=False)


class AccountSource(Table, table=True):
    """Which sources may deposit into which accounts."""

    __tablename__ = "account_source"

    account_id: int = Field(
        sa_column=Column(Integer, ForeignKey("account.id"), primary_key=True)
    )
    source_id: int = Field(
        sa_column=Column(Integer, ForeignKey("source.id"), primary_key=True, index=True)
    )


class Entry(Table, table=True):
    """One row of the append-only audit log."""

    __tablename__ = "entry"
    __table_args__ = (
        Index("ix_entry_source_id_occurred_at", "source_id", "occurred_at"),
        Index("ix_entry_user_id_occurred_at", "user_id", "occurred_at"),
        Index("ix_entry_reference_id", "reference_id"),
        Index("ix_entry_related_entry_id", "related_entry_id"),
        Index("ix_entry_occurred_at", "occurred_at"),
        # the window sums of restrictions: index-only range scans over issues
        Index("ix_entry_issue_source_time", "source_id", "occurred_at", "points",
              sqlite_where=ISSUES_ONLY, postgresql_where=ISSUES_ONLY),
        Index("ix_entry_issue_source_user_time", "source_id", "user_id", "occurred_at",
              "points", sqlite_where=ISSUES_ONLY, postgresql_where=ISSUES_ONLY),
        # the change history: an object's latest recorded state, the program at a moment
        Index("ix_entry_change", "id", sqlite_where=CHANGES_ONLY,
              postgresql_where=CHANGES_ONLY),
        # the tier moves of a period (report tiers)
        Index("ix_entry_tier", "occurred_at", sqlite_where=TIERS_ONLY,
              postgresql_where=TIERS_ONLY),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    type: str = Field(sa_type=String(20), nullable=False)
    user_id: str | None = Field(default=None, sa_type=String(200), nullable=True)
    account_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("account.id"), nullable=True)
    )
    source_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("source.id"), nullable=True)
    )
    # the signed modification: +earned / -deducted (for inventory entries: the inventory change)
    points: int = Field(sa_type=BigInteger, nullable=False)
    reference_id: str | None = Field(default=None, sa_type=String(200), nullable=True)
    reference_type: str | None = Field(default=None, sa_type=String(200), nullable=True)
    note: str | None = Field(default=None, sa_type=String(1000), nullable=True)
    # a reversal names the entry it reverses; a transfer's credit names its debit
    related_entry_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("entry.id"), nullable=True)
    )
    # an issue reversal of already-spent points without allow_negative: what the program absorbs
    written_off: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    actor: str = Field(sa_type=String(200), nullable=False)
    occurred_at: datetime = Field(sa_type=UtcTime, nullable=False)
    recorded_at: datetime = Field(sa_type=UtcTime, nullable=False)
    # a change of the program (type ``change``): JSON of what changed, field by field, and
    # the object's whole state after it (``pointctl.services.changes``)
    detail: str | None = Field(default=None, sa_type=Text, nullable=True)


class Balance(Table, table=True):
    """One user's standing in one account: the row writers lock.

    The balance itself is the sum of the lots' remaining points minus ``debt``; it is not
    cached, so there is nothing here that could drift from the lots.
    """

    __tablename__ = "balance"
    __table_args__ = (
        # expire run skips the users a write's catch-up evaluated already
        Index("ix_balance_evaluated_through", "account_id", "evaluated_through",
              sqlite_where=text("evaluated_through IS NOT NULL"),
              postgresql_where=text("evaluated_through IS NOT NULL")),
    )

    user_id: str = Field(sa_column=Column(String(200), primary_key=True))
    account_id: int = Field(
        sa_column=Column(Integer, ForeignKey("account.id"), primary_key=True)
    )
    debt: int = Field(default=0, sa_type=BigInteger, nullable=False)
    created_at: datetime = Field(sa_type=UtcTime, nullable=False)
    # the latest evaluation of the account's policy applied to this user alone (a write's
    # catch-up of a late ``expire run``); NULL: none beyond the policy's last evaluation
    evaluated_through: datetime | None = Field(default=None, sa_type=UtcTime, nullable=True)


class Lot(Table, table=True):
    """The points of one credit into one user's account, and what became of them.

    original = spent + expired + moved + remaining.
    """

    __tablename__ = "lot"
    __table_args__ = (
        # FIFO look-up of a balance's open lots; partial, so spent-out lots cost nothing
        Index("ix_lot_open_fifo", "user_id", "account_id", "created_at", "id",
              sqlite_where=text("remaining > 0"), postgresql_where=text("remaining > 0")),
        # an expiration evaluation's candidates: an account's lots with points left, by age
        Index("ix_lot_open_account_age", "account_id", "created_at",
              sqlite_where=text("remaining > 0"), postgresql_where=text("remaining > 0")),
        Index("ix_lot_source_id", "source_id"),
        Index("ix_lot_entry_id", "entry_id"),
        # a moved lot's lineage: the liability report follows issued points through moves
        Index("ix_lot_origin_lot_id", "origin_lot_id",
              sqlite_where=text("origin_lot_id IS NOT NULL"),
              postgresql_where=text("origin_lot_id IS NOT NULL")),
        # the issued lots of a source and period (the liability report's cohort)
        Index("ix_lot_issued_source_time", "source_id", "created_at",
              sqlite_where=text("origin_lot_id IS NULL"),
              postgresql_where=text("origin_lot_id IS NULL")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    user_id: str = Field(sa_type=String(200), nullable=False)
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("account.id"), nullable=False))
    source_id: int = Field(sa_column=Column(Integer, ForeignKey("source.id"), nullable=False))
    entry_id: int = Field(sa_column=Column(BigId, ForeignKey("entry.id"), nullable=False))
    original: int = Field(sa_type=BigInteger, nullable=False)
    spent: int = Field(default=0, sa_type=BigInteger, nullable=False)
    expired: int = Field(default=0, sa_type=BigInteger, nullable=False)
    moved: int = Field(default=0, sa_type=BigInteger, nullable=False)
    remaining: int = Field(sa_type=BigInteger, nullable=False)
    created_at: datetime = Field(sa_type=UtcTime, nullable=False)
    available_at: datetime = Field(sa_type=UtcTime, nullable=False)
    # the issued lot whose points these are, when they came here by a transfer, a rollover or
    # a reactivation; NULL on an issued lot
    origin_lot_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # earmarked by open holds (at most ``remaining``): a debit takes only remaining - held
    held: int = Field(default=0, sa_column=Column(BigInteger, nullable=False,
                                                  server_default="0"))


class Hold(Table, table=True):
    """A checkout hold: points reserved for an order, named by its reference id; captured
    (spent), voided, or released when it expires. Its lots are its ``hold`` draws."""

    __tablename__ = "hold"
    __table_args__ = (
        Index("ix_hold_open_expires_at", "expires_at", sqlite_where=text("status = 'open'"),
              postgresql_where=text("status = 'open'")),
        Index("ix_hold_user_id", "user_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    reference_id: str = Field(sa_type=String(200), nullable=False, unique=True)
    user_id: str = Field(sa_type=String(200), nullable=False)
    points: int = Field(sa_type=BigInteger, nullable=False)
    captured: int = Field(default=0, sa_column=Column(BigInteger, nullable=False,
                                                      server_default="0"))
    status: str = Field(sa_type=String(16), nullable=False)  # open, captured, voided, expired
    expires_at: datetime = Field(sa_type=UtcTime, nullable=False)
    entry_id: int = Field(sa_column=Column(BigId, ForeignKey("entry.id"), nullable=False))
    created_at: datetime = Field(sa_type=UtcTime, nullable=False)
    closed_at: datetime | None = Field(default=None, sa_type=UtcTime, nullable=True)


class Draw(Table, table=True):
    """Points one entry took from (or gave back to) one lot; ``lot_id`` NULL is debt.

    kinds: spend, adjust, repay (debt repaid from a new lot), transfer, reverse (an issue taken
    back to its source), expire, rollover (expired points moved into the rollover account),
    reactivate (expired points made a new lot again; ``reverses_draw_id`` names the expire
    draw), debt (a spend's shortfall), restore (a spend reversal giving back what
    ``reverses_draw_id`` took).
    """

    __tablename__ = "draw"
    __table_args__ = (
        Index("ix_draw_entry_id", "entry_id"),
        Index("ix_draw_lot_id", "lot_id"),
        Index("ix_draw_reverses_draw_id", "reverses_draw_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    entry_id: int = Field(sa_column=Column(BigId, ForeignKey("entry.id"), nullable=False))
    lot_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("lot.id"), nullable=True)
    )
    kind: str = Field(sa_type=String(16), nullable=False)
    points: int = Field(sa_type=BigInteger, nullable=False)
    reverses_draw_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("draw.id"), nullable=True)
    )


class Activity(Table, table=True):
    """Activity events of users (issue and spend count too; these are the custom ones)."""

    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_user_id_occurred_at", "user_id", "occurred_at"),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    user_id: str = Field(sa_type=String(200), nullable=False)
    event: str = Field(sa_type=String(50), nullable=False)
    actor: str = Field(sa_type=String(200), nullable=False)
    occurred_at: datetime = Field(sa_type=UtcTime, nullable=False)


class IdempotencyRecord(Table, table=True):
    """The first result of a write made with --idempotency-key."""

    __tablename__ = "idempotency"

    key: str = Field(sa_column=Column(String(200), primary_key=True))
    request_hash: str = Field(sa_type=String(64), nullable=False)
    result: str = Field(sa_type=Text, nullable=False)
    created_at: datetime = Field(sa_type=UtcTime, nullable=False)


class TierProgram(Table, table=True):
    """The tiers of the program (one row, id 1): which tier qualifying account counts, over
    which window (a duration such as ``12mo``, or ``calendar-year``), how long a reached level
    is kept, and when ``expire run`` assesses members (a schedule, as an expiration policy
    has). Evaluations lock this row first, so each is performed once."""

    __tablename__ = "tier_program"

    id: int = Field(default=1, sa_column=Column(Integer, primary_key=True))
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("account.id"), nullable=False))
    window: str = Field(sa_type=String(32), nullable=False)
    keep: str | None = Field(default=None, sa_type=String(32), nullable=True)
    schedule: str = Field(sa_type=String(100), nullable=False)
    starts_at: datetime = Field(sa_type=UtcTime, nullable=False)
    last_evaluated_at: datetime | None = Field(default=None, sa_type=UtcTime, nullable=True)
    set_by: str = Field(sa_type=String(200), nullable=False)
    updated_at: datetime = Field(sa_type=UtcTime, nullable=False)


class TierLevel(Table, table=True):
    """One level of the tiers: reached with at least ``threshold`` qualifying points in the
    window; ``position`` 1 is the lowest, thresholds rise with it."""

    __tablename__ = "tier_level"

    position: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    name: str = Field(sa_type=String(100), nullable=False)
    name_key: str = Field(sa_type=String(100), nullable=False, unique=True)
    threshold: int = Field(sa_type=BigInteger, nullable=False)


class MemberTier(Table, table=True):
    """A member's level as the latest evaluation left it (no row: no level): reached at
    ``reached_at``, kept at least until ``kept_until``."""

    __tablename__ = "member_tier"

    user_id: str = Field(sa_column=Column(String(200), primary_key=True))
    level: str = Field(sa_type=String(100), nullable=False)
    reached_at: datetime = Field(sa_type=UtcTime, nullable=False)
    kept_until: datetime = Field(sa_type=UtcTime, nullable=False)


class TierRun(Table, table=True):
    """One performed tier evaluation: its time is the primary key, so each is recorded, and
    performed, exactly once."""

    __tablename__ = "tier_run"

    evaluated_at: datetime = Field(sa_column=Column(UtcTime, primary_key=True))
    members: int = Field(sa_type=BigInteger, nullable=False)
    up: int = Field(sa_type=BigInteger, nullable=False)
    down: int = Field(sa_type=BigInteger, nullable=False)
    changed: int = Field(sa_type=BigInteger, nullable=False)  # out of a level no longer defined
    actor: str = Field(sa_type=String(200), nullable=False)
    performed_at: datetime = Field(sa_type=UtcTime, nullable=False)
