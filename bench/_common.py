"""What the benchmarks share: a fresh database at the schema head."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.migrate import upgrade
from pointctl.db.session import parse_url, sqlite_path

SCHEMA = "pointctl_bench"


def fresh(url: str) -> str:
    """An empty database at the schema head: the SQLite file recreated, or on PostgreSQL the
    schema ``pointctl_bench`` (recreated; the URL returned puts it on the search path)."""
    path = sqlite_path(url)
    if path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    else:
        engine = create_engine(parse_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        engine.dispose()
        url += ("&" if "?" in url else "?") + quote(f"options=-csearch_path={SCHEMA}", safe="=&")
    upgrade(url)
    return url
