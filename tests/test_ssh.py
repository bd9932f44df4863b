"""SSH client (clients/ssh/) against the simulator's real paramiko SSH servers (mocks/ssh/) on loopback."""
from __future__ import annotations

import logging
import socket
import threading
import time

import paramiko
import pytest

from clients.addressing import AddressMap, UnroutableAddress
from clients.redact import REDACTOR
from clients.ssh import (CommandError, HostKeyChanged, LogFollower, RemoteFileNotFound, Result, SshAuthError, SshClient,
                         SshConnectError, SudoAuthError, can_login, known_hosts_name)
from mocks.server import Simulator
from mocks.ssh import DEFAULT_HOST_PASSWORD, SUDO_NO_TTY, attach_ssh, seed_host_ssh, ssh_service

DEFAULT = DEFAULT_HOST_PASSWORD
NEW_SMARTX = "Sm@rtX!2025$#x"
NEW_ROOT = "R00t#Pa$$!@w'd\"q\\"
INSTALLER = "/usr/share/smartx/tower/installer/binary/installer"
DONE = "Install Operation Center Successfully"


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    from plan.example import write_example
    from plan.parse import load

    p, _findings = load(write_example(tmp_path_factory.mktemp("sshplan") / "p.xlsx"))
    return p


_TRANSPORT = paramiko.Transport


def _our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.is_alive() and (isinstance(t, _TRANSPORT) or t.name.startswith("sim-"))]


@pytest.fixture
def make_sim(plan, monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    sims: list[Simulator] = []

    def make(seed: bool = True) -> Simulator:
        s = Simulator.from_plan(plan, time_scale=0.001, load_env_faults=False)     # SSH family included
        if seed:
            seed_host_ssh(s)
        sims.append(s.start())
        return s

    yield make
    for s in sims:
        s.close()
    deadline = time.monotonic() + 3
    while _our_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _our_threads(), f"threads left running: {_our_threads()}"


@pytest.fixture
def sim(make_sim):
    return make_sim()


@pytest.fixture
def amap(sim):
    return AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)


@pytest.fixture
def host(plan) -> str:
    return str(plan.hosts[0].mgmt_ip)


@pytest.fixture
def kh(tmp_path):
    return tmp_path / "delivery" / "known_hosts"


def ssh(amap, address, kh, user="smartx", password=DEFAULT, **kw) -> SshClient:
    return SshClient(address, amap=amap, username=user, password=password, known_hosts=kh, timeout=5, **kw)


# --------------------------------------------------------------------------- login
def test_login_ok_and_bad(sim, amap, host, kh):
    assert can_login(host, "smartx", DEFAULT, amap=amap, known_hosts=kh)
    assert can_login(host, "root", DEFAULT, amap=amap, known_hosts=kh)
    assert not can_login(host, "smartx", "wrong-Pass1!", amap=amap, known_hosts=kh)
    assert not can_login(host, "nobody", DEFAULT, amap=amap, known_hosts=kh)
    with pytest.raises(SshAuthError) as exc:
        ssh(amap, host, kh, password="wrong-Pass1!").connect()
    msg = str(exc.value)
    assert f"smartx@{host}:22" in msg and "登录失败" in msg and "authentication failed" in msg
    assert "wrong-Pass1!" not in msg
    with ssh(amap, host, kh) as c:
        r = c.run("id -un; hostname; whoami", timeout=5)
        assert (r.exit_status, r.stdout.split(), r.stderr) == (0, ["smartx", "localhost.localdomain", "smartx"], "")
        r = c.run("no-such-tool --help", timeout=5)
        assert (r.exit_status, r.stderr) == (127, "sh: no-such-tool: command not found\n")


def test_connection_refused_names_address_port_and_user(sim, amap, host, kh):
    sim.set_up(host, 22, False)
    with pytest.raises(SshConnectError) as exc:
        can_login(host, "smartx", DEFAULT, amap=amap, known_hosts=kh)
    msg = str(exc.value)
    assert f"{host}:22" in msg and "smartx" in msg and "无法连接" in msg and "cannot connect" in msg
    assert DEFAULT not in msg


def test_unmapped_address_is_refused_before_any_socket(sim, amap, kh, monkeypatch):
    opened = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: opened.append(a) or pytest.fail("socket opened"))
    monkeypatch.setattr(paramiko, "Transport", lambda *a, **k: opened.append(a) or pytest.fail("transport made"))
    with pytest.raises(UnroutableAddress):
        ssh(amap, "192.0.2.77", kh).connect()
    with pytest.raises(UnroutableAddress):
        can_login("192.0.2.77", "smartx", DEFAULT, amap=amap, known_hosts=kh)
    assert opened == []


# --------------------------------------------------------------------------- sudo
def test_sudo_needs_a_pty_and_the_client_uses_one(sim, amap, host, kh):
    with ssh(amap, host, kh) as c:
        r = c.run("sudo -S -p '' id -un", stdin=DEFAULT + "\n", timeout=5)      # password on stdin, no PTY
        assert r.exit_status == 1
        assert r.stderr.strip() == SUDO_NO_TTY == "sudo: no tty present and no askpass program specified"
        assert r.stdout == ""
        r = c.sudo("id -un && id -u", timeout=5)
        assert (r.exit_status, r.stdout) == (0, "root\n0\n")                    # no prompt, no echo, no \r
        r = c.sudo("cat /nonexistent", timeout=5)                              # the command's own failure
        assert r.exit_status == 1 and "No such file or directory" in r.stdout
        with pytest.raises(SudoAuthError) as exc:
            c.sudo("id -un", password="Not-the-Pw1!", timeout=5)
        assert "Not-the-Pw1!" not in str(exc.value) and "sudo" in str(exc.value)
    svc = ssh_service(sim, host)
    assert [(rec.user, rec.pty) for rec in svc.commands if rec.command.startswith("sudo -S -p SUDO-PROMPT-")] \
        == [("smartx", True)] * 3


# --------------------------------------------------------------------------- passwords
def test_change_smartx_and_root_passwords(sim, amap, host, kh):
    svc = ssh_service(sim, host)
    with ssh(amap, host, kh) as c:
        c.change_password("root", NEW_ROOT, timeout=5)                 # root first: sudo still takes the old one
        c.change_password("smartx", NEW_SMARTX, sudo_password=DEFAULT, timeout=5)
        assert c.password == NEW_SMARTX
        assert c.sudo("id -un", timeout=5).stdout == "root\n"          # sudo now takes the new password
        with pytest.raises(SudoAuthError):
            c.sudo("id -un", password=DEFAULT, timeout=5)
    assert svc.password_ok("root", NEW_ROOT) and svc.password_ok("smartx", NEW_SMARTX)
    assert not svc.password_ok("root", DEFAULT) and not svc.password_ok("smartx", DEFAULT)
    assert (svc.password_changes("root"), svc.password_changes("smartx")) == (1, 1)
    assert can_login(host, "smartx", NEW_SMARTX, amap=amap, known_hosts=kh)
    assert can_login(host, "root", NEW_ROOT, amap=amap, known_hosts=kh)
    assert not can_login(host, "smartx", DEFAULT, amap=amap, known_hosts=kh)
    assert not can_login(host, "root", DEFAULT, amap=amap, known_hosts=kh)
    with ssh(amap, host, kh, user="root", password=NEW_ROOT) as r:     # root changes passwords without sudo
        r.change_password("smartx", DEFAULT, timeout=5)
        assert r.sudo("id -un", timeout=5).stdout.strip() == "root"
    assert svc.password_ok("smartx", DEFAULT)
    # no password ever travelled on a command line
    assert not any(pw in rec.command for rec in svc.commands for pw in (DEFAULT, NEW_ROOT, NEW_SMARTX))


def test_wrong_sudo_password_leaves_passwords_unchanged(sim, amap, host, kh):
    svc = ssh_service(sim, host)
    with ssh(amap, host, kh) as c:
        with pytest.raises(SudoAuthError) as exc:
            c.change_password("root", NEW_ROOT, sudo_password="Wrong-Pw-9!", timeout=5)
    assert "Wrong-Pw-9!" not in str(exc.value) and NEW_ROOT not in str(exc.value)
    assert svc.password_ok("root", DEFAULT) and svc.password_changes("root") == 0


# --------------------------------------------------------------------------- host keys
def test_host_key_recorded_then_accepted_then_changed(make_sim, plan, host, kh):
    sim1 = make_sim()
    amap1 = AddressMap(simulate=True, mapping=sim1.address_map)
    with ssh(amap1, host, kh) as c:
        assert c.run("true", timeout=5).ok
    text = kh.read_text()
    assert text.startswith(f"{host} ecdsa-sha2-nistp256 ") and "127.0.0.1" not in text
    loaded = paramiko.HostKeys(str(kh))
    assert loaded.lookup(host)["ecdsa-sha2-nistp256"] == ssh_service(sim1, host).host_key
    with ssh(amap1, host, kh) as c:                                    # same key: accepted, nothing appended
        assert c.run("true", timeout=5).ok
    assert kh.read_text() == text

    sim2 = make_sim()                        # a later run: a fresh simulator, same host, same key
    amap2 = AddressMap(simulate=True, mapping=sim2.address_map)
    assert can_login(host, "smartx", DEFAULT, amap=amap2, known_hosts=kh)
    ssh_service(sim2, host).rotate_host_key()                          # the host was reinstalled
    with pytest.raises(HostKeyChanged) as exc:
        ssh(amap2, host, kh).connect()
    e = exc.value
    old, new = ssh_service(sim1, host).host_key.fingerprint, ssh_service(sim2, host).host_key.fingerprint
    assert (e.old_fingerprint, e.new_fingerprint) == (old, new) and old != new
    msg = str(e)
    assert f"{host}:22" in msg and old in msg and new in msg and str(kh) in msg
    assert "主机密钥已变化" in msg and "HOST KEY CHANGED" in msg and "ssh-keygen -R" in msg
    assert not can_login(host, "smartx", "x-wrong-1", amap=amap1, known_hosts=kh)    # sim1 still known
    with pytest.raises(HostKeyChanged):
        can_login(host, "smartx", DEFAULT, amap=amap2, known_hosts=kh)             # never a silent False


def test_non_default_port_and_existing_down_endpoint(sim, kh):
    obs = next(a.address for a in sim.world.addresses if a.role == "obs")
    assert not sim.hub.endpoint(obs, 10022).up                         # the plan made it, down
    svc = attach_ssh(sim, obs, users={"smartx": "HC!r0cks"}, port=10022)
    amap = AddressMap(simulate=True, mapping=sim.address_map)
    with ssh(amap, obs, kh, password="HC!r0cks", port=10022) as c:
        assert c.run("id -un", timeout=5).stdout == "smartx\n"
    assert kh.read_text().startswith(f"[{obs}]:10022 ") and known_hosts_name(obs, 10022) == f"[{obs}]:10022"
    assert attach_ssh(sim, obs, users={}, port=10022) is svc           # idempotent: same key, same files


# --------------------------------------------------------------------------- files
def test_write_resolv_conf_via_sudo_and_read_back(sim, amap, host, kh):
    content = "# written by the suite\nnameserver 10.0.0.114\nnameserver 10.0.0.115\nsearch a'b \"c\" $HOME\n"
    with ssh(amap, host, kh) as c:
        with pytest.raises(CommandError) as exc:                           # plain user: permission denied
            c.run("printf '%s' x > /etc/resolv.conf", timeout=5, check=True)
        assert "Permission denied" in str(exc.value)
        c.write_file_sudo("/etc/resolv.conf", content, timeout=5)
        assert c.read_file("/etc/resolv.conf", timeout=5) == content
        assert c.read_file("/etc/resolv.conf", sudo_password=DEFAULT, timeout=5) == content
        with pytest.raises(RemoteFileNotFound):
            c.read_file("/etc/nope.conf", timeout=5)
    assert ssh_service(sim, host).fs.text("/etc/resolv.conf") == content
    assert ssh_service(sim, host).fs.stat("/etc/resolv.conf").owner == "root"


def test_follow_a_growing_file_by_offset(sim, amap, host, kh):
    sim.clock.time_scale = 1e6                      # simulated time moves only with sim.advance
    svc = ssh_service(sim, host)
    svc.fs.provide("/home/smartx/grow.log",
                   lambda t: "".join(f"步骤 step {i}\n" for i in range(int(t // 10))), owner="smartx")
    with ssh(amap, host, kh) as c:
        first = c.read_from("/home/smartx/grow.log", 0, timeout=5)
        sim.advance(35)
        second = c.read_from("grow.log", first.offset, timeout=5)          # relative to the home directory
        assert second.offset == second.size == first.offset + len(second.data)
        assert (first.data + second.data).decode() == svc.fs.text("/home/smartx/grow.log")[:second.offset]
        assert c.read_from("grow.log", second.offset, timeout=5).data == b""
        svc.fs.write("/home/smartx/grow.log", "rotated\n", owner="smartx")   # truncated: read again from 0
        assert c.read_from("grow.log", second.offset, timeout=5).data == b"rotated\n"

        svc.fs.provide("/home/smartx/grow.log", lambda t: "".join(f"{i}0s\n" for i in range(int(min(t, 300) // 10)))
                       + (DONE + "\n" if t >= 300 else ""), owner="smartx")
        f = LogFollower(c, "grow.log")
        polls = follow(f, DONE, lambda: sim.advance(60))
        assert polls >= 2 and f.text.endswith(DONE + "\n")
        assert f.text == svc.fs.text("/home/smartx/grow.log")
        with pytest.raises(RemoteFileNotFound):
            c.read_from("missing.log", 0, timeout=5)


def test_installer_extension_nohup_and_sudo_follow(sim, amap, host, kh):
    """The CloudTower step's shape: a registered program, ``sudo nohup ... &``, root-owned nohup.out."""
    sim.clock.time_scale = 1e6
    svc = ssh_service(sim, host)

    def installer(inv):
        assert inv.user == "root" and inv.argv[1:] == ["deploy"]
        inv.provide_output(lambda t: "".join(f"[{i * 60}s] installing\n" for i in range(int(min(t, 1200) // 60)))
                           + (DONE + "\n" if t >= 1200 else ""))          # append-only, like a real log
        return 0

    svc.register_command(INSTALLER, installer)
    with ssh(amap, host, kh) as c:
        r = c.sudo(f"nohup {INSTALLER} deploy &", timeout=5)
        assert r.exit_status == 0 and "appending output to 'nohup.out'" in r.stdout
        st = svc.fs.stat("/home/smartx/nohup.out")
        assert (st.owner, st.mode) == ("root", 0o600)
        with pytest.raises(CommandError) as exc:
            c.read_from("nohup.out", 0, timeout=5)
        assert "Permission denied" in str(exc.value)
        f = LogFollower(c, "nohup.out", sudo_password=DEFAULT)
        follow(f, DONE, lambda: sim.advance(120))
        seen = f.text
        assert seen.startswith("[0s] installing\n") and seen.endswith(DONE + "\n")
        assert seen == svc.fs.text("/home/smartx/nohup.out")[:len(seen.encode())]


# --------------------------------------------------------------------------- wiring and secrecy
def test_install_seeds_accounts_when_deployment_succeeds(make_sim, plan, host, kh):
    from clients.payloads import deploy_payload

    sim = make_sim(seed=False)
    amap = AddressMap(simulate=True, mapping=sim.address_map)            # taken before deployment: has tcp/22
    assert (host, 22, "tcp") in amap.mapping
    assert not can_login(host, "smartx", DEFAULT, amap=amap, known_hosts=kh)      # sshd up, no account yet
    scans = {ip: sim.deployment.scan_host(ip) for ip in sim.deployment.hosts}
    sim.deployment.deploy(deploy_payload(plan, scans), host)
    sim.advance(3600)
    assert can_login(host, "smartx", DEFAULT, amap=amap, known_hosts=kh)
    with ssh(amap, host, kh, user="root") as c:
        assert c.run("hostname", timeout=5).stdout == f"{plan.hosts[0].hostname}\n"
    assert sim.events.handlers("deployed").count(sim.family("ssh")._on_deployed) == 1   # wired once


def test_passwords_never_in_logs_or_errors(sim, amap, host, kh, caplog):
    caplog.set_level(logging.DEBUG)
    secrets_ = [DEFAULT, NEW_ROOT, NEW_SMARTX, "Wr0ng-Secret!x"]
    errors: list[str] = []
    with ssh(amap, host, kh) as c:
        c.sudo("id", timeout=5)
        c.run("sudo -S -p '' true", stdin=DEFAULT + "\n", timeout=5)
        for call in (lambda: c.sudo("id", password="Wr0ng-Secret!x", timeout=5),
                     lambda: c.change_password("root", NEW_ROOT, sudo_password="Wr0ng-Secret!x", timeout=5)):
            with pytest.raises(SudoAuthError) as exc:
                call()
            errors.append(str(exc.value))
        c.change_password("root", NEW_ROOT, timeout=5)
        c.change_password("smartx", NEW_SMARTX, timeout=5)
    for pw in (DEFAULT, "Wr0ng-Secret!x"):
        with pytest.raises(SshAuthError) as exc:
            ssh(amap, host, kh, user="root", password=pw).connect()
        errors.append(str(exc.value))
    assert all(s in REDACTOR.secrets for s in secrets_)
    text = caplog.text + "\n".join(errors) + "\n".join(str(r.__dict__) for r in caplog.records)
    assert caplog.records and errors
    for s in secrets_:
        assert s not in text
    requests = "\n".join(str(r.to_dict()) for r in sim.requests if r.method == "SSH")
    assert "chpasswd" in requests and not any(s in requests for s in secrets_)


def test_ssh_fault_rules_and_request_log(sim, amap, host, kh):
    sim.faults.add({"address": host, "status": 503})                  # an HTTP rule: SSH ignores it
    sim.faults.add({"method": "SSH", "path": "hostname", "address": host, "status": 500, "msg": "boom"})
    sim.faults.add({"method": "SSH", "path": "*flaky*", "action": {"drop": True}})
    with ssh(amap, host, kh) as c:
        assert c.run("id -un", timeout=5).stdout == "smartx\n"
        assert c.run("hostname", timeout=5) == Result(1, "", "boom\n")
        with pytest.raises(SshConnectError) as exc:                      # the connection breaks
            c.run("echo flaky", timeout=5)
        assert "echo flaky" in str(exc.value) and f"smartx@{host}:22" in str(exc.value)
        assert c.run("id -un", timeout=5).stdout == "smartx\n"           # reconnects on next use
    assert sim.count("SSH", address=host) == 4 and sim.count("SSH", path="hostname") == 1
    assert [r.result for r in sim.requests if r.method == "SSH"] == ["exit 0", "fault", "dropped", "exit 0"]
    import json
    snap = json.dumps(sim.snapshot())
    assert '"password_changes"' in snap and DEFAULT not in snap


def test_host_passwords_is_idempotent(sim, amap, plan, host, kh):
    from clients.ssh import HostPasswords

    h = plan.hosts[0]
    hp = HostPasswords(amap=amap, known_hosts=kh)
    svc = ssh_service(sim, host)
    assert hp.set_host_passwords(h) == "changed"
    assert svc.password_ok(h.ssh_user, h.ssh_password) and svc.password_ok(h.admin_user, h.admin_password)
    assert hp.set_host_passwords(h) == "already"
    assert svc.password_changes(h.ssh_user) == svc.password_changes(h.admin_user) == 1
    svc.set_password(h.admin_user, DEFAULT)                           # half-done earlier run: root not changed
    assert hp.set_host_passwords(h) == "changed" and svc.password_ok(h.admin_user, h.admin_password)


def follow(f, until: str, advance, polls: int = 100) -> int:
    """Poll a LogFollower until ``until`` shows, advancing simulated time between polls."""
    for n in range(1, polls + 1):
        f.poll()
        if until in f.text:
            return n
        advance()
    raise AssertionError(f"{until!r} never appeared; read: {f.text[-300:]!r}")
