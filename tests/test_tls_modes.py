"""Issue 12 item 1 (TLS), the explicit modes of a whole simulated run: ``--ca-bundle`` with the simulator's CA
(customers with their own CA) and ``--insecure`` (the explicit opt-out). Pinning, the default: tests/test_tls.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from clients.tls import PIN_FILE
from plan.example import write_example

from .suite_runs import outcomes, report_of, run_suite


@pytest.fixture(scope="module")
def suite_plan(tmp_path_factory) -> Path:
    return write_example(tmp_path_factory.mktemp("tls-modes") / "plan.xlsx", hosts=3, business=1)


@pytest.mark.slow          # whole simulated runs: in the -m slow selection (CI runs it)
def test_suite_with_the_simulators_ca_as_ca_bundle(suite_plan, tmp_path):
    ca = tmp_path / "sim-ca.pem"
    from mocks.__main__ import write_ca

    write_ca(str(ca))
    proc = run_suite("--plan", str(suite_plan), "--simulate", "--ca-bundle", str(ca), "--run-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    pins = tmp_path / "r" / PIN_FILE                              # only carried over from an earlier run, if any
    assert not pins.exists() or "first_seen" in pins.read_text(encoding="utf-8")
    _, text = report_of(tmp_path / "r")
    assert "verified against the CA bundle" in text and "presented (not pinned)" in text


def test_suite_insecure_preflight(suite_plan, tmp_path):
    proc = run_suite("--plan", str(suite_plan), "--simulate", "--insecure", "-m", "preflight",
                     "--run-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert outcomes(tmp_path / "r")["01.hosts"] == "passed"
    _, text = report_of(tmp_path / "r")
    assert "verification off (--insecure)" in text
