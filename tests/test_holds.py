"""Checkout holds: reserve points FIFO (available drops, the lots are earmarked, the balance
stays), capture them as a spend or void them; ``expire run`` releases a hold past its time
exactly once. Holds never create debt and never overdraw, also with many processes at once.
Through the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Cli, forked_together, snapshot
from tests.test_concurrency import run_workers
from tests.test_expiry import at, ok, verify_clean

T0 = "2026-03-01T00:00:00Z"


def refused(cli: Cli, when: str, *args: str, code: int = 1) -> str:
    before = snapshot(cli.url)
    result = cli(*args, env=at(when))
    assert result.exit_code == code, (args, result.error)
    assert len(result.error.splitlines()) == 1 and result.stdout == ""
    assert snapshot(cli.url) == before  # nothing changed
    return result.error


def core_balance(cli: Cli, user: str, when: str = T0) -> tuple[int, int, int, int]:
    row = ok(cli, when, "balance", user)["accounts"][0]
    return row["balance"], row["available"], row["held"], row["debt"]


@pytest.fixture
def shop(cli: Cli) -> Cli:
    ok(cli, T0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, T0, "sources", "create", "Base")
    ok(cli, "2026-02-01T00:00:00Z", "issue", "ann", "60", "--source", "Base")
    ok(cli, "2026-02-02T00:00:00Z", "issue", "ann", "40", "--source", "Base")
    return cli


def test_hold_capture_void_and_list(shop: Cli) -> None:
    cli = shop
    placed = ok(cli, T0, "hold", "ann", "70", "--reference-id", "order-1")
    assert (placed["hold"], placed["points"], placed["status"], placed["expires_at"]) == (
        "order-1", 70, "open", "2026-03-01T00:30:00Z")
    assert core_balance(cli, "ann") == (100, 30, 70, 0)  # balance stays, available drops
    # the oldest lot first: all 60 of it, then 10 of the next
    lots = [(d["lot"], d["points"]) for d in lot_draws(cli, "hold")]
    assert [points for _, points in lots] == [60, 10]
    # spends take only what is not held; a hold never creates debt
    assert refused(cli, T0, "spend", "ann", "31").startswith(
        "Error: insufficient points: ann has 30 available in 'Core'")
    assert refused(cli, T0, "hold", "ann", "31", "--reference-id", "order-2") == (
        "Error: insufficient points: ann has 30 available in 'Core'; 31 needed (a hold never "
        "creates debt)")
    assert refused(cli, T0, "hold", "ann", "5", "--reference-id", "order-1") == (
        "Error: there is already a hold 'order-1' (open); a reference id names one hold")
    ok(cli, T0, "hold", "ann", "20", "--reference-id", "order-2", "--expires-in", "2h")
    listed = ok(cli, T0, "hold", "list", "--user", "ann")
    assert [(h["hold"], h["points"], h["status"], h["expires_at"]) for h in listed] == [
        ("order-2", 20, "open", "2026-03-01T02:00:00Z"),
        ("order-1", 70, "open", "2026-03-01T00:30:00Z")]
    # capture 50 of 70: a spend of 50 from the earmarked lots, the other 20 released
    captured = ok(cli, T0, "hold", "capture", "order-1", "--points", "50")
    assert (captured["points"], captured["held"], captured["released"]) == (50, 70, 20)
    assert core_balance(cli, "ann") == (50, 30, 20, 0)
    assert refused(cli, T0, "hold", "capture", "order-1") == (
        "Error: hold 'order-1' is captured; only an open hold can be captured")
    assert refused(cli, T0, "hold", "void", "order-1") == (
        "Error: hold 'order-1' is captured; only an open hold can be voided")
    assert refused(cli, T0, "hold", "capture", "order-2", "--points", "21") == (
        "Error: hold 'order-2' holds 20 points; cannot capture 21")
    assert refused(cli, T0, "hold", "capture", "nope", code=3) == (
        "Error: no hold 'nope' (see 'pointctl hold list')")
    ok(cli, T0, "hold", "void", "order-2")
    assert core_balance(cli, "ann") == (50, 50, 0, 0)
    assert [h["status"] for h in ok(cli, T0, "hold", "list", "--status", "all")] == [
        "voided", "captured"]
    assert ok(cli, T0, "hold", "list") == []
    # every step is an audit entry; the capture is a spend under the order's reference
    trail = ok(cli, T0, "report", "audit", "--reference-id", "order-1")
    assert sorted((r["type"], r["modification"]) for r in trail) == [
        ("hold", 0), ("release", 0), ("spend", -50)]
    # the captured spend can be reversed like any spend (a return of the goods)
    assert ok(cli, T0, "reverse", "--reference-id", "order-1")["points"] == 50
    verify_clean(cli)


def lot_draws(cli: Cli, kind: str) -> list[dict[str, Any]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from pointctl.db.session import parse_url

    engine = create_engine(parse_url(cli.url), poolclass=NullPool)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT lot_id, points FROM draw WHERE kind = :kind "
                                       "ORDER BY id"), {"kind": kind}).all()
    engine.dispose()
    return [{"lot": lot, "points": points} for lot, points in rows]


def test_balance_and_customer_show_held_points(shop: Cli) -> None:
    ok(shop, T0, "hold", "ann", "25", "--reference-id", "o")
    view = ok(shop, T0, "customer", "ann")
    assert [(a["balance"], a["available"], a["held"]) for a in view["accounts"]] == [
        (100, 75, 25)]
    assert "held" in shop.ok("balance", "ann", env=at(T0)).stdout


def test_an_expired_hold_is_released_once_and_cannot_be_captured(shop: Cli) -> None:
    cli = shop
    ok(cli, T0, "hold", "ann", "30", "--reference-id", "late", "--expires-in", "1h")
    later = "2026-03-01T02:00:00Z"
    assert refused(cli, later, "hold", "capture", "late") == (
        "Error: hold 'late' expired at 2026-03-01T01:00:00Z; it can no longer be captured (its "
        "points are released by 'pointctl expire run')")
    assert core_balance(cli, "ann", later) == (100, 70, 30, 0)  # until a run releases it
    # two runs at once: the hold is released exactly once
    runs = forked_together([lambda: Cli(cli.url)("expire", "run", env=at(later))
                            for _ in range(2)])
    assert [r.exit_code for r in runs] == [0, 0]
    assert sum("Released 1 expired hold" in r.error for r in runs) == 1
    assert len(lot_draws(cli, "release")) == 1
    assert [h["status"] for h in ok(cli, later, "hold", "list", "--status", "all")] == [
        "expired"]
    assert core_balance(cli, "ann", later) == (100, 100, 0, 0)
    assert "Released" not in cli.ok("expire", "run", env=at(later)).error
    verify_clean(cli)


def test_held_points_do_not_expire_while_held(cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, T0, "sources", "create", "Base")
    ok(cli, T0, "accounts", "expiration", "Core", "--rolling", "--older-than", "10d")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "50", "--source", "Base")
    ok(cli, "2026-03-10T10:00:00Z", "hold", "ann", "30", "--reference-id", "o",
       "--expires-in", "7d")
    ok(cli, "2026-03-13T00:00:00Z", "expire", "run")
    # the 20 not held expired; the 30 held are still there, and can be captured
    assert core_balance(cli, "ann", "2026-03-13T00:00:00Z") == (30, 0, 30, 0)
    assert ok(cli, "2026-03-13T00:00:00Z", "hold", "capture", "o")["points"] == 30
    verify_clean(cli)


def test_idempotency_and_batch(shop: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                               ) -> None:
    cli = shop
    first = ok(cli, T0, "hold", "ann", "10", "--reference-id", "k", "--idempotency-key", "h-1")
    again = ok(cli, T0, "hold", "ann", "10", "--reference-id", "k", "--idempotency-key", "h-1")
    assert again == {**first, "replay": True}
    monkeypatch.chdir(tmp_path)
    lines = [{"op": "hold", "user": "ann", "points": 40, "reference_id": "b1"},
             {"op": "hold", "user": "ann", "points": 60, "reference_id": "b2"},  # 50 left
             {"op": "capture", "reference_id": "b1", "points": 15},
             {"op": "void", "reference_id": "k"},
             {"op": "hold", "user": "ann", "points": 60, "reference_id": "b3",
              "expires_in": "1d"}]
    result = cli("batch", "-", "--input-format", "jsonl", env=at(T0),
                 input="".join(json.dumps(line) + "\n" for line in lines))
    assert result.exit_code == 1  # b2 refused
    rejected = (tmp_path / "stdin.rejects.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and "ann has 50 available" in rejected[0]
    assert core_balance(cli, "ann") == (85, 25, 60, 0)
    assert ok(cli, T0, "hold", "list", "--user", "ann")[0]["expires_at"] == \
        "2026-03-02T00:00:00Z"
    verify_clean(cli)


def test_bad_input(shop: Cli) -> None:
    for args, text in [
        (["hold", "ann", "10"], "Error: Missing option '--reference-id'"),
        (["hold", "ann", "10", "--reference-id", " "],
         "Error: a hold needs --reference-id R"),
        (["hold", "ann", "0", "--reference-id", "x"], "Error: POINTS must be"),
        (["hold", "ann", "10", "--reference-id", "x", "--expires-in", "2y"],
         "Error: --expires-in '2y' is too long: a hold lasts at most 366 days"),
        (["hold", "ann", "10", "--reference-id", "x", "--expires-in", "soon"],
         "Error: invalid --expires-in duration"),
        (["hold", "capture", "x", "--points", "0"], "Error: --points must be"),
        (["hold", "list", "--status", "gone"], "Error: Invalid value for '--status'"),
    ]:
        result = shop(*args, env=at(T0))
        assert result.exit_code == 2, (args, result.error)
        assert result.error.startswith(text), (args, result.error)


def test_concurrent_holds_spends_and_captures_never_overdraw(shop: Cli) -> None:
    """Five holds and five spends of 20 at once on 100 points: five succeed; then the
    successful holds are captured while five more spends run: every capture succeeds (its
    points were reserved), no spend can take them, nothing is owed."""
    commands = [["hold", "ann", "20", "--reference-id", f"h{n}"] for n in range(5)] + \
        [["spend", "ann", "20"] for _ in range(5)]
    results = run_workers(shop.url, commands)
    assert sorted(r.returncode for r in results) == [0] * 5 + [1] * 5, \
        [r.stderr for r in results]
    held = [f"h{n}" for n in range(5) if results[n].returncode == 0]
    spent = sum(r.returncode == 0 for r in results[5:])
    assert core_balance(shop, "ann") == (100 - 20 * spent, 0, 20 * len(held), 0)
    second = run_workers(shop.url, [["hold", "capture", ref] for ref in held]
                         + [["spend", "ann", "20"] for _ in range(5)])
    assert [r.returncode for r in second[:len(held)]] == [0] * len(held)
    assert all(r.returncode == 1 for r in second[len(held):])
    assert core_balance(shop, "ann") == (0, 0, 0, 0)
    verify_clean(shop)


def test_a_forked_capture_and_void_of_one_hold_happen_once(shop: Cli) -> None:
    ok(shop, T0, "hold", "ann", "30", "--reference-id", "race", "--expires-in", "1d")
    done = forked_together([lambda: Cli(shop.url)("hold", "capture", "race", env=at(T0)),
                            lambda: Cli(shop.url)("hold", "void", "race", env=at(T0))])
    assert sorted(r.exit_code for r in done) == [0, 1]
    assert len(lot_draws(shop, "release")) == 1
    verify_clean(shop)


def test_a_hold_on_points_issued_earlier_in_the_same_batch_chunk(
        shop: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = [{"op": "issue", "user": "bo", "points": 100, "source": "Base"},
             {"op": "hold", "user": "bo", "points": 100, "reference_id": "h1"}]
    result = shop("batch", "-", "--input-format", "jsonl", env=at(T0),
                  input="".join(json.dumps(line) + "\n" for line in lines))
    assert result.exit_code == 0, result.error
    assert core_balance(shop, "bo") == (100, 0, 100, 0)  # the new lot is written earmarked
    refused(shop, T0, "spend", "bo", "1")
    assert ok(shop, T0, "hold", "capture", "h1")["points"] == 100
    assert core_balance(shop, "bo") == (0, 0, 0, 0)
    verify_clean(shop)


def test_reference_ids_are_taken_as_given_and_at_cannot_revive_a_hold(shop: Cli) -> None:
    ok(shop, T0, "hold", "ann", "5", "--reference-id", "r1 ")
    ok(shop, T0, "hold", "ann", "5", "--reference-id", "r1")  # another hold
    assert ok(shop, T0, "hold", "capture", "r1 ")["points"] == 5
    assert [h["hold"] for h in ok(shop, T0, "hold", "list")] == ["r1"]
    verify_clean(shop)
    later = "2026-03-01T01:00:00Z"
    assert refused(shop, later, "hold", "capture", "r1", "--at", T0).startswith(
        "Error: hold 'r1' expired at 2026-03-01T00:30:00Z")
    assert refused(shop, later, "hold", "ann", "5", "--reference-id", "old", "--at",
                   "2026-03-01T00:10:00Z") == (
        "Error: a hold placed at 2026-03-01T00:10:00Z for 30min would have expired at "
        "2026-03-01T00:40:00Z, before now")


def test_a_capture_spends_the_oldest_earmarked_points_first_across_accounts(cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, T0, "accounts", "create", "Promo", "--no-negative")
    ok(cli, T0, "sources", "create", "Base")
    ok(cli, "2026-02-01T00:00:00Z", "issue", "ann", "30", "--source", "Base", "--account",
       "Core")
    ok(cli, "2026-02-02T00:00:00Z", "issue", "ann", "20", "--source", "Base", "--account",
       "Promo")
    ok(cli, "2026-02-03T00:00:00Z", "issue", "ann", "20", "--source", "Base", "--account",
       "Core")
    ok(cli, T0, "hold", "ann", "70", "--reference-id", "o", "--account", "Core", "--account",
       "Promo")
    done = ok(cli, T0, "hold", "capture", "o", "--points", "45")
    assert sorted((e["account"], e["points"]) for e in done["entries"]) == [
        ("Core", 30), ("Promo", 15)]  # 30 of 02-01, then 15 of 02-02: as a spend would
    verify_clean(cli)


def test_holds_past_their_time_are_released_before_a_later_evaluation(cli: Cli) -> None:
    """A hold that ended before an evaluation does not shield its points from it."""
    ok(cli, T0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, T0, "sources", "create", "Base")
    ok(cli, T0, "accounts", "expiration", "Core", "--fixed-date", "06-15",
       "--every", "yearly on 06-15")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "100", "--source", "Base")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "bob", "100", "--source", "Base")
    ok(cli, "2026-06-14T23:00:00Z", "hold", "ann", "100", "--reference-id", "o")
    # a dry run and a preview leave holds as they are (releasing them there would lock rows a
    # checkout needs): they show bob's 100 only
    dry = cli.ok("expire", "run", "--dry-run", env=at("2026-06-15T01:00:00Z"))
    assert "100 points expired" in dry.error
    coming = ok(cli, "2026-06-14T23:00:00Z", "expire", "preview", "--within", "2d")
    assert sorted((r["user"], r["expires"]) for r in coming) == [("bob", 100)]
    # an ended hold is for expire run to release, not for a void
    assert refused(cli, "2026-06-15T01:00:00Z", "hold", "void", "o") == (
        "Error: hold 'o' ended at 2026-06-14T23:30:00Z; 'pointctl expire run' releases it")
    result = cli.ok("expire", "run", env=at("2026-06-15T01:00:00Z"))
    assert "Released 1 expired hold" in result.error
    assert ok(cli, "2026-06-15T01:00:00Z", "balance", "ann")["accounts"][0]["balance"] == 0
    assert ok(cli, "2026-06-15T01:00:00Z", "balance", "bob")["accounts"][0]["balance"] == 0
    verify_clean(cli)


def test_a_hold_that_ends_as_an_evaluation_falls_due_does_not_shield_its_points(
        cli: Cli) -> None:
    ok(cli, T0, "accounts", "create", "Core", "--default", "--no-negative")
    ok(cli, T0, "sources", "create", "Base")
    ok(cli, T0, "accounts", "expiration", "Core", "--fixed-date", "06-15",
       "--every", "yearly on 06-15")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "ann", "100", "--source", "Base")
    ok(cli, "2026-06-14T23:30:00Z", "hold", "ann", "100", "--reference-id", "o")  # ends 00:00
    # a run naming the account releases it too
    result = cli.ok("expire", "run", "--account", "Core", env=at("2026-06-15T01:00:00Z"))
    assert "100 points expired" in result.error and "Released 1 expired hold" in result.error
    assert ok(cli, "2026-06-15T01:00:00Z", "balance", "ann")["accounts"][0]["balance"] == 0
    verify_clean(cli)


def test_verify_finds_earmarks_that_do_not_add_up(shop: Cli) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from pointctl.db.session import parse_url

    ok(shop, T0, "hold", "ann", "30", "--reference-id", "o")
    verify_clean(shop)

    def violated(statement: str) -> list[int]:
        engine = create_engine(parse_url(shop.url), poolclass=NullPool)
        with engine.begin() as connection:
            connection.execute(text(statement))
        engine.dispose()
        result = shop("verify", "--format", "json")
        assert result.exit_code == 1
        return sorted({v["rule"] for v in json.loads(result.stdout)["violations"]})

    assert violated("DELETE FROM hold") == [9]  # an earmark for a hold that does not exist
    assert violated("UPDATE lot SET held = held + 1 WHERE held > 0") == [8, 9]
