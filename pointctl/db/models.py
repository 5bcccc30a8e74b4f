"""The tables of pointctl.

Conventions: points are BigInteger, times are naive UTC, names carry a ``name_key`` (casefolded)
that is unique so that names are unique case-insensitively. ``entry`` is the append-only audit
log shared by inventory changes and (later) every ledger operation; triggers created by the
migration refuse UPDATE and DELETE on it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String
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


class Account(SQLModel, table=True):
    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(100), nullable=False)
    name_key: str = Field(sa_type=String(100), nullable=False, unique=True)
    group_label: str | None = Field(default=None, sa_type=String(100), nullable=True)
    status: str = Field(default="active", sa_type=String(16), nullable=False)
    is_default: bool = Field(default=False, nullable=False)
    allow_negative: bool = Field(default=True, nullable=False)
    max_balance: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    qualifying: bool = Field(default=False, nullable=False)
    pending_for: str | None = Field(default=None, sa_type=String(32), nullable=True)
    created_at: datetime = Field(sa_type=UtcTime, nullable=False)
    updated_at: datetime = Field(sa_type=UtcTime, nullable=False)


class Source(SQLModel, table=True):
    __tablename__ = "source"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(100), nullable=False)
    name_key: str = Field(sa_type=String(100), nullable=False, unique=True)
    status: str = Field(default="active", sa_type=String(16), nullable=False)
    # NULL means unlimited; an unlimited source stays unlimited (SPEC §4).
    inventory: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    created_at: datetime = Field(sa_type=UtcTime, nullable=False)
    updated_at: datetime = Field(sa_type=UtcTime, nullable=False)


class AccountSource(SQLModel, table=True):
    """Which sources may deposit into which accounts."""

    __tablename__ = "account_source"

    account_id: int = Field(
        sa_column=Column(Integer, ForeignKey("account.id"), primary_key=True)
    )
    source_id: int = Field(
        sa_column=Column(Integer, ForeignKey("source.id"), primary_key=True, index=True)
    )


class Entry(SQLModel, table=True):
    """One row of the append-only audit log (SPEC §2 rule 6)."""

    __tablename__ = "entry"
    __table_args__ = (
        Index("ix_entry_source_id_occurred_at", "source_id", "occurred_at"),
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
    actor: str = Field(sa_type=String(200), nullable=False)
    occurred_at: datetime = Field(sa_type=UtcTime, nullable=False)
    recorded_at: datetime = Field(sa_type=UtcTime, nullable=False)
