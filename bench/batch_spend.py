"""Benchmark: `pointctl batch` applying spends FIFO across two default accounts.

    python bench/batch_spend.py --db sqlite:////tmp/spend.db [--ops 100000] [--users 10000]
    python bench/batch_spend.py --db postgresql://postgres@127.0.0.1:5432/test --ops 10000

1. setup: two default accounts, Core and Bonus (both allow a negative balance), and a source
   Base linked to both; then one `pointctl batch` process (timed, reported apart) issues
   --lots-per-account lots per user in each account, Core and Bonus alternating in time
   (2026-01-01, 01-02, ...), so that a user's FIFO order crosses the accounts.
2. spend: one `pointctl batch` process applying --ops spends (no account: FIFO over the default
   accounts), users in shuffled rounds; the amounts are sized from --ops and --users so that a
   user spends about 90% of what was issued, a few going beyond (debt on Core).
Every figure is a whole process, timed from outside, start-up included. The run is checked:
exit code 0, every line applied, and the spend entries in the database add up to the file.
The files are generated from a seeded random.Random and streamed to disk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import fresh  # bench/ is on the path when run as a script
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url

NOW = "2026-11-24T12:00:00Z"
ACCOUNTS = ("Core", "Bonus")


def pointctl(url: str, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """Run pointctl as a whole process: its wall-clock seconds and standard output."""
    env = {**os.environ, "POINTCTL_NOW": NOW, "POINTCTL_ACTOR": "bench"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pointctl", "--db", url, *args],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode not in ok:
        raise SystemExit(f"pointctl {' '.join(args)} failed ({done.returncode}): "
                         f"{done.stderr[-2000:]}")
    return seconds, done.stdout


def batch(url: str, path: Path) -> tuple[float, dict]:
    """One `pointctl batch --format json` process that must apply every line."""
    seconds, out = pointctl(url, "batch", str(path), "--format", "json")
    summary = json.loads(out)
    summary = summary[0] if isinstance(summary, list) else summary
    if summary["refused"] or summary["applied"] != summary["lines"]:
        raise SystemExit(f"batch {path.name}: not every line applied: {summary}")
    return seconds, summary


def write_issues(path: Path, users: int, per_account: int, rng: random.Random) -> int:
    """Lots for every user, Core and Bonus alternating in time; the points per user."""
    lots = per_account * len(ACCOUNTS)
    total = 0
    with path.open("w") as out:
        for k in range(lots):
            day, account = 1 + k, ACCOUNTS[k % len(ACCOUNTS)]
            for u in range(users):
                points = rng.randint(50, 150)
                total += points
                out.write(json.dumps({
                    "op": "issue", "user": f"user{u:06d}", "points": points, "source": "Base",
                    "account": account, "reference_id": f"lot-{k}-{u}",
                    "at": f"2026-01-{day:02d}T{u % 24:02d}:{u % 60:02d}:00Z"}) + "\n")
    return total // users


def write_spends(path: Path, ops: int, users: int, per_user: int, rng: random.Random
                 ) -> int:
    """Spends in rounds (each a shuffled pass over the users); the points of them all."""
    rounds = math.ceil(ops / users)
    mean = max(2, round(0.9 * per_user / rounds))
    order = list(range(users))
    total = written = 0
    with path.open("w") as out:
        while written < ops:
            rng.shuffle(order)
            for u in order[:ops - written]:
                points = rng.randint(mean // 2, mean * 3 // 2)
                total += points
                out.write(json.dumps({"op": "spend", "user": f"user{u:06d}",
                                      "points": points}) + "\n")
            written = min(ops, written + users)
    return total


def spent(url: str) -> tuple[int, int, int]:
    """(spend entries, points they took, of which debt) as recorded in the database; a spend
    has one entry per account it draws from."""
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        count, points = connection.execute(text(
            "SELECT COUNT(*), COALESCE(SUM(points), 0) FROM entry WHERE type = 'spend'")).one()
        debt = connection.execute(text(
            "SELECT COALESCE(SUM(points), 0) FROM draw WHERE kind = 'debt'")).scalar_one()
    engine.dispose()
    return int(count), -int(points), int(debt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--ops", type=int, default=100_000, help="spend operations")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--lots-per-account", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--verify", action="store_true", help="also run `pointctl verify`")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="pointctl-bench-"))
    issues, spends = folder / "issues.jsonl", folder / "spends.jsonl"
    per_user = write_issues(issues, args.users, args.lots_per_account, rng)
    spend_points = write_spends(spends, args.ops, args.users, per_user, rng)
    issue_count = args.users * args.lots_per_account * len(ACCOUNTS)

    url = fresh(args.db)
    for name in ACCOUNTS:
        pointctl(url, "accounts", "create", name, "--default")
    pointctl(url, "sources", "create", "Base", *(f"--link={name}" for name in ACCOUNTS))
    issue_s, _ = batch(url, issues)
    spend_s, summary = batch(url, spends)
    entries, points, debt = spent(url)
    if points != spend_points or not args.ops <= entries <= args.ops * len(ACCOUNTS):
        raise SystemExit(f"the database holds {entries:,} spend entries of {points:,} points; "
                         f"the file has {args.ops:,} spends of {spend_points:,}")
    verify_s = pointctl(url, "verify")[0] if args.verify else None
    shutil.rmtree(folder)

    def rate(count: int, seconds: float) -> str:
        return f"{count:>9,} ops {seconds:8.2f} s {count / seconds:9,.0f} ops/s"

    backend = "PostgreSQL" if "postgres" in args.db else "SQLite"
    print(f"{backend}: {args.users:,} users, {args.lots_per_account} lots each in "
          f"{' and '.join(ACCOUNTS)} (~{per_user:,} points a user)")
    print(f"  pointctl batch issue (setup)  {rate(issue_count, issue_s)}")
    print(f"  pointctl batch spend (FIFO)   {rate(args.ops, spend_s)}   "
          f"(batch's own figure {summary['ops_per_second']:,} ops/s)")
    print(f"  checked: {points:,} points spent as in the file, in {entries:,} entries "
          f"({entries - args.ops:,} spends crossed accounts; {debt:,} points became debt)")
    if verify_s is not None:
        print(f"  pointctl verify afterwards    {verify_s:8.2f} s (passed)")


if __name__ == "__main__":
    main()
