"""``pointctl batch``: ledger operations read from JSON Lines or CSV, applied in chunks.

Every chunk of operations, whatever their mix, is one call of the ledger engine
(``pointctl.services.engine``), the same code that decides a single command: a refused
operation changes nothing and leaves the rest of its chunk alone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlmodel import Session

from pointctl.core.clock import check_write_time, parse_time
from pointctl.core.errors import InvalidInputError, PointctlError
from pointctl.core.validation import MAX_POINTS, check_points, check_text, did_you_mean
from pointctl.services import engine, enrollment, ledger
from pointctl.services.engine import Outcome
from pointctl.services.idempotency import MAX_KEY_LENGTH
from pointctl.services.writes import (
    DEFAULT_HOLD_TIME,
    MAX_NOTE_LENGTH,
    MAX_REFERENCE_LENGTH,
    MAX_USER_LENGTH,
    WriteOptions,
    clean_user,
)

OPS = ("issue", "spend", "reverse", "adjust", "transfer", "activity", "enroll", "hold",
       "capture", "void")
FIELDS = ("op", "user", "points", "source", "account", "to_account", "to_user", "entry",
          "reference_id", "reference_type", "idempotency_key", "at", "reason", "event", "clamp",
          "expires_in")
TEXT_FIELDS = frozenset(FIELDS) - {"points", "entry", "clamp"}
REQUIRED = {
    "issue": ("user", "points", "source"),
    "spend": ("user", "points"),
    "reverse": (),
    "adjust": ("user", "points", "account", "reason"),
    "transfer": ("user", "points", "account", "to_account"),
    "activity": ("user", "event"),
    "enroll": ("user",),
    "hold": ("user", "points", "reference_id"),  # a hold is named by its reference id
    "capture": ("reference_id",),
    "void": ("reference_id",),
}
CLAMPS = ("issue", "spend", "reverse")  # the ops that may take only what a limit allows
MAX_TEXT = 1000
# the fields the ledger stores, at most as long as a single command allows them
MAX_LENGTHS = {"user": MAX_USER_LENGTH, "to_user": MAX_USER_LENGTH,
               "reference_id": MAX_REFERENCE_LENGTH, "reference_type": MAX_REFERENCE_LENGTH,
               "idempotency_key": MAX_KEY_LENGTH, "reason": MAX_NOTE_LENGTH}


@dataclass(frozen=True)
class Op:
    """One checked line of the file."""

    line: int
    op: str
    fields: dict[str, Any]
    at: datetime | None

    def get(self, name: str) -> Any:
        return self.fields.get(name)

    def options(self, actor: str) -> WriteOptions:
        return WriteOptions(actor=actor, at=self.at, reference_id=self.get("reference_id"),
                            reference_type=self.get("reference_type"),
                            idempotency_key=self.get("idempotency_key"))


class LineError(InvalidInputError):
    def __init__(self, line: int, message: str, raw: Any = None) -> None:
        super().__init__(f"line {line}: {message}")
        self.line, self.reason, self.raw = line, message, raw


# --- reading -------------------------------------------------------------------------------

def input_format(name: str) -> str:
    """jsonl or csv, from a file name."""
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    raise InvalidInputError(f"cannot tell the format of {name!r} from its name; "
                            "give --input-format jsonl or csv")


def read(stream: IO[str], fmt: str) -> Iterator[tuple[int, Any]]:
    """(line number, raw object) for every operation of the file; a file-level problem (a CSV
    header without ``op`` or with unknown columns) raises InvalidInputError."""
    if fmt == "jsonl":
        for number, text in enumerate(stream, start=1):
            if text.strip():
                yield number, text
        return
    reader = csv.DictReader(stream)
    header = reader.fieldnames or []
    if "op" not in header:
        raise InvalidInputError("the CSV file has no header row with an 'op' column")
    unknown = [name for name in header if name not in FIELDS]
    if unknown:
        raise InvalidInputError(f"unknown CSV column {', '.join(map(repr, unknown))}; "
                                f"columns are {', '.join(FIELDS)}")
    for row in reader:
        if None in row:
            raise LineError(reader.line_num, "more cells than header columns", row)
        yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}


def check(number: int, raw: Any, fmt: str) -> Op:
    """A raw line as a checked operation, or LineError saying what is wrong with it."""
    if fmt == "jsonl":
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            raise LineError(number, f"invalid JSON: {error.msg} (column {error.colno})",
                            raw.rstrip("\n")) from None
        except ValueError:  # a number of more than 4,300 digits
            raise LineError(number, "a number is far larger than 64 bits",
                            raw.rstrip("\n")) from None
        if not isinstance(value, dict):
            raise LineError(number, "expected a JSON object", raw.rstrip("\n"))
    else:
        value = raw
    try:
        return _check_fields(number, value, from_csv=fmt == "csv")
    except InvalidInputError as error:
        raise LineError(number, str(error), value) from None


def _check_fields(number: int, value: dict[str, Any], *, from_csv: bool) -> Op:
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise InvalidInputError(f"unknown field {', '.join(map(repr, unknown))}")
    op = value.get("op")
    if op not in OPS:
        hint = did_you_mean(op, OPS) if isinstance(op, str) else ""
        raise InvalidInputError(f"'op' must be one of {', '.join(OPS)}, not {op!r}{hint}")
    fields: dict[str, Any] = {}
    for name, item in value.items():
        if item is None:
            continue
        if name in TEXT_FIELDS:
            if not isinstance(item, str):
                raise InvalidInputError(f"{name!r} must be a string, not {_kind(item)}")
            check_text(item, what=repr(name), max_length=MAX_LENGTHS.get(name, MAX_TEXT))
            # an empty user is a malformed line, as a control character or an over-long text
            fields[name] = clean_user(item, what=repr(name)) if name in ("user", "to_user") \
                else item
        elif name == "clamp":
            fields[name] = _boolean(item, from_csv)
        else:
            fields[name] = _integer(name, item, from_csv)
    missing = [name for name in REQUIRED[op] if name not in fields]
    if missing:
        raise InvalidInputError(f"{op} needs {', '.join(map(repr, missing))}")
    points = fields.get("points")
    if points is not None and not (op == "adjust" and points < 0) and points <= 0:
        raise InvalidInputError(f"'points' must be greater than zero, not {points}"
                                if op != "adjust" else "'points' must not be zero")
    if points is not None and abs(points) > MAX_POINTS:
        raise InvalidInputError("'points' is larger than a 64-bit integer")
    if "clamp" in fields and op not in CLAMPS:
        raise InvalidInputError(f"'clamp' applies to {', '.join(CLAMPS)}, not to {op}")
    if op == "reverse" and ("entry" in fields) == ("reference_id" in fields):
        raise InvalidInputError("reverse needs 'entry' or 'reference_id' (one of them)")
    if op == "adjust" and points is not None and points > 0 and "source" not in fields:
        raise InvalidInputError("adjust with positive points needs 'source'")
    if "entry" in fields:
        check_points(fields["entry"], what="'entry'")
    at = check_write_time(parse_time(fields["at"], what="'at'"), what="'at'") \
        if "at" in fields else None
    return Op(number, op, fields, at)


def _kind(item: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list",
            dict: "an object"}.get(type(item), type(item).__name__)


def _integer(name: str, item: Any, from_csv: bool) -> int:
    if from_csv and isinstance(item, str):
        try:
            return int(item.strip())
        except ValueError:
            raise InvalidInputError(f"{name!r} must be a whole number, not {item!r}") from None
    if isinstance(item, bool) or not isinstance(item, int):
        raise InvalidInputError(f"{name!r} must be a whole number, not {item!r}")
    return item


def _boolean(item: Any, from_csv: bool) -> bool:
    if isinstance(item, bool):
        return item
    if from_csv and isinstance(item, str) and item.strip().lower() in ("true", "false", "1", "0"):
        return item.strip().lower() in ("true", "1")
    raise InvalidInputError(f"'clamp' must be true or false, not {item!r}")


# --- applying ------------------------------------------------------------------------------

def apply_chunk(session: Session, ops: list[Op], *, actor: str) -> list[Outcome]:
    """Apply the operations in file order within the caller's transaction: one chunk of the
    ledger engine, whatever the mix of operations."""
    outcomes: list[Outcome | None] = [None] * len(ops)
    requests: list[engine.Request] = []
    places: list[int] = []
    enrollments: list[int] = []
    for index, op in enumerate(ops):
        if op.op == "enroll":  # no balance: applied before the chunk's other requests
            enrollments.append(index)
            continue
        try:
            requests.append(_request(op, actor))
            places.append(index)
        except PointctlError as error:
            outcomes[index] = error
    # enrollments first: a date of the past, which the catch-up of late expiration runs reads
    for index in enrollments:  # a refusal happens before anything is written
        try:
            outcomes[index] = enrollment.enroll(session, user=ops[index].get("user"),
                                                at=ops[index].at, actor=actor)
        except PointctlError as error:
            outcomes[index] = error
    for index, outcome in zip(places, engine.apply(session, requests), strict=True):
        outcomes[index] = outcome
    session.expire_all()  # the engine wrote with plain SQL
    return outcomes  # type: ignore[return-value]


def _request(op: Op, actor: str) -> engine.Request:
    """The engine's request for one line, as its single command would make it."""
    options = op.options(actor)
    user, points = op.get("user"), op.get("points")
    if op.op == "issue":
        return engine.IssueRequest(user=user, points=points, source=op.get("source"),
                                   account=op.get("account"), clamp=bool(op.get("clamp")),
                                   options=options)
    if op.op == "adjust":
        return ledger.adjust_request(user=user, points=points, account=op.get("account"),
                                     reason=op.get("reason"), source=op.get("source"),
                                     options=options)
    if op.op == "spend":
        account = op.get("account")
        return engine.SpendRequest(user=user, points=points,
                                   accounts=(account,) if account else (),
                                   clamp=bool(op.get("clamp")), options=options)
    if op.op == "reverse":  # as the command: reference id and type select what to reverse
        return engine.ReverseRequest(
            entry_id=op.get("entry"), reference_id=op.get("reference_id"),
            reference_type=op.get("reference_type"), points=points,
            clamp=bool(op.get("clamp")), options=WriteOptions(actor=actor, at=op.at,
                                 idempotency_key=op.get("idempotency_key")))
    if op.op == "transfer":
        return engine.TransferRequest(user=user, points=points, from_account=op.get("account"),
                                      to_account=op.get("to_account"),
                                      to_user=op.get("to_user"), options=options)
    if op.op == "hold":
        account = op.get("account")
        return engine.HoldRequest(user=user, points=points,
                                  accounts=(account,) if account else (),
                                  expires_in=op.get("expires_in") or DEFAULT_HOLD_TIME,
                                  options=options)
    if op.op in ("capture", "void"):  # the reference id names the hold, it is not copied
        plain = WriteOptions(actor=actor, at=op.at, idempotency_key=op.get("idempotency_key"))
        if op.op == "capture":
            return engine.CaptureRequest(reference_id=op.get("reference_id"), points=points,
                                         options=plain)
        return engine.VoidRequest(reference_id=op.get("reference_id"), options=plain)
    return engine.ActivityRequest(user=user, event=op.get("event"), options=options)
