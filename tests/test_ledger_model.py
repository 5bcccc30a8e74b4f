"""Property-based test: random sequences of ledger operations against a small in-memory model.

After every step each balance equals the model's and ``verify`` is clean, on SQLite and (when
configured) PostgreSQL. The services are called directly, each in its own transaction, as the
command line does.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pointctl.core.errors import RefusedError
from pointctl.db.session import transaction
from pointctl.services import accounts, ledger, sources
from pointctl.services.verify import verify
from tests.conftest import pg_base_url, pg_schema_at_head

USERS = ("u1", "u2")
# A: default, negative allowed. B: no negative balance, not default.
ACCOUNTS = ("A", "B")

operations = st.one_of(
    st.tuples(st.just("issue"), st.sampled_from(USERS), st.sampled_from(ACCOUNTS),
              st.integers(1, 60)),
    st.tuples(st.just("spend"), st.sampled_from(USERS), st.sampled_from(ACCOUNTS),
              st.integers(1, 60)),
    st.tuples(st.just("adjust"), st.sampled_from(USERS), st.sampled_from(ACCOUNTS),
              st.integers(-60, 60).filter(bool)),
    st.tuples(st.just("transfer"), st.sampled_from(USERS), st.sampled_from(USERS),
              st.integers(1, 60)),
    st.tuples(st.just("reverse"), st.integers(0, 20), st.integers(1, 60), st.booleans()),
)


@contextmanager
def fresh_database(backend: str, sqlite_template: Path) -> Iterator[str]:
    """A new database at the schema head (as the ``db_url`` fixture makes them)."""
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp())
        try:
            shutil.copyfile(sqlite_template, folder / "model.db")
            yield f"sqlite:///{folder / 'model.db'}"
        finally:
            shutil.rmtree(folder)
        return
    base = pg_base_url()
    assert base is not None
    yield from pg_schema_at_head(base)


class Model:
    """Balances as a customer would see them; reversals know only what they reverse."""

    def __init__(self) -> None:
        self.balance = {(u, a): 0 for u in USERS for a in ACCOUNTS}
        # reversible entries: [entry id, type, user, account, points left]
        self.reversible: list[list] = []


def run(url: str, service, **kwargs):  # type: ignore[no-untyped-def]
    with transaction(url, write=True) as session:
        return service(session, **kwargs)


def apply(url: str, model: Model, op: tuple) -> None:
    options = ledger.WriteOptions(actor="model")
    kind = op[0]
    if kind == "issue":
        _, user, account, points = op
        result = run(url, ledger.issue, user=user, points=points, source="S", account=account,
                     options=options)
        model.balance[(user, account)] += points
        if account == "A":  # issue reversals are modelled where debt absorbs spent points
            model.reversible.append([result["entry"], "issue", user, account, points])
    elif kind == "spend":
        _, user, account, points = op
        spendable = max(0, model.balance[(user, account)])
        try:
            result = run(url, ledger.spend, user=user, points=points, accounts=[account],
                         options=options)
        except RefusedError:
            assert account == "B" and spendable < points
            return
        assert account == "A" or spendable >= points
        model.balance[(user, account)] -= points
        for entry in result["entries"]:
            model.reversible.append([entry["entry"], "spend", user, account, entry["points"]])
    elif kind == "adjust":
        _, user, account, points = op
        try:
            run(url, ledger.adjust, user=user, points=points, account=account, reason="model",
                source="S" if points > 0 else None, options=options)
        except RefusedError:
            assert account == "B" and points < 0 and model.balance[(user, account)] < -points
            return
        model.balance[(user, account)] += points
    elif kind == "transfer":
        _, user, to_user, points = op
        if user == to_user:
            source_account, target = "A", "B"
        else:
            source_account, target = "B", "A"
        spendable = max(0, model.balance[(user, source_account)])
        try:
            run(url, ledger.transfer, user=user, points=points, from_account=source_account,
                to_account=target, to_user=to_user, options=options)
        except RefusedError:
            assert spendable < points
            return
        assert spendable >= points
        model.balance[(user, source_account)] -= points
        model.balance[(to_user, target)] += points
    elif kind == "reverse":
        _, index, points, whole = op
        if not model.reversible:
            return
        target = model.reversible[index % len(model.reversible)]
        entry_id, entry_type, user, account, left = target
        if left == 0:
            with pytest.raises(RefusedError):
                run(url, ledger.reverse, entry_id=entry_id, options=options)
            return
        amount = left if whole else min(points, left)
        run(url, ledger.reverse, entry_id=entry_id, points=amount, options=options)
        target[4] -= amount
        model.balance[(user, account)] += amount if entry_type == "spend" else -amount


def check(url: str, model: Model) -> None:
    with transaction(url, write=False) as session:
        report = verify(session)
        assert report["ok"], report["violations"]
        for user in USERS:
            try:
                shown = ledger.balance(session, user=user)
            except Exception:  # noqa: BLE001 - a user without entries has no balance yet
                shown = {"accounts": []}
            actual = {row["account"]: row["balance"] for row in shown["accounts"]}
            for account in ACCOUNTS:
                assert actual.get(account, 0) == model.balance[(user, account)], (user, account)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(operations, min_size=1, max_size=14))
def test_ledger_matches_the_model(backend: str, sqlite_template: Path,
                                  steps: list[tuple]) -> None:
    if backend == "postgresql" and pg_base_url() is None:
        pytest.skip("PostgreSQL tests need POINTCTL_TEST_POSTGRES_URL")
    with fresh_database(backend, sqlite_template) as url:
        with transaction(url, write=True) as session:
            accounts.create_account(session, name="A", is_default=True, actor="model")
            accounts.create_account(session, name="B", allow_negative=False, actor="model")
            sources.create_source(session, name="S", actor="model")
        model = Model()
        for op in steps:
            apply(url, model, op)
            check(url, model)
