"""The program's change history: every change to an account, a source or a setting is an audit
entry of type ``change`` with its actor and before -> after; ``config export --at`` rebuilds
the program for a past moment from those entries. Through the command line, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Cli, snapshot
from tests.test_concurrency import run_workers
from tests.test_expiry import at, ok, verify_clean

T0 = "2026-03-01T00:00:00Z"


def changes(cli: Cli, *args: str, when: str = "2026-06-15T12:00:00Z") -> list[dict[str, Any]]:
    """The change entries, oldest first."""
    rows = ok(cli, when, "report", "audit", "--type", "change", "--limit", "1000", *args)
    return list(reversed(rows))


def brief(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["reference_type"], r["actor"], r["note"]) for r in rows]


def export(cli: Cli, *args: str, when: str = "2026-06-15T12:00:00Z") -> str:
    return cli.ok("config", "export", *args, env=at(when)).stdout


def test_every_change_of_the_program_is_an_entry_with_actor_and_before_after(cli: Cli) -> None:
    def as_(actor: str, when: str, *args: str) -> Any:
        return ok(cli, when, "--actor", actor, *args)

    as_("setup", T0, "accounts", "create", "Core", "--default")
    as_("setup", T0, "accounts", "create", "Promo", "--no-negative")
    as_("setup", T0, "sources", "create", "Base", "--link", "Core")
    as_("setup", T0, "sources", "create", "Ride", "--inventory", "50", "--link", "Core")
    as_("anna", "2026-03-02T09:00:00Z", "accounts", "edit", "Core", "--no-negative",
        "--max-balance", "5000")
    as_("anna", "2026-03-02T09:05:00Z", "accounts", "edit", "Promo", "--link", "Base")
    as_("ben", "2026-03-03T09:00:00Z", "accounts", "expiration", "Promo", "--rolling",
        "--older-than", "30d")
    as_("ben", "2026-03-03T09:01:00Z", "accounts", "reactivation", "Promo", "--window", "7d")
    as_("ben", "2026-03-03T09:02:00Z", "accounts", "expiration", "Promo", "--none")
    as_("cy", "2026-03-04T09:00:00Z", "sources", "edit", "Base", "--value", "0.01",
        "--currency", "USD", "--name", "Base Points")
    as_("cy", "2026-03-04T09:01:00Z", "sources", "pause", "Base Points")
    as_("cy", "2026-03-04T09:02:00Z", "sources", "pause", "Base Points")  # no change: no entry
    as_("cy", "2026-03-04T09:03:00Z", "sources", "activate", "Base Points")
    as_("cy", "2026-03-04T09:04:00Z", "restrictions", "add", "Ride", "--max-points", "100",
        "--per", "1d")
    as_("dora", "2026-03-05T09:00:00Z", "config", "set", "timezone", "Europe/Berlin")
    as_("dora", "2026-03-05T09:01:00Z", "accounts", "deactivate", "Promo")
    # an issue that empties a source pauses it: recorded with the issue's actor and why
    as_("till-7", "2026-03-06T09:00:00Z", "issue", "ann", "20", "--source", "Ride")
    as_("till-7", "2026-03-06T09:00:00Z", "issue", "bob", "20", "--source", "Ride")
    as_("ops", "2026-03-06T10:00:00Z", "sources", "inventory", "Ride", "--adjust", "-10")

    rows = changes(cli)
    assert brief(rows) == [
        ("Account create", "setup", "account 'Core' created: name: none -> Core; default: none "
         "-> true; allow_negative: none -> true; qualifying: none -> false; status: none -> "
         "active"),
        ("Account create", "setup", "account 'Promo' created: name: none -> Promo; default: "
         "none -> false; allow_negative: none -> false; qualifying: none -> false; status: "
         "none -> active"),
        ("Source create", "setup", "source 'Base' created: name: none -> Base; inventory: none "
         "-> unlimited; accounts: none -> [\"Core\"]; status: none -> active"),
        ("Source create", "setup", "source 'Ride' created: name: none -> Ride; inventory: none "
         "-> limited; accounts: none -> [\"Core\"]; status: none -> active"),
        ("Account edit", "anna", "account 'Core' edit: allow_negative: true -> false; "
         "max_balance: none -> 5000"),
        ("Source link", "anna", "source 'Base' link: accounts: [\"Core\"] -> [\"Core\", "
         "\"Promo\"] (linked or unlinked by account 'Promo')"),
        ("Account expiration", "ben", "account 'Promo' expiration: expiration: none -> "
         "{\"every\": \"daily\", \"older_than\": \"30d\", \"type\": \"rolling\"}"),
        ("Account reactivation", "ben", "account 'Promo' reactivation: reactivation: none -> "
         "{\"window\": \"7d\"}"),
        ("Account expiration", "ben", "account 'Promo' expiration: expiration: {\"every\": "
         "\"daily\", \"older_than\": \"30d\", \"type\": \"rolling\"} -> none"),
        ("Source edit", "cy", "source 'Base Points' edit: name: Base -> Base Points; value: "
         "none -> 0.01; currency: none -> USD"),
        ("Source pause", "cy", "source 'Base Points' pause: status: active -> paused"),
        ("Source activate", "cy", "source 'Base Points' activate: status: paused -> active"),
        ("Source restriction added", "cy", "source 'Ride' restriction added: restrictions: [] "
         "-> [{\"max_points\": 100, \"per\": \"1d\", \"per_customer\": false}]"),
        ("Setting set", "dora", "setting 'timezone' set: timezone: none -> Europe/Berlin"),
        ("Account deactivate", "dora", "account 'Promo' deactivate: status: active -> "
         "inactive"),
        ("Source pause", "ops", "source 'Ride' pause: status: active -> paused (its inventory "
         "reached zero)"),
    ]
    # the issues did not empty Ride (20 + 20 of 50); the adjustment did, and paused it
    # JSON fields: the changes, field by field, and the state after them
    core = rows[4]
    assert core["changes"] == [{"field": "allow_negative", "old": True, "new": False},
                               {"field": "max_balance", "old": None, "new": 5000}]
    assert core["state"]["allow_negative"] is False and core["account"] == "Core"
    assert (core["modification"], core["time"]) == (0, "2026-03-02T09:00:00Z")
    # who switched off negative balances, and when?
    found = ok(cli, "2026-06-15T12:00:00Z", "report", "audit", "--type", "change", "--search",
               "allow_negative: true -> false")
    assert [(r["actor"], r["time"], r["account"]) for r in found] == [
        ("anna", "2026-03-02T09:00:00Z", "Core")]
    # the filters of the audit log find them: an account's, a source's
    assert [r["reference_type"] for r in changes(cli, "--account", "Promo")] == [
        "Account create", "Account expiration", "Account reactivation", "Account expiration",
        "Account deactivate"]
    assert [r["reference_type"] for r in changes(cli, "--source", "Base Points")] == [
        "Source create", "Source link", "Source edit", "Source pause", "Source activate"]
    # the CSV carries the note; the changes stay in JSON
    as_csv = cli.ok("report", "audit", "--type", "change", "--format", "csv").stdout
    assert "allow_negative: true -> false; max_balance: none -> 5000" in as_csv
    verify_clean(cli)


def test_an_issue_that_empties_a_source_records_its_pause(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default")
    ok(cli, T0, "sources", "create", "Ride", "--inventory", "30")
    ok(cli, T0, "--actor", "till-7", "issue", "ann", "30", "--source", "Ride")
    last = changes(cli)[-1]
    assert (last["reference_type"], last["actor"], last["note"], last["source"]) == (
        "Source pause", "till-7",
        "source 'Ride' pause: status: active -> paused (its inventory reached zero)", "Ride")
    # a batch that empties it pauses it once
    ok(cli, T0, "sources", "inventory", "Ride", "--adjust", "+5")
    ok(cli, T0, "sources", "activate", "Ride")
    lines = "\n".join(json.dumps({"op": "issue", "user": f"u{n}", "points": 1, "source": "Ride"})
                      for n in range(8))
    monkeypatch.chdir(tmp_path)  # (the rejected lines' file is written here)
    result = cli("batch", "-", "--input-format", "jsonl", input=lines + "\n", env=at(T0))
    assert result.exit_code == 1  # 3 of the 8 refused: the source paused at zero
    pauses = [r for r in changes(cli) if r["reference_type"] == "Source pause"]
    assert len(pauses) == 2


def test_config_apply_records_one_entry_per_object_it_changes(cli: Cli, tmp_path: Path
                                                             ) -> None:
    first = tmp_path / "one.toml"
    first.write_text("""
[program]
timezone = "Europe/Berlin"

[[accounts]]
name = "Core"
default = true

[[accounts]]
name = "Escrow"
allow_negative = false
expiration = { type = "rolling", older_than = "30d", rollover_to = "Core" }

[[sources]]
name = "Base"
accounts = ["Core", "Escrow"]
restrictions = [{ max_points = 100, per = "1d" }]
""")
    ok(cli, T0, "--actor", "ci", "config", "apply", str(first))
    assert brief(changes(cli)) == [
        ("Setting config apply", "ci", "setting 'timezone' config apply: timezone: none -> "
         "Europe/Berlin"),
        ("Account create", "ci", "account 'Core' created: name: none -> Core; default: none "
         "-> true; allow_negative: none -> true; qualifying: none -> false; status: none -> "
         "active"),
        ("Account create", "ci", "account 'Escrow' created: name: none -> Escrow; default: "
         "none -> false; allow_negative: none -> false; qualifying: none -> false; status: "
         "none -> active; expiration: none -> {\"every\": \"daily\", \"older_than\": \"30d\", "
         "\"rollover_to\": \"Core\", \"type\": \"rolling\"}"),
        ("Source create", "ci", "source 'Base' created: name: none -> Base; inventory: none "
         "-> unlimited; accounts: none -> [\"Core\", \"Escrow\"]; status: none -> active; "
         "restrictions: none -> [{\"max_points\": 100, \"per\": \"1d\", \"per_customer\": "
         "false}]"),
    ]
    # a dry run and an unchanged file record nothing
    before = snapshot(cli.url)
    ok(cli, T0, "config", "apply", str(first), "--dry-run")
    ok(cli, T0, "config", "apply", str(first))
    assert snapshot(cli.url) == before
    second = tmp_path / "two.toml"
    second.write_text(first.read_text().replace('older_than = "30d"', 'older_than = "60d"')
                      .replace("max_points = 100", "max_points = 50"))
    ok(cli, "2026-03-02T00:00:00Z", "--actor", "ci", "config", "apply", str(second))
    new = changes(cli)[4:]
    # one entry per object, with all the apply changed in it (in the order the apply came to
    # them: the sources' restrictions before the accounts' policies)
    assert brief(new) == [
        ("Source config apply", "ci", "source 'Base' config apply: restrictions: "
         "[{\"max_points\": 100, \"per\": \"1d\", \"per_customer\": false}] -> "
         "[{\"max_points\": 50, \"per\": \"1d\", \"per_customer\": false}]"),
        ("Account config apply", "ci", "account 'Escrow' config apply: expiration: "
         "{\"every\": \"daily\", \"older_than\": \"30d\", \"rollover_to\": \"Core\", \"type\": "
         "\"rolling\"} -> {\"every\": \"daily\", \"older_than\": \"60d\", \"rollover_to\": "
         "\"Core\", \"type\": \"rolling\"}"),
    ]


def test_export_at_rebuilds_the_program_as_it_was(cli: Cli, twin_url: str, tmp_path: Path
                                                  ) -> None:
    """Exports taken at three moments equal ``config export --at`` those moments, asked
    later; an exported past applied to a fresh database exports the same again."""
    saved = {}
    t1, t2, t3 = "2026-03-01T12:00:00Z", "2026-03-10T12:00:00Z", "2026-03-20T12:00:00Z"
    ok(cli, T0, "accounts", "create", "Core", "--default")
    ok(cli, T0, "accounts", "create", "Escrow", "--no-negative")
    ok(cli, T0, "sources", "create", "Base", "--link", "Core")
    ok(cli, T0, "sources", "create", "Ride", "--inventory", "1000", "--link", "Core",
       "--value", "0.005", "--currency", "USD")
    ok(cli, T0, "accounts", "expiration", "Escrow", "--rolling", "--older-than", "30d",
       "--rollover-to", "Core")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "100", "--source", "Ride")
    saved[t1] = export(cli, when=t1)
    ok(cli, "2026-03-05T00:00:00Z", "accounts", "edit", "Core", "--name", "Core Points",
       "--max-balance", "9000")
    ok(cli, "2026-03-05T00:00:00Z", "accounts", "edit", "Escrow", "--link", "Ride")
    ok(cli, "2026-03-05T00:00:00Z", "restrictions", "add", "Ride", "--max-points", "300",
       "--per", "1w", "--per-customer")
    ok(cli, "2026-03-06T00:00:00Z", "issue", "bob", "250", "--source", "Ride", "--account",
       "Escrow")
    reversed_ = ok(cli, "2026-03-07T00:00:00Z", "issue", "cy", "40", "--source", "Ride",
                   "--account", "Core Points")
    ok(cli, "2026-03-08T00:00:00Z", "reverse", "--entry", str(reversed_["entry"]))
    ok(cli, "2026-03-09T00:00:00Z", "config", "set", "timezone", "America/New_York")
    saved[t2] = export(cli, when=t2)
    ok(cli, "2026-03-15T00:00:00Z", "sources", "inventory", "Ride", "--adjust", "+500")
    ok(cli, "2026-03-15T00:00:00Z", "sources", "pause", "Base")
    ok(cli, "2026-03-15T00:00:00Z", "sources", "archive", "Base", "--yes")
    ok(cli, "2026-03-15T00:00:00Z", "accounts", "expiration", "Escrow", "--none")
    ok(cli, "2026-03-15T00:00:00Z", "accounts", "deactivate", "Escrow")
    saved[t3] = export(cli, when=t3)
    ok(cli, "2026-04-01T00:00:00Z", "accounts", "create", "Later")
    ok(cli, "2026-04-01T00:00:00Z", "accounts", "edit", "Core Points", "--name", "Core")
    assert len(set(saved.values())) == 3 and 'inventory = 650' in saved[t2]
    for moment, text in saved.items():
        assert export(cli, "--at", moment) == text, moment
    # the same moment in the program time zone (New York, UTC-4 then)
    assert export(cli, "--at", "2026-03-10T08:00:00") == saved[t2]
    # before the first change: an empty program
    assert export(cli, "--at", "2026-01-01") == ""
    # applied to a fresh database, the past exports the same
    past = tmp_path / "past.toml"
    cli.ok("config", "export", "--at", t2, "--output", str(past))
    twin = Cli(twin_url)
    twin.ok("config", "apply", str(past))
    assert twin.ok("config", "export").stdout == saved[t2]


def test_export_at_refuses_bad_moments(cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Core")
    for value, code, text in [
        ("", 2, "Error: invalid --at ''"),
        ("yesterday", 2, "Error: invalid --at 'yesterday'"),
        ("2026-06-15T12:05:00Z", 2, "Error: --at 2026-06-15T12:05:00Z is in the future (now is "
         "2026-06-15T12:00:00Z); the program can be rebuilt for the past and the present "
         "only"),
    ]:
        result = cli("config", "export", "--at", value)
        assert (result.exit_code, result.stdout) == (code, ""), (value, result.error)
        assert result.error.startswith(text) and len(result.error.splitlines()) == 1


def test_the_history_begins_with_the_upgrade_that_keeps_it(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that had a program before it kept changes: the upgrade records every
    account, source and setting as it is then; ``--at`` earlier is refused."""
    from alembic import command
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from pointctl.db.migrate import alembic_config, upgrade
    from pointctl.db.session import parse_url

    ok(cli, T0, "accounts", "create", "Core", "--default")
    ok(cli, T0, "accounts", "create", "Escrow")
    ok(cli, T0, "sources", "create", "Base", "--inventory", "70", "--link", "Escrow")
    ok(cli, T0, "restrictions", "add", "Base", "--max-points", "90", "--per", "1d")
    ok(cli, T0, "accounts", "expiration", "Escrow", "--rolling", "--older-than", "5d",
       "--rollover-to", "Core")
    ok(cli, T0, "config", "set", "timezone", "Europe/Paris")
    ok(cli, "2026-03-02T00:00:00Z", "issue", "ann", "20", "--source", "Base", "--account",
       "Escrow")
    engine = create_engine(parse_url(cli.url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0008_point_value")
    finally:
        engine.dispose()
    upgraded = "2026-04-01T00:00:00Z"
    monkeypatch.setenv("POINTCTL_NOW", upgraded)
    upgrade(cli.url)
    baseline = [r for r in changes(cli) if r["reference_type"].endswith("baseline")]
    assert [(r["reference_type"], r["time"]) for r in baseline] == [
        ("Setting baseline", upgraded), ("Account baseline", upgraded),
        ("Account baseline", upgraded), ("Source baseline", upgraded)]
    now = export(cli, when="2026-04-02T00:00:00Z")
    assert 'inventory = 50' in now and 'rollover_to = "Core"' in now
    assert export(cli, "--at", upgraded, when="2026-04-02T00:00:00Z") == now
    refused = cli("config", "export", "--at", "2026-03-31T23:59:59Z",
                  env=at("2026-04-02T00:00:00Z"))
    assert refused.exit_code == 1 and refused.error == (
        "Error: the change history begins at 2026-04-01T00:00:00Z, when this database was "
        "upgraded to keep it; the program cannot be rebuilt for an earlier moment")
    # the first change after it is told against the recorded state
    ok(cli, "2026-04-03T00:00:00Z", "sources", "edit", "Base", "--link", "Core")
    assert changes(cli)[-1]["note"] == ("source 'Base' edit: accounts: [\"Escrow\"] -> "
                                        "[\"Core\", \"Escrow\"]")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM entry WHERE type = 'change' "
                                       "AND detail IS NULL")).scalar_one() > 0
    engine.dispose()


def test_concurrent_links_to_one_source_are_all_in_its_recorded_state(cli: Cli) -> None:
    """Three rounds of twelve processes each linking a new account to one source at once:
    after each, the source's last recorded state names every account linked (each change is
    recorded under the source's row lock, after the changes committed before it)."""
    import tomllib

    ok(cli, T0, "accounts", "create", "Core")
    ok(cli, T0, "sources", "create", "Base", "--link", "Core")
    linked = ["Core"]
    for round_ in range(3):
        names = [f"A{round_}-{n}" for n in range(12)]
        for name in names:
            ok(cli, T0, "accounts", "create", name)
        results = run_workers(cli.url, [["accounts", "edit", name, "--link", "Base"]
                                        for name in names])
        assert [r.returncode for r in results] == [0] * 12, [r.stderr for r in results]
        linked += names
        current = export(cli)
        recorded = export(cli, "--at", "2026-06-15T12:00:00Z")
        assert tomllib.loads(recorded)["sources"][0]["accounts"] == linked
        assert recorded == current
