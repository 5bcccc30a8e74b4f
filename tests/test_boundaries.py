"""Boundary values fed to every option and argument of every command, on both databases.

Each command starts from a valid invocation against a small program; then, one parameter at a
time, its value becomes an empty string, whitespace, 2**63, 10,000 characters, a NUL byte, a
far past or far future time or a huge duration. Whatever the value, pointctl ends with exit 0
or a documented code (1 refused, 2 invalid, 3 not found, 4 database, 5 changes pending), and a
failure is exactly one ``Error:`` line: never an unexpected error, a traceback, a library's
wording or a URL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from pointctl.cli import app
from tests.helpers import Cli

VALUES = ["", "   ", str(2**63), "9" * 5_000, "x" * 10_000, "a\x00b", "0001-01-01",
          "9999-12-31T23:59:59", "100000y"]
FILE = "<file>"  # replaced by a real file of the test
ENTRY = "<entry>"  # replaced by the id of the test's issue

# (positional arguments, options) of a valid invocation of every command; flags need no value
BASE: dict[tuple[str, ...], tuple[list[str], dict[str, str]]] = {
    (): ([], {}),
    ("issue",): (["u1", "5"], {"--source": "Shop", "--account": "Main"}),
    ("spend",): (["u1", "1"], {}),
    ("reverse",): ([], {"--entry": ENTRY, "--points": "1"}),
    ("adjust",): (["u1", "-1"], {"--account": "Main", "--reason": "fix"}),
    ("transfer",): (["u1", "1"], {"--from": "Main", "--to": "Extra"}),
    ("reactivate",): (["u1"], {"--account": "Main"}),
    ("balance",): (["u1"], {}),
    ("history",): (["u1"], {"--at": "2026-06-01"}),
    ("activity",): (["u1", "login"], {}),
    ("hold",): ([], {}),
    ("hold", "place"): (["u1", "1"], {"--reference-id": "H1"}),
    ("hold", "capture"): (["H0"], {}),
    ("hold", "void"): (["H9"], {}),
    ("hold", "list"): ([], {}),
    ("customer",): (["u1"], {}),
    ("tier",): (["u1"], {}),
    ("tiers",): ([], {}),
    ("tiers", "set"): ([], {"--account": "Q", "--level": "Silver=10"}),
    ("tiers", "show"): ([], {}),
    ("tiers", "clear"): ([], {"--yes": ""}),
    ("report", "tiers"): ([], {}),
    ("enroll",): (["u2"], {}),
    ("batch",): ([FILE], {}),
    ("verify",): ([], {}),
    ("db",): ([], {}),
    ("db", "upgrade"): ([], {}),
    ("db", "status"): ([], {}),
    ("accounts",): ([], {}),
    ("accounts", "list"): ([], {}),
    ("accounts", "show"): (["Main"], {}),
    ("accounts", "create"): (["New"], {}),
    ("accounts", "edit"): (["Extra"], {"--group": "G"}),
    ("accounts", "expiration"): (["Extra"], {"--rolling": "", "--older-than": "30d"}),
    ("accounts", "reactivation"): (["Main"], {"--window": "30d"}),
    ("accounts", "activate"): (["Extra"], {}),
    ("accounts", "deactivate"): (["Extra"], {}),
    ("sources",): ([], {}),
    ("sources", "list"): ([], {}),
    ("sources", "show"): (["Shop"], {}),
    ("sources", "create"): (["Fresh"], {}),
    ("sources", "inventory"): (["Stock"], {"--adjust": "5", "--reason": "count"}),
    ("sources", "edit"): (["Stock"], {"--name": "Stock"}),
    ("sources", "pause"): (["Stock"], {}),
    ("sources", "activate"): (["Stock"], {}),
    ("sources", "archive"): (["Stock"], {}),
    ("restrictions",): ([], {}),
    ("restrictions", "add"): (["Shop"], {"--max-points": "10", "--per": "2d"}),
    ("restrictions", "list"): (["Shop"], {}),
    ("restrictions", "edit"): (["1"], {"--max-points": "20"}),
    ("restrictions", "delete"): (["1"], {}),
    ("expire",): ([], {}),
    ("expire", "run"): ([], {}),
    ("expire", "status"): ([], {}),
    ("expire", "preview"): ([], {"--within": "30d"}),
    ("report",): ([], {}),
    ("report", "audit"): ([], {"--limit": "5"}),
    ("report", "liability"): ([], {}),
    ("report", "debt"): ([], {"--limit": "5"}),
    ("report", "partner"): (["Stock"], {}),
    ("report", "breakage"): ([], {"--closed-after": "1y"}),
    ("report", "sources"): ([], {"--no-chart": ""}),
    ("config",): ([], {}),
    ("config", "set"): (["timezone", "UTC"], {}),
    ("config", "show"): ([], {}),
    ("config", "apply"): ([FILE], {"--dry-run": ""}),
    ("config", "export"): ([], {}),
}
FLAGS = ("--no-chart", "--dry-run", "--rolling", "--yes")
# options that start something outside pointctl, fed only values that cannot reach it
OUTSIDE = {"--email", "--install-completion"}
DOCUMENTED = {0, 1, 2, 3, 4, 5}
# starting invocations refused by a rule, after every parameter was read and checked
EXPECTED = {("reactivate",): 1,  # nothing of u1's has expired
            # a variant with other valid values placed hold H1 already: a reference id
            # names one hold
            ("hold", "place"): 1,
            ("sources", "archive"): 1}  # only a paused source, and with --yes
LEAKS = re.compile(r"unexpected|Traceback|sqlalche\.me|https?://|pydantic|Value error|"
                   r"Input should be", re.IGNORECASE)


def commands() -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_every_command_has_a_valid_invocation_here() -> None:
    assert sorted(commands()) == sorted(BASE)


def variants(path: tuple[str, ...], command: Any) -> list[tuple[str, list[str]]]:
    """(what was changed, the arguments) for each parameter and each boundary value."""
    positional, options = BASE[path]
    out = []
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    for index, _param in enumerate(arguments):
        for value in VALUES:
            changed = list(positional)
            changed[index] = value
            out.append((f"argument {index} = {value[:20]!r}", invocation(path, changed, options)))
    for param in command.params:
        if param.param_type_name != "option" or param.is_flag or param.name == "help":
            continue
        name = max(param.opts, key=len)
        if name in OUTSIDE:
            continue
        for value in VALUES:
            out.append((f"{name} {value[:20]!r}",
                        invocation(path, positional, {**options, name: value})))
    return out


def invocation(path: tuple[str, ...], positional: list[str], options: dict[str, str]
               ) -> list[str]:
    args = [*path]
    for name, value in options.items():
        args += [name] if value == "" and name in FLAGS else [name, value]
    return [*args, *positional]


def setup(cli: Cli, tmp_path: Path) -> dict[str, str]:
    cli.ok("accounts", "create", "Main", "--default")
    cli.ok("accounts", "create", "Extra")
    cli.ok("accounts", "create", "Q", "--qualifying")
    cli.ok("tiers", "set", "--account", "Q", "--level", "Silver=10")
    cli.ok("sources", "create", "Shop")
    cli.ok("sources", "create", "Stock", "--inventory", "100")
    issued = cli.json("issue", "u1", "50", "--source", "Shop", "--account", "Main")
    cli.ok("restrictions", "add", "Shop", "--max-points", "1000", "--per", "1d")
    cli.ok("accounts", "reactivation", "Main", "--window", "30d")
    for hold in ("H0", "H9"):
        cli.ok("hold", "u1", "2", "--reference-id", hold)
    batch = tmp_path / "ops.jsonl"
    batch.write_text('{"op": "issue", "user": "u3", "points": 5, "source": "Shop", '
                     '"account": "Main"}\n')
    program = tmp_path / "program.toml"
    program.write_text('[[accounts]]\nname = "Main"\ndefault = true\n')
    assert isinstance(issued, dict)
    return {"jsonl": str(batch), "toml": str(program), "entry": str(issued["entry"])}


def check(result: Any, what: str) -> None:
    assert result.exit_code in DOCUMENTED, (what, result.exit_code, result.stderr[-300:])
    if result.exit_code:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (what, result.stderr[-500:])
    assert not LEAKS.search(result.stderr), (what, result.stderr[-500:])


GROUPS = ["ledger", "accounts", "sources", "restrictions", "expire", "report", "config", "root"]


def group_of(path: tuple[str, ...]) -> str:
    return path[0] if path and path[0] in GROUPS else "ledger" if path else "root"


@pytest.mark.parametrize("group", GROUPS)
def test_boundary_values_end_cleanly(cli: Cli, tmp_path: Path, group: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # --export, --output and --rejects write where they are told
    files = setup(cli, tmp_path)
    tried = 0
    for path, command in commands().items():
        if group_of(path) != group:
            continue
        file = files["toml" if path == ("config", "apply") else "jsonl"]
        positional, options = BASE[path]
        if path[-1:] == ("create",):  # a variant may have created the name already
            positional = ["Another"]
        for what, args in [*variants(path, command), ("as given", invocation(path, positional,
                                                                             options))]:
            args = [file if arg == FILE else files["entry"] if arg == ENTRY else arg
                    for arg in args]
            result = cli(*args)
            check(result, f"{' '.join(path)}: {what}")
            tried += 1
        # the starting invocation itself is done (so each variant differs in one value only)
        if not getattr(command, "commands", None):  # (a group without a command is exit 2)
            assert result.exit_code == EXPECTED.get(path, 0), (path, result.stderr)
    if group == "root":  # the global options, before a command that reads the database
        for option in ("--db", "--actor"):
            for value in VALUES:
                result = cli(option, value, "balance", "u1")
                check(result, f"{option} {value[:20]!r}")
                tried += 1
    assert tried >= len(VALUES)


def test_texts_and_numbers_beyond_what_is_stored(cli: Cli, tmp_path: Path) -> None:
    """A batch number of 5,000 digits is a malformed line; an activity list longer than the
    policy stores is exit 2 on both databases, before anything is written."""
    setup(cli, tmp_path)
    huge = tmp_path / "huge.jsonl"
    huge.write_text('{"op": "issue", "user": "u1", "points": ' + "9" * 5000 +
                    ', "source": "Shop", "account": "Main"}\n')
    result = cli("batch", str(huge))
    assert result.exit_code == 2 and "far larger than 64 bits" in result.error, result.stderr
    events = ",".join(f"event{n:03}" for n in range(80))  # 639 characters
    result = cli("accounts", "expiration", "Main", "--inactivity", "--inactive-for", "30d",
                 "--activity", events)
    assert result.exit_code == 2 and "at most 500" in result.error, result.stderr
    assert cli.json("expire", "status") == [] or all(
        row["policy"] == "none" for row in cli.json("expire", "status"))  # type: ignore[union-attr]
