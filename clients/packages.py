"""Component packages in ``--packages`` (stage 07): which file, which version, which architecture.

    pick(files, OBS) -> Package | None     # the highest version (then release date, then build)
    OBS.name(version="1.4.2", arch="X86_64") -> "Observability-X86_64-v1.4.2-release.20250926-1.tar.gz"

The file name patterns are the older tool's (facts 07a.1, 07b.1), case-insensitive:

* ``Observability-<ARCH>-v<ver>[-release.<date>[-<build>]].tar.gz``
* ``smtx-backup-dr-<arch>-<ver>.tar.gz``

``stand_in`` writes a small but real ``.tar.gz`` under such a name (a manifest and an incompressible, seeded
payload), for simulated runs without ``--packages``: a simulator that checks the gzip stream sees a whole package.
"""
from __future__ import annotations

import io
import random
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

ARCHES = {"x86_64": "X86_64", "aarch64": "AARCH64"}


@dataclass(frozen=True)
class Kind:
    key: str                 # obs | backup
    label: str
    glob: str                # what a user sees in the error
    pattern: re.Pattern
    template: str            # str.format(version=, arch=, arch_lower=, date=, build=)

    def name(self, version: str, arch: str = "X86_64", date: str = "20250926", build: int = 1) -> str:
        return self.template.format(version=version, arch=arch.upper(), arch_lower=arch.lower(), date=date,
                                    build=build)


OBS = Kind("obs", "Observability (OBS)", "Observability-<ARCH>-v<版本 version>[-release.<日期 date>[-<build>]].tar.gz",
           re.compile(r"^Observability-(?P<arch>X86_64|AARCH64)-v(?P<version>\d+(?:\.\d+)*)"
                      r"(?:-release\.(?P<date>\d+)(?:-(?P<build>\d+))?)?\.tar\.gz$", re.IGNORECASE),
           "Observability-{arch}-v{version}-release.{date}-{build}.tar.gz")
BACKUP = Kind("backup", "备份 / backup", "smtx-backup-dr-<arch>-<版本 version>.tar.gz",
              re.compile(r"^smtx-backup-dr-(?P<arch>x86_64|aarch64)-(?P<version>\d+(?:\.\d+)*)\.tar\.gz$",
                         re.IGNORECASE),
              "smtx-backup-dr-{arch_lower}-{version}.tar.gz")


@dataclass(frozen=True)
class Package:
    path: Path
    kind: str
    arch: str                # X86_64 | AARCH64
    version: str             # 1.4.2
    date: str | None = None
    build: int | None = None

    @property
    def key(self) -> tuple:
        return (tuple(int(p) for p in self.version.split(".")), int(self.date or 0), self.build or 0)

    @property
    def release(self) -> str:
        """OBS's version as CloudTower records it: ``v1.4.2-release.20250926`` (no build suffix)."""
        return f"v{self.version}" + (f"-release.{self.date}" if self.date else "")


def parse(path: Path, kind: Kind) -> Package | None:
    m = kind.pattern.match(path.name)
    if not m:
        return None
    return Package(path, kind.key, m.group("arch").upper(), m.group("version"),
                   m.groupdict().get("date"), int(m.group("build")) if m.groupdict().get("build") else None)


def pick(files, kind: Kind, arch: str | None = None) -> Package | None:
    """The highest version of ``kind`` among ``files`` (of ``arch`` when given)."""
    found = [p for p in (parse(Path(f), kind) for f in files) if p and (arch is None or p.arch == arch.upper())]
    return max(found, key=lambda p: p.key) if found else None


def other_arches(files, kind: Kind, arch: str) -> list[str]:
    """Names of ``kind`` packages that are for another architecture than ``arch`` (for the error message)."""
    return sorted(p.path.name for p in (parse(Path(f), kind) for f in files) if p and p.arch != arch.upper())


def stand_in(folder: Path, kind: Kind, version: str, arch: str = "X86_64", size: int = 12 * 1024 * 1024 + 4321,
             ) -> Path:
    """A small real ``.tar.gz`` named like ``kind`` (written once; reused when it exists)."""
    path = folder / kind.name(version, arch)
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    payload = random.Random(f"{kind.key}-{version}-{arch}").randbytes(size)   # incompressible: the size holds
    manifest = f"name: {kind.key}\nversion: {version}\narch: {arch}\nsimulated: true\n".encode()
    tmp = path.with_suffix(".part")
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
        for name, data in (("manifest.yaml", manifest), ("payload.bin", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    return path
