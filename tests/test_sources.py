"""sources create|list|show|edit|pause|activate|archive|inventory through the command line."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url
from tests.helpers import Cli, snapshot


@pytest.fixture
def program(cli: Cli) -> Cli:
    cli.ok("accounts", "create", "Spendable - Core", "--default")
    cli.ok("accounts", "create", "Spendable - Partner")
    cli.ok("accounts", "create", "Retired")
    cli.ok("accounts", "deactivate", "Retired")
    return cli


def inventory_entries(url: str) -> list[tuple]:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT type, source_id, points, reference_type, actor FROM entry "
            "WHERE type <> 'change' ORDER BY id"
        )).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_create_links_all_active_accounts_by_default(program: Cli) -> None:
    source = program.json("sources", "create", "Base Purchases")
    assert source["status"] == "active" and source["unlimited"] is True
    assert source["inventory"] is None
    assert source["accounts"] == ["Spendable - Core", "Spendable - Partner"]
    assert inventory_entries(program.url) == []  # unlimited: no inventory entry


def test_create_limited_records_the_initial_inventory(program: Cli) -> None:
    result = program.ok("sources", "create", "Ride Share", "--inventory", "50000",
                        "--link", "spendable - partner")
    assert result.error == "Created source 'Ride Share' (id 1)"
    shown = program.json("sources", "show", "ride share")
    assert shown["inventory"] == 50000 and shown["accounts"] == ["Spendable - Partner"]
    assert [(h["change"], h["reference_type"], h["actor"]) for h in shown["inventory_history"]
            ] == [(50000, "Initial Inventory", "tester")]
    assert inventory_entries(program.url) == [
        ("inventory", 1, 50000, "Initial Inventory", "tester")]


def test_create_with_zero_inventory_is_paused(program: Cli) -> None:
    result = program.ok("sources", "create", "Empty", "--inventory", "0")
    assert "paused because its inventory is 0" in result.error
    assert program.json("sources", "show", "Empty")["status"] == "paused"


def test_list_filters_and_table(program: Cli) -> None:
    program.ok("sources", "create", "Base Purchases")
    program.ok("sources", "create", "Ride Share", "--inventory", "100", "--link",
               "Spendable - Partner")
    program.ok("sources", "create", "Credit Card", "--inventory", "5000")
    program.ok("sources", "pause", "Credit Card")
    rows = program.json("sources", "list", "--sort", "inventory")
    assert [(r["name"], r["inventory"], r["account_count"]) for r in rows] == [
        ("Ride Share", 100, 1), ("Credit Card", 5000, 2), ("Base Purchases", None, 2)]
    assert [r["name"] for r in program.json("sources", "list", "--status", "paused")] == [
        "Credit Card"]
    assert [r["name"] for r in program.json("sources", "list", "--search", "share")] == [
        "Ride Share"]
    table = program.ok("sources", "list").stdout
    assert "unlimited" in table and "Ride Share" in table
    csv = program.ok("sources", "list", "--format", "csv").stdout.splitlines()
    assert csv[0] == "id,name,status,inventory,account_count"
    assert csv[1] == "1,Base Purchases,active,unlimited,2"


def test_status_machine(program: Cli) -> None:
    program.ok("sources", "create", "Promo", "--inventory", "300")
    before = snapshot(program.url)
    refused = program("sources", "archive", "Promo", "--yes")
    assert refused.exit_code == 1 and "only a paused source can be archived" in refused.error
    assert snapshot(program.url) == before

    assert program("sources", "pause", "Promo").error == "Source 'Promo' paused"
    again = program("sources", "pause", "promo")
    assert again.exit_code == 0 and "already paused" in again.error

    before = snapshot(program.url)
    unconfirmed = program("sources", "archive", "Promo")
    assert unconfirmed.exit_code == 1
    assert unconfirmed.error == ("Error: archiving source 'Promo' expires its remaining "
                                 "inventory of 300 points; pass --yes to confirm")
    assert snapshot(program.url) == before

    archived = program.ok("sources", "archive", "Promo", "--yes")
    assert "300 points of inventory expired" in archived.error
    shown = program.json("sources", "show", "Promo")
    assert shown["status"] == "archived" and shown["inventory"] == 0
    assert [(h["change"], h["reference_type"]) for h in shown["inventory_history"]] == [
        (300, "Initial Inventory"), (-300, "Inventory Expired at Archive")]

    for command in ("pause",):
        refused = program("sources", command, "Promo")
        assert refused.exit_code == 1 and "archived" in refused.error
    refused = program("sources", "activate", "Promo")
    assert refused.exit_code == 1 and "no inventory left" in refused.error
    program.ok("sources", "inventory", "Promo", "--adjust", "+50")
    assert program.json("sources", "activate", "Promo")["status"] == "active"


def test_archived_unlimited_source_can_be_reactivated(program: Cli) -> None:
    program.ok("sources", "create", "Base")
    program.ok("sources", "pause", "Base")
    result = program.ok("sources", "archive", "Base", "--yes")
    assert "expired" not in result.error
    assert inventory_entries(program.url) == []
    assert program.json("sources", "activate", "Base")["status"] == "active"


def test_inventory_adjustments(program: Cli) -> None:
    program.ok("sources", "create", "Ride Share", "--inventory", "1000")
    result = program.ok("--actor", "ops-anna", "sources", "inventory", "Ride Share",
                        "--adjust", "-400", "--reason", "budget cut")
    assert result.error == "Inventory of 'Ride Share' -400: now 600"
    assert program.json("sources", "inventory", "Ride Share", "--adjust", "+150")[
        "inventory"] == 750
    history = program.json("sources", "inventory", "Ride Share")
    assert history["inventory"] == 750
    assert [(h["change"], h["note"], h["actor"]) for h in history["history"]] == [
        (1000, None, "tester"), (-400, "budget cut", "ops-anna"), (150, None, "tester")]
    shown = program.ok("sources", "inventory", "Ride Share")
    assert "inventory 750" in shown.error and "budget cut" in shown.stdout

    # emptying an active source pauses it in the same transaction
    emptied = program.ok("sources", "inventory", "Ride Share", "--adjust=-750")
    assert "paused itself at zero inventory" in emptied.error
    assert program.json("sources", "show", "Ride Share")["status"] == "paused"


def test_actor_defaults_to_environment_then_flag(program: Cli) -> None:
    program.ok("sources", "create", "A", "--inventory", "5", env={"POINTCTL_ACTOR": "cron"})
    program.ok("--actor", "alice", "sources", "inventory", "A", "--adjust", "1")
    assert [row[4] for row in inventory_entries(program.url)] == ["cron", "alice"]


def test_edit_rename_link_unlink(program: Cli) -> None:
    program.ok("sources", "create", "Bonus", "--link", "Spendable - Core")
    edited = program.json("sources", "edit", "bonus", "--name", "Bonus Points",
                          "--link", "Spendable - Partner", "--unlink", "Spendable - Core")
    assert edited["name"] == "Bonus Points" and edited["accounts"] == ["Spendable - Partner"]
    before = snapshot(program.url)
    refused = program("sources", "edit", "Bonus Points", "--unlink", "Spendable - Partner")
    assert refused.exit_code == 1 and "keeps at least one" in refused.error
    assert snapshot(program.url) == before
    program.ok("sources", "pause", "Bonus Points")
    refused = program("sources", "edit", "Bonus Points", "--link", "Spendable - Core")
    assert refused.exit_code == 1 and "only active sources can be linked" in refused.error


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["sources", "create", ""], 2, "source name must not be empty"),
        (["sources", "create", "base"], 1, "a source named 'base' already exists (as 'Base')"),
        (["sources", "create", "X", "--inventory", "-5"], 2,
         "--inventory must be a whole number of at least 0"),
        (["sources", "create", "X", "--inventory", "ten"], 2,
         "--inventory must be a whole number, got 'ten'"),
        (["sources", "create", "X", "--inventory", "2.5"], 2,
         "--inventory must be a whole number, got '2.5'"),
        (["sources", "create", "X", "--inventory", "99999999999999999999"], 2, "too large"),
        (["sources", "create", "X", "--inventory", "5", "--unlimited"], 2,
         "cannot be used together"),
        (["sources", "create", "X", "--link", "Nope"], 3, "no account named 'Nope'"),
        (["sources", "create", "X", "--link", "Retired"], 1, "account 'Retired' is inactive"),
        (["sources", "show", "Nope"], 3, "no source named 'Nope' (known sources: Base, Limited)"),
        (["sources", "pause", "Nope"], 3, "no source named 'Nope'"),
        (["sources", "activate", "Limited"], 0, ""),
        (["sources", "inventory", "Base", "--adjust", "5"], 1, "unlimited inventory"),
        (["sources", "inventory", "Limited", "--adjust", "-11"], 1,
         "has 10 points of inventory; cannot take 11"),
        (["sources", "inventory", "Limited", "--adjust", "0"], 2,
         "--adjust must be a non-zero whole number"),
        (["sources", "inventory", "Limited", "--adjust", "9223372036854775807"], 1,
         "would exceed"),
        (["sources", "edit", "Base"], 2, "nothing to change"),
        (["sources", "edit", "Base", "--name", " "], 2, "source name must not be empty"),
        (["sources", "edit", "Base", "--name", "LIMITED"], 1, "already exists (as 'Limited')"),
        (["sources", "edit", "Base", "--link", "Nope"], 3, "no account named 'Nope'"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    program: Cli, args: list[str], code: int, message: str
) -> None:
    program.ok("sources", "create", "Base")
    program.ok("sources", "create", "Limited", "--inventory", "10")
    before = snapshot(program.url)
    result = program(*args)
    assert result.exit_code == code, result
    if code:
        assert result.error.startswith("Error: ") and len(result.error.splitlines()) == 1
        assert message in result.error, result.error
    assert snapshot(program.url) == before


def test_a_source_needs_an_active_account(cli: Cli) -> None:
    result = cli("sources", "create", "Lonely")
    assert result.exit_code == 1 and "no active account" in result.error


def test_points_returned_to_an_archived_source_expire_from_its_inventory(cli: Cli) -> None:
    from tests.test_expiry import ok, verify_clean

    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Limited", "--inventory", "100")
    ok(cli, "2026-03-02T00:00:00Z", "issue", "ann", "40", "--source", "Limited")  # entry 4
    ok(cli, "2026-03-03T00:00:00Z", "sources", "pause", "Limited")
    ok(cli, "2026-03-03T00:00:00Z", "sources", "archive", "Limited", "--yes")  # 60 expire
    done = ok(cli, "2026-03-04T00:00:00Z", "reverse", "--entry", "4", "--points", "25")
    done = done["reversals"][0]
    assert (done["returned_to_source"], done["inventory_expired"]) == (25, 25)
    said = cli.ok("reverse", "--entry", "4", "--points", "5",
                  env={"POINTCTL_NOW": "2026-03-04T01:00:00Z"}).error
    assert "5 back to the source (archived: they expire from its inventory at once)" in said
    shown = ok(cli, "2026-03-05T00:00:00Z", "sources", "show", "Limited")
    assert (shown["status"], shown["inventory"]) == ("archived", 0)
    entries = ok(cli, "2026-03-05T00:00:00Z", "report", "audit", "--type", "inventory")
    assert [(e["modification"], e["reference_type"]) for e in entries] == [
        (-5, "Returned Inventory Expired (source archived)"),
        (-25, "Returned Inventory Expired (source archived)"),
        (-60, "Inventory Expired at Archive"), (100, "Initial Inventory")]
    assert entries[1]["related_entry"] == done["entry"] and entries[1]["source"] == "Limited"
    refused = cli("sources", "activate", "Limited", env={"POINTCTL_NOW": "2026-03-05T00:00:00Z"})
    assert refused.exit_code == 1  # nothing came back to issue from
    verify_clean(cli)
