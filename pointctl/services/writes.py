"""What every ledger write shares: its options, default reference types and the
check of a user id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pointctl.core import clock
from pointctl.core.errors import InvalidInputError
from pointctl.core.validation import MAX_ACTOR_LENGTH, check_text

DEFAULT_REFERENCE_TYPES = {
    "issue": "Point Issuance",
    "spend": "Point Redemption",
    "reversal": "Point Reversal",
    "adjust_add": "Manual Point Adjustment (add)",
    "adjust_subtract": "Manual Point Adjustment (subtract)",
    "transfer": "Point Transfer",
    "reactivation": "Point Reactivation",
    "expiration": "Point Expiration",
    "rollover": "Point Rollover",
    # points returned to an archived source: its inventory expires again at once
    "archived_return": "Returned Inventory Expired (source archived)",
    "hold": "Point Hold",
    "release": "Point Hold Release",
    "capture": "Point Redemption (hold captured)",
}
DEFAULT_HOLD_TIME = "30min"  # how long a hold lasts unless --expires-in says otherwise
MAX_HOLD_DAYS = 366
MAX_USER_LENGTH = 200
MAX_REFERENCE_LENGTH = 200  # reference ids and types
MAX_NOTE_LENGTH = 1000  # reasons


@dataclass(frozen=True)
class WriteOptions:
    """What every write accepts: references, idempotency, time and actor."""

    actor: str
    at: datetime | None = None
    reference_id: str | None = None
    reference_type: str | None = None
    idempotency_key: str | None = None

    @property
    def moment(self) -> datetime:
        return self.at or clock.now()

    def request(self) -> dict[str, Any]:
        """The parts of the options that make two requests different (not the actor, and not
        a defaulted time, so that a retried script matches its first run)."""
        return {"at": self.at.isoformat() if self.at else None,
                "reference_id": self.reference_id, "reference_type": self.reference_type}


def check_options(options: WriteOptions) -> None:
    """The texts and time every write carries, checked before anything is read or written:
    the same lengths on SQLite and PostgreSQL, no control characters, and a time from 1970 to
    a minute ahead of now."""
    check_text(options.reference_id, what="--reference-id", max_length=MAX_REFERENCE_LENGTH)
    check_text(options.reference_type, what="--reference-type",
               max_length=MAX_REFERENCE_LENGTH)
    check_text(options.actor, what="--actor", max_length=MAX_ACTOR_LENGTH)
    if options.at is not None:
        clock.check_write_time(options.at)


def check_reason(reason: str | None) -> str:
    """The reason of a manual correction: required, at most 1,000 characters."""
    cleaned = (reason or "").strip()
    if not cleaned:
        raise InvalidInputError("--reason is required: say why the balance is corrected")
    check_text(cleaned, what="--reason", max_length=MAX_NOTE_LENGTH)
    return cleaned


def clean_user(user: str, *, what: str = "user") -> str:
    cleaned = (user or "").strip()
    if not cleaned:
        raise InvalidInputError(f"{what} must not be empty")
    check_text(cleaned, what=what, max_length=MAX_USER_LENGTH)
    return cleaned


def clean_event(event: str, *, what: str = "event") -> str:
    """An activity event name: a short lower-case word such as login."""
    cleaned = (event or "").strip().lower()
    if not cleaned or len(cleaned) > 50 or not all(ch.isalnum() or ch in "-_." for ch in cleaned):
        raise InvalidInputError(f"invalid {what} {cleaned!r}: use a short word such as login or "
                                "store-visit (letters, digits, - _ .)")
    return cleaned
