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
