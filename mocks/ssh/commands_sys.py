"""Built-in commands of the simulated shell, part 2: shells and scripts, privileges and passwords,
the terminal (``sh``/``bash``, ``sudo``, ``chpasswd``, ``passwd``, ``nohup``, ``stty``).

What the simulated hosts reproduce (field notes): ``sudo`` refuses to run without a PTY; a wrong
password gives ``Sorry, try again.`` (three tries); the lecture is shown once per user; after
reading a password from a terminal sudo discards any input typed ahead (TCSAFLUSH)."""
from __future__ import annotations

from dataclasses import dataclass

from .session import Invocation
from .streams import InStream, _BufIn, _FileOut
from .vfs import VirtualFS

SUDO_NO_TTY = "sudo: no tty present and no askpass program specified"
SUDO_RETRY = "Sorry, try again."
SUDO_LECTURE = ("\nWe trust you have received the usual lecture from the local System\n"
                "Administrator. It usually boils down to these three things:\n\n"
                "    #1) Respect the privacy of others.\n    #2) Think before you type.\n"
                "    #3) With great power comes great responsibility.\n\n")


def _cmd_stty(inv: Invocation) -> int:
    tty = inv.session.tty
    if tty is None or not inv.stdin.is_tty:
        return inv.fail("stty: 'standard input': Inappropriate ioctl for device")
    for a in inv.argv[1:]:
        if a == "-echo":
            tty.echo = False
        elif a == "echo":
            tty.echo = True
        elif a in ("sane", "-icanon", "icanon", "raw", "-raw"):
            pass
        else:
            return inv.fail(f"stty: invalid argument '{a}'")
    return 0


def _cmd_sh(inv: Invocation) -> int:
    args = inv.argv[1:]
    while args and args[0] in ("-e", "-x", "-l", "-ex", "-xe", "-", "--login"):
        args = args[1:]
    shell = inv.shell.child(inv.user, inv.cwd)
    if args and args[0] == "-c":
        if len(args) < 2:
            return inv.fail("sh: -c: option requires an argument", 2)
        shell.positional = args[2:] or [inv.argv[0]]
        return shell.run_script(args[1], inv.stdin, inv.out, inv.err)
    if args:
        path = inv.path(args[0])
        handler = inv.service._commands.get(path) or inv.service._commands.get(args[0])
        if handler is not None:
            sub = Invocation(inv.service, inv.session, shell, [args[0]] + args[1:], inv.user, inv.cwd,
                             dict(inv.env), inv.stdin, inv.out, inv.err)
            status = handler(sub)
            return 0 if status is None else int(status)
        data = inv.read_file("sh", args[0])
        if data is None:
            return 127
        shell.positional = args
        return shell.run_script(data.decode("utf-8", errors="replace"), inv.stdin, inv.out, inv.err)
    return shell.run_script(inv.stdin.read().decode("utf-8", errors="replace"), _BufIn(b""), inv.out, inv.err)


def _read_secret(inv: Invocation, src: InStream, prompt: str) -> bytes:
    """Prompt on the terminal and read one line with echo off (as getpass/tgetpass do)."""
    tty = inv.session.tty if src.is_tty else None
    saved = tty.echo if tty else None
    if tty:
        tty.echo = False
    inv.err.write(prompt)
    try:
        line = src.readline()
    finally:
        if tty:
            inv.err.write("\n")                       # the newline the user typed was not echoed
            tty.echo = saved
    return line


@dataclass
class _SudoOptions:
    argv: list[str]
    use_stdin: bool = False           # -S
    non_interactive: bool = False     # -n
    prompt: str | None = None         # -p
    target: str = "root"              # -u


_SUDO_FLAGS = {"S": "use_stdin", "n": "non_interactive", "k": None, "E": None, "H": None, "i": None}
_SUDO_BAD_OPTION = "usage: sudo -h | -K | -k | -V"


def _sudo_options(args: list[str]) -> _SudoOptions | str:
    """sudo's command line -> options and the command, or an error message."""
    opts = _SudoOptions(args)
    while args and args[0].startswith("-") and args[0] != "-":
        a = args.pop(0)
        if a == "--":
            break
        if a in ("-p", "-u") and not args:
            return f"sudo: option requires an argument -- '{a[1]}'\n{_SUDO_BAD_OPTION}"
        if a.startswith("-p"):
            opts.prompt = a[2:] if len(a) > 2 else args.pop(0)
            continue
        if a.startswith("-u"):
            opts.target = a[2:] if len(a) > 2 else args.pop(0)
            continue
        for ch in a[1:]:
            if ch not in _SUDO_FLAGS:
                return f"sudo: invalid option -- '{ch}'\n{_SUDO_BAD_OPTION}"
            if _SUDO_FLAGS[ch]:
                setattr(opts, _SUDO_FLAGS[ch], True)
    return opts


def _sudo_ask_password(inv: Invocation, src: InStream, prompt: str) -> int | None:
    """Up to three password prompts: None once the login user's password was typed, else the exit status."""
    failures = 0
    while True:
        line = _read_secret(inv, src, prompt)
        if src.is_tty:
            inv.session.tty.flush()               # TCSAFLUSH when restoring the terminal
        if not line:
            inv.err.write("sudo: no password was provided\n")
            if failures:
                inv.err.write(f"sudo: {failures} incorrect password attempt{'s' if failures > 1 else ''}\n")
            return 1
        pw = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if inv.service.password_ok(inv.user, pw):
            return None
        failures += 1
        if failures >= 3:
            inv.err.write("sudo: 3 incorrect password attempts\n")
            return 1
        inv.err.write(SUDO_RETRY + "\n")


def _sudo_authenticate(inv: Invocation, opts: _SudoOptions) -> int | None:
    """A non-root user's way through sudo: None when allowed, else the exit status (message written)."""
    if inv.session.tty is None:                   # requiretty: the session has no terminal
        return inv.fail(SUDO_NO_TTY)
    acct = inv.service._account(inv.user)
    if acct is not None and acct.sudo and acct.nopasswd:   # NOPASSWD: no prompt, stdin is the command's
        return None
    if opts.non_interactive:
        return inv.fail("sudo: a password is required")
    src = inv.stdin if opts.use_stdin else inv.session.tty
    shown = f"[sudo] password for {inv.user}: " if opts.prompt is None else opts.prompt
    acct = inv.service._account(inv.user)
    if acct is not None and not acct.lectured:          # first sudo of this user (lecture=once)
        acct.lectured = True
        inv.err.write(SUDO_LECTURE)
    status = _sudo_ask_password(inv, src, shown)
    if status is not None:
        return status
    acct = inv.service._account(inv.user)
    if acct is None or not acct.sudo:
        return inv.fail(f"{inv.user} is not in the sudoers file.  This incident will be reported.")
    return None


def _cmd_sudo(inv: Invocation) -> int:
    opts = _sudo_options(inv.argv[1:])
    if isinstance(opts, str):
        return inv.fail(opts)
    if not opts.argv:
        return inv.fail("usage: sudo -h | -K | -k | -V\nusage: sudo [-ABbEHknPS] [-u user] command")
    svc = inv.service
    if svc._account(opts.target) is None:
        return inv.fail(f"sudo: unknown user {opts.target}")
    if inv.user != "root":
        denied = _sudo_authenticate(inv, opts)
        if denied is not None:
            return denied
    shell = inv.shell.child(opts.target, inv.cwd)
    shell.env.update(HOME=svc.home(opts.target), USER=opts.target, LOGNAME=opts.target, SUDO_USER=inv.user)
    return shell.exec_argv(opts.argv, inv.stdin, inv.out, inv.err)


def _cmd_chpasswd(inv: Invocation) -> int:
    if any(a in ("-e", "--encrypted") for a in inv.argv[1:]):
        return inv.fail("chpasswd: encrypted passwords are not supported by the simulator")
    if inv.user != "root":
        return inv.fail("chpasswd: cannot lock /etc/passwd; try again later.")
    status, lineno, changes = 0, 0, []
    for raw in inv.stdin.read().split(b"\n"):
        lineno += 1
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if line == "":
            continue
        if ":" not in line:
            inv.err.write(f"chpasswd: line {lineno}: missing new password\n")
            status = 1
            continue
        user, pw = line.split(":", 1)
        if inv.service._account(user) is None:
            inv.err.write(f"chpasswd: line {lineno}: user '{user}' does not exist\n")
            status = 1
            continue
        changes.append((user, pw))
    if status:
        return inv.fail("chpasswd: error detected, changes ignored")
    for user, pw in changes:
        inv.service.set_password(user, pw)
    return 0


def _cmd_passwd(inv: Invocation) -> int:
    args = inv.argv[1:]
    stdin_mode = "--stdin" in args
    names = [a for a in args if not a.startswith("-")]
    user = names[0] if names else inv.user
    svc = inv.service
    if user != inv.user and inv.user != "root":
        return inv.fail("passwd: Only root can specify a user name.")
    if svc._account(user) is None:
        return inv.fail(f"passwd: Unknown user name '{user}'.")
    if stdin_mode:
        if inv.user != "root":
            return inv.fail("passwd: Only root can do that.")
        line = inv.stdin.readline()
        pw = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not pw:
            return inv.fail("passwd: Authentication token manipulation error")
        inv.out.write(f"Changing password for user {user}.\n")
        svc.set_password(user, pw)
        inv.out.write("passwd: all authentication tokens updated successfully.\n")
        return 0
    if inv.session.tty is None or not inv.stdin.is_tty:
        return inv.fail("passwd: Authentication token manipulation error")
    inv.out.write(f"Changing password for user {user}.\n")
    if inv.user != "root":
        cur = _read_secret(inv, inv.stdin, "Current password: ").decode("utf-8", "replace").rstrip("\r\n")
        if not svc.password_ok(user, cur):
            return inv.fail("passwd: Authentication token manipulation error")
    new = _read_secret(inv, inv.stdin, "New password: ").decode("utf-8", "replace").rstrip("\r\n")
    again = _read_secret(inv, inv.stdin, "Retype new password: ").decode("utf-8", "replace").rstrip("\r\n")
    if not new or new != again:
        inv.err.write("Sorry, passwords do not match.\n")
        return inv.fail("passwd: Authentication token manipulation error")
    svc.set_password(user, new)
    inv.out.write("passwd: all authentication tokens updated successfully.\n")
    return 0


def _cmd_nohup(inv: Invocation) -> int:
    args = inv.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        return inv.fail("nohup: missing operand\nTry 'nohup --help' for more information.", 125)
    out, err, stdin = inv.out, inv.err, inv.stdin
    ignoring = stdin.is_tty
    if ignoring:
        stdin = _BufIn(b"")
    if out.is_tty:
        path = inv.path("nohup.out")
        if not inv.fs.can_write(inv.user, path):
            path = VirtualFS.norm("nohup.out", inv.service.home(inv.user))
        if not inv.fs.is_file(path):
            inv.fs.write(path, b"", owner=inv.user, mode=0o600)
        err.write(f"nohup: {'ignoring input and ' if ignoring else ''}appending output to 'nohup.out'\n")
        out = _FileOut(inv.fs, path)
        if err.is_tty:
            err = out
    elif ignoring:
        err.write("nohup: ignoring input\n")
    return inv.shell.exec_argv(args, stdin, out, err, env=inv.env)


SYSTEM_COMMANDS = {
    "stty": _cmd_stty, "sh": _cmd_sh, "bash": _cmd_sh, "sudo": _cmd_sudo, "chpasswd": _cmd_chpasswd,
    "passwd": _cmd_passwd, "nohup": _cmd_nohup,
}
