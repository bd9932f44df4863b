"""Issue 12 item 1 (TLS): trust on first use, pinned in the delivery folder; deterministic simulator certificates;
a changed certificate stops at once, naming the address and both fingerprints; --ca-bundle and --insecure.

The client-level tests talk to a simulator in-process; the suite-level ones run ``pytest --plan … --simulate``."""
from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import pytest

from clients.addressing import AddressMap
from clients.base import ApiError, TlsMode
from clients.cloudtower import CloudTowerClient
from clients.deployment import DeploymentClient
from clients.tls import PIN_FILE, PinStore, TlsError, fingerprint
from mocks.presets import apply_preset
from mocks.server import Simulator
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .suite_runs import report_of, run_suite, state_of

SCAN = "/api/v2/deployment/host"


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    plan, _ = load(write_example(tmp_path_factory.mktemp("tlsplan") / "plan.xlsx", hosts=3, business=1))
    return plan


@pytest.fixture
def sim(plan):
    with Simulator.from_plan(plan, time_scale=0.002, load_env_faults=False) as s:
        yield s


def amap_of(sim) -> AddressMap:
    return AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)


def host(plan) -> str:
    return str(plan.hosts[0].mgmt_ip)


def deploy_client(sim, tls: TlsMode, ip: str) -> DeploymentClient:
    """The deployment API over https (hosts serve it on 443 as on 80)."""
    c = DeploymentClient(ip, token=sim.deploy_token, amap=amap_of(sim), tls=tls, sleep=lambda s: None)
    c.base_url = f"https://{ip}"
    return c


# --------------------------------------------------------------------------- the simulator's certificates
def test_simulator_certificates_are_per_address_and_the_same_in_every_simulator(plan, sim):
    a, b = host(plan), str(plan.hosts[1].mgmt_ip)
    fa, fb = sim.certificate_fingerprint(a), sim.certificate_fingerprint(b)
    assert fa != fb                                                 # one certificate per address
    pem = ssl.get_server_certificate(sim.local(a, 443))             # what a client really gets
    assert fingerprint(ssl.PEM_cert_to_DER_cert(pem)) == fa
    ca = Path(sim.ca_bundle).read_bytes()
    with Simulator.from_plan(plan, time_scale=0.002, load_env_faults=False) as again:
        assert again.certificate_fingerprint(a) == fa               # deterministic: pins carry over
        assert Path(again.ca_bundle).read_bytes() == ca
        rotated = again.rotate_certificate(a)
        assert rotated != fa and again.certificate_fingerprint(b) == fb
        snap = again.snapshot(inspect=False)
    with Simulator.from_plan(plan, time_scale=0.002, load_env_faults=False, snapshot=snap) as restored:
        assert restored.certificate_fingerprint(a) == rotated       # a rotated certificate stays rotated
    with Simulator.from_plan(plan, time_scale=0.002, load_env_faults=False, faults=ROTATED(a)) as faulty:
        served = ssl.get_server_certificate(faulty.local(a, 443))    # the fault rule: another certificate
        assert fingerprint(ssl.PEM_cert_to_DER_cert(served)) == rotated
        assert faulty.certificate_fingerprint(b) == fb


def ROTATED(address: str) -> list[dict]:
    """The fault rule that serves ``address`` the certificate it would have after a reinstall."""
    return [{"id": "cert-rotated", "method": "TLS", "address": address, "tls": "rotated"}]


# --------------------------------------------------------------------------- the client: pinning
def test_first_contact_pins_and_a_later_client_reuses_the_pin(plan, sim, tmp_path):
    ip = host(plan)
    path = tmp_path / PIN_FILE
    with deploy_client(sim, TlsMode(pins=PinStore(path)), ip) as c:
        assert c.scan_host()
    pins = json.loads(path.read_text(encoding="utf-8"))["pins"]
    assert pins[ip]["sha256"] == sim.certificate_fingerprint(ip)
    assert pins[ip]["pem"].startswith("-----BEGIN CERTIFICATE-----")
    store = PinStore(path)                                          # a later run: same file, no new entry
    with deploy_client(sim, TlsMode(pins=store), ip) as c:
        c.scan_host()
    assert store.seen[ip]["status"] == "matched"
    assert json.loads(path.read_text(encoding="utf-8"))["pins"] == pins


def test_a_changed_certificate_stops_at_once_naming_the_address_and_both_fingerprints(plan, sim, tmp_path):
    ip = host(plan)
    store = PinStore(tmp_path / PIN_FILE)
    with deploy_client(sim, TlsMode(pins=store), ip) as c:
        c.scan_host()
    old = sim.certificate_fingerprint(ip)
    new = sim.rotate_certificate(ip)
    before = sim.count(path=SCAN, address=ip)
    started = time.monotonic()
    with deploy_client(sim, TlsMode(pins=PinStore(tmp_path / PIN_FILE)), ip) as c:
        with pytest.raises(TlsError) as info:
            c.scan_host()
    assert time.monotonic() - started < 5                           # no retry, no poll
    first = str(info.value).splitlines()[0]
    assert ip in first and old in first and new in first, first      # what a truncated message still says
    assert "tls_pins.json" in str(info.value) and "下一步 / next" in str(info.value)
    assert not isinstance(info.value, ApiError)                     # the steps' polls never swallow it
    assert sim.count(path=SCAN, address=ip) == before               # the request was never sent to the impostor


def test_the_simulators_ca_is_not_trusted_by_default_but_works_as_ca_bundle(plan, sim):
    ip = host(plan)
    with deploy_client(sim, TlsMode(), ip) as c:                    # system CAs: the simulator is not one of them
        with pytest.raises(TlsError) as info:
            c.scan_host()
    assert "verification failed" in str(info.value) and ip in str(info.value)
    with deploy_client(sim, TlsMode(ca_bundle=sim.ca_bundle, pins=PinStore(None)), ip) as c:
        assert c.scan_host()
        assert c.tls.pins.seen[ip] == {"sha256": sim.certificate_fingerprint(ip), "status": "observed"}
    with deploy_client(sim, TlsMode(verify=False, pins=PinStore(None)), ip) as c:
        assert c.scan_host()


def test_cloudtower_pin_mismatch_is_a_tls_error_not_a_poll(plan, tmp_path):
    with Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False) as sim:
        apply_preset(sim, "cloudtower-ready")
        ip = str(plan.cloudtower.ip)
        store = PinStore(tmp_path / PIN_FILE)
        with CloudTowerClient(ip, amap=amap_of(sim), tls=TlsMode(pins=store), sleep=lambda s: None) as ct:
            assert isinstance(ct.tower_setup(), dict)                # first contact after the install: pinned
        assert store.get(ip)["sha256"] == sim.certificate_fingerprint(ip)
        sim.rotate_certificate(ip)
        with CloudTowerClient(ip, amap=amap_of(sim), tls=TlsMode(pins=PinStore(tmp_path / PIN_FILE)),
                              sleep=lambda s: None) as ct:
            with pytest.raises(TlsError, match=ip):
                ct.tower_setup()


def test_the_vip_trusts_the_certificates_of_the_cluster_hosts(tmp_path):
    store = PinStore(tmp_path / PIN_FILE)
    store.ensure("10.0.0.1", 443, lambda: _der("a"))
    store.ensure("10.0.0.9", 443, lambda: _der("b"))
    store.trust_together(["10.0.0.1", "10.0.0.2", "10.0.0.9"])
    assert [e["sha256"] for e in store.trusted("10.0.0.9", 443)] == [fingerprint(_der("b")), fingerprint(_der("a"))]
    assert store.trusted("10.0.0.3", 443) == []


def _der(name: str) -> bytes:
    from mocks.tls import TLSMaterial

    import tempfile
    with tempfile.TemporaryDirectory() as d:
        return ssl.PEM_cert_to_DER_cert(TLSMaterial(Path(d), seed=name).certificate_pem("10.0.0.1").decode())


# --------------------------------------------------------------------------- the suite
@pytest.fixture(scope="module")
def suite_plan(tmp_path_factory) -> Path:
    """A cluster name of its own, so no earlier run in reports/ seeds pins into the first run."""
    name = f"TLS-PIN-{int(time.time() * 1000) % 10**8}"
    return write_example(tmp_path_factory.mktemp("tls-suite") / "plan.xlsx", hosts=3, business=1,
                         overrides={(L.SHEET_NET, L.NET_CLUSTER_NAME): name,
                                    (L.SHEET_HOSTS, L.HOSTS_CLUSTER_NAME): name,
                                    (L.SHEET_MGMT, L.MGMT_CLUSTER_NAME): name})


@pytest.fixture(scope="module")
def runs(suite_plan, tmp_path_factory):
    """First run (first contact: pins recorded), then a second run of the same plan (pins carried over)."""
    base = tmp_path_factory.mktemp("tls-runs")
    first = run_suite("--plan", str(suite_plan), "--simulate", "--run-dir", str(base / "r1"))
    second = run_suite("--plan", str(suite_plan), "--simulate", "--run-dir", str(base / "r2"))
    return base, first, second


@pytest.mark.slow          # whole simulated runs: in the -m slow selection (CI runs it)
def test_suite_pins_on_first_contact_and_the_next_run_reuses_the_pins(runs, suite_plan):
    base, first, second = runs
    assert first.returncode == 0, first.stdout[-3000:]
    plan, _ = load(suite_plan)
    pins = json.loads((base / "r1" / PIN_FILE).read_text(encoding="utf-8"))["pins"]
    wanted = {host(plan), str(plan.vip), str(plan.cloudtower.ip)}    # every address the suite talks https to
    assert wanted <= set(pins), sorted(pins)
    _, text = report_of(base / "r1")
    assert "trust on first use" in text and "first contact in this run: pinned" in text
    for ip in wanted:
        assert pins[ip]["sha256"] in text                           # the report shows every fingerprint
    assert second.returncode == 0, second.stdout[-3000:]
    assert json.loads((base / "r2" / PIN_FILE).read_text(encoding="utf-8"))["pins"] == pins
    _, text2 = report_of(base / "r2")
    assert "matches its pin" in text2 and "first contact in this run" not in text2


@pytest.mark.slow          # whole simulated runs: in the -m slow selection (CI runs it)
def test_suite_stops_quickly_on_a_rotated_certificate(runs, suite_plan, monkeypatch):
    base, first, _ = runs
    assert first.returncode == 0
    plan, _ = load(suite_plan)
    ip = host(plan)
    old = json.loads((base / "r1" / PIN_FILE).read_text(encoding="utf-8"))["pins"][ip]["sha256"]
    monkeypatch.setenv("SMTX_SIM_FAULTS", json.dumps(ROTATED(ip)))  # the first host was reinstalled meanwhile
    started = time.monotonic()
    proc = run_suite("--plan", str(suite_plan), "--simulate", "--run-dir", str(base / "rotated"))
    assert time.monotonic() - started < 60
    assert proc.returncode != 0
    steps = state_of(base / "rotated")["steps"]
    failed = [k for k, v in steps.items() if v["outcome"] == "failed"]
    assert failed and failed[0] == "01.addresses", steps            # deploy_verify: the first https contact
    message = steps[failed[0]]["message"]
    assert ip in message and old in message and "CHANGED" in message, message
    assert steps[failed[0]]["duration"] < 10


@pytest.mark.slow          # whole simulated runs: in the -m slow selection (CI runs it)
def test_suite_stops_at_once_when_cloudtower_presents_another_certificate(runs, suite_plan):
    """04.https used to poll 10 minutes on a TLS error: a CloudTower pin that no longer matches ends it at once."""
    base, first, _ = runs
    assert first.returncode == 0
    plan, _ = load(suite_plan)
    ct = str(plan.cloudtower.ip)
    earlier = base / "earlier-ct"                                   # an earlier run that pinned another certificate
    earlier.mkdir()
    (earlier / "state.json").write_text((base / "r1" / "state.json").read_text(encoding="utf-8"), encoding="utf-8")
    pins = json.loads((base / "r1" / PIN_FILE).read_text(encoding="utf-8"))
    pins["pins"][ct] = dict(pins["pins"][host(plan)])              # a certificate CloudTower does not have
    (earlier / PIN_FILE).write_text(json.dumps(pins), encoding="utf-8")
    proc = run_suite("--plan", str(suite_plan), "--simulate", "--run-dir", str(base / "ct"))
    assert proc.returncode != 0
    steps = state_of(base / "ct")["steps"]
    failed = [k for k, v in steps.items() if v["outcome"] == "failed"]
    assert failed and failed[0].startswith("04."), steps
    assert ct in steps[failed[0]]["message"] and "CHANGED" in steps[failed[0]]["message"]
    assert steps[failed[0]]["duration"] < 30                         # not HTTPS_LIMIT (10 min, scaled)
