"""Helpers for tests that run the acceptance suite itself (real pytest processes against the simulator)."""
from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_suite(*args: str, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m pytest ARGS`` from the suite folder, as a user would type it (never as an xdist worker);
    ``env``: variables added for this run (e.g. ``SMTX_SIM_FAULTS``)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST_", "PYTEST_ADDOPTS"))},
           **(env or {})}
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, encoding="utf-8", env=env)


def state_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text(encoding="utf-8"))


def report_of(run_dir: Path) -> tuple[dict, str]:
    """pytest-html keeps its data in a JSON blob; returns (data, the whole report as readable text)."""
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="([^"]*)"', page).group(1)))
    return blob, page + json.dumps(blob, ensure_ascii=False)


def outcomes(run_dir: Path) -> dict[str, str]:
    return {k: v["outcome"] for k, v in state_of(run_dir)["steps"].items()}


def leaks(run_dirs, secrets) -> list[tuple[str, str]]:
    """(file, secret) for every secret found in any file the runs left behind."""
    secrets = {s for s in secrets if s}
    files = [p for d in run_dirs for p in Path(d).rglob("*") if p.is_file()]
    assert files, "no output to check"
    return [(str(p), s[:4] + "…") for p in files for s in secrets
            if s in p.read_bytes().decode("utf-8", errors="replace")]


def bundle_texts(bundle: Path) -> dict[str, str]:
    """Every member of a handover bundle as text; a zip member (the blanked .xlsx) part by part, as
    ``member/part``, so a secret in any of them shows in a plain ``in``."""
    import io
    import zipfile

    out = {}
    with zipfile.ZipFile(bundle) as z:
        for name in z.namelist():
            data = z.read(name)
            if data[:2] == b"PK":
                with zipfile.ZipFile(io.BytesIO(data)) as inner:
                    out |= {f"{name}/{part}": inner.read(part).decode("utf-8", errors="replace")
                            for part in inner.namelist()}
            else:
                out[name] = data.decode("utf-8", errors="replace")
    return out


def simulator(plan_file: Path):
    """A simulator of ``plan_file`` on loopback, fast pacing, no faults from the environment."""
    from mocks.server import Simulator
    from plan.parse import load

    plan, _ = load(plan_file)
    return Simulator.from_plan(plan, time_scale=0.002, load_env_faults=False)


REPORT_RESULT = {"passed": "Passed", "failed": "Failed", "error": "Error", "blocked": "Skipped", "skipped": "Skipped",
                 "not_applicable": "Skipped"}


def step_state(step: dict) -> tuple[str, str]:
    from fixtures.report import step_state as words

    return words(step)


def disagreements(run_dir: Path) -> list[tuple[str, str, list[str]]]:
    """(step, outcome in state.json, results in report.html) for every step of the last run where they differ."""
    state = state_of(run_dir)
    data, _ = report_of(run_dir)
    run_no = len(state["runs"])
    out = []
    for sid, step in state["steps"].items():
        if step.get("run") != run_no:
            continue
        rows = data["tests"].get(step["nodeid"], [])
        results = [row["result"] for row in rows]
        want = REPORT_RESULT.get(step["outcome"])
        if want not in results or (step["outcome"] == "passed" and set(results) != {"Passed"}):
            out.append((sid, step["outcome"], results))
            continue
        # the state column says the same in words (通过 / 失败 / 被 X 阻塞 / 不适用 / 沿用上次结果)
        words = html.escape(step_state(step)[1], quote=False)
        if not all(f">{words}</td>" in "".join(row["resultsTableRow"]) for row in rows if row["result"] == want):
            out.append((sid, step["outcome"], [words]))
    return out


def load_steps(name: str, prefix: str = "_steps_"):
    """A step module of tests_deploy/ (e.g. ``"test_03_config_cluster"``) imported under a private name, so a
    test can call one step function against a simulator without a whole pytest run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{prefix}{name}", ROOT / "tests_deploy" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
