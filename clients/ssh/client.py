"""The SSH client: connect through the address map, run, sudo with a PTY, change passwords, read files
(see :mod:`clients.ssh` for what goes over the wire)."""
from __future__ import annotations

import logging
import re
import secrets
import select
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import paramiko

from ..addressing import AddressMap
from ..redact import REDACTOR
from .errors import (Chunk, CommandError, RemoteFileNotFound, Result, SshAuthError, SshConnectError, SshError, SshTimeout,
                     SudoAuthError, SudoError)
from .hostkeys import check_host_key, prefer_known_key_types

log = logging.getLogger("smtx.ssh")


SUDO_NO_TTY = "no tty present"
SUDO_RETRY = "Sorry, try again."
MAX_WRITE = 64 * 1024            # one shell argument (Linux MAX_ARG_STRLEN is 128 KiB)



# --------------------------------------------------------------------------- helpers
def _check_password_text(pw: str, what: str) -> None:
    if not isinstance(pw, str) or pw == "":
        raise ValueError(f"{what} 不能为空 / {what} must be a non-empty string")
    if any(ord(c) < 32 or ord(c) == 127 for c in pw):
        raise ValueError(f"{what} 含控制字符（换行等），无法经终端输入 / {what} contains control characters "
                         f"(newline, ...) that cannot be typed through a terminal")


def _pty_text(raw: bytes) -> str:
    return raw.replace(b"\r\n", b"\n").decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- the client
class SshClient:
    """One SSH connection (opened on first use, reopened after ``close``)."""

    def __init__(self, address: str, *, amap: AddressMap, username: str, password: str, port: int = 22,
                 known_hosts: Path | str | None = None, timeout: float = 10):
        self.address, self.port = str(address), int(port)
        self.amap = amap
        self.username = username
        self.password = password
        self.known_hosts = Path(known_hosts) if known_hosts is not None else None
        self.timeout = float(timeout)
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()
        self._nopasswd: bool | None = None       # sudo without a password? (sudo -n true; None: not asked yet)
        REDACTOR.add(password)

    # ---- naming
    @property
    def target(self) -> str:
        return f"{self.username}@{self.address}:{self.port}"

    def __repr__(self) -> str:
        return f"<SshClient {self.target}>"

    # ---- connection
    def connect(self) -> SshClient:
        with self._lock:
            if self._transport is not None and self._transport.is_active():
                return self
            self._transport = None
            host, port = self.amap.resolve(self.address, self.port, "tcp")   # before any socket exists
            via = "" if (host, port) == (self.address, self.port) else f"，经 / via {host}:{port}"
            where = f"{self.address}:{self.port}（用户 / user {self.username}{via}）"
            try:
                sock = socket.create_connection((host, port), timeout=self.timeout)
            except OSError as exc:
                raise SshConnectError(
                    f"SSH 无法连接 {where}：{exc}。请确认主机已开机、sshd 正在运行、TCP {self.port} 可达。"
                    f" / cannot connect to SSH at {self.address}:{self.port} as {self.username}: {exc}. Check that "
                    f"the host is up, sshd is running and TCP {self.port} is reachable.") from None
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # small packets: no Nagle stalls
            except OSError:
                pass
            t = paramiko.Transport(sock)
            t.banner_timeout = t.handshake_timeout = t.auth_timeout = self.timeout
            try:
                prefer_known_key_types(t, self.address, self.port, self.known_hosts)
                try:
                    t.start_client(timeout=self.timeout)
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise SshConnectError(
                        f"SSH 握手失败 {where}：{exc}。该端口可能不是 SSH 服务，或连接被中断。"
                        f" / SSH handshake with {self.address}:{self.port} as {self.username} failed: {exc}. "
                        f"The port may not be an SSH server, or the connection was cut.") from None
                check_host_key(self.address, self.port, t.get_remote_server_key(), self.known_hosts)
                try:
                    t.auth_password(self.username, self.password)
                except paramiko.AuthenticationException:
                    raise SshAuthError(
                        f"SSH 登录失败 {self.username}@{self.address}:{self.port}：用户名或密码错误（或该用户不允许"
                        f"密码登录）。请核对规划表中的账号与密码；集群初始化后主机账号为默认密码。"
                        f" / SSH authentication failed for {self.username}@{self.address}:{self.port}: wrong user "
                        f"name or password (or password login is disabled for this user). Check the plan's "
                        f"account; right after cluster init the host accounts still have the default one.") from None
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise SshConnectError(
                        f"SSH 登录过程中连接中断 {where}：{exc} / the connection to {self.address}:{self.port} "
                        f"broke during login as {self.username}: {exc}") from None
            except BaseException:
                t.close()
                sock.close()
                raise
            t.set_keepalive(30)
            self._transport = t
            log.info("SSH 已连接 / connected: %s%s", self.target, f" (via {host}:{port})" if via else "")
            return self

    def close(self) -> None:
        with self._lock:
            t, self._transport = self._transport, None
        if t is not None:
            t.close()

    def __enter__(self) -> SshClient:
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def host_key(self) -> paramiko.PKey | None:
        t = self._transport
        return t.get_remote_server_key() if t is not None else None

    # ---- exec plumbing
    def _exec(self, cmd: str, *, timeout: float, pty: bool = False, stdin: bytes | None = None,
              on_output: Callable[[bytearray, paramiko.Channel], None] | None = None,
              what: str | None = None, level: int = logging.INFO) -> tuple[int, bytes, bytes]:
        self.connect()
        assert self._transport is not None
        shown = REDACTOR.text(what or cmd)
        if len(shown) > 300:
            shown = shown[:300] + f"… (+{len(shown) - 300} chars)"
        try:
            chan = self._transport.open_session(timeout=self.timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise SshConnectError(f"SSH 会话打开失败 {self.target}：{exc} / cannot open an SSH session on "
                                  f"{self.target}: {exc}") from None
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        try:
            if pty:
                chan.get_pty(term="vt100", width=500, height=50)
            chan.exec_command(cmd)
            if stdin is not None:
                chan.sendall(stdin)
                if not pty:
                    chan.shutdown_write()
            self._pump(chan, out, err, deadline=deadline, timeout=timeout, pty=pty, on_output=on_output, shown=shown)
            status = self._exit_status(chan)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise SshConnectError(f"SSH 连接中断 {self.target}，命令：{shown}：{exc} / the SSH connection to "
                                  f"{self.target} broke during: {shown}: {exc}") from None
        finally:
            chan.close()
        log.log(level, "ssh %s%s $ %s -> exit %s", self.target, " (pty)" if pty else "", shown, status)
        return status, bytes(out), bytes(err)

    def _pump(self, chan: paramiko.Channel, out: bytearray, err: bytearray, *, deadline: float, timeout: float,
              pty: bool, on_output: Callable[[bytearray, paramiko.Channel], None] | None, shown: str) -> None:
        """Read stdout/stderr until the command exits and both are drained; SshTimeout at ``deadline``."""
        while True:
            got = False
            while chan.recv_ready():
                out += chan.recv(65536)
                got = True
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                got = True
            if got and on_output is not None:
                on_output(out, chan)
            if chan.exit_status_ready() or chan.closed:
                if not chan.recv_ready() and not chan.recv_stderr_ready():
                    return
                continue
            if time.monotonic() > deadline:
                raise SshTimeout(
                    f"SSH 命令超时（{timeout:g}s）{self.target}：{shown} / SSH command timed out after "
                    f"{timeout:g}s on {self.target}: {shown}\n已收到输出 / output so far: "
                    f"{_pty_text(bytes(out[-500:])) if pty else bytes(out[-500:]).decode('utf-8', 'replace')}")
            if not got:                                  # wait for data (or EOF) without spinning
                wait = max(0.0, min(deadline - time.monotonic(), 0.5))
                if chan.eof_received:
                    chan.status_event.wait(min(wait, 0.01))
                else:
                    select.select([chan], [], [], wait)

    def _exit_status(self, chan: paramiko.Channel) -> int:
        """The command's exit status; EOFError when the connection died before it reported one."""
        status = chan.recv_exit_status() if chan.exit_status_ready() else -1
        if status == -1:                                 # no exit-status message (paramiko's -1)
            t = self._transport
            for _ in range(50):                          # the transport marks itself dead just after
                if t is None or not t.is_active() or chan.eof_received:    # unlinking its channels
                    break
                time.sleep(0.002)
            if t is None or not t.is_active() or not chan.eof_received:
                raise EOFError("the connection closed before the command reported an exit status")
        return status

    # ---- commands
    def run(self, cmd: str, *, timeout: float = 60, stdin: str | bytes | None = None, pty: bool = False,
            check: bool = False) -> Result:
        """Run ``cmd`` (no PTY by default). ``stdin`` is sent and then EOF (with a PTY, EOF is only ``^D``)."""
        data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
        status, out, err = self._exec(cmd, timeout=timeout, pty=pty, stdin=data)
        res = Result(status, REDACTOR.text(_pty_text(out) if pty else out.decode("utf-8", "replace")),
                     REDACTOR.text(err.decode("utf-8", "replace")))
        if check and not res.ok:
            raise self._command_error(cmd, res)
        return res

    def _command_error(self, what: str, res: Result) -> CommandError:
        return CommandError(
            f"SSH 命令失败 {self.target}：{what} → 退出码 {res.exit_status}\n输出 / output: "
            f"{(res.stdout + res.stderr).strip()[-2000:] or '(空 / empty)'}"
            f" / SSH command failed on {self.target}: {what} -> exit {res.exit_status}", res)

    def sudo_nopasswd(self, *, timeout: float = 30) -> bool:
        """True when the login user may sudo without a password (NOPASSWD): ``sudo -n true`` with a PTY
        (sudo may require a terminal) exits 0. Asked once per client; root counts as True."""
        if self.username == "root":
            return True
        if self._nopasswd is None:
            status, out, _ = self._exec("sudo -n true", timeout=timeout, pty=True, what="sudo -n true",
                                        level=logging.DEBUG)
            self._nopasswd = status == 0
            log.info("ssh %s: sudo %s / sudo %s", self.target, "无需密码" if self._nopasswd else "需要密码",
                     "needs no password (NOPASSWD)" if self._nopasswd else "asks for the password")
            if not self._nopasswd and b"password is required" not in out:
                log.debug("ssh %s: sudo -n true said: %s", self.target, _pty_text(out).strip()[-300:])
        return self._nopasswd

    def _sudo_exec(self, cmd: str, password: str | None, timeout: float,
                   level: int = logging.INFO) -> tuple[int, bytes]:
        """``sudo -S -p <marker> sh -c <cmd>`` with a PTY -> (status, output with ``\\r\\n`` undone); under
        passwordless sudo ``sudo -n sh -c <cmd>`` (no prompt to answer)."""
        pw = self.password if password is None else password
        _check_password_text(pw, "sudo 密码 / sudo password")
        REDACTOR.add(pw)
        if self.username == "root":
            status, out, err = self._exec(f"sh -c {shlex.quote(cmd)}", timeout=timeout, what=cmd, level=level)
            return status, out + err
        if self.sudo_nopasswd():
            status, out, _ = self._exec(f"sudo -n sh -c {shlex.quote(cmd)}", timeout=timeout, pty=True,
                                        what=f"sudo -n {cmd}", level=level)
            if not (status != 0 and b"a password is required" in out):
                return status, out.replace(b"\r\n", b"\n")
            self._nopasswd = False               # a cached ticket fooled the check: ask for the password
        marker = f"SUDO-PROMPT-{secrets.token_hex(6)}:"
        wire = f"sudo -S -p {shlex.quote(marker)} sh -c {shlex.quote(cmd)}"
        mark = marker.encode()
        state = {"prompts": 0}

        def answer(out: bytearray, chan: paramiko.Channel) -> None:
            n = out.count(mark)
            while state["prompts"] < n:
                state["prompts"] += 1
                chan.sendall((pw + "\n").encode("utf-8") if state["prompts"] == 1 else b"\x04")

        status, out, _ = self._exec(wire, timeout=timeout, pty=True, on_output=answer, what=f"sudo {cmd}",
                                    level=level)
        raw = out.replace(b"\r\n", b"\n")
        if state["prompts"] == 1:
            before, _, raw = raw.partition(mark)            # before: sudo's first-use lecture, if any
            raw = raw[1:] if raw.startswith(b"\n") else raw  # the newline sudo prints after the password
            if before.strip():
                log.debug("ssh %s: sudo said before its prompt: %s", self.target, before.decode("utf-8", "replace"))
        text = REDACTOR.text(raw.decode("utf-8", "replace"))
        if state["prompts"] > 1:
            raise SudoAuthError(
                f"sudo 密码错误 {self.target}（命令：{cmd}）。请核对该用户当前密码（修改密码后要用新密码）。"
                f" / sudo rejected the password on {self.target} (command: {cmd}). Check the user's current "
                f"password (after a password change, use the new one).")
        if status != 0 and state["prompts"] == 0 and text.lstrip().startswith("sudo:"):
            raise SudoError(f"sudo 拒绝执行 {self.target}（命令：{cmd}）：{text.strip()[-500:]}"
                            f" / sudo refused to run on {self.target} (command: {cmd}): {text.strip()[-500:]}")
        if status != 0 and "is not in the sudoers file" in text:
            raise SudoError(f"{self.username} 没有 sudo 权限 / {self.username} may not use sudo on "
                            f"{self.target}: {text.strip()[-300:]}")
        return status, raw

    def sudo(self, cmd: str, *, password: str | None = None, timeout: float = 60, check: bool = False) -> Result:
        """Run ``cmd`` as root: ``sudo -S -p <marker> sh -c <cmd>`` with a PTY, answering the prompt.

        ``password``: the login user's password (default: the one used to log in). With a PTY,
        stderr is merged into ``stdout``. Raises :class:`SudoAuthError` on a wrong password and
        :class:`SudoError` when sudo refuses to run; the command's own failure is the result's
        ``exit_status`` (or :class:`CommandError` with ``check=True``). Logged in as root, the
        command runs without sudo (``sh -c``)."""
        status, raw = self._sudo_exec(cmd, password, timeout)
        res = Result(status, REDACTOR.text(raw.decode("utf-8", "replace")), "")
        if check and not res.ok:
            raise self._command_error(f"sudo {cmd}", res)
        return res

    def change_password(self, user: str, new_password: str, *, sudo_password: str | None = None,
                        timeout: float = 60) -> None:
        """Set ``user``'s password with ``chpasswd`` run through sudo (root logs in: directly).

        ``sudo_password`` is the login user's *current* password (default: the login password).
        Changing the login user's own password updates :attr:`password`; when changing both
        root and the login user, change root first (or pass the new sudo password)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]*\$?", user or ""):
            raise ValueError(f"用户名不合法 / invalid user name: {user!r}")
        _check_password_text(new_password, "新密码 / new password")
        REDACTOR.add(new_password)
        if self.username != "root":
            sp = self.password if sudo_password is None else sudo_password
            _check_password_text(sp, "sudo 密码 / sudo password")
            REDACTOR.add(sp)
            if self.sudo_nopasswd():
                try:
                    return self._chpasswd(user, new_password, None, timeout)
                except SudoError as exc:
                    if "password is required" not in str(exc):
                        raise
                    self._nopasswd = False       # a cached ticket fooled the check: use the password form
            return self._chpasswd(user, new_password, sp, timeout)
        return self._chpasswd(user, new_password, None, timeout)

    def _chpasswd(self, user: str, new_password: str, sudo_password: str | None, timeout: float) -> None:
        """One chpasswd run: as root directly; ``sudo -n chpasswd`` when ``sudo_password`` is None (passwordless
        sudo: the only line sent is ``user:password``); else ``sudo -S -p '' chpasswd`` fed the sudo password
        first. The lines go to ``read`` after the ready marker, never on a command line."""
        ready = f"READY-{secrets.token_hex(6)}"
        if self.username == "root":
            cmd = (f"stty -echo && printf '%s\\n' {ready} && IFS= read -r l && printf '%s\\n' \"$l\" | chpasswd")
            feed = f"{user}:{new_password}\n"
        elif sudo_password is None:
            cmd = (f"stty -echo && printf '%s\\n' {ready} && IFS= read -r l && "
                   f"printf '%s\\n' \"$l\" | sudo -n chpasswd")
            feed = f"{user}:{new_password}\n"
        else:
            cmd = (f"stty -echo && printf '%s\\n' {ready} && IFS= read -r p && IFS= read -r l && "
                   f"printf '%s\\n%s\\n' \"$p\" \"$l\" | sudo -S -p '' chpasswd")
            feed = f"{sudo_password}\n{user}:{new_password}\n"
        sent = {"done": False}
        marks = ((ready + "\r\n").encode(), (ready + "\n").encode())

        def answer(out: bytearray, chan: paramiko.Channel) -> None:
            if not sent["done"] and any(m in out for m in marks):
                sent["done"] = True
                chan.sendall(feed.encode("utf-8"))

        what = f"change password of {user} (chpasswd)"
        status, out, _ = self._exec(cmd, timeout=timeout, pty=True, on_output=answer, what=what)
        text = REDACTOR.text(_pty_text(out).replace(ready + "\n", ""))
        if status != 0:
            if SUDO_RETRY in text or "incorrect password" in text:
                raise SudoAuthError(
                    f"修改 {user} 密码失败：{self.target} 的 sudo 密码错误。 / cannot change the password of {user}: "
                    f"sudo rejected the password on {self.target}.")
            if SUDO_NO_TTY in text or "sudoers" in text or "password is required" in text:
                raise SudoError(f"修改 {user} 密码失败：sudo 拒绝执行 / cannot change the password of {user} on "
                                f"{self.target}: sudo refused: {text.strip()[-300:]}")
            raise CommandError(
                f"修改 {user} 密码失败 {self.target}（退出码 {status}）：{text.strip()[-500:] or '(无输出 / no output)'}"
                f" / changing the password of {user} on {self.target} failed (exit {status})",
                Result(status, text, ""))
        log.info("SSH 已修改密码 / password changed: %s on %s", user, self.target)
        if user == self.username:
            self.password = new_password

    def write_file_sudo(self, path: str, content: str, *, sudo_password: str | None = None,
                        timeout: float = 60) -> None:
        """Replace ``path`` with ``content`` as root (``printf '%s' <content> > <path>`` via sudo)."""
        if len(content.encode("utf-8")) > MAX_WRITE or "\0" in content:
            raise ValueError(f"内容过大或含 NUL / content too large (> {MAX_WRITE} bytes) or contains NUL")
        script = f"printf '%s' {shlex.quote(content)} > {shlex.quote(path)}"
        res = self.sudo(script, password=sudo_password, timeout=timeout)
        if not res.ok:
            raise self._command_error(f"写入 / write {path}", res)

    def read_file(self, path: str, *, sudo_password: str | None = None, timeout: float = 60) -> str:
        """The text of a remote file (through sudo when ``sudo_password`` is given)."""
        if sudo_password is not None:
            res = self.sudo(f"cat -- {shlex.quote(path)}", password=sudo_password, timeout=timeout)
        else:
            res = self.run(f"cat -- {shlex.quote(path)}", timeout=timeout)
        if not res.ok:
            if "No such file" in res.stdout + res.stderr:
                raise RemoteFileNotFound(f"远端文件不存在 / remote file not found: {self.address}:{path}")
            raise self._command_error(f"读取 / read {path}", res)
        return res.stdout

    def read_from(self, path: str, offset: int = 0, *, sudo_password: str | None = None,
                  timeout: float = 60) -> Chunk:
        """Bytes of ``path`` from byte ``offset`` on. When the file shrank below ``offset``
        (truncated or replaced) it is read again from 0."""
        q = shlex.quote(path)
        cmd = f"wc -c < {q} && tail -c +{int(offset) + 1} {q}"
        if sudo_password is not None:
            status, raw = self._sudo_exec(cmd, sudo_password, timeout, level=logging.DEBUG)
        else:
            status, out, err = self._exec(cmd, timeout=timeout, what=f"read {path} from {offset}", level=logging.DEBUG)
            raw = out
            if status != 0:
                raw = out + err
        if status != 0:
            text = raw.decode("utf-8", "replace")
            if "No such file" in text:
                raise RemoteFileNotFound(f"远端文件不存在 / remote file not found: {self.address}:{path}")
            raise self._command_error(f"读取 / read {path}", Result(status, REDACTOR.text(text), ""))
        head, _, data = raw.partition(b"\n")
        try:
            size = int(head.strip() or b"0")
        except ValueError:
            raise SshError(f"无法解析 wc 输出 / unexpected wc output from {self.target}: {head[:100]!r}") from None
        if size < offset:
            log.info("ssh %s: %s shrank (%d < %d), reading from 0", self.target, path, size, offset)
            return self.read_from(path, 0, sudo_password=sudo_password, timeout=timeout)
        return Chunk(data, offset + len(data), size, REDACTOR.text(data.decode("utf-8", "replace")))


