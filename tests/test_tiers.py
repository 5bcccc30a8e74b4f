"""Tiers: levels reached with the qualifying points earned over a window, assessed by ``expire
run`` on their schedule (each evaluation once, also when runs overlap), kept for a while,
shown per member with when the level would lapse, counted by ``report tiers``, and kept in
the program file and its change history. Through the command line, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Cli, forked_together, snapshot
from tests.test_expiry import at, ok, verify_clean
from tests.test_holds import refused

T0 = "2026-03-01T00:00:00Z"


def expire(cli: Cli, when: str, *extra: str) -> str:
    """``expire run`` at ``when``: its tier line on stderr."""
    result = cli.ok("expire", "run", *extra, env=at(when))
    return next((line for line in result.error.splitlines() if "tier evaluation" in line), "")


def tier_moves(cli: Cli, user: str | None = None) -> list[tuple[str, str, str, str]]:
    """(user, time, reference type, new level) of the tier entries, oldest first."""
    args = ["report", "audit", "--type", "tier", "--limit", "1000"]
    if user:
        args += ["--user", user]
    rows = ok(cli, T0, *args)
    return sorted((r["user"], r["time"], r["reference_type"], r["reference_id"])
                  for r in rows)


@pytest.fixture
def program(cli: Cli) -> Cli:
    ok(cli, T0, "accounts", "create", "Core", "--default")
    ok(cli, T0, "accounts", "create", "Tier", "--qualifying")
    ok(cli, T0, "sources", "create", "Shop", "--link", "Core", "--link", "Tier")
    return cli


def test_setting_tiers_and_bad_definitions(program: Cli) -> None:
    cli = program
    assert refused(cli, T0, "tiers", "show") == (
        "Error: no tiers are set; define them with 'pointctl tiers set'")
    assert refused(cli, T0, "tier", "ann") == (
        "Error: no tiers are set; define them with 'pointctl tiers set'")
    base = ["tiers", "set", "--account", "Tier"]
    assert refused(cli, T0, "tiers", "set", "--account", "Core", "--level", "Gold=5") == (
        "Error: account 'Core' is not tier qualifying; tiers count the points of a qualifying "
        "account (pointctl accounts create NAME --qualifying)")
    assert refused(cli, T0, "tiers", "set", "--account", "Nope", "--level", "Gold=5",
                   code=3).startswith("Error: no account named 'Nope'")
    assert refused(cli, T0, *base, "--level", "Gold", code=2) == (
        "Error: invalid --level 'Gold': expected NAME=POINTS, such as Gold=5000")
    assert refused(cli, T0, *base, "--level", "Gold=lots", code=2) == (
        "Error: invalid --level 'Gold=lots': 'lots' is not a whole number of points")
    assert refused(cli, T0, *base, "--level", "Gold=0", code=2) == (
        "Error: tier level 'Gold': the threshold must be a whole number of points from 1 to "
        "9223372036854775807, not 0")
    assert refused(cli, T0, *base, "--level", "Gold=5", "--level", "gold=9", code=2) == (
        "Error: tier level 'gold' is named twice")
    assert refused(cli, T0, *base, "--level", "Gold=5", "--level", "Silver=5", code=2) == (
        "Error: tier levels 'Gold' and 'Silver' both need 5 points; each level needs more "
        "than the one below it")
    assert refused(cli, T0, *base, "--level", "Gold=5", "--window", "12h", code=2) == (
        "Error: invalid --window '12h': a tier window is days or longer (such as 90d or "
        "12mo), or calendar-year")
    assert refused(cli, T0, *base, "--level", "Gold=5", "--window", "11y", code=2) == (
        "Error: invalid --window '11y': a tier window is at most 10 years")
    assert refused(cli, T0, *base, "--level", "Gold=5", "--keep", "forever",
                   code=2).startswith("Error: invalid --keep duration 'forever'")
    assert refused(cli, T0, *base, "--level", "Gold=5", "--every", "sometimes",
                   code=2).startswith("Error: invalid schedule 'sometimes'")
    # levels in any order: lowest first; the schedule and window as given
    found = ok(cli, T0, *base, "--level", "Gold=5000", "--level", "Silver=1000",
               "--window", "Calendar-Year", "--keep", "12 months", "--every", "monthly on 1")
    assert found["changed"] is True
    shown = ok(cli, T0, "tiers", "show")
    assert (shown["account"], shown["window"], shown["keep"], shown["schedule"],
            shown["next_due"]) == ("Tier", "calendar-year", "12mo", "monthly on 1",
                                   "2026-04-01T00:00:00Z")
    assert [(lv["level"], lv["points"], lv["members"]) for lv in shown["levels"]] == [
        ("Silver", 1000, 0), ("Gold", 5000, 0)]
    # the same again changes nothing and records nothing
    before = snapshot(cli.url)
    again = ok(cli, T0, *base, "--level", "Silver=1000", "--level", "Gold=5000",
               "--window", "calendar-year", "--keep", "12mo", "--every", "monthly on 1")
    assert again["changed"] is False and snapshot(cli.url) == before
    # the qualifying account the tiers count stays qualifying
    assert refused(cli, T0, "accounts", "edit", "Tier", "--no-qualifying") == (
        "Error: account 'Tier' is the tiers' qualifying account; it stays tier qualifying "
        "while tiers count it (pointctl tiers set --account ANOTHER, or tiers clear)")
    assert refused(cli, T0, "tiers", "clear") == (
        "Error: 'pointctl tiers clear' removes every member's level; pass --yes to confirm")
    assert ok(cli, T0, "tiers", "clear", "--yes")["changed"] is True
    assert refused(cli, T0, "tiers", "show").startswith("Error: no tiers are set")


def test_up_at_once_kept_then_down_and_the_forecast_agrees(program: Cli) -> None:
    cli = program
    ok(cli, T0, "tiers", "set", "--account", "Tier", "--level", "Silver=100",
       "--level", "Gold=300", "--window", "30d", "--keep", "10d")
    issued = {user: ok(cli, "2026-03-01T10:00:00Z", "issue", user, str(points), "--source",
                       "Shop", "--account", "Tier")["entry"]
              for user, points in (("ann", 150), ("bob", 350), ("cat", 50))}
    # other accounts' points and spends count for nothing
    ok(cli, "2026-03-01T10:00:00Z", "issue", "cat", "900", "--source", "Shop", "--account",
       "Core")
    ok(cli, "2026-03-01T11:00:00Z", "spend", "cat", "100")
    assert expire(cli, "2026-03-02T00:00:00Z") == (
        "Performed 1 tier evaluation: 2 members moved up, 0 down, 2 hold a level")
    assert tier_moves(cli) == [("ann", "2026-03-02T00:00:00Z", "Tier up", "Silver"),
                               ("bob", "2026-03-02T00:00:00Z", "Tier up", "Gold")]
    seen = ok(cli, "2026-03-02T00:00:00Z", "customer", "bob")
    assert (seen["tier"], seen["tier_kept_until"]) == ("Gold", "2026-03-12T00:00:00Z")
    note = ok(cli, T0, "report", "audit", "--type", "tier", "--user", "bob")[0]["note"]
    assert note == "none -> Gold (350 qualifying points in the window)"
    # a reversal of a qualifying issue lowers the points; the level is kept for 10 days after
    # the last evaluation that reached it (March 5, 00:00)
    ok(cli, "2026-03-05T10:00:00Z", "reverse", "--entry", str(issued["bob"]), "--points", "100")
    bob = ok(cli, "2026-03-06T12:00:00Z", "tier", "bob")
    assert {k: bob[k] for k in ("level", "qualifying_points", "level_now", "next_level",
                                "points_to_next", "kept_until", "lapses_at")} == {
        "level": "Gold", "qualifying_points": 250, "level_now": "Silver", "next_level": None,
        "points_to_next": None, "kept_until": "2026-03-12T00:00:00Z",
        "lapses_at": "2026-03-15T00:00:00Z"}  # kept_until as the last run left it
    ann = ok(cli, "2026-03-06T12:00:00Z", "tier", "ann")
    # 150 points of March 1, 10:00 leave the 30-day window on March 31, 10:00: the evaluation
    # of March 31, 00:00 is the last to reach Silver, kept 10 days more
    assert (ann["level"], ann["next_level"], ann["points_to_next"], ann["lapses_at"]) == (
        "Silver", "Gold", 150, "2026-04-10T00:00:00Z")
    cat = ok(cli, "2026-03-06T12:00:00Z", "tier", "cat")
    assert (cat["level"], cat["qualifying_points"], cat["next_level"], cat["points_to_next"],
            cat["lapses_at"]) == (None, 50, "Silver", 50, None)
    assert refused(cli, T0, "tier", "nobody", code=3) == "Error: no balances for user 'nobody'"
    # the evaluations bear the forecasts out
    assert expire(cli, "2026-03-14T12:00:00Z").endswith("0 members moved up, 0 down, "
                                                        "2 hold a level")
    assert ok(cli, "2026-03-14T12:00:00Z", "tier", "bob")["level"] == "Gold"
    assert expire(cli, "2026-03-15T00:00:00Z") == (
        "Performed 1 tier evaluation: 0 members moved up, 1 down, 2 hold a level")
    bob = ok(cli, "2026-03-15T00:00:00Z", "tier", "bob")
    # his 350 leave the window on March 31, 10:00 (the -100 of the reversal only on April 4):
    # Silver is reached last on March 31, 00:00 and kept 10 days
    assert (bob["level"], bob["kept_until"], bob["lapses_at"]) == (
        "Silver", "2026-03-25T00:00:00Z", "2026-04-10T00:00:00Z")
    expire(cli, "2026-04-09T23:00:00Z")
    assert ok(cli, "2026-04-09T23:00:00Z", "tier", "ann")["level"] == "Silver"
    assert expire(cli, "2026-04-10T00:00:00Z").endswith("0 members moved up, 2 down, "
                                                        "0 hold a level")
    assert tier_moves(cli, "ann")[-1] == ("ann", "2026-04-10T00:00:00Z", "Tier down", "none")
    # performed once: a second run at the same time has nothing to do
    assert expire(cli, "2026-04-10T00:00:00Z") == ""
    # members per level now, moves in the period
    report = ok(cli, "2026-04-10T00:00:00Z", "report", "tiers")
    assert [(r["level"], r["members"], r["moved_up"], r["moved_down"])
            for r in report["rows"]] == [("Silver", 0, 1, 1), ("Gold", 0, 1, 0),
                                         ("none", None, 0, 2)]
    march = ok(cli, "2026-04-10T00:00:00Z", "report", "tiers", "--last-month")
    assert [(r["moved_up"], r["moved_down"]) for r in march["rows"]] == [(1, 1), (1, 0),
                                                                           (0, 0)]
    verify_clean(cli)


def test_calendar_year_counts_the_year_just_ended_at_midnight(program: Cli) -> None:
    cli = program
    ok(cli, T0, "tiers", "set", "--account", "Tier", "--level", "Silver=100",
       "--window", "calendar-year")
    ok(cli, "2026-12-31T12:00:00Z", "issue", "ann", "60", "--source", "Shop", "--account",
       "Tier")
    ok(cli, "2026-06-01T12:00:00Z", "issue", "ann", "40", "--source", "Shop", "--account",
       "Tier")
    # the evaluation at midnight on January 1 still counts 2026; without --keep the level
    # lasts only while reached: the next day's window is 2027
    forecast = ok(cli, "2026-12-31T13:00:00Z", "tier", "ann")
    assert (forecast["qualifying_points"], forecast["window"], forecast["level_now"]) == (
        100, "calendar year 2026", "Silver")
    expire(cli, "2027-01-01T00:00:00Z")
    assert tier_moves(cli, "ann") == [("ann", "2027-01-01T00:00:00Z", "Tier up", "Silver")]
    now = ok(cli, "2027-01-01T06:00:00Z", "tier", "ann")
    assert (now["level"], now["qualifying_points"], now["window"], now["lapses_at"]) == (
        "Silver", 0, "calendar year 2027", "2027-01-02T00:00:00Z")
    expire(cli, "2027-01-02T00:00:00Z")
    assert tier_moves(cli, "ann")[-1] == ("ann", "2027-01-02T00:00:00Z", "Tier down", "none")


def test_overlapping_runs_assess_each_member_once(program: Cli, tmp_path: Path) -> None:
    cli = program
    ok(cli, T0, "tiers", "set", "--account", "Tier", "--level", "Silver=10",
       "--level", "Gold=20", "--window", "90d")
    lines = "".join(json.dumps({"op": "issue", "user": f"u{n:02}", "points": 10 + n,
                                "source": "Shop", "account": "Tier",
                                "at": f"2026-03-0{1 + n % 5}T10:00:00Z"}) + "\n"
                    for n in range(20))
    path = tmp_path / "ops.jsonl"
    path.write_text(lines)
    cli.ok("batch", str(path), env=at("2026-03-06T00:00:00Z"))
    later = "2026-03-10T00:00:00Z"  # 9 evaluations due
    runs = forked_together([lambda: Cli(cli.url)("expire", "run", env=at(later))
                            for _ in range(4)])
    assert [r.exit_code for r in runs] == [0] * 4, [r.error for r in runs]
    performed = [int(r.error.split("Performed ")[2].split(" tier")[0]) for r in runs
                 if "tier evaluation" in r.error]
    assert sum(performed) == 9
    moves = tier_moves(cli)
    assert len(moves) == 20  # each member moved up exactly once
    assert len({user for user, *_ in moves}) == 20
    shown = ok(cli, later, "tiers", "show")
    assert [(lv["level"], lv["members"]) for lv in shown["levels"]] == [("Silver", 10),
                                                                          ("Gold", 10)]
    assert shown["last_evaluation"] == later
    verify_clean(cli)


def test_expire_run_account_filter_and_dry_run(program: Cli) -> None:
    cli = program
    ok(cli, T0, "accounts", "expiration", "Core", "--rolling", "--older-than", "30d")
    ok(cli, T0, "tiers", "set", "--account", "Tier", "--level", "Silver=10")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "10", "--source", "Shop", "--account",
       "Tier")
    before = snapshot(cli.url)
    assert expire(cli, "2026-03-03T00:00:00Z", "--dry-run") == (
        "Would perform 2 tier evaluations: 1 members moved up, 0 down, 1 hold a level "
        "(dry run, nothing changed)")
    assert snapshot(cli.url) == before
    assert expire(cli, "2026-03-03T00:00:00Z", "--account", "Core") == ""
    assert tier_moves(cli) == []
    # the qualifying account needs no expiration policy to be named
    assert expire(cli, "2026-03-03T00:00:00Z", "--account", "Tier").startswith(
        "Performed 2 tier evaluations: 1 members moved up")


def test_tiers_in_the_program_file_and_the_change_history(program: Cli, tmp_path: Path
                                                         ) -> None:
    cli = program
    ok(cli, T0, "tiers", "set", "--account", "Tier", "--level", "Silver=100")
    exported = cli.ok("config", "export", env=at(T0)).stdout
    assert '[tiers]\naccount = "Tier"\nwindow = "12mo"\nevery = "daily"\n' in exported
    path = cli_file(tmp_path, exported.replace('{ name = "Silver", points = 100 }',
                                          '{ name = "Silver", points = 200 }, '
                                          '{ name = "Gold", points = 900 }'))
    plan = ok(cli, "2026-03-02T12:00:00Z", "config", "apply", path, "--dry-run")
    tiers_step = next(step for step in plan["steps"] if step["kind"] == "tiers")
    assert tiers_step["text"] == (
        'update tiers: levels: [{"name": "Silver", "points": 100}] -> [{"name": "Silver", '
        '"points": 200}, {"name": "Gold", "points": 900}]')
    ok(cli, "2026-03-02T12:00:00Z", "config", "apply", path)
    assert [lv["points"] for lv in ok(cli, "2026-03-02T12:00:00Z", "tiers", "show")[
        "levels"]] == [200, 900]
    changes = [r["note"] for r in ok(cli, T0, "report", "audit", "--type", "change")
               if r["reference_type"].startswith("Tiers")]
    assert changes == [
        'tiers config apply: levels: [{"name": "Silver", "points": 100}] -> [{"name": '
        '"Silver", '
        '"points": 200}, {"name": "Gold", "points": 900}]',
        "tiers set: account: none -> Tier; window: none -> 12mo; every: none -> daily; "
        'levels: none -> [{"name": "Silver", "points": 100}]']
    # the program as it was, then
    assert cli.ok("config", "export", "--at", "2026-03-01T12:00:00Z",
                  env=at("2026-03-03T00:00:00Z")).stdout == exported
    # --prune removes tiers the file does not have, with --yes
    bare = cli_file(tmp_path, exported.split("[tiers]")[0])
    assert refused(cli, "2026-03-03T00:00:00Z", "config", "apply", bare, "--prune") == (
        "Error: --prune would remove tiers; pass --yes to confirm (--dry-run shows the whole "
        "plan)")
    ok(cli, "2026-03-03T00:00:00Z", "config", "apply", bare, "--prune", "--yes")
    assert "[tiers]" not in cli.ok("config", "export", env=at("2026-03-03T00:00:00Z")).stdout
    # a file naming an account that is not there
    wrong = cli_file(tmp_path, exported.replace('account = "Tier"', 'account = "Gone"'))
    assert refused(cli, "2026-03-03T00:00:00Z", "config", "apply", wrong, code=2) == (
        "Error: 1 problem in the file, nothing applied: tiers.account: no account named "
        "'Gone' in the file or the database")


def cli_file(folder: Path, content: str) -> str:
    path = folder / f"program-{len(list(folder.iterdir()))}.toml"
    path.write_text(content)
    return str(path)


def test_defining_the_tiers_from_several_processes_at_once(program: Cli) -> None:
    cli = program
    runs = forked_together([
        lambda n=n: Cli(cli.url)("tiers", "set", "--account", "Tier", "--level",
                                 f"Silver={100 + n}", env=at(T0)) for n in range(4)])
    assert [r.exit_code for r in runs] == [0] * 4, [r.error for r in runs]
    # one definition, the last one set; each set was recorded against the one before it
    final = ok(cli, T0, "tiers", "show")["levels"][0]["points"]
    notes = [r["note"] for r in ok(cli, T0, "report", "audit", "--type", "change")
             if r["reference_type"].startswith("Tiers")]
    assert len(notes) == 4 and f'"points": {final}}}]' in notes[0]
    assert notes[-1].startswith("tiers set: account: none -> Tier;")


def test_reversals_count_when_what_they_reverse_was_earned(cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Tier", "--qualifying", "--no-negative")
    ok(cli, T0, "sources", "create", "Shop", "--link", "Tier")
    ok(cli, T0, "accounts", "expiration", "Tier", "--rolling", "--older-than", "2d")
    ok(cli, T0, "tiers", "set", "--account", "Tier", "--level", "Silver=100", "--window", "30d")
    first = ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "150", "--source", "Shop")["entry"]
    bob = ok(cli, "2026-03-01T10:00:00Z", "issue", "bob", "150", "--source", "Shop")["entry"]
    # ann's issue returned whole on March 5: it counts on March 1, when it was earned, so it
    # leaves the window together with the issue instead of lowering April's count
    ok(cli, "2026-03-05T10:00:00Z", "reverse", "--entry", str(first))
    # bob's points expired (that takes no level away); their return is written off, and
    # still takes the qualifying points back
    returned = ok(cli, "2026-03-10T12:00:00Z", "reverse", "--entry", str(bob))
    assert returned["reversals"][0]["written_off"] == 150
    assert ok(cli, "2026-03-10T12:00:00Z", "tier", "bob")["qualifying_points"] == 0
    ok(cli, "2026-03-20T10:00:00Z", "issue", "ann", "100", "--source", "Shop")
    expire(cli, "2026-04-02T00:00:00Z")
    assert ok(cli, "2026-04-02T00:00:00Z", "tier", "ann")["level"] == "Silver"
    assert tier_moves(cli, "ann") == [("ann", "2026-03-02T00:00:00Z", "Tier up", "Silver"),
                                      ("ann", "2026-03-06T00:00:00Z", "Tier down", "none"),
                                      ("ann", "2026-03-21T00:00:00Z", "Tier up", "Silver")]
    assert tier_moves(cli, "bob") == [("bob", "2026-03-02T00:00:00Z", "Tier up", "Silver"),
                                      ("bob", "2026-03-11T00:00:00Z", "Tier down", "none")]


def test_calendar_year_with_a_weekly_schedule_assesses_the_year_s_last_days(
        program: Cli) -> None:
    cli = program
    ok(cli, T0, "tiers", "set", "--account", "Tier", "--level", "Silver=100",
       "--window", "calendar-year", "--every", "weekly on monday")
    # Tuesday, December 29: after the year's last Monday evaluation (December 28)
    ok(cli, "2026-12-29T12:00:00Z", "issue", "ann", "150", "--source", "Shop", "--account",
       "Tier")
    # the first evaluation of 2027 (Monday, January 4) assesses 2026 as well, also when the
    # tiers were changed since the last evaluation of 2026
    expire(cli, "2026-12-30T00:00:00Z")
    forecast = ok(cli, "2027-01-02T00:00:00Z", "tier", "ann")
    assert (forecast["qualifying_points"], forecast["window"], forecast["level_now"],
            forecast["next_level"], forecast["points_to_next"]) == (
        150, "calendar year 2026", "Silver", None, None)
    ok(cli, "2027-01-02T00:00:00Z", "tiers", "set", "--account", "Tier", "--level",
       "Silver=100", "--level", "Gold=1000", "--window", "calendar-year", "--every",
       "weekly on monday")
    assert ok(cli, "2027-01-02T00:00:00Z", "tiers", "show")["last_evaluation"] == (
        "2026-12-28T00:00:00Z")
    expire(cli, "2027-01-12T00:00:00Z")
    assert tier_moves(cli, "ann") == [
        ("ann", "2027-01-04T00:00:00Z", "Tier up", "Silver"),
        ("ann", "2027-01-11T00:00:00Z", "Tier down", "none")]  # no keep: 2027 alone counts


def test_calendar_years_between_far_apart_evaluations_all_count(program: Cli) -> None:
    cli = program
    ok(cli, "2026-01-15T00:00:00Z", "tiers", "set", "--account", "Tier", "--level",
       "Silver=100", "--window", "calendar-year", "--every", "every 24 months on 1")
    expire(cli, "2026-02-02T00:00:00Z")
    ok(cli, "2026-03-01T00:00:00Z", "issue", "ann", "150", "--source", "Shop", "--account",
       "Tier")
    assert ok(cli, "2028-01-31T00:00:00Z", "tier", "ann")["level_now"] == "Silver"
    expire(cli, "2028-02-01T00:00:00Z")
    assert tier_moves(cli, "ann") == [("ann", "2028-02-01T00:00:00Z", "Tier up", "Silver")]


def test_levels_renamed_removed_and_cleared(program: Cli) -> None:
    cli = program
    assert refused(cli, T0, "tiers", "set", "--account", "Tier", "--level", "None=5",
                   code=2) == ("Error: a tier level cannot be named 'none': it stands for no "
                               "level in the tier entries and reports")
    ok(cli, T0, "tiers", "set", "--account", "Tier", "--level", "Élite=100",
       "--level", "Gold=300", "--keep", "12mo")
    for user, points in (("ann", 150), ("bob", 400)):
        ok(cli, "2026-03-01T10:00:00Z", "issue", user, str(points), "--source", "Shop",
           "--account", "Tier")
    expire(cli, "2026-03-02T00:00:00Z")
    # a level renamed only in case stays the members' level (also beyond ASCII)
    ok(cli, "2026-03-02T06:00:00Z", "tiers", "set", "--account", "Tier",
       "--level", "élite=100", "--level", "Gold=300", "--keep", "12mo")
    assert ok(cli, "2026-03-02T06:00:00Z", "tier", "ann")["level"] == "élite"
    # Gold replaced by Platinum: bob's level is no longer defined; the next evaluation gives
    # him the level his points reach, a change (neither up nor down)
    ok(cli, "2026-03-02T12:00:00Z", "tiers", "set", "--account", "Tier",
       "--level", "élite=100", "--level", "Platinum=1000", "--keep", "12mo")
    bob = ok(cli, "2026-03-02T12:00:00Z", "tier", "bob")
    assert (bob["level"], bob["level_now"], bob["next_level"], bob["points_to_next"],
            bob["lapses_at"]) == ("Gold", "élite", "Platinum", 600, "2026-03-03T00:00:00Z")
    assert expire(cli, "2026-03-03T00:00:00Z") == (
        "Performed 1 tier evaluation: 0 members moved up, 0 down, 1 out of a level no longer "
        "defined, 2 hold a level")
    assert tier_moves(cli, "bob")[-1] == ("bob", "2026-03-03T00:00:00Z", "Tier change",
                                          "élite")
    rows = ok(cli, "2026-03-03T00:00:00Z", "report", "tiers")["rows"]
    assert [(r["level"], r["members"], r["moved_up"], r["changed"]) for r in rows] == [
        ("élite", 2, 1, 1), ("Platinum", 0, 0, 0), ("none", None, 0, 0)]
    verify_clean(cli)  # élite held under the entries' Élite: a rename in case only
    # a level that no entry gave is a broken rule
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from pointctl.db.session import parse_url

    engine = create_engine(parse_url(cli.url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE member_tier SET level = 'Platinum' "
                                "WHERE user_id = 'ann'"))
    engine.dispose()
    broken = cli("verify", "--format", "json")
    assert broken.exit_code == 1
    assert [(v["rule"], v["subject"], v["detail"]) for v in
            json.loads(broken.stdout)["violations"]] == [
        (10, "member ann", "level Platinum but the latest tier entry says Élite")]
    # removing the tiers takes every level, each an entry
    assert ok(cli, "2026-03-04T00:00:00Z", "tiers", "clear", "--yes")["members_cleared"] == 2
    assert [m[2:] for m in tier_moves(cli) if m[1] == "2026-03-04T00:00:00Z"] == [
        ("Tier change", "none"), ("Tier change", "none")]
    assert ok(cli, "2026-03-04T00:00:00Z", "customer", "ann")["tier"] is None


def test_a_program_file_moves_the_tiers_to_another_account(program: Cli,
                                                           tmp_path: Path) -> None:
    cli = program
    ok(cli, T0, "accounts", "create", "Tier2", "--qualifying")
    ok(cli, T0, "tiers", "set", "--account", "Tier", "--level", "Silver=100")
    exported = cli.ok("config", "export", env=at(T0)).stdout
    unqualified = exported.replace(
        'name = "Tier"\ndefault = false\nallow_negative = true\nqualifying = true',
        'name = "Tier"\ndefault = false\nallow_negative = true\nqualifying = false')
    assert unqualified != exported
    # the old account may stop qualifying when the same file moves the tiers away
    ok(cli, T0, "config", "apply", cli_file(tmp_path, unqualified.replace(
        'account = "Tier"\n', 'account = "Tier2"\n')))
    assert ok(cli, T0, "tiers", "show")["account"] == "Tier2"
    # but not while the tiers still count it
    kept = cli.ok("config", "export", env=at(T0)).stdout.replace(
        'name = "Tier2"\ndefault = false\nallow_negative = true\nqualifying = true',
        'name = "Tier2"\ndefault = false\nallow_negative = true\nqualifying = false')
    assert refused(cli, T0, "config", "apply", cli_file(tmp_path, kept)) == (
        "Error: tiers.account: account 'Tier2' counts toward the tiers; it stays tier "
        "qualifying while they count it (name another qualifying account in [tiers], or leave "
        "[tiers] out and apply with --prune)")
