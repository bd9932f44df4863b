"""Simulator core: clock, faults, request log, endpoints (up/down, TLS, UDP), control endpoint, CLI."""
from __future__ import annotations

import json
import logging
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from clients.redact import MASK
from mocks import Faults, SimClock, Simulator
from mocks.faults import FaultRule, match_path
from mocks.reqlog import redact
from mocks.testing import load_plan, plan_path, ssl_context

REPO = Path(__file__).resolve().parents[1]
SCAN = "/api/v2/deployment/host"
DEPLOY = "/api/v2/deployment/cluster"


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    p = plan_path(tmp_path_factory.mktemp("simplan"), hosts=4)
    if p is None:
        pytest.skip("no plan: neither plan.example nor the vendor template is available")
    return p


@pytest.fixture(scope="module")
def plan(plan_file):
    return load_plan(plan_file)


@pytest.fixture
def sim(plan, monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    with Simulator.from_plan(plan, time_scale=0.001) as s:
        yield s


@pytest.fixture
def token_headers(sim):
    return {"x-smartx-token": sim.deploy_token, "content-type": "application/json"}


def host_ip(plan, i: int = 0) -> str:
    return str(plan.hosts[i].mgmt_ip)


# --------------------------------------------------------------------------- clock
class FakeMonotonic:
    """Stands in for the ``time`` module inside the clock's module: real time advances only by ``sleep``."""

    def __init__(self):
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    def time(self) -> float:
        return time.time()


def test_clock_scale_advance_and_rescale(monkeypatch):
    real = FakeMonotonic()                    # the clock's real time moves only when the test says so
    monkeypatch.setattr(sys.modules[SimClock.__module__], "time", real)
    c = SimClock(0.001)                       # 1000x: 10 ms real = 10 s simulated
    real.sleep(0.02)
    assert c.now() == pytest.approx(20)
    before = c.now()
    c.advance(500)
    assert c.now() == pytest.approx(before + 500)
    c.time_scale = 1.0                        # rescale without a jump
    t = c.now()
    assert c.now() == pytest.approx(t)
    real.sleep(0.01)
    assert c.now() == pytest.approx(t + 0.01)
    assert c.real(10) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        SimClock(0)
    with pytest.raises(ValueError):
        c.advance(-1)
    c.skew = 3600
    assert abs(c.wall() - time.time() - 3600) < 1


# --------------------------------------------------------------------------- fault rules (unit)
def test_fault_rule_schema_and_counting():
    f = Faults()
    r = f.add({"method": "POST", "path": DEPLOY, "nth": 2, "action": {"status": 503}})
    assert r.id == "fault-1"
    assert f.match("POST", DEPLOY, "10.0.0.1") is None         # 1st call: no
    assert f.match("POST", DEPLOY, "10.0.0.1") is r            # 2nd: fires
    assert f.match("POST", DEPLOY, "10.0.0.1") is None         # 3rd: no
    assert (r.matches, r.hits) == (3, 1)
    assert f.match("GET", DEPLOY, "10.0.0.1") is None and r.matches == 3

    t = f.add({"path": "/api/*", "times": 2, "status": 500})   # flat form, glob
    assert [f.match("GET", "/api/x", "a") is t for _ in range(3)] == [True, True, False]
    w = f.add({"path": "^/api/v2/deployment/(host|cluster)$", "address": "10.0.20.*", "port": 443,
               "nth": 2, "times": 2, "action": {"drop": True}})
    hits = [f.match("GET", "/api/v2/deployment/host", "10.0.20.11", 443) is w for _ in range(4)]
    assert hits == [False, True, True, False]
    assert f.match("GET", "/api/v2/deployment/host", "10.0.21.11", 443) is None
    assert f.match("GET", "/api/v2/deployment/host", "10.0.20.11", 80) is None

    for bad in ({"path": "/x"}, {"path": "/x", "action": {"status": 99}}, {"path": "/x", "bogus": 1, "status": 500},
                {"path": "/x", "action": {"operation": "explode"}}, {"nth": 0, "status": 500},
                {"action": {"drop": False}}, {"action": {"status": 500, "colour": "red"}}):
        with pytest.raises(ValueError):
            FaultRule.parse(bad)
    f.clear()
    assert f.rules == []


def test_fault_sources_file_env_and_json(tmp_path, monkeypatch, plan):
    rules = [{"id": "from-file", "method": "GET", "path": SCAN, "action": {"status": 502}}]
    p = tmp_path / "faults.json"
    p.write_text(json.dumps({"rules": rules}))
    monkeypatch.setenv("SMTX_SIM_FAULTS", json.dumps({"id": "from-env", "path": "/nope", "status": 500}))
    sim = Simulator.from_plan(plan, faults=str(p))
    try:
        assert [r.id for r in sim.faults.rules] == ["from-file", "from-env"]
    finally:
        sim.close()
    monkeypatch.setenv("SMTX_SIM_FAULTS", str(p))
    sim = Simulator.from_plan(plan)
    try:
        assert [r.id for r in sim.faults.rules] == ["from-file"]
    finally:
        sim.close()


def test_path_patterns_and_redaction():
    assert match_path("/a/b", "/a/b") and not match_path("/a/b", "/a/bc")
    assert match_path("/a/*", "/a/b/c") and match_path("re:^/a/\\d+$", "/a/12") and not match_path("^/b", "/a")
    body = {"hosts": [{"user": "root", "password": "c+G6KvJYsKyQyY4U", "hostname": "n1"}],
            "host_passwords": [{"user": "smartx", "password": "x"}], "note": "HC!r0cks", "token": "t"}
    out = redact(body, secrets={"HC!r0cks"})
    assert out["hosts"][0] == {"user": "root", "password": MASK, "hostname": "n1"}
    assert out["host_passwords"] == [{"user": "smartx", "password": MASK}]
    assert out["note"] == MASK and out["token"] == MASK


# --------------------------------------------------------------------------- network contract
def test_address_map_contract(sim, plan):
    amap = sim.address_map
    for (addr, port, proto), (lh, lp) in amap.items():
        assert isinstance(addr, str) and isinstance(port, int) and proto in ("tcp", "udp", "icmp")
        assert lh == "127.0.0.1" and isinstance(lp, int)
        assert (lp > 0) == (proto != "icmp")
    for h in plan.hosts:
        assert (str(h.mgmt_ip), 80, "tcp") in amap and (str(h.mgmt_ip), 443, "tcp") in amap
    assert (str(plan.vip), 443, "tcp") in amap and (str(plan.vip), 22, "tcp") in amap
    assert (str(plan.cloudtower.ip), 443, "tcp") in amap
    for d in plan.dns:
        assert (d, 53, "udp") in amap
    for n in plan.ntp:
        assert (n, 123, "udp") in amap                  # host names too (e.g. ntp.c89.fun), as the plan writes them
    for a in plan.test_addresses():
        assert (str(a), 22, "tcp") in amap
    gw = str(plan.mgmt.gateway)
    assert (gw, 0, "icmp") in amap and sim.is_alive(gw)
    locals_ = [lp for (_, _, proto), (_, lp) in amap.items() if proto != "icmp"]
    assert len(locals_) == len(set(locals_))
    assert all(port != sim._control.local_port for port in locals_)


def _connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except ConnectionRefusedError:
        return False


def test_down_endpoint_refuses_then_comes_up_and_goes_down(sim, plan):
    vip = str(plan.vip)
    _, port = sim.local(vip, 443)
    assert not _connect(port)
    assert not sim.is_alive(vip) and sim.is_alive(host_ip(plan)) and not sim.is_alive("192.0.2.99")
    sim.set_up(vip, 443)
    assert sim.local(vip, 443) == ("127.0.0.1", port)          # same local port once up
    assert sim.is_alive(vip)
    r = httpx.get(f"https://127.0.0.1:{port}/anything", verify=ssl_context(sim))
    assert r.status_code == 404                                # up, but no API family mounted yet
    with httpx.Client(verify=ssl_context(sim)) as keep:        # an open keep-alive connection is cut
        assert keep.get(f"https://127.0.0.1:{port}/x").status_code == 404
        sim.set_up(vip, 443, up=False)
        assert not _connect(port)
        assert not sim.is_alive(vip)
        with pytest.raises(httpx.TransportError):
            keep.get(f"https://127.0.0.1:{port}/x")
    with pytest.raises(KeyError):
        sim.set_up("192.0.2.99", 80)


def test_https_verifies_against_ca_bundle_and_http_shares_routes(sim, plan, token_headers):
    ip = host_ip(plan)
    assert Path(sim.ca_bundle).read_text().startswith("-----BEGIN CERTIFICATE-----")
    a = httpx.get(sim.url(ip, 443) + SCAN, headers=token_headers, verify=ssl_context(sim))
    b = httpx.get(sim.url(ip, 80) + SCAN, headers={**token_headers, "host": ip})
    assert a.status_code == b.status_code == 200
    assert a.json()["data"]["host_uuid"] == b.json()["data"]["host_uuid"]
    with pytest.raises(httpx.ConnectError):                     # not trusted without the CA
        httpx.get(sim.url(ip, 443) + SCAN, headers=token_headers)
    assert sim.count("GET", SCAN, status=200, address=ip) == 2
    rec = sim.requests[0]
    assert (rec.address, rec.method, rec.path, rec.status, rec.scheme) == (ip, "GET", SCAN, 200, "https")
    assert rec.sim_time >= 0


def test_unknown_endpoint_404_envelope_logged(sim, plan, token_headers, caplog):
    caplog.set_level(logging.WARNING, logger="mocks")
    r = httpx.get(sim.url(host_ip(plan), 80) + "/api/v2/nope", headers=token_headers)
    assert r.status_code == 404
    body = r.json()
    assert body["ec"] != "EOK" and body["data"] is None and "/api/v2/nope" in body["error"]["msg"]
    assert any("/api/v2/nope" in rec.getMessage() and host_ip(plan) in rec.getMessage() for rec in caplog.records)
    assert sim.count(path="/api/v2/nope", status=404) == 1


# --------------------------------------------------------------------------- faults over HTTP
def test_fault_status_nth_envelope_and_times(sim, plan, token_headers):
    url = sim.url(host_ip(plan), 80) + SCAN
    sim.faults.add({"method": "GET", "path": SCAN, "nth": 2, "action": {"status": 503}})
    sim.faults.add({"method": "GET", "path": SCAN, "nth": 4, "action": {"envelope_error": "EBUSY", "status": 500,
                                                                         "msg": "busy"}})
    codes = [httpx.get(url, headers=token_headers) for _ in range(5)]
    assert [r.status_code for r in codes] == [200, 503, 200, 500, 200]
    assert codes[1].json()["ec"] != "EOK"
    assert codes[3].json() == {"data": None, "ec": "EBUSY", "error": {"msg": "busy"}}
    r1, r2 = sim.faults.rules
    assert (r1.matches, r1.hits, r2.hits) == (5, 1, 1)
    assert [rec.fault for rec in sim.requests] == [None, r1.id, None, r2.id, None]
    sim.faults.clear()
    sim.faults.add({"path": SCAN, "times": 2, "action": {"status": 429, "body": "slow down"}})
    rs = [httpx.get(url, headers=token_headers) for _ in range(3)]
    assert [r.status_code for r in rs] == [429, 429, 200] and rs[0].text == "slow down"


def test_fault_drop_and_delay(sim, plan, token_headers):
    url = sim.url(host_ip(plan), 80) + SCAN
    sim.faults.add({"path": SCAN, "nth": 1, "action": {"drop": True}})
    sim.faults.add({"path": SCAN, "nth": 3, "action": {"delay": 0.4}})
    with httpx.Client(headers=token_headers) as c:
        with pytest.raises(httpx.TransportError):
            c.get(url)
        assert c.get(url).status_code == 200                    # next call is fine again
        t = time.monotonic()
        assert c.get(url).status_code == 200
        assert time.monotonic() - t >= 0.35
    sim.faults.add({"path": SCAN, "times": 1, "action": {"delay": 1.0}})   # counts from its own adding
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, headers=token_headers, timeout=0.2)
    assert sim.count(path=SCAN, status="dropped") == 1


def test_control_endpoint(sim, plan, token_headers):
    c = httpx.Client(base_url=sim.control_url)
    r = c.post("/_sim/faults", json={"method": "GET", "path": SCAN, "action": {"status": 500}})
    assert r.status_code == 201 and r.json()["rules"][0]["id"]
    assert c.post("/_sim/faults", json={"bogus": True}).status_code == 400
    assert httpx.get(sim.url(host_ip(plan), 80) + SCAN, headers=token_headers).status_code == 500
    assert c.get("/_sim/faults").json()["rules"][0]["hits"] == 1
    assert c.delete("/_sim/faults").status_code == 200 and sim.faults.rules == []
    reqs = c.get("/_sim/requests").json()["requests"]
    assert [(q["method"], q["path"], q["status"]) for q in reqs] == [("GET", SCAN, 500)]
    state = c.get("/_sim/state").json()
    assert {h["mgmt_ip"] for h in state["state"]["deployment"]["hosts"]} == {str(h.mgmt_ip) for h in plan.hosts}
    m = c.get("/_sim/map").json()
    assert [host_ip(plan), 443, "tcp", "127.0.0.1", sim.local(host_ip(plan), 443)[1]] in m["address_map"]
    assert c.get("/_sim/alive", params={"address": str(plan.vip)}).json()["alive"] is False
    assert c.get("/_sim/ca").text == Path(sim.ca_bundle).read_text()
    assert c.post("/_sim/clock", json={"advance": 100}).json()["sim_now"] >= 100
    assert c.post("/_sim/endpoints", json={"address": str(plan.vip), "port": 443, "up": True}).status_code == 200
    assert sim.is_alive(str(plan.vip))
    assert len(sim.requests) == 1                               # control calls are not logged
    c.close()


def test_remote_simulator_attaches_to_control_url(sim, plan):
    from mocks.remote import RemoteSimulator
    with RemoteSimulator(sim.control_url + "/_sim") as remote:
        assert remote.address_map == sim.address_map
        assert remote.is_alive(host_ip(plan)) and not remote.is_alive(str(plan.vip))
        assert Path(remote.ca_bundle).read_bytes() == Path(sim.ca_bundle).read_bytes()
        assert remote.deploy_token == sim.deploy_token
    with pytest.raises(ValueError):
        RemoteSimulator("http://10.0.0.1:8080")


# --------------------------------------------------------------------------- UDP services
def _dns_query(name: str, qtype: int = 1, qid: int = 0x4242) -> bytes:
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return q + struct.pack("!HH", qtype, 1)


def _udp(addr: tuple[str, int], payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(payload, addr)
        return s.recvfrom(4096)[0]


def test_dns_answers(sim, plan):
    server = sim.local(plan.dns[0], 53, "udp")
    name = plan.hosts[0].hostname
    resp = _udp(server, _dns_query(name))
    qid, flags, qd, an = struct.unpack("!HHHH", resp[:8])
    assert qid == 0x4242 and flags & 0x8000 and flags & 0xF == 0 and an == 1
    assert resp[-4:] == bytes([127, 0, 0, 1])
    resp = _udp(server, _dns_query("no-such-name.invalid"))
    assert struct.unpack("!H", resp[2:4])[0] & 0xF == 3                # NXDOMAIN
    resp = _udp(server, _dns_query(name, qtype=28))                    # AAAA: NOERROR, no answer
    assert struct.unpack("!H", resp[2:4])[0] & 0xF == 0 and struct.unpack("!H", resp[6:8])[0] == 0
    sim.dns.add("extra.example", "127.0.0.1")
    assert _udp(server, _dns_query("EXTRA.example"))[-4:] == bytes([127, 0, 0, 1])
    assert sim.count("DNS", name.lower()) + sim.count("DNS", name) >= 1
    assert sim.is_alive(plan.dns[0])


def test_ntp_answers_with_sim_time(sim, plan):
    for server in plan.ntp:                                   # IPs and host names alike
        pkt = b"\x23" + 39 * b"\0" + b"ORIGINTS"              # v4 client, transmit timestamp marker
        resp = _udp(sim.local(server, 123, "udp"), pkt)
        assert len(resp) == 48 and resp[0] & 0x7 == 4 and (resp[0] >> 3) & 0x7 == 4 and resp[1] == 2
        assert resp[24:32] == b"ORIGINTS"                     # originate = client's transmit
        secs = struct.unpack("!I", resp[40:44])[0] - 2208988800
        assert abs(secs - time.time()) < 5
    sim.clock.skew = -7200
    resp = _udp(sim.local(plan.ntp[0], 123, "udp"), b"\x1b" + 47 * b"\0")
    assert abs(struct.unpack("!I", resp[40:44])[0] - 2208988800 - (time.time() - 7200)) < 5


def test_udp_fault_drop(sim, plan):
    sim.faults.add({"method": "NTP", "address": plan.ntp[0], "action": {"drop": True}})
    with pytest.raises(socket.timeout):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            s.sendto(b"\x1b" + 47 * b"\0", sim.local(plan.ntp[0], 123, "udp"))
            s.recvfrom(4096)
    sim.set_up(plan.dns[0], 53, up=False, proto="udp")
    with pytest.raises(socket.timeout):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            s.sendto(_dns_query("localhost"), sim.local(plan.dns[0], 53, "udp"))
            s.recvfrom(4096)


# --------------------------------------------------------------------------- lifecycle
def test_close_joins_threads_and_frees_ports(plan, monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    before = {t for t in threading.enumerate()}
    sim = Simulator.from_plan(plan, time_scale=0.001).start()
    ip = host_ip(plan)
    _, port = sim.local(ip, 80)
    c = httpx.Client(headers={"x-smartx-token": sim.deploy_token})
    assert c.get(sim.url(ip, 80) + SCAN).status_code == 200   # leaves a keep-alive connection open
    ca = sim.ca_bundle
    sim.close()
    c.close()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and {t for t in threading.enumerate() if t.name.startswith("sim")} - before:
        time.sleep(0.02)
    assert not {t for t in threading.enumerate() if t.name.startswith("sim")} - before
    assert not _connect(port)
    assert not Path(ca).exists()
    sim.close()                                               # idempotent


# --------------------------------------------------------------------------- CLI
def test_cli_serve_prints_map_and_serves(plan_file, plan, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONUNBUFFERED": "1"}
    env.pop("SMTX_SIM_FAULTS", None)
    faults = tmp_path / "f.json"
    faults.write_text(json.dumps([{"path": "/api/v2/never", "status": 500}]))
    proc = subprocess.Popen([sys.executable, "-m", "mocks", "serve", "--plan", str(plan_file), "--time-scale",
                             "0.01", "--faults", str(faults)], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    out: list[str] = []
    try:
        deadline = time.monotonic() + 15
        while not any("Ctrl-C" in line for line in out):
            assert time.monotonic() < deadline, "serve did not print its map:\n" + "".join(out)
            try:
                out.append(lines.get(timeout=0.5))
            except queue.Empty:
                assert proc.poll() is None, "serve exited:\n" + "".join(out)
        text = "".join(out)
        assert "control:" in text and "ca bundle:" in text
        ip = host_ip(plan)
        m = re.search(rf"^{re.escape(ip)}\s+80/tcp\s+up\s+\S+\s+http://127\.0\.0\.1:(\d+)/\s+Host: {re.escape(ip)}$",
                      text, re.M)
        assert m, text
        assert re.search(rf"^{re.escape(str(plan.vip))}\s+443/tcp\s+down\s+\S+\s+https://127\.0\.0\.1:\d+/", text, re.M)
        r = httpx.get(f"http://127.0.0.1:{m.group(1)}{SCAN}",
                      headers={"x-smartx-token": "e79b85fc18b7402fbcc0391fe8d7d24c"})
        assert r.status_code == 200 and r.json()["ec"] == "EOK"
        control = re.search(r"control:\s+(\S+)", text).group(1)
        assert httpx.get(control + "/faults").json()["rules"][0]["path"] == "/api/v2/never"
    finally:
        if os.name == "posix":
            proc.send_signal(signal.SIGINT)                   # Ctrl-C: clean exit, code 0
            try:
                assert proc.wait(10) == 0
            finally:
                proc.kill()
        else:
            proc.terminate()
            proc.wait(10)
        proc.stdout.close()
