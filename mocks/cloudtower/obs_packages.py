"""Stage 07a of a simulated CloudTower: OVM operator chunked uploads and the Observability package they become.

:class:`ObsPackagesMixin` (composed by :class:`~mocks.cloudtower.obs.ObsMixin`; see that module's doc for the whole
of stage 07a) keeps ``obs_uploads`` (:class:`ObsUpload`: appended chunks, a running SHA-256 and a :class:`GzipCheck`,
never the bytes), ``obs_jobs`` (:class:`ObsJob`: the two package tasks a commit starts) and ``obs_packages``
(:class:`ObsPackage`). Also the OVM id shape (:func:`ksuid`) and the package file names (:func:`package_of`).
"""
from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from typing import Any

from .tasks import TaskFault
from .util import cuid, iso_ms

INSTALL_PKG_S = 315.0        # "Create Installation package …": 5 min 15 s in the guide's example
APP_PKG_AT = 176.0           # "Create Application package …" starts this long after the commit …
APP_PKG_S = 101.0            # … and runs 1 min 41 s (it ends before the first)
PKG_FAIL_S = 30.0            # a package that cannot be read fails this long after the commit [inf]
OBS_PACKAGE_NAME = "Observability"
PACKAGE_RE = re.compile(r"^Observability-(?P<arch>X86_64|AARCH64)-(?P<version>v[\d.]+)"
                        r"(?:-release\.(?P<date>\d+)(?:-(?P<build>\d+))?)?\.tar\.gz$", re.IGNORECASE)
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


class ObsPackagesMixin:
    """OVM chunked uploads and package processing (state set up by ``ObsMixin._init_obs``)."""

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

    # ------------------------------------------------------------------ processing (settle: ObsMixin.settle_obs)
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


def _rfc3339(wall: float) -> str:
    s = iso_ms(wall)
    return s[:-1] + "000000Z" if s else s


def _pb_time(wall: float) -> dict:
    return {"seconds": int(wall), "nanos": int(round((wall - int(wall)) * 1e9)) % 1_000_000_000}
