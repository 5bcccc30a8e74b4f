"""Configuration as code (`config apply|export`): round trip, idempotence, dry run, prune, the
plan, and a file checked whole, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import Cli, snapshot
from tests.test_expiry import query

KOALLA = Path(__file__).resolve().parent.parent / "sample_configs" / "koalla.toml"


def apply(cli: Cli, path: Path, *extra: str) -> dict[str, Any]:
    result = cli.ok("config", "apply", str(path), "--format", "json", *extra)
    return json.loads(result.stdout)


def test_apply_then_export_round_trips_and_a_second_apply_changes_nothing(
        cli: Cli, twin_url: str, tmp_path: Path) -> None:
    first = apply(cli, KOALLA)
    assert first["changed"] == 10  # the time zone, 4 accounts, 5 sources
    before = snapshot(cli.url)
    again = apply(cli, KOALLA)
    assert again["changed"] == 0 and {s["action"] for s in again["steps"]} == {"unchanged"}
    assert snapshot(cli.url) == before
    exported = cli.ok("config", "export").stdout
    assert 'rollover_to = "Spendable - Core"' in exported
    target = tmp_path / "program.toml"
    cli.ok("config", "export", "--output", str(target))
    assert target.read_text() == exported
    twin = Cli(twin_url)
    twin.ok("config", "apply", str(target))
    assert twin.ok("config", "export").stdout == exported
    ride = cli.json("sources", "show", "Ride Share Partner")
    assert ride["inventory"] == 60000
    assert [r["max_points"] for r in cli.json("restrictions", "list", "Ride Share Partner")] \
        == [50000]  # the partner's daily budget; no per-customer cap


def test_dry_run_prints_the_plan_and_changes_nothing(cli: Cli) -> None:
    before = snapshot(cli.url)
    result = cli.ok("config", "apply", str(KOALLA), "--dry-run")
    assert "create account 'Purchase Escrow'" in result.stdout
    assert result.error == "Dry run: 10 changes planned, nothing applied"
    assert snapshot(cli.url) == before


def test_updates_show_old_and_new_and_inventory_is_an_adjustment(cli: Cli,
                                                                tmp_path: Path) -> None:
    apply(cli, KOALLA)
    text = KOALLA.read_text()
    text = text.replace("max_balance = 250000", "max_balance = 300000")
    text = text.replace("inventory = 60000", "inventory = 70000")
    text = text.replace('older_than = "30d"', 'older_than = "14d"')
    text = text.replace("max_points = 50000\n", "max_points = 40000\n")
    changed = tmp_path / "changed.toml"
    changed.write_text(text)
    plan = apply(cli, changed)
    lines = {s["name"]: s["text"] for s in plan["steps"] if s["action"] == "update"}
    assert lines["Spendable - Partner"] == ("update account 'Spendable - Partner': "
                                            "max_balance: 250000 -> 300000")
    assert "older_than" in lines["Purchase Escrow"]
    assert lines["Ride Share Partner"].startswith("update source 'Ride Share Partner': "
                                                  "inventory: 60000 -> 70000; restrictions:")
    assert plan["changed"] == 3
    assert cli.json("sources", "show", "Ride Share Partner")["inventory"] == 70000
    entries = query(cli.url, "SELECT points, note FROM entry WHERE type = 'inventory' "
                             "ORDER BY id")
    assert entries[-1] == (10000, "config apply")
    assert [r["max_points"] for r in cli.json("restrictions", "list", "Ride Share Partner")] \
        == [40000]
    assert apply(cli, changed)["changed"] == 0


def test_prune_deactivates_and_pauses_what_the_file_leaves_out(cli: Cli,
                                                              tmp_path: Path) -> None:
    apply(cli, KOALLA)
    cli.ok("accounts", "create", "Old Promo")
    cli.ok("sources", "create", "Old Campaign", "--link", "Old Promo")
    assert apply(cli, KOALLA)["changed"] == 0  # without --prune: left alone
    assert cli.json("accounts", "show", "Old Promo")["status"] == "active"
    # what --prune would deactivate and pause needs --yes; the dry run shows it and, with
    # --detailed-exitcode, says changes are pending
    before = snapshot(cli.url)
    refused = cli("config", "apply", str(KOALLA), "--prune")
    assert refused.exit_code == 1
    assert refused.error == ("Error: --prune would deactivate account 'Old Promo', pause "
                             "source 'Old Campaign'; pass --yes to confirm (--dry-run shows "
                             "the whole plan)")
    assert snapshot(cli.url) == before
    drift = cli("config", "apply", str(KOALLA), "--prune", "--dry-run", "--detailed-exitcode")
    assert drift.exit_code == 5 and "Dry run: 2 changes planned" in drift.error
    assert snapshot(cli.url) == before
    assert cli("config", "apply", str(KOALLA), "--dry-run", "--detailed-exitcode"
               ).exit_code == 0  # without --prune the file is applied already
    assert cli("config", "apply", str(KOALLA), "--detailed-exitcode").exit_code == 2
    pruned = apply(cli, KOALLA, "--prune", "--yes")
    assert sorted((s["action"], s["name"]) for s in pruned["steps"]
                  if s["action"] != "unchanged") == [("deactivate", "Old Promo"),
                                                      ("pause", "Old Campaign")]
    assert cli.json("accounts", "show", "Old Promo")["status"] == "inactive"
    assert cli.json("sources", "show", "Old Campaign")["status"] == "paused"
    assert query(cli.url, "SELECT COUNT(*) FROM account WHERE name = 'Old Promo'") == [(1,)]


BAD = '''[program]
timezone = "Mars/Olympus"

[[accounts]]
name = "A"
alow_negative = true
max_balance = "lots"
[accounts.expiration]
type = "rolling"
every = "fortnightly"
older_than = "30m"

[[accounts]]
name = "a"

[[sources]]
name = "S"
inventory = -5
accounts = []
restrictions = "none"
'''


def test_a_bad_file_is_refused_whole_naming_every_problem(cli: Cli, tmp_path: Path) -> None:
    apply(cli, KOALLA)
    before = snapshot(cli.url)
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    result = cli("config", "apply", str(bad))
    assert result.exit_code == 2
    assert result.error.startswith("Error: 9 problems in the file, nothing applied: ")
    for text in ("program.timezone: unknown time zone 'Mars/Olympus'",
                 "accounts[0].alow_negative: unknown key (did you mean 'allow_negative'?)",
                 "accounts[0].max_balance: expected a number of points, not 'lots'",
                 "accounts[0].expiration.every: invalid schedule 'fortnightly'",
                 "accounts[0].expiration.older_than: invalid older_than '30m'",
                 "accounts[1].name: duplicate name 'a' (also accounts[0])",
                 "sources[0].inventory: expected a number of points or \"unlimited\"",
                 "sources[0].accounts: required",
                 "sources[0].restrictions: expected [[sources.restrictions]] tables"):
        assert text in result.error, text
    dangling = tmp_path / "dangling.toml"
    dangling.write_text('[[accounts]]\nname = "Escrow"\n[accounts.expiration]\n'
                        'type = "rolling"\nolder_than = "30d"\nrollover_to = "Nowhere"\n'
                        '[[sources]]\nname = "S"\naccounts = ["Ghost"]\n')
    result = cli("config", "apply", str(dangling))
    assert result.exit_code == 2
    assert "accounts[0].expiration.rollover_to: no account named 'Nowhere' in the file or " \
        "the database" in result.error
    assert "sources[0].accounts: no account named 'Ghost'" in result.error
    syntax = tmp_path / "syntax.toml"
    syntax.write_text('[[accounts]]\nname = "x"\nname = "y"\n')
    result = cli("config", "apply", str(syntax))
    assert result.exit_code == 2 and "(at line 3, column" in result.error
    refused = tmp_path / "refused.toml"  # passes the checks, refused while applying
    refused.write_text(KOALLA.read_text().replace('inventory = 60000', 'inventory = "unlimited"'))
    result = cli("config", "apply", str(refused))
    assert result.exit_code == 2 and result.error.startswith("Error: sources[3]: inventory: ")
    missing = cli("config", "apply", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 2
    for result in (cli("config", "apply", str(bad)), cli("config", "apply", str(refused))):
        assert len(result.error.splitlines()) == 1
    assert snapshot(cli.url) == before


def test_the_period_points_sample_applies_and_round_trips(cli: Cli, twin_url: str,
                                                          tmp_path: Path) -> None:
    sample = KOALLA.with_name("period_points.toml")
    assert apply(cli, sample)["changed"] == 8  # time zone, 4 accounts, 3 sources
    policies = {row["account"]: (row["policy"], row["schedule"])
                for row in cli.json("expire", "status")}
    assert policies == {"Base Points": ("rolling", "monthly on 1 (Europe/Berlin)"),
                        "Bonus Points": ("fixed-date", "yearly on 12-31 (Europe/Berlin)"),
                        "Status Points": ("none", None),
                        "Dormant Member Points": ("inactivity",
                                                  "weekly on monday (Europe/Berlin)")}
    base = cli.json("accounts", "show", "Base Points")
    assert base["reactivation"] == "points expired within 6mo, at least 100 points"
    assert 'snap_to = "quarter"' in cli.ok("config", "export").stdout
    assert apply(cli, sample)["changed"] == 0
    exported = tmp_path / "out.toml"
    cli.ok("config", "export", "--output", str(exported))
    twin = Cli(twin_url)
    twin.ok("config", "apply", str(exported))
    assert twin.ok("config", "export").stdout == exported.read_text()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_status_links_and_renames_apply_in_an_order_that_works(cli: Cli, twin_url: str,
                                                               tmp_path: Path) -> None:
    first = write(tmp_path, "one.toml", '[[accounts]]\nname = "A"\ndefault = true\n'
                  '[[accounts]]\nname = "B"\n'
                  '[[sources]]\nname = "Shop"\naccounts = ["A"]\nstatus = "paused"\n')
    apply(cli, first)
    # reactivated together with a new link; renamed by case; B inactive yet still linked
    second = write(tmp_path, "two.toml", '[[accounts]]\nname = "A"\ndefault = true\n'
                   '[[accounts]]\nname = "B"\nstatus = "inactive"\n'
                   '[[sources]]\nname = "shop"\naccounts = ["A", "B"]\n')
    result = apply(cli, second)
    assert result["changed"] == 2
    shop = cli.json("sources", "show", "shop")
    assert (shop["name"], shop["status"], sorted(shop["accounts"])) == ("shop", "active",
                                                                        ["A", "B"])
    assert apply(cli, second)["changed"] == 0
    exported = write(tmp_path, "out.toml", cli.ok("config", "export").stdout)
    twin = Cli(twin_url)
    twin.ok("config", "apply", str(exported))  # an inactive account linked to a source
    assert twin.ok("config", "export").stdout == exported.read_text()


def test_values_that_mean_the_same_settle_and_impossible_ones_are_listed(
        cli: Cli, tmp_path: Path) -> None:
    same = write(tmp_path, "same.toml", '[[accounts]]\nname = "Core"\ngroup = " G "\n'
                 'qualifying_weight = 2\nnon_qualifying_weight = 0\n'
                 '[accounts.expiration]\ntype = "inactivity"\ninactive_for = "1y"\n'
                 'activity = ["Login", "issue,spend", "login", "accrual", "Redemption"]\n')
    apply(cli, same)
    assert apply(cli, same)["changed"] == 0
    exported = cli.ok("config", "export").stdout
    # accrual and redemption are the built-in issue and spend events
    assert 'activity = [\n    "login",\n    "issue",\n    "spend",\n]' in exported
    assert "qualifying_weight = 2\nnon_qualifying_weight = 0\n" in exported
    before = snapshot(cli.url)
    bad = write(tmp_path, "bad.toml", '''[[accounts]]
name = "Q"
default = true
qualifying = true
max_balance = 0
[accounts.expiration]
type = "inactivity"
inactive_for = "1y"
percent = 0
activity = ["log in"]
[accounts.reactivation]
window = "1d"
min_points = 99999999999999999999

[[accounts]]
name = "R"
qualifying = true
pending_for = "30d"
qualifying_weight = -3
[accounts.expiration]
type = "fixed-date"
date = "1231"

[[accounts]]
name = "S"
[accounts.expiration]
type = "rolling"
older_than = "30d"
snap_to = "week"
rollover_to = ""

[[sources]]
name = "Gone"
accounts = ["R", "r"]
inventory = 10
status = "archived"
[[sources.restrictions]]
max_points = 5
per = "1d"
[[sources.restrictions]]
max_points = 6
per = "1 day"
''')
    result = cli("config", "apply", str(bad))
    assert result.exit_code == 2, result.error
    for text in ("accounts[0].qualifying: a tier qualifying account cannot be a default",
                 "accounts[0].max_balance: must be between 1 and",
                 "accounts[0].expiration.percent: must be between 1 and 100, not 0",
                 "accounts[0].expiration.activity: invalid activity event 'log in'",
                 "accounts[0].reactivation: a tier qualifying account's points cannot",
                 "accounts[0].reactivation.min_points: must be between 1 and",
                 "accounts[1].expiration.date: invalid date '1231'",
                 "accounts[1].pending_for: a tier qualifying account cannot hold points",
                 "accounts[1].qualifying_weight: qualifying_weight must be a whole number",
                 "accounts[2].expiration.snap_to: expected month, quarter, year, anniversary",
                 "accounts[2].expiration.rollover_to: expected an account name",
                 "sources[0].accounts: an account is listed twice",
                 "sources[0].inventory: an archived source's inventory has expired",
                 "sources[0].restrictions[1]: a second system limit per 1d"):
        assert text in result.error, text
    assert snapshot(cli.url) == before


def test_making_an_account_qualifying_rechecks_its_rollover(cli: Cli, tmp_path: Path) -> None:
    base = ('[[accounts]]\nname = "Core"\ndefault = true\n[[accounts]]\nname = "Esc"\n{extra}'
            '[accounts.expiration]\ntype = "rolling"\nolder_than = "30d"\n'
            'rollover_to = "Core"\n')
    apply(cli, write(tmp_path, "q1.toml", base.format(extra="")))
    before = snapshot(cli.url)
    result = cli("config", "apply", str(write(tmp_path, "q2.toml",
                                              base.format(extra="qualifying = true\n"))))
    assert result.exit_code == 1
    assert result.error == ("Error: accounts[1].expiration: cannot roll qualifying points into "
                            "spendable account 'Core'")
    assert snapshot(cli.url) == before
