"""clients/ct_vms.py against a small respx CloudTower: body shapes of every call (SDK field names), the disk upload
through the one uploader under both ``elf-upload`` profiles, a lost answer resumed from ``get-upload-tasks`` without a
blind resend, a FAILED task, a lost first answer."""
from __future__ import annotations

import json
import random
import re

import httpx
import pytest
import respx

from clients import ct_vms as V
from clients.addressing import AddressMap
from clients.cloudtower import CloudTowerClient
from clients.upload import UploadError

CT = "https://10.0.20.50"
MiB = 1024 * 1024


def tower() -> CloudTowerClient:
    ct = CloudTowerClient("10.0.20.50", amap=AddressMap(simulate=False), sleep=lambda s: None)
    ct.token = "tok"
    return ct


def form(request: httpx.Request) -> dict[str, bytes]:
    """A multipart/form-data body as {field: bytes}."""
    request.read()
    boundary = re.search(r"boundary=([^;]+)", request.headers["content-type"]).group(1).encode()
    out = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = part[2:].partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head).group(1).decode()
        out[name] = body[:-2]
    return out


class Tower:
    """upload-elf-file, get-upload-tasks, cancel-upload-task as design §2 says, plus a log of every call."""

    def __init__(self, profile: str = "elf-upload-first-chunk", chunk: int = 4 * MiB):
        self.profile, self.chunk = profile, chunk
        self.tasks: dict[str, dict] = {}
        self.data: dict[str, bytes] = {}
        self.calls: list[tuple[str, object]] = []
        self.lose: set[int] = set()        # upload-elf-file call numbers (1-based) whose answer is lost (after taking it)
        self.drop: set[int] = set()        # ... that fail before reaching the server
        self.fail_at: int | None = None    # the chunk number (1-based) that turns the task FAILED
        self.answers: dict[str, object] = {}
        self.uploads = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.headers.get("authorization") == "tok"
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "upload-elf-file":
            return self.upload(form(request))
        body = json.loads(request.content or b"{}")
        self.calls.append((name, body))
        if name == "get-upload-tasks":
            where = body.get("where") or {}
            return httpx.Response(200, json=[t for t in self.tasks.values()
                                             if "id_in" not in where or t["id"] in where["id_in"]])
        if name == "cancel-upload-task":
            ids = [i for i in body["where"]["id_in"] if self.tasks.pop(i, None)]
            return httpx.Response(200, json=ids)
        return httpx.Response(200, json=self.answers.get(name, [{"data": {"id": "vm-1"}, "task_id": "t-1"}]))

    def upload(self, f: dict[str, bytes]) -> httpx.Response:
        self.uploads += 1
        n = self.uploads
        self.calls.append(("upload-elf-file", {k: v for k, v in f.items() if k != "file"} | {"len": len(f["file"])}))
        if n in self.drop:
            raise httpx.ConnectError("connection refused")
        tid = f.get("upload_task_id", b"").decode()
        if not tid:
            tid = f"ut-{len(self.tasks) + 1}"
            self.tasks[tid] = {"id": tid, "status": "INITIALIZING", "current_chunk": 1, "chunk_size": self.chunk,
                               "size": int(f["size"]), "resource_type": "VM_VOLUME_VMDK",
                               "args": {"name": f["name"].decode(), "cluster_id": f["cluster_id"].decode()}}
            self.data[tid] = b""
            if self.profile == "elf-upload-create-only":
                return self.answer(n, tid)
        task = self.tasks[tid]
        k = 1 if task["status"] == "INITIALIZING" else task["current_chunk"] + 1
        expected = min(self.chunk, task["size"] - (k - 1) * self.chunk)
        if len(f["file"]) != expected:
            return httpx.Response(400, json={"message": f"chunk {k} must be {expected} bytes", "status": 400})
        if self.fail_at == k:
            task["status"] = "FAILED"
            return self.answer(n, tid)
        self.data[tid] += f["file"]
        task["current_chunk"] = k
        task["status"] = "SUCCESSED" if len(self.data[tid]) == task["size"] else "UPLOADING"
        return self.answer(n, tid)

    def answer(self, n: int, tid: str) -> httpx.Response:
        if n in self.lose:
            raise httpx.ReadTimeout("the answer was lost")
        return httpx.Response(200, json=dict(self.tasks[tid]))

    def posts(self, name: str) -> list:
        return [b for c, b in self.calls if c == name]


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "smtx-fio-worker-1.0-disk1.vmdk"
    path.write_bytes(random.Random(1).randbytes(2 * 4 * MiB + 1234))      # three chunks
    return path


def serve(t: Tower):
    router = respx.mock(assert_all_called=False)
    router.post(url__regex=rf"{CT}/v2/api/.*").mock(side_effect=t.handler)
    return router


def test_names():
    assert V.TEST_VM_PREFIX == "smtx-acceptance-fio-"
    assert V.test_vm_name(1) == "smtx-acceptance-fio-01" and V.test_vm_name(12) == "smtx-acceptance-fio-12"


@pytest.mark.parametrize("profile,posts", [("elf-upload-first-chunk", 3), ("elf-upload-create-only", 4)])
def test_upload_under_both_profiles(disk, profile, posts):
    t = Tower(profile)
    with serve(t):
        task_id, result = V.upload_disk(tower(), "c-1", disk)
    assert t.data[task_id] == disk.read_bytes() and t.tasks[task_id]["status"] == "SUCCESSED"
    ups = t.posts("upload-elf-file")
    assert len(ups) == posts
    assert "upload_task_id" not in ups[0] and all(u["upload_task_id"] == task_id.encode() for u in ups[1:])
    assert ups[0]["len"] == 4 * MiB                                   # the first call carries chunk 1
    assert all(u["name"] == disk.name.encode() and u["size"] == str(disk.stat().st_size).encode()
               and u["size_unit"] == b"BYTE" and u["cluster_id"] == b"c-1" for u in ups)


def test_lost_answer_is_read_back_not_resent(disk):
    t = Tower()
    t.lose = {2}                        # chunk 2 reaches the server, its answer does not come back
    with serve(t):
        task_id, result = V.upload_disk(tower(), "c-1", disk)
    assert t.data[task_id] == disk.read_bytes()
    assert len(t.posts("upload-elf-file")) == 3                       # chunk 2 never sent twice
    assert t.posts("get-upload-tasks")[-1] == {"where": {"id_in": [task_id]}}
    assert any("not sent again" in n for n in result.notes)


def test_chunk_that_never_arrived_is_sent_again(disk):
    t = Tower()
    t.drop = {3}                        # chunk 3 fails before the server sees it
    with serve(t):
        task_id, result = V.upload_disk(tower(), "c-1", disk)
    assert t.data[task_id] == disk.read_bytes()
    assert len(t.posts("upload-elf-file")) == 4 and result.chunk_retries == 1


def test_lost_first_answer_adopts_the_new_task(disk):
    t = Tower()
    t.lose = {1}
    with serve(t):
        task_id, result = V.upload_disk(tower(), "c-1", disk)
    assert task_id == "ut-1" and t.data[task_id] == disk.read_bytes() and len(t.tasks) == 1
    assert any("answer was lost" in n for n in result.notes)


def test_failed_task_fails_with_next_action(disk):
    t = Tower()
    t.fail_at = 2
    with serve(t), pytest.raises(UploadError) as err:
        V.upload_disk(tower(), "c-1", disk)
    text = str(err.value)
    assert "FAILED" in text and "next" in text
    assert t.tasks == {}                                              # each FAILED task was cancelled
    assert len(t.posts("cancel-upload-task")) == 2                    # the first task, then the one recreated


def test_resume_from_journal_sends_only_missing_chunks(disk):
    class Journal:
        record = None

        def load(self):
            return self.record

        def save(self, record):
            self.record = record

    t = Tower()
    with serve(t):
        ct = tower()
        api = V.ElfUpload(ct, "c-1", disk)
        volume = api.create(disk.name, disk.stat().st_size)           # chunk 1 on the server, then the run died
        stat = disk.stat()
        journal = Journal()
        journal.record = {"file": disk.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                          "image_uuid": volume["image_uuid"], "chunk_size": volume["chunk_size"], "next_chunk": 1}
        task_id, result = V.upload_disk(ct, "c-1", disk, journal=journal)
    assert task_id == volume["image_uuid"] and t.data[task_id] == disk.read_bytes()
    assert len(t.posts("upload-elf-file")) == 3 and result.resumed_at == 4 * MiB and journal.record is None


def test_parse_ovf_is_multipart(tmp_path):
    ovf = tmp_path / "x.ovf"
    ovf.write_text("<Envelope/>")
    seen = {}

    def handler(request):
        seen.update(form(request), auth=request.headers["authorization"])
        return httpx.Response(200, json={"name": "x", "disks": [{"name": "x-disk1.vmdk", "size": 1, "type": "DISK"}]})

    with respx.mock() as router:
        router.post(f"{CT}/v2/api/parse-ovf").mock(side_effect=handler)
        parsed = V.parse_ovf(tower(), ovf, "c-1")
    assert parsed["disks"][0]["name"] == "x-disk1.vmdk"
    assert seen == {"file": b"<Envelope/>", "cluster_id": b"c-1", "auth": "tok"}


def test_import_and_clone_bodies():
    t = Tower()
    with serve(t):
        ct = tower()
        nics = [V.nic("vlan-9", "10.0.30.11", "255.255.255.0", "10.0.30.1")]
        V.import_vm(ct, cluster_id="c-1", name=V.test_vm_name(1), parsed_ovf={"name": "p"}, upload_tasks=["ut-1"],
                    host_id="h-1", vm_nics=nics, new_disks=[V.new_disk("smtx-acceptance-fio-01-data", 10 * 2**30)])
        V.clone_vm(ct, src_vm_id="vm-1", cluster_id="c-1", name=V.test_vm_name(2), host_id="h-2",
                   vm_nics=[V.nic("vlan-9", "10.0.30.12", "255.255.255.0")])
    (imp,), (clone,) = t.posts("import-vm"), t.posts("clone-vm")
    assert imp == [{"cluster_id": "c-1", "name": "smtx-acceptance-fio-01", "parsed_ovf": {"name": "p"},
                    "upload_tasks": ["ut-1"], "status": "STOPPED", "host_id": "h-1",
                    "vm_nics": [{"connect_vlan_id": "vlan-9", "model": "VIRTIO", "enabled": True,
                                 "ip_address": "10.0.30.11", "subnet_mask": "255.255.255.0", "gateway": "10.0.30.1"}],
                    "disk_operate": {"new_disks": {"mount_new_create_disks": [
                        {"bus": "VIRTIO", "boot": 1, "vm_volume": {"name": "smtx-acceptance-fio-01-data",
                                                                   "size": 10 * 2**30, "size_unit": "B"}}]}}}]
    assert clone == [{"src_vm_id": "vm-1", "cluster_id": "c-1", "name": "smtx-acceptance-fio-02", "host_id": "h-2",
                      "is_full_copy": False, "status": "STOPPED",
                      "vm_nics": [{"connect_vlan_id": "vlan-9", "model": "VIRTIO", "enabled": True,
                                   "ip_address": "10.0.30.12", "subnet_mask": "255.255.255.0"}]}]


def test_operation_bodies():
    t = Tower()
    with serve(t):
        ct = tower()
        V.start_vm(ct, "vm-1", host_id="h-1")
        V.start_vm(ct, ["vm-1", "vm-2"])
        V.poweroff_vm(ct, "vm-1")
        V.shutdown_vm(ct, "vm-1")
        V.delete_vm(ct, ["vm-1"], include_snapshots=True)
        V.delete_vm_volume(ct, "vol-1")
        V.migrate_vm(ct, "vm-1", "h-2")
        V.update_nic_ip(ct, "vm-1", 0, "10.0.30.11", "255.255.255.0", "10.0.30.1")
        V.cancel_upload_task(ct, ["ut-9"])
    assert t.posts("start-vm") == [{"where": {"id": "vm-1"}, "data": {"host_id": "h-1"}},
                                   {"where": {"id_in": ["vm-1", "vm-2"]}}]
    assert t.posts("poweroff-vm") == t.posts("shutdown-vm") == [{"where": {"id": "vm-1"}}]
    assert t.posts("delete-vm") == [{"where": {"id_in": ["vm-1"]}, "effect": {"include_snapshots": True}}]
    assert t.posts("delete-vm-volume") == [{"where": {"id": "vol-1"}}]
    assert t.posts("migrate-vm") == [{"where": {"id": "vm-1"}, "data": {"host_id": "h-2"}}]
    assert t.posts("update-vm-nic") == [{"where": {"id": "vm-1"}, "data": {
        "nic_index": 0, "ip_address": "10.0.30.11", "subnet_mask": "255.255.255.0", "gateway": "10.0.30.1"}}]
    assert t.posts("cancel-upload-task") == [{"where": {"id_in": ["ut-9"]}}]
    assert V.delete_volume is V.delete_vm_volume


def test_reads_filter_client_side_too():
    t = Tower()
    t.answers["get-vms"] = [{"id": "vm-1", "name": "smtx-acceptance-fio-01", "cluster": {"id": "c-1"}},
                            {"id": "vm-c", "name": "customer-db", "cluster": {"id": "c-1"}}]   # a server ignoring where
    t.answers["get-vm-nics"] = [{"id": "n2", "vm": {"id": "vm-1"}, "order": 1},
                                {"id": "n1", "vm": {"id": "vm-1"}, "order": 0},
                                {"id": "nx", "vm": {"id": "vm-c"}, "nic_index": 0}]
    t.answers["get-vm-metrics"] = [{"data": {"unit": "COUNT", "step": 10, "sample_streams": []}, "task_id": None}]
    t.tasks["ut-1"] = {"id": "ut-1", "status": "UPLOADING", "args": {"name": "a.vmdk"}}
    t.tasks["ut-2"] = {"id": "ut-2", "status": "SUCCESSED", "args": {"name": "a.vmdk"}}
    with serve(t):
        ct = tower()
        found = V.vms(ct, prefix=V.TEST_VM_PREFIX, cluster_id="c-1")
        nics = V.vm_nics(ct, "vm-1")
        metrics = V.vm_metrics(ct, ["vm-1"], V.VERIFIED_METRICS, 300)
        unfinished = V.upload_tasks(ct, name_in=["a.vmdk"], unfinished=True)
    assert [v["id"] for v in found] == ["vm-1"]
    assert t.posts("get-vms") == [{"where": {"name_starts_with": "smtx-acceptance-fio-", "cluster": {"id": "c-1"}}}]
    assert [n["id"] for n in nics] == ["n1", "n2"]
    assert t.posts("get-vm-metrics") == [{"vms": {"id_in": ["vm-1"]}, "range": "300s", "metrics": [
        "elf_vm_disk_overall_write_speed_bps", "elf_vm_disk_overall_avg_read_write_latency_ns"]}]
    assert metrics[0]["data"]["step"] == 10
    assert [u["id"] for u in unfinished] == ["ut-1"]
    assert t.posts("get-upload-tasks")[-1] == {"where": {"status_in": ["INITIALIZING", "UPLOADING", "PAUSED",
                                                                       "FAILED"]}}
