"""Several pointctl processes at once: no lost update, no duplicate, no traceback.

Each worker is a real process with its own connections, so SQLite's BEGIN IMMEDIATE and
PostgreSQL's row locks are what keep the result exact. A worker runs its share of the commands
one after another, each a whole pointctl command (its own transaction) run in-process as the
tests' ``Cli`` runs it: four processes carry thirty commands, four at a time. The workers are
forked from the test's process (``tests.helpers.Forked``), so they start with pointctl imported
instead of paying four interpreter start-ups per test. With SQLite's BEGIN IMMEDIATE taken away
every test fails (all ten, in one run); with PostgreSQL's balance and source row locks taken
away (``locks.py``) those about spends, transfers, limited sources and batches fail, the one
about a system limit in one run of two (the one name, the one idempotency key and the unlinks
rest on unique keys and row writes; inventory changes lock their source through its name).
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

from tests.helpers import Cli, Result, forked_together

WORKERS = 4


def _share(url: str, commands: list[list[str]]) -> list[Result]:
    """One worker's commands, one after another, each a whole command (its own
    transaction)."""
    cli = Cli(url)
    return [cli(*args) for args in commands]


def run_workers(url: str, commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Runs ``commands`` over ``WORKERS`` processes forked from this one, let go together
    (command i in worker i % WORKERS, each worker's in order); the outcome of each command, in
    the order given."""
    shares = [commands[worker::WORKERS] for worker in range(min(WORKERS, len(commands)))]
    done = forked_together([functools.partial(_share, url, share) for share in shares])
    results: dict[int, subprocess.CompletedProcess[str]] = {}
    for worker, outcomes in enumerate(done):
        for index, outcome in enumerate(outcomes):
            results[worker + index * WORKERS] = subprocess.CompletedProcess(
                commands[worker + index * WORKERS], outcome.exit_code, outcome.stdout,
                outcome.stderr)
    return [results[index] for index in range(len(commands))]


def test_parallel_inventory_takes_never_overdraw(cli: Cli) -> None:
    cli.ok("accounts", "create", "Core")
    cli.ok("sources", "create", "Promo", "--inventory", "20")
    # 30 takes of 1 point, WORKERS processes at a time, for 20 points of inventory
    commands = [["sources", "inventory", "Promo", "--adjust", "-1"]] * 30
    results = run_workers(cli.url, commands)
    codes = sorted(result.returncode for result in results)
    assert codes == [0] * 20 + [1] * 10, [r.stderr for r in results if r.returncode not in (0, 1)]
    for result in results:
        assert "Traceback" not in result.stderr
        if result.returncode == 1:
            assert result.stderr.startswith("Error: source 'Promo' has 0 points of inventory")
    inventory = cli.json("sources", "inventory", "Promo")
    assert inventory["inventory"] == 0
    assert sum(h["change"] for h in inventory["history"]) == 0  # 20 initial, 20 takes of -1
    assert len(inventory["history"]) == 21
    assert inventory["status"] == "paused"


def test_parallel_creates_of_one_name_make_one_account(cli: Cli) -> None:
    names = ["Spendable", "SPENDABLE", "spendable", "Spendable", "sPendable", "Spendable"]
    results = run_workers(cli.url, [["accounts", "create", name] for name in names])
    assert sorted(result.returncode for result in results) == [0, 1, 1, 1, 1, 1], [
        result.stderr for result in results]
    for result in results:
        if result.returncode == 1:
            assert "already exists" in result.stderr and "Traceback" not in result.stderr
    assert len(cli.json("accounts", "list")) == 1


def test_parallel_unlinks_keep_one_account_per_source(cli: Cli) -> None:
    accounts = [f"Account {i}" for i in range(6)]
    for name in accounts:
        cli.ok("accounts", "create", name)
    cli.ok("sources", "create", "Shared")  # linked to all six
    results = run_workers(cli.url, [["sources", "edit", "Shared", "--unlink", name]
                                    for name in accounts])
    assert sorted(result.returncode for result in results) == [0] * 5 + [1]
    assert len(cli.json("sources", "show", "Shared")["accounts"]) == 1


def test_thirty_parallel_spends_never_overdraw(cli: Cli) -> None:
    cli.ok("accounts", "create", "Wallet", "--default", "--no-negative")
    cli.ok("sources", "create", "Base")
    cli.ok("issue", "u1", "200", "--source", "Base")
    results = run_workers(cli.url, [["spend", "u1", "10"]] * 30)
    codes = sorted(result.returncode for result in results)
    assert codes == [0] * 20 + [1] * 10, [r.stderr for r in results if r.returncode > 1]
    for result in results:
        assert "Traceback" not in result.stderr
        if result.returncode == 1:
            assert "insufficient points" in result.stderr
    assert cli.json("balance", "u1")["accounts"][0]["balance"] == 0
    cli.ok("verify")


def test_parallel_issues_never_overdraw_a_limited_source(cli: Cli) -> None:
    cli.ok("accounts", "create", "Partner")
    cli.ok("sources", "create", "Ride", "--inventory", "100")
    results = run_workers(cli.url, [["issue", f"u{i % 4}", "7", "--source", "Ride"]
                                    for i in range(20)])
    codes = sorted(result.returncode for result in results)
    assert codes == [0] * 14 + [1] * 6, [r.stderr for r in results]
    source = cli.json("sources", "show", "Ride")
    assert source["inventory"] == 2 and source["status"] == "active"
    cli.ok("verify")


def test_parallel_transfers_both_ways_do_not_deadlock(cli: Cli) -> None:
    cli.ok("accounts", "create", "Wallet", "--default")
    cli.ok("sources", "create", "Base")
    cli.ok("issue", "alice", "1000", "--source", "Base")
    cli.ok("issue", "bob", "1000", "--source", "Base")
    commands = []
    for i in range(24):
        giver, taker = ("alice", "bob") if i % 2 else ("bob", "alice")
        commands.append(["transfer", giver, "5", "--from", "Wallet", "--to", "Wallet",
                         "--to-user", taker])
    results = run_workers(cli.url, commands)
    assert [result.returncode for result in results] == [0] * 24, [r.stderr for r in results]
    total = sum(cli.json("balance", user)["accounts"][0]["balance"] for user in ("alice", "bob"))
    assert total == 2000
    cli.ok("verify")


def test_parallel_replays_of_one_idempotency_key_apply_once(cli: Cli) -> None:
    cli.ok("accounts", "create", "Wallet", "--default")
    cli.ok("sources", "create", "Base")
    results = run_workers(cli.url, [["issue", "u1", "10", "--source", "Base",
                                     "--idempotency-key", "batch-7-line-1"]] * 6)
    assert [result.returncode for result in results] == [0] * 6, [r.stderr for r in results]
    assert sum("Replayed" in result.stderr for result in results) == 5
    assert cli.json("balance", "u1")["accounts"][0]["balance"] == 10


# --- restrictions: parallel issues never exceed a limit together -----------------

def _balances(cli: Cli, users: list[str]) -> int:
    total = 0
    for user in users:
        result = cli("balance", user, "--format", "json")
        if result.exit_code == 3:  # never received anything
            continue
        total += sum(account["balance"] for account in json.loads(result.stdout)["accounts"])
    return total


def test_parallel_issues_never_exceed_a_system_limit(cli: Cli) -> None:
    cli.ok("accounts", "create", "Partner", "--default")
    cli.ok("sources", "create", "Ride Share")
    cli.ok("restrictions", "add", "Ride Share", "--max-points", "500", "--per", "1d")
    users = [f"rider-{i}" for i in range(20)]
    results = run_workers(cli.url, [["issue", user, "40", "--source", "Ride Share", "--clamp"]
                                    for user in users])
    codes = sorted(result.returncode for result in results)
    # twelve whole issues of 40, one clamped to 20, seven refused with nothing left
    assert codes == [0] * 13 + [1] * 7, [r.stderr for r in results if r.returncode > 1]
    for result in results:
        assert "Traceback" not in result.stderr
        if result.returncode == 1:
            assert "has 500 used, 0 more allowed" in result.stderr
    assert sum("clamped from 40" in result.stderr for result in results) == 1
    assert _balances(cli, users) == 500
    assert cli.json("restrictions", "list")[0]["used"] == 500  # type: ignore[index]


def test_parallel_issues_to_one_customer_through_two_accounts_hold_a_per_customer_limit(
        cli: Cli) -> None:
    # two target accounts: the balance-row lock alone would not serialise these issues
    cli.ok("accounts", "create", "Core")
    cli.ok("accounts", "create", "Partner")
    cli.ok("sources", "create", "Ride Share")
    cli.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d",
           "--per-customer")
    commands = [["issue", "cust-1", "30", "--source", "Ride Share", "--account",
                 ("Core", "Partner")[i % 2], "--clamp"] for i in range(12)]
    commands += [["issue", f"other-{i}", "100", "--source", "Ride Share", "--account", "Core"]
                 for i in range(4)]
    results = run_workers(cli.url, commands)
    assert all(result.returncode in (0, 1) for result in results), [
        (r.returncode, r.stderr) for r in results]
    assert [r.returncode for r in results[12:]] == [0] * 4  # other customers are unaffected
    assert sorted(r.returncode for r in results[:12]) == [0] * 4 + [1] * 8
    assert _balances(cli, ["cust-1"]) == 100


def test_parallel_batches_keep_inventory_restrictions_and_keys_exact(
        cli: Cli, tmp_path: Path) -> None:
    cli.ok("accounts", "create", "Core", "--default")
    cli.ok("sources", "create", "Promo", "--inventory", "3000")
    cli.ok("restrictions", "add", "Promo", "--max-points", "100", "--per", "1d",
           "--per-customer")
    files = []
    for worker in range(4):
        # 40 customers shared by every file; the same keys in every file
        ops = [{"op": "issue", "user": f"c{i % 40}", "points": 30, "source": "Promo",
                "clamp": True, "idempotency_key": f"promo-{worker % 2}-{i}"}
               for i in range(200)]
        path = tmp_path / f"part-{worker}.jsonl"
        path.write_text("".join(json.dumps(op) + "\n" for op in ops))
        files.append(["batch", str(path), "--chunk-size", "25"])
    results = run_workers(cli.url, files)
    for result in results:
        assert result.returncode in (0, 1), result.stderr
        assert "Traceback" not in result.stderr
    # each customer gets at most 100 a day, and 40 customers * 100 > 3000 of inventory
    issued = _balances(cli, [f"c{i}" for i in range(40)])
    assert issued == 3000
    assert cli.json("sources", "show", "Promo")["inventory"] == 0  # type: ignore[index]
    assert cli("verify").exit_code == 0
