"""Benchmark: one `pointctl expire run` over N due lots against the floor, SQLite and PostgreSQL.

    python bench/expire_run.py --db sqlite:////tmp/expire.db [--lots 1000000] [--users 10000]
    python bench/expire_run.py --db postgresql://postgres@127.0.0.1/test --lots 1000000
    python bench/expire_run.py --db sqlite:////tmp/expire.db --lots 250000,1000000  # memory

For each size N:
1. load: N issue operations for U users from one source into one account (created over
   2026-01-01 .. 01-29), by one `pointctl batch` process into a fresh database; then a rolling
   30-day policy, so that one evaluation (2026-03-01 00:00) finds all N lots due.
2. floor: copies of the lot, entry and balance tables with the same indexes (PostgreSQL
   ``LIKE ... INCLUDING ALL``; SQLite the same CREATE statements), filled with the same rows;
   then a fresh Python process with only the driver runs the irreducible statements in one
   transaction: one UPDATE of the due lots, one INSERT ... SELECT of an entry per lot, one
   UPDATE of the balance rows, COMMIT.
3. run: one whole `pointctl expire run` process (start-up included), timed from outside; its
   peak memory (max RSS) from the operating system.
Then the result is checked: every point expired, one expiration entry and draw per lot.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import fresh  # bench/ is on the path when run as a script
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url

POLICY_AT, RUN_AT = "2026-02-28T23:00:00Z", "2026-03-01T00:00:00Z"
CUTOFF = "2026-01-30 00:00:00"

FLOOR = textwrap.dedent('''
    import sys
    url = sys.argv[1]
    if url.startswith("sqlite"):
        import sqlite3
        connection = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("BEGIN IMMEDIATE")
        cutoff = "2026-01-30 00:00:00.000000"
        run, mark = connection.execute, "?"
    else:
        import psycopg
        base, _, query = url.replace("postgresql+psycopg", "postgresql").partition("?")
        connection = psycopg.connect(base)
        if "search_path" in query:  # the benchmark's own schema
            connection.execute("SET search_path TO pointctl_bench")
        from datetime import datetime
        cutoff = datetime(2026, 1, 30)
        run, mark = connection.execute, "%s"
    run(f"""UPDATE floor_lot SET expired = expired + remaining, remaining = 0
            WHERE account_id = 1 AND remaining > 0 AND created_at <= {mark}""", (cutoff,))
    run(f"""INSERT INTO floor_entry (id, type, user_id, account_id, source_id, points,
                reference_type, related_entry_id, written_off, actor, occurred_at, recorded_at)
            SELECT id + 10000000, 'expiration', user_id, account_id, source_id, -original,
                   'Point Expiration', entry_id, 0, 'floor', {mark}, {mark}
            FROM floor_lot WHERE account_id = 1""", (cutoff, cutoff))
    run("UPDATE floor_balance SET debt = debt WHERE account_id = 1")
    connection.commit()
''')


def run(url: str, now: str, *args: str) -> tuple[float, str]:
    """Run pointctl as a whole process; its wall-clock seconds and what it said on stderr."""
    env = {**os.environ, "POINTCTL_NOW": now, "POINTCTL_ACTOR": "bench"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pointctl", "--db", url, *args],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"pointctl {' '.join(args)} failed: {done.stderr}")
    return time.perf_counter() - started, done.stderr


def pointctl(url: str, now: str, *args: str) -> float:
    return run(url, now, *args)[0]


def issues_file(count: int, users: int, days: int) -> str:
    """A batch file of ``count`` issues from source Base for ``users`` users, spread over the
    first ``days`` days of January 2026; its path (the caller deletes it)."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        for n in range(count):
            second = n * (days * 86400) // count
            day, rest = divmod(second, 86400)
            handle.write(json.dumps({
                "op": "issue", "user": f"user{n % users:06d}", "points": 1 + n % 50,
                "source": "Base",
                "at": f"2026-01-{1 + day:02d}T{rest // 3600:02d}:{rest % 3600 // 60:02d}:"
                      f"{rest % 60:02d}Z"}) + "\n")
        return handle.name


def timed_rss(url: str, now: str, *args: str) -> tuple[float, int, str]:
    """Like pointctl(), but the max RSS of exactly this child (wait4 on its pid)."""
    env = {**os.environ, "POINTCTL_NOW": now, "POINTCTL_ACTOR": "bench"}
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "pointctl", "--db", url, *args],
                                   stdout=out_file, stderr=err_file, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"pointctl {' '.join(args)} failed: {err_file.read().decode()}")
        return seconds, int(usage.ru_maxrss / 1024), out_file.read().decode()


def load(url: str, lots: int, users: int) -> float:
    path = issues_file(lots, users, 28)
    try:
        pointctl(url, "2026-01-01T00:00:00Z", "accounts", "create", "Core", "--default")
        pointctl(url, "2026-01-01T00:00:00Z", "sources", "create", "Base")
        seconds = pointctl(url, "2026-02-01T00:00:00Z", "batch", path)
    finally:
        Path(path).unlink()
    pointctl(url, POLICY_AT, "accounts", "expiration", "Core", "--rolling", "--older-than",
             "30d")
    return seconds


def make_floor_tables(url: str) -> None:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.begin() as connection:
        for table in ("lot", "entry", "balance"):
            copy = f"floor_{table}"
            connection.execute(text(f"DROP TABLE IF EXISTS {copy}"))
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)"))
            else:
                statements = connection.execute(text(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = :t AND sql IS NOT NULL "
                    "AND type IN ('table', 'index') ORDER BY type DESC"), {"t": table}).scalars()
                for statement in statements:
                    # no foreign keys on the copies (they would point at the originals)
                    statement = re.sub(r",\s*CONSTRAINT\s+\w+\s+FOREIGN KEY\s*\([^)]*\)\s*"
                                       r"REFERENCES\s+\w+\s*\([^)]*\)", "", statement)
                    statement = re.sub(r"CONSTRAINT\s+\w+\s+REFERENCES\s+\w+\s*\([^)]*\)",
                                       "", statement)
                    statement = re.sub(r"\b(ix|pk|uq)_", r"floor_\1_", statement)
                    statement = re.sub(rf'(TABLE|ON)\s+"?{table}"?', rf"\1 {copy}", statement)
                    connection.execute(text(statement))
            if table != "entry":
                connection.execute(text(f"INSERT INTO {copy} SELECT * FROM {table}"))
    engine.dispose()


def floor(url: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR, url], check=True)
    return time.perf_counter() - started


def check(url: str, lots: int) -> None:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        remaining, expired, original = connection.execute(text(
            "SELECT SUM(remaining), SUM(expired), SUM(original) FROM lot")).one()
        entries = connection.execute(text(
            "SELECT COUNT(*) FROM entry WHERE type = 'expiration'")).scalar_one()
        draws = connection.execute(text(
            "SELECT COUNT(*) FROM draw WHERE kind = 'expire'")).scalar_one()
    engine.dispose()
    assert (remaining, expired, entries, draws) == (0, original, lots, lots), (
        remaining, expired, original, entries, draws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--lots", default="1000000", help="comma-separated sizes")
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args()
    for lots in (int(size) for size in args.lots.split(",")):
        url = fresh(args.db)
        loaded = load(url, lots, args.users)
        make_floor_tables(url)
        floor_s = floor(url)
        run_s, rss, out = timed_rss(url, RUN_AT, "expire", "run", "--format", "json")
        summary = json.loads(out)[0]
        check(url, lots)
        backend = "PostgreSQL" if "postgres" in url else "SQLite"
        print(f"{lots:>9,} lots, {args.users:,} users ({backend}): loaded by batch in "
              f"{loaded:.1f} s")
        print(f"  floor (UPDATE + INSERT ... SELECT + balance UPDATE): {floor_s:.2f} s")
        print(f"  pointctl expire run: {run_s:.2f} s = {run_s / floor_s:.2f}x the floor, "
              f"max RSS {rss} MB; expired {summary['expired']:,} points in "
              f"{summary['lots']:,} lots of {summary['users']:,} users")


if __name__ == "__main__":
    main()
