"""CloudTower test VMs (stages 09–11): parse the OVF, upload its disks, import, clone, power, migrate, metrics, cleanup.

REST v2 over :class:`clients.cloudtower.CloudTowerClient` with the official SDK's shapes (VmImportParams, VmCloneParams,
VmNicParams, VmStartParams, VmMigrateParams, VmUpdateNicParams, VmDeleteParams, GetVmMetricInput...); design §2.
Mutations go through ``ct.rest`` (never retried), ``get-*`` reads are retried by the client. Each VM operation answers
a list of ``{data: Vm, task_id}`` (wait with :func:`clients.ct_cluster.tasks_done`).

Disk upload (``upload-elf-file``, multipart, one chunk per call) goes through the one uploader,
:func:`clients.upload.upload_file`, with :class:`ElfUpload` as its adapter, as :class:`clients.backup.BackupUpload`
is: a chunk carries no index (the server takes it as ``current_chunk + 1``), so a chunk whose answer was lost is
never sent again blindly: the task's state is read back (``get-upload-tasks`` by id) and the upload continues from its
``current_chunk``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from .base import MUTATION, READ, ApiError
from .cloudtower import CloudTowerClient
from .ct_cluster import answers
from .ct_uploads import (UNFINISHED, UPLOAD_DONE, UPLOAD_FAILED, UPLOAD_NEW, cancel_upload_task,  # noqa: F401
                         missing_chunks, upload_tasks)
from .upload import FileSlice, UploadJournal, UploadResult, upload_file

TEST_VM_PREFIX = "smtx-acceptance-fio-"
CHUNK_SIZE = 4 * 1024 * 1024             # design §2: what upload-elf-file answers; the server's value wins
CHUNK_TIMEOUT = 60.0                     # seconds for one chunk's answer
VM_METRICS = ("elf_vm_disk_overall_read_iops", "elf_vm_disk_overall_write_iops",
              "elf_vm_disk_overall_read_speed_bps", "elf_vm_disk_overall_write_speed_bps",
              "elf_vm_disk_overall_avg_read_write_latency_ns")
VERIFIED_METRICS = ("elf_vm_disk_overall_write_speed_bps", "elf_vm_disk_overall_avg_read_write_latency_ns")
UPLOAD_NEXT = ("下一步 / next: 在 CloudTower 任务中心查看该上传任务与集群存储，排除后用 --resume 重跑 / check the upload task "
               "and the cluster's storage in CloudTower, then rerun with --resume")


def test_vm_name(i: int) -> str:
    """``smtx-acceptance-fio-01`` for ``i`` = 1 (design §1)."""
    return f"{TEST_VM_PREFIX}{int(i):02d}"


test_vm_name.__test__ = False            # not a pytest test function when imported into a test module


def _where(ids: str | list[str]) -> dict:
    return {"id": ids} if isinstance(ids, str) else {"id_in": list(ids)}


def _one(answer: Any, call: str) -> dict:
    items = answers(answer)
    if len(items) != 1:
        raise AssertionError(f"{call} 应答 {len(items)} 项，应为 1 项 {{data, task_id}} / {call} answered {len(items)} "
                             f"item(s), not one {{data, task_id}}: {str(answer)[:300]}")
    return items[0]


# =========================================================================== OVF and disk upload
def parse_ovf(ct: CloudTowerClient, ovf: Path, cluster_id: str) -> dict:
    """``parse-ovf`` (multipart: ``file`` = the .ovf XML, ``cluster_id``): the ParsedOVF CloudTower reads from it.
    A pure parse, so sent as a read (retried)."""
    ovf = Path(ovf)
    files = {"file": (ovf.name, ovf.read_bytes(), "application/xml"), "cluster_id": (None, cluster_id)}
    resp = ct.authed("POST", "/v2/api/parse-ovf", files=files, kind=READ)
    body = ct.check(resp, hint="CloudTower 无法解析 OVF：检查镜像与集群 ID / CloudTower cannot parse the OVF: check the "
                               "image and the cluster id")
    parsed = body[0] if isinstance(body, list) and len(body) == 1 else body
    if not isinstance(parsed, dict) or not isinstance(parsed.get("disks"), list):
        raise AssertionError(f"parse-ovf 未返回 ParsedOVF（{ovf.name}）/ parse-ovf answered no ParsedOVF for {ovf.name}: "
                             f"{str(body)[:300]}")
    return parsed


class BlindResend(RuntimeError):
    """A chunk that may already be on the server, whose state could not be read: never sent again."""


class ElfUpload:
    """:class:`clients.upload.UploadApi` over ``upload-elf-file`` for one disk file ``path`` of ``cluster_id``.

    ``create`` is the first call (no ``upload_task_id``); it carries chunk 1. Whether the server took it (profile
    ``elf-upload-first-chunk``) or only created the task (``elf-upload-create-only``: INITIALIZING) is read from the
    answer's ``status`` / ``current_chunk``, as after every chunk. ``volume["image_uuid"]`` is the task id (the key
    the uploader's journal keeps); ``to_upload`` lists 0-based chunk numbers. Should the first answer be lost, the
    one new unfinished task of this name and size (``get-upload-tasks``, compared with the list read just before) is
    taken up; none or several: the upload fails with the next action."""

    def __init__(self, ct: CloudTowerClient, cluster_id: str, path: Path, *, chunk_timeout: float = CHUNK_TIMEOUT):
        self.ct, self.cluster_id, self.path, self.chunk_timeout = ct, cluster_id, Path(path), chunk_timeout
        self.name = self.path.name
        self.size = self.path.stat().st_size
        self.sent: set[tuple[str, int]] = set()       # (task id, k) sent to the server in this process
        self.view: dict[str, list[int] | None] = {}   # task id -> the chunks its last state said are missing
        self.failed: dict[str, str] = {}              # task id -> why it is FAILED
        self.notes: list[str] = []

    # --- UploadApi -------------------------------------------------------------------------------------------
    def create(self, name: str, size: int) -> dict:
        self.name, self.size = name, size
        try:
            before: set | None = {t.get("id") for t in upload_tasks(self.ct, name_in=[name], unfinished=True)}
        except ApiError:
            before = None                      # unknown: a lost first answer then cannot be taken up
        chunk = FileSlice(self.path, 0, min(CHUNK_SIZE, size))
        try:
            task = self._call(None, chunk)
        except ApiError as exc:
            if exc.status is not None:
                raise
            task = self._adopt(before, exc)
        finally:
            chunk.close()
        if not task.get("id"):
            raise AssertionError(f"upload-elf-file 未返回上传任务 ID（{name}）/ upload-elf-file answered no upload task "
                                 f"id for {name}: {str(task)[:300]}")
        chunk_size = int(task.get("chunk_size") or CHUNK_SIZE)
        took_first = task.get("status") != UPLOAD_NEW and int(task.get("current_chunk") or 0) >= 1
        if chunk_size != CHUNK_SIZE and took_first and size > min(chunk_size, CHUNK_SIZE):
            self.delete({"image_uuid": task["id"]})
            raise AssertionError(f"上传任务 {task['id']} 的分片大小为 {chunk_size}，首个分片按 {CHUNK_SIZE} 发送且已被接收 / "
                                 f"upload task {task['id']} has chunk_size {chunk_size} but took a first chunk of "
                                 f"{CHUNK_SIZE}; the task was cancelled\n{UPLOAD_NEXT}")
        volume = {"image_uuid": task["id"], "chunk_size": chunk_size, "size": size}
        if task.get("status") == UPLOAD_FAILED:
            self.delete(volume)                # leave no FAILED task behind
        self._fail_if_failed(volume, task, 1, first=True)
        todo = self._missing(volume, task)
        self.view[task["id"]] = todo
        volume["to_upload"] = todo if todo is not None else list(range(max(1, math.ceil(size / chunk_size))))
        return volume

    def send(self, volume: dict, chunk_num: int, chunk) -> dict:
        task_id, k = volume["image_uuid"], chunk_num + 1
        if task_id in self.failed:
            raise AssertionError(self.failed[task_id])
        if (task_id, k) in self.sent and chunk_num not in (self.view.get(task_id) or []):
            raise BlindResend(f"分片 {k} 可能已被服务端收到，服务端状态未知，不重发 / chunk {k} may already be on the "
                              f"server and its state is unknown: not sent again")
        self.sent.add((task_id, k))
        self.view.pop(task_id, None)
        answer = self._call(task_id, chunk)
        self._fail_if_failed(volume, answer, k)
        view = self.view[task_id] = self._missing(volume, answer)
        return {"to_upload": view} if view is not None else {}

    def status(self, volume: dict) -> dict | None:
        """The server's view: ``get-upload-tasks`` by id (None: the task is gone or cannot be read)."""
        task_id = volume["image_uuid"]
        try:
            found = [t for t in upload_tasks(self.ct, ids=[task_id]) if t.get("id") == task_id]
        except ApiError:
            found = []
        view = None
        if found:
            if found[0].get("status") == UPLOAD_FAILED:
                self.failed.setdefault(task_id, self._failed_text(task_id, found[0], None))
            view = self._missing(volume, found[0])
        self.view[task_id] = view
        return None if view is None else {"to_upload": view, "chunk_size": found[0].get("chunk_size")
                                          or volume.get("chunk_size")}

    def partials(self, name: str) -> list[dict]:
        """Unfinished upload tasks of this disk (name, size and cluster): a run killed after the first chunk's answer
        and before its journal held the task left one; the uploader continues it instead of leaving it behind."""
        return [{"image_uuid": t["id"], "name": name, "size": int(t.get("size") or 0), "resource_state": "uploading",
                 "chunk_size": int(t.get("chunk_size") or CHUNK_SIZE)}
                for t in upload_tasks(self.ct, name_in=[name], unfinished=True)
                if t.get("id") and t.get("status") != UPLOAD_FAILED and int(t.get("size") or -1) == self.size
                and (t.get("args") or {}).get("cluster_id") in (None, self.cluster_id)]

    def delete(self, volume: dict) -> None:
        """``cancel-upload-task`` (the SDK has no delete for upload tasks); a refusal is only noted."""
        try:
            cancel_upload_task(self.ct, [volume["image_uuid"]])
        except ApiError as exc:
            self.notes.append(f"取消上传任务 {volume['image_uuid']} 失败 / cancelling upload task "
                              f"{volume['image_uuid']} failed: {str(exc).splitlines()[0]}")

    # --- helpers -------------------------------------------------------------------------------------------------
    def _call(self, task_id: str | None, chunk) -> dict:
        files = {"file": (self.name, chunk, "application/octet-stream"), "cluster_id": (None, self.cluster_id),
                 "name": (None, self.name), "size": (None, str(self.size)), "size_unit": (None, "BYTE")}
        if task_id:
            files["upload_task_id"] = (None, task_id)
        resp = self.ct.authed("POST", "/v2/api/upload-elf-file", files=files, kind=MUTATION,
                              timeout=self.chunk_timeout)
        body = self.ct.check(resp, hint="磁盘分片被拒绝：检查集群存储与上传任务状态 / the disk chunk was refused: check the "
                                        "cluster's storage and the upload task")
        task = body[0] if isinstance(body, list) and body else body
        if not isinstance(task, dict):
            raise AssertionError(f"upload-elf-file 的应答不是上传任务 / upload-elf-file did not answer an upload task: "
                                 f"{str(body)[:300]}")
        return task

    def _adopt(self, before: set | None, exc: ApiError) -> dict:
        """The first call's answer was lost: the task it created, if exactly one new one shows."""
        try:
            new = [t for t in upload_tasks(self.ct, name_in=[self.name], unfinished=True)
                   if before is not None and t.get("id") not in before and int(t.get("size") or -1) == self.size]
        except ApiError:
            new = []
        if len(new) == 1:
            self.notes.append(f"首个分片的应答丢失，按 get-upload-tasks 接续任务 {new[0]['id']} / the first call's answer "
                              f"was lost; continuing task {new[0]['id']} as get-upload-tasks shows it")
            return new[0]
        raise AssertionError(f"上传 {self.name} 的首次调用无应答，无法确定其上传任务（新任务 {len(new)} 个）/ the first "
                             f"upload-elf-file call for {self.name} got no answer and its task cannot be told (new "
                             f"tasks: {len(new)}): {str(exc).splitlines()[0]}\n下一步 / next: 用 --resume 重跑（遗留的"
                             f"上传任务在阶段 11 取消）/ rerun with --resume (leftover upload tasks are cancelled in "
                             f"stage 11)") from exc

    def _failed_text(self, task_id: str, task: dict, k: int | None) -> str:
        """One line: which task, after which chunk, what it says (upload_file adds the next action)."""
        where = f"current_chunk={task.get('current_chunk')}"
        said = f", {str(task.get('error_message'))[:200]}" if task.get("error_message") else ""
        return (f"上传任务 {task_id}（{self.name}）{f'在分片 {k} 后' if k else ''}为 FAILED（{where}{said}）/ the upload "
                f"task {task_id} ({self.name}) is FAILED{f' after chunk {k}' if k else ''} ({where}{said})")

    def _fail_if_failed(self, volume: dict, task: dict, k: int, first: bool = False) -> None:
        if task.get("status") == UPLOAD_FAILED:
            self.failed[volume["image_uuid"]] = text = self._failed_text(volume["image_uuid"], task, k)
            raise AssertionError(f"{text}\n{UPLOAD_NEXT}" if first else text)

    def _missing(self, volume: dict, task: dict) -> list[int] | None:
        """0-based chunks the task still misses (:func:`clients.ct_uploads.missing_chunks`); the server's chunk size."""
        chunk = volume["chunk_size"] = int(task.get("chunk_size") or volume["chunk_size"])
        return missing_chunks(task, chunk, int(task.get("size") or volume.get("size") or self.size or 0))


def upload_disk(ct: CloudTowerClient, cluster_id: str, path: Path, *, journal: UploadJournal | None = None,
                echo: Callable[[str], None] | None = None) -> tuple[str, UploadResult]:
    """Upload one disk file with the one uploader; returns (the upload task id, the uploader's result)."""
    api = ElfUpload(ct, cluster_id, path)
    result = upload_file(Path(path), api, echo=echo, journal=journal)
    result.notes += api.notes
    return result.volume["image_uuid"], result


# =========================================================================== creating VMs
def nic(connect_vlan_id: str, ip_address: str | None = None, subnet_mask: str | None = None,
        gateway: str | None = None, *, model: str = "VIRTIO", enabled: bool = True) -> dict:
    """A VmImportNicParams / VmNicParams: ``connect_vlan_id`` is the Vlan's CloudTower id, not the VLAN tag."""
    out: dict[str, Any] = {"connect_vlan_id": connect_vlan_id, "model": model, "enabled": enabled}
    out.update({k: v for k, v in (("ip_address", ip_address), ("subnet_mask", subnet_mask), ("gateway", gateway))
                if v})
    return out


def new_disk(name: str, size_bytes: int, *, bus: str = "VIRTIO", boot: int = 1) -> dict:
    """A MountNewCreateDisksParams: a new volume ``name`` of ``size_bytes`` (the fio data disk: ``<vm>-data``)."""
    return {"bus": bus, "boot": boot, "vm_volume": {"name": name, "size": int(size_bytes), "size_unit": "B"}}


def import_vm(ct: CloudTowerClient, *, cluster_id: str, name: str, parsed_ovf: dict, upload_tasks: list[str],
              host_id: str | None, vm_nics: list[dict], new_disks: list[dict] | None = None,
              status: str = "STOPPED", vcpu: int | None = None, memory: int | None = None,
              ha: bool | None = None) -> dict:
    """``import-vm`` (a list of one VmImportParams): the one ``{data: Vm, task_id}``."""
    params: dict[str, Any] = {"cluster_id": cluster_id, "name": name, "parsed_ovf": parsed_ovf,
                              "upload_tasks": list(upload_tasks), "status": status, "vm_nics": list(vm_nics)}
    if host_id:
        params["host_id"] = host_id
    if new_disks:
        params["disk_operate"] = {"new_disks": {"mount_new_create_disks": list(new_disks)}}
    params.update({k: v for k, v in (("vcpu", vcpu), ("memory", memory), ("ha", ha)) if v is not None})
    return _one(ct.rest("import-vm", [params]), "import-vm")


def clone_vm(ct: CloudTowerClient, *, src_vm_id: str, cluster_id: str, name: str, host_id: str | None,
             vm_nics: list[dict], is_full_copy: bool = False, status: str = "STOPPED") -> dict:
    """``clone-vm`` (a list of one VmCloneParams; the source must be STOPPED): the one ``{data: Vm, task_id}``."""
    params: dict[str, Any] = {"src_vm_id": src_vm_id, "cluster_id": cluster_id, "name": name,
                              "is_full_copy": is_full_copy, "status": status, "vm_nics": list(vm_nics)}
    if host_id:
        params["host_id"] = host_id
    return _one(ct.rest("clone-vm", [params]), "clone-vm")


# =========================================================================== reading
def vms(ct: CloudTowerClient, *, prefix: str | None = None, ids: list[str] | None = None,
        names: list[str] | None = None, cluster_id: str | None = None) -> list[dict]:
    """``get-vms`` filtered server-side and again client-side (a server that ignored the filter never hands a customer
    VM to the caller as a test VM)."""
    where: dict[str, Any] = {}
    if prefix:
        where["name_starts_with"] = prefix
    if ids is not None:
        where["id_in"] = list(ids)
    if names is not None:
        where["name_in"] = list(names)
    if cluster_id:
        where["cluster"] = {"id": cluster_id}
    found = ct.rest("get-vms", {"where": where}) or []
    return [v for v in found if isinstance(v, dict)
            and (not prefix or str(v.get("name") or "").startswith(prefix))
            and (ids is None or v.get("id") in ids) and (names is None or v.get("name") in names)
            and (not cluster_id or (v.get("cluster") or {}).get("id") == cluster_id)]


def vm_nics(ct: CloudTowerClient, vm_id: str) -> list[dict]:
    """``get-vm-nics`` of one VM, in NIC order (the SDK's VmNic has ``order``, not ``nic_index``)."""
    found = ct.rest("get-vm-nics", {"where": {"vm": {"id": vm_id}}}) or []
    mine = [n for n in found if isinstance(n, dict) and (n.get("vm") or {}).get("id") in (vm_id, None)]
    return sorted(mine, key=lambda n: n.get("order") if isinstance(n.get("order"), int) else 1 << 30)


def vm_volumes(ct: CloudTowerClient, *, ids: list[str] | None = None, name_prefix: str | None = None,
               cluster_id: str | None = None, mounting: bool | None = None) -> list[dict]:
    """``get-vm-volumes`` (leftovers after a delete: ``name_prefix=TEST_VM_PREFIX, mounting=False``)."""
    where: dict[str, Any] = {}
    if ids is not None:
        where["id_in"] = list(ids)
    if name_prefix:
        where["name_starts_with"] = name_prefix
    if cluster_id:
        where["cluster"] = {"id": cluster_id}
    if mounting is not None:
        where["mounting"] = mounting
    found = ct.rest("get-vm-volumes", {"where": where}) or []
    return [v for v in found if isinstance(v, dict)
            and (ids is None or v.get("id") in ids)
            and (not name_prefix or str(v.get("name") or "").startswith(name_prefix))
            and (not cluster_id or (v.get("cluster") or {}).get("id") in (cluster_id, None))
            and (mounting is None or v.get("mounting") in (mounting, None))]


def vm_disks(ct: CloudTowerClient, vm_id: str) -> list[dict]:
    """``get-vm-disks`` of one VM (each ``{id, vm, vm_volume, device, boot, bus}``)."""
    found = ct.rest("get-vm-disks", {"where": {"vm": {"id": vm_id}}}) or []
    return [d for d in found if isinstance(d, dict) and (d.get("vm") or {}).get("id") in (vm_id, None)]


def vm_metrics(ct: CloudTowerClient, vm_ids: list[str], names: list[str] | tuple[str, ...] = VM_METRICS,
               range_s: int = 600) -> list[dict]:
    """``get-vm-metrics`` ``{vms: {id_in}, metrics, range: "<n>s"}``: the answer's ``[{data: Metric, task_id}]``."""
    body = {"vms": {"id_in": list(vm_ids)}, "metrics": list(names), "range": f"{int(range_s)}s"}
    return answers(ct.rest("get-vm-metrics", body))


# =========================================================================== operating (each: [{data: Vm, task_id}])
def start_vm(ct: CloudTowerClient, vm_id: str | list[str], host_id: str | None = None) -> list[dict]:
    body: dict[str, Any] = {"where": _where(vm_id)}
    if host_id:
        body["data"] = {"host_id": host_id}
    return answers(ct.rest("start-vm", body))


def poweroff_vm(ct: CloudTowerClient, vm_id: str | list[str]) -> list[dict]:
    return answers(ct.rest("poweroff-vm", {"where": _where(vm_id)}))


def shutdown_vm(ct: CloudTowerClient, vm_id: str | list[str]) -> list[dict]:
    return answers(ct.rest("shutdown-vm", {"where": _where(vm_id)}))


def delete_vm(ct: CloudTowerClient, vm_id: str | list[str], include_snapshots: bool | None = None) -> list[dict]:
    """``delete-vm`` (refused while RUNNING: power off first)."""
    body: dict[str, Any] = {"where": _where(vm_id)}
    if include_snapshots is not None:
        body["effect"] = {"include_snapshots": include_snapshots}
    return answers(ct.rest("delete-vm", body))


def delete_vm_volume(ct: CloudTowerClient, volume_id: str | list[str]) -> list[dict]:
    """``delete-vm-volume`` (only unmounted volumes)."""
    return answers(ct.rest("delete-vm-volume", {"where": _where(volume_id)}))


delete_volume = delete_vm_volume          # design §7's name


def migrate_vm(ct: CloudTowerClient, vm_id: str, host_id: str) -> list[dict]:
    """``migrate-vm`` ``{where, data: {host_id}}`` (a RUNNING VM)."""
    return answers(ct.rest("migrate-vm", {"where": _where(vm_id), "data": {"host_id": host_id}}))


def update_nic_ip(ct: CloudTowerClient, vm_id: str, nic_index: int, ip_address: str, subnet_mask: str,
                  gateway: str | None = None, connect_vlan_id: str | None = None) -> list[dict]:
    """``update-vm-nic`` ``{where: {id}, data: {nic_index, ip_address, subnet_mask, gateway, connect_vlan_id?}}``."""
    data: dict[str, Any] = {"nic_index": int(nic_index), "ip_address": ip_address, "subnet_mask": subnet_mask}
    if gateway:
        data["gateway"] = gateway
    if connect_vlan_id:
        data["connect_vlan_id"] = connect_vlan_id
    return answers(ct.rest("update-vm-nic", {"where": {"id": vm_id}, "data": data}))
