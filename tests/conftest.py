"""Fixtures: a fresh, upgraded database per test on SQLite and (when configured) PostgreSQL.

PostgreSQL is found through POINTCTL_TEST_POSTGRES_URL; each test gets its own schema (put on
the connection's search_path through the URL) that is dropped afterwards. Without the variable
the PostgreSQL variants are skipped with a visible reason.

A database "at head" is not migrated per test: SQLite copies a file migrated once per session,
PostgreSQL replays into the new schema the statements one real migration ran (recorded once
per session; test_schema checks that the result is the migrated schema). Tests of the
migrations themselves start from ``empty_db_url``.
"""

from __future__ import annotations

import compileall
import functools
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from pointctl.db.migrate import upgrade
from pointctl.db.session import parse_url
from tests.helpers import Cli

PG_ENV = "POINTCTL_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]
PACKAGE = Path(__file__).resolve().parent.parent / "pointctl"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the machine has cores, because a worker spends part
    of its time waiting on PostgreSQL and on the processes it starts (on 2 cores, 3 workers
    finished the suite about 5% sooner than 2)."""
    return (os.cpu_count() or 1) + 1


def pytest_configure(config: pytest.Config) -> None:
    """Compile pointctl once before the tests start the `pointctl` processes they need (the
    walkthrough, shells completing, concurrent writers). Python writes no bytecode where
    PYTHONDONTWRITEBYTECODE is set (as on CI's machines), and each process would otherwise
    compile all of pointctl again: about 0.15 s of every start. Python still checks each file's
    time stamp, so an edited module is compiled afresh."""
    if not hasattr(config, "workerinput"):  # once, in pytest's own process
        compileall.compile_dir(PACKAGE, quiet=1)
        compileall.compile_file(Path(__file__).with_name("helpers.py"), quiet=1)


# The tests that take longest (measured), started first on every worker, so that none of them
# is left running alone at the end.
SLOW_FIRST = (
    "tests/test_readme.py::test_walkthrough",
    "tests/test_catch_up.py::test_a_late_run",
    "tests/test_customer.py::test_coming_expirations",
    "tests/test_batch.py::test_killed",
    "tests/test_batch_equivalence.py::test_batch_gives",
    "tests/test_completion.py::",
    "tests/test_customer.py::test_the_view",
    "tests/test_ledger_model.py::",
    "tests/test_catch_up.py::",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest-xdist's worksteal hands each of the n workers one contiguous block of the
    collection (its first block: len // n, then the rest likewise), and idle workers steal
    from the end of others' queues. So the slow tests are dealt out, longest first, to the
    start of each block; the others keep their order. (Every worker collects and orders alike,
    as xdist requires.)"""
    def rank(item: pytest.Item) -> int:
        return next((n for n, prefix in enumerate(SLOW_FIRST)
                     if item.nodeid.startswith(prefix)), len(SLOW_FIRST))

    ordered = sorted(items, key=rank)  # stable
    slow = [item for item in ordered if rank(item) < len(SLOW_FIRST)]
    rest = ordered[len(slow):]
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers < 2:
        items[:] = ordered
        return
    sizes, left = [], len(items)
    for n in range(workers):
        sizes.append(left // (workers - n))
        left -= sizes[-1]
    blocks = [slow[n::workers] for n in range(workers)]
    for n, block in enumerate(blocks):
        take = max(0, sizes[n] - len(block))
        block += rest[:take]
        del rest[:take]
    items[:] = [item for block in blocks for item in block] + rest


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@functools.cache
def _admin_engine(base: str) -> Engine:
    """The connection that creates and drops the tests' schemas, kept for the session."""
    return create_engine(parse_url(base), pool_size=1, max_overflow=2,
                         isolation_level="AUTOCOMMIT")


def fresh_pg_schema(base: str) -> Iterator[str]:
    """A new schema on the test server; yields a URL whose connections use only that schema."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = _admin_engine(base)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:  # noqa: BLE001 - report any connection failure as the reason
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is unreachable: {error}")
    separator = "&" if "?" in base else "?"
    try:
        # synchronous_commit=off: a commit does not wait for the server's disk write; what the
        # tests see (visibility, locks, rollbacks) is the same, only a server crash could lose
        # the last commits, and the tests never crash the server
        options = f"-csynchronous_commit=off -csearch_path={schema}"
        yield f"{base}{separator}options={quote(options)}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@functools.cache
def pg_upgrade_statements(base: str) -> tuple[tuple[str, Any], ...]:
    """What ``upgrade`` sends to an empty PostgreSQL schema (its reads left out), recorded once
    in a schema of its own. The statements name no schema: replayed over a connection whose
    search_path is another schema, they build the same schema there."""
    sent: list[tuple[str, Any]] = []

    def record(_connection: Any, _cursor: Any, statement: str, parameters: Any,
               _context: Any, _executemany: bool) -> None:
        sent.append((statement, parameters))

    with contextmanager(fresh_pg_schema)(base) as url:
        event.listen(Engine, "before_cursor_execute", record)
        try:
            upgrade(url)
        finally:
            event.remove(Engine, "before_cursor_execute", record)
    return tuple((statement, parameters) for statement, parameters in sent
                 if not statement.lstrip().upper().startswith("SELECT"))


def pg_schema_at_head(base: str) -> Iterator[str]:
    """A new schema (as ``fresh_pg_schema``) holding the schema at head, in one transaction."""
    statements = pg_upgrade_statements(base)
    for url in fresh_pg_schema(base):
        engine = create_engine(parse_url(url), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                for statement, parameters in statements:
                    connection.exec_driver_sql(statement, parameters or None)
        finally:
            engine.dispose()
        yield url


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pointctl.db'}"
        return
    base = pg_base_url()
    if base is None:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1/test)")
    yield from fresh_pg_schema(base)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
           ) -> Iterator[str]:
    """A fresh database at the current schema head."""
    if request.param == "sqlite":
        path = tmp_path / "pointctl.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    base = pg_base_url()
    if base is None:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1/test)")
    yield from pg_schema_at_head(base)


@pytest.fixture
def cli(db_url: str) -> Cli:
    return Cli(db_url)


# Every test runs on a pinned clock, never the wall clock: a date written into a test cannot go
# stale. A test that needs another moment sets POINTCTL_NOW itself (env= or monkeypatch).
PINNED_NOW = "2026-06-15T12:00:00Z"


@pytest.fixture(autouse=True)
def _fixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit a developer's pointctl settings or terminal size (pytest-xdist's
    workers are given COLUMNS=80), and never read the wall clock."""
    for name in ("POINTCTL_DATABASE_URL", "POINTCTL_FORMAT", "POINTCTL_ACTOR", "COLUMNS",
                 "LINES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POINTCTL_ACTOR", "tester")
    monkeypatch.setenv("POINTCTL_NOW", PINNED_NOW)


@pytest.fixture
def twin_url(db_url: str, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A second fresh database on the same backend as ``db_url``."""
    if db_url.startswith("sqlite"):
        path = tmp_path / "twin.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    base = pg_base_url()
    assert base is not None
    yield from pg_schema_at_head(base)
