"""The :class:`Simulator` facade: core + API families + the world seeded from a plan.

    from mocks import Simulator
    with Simulator.from_plan(plan, time_scale=0.01) as sim:
        local = sim.address_map[("10.0.20.11", 443, "tcp")]      # -> ("127.0.0.1", 40123)
        httpx.get(f"https://127.0.0.1:{local[1]}/api/v2/deployment/host",
                  headers={"x-smartx-token": sim.deploy_token}, verify=ssl_ctx(sim.ca_bundle))
        assert sim.count("POST", "/api/v2/deployment/cluster", status=200) == 0
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable

from .clock import SimClock
from .cloudtower.service import CloudTowerService
from .cloudtower_install import InstallerFamily
from .control import ControlApp
from .deployment.family import DeploymentFamily
from .deployment.models import DEFAULT_DEPLOY_TOKEN
from .events import Events
from .family import Family
from .faults import Faults
from .fisheye.family import FisheyeFamily
from .hub import LOOPBACK, Hub
from .netservices import DnsZone, dns_handler, ntp_handler
from .reqlog import RequestLog
from .seed import World, build_world
from .ssh import SshFamily
from .vms.family import VmsFamily

log = logging.getLogger("mocks")

FaultSource = str | os.PathLike | list | dict | None
SNAPSHOT_VERSION = 1

#: Every simulated API family, in order: construction, ``attach``, settling, snapshot and restore all
#: follow it (deployment first; VMs before SSH so that on restore a guest's SSH service exists when SSH
#: accounts are restored; CloudTower last, after the installer that announces its towers).
FAMILIES: tuple[type[Family], ...] = (DeploymentFamily, FisheyeFamily, VmsFamily, SshFamily, InstallerFamily,
                                      CloudTowerService)


class SimState:
    """The models of every family, by name: ``state.deployment``, ``state.fisheye``, ...
    (``state.families`` maps each name to its model)."""

    def __init__(self, families: dict[str, Family]):
        self._families = families

    @property
    def families(self) -> dict[str, Any]:
        return {name: f.model for name, f in self._families.items()}

    def __getattr__(self, name: str) -> Any:
        fams = self.__dict__.get("_families") or {}
        if name in fams:
            return fams[name].model
        raise AttributeError(name)

    def to_dict(self) -> dict:
        return {name: f.to_dict() for name, f in self._families.items()}


class Simulator:
    """A simulated SMTX OS world on loopback.

    Construct with :meth:`from_plan`; ``start()`` (or ``with``) serves; ``close()`` stops
    and joins every thread. ``address_map`` is known right after construction.
    """

    def __init__(self, *, time_scale: float = 0.01, deploy_token: str = DEFAULT_DEPLOY_TOKEN,
                 faults: FaultSource = None, load_env_faults: bool = True, secrets: Iterable[str] = ()):
        self.clock = SimClock(time_scale)
        self.faults = Faults()
        if faults is not None:
            self.faults.load(faults)
        if load_env_faults:
            self.faults.load_env("SMTX_SIM_FAULTS")
        self.deploy_token = deploy_token
        self.requests = RequestLog(self.clock, set(secrets) | {deploy_token})
        self.hub = Hub(self.clock, self.faults, self.requests)
        self.dns = DnsZone()
        self.events = Events()
        self.plan = None
        self.world: World | None = None
        self.families: dict[str, Family] = {}
        for cls in FAMILIES:                        # a family may read the models built before it
            fam = cls(self)
            self.families[fam.name] = fam
        self.state = SimState(self.families)
        self.hub.dispatcher.settle = self.settle
        # called with the simulator by close(), before the network goes away (e.g. save a snapshot)
        self.close_hooks: list[Callable[[Simulator], None]] = []
        self._control = self.hub.add_tcp("_sim", 0, scheme="http", apps=[ControlApp(self)], up=True,
                                         role="control", internal=True)
        self._started = False
        self.profiles: list[str] = []            # active profile names (mocks.profiles.apply_profiles)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_plan(cls, plan, *, time_scale: float = 0.01, faults: FaultSource = None,
                  disk_layout: str | None = None, deploy_token: str = DEFAULT_DEPLOY_TOKEN,
                  preset_hostnames: bool = False, load_env_faults: bool = True,
                  snapshot: dict | None = None, profiles=None) -> Simulator:
        """Simulated world for a :class:`plan.model.Plan`.

        ``snapshot``: a :meth:`snapshot` of an earlier simulator for the same plan; the new world
        continues it (see :meth:`restore`).

        ``disk_layout``: ``"nvme+hdd"`` | ``"ssd-mixed-sizes"`` | ``"nvme+ssd"``; default from
        ``plan.storage_arch`` (hybrid-tiered -> nvme+hdd, allflash-flat -> ssd-mixed-sizes).
        ``preset_hostnames``: hosts already carry their planned hostname before deployment
        (default: ``localhost.localdomain``, as a fresh install does).
        ``profiles``: the behaviours to play where the vendor sources differ (``"a,b"`` or a list, see
        :mod:`mocks.profiles`); None reads ``SMTX_SIM_PROFILE`` (and ``SMTX_SIM_UPLOAD_PROFILE``).
        """
        from .profiles import apply_profiles, from_env

        chosen = from_env() if profiles is None else profiles
        sim = cls(time_scale=time_scale, deploy_token=deploy_token, faults=faults,
                  load_env_faults=load_env_faults, secrets=_plan_secrets(plan))
        try:
            sim.seed(plan, disk_layout=disk_layout, preset_hostnames=preset_hostnames)
            for fam in sim.families.values():
                fam.attach()
            apply_profiles(sim, chosen)
            if snapshot is not None:
                sim.restore(snapshot)
        except BaseException:
            sim.close()
            raise
        return sim

    def seed(self, plan, *, disk_layout: str | None = None, preset_hostnames: bool = False) -> World:
        world = build_world(plan, disk_layout=disk_layout, preset_hostnames=preset_hostnames)
        for note in world.notes:
            log.warning("sim seed: %s", note)
        self.plan, self.world = plan, world
        self.hub.set_tls_seed(str(getattr(plan, "cluster_name", "") or ""))   # certificates: per cluster and address
        for h in world.hosts:
            self.deployment.hosts[h.mgmt_ip] = h
        self.deployment.l2_scan_blocked = world.l2_scan_blocked
        for name, ip in world.dns_records.items():
            self.dns.add(name, ip)
        dns, ntp = dns_handler(self.dns), ntp_handler(self.clock)
        for a in world.addresses:
            for port, scheme in a.tcp:
                self.hub.add_tcp(a.address, port, scheme=scheme, apps=self.apps_for(a.role, port), up=a.up,
                                 role=a.role)
            for port in a.udp:
                handler = dns if port == 53 else ntp
                self.hub.add_udp(a.address, port, handler, up=a.up, role=a.role)
        for addr, _role in world.alive_only:
            if not self.hub.is_alive(addr) and not any(ep.address == addr for ep in self.hub.endpoints()):
                self.hub.add_alive(addr)
        return world

    # ------------------------------------------------------------------ families
    def family(self, name: str) -> Family:
        """The family called ``name`` (KeyError when the simulator has none)."""
        return self.families[name]

    def apps_for(self, role: str, port: int) -> list:
        """Every family's apps for an endpoint of ``role`` and ``port``, in family order."""
        return [app for fam in self.families.values() for app in fam.apps_for(role, port)]

    def settle(self) -> None:
        """Let every family apply the effects of long operations that ended by now, in family order."""
        for fam in self.families.values():
            fam.settle()

    @property
    def deployment(self):
        return self.families["deployment"].model

    @property
    def fisheye(self):
        return self.families["fisheye"].model

    @property
    def vms(self):
        return self.families["vms"].model

    @property
    def install(self):
        return self.families["cloudtower_install"].model

    @property
    def cloudtower(self):
        return self.families["cloudtower"].model

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Simulator:
        if not self._started:
            self.hub.start()
            self._started = True
        return self

    def close(self) -> None:
        hooks, self.close_hooks = self.close_hooks, []
        for hook in hooks:
            try:
                hook(self)
            except Exception:          # noqa: BLE001 - closing must finish
                log.exception("sim close hook %r failed", hook)
        self.hub.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ network contract
    @property
    def address_map(self) -> dict[tuple[str, int, str], tuple[str, int]]:
        """``{(address, port, proto): ("127.0.0.1", local_port)}`` -- proto is ``"tcp"`` or ``"udp"``."""
        return self.hub.address_map

    @property
    def ca_bundle(self) -> str:
        """Path of the CA PEM that signs every simulated HTTPS endpoint's certificate."""
        return self.hub.ca_bundle

    def certificate_fingerprint(self, address: str, port: int = 443) -> str:
        """SHA-256 fingerprint (``AB:CD:…``) of the certificate ``address:port`` presents now."""
        return self.hub.tls.fingerprint(str(address), port)

    def rotate_certificate(self, address: str) -> str:
        """A new TLS certificate for ``address`` (every port), as after a reinstall; returns its fingerprint on
        443. Connections made from now on see it; a suite that pinned the old one must fail naming both."""
        self.hub.tls.rotate(str(address))
        return self.certificate_fingerprint(address)

    @property
    def control_url(self) -> str:
        return f"http://{LOOPBACK}:{self._control.local_port}"

    def local(self, address: str, port: int, proto: str = "tcp") -> tuple[str, int]:
        """Loopback (host, port) serving a simulated (address, port, proto); KeyError if not simulated."""
        ep = self.hub.endpoint(address, port, proto)
        if ep is None or ep.internal:
            raise KeyError(f"not simulated: {address}:{port}/{proto}")
        return (LOOPBACK, ep.local_port)

    def url(self, address: str, port: int = 443, scheme: str | None = None) -> str:
        """Base URL reaching a simulated TCP endpoint, e.g. ``https://127.0.0.1:40123``."""
        ep = self.hub.endpoint(address, port, "tcp")
        if ep is None or ep.internal:
            raise KeyError(f"not simulated: {address}:{port}/tcp")
        return f"{scheme or ep.scheme}://{LOOPBACK}:{ep.local_port}"

    def set_up(self, address: str, port: int | None = None, up: bool = True, *, proto: str | None = None) -> None:
        """Bring a simulated endpoint (all of the address's when ``port`` is None) up or down."""
        self.hub.set_up(address, port, up, proto=proto)

    def is_alive(self, address: str) -> bool:
        """Whether ``address`` answers 'ping' (stands in for ICMP in simulate mode)."""
        return self.hub.is_alive(str(address))

    def set_alive(self, address: str, alive: bool) -> None:
        self.hub.set_alive(str(address), alive)

    # ------------------------------------------------------------------ inspection
    def count(self, method: str | None = None, path: str | None = None, status=None,
              address: str | None = None, port: int | None = None) -> int:
        """Requests served matching all given criteria (see :meth:`RequestLog.filter`)."""
        return self.requests.count(method, path, status, address, port)

    @property
    def hosts(self) -> list:
        return list(self.deployment.hosts.values())

    def advance(self, seconds: float) -> float:
        """Jump simulated time forward; returns the new simulated time."""
        t = self.clock.advance(seconds)
        self.settle()
        return t

    def snapshot(self, *, inspect: bool = True) -> dict:
        """JSON-able state of the world. No password or token appears in it (the root password as a
        salted PBKDF2 digest, session tokens as SHA-256 digests). ``restore`` holds what
        :meth:`restore` needs; the other keys are for inspection (``inspect=False`` leaves them out:
        the suite saves the world with every write of its state, and restoring is all it needs)."""
        self.settle()
        families = {name: f.export_state() for name, f in self.families.items()}
        restore = {"families": families,
                   "endpoints": [[ep.address, ep.port, ep.proto, ep.up] for ep in self.hub.endpoints()],
                   "alive": self.hub.alive_state(), "skew": self.clock.skew,
                   "tls": dict(self.hub.tls.generations)}
        restore["sim_now"] = self.clock.now()
        restore["anchor"] = self.clock.anchor
        if not inspect:
            return {"version": SNAPSHOT_VERSION, "plan": {"sha256": getattr(self.plan, "sha256", None),
                                                          "cluster_name": getattr(self.plan, "cluster_name", None)},
                    "dns": self.dns.to_dict(), "restore": restore}
        return {"version": SNAPSHOT_VERSION, "clock": self.clock.to_dict(),
                "plan": {"sha256": getattr(self.plan, "sha256", None),
                         "cluster_name": getattr(self.plan, "cluster_name", None)},
                "state": self.state.to_dict(), "endpoints": self.hub.to_dict(),
                "dns": self.dns.to_dict(), "faults": self.faults.to_list(), "requests": len(self.requests),
                "disk_layout": self.world.disk_layout if self.world else None, "restore": restore}

    def restore(self, snapshot: dict) -> list[str]:
        """Continue the world a :meth:`snapshot` describes (call on a simulator seeded from the same
        plan, preferably before ``start()``): the simulated clock's ``now``, the deployment (hosts,
        operations), fisheye (root account, sessions, settings, VDSes/VLANs, jobs, uploads, IPMI) --
        every family, in :data:`FAMILIES` order --
        endpoint up/down state (the VIP), ping liveness and DNS records. Fault rules and the request
        log are not restored. Returns notes about what could not be restored."""
        if not isinstance(snapshot, dict) or not isinstance(snapshot.get("restore"), dict):
            raise ValueError("not a simulator snapshot: the 'restore' section is missing")
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"simulator snapshot version {snapshot.get('version')!r} is not {SNAPSHOT_VERSION}")
        r = snapshot["restore"]
        notes: list[str] = []
        want = (snapshot.get("plan") or {}).get("sha256")
        have = getattr(self.plan, "sha256", None)
        if want and have and want != have:
            notes.append("the snapshot was taken for a different plan (sha256 differs); restoring what matches")
        self.clock.restore(float(r["sim_now"]), r.get("skew"), anchor=r.get("anchor"))
        saved = r.get("families") or {}
        for name, fam in self.families.items():                      # family order: deployment first
            if name in saved:
                notes += fam.import_state(saved[name])
        for name in saved:
            if name not in self.families:
                notes.append(f"family {name} is not simulated here; its saved state was skipped")
        for address, port, proto, up in r.get("endpoints", []):
            if self.hub.endpoint(address, port, proto) is not None:
                self.hub.set_up(address, port, bool(up), proto=proto)
            else:
                notes.append(f"endpoint {address}:{port}/{proto} is not simulated here; skipped")
        with_ports = {ep.address for ep in self.hub.endpoints()}
        for address, alive in (r.get("alive") or {}).items():
            if address not in with_ports:
                self.hub.set_alive(address, bool(alive))
        for name, ip in (snapshot.get("dns") or {}).items():
            self.dns.add(name, ip)
        if r.get("tls"):                                             # rotated certificates stay rotated
            self.hub.tls.set_generations(r["tls"])
        for n in notes:
            log.warning("sim restore: %s", n)
        return notes


def _plan_secrets(plan) -> set[str]:
    try:
        return set(plan.secrets())
    except Exception:            # noqa: BLE001 - a partial plan still simulates
        return set()


def format_address_map(sim: Simulator) -> str:
    """The address map as one readable table (``python -m mocks serve``): each simulated endpoint, the
    loopback port behind it, its state and role, and how to reach it from outside (URL with the ``Host``
    header to send, ``ssh``, ``dig``); then the addresses that only answer ping."""
    rows = sorted(sim.hub.endpoints(), key=lambda e: (_sort_ip(e.address), e.proto, e.port))
    lines = [f"{'ADDRESS':<18} {'PORT':<9} {'STATE':<5} {'ROLE':<16} HOW TO REACH IT"]
    for e in rows:
        lines.append(f"{e.address:<18} {f'{e.port}/{e.proto}':<9} {'up' if e.up else 'down':<5} {e.role:<16} "
                     f"{_how(e)}")
    with_ports = {e.address for e in rows}
    ping_only = sorted((a for a in sim.hub.addresses() if a not in with_ports), key=_sort_ip)
    if ping_only:
        lines.append("ping only (no ports; is_alive): " + ", ".join(
            f"{a}{'' if sim.is_alive(a) else ' (down)'}" for a in ping_only))
    return "\n".join(lines)


def _how(e) -> str:
    if e.proto == "udp":
        return (f"dig @{LOOPBACK} -p {e.local_port} <name>" if e.port == 53
                else f"ntpdate -q -p 1 {LOOPBACK}:{e.local_port}  (udp {LOOPBACK}:{e.local_port})")
    if e.scheme in ("http", "https"):
        host = e.address if e.port in (80, 443) else f"{e.address}:{e.port}"
        return f"{e.scheme}://{LOOPBACK}:{e.local_port}/  Host: {host}"
    return f"ssh -p {e.local_port} <user>@{LOOPBACK}"


def _sort_ip(a: str):
    parts = a.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return (0, tuple(int(p) for p in parts), "")
    return (1, (), a)

