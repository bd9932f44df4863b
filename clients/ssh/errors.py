"""SSH errors (each names the address, port and user, never a password) and command results."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import paramiko

from ..redact import REDACTOR

log = logging.getLogger("smtx.ssh")


class SshError(RuntimeError):
    """Base of every SSH failure; the message is bilingual and already redacted."""

    def __init__(self, message: str):
        super().__init__(REDACTOR.text(message))


class SshConnectError(SshError):
    """The TCP connection or the SSH handshake failed."""


class SshAuthError(SshError):
    """The server rejected the user name / password."""


class HostKeyChanged(SshError):
    """The host's key differs from the one recorded on first contact."""

    def __init__(self, address: str, port: int, name: str, known_hosts: str, old: paramiko.PKey,
                 new: paramiko.PKey):
        self.address, self.port, self.name, self.known_hosts = address, port, name, known_hosts
        self.old_fingerprint, self.new_fingerprint = old.fingerprint, new.fingerprint
        fix = f"ssh-keygen -R '{name}' -f '{known_hosts}'" if known_hosts != "(memory)" else "重新运行 / rerun"
        super().__init__(
            f"SSH 主机密钥已变化：{address}:{port} 记录的是 {old.get_name()} {old.fingerprint}，本次收到 "
            f"{new.get_name()} {new.fingerprint}（记录于 {known_hosts}）。可能是主机已重装，也可能是连接被劫持。"
            f"确认主机确实重装后，删除旧记录（{fix}）再重试；否则不要继续。"
            f" / SSH HOST KEY CHANGED for {address}:{port}: recorded {old.get_name()} {old.fingerprint}, "
            f"now offered {new.get_name()} {new.fingerprint} (known hosts: {known_hosts}). The host may have "
            f"been reinstalled, or the connection is being intercepted. Only after confirming a reinstall, "
            f"remove the old entry ({fix}) and rerun; otherwise stop here.")


class SshTimeout(SshError):
    """A command or a wait did not finish in time."""


class SudoError(SshError):
    """sudo refused to run the command (no terminal, not in sudoers, ...)."""


class SudoAuthError(SudoError):
    """sudo rejected the password."""


class CommandError(SshError):
    """A command exited with a non-zero status where success was required."""

    def __init__(self, message: str, result: Result):
        self.result = result
        super().__init__(message)


class RemoteFileNotFound(SshError, FileNotFoundError):
    """The remote file does not exist."""


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Result:
    exit_status: int            # -1: the server closed the channel without an exit status
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class Chunk:
    data: bytes                 # bytes read
    offset: int                 # next offset to read from
    size: int                   # file size when read
    text: str = ""              # data decoded as UTF-8 (LogFollower decodes across chunk boundaries)


