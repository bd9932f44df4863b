"""The FIO test-VM image (stage 09): found in ``--packages``, read locally, checked before any upload.

    find_image(packages_dir, work_dir) -> TestImage | None   # *fio*.ovf (disks beside it) or *fio*.ova (unpacked)
    read_ovf(path) -> TestImage                              # disks, capacities, name, cpu, memory, NICs
    check_image(image)                                       # files present, sizes, .mf digests
    stand_in(folder) -> TestImage                            # --simulate only: a small valid OVF + vmdk

CloudTower has no OVA call (facts §3: ``parse-ovf`` takes the ``.ovf`` XML, each disk goes up by ``upload-elf-file``),
so an ``.ova`` (a plain tar) is unpacked here, streamed member by member into the caller's work dir; a member whose
path is unsafe (absolute, ``..``, a link or device) is skipped and noted. Whatever is wrong with an image fails with
:class:`ImageError`: one line naming the file and the fix.
"""
from __future__ import annotations

import hashlib
import random
import re
import shutil
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

STAND_IN_NAME = "smtx-fio-worker-1.0"
STAND_IN_OVF = f"{STAND_IN_NAME}.ovf"
STAND_IN_DISK = f"{STAND_IN_NAME}-disk1.vmdk"
STAND_IN_DISK_SIZE = 6 * 1024 * 1024 + 4321          # design §1: the stand-in file's bytes
STAND_IN_CAPACITY = 20 * 2**30                       # design §1: the OVF capacity of its system disk
STAND_IN_CPU, STAND_IN_MEMORY_MIB = 4, 4096
# The FIO worker image's guest account (design §1): the --test-vm-password default under --simulate only
STAND_IN_USER, STAND_IN_PASSWORD = "root", "Fio@Worker1"

BLOCK = 1024 * 1024                                  # streamed reads (hashing, unpacking): memory stays flat
FIX = "下一步 / next: 放入完整的 FIO 测试虚拟机镜像（.ova，或 .ovf 与其磁盘文件）到 --packages / put the whole FIO test-VM image " \
      "(.ova, or the .ovf with its disk files) in --packages"


class ImageError(AssertionError):
    """A bad image: one line naming the file and the fix."""


class ImageDisk(NamedTuple):
    path: Path               # the disk file beside the .ovf
    size: int | None         # References/File ovf:size (None: the OVF does not say)
    capacity: int | None     # DiskSection/Disk ovf:capacity in bytes
    href: str                # the file name the OVF references (= the upload task's name)


@dataclass
class TestImage:
    __test__ = False         # not a pytest test class

    name: str
    ovf: Path
    disks: list[ImageDisk]
    cpu: int | None
    memory: int | None       # bytes
    nics: int = 0
    source: str = "found"    # "found" | "unpacked from <x.ova>" | "simulated stand-in"
    files: list[str] = field(default_factory=list)     # every References/File href
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes to upload (the disk files)."""
        return sum(d.path.stat().st_size for d in self.disks if d.path.exists())


# --- reading an OVF ------------------------------------------------------------------------------------------

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(el: ET.Element, name: str) -> str | None:
    """An attribute by local name whatever its namespace (``ovf:href`` in OVF 1.x and 2.x alike)."""
    for key, value in el.attrib.items():
        if _local(key) == name:
            return value
    return None


def _children(el: ET.Element | None, name: str) -> list[ET.Element]:
    return [c for c in (el if el is not None else []) if _local(c.tag) == name]


def _text(el: ET.Element, name: str) -> str | None:
    found = _children(el, name)
    return (found[0].text or "").strip() if found else None


_UNIT_WORDS = {"byte": 0, "bytes": 0, "kb": 10, "kilobytes": 10, "kib": 10, "mb": 20, "megabytes": 20, "mib": 20,
               "gb": 30, "gigabytes": 30, "gib": 30, "tb": 40, "terabytes": 40, "tib": 40}


def units(text: str | None, default: int = 0) -> int | None:
    """The multiplier of a DMTF allocation unit: ``byte * 2^30`` → 2**30 (also ``byte*2^20``, ``MB``, ``KB``...);
    None when it cannot be read."""
    if not text:
        return 2**default
    t = text.strip().lower().replace(" ", "")
    m = re.fullmatch(r"byte(?:s)?(?:\*(\d+)\^(-?\d+))?", t)
    if m:
        return int(m.group(1)) ** int(m.group(2)) if m.group(1) else 1
    return 2 ** _UNIT_WORDS[t] if t in _UNIT_WORDS else None


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None


def _safe_name(href: str) -> bool:
    """A plain file name beside the .ovf (no directories, no URL, nothing to climb out with)."""
    return bool(href) and "/" not in href and "\\" not in href and href not in (".", "..") and ":" not in href


def read_ovf(path: Path, source: str = "found") -> TestImage:
    """Parse an OVF 1.x/2.x descriptor: its disk files (References/File ``href`` + ``size``, DiskSection/Disk
    ``capacity`` × ``capacityAllocationUnits``), the VirtualSystem's name, CPU count (ResourceType 3), memory
    (ResourceType 4, ``AllocationUnits``, default MiB) and NIC count (ResourceType 10). No file is checked here
    (see :func:`check_image`)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ImageError(f"{path} 不是可读的 OVF 描述文件（{exc}）/ {path} is not a readable OVF descriptor ({exc}); "
                         f"{FIX}") from None
    if _local(root.tag) != "Envelope" or "dmtf.org/ovf/envelope" not in root.tag:
        raise ImageError(f"{path} 不是 OVF Envelope / {path} is not an OVF Envelope; {FIX}")
    files: dict[str, tuple[str, int | None]] = {}
    for f in _children(_children(root, "References")[0] if _children(root, "References") else None, "File"):
        href = _attr(f, "href") or ""
        if not _safe_name(href):
            raise ImageError(f"{path} 引用了不安全或非本地的文件 {href!r} / {path} references the unsafe or non-local "
                             f"file {href!r}; 下一步 / next: 使用磁盘文件与 .ovf 同目录的镜像 / use an image whose disks sit "
                             f"beside the .ovf")
        files[_attr(f, "id") or href] = (href, _int(_attr(f, "size")))
    disks: list[ImageDisk] = []
    for section in _children(root, "DiskSection"):
        for d in _children(section, "Disk"):
            ref = _attr(d, "fileRef")
            if not ref:
                continue                     # a blank disk: nothing to upload
            if ref not in files:
                raise ImageError(f"{path} 的磁盘 {_attr(d, 'diskId')} 引用了不存在的文件 ID {ref} / {path}: disk "
                                 f"{_attr(d, 'diskId')} references the unknown file id {ref}; {FIX}")
            cap, mult = _int(_attr(d, "capacity")), units(_attr(d, "capacityAllocationUnits"))
            href, size = files[ref]
            disks.append(ImageDisk(path.parent / href, size, cap * mult if cap is not None and mult else None, href))
    systems = [e for e in root.iter() if _local(e.tag) == "VirtualSystem"]
    system = systems[0] if systems else root
    name = _text(system, "Name") or _attr(system, "id") or path.stem
    cpu = memory = None
    nics = 0
    for hw in [e for e in system.iter() if _local(e.tag) == "VirtualHardwareSection"][:1]:
        for item in hw:
            kind = _text(item, "ResourceType")
            qty = _int(_text(item, "VirtualQuantity"))
            if kind == "3" and qty:
                cpu = qty
            elif kind == "4" and qty:
                mult = units(_text(item, "AllocationUnits"), default=20)
                memory = qty * mult if mult else None
            elif kind == "10":
                nics += 1
    return TestImage(name=name, ovf=path, disks=disks, cpu=cpu, memory=memory, nics=nics, source=source,
                     files=[h for h, _ in files.values()])


# --- checking it ---------------------------------------------------------------------------------------------

_MF_LINE = re.compile(r"^\s*(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$")


def manifest(path: Path) -> dict[str, tuple[str, str]]:
    """A ``.mf``'s entries: file name → (algorithm, hex digest)."""
    out: dict[str, tuple[str, str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _MF_LINE.match(line)
        if not m:
            raise ImageError(f"{path} 第 {n} 行不是 SHA1/SHA256(文件)= 摘要 / {path} line {n} is not SHA1/SHA256(file)= "
                             f"digest; {FIX}")
        out[m.group(2).strip()] = (m.group(1).lower(), m.group(3).lower())
    return out


def file_digest(path: Path, algorithm: str) -> str:
    """Streamed digest (1 MiB reads)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def check_image(image: TestImage) -> None:
    """Every referenced file is beside the .ovf with the size the OVF gives; where a ``.mf`` exists (same stem),
    every file it lists matches its digest. The OVF must reference at least one disk file."""
    if not image.disks:
        raise ImageError(f"{image.ovf} 没有引用任何磁盘文件 / {image.ovf} references no disk file; {FIX}")
    for disk in image.disks:
        if not disk.path.is_file():
            raise ImageError(f"缺少磁盘文件 {disk.path}（{image.ovf.name} 引用）/ the disk file {disk.path} is missing "
                             f"(referenced by {image.ovf.name}); {FIX}")
        actual = disk.path.stat().st_size
        if disk.size is not None and actual != disk.size:
            raise ImageError(f"磁盘文件 {disk.path} 为 {actual} 字节，{image.ovf.name} 写明 {disk.size} 字节（文件不完整或"
                             f"已损坏）/ the disk file {disk.path} has {actual} bytes, {image.ovf.name} says {disk.size} "
                             f"(incomplete or damaged); {FIX}")
    for href in image.files:
        if not (image.ovf.parent / href).is_file():
            raise ImageError(f"缺少文件 {image.ovf.parent / href}（{image.ovf.name} 引用）/ the file "
                             f"{image.ovf.parent / href} is missing (referenced by {image.ovf.name}); {FIX}")
    mf = image.ovf.with_suffix(".mf")
    if not mf.is_file():
        return
    for name, (algorithm, digest) in manifest(mf).items():
        target = mf.parent / name
        if not _safe_name(name) or not target.is_file():
            raise ImageError(f"{mf} 列出的文件 {name} 不存在 / {mf} lists {name}, which is missing; {FIX}")
        actual = file_digest(target, algorithm)
        if actual != digest:
            raise ImageError(f"{target} 的 {algorithm.upper()} 摘要与 {mf.name} 不符（文件已损坏或被修改）/ {target}'s "
                             f"{algorithm.upper()} digest does not match {mf.name} (damaged or changed); {FIX}")
    image.notes.append(f"{mf.name}：摘要一致 / digests match")


# --- finding it ----------------------------------------------------------------------------------------------

def _candidates(folder: Path, suffix: str) -> list[Path]:
    """``*fio*<suffix>`` (case-insensitive) in ``folder`` and its direct subfolders, by name."""
    if not folder.is_dir():
        return []
    places = [folder] + sorted(p for p in folder.iterdir() if p.is_dir())
    return sorted((f for d in places for f in d.iterdir()
                   if f.is_file() and "fio" in f.name.lower() and f.name.lower().endswith(suffix)),
                  key=lambda p: (p.name.lower(), str(p)))


def find_image(packages_dir: Path, work_dir: Path) -> TestImage | None:
    """The FIO test-VM image in ``packages_dir``: a ``*fio*.ovf`` with its disks beside it, else a ``*fio*.ova``
    unpacked (streamed) into ``work_dir``; checked (:func:`check_image`). The last by name when several (the highest
    version, as names go). None when there is none; a bad one raises :class:`ImageError`."""
    packages_dir = Path(packages_dir)
    ovfs = _candidates(packages_dir, ".ovf")
    if ovfs:
        image = read_ovf(ovfs[-1])
        if len(ovfs) > 1:
            image.notes.append(f"找到 {len(ovfs)} 个镜像，使用 {ovfs[-1].name} / {len(ovfs)} images found; using "
                               f"{ovfs[-1].name}")
        check_image(image)
        return image
    ovas = _candidates(packages_dir, ".ova")
    if not ovas:
        return None
    return unpack_ova(ovas[-1], Path(work_dir))


def _safe_member(member: tarfile.TarInfo) -> bool:
    p = PurePosixPath(member.name)
    parts = [x for x in p.parts if x != "."]
    return (member.isfile() and not p.is_absolute() and len(parts) == 1 and _safe_name(parts[0])
            and not parts[0].startswith("."))


def unpack_ova(ova: Path, work_dir: Path) -> TestImage:
    """Unpack ``ova`` (a tar, read as a stream) into ``work_dir/<ova stem>/`` and read its .ovf. Members with an unsafe
    path or that are no regular file are skipped (noted); a member already unpacked with the same size is kept."""
    dest = work_dir / ova.stem
    dest.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    try:
        with tarfile.open(ova, "r|*") as tar:
            for member in tar:
                if not _safe_member(member):
                    notes.append(f"跳过不安全的成员 {member.name!r} / skipped the unsafe member {member.name!r}")
                    continue
                target = dest / PurePosixPath(member.name).name
                if target.is_file() and target.stat().st_size == member.size:
                    continue
                src = tar.extractfile(member)
                tmp = target.with_name(target.name + ".part")
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, BLOCK)
                tmp.replace(target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageError(f"{ova} 不是完整的 OVA（tar）文件（{exc}）/ {ova} is not a whole OVA (tar) file ({exc}); "
                         f"{FIX}") from None
    ovfs = sorted(dest.glob("*.ovf"))
    if len(ovfs) != 1:
        raise ImageError(f"{ova} 中应有且只有一个 .ovf，实际 {len(ovfs)} 个 / {ova} should hold exactly one .ovf, it "
                         f"holds {len(ovfs)}; {FIX}")
    image = read_ovf(ovfs[0], source=f"unpacked from {ova.name}")
    image.notes[:0] = notes
    check_image(image)
    return image


# --- the simulated stand-in --------------------------------------------------------------------------------------

_OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ovf:version="1.0">
  <References>
    <File ovf:id="file1" ovf:href="{disk}" ovf:size="{size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="{capacity_gib}"
      ovf:capacityAllocationUnits="byte * 2^30"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network"><Description>The VM network</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A simulated FIO worker (stand-in written by the suite under --simulate)</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="101"><Info>The guest OS</Info><Description>Linux</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:Description>Number of virtual CPUs
        </rasd:Description><rasd:ElementName>{cpu} virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1
        </rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>{cpu}</rasd:VirtualQuantity>
      </Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{memory} MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>{memory}</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>VirtIO controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>virtio</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>VirtIO</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def stand_in(folder: Path) -> TestImage:
    """**--simulate only.** Writes (files already whole are left as they are) the stand-in of design §1 into ``folder``:
    ``smtx-fio-worker-1.0.ovf`` (a valid OVF 1.0 envelope: 4 vCPU, 4096 MiB, one NIC, one 20 GiB system disk) and
    ``smtx-fio-worker-1.0-disk1.vmdk`` (6 MiB + 4321 bytes of seeded pseudo-random bytes: deterministic, incompressible)
    plus a SHA256 ``.mf``. Not a bootable disk: a real run must use the real image from ``--packages``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    disk, ovf = folder / STAND_IN_DISK, folder / STAND_IN_OVF
    payload = random.Random(STAND_IN_NAME).randbytes(STAND_IN_DISK_SIZE)
    _write_if_changed(disk, payload)   # unchanged files keep their mtime: a journalled upload of them can resume
    _write_if_changed(ovf, _OVF.format(disk=STAND_IN_DISK, size=STAND_IN_DISK_SIZE,
                                       capacity_gib=STAND_IN_CAPACITY // 2**30, name=STAND_IN_NAME, cpu=STAND_IN_CPU,
                                       memory=STAND_IN_MEMORY_MIB).encode())
    _write_if_changed(ovf.with_suffix(".mf"), "".join(f"SHA256({p.name})= {file_digest(p, 'sha256')}\n"
                                                      for p in (ovf, disk)).encode())
    image = read_ovf(ovf, source="simulated stand-in")
    check_image(image)
    return image


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
