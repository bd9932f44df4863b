"""The one chunked uploader (SVT tools ISO in stage 03, CloudTower ISO in stage 04).

The server creates an upload volume and lists the chunk indexes it still needs (``to_upload``);
the client sends exactly those, one ``chunk_size`` slice of the file at a time, streamed from disk
(memory stays flat whatever the file size), until the server lists none. Retries follow the guide,
not a generic HTTP layer: a failed chunk is retried twice; if it still fails the volume is deleted and
recreated and the upload starts again, once; then the upload fails with a clear message.
"""
from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

CHUNK_RETRIES = 2
RECREATE_ONCE = 1


class UploadError(AssertionError):
    pass


class UploadApi(Protocol):
    def create(self, name: str, size: int) -> dict: ...             # -> volume with chunk_size, to_upload, ids
    def send(self, volume: dict, chunk_num: int, chunk: "FileSlice") -> dict: ...   # -> {"to_upload": [...]} or {}
    def delete(self, volume: dict) -> None: ...


class FileSlice(io.RawIOBase):
    """A read-only window on a file: one chunk, streamed by httpx in small reads, so memory stays flat
    whatever the file and chunk sizes (bench/bench_upload.py prints the peak RSS)."""

    def __init__(self, path: Path, offset: int, length: int):
        self.name = path.name
        self._fh = open(path, "rb")
        self._start, self._len, self._pos = offset, length, 0
        self._fh.seek(offset)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._len}[whence]
        self._pos = max(0, min(self._len, base + pos))
        self._fh.seek(self._start + self._pos)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        left = self._len - self._pos
        n = left if n is None or n < 0 else min(n, left)
        data = self._fh.read(n) if n else b""
        self._pos += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


@dataclass
class UploadResult:
    volume: dict
    size: int
    seconds: float
    chunks_sent: int
    chunk_retries: int = 0
    recreated: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.size / 1e6 / self.seconds if self.seconds > 0 else float("inf")


class _Progress:
    def __init__(self, name: str, size: int, echo: Callable[[str], None] | None, every: float):
        self.name, self.size, self.echo, self.every = name, size, echo, every
        self.start = self.last = time.monotonic()

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if self.echo is None or now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.size - done) / rate if rate > 0 else float("inf")
        self.echo(f"上传 / uploading {self.name}: {100 * done / max(self.size, 1):.0f}% "
                  f"{rate / 1e6:.1f} MB/s, 剩余约 / ETA {eta:.0f}s")


def upload_file(path: Path, api: UploadApi, *, echo: Callable[[str], None] | None = None,
                progress_every: float = 10.0) -> UploadResult:
    path = Path(path)
    size = os.path.getsize(path)
    start = time.monotonic()
    result = UploadResult(volume={}, size=size, seconds=0.0, chunks_sent=0)
    progress = _Progress(path.name, size, echo, progress_every)
    for attempt in range(RECREATE_ONCE + 1):
        volume = api.create(path.name, size)
        result.volume = volume
        try:
            _send_all(path, size, api, volume, result, progress)
            result.seconds = time.monotonic() - start
            return result
        except _ChunkFailed as failed:
            note = (f"分块 {failed.chunk_num} 重试 {CHUNK_RETRIES} 次仍失败：{failed.cause} / chunk {failed.chunk_num} "
                    f"failed after {CHUNK_RETRIES} retries: {failed.cause}")
            result.notes.append(note)
            api.delete(volume)
            if attempt < RECREATE_ONCE:
                result.recreated += 1
                result.notes.append("已删除上传卷并重新创建，从头上传 / deleted the upload volume; recreated it and "
                                    "restarted the upload")
                continue
            raise UploadError(f"上传 {path.name} 失败（已重建上传卷一次）/ uploading {path.name} failed (the upload "
                              f"volume was recreated once): {note}\n下一步 / next: 检查集群存储与网络后用 --resume 重跑 / "
                              f"check cluster storage and the network, then rerun with --resume") from failed.exc
    raise AssertionError("unreachable")  # pragma: no cover


class _ChunkFailed(Exception):
    def __init__(self, chunk_num: int, exc: Exception):
        super().__init__(str(exc))
        self.chunk_num, self.exc = chunk_num, exc
        self.cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _send_all(path: Path, size: int, api: UploadApi, volume: dict, result: UploadResult, progress: _Progress) -> None:
    """Send exactly what the server lists in to_upload, first listed first, until it lists none."""
    chunk_size = int(volume["chunk_size"])
    expected = max(1, -(-size // chunk_size))
    remaining = list(volume.get("to_upload", range(expected)))
    budget = 3 * expected + 10
    while remaining:
        num = remaining[0]
        if not 0 <= num < expected:
            raise UploadError(f"服务端要求的分块 {num} 超出文件范围 / the server asked for chunk {num}, outside the file")
        budget -= 1
        if budget < 0:
            raise UploadError(f"服务端反复要求分块 {num} / the server keeps asking for chunk {num}")
        answer = _send_one(path, size, api, volume, num, chunk_size, result)
        result.chunks_sent += 1
        remaining = answer if answer is not None else remaining[1:]
        progress.tick(size - sum(min(chunk_size, size - n * chunk_size) for n in remaining))


def _send_one(path: Path, size: int, api: UploadApi, volume: dict, num: int, chunk_size: int,
              result: UploadResult) -> list[int] | None:
    """Send one chunk (with the guide's retries). Returns the server's new to_upload list when it gave one."""
    offset = num * chunk_size
    length = min(chunk_size, size - offset)
    last: Exception | None = None
    for attempt in range(CHUNK_RETRIES + 1):
        if attempt:
            result.chunk_retries += 1
        chunk = FileSlice(path, offset, length)
        try:
            data = api.send(volume, num, chunk) or {}
            todo = data.get("to_upload") if isinstance(data, dict) else None
            return list(todo) if todo is not None else None
        except Exception as exc:  # noqa: BLE001 - any failure of this chunk counts against its retries
            last = exc
        finally:
            chunk.close()
    raise _ChunkFailed(num, last)
