"""The request log: :class:`RequestRecord` (one served request, body redacted), :class:`RequestLog`
(thread-safe, queryable) and :func:`redact` (the suite's one redactor with the simulator's secrets)."""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from .clock import SimClock
from .faults import match_address, match_method, match_path

__all__ = ["RequestLog", "RequestRecord", "redact"]


def redact(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """Copy of ``obj`` with secrets masked: the suite's one redactor (``clients.redact``), given this
    simulator's own secrets, so the simulator's request log and state mask exactly what the suite's
    outputs do."""
    from clients.redact import Redactor

    r = Redactor()
    r.add(*secrets)
    return r.obj(obj)


@dataclass(frozen=True)
class RequestRecord:
    """One served request. Bodies are kept only as redacted JSON (or not at all)."""

    seq: int
    address: str              # simulated address that received it
    port: int                 # simulated port
    proto: str                # tcp | udp
    scheme: str               # http | https | udp
    method: str               # HTTP method, or DNS / NTP for UDP services
    path: str                 # URL path without query (DNS: the query name)
    query: str
    status: int | None        # HTTP status; None when dropped or for UDP
    sim_time: float           # simulated seconds at arrival
    wall_time: float          # real UNIX time at arrival
    duration: float           # real seconds spent
    fault: str | None = None  # id of the fault rule that fired
    result: str | None = None  # "dropped", DNS rcode name, ...
    body: Any = None          # redacted JSON body (None if absent / not JSON / too large)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _status_matches(spec, status: int | None) -> bool:
    if spec is None:
        return True
    if isinstance(spec, str):                         # "2xx", "4xx", "dropped"
        if spec == "dropped":
            return status is None
        return status is not None and len(spec) == 3 and spec.lower().endswith("xx") and \
            str(status)[0] == spec[0]
    if isinstance(spec, (list, tuple, set, frozenset)):
        return status in spec
    return status == spec


class RequestLog:
    """Thread-safe log of everything the simulator served."""

    def __init__(self, clock: SimClock, secrets: Iterable[str] = ()):
        self.clock = clock
        self.secrets: set[str] = set(secrets)
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._seq = itertools.count(1)

    def add(self, **kw) -> RequestRecord:
        with self._lock:
            rec = RequestRecord(seq=next(self._seq), **kw)
            self._records.append(rec)
        return rec

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i):
        return self.records[i]

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def filter(self, method: str | None = None, path: str | None = None, status=None,
               address: str | None = None, port: int | None = None) -> list[RequestRecord]:
        """Records matching all given criteria. ``path`` uses :func:`match_path` (exact,
        glob or regex); ``status`` is an int, a collection, ``"2xx"``-style or ``"dropped"``."""
        return [r for r in self.records
                if match_method(method, r.method) and match_path(path, r.path)
                and match_address(address, r.address) and (port is None or r.port == port)
                and _status_matches(status, r.status)]

    def count(self, method: str | None = None, path: str | None = None, status=None,
              address: str | None = None, port: int | None = None) -> int:
        return len(self.filter(method, path, status, address, port))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def to_list(self) -> list[dict]:
        return [r.to_dict() for r in self.records]
