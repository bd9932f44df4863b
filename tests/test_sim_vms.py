"""Simulated guide §04 on the cluster API: ISO upload, storage policies, the CloudTower VM (create, boot,
guest agent, IP through VM tools -> ping + SSH), faults, snapshot/restore -- real HTTPS/SSH on loopback."""
from __future__ import annotations

import hashlib
import json
import os
import re
import uuid

import httpx
import pytest

from clients.addressing import AddressMap
from clients.ssh import SshClient, can_login
from mocks import Simulator

from .test_sim_fisheye import Api, assert_envelope_error, host_ips, refused

KIB = 1024
CHUNK = 4 * KIB
ISO_NAME = "cloudtower-v4.7.1.oe2003.x86_64.iso"
CT_USER, CT_PW = "cloudtower", "HC!r0cks"
INSTALL_S = 1200.0


# ``plan`` and ``make_world`` (a deployed, logged-in simulated cluster) are in tests/conftest.py: test_sim_install
# uses them too.


@pytest.fixture
def world(make_world):
    return make_world()


# --------------------------------------------------------------------------- helpers (also used by test_sim_install)
def iso_volume(api: Api, size: int, name: str = ISO_NAME, **params) -> httpx.Response:
    q = {"description": "", "name": name, "device": "nfs", "task_id": 2, "size": size} | params
    return api.post("/api/v2/images/upload/volume", params=q)


def iso_chunk(api: Api, vol: dict, i: int, data: bytes, **kw) -> httpx.Response:
    return api.post("/api/v2/images/upload",
                    params={"zbs_volume_id": vol["zbs_volume_id"], "chunk_num": i, "image_uuid": vol["image_uuid"]},
                    files={"file": (ISO_NAME, data, "application/octet-stream")}, **kw)


def upload_iso(api: Api, size: int = 2 * CHUNK + 100, name: str = ISO_NAME) -> dict:
    data = os.urandom(size)
    vol = iso_volume(api, size, name).json()["data"]
    for i in vol["to_upload"]:
        assert api.data(iso_chunk(api, vol, i, data[i * CHUNK:(i + 1) * CHUNK]))["chunk_num"] == i
    return vol


def mgmt_network(api: Api) -> tuple[dict, dict]:
    vds = api.data(api.get("/api/v2/network/vds"))[0]                  # the management VDS comes first
    vlans = api.data(api.get(f"/api/v2/network/vds/{vds['uuid']}/vlans"))
    vlan = next(v for v in vlans if v["name"] == "default" and v["type"] == 3)   # the VM network beside mgt-network
    return vds, vlan


def vm_body(api: Api, image_path: str, name: str = "cloudtower", **over) -> dict:
    """The guide's fixed CloudTower VM payload."""
    vds, vlan = mgmt_network(api)
    policy = api.data(api.get("/api/v2/storage_policies"))[0]["uuid"]
    body = {"vm_name": name, "description": "CloudTower VM auto created by CXVoyager", "vcpu": 8,
            "memory": 20401094656, "cpu": {"topology": {"sockets": 8, "cores": 1}},
            "nics": [{"ovs": vds["ovsbr_name"], "model": "virtio", "mirror": False, "vlan_uuid": vlan["uuid"],
                      "link": "up"}],
            "disks": [{"type": "disk", "bus": "virtio", "storage_policy_uuid": policy, "name": "cloudtower-os",
                       "quota_policy": None, "size_in_byte": 429496729600},
                      {"type": "cdrom", "bus": "ide", "path": image_path, "disabled": False}],
            "ha": True, "nested_virtualization": False, "hasNormalVol": False, "hasSharedVol": False,
            "hasVolume": False, "cpu_model": "cluster_default", "firmware": "BIOS", "diskNamePrefix": "cloudtower",
            "folder_uuid": None, "node_ip": None, "auto_schedule": True, "existDisks": [], "quota_policy": None,
            "status": "running"}
    body.update(over)
    return body


def create_vm(api: Api, image_path: str, name: str = "cloudtower") -> tuple[str, dict]:
    job = api.wait_job(api.data(api.post("/api/v2/vms", json=vm_body(api, image_path, name)))["job_id"])
    assert job["state"] == "done", job
    (vm_uuid, res), = job["resources"].items()
    assert res["uuid"] == vm_uuid and res["vm_name"] == name
    return vm_uuid, job


def nic_body(api: Api, vm: dict, plan, ip: str, **over) -> dict:
    vds, vlan = mgmt_network(api)
    nic = {"vlan_uuid": vlan["uuid"], "ovs": vds["ovsbr_name"], "model": "virtio",
           "mac_address": vm["nics"][0]["mac_address"], "mirror": False, "gateway": str(plan.mgmt.gateway),
           "subnet_mask": plan.mgmt.netmask, "ip_address": ip, "link": "up"}
    nic.update(over)
    return {"nics": [nic]}


def ready_tower_vm(sim: Simulator, api: Api, plan, ip: str | None = None, name: str = "cloudtower") -> str:
    """ISO uploaded, VM created, OS installed (guest agent running), address configured: SSH is up."""
    ip = ip or str(plan.cloudtower.ip)
    vol = sim.fisheye.upload_by_name(ISO_NAME, "ISO")
    path = vol.image_path if vol is not None and vol.status == "ready" else upload_iso(api)["image_path"]
    vm_uuid, _ = create_vm(api, path, name)
    sim.advance(INSTALL_S + 1)
    vm = api.data(api.get(f"/api/v2/vms/{vm_uuid}"))
    assert vm["guest_info"]["ga_state"] == "Running"
    job = api.wait_job(api.data(api.put(f"/api/v2/vms/{vm_uuid}", json=nic_body(api, vm, plan, ip)))["job_id"])
    assert job["state"] == "done", job
    return vm_uuid


def amap(sim: Simulator) -> AddressMap:
    return AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)


# --------------------------------------------------------------------------- ISO upload
def test_iso_upload_accounting_delete_and_list(world):
    sim, api = world
    size = 3 * CHUNK + 1000
    data = os.urandom(size)
    chunks = [data[i:i + CHUNK] for i in range(0, size, CHUNK)]
    assert_envelope_error(iso_volume(api, "x"), 400, "size")
    assert_envelope_error(iso_volume(api, 0), 400)
    assert_envelope_error(iso_volume(api, size, device="iscsi"), 400, "nfs")
    assert_envelope_error(iso_volume(api, size, name=""), 400, "name")
    r = iso_volume(api, size)
    assert r.status_code == 200 and r.json()["ec"] == "EOK" and r.json()["error"] is None     # as the guide's sample
    vol = r.json()["data"]
    assert list(vol) == ["chunk_size", "image_path", "image_uuid", "to_upload", "zbs_volume_id"]
    assert vol["chunk_size"] == CHUNK and vol["to_upload"] == [0, 1, 2, 3]
    assert re.fullmatch(r"iscsi://iqn\.2016-02\.com\.smartx:system:zbs-iscsi-datastore-[0-9a-f-]{36}/\d+",
                        vol["image_path"]), vol["image_path"]
    assert api.data(iso_chunk(api, vol, 0, chunks[0])) == {"chunk_num": 0, "to_upload": [1, 2, 3]}
    # the SVT accounting rules: size, range, ids, multipart; nothing counted
    assert_envelope_error(iso_chunk(api, vol, 1, chunks[1][:10]), 400, f"expected {CHUNK}")
    assert_envelope_error(iso_chunk(api, vol, 3, chunks[0]), 400, "expected 1000")
    assert_envelope_error(iso_chunk(api, vol, 4, chunks[0]), 400, "out of range")
    assert_envelope_error(iso_chunk(api, dict(vol, zbs_volume_id=str(uuid.uuid4())), 1, chunks[1]), 400)
    assert_envelope_error(api.post("/api/v2/images/upload", content=chunks[1],
                                   params={"zbs_volume_id": vol["zbs_volume_id"], "chunk_num": 1,
                                           "image_uuid": vol["image_uuid"]}), 400, "multipart")
    # an ISO volume is not an SVT one (and the other way round)
    assert_envelope_error(api.post("/api/v2/svt_image/upload_template",
                                   params={"zbs_volume_id": vol["zbs_volume_id"], "chunk_num": 1,
                                           "image_uuid": vol["image_uuid"]},
                                   files={"file": ("x", chunks[1])}), 400, "ISO")
    assert api.data(api.get("/api/v2/images"))["images"] == []             # unfinished uploads are not images
    for i in (1, 2, 3):
        assert api.data(iso_chunk(api, vol, i, chunks[i]))["to_upload"] == [x for x in (2, 3) if x > i]
    up = sim.fisheye.uploads[vol["image_uuid"]]
    assert (up.kind, up.status, up.received, up.rejected) == ("ISO", "ready", [1, 1, 1, 1], 4)
    assert up.digests == [hashlib.sha256(c).hexdigest() for c in chunks] and up.bytes_received == size
    (img,) = api.data(api.get("/api/v2/images"))["images"]
    assert list(img) == ["description", "file_name", "md5", "name", "os", "path", "resource_state", "size", "time",
                         "type", "uuid", "vm_snapshots_count", "vm_templates_count", "vms_count", "zbs_volume_id"]
    assert (img["type"], img["name"], img["size"], img["path"], img["uuid"]) == \
        ("ISO_IMAGE", ISO_NAME, size, vol["image_path"], vol["image_uuid"])
    assert img in [i for i in api.data(api.get("/api/v2/images", address=str(host_ips(sim.plan)[1]),
                                                 port=80))["images"]]      # one cluster: every host sees it
    assert up in sim.fisheye.iso_images and up not in sim.fisheye.svt_images
    # delete + recreate
    assert api.data(api.req("DELETE", f"/api/v2/images/{vol['image_uuid']}")) == {}
    assert_envelope_error(api.req("DELETE", f"/api/v2/images/{vol['image_uuid']}"), 404)
    assert_envelope_error(iso_chunk(api, vol, 0, chunks[0]), 400)
    assert api.data(api.get("/api/v2/images"))["images"] == []
    again = iso_volume(api, size).json()["data"]
    assert again["image_uuid"] != vol["image_uuid"] and again["image_path"] != vol["image_path"]
    assert sim.fisheye.upload_by_name(ISO_NAME, "ISO").image_uuid == again["image_uuid"]
    assert_envelope_error(api.post("/api/v2/images/upload/volume", params={"name": ISO_NAME, "size": size},
                                   token=""), 401)


# --------------------------------------------------------------------------- storage policies, VM validation
def test_storage_policies(world, plan):
    sim, api = world
    (p,) = api.data(api.get("/api/v2/storage_policies"))
    assert list(p) == ["created_time", "datastores", "description", "modified_time", "name", "read_only",
                       "replica_num", "resource_state", "storage_pool_id", "stripe_num", "stripe_size",
                       "thin_provision", "type", "uuid", "whitelist"]
    assert (p["name"], p["replica_num"], p["thin_provision"], p["type"]) == ("default", 2, True, "replica")
    assert p["whitelist"].split(",") == [str(h.storage_ip) for h in plan.hosts]
    assert p["uuid"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://storage-policy/{plan.cluster_name}/default"))


def test_vm_create_validation(world, plan):
    sim, api = world
    vol = upload_iso(api)
    vds, vlan = mgmt_network(api)
    storage_vds = api.data(api.get("/api/v2/network/vds"))[1]
    post = lambda body: api.post("/api/v2/vms", json=body)     # noqa: E731
    assert_envelope_error(api.post("/api/v2/vms", content=b"{nope"), 400, "JSON")
    assert_envelope_error(post([1]), 400)
    bad = vm_body(api, vol["image_path"])
    del bad["vm_name"], bad["status"]
    bad["cpu"] = {"topology": {"sockets": 4, "cores": 1}}
    bad["nics"][0]["ovs"] = storage_vds["ovsbr_name"]
    bad["disks"][0]["storage_policy_uuid"] = str(uuid.uuid4())
    bad["disks"][1]["path"] = "iscsi://iqn.2016-02.com.smartx:system:zbs-iscsi-datastore-x/1"
    body = assert_envelope_error(post(bad), 400, "vm_name is required", "status is required", "does not equal vcpu 8",
                                 f"not the bridge of network {vlan['name']}", "storage_policy_uuid",
                                 "disks[1].path")
    assert body["ec"] == "EINVALIDARGUMENT"
    assert_envelope_error(post(vm_body(api, vol["image_path"], nics=[dict(vm_body(api, "")["nics"][0],
                                                                          vlan_uuid=str(uuid.uuid4()))])),
                          400, "nics[0].vlan_uuid")
    assert_envelope_error(post(vm_body(api, vol["image_path"], nics=[])), 400, "nics")
    assert_envelope_error(post(vm_body(api, vol["image_path"], firmware="CSM")), 400, "firmware")
    assert_envelope_error(post(vm_body(api, vol["image_path"], node_ip="10.9.9.9")), 400, "node_ip")
    assert sim.vms.vms == {} and api.data(api.get("/api/v2/vms")) == []
    # unique names: the second VM named cloudtower is refused, even while the first one is being created
    first = api.data(post(vm_body(api, vol["image_path"])))["job_id"]
    assert_envelope_error(post(vm_body(api, vol["image_path"])), 400, "already exists")
    assert api.wait_job(first)["state"] == "done"
    r = post(vm_body(api, vol["image_path"]))
    assert_envelope_error(r, 400, "already exists")
    assert r.json()["ec"] == "EALREADYEXISTS"
    assert [v["vm_name"] for v in api.data(api.get("/api/v2/vms"))] == ["cloudtower"]
    # a deleted ISO cannot be mounted any more
    api.data(api.req("DELETE", f"/api/v2/images/{vol['image_uuid']}"))
    assert_envelope_error(post(vm_body(api, vol["image_path"], name="other")), 400, "disks[1].path")


# --------------------------------------------------------------------------- lifecycle
GUIDE_VM_KEYS = ["auto_schedule", "bios_uuid", "boot_with_host", "clock_offset", "cloud_init_supported",
                 "cluster_cpu_model", "cpu", "cpu_exclusive", "cpu_model", "cpu_qos", "create_time", "description",
                 "disks", "firmware", "guest_cpu_model", "guest_info", "guest_os_type", "ha", "ha_priority",
                 "hostdevs", "internal", "last_shutdown_time", "last_start_time", "memory", "nested_virtualization",
                 "nics", "node_ip", "placement_groups", "quota_policy", "resource_state", "status", "svt_iso",
                 "sync_vm_time_on_resume", "type", "update_time", "uptime", "uuid", "vcpu", "video_type", "vm_name",
                 "vm_version", "vm_version_mode", "win_opt"]


def test_vm_create_boot_and_guest_agent(world, plan):
    sim, api = world
    vol = upload_iso(api)
    job_id = api.data(api.post("/api/v2/vms", json=vm_body(api, vol["image_path"])))["job_id"]
    job = api.data(api.get(f"/api/v2/jobs/{job_id}"))["job"]
    assert job["state"] == "pending" and job["description"] == "VM_CREATE"
    (vm_uuid, res), = job["resources"].items()
    assert res["type"] == "KVM_VM" and res["uuid"] == vm_uuid and res["vm_name"] == "cloudtower"
    assert res["cpu"] == {"topology": {"sockets": 8, "cores": 1}} and res["vcpu"] == 8
    assert job["event"]["resources"] == {vm_uuid: "KVM_VM"}
    assert_envelope_error(api.get(f"/api/v2/vms/{vm_uuid}"), 404)          # not before the job is done
    job = api.wait_job(job_id)
    assert job["state"] == "done" and job["_seen"] == ["pending", "done"]
    vm = api.data(api.get(f"/api/v2/vms/{vm_uuid}"))
    assert list(vm) == GUIDE_VM_KEYS
    assert (vm["uuid"], vm["vm_name"], vm["status"], vm["type"], vm["guest_os_type"]) == \
        (vm_uuid, "cloudtower", "running", "KVM_VM", "unknown")
    assert vm["node_ip"] in host_ips(plan) and vm["memory"] == 20401094656 and vm["firmware"] == "BIOS"
    osdisk, cdrom = vm["disks"]
    assert (osdisk["type"], osdisk["name"], osdisk["size"], osdisk["boot"]) == ("disk", "cloudtower-os", 429496729600, 1)
    assert osdisk["path"].startswith("iscsi://") and osdisk["path"] != vol["image_path"]
    assert (cdrom["type"], cdrom["bus"], cdrom["path"], cdrom["boot"]) == ("cdrom", "ide", vol["image_path"], 2)
    (nic,) = vm["nics"]
    vds, vlan = mgmt_network(api)
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", nic["mac_address"])
    assert (nic["ovs"], nic["vlan_uuid"], nic["vlans"][0]["uuid"], nic["vlans"][0]["vds_uuid"]) == \
        (vds["ovsbr_name"], vlan["uuid"], vlan["uuid"], vds["uuid"])
    assert vm["guest_info"]["ga_state"] != "Running" and vm["guest_info"]["os_version"] == ""
    # the unattended install takes 20 simulated minutes from boot
    sim.advance(INSTALL_S - 30)
    assert api.data(api.get(f"/api/v2/vms/{vm_uuid}"))["guest_info"]["ga_state"] != "Running"
    sim.advance(60)
    vm = api.data(api.get(f"/api/v2/vms/{vm_uuid}"))
    gi = vm["guest_info"]
    assert gi["ga_state"] == "Running" and vm["guest_os_type"] == "unknown"
    assert "openEuler" in gi["os_version"] and gi["kernel_info"].endswith(".x86_64")
    assert [n["name"] for n in gi["nics"]] == ["lo", "ens4"]
    assert gi["nics"][1]["hardware_address"] == nic["mac_address"] and gi["nics"][1]["ip_addresses"] == []
    assert vm["uptime"] >= INSTALL_S
    # the list finds it by name; the VMs routes are wherever fisheye is (another host, http, the VIP)
    assert [(v["vm_name"], v["uuid"]) for v in api.data(api.get("/api/v2/vms"))] == [("cloudtower", vm_uuid)]
    assert api.data(api.get(f"/api/v2/vms/{vm_uuid}", address=host_ips(plan)[2], port=80))["uuid"] == vm_uuid
    vip = str(plan.vip)
    sim.fisheye.cluster_settings.vip_mode = "job"          # profile vip-job: a job to wait for
    api.wait_job(api.data(api.put("/api/v2/settings/vip", json={"iscsi_vip": None, "management_vip": vip}))["job_id"])
    assert api.data(api.get("/api/v2/vms", address=vip))[0]["uuid"] == vm_uuid
    assert_envelope_error(api.get("/api/v2/vms", token=""), 401)


def test_guest_agent_stalls_and_vm_job_faults(world):
    sim, api = world
    vol = upload_iso(api)
    # knob: no guest agent comes up
    sim.vms.stall_guest_agent = True
    a, _ = create_vm(api, vol["image_path"], "stalled-by-knob")
    # fault rule: this VM's guest agent never comes up (the job itself succeeds)
    sim.faults.add({"method": "POST", "path": "/api/v2/vms", "times": 1,
                    "action": {"operation": "stuck", "stage": "guest-agent"}})
    b, _ = create_vm(api, vol["image_path"], "stalled-by-rule")
    sim.advance(10 * INSTALL_S)
    for u in (a, b):
        assert api.data(api.get(f"/api/v2/vms/{u}"))["guest_info"]["ga_state"] != "Running"
    sim.vms.stall_guest_agent = False
    sim.advance(1)
    assert api.data(api.get(f"/api/v2/vms/{a}"))["guest_info"]["ga_state"] == "Running"
    assert api.data(api.get(f"/api/v2/vms/{b}"))["guest_info"]["ga_state"] != "Running"
    # the creation job fails: no VM, the name is free again
    sim.faults.add({"method": "POST", "path": "/api/v2/vms", "times": 1,
                    "action": {"operation": "fail", "msg": "no host has enough memory"}})
    job = api.wait_job(api.data(api.post("/api/v2/vms", json=vm_body(api, vol["image_path"], "x")))["job_id"])
    assert job["state"] == "failed" and job["error"] == {"code": "EJOBFAILED", "msg": "no host has enough memory"}
    assert "x" not in [v["vm_name"] for v in api.data(api.get("/api/v2/vms"))]
    create_vm(api, vol["image_path"], "x")
    # stuck: the job never ends, the VM never appears
    sim.faults.add({"method": "POST", "path": "/api/v2/vms", "times": 1, "action": {"operation": "stuck"}})
    stuck = api.data(api.post("/api/v2/vms", json=vm_body(api, vol["image_path"], "y")))["job_id"]
    sim.advance(3600)
    assert api.data(api.get(f"/api/v2/jobs/{stuck}"))["job"]["state"] == "running"
    assert "y" not in [v["vm_name"] for v in api.data(api.get("/api/v2/vms"))]


# --------------------------------------------------------------------------- IP through VM tools
def test_ip_config_job_brings_the_guest_up(world, plan, tmp_path):
    sim, api = world
    ip = str(plan.cloudtower.ip)
    vm_uuid, _ = create_vm(api, upload_iso(api)["image_path"])
    vm = api.data(api.get(f"/api/v2/vms/{vm_uuid}"))
    put = lambda body: api.put(f"/api/v2/vms/{vm_uuid}", json=body)       # noqa: E731
    assert_envelope_error(put(nic_body(api, vm, plan, ip)), 400, "guest agent")   # VM tools not running yet
    sim.advance(INSTALL_S + 1)
    assert_envelope_error(put({"nic": []}), 400)
    assert_envelope_error(put(nic_body(api, vm, plan, ip, mac_address="52:54:00:00:00:01")), 400, "mac_address",
                          vm["nics"][0]["mac_address"])
    assert_envelope_error(put(nic_body(api, vm, plan, ip, gateway="10.9.9.1")), 400, "gateway")
    assert_envelope_error(put(nic_body(api, vm, plan, ip, subnet_mask="24")), 400, "subnet_mask")
    assert_envelope_error(put(nic_body(api, vm, plan, host_ips(plan)[1])), 400, "already used by host")
    assert_envelope_error(api.put(f"/api/v2/vms/{uuid.uuid4()}", json=nic_body(api, vm, plan, ip)), 404)
    # a failed update changes nothing
    sim.faults.add({"method": "PUT", "path": "/api/v2/vms/*", "times": 1,
                    "action": {"operation": "fail", "msg": "vmtools timed out"}})
    assert api.wait_job(api.data(put(nic_body(api, vm, plan, ip)))["job_id"])["state"] == "failed"
    assert not sim.is_alive(ip) and refused(sim, ip, 22)
    job_id = api.data(put(nic_body(api, vm, plan, ip)))["job_id"]
    job = api.data(api.get(f"/api/v2/jobs/{job_id}"))["job"]
    assert job["description"] == "VM_UPDATE" and list(job["resources"]) == [vm_uuid]
    assert not sim.is_alive(ip) and refused(sim, ip, 22) and refused(sim, ip, 443)
    assert api.wait_job(job_id)["state"] == "done"          # polling the job applies it: no extra settle needed
    assert sim.is_alive(ip) and not refused(sim, ip, 22) and refused(sim, ip, 443)
    vm = api.data(api.get(f"/api/v2/vms/{vm_uuid}"))
    ens4 = vm["guest_info"]["nics"][1]
    assert ens4["ip_addresses"] == [{"ip_address": ip, "ip_address_type": "ipv4", "netmask": plan.mgmt.netmask,
                                     "prefix": str(plan.mgmt.subnet.prefixlen)}]
    assert ens4["ip_type"] == "static" and vm["nics"][0]["gateway"] == str(plan.mgmt.gateway)
    kh = tmp_path / "known_hosts"
    m = amap(sim)
    assert m.ping(ip)
    assert not can_login(ip, CT_USER, "wrong-Pass1!", amap=m, known_hosts=kh)
    with SshClient(ip, amap=m, username=CT_USER, password=CT_PW, known_hosts=kh, timeout=5) as c:
        r = c.run("id -un; hostname", timeout=5)
        assert r.exit_status == 0 and r.stdout.split() == [CT_USER, "localhost.localdomain"]
        assert c.sudo("id -un", timeout=5).stdout.strip() == "root"
    # the address is taken now: a second VM cannot have it
    other, _ = create_vm(api, sim.fisheye.iso_images[0].image_path, "other")
    sim.advance(INSTALL_S + 1)
    ovm = api.data(api.get(f"/api/v2/vms/{other}"))
    assert_envelope_error(api.put(f"/api/v2/vms/{other}", json=nic_body(api, ovm, plan, ip)), 400, "VM cloudtower")


# --------------------------------------------------------------------------- snapshot / restore
def test_snapshot_restore_vms_and_iso(make_world, plan, tmp_path):
    sim, api = make_world()
    ip = str(plan.cloudtower.ip)
    vm_uuid = ready_tower_vm(sim, api, plan)
    half = iso_volume(api, 3 * CHUNK).json()["data"]
    api.data(iso_chunk(api, half, 1, b"z" * CHUNK))
    vol = upload_iso(api, name="second.iso")
    pending = api.data(api.post("/api/v2/vms", json=vm_body(api, vol["image_path"], "later")))["job_id"]
    sim.vms.stall_guest_agent = True
    before = api.data(api.get(f"/api/v2/vms/{vm_uuid}"))
    snap = json.loads(json.dumps(sim.snapshot()))
    text = json.dumps(snap)
    assert CT_PW not in text and plan.cluster_admin_password not in text
    assert set(snap["restore"]["families"]) >= {"fisheye", "vms", "ssh", "cloudtower_install"}
    sim.close()

    sim2, api2 = make_world(snapshot=snap)
    after = api2.data(api2.get(f"/api/v2/vms/{vm_uuid}"))
    for k in ("uuid", "vm_name", "nics", "disks", "bios_uuid", "node_ip", "create_time"):
        assert after[k] == before[k], k
    assert after["guest_info"]["ga_state"] == "Running" and after["guest_info"]["nics"] == \
        before["guest_info"]["nics"]
    assert sim2.is_alive(ip) and not refused(sim2, ip, 22)
    with SshClient(ip, amap=amap(sim2), username=CT_USER, password=CT_PW, known_hosts=tmp_path / "kh",
                   timeout=5) as c:
        assert c.run("whoami", timeout=5).stdout == f"{CT_USER}\n"
    images = {i["name"]: i for i in api2.data(api2.get("/api/v2/images"))["images"]}
    assert images["second.iso"]["path"] == vol["image_path"] and images[ISO_NAME]["type"] == "ISO_IMAGE"
    assert api2.data(iso_chunk(api2, half, 0, b"a" * CHUNK))["to_upload"] == [2]     # the upload resumes
    assert sim2.vms.stall_guest_agent is True
    assert api2.wait_job(pending)["state"] == "done"                              # the pending job finishes
    later = sim2.vms.by_name("later")
    assert later is not None and later.disks[0]["path"] not in {d["path"] for v in sim2.vms.vms.values()
                                                                 if v is not later for d in v.disks}
    sim2.advance(2 * INSTALL_S)
    assert api2.data(api2.get(f"/api/v2/vms/{later.uuid}"))["guest_info"]["ga_state"] != "Running"
    new = iso_volume(api2, 10).json()["data"]
    assert new["image_path"] not in {d["path"] for v in sim2.vms.vms.values() for d in v.disks}
