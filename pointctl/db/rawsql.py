"""SQL text helpers shared by the set-based services."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session


class RawSql:
    """Dialect details of set-based statements written as SQL text (expiration evaluations,
    reports)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def time(self, moment: datetime) -> Any:
        # SQLite stores times as text with microseconds; bind them in the same form
        return moment if self.postgres else moment.isoformat(" ", "microseconds")

    @staticmethod
    def moment(value: Any) -> datetime:
        """A time as read back (text on SQLite) as a datetime."""
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))

    def run(self, statement: str, **params: Any) -> Any:
        return self.session.execute(text(statement), params)

    def drop(self, *tables: str) -> None:
        for table in tables:
            self.run(f"DROP TABLE IF EXISTS {table}")

    def within(self, column: str, low: datetime | None, high: datetime | None,
               params: dict[str, Any]) -> str:
        """`` AND column >= :low AND column < :high`` for the bounds given (a report period's
        ``[low, high)``), binding them into ``params``."""
        found = ""
        if low is not None:
            found += f" AND {column} >= :low"
            params["low"] = self.time(low)
        if high is not None:
            found += f" AND {column} < :high"
            params["high"] = self.time(high)
        return found

    def new_ids(self, table: str, count_sql: str) -> str:
        """An SQL expression giving each candidate row a new id of ``table``: the sequence on
        PostgreSQL; on SQLite the write lock makes max(id) + row number ours."""
        if self.postgres:
            return f"nextval(pg_get_serial_sequence('{table}', 'id'))"
        last = self.run(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar_one()
        return f"{int(last)} + {count_sql}"
