"""`pointctl customer USER`: the support desk's one-command view, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Cli, fork_cli, snapshot
from tests.test_expiry import at, ok
from tests.test_reports import SETUP, koalla

NOW = "2026-03-25T00:00:00Z"


def test_everything_about_one_customer(cli: Cli) -> None:
    koalla(cli)
    t = "2026-03-22T00:00:00Z"
    ok(cli, t, "restrictions", "add", "Partner", "--max-points", "100", "--per", "1w",
       "--per-customer")
    ok(cli, t, "restrictions", "add", "Partner", "--max-points", "1000", "--per", "1mo")
    ok(cli, t, "sources", "create", "Old")
    ok(cli, t, "restrictions", "add", "Old", "--max-points", "5", "--per", "1d")
    ok(cli, t, "sources", "pause", "Old")
    ok(cli, t, "sources", "archive", "Old", "--yes")
    ok(cli, "2026-03-23T10:00:00Z", "issue", "ann", "25", "--source", "Partner")  # 18
    ok(cli, "2026-03-23T11:00:00Z", "issue", "cy", "10", "--source", "Partner")        # 19
    ok(cli, "2026-03-24T09:00:00Z", "activity", "ann", "login")
    view = ok(cli, NOW, "customer", "ann", "--entries", "3")
    assert {k: view[k] for k in ("user", "at", "first_entry", "last_entry", "last_activity",
                                 "last_event", "last_event_at")} == {
        "user": "ann", "at": NOW, "first_entry": "2026-03-01T10:00:00Z",
        "last_entry": "2026-03-23T10:00:00Z", "last_activity": "2026-03-24T09:00:00Z",
        "last_event": "login", "last_event_at": "2026-03-24T09:00:00Z"}
    assert view["accounts"] == ok(cli, NOW, "balance", "ann")["accounts"]
    assert [(a["account"], a["balance"], a["available"]) for a in view["accounts"]] == [
        ("Core", 115, 115)]
    # the latest entries, newest first, with what became of each credit
    assert [(e["id"], e["type"], e["modification"], e["amount_spent"], e["amount_expired"])
            for e in view["entries"]] == [(SETUP + 6 + 18, "issue", 25, 0, 0),  # 6 changes since
                                          (SETUP + 7, "transfer", 30, 0, 0),
                                          (SETUP + 5, "reversal", 30, None, None)]
    assert view["entries_total"] == 6
    # the Partner restrictions, per customer (ann's use) and system (everyone's); not the
    # archived source's
    assert [(r["source"], r["scope"], r["max_points"], r["per"], r["used"], r["left"])
            for r in view["restrictions"]] == [
        ("Partner", "per customer", 100, "1w", 25, 75),
        ("Partner", "system", 1000, "1mo", 125, 875)]  # 50 + 40 + 25 + 10 since 02-25
    # Core has no expiration policy
    assert view["expiring"] == []
    assert [(s["within"], s["expires"], s["rolls_over"]) for s in view["expiring_summary"]] == [
        ("30d", 0, 0), ("60d", 0, 0), ("90d", 0, 0)]
    # dan's 20 reactivated Promo points expire at the first daily evaluation 5 days on
    dan = ok(cli, NOW, "customer", "dan")
    assert dan["expiring"] == [{"account": "Promo", "at": "2026-03-27T00:00:00Z",
                                "expires": 20, "rolls_over": 0, "into": None}]
    assert [(s["within"], s["expires"]) for s in dan["expiring_summary"]] == [
        ("30d", 20), ("60d", 20), ("90d", 20)]
    assert dan["last_event"] is None and dan["last_activity"] == "2026-03-08T10:00:00Z"


def test_table_and_csv(cli: Cli) -> None:
    koalla(cli)
    table = cli.ok("customer", "dan", env=at(NOW))
    for title in ("Customer dan", "Balances", "Expiring if nothing else happens",
                  "Coming evaluations", "Latest entries"):
        assert title in table.stdout
    assert "No restrictions apply." in table.stderr
    ann = cli.ok("customer", "ann", "--entries", "2", env=at(NOW))
    assert "Latest entries (2 of 5)" in ann.stdout
    assert "Showing the latest 2 of 5 entries; see 'pointctl report audit --user ann'" in \
        ann.stderr
    rows = list(csv.DictReader(io.StringIO(
        cli.ok("customer", "dan", "--format", "csv", env=at(NOW)).stdout)))
    sections: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        sections[row["section"]].append(row)
    assert list(sections) == ["seen", "balance", "expiring_summary", "expiring", "entry"]
    assert sections["seen"][0]["first_entry"] == "2026-03-08T10:00:00Z"
    assert [(r["account"], r["balance"]) for r in sections["balance"]] == [("Promo", "20")]
    assert [(r["account"], r["at"], r["expires"]) for r in sections["expiring"]] == [
        ("Promo", "2026-03-27T00:00:00Z", "20")]
    assert [r["type"] for r in sections["entry"]] == ["reactivation", "expiration", "issue"]
    # each row fills its own section's columns only
    assert sections["seen"][0]["at"] == "" and sections["entry"][0]["user"] == ""
    assert sections["balance"][0]["type"] == "" and sections["expiring"][0]["group"] == ""


def test_a_schedule_too_frequent_to_walk_leaves_the_rest_of_the_view(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    koalla(cli)
    from pointctl.services import expiry

    monkeypatch.setattr(expiry, "MAX_EVALUATIONS", 50)  # Promo is evaluated daily: 90 > 50
    dan = ok(cli, NOW, "customer", "dan")
    assert dan["expiring"] == [] and dan["expiring_summary"] == []
    assert dan["expiring_unavailable"].startswith("more than 50 evaluations of one account")
    assert dan["accounts"][0]["balance"] == 20 and dan["entries"]
    table = cli.ok("customer", "dan", env=at(NOW))
    assert "Expiring: not worked out: more than 50 evaluations" in table.stderr
    assert "Balances" in table.stdout and "Latest entries" in table.stdout


def test_unknown_user_and_bad_input(cli: Cli) -> None:
    koalla(cli)
    before = snapshot(cli.url)
    nobody = cli("customer", "zed", env=at(NOW))
    assert (nobody.exit_code, nobody.error, nobody.stdout) == (
        3, "Error: no entries for user 'zed'", "")
    for args, code, text in [
        (["customer", "ann", "--entries", "0"], 2, "--entries must be between 1 and 1000"),
        (["customer", "ann", "--entries", "1001"], 2, "--entries must be between 1 and 1000"),
        (["customer", "ann", "--entries", "x"], 2, "--entries must be a whole number, got 'x'"),
        (["customer", " "], 2, "user"),
        (["customer", "ann", "--format", "xml"], 2, "'xml' is not one of"),
    ]:
        result = cli(*args, env=at(NOW))
        assert result.exit_code == code, (args, result.error)
        assert result.error.startswith("Error:") and text in result.error, result.error
        assert len(result.error.splitlines()) == 1
    assert snapshot(cli.url) == before


# --- the coming expirations agree with `expire preview` ----------------------------------------

def expiring_program(cli: Cli) -> None:
    """Every kind of policy, a rollover into an account that delays and then expires, in
    New York time; an `expire run` a while ago, so some evaluations are overdue."""
    setup, t0 = "2025-03-01T12:00:00Z", "2026-01-01T12:00:00Z"
    ok(cli, setup, "config", "set", "timezone", "America/New_York")
    ok(cli, setup, "accounts", "create", "Core", "--default")
    for name in ("Escrow", "Year", "Anniv"):
        ok(cli, setup, "accounts", "create", name)
    for name in ("Held", "Promo"):
        ok(cli, setup, "accounts", "create", name, "--pending-for", "3d")
    ok(cli, setup, "sources", "create", "Base")
    # u5 enrolled on 10 March 2025: the anniversary of 10 March 2026 expires these
    ok(cli, "2025-03-10T18:00:00Z", "issue", "u5", "45", "--source", "Base", "--account",
       "Anniv")
    policies = {
        "Escrow": ["--rolling", "--older-than", "10d", "--rollover-to", "Held",
                   "--every", "daily"],
        "Held": ["--rolling", "--older-than", "20d", "--every", "daily at 03:00"],
        "Core": ["--rolling", "--older-than", "2mo", "--snap-to", "month",
                 "--every", "monthly on 1"],
        "Promo": ["--inactivity", "--inactive-for", "14d", "--percent", "50",
                  "--activity", "login", "--every", "weekly on monday"],
        "Year": ["--fixed-date", "04-01", "--min-age", "30d", "--every", "daily"],
        "Anniv": ["--rolling", "--older-than", "1mo", "--snap-to", "anniversary",
                  "--every", "daily"],
    }
    for account, args in policies.items():
        ok(cli, t0, "accounts", "expiration", account, *args)
    accounts = list(policies)
    for day in range(3, 52, 4):  # 3 January .. 20 February
        moment = f"2026-{1 + (day - 1) // 31:02d}-{(day - 1) % 31 + 1:02d}T15:30:00Z"
        for n, user in enumerate(("u1", "u2", "u3", "u4")):
            account = accounts[(day + n) % len(accounts)]
            ok(cli, moment, "issue", user, str(10 * (n + 1) + day), "--source", "Base",
               "--account", account)
        if day % 8 == 3:
            ok(cli, moment, "spend", "u2", "7", "--account", accounts[day % len(accounts)])
    ok(cli, "2026-02-10T14:00:00Z", "activity", "u3", "login")
    ok(cli, "2026-02-01T12:00:00Z", "expire", "run")


def test_coming_expirations_agree_with_expire_preview(cli: Cli) -> None:
    expiring_program(cli)
    now = "2026-02-25T12:00:00Z"
    expected: dict[str, list[tuple]] = defaultdict(list)
    for row in ok(cli, now, "expire", "preview", "--within", "90d"):
        expected[row["user"]].append((row["account"], row["at"], row["expires"],
                                      row["rolls_over"]))
    kinds = set()
    for user in ("u1", "u2", "u3", "u4", "u5"):
        # the view is as after a punctual run: the overdue evaluations have taken their points
        view = ok(cli, now, "customer", user)
        found = [(r["account"], r["at"], r["expires"], r["rolls_over"]) for r in view["expiring"]]
        assert sorted(found) == sorted(r for r in expected[user] if r[1] > now), user
        kinds |= {r["account"] for r in view["expiring"]}
        horizon = {s["within"]: s for s in view["expiring_summary"]}
        assert horizon["90d"]["expires"] == sum(r[2] for r in found)
        assert horizon["90d"]["rolls_over"] == sum(r[3] for r in found)
        assert horizon["30d"]["expires"] <= horizon["60d"]["expires"] <= \
            horizon["90d"]["expires"]
    # every kind of policy took part; some evaluations were overdue
    assert kinds == {"Escrow", "Held", "Core", "Promo", "Year", "Anniv"}
    assert any(r[1] < now for rows in expected.values() for r in rows)


# --- one snapshot while others write -----------------------------------------------------------

def test_the_view_is_one_snapshot_while_other_processes_write(cli: Cli, tmp_path: Path) -> None:
    """Two `batch` processes commit issues and spends of one customer, one operation per
    transaction, while `customer` reads (in the test's own process): every view's balances
    equal the sum of the entries it lists, however the commits fall between its queries."""
    ok(cli, "2026-03-01T00:00:00Z", "accounts", "create", "Core", "--default")
    ok(cli, "2026-03-01T00:00:00Z", "sources", "create", "Base")
    files = []
    for worker in range(2):
        ops = [{"op": "issue", "user": "hot", "points": 10 + worker, "source": "Base"}
               if n % 3 else {"op": "spend", "user": "hot", "points": 3} for n in range(300)]
        path = tmp_path / f"ops{worker}.jsonl"
        path.write_text("".join(json.dumps(op) + "\n" for op in ops))
        files.append(path)
    ok(cli, "2026-03-01T00:00:00Z", "issue", "hot", "5", "--source", "Base")
    # processes of their own, forked from this one (pointctl is imported already)
    writers = [fork_cli(cli.url, "batch", str(path), "--chunk-size", "1") for path in files]
    seen = set()
    try:
        while any(writer.poll() is None for writer in writers) or len(seen) < 2:
            # read in this process, on its own connection, while the writers commit
            view = cli.json("customer", "hot", "--entries", "1000")
            assert isinstance(view, dict)
            assert view["entries_total"] == len(view["entries"])
            listed = sum(entry["modification"] for entry in view["entries"])
            assert [a["balance"] for a in view["accounts"]] == [listed]
            seen.add(len(view["entries"]))
            if len(seen) >= 6:
                break
    finally:
        for writer in writers:
            done = writer.result(timeout=120)
            assert done.exit_code == 0, done.stderr
    assert len(seen) >= 2  # the views fell between different commits
