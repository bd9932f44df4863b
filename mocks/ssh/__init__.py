"""Simulated SSH: a real paramiko SSH server per simulated address, with users, a tiny
virtual filesystem and a small shell that runs exactly the commands the suite sends.

Nothing is ever executed on the real machine: every command is parsed (a small POSIX-shell
subset) and served by Python functions that act on the virtual filesystem and user table.

Modules: ``vfs`` (virtual file system), ``streams`` (terminal, pipes), ``session`` (a request's
session; ``Invocation``, what command handlers get), ``shell`` (lexer, parser, executor),
``commands`` / ``commands_sys`` (built-ins), ``server`` (``SshService``, the paramiko side),
``family`` (wiring into a simulator).

    from mocks.ssh import attach_ssh, ssh_service, seed_host_ssh
    # the SshFamily is one of the Simulator's families: host mgmt IPs get tcp/22 (in the address map
    # from the start); smartx/root get the post-deploy default password P@ssw0rd!123 when a
    # deployment of that host succeeds (event "deployed")
    svc = attach_ssh(sim, "10.0.20.220", users={"cloudtower": "HC!r0cks"}, up=True)   # any address/port
    svc.password_ok("smartx", "P@ssw0rd!123")
    svc.register_command("/usr/share/smartx/tower/preinstall.sh", handler)           # extension point
    svc.fs.provide("/var/log/x.log", lambda elapsed: "...")                             # grows with sim time

What the simulated hosts reproduce (field notes): ``sudo`` refuses to run without a PTY
(``sudo: no tty present and no askpass program specified``, exit 1); a wrong sudo password gives
``Sorry, try again.``; after reading a password from a terminal sudo discards any input typed ahead
(TCSAFLUSH), as the real one does; with a PTY, stderr is merged into stdout and ``\\n`` becomes
``\\r\\n``; a channel EOF does not end a PTY's input (only ``^D`` at the start of a line does).
An account may have NOPASSWD sudo (``SshService.set_sudo_nopasswd``; the hosts' ``smartx`` under profile
``sudo-nopasswd``, mocks/profiles.py): sudo then neither prompts nor reads stdin, and ``sudo -n`` succeeds.

Shell subset (``sh -c`` and the exec request itself): words with '…', "…", backslash; ``$name``,
``${name}``, ``$?``, ``$0``-``$9`` (no word splitting, no globbing, no command substitution);
``VAR=value cmd``; ``|``, ``&&``, ``||``, ``;``, newline, ``&`` (background: runs to completion
at once, stdin from /dev/null); ``>``, ``>>``, ``<``, ``2>``, ``2>>``, ``2>&1``, ``>&2``.

Commands: ``sudo`` (-S -p -k -n -u --), ``sh``/``bash`` (-c, script file), ``cat``, ``tail``
(-c/-n with +N), ``wc`` (-c/-l), ``id``, ``whoami``, ``hostname``, ``test``/``[``, ``echo``,
``printf``, ``read``, ``stty`` (echo/-echo), ``chpasswd``, ``passwd`` (--stdin, or PTY prompts),
``nohup``, ``mkdir``, ``rm``, ``cd``, ``true``, ``false``, ``:``, ``exit``, ``sleep`` (no-op),
plus whatever :meth:`SshService.register_command` adds. Anything else:
``sh: <cmd>: command not found``, exit 127.

Each exec request is recorded in ``sim.requests`` (method ``"SSH"``, path = the command line,
``result = "exit N"``), and fault rules apply (``path`` globs the command line), but
only rules whose ``method`` names ``SSH`` apply. ``drop`` breaks the SSH connection (no exit
status), ``delay`` waits (real seconds), ``status``/``envelope_error`` fails the command with exit
status 1 and ``msg`` on stderr (the command does not run).
"""
from __future__ import annotations

from .commands_sys import SUDO_NO_TTY
from .family import DEFAULT_HOST_PASSWORD, SshFamily, SshServices, attach_ssh, seed_host_ssh, ssh_service

__all__ = ["DEFAULT_HOST_PASSWORD", "SUDO_NO_TTY", "SshFamily", "SshServices", "attach_ssh", "seed_host_ssh",
           "ssh_service"]
