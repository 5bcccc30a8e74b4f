"""Benchmark: one `pointctl batch` process over a mixed file (issue, spend, reverse, transfer).

    python bench/batch_mixed.py --db sqlite:////tmp/mixed.db [--ops 200000] [--users 10000]
    python bench/batch_mixed.py --db postgresql://postgres@127.0.0.1:5432/test --ops 20000
    python bench/batch_mixed.py --db sqlite:////tmp/mixed.db --memory  # 100,000 and 1,000,000

Setup: two default accounts, Core and Bonus (both allow a negative balance), and a source Base
linked to both. The file, from a seeded random.Random and streamed to disk, has --ops lines
over --users users picked at random: about 70% issue (10..200 points into Core or Bonus, each
with a unique reference_id), 20% spend (5..80 points, no account: FIFO over both accounts),
5% reverse (by the reference_id of an earlier issue line of the file, each issue reversed at
most once) and 5% transfer (1..40 points; half between the user's two accounts, half to
another user in the same account). Early spends and reversals create debt; transfers beyond
what the user has are refused, which is part of the workload.

One whole `pointctl batch --format json` process is timed from outside, start-up included.
It must exit 0 (or 1 when some lines were refused) with every line accounted for (applied +
refused), the refusals per operation are counted from its rejects file, and the issue entries
in the database must match the issue lines applied.

--memory: the same for each of --memory-sizes (default 100,000 and 1,000,000 operations, a
fresh database each), with the peak memory (max RSS, from wait4 on the batch process) of each
and the ratio of the largest to the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from pathlib import Path

from _common import fresh  # bench/ is on the path when run as a script
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url

NOW = "2026-11-24T12:00:00Z"
ACCOUNTS = ("Core", "Bonus")
MIX = (("issue", 0.70), ("spend", 0.20), ("reverse", 0.05), ("transfer", 0.05))


def pointctl(url: str, *args: str) -> float:
    """Run pointctl as a whole process that must succeed; its wall-clock seconds."""
    env = {**os.environ, "POINTCTL_NOW": NOW, "POINTCTL_ACTOR": "bench"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pointctl", "--db", url, *args],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"pointctl {' '.join(args)} failed ({done.returncode}): "
                         f"{done.stderr[-2000:]}")
    return time.perf_counter() - started


def batch(url: str, path: Path) -> tuple[float, int, dict]:
    """One `pointctl batch --format json` process: seconds, max RSS in MB (wait4 on exactly
    this child) and its summary; exit 0, or 1 with refusals, else the benchmark stops."""
    env = {**os.environ, "POINTCTL_NOW": NOW, "POINTCTL_ACTOR": "bench"}
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "pointctl", "--db", url, "batch", str(path), "--format",
             "json"], stdout=out_file, stderr=err_file, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read().decode(), err_file.read().decode()
    if code not in (0, 1):
        raise SystemExit(f"pointctl batch {path.name} failed ({code}): {err[-2000:]}")
    summary = json.loads(out)
    summary = summary[0] if isinstance(summary, list) else summary
    if (code == 1) != bool(summary["refused"]) or \
            summary["applied"] + summary["refused"] != summary["lines"]:
        raise SystemExit(f"pointctl batch {path.name}: exit {code} with {summary}")
    return seconds, int(usage.ru_maxrss / 1024), summary


def write_mixed(path: Path, ops: int, users: int, seed: int) -> Counter[str]:
    """The mixed file; the lines per operation."""
    rng = random.Random(seed)
    names, weights = zip(*MIX, strict=True)
    cumulative = [sum(weights[:i + 1]) for i in range(len(weights))]
    unreversed = array("q")  # line numbers of issue lines not yet reversed
    lines: Counter[str] = Counter()
    with path.open("w") as out:
        for line in range(1, ops + 1):
            draw = rng.random()
            op = next((n for n, c in zip(names, cumulative, strict=True) if draw < c), "issue")
            if op == "reverse" and not unreversed:
                op = "issue"
            user = f"user{rng.randrange(users):06d}"
            if op == "issue":
                item = {"op": op, "user": user, "points": rng.randint(10, 200),
                        "source": "Base", "account": rng.choice(ACCOUNTS),
                        "reference_id": f"order-{line}"}
                unreversed.append(line)
            elif op == "spend":
                item = {"op": op, "user": user, "points": rng.randint(5, 80)}
            elif op == "reverse":
                pick = rng.randrange(len(unreversed))
                target = unreversed[pick]
                unreversed[pick] = unreversed[-1]
                unreversed.pop()
                item = {"op": op, "reference_id": f"order-{target}"}
            else:
                giver = rng.choice(ACCOUNTS)
                item = {"op": op, "user": user, "points": rng.randint(1, 40), "account": giver}
                if rng.random() < 0.5:
                    item["to_account"] = ACCOUNTS[1 - ACCOUNTS.index(giver)]
                else:
                    other = (int(user[4:]) + 1 + rng.randrange(users - 1)) % users
                    item.update(to_account=giver, to_user=f"user{other:06d}")
            lines[op] += 1
            out.write(json.dumps(item) + "\n")
    return lines


def refusals(path: Path) -> Counter[str]:
    """Refused lines per operation, from the batch's rejects file (absent when none)."""
    refused: Counter[str] = Counter()
    rejects = Path(f"{path}.rejects.jsonl")
    if rejects.exists():
        with rejects.open() as lines:
            for line in lines:
                refused[json.loads(line)["op"]["op"]] += 1
    return refused


def issued(url: str) -> int:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        count = connection.execute(text(
            "SELECT COUNT(*) FROM entry WHERE type = 'issue'")).scalar_one()
    engine.dispose()
    return int(count)


def run(db: str, ops: int, users: int, seed: int, folder: Path) -> tuple[float, int]:
    """Generate, set up, apply, check and print one size; (ops/s, max RSS MB)."""
    path = folder / f"mixed-{ops}.jsonl"
    lines = write_mixed(path, ops, users, seed)
    url = fresh(db)
    for name in ACCOUNTS:
        pointctl(url, "accounts", "create", name, "--default")
    pointctl(url, "sources", "create", "Base", *(f"--link={name}" for name in ACCOUNTS))
    seconds, rss, summary = batch(url, path)
    refused = refusals(path)
    if summary["lines"] != ops or sum(refused.values()) != summary["refused"]:
        raise SystemExit(f"{ops:,} lines written, batch says {summary}; rejects {refused}")
    if issued(url) != lines["issue"] - refused["issue"]:
        raise SystemExit(f"{issued(url):,} issue entries in the database; "
                         f"{lines['issue'] - refused['issue']:,} issue lines applied")
    rate = ops / seconds
    backend = "PostgreSQL" if "postgres" in db else "SQLite"
    print(f"{backend}: {ops:,} mixed operations for {users:,} users, one pointctl batch: "
          f"{seconds:.2f} s = {rate:,.0f} ops/s (batch's own figure "
          f"{summary['ops_per_second']:,} ops/s), max RSS {rss} MB, exit "
          f"{1 if summary['refused'] else 0}")
    print(f"  {'operation':<10}{'lines':>10}{'applied':>10}{'refused':>10}")
    for name, _ in MIX:
        print(f"  {name:<10}{lines[name]:>10,}{lines[name] - refused[name]:>10,}"
              f"{refused[name]:>10,}")
    print(f"  {'total':<10}{ops:>10,}{summary['applied']:>10,}{summary['refused']:>10,}")
    return rate, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--ops", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--memory", action="store_true",
                        help="max RSS at each of --memory-sizes instead of one --ops run")
    parser.add_argument("--memory-sizes", default="100000,1000000", help="comma-separated")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pointctl-bench-"))
    try:
        if not args.memory:
            run(args.db, args.ops, args.users, args.seed, folder)
            return
        sizes = [int(size) for size in args.memory_sizes.split(",")]
        results = [(size, *run(args.db, size, args.users, args.seed, folder)) for size in sizes]
    finally:
        shutil.rmtree(folder)
    print(f"  {'operations':>12}{'ops/s':>10}{'max RSS':>10}")
    for size, rate, rss in results:
        print(f"  {size:>12,}{rate:>10,.0f}{rss:>7} MB")
    smallest, largest = results[0][2], results[-1][2]
    print(f"  max RSS at {sizes[-1]:,} / at {sizes[0]:,}: {largest / smallest:.3f} "
          f"({'within' if largest <= smallest * 1.10 else 'beyond'} 10%)")


if __name__ == "__main__":
    main()
