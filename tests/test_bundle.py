"""Issue 18, the handover bundle and its "Also" items:

- ``handover-<cluster>-<UTC date>.zip`` after a simulated run: members as listed, SHA256SUMS verifies, the workbook
  only as a copy with every password cell blank (other cells intact), no secret in any member in any encoding;
- the blanked copy of a workbook that keeps its text in shared strings (as Excel saves it);
- what a bare ``--resume`` continues (the newest run of this cluster, same mode, not preflight-only; a passed run:
  nothing to resume);
- a long wait's progress lines reach the terminal under ``-q`` (not only run.log).
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from fixtures.bundle import MANIFEST, bundle_name, verify
from fixtures.session import resumable_run, run_passed
from plan import layout as L
from plan.example import write_example
from plan.parse import load
from plan.writeback import PASSWORD_CELLS, blanked_copy

from .suite_runs import ROOT, bundle_texts, run_suite
from .test_redaction_run import NASTY, encodings


def bundle_leaks(bundle: Path, secrets) -> list[tuple[str, str, str]]:
    """(member, secret's head, encoding) for every encoding of every secret found in any member of ``bundle``."""
    texts = bundle_texts(bundle)
    return [(where, s[:3] + "…", name) for s in secrets for where, text in texts.items()
            for name, form in encodings(s).items() if form in text]


# --- one simulated run (stages 01-02), -q, with progress lines every 0.2 s ------------------------------------------

@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("bundle")
    plan_file = write_example(base / "plan.xlsx", hosts=3, business=0,
                              overrides={(L.SHEET_HOSTS, L.CLUSTER["admin_password"]): NASTY})
    run_dir = base / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("SMTX_PROGRESS_EVERY", "0.2")
    try:
        t0 = time.monotonic()
        proc = run_suite("--plan", str(plan_file), "--simulate", "-m", "stage01 or stage02", "-q",
                         "--run-dir", str(run_dir), timeout=180)
        took = time.monotonic() - t0
    finally:
        mp.undo()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    plan, _ = load(plan_file)
    return proc, run_dir, plan, took


def the_bundle(run_dir: Path) -> Path:
    bundles = sorted(run_dir.glob("handover-*.zip"))
    assert len(bundles) == 1, bundles
    return bundles[0]


def test_bundle_exists_with_its_members_and_a_manifest_that_verifies(short_run):
    proc, run_dir, plan, _ = short_run
    bundle = the_bundle(run_dir)
    assert bundle.name == bundle_name(plan.cluster_name)
    assert f"交付包 / handover bundle: {bundle}" in proc.stdout
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        as_built = json.loads(z.read("as-built.json"))
    assert names[:3] == ["report.html", "junit.xml", "as-built.json"] and names[-1] == MANIFEST, names
    assert any(n.startswith("evidence/") for n in names)
    assert {n for n in names if n.startswith("evidence/")} == \
        {p.relative_to(run_dir).as_posix() for p in (run_dir / "evidence").rglob("*") if p.is_file()}
    workbooks = [n for n in names if n.endswith(".xlsx")]
    assert workbooks == ["plan.no-passwords.xlsx"], names          # the blanked copy only, never plan.xlsx
    assert not {"state.json", "run.log", "known_hosts", "tls_pins.json", "simulator-state.json"} & set(names)
    assert verify(bundle) == []
    with zipfile.ZipFile(bundle) as z:   # the hook order: the final report.html and junit.xml, as on disk
        for name in ("report.html", "junit.xml"):
            assert z.read(name) == (run_dir / name).read_bytes(), name
    assert as_built and json.dumps(as_built)                         # machine-readable
    assert "已清空全部密码单元格" in (run_dir / "report.html").read_text(encoding="utf-8")   # the report says so


def test_manifest_catches_a_changed_member(short_run, tmp_path):
    _, run_dir, _, _ = short_run
    bundle = the_bundle(run_dir)
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(changed, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info, data + b" " if info.filename == "junit.xml" else data)
    assert verify(changed) == ["junit.xml"]


def test_bundled_workbook_has_blank_password_cells_and_every_other_cell_intact(short_run, tmp_path):
    _, run_dir, plan, _ = short_run
    with zipfile.ZipFile(the_bundle(run_dir)) as z:
        (tmp_path / "b.xlsx").write_bytes(z.read("plan.no-passwords.xlsx"))
    full, blank = load_workbook(run_dir / "plan.xlsx"), load_workbook(tmp_path / "b.xlsx")
    pw = set(PASSWORD_CELLS)
    for sheet, ref in pw:
        assert blank[sheet][ref].value in (None, ""), (sheet, ref)
    assert full[L.SHEET_HOSTS][L.CLUSTER["admin_password"]].value == NASTY     # the delivery copy keeps them
    changed = [(ws.title, c.coordinate) for ws in full.worksheets for row in ws.iter_rows() for c in row
               if (ws.title, c.coordinate) not in pw and blank[ws.title][c.coordinate].value != c.value]
    assert changed == []
    assert blank[L.SHEET_HOSTS][L.CLUSTER["vip"]].value == str(plan.vip)


def test_no_secret_in_any_member_of_the_bundle(short_run):
    _, run_dir, plan, _ = short_run
    assert NASTY in plan.secrets()
    assert bundle_leaks(the_bundle(run_dir), plan.secrets()) == []


def test_progress_lines_reach_the_terminal_under_q(short_run):
    """The cause: the terminal writer writes to file descriptor 1, which pytest's capture redirects while a step
    runs, so the lines landed in the step's captured output. Now capture is suspended around each line."""
    proc, run_dir, _, took = short_run
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[02.deploy]") and "已用 / elapsed" in ln]
    assert lines, proc.stdout[-3000:]
    assert all("上限 limit" in ln for ln in lines)
    assert "已用 / elapsed" in (run_dir / "run.log").read_text(encoding="utf-8")
    assert took < 60


# --- the blanked copy of a shared-strings workbook ------------------------------------------------------------------

def _shared_strings_workbook(path: Path) -> Path:
    """A minimal package as Excel writes it: cells refer to shared strings (t="s")."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    strings = ["ADMIN", "Bmc#Secret1", "node-01", "Root#Secret2", "Cluster#Pw3"]
    row3 = ('<c r="F3" t="s"><v>0</v></c><c r="G3" t="s" s="0"><v>1</v></c><c r="H3" t="s"><v>2</v></c>'
            '<c r="M3" t="s"><v>3</v></c>')
    row4 = '<c r="F4" t="s"><v>0</v></c><c r="G4" t="s"><v>0</v></c><c r="H4" t="s"><v>1</v></c>'
    row19 = '<c r="M19" t="s"><v>4</v></c>'
    parts = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                               'content-types"/>',
        "_rels/.rels": f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                       f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/>'
                       f'</Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets><sheet name="{L.SHEET_HOSTS}" '
                           f'sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels":
            f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><sheetData><row r="3">{row3}</row>'
                                    f'<row r="4">{row4}</row><row r="19">{row19}</row></sheetData></worksheet>',
        "xl/sharedStrings.xml": f'<sst xmlns="{main}" count="{len(strings)}" uniqueCount="{len(strings)}">'
                                + "".join(f"<si><t>{s}</t></si>" for s in strings) + "</sst>",
    }
    with zipfile.ZipFile(path, "w") as z:
        for name, text in parts.items():
            z.writestr(name, text)
    return path


def test_blanked_copy_empties_shared_strings_used_only_by_password_cells(tmp_path):
    src = _shared_strings_workbook(tmp_path / "excel.xlsx")
    before = src.read_bytes()
    dst = blanked_copy(src, tmp_path / "blank.xlsx")
    assert src.read_bytes() == before                          # the source is only read
    with zipfile.ZipFile(dst) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        sst = z.read("xl/sharedStrings.xml").decode()
    assert '<c r="G3" s="0"/>' in sheet and '<c r="M3"/>' in sheet and '<c r="M19"/>' in sheet
    assert '<c r="G4"/>' in sheet and '<c r="H3" t="s"><v>2</v></c>' in sheet
    # H4 (not a password cell) still shows "Bmc#Secret1": that string stays; the others leave the file
    assert "Root#Secret2" not in sst and "Cluster#Pw3" not in sst and "Bmc#Secret1" in sst
    assert sst.count("<si>") == 5 and "ADMIN" in sst and "node-01" in sst   # indices unchanged; F3/F4 keep ADMIN


# --- what a bare --resume continues ----------------------------------------------------------------------------------

def _state(base: Path, name: str, *, cluster="C1", mode="simulated", selection: str | None = "", exitstatus=1,
           steps=None, age=0.0) -> Path:
    run_dir = base / f"{cluster}-{name}"
    run_dir.mkdir(parents=True)
    run = {"started": "x", "ended": "y", "exitstatus": exitstatus}
    if selection is not None:
        run["selection"] = selection
    steps = steps if steps is not None else {"01.plan": {"outcome": "passed"}, "02.deploy": {"outcome": "failed"}}
    path = run_dir / "state.json"
    path.write_text(json.dumps({"cluster": cluster, "mode": mode, "runs": [run], "steps": steps}), encoding="utf-8")
    t = time.time() - 1000 + age
    os.utime(path, (t, t))
    return run_dir


def test_bare_resume_skips_preflight_only_and_other_mode_runs(tmp_path):
    failed = _state(tmp_path, "1-failed", age=1)
    _state(tmp_path, "2-preflight", selection="preflight", exitstatus=0,
           steps={"01.plan": {"outcome": "passed"}}, age=2)
    _state(tmp_path, "3-stage01", selection=" stage01 ", exitstatus=0, steps={"01.plan": {"outcome": "passed"}}, age=3)
    _state(tmp_path, "4-old-preflight", selection=None, exitstatus=0, steps={"01.plan": {"outcome": "passed"}}, age=4)
    _state(tmp_path, "5-real", mode="real", age=5)
    _state(tmp_path, "6-other-cluster", cluster="C10", age=6)
    assert resumable_run(tmp_path, "C1", "simulated") == failed
    assert resumable_run(tmp_path, "C1", "real") == tmp_path / "C1-5-real"
    assert resumable_run(tmp_path, "C2", "simulated") is None


def test_a_passed_run_has_nothing_to_resume_but_a_passed_selection_does(tmp_path):
    steps = {"01.plan": {"outcome": "passed"}, "02.deploy": {"outcome": "passed"},
             "03.ipmi": {"outcome": "not_applicable"}}
    assert run_passed(_state(tmp_path, "green", exitstatus=0, steps=steps))
    assert not run_passed(_state(tmp_path, "part", exitstatus=0, steps=steps, selection="stage01 or stage02"))
    assert not run_passed(_state(tmp_path, "red", exitstatus=1))


@pytest.mark.slow
def test_bare_resume_continues_the_failed_run_not_a_later_preflight_one(tmp_path):
    """Whole runs: a failed run, then ``-m stage01`` (preflight-only, in reports/<cluster>-*), then a bare --resume
    continues the failed run to green; one more bare --resume says there is nothing to resume (exit 0)."""
    cluster = f"T-{uuid.uuid4().hex[:8]}"
    names = {(L.SHEET_NET, L.NET_CLUSTER_NAME): cluster, (L.SHEET_HOSTS, L.HOSTS_CLUSTER_NAME): cluster,
             (L.SHEET_MGMT, L.MGMT_CLUSTER_NAME): cluster}
    plan_file = write_example(tmp_path / "plan.xlsx", hosts=3, business=0, overrides=names)
    base = ROOT / "reports"
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("SMTX_SIM_FAULTS", json.dumps([{"id": "deploy-500", "method": "POST",
                                                  "path": "/api/v2/deployment/cluster", "status": 500}]))
        first = run_suite("--plan", str(plan_file), "--simulate", "-m", "stage01 or stage02", "-q")
        mp.delenv("SMTX_SIM_FAULTS")
        assert first.returncode == 1, first.stdout[-3000:]
        failed = resumable_run(base, cluster, "simulated")
        assert failed is not None
        time.sleep(1.1)
        pre = run_suite("--plan", str(plan_file), "--simulate", "-m", "stage01", "-q")
        assert pre.returncode == 0, pre.stdout[-3000:]
        again = run_suite("--plan", str(plan_file), "--simulate", "-m", "stage01 or stage02", "--resume", "-q")
        assert again.returncode == 0, again.stdout[-3000:]
        assert f"delivery folder: {failed}" in again.stdout
        done = run_suite("--plan", str(plan_file), "--simulate", "--resume", "-q")
        assert done.returncode == 0, done.stdout[-3000:]
        assert "nothing to resume" not in done.stdout + done.stderr   # stages 03-07 were never run: they go on
        last = run_suite("--plan", str(plan_file), "--simulate", "--resume", "-q")
        assert last.returncode == 0 and "nothing to resume" in last.stdout + last.stderr, last.stdout[-2000:]
        assert "没有需要续跑的内容" in last.stdout + last.stderr
    finally:
        mp.undo()
        for d in base.glob(f"{cluster}-*"):
            shutil.rmtree(d, ignore_errors=True)
        for d in (base / "preflight").glob(f"{cluster}-*"):
            shutil.rmtree(d, ignore_errors=True)
