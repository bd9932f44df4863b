"""Issue 11 item 11 (part): a password-protected .xlsx, an old .xls and a bad SMTX_SIM_FAULTS rule are each
one clear error, never "File is not a zip file" or a traceback per step."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mocks.faults import Faults
from plan.parse import PlanReadError, load

from .suite_runs import ROOT, run_suite

FREE, END, FATSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD


def compound_file(path: Path, streams: list[str]) -> Path:
    """A minimal Compound File (the container of .xls and of Office-encrypted .xlsx) holding empty streams."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + struct.pack(
        "<HHHHH6sIIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, bytes(6), 0, 1, 1, 0, 4096, END, 0, END, 0, 0)
    header += struct.pack("<108I", *[FREE] * 108)
    fat = struct.pack("<128I", FATSECT, END, *[FREE] * 126)

    def entry(name: str, kind: int, child: int = FREE, right: int = FREE) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0"
        return (raw.ljust(64, b"\0") + struct.pack("<HBBIII", len(raw), kind, 1, FREE, right, child)
                + bytes(16) + struct.pack("<I", 0) + bytes(16) + struct.pack("<IQ", END, 0))

    entries = [entry("Root Entry", 5, child=1)]
    entries += [entry(n, 2, right=(i + 2 if i + 1 < len(streams) else FREE)) for i, n in enumerate(streams)]
    directory = b"".join(entries).ljust(512, b"\0")
    path.write_bytes(header + fat + directory)
    return path


@pytest.fixture
def encrypted(tmp_path):
    return compound_file(tmp_path / "plan.xlsx", ["EncryptionInfo", "EncryptedPackage"])


@pytest.fixture
def old_xls(tmp_path):
    return compound_file(tmp_path / "plan.xls", ["Workbook", "\x05SummaryInformation"])


def test_password_protected_workbook_is_named(encrypted):
    with pytest.raises(PlanReadError) as exc:
        load(encrypted)
    msg = str(exc.value)
    assert "password-protected workbook: save it unprotected" in msg and "受密码保护" in msg
    assert msg.index("受密码保护") < msg.index("password-protected")          # Chinese first
    assert "zip" not in msg and "\n" not in msg


def test_old_xls_is_named(old_xls, tmp_path):
    for path in (old_xls, tmp_path / "renamed.xlsx"):
        if path != old_xls:
            path.write_bytes(old_xls.read_bytes())   # an .xls renamed to .xlsx is still an .xls
        with pytest.raises(PlanReadError) as exc:
            load(path)
        msg = str(exc.value)
        assert "old .xls format: save as .xlsx" in msg and "另存为 .xlsx" in msg and "zip" not in msg


def test_other_junk_still_says_it_cannot_read(tmp_path):
    bad = tmp_path / "plan.xlsx"
    bad.write_text("not a zip")
    with pytest.raises(PlanReadError, match="无法读取规划表"):
        load(bad)


def test_validate_cli_prints_one_line(encrypted):
    proc = subprocess.run([sys.executable, "-m", "plan", "validate", str(encrypted)], cwd=ROOT,
                          capture_output=True, text=True, encoding="utf-8", timeout=60)
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0 and "password-protected workbook" in out
    assert "Traceback" not in out and "zip" not in out


def test_acceptance_run_refuses_an_encrypted_workbook(encrypted, tmp_path):
    proc = run_suite("--plan", str(encrypted), "--simulate", "--run-dir", str(tmp_path / "run"), timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]
    assert "password-protected workbook: save it unprotected" in out and "Traceback" not in out


# --- SMTX_SIM_FAULTS --------------------------------------------------------------------------------------

@pytest.mark.parametrize("rules, needles", [
    ([{"path": "/x", "status": 500}, {"id": "second", "path": "/y", "status": "boom"}],
     ["#2", "second", "status", "'boom'"]),
    ([{"path": "/x", "staus": 500}], ["#1", "staus"]),
    ([{"path": "^(", "status": 500}], ["#1", "path", "regular expression"]),
    ([{"path": "/x", "nth": 0, "status": 500}], ["#1", "nth"]),
    ("[{not json", ["not valid JSON"]),
])
def test_bad_rule_is_one_value_error_naming_rule_and_field(rules, needles, monkeypatch):
    from mocks.faults import parse_rules, usage_error

    text = rules if isinstance(rules, str) else json.dumps(rules)
    with pytest.raises(ValueError) as exc:
        parse_rules(text)
    for n in needles:
        assert n in str(exc.value), str(exc.value)
    monkeypatch.setenv("SMTX_SIM_FAULTS", text)
    problem = usage_error()
    assert problem and problem.startswith("模拟器故障规则无效") and "SMTX_SIM_FAULTS" in problem
    faults = Faults()
    with pytest.raises(ValueError, match="SMTX_SIM_FAULTS"):
        faults.load_env()
    assert len(faults) == 0          # all or nothing


def test_good_rules_are_no_usage_error(monkeypatch):
    from mocks.faults import usage_error

    monkeypatch.setenv("SMTX_SIM_FAULTS", json.dumps([{"path": "/x", "status": 500}]))
    assert usage_error() is None
    monkeypatch.delenv("SMTX_SIM_FAULTS")
    assert usage_error() is None


def test_acceptance_run_reports_a_bad_fault_rule_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SMTX_SIM_FAULTS", json.dumps([{"id": "oops", "path": "/api/*", "status": "500"}]))
    proc = run_suite("--plan", str(ROOT / "examples" / "plan-example.xlsx"), "--simulate",
                     "--run-dir", str(tmp_path / "run"), timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-3000:]
    assert out.count("invalid simulator fault rule") == 1 and "oops" in out and "status" in out
    assert "Traceback" not in out and "ValueError" not in out and not (tmp_path / "run" / "state.json").exists()


# --- resume input, --simulator, SMTX_SIM_PROFILE: one usage error each ----------------------------------------

PLAN = ROOT / "examples" / "plan-example.xlsx"


def _state(run_dir: Path, content=None) -> Path:
    """A delivery folder of the example plan: a real run state (generation 1), or ``content`` as state.json."""
    from fixtures.run import RunState

    run_dir.mkdir(parents=True, exist_ok=True)
    if content is not None:
        (run_dir / "state.json").write_text(content, encoding="utf-8")
        return run_dir
    plan, _ = load(PLAN)
    RunState.create(run_dir, plan_path=PLAN, plan_sha256=plan.sha256, cluster=plan.cluster_name,
                    mode="simulated").save()
    return run_dir


@pytest.mark.parametrize("content, needle", [
    ("[]", "it holds a JSON list, not an object"),
    ("{}", "it is an empty object"),
    ('{"plan": {"sha256": "x"}, "runs": [], "steps": [], "outputs": {}}', "'steps' is missing or malformed"),
    ('{"plan": {"sha256": "x"}, "runs": [1], "steps": {}, "outputs": {}}', "a run, step or intent record"),
])
def test_a_state_that_is_not_a_run_state_is_refused_by_name(tmp_path, content, needle):
    from fixtures.run import ResumeError, RunState

    with pytest.raises(ResumeError) as exc:
        RunState.load(_state(tmp_path / "r", content), plan_sha256="x")
    msg = str(exc.value)
    assert needle in msg and "不是本套件的运行状态" in msg and "--resume" in msg
    assert "SHA-256" not in msg.replace("the plan's SHA-256 is missing", "")   # never "the plan changed"


@pytest.mark.parametrize("world, needle", [
    ("garbage{", "JSONDecodeError"),
    ('{"generation": 1, "restore": {"bogus": 1}}', "does not restore"),
    ('{"generation": 1, "version": 1, "restore": {"families": {}}}', "does not restore"),
])
def test_a_corrupt_saved_world_is_refused_by_name(tmp_path, world, needle):
    from fixtures.session import _open_world
    from fixtures.run import RunState

    run_dir = _state(tmp_path / "r")
    (run_dir / "simulator-state.json").write_text(world, encoding="utf-8")
    plan, _ = load(PLAN)
    state = RunState.load(run_dir, plan_sha256=plan.sha256)
    with pytest.raises(pytest.UsageError) as exc:
        _open_world(run_dir, state, plan, resume=True)
    msg = str(exc.value)
    assert "模拟世界文件已损坏" in msg and "corrupt" in msg and needle in msg and "\n" not in msg


def test_a_fresh_saved_world_still_resumes(tmp_path):
    from fixtures.session import _open_world
    from fixtures.run import RunState

    run_dir = _state(tmp_path / "r")
    (run_dir / "simulator-state.json").write_text('{"generation": 1, "fresh": true}', encoding="utf-8")
    plan, _ = load(PLAN)
    world = _open_world(run_dir, RunState.load(run_dir, plan_sha256=plan.sha256), plan, resume=True)
    assert world.snapshot is None and world.generation == 1


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "ftp://127.0.0.1:1", "127.0.0.1:1", "http://[::1"])
def test_simulator_url_off_loopback_is_refused_without_contact(url, monkeypatch):
    from fixtures import session
    import mocks.remote

    monkeypatch.setattr(mocks.remote, "RemoteSimulator", lambda *a, **k: pytest.fail("contacted " + url))
    problem = session.simulator_url_problem(url)
    assert problem and "--simulator" in problem and "loopback" in problem and "\n" not in problem


def test_simulator_url_with_nothing_answering_is_one_line():
    from fixtures.session import simulator_url_problem

    problem = simulator_url_problem("http://127.0.0.1:9")
    assert problem and "no simulator answers at http://127.0.0.1:9" in problem and "\n" not in problem


@pytest.mark.parametrize("case", ["state-list", "simulator-url", "profile"])
def test_acceptance_run_refuses_bad_input_in_one_line(case, tmp_path, monkeypatch):
    """A bad input is one usage error (exit 4): no INTERNALERROR, no traceback, no step, nothing created."""
    run_dir = tmp_path / "r"
    args = ["--plan", str(PLAN), "--simulate", "--run-dir", str(run_dir)]
    if case == "state-list":
        _state(run_dir, "[]")
        args = ["--plan", str(PLAN), "--simulate", "--resume", str(run_dir)]
        needle = "is not a run state of this suite (it holds a JSON list, not an object)"
    elif case == "simulator-url":
        args = ["--plan", str(PLAN), "--simulator", "http://192.0.2.10:8080", "--run-dir", str(run_dir)]
        needle = "--simulator takes the control URL of a simulator on loopback"
    else:
        monkeypatch.setenv("SMTX_SIM_PROFILE", "no-such-profile")
        needle = "bad simulator profile: SMTX_SIM_PROFILE: unknown simulator profile 'no-such-profile'"
    proc = run_suite(*args, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-3000:]
    assert out.count(needle) == 1, out[-3000:]
    assert "INTERNALERROR" not in out and "Traceback" not in out and "passed" not in out
    assert case == "state-list" or not run_dir.exists()
