"""Host keys, trust on first use: an OpenSSH-compatible known_hosts file keyed by the plan's address."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import paramiko

from .errors import HostKeyChanged, SshError

log = logging.getLogger("smtx.ssh")


_KH_LOCK = threading.Lock()
_MEMORY_KEYS = paramiko.HostKeys()      # used when no known_hosts file is given (per process)


def known_hosts_name(address: str, port: int = 22) -> str:
    """The known_hosts key of a logical address: ``addr`` for port 22, else ``[addr]:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def _load_known(path: Path | None) -> paramiko.HostKeys:
    if path is None:
        return _MEMORY_KEYS
    hk = paramiko.HostKeys()
    if path.exists():
        try:
            hk.load(str(path))
        except (OSError, paramiko.hostkeys.InvalidHostKey, ValueError) as exc:
            raise SshError(f"无法读取 known_hosts 文件 {path}：{exc} / cannot read known_hosts {path}: {exc}") from None
    return hk


def prefer_known_key_types(t: paramiko.Transport, address: str, port: int, path: Path | None) -> None:
    """Ask for the key types already recorded for this host first (as OpenSSH does), so a host
    with several host keys is checked against the one we know rather than reported as changed."""
    with _KH_LOCK:
        entries = _load_known(path).lookup(known_hosts_name(address, port))
    if not entries:
        return
    sec = t.get_security_options()
    wanted: list[str] = []
    for kt in entries.keys():
        wanted += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if kt == "ssh-rsa" else [kt]
    first = [k for k in wanted if k in sec.key_types]
    if first:
        sec.key_types = first + [k for k in sec.key_types if k not in first]


def check_host_key(address: str, port: int, key: paramiko.PKey, path: Path | None) -> bool:
    """Raises HostKeyChanged on a mismatch; returns True when the key was recorded just now."""
    name = known_hosts_name(address, port)
    where = str(path) if path is not None else "(memory)"
    with _KH_LOCK:
        hk = _load_known(path)
        entries = hk.lookup(name)
        if entries:
            same = entries.get(key.get_name())
            if same is not None and same.asbytes() == key.asbytes():
                return False
            old = same if same is not None else next(iter(entries.values()))
            raise HostKeyChanged(address, port, name, where, old, key)
        if path is None:
            hk.add(name, key.get_name(), key)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            line = paramiko.hostkeys.HostKeyEntry([name], key).to_line()
            with open(path, "a+", encoding="utf-8") as f:
                f.seek(0, 2)
                if f.tell() > 0:
                    f.seek(f.tell() - 1)
                    if f.read(1) != "\n":
                        f.write("\n")
                f.write(line)
    log.info("SSH 首次连接，记录主机密钥 / first contact, host key recorded: %s %s %s (%s)", name, key.get_name(),
             key.fingerprint, where)
    return True


