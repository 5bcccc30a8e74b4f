"""Writing many rows with one statement per table: PostgreSQL takes whole columns as arrays
(``INSERT ... SELECT FROM unnest(...)``, one round trip however many rows); SQLite, in the same
process, takes an executemany.

Columns are given as (name, PostgreSQL type) pairs; rows as tuples in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

Columns = Sequence[tuple[str, str]]


def _arrays(columns: Columns, rows: Sequence[tuple[Any, ...]]) -> tuple[str, list[list[Any]]]:
    unnest = ", ".join(f"%s::{kind}[]" for _, kind in columns)
    return unnest, [list(values) for values in zip(*rows, strict=True)]


def insert(connection: Connection, table: str, columns: Columns,
           rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT every row (in the order given)."""
    if not rows:
        return
    names = ", ".join(name for name, _ in columns)
    if connection.dialect.name == "postgresql":
        unnest, arrays = _arrays(columns, rows)
        connection.exec_driver_sql(
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest({unnest})", tuple(arrays))
        return
    marks = ", ".join("?" * len(columns))
    connection.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(rows))


def update(connection: Connection, table: str, keys: Columns, values: Columns,
           rows: Sequence[tuple[Any, ...]]) -> None:
    """UPDATE the row of each key: ``rows`` hold the new values, then the key columns."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        columns = [*values, *keys]
        unnest, arrays = _arrays(columns, rows)
        names = ", ".join(name for name, _ in columns)
        assign = ", ".join(f"{name} = v.{name}" for name, _ in values)
        match = " AND ".join(f"{table}.{name} = v.{name}" for name, _ in keys)
        connection.exec_driver_sql(
            f"UPDATE {table} SET {assign} FROM unnest({unnest}) AS v({names}) WHERE {match}",
            tuple(arrays))
        return
    assign = ", ".join(f"{name} = ?" for name, _ in values)
    match = " AND ".join(f"{name} = ?" for name, _ in keys)
    connection.exec_driver_sql(f"UPDATE {table} SET {assign} WHERE {match}", list(rows))
