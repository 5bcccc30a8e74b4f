"""``pointctl db upgrade`` and ``db status``: Alembic driven on pointctl's own connection."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.exc import DBAPIError

from pointctl.core.errors import SchemaError
from pointctl.db.session import connect_error, current_revision, make_engine, safe_url

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_UPGRADE_LOCK = 0x706F696E74  # advisory lock key: two upgrades at once run one after another


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def status(url: str, *, read_only: bool = False) -> dict[str, object]:
    engine = make_engine(url, write=False, read_only=read_only)
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
    except DBAPIError as error:
        raise connect_error(error, url) from error
    finally:
        engine.dispose()
    head = head_revision()
    return {
        "database": safe_url(url),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }


def upgrade(url: str, *, revision: str = "head") -> dict[str, object]:
    """Create or migrate the schema in one transaction; returns the revisions before and after."""
    engine = make_engine(url, write=True)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_UPGRADE_LOCK})")
            before = current_revision(connection)
            config = alembic_config()
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, revision)
            except CommandError as error:
                raise SchemaError(
                    f"cannot upgrade: the database is at revision {before!r}, which this pointctl "
                    f"does not know (is it newer?): {error}"
                ) from None
            after = current_revision(connection)
    except DBAPIError as error:
        raise connect_error(error, url) from error
    finally:
        engine.dispose()
    return {"database": safe_url(url), "from": before, "to": after}
