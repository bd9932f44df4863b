"""The CloudTower family: bring a simulated CloudTower up at an IP of the simulated network.

    from mocks.cloudtower.service import start
    tower = start(sim, "10.0.20.220")                       # fresh: not set up (guide §04 from the top)
    tower = start(sim, ip, setup={"organization": "C89", "root_password": "HC!r0cks"})   # already set up
    tower = start(sim, ip, warmup=120)                      # 443 accepts, answers 503 for 120 simulated s
    sim.state.cloudtower.tower(ip) is tower

The installer announces ``tower_ready`` when the CloudTower install finishes; this family reacts with
:func:`start`: it creates the tower for ``ip`` (one per IP; calling again returns the same tower),
mounts the https app on ``(ip, 443)`` and the http->https redirect on ``(ip, 80)`` -- the endpoints
the plan already put in the address map, down -- and brings both up.

Snapshots: the family exports every tower; on restore its ``import_state`` re-creates the towers and
re-mounts their apps on the saved IPs; the snapshot's endpoint states then bring 443/80 up as they were.
"""
from __future__ import annotations

from typing import Any

from ..family import Family
from ..hub import normalize_address
from .models import CloudTowerFamily as Towers
from .models import CloudTowerModel
from .responses import CloudTowerApp, HttpRedirectApp
from .smtx import SmtxSource

FAMILY = "cloudtower"
ROLE = "cloudtower"


class CloudTowerService(Family):
    """Every simulated CloudTower, by IP (model: the towers). Reacts to ``tower_ready``."""

    name = FAMILY

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.model = Towers()
        self.model.factory = lambda ip: CloudTowerModel(ip, sim.clock, secrets=sim.requests.secrets,
                                                        smtx=SmtxSource(sim))
        self.model.attach = lambda tower, up: attach(sim, tower, up=up)

    def attach(self) -> None:
        self.sim.events.on("tower_ready", self._on_tower_ready)

    def _on_tower_ready(self, ip: str, setup: dict | None = None, warmup: float = 0.0) -> None:
        start(self.sim, ip, setup=setup, warmup=warmup)


def _towers(sim: Any) -> Towers:
    return sim.family(FAMILY).model


def _apps(tower: CloudTowerModel) -> tuple[CloudTowerApp, HttpRedirectApp]:
    apps = getattr(tower, "_apps", None)
    if apps is None:
        apps = (CloudTowerApp(tower), HttpRedirectApp(tower.ip))
        tower._apps = apps
    return apps


def attach(sim: Any, tower: CloudTowerModel, *, up: bool = True) -> None:
    """Mount the tower's apps on ``(ip, 443)`` (https) and ``(ip, 80)`` (http); bring them up when ``up``.
    An IP the plan does not simulate gets the two endpoints added to the address map."""
    https, http = _apps(tower)
    for port, scheme, app in ((443, "https", https), (80, "http", http)):
        sim.hub.add_tcp(tower.ip, port, scheme=scheme, apps=[app], up=False, role=ROLE)
        if up:
            sim.set_up(tower.ip, port, True, proto="tcp")


def start(sim: Any, ip: str, *, setup: dict | None = None, warmup: float = 0.0) -> CloudTowerModel:
    """Bring the CloudTower at ``ip`` up (https 443 + http 80) and return its model.

    ``setup``: ``{"organization": name, "root_password": "HC!r0cks"}`` -- the tower is already set up
    (root user with that password, the organization; optional ``"ntp_service_url": "a,b"``).
    ``warmup``: simulated seconds during which 443 accepts connections but answers 503 (field note)."""
    ip = normalize_address(ip)
    fam = _towers(sim)
    with fam.lock:
        tower = fam.towers.get(ip)
        if tower is None:
            tower = fam.new_tower(ip)
            fam.towers[ip] = tower
    if setup:
        tower.preset(setup)
    if warmup:
        tower.set_warmup(warmup)
    attach(sim, tower, up=True)
    return tower


def stop(sim: Any, ip: str) -> None:
    """The CloudTower VM goes away (powered off): its 443 and 80 stop accepting. Its state is kept;
    :func:`start` brings it back."""
    ip = normalize_address(ip)
    for port in (443, 80):
        if sim.hub.endpoint(ip, port, "tcp") is not None:
            sim.set_up(ip, port, False, proto="tcp")
