"""SMTX OS cluster management API ("fisheye", guide §03) -- state only, no HTTP.

``responses.py`` maps the routes onto :class:`FisheyeModel`. The model becomes *active* when a
deployment succeeds (a :class:`~mocks.deployment.models.DeploymentModel` listener); before that
the routes answer 404 like an undeployed host.

* root account (``users:setupRoot``) -- only a salted PBKDF2 digest of the password is kept;
* sessions -- only a SHA-256 digest of each token is kept; expiry runs on *simulated* time;
* settings: VIP, DNS, NTP, CPU compatibility; license;
* jobs -- long operations whose state (pending -> running -> done | failed) is computed from
  simulated time on every read; their effects apply when they end (:meth:`FisheyeModel.settle`);
* VDSes and VLANs (the deployment's management / storage VDS and networks included);
* IPMI accounts, checked against the BMC credentials the world was seeded with;
* SVT image uploads -- chunk accounting only (bytes are counted and hashed, never kept).

Everything :meth:`FisheyeModel.export_state` returns is JSON-able and free of passwords and tokens;
:meth:`FisheyeModel.import_state` restores it.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
import hmac
import ipaddress
import math
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core import SimClock, timed_phase
from ..deployment.models import BOND_MODES, DeploymentModel, DeployOperation, SimHost, ovsbr_name

# --------------------------------------------------------------------------- error codes
# v2 routes answer the SmartX envelope; these ``ec`` values are the simulator's (the vendor's
# own codes are not documented), stable for tests.
EC_UNAUTHORIZED = "EUNAUTHORIZED"      # 401: missing / unknown / expired / revoked x-smartx-token
EC_BAD_REQUEST = "EBADREQUEST"         # 400: body is not JSON / not the expected shape
EC_INVALID = "EINVALIDARGUMENT"        # 400: a value failed validation
EC_EXISTS = "EALREADYEXISTS"           # 400: duplicate name / NIC already in a VDS
EC_NOT_FOUND = "ENOTFOUND"             # 404: unknown job / VDS / image
EC_JOB_FAILED = "EJOBFAILED"           # job.error.code of a failed job

# v3 routes (grpc-gateway style) answer plain errors: {"code": <gRPC code>, "message": ..., "details": []}
GRPC_INVALID_ARGUMENT = 3              # HTTP 400
GRPC_ALREADY_EXISTS = 6                # HTTP 409
GRPC_FAILED_PRECONDITION = 9           # HTTP 400
GRPC_UNAUTHENTICATED = 16              # HTTP 401

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024   # the guide's chunk_size
DEFAULT_SESSION_TTL = 7 * 24 * 3600.0  # the guide's sample: expire_time = create_time + 7 days
JOB_PENDING_S = 2.0                    # simulated seconds a job stays pending
JOB_RUNNING_S = 3.0                    # ... then running
MAX_CHUNKS = 1_000_000
IPMI_PORT = 623
PBKDF2_ITERATIONS = 20_000
SVT_IMAGE_DIR = "/usr/share/smartx/images/vmtools"
# image uploads: "SVT" (guide §03, /api/v2/svt_image/*) and "ISO" (guide §04, /api/v2/images/upload*)
UPLOAD_KINDS = ("SVT", "ISO")
ISCSI_IQN = "iqn.2016-02.com.smartx:system"       # the guide's ISO image_path: iscsi://<iqn>:zbs-iscsi-datastore-<uuid>/<lun>
FIRST_ISCSI_LUN = 64                               # the guide's samples show LUNs 67..225
ISO_DEVICES = ("nfs",)                             # the guide: "device ... 只支持 nfs"

# VLAN ``type``: 3 is the guide's (a VM / business network). 1 and 2 are the simulator's choice for
# the system networks the deployment creates (management, storage).
VLAN_TYPE_MGMT, VLAN_TYPE_STORAGE, VLAN_TYPE_VM = 1, 2, 3
# VDS ``type``: the guide's sample shows 1. The simulator reads it as "OVS VDS" and uses 1 for every
# VDS, the deployment's management and storage VDS included (their role shows in their VLANs).
VDS_TYPE = 1

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


class FisheyeError(Exception):
    """A v2 error: answered as ``{"data": null, "ec": ec, "error": {"msg": msg}}`` with ``status``."""

    def __init__(self, ec: str, msg: str, status: int = 400):
        super().__init__(msg)
        self.ec, self.msg, self.status = ec, msg, status


class V3Error(Exception):
    """A v3 error: answered as ``{"code": code, "message": msg, "details": []}`` with ``status``."""

    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _invalid(msg: str) -> FisheyeError:
    return FisheyeError(EC_INVALID, msg, 400)


def _ipv4(v: Any) -> ipaddress.IPv4Address | None:
    if not isinstance(v, str):
        return None
    try:
        return ipaddress.IPv4Address(v.strip())
    except ValueError:
        return None


def _is_ip(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        ipaddress.ip_address(v.strip())
        return True
    except ValueError:
        return False


def rfc3339_nano(ns: int) -> str:
    """``2025-09-27T22:38:57.921456349Z`` (nanoseconds, as the guide's session sample)."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    t = _dt.datetime.fromtimestamp(sec, tz=_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{frac:09d}Z"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def cpu_models_for(cpu: dict) -> list[str]:
    """Recommended ELF CPU models for one host's CPU (deterministic). AMD EPYC gives ``["EPYC"]``
    as the guide shows for the scan example's AMD EPYC 7K62."""
    vendor = str(cpu.get("vendor") or "")
    brand = str(cpu.get("brand") or "")
    if vendor == "AuthenticAMD":
        return ["EPYC"] if "EPYC" in brand.upper() else ["Opteron_G5"]
    if vendor == "HygonGenuine":
        return ["Dhyana"]
    if vendor == "GenuineIntel":
        if "XEON" in brand.upper():
            return ["Skylake-Server-IBRS", "Skylake-Server"]
        return ["Haswell-noTSX"]
    return []


# --------------------------------------------------------------------------- jobs
@dataclass
class Job:
    job_id: str
    description: str                     # e.g. NETWORK_CREATE_VDS (the guide's), SETTINGS_UPDATE_DNS
    event_name: str                      # e.g. CREATE_VDS
    action: str                          # effect applied when done: vip | dns | ntp | vds
    args: dict                           # the effect's arguments (no secrets)
    created: float                       # simulated seconds
    ctime: int                           # wall clock UNIX seconds (the guide's ctime)
    resources: dict = field(default_factory=dict)
    event_message: dict = field(default_factory=dict)     # {"zh_CN", "en_US"}
    event_detail: dict = field(default_factory=dict)
    event_data: dict = field(default_factory=dict)
    pending_s: float = JOB_PENDING_S
    running_s: float = JOB_RUNNING_S
    fault: str | None = None             # None | "stuck" | "fail"
    fault_msg: str | None = None
    fault_rule: str | None = None
    applied: bool = False
    outcome: str | None = None           # "done" | "failed" once applied
    message: str | None = None           # failure message
    finished_at: float | None = None

    def timed_state(self, now: float) -> str:
        return timed_phase(now, self.created, self.pending_s, self.running_s, self.fault)

    def state(self, now: float) -> str:
        return self.outcome if self.applied and self.outcome else self.timed_state(now)

    def view(self, now: float) -> dict:
        """``data.job`` of ``GET /api/v2/jobs/{id}`` (the guide's VDS job sample, plus message/error)."""
        state = self.state(now)
        failed = state == "failed"
        msg = (self.message or self.fault_msg or f"job {self.description} failed") if failed else None
        return {
            "job_id": self.job_id,
            "state": state,
            "life_cycle": "run",
            "description": self.description,
            "type": "action",
            "user": "",
            "resources": copy.deepcopy(self.resources),
            "schedule_task": None,
            "one_time_task": None,
            "ctime": self.ctime,
            "task_list": [],
            "queue": None,
            "resource_group": None,
            "event": {
                "event_name": self.event_name,
                "user_name": "root",
                "user_role": "ROOT",
                "resources": {k: v.get("type", "") for k, v in self.resources.items() if isinstance(v, dict)},
                "message": dict(self.event_message),
                "detail": dict(self.event_detail),
                "data": dict(self.event_data),
                "user_type": "USER",
                "batch": None,
            },
            "message": msg,
            "error": {"code": EC_JOB_FAILED, "msg": msg} if failed else None,
        }


# --------------------------------------------------------------------------- network objects
@dataclass
class Vds:
    uuid: str
    name: str
    ovsbr_name: str
    bond_mode: str                       # "" for a single-NIC VDS without a bond
    hosts: dict[str, dict]               # host_uuid -> {"nics": [...], "data_ip": str | None}
    role: str = "business"               # mgt | storage | business (the simulator's, not shown)
    ready: bool = True                   # False while its creation job runs
    job_id: str | None = None
    description: str = ""

    @property
    def bonded(self) -> bool:
        return any(len(h["nics"]) > 1 for h in self.hosts.values()) or bool(self.bond_mode)

    @property
    def bond_name(self) -> str:
        return f"bond-m-{self.uuid.split('-')[0][:8]}" if self.bonded else ""

    def _common(self) -> dict:
        return {"bond_name": self.bond_name, "bond_type": "ovs_bond" if self.bonded else "",
                "bond_mode": self.bond_mode, "work_mode": "single", "qos_enable": False, "rb_interval": ""}

    def resource(self) -> dict:
        """The VDS as a job resource (the guide's job sample)."""
        c = self._common()
        return {"type": "NETWORK_VDS", "uuid": self.uuid, "name": self.name, "ovsbr_name": self.ovsbr_name,
                "description": self.description, "status": "created",
                "hosts_associated": {u: {"host_uuid": u, "nics_associated": list(h["nics"]), "data_ip": h["data_ip"]}
                                     for u, h in self.hosts.items()},
                "bond_name": c["bond_name"], "bond_type": c["bond_type"], "bond_mode": c["bond_mode"],
                "work_mode": c["work_mode"], "qos_enable": c["qos_enable"], "rb_interval": c["rb_interval"]}

    def view(self, vlans_count: int) -> dict:
        """``GET /api/v2/network/vds/{uuid}`` data (the guide's shape)."""
        c = self._common()
        return {"uuid": self.uuid, "bond_mode": c["bond_mode"], "bond_name": c["bond_name"],
                "bond_type": c["bond_type"], "description": self.description, "name": self.name,
                "ovsbr_name": self.ovsbr_name, "qos_enable": c["qos_enable"], "rb_interval": c["rb_interval"],
                "type": VDS_TYPE, "work_mode": c["work_mode"],
                "hosts_associated": [{"host_uuid": u, "nics_associated": list(h["nics"]), "data_ip": h["data_ip"]}
                                     for u, h in self.hosts.items()],
                "vlans_count": vlans_count}


@dataclass
class Vlan:
    uuid: str
    name: str
    vds_uuid: str
    vlan_id: int
    type: int = VLAN_TYPE_VM

    def view(self) -> dict:
        return {"uuid": self.uuid, "name": self.name, "vds_uuid": self.vds_uuid, "vlan_id": self.vlan_id,
                "type": self.type, "enable_dhcp": False, "vms_count": 0, "vm_snapshots_count": 0,
                "vm_templates_count": 0, "dhcp_config": None}


# --------------------------------------------------------------------------- image uploads (SVT, ISO)
def iscsi_datastore(cluster_name: str | None) -> str:
    """The cluster's iSCSI datastore name, ``zbs-iscsi-datastore-<uuid>`` (stable per cluster)."""
    return "zbs-iscsi-datastore-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://datastore/{cluster_name or ''}"))


def iscsi_path(cluster_name: str | None, lun: int) -> str:
    """``iscsi://iqn.2016-02.com.smartx:system:zbs-iscsi-datastore-<uuid>/<lun>`` (the guide's image_path)."""
    return f"iscsi://{ISCSI_IQN}:{iscsi_datastore(cluster_name)}/{int(lun)}"


@dataclass
class Upload:
    """One upload volume: an SVT image (``kind="SVT"``, guide §03) or an ISO image (``kind="ISO"``,
    guide §04). ``received[i]`` counts the accepted receipts of chunk ``i``; ``digests[i]`` is the
    SHA-256 of the last accepted chunk ``i``. Bytes are never kept."""

    image_uuid: str
    zbs_volume_id: str
    name: str
    size: int
    chunk_size: int
    created: float
    received: list[int] = field(default_factory=list)
    digests: list[str | None] = field(default_factory=list)
    bytes_received: int = 0
    rejected: int = 0                    # chunk uploads answered 400 (wrong size / index)
    status: str = "uploading"            # uploading | ready (an image) | deleted
    kind: str = "SVT"                    # SVT | ISO
    path: str = ""                       # ISO: the iscsi:// image path; "" = the SVT path
    description: str = ""
    device: str = ""                     # ISO: the upload's storage type (nfs)
    created_wall: int = 0                # wall-clock UNIX seconds (GET /api/v2/images "time")

    @property
    def chunks(self) -> int:
        return len(self.received)

    @property
    def image_path(self) -> str:
        return self.path or f"{SVT_IMAGE_DIR}/{self.image_uuid}"

    @property
    def to_upload(self) -> list[int]:
        return [i for i, n in enumerate(self.received) if n == 0]

    @property
    def complete(self) -> bool:
        return self.chunks > 0 and all(n > 0 for n in self.received)

    def expected_length(self, chunk_num: int) -> int:
        if chunk_num < self.chunks - 1:
            return self.chunk_size
        return self.size - self.chunk_size * (self.chunks - 1)

    def volume(self) -> dict:
        """The guide's create_volume ``data`` (also the answer to every chunk upload)."""
        return {"chunk_size": self.chunk_size, "image_path": self.image_path, "image_uuid": self.image_uuid,
                "to_upload": self.to_upload, "zbs_volume_id": self.zbs_volume_id}

    def image(self) -> dict:
        return {"uuid": self.image_uuid, "name": self.name, "size": self.size, "path": self.image_path,
                "type": f"{self.kind}_IMAGE" if self.status == "ready" else "UPLOADING", "status": self.status,
                "zbs_volume_id": self.zbs_volume_id, "chunk_size": self.chunk_size, "to_upload": self.to_upload}

    def listed(self) -> dict:
        """The guide's ``GET /api/v2/images`` item (§04 sample; same keys for SVT images)."""
        return {"description": self.description, "file_name": self.image_uuid, "md5": None, "name": self.name,
                "os": None, "path": self.image_path, "resource_state": "in-use", "size": self.size,
                "time": self.created_wall or int(self.created), "type": f"{self.kind}_IMAGE",
                "uuid": self.image_uuid, "vm_snapshots_count": 0, "vm_templates_count": 0, "vms_count": 0,
                "zbs_volume_id": self.zbs_volume_id}


@dataclass
class Session:
    digest: str                          # sha256 of the token: the token itself is never stored
    user: str
    created: float                       # simulated seconds
    expires: float                       # simulated seconds


# --------------------------------------------------------------------------- the model
class FisheyeModel:
    """The cluster as fisheye (the SMTX OS management API) sees it after deployment."""

    family = "fisheye"

    def __init__(self, clock: SimClock, deployment: DeploymentModel, *, secrets: set[str] | None = None):
        self.clock = clock
        self.deployment = deployment
        self.lock = threading.RLock()
        self.secrets = secrets if secrets is not None else set()   # shared with the request log
        # ---- tunables (tests may change them)
        self.session_ttl = DEFAULT_SESSION_TTL
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.job_pending = JOB_PENDING_S
        self.job_running = JOB_RUNNING_S
        # ---- hooks set by the Simulator
        self.vip_hook: Callable[[str | None, str | None], None] | None = None   # (old, new) VIP address
        self.is_alive: Callable[[str], bool] = lambda address: True
        # ---- state
        self.cluster: dict | None = None
        self.root_login: dict | None = None
        self._sessions: dict[str, Session] = {}
        self.settings: dict[str, Any] = {"management_vip": None, "iscsi_vip": None, "dns_servers": [],
                                         "ntp_mode": "internal", "ntp_servers": [], "cpu_model": None}
        self.vdses: dict[str, Vds] = {}
        self.vlans: dict[str, Vlan] = {}
        self.jobs: dict[str, Job] = {}
        self.uploads: dict[str, Upload] = {}
        self._iscsi_lun = FIRST_ISCSI_LUN - 1             # last LUN handed out (ISO images, VM disks)
        self.ipmi_accounts: dict[str, dict] = {}
        self.broken_bmcs: set[str] = set()
        self._bmc: dict[str, tuple[str, str, str]] = {}     # mgmt ip -> (bmc ip, user, salted digest)
        self._bmc_salt = os.urandom(16)

    # ------------------------------------------------------------------ seeding / activation
    def set_bmc_credentials(self, creds: dict[str, tuple[str | None, str | None, str | None]]) -> None:
        """``{host mgmt ip: (bmc ip, user, password)}`` from the plan. Only a salted digest of the
        password is kept (in memory; never in snapshots)."""
        with self.lock:
            for ip, (bmc_ip, user, password) in creds.items():
                if bmc_ip:
                    self._bmc[str(ip)] = (str(bmc_ip), str(user or ""), self._bmc_digest(password or ""))

    def _bmc_digest(self, password: str) -> str:
        return hmac.new(self._bmc_salt, password.encode("utf-8"), hashlib.sha256).hexdigest()

    @property
    def active(self) -> bool:
        return self.cluster is not None

    def on_deployment(self, op: DeployOperation, state: str) -> None:
        """DeploymentModel listener: a successful deployment brings fisheye up."""
        if state == "success":
            self.activate(op)

    def activate(self, op: DeployOperation) -> None:
        p = op.payload or {}
        with self.lock:
            hosts = {u: self.deployment.host_by_uuid(u) for u in op.host_uuids}
            storage_ip = {u: (op.effects.get(u) or {}).get("storage_ip") for u in op.host_uuids}
            mgt = next((n for n in p.get("networks", []) if isinstance(n, dict) and n.get("network_type") == "mgt"),
                       {})
            cfg = mgt.get("network_config") or {}
            subnet, gateway = None, None
            for s in cfg.get("service") or []:
                try:
                    subnet = str(ipaddress.IPv4Interface(f"{s['service_interface_ip']}/{s['netmask']}").network)
                    break
                except (KeyError, TypeError, ValueError):
                    continue
            for r in cfg.get("route") or []:
                if isinstance(r, dict) and _ipv4(r.get("gateway")):
                    gateway = str(_ipv4(r["gateway"]))
                    break
            self.cluster = {"name": op.cluster_name, "hosts": list(op.host_uuids), "operation": op.id,
                            "mgmt_subnet": subnet, "gateway": gateway, "activated_wall": int(self.clock.wall())}
            # the deployment's VDSes and their networks
            roles = {}
            for n in p.get("networks", []):
                if isinstance(n, dict) and n.get("network_type") in ("mgt", "storage"):
                    roles.setdefault(n.get("attached_vds"), n["network_type"])
            for v in p.get("vdses", []):
                if not isinstance(v, dict) or not v.get("name"):
                    continue
                name = v["name"]
                vu = str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://vds/{op.cluster_name}/{name}"))
                assoc = {}
                for a in v.get("hosts_associated") or []:
                    u = a.get("host_uuid")
                    if u in hosts:
                        assoc[u] = {"nics": list(a.get("nics_associated") or []), "data_ip": storage_ip.get(u)}
                self.vdses[vu] = Vds(vu, name, ovsbr_name(op.cluster_name, name), v.get("bond_mode") or "", assoc,
                                     role=roles.get(name, "business"))
            by_name = {v.name: v for v in self.vdses.values()}
            for n in p.get("networks", []):
                if not isinstance(n, dict) or n.get("attached_vds") not in by_name:
                    continue
                vds = by_name[n["attached_vds"]]
                ids = (n.get("mode") or {}).get("network_identities") or [0]
                ntype = n.get("network_type")
                vtype = {"mgt": VLAN_TYPE_MGMT, "storage": VLAN_TYPE_STORAGE}.get(ntype, VLAN_TYPE_VM)
                name = n.get("name") or f"{ntype}-network"
                lu = str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://vlan/{op.cluster_name}/{vds.name}/{name}"))
                self.vlans[lu] = Vlan(lu, name, vds.uuid, int(ids[0]) if isinstance(ids[0], int) else 0, vtype)
            ntp = p.get("ntp") or {}
            servers = ntp.get("ntp_server")
            if isinstance(servers, str):
                servers = [x.strip() for x in servers.split(",") if x.strip()]
            self.settings.update(dns_servers=list(p.get("dns_server") or []),
                                 ntp_mode=ntp.get("mode") or "internal", ntp_servers=list(servers or []))

    def cluster_hosts(self) -> list[SimHost]:
        if self.cluster is None:
            return []
        hosts = [self.deployment.host_by_uuid(u) for u in self.cluster["hosts"]]
        return [h for h in hosts if h is not None and h.deployed]

    def serves(self, address: str) -> bool:
        """Whether fisheye answers on ``address``: a deployed cluster host, or the applied VIP."""
        if self.cluster is None:
            return False
        if address == self.settings.get("management_vip"):
            return True
        return any(h.mgmt_ip == address for h in self.cluster_hosts())

    # ------------------------------------------------------------------ progress on read
    def settle(self) -> None:
        """Apply the effects of jobs that have ended by now (called on every request)."""
        self.deployment.settle()                   # may activate us (listener)
        hooks: list[Callable[[], None]] = []
        now = self.clock.now()
        with self.lock:
            for job in self.jobs.values():
                if job.applied:
                    continue
                state = job.timed_state(now)
                if state in ("pending", "running"):
                    continue
                job.applied = True
                job.finished_at = job.created + job.pending_s + job.running_s
                if state == "failed":
                    job.outcome = "failed"
                    job.message = job.fault_msg or f"job {job.description} failed (simulated failure)"
                    self._undo(job)
                    continue
                try:
                    hook = self._apply(job)
                    job.outcome = "done"
                    if hook is not None:
                        hooks.append(hook)
                except FisheyeError as exc:
                    job.outcome, job.message = "failed", exc.msg
                    self._undo(job)
        for hook in hooks:
            hook()

    def _apply(self, job: Job) -> Callable[[], None] | None:
        a = job.args
        if job.action == "vip":
            old, new = self.settings.get("management_vip"), a.get("management_vip")
            self.settings["management_vip"], self.settings["iscsi_vip"] = new, a.get("iscsi_vip")
            if old != new and self.vip_hook is not None:
                hook = self.vip_hook
                return lambda: hook(old, new)
            return None
        if job.action == "dns":
            self.settings["dns_servers"] = list(a["dns_servers"])
        elif job.action == "ntp":
            self.settings["ntp_mode"], self.settings["ntp_servers"] = a["ntp_mode"], list(a["ntp_servers"])
        elif job.action == "vds":
            vds = self.vdses.get(a["vds_uuid"])
            if vds is not None:
                vds.ready = True
                for u, h in vds.hosts.items():
                    host = self.deployment.host_by_uuid(u)
                    if host is not None:
                        host.add_bridge(vds.ovsbr_name, h["nics"])
        return None

    def _undo(self, job: Job) -> None:
        if job.action == "vds":
            vds = self.vdses.get(job.args.get("vds_uuid"))
            if vds is not None and not vds.ready:
                del self.vdses[vds.uuid]

    def _job(self, description: str, event_name: str, action: str, args: dict, *, fault: dict | None,
             resources: dict | None = None, message: tuple[str, str] = ("", ""),
             detail: tuple[str, str] = ("", ""), data: dict | None = None) -> Job:
        job = Job(job_id=str(uuid.uuid4()), description=description, event_name=event_name, action=action,
                  args=args, created=self.clock.now(), ctime=int(self.clock.wall()), resources=resources or {},
                  event_message={"zh_CN": message[0], "en_US": message[1]},
                  event_detail={"zh_CN": detail[0], "en_US": detail[1]}, event_data=data or {},
                  pending_s=self.job_pending, running_s=self.job_running)
        if fault and fault.get("operation") in ("stuck", "fail"):
            job.fault, job.fault_msg, job.fault_rule = fault["operation"], fault.get("msg"), fault.get("rule")
        self.jobs[job.job_id] = job
        return job

    def job(self, job_id: str) -> dict:
        self.settle()
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise FisheyeError(EC_NOT_FOUND, f"job {job_id} not found", 404)
            return job.view(self.clock.now())

    # ------------------------------------------------------------------ v3: root account and sessions
    def setup_root(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise V3Error(400, GRPC_INVALID_ARGUMENT, "request body must be a JSON object")
        pw, repeat = body.get("password"), body.get("repeat")
        if body.get("encrypted"):
            raise V3Error(400, GRPC_INVALID_ARGUMENT,
                          "encrypted passwords are not supported by the simulator; send encrypted=false")
        if not isinstance(pw, str) or not isinstance(repeat, str):
            raise V3Error(400, GRPC_INVALID_ARGUMENT, "password and repeat are required strings")
        if pw != repeat:
            raise V3Error(400, GRPC_INVALID_ARGUMENT, "password and repeat do not match")
        if not 8 <= len(pw) <= 64:
            raise V3Error(400, GRPC_INVALID_ARGUMENT, "password must be 8 to 64 characters long")
        with self.lock:
            if self.root_login is not None:
                raise V3Error(409, GRPC_ALREADY_EXISTS, "the root user's password has already been set up")
            salt = os.urandom(16)
            self.root_login = {"scheme": "pbkdf2-sha256", "iterations": PBKDF2_ITERATIONS, "salt": salt.hex(),
                               "digest": hashlib.pbkdf2_hmac("sha256", pw.encode("utf-8"), salt,
                                                             PBKDF2_ITERATIONS).hex()}
            self.secrets.add(pw)
        return {"id": "root", "username": "root", "password": "", "email": "root@test.com", "role": "ROOT",
                "annotation": "", "auth_provider_id": "local"}

    def check_root_password(self, password: str) -> bool:
        with self.lock:
            rl = self.root_login
        if rl is None or not isinstance(password, str):
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(rl["salt"]),
                                  int(rl["iterations"])).hex()
        return hmac.compare_digest(got, rl["digest"])

    def login(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise V3Error(400, GRPC_INVALID_ARGUMENT, "request body must be a JSON object")
        if body.get("encrypted"):
            raise V3Error(400, GRPC_INVALID_ARGUMENT,
                          "encrypted passwords are not supported by the simulator; send encrypted=false")
        user, pw = body.get("username"), body.get("password")
        if not isinstance(user, str) or not isinstance(pw, str):
            raise V3Error(400, GRPC_INVALID_ARGUMENT, "username and password are required strings")
        if self.root_login is None:
            raise V3Error(400, GRPC_FAILED_PRECONDITION, "the root user's password has not been set up yet")
        if user != "root" or not self.check_root_password(pw):
            raise V3Error(401, GRPC_UNAUTHENTICATED, "invalid username or password")
        token = uuid.uuid4().hex
        now = self.clock.now()
        base = time.time_ns() + int(self.clock.skew * 1e9)
        with self.lock:
            self._sessions[_digest(token)] = Session(_digest(token), user, now, now + float(self.session_ttl))
            self.secrets.add(token)
        return {"user_id": user, "token": token, "create_time": rfc3339_nano(base),
                "expire_time": rfc3339_nano(base + int(float(self.session_ttl) * 1e9) + 70),
                "update_time": rfc3339_nano(base + 160)}

    def authenticate(self, token: str | None) -> str:
        """The user a token belongs to; raises 401 when missing, unknown, expired or revoked."""
        if not token:
            raise FisheyeError(EC_UNAUTHORIZED, "missing x-smartx-token header", 401)
        now = self.clock.now()
        with self.lock:
            s = self._sessions.get(_digest(token))
            if s is None:
                raise FisheyeError(EC_UNAUTHORIZED, "invalid or revoked x-smartx-token", 401)
            if now >= s.expires:
                self._sessions.pop(s.digest, None)
                raise FisheyeError(EC_UNAUTHORIZED, "x-smartx-token has expired; log in again", 401)
            return s.user

    def revoke_tokens(self) -> int:
        """Revoke every session (e.g. fisheye restarted); returns how many were live."""
        with self.lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n

    @property
    def session_count(self) -> int:
        now = self.clock.now()
        with self.lock:
            return sum(1 for s in self._sessions.values() if s.expires > now)

    # ------------------------------------------------------------------ settings
    def vip(self) -> dict:
        return {"iscsi_vip": self.settings.get("iscsi_vip"), "management_vip": self.settings.get("management_vip")}

    def set_vip(self, body: Any, fault: dict | None = None) -> dict:
        if not isinstance(body, dict) or "management_vip" not in body:
            raise FisheyeError(EC_BAD_REQUEST, 'body must be {"iscsi_vip": ..., "management_vip": ...}')
        new, iscsi = body.get("management_vip"), body.get("iscsi_vip")
        if new is not None:
            ip = _ipv4(new)
            if ip is None:
                raise _invalid(f"management_vip {new!r} is not an IPv4 address")
            subnet = self.cluster.get("mgmt_subnet") if self.cluster else None
            if subnet:
                net = ipaddress.IPv4Network(subnet)
                if ip not in net or ip in (net.network_address, net.broadcast_address):
                    raise _invalid(f"management_vip {ip} is not a host address of the management network {net}")
            for h in self.cluster_hosts():
                if str(ip) in (h.mgmt_ip, h.storage_ip):
                    raise _invalid(f"management_vip {ip} is already used by host {h.hostname} ({h.mgmt_ip})")
            if self.cluster and str(ip) == self.cluster.get("gateway"):
                raise _invalid(f"management_vip {ip} is the management gateway")
            new = str(ip)
        if iscsi is not None:
            if _ipv4(iscsi) is None:
                raise _invalid(f"iscsi_vip {iscsi!r} is not an IPv4 address")
            iscsi = str(_ipv4(iscsi))
        with self.lock:
            job = self._job("SETTINGS_UPDATE_VIP", "UPDATE_VIP", "vip", {"management_vip": new, "iscsi_vip": iscsi},
                            fault=fault, message=(f"更新集群虚拟 IP 为 {new}。\n", f"Updated cluster VIP to {new}.\n"),
                            data={"management_vip": new, "iscsi_vip": iscsi})
        return {"job_id": job.job_id}

    def dns(self) -> dict:
        return {"dns_servers": list(self.settings["dns_servers"])}

    def set_dns(self, body: Any, fault: dict | None = None) -> dict:
        servers = body.get("dns_servers") if isinstance(body, dict) else None
        if not isinstance(servers, list):
            raise FisheyeError(EC_BAD_REQUEST, 'body must be {"dns_servers": ["IP", ...]}')
        if not servers:
            raise _invalid("dns_servers needs at least one DNS server")
        for s in servers:
            if not _is_ip(s):
                raise _invalid(f"DNS server {s!r} is not an IP address (DNS servers must be IPs)")
        servers = [str(ipaddress.ip_address(s.strip())) for s in servers]
        with self.lock:
            job = self._job("SETTINGS_UPDATE_DNS", "UPDATE_DNS", "dns", {"dns_servers": servers}, fault=fault,
                            message=("更新 DNS 服务器。\n", "Updated DNS servers.\n"),
                            detail=("DNS 服务器: " + ", ".join(servers) + "\n",
                                    "DNS servers: " + ", ".join(servers) + "\n"),
                            data={"dns_servers": servers})
        return {"job_id": job.job_id}

    def ntp(self) -> dict:
        return {"ntp_mode": self.settings["ntp_mode"], "ntp_servers": list(self.settings["ntp_servers"])}

    def set_ntp(self, body: Any, fault: dict | None = None) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("ntp_servers", []), list):
            raise FisheyeError(EC_BAD_REQUEST, 'body must be {"ntp_mode": "external", "ntp_servers": [...]}')
        mode, servers = body.get("ntp_mode"), body.get("ntp_servers") or []
        if mode not in ("internal", "external"):
            raise _invalid(f"ntp_mode {mode!r} must be 'internal' or 'external'")
        if mode == "external" and not servers:
            raise _invalid("ntp_servers needs at least one server when ntp_mode is 'external'")
        out = []
        for s in servers:
            if _is_ip(s):
                out.append(str(ipaddress.ip_address(s.strip())))
            elif isinstance(s, str) and _HOSTNAME.match(s.strip()):
                out.append(s.strip().rstrip("."))
            else:
                raise _invalid(f"NTP server {s!r} is neither an IP address nor a host name")
        with self.lock:
            job = self._job("SETTINGS_UPDATE_NTP", "UPDATE_NTP", "ntp", {"ntp_mode": mode, "ntp_servers": out},
                            fault=fault, message=("更新 NTP 服务器。\n", "Updated NTP servers.\n"),
                            detail=("NTP 服务器: " + ", ".join(out) + "\n", "NTP servers: " + ", ".join(out) + "\n"),
                            data={"ntp_mode": mode, "ntp_servers": out})
        return {"job_id": job.job_id}

    def license(self) -> dict:
        name = self.cluster["name"] if self.cluster else ""
        return {
            "serial": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://cluster/{name}")),
            "software_edition": "ENTERPRISE",
            "max_chunk_num": 255,
            "max_physical_data_capacity": 0,
            "max_physical_data_capacity_per_node": 140737488355328,
            "license_capabilities": {"has_metrox": True, "has_remote_backup": True},
            "license_type": "TRIAL",
            "vendor": "SMTX",
            "maintenance_start_date": 0,
            "maintenance_period": 0,
            "sign_date": int(self.cluster["activated_wall"]) if self.cluster else 0,
            "platform": 15,
            "mode": "HCI",
            "period": 2592000,
            "pricing_type": "PRICING_TYPE_UNKNOWN",
        }

    # ------------------------------------------------------------------ CPU compatibility
    def recommended_cpu_models(self) -> list[str]:
        models: list[str] | None = None
        for h in self.cluster_hosts():
            mine = cpu_models_for(h.scan()["cpu"])
            models = mine if models is None else [m for m in models if m in mine]
        return models or []

    def cpu_compatibility(self) -> dict:
        return {"cpu_model": self.settings.get("cpu_model")}

    def set_cpu_compatibility(self, body: Any) -> dict:
        model = body.get("cpu_model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            raise FisheyeError(EC_BAD_REQUEST, 'body must be {"cpu_model": "..."}')
        rec = self.recommended_cpu_models()
        if model not in rec:
            raise _invalid(f"cpu_model {model!r} is not one of the cluster's recommended models {rec}")
        with self.lock:
            self.settings["cpu_model"] = model
        return {}

    # ------------------------------------------------------------------ IPMI
    def break_bmc(self, bmc_ip: str, broken: bool = True) -> None:
        """Make a BMC reject any credentials (``broken=False`` repairs it)."""
        with self.lock:
            (self.broken_bmcs.add if broken else self.broken_bmcs.discard)(str(bmc_ip))

    def upsert_ipmi(self, body: Any, fault: dict | None = None) -> dict:
        accounts = body.get("accounts") if isinstance(body, dict) else None
        if not isinstance(accounts, list):
            raise FisheyeError(EC_BAD_REQUEST, 'body must be {"accounts": [...]}')
        hosts = {h.host_uuid: h for h in self.cluster_hosts()}
        success, failure = [], []
        for i, a in enumerate(accounts):
            if not isinstance(a, dict) or not all(isinstance(a.get(k), str) for k in ("node_uuid", "host", "user",
                                                                                      "password")):
                raise _invalid(f"accounts[{i}] needs string node_uuid, host, user and password")
            item = {"node_uuid": a["node_uuid"], "node_name": a.get("node_name"), "host": a["host"],
                    "port": IPMI_PORT, "user": a["user"], "is_valid": False, "interface": None}
            h = hosts.get(a["node_uuid"])
            ok = False
            if h is not None and not (fault and fault.get("operation") in ("fail", "stuck")):
                bmc = self._bmc.get(h.mgmt_ip)
                ok = (bmc is not None and a["host"] == bmc[0] and a["user"] == bmc[1]
                      and hmac.compare_digest(self._bmc_digest(a["password"]), bmc[2])
                      and bmc[0] not in self.broken_bmcs and self.is_alive(bmc[0]))
            if ok:
                item.update(is_valid=True, interface="lanplus")
                success.append(item)
            else:
                failure.append(item)
            if h is not None:
                with self.lock:
                    self.ipmi_accounts[h.host_uuid] = {k: item[k] for k in ("node_uuid", "node_name", "host", "port",
                                                                            "user", "is_valid")}
        return {"success": success, "failure": failure}

    # ------------------------------------------------------------------ VDS / VLAN
    def _host_label(self, h: SimHost) -> str:
        return f"{h.hostname} ({h.mgmt_ip}, {h.host_uuid})"

    def create_vds(self, body: Any, fault: dict | None = None) -> dict:
        if not isinstance(body, dict):
            raise FisheyeError(EC_BAD_REQUEST, "request body must be a JSON object")
        name, bond, assoc = body.get("name"), body.get("bond_mode"), body.get("hosts_associated")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("name is required")
        if bond not in (None, "") and bond not in BOND_MODES:
            raise _invalid(f"bond_mode {bond!r} is not one of {', '.join(BOND_MODES)}")
        if not isinstance(assoc, list) or not assoc:
            raise _invalid("hosts_associated must be a non-empty list")
        hosts = {h.host_uuid: h for h in self.cluster_hosts()}
        with self.lock:
            if any(v.name == name for v in self.vdses.values()):
                raise FisheyeError(EC_EXISTS, f"a VDS named {name} already exists")
            used = {(u, n): v.name for v in self.vdses.values() for u, h in v.hosts.items() for n in h["nics"]}
            entries: dict[str, dict] = {}
            for i, a in enumerate(assoc):
                u = a.get("host_uuid") if isinstance(a, dict) else None
                h = hosts.get(u) if isinstance(u, str) else None
                if h is None:
                    raise _invalid(f"hosts_associated[{i}]: host_uuid {u!r} is not a host of this cluster")
                if u in entries:
                    raise _invalid(f"hosts_associated[{i}]: host {self._host_label(h)} listed twice")
                nics = a.get("nics_associated")
                if not isinstance(nics, list) or not nics or not all(isinstance(n, str) for n in nics):
                    raise _invalid(f"host {self._host_label(h)}: nics_associated must be a non-empty list of names")
                if len(set(nics)) != len(nics):
                    raise _invalid(f"host {self._host_label(h)}: a NIC is listed twice in {nics}")
                for n in nics:
                    nic = h.nic(n)
                    if nic is None or nic.kind != "physical":
                        raise _invalid(f"host {self._host_label(h)} has no NIC {n}")
                    if (u, n) in used:
                        raise FisheyeError(EC_EXISTS, f"NIC {n} of host {self._host_label(h)} is already used by "
                                                      f"VDS {used[(u, n)]}")
                if len(nics) > 1 and not bond:
                    raise _invalid(f"host {self._host_label(h)}: bond_mode is required with more than one NIC")
                data_ip = a.get("data_ip")
                if data_ip is not None and _ipv4(data_ip) is None:
                    raise _invalid(f"host {self._host_label(h)}: data_ip {data_ip!r} is not an IPv4 address")
                entries[u] = {"nics": list(nics), "data_ip": str(_ipv4(data_ip)) if data_ip else h.storage_ip}
            vu = str(uuid.uuid4())
            cluster = self.cluster["name"] if self.cluster else ""
            vds = Vds(vu, name, ovsbr_name(cluster, vu), bond or "", entries, role="business", ready=False)
            lines = "".join(f"    {hosts[u].hostname}: {', '.join(e['nics'])}\n" for u, e in entries.items())
            job = self._job(
                "NETWORK_CREATE_VDS", "CREATE_VDS", "vds", {"vds_uuid": vu}, fault=fault,
                resources={vu: vds.resource()},
                message=(f"创建虚拟分布式交换机 {name}。\n", f"Created virtual distributed switch {name}.\n"),
                detail=(f"创建: \n虚拟分布式交换机名: {name}\n网口绑定模式: {bond or '-'}\n源负载均衡绑定平衡间隔: -\n"
                        f"关联网口: \n{lines}",
                        f"Created: \nVDS name: {name}\nbonding: {bond or '-'}\nslb rebalance interval: -\n"
                        f"Associated NICs: \n{lines}"),
                data={"name": name, "uuid": vu})
            vds.job_id = job.job_id
            self.vdses[vu] = vds
        return {"job_id": job.job_id}

    def _ready_vds(self, vds_uuid: str) -> Vds:
        vds = self.vdses.get(vds_uuid)
        if vds is None or not vds.ready:
            raise FisheyeError(EC_NOT_FOUND, f"VDS {vds_uuid} not found", 404)
        return vds

    def vlans_count(self, vds_uuid: str) -> int:
        """VM (business, type 3) networks on the VDS: the management / storage networks the
        deployment created are not counted (the guide compares vlans_count with the plan's
        business network count, also on the management VDS of 存储独立)."""
        return sum(1 for v in self.vlans.values() if v.vds_uuid == vds_uuid and v.type == VLAN_TYPE_VM)

    def list_vds(self) -> list[dict]:
        self.settle()
        order = {"mgt": 0, "storage": 1}
        with self.lock:
            ready = [v for v in self.vdses.values() if v.ready]
            ready.sort(key=lambda v: order.get(v.role, 2))          # stable: business VDSes in creation order
            return [v.view(self.vlans_count(v.uuid)) for v in ready]

    def get_vds(self, vds_uuid: str) -> dict:
        self.settle()
        with self.lock:
            return self._ready_vds(vds_uuid).view(self.vlans_count(vds_uuid))

    def vds_by_name(self, name: str) -> Vds | None:
        with self.lock:
            return next((v for v in self.vdses.values() if v.name == name), None)

    def list_vlans(self, vds_uuid: str) -> list[dict]:
        with self.lock:
            self._ready_vds(vds_uuid)
            return [v.view() for v in self.vlans.values() if v.vds_uuid == vds_uuid]

    def create_vlan(self, vds_uuid: str, body: Any) -> dict:
        if not isinstance(body, dict):
            raise FisheyeError(EC_BAD_REQUEST, "request body must be a JSON object")
        with self.lock:
            vds = self._ready_vds(vds_uuid)
            name, vid = body.get("name"), body.get("vlan_id")
            if not isinstance(name, str) or not name.strip():
                raise _invalid("name is required")
            if not isinstance(vid, int) or isinstance(vid, bool) or not 0 <= vid <= 4094:
                raise _invalid(f"vlan_id {vid!r} must be an integer from 0 to 4094")
            if body.get("vds_uuid") not in (None, vds_uuid):
                raise _invalid(f"vds_uuid {body.get('vds_uuid')} does not match the VDS in the URL ({vds_uuid})")
            if any(v.vds_uuid == vds_uuid and v.name == name for v in self.vlans.values()):
                raise FisheyeError(EC_EXISTS, f"a network named {name} already exists on VDS {vds.name}")
            vlan = Vlan(str(uuid.uuid4()), name, vds_uuid, vid, VLAN_TYPE_VM)
            self.vlans[vlan.uuid] = vlan
            return vlan.view()

    # ------------------------------------------------------------------ image uploads (SVT §03, ISO §04)
    def create_volume(self, name: str | None, size: str | None, *, kind: str = "SVT", description: str | None = "",
                      device: str | None = None) -> dict:
        """A new upload volume; the same accounting serves SVT (``/api/v2/svt_image/create_volume``) and
        ISO uploads (``/api/v2/images/upload/volume``). ISO volumes get an ``iscsi://`` image path."""
        if kind not in UPLOAD_KINDS:
            raise ValueError(f"unknown upload kind {kind!r}")
        if not name:
            raise _invalid("query parameter name is required")
        try:
            n = int(size or "")
        except ValueError:
            raise _invalid(f"query parameter size {size!r} must be the file size in bytes") from None
        if n <= 0:
            raise _invalid(f"size must be > 0, got {n}")
        if kind == "ISO" and device not in (None, "") and device not in ISO_DEVICES:
            raise _invalid(f"device {device!r} is not supported; the upload volume's device must be one of "
                           f"{', '.join(ISO_DEVICES)}")
        chunk = int(self.chunk_size)
        chunks = math.ceil(n / chunk)
        if chunks > MAX_CHUNKS:
            raise _invalid(f"size {n} needs {chunks} chunks of {chunk} bytes; at most {MAX_CHUNKS}")
        up = Upload(str(uuid.uuid4()), str(uuid.uuid4()), name, n, chunk, self.clock.now(),
                    received=[0] * chunks, digests=[None] * chunks, kind=kind, description=description or "",
                    device=(device or "nfs") if kind == "ISO" else "", created_wall=int(self.clock.wall()))
        with self.lock:
            if kind == "ISO":
                up.path = iscsi_path(self.cluster["name"] if self.cluster else None, self.next_iscsi_lun())
            self.uploads[up.image_uuid] = up
        return up.volume()

    def next_iscsi_lun(self) -> int:
        """The next free LUN of the cluster's iSCSI datastore (ISO images; the VMs family's disks too)."""
        with self.lock:
            used = [self._lun_of(u.path) for u in self.uploads.values()]
            self._iscsi_lun = max([self._iscsi_lun, FIRST_ISCSI_LUN - 1] + [x for x in used if x is not None]) + 1
            return self._iscsi_lun

    def note_iscsi_lun(self, lun: int) -> None:
        """A LUN already in use (restored VM disks): later LUNs are handed out above it."""
        with self.lock:
            self._iscsi_lun = max(self._iscsi_lun, int(lun))

    @staticmethod
    def _lun_of(path: str) -> int | None:
        tail = path.rsplit("/", 1)[-1] if path.startswith("iscsi://") else ""
        return int(tail) if tail.isdigit() else None

    def upload_target(self, zbs_volume_id: str | None, image_uuid: str | None, chunk_num: str | None,
                      kind: str | None = None) -> tuple[Upload, int]:
        """Validate a chunk upload before its body is read; returns (upload, chunk index). ``kind``:
        the route's upload kind (an SVT volume's chunk sent to the ISO route is refused, and back)."""
        with self.lock:
            up = self.uploads.get(image_uuid or "")
            if up is None or up.status == "deleted":
                raise _invalid(f"image_uuid {image_uuid!r} is not an upload volume")
            if kind is not None and up.kind != kind:
                raise _invalid(f"image {image_uuid} is an {up.kind} upload volume, not an {kind} one")
            if zbs_volume_id != up.zbs_volume_id:
                raise _invalid(f"zbs_volume_id {zbs_volume_id!r} does not belong to image {image_uuid}")
            try:
                i = int(chunk_num or "")
            except ValueError:
                up.rejected += 1
                raise _invalid(f"chunk_num {chunk_num!r} is not an integer") from None
            if not 0 <= i < up.chunks:
                up.rejected += 1
                raise _invalid(f"chunk_num {i} is out of range 0..{up.chunks - 1}")
            return up, i

    def accept_chunk(self, up: Upload, i: int, nbytes: int, sha256: str) -> dict:
        want = up.expected_length(i)
        with self.lock:
            if up.status == "deleted":
                raise _invalid(f"image {up.image_uuid} was deleted during the upload")
            if nbytes != want:
                up.rejected += 1
                raise _invalid(f"chunk {i} has {nbytes} bytes; expected {want}"
                               + (" (the last chunk is the remainder of the file)" if i == up.chunks - 1 else ""))
            up.received[i] += 1
            up.digests[i] = sha256
            up.bytes_received += nbytes
            if up.complete and up.status == "uploading":
                up.status = "ready"
            return up.volume()

    def reject_chunk(self, up: Upload) -> None:
        with self.lock:
            up.rejected += 1

    def image(self, image_uuid: str) -> dict:
        with self.lock:
            up = self.uploads.get(image_uuid)
            if up is None or up.status == "deleted":
                raise FisheyeError(EC_NOT_FOUND, f"image {image_uuid} not found", 404)
            return up.image()

    def delete_image(self, image_uuid: str) -> dict:
        with self.lock:
            up = self.uploads.get(image_uuid)
            if up is None or up.status == "deleted":
                raise FisheyeError(EC_NOT_FOUND, f"image {image_uuid} not found", 404)
            up.status = "deleted"
        return {}

    def upload_by_name(self, name: str, kind: str | None = None) -> Upload | None:
        """The latest upload volume of that file name that was not deleted (of that kind, if given)."""
        with self.lock:
            ups = [u for u in self.uploads.values() if u.name == name and u.status != "deleted"
                   and (kind is None or u.kind == kind)]
            return max(ups, key=lambda u: u.created) if ups else None

    def list_images(self) -> list[dict]:
        """GET /api/v2/images: the guide's image objects for finished uploads (SVT and ISO)."""
        with self.lock:
            return [u.listed() for u in self.uploads.values() if u.status == "ready"]

    @property
    def svt_images(self) -> list[Upload]:
        with self.lock:
            return [u for u in self.uploads.values() if u.status == "ready" and u.kind == "SVT"]

    @property
    def iso_images(self) -> list[Upload]:
        with self.lock:
            return [u for u in self.uploads.values() if u.status == "ready" and u.kind == "ISO"]

    def image_by_path(self, path: Any, kinds: tuple[str, ...] = UPLOAD_KINDS) -> Upload | None:
        """The finished image whose ``path`` (as ``GET /api/v2/images`` and the upload volume show it) is
        ``path``; None when no such image exists (e.g. deleted, or still uploading)."""
        if not isinstance(path, str) or not path:
            return None
        with self.lock:
            return next((u for u in self.uploads.values()
                         if u.status == "ready" and u.kind in kinds and u.image_path == path), None)

    # ------------------------------------------------------------------ snapshot / restore
    def export_state(self) -> dict:
        """JSON-able state without passwords or tokens (digests only)."""
        self.settle()
        now = self.clock.now()
        with self.lock:
            jobs = []
            for j in self.jobs.values():
                d = dataclasses.asdict(j)
                d["state"] = j.state(now)                    # informational; recomputed on restore
                jobs.append(d)
            return {
                "cluster": copy.deepcopy(self.cluster),
                "root_login": dict(self.root_login) if self.root_login else None,
                "sessions": [dataclasses.asdict(s) for s in self._sessions.values() if s.expires > now],
                "session_ttl": self.session_ttl,
                "chunk_size": self.chunk_size,
                "job_timing": {"pending": self.job_pending, "running": self.job_running},
                "settings": copy.deepcopy(self.settings),
                "vdses": [dataclasses.asdict(v) for v in self.vdses.values()],
                "vlans": [dataclasses.asdict(v) for v in self.vlans.values()],
                "jobs": jobs,
                "uploads": [dataclasses.asdict(u) for u in self.uploads.values()],
                "ipmi_accounts": list(self.ipmi_accounts.values()),
                "broken_bmcs": sorted(self.broken_bmcs),
            }

    def to_dict(self) -> dict:
        d = self.export_state()
        d["active"] = self.active
        return d

    def import_state(self, state: dict) -> None:
        """Restore :meth:`export_state` output; brings the VIP up through ``vip_hook``."""
        def build(cls, d: dict):
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in d.items() if k in known})

        with self.lock:
            old_vip = self.settings.get("management_vip")
            self.cluster = copy.deepcopy(state.get("cluster"))
            self.root_login = dict(state["root_login"]) if state.get("root_login") else None
            self._sessions = {s["digest"]: build(Session, s) for s in state.get("sessions", [])}
            self.session_ttl = float(state.get("session_ttl", self.session_ttl))
            self.chunk_size = int(state.get("chunk_size", self.chunk_size))
            timing = state.get("job_timing") or {}
            self.job_pending = float(timing.get("pending", self.job_pending))
            self.job_running = float(timing.get("running", self.job_running))
            self.settings.update(copy.deepcopy(state.get("settings") or {}))
            self.vdses = {v["uuid"]: build(Vds, v) for v in state.get("vdses", [])}
            self.vlans = {v["uuid"]: build(Vlan, v) for v in state.get("vlans", [])}
            self.jobs = {j["job_id"]: build(Job, j) for j in state.get("jobs", [])}
            self.uploads = {u["image_uuid"]: build(Upload, u) for u in state.get("uploads", [])}
            self.ipmi_accounts = {a["node_uuid"]: dict(a) for a in state.get("ipmi_accounts", [])}
            self.broken_bmcs = set(state.get("broken_bmcs", []))
            new_vip = self.settings.get("management_vip")
        if self.vip_hook is not None and (new_vip or old_vip):
            self.vip_hook(old_vip if old_vip != new_vip else None, new_vip)
