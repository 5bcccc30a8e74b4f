"""Benchmark: `pointctl report audit --user U` on a ledger of N entries, whole process.

    python bench/report_audit.py --db sqlite:////tmp/audit.db [--entries 5000000]
    python bench/report_audit.py --db postgresql://postgres@127.0.0.1/test

1. load: N entries for 100,000 users over 2025-2026 (half issues, each with its lot; half
   spends of 40 of the issue before, each with its draw), written by set-based SQL straight
   into a fresh database at the schema head (pointctl's own indexes and triggers), then
   ANALYZE. The ledger's shape, not its
   history, is what an audit look-up depends on.
2. start-up: `pointctl report audit --user U` against an empty database at the schema head: what
   any pointctl command costs before it reads a row.
3. look-up: the same command on the big ledger for a user with N/100,000 entries, and with
   --search, --type and a date filter added.
4. the liability and source reports over the same ledger, all time and the last 30 days.
Each is a whole `pointctl` process timed from outside, best and median of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from _common import SCHEMA, fresh  # bench/ is on the path when run as a script
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url

USERS = 100_000
POINTCTL = str(Path(sys.executable).with_name("pointctl"))  # the one of this environment


def load(url: str, entries: int) -> None:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    postgres = engine.dialect.name == "postgresql"
    series = ("SELECT generate_series(1, :n) AS i" if postgres else
              "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) "
              "SELECT i FROM s")
    moment = ("TIMESTAMP '2025-01-01 00:00:00' + i * INTERVAL '12 seconds'" if postgres else
              "strftime('%Y-%m-%d %H:%M:%f000', '2025-01-01', '+' || (i * 12) || ' seconds')")
    # entries 2k-1 (an issue) and 2k (a spend of 40 of it) belong to the same user
    user = "'u' || lpad(CAST(((i + 1) / 2) % 100000 AS TEXT), 5, '0')" if postgres else \
        "'u' || substr('0000' || (((i + 1) / 2) % 100000), -5)"
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO account (id, name, name_key, status, is_default, allow_negative, "
            "qualifying, created_at, updated_at) VALUES (1, 'Core', 'core', 'active', true, "
            "true, false, '2025-01-01', '2025-01-01')"))
        connection.execute(text(
            "INSERT INTO source (id, name, name_key, status, created_at, updated_at) "
            "VALUES (1, 'Base', 'base', 'active', '2025-01-01', '2025-01-01')"))
        connection.execute(text(
            f"INSERT INTO entry (id, type, user_id, account_id, source_id, points, reference_id, "
            f"reference_type, note, related_entry_id, written_off, actor, occurred_at, "
            f"recorded_at) SELECT i, CASE WHEN i % 2 = 1 THEN 'issue' ELSE 'spend' END, {user}, "
            f"1, CASE WHEN i % 2 = 1 THEN 1 END, CASE WHEN i % 2 = 1 THEN 100 ELSE -40 END, "
            f"'order-' || i, CASE WHEN i % 2 = 1 THEN 'Point Issuance' ELSE "
            f"'Point Redemption' END, NULL, NULL, 0, 'bench', {moment}, {moment} "
            f"FROM ({series}) s"), {"n": entries})
        connection.execute(text(
            "INSERT INTO lot (id, user_id, account_id, source_id, entry_id, original, spent, "
            "expired, moved, remaining, created_at, available_at) SELECT id, user_id, 1, 1, id, "
            "100, 40, 0, 0, 60, occurred_at, occurred_at FROM entry WHERE type = 'issue'"))
        connection.execute(text(
            "INSERT INTO draw (id, entry_id, lot_id, kind, points) SELECT id, id, id - 1, "
            "'spend', 40 FROM entry WHERE type = 'spend'"))
        if postgres:
            for table in ("entry", "lot", "draw"):
                connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"))
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    engine.dispose()


def timed(url: str, args: list[str], repeat: int) -> tuple[float, float, str]:
    times, out = [], ""
    env = {**os.environ, "POINTCTL_NOW": "2026-12-01T00:00:00Z"}
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run([POINTCTL, "--db", url, *args], capture_output=True, text=True,
                              env=env, check=True)
        times.append(time.perf_counter() - started)
        out = done.stdout
    return min(times), statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--entries", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--reuse", action="store_true",
                        help="time the ledger a previous run of this script loaded into --db")
    options = parser.parse_args()
    lookup = ["report", "audit", "--user", "u04242", "--format", "json"]
    if options.reuse:
        url = options.db
        if not url.startswith("sqlite"):
            url += ("&" if "?" in url else "?") + quote(f"options=-csearch_path={SCHEMA}",
                                                        safe="=&")
    else:
        empty = fresh(options.db)
        best, median, _ = timed(empty, lookup, options.repeat)
        print(f"start-up (empty database): best {best:.3f} s, median {median:.3f} s")
        url = fresh(options.db)
        started = time.perf_counter()
        load(url, options.entries)
        print(f"loaded {options.entries:,} entries in {time.perf_counter() - started:.1f} s",
              flush=True)
    for label, extra in (("--user", []), ("--user --search", ["--search", "order-1"]),
                         ("--user --type spend --last-month",
                          ["--type", "spend", "--last-month"]),
                         ("--user --limit 10 (counts the rest)", ["--limit", "10"])):
        best, median, out = timed(url, lookup + extra, options.repeat)
        rows = out.count('"id"')
        print(f"report audit {label}: {rows} rows; best {best:.3f} s, median {median:.3f} s")
    for args in (["report", "audit", "--limit", "10"], ["report", "liability"],
                 ["report", "liability", "--last", "30d"],
                 ["report", "liability", "--daily", "--last", "30d"],
                 ["report", "sources", "--last", "30d", "--no-chart"]):
        best, median, _ = timed(url, args + ["--format", "json"], min(options.repeat, 3))
        print(f"{' '.join(args)}: best {best:.3f} s, median {median:.3f} s", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
