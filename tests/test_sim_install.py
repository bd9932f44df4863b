"""Simulated CloudTower install over SSH (guide §04): resolv.conf first, preinstall.sh, the installer under
nohup, nohup.out growing over simulated time, CloudTower's 443 opening; faults; snapshot; the preset."""
from __future__ import annotations

import json

import pytest

from clients.ssh import LogFollower, SshClient
from mocks import Simulator
from mocks.cloudtower_install import DONE_LINE, FAILED_LINE, GUIDE_COMMAND, INSTALLER, PREINSTALL
from mocks.presets import PRESETS, PresetError, apply_preset, format_access
from mocks.ssh import ssh_service

from .test_sim_fisheye import Api, refused
from .test_sim_vms import CT_PW, CT_USER, amap, ready_tower_vm
from .test_ssh import follow

NOHUP = "/home/cloudtower/nohup.out"
INSTALL_S = 1200.0

@pytest.fixture
def tower(make_world, plan, tmp_path):
    sim, api = make_world()
    ip = str(plan.cloudtower.ip)
    ready_tower_vm(sim, api, plan, ip)
    c = SshClient(ip, amap=amap(sim), username=CT_USER, password=CT_PW, known_hosts=tmp_path / "kh", timeout=5)
    c.connect()
    yield sim, api, c, ip
    c.close()


def resolv(plan) -> str:
    return "# written by the suite\n" + "".join(f"nameserver {d}\n" for d in plan.dns)


def log_of(c: SshClient) -> str:
    return c.read_file("nohup.out", sudo_password=CT_PW, timeout=5)


def accepts(sim: Simulator, address: str, port: int) -> bool:
    try:
        return not refused(sim, address, port)
    except KeyError:                       # not even simulated (an address the plan does not have)
        return False


# --------------------------------------------------------------------------- resolv.conf before the installer
def test_installer_without_resolv_conf_fails(tower, plan):
    sim, api, c, ip = tower
    r = c.sudo(GUIDE_COMMAND, timeout=5)
    assert r.exit_status == 0 and "[preinstall] done" in r.stdout
    st = ssh_service(sim, ip).fs.stat(NOHUP)
    assert (st.owner, st.mode) == ("root", 0o600)                  # nohup's file, in the login's home
    text = log_of(c)
    err = next(line for line in text.splitlines() if "[ERROR]" in line)
    assert "/etc/resolv.conf" in err and all(d in err for d in plan.dns), err
    assert text.endswith(FAILED_LINE + "\n") and DONE_LINE not in text
    sim.advance(2 * INSTALL_S)
    assert log_of(c) == text and not accepts(sim, ip, 443) and sim.install.state_of(ip) == "failed"
    # the fix the field notes ask for: resolv.conf first, then the installer again (nohup appends)
    c.write_file_sudo("/etc/resolv.conf", resolv(plan), timeout=5)
    assert c.sudo(f"nohup {INSTALLER} deploy &", timeout=5).exit_status == 0
    sim.advance(INSTALL_S)
    again = log_of(c)
    assert again.startswith(text) and again.endswith(DONE_LINE + "\n")
    assert accepts(sim, ip, 443)


def test_installer_needs_root_and_preinstall(tower, plan):
    sim, api, c, ip = tower
    r = c.run(f"{INSTALLER} deploy", timeout=5)
    assert r.exit_status == 1 and "root" in r.stderr
    c.write_file_sudo("/etc/resolv.conf", resolv(plan), timeout=5)
    c.sudo(f"nohup {INSTALLER} deploy &", timeout=5)
    text = log_of(c)
    assert f"run {PREINSTALL} first" in text and text.endswith(FAILED_LINE + "\n")
    assert c.sudo(f"{INSTALLER} install", timeout=5).exit_status == 2


# --------------------------------------------------------------------------- the guide's flow
def test_installer_succeeds_over_simulated_time(tower, plan):
    sim, api, c, ip = tower
    c.write_file_sudo("/etc/resolv.conf", resolv(plan), timeout=5)
    assert c.sudo(GUIDE_COMMAND, timeout=5).exit_status == 0
    f = LogFollower(c, "nohup.out", sudo_password=CT_PW)
    polls = follow(f, DONE_LINE, lambda: sim.advance(60))
    lines = f.text.splitlines()
    assert polls >= 10 and len(lines) >= 40
    assert "Start to install Operation Center 4.7.1" in lines[0] and lines[-1] == DONE_LINE
    assert any(f"nameserver {', '.join(plan.dns)}" in line for line in lines)
    assert not any("[ERROR]" in line for line in lines)
    assert sim.install.state_of(ip) == "installed" and ip in sim.install.services_started
    assert accepts(sim, ip, 443)                 # the client saw the last line: 443 is open at once
    tower_model = sim.state.cloudtower.towers[ip]
    assert not tower_model.is_set_up         # a fresh CloudTower: root and organization are stage 04's job
    r = c.sudo(f"nohup {INSTALLER} deploy &", timeout=5)
    assert r.exit_status == 0 and log_of(c).endswith("already installed on this machine\n" + DONE_LINE + "\n")


def test_443_stays_closed_until_the_install_ends(tower, plan):
    sim, api, c, ip = tower
    c.write_file_sudo("/etc/resolv.conf", resolv(plan), timeout=5)
    c.sudo(GUIDE_COMMAND, timeout=5)
    sim.advance(INSTALL_S / 2)
    assert not accepts(sim, ip, 443) and sim.install.state_of(ip) == "running"
    r = c.sudo(f"nohup {INSTALLER} deploy &", timeout=5)           # a second run while one runs
    assert r.exit_status == 0 and "another installation is in progress" in log_of(c)
    sim.advance(INSTALL_S / 2)
    assert accepts(sim, ip, 443) and log_of(c).endswith(DONE_LINE + "\n")   # settled by sim.advance, no read


# --------------------------------------------------------------------------- faults
def test_installer_faults(make_world, plan, tmp_path):
    sim, api = make_world()
    sim.install.duration_s = 600.0
    addrs = [str(plan.cloudtower.ip), "10.0.20.201", "10.0.20.202", "10.0.20.203"]
    for k, ip in enumerate(addrs):
        ready_tower_vm(sim, api, plan, ip, name=f"tower-{k}")
    m = amap(sim)

    def run(ip: str) -> SshClient:
        c = SshClient(ip, amap=m, username=CT_USER, password=CT_PW, known_hosts=tmp_path / "kh", timeout=5)
        c.connect()
        c.write_file_sudo("/etc/resolv.conf", resolv(plan), timeout=5)
        assert c.sudo(GUIDE_COMMAND, timeout=5).exit_status == 0
        return c

    # knob: an error line, then the failure
    error = "[ERROR] [deploy] chart tower-core: timed out waiting for the condition"
    sim.install.fail_with = error
    c0 = run(addrs[0])
    sim.install.fail_with = None
    sim.advance(700)
    text = log_of(c0)
    assert text.endswith(f"{error}\n{FAILED_LINE}\n")
    assert DONE_LINE not in text and "[images]" in text and not accepts(sim, addrs[0], 443)
    # fault rules (method INSTALLER): fail with a message / stuck (the log stops growing) / 443 never opens
    sim.faults.add({"method": "INSTALLER", "address": addrs[1], "times": 1,
                    "action": {"operation": "fail", "msg": "[ERROR] disk /dev/vda is full"}})
    sim.faults.add({"method": "INSTALLER", "address": addrs[2], "action": {"operation": "stuck"}})
    sim.faults.add({"method": "INSTALLER", "address": addrs[3], "action": {"operation": "stuck", "stage": "https"}})
    c1, c2, c3 = run(addrs[1]), run(addrs[2]), run(addrs[3])
    sim.advance(700)
    t1, t2, t3 = log_of(c1), log_of(c2), log_of(c3)
    assert "[ERROR] disk /dev/vda is full\n" + FAILED_LINE in t1
    sim.advance(5000)
    assert log_of(c2) == t2 and DONE_LINE not in t2 and t2.count("\n") > 10
    assert sim.install.state_of(addrs[2]) == "stalled"
    assert t3.endswith(DONE_LINE + "\n") and sim.install.state_of(addrs[3]) == "installed"
    for ip in addrs[:4]:
        assert not accepts(sim, ip, 443), ip
    # a knob that never lets 443 open
    sim.install.never_open_443 = True
    c1.sudo(f"nohup {INSTALLER} deploy &", timeout=5)              # the failed one may run again
    sim.advance(700)
    assert log_of(c1).endswith(DONE_LINE + "\n") and not accepts(sim, addrs[1], 443)
    for c in (c0, c1, c2, c3):
        c.close()


# --------------------------------------------------------------------------- snapshot / restore
def test_snapshot_in_the_middle_of_the_install(make_world, plan, tmp_path):
    sim, api = make_world()
    ip = str(plan.cloudtower.ip)
    ready_tower_vm(sim, api, plan, ip)
    with SshClient(ip, amap=amap(sim), username=CT_USER, password=CT_PW, known_hosts=tmp_path / "kh",
                   timeout=5) as c:
        c.write_file_sudo("/etc/resolv.conf", resolv(plan), timeout=5)
        c.sudo(GUIDE_COMMAND, timeout=5)
        sim.advance(INSTALL_S / 3)
        part = log_of(c)
    snap = json.loads(json.dumps(sim.snapshot()))
    assert CT_PW not in json.dumps(snap)
    sim.close()
    sim2, api2 = make_world(snapshot=snap)
    assert sim2.install.state_of(ip) == "running" and not accepts(sim2, ip, 443)
    with SshClient(ip, amap=amap(sim2), username=CT_USER, password=CT_PW, known_hosts=tmp_path / "kh2",
                   timeout=5) as c:
        assert c.read_file("/etc/resolv.conf", timeout=5) == resolv(plan)
        assert log_of(c) == part
        sim2.advance(INSTALL_S)
        assert log_of(c).startswith(part) and log_of(c).endswith(DONE_LINE + "\n")
    assert accepts(sim2, ip, 443)


# --------------------------------------------------------------------------- the preset
def test_preset_cloudtower_ready(plan, monkeypatch, tmp_path):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    with Simulator.from_plan(plan, time_scale=1.0, load_env_faults=False) as sim:
        with pytest.raises(PresetError):
            apply_preset(sim, "nope")
        summary = apply_preset(sim, "cloudtower-ready")
        assert "cloudtower-ready" in PRESETS
        ip, vip = str(plan.cloudtower.ip), str(plan.vip)
        assert summary["cloudtower"]["ip"] == ip and summary["vip"] == vip
        api = Api(sim, vip)
        try:
            assert api.login(plan.cluster_admin_password).status_code == 200
            assert api.data(api.get("/api/v2/settings/dns"))["dns_servers"] == list(plan.dns)
            assert api.data(api.get("/api/v2/settings/ntp")) == {"ntp_mode": "external", "ntp_servers": list(plan.ntp)}
            names = {v["name"]: v for v in api.data(api.get("/api/v2/network/vds"))}
            assert names[plan.business_vds]["vlans_count"] == len(plan.business)
            (img,) = api.data(api.get("/api/v2/images"))["images"]
            assert img["type"] == "ISO_IMAGE" and img["name"].startswith("cloudtower-v")
            (vm,) = api.data(api.get("/api/v2/vms"))
            assert vm["vm_name"] == plan.cloudtower.vm_name and vm["guest_info"]["ga_state"] == "Running"
            assert vm["guest_info"]["nics"][1]["ip_addresses"][0]["ip_address"] == ip
            assert vm["disks"][1]["path"] == img["path"]
        finally:
            api.http.close()
        for h in plan.hosts:
            svc = ssh_service(sim, str(h.mgmt_ip))
            assert svc.password_ok(h.ssh_user, h.ssh_password) and svc.password_ok(h.admin_user, h.admin_password)
        assert sim.is_alive(ip) and accepts(sim, ip, 22) and accepts(sim, ip, 443)
        with SshClient(ip, amap=amap(sim), username=CT_USER, password=CT_PW, known_hosts=tmp_path / "kh",
                       timeout=5) as c:
            assert log_of(c).endswith(DONE_LINE + "\n")
            assert c.read_file("/etc/resolv.conf", timeout=5) == "".join(f"nameserver {d}\n" for d in plan.dns)
        t = sim.state.cloudtower.towers[ip]
        assert t.is_set_up and [o.name for o in t.organizations.values()] == [plan.customer]
        table = format_access(sim)
        assert f"Host: {ip}" in table and f"Host: {vip}" in table
        assert apply_preset(sim, "cloudtower-ready")["cloudtower_vm"]["uuid"] == vm["uuid"]     # idempotent
        assert len(sim.vms.vms) == 1 and len(sim.install.runs) == 1


def test_serve_preset_option_is_wired(monkeypatch, capsys):
    from mocks.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--plan", "x.xlsx", "--preset", "no-such-preset"])
    assert exc.value.code == 2 and "cloudtower-ready" in capsys.readouterr().err
