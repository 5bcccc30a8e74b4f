"""Shell completion: Typer's bash and zsh completion, with account and source names from the
database, through real `pointctl` processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import Cli
from tests.test_expiry import ok

BIN = Path(sys.executable).parent
T0 = "2026-03-01T00:00:00Z"


def program(cli: Cli) -> None:
    for name in ("Spendable - Core", "Spendable - Partner", "Escrow", "Kids & Teens $HOME"):
        ok(cli, T0, "accounts", "create", name)
    for name in ("Ride Share Partner", "Base Purchases", "Bonus Purchases"):
        ok(cli, T0, "sources", "create", name)


def env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "POINTCTL_DATABASE_URL": url, **extra}


def bash(url: str, *lines: list[str], then: str = "") -> list[list[str]]:
    """Source the script `pointctl --show-completion bash` prints and, for each of ``lines``,
    complete its last word as bash does on Tab; COMPREPLY of each (then run ``then``, which
    finds the first completion of line i in $FIRST_i)."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = ["set -e", "source <(pointctl --show-completion bash)"]
    for index, words in enumerate(lines):
        quoted = " ".join(f"'{word}'" for word in words)
        script += [f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}",
                   "_pointctl_completion pointctl", f'FIRST_{index}="${{COMPREPLY[0]:-}}"',
                   "echo '<<'",
                   "printf '%s\\n' \"${COMPREPLY[@]}\"", "echo '>>'"]
    done = subprocess.run(["bash", "-c", "\n".join([*script, then])], env=env(url),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answers = [[line for line in block.split(">>")[0].splitlines() if line]
               for block in done.stdout.split("<<")[1:]]
    return [*answers, done.stdout.split(">>")[-1].strip().splitlines()]


def zsh_output(url: str, line: str) -> str:
    """What pointctl prints for the zsh script of `--show-completion zsh` (zsh itself is not
    needed: the script hands the words over in _TYPER_COMPLETE_ARGS and evals the answer)."""
    done = subprocess.run(["pointctl"], env=env(url, _POINTCTL_COMPLETE="complete_zsh",
                                                 _TYPER_COMPLETE_ARGS=line),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def test_bash_completes_commands_and_names_from_the_database(cli: Cli) -> None:
    program(cli)
    *answers, ran = bash(
        cli.url,
        ["pointctl", "acc"], ["pointctl", "accounts", "sh"],
        # account names, spaces escaped for bash; any case, keeping what was typed
        ["pointctl", "accounts", "show", ""], ["pointctl", "accounts", "show", "sp"],
        # source and account names wherever a command takes one
        ["pointctl", "issue", "ann", "5", "--source", "B"],
        ["pointctl", "report", "sources", "--source", "r"],
        ["pointctl", "transfer", "u", "5", "--from", "E"],
        # a new name is not completed from the existing ones
        ["pointctl", "accounts", "create", ""],
        ["pointctl", "accounts", "show", "K"],
        ["pointctl", "sources", "show", "ri"],
        # the completed lines run: bash reads each escaped name back as one argument
        then='eval "pointctl accounts show $FIRST_8 --format json"; '
             'eval "pointctl sources show $FIRST_9 --format json"')
    assert answers == [
        ["accounts"], ["show"],
        ["Escrow", "Kids\\ \\&\\ Teens\\ \\$HOME", "Spendable\\ -\\ Core",
         "Spendable\\ -\\ Partner"],
        ["spendable\\ -\\ Core", "spendable\\ -\\ Partner"],
        ["Base\\ Purchases", "Bonus\\ Purchases"],
        ["ride\\ Share\\ Partner"],
        ["Escrow"],
        [],
        ["Kids\\ \\&\\ Teens\\ \\$HOME"],
        ["ride\\ Share\\ Partner"],
    ]
    kids, ride = "\n".join(ran).replace("}\n{", "}\0{").split("\0")
    assert (json.loads(kids)["name"], json.loads(ride)["name"]) == (
        "Kids & Teens $HOME", "Ride Share Partner")


def test_zsh_completion_and_a_database_that_is_not_there(cli: Cli, tmp_path: Path) -> None:
    program(cli)
    assert zsh_output(cli.url, "pointctl sources show R") == \
        """_arguments '*: :(("Ride Share Partner"))'\n"""
    assert '"Spendable - Core"' in zsh_output(cli.url, "pointctl spend ann 5 --account ")
    # --db on the line wins over the environment; no database: no names, and no error
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    assert "Escrow" in zsh_output(missing, f"pointctl --db {cli.url} accounts show E")
    assert "Escrow" not in zsh_output(missing, "pointctl accounts show E")
    assert not (tmp_path / "missing.db").exists()
