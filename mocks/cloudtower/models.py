"""CloudTower (guide §04–§06) -- state only, no HTTP.

One :class:`CloudTowerModel` per CloudTower IP; :class:`CloudTowerFamily` (``sim.state.cloudtower``)
holds them by IP. ``graphql.py`` (``POST /api``) and ``rest.py`` (``POST /v2/api/<call>``) map the
wire onto these methods. The model is one facade over its concepts:

* ``users.py`` -- root user (salted PBKDF2 only), sessions (SHA-256 digests only; clear tokens in
  :attr:`CloudTowerModel.issued_tokens`, in memory, for tests);
* ``orgs.py`` -- organizations and datacenters; ``clusters.py`` -- connected clusters and what
  CloudTower syncs from them; ``tasks.py`` -- tasks (simulated time, computed on read);
* ``settings.py`` -- NTP, the deployed (trial) license, the warm-up window (443 answers 503);
* ``config.py`` -- guide §06: cluster settings, alert rules, monitoring views and graphs, rack topology (created
  when a cluster first reads CONNECTED; knobs ``initial_storage_policy``, ``alert_rules_lag``);
* ``obs.py`` -- guide §07a: OVM chunked uploads, Observability packages and instances, the OBS VM's SSH
  (``obs_packages.py``, ``obs_instances.py``); ``backup.py`` -- §07b: the backup service (``backup_uploads.py``,
  ``backup_vlans.py``); ``vms.py`` -- stages 09-11: VMs through CloudTower (``vm_ops.py``, ``vm_uploads.py``,
  ``vm_params.py``, ``vm_metrics.py``);
* ``errors.py`` -- :class:`RestError`, :class:`GqlError`, :class:`Unauthenticated` (``SimError``\\ s).

:meth:`CloudTowerModel.settle` applies ended tasks (``sim.advance`` calls it through the family).

Tunables tests set on a tower (see ``clusters.py``): ``connect_seconds`` (``tower.connect_seconds = 10**6`` before
``connect-cluster`` keeps the connect INITIALIZING past any limit; kept in snapshots), ``task_pending``,
``datacenter_task``, ``session_ttl``; the profiles set ``connect_auth``, ``sync_lag_s`` and ``rest_bodies``.
"""
from __future__ import annotations

import copy
import dataclasses
import ipaddress
import threading
from typing import Any, Callable

from ..clock import SimClock
from ..sessions import Session, SessionStore
from .clusters import CONNECT_S, Cluster, ClustersMixin, ClusterSpec
from .config import ConfigMixin
from .obs import ObsMixin
from .vms import VmsMixin
from .backup import BackupMixin
from .inspector import InspectorMixin
from .errors import GqlError, RestError, Unauthenticated
from .orgs import Datacenter, DatacenterSpec, Organization, OrgsMixin
from .settings import SettingsMixin
from .tasks import TASK_PENDING_S, Task, TaskFault, TasksMixin
from .users import (DEFAULT_ROOT_PASSWORD, ENCODED_PASSWORDS, GUIDE_ENCODED_LOGIN_PASSWORD, GUIDE_ENCODED_ROOT_PASSWORD,
                    USER_SOURCES, UsersMixin)
from .util import cuid, iso_ms, parse_datetime

__all__ = ["CloudTowerFamily", "CloudTowerModel", "Cluster", "ClusterSpec", "Datacenter", "DatacenterSpec",
           "DEFAULT_ROOT_PASSWORD", "ENCODED_PASSWORDS", "GUIDE_ENCODED_LOGIN_PASSWORD",
           "GUIDE_ENCODED_ROOT_PASSWORD", "GqlError", "Organization", "RestError", "Session", "SessionStore", "Task", "TaskFault",
           "USER_SOURCES", "Unauthenticated", "cuid", "iso_ms", "parse_datetime"]

_SETUP_KEYS = {"organization", "root_password", "ntp_service_url"}


def _build(cls, d: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in known})


class CloudTowerModel(VmsMixin, ObsMixin, BackupMixin, InspectorMixin, UsersMixin, OrgsMixin, ClustersMixin, TasksMixin, SettingsMixin,
                      ConfigMixin):
    """One CloudTower VM's API state, at ``ip``."""

    family = "cloudtower"

    def __init__(self, ip: str, clock: SimClock, *, secrets: set[str] | None = None, smtx: Any = None):
        self.ip = ip
        self.clock = clock
        self.lock = threading.RLock()
        self.secrets = secrets if secrets is not None else set()   # shared with the request log (redaction)
        self.smtx = smtx                                           # SmtxSource: the clusters it can connect
        # ---- tunables (tests may change them)
        self.task_pending = TASK_PENDING_S
        self.connect_seconds = CONNECT_S
        self.datacenter_task = False        # the guide's create-datacenter answers task_id null
        # ---- profile-chosen behaviour (mocks.profiles; not in snapshots: the run's profiles decide)
        self.connect_auth = "refused"       # connect-auth: a wrong cluster password -> 400 at once | "late"
        self.sync_lag_s = 0.0               # cluster-sync: s after CONNECTED before hosts/VDSes/VLANs show
        self.rest_bodies = "strict"         # rest-bodies: a bare-object create body -> 400 | "lenient"
        self.gql_login_plaintext = False    # gql-login: GraphQL login with effect.encoded takes a plaintext password too
        self.warmup_status = 503
        self.encoded_passwords: dict[str, str] = dict(ENCODED_PASSWORDS)
        # ---- in memory only (never exported): clear tokens issued, for test inspection
        self.issued_tokens: set[str] = set()
        # ---- state
        self.started_wall = clock.wall()
        self.warmup_until = 0.0             # simulated seconds: before it, every request answers 503
        self.root: dict | None = None       # {"id", "login": {pbkdf2}, "password_updated_at", "created_wall"}
        self.organizations: dict[str, Organization] = {}
        self.datacenters: dict[str, Datacenter] = {}
        self.clusters: dict[str, Cluster] = {}
        self.tasks: dict[str, Task] = {}
        self.sessions = SessionStore(clock, ttl=None, secrets=self.secrets, lock=self.lock)   # token and cookie
        self.ntp_servers: list[str] = []
        self._seq = 0
        self._init_config()                 # stage 06: settings, alert rules, views, topology (config.py)
        self._init_obs()                    # stage 07a: OBS uploads, packages, instances (obs.py)
        self._init_backup()                 # stage 07b: package uploads, VM VLANs, backup service (backup.py)
        self._init_inspector()              # stage 08: inspection jobs and report exports (inspector.py)
        self._init_vms()                    # stages 09-11: VMs, disk uploads, metrics (vms.py)

    def _new_id(self, kind: str) -> str:
        with self.lock:
            self._seq += 1
            return cuid("smtx-sim://cloudtower", self.ip, kind, self._seq)

    def preset(self, setup: dict) -> None:
        """Make this CloudTower 'already set up': ``{"organization": name, "root_password": "HC!r0cks"}``
        (root_password defaults to HC!r0cks; organization optional). Idempotent."""
        if not isinstance(setup, dict):
            raise ValueError("setup must be a dict like {'organization': name, 'root_password': 'HC!r0cks'}")
        unknown = set(setup) - _SETUP_KEYS
        if unknown:
            raise ValueError(f"setup: unknown key(s) {sorted(unknown)}; allowed organization, root_password, "
                             f"ntp_service_url")
        with self.lock:
            if self.root is None:
                self.create_root(setup.get("root_password") or DEFAULT_ROOT_PASSWORD, self.clock.wall())
            org = setup.get("organization")
            if org and not any(o.name == org for o in self.organizations.values()):
                self.create_organization(org)
            if setup.get("ntp_service_url"):
                self.set_ntp(setup["ntp_service_url"])

    # ------------------------------------------------------------------ snapshot
    def export_state(self) -> dict:
        """JSON-able; no password or token (root as a salted PBKDF2 digest, sessions as SHA-256 digests)."""
        self.settle()
        now = self.clock.now()
        with self.lock:
            return {
                "ip": self.ip,
                "seq": self._seq,
                "started_wall": self.started_wall,
                "warmup_until": self.warmup_until,
                "warmup_status": self.warmup_status,
                "root": copy.deepcopy(self.root),
                "organizations": [dataclasses.asdict(o) for o in self.organizations.values()],
                "datacenters": [dataclasses.asdict(d) for d in self.datacenters.values()],
                "clusters": [dataclasses.asdict(c) for c in self.clusters.values()],
                "tasks": [dataclasses.asdict(t) | {"status": t.status(now)} for t in self.tasks.values()],
                "sessions": self.sessions.export_state(),
                "ntp_servers": list(self.ntp_servers),
                "config": self.export_config(),
                "obs": self.export_obs(),
                "backup": self.export_backup(),
                "inspector": self.export_inspector(),
                "vms": self.export_vms(),
                "tunables": {"task_pending": self.task_pending, "connect_seconds": self.connect_seconds,
                             "datacenter_task": self.datacenter_task, "session_ttl": self.session_ttl},
            }

    def import_state(self, state: dict) -> list[str]:
        with self.lock:
            self._seq = int(state.get("seq", 0))
            self.started_wall = float(state.get("started_wall", self.started_wall))
            self.warmup_until = float(state.get("warmup_until", 0.0))
            self.warmup_status = int(state.get("warmup_status", 503))
            self.root = copy.deepcopy(state.get("root"))
            self.organizations = {o["id"]: _build(Organization, o) for o in state.get("organizations", [])}
            self.datacenters = {d["id"]: _build(Datacenter, d) for d in state.get("datacenters", [])}
            self.clusters = {c["id"]: _build(Cluster, c) for c in state.get("clusters", [])}
            self.tasks = {t["id"]: _build(Task, t) for t in state.get("tasks", [])}
            self.sessions.import_state(state.get("sessions", []))
            self.ntp_servers = list(state.get("ntp_servers", []))
            self._import_tunables(state.get("tunables") or {})
            self.import_config(state.get("config") or {})
            self.import_obs(state.get("obs") or {})
            self.import_backup(state.get("backup") or {})
            self.import_inspector(state.get("inspector") or {})
            self.import_vms_state(state.get("vms") or {})
        return []

    def _import_tunables(self, tun: dict) -> None:
        self.task_pending = float(tun.get("task_pending", self.task_pending))
        self.connect_seconds = float(tun.get("connect_seconds", self.connect_seconds))
        self.datacenter_task = bool(tun.get("datacenter_task", self.datacenter_task))
        self.session_ttl = tun.get("session_ttl", self.session_ttl)

    @property
    def session_ttl(self) -> float | None:
        """Seconds a new session lives (None: tokens never expire)."""
        return self.sessions.ttl

    @session_ttl.setter
    def session_ttl(self, ttl: float | None) -> None:
        self.sessions.ttl = None if ttl is None else float(ttl)

    def to_dict(self) -> dict:
        d = self.export_state()
        d.update({"set_up": self.is_set_up, "warming": self.warming(), "session_count": self.session_count,
                  "ntp_service_url": self.ntp_service_url, "license_serial": self.serial,
                  "clusters_view": [{"id": c.id, "ip": c.ip, "name": c.name, "connect_state": self.connect_state(c)}
                                    for c in self.clusters.values()]})
        return d


# --------------------------------------------------------------------------- the family
class CloudTowerFamily:
    """``sim.state.cloudtower``: every simulated CloudTower, by IP.

    ``factory(ip)`` builds a tower wired to the simulator and ``attach(tower, up)`` mounts its apps on
    ``(ip, 443)`` / ``(ip, 80)``; both are set by :func:`mocks.cloudtower.service.ensure_family`."""

    family = "cloudtower"

    def __init__(self, factory: Callable[[str], CloudTowerModel] | None = None,
                 attach: Callable[[CloudTowerModel, bool], None] | None = None):
        self.towers: dict[str, CloudTowerModel] = {}
        self.factory = factory
        self.attach = attach
        self.lock = threading.RLock()
        # tower attributes the run's profiles chose (mocks.profiles): every tower, existing or new, takes them
        self.tower_defaults: dict[str, Any] = {}

    def configure(self, **values: Any) -> None:
        """Set tower attributes for every tower, now and later (what a profile does)."""
        with self.lock:
            self.tower_defaults.update(values)
            for t in self.towers.values():
                self._apply_defaults(t)

    def _apply_defaults(self, t: CloudTowerModel) -> CloudTowerModel:
        for k, v in self.tower_defaults.items():
            setattr(t, k, v)
        return t

    def new_tower(self, ip: str) -> CloudTowerModel:
        """A new tower from ``factory``, with the profiles' attributes applied (the caller registers it)."""
        return self._apply_defaults(self.factory(ip))

    def tower(self, ip: str) -> CloudTowerModel:
        return self.towers[str(ipaddress.ip_address(str(ip).strip()))]

    def __getitem__(self, ip: str) -> CloudTowerModel:
        return self.tower(ip)

    def settle(self) -> None:
        for t in list(self.towers.values()):
            t.settle()

    def to_dict(self) -> dict:
        return {ip: t.to_dict() for ip, t in self.towers.items()}

    def export_state(self) -> dict:
        return {"towers": [t.export_state() for t in self.towers.values()]}

    def _tower_for(self, ip: str, notes: list[str]) -> CloudTowerModel | None:
        with self.lock:
            t = self.towers.get(ip)
            if t is None:
                if self.factory is None:
                    notes.append(f"cloudtower {ip}: no factory to re-create it; skipped")
                    return None
                t = self.new_tower(ip)
                self.towers[ip] = t
            return t

    def import_state(self, saved: dict) -> list[str]:
        """Re-create every saved tower and mount its apps (endpoint up/down comes from the snapshot's
        ``endpoints``, restored after the families)."""
        notes: list[str] = []
        for st in (saved or {}).get("towers", []):
            ip = st.get("ip")
            if not ip:
                notes.append("cloudtower: a saved tower without ip was skipped")
                continue
            t = self._tower_for(ip, notes)
            if t is None:
                continue
            notes += list(t.import_state(st) or [])
            if self.attach is not None:
                self.attach(t, False)
        return notes
