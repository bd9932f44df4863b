"""The typed hand-over (fixtures/outputs.py), ensure_vds, the atomic writer and the IP helpers."""
from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from clients.files import atomic_write, atomic_write_text
from clients.fisheye import FisheyeClient
from clients.ipaddr import ipv4, is_ip
from fixtures import outputs as O
from fixtures.run import RunState

SAMPLES = [
    O.Warnings(["change the CloudTower password"]), O.AddressesInUse(["10.0.0.10"]),
    O.HostScans({"10.0.0.11": {"host_uuid": "u1", "disks": [{"drive": "sda"}]}}),
    O.ClusterScan({"u1": "fe80::1%ens256"}),
    O.Hosts({"10.0.0.11": O.HostFacts("u1", "node1", "SN1")}),
    O.DiskRoles({"10.0.0.11": [{"drive": "sdb", "function": "data"}]}),
    O.Deployment("本次运行完成部署", "deployed by this run"), O.RootPassword("已设置", "set"),
    O.ClusterVip("10.0.0.10"), O.License(serial="S-1", software_edition="ENTERPRISE", license_type="TRIAL"),
    O.DnsNtp({"dns_servers": ["10.0.0.2"]}, {"ntp_mode": "external", "ntp_servers": ["ntp.example"]}),
    O.Ipmi([("node1", "10.0.1.11")], [("node2", "10.0.1.12")]),
    O.BusinessVds("v1", "vds-biz", "active-backup", "ovsbr-biz"),
    O.BusinessVlans([O.Vlan("biz-1", 101, "l1"), O.Vlan("biz-2", 102)]),
    O.PasswordResults({"10.0.0.11": "changed"}),
    O.SvtImage(name="SMTX_VMTOOLS.iso", size=10, image_uuid="i1", image_path="/p", chunks=2, retries=1, recreated=0,
               mb_per_s=12.5),
    O.CpuCompatibility("Intel Cascadelake"),
    O.CloudTowerIso(name="cloudtower.iso", size=10, path="/iso", uuid="i2", reused=True),
    O.CloudTowerVm("cloudtower", "vm1", "l0", "ovsbr-mgt"), O.CloudTowerOs("openEuler 22.03"),
    O.CloudTowerSetup("ACME", "org1"), O.CloudTowerNtp("ntp1;ntp2"), O.CloudTowerDns(["10.0.0.2"]),
    O.CloudTowerLicense(license_serial="CT-1", software_edition="ENTERPRISE", type="TRIAL"),
    O.Versions(packages={"cloudtower": "cloudtower-v4.7.1.iso (4.7.1)"}, hosts={"10.0.20.11": "6.2.0P4"},
               deployed={"smtx_os": "6.2.0P4", "cloudtower": "4.7.1"}),
    O.CloudTowerOrganization("org1", "ACME"), O.CloudTowerDatacenter("dc1", "ACME-DC", "org1", created=True),
    O.CloudTowerCluster(id="c1", ip="10.0.20.10", local_id="u-1", settings_id="s1", connect_state="CONNECTED",
                        how="moved", moved_from="OLD-DC", host_num=1, hosts=[["node1", "10.0.20.11"]],
                        connect_started=1700000000.5, connect_seconds=150.0),
    O.CloudTowerStoragePolicy("REPLICA_2_THIN_PROVISION", 2, True, "s1", "REPLICA_2_THICK_PROVISION", "set"),
    O.CloudTowerCapacityAlert("zbs_cluster_data_space_use_rate", "g1", "a1", 3, 61, 90, 80, "set"),
    O.CloudTowerDashboards([O.DashboardView("Cluster", "v1", "cluster", 3, 3, 3, True),
                            O.DashboardView("VM", "v3", "vm", 6, 5, 0, False)]),
    O.CloudTowerRacks([O.RackPlacement("n1", "10.0.0.11", "A01", 1, "n1"),
                       O.RackPlacement("n2", "10.0.0.12", "A02", 10, "A02-U10", ["n3"])], 2, 42, ["A01", "A02"],
                      2, 1, 3, ["n4"]),
    O.ObsPackage(file="Observability-X86_64-v1.4.2-release.20250926-24.tar.gz", release="v1.4.2-release.20250926",
                 arch="X86_64", size=12, how="uploaded", upload_id="37Jud", mb_per_s=80.5, seconds=0.2,
                 stale_task_ids=["t0"], package_id="p1", tasks=[["Create Installation package x", "SUCCESSED"]]),
    O.ObsInstance(id="i1", name="observability", ip="10.0.20.3", vlan_id="v1", package_id="p1",
                  version="v1.4.2-release.20250926", status="SUCCESS", vm_status="RUNNING", health_status="NORMAL",
                  how="created", install_seconds=600.0),
    O.ObsServices(ntp="10.0.0.2;ntp.example.com", clusters=["Cls01"], system_services=["CLOUDTOWER INSTALLING"],
                  rules=22, dns=["10.0.0.114"], serial_note="M4 not written"),
    O.BackupStorageIp(ip="10.0.21.4", subnet="10.0.21.0/24", netmask="255.255.255.0", source="option"),
    O.BackupPackage(id="p2", filename="smtx-backup-dr-x86_64-2.2.1.tar.gz", version="2.2.1", architecture="X86_64",
                    how="uploaded", upload_task_id="u1", chunks=102, chunk_size=4194304, mb_per_s=95.2,
                    confirmed_by="get-upload-tasks", register_seconds=41.0),
    O.BackupNetwork(vds_id="d1", vds_name="vDS-Storage-Network", on="storage", vds_created=False, vlan_id="v2",
                    vlan_name="backup-storage-network", vlan_tag=0, vlan_created=True),
    O.BackupServiceFact(id="s1", name="backup", status="RUNNING", application_id="a1", version="2.2.1",
                        install_task_id="t1", management_ip="10.0.20.4", storage_ip="10.0.21.4", how="created",
                        install_seconds=156.0, clusters=["Cls01"], attach_how="attached", serial_note="M5 not written"),
    O.InspectionJob(id="3MjaB0e5V1ZcnQE6qwfPeJWEIqb", cluster_uuid="30724c9c-9657-46af-9c55-3857c8f165c1",
                    version="1.1.1-rc.11", items=82, status="SUCCEEDED", status_from="job", how="created",
                    seconds=121.0),
    O.InspectionExport(filename="InspectorReport-2025-10-01-03-45-27-j1.zip", job_id="j1", format="word",
                       status="EXPORT_SUCCEEDED", how="created", zip_path="inspection/InspectorReport-j1.zip",
                       docx=["inspection/InspectorReport-Cls01.docx"], size=35159, sha256="ab" * 32),
    O.InspectionFindings(recognised=True, files=["inspection/InspectorReport-Cls01.docx"], tables=2, items=74,
                         by_severity={"正常 / OK": 71, "严重": 1, "警告": 1, "提示": 1},
                         not_ok=[{"item": "fan_check", "object": "node-2", "result": "异常", "severity": "警告",
                                  "value": "FAN3 2100 RPM", "suggestion": "replace the fan"}], note=None),
    O.CustomerSnapshot(taken_at="2026-11-28T10:00:00Z", objects={"vms": [["v1", "CloudTower", "ab" * 32]]}),
    O.TestImage(name="smtx-fio-worker-1.0", ovf="test-image/smtx-fio-worker-1.0.ovf", source="simulated stand-in",
                disks=[["smtx-fio-worker-1.0-disk1.vmdk", 6295825, 21474836480]], cpu=4, memory_mib=4096),
    O.TestVmPlan(vms=[["smtx-acceptance-fio-01", "10.0.20.11", "node1", "10.0.20.231"]], wanted=3, addresses=9,
                 capped=False, requested=None, disk_gib=10),
    O.TestNetwork(vlan_id="vl1", name="default", subnet="10.0.20.0/24", netmask="255.255.255.0", gateway="10.0.20.1"),
    O.TestImageUpload(parsed_ovf={"name": "smtx-fio-worker-1.0"}, uploads=[["disk1.vmdk", "u1", "SUCCESSED"]],
                      seconds=3.5, how="uploaded"),
    O.TestVms(vms=[{"name": "smtx-acceptance-fio-01", "id": "vm1", "host_id": "h1", "host": "node1",
                    "ip": "10.0.20.231", "how": "imported"}], ready=True, ip_how="import"),
    O.TestDisks(devices={"smtx-acceptance-fio-01": "/dev/vdb"}, size=10737418240, preconditioned=True, seconds=50.0),
    O.PerfResults(thresholds_file="tests_deploy/data/perf_thresholds.json", thresholds_source="defaults",
                  architecture="hybrid-tiered", hosts=3, vms=3, runtime_s=60, ramp_s=10,
                  profiles={"4k-randread": {"iops": 60000.0, "judgements": []}}),
    O.ReliabilityResult(ran=True, migrations=[{"vm": "smtx-acceptance-fio-01", "ok": True, "ratio": 0.8}]),
    O.CleanupSummary(removed=[["VM", "smtx-acceptance-fio-01", "vm1"]], kept=False, leftovers=[],
                     customer_changes=[], verified=True),
]


def test_every_fact_has_its_own_key_and_survives_json():
    kinds = {type(s) for s in SAMPLES}
    assert kinds == {c for c in vars(O).values() if isinstance(c, type) and issubclass(c, O.Output)
                     and "KEY" in vars(c)}, "every fact class has a sample here"
    assert len({k.KEY for k in kinds}) == len(kinds)
    for fact in SAMPLES:
        assert type(fact).from_json(json.loads(json.dumps(fact.to_json()))) == fact


def test_the_json_keeps_the_shape_earlier_runs_wrote(tmp_path):
    """A state.json from before the typed hand-over (same keys and shapes) reads back as facts."""
    old = {"vip": "10.0.0.10", "hosts": {"10.0.0.11": {"host_uuid": "u1", "hostname": "n1", "sn": "S"}},
           "vlans": [{"name": "biz-1", "vlan_id": 101, "uuid": "l1"}], "cloudtower_dns": ["10.0.0.2"],
           "ipmi": {"success": [["n1", "10.0.1.11"]], "failure": []}, "host_passwords": {"10.0.0.11": "already"},
           "svt": {"name": "a.iso", "size": 1, "image_uuid": "i", "image_path": "/p", "reused": True},
           "license": {"serial": "S-1", "software_edition": "E", "license_type": "T", "mode": None,
                       "sign_date": 1, "period": 2, "unknown_later_field": "ignored"}}
    state = RunState.create(tmp_path, plan_path=tmp_path / "plan.xlsx", plan_sha256="x", cluster="c", mode="simulated")
    state.data["outputs"].update(json.loads(json.dumps(old)))
    assert state.take(O.ClusterVip).address == "10.0.0.10"
    assert state.take(O.Hosts).uuid("10.0.0.11") == "u1" and state.take(O.Hosts).uuid("10.0.0.99") is None
    assert state.take(O.BusinessVlans).vlans == [O.Vlan("biz-1", 101, "l1")]
    assert state.take(O.Ipmi).success == [("n1", "10.0.1.11")]
    assert state.take(O.SvtImage).reused is True and state.take(O.License).serial == "S-1"
    assert state.take(O.CloudTowerVm) is None
    for key in ("vip", "vlans", "cloudtower_dns", "host_passwords"):   # written back unchanged
        kind = next(type(s) for s in SAMPLES if type(s).KEY == key)
        state.put(state.take(kind))
        assert state.data["outputs"][key] == old[key]
    assert json.loads((tmp_path / "state.json").read_text(encoding="utf-8"))["outputs"]["vip"] == "10.0.0.10"


def test_adding_to_a_list_fact_keeps_it_sorted_and_unique():
    got = O.AddressesInUse(["10.0.0.20"]).adding("10.0.0.10").adding("10.0.0.20")
    assert got.addresses == ["10.0.0.10", "10.0.0.20"]


def test_image_upload_figures():
    result = SimpleNamespace(chunks_sent=3, chunk_retries=1, recreated=0, mb_per_s=123.456)
    iso = dataclasses.replace(O.CloudTowerIso(name="c.iso", size=1), path="/p", **O.CloudTowerIso.figures(result))
    assert (iso.chunks, iso.retries, iso.recreated, iso.mb_per_s, iso.reused) == (3, 1, 0, 123.5, False)


class FakeFisheye:
    find_vds = FisheyeClient.find_vds
    ensure_vds = FisheyeClient.ensure_vds

    def __init__(self, vdses, resources=None):
        self.vdses, self.resources, self.created = vdses, resources, []

    def list_vds(self):
        return self.vdses

    def create_vds(self, body):
        self.created.append(body)
        return {"job_id": "j1"}


def test_ensure_vds_finds_an_existing_vds_and_creates_nothing():
    api = FakeFisheye([{"name": "vds-biz", "uuid": "v1"}])
    vds, created = api.ensure_vds({"name": "vds-biz"}, wait_job=pytest.fail, before_create=pytest.fail)
    assert (vds["uuid"], created, api.created) == ("v1", False, [])


def test_ensure_vds_creates_a_missing_vds_and_waits_for_its_job():
    api = FakeFisheye([{"name": "other", "uuid": "v0"}])
    seen, waited = [], []
    job = {"state": "done", "resources": {"r": {"type": "NETWORK_VDS", "uuid": "v2", "name": "vds-biz"}}}
    vds, created = api.ensure_vds({"name": "vds-biz"}, wait_job=lambda j, what: waited.append(j) or job,
                                  before_create=seen.append)
    assert (vds["uuid"], created, seen, waited) == ("v2", True, [{"name": "vds-biz"}], ["j1"])
    with pytest.raises(AssertionError, match="no VDS"):
        api.ensure_vds({"name": "vds-biz"}, wait_job=lambda j, what: {"state": "done", "resources": {}})


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "state.json"
    atomic_write_text(target, "first\n")
    assert target.read_text(encoding="utf-8") == "first\n"

    def broken(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text(encoding="utf-8") == "first\n"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"], "no temp file left behind"


def test_ip_helpers():
    assert str(ipv4(" 10.0.0.1 ")) == "10.0.0.1" and ipv4(" 10.0.0.1", strip=False) is None
    assert ipv4("fe80::1") is None and ipv4(None) is None and ipv4(167772161) is None
    assert is_ip("fe80::1") and is_ip(" 10.0.0.1") and not is_ip(" 10.0.0.1", strip=False)
    assert not is_ip("ntp.example.com") and not is_ip(5)


def test_a_later_step_needs_a_fact_with_its_fields_or_fails_in_plain_words(tmp_path):
    state = RunState.create(tmp_path, plan_path=tmp_path / "plan.xlsx", plan_sha256="x", cluster="c", mode="simulated")
    with pytest.raises(AssertionError, match=r"05.cluster recorded no CloudTowerCluster \(id\)[\s\S]*--resume"):
        state.need(O.CloudTowerCluster, "05.cluster", "id")
    state.put(O.CloudTowerCluster(id="c1"))
    assert state.need(O.CloudTowerCluster, "05.cluster", "id").id == "c1"
    with pytest.raises(AssertionError, match=r"\(local_id\)"):
        state.need(O.CloudTowerCluster, "05.cluster", "id", "local_id")
