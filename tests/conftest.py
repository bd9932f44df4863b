"""Shared fixtures and run settings of the suite's own tests.

- ``slow`` tests (the fault matrix: several full pytest runs each) and ``crash`` tests (the crash-point matrix) are
  left out unless ``-m`` names a selection, e.g. ``-m slow``; the summary counts them as deselected.
- Under pytest-xdist (``-n 2``) tests are distributed by module (``--dist loadfile``), so a module-scoped run that
  several tests read (test_acceptance_run's ``full_run``, test_rerun's ``rerun``) happens once.
- The summary gives the reason of every skip (``-rs``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Many tests start whole pytest runs of the suite. Where the environment forbids bytecode caches
# (PYTHONDONTWRITEBYTECODE), each of those processes would compile, and assertion-rewrite, every module of
# the package again (about 1.5 s of CPU each); the processes they start may keep caches (git ignores them).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

TEMPLATE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "plan-template.xlsx"
REFERENCE = TEMPLATE.parent
SIM_CHUNK = 4 * 1024   # small fisheye upload chunks for the in-process simulator tests


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("markexpr", default=""):
        return  # an explicit -m decides
    slow = [i for i in items if i.get_closest_marker("slow") or i.get_closest_marker("crash")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if i not in slow]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if "s" not in config.option.reportchars and "a" not in config.option.reportchars:
        config.option.reportchars += "s"  # say why a test skipped (e.g. no vendor template in ../shared/reference)
    if getattr(config.option, "dist", "no") == "load":  # -n's default: keep a module (and its shared runs) together
        config.option.dist = "loadfile"


@pytest.fixture(autouse=True)
def _no_sim_profiles_from_env(monkeypatch):
    """The suite's own tests choose simulator profiles explicitly: a developer's SMTX_SIM_PROFILE (or the older
    SMTX_SIM_UPLOAD_PROFILE) must not change them, nor the suite runs they start."""
    monkeypatch.delenv("SMTX_SIM_PROFILE", raising=False)
    monkeypatch.delenv("SMTX_SIM_UPLOAD_PROFILE", raising=False)


@pytest.fixture
def template_path() -> Path:
    if not TEMPLATE.exists():
        pytest.skip(f"vendor template not present at {TEMPLATE} (it lives only in the team's shared reference folder)")
    return TEMPLATE


@pytest.fixture(scope="session")
def example_plan_path(tmp_path_factory) -> Path:
    from plan.example import write_example

    return write_example(tmp_path_factory.mktemp("plan") / "example.xlsx")


# --- in-process simulator: a deployed cluster (test_sim_vms, test_sim_install) -------------------------------

@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """A four-host plan to simulate (modules that need another one define their own ``plan``)."""
    from mocks.testing import load_plan, plan_path

    p = plan_path(tmp_path_factory.mktemp("vmsplan"), hosts=4)
    if p is None:
        pytest.skip("no plan: neither plan.example nor the vendor template is available")
    return load_plan(p)


@pytest.fixture
def make_world(plan, monkeypatch):
    """A deployed cluster with a logged-in API client; simulated time then moves only with sim.advance."""
    from mocks import Simulator

    from .test_sim_fisheye import Api, deploy, host_ips

    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    owned: list = []

    def make(snapshot: dict | None = None):
        sim = Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False, snapshot=snapshot).start()
        owned.append(sim)
        if snapshot is None:
            deploy(sim, plan)
        sim.clock.time_scale = 1e6
        sim.fisheye.chunk_size = SIM_CHUNK
        api = Api(sim, host_ips(plan)[0])
        owned.append(api)
        if snapshot is None:
            assert api.setup_root().status_code == 200
        assert api.login().status_code == 200
        return sim, api

    yield make
    for o in reversed(owned):
        (o.http.close if isinstance(o, Api) else o.close)()
