"""CloudTower (guide §04–§06) -- state only, no HTTP.

One :class:`CloudTowerModel` per CloudTower IP; :class:`CloudTowerFamily` (``sim.state.cloudtower``)
holds them by IP. ``graphql.py`` (``POST /api``) and ``rest.py`` (``POST /v2/api/<call>``) map the
wire onto these methods.

* root user -- created once (``createRootUser``); only a salted PBKDF2 digest of its password is kept;
* sessions -- REST ``login`` / GraphQL ``login`` tokens; only SHA-256 digests are kept (the clear tokens
  sit in :attr:`CloudTowerModel.issued_tokens`, in memory, for tests; never in a snapshot);
* organizations, datacenters, connected clusters (``connect_state`` from a task), tasks;
* the CloudTower NTP setting and the deployed (trial) license;
* a *warm-up* window: tcp/443 accepts but every request answers 503 (field note).

Long operations (tasks) progress on simulated time, computed on read; :meth:`CloudTowerModel.settle`
applies their effects (``sim.advance`` calls it through the family).
"""
from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as _dt
import hashlib
import hmac
import ipaddress
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from ..core import SimClock, timed_phase

TASK_STATUS = {"pending": "PENDING", "running": "EXECUTING", "done": "SUCCESSED", "failed": "FAILED"}

DEFAULT_ROOT_PASSWORD = "HC!r0cks"
# The guide's createRootUser variable: the fixed, encoded form of HC!r0cks ("hex IV:base64 ciphertext",
# base64-encoded). The simulator cannot decrypt CloudTower's encoding; it knows the guide's samples.
GUIDE_ENCODED_ROOT_PASSWORD = "NzllNTE3NTgxYWY5NDY3ODM4ZTczMTg1MDc4YmM3YzQ6eVpSSTlodUNxNDBNL3J4ZTViZ1dqZz09"
# The guide's GraphQL ``login`` (§07, the browser login): another encoding of HC!r0cks.
GUIDE_ENCODED_LOGIN_PASSWORD = "NmQwNTQ2MTI4MDQxMjgzYTk3NDU3OGZmYjk3NmFhNGM6dm40by9nOE0xZ0ZjVmxBSmR2Nmk3QT09"
ENCODED_PASSWORDS = {GUIDE_ENCODED_ROOT_PASSWORD: DEFAULT_ROOT_PASSWORD,
                     GUIDE_ENCODED_LOGIN_PASSWORD: DEFAULT_ROOT_PASSWORD}

PBKDF2_ITERATIONS = 20_000
TASK_PENDING_S = 2.0            # simulated seconds a task stays PENDING before EXECUTING
CONNECT_S = 150.0               # connect-cluster: INITIALIZING -> CONNECTED (field note: a few minutes; 10 min cap)
DATACENTER_TASK_S = 3.0         # create-datacenter, only when ``datacenter_task`` is on
LICENSE_TRIAL_DAYS = 90         # the guide's deployedLicense: sign 2025-09-30, expire 2025-12-29
USER_SOURCES = ("LOCAL", "LDAP", "AUTHN", "SSO")

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


# --------------------------------------------------------------------------- errors
class RestError(Exception):
    """A REST error: ``{"message", "status", "path", "code"?, "props"?}`` with HTTP ``status``."""

    def __init__(self, status: int, message: str, code: str | None = None, props: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.props = status, message, code, props


class Unauthenticated(Exception):
    """No / unknown / revoked / expired token (REST 401, GraphQL ``UNAUTHENTICATED``)."""


class GqlError(Exception):
    """A GraphQL resolver error: ``{"errors": [{"message", "path", "extensions": {"code"}}], "data": null}``."""

    def __init__(self, message: str, code: str = "INTERNAL_SERVER_ERROR"):
        super().__init__(message)
        self.message, self.code = message, code


# --------------------------------------------------------------------------- helpers
def iso_ms(ts: float | None) -> str | None:
    """``2025-09-30T18:42:47.920Z`` (the API's DateTime)."""
    if ts is None:
        return None
    t = _dt.datetime.fromtimestamp(float(ts), tz=_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_datetime(v: Any) -> float | None:
    """UNIX seconds of an ISO 8601 DateTime, or None when ``v`` is not one."""
    if not isinstance(v, str) or not v.strip():
        return None
    s = v.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        t = _dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def cuid(*parts: Any) -> str:
    """A deterministic cuid-looking id (``c`` + 24 base-36 characters) derived from ``parts``."""
    n = int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode("utf-8")).digest(), "big")
    out = []
    for _ in range(24):
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "c" + "".join(out)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _pbkdf2(password: str, salt: bytes, iterations: int = PBKDF2_ITERATIONS) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations).hex()


def is_ntp_server(s: str) -> bool:
    s = s.strip()
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(s)) and not s.replace(".", "").isdigit()


# --------------------------------------------------------------------------- records
@dataclass
class Session:
    digest: str                      # sha256 of the token (or of the connect.sid cookie value)
    user_id: str
    created: float                   # simulated seconds
    expires: float | None = None     # simulated seconds; None: never
    kind: str = "token"              # token | cookie


@dataclass
class Organization:
    id: str
    name: str


@dataclass
class Datacenter:
    id: str
    name: str
    organization_id: str


@dataclass
class Task:
    id: str
    description: str
    key: str                         # e.g. connect_cluster
    resource_type: str               # Cluster | Datacenter
    resource_id: str
    resource_mutation: str           # connectCluster | createDatacenter
    args: dict                       # the call's arguments, without passwords
    created: float                   # simulated seconds
    created_wall: float              # UNIX seconds
    pending_s: float
    running_s: float
    user_id: str | None = None
    cluster_id: str | None = None
    fault: str | None = None         # None | "stuck" | "fail"
    fault_msg: str | None = None
    applied: bool = False
    outcome: str | None = None       # SUCCESSED | FAILED once applied

    def timed_status(self, now: float) -> str:
        return TASK_STATUS[timed_phase(now, self.created, self.pending_s, self.running_s, self.fault)]

    def status(self, now: float) -> str:
        return self.outcome if self.applied and self.outcome else self.timed_status(now)

    def progress(self, now: float) -> float:
        st = self.status(now)
        if st in ("SUCCESSED", "FAILED"):
            return 1.0
        if st == "PENDING" or self.running_s <= 0:
            return 0.0
        return round(min(0.99, max(0.0, (now - self.created - self.pending_s) / self.running_s)), 2)


@dataclass
class Cluster:
    id: str
    ip: str
    name: str | None
    version: str
    local_id: str | None              # the cluster's license serial (as the guide's sample shows)
    settings_id: str
    datacenter_ids: list[str]
    task_id: str
    connected_wall: float


# --------------------------------------------------------------------------- one CloudTower
class CloudTowerModel:
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
        self.session_ttl: float | None = None
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
        self._sessions: dict[str, Session] = {}
        self.ntp_servers: list[str] = []
        self._seq = 0

    # ------------------------------------------------------------------ ids / time
    def _new_id(self, kind: str) -> str:
        with self.lock:
            self._seq += 1
            return cuid("smtx-sim://cloudtower", self.ip, kind, self._seq)

    @property
    def serial(self) -> str:
        """The deployed license's serial (``deployedLicense``): stable for this IP."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://cloudtower/{self.ip}/license"))

    def _wall_at(self, sim_t: float) -> float:
        """Wall-clock time of a simulated instant (for task timestamps)."""
        return self.clock.wall() - (self.clock.now() - sim_t)

    # ------------------------------------------------------------------ warm-up
    def set_warmup(self, seconds: float, status: int = 503) -> None:
        """From now, for ``seconds`` simulated seconds, tcp/443 accepts but answers ``status``."""
        with self.lock:
            self.warmup_until = self.clock.now() + max(0.0, float(seconds))
            self.warmup_status = int(status)

    def warming(self) -> bool:
        return self.clock.now() < self.warmup_until

    # ------------------------------------------------------------------ root user and setup
    @property
    def root_created(self) -> bool:
        return self.root is not None

    @property
    def is_set_up(self) -> bool:
        return self.root is not None and bool(self.organizations)

    def decode_password(self, encoded: str) -> str | None:
        return self.encoded_passwords.get(encoded)

    def create_root(self, password: str, updated_at: float | None = None) -> dict:
        """Create the ``root`` user (clear ``password``; the wire layer decodes). Once only."""
        with self.lock:
            if self.root is not None:
                raise GqlError("root user already exists: CloudTower has already been set up", "ALREADY_EXISTS")
            salt = os.urandom(16)
            self.root = {"id": self._new_id("user"), "created_wall": self.clock.wall(),
                         "password_updated_at": updated_at,
                         "login": {"scheme": "pbkdf2-sha256", "iterations": PBKDF2_ITERATIONS, "salt": salt.hex(),
                                   "digest": _pbkdf2(password, salt)}}
            self.secrets.add(password)
            return self.user_view()

    def user_view(self) -> dict:
        r = self.root or {}
        return {"id": r.get("id"), "name": "root", "username": "root", "display_username": "root", "role": "ROOT",
                "source": "LOCAL", "password_updated_at": iso_ms(r.get("password_updated_at")), "__typename": "User"}

    def check_password(self, username: Any, password: Any) -> bool:
        with self.lock:
            r = self.root
        if r is None or username != "root" or not isinstance(password, str):
            return False
        lg = r["login"]
        got = _pbkdf2(password, bytes.fromhex(lg["salt"]), int(lg["iterations"]))
        return hmac.compare_digest(got, lg["digest"])

    def create_organization(self, name: Any) -> Organization:
        if not isinstance(name, str) or not name.strip():
            raise GqlError("organization name must be a non-empty string", "BAD_USER_INPUT")
        with self.lock:
            if any(o.name == name for o in self.organizations.values()):
                raise GqlError(f"an organization named {name!r} already exists", "ALREADY_EXISTS")
            org = Organization(self._new_id("organization"), name)
            self.organizations[org.id] = org
            return org

    def preset(self, setup: dict) -> None:
        """Make this CloudTower 'already set up': ``{"organization": name, "root_password": "HC!r0cks"}``
        (root_password defaults to HC!r0cks; organization optional). Idempotent."""
        if not isinstance(setup, dict):
            raise ValueError("setup must be a dict like {'organization': name, 'root_password': 'HC!r0cks'}")
        unknown = set(setup) - {"organization", "root_password", "ntp_service_url"}
        if unknown:
            raise ValueError(f"setup: unknown key(s) {sorted(unknown)}; allowed organization, root_password, "
                             f"ntp_service_url")
        pw = setup.get("root_password") or DEFAULT_ROOT_PASSWORD
        with self.lock:
            if self.root is None:
                self.create_root(pw, self.clock.wall())
            org = setup.get("organization")
            if org and not any(o.name == org for o in self.organizations.values()):
                self.create_organization(org)
            if setup.get("ntp_service_url"):
                self.set_ntp(setup["ntp_service_url"])

    # ------------------------------------------------------------------ sessions
    def login(self, username: Any, password: Any, source: Any = "LOCAL", *, kind: str = "token") -> str:
        """Check the credentials; returns a new token. Raises :class:`RestError` 400 on failure."""
        if not isinstance(username, str) or not isinstance(password, str):
            raise RestError(400, "username and password are required strings")
        if source is None:
            source = "LOCAL"
        if source not in USER_SOURCES:
            raise RestError(400, f"source must be one of {', '.join(USER_SOURCES)}, got {source!r}")
        if source != "LOCAL":
            raise RestError(400, f"authentication source {source} is not configured on this CloudTower")
        if self.root is None:
            raise RestError(400, "CloudTower has not been set up: the root user does not exist yet")
        if not self.check_password(username, password):
            raise RestError(400, "invalid username or password")
        return self._issue(self.root["id"], kind)

    def _issue(self, user_id: str, kind: str) -> str:
        if kind == "cookie":
            token = f"s%3A{self._new_id('sid')}.{_b64url(os.urandom(24))}"
        else:
            token = f"eyJhbGciOiJIUzI1NiJ9.{_b64url(user_id.encode())}.{_b64url(os.urandom(32))}"
        now = self.clock.now()
        with self.lock:
            ttl = self.session_ttl
            self._sessions[_digest(token)] = Session(_digest(token), user_id, now,
                                                     None if ttl is None else now + float(ttl), kind)
            self.issued_tokens.add(token)
            self.secrets.add(token)
        return token

    def authenticate(self, token: str | None, *, cookie: str | None = None) -> str:
        """The user id a raw ``Authorization`` token (or a ``connect.sid`` cookie) belongs to."""
        now = self.clock.now()
        for value, kind in ((token, "token"), (cookie, "cookie")):
            if not value:
                continue
            with self.lock:
                s = self._sessions.get(_digest(value))
                if s is None or s.kind != kind:
                    continue
                if s.expires is not None and now >= s.expires:
                    self._sessions.pop(s.digest, None)
                    raise Unauthenticated("the token has expired; log in again")
                return s.user_id
        if token and token.split(" ", 1)[0].lower() in ("bearer", "token", "basic"):
            raise Unauthenticated("Authorization must be the raw token from /v2/api/login, without a "
                                  f"'{token.split(' ', 1)[0]}' prefix")
        if token:
            raise Unauthenticated("invalid or revoked token")
        raise Unauthenticated("missing Authorization header")

    def revoke_tokens(self) -> int:
        with self.lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n

    @property
    def session_count(self) -> int:
        now = self.clock.now()
        with self.lock:
            return sum(1 for s in self._sessions.values() if s.expires is None or s.expires > now)

    # ------------------------------------------------------------------ NTP / license
    def set_ntp(self, url: Any) -> str:
        """``ntp_service_url`` in: servers separated by ``,``; answer (and storage): ``;``-separated."""
        if not isinstance(url, str) or not url.strip():
            raise GqlError("ntp_service_url must list at least one NTP server (comma separated)", "BAD_USER_INPUT")
        servers = [s.strip() for s in url.split(",")]
        bad = [s for s in servers if not is_ntp_server(s)]
        if bad:
            raise GqlError(f"ntp_service_url: {', '.join(repr(b) for b in bad)} is not an IP address or host name "
                           f"(servers are separated by ',')", "BAD_USER_INPUT")
        with self.lock:
            self.ntp_servers = servers
        return ";".join(servers)

    @property
    def ntp_service_url(self) -> str:
        return ";".join(self.ntp_servers)

    def license_view(self) -> dict:
        sign = self.started_wall
        return {
            "id": cuid("smtx-sim://cloudtower", self.ip, "license"),
            "license_serial": self.serial,
            "maintenance_end_date": None,
            "maintenance_start_date": None,
            "max_chunk_num": 0,
            "max_cluster_num": 0,
            "max_vm_num": 0,
            "used_vm_num": 0,
            "sign_date": iso_ms(sign),
            "expire_date": iso_ms(sign + LICENSE_TRIAL_DAYS * 86400),
            "software_edition": "ENTERPRISE",
            "type": "TRIAL",
            "vendor": "SMTX",
            "__typename": "License",
        }

    def deploy_view(self) -> dict:
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://cloudtower/{self.ip}/deploy")),
                "license": self.license_view(), "__typename": "Deploy"}

    # ------------------------------------------------------------------ tasks
    def _task(self, *, description: str, key: str, resource_type: str, resource_id: str, mutation: str,
              args: dict, running_s: float, user_id: str | None, cluster_id: str | None = None,
              fault: dict | None = None) -> Task:
        op = (fault or {}).get("operation")
        t = Task(id=self._new_id("task"), description=description, key=key, resource_type=resource_type,
                 resource_id=resource_id, resource_mutation=mutation, args=args, created=self.clock.now(),
                 created_wall=self.clock.wall(), pending_s=float(self.task_pending), running_s=float(running_s),
                 user_id=user_id, cluster_id=cluster_id, fault=op if op in ("stuck", "fail") else None,
                 fault_msg=(fault or {}).get("msg"))
        self.tasks[t.id] = t
        return t

    def settle(self) -> None:
        """Mark tasks that have ended by now (their effect shows through ``connect_state``)."""
        now = self.clock.now()
        with self.lock:
            for t in self.tasks.values():
                if not t.applied:
                    st = t.timed_status(now)
                    if st in ("SUCCESSED", "FAILED"):
                        t.applied, t.outcome = True, st

    def task_view(self, t: Task) -> dict:
        now = self.clock.now()
        st = t.status(now)
        started = t.created + t.pending_s if st != "PENDING" else None
        finished = t.created + t.pending_s + t.running_s if st in ("SUCCESSED", "FAILED") else None
        c = self.clusters.get(t.cluster_id) if t.cluster_id else None
        failed = st == "FAILED"
        return {
            "id": t.id,
            "args": copy.deepcopy(t.args),
            "cluster": {"id": c.id, "name": c.name} if c else None,
            "description": t.description,
            "error_code": "LOAD_CLUSTER_FAILED" if failed and t.resource_type == "Cluster" else
                          ("TASK_FAILED" if failed else None),
            "error_message": (t.fault_msg or f"{t.description} failed") if failed else None,
            "finished_at": iso_ms(self._wall_at(finished)) if finished is not None else None,
            "internal": False,
            "key": t.key,
            "local_created_at": iso_ms(t.created_wall),
            "progress": t.progress(now),
            "resource_id": t.resource_id,
            "resource_mutation": t.resource_mutation,
            "resource_rollback_error": None,
            "resource_rollback_retry_count": None,
            "resource_rollbacked": None,
            "resource_type": t.resource_type,
            "snapshot": json.dumps({"id": t.resource_id, **{k: v for k, v in t.args.items() if k in ("ip", "name")}},
                                   ensure_ascii=False),
            "started_at": iso_ms(self._wall_at(started)) if started is not None else None,
            "status": st,
            "steps": [],
            "type": None,
            "user": {"id": t.user_id, "name": "root"} if t.user_id else None,
        }

    def list_tasks(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self.task_view(t) for t in self.tasks.values()]

    # ------------------------------------------------------------------ organizations / datacenters
    def organization_view(self, o: Organization) -> dict:
        return {"id": o.id, "name": o.name,
                "datacenters": [{"id": d.id, "name": d.name} for d in self.datacenters.values()
                                if d.organization_id == o.id]}

    def list_organizations(self) -> list[dict]:
        with self.lock:
            return [self.organization_view(o) for o in self.organizations.values()]

    def datacenter_view(self, d: Datacenter) -> dict:
        org = self.organizations.get(d.organization_id)
        clusters = [c for c in self.clusters.values() if d.id in c.datacenter_ids]
        connected = [c for c in clusters if self.connect_state(c) == "CONNECTED"]
        host_num = 0
        for c in connected:
            info = self._info(c)
            host_num += len(info["hosts"]) if info else 0
        return {
            "id": d.id, "name": d.name, "cluster_num": len(clusters), "host_num": host_num, "vm_num": 0,
            "total_data_capacity": None, "used_data_space": None, "failure_data_space": None,
            "total_cpu_hz": None, "used_cpu_hz": None, "total_memory_bytes": None, "used_memory_bytes": None,
            "organization": {"id": org.id, "name": org.name} if org else None,
            "clusters": [{"id": c.id, "name": c.name} for c in clusters],
            "labels": [],
        }

    def list_datacenters(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self.datacenter_view(d) for d in self.datacenters.values()]

    def create_datacenters(self, items: list, user_id: str | None, fault: dict | None = None) -> list[dict]:
        """``create-datacenter``: every item is checked before any is created (all or nothing)."""
        with self.lock:
            seen: set[tuple[str, str]] = set()
            for i, it in enumerate(items):
                if not isinstance(it, dict):
                    raise RestError(400, f"[{i}] must be an object {{organization_id, name}}")
                org_id, name = it.get("organization_id"), it.get("name")
                if not isinstance(org_id, str) or not org_id:
                    raise RestError(400, f"[{i}].organization_id is required")
                if org_id not in self.organizations:
                    raise RestError(404, f"[{i}].organization_id: no organization with id {org_id}")
                if not isinstance(name, str) or not name.strip():
                    raise RestError(400, f"[{i}].name is required")
                unknown = set(it) - {"organization_id", "name", "clusters"}
                if unknown:
                    raise RestError(400, f"[{i}]: unknown field(s) {sorted(unknown)} for DatacenterCreationParams")
                if (org_id, name) in seen or any(d.name == name and d.organization_id == org_id
                                                 for d in self.datacenters.values()):
                    raise RestError(400, f"[{i}].name: a datacenter named {name!r} already exists in organization "
                                         f"{self.organizations[org_id].name!r}")
                seen.add((org_id, name))
            out = []
            for it in items:
                d = Datacenter(self._new_id("datacenter"), it["name"], it["organization_id"])
                self.datacenters[d.id] = d
                task_id = None
                if self.datacenter_task:
                    t = self._task(description=f"create datacenter {d.name}", key="create_datacenter",
                                   resource_type="Datacenter", resource_id=d.id, mutation="createDatacenter",
                                   args={"name": d.name, "organization_id": d.organization_id},
                                   running_s=DATACENTER_TASK_S, user_id=user_id, fault=fault)
                    task_id = t.id
                out.append({"data": self.datacenter_view(d), "task_id": task_id})
            return out

    # ------------------------------------------------------------------ clusters
    def connect_state(self, c: Cluster) -> str:
        t = self.tasks.get(c.task_id)
        st = t.status(self.clock.now()) if t else "SUCCESSED"
        return {"PENDING": "INITIALIZING", "EXECUTING": "INITIALIZING", "SUCCESSED": "CONNECTED"}.get(
            st, "CONNECTED_ERROR")

    def _info(self, c: Cluster) -> dict | None:
        return self.smtx.info(c.ip) if self.smtx is not None else None

    def connect_clusters(self, items: list, user_id: str | None, fault: dict | None = None) -> list[dict]:
        """``connect-cluster``: CloudTower reaches each cluster first (synchronous 400 with a
        ClusterConnectorErrorCode when it cannot), then a task connects it."""
        with self.lock:
            probes = []
            for i, it in enumerate(items):
                if not isinstance(it, dict):
                    raise RestError(400, f"[{i}] must be an object {{datacenter_id, ip, username, password}}")
                unknown = set(it) - {"datacenter_id", "ip", "username", "password", "primary_zone_datacenter_id",
                                     "secondary_zone_datacenter_id"}
                if unknown:
                    raise RestError(400, f"[{i}]: unknown field(s) {sorted(unknown)} for ClusterCreationParams")
                for k in ("ip", "username", "password"):
                    if not isinstance(it.get(k), str) or not it.get(k):
                        raise RestError(400, f"[{i}].{k} is required")
                dc = it.get("datacenter_id")
                if dc is not None and dc not in self.datacenters:
                    raise RestError(404, f"[{i}].datacenter_id: no datacenter with id {dc}")
                try:
                    ip = str(ipaddress.IPv4Address(it["ip"].strip()))
                except ValueError:
                    raise RestError(400, f"[{i}].ip {it['ip']!r} is not an IPv4 address") from None
                if any(c.ip == ip and self.connect_state(c) != "CONNECTED_ERROR" for c in self.clusters.values()):
                    raise RestError(400, f"[{i}]: the cluster at {ip} is already connected to this CloudTower")
                if self.smtx is None:
                    raise RestError(400, f"[{i}]: no SMTX OS cluster answers at {ip}", "LOAD_CLUSTER_NOT_FOUND")
                problem = self.smtx.probe(ip, it["username"], it["password"])
                if problem is not None:
                    raise RestError(400, f"[{i}]: {problem[1]}", problem[0])
                probes.append((ip, dc))
            out = []
            for ip, dc in probes:
                info = self.smtx.info(ip) or {}
                for old in [c for c in self.clusters.values() if c.ip == ip]:     # a failed earlier attempt
                    self.clusters.pop(old.id, None)
                cid = self._new_id("cluster")
                t = self._task(description=f"connect cluster {ip}", key="connect_cluster", resource_type="Cluster",
                               resource_id=cid, mutation="connectCluster",
                               args={"ip": ip, "datacenter_id": dc, "username": "root", "name": info.get("name")},
                               running_s=max(0.0, float(self.connect_seconds) - float(self.task_pending)),
                               user_id=user_id, cluster_id=cid, fault=fault)
                c = Cluster(id=cid, ip=ip, name=info.get("name"), version=info.get("version") or "6.2.0",
                            local_id=(info.get("license") or {}).get("serial"),
                            settings_id=cuid("smtx-sim://cloudtower", self.ip, "cluster-settings", cid),
                            datacenter_ids=[dc] if dc else [], task_id=t.id, connected_wall=self.clock.wall())
                self.clusters[cid] = c
                out.append({"data": self.cluster_view(c, basic=True), "task_id": t.id})
            return out

    def cluster_view(self, c: Cluster, *, basic: bool = False) -> dict:
        state = self.connect_state(c)
        info = self._info(c) if state == "CONNECTED" and not basic else None
        dcs = [self.datacenters[d] for d in c.datacenter_ids if d in self.datacenters]
        v: dict[str, Any] = {
            "id": c.id, "name": c.name, "ip": c.ip, "version": c.version, "architecture": "X86_64",
            "type": "SMTX_OS", "hypervisor": "ELF", "connect_state": state,
            "dns": [], "ntp_servers": [], "recommended_cpu_models": [], "total_cpu_models": [], "labels": [],
        }
        if basic:                                      # connect-cluster's answer (the guide's keys)
            return v
        lic = (info or {}).get("license") or {}
        hosts = [self._host_nested(c, h) for h in (info or {}).get("hosts", [])]
        rec = list((info or {}).get("recommended_cpu_models") or [])
        v.update({
            "application_highest_version": c.version,
            "applications": [],
            "auto_converge": True,
            "consistency_groups": [],
            "current_cpu_model": (info or {}).get("current_cpu_model"),
            "datacenters": [{"id": d.id, "name": d.name} for d in dcs],
            "disconnected_date": None,
            "disconnected_reason": "LOAD_CLUSTER_FAILED" if state == "CONNECTED_ERROR" else None,
            "dns": list((info or {}).get("dns") or []),
            "entityAsyncStatus": None,
            "everoute_cluster": None,
            "has_metrox": True,
            "host_num": len(hosts),
            "hosts": hosts,
            "iscsi_vip": (info or {}).get("iscsi_vip"),
            "is_all_flash": bool((info or {}).get("is_all_flash")),
            "license_expire_date": iso_ms(lic["sign_date"] + lic["period"]) if lic.get("sign_date") else None,
            "license_serial": lic.get("serial"),
            "license_sign_date": iso_ms(lic["sign_date"]) if lic.get("sign_date") else None,
            "license_type": lic.get("type"),
            "local_id": c.local_id,
            "management_vip": (info or {}).get("management_vip"),
            "max_chunk_num": lic.get("max_chunk_num"),
            "mgt_gateway": (info or {}).get("mgt_gateway"),
            "mgt_netmask": (info or {}).get("mgt_netmask"),
            "ntp_mode": (info or {}).get("ntp_mode"),
            "ntp_servers": list((info or {}).get("ntp_servers") or []),
            "recommended_cpu_models": rec,
            "settings": {"id": c.settings_id},
            "software_edition": lic.get("edition"),
            "stretch": False,
            "total_cpu_models": (["host_passthrough"] + rec) if info else [],
            "vcenterAccount": None,
            "vdses": [{"id": x["id"], "name": x["name"]} for x in self._vds_views(c, info)],
            "vhost_enabled": True,
            "vm_folders": [],
            "vm_num": 0,
            "vm_templates": [],
            "vms": [],
            "witness": None,
            "zones": [],
        })
        return v

    def list_clusters(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self.cluster_view(c) for c in self.clusters.values()]

    def _connected(self) -> list[tuple[Cluster, dict]]:
        self.settle()
        out = []
        with self.lock:
            for c in self.clusters.values():
                if self.connect_state(c) == "CONNECTED":
                    info = self._info(c)
                    if info is not None:
                        out.append((c, info))
        return out

    # ------------------------------------------------------------------ synced cluster objects
    def _host_nested(self, c: Cluster, h: dict) -> dict:
        return {"id": cuid("smtx-sim://cloudtower", self.ip, "host", c.id, h["local_id"]),
                "management_ip": h["management_ip"], "name": h["name"]}

    def list_hosts(self) -> list[dict]:
        out = []
        for c, info in self._connected():
            for h in info["hosts"]:
                out.append(self._host_nested(c, h) | {
                    "local_id": h["local_id"], "data_ip": h["data_ip"], "cluster": {"id": c.id, "name": c.name},
                    "os_version": h["version"], "status": "CONNECTED_HEALTHY", "merged_status": "HEALTHY",
                    "connect_status": "CONNECTED", "state": "IDLE", "labels": [], "vms": [],
                })
        return out

    def _vds_id(self, c: Cluster, local_id: str) -> str:
        return cuid("smtx-sim://cloudtower", self.ip, "vds", c.id, local_id)

    def _vds_views(self, c: Cluster, info: dict | None) -> list[dict]:
        if not info:
            return []
        vlans = info["vlans"]
        out = []
        for v in info["vdses"]:
            mine = [x for x in vlans if x["vds_local_id"] == v["local_id"]]
            out.append({"id": self._vds_id(c, v["local_id"]), "name": v["name"], "local_id": v["local_id"],
                        "bond_mode": v["bond_mode"], "internal": False, "ovsbr_name": v["ovsbr_name"],
                        "type": v["type"], "vlans_num": len(mine), "work_mode": "single",
                        "cluster": {"id": c.id, "name": c.name}, "entityAsyncStatus": None,
                        "everoute_cluster": None, "labels": [],
                        "nics": [],
                        "vlans": [{"id": self._vlan_id(c, x["local_id"]), "name": x["name"]} for x in mine]})
        out.append({"id": self._vds_id(c, "ovsbr-internal"), "name": "vds-ovsbr-internal",
                    "local_id": f"{c.local_id or c.id}-ovsbr-internal", "bond_mode": "", "internal": True,
                    "ovsbr_name": "ovsbr-internal", "type": "ACCESS", "vlans_num": 0, "work_mode": "single",
                    "cluster": {"id": c.id, "name": c.name}, "entityAsyncStatus": None, "everoute_cluster": None,
                    "labels": [], "nics": [], "vlans": []})
        return out

    def _vlan_id(self, c: Cluster, local_id: str) -> str:
        return cuid("smtx-sim://cloudtower", self.ip, "vlan", c.id, local_id)

    def list_vdses(self) -> list[dict]:
        out = []
        for c, info in self._connected():
            out += self._vds_views(c, info)
        return out

    def list_vlans(self) -> list[dict]:
        out = []
        for c, info in self._connected():
            names = {v["local_id"]: v["name"] for v in info["vdses"]}
            for x in info["vlans"]:
                out.append({"id": self._vlan_id(c, x["local_id"]), "name": x["name"], "local_id": x["local_id"],
                            "type": x["type"], "vlan_id": x["vlan_id"], "mode_type": "VLAN_ACCESS",
                            "network_ids": [], "vds": {"id": self._vds_id(c, x["vds_local_id"]),
                                                       "name": names.get(x["vds_local_id"])},
                            "gateway_ip": None, "gateway_subnetmask": None, "subnetmask": None,
                            "qos_burst": None, "qos_max_bandwidth": None, "qos_min_bandwidth": None,
                            "qos_priority": None, "entityAsyncStatus": None, "labels": [], "vm_nics": []})
        return out

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
                "sessions": [dataclasses.asdict(s) for s in self._sessions.values()
                             if s.expires is None or s.expires > now],
                "ntp_servers": list(self.ntp_servers),
                "tunables": {"task_pending": self.task_pending, "connect_seconds": self.connect_seconds,
                             "datacenter_task": self.datacenter_task, "session_ttl": self.session_ttl},
            }

    def import_state(self, state: dict) -> list[str]:
        def build(cls, d: dict):
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in d.items() if k in known})

        with self.lock:
            self._seq = int(state.get("seq", 0))
            self.started_wall = float(state.get("started_wall", self.started_wall))
            self.warmup_until = float(state.get("warmup_until", 0.0))
            self.warmup_status = int(state.get("warmup_status", 503))
            self.root = copy.deepcopy(state.get("root"))
            self.organizations = {o["id"]: build(Organization, o) for o in state.get("organizations", [])}
            self.datacenters = {d["id"]: build(Datacenter, d) for d in state.get("datacenters", [])}
            self.clusters = {c["id"]: build(Cluster, c) for c in state.get("clusters", [])}
            self.tasks = {t["id"]: build(Task, t) for t in state.get("tasks", [])}
            self._sessions = {s["digest"]: build(Session, s) for s in state.get("sessions", [])}
            self.ntp_servers = list(state.get("ntp_servers", []))
            tun = state.get("tunables") or {}
            self.task_pending = float(tun.get("task_pending", self.task_pending))
            self.connect_seconds = float(tun.get("connect_seconds", self.connect_seconds))
            self.datacenter_task = bool(tun.get("datacenter_task", self.datacenter_task))
            ttl = tun.get("session_ttl", self.session_ttl)
            self.session_ttl = None if ttl is None else float(ttl)
        return []

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

    def import_state(self, saved: dict) -> list[str]:
        """Re-create every saved tower and mount its apps (endpoint up/down comes from the snapshot's
        ``endpoints``, restored after the families)."""
        notes: list[str] = []
        for st in (saved or {}).get("towers", []):
            ip = st.get("ip")
            if not ip:
                notes.append("cloudtower: a saved tower without ip was skipped")
                continue
            with self.lock:
                t = self.towers.get(ip)
                if t is None:
                    if self.factory is None:
                        notes.append(f"cloudtower {ip}: no factory to re-create it; skipped")
                        continue
                    t = self.factory(ip)
                    self.towers[ip] = t
            notes += list(t.import_state(st) or [])
            if self.attach is not None:
                self.attach(t, False)
        return notes
