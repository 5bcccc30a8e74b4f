"""Benchmark: pointctl's start-up against importing the libraries it is built on, whole processes.

    python bench/startup.py [--repeat 21]

Creates a small SQLite database in a temporary folder with `pointctl` itself (3 accounts, 3
sources, 30 issues and spends for 10 users), then times, as whole processes started from here
and interleaved repetition by repetition (so that the machine's load affects all alike):

- `pointctl balance USER` against `python -c "import sqlmodel, typer, rich"` (goal: 1.25x);
- `pointctl --help` and `pointctl --version` against `python -c "import typer"` (goal: 2x).

Prints the median wall time of each and the ratios (the goals are on these), with the median
CPU time (user + system) of the same processes: on a loaded machine a process also waits for a
core, which the wall time counts and the CPU time does not. Both baselines run with the same
Python as pointctl.

pointctl's modules are compiled to bytecode first, as the libraries' are when pip installs them.
An editable install (``pip install -e``) writes pointctl's bytecode on its first run, unless
PYTHONDONTWRITEBYTECODE is set, as it is in some development environments: then every run would
compile pointctl's modules from source again (on the development machine about 25 ms more for
``balance`` and 35 ms for ``--help``, the 22 modules each imports), a cost no installed pointctl
has and the libraries it is measured against do not pay.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
POINTCTL = str(Path(PYTHON).with_name("pointctl"))  # the one of this environment
NOW = "2026-12-01T12:00:00Z"


def setup(url: str) -> None:
    """A small program written through pointctl: what a user has after a few days."""
    env = {**os.environ, "POINTCTL_DATABASE_URL": url, "POINTCTL_NOW": NOW}

    def run(*args: str) -> None:
        subprocess.run([POINTCTL, *args], env=env, check=True, capture_output=True)

    run("db", "upgrade")
    run("accounts", "create", "Spendable - Core", "--default")
    run("accounts", "create", "Spendable - Partner", "--default")
    run("accounts", "create", "Escrow")
    for name in ("Base Purchases", "Bonus Purchases", "Ride Share Partner"):
        run("sources", "create", name)
    lines = []
    for user in range(10):
        for n, source in enumerate(("Base Purchases", "Bonus Purchases", "Ride Share Partner")):
            lines.append(f'{{"op": "issue", "user": "u{user}", "points": {100 + n}, '
                         f'"source": "{source}", "account": "Spendable - Core"}}')
        lines.append(f'{{"op": "spend", "user": "u{user}", "points": 42}}')
    batch = Path(url.removeprefix("sqlite:///")).with_name("ops.jsonl")
    batch.write_text("\n".join(lines) + "\n")
    run("batch", str(batch))


def measure(commands: dict[str, list[str]], repeat: int
            ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall time of each whole process, and its CPU time (user + system, from ``wait4``)."""
    env = {**os.environ, "POINTCTL_NOW": NOW}
    wall: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for round_ in range(repeat + 1):
        for label, argv in commands.items():
            started = time.perf_counter()
            process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - started
            code = process.returncode = os.waitstatus_to_exitcode(status)  # reaped here
            if code:
                raise SystemExit(f"{' '.join(argv)} failed (exit {code})")
            if round_:  # the first round only warms the caches
                wall[label].append(elapsed)
                cpu[label].append(usage.ru_utime + usage.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    options = parser.parse_args()
    import pointctl

    compileall.compile_dir(Path(pointctl.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/pointctl.db"
        setup(url)
        commands = {
            "import sqlmodel, typer, rich": [PYTHON, "-c", "import sqlmodel, typer, rich"],
            "pointctl balance u3": [POINTCTL, "--db", url, "balance", "u3"],
            "import typer": [PYTHON, "-c", "import typer"],
            "pointctl --help": [POINTCTL, "--help"],
            "pointctl --version": [POINTCTL, "--version"],
        }
        wall, cpu = measure(commands, options.repeat)
    median = {label: statistics.median(values) for label, values in wall.items()}
    cpu_median = {label: statistics.median(values) for label, values in cpu.items()}
    print(f"{options.repeat} interleaved runs each, medians (Python {sys.version.split()[0]}):")
    for label, value in median.items():
        print(f"  {label:30} {value:.3f} s (CPU {cpu_median[label]:.3f} s)")
    for label, base, goal in (("pointctl balance u3", "import sqlmodel, typer, rich", 1.25),
                              ("pointctl --help", "import typer", 2.0),
                              ("pointctl --version", "import typer", 2.0)):
        ratio = median[label] / median[base]
        verdict = "within" if ratio <= goal else "above"
        print(f"{label} / {base}: {ratio:.2f}x ({verdict} the goal of {goal}x; CPU time "
              f"{cpu_median[label] / cpu_median[base]:.2f}x)")

if __name__ == "__main__":
    main()
