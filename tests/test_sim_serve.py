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
