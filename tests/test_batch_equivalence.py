"""`pointctl batch` gives exactly the ledger of the same operations typed one command at a time.

A property test generates random sequences of ledger operations against one fixed program and
applies each sequence four times, each on its own fresh database: as single commands, and as
a batch file with chunks of 1, 7 and 1000 operations. The whole ledger (entries, lots, draws,
balances, sources, activity, idempotency records), normalised so that database ids do not
matter, and the outcome of every operation must be the same.

Then four batch processes run at once on overlapping users, and the balances must be what a
model computes from the outcomes they report.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.models import SQLModel
from pointctl.db.session import parse_url
from tests.conftest import PINNED_NOW, pg_base_url, pg_schema_at_head
from tests.helpers import Cli, Result, forked_together
from tests.test_batch import as_command

Op = dict[str, Any]
Ledger = dict[str, list[tuple[Any, ...]]]

# --- the program ---------------------------------------------------------------------------

USERS = ["u1", "u2", "u3"]
ACCOUNTS = ["Core", "Wallet", "Escrow"]
SOURCES = ["Base", "Promo", "Ride"]
PROGRAM = [
    # default, negative balances allowed: spend shortfalls become debt here
    ["accounts", "create", "Core", "--default"],
    # default, never negative, capped
    ["accounts", "create", "Wallet", "--default", "--no-negative", "--max-balance", "150"],
    # pending lots: spendable one day after they arrive
    ["accounts", "create", "Escrow", "--pending-for", "1d"],
    ["sources", "create", "Base"],  # unlimited, linked to every account
    # small inventory: it runs out and the source pauses itself at zero
    ["sources", "create", "Promo", "--inventory", "120", "--link", "Core", "--link", "Wallet"],
    ["sources", "create", "Ride", "--link", "Core", "--link", "Wallet"],
    ["restrictions", "add", "Ride", "--max-points", "50", "--per", "1d", "--per-customer"],
    ["restrictions", "add", "Ride", "--max-points", "120", "--per", "2d"],
]

NOW = datetime.fromisoformat(PINNED_NOW)
START = NOW - timedelta(days=4, hours=12)
STEPS = [0, 1, 30, 120, 360, 720]  # minutes between two operations; 0: the same moment
CHUNK_SIZES = [1, 7, 1000]
MIN_OPS, MAX_OPS = 20, 36


def _at(minutes: int) -> str:
    return min(START + timedelta(minutes=minutes), NOW).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the operations ------------------------------------------------------------------------
#
# Hypothesis draws a list of flat choices; ``build`` turns them into operations,
# deterministically. A failure shrinks by lowering numbers and turning lines into "skip" (the
# simplest kind, rarely generated), so the example it prints holds only the operations that
# matter.

KINDS = ["skip", "issue", "spend", "adjust+", "adjust-", "transfer", "activity", "reverse",
         "replay", "conflict"]
WEIGHTS = {"skip": 1, "issue": 4, "spend": 3, "adjust+": 1, "adjust-": 1, "transfer": 3,
           "activity": 1, "reverse": 2, "replay": 1, "conflict": 1}
FRESH_KINDS = KINDS[1:7]
# by the choice's "account" (0-7); an issue without one is refused unless the source links
# exactly one active account, and Promo and Ride are not linked to Escrow
ISSUE_ACCOUNTS: list[str | None] = ["Core", "Wallet", "Core", "Wallet", "Escrow", "Core",
                                    "Wallet", None]
SPEND_ACCOUNTS: list[str | None] = [None, "Core", "Wallet", None, "Escrow", None, "Core",
                                    "Wallet"]
TRANSFER_ACCOUNTS = ["Core", "Wallet", "Core", "Escrow", "Core", "Wallet", "Core", "Wallet"]


@st.composite
def _choice(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "kind": draw(st.sampled_from([k for k in KINDS for _ in range(WEIGHTS[k])])),
        "step": draw(st.sampled_from(STEPS)),
        "user": draw(st.integers(0, len(USERS) - 1)),
        "points": draw(st.integers(1, 120)),
        "source": draw(st.integers(0, len(SOURCES) - 1)),
        "account": draw(st.integers(0, 7)),
        "to_account": draw(st.integers(0, len(ACCOUNTS) - 1)),
        "to_user": draw(st.integers(0, len(USERS))),  # len(USERS): the same user
        "flag": draw(st.booleans()),  # issue: clamp; reverse: only part of it
        "keyed": draw(st.booleans()),
        # which earlier line a reversal, replay or conflict uses; a reversal of a multiple of 5
        # picks among all reference ids, otherwise among those of issues and spends
        "pick": draw(st.integers(0, 99)),
        "fresh_kind": draw(st.sampled_from(FRESH_KINDS)),  # what a conflicting request is
    }


def _fresh(c: dict[str, Any], kind: str, index: int, at: str) -> Op:
    """A new operation of ``kind`` (its reference id is unique to this line)."""
    user, points = USERS[c["user"]], c["points"]
    account = ACCOUNTS[c["account"] % len(ACCOUNTS)]
    op: Op
    if kind == "issue":
        op = {"op": "issue", "user": user, "points": min(points, 90),
              "source": SOURCES[c["source"]], "reference_id": f"i{index}"}
        if ISSUE_ACCOUNTS[c["account"]] is not None:
            op["account"] = ISSUE_ACCOUNTS[c["account"]]
        if c["flag"]:
            op["clamp"] = True
    elif kind == "spend":
        op = {"op": "spend", "user": user, "points": 1 + points // 3,
              "reference_id": f"s{index}"}
        if SPEND_ACCOUNTS[c["account"]] is not None:
            op["account"] = SPEND_ACCOUNTS[c["account"]]
    elif kind == "adjust+":
        op = {"op": "adjust", "user": user, "points": min(points, 60), "account": account,
              "source": SOURCES[c["source"]], "reason": "goodwill", "reference_id": f"a{index}"}
    elif kind == "adjust-":
        op = {"op": "adjust", "user": user, "points": -(1 + points // 4), "account": account,
              "reason": "chargeback", "reference_id": f"a{index}"}
    elif kind == "transfer":
        op = {"op": "transfer", "user": user, "points": 1 + points // 6,
              "account": TRANSFER_ACCOUNTS[c["account"]],
              "to_account": ACCOUNTS[c["to_account"]], "reference_id": f"t{index}"}
        if c["to_user"] < len(USERS):
            op["to_user"] = USERS[c["to_user"]]
    else:
        op = {"op": "activity", "user": user, "event": ["login", "store-visit"][c["flag"]]}
    op["at"] = at
    return op


def build(choices: list[dict[str, Any]]) -> list[Op]:
    """Operations with explicit, non-decreasing times (a replay repeats the time of the line
    it repeats), some with idempotency keys, some replaying or reusing a key, reversals of
    earlier reference ids (of issues and spends mostly; of refused lines and of adjustments
    and transfers too, which are refused)."""
    ops: list[Op] = []
    references: list[str] = []  # of every line that has one (reversing most is refused)
    reversible: list[str] = []  # of issues and spends
    keyed: list[Op] = []
    minutes = 0
    for index, c in enumerate(choices):
        minutes += c["step"]
        at = _at(minutes)
        kind = c["kind"]
        if kind == "skip":
            continue
        if kind in ("replay", "conflict") and not keyed:
            kind = "issue"
        op: Op
        if kind == "replay":  # the same request again, key and all
            op = dict(keyed[c["pick"] % len(keyed)])
        elif kind == "conflict":  # another request with a key already used
            op = _fresh(c, c["fresh_kind"], index, at)
            op["idempotency_key"] = keyed[c["pick"] % len(keyed)]["idempotency_key"]
        elif kind == "reverse":
            pool = references if c["pick"] % 5 == 0 or not reversible else reversible
            target = pool[c["pick"] % len(pool)] if pool else "nothing-yet"
            op = {"op": "reverse", "reference_id": target, "at": at}
            if c["flag"]:
                op["points"] = min(c["points"], 60)
        else:
            op = _fresh(c, kind, index, at)
        if kind not in ("replay", "conflict") and c["keyed"]:
            op["idempotency_key"] = f"k{index}"
            keyed.append(op)
        if op["op"] != "reverse" and "reference_id" in op:
            references.append(op["reference_id"])
            if op["op"] in ("issue", "spend"):
                reversible.append(op["reference_id"])
        ops.append(op)
    return ops


def operations() -> st.SearchStrategy[list[Op]]:
    return st.lists(_choice(), min_size=MIN_OPS, max_size=MAX_OPS).map(build)


# --- applying them -------------------------------------------------------------------------

Outcome = tuple[int, str | None]  # exit code (0: applied or replayed), refusal message


def apply_singles(url: str, ops: list[Op]) -> list[Outcome]:
    cli = Cli(url)
    outcomes: list[Outcome] = []
    for op in ops:
        result = cli(*as_command(op))
        assert "Traceback" not in result.stderr, result.stderr
        outcomes.append((result.exit_code, result.error.removeprefix("Error: ")
                         if result.exit_code else None))
    return outcomes


def apply_batch(url: str, ops: list[Op], chunk_size: int, folder: Path) -> list[Outcome]:
    """Each line's outcome: applied, or the exit code and message of its refusal."""
    path = folder / f"ops-{chunk_size}.jsonl"
    path.write_text("".join(json.dumps(op) + "\n" for op in ops))
    result = Cli(url)("batch", str(path), "--chunk-size", str(chunk_size), "--format", "json")
    assert result.exit_code in (0, 1), (result.exit_code, result.stderr)
    rejects_path = Path(f"{path}.rejects.jsonl")
    rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()] \
        if rejects_path.exists() else []
    assert (result.exit_code == 1) == bool(rejects), result
    refused = {reject["line"]: (reject["exit_code"], reject["error"]) for reject in rejects}
    assert len(refused) == len(rejects)
    summary = json.loads(result.stdout)
    assert (summary["lines"], summary["refused"]) == (len(ops), len(rejects)), summary
    return [refused.get(line, (0, None)) for line in range(1, len(ops) + 1)]


# --- the ledger without its ids ------------------------------------------------------------

QUERIES = {
    "entry": "SELECT e.id, e.type, e.user_id, a.name, s.name, e.points, e.reference_id, "
             "e.reference_type, e.note, e.related_entry_id, e.written_off, e.actor, "
             "e.occurred_at FROM entry e LEFT JOIN account a ON a.id = e.account_id "
             "LEFT JOIN source s ON s.id = e.source_id ORDER BY e.id",
    "lot": "SELECT l.id, l.entry_id, l.user_id, a.name, s.name, l.original, l.spent, "
           "l.expired, l.moved, l.remaining, l.created_at, l.available_at, l.origin_lot_id "
           "FROM lot l JOIN account a ON a.id = l.account_id JOIN source s ON s.id = l.source_id "
           "ORDER BY l.id",
    "draw": "SELECT id, entry_id, lot_id, kind, points, reverses_draw_id FROM draw ORDER BY id",
    "balance": "SELECT b.user_id, a.name, b.debt, b.created_at FROM balance b "
               "JOIN account a ON a.id = b.account_id ORDER BY b.user_id, a.name",
    "source": "SELECT name, status, inventory FROM source ORDER BY name",
    "activity": "SELECT user_id, event, actor, occurred_at FROM activity ORDER BY id",
    "idempotency": "SELECT key, request_hash FROM idempotency ORDER BY key",
}


def ledger_state(url: str) -> Ledger:
    """Every fact of the ledger; ids are replaced by ordinals (1st entry, 2nd lot, ...)."""
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = {table: [tuple(row) for row in connection.execute(text(query))]
                    for table, query in QUERIES.items()}
    finally:
        engine.dispose()

    def ordinals(table: str) -> Callable[[int | None], int | None]:
        numbers = {row[0]: number for number, row in enumerate(rows[table], start=1)}
        return lambda id_: None if id_ is None else numbers.get(id_, -id_)

    entry, lot, draw = ordinals("entry"), ordinals("lot"), ordinals("draw")
    rows["entry"] = [(*r[1:9], entry(r[9]), *r[10:]) for r in rows["entry"]]
    rows["lot"] = [(entry(r[1]), *r[2:12], lot(r[12])) for r in rows["lot"]]
    rows["draw"] = [(entry(r[1]), lot(r[2]), r[3], r[4], draw(r[5])) for r in rows["draw"]]
    return rows


# --- fresh databases with the program, many per test ---------------------------------------

class Databases:
    """Fresh copies of one database that holds the program: SQLite files copied with the
    backup API; PostgreSQL schemas emptied and refilled from the template schema (sequences
    moved past the copied ids), far faster than a migration per example."""

    def __init__(self, template: str, spares: list[str], folder: Path) -> None:
        self.template, self.spares, self.folder = template, spares, folder
        self.copies = 0
        self.previous: list[Path] = []

    def fresh(self, count: int) -> list[str]:
        """``count`` databases holding just the program (the previous ones are gone)."""
        if self.template.startswith("sqlite"):
            for path in self.previous:  # shrinking runs hundreds of examples
                for file in path.parent.glob(f"{path.name}*"):
                    file.unlink()
            self.previous = [self._sqlite_copy() for _ in range(count)]
            return [f"sqlite:///{path}" for path in self.previous]
        assert count <= len(self.spares)
        for url in self.spares[:count]:
            self._pg_refill(url)
        return self.spares[:count]

    def _sqlite_copy(self) -> Path:
        self.copies += 1
        path = self.folder / f"copy-{self.copies}.db"
        source = sqlite3.connect(self.template.removeprefix("sqlite:///"))
        target = sqlite3.connect(path)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return path

    def _pg_refill(self, url: str) -> None:
        template_schema = _schema(self.template)
        tables = SQLModel.metadata.sorted_tables  # parents first
        engine = create_engine(parse_url(url), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                quoted = ", ".join(f'"{table.name}"' for table in tables)
                connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
                for table in tables:
                    connection.execute(text(f'INSERT INTO "{table.name}" '
                                            f'SELECT * FROM "{template_schema}"."{table.name}"'))
                    if "id" not in table.c:
                        continue
                    sequence = connection.execute(text(
                        "SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name}
                    ).scalar()
                    if sequence:
                        connection.execute(text(
                            f"SELECT setval('{sequence}', COALESCE(max(id), 1), "
                            f'max(id) IS NOT NULL) FROM "{table.name}"'))
        finally:
            engine.dispose()


def _schema(url: str) -> str:
    return unquote(url).rsplit("search_path=", 1)[1]


def _set_up(url: str) -> None:
    cli = Cli(url)
    for command in PROGRAM:
        cli.ok(*command)


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
              ) -> Iterator[Databases]:
    if request.param == "sqlite":
        path = tmp_path / "program.db"
        path.write_bytes(sqlite_template.read_bytes())
        _set_up(f"sqlite:///{path}")
        yield Databases(f"sqlite:///{path}", [], tmp_path)
        return
    base = pg_base_url()
    if base is None:
        pytest.skip("PostgreSQL tests need POINTCTL_TEST_POSTGRES_URL "
                    "(e.g. postgresql://postgres@127.0.0.1/test)")
    with ExitStack() as stack:  # the template and one per run of an example; dropped after
        urls = [stack.enter_context(contextmanager(pg_schema_at_head)(base))
                for _ in range(2 + len(CHUNK_SIZES))]
        _set_up(urls[0])
        yield Databases(urls[0], urls[1:], tmp_path)


# --- the property --------------------------------------------------------------------------

EXAMPLES = {"sqlite": 15, "postgresql": 5}
# Found by this test (the issuing engine before the one-engine rewrite): an issue refused
# inside a batch still left the empty balance row (u3, Core, debt 0) the engine had created
# for its chunk, where the single command, rolled back, leaves none; so after the batch
# `pointctl balance u3` and `pointctl customer u3` showed a 0 balance instead of exit 3
# "no entries for user 'u3'". Always run first, as a regression example.
REFUSED_ISSUE_LEAVES_NOTHING: list[Op] = [
    {"op": "issue", "user": "u3", "points": 74, "source": "Ride", "account": "Core",
     "at": "2026-06-13T02:30:00Z"},  # refused: at most 50 a day per customer from Ride
]


def _check_equivalence(databases: Databases, ops: list[Op]) -> None:
    singles_url, *batch_urls = databases.fresh(1 + len(CHUNK_SIZES))
    expected_outcomes = apply_singles(singles_url, ops)
    expected = ledger_state(singles_url)
    with tempfile.TemporaryDirectory(dir=databases.folder) as folder:
        for chunk_size, url in zip(CHUNK_SIZES, batch_urls, strict=True):
            outcomes = apply_batch(url, ops, chunk_size, Path(folder))
            assert outcomes == expected_outcomes, (chunk_size, [
                (line, op, single, batch) for line, (op, single, batch)
                in enumerate(zip(ops, expected_outcomes, outcomes, strict=True), start=1)
                if single != batch])
            state = ledger_state(url)
            for table in QUERIES:
                assert state[table] == expected[table], (chunk_size, table)
    assert Cli(singles_url)("verify").exit_code == 0


def test_batch_gives_the_ledger_of_single_commands(databases: Databases) -> None:
    backend = "sqlite" if databases.template.startswith("sqlite") else "postgresql"

    # the property is an inner function so that every example can use the fixture's
    # databases (each takes fresh copies of the program) and its backend's number of examples
    @settings(max_examples=EXAMPLES[backend], deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(ops=operations())
    @example(ops=REFUSED_ISSUE_LEAVES_NOTHING)
    def property_(ops: list[Op]) -> None:
        _check_equivalence(databases, ops)

    property_()


# --- four batch processes at once ----------------------------------------------------------

WORKERS = 4
CROWD = [f"c{i}" for i in range(8)]  # every worker's file touches every one of them
OPS_PER_WORKER = 42
SHARED_KEYS = 5  # issues in every file with the same key: applied once, replayed three times


def _worker_ops(worker: int) -> list[Op]:
    """Issues, spends, transfers to other users and reversals over the same users. Every
    op's effect on balances is fixed once it is applied (spends in Core may go into debt, so
    they are never refused; issue reversals are in Gift, which nothing transfers out of), so
    the final balances follow from the outcomes whatever the interleaving."""
    ops: list[Op] = []
    for i in range(OPS_PER_WORKER):
        user = CROWD[(i * 3 + worker) % len(CROWD)]
        other = CROWD[(i * 5 + worker + 1) % len(CROWD)]
        ref = f"w{worker}-{i}"
        step = i % 6
        if step == 0:
            ops.append({"op": "issue", "user": user, "points": 40 + i % 7, "source": "Base",
                        "account": "Core", "reference_id": ref})
        elif step == 1:
            ops.append({"op": "transfer", "user": user, "points": 15 + i % 5, "account": "Core",
                        "to_account": "Core", "to_user": other, "reference_id": ref})
        elif step == 2:
            ops.append({"op": "issue", "user": user, "points": 30, "source": "Base",
                        "account": "Gift", "reference_id": ref,
                        "idempotency_key": f"{ref}-key"})
        elif step == 3:
            ops.append({"op": "spend", "user": user, "points": 12 + i % 9, "account": "Gift",
                        "reference_id": ref})
            ops.append({"op": "spend", "user": other, "points": 10, "account": "Core",
                        "reference_id": f"{ref}-core"})
        elif step == 4:
            ops.append({"op": "reverse", "reference_id": f"w{worker}-{i - 2}"})  # a Gift issue
            ops.append({"op": "reverse", "reference_id": f"w{worker}-{i - 1}-core"})  # a spend
        else:
            ops.append({"op": "transfer", "user": other, "points": 25, "account": "Core",
                        "to_account": "Core", "to_user": user, "reference_id": ref})
    for k in range(SHARED_KEYS):
        ops.insert(k * 9, {"op": "issue", "user": CROWD[k], "points": 11, "source": "Base",
                            "account": "Core", "idempotency_key": f"shared-{k}"})
    return ops


def _effects(op: Op, worker_ops: dict[str, Op]) -> list[tuple[str, int]]:
    """(user, change of the total balance) of one applied op."""
    if op["op"] == "issue":
        return [(op["user"], op["points"])]
    if op["op"] == "spend":
        return [(op["user"], -op["points"])]
    if op["op"] == "transfer":
        return [(op["user"], -op["points"]), (op["to_user"], op["points"])]
    target = worker_ops[op["reference_id"]]  # reversed whole: a spend comes back, an issue goes
    return [(target["user"], target["points"] if target["op"] == "spend" else -target["points"])]


def _run_batch_processes(url: str, paths: list[Path]) -> list[Result]:
    """One `batch` process per file, forked from this one (pointctl is imported already) and
    let go together, so that the runs overlap."""
    return forked_together([functools.partial(
        Cli(url), "batch", str(path), "--chunk-size", "10", "--format", "json",
        env={"POINTCTL_NOW": PINNED_NOW, "POINTCTL_ACTOR": "tester"}) for path in paths],
        timeout=120)


def _interleavings(url: str) -> int:
    """How often the entry log switches from one worker's entries to another's."""
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            workers = [reference.split("-")[0] for (reference,) in connection.execute(text(
                "SELECT reference_id FROM entry WHERE reference_id LIKE 'w%' ORDER BY id"))]
    finally:
        engine.dispose()
    return sum(a != b for a, b in zip(workers, workers[1:], strict=False))


def test_four_batch_processes_at_once_keep_balances_exact(cli: Cli, tmp_path: Path) -> None:
    cli.ok("accounts", "create", "Core", "--default")
    cli.ok("accounts", "create", "Gift")
    cli.ok("sources", "create", "Base")
    files = []
    for worker in range(WORKERS):
        path = tmp_path / f"worker-{worker}.jsonl"
        path.write_text("".join(json.dumps(op) + "\n" for op in _worker_ops(worker)))
        files.append(path)
    results = _run_batch_processes(cli.url, files)

    model: dict[str, int] = defaultdict(int)
    shared_applied: set[str] = set()
    replayed = 0
    for worker, (path, result) in enumerate(zip(files, results, strict=True)):
        assert result.exit_code in (0, 1), result.stderr
        assert "Traceback" not in result.stderr
        summary = json.loads(result.stdout)
        replayed += summary["replayed"]
        rejects_path = Path(f"{path}.rejects.jsonl")
        refused = {json.loads(line)["line"]: json.loads(line) for line in
                   rejects_path.read_text().splitlines()} if rejects_path.exists() else {}
        ops = _worker_ops(worker)
        by_reference = {op["reference_id"]: op for op in ops
                        if "reference_id" in op and op["op"] != "reverse"}
        for line, op in enumerate(ops, start=1):
            if line in refused:
                # only a transfer can be refused: the points were not there at that moment
                assert op["op"] == "transfer", refused[line]
                assert refused[line]["exit_code"] == 1, refused[line]
                continue
            key = op.get("idempotency_key", "")
            if key.startswith("shared-"):
                if key in shared_applied:
                    continue
                shared_applied.add(key)
            for user, change in _effects(op, by_reference):
                model[user] += change
    assert replayed == SHARED_KEYS * (WORKERS - 1)
    assert len(shared_applied) == SHARED_KEYS

    verify = cli("verify")
    assert verify.exit_code == 0, verify.stdout
    balances = {}
    for user in CROWD:
        document: Any = cli.json("balance", user)
        balances[user] = sum(account["balance"] for account in document["accounts"])
    assert balances == {user: model[user] for user in CROWD}
    if cli.url.startswith("postgresql"):  # row locks: the runs really went on side by side
        assert _interleavings(cli.url) > 0
    # (SQLite's busy handler lets a writer that just committed take the lock again before
    # the sleeping ones wake, so there the runs mostly follow one another)
