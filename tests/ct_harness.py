"""The CloudTower steps (stages 05 and 06) called one by one, in process, against one simulator: what the plugin's
fixtures would hand them, built by hand (tests/test_stage05.py, tests/test_stage06.py)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator, TypeVar

import pytest

from clients.addressing import AddressMap
from clients.base import TlsMode
from clients.cloudtower import CloudTowerClient
from clients.poll import Pacing, WaitTimeout
from fixtures.run import Evidence, RunState
from fixtures.steps import Step
from mocks.presets import apply_preset
from mocks.server import Simulator

from .suite_runs import load_steps

S05 = load_steps("test_05_attach", "_ct_harness_05_")
# the run's options as the plugin's defaults give them (--attach-timeout, --server-height, --rack-height)
RUN_DEFAULTS = {"attach_timeout_min": 10, "server_height_u": 2, "rack_height_u": None}
NEXT = "下一步 / next:"      # what a failure tells the operator to do next


class Harness:
    """A run's state, evidence, pacing and logged-in CloudTower client around ``sim``; ``options`` override the
    run's options (``RUN_DEFAULTS``). Stage 05's steps are its methods."""

    def __init__(self, sim: Simulator, plan, tmp_path: Path, **options):
        self.sim, self.plan = sim, plan
        self.state = RunState.create(tmp_path, plan_path=tmp_path / "plan.xlsx", plan_sha256="0" * 64, cluster="c",
                                     mode="simulate")
        self.run = SimpleNamespace(plan=plan, state=self.state, evidence=Evidence(tmp_path), run_dir=tmp_path,
                                   **{**RUN_DEFAULTS, **options})
        self.lines: list[str] = []
        self.pacing = Pacing(scale=sim.clock.time_scale, progress_every=0.0, echo=self.lines.append)
        amap = AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)
        self.ct = CloudTowerClient(str(plan.cloudtower.ip), amap=amap, tls=TlsMode(True, sim.ca_bundle))
        self.ct.login()

    @property
    def tower(self):
        return self.sim.state.cloudtower.towers[str(self.plan.cloudtower.ip)]

    def step(self, sid: str) -> Step:
        return Step(sid, self.run)

    def org(self):
        S05.test_organization(self.plan, self.ct, self.state, self.step("05.org"))

    def datacenter(self):
        S05.test_datacenter(self.plan, self.ct, self.state, self.step("05.datacenter"), self.pacing)

    def connect(self, plan=None):
        S05.test_connect_cluster(plan or self.plan, self.ct, self.run, self.state, self.step("05.connect"),
                                 self.pacing)

    def hosts(self):
        S05.test_cluster_hosts(self.plan, self.ct, self.run, self.state, self.step("05.cluster"), self.pacing)

    def attach(self, *, hosts: bool = True):
        """Stage 05 as the run would do it (on ``cluster-attached`` it finds everything and publishes the ids)."""
        self.org()
        self.datacenter()
        self.connect()
        if hosts:
            self.hosts()
        return self

    def notes(self, sid: str) -> str:
        return "\n".join(self.run.evidence.notes.get(sid, []))

    def close(self):
        self.ct.close()


H = TypeVar("H", bound=Harness)


@contextmanager
def simulators(monkeypatch) -> Iterator[Callable[..., Simulator]]:
    """``build(plan, *profiles, preset=...)``: a simulator of ``plan`` fast-forwarded by ``preset``, serving on
    loopback (fast pacing; no faults or profile from the environment); all closed after."""
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    monkeypatch.delenv("SMTX_SIM_PROFILE", raising=False)
    owned: list[Simulator] = []

    def build(plan, *profiles: str, preset: str, time_scale: float = 0.0005) -> Simulator:
        """``time_scale``: wall seconds per simulated second (a test racing a simulated delay wants more)."""
        sim = Simulator.from_plan(plan, time_scale=time_scale, load_env_faults=False,
                                  profiles=list(profiles)).start()
        owned.append(sim)
        apply_preset(sim, preset)
        return sim

    try:
        yield build
    finally:
        for sim in owned:
            sim.close()


@contextmanager
def harnesses(tmp_path: Path, cls: type[H] = Harness) -> Iterator[Callable[..., H]]:
    """``make(sim, plan, name="run", **options)``: a ``cls`` harness in ``tmp_path / name``; all closed after."""
    owned: list[H] = []

    def make(sim: Simulator, plan, name: str = "run", **options) -> H:
        h = cls(sim, plan, tmp_path / name, **options)
        owned.append(h)
        return h

    try:
        yield make
    finally:
        for h in owned:
            h.close()


def fail_once(sim: Simulator, path: str, msg: str) -> None:
    """A fault: the next POST to ``path`` fails (``operation: fail``) with ``msg``."""
    sim.faults.add({"method": "POST", "path": path, "times": 1, "action": {"operation": "fail", "msg": msg}})


@contextmanager
def fails_clearly(pattern: str) -> Iterator[pytest.ExceptionInfo]:
    """The block fails with an AssertionError matching ``pattern`` that says what to do next (``NEXT``)."""
    with pytest.raises(AssertionError, match=pattern) as info:
        yield info
    assert NEXT in str(info.value), str(info.value)


def gives_up_at_the_limit(h: Harness, step: Callable[[], object], *needles: str, progress: str) -> None:
    """``step()`` ends in a WaitTimeout whose text names every one of ``needles`` (the last state, the option, the
    limit); ``progress`` stood in the progress lines while it waited."""
    with pytest.raises(WaitTimeout) as exc:
        step()
    text = str(exc.value)
    assert all(n in text for n in needles), text
    assert any(progress in line for line in h.lines), "progress lines while waiting"
