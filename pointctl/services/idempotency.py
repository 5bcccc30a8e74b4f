"""--idempotency-key: the key's check and a request's fingerprint. The protocol itself (replay
of the first outcome, refusals included; a refusal for a different request) is the ledger
engine's (``pointctl.services.engine``): a chunk writes its records with its other rows, so a
concurrent duplicate blocks on the key (PostgreSQL unique index; SQLite's write lock), then
fails, and its chunk is retried and finds the first outcome.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pointctl.core.errors import InvalidInputError
from pointctl.core.validation import has_control

MAX_KEY_LENGTH = 200


def request_hash(operation: str, request: dict[str, Any]) -> str:
    canonical = json.dumps({"operation": operation, **request}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or has_control(key):
        raise InvalidInputError(f"--idempotency-key must be 1 to {MAX_KEY_LENGTH} printable "
                                "characters")
    return key
