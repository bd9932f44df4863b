"""One exec request (:class:`_Session`: user, PTY, streams) and what a command handler gets
(:class:`Invocation`, the extension API of :meth:`SshService.register_command`)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..clock import SimClock
from .streams import InStream, OutStream, _FileOut, _FnOut, _PipeIn, _TtyIn
from .vfs import ContentProvider, VirtualFS

if TYPE_CHECKING:              # pragma: no cover
    from .server import SshService
    from .shell import _Shell


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

    def read_file(self, prog: str, name: str, *, tail_style: bool = False) -> bytes | None:
        """The content of file ``name`` if this user may read it; else ``None`` after writing
        ``prog``'s error message (``tail_style``: "cannot open 'x' for reading: ...") to stderr."""
        p = self.path(name)
        fs = self.fs
        what = f"cannot open '{name}' for reading: " if tail_style else f"{name}: "
        if fs.is_dir(p) and not fs.is_file(p):
            self.err.write(f"{prog}: {name}: Is a directory\n")
            return None
        if not fs.is_file(p):
            self.err.write(f"{prog}: {what}No such file or directory\n")
            return None
        if not fs.can_read(self.user, p):
            self.err.write(f"{prog}: {what}Permission denied\n")
            return None
        return fs.read(p)

    def run(self, command_line: str) -> int:
        """Run a command line in a sub-shell as the same user, with the same streams."""
        return self.shell.child(self.user, self.cwd).run_script(command_line, self.stdin, self.out, self.err)
