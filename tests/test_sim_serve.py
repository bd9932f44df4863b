"""``python -m mocks serve`` stops cleanly on SIGINT and SIGTERM and removes its temporary folder,
also when started as a background job that inherited SIGINT as ignored."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "examples" / "plan-example.xlsx"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals (Windows uses SIGBREAK/Ctrl-C)")


def _start_serving(ignore_sigint: bool) -> tuple[subprocess.Popen, Path]:
    def preexec():                                  # what `cmd &` in a non-interactive shell does
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-m", "mocks", "serve", "--plan", str(PLAN), "--time-scale", "0.01"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            preexec_fn=preexec)
    ca = None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if line.startswith("ca bundle:"):
            ca = Path(line.split(":", 1)[1].strip())
        if line.startswith("serving;") or time.monotonic() > deadline:
            break
    assert ca is not None and ca.exists(), "the server did not print its CA bundle"
    return proc, ca.parent


@pytest.mark.parametrize("sig,ignore_sigint", [(signal.SIGTERM, False), (signal.SIGINT, True),
                                               (signal.SIGHUP, False)])
def test_serve_stops_cleanly_and_removes_its_folder(sig, ignore_sigint):
    proc, workdir = _start_serving(ignore_sigint)
    try:
        assert workdir.is_dir()
        os.kill(proc.pid, sig)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "stopping" in rest
    assert not workdir.exists(), f"{workdir} was left behind"


def test_serve_prints_one_address_table_without_its_control_endpoint():
    proc = subprocess.Popen([sys.executable, "-m", "mocks", "serve", "--plan", str(PLAN), "--time-scale", "0.01",
                             "--preset", "cluster-deployed"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving;"):
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    out = "".join(lines)
    assert out.count("ADDRESS ") == 1, out                       # one table, also with a preset
    ping = next(line for line in lines if line.startswith("ping only"))
    assert "_sim" not in ping
    assert "Host: " in out and "ssh -p " in out


def test_a_port_probe_of_ssh_logs_no_error(caplog):
    import logging
    import socket

    from mocks import Simulator
    from mocks.testing import load_plan

    caplog.set_level(logging.DEBUG)
    with Simulator.from_plan(load_plan(PLAN), load_env_faults=False) as sim:
        host = str(sim.hosts[0].mgmt_ip)
        _, port = sim.local(host, 22)
        for _ in range(3):                                    # what the suite's reachability checks do
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "port probe" not in caplog.text:
            time.sleep(0.05)
    assert "port probe" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("mocks")], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Error reading SSH protocol banner" not in caplog.text
