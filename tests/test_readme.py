"""The README cannot drift: its walkthrough, its Python example and its commands are run here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers import Cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SCRIPT = ROOT / "sample_configs" / "koalla_walkthrough.sh"
MARKER = "# --- walkthrough"


def section_block(heading: str, language: str) -> str:
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block under '## {heading}'"
    return match.group(1)


def script_commands() -> list[str]:
    body = SCRIPT.read_text().split(MARKER, 1)[1].split("\n", 1)[1]
    return [line for line in body.splitlines() if line.strip() and not line.startswith("#")]


def test_walkthrough_block_is_the_script() -> None:
    assert section_block("Walkthrough", "sh").splitlines() == script_commands()


def test_setup_commands_name_real_files() -> None:
    setup = section_block("Set up on a fresh machine", "sh")
    assert "pip install -e . && bash sample_configs/koalla_walkthrough.sh" in setup
    assert SCRIPT.exists()


def test_ci_runs_the_readme_test_command() -> None:
    section = README.split("\n## Set up on a fresh machine\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    test_command = blocks[1].strip()
    assert test_command.endswith("pytest")
    assert test_command in (ROOT / ".ci" / "run").read_text()


def run_walkthrough(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "WALKTHROUGH_DIR": str(tmp_path / "walkthrough")}
    for name in ("POINTCTL_DATABASE_URL", "POINTCTL_FORMAT", "POINTCTL_NOW"):
        env.pop(name, None)
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)


def test_walkthrough_runs_and_builds_the_koalla_program(tmp_path: Path) -> None:
    result = run_walkthrough(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Upgraded sqlite:///pointctl.db from empty" in result.stderr
    assert "Dry run: 10 changes planned, nothing applied" in result.stderr
    assert "Applied koalla.toml: 10 changes" in result.stderr
    assert "koalla.toml is already applied; nothing changed" in result.stderr
    activity = [json.loads(line) for line in
                (ROOT / "sample_configs" / "koalla_activity.jsonl").read_text().splitlines()]
    assert f"Applied {len(activity)} of {len(activity)} operations (0 replayed)" in \
        result.stderr
    issued: dict[str, int] = {}
    for op in activity:
        if op["op"] == "issue":
            issued[op["source"]] = issued.get(op["source"], 0) + op["points"]
    issued["Ride Share Partner"] += 100  # ride-99, issued by hand
    # the bonus campaign is clamped to what is left of the partner's 50,000-point daily budget
    clamped = re.search(r"Issued (\d+) points from 'Ride Share Partner' to cust-2001 .*; "
                        r"clamped from 50000 \(restriction #1 .* has (\d+) used", result.stderr)
    assert clamped and int(clamped[1]) + int(clamped[2]) == 50000 and int(clamped[1]) < 50000
    issued["Ride Share Partner"] += int(clamped[1])
    # each command is shown as typed before its output, without shell tracing
    assert '\n$ pointctl restrictions list "Ride Share Partner"\n' in result.stdout
    assert "+ pointctl" not in result.stderr
    assert "Replayed (idempotency key seen before): Spent 300 points" in result.stderr
    assert "Reversed 50 points" in result.stderr
    assert "roll over into Spendable - Core" in result.stdout  # expire status
    # 1 September 00:00 to 22 October 00:00 in New York: 51 daily evaluations; every
    # September purchase is past its 30-day return window and rolls into Spendable - Core
    assert f"Performed 51 evaluations: 0 points expired, {issued['Base Purchases']} rolled " \
        "over" in result.stderr
    # the tiers, assessed by the same run: 20 members reached Silver (500 qualifying points in
    # the calendar year), 4 of them Gold (1000) as well; cust-1042 earned 1780
    assert "Performed 51 tier evaluations: 24 members moved up, 0 down, 20 hold a level" in \
        result.stderr
    gold = re.search(r"Tier of cust-1042\s+user\s+cust-1042\s+level\s+Gold\s", result.stdout)
    assert gold and re.search(r"Silver\s*│\s*16\s*│\s*20\s*│\s*0\s*│", result.stdout)
    assert "Ledger verified: every rule holds" in result.stderr
    # the support desk's view, read-only
    assert "Customer cust-1042" in result.stdout and "Expiring if nothing else happens" in \
        result.stdout
    assert "Balances of cust-1042 at 2026-09-10T16:00:00Z" in result.stdout
    # the liability of September: nothing spent from escrowed purchases or tier points; ride
    # points are spent too, first in first out across the two default spendable accounts
    for source in ("Base Purchases", "Tier Qualifying Points"):
        points = issued[source]
        assert re.search(rf"{source}\s*│\s*{points}\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*0\s*│"
                         rf"\s*{points}\s", result.stdout), source
    ride = re.search(rf"Ride Share Partner\s*│\s*{issued['Ride Share Partner']}\s*│\s*0\s*│"
                     r"\s*(\d+)\s*│\s*0\s*│\s*0\s*│\s*(\d+)\s", result.stdout)
    assert ride and int(ride[1]) > 0 and \
        int(ride[1]) + int(ride[2]) == issued["Ride Share Partner"]
    total = sum(issued.values())
    assert re.search(rf"Total\s*│\s*{total}\s*│", result.stdout)
    september = (tmp_path / "walkthrough" / "koalla-september.csv").read_text().splitlines()
    assert len(september) == 1 + 30 * 5  # a row per day and source
    last = {row.split(",")[1]: row.split(",") for row in september
            if row.startswith("2026-09-30,")}
    assert {name: int(row[6]) for name, row in last.items()} == issued  # cumulative issued
    ride_days = [line for line in result.stdout.splitlines()
                 if "│ Ride Share Partner │" in line and "2026-09-2" in line]
    # the ride points outstanding at the end of 21 September, as the liability says (nothing
    # happened to them after)
    assert ride_days[-1].split("│")[-2].strip() == ride[2]
    # the walkthrough's database matches sample_configs/koalla.toml
    url = f"sqlite:///{tmp_path / 'walkthrough' / 'pointctl.db'}"
    program = tomllib.loads((ROOT / "sample_configs" / "koalla.toml").read_text())

    def pointctl_json(*args: str) -> list[dict]:
        return Cli(url).json(*args)  # type: ignore[return-value]

    accounts = {a["name"]: a for a in pointctl_json("accounts", "list")}
    assert set(accounts) == {a["name"] for a in program["accounts"]}
    for wanted in program["accounts"]:
        have = accounts[wanted["name"]]
        assert have["group"] == wanted.get("group")
        assert have["default"] == wanted.get("default", False)
        assert have["qualifying"] == wanted.get("qualifying", False)
        assert have["allow_negative"] == wanted.get("allow_negative", True)
        assert have["max_balance"] == wanted.get("max_balance")
    policies = {row["account"]: row for row in pointctl_json("expire", "status")}
    assert pointctl_json("config", "show")[0]["value"] == program["program"]["timezone"]
    for wanted in program["accounts"]:
        rule = wanted.get("expiration")
        have = policies[wanted["name"]]
        if rule is None:
            assert have["policy"] == "none"
            continue
        assert have["policy"] == rule["type"]
        assert have["schedule"] == f"{rule['every']} ({program['program']['timezone']})"
        assert f"older than {rule['older_than']} roll over into {rule['rollover_to']}" in \
            have["rule"]
    sources = {s["name"]: s for s in pointctl_json("sources", "list")}
    assert set(sources) == {s["name"] for s in program["sources"]}
    for wanted in program["sources"]:
        have = sources[wanted["name"]]
        issued = sum(entry["modification"] for entry in pointctl_json(
            "report", "audit", "--source", wanted["name"], "--type", "issue", "--limit",
            "100000"))
        if wanted["inventory"] == "unlimited":
            assert have["inventory"] is None
        else:  # the file holds the inventory before the walkthrough's issues
            assert have["inventory"] + issued == wanted["inventory"]
        assert sorted(have["accounts"]) == sorted(wanted["accounts"])
        limits = pointctl_json("restrictions", "list", wanted["name"])
        assert [(r["max_points"], r["per"], r["scope"] == "per customer") for r in limits] == [
            (r["max_points"], r["per"], r["per_customer"]) for r in wanted.get("restrictions", [])]


def test_python_api_example(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pointctl import upgrade

    monkeypatch.chdir(tmp_path)
    upgrade("sqlite:///pointctl.db")
    exec(section_block("Python API", "python"), {})
    assert Cli("sqlite:///pointctl.db").json("accounts", "show", "Spendable - Core")["default"]


def test_the_systemd_units_the_readme_names_run_expire() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("pointctl-expire.service", "pointctl-expire.timer"):
        assert f"deploy/systemd/{name}" in readme or "deploy/systemd/pointctl-expire.*" in readme
        assert (ROOT / "deploy" / "systemd" / name).is_file()
    service = (ROOT / "deploy" / "systemd" / "pointctl-expire.service").read_text()
    assert "ExecStart=" in service and "pointctl expire run" in service
    timer = (ROOT / "deploy" / "systemd" / "pointctl-expire.timer").read_text()
    assert "OnCalendar=" in timer and "Persistent=true" in timer
