"""The simulated hosts' virtual file system: files held as bytes (or content that grows with
simulated time) with an owner and a mode, and the directories that exist. Nothing touches the
real disk."""
from __future__ import annotations

import posixpath
import threading
from dataclasses import dataclass
from typing import Callable

from ..clock import SimClock

ContentProvider = Callable[[float], "bytes | str"]


@dataclass
class VFile:
    owner: str = "root"
    mode: int = 0o644
    data: bytes = b""
    provider: ContentProvider | None = None    # content = data + provider(simulated seconds since provide())
    started: float = 0.0


class VirtualFS:
    """Files (bytes, or content that grows with simulated time) with an owner and a mode.

    Permission model: root reads and writes everything; others read files whose mode has o+r
    or that they own, and write files they own, new files in their home directory or /tmp.
    Directories exist when listed in ``dirs`` (created by :meth:`mkdir` or by Python-side writes).
    """

    def __init__(self, clock: SimClock):
        self.clock = clock
        self._lock = threading.RLock()
        self.files: dict[str, VFile] = {}
        self.dirs: set[str] = {"/", "/etc", "/tmp", "/root", "/home", "/var", "/var/log", "/usr", "/usr/bin",
                               "/usr/sbin", "/usr/share", "/opt", "/dev"}
        self.homes: dict[str, str] = {}

    @staticmethod
    def norm(path: str, cwd: str = "/") -> str:
        return posixpath.normpath(posixpath.join(cwd, path)) if path else cwd

    # ---- Python-side API (handlers, tests): no permission checks
    def mkdir(self, path: str) -> None:
        with self._lock:
            p = self.norm(path)
            while p not in self.dirs:
                self.dirs.add(p)
                p = posixpath.dirname(p)

    def write(self, path: str, data: bytes | str, *, owner: str = "root", mode: int | None = None,
              append: bool = False) -> None:
        p = self.norm(path)
        b = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        with self._lock:
            self.mkdir(posixpath.dirname(p))
            f = self.files.get(p)
            if f is None:
                self.files[p] = VFile(owner=owner, mode=0o644 if mode is None else mode, data=b)
                return
            if append:
                f.data, f.provider = self._content(f) + b, None
            else:
                f.data, f.provider = b, None
            if mode is not None:
                f.mode = mode

    def provide(self, path: str, fn: ContentProvider, *, owner: str = "root", mode: int = 0o644,
                keep: bool = False) -> None:
        """Make ``path`` a file whose content grows with simulated time: ``fn(elapsed)`` is called on
        every read with the simulated seconds since now and returns the content so far (str or
        bytes). ``keep=True`` keeps the current content in front (appending output)."""
        p = self.norm(path)
        with self._lock:
            self.mkdir(posixpath.dirname(p))
            f = self.files.get(p)
            prefix = self._content(f) if (f is not None and keep) else b""
            if f is None:
                f = self.files[p] = VFile(owner=owner, mode=mode)
            f.data, f.provider, f.started = prefix, fn, self.clock.now()

    def read(self, path: str) -> bytes:
        with self._lock:
            f = self.files.get(self.norm(path))
            if f is None:
                raise FileNotFoundError(path)
            return self._content(f)

    def text(self, path: str) -> str:
        return self.read(path).decode("utf-8", errors="replace")

    def exists(self, path: str) -> bool:
        p = self.norm(path)
        return p in self.files or p in self.dirs

    def is_file(self, path: str) -> bool:
        return self.norm(path) in self.files

    def is_dir(self, path: str) -> bool:
        return self.norm(path) in self.dirs

    def stat(self, path: str) -> VFile | None:
        return self.files.get(self.norm(path))

    def remove(self, path: str) -> bool:
        with self._lock:
            return self.files.pop(self.norm(path), None) is not None

    def paths(self) -> list[str]:
        with self._lock:
            return sorted(self.files)

    def _content(self, f: VFile) -> bytes:
        if f.provider is None:
            return f.data
        grown = f.provider(max(0.0, self.clock.now() - f.started))
        if isinstance(grown, str):
            grown = grown.encode("utf-8")
        return f.data + bytes(grown)

    # ---- permission checks (shell side)
    def can_read(self, user: str, path: str) -> bool:
        f = self.stat(path)
        return f is not None and (user == "root" or f.owner == user or bool(f.mode & 0o004))

    def can_write(self, user: str, path: str) -> bool:
        p = self.norm(path)
        if user == "root" or p == "/dev/null":
            return True
        f = self.files.get(p)
        if f is not None:
            return f.owner == user and bool(f.mode & 0o200)
        parent = posixpath.dirname(p)
        home = self.homes.get(user)
        return parent == "/tmp" or (home is not None and (parent == home or parent.startswith(home + "/")))
