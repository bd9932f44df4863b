"""The one chunked uploader (SVT tools ISO in stage 03, CloudTower ISO in stage 04).

The server creates an upload volume and lists the chunk indexes it still needs (``to_upload``);
the client sends exactly those, one ``chunk_size`` slice of the file at a time, streamed from disk
(memory stays flat whatever the file size), until the server lists none. Retries follow the guide,
not a generic HTTP layer: a failed chunk is retried twice; if it still fails the volume is deleted and
recreated and the upload starts again, once; then the upload fails with a clear message.

Resume (a run killed mid-upload): with a journal (:class:`StateJournal`), the volume is recorded before
its first chunk is sent. The next run finds it there (or, where the API lists partial volumes, by file
name and size), asks the server which chunks it still misses -- its view of the volume
(``GET /api/v2/images/{uuid}``), or else the answer to re-sending the first chunk not known to be
received (every chunk answer lists ``to_upload``) -- and sends only those, to the same volume. Where the
volume cannot be continued (the file changed, the server refuses its chunks or lists nothing), the
orphaned partial volume is deleted first and the upload starts over. See mocks/README.md, "ISO upload".
"""
from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from .tls import TlsError

CHUNK_RETRIES = 2
RECREATE_ONCE = 1
RECORD_EVERY = 5.0     # seconds between progress records in the journal (the volume itself: at once)


class UploadError(AssertionError):
    pass


class UploadApi(Protocol):
    def create(self, name: str, size: int) -> dict: ...             # -> volume with chunk_size, to_upload, ids
    def send(self, volume: dict, chunk_num: int, chunk: "FileSlice") -> dict: ...   # -> {"to_upload": [...]} or {}
    def delete(self, volume: dict) -> None: ...
    # optional (resume): status(volume) -> the server's view with to_upload, or None when it shows none;
    # partials(name) -> the partial volumes of that name the API lists (each with uuid, size, to_upload)


class UploadJournal(Protocol):
    """Where the uploader records its volume before the first chunk (and progress), so a later run can
    continue it: e.g. :class:`StateJournal` over the run state."""
    def load(self) -> dict | None: ...
    def save(self, record: dict | None) -> None: ...


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
    resumed_at: int | None = None          # bytes already on the server when a partial volume was continued
    orphans_deleted: list[str] = field(default_factory=list)   # image uuids of partial volumes deleted first

    @property
    def mb_per_s(self) -> float:
        return self.size / 1e6 / self.seconds if self.seconds > 0 else float("inf")


class _Progress:
    def __init__(self, name: str, size: int, echo: Callable[[str], None] | None, every: float):
        self.name, self.size, self.echo, self.every = name, size, echo, every
        self.start = self.last = time.monotonic()

    base = 0

    def begin(self, done: int) -> None:
        """Bytes already on the server when sending starts (a resumed volume): not part of the rate."""
        self.base, self.start = done, time.monotonic()

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if self.echo is None or now - self.last < self.every:
            return
        self.last = now
        rate = (done - self.base) / max(now - self.start, 1e-9)
        eta = (self.size - done) / rate if rate > 0 else float("inf")
        self.echo(f"上传 / uploading {self.name}: {100 * done / max(self.size, 1):.0f}% "
                  f"{rate / 1e6:.1f} MB/s, 剩余约 / ETA {eta:.0f}s")


def upload_file(path: Path, api: UploadApi, *, echo: Callable[[str], None] | None = None,
                progress_every: float = 10.0, journal: UploadJournal | None = None,
                record_every: float = RECORD_EVERY) -> UploadResult:
    """Upload ``path``; with a ``journal``, a partial volume left by an interrupted run is continued (only
    the chunks it still misses are sent) or, where it cannot be, deleted before the upload starts over."""
    path = Path(path)
    stat = os.stat(path)
    size = stat.st_size
    start = time.monotonic()
    result = UploadResult(volume={}, size=size, seconds=0.0, chunks_sent=0)
    book = _Book(journal, {"file": path.name, "size": size, "mtime_ns": stat.st_mtime_ns}, record_every)
    resumed = _resume(path, size, api, book, result)
    progress = _Progress(path.name, size, echo, progress_every)
    for attempt in range(RECREATE_ONCE + 1):
        if resumed is not None:
            volume, remaining = resumed
            resumed = None
        else:
            volume, remaining = api.create(path.name, size), None
            book.start(volume)
        result.volume = volume
        try:
            _send_all(path, size, api, volume, result, progress, remaining, book)
            book.finish()
            result.seconds = time.monotonic() - start
            return result
        except _ChunkFailed as failed:
            note = (f"分块 {failed.chunk_num} 重试 {CHUNK_RETRIES} 次仍失败：{failed.cause} / chunk {failed.chunk_num} "
                    f"failed after {CHUNK_RETRIES} retries: {failed.cause}")
            result.notes.append(note)
            if _missing(api, volume) == []:           # the last answer was late, not lost: the upload is complete
                result.notes.append("服务端显示上传已完成，未删除上传卷 / the server shows the upload complete; the "
                                    "volume is kept")
                book.finish()
                result.seconds = time.monotonic() - start
                return result
            api.delete(volume)
            book.finish()
            if attempt < RECREATE_ONCE:
                result.recreated += 1
                result.notes.append("已删除上传卷并重新创建，从头上传 / deleted the upload volume; recreated it and "
                                    "restarted the upload")
                continue
            raise UploadError(f"上传 {path.name} 失败（已重建上传卷一次）/ uploading {path.name} failed (the upload "
                              f"volume was recreated once): {note}\n下一步 / next: 检查集群存储与网络后用 --resume 重跑 / "
                              f"check cluster storage and the network, then rerun with --resume") from failed.exc
    raise AssertionError("unreachable")  # pragma: no cover


# --- resuming an interrupted upload ------------------------------------------------------------------------

VOLUME_KEYS = ("image_uuid", "zbs_volume_id", "chunk_size", "image_path")


def is_partial(image: dict) -> bool:
    """An image item (``GET /api/v2/images`` or ``/images/{uuid}``) that is a volume still uploading."""
    return bool(image.get("to_upload")) or "uploading" in (image.get("resource_state"), image.get("status"))


def finished_images(images: list[dict], name: str, size: int) -> list[dict]:
    """The finished images of that name and size (the guide §04: such an image need not be uploaded again);
    a partial volume some servers list alongside is not one."""
    return [i for i in images if i.get("name") == name and i.get("size") == size and not is_partial(i)]


class StateJournal:
    """An :class:`UploadJournal` kept in the run state (``state.get`` / ``state.publish`` under ``key``):
    the volume is recorded before its first chunk is sent, progress every ``record_every`` seconds."""

    def __init__(self, state, key: str):
        self.state, self.key = state, key

    def load(self) -> dict | None:
        value = self.state.get(self.key)
        return value if isinstance(value, dict) else None

    def save(self, record: dict | None) -> None:
        self.state.publish(self.key, record)


class _Book:
    """What the journal holds for this file: the volume and the first chunk not yet confirmed."""

    def __init__(self, journal: UploadJournal | None, ident: dict, every: float):
        self.journal, self.ident, self.every = journal, ident, every
        self.record: dict | None = None
        self.last = 0.0

    def load(self) -> dict | None:
        return self.journal.load() if self.journal is not None else None

    def matches(self, rec: dict) -> bool:
        return all(rec.get(k) == v for k, v in self.ident.items()) and bool(rec.get("image_uuid"))

    def start(self, volume: dict, next_chunk: int = 0) -> None:
        self.record = {**self.ident, **{k: volume.get(k) for k in VOLUME_KEYS}, "next_chunk": next_chunk}
        self._save(self.record)

    def advance(self, next_chunk: int) -> None:
        if self.record is None or self.journal is None:
            return
        self.record["next_chunk"] = next_chunk
        if time.monotonic() - self.last >= self.every:
            self._save(self.record)

    def finish(self) -> None:
        self.record = None
        self._save(None)

    def _save(self, record: dict | None) -> None:
        if self.journal is not None:
            self.last = time.monotonic()
            self.journal.save(dict(record) if record else None)


def _resume(path: Path, size: int, api: UploadApi, book: _Book,
            result: UploadResult) -> tuple[dict, list[int]] | None:
    """The partial volume to continue and the chunks it misses; None to start a new volume. Orphans (a
    volume of an older version of the file, one that cannot be continued, extra partial volumes of
    this file the API lists) are deleted first."""
    rec = book.load()
    found: dict | None = None
    if rec and book.matches(rec):
        found = rec
    elif rec and rec.get("image_uuid"):
        _drop(api, rec, result, "文件已变化 / the file changed since")
    for item in _partials(api, path.name):
        vol = {**item, "image_uuid": item.get("image_uuid") or item.get("uuid"),
               "image_path": item.get("image_path") or item.get("path")}
        if found is not None and vol["image_uuid"] == found.get("image_uuid"):
            continue
        if found is None and item.get("size") == size and vol.get("chunk_size"):
            found = vol
            continue
        _drop(api, vol, result, "遗留的未完成上传卷 / a partial volume left behind")
    if found is None:
        return None
    volume = {k: found.get(k) for k in VOLUME_KEYS}
    todo, probed = _missing(api, volume), []
    if todo is None:                      # the API shows no partial volume: ask by sending the next chunk
        last = max(1, -(-size // int(volume.get("chunk_size") or size or 1))) - 1
        probed = [min(max(int(found.get("next_chunk") or 0), 0), last)]
        todo = _probe(path, size, api, volume, probed[0], result)
    if todo is None:
        _drop(api, volume, result, "无法续传 / it cannot be continued")
        book.finish()
        return None
    book.start(volume, todo[0] if todo else 0)
    result.resumed_at = _on_server(size, int(volume["chunk_size"]), sorted(set(todo) | set(probed)))
    pct = f"{100 * result.resumed_at / max(size, 1):.0f}%"
    result.notes.append(f"续传上传卷 {volume['image_uuid']}：已有 {pct}，还差 {len(todo)} 个分块 / resumed upload "
                        f"volume {volume['image_uuid']} at {pct}: {len(todo)} chunks to go")
    return volume, todo


def _on_server(size: int, chunk_size: int, todo: list[int]) -> int:
    """Bytes the server has when it misses the chunks ``todo``."""
    return size - sum(min(chunk_size, size - n * chunk_size) for n in todo)


def _partials(api: UploadApi, name: str) -> list[dict]:
    fn = getattr(api, "partials", None)
    try:
        return [i for i in (fn(name) if fn else []) if i.get("name") == name and is_partial(i)]
    except Exception:  # noqa: BLE001 - a listing that fails only means nothing to resume from it
        return []


def _missing(api: UploadApi, volume: dict) -> list[int] | None:
    """The chunks the server still misses, from its view of the volume; None when it shows none."""
    fn = getattr(api, "status", None)
    try:
        state = fn(volume) if fn else None
    except Exception:  # noqa: BLE001 - no view of the volume: the caller probes instead
        return None
    if not isinstance(state, dict):
        return None
    if state.get("chunk_size"):
        volume["chunk_size"] = int(state["chunk_size"])
    todo = state.get("to_upload")
    if isinstance(todo, list):
        return [int(n) for n in todo]
    return [] if state.get("status") == "ready" or state.get("resource_state") == "in-use" else None


def _probe(path: Path, size: int, api: UploadApi, volume: dict, first: int,
           result: UploadResult) -> list[int] | None:
    """Send the first chunk not known to be received (re-sending a received chunk is harmless); the answer
    lists what is still missing. None when the volume takes no chunk or the answer lists nothing."""
    if not volume.get("chunk_size") or not volume.get("zbs_volume_id"):
        return None
    try:
        todo = _send_one(path, size, api, volume, first, int(volume["chunk_size"]), result)
    except _ChunkFailed as failed:
        result.notes.append(f"未完成的上传卷 {volume.get('image_uuid')} 不接受分块：{failed.cause} / the partial "
                            f"volume refused a chunk: {failed.cause}")
        return None
    result.chunks_sent += 1
    return todo


def _drop(api: UploadApi, volume: dict, result: UploadResult, why: str) -> None:
    """Delete an orphaned partial volume (a failed delete is noted; the upload goes on)."""
    try:
        api.delete(volume)
    except Exception as exc:  # noqa: BLE001
        result.notes.append(f"删除上传卷 {volume.get('image_uuid')} 失败 / deleting it failed: {exc}")
        return
    result.orphans_deleted.append(str(volume.get("image_uuid")))
    result.notes.append(f"已删除上传卷 {volume.get('image_uuid')}（{why}）/ deleted upload volume "
                        f"{volume.get('image_uuid')} ({why.split(' / ')[-1]})")


class _ChunkFailed(Exception):
    def __init__(self, chunk_num: int, exc: Exception):
        super().__init__(str(exc))
        self.chunk_num, self.exc = chunk_num, exc
        self.cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _send_all(path: Path, size: int, api: UploadApi, volume: dict, result: UploadResult, progress: _Progress,
              remaining: list[int] | None = None, book: _Book | None = None) -> None:
    """Send exactly what the server lists in to_upload (``remaining``: a resumed volume's), first listed
    first, until it lists none."""
    chunk_size = int(volume["chunk_size"])
    expected = max(1, -(-size // chunk_size))
    remaining = list(volume.get("to_upload", range(expected)) if remaining is None else remaining)
    progress.begin(_on_server(size, chunk_size, remaining))
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
        if book is not None:
            book.advance(remaining[0] if remaining else expected)
        progress.tick(_on_server(size, chunk_size, remaining))


def _send_one(path: Path, size: int, api: UploadApi, volume: dict, num: int, chunk_size: int,
              result: UploadResult) -> list[int] | None:
    """Send one chunk (with the guide's retries). Returns the server's new to_upload list when it gave one.
    Before each re-send the server's view of the upload (``to_upload``) is read; a chunk it already has is
    never sent again (where it shows no view, the chunk is re-sent: servers accept that before completion)."""
    offset = num * chunk_size
    length = min(chunk_size, size - offset)
    last: Exception | None = None
    for attempt in range(CHUNK_RETRIES + 1):
        if attempt:
            # field notes: a (last) chunk's answer can time out while the server still takes the chunk, and the
            # server refuses a chunk it already has once the upload is complete: ask before sending it again
            todo = _missing(api, volume)
            if todo is not None and num not in todo:
                result.notes.append(f"分块 {num} 的应答丢失，但服务端已收到，不重发 / chunk {num}: its answer was lost "
                                    f"but the server has it; not sent again")
                return todo
            result.chunk_retries += 1
        chunk = FileSlice(path, offset, length)
        try:
            data = api.send(volume, num, chunk) or {}
            todo = data.get("to_upload") if isinstance(data, dict) else None
            return list(todo) if todo is not None else None
        except TlsError:  # a changed certificate is not a flaky chunk
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of this chunk counts against its retries
            last = exc
        finally:
            chunk.close()
    raise _ChunkFailed(num, last)
