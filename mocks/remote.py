"""How the suite gets a simulator: in-process, or attached to a standalone ``python -m mocks serve``.

``attach_or_start(run)`` is what ``fixtures/plugin.py`` calls in simulate mode:

* ``run.simulator_url`` set (``--simulator CONTROL_URL``): a :class:`RemoteSimulator` talking to
  that simulator's control endpoint (loopback only);
* otherwise an in-process :class:`mocks.server.Simulator` seeded from ``run.plan``, with
  ``run.time_scale`` and ``run.deploy_token``, already started.

  The suite's runs carry a :class:`SimWorld` (``run.world``): the world is saved in
  ``<run-dir>/simulator-state.json`` with *every* write of state.json, under the same generation
  counter (a SIGKILL leaves a pair that belongs together), and a resume continues exactly the world
  of the state it resumes -- its jobs, deployments and installs go on from where they were. A resume
  whose world is missing or of another generation is refused (:class:`WorldMismatch`), never
  continued in a fresh world. Without ``run.world`` (a bare namespace) the older behaviour stays:
  continue ``simulator-state.json`` when ``run.resumed``, save it when the simulator closes.

Both offer the surface the suite uses: ``address_map``, ``is_alive(address)``, ``ca_bundle``,
``control_url``, ``deploy_token``, ``set_up(...)``, ``count(...)``, ``close()``.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from clients.addressing import is_loopback
from clients.files import atomic_write_text, temp_beside

from .deployment.models import DEFAULT_DEPLOY_TOKEN
from .server import Simulator

log = logging.getLogger("mocks")

STATE_FILE = "simulator-state.json"
PREVIOUS_FILE = "simulator-state.prev.json"    # the pair before: kept while the next state.json is written


def attach_or_start(run: Any):
    url = getattr(run, "simulator_url", None)
    if url:
        return RemoteSimulator(url)
    world = getattr(run, "world", None)
    if isinstance(world, SimWorld):
        sim = Simulator.from_plan(run.plan, time_scale=float(getattr(run, "time_scale", 0.01) or 0.01),
                                  deploy_token=getattr(run, "deploy_token", None) or DEFAULT_DEPLOY_TOKEN,
                                  snapshot=world.snapshot)
        if world.snapshot is not None:
            log.info("simulator: continuing the world of generation %s saved in %s", world.generation, world.path)
        world.bind(sim)
        sim.close_hooks.append(lambda s: world.unbind())
        return sim.start()
    run_dir = getattr(run, "run_dir", None)
    path = Path(run_dir) / STATE_FILE if run_dir else None
    snapshot = load_state(path) if path is not None and getattr(run, "resumed", False) else None
    sim = Simulator.from_plan(run.plan, time_scale=float(getattr(run, "time_scale", 0.01) or 0.01),
                              deploy_token=getattr(run, "deploy_token", None) or DEFAULT_DEPLOY_TOKEN,
                              snapshot=snapshot)
    if snapshot is not None:
        log.info("simulator: continuing the world saved in %s", path)
    if path is not None:
        sim.close_hooks.append(lambda s: save_state(s, path))
    return sim.start()


def load_state(path: Path) -> dict | None:
    """The snapshot saved in ``path``, or None when there is none. A file that is not a snapshot
    raises ``ValueError`` (a resumed run must not silently continue in a fresh world)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the simulator state {path}: {exc}; delete it to start a fresh "
                         f"simulated world") from exc
    if not isinstance(data, dict) or "restore" not in data:
        raise ValueError(f"{path} is not a simulator snapshot; delete it to start a fresh simulated world")
    return data


def save_state(sim: Simulator, path: Path) -> None:
    """Write ``sim.snapshot()`` to ``path`` atomically, through the suite's redactor as a last guard
    (the snapshot itself holds no password or token)."""
    text = json.dumps(sim.snapshot(), ensure_ascii=False, indent=1)
    try:
        from clients.redact import REDACTOR
        text = REDACTOR.text(text)
    except ImportError:            # the simulator used outside the suite
        pass
    atomic_write_text(Path(path), text)


class WorldMismatch(ValueError):
    """A resume's saved world is missing, unreadable, or of another generation than its state.json."""


class SimWorld:
    """The simulated world of one delivery folder, saved with every write of the run's state.json.

    ``save(generation)`` (called by ``RunState.save`` before it writes state.json) writes the bound
    simulator's snapshot -- or, before a simulator runs, the world the run started from -- to
    ``simulator-state.json`` with that generation; the file it replaces is kept as
    ``simulator-state.prev.json`` until the next write, so a kill between the two writes still leaves
    a world of the state's generation. ``SimWorld.load(run_dir, generation)`` finds it again.
    """

    def __init__(self, run_dir: Path, snapshot: dict | None = None, generation: int = 0):
        self.path = Path(run_dir) / STATE_FILE
        self.previous = Path(run_dir) / PREVIOUS_FILE
        self.snapshot = snapshot          # the world while no simulator is bound (None: a fresh world)
        self.generation = generation
        self.sim: Simulator | None = None

    @classmethod
    def load(cls, run_dir: Path, generation: int) -> "SimWorld":
        run_dir = Path(run_dir)
        found = []
        for path in (run_dir / STATE_FILE, run_dir / PREVIOUS_FILE):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                found.append("?")
                continue
            gen = data.get("generation") if isinstance(data, dict) else None
            found.append(str(gen))
            if gen == generation and (data.get("fresh") or "restore" in data):
                return cls(run_dir, None if data.get("fresh") else data, generation)
        have = f"其代数为 / it has generation {', '.join(found)}" if found else "文件不存在 / there is none"
        raise WorldMismatch(
            f"模拟世界与 state.json（第 {generation} 代）不对应，{have}：不能在新世界中续跑，请去掉 --resume 重新开始 / "
            f"the simulated world of {run_dir} does not match its state.json (generation {generation}; {have}): "
            f"a resume never continues in a fresh world; start a new run without --resume")

    def bind(self, sim: Simulator) -> None:
        self.sim = sim

    def unbind(self) -> None:
        """The simulator closes: keep its last state for any later write of state.json."""
        if self.sim is not None:
            self.snapshot, self.sim = self._take(), None

    def _take(self) -> dict | None:
        if self.sim is None:
            return self.snapshot
        for attempt in range(5):     # the simulator's threads may change a table under the snapshot
            try:
                return self.sim.snapshot(inspect=False)
            except RuntimeError:
                if attempt == 4:
                    raise
        return None

    def save(self, generation: int) -> None:
        snap = self._take()
        doc = {**snap, "generation": generation} if snap is not None else {"generation": generation, "fresh": True}
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        text = _guard(text)
        fd, tmp = temp_beside(self.path)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(text.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            if self.path.exists():
                os.replace(self.path, self.previous)
            os.replace(tmp, self.path)   # state.json, written next in this folder, fsyncs the folder
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.generation = generation


def _guard(text: str) -> str:
    """The snapshot holds no password or token; the suite's redactor is the last guard, run in full only
    when a registered secret does appear (it costs tens of milliseconds on a whole world)."""
    try:
        from clients.redact import REDACTOR
    except ImportError:            # the simulator used outside the suite
        return text
    if any(secret in text for secret in REDACTOR.secrets):
        return REDACTOR.text(text)
    return text


class RemoteSimulator:
    """Client of a standalone simulator's control endpoint (see ``mocks/control.py``)."""

    def __init__(self, control_url: str, *, timeout: float = 10.0):
        base = control_url.rstrip("/")
        if base.endswith("/_sim"):
            base = base[: -len("/_sim")]
        host = urlsplit(base).hostname or ""
        if not is_loopback(host):
            raise ValueError(f"the simulator control URL must be on loopback, got {control_url}")
        self.control_url = base
        self._http = httpx.Client(base_url=base, timeout=timeout)
        info = self._get("/_sim/map")
        self.address_map: dict[tuple[str, int, str], tuple[str, int]] = {
            (a, int(p), proto): (h, int(lp)) for a, p, proto, h, lp in info["address_map"]}
        self.deploy_token: str = info.get("deploy_token") or DEFAULT_DEPLOY_TOKEN
        self.time_scale: float = float(info.get("time_scale") or 1.0)
        fd, self.ca_bundle = tempfile.mkstemp(prefix="smtx-sim-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as fh:
            r = self._http.get("/_sim/ca")
            r.raise_for_status()
            fh.write(r.content)

    def _get(self, path: str, **params) -> Any:
        r = self._http.get(path, params=params or None)
        r.raise_for_status()
        return r.json()

    def is_alive(self, address: str) -> bool:
        return bool(self._get("/_sim/alive", address=str(address))["alive"])

    def set_up(self, address: str, port: int | None = None, up: bool = True, *, proto: str | None = None) -> None:
        r = self._http.post("/_sim/endpoints", json={"address": str(address), "port": port, "up": up, "proto": proto})
        r.raise_for_status()

    def count(self, method: str | None = None, path: str | None = None, status: int | None = None,
              address: str | None = None) -> int:
        params = {k: v for k, v in (("method", method), ("path", path), ("status", status), ("address", address))
                  if v is not None}
        return len(self._get("/_sim/requests", **params)["requests"])

    def snapshot(self) -> dict:
        return self._get("/_sim/state")

    def add_fault(self, rule: dict) -> list[dict]:
        r = self._http.post("/_sim/faults", json=rule)
        r.raise_for_status()
        return r.json()["rules"]

    def clear_faults(self) -> None:
        self._http.delete("/_sim/faults").raise_for_status()

    def fisheye_control(self, **changes) -> dict:
        """``revoke_tokens=True``, ``break_bmc=ip``, ``repair_bmc=ip``, ``chunk_size=n``, ``session_ttl=s``."""
        r = self._http.post("/_sim/fisheye", json=changes)
        r.raise_for_status()
        return r.json()

    def uploads(self) -> list[dict]:
        """SVT upload accounting (per-chunk receive counts and digests)."""
        return self._get("/_sim/fisheye/uploads")["uploads"]

    def close(self) -> None:
        """Detach (the standalone simulator keeps running)."""
        self._http.close()
        try:
            os.unlink(self.ca_bundle)
        except OSError:
            pass

    def __enter__(self) -> RemoteSimulator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
