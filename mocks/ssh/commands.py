"""Built-in commands of the simulated shell, part 1: files, text and identity (``cat``, ``tail``,
``wc``, ``echo``, ``printf``, ``read``, ``test``/``[``, ``cd``, ``mkdir``, ``rm``, ``id``, ...), and
:data:`BUILTINS`, the table ``SshService`` looks names up in (with part 2, :mod:`.commands_sys`).

A command is ``handler(inv: Invocation) -> exit status`` (None counts as 0)."""
from __future__ import annotations

import posixpath
import re
from typing import Callable

from .commands_sys import SYSTEM_COMMANDS
from .session import Invocation
from .shell import _Exit

CommandHandler = Callable[[Invocation], "int | None"]


def _esc(s: str) -> str:
    return (s.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
            .replace("\\a", "\a").replace("\0", "\\"))


def _cmd_true(inv: Invocation) -> int:
    return 0


def _cmd_false(inv: Invocation) -> int:
    return 1


def _cmd_sleep(inv: Invocation) -> int:
    return 0


def _cmd_exit(inv: Invocation) -> int:
    raise _Exit(int(inv.argv[1]) if len(inv.argv) > 1 and inv.argv[1].lstrip("-").isdigit() else inv.shell.status)


def _cmd_echo(inv: Invocation) -> int:
    args, newline, escapes = inv.argv[1:], True, False
    while args and args[0] in ("-n", "-e", "-E", "-ne", "-en"):
        newline = newline and "n" not in args[0]
        escapes = "e" in args[0]
        args = args[1:]
    text = " ".join(args)
    inv.out.write((_esc(text) if escapes else text) + ("\n" if newline else ""))
    return 0


def _cmd_printf(inv: Invocation) -> int:
    if len(inv.argv) < 2:
        return inv.fail("printf: usage: printf format [arguments]", 2)
    fmt, args = _esc(inv.argv[1]), inv.argv[2:]
    out: list[str] = []
    while True:
        used = 0
        i = 0
        while i < len(fmt):
            c = fmt[i]
            if c != "%" or i + 1 >= len(fmt):
                out.append(c)
                i += 1
                continue
            spec = fmt[i + 1]
            i += 2
            if spec == "%":
                out.append("%")
                continue
            arg = args[used] if used < len(args) else ""
            used += 1
            if spec == "s":
                out.append(arg)
            elif spec == "b":
                out.append(_esc(arg))
            elif spec in "di":
                out.append(str(int(arg or 0)))
            else:
                out.append("%" + spec)
        args = args[used:]
        if not args or used == 0:
            break
    inv.out.write("".join(out))
    return 0


def _cmd_read(inv: Invocation) -> int:
    args = inv.argv[1:]
    raw, silent, prompt = False, False, None
    while args and args[0].startswith("-") and len(args[0]) > 1:
        a = args.pop(0)
        if a == "-p" and args:
            prompt = args.pop(0)
            continue
        raw = raw or "r" in a
        silent = silent or "s" in a
    names = args or ["REPLY"]
    if prompt is not None:
        inv.err.write(prompt)
    tty = inv.session.tty if (silent and inv.stdin.is_tty) else None
    saved = tty.echo if tty else None
    if tty:
        tty.echo = False
    try:
        line = inv.stdin.readline()
    finally:
        if tty:
            tty.echo = saved
    if not line:
        for n in names:
            inv.shell.env[n] = ""
        return 1
    text = line.decode("utf-8", errors="replace")
    had_newline = text.endswith("\n")
    text = text[:-1] if had_newline else text
    if not raw:
        text = re.sub(r"\\(.)", r"\1", text)
    ifs = inv.env.get("IFS", " \t\n")
    if ifs == "":
        values = [text] + [""] * (len(names) - 1)
    else:
        text = text.strip(ifs)
        values = re.split("[" + re.escape(ifs) + "]+", text, maxsplit=len(names) - 1) if text else [""]
        values += [""] * (len(names) - len(values))
    for n, v in zip(names, values):
        inv.shell.env[n] = v
    return 0


def _cmd_cd(inv: Invocation) -> int:
    target = inv.path(inv.argv[1]) if len(inv.argv) > 1 else inv.service.home(inv.user)
    if not inv.fs.is_dir(target):
        return inv.fail(f"sh: cd: {inv.argv[1]}: No such file or directory")
    inv.shell.cwd = target
    return 0


def _cmd_test(inv: Invocation) -> int:
    args = inv.argv[1:]
    if inv.argv[0] == "[":
        if not args or args[-1] != "]":
            return inv.fail("sh: [: missing `]'", 2)
        args = args[:-1]
    negate = False
    if args and args[0] == "!":
        negate, args = True, args[1:]
    fs = inv.fs
    if len(args) == 0:
        r = False
    elif len(args) == 1:
        r = args[0] != ""
    elif len(args) == 2:
        op, a = args
        p = inv.path(a)
        r = {"-f": lambda: fs.is_file(p), "-e": lambda: fs.exists(p), "-d": lambda: fs.is_dir(p),
             "-s": lambda: fs.is_file(p) and len(fs.read(p)) > 0, "-r": lambda: fs.can_read(inv.user, p),
             "-n": lambda: a != "", "-z": lambda: a == ""}.get(op, lambda: None)()
        if r is None:
            return inv.fail(f"sh: test: {op}: unary operator expected", 2)
    elif len(args) == 3 and args[1] in ("=", "==", "!="):
        r = (args[0] == args[2]) == (args[1] != "!=")
    else:
        return inv.fail("sh: test: too many arguments", 2)
    return 0 if bool(r) != negate else 1


def _cmd_id(inv: Invocation) -> int:
    acct = inv.service._account(inv.user)
    uid = acct.uid if acct else 0
    flags = "".join(a.lstrip("-") for a in inv.argv[1:] if a.startswith("-"))
    if "u" in flags:
        inv.out.write((inv.user if "n" in flags else str(uid)) + "\n")
    elif "g" in flags:
        inv.out.write((inv.user if "n" in flags else str(uid)) + "\n")
    else:
        groups = f"{uid}({inv.user})" + (",10(wheel)" if acct and acct.sudo and uid else "")
        inv.out.write(f"uid={uid}({inv.user}) gid={uid}({inv.user}) groups={groups}\n")
    return 0


def _cmd_whoami(inv: Invocation) -> int:
    inv.out.write(inv.user + "\n")
    return 0


def _cmd_hostname(inv: Invocation) -> int:
    inv.out.write(inv.service.hostname + "\n")
    return 0


def _cmd_cat(inv: Invocation) -> int:
    files = [a for a in inv.argv[1:] if a != "--"]
    if not files:
        inv.out.write(inv.stdin.read())
        return 0
    status = 0
    for a in files:
        if a == "-":
            inv.out.write(inv.stdin.read())
            continue
        data = inv.read_file("cat", a)
        if data is None:
            status = 1
        else:
            inv.out.write(data)
    return status


def _cmd_tail(inv: Invocation) -> int:
    args = inv.argv[1:]
    mode, spec, files = "n", "10", []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-c", "-n") and i + 1 < len(args):
            mode, spec = a[1], args[i + 1]
            i += 2
            continue
        if re.fullmatch(r"-[cn][+]?\d+", a):
            mode, spec = a[1], a[2:]
        elif a == "--":
            pass
        elif a.startswith("-") and a != "-":
            return inv.fail(f"tail: invalid option -- '{a.lstrip('-')[:1]}'\nTry 'tail --help' for more information.")
        else:
            files.append(a)
        i += 1
    if not re.fullmatch(r"[+]?\d+", spec):
        return inv.fail(f"tail: invalid number of {'bytes' if mode == 'c' else 'lines'}: '{spec}'")
    status = 0
    for a in files or ["-"]:
        data = inv.stdin.read() if a == "-" else inv.read_file("tail", a, tail_style=True)
        if data is None:
            status = 1
            continue
        n = int(spec.lstrip("+"))
        if mode == "c":
            data = data[max(0, n - 1):] if spec.startswith("+") else (data[-n:] if n else b"")
        else:
            lines = data.splitlines(keepends=True)
            lines = lines[max(0, n - 1):] if spec.startswith("+") else (lines[-n:] if n else [])
            data = b"".join(lines)
        inv.out.write(data)
    return status


def _cmd_wc(inv: Invocation) -> int:
    flags = "".join(a.lstrip("-") for a in inv.argv[1:] if a.startswith("-") and a != "-")
    files = [a for a in inv.argv[1:] if not a.startswith("-") or a == "-"]

    def count(data: bytes) -> str:
        nums = []
        if "l" in flags or not flags:
            nums.append(data.count(b"\n"))
        if "w" in flags or not flags:
            nums.append(len(data.split()))
        if "c" in flags or not flags:
            nums.append(len(data))
        return " ".join(str(x) for x in nums)

    if not files:
        inv.out.write(count(inv.stdin.read()) + "\n")
        return 0
    status = 0
    for a in files:
        data = inv.read_file("wc", a)
        if data is None:
            status = 1
        else:
            inv.out.write(f"{count(data)} {a}\n")
    return status


def _cmd_mkdir(inv: Invocation) -> int:
    parents = any(a.startswith("-") and "p" in a for a in inv.argv[1:])
    for a in (x for x in inv.argv[1:] if not x.startswith("-")):
        p = inv.path(a)
        if inv.fs.is_dir(p):
            if not parents:
                return inv.fail(f"mkdir: cannot create directory '{a}': File exists")
            continue
        if not parents and not inv.fs.is_dir(posixpath.dirname(p)):
            return inv.fail(f"mkdir: cannot create directory '{a}': No such file or directory")
        if not inv.fs.can_write(inv.user, posixpath.join(p, "x")) and not inv.fs.can_write(inv.user, p):
            return inv.fail(f"mkdir: cannot create directory '{a}': Permission denied")
        inv.fs.mkdir(p)
    return 0


def _cmd_rm(inv: Invocation) -> int:
    force = any(a.startswith("-") and "f" in a for a in inv.argv[1:])
    status = 0
    for a in (x for x in inv.argv[1:] if not x.startswith("-")):
        p = inv.path(a)
        if not inv.fs.is_file(p):
            if not force:
                status = inv.fail(f"rm: cannot remove '{a}': No such file or directory")
            continue
        if not inv.fs.can_write(inv.user, p) and not (inv.user == inv.fs.stat(p).owner):
            status = inv.fail(f"rm: cannot remove '{a}': Permission denied")
            continue
        inv.fs.remove(p)
    return status


BUILTINS: dict[str, CommandHandler] = {
    "true": _cmd_true, ":": _cmd_true, "false": _cmd_false, "exit": _cmd_exit, "sleep": _cmd_sleep,
    "echo": _cmd_echo, "printf": _cmd_printf, "read": _cmd_read, "cd": _cmd_cd, "test": _cmd_test, "[": _cmd_test,
    "id": _cmd_id, "whoami": _cmd_whoami, "hostname": _cmd_hostname, "cat": _cmd_cat,
    "tail": _cmd_tail, "wc": _cmd_wc, "mkdir": _cmd_mkdir, "rm": _cmd_rm,
    **SYSTEM_COMMANDS,
}
