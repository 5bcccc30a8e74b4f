"""Finance: what a point is worth, the liability in money (rounded half to even, once), the
points written off by returns, and the customers who owe points. Through the command line, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import Cli, snapshot
from tests.test_expiry import at, ok, verify_clean
from tests.test_reports import smtp_server  # noqa: F401 - a fixture

T0 = "2026-03-01T00:00:00Z"


def test_a_source_carries_a_value_per_point_in_a_currency(cli: Cli, tmp_path: Path) -> None:
    ok(cli, T0, "accounts", "create", "Core")
    made = ok(cli, T0, "sources", "create", "Base", "--value", "0.005", "--currency", "usd")
    assert (made["point_value"], made["currency"]) == ("0.005", "USD")
    assert ok(cli, T0, "sources", "create", "Plain")["point_value"] is None
    # a value alone keeps the currency; a currency alone keeps the value
    assert ok(cli, T0, "sources", "edit", "Base", "--value", "0.0100")["point_value"] == "0.01"
    edited = ok(cli, T0, "sources", "edit", "Base", "--currency", "EUR")
    assert (edited["point_value"], edited["currency"]) == ("0.01", "EUR")
    shown = cli.ok("sources", "show", "Base").stdout
    assert "0.01 EUR" in shown and "not set" in cli.ok("sources", "show", "Plain").stdout
    # bad input: one line, exit 2, nothing changed
    before = snapshot(cli.url)
    for args, error in [
        (["create", "X", "--value", "-0.01", "--currency", "USD"],
         "Error: --value must be more than 0, got '-0.01'"),
        (["create", "X", "--value", "0", "--currency", "USD"],
         "Error: --value must be more than 0, got '0'"),
        (["create", "X", "--value", "0.0000001", "--currency", "USD"],
         "Error: --value '0.0000001' has more than 6 decimals; a value per point is kept to a "
         "millionth of the currency unit"),
        (["create", "X", "--value", "1,5", "--currency", "USD"],
         "Error: --value must be a decimal amount such as 0.01, got '1,5'"),
        (["create", "X", "--value", "nan", "--currency", "USD"],
         "Error: --value must be a decimal amount such as 0.01, got 'nan'"),
        (["create", "X", "--value", "1e-999999999", "--currency", "USD"],
         "Error: --value must be a decimal amount such as 0.01, got '1e-999999999'"),
        (["create", "X", "--value", "0.0100000000000000000000000000001", "--currency", "USD"],
         "Error: --value '0.0100000000000000000000000000001' has more than 6 decimals; a value "
         "per point is kept to a millionth of the currency unit"),
        (["edit", "Nope", "--value", "abc"],
         "Error: --value must be a decimal amount such as 0.01, got 'abc'"),
        (["create", "X", "--value", "2000000", "--currency", "USD"],
         "Error: --value '2000000' is too large: at most 1,000,000 per point"),
        (["create", "X", "--value", "0.01", "--currency", "USX"],
         "Error: --currency 'USX' is not a currency code (ISO 4217, such as USD, EUR or JPY) "
         "(did you mean 'UZS'?)"),
        (["create", "X", "--value", "0.01"],
         "Error: --value needs --currency (an ISO 4217 code such as USD)"),
        (["edit", "Plain", "--currency", "USD"],
         "Error: --currency needs --value: the source has no value per point yet"),
        (["edit", "Base", "--no-value", "--value", "1"],
         "Error: --no-value cannot be used with --value or --currency"),
    ]:
        refused = cli("sources", *args)
        assert (refused.exit_code, refused.stderr) == (2, error + "\n"), args
    assert snapshot(cli.url) == before
    # in the program's file: exported as text, applied to another database as it was
    exported = cli.ok("config", "export").stdout
    assert 'value = "0.01"\ncurrency = "EUR"' in exported
    assert "value" not in exported.split('name = "Plain"')[1]
    ok(cli, T0, "sources", "edit", "Base", "--no-value")
    assert ok(cli, T0, "sources", "show", "Base")["currency"] is None
    path = tmp_path / "program.toml"
    path.write_text(exported)
    cli.ok("config", "apply", str(path))
    assert cli.ok("config", "export").stdout == exported
    # a TOML float is refused: it is binary, not the decimal written
    path.write_text(exported.replace('value = "0.01"', "value = 0.01"))
    refused = cli("config", "apply", str(path))
    assert refused.exit_code == 2 and 'sources[0].value: write the value as text, value = ' \
        '"0.01"' in refused.stderr


def test_liability_in_money_is_rounded_half_to_even_once(cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default")
    for name in "ABCD":
        ok(cli, T0, "sources", "create", name, "--value", "0.005", "--currency", "USD")
    ok(cli, T0, "sources", "create", "Yen", "--value", "1.5", "--currency", "JPY")
    ok(cli, T0, "sources", "create", "Plain")
    for source, points in (("A", 1), ("B", 1), ("C", 1), ("D", 3), ("Yen", 5), ("Plain", 9)):
        ok(cli, T0, "issue", "ann", str(points), "--source", source)
    rows = {row["source"]: row for row in ok(cli, T0, "report", "liability")}
    # 0.005 -> 0.00 and 0.015 -> 0.02 (half to even), 7.5 yen -> 8
    assert {name: (row["liability"], row["point_value"], row["currency"],
                   row["liability_value"]) for name, row in rows.items()} == {
        "A": (1, "0.005", "USD", "0.00"), "B": (1, "0.005", "USD", "0.00"),
        "C": (1, "0.005", "USD", "0.00"), "D": (3, "0.005", "USD", "0.02"),
        "Yen": (5, "1.5", "JPY", "8"), "Plain": (9, None, None, None)}
    # the total per currency is the exact sum (0.030), rounded once: 0.03, where the rounded
    # lines add up to 0.02
    table = cli.ok("report", "liability", env={"COLUMNS": "160"}).stdout
    totals = {line.split("│")[1].strip(): line.split("│")[-2].strip()
              for line in table.splitlines() if "Total" in line}
    assert totals == {"Total": "", "Total JPY": "8 JPY", "Total USD": "0.03 USD"}
    ok(cli, T0, "issue", "bob", "1", "--source", "A")  # A: 2 points, 0.01 exactly
    table = cli.ok("report", "liability", env={"COLUMNS": "160"}).stdout
    assert "│ 0.01 USD │" in table and "│ 0.04 USD │" in table  # 0.035 -> 0.04 (to even)
    as_csv = cli.ok("report", "liability", "--format", "csv").stdout.splitlines()
    assert as_csv[0].endswith(",liability,written_off,liability_value,point_value,currency")
    assert as_csv[1] == "A,2,0,0,0,0,2,0,0.01,0.005,USD"


def test_liability_shows_points_written_off_by_returns(cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, T0, "sources", "create", "Base", "--value", "0.01", "--currency", "USD")
    ok(cli, "2026-03-02T10:00:00Z", "issue", "ann", "100", "--source", "Base",
       "--reference-id", "o1")
    ok(cli, "2026-03-02T10:00:00Z", "issue", "bob", "50", "--source", "Base",
       "--reference-id", "o2")
    ok(cli, "2026-03-03T10:00:00Z", "spend", "ann", "60")
    # the order is returned after 60 of its points were spent: the program absorbs those 60
    ok(cli, "2026-03-04T10:00:00Z", "reverse", "--reference-id", "o1")
    ok(cli, "2026-03-04T10:00:00Z", "reverse", "--reference-id", "o2", "--points", "10")
    (row,) = ok(cli, "2026-03-05T00:00:00Z", "report", "liability")
    assert {key: row[key] for key in ("issued", "reversed", "spent", "liability",
                                      "written_off", "liability_value")} == {
        "issued": 150, "reversed": 50, "spent": 60, "liability": 40, "written_off": 60,
        "liability_value": "0.40"}
    # the cohort of the period: issues of another period carry their write-offs there
    (before,) = ok(cli, "2026-03-05T00:00:00Z", "report", "liability", "--to", "2026-03-01")
    assert (before["issued"], before["written_off"]) == (0, 0)
    verify_clean(cli)


def test_report_debt_lists_who_owes_what_since_when(cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default")
    ok(cli, T0, "accounts", "create", "Other")
    ok(cli, T0, "sources", "create", "Base", "--link", "Core", "--link", "Other")
    ok(cli, "2026-06-01T10:00:00Z", "spend", "bob", "50")
    ok(cli, "2026-06-10T10:00:00Z", "spend", "bob", "20")
    # 30 repay the oldest debt first: 20 of the 50 of 1 June are still owed, and all of 10 June
    ok(cli, "2026-06-11T10:00:00Z", "issue", "bob", "30", "--source", "Base", "--account",
       "Core")
    ok(cli, "2026-06-12T10:00:00Z", "adjust", "cy", "-7", "--account", "Other", "--reason",
       "goodwill taken back")
    # a spend reversed gives its debt back: cy's newest debt is cancelled, not counted
    ok(cli, "2026-06-13T10:00:00Z", "spend", "cy", "5", "--account", "Other",
       "--reference-id", "r1")
    ok(cli, "2026-06-14T10:00:00Z", "reverse", "--reference-id", "r1")
    ok(cli, "2026-06-14T10:00:00Z", "issue", "dee", "9", "--source", "Base", "--account",
       "Core")
    found = ok(cli, "2026-06-15T12:00:00Z", "report", "debt")
    assert [(r["user"], r["account"], r["debt"], r["since"], r["age_days"], r["created_by"])
            for r in found["rows"]] == [
        ("bob", "Core", 40, "2026-06-01T10:00:00Z", 14, "spend"),
        ("cy", "Other", 7, "2026-06-12T10:00:00Z", 3, "adjustment")]
    assert (found["debtors"], found["debt"], found["accounts"]) == (2, 47, [
        {"account": "Core", "debtors": 1, "debt": 40},
        {"account": "Other", "debtors": 1, "debt": 7}])
    newest = ok(cli, "2026-06-15T12:00:00Z", "report", "debt", "--sort", "newest")
    assert [r["user"] for r in newest["rows"]] == ["cy", "bob"]
    one = ok(cli, "2026-06-15T12:00:00Z", "report", "debt", "--account", "other", "-n", "1")
    assert ([r["user"] for r in one["rows"]], one["debt"]) == (["cy"], 7)
    cut = ok(cli, "2026-06-15T12:00:00Z", "report", "debt", "--limit", "1")
    assert (len(cut["rows"]), cut["debtors"], cut["debt"]) == (1, 2, 47)  # totals count all
    table = cli("report", "debt", env=at("2026-06-15T12:00:00Z"))
    assert "bob" in table.stdout and table.stderr == \
        "2 customers owe 47 points (Core: 40 points by 1; Other: 7 points by 1)\n"
    as_csv = cli.ok("report", "debt", "--format", "csv", env=at("2026-06-15T12:00:00Z"))
    assert as_csv.stdout.splitlines()[:2] == [
        "user,account,debt,since,age_days,created_by,entry",
        "bob,Core,40,2026-06-01T10:00:00Z,14,spend,4"]  # after 3 changes of the program
    # bob owes in a second account: two debts, still two customers
    ok(cli, "2026-06-15T12:00:00Z", "spend", "bob", "5", "--account", "Other")
    both = ok(cli, "2026-06-15T12:00:00Z", "report", "debt")
    assert (len(both["rows"]), both["debtors"], both["debt"]) == (3, 2, 52)
    assert both["accounts"] == [{"account": "Core", "debtors": 1, "debt": 40},
                                {"account": "Other", "debtors": 2, "debt": 12}]
    for args, code in ((["--sort", "biggest"], 2), (["--account", "Nope"], 3),
                       (["--limit", "0"], 2)):
        refused = cli("report", "debt", *args)
        assert refused.exit_code == code and refused.stderr.startswith("Error: "), args
        assert refused.stderr.count("\n") == 1


def test_no_debt_no_rows(cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default")
    ok(cli, T0, "sources", "create", "Base")
    ok(cli, T0, "issue", "ann", "2", "--source", "Base")
    ok(cli, T0, "spend", "ann", "2")
    empty = cli("report", "debt")
    assert empty.exit_code == 0 and "No customer owes points." in empty.stdout + empty.stderr
    assert ok(cli, T0, "report", "debt") == {"rows": [], "debtors": 0, "debt": 0,
                                             "accounts": []}


def test_partner_statement_per_day_and_in_total(cli: Cli, tmp_path: Path,
                                                smtp_server: Any) -> None:  # noqa: F811
    from email import message_from_bytes

    ok(cli, T0, "accounts", "create", "Core", "--default")
    ok(cli, T0, "config", "set", "timezone", "America/New_York")
    ok(cli, T0, "sources", "create", "Ride", "--value", "0.005", "--currency", "USD")
    ok(cli, T0, "sources", "create", "Other")
    # New York days: 23:30 on the 1st is 04:30Z on the 2nd
    ok(cli, "2026-03-02T04:30:00Z", "issue", "ann", "101", "--source", "Ride",
       "--reference-id", "ride-1")
    ok(cli, "2026-03-02T15:00:00Z", "issue", "bob", "3", "--source", "Ride")
    ok(cli, "2026-03-02T16:00:00Z", "issue", "bob", "500", "--source", "Other")
    ok(cli, "2026-03-02T17:00:00Z", "reverse", "--reference-id", "ride-1", "--points", "1")
    ok(cli, "2026-03-04T17:00:00Z", "issue", "cy", "7", "--source", "Ride")
    when = at("2026-03-05T12:00:00Z")
    found = ok(cli, "2026-03-05T12:00:00Z", "report", "partner", "ride", "--from",
               "2026-03-01", "--to", "2026-03-03")
    # 0.505 -> 0.50 and 0.010 -> 0.01 by day; the total 0.515 -> 0.52, rounded once
    assert [(r["day"], r["issued"], r["reversed"], r["net"], r["value"])
            for r in found["rows"]] == [("2026-03-01", 101, 0, 101, "0.50"),
                                        ("2026-03-02", 3, 1, 2, "0.01"),
                                        ("2026-03-03", 0, 0, 0, "0.00")]
    assert found["total"] == {"issued": 104, "reversed": 1, "net": 103, "value": "0.52"}
    assert (found["source"], found["point_value"], found["currency"], found["zone"]) == (
        "Ride", "0.005", "USD", "America/New_York")
    table = cli.ok("report", "partner", "Ride", "--from", "2026-03-01", "--to", "2026-03-03",
                   env={**when, "COLUMNS": "120"}).stdout
    assert "0.005 USD per point" in table and "│ Total      │    104 │" in table
    assert "0.52 USD" in table
    target = tmp_path / "ride.csv"
    env = {**when, "POINTCTL_SMTP_URL": f"smtp://127.0.0.1:{smtp_server[1]}",
           "POINTCTL_SMTP_FROM": "reports@koalla.test"}
    done = cli.ok("report", "partner", "Ride", "--from", "2026-03-01", "--to", "2026-03-03",
                  "--export", str(target), "--email", "billing@ride.test", env=env)
    rows = ["day,issued,reversed,net,value,currency", "2026-03-01,101,0,101,0.50,USD",
            "2026-03-02,3,1,2,0.01,USD", "2026-03-03,0,0,0,0.00,USD"]
    assert target.read_text().splitlines() == rows
    assert "Wrote 3 rows to" in done.stderr and "Mailed ride.csv to billing@ride.test" in \
        done.stderr
    message = message_from_bytes(smtp_server[0].messages[0].content)
    assert message["Subject"] == "pointctl partner statement 2026-03-01 to 2026-03-03"
    part = next(p for p in message.walk() if p.get_filename())
    assert part.get_payload(decode=True).decode().splitlines() == rows
    as_json = tmp_path / "ride.json"
    cli.ok("report", "partner", "Ride", "--from", "2026-03-01", "--to", "2026-03-03",
           "--export", str(as_json), env=when)
    assert json.loads(as_json.read_text())["total"]["value"] == "0.52"
    # a source without a value: points only
    other = ok(cli, "2026-03-05T12:00:00Z", "report", "partner", "Other", "--from",
               "2026-03-02", "--to", "2026-03-02")
    assert (other["rows"][0]["net"], other["rows"][0]["value"], other["total"]["value"]) == (
        500, None, None)
    before = snapshot(cli.url)
    for args, code, error in (
            (["Nope"], 3, "Error: no source named 'Nope' (known sources: Other, Ride)"),
            (["Ride", "--export", str(tmp_path / "x.txt")], 2,
             f"Error: --export {tmp_path / 'x.txt'}: the file name must end in .csv or .json")):
        refused = cli("report", "partner", *args, env=when)
        assert (refused.exit_code, refused.stderr) == (code, error + "\n")
    assert snapshot(cli.url) == before


def test_breakage_by_cohort_and_the_estimate_from_closed_cohorts(cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default")
    ok(cli, T0, "sources", "create", "Base", "--value", "0.01", "--currency", "USD")
    ok(cli, T0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d",
       "--every", "daily")
    # January: 160 issued, 40 redeemed, the other 120 expire in February (closed: 75%)
    ok(cli, "2026-01-05T12:00:00Z", "issue", "ann", "100", "--source", "Base")
    ok(cli, "2026-01-10T12:00:00Z", "issue", "bob", "60", "--source", "Base")
    ok(cli, "2026-01-20T12:00:00Z", "spend", "ann", "40")
    # February: 200 issued, 20 reversed, 30 redeemed, 150 expire in March (closed: 150/180)
    ok(cli, "2026-02-10T12:00:00Z", "issue", "cy", "200", "--source", "Base",
       "--reference-id", "o1")
    ok(cli, "2026-02-11T12:00:00Z", "reverse", "--reference-id", "o1", "--points", "20")
    ok(cli, "2026-02-12T12:00:00Z", "spend", "cy", "30")
    # March: 80 outstanding (open)
    ok(cli, "2026-03-20T12:00:00Z", "issue", "dee", "80", "--source", "Base")
    ok(cli, "2026-03-25T12:00:00Z", "expire", "run")
    found = ok(cli, "2026-03-25T12:00:00Z", "report", "breakage")
    assert [(r["cohort"], r["issued"], r["reversed"], r["redeemed"], r["expired"],
             r["outstanding"], r["closed"], r["breakage_rate"], r["estimated_breakage"])
            for r in found["rows"]] == [
        ("2026-01", 160, 0, 40, 120, 0, True, "75.00%", None),
        ("2026-02", 200, 20, 30, 150, 0, True, "83.33%", None),
        ("2026-03", 80, 0, 0, 0, 80, False, None, 64)]
    # the closed cohorts together: 270 of 340 expired; 80 x 27/34 = 63.53 points, 0.6353 USD
    (summary,) = found["sources"]
    assert summary == {"source": "Base", "closed_cohorts": 2, "open_cohorts": 1,
                       "closed_issued": 340, "closed_expired": 270, "breakage_rate": "79.41%",
                       "outstanding": 80, "estimated_breakage": 64,
                       "estimated_value": "0.64", "currency": "USD"}
    # only the cohorts of the period: 80 x 150/180 = 66.67 points, 0.6667 USD
    (since_february,) = ok(cli, "2026-03-25T12:00:00Z", "report", "breakage", "--from",
                           "2026-02-01")["sources"]
    assert (since_february["breakage_rate"], since_february["estimated_breakage"],
            since_february["estimated_value"]) == ("83.33%", 67, "0.67")
    # one quarter, still open: no closed cohort, no rate, no estimate
    quarter = ok(cli, "2026-03-25T12:00:00Z", "report", "breakage", "--cohort", "quarter")
    assert [(r["cohort"], r["issued"], r["outstanding"], r["closed"]) for r in
            quarter["rows"]] == [("2026-Q1", 440, 80, False)]
    assert quarter["sources"][0]["estimated_breakage"] is None
    # a year after March ended, March is closed by its age, 80 points still outstanding: it
    # joins the rate (270 of 420) and nothing is left to estimate
    later = ok(cli, "2027-04-01T12:00:00Z", "report", "breakage", "--closed-after", "1y")
    assert [(r["cohort"], r["outstanding"], r["closed"], r["breakage_rate"])
            for r in later["rows"]] == [("2026-01", 0, True, "75.00%"),
                                        ("2026-02", 0, True, "83.33%"),
                                        ("2026-03", 80, True, "0.00%")]
    assert (later["sources"][0]["breakage_rate"], later["sources"][0]["estimated_breakage"]) \
        == ("64.29%", 0)
    table = cli.ok("report", "breakage", env={**at("2026-03-25T12:00:00Z"), "COLUMNS": "160"})
    assert "79.41%" in table.stdout and "0.64 USD" in table.stdout
    for args, error in ((["--closed-after", "soon"], "Error: invalid --closed-after 'soon'"),
                        (["--cohort", "year"], "Error: Invalid value for '--cohort'"),
                        (["--source", "Nope"], "Error: no source named 'Nope'")):
        refused = cli("report", "breakage", *args)
        assert refused.exit_code in (2, 3) and refused.stderr.startswith(error), args
        assert refused.stderr.count("\n") == 1
