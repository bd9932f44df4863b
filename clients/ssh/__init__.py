"""The suite's SSH client (paramiko), by concept: ``errors`` (typed errors, results), ``hostkeys``
(known_hosts, trust on first use), ``client`` (:class:`SshClient`), ``tasks`` (:class:`LogFollower`,
:func:`can_login`, :class:`HostPasswords`). The client: address map, host keys (TOFU), sudo with a PTY, passwords.

    from clients.ssh import SshClient, can_login
    with SshClient("10.0.20.11", amap=amap, username="smartx", password=pw,
                   known_hosts=run_dir / "known_hosts") as ssh:
        ssh.run("hostname", timeout=10).stdout
        ssh.sudo("cat /etc/shadow", timeout=10)                      # PTY + password at sudo's prompt
        ssh.change_password("root", new_root_pw, sudo_password=pw)    # root first ...
        ssh.change_password("smartx", new_pw, sudo_password=pw)       # ... then the login user
        ssh.write_file_sudo("/etc/resolv.conf", "nameserver 10.0.0.2\\n", sudo_password=new_pw)
        follower = LogFollower.from_end(ssh, "nohup.out", sudo_password=pw)   # poll() under wait_for

Every connection resolves ``(address, port, "tcp")`` through :meth:`AddressMap.resolve` before a
socket is opened; host keys are recorded and checked under the *logical* address (the plan's), in
an OpenSSH-compatible known_hosts file (``addr`` or ``[addr]:port``). Passwords are registered with
:data:`REDACTOR` and never appear in commands, logs or exception text.

What goes over the wire (exec requests; the login shell runs them):

* ``run(cmd)``: ``cmd`` as given, no PTY (stdout and stderr separate).
* ``sudo(cmd)``: ``sudo -S -p '<marker>' sh -c '<cmd>'`` with a PTY; the password is sent after
  sudo shows the marker prompt (sudo has turned echo off by then). A PTY merges stderr into
  stdout and turns ``\\n`` into ``\\r\\n``; the client undoes the latter. A second prompt (wrong
  password) is answered with ``^D`` and raises :class:`SudoAuthError`.
* ``change_password(user, pw)``: with a PTY, ``stty -echo && printf '%s\\n' <ready> && IFS= read -r p
  && IFS= read -r l && printf '%s\\n%s\\n' "$p" "$l" | sudo -S -p '' chpasswd``; after the ready line
  the client sends ``<sudo password>\\n<user>:<new password>\\n``. Neither password is on a command
  line (not in ``ps``, not in sudo's log), the terminal does not echo them, and sudo reads its
  password from the pipe, so no terminal flush can eat the second line. Logged in as root: the
  same without ``sudo``. Under passwordless sudo (``sudo -n true`` exits 0, :meth:`SshClient.sudo_nopasswd`;
  the older tool ran ``sudo -n chpasswd`` on real hosts) no password line is sent: ``... IFS= read -r l &&
  printf '%s\\n' "$l" | sudo -n chpasswd`` gets only ``<user>:<new password>`` (fed to ``sudo -S`` there,
  chpasswd would read the sudo password as its first line and fail). ``sudo(cmd)`` then runs
  ``sudo -n sh -c '<cmd>'``.
* ``write_file_sudo(path, text)``: ``sudo(printf '%s' <text> > <path>)`` (shlex-quoted).
* ``read_file(path)``: ``cat -- <path>`` (or through ``sudo``).
* ``read_from(path, offset)``: ``wc -c < <path> && tail -c +<offset+1> <path>`` (or through ``sudo``);
  :class:`LogFollower` polls it (each poll a short command, so a dropped connection just reconnects).

Anything sudo prints before its first prompt (the first-use "lecture") is dropped from the output.
:class:`HostPasswords` is guide §03 "批量配置主机密码" on top of this (idempotent, root first).
"""
from __future__ import annotations

from .client import MAX_WRITE, SUDO_NO_TTY, SUDO_RETRY, SshClient
from .errors import (Chunk, CommandError, HostKeyChanged, RemoteFileNotFound, Result, SshAuthError, SshConnectError,
                     SshError, SshTimeout, SudoAuthError, SudoError)
from .hostkeys import known_hosts_name
from .tasks import DEFAULT_HOST_PASSWORD, HostPasswords, LogFollower, can_login

__all__ = ["DEFAULT_HOST_PASSWORD", "MAX_WRITE", "SUDO_NO_TTY", "SUDO_RETRY", "Chunk", "CommandError", "HostKeyChanged",
           "HostPasswords", "LogFollower", "RemoteFileNotFound", "Result", "SshAuthError", "SshClient", "SshConnectError",
           "SshError", "SshTimeout", "SudoAuthError", "SudoError", "can_login", "known_hosts_name"]
