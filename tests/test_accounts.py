"""accounts create|list|show|edit|activate|deactivate through the command line."""

from __future__ import annotations

import pytest

from tests.helpers import Cli, snapshot


def test_create_and_show(cli: Cli) -> None:
    result = cli.ok("accounts", "create", "Spendable - Core", "--group", "Spendable Point Balance",
                    "--default", "--max-balance", "50000", "--pending-for", "30 days",
                    env={"POINTCTL_NOW": "2026-03-01T10:00:00+01:00"})
    assert result.stderr.strip() == "Created account 'Spendable - Core' (id 1)"
    assert result.stdout == ""  # table format: only the confirmation, on stderr
    account = cli.json("accounts", "show", "spendable - CORE")
    assert account == {
        "id": 1, "name": "Spendable - Core", "group": "Spendable Point Balance",
        "status": "active", "default": True, "allow_negative": True, "max_debt": None,
        "max_balance": 50000,
        "qualifying": False, "pending_for": "30d", "qualifying_weight": None,
        "non_qualifying_weight": None, "transfer_min": None, "transfer_max": None,
        "transfer_yearly_max": None, "expiration": "never", "reactivation": "off",
        "sources": [], "source_count": 0,
        "created_at": "2026-03-01T09:00:00Z", "updated_at": "2026-03-01T09:00:00Z",
    }


def test_create_json_prints_the_record(cli: Cli) -> None:
    created = cli.json("accounts", "create", "Escrow", "--no-negative")
    assert created["name"] == "Escrow" and created["allow_negative"] is False


def test_list_search_sort_status_and_source_count(cli: Cli) -> None:
    cli.ok("accounts", "create", "Spendable - Core", "--group", "Spendable", "--default")
    cli.ok("accounts", "create", "Spendable - Partner", "--group", "Spendable")
    cli.ok("accounts", "create", "Tier Qualifying", "--qualifying")
    cli.ok("sources", "create", "Base Purchases", "--link", "Spendable - Core")
    cli.ok("sources", "create", "Credit Card", "--link", "Spendable - Core",
           "--link", "Tier Qualifying")
    cli.ok("accounts", "deactivate", "Tier Qualifying")

    rows = cli.json("accounts", "list")
    assert [(r["name"], r["source_count"]) for r in rows] == [
        ("Spendable - Core", 2), ("Spendable - Partner", 0), ("Tier Qualifying", 1)]
    assert [r["name"] for r in cli.json("accounts", "list", "--sort", "sources", "--desc")] == [
        "Spendable - Core", "Tier Qualifying", "Spendable - Partner"]
    assert [r["name"] for r in cli.json("accounts", "list", "--search", "PARTNER")] == [
        "Spendable - Partner"]
    assert [r["name"] for r in cli.json("accounts", "list", "--status", "inactive")] == [
        "Tier Qualifying"]
    table = cli.ok("accounts", "list").stdout
    assert "Spendable - Partner" in table and "sources" in table
    csv_lines = cli.ok("accounts", "list", "--format", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("id,name,group,status,default")
    assert csv_lines[1].startswith("1,Spendable - Core,Spendable,active,true")


def test_format_from_environment(cli: Cli) -> None:
    cli.ok("accounts", "create", "Core")
    result = cli.ok("accounts", "list", env={"POINTCTL_FORMAT": "csv"})
    assert result.stdout.splitlines()[0].startswith("id,name,")


def test_edit_fields_links_and_clearing(cli: Cli) -> None:
    cli.ok("accounts", "create", "Core", "--group", "Spendable", "--max-balance", "100")
    cli.ok("sources", "create", "Base", "--link", "Core")
    cli.ok("accounts", "create", "Other")
    cli.ok("sources", "create", "Bonus", "--link", "Core", "--link", "Other")
    edited = cli.json("accounts", "edit", "core", "--name", "Spendable - Core", "--no-group",
                      "--no-max-balance", "--default", "--no-negative", "--pending-for", "2w",
                      "--unlink", "Bonus")
    assert edited["name"] == "Spendable - Core"
    assert edited["group"] is None and edited["max_balance"] is None
    assert edited["default"] is True and edited["allow_negative"] is False
    assert edited["pending_for"] == "2w"
    assert edited["sources"] == ["Base"]
    assert cli.json("sources", "show", "Bonus")["accounts"] == ["Other"]


def test_unlink_refused_when_the_source_would_have_no_account(cli: Cli) -> None:
    cli.ok("accounts", "create", "Core")
    cli.ok("accounts", "create", "Other")
    cli.ok("sources", "create", "Bonus", "--link", "Core")
    before = snapshot(cli.url)
    result = cli("accounts", "edit", "Core", "--unlink", "Bonus", "--group", "G")
    assert result.exit_code == 1
    assert "would have no linked account left" in result.error
    assert snapshot(cli.url) == before
    cli.ok("accounts", "edit", "Other", "--link", "Bonus")
    assert cli.json("accounts", "edit", "Core", "--unlink", "Bonus")["sources"] == []


def test_activate_deactivate_and_inactive_accounts_cannot_be_edited(cli: Cli) -> None:
    cli.ok("accounts", "create", "Core")
    assert cli("accounts", "deactivate", "Core").error == "Account 'Core' deactivated"
    assert cli.json("accounts", "show", "Core")["status"] == "inactive"
    again = cli("accounts", "deactivate", "core")
    assert again.exit_code == 0 and "already inactive; nothing changed" in again.error
    before = snapshot(cli.url)
    refused = cli("accounts", "edit", "Core", "--group", "G")
    assert refused.exit_code == 1 and "only active accounts can be edited" in refused.error
    assert snapshot(cli.url) == before
    cli.ok("accounts", "activate", "Core")
    assert cli.json("accounts", "edit", "Core", "--group", "G")["group"] == "G"


def test_link_only_active_sources(cli: Cli) -> None:
    cli.ok("accounts", "create", "Core")
    cli.ok("sources", "create", "Bonus")
    cli.ok("sources", "pause", "Bonus")
    cli.ok("accounts", "create", "Other")
    result = cli("accounts", "edit", "Other", "--link", "Bonus")
    assert result.exit_code == 1 and "only active sources can be linked" in result.error
    result = cli("accounts", "create", "Third", "--link", "Bonus")
    assert result.exit_code == 1
    assert [a["name"] for a in cli.json("accounts", "list")] == ["Core", "Other"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["accounts", "create", ""], 2, "account name must not be empty"),
        (["accounts", "create", "   "], 2, "account name must not be empty"),
        (["accounts", "create", "x" * 101], 2, "at most 100"),
        (["accounts", "create", "CORE"], 1, "an account named 'CORE' already exists (as 'Core')"),
        (["accounts", "create", "Q", "--qualifying", "--default"], 2,
         "cannot be a default account"),
        (["accounts", "create", "M", "--max-balance", "-1"], 2,
         "--max-balance must be a positive whole number"),
        (["accounts", "create", "M", "--max-balance", "0"], 2,
         "--max-balance must be a positive whole number"),
        (["accounts", "create", "M", "--max-balance", "1.5"], 2,
         "--max-balance must be a whole number, got '1.5'"),
        (["accounts", "create", "M", "--max-balance", "9223372036854775808"], 2, "too large"),
        (["accounts", "create", "P", "--pending-for", "5m"], 2, "'m' is ambiguous"),
        (["accounts", "create", "P", "--pending-for", "-1d"], 2, "must be greater than zero"),
        (["accounts", "create", "P", "--pending-for", "soon"], 2, "invalid --pending-for"),
        (["accounts", "create", "L", "--link", "Nope"], 3, "no source named 'Nope'"),
        (["accounts", "show", "Nope"], 3, "no account named 'Nope' (known accounts: Core)"),
        (["accounts", "edit", "Nope", "--group", "G"], 3, "no account named 'Nope'"),
        (["accounts", "edit", "Core"], 2, "nothing to change"),
        (["accounts", "edit", "Core", "--group", "G", "--no-group"], 2, "cannot be used together"),
        (["accounts", "edit", "Core", "--default", "--qualifying"], 2,
         "cannot be a default account"),
        (["accounts", "edit", "Core", "--name", "core2", "--max-balance", "-5"], 2,
         "--max-balance must be a positive whole number"),
        (["accounts", "create", "T", "--qualifying", "--pending-for", "30d"], 2,
         "account 'T': a tier qualifying account cannot hold points pending"),
        (["accounts", "edit", "Core", "--qualifying", "--pending-for", "1d"], 2,
         "cannot hold points pending"),
        (["accounts", "create", "W", "--qualifying-weight", "-1"], 2,
         "--qualifying-weight must be a whole number from 0 to 2,147,483,647"),
        (["accounts", "edit", "Core", "--non-qualifying-weight", "2147483648"], 2,
         "--non-qualifying-weight must be a whole number from 0"),
        (["accounts", "edit", "Core", "--qualifying-weight", "2", "--no-qualifying-weight"], 2,
         "cannot be used together"),
        (["accounts", "deactivate", "Nope"], 3, "no account named 'Nope'"),
        (["accounts", "list", "--status", "gone"], 2, "Invalid value for '--status'"),
        (["accounts", "list", "--sort", "size"], 2, "Invalid value for '--sort'"),
        (["accounts", "list", "--format", "xml"], 2, "Invalid value for '--format'"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    cli: Cli, args: list[str], code: int, message: str
) -> None:
    cli.ok("accounts", "create", "Core")
    before = snapshot(cli.url)
    result = cli(*args)
    assert result.exit_code == code, result
    assert result.error.startswith("Error: "), result.error
    assert len(result.error.splitlines()) == 1
    assert message in result.error
    assert "Traceback" not in result.stderr
    assert snapshot(cli.url) == before


def test_qualifying_accounts_weights_and_transfers_into_them(cli: Cli) -> None:
    cli.ok("accounts", "create", "Core", "--default", "--pending-for", "7d")
    cli.ok("accounts", "create", "Tier", "--qualifying", "--qualifying-weight", "3",
           "--non-qualifying-weight", "0")
    tier = cli.json("accounts", "show", "tier")
    assert (tier["qualifying_weight"], tier["non_qualifying_weight"]) == (3, 0)
    table = cli.ok("accounts", "show", "Tier").stdout
    assert "qualifying weight" in table and "non-qualifying weight" in table
    # a qualifying account never holds points pending, nor does a pending account qualify
    assert cli("accounts", "edit", "Core", "--qualifying").exit_code == 2
    cli.ok("accounts", "edit", "Tier", "--no-qualifying-weight", "--non-qualifying-weight", "5")
    tier = cli.json("accounts", "show", "Tier")
    assert (tier["qualifying_weight"], tier["non_qualifying_weight"]) == (None, 5)
    # spendable points never move into a tier account
    cli.ok("sources", "create", "Base", "--link", "Core", "--link", "Tier")
    cli.ok("issue", "ann", "100", "--source", "Base", "--account", "Core",
           env={"POINTCTL_NOW": "2026-03-01T00:00:00Z"})
    before = snapshot(cli.url)
    refused = cli("transfer", "ann", "10", "--from", "Core", "--to", "Tier",
                  env={"POINTCTL_NOW": "2026-03-10T00:00:00Z"})
    assert refused.exit_code == 1
    assert refused.error == ("Error: account 'Tier' is tier qualifying; spendable points from "
                             "'Core' cannot be moved into it (qualifying points are earned, "
                             "not transferred)")
    assert snapshot(cli.url) == before


def test_accrual_and_redemption_are_the_issue_and_spend_events(cli: Cli) -> None:
    from tests.test_expiry import query

    cli.ok("accounts", "create", "Core")
    cli.ok("accounts", "expiration", "Core", "--inactivity", "--inactive-for", "90d",
           "--activity", "Accrual,redemption", "--activity", "login")
    assert query(cli.url, "SELECT activity FROM expiration_policy") == [("issue,spend,login",)]
