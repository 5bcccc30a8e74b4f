"""Expiration: every policy with exact numbers, schedules across DST, late runs, dry
runs, preview, status, reactivation and bad input, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url
from tests.helpers import Cli, snapshot
from tests.test_batch import ledger_state


def at(moment: str) -> dict[str, str]:
    return {"POINTCTL_NOW": moment}


def ok(cli: Cli, when: str, *args: str) -> Any:
    """Run a command at ``when``; the JSON document it prints (or None)."""
    result = cli.ok(*args, "--format", "json", env=at(when))
    return json.loads(result.stdout) if result.stdout.strip() else None


def run(cli: Cli, when: str, *extra: str) -> dict[str, dict[str, Any]]:
    rows = ok(cli, when, "expire", "run", *extra) or []
    return {row["account"]: row for row in rows}


def balance(cli: Cli, user: str, when: str) -> dict[str, int]:
    return {row["account"]: row["balance"]
            for row in ok(cli, when, "balance", user)["accounts"]}


def query(url: str, sql: str) -> list[tuple]:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def verify_clean(cli: Cli) -> None:
    result = cli("verify")
    assert result.exit_code == 0, result.stdout + result.stderr


def audit_of(cli: Cli, user: str, *types: str) -> list[dict[str, Any]]:
    args = ["report", "audit", "--user", user]
    for kind in types:
        args += ["--type", kind]
    return list(reversed(json.loads(cli.ok(*args, "--format", "json").stdout)))


# --- rolling ----------------------------------------------------------------------------------

def test_escrow_rolls_over_into_the_spendable_account_after_30_days(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Spendable", "--default", "--no-negative")
    ok(cli, t0, "accounts", "create", "Purchase Escrow", "--no-negative")
    ok(cli, t0, "sources", "create", "Base", "--link", "Purchase Escrow")
    ok(cli, t0, "accounts", "expiration", "Purchase Escrow", "--rolling", "--older-than",
       "30d", "--rollover-to", "Spendable")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "100", "--source", "Base")
    ok(cli, "2026-03-05T10:00:00Z", "issue", "ann", "40", "--source", "Base")
    ok(cli, "2026-03-02T10:00:00Z", "issue", "bob", "7", "--source", "Base")
    # the return window is still open: nothing can be spent
    assert cli("spend", "ann", "1", env=at("2026-03-30T12:00:00Z")).exit_code == 1
    summary = run(cli, "2026-03-31T00:00:00Z")["Purchase Escrow"]
    assert (summary["evaluations"], summary["rolled_over"], summary["expired"]) == (30, 0, 0)
    summary = run(cli, "2026-04-01T00:00:00Z")["Purchase Escrow"]
    # 04-01 00:00 less 30 days is 03-02 00:00: ann's first purchase (03-01 10:00) rolls
    assert (summary["evaluations"], summary["users"], summary["rolled_over"]) == (1, 1, 100)
    assert balance(cli, "ann", "2026-04-01T00:00:00Z") == {"Spendable": 100,
                                                           "Purchase Escrow": 40}
    summary = run(cli, "2026-04-05T00:00:00Z")["Purchase Escrow"]
    assert (summary["evaluations"], summary["users"], summary["rolled_over"]) == (4, 2, 47)
    assert balance(cli, "ann", "2026-04-05T00:00:00Z") == {"Spendable": 140,
                                                           "Purchase Escrow": 0}
    ok(cli, "2026-04-06T00:00:00Z", "spend", "ann", "130")
    rolled = audit_of(cli, "ann", "rollover")
    assert [(r["account"], r["source"], r["modification"], r["time"]) for r in rolled] == [
        ("Purchase Escrow", "Base", -100, "2026-04-01T00:00:00Z"),
        ("Spendable", "Base", 100, "2026-04-01T00:00:00Z"),
        ("Purchase Escrow", "Base", -40, "2026-04-05T00:00:00Z"),
        ("Spendable", "Base", 40, "2026-04-05T00:00:00Z")]
    # the audit rows say the escrowed points expired out of escrow (into Spendable, where the
    # rollover's credit rows hold them); the lots moved them, the source still owes them
    issues = audit_of(cli, "ann", "issue")
    assert [(r["amount_spent"], r["amount_expired"]) for r in issues] == [(0, 100), (0, 40)]
    assert query(cli.url, "SELECT SUM(remaining), SUM(expired) FROM lot") == [(17, 0)]
    verify_clean(cli)


def test_a_rollover_credit_repays_debt_and_ignores_max_balance(cli: Cli) -> None:
    """Rolled-over points are credited like every credit (debt first, the account's pending
    delay), but never refused: they have left the expired lot."""
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Spendable", "--default", "--max-balance", "50",
       "--pending-for", "1d")
    ok(cli, t0, "accounts", "create", "Escrow")
    ok(cli, t0, "sources", "create", "Base", "--link", "Escrow", "--link", "Spendable")
    ok(cli, t0, "accounts", "expiration", "Escrow", "--rolling", "--older-than", "10d",
       "--rollover-to", "Spendable")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "100", "--source", "Base",
       "--account", "Escrow")
    ok(cli, "2026-03-02T10:00:00Z", "spend", "ann", "30")  # no points yet: 30 of debt
    summary = run(cli, "2026-03-12T00:00:00Z")["Escrow"]
    assert summary["rolled_over"] == 100
    rows = query(cli.url, "SELECT l.original, l.spent, l.remaining, l.available_at, b.debt "
                          "FROM lot l JOIN balance b ON b.user_id = l.user_id AND "
                          "b.account_id = l.account_id WHERE l.account_id = 1")
    assert [(r[0], r[1], r[2], str(r[3])[:19], r[4]) for r in rows] == [
        (100, 30, 70, "2026-03-13 00:00:00", 0)]
    assert query(cli.url, "SELECT kind, points FROM draw WHERE kind = 'repay'") == [
        ("repay", 30)]
    # 70 in a max-balance-50 account: the rollover is not refused
    assert balance(cli, "ann", "2026-03-13T00:00:00Z") == {"Spendable": 70, "Escrow": 0}
    verify_clean(cli)


def test_rolling_expiry_takes_only_the_unspent_remainder(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d")
    ok(cli, "2026-03-01T08:00:00Z", "issue", "ann", "100", "--source", "Base")
    ok(cli, "2026-03-11T08:00:00Z", "issue", "ann", "50", "--source", "Base")
    ok(cli, "2026-03-06T08:00:00Z", "spend", "ann", "30")
    assert run(cli, "2026-04-01T00:00:00Z")["Core"]["expired"] == 70
    assert balance(cli, "ann", "2026-04-01T00:00:00Z") == {"Core": 50}
    ok(cli, "2026-04-02T08:00:00Z", "spend", "ann", "45")
    assert run(cli, "2026-04-20T00:00:00Z")["Core"]["expired"] == 5
    issues = audit_of(cli, "ann", "issue")
    assert [(r["modification"], r["amount_spent"], r["amount_expired"]) for r in issues] == [
        (100, 30, 70), (50, 45, 5)]
    expirations = audit_of(cli, "ann", "expiration")
    assert [(r["modification"], r["time"]) for r in expirations] == [
        (-70, "2026-04-01T00:00:00Z"), (-5, "2026-04-11T00:00:00Z")]
    assert balance(cli, "ann", "2026-04-20T00:00:00Z") == {"Core": 0}
    verify_clean(cli)


@pytest.mark.parametrize(("snap", "policy_from", "before", "expires_at"), [
    # created 01-15 10:00, + 30 days = 02-14 10:00, then the next first of ...
    ("month", "2026-02-20T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-01T00:00:00Z"),
    ("quarter", "2026-03-25T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-01T00:00:00Z"),
    ("year", "2026-12-20T00:00:00Z", "2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z"),
    # ann enrolled 2025-06-10 (her first entry): the next anniversary after 02-14
    ("anniversary", "2026-06-01T00:00:00Z", "2026-06-09T00:00:00Z", "2026-06-10T00:00:00Z"),
])
def test_snap_to_moves_expiry_to_the_next_period_start(cli: Cli, snap: str, policy_from: str,
                                                       before: str, expires_at: str) -> None:
    t0 = "2025-06-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "create", "Tier", "--qualifying")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, "2025-06-10T15:00:00Z", "issue", "ann", "1", "--source", "Base", "--account", "Tier")
    ok(cli, "2026-01-15T10:00:00Z", "issue", "ann", "100", "--source", "Base",
       "--account", "Core")
    if snap == "month":  # + 30 days = 03-15: expires at the first of the month after
        ok(cli, "2026-02-13T10:00:00Z", "issue", "ann", "10", "--source", "Base",
           "--account", "Core")
    ok(cli, "2026-01-15T10:00:00Z", "issue", "bob", "5", "--source", "Base",
       "--account", "Core")  # bob enrolled 01-15: his anniversary is next year
    ok(cli, policy_from, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d",
       "--snap-to", snap)
    assert run(cli, before)["Core"]["expired"] == 0
    summary = run(cli, expires_at)["Core"]
    assert (summary["evaluations"], summary["expired"]) == (1, 100 if snap == "anniversary"
                                                            else 105)
    expirations = audit_of(cli, "ann", "expiration")
    assert [(r["modification"], r["time"]) for r in expirations] == [(-100, expires_at)]
    if snap == "month":
        assert run(cli, "2026-03-31T00:00:00Z")["Core"]["expired"] == 0
        assert run(cli, "2026-04-01T00:00:00Z")["Core"]["expired"] == 10
    if snap == "anniversary":
        assert balance(cli, "bob", expires_at) == {"Core": 5}
    verify_clean(cli)


def test_fixed_date_with_a_minimum_age(cli: Cli) -> None:
    ok(cli, "2026-08-01T00:00:00Z", "accounts", "create", "Core", "--default")
    ok(cli, "2026-08-01T00:00:00Z", "sources", "create", "Base")
    ok(cli, "2026-09-01T00:00:00Z", "issue", "ann", "100", "--source", "Base")  # 121 days old
    ok(cli, "2026-11-01T00:00:00Z", "issue", "ann", "60", "--source", "Base")   # 60 days old
    ok(cli, "2026-12-01T00:00:00Z", "accounts", "expiration", "Core", "--fixed-date", "12-31",
       "--min-age", "90d")
    assert run(cli, "2026-12-30T23:59:00Z")["Core"]["expired"] == 0
    summary = run(cli, "2026-12-31T00:00:00Z")["Core"]
    assert (summary["evaluations"], summary["expired"]) == (1, 100)
    ok(cli, "2027-01-01T00:00:00Z", "accounts", "expiration", "Core", "--fixed-date", "12-31",
       "--min-age", "90d", "--every", "yearly on 12-31")
    assert run(cli, "2027-12-30T00:00:00Z") == {}
    summary = run(cli, "2027-12-31T00:00:00Z")["Core"]
    assert (summary["evaluations"], summary["expired"]) == (1, 60)
    verify_clean(cli)


# --- inactivity -------------------------------------------------------------------------------

def test_inactivity_expires_half_at_each_evaluation_until_a_login(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "issue", "ann", "60", "--source", "Base")
    ok(cli, t0, "issue", "ann", "41", "--source", "Base")
    ok(cli, t0, "issue", "bob", "10", "--source", "Base")
    ok(cli, "2026-03-20T00:00:00Z", "activity", "bob", "newsletter")  # not an activity here
    ok(cli, t0, "accounts", "expiration", "Core", "--inactivity", "--inactive-for", "30d",
       "--percent", "50", "--activity", "issue,spend", "--activity", "login")
    assert run(cli, "2026-03-30T00:00:00Z")["Core"]["expired"] == 0
    # 03-31: inactive since 03-01 = 03-31 - 30 days: ann 101 -> 50 expire, bob 10 -> 5
    assert run(cli, "2026-03-31T00:00:00Z")["Core"]["expired"] == 55
    # 04-01: again, half of what is left (51 -> 25, 5 -> 2)
    assert run(cli, "2026-04-01T00:00:00Z")["Core"]["expired"] == 27
    assert balance(cli, "ann", "2026-04-01T00:00:00Z") == {"Core": 26}
    ok(cli, "2026-04-01T12:00:00Z", "activity", "ann", "login")
    # ann is active again until 05-01 12:00; bob keeps losing half (3 -> 2 -> 1, then 0 of 1)
    summary = run(cli, "2026-05-01T00:00:00Z")["Core"]
    assert (summary["evaluations"], summary["expired"]) == (30, 2)
    assert balance(cli, "ann", "2026-05-01T00:00:00Z") == {"Core": 26}
    assert run(cli, "2026-05-02T00:00:00Z")["Core"]["expired"] == 13
    issues = audit_of(cli, "ann", "issue")
    # oldest lots first: the 60-point lot goes first, then the 41-point one
    assert [(r["modification"], r["amount_expired"]) for r in issues] == [(60, 60), (41, 28)]
    assert balance(cli, "ann", "2026-05-02T00:00:00Z") == {"Core": 13}
    verify_clean(cli)


# --- late runs, DST, concurrency ---------------------------------------------------------------

def _late_scenario(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "create", "Escrow")
    ok(cli, t0, "sources", "create", "Base")
    for day in range(1, 11):
        ok(cli, f"2026-03-{day:02d}T06:00:00Z", "issue", "ann", str(10 * day), "--source",
           "Base", "--account", "Escrow")
        ok(cli, f"2026-03-{day:02d}T07:00:00Z", "issue", f"u{day}", "33", "--source", "Base",
           "--account", "Core")
    ok(cli, "2026-03-10T12:00:00Z", "accounts", "expiration", "Escrow", "--rolling",
       "--older-than", "5d", "--rollover-to", "Core")
    ok(cli, "2026-03-10T12:00:00Z", "accounts", "expiration", "Core", "--inactivity",
       "--inactive-for", "3d", "--percent", "10")


def test_a_run_ten_evaluations_late_equals_ten_punctual_runs(cli: Cli, twin_url: str) -> None:
    late = Cli(twin_url)
    _late_scenario(cli)
    _late_scenario(late)
    for day in range(11, 21):
        run(cli, f"2026-03-{day:02d}T00:00:00Z")
    summary = run(late, "2026-03-20T00:00:00Z")
    assert (summary["Escrow"]["evaluations"], summary["Core"]["evaluations"]) == (10, 10)
    punctual_state, late_state = ledger_state(cli.url), ledger_state(late.url)
    for state in (punctual_state, late_state):  # recorded_at says when the run happened
        state["entry"] = [row[:-1] for row in state["entry"]]
    assert late_state == punctual_state
    assert query(cli.url, "SELECT SUM(expired), SUM(moved) FROM lot") == \
        query(late.url, "SELECT SUM(expired), SUM(moved) FROM lot")
    assert query(late.url, "SELECT SUM(moved) FROM lot")[0][0] == 550
    verify_clean(late)


def test_daily_at_midnight_new_york_across_the_march_change(cli: Cli) -> None:
    t0 = "2026-03-05T12:00:00Z"
    ok(cli, t0, "config", "set", "timezone", "America/New_York")
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Base")
    # 00:00 in New York on 03-08 (EST, UTC-5), the night clocks go forward
    # (each issue recorded at the moment it is dated: a write is never dated ahead of now)
    ok(cli, "2026-03-08T05:00:00Z", "issue", "ann", "10", "--source", "Base", "--at",
       "2026-03-08T00:00:00")
    ok(cli, "2026-03-09T04:00:00Z", "issue", "ann", "20", "--source", "Base", "--at",
       "2026-03-09T00:00:00")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "1d")
    run(cli, "2026-03-11T12:00:00Z")
    rows = query(cli.url, "SELECT evaluated_at, expired FROM expiration_run ORDER BY 1")
    assert [(str(moment)[:16], expired) for moment, expired in rows] == [
        ("2026-03-06 05:00", 0), ("2026-03-07 05:00", 0), ("2026-03-08 05:00", 0),
        ("2026-03-09 04:00", 10),  # one calendar day after 03-08 00:00 EST is 00:00 EDT
        ("2026-03-10 04:00", 20), ("2026-03-11 04:00", 0)]
    status = ok(cli, "2026-03-11T12:00:00Z", "expire", "status")
    assert status[0]["next_due"] == "2026-03-12T04:00:00Z"
    assert status[0]["schedule"] == "daily (America/New_York)"


def test_every_n_weeks_counts_from_the_policy_start(cli: Cli) -> None:
    t0 = "2026-03-04T12:00:00Z"  # a Wednesday
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "1y",
       "--every", "every 2 weeks on monday at 03:30")
    run(cli, "2026-04-20T12:00:00Z")
    rows = query(cli.url, "SELECT evaluated_at FROM expiration_run ORDER BY 1")
    assert [str(row[0])[:16] for row in rows] == [
        "2026-03-09 03:30", "2026-03-23 03:30", "2026-04-06 03:30", "2026-04-20 03:30"]


def test_dry_run_and_preview_change_nothing(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "issue", "ann", "100", "--source", "Base")
    ok(cli, "2026-03-20T00:00:00Z", "issue", "bob", "30", "--source", "Base")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d")
    before = snapshot(cli.url)
    summary = run(cli, "2026-04-01T00:00:00Z", "--dry-run")["Core"]
    assert (summary["evaluations"], summary["expired"]) == (31, 100)
    preview = ok(cli, "2026-03-25T00:00:00Z", "expire", "preview", "--within", "30d")
    assert preview == [
        {"account": "Core", "user": "ann", "at": "2026-03-31T00:00:00Z", "expires": 100,
         "rolls_over": 0},
        {"account": "Core", "user": "bob", "at": "2026-04-19T00:00:00Z", "expires": 30,
         "rolls_over": 0}]
    mine = ok(cli, "2026-03-25T00:00:00Z", "expire", "preview", "--within", "10d",
              "--user", "bob")
    assert mine == []
    assert snapshot(cli.url) == before
    assert cli("expire", "preview", "--within", "10d", "--user", "nobody",
               env=at(t0)).exit_code == 3


def test_account_filters_are_repeatable(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    for name in ("Core", "Promo", "Bonus"):
        ok(cli, t0, "accounts", "create", name)
    ok(cli, t0, "sources", "create", "Base")
    for name in ("Core", "Promo", "Bonus"):
        ok(cli, t0, "issue", "ann", "10", "--source", "Base", "--account", name)
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d")
    ok(cli, t0, "accounts", "expiration", "Promo", "--rolling", "--older-than", "10d")
    when = "2026-04-15T00:00:00Z"
    status = ok(cli, when, "expire", "status", "-a", "promo", "--account", "Core")
    assert [row["account"] for row in status] == ["Core", "Promo"]
    preview = ok(cli, "2026-03-05T00:00:00Z", "expire", "preview", "--within", "40d",
                 "-a", "Promo", "-a", "Core")
    assert [(r["account"], r["expires"]) for r in preview] == [("Promo", 10), ("Core", 10)]
    before = snapshot(cli.url)
    refused = cli("expire", "run", "-a", "Core", "-a", "Bonus", env=at(when))
    assert refused.exit_code == 1
    assert "account 'Bonus' has no expiration policy" in refused.stderr
    assert snapshot(cli.url) == before
    assert set(run(cli, when, "--dry-run", "-a", "Core", "-a", "Promo")) == {"Core", "Promo"}
    assert set(run(cli, when, "-a", "Promo")) == {"Promo"}
    assert query(cli.url, "SELECT a.name, l.remaining FROM lot l JOIN account a "
                          "ON a.id = l.account_id ORDER BY a.id") == [
        ("Core", 10), ("Promo", 0), ("Bonus", 10)]  # Core's evaluations are still due


def test_two_runs_at_once_expire_each_lot_once(cli: Cli, tmp_path: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_concurrency import run_workers

    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "create", "Escrow")
    ok(cli, t0, "sources", "create", "Base")
    lines = []
    for n in range(400):
        lines.append(json.dumps({"op": "issue", "user": f"u{n % 50}", "points": 1 + n % 7,
                                 "source": "Base", "account": "Escrow" if n % 2 else "Core",
                                 "at": f"2026-03-{1 + n % 20:02d}T10:00:00Z"}))
    path = tmp_path / "ops.jsonl"
    path.write_text("\n".join(lines) + "\n")
    cli.ok("batch", str(path), env=at("2026-03-21T00:00:00Z"))
    ok(cli, t0, "accounts", "expiration", "Escrow", "--rolling", "--older-than", "10d",
       "--rollover-to", "Core")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "15d")
    total = query(cli.url, "SELECT SUM(original) FROM lot")[0][0]
    monkeypatch.setenv("POINTCTL_NOW", "2026-04-30T00:00:00Z")
    results = run_workers(cli.url, [["expire", "run", "--format", "json"]] * 4)
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    performed = [sum(row["evaluations"] for row in json.loads(r.stdout) or [])
                 for r in results]
    assert sum(performed) == 2 * 60  # 60 days of evaluations per account, each once
    assert query(cli.url, "SELECT COUNT(*) FROM expiration_run") == [(120,)]
    # every point issued was rolled over once or expired once, nothing twice
    assert query(cli.url, "SELECT SUM(remaining), SUM(expired) FROM lot") == [(0, total)]
    assert query(cli.url, "SELECT COUNT(*) FROM draw WHERE kind IN ('expire', 'rollover')") \
        == query(cli.url, "SELECT COUNT(*) FROM lot")
    verify_clean(cli)


# --- reactivation ------------------------------------------------------------------------------

def test_reactivation_restores_each_expired_point_once_within_the_window(cli: Cli) -> None:
    t0 = "2026-01-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "create", "Tier", "--qualifying")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "sources", "create", "Bonus")
    ok(cli, t0, "issue", "ann", "70", "--source", "Base", "--account", "Core")
    ok(cli, "2026-01-02T00:00:00Z", "issue", "ann", "30", "--source", "Bonus",
       "--account", "Core")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d")
    assert run(cli, "2026-02-10T00:00:00Z")["Core"]["expired"] == 100
    refused = cli("reactivate", "ann", "--account", "Core", env=at("2026-02-10T00:00:00Z"))
    assert refused.exit_code == 1 and "does not allow reactivation" in refused.error
    ok(cli, t0, "accounts", "reactivation", "Core", "--window", "6mo", "--min-points", "10")
    small = cli("reactivate", "ann", "--account", "Core", "--points", "5",
                env=at("2026-02-10T00:00:00Z"))
    assert small.exit_code == 1 and "at least 10 points" in small.error
    result = ok(cli, "2026-02-10T00:00:00Z", "reactivate", "ann", "--account", "Core",
                "--points", "40")
    assert (result["points"], result["left_to_reactivate"], result["balance"]) == (40, 60, 40)
    too_many = cli("reactivate", "ann", "--account", "Core", "--points", "61",
                   env=at("2026-02-11T00:00:00Z"))
    assert too_many.exit_code == 1 and "only 60 points" in too_many.error
    result = ok(cli, "2026-02-11T00:00:00Z", "reactivate", "ann", "--account", "Core")
    assert (result["points"], result["balance"]) == (60, 100)
    again = cli("reactivate", "ann", "--account", "Core", env=at("2026-02-12T00:00:00Z"))
    assert again.exit_code == 1 and "no points that expired" in again.error
    # the newest expirations came back first: Bonus (expired 02-02) before Base (02-01)
    back = query(cli.url, "SELECT s.name, SUM(l.original) FROM lot l JOIN entry e ON "
                 "e.id = l.entry_id JOIN source s ON s.id = l.source_id WHERE e.type = "
                 "'reactivation' GROUP BY s.name ORDER BY s.name")
    assert back == [("Base", 70), ("Bonus", 30)]
    # the issues' points did expire: the reactivations are credit rows of their own
    issues = audit_of(cli, "ann", "issue")
    assert [r["amount_expired"] for r in issues] == [70, 30]
    assert cli("accounts", "reactivation", "Tier", "--window", "1y").exit_code == 1
    assert cli("reactivate", "ann", "--account", "Tier").exit_code == 1
    verify_clean(cli)


def test_reactivation_window_closes(cli: Cli) -> None:
    t0 = "2026-01-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "issue", "ann", "70", "--source", "Base")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d")
    ok(cli, t0, "accounts", "reactivation", "Core", "--window", "2w")
    run(cli, "2026-02-01T00:00:00Z")
    late = cli("reactivate", "ann", "--account", "Core", env=at("2026-02-16T00:00:00Z"))
    assert late.exit_code == 1 and "within the last 2w" in late.error
    ok(cli, t0, "accounts", "reactivation", "Core", "--off")
    assert ok(cli, t0, "accounts", "reactivation", "Core", "--off")["changed"] is False


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "code", "words"), [
    (["accounts", "expiration", "Core"], 2, "choose exactly one"),
    (["accounts", "expiration", "Core", "--rolling", "--none"], 2, "choose exactly one"),
    (["accounts", "expiration", "Core", "--rolling"], 2, "needs --older-than"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "30m"], 2, "ambiguous"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "-3d"], 2, "greater"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "3d", "--snap-to",
      "week"], 2, "invalid --snap-to"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "3d", "--every",
      "hourly"], 2, "invalid schedule"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "3d", "--every",
      "monthly on 31"], 2, "monthly on last"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "3d", "--every",
      "0 0 31 2 *"], 2, "never comes"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "3d", "--min-age",
      "3d"], 2, "does not apply"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "3d", "--rollover-to",
      "Core"], 2, "another account"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "3d", "--rollover-to",
      "Nowhere"], 3, "no account named"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "3d", "--rollover-to",
      "Tier"], 1, "qualifying"),
    (["accounts", "expiration", "Core", "--fixed-date", "13-01"], 2, "not a day"),
    (["accounts", "expiration", "Core", "--fixed-date", "02-29"], 2, "leap"),
    (["accounts", "expiration", "Core", "--inactivity", "--inactive-for", "90d",
      "--percent", "0"], 2, "between 1 and 100"),
    (["accounts", "expiration", "Core", "--inactivity", "--inactive-for", "90d",
      "--activity", "log in"], 2, "invalid activity event"),
    (["accounts", "expiration", "Core", "--none", "--every", "daily"], 2, "does not apply"),
    (["accounts", "expiration", "Nowhere", "--none"], 3, "no account named"),
    (["accounts", "reactivation", "Core"], 2, "--window"),
    (["accounts", "reactivation", "Core", "--window", "0d"], 2, "greater"),
    (["accounts", "reactivation", "Core", "--window", "1y", "--min-points", "0"], 2,
     "positive"),
    (["expire", "run", "--account", "Nowhere"], 3, "no account named"),
    (["expire", "run", "--account", "Tier"], 1, "no expiration policy"),
    (["expire", "run", "--as-of", "2030-01-01"], 2, "in the future"),
    (["expire", "preview", "--within", "soon"], 2, "invalid --within"),
    (["config", "set", "timezone", "Mars/Olympus"], 2, "unknown time zone"),
    (["config", "set", "colour", "blue"], 2, "unknown setting"),
    (["config", "set", "timezone", "Europe"], 2, "unknown time zone"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "10000y"], 2,
     "at most 1000 years"),
    (["accounts", "expiration", "Core", "--rolling", "--older-than", "3d", "--every",
      "monthly on 00"], 2, "1 to 31"),
    (["expire", "preview", "--within", "9000y"], 2, "at most 1000 years"),
    (["reactivate", "ann", "--account", "Core", "--points", "0"], 2, "positive"),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(cli: Cli, args: list[str], code: int,
                                                         words: str) -> None:
    cli.ok("accounts", "create", "Core", "--default")
    cli.ok("accounts", "create", "Tier", "--qualifying")
    cli.ok("accounts", "expiration", "Core", "--rolling", "--older-than", "90d")
    before = snapshot(cli.url)
    result = cli(*args)
    assert result.exit_code == code, result
    assert result.error.startswith("Error: ") and words in result.error, result.error
    assert len(result.error.splitlines()) == 1
    assert snapshot(cli.url) == before


def test_policy_shows_in_status_and_resetting_it_is_a_no_op(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "create", "Spendable")
    first = ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d",
               "--rollover-to", "Spendable", "--every", "Daily at 03:00")
    assert first["changed"] is True and first["schedule"] == "daily at 03:00"
    assert first["next_due"] == "2026-03-01T03:00:00Z"
    same = ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d",
              "--rollover-to", "spendable", "--every", "daily at 03:00")
    assert same["changed"] is False
    rows = {row["account"]: row for row in ok(cli, "2026-03-03T00:00:00Z", "expire",
                                              "status")}
    assert rows["Core"]["rule"] == "points older than 30d roll over into Spendable"
    assert rows["Core"]["due_now"] == 2 and rows["Spendable"]["policy"] == "none"
    run(cli, "2026-03-03T00:00:00Z")
    rows = {row["account"]: row for row in ok(cli, "2026-03-03T00:00:00Z", "expire",
                                              "status")}
    assert rows["Core"]["last_evaluation"] == "2026-03-02T03:00:00Z"
    assert rows["Core"]["due_now"] == 0
    assert ok(cli, t0, "accounts", "expiration", "Core", "--none")["changed"] is True
    assert run(cli, "2026-03-10T00:00:00Z") == {}


def test_spends_during_expire_runs_keep_every_lot_exact(cli: Cli, tmp_path: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Spends (FIFO over the same lots) in parallel with two expire runs: every lot's parts
    still equal its draws, and each point is spent or expired, never both."""
    from tests.test_concurrency import run_workers

    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, t0, "sources", "create", "Base")
    lines = [json.dumps({"op": "issue", "user": f"u{n % 8}", "points": 10, "source": "Base",
                         "at": f"2026-03-{1 + n % 28:02d}T10:00:00Z"}) for n in range(800)]
    path = tmp_path / "ops.jsonl"
    path.write_text("\n".join(lines) + "\n")
    cli.ok("batch", str(path), env=at("2026-03-29T00:00:00Z"))
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "20d")
    monkeypatch.setenv("POINTCTL_NOW", "2026-04-10T00:00:00Z")
    commands = [["expire", "run"]] * 2 + [["spend", f"u{n % 8}", "15"] for n in range(24)]
    results = run_workers(cli.url, commands)
    for result in results:
        assert result.returncode in (0, 1), result.stderr
        assert "Traceback" not in result.stderr
    spent = 15 * sum(1 for r in results[2:] if r.returncode == 0)
    assert query(cli.url, "SELECT COUNT(*) FROM expiration_run") == [(40,)]
    assert query(cli.url, "SELECT SUM(spent), SUM(expired) + SUM(spent) + SUM(remaining) "
                          "FROM lot") == [(spent, 8000)]
    verify_clean(cli)


def test_an_evaluation_waits_for_a_spend_holding_the_balance(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: a spend in progress holds its balance row; the evaluation that would expire
    the same lots waits for it instead of working from a stale snapshot (SQLite: one writer)."""
    if not cli.url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's; SQLite serialises all writers")
    import subprocess

    from pointctl.db.session import transaction
    from pointctl.services import ledger
    from tests.helpers import fork_cli

    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "issue", "ann", "100", "--source", "Base")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "1d")
    env = {"POINTCTL_NOW": "2026-03-03T00:00:00Z", "POINTCTL_ACTOR": "cron"}
    monkeypatch.setenv("POINTCTL_NOW", "2026-03-01T12:00:00Z")  # before the first evaluation
    with transaction(cli.url, write=True) as session:
        ledger.spend(session, user="ann", points=30,
                     options=ledger.WriteOptions(actor="holder", at=None))
        process = fork_cli(cli.url, "expire", "run", "--format", "json", env=env)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=3)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert json.loads(out)[0]["expired"] == 70  # what the committed spend left
    verify_clean(cli)
