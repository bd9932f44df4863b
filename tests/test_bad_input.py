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
