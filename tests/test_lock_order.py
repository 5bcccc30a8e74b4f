"""Two writers that lock the same sources in opposite order never deadlock.

Two limited sources A and B. Every reference id has one issue from each, to one customer:
A's first for the references of the first process, B's first for the second's. Reversing a
reference reverses its latest issue first, so a reversal that locked each source as it
reached it would lock B then A in one process and A then B in the other, and the two would
deadlock. The processes use different customers, so their balance-row locks do not serialise
them first: only the order of the source locks decides.

Each process is a small driver that runs ``pointctl reverse --reference-id R`` through the
command line entry point, one command (one transaction) per reference, and counts every
RetryableConflict raised in it (what a deadlock or a serialization failure becomes, before
``run_in_transaction`` retries). PostgreSQL's own count (``pg_stat_database.deadlocks``) is
read before and after as a second witness.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url
from tests.helpers import Cli

# per process; in step, unordered source locks deadlock on nearly every reference
REFERENCES = 50
INVENTORY = 100_000
STOP_AFTER_CONFLICTS = 5  # a process that has seen this many stops early (the test fails)

# One process: reverse each reference in its own command, in step with the other process
# (both start reversal i together, so that their lock waits meet).
DRIVER = r'''
import json, sys, time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

import pointctl.core.errors as errors
import typer.main
from pointctl.cli import app

url, references, steps, me, other, report, stop_after = sys.argv[1:]
steps = Path(steps)
conflicts = []
original_init = errors.RetryableConflict.__init__


def counting_init(self, *args, **kwargs):
    conflicts.append(str(args[0]) if args else "")
    original_init(self, *args, **kwargs)


errors.RetryableConflict.__init__ = counting_init


@event.listens_for(Engine, "connect")
def _fast_deadlock_check(dbapi_connection, _record):
    # a deadlock (if the code allowed one) is found after 50 ms, not 1 s: a failing run stays
    # short; it needs a superuser, so it is only an optimisation
    if not type(dbapi_connection).__module__.startswith("psycopg"):
        return
    try:
        dbapi_connection.execute("SET deadlock_timeout = '50ms'")
        dbapi_connection.commit()
    except Exception:
        dbapi_connection.rollback()


def step(number):
    """Wait until the other process has reached this step too; False once it has stopped."""
    (steps / f"{me}.{number}").touch()
    give_up = time.monotonic() + 60
    while not (steps / f"{other}.{number}").exists():
        if (steps / f"{other}.done").exists():
            return False
        if time.monotonic() > give_up:
            raise SystemExit(f"{other} did not reach step {number}")
        time.sleep(0.0005)
    return True


def run(*args):
    try:
        command.main(["--db", url, *args])
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 1
    return 0


codes, failures = {}, []
started = time.monotonic()
try:
    command = typer.main.get_command(app)
    run("sources", "show", "A", "--format", "json")  # warm up: imports, first connection
    for number, reference in enumerate(json.loads(Path(references).read_text())):
        if not step(number):
            break
        code = run("reverse", "--reference-id", reference, "--format", "json")
        codes[code] = codes.get(code, 0) + 1
        if code != 0:
            failures.append(reference)
        if len(conflicts) >= int(stop_after):
            break
finally:
    (steps / f"{me}.done").touch()
Path(report).write_text(json.dumps({"conflicts": conflicts, "codes": codes,
                                     "failures": failures,
                                     "seconds": round(time.monotonic() - started, 2)}))
'''


def _issues(user: str, references: list[str], first: str, second: str) -> list[dict]:
    return [{"op": "issue", "user": user, "points": points, "source": source,
             "reference_id": reference}
            for reference in references
            for source, points in ((first, 1), (second, 2))]


def _query(url: str, sql: str, **params: object) -> list[tuple]:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def _source_orders(url: str) -> dict[str, list[str]]:
    """Each reference's issues' sources, in entry order (the order reversal undoes backwards)."""
    orders: dict[str, list[str]] = {}
    for reference, name in _query(
            url, "SELECT e.reference_id, s.name FROM entry e JOIN source s ON s.id = e.source_id "
            "WHERE e.type = 'issue' ORDER BY e.id"):
        orders.setdefault(reference, []).append(name)
    return orders


def _database_deadlocks(url: str) -> int:
    """PostgreSQL's count of deadlocks in this database (every schema, every client)."""
    return int(_query(url, "SELECT deadlocks FROM pg_stat_database "
                           "WHERE datname = current_database()")[0][0])


def _wait_for_backends_gone(url: str, application: str) -> None:
    """A backend adds the deadlocks it found to the statistics when it exits."""
    for _ in range(500):
        if not _query(url, "SELECT count(*) FROM pg_stat_activity "
                           "WHERE application_name = :name", name=application)[0][0]:
            return
        time.sleep(0.01)


def test_reversals_locking_two_sources_in_opposite_order_never_deadlock(
        cli: Cli, tmp_path: Path) -> None:
    if not cli.url.startswith("postgresql"):
        pytest.skip("SQLite's BEGIN IMMEDIATE serialises every writer: no row locks to order")
    count = REFERENCES
    cli.ok("accounts", "create", "Core")
    cli.ok("sources", "create", "A", "--inventory", str(INVENTORY))
    cli.ok("sources", "create", "B", "--inventory", str(INVENTORY))
    # one customer per process: their balance rows do not serialise the two processes
    plans = {"ab": ("u-ab", "A", "B"), "ba": ("u-ba", "B", "A")}
    references = {name: [f"{name}-{i}" for i in range(count)] for name in plans}
    setup = tmp_path / "setup.jsonl"
    setup.write_text("".join(
        json.dumps(op) + "\n" for name, (user, first, second) in plans.items()
        for op in _issues(user, references[name], first, second)))
    cli.ok("batch", str(setup))
    for source in ("A", "B"):  # 1 + 2 points per reference of each process
        assert cli.json("sources", "show", source)["inventory"] == INVENTORY - 3 * count  # type: ignore[index]
    # the premise: the two processes' reversals reach the sources in opposite orders
    assert _source_orders(cli.url) == {
        reference: [first, second] for name, (_, first, second) in plans.items()
        for reference in references[name]}

    # the drivers' backends are found by name afterwards
    application = f"lock-order-{uuid.uuid4().hex[:8]}"
    url = f"{cli.url}{'&' if '?' in cli.url else '?'}application_name={application}"
    deadlocks_before = _database_deadlocks(cli.url)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    steps = tmp_path / "steps"
    steps.mkdir()
    workers = []
    for name, other in (("ab", "ba"), ("ba", "ab")):
        listed = tmp_path / f"{name}.json"
        listed.write_text(json.dumps(references[name]))
        stderr = (tmp_path / f"{name}.stderr").open("w")
        args = [sys.executable, str(driver), url, str(listed), str(steps), name, other,
                str(tmp_path / f"{name}.report"), str(STOP_AFTER_CONFLICTS)]
        workers.append((name, subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr),
                        stderr))
    for _, process, stderr in workers:
        process.wait(timeout=180)
        stderr.close()
    reports = {}
    for name, process, _ in workers:
        assert process.returncode == 0, (tmp_path / f"{name}.stderr").read_text()
        reports[name] = json.loads((tmp_path / f"{name}.report").read_text())
    _wait_for_backends_gone(cli.url, application)
    deadlocks = _database_deadlocks(cli.url) - deadlocks_before

    conflicts = [conflict for report in reports.values() for conflict in report["conflicts"]]
    assert not conflicts and deadlocks == 0, (
        f"{len(conflicts)} retried conflicts in the drivers "
        f"({sum('deadlock' in conflict for conflict in conflicts)} of them deadlocks), "
        f"{deadlocks} deadlocks counted by PostgreSQL (in this whole database); "
        f"reversals done: { {name: report['codes'] for name, report in reports.items()} }; "
        f"first conflicts: {conflicts[:3]}")
    for name, report in reports.items():
        assert report["codes"] == {"0": count}, (name, report["codes"], report["failures"][:5])
    # every reversal gave its points back to its source, and took them from its customer
    for source in ("A", "B"):
        assert cli.json("sources", "show", source)["inventory"] == INVENTORY  # type: ignore[index]
    for user, _, _ in plans.values():
        assert cli.json("balance", user)["accounts"][0]["balance"] == 0  # type: ignore[index]
    cli.ok("verify")
