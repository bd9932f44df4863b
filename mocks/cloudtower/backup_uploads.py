"""Stage 07b of a simulated CloudTower: application-package upload tasks and the packages they register.

:class:`BackupUploadsMixin` (composed by :class:`~mocks.cloudtower.backup.BackupMixin`; see that module's doc for the
whole of stage 07b) holds ``upload_tasks`` (:class:`UploadTask`, chunks 1-based, bytes hashed never kept) and
``app_packages`` (:class:`AppPackage`, listed ``package_register_s`` simulated seconds after the last chunk).
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import GqlError
from .tasks import TaskFault
from .util import iso_ms

UPLOAD_CHUNK_SIZE = 4194304
PACKAGE_REGISTER_S = 20.0
BACKUP_PACKAGE = "iomesh-backup"
UPLOAD_STATUSES = ("INITIALIZING", "UPLOADING", "PAUSED", "SUCCESSED", "FAILED")
RESOURCE_TYPES = ("CLOUDTOWER_APPLICATION_PACKAGE", "CLOUDTOWER_K8S_APP_PACKAGE", "CLUSTER_IMAGE", "CLUSTER_IMAGE_META",
                  "CONTENT_LIBRARY_IMAGE", "ELF_IMAGE", "EVEROUTE_PACKAGE", "HOST_PLUGIN_PACKAGE", "MONITOR_IMAGE", "OVF",
                  "SVT_IMAGE", "VM_VOLUME_QCOW2", "VM_VOLUME_RAW", "VM_VOLUME_VMDK")
PACKAGE_FILE = re.compile(r"^smtx-backup-dr-(?P<arch>x86_64|aarch64)-(?P<version>\d+(?:\.\d+)*)\.tar\.gz$")


@dataclass
class Upload:
    """One file part of a GraphQL multipart request (the request's body is read whole: one chunk, 4 MiB; the
    package is never kept: each chunk feeds the upload's running SHA-256 and is dropped with the request)."""

    filename: str | None
    content_type: str | None
    size: int
    blocks: list = field(default_factory=list, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for b in self.blocks:
            h.update(b)
        return h.hexdigest()


@dataclass
class UploadTask:
    id: str
    status: str
    size: int
    chunk_size: int
    resource_type: str
    args: dict
    started_at: str | None
    created_wall: float
    updated_wall: float
    finished_wall: float | None = None
    received: int = 0                     # chunks accepted (the last accepted is chunk ``received``)
    bytes_received: int = 0
    rejected: int = 0                     # chunk calls refused
    resent_after_complete: int = 0        # chunks sent after SUCCESSED (a blind re-send of the last chunk)
    sha256: str | None = None             # the whole file, once complete (None after a restore mid-upload)
    package_id: str | None = None
    error: str | None = None

    @property
    def total_chunks(self) -> int:
        return max(1, math.ceil(self.size / self.chunk_size))

    def expected_length(self, k: int) -> int:
        return self.chunk_size if k < self.total_chunks else self.size - (self.total_chunks - 1) * self.chunk_size


@dataclass
class AppPackage:
    id: str
    name: str
    filename: str
    version: str
    architecture: str
    size: int
    visible_at: float                     # simulated seconds: listed from then on
    sha256: str | None = None
    upload_task_id: str | None = None
    scos_version: str = "1.2.0"


def _gql(msg: str, code: str = "BAD_USER_INPUT") -> GqlError:
    return GqlError(msg, code)


class BackupUploadsMixin:
    """Upload tasks and application packages (state set up by ``BackupMixin._init_backup``)."""

    def create_upload_task(self, data: dict) -> dict:
        size = data.get("size")
        if not isinstance(size, (int, float)) or isinstance(size, bool) or size <= 0 or int(size) != size:
            raise _gql(f"size must be a positive integer, got {size!r}")
        if data.get("status") not in (None, "INITIALIZING"):
            raise _gql(f"status of a new upload task must be INITIALIZING, got {data.get('status')!r}")
        if data.get("current_chunk") not in (None, 1):
            raise _gql(f"current_chunk of a new upload task must be 1 (chunks are 1-based), got {data['current_chunk']!r}")
        args = data.get("args")
        if not isinstance(args, dict) or not isinstance(args.get("name"), str) or not args["name"]:
            raise _gql("args must be an object with the file name: {name, package_name}")
        now = self.clock.wall()
        with self.lock:
            t = UploadTask(id=self._new_id("upload-task"), status="INITIALIZING", size=int(size),
                           chunk_size=int(self.upload_chunk_size), resource_type=data.get("resource_type"),
                           args=dict(args), started_at=data.get("started_at") or iso_ms(now), created_wall=now,
                           updated_wall=now)
            self.upload_tasks[t.id] = t
            self._hashers[t.id] = hashlib.sha256()
            return self.upload_task_view(t)

    def upload_task_view(self, t: UploadTask) -> dict:
        return {"id": t.id, "status": t.status, "current_chunk": max(1, t.received), "chunk_size": t.chunk_size,
                "resource_type": t.resource_type, "size": t.size, "args": dict(t.args), "started_at": t.started_at,
                "finished_at": iso_ms(t.finished_wall), "updatedAt": iso_ms(t.updated_wall)}

    def list_upload_tasks(self) -> list[dict]:
        with self.lock:
            return [self.upload_task_view(t) for t in self.upload_tasks.values()]

    def _backup_chunk_problem(self, t: UploadTask, k: Any, part: Any) -> str | None:
        if t.status == "SUCCESSED":
            t.resent_after_complete += 1
            return f"upload task {t.id} is already SUCCESSED: chunk {k} refused"
        if t.status == "FAILED":
            return f"upload task {t.id} has FAILED: {t.error or 'start a new upload task'}"
        if not isinstance(k, int) or isinstance(k, bool):
            return f"current_chunk must be an integer, got {k!r}"
        if k != t.received + 1:
            return (f"current_chunk {k} is not the chunk expected: {t.received + 1} (chunks are 1-based; "
                    f"{t.received} of {t.total_chunks} received)")
        if not isinstance(part, Upload):
            return "no file: send the chunk as multipart part mapped to variables.data.file"
        want = t.expected_length(k)
        if part.size != want:
            kind = "the last chunk" if k == t.total_chunks else f"chunk {k} of {t.total_chunks}"
            return f"{kind} must be {want} bytes, got {part.size}"
        return None

    def upload_chunk(self, task_id: Any, k: Any, part: Any, fault: TaskFault | None = None) -> dict:
        """``uploadCloudTowerApplicationPackage``: accept chunk ``k`` (1-based) of upload task ``task_id``."""
        with self.lock:
            t = self.upload_tasks.get(task_id)
            if t is None:
                raise _gql(f"upload task {task_id} not found", "NOT_FOUND")
            problem = self._backup_chunk_problem(t, k, part)
            if problem is None and fault is not None and fault.mode == "fail":
                t.status, t.error = "FAILED", fault.msg or "injected fault: the upload failed"
                problem = t.error
            if problem is not None:
                t.rejected += 1
                raise _gql(problem)
            hasher = self._hashers.get(t.id)
            if hasher is not None:
                for block in part.blocks:
                    hasher.update(block)
            t.received, t.bytes_received, t.updated_wall = k, t.bytes_received + part.size, self.clock.wall()
            t.status = "UPLOADING"
            if k == t.total_chunks:
                t.status, t.finished_wall = "SUCCESSED", t.updated_wall
                digest = self._hashers.pop(t.id, None)
                t.sha256 = digest.hexdigest() if digest is not None else None
                self._backup_register_upload(t)
            return self.upload_task_view(t)

    def _backup_register_upload(self, t: UploadTask) -> None:
        if t.resource_type != "CLOUDTOWER_APPLICATION_PACKAGE":
            return
        name = t.args.get("name") or ""
        m = PACKAGE_FILE.match(name)
        if m is None:
            t.error = f"{name}: not an application package this CloudTower knows (smtx-backup-dr-<arch>-<ver>.tar.gz)"
            return
        pkg = self.register_package(name, size=t.size, sha256=t.sha256, package_name=t.args.get("package_name"),
                                    delay=self.package_register_s, upload_task_id=t.id)
        t.package_id = pkg.id

    def register_package(self, filename: str, *, size: int = 0, sha256: str | None = None,
                         package_name: str | None = None, delay: float = 0.0,
                         upload_task_id: str | None = None) -> AppPackage:
        """The package of ``filename`` (``smtx-backup-dr-<arch>-<version>.tar.gz``), listed ``delay`` simulated s from
        now; one already there with the same name, version and architecture is updated (same id)."""
        m = PACKAGE_FILE.match(filename)
        if m is None:
            raise ValueError(f"{filename!r} is not named smtx-backup-dr-<x86_64|aarch64>-<version>.tar.gz")
        arch, version = m.group("arch").upper(), m.group("version")
        name = package_name or BACKUP_PACKAGE
        visible = self.clock.now() + float(delay)
        with self.lock:
            pkg = next((p for p in self.app_packages.values()
                        if (p.name, p.version, p.architecture) == (name, version, arch)), None)
            if pkg is None:
                pkg = AppPackage(self._new_id("app-package"), name, filename, version, arch, int(size), visible)
                self.app_packages[pkg.id] = pkg
            else:
                pkg.filename, pkg.size, pkg.visible_at = filename, int(size), min(pkg.visible_at, visible)
            pkg.sha256, pkg.upload_task_id = sha256, upload_task_id
            return pkg

    def _backup_packages(self) -> list[AppPackage]:
        now = self.clock.now()
        return [p for p in self.app_packages.values() if p.visible_at <= now]

    def package_view(self, p: AppPackage, *, rest: bool = False) -> dict:
        apps = [{"id": s.app_id, "name": s.app_name} for s in self.backup_services.values() if s.package_id == p.id]
        v = {"id": p.id, "name": p.name, "filename": p.filename, "version": p.version, "architecture": p.architecture,
             "scosVersion": p.scos_version, "containers": {}, "images": {}, "applications": apps}
        if rest:
            del v["filename"]                                  # the SDK's REST model has no filename
        return v

    def list_packages(self, *, rest: bool = False) -> list[dict]:
        with self.lock:
            return [self.package_view(p, rest=rest) for p in self._backup_packages()]
