"""The migrations are the schema: they match the models, and the audit log is append-only."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pointctl.db import SCHEMA_HEAD, models
from pointctl.db.migrate import head_revision
from pointctl.db.session import parse_url
from tests.helpers import Cli


def test_schema_head_constant_matches_the_migrations() -> None:
    assert SCHEMA_HEAD == head_revision()


def test_migrations_match_the_models(db_url: str) -> None:
    engine = create_engine(parse_url(db_url), poolclass=NullPool)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, models.SQLModel.metadata)
    engine.dispose()
    assert differences == []


@pytest.mark.parametrize("statement", ["UPDATE entry SET points = 1", "DELETE FROM entry"])
def test_audit_entries_cannot_be_rewritten(cli: Cli, statement: str) -> None:
    cli.ok("accounts", "create", "Core")
    cli.ok("sources", "create", "Limited", "--inventory", "10")
    engine = create_engine(parse_url(cli.url), poolclass=NullPool)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT points FROM entry")).scalars().all() == [10]
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
