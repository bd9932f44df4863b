"""Component packages (clients/packages.py): names, the highest version, architecture, real stand-ins."""
from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

from clients.packages import BACKUP, OBS, other_arches, parse, pick, stand_in


def test_names_parse_as_the_older_tool_reads_them():
    p = parse(Path("Observability-X86_64-v1.4.2-release.20250926-24.tar.gz"), OBS)
    assert (p.arch, p.version, p.date, p.build, p.release) == ("X86_64", "1.4.2", "20250926", 24,
                                                               "v1.4.2-release.20250926")
    assert parse(Path("observability-aarch64-v1.4.tar.gz"), OBS).arch == "AARCH64"
    b = parse(Path("smtx-backup-dr-x86_64-2.2.1.tar.gz"), BACKUP)
    assert (b.arch, b.version) == ("X86_64", "2.2.1")
    assert parse(Path("smtx-backup-dr-x86_64-2.2.1.zip"), BACKUP) is None
    assert parse(Path("Observability-X86_64-1.4.2.tar.gz"), OBS) is None


def test_the_highest_version_then_date_then_build_of_the_clusters_architecture_wins():
    files = ["Observability-X86_64-v1.4.2-release.20250926-24.tar.gz",
             "Observability-X86_64-v1.4.10-release.20240101-1.tar.gz",
             "Observability-X86_64-v1.4.10-release.20240102-1.tar.gz",
             "Observability-X86_64-v1.4.10-release.20240102-3.tar.gz",
             "Observability-AARCH64-v9.9.9.tar.gz", "README.txt"]
    assert pick(files, OBS, "x86_64").path.name == "Observability-X86_64-v1.4.10-release.20240102-3.tar.gz"
    assert pick(files, OBS, "AARCH64").version == "9.9.9"
    assert pick(["smtx-backup-dr-aarch64-2.2.1.tar.gz"], BACKUP, "X86_64") is None
    assert other_arches(["smtx-backup-dr-aarch64-2.2.1.tar.gz"], BACKUP, "X86_64") == [
        "smtx-backup-dr-aarch64-2.2.1.tar.gz"]


def test_a_stand_in_is_a_whole_real_tar_gz_written_once(tmp_path):
    p = stand_in(tmp_path, BACKUP, "2.2.0", size=300_000)
    assert p.name == "smtx-backup-dr-x86_64-2.2.0.tar.gz" and parse(p, BACKUP).version == "2.2.0"
    with tarfile.open(p) as tar:
        assert tar.getnames() == ["manifest.yaml", "payload.bin"]
    assert len(gzip.decompress(p.read_bytes())) > 300_000
    mtime = p.stat().st_mtime_ns
    assert stand_in(tmp_path, BACKUP, "2.2.0", size=300_000) == p and p.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.part"))
