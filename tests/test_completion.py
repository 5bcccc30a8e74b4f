"""Shell completion: the bash, zsh and fish scripts, with account and source names from the
database, through real `pointctl` processes (and real shells where installed) on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
import shlex
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


def zsh(url: str, *lines: list[str]) -> list[list[str]]:
    """Source the script `pointctl --show-completion zsh` prints in a real zsh and complete the
    last word of each of ``lines`` as its function does on Tab; ``_arguments`` (from zsh's
    completion system, which needs a terminal) is replaced by its first steps: eval the
    ``((...))`` list into words and take each value before its first colon that is not
    escaped (``\\:`` is a colon)."""
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    script = ["compdef() { : }", "_files() { print -r -- '<files>' }",
              "_arguments() {", "  local action=${1#'*: :'} item; local -a ws",
              '  eval ws\\=\\( "${action[3,-3]}" \\)',
              "  for item in $ws; do item=${item//'\\:'/$'\\1'}; item=${item%%:*}",
              "    print -r -- ${item//$'\\1'/:}; done",
              "}", "source <(pointctl --show-completion zsh)"]
    for words in lines:
        quoted = " ".join("'" + word.replace("'", "'\\''") + "'" for word in words)
        script += [f"words=({quoted}); CURRENT={len(words)}", "print -r -- '<<'",
                   "_pointctl_completion", "print -r -- '>>'"]
    done = subprocess.run(["zsh", "-f", "-c", "\n".join(script)], env=env(url),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [block.split(">>")[0].strip("\n").splitlines() for block in done.stdout.split("<<")[1:]]


def fish(url: str, *lines: str) -> list[list[str]]:
    """Load the script `pointctl --show-completion fish` prints in a real fish and ask fish
    what it completes each of ``lines`` to (``complete -C``): value, tab, description."""
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    script = ["pointctl --show-completion fish | source"]
    for line in lines:
        script += ["echo '<<'", f"complete -C{shlex.quote(line)}", "echo '>>'"]
    done = subprocess.run(["fish", "--no-config", "-c", "; ".join(script)], env=env(url),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [block.split(">>")[0].strip("\n").splitlines() for block in done.stdout.split("<<")[1:]]


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
    ok(cli, T0, "accounts", "create", "Mom's \"Best\":  Club")
    # the answer zsh evals: one $'...' word, without whitespace that the shell would collapse
    answer = zsh_output(cli.url, "pointctl sources show R")
    assert answer == "_arguments $'*:\\x20:((\\'Ride\\x20Share\\x20Partner\\'))'\n"
    assert "Spendable\\x20-\\x20Core" in zsh_output(cli.url, "pointctl spend ann 5 --account ")
    # --db on the line wins over the environment; no database: no names, and no error
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    assert "Escrow" in zsh_output(missing, f"pointctl --db {cli.url} accounts show E")
    assert "Escrow" not in zsh_output(missing, "pointctl accounts show E")
    assert not (tmp_path / "missing.db").exists()
    # in zsh: every name arrives whole (quotes, colons, $, &, runs of spaces), commands too
    assert zsh(cli.url, ["pointctl", "accounts", "show", ""], ["pointctl", "acc"],
               ["pointctl", "sources", "show", "r"], ["pointctl", "accounts", "show", "x"]) == [
        ["Escrow", "Kids & Teens $HOME", "Mom's \"Best\":  Club", "Spendable - Core",
         "Spendable - Partner"],
        ["accounts"], ["ride Share Partner"], ["<files>"]]


def test_fish_completion(cli: Cli) -> None:
    program(cli)
    ok(cli, T0, "accounts", "create", "Mom's \"Best\":  Club")
    # the protocol: one completion a line, value and description separated by a tab
    done = subprocess.run(["pointctl"], env=env(
        cli.url, _POINTCTL_COMPLETE="complete_fish", _TYPER_COMPLETE_FISH_ACTION="get-args",
        _TYPER_COMPLETE_ARGS="pointctl accounts show M"), capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 0 and done.stdout == "Mom's \"Best\":  Club\n", done.stderr
    # in fish, which quotes what it inserts itself
    assert fish(cli.url, "pointctl accounts show ", "pointctl acc", "pointctl sources show b",
                "pointctl issue u1 5 --source R") == [
        ["Escrow", "Kids & Teens $HOME", "Mom's \"Best\":  Club", "Spendable - Core",
         "Spendable - Partner"],
        ["accounts\tPoint accounts: the balances every user..."],
        ["base Purchases", "bonus Purchases"], ["Ride Share Partner"]]


def test_show_completion_prints_the_shell_named(tmp_path: Path) -> None:
    """Whatever shell runs pointctl (here sh), --show-completion SHELL prints SHELL's script;
    --install-completion SHELL writes it where SHELL reads it."""
    marks = {"bash": "complete -o default -F _pointctl_completion pointctl",
             "zsh": "compdef _pointctl_completion pointctl",
             "fish": "complete --command pointctl --no-files",
             "powershell": "Register-ArgumentCompleter -Native -CommandName pointctl"}
    home = {**env("sqlite:///unused.db"), "HOME": str(tmp_path)}

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", command], env=home, capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)

    scripts = {}
    for shell, mark in marks.items():
        done = sh(f"pointctl --show-completion {shell}")
        assert done.returncode == 0 and mark in done.stdout, (shell, done.stderr)
        assert all(other not in done.stdout for other in marks.values() if other != mark)
        scripts[shell] = done.stdout
    assert sh("pointctl --show-completion=zsh").stdout == scripts["zsh"]
    wrong = sh("pointctl --show-completion zhs")
    assert wrong.returncode == 2 and wrong.stderr == (
        "Error: Invalid value for '--show-completion': 'zhs' is not one of 'bash', 'zsh', "
        "'fish', 'powershell', 'pwsh' (did you mean 'zsh'?)\n")
    # no shell named, and sh is not one pointctl has a script for: say so, no traceback
    unnamed = sh("pointctl --show-completion")
    assert unnamed.returncode == 2 and unnamed.stdout == "" and unnamed.stderr == (
        "Error: cannot tell which shell to complete for (this one is sh); name it: "
        "--show-completion bash|zsh|fish\n")
    for shell, path in (("zsh", ".zfunc/_pointctl"), ("fish",
                                                    ".config/fish/completions/pointctl.fish")):
        done = sh(f"pointctl --install-completion {shell}")
        assert done.returncode == 0 and f"{shell} completion installed in" in done.stdout
        assert (tmp_path / path).read_text().strip() == scripts[shell].strip()
    # without SHELL: the shell that runs pointctl (bash here)
    done = subprocess.run(["bash", "-c", "pointctl --install-completion"], env=home,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "bash completion installed in" in done.stdout, done.stderr
    assert (tmp_path / ".bash_completions/pointctl.sh").read_text().strip() == \
        scripts["bash"].strip()
    assert "source '" in (tmp_path / ".bashrc").read_text()
