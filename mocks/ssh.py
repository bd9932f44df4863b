"""Simulated SSH: a real paramiko SSH server per simulated address, with users, a tiny
virtual filesystem and a small shell that runs exactly the commands the suite sends.

Nothing is ever executed on the real machine: every command is parsed (a small POSIX-shell
subset) and served by Python functions that act on the virtual filesystem and user table.

    from mocks.ssh import install, attach_ssh, ssh_service, seed_host_ssh
    install(sim)                     # once, right after Simulator.from_plan(...): host mgmt IPs get tcp/22
                                     # (in the address map from the start); smartx/root get the post-deploy
                                     # default password P@ssw0rd!123 when a deployment of that host succeeds
    svc = attach_ssh(sim, "10.0.20.220", users={"cloudtower": "HC!r0cks"}, up=True)   # any address/port
    svc.password_ok("smartx", "P@ssw0rd!123")
    svc.register_command("/usr/share/smartx/tower/preinstall.sh", handler)           # extension point
    svc.fs.provide("/var/log/x.log", lambda elapsed: "...")                             # grows with sim time

What the simulated hosts reproduce (field notes): ``sudo`` refuses to run without a PTY
(``sudo: no tty present and no askpass program specified``, exit 1); a wrong sudo password gives
``Sorry, try again.``; after reading a password from a terminal sudo discards any input typed ahead
(TCSAFLUSH), as the real one does; with a PTY, stderr is merged into stdout and ``\\n`` becomes
``\\r\\n``; a channel EOF does not end a PTY's input (only ``^D`` at the start of a line does).

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

import hashlib
import hmac
import io
import logging
import os
import posixpath
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import paramiko

from .core import SimClock

log = logging.getLogger("mocks.ssh")

DEFAULT_HOST_PASSWORD = "P@ssw0rd!123"        # field notes: host accounts after cluster init
HOST_SSH_USERS = ("smartx", "root")
SUDO_NO_TTY = "sudo: no tty present and no askpass program specified"
SUDO_RETRY = "Sorry, try again."
SUDO_LECTURE = ("\nWe trust you have received the usual lecture from the local System\n"
                "Administrator. It usually boils down to these three things:\n\n"
                "    #1) Respect the privacy of others.\n    #2) Think before you type.\n"
                "    #3) With great power comes great responsibility.\n\n")
BIN_DIRS = {"/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}
_PBKDF2_ROUNDS = 10_000

CommandHandler = Callable[["Invocation"], "int | None"]
ContentProvider = Callable[[float], "bytes | str"]


class _QuietDisconnects(logging.Filter):
    """A client that closes its socket with data still in flight resets the connection; for a
    simulated sshd that is routine, not an ERROR (paramiko logs it as one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Socket exception"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_TRANSPORT_LOG = logging.getLogger("mocks.ssh.transport")     # the server side's paramiko chatter
_TRANSPORT_LOG.addFilter(_QuietDisconnects())
if _TRANSPORT_LOG.level == logging.NOTSET:
    _TRANSPORT_LOG.setLevel(logging.WARNING)                    # lower it to debug the SSH protocol


# =========================================================================== virtual filesystem
@dataclass
class VFile:
    owner: str = "root"
    mode: int = 0o644
    data: bytes = b""
    provider: ContentProvider | None = None    # content = data + provider(simulated seconds since provide())
    started: float = 0.0


class VirtualFS:
    """Files (bytes, or content that grows with simulated time) with an owner and a mode.

    Permission model: root reads and writes everything; others read files whose mode has o+r
    or that they own, and write files they own, new files in their home directory or /tmp.
    Directories exist when listed in ``dirs`` (created by :meth:`mkdir` or by Python-side writes).
    """

    def __init__(self, clock: SimClock):
        self.clock = clock
        self._lock = threading.RLock()
        self.files: dict[str, VFile] = {}
        self.dirs: set[str] = {"/", "/etc", "/tmp", "/root", "/home", "/var", "/var/log", "/usr", "/usr/bin",
                               "/usr/sbin", "/usr/share", "/opt", "/dev"}
        self.homes: dict[str, str] = {}

    @staticmethod
    def norm(path: str, cwd: str = "/") -> str:
        return posixpath.normpath(posixpath.join(cwd, path)) if path else cwd

    # ---- Python-side API (handlers, tests): no permission checks
    def mkdir(self, path: str) -> None:
        with self._lock:
            p = self.norm(path)
            while p not in self.dirs:
                self.dirs.add(p)
                p = posixpath.dirname(p)

    def write(self, path: str, data: bytes | str, *, owner: str = "root", mode: int | None = None,
              append: bool = False) -> None:
        p = self.norm(path)
        b = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        with self._lock:
            self.mkdir(posixpath.dirname(p))
            f = self.files.get(p)
            if f is None:
                self.files[p] = VFile(owner=owner, mode=0o644 if mode is None else mode, data=b)
                return
            if append:
                f.data, f.provider = self._content(f) + b, None
            else:
                f.data, f.provider = b, None
            if mode is not None:
                f.mode = mode

    def provide(self, path: str, fn: ContentProvider, *, owner: str = "root", mode: int = 0o644,
                keep: bool = False) -> None:
        """Make ``path`` a file whose content grows with simulated time: ``fn(elapsed)`` is called on
        every read with the simulated seconds since now and returns the content so far (str or
        bytes). ``keep=True`` keeps the current content in front (appending output)."""
        p = self.norm(path)
        with self._lock:
            self.mkdir(posixpath.dirname(p))
            f = self.files.get(p)
            prefix = self._content(f) if (f is not None and keep) else b""
            if f is None:
                f = self.files[p] = VFile(owner=owner, mode=mode)
            f.data, f.provider, f.started = prefix, fn, self.clock.now()

    def read(self, path: str) -> bytes:
        with self._lock:
            f = self.files.get(self.norm(path))
            if f is None:
                raise FileNotFoundError(path)
            return self._content(f)

    def text(self, path: str) -> str:
        return self.read(path).decode("utf-8", errors="replace")

    def exists(self, path: str) -> bool:
        p = self.norm(path)
        return p in self.files or p in self.dirs

    def is_file(self, path: str) -> bool:
        return self.norm(path) in self.files

    def is_dir(self, path: str) -> bool:
        return self.norm(path) in self.dirs

    def stat(self, path: str) -> VFile | None:
        return self.files.get(self.norm(path))

    def remove(self, path: str) -> bool:
        with self._lock:
            return self.files.pop(self.norm(path), None) is not None

    def paths(self) -> list[str]:
        with self._lock:
            return sorted(self.files)

    def _content(self, f: VFile) -> bytes:
        if f.provider is None:
            return f.data
        grown = f.provider(max(0.0, self.clock.now() - f.started))
        if isinstance(grown, str):
            grown = grown.encode("utf-8")
        return f.data + bytes(grown)

    # ---- permission checks (shell side)
    def can_read(self, user: str, path: str) -> bool:
        f = self.stat(path)
        return f is not None and (user == "root" or f.owner == user or bool(f.mode & 0o004))

    def can_write(self, user: str, path: str) -> bool:
        p = self.norm(path)
        if user == "root" or p == "/dev/null":
            return True
        f = self.files.get(p)
        if f is not None:
            return f.owner == user and bool(f.mode & 0o200)
        parent = posixpath.dirname(p)
        home = self.homes.get(user)
        return parent == "/tmp" or (home is not None and (parent == home or parent.startswith(home + "/")))


# =========================================================================== users
@dataclass
class _Account:
    name: str
    uid: int
    home: str
    salt: bytes = b""
    digest: bytes = b""          # PBKDF2-SHA256; the clear text is never kept
    sudo: bool = True
    changes: int = 0
    lectured: bool = False       # sudo's lecture=once

    def set(self, password: str | None) -> None:
        if password is None:                      # locked account ("!!" in /etc/shadow)
            self.salt, self.digest = b"", b""
            return
        self.salt = os.urandom(16)
        self.digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), self.salt, _PBKDF2_ROUNDS)

    def check(self, password: str) -> bool:
        if not self.digest:
            return False
        d = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), self.salt, _PBKDF2_ROUNDS)
        return hmac.compare_digest(d, self.digest)


@dataclass
class CommandRecord:
    user: str
    command: str
    pty: bool
    exit_status: int | None       # None: dropped / killed / client went away
    sim_time: float


# =========================================================================== I/O streams
class _Interrupted(Exception):
    """^C arrived on the terminal."""


class _Exit(Exception):
    def __init__(self, status: int):
        self.status = status


class InStream:
    is_tty = False

    def readline(self) -> bytes:
        raise NotImplementedError

    def read(self) -> bytes:
        out = bytearray()
        while True:
            line = self.readline()
            if not line:
                return bytes(out)
            out += line


class _BufIn(InStream):
    def __init__(self, data: bytes = b""):
        self._b = io.BytesIO(data)

    def readline(self) -> bytes:
        return self._b.readline()

    def read(self) -> bytes:
        return self._b.read()


class _TtyIn(InStream):
    """The terminal side of a PTY session: canonical line discipline with echo, ^C, ^D, erase, kill.

    Bytes are processed when they arrive (``feed``, from the channel pump thread), so echo
    follows the terminal state at arrival, as on a real tty."""

    is_tty = True

    def __init__(self, echo_out: Callable[[bytes], None]):
        self._cond = threading.Condition()
        self._chunks: list[bytes] = []           # completed lines, ^D-flushed partials, b"" = EOF
        self._line = bytearray()
        self._closed = False
        self._interrupted = False
        self._echo_out = echo_out
        self.echo = True

    def feed(self, data: bytes) -> None:
        echo = bytearray()
        with self._cond:
            for b in data:
                if b == 0x0D:                             # icrnl
                    b = 0x0A
                if b == 0x03:                             # ^C: SIGINT
                    self._interrupted = True
                    self._line.clear()
                    echo += b"^C\r\n"
                elif b == 0x04:                           # ^D: flush the line, or EOF on an empty line
                    self._chunks.append(bytes(self._line))
                    self._line.clear()
                elif b in (0x7F, 0x08):                   # erase
                    if self._line:
                        self._line.pop()
                        if self.echo:
                            echo += b"\b \b"
                elif b == 0x15:                           # kill line
                    self._line.clear()
                elif b == 0x0A:
                    self._line.append(b)
                    self._chunks.append(bytes(self._line))
                    self._line.clear()
                    if self.echo:
                        echo += b"\r\n"
                else:
                    self._line.append(b)
                    if self.echo:
                        echo += bytes([b]) if b >= 0x20 else b"^" + bytes([b + 0x40])
            self._cond.notify_all()
        if echo:
            try:
                self._echo_out(bytes(echo))
            except Exception:        # noqa: BLE001 - client gone
                pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def flush(self) -> None:
        """TCSAFLUSH: discard input received but not read."""
        with self._cond:
            self._chunks.clear()
            self._line.clear()

    def readline(self) -> bytes:
        with self._cond:
            while not self._chunks and not self._closed and not self._interrupted:
                self._cond.wait(0.5)
            if self._interrupted:
                self._interrupted = False
                raise _Interrupted()
            if self._chunks:
                return self._chunks.pop(0)
            return b""

    def read(self) -> bytes:
        out = bytearray()
        while True:
            chunk = self.readline()
            if chunk == b"":
                return bytes(out)
            out += chunk


class _PipeIn(InStream):
    """A non-PTY session's stdin: the channel's data; channel EOF ends it."""

    def __init__(self):
        self._cond = threading.Condition()
        self._buf = bytearray()
        self._eof = False

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def readline(self) -> bytes:
        with self._cond:
            while b"\n" not in self._buf and not self._eof:
                self._cond.wait(0.5)
            i = self._buf.find(b"\n")
            n = len(self._buf) if i < 0 else i + 1
            line = bytes(self._buf[:n])
            del self._buf[:n]
            return line


class OutStream:
    is_tty = False
    path: str | None = None

    def write(self, data: bytes | str) -> None:
        raise NotImplementedError


class _BufOut(OutStream):
    def __init__(self):
        self.buf = bytearray()

    def write(self, data: bytes | str) -> None:
        self.buf += data.encode("utf-8") if isinstance(data, str) else data


class _NullOut(OutStream):
    path = "/dev/null"

    def write(self, data: bytes | str) -> None:
        pass


class _FnOut(OutStream):
    def __init__(self, fn: Callable[[bytes], None], tty: bool):
        self._fn, self.is_tty = fn, tty

    def write(self, data: bytes | str) -> None:
        b = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if self.is_tty:                                  # onlcr
            b = b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if b:
            self._fn(b)


class _FileOut(OutStream):
    def __init__(self, fs: VirtualFS, path: str):
        self.fs, self.path = fs, path

    def write(self, data: bytes | str) -> None:
        self.fs.write(self.path, data, append=True)


# =========================================================================== sessions and invocations
class _Session:
    """One exec request: who, whether it has a PTY, and its terminal/stdin/stdout/stderr."""

    def __init__(self, service: SshService, user: str, pty: bool, send: Callable[[bytes], None],
                 send_err: Callable[[bytes], None]):
        self.service, self.user, self.pty = service, user, pty
        self._lock = threading.Lock()

        def locked(fn):
            def w(b: bytes) -> None:
                with self._lock:
                    fn(b)
            return w

        out = locked(send)
        if pty:
            self.tty: _TtyIn | None = _TtyIn(out)
            self.stdin: InStream = self.tty
            self.out: OutStream = _FnOut(out, True)
            self.err: OutStream = _FnOut(out, True)      # a terminal has one output
        else:
            self.tty = None
            self.stdin = _PipeIn()
            self.out = _FnOut(out, False)
            self.err = _FnOut(locked(send_err), False)


@dataclass
class Invocation:
    """What a command handler gets. Write with ``out.write``/``err.write`` (str or bytes), read
    ``stdin.readline()``/``stdin.read()``; return the exit status (None counts as 0)."""

    service: SshService
    session: _Session
    shell: _Shell
    argv: list[str]
    user: str                                  # effective user (root under sudo)
    cwd: str
    env: dict[str, str]
    stdin: InStream
    out: OutStream
    err: OutStream

    @property
    def fs(self) -> VirtualFS:
        return self.service.fs

    @property
    def clock(self) -> SimClock:
        return self.service.clock

    @property
    def login_user(self) -> str:
        return self.session.user

    @property
    def pty(self) -> bool:
        return self.session.pty

    def path(self, p: str) -> str:
        """``p`` resolved against the current directory."""
        return VirtualFS.norm(p, self.cwd)

    def fail(self, msg: str, status: int = 1) -> int:
        self.err.write(msg.rstrip("\n") + "\n")
        return status

    def provide_output(self, fn: ContentProvider) -> None:
        """Output that keeps growing with simulated time (a long-running program such as an
        installer). When stdout goes to a file (``> f``, ``>> f``, ``nohup``) the file's content
        becomes ``what it had + fn(elapsed)``; otherwise ``fn(0)`` is written once."""
        if isinstance(self.out, _FileOut):
            self.fs.provide(self.out.path, fn, keep=True)
        else:
            self.out.write(fn(0.0))

    def run(self, command_line: str) -> int:
        """Run a command line in a sub-shell as the same user, with the same streams."""
        return self.shell.child(self.user, self.cwd).run_script(command_line, self.stdin, self.out, self.err)


# =========================================================================== the shell
class _SyntaxError(Exception):
    pass


Seg = tuple[str, str]                           # (text, "sq" | "dq" | "raw")
_OPS = ("2>&1", "1>&2", ">&2", "2>>", "2>", "&&", "||", ">>", ";", "|", "&", ">", "<")
_REDIRS = {"2>&1", "1>&2", ">&2", "2>>", "2>", ">>", ">", "<"}
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|([?$#0-9]))")


def _lex(script: str) -> list[tuple[str, Any]]:
    toks: list[tuple[str, Any]] = []
    word: list[Seg] | None = None
    i, n = 0, len(script)

    def add(text: str, kind: str) -> None:
        nonlocal word
        if word is None:
            word = []
        if kind == "raw" and word and word[-1][1] == "raw":
            word[-1] = (word[-1][0] + text, "raw")
        else:
            word.append((text, kind))

    def flush() -> None:
        nonlocal word
        if word is not None:
            toks.append(("w", word))
            word = None

    while i < n:
        c = script[i]
        if c in " \t":
            flush()
            i += 1
            continue
        if c == "\n":
            flush()
            toks.append(("op", "\n"))
            i += 1
            continue
        if word is None:
            if c == "#":
                j = script.find("\n", i)
                i = n if j < 0 else j
                continue
            op = next((o for o in _OPS if script.startswith(o, i)), None)
            if op is not None:
                toks.append(("op", op))
                i += len(op)
                continue
        elif c in ";|&<>":
            flush()
            continue
        if c == "'":
            j = script.find("'", i + 1)
            if j < 0:
                raise _SyntaxError("unexpected EOF while looking for matching `''")
            add(script[i + 1:j], "sq")
            i = j + 1
        elif c == '"':
            j, buf = i + 1, []
            while j < n and script[j] != '"':
                if script[j] == "\\" and j + 1 < n and script[j + 1] in '$`"\\\n':
                    if script[j + 1] != "\n":
                        buf.append("\\" + script[j + 1] if script[j + 1] == "$" else script[j + 1])
                    j += 2
                    continue
                buf.append(script[j])
                j += 1
            if j >= n:
                raise _SyntaxError('unexpected EOF while looking for matching `"\'')
            add("".join(buf), "dq")
            i = j + 1
        elif c == "\\":
            if i + 1 < n and script[i + 1] != "\n":
                add(script[i + 1], "sq")
            i += 2
        else:
            add(c, "raw")
            i += 1
    flush()
    return toks


@dataclass
class _Simple:
    assigns: list[tuple[str, list[Seg]]] = field(default_factory=list)
    words: list[list[Seg]] = field(default_factory=list)
    redirs: list[tuple[str, list[Seg] | None]] = field(default_factory=list)


def _parse(toks: list[tuple[str, Any]]) -> list[tuple[list[tuple[str | None, list[_Simple]]], bool]]:
    """-> [(and_or, background)], and_or = [(connector, pipeline)], pipeline = [_Simple]."""
    out: list = []
    and_or: list = []
    pipeline: list[_Simple] = []
    cur: _Simple | None = None
    connector: str | None = None
    i = 0

    def unexpected(tok: str):
        return _SyntaxError(f"syntax error near unexpected token `{tok}'")

    def end_command(tok: str) -> None:
        nonlocal cur
        if cur is None or (not cur.words and not cur.assigns and not cur.redirs):
            raise unexpected(tok)
        pipeline.append(cur)
        cur = None

    while i < len(toks):
        kind, val = toks[i]
        if kind == "w":
            if cur is None:
                cur = _Simple()
            text = "".join(t for t, _ in val)
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=", text) if val[0][1] == "raw" else None
            if m and not cur.words and "=" in val[0][0]:
                name = m.group(1)
                first = (val[0][0][len(name) + 1:], "raw")
                cur.assigns.append((name, [first] + list(val[1:])))
            else:
                cur.words.append(val)
            i += 1
            continue
        if val in _REDIRS:
            if cur is None:
                cur = _Simple()
            if val in ("2>&1", "1>&2", ">&2"):
                cur.redirs.append((val, None))
                i += 1
                continue
            if i + 1 >= len(toks) or toks[i + 1][0] != "w":
                raise unexpected("newline" if i + 1 >= len(toks) else toks[i + 1][1])
            cur.redirs.append((val, toks[i + 1][1]))
            i += 2
            continue
        if val == "|":
            end_command("|")
            i += 1
            continue
        if val in ("&&", "||"):
            end_command(val)
            and_or.append((connector, pipeline))
            pipeline, connector = [], val
            i += 1
            continue
        if val in (";", "&", "\n"):
            if cur is None:
                if val == "\n":              # blank line, or a line break after &&, || or |
                    i += 1
                    continue
                raise unexpected(val)
            end_command(val)
            and_or.append((connector, pipeline))
            out.append((and_or, val == "&"))
            and_or, pipeline, connector = [], [], None
            i += 1
            continue
        raise unexpected(val)
    if cur is not None:
        end_command("newline")
    if pipeline:
        and_or.append((connector, pipeline))
    elif connector is not None:
        raise unexpected("newline")
    if and_or:
        out.append((and_or, False))
    return out


class _Shell:
    """Runs command lines for one user in one session."""

    def __init__(self, service: SshService, session: _Session, user: str, cwd: str | None = None,
                 env: dict[str, str] | None = None, positional: list[str] | None = None):
        self.service, self.session, self.user = service, session, user
        home = service.home(user)
        self.cwd = cwd or home
        self.env = {"HOME": home, "USER": user, "LOGNAME": user, "SHELL": "/bin/bash",
                    "PATH": "/usr/local/bin:/usr/bin:/usr/local/sbin:/usr/sbin"} | dict(env or {})
        self.positional = positional or ["sh"]
        self.status = 0

    def child(self, user: str, cwd: str | None = None, positional: list[str] | None = None) -> _Shell:
        env = None if user != self.user else {k: v for k, v in self.env.items()}
        return _Shell(self.service, self.session, user, cwd or self.cwd, env, positional)

    # ---- expansion
    def _expand(self, word: list[Seg], extra: dict[str, str] | None = None) -> str:
        env = self.env if not extra else self.env | extra
        parts = []
        for k, (text, kind) in enumerate(word):
            if kind == "sq":
                parts.append(text)
                continue
            if "$(" in text or "`" in text:
                raise _SyntaxError("command substitution is not supported by the simulator")
            if kind == "raw" and k == 0 and (text == "~" or text.startswith("~/")):
                text = self.service.home(self.user) + text[1:]

            def sub(m: re.Match) -> str:
                name = m.group(1) or m.group(2) or m.group(3)
                if name == "?":
                    return str(self.status)
                if name == "$":
                    return str(os.getpid())
                if name == "#":
                    return str(max(0, len(self.positional) - 1))
                if name.isdigit():
                    i = int(name)
                    return self.positional[i] if i < len(self.positional) else ""
                return env.get(name, "")

            parts.append(_VAR.sub(sub, text).replace("\\$", "$"))
        return "".join(parts)

    # ---- execution
    def run_script(self, script: str, stdin: InStream, out: OutStream, err: OutStream) -> int:
        try:
            parsed = _parse(_lex(script))
        except _SyntaxError as exc:
            err.write(f"sh: {exc}\n")
            return 2
        try:
            for and_or, background in parsed:
                if background:
                    self._and_or(and_or, _BufIn(b""), out, err)
                    self.status = 0
                else:
                    self.status = self._and_or(and_or, stdin, out, err)
        except _Exit as e:
            self.status = e.status
        except _SyntaxError as exc:
            err.write(f"sh: {exc}\n")
            self.status = 2
        return self.status

    def _and_or(self, and_or, stdin: InStream, out: OutStream, err: OutStream) -> int:
        status = 0
        for connector, pipeline in and_or:
            if connector == "&&" and status != 0:
                continue
            if connector == "||" and status == 0:
                continue
            status = self._pipeline(pipeline, stdin, out, err)
            self.status = status
        return status

    def _pipeline(self, cmds: list[_Simple], stdin: InStream, out: OutStream, err: OutStream) -> int:
        src = stdin
        status = 0
        for k, cmd in enumerate(cmds):
            last = k == len(cmds) - 1
            sink: OutStream = out if last else _BufOut()
            status = self._simple(cmd, src, sink, err)
            if not last:
                src = _BufIn(bytes(sink.buf))          # type: ignore[attr-defined]
        return status

    def _simple(self, cmd: _Simple, stdin: InStream, out: OutStream, err: OutStream) -> int:
        assigns = {name: self._expand(w) for name, w in cmd.assigns}
        argv = [self._expand(w, assigns) for w in cmd.words]
        fs = self.service.fs
        for op, target in cmd.redirs:                         # left to right, as sh does
            if op == "2>&1":
                err = out
                continue
            if op in ("1>&2", ">&2"):
                out = err
                continue
            path = fs.norm(self._expand(target), self.cwd)
            if op == "<":
                if not fs.is_file(path):
                    err.write(f"sh: {self._expand(target)}: No such file or directory\n")
                    return 1
                if not fs.can_read(self.user, path):
                    err.write(f"sh: {self._expand(target)}: Permission denied\n")
                    return 1
                stdin = _BufIn(fs.read(path))
                continue
            sink = self._open_out(path, self._expand(target), append=op.endswith(">>"), err=err)
            if sink is None:
                return 1
            if op.startswith("2"):
                err = sink
            else:
                out = sink
        if not argv:
            self.env.update(assigns)
            return 0
        env = self.env | assigns
        return self.exec_argv(argv, stdin, out, err, env=env)

    def _open_out(self, path: str, shown: str, *, append: bool, err: OutStream) -> OutStream | None:
        fs = self.service.fs
        if path == "/dev/null":
            return _NullOut()
        if fs.is_dir(path):
            err.write(f"sh: {shown}: Is a directory\n")
            return None
        if not fs.is_dir(posixpath.dirname(path)):
            err.write(f"sh: {shown}: No such file or directory\n")
            return None
        if not fs.can_write(self.user, path):
            err.write(f"sh: {shown}: Permission denied\n")
            return None
        if not append or not fs.is_file(path):
            existed = fs.stat(path)
            fs.write(path, b"", owner=existed.owner if existed else self.user)
        return _FileOut(fs, path)

    def exec_argv(self, argv: list[str], stdin: InStream, out: OutStream, err: OutStream,
                  env: dict[str, str] | None = None) -> int:
        name = argv[0]
        handler = self.service._lookup(name)
        if handler is None:
            if "/" in name:
                err.write(f"sh: {name}: No such file or directory\n")
            else:
                err.write(f"sh: {name}: command not found\n")
            return 127
        inv = Invocation(self.service, self.session, self, list(argv), self.user, self.cwd,
                         dict(env if env is not None else self.env), stdin, out, err)
        status = handler(inv)
        return 0 if status is None else int(status)


# =========================================================================== built-in commands
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


def _read_arg_file(inv: Invocation, prog: str, a: str, tail_style: bool = False) -> bytes | None:
    p = inv.path(a)
    fs = inv.fs
    what = f"cannot open '{a}' for reading: " if tail_style else f"{a}: "
    if fs.is_dir(p) and not fs.is_file(p):
        inv.err.write(f"{prog}: {a}: Is a directory\n")
        return None
    if not fs.is_file(p):
        inv.err.write(f"{prog}: {what}No such file or directory\n")
        return None
    if not fs.can_read(inv.user, p):
        inv.err.write(f"{prog}: {what}Permission denied\n")
        return None
    return fs.read(p)


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
        data = _read_arg_file(inv, "cat", a)
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
        data = inv.stdin.read() if a == "-" else _read_arg_file(inv, "tail", a, tail_style=True)
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
        data = _read_arg_file(inv, "wc", a)
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
        data = _read_arg_file(inv, "sh", args[0])
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


def _cmd_sudo(inv: Invocation) -> int:
    args = inv.argv[1:]
    use_stdin, prompt, target, non_interactive = False, None, "root", False
    while args and args[0].startswith("-") and args[0] != "-":
        a = args.pop(0)
        if a == "--":
            break
        if a in ("-p", "-u") and not args:
            return inv.fail(f"sudo: option requires an argument -- '{a[1]}'\nusage: sudo -h | -K | -k | -V")
        if a.startswith("-p"):
            prompt = a[2:] if len(a) > 2 else args.pop(0)
            continue
        if a.startswith("-u"):
            target = a[2:] if len(a) > 2 else args.pop(0)
            continue
        for ch in a[1:]:
            if ch == "S":
                use_stdin = True
            elif ch == "n":
                non_interactive = True
            elif ch in "kEHi":
                pass
            else:
                return inv.fail(f"sudo: invalid option -- '{ch}'\nusage: sudo -h | -K | -k | -V")
    if not args:
        return inv.fail("usage: sudo -h | -K | -k | -V\nusage: sudo [-ABbEHknPS] [-u user] command")
    svc = inv.service
    if svc._account(target) is None:
        return inv.fail(f"sudo: unknown user {target}")
    if inv.user != "root":
        if inv.session.tty is None:                   # requiretty: the session has no terminal
            return inv.fail(SUDO_NO_TTY)
        if non_interactive:
            return inv.fail("sudo: a password is required")
        src = inv.stdin if use_stdin else inv.session.tty
        shown = f"[sudo] password for {inv.user}: " if prompt is None else prompt
        acct = svc._account(inv.user)
        if acct is not None and not acct.lectured:          # first sudo of this user (lecture=once)
            acct.lectured = True
            inv.err.write(SUDO_LECTURE)
        failures = 0
        while True:
            line = _read_secret(inv, src, shown)
            if src.is_tty:
                inv.session.tty.flush()               # TCSAFLUSH when restoring the terminal
            if not line:
                inv.err.write("sudo: no password was provided\n")
                if failures:
                    inv.err.write(f"sudo: {failures} incorrect password attempt{'s' if failures > 1 else ''}\n")
                return 1
            pw = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if svc.password_ok(inv.user, pw):
                break
            failures += 1
            if failures >= 3:
                inv.err.write("sudo: 3 incorrect password attempts\n")
                return 1
            inv.err.write(SUDO_RETRY + "\n")
        acct = svc._account(inv.user)
        if acct is None or not acct.sudo:
            return inv.fail(f"{inv.user} is not in the sudoers file.  This incident will be reported.")
    shell = inv.shell.child(target, inv.cwd)
    shell.env.update(HOME=svc.home(target), USER=target, LOGNAME=target, SUDO_USER=inv.user)
    return shell.exec_argv(args, inv.stdin, inv.out, inv.err)


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


BUILTINS: dict[str, CommandHandler] = {
    "true": _cmd_true, ":": _cmd_true, "false": _cmd_false, "exit": _cmd_exit, "sleep": _cmd_sleep,
    "echo": _cmd_echo, "printf": _cmd_printf, "read": _cmd_read, "cd": _cmd_cd, "test": _cmd_test, "[": _cmd_test,
    "stty": _cmd_stty, "id": _cmd_id, "whoami": _cmd_whoami, "hostname": _cmd_hostname, "cat": _cmd_cat,
    "tail": _cmd_tail, "wc": _cmd_wc, "mkdir": _cmd_mkdir, "rm": _cmd_rm, "sh": _cmd_sh, "bash": _cmd_sh,
    "sudo": _cmd_sudo, "chpasswd": _cmd_chpasswd, "passwd": _cmd_passwd, "nohup": _cmd_nohup,
}


# =========================================================================== the service
def _host_key(address: str, port: int, generation: int) -> paramiko.ECDSAKey:
    """A stable ECDSA P-256 host key per (address, port, generation): a real host keeps its key
    across runs, and so does a fresh simulator of the same plan (a later run's known_hosts,
    carried over from the previous run, still matches)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    seed = hashlib.sha256(f"smtx-sim ssh host key|{address}|{port}|{generation}".encode()).digest()
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551     # P-256 group order
    private = ec.derive_private_key(int.from_bytes(seed, "big") % (order - 1) + 1, ec.SECP256R1())
    return paramiko.ECDSAKey(vals=(private, private.public_key()))


class SshService:
    """One simulated SSH server (an address and port): accounts, files, host key, commands."""

    def __init__(self, address: str, *, port: int = 22, clock: SimClock | None = None,
                 users: dict[str, str | None] | None = None, hostname: str | Callable[[], str] = "localhost",
                 requests=None, faults=None):
        self.address, self.port = address, port
        self.clock = clock or SimClock(1.0)
        self.fs = VirtualFS(self.clock)
        self.fs.write("/etc/resolv.conf", "# Generated by NetworkManager\n")
        self.fs.write("/dev/null", b"", mode=0o666)
        self._hostname = hostname
        self._requests, self._faults = requests, faults
        self._lock = threading.RLock()
        self._accounts: dict[str, _Account] = {}
        self._commands: dict[str, CommandHandler] = {}
        self.host_key_generation = 0
        self.host_key: paramiko.PKey = _host_key(address, port, 0)
        self.commands: list[CommandRecord] = []
        self.auth_failures = 0
        self.logins = 0
        self.add_user("root", None)
        for name, pw in (users or {}).items():
            self.add_user(name, pw)

    # ---- identity
    @property
    def hostname(self) -> str:
        return self._hostname() if callable(self._hostname) else self._hostname

    @property
    def host_key_fingerprint(self) -> str:
        return self.host_key.fingerprint

    def rotate_host_key(self) -> paramiko.PKey:
        """A new host key, as after a reinstall (new connections see it; clients that recorded the
        old one must report a changed key)."""
        self.host_key_generation += 1
        self.host_key = _host_key(self.address, self.port, self.host_key_generation)
        return self.host_key

    # ---- accounts
    def add_user(self, name: str, password: str | None, *, home: str | None = None, sudo: bool = True) -> None:
        """Create (or update) an account. ``password=None`` leaves it locked (no login)."""
        with self._lock:
            acct = self._accounts.get(name)
            if acct is None:
                uid = 0 if name == "root" else 1000 + sum(1 for a in self._accounts.values() if a.uid)
                home = home or ("/root" if name == "root" else f"/home/{name}")
                acct = self._accounts[name] = _Account(name, uid, home, sudo=sudo)
                self.fs.mkdir(home)
                self.fs.homes[name] = home
            else:
                acct.sudo = sudo
            acct.set(password)

    def set_password(self, user: str, password: str | None) -> None:
        with self._lock:
            acct = self._accounts.get(user)
            if acct is None:
                raise KeyError(f"no such user on {self.address}: {user}")
            acct.set(password)
            acct.changes += 1
        log.info("sim ssh %s: password of %s changed", self.address, user)

    def password_ok(self, user: str, password: str) -> bool:
        acct = self._accounts.get(user)
        return acct is not None and acct.check(password)

    def password_changes(self, user: str) -> int:
        """How many times ``user``'s password was changed (chpasswd/passwd/set_password)."""
        acct = self._accounts.get(user)
        return acct.changes if acct else 0

    @property
    def users(self) -> list[str]:
        return list(self._accounts)

    def home(self, user: str) -> str:
        acct = self._accounts.get(user)
        return acct.home if acct else "/"

    def _account(self, user: str) -> _Account | None:
        return self._accounts.get(user)

    # ---- commands
    def register_command(self, name: str, handler: CommandHandler) -> None:
        """Serve ``name`` (a program name such as ``installer``, or an absolute path such as
        ``/usr/share/smartx/tower/preinstall.sh``, which ``sh PATH`` and ``sudo PATH`` also find)
        with ``handler(inv: Invocation) -> exit status``. Overrides a built-in of the same name."""
        self._commands[name] = handler

    def _lookup(self, name: str) -> CommandHandler | None:
        h = self._commands.get(name)
        if h is not None:
            return h
        base = posixpath.basename(name)
        if "/" in name and posixpath.dirname(posixpath.normpath(name)) not in BIN_DIRS:
            return None
        return self._commands.get(base) or BUILTINS.get(base)

    def run_command(self, command: str, *, user: str, stdin: bytes | str = b"", pty: bool = False) -> tuple[int, bytes, bytes]:
        """Run a command line as ``user`` without SSH (tests of handlers): ``(status, stdout, stderr)``.
        With ``pty`` the input goes through the terminal and output is merged, as over SSH."""
        out, err = bytearray(), bytearray()
        session = _Session(self, user, pty, out.extend, err.extend)
        data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
        session.stdin.feed(data)  # type: ignore[attr-defined]
        session.stdin.close()     # type: ignore[attr-defined]
        try:
            status = _Shell(self, session, user).run_script(command, session.stdin, session.out, session.err)
        except _Interrupted:
            status = 130
        return status, bytes(out), bytes(err)

    # ---- serving (Hub stream handler: one thread per TCP connection)
    def handle_connection(self, sock: socket.socket, endpoint=None) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        transport = paramiko.Transport(sock)
        transport.set_log_channel("mocks.ssh.transport")
        workers: list[threading.Thread] = []
        try:
            transport.add_server_key(self.host_key)
            server = _Server(self, workers)
            try:
                transport.start_server(server=server)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                log.debug("sim ssh %s:%s: negotiation failed: %s", self.address, self.port, exc)
                return
            channels: list[paramiko.Channel] = []     # paramiko only keeps weak references
            while transport.is_active():
                chan = transport.accept(0.2)          # served from check_channel_exec_request
                if chan is not None:
                    channels.append(chan)
                channels = [c for c in channels if not c.closed]
                workers[:] = [w for w in workers if w.is_alive()]
        finally:
            transport.close()
            for t in list(workers):
                t.join(2.0)

    def _serve_exec(self, chan: paramiko.Channel, command: str, pty: bool, user: str,
                    workers: list[threading.Thread]) -> None:
        def send(b: bytes) -> None:
            chan.sendall(b)

        def send_err(b: bytes) -> None:
            chan.sendall_stderr(b)

        session = _Session(self, user, pty, send, send_err)
        pump = threading.Thread(target=self._pump, args=(chan, session), daemon=True,
                                name=f"sim-ssh-in-{self.address}")
        pump.start()
        workers.append(pump)
        t0, sim_t, wall_t = time.monotonic(), self.clock.now(), time.time()
        record = CommandRecord(user, command, pty, None, sim_t)
        self.commands.append(record)
        status: int | None = None
        rule = _ssh_fault(self._faults, command, self.address, self.port) if self._faults is not None else None
        result = None
        try:
            if rule is not None:
                a = rule.action
                deadline = time.monotonic() + float(a.get("delay", 0) or 0)
                while time.monotonic() < deadline and chan.get_transport() and chan.get_transport().is_active():
                    time.sleep(0.02)
                if a.get("drop"):                            # the connection breaks (as HTTP 'drop')
                    result = "dropped"
                    t = chan.get_transport()
                    if t is not None:
                        t.close()
                elif "status" in a or "envelope_error" in a:
                    session.err.write((a.get("msg") or a.get("envelope_error") or f"simulated failure: {command}")
                                      + "\n")
                    status = 1
                    result = "fault"
            if result is None:
                try:
                    status = _Shell(self, session, user).run_script(command, session.stdin, session.out, session.err)
                except _Interrupted:
                    status, result = None, "interrupted"
        except (OSError, EOFError, paramiko.SSHException) as exc:
            log.debug("sim ssh %s: client went away during %r: %s", self.address, command, exc)
            status, result = None, "client gone"
        except Exception:                                   # noqa: BLE001
            log.exception("sim ssh %s: command %r failed", self.address, command)
            try:
                session.err.write("sh: simulator internal error\n")
            except Exception:                               # noqa: BLE001
                pass
            status = 1
        finally:
            # record before answering: once the client has the exit status, the log has the call
            record.exit_status = status
            log.debug("sim ssh %s %s%s$ %s -> %s", self.address, user, " (pty)" if pty else "", command,
                      result or status)
            if self._requests is not None:
                self._requests.add(address=self.address, port=self.port, proto="tcp", scheme="ssh", method="SSH",
                                   path=command[:1000], query="", status=None, sim_time=sim_t, wall_time=wall_t,
                                   duration=time.monotonic() - t0, fault=rule.id if rule else None,
                                   result=result or f"exit {status}")
            try:
                if status is not None:
                    chan.send_exit_status(status)
                    chan.shutdown_write()                   # EOF
                    # Close once the client has closed its side (or after 1 s): closing earlier can
                    # overtake paramiko's reply to the exec request, which clients report as
                    # "Channel closed" although the command ran.
                    deadline = time.monotonic() + 1.0
                    while not chan.closed and time.monotonic() < deadline and chan.get_transport() is not None \
                            and chan.get_transport().is_active():
                        time.sleep(0.002)
                chan.close()
            except Exception:                               # noqa: BLE001
                pass
            session.stdin.close()                           # type: ignore[attr-defined]

    @staticmethod
    def _pump(chan: paramiko.Channel, session: _Session) -> None:
        """Channel data -> the session's stdin (a terminal when there is a PTY)."""
        inp = session.stdin
        try:
            while True:
                data = chan.recv(4096)
                if not data:
                    break
                inp.feed(data)                              # type: ignore[attr-defined]
            if session.pty:                                 # a PTY ignores channel EOF: wait for close
                while not chan.closed and chan.get_transport() is not None and chan.get_transport().is_active():
                    time.sleep(0.02)
        except Exception:                                   # noqa: BLE001
            pass
        finally:
            inp.close()                                     # type: ignore[attr-defined]

    def to_dict(self) -> dict:
        return {"address": self.address, "port": self.port, "hostname": self.hostname,
                "host_key": self.host_key_fingerprint,
                "users": {n: {"uid": a.uid, "home": a.home, "sudo": a.sudo, "locked": not a.digest,
                              "password_changes": a.changes} for n, a in self._accounts.items()},
                "files": self.fs.paths(), "commands": len(self.commands), "logins": self.logins,
                "auth_failures": self.auth_failures, "extra_commands": sorted(self._commands)}


def _ssh_fault(faults, command: str, address: str, port: int):
    """The fault rule that fires for this command: only rules that name ``SSH`` apply (``Faults.match``)."""
    return faults.match("SSH", command, address, port, explicit=True)


class _Server(paramiko.ServerInterface):
    def __init__(self, service: SshService, workers: list[threading.Thread]):
        self.service = service
        self.workers = workers
        self.user: str | None = None
        self.pty_channels: set[int] = set()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if self.service.password_ok(username, password):
            self.user = username
            self.service.logins += 1
            log.debug("sim ssh %s:%s: %s logged in", self.service.address, self.service.port, username)
            return paramiko.AUTH_SUCCESSFUL
        self.service.auth_failures += 1
        log.info("sim ssh %s:%s: authentication failed for %s", self.service.address, self.service.port, username)
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, channel, term, width, height, pixelwidth, pixelheight, modes) -> bool:
        self.pty_channels.add(channel.get_id())
        return True

    def check_channel_env_request(self, channel, name, value) -> bool:
        return False

    def check_channel_shell_request(self, channel) -> bool:
        return False                                       # the suite only sends exec requests

    def check_channel_exec_request(self, channel, command) -> bool:
        cmd = command.decode("utf-8", errors="replace") if isinstance(command, bytes) else str(command)
        pty = channel.get_id() in self.pty_channels
        t = threading.Thread(target=self.service._serve_exec, args=(channel, cmd, pty, self.user or "", self.workers),
                             daemon=True, name=f"sim-ssh-{self.service.address}")
        self.workers.append(t)
        t.start()
        return True


# =========================================================================== simulator wiring
class SshFamily:
    """``sim.state.ssh``: every SSH service of a simulator, by (address, port)."""

    family = "ssh"

    def __init__(self):
        self.services: dict[tuple[str, int], SshService] = {}
        self.installed = False

    def service(self, address: str, port: int = 22) -> SshService:
        return self.services[(str(address), int(port))]

    def to_dict(self) -> dict:
        return {"services": [s.to_dict() for s in self.services.values()]}

    def export_state(self) -> dict:
        """For snapshots: accounts as salted PBKDF2 digests (never clear text) and host-key generations."""
        out = []
        for (address, port), svc in self.services.items():
            accounts = {n: {"uid": a.uid, "home": a.home, "salt": a.salt.hex(), "digest": a.digest.hex(),
                            "sudo": a.sudo, "changes": a.changes} for n, a in svc._accounts.items()}
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
            while svc.host_key_generation < int(entry.get("generation", 0)):
                svc.rotate_host_key()
        return notes


def _family(sim) -> SshFamily:
    fam = sim.state.families.get("ssh")
    if fam is None:
        fam = sim.state.register("ssh", SshFamily())
    return fam


def attach_ssh(sim, address: str, *, users: dict[str, str | None], up: bool = True, port: int = 22,
               hostname: str | Callable[[], str] | None = None, role: str = "ssh") -> SshService:
    """An SSH server at ``address:port`` on the simulator (added to ``sim.address_map`` as tcp).

    Idempotent: attaching again returns the same service (same host key, same files) and sets the
    given users' passwords. An endpoint the plan already created (CloudTower/OBS tcp 22 or 10022,
    down) is reused: it gets the SSH handler, and ``up`` decides whether it listens."""
    from .core import normalize_address

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
    from .core import normalize_address

    return _family(sim).service(normalize_address(address), port)


def seed_host_ssh(sim, addresses: Iterable[str] | None = None) -> list[SshService]:
    """Post-deploy SSH accounts on hosts: ``smartx`` and ``root`` with ``P@ssw0rd!123``.

    ``addresses``: management IPs (default: every host of the simulator)."""
    wanted = [str(a) for a in addresses] if addresses is not None else list(sim.deployment.hosts)
    out = []
    for ip in wanted:
        host = sim.deployment.hosts.get(ip)
        out.append(attach_ssh(sim, ip, users={u: DEFAULT_HOST_PASSWORD for u in HOST_SSH_USERS}, up=True,
                              hostname=(lambda h=host: h.hostname) if host is not None else None))
    return out


def install(sim) -> SshFamily:
    """Wire SSH into a simulator (call once, right after ``Simulator.from_plan``; idempotent).

    Every host management IP gets tcp/22 now (so it is in ``sim.address_map`` from the start)
    with sshd listening and no account able to log in yet; when a deployment succeeds, its hosts
    get ``smartx``/``root`` with the post-deploy default password (``DeploymentModel.listeners``)."""
    fam = _family(sim)
    if fam.installed:
        return fam
    fam.installed = True
    for ip, host in sim.deployment.hosts.items():
        attach_ssh(sim, ip, users={}, up=True, hostname=lambda h=host: h.hostname, role="host-mgmt")

    def on_deploy(op, state: str) -> None:
        if state != "success":
            return
        ips = [h.mgmt_ip for h in (sim.deployment.host_by_uuid(u) for u in op.host_uuids) if h is not None]
        seed_host_ssh(sim, ips)

    sim.deployment.listeners.append(on_deploy)
    return fam
