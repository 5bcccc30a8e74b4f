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
3. floor: the same setup and issues on a fresh database, then a fresh Python process that only
   writes what those spends wrote (read back from the first database): the entries, the draws,
   the new spent/remaining of every lot drawn, the debt of every balance row that owes, with
   one executemany per table and a commit per 1,000 spends, through the bare driver. It is
   what any ledger must write for these spends, without deciding anything; the figure of
   pointctl is given as a ratio to it.
Every figure is a whole process, timed from outside, start-up included. The run is checked:
exit code 0, every line applied, and the spend entries in the database add up to the file;
the floor must leave the same remaining points.
The files are generated from a seeded random.Random and streamed to disk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import random
import shutil
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

NOW = "2026-11-24T12:00:00Z"
ACCOUNTS = ("Core", "Bonus")
CHUNK = 1000  # pointctl batch's default chunk: the floor commits as often

FLOOR = textwrap.dedent('''
    import pickle, sys
    url, rows = sys.argv[1], sys.argv[2]
    with open(rows, "rb") as stream:
        chunks = pickle.load(stream)
    if url.startswith("sqlite"):
        import sqlite3
        connection = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        mark = "?"
    else:
        import psycopg
        connection = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"),
                                     autocommit=True)
        mark = "%s"
    cursor = connection.cursor()
    entry = (f"INSERT INTO entry (id, type, user_id, account_id, source_id, points, "
             f"reference_type, actor, occurred_at, recorded_at, written_off) "
             f"VALUES ({', '.join([mark] * 11)})")
    draw = (f"INSERT INTO draw (id, entry_id, lot_id, kind, points) "
            f"VALUES ({', '.join([mark] * 5)})")
    lot = f"UPDATE lot SET spent = {mark}, remaining = {mark} WHERE id = {mark}"
    balance = f"UPDATE balance SET debt = {mark} WHERE user_id = {mark} AND account_id = {mark}"
    for entries, draws, lots, balances in chunks:
        cursor.execute("BEGIN")
        cursor.executemany(entry, entries)
        cursor.executemany(draw, draws)
        cursor.executemany(lot, lots)
        if balances:
            cursor.executemany(balance, balances)
        cursor.execute("COMMIT")
''')


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


def floor_rows(url: str, after_entry: int, ops: int) -> list[tuple[list, ...]]:
    """What the spend run wrote (entries after ``after_entry``, their draws, the lots they
    drew from, the balance rows in debt), cut into the chunks of ``CHUNK`` spends it was
    written in: a lot or a balance row is written once, in the chunk that last touched it."""
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        entries = [tuple(row) for row in connection.execute(text(
            "SELECT id, type, user_id, account_id, source_id, points, reference_type, actor, "
            "occurred_at, recorded_at, written_off FROM entry WHERE id > :after ORDER BY id"),
            {"after": after_entry})]
        draws = [tuple(row) for row in connection.execute(text(
            "SELECT id, entry_id, lot_id, kind, points FROM draw WHERE entry_id > :after "
            "ORDER BY id"), {"after": after_entry})]
        lots = {row[2]: (row[0], row[1], row[2]) for row in connection.execute(text(
            "SELECT spent, remaining, id FROM lot WHERE spent > 0"))}
        debts = {(row[1], row[2]): tuple(row) for row in connection.execute(text(
            "SELECT debt, user_id, account_id FROM balance WHERE debt > 0"))}
    engine.dispose()
    count = math.ceil(ops / CHUNK)
    size = math.ceil(len(entries) / count)
    chunk_of = {entry[0]: index // size for index, entry in enumerate(entries)}
    pair_of = {entry[0]: (entry[2], entry[3]) for entry in entries}
    chunks: list[tuple[list, ...]] = [([], [], [], []) for _ in range(count)]
    last_lot: dict[int, int] = {}
    last_pair: dict[tuple[str, int], int] = {}
    for entry in entries:
        chunks[chunk_of[entry[0]]][0].append(entry)
    for draw in draws:
        chunk = chunk_of[draw[1]]
        chunks[chunk][1].append(draw)
        if draw[2] is not None:
            last_lot[draw[2]] = chunk
        else:
            last_pair[pair_of[draw[1]]] = chunk
    for lot_id, chunk in sorted(last_lot.items()):
        chunks[chunk][2].append(lots[lot_id])
    for pair, chunk in sorted(last_pair.items()):
        chunks[chunk][3].append(debts[pair])
    return chunks


def remaining(url: str) -> int:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        total = connection.execute(text("SELECT COALESCE(SUM(remaining), 0) FROM lot")).scalar()
    engine.dispose()
    return int(total)


def setup(url: str, issues: Path) -> tuple[str, float]:
    """A fresh database with the accounts, the source and the issues: its URL, and the
    seconds of the issue batch."""
    url = fresh(url)
    for name in ACCOUNTS:
        pointctl(url, "accounts", "create", name, "--default")
    pointctl(url, "sources", "create", "Base", *(f"--link={name}" for name in ACCOUNTS))
    return url, batch(url, issues)[0]


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

    url, issue_s = setup(args.db, issues)
    spend_s, summary = batch(url, spends)
    entries, points, debt = spent(url)
    if points != spend_points or not args.ops <= entries <= args.ops * len(ACCOUNTS):
        raise SystemExit(f"the database holds {entries:,} spend entries of {points:,} points; "
                         f"the file has {args.ops:,} spends of {spend_points:,}")
    verify_s = pointctl(url, "verify")[0] if args.verify else None
    left = remaining(url)
    rows = folder / "floor.pickle"
    with rows.open("wb") as stream:
        pickle.dump(floor_rows(url, issue_count, args.ops), stream)

    floor_url, _ = setup(args.db, issues)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR,
                    parse_url(floor_url).render_as_string(hide_password=False), str(rows)],
                   check=True)
    floor_s = time.perf_counter() - started
    if remaining(floor_url) != left:
        raise SystemExit("the floor did not leave the points the spends left")
    shutil.rmtree(folder)

    def rate(count: int, seconds: float) -> str:
        return f"{count:>9,} ops {seconds:8.2f} s {count / seconds:9,.0f} ops/s"

    backend = "PostgreSQL" if "postgres" in args.db else "SQLite"
    print(f"{backend}: {args.users:,} users, {args.lots_per_account} lots each in "
          f"{' and '.join(ACCOUNTS)} (~{per_user:,} points a user)")
    print(f"  pointctl batch issue (setup)  {rate(issue_count, issue_s)}")
    print(f"  floor (the same writes, raw)  {rate(args.ops, floor_s)}")
    print(f"  pointctl batch spend (FIFO)   {rate(args.ops, spend_s)}   "
          f"{spend_s / floor_s:.2f}x the floor "
          f"(batch's own figure {summary['ops_per_second']:,} ops/s)")
    print(f"  checked: {points:,} points spent as in the file, in {entries:,} entries "
          f"({entries - args.ops:,} spends crossed accounts; {debt:,} points became debt)")
    if verify_s is not None:
        print(f"  pointctl verify afterwards    {verify_s:8.2f} s (passed)")


if __name__ == "__main__":
    main()
