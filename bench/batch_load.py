"""Benchmark: `pointctl batch` against the floor of raw writes, on SQLite and PostgreSQL.

    python bench/batch_load.py --db sqlite:////tmp/batch.db [--ops 100000] [--users 10000]
    python bench/batch_load.py --db postgresql://postgres@127.0.0.1/test

1. issue: N issue operations for U users from one source, as a JSON Lines file, loaded by one
   whole `pointctl batch` process into a fresh database.
2. floor: a fresh Python process on a fresh database with the same schema (so the same indexes)
   doing only the irreducible writes per operation: insert an entry, insert a lot, upsert the
   balance row; plain per-row statements through the driver, a commit per 1,000 operations.
3. spend: S spend operations (FIFO over the lots just issued) by `pointctl batch`.
4. with a policy: the same issues into a fresh database whose account has an expiration
   policy that cron keeps up with (nothing due): what the catch-up check of late evaluations
   costs a write when cron runs on time, as a ratio to step 1.
Every figure is a whole process, timed from outside, start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import fresh  # bench/ is on the path when run as a script

from pointctl.db.session import parse_url

FLOOR = textwrap.dedent('''
    import sys, time
    from datetime import datetime
    url, ops, users = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    now = datetime(2026, 11, 24, 12, 0, 0)
    if url.startswith("sqlite"):
        import sqlite3
        connection = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        mark, stamp = "?", now.isoformat(" ", "microseconds")
        upsert = "ON CONFLICT DO NOTHING"
    else:
        import psycopg
        connection = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"),
                                     autocommit=True)
        mark, stamp, upsert = "%s", now, "ON CONFLICT DO NOTHING"
    cursor = connection.cursor()
    m = ", ".join([mark] * 12)
    entry = (f"INSERT INTO entry (id, type, user_id, account_id, source_id, points, "
             f"reference_type, actor, occurred_at, recorded_at, written_off, note) VALUES ({m})")
    lot = (f"INSERT INTO lot (id, user_id, account_id, source_id, entry_id, original, spent, "
           f"expired, moved, remaining, created_at, available_at) VALUES ({m})")
    balance = (f"INSERT INTO balance (user_id, account_id, debt, created_at) "
               f"VALUES ({mark}, {mark}, 0, {mark}) {upsert}")
    cursor.execute("BEGIN")
    for i in range(1, ops + 1):
        user = f"cust-{i % users}"
        cursor.execute(entry, (i, "issue", user, 1, 1, 10, "Point Issuance", "bench", stamp,
                               stamp, 0, None))
        cursor.execute(lot, (i, user, 1, 1, i, 10, 0, 0, 0, 10, stamp, stamp))
        cursor.execute(balance, (user, 1, stamp))
        if i % 1000 == 0:
            cursor.execute("COMMIT")
            cursor.execute("BEGIN")
    cursor.execute("COMMIT")
''')


def timed(*command: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return took


def pointctl(url: str, *args: str) -> float:
    return timed(sys.executable, "-m", "pointctl", "--db", url, *args)


def setup(url: str, *, policy: bool = False) -> str:
    url = fresh(url)
    pointctl(url, "accounts", "create", "Spendable", "--default")
    pointctl(url, "sources", "create", "Base")
    if policy:  # evaluated daily from now on: the first one is due tomorrow
        pointctl(url, "accounts", "expiration", "Spendable", "--rolling", "--older-than", "1y")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--spends", type=int, default=10_000)
    args = parser.parse_args()
    os.environ["POINTCTL_NOW"] = "2026-11-24T12:00:00Z"
    folder = Path(tempfile.mkdtemp(prefix="pointctl-bench-"))
    issues, spends = folder / "issues.jsonl", folder / "spends.jsonl"
    with issues.open("w") as out:
        for i in range(args.ops):
            out.write(json.dumps({"op": "issue", "user": f"cust-{i % args.users}", "points": 10,
                                  "source": "Base", "reference_id": f"ride-{i}"}) + "\n")
    with spends.open("w") as out:
        for i in range(args.spends):
            out.write(json.dumps({"op": "spend", "user": f"cust-{i % args.users}",
                                  "points": 15}) + "\n")

    url = setup(args.db)
    issue_time = pointctl(url, "batch", str(issues))
    spend_time = pointctl(url, "batch", str(spends))
    verify_time = pointctl(url, "verify")

    policy_url = setup(args.db, policy=True)
    policy_time = pointctl(policy_url, "batch", str(issues))

    floor_url = setup(args.db)
    floor_time = timed(sys.executable, "-c", FLOOR,
                       parse_url(floor_url).render_as_string(hide_password=False), str(args.ops),
                       str(args.users))

    def rate(count: int, seconds: float) -> str:
        return f"{seconds:6.2f} s  {count / seconds:9,.0f} ops/s"

    print(f"database: {args.db.split('@')[-1]}   {args.ops:,} issues for {args.users:,} users")
    print(f"  floor (raw per-row writes)  {rate(args.ops, floor_time)}")
    print(f"  pointctl batch issue        {rate(args.ops, issue_time)}   "
          f"{issue_time / floor_time:.2f}x the floor")
    print(f"  pointctl batch spend        {rate(args.spends, spend_time)}")
    print(f"  batch issue, with a policy  {rate(args.ops, policy_time)}   "
          f"{policy_time / issue_time:.2f}x without (cron on time: nothing due)")
    print(f"  pointctl verify afterwards  {verify_time:6.2f} s (passed)")


if __name__ == "__main__":
    main()
