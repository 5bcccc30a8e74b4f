"""Alembic environment: always run on the connection that pointctl hands over."""

from alembic import context

from pointctl.db import models

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=models.SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
