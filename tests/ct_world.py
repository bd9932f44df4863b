"""The simulated CloudTower at ``cloudtower-ready`` (stages 01-04 done), shared by the simulator tests of stages 05
and 06 (test_sim_cloudtower_attach, test_sim_cloudtower_config): a three-host plan, a snapshot of the world at the
preset, and logged-in :class:`Tower` clients on simulators started from it."""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import pytest

from mocks import Simulator
from mocks.presets import apply_preset
from mocks.testing import load_plan, plan_path

from .test_sim_cloudtower import Tower

T = TypeVar("T", bound=Tower)


def three_host_plan(folder: str):
    """The module fixture ``plan``: a three-host plan written in a temporary ``folder`` (skipped without a plan to
    build from): ``plan = three_host_plan(...)``."""
    @pytest.fixture(scope="module")
    def plan(tmp_path_factory):
        p = plan_path(tmp_path_factory.mktemp(folder), hosts=3)
        if p is None:
            pytest.skip("no plan: neither plan.example nor the vendor template is available")
        return load_plan(p)

    return plan


def preset_snapshot(plan, preset: str) -> tuple[dict, dict]:
    """(the world's snapshot, the preset's summary) after ``preset`` on a fresh simulator of ``plan``."""
    with Simulator.from_plan(plan, load_env_faults=False, profiles=[]) as sim:
        summary = apply_preset(sim, preset)
        return sim.snapshot(), summary


def ready_fixtures(folder: str):
    """The module fixtures ``plan`` (:func:`three_host_plan`) and ``ready`` (the world's snapshot after
    ``cloudtower-ready``): ``plan, ready = ready_fixtures(...)``."""
    @pytest.fixture(scope="module")
    def ready(plan):
        """A snapshot of the world after the ``cloudtower-ready`` preset (stages 01-04 done)."""
        return preset_snapshot(plan, "cloudtower-ready")[0]

    return three_host_plan(folder), ready


@contextmanager
def towers(plan, ready: dict, monkeypatch, *, cls: type[T] = Tower, time_scale: float = 0.01) -> Iterator[Callable[..., T]]:
    """``tower(profiles=None)`` -> a logged-in ``cls`` client (``tower``: CloudTower's model, ``plan``) on a
    simulator started from the snapshot ``ready`` at ``time_scale`` (no faults from the environment); all closed
    after."""
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    owned: list = []

    def make(profiles=None) -> T:
        sim = Simulator.from_plan(plan, time_scale=time_scale, load_env_faults=False, profiles=profiles or [],
                                  snapshot=json.loads(json.dumps(ready))).start()
        owned.append(sim)
        t = cls(sim, str(plan.cloudtower.ip))
        owned.append(t)
        assert t.login().status_code == 200
        t.tower, t.plan = sim.state.cloudtower.tower(t.ip), plan
        return t

    try:
        yield make
    finally:
        for o in reversed(owned):
            (o.http.close if isinstance(o, Tower) else o.close)()
