"""Stage 09 of a simulated CloudTower: OVF parsing (``parse-ovf``) and VM disk uploads (``upload-elf-file``,
``cancel-upload-task``) -- state only; ``rest_vms.py`` reads the multipart bodies.

* :func:`parse_ovf_xml` turns an OVF descriptor into the SDK's ``ParsedOVF`` ``{name, description, cpu {sockets,
  cores}, vcpu, memory (bytes), firmware BIOS|UEFI, disks [{name: the file's ovf:href, size: capacity bytes, type
  DISK|CD_ROM, bus VIRTIO|SCSI|IDE}], nics [{mac}]}``. Not an ``Envelope`` (or not XML) -> :class:`OvfError`.
* :class:`VmUploadsMixin` keeps VM disk uploads in the tower's one store of upload tasks (``upload_tasks``,
  :class:`~mocks.cloudtower.backup_uploads.UploadTask`, shared with ``get-upload-tasks``): ``resource_type``
  ``VM_VOLUME_VMDK`` (``.qcow2``: ``VM_VOLUME_QCOW2``), ``args {name, cluster_id}``, ``chunk_size`` the tower's
  ``upload_chunk_size`` (4194304). A chunk carries no index: each accepted chunk is chunk ``received + 1`` (1-based);
  a non-final chunk must be exactly ``chunk_size`` bytes, the last one the remainder (else 400, counted in
  ``rejected``); after ``SUCCESSED`` every chunk is refused (``resent_after_complete``). ``current_chunk`` answers the
  last accepted chunk (1 before any: the status is then ``INITIALIZING``). The first call (no ``upload_task_id``)
  creates the task; under profile ``elf-upload-first-chunk`` (default, ``tower.elf_upload_first = "chunk"``) its
  ``file`` is chunk 1, under ``elf-upload-create-only`` (``"create"``) the file part is ignored. Bytes are hashed
  (``UploadTask.sha256`` once complete), never kept. An ``operation: fail`` fault on the call fails the task.
"""
from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from .backup_uploads import UploadTask
from .errors import RestError
from .filters import FilterError, select
from .tasks import TaskFault
from .util import iso_ms

MAX_OVF_BYTES = 1024 * 1024
ELF_FIRST_MODES = ("chunk", "create")
VM_VOLUME_TYPES = ("VM_VOLUME_VMDK", "VM_VOLUME_QCOW2", "VM_VOLUME_RAW")
SIZE_UNITS = ("BYTE", "B")             # upload-elf-file's size_unit (a free string in the SDK; the design's "BYTE")
_UNITS = re.compile(r"^\s*byte\s*(?:\*\s*(\d+)\s*\^\s*(\d+))?\s*$", re.I)
_RT_CPU, _RT_MEM, _RT_IDE, _RT_SCSI, _RT_NIC, _RT_CD, _RT_DVD, _RT_DISK, _RT_SATA = 3, 4, 5, 6, 10, 15, 16, 17, 20


class OvfError(ValueError):
    """The file is not an OVF descriptor the simulator can read."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(el: ET.Element, name: str) -> str | None:
    for k, v in el.attrib.items():
        if _local(k) == name:
            return v
    return None


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: ET.Element, name: str) -> str | None:
    c = _child(el, name)
    return c.text.strip() if c is not None and c.text else None


def _units(s: str | None, default: int) -> int:
    if not s:
        return default
    m = _UNITS.match(s)
    if m is None:
        raise OvfError(f"unsupported allocation units {s!r} (expected 'byte * 2^N')")
    return int(m.group(1)) ** int(m.group(2)) if m.group(1) else 1


def _int(s: str | None, what: str) -> int:
    try:
        return int(str(s).strip())
    except (TypeError, ValueError):
        raise OvfError(f"{what}: {s!r} is not an integer") from None


def _files_and_disks(root: ET.Element) -> tuple[dict, dict]:
    """``({file id: href}, {disk id: {name: the file's href, size: capacity bytes}})``."""
    refs = _child(root, "References")
    files = {_attr(f, "id"): _attr(f, "href") for f in (refs if refs is not None else []) if _local(f.tag) == "File"}
    disks: dict[str, dict] = {}
    for sec in (s for s in root if _local(s.tag) == "DiskSection"):
        for d in (x for x in sec if _local(x.tag) == "Disk"):
            ref = _attr(d, "fileRef")
            size = _int(_attr(d, "capacity"), "Disk capacity") * _units(_attr(d, "capacityAllocationUnits"), 1)
            disks[_attr(d, "diskId") or ""] = {"name": files.get(ref) or ref or _attr(d, "diskId"), "size": size}
    return files, disks


def _controllers(items: list) -> dict:
    out = {}
    for it in items:
        rt = _int(_text(it, "ResourceType") or 0, "ResourceType")
        if rt in (_RT_IDE, _RT_SCSI, _RT_SATA):
            sub = (_text(it, "ResourceSubType") or "").lower()
            out[_text(it, "InstanceID")] = "VIRTIO" if "virtio" in sub else "SCSI" if rt == _RT_SCSI else "IDE"
    return out


def parse_ovf_xml(data: bytes) -> dict:
    """The ``ParsedOVF`` of an OVF descriptor (see the module doc); :class:`OvfError` when it is not one."""
    if len(data) > MAX_OVF_BYTES:
        raise OvfError(f"the OVF descriptor is larger than {MAX_OVF_BYTES} bytes")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise OvfError(f"the file is not XML: {exc}") from None
    if _local(root.tag) != "Envelope":
        raise OvfError(f"the file is not an OVF descriptor: its root element is <{_local(root.tag)}>, not <Envelope>")
    files, disks = _files_and_disks(root)
    vs = next((x for x in root.iter() if _local(x.tag) == "VirtualSystem"), None)
    if vs is None:
        raise OvfError("the OVF descriptor has no VirtualSystem")
    hw = _child(vs, "VirtualHardwareSection")
    items = [i for i in (hw if hw is not None else []) if _local(i.tag) in ("Item", "StorageItem", "EthernetPortItem")]
    controllers, out_disks, nics = _controllers(items), [], []
    vcpu, cores, memory = 1, 1, 0
    used: set[str] = set()
    for it in items:
        rt = _int(_text(it, "ResourceType") or 0, "ResourceType")
        if rt == _RT_CPU:
            vcpu = _int(_text(it, "VirtualQuantity"), "CPU VirtualQuantity")
            per = _text(it, "CoresPerSocket") or next((_attr(c, "value") for c in it if _local(c.tag) == "Config"
                                                       and _attr(c, "key") == "cpuid.coresPerSocket"), None)
            cores = _int(per, "CoresPerSocket") if per else 1
        elif rt == _RT_MEM:
            memory = _int(_text(it, "VirtualQuantity"), "memory VirtualQuantity") * _units(
                _text(it, "AllocationUnits"), 2 ** 20)
        elif rt in (_RT_DISK, _RT_CD, _RT_DVD):
            bus = controllers.get(_text(it, "Parent"), "VIRTIO" if rt == _RT_DISK else "IDE")
            host = _text(it, "HostResource") or ""
            key = host.rsplit("/", 1)[-1]
            if rt == _RT_DISK and key in disks:
                used.add(key)
                out_disks.append({"name": disks[key]["name"], "size": disks[key]["size"], "type": "DISK", "bus": bus})
            elif rt != _RT_DISK:
                name = files.get(key) or f"cdrom{sum(d['type'] == 'CD_ROM' for d in out_disks) + 1}"
                out_disks.append({"name": name, "size": 0, "type": "CD_ROM", "bus": bus})
        elif rt == _RT_NIC:
            nics.append({"mac": _text(it, "Address") or ""})
    out_disks += [{"name": d["name"], "size": d["size"], "type": "DISK", "bus": "VIRTIO"}
                  for k, d in disks.items() if k not in used]
    if vcpu < 1 or cores < 1 or vcpu % cores:
        raise OvfError(f"CPU: {vcpu} vCPU cannot be split into sockets of {cores} cores")
    fw = next((_attr(c, "value") for c in root.iter() if _local(c.tag) == "Config" and _attr(c, "key") == "firmware"),
              None)
    annotation = next((x.text.strip() for x in vs.iter() if _local(x.tag) == "Annotation" and x.text), "")
    return {"name": _text(vs, "Name") or _attr(vs, "id") or "vm", "description": annotation,
            "cpu": {"sockets": vcpu // cores, "cores": cores}, "vcpu": vcpu, "memory": memory,
            "firmware": "UEFI" if (fw or "").lower() in ("efi", "uefi") else "BIOS", "disks": out_disks, "nics": nics}


@dataclass
class FilePart:
    """The ``file`` part of one upload call: its size, and its bytes when it fits one chunk (else ``too_big``)."""

    size: int = 0
    blocks: list = field(default_factory=list, repr=False)
    too_big: bool = False


class VmUploadsMixin:
    """``parse-ovf``, ``upload-elf-file``, ``cancel-upload-task`` (state set up by ``VmsMixin._init_vms``; the upload
    tasks are ``BackupMixin``'s store)."""

    def _vm_cluster(self, cluster_id: Any, what: str = "cluster_id"):
        """The CONNECTED cluster ``cluster_id``; 400 otherwise."""
        c = self.clusters.get(cluster_id) if isinstance(cluster_id, str) else None
        if c is None:
            raise RestError(400, f"{what}: no cluster with id {cluster_id!r}")
        state = self.connect_state(c)
        if state != "CONNECTED":
            raise RestError(400, f"{what}: the cluster {c.name} is {state}")
        return c

    def parse_ovf(self, data: bytes, cluster_id: Any) -> dict:
        with self.lock:
            self._vm_cluster(cluster_id)
        try:
            return parse_ovf_xml(data)
        except OvfError as exc:
            raise RestError(400, f"parse-ovf: {exc}") from None

    def elf_part_limit(self) -> int:
        """Bytes of one ``file`` part kept in memory at most (one chunk)."""
        return max(int(self.upload_chunk_size), 4194304)

    def _new_elf_task(self, fields: dict) -> UploadTask:
        c = self._vm_cluster(fields.get("cluster_id"))
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RestError(400, "upload-elf-file: name (the disk's file name) is required on the first call")
        try:
            size = int(str(fields.get("size")))
        except ValueError:
            raise RestError(400, f"upload-elf-file: size must be the file's total bytes, got {fields.get('size')!r}")\
                from None
        if size <= 0:
            raise RestError(400, f"upload-elf-file: size must be positive, got {size}")
        unit = fields.get("size_unit") or "BYTE"
        if unit not in SIZE_UNITS:
            raise RestError(400, f"upload-elf-file: size_unit must be one of {', '.join(SIZE_UNITS)}, got {unit!r}")
        now = self.clock.wall()
        kind = "VM_VOLUME_QCOW2" if name.lower().endswith(".qcow2") else "VM_VOLUME_VMDK"
        t = UploadTask(id=self._new_id("upload-task"), status="INITIALIZING", size=size,
                       chunk_size=int(self.upload_chunk_size), resource_type=kind,
                       args={"name": name, "cluster_id": c.id}, started_at=iso_ms(now), created_wall=now,
                       updated_wall=now)
        self.upload_tasks[t.id] = t
        self._hashers[t.id] = hashlib.sha256()
        return t

    def _elf_chunk_problem(self, t: UploadTask, part: FilePart | None) -> str | None:
        if t.status == "SUCCESSED":
            t.resent_after_complete += 1
            return f"upload task {t.id} is already SUCCESSED: the chunk was refused"
        if t.status == "FAILED":
            return f"upload task {t.id} has FAILED: {t.error or 'start a new upload'}"
        if part is None:
            return "file is required: the chunk's bytes"
        k = t.received + 1
        want = t.expected_length(k)
        if part.too_big or part.size != want:
            what = "the last chunk" if k == t.total_chunks else f"chunk {k} of {t.total_chunks}"
            return (f"{what} must be {want} bytes, got {part.size} (a chunk carries no index: it is taken as chunk "
                    f"{k}; read get-upload-tasks for current_chunk before sending again)")
        return None

    def upload_elf_file(self, fields: dict, part: FilePart | None, fault: TaskFault | None = None) -> dict:
        """One ``upload-elf-file`` call: ``fields`` the form's text fields, ``part`` the ``file`` part (or None)."""
        with self.lock:
            tid = fields.get("upload_task_id")
            if tid:
                t = self.upload_tasks.get(tid)
                if t is None:
                    raise RestError(400, f"upload-elf-file: no upload task {tid!r} (cancelled, or never created)")
                if t.resource_type not in VM_VOLUME_TYPES:
                    raise RestError(400, f"upload-elf-file: upload task {tid} is a {t.resource_type} upload")
                for k in ("name", "cluster_id"):
                    if fields.get(k) not in (None, "", t.args.get(k)):
                        raise RestError(400, f"upload-elf-file: {k} {fields[k]!r} is not the upload task's "
                                             f"{t.args.get(k)!r}")
            else:
                t = self._new_elf_task(fields)
                if self.elf_upload_first == "create":
                    return self.upload_task_view(t)
                first = self._elf_chunk_problem(t, part)
                if first is not None:                      # nothing created when the first chunk is refused
                    self.upload_tasks.pop(t.id, None)
                    self._hashers.pop(t.id, None)
                    raise RestError(400, f"upload-elf-file: {first}")
            problem = self._elf_chunk_problem(t, part)
            if problem is None and fault is not None and fault.mode == "fail":
                t.status, t.error = "FAILED", fault.msg or "injected fault: the upload failed"
                problem = t.error
            if problem is not None:
                t.rejected += 1
                raise RestError(400, f"upload-elf-file: {problem}")
            hasher = self._hashers.get(t.id)
            if hasher is not None:
                for block in part.blocks:
                    hasher.update(block)
            t.received += 1
            t.bytes_received += part.size
            t.updated_wall, t.status = self.clock.wall(), "UPLOADING"
            if t.received == t.total_chunks:
                t.status, t.finished_wall = "SUCCESSED", t.updated_wall
                digest = self._hashers.pop(t.id, None)
                t.sha256 = digest.hexdigest() if digest is not None else None
            return self.upload_task_view(t)

    def elf_upload(self, task_id: str) -> UploadTask | None:
        return self.upload_tasks.get(task_id)

    def cancel_upload_tasks(self, where: Any) -> list[str]:
        """``cancel-upload-task {where}``: the matched tasks disappear; their ids."""
        with self.lock:
            try:
                hits = select(self.list_upload_tasks(), {"where": where}, typename="UploadTask")
            except FilterError as exc:
                raise RestError(400, f"cancel-upload-task: {exc}") from None
            for v in hits:
                self.upload_tasks.pop(v["id"], None)
                self._hashers.pop(v["id"], None)
            return [v["id"] for v in hits]
