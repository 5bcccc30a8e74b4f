"""The migrations are the schema: they match the models, and the audit log is append-only."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pointctl.db import SCHEMA_HEAD, models
from pointctl.db.migrate import head_revision, upgrade
from pointctl.db.session import parse_url
from tests.conftest import fresh_pg_schema, pg_base_url, pg_schema_at_head
from tests.helpers import Cli


def test_schema_head_constant_matches_the_migrations() -> None:
    assert SCHEMA_HEAD == head_revision()


def test_migrations_match_the_models(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    engine = create_engine(parse_url(empty_db_url), poolclass=NullPool)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, models.SQLModel.metadata)
    engine.dispose()
    assert differences == []


# Everything a PostgreSQL schema holds, as text; the schema's own name is replaced by "S"
CATALOG = {
    "columns": "SELECT table_name, column_name, ordinal_position, data_type, "
               "character_maximum_length, is_nullable, column_default "
               "FROM information_schema.columns WHERE table_schema = current_schema()",
    "constraints": "SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) "
                   "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
                   "WHERE c.connamespace = current_schema()::regnamespace",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
               "WHERE schemaname = current_schema()",
    "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgrelid IN (SELECT oid FROM pg_class "
                "WHERE relnamespace = current_schema()::regnamespace)",
    "functions": "SELECT proname, prosrc FROM pg_proc "
                 "WHERE pronamespace = current_schema()::regnamespace",
    "sequences": "SELECT sequence_name, data_type, start_value, increment "
                 "FROM information_schema.sequences WHERE sequence_schema = current_schema()",
    "revision": "SELECT version_num FROM alembic_version",
}


def _catalog(url: str) -> dict[str, list[tuple]]:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            return {name: sorted((tuple(str(value).replace(schema, "S") for value in row)
                                  for row in connection.execute(text(query))), key=repr)
                    for name, query in CATALOG.items()}
    finally:
        engine.dispose()


def test_a_postgresql_test_schema_is_the_migrated_schema() -> None:
    """The fixtures replay the statements of one recorded migration instead of migrating each
    test's schema: what they build is exactly what ``upgrade`` builds."""
    base = pg_base_url()
    if base is None:
        pytest.skip("PostgreSQL tests need POINTCTL_TEST_POSTGRES_URL")
    with contextmanager(fresh_pg_schema)(base) as migrated, \
            contextmanager(pg_schema_at_head)(base) as replayed:
        upgrade(migrated)
        expected = _catalog(migrated)
        assert all(expected.values()) and expected["revision"] == [(SCHEMA_HEAD,)]
        assert _catalog(replayed) == expected


@pytest.mark.parametrize("statement", ["UPDATE entry SET points = 1", "DELETE FROM entry"])
def test_audit_entries_cannot_be_rewritten(cli: Cli, statement: str) -> None:
    cli.ok("accounts", "create", "Core")
    cli.ok("sources", "create", "Limited", "--inventory", "10")
    engine = create_engine(parse_url(cli.url), poolclass=NullPool)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text(
            "SELECT points FROM entry WHERE type <> 'change'")).scalars().all() == [10]
    engine.dispose()


def test_0005_traces_existing_moved_lots_back_to_their_issue(cli: Cli) -> None:
    """A ledger written before lot lineage existed: upgrading finds each moved lot's origin."""
    from alembic import command

    from pointctl.db.migrate import alembic_config, upgrade
    from tests.test_reports import koalla

    koalla(cli)  # a transfer, a rollover and a reactivation
    sql = "SELECT id, origin_lot_id FROM lot ORDER BY id"
    engine = create_engine(parse_url(cli.url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            written = [tuple(row) for row in connection.execute(text(sql))]
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0004_expiration")
        upgrade(cli.url)
        with engine.connect() as connection:
            traced = [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()
    moved = [(lot, origin) for lot, origin in written if origin is not None]
    assert len(moved) == 3  # bob's 30 to ann, bob's 50 rolled, dan's 20 reactivated
    assert traced == written
