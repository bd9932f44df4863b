"""Check the handover report by looking at it: the reports of a green, a failed and a resumed simulated run are
rendered in headless Chromium (pytest-html builds its step table with JavaScript) and the DOM is asserted on.

Outside CI the test skips when no Chromium is installed; with ``CI=true`` a missing browser fails (``.ci/run``
installs the Debian package ``chromium``)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from plan.example import write_example

from .suite_runs import run_suite, state_of

pytestmark = pytest.mark.slow   # three whole runs and three browser renderings (~45 s)

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
NOISE = ("127.0.0.1", "object at 0x", "site-packages")
VDS_FAULT = json.dumps([{"method": "POST", "path": "/api/v2/network/vds", "action": {"status": 500}}])
OPERATOR = "测试工程师"


def _browser() -> str:
    found = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if found is None:
        why = f"no headless browser ({', '.join(BROWSERS)}) on PATH: the report's DOM cannot be checked"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI: {why}; .ci/run installs the Debian package chromium")
        pytest.skip(f"{why} (apt-get install chromium; in CI this is a failure)")
    return found


def render(report: Path) -> str:
    """The DOM after the page's scripts ran (headless Chromium, --dump-dom)."""
    browser = _browser()
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             "--virtual-time-budget=5000", "--dump-dom", report.resolve().as_uri()],
            capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


class Dom(HTMLParser):
    """Just enough of the DOM: text by element id / class, the state cells, the links, the order of ids."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.text: dict[str, list[str]] = {}      # "#id" / ".class" -> text inside
        self.attrs_by_id: dict[str, dict] = {}
        self.states: list[str] = []
        self.hrefs: list[str] = []
        self.order: list[str] = []
        self._state: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if a.get("id"):
            self.attrs_by_id[a["id"]] = a
            self.order.append(a["id"])
        if tag == "td" and "step-state" in (a.get("class") or "").split():
            self._state = []
        if tag not in ("br", "input", "img", "meta", "link", "source", "hr"):
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        if tag == "td" and self._state is not None:
            self.states.append("".join(self._state).strip())
            self._state = None
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._state is not None:
            self._state.append(data)
        for _, a in self.stack:
            keys = [f"#{a['id']}"] if a.get("id") else []
            keys += [f".{c}" for c in (a.get("class") or "").split()]
            for k in keys:
                self.text.setdefault(k, []).append(data)

    def of(self, key: str) -> str:
        return " ".join(" ".join(self.text.get(key, [])).split())


def _flat(text: str) -> str:
    return " ".join(str(text).split())


WORDS = {"passed": r"^通过( / passed|（第 \d+ 次运行）/ passed \(attempt \d+\))$", "failed": r"^失败 / failed$",
         "error": r"^失败 / failed$", "not_applicable": r"^不适用 / not applicable$",
         "blocked": r"^被 (?P<dep>\S+) 阻塞 / blocked by (?P=dep)$"}
CARRIED = r"^沿用上次结果（第 \d+ 次运行通过）/ carried over \(passed in attempt \d+\)$"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, Dom, str]]:
    _browser()
    base = tmp_path_factory.mktemp("dom")
    # no business networks: 03.vds and 03.vlans are not applicable in the green run
    green_plan = write_example(base / "green.xlsx", hosts=4, business=0)
    plan = write_example(base / "plan.xlsx", hosts=4, business=3)
    out: dict[str, Path] = {"green": base / "green", "failed": base / "failed", "resumed": base / "resumed"}
    proc = run_suite("--plan", str(green_plan), "--simulate", "--run-dir", str(out["green"]), "--operator", OPERATOR)
    assert proc.returncode == 0, proc.stdout[-3000:]
    proc = run_suite("--plan", str(plan), "--simulate", "--run-dir", str(out["failed"]), "--operator", OPERATOR,
                     env={"SMTX_SIM_FAULTS": VDS_FAULT})
    assert proc.returncode == 1, proc.stdout[-3000:]
    shutil.copytree(out["failed"], out["resumed"])
    proc = run_suite("--plan", str(plan), "--simulate", "--resume", str(out["resumed"]), "--operator", OPERATOR)
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = {}
    for name, run_dir in out.items():
        page = render(run_dir / "report.html")
        result[name] = (run_dir, Dom(page), page)
    return result


@pytest.mark.parametrize("name, verdict", [("green", "passed"), ("failed", "failed"), ("resumed", "passed")])
def test_verdict_banner_says_the_result_with_counts(runs, name, verdict):
    run_dir, dom, _ = runs[name]
    assert dom.attrs_by_id["verdict"]["data-verdict"] == verdict
    word = {"passed": "通过 / passed", "failed": "未通过 / failed"}[verdict]
    text = dom.of("#verdict")
    assert f"验收结论 / Verdict: {word}" in text
    steps = [s for s in state_of(run_dir)["steps"].values() if s["run"] == len(state_of(run_dir)["runs"])]
    assert f"共 {len(steps)} 个步骤" in text and f"{len(steps)} steps" in text
    assert dom.order.index("verdict") < dom.order.index("results-table"), "the verdict comes first"


@pytest.mark.parametrize("name", ["green", "failed", "resumed"])
def test_every_step_state_is_in_words_and_agrees_with_state_json(runs, name):
    run_dir, dom, _ = runs[name]
    state = state_of(run_dir)
    steps = [s for s in state["steps"].values() if s["run"] == len(state["runs"])]
    assert len(dom.states) == len(steps)
    for rec, words in zip(steps, dom.states):
        pattern = CARRIED if rec.get("replayed") else WORDS[rec["outcome"]]
        assert re.match(pattern, words), (rec["nodeid"], rec["outcome"], words)
        assert "Skipped" not in words and "('" not in words
        if rec["outcome"] == "blocked":
            assert rec["blocked_by"] in words
    seen = {re.sub(r"[（ ].*", "", w) for w in dom.states}
    want = {"green": {"通过", "不适用"}, "failed": {"通过", "失败", "被"}, "resumed": {"通过", "沿用上次结果"}}[name]
    assert want <= seen, seen


def test_each_failure_shows_its_cause_and_next_action(runs):
    run_dir, dom, _ = runs["failed"]
    failed = {sid: s for sid, s in state_of(run_dir)["steps"].items() if s["outcome"] in ("failed", "error")}
    assert "03.vds" in failed
    table = dom.of(".as-built")
    for sid, rec in failed.items():
        assert rec["cause"] and rec["next"]
        assert _flat(rec["cause"]) in table and _flat(rec["next"]) in table, sid
        # and in the step's own row (cause box), with the traceback as an evidence file, not as text
        assert _flat(rec["cause"]) in dom.of(".step-cause") and _flat(rec["next"]) in dom.of(".step-cause")
        assert list((run_dir / "evidence" / sid).glob("traceback-run*.txt")), sid
    assert "Traceback" not in dom.of("#results-table") and "def test_" not in dom.of("#results-table")


@pytest.mark.parametrize("name", ["green", "failed", "resumed"])
def test_evidence_links_resolve_to_files_in_the_delivery_folder(runs, name):
    run_dir, dom, _ = runs[name]
    local = [h for h in dom.hrefs if not h.startswith(("http:", "https:", "#", "mailto:"))]
    assert not [h for h in local if h.startswith("data:")], "no data: URIs (blank tabs in Chrome and Edge)"
    evidence = [h for h in local if h.startswith("evidence/")]
    assert len(evidence) >= 20, evidence
    for href in local:
        parts = urlsplit(href)
        assert not parts.scheme and not href.startswith("/"), href
        target = (run_dir / unquote(parts.path)).resolve()
        assert target.is_file() and run_dir.resolve() in target.parents, href


def test_the_resumed_report_keeps_the_history(runs):
    run_dir, dom, _ = runs["resumed"]
    text = dom.of("#attempts")
    assert "运行记录 / Attempts" in text
    assert "首次 / first" in text and "续跑 / resumed" in text and "03.vds" in text
    state = state_of(run_dir)
    for r in state["runs"]:
        assert r["started"] in text and r["ended"] in text
    # a carried-over step links the evidence of the attempt it passed in
    deploy = state["steps"]["02.deploy"]
    assert deploy["replayed"] and deploy["passed_run"] == 1
    assert "evidence/02.deploy/deploy-payload.json" in dom.hrefs


@pytest.mark.parametrize("name", ["green", "failed", "resumed"])
def test_sign_off_section_at_the_end(runs, name):
    _, dom, _ = runs[name]
    text = dom.of("#signoff")
    for word in ("验收签字 / Sign-off", "客户 / Customer", "示例客户", "交付工程师 / Delivery engineer", OPERATOR,
                 "日期 / Date", "客户代表签字 / Customer signature"):
        assert word in text, word
    assert dom.order.index("signoff") > dom.order.index("results-table")


@pytest.mark.parametrize("name", ["green", "failed", "resumed"])
def test_no_noise_in_the_page(runs, name):
    """Nothing of the machine that ran it: no loopback ports, no reprs, no installed packages' paths, no local
    path of the delivery folder, no third-party or simulator log lines (the whole DOM, the page's data included)."""
    run_dir, _, page = runs[name]
    for noise in (*NOISE, str(run_dir), str(run_dir.resolve()), "paramiko", "mocks.", "INFO     "):
        assert noise not in page, noise


def test_as_built_says_not_done_where_the_step_did_not_pass(runs):
    _, dom, _ = runs["failed"]
    table = dom.of(".as-built")
    assert "未完成 / not done" in table   # the business networks (03.vlans blocked)
    _, dom, _ = runs["green"]
    assert "未完成 / not done" not in dom.of(".as-built")
    assert "许可证到期 / License expires" in dom.of(".as-built") and "SMTX OS" in dom.of(".as-built")


def test_print_is_a4(runs, tmp_path):
    run_dir, _, _ = runs["failed"]
    pdf = tmp_path / "report.pdf"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                        "--no-pdf-header-footer", "--virtual-time-budget=5000", f"--print-to-pdf={pdf}",
                        (run_dir / "report.html").resolve().as_uri()], capture_output=True, timeout=120)
    boxes = set(re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes()))
    assert boxes and all(abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2 for w, h in boxes), boxes


def _print_rules(css: str) -> str:
    """The body of the stylesheet's ``@media print`` block (without ``@page``): applied as screen rules, the page
    lays out as it prints."""
    start = css.index("@media print")
    i, depth = css.index("{", start) + 1, 1
    j = i
    while depth:
        depth += {"{": 1, "}": -1}.get(css[j], 0)
        j += 1
    return re.sub(r"@page\s*\{[^}]*\}", "", css[i:j - 1])


def test_printed_tables_fit_the_a4_page(runs):
    """No table wider than the printable width of A4 (210 mm less the 12 mm margins: 186 mm, 703 px at 96 dpi): the
    report is laid out at that width with its print rules applied, and every table is measured."""
    run_dir, _, _ = runs["green"]
    css = (run_dir / "report.html").read_text(encoding="utf-8")
    sheet = next(Path(__file__).resolve().parents[1].glob("fixtures/report.css")).read_text(encoding="utf-8")
    probe = ("<style>" + _print_rules(sheet) + "</style><script>window.addEventListener('load', () => setTimeout(() => {"
             "const w = document.documentElement.clientWidth; const out = [];"
             "document.querySelectorAll('table, svg').forEach((t, n) => { const r = t.getBoundingClientRect();"
             "if (r.width > 0 && (r.right > w + 1 || t.scrollWidth > Math.ceil(r.width) + 1))"
             " out.push([n, t.className, Math.round(r.right), t.scrollWidth]); });"
             "const pre = document.createElement('pre'); pre.id = 'fit'; pre.textContent = JSON.stringify({w, out});"
             "document.body.appendChild(pre); }, 500));</script>")
    page = run_dir / "report-print-probe.html"
    page.write_text(css.replace("</head>", probe + "</head>", 1), encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.run(
                [_browser(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                 "--window-size=703,1000", "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
                capture_output=True, text=True, encoding="utf-8", timeout=120)
    finally:
        page.unlink()
    m = re.search(r'<pre id="fit">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert m, proc.stderr[-2000:]
    fit = json.loads(m.group(1).replace("&quot;", '"'))
    assert 650 <= fit["w"] <= 710, fit["w"]
    assert fit["out"] == [], f"tables or charts wider than the page (index, class, right edge px, scroll width px): " \
                            f"{fit['out']}"


def test_the_performance_charts_are_inline_svg_with_titles(runs):
    """Stage 10's charts (IOPS, throughput, latency) are in the page itself: inline <svg> with a <title>, nothing
    fetched, so the report stays one self-contained file that prints."""
    _, dom, page = runs["green"]
    charts = re.findall(r"<svg\b.*?</svg>", page, re.DOTALL)
    assert len(charts) >= 3, len(charts)
    for svg in charts[:3]:
        assert re.search(r"<title>[^<]+</title>", svg) and "href" not in svg and "url(" not in svg
    assert "IOPS" in charts[0] and "MB/s" in charts[1] and "p99.9" in charts[2]
