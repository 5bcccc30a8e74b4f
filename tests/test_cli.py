"""Conventions every command shares: start-up, exit codes, one-line errors, the schema gate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl import __version__
from pointctl.db import SCHEMA_HEAD
from pointctl.db.session import parse_url
from tests.helpers import Cli

PROBE = """
import sys
from pointctl.cli import main
sys.argv = ['pointctl', *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    heavy = sorted(m for m in ('sqlalchemy', 'sqlmodel', 'alembic', 'psycopg') if m in sys.modules)
    print('HEAVY=' + ','.join(heavy), file=sys.stderr)
    cli = sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('pointctl.cli.'))
    print('CLI=' + ','.join(cli), file=sys.stderr)
    print('MODULES=' + ','.join(sorted(sys.modules)), file=sys.stderr)
    raise
"""


def run_process(*args: str, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=60)


def test_version_and_help_do_not_import_the_database_stack(tmp_path: Path) -> None:
    version = run_process("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"pointctl {__version__}"
    assert "HEAVY=\n" in version.stderr
    short = run_process("-V", cwd=tmp_path)
    assert short.returncode == 0 and short.stdout == version.stdout
    for args in (["--help"], ["accounts", "--help"], ["sources", "create", "--help"],
                 ["-h"], ["accounts", "-h"], ["sources", "create", "-h"]):
        result = run_process(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout and "HEAVY=\n" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no database file was created


def test_only_the_command_that_runs_is_built(tmp_path: Path) -> None:
    """The root lists every command from its own table and imports the module of the one that
    runs; ``--help`` lists each with its short help, exactly as the built command has it."""
    import typer

    from pointctl.cli import COMMANDS, app, lazy

    shared = {"complete", "helpstyle", "lazy", "numbers", "options", "render", "state"}

    def modules(*args: str) -> set[str]:
        done = run_process(*args, cwd=tmp_path)
        line = next(x for x in done.stderr.splitlines() if x.startswith("CLI="))
        return set(line[4:].split(",")) - shared

    assert modules("--version") == set()
    assert modules("accounts", "--help") == {"accounts"}
    assert modules("balance", "--help") == {"ledger"}
    # every command a module defines is in the root's table, under that module
    for name, where in COMMANDS.items():
        module = __import__(f"pointctl.cli.{where.split(':')[0]}", fromlist=["x"])
        assert hasattr(module, "app") if where.endswith(":app") else any(
            lazy.command_name(info) == name for info in module.commands.registered_commands)
    for module_name in {where.split(":")[0] for where in COMMANDS.values()}:
        module = __import__(f"pointctl.cli.{module_name}", fromlist=["x"])
        for info in getattr(module, "commands", typer.Typer()).registered_commands:
            assert COMMANDS[lazy.command_name(info)] == module_name
    # what a group's help lists (before anything is built) is what its built commands say
    checked = []

    def check(group: object) -> None:
        assert isinstance(group, lazy.LazyGroup)
        assert isinstance(group.commands, lazy.LazyCommands)
        listed = {name: group.commands.summary(name) for name in group.list_commands(None)}
        for name, summary in listed.items():
            built = group.commands[name]
            assert summary is not built
            assert (summary.name, summary.help, summary.short_help, summary.hidden,
                    summary.deprecated, getattr(summary, "rich_help_panel", None)) == (
                built.name, built.help, built.short_help, built.hidden, built.deprecated,
                getattr(built, "rich_help_panel", None)), name
            assert summary.get_short_help_str() == built.get_short_help_str() != ""
            checked.append(name)
            if hasattr(built, "commands"):
                check(built)

    check(typer.main.get_command(app))
    assert len(checked) > 40


def test_balance_on_sqlite_builds_no_table_model(sqlite_template: Path, tmp_path: Path
                                                 ) -> None:
    """The command run most reads with SQL text: it defines no table model, loads no
    PostgreSQL dialect and no ledger engine (start-up: README, Performance)."""
    shutil.copyfile(sqlite_template, tmp_path / "pointctl.db")
    cli = Cli(f"sqlite:///{tmp_path / 'pointctl.db'}")
    cli.ok("accounts", "create", "Main", "--default")
    cli.ok("sources", "create", "Shop")
    cli.ok("issue", "u1", "10", "--source", "Shop")
    done = run_process("--db", cli.url, "balance", "u1", cwd=tmp_path)
    assert done.returncode == 0 and "Balances of u1" in done.stdout, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES="))
    loaded = set(line[8:].split(","))
    assert "sqlalchemy.dialects.sqlite" in loaded  # the probe sees what the command loads
    assert not loaded & {"pointctl.db.models", "sqlalchemy.dialects.postgresql",
                         "pointctl.services.engine", "pointctl.services.expiry"}


def test_quiet_drops_the_confirmation_line_only(cli: Cli) -> None:
    cli.ok("accounts", "create", "Main", "--default")
    cli.ok("sources", "create", "Shop")
    loud = cli.ok("issue", "u1", "10", "--source", "Shop")
    assert loud.error.startswith("Issued 10 points")
    quiet = cli.ok("issue", "u1", "5", "--source", "Shop", "-q")
    assert quiet.error == "" and quiet.stdout == ""
    as_json = cli.ok("issue", "u1", "1", "--source", "Shop", "--quiet", "--format", "json")
    assert as_json.error == "" and '"balance": 16' in as_json.stdout
    refused = cli("--read-only", "issue", "u1", "1", "--source", "Shop", "-q")
    assert refused.exit_code == 1 and "read-only mode is on" in refused.error


def test_no_arguments_shows_help(tmp_path: Path) -> None:
    result = run_process(cwd=tmp_path)
    assert result.returncode == 0 and "accounts" in result.stdout


def test_unknown_command_is_a_one_line_usage_error(cli: Cli) -> None:
    result = cli("acounts", "list")
    assert result.exit_code == 2
    assert result.error.startswith("Error: No such command 'acounts'")
    assert len(result.error.splitlines()) == 1


def test_missing_schema_exits_4_and_creates_nothing(empty_db_url: str, tmp_path: Path) -> None:
    cli = Cli(empty_db_url)
    result = cli("accounts", "list")
    assert result.exit_code == 4
    assert result.error.startswith("Error: ") and "run 'pointctl db upgrade'" in result.error
    if empty_db_url.startswith("sqlite"):
        assert not (tmp_path / "pointctl.db").exists()
    status = cli("db", "status", "--format", "json")
    assert status.exit_code == 4 and '"current": null' in status.stdout


def test_upgrade_then_status_then_upgrade_again(empty_db_url: str) -> None:
    cli = Cli(empty_db_url)
    first = cli.ok("db", "upgrade")
    assert f"from empty to {SCHEMA_HEAD}" in first.error
    status = cli.json("db", "status")
    assert status["current"] == status["head"] == SCHEMA_HEAD
    assert status["up_to_date"] is True
    assert f"already at {SCHEMA_HEAD}" in cli.ok("db", "upgrade").error
    cli.ok("accounts", "create", "Core")


def test_outdated_schema_exits_4(cli: Cli) -> None:
    engine = create_engine(parse_url(cli.url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
    engine.dispose()
    result = cli("accounts", "create", "Core")
    assert result.exit_code == 4
    assert "schema is at 0000_older" in result.error and "pointctl db upgrade" in result.error


def test_unreachable_postgresql_exits_4_without_the_password() -> None:
    url = "postgresql://pointuser:s3cr3t-pw@127.0.0.1:1/points"
    for args in (["accounts", "list"], ["db", "upgrade"], ["db", "status"]):
        result = Cli(url)(*args)
        assert result.exit_code == 4, result
        assert result.error.startswith("Error: cannot open database postgresql+psycopg://"
                                       "pointuser:***@127.0.0.1:1/points")
        assert "s3cr3t" not in result.stderr + result.stdout
        assert len(result.error.splitlines()) == 1


def test_a_password_in_the_query_string_is_never_shown_either() -> None:
    url = "postgresql://pointuser@127.0.0.1:1/points?password=s3cr3t-pw"
    for args in (["accounts", "list"], ["--read-only", "customer", "ann"], ["db", "status"]):
        result = Cli(url)(*args)
        assert result.exit_code == 4, result
        assert result.error.startswith("Error: cannot open database postgresql+psycopg://"
                                       "pointuser@127.0.0.1:1/points?password=***: ")
        assert "s3cr3t" not in result.stderr + result.stdout


def test_read_only_sqlite_paths_with_odd_characters(tmp_path: Path) -> None:
    """mode=ro URIs: spaces, #, ?, % in the path, and a path written with extra slashes."""
    folder = tmp_path / "a #b"
    folder.mkdir()
    path = folder / "p%1?.db"
    from urllib.parse import quote

    url = f"sqlite:///{quote(str(path))}"
    Cli(url).ok("db", "upgrade")
    Cli(url).ok("accounts", "create", "Core")
    for read_url in (url, f"sqlite:////{quote(str(path))}"):
        listed = Cli(read_url).ok("--read-only", "accounts", "list", "--format", "csv")
        assert listed.stdout.splitlines()[1].split(",")[1] == "Core"


def test_unopenable_sqlite_exits_4(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing-dir/pointctl.db"
    result = Cli(url)("db", "upgrade")
    assert result.exit_code == 4 and "cannot open database" in result.error


def test_invalid_database_urls_exit_2() -> None:
    for url in ("mysql://root@localhost/x", "not a url"):
        result = Cli(url)("accounts", "list")
        assert result.exit_code == 2 and result.error.startswith("Error: "), result


def test_database_url_from_environment(db_url: str, tmp_path: Path) -> None:
    result = run_process("accounts", "create", "FromEnv", cwd=tmp_path,
                         env={"POINTCTL_DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    assert [a["name"] for a in Cli(db_url).json("accounts", "list")] == ["FromEnv"]


def test_debug_shows_the_traceback(cli: Cli, tmp_path: Path) -> None:
    plain = run_process("--db", cli.url, "accounts", "show", "Nope", cwd=tmp_path)
    assert plain.returncode == 3 and "Traceback" not in plain.stderr
    debug = run_process("--db", cli.url, "--debug", "accounts", "show", "Nope", cwd=tmp_path)
    assert debug.returncode == 3 and "Traceback" in debug.stderr  # the same exit code
    assert "NotFoundError" in debug.stderr
    # the last line of pointctl itself (the probe adds three)
    assert debug.stderr.rstrip().splitlines()[-4].startswith("Error: no account named 'Nope'")


def test_fixed_clock_and_bad_clock(cli: Cli) -> None:
    result = cli("accounts", "create", "Core", env={"POINTCTL_NOW": "yesterday"})
    assert result.exit_code == 2 and "invalid POINTCTL_NOW 'yesterday'" in result.error
    cli.ok("accounts", "create", "Core", env={"POINTCTL_NOW": "2025-12-31"})
    assert cli.json("accounts", "show", "Core")["created_at"] == "2025-12-31T00:00:00Z"


def test_messages_on_stderr_data_on_stdout(cli: Cli) -> None:
    result = cli.ok("accounts", "create", "Core", "--format", "json")
    assert result.stderr.startswith("Created account 'Core'")
    assert result.stdout.lstrip().startswith("{")


def test_upgrade_refuses_an_unknown_newer_schema(cli: Cli) -> None:
    engine = create_engine(parse_url(cli.url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    result = cli("db", "upgrade")
    assert result.exit_code == 4 and "'9999_future', which this pointctl does not know" in \
        result.error
    assert len(result.error.splitlines()) == 1


def test_small_error_contracts(cli: Cli, tmp_path: Path) -> None:
    """verify --format csv prints its header when clean; --at '' is invalid input, not now;
    an empty batch file warns."""
    assert cli.ok("verify", "--format", "csv").stdout == "rule,check,subject,detail\n"
    cli.ok("accounts", "create", "Core")
    empty_at = cli("activity", "u1", "login", "--at", "")
    assert empty_at.exit_code == 2 and empty_at.error.startswith("Error: invalid --at ''")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    done = cli.ok("batch", str(empty))
    assert f"Warning: {empty} holds no operations" in done.stderr


def test_a_wrong_choice_names_the_closest_one(cli: Cli, tmp_path: Path) -> None:
    status = cli("accounts", "list", "--status", "actve")
    assert status.exit_code == 2 and status.error == (
        "Error: Invalid value for '--status': 'actve' is not one of 'active', 'inactive', "
        "'all' (did you mean 'active'?)")
    zone = cli("config", "set", "timezone", "America/NewYork")
    assert zone.exit_code == 2 and "(did you mean 'America/New_York'?)" in zone.error
    path = tmp_path / "ops.jsonl"
    path.write_text('{"op": "isue", "user": "u1", "points": 1, "source": "Base"}\n')
    op = cli("batch", str(path))
    assert op.exit_code == 2 and "not 'isue' (did you mean 'issue'?)" in op.error
    far = cli("accounts", "list", "--format", "xml")
    assert far.exit_code == 2 and "did you mean" not in far.error and "Value error" not in \
        far.error


def test_tables_never_split_a_number_at_80_or_120_columns(cli: Cli) -> None:
    """Every number of every data command's JSON appears whole in its table, at 80 and 120
    columns; a table that cannot fit says so and prints one block per row."""
    import json
    import re

    now = {"POINTCTL_NOW": "2026-03-10T12:00:00Z"}
    cli.ok("accounts", "create", "Spendable - Core", "--default", "--group", "Spendable Point "
           "Balance", "--max-balance", "999999999", env=now)
    cli.ok("sources", "create", "Ride Share Partner", "--inventory", "987654321", env=now)
    cli.ok("restrictions", "add", "Ride Share Partner", "--max-points", "123456789", "--per",
           "1d", env=now)
    cli.ok("issue", "cust-1042", "99999999", "--source", "Ride Share Partner",
           "--reference-id", "order-123456789", env=now)
    cli.ok("spend", "cust-1042", "12345678", "--reference-id", "checkout-987654", env=now)
    cli.ok("accounts", "expiration", "Spendable - Core", "--rolling", "--older-than", "30d",
           env=now)
    commands = [["report", "audit"], ["balance", "cust-1042"], ["accounts", "list"],
                ["sources", "list"], ["restrictions", "list", "Ride Share Partner"],
                ["report", "liability"], ["report", "sources", "--last", "3d"],
                ["expire", "status"], ["history", "cust-1042", "--at", "2026-03-10T13:00:00Z"],
                ["customer", "cust-1042"], ["accounts", "show", "Spendable - Core"],
                ["sources", "show", "Ride Share Partner"],
                ["sources", "inventory", "Ride Share Partner"],
                ["expire", "preview", "--within", "60d"],
                ["report", "liability", "--daily", "--last", "3d"]]

    def numbers(value: object) -> set[str]:
        if isinstance(value, bool):
            return set()
        if isinstance(value, int):
            return {str(value)}
        # (entries_total: said only when the list is cut short; a change entry's changes
        # and state: JSON details of what its note says)
        if isinstance(value, dict):
            return set().union(*(numbers(v) for k, v in value.items()
                                 if k not in ("entries_total", "changes", "state"))
                               ) if value else set()
        if isinstance(value, list):
            return set().union(*(numbers(v) for v in value)) if value else set()
        return set()

    blocks = 0
    for args in commands:
        wanted = numbers(json.loads(cli.ok(*args, "--format", "json", env=now).stdout))
        assert wanted, args
        for width in ("80", "120"):
            shown = cli.ok(*args, env={**now, "COLUMNS": width})
            table = shown.stdout
            assert max(len(line) for line in table.splitlines()) <= int(width), (args, width)
            # (a figure may be in the heading line on stderr: sources inventory)
            missing = wanted - set(re.findall(r"-?\d+", table + shown.stderr))
            assert not missing, (args, width, missing, table)
            if "one block per row" in shown.stderr:
                blocks += 1
                assert "--format csv or json gives the table" in shown.stderr
    assert blocks >= 1  # the audit log does not fit in 80 columns as a table


def test_tables_show_names_as_they_are(cli: Cli) -> None:
    """Brackets and colons in names are text, not Rich markup or emoji codes: '[/x]' once
    ended every table that showed it with an error, '[b]' vanished and ':smile:' became 😄."""
    names = ["[/red] odd", "Smile :smile: [bold]x[/bold]"]
    for name in names:
        cli.ok("accounts", "create", name, "--default")
    cli.ok("sources", "create", "Shop [v2]")
    cli.ok("issue", "u:thumbs_up:", "10", "--source", "Shop [v2]", "--account", names[0])
    for args in (["accounts", "list"], ["balance", "u:thumbs_up:"], ["accounts", "show", names[1]],
                 ["sources", "list"]):
        table = cli.ok(*args, env={"COLUMNS": "200"}).stdout
        assert "😄" not in table and "👍" not in table, args
        shown = [text for text in [*names, "Shop [v2]", "u:thumbs_up:"] if text in table]
        assert shown, (args, table)
    assert all(name in cli.ok("accounts", "list").stdout for name in names)
    assert "Balances of u:thumbs_up:" in cli.ok("balance", "u:thumbs_up:").stdout


def test_a_table_that_fits_once_text_wraps_stays_a_table(cli: Cli) -> None:
    """Text columns wrap at their words: only when even that cannot fit do rows become
    blocks."""
    cli.ok("accounts", "create", "Main")
    cli.ok("sources", "create", "Ride share partner of the Koalla programme in the whole of "
           "Europe", "--inventory", "987654321")
    shown = cli.ok("sources", "list", env={"COLUMNS": "60"})
    assert "one block per row" not in shown.stderr and "┃" in shown.stdout, shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()) <= 60
    assert "987654321" in shown.stdout


def test_every_help_page_names_things_one_way(cli: Cli) -> None:
    """Every command's --help: no type placeholder on a flag, arguments as upper-case names
    (plain when required, in brackets when optional, never in braces), and no reference to
    documents a user does not have."""
    import re

    import typer

    from pointctl.cli import app

    def paths(command: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        found = [prefix]
        for name, sub in getattr(command, "commands", {}).items():
            found += paths(sub, (*prefix, name))
        return found

    root = typer.main.get_command(app)
    shorts: dict[str, set[str]] = {}
    pages = 0
    for path in paths(root):
        command = root
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        for param in command.params:  # type: ignore[attr-defined]
            assert param.help, (path, param.name)  # every option and argument says what it is
            for short in (o for o in param.opts + param.secondary_opts if o[1] != "-"):
                shorts.setdefault(short, set()).add(max(param.opts, key=len))
        # paragraphs are wrapped to the terminal, never broken where the source text was
        page = cli.ok(*path, "--help", env={"COLUMNS": "400"}).stdout
        for paragraph in (command.help or "").split("\n\n"):  # type: ignore[attr-defined]
            if not paragraph.lstrip().startswith("-"):
                assert " ".join(paragraph.split()) in page, (path, paragraph)
        page = cli.ok(*path, "--help").stdout
        pages += 1
        assert "<bool>" not in page and "<str>" not in page and "<int>" not in page, path
        usage = next(line for line in page.splitlines() if "Usage:" in line)
        assert "{" not in usage and "}" not in usage, (path, usage)
        for word in re.findall(r"\[OPTIONS\]\s+(.*)", usage):
            for argument in word.split():
                assert argument.strip("[].") == argument.strip("[].").upper(), (path, usage)
        assert not re.search(r"\bSPEC\b|seed document", page), path
    assert pages > 40
    # one meaning per short option across the whole command line
    assert {short: longs for short, longs in shorts.items() if len(longs) > 1} == {}
