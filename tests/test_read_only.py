"""Read-only mode (`--read-only` / POINTCTL_READ_ONLY) and a SELECT-only PostgreSQL role: the
support desk reads everything and cannot change the ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import typer.main
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from pointctl.cli import app, state
from pointctl.db.session import parse_url
from tests.helpers import Cli, snapshot
from tests.test_expiry import at, ok
from tests.test_reports import SETUP, koalla

NOW = "2026-03-25T00:00:00Z"
README = Path(__file__).resolve().parent.parent / "README.md"
REFUSED = "read-only mode is on (--read-only or POINTCTL_READ_ONLY)"

# every command that writes, with arguments that succeed outside read-only mode (in this order,
# on the koalla() ledger plus setup())
WRITES: list[list[str]] = [
    ["issue", "ann", "5", "--source", "Base", "--account", "Core"],
    ["spend", "ann", "5"],
    ["reverse", "--entry", str(SETUP + 1), "--points", "1"],
    ["adjust", "ann", "+5", "--account", "Core", "--source", "Base", "--reason", "goodwill"],
    ["transfer", "ann", "5", "--from", "Core", "--to", "Escrow"],
    ["reactivate", "dan", "--account", "Promo", "--points", "5"],
    ["activity", "ann", "login"],
    ["hold", "place", "ann", "5", "--reference-id", "ro-3"],
    ["hold", "capture", "ro-1"],
    ["hold", "void", "ro-2"],
    ["enroll", "ann", "--at", "2026-01-01"],
    ["batch", "{batch}"],
    ["db", "upgrade"],
    ["accounts", "create", "New"],
    ["accounts", "edit", "Core", "--group", "Spendable"],
    ["accounts", "activate", "Core"],
    ["accounts", "deactivate", "New"],
    ["accounts", "expiration", "Core", "--none"],
    ["accounts", "reactivation", "Promo", "--off"],
    ["sources", "create", "Fresh"],
    ["sources", "edit", "Fresh", "--link", "Core"],
    ["sources", "inventory", "Ride", "--adjust", "5"],
    ["sources", "pause", "Fresh"],
    ["sources", "archive", "Fresh", "--yes"],
    ["sources", "activate", "Fresh"],
    ["restrictions", "add", "Partner", "--max-points", "500", "--per", "1w"],
    ["restrictions", "edit", "1", "--max-points", "50"],
    ["restrictions", "delete", "1"],
    ["expire", "run", "--dry-run"],
    ["expire", "run"],
    ["expire", "preview", "--within", "30d"],
    ["tiers", "set", "--account", "Tier", "--level", "Gold=10", "--level", "Silver=5"],
    ["tiers", "clear", "--yes"],
    ["config", "set", "timezone", "UTC"],
    ["config", "apply", "{program}", "--dry-run"],
    ["config", "apply", "{program}"],
]
# every command that only reads, with arguments that succeed
READS: list[list[str]] = [
    ["balance", "ann"],
    ["hold", "list"],
    ["history", "ann", "--at", "2026-03-03T12:00:00Z"],
    ["customer", "dan"],
    ["verify"],
    ["db", "status"],
    ["accounts", "list"],
    ["accounts", "show", "Core"],
    ["sources", "list"],
    ["sources", "show", "Partner"],
    ["sources", "inventory", "Ride"],
    ["restrictions", "list"],
    ["expire", "status"],
    ["tier", "ann"],
    ["tiers", "show"],
    ["report", "tiers", "--this-month"],
    ["report", "audit", "--user", "ann"],
    ["report", "liability", "--this-month"],
    ["report", "debt"],
    ["report", "partner", "Ride"],
    ["report", "breakage"],
    ["report", "sources", "--this-month", "--no-chart"],
    ["config", "show"],
    ["config", "export"],  # TOML: takes no --format
    ["config", "export", "--at", "2026-03-20T00:00:00Z"],
]


def as_json(args: list[str]) -> list[str]:
    return args if args[:2] == ["config", "export"] else [*args, "--format", "json"]


def leaf_commands() -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()

    def walk(command: object, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found.add(path)
            return
        for name, child in children.items():
            walk(child, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def path_of(args: list[str]) -> tuple[str, ...]:
    return tuple(args[:2]) if args[0] in ("db", "accounts", "sources", "restrictions",
                                          "expire", "report", "config", "hold", "tiers") \
        else (args[0],)


def test_every_command_is_known_to_write_or_only_read() -> None:
    """A new command must be put in one of the lists (and so be tested in read-only mode)."""
    writes = {path_of(a) for a in WRITES} - {("sources", "inventory")}
    reads = {path_of(a) for a in READS}
    assert writes | reads == leaf_commands()
    # the commands that always write say so on the command itself
    marked = set()
    for path in leaf_commands():
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        if getattr(command.callback, "pointctl_writes", False):
            marked.add(path)
            # and take --quiet (-q), added to the command's own parameters
            assert [sorted(p.opts) for p in command.params if p.name == "quiet"] == \
                [["--quiet", "-q"]], path
    assert marked == writes - {("expire", "preview")}


def setup(cli: Cli, tmp_path: Path) -> dict[str, str]:
    koalla(cli)
    ok(cli, NOW, "sources", "create", "Ride", "--inventory", "100")
    ok(cli, NOW, "restrictions", "add", "Partner", "--max-points", "100", "--per", "1d")
    ok(cli, NOW, "accounts", "create", "Tier", "--qualifying")
    ok(cli, NOW, "tiers", "set", "--account", "Tier", "--level", "Silver=5")
    for hold in ("ro-1", "ro-2"):
        ok(cli, NOW, "hold", "ann", "2", "--reference-id", hold, "--expires-in", "1y")
    batch = tmp_path / "ops.jsonl"
    batch.write_text('{"op": "issue", "user": "bob", "points": 3, "source": "Base", '
                     '"account": "Core"}\n')
    program = tmp_path / "program.toml"
    cli.ok("config", "export", "--output", str(program), env=at(NOW))
    ok(cli, NOW, "accounts", "edit", "Core", "--group", "Changed")  # the program puts it back
    return {"batch": str(batch), "program": str(program)}


def filled(args: list[str], files: dict[str, str]) -> list[str]:
    return [arg.format(**files) for arg in args]


def test_read_only_refuses_every_write_and_serves_every_read(cli: Cli, tmp_path: Path) -> None:
    files = setup(cli, tmp_path)
    before = snapshot(cli.url)
    for args in WRITES:
        for how, extra_env in (("flag", {}), ("env", {"POINTCTL_READ_ONLY": "1"})):
            argv = (["--read-only"] if how == "flag" else []) + filled(args, files)
            refused = cli(*argv, env={**at(NOW), **extra_env})
            assert refused.exit_code == 1, (argv, refused.error)
            assert refused.error.startswith("Error: 'pointctl ") and REFUSED in refused.error, \
                refused.error
            assert len(refused.error.splitlines()) == 1 and refused.stdout == ""
    assert snapshot(cli.url) == before
    # evaluations are due that no run performed: a plain read shows the ledger as a punctual
    # run would have left it (in a rolled-back transaction); read-only mode cannot, and says so
    plain = json.loads(cli.ok("customer", "dan", "--format", "json", env=at(NOW)).stdout)
    late = cli.ok("--read-only", "customer", "dan", "--format", "json", env=at(NOW))
    assert plain["late_evaluations"] == "applied"
    assert json.loads(late.stdout)["late_evaluations"] == "not applied"
    assert "Note: expiration evaluations are due" in late.stderr and "write access" in late.stderr
    assert snapshot(cli.url) == before
    cli.ok("expire", "run", env=at(NOW))
    # reads work and print what they print without read-only mode
    for args in READS:
        plain = cli.ok(*as_json(args), env=at(NOW))
        read_only = cli.ok("--read-only", *as_json(args), env=at(NOW))
        assert read_only.stdout == plain.stdout, args
    assert cli.ok("--read-only", "customer", "dan", env={**at(NOW),
                                                          "POINTCTL_READ_ONLY": "true"})
    # POINTCTL_READ_ONLY=0 is off; a value that is not a boolean is an error
    assert cli.ok("config", "set", "timezone", "UTC", env={**at(NOW), "POINTCTL_READ_ONLY": "0"})
    bad = cli("balance", "ann", env={**at(NOW), "POINTCTL_READ_ONLY": "maybe"})
    assert bad.exit_code == 2 and "POINTCTL_READ_ONLY" in bad.error
    # and every refused command was a valid one: outside read-only mode each succeeds
    for args in WRITES:
        result = cli(*filled(args, files), env=at(NOW))
        assert result.exit_code == 0, (args, result.error)


@pytest.mark.parametrize("args", [
    ["issue", "ann", "5", "--source", "Base", "--account", "Core"],
    ["batch", "{batch}"],
    ["expire", "run"],
    ["config", "apply", "{program}"],
    ["accounts", "create", "New"],
])
def test_the_database_itself_refuses_a_write_that_gets_past_the_command(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """Even with the command-level refusal gone (a bug), the read-only connection writes
    nothing: SQLite's mode=ro and PostgreSQL's default_transaction_read_only."""
    files = setup(cli, tmp_path)
    ok(cli, "2026-03-24T00:00:00Z", "issue", "dan", "40", "--source", "Base", "--account", "Promo")
    before = snapshot(cli.url)
    monkeypatch.setattr(state, "refuse_writes", lambda *a, **k: None)
    result = cli("--read-only", *filled(args, files), env=at("2026-04-30T00:00:00Z"))
    assert result.exit_code in (1, 4), result.error
    if args[0] != "batch":  # batch reports each refused line and exits 1
        assert result.error.startswith("Error: the database refused: "), result.error
        assert len(result.error.splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert snapshot(cli.url) == before


# --- a SELECT-only role on PostgreSQL, as the README sets it up --------------------------------

def readme_role_sql() -> str:
    """The SQL block of the README's "A read-only role for support" section."""
    section = README.read_text().split("### A read-only role for support", 1)[1]
    found = re.search(r"```sql\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def test_a_select_only_role_reads_everything_and_writes_nothing(cli: Cli, tmp_path: Path
                                                                 ) -> None:
    if not cli.url.startswith("postgresql"):
        pytest.skip("roles and grants are PostgreSQL's; SQLite has the file's permissions")
    files = setup(cli, tmp_path)
    before = snapshot(cli.url)
    admin_url = make_url(cli.url)
    schema = admin_url.query["options"]
    schema = (schema if isinstance(schema, str) else schema[0]).split("search_path=")[1]
    role = f"pointctl_support_{uuid.uuid4().hex[:8]}"
    sql = (readme_role_sql().replace("pointctl_support", role)
           .replace("SCHEMA public", f'SCHEMA "{schema}"')
           .replace("DATABASE points", f"DATABASE {admin_url.database}"))
    admin = create_engine(parse_url(cli.url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            for statement in filter(str.strip, re.sub(r"--[^\n]*", "", sql).split(";")):
                connection.execute(text(statement))
        support = Cli(admin_url.set(username=role, password=None)
                      .render_as_string(hide_password=False))
        for args in READS:
            # a role that cannot write cannot apply late evaluations, as in read-only mode
            plain = cli.ok("--read-only", *as_json(args), env=at(NOW)).stdout
            plain = plain.replace(f"//{admin_url.username}@", f"//{role}@")  # db status
            assert support.ok(*as_json(args), env=at(NOW)).stdout == plain, args
        for args in WRITES:  # without --read-only: the server refuses, cleanly
            result = support(*filled(args, files), env=at(NOW))
            if args == ["db", "upgrade"]:  # already at the head: nothing to write, exit 0
                assert result.exit_code == 0 and "is already at" in result.error
                continue
            assert result.exit_code in (1, 4), (args, result.error)
            assert result.error.startswith("Error: ") and "Traceback" not in result.stderr
            if args[0] != "batch":
                assert len(result.error.splitlines()) == 1, result.error
        # the grants alone refuse too (a session that turns read-only transactions off)
        writable = Cli(admin_url.set(username=role, password=None).update_query_dict(
            {"options": f"-csearch_path={schema} -cdefault_transaction_read_only=off"})
            .render_as_string(hide_password=False))
        for args in (WRITES[0], ["accounts", "create", "New"], ["config", "set", "timezone",
                                                               "UTC"]):
            denied = writable(*args, env=at(NOW))
            assert denied.exit_code == 1, denied.error
            assert denied.error.startswith("Error: the database refused: permission denied "
                                           "for table "), denied.error
        refused = support("--read-only", "issue", "ann", "5", "--source", "Base", "--account",
                          "Core", env=at(NOW))
        assert refused.exit_code == 1 and REFUSED in refused.error
        assert snapshot(cli.url) == before
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()
