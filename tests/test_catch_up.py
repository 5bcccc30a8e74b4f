"""A late `expire run` ends exactly as punctual ones: a write first applies, for its users
alone, the evaluations due before it that no run has performed; reads show the ledger as a
punctual run would have left it. On SQLite and PostgreSQL, for every kind of policy."""

from __future__ import annotations

import functools
import json
import random
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from pointctl import run_due, run_file, transaction
from tests.helpers import Cli, forked_together
from tests.test_expiry import at, ok, verify_clean

START = datetime(2026, 3, 1)
DAYS = 70
POLICIES = {
    "rolling": ("Core", ["--rolling", "--older-than", "10d"]),
    "rollover": ("Escrow", ["--rolling", "--older-than", "7d", "--rollover-to", "Core"]),
    "snap-to": ("Core", ["--rolling", "--older-than", "10d", "--snap-to", "month"]),
    "fixed-date": ("Core", ["--fixed-date", "03-20", "--min-age", "5d"]),
    "inactivity": ("Core", ["--inactivity", "--inactive-for", "9d", "--percent", "50",
                            "--activity", "issue,spend,login"]),
}
USERS = ("u1", "u2", "u3", "u4")


def stamp(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def program(cli: Cli, kind: str) -> None:
    t0 = stamp(START)
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "create", "Bonus", "--default", "--no-negative")
    ok(cli, t0, "accounts", "create", "Escrow", "--no-negative")
    ok(cli, t0, "sources", "create", "Base")
    account, args = POLICIES[kind]
    ok(cli, t0, "accounts", "expiration", account, *args, "--every", "daily")


def operations(seed: int) -> list[dict[str, Any]]:
    """Issues, spends, transfers, reversals of earlier lines and logins, at times between
    the daily evaluations (never at midnight), in time order."""
    rng = random.Random(seed)
    ops: list[dict[str, Any]] = []
    issued: list[str] = []
    spent: list[str] = []
    for n in range(160):
        moment = START + timedelta(days=rng.randrange(DAYS), hours=rng.randrange(1, 23),
                                   minutes=rng.randrange(60))
        user = rng.choice(USERS)
        kind = rng.choice(["issue"] * 4 + ["spend"] * 2 + ["transfer", "reverse", "login"])
        ref = f"r{n}"
        if kind == "issue":
            op = {"op": "issue", "user": user, "points": rng.randrange(5, 60), "source": "Base",
                  "account": rng.choice(["Core", "Bonus", "Escrow"]), "reference_id": ref}
            issued.append(ref)
        elif kind == "spend":
            op = {"op": "spend", "user": user, "points": rng.randrange(5, 50),
                  "reference_id": ref}
            spent.append(ref)
        elif kind == "transfer":
            op = {"op": "transfer", "user": user, "points": rng.randrange(1, 20),
                  "account": rng.choice(["Core", "Escrow"]), "to_account": "Bonus",
                  "to_user": rng.choice(USERS)}
        elif kind == "reverse" and (issued or spent):
            op = {"op": "reverse", "reference_id": rng.choice(issued + spent),
                  "points": rng.randrange(1, 15)}
        else:
            op = {"op": "activity", "user": user, "event": "login"}
        op["at"] = stamp(moment)
        ops.append(op)
    return sorted(ops, key=lambda op: op["at"])


def batch(url: str, ops: list[dict[str, Any]], path: Path, now: datetime,
          monkeypatch: pytest.MonkeyPatch, chunk_size: int = 1000) -> int:
    monkeypatch.setenv("POINTCTL_NOW", stamp(now))
    path.write_text("".join(json.dumps(op) + "\n" for op in ops))
    return run_file(path, url=url, actor="tester", chunk_size=chunk_size).applied


def expire(url: str, until: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POINTCTL_NOW", stamp(until))
    run_due(url, until=until, actor="cron")


def ledger(url: str) -> dict[str, Counter[tuple[Any, ...]]]:
    """Every ledger entry (the program's changes left out), lot and balance by what it says
    (not by id, actor or recording time)."""
    queries = {
        "entries": "SELECT e.type, e.user_id, a.name, e.points, e.reference_id, "
                   "e.reference_type, e.note, e.occurred_at, e.written_off FROM entry e "
                   "LEFT JOIN account a ON a.id = e.account_id WHERE e.type <> 'change'",
        "lots": "SELECT l.user_id, a.name, l.original, l.spent, l.expired, l.moved, "
                "l.remaining, l.created_at, l.available_at FROM lot l "
                "JOIN account a ON a.id = l.account_id",
        "balances": "SELECT b.user_id, a.name, b.debt FROM balance b "
                    "JOIN account a ON a.id = b.account_id",
        "runs": "SELECT account_id, evaluated_at FROM expiration_run",
    }
    with transaction(url, write=False) as session:
        return {name: Counter(tuple(str(v) for v in row)
                              for row in session.execute(text(sql)))
                for name, sql in queries.items()}


@pytest.mark.parametrize("kind", list(POLICIES))
def test_a_late_run_ends_exactly_as_punctual_runs(cli: Cli, twin_url: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  kind: str) -> None:
    ops = operations(seed=list(POLICIES).index(kind))
    end = START + timedelta(days=DAYS + 1)
    punctual, late = cli, Cli(twin_url)
    program(punctual, kind)
    program(late, kind)
    # punctual: cron at every midnight, the day's operations after it
    applied = 0
    for day in range(DAYS + 1):
        midnight = START + timedelta(days=day)
        expire(punctual.url, midnight, monkeypatch)
        todays = [op for op in ops if op["at"][:10] == stamp(midnight)[:10]]
        if todays:
            applied += batch(punctual.url, todays, tmp_path / f"day{day}.jsonl",
                             midnight + timedelta(days=1), monkeypatch)
    expire(punctual.url, end, monkeypatch)
    # late: every operation in one file, then one run at the end; in chunks of 7 (each chunk
    # stops for its catch-ups), or of 1,000 (one chunk: after its first stop the requests
    # left are taken in windows)
    size = 1000 if kind in ("rollover", "fixed-date") else 7
    assert batch(late.url, ops, tmp_path / "all.jsonl", end, monkeypatch, chunk_size=size) \
        == applied
    before_run = {user: ok(late, stamp(end), "balance", user) for user in USERS}
    expire(late.url, end, monkeypatch)
    assert ledger(late.url) == ledger(punctual.url)
    expirations = sum(n for row, n in ledger(late.url)["entries"].items()
                      if row[0] in ("expiration", "rollover"))
    assert expirations > 0
    # before the late run, balance already showed what it shows after it
    for user in USERS:
        assert ok(late, stamp(end), "balance", user)["accounts"] == \
            before_run[user]["accounts"]
        assert ok(punctual, stamp(end), "balance", user) == \
            ok(late, stamp(end), "balance", user)
    verify_clean(late)


def test_a_write_applies_the_evaluations_it_comes_after(cli: Cli) -> None:
    """100 points due to expire on 04-01 and spent on 04-05 are refused whether cron ran on
    time or not; the refused spend changes nothing, and the issue that follows keeps the
    catch-up it needed."""
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "100", "--source", "Base")
    late = at("2026-04-05T00:00:00Z")
    refused = cli("spend", "ann", "50", env=late)
    assert refused.exit_code == 1 and "ann has 0 available" in refused.error
    assert sum(ledger(cli.url)["entries"].values()) == 1  # the issue alone
    # balance and history already show the expiry; the ledger holds it once a write needs it
    assert ok(cli, "2026-04-05T00:00:00Z", "balance", "ann")["accounts"][0]["balance"] == 0
    was = ok(cli, "2026-04-05T00:00:00Z", "history", "ann", "--at", "2026-04-02T00:00:00Z")
    assert was["accounts"][0]["balance"] == 0
    ok(cli, "2026-04-05T00:00:00Z", "issue", "ann", "10", "--source", "Base")
    expired = [r for r in ok(cli, "2026-04-05T00:00:00Z", "report", "audit", "--type",
                             "expiration")]
    assert [(r["modification"], r["time"]) for r in expired] == [(-100,
                                                                   "2026-04-01T00:00:00Z")]
    summary = ok(cli, "2026-04-05T00:00:00Z", "expire", "run")
    assert (summary[0]["evaluations"], summary[0]["expired"]) == (35, 0)  # once, not twice
    verify_clean(cli)


def test_a_new_balance_is_caught_up_later_in_the_same_chunk(cli: Cli, tmp_path: Path) -> None:
    """An issue creates ann's balance row and a spend in the same chunk comes after an
    evaluation that expired those points: the spend finds them expired, as with punctual runs
    or in separate chunks."""
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "1d")
    path = tmp_path / "ops.jsonl"
    path.write_text(json.dumps({"op": "issue", "user": "ann", "points": 100, "source": "Base",
                                "at": "2026-03-01T10:00:00Z"}) + "\n"
                    + json.dumps({"op": "spend", "user": "ann", "points": 50,
                                  "at": "2026-03-05T00:00:00Z"}) + "\n")
    done = cli("batch", str(path), "--format", "json", env=at("2026-03-06T00:00:00Z"))
    assert done.exit_code == 1 and json.loads(done.stdout)["refused"] == 1
    rejects = Path(json.loads(done.stdout)["rejects"]).read_text()
    assert "ann has 0 available" in rejects
    verify_clean(cli)


def test_a_refused_request_leaves_no_balance_rows_behind(cli: Cli, tmp_path: Path) -> None:
    """A spend over two default accounts, one of them late, is refused: the rows the
    stopped chunk created for the catch-up are gone again."""
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, t0, "accounts", "create", "Bonus", "--default", "--no-negative")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "1d")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "w", "100", "--source", "Base", "--account",
       "Core")
    path = tmp_path / "spend.jsonl"  # a batch commits its chunk, refusals and all
    path.write_text(json.dumps({"op": "spend", "user": "w", "points": 50}) + "\n")
    refused = cli("batch", str(path), "--format", "json", env=at("2026-03-05T00:00:00Z"))
    assert refused.exit_code == 1 and json.loads(refused.stdout)["refused"] == 1
    with transaction(cli.url, write=False) as session:
        rows = session.execute(text("SELECT a.name FROM balance b JOIN account a "
                                    "ON a.id = b.account_id")).scalars().all()
    assert rows == ["Core"]


def test_writers_and_a_late_run_at_once_expire_each_lot_once(cli: Cli, tmp_path: Path) -> None:
    """Three batch processes write to overlapping users while cron is late and an
    `expire run` runs beside them: every lot is expired (or rolled over) at most once, no
    process fails, and the ledger verifies."""
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "create", "Escrow")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "accounts", "expiration", "Escrow", "--rolling", "--older-than", "2d",
       "--rollover-to", "Core")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "5d")
    seed = [{"op": "issue", "user": f"u{n % 12}", "points": 10 + n,
             "source": "Base", "account": "Escrow" if n % 2 else "Core",
             "at": f"2026-03-0{1 + n % 3}T1{n % 10}:00:00Z"} for n in range(48)]
    first = tmp_path / "seed.jsonl"
    first.write_text("".join(json.dumps(op) + "\n" for op in seed))
    cli.ok("batch", str(first), env=at("2026-03-04T00:00:00Z"))
    files = []
    for worker in range(3):
        rng = random.Random(worker)
        ops = [{"op": rng.choice(["issue", "spend"]), "user": f"u{rng.randrange(12)}",
                "points": rng.randrange(1, 30), "source": "Base",
                "account": rng.choice(["Core", "Escrow"]),
                "at": f"2026-03-20T{rng.randrange(1, 23):02d}:00:00Z"} for _ in range(60)]
        for op in ops:
            if op["op"] == "spend":
                del op["source"], op["account"]
        path = tmp_path / f"w{worker}.jsonl"
        path.write_text("".join(json.dumps(op) + "\n" for op in ops))
        files.append(path)
    env = {"POINTCTL_NOW": "2026-03-21T00:00:00Z"}
    commands = [["batch", str(path), "--chunk-size", "5"] for path in files]
    commands.append(["expire", "run"])
    # each command a process of its own (forked: pointctl is imported already), all at once
    for done in forked_together([functools.partial(Cli(cli.url), *args, env=env)
                                 for args in commands]):
        assert done.exit_code in (0, 1), done.stderr  # 1: some spends refused
        assert "Traceback" not in done.stderr and "unexpected" not in done.stderr, done.stderr
    with transaction(cli.url, write=False) as session:
        twice = session.execute(text(
            "SELECT lot_id FROM draw WHERE kind IN ('expire', 'rollover') GROUP BY lot_id "
            "HAVING COUNT(*) > 1")).all()
        expired = session.execute(text(
            "SELECT COUNT(*) FROM draw WHERE kind IN ('expire', 'rollover')")).scalar_one()
    assert twice == [] and expired > 0
    verify_clean(cli)
