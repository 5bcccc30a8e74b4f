"""`pointctl enroll`: a member's enrollment date, recorded once; `customer` shows it, and
anniversary and inactivity expiration count from it (else from the first entry)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import Cli, snapshot
from tests.test_expiry import at, audit_of, balance, ok, query, run, verify_clean


def test_recorded_once_the_same_date_is_a_no_op_and_another_is_refused(cli: Cli) -> None:
    when = at("2026-06-01T00:00:00Z")
    first = cli.ok("enroll", "ann", "--at", "2019-05-17", env=when)
    assert first.error == "Enrolled ann at 2019-05-17T00:00:00Z"
    before = snapshot(cli.url)
    again = ok(cli, "2026-06-01T00:00:00Z", "enroll", "ann", "--at", "2019-05-17T00:00:00Z")
    assert (again["enrolled"], again["changed"]) == ("2019-05-17T00:00:00Z", False)
    assert snapshot(cli.url) == before
    for args, code, message in (
            (("ann", "--at", "2019-05-18"), 1, "Error: ann is already enrolled at "
             "2019-05-17T00:00:00Z (recorded by tester); an enrollment is recorded once"),
            (("bob", "--at", "2026-06-02"), 2, "is in the future"),
            (("bob", "--at", "yesterday"), 2, "invalid --at 'yesterday'"),
            (("  ",), 2, "user must not be empty")):
        refused = cli("enroll", *args, env=when)
        assert refused.exit_code == code, refused
        assert message in refused.error and len(refused.error.splitlines()) == 1
        assert snapshot(cli.url) == before
    assert query(cli.url, "SELECT user_id, actor FROM enrollment") == [("ann", "tester")]


def test_customer_shows_where_the_enrollment_comes_from(cli: Cli) -> None:
    ok(cli, "2026-01-01T00:00:00Z", "accounts", "create", "Core", "--default")
    ok(cli, "2026-01-01T00:00:00Z", "sources", "create", "Base")
    ok(cli, "2026-03-04T10:00:00Z", "issue", "ann", "10", "--source", "Base")
    seen = ok(cli, "2026-06-01T00:00:00Z", "customer", "ann")
    assert (seen["enrolled"], seen["enrolled_from"]) == ("2026-03-04T10:00:00Z", "first entry")
    ok(cli, "2026-06-01T00:00:00Z", "enroll", "ann", "--at", "2018-11-20")
    seen = ok(cli, "2026-06-01T00:00:00Z", "customer", "ann")
    assert (seen["enrolled"], seen["enrolled_from"]) == ("2018-11-20T00:00:00Z", "recorded")
    table = cli.ok("customer", "ann", env=at("2026-06-01T00:00:00Z")).stdout
    assert "enrolled from" in table and "recorded" in table


def test_anniversary_counts_from_the_recorded_enrollment(cli: Cli) -> None:
    t0 = "2026-01-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default")
    ok(cli, t0, "sources", "create", "Base")
    # both earn on 01-15; ann joined on 2019-03-10 (migrated), bob's first entry is his
    for user in ("ann", "bob"):
        ok(cli, "2026-01-15T10:00:00Z", "issue", user, "100", "--source", "Base")
    ok(cli, "2026-02-01T00:00:00Z", "enroll", "ann", "--at", "2019-03-10")
    ok(cli, t0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d",
       "--snap-to", "anniversary")
    # the customer view foresees ann's expiry at her anniversary, as the run then does
    seen = ok(cli, "2026-03-01T00:00:00Z", "customer", "ann")
    assert [(r["at"], r["expires"]) for r in seen["expiring"]] == [("2026-03-10T00:00:00Z", 100)]
    assert run(cli, "2026-03-09T23:00:00Z")["Core"]["expired"] == 0
    assert run(cli, "2026-03-10T00:00:00Z")["Core"]["expired"] == 100
    assert [r["time"] for r in audit_of(cli, "ann", "expiration")] == ["2026-03-10T00:00:00Z"]
    assert balance(cli, "bob", "2026-03-10T00:00:00Z") == {"Core": 100}  # 2027-01-15 for bob
    verify_clean(cli)


def test_inactivity_counts_from_the_recorded_enrollment(cli: Cli) -> None:
    t0 = "2026-01-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core")
    ok(cli, t0, "accounts", "create", "Promo")
    ok(cli, t0, "sources", "create", "Base")
    # a Promo credit is no activity of Core's policy: only Core spends and logins count
    ok(cli, "2026-01-05T00:00:00Z", "issue", "ann", "50", "--source", "Base", "--account",
       "Core")
    ok(cli, "2026-01-02T00:00:00Z", "enroll", "ann", "--at", "2025-12-01")
    ok(cli, t0, "accounts", "expiration", "Core", "--inactivity", "--inactive-for", "60d",
       "--activity", "login")
    # inactive since the enrollment (2025-12-01) + 60 days, not since her first entry
    assert run(cli, "2026-01-30T00:00:00Z")["Core"]["expired"] == 50
    verify_clean(cli)


def test_batch_enrolls_and_a_rerun_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    ok(cli, "2026-01-01T00:00:00Z", "enroll", "cy", "--at", "2020-01-01")
    lines = [{"op": "enroll", "user": "ann", "at": "2019-05-17"},
             {"op": "enroll", "user": "bob"},
             {"op": "enroll", "user": "cy", "at": "2021-01-01"},  # refused: cy has a date
             {"op": "enroll", "user": "ann", "at": "2019-05-17"}]
    path = tmp_path / "members.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    when = at("2026-06-01T00:00:00Z")
    done = cli("batch", str(path), "--format", "json", env=when)
    assert done.exit_code == 1
    summary = json.loads(done.stdout)
    assert (summary["applied"], summary["refused"]) == (3, 1)
    rejects = [json.loads(line) for line in Path(summary["rejects"]).read_text().splitlines()]
    assert [r["line"] for r in rejects] == [3] and "already enrolled" in rejects[0]["error"]
    enrolled = query(cli.url, "SELECT user_id, enrolled_at FROM enrollment ORDER BY user_id")
    assert [(u, str(t)[:10]) for u, t in enrolled] == [
        ("ann", "2019-05-17"), ("bob", "2026-06-01"), ("cy", "2020-01-01")]
    before = snapshot(cli.url)
    assert cli("batch", str(path), env=when).exit_code == 1
    assert snapshot(cli.url) == before
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"op": "enroll"}\n')
    refused = cli("batch", str(bad), env=when)
    assert refused.exit_code == 2 and "enroll needs 'user'" in refused.stderr
