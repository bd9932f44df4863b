"""clients/testvm_image.py: the stand-in through read_ovf, an OVA unpacked (unsafe members skipped), OVF 2.x, and the
bad images (a missing disk, a size mismatch, a manifest digest mismatch), each one clear line naming the file."""
from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from clients import testvm_image as T


def test_stand_in_round_trip(tmp_path):
    image = T.stand_in(tmp_path / "img")
    assert image.source == "simulated stand-in" and image.name == "smtx-fio-worker-1.0"
    assert image.ovf.name == "smtx-fio-worker-1.0.ovf"
    (d,) = image.disks
    assert d.href == "smtx-fio-worker-1.0-disk1.vmdk" and d.path.stat().st_size == 6 * 1024 * 1024 + 4321
    assert d.size == 6 * 1024 * 1024 + 4321 and d.capacity == 20 * 2**30
    assert (image.cpu, image.memory, image.nics) == (4, 4096 * 2**20, 1)
    again = T.read_ovf(image.ovf)
    assert again.disks == image.disks and again.source == "found"
    first = d.path.read_bytes()
    T.stand_in(tmp_path / "other")
    assert (tmp_path / "other" / d.href).read_bytes() == first          # deterministic
    assert T.find_image(tmp_path / "img", tmp_path / "work").ovf == image.ovf
    mtime = d.path.stat().st_mtime_ns
    data = bytearray(first)
    data[7] ^= 1
    d.path.write_bytes(bytes(data))
    T.stand_in(tmp_path / "img")                                         # a damaged stand-in is written again
    assert d.path.read_bytes() == first and d.path.stat().st_mtime_ns != mtime
    mtime = d.path.stat().st_mtime_ns
    T.stand_in(tmp_path / "img")
    assert d.path.stat().st_mtime_ns == mtime                            # a whole one is left alone


def _ova(path, members: dict[str, bytes], extra=()):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return path


def test_ova_is_unpacked_and_unsafe_members_skipped(tmp_path):
    src = T.stand_in(tmp_path / "src")
    members = {p.name: p.read_bytes() for p in sorted((tmp_path / "src").iterdir())}
    members["../evil.txt"] = b"x"
    members["/etc/evil"] = b"x"
    link = tarfile.TarInfo("link.vmdk")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    pkgs = tmp_path / "packages"
    pkgs.mkdir()
    _ova(pkgs / "SMTX-FIO-worker-1.0.ova", members, [link])
    image = T.find_image(pkgs, tmp_path / "work")
    assert image.source == "unpacked from SMTX-FIO-worker-1.0.ova"
    assert image.ovf.parent == tmp_path / "work" / "SMTX-FIO-worker-1.0"
    assert image.disks[0].path.read_bytes() == src.disks[0].path.read_bytes()
    assert sum("unsafe" in n for n in image.notes) == 3
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "work" / "link.vmdk").exists()
    assert sorted(p.name for p in image.ovf.parent.iterdir()) == sorted(p.name for p in (tmp_path / "src").iterdir())


def test_no_image_is_none(tmp_path):
    (tmp_path / "other.ovf").write_text("<x/>")
    assert T.find_image(tmp_path, tmp_path / "work") is None
    assert T.find_image(tmp_path / "absent", tmp_path / "work") is None


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "next" in text
    return text


def test_missing_disk(tmp_path):
    image = T.stand_in(tmp_path)
    image.disks[0].path.unlink()
    with pytest.raises(T.ImageError) as err:
        T.find_image(tmp_path, tmp_path / "work")
    assert str(image.disks[0].path) in _one_line(err) and "missing" in str(err.value)


def test_size_mismatch(tmp_path):
    image = T.stand_in(tmp_path)
    with open(image.disks[0].path, "ab") as fh:
        fh.write(b"!")
    (tmp_path / "smtx-fio-worker-1.0.mf").unlink()
    with pytest.raises(T.ImageError) as err:
        T.find_image(tmp_path, tmp_path / "work")
    assert str(image.disks[0].path) in _one_line(err) and "6295778" in str(err.value)


def test_manifest_digest_mismatch(tmp_path):
    image = T.stand_in(tmp_path)
    data = bytearray(image.disks[0].path.read_bytes())
    data[100] ^= 0xFF                                                  # same size, other bytes
    image.disks[0].path.write_bytes(bytes(data))
    with pytest.raises(T.ImageError) as err:
        T.find_image(tmp_path, tmp_path / "work")
    assert "SHA256" in _one_line(err) and str(image.disks[0].path) in str(err.value)


def test_sha1_manifest_and_ovf2(tmp_path):
    disk = tmp_path / "w-fio-disk1.vmdk"
    disk.write_bytes(b"d" * 1000)
    ovf = tmp_path / "w-fio.ovf"
    ovf.write_text("""<?xml version="1.0"?>
<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <ovf:References><ovf:File ovf:id="f1" ovf:href="w-fio-disk1.vmdk" ovf:size="1000"/></ovf:References>
  <ovf:DiskSection><ovf:Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="40960"
    ovf:capacityAllocationUnits="byte * 2^20"/><ovf:Disk ovf:diskId="d2" ovf:capacity="1"/></ovf:DiskSection>
  <ovf:VirtualSystem ovf:id="w"><ovf:Name>fio worker</ovf:Name><ovf:VirtualHardwareSection>
    <ovf:Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></ovf:Item>
    <ovf:Item><rasd:AllocationUnits>byte * 2^30</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType>
      <rasd:VirtualQuantity>8</rasd:VirtualQuantity></ovf:Item>
    <ovf:Item><rasd:ResourceType>10</rasd:ResourceType></ovf:Item>
    <ovf:Item><rasd:ResourceType>10</rasd:ResourceType></ovf:Item>
  </ovf:VirtualHardwareSection></ovf:VirtualSystem>
</ovf:Envelope>""")
    (tmp_path / "w-fio.mf").write_text(f"SHA1(w-fio-disk1.vmdk)= {hashlib.sha1(disk.read_bytes()).hexdigest()}\n")
    image = T.find_image(tmp_path, tmp_path / "work")
    assert (image.name, image.cpu, image.memory, image.nics) == ("fio worker", 2, 8 * 2**30, 2)
    assert image.disks == [T.ImageDisk(disk, 1000, 40 * 2**30, "w-fio-disk1.vmdk")]
    assert any("digests match" in n for n in image.notes)


@pytest.mark.parametrize("text,why", [("<not xml", "not a readable OVF"), ("<Envelope/>", "not an OVF Envelope")])
def test_not_an_ovf(tmp_path, text, why):
    (tmp_path / "x-fio.ovf").write_text(text)
    with pytest.raises(T.ImageError) as err:
        T.find_image(tmp_path, tmp_path / "work")
    assert why in _one_line(err) and "x-fio.ovf" in str(err.value)


def test_unsafe_href(tmp_path):
    image = T.stand_in(tmp_path)
    image.ovf.write_text(image.ovf.read_text().replace('ovf:href="smtx', 'ovf:href="../smtx'))
    with pytest.raises(T.ImageError) as err:
        T.read_ovf(image.ovf)
    assert "unsafe" in _one_line(err)


def test_units():
    assert T.units("byte * 2^30") == 2**30 and T.units("byte*2^20") == 2**20 and T.units("byte") == 1
    assert T.units("MB") == 2**20 and T.units(None, default=20) == 2**20 and T.units("furlongs") is None
