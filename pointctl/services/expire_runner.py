"""Running the due expiration evaluations: what ``pointctl expire run`` does, without Typer.

This module owns the transactions around ``pointctl.services.expiry``: it lists the due
evaluations in a read, then performs each in its own transaction (a crash loses nothing
performed; a second run at the same time waits for the policy row and then finds the
evaluation done, which its outcome reports as not performed). A dry run performs them all in
one transaction that is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from pointctl.services.expiry import Outcome


class _DryRun(Exception):
    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes


def run_due(url: str, *, until: datetime | None = None, accounts: Sequence[str] = (),
            actor: str, dry_run: bool = False,
            on_progress: Callable[[int, int], None] | None = None,
            engine: Engine | None = None, read_only: bool = False,
            release_holds: list[int] | None = None) -> list[Outcome]:
    """Perform every evaluation due at or before ``until`` (default: now), oldest first, each
    as of its scheduled time; only those of ``accounts`` when named. One outcome per evaluation, in
    order; ``performed`` is False for one that another run performed first.

    ``release_holds``: a list to count into; before each evaluation, release the holds whose
    time came at or before it (``release_expired_holds``), so that points a hold no longer
    earmarks meet the evaluation; the caller releases the rest up to ``until`` after it.

    ``on_progress(done, total)`` is called with ``done=0`` once the due evaluations are
    listed, then after each one (not in a dry run). ``engine``: the engine to perform them
    through, left open; by default one that keeps one connection, disposed at the end.
    """
    from pointctl.core import clock
    from pointctl.db.session import make_engine, run_in_transaction, transaction
    from pointctl.services import expiry

    until = until or clock.now()
    if dry_run:
        try:
            with transaction(url, write=True, engine=engine, read_only=read_only) as session:
                raise _DryRun(expiry.simulate(session, until=until, accounts=accounts,
                                              actor=actor, collect_users=False))
        except _DryRun as done:
            return done.outcomes
    plan = run_in_transaction(
        url, lambda session: expiry.due_evaluations(session, until=until,
                                                        accounts=accounts),
        write=False, read_only=read_only)
    own = engine is None
    pooled = engine or make_engine(url, write=True, keep=True, read_only=read_only)
    outcomes: list[Outcome] = []
    if on_progress is not None:
        on_progress(0, len(plan))
    try:
        for due in plan:
            if release_holds is not None:  # a hold whose time came first frees its points
                release_holds.append(release_expired_holds(url, until=due.at, actor=actor,
                                                           read_only=read_only))

            def work(session: Any, due: Any = due) -> Outcome:
                return expiry.perform(session, account_id=due.account_id, at=due.at,
                                      actor=actor)

            outcomes.append(run_in_transaction(url, work, write=True, engine=pooled))
            if on_progress is not None:
                on_progress(len(outcomes), len(plan))
    finally:
        if own:
            pooled.dispose()
    return outcomes


HOLD_CHUNK = 500  # expired holds released per transaction


def release_expired_holds(url: str, *, until: datetime | None = None, actor: str,
                          read_only: bool = False) -> int:
    """Release every open hold whose time has come (at or before ``until``, default now), a
    chunk per transaction (``expiry.release_holds``); how many this run released. A hold
    released meanwhile (by another run, a capture or a void) is left as it is: each is
    released exactly once."""
    from pointctl.core import clock
    from pointctl.db.session import run_in_transaction
    from pointctl.services.expiry import release_holds

    until = until or clock.now()
    released = 0
    while True:
        done, more = run_in_transaction(
            url, lambda session: release_holds(session, until=until, actor=actor,
                                               limit=HOLD_CHUNK),
            write=True, read_only=read_only)
        released += done
        if not more:
            return released
