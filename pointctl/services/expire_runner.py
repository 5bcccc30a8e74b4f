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
    from pointctl.services.tiers import TierOutcome


class _DryRun(Exception):
    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes


def run_due(url: str, *, until: datetime | None = None, accounts: Sequence[str] = (),
            actor: str, dry_run: bool = False,
            on_progress: Callable[[int, int], None] | None = None,
            engine: Engine | None = None, read_only: bool = False,
            release_holds: list[int] | None = None,
            tier_outcomes: list[TierOutcome] | None = None) -> list[Outcome]:
    """Perform every evaluation due at or before ``until`` (default: now), oldest first, each
    as of its scheduled time; only those of ``accounts`` when named. One outcome per evaluation, in
    order; ``performed`` is False for one that another run performed first.

    ``release_holds``: a list to count into; before each evaluation, release the holds whose
    time came at or before it (``release_expired_holds``), so that points a hold no longer
    earmarks meet the evaluation; the caller releases the rest up to ``until`` after it.

    ``tier_outcomes``: a list to collect the tier evaluations into; when given, the tier
    evaluations due are performed too (after the expirations, each in its own transaction),
    unless ``accounts`` are named and the tiers' qualifying account is not among them.

    ``on_progress(done, total)`` is called with ``done=0`` once the due evaluations are
    listed, then after each one (not in a dry run). ``engine``: the engine to perform them
    through, left open; by default one that keeps one connection, disposed at the end.
    """
    from pointctl.core import clock
    from pointctl.db.session import make_engine, run_in_transaction, transaction
    from pointctl.services import expiry, tiers

    until = until or clock.now()
    if dry_run:
        try:
            with transaction(url, write=True, engine=engine, read_only=read_only) as session:
                chosen, with_tiers = _split(session, accounts)
                found = expiry.simulate(session, until=until, accounts=chosen, actor=actor,
                                        collect_users=False) if chosen is not None else []
                if tier_outcomes is not None and with_tiers:
                    tier_outcomes.extend(tiers.perform_due(session, until=until, actor=actor,
                                                           lock=False))
                raise _DryRun(found)
        except _DryRun as done:
            return done.outcomes

    def listing(session: Any) -> tuple[list[Any], list[datetime]]:
        chosen, with_tiers = _split(session, accounts)
        due = expiry.due_evaluations(session, until=until, accounts=chosen) \
            if chosen is not None else []
        wanted = tier_outcomes is not None and with_tiers
        return due, tiers.due_times(session, until=until) if wanted else []

    plan, tier_plan = run_in_transaction(url, listing, write=False, read_only=read_only)
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
        for moment in tier_plan:
            assert tier_outcomes is not None
            tier_outcomes.append(run_in_transaction(
                url, lambda session, moment=moment: tiers.perform(session, at=moment,
                                                                  actor=actor),
                write=True, engine=pooled))
    finally:
        if own:
            pooled.dispose()
    return outcomes


def _split(session: Any, accounts: Sequence[str]) -> tuple[Sequence[str] | None, bool]:
    """The accounts whose expirations to perform (None: none of them) and whether the tier
    evaluations are wanted: all with no names; with names, the tiers when their qualifying
    account is named (it needs no expiration policy then)."""
    from pointctl.db.models import ExpirationPolicy
    from pointctl.services import tiers
    from pointctl.services.lookup import accounts_by_names

    if not accounts:
        return accounts, True
    named = accounts_by_names(session, accounts)
    qualifying = tiers.qualifying_account_id(session)
    with_tiers = any(account.id == qualifying for account in named)
    rest = [account.name for account in named if account.id != qualifying
            or session.get(ExpirationPolicy, account.id) is not None]
    return (rest or None), with_tiers


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
