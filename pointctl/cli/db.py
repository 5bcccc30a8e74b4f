"""``pointctl db upgrade|status``: the schema, through Alembic migrations."""

from __future__ import annotations

import typer

from pointctl.cli import state
from pointctl.cli.options import FormatOption
from pointctl.cli.render import OutputFormat, confirm, emit_record, message

app = typer.Typer(help="Create, migrate and inspect the database schema.", no_args_is_help=True)

STATUS_FIELDS = [("database", "database"), ("current", "current"), ("head", "head"),
                 ("up_to_date", "up to date")]


@app.command()
@state.writes
def upgrade(fmt: FormatOption = OutputFormat.table) -> None:
    """Create the schema, or migrate it to the version this pointctl needs."""
    from pointctl.db.migrate import upgrade as run_upgrade

    result = run_upgrade(state.current.db_url)
    if result["from"] == result["to"]:
        confirm(f"Database {result['database']} is already at {result['to']}")
    else:
        confirm(f"Upgraded {result['database']} from {result['from'] or 'empty'} "
                f"to {result['to']}")
    if fmt is not OutputFormat.table:
        emit_record(result, fmt, [("database", "database"), ("from", "from"), ("to", "to")])


@app.command()
def status(fmt: FormatOption = OutputFormat.table) -> None:
    """Show the schema version of the database and the one this pointctl needs.

    Exits 4 when the database is not at that version."""
    from pointctl.db.migrate import status as read_status

    result = read_status(state.current.db_url, read_only=state.current.read_only)
    emit_record(result, fmt, STATUS_FIELDS)
    if not result["up_to_date"]:
        message("The schema is not up to date: run 'pointctl db upgrade'")
        raise typer.Exit(4)
