"""Storage: SQLModel tables, engines and transactions, Alembic migrations.

``SCHEMA_HEAD`` is the migration this code needs. It is a constant so that every command can
check the schema without importing Alembic; a test keeps it equal to the migrations' head.
"""

SCHEMA_HEAD = "0013_tiers"
