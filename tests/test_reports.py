"""Reports: audit filters and search, liability (cohort and daily), the point-source
report with chart, export and e-mail, and the shared date filters, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import random
import socket
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pointctl.core import periods
from pointctl.core.errors import InvalidInputError
from tests.helpers import Cli, snapshot
from tests.test_expiry import at, ok, query

# --- a small program with every kind of entry -------------------------------------------------


# the program's set-up comes first in the audit log, as 8 change entries: ledger entry n of
# ``koalla`` (numbered in its comments) has the id SETUP + n
SETUP = 8


def koalla(cli: Cli) -> None:
    """Base and Partner sources; a partly reversed spend, a transfer, an issue returned, an
    expiration, an escrow rollover and a reactivation, all in March 2026 (UTC)."""
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "create", "Escrow")
    ok(cli, t0, "accounts", "create", "Promo")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "sources", "create", "Partner", "--link", "Core")
    ok(cli, t0, "accounts", "expiration", "Promo", "--rolling", "--older-than", "5d",
       "--every", "daily")
    ok(cli, t0, "accounts", "expiration", "Escrow", "--rolling", "--older-than", "10d",
       "--rollover-to", "Core", "--every", "daily")
    ok(cli, t0, "accounts", "reactivation", "Promo", "--window", "30d")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "100", "--source", "Base", "--account",
       "Core", "--reference-id", "order-1")                                       # entry 1
    ok(cli, "2026-03-02T10:00:00Z", "issue", "ann", "50", "--source", "Partner",
       "--reference-id", "ride-9")                                                # 2
    ok(cli, "2026-03-03T10:00:00Z", "spend", "ann", "120", "--reference-id", "order-2")  # 3
    ok(cli, "2026-03-04T10:00:00Z", "issue", "bob", "80", "--source", "Base", "--account",
       "Escrow")                                                                  # 4
    ok(cli, "2026-03-05T10:00:00Z", "reverse", "--entry", str(SETUP + 3), "--points",
       "30")                                                                      # 5
    ok(cli, "2026-03-06T10:00:00Z", "transfer", "bob", "30", "--from", "Escrow", "--to", "Core",
       "--to-user", "ann")                                                        # 6, 7
    ok(cli, "2026-03-07T10:00:00Z", "issue", "cy", "40", "--source", "Partner")   # 8
    ok(cli, "2026-03-07T11:00:00Z", "reverse", "--entry", str(SETUP + 8), "--points",
       "15")                                                                      # 9
    ok(cli, "2026-03-08T10:00:00Z", "issue", "dan", "60", "--source", "Base", "--account",
       "Promo")                                                                   # 10
    # Promo expires dan's 60 at the 03-14 evaluation, Escrow rolls bob's 50 at 03-15
    ok(cli, "2026-03-20T00:00:00Z", "expire", "run")                              # 11, 12, 13
    ok(cli, "2026-03-21T10:00:00Z", "reactivate", "dan", "--account", "Promo", "--points",
       "20")                                                                      # 14


def audit(cli: Cli, *args: str, when: str = "2026-03-25T00:00:00Z") -> list[dict[str, Any]]:
    """The ledger's rows of the audit log (the program's changes left out)."""
    return [row for row in ok(cli, when, "report", "audit", *args) if row["type"] != "change"]


def brief(rows: list[dict[str, Any]]) -> list[tuple]:
    """Rows of ``koalla``'s ledger, numbered as in its comments."""
    return [(r["id"] - SETUP, r["type"], r["user"], r["modification"]) for r in rows]


def test_audit_columns_filters_and_what_became_of_each_credit(cli: Cli) -> None:
    koalla(cli)
    rows = audit(cli, "--user", "ann")
    assert {"id", "user", "account", "source", "type", "reference_id", "reference_type",
            "modification", "amount_spent", "amount_expired", "actor", "time"} <= set(rows[0])
    assert brief(rows) == [(7, "transfer", "ann", 30), (5, "reversal", "ann", 30),
                           (3, "spend", "ann", -120), (2, "issue", "ann", 50),
                           (1, "issue", "ann", 100)]
    first = rows[-1]
    assert {key: first[key] for key in ("account", "source", "reference_id", "reference_type",
                                        "amount_spent", "amount_expired", "actor", "time")} == {
        "account": "Core", "source": "Base", "reference_id": "order-1",
        "reference_type": "Point Issuance", "amount_spent": 90, "amount_expired": 0,
        "actor": "tester", "time": "2026-03-01T10:00:00Z"}
    # a spend has no amount spent/expired; the issue to ann via Partner was spent, then restored
    assert (rows[2]["amount_spent"], rows[1]["amount_spent"], rows[3]["amount_spent"]) == \
        (None, None, 0)
    dan = audit(cli, "--user", "dan")
    assert brief(dan) == [(14, "reactivation", "dan", 20), (11, "expiration", "dan", -60),
                          (10, "issue", "dan", 60)]
    # the reactivation is a credit row of its own: the 60 points did expire
    assert (dan[2]["amount_spent"], dan[2]["amount_expired"]) == (0, 60)
    assert brief(audit(cli, "--account", "Escrow")) == [
        (12, "rollover", "bob", -50), (6, "transfer", "bob", -30), (4, "issue", "bob", 80)]
    assert brief(audit(cli, "--source", "Partner")) == [
        (9, "reversal", "cy", -15), (8, "issue", "cy", 40), (2, "issue", "ann", 50)]
    assert brief(audit(cli, "--type", "rollover", "--type", "expiration")) == [
        (13, "rollover", "bob", 50), (12, "rollover", "bob", -50),
        (11, "expiration", "dan", -60)]
    # the reversal carries the reference of the spend it undoes
    assert brief(audit(cli, "--reference-id", "order-2")) == [(5, "reversal", "ann", 30),
                                                              (3, "spend", "ann", -120)]
    assert brief(audit(cli, "--from", "2026-03-07", "--to", "2026-03-07")) == [
        (9, "reversal", "cy", -15), (8, "issue", "cy", 40)]
    assert brief(audit(cli, "--user", "ann", "--type", "issue", "--source", "Base")) == [
        (1, "issue", "ann", 100)]
    # every credit row accounts for all its points; other rows carry no figures
    figures = ("amount_spent", "amount_expired", "amount_transferred", "amount_reversed",
               "amount_adjusted", "amount_remaining")
    every = {r["id"] - SETUP: r for r in audit(cli)}
    became = {i: tuple(every[i][f] for f in figures) for i in every
              if every[i]["amount_remaining"] is not None}
    assert became == {
        1: (90, 0, 0, 0, 0, 10), 2: (0, 0, 0, 0, 0, 50),  # 120 spent, 30 of it given back
        4: (0, 50, 30, 0, 0, 0),  # 30 transferred, the rest rolled over out of escrow
        7: (0, 0, 0, 0, 0, 30), 8: (0, 0, 0, 15, 0, 25), 10: (0, 60, 0, 0, 0, 0),
        13: (0, 0, 0, 0, 0, 50), 14: (0, 0, 0, 0, 0, 20)}
    for i, parts in became.items():
        assert every[i]["modification"] == sum(parts)
    assert all(every[i][f] is None for i in set(every) - set(became) for f in figures)
    # repeated --account / --source mean "any of these", newest first as always
    escrow, promo = audit(cli, "--account", "Escrow"), audit(cli, "--account", "Promo")
    both = audit(cli, "--account", "Escrow", "-a", "promo", "--account", "ESCROW")
    assert sorted(brief(both)) == sorted(brief(escrow) + brief(promo)) and len(both) == 6
    assert [r["time"] for r in both] == sorted((r["time"] for r in both), reverse=True)
    two = audit(cli, "--source", "Partner", "--source", "Base", "--user", "ann")
    assert sorted(brief(two)) == sorted(
        brief(audit(cli, "--source", "Partner", "--user", "ann"))
        + brief(audit(cli, "--source", "Base", "--user", "ann")))
    assert {2, 1} <= {r["id"] - SETUP for r in two}
    assert {r["source"] for r in two} == {"Base", "Partner"}
    refused = cli("report", "audit", "--source", "Base", "--source", "Nope",
                  env=at("2026-03-25T00:00:00Z"))
    assert refused.exit_code == 3 and "no source named 'Nope'" in refused.stderr
    # every column of the table
    table = cli.ok("report", "audit", "--user", "dan", env=at("2026-03-25T00:00:00Z")).stdout
    for header in ("id", "user", "account", "source", "type", "reference id", "reference type",
                   "modification", "amount spent", "amount expired", "actor", "time (UTC)"):
        assert header in table


def test_a_manual_subtraction_is_adjusted_never_spent_or_redeemed(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "100", "--source", "Base")
    ok(cli, "2026-03-02T10:00:00Z", "adjust", "ann", "-40", "--account", "Core", "--reason",
       "chargeback")
    ok(cli, "2026-03-03T10:00:00Z", "spend", "ann", "10")
    issued = audit(cli, "--type", "issue")[0]
    assert {k: v for k, v in issued.items() if k.startswith("amount_")} == {
        "amount_spent": 10, "amount_expired": 0, "amount_transferred": 0, "amount_reversed": 0,
        "amount_adjusted": 40, "amount_remaining": 50}
    days = ok(cli, "2026-03-25T00:00:00Z", "report", "sources", "--from", "2026-03-01",
              "--to", "2026-03-03")["rows"]
    assert [(r["day"], r["redeemed"], r["adjusted"]) for r in days] == [
        ("2026-03-01", 0, 0), ("2026-03-02", 0, 40), ("2026-03-03", 10, 0)]
    assert days[-1]["cumulative_adjusted"] == 40 and days[-1]["cumulative_redeemed"] == 10
    (liability,) = ok(cli, "2026-03-25T00:00:00Z", "report", "liability")
    assert {k: liability[k] for k in ("issued", "spent", "adjusted", "liability")} == {
        "issued": 100, "spent": 10, "adjusted": 40, "liability": 50}
    table = cli.ok("report", "audit", env=at("2026-03-25T00:00:00Z")).stdout
    assert "remaining" in table and "amount transferred" not in table
    as_csv = cli.ok("report", "audit", "--format", "csv", env=at("2026-03-25T00:00:00Z")).stdout
    header = as_csv.splitlines()[0].split(",")
    assert header[8:14] == ["amount_spent", "amount_expired", "amount_transferred",
                            "amount_reversed", "amount_adjusted", "amount_remaining"]


def test_audit_counts_more_matches_only_up_to_a_cap(cli: Cli,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pointctl.services import reports

    koalla(cli)
    monkeypatch.setattr(reports, "COUNT_CAP", 10)
    result = cli.ok("report", "audit", "--limit", "3", env=at("2026-03-25T00:00:00Z"))
    assert result.error == ("Showing the newest 3 of more than 10 matching entries; more than "
                            "7 more matched (raise --limit or narrow the filters)")
    monkeypatch.setattr(reports, "COUNT_CAP", SETUP + 14)  # every entry, the changes too
    result = cli.ok("report", "audit", "--limit", "3", env=at("2026-03-25T00:00:00Z"))
    assert result.error.startswith("Showing the newest 3 of 22 matching entries; 19 more")


def test_audit_limit_says_how_many_more_matched(cli: Cli) -> None:
    koalla(cli)
    result = cli.ok("report", "audit", "--limit", "3", "--format", "json",
                    env=at("2026-03-25T00:00:00Z"))
    assert [row["id"] for row in json.loads(result.stdout)] == [SETUP + 14, SETUP + 13, SETUP + 12]
    assert result.error == ("Showing the newest 3 of 22 matching entries; 19 more matched "
                            "(raise --limit or narrow the filters)")
    exact = cli.ok("report", "audit", "--user", "ann", "--limit", "5")
    assert exact.error == ""  # all 5 shown: no note


HOSTILE = ["50%off", "a_b", "o'neil", 'say "hi"', "x'); DROP TABLE entry; --", "back\\slash",
           "100% _sure_"]


def test_search_treats_hostile_strings_as_plain_text(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, t0, "issue", "plain", "1", "--source", "Base", "--reference-id", "aXb")
    for n, reference in enumerate(HOSTILE):
        ok(cli, f"2026-03-02T0{n}:00:00Z", "issue", f"user{n}", "1", "--source", "Base",
           "--reference-id", reference)
    before = snapshot(cli.url)

    def found(text: str) -> list[str]:
        return sorted(r["reference_id"] for r in audit(cli, "--search", text))

    assert found("%") == ["100% _sure_", "50%off"]
    assert found("_") == ["100% _sure_", "a_b"]  # not "any character": aXb stays out
    assert found("a_b") == ["a_b"]
    assert found("'") == ["o'neil", "x'); DROP TABLE entry; --"]
    assert found('"') == ['say "hi"']
    assert found("DROP TABLE entry") == ["x'); DROP TABLE entry; --"]
    assert found("'); DROP TABLE entry; --") == ["x'); DROP TABLE entry; --"]
    assert found("\\") == ["back\\slash"]
    assert found("OFF") == ["50%off"]  # any case
    assert found("%%") == []
    assert found("' OR '1'='1") == []
    assert found("user3") == ['say "hi"']  # the user column too
    assert found("issuance") == sorted(["aXb", *HOSTILE])  # and the reference type
    empty = cli.ok("report", "audit", "--search", "zzz")
    assert (empty.stdout, empty.error) == ("", "No entries.")
    assert snapshot(cli.url) == before


# --- liability --------------------------------------------------------------------------------

def liability(cli: Cli, *args: str) -> dict[str, tuple[int, ...]]:
    rows = ok(cli, "2026-03-25T00:00:00Z", "report", "liability", *args)
    return {r["source"]: (r["issued"], r["reversed"], r["spent"], r["expired"], r["liability"])
            for r in rows}


def test_liability_follows_issued_points_through_moves(cli: Cli) -> None:
    koalla(cli)
    # Base: ann 100 (90 spent), bob 80 (30 to ann, 50 rolled to Core), dan 60 (expired, 20
    # reactivated); Partner: ann 50 (spent 20, restored), cy 40 (15 returned)
    assert liability(cli) == {"Base": (240, 0, 90, 40, 110), "Partner": (90, 15, 0, 0, 75)}
    assert liability(cli, "--from", "2026-03-04", "--to", "2026-03-08") == {
        "Base": (140, 0, 0, 40, 100), "Partner": (40, 15, 0, 0, 25)}
    assert liability(cli, "--source", "partner", "--to", "2026-03-02") == {
        "Partner": (50, 0, 0, 0, 50)}
    assert liability(cli, "--last-month") == {"Base": (0, 0, 0, 0, 0),
                                              "Partner": (0, 0, 0, 0, 0)}
    # liability is what customers hold: the remaining points of the lots that came from them
    held = query(cli.url, "SELECT s.name, SUM(l.remaining) FROM lot l "
                          "JOIN source s ON s.id = l.source_id GROUP BY s.name")
    assert dict(held) == {"Base": 110, "Partner": 75}
    table = cli.ok("report", "liability", env=at("2026-03-25T00:00:00Z")).stdout
    assert "Total" in table and "330" in table and "185" in table
    as_csv = cli.ok("report", "liability", "--format", "csv",
                    env=at("2026-03-25T00:00:00Z")).stdout
    assert as_csv.splitlines() == [
        "source,issued,reversed,spent,adjusted,expired,liability,written_off,liability_value,"
        "point_value,currency", "Base,240,0,90,0,40,110,0,,,", "Partner,90,15,0,0,0,75,0,,,"]


def test_liability_daily_opening_flows_and_closing(cli: Cli) -> None:
    koalla(cli)
    found = ok(cli, "2026-03-25T00:00:00Z", "report", "liability", "--daily", "--from",
               "2026-03-03", "--to", "2026-03-05")
    assert (found["first"], found["last"], found["zone"]) == ("2026-03-03", "2026-03-05", "UTC")
    figures = [(r["day"], r["source"], r["opening"], r["issued"], r["redeemed"], r["expired"],
                r["reversed"], r["closing"]) for r in found["rows"]]
    assert figures == [
        ("2026-03-03", "Base", 100, 0, 100, 0, 0, 0),
        ("2026-03-04", "Base", 0, 80, 0, 0, 0, 80),
        ("2026-03-05", "Base", 80, 0, -10, 0, 0, 90),   # the spend reversal gives back 10
        ("2026-03-03", "Partner", 50, 0, 20, 0, 0, 30),
        ("2026-03-04", "Partner", 30, 0, 0, 0, 0, 30),
        ("2026-03-05", "Partner", 30, 0, -20, 0, 0, 50),
    ]
    later = ok(cli, "2026-03-25T00:00:00Z", "report", "liability", "--daily", "--source",
               "Base", "--from", "2026-03-14", "--to", "2026-03-21", "--format", "json")
    days = {r["day"]: (r["opening"], r["expired"], r["closing"]) for r in later["rows"]}
    assert days["2026-03-14"] == (150, 60, 90)    # dan's 60 expire
    assert days["2026-03-15"] == (90, 0, 90)      # bob's 50 roll over: still Base's
    assert days["2026-03-21"] == (90, -20, 110)   # 20 reactivated
    # before the first lot: one day of zeros, not days outside the period
    early = ok(cli, "2026-03-25T00:00:00Z", "report", "liability", "--daily", "--to",
               "2026-02-01")
    assert [(r["day"], r["opening"], r["closing"]) for r in early["rows"]] == [
        ("2026-02-01", 0, 0), ("2026-02-01", 0, 0)]
    rows = cli.ok("report", "liability", "--daily", "--from", "2026-03-03", "--to",
                  "2026-03-03", "--format", "csv", env=at("2026-03-25T00:00:00Z")).stdout
    assert rows.splitlines() == [
        "day,source,opening,issued,redeemed,adjusted,expired,reversed,closing",
        "2026-03-03,Base,100,0,100,0,0,0,0", "2026-03-03,Partner,50,0,20,0,0,0,30"]


def _held_per_source(url: str) -> dict[str, int]:
    return {name: int(points) for name, points in query(
        url, "SELECT s.name, COALESCE(SUM(l.remaining), 0) FROM source s "
             "LEFT JOIN lot l ON l.source_id = s.id GROUP BY s.name")}


@pytest.mark.parametrize("seed", [2026])
def test_daily_closing_equals_the_lots_left_at_the_end_of_each_day(cli: Cli, seed: int) -> None:
    """A random ledger over 10 days across the end of daylight saving time in New York:
    each day's closing figure is what that source's lots held at the end of that day."""
    rng = random.Random(seed)
    zone = ZoneInfo("America/New_York")
    t0 = "2026-10-27T00:00:00Z"
    ok(cli, t0, "config", "set", "timezone", "America/New_York")
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "accounts", "create", "Escrow")
    ok(cli, t0, "accounts", "create", "Promo", "--no-negative")
    for name in ("Base", "Card", "Ride"):
        ok(cli, t0, "sources", "create", name)
    ok(cli, t0, "accounts", "expiration", "Escrow", "--rolling", "--older-than", "2d",
       "--rollover-to", "Core", "--every", "daily at 03:00")
    ok(cli, t0, "accounts", "expiration", "Promo", "--rolling", "--older-than", "3d",
       "--every", "daily at 01:00")
    ok(cli, t0, "accounts", "reactivation", "Promo", "--window", "30d")
    users = ["u1", "u2", "u3", "u4"]
    first = date(2026, 10, 28)
    held: dict[str, dict[str, int]] = {}
    credits: list[int] = []
    spends: list[int] = []
    for n in range(10):
        day = first + timedelta(days=n)
        start = periods.local_midnight(day, zone)
        moments = sorted(start + timedelta(minutes=rng.randrange(5, 23 * 60))
                         for _ in range(8))
        for moment in moments:
            when = moment.isoformat() + "Z"
            action = rng.choice(["issue", "issue", "issue", "spend", "spend", "transfer",
                                 "adjust", "reverse-spend", "reverse-issue", "expire",
                                 "reactivate"])
            user = rng.choice(users)
            if action == "issue":
                result = cli("issue", user, str(rng.randrange(1, 200)), "--source",
                             rng.choice(["Base", "Card", "Ride"]), "--account",
                             rng.choice(["Core", "Escrow", "Promo"]), "--format", "json",
                             env=at(when))
                if result.exit_code == 0:
                    credits.append(json.loads(result.stdout)["entry"])
            elif action == "spend":
                result = cli("spend", user, str(rng.randrange(1, 150)), "--format", "json",
                             env=at(when))
                if result.exit_code == 0:
                    spends += [part["entry"] for part in json.loads(result.stdout)["entries"]]
            elif action == "transfer":
                giver = rng.choice(["Core", "Escrow"])
                cli("transfer", user, str(rng.randrange(1, 30)), "--from", giver, "--to",
                    "Promo", "--to-user", rng.choice(users), env=at(when))
            elif action == "adjust":
                cli("adjust", user, str(rng.choice([-1, 1]) * rng.randrange(1, 40)),
                    "--account", "Core", "--reason", "goodwill", "--source", "Card",
                    env=at(when))
            elif action == "reverse-spend" and spends:
                cli("reverse", "--entry", str(rng.choice(spends)), "--points",
                    str(rng.randrange(1, 30)), env=at(when))
            elif action == "reverse-issue" and credits:
                cli("reverse", "--entry", str(rng.choice(credits)), "--points",
                    str(rng.randrange(1, 30)), env=at(when))
            elif action == "expire":
                cli.ok("expire", "run", env=at(when))
            elif action == "reactivate":
                cli("reactivate", user, "--account", "Promo", env=at(when))
        end = periods.local_midnight(day + timedelta(days=1), zone)
        cli.ok("expire", "run", env=at((end - timedelta(seconds=1)).isoformat() + "Z"))
        held[day.isoformat()] = _held_per_source(cli.url)
    assert cli("verify").exit_code == 0
    kinds = {kind for (kind,) in query(cli.url, "SELECT DISTINCT kind FROM draw")}
    assert {"spend", "transfer", "rollover", "expire"} <= kinds, kinds
    report = ok(cli, "2026-11-10T12:00:00Z", "report", "liability", "--daily", "--from",
                "2026-10-28", "--to", "2026-11-06")
    closing = {(r["day"], r["source"]): r["closing"] for r in report["rows"]}
    assert len(closing) == 30
    for day, per_source in held.items():
        for source, points in per_source.items():
            assert closing[(day, source)] == points, (day, source)
    for row in report["rows"]:
        assert row["closing"] == row["opening"] + row["issued"] - row["redeemed"] - \
            row["adjusted"] - row["expired"] - row["reversed"]
    # the cohort report over the same days agrees with the change in outstanding points
    cohort = ok(cli, "2026-11-10T12:00:00Z", "report", "liability", "--from", "2026-10-28",
                "--to", "2026-11-06")
    for row in cohort:
        assert row["issued"] == row["reversed"] + row["spent"] + row["adjusted"] + \
            row["expired"] + row["liability"]
        assert row["liability"] == held["2026-11-06"][row["source"]]
    assert sum(row["adjusted"] for row in cohort) > 0
    # every credit row of the audit log accounts for all its points
    rows = ok(cli, "2026-11-10T12:00:00Z", "report", "audit", "--limit", "1000")
    credited = [r for r in rows if r["amount_remaining"] is not None]
    assert {r["type"] for r in credited} >= {"issue", "transfer", "rollover", "adjustment"}
    for r in credited:
        assert r["modification"] == sum(r[f"amount_{c}"] for c in (
            "spent", "expired", "transferred", "reversed", "adjusted", "remaining")), r


# --- the point-source report ------------------------------------------------------------------

SOURCE_ROWS = [
    "day,source,issued,redeemed,adjusted,expired,cumulative_issued,cumulative_redeemed,"
    "cumulative_adjusted,cumulative_expired",
    "2026-03-03,Base,0,100,0,0,0,100,0,0",
    "2026-03-04,Base,80,0,0,0,80,100,0,0",
    "2026-03-05,Base,0,-10,0,0,80,90,0,0",
    "2026-03-03,Partner,0,20,0,0,0,20,0,0",
    "2026-03-04,Partner,0,0,0,0,0,20,0,0",
    "2026-03-05,Partner,0,-20,0,0,0,0,0,0",
]
RANGE = ("--from", "2026-03-03", "--to", "2026-03-05")


def test_sources_report_daily_cumulative_chart_csv_and_json(cli: Cli) -> None:
    koalla(cli)
    when = at("2026-03-25T00:00:00Z")
    as_csv = cli.ok("report", "sources", *RANGE, "--format", "csv", env=when).stdout
    assert as_csv.splitlines() == SOURCE_ROWS
    as_json = json.loads(cli.ok("report", "sources", *RANGE, "--format", "json",
                                env=when).stdout)
    assert (as_json["first"], as_json["last"], len(as_json["rows"])) == ("2026-03-03",
                                                                         "2026-03-05", 6)
    assert as_json["rows"][2] == {"day": "2026-03-05", "source": "Base", "issued": 0,
                                  "redeemed": -10, "adjusted": 0, "expired": 0,
                                  "cumulative_issued": 80, "cumulative_redeemed": 90,
                                  "cumulative_adjusted": 0, "cumulative_expired": 0}
    expired = json.loads(cli.ok("report", "sources", "--source", "Base", "--from",
                                "2026-03-14", "--to", "2026-03-21", "--format", "json",
                                env=when).stdout)["rows"]
    assert [(r["day"], r["expired"], r["cumulative_expired"]) for r in expired
            if r["expired"]] == [("2026-03-14", 60, 60), ("2026-03-21", -20, 40)]
    table = cli.ok("report", "sources", *RANGE, env=when).stdout
    assert "cum. issued" in table
    chart = table[table.index("Points per day"):]
    assert chart.splitlines()[0].startswith("Points per day (daily, all sources shown)")
    # three bars a day, summed over the sources; the largest figure has the longest bar
    lines = chart.splitlines()[1:]
    assert [line.split()[0] for line in lines[::3]] == ["2026-03-03", "2026-03-04",
                                                        "2026-03-05"]
    assert lines[1].split()[-1] == "120"   # 03-03 redeemed: 100 Base + 20 Partner
    assert lines[3].split()[-1] == "80"    # 03-04 issued
    # each series has its own glyph, in the legend and in its bars, colour or not
    assert "█ issued" in chart.splitlines()[0] and "▓ redeemed" in chart.splitlines()[0] \
        and "░ expired" in chart.splitlines()[0]
    assert {glyph for line in lines[0::3] for glyph in "▓░" if glyph in line} == set()
    assert "▓" in lines[1] and "█" not in lines[1]
    assert lines[1].count("▓") > lines[3].count("█") > 0
    assert lines[3].count("█") == round(lines[1].count("▓") * 80 / 120)
    no_colour = cli.ok("report", "sources", *RANGE, env={**when, "NO_COLOR": "1"}).stdout
    assert no_colour[no_colour.index("Points per day"):] == chart
    cumulative = cli.ok("report", "sources", *RANGE, "--view", "cumulative", env=when).stdout
    assert "Points per day (cumulative" in cumulative
    assert cumulative.splitlines()[-2].split()[-1] == "90"  # redeemed 100 + 20 - 10 - 20
    bare = cli.ok("report", "sources", *RANGE, "--no-chart", env=when).stdout
    assert "cum. issued" in bare and "Points per day" not in bare
    assert "Points per day" not in as_csv


def test_export_writes_raw_daily_and_cumulative_data(cli: Cli, tmp_path: Path) -> None:
    koalla(cli)
    when = at("2026-03-25T00:00:00Z")
    target = tmp_path / "march.csv"
    result = cli.ok("report", "sources", *RANGE, "--export", str(target), "--no-chart",
                    env=when)
    assert target.read_text().splitlines() == SOURCE_ROWS
    assert result.error == f"Wrote 6 rows to {target}"
    as_json = tmp_path / "march.json"
    cli.ok("report", "sources", *RANGE, "--export", str(as_json), env=when)
    document = json.loads(as_json.read_text())
    assert list(csv.DictReader(io.StringIO("\n".join(SOURCE_ROWS))))[1] == {
        key: str(value) for key, value in document["rows"][1].items()}
    assert document["zone"] == "UTC"


# --- e-mail -----------------------------------------------------------------------------------

class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Any:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def free_port() -> int:
    """A loopback port nobody listens on (the kernel hands out a free one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_email_sends_the_export_through_a_real_smtp_server(cli: Cli, tmp_path: Path,
                                                           smtp_server: Any) -> None:
    from email import message_from_bytes

    inbox, port = smtp_server
    koalla(cli)
    target = tmp_path / "march.json"
    env = {**at("2026-03-25T00:00:00Z"), "POINTCTL_SMTP_URL": f"smtp://127.0.0.1:{port}",
           "POINTCTL_SMTP_FROM": "reports@koalla.test"}
    result = cli.ok("report", "sources", *RANGE, "--no-chart", "--export", str(target),
                    "--email", "finance@koalla.test, cfo@koalla.test", env=env)
    assert f"Mailed march.json to finance@koalla.test, cfo@koalla.test through " \
           f"smtp://127.0.0.1:{port}" in result.error
    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert envelope.mail_from == "reports@koalla.test"
    assert envelope.rcpt_tos == ["finance@koalla.test", "cfo@koalla.test"]
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "pointctl point-source report 2026-03-03 to 2026-03-05"
    attachments = [part for part in message.walk() if part.get_filename()]
    assert [part.get_filename() for part in attachments] == ["march.json"]
    assert attachments[0].get_payload(decode=True) == target.read_bytes()
    # without --export the CSV goes out
    cli.ok("report", "sources", *RANGE, "--no-chart", "--email", "ops@koalla.test", env=env)
    second = message_from_bytes(inbox.messages[1].content)
    part = next(p for p in second.walk() if p.get_filename())
    assert part.get_filename() == "pointctl-sources-2026-03-03-to-2026-03-05.csv"
    assert part.get_payload(decode=True).decode().splitlines() == SOURCE_ROWS


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the STARTTLS test makes its certificate with the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_email_with_starttls_and_login(cli: Cli, certificate: tuple[Path, Path]) -> None:
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert, key = certificate
    inbox = Inbox()

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        return AuthResult(success=(data.login, data.password) == (b"reports", b"s3cret!"),
                          handled=False)  # the server answers a failure with 535

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=check,
                            tls_context=tls, require_starttls=True, auth_required=True)
    controller.start()
    try:
        koalla(cli)
        # the test's certificate authority is the only one pointctl trusts here
        env = {**at("2026-03-25T00:00:00Z"), "SSL_CERT_FILE": str(cert)}
        url = f"smtp://reports:s3cret%21@127.0.0.1:{port}?starttls=true"
        good = cli("report", "sources", *RANGE, "--no-chart", "--email", "a@koalla.test",
                   env={**env, "POINTCTL_SMTP_URL": url})
        assert good.exit_code == 0, good.error
        assert len(inbox.messages) == 1 and inbox.messages[0].rcpt_tos == ["a@koalla.test"]
        bad = cli("report", "sources", *RANGE, "--no-chart", "--email", "a@koalla.test",
                  env={**env, "POINTCTL_SMTP_URL": url.replace("s3cret%21", "wrong-pw")})
        assert bad.exit_code == 4
        assert bad.error.startswith(f"Error: could not send the report through "
                                    f"smtp://127.0.0.1:{port}: ")
        assert "wrong-pw" not in bad.error + bad.stdout and len(bad.error.splitlines()) == 1
        # a certificate pointctl cannot check: nothing is sent, the password stays home
        untrusted = cli("report", "sources", *RANGE, "--no-chart", "--email", "a@koalla.test",
                        env={**at("2026-03-25T00:00:00Z"), "POINTCTL_SMTP_URL": url,
                             "SSL_CERT_FILE": str(key)})
        assert untrusted.exit_code == 4 and "certificate" in untrusted.error.lower(), \
            untrusted.error
        # a password over plain SMTP is refused before connecting
        plain = cli("report", "sources", *RANGE, "--no-chart", "--email", "a@koalla.test",
                    env={**env, "POINTCTL_SMTP_URL": f"smtp://reports:s3cret@127.0.0.1:{port}"})
        assert plain.exit_code == 4
        assert plain.error == (f"Error: refusing to send the mail password to "
                               f"smtp://127.0.0.1:{port} in clear text: add ?starttls=true to "
                               "POINTCTL_SMTP_URL or use smtps://")
        assert len(inbox.messages) == 1
    finally:
        controller.stop()


def test_missing_or_unreachable_mail_server_is_exit_4_and_the_export_is_still_written(
        cli: Cli, tmp_path: Path) -> None:
    koalla(cli)
    when = at("2026-03-25T00:00:00Z")
    first = tmp_path / "first.csv"
    missing = cli("report", "sources", *RANGE, "--no-chart", "--export", str(first), "--email",
                  "a@koalla.test", env=when)
    assert missing.exit_code == 4
    assert missing.error.splitlines()[-1].startswith(
        "Error: no mail server: set POINTCTL_SMTP_URL")
    assert first.read_text().splitlines() == SOURCE_ROWS
    port = free_port()
    second = tmp_path / "second.csv"
    down = cli("report", "sources", *RANGE, "--no-chart", "--export", str(second), "--email",
               "a@koalla.test", env={**when, "POINTCTL_SMTP_URL":
                                     f"smtp://ops:hunter2@127.0.0.1:{port}?starttls=true"})
    assert down.exit_code == 4
    assert down.error.splitlines()[-1] == (f"Error: could not send the report through "
                                           f"smtp://127.0.0.1:{port}: connection refused")
    assert "hunter2" not in down.error
    assert second.read_text().splitlines() == SOURCE_ROWS
    for url, text in (("http://mail.koalla.test", "not an SMTP URL"),
                      ("smtp://reports:2024#abc@mail.koalla.test", "not an SMTP URL"),
                      ("smtp://mail.koalla.test?starttls=ture", "the only option is"),
                      ("smtp://mail.koalla.test?tls=1", "the only option is")):
        wrong = cli("report", "sources", *RANGE, "--no-chart", "--email", "a@koalla.test",
                    env={**when, "POINTCTL_SMTP_URL": url})
        assert wrong.exit_code == 4 and text in wrong.error, (url, wrong.error)
        assert "2024" not in wrong.error and "abc" not in wrong.error
    sender = cli("report", "sources", *RANGE, "--email", "a@koalla.test",
                 env={**when, "POINTCTL_SMTP_FROM": "x@koalla.test\nBcc: evil@x.test"})
    assert sender.exit_code == 2 and "invalid POINTCTL_SMTP_FROM" in sender.error
    assert sender.stdout == ""  # refused before the report ran


# --- the date filters -------------------------------------------------------------------------

def span(today: str, **options: Any) -> tuple[str, str]:
    found = periods.resolve(today=date.fromisoformat(today), **options)
    return str(found.first), str(found.last)


def test_date_presets_around_month_and_year_boundaries() -> None:
    assert span("2026-03-01", last_month=True) == ("2026-02-01", "2026-02-28")
    assert span("2028-03-31", last_month=True) == ("2028-02-01", "2028-02-29")
    assert span("2026-01-15", last_month=True) == ("2025-12-01", "2025-12-31")
    assert span("2026-03-01", this_month=True) == ("2026-03-01", "2026-03-01")
    assert span("2026-12-31", this_month=True) == ("2026-12-01", "2026-12-31")
    assert span("2026-03-01", last="7d") == ("2026-02-23", "2026-03-01")
    assert span("2026-03-30", last="30d") == ("2026-03-01", "2026-03-30")
    assert span("2026-01-03", last="1w") == ("2025-12-28", "2026-01-03")
    assert span("2026-03-31", last="1mo") == ("2026-03-01", "2026-03-31")
    assert span("2026-03-01", start="2026-02-27") == ("2026-02-27", "None")
    assert span("2026-03-01", end="2026-02-27") == ("None", "2026-02-27")


def test_a_local_day_in_utc_follows_daylight_saving() -> None:
    zone = ZoneInfo("America/New_York")
    assert periods.Period(date(2026, 3, 8), date(2026, 3, 8)).bounds(zone) == (
        datetime(2026, 3, 8, 5), datetime(2026, 3, 9, 4))       # a 23-hour day
    assert periods.Period(date(2026, 11, 1), date(2026, 11, 1)).bounds(zone) == (
        datetime(2026, 11, 1, 4), datetime(2026, 11, 2, 5))     # a 25-hour day
    assert periods.day_offsets(zone, datetime(2026, 3, 1), datetime(2026, 11, 30)) == [
        (datetime(2026, 3, 8, 7), -18000), (datetime(2026, 11, 1, 6), -14400), (None, -18000)]
    # Sao Paulo has no DST now; Chatham is +13:45 in summer
    assert periods.day_offsets(ZoneInfo("Pacific/Chatham"), datetime(2026, 1, 1),
                               datetime(2026, 1, 2)) == [(None, 49500)]


def test_reports_bucket_by_the_program_days_around_a_month_boundary(cli: Cli) -> None:
    t0 = "2026-10-01T00:00:00Z"
    ok(cli, t0, "config", "set", "timezone", "America/New_York")
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, "2026-11-01T03:30:00Z", "issue", "ann", "5", "--source", "Base")  # Oct 31, 23:30
    ok(cli, "2026-11-01T04:30:00Z", "issue", "ann", "7", "--source", "Base")  # Nov 1, 00:30
    ok(cli, "2026-11-02T04:30:00Z", "issue", "ann", "11", "--source", "Base")  # Nov 1, 23:30
    ok(cli, "2026-11-02T05:30:00Z", "issue", "ann", "13", "--source", "Base")  # Nov 2, 00:30
    now = "2026-11-15T12:00:00Z"
    assert [r["modification"] for r in audit(cli, "--last-month", when=now)] == [5]
    assert [r["modification"] for r in audit(cli, "--this-month", when=now)] == [13, 11, 7]
    assert [r["modification"] for r in audit(cli, "--from", "2026-11-01", "--to", "2026-11-01",
                                              when=now)] == [11, 7]
    # 2026-11-15 is "today": --last 15d starts on Nov 1 in New York
    assert [r["modification"] for r in audit(cli, "--last", "15d", when=now)] == [13, 11, 7]
    # just after midnight UTC on Dec 1 it is still November in New York
    assert [r["modification"] for r in audit(cli, "--this-month",
                                              when="2026-12-01T02:00:00Z")] == [13, 11, 7]
    daily = ok(cli, now, "report", "sources", "--from", "2026-10-31", "--to", "2026-11-02")
    assert [(r["day"], r["issued"]) for r in daily["rows"]] == [
        ("2026-10-31", 5), ("2026-11-01", 18), ("2026-11-02", 13)]
    shown = ok(cli, now, "report", "liability", "--last-month")
    assert [(r["source"], r["issued"]) for r in shown] == [("Base", 5)]


BAD = [
    (["report", "audit", "--last", "12h"], 2, "invalid --last '12h': a positive number of whole "
                                              "days"),
    (["report", "audit", "--last", "0d"], 2, "invalid --last '0d'"),
    (["report", "audit", "--last", "7x"], 2, "invalid --last '7x'"),
    (["report", "liability", "--this-month", "--last", "7d"], 2,
     "choose one period: --last and --this-month were both given"),
    (["report", "sources", "--last-month", "--from", "2026-03-01"], 2, "choose one period"),
    (["report", "audit", "--from", "2026-13-01"], 2, "invalid --from '2026-13-01'"),
    (["report", "audit", "--to", "yesterday"], 2, "invalid --to 'yesterday'"),
    (["report", "liability", "--from", "2026-03-05", "--to", "2026-03-01"], 2,
     "--from 2026-03-05 is after --to 2026-03-01"),
    (["report", "audit", "--type", "bonus"], 2, "unknown entry type bonus"),
    (["report", "audit", "--limit", "0"], 2, "--limit must be between 1 and"),
    (["report", "audit", "--search", "  "], 2, "--search needs some text"),
    (["report", "audit", "--account", "Nope"], 3, "no account named 'Nope'"),
    (["report", "liability", "--source", "Nope"], 3, "no source named 'Nope'"),
    (["report", "sources", "--export", "out.txt"], 2, "the file name must end in .csv or .json"),
    (["report", "sources", "--email", "not-an-address"], 2,
     "invalid e-mail address 'not-an-address'"),
    (["report", "sources", "--email", "a@x.test\nBcc: evil@x.test"], 2, "invalid e-mail"),
    (["report", "sources", "--email", ","], 2, "--email needs at least one address"),
    (["report", "sources", "--email", "c(x)@d.test"], 2, "invalid e-mail address"),
    (["report", "liability", "--to", "9999-12-31"], 2, "out of range"),
    (["report", "liability", "--from", "0001-01-01"], 2, "out of range"),
    (["report", "audit", "--last", "5000y"], 2, "at most 1000 years"),
    (["report", "sources", "--from", "2000-01-01"], 2, "a daily report covers at most 3,660"),
    (["report", "sources", "--view", "weekly"], 2, "weekly"),
    (["report", "sources", "--export", "/nonexistent-dir/out.csv"], 2, "cannot write"),
]


def test_bad_report_input_is_one_line_and_changes_nothing(cli: Cli) -> None:
    koalla(cli)
    before = snapshot(cli.url)
    for args, code, text in BAD:
        result = cli(*args, env=at("2026-03-25T00:00:00Z"))
        assert result.exit_code == code, (args, result.exit_code, result.error)
        assert text in result.error, (args, result.error)
        assert "Traceback" not in result.error + result.stdout
        if code != 2 or "weekly" not in text:
            assert len(result.error.splitlines()) == 1, (args, result.error)
    assert snapshot(cli.url) == before


def test_period_errors_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError):
        periods.resolve(today=date(2026, 3, 1), last="-3d")


def test_csv_cells_that_look_like_formulas_are_neutralised(cli: Cli, tmp_path: Path) -> None:
    """A spreadsheet never runs a user id, reference or name from a CSV output or export;
    numbers (negative ones too) stay numbers; JSON is untouched."""
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "=Partner")
    evil = "=cmd|' /C calc'!A0"
    ok(cli, "2026-03-02T10:00:00Z", "issue", evil, "100", "--source", "=Partner",
       "--reference-id", "@SUM(A1:A9)")
    ok(cli, "2026-03-03T10:00:00Z", "spend", evil, "30", "--reference-id", "+1-555")
    when = at("2026-03-25T00:00:00Z")
    rows = list(csv.DictReader(io.StringIO(
        cli.ok("report", "audit", "--format", "csv", env=when).stdout)))
    rows = [r for r in rows if r["type"] != "change"]
    assert [(r["user"], r["reference_id"], r["modification"]) for r in rows] == [
        ("'" + evil, "'+1-555", "-30"), ("'" + evil, "'@SUM(A1:A9)", "100")]
    assert rows[1]["source"] == "'=Partner"
    seen = next(csv.DictReader(io.StringIO(
        cli.ok("customer", evil, "--format", "csv", env=when).stdout)))
    assert (seen["section"], seen["user"]) == ("seen", "'" + evil)
    export = tmp_path / "sources.csv"
    cli.ok("report", "sources", "--from", "2026-03-01", "--to", "2026-03-03", "--export",
           str(export), env=when)
    assert [line.split(",")[1] for line in export.read_text().splitlines()[1:]] == \
        ["'=Partner"] * 3
    as_json = ok(cli, "2026-03-25T00:00:00Z", "report", "audit")
    assert as_json[0]["user"] == evil and as_json[0]["reference_id"] == "+1-555"
