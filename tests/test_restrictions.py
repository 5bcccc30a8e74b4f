"""Restrictions through the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Cli, snapshot

NOW = "2026-03-10T12:00:00Z"


@pytest.fixture
def ride(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A ride-share partner source feeding one spendable account, the clock at NOW."""
    monkeypatch.setenv("POINTCTL_NOW", NOW)
    cli.ok("accounts", "create", "Spendable Partner", "--default")
    cli.ok("sources", "create", "Ride Share", "--inventory", "100000")
    return cli


def issue(cli: Cli, user: str, points: int, *extra: str) -> Any:
    return cli.json("issue", user, str(points), "--source", "Ride Share", *extra)


def restrictions(cli: Cli, *args: str) -> list[dict[str, Any]]:
    rows = cli.json("restrictions", "list", *args)
    assert isinstance(rows, list)
    return rows


def test_add_list_edit_delete_are_recorded_with_the_actor(ride: Cli) -> None:
    added = ride.json("--actor", "ops-anna", "restrictions", "add", "ride share",
                      "--max-points", "100", "--per", "1d", "--per-customer")
    assert added["id"] == 1 and added["source"] == "Ride Share"
    assert (added["scope"], added["max_points"], added["per"]) == ("per customer", 100, "1d")
    system = ride.json("restrictions", "add", "Ride Share", "--max-points", "50000",
                       "--per", "24 hours")
    assert (system["scope"], system["per"]) == ("system", "24h")

    issue(ride, "cust-1", 70)
    issue(ride, "cust-2", 30)
    rows = restrictions(ride)
    assert [(r["id"], r["scope"], r["max_points"], r["per"], r["used"], r["used_by"], r["left"])
            for r in rows] == [(1, "per customer", 100, "1d", 70, "cust-1", 30),
                               (2, "system", 50000, "24h", 100, None, 49900)]
    assert restrictions(ride, "Ride Share", "--user", "cust-2")[0]["used"] == 30

    edited = ride.json("--actor", "ops-ben", "restrictions", "edit", "1", "--max-points", "80",
                       "--per", "12h")
    assert (edited["max_points"], edited["per"], edited["changes"]) == (
        80, "12h", "max_points: 100 -> 80; per: 1d -> 12h")
    scope = ride.json("restrictions", "edit", "2", "--per-customer")
    assert scope["scope"] == "per customer"
    ride.ok("--actor", "ops-cleo", "restrictions", "delete", "2")
    assert [r["id"] for r in restrictions(ride)] == [1]

    log = ride.json("report", "audit", "--type", "restriction")
    assert [(e["reference_id"], e["reference_type"], e["actor"], e["modification"])
            for e in log] == [
        ("2", "Restriction Deleted", "ops-cleo", 0),
        ("2", "Restriction Changed", "tester", 0),
        ("1", "Restriction Changed", "ops-ben", 0),
        ("2", "Restriction Added", "tester", 0),
        ("1", "Restriction Added", "ops-anna", 0),
    ]
    assert log[2]["note"] == "max_points: 100 -> 80; per: 1d -> 12h"
    assert log[1]["note"] == "per_customer: system -> per customer"
    shown = ride.json("sources", "show", "Ride Share")
    assert [r["id"] for r in shown["restrictions"]] == [1]


def test_adding_the_same_restriction_twice_is_a_no_op_and_a_different_max_is_refused(
        ride: Cli) -> None:
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d")
    again = ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "24h")
    assert again.stderr.startswith("Added restriction #2")  # 24h is not the window 1d
    same = ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1 day")
    assert "exists already; nothing changed" in same.stderr
    before = snapshot(ride.url)
    other = ride("restrictions", "add", "Ride Share", "--max-points", "200", "--per", "1d")
    assert other.exit_code == 1
    assert "restrictions edit 1 --max-points 200" in other.error
    twin = ride("restrictions", "edit", "2", "--per", "1d")
    assert twin.exit_code == 1 and "already limits that scope and window" in twin.error
    assert snapshot(ride.url) == before
    assert len(restrictions(ride)) == 2


@pytest.mark.parametrize(("args", "code", "message"), [
    (["add", "Ride Share", "--max-points", "0", "--per", "1d"], 2,
     "--max-points must be a positive whole number, got '0'"),
    (["add", "Ride Share", "--max-points", "-5", "--per", "1d"], 2, "--max-points"),
    (["add", "Ride Share", "--max-points", "ten", "--per", "1d"], 2,
     "--max-points must be a whole number"),
    (["add", "Ride Share", "--max-points", "100", "--per", "5m"], 2, "'m' is ambiguous"),
    (["add", "Ride Share", "--max-points", "100", "--per", "-1d"], 2,
     "must be greater than zero"),
    (["add", "Ride Share", "--max-points", "100", "--per", "0d"], 2,
     "must be greater than zero"),
    (["add", "Ride Share", "--max-points", "100", "--per", "soon"], 2,
     "invalid --per window 'soon'"),
    (["add", "Ride Share", "--max-points", "100"], 2, "Missing option '--per'"),
    (["add", "Nowhere", "--max-points", "100", "--per", "1d"], 3, "no source named 'Nowhere'"),
    (["edit", "99", "--max-points", "5"], 3, "no restriction with id 99"),
    (["edit", "1"], 2, "nothing to change"),
    (["edit", "1", "--max-points", "0"], 2,
     "--max-points must be a positive whole number, got '0'"),
    (["edit", "1", "--per", "5m"], 2, "'m' is ambiguous"),
    (["edit", "x", "--max-points", "5"], 2, "ID must be a whole number, got 'x'"),
    (["delete", "99"], 3, "no restriction with id 99"),
    (["list", "Nowhere"], 3, "no source named 'Nowhere'"),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(
        ride: Cli, args: list[str], code: int, message: str) -> None:
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d")
    before = snapshot(ride.url)
    result = ride("restrictions", *args)
    assert result.exit_code == code, result
    assert result.error.startswith("Error: ") and message in result.error
    assert len(result.error.splitlines()) == 1 and "Traceback" not in result.stderr
    assert snapshot(ride.url) == before


def test_an_archived_source_takes_no_restriction(ride: Cli) -> None:
    ride.ok("sources", "pause", "Ride Share")
    ride.ok("sources", "archive", "Ride Share", "--yes")
    result = ride("restrictions", "add", "Ride Share", "--max-points", "5", "--per", "1d")
    assert result.exit_code == 1 and "archived" in result.error


def test_per_customer_limit_over_a_rolling_window(ride: Cli,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d",
            "--per-customer")
    assert issue(ride, "cust-1", 60, "--at", "2026-03-09T13:00:00Z")["points"] == 60
    assert issue(ride, "cust-1", 40, "--at", "2026-03-10T11:00:00Z")["points"] == 40
    # another customer has a budget of their own
    assert issue(ride, "cust-2", 100)["points"] == 100

    before = snapshot(ride.url)
    refused = ride("issue", "cust-1", "1", "--source", "Ride Share")
    assert refused.exit_code == 1
    assert refused.error == (
        "Error: cannot issue 1 points: restriction #1 (at most 100 points per customer per 1d "
        "from 'Ride Share') has 100 used, 0 more allowed for cust-1")
    assert snapshot(ride.url) == before

    # the window is (t - 1d, t]: at 13:00 the next day the 60 of 13:00 have left it
    monkeypatch.setenv("POINTCTL_NOW", "2026-03-10T13:00:00Z")
    assert issue(ride, "cust-1", 60, "--at", "2026-03-10T13:00:00Z")["points"] == 60
    late = ride("issue", "cust-1", "1", "--source", "Ride Share", "--at",
                "2026-03-10T13:00:00Z")
    assert late.exit_code == 1 and "has 100 used, 0 more allowed" in late.error


def test_system_limit_counts_every_customer_and_clamp_issues_what_is_left(ride: Cli) -> None:
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "250", "--per", "12h")
    issue(ride, "a", 100)
    issue(ride, "b", 100)
    refused = ride("issue", "c", "100", "--source", "Ride Share")
    assert refused.exit_code == 1
    assert refused.error.endswith("has 200 used, 50 more allowed; --clamp issues the 50 allowed")

    clamped = ride.ok("issue", "c", "100", "--source", "Ride Share", "--clamp")
    assert "Issued 50 points" in clamped.stderr and "clamped from 100" in clamped.stderr
    assert "restriction #1" in clamped.stderr
    nothing_left = ride("issue", "d", "10", "--source", "Ride Share", "--clamp")
    assert nothing_left.exit_code == 1 and "0 more allowed" in nothing_left.error
    assert ride.json("balance", "c")["accounts"][0]["balance"] == 50
    assert ride.json("sources", "show", "Ride Share")["inventory"] == 100000 - 250


def test_every_restriction_must_hold_and_the_tightest_one_is_named(ride: Cli) -> None:
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d",
            "--per-customer")
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "150", "--per", "1w",
            "--per-customer")
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "1000", "--per", "1d")
    issue(ride, "cust-1", 90, "--at", "2026-03-05T12:00:00Z")
    # the daily limit allows 100, the weekly one only 60 more
    result = issue(ride, "cust-1", 100, "--clamp")
    assert (result["points"], result["clamped"]) == (60, True)
    assert result["clamped_by"].startswith("restriction #2 (at most 150 points per customer per "
                                           "1w from 'Ride Share') has 90 used, 60 more allowed")


def test_backdated_issue_must_fit_every_later_window_that_contains_it(ride: Cli) -> None:
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d",
            "--per-customer")
    issue(ride, "cust-1", 80)  # at NOW
    # 30 at NOW - 12h fits the window ending then, but the window ending NOW would hold 110
    late = ride("issue", "cust-1", "30", "--source", "Ride Share",
                "--at", "2026-03-10T00:00:00Z")
    assert late.exit_code == 1 and "has 80 used, 20 more allowed" in late.error
    assert issue(ride, "cust-1", 30, "--at", "2026-03-10T00:00:00Z", "--clamp")["points"] == 20
    # two days earlier no window contains the issue at NOW
    assert issue(ride, "cust-1", 100, "--at", "2026-03-08T12:00:00Z")["points"] == 100
    # exactly one day before NOW: the window ending NOW starts just after it, the windows
    # ending before NOW hold the 20 of midnight
    assert issue(ride, "cust-1", 100, "--at", "2026-03-09T12:00:00Z", "--clamp")["points"] == 80


def test_calendar_month_windows(ride: Cli) -> None:
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "500", "--per", "1mo")
    issue(ride, "a", 300, "--at", "2026-02-10T12:00:01Z")
    issue(ride, "b", 200, "--at", "2026-02-28T00:00:00Z")
    assert ride("issue", "c", "1", "--source", "Ride Share", "--at",
                "2026-03-10T12:00:00Z").exit_code == 1
    # one second later the window (Feb 10 12:00:01, Mar 10 12:00:01] has lost the 300
    assert issue(ride, "c", 300, "--at", "2026-03-10T12:00:01Z")["points"] == 300


def test_adjustments_are_neither_limited_nor_counted(ride: Cli) -> None:
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d",
            "--per-customer")
    ride.ok("adjust", "cust-1", "+500", "--account", "Spendable Partner", "--source",
            "Ride Share", "--reason", "goodwill")
    assert issue(ride, "cust-1", 100)["points"] == 100
    assert restrictions(ride)[0]["used"] == 100


def test_a_source_without_restrictions_is_unaffected(ride: Cli) -> None:
    ride.ok("sources", "create", "Base")
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "1", "--per", "1d")
    assert ride.json("issue", "cust-1", "5000", "--source", "Base")["points"] == 5000
    assert restrictions(ride)[0]["used"] == 0


def test_idempotent_replay_does_not_count_twice(ride: Cli) -> None:
    ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d",
            "--per-customer")
    first = issue(ride, "cust-1", 100, "--idempotency-key", "ride-42")
    again = issue(ride, "cust-1", 100, "--idempotency-key", "ride-42")
    assert again["entry"] == first["entry"] and again["replay"] is True
    assert restrictions(ride)[0]["used"] == 100


# --- locking: what waits for what (PostgreSQL; SQLite serialises every writer) ---------------

@pytest.fixture
def pg_ride(cli: Cli) -> Cli:
    """An unlimited source (a limited inventory would make every issue take turns)."""
    if not cli.url.startswith("postgresql"):
        pytest.skip("row and advisory locks are PostgreSQL's; SQLite serialises all writers")
    cli.ok("accounts", "create", "Spendable Partner", "--default")
    cli.ok("sources", "create", "Ride Share")
    return cli


def _open_issue(url: str, user: str, points: int) -> Any:
    """An issue whose transaction stays open (holding its locks) until the context exits."""
    from contextlib import ExitStack

    from pointctl.db.session import transaction
    from pointctl.services import ledger

    stack = ExitStack()
    session = stack.enter_context(transaction(url, write=True))
    ledger.issue(session, user=user, points=points, source="Ride Share",
                 options=ledger.WriteOptions(actor="holder"))
    return stack


def _start(url: str, *args: str) -> Any:
    """A pointctl command in a process of its own, forked from this one."""
    from tests.helpers import fork_cli

    return fork_cli(url, *args)


def _finishes_while_held(url: str, holder_user: str, user: str, points: int) -> tuple[bool, str]:
    """Whether an issue to ``user`` completes while an issue to ``holder_user`` is in flight;
    then the held transaction commits, and the stderr of the second issue is returned."""
    import subprocess

    held = _open_issue(url, holder_user, 60)
    process = _start(url, "issue", user, str(points), "--source", "Ride Share", "--clamp")
    try:
        process.wait(timeout=8)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
    held.close()  # commit
    _, stderr = process.communicate(timeout=60)
    return finished, stderr


def test_unrestricted_and_per_customer_issues_to_others_run_in_parallel(pg_ride: Cli) -> None:
    finished, _ = _finishes_while_held(pg_ride.url, "cust-1", "cust-2", 10)
    assert finished  # no restriction: nothing to wait for
    pg_ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d",
               "--per-customer")
    finished, _ = _finishes_while_held(pg_ride.url, "cust-3", "cust-4", 10)
    assert finished  # another customer's budget


def test_a_per_customer_limit_makes_the_same_customer_wait(pg_ride: Cli) -> None:
    pg_ride.ok("accounts", "create", "Core")
    pg_ride.ok("sources", "edit", "Ride Share", "--link", "Core")
    pg_ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d",
               "--per-customer")
    # the held issue goes to one account, the second to another account of the same customer:
    # different balance rows, so only the restriction's customer lock can make it wait
    import subprocess

    from pointctl.db.session import transaction
    from pointctl.services import ledger

    with transaction(pg_ride.url, write=True) as session:
        ledger.issue(session, user="cust-1", points=60, source="Ride Share",
                     account="Spendable Partner", options=ledger.WriteOptions(actor="holder"))
        process = _start(pg_ride.url, "issue", "cust-1", "60", "--source", "Ride Share",
                         "--account", "Core", "--clamp")
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=3)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "Issued 40 points" in stderr


def test_a_system_limit_makes_every_issue_from_the_source_wait(pg_ride: Cli) -> None:
    pg_ride.ok("restrictions", "add", "Ride Share", "--max-points", "100", "--per", "1d")
    finished, stderr = _finishes_while_held(pg_ride.url, "cust-1", "cust-2", 60)
    assert not finished
    assert "Issued 40 points" in stderr and "clamped from 60" in stderr
