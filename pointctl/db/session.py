"""Engines and the one transaction a command runs in.

SQLite: WAL journal, a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for writing
commands so that a balance check and its writes cannot interleave with another writer.
PostgreSQL: psycopg 3, READ COMMITTED, with ``SELECT ... FOR UPDATE`` on the rows a command
will change (services do that through ``with_for_update()``, which SQLite ignores).
Read-only commands run in a read-only transaction on both, on one snapshot of the database
(PostgreSQL: REPEATABLE READ). In read-only mode (``--read-only``)
the connection itself is read-only: SQLite opens the file with ``mode=ro``, PostgreSQL
sessions start with ``default_transaction_read_only`` on; a write that reaches the database
anyway (a bug) fails there, and so does any write under a role without write grants: both
are refused (exit 1) with the database's reason.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from pointctl.core.errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    PointctlError,
    RefusedError,
    RetryableConflict,
    SchemaError,
)
from pointctl.db import SCHEMA_HEAD

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_S = 30
UPGRADE_HINT = "run 'pointctl db upgrade'"
RETRYABLE_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock detected
# read-only transaction, insufficient privilege: the database refused to write (or to read)
REFUSED_SQLSTATES = ("25006", "42501")
ATTEMPTS = 5


def parse_url(url: str) -> URL:
    """Accept sqlite:///path and plain postgresql:// (or postgres://) URLs; psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInputError(
            "invalid database URL: expected sqlite:///path.db or postgresql://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    raise InvalidInputError(
        f"unsupported database {backend!r}: use sqlite:///path.db or postgresql://..."
    )


def _query_passwords(parsed: URL) -> list[str]:
    value = parsed.query.get("password")
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def safe_url(url: str | URL) -> str:
    """The URL for display: the password, if any (also ?password=...), replaced by ***."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return "<invalid database URL>"
    if _query_passwords(parsed):
        return parsed.update_query_dict({"password": "PASSWORD"}).render_as_string(
            hide_password=True).replace("password=PASSWORD", "password=***")
    return parsed.render_as_string(hide_password=True)


def redact(message: str, url: str | URL | None) -> str:
    """Remove the URL's password from any text (driver messages can echo connection strings)."""
    if url is None:
        return message
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return message
    for password in [str(parsed.password or ""), *_query_passwords(parsed)]:
        if password:
            message = message.replace(password, "***")
    return message


def _driver_reason(error: DBAPIError, url: URL) -> str:
    reason = str(error.orig) if error.orig is not None else str(error)
    first = next((line.strip() for line in reason.splitlines() if line.strip()), "unknown error")
    return redact(first, url)


def _read_only_sqlite_url(parsed: URL) -> URL:
    """The same SQLite file as a read-only URI (``mode=ro``)."""
    database = parsed.database or ""
    if database in ("", ":memory:"):
        return parsed
    uri = str(parsed.query.get("uri", "")).lower() in ("true", "1")
    if not (uri and database.startswith("file:")):
        if database.startswith("/"):  # "//tmp/x.db" is /tmp/x.db, not a URI authority
            database = "/" + database.lstrip("/")
        database = "file:" + quote(database)
    return parsed.set(database=database).update_query_dict({"mode": "ro", "uri": "true"})


def make_engine(url: str, *, write: bool, keep: bool = False, read_only: bool = False,
                reuse: bool = False) -> Engine:
    """A pool-less engine for one command (a command holds one connection at a time); with
    ``keep``, one that keeps its one connection for many transactions (batch); with
    ``reuse``, on PostgreSQL, one that keeps a connection between commands and pings it
    before reuse (``command_engine``); with ``read_only``, one whose connections cannot
    write."""
    parsed = parse_url(url)
    if read_only and parsed.get_backend_name() == "sqlite":
        parsed = _read_only_sqlite_url(parsed)
    pooling: dict[str, Any] = {"pool_size": 1, "max_overflow": 0} if keep else \
        {"poolclass": NullPool}
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **pooling
        )
        begin = "BEGIN IMMEDIATE" if write else "BEGIN"

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            # We emit BEGIN ourselves (pysqlite's implicit transactions defer the lock).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not read_only:  # the file's journal mode stays as it is (WAL once written)
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

        return engine
    connect: dict[str, Any] = {"connect_timeout": 5}
    if reuse:
        # a connection kept between commands: checked before each, and no server-side
        # prepared statements that a migration in between could leave stale
        pooling = {"pool_size": 1, "max_overflow": -1, "pool_pre_ping": True}
        connect["prepare_threshold"] = None
    engine = create_engine(parsed, connect_args=connect, **pooling)
    if read_only:
        @event.listens_for(engine, "connect")
        def _read_only_session(dbapi_connection, _record):
            # default_transaction_read_only for the whole session (set here, not in the URL's
            # options, which would replace the user's PGOPTIONS)
            cursor = dbapi_connection.cursor()
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cursor.close()
            dbapi_connection.commit()

    return engine


_ENGINES: dict[tuple[str, bool, bool], Engine] = {}
_ENGINES_LOCK = threading.Lock()
KEPT_ENGINES = 4


def command_engine(url: str, *, write: bool, read_only: bool = False) -> Engine:
    """The engine of one-transaction commands on ``url``, kept for the process (the last few
    URLs): a program that runs many commands through the Python API (and the tests, which run
    the CLI in-process) sets up the dialect once, and on PostgreSQL keeps one connection
    between commands, checked before reuse, instead of starting a server process per command
    that loads its catalog caches afresh. SQLite opens its file per command (cheap, and a file
    replaced meanwhile is the one read)."""
    # one engine serves reads and writes on PostgreSQL, where ``write`` changes nothing
    sqlite = parse_url(url).get_backend_name() == "sqlite"
    key = (url, write or not sqlite, read_only)
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(key, None)
        if engine is None:
            engine = make_engine(url, write=key[1], read_only=read_only, reuse=True)
        _ENGINES[key] = engine  # the most recent last
        while len(_ENGINES) > KEPT_ENGINES:
            _ENGINES.pop(next(iter(_ENGINES))).dispose()
    return engine


def _forget_engines_in_child() -> None:
    """A forked child must not use (or close) its parent's connections, nor wait for a lock
    that a thread of its parent held at the fork."""
    global _ENGINES_LOCK
    _ENGINES_LOCK = threading.Lock()
    for engine in _ENGINES.values():
        engine.dispose(close=False)
    _ENGINES.clear()


os.register_at_fork(after_in_child=_forget_engines_in_child)


def sqlite_path(url: str) -> str | None:
    """The file behind a sqlite URL, or None for other databases and in-memory SQLite."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return database


def _not_a_database(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlite_errorname", None) in ("SQLITE_NOTADB", "SQLITE_CORRUPT")


def not_a_database_error(url: str, error: DBAPIError) -> DatabaseUnavailableError:
    where = sqlite_path(url) or safe_url(url)
    if getattr(error.orig, "sqlite_errorname", None) == "SQLITE_CORRUPT":
        return DatabaseUnavailableError(f"the database file {where} is damaged (SQLite finds "
                                        "it corrupt); restore it from a backup")
    return DatabaseUnavailableError(
        f"{where} is not a pointctl database (not an SQLite database file); check --db or "
        "POINTCTL_DATABASE_URL")


def connect_error(error: DBAPIError, url: str) -> DatabaseUnavailableError:
    """Exit 4 for a database that cannot be opened; re-raises any other database error."""
    if _not_a_database(error):
        return not_a_database_error(url, error)
    if not isinstance(error, OperationalError):
        raise error
    parsed = parse_url(url)
    hint = ""
    if getattr(error.orig, "sqlite_errorname", None) == "SQLITE_READONLY_DIRECTORY":
        hint = (" (SQLite needs to create the -wal and -shm files next to a WAL database: "
                "make the directory writable, or copy the database where it can)")
    return DatabaseUnavailableError(
        f"cannot open database {safe_url(parsed)}: {_driver_reason(error, parsed)}{hint}"
    )


def current_revision(connection: Connection) -> str | None:
    """The Alembic revision stamped in the database, or None when it has no schema."""
    if not _has_version_table(connection):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _has_version_table(connection: Connection) -> bool:
    if connection.dialect.name == "sqlite":
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    else:
        query = "SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = 'alembic_version' " \
                "AND schemaname = ANY(current_schemas(false))"
    return connection.execute(text(query)).first() is not None


def check_schema(connection: Connection) -> None:
    revision = current_revision(connection)
    if revision is None:
        raise SchemaError(f"the database has no pointctl schema; {UPGRADE_HINT}")
    if revision != SCHEMA_HEAD:
        raise SchemaError(
            f"the database schema is at {revision}, this pointctl needs {SCHEMA_HEAD}; "
            f"{UPGRADE_HINT} (or install the pointctl that matches it)"
        )


def _refused(error: DBAPIError) -> bool:
    """The database refused the statement: a read-only connection or transaction, or a role
    without the privilege."""
    orig = error.orig
    return getattr(orig, "sqlstate", None) in REFUSED_SQLSTATES or \
        getattr(orig, "sqlite_errorname", None) == "SQLITE_READONLY"


def refused_error(error: DBAPIError, url: str) -> RefusedError:
    return RefusedError(f"the database refused: {_driver_reason(error, parse_url(url))} "
                        "(a read-only connection or a role without write access)")


@contextmanager
def transaction(url: str, *, write: bool, engine: Engine | None = None,
                read_only: bool = False) -> Iterator[Session]:
    """One command, one transaction: commit at the end when ``write``, roll back otherwise.

    Refuses (exit 4) a missing database file, an unreachable server and a schema that is not at
    ``SCHEMA_HEAD``.
    """
    path = sqlite_path(url)
    if path is not None and not os.path.exists(path):
        raise SchemaError(f"database file {path} does not exist; {UPGRADE_HINT} to create it")
    engine = engine or command_engine(url, write=write, read_only=read_only)
    try:
        with Session(engine, expire_on_commit=False) as session:
            try:
                connection = session.connection()
                if not write:
                    if connection.dialect.name == "postgresql":
                        # one snapshot for the whole command: a view or report made of
                        # several queries never mixes states (SQLite's read transaction
                        # already reads one snapshot of the WAL)
                        connection.execute(text("SET TRANSACTION ISOLATION LEVEL "
                                                "REPEATABLE READ READ ONLY"))
                    else:
                        connection.exec_driver_sql("PRAGMA query_only=1")
                check_schema(connection)
            except OperationalError as error:
                if _refused(error):
                    raise refused_error(error, url) from error
                raise connect_error(error, url) from error
            try:
                yield session
            except PointctlError as error:
                if write and error.commit:  # a refusal recorded under its idempotency key
                    session.commit()
                raise
            if write:
                session.commit()
    except DBAPIError as error:
        if _refused(error):
            raise refused_error(error, url) from error
        if _not_a_database(error):
            raise not_a_database_error(url, error) from error
        if not isinstance(error, OperationalError):
            raise
        if getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
            raise RetryableConflict(_driver_reason(error, parse_url(url))) from error
        # lost connection, lock timeout, server shutdown: the database is not usable right now
        raise DatabaseUnavailableError(
            f"database error on {safe_url(parse_url(url))}: {_driver_reason(error, parse_url(url))}"
        ) from error


def run_in_transaction(url: str, work: Callable[[Session], T], *, write: bool,
                       engine: Engine | None = None, read_only: bool = False) -> T:
    """``work`` in one transaction, retried from scratch (a bounded number of times) when it
    loses a race that the database or an idempotency key reports."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction(url, write=write, engine=engine, read_only=read_only) as session:
                return work(session)
        except RetryableConflict:
            if attempt == ATTEMPTS:
                raise
            time.sleep(0.02 * attempt * random.random())
    raise AssertionError("unreachable")
