"""`pointctl history USER --at TIME`: balances as they were, from the ledger, on SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.helpers import Cli, snapshot
from tests.test_expiry import at, ok
from tests.test_reports import koalla

NOW = "2026-03-25T00:00:00Z"


def was(cli: Cli, user: str, moment: str) -> dict[str, tuple[int, int]]:
    found: dict[str, Any] = ok(cli, NOW, "history", user, "--at", moment)
    return {row["account"]: (row["balance"], row["pending"]) for row in found["accounts"]}


def test_balances_as_they_were(cli: Cli) -> None:
    koalla(cli)
    assert was(cli, "ann", "2026-03-01T09:59:59Z") == {}
    assert was(cli, "ann", "2026-03-02T12:00:00Z") == {"Core": (150, 0)}
    assert was(cli, "ann", "2026-03-03T12:00:00Z") == {"Core": (30, 0)}    # spent 120
    assert was(cli, "ann", "2026-03-05T12:00:00Z") == {"Core": (60, 0)}    # 30 given back
    assert was(cli, "bob", "2026-03-06T12:00:00Z") == {"Escrow": (50, 0)}  # 30 to ann
    assert was(cli, "bob", "2026-03-15T12:00:00Z") == {"Escrow": (0, 0), "Core": (50, 0)}
    assert was(cli, "dan", "2026-03-13T12:00:00Z") == {"Promo": (60, 0)}
    assert was(cli, "dan", "2026-03-14T12:00:00Z") == {"Promo": (0, 0)}    # expired
    assert was(cli, "dan", "2026-03-22T00:00:00Z") == {"Promo": (20, 0)}   # reactivated
    # now, it agrees with `balance`
    for user in ("ann", "bob", "cy", "dan"):
        now = ok(cli, NOW, "balance", user)["accounts"]
        assert was(cli, user, NOW) == {r["account"]: (r["balance"], r["pending"]) for r in now}
    # times without an offset are read in the program time zone (UTC here), and csv works
    csv = cli.ok("history", "ann", "--at", "2026-03-02 12:00", "--format", "csv",
                 env=at(NOW)).stdout
    assert csv.splitlines() == ["row,account,group,balance,pending", "account,Core,,150,0"]


def test_pending_points_and_debt_at_a_moment(cli: Cli) -> None:
    t0 = "2026-03-01T00:00:00Z"
    ok(cli, t0, "accounts", "create", "Core", "--default", "--group", "Spendable")
    ok(cli, t0, "accounts", "create", "Held", "--pending-for", "7d", "--group", "Spendable")
    ok(cli, t0, "sources", "create", "Base")
    ok(cli, "2026-03-01T10:00:00Z", "issue", "eve", "50", "--source", "Base", "--account",
       "Held")
    ok(cli, "2026-03-02T10:00:00Z", "spend", "eve", "20", "--account", "Core")  # debt 20
    ok(cli, "2026-03-03T10:00:00Z", "issue", "eve", "30", "--source", "Base", "--account",
       "Core")                                                                  # repays 20
    assert was(cli, "eve", "2026-03-02T12:00:00Z") == {"Core": (-20, 0), "Held": (50, 50)}
    assert was(cli, "eve", "2026-03-03T12:00:00Z") == {"Core": (10, 0), "Held": (50, 50)}
    found = ok(cli, NOW, "history", "eve", "--at", "2026-03-09T12:00:00Z")
    assert found["groups"] == [{"group": "Spendable", "balance": 60, "pending": 0}]
    table = cli.ok("history", "eve", "--at", "2026-03-02T12:00:00Z", env=at(NOW)).stdout
    assert "Balances of eve at 2026-03-02T12:00:00Z" in table and "Per group label" in table


def test_unknown_users_and_bad_times(cli: Cli) -> None:
    koalla(cli)
    before = snapshot(cli.url)
    nobody = cli("history", "zed", "--at", "2026-03-02", env=at(NOW))
    assert (nobody.exit_code, nobody.error) == (3, "Error: no entries for user 'zed'")
    bad = cli("history", "ann", "--at", "yesterday", env=at(NOW))
    assert bad.exit_code == 2 and bad.error.startswith("Error: invalid --at 'yesterday'")
    early = cli.ok("history", "ann", "--at", "2026-01-01", env=at(NOW))
    assert early.error == "ann had no entries yet at 2026-01-01T00:00:00Z."
    missing = cli("history", "ann", env=at(NOW))
    assert missing.exit_code == 2
    assert snapshot(cli.url) == before
