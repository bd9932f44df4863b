"""Streaming ``multipart/form-data`` reader (RFC 7578) on top of werkzeug's sans-IO ``MultipartDecoder``.

Reads a body block by block from a ``read(n) -> bytes`` callable (e.g. :class:`mocks.http.BodyReader`)
and yields its parts; each part's content is handed out in blocks, so memory stays at about one
block plus the boundary, whatever the upload size (an 8 GB ISO never sits in memory)::

    mp = MultipartReader(request.stream.read, boundary_of(request.header("Content-Type")))
    for part in mp.parts():
        if part.name == "file":
            for block in part.blocks():
                digest.update(block)
        # parts not consumed are skipped (discarded) automatically

werkzeug does the parsing (boundaries, part headers, ``Content-Disposition`` parameters); this
module only pulls blocks into it, bounds what it may buffer (preamble and part headers: at most
``MAX_HEADER_BYTES`` beyond one block) and stops at the closing boundary (the caller's server
discards the epilogue).
"""
from __future__ import annotations

from typing import Callable, Iterator

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData, State

BLOCK = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024

__all__ = ["BLOCK", "MAX_HEADER_BYTES", "MultipartError", "MultipartReader", "Part", "boundary_of"]


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


def boundary_of(content_type: str | None) -> str | None:
    """The boundary of a ``multipart/form-data`` Content-Type, or None."""
    if not content_type:
        return None
    mimetype, options = parse_options_header(content_type)
    if mimetype.lower() != "multipart/form-data":
        return None
    b = options.get("boundary")
    return b if b and len(b) <= 200 else None


class Part:
    def __init__(self, reader: MultipartReader, event: Field | File):
        self._reader = reader
        self.headers: dict[str, str] = {k.lower(): v for k, v in event.headers.items()}
        self.name: str | None = event.name
        self.filename: str | None = getattr(event, "filename", None)
        self.content_type: str | None = self.headers.get("content-type")
        self._done = False

    def blocks(self) -> Iterator[bytes]:
        """The part's content, block by block (continues where an earlier iteration stopped)."""
        while not self._done:
            event = self._reader._event()
            if not isinstance(event, Data):
                raise MultipartError(f"unexpected multipart event {type(event).__name__} inside a part")
            self._done = not event.more_data
            if event.data:
                yield event.data

    def drain(self) -> int:
        """Skip the rest of the part's content; returns the bytes skipped."""
        return sum(len(b) for b in self.blocks())


class MultipartReader:
    def __init__(self, read: Callable[[int], bytes], boundary: str, *, block: int = BLOCK):
        if not boundary:
            raise MultipartError("no multipart boundary")
        self._read = read
        self._block = block
        self._decoder = MultipartDecoder(boundary.encode("latin-1"))
        self._ended = False

    def _feed(self) -> None:
        dec = self._decoder
        if dec.state in (State.PREAMBLE, State.PART) and len(dec.buffer) > MAX_HEADER_BYTES + self._block:
            raise MultipartError("multipart preamble or part headers are too large")
        data = b"" if self._ended else self._read(self._block)
        if data:
            dec.receive_data(data)
        else:
            self._ended = True
            dec.receive_data(None)

    def _event(self):
        """The decoder's next event, fed from ``read`` as needed."""
        while True:
            state = self._decoder.state
            try:
                event = self._decoder.next_event()
            except ValueError as exc:            # includes undecodable part headers
                raise MultipartError(self._problem(state, exc)) from exc
            if not isinstance(event, NeedData):
                return event
            self._feed()

    def _problem(self, state: State, exc: ValueError) -> str:
        if not self._ended:
            return f"bad part headers: {exc}"
        if state is State.PREAMBLE:
            return "no multipart boundary line in the body"
        if state is State.PART:
            return "truncated multipart body in part headers"
        return "truncated multipart body: the closing boundary is missing"

    def parts(self) -> Iterator[Part]:
        while self._decoder.state not in (State.EPILOGUE, State.COMPLETE):
            event = self._event()
            if isinstance(event, (Field, File)):
                part = Part(self, event)
                yield part
                part.drain()
            elif isinstance(event, Epilogue):
                return
