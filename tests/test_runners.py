"""The runners behind `pointctl batch` and `pointctl expire run`, called from Python without the
command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl import (
    create_account,
    create_source,
    run_due,
    run_file,
    set_policy,
    transaction,
)
from pointctl.db.session import command_engine, make_engine, parse_url
from pointctl.services.batch_runner import BatchSummary
from pointctl.services.expiry import Outcome

ISSUE = {"op": "issue", "user": "ann", "points": 100, "source": "Base", "idempotency_key": "k1"}
OPS = [
    ISSUE,
    {"op": "issue", "user": "bob", "points": 7, "source": "Base"},
    ISSUE,  # the same request again: replayed
    {"op": "spend", "user": "ann", "points": 5},  # nothing in Spendable yet: refused
]


def balances(url: str) -> dict[tuple[str, str], int]:
    """(user, account) -> the points its lots hold (no one owes anything here)."""
    with transaction(url, write=False) as session:
        rows = session.execute(text(
            "SELECT lot.user_id, account.name, SUM(lot.remaining) FROM lot JOIN account ON "
            "account.id = lot.account_id GROUP BY lot.user_id, account.name HAVING "
            "SUM(lot.remaining) > 0"))
        return {(user, account): int(points) for user, account, points in rows}


def test_batch_and_expire_runners_from_python(db_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POINTCTL_NOW", "2026-03-01T00:00:00Z")
    with transaction(db_url, write=True) as session:
        create_account(session, name="Spendable", is_default=True, allow_negative=False,
                       actor="tester")
        create_account(session, name="Escrow", allow_negative=False, actor="tester")
        create_source(session, name="Base", link=["Escrow"], actor="tester")
        set_policy(session, account="Escrow", kind="rolling", older_than="30d",
                   rollover_to="Spendable", actor="tester")

    monkeypatch.setenv("POINTCTL_NOW", "2026-03-01T10:00:00Z")
    path = tmp_path / "ops.jsonl"
    path.write_text("".join(json.dumps(op) + "\n" for op in OPS))
    rejects = tmp_path / "ops.jsonl.rejects.jsonl"
    progress: list[tuple[int, int]] = []
    dry = run_file(path, url=db_url, actor="tester", chunk_size=2, dry_run=True)
    assert balances(db_url) == {}
    done = run_file(path, url=db_url, actor="tester", chunk_size=2,
                    on_progress=lambda *report: progress.append(report))
    expected = BatchSummary(lines=4, applied=3, replayed=1, refused=1, rejects=rejects,
                            seconds=0.0, dry_run=False)
    assert dataclasses.replace(done, seconds=0.0) == expected
    assert dataclasses.replace(dry, seconds=0.0) == dataclasses.replace(expected, dry_run=True)
    assert progress == [(0, 4), (2, 4), (4, 4)]
    assert [json.loads(line) for line in rejects.read_text().splitlines()] == [
        {"line": 4, "error": "insufficient points: ann has 0 available in 'Spendable'; 5 "
         "needed, and no account in play allows a negative balance", "exit_code": 1,
         "op": {"op": "spend", "user": "ann", "points": 5}}]
    in_escrow = {("ann", "Escrow"): 100, ("bob", "Escrow"): 7}
    assert balances(db_url) == in_escrow

    # daily evaluations from 2 March to 1 April; on 1 April both lots are 30 days old
    monkeypatch.setenv("POINTCTL_NOW", "2026-04-02T00:00:00Z")
    until = datetime(2026, 4, 1)
    due = [datetime(2026, 3, day) for day in range(2, 32)] + [until]
    want = [Outcome("Escrow", moment, performed=True) for moment in due[:-1]] + [
        Outcome("Escrow", until, performed=True, users=2, lots=2, rolled_over=107)]
    assert run_due(db_url, until=until, actor="tester", dry_run=True) == want
    assert balances(db_url) == in_escrow
    engine = make_engine(db_url, write=True, keep=True)
    progress.clear()
    try:
        assert run_due(db_url, until=until, accounts=["Escrow"], actor="tester", engine=engine,
                       on_progress=lambda *report: progress.append(report)) == want
        assert run_due(db_url, actor="tester", engine=engine) == [
            Outcome("Escrow", datetime(2026, 4, 2), performed=True)]  # until: now
    finally:
        engine.dispose()
    assert progress == [(n, len(due)) for n in range(len(due) + 1)]
    assert balances(db_url) == {("ann", "Spendable"): 100, ("bob", "Spendable"): 7}


def test_commands_in_one_process_share_one_connection_and_survive_its_loss(db_url: str) -> None:
    """Commands run from Python (as the tests run the CLI) reuse one engine per URL; on
    PostgreSQL one server connection for reads and writes, checked before reuse: when the
    server drops it, the next command opens another instead of failing. SQLite keeps the
    engine but no connection (the file is opened per transaction)."""
    engine = command_engine(db_url, write=False)
    assert command_engine(db_url, write=False) is engine
    if db_url.startswith("sqlite"):
        assert isinstance(engine.pool, NullPool)
        return

    def backend(write: bool = False) -> int:
        with transaction(db_url, write=write) as session:
            return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())

    first = backend()
    assert backend() == first
    assert backend(write=True) == first  # writes share it
    admin = create_engine(parse_url(db_url), poolclass=NullPool)
    with admin.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"),
                                  {"pid": first}).scalar_one()
    admin.dispose()
    replaced = backend()
    assert replaced != first
    assert backend() == replaced


def test_a_forked_child_leaves_its_parents_connection_alone(db_url: str) -> None:
    """A child forked after commands ran (the tests fork their concurrent writers) opens
    connections of its own and never closes the parent's: on PostgreSQL the parent's server
    session outlives the child, whose commands ran on another one."""
    from tests.helpers import Forked, Result

    def backend() -> int:
        with transaction(db_url, write=True) as session:
            if session.connection().dialect.name == "sqlite":
                return os.getpid()
            return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())

    parents = backend()

    def in_child() -> Result:
        first = backend()
        gc.collect()  # whatever the child dropped of its parent's is gone now
        return Result(0, f"{first} {backend()}", "")

    child_first, child_second = map(int, Forked(in_child).result(timeout=60).stdout.split())
    assert child_first != parents and child_second == child_first
    assert backend() == parents  # the parent's connection is still its own, still open
