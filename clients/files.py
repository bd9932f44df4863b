"""Atomic file writes: the one place that writes a temp file beside the target, fsyncs it and
replaces the target (used by the run state, evidence, the workbook write-back and the simulator's
saved state). Standard library only, so plan/ and mocks/ may use it too."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO


def temp_beside(path: Path, *, prefix: str | None = None, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new temp file in ``path``'s folder (same file system, so a replace is atomic): (fd, path)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}." if prefix is None else prefix, suffix=suffix)
    return fd, Path(name)


def replace_atomically(tmp: Path, path: Path) -> None:
    """Move the finished, fsynced ``tmp`` over ``path`` in one step, then fsync the folder (POSIX) so
    the new name survives a power cut."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None], *, mode: int | None = None) -> None:
    """Write ``path`` through ``write(fh)`` into a temp file beside it, fsync, then replace ``path``.
    A failure leaves ``path`` as it was and removes the temp file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        replace_atomically(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8, with the platform's line ends (as a text-mode write would)."""
    atomic_write_bytes(path, text.replace("\n", os.linesep).encode("utf-8"))
