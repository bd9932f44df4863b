"""Byte streams of a simulated SSH session: the terminal (a PTY's canonical line discipline with
echo, ^C, ^D, erase and kill), a non-PTY session's stdin, buffers for pipes, /dev/null, and
output appended to a virtual file."""
from __future__ import annotations

import io
import threading
from typing import Callable

from .vfs import VirtualFS


class _Interrupted(Exception):
    """^C arrived on the terminal."""


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
