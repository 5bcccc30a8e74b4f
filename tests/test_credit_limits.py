"""Credit limits: an account that allows negative balances may cap what a customer owes
(``--max-debt N``); a spend, a return of spent points or a deduction that would owe more is
refused, saying what is allowed, or clamped with ``--clamp``. Through the command line, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Cli, snapshot
from tests.test_concurrency import run_workers
from tests.test_expiry import at, ok, verify_clean

T0 = "2026-03-01T00:00:00Z"


def debt(cli: Cli, user: str) -> int:
    found = ok(cli, T0, "balance", user)["accounts"]
    return sum(max(0, -a["balance"]) for a in found)


def refused(cli: Cli, *args: str) -> str:
    before = snapshot(cli.url)
    result = cli(*args, env=at(T0))
    assert result.exit_code == 1, (args, result.error)
    assert len(result.error.splitlines()) == 1 and result.stdout == ""
    assert snapshot(cli.url) == before  # nothing changed
    return result.error


@pytest.fixture
def core(cli: Cli) -> Cli:
    ok(cli, T0, "accounts", "create", "Core", "--default", "--max-debt", "100")
    ok(cli, T0, "sources", "create", "Base")
    return cli


def test_a_spend_never_takes_debt_past_the_max(core: Cli) -> None:
    cli = core
    assert ok(cli, T0, "accounts", "show", "Core")["max_debt"] == 100
    ok(cli, T0, "spend", "ann", "30")
    assert debt(cli, "ann") == 30
    assert refused(cli, "spend", "ann", "80") == (
        "Error: ann would owe 110 points in 'Core', above its max debt of 100 (owing 30 now); "
        "at most 70 of the 80 points can be taken; --clamp spends the 70 allowed")
    done = cli.ok("spend", "ann", "80", "--clamp", "--format", "json", env=at(T0))
    found = json.loads(done.stdout)
    assert (found["points"], found["requested"], found["clamped"], found["debt_created"]) == (
        70, 80, True, 70)
    assert "clamped from 80 (the max debt)" in done.error
    assert debt(cli, "ann") == 100
    # at the limit nothing more can be spent, clamped or not
    for args in (["spend", "ann", "1"], ["spend", "ann", "1", "--clamp"]):
        assert refused(cli, *args) == (
            "Error: ann would owe 101 points in 'Core', above its max debt of 100 (owing 100 "
            "now); at most 0 of the 1 points can be taken")
    # points the customer has are spent first; only the shortfall counts against the max
    ok(cli, T0, "issue", "bob", "50", "--source", "Base")
    assert ok(cli, T0, "spend", "bob", "150")["debt_created"] == 100
    assert ok(cli, T0, "balance", "bob")["accounts"][0]["balance"] == -100
    # an issue repays debt first: room again
    ok(cli, T0, "issue", "ann", "40", "--source", "Base")
    assert ok(cli, T0, "spend", "ann", "40")["debt_created"] == 40
    verify_clean(cli)


def test_a_return_of_spent_points_and_a_deduction_keep_to_the_max(core: Cli) -> None:
    cli = core
    issued = ok(cli, T0, "issue", "cy", "60", "--source", "Base")
    ok(cli, T0, "spend", "cy", "60")
    ok(cli, T0, "spend", "cy", "50")  # owes 50
    assert refused(cli, "reverse", "--entry", str(issued["entry"])) == (
        "Error: cy would owe 110 points in 'Core', above its max debt of 100 (owing 50 now); "
        "at most 50 of the 60 points can be taken; --clamp reverses the 50 allowed")
    done = ok(cli, T0, "reverse", "--entry", str(issued["entry"]), "--clamp")
    assert (done["points"], done["requested"], done["clamped"]) == (50, 60, True)
    assert done["reversals"][0]["debt_created"] == 50 and debt(cli, "cy") == 100
    # the 10 left can still be reversed once the debt is repaid
    ok(cli, T0, "issue", "cy", "10", "--source", "Base")
    assert ok(cli, T0, "reverse", "--entry", str(issued["entry"]))["points"] == 10
    assert refused(cli, "adjust", "cy", "-5", "--account", "Core", "--reason", "fix") == (
        "Error: cy would owe 105 points in 'Core', above its max debt of 100 (owing 100 now); "
        "at most 0 of the 5 points can be taken")
    verify_clean(cli)


def test_a_reversal_by_reference_is_checked_whole(core: Cli) -> None:
    """Several issues under one reference: --clamp reverses what may be owed over all of
    them; an order's spend reversed with its issue cancels the debt it made."""
    cli = core
    ok(cli, T0, "issue", "cy", "50", "--source", "Base", "--reference-id", "R")
    ok(cli, T0, "issue", "cy", "50", "--source", "Base", "--reference-id", "R")
    ok(cli, T0, "spend", "cy", "100")
    ok(cli, T0, "spend", "cy", "80")  # owes 80
    assert refused(cli, "reverse", "--reference-id", "R") == (
        "Error: cy would owe 180 points in 'Core', above its max debt of 100 (owing 80 now); "
        "at most 20 of the 100 points can be taken; --clamp reverses the 20 allowed")
    done = ok(cli, T0, "reverse", "--reference-id", "R", "--clamp")
    assert (done["points"], done["requested"], done["clamped"]) == (20, 100, True)
    assert [r["points"] for r in done["reversals"]] == [20]  # the newest issue
    assert debt(cli, "cy") == 100
    verify_clean(cli)
    # an order: a spend, then an issue of its bonus; returning it all leaves less debt
    ok(cli, T0, "accounts", "edit", "Core", "--max-debt", "50")
    ok(cli, T0, "spend", "ann", "50", "--reference-id", "order")
    ok(cli, T0, "issue", "ann", "20", "--source", "Base", "--reference-id", "order")
    ok(cli, T0, "spend", "ann", "10")  # ann owes 40
    back = ok(cli, T0, "reverse", "--reference-id", "order")
    assert (back["points"], back["clamped"]) == (70, False)
    # the 20 became debt (60 for a moment), the spend's 50 cancelled it: the 10
    # spent since are still owed
    assert debt(cli, "ann") == 10
    verify_clean(cli)


def test_a_batch_keeps_to_the_max_and_clamps_when_asked(core: Cli, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cli = core
    monkeypatch.chdir(tmp_path)
    lines = [{"op": "spend", "user": "dan", "points": 60},
             {"op": "spend", "user": "dan", "points": 60},
             {"op": "spend", "user": "dan", "points": 60, "clamp": True}]
    result = cli("batch", "-", "--input-format", "jsonl", "--format", "json",
                 input="".join(json.dumps(line) + "\n" for line in lines), env=at(T0))
    assert result.exit_code == 1  # one line refused
    assert debt(cli, "dan") == 100  # 60, then (the second refused) 40 of 60 clamped
    rejected = (tmp_path / "stdin.rejects.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and ("dan would owe 120 points in 'Core', above its max debt of "
                                   "100 (owing 60 now); at most 40 of the 60 points") \
        in json.loads(rejected[0])["error"]
    # clamp belongs to the ops that take it: elsewhere the line is malformed
    bad = cli("batch", "-", "--input-format", "jsonl", env=at(T0), input=json.dumps(
        {"op": "adjust", "user": "dan", "points": -5, "account": "Core", "reason": "x",
         "clamp": True}) + "\n")
    assert bad.exit_code != 0 and "'clamp' applies to issue, spend, reverse, not to adjust" \
        in bad.error + (tmp_path / "stdin.rejects.jsonl").read_text()


def test_settings_and_bad_input(cli: Cli, tmp_path: Path) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default")
    ok(cli, T0, "spend", "ann", "500")  # no max debt: today's behaviour
    assert ok(cli, T0, "accounts", "show", "Core")["max_debt"] is None
    before = snapshot(cli.url)
    for args, error in [
        (["accounts", "create", "X", "--max-debt", "0"], "Error: --max-debt must be"),
        (["accounts", "create", "X", "--max-debt", "-5"], "Error: --max-debt must be"),
        (["accounts", "create", "X", "--no-negative", "--max-debt", "10"],
         "Error: account 'X': a max debt needs negative balances allowed"),
        (["accounts", "edit", "Core", "--max-debt", "5", "--no-max-debt"],
         "Error: --max-debt and its --no- form cannot be used together"),
    ]:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.error)
        assert result.error.startswith(error), (args, result.error)
    assert snapshot(cli.url) == before
    # a limit below what is owed already: the debt stays, no new debt
    assert ok(cli, T0, "accounts", "edit", "Core", "--max-debt", "100")["max_debt"] == 100
    assert refused(cli, "spend", "ann", "1").startswith(
        "Error: ann would owe 501 points in 'Core', above its max debt of 100")
    off = cli("accounts", "edit", "Core", "--no-negative")  # (ann owes 500: still bad input)
    assert off.exit_code == 2 and off.error.startswith(
        "Error: account 'Core': a max debt needs negative balances allowed")
    assert ok(cli, T0, "accounts", "edit", "Core", "--no-max-debt")["max_debt"] is None
    assert refused(cli, "accounts", "edit", "Core", "--no-negative") == (
        "Error: 1 users owe points (debt) in account 'Core'; negative balances cannot be "
        "turned off until the debts are repaid")
    ok(cli, T0, "spend", "ann", "1")
    # in the program file
    program = tmp_path / "p.toml"
    program.write_text('[[accounts]]\nname = "Core"\ndefault = true\nmax_debt = 250\n')
    ok(cli, T0, "config", "apply", str(program))
    assert "max_debt = 250" in cli.ok("config", "export").stdout
    program.write_text('[[accounts]]\nname = "Core"\nallow_negative = false\nmax_debt = 250\n')
    bad = cli("config", "apply", str(program))
    assert bad.exit_code == 2 and "accounts[0].max_debt: a max debt needs negative balances" \
        in bad.error


def test_concurrent_spends_never_owe_past_the_max(core: Cli) -> None:
    """Eight processes spend 30 each at once from an empty balance with a max debt of 100:
    three succeed, five are refused, the debt is 90."""
    results = run_workers(core.url, [["spend", "eve", "30"]] * 8)
    codes = sorted(r.returncode for r in results)
    assert codes == [0] * 3 + [1] * 5, [r.stderr for r in results]
    assert debt(core, "eve") == 90
    verify_clean(core)


def test_the_change_history_records_the_limit(core: Cli) -> None:
    ok(core, T0, "accounts", "edit", "Core", "--max-debt", "40")
    rows: list[dict[str, Any]] = ok(core, T0, "report", "audit", "--type", "change")
    assert rows[0]["note"] == "account 'Core' edit: max_debt: 100 -> 40"
