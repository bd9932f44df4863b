"""How the suite gets a simulator: in-process, or attached to a standalone ``python -m mocks serve``.

``attach_or_start(run)`` is what ``fixtures/plugin.py`` calls in simulate mode:

* ``run.simulator_url`` set (``--simulator CONTROL_URL``): a :class:`RemoteSimulator` talking to
  that simulator's control endpoint (loopback only);
* otherwise an in-process :class:`mocks.server.Simulator` seeded from ``run.plan``, with
  ``run.time_scale`` and ``run.deploy_token``, already started. When ``run.resumed`` and
  ``run.run_dir / "simulator-state.json"`` exists, the world continues from that snapshot; when the
  simulator is closed its snapshot is written there (through the suite's redactor), so the next
  resumed run finds the same cluster (deployed hosts, fisheye settings, VDSes, VIP up, ...).

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

from .deployment.models import DEFAULT_DEPLOY_TOKEN
from .server import Simulator

log = logging.getLogger("mocks")

STATE_FILE = "simulator-state.json"


def attach_or_start(run: Any):
    url = getattr(run, "simulator_url", None)
    if url:
        return RemoteSimulator(url)
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
