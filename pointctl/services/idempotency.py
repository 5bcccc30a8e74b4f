"""--idempotency-key: the same key with the same request returns the first result (a replay);
with a different request it is refused.

The record is inserted before the work, so a concurrent duplicate blocks on the key (PostgreSQL
unique index; SQLite's write lock) and, once the first commits, fails and is retried, finding
the first result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from pointctl.core import clock
from pointctl.core.errors import InvalidInputError, RefusedError, RetryableConflict
from pointctl.db.models import IdempotencyRecord

MAX_KEY_LENGTH = 200


def request_hash(operation: str, request: dict[str, Any]) -> str:
    canonical = json.dumps({"operation": operation, **request}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(f"--idempotency-key must be 1 to {MAX_KEY_LENGTH} characters")
    return key


def run_idempotent(session: Session, *, key: str | None, operation: str,
                   request: dict[str, Any], work: Callable[[], dict[str, Any]]
                   ) -> dict[str, Any]:
    key = check_key(key)
    if key is None:
        return {**work(), "replay": False}
    digest = request_hash(operation, request)
    existing = session.get(IdempotencyRecord, key)
    if existing is not None:
        if existing.request_hash != digest:
            raise RefusedError(
                f"idempotency key {key!r} was already used for a different request; "
                "use a new key for a new request"
            )
        return {**json.loads(existing.result), "replay": True}
    record = IdempotencyRecord(key=key, request_hash=digest, result="{}",
                               created_at=clock.now())
    session.add(record)
    try:
        session.flush()
    except IntegrityError:
        raise RetryableConflict(f"idempotency key {key!r} is being used concurrently") from None
    result = work()
    record.result = json.dumps(result, default=str)
    session.add(record)
    session.flush()
    return {**result, "replay": False}
