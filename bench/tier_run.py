"""Benchmark: one tier evaluation by `pointctl expire run` over U members, against the floor.

    python bench/tier_run.py --db sqlite:////tmp/tiers.db [--issues 1000000] [--users 100000]
    python bench/tier_run.py --db postgresql://postgres@127.0.0.1/test --issues 1000000

1. load: N qualifying issues for U users (spread over January 2026) by one `pointctl batch`
   process into a fresh database; then tiers over that account (Silver, Gold, Platinum), set
   so that one evaluation (2026-02-01 00:00) is due and moves every member up.
2. floor: a fresh Python process with only the driver runs the irreducible statements in one
   transaction: the window's qualifying points per member (one GROUP BY over the entries, as
   the evaluation reads them), one INSERT ... SELECT of an entry per member into a copy of
   the entry table (same indexes) and one of a level row per member, COMMIT.
3. run: one whole `pointctl expire run` process (start-up included), timed from outside.
Then the result is checked: one `tier` entry and one level per member.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from _common import fresh  # bench/ is on the path when run as a script
from expire_run import issues_file, make_floor_tables, pointctl, run
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url

SET_AT, RUN_AT = "2026-01-31T23:00:00Z", "2026-02-01T00:00:00Z"

FLOOR = textwrap.dedent('''
    import sys
    url = sys.argv[1]
    if url.startswith("sqlite"):
        import sqlite3
        connection = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("BEGIN IMMEDIATE")
        start, at = "2025-02-01 00:00:00.000000", "2026-02-01 00:00:00.000000"
        run, mark = connection.execute, "?"
    else:
        import psycopg
        base, _, query = url.replace("postgresql+psycopg", "postgresql").partition("?")
        connection = psycopg.connect(base)
        if "search_path" in query:  # the benchmark's own schema
            connection.execute("SET search_path TO pointctl_bench")
        from datetime import datetime
        start, at = datetime(2025, 2, 1), datetime(2026, 2, 1)
        run, mark = connection.execute, "%s"
    sums = f"""SELECT user_id, SUM(points) AS earned FROM entry WHERE account_id = 1
               AND type IN ('issue', 'adjustment', 'reversal') AND occurred_at > {mark}
               AND occurred_at <= {mark} GROUP BY user_id"""
    run("CREATE TEMP TABLE floor_sums AS " + sums, (start, at))
    run(f"""INSERT INTO floor_entry (id, type, user_id, account_id, points, reference_id,
                reference_type, written_off, actor, occurred_at, recorded_at)
            SELECT 10000000 + ROW_NUMBER() OVER (ORDER BY user_id), 'tier', user_id, 1, 0,
                   'Gold', 'Tier up', 0, 'floor', {mark}, {mark} FROM floor_sums""", (at, at))
    run(f"""INSERT INTO floor_member_tier (user_id, level, reached_at, kept_until)
            SELECT user_id, 'Gold', {mark}, {mark} FROM floor_sums""", (at, at))
    connection.commit()
''')


def load(url: str, issues: int, users: int) -> float:
    path = issues_file(issues, users, 30)
    try:
        pointctl(url, "2026-01-01T00:00:00Z", "accounts", "create", "Tier", "--qualifying")
        pointctl(url, "2026-01-01T00:00:00Z", "sources", "create", "Base", "--link", "Tier")
        seconds = pointctl(url, "2026-01-31T12:00:00Z", "batch", path)
    finally:
        Path(path).unlink()
    pointctl(url, SET_AT, "tiers", "set", "--account", "Tier", "--level", "Silver=1",
             "--level", "Gold=100", "--level", "Platinum=1000000", "--keep", "12mo")
    return seconds


def make_floor_member(url: str) -> None:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS floor_member_tier"))
        connection.execute(text(
            "CREATE TABLE floor_member_tier (user_id VARCHAR(200) PRIMARY KEY, level "
            "VARCHAR(100) NOT NULL, reached_at TIMESTAMP NOT NULL, kept_until TIMESTAMP "
            "NOT NULL)"))
    engine.dispose()


def floor(url: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR, url], check=True)
    return time.perf_counter() - started


def check(url: str, users: int) -> None:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        entries = connection.execute(text(
            "SELECT COUNT(*) FROM entry WHERE type = 'tier'")).scalar_one()
        members = connection.execute(text("SELECT COUNT(*) FROM member_tier")).scalar_one()
    engine.dispose()
    assert (entries, members) == (users, users), (entries, members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--issues", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    url = fresh(args.db)
    loaded = load(url, args.issues, args.users)
    make_floor_tables(url)
    make_floor_member(url)
    floor_s = floor(url)
    run_s, said = run(url, RUN_AT, "expire", "run")
    check(url, args.users)
    backend = "PostgreSQL" if "postgres" in url else "SQLite"
    line = next(line for line in said.splitlines() if "tier evaluation" in line)
    print(f"{args.issues:,} qualifying issues, {args.users:,} members ({backend}): loaded by "
          f"batch in {loaded:.1f} s")
    print(f"  floor (GROUP BY + entry and level INSERT ... SELECT): {floor_s:.2f} s")
    print(f"  pointctl expire run: {run_s:.2f} s = {run_s / floor_s:.2f}x the floor ({line})")


if __name__ == "__main__":
    main()
