"""Benchmark: `pointctl issue` against a source with restrictions, on a ledger of 1M entries.

Builds a ledger of N issue entries (with their lots and balances) spread over the past year,
half of them from "Ride Share" (which has a system and a per-customer restriction), then times
whole `pointctl issue` processes: to the restricted source, to an unrestricted one, and
`pointctl --version` (start-up alone). It also prints the query plans of the window sums.

    python bench/restricted_issue.py --db sqlite:////tmp/bench.db [--entries 1000000]
    python bench/restricted_issue.py --db postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta

from _common import fresh  # bench/ is on the path when run as a script
from sqlalchemy import create_engine, insert, text
from sqlalchemy.pool import NullPool

from pointctl.core import clock
from pointctl.db.models import Balance, Entry, Lot
from pointctl.db.session import parse_url

USERS = 50_000
CHUNK = 20_000


def pointctl(url: str, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pointctl", "--db", url, *args], check=True,
                   capture_output=True)
    return time.perf_counter() - started


def load(url: str, entries: int) -> None:
    for args in (["accounts", "create", "Spendable", "--default"],
                 ["sources", "create", "Ride Share"], ["sources", "create", "Base"],
                 ["restrictions", "add", "Ride Share", "--max-points", "5000000", "--per", "1d"],
                 ["restrictions", "add", "Ride Share", "--max-points", "100000", "--per", "1d",
                  "--per-customer"]):
        pointctl(url, *args)
    now = clock.now()
    step = timedelta(days=365) / entries
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(insert(Balance), [
            {"user_id": f"cust-{u}", "account_id": 1, "debt": 0,
             "created_at": now - timedelta(days=366)} for u in range(USERS)])
        first = connection.execute(text("SELECT coalesce(max(id), 0) FROM entry")).scalar_one()
        for start in range(0, entries, CHUNK):
            rows, lots = [], []
            for i in range(start, min(entries, start + CHUNK)):
                moment = now - (entries - i) * step
                points = 10 + i % 90
                user = f"cust-{i % USERS}"
                rows.append({"id": first + i + 1, "type": "issue", "user_id": user,
                             "account_id": 1, "source_id": 1 + i % 2, "points": points,
                             "reference_type": "Point Issuance", "actor": "bench",
                             "occurred_at": moment, "recorded_at": moment, "written_off": 0})
                lots.append({"user_id": user, "account_id": 1, "source_id": 1 + i % 2,
                             "entry_id": first + i + 1, "original": points, "spent": 0,
                             "expired": 0, "moved": 0, "remaining": points,
                             "created_at": moment, "available_at": moment})
            connection.execute(insert(Entry), rows)
            connection.execute(insert(Lot), lots)
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT setval(pg_get_serial_sequence('entry', 'id'), "
                                    "(SELECT max(id) FROM entry))"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    engine.dispose()


def plans(url: str) -> None:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    since = clock.now() - timedelta(days=1)
    queries = {
        "system window": "SELECT sum(points) FROM entry WHERE source_id = 1 AND type = 'issue' "
                         "AND occurred_at > :since",
        "per-customer window": "SELECT sum(points) FROM entry WHERE source_id = 1 AND "
                               "type = 'issue' AND user_id = 'cust-7' AND occurred_at > :since",
    }
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        for name, query in queries.items():
            rows = connection.execute(text(explain + query), {"since": since}).all()
            print(f"  plan of the {name}: " + " | ".join(str(row[-1]) for row in rows))
    engine.dispose()


def window_sums(url: str, calls: int = 200) -> None:
    """The enforcement itself, in process: both restrictions' allowances for one issue."""
    from pointctl.db.models import Source
    from pointctl.db.session import transaction
    from pointctl.services import restrictions

    with transaction(url, write=False) as session:
        source = session.get(Source, 1)
        rules = restrictions.source_restrictions(session, 1)
        started = time.perf_counter()
        for call in range(calls):
            for rule in rules:
                restrictions.allowance(session, rule, source_id=source.id,
                                       user=f"cust-{call}", moment=clock.now())
        took = (time.perf_counter() - started) / calls
    print(f"  window sums of both restrictions for one issue: {took * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    os.environ.pop("POINTCTL_NOW", None)

    started = time.perf_counter()
    url = fresh(args.db)
    load(url, args.entries)
    print(f"loaded {args.entries:,} entries in {time.perf_counter() - started:.1f} s")
    plans(url)
    window_sums(url)
    timings: dict[str, list[float]] = {"restricted": [], "unrestricted": [], "start-up": []}
    for run in range(args.runs):
        timings["restricted"].append(pointctl(url, "issue", f"cust-{run}", "10", "--source",
                                              "Ride Share"))
        timings["unrestricted"].append(pointctl(url, "issue", f"cust-{run}", "10",
                                                "--source", "Base"))
        timings["start-up"].append(pointctl(url, "--version"))
    for name, values in timings.items():
        print(f"  {name:13} median {statistics.median(values):.3f} s  "
              f"min {min(values):.3f} s  max {max(values):.3f} s  ({args.runs} runs)")


if __name__ == "__main__":
    main()
