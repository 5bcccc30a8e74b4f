"""Finance: what a point is worth, the liability in money (rounded half to even, once), the
points written off by returns, and the customers who owe points. Through the command line, on
SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Cli, snapshot
from tests.test_expiry import at, ok, verify_clean

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
    ok(cli, T0, "sources", "create", "A", "--value", "0.005", "--currency", "USD")
    ok(cli, T0, "sources", "create", "B", "--value", "0.005", "--currency", "USD")
    ok(cli, T0, "sources", "create", "C", "--value", "0.005", "--currency", "USD")
    ok(cli, T0, "sources", "create", "Yen", "--value", "1.5", "--currency", "JPY")
    ok(cli, T0, "sources", "create", "Plain")
    for source, points in (("A", 1), ("B", 1), ("C", 3), ("Yen", 5), ("Plain", 9)):
        ok(cli, T0, "issue", "ann", str(points), "--source", source)
    rows = {row["source"]: row for row in ok(cli, T0, "report", "liability")}
    # 0.005 -> 0.00 and 0.015 -> 0.02 (half to even), 7.5 yen -> 8
    assert {name: (row["liability"], row["point_value"], row["currency"],
                   row["liability_value"]) for name, row in rows.items()} == {
        "A": (1, "0.005", "USD", "0.00"), "B": (1, "0.005", "USD", "0.00"),
        "C": (3, "0.005", "USD", "0.02"), "Yen": (5, "1.5", "JPY", "8"),
        "Plain": (9, None, None, None)}
    # the total per currency is the exact sum (0.025), rounded once: 0.02, not 0.00+0.00+0.02
    table = cli.ok("report", "liability", env={"COLUMNS": "160"}).stdout
    totals = {line.split("│")[1].strip(): line.split("│")[-2].strip()
              for line in table.splitlines() if "Total" in line}
    assert totals == {"Total": "", "Total JPY": "8 JPY", "Total USD": "0.02 USD"}
    ok(cli, T0, "issue", "bob", "1", "--source", "A")  # A: 2 points, 0.01 exactly
    table = cli.ok("report", "liability", env={"COLUMNS": "160"}).stdout
    assert "│ 0.01 USD │" in table and "│ 0.03 USD │" in table  # 0.030 in all
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
        "bob,Core,40,2026-06-01T10:00:00Z,14,spend,1"]
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
