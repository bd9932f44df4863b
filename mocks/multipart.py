"""Streaming ``multipart/form-data`` reader (RFC 7578).

Reads a body block by block from a ``read(n) -> bytes`` callable (e.g. :class:`mocks.core.BodyReader`)
and yields its parts; each part's content is handed out in blocks, so memory stays at one block
plus the boundary, whatever the upload size::

    mp = MultipartReader(request.stream.read, boundary_of(request.header("Content-Type")))
    for part in mp.parts():
        if part.name == "file":
            for block in part.blocks():
                digest.update(block)
        # parts not consumed are skipped (discarded) automatically
"""
from __future__ import annotations

import re
from typing import Callable, Iterator

BLOCK = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.I)
_PARAM = re.compile(r'(\w+)\*?=(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


def boundary_of(content_type: str | None) -> str | None:
    """The boundary of a ``multipart/form-data`` Content-Type, or None."""
    if not content_type or not content_type.lower().lstrip().startswith("multipart/form-data"):
        return None
    m = _BOUNDARY.search(content_type)
    if not m:
        return None
    b = m.group(1) or m.group(2)
    return b if 0 < len(b) <= 200 else None


class Part:
    def __init__(self, reader: MultipartReader, headers: dict[str, str]):
        self._reader = reader
        self.headers = headers
        disp = headers.get("content-disposition", "")
        params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
                  for m in _PARAM.finditer(disp)}
        self.name: str | None = params.get("name")
        self.filename: str | None = params.get("filename")
        self.content_type: str | None = headers.get("content-type")
        self._gen: Iterator[bytes] | None = None

    def blocks(self) -> Iterator[bytes]:
        """The part's content, block by block (continues where an earlier iteration stopped)."""
        if self._gen is None:
            self._gen = self._reader._content()
        yield from self._gen

    def drain(self) -> int:
        """Skip the rest of the part's content; returns the bytes skipped."""
        return sum(len(b) for b in self.blocks())


class MultipartReader:
    def __init__(self, read: Callable[[int], bytes], boundary: str, *, block: int = BLOCK):
        if not boundary:
            raise MultipartError("no multipart boundary")
        self._read = read
        self._block = block
        self._delim = b"\r\n--" + boundary.encode("latin-1")
        self._buf = bytearray(b"\r\n")      # so the first boundary looks like every later one
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._read(self._block)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _content(self) -> Iterator[bytes]:
        """Bytes up to the next delimiter, which is consumed."""
        d = self._delim
        keep = len(d) - 1
        while True:
            idx = self._buf.find(d)
            if idx >= 0:
                if idx:
                    yield bytes(self._buf[:idx])
                del self._buf[:idx + len(d)]
                return
            if len(self._buf) > keep:
                out = bytes(self._buf[:-keep])
                del self._buf[:-keep]
                yield out
            if not self._fill():
                raise MultipartError("truncated multipart body: the closing boundary is missing")

    def _line(self, budget: list[int]) -> bytes:
        while True:
            idx = self._buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self._buf[:idx])
                del self._buf[:idx + 2]
                budget[0] -= idx + 2
                if budget[0] < 0:
                    raise MultipartError("multipart part headers are too large")
                return line
            if len(self._buf) > MAX_HEADER_BYTES:
                raise MultipartError("multipart part headers are too large")
            if not self._fill():
                raise MultipartError("truncated multipart body in part headers")

    def parts(self) -> Iterator[Part]:
        for _ in self._content():            # preamble (normally empty)
            pass
        while True:
            while len(self._buf) < 2 and self._fill():
                pass
            if self._buf[:2] == b"--":        # close delimiter: discard the epilogue
                self._buf.clear()
                while self._fill():
                    self._buf.clear()
                return
            budget = [MAX_HEADER_BYTES]
            if self._line(budget).strip(b" \t"):
                raise MultipartError("malformed multipart boundary line")
            headers: dict[str, str] = {}
            while True:
                line = self._line(budget)
                if not line:
                    break
                k, sep, v = line.decode("utf-8", "replace").partition(":")
                if not sep:
                    raise MultipartError(f"malformed multipart part header {line[:60]!r}")
                headers[k.strip().lower()] = v.strip()
            part = Part(self, headers)
            yield part
            part.drain()
