"""The SSH family: :class:`SshFamily` (a :class:`mocks.family.Family`), its model
:class:`SshServices` (``sim.state.ssh``: every SSH service, by address and port; snapshots),
:func:`attach_ssh`, :func:`ssh_service` and :func:`seed_host_ssh`."""
from __future__ import annotations

from typing import Callable, Iterable

from ..family import Family
from ..hub import normalize_address
from .server import SshService

DEFAULT_HOST_PASSWORD = "P@ssw0rd!123"        # field notes: host accounts after cluster init
HOST_SSH_USERS = ("smartx", "root")


class SshServices:
    """``sim.state.ssh``: every SSH service of a simulator, by (address, port)."""

    def __init__(self):
        self.services: dict[tuple[str, int], SshService] = {}
        # the hosts' sudo policy for smartx (profiles sudo-password / sudo-nopasswd, mocks/profiles.py):
        # "password" asks for the user's password; "nopasswd" is NOPASSWD (no prompt, stdin left to the command)
        self.host_sudo = "password"

    def service(self, address: str, port: int = 22) -> SshService:
        return self.services[(str(address), int(port))]

    def to_dict(self) -> dict:
        return {"services": [s.to_dict() for s in self.services.values()]}

    def export_state(self) -> dict:
        """For snapshots: accounts as salted PBKDF2 digests (never clear text) and host-key generations."""
        out = []
        for (address, port), svc in self.services.items():
            accounts = {n: {"uid": a.uid, "home": a.home, "salt": a.salt.hex(), "digest": a.digest.hex(),
                            "sudo": a.sudo, "nopasswd": a.nopasswd, "changes": a.changes}
                        for n, a in svc._accounts.items()}
            out.append({"address": address, "port": port, "generation": svc.host_key_generation,
                        "accounts": accounts})
        return {"services": out}

    def import_state(self, saved: dict) -> list[str]:
        notes = []
        for entry in saved.get("services", []):
            svc = self.services.get((entry["address"], int(entry["port"])))
            if svc is None:
                notes.append(f"ssh {entry['address']}:{entry['port']} is not simulated here; skipped")
                continue
            for name, a in entry.get("accounts", {}).items():
                svc.add_user(name, None, home=a.get("home"), sudo=a.get("sudo", True))
                acct = svc._accounts[name]
                acct.salt, acct.digest = bytes.fromhex(a["salt"]), bytes.fromhex(a["digest"])
                acct.changes = int(a.get("changes", 0))
                acct.nopasswd = bool(a.get("nopasswd", False))
            while svc.host_key_generation < int(entry.get("generation", 0)):
                svc.rotate_host_key()
        return notes


class SshFamily(Family):
    """SSH on every host's management IP (tcp/22, from the start, with sshd listening and no account
    able to log in yet) and on guests that other families attach (:func:`attach_ssh`). Reacts to
    ``deployed``: a deployment's hosts get ``smartx`` / ``root`` with the post-deploy password."""

    name = "ssh"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.model = SshServices()

    def attach(self) -> None:
        for ip, host in self.sim.deployment.hosts.items():
            attach_ssh(self.sim, ip, users={}, up=True, hostname=lambda h=host: h.hostname, role="host-mgmt")
        self.sim.events.on("deployed", self._on_deployed)

    def _on_deployed(self, op, state: str) -> None:
        if state != "success":
            return
        dep = self.sim.deployment
        seed_host_ssh(self.sim, [h.mgmt_ip for h in (dep.host_by_uuid(u) for u in op.host_uuids) if h is not None])


def _family(sim) -> SshServices:
    return sim.family("ssh").model


def attach_ssh(sim, address: str, *, users: dict[str, str | None], up: bool = True, port: int = 22,
               hostname: str | Callable[[], str] | None = None, role: str = "ssh") -> SshService:
    """An SSH server at ``address:port`` on the simulator (added to ``sim.address_map`` as tcp).

    Idempotent: attaching again returns the same service (same host key, same files) and sets the
    given users' passwords. An endpoint the plan already created (CloudTower/OBS tcp 22 or 10022,
    down) is reused: it gets the SSH handler, and ``up`` decides whether it listens."""
    address = normalize_address(address)
    fam = _family(sim)
    key = (address, int(port))
    svc = fam.services.get(key)
    if svc is None:
        svc = SshService(address, port=port, clock=sim.clock, hostname=hostname or "localhost.localdomain",
                         requests=sim.requests, faults=sim.faults)
        fam.services[key] = svc
    elif hostname is not None:
        svc._hostname = hostname
    for name, pw in users.items():
        svc.add_user(name, pw)
    ep = sim.hub.endpoint(address, port, "tcp")
    if ep is None:
        ep = sim.hub.add_tcp(address, port, scheme="ssh", up=False, role=role, stream_handler=svc.handle_connection)
    ep.stream_handler = svc.handle_connection
    ep.scheme = "ssh"
    if ep.up != up:
        sim.set_up(address, port, up, proto="tcp")
    return svc


def ssh_service(sim, address: str, port: int = 22) -> SshService:
    """The SSH service attached at ``address:port`` (KeyError when none)."""
    return _family(sim).service(normalize_address(address), port)


def seed_host_ssh(sim, addresses: Iterable[str] | None = None) -> list[SshService]:
    """Post-deploy SSH accounts on hosts: ``smartx`` and ``root`` with ``P@ssw0rd!123``.

    ``addresses``: management IPs (default: every host of the simulator)."""
    wanted = [str(a) for a in addresses] if addresses is not None else list(sim.deployment.hosts)
    nopasswd = _family(sim).host_sudo == "nopasswd"
    out = []
    for ip in wanted:
        host = sim.deployment.hosts.get(ip)
        svc = attach_ssh(sim, ip, users={u: DEFAULT_HOST_PASSWORD for u in HOST_SSH_USERS}, up=True,
                         hostname=(lambda h=host: h.hostname) if host is not None else None)
        svc.set_sudo_nopasswd("smartx", nopasswd)
        out.append(svc)
    return out

