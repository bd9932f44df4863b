"""Simulated SMTX OS deployment API (guide §01 scan, §02 init cluster) over real HTTP on loopback."""
from __future__ import annotations

import copy
import dataclasses
import json
import time

import httpx
import pytest

from clients.redact import MASK
from mocks import DISK_LAYOUTS, Simulator
from mocks.testing import REPO, load_plan, plan_path, ssl_context

EXAMPLES = REPO.parent / "shared" / "reference" / "examples"


def example(name: str) -> dict:
    path = EXAMPLES / name
    if not path.is_file():
        pytest.skip(f"captured example {name} not available at {EXAMPLES}")
    return json.loads(path.read_text(encoding="utf-8"))
TOKEN = "e79b85fc18b7402fbcc0391fe8d7d24c"
SCAN = "/api/v2/deployment/host"
CLUSTER = "/api/v2/deployment/cluster"
STATUS = "/api/v2/deployment/host/deploy_status"
VERIFY = "/api/v2/deployment/deploy_verify"
H = {"x-smartx-token": TOKEN, "content-type": "application/json"}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    p = plan_path(tmp_path_factory.mktemp("simplan"), hosts=4)
    if p is None:
        pytest.skip("no plan: neither plan.example nor the vendor template is available")
    return load_plan(p)


_CLIENTS: dict[int, httpx.Client] = {}


def client(sim) -> httpx.Client:
    """One keep-alive client per simulator, trusting its CA (creating a TLS context per call is slow)."""
    c = _CLIENTS.get(id(sim))
    if c is None:
        c = _CLIENTS[id(sim)] = httpx.Client(verify=ssl_context(sim), timeout=10)
    return c


@pytest.fixture
def make_sim(monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    sims = []

    def make(plan, **kw):
        kw.setdefault("time_scale", 0.001)
        s = Simulator.from_plan(plan, **kw).start()
        sims.append(s)
        return s

    yield make
    for s in sims:
        c = _CLIENTS.pop(id(s), None)
        if c is not None:
            c.close()
        s.close()


@pytest.fixture
def sim(plan, make_sim):
    return make_sim(plan)


def ips(plan) -> list[str]:
    return [str(h.mgmt_ip) for h in plan.hosts]


def get(sim, ip, path, *, https=False, headers=H, **kw) -> httpx.Response:
    if https:
        return client(sim).get(sim.url(ip, 443) + path, headers=headers, **kw)
    return client(sim).get(sim.url(ip, 80) + path, headers={**headers, "host": ip}, **kw)


def post(sim, ip, path, body, headers=H) -> httpx.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client(sim).post(sim.url(ip, 80) + path, content=data, headers={**headers, "host": ip})


def scans(sim, plan) -> dict[str, dict]:
    return {ip: get(sim, ip, SCAN).json()["data"] for ip in ips(plan)}


def build_payload(plan, scan: dict[str, dict]) -> dict:
    """A deploy body built from scan data, modelled on examples/deploy-cluster-payload-converged-network.json."""
    order = ips(plan)
    uuid = {ip: scan[ip]["host_uuid"] for ip in order}

    def vds(net):
        return {"name": net.vds, "bond_mode": net.bond_mode,
                "hosts_associated": [{"host_uuid": uuid[ip], "nics_associated": list(net.nics)} for ip in order]}

    def service(attr, port, net):
        return [{"host_uuid": uuid[str(h.mgmt_ip)], "service_interface_name": port,
                 "service_interface_ip": str(getattr(h, attr)), "netmask": net.netmask} for h in plan.hosts]

    hosts = []
    for i, h in enumerate(plan.hosts):
        s = scan[str(h.mgmt_ip)]
        nic = next(n for n in s["ifaces"] if n["ipv4"] == str(h.mgmt_ip))
        disks = [d for d in s["disks"] if d["function"] != "boot"]
        hosts.append({
            "host_ip": f"{nic['ipv6']}%{nic['name']}", "host_uuid": s["host_uuid"], "hostname": h.hostname,
            "disk_data_with_cache": not any(d["function"] == "cache" for d in disks),
            "host_passwords": [{"user": "root", "password": "c+G6KvJYsKyQyY4U"},
                               {"user": "smartx", "password": "c+G6KvJYsKyQyY4U"}],
            "tags": [], "ifaces": [{"ip": str(h.mgmt_ip), "function": "mgt"},
                                   {"ip": str(h.storage_ip), "function": "storage"}],
            "disks": disks, "is_master": i < plan.master_count, "with_faster_ssd_as_cache": True})
    return {
        "platform": "kvm", "cluster_name": plan.cluster_name, "dns_server": list(plan.dns),
        "vdses": [vds(plan.mgmt), vds(plan.storage)],
        "networks": [
            {"name": "mgt-network", "attached_vds": plan.mgmt.vds, "network_type": "mgt",
             "network_config": {"service": service("mgmt_ip", "port-mgt", plan.mgmt),
                                "route": [{"gateway": str(plan.mgmt.gateway)}]},
             "mode": {"type": "vlan_access", "network_identities": [plan.mgmt.vlan_id or 0]}},
            {"name": "storage-network", "attached_vds": plan.storage.vds, "network_type": "storage",
             "network_config": {"service": service("storage_ip", "port-storage", plan.storage)},
             "mode": {"type": "vlan_access", "network_identities": [plan.storage.vlan_id or 0]}},
        ],
        "hosts": hosts,
        "ntp": {"mode": "internal", "ntp_server": None, "current_time": "2026-01-04T07:49:20.978Z"},
        "vhost_enabled": plan.vhost_enabled, "rdma_enabled": False,
    }


def assert_error(r: httpx.Response, status: int, *needles: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"data", "ec", "error"} and body["ec"] != "EOK" and body["data"] is None
    for n in needles:
        assert n in body["error"]["msg"], body["error"]["msg"]
    return body


# --------------------------------------------------------------------------- auth
def test_token_required_on_every_route(sim, plan):
    ip = ips(plan)[0]
    for path in (SCAN, CLUSTER, STATUS + f"?host_ip={ip}", VERIFY):
        assert_error(get(sim, ip, path, headers={}), 401)
        assert_error(get(sim, ip, path, headers={"x-smartx-token": "0" * 32}), 401)
    assert_error(post(sim, ip, CLUSTER, {}, headers={"x-smartx-token": "nope"}), 401)
    assert get(sim, ip, SCAN).status_code == 200


def test_custom_token(plan, make_sim):
    s = make_sim(plan, deploy_token="t0ken")
    ip = ips(plan)[0]
    assert get(s, ip, SCAN).status_code == 401
    assert get(s, ip, SCAN, headers={"x-smartx-token": "t0ken"}).status_code == 200


# --------------------------------------------------------------------------- §01 scan
def _same_shape(ours, theirs, where="data"):
    """Same keys (recursively for dicts) and same JSON types where the example is not null."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), where
        assert set(ours) == set(theirs), f"{where}: {sorted(set(ours) ^ set(theirs))}"
        for k in theirs:
            _same_shape(ours[k], theirs[k], f"{where}.{k}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), where
        for i, item in enumerate(ours):
            if theirs:
                _same_shape(item, theirs[0], f"{where}[{i}]")
    elif theirs is not None and ours is not None:
        assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} vs {type(theirs).__name__}"


def test_scan_host_shape_matches_captured_example(sim, plan):
    captured = example("scan-host-response.json")
    body = get(sim, ips(plan)[0], SCAN, https=True).json()
    assert set(body) == set(captured) and body["ec"] == "EOK" and body["error"] == {}
    _same_shape(body["data"], captured["data"])
    # iface / disk entries compared one by one (including nullable fields' types)
    iface_keys = set(captured["data"]["ifaces"][0])
    for n in body["data"]["ifaces"]:
        assert set(n) == iface_keys
        assert n["ipv6"] is None or isinstance(n["ipv6"], str)
        assert isinstance(n["hwaddr"], str) and len(n["hwaddr"].split(":")) == 6
    for d in body["data"]["disks"]:
        assert set(d) == set(captured["data"]["disks"][0])


def test_scan_cluster_shape_matches_captured_example(sim, plan):
    captured = example("scan-cluster-response.json")
    body = get(sim, ips(plan)[1], CLUSTER).json()
    assert set(body) == set(captured) and set(body["data"]) == {"hosts"}
    found = body["data"]["hosts"]
    assert {h["host_uuid"] for h in found} == {s["host_uuid"] for s in scans(sim, plan).values()}
    for h in found:
        _same_shape(h, captured["data"]["hosts"][0], "hosts[]")
        addr, _, scope = h["host_ip"].partition("%")
        assert addr.startswith("fe80::") and scope in plan.storage.nics


def test_scan_cluster_empty_with_lacp(plan, make_sim):
    lacp = dataclasses.replace(plan, mgmt=dataclasses.replace(plan.mgmt, bond_mode="balance-tcp"))
    s = make_sim(lacp)
    r = get(s, ips(plan)[0], CLUSTER)
    assert r.status_code == 200 and r.json() == {"data": {"hosts": []}, "ec": "EOK", "error": {}}


def test_scan_reports_planned_nics_before_deployment(sim, plan):
    planned = set(plan.mgmt.nics) | set(plan.storage.nics) | set(plan.backup.nics) | set(plan.business_nics)
    all_macs, uuids = [], set()
    for ip, s in scans(sim, plan).items():
        nics = {n["name"]: n for n in s["ifaces"]}
        assert planned <= set(nics)
        extra = set(nics) - planned
        assert len(extra) >= 2
        for name in planned:
            n = nics[name]
            assert n["physical_link_up"] and n["running"] and n["ipv6"].startswith("fe80::") and n["speed"]
        for name in extra:
            assert not nics[name]["physical_link_up"] and nics[name]["ipv6"] is None and nics[name]["speed"] is None
        with_ip = [n["name"] for n in s["ifaces"] if n["ipv4"]]
        assert with_ip == [plan.mgmt.nics[0]] and nics[plan.mgmt.nics[0]]["ipv4"] == ip
        assert not any(n.startswith(("port-", "ovsbr-")) for n in nics)
        assert s["hostname"] == "localhost.localdomain" and s["host_ip"] == ip
        all_macs += [n["hwaddr"] for n in s["ifaces"]]
        uuids.add(s["host_uuid"])
    assert len(all_macs) == len(set(all_macs)) and len(uuids) == len(plan.hosts)


def test_scan_is_deterministic(plan, make_sim):
    a, b = make_sim(plan), make_sim(plan)
    ip = ips(plan)[2]
    assert get(a, ip, SCAN).json() == get(b, ip, SCAN).json()


def test_preset_hostnames(plan, make_sim):
    s = make_sim(plan, preset_hostnames=True)
    assert get(s, ips(plan)[0], SCAN).json()["data"]["hostname"] == plan.hosts[0].hostname


@pytest.mark.parametrize("layout, expect", [
    ("nvme+hdd", {"nvme0n1": ("cache", "SSD"), "nvme0n2": ("cache", "SSD"), "sdb": ("data", "HDD"),
                  "sdc": ("data", "HDD"), "sdd": ("data", "HDD"), "sde": ("data", "HDD")}),
    ("ssd-mixed-sizes", {"sdb": ("data", "SSD"), "sdc": ("data", "SSD"), "sdd": ("data", "SSD"),
                         "sde": ("data", "SSD")}),
    ("nvme+ssd", {"nvme0n1": ("cache", "SSD"), "nvme0n2": ("cache", "SSD"), "sdb": ("data", "SSD"),
                  "sdc": ("data", "SSD")}),
])
def test_disk_layouts(plan, make_sim, layout, expect):
    s = make_sim(plan, disk_layout=layout)
    data = get(s, ips(plan)[0], SCAN).json()["data"]
    disks = {d["drive"]: d for d in data["disks"]}
    assert disks.pop("sda")["function"] == "boot"
    assert {k: (d["function"], d["type"]) for k, d in disks.items()} == expect
    assert data["is_all_flash"] == (layout != "nvme+hdd")
    if layout == "ssd-mixed-sizes":
        assert len({d["size"] for d in disks.values()}) == 2
    if layout == "nvme+hdd":
        assert disks["nvme0n1"]["size"] == 1759218604032


def test_default_layout_follows_storage_architecture(plan, make_sim):
    assert plan.storage_arch == "hybrid-tiered"
    assert make_sim(plan).world.disk_layout == "nvme+hdd"
    flat = dataclasses.replace(plan, storage_arch="allflash-flat")
    assert make_sim(flat).world.disk_layout == "ssd-mixed-sizes"
    with pytest.raises(ValueError):
        Simulator.from_plan(plan, disk_layout="floppy")
    assert set(DISK_LAYOUTS) == {"nvme+hdd", "ssd-mixed-sizes", "nvme+ssd"}


# --------------------------------------------------------------------------- §02 deploy: rejections
def _mutations(plan):
    first_uuid = lambda p: p["hosts"][0]["host_uuid"]  # noqa: E731
    ip1 = ips(plan)[1]

    def drop_top(p):
        del p["ntp"]

    def drop_host_field(p):
        del p["hosts"][2]["disks"]

    def unknown_nic(p):
        p["vdses"][0]["hosts_associated"][1]["nics_associated"] = [plan.mgmt.nics[0], "ens999"]

    def unknown_uuid(p):
        p["hosts"][0]["host_uuid"] = "00000000-0000-0000-0000-000000000000"

    def missing_disk(p):
        p["hosts"][0]["disks"].append(dict(p["hosts"][0]["disks"][-1], drive="sdz"))

    def boot_disk(p):
        p["hosts"][0]["disks"].append({"drive": "sda", "function": "data"})

    def bad_vds(p):
        p["networks"][1]["attached_vds"] = "no-such-vds"

    def four_masters(p):
        for h in p["hosts"]:
            h["is_master"] = True

    def no_storage_network(p):
        p["networks"] = p["networks"][:1]

    def missing_service(p):
        p["networks"][0]["network_config"]["service"].pop()

    def bad_bond(p):
        p["vdses"][0]["bond_mode"] = "round-robin"

    def wrong_mgt_ip(p):
        p["hosts"][1]["ifaces"][0]["ip"] = "10.0.20.250"

    return [
        ("missing top-level field", drop_top, ["ntp"]),
        ("missing host field", drop_host_field, ["hosts[2]", "disks"]),
        ("unknown NIC", unknown_nic, [ip1, "ens999"]),
        ("unknown host uuid", unknown_uuid, ["00000000-0000-0000-0000-000000000000"]),
        ("disk not on host", missing_disk, ["sdz"]),
        ("boot disk", boot_disk, ["sda", "boot"]),
        ("attached_vds", bad_vds, ["no-such-vds"]),
        ("master count", four_masters, ["3 or 5"]),
        ("storage network", no_storage_network, ["storage"]),
        ("service entry per host", missing_service, ["no service entry"]),
        ("bond mode", bad_bond, ["round-robin"]),
        ("mgt ip", wrong_mgt_ip, ["10.0.20.250"]),
    ], first_uuid


def test_bad_payloads_rejected_with_envelope(sim, plan):
    good = build_payload(plan, scans(sim, plan))
    ip = ips(plan)[0]
    cases, _ = _mutations(plan)
    for _name, mutate, needles in cases:
        p = copy.deepcopy(good)
        mutate(p)
        assert_error(post(sim, ip, CLUSTER, p), 400, *needles)
    assert_error(post(sim, ip, CLUSTER, b"{not json"), 400)
    assert_error(post(sim, ip, CLUSTER, b"[1, 2]"), 400)
    assert sim.count("POST", CLUSTER) == len(cases) + 2
    assert sim.count("POST", CLUSTER, status=200) == 0
    assert sim.deployment.operations == []
    assert get(sim, ip, VERIFY, https=True).json()["data"] == {"is_deployed": False, "platform": "kvm"}
    assert_error(get(sim, ip, STATUS, params={"host_ip": ip}), 400)          # nothing deployed yet
    assert_error(get(sim, ip, STATUS), 400, "host_ip")
    assert_error(get(sim, ip, STATUS, params={"host_ip": "192.0.2.1"}), 400, "192.0.2.1")


# --------------------------------------------------------------------------- §02 deploy: the happy path
def test_good_payload_deploys(sim, plan):
    ip = ips(plan)[0]
    payload = build_payload(plan, scans(sim, plan))
    sim.clock.time_scale = 1e6                 # simulated time stands still; the loop below moves it
    r = post(sim, ip, CLUSTER, payload)
    assert r.status_code == 200 and r.json() == {"data": {"msg": f"start deploying cluster {payload['cluster_name']} "
                                                          f"({len(payload['hosts'])} hosts)"}, "ec": "EOK", "error": {}}
    host_ip = payload["hosts"][0]["host_ip"]                               # the guide: the IP sent in the payload
    seen, final = [], None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = get(sim, ip, STATUS, params={"host_ip": host_ip}).json()
        data = body.get("data") or {}
        if data.get("state") != "running":
            final = body
            break
        assert set(data) == {"current_stage", "msg", "stage_info", "state", "total_stages"}
        seen.append((data["current_stage"], data["stage_info"]))
        sim.clock.advance(20)                  # shorter than any stage: each one is seen
    assert final is not None, "deployment never finished"
    assert seen and seen[0] == (1, "prepare_network_and_config_file")
    stages = [s for s, _ in seen]
    assert stages == sorted(stages) and len(set(stages)) >= 3
    assert final["data"]["state"] == "success"
    for other in ips(plan):
        assert get(sim, other, VERIFY, https=True).json() == {"data": {"is_deployed": True, "platform": "kvm"},
                                                             "ec": "EOK", "error": {}}
        # status is visible from any host, by mgmt IP too
        assert get(sim, other, STATUS, params={"host_ip": other}).json()["data"]["state"] == "success"
    assert sim.count("POST", CLUSTER, status=200) == 1

    after = get(sim, ips(plan)[1], SCAN).json()["data"]
    h = plan.hosts[1]
    nics = {n["name"]: n for n in after["ifaces"]}
    assert after["hostname"] == h.hostname
    assert nics["port-mgt"]["ipv4"] == str(h.mgmt_ip) and nics["port-storage"]["ipv4"] == str(h.storage_ip)
    assert nics["port-internal"]["ipv4"] == "169.254.169.254" and "ovsbr-internal" in nics
    assert len([n for n in nics if n.startswith("ovsbr-")]) == 3
    assert nics[plan.mgmt.nics[0]]["ipv4"] is None
    captured = example("scan-host-response.json")
    _same_shape(after, captured["data"])
    # the accepted request is logged with its body, passwords redacted
    rec = sim.requests.filter("POST", CLUSTER, status=200)[0]
    assert rec.body["cluster_name"] == plan.cluster_name
    assert {p["password"] for h in rec.body["hosts"] for p in h["host_passwords"]} == {MASK}
    assert "c+G6KvJYsKyQyY4U" not in json.dumps(sim.snapshot())


def test_double_deploy_rejected(sim, plan):
    ip = ips(plan)[0]
    payload = build_payload(plan, scans(sim, plan))
    assert post(sim, ip, CLUSTER, payload).status_code == 200
    assert_error(post(sim, ips(plan)[2], CLUSTER, payload), 409, "running")
    sim.advance(3600)
    assert get(sim, ip, VERIFY).json()["data"]["is_deployed"] is True
    assert_error(post(sim, ip, CLUSTER, payload), 409, "already deployed")
    assert sim.count("POST", CLUSTER, status=200) == 1
    assert sim.count("POST", CLUSTER, status=409) == 2


def test_suite_payload_builder_is_accepted(sim, plan):
    payloads = pytest.importorskip("clients.payloads")
    body = payloads.deploy_payload(plan, scans(sim, plan))
    r = post(sim, ips(plan)[0], CLUSTER, body)
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- long-operation faults
def test_operation_stuck(sim, plan):
    sim.faults.add({"method": "POST", "path": CLUSTER, "action": {"operation": "stuck"}})
    ip = ips(plan)[0]
    assert post(sim, ip, CLUSTER, build_payload(plan, scans(sim, plan))).status_code == 200
    sim.advance(24 * 3600)
    a = get(sim, ip, STATUS, params={"host_ip": ip}).json()["data"]
    sim.advance(24 * 3600)
    b = get(sim, ip, STATUS, params={"host_ip": ip}).json()["data"]
    assert a["state"] == b["state"] == "running" and a["current_stage"] == b["current_stage"] < a["total_stages"]
    assert get(sim, ip, VERIFY).json()["data"]["is_deployed"] is False
    assert sim.faults.rules[0].hits == 1


def test_operation_fail_then_redeploy(sim, plan):
    sim.faults.add({"method": "POST", "path": CLUSTER, "times": 1,
                    "action": {"operation": "fail", "msg": "format sdb failed", "stage": "format_disks_and_partitions"}})
    ip = ips(plan)[0]
    payload = build_payload(plan, scans(sim, plan))
    assert post(sim, ip, CLUSTER, payload).status_code == 200
    sim.advance(3600)
    body = get(sim, ip, STATUS, params={"host_ip": ip}).json()
    assert body["data"]["state"] == "failed" and body["data"]["msg"] == "format sdb failed"
    assert body["data"]["stage_info"] == "format_disks_and_partitions"
    assert get(sim, ip, VERIFY).json()["data"]["is_deployed"] is False
    assert get(sim, ip, SCAN).json()["data"]["hostname"] == "localhost.localdomain"
    assert post(sim, ip, CLUSTER, payload).status_code == 200                # retry after a failure is allowed
    sim.advance(3600)
    assert get(sim, ip, VERIFY, https=True).json()["data"]["is_deployed"] is True


def test_finished_status_error_style(sim, plan):
    sim.deployment.finished_status = "error"
    ip = ips(plan)[0]
    assert post(sim, ip, CLUSTER, build_payload(plan, scans(sim, plan))).status_code == 200
    assert get(sim, ip, STATUS, params={"host_ip": ip}).json()["data"]["state"] == "running"
    sim.advance(3600)
    assert_error(get(sim, ip, STATUS, params={"host_ip": ip}), 500)        # "ignore it; use deploy_verify"
    assert get(sim, ip, VERIFY, https=True).json()["data"]["is_deployed"] is True


def test_realistic_pacing_is_about_fifteen_minutes(plan, make_sim):
    s = make_sim(plan, time_scale=1.0)
    ip = ips(plan)[0]
    assert post(s, ip, CLUSTER, build_payload(plan, scans(s, plan))).status_code == 200
    s.advance(60 * 14)
    assert get(s, ip, STATUS, params={"host_ip": ip}).json()["data"]["state"] == "running"
    s.advance(60 * 2)
    assert get(s, ip, STATUS, params={"host_ip": ip}).json()["data"]["state"] == "success"



