"""plan.validate: one workbook mutation per rule, each pinned to its code and exact ``sheet!cell``.

Workbooks are generated with ``plan.example.write_example`` (the vendor layout, filled with valid
values); ``overrides`` are applied last. Overrides that must reuse a baseline value (duplicates) are
written as ``lambda base: {...}`` so the tests do not hard-code the example's addresses.
"""
from __future__ import annotations

import time

import pytest

from plan import layout as L
from plan.example import write_example
from plan.parse import load
from plan.validate import check, is_hostname, validate

NET, HOSTS, MGMT = L.SHEET_NET, L.SHEET_HOSTS, L.SHEET_MGMT
SHARED = "存储独立"
BASE_KW = {"hosts": 4, "business": 3}
WEAK_MARKER = "zqxjkvbwq"        # 9 lowercase letters: weak (one character class), distinctive


def r(sheet: str, cell: str) -> str:
    return L.ref(sheet, cell)


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """Session cache: overrides -> (plan, findings) of check() on the generated workbook."""
    folder = tmp_path_factory.mktemp("validate")
    cache: dict = {}

    def _build(overrides: dict | None = None, **kw):
        kw = {**BASE_KW, **kw}
        key = (tuple(sorted(kw.items())), tuple(sorted((overrides or {}).items(), key=repr)))
        if key not in cache:
            path = write_example(folder / f"plan-{len(cache)}.xlsx", overrides=overrides, **kw)
            cache[key] = check(path)
        return cache[key]

    return _build


@pytest.fixture(scope="session")
def base(build):
    plan, _ = build()
    return plan


def resolve(overrides, base):
    return overrides(base) if callable(overrides) else overrides


def errors(findings):
    return [f for f in findings if f.is_error]


def show(findings):
    return "\n".join(f"{f.severity} {f.code} {f.ref} {f.message_en}" for f in findings)


# --- baseline -------------------------------------------------------------------------------

def test_baseline_has_no_errors(build):
    plan, findings = build()
    assert errors(findings) == [], show(findings)
    # the mutations below rely on this shape
    assert len(plan.hosts) == 4 and len(plan.business) == 3 and plan.network_arch == "separate"
    assert not plan.extra_mgmt.used and not plan.backup.used and plan.backup.nics


@pytest.mark.parametrize("kw", [{"hosts": 3, "business": 0}, {"hosts": 16, "business": 11},
                                {"network_arch": SHARED}], ids=str)
def test_example_variants_have_no_errors(build, kw):
    _, findings = build(**kw)
    assert errors(findings) == [], show(findings)


def test_template_validates_without_errors(template_path):
    plan, findings = check(template_path)
    assert errors(findings) == [], show(findings)
    # the template holds documented default passwords: those are warnings
    assert {f.code for f in findings} <= {"PLAN-PASSWORD-WEAK"}
    assert r(HOSTS, "M19") in {f.ref for f in findings}


def test_validate_is_fast_on_template(template_path):
    plan, _ = load(template_path)
    validate(plan)
    t = time.perf_counter()
    for _ in range(10):
        validate(plan)
    assert (time.perf_counter() - t) / 10 < 0.05


# --- one mutation per rule ------------------------------------------------------------------

CASES = [
    # PLAN-REQUIRED
    ("cluster name blank", {(NET, "B3"): None}, "PLAN-REQUIRED", r(NET, "B3")),
    ("mgmt VDS blank", {(NET, "C4"): None}, "PLAN-REQUIRED", r(NET, "C4")),
    ("mgmt subnet blank", {(NET, "H4"): None}, "PLAN-REQUIRED", r(NET, "H4")),
    ("mgmt gateway blank", {(NET, "I4"): None}, "PLAN-REQUIRED", r(NET, "I4")),
    ("mgmt bond blank", {(NET, "K4"): None}, "PLAN-REQUIRED", r(NET, "K4")),
    ("storage VDS blank", {(NET, "C6"): None}, "PLAN-REQUIRED", r(NET, "C6")),
    ("storage subnet blank", {(NET, "H6"): None}, "PLAN-REQUIRED", r(NET, "H6")),
    ("storage bond blank", {(NET, "K6"): None}, "PLAN-REQUIRED", r(NET, "K6")),
    ("backup bond blank while its NICs are given", {(NET, "K7"): None}, "PLAN-REQUIRED", r(NET, "K7")),
    ("hostname blank", {(HOSTS, "H4"): None}, "PLAN-REQUIRED", r(HOSTS, "H4")),
    ("storage IP blank", {(HOSTS, "N5"): None}, "PLAN-REQUIRED", r(HOSTS, "N5")),
    ("VIP blank", {(HOSTS, "I19"): None}, "PLAN-REQUIRED", r(HOSTS, "I19")),
    ("storage arch blank", {(HOSTS, "Q19"): None}, "PLAN-REQUIRED", r(HOSTS, "Q19")),
    ("network arch blank", {(HOSTS, "Q20"): None}, "PLAN-REQUIRED", r(HOSTS, "Q20")),
    ("CloudTower IP blank", {(MGMT, "E3"): None}, "PLAN-REQUIRED", r(MGMT, "E3")),
    ("no NTP server", {(MGMT, "E22"): None, (MGMT, "E23"): None}, "PLAN-REQUIRED", r(MGMT, "E22")),
    ("no DNS server", {(MGMT, "E25"): None, (MGMT, "E26"): None}, "PLAN-REQUIRED", r(MGMT, "E25")),
    ("business VDS blank (separate)", {(NET, "C8"): None}, "PLAN-REQUIRED", r(NET, "C8")),
    ("business bond blank (separate)", {(NET, "K8"): None}, "PLAN-REQUIRED", r(NET, "K8")),
    # PLAN-BUSINESS-VDS-IGNORED (warning)
    ("shared arch with a different business VDS", {(HOSTS, "Q20"): SHARED, (NET, "C8"): "vDS-Other"},
     "PLAN-BUSINESS-VDS-IGNORED", r(NET, "C8")),
    # PLAN-NOT-IN-MGMT-SUBNET
    ("host mgmt IP outside mgmt subnet", {(HOSTS, "I4"): "10.9.9.12"}, "PLAN-NOT-IN-MGMT-SUBNET", r(HOSTS, "I4")),
    ("host mgmt IP in the extra network only",
     {(NET, "H5"): "10.0.30.0/24", (NET, "I5"): "10.0.30.1", (HOSTS, "I4"): "10.0.30.12"},
     "PLAN-NOT-IN-MGMT-SUBNET", r(HOSTS, "I4")),
    ("VIP outside mgmt subnet", {(HOSTS, "I19"): "10.9.9.10"}, "PLAN-NOT-IN-MGMT-SUBNET", r(HOSTS, "I19")),
    ("CloudTower IP outside", {(MGMT, "E3"): "10.9.9.2"}, "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E3")),
    ("OBS IP outside", {(MGMT, "E4"): "10.9.9.3"}, "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E4")),
    ("backup IP outside", {(MGMT, "E5"): "10.9.9.4"}, "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E5")),
    ("ER VIP outside", {(MGMT, "E6"): "10.9.9.6"}, "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E6")),
    ("second ER node outside (first blank)", {(MGMT, "E8"): "10.9.9.8"}, "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E8")),
    ("ER node outside after a valid one", {(MGMT, "E7"): "10.0.20.7", (MGMT, "E9"): "10.9.9.9"},
     "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E9")),
    ("component outside both mgmt and extra subnets",
     {(NET, "H5"): "10.0.30.0/24", (NET, "I5"): "10.0.30.1", (MGMT, "E4"): "10.0.40.3"},
     "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E4")),
    ("test range start outside", {(MGMT, "E18"): "10.0.19.200"}, "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E18")),
    ("test range end outside", {(MGMT, "E19"): "10.0.22.5"}, "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E19")),
    # PLAN-NOT-IN-STORAGE-SUBNET
    ("storage IP outside storage subnet", {(HOSTS, "N4"): "10.0.29.12"}, "PLAN-NOT-IN-STORAGE-SUBNET",
     r(HOSTS, "N4")),
    # PLAN-GATEWAY-NOT-IN-SUBNET
    ("mgmt gateway outside", {(NET, "I4"): "10.0.99.1"}, "PLAN-GATEWAY-NOT-IN-SUBNET", r(NET, "I4")),
    ("extra mgmt gateway outside", {(NET, "H5"): "10.0.30.0/24", (NET, "I5"): "10.0.31.1"},
     "PLAN-GATEWAY-NOT-IN-SUBNET", r(NET, "I5")),
    ("storage gateway outside", {(NET, "I6"): "10.0.20.1"}, "PLAN-GATEWAY-NOT-IN-SUBNET", r(NET, "I6")),
    ("backup gateway outside", {(NET, "H7"): "10.0.40.0/24", (NET, "I7"): "10.0.41.1"},
     "PLAN-GATEWAY-NOT-IN-SUBNET", r(NET, "I7")),
    ("business gateway outside", {(NET, "I9"): "10.1.99.1"}, "PLAN-GATEWAY-NOT-IN-SUBNET", r(NET, "I9")),
    ("gateway is the network address", {(NET, "I4"): "10.0.20.0"}, "PLAN-GATEWAY-NOT-IN-SUBNET", r(NET, "I4")),
    ("gateway is the broadcast address", {(NET, "I6"): "10.0.21.255"}, "PLAN-GATEWAY-NOT-IN-SUBNET",
     r(NET, "I6")),
    # PLAN-DUPLICATE-ADDRESS (reported on the later cell)
    ("two hosts share a mgmt IP", lambda b: {(HOSTS, "I4"): str(b.hosts[0].mgmt_ip)},
     "PLAN-DUPLICATE-ADDRESS", r(HOSTS, "I4")),
    ("two hosts share a storage IP", lambda b: {(HOSTS, "N6"): str(b.hosts[1].storage_ip)},
     "PLAN-DUPLICATE-ADDRESS", r(HOSTS, "N6")),
    ("two hosts share a BMC IP", lambda b: {(HOSTS, "E5"): str(b.hosts[0].bmc_ip)},
     "PLAN-DUPLICATE-ADDRESS", r(HOSTS, "E5")),
    ("VIP equals a host mgmt IP", lambda b: {(HOSTS, "I19"): str(b.hosts[2].mgmt_ip)},
     "PLAN-DUPLICATE-ADDRESS", r(HOSTS, "I19")),
    ("CloudTower IP equals the VIP", lambda b: {(MGMT, "E3"): str(b.vip)},
     "PLAN-DUPLICATE-ADDRESS", r(MGMT, "E3")),
    ("OBS IP equals the CloudTower IP", lambda b: {(MGMT, "E4"): str(b.cloudtower.ip)},
     "PLAN-DUPLICATE-ADDRESS", r(MGMT, "E4")),
    ("ER VIP equals the backup IP", lambda b: {(MGMT, "E6"): str(b.components["backup"].ip)},
     "PLAN-DUPLICATE-ADDRESS", r(MGMT, "E6")),
    ("ER node equals the ER VIP", {(MGMT, "E6"): "10.0.20.6", (MGMT, "E7"): "10.0.20.6"},
     "PLAN-DUPLICATE-ADDRESS", r(MGMT, "E7")),
    ("host IP equals the mgmt gateway", lambda b: {(HOSTS, "I5"): str(b.mgmt.gateway)},
     "PLAN-DUPLICATE-ADDRESS", r(HOSTS, "I5")),
    # PLAN-ADDRESS-RESERVED
    ("host mgmt IP is the broadcast address", {(HOSTS, "I4"): "10.0.20.255"}, "PLAN-ADDRESS-RESERVED",
     r(HOSTS, "I4")),
    ("host storage IP is the network address", {(HOSTS, "N4"): "10.0.21.0"}, "PLAN-ADDRESS-RESERVED",
     r(HOSTS, "N4")),
    # PLAN-TEST-RANGE / PLAN-TEST-RANGE-OVERLAP
    ("test range start only", {(MGMT, "E19"): None}, "PLAN-TEST-RANGE", r(MGMT, "E19")),
    ("test range end only", {(MGMT, "E18"): None}, "PLAN-TEST-RANGE", r(MGMT, "E18")),
    ("test range reversed", {(MGMT, "E18"): "10.0.20.239", (MGMT, "E19"): "10.0.20.231"},
     "PLAN-TEST-RANGE", r(MGMT, "E19")),
    ("test range includes the broadcast address", {(MGMT, "E19"): "10.0.20.255"}, "PLAN-TEST-RANGE",
     r(MGMT, "E19")),
    ("test range starts at the network address", {(MGMT, "E18"): "10.0.20.0"}, "PLAN-TEST-RANGE",
     r(MGMT, "E18")),
    ("test range covers host IPs", lambda b: {(MGMT, "E18"): str(b.hosts[0].mgmt_ip)},
     "PLAN-TEST-RANGE-OVERLAP", r(MGMT, "E18")),
    ("test range covers the gateway", {(MGMT, "E18"): "10.0.20.1", (MGMT, "E19"): "10.0.20.1"},
     "PLAN-TEST-RANGE-OVERLAP", r(MGMT, "E18")),
    # PLAN-VLAN-RANGE / PLAN-VLAN-DUPLICATE
    ("mgmt VLAN above 4094", {(NET, "F4"): 5000}, "PLAN-VLAN-RANGE", r(NET, "F4")),
    ("business VLAN negative", {(NET, "F9"): -1}, "PLAN-VLAN-RANGE", r(NET, "F9")),
    ("two business networks share a VLAN", {(NET, "F10"): 1120}, "PLAN-VLAN-DUPLICATE", r(NET, "F10")),
    ("two business networks both untagged", {(NET, "F8"): 0, (NET, "F9"): 0}, "PLAN-VLAN-DUPLICATE",
     r(NET, "F9")),
    ("mgmt and extra mgmt share a VLAN", {(NET, "F4"): 100, (NET, "F5"): 100}, "PLAN-VLAN-DUPLICATE",
     r(NET, "F5")),
    ("shared arch: business VLAN equals mgmt VLAN", {(HOSTS, "Q20"): SHARED, (NET, "C8"): "vDS-Mgmt",
                                                     (NET, "F4"): 1121},
     "PLAN-VLAN-DUPLICATE", r(NET, "F9")),
    # PLAN-BUSINESS-NAME-DUPLICATE
    ("business names repeat", {(NET, "D10"): "VLAN-1120"}, "PLAN-BUSINESS-NAME-DUPLICATE", r(NET, "D10")),
    # PLAN-HOSTNAME-INVALID / PLAN-HOSTNAME-DUPLICATE
    ("hostname with underscore", {(HOSTS, "H4"): "demo_node_02"}, "PLAN-HOSTNAME-INVALID", r(HOSTS, "H4")),
    ("hostname ending with hyphen", {(HOSTS, "H5"): "demo-node-"}, "PLAN-HOSTNAME-INVALID", r(HOSTS, "H5")),
    ("hostname label over 63 chars", {(HOSTS, "H6"): "n" * 64}, "PLAN-HOSTNAME-INVALID", r(HOSTS, "H6")),
    ("hostnames equal ignoring case", lambda b: {(HOSTS, "H5"): b.hosts[0].hostname.upper()},
     "PLAN-HOSTNAME-DUPLICATE", r(HOSTS, "H5")),
    # PLAN-HOST-COUNT
    ("only two hosts", {(HOSTS, "I5"): None, (HOSTS, "I6"): None}, "PLAN-HOST-COUNT", r(HOSTS, "I3")),
    # PLAN-CLUSTER-NAME-MISMATCH
    ("hosts sheet names another cluster", {(HOSTS, "C3"): "OTHER-Cls"}, "PLAN-CLUSTER-NAME-MISMATCH",
     r(HOSTS, "C3")),
    ("mgmt sheet names another cluster", {(MGMT, "N3"): "OTHER-Cls"}, "PLAN-CLUSTER-NAME-MISMATCH",
     r(MGMT, "N3")),
    # PLAN-DNS-NOT-IP / PLAN-NTP-INVALID
    ("DNS is a name", {(MGMT, "E26"): "dns.example.com"}, "PLAN-DNS-NOT-IP", r(MGMT, "E26")),
    ("only the second DNS cell, a name", {(MGMT, "E25"): None, (MGMT, "E26"): "dns.example.com"},
     "PLAN-DNS-NOT-IP", r(MGMT, "E26")),
    ("NTP is neither IP nor hostname", {(MGMT, "E23"): "ntp_server!"}, "PLAN-NTP-INVALID", r(MGMT, "E23")),
    ("NTP looks like a bad IP", {(MGMT, "E22"): "10.0.0.300"}, "PLAN-NTP-INVALID", r(MGMT, "E22")),
    ("NTP in the third cell only, invalid", {(MGMT, "E22"): None, (MGMT, "E23"): None, (MGMT, "E24"): "-ntp"},
     "PLAN-NTP-INVALID", r(MGMT, "E24")),
    # PLAN-BOND-MODE
    ("mgmt bond unknown", {(NET, "K4"): "lacp"}, "PLAN-BOND-MODE", r(NET, "K4")),
    ("storage bond unknown", {(NET, "K6"): "802.3ad"}, "PLAN-BOND-MODE", r(NET, "K6")),
    ("backup bond unknown", {(NET, "K7"): "round-robin"}, "PLAN-BOND-MODE", r(NET, "K7")),
    ("business bond unknown", {(NET, "K8"): "Balance-SLB"}, "PLAN-BOND-MODE", r(NET, "K8")),
    # PLAN-NICS-EMPTY
    ("mgmt NICs blank", {(NET, "J4"): None}, "PLAN-NICS-EMPTY", r(NET, "J4")),
    ("storage NICs only separators", {(NET, "J6"): " , "}, "PLAN-NICS-EMPTY", r(NET, "J6")),
    ("business NICs blank (separate)", {(NET, "J8"): None}, "PLAN-NICS-EMPTY", r(NET, "J8")),
    ("backup used without NICs", {(NET, "H7"): "10.0.40.0/24", (NET, "J7"): None}, "PLAN-NICS-EMPTY",
     r(NET, "J7")),
    # PLAN-NIC-SHARED
    ("storage reuses a mgmt NIC", lambda b: {(NET, "J6"): f"{b.mgmt.nics[0]},ens999"}, "PLAN-NIC-SHARED",
     r(NET, "J6")),
    ("backup reuses a storage NIC", lambda b: {(NET, "J7"): b.storage.nics[1]}, "PLAN-NIC-SHARED", r(NET, "J7")),
    ("business reuses a mgmt NIC", lambda b: {(NET, "J8"): f"ens900,{b.mgmt.nics[1]}"}, "PLAN-NIC-SHARED",
     r(NET, "J8")),
    ("NIC repeated within one list", {(NET, "J4"): "ens224,ens192,ens224"}, "PLAN-NIC-SHARED", r(NET, "J4")),
    # network architecture / feature / storage architecture
    ("converged network arch", {(HOSTS, "Q20"): "三网融合"}, "PLAN-NETWORK-ARCH-UNSUPPORTED", r(HOSTS, "Q20")),
    ("unknown network arch", {(HOSTS, "Q20"): "二网独立"}, "PLAN-VALUE-CHOICE", r(HOSTS, "Q20")),
    ("unknown storage arch", {(HOSTS, "Q19"): "全闪-分层"}, "PLAN-VALUE-CHOICE", r(HOSTS, "Q19")),
    ("unknown feature", {(HOSTS, "O19"): "Turbo"}, "PLAN-VALUE-CHOICE", r(HOSTS, "O19")),
    ("RDMA feature", {(HOSTS, "O19"): "RDMA"}, "PLAN-FEATURE-RDMA-UNSUPPORTED", r(HOSTS, "O19")),
    ("RDMA+Boost feature", {(HOSTS, "O19"): "RDMA+Boost"}, "PLAN-FEATURE-RDMA-UNSUPPORTED", r(HOSTS, "O19")),
    # PLAN-PASSWORD-EMPTY
    ("CloudTower web password blank", {(MGMT, "G3"): None}, "PLAN-PASSWORD-EMPTY", r(MGMT, "G3")),
    ("CloudTower SSH password blank", {(MGMT, "I3"): None}, "PLAN-PASSWORD-EMPTY", r(MGMT, "I3")),
    ("CloudTower system password N/A", {(MGMT, "K3"): "N/A"}, "PLAN-PASSWORD-EMPTY", r(MGMT, "K3")),
    ("OBS SSH password blank", {(MGMT, "I4"): None}, "PLAN-PASSWORD-EMPTY", r(MGMT, "I4")),
    ("OBS system password blank", {(MGMT, "K4"): None}, "PLAN-PASSWORD-EMPTY", r(MGMT, "K4")),
    ("backup SSH password blank", {(MGMT, "I5"): None}, "PLAN-PASSWORD-EMPTY", r(MGMT, "I5")),
    ("backup system password blank", {(MGMT, "K5"): None}, "PLAN-PASSWORD-EMPTY", r(MGMT, "K5")),
    # PLAN-PASSWORD-WEAK (warnings)
    ("host SSH password too short", {(HOSTS, "K4"): "Ab1!xy"}, "PLAN-PASSWORD-WEAK", r(HOSTS, "K4")),
    ("host admin password one class", {(HOSTS, "M5"): WEAK_MARKER}, "PLAN-PASSWORD-WEAK", r(HOSTS, "M5")),
    ("BMC password is a default", {(HOSTS, "G3"): "ADMIN"}, "PLAN-PASSWORD-WEAK", r(HOSTS, "G3")),
    ("BMC password blank: default used", {(HOSTS, "G6"): None}, "PLAN-PASSWORD-WEAK", r(HOSTS, "G6")),
    ("cluster admin password default", {(HOSTS, "M19"): "HC!r0cks"}, "PLAN-PASSWORD-WEAK", r(HOSTS, "M19")),
    ("cluster admin password blank", {(HOSTS, "M19"): None}, "PLAN-PASSWORD-WEAK", r(HOSTS, "M19")),
    ("CloudTower web password two classes", {(MGMT, "G3"): "Passwordpassword"}, "PLAN-PASSWORD-WEAK",
     r(MGMT, "G3")),
    ("OBS system password a default", {(MGMT, "K4"): "P@ssw0rd!123"}, "PLAN-PASSWORD-WEAK", r(MGMT, "K4")),
]

WARNING_CODES = {"PLAN-BUSINESS-VDS-IGNORED", "PLAN-PASSWORD-WEAK"}


@pytest.mark.parametrize("desc,overrides,code,ref", [pytest.param(*c, id=c[0]) for c in CASES])
def test_rule(build, base, desc, overrides, code, ref):
    _, findings = build(resolve(overrides, base))
    hits = [f for f in findings if f.code == code and f.ref == ref]
    assert hits, f"{desc}: expected {code} at {ref}; got\n{show(findings)}"
    assert all(f.severity == ("warning" if code in WARNING_CODES else "error") for f in hits)


def test_every_rule_code_is_exercised():
    codes = {c[2] for c in CASES}
    assert codes >= {
        "PLAN-REQUIRED", "PLAN-BUSINESS-VDS-IGNORED", "PLAN-NOT-IN-MGMT-SUBNET", "PLAN-NOT-IN-STORAGE-SUBNET",
        "PLAN-GATEWAY-NOT-IN-SUBNET", "PLAN-DUPLICATE-ADDRESS", "PLAN-TEST-RANGE-OVERLAP", "PLAN-TEST-RANGE",
        "PLAN-VLAN-RANGE", "PLAN-VLAN-DUPLICATE", "PLAN-BUSINESS-NAME-DUPLICATE", "PLAN-HOSTNAME-INVALID",
        "PLAN-HOSTNAME-DUPLICATE", "PLAN-HOST-COUNT", "PLAN-CLUSTER-NAME-MISMATCH", "PLAN-DNS-NOT-IP",
        "PLAN-NTP-INVALID", "PLAN-BOND-MODE", "PLAN-NICS-EMPTY", "PLAN-NIC-SHARED",
        "PLAN-NETWORK-ARCH-UNSUPPORTED", "PLAN-FEATURE-RDMA-UNSUPPORTED", "PLAN-VALUE-CHOICE",
        "PLAN-PASSWORD-EMPTY", "PLAN-PASSWORD-WEAK",
    }


def test_every_finding_is_well_formed(build, base):
    for _, overrides, _, _ in CASES:
        _, findings = build(resolve(overrides, base))
        for f in findings:
            assert f.severity in ("error", "warning")
            assert f.code.startswith("PLAN-")
            assert "!" in f.ref and f.ref.split("!")[0] in L.ALL_SHEETS
            assert f.message_zh and f.message_en and any("\u4e00" <= ch <= "\u9fff" for ch in f.message_zh)
            assert " / " in f.fix and "\n" not in f.fix


# --- messages name the values and the other cell involved ------------------------------------

@pytest.mark.parametrize("overrides,code,ref,mentions", [
    pytest.param(lambda b: {(HOSTS, "I4"): str(b.hosts[0].mgmt_ip)}, "PLAN-DUPLICATE-ADDRESS", r(HOSTS, "I4"),
                 lambda b: [str(b.hosts[0].mgmt_ip), r(HOSTS, "I3")], id="duplicate names the first cell"),
    pytest.param(lambda b: {(MGMT, "E3"): str(b.vip)}, "PLAN-DUPLICATE-ADDRESS", r(MGMT, "E3"),
                 lambda b: [str(b.vip), r(HOSTS, "I19")], id="duplicate across sheets"),
    pytest.param(lambda b: {(MGMT, "E18"): str(b.hosts[0].mgmt_ip)}, "PLAN-TEST-RANGE-OVERLAP", r(MGMT, "E18"),
                 lambda b: [str(b.hosts[0].mgmt_ip), r(HOSTS, "I3")], id="overlap names the used cell"),
    pytest.param({(HOSTS, "I4"): "10.9.9.12"}, "PLAN-NOT-IN-MGMT-SUBNET", r(HOSTS, "I4"),
                 lambda b: ["10.9.9.12", str(b.mgmt.subnet), r(NET, "H4")], id="subnet named"),
    pytest.param({(NET, "H5"): "10.0.30.0/24", (NET, "I5"): "10.0.30.1", (MGMT, "E4"): "10.0.40.3"},
                 "PLAN-NOT-IN-MGMT-SUBNET", r(MGMT, "E4"),
                 lambda b: ["10.0.40.3", r(NET, "H4"), r(NET, "H5")], id="both allowed subnets named"),
    pytest.param({(NET, "F10"): 1120}, "PLAN-VLAN-DUPLICATE", r(NET, "F10"),
                 lambda b: ["1120", r(NET, "F8")], id="vlan names the first cell"),
    pytest.param(lambda b: {(NET, "J6"): f"{b.mgmt.nics[0]},ens999"}, "PLAN-NIC-SHARED", r(NET, "J6"),
                 lambda b: [b.mgmt.nics[0], r(NET, "J4")], id="nic names the first cell"),
    pytest.param(lambda b: {(HOSTS, "H5"): b.hosts[0].hostname.upper()}, "PLAN-HOSTNAME-DUPLICATE",
                 r(HOSTS, "H5"), lambda b: [r(HOSTS, "H3")], id="hostname names the first cell"),
    pytest.param({(MGMT, "N3"): "OTHER-Cls"}, "PLAN-CLUSTER-NAME-MISMATCH", r(MGMT, "N3"),
                 lambda b: ["OTHER-Cls", b.cluster_name, r(NET, "B3")], id="cluster names both"),
    pytest.param({(HOSTS, "Q20"): "三网融合"}, "PLAN-NETWORK-ARCH-UNSUPPORTED", r(HOSTS, "Q20"),
                 lambda b: ["三网独立", "存储独立", r(NET, "B23")], id="converged names the supported ones"),
    pytest.param({(HOSTS, "O19"): "RDMA"}, "PLAN-FEATURE-RDMA-UNSUPPORTED", r(HOSTS, "O19"),
                 lambda b: ["RDMA", r(HOSTS, "B29")], id="rdma cites the note"),
    pytest.param({(HOSTS, "Q19"): "全闪-分层"}, "PLAN-VALUE-CHOICE", r(HOSTS, "Q19"),
                 lambda b: ["全闪-分层", *L.STORAGE_ARCHS], id="choice lists the drop-down"),
    pytest.param({(NET, "K4"): "lacp"}, "PLAN-BOND-MODE", r(NET, "K4"),
                 lambda b: ["lacp", *L.BOND_MODES], id="bond lists the modes"),
])
def test_message_is_specific(build, base, overrides, code, ref, mentions):
    _, findings = build(resolve(overrides, base))
    hits = [f for f in findings if f.code == code and f.ref == ref]
    assert hits, show(findings)
    f = hits[0]
    for text in resolve(mentions, base):
        assert text in f.message_en and text in f.message_zh, (text, f)


# --- no false alarms -----------------------------------------------------------------------

NO_ERROR_CASES = [
    ("extra mgmt name alone is not 'used'", {(NET, "D5"): "Infra-network"}),
    ("components and test range on the used extra network",
     {(NET, "H5"): "10.0.30.0/24", (NET, "I5"): "10.0.30.1", (MGMT, "E3"): "10.0.30.2", (MGMT, "E4"): "10.0.30.3",
      (MGMT, "E18"): "10.0.30.200", (MGMT, "E19"): "10.0.30.210"}),
    ("mgmt and extra mgmt both VLAN 0", {(NET, "F4"): 0, (NET, "F5"): 0, (NET, "H5"): "10.0.30.0/24"}),
    ("mgmt and storage share a VLAN id on different VDSes", {(NET, "F4"): 30, (NET, "F6"): 30}),
    ("separate arch: business VLAN equal to mgmt VLAN", {(NET, "F4"): 1120}),
    ("shared arch: business NICs/bond/VDS blank",
     {(HOSTS, "Q20"): SHARED, (NET, "C8"): None, (NET, "J8"): None, (NET, "K8"): None}),
    ("shared arch: J8 overlapping mgmt NICs is ignored",
     {(HOSTS, "Q20"): SHARED, (NET, "C8"): "vDS-Mgmt", (NET, "J8"): "ens224"}),
    ("OBS/backup web passwords N/A", {(MGMT, "G4"): "N/A", (MGMT, "G5"): "N/A"}),
    ("OBS without IP needs no passwords", {(MGMT, "E4"): None, (MGMT, "I4"): None, (MGMT, "K4"): None}),
    ("blank test range", {(MGMT, "E18"): None, (MGMT, "E19"): None}),
    ("blank cluster name on the mgmt sheet", {(MGMT, "N3"): None}),
    ("NTP host name and IP", {(MGMT, "E22"): "ntp1.example.com", (MGMT, "E23"): "10.0.0.3"}),
    ("backup NICs without a backup subnet", {(NET, "J7"): "ens162"}),
]


@pytest.mark.parametrize("desc,overrides", [pytest.param(*c, id=c[0]) for c in NO_ERROR_CASES])
def test_no_error(build, desc, overrides):
    _, findings = build(overrides)
    assert errors(findings) == [], f"{desc}:\n{show(findings)}"


def test_blank_hosts_cluster_name_is_a_warning(build):
    _, findings = build({(HOSTS, "C3"): None})
    hits = [f for f in findings if f.ref == r(HOSTS, "C3")]
    assert [(f.code, f.severity) for f in hits] == [("PLAN-CLUSTER-NAME-MISMATCH", "warning")]


def test_shared_arch_same_business_vds_is_silent(build):
    _, findings = build({(HOSTS, "Q20"): SHARED, (NET, "C8"): "vDS-Mgmt"})
    assert not [f for f in findings if f.code == "PLAN-BUSINESS-VDS-IGNORED"]


def test_no_business_networks_needs_no_business_vds(build):
    _, findings = build(business=0)
    assert not [f for f in findings if f.ref.startswith(r(NET, "C8")) or f.code == "PLAN-NICS-EMPTY"]


def test_weak_passwords_are_reported_once_per_cell(build):
    _, findings = build({(HOSTS, "K4"): WEAK_MARKER, (HOSTS, "M4"): WEAK_MARKER})
    weak = [f.ref for f in findings if f.code == "PLAN-PASSWORD-WEAK"]
    assert sorted(weak) == sorted({*weak}) and {r(HOSTS, "K4"), r(HOSTS, "M4")} <= set(weak)


# --- parser findings are not reported twice -------------------------------------------------

@pytest.mark.parametrize("cell,parse_code", [
    ((HOSTS, "I4"), "PLAN-IP-SYNTAX"), ((NET, "H4"), "PLAN-CIDR-SYNTAX"), ((MGMT, "E19"), "PLAN-IP-SYNTAX"),
    ((MGMT, "E3"), "PLAN-IP-SYNTAX"), ((NET, "F9"), "PLAN-INT-SYNTAX"),
])
def test_invalid_cells_are_not_reported_again(build, cell, parse_code):
    plan, findings = build({cell: "not-valid-10.0.0.999"})
    ref = r(*cell)
    assert ref in plan.invalid
    assert [f.code for f in findings if f.ref == ref] == [parse_code]


# --- ordering and secrecy --------------------------------------------------------------------

def test_findings_sorted_errors_first_then_workbook_order(build):
    _, findings = build({(MGMT, "E4"): "10.9.9.3", (HOSTS, "I4"): "10.9.9.12", (NET, "K4"): "lacp",
                         (HOSTS, "M19"): WEAK_MARKER})
    sev = [f.is_error for f in findings]
    assert sev == sorted(sev, reverse=True)
    errs = [f.ref for f in findings if f.is_error]
    assert errs.index(r(NET, "K4")) < errs.index(r(HOSTS, "I4")) < errs.index(r(MGMT, "E4"))


def _assert_no_secret(findings, secrets):
    for f in findings:
        text = " ".join((f.message_zh, f.message_en, f.fix))
        leaked = [s for s in secrets if len(s) >= 4 and s in text]
        assert not leaked, (f, leaked)


def test_passwords_never_appear_in_findings(build):
    secret_cells = {(HOSTS, c): WEAK_MARKER for c in ("G3", "K4", "M5", "M19")}
    secret_cells.update({(MGMT, "G3"): WEAK_MARKER + "A", (MGMT, "I4"): "Qz7#", (MGMT, "K5"): WEAK_MARKER,
                         (HOSTS, "K6"): " Spaced#Pass1 "})
    plan, findings = build(secret_cells)
    assert len([f for f in findings if f.code == "PLAN-PASSWORD-WEAK"]) >= 7
    _assert_no_secret(findings, {WEAK_MARKER, "Qz7#", "Spaced#Pass1", *plan.secrets()})


def test_template_passwords_never_appear_in_findings(template_path):
    plan, findings = check(template_path)
    assert findings
    _assert_no_secret(findings, plan.secrets())


def test_is_hostname():
    assert is_hostname("BJ-SMTX-Prod-Node-01") and is_hostname("a") and is_hostname("node1.example.com")
    assert not is_hostname("-a") and not is_hostname("a-") and not is_hostname("a_b") and not is_hostname("")
    assert not is_hostname("a" * 64) and is_hostname("a" * 63)
    assert not is_hostname(".".join(["a" * 63] * 4) + ".com")       # > 253
