"""Issue 12 items 10 (the example is refused in real mode) and 11 (planned versions), issue 13 (header, preflight
folder). Nothing here contacts a non-loopback address: the real-mode run is guarded by a plugin that refuses
(and records) any such connection or ping."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plan import layout as L
from plan import versions as V
from plan.example import EXAMPLE_PROPERTY, example_marker, example_refusal, write_example

from .suite_runs import ROOT, report_of, run_suite, state_of

COMMITTED = ROOT / "examples" / "plan-example.xlsx"

# A plugin loaded with -p before anything else: any connection, datagram or ping to a non-loopback address is
# recorded and refused, so even a suite that did not refuse the example could not reach 10.x addresses.
GUARD = textwrap.dedent('''
    import ipaddress, os, socket, subprocess

    LOG = os.environ["NONET_LOG"]

    def _far(host):
        try:
            return not ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return str(host) not in ("localhost",)

    def _refuse(what):
        with open(LOG, "a", encoding="utf-8") as fh:
            fh.write(what + "\\n")
        raise OSError("nonet guard: " + what)

    _connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto

    def connect(self, address):
        if isinstance(address, tuple) and _far(address[0]):
            _refuse(f"connect {address}")
        return _connect(self, address)

    def connect_ex(self, address):
        if isinstance(address, tuple) and _far(address[0]):
            _refuse(f"connect_ex {address}")
        return _connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1]
        if isinstance(address, tuple) and _far(address[0]):
            _refuse(f"sendto {address}")
        return _sendto(self, data, *args)

    socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
    _popen_init = subprocess.Popen.__init__

    def popen_init(self, args, *a, **kw):
        if isinstance(args, (list, tuple)) and args and "ping" in os.path.basename(str(args[0])):
            _refuse(f"ping {args}")
        return _popen_init(self, args, *a, **kw)

    subprocess.Popen.__init__ = popen_init
''')


# --- item 10: the example workbook -----------------------------------------------------------------------

def test_committed_example_carries_the_marker_the_generator_writes(tmp_path):
    fresh = write_example(tmp_path / "fresh.xlsx")
    marker = example_marker(COMMITTED)
    assert marker and marker.startswith("addresses-sha256:"), f"no {EXAMPLE_PROPERTY} property in {COMMITTED}"
    assert marker == example_marker(fresh), "examples/plan-example.xlsx is stale: run python -m plan example"
    assert example_refusal(COMMITTED) is not None


def test_edited_copy_and_unmarked_workbooks_are_not_refused(tmp_path):
    from openpyxl import load_workbook

    path = write_example(tmp_path / "p.xlsx", hosts=3)
    assert example_refusal(path) is not None                 # any generated example, any host count
    wb = load_workbook(path)
    assert any(p.name == EXAMPLE_PROPERTY for p in wb.custom_doc_props)   # the property survives Excel-like saves
    wb[L.SHEET_HOSTS]["I3"] = "192.168.50.11"                # the user's own address
    wb.save(tmp_path / "edited.xlsx")
    assert example_refusal(tmp_path / "edited.xlsx") is None
    wb = load_workbook(path)
    wb.custom_doc_props.props.clear()                        # no marker: a customer's workbook
    wb.save(tmp_path / "unmarked.xlsx")
    assert example_refusal(tmp_path / "unmarked.xlsx") is None


def test_real_mode_refuses_the_example_at_configure_time_without_contact(tmp_path):
    copy = tmp_path / "plan.xlsx"
    copy.write_bytes(COMMITTED.read_bytes())
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "nonet_guard.py").write_text(GUARD, encoding="utf-8")
    log, run_dir = tmp_path / "contacts.log", tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST_", "PYTEST_ADDOPTS"))}
    env.update(NONET_LOG=str(log), PYTHONPATH=os.pathsep.join([str(tmp_path / "guard"), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "nonet_guard", "--plan", str(copy), "-m", "preflight",
                           "--run-dir", str(run_dir), "--rootdir", str(ROOT), "--config-file", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert not log.exists(), f"contacted: {log.read_text()}"
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "--simulate" in errors[0] and "plan.xlsx" in errors[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not run_dir.exists()                              # refused before a delivery folder was made


# --- item 11: versions -------------------------------------------------------------------------------------

def test_version_parsing_and_comparison():
    assert V.parse("版本:6.2.0P4") == "6.2.0P4"
    assert V.parse("cloudtower-v4.7.1.oe2003.x86_64.iso") == "4.7.1"
    assert V.parse("v1.4.2-release.20250926") == "1.4.2"
    assert V.host_version({"version": "6.2.0", "patch_version": "P4"}) == "6.2.0P4"
    assert V.same("6.2.0P4", "6.2.0P4") and V.same("6.2", "6.2.0P4") and not V.same("6.2.0P4", "6.2.0P3")
    assert not V.same("4.7.1", "4.8.0")
    found = V.package_versions(["SMTX_OS-6.2.0-P4-el7.x86_64.iso", "SMTX_VMTOOLS-3.2.0.iso", "cloudtower-v4.8.0.iso",
                                "observability-x86_64-v1.4.1-release.tar.gz", "iomesh-backup-2.2.0.tar.gz", "notes.txt"])
    assert {k: [v for _, v in items] for k, items in found.items()} == {
        "smtx_os": ["6.2.0P4"], "cloudtower": ["4.8.0"], "obs": ["1.4.1"], "backup": ["2.2.0"]}


def test_planned_versions_name_their_cells(example_plan_path):
    from plan.parse import load

    plan, _ = load(example_plan_path)
    assert [(p.key, p.ref, p.version) for p in V.planned(plan)] == [
        ("smtx_os", "主机规划!C19", "6.2.0P4"), ("cloudtower", "集群管理信息!D3", "4.7.1"),
        ("obs", "集群管理信息!D4", "1.4.1"), ("backup", "集群管理信息!D5", "2.2.0")]


@pytest.fixture(scope="module")
def version_run(tmp_path_factory):
    """One simulated run of stages 01 and 02 plus the post-deploy check, with packages whose versions differ from
    the plan (CloudTower 4.8.0 for a planned 4.7.1) and one that matches (OBS)."""
    base = tmp_path_factory.mktemp("versions")
    plan_file = write_example(base / "plan.xlsx", hosts=3, business=1)
    packages = base / "packages"
    packages.mkdir()
    for name in ("cloudtower-v4.8.0.oe2003.x86_64.iso", "observability-x86_64-v1.4.1-release.tar.gz",
                 "SMTX_VMTOOLS-3.2.0.iso"):
        (packages / name).write_bytes(b"x")
    run_dir = base / "run"
    proc = run_suite("--plan", str(plan_file), "--simulate", "--run-dir", str(run_dir), "--packages", str(packages),
                     "-m", "stage01 or stage02", "tests_deploy/test_01_prepare.py", "tests_deploy/test_02_init_cluster.py")
    proc2 = run_suite("--plan", str(plan_file), "--simulate", "--resume", str(run_dir), "--packages", str(packages),
                      "tests_deploy/test_01_prepare.py", "tests_deploy/test_02_init_cluster.py",
                      "tests_deploy/test_04_versions.py")
    return proc, proc2, run_dir


@pytest.mark.slow   # two simulated runs (version_run): the fast suite stays under 90 s
def test_preflight_warns_on_a_package_version_that_differs_naming_the_cell(version_run):
    proc, _, run_dir = version_run
    assert proc.returncode == 0, proc.stdout[-3000:]
    state = state_of(run_dir)
    assert state["steps"]["01.versions"]["outcome"] == "passed"            # a warning, never a failure
    warnings = state["outputs"]["warnings"]
    assert any("集群管理信息!D3" in w and "4.8.0" in w and "4.7.1" in w for w in warnings), warnings
    assert not any("集群管理信息!D4" in w for w in warnings), warnings     # OBS 1.4.1 matches
    assert not any("主机规划!C19" in w for w in warnings), warnings        # the hosts run 6.2.0P4 as planned
    versions = state["outputs"]["versions"]
    assert versions["packages"]["cloudtower"].startswith("cloudtower-v4.8.0")
    assert set(versions["hosts"].values()) == {"6.2.0P4"}


@pytest.mark.slow   # two simulated runs (version_run): the fast suite stays under 90 s
def test_after_deployment_the_report_shows_planned_against_deployed(version_run):
    _, proc, run_dir = version_run
    assert proc.returncode == 0, proc.stdout[-3000:]
    state = state_of(run_dir)
    assert state["steps"]["04.versions"]["outcome"] == "passed"
    assert state["outputs"]["versions"]["deployed"]["smtx_os"] == "6.2.0P4"
    _, text = report_of(run_dir)
    assert "版本 / Versions" in text and "主机规划!C19" in text and "6.2.0P4" in text
    assert "cloudtower-v4.8.0" in text                                      # the package column


def test_cloudtower_deployed_version_is_compared(tmp_path):
    """Deploy.version of the installed CloudTower (from the ISO it was installed from) against 集群管理信息!D3."""
    from mocks.server import Simulator
    from plan.parse import load

    plan, _ = load(write_example(tmp_path / "p.xlsx", hosts=3, business=0))
    with Simulator.from_plan(plan, time_scale=0.002, load_env_faults=False) as sim:
        from mocks.cloudtower.service import start

        tower = start(sim, str(plan.cloudtower.ip))
        assert tower.deploy_view()["version"] == "4.7.1"


# --- issue 13: header and preflight folder -----------------------------------------------------------------

def test_header_names_the_steps_folder_and_preflight_runs_apart(tmp_path):
    plan_file = write_example(tmp_path / "plan.xlsx", hosts=3, business=0)
    proc = run_suite("--plan", str(plan_file), "--simulate", "-m", "preflight")
    assert proc.returncode == 0, proc.stdout[-3000:]
    head = proc.stdout.split("collected", 1)[0]
    assert "testpaths: tests" not in head and "tests_deploy/" in head, head
    folder = next(line for line in proc.stdout.splitlines() if "delivery folder:" in line).split("delivery folder:")[1]
    folder = Path(folder.strip(" ="))
    try:
        assert folder.parent == ROOT / "reports" / "preflight", folder
        from fixtures.run import latest_run_dir

        latest = latest_run_dir(ROOT / "reports", json.loads((folder / "state.json").read_text())["cluster"])
        assert latest is None or latest.parent == ROOT / "reports"       # never what --resume picks
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
