"""issue, spend, reverse, adjust, transfer, balance, activity, report audit and verify."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url
from tests.helpers import Cli, snapshot

T0 = {"POINTCTL_NOW": "2026-03-01T12:00:00Z"}


@pytest.fixture
def koalla(cli: Cli) -> Cli:
    cli.ok("accounts", "create", "Core", "--default", "--group", "Spendable")
    cli.ok("accounts", "create", "Partner", "--default", "--group", "Spendable",
           "--no-negative", "--max-balance", "1000")
    cli.ok("accounts", "create", "Tier", "--qualifying")
    cli.ok("accounts", "create", "Escrow", "--pending-for", "30d", "--no-negative")
    cli.ok("sources", "create", "Base", "--link", "Core", "--link", "Tier", "--link", "Escrow")
    cli.ok("sources", "create", "Ride", "--inventory", "500", "--link", "Partner")
    return cli


def balances(cli: Cli, user: str, env: dict[str, str] | None = None) -> dict[str, tuple]:
    result = cli.ok("balance", user, "--format", "json", env=env)
    import json

    data = json.loads(result.stdout)
    return {row["account"]: (row["balance"], row["available"], row["pending"], row["debt"])
            for row in data["accounts"]}


def verify_clean(cli: Cli) -> None:
    result = cli("verify")
    assert result.exit_code == 0, result.stdout + result.stderr


def test_issue_spend_fifo_across_default_accounts(koalla: Cli) -> None:
    koalla.ok("issue", "u1", "100", "--source", "Ride", "--at", "2026-01-01")
    koalla.ok("issue", "u1", "300", "--source", "Base", "--account", "Core", "--at", "2026-01-02")
    koalla.ok("issue", "u1", "50", "--source", "Base", "--account", "Tier")
    spent = koalla.json("spend", "u1", "150", "--reference-id", "order-9")
    # oldest lot first across both default accounts: 100 from Partner, then 50 from Core
    assert [(e["account"], e["points"]) for e in spent["entries"]] == [("Core", 50),
                                                                       ("Partner", 100)]
    # tier qualifying points are never spent: none of them is available
    assert balances(koalla, "u1") == {"Core": (250, 250, 0, 0), "Partner": (0, 0, 0, 0),
                                      "Tier": (50, 0, 0, 0)}
    verify_clean(koalla)


def test_issue_needs_account_when_source_links_several(koalla: Cli) -> None:
    result = koalla("issue", "u1", "10", "--source", "Base")
    assert result.exit_code == 2 and "links 3 active accounts" in result.error
    assert koalla.json("issue", "u1", "10", "--source", "Ride")["account"] == "Partner"


def test_pending_points_are_not_spendable(koalla: Cli) -> None:
    koalla.ok("issue", "u1", "200", "--source", "Base", "--account", "Escrow", env=T0)
    assert balances(koalla, "u1", T0) == {"Escrow": (200, 0, 200, 0)}
    refused = koalla("spend", "u1", "10", "--account", "Escrow", env=T0)
    assert refused.exit_code == 1 and "insufficient points" in refused.error
    later = {"POINTCTL_NOW": "2026-03-31T12:00:00Z"}
    assert balances(koalla, "u1", later) == {"Escrow": (200, 200, 0, 0)}
    koalla.ok("spend", "u1", "10", "--account", "Escrow", env=later)


def test_shortfall_becomes_debt_and_issue_repays_it(koalla: Cli) -> None:
    koalla.ok("issue", "u1", "40", "--source", "Base", "--account", "Core")
    spent = koalla.json("spend", "u1", "100", "--account", "Core")
    assert spent["debt_created"] == 60
    assert balances(koalla, "u1")["Core"] == (-60, 0, 0, 60)
    issued = koalla.json("issue", "u1", "100", "--source", "Base", "--account", "Core")
    assert issued["debt_repaid"] == 60 and issued["balance"] == 40
    verify_clean(koalla)


def test_spend_refused_without_negative_changes_nothing(koalla: Cli) -> None:
    koalla.ok("issue", "u1", "40", "--source", "Ride")
    before = snapshot(koalla.url)
    result = koalla("spend", "u1", "41", "--account", "Partner")
    assert result.exit_code == 1
    assert result.error == ("Error: insufficient points: u1 has 40 available in 'Partner'; 41 "
                            "needed, and no account in play allows a negative balance")
    assert snapshot(koalla.url) == before


def test_inventory_max_balance_and_clamp(koalla: Cli) -> None:
    koalla.ok("issue", "u1", "450", "--source", "Ride")
    refused = koalla("issue", "u2", "80", "--source", "Ride")
    assert refused.exit_code == 1 and "has 50 points of inventory" in refused.error
    assert "--clamp issues the 50 allowed" in refused.error
    clamped = koalla.json("issue", "u2", "80", "--source", "Ride", "--clamp")
    assert clamped["points"] == 50 and clamped["clamped"] and clamped["source_paused"]
    assert koalla.json("sources", "show", "Ride")["status"] == "paused"
    paused = koalla("issue", "u2", "1", "--source", "Ride")
    assert paused.exit_code == 1 and "is paused" in paused.error
    koalla.ok("sources", "inventory", "Ride", "--adjust", "+2000")
    koalla.ok("sources", "activate", "Ride")
    over = koalla("issue", "u1", "600", "--source", "Ride")
    assert over.exit_code == 1 and "max balance 1000" in over.error
    assert koalla.json("issue", "u1", "600", "--source", "Ride", "--clamp")["points"] == 550
    verify_clean(koalla)


def test_reverse_spend_restores_lots_last_drawn_first(koalla: Cli) -> None:
    koalla.ok("issue", "u1", "100", "--source", "Base", "--account", "Core", "--at", "2026-01-01")
    koalla.ok("issue", "u1", "100", "--source", "Base", "--account", "Core", "--at", "2026-01-02")
    spend = koalla.json("spend", "u1", "150", "--account", "Core", "--reference-id", "o-1")
    entry = str(spend["entries"][0]["entry"])
    first = koalla.json("reverse", "--entry", entry, "--points", "30")
    assert first["points"] == 30
    # the spend drew lot 1 fully, then 50 of lot 2; the 30 went back to lot 2 (drawn last)
    audit = koalla.json("report", "audit", "--type", "issue")
    assert [(row["amount_spent"]) for row in audit] == [20, 100]
    too_much = koalla("reverse", "--reference-id", "o-1", "--points", "121")
    assert too_much.exit_code == 1 and "only 120 points are left" in too_much.error
    koalla.ok("reverse", "--reference-id", "o-1")
    assert balances(koalla, "u1")["Core"] == (200, 200, 0, 0)
    again = koalla("reverse", "--entry", entry)
    assert again.exit_code == 1 and "already fully reversed" in again.error
    verify_clean(koalla)


def test_reverse_issue_returns_inventory_and_debts_or_writes_off(koalla: Cli) -> None:
    issued = koalla.json("issue", "u1", "300", "--source", "Ride", "--reference-id", "ride-1")
    koalla.ok("spend", "u1", "100", "--account", "Partner")
    result = koalla.json("reverse", "--reference-id", "ride-1")
    (reversal,) = result["reversals"]
    # Partner does not allow negative balances: the spent 100 are written off
    assert (reversal["returned_to_source"], reversal["debt_created"],
            reversal["written_off"]) == (200, 0, 100)
    assert koalla.json("sources", "show", "Ride")["inventory"] == 400
    assert balances(koalla, "u1")["Partner"] == (0, 0, 0, 0)
    assert issued["entry"] == reversal["reverses"]
    # Core allows negative balances: the spent part becomes debt
    koalla.json("issue", "u2", "300", "--source", "Base", "--account", "Core",
                "--reference-id", "p-2")
    koalla.ok("spend", "u2", "100")
    (debt,) = koalla.json("reverse", "--reference-id", "p-2", "--points", "250")["reversals"]
    assert (debt["returned_to_source"], debt["debt_created"]) == (200, 50)
    assert balances(koalla, "u2")["Core"] == (-50, 0, 0, 50)
    verify_clean(koalla)


def test_adjust_and_transfer(koalla: Cli) -> None:
    missing = koalla("adjust", "u1", "+50", "--account", "Core", "--reason", "goodwill")
    assert missing.exit_code == 2 and "needs --source" in missing.error
    koalla.ok("adjust", "u1", "+50", "--account", "Core", "--reason", "goodwill",
              "--source", "Base")
    koalla.ok("adjust", "u1", "-70", "--account", "Core", "--reason", "fraud")
    assert balances(koalla, "u1")["Core"] == (-20, 0, 0, 20)
    koalla.ok("issue", "u1", "520", "--source", "Base", "--account", "Core")
    moved = koalla.json("transfer", "u1", "300", "--from", "Core", "--to", "Partner",
                        "--to-user", "u2")
    assert (moved["balance_from"], moved["balance_to"]) == (200, 300)
    over = koalla("transfer", "u1", "200", "--from", "Core", "--to", "Partner",
                  "--to-user", "u2", "--at", "2026-06-16",
                  env={"POINTCTL_NOW": "2026-06-16T00:00:00Z"})
    assert over.exit_code == 0  # 500 <= max balance 1000
    refused = koalla("transfer", "u1", "1", "--from", "Core", "--to", "Partner")
    assert refused.exit_code == 1 and "never creates debt" in refused.error
    # the transferred lots keep their source: u2's points show under source Base
    audit = koalla.json("report", "audit", "--user", "u2", "--source", "Base")
    assert [row["modification"] for row in audit] == [200, 300]
    koalla.ok("issue", "u2", "500", "--source", "Ride")
    full = koalla("transfer", "u1", "0", "--from", "Core", "--to", "Partner", "--to-user", "u2")
    assert full.exit_code == 2
    verify_clean(koalla)


def test_balance_groups_activity_and_unknown_user(koalla: Cli) -> None:
    koalla.ok("issue", "u1", "100", "--source", "Base", "--account", "Core")
    koalla.ok("issue", "u1", "30", "--source", "Ride")
    data = koalla.json("balance", "u1")
    assert data["groups"] == [{"group": "Spendable", "balance": 130, "available": 130,
                               "held": 0, "pending": 0, "debt": 0}]
    table = koalla.ok("balance", "u1").stdout
    assert "Per group label" in table and "130" in table
    unknown = koalla("balance", "nobody")
    assert unknown.exit_code == 3 and "no entries for user 'nobody'" in unknown.error
    activity = koalla.json("activity", "u1", "Login", "--at", "2026-02-01T08:00:00+01:00")
    assert activity["event"] == "login" and activity["at"] == "2026-02-01T07:00:00Z"
    bad = koalla("activity", "u1", "log in!")
    assert bad.exit_code == 2


def test_idempotency_replay_and_conflict(koalla: Cli) -> None:
    first = koalla.json("issue", "u1", "100", "--source", "Ride", "--idempotency-key", "k1")
    replay = koalla.ok("issue", "u1", "100", "--source", "Ride", "--idempotency-key", "k1",
                       "--format", "json")
    assert "Replayed" in replay.stderr
    import json

    second = json.loads(replay.stdout)
    assert second["replay"] is True and second["entry"] == first["entry"]
    assert balances(koalla, "u1")["Partner"][0] == 100
    before = snapshot(koalla.url)
    conflict = koalla("issue", "u1", "101", "--source", "Ride", "--idempotency-key", "k1")
    assert conflict.exit_code == 1 and "different request" in conflict.error
    other = koalla("spend", "u1", "5", "--idempotency-key", "k1")
    assert other.exit_code == 1
    assert snapshot(koalla.url) == before


def test_audit_report_columns_filters_and_formats(koalla: Cli) -> None:
    koalla.ok("issue", "u1", "100", "--source", "Base", "--account", "Core",
              "--reference-id", "order-1", "--reference-type", "Purchase", "--at", "2026-01-05")
    koalla.ok("--actor", "cashier", "spend", "u1", "30", "--at", "2026-01-06T10:00:00Z")
    koalla.ok("issue", "u2", "10", "--source", "Ride", "--at", "2026-01-07")
    rows = koalla.json("report", "audit", "--user", "u1")
    assert [(r["type"], r["modification"], r["amount_spent"], r["actor"]) for r in rows] == [
        ("spend", -30, None, "cashier"), ("issue", 100, 30, "tester")]
    assert rows[1]["reference_type"] == "Purchase" and rows[1]["reference_id"] == "order-1"
    assert [r["user"] for r in koalla.json("report", "audit", "--from", "2026-01-06",
                                           "--to", "2026-01-06")] == ["u1"]
    assert len(koalla.json("report", "audit", "--type", "issue", "--limit", "1")) == 1
    csv = koalla.ok("report", "audit", "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("id,user,account,source,type,reference_id,reference_type,"
                             "modification,amount_spent,amount_expired,amount_transferred,"
                             "amount_reversed,amount_adjusted,amount_remaining,actor,time")
    bad = koalla("report", "audit", "--type", "gift")
    assert bad.exit_code == 2 and "unknown entry type gift" in bad.error


def test_verify_reports_a_corrupted_lot(koalla: Cli) -> None:
    koalla.ok("issue", "u1", "100", "--source", "Ride")
    verify_clean(koalla)
    engine = create_engine(parse_url(koalla.url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE lot SET remaining = remaining + 5"))
    engine.dispose()
    result = koalla("verify", "--format", "json")
    assert result.exit_code == 1
    import json

    rules = sorted({v["rule"] for v in json.loads(result.stdout)["violations"]})
    assert rules == [2, 3, 4, 7]  # 7: the issue's 100 points, but its lot accounts for 105
    table = koalla("verify")
    assert table.exit_code == 1 and "original = spent + expired + moved + remaining" in \
        table.stdout and "violations" in table.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["issue", "u1", "0", "--source", "Ride"], 2, "POINTS must be a positive whole number"),
        (["issue", "u1", "-5", "--source", "Ride"], 2,
         "POINTS must be a positive whole number, got '-5'"),
        (["issue", "u1", "1.5", "--source", "Ride"], 2,
         "POINTS must be a whole number, got '1.5'"),
        (["issue", "u1", "9223372036854775808", "--source", "Ride"], 2, "too large"),
        (["issue", "", "5", "--source", "Ride"], 2, "user must not be empty"),
        (["issue", "u1", "5", "--source", "Nope"], 3, "no source named 'Nope'"),
        (["issue", "u1", "5", "--source", "Base", "--account", "Nope"], 3, "no account"),
        (["issue", "u1", "5", "--source", "Base", "--account", "Partner"], 1, "not linked"),
        (["issue", "u1", "5", "--source", "Base", "--account", "Old"], 1, "inactive"),
        (["issue", "u1", "5", "--source", "Gone"], 1, "archived"),
        (["issue", "u1", "5", "--source", "Ride", "--at", "someday"], 2, "invalid --at"),
        (["spend", "u1", "5", "--account", "Tier"], 1, "tier qualifying"),
        (["spend", "u1", "5", "--account", "Old"], 1, "inactive"),
        (["spend", "u1", "0"], 2, "POINTS must be a positive whole number"),
        (["reverse", "--entry", "9999"], 3, "no entry 9999"),
        (["reverse", "--reference-id", "nope"], 3, "no issue or spend"),
        (["reverse"], 2, "exactly one of --entry"),
        (["reverse", "--entry", "1"], 1, "only issues and spends"),
        (["reverse", "--entry", "3", "--points", "0"], 2,
         "--points must be a positive whole number"),
        (["adjust", "u1", "0", "--account", "Core", "--reason", "x"], 2, "non-zero"),
        (["adjust", "u1", "-5", "--account", "Core", "--reason", " "], 2, "--reason"),
        (["transfer", "u1", "5", "--from", "Core", "--to", "Core"], 2, "different account"),
        (["transfer", "u1", "5", "--from", "Tier", "--to", "Core"], 1, "tier qualifying"),
        (["transfer", "u1", "5", "--from", "Core", "--to", "Nope"], 3, "no account"),
    ],
)
def test_bad_ledger_input_is_refused_and_changes_nothing(
    koalla: Cli, args: list[str], code: int, message: str
) -> None:
    koalla.ok("accounts", "create", "Old")
    koalla.ok("sources", "edit", "Base", "--link", "Old")
    koalla.ok("accounts", "deactivate", "Old")
    koalla.ok("sources", "create", "Gone", "--link", "Core")
    koalla.ok("sources", "pause", "Gone")
    koalla.ok("sources", "archive", "Gone", "--yes")
    koalla.ok("issue", "u1", "100", "--source", "Base", "--account", "Core")
    before = snapshot(koalla.url)
    result = koalla(*args)
    assert result.exit_code == code, result
    assert result.error.startswith("Error: ") and len(result.error.splitlines()) == 1
    assert message in result.error, result.error
    assert snapshot(koalla.url) == before


def test_negative_balances_cannot_be_turned_off_while_debt_is_owed(koalla: Cli) -> None:
    koalla.ok("spend", "u1", "10", "--account", "Core")
    before = snapshot(koalla.url)
    refused = koalla("accounts", "edit", "Core", "--no-negative")
    assert refused.exit_code == 1 and "1 users owe points" in refused.error
    assert snapshot(koalla.url) == before
    koalla.ok("issue", "u1", "10", "--source", "Base", "--account", "Core")
    assert koalla.json("accounts", "edit", "Core", "--no-negative")["allow_negative"] is False
    verify_clean(koalla)


def test_available_counts_only_what_a_spend_could_use(cli: Cli) -> None:
    import csv
    import io

    for name, *flags in (("Core", "--default"), ("Bonus", "--default"), ("Tier", "--qualifying"),
                         ("Old",), ("Wait", "--pending-for", "30d")):
        cli.ok("accounts", "create", name, "--group", "G", *flags)
    cli.ok("sources", "create", "Base")
    for account, points in (("Bonus", "100"), ("Tier", "40"), ("Old", "25"), ("Wait", "10")):
        cli.ok("issue", "u1", points, "--source", "Base", "--account", account)
    cli.ok("spend", "u1", "30", "--account", "Core")  # 30 owed in Core
    cli.ok("accounts", "deactivate", "Old")
    assert balances(cli, "u1") == {"Core": (-30, 0, 0, 30), "Bonus": (100, 100, 0, 0),
                                   "Tier": (40, 0, 0, 0), "Old": (25, 0, 0, 0),
                                   "Wait": (10, 0, 10, 0)}
    # 100 spendable in Bonus less the 30 owed in Core; not the tier, inactive or pending points
    group = {"group": "G", "balance": 145, "available": 70, "held": 0, "pending": 10,
             "debt": 30}
    assert cli.json("balance", "u1")["groups"] == [group]
    rows = list(csv.DictReader(io.StringIO(cli.ok("balance", "u1", "--format", "csv").stdout)))
    assert [(r["row"], r["account"], r["group"], r["available"]) for r in rows] == [
        ("account", "Core", "G", "0"), ("account", "Bonus", "G", "100"),
        ("account", "Tier", "G", "0"), ("account", "Old", "G", "0"),
        ("account", "Wait", "G", "0"), ("group", "", "G", "70")]
    history = cli.ok("history", "u1", "--at", "2026-06-15T12:00:00Z", "--format", "csv").stdout
    assert list(csv.DictReader(io.StringIO(history)))[-1]["row"] == "group"
    assert cli.json("customer", "u1")["groups"] == [group]
