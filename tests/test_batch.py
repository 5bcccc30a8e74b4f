"""`pointctl batch` on SQLite and PostgreSQL: mixed files, malformed lines, refusals, dry runs,
a crash and a resume, and equality with the same operations applied one command at a time."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pointctl.db.session import parse_url
from tests.helpers import Cli, snapshot

NOW = "2026-05-01T12:00:00Z"

# every op, refusals included; applied one command at a time it must give the same ledger
MIXED: list[dict[str, Any]] = [
    {"op": "issue", "user": "u1", "points": 300, "source": "Base", "account": "Core",
     "reference_id": "order-1", "idempotency_key": "k-1"},
    {"op": "issue", "user": "u2", "points": 80, "source": "Ride",
     "at": "2026-05-01T08:00:00Z"},
    {"op": "issue", "user": "u2", "points": 50, "source": "Ride"},  # restriction: 20 left
    {"op": "issue", "user": "u2", "points": 50, "source": "Ride", "clamp": True},
    {"op": "spend", "user": "u1", "points": 120, "reference_id": "checkout-1"},
    {"op": "issue", "user": "u1", "points": 300, "source": "Base", "account": "Core",
     "reference_id": "order-1", "idempotency_key": "k-1"},  # a replay
    {"op": "issue", "user": "u1", "points": 5, "source": "Base", "account": "Core",
     "idempotency_key": "k-1"},  # the key of another request: refused
    {"op": "adjust", "user": "u3", "points": -40, "account": "Core", "reason": "chargeback"},
    {"op": "issue", "user": "u3", "points": 100, "source": "Base", "account": "Core"},
    {"op": "transfer", "user": "u1", "points": 50, "account": "Core", "to_account": "Core",
     "to_user": "u3"},
    {"op": "reverse", "reference_id": "checkout-1", "points": 20},
    {"op": "adjust", "user": "u4", "points": 25, "account": "Core", "source": "Base",
     "reason": "goodwill"},
    {"op": "activity", "user": "u4", "event": "login"},
    {"op": "spend", "user": "u5", "points": 10, "account": "Partner"},  # nothing there
    {"op": "issue", "user": "u6", "points": 10, "source": "Nowhere"},  # unknown source
    {"op": "issue", "user": "u6", "points": 10, "source": "Base", "account": "Tier"},
]
REFUSED_LINES = [3, 7, 14, 15]


@pytest.fixture
def program(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("POINTCTL_NOW", NOW)
    setup(cli)
    return cli


def setup(cli: Cli) -> None:
    cli.ok("accounts", "create", "Core", "--default")
    cli.ok("accounts", "create", "Partner", "--no-negative", "--max-balance", "1000")
    cli.ok("accounts", "create", "Tier", "--qualifying")
    cli.ok("sources", "create", "Base", "--link", "Core", "--link", "Tier")
    cli.ok("sources", "create", "Ride", "--inventory", "500", "--link", "Partner")
    cli.ok("restrictions", "add", "Ride", "--max-points", "100", "--per", "1d",
           "--per-customer")


def write_jsonl(path: Path, ops: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(op) + "\n" for op in ops))
    return path


def write_csv(path: Path, ops: list[dict[str, Any]]) -> Path:
    columns = sorted({key for op in ops for key in op}, key=lambda k: (k != "op", k))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for op in ops:
        writer.writerow({k: str(v).lower() if isinstance(v, bool) else v for k, v in op.items()})
    path.write_text(out.getvalue())
    return path


def as_command(op: dict[str, Any]) -> list[str]:
    """The single command that does what one batch line does."""
    o = dict(op)
    kind = o.pop("op")
    args: list[str]
    if kind == "issue":
        args = ["issue", o.pop("user"), str(o.pop("points")), "--source", o.pop("source")]
    elif kind == "spend":
        args = ["spend", o.pop("user"), str(o.pop("points"))]
    elif kind == "reverse":
        args = ["reverse"]
    elif kind == "adjust":
        args = ["adjust", o.pop("user"), f"{o.pop('points'):+d}", "--reason", o.pop("reason")]
    elif kind == "transfer":
        args = ["transfer", o.pop("user"), str(o.pop("points")), "--from", o.pop("account"),
                "--to", o.pop("to_account")]
    else:
        args = ["activity", o.pop("user"), o.pop("event")]
    for key, value in o.items():
        if key == "clamp":
            if value:
                args.append("--clamp")
        else:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


FACTS = {  # what the ledger says, without ids (sequences may skip numbers after a rollback)
    "entry": "type, user_id, account_id, source_id, points, reference_id, reference_type, note, "
             "written_off, actor, occurred_at, recorded_at",
    "lot": "user_id, account_id, source_id, original, spent, expired, moved, remaining, "
           "created_at, available_at",
    "draw": "kind, points, lot_id IS NULL",
    "balance": "user_id, account_id, debt, created_at",
    "source": "name, status, inventory",
    "activity": "user_id, event, occurred_at",
}


def ledger_state(url: str) -> dict[str, list[tuple]]:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return {table: sorted((tuple(row) for row in connection.execute(
                text(f"SELECT {columns} FROM {table}"))), key=repr)
                for table, columns in FACTS.items()}
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_a_mixed_file_gives_the_ledger_of_the_same_commands_one_at_a_time(
        program: Cli, twin_url: str, tmp_path: Path, kind: str) -> None:
    path = (write_jsonl if kind == "jsonl" else write_csv)(tmp_path / f"ops.{kind}", MIXED)
    result = program("batch", str(path), "--chunk-size", "4", "--format", "json")
    assert result.exit_code == 1, result
    summary = json.loads(result.stdout)
    assert (summary["lines"], summary["applied"], summary["replayed"], summary["refused"]) == (
        16, 12, 1, 4)
    rejects = [json.loads(line) for line in Path(f"{path}.rejects.jsonl").read_text()
               .splitlines()]
    assert [r["line"] for r in rejects] == [line + (kind == "csv") for line in REFUSED_LINES]
    assert "restriction #1" in rejects[0]["error"] and "20 more allowed" in rejects[0]["error"]
    assert "already used for a different request" in rejects[1]["error"]
    assert rejects[3]["exit_code"] == 3 and "no source named 'Nowhere'" in rejects[3]["error"]

    twin = Cli(twin_url)
    setup(twin)
    codes = [twin(*as_command(op)).exit_code for op in MIXED]
    assert [i + 1 for i, code in enumerate(codes) if code != 0] == REFUSED_LINES
    assert ledger_state(program.url) == ledger_state(twin_url)
    assert program("verify").exit_code == 0


def test_malformed_lines_are_listed_with_their_numbers_and_nothing_is_applied(
        program: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([
        json.dumps({"op": "issue", "user": "u1", "points": 10, "source": "Base",
                    "account": "Core"}),
        '{"op": "issue", "user": "u1", "points": 10,',
        json.dumps({"op": "spend", "user": "u1"}),
        json.dumps({"op": "issue", "user": "u1", "points": "10", "source": "Base"}),
        "",
        json.dumps({"op": "refund", "user": "u1"}),
        json.dumps({"op": "issue", "user": "u1", "points": 1.5, "source": "Base"}),
        json.dumps({"op": "issue", "user": "u1", "points": 10, "source": "Base",
                    "colour": "red"}),
        json.dumps({"op": "adjust", "user": "u1", "points": 5, "account": "Core",
                    "reason": "x"}),
        json.dumps({"op": "issue", "user": "u1", "points": 10, "source": "Base",
                    "at": "yesterday"}),
        json.dumps(["issue"]),
    ]) + "\n")
    before = snapshot(program.url)
    result = program("batch", str(path))
    assert result.exit_code == 2
    assert result.error.startswith("Error: 9 malformed lines, nothing applied: line 2: invalid "
                                   "JSON")
    assert "line 3: spend needs 'points'" in result.error and "(and 6 more)" in result.error
    assert len(result.error.splitlines()) == 1 and "Traceback" not in result.stderr
    rejects = [json.loads(line) for line in Path(f"{path}.rejects.jsonl").read_text()
               .splitlines()]
    assert [(r["line"], r["exit_code"]) for r in rejects] == [
        (2, 2), (3, 2), (4, 2), (6, 2), (7, 2), (8, 2), (9, 2), (10, 2), (11, 2)]
    reasons = [r["error"] for r in rejects]
    assert reasons[2] == "'points' must be a whole number, not '10'"
    assert reasons[3].startswith("'op' must be one of issue, spend")
    assert reasons[4] == "'points' must be a whole number, not 1.5"
    assert reasons[5] == "unknown field 'colour'"
    assert reasons[6] == "adjust with positive points needs 'source'"
    assert reasons[7].startswith("invalid 'at'")
    assert reasons[8] == "expected a JSON object"
    assert snapshot(program.url) == before


@pytest.mark.parametrize(("content", "message"), [
    ("user,points\nu1,10\n", "no header row with an 'op' column"),
    ("op,user,points,colour\nissue,u1,10,red\n", "unknown CSV column 'colour'"),
    ("op,user,points\nissue,u1,ten\n", "line 2: 'points' must be a whole number, not 'ten'"),
    ("op,user\nissue,u1,10\n", "line 2: more cells than header columns"),
])
def test_malformed_csv_files(program: Cli, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ops.csv"
    path.write_text(content)
    before = snapshot(program.url)
    result = program("batch", str(path))
    assert result.exit_code == 2 and message in result.error, result
    assert snapshot(program.url) == before


def test_bad_invocations(program: Cli, tmp_path: Path) -> None:
    assert "no such file" in program("batch", str(tmp_path / "missing.jsonl")).error
    (tmp_path / "ops.txt").write_text("")
    assert "--input-format" in program("batch", str(tmp_path / "ops.txt")).error
    assert program("batch", "-").exit_code == 2
    assert program("batch", str(tmp_path / "ops.txt"), "--chunk-size", "0").exit_code == 2
    (tmp_path / "latin1.jsonl").write_bytes(b'{"op": "activity", "user": "J\xf6rg"}\n')
    result = program("batch", str(tmp_path / "latin1.jsonl"))
    assert result.exit_code == 2 and "is not UTF-8 text" in result.error


def test_standard_input_and_csv_clamp(program: Cli, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = "op,user,points,source,clamp\nissue,u1,150,Ride,true\nissue,u2,150,Ride,false\n"
    result = program("batch", "-", "--input-format", "csv", input=data)
    assert result.exit_code == 1
    assert "Applied 1 of 2 operations" in result.stderr and "stdin.rejects.jsonl" in result.stderr
    assert program.json("balance", "u1")["accounts"][0]["balance"] == 100  # type: ignore[index]
    assert json.loads(Path("stdin.rejects.jsonl").read_text())["line"] == 3


def test_dry_run_reports_refusals_and_changes_nothing(program: Cli, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ops.jsonl", MIXED)
    before = snapshot(program.url)
    result = program("batch", str(path), "--dry-run", "--chunk-size", "3")
    assert result.exit_code == 1
    assert "Would apply 12 of 16 operations (1 replayed); 4 refused" in result.stderr
    assert "nothing was changed (dry run)" in result.stderr
    rejects = Path(f"{path}.rejects.jsonl").read_text().splitlines()
    assert [json.loads(line)["line"] for line in rejects] == REFUSED_LINES
    assert snapshot(program.url) == before


def test_all_applied_exits_0_and_leaves_no_rejects_file(program: Cli, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ops.jsonl", [
        {"op": "issue", "user": f"u{i}", "points": 10, "source": "Base", "account": "Core"}
        for i in range(25)])
    Path(f"{path}.rejects.jsonl").write_text("from an earlier run\n")
    result = program("batch", str(path), "--chunk-size", "10")
    assert result.exit_code == 0, result
    assert "Applied 25 of 25 operations (0 replayed)" in result.stderr
    assert not Path(f"{path}.rejects.jsonl").exists()


# --- crash and resume -----------------------------------------------------------------------

def _count(url: str, table: str) -> int:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def _batch_process(url: str, path: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "POINTCTL_NOW": NOW, "POINTCTL_ACTOR": "tester"}
    return subprocess.Popen([sys.executable, "-m", "pointctl", "--db", url, "batch", str(path),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def resume_file(count: int) -> list[dict[str, Any]]:
    """A mixed file whose outcomes depend on the state: reversals of issues further down the
    file (refused where they stand), a restricted source with little inventory, a max
    balance, spends that overdraw an account without negative balances; every line keyed."""
    ops: list[dict[str, Any]] = []
    for i in range(count):
        user = f"cust-{i % 40}"
        day = f"2026-04-{1 + i * 28 // count:02d}T10:00:00Z"
        kind = i % 10
        if kind in (0, 1, 2, 3):
            op: dict[str, Any] = {"op": "issue", "user": user, "points": 5 + i % 7,
                                  "source": "Base", "account": "Core", "reference_id": f"o-{i}"}
        elif kind == 4:
            op = {"op": "issue", "user": user, "points": 30, "source": "Ride", "at": day}
        elif kind == 5:
            op = {"op": "spend", "user": user, "points": 9 + i % 5, "reference_id": f"c-{i}"}
        elif kind == 6:  # an issue ten lines further down: refused here, never later
            op = {"op": "reverse", "reference_id": f"o-{i + 14}"}
        elif kind == 7:
            op = {"op": "spend", "user": user, "points": 25, "account": "Partner"}
        elif kind == 8:
            op = {"op": "transfer", "user": user, "points": 3, "account": "Core",
                  "to_account": "Partner"}
        else:
            op = {"op": "reverse", "reference_id": f"c-{i - 4}", "points": 2}
        op["idempotency_key"] = f"k-{i}"
        ops.append(op)
    return ops


def test_killed_three_times_and_resumed_ends_exactly_as_an_uninterrupted_run(
        program: Cli, twin_url: str, tmp_path: Path) -> None:
    lines = 2000
    path = write_jsonl(tmp_path / "load.jsonl", resume_file(lines))
    for share in (15, 50, 80):  # kill -9 there, then start again with the same file
        process = _batch_process(program.url, path, "--chunk-size", "50")
        deadline = time.monotonic() + 120
        while _count(program.url, "idempotency") < lines * share // 100 and \
                time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        done = _count(program.url, "idempotency")  # every keyed line leaves a record
        assert lines * share // 100 <= done < lines, done
        assert done % 50 == 0  # whole chunks only
    again = _batch_process(program.url, path, "--chunk-size", "50", "--format", "json")
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 1, stderr  # the file has refusals
    resumed = json.loads(stdout)

    twin = Cli(twin_url)
    setup(twin)
    whole = _batch_process(twin_url, path, "--chunk-size", "50", "--format", "json")
    stdout, whole_stderr = whole.communicate(timeout=300)
    assert whole.returncode == 1, whole_stderr
    uninterrupted = json.loads(stdout)
    assert (resumed["applied"], resumed["refused"]) == (uninterrupted["applied"],
                                                        uninterrupted["refused"])
    outcomes = {row[0]: row[2] for row in _idempotency(twin_url)}
    applied_before_kill = sum("refused" not in outcomes[f"k-{i}"] for i in range(done))
    assert resumed["replayed"] == applied_before_kill
    assert ledger_state(program.url) == ledger_state(twin_url)
    assert _idempotency(program.url) == _idempotency(twin_url)
    assert program("verify").exit_code == 0

    # a second run of the finished file replays every line and changes nothing
    before = snapshot(program.url)
    third = _batch_process(program.url, path, "--chunk-size", "50", "--format", "json")
    stdout, stderr = third.communicate(timeout=300)
    assert third.returncode == 1, stderr
    replayed = json.loads(stdout)
    assert (replayed["applied"], replayed["replayed"], replayed["refused"]) == (
        uninterrupted["applied"], uninterrupted["applied"], uninterrupted["refused"])
    assert snapshot(program.url) == before


def _idempotency(url: str) -> list[tuple[Any, ...]]:
    """Every key with its request and outcome, entry and lot ids left out (sequences)."""
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT key, request_hash, result FROM idempotency"))
            return sorted((key, digest, _without_ids(json.loads(result)))
                          for key, digest, result in rows)
    finally:
        engine.dispose()


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return repr({k: _without_ids(v) for k, v in sorted(value.items())
                     if k not in ("entry", "entries", "lot", "reverses")})
    if isinstance(value, list):
        return repr([_without_ids(v) for v in value])
    return value


def test_reversing_an_entry_of_the_same_chunk_that_is_no_issue_says_what_it_is(
        program: Cli, tmp_path: Path) -> None:
    engine = create_engine(parse_url(program.url), poolclass=NullPool)
    with engine.connect() as connection:
        last = int(connection.execute(text("SELECT coalesce(max(id), 0) FROM entry"))
                   .scalar_one())
    engine.dispose()
    # ids are the next ones on both databases (a chunk takes them in order, one by one here)
    path = write_jsonl(tmp_path / "ops.jsonl", [
        {"op": "issue", "user": "u1", "points": 50, "source": "Base", "account": "Core"},
        {"op": "transfer", "user": "u1", "points": 5, "account": "Core", "to_account": "Core",
         "to_user": "u2"},
        {"op": "reverse", "entry": last + 2},
        {"op": "reverse", "entry": last + 1, "points": 10}])
    result = program("batch", str(path), "--format", "json")
    assert result.exit_code == 1
    (reject,) = [json.loads(line) for line in Path(f"{path}.rejects.jsonl").read_text()
                 .splitlines()]
    assert (reject["line"], reject["exit_code"]) == (3, 1)
    assert reject["error"] == (f"entry {last + 2} is a transfer; only issues and spends can be "
                               "reversed")
