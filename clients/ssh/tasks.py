"""What the steps do over SSH: follow a growing log, check a login, set the hosts' passwords (guide §03)."""
from __future__ import annotations

import codecs
import logging
import shlex
from pathlib import Path

from ..addressing import AddressMap
from ..redact import REDACTOR
from .client import SshClient
from .errors import RemoteFileNotFound, SshAuthError, SshConnectError

log = logging.getLogger("smtx.ssh")


class LogFollower:
    """Follows a growing remote file (nohup.out) by byte offset, one short command per :meth:`poll`.

    A dropped connection reconnects on the next poll, a file that does not exist yet counts as empty,
    a truncated file is read again from 0, and UTF-8 is decoded across chunk boundaries. Waiting
    (interval, limit, progress lines) is :func:`clients.poll.wait_for`'s job, not this class's."""

    def __init__(self, ssh: "SshClient", path: str, *, offset: int = 0, sudo_password: str | None = None):
        self.ssh, self.path, self.offset, self.sudo_password = ssh, path, offset, sudo_password
        self.text = ""               # everything read since the start offset (redacted)
        self.missing = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @classmethod
    def from_end(cls, ssh: "SshClient", path: str, *, sudo_password: str | None = None) -> "LogFollower":
        """Follow only what is written from now on (nohup appends to an existing nohup.out)."""
        size = ssh.sudo(f"wc -c < {shlex.quote(path)}", password=sudo_password) if sudo_password else \
            ssh.run(f"wc -c < {shlex.quote(path)}")
        start = int(size.stdout.strip()) if size.ok and size.stdout.strip().isdigit() else 0
        return cls(ssh, path, offset=start, sudo_password=sudo_password)

    def poll(self) -> str:
        """Read what was appended since the last poll; returns it (possibly empty)."""
        try:
            chunk = self.ssh.read_from(self.path, self.offset, sudo_password=self.sudo_password)
            self.missing = False
        except RemoteFileNotFound:
            self.missing = True
            return ""
        except SshConnectError as exc:
            log.warning("ssh %s: following %s: %s; reconnecting on the next poll", self.ssh.target, self.path, exc)
            return ""
        if not chunk.data:
            return ""
        if chunk.offset - len(chunk.data) != self.offset:          # truncated: read again from 0
            self._decoder.reset()
        self.offset = chunk.offset
        new = REDACTOR.text(self._decoder.decode(chunk.data))
        self.text += new
        return new


def can_login(address: str, user: str, password: str, *, amap: AddressMap, port: int = 22,
              known_hosts: Path | str | None = None, timeout: float = 10) -> bool:
    """True when ``user``/``password`` logs in; False when the server rejects them. Network
    errors, host-key changes and unroutable addresses raise (they say nothing about the password)."""
    c = SshClient(address, amap=amap, username=user, password=password, port=port, known_hosts=known_hosts,
                  timeout=timeout)
    try:
        c.connect()
        return True
    except SshAuthError:
        return False
    finally:
        c.close()


DEFAULT_HOST_PASSWORD = "P@ssw0rd!123"     # host accounts right after cluster init (field notes)


class HostPasswords:
    """Guide §03 "批量配置主机密码": set a host's admin (root) and SSH (smartx) passwords to the plan's.

    Idempotent: a host whose SSH user already logs in with the planned password and whose admin
    user does too counts as ``"already"``; otherwise the admin password is changed first (sudo
    still takes the SSH user's current password), then the SSH user's own, and the SSH login
    with the new password is checked. Returns ``"changed"`` or ``"already"``."""

    def __init__(self, *, amap: AddressMap, known_hosts: Path | str | None, timeout: float = 10,
                 default_password: str = DEFAULT_HOST_PASSWORD):
        self.amap, self.known_hosts, self.timeout = amap, known_hosts, timeout
        self.default_password = default_password
        REDACTOR.add(default_password)

    def _client(self, address: str, user: str, password: str) -> SshClient:
        return SshClient(address, amap=self.amap, username=user, password=password, known_hosts=self.known_hosts,
                         timeout=self.timeout)

    def _login(self, address: str, user: str, password: str) -> bool:
        return can_login(address, user, password, amap=self.amap, known_hosts=self.known_hosts, timeout=self.timeout)

    def set_host_passwords(self, host) -> str:
        address = str(host.mgmt_ip)
        user, new_user_pw = host.ssh_user, host.ssh_password
        admin, new_admin_pw = host.admin_user, host.admin_password
        REDACTOR.add(new_user_pw, new_admin_pw)
        if self._login(address, user, new_user_pw):
            if admin == user or self._login(address, admin, new_admin_pw):
                log.info("SSH %s: %s/%s 已是规划密码 / already have the planned passwords", address, user, admin)
                return "already"
            current = new_user_pw
        elif self._login(address, user, self.default_password):
            current = self.default_password
        else:
            raise SshAuthError(
                f"{user}@{address}:22 既不能用规划密码也不能用部署后默认密码登录；请人工确认该主机的当前密码。"
                f" / {user}@{address}:22 logs in neither with the planned password nor with the post-deploy "
                f"default one; check the host's current password by hand.")
        with self._client(address, user, current) as c:
            if admin != user:
                c.change_password(admin, new_admin_pw, sudo_password=current)
            if current != new_user_pw:
                c.change_password(user, new_user_pw, sudo_password=current)
        if not self._login(address, user, new_user_pw):
            raise SshAuthError(f"{user}@{address}:22 修改后仍无法用新密码登录 / {user}@{address}:22 does not log in "
                               f"with the new password after the change")
        log.info("SSH %s: 已修改 %s、%s 的密码 / passwords of %s and %s changed", address, admin, user, admin, user)
        return "changed"
