"""Transfer limits: an account may set the fewest and the most points per transfer from one
member to another, and the most one sending member may transfer per calendar year; refusals
say what is still allowed; the limits hold in a batch and under concurrency. Through the
command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Cli, snapshot
from tests.test_concurrency import run_workers
from tests.test_expiry import at, ok, verify_clean

T0 = "2026-03-01T00:00:00Z"


def refused(cli: Cli, when: str, *args: str) -> str:
    before = snapshot(cli.url)
    result = cli(*args, env=at(when))
    assert result.exit_code == 1, (args, result.error)
    assert len(result.error.splitlines()) == 1 and result.stdout == ""
    assert snapshot(cli.url) == before  # nothing changed
    return result.error


def give(user: str, points: int, to: str) -> list[str]:
    return ["transfer", user, str(points), "--from", "Core", "--to", "Core", "--to-user", to]


@pytest.fixture
def core(cli: Cli) -> Cli:
    ok(cli, T0, "accounts", "create", "Core", "--default", "--transfer-min", "10",
       "--transfer-max", "100", "--transfer-yearly-max", "150")
    ok(cli, T0, "accounts", "create", "Savings")
    ok(cli, T0, "sources", "create", "Base", "--link", "Core")
    ok(cli, T0, "issue", "ann", "1000", "--source", "Base")
    return cli


def test_per_transfer_and_yearly_limits(core: Cli) -> None:
    cli = core
    shown = ok(cli, T0, "accounts", "show", "Core")
    assert (shown["transfer_min"], shown["transfer_max"], shown["transfer_yearly_max"]) == (
        10, 100, 150)
    limits = ("Error: ann may transfer to another member out of 'Core' at least 10; at most "
              "100 points a transfer; at most 150 a calendar year ")
    assert refused(cli, T0, *give("ann", 5, "bob")) == (
        limits + "(0 transferred in 2026): 5 asked, from 10 to 100 points now")
    assert refused(cli, T0, *give("ann", 101, "bob")) == (
        limits + "(0 transferred in 2026): 101 asked, from 10 to 100 points now")
    # between a member's own accounts: no limits
    ok(cli, T0, "transfer", "ann", "300", "--from", "Core", "--to", "Savings")
    ok(cli, "2026-03-02T00:00:00Z", *give("ann", 100, "bob"))
    assert refused(cli, "2026-03-03T00:00:00Z", *give("ann", 60, "cy")) == (
        limits + "(100 transferred in 2026): 60 asked, from 10 to 50 points now")
    ok(cli, "2026-03-03T00:00:00Z", *give("ann", 45, "cy"))
    # 5 left this year is below the minimum of 10: nothing more this year
    assert refused(cli, "2026-12-31T00:00:00Z", *give("ann", 5, "cy")) == (
        limits + "(145 transferred in 2026): 5 asked, nothing more this year")
    # bob's own allowance is his: what he received does not count, what he sends does
    ok(cli, "2026-03-04T00:00:00Z", *give("bob", 100, "ann"))
    # a new calendar year of the program time zone starts the count again
    ok(cli, "2026-06-15T12:00:00Z", "config", "set", "timezone", "America/New_York")
    late = "2027-01-01T04:00:00Z"  # still 31 December in New York
    assert "in 2026" in refused(cli, late, *give("ann", 10, "cy"))
    ok(cli, "2027-01-01T06:00:00Z", *give("ann", 100, "cy"))
    # a transfer dated back into 2026 counts against 2026
    backdated = cli(*give("ann", 10, "dan"), "--at", "2026-12-30T12:00:00Z",
                    env=at("2027-01-02T00:00:00Z"))
    assert backdated.exit_code == 1 and "in 2026" in backdated.error
    verify_clean(cli)


def test_a_batch_counts_its_own_transfers(core: Cli, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = [{"op": "transfer", "user": "ann", "points": 100, "account": "Core",
              "to_account": "Core", "to_user": f"u{n}"} for n in range(3)]
    result = core("batch", "-", "--input-format", "jsonl",
                  input="".join(json.dumps(line) + "\n" for line in lines), env=at(T0))
    assert result.exit_code == 1  # the second and third would pass 150
    rejected = (tmp_path / "stdin.rejects.jsonl").read_text().splitlines()
    assert len(rejected) == 2
    assert ["(100 transferred in 2026): 100 asked, from 10 to 50 points now" in line
            for line in rejected] == [True, True]  # a refused line counts nothing
    assert ok(core, T0, "balance", "u0")["accounts"][0]["balance"] == 100


def test_settings_and_bad_input(cli: Cli, tmp_path: Path) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default")
    before = snapshot(cli.url)
    for args, error in [
        (["accounts", "edit", "Core", "--transfer-min", "0"], "Error: --transfer-min must be"),
        (["accounts", "edit", "Core", "--transfer-yearly-max", "-1"],
         "Error: --transfer-yearly-max must be"),
        (["accounts", "edit", "Core", "--transfer-min", "50", "--transfer-max", "10"],
         "Error: account 'Core': the transfer minimum (50) is above the maximum (10)"),
        (["accounts", "edit", "Core", "--transfer-max", "5", "--no-transfer-max"],
         "Error: --transfer-max and its --no- form cannot be used together"),
    ]:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.error)
        assert result.error.startswith(error), (args, result.error)
    assert snapshot(cli.url) == before
    ok(cli, T0, "accounts", "edit", "Core", "--transfer-max", "20")
    assert ok(cli, T0, "accounts", "edit", "Core", "--no-transfer-max")["transfer_max"] is None
    program = tmp_path / "p.toml"
    program.write_text('[[accounts]]\nname = "Core"\ndefault = true\ntransfer_min = 5\n'
                       'transfer_max = 500\ntransfer_yearly_max = 2000\n')
    ok(cli, T0, "config", "apply", str(program))
    exported = cli.ok("config", "export").stdout
    assert "transfer_min = 5\ntransfer_max = 500\ntransfer_yearly_max = 2000\n" in exported
    program.write_text('[[accounts]]\nname = "Core"\ntransfer_min = 5\ntransfer_max = 4\n')
    bad = cli("config", "apply", str(program))
    assert bad.exit_code == 2 and "accounts[0].transfer_min: the transfer minimum" in bad.error


def test_concurrent_transfers_keep_the_yearly_limit(core: Cli) -> None:
    """Eight processes each transfer 30 of ann's points to another member at once, against a
    yearly maximum of 150: five succeed."""
    results = run_workers(core.url, [give("ann", 30, f"w{n}") for n in range(8)])
    codes = sorted(r.returncode for r in results)
    assert codes == [0] * 5 + [1] * 3, [r.stderr for r in results]
    received = sum(ok(core, T0, "balance", f"w{n}")["accounts"][0]["balance"]
                   for n in range(8) if any(r.returncode == 0 and f"w{n}" in r.args
                                            for r in results))
    assert received == 150
    verify_clean(core)
