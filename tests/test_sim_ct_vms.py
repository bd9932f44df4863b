"""Simulated CloudTower, stages 09-11 (VMs through CloudTower): ``parse-ovf``, ``upload-elf-file`` (both ``elf-upload``
profiles), ``cancel-upload-task``, ``import-vm`` / ``clone-vm`` (tasks, refusals, an import FAILED by a fault), the
boot -> VM tools -> IP -> guest sequence (both ``vm-nic-ip`` profiles, ``test_vm_tools = False``), power / migrate /
delete (both ``vm-delete-volumes`` profiles), ``get-vm-metrics`` from the guest's fio records (both
``vm-metric-names`` profiles, the bias knob) and snapshot / restore. In-process simulators over real HTTPS on
loopback, started from a ``cluster-attached`` snapshot; every answer is checked against the SDK's models."""
from __future__ import annotations

import hashlib
import importlib
import json
import sys
import types
from dataclasses import dataclass

import pytest

from mocks import Simulator
from mocks.cloudtower.vm_metrics import METRIC_NAMES, VERIFIED_METRICS

from .ct_world import preset_snapshot, three_host_plan, towers
from .test_sim_cloudtower import Tower, rest_error
from .test_sim_cloudtower_sdk import check_shape

GIB = 2 ** 30
CHUNK = 1000                         # the tower's upload_chunk_size knob: small chunks keep the tests fast
DISK = "smtx-fio-worker-1.0-disk1.vmdk"
NAME = "smtx-acceptance-fio-01"
OVF = f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:id="file1" ovf:href="{DISK}" ovf:size="6295777"/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="20" ovf:capacityAllocationUnits="byte * 2^30"/>
  </DiskSection>
  <VirtualSystem ovf:id="smtx-fio-worker-1.0"><Info>vm</Info><Name>smtx-fio-worker-1.0</Name>
    <AnnotationSection><Info>a</Info><Annotation>FIO worker</Annotation></AnnotationSection>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>4</rasd:VirtualQuantity><vmw:CoresPerSocket>2</vmw:CoresPerSocket></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>4096</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VirtIO</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Address>52:54:00:aa:bb:cc</rasd:Address><rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceType>10</rasd:ResourceType></Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
""".encode()
PAYLOAD = bytes(range(256)) * 10                     # 2560 B: chunks 1000, 1000, 560


# =========================================================================== the guest (S2's mocks.guest, or a stub)
@dataclass
class FakeRun:
    start: float
    end: float
    read_iops: float = 0.0
    write_iops: float = 0.0
    read_bps: float = 0.0
    write_bps: float = 0.0
    lat_ns: float = 0.0


@pytest.fixture
def guests(monkeypatch):
    """Every attach_guest / detach_guest the simulator makes (recorded; S2's functions still run when
    ``mocks.guest`` exists, a stub stands in when it does not yet) and settable fio records."""
    try:
        mod = importlib.import_module("mocks.guest")
    except ImportError:                                  # S2's module not there yet: a stub for these tests only
        mod = types.ModuleType("mocks.guest")
        mod.GuestSpec = lambda **kw: types.SimpleNamespace(**kw)
        mod.attach_guest = mod.detach_guest = lambda *a, **k: None
        mod.fio_runs = lambda sim, vm_id: []
        monkeypatch.setitem(sys.modules, "mocks.guest", mod)
    rec = types.SimpleNamespace(up={}, events=[], runs={})
    real_attach, real_detach = mod.attach_guest, mod.detach_guest

    def attach(sim, ip, spec):
        rec.up[ip] = spec
        rec.events.append(("up", ip))
        return real_attach(sim, ip, spec)

    def detach(sim, ip):
        rec.up.pop(ip, None)
        rec.events.append(("down", ip))
        return real_detach(sim, ip)

    monkeypatch.setattr(mod, "attach_guest", attach)
    monkeypatch.setattr(mod, "detach_guest", detach)
    monkeypatch.setattr(mod, "fio_runs", lambda sim, vm_id: rec.runs.get(vm_id, []))
    return rec


# =========================================================================== the world
plan = three_host_plan("ctvmsplan")


@pytest.fixture(scope="module")
def attached(plan):
    return preset_snapshot(plan, "cluster-attached")[0]


class VTower(Tower):
    def multipart(self, call: str, fields: dict, file: bytes | None, *, token=None):
        t = self.token if token is None else token
        return self.http.post(self.url(f"/v2/api/{call}"), data=fields, headers={"Authorization": t} if t else {},
                              files={"file": ("f", file, "application/octet-stream")} if file is not None else None)

    def parse(self, ovf: bytes = OVF) -> dict:
        return self.ok(self.multipart("parse-ovf", {"cluster_id": self.cluster.id}, ovf))

    def upload(self, payload: bytes = PAYLOAD, name: str = DISK) -> dict:
        """The whole file through upload-elf-file, as a client that never resends blindly would."""
        first = self.ok(self.multipart("upload-elf-file", {"cluster_id": self.cluster.id, "name": name,
                                                            "size": str(len(payload)), "size_unit": "BYTE"},
                                       payload[:CHUNK]))
        tid = first["id"]
        while True:
            (task,) = self.ok(self.rest("get-upload-tasks", {"where": {"id": tid}}))
            if task["status"] == "SUCCESSED":
                return task
            done = task["current_chunk"] if task["status"] != "INITIALIZING" else 0
            self.ok(self.multipart("upload-elf-file", {"upload_task_id": tid},
                                   payload[done * CHUNK:(done + 1) * CHUNK]))

    def vlan(self, name: str = "default") -> dict:
        return next(v for v in self.ok(self.rest("get-vlans", {})) if v["name"] == name
                    and v["vds"]["id"] in {d["id"] for d in self.ok(self.rest("get-vdses", {}))
                                           if d["cluster"]["id"] == self.cluster.id})

    def hosts(self) -> list[dict]:
        return [h for h in self.ok(self.rest("get-hosts", {})) if h["cluster"]["id"] == self.cluster.id]

    def import_item(self, name: str = NAME, ip: str | None = "10.0.20.201", **over) -> dict:
        item = {"cluster_id": self.cluster.id, "name": name, "parsed_ovf": self.parse(),
                "upload_tasks": [self.upload()["id"]], "status": "RUNNING",
                "vm_nics": [{"connect_vlan_id": self.vlan()["id"], "model": "VIRTIO", "enabled": True}
                            | ({"ip_address": ip, "subnet_mask": "255.255.255.0", "gateway": "10.0.20.1"} if ip else {})],
                "disk_operate": {"new_disks": {"mount_new_create_disks": [
                    {"bus": "VIRTIO", "boot": 1, "vm_volume": {"name": f"{name}-data", "size": 10 * GIB,
                                                               "size_unit": "B"}}]}}}
        return item | over

    def import_vm(self, **kw) -> dict:
        (out,) = self.ok(self.rest("import-vm", [self.import_item(**kw)]))
        return out

    def vm(self, vm_id: str) -> dict:
        (v,) = self.ok(self.rest("get-vms", {"where": {"id": vm_id}}))
        return v

    def task(self, task_id: str) -> dict:
        (t,) = self.ok(self.rest("get-tasks", {"where": {"id": task_id}}))
        return t

    def act(self, call: str, body: dict) -> dict:
        (out,) = self.ok(self.rest(call, body))
        return out

    def settle_task(self, task_id: str) -> dict:
        t = self.task(task_id)
        while t["status"] not in ("SUCCESSED", "FAILED"):
            self.sim.advance(5)
            t = self.task(task_id)
        return t


@pytest.fixture
def world(plan, attached, monkeypatch, guests):
    with towers(plan, attached, monkeypatch, cls=VTower, time_scale=0.0005) as tower:
        def make(*profiles: str) -> VTower:
            t = tower(list(profiles))
            t.tower.upload_chunk_size = CHUNK
            t.cluster = t.tower.cluster_by_ip(str(plan.vip))
            t.guests = guests
            return t

        yield make


def no_problems(value, typ: str):
    problems = check_shape(value, typ)
    assert not problems, "\n".join(problems)
    return value


# =========================================================================== parse-ovf, uploads
def test_parse_ovf_reads_the_descriptor_and_refuses_what_is_not_one(world):
    t = world()
    parsed = no_problems(t.parse(), "ParsedOVF")
    assert parsed == {"name": "smtx-fio-worker-1.0", "description": "FIO worker", "cpu": {"sockets": 2, "cores": 2},
                      "vcpu": 4, "memory": 4096 * 2 ** 20, "firmware": "UEFI",
                      "disks": [{"name": DISK, "size": 20 * GIB, "type": "DISK", "bus": "VIRTIO"}],
                      "nics": [{"mac": "52:54:00:aa:bb:cc"}]}
    rest_error(t.multipart("parse-ovf", {"cluster_id": t.cluster.id}, b"<html/>"), 400, "not an OVF")
    rest_error(t.multipart("parse-ovf", {"cluster_id": t.cluster.id}, b"\x00 not xml"), 400, "not XML")
    rest_error(t.multipart("parse-ovf", {"cluster_id": "nope"}, OVF), 400, "no cluster with id 'nope'")
    r = t.http.post(t.url("/v2/api/parse-ovf"), data={"cluster_id": t.cluster.id}, headers={"Authorization": t.token},
                    files={"descriptor": ("f.ovf", OVF, "text/xml")})
    rest_error(r, 400, "file (the .ovf descriptor) is required")
    rest_error(t.multipart("parse-ovf", {"cluster_id": t.cluster.id}, OVF, token=""), 401)
    r = t.http.post(t.url("/v2/api/parse-ovf"), json={"cluster_id": t.cluster.id},
                    headers={"Authorization": t.token})
    rest_error(r, 400, "multipart")


def test_elf_upload_first_chunk_profile_counts_chunks_and_never_takes_a_blind_resend(world):
    t = world()
    fields = {"cluster_id": t.cluster.id, "name": DISK, "size": str(len(PAYLOAD)), "size_unit": "BYTE"}
    rest_error(t.multipart("upload-elf-file", fields, PAYLOAD[:CHUNK - 1]), 400, "must be 1000 bytes")
    assert t.ok(t.rest("get-upload-tasks", {})) == []                     # a refused first chunk creates nothing
    first = no_problems(t.ok(t.multipart("upload-elf-file", fields, PAYLOAD[:CHUNK])), "UploadTask")
    assert (first["status"], first["current_chunk"], first["chunk_size"], first["size"], first["resource_type"],
            first["args"]) == ("UPLOADING", 1, CHUNK, len(PAYLOAD), "VM_VOLUME_VMDK",
                               {"name": DISK, "cluster_id": t.cluster.id})
    tid = first["id"]
    rest_error(t.multipart("upload-elf-file", {"upload_task_id": tid}, PAYLOAD[:CHUNK - 3]), 400, "chunk 2 of 3")
    assert t.ok(t.multipart("upload-elf-file", {"upload_task_id": tid}, PAYLOAD[CHUNK:2 * CHUNK]))["current_chunk"] == 2
    rest_error(t.multipart("upload-elf-file", {"upload_task_id": tid}, PAYLOAD[CHUNK:2 * CHUNK]), 400,
               "the last chunk must be 560 bytes")                      # a blind resend of chunk 2 is refused
    last = t.ok(t.multipart("upload-elf-file", {"upload_task_id": tid, "name": DISK}, PAYLOAD[2 * CHUNK:]))
    assert (last["status"], last["current_chunk"], last["finished_at"] is not None) == ("SUCCESSED", 3, True)
    rest_error(t.multipart("upload-elf-file", {"upload_task_id": tid}, PAYLOAD[2 * CHUNK:]), 400, "already SUCCESSED")
    rec = t.tower.upload_tasks[tid]
    assert (rec.rejected, rec.resent_after_complete, rec.sha256) == (3, 1, hashlib.sha256(PAYLOAD).hexdigest())
    no_problems(t.ok(t.rest("get-upload-tasks", {"where": {"id": tid}})), "list[UploadTask]")
    rest_error(t.multipart("upload-elf-file", {"upload_task_id": "nope"}, PAYLOAD[:CHUNK]), 400, "no upload task")
    rest_error(t.multipart("upload-elf-file", fields | {"size": "big"}, PAYLOAD[:CHUNK]), 400, "size")
    rest_error(t.multipart("upload-elf-file", fields | {"bogus": "1"}, PAYLOAD[:CHUNK]), 400, "bogus")
    rest_error(t.multipart("upload-elf-file", fields, PAYLOAD[:CHUNK], token=""), 401)


def test_elf_upload_create_only_profile_ignores_the_first_file_part(world):
    t = world("elf-upload-create-only")
    fields = {"cluster_id": t.cluster.id, "name": DISK, "size": str(len(PAYLOAD)), "size_unit": "BYTE"}
    first = t.ok(t.multipart("upload-elf-file", fields, b"ignored"))
    assert (first["status"], first["current_chunk"]) == ("INITIALIZING", 1)
    assert t.tower.upload_tasks[first["id"]].bytes_received == 0
    assert t.upload()["status"] == "SUCCESSED"                              # the helper reads current_chunk


def test_cancel_upload_task_removes_it(world):
    t = world()
    tid = t.ok(t.multipart("upload-elf-file", {"cluster_id": t.cluster.id, "name": DISK, "size": "2560"},
                           PAYLOAD[:CHUNK]))["id"]
    rest_error(t.rest("cancel-upload-task", {"where": {"nope": 1}}), 400, "nope")
    rest_error(t.rest("cancel-upload-task", {"where": {"id": tid}, "data": {}}), 400, "{where}")
    assert t.ok(t.rest("cancel-upload-task", {"where": {"id": tid}})) == [tid]
    assert t.ok(t.rest("get-upload-tasks", {"where": {"id": tid}})) == []
    rest_error(t.multipart("upload-elf-file", {"upload_task_id": tid}, PAYLOAD[CHUNK:2 * CHUNK]), 400, "cancelled")


# =========================================================================== import and the VM's life
def test_import_boots_gets_vm_tools_and_its_guest_comes_up_then_migrates_powers_off_and_is_deleted(world):
    t = world()
    out = no_problems([t.import_vm()], "list[WithTaskVm]")[0]
    vm_id = out["data"]["id"]
    assert out["data"]["entityAsyncStatus"] == "CREATING" and t.vm(vm_id)["entityAsyncStatus"] == "CREATING"
    assert t.task(out["task_id"])["description"] == f"Import VM {NAME}"
    rest_error(t.rest("start-vm", {"where": {"id": vm_id}}), 400, "busy")
    assert t.settle_task(out["task_id"])["status"] == "SUCCESSED"
    vm = no_problems(t.vm(vm_id), "Vm")
    assert (vm["status"], vm["vm_tools_status"], vm["ips"], vm["entityAsyncStatus"]) == ("RUNNING", "NOT_RUNNING", "",
                                                                                      None)
    assert (vm["vcpu"], vm["cpu"], vm["memory"], vm["firmware"]) == (4, {"sockets": 2, "cores": 2}, 4 * GIB, "UEFI")
    t.sim.advance(t.tower.vm_tools_s + 1)
    vm = t.vm(vm_id)
    assert (vm["vm_tools_status"], vm["ips"], vm["guest_os_type"]) == ("RUNNING", "10.0.20.201", "LINUX")
    (nic,) = no_problems(t.ok(t.rest("get-vm-nics", {"where": {"vm": {"id": vm_id}}})), "list[VmNic]")
    assert (nic["order"], nic["ip_address"], nic["guest_info_ip_addresses"], nic["vlan"]["name"]) == (
        0, "10.0.20.201", ["10.0.20.201"], "default")
    assert t.sim.is_alive("10.0.20.201") and set(t.guests.up) == {"10.0.20.201"}
    spec = t.guests.up["10.0.20.201"]
    assert (spec.vm_id, spec.name, spec.disks(), spec.peers(), spec.hosts, spec.migrations()) == (
        vm_id, NAME, [("vda", 20 * GIB), ("vdb", 10 * GIB)], 1, 3, [])
    disks = no_problems(t.ok(t.rest("get-vm-disks", {"where": {"vm": {"name": NAME}}})), "list[VmDisk]")
    assert [(d["device"], d["vm_volume"]["name"]) for d in disks] == [("vda", f"{NAME}-smtx-fio-worker-1.0-disk1"),
                                                                     ("vdb", f"{NAME}-data")]
    vols = no_problems(t.ok(t.rest("get-vm-volumes", {})), "list[VmVolume]")
    assert {(v["name"], v["size"], v["mounting"]) for v in vols} == {(f"{NAME}-smtx-fio-worker-1.0-disk1", 20 * GIB,
                                                                      True), (f"{NAME}-data", 10 * GIB, True)}
    others = [v for v in t.ok(t.rest("get-vms", {})) if v["id"] != vm_id]
    assert others and all(v["name"] != NAME for v in others)               # the cluster's own VMs are listed too
    rest_error(t.rest("delete-vm", {"where": {"id": others[0]["id"]}}), 400, "read-only")

    # migrate: not to its own host, not outside the cluster; the guest stays up
    rest_error(t.rest("migrate-vm", {"where": {"id": vm_id}, "data": {"host_id": vm["host"]["id"]}}), 400, "already")
    rest_error(t.rest("migrate-vm", {"where": {"id": vm_id}, "data": {"host_id": "elsewhere"}}), 400, "not a host")
    target = next(h for h in t.hosts() if h["id"] != vm["host"]["id"])
    mig = t.act("migrate-vm", {"where": {"id": vm_id}, "data": {"host_id": target["id"]}})
    assert t.vm(vm_id)["entityAsyncStatus"] == "UPDATING"
    assert t.settle_task(mig["task_id"])["status"] == "SUCCESSED"
    assert t.vm(vm_id)["host"]["id"] == target["id"] and set(t.guests.up) == {"10.0.20.201"}
    (m,) = spec.migrations()
    assert m["ok"] and m["end"] - m["start"] == pytest.approx(t.tower.vm_migrate_s - t.tower.task_pending)

    # delete is refused while RUNNING; power-off takes the guest down; delete takes the volumes along
    rest_error(t.rest("delete-vm", {"where": {"id": vm_id}}), 400, "RUNNING")
    off = t.act("poweroff-vm", {"where": {"id": vm_id}})
    t.settle_task(off["task_id"])
    assert t.vm(vm_id)["status"] == "STOPPED" and t.guests.up == {} and not t.sim.is_alive("10.0.20.201")
    rest_error(t.rest("migrate-vm", {"where": {"id": vm_id}, "data": {"host_id": target["id"]}}), 400, "STOPPED")
    gone = no_problems([t.act("delete-vm", {"where": {"id": vm_id}})], "list[WithTaskDeleteVm]")[0]
    assert gone["data"] == {"id": vm_id}
    t.settle_task(gone["task_id"])
    assert t.ok(t.rest("get-vms", {"where": {"id": vm_id}})) == [] and t.ok(t.rest("get-vm-volumes", {})) == []
    assert t.ok(t.rest("get-vms", {"where": {"name_starts_with": "smtx-acceptance-fio-"}})) == []


def test_the_import_task_fails_under_an_operation_fault_and_the_vm_disappears(world):
    t = world()
    item = t.import_item()
    t.sim.faults.add({"method": "POST", "path": "/v2/api/import-vm", "times": 1,
                      "action": {"operation": "fail", "msg": "no space left"}})
    (out,) = t.ok(t.rest("import-vm", [item]))
    assert t.vm(out["data"]["id"])["entityAsyncStatus"] == "CREATING"
    task = t.settle_task(out["task_id"])
    assert (task["status"], task["error_message"]) == ("FAILED", "no space left")
    assert t.ok(t.rest("get-vms", {"where": {"id": out["data"]["id"]}})) == []
    assert t.ok(t.rest("get-vm-volumes", {})) == []
    (again,) = t.ok(t.rest("import-vm", [item]))                           # the uploads can be imported again
    assert t.settle_task(again["task_id"])["status"] == "SUCCESSED"


def test_import_refuses_bad_bodies(world):
    t = world()
    good = t.import_item()
    cases = [
        ([good | {"bogus": 1}], "bogus"),
        ([good | {"vcpu": "4"}], "vcpu must be an int"),
        ([{k: v for k, v in good.items() if k != "upload_tasks"}], "upload_tasks is required"),
        ([good | {"upload_tasks": ["nope"]}], "no VM disk upload task 'nope'"),
        ([good | {"status": "SUSPENDED"}], "status must be one of"),
        ([good | {"host_id": "elsewhere"}], "not a host of this cluster"),
        ([good | {"vm_nics": [{"connect_vlan_id": t.vlan("mgt-network")["id"]}]}], "not a VM network"),
        ([good | {"vm_nics": [{"connect_vlan_id": "nope"}]}], "not a VM network of this cluster"),
        ([good | {"vm_nics": [{"connect_vlan_id": t.vlan()["id"], "ip_address": "10.0.20.201"}]}], "subnet_mask"),
        ([good | {"vm_nics": [dict(good["vm_nics"][0], ip_address=t.hosts()[0]["management_ip"])]}], "already used"),
        ([good | {"cluster_id": "nope"}], "no cluster"),
        ([good | {"disk_operate": {"new_disks": {"mount_new_create_disks": [{"bus": "VIRTIO", "boot": 1, "vm_volume": {
            "name": "d", "size": 1, "size_unit": "BYTE"}}]}}}], "size_unit must be one of B, KB"),
        (good, "JSON array"),
    ]
    renamed = dict(good["parsed_ovf"], disks=[dict(good["parsed_ovf"]["disks"][0], name="other.vmdk")])
    cases.append(([good | {"parsed_ovf": renamed}], "are not the OVF's disks"))
    partial = t.ok(t.multipart("upload-elf-file", {"cluster_id": t.cluster.id, "name": DISK, "size": "2560"},
                               PAYLOAD[:CHUNK]))["id"]
    cases.append(([good | {"upload_tasks": [partial]}], "is UPLOADING (1 of 3 chunks)"))
    for body, needle in cases:
        rest_error(t.rest("import-vm", body), 400, needle)
    rest_error(t.rest("import-vm", [good], token=""), 401)
    assert t.ok(t.rest("get-vms", {"where": {"name": NAME}})) == []


def test_nic_ip_update_profile_the_guest_takes_an_address_only_from_update_vm_nic_after_vm_tools(world):
    t = world("vm-nic-ip-update")
    out = t.import_vm(status="STOPPED")
    vm_id = out["data"]["id"]
    t.settle_task(out["task_id"])
    nic = {"nic_index": 0, "ip_address": "10.0.20.202", "subnet_mask": "255.255.255.0", "gateway": "10.0.20.1"}
    early = t.act("update-vm-nic", {"where": {"id": vm_id}, "data": nic})          # before VM tools: record only
    t.settle_task(early["task_id"])
    start = t.act("start-vm", {"where": {"id": vm_id}})
    t.settle_task(start["task_id"])
    t.sim.advance(t.tower.vm_tools_s + 1)
    vm = t.vm(vm_id)
    (n,) = t.ok(t.rest("get-vm-nics", {"where": {"vm": {"id": vm_id}}}))
    assert (vm["vm_tools_status"], vm["ips"], n["ip_address"], n["guest_info_ip_addresses"]) == (
        "RUNNING", "", "10.0.20.202", [])
    assert t.guests.up == {}
    rest_error(t.rest("update-vm-nic", {"where": {"id": vm_id}, "data": nic | {"nic_index": 1}}), 400, "1 NIC")
    rest_error(t.rest("update-vm-nic", {"where": {"id": vm_id}, "data": nic | {"gateway": "10.0.99.1"}}), 400,
               "gateway")
    upd = no_problems([t.act("update-vm-nic", {"where": {"id": vm_id}, "data": nic})], "list[WithTaskVm]")[0]
    t.settle_task(upd["task_id"])
    assert t.vm(vm_id)["ips"] == "10.0.20.202" and set(t.guests.up) == {"10.0.20.202"}


def test_a_vm_that_never_gets_vm_tools_never_comes_up(world):
    t = world()
    t.tower.test_vm_tools = False
    out = t.import_vm()
    t.settle_task(out["task_id"])
    t.sim.advance(600)
    vm = t.vm(out["data"]["id"])
    assert (vm["status"], vm["vm_tools_status"], vm["ips"]) == ("RUNNING", "NOT_RUNNING", "")
    assert t.guests.up == {} and not t.sim.is_alive("10.0.20.201")


def test_delete_volumes_kept_profile_leaves_them_unmounted_until_delete_vm_volume(world):
    t = world("vm-delete-volumes-kept")
    out = t.import_vm(status="STOPPED")
    t.settle_task(out["task_id"])
    rest_error(t.rest("delete-vm-volume", {"where": {"name": f"{NAME}-data"}}), 400, "mounted")
    t.settle_task(t.act("delete-vm", {"where": {"id": out["data"]["id"]}})["task_id"])
    vols = t.ok(t.rest("get-vm-volumes", {}))
    assert {(v["name"], v["mounting"], tuple(v["vm_disks"])) for v in vols} == {
        (f"{NAME}-smtx-fio-worker-1.0-disk1", False, ()), (f"{NAME}-data", False, ())}
    gone = t.ok(t.rest("delete-vm-volume", {"where": {"name_starts_with": NAME}}))
    no_problems(gone, "list[WithTaskDeleteVmVolume]")
    for g in gone:
        t.settle_task(g["task_id"])
    assert t.ok(t.rest("get-vm-volumes", {})) == []


def test_clone_needs_a_stopped_source_and_copies_every_disk(world):
    t = world()
    src = t.import_vm(status="STOPPED", ip=None)
    t.settle_task(src["task_id"])
    sid = src["data"]["id"]
    item = {"src_vm_id": sid, "name": "smtx-acceptance-fio-02", "is_full_copy": True, "status": "RUNNING",
            "vm_nics": [{"connect_vlan_id": t.vlan()["id"], "ip_address": "10.0.20.203",
                         "subnet_mask": "255.255.255.0"}]}
    rest_error(t.rest("clone-vm", [item | {"src_vm_id": "nope"}]), 400, "no VM")
    (out,) = no_problems(t.ok(t.rest("clone-vm", [item])), "list[WithTaskVm]")
    assert t.task(out["task_id"])["description"] == "Clone VM smtx-acceptance-fio-02"
    t.settle_task(out["task_id"])
    t.sim.advance(t.tower.vm_tools_s + 1)
    assert t.vm(out["data"]["id"])["ips"] == "10.0.20.203"
    names = sorted(v["name"] for v in t.ok(t.rest("get-vm-volumes", {})))
    assert names == sorted([f"{NAME}-smtx-fio-worker-1.0-disk1", f"{NAME}-data",
                            "smtx-acceptance-fio-02-smtx-fio-worker-1.0-disk1", "smtx-acceptance-fio-02-data"])
    t.settle_task(t.act("start-vm", {"where": {"id": sid}})["task_id"])
    rest_error(t.rest("clone-vm", [item | {"name": "x"}]), 400, "must be STOPPED")


# =========================================================================== metrics
def _metrics(t: VTower, vm_id: str, names, rng: str = "2m") -> dict:
    (out,) = no_problems(t.ok(t.rest("get-vm-metrics", {"vms": {"id": vm_id}, "metrics": list(names),
                                                        "range": rng})), "list[WithTaskMetric]")
    assert out["task_id"] is None and out["data"]["step"] == 10 and out["data"]["dropped"] is False
    assert all(s["labels"]["_vm"] == vm_id for s in out["data"]["sample_streams"])     # the SDK's wire key
    return {s["labels"]["metric_name"]: s["points"] for s in out["data"]["sample_streams"]}


def test_metrics_follow_the_guests_fio_runs_on_the_simulated_timeline(world):
    t = world()
    t.sim.clock.time_scale = 0.05                    # simulated time barely moves while the test reads it
    out = t.import_vm()
    vm_id = out["data"]["id"]
    t.settle_task(out["task_id"])
    now = t.sim.clock.now()
    t.guests.runs[vm_id] = [FakeRun(now + 20, now + 80, read_iops=1000.0, write_iops=500.0, read_bps=4096000.0,
                                    write_bps=2048000.0, lat_ns=250000.0)]
    t.sim.advance(100)
    streams = _metrics(t, vm_id, METRIC_NAMES)
    assert set(streams) == set(METRIC_NAMES)
    base = t.sim.clock.sim_wall(0)
    pts = streams["elf_vm_disk_overall_read_iops"]
    assert len(pts) == 13 and all(p["t"] % 10000 == 0 for p in pts)
    assert pts[-1]["t"] / 1000 <= t.sim.clock.sim_wall() < pts[-1]["t"] / 1000 + 12
    for p in pts:
        sim_t = p["t"] / 1000 - base
        inside = now + 20 <= sim_t <= now + 80
        assert (p["v"] > 0) == inside
        if inside:
            assert 970 <= p["v"] <= 1030
    lat = [p["v"] for p in streams["elf_vm_disk_overall_avg_read_write_latency_ns"] if p["v"]]
    assert lat and all(242500 <= v <= 257500 for v in lat)
    t.tower.vm_metric_bias = 2.0
    doubled = [p["v"] for p in _metrics(t, vm_id, ["elf_vm_disk_overall_write_speed_bps"])[
        "elf_vm_disk_overall_write_speed_bps"] if p["v"]]
    assert doubled and all(2 * 2048000 * 0.97 <= v <= 2 * 2048000 * 1.03 for v in doubled)
    rest_error(t.rest("get-vm-metrics", {"vms": {"id": vm_id}, "metrics": ["x"], "range": "2 minutes"}), 400, "range")
    rest_error(t.rest("get-vm-metrics", {"vms": {"id": vm_id}, "metrics": []}), 400, "range is required")
    rest_error(t.rest("get-vm-metrics", {"vms": {"id": vm_id}, "metrics": ["x"], "range": "1m"}, token=""), 401)


def test_metric_names_verified_only_profile_serves_two_names(world):
    t = world("vm-metric-names-verified-only")
    t.sim.clock.time_scale = 0.05
    out = t.import_vm()
    vm_id = out["data"]["id"]
    t.settle_task(out["task_id"])
    now = t.sim.clock.now()
    t.guests.runs[vm_id] = [FakeRun(now, now + 60, read_iops=1.0, write_iops=1.0, read_bps=1.0, write_bps=1.0,
                                    lat_ns=1.0)]
    t.sim.advance(30)
    streams = _metrics(t, vm_id, [*METRIC_NAMES, "no_such_metric"], "1m")
    assert {n for n, pts in streams.items() if pts} == set(VERIFIED_METRICS)
    assert set(streams) == {*METRIC_NAMES, "no_such_metric"}


# =========================================================================== snapshot
def test_snapshot_and_restore_keep_vms_volumes_uploads_and_the_guest(world, plan):
    t = world()
    out = t.import_vm()
    vm_id = out["data"]["id"]
    t.settle_task(out["task_id"])
    t.sim.advance(t.tower.vm_tools_s + 1)
    t.tower.vm_import_s = 77.0
    assert set(t.guests.up) == {"10.0.20.201"}
    snap = json.loads(json.dumps(t.sim.snapshot()))
    t.guests.up.clear()
    with Simulator.from_plan(plan, time_scale=0.0005, load_env_faults=False, profiles=[], snapshot=snap) as sim:
        tower = sim.state.cloudtower.tower(t.ip)
        assert set(t.guests.up) == {"10.0.20.201"} and sim.is_alive("10.0.20.201")
        assert tower.vm_import_s == 77.0
        (vm,) = [v for v in tower.list_ct_vms() if v["id"] == vm_id]
        assert (vm["status"], vm["vm_tools_status"], vm["ips"]) == ("RUNNING", "RUNNING", "10.0.20.201")
        assert len(tower.list_vm_volumes()) == 2 and len(tower.list_upload_tasks()) == 1


# =========================================================================== the official SDK
def test_the_official_sdk_parses_uploads_imports_and_lists(world, monkeypatch):
    pytest.importorskip("cloudtower", reason="cloudtower-sdk is a test dependency: pip install -e '.[test]'")
    import cloudtower as ct
    from cloudtower import models as M
    from cloudtower.api import OvfApi, UploadTaskApi, VmApi

    from .sdk_serve import PROXY_VARS, sdk_client

    t = world()
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    conf = ct.Configuration(host=f"https://127.0.0.1:{t.sim.local(t.ip, 443)[1]}/v2/api")
    conf.ssl_ca_cert, conf.assert_hostname, conf.proxy = t.sim.ca_bundle, t.ip, None
    conf.api_key["Authorization"] = t.token
    with sdk_client(conf) as (client, rec):
        ovf = OvfApi(client).parse_ovf(OVF, t.cluster.id)
        assert isinstance(ovf, M.ParsedOVF) and ovf.disks[0].name == DISK and ovf.cpu.cores == 2
        task = OvfApi(client).upload_elf_file(PAYLOAD[:CHUNK], cluster_id=t.cluster.id, name=DISK,
                                              size=str(len(PAYLOAD)), size_unit="BYTE")
        while task.status != "SUCCESSED":
            k = task.current_chunk
            task = OvfApi(client).upload_elf_file(PAYLOAD[k * CHUNK:(k + 1) * CHUNK], upload_task_id=task.id)
        (listed,) = UploadTaskApi(client).get_upload_tasks(M.GetUploadTasksRequestBody(where=M.UploadTaskWhereInput(
            id=task.id)))
        assert listed.status == "SUCCESSED" and listed.current_chunk == 3
        params = M.VmImportParams(cluster_id=t.cluster.id, name=NAME, parsed_ovf=ovf, upload_tasks=[task.id],
                                  status="RUNNING", vm_nics=[M.VmImportNicParams(connect_vlan_id=t.vlan()["id"],
                                                                                 model="VIRTIO", enabled=True)])
        (out,) = VmApi(client).import_vm([params])
        assert isinstance(out, M.WithTaskVm) and out.data.entity_async_status == "CREATING"
        no_problems(rec.raw(), "list[WithTaskVm]")
        t.settle_task(out.task_id)
        (vm,) = VmApi(client).get_vms(M.GetVmsRequestBody(where=M.VmWhereInput(id=out.data.id)))
        assert (vm.name, vm.status, len(vm.vm_disks)) == (NAME, "RUNNING", 1)
        assert all(u.startswith("https://127.0.0.1:") for u in rec.urls)
