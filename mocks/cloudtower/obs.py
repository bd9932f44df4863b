"""Stage 07a of a simulated CloudTower: Observability (OBS), guide §07 -- state only, no HTTP.

:class:`ObsMixin` (mixed into :class:`~mocks.cloudtower.models.CloudTowerModel`) keeps

* **OVM operator chunked uploads** (``responses_obs.py`` serves the wire): a session per
  ``POST …/v3/chunkedUploads`` (27-character KSUID id, cumulative ``offset``); every chunk is *appended* (no index
  is sent, so a replayed chunk really lands twice). Nothing is kept but the size, a running SHA-256 and a gzip
  decompressor fed as the bytes arrive (:class:`GzipCheck`): a 2 GiB package never sits in memory or on disk.
* **package processing**: the commit starts the task ``Create Installation package <file>`` (``INSTALL_PKG_S``,
  315 simulated s as in the guide) and, ``APP_PKG_AT`` s later, ``Create Application package
  observability-<ARCH>-<version>.tar.gz`` (``APP_PKG_S`` = 101 s, ending before the first). When the first ends the
  :class:`ObsPackage` (``BundleApplicationPackage``, version without the build suffix) exists. Bytes that are not one
  complete gzip stream holding a tar archive (a replayed or missing chunk), or a file name that is not an
  Observability package's, make the first task FAILED after ``PKG_FAIL_S`` with an ``error_message`` (no second
  task, no package). An ``operation`` fault on the commit: ``fail`` the same, ``stuck`` EXECUTING forever.
* **bundle application instances** (:class:`ObsInstance`): ``INSTALLING`` for ``obs_install_s`` (600 simulated s),
  then ``SUCCESS`` with ``health_status`` ``NORMAL``; the VM (``application.instances[].vm``) exists and is
  ``RUNNING`` ``obs_vm_lead_s`` (120 s) before that. When the VM runs it takes the planned IP on the simulated
  network: ping, SSH on tcp/10022 (``o11y`` / ``HC!r0cks``, sudo asking for the password, a default
  ``/etc/resolv.conf``). An ``operation`` fault on ``createBundleApplicationInstance``: ``stuck`` = INSTALLING
  forever (the VM still goes RUNNING), ``fail`` = ``FAILED`` after ``INSTANCE_FAIL_S`` with ``error_code``.
  NTP (``;``-joined), connected clusters (``id_in`` *sets* the list), connected system services (``INSTALLING``,
  ``RUNNING`` after ``SYSTEM_SERVICE_S``; both [inf]) need the instance ``SUCCESS``.

Knobs (``tower = sim.state.cloudtower.tower(ip)``): ``obs_install_s``, ``obs_vm_lead_s`` (snapshot tunables; read
at create), ``obs_ssh`` (False: the OBS VM's 10022 stays down -- or ``sim.set_up(ip, 10022, False, proto="tcp")``
once it is up), :meth:`ObsMixin.add_foreign_vlan` (a VLAN -- ``default`` -- on another cluster's VDS, listed
first by ``get-vlans``), :meth:`ObsMixin.revoke_cookies` (every ``connect.sid`` expires; tokens stay).
State: ``obs_uploads``, ``obs_jobs``, ``obs_packages``, ``obs_instances``, ``foreign_vlans``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from .errors import GqlError
from .tasks import TaskFault
from .util import cuid, iso_ms, is_ntp_server

INSTALL_PKG_S = 315.0        # "Create Installation package …": 5 min 15 s in the guide's example
APP_PKG_AT = 176.0           # "Create Application package …" starts this long after the commit …
APP_PKG_S = 101.0            # … and runs 1 min 41 s (it ends before the first)
PKG_FAIL_S = 30.0            # a package that cannot be read fails this long after the commit [inf]
OBS_INSTALL_S = 600.0        # INSTALLING -> SUCCESS (CX allows 30 min; the typical time is unknown)
OBS_VM_LEAD_S = 120.0        # the VM is RUNNING this long before the instance reads SUCCESS
INSTANCE_FAIL_S = 300.0      # operation fault "fail": FAILED after this long [inf]
SYSTEM_SERVICE_S = 60.0      # a connected system service: INSTALLING -> RUNNING [inf]
OBS_SSH_PORT = 10022
OBS_SSH_USER = "o11y"
OBS_SSH_PASSWORD = "HC!r0cks"
OBS_BASIC = ("o11y", "HC!r0cks")      # the OVM operator's Basic credential (G L2255)
OBS_PACKAGE_NAME = "Observability"
PACKAGE_RE = re.compile(r"^Observability-(?P<arch>X86_64|AARCH64)-(?P<version>v[\d.]+)"
                        r"(?:-release\.(?P<date>\d+)(?:-(?P<build>\d+))?)?\.tar\.gz$", re.IGNORECASE)
CLOUDTOWER_VERSION = "4.7.1"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KSUID_EPOCH = 1_400_000_000
_OUT_BLOCK = 1 << 20


def ksuid(wall: float, *parts: Any) -> str:
    """A 27-character KSUID (4-byte timestamp + 16 bytes derived from ``parts``), base62 -- the OVM ids' shape."""
    payload = hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:16]
    n = int.from_bytes(max(0, int(wall) - _KSUID_EPOCH).to_bytes(4, "big") + payload, "big")
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out)).rjust(27, "0")


def package_of(file_name: str) -> dict | None:
    """``{arch, version}`` of an Observability package file name (version without the build suffix), or None."""
    m = PACKAGE_RE.match(file_name or "")
    if m is None:
        return None
    version = m["version"].lower() + (f"-release.{m['date']}" if m["date"] else "")
    return {"arch": m["arch"].upper(), "version": version}


class GzipCheck:
    """Whether a byte stream fed in order is one complete gzip stream holding a tar archive -- without keeping it:
    the decompressed output is counted and dropped (only its first 512 bytes, the first tar header, are kept)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.fed = 0
        self.out = 0
        self.head = b""
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        if self.error is not None or not data:
            self.fed += len(data)
            return
        at = self.fed
        self.fed += len(data)
        if self._d.eof:
            self.error = f"data after the end of the gzip stream (at byte {at})"
            return
        try:
            buf = data
            while buf:
                self._take(self._d.decompress(buf, _OUT_BLOCK))
                buf = self._d.unconsumed_tail
                if self._d.eof:
                    break
        except zlib.error as exc:
            self.error = f"invalid gzip data in the bytes {at}-{self.fed}: {exc}"
            return
        if self._d.eof and self._d.unused_data:
            self.error = f"data after the end of the gzip stream (at byte {self.fed - len(self._d.unused_data)})"

    def _take(self, out: bytes) -> None:
        self.out += len(out)
        if len(self.head) < 512:
            self.head += out[: 512 - len(self.head)]

    def verdict(self) -> str | None:
        """None when the stream is a complete gzip holding a tar archive, else what is wrong."""
        if self.error is not None:
            return self.error
        if not self._d.eof:
            return f"truncated gzip stream ({self.fed} bytes, no end of stream)"
        if len(self.head) < 512 or self.head[257:262] != b"ustar":
            return "the gzip stream does not hold a tar archive"
        if self.out % 512:
            return f"truncated tar archive ({self.out} bytes is not a multiple of 512)"
        return None


@dataclass
class ObsUpload:
    id: str
    origin_file_name: str
    created_wall: float
    updated_wall: float
    offset: int = 0
    status: str = "UPLOADING"            # UPLOADING | COMMITTED
    sha256: str | None = None            # once committed
    verdict: str | None = None           # once committed: None = a valid package
    verifiable: bool = True              # False: restored from a snapshot mid-upload (the stream check is lost)
    package_id: str = ""
    user_id: str | None = None


@dataclass
class ObsJob:
    """The processing of one committed upload: its two tasks and the package they create."""

    upload_id: str
    file_name: str
    arch: str | None
    version: str | None
    sha256: str
    started: float                       # simulated s (the commit)
    install_task_id: str
    app_task_id: str | None = None
    app_package_id: str | None = None
    failed: bool = False
    stuck: bool = False
    done: bool = False


@dataclass
class ObsPackage:
    id: str
    name: str
    version: str
    arch: str
    file_name: str
    app_package_id: str
    host_plugin_ids: dict            # arch -> id
    created_wall: float


@dataclass
class ObsInstance:
    id: str
    name: str
    description: str
    package_id: str
    cluster_id: str
    host_id: str
    vm_spec: dict
    application_id: str
    app_instance_id: str
    vm_id: str
    created: float                       # simulated s
    install_s: float
    vm_lead_s: float
    fault: str | None = None             # None | stuck | fail
    fault_msg: str | None = None
    ntp_servers: list = field(default_factory=list)
    connected: list = field(default_factory=list)          # [{id, cluster_id, occ_id, host_plugin_id, traffic}]
    system_services: list = field(default_factory=list)    # [{id, system_service_id, name, type, created, ...}]
    networked: bool = False              # the VM has taken its IP on the simulated network


def _rows(table: dict) -> list[dict]:
    return [dataclasses.asdict(x) for x in table.values()]


def _table(cls, rows) -> dict:
    known = {f.name for f in dataclasses.fields(cls)}
    return {r["id" if "id" in known else "upload_id"]: cls(**{k: v for k, v in r.items() if k in known})
            for r in rows or []}


class ObsMixin:
    """OBS state and operations; see the module doc."""

    # ------------------------------------------------------------------ setup
    def _init_obs(self) -> None:
        self.obs_install_s = OBS_INSTALL_S
        self.obs_vm_lead_s = OBS_VM_LEAD_S
        self.obs_ssh = True
        self.obs_uploads: dict[str, ObsUpload] = {}
        self.obs_jobs: dict[str, ObsJob] = {}
        self.obs_packages: dict[str, ObsPackage] = {}
        self.obs_instances: dict[str, ObsInstance] = {}
        self.foreign_vlans: list[dict] = []
        self._obs_streams: dict[str, tuple[Any, GzipCheck]] = {}      # upload id -> (sha256, gzip check); memory

    def settle(self) -> None:
        super().settle()
        self.settle_obs()

    def _obs_id(self, kind: str) -> str:
        with self.lock:
            self._seq += 1
            return ksuid(self.clock.wall(), "smtx-sim://ovm", self.ip, kind, self._seq)

    # ------------------------------------------------------------------ OVM operator uploads
    def obs_upload_init(self, origin_file_name: str, user_id: str | None) -> dict:
        if not isinstance(origin_file_name, str) or not origin_file_name.strip():
            raise ValueError("origin_file_name is required")
        now = self.clock.wall()
        with self.lock:
            up = ObsUpload(self._obs_id("upload"), origin_file_name, now, now, user_id=user_id)
            self.obs_uploads[up.id] = up
            self._obs_streams[up.id] = (hashlib.sha256(), GzipCheck())
            return self.obs_upload_view(up)

    def obs_upload(self, upload_id: str) -> ObsUpload:
        up = self.obs_uploads.get(upload_id)
        if up is None:
            raise KeyError(upload_id)
        return up

    def obs_append(self, upload_id: str, blocks) -> ObsUpload:
        """Append one chunk (an iterable of byte blocks) at the end of the upload: no index, no offset is sent."""
        with self.lock:
            up = self.obs_upload(upload_id)
            if up.status != "UPLOADING":
                raise ValueError(f"upload {upload_id} is {up.status}: no more chunks")
            stream = self._obs_streams.get(upload_id)
            if stream is None:                      # restored from a snapshot mid-upload: the stream check is lost
                up.verifiable = False
                stream = self._obs_streams[upload_id] = (hashlib.sha256(), GzipCheck())
            digest, check = stream
            for block in blocks:
                digest.update(block)
                check.feed(block)
                up.offset += len(block)
            up.updated_wall = self.clock.wall()
            return up

    def obs_commit(self, upload_id: str, user_id: str | None, fault: TaskFault | None = None) -> dict:
        with self.lock:
            up = self.obs_upload(upload_id)
            if up.status != "UPLOADING":
                raise ValueError(f"upload {upload_id} is already {up.status}")
            if up.offset == 0:
                raise ValueError(f"upload {upload_id} has no data")
            digest, check = self._obs_streams.pop(upload_id, (hashlib.sha256(), GzipCheck()))
            up.sha256 = digest.hexdigest()
            up.verdict = check.verdict() if up.verifiable else None
            up.status, up.updated_wall = "COMMITTED", self.clock.wall()
            self._start_package_job(up, user_id, fault)
            return self.obs_upload_view(up)

    def _start_package_job(self, up: ObsUpload, user_id: str | None, fault: TaskFault | None) -> None:
        pkg = package_of(up.origin_file_name)
        problem = up.verdict
        if problem is None and pkg is None:
            problem = (f"{up.origin_file_name} is not an Observability package "
                       f"(Observability-<X86_64|AARCH64>-v<version>[-release.<date>[-<build>]].tar.gz)")
        if problem is not None:
            fault = TaskFault("fail", f"failed to read package {up.origin_file_name}: {problem}", "PACKAGE_INVALID")
        elif fault is not None and fault.mode == "fail":
            fault = TaskFault("fail", fault.msg or f"failed to create installation package {up.origin_file_name}",
                              fault.code or "PACKAGE_INVALID")
        failing = fault is not None and fault.mode == "fail"
        t = self._task(description=f"Create Installation package {up.origin_file_name}",
                       key="create_installation_package", resource_type=None, resource_id=None,
                       mutation="", args={}, user_id=user_id, fault=fault,
                       running_s=max(0.0, (PKG_FAIL_S if failing else INSTALL_PKG_S) - float(self.task_pending)))
        self.obs_jobs[up.id] = ObsJob(up.id, up.origin_file_name, (pkg or {}).get("arch"), (pkg or {}).get("version"),
                                      up.sha256 or "", self.clock.now(), t.id, failed=failing,
                                      stuck=fault is not None and fault.mode == "stuck")

    def obs_upload_view(self, up: ObsUpload) -> dict:
        """The v3 shape (G L2250): offset as a string, status a name, RFC 3339 times."""
        return {"id": up.id, "package_name": "", "offset": str(up.offset), "status": up.status,
                "origin_file_name": up.origin_file_name, "error_code": "", "error_message": "",
                "package_id": up.package_id, "create_time": _rfc3339(up.created_wall),
                "update_time": _rfc3339(up.updated_wall)}

    def obs_chunk_view(self, up: ObsUpload) -> dict:
        """The v1 chunk answer (G L2299): offset an int, status 1, protobuf timestamps."""
        return {"id": up.id, "offset": up.offset, "status": 1, "origin_file_name": up.origin_file_name,
                "create_time": _pb_time(up.created_wall), "update_time": _pb_time(up.updated_wall)}

    # ------------------------------------------------------------------ processing (settle)
    def settle_obs(self) -> None:
        """Start / finish package tasks and packages that are due; bring up the network of OBS VMs now running."""
        now = self.clock.now()
        with self.lock:
            for job in self.obs_jobs.values():
                if not job.done:
                    self._advance_job(job, now)
            newly = [i for i in self.obs_instances.values() if not i.networked and self._vm_running(i, now)]
            for inst in newly:
                inst.networked = True
        for inst in newly:
            self._obs_network_up(inst.vm_spec["ip"])

    def _advance_job(self, job: ObsJob, now: float) -> None:
        if job.failed or job.stuck:
            return
        if job.app_task_id is None and now >= job.started + APP_PKG_AT:
            job.app_package_id = cuid("smtx-sim://cloudtower", self.ip, "app-package", job.upload_id)
            name = f"observability-{job.arch}-{job.version}.tar.gz"
            t = self._task(description=f"Create Application package {name}", key="create_application_package",
                           resource_type="CloudTowerApplicationPackage", resource_id=job.app_package_id,
                           mutation="", args={"Hash": job.sha256}, user_id=None,
                           running_s=max(0.0, APP_PKG_S - float(self.task_pending)))
            t.created = job.started + APP_PKG_AT
            t.created_wall = self._wall_at(t.created)
            job.app_task_id = t.id
        install = self.tasks.get(job.install_task_id)
        if install is not None and install.timed_status(now) == "SUCCESSED" and job.app_task_id is not None:
            self._create_package(job)
            job.done = True

    def _create_package(self, job: ObsJob) -> None:
        same = next((p for p in self.obs_packages.values()
                     if (p.name, p.version, p.arch) == (OBS_PACKAGE_NAME, job.version, job.arch)), None)
        if same is None:
            pid = cuid("smtx-sim://cloudtower", self.ip, "bundle-package", job.upload_id)
            self.obs_packages[pid] = same = ObsPackage(
                pid, OBS_PACKAGE_NAME, job.version, job.arch, job.file_name, job.app_package_id,
                {a: cuid("smtx-sim://cloudtower", self.ip, "host-plugin", job.upload_id, a) for a in ("X86_64", "AARCH64")},
                self._wall_at(job.started + INSTALL_PKG_S))
        up = self.obs_uploads.get(job.upload_id)
        if up is not None:
            up.package_id = same.id

    # ------------------------------------------------------------------ packages
    def obs_package_view(self, p: ObsPackage) -> dict:
        apps = [{"id": i.application_id, "name": f"observability-{i.name}"}
                for i in self.obs_instances.values() if i.package_id == p.id]
        return {"id": p.id, "name": p.name, "version": p.version, "arch": p.arch,
                "application_packages": [{"id": p.app_package_id, "name": "observability", "architecture": p.arch,
                                          "version": p.version, "filename": p.file_name, "applications": apps}],
                "host_plugin_packages": [{"id": hid, "arch": a, "version": p.version}
                                         for a, hid in p.host_plugin_ids.items()]}

    def list_obs_packages(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self.obs_package_view(p) for p in self.obs_packages.values()]

    # ------------------------------------------------------------------ instances
    def _vm_running(self, i: ObsInstance, now: float) -> bool:
        if i.fault == "fail":
            return False
        return now >= i.created + max(0.0, i.install_s - i.vm_lead_s)

    def obs_status(self, i: ObsInstance, now: float | None = None) -> str:
        now = self.clock.now() if now is None else now
        if i.fault == "fail":
            return "FAILED" if now >= i.created + min(INSTANCE_FAIL_S, i.install_s) else "INSTALLING"
        if i.fault == "stuck" or now < i.created + i.install_s:
            return "INSTALLING"
        return "SUCCESS"

    def _cluster_vlans(self, cluster_id: str) -> set[str]:
        return {v["id"] for c, info in self._connected() if c.id == cluster_id
                for v in ({"id": self._vlan_id(c, x["local_id"])} for x in info["vlans"])}

    def create_obs_instance(self, data: dict, fault: TaskFault | None = None) -> dict:
        """``createBundleApplicationInstance``: the checks CloudTower makes, then INSTALLING."""
        spec = dict(data["vm_spec"])
        pid = (data.get("bundle_application_package") or {}).get("id")
        cid = (data.get("cluster") or {}).get("id")
        self._check_instance(data, spec, pid, cid)
        with self.lock:
            iid = self._new_id("bundle-instance")
            inst = ObsInstance(
                id=iid, name=data["name"], description=data.get("description") or "", package_id=pid, cluster_id=cid,
                host_id=data.get("host_id") or "", vm_spec=spec,
                application_id=self._new_id("application"), app_instance_id=self._new_id("application-instance"),
                vm_id=self._new_id("vm"), created=self.clock.now(), install_s=float(self.obs_install_s),
                vm_lead_s=float(self.obs_vm_lead_s), fault=fault.mode if fault else None,
                fault_msg=fault.msg if fault else None)
            self.obs_instances[iid] = inst
            return self.obs_instance_view(inst)

    def _check_instance(self, data: dict, spec: dict, pid: str | None, cid: str | None) -> None:
        if pid not in self.obs_packages:
            raise GqlError(f"bundle_application_package: no BundleApplicationPackage with id {pid}", "NOT_FOUND")
        c = self.clusters.get(cid)
        if c is None:
            raise GqlError(f"cluster: no cluster with id {cid}", "NOT_FOUND")
        if self.connect_state(c) != "CONNECTED":
            raise GqlError(f"cluster {c.name or c.ip} is {self.connect_state(c)}, not CONNECTED", "BAD_USER_INPUT")
        for k in ("ip", "subnet_mask", "gateway"):
            try:
                ipaddress.IPv4Address(str(spec.get(k, "")).strip())
            except ValueError:
                raise GqlError(f"vm_spec.{k}: {spec.get(k)!r} is not an IPv4 address", "BAD_USER_INPUT") from None
        for k in ("memory_size_bytes", "storage_size_bytes"):
            if not str(spec.get(k, "")).isdigit():
                raise GqlError(f"vm_spec.{k}: {spec.get(k)!r} is not a byte count", "BAD_USER_INPUT")
        if spec["vlan_id"] not in self._cluster_vlans(cid):
            other = any(v["id"] == spec["vlan_id"] for v in self.list_vlans())
            raise GqlError(f"vm_spec.vlan_id: {spec['vlan_id']} is "
                           + (f"not a VLAN of cluster {c.name}'s VDSes" if other else "no VLAN CloudTower knows"),
                           "BAD_USER_INPUT")
        with self.lock:
            for i in self.obs_instances.values():                   # [inf] the real error text is unknown
                if i.name == data["name"]:
                    raise GqlError(f"a bundle application instance named {i.name!r} already exists", "ALREADY_EXISTS")
                if i.vm_spec["ip"] == spec["ip"]:
                    raise GqlError(f"the IP {spec['ip']} is already used by bundle application instance {i.name!r}",
                                   "ALREADY_EXISTS")

    def obs_instance(self, iid: str | None) -> ObsInstance:
        inst = self.obs_instances.get(iid or "")
        if inst is None:
            raise GqlError(f"no BundleApplicationInstance with id {iid}", "NOT_FOUND")
        return inst

    def _running(self, iid: str | None) -> ObsInstance:
        inst = self.obs_instance(iid)
        st = self.obs_status(inst)
        if st != "SUCCESS":                                             # [inf] the OVM is not reachable yet
            raise GqlError(f"bundle application instance {inst.name} is {st}: the observability service is not "
                           f"running yet", "BAD_USER_INPUT")
        return inst

    def set_obs_ntp(self, iid: str | None, ntp_service_url: str) -> str:
        servers = [s.strip() for s in re.split(r"[,;]", ntp_service_url or "") if s.strip()]
        bad = [s for s in servers if not is_ntp_server(s)]
        if not servers or bad:
            raise GqlError(f"ntp_service_url: {ntp_service_url!r} is not a list of NTP servers", "BAD_USER_INPUT")
        with self.lock:
            inst = self._running(iid)
            inst.ntp_servers = servers
            return ";".join(servers)

    def connect_obs_clusters(self, iid: str | None, clusters: list[dict]) -> dict:
        """``connected_clusters: {id_in}``: the instance's connected clusters become exactly these [inf]."""
        with self.lock:
            inst = self._running(iid)
            keep = {x["cluster_id"]: x for x in inst.connected}
            inst.connected = [keep.get(c["id"]) or {
                "id": self._new_id("connected-cluster"), "cluster_id": c["id"],
                "occ_id": self._obs_id("occ"), "host_plugin_id": self._new_id("host-plugin"), "traffic": False}
                for c in clusters]
            return self.obs_instance_view(inst)

    def set_obs_system_services(self, ovm_name: str, services: list[dict]) -> list[dict]:
        with self.lock:
            insts = list(self.obs_instances.values())
            inst = next((i for i in insts if i.name == ovm_name), None) or (insts[0] if len(insts) == 1 else None)
            if inst is None:            # G sends ovm_name "observability" for its instance "obs"
                raise GqlError(f"no observability instance for ovm_name {ovm_name!r}", "NOT_FOUND")
            inst = self._running(inst.id)
            have = {s["system_service_id"]: s for s in inst.system_services}
            out = []
            for s in services:
                old = have.get(s["system_service_id"])
                out.append({"id": old["id"] if old else self._obs_id("system-service"),
                            "system_service_id": s["system_service_id"], "name": s["system_service_name"],
                            "type": s["type"], "created": self.clock.now(),
                            "alerting_rules": [r["name"] for r in s.get("alerting_rules") or []],
                            "instances": [{"url": x["url"], **(x.get("info") or {})} for x in s["instances"]]})
            inst.system_services = [have[k] for k in have if k not in {s["system_service_id"] for s in out}] + out
            return [self._system_service_view(inst, s) for s in out]

    # ------------------------------------------------------------------ views
    def _system_service_view(self, inst: ObsInstance, s: dict) -> dict:
        running = self.clock.now() >= s["created"] + SYSTEM_SERVICE_S
        return {"id": s["id"], "type": s["type"], "status": "RUNNING" if running else "INSTALLING",
                "tenant_id": inst.id, "system_service": {"id": s["system_service_id"], "name": s["name"],
                                                         "version": CLOUDTOWER_VERSION},
                "instances": [{"state": "STATE_UNSPECIFIED", "url": x["url"]} for x in s["instances"]]}

    def _obs_cluster(self, cid: str) -> dict | None:
        c = self.clusters.get(cid)
        if c is None:
            return None
        state = self.connect_state(c)
        info = self._view_info(c, state) or {}
        return {"id": c.id, "name": c.name or c.ip, "local_id": c.local_id, "connect_state": state,
                "version": c.version, "type": "SMTX_OS", "architecture": "X86_64",
                "hosts": [self._host_nested(c, h) for h in info.get("hosts", [])]}

    def _connected_view(self, inst: ObsInstance, x: dict, *, nested: bool = True) -> dict:
        cl = self._obs_cluster(x["cluster_id"]) or {"id": x["cluster_id"], "name": None}
        v = {"id": x["id"], "name": cl.get("name"), "status": "CONNECTED", "migration_status": None, "cluster": cl,
             "host_plugin": {"id": x["host_plugin_id"], "host_plugin_instances": []},
             "observability_connected_cluster": {"id": x["occ_id"], "traffic_enabled": bool(x.get("traffic")),
                                                 "status": "CONNECTED"}}
        if nested:
            v["bundle_application_instance"] = self.obs_instance_view(inst)
        return v

    def obs_instance_view(self, inst: ObsInstance) -> dict:
        now = self.clock.now()
        status = self.obs_status(inst, now)
        vm_up = self._vm_running(inst, now)
        pkg = self.obs_packages.get(inst.package_id)
        return {
            "id": inst.id, "name": inst.name, "description": inst.description, "status": status,
            "error_code": "INSTALL_FAILED" if status == "FAILED" else "",
            "health_status": "NORMAL" if status == "SUCCESS" else None,
            "application": {"id": inst.application_id, "name": f"observability-{inst.name}",
                            "instances": [{"id": inst.app_instance_id, "vm": {
                                "id": inst.vm_id, "name": f"observability-{inst.name}", "status": "RUNNING",
                                "cpu_usage": 0.68, "memory_usage": 5.54}}] if vm_up else []},
            "vm_spec": {k: inst.vm_spec.get(k) for k in ("ip", "subnet_mask", "gateway", "vlan_id", "vcpu_count",
                                                          "memory_size_bytes", "storage_size_bytes", "env_vars")},
            "cluster": self._obs_cluster(inst.cluster_id),
            "bundle_application_package": self.obs_package_view(pkg) if pkg else None,
            "connected_clusters": [self._connected_view(inst, x, nested=False) for x in inst.connected],
            "connected_system_services": [self._system_service_view(inst, s) for s in inst.system_services],
        }

    def list_obs_instances(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self.obs_instance_view(i) for i in self.obs_instances.values()]

    def list_obs_connected_clusters(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self._connected_view(i, x) for i in self.obs_instances.values() for x in i.connected]

    # ------------------------------------------------------------------ the OBS VM on the network
    def _obs_network_up(self, ip: str) -> None:
        """The OBS VM took ``ip``: ping, SSH on 10022 (``o11y``; up unless ``obs_ssh`` is False)."""
        sim = getattr(self.smtx, "sim", None)
        if sim is None:
            return
        from ..ssh import attach_ssh

        attach_ssh(sim, ip, users={OBS_SSH_USER: OBS_SSH_PASSWORD}, port=OBS_SSH_PORT, up=bool(self.obs_ssh),
                   hostname="observability", role="obs")
        sim.set_alive(ip, True)

    # ------------------------------------------------------------------ faults / helpers
    def revoke_cookies(self) -> int:
        """Every ``connect.sid`` cookie expires (the REST / GraphQL tokens stay): the "expired cookie" fault."""
        store = self.sessions
        with store.lock:
            gone = [d for d, s in store._sessions.items() if s.kind == "cookie"]
            for d in gone:
                del store._sessions[d]
        return len(gone)

    def add_foreign_vlan(self, name: str = "default", *, cluster_name: str = "other-cluster", vlan_id: int = 0) -> dict:
        """A VM network ``name`` on a VDS of *another* cluster (not one this tower connected), listed before the
        real ones by ``get-vlans`` (and its VDS by ``get-vdses``): a cluster-blind lookup by name takes it."""
        with self.lock:
            n = len(self.foreign_vlans)
            cid = cuid("smtx-sim://cloudtower", self.ip, "foreign-cluster", cluster_name)
            v = {"id": cuid("smtx-sim://cloudtower", self.ip, "foreign-vlan", cluster_name, name, n),
                 "name": name, "vlan_id": int(vlan_id), "cluster": {"id": cid, "name": cluster_name},
                 "vds": {"id": cuid("smtx-sim://cloudtower", self.ip, "foreign-vds", cluster_name),
                         "name": f"{cluster_name}-vds"}}
            self.foreign_vlans.append(v)
            return v

    def list_vlans(self) -> list[dict]:
        own = super().list_vlans()
        with self.lock:
            extra = [{**own[0], **{"id": v["id"], "name": v["name"], "local_id": v["id"], "type": "VM",
                                   "vlan_id": v["vlan_id"], "vds": dict(v["vds"])}} if own else
                     {"id": v["id"], "name": v["name"], "local_id": v["id"], "type": "VM", "vlan_id": v["vlan_id"],
                      "mode_type": "VLAN_ACCESS", "vds": dict(v["vds"])}
                     for v in self.foreign_vlans]
        return extra + own

    def list_vdses(self) -> list[dict]:
        own = super().list_vdses()
        with self.lock:
            seen, extra = set(), []
            for v in self.foreign_vlans:
                if v["vds"]["id"] in seen:
                    continue
                seen.add(v["vds"]["id"])
                mine = [x for x in self.foreign_vlans if x["vds"]["id"] == v["vds"]["id"]]
                extra.append({**(own[0] if own else {}), "id": v["vds"]["id"], "name": v["vds"]["name"],
                              "local_id": v["vds"]["id"], "type": "VM", "internal": False,
                              "cluster": dict(v["cluster"]), "vlans_num": len(mine),
                              "vlans": [{"id": x["id"], "name": x["name"]} for x in mine]})
        return extra + own

    # ------------------------------------------------------------------ snapshot
    def export_obs(self) -> dict:
        with self.lock:
            return {"uploads": _rows(self.obs_uploads), "jobs": _rows(self.obs_jobs),
                    "packages": _rows(self.obs_packages), "instances": _rows(self.obs_instances),
                    "foreign_vlans": [dict(v) for v in self.foreign_vlans],
                    "tunables": {"obs_install_s": self.obs_install_s, "obs_vm_lead_s": self.obs_vm_lead_s,
                                 "obs_ssh": self.obs_ssh}}

    def import_obs(self, saved: dict) -> None:
        with self.lock:
            self.obs_uploads = _table(ObsUpload, saved.get("uploads"))
            for up in self.obs_uploads.values():
                if up.status == "UPLOADING":
                    up.verifiable = False               # the running digest / gzip state lived in memory only
            self.obs_jobs = {r["upload_id"]: _build(ObsJob, r) for r in saved.get("jobs") or []}
            self.obs_packages = _table(ObsPackage, saved.get("packages"))
            self.obs_instances = _table(ObsInstance, saved.get("instances"))
            self.foreign_vlans = [dict(v) for v in saved.get("foreign_vlans") or []]
            self._obs_streams = {}
            tun = saved.get("tunables") or {}
            self.obs_install_s = float(tun.get("obs_install_s", self.obs_install_s))
            self.obs_vm_lead_s = float(tun.get("obs_vm_lead_s", self.obs_vm_lead_s))
            self.obs_ssh = bool(tun.get("obs_ssh", self.obs_ssh))
            up = [i.vm_spec["ip"] for i in self.obs_instances.values() if i.networked]
        for ip in up:                                   # the SSH family imported before this tower existed
            self._obs_network_up(ip)


def _build(cls, d: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in known})


def _rfc3339(wall: float) -> str:
    s = iso_ms(wall)
    return s[:-1] + "000000Z" if s else s


def _pb_time(wall: float) -> dict:
    return {"seconds": int(wall), "nanos": int(round((wall - int(wall)) * 1e9)) % 1_000_000_000}
