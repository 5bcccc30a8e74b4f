"""Alembic migrations, shipped inside the package and run by ``pointctl db upgrade``."""
