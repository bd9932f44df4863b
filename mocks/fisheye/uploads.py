"""Image uploads: SVT (guide §03, ``/api/v2/svt_image/*``) and ISO (guide §04, ``/api/v2/images/upload*``)
share one accounting -- chunks are counted and hashed, never kept.

Resuming a partial upload: the guide shows how a volume is created, filled chunk by chunk (every answer
lists the chunks still missing, ``to_upload``) and deleted, and that ``GET /api/v2/images`` lists finished
images; it is silent on whether a volume still uploading can be seen or continued later. Each plausible
behaviour is a profile (``Uploads.profile``; ``SMTX_SIM_UPLOAD_PROFILE`` sets the default):

``status``     (default) ``GET /api/v2/images/{uuid}`` shows a partial volume (``status: uploading``,
               ``to_upload``); the list shows finished images only (the guide's sample).
``listed``     as ``status``, and ``GET /api/v2/images`` also lists partial volumes
               (``resource_state: "uploading"``, ``to_upload``, ``chunk_size``).
``opaque``     a partial volume is invisible (GET 404, not listed); chunks may still be sent to it and
               every answer lists what is missing.
``no-resume``  as ``opaque``, and a volume takes chunks only from the session that created it (a later
               session gets 400): the client can only delete it and start over.
"""
from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from .cluster import ClusterContext
from .errors import invalid, not_found

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024   # the guide's chunk_size
MAX_CHUNKS = 1_000_000
SVT_IMAGE_DIR = "/usr/share/smartx/images/vmtools"
UPLOAD_KINDS = ("SVT", "ISO")
ISCSI_IQN = "iqn.2016-02.com.smartx:system"       # the guide's ISO image_path: iscsi://<iqn>:zbs-iscsi-datastore-<uuid>/<lun>
FIRST_ISCSI_LUN = 64                               # the guide's samples show LUNs 67..225
ISO_DEVICES = ("nfs",)                             # the guide: "device ... 只支持 nfs"
UPLOAD_PROFILES = ("status", "listed", "opaque", "no-resume")
PROFILE_ENV = "SMTX_SIM_UPLOAD_PROFILE"


def default_profile() -> str:
    name = os.environ.get(PROFILE_ENV, "").strip() or "status"
    if name not in UPLOAD_PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r}: the upload profile must be one of {', '.join(UPLOAD_PROFILES)}")
    return name


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
    owner: str = ""                      # SHA-256 of the creating session's token (profile no-resume)
    resent_after_complete: int = 0       # chunk calls refused because the upload was already complete

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

    def listed_partial(self) -> dict:
        """Profile ``listed``: a volume still uploading in ``GET /api/v2/images``, with what it misses."""
        return self.listed() | {"md5": None, "resource_state": "uploading", "chunk_size": self.chunk_size,
                                "to_upload": self.to_upload}


def _lun_of(path: str) -> int | None:
    tail = path.rsplit("/", 1)[-1] if path.startswith("iscsi://") else ""
    return int(tail) if tail.isdigit() else None


def _size(size: str | None) -> int:
    try:
        n = int(size or "")
    except ValueError:
        raise invalid(f"query parameter size {size!r} must be the file size in bytes") from None
    if n <= 0:
        raise invalid(f"size must be > 0, got {n}")
    return n


class Uploads:
    """``uploads`` (image uuid -> :class:`Upload`), ``chunk_size``, the iSCSI LUN counter."""

    def __init__(self, ctx: ClusterContext):
        self.ctx = ctx
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.uploads: dict[str, Upload] = {}
        self.profile = default_profile()                  # see the module docstring
        self._iscsi_lun = FIRST_ISCSI_LUN - 1             # last LUN handed out (ISO images, VM disks)

    def create_volume(self, name: str | None, size: str | None, *, kind: str = "SVT", description: str | None = "",
                      device: str | None = None, owner: str = "") -> dict:
        """A new upload volume; the same accounting serves SVT (``/api/v2/svt_image/create_volume``) and
        ISO uploads (``/api/v2/images/upload/volume``). ISO volumes get an ``iscsi://`` image path."""
        if kind not in UPLOAD_KINDS:
            raise ValueError(f"unknown upload kind {kind!r}")
        if not name:
            raise invalid("query parameter name is required")
        n = _size(size)
        if kind == "ISO" and device not in (None, "") and device not in ISO_DEVICES:
            raise invalid(f"device {device!r} is not supported; the upload volume's device must be one of "
                          f"{', '.join(ISO_DEVICES)}")
        chunk = int(self.chunk_size)
        chunks = math.ceil(n / chunk)
        if chunks > MAX_CHUNKS:
            raise invalid(f"size {n} needs {chunks} chunks of {chunk} bytes; at most {MAX_CHUNKS}")
        up = Upload(str(uuid.uuid4()), str(uuid.uuid4()), name, n, chunk, self.ctx.clock.now(),
                    received=[0] * chunks, digests=[None] * chunks, kind=kind, description=description or "",
                    device=(device or "nfs") if kind == "ISO" else "", created_wall=int(self.ctx.clock.wall()),
                    owner=owner)
        with self.ctx.lock:
            if kind == "ISO":
                up.path = iscsi_path(self.ctx.cluster["name"] if self.ctx.cluster else None, self.next_iscsi_lun())
            self.uploads[up.image_uuid] = up
        return up.volume()

    def next_iscsi_lun(self) -> int:
        """The next free LUN of the cluster's iSCSI datastore (ISO images; the VMs family's disks too)."""
        with self.ctx.lock:
            used = [_lun_of(u.path) for u in self.uploads.values()]
            self._iscsi_lun = max([self._iscsi_lun, FIRST_ISCSI_LUN - 1] + [x for x in used if x is not None]) + 1
            return self._iscsi_lun

    def note_iscsi_lun(self, lun: int) -> None:
        """A LUN already in use (restored VM disks): later LUNs are handed out above it."""
        with self.ctx.lock:
            self._iscsi_lun = max(self._iscsi_lun, int(lun))

    def _live(self, image_uuid: str | None, msg: str) -> Upload:
        up = self.uploads.get(image_uuid or "")
        if up is None or up.status == "deleted":
            raise invalid(msg)
        return up

    def upload_target(self, zbs_volume_id: str | None, image_uuid: str | None, chunk_num: str | None,
                      kind: str | None = None, owner: str = "") -> tuple[Upload, int]:
        """Validate a chunk upload before its body is read; returns (upload, chunk index). ``kind``:
        the route's upload kind (an SVT volume's chunk sent to the ISO route is refused, and back);
        ``owner``: the calling session (profile ``no-resume`` refuses another session's volume)."""
        with self.ctx.lock:
            up = self._live(image_uuid, f"image_uuid {image_uuid!r} is not an upload volume")
            if kind is not None and up.kind != kind:
                raise invalid(f"image {image_uuid} is an {up.kind} upload volume, not an {kind} one")
            if self.profile == "no-resume" and up.status == "uploading" and up.owner and owner != up.owner:
                up.rejected += 1
                raise invalid(f"upload volume {image_uuid} was created by another session and cannot be continued; "
                              f"delete it and upload again")
            if zbs_volume_id != up.zbs_volume_id:
                raise invalid(f"zbs_volume_id {zbs_volume_id!r} does not belong to image {image_uuid}")
            if up.status == "ready":            # field notes: a late answer, then a re-send, meets a finished image
                up.rejected += 1
                up.resent_after_complete += 1
                raise invalid(f"upload of image {image_uuid} is already complete; chunk {chunk_num} is not accepted")
            try:
                i = int(chunk_num or "")
            except ValueError:
                up.rejected += 1
                raise invalid(f"chunk_num {chunk_num!r} is not an integer") from None
            if not 0 <= i < up.chunks:
                up.rejected += 1
                raise invalid(f"chunk_num {i} is out of range 0..{up.chunks - 1}")
            return up, i

    def accept_chunk(self, up: Upload, i: int, nbytes: int, sha256: str) -> dict:
        want = up.expected_length(i)
        with self.ctx.lock:
            if up.status == "deleted":
                raise invalid(f"image {up.image_uuid} was deleted during the upload")
            if nbytes != want:
                up.rejected += 1
                raise invalid(f"chunk {i} has {nbytes} bytes; expected {want}"
                              + (" (the last chunk is the remainder of the file)" if i == up.chunks - 1 else ""))
            up.received[i] += 1
            up.digests[i] = sha256
            up.bytes_received += nbytes
            if up.complete and up.status == "uploading":
                up.status = "ready"
            return up.volume()

    def reject_chunk(self, up: Upload) -> None:
        with self.ctx.lock:
            up.rejected += 1

    def _found(self, image_uuid: str) -> Upload:
        up = self.uploads.get(image_uuid)
        if up is None or up.status == "deleted":
            raise not_found(f"image {image_uuid} not found")
        return up

    def image(self, image_uuid: str) -> dict:
        """GET /api/v2/images/{uuid}; a volume still uploading only in the profiles that show one."""
        with self.ctx.lock:
            up = self._found(image_uuid)
            if up.status == "uploading" and self.profile not in ("status", "listed"):
                raise not_found(f"image {image_uuid} not found")
            return up.image()

    def delete_image(self, image_uuid: str) -> dict:
        with self.ctx.lock:
            self._found(image_uuid).status = "deleted"
        return {}

    def upload_by_name(self, name: str, kind: str | None = None) -> Upload | None:
        """The latest upload volume of that file name that was not deleted (of that kind, if given)."""
        with self.ctx.lock:
            ups = [u for u in self.uploads.values() if u.name == name and u.status != "deleted"
                   and (kind is None or u.kind == kind)]
            return max(ups, key=lambda u: u.created) if ups else None

    def list_images(self) -> list[dict]:
        """GET /api/v2/images: the guide's image objects for finished uploads (SVT and ISO); in profile
        ``listed`` also the volumes still uploading (``resource_state: "uploading"``, ``to_upload``)."""
        with self.ctx.lock:
            return [u.listed() if u.status == "ready" else u.listed_partial() for u in self.uploads.values()
                    if u.status == "ready" or (u.status == "uploading" and self.profile == "listed")]

    def ready(self, kind: str) -> list[Upload]:
        with self.ctx.lock:
            return [u for u in self.uploads.values() if u.status == "ready" and u.kind == kind]

    def image_by_path(self, path: Any, kinds: tuple[str, ...] = UPLOAD_KINDS) -> Upload | None:
        """The finished image whose ``path`` (as ``GET /api/v2/images`` and the upload volume show it) is
        ``path``; None when no such image exists (e.g. deleted, or still uploading)."""
        if not isinstance(path, str) or not path:
            return None
        with self.ctx.lock:
            return next((u for u in self.uploads.values()
                         if u.status == "ready" and u.kind in kinds and u.image_path == path), None)
