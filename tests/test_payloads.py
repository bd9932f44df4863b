"""The deploy payload, rebuilt from plan + scans, matches every captured payload in examples/."""
from __future__ import annotations

import copy
import json

import pytest

from clients.payloads import DEFAULT_ENCODED_HOST_PASSWORD, PayloadError, check_scan, deploy_payload
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .conftest import REFERENCE

EXAMPLES = REFERENCE / "examples"


def _examples() -> dict[str, dict]:
    if not EXAMPLES.exists():
        return {}
    out = json.loads((EXAMPLES / "deploy-payloads-by-disk-layout.json").read_text(encoding="utf-8"))
    out["converged-network"] = json.loads(
        (EXAMPLES / "deploy-cluster-payload-converged-network.json").read_text(encoding="utf-8"))
    return out


CASES = _examples()
needs_examples = pytest.mark.skipif(not CASES, reason=f"reference examples not present at {EXAMPLES}")


def _plan_for(tmp_path, example: dict, *, storage_arch: str, network_arch: str = "三网独立"):
    hosts = example["hosts"]
    mgt = next(n for n in example["networks"] if n["network_type"] == "mgt")
    sto = next(n for n in example["networks"] if n["network_type"] == "storage")
    vds = {v["name"]: v for v in example["vdses"]}
    ov = {(L.SHEET_NET, "B3"): example["cluster_name"],
          (L.SHEET_NET, "C4"): mgt["attached_vds"], (L.SHEET_NET, "C6"): sto["attached_vds"],
          (L.SHEET_NET, "F4"): mgt["mode"]["network_identities"][0],
          (L.SHEET_NET, "F6"): sto["mode"]["network_identities"][0],
          (L.SHEET_NET, "J4"): ",".join(vds[mgt["attached_vds"]]["hosts_associated"][0]["nics_associated"]),
          (L.SHEET_NET, "J6"): ",".join(vds[sto["attached_vds"]]["hosts_associated"][0]["nics_associated"]),
          (L.SHEET_NET, "K4"): vds[mgt["attached_vds"]].get("bond_mode", "active-backup"),
          (L.SHEET_NET, "K6"): vds[sto["attached_vds"]].get("bond_mode", "active-backup"),
          (L.SHEET_HOSTS, "Q19"): storage_arch,
          (L.SHEET_MGMT, "E25"): example["dns_server"][0], (L.SHEET_MGMT, "E26"): None}
    for i, h in enumerate(hosts):
        ov[(L.SHEET_HOSTS, f"H{3 + i}")] = h["hostname"]
        ov[(L.SHEET_HOSTS, f"I{3 + i}")] = next(x["ip"] for x in h["ifaces"] if x["function"] == "mgt")
        ov[(L.SHEET_HOSTS, f"N{3 + i}")] = next(x["ip"] for x in h["ifaces"] if x["function"] == "storage")
    path = write_example(tmp_path / "plan.xlsx", hosts=len(hosts), business=2, network_arch=network_arch,
                         overrides=ov)
    plan, findings = load(path)
    assert findings == []
    return plan


def _scan_for(plan, payload_host: dict) -> dict:
    """A pre-deployment scan as the host would report it: NICs with link-local IPv6, a boot disk,
    every other disk offered as plain data (so the payload's roles come from our rules, not the scan)."""
    base = json.loads((EXAMPLES / "scan-host-response.json").read_text(encoding="utf-8"))["data"]
    scan = copy.deepcopy(base)
    scan["host_uuid"] = payload_host["host_uuid"]
    mgmt_ip = next(x["ip"] for x in payload_host["ifaces"] if x["function"] == "mgt")
    ifaces = [i for i in scan["ifaces"] if not i["name"].startswith(("port-", "ovsbr-"))]
    for n, i in enumerate(ifaces):
        i["ipv6"] = f"fe80::250:56ff:feb5:{n:04x}"
        i["ipv4"] = mgmt_ip if i["name"] == plan.mgmt.nics[0] else None
    scan["ifaces"] = ifaces
    boot = {"drive": "sdz", "function": "boot", "model": "Virtual_disk", "serial": "boot", "size": 1, "type": "SSD"}
    scan["disks"] = [boot] + [dict(d, function="data") for d in payload_host["disks"]]
    return scan


@needs_examples
@pytest.mark.parametrize("name", sorted(CASES))
def test_payload_matches_captured_example(tmp_path, name):
    example = CASES[name]
    storage_arch = "全闪-不分层" if "不分层" in name else "混闪-分层"
    plan = _plan_for(tmp_path, example, storage_arch=storage_arch)
    scans = {str(h.mgmt_ip): _scan_for(plan, ph) for h, ph in zip(plan.hosts, example["hosts"])}
    for h in plan.hosts:
        assert check_scan(plan, h, scans[str(h.mgmt_ip)]) == []
    got = deploy_payload(plan, scans)

    def normal(p):
        p = copy.deepcopy(p)
        p["ntp"].pop("current_time")
        for h in p["hosts"]:
            for k in ("host_ip", "is_master", "host_passwords"):
                h.pop(k)
        return p

    assert normal(got) == normal(example)
    # host_ip: the management NIC's link-local address and its name
    assert got["hosts"][0]["host_ip"] == f"fe80::250:56ff:feb5:{_nic_index(scans, plan):04x}%{plan.mgmt.nics[0]}"
    assert all(p["password"] == DEFAULT_ENCODED_HOST_PASSWORD for h in got["hosts"] for p in h["host_passwords"])
    assert got["ntp"]["current_time"].endswith("Z") and got["ntp"]["mode"] == "internal"


def _nic_index(scans, plan):
    names = [i["name"] for i in next(iter(scans.values()))["ifaces"]]
    return names.index(plan.mgmt.nics[0])


@needs_examples
@pytest.mark.parametrize("arch", ["三网独立", "存储独立"])
def test_both_network_architectures_deploy_mgmt_and_storage_vds(tmp_path, arch):
    example = CASES["converged-network"]
    plan = _plan_for(tmp_path, example, storage_arch="混闪-分层", network_arch=arch)
    scans = {str(h.mgmt_ip): _scan_for(plan, ph) for h, ph in zip(plan.hosts, example["hosts"])}
    got = deploy_payload(plan, scans)
    assert [v["name"] for v in got["vdses"]] == ["vDS-MGMT-PROD", "vDS-SDS"]
    assert [v["bond_mode"] for v in got["vdses"]] == ["balance-tcp", "balance-tcp"]
    assert [n["mode"]["network_identities"] for n in got["networks"]] == [[1020], [1021]]
    # business NICs join the cluster in stage 03, never in the deploy payload
    assert all("ens225" not in v["hosts_associated"][0]["nics_associated"] for v in got["vdses"])


@pytest.mark.parametrize("hosts,masters", [(3, 3), (4, 3), (5, 5), (16, 5)])
def test_masters_first_three_or_five(tmp_path, hosts, masters):
    plan, _ = load(write_example(tmp_path / "p.xlsx", hosts=hosts))
    scans = {str(h.mgmt_ip): {"host_uuid": f"u{i}", "ifaces": [{"name": "ens224", "ipv4": str(h.mgmt_ip),
                                                               "ipv6": "fe80::1"}],
                              "disks": [{"drive": "sdb", "type": "SSD", "function": "data"}]}
             for i, h in enumerate(plan.hosts)}
    got = deploy_payload(plan, scans)
    assert [h["is_master"] for h in got["hosts"]] == [True] * masters + [False] * (hosts - masters)


def test_netmask_and_gateway_come_from_the_plan(tmp_path):
    plan, _ = load(write_example(tmp_path / "p.xlsx", hosts=3, overrides={
        (L.SHEET_NET, "H4"): "10.0.16.0/20", (L.SHEET_NET, "I4"): "10.0.16.1", (L.SHEET_HOSTS, "O19"): "None"}))
    scans = {str(h.mgmt_ip): {"host_uuid": f"u{i}", "ifaces": [{"name": "ens192", "ipv4": None, "ipv6": "fe80::2"}],
                              "disks": []} for i, h in enumerate(plan.hosts)}
    got = deploy_payload(plan, scans)
    mgt = got["networks"][0]["network_config"]
    assert {s["netmask"] for s in mgt["service"]} == {"255.255.240.0"}
    assert mgt["route"] == [{"gateway": "10.0.16.1"}]
    assert got["vhost_enabled"] is False and got["rdma_enabled"] is False
    assert got["hosts"][0]["host_ip"] == "fe80::2%ens192"


def test_missing_link_local_is_a_clear_error(tmp_path):
    plan, _ = load(write_example(tmp_path / "p.xlsx", hosts=3))
    scans = {str(h.mgmt_ip): {"host_uuid": "u", "ifaces": [{"name": "ens224", "ipv6": None}], "disks": []}
             for h in plan.hosts}
    with pytest.raises(PayloadError, match="IPv6"):
        deploy_payload(plan, scans)


def test_check_scan_names_missing_nics_and_disks(tmp_path):
    plan, _ = load(write_example(tmp_path / "p.xlsx", hosts=3))
    problems = check_scan(plan, plan.hosts[0], {"host_uuid": "u", "ifaces": [{"name": "ens224"}],
                                               "disks": [{"drive": "sda", "function": "boot"}]})
    assert any("ens256" in p for p in problems) and any("磁盘" in p for p in problems)
