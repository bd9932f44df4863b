"""Issue 11 item 9, through the real outputs: a run under ``pytest -vv -l`` whose plan holds a password with a
backslash, both quote kinds, a space, ``%``, ``&<>`` and Chinese characters leaks it nowhere (terminal,
junit.xml, report.html, run.log, state.json, evidence/, simulator state) in any encoding."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from openpyxl import load_workbook

from plan import layout as L
from plan.example import write_example

from .suite_runs import bundle_texts, run_suite

NASTY = 'P@ss w\\rd"\'%&<>中文'


def encodings(s: str) -> dict[str, str]:
    """Independent of clients.redact on purpose: the forms a leak would take."""
    b = s.encode("utf-8")
    tail = s.partition(" ")[2]
    forms = {
        "raw": s, "repr": repr(s)[1:-1], "repr-dq": s.replace("\\", "\\\\").replace('"', '\\"'),
        "ascii": ascii(s)[1:-1], "bytes": repr(b)[2:-1],
        "json": json.dumps(s)[1:-1], "json-unicode": json.dumps(s, ensure_ascii=False)[1:-1],
        "json-of-repr": json.dumps(repr(s))[2:-2],
        "quote": quote(s), "quote-all": quote(s, safe=""), "quote_plus": quote_plus(s),
        "html": html.escape(s), "html-noquote": html.escape(s, quote=False),
        "html-of-repr": html.escape(repr(s)[1:-1]), "html-of-json": html.escape(json.dumps(s, ensure_ascii=False)),
        "base64": base64.b64encode(b).decode(),
        "basic-root": base64.b64encode(b"root:" + b).decode(), "basic-admin": base64.b64encode(b"ADMIN:" + b).decode(),
        # what pprint (-vv -l) prints of it split after the space
        **({"tail-repr": repr(tail)[1:-1], "tail-raw": tail} if tail else {}),
    }
    return {k: v for k, v in forms.items() if len(v) >= 6}


# a whole simulated run under -vv -l: in the -m slow selection (CI runs it after the fast command)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nasty_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("nasty")
    plan = write_example(base / "plan.xlsx", hosts=4, business=3)
    wb = load_workbook(plan)
    hosts = wb[L.SHEET_HOSTS]
    hosts[L.CLUSTER["admin_password"]] = NASTY                      # fisheye root: login bodies, locals
    hosts[f"{L.HOST_COLS['bmc_password']}{L.HOST_ROWS.start}"] = NASTY  # IPMI accounts: the failing step's body
    wb.save(plan)
    run_dir = base / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("SMTX_SIM_FAULTS", json.dumps([{"id": "ipmi-500", "method": "POST",
                                               "path": "/api/v2/ipmi/upsert_accounts", "status": 500}]))
    try:
        proc = run_suite("--plan", str(plan), "--simulate", "--run-dir", str(run_dir), "-vv", "-l", timeout=400)
    finally:
        mp.undo()
    return proc, run_dir


def test_the_run_shows_locals_of_a_failed_step(nasty_run):
    proc, run_dir = nasty_run
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "03.ipmi" in json.dumps(json.loads((run_dir / "state.json").read_text(encoding="utf-8"))["steps"])
    assert "valid_plan = " in proc.stdout          # -l printed the locals (the plan with its passwords)


def test_no_encoding_of_the_password_reaches_any_output(nasty_run):
    proc, run_dir = nasty_run
    outputs = {"terminal": proc.stdout + proc.stderr}
    outputs |= {str(p.relative_to(run_dir)): p.read_bytes().decode("utf-8", errors="replace")
                for p in Path(run_dir).rglob("*") if p.is_file()}
    assert {"junit.xml", "report.html", "run.log", "state.json"} <= set(outputs)
    bundles = list(Path(run_dir).glob("handover-*.zip"))   # issue 18: the handover bundle, member by member
    assert len(bundles) == 1, bundles
    outputs |= {f"{bundles[0].name}:{name}": text for name, text in bundle_texts(bundles[0]).items()}
    assert any(".no-passwords.xlsx/" in name for name in outputs)   # the blanked workbook, part by part
    assert any(k.startswith("evidence") for k in outputs)
    leaks = [(where, name) for where, text in outputs.items() for name, form in encodings(NASTY).items()
             if form in text]
    assert leaks == []
