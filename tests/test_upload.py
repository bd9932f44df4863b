"""The chunked uploader against a fake server that behaves like the guide's upload API."""
from __future__ import annotations

import pytest

from clients.upload import CHUNK_RETRIES, FileSlice, UploadError, upload_file


class FakeUploadServer:
    def __init__(self, chunk_size: int, fail: dict[int, int] | None = None, answer_lists: bool = True):
        self.chunk_size, self.fail, self.answer_lists = chunk_size, dict(fail or {}), answer_lists
        self.volumes: list[dict] = []
        self.received: dict[str, dict[int, bytes]] = {}
        self.deleted: list[str] = []

    def create(self, name, size):
        n = -(-size // self.chunk_size)
        vol = {"chunk_size": self.chunk_size, "zbs_volume_id": f"v{len(self.volumes)}", "image_uuid": "img",
               "to_upload": list(range(n)), "size": size}
        self.volumes.append(vol)
        self.received[vol["zbs_volume_id"]] = {}
        return vol

    def send(self, vol, num, chunk: FileSlice):
        data = chunk.read()
        if self.fail.get(num, 0) > 0:
            self.fail[num] -= 1
            raise ConnectionError(f"chunk {num} dropped")
        expected = min(self.chunk_size, vol["size"] - num * self.chunk_size)
        assert len(data) == expected
        self.received[vol["zbs_volume_id"]][num] = data
        n = -(-vol["size"] // self.chunk_size)
        todo = [i for i in range(n) if i not in self.received[vol["zbs_volume_id"]]]
        return {"to_upload": todo} if self.answer_lists else {}

    def delete(self, vol):
        self.deleted.append(vol["zbs_volume_id"])


@pytest.fixture
def iso(tmp_path):
    path = tmp_path / "SMTX_VMTOOLS-3.2.0-1.iso"
    path.write_bytes(bytes(range(256)) * 41)  # 10,496 bytes: 10 full chunks of 1,000 and a remainder
    return path


def _reassembled(server, vol_id):
    got = server.received[vol_id]
    return b"".join(got[i] for i in sorted(got))


def test_uploads_exactly_the_listed_chunks(iso):
    server = FakeUploadServer(1000)
    lines = []
    result = upload_file(iso, server, echo=lines.append, progress_every=0)
    assert _reassembled(server, "v0") == iso.read_bytes()
    assert result.chunks_sent == 11 and result.chunk_retries == 0 and result.recreated == 0
    assert lines and "%" in lines[-1] and "MB/s" in lines[-1] and "ETA" in lines[-1]


def test_a_chunk_that_fails_once_is_retried(iso):
    server = FakeUploadServer(1000, fail={3: 1})
    result = upload_file(iso, server)
    assert result.chunk_retries == 1 and result.recreated == 0 and server.deleted == []
    assert _reassembled(server, "v0") == iso.read_bytes()


def test_a_chunk_that_fails_three_times_recreates_the_volume_once(iso):
    server = FakeUploadServer(1000, fail={5: CHUNK_RETRIES + 1})
    result = upload_file(iso, server)
    assert result.recreated == 1 and server.deleted == ["v0"]
    assert _reassembled(server, "v1") == iso.read_bytes()
    assert any("chunk 5" in n for n in result.notes)


def test_persistent_failure_fails_clearly_after_one_recreate(iso):
    server = FakeUploadServer(1000, fail={2: 100})
    with pytest.raises(UploadError, match="recreated once"):
        upload_file(iso, server)
    assert server.deleted == ["v0", "v1"] and len(server.volumes) == 2


def test_server_without_lists_gets_every_chunk_once(iso):
    server = FakeUploadServer(1000, answer_lists=False)
    upload_file(iso, server)
    assert _reassembled(server, "v0") == iso.read_bytes()


def test_file_slice_streams_a_window(iso):
    s = FileSlice(iso, 1000, 500)
    assert s.seek(0, 2) == 500 and s.tell() == 500
    s.seek(0)
    assert s.read(10) == iso.read_bytes()[1000:1010] and len(s.read()) == 490
    s.close()


# --- resume (issue 10 item 3) -----------------------------------------------------------------------------

class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so no retry or cleanup of the uploader catches it."""


class KillAfter:
    """An upload API that dies after ``n`` chunks were accepted."""

    def __init__(self, api, n: int):
        self.api, self.n = api, n

    def __getattr__(self, name):
        return getattr(self.api, name)

    def send(self, vol, num, chunk):
        if self.n <= 0:
            raise Killed()
        self.n -= 1
        return self.api.send(vol, num, chunk)


class MemoryJournal:
    def __init__(self):
        self.record, self.saves = None, 0

    def load(self):
        return dict(self.record) if self.record else None

    def save(self, record):
        self.record, self.saves = (dict(record) if record else None), self.saves + 1


class ResumableServer(FakeUploadServer):
    """The fake server with a view of each volume (``status``) and, optionally, a listing of partial ones."""

    def __init__(self, *a, status: bool = True, listing: bool = False, **kw):
        super().__init__(*a, **kw)
        self.status_ok, self.listing = status, listing
        self.sent: list[tuple[str, int]] = []

    def create(self, name, size):
        vol = super().create(name, size)
        vol.update(image_uuid=f"img{len(self.volumes)}", name=name)
        return vol

    def send(self, vol, num, chunk):
        if vol["zbs_volume_id"] in self.deleted:
            raise ConnectionError("volume deleted")
        self.sent.append((vol["zbs_volume_id"], num))
        return super().send(self._vol(vol), num, chunk)

    def _vol(self, vol):
        return next(v for v in self.volumes if v["zbs_volume_id"] == vol["zbs_volume_id"])

    def _todo(self, vol):
        n = -(-vol["size"] // self.chunk_size)
        return [i for i in range(n) if i not in self.received[vol["zbs_volume_id"]]]

    def status(self, vol):
        if not self.status_ok or vol["zbs_volume_id"] in self.deleted:
            return None
        v = self._vol(vol)
        return {"uuid": v["image_uuid"], "chunk_size": self.chunk_size, "to_upload": self._todo(v),
                "status": "ready" if not self._todo(v) else "uploading"}

    def partials(self, name):
        if not self.listing:
            return []
        return [{"uuid": v["image_uuid"], "name": v["name"], "size": v["size"], "zbs_volume_id": v["zbs_volume_id"],
                 "chunk_size": self.chunk_size, "resource_state": "uploading", "to_upload": self._todo(v)}
                for v in self.volumes if v["zbs_volume_id"] not in self.deleted and self._todo(v)]


@pytest.mark.parametrize("status", [True, False], ids=["server-view", "probe"])
def test_a_killed_upload_resumes_at_the_chunk_it_stopped_with_the_same_volume(iso, status):
    server, journal = ResumableServer(1000, status=status), MemoryJournal()
    with pytest.raises(Killed):
        upload_file(iso, KillAfter(server, 7), journal=journal, record_every=0)
    assert journal.record["image_uuid"] == "img1" and journal.record["next_chunk"] == 7
    before = len(server.sent)
    result = upload_file(iso, server, journal=journal, record_every=0)
    assert len(server.volumes) == 1 and server.deleted == []
    assert [n for _, n in server.sent[before:]] == [7, 8, 9, 10]      # nothing below 7 sent again
    assert _reassembled(server, "v0") == iso.read_bytes()
    assert result.resumed_at == 7000 and result.volume["image_uuid"] == "img1" and journal.record is None


def test_a_volume_that_cannot_be_continued_is_deleted_before_starting_over(iso):
    """No view of the volume and chunk answers list nothing: the orphan is deleted, then a new volume."""
    server, journal = ResumableServer(1000, status=False, answer_lists=False), MemoryJournal()
    with pytest.raises(Killed):
        upload_file(iso, KillAfter(server, 4), journal=journal, record_every=0)
    result = upload_file(iso, server, journal=journal)
    assert server.deleted == ["v0"] and len(server.volumes) == 2 and result.orphans_deleted == ["img1"]
    assert _reassembled(server, "v1") == iso.read_bytes()
    assert any("deleted upload volume img1" in n for n in result.notes)


def test_a_partial_volume_of_an_older_file_is_deleted(iso):
    server, journal = ResumableServer(1000), MemoryJournal()
    with pytest.raises(Killed):
        upload_file(iso, KillAfter(server, 3), journal=journal)
    iso.write_bytes(iso.read_bytes()[::-1])               # same name and size, new content
    upload_file(iso, server, journal=journal)
    assert server.deleted == ["v0"] and _reassembled(server, "v1") == iso.read_bytes()


def test_the_listing_finds_an_unrecorded_partial_volume_and_extra_orphans_go(iso):
    server = ResumableServer(1000, listing=True)
    with pytest.raises(Killed):
        upload_file(iso, KillAfter(server, 2))             # no journal: only the listing knows it
    with pytest.raises(Killed):
        upload_file(iso, KillAfter(server, 0), journal=MemoryJournal())   # resumes v0; dies at once
    server.create(iso.name, 999)                             # an older file's partial volume: an orphan
    before = len(server.sent)
    result = upload_file(iso, server, journal=MemoryJournal())
    assert server.deleted == ["v1"] and len(server.volumes) == 2
    assert [n for _, n in server.sent[before:]] == list(range(2, 11)) and result.resumed_at == 2000


class Sink:
    """Reads each chunk as httpx does (64 KiB reads) without keeping it."""

    def __init__(self, chunk_size: int, skip_reading: bool = False):
        self.chunk_size, self.skip, self.sent, self.volumes = chunk_size, skip_reading, [], 0

    def create(self, name, size):
        self.volumes += 1
        self.size = size
        return {"chunk_size": self.chunk_size, "zbs_volume_id": "v", "image_uuid": "img",
                "to_upload": list(range(-(-size // self.chunk_size)))}

    def send(self, vol, num, chunk):
        if self.skip:
            assert chunk.seek(0, 2) == min(self.chunk_size, self.size - num * self.chunk_size)
        else:
            while chunk.read(65536):
                pass
        self.sent.append(num)
        self.have = set(getattr(self, "have", set())) | {num}
        return {"to_upload": [i for i in range(-(-self.size // self.chunk_size)) if i not in self.have]}

    def status(self, vol):
        return {"to_upload": [i for i in range(-(-self.size // self.chunk_size)) if i not in self.have]}

    def delete(self, vol):
        raise AssertionError("nothing to delete")


def test_an_8_gb_iso_interrupted_at_90_percent_resumes_at_90_percent(tmp_path):
    iso = tmp_path / "cloudtower-v4.6.2.oe2003.x86_64.iso"
    with open(iso, "wb") as fh:
        fh.truncate(7952123904)                               # the guide's ISO size, sparse
    server, journal = Sink(8 * 1024 * 1024, skip_reading=True), MemoryJournal()
    chunks = -(-7952123904 // server.chunk_size)
    at = int(chunks * 0.9)
    with pytest.raises(Killed):
        upload_file(iso, KillAfter(server, at), journal=journal, record_every=3600)
    result = upload_file(iso, server, journal=journal)
    assert server.volumes == 1 and server.sent[at:] == list(range(at, chunks))
    assert round(100 * result.resumed_at / result.size) == 90


@pytest.mark.parametrize("gib", [0.25, pytest.param(2, marks=pytest.mark.slow)])
def test_the_upload_stays_streamed(tmp_path, gib):
    """Python allocations while uploading a sparse file stay far below one 8 MiB chunk."""
    import tracemalloc

    iso = tmp_path / "big.iso"
    with open(iso, "wb") as fh:
        fh.truncate(int(gib * 1024 ** 3))
    server = Sink(8 * 1024 * 1024)
    tracemalloc.start()
    try:
        upload_file(iso, server)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(server.sent) == int(gib * 128) and peak < 2 * 1024 * 1024, peak
