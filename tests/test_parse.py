from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from plan import layout as L
from plan.example import add_cached_values, write_example
from plan.parse import PlanReadError, load
from plan.xlsx import Workbook


def test_template_concrete_values(template_path):
    plan, findings = load(template_path)
    assert findings == []
    assert plan.cluster_name == "CN-BJ-SMTX-Prod-Cls01"
    # 主机规划!C3 and 集群管理信息!N3 are formulas without cached values: resolved here
    assert set(plan.cluster_names.values()) == {"CN-BJ-SMTX-Prod-Cls01"}
    assert [str(h.mgmt_ip) for h in plan.hosts] == ["10.0.20.11", "10.0.20.12", "10.0.20.13", "10.0.20.14"]
    assert [h.hostname for h in plan.hosts][0] == "BJ-SMTX-Prod-Node-01"
    assert plan.vip == IPv4Address("10.0.20.10")
    assert len(plan.business) == 11
    assert [n.vlan_id for n in plan.business] == list(range(1120, 1131))
    assert plan.business_vds == "vDS-Prod-Network" and plan.business_nics == ("ens225", "ens257")
    assert plan.ntp == ("10.0.0.2", "ntp.c89.fun")
    assert plan.dns == ("10.0.0.114", "10.0.0.1")
    assert plan.storage_arch == "hybrid-tiered" and plan.tiered
    assert plan.network_arch == "separate"
    assert plan.feature == "Boost" and plan.vhost_enabled and not plan.rdma_enabled
    assert plan.mgmt.nics == ("ens224", "ens192") and plan.mgmt.bond_mode == "active-backup"
    assert plan.mgmt.netmask == "255.255.255.0" and plan.mgmt.gateway == IPv4Address("10.0.20.1")
    assert plan.storage.subnet == IPv4Network("10.0.21.0/24")
    assert not plan.extra_mgmt.used and plan.extra_mgmt.name == "Infra-network"
    assert plan.cloudtower.vm_name == "cloudtower" and plan.cloudtower.ip == IPv4Address("10.0.20.2")
    assert plan.components["obs"].ip == IPv4Address("10.0.20.3")
    assert plan.test_range == (IPv4Address("10.0.20.231"), IPv4Address("10.0.20.239"))
    assert plan.customer == "八九实验室" and plan.datacenter == "C89-LAB"
    assert plan.hosts[1].rack == "A01" and plan.hosts[1].rack_u == 3
    assert len(plan.masters) == 3


@pytest.mark.parametrize("hosts,business", [(3, 11), (4, 3), (16, 11), (3, 0)])
def test_generated_variants(tmp_path, hosts, business):
    plan, findings = load(write_example(tmp_path / "p.xlsx", hosts=hosts, business=business))
    assert findings == []
    assert len(plan.hosts) == hosts
    assert len(plan.business) == business
    assert len(plan.masters) == (5 if hosts >= 5 else 3)
    assert plan.hosts[-1].mgmt_ip == IPv4Address(f"10.0.20.{10 + hosts}")


def test_formulas_without_cached_values_are_resolved(tmp_path):
    path = write_example(tmp_path / "p.xlsx")
    with Workbook(path) as wb:
        raw = wb.cell(L.SHEET_HOSTS, "C3")
        assert raw.formula == "虚拟网络!B3" and raw.value in (None, "")
    plan, _ = load(path)
    assert plan.cluster_names["主机规划!C3"] == "DEMO-SMTX-Cls01"


def test_cached_formula_value_is_used(tmp_path):
    """When Excel saved a cached value, that value wins (we do not recompute)."""
    path = write_example(tmp_path / "p.xlsx")
    add_cached_values(path, {(L.SHEET_HOSTS, "C3"): "FROM-CACHE"})
    with Workbook(path) as wb:
        assert wb.cell(L.SHEET_HOSTS, "C3").value == "FROM-CACHE"
        assert wb.cell(L.SHEET_HOSTS, "B1").value == "示例客户-超融合示例项目-SMTX 集群节点管理地址规划"
    plan, _ = load(path)
    assert plan.cluster_names["主机规划!C3"] == "FROM-CACHE"
    assert plan.cluster_names["集群管理信息!N3"] == "DEMO-SMTX-Cls01"


def test_concatenation_and_quoted_sheet_refs(tmp_path):
    path = write_example(tmp_path / "p.xlsx", overrides={
        (L.SHEET_NET, "B3"): "='文档描述'!$C$17&\"-Cls\"&1",
    })
    plan, findings = load(path)
    assert findings == []
    assert plan.cluster_name == "DEMO-DC-Cls1"
    assert plan.cluster_names["主机规划!C3"] == "DEMO-DC-Cls1"


def test_unsupported_formula_is_a_finding(tmp_path):
    path = write_example(tmp_path / "p.xlsx", overrides={(L.SHEET_HOSTS, "I19"): "=CONCAT(\"10.0.20.\",10)"})
    plan, findings = load(path)
    assert plan.vip is None
    assert [(f.code, f.ref) for f in findings] == [("PLAN-FORMULA-UNRESOLVED", "主机规划!I19")]
    assert "Excel" in findings[0].fix


def test_normalisation(tmp_path):
    path = write_example(tmp_path / "p.xlsx", overrides={
        (L.SHEET_NET, "F8"): " 1120 ",              # number typed as text, with spaces
        (L.SHEET_NET, "F9"): 1121.0,                # integer that came back as a float
        (L.SHEET_NET, "J4"): "ens224， ens192 ",     # full-width comma, stray spaces
        (L.SHEET_NET, "J6"): "ens256；ens161",       # full-width semicolon
        (L.SHEET_HOSTS, "I3"): "10.0.20.11 ",        # trailing space
        (L.SHEET_HOSTS, "H4"): "ｄｅｍｏ-node-02",       # full-width letters
        (L.SHEET_HOSTS, "Q3"): "5",
    })
    plan, findings = load(path)
    assert findings == []
    assert plan.business[0].vlan_id == 1120 and plan.business[1].vlan_id == 1121
    assert plan.mgmt.nics == ("ens224", "ens192")
    assert plan.storage.nics == ("ens256", "ens161")
    assert plan.hosts[0].mgmt_ip == IPv4Address("10.0.20.11")
    assert plan.hosts[1].hostname == "demo-node-02"
    assert plan.hosts[0].rack_u == 5


def test_netmask_comes_from_cidr(tmp_path):
    path = write_example(tmp_path / "p.xlsx", overrides={(L.SHEET_NET, "H6"): "10.0.21.0/22"})
    plan, _ = load(path)
    assert plan.storage.netmask == "255.255.252.0"
    assert plan.mgmt.netmask == "255.255.255.0"


def test_defaults_for_blank_cells(tmp_path):
    blanks = {(L.SHEET_HOSTS, c): None for c in ("F3", "G3", "J3", "K3", "L3", "M3", "L19", "M19")}
    blanks.update({(L.SHEET_DOC, "C15"): None, (L.SHEET_DOC, "C17"): None, (L.SHEET_MGMT, "B3"): None})
    plan, _ = load(write_example(tmp_path / "p.xlsx", overrides=blanks))
    h = plan.hosts[0]
    assert (h.bmc_user, h.bmc_password) == ("ADMIN", "ADMIN")
    assert (h.ssh_user, h.ssh_password) == ("smartx", "HC!r0cks")
    assert (h.admin_user, h.admin_password) == ("root", "HC!r0cks")
    assert (plan.cluster_admin_user, plan.cluster_admin_password) == ("root", "HC!r0cks")
    assert plan.customer == "SMTX-HCI" and plan.datacenter == "SMTX-HCI-DC"
    assert plan.cloudtower.vm_name == "cloudtower"


def test_host_row_counts_only_with_management_ip(tmp_path):
    plan, _ = load(write_example(tmp_path / "p.xlsx", hosts=4, overrides={
        (L.SHEET_HOSTS, "I4"): None, (L.SHEET_HOSTS, "H9"): "stray-name-without-ip"}))
    assert [h.row for h in plan.hosts] == [3, 5, 6]


def test_syntax_findings_name_the_cell(tmp_path):
    plan, findings = load(write_example(tmp_path / "p.xlsx", overrides={
        (L.SHEET_NET, "H4"): "10.0.20.0", (L.SHEET_HOSTS, "N3"): "10.0.21.300", (L.SHEET_NET, "F8"): "abc"}))
    got = {(f.code, f.ref) for f in findings}
    assert got == {("PLAN-CIDR-SYNTAX", "虚拟网络!H4"), ("PLAN-IP-SYNTAX", "主机规划!N3"),
                   ("PLAN-INT-SYNTAX", "虚拟网络!F8")}
    assert plan.invalid == {"虚拟网络!H4", "主机规划!N3", "虚拟网络!F8"}


def test_not_a_workbook(tmp_path):
    bad = tmp_path / "plan.xlsx"
    bad.write_text("not a zip")
    with pytest.raises(PlanReadError, match="无法读取规划表"):
        load(bad)


def test_missing_sheet(tmp_path):
    from openpyxl import Workbook as OWb

    p = tmp_path / "other.xlsx"
    OWb().save(p)
    with pytest.raises(PlanReadError, match="缺少工作表"):
        load(p)


def test_plan_secrets_lists_passwords(example_plan_path):
    from plan.example import EXAMPLE_PASSWORDS

    plan, _ = load(example_plan_path)
    assert set(EXAMPLE_PASSWORDS.values()) <= plan.secrets()


def test_committed_example_matches_generator(tmp_path):
    """examples/plan-example.xlsx is generated; it must stay what the generator makes."""
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "examples" / "plan-example.xlsx"
    fresh, _ = load(write_example(tmp_path / "fresh.xlsx"))
    ours, findings = load(committed)
    assert findings == []
    skip = {"source", "sha256"}
    assert {k: v for k, v in vars(ours).items() if k not in skip} == {k: v for k, v in vars(fresh).items() if k not in skip}
