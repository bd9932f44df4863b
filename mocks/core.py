"""Simulator core, shared by every simulated API family.

Pieces (each usable on its own):

* :class:`SimClock`     -- scaled simulation clock (long operations progress on read).
* :class:`Faults`       -- declarative fault rules with hit counters.
* :class:`RequestLog`   -- every request served (bodies redacted), queryable.
* :class:`Request` / :class:`Response` / :class:`App` -- HTTP request model and a
  tiny router; one ``App`` per API family (``mocks/<family>/responses.py``).
* :class:`Hub`          -- the simulated network: one loopback socket per simulated
  ``(address, port, proto)``, HTTP(S) and UDP serving, up/down, liveness.
* :class:`TLSMaterial`  -- self-signed CA + server certificate (``cryptography``).
* envelope helpers      -- the SmartX ``{"data", "ec", "error"}`` envelope.

Nothing here knows about SMTX OS; families plug in through ``App`` (HTTP) and
UDP handler callables.
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import ipaddress
import itertools
import json
import logging
import os
import queue
import re
import selectors
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("mocks")

LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- clock
def timed_phase(now: float, created: float, pending_s: float, running_s: float, fault: str | None) -> str:
    """Where an operation that progresses in simulated time stands: ``pending``, ``running``, then
    ``done`` -- or ``failed`` (fault ``fail``), or ``running`` forever (fault ``stuck``). Each API family
    maps these to its own words (fisheye jobs: pending/running/done/failed; CloudTower tasks:
    PENDING/EXECUTING/SUCCESSED/FAILED)."""
    elapsed = now - created
    if elapsed < pending_s:
        return "pending"
    if fault == "stuck" or elapsed < pending_s + running_s:
        return "running"
    return "failed" if fault == "fail" else "done"


class SimClock:
    """Scaled simulation clock.

    ``time_scale`` is *real seconds per simulated second*: ``1.0`` is realistic
    pacing, ``0.01`` runs 100x faster (a 15-minute operation takes 9 s),
    ``0.001`` 1000x faster. ``now()`` is simulated seconds since the clock was
    created, plus any manual :meth:`advance`.

    ``wall()`` is what the simulated world reports as *current time* (NTP replies,
    timestamps): real UTC plus ``skew`` seconds. It is deliberately not scaled, so
    a fast simulation does not look like a drifting time server; set ``skew`` to
    simulate a wrong clock.
    """

    def __init__(self, time_scale: float = 0.01):
        self._lock = threading.Lock()
        self._check(time_scale)
        self._scale = float(time_scale)
        self._t0 = time.monotonic()
        self._base = 0.0          # simulated seconds accumulated before _t0
        self.skew = 0.0

    @staticmethod
    def _check(scale: float) -> None:
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(f"time_scale must be a positive number, got {scale!r}")

    @property
    def time_scale(self) -> float:
        return self._scale

    @time_scale.setter
    def time_scale(self, scale: float) -> None:
        """Change pacing without a jump in ``now()``."""
        self._check(scale)
        with self._lock:
            now = time.monotonic()
            self._base += (now - self._t0) / self._scale
            self._t0 = now
            self._scale = float(scale)

    def now(self) -> float:
        """Simulated seconds since start."""
        with self._lock:
            return self._base + (time.monotonic() - self._t0) / self._scale

    def advance(self, seconds: float) -> float:
        """Jump simulated time forward (tests: finish a long operation instantly)."""
        if seconds < 0:
            raise ValueError("the simulated clock never goes backwards")
        with self._lock:
            self._base += seconds
        return self.now()

    def restore(self, sim_now: float, skew: float | None = None) -> float:
        """Set ``now()`` to ``sim_now`` (restoring a snapshot; the only way to move the clock
        other than forward). Pacing continues from there at the current ``time_scale``."""
        if not isinstance(sim_now, (int, float)) or sim_now < 0:
            raise ValueError(f"simulated time must be a number >= 0, got {sim_now!r}")
        with self._lock:
            self._t0 = time.monotonic()
            self._base = float(sim_now)
            if skew is not None:
                self.skew = float(skew)
        return self.now()

    def real(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return sim_seconds * self._scale

    def sleep(self, sim_seconds: float) -> None:
        time.sleep(max(0.0, self.real(sim_seconds)))

    def wall(self) -> float:
        """Simulated 'current time' as a UNIX timestamp (real time + skew)."""
        return time.time() + self.skew

    def utcnow(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.wall(), tz=_dt.timezone.utc)

    def to_dict(self) -> dict:
        return {"time_scale": self._scale, "sim_now": round(self.now(), 3), "skew": self.skew,
                "wall": self.utcnow().isoformat()}


# --------------------------------------------------------------------------- patterns
def match_path(pattern: str | None, path: str) -> bool:
    """Path pattern used by fault rules and :meth:`RequestLog.count`.

    * ``None`` or ``"*"``: anything.
    * starts with ``^`` or ``re:``: regular expression, ``re.search`` (anchor it yourself).
    * otherwise a glob (``fnmatch.fnmatchcase``: ``*`` matches any run of characters
      *including* ``/``, ``?`` one character); a plain path is therefore an exact match.
    The query string is never part of ``path``.
    """
    if pattern is None or pattern == "*":
        return True
    if pattern.startswith("re:"):
        return re.search(pattern[3:], path) is not None
    if pattern.startswith("^"):
        return re.search(pattern, path) is not None
    return fnmatch.fnmatchcase(path, pattern)


def match_address(pattern: str | None, address: str) -> bool:
    if pattern is None or pattern == "*":
        return True
    return fnmatch.fnmatchcase(address.lower(), pattern.lower())


def _match_method(pattern: str | None, method: str) -> bool:
    if pattern is None or pattern == "*":
        return True
    return method.upper() in {m.strip().upper() for m in pattern.split("|")}


# --------------------------------------------------------------------------- faults
_RULE_KEYS = {"id", "comment", "method", "path", "address", "port", "nth", "times", "action"}
_ACTION_KEYS = {"status", "body", "headers", "envelope_error", "msg", "delay", "drop", "operation", "stage"}


@dataclass
class FaultRule:
    """One declarative fault. See :meth:`Faults.add` for the schema."""

    action: dict
    method: str | None = None
    path: str | None = None
    address: str | None = None
    port: int | None = None
    nth: int | None = None
    times: int | None = None
    id: str = ""
    comment: str | None = None
    matches: int = 0          # requests that matched method/path/address/port
    hits: int = 0             # times the action fired

    def selects(self, method: str, path: str, address: str, port: int | None) -> bool:
        return (_match_method(self.method, method) and match_path(self.path, path)
                and match_address(self.address, address)
                and (self.port is None or port is None or int(self.port) == int(port)))

    def _fires_now(self) -> bool:
        """Called after ``matches`` was incremented."""
        start = self.nth or 1
        if self.matches < start:
            return False
        if self.nth is not None and self.times is None:
            return self.matches == start
        if self.times is not None and self.hits >= self.times:
            return False
        return True

    def to_dict(self) -> dict:
        d = {"id": self.id, "method": self.method, "path": self.path, "address": self.address,
             "port": self.port, "nth": self.nth, "times": self.times, "action": dict(self.action),
             "matches": self.matches, "hits": self.hits}
        if self.comment:
            d["comment"] = self.comment
        return d

    @classmethod
    def parse(cls, raw: dict | FaultRule) -> FaultRule:
        if isinstance(raw, FaultRule):
            return raw
        if not isinstance(raw, dict):
            raise ValueError(f"a fault rule must be a JSON object, got {type(raw).__name__}")
        raw = dict(raw)
        if "action" in raw:
            action = raw.pop("action")
            if not isinstance(action, dict):
                raise ValueError("fault rule 'action' must be an object")
            action = dict(action)
        else:                                  # flat form: action keys beside the selectors
            action = {k: raw.pop(k) for k in list(raw) if k in _ACTION_KEYS}
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise ValueError(f"fault rule: unknown key(s) {sorted(unknown)}; allowed {sorted(_RULE_KEYS)}")
        bad = set(action) - _ACTION_KEYS
        if bad:
            raise ValueError(f"fault action: unknown key(s) {sorted(bad)}; allowed {sorted(_ACTION_KEYS)}")
        kinds = [k for k in ("status", "envelope_error", "delay", "drop", "operation") if k in action]
        if not kinds:
            raise ValueError("fault action needs one of status, envelope_error, delay, drop, operation")
        if "status" in action and not (isinstance(action["status"], int) and 100 <= action["status"] <= 599):
            raise ValueError(f"fault action status must be an HTTP status code, got {action['status']!r}")
        if "delay" in action and not (isinstance(action["delay"], (int, float)) and action["delay"] >= 0):
            raise ValueError(f"fault action delay must be seconds >= 0, got {action['delay']!r}")
        if "drop" in action and action["drop"] is not True:
            raise ValueError("fault action drop must be true")
        if "operation" in action and action["operation"] not in ("stuck", "fail"):
            raise ValueError(f"fault action operation must be 'stuck' or 'fail', got {action['operation']!r}")
        if "envelope_error" in action and not isinstance(action["envelope_error"], str):
            raise ValueError("fault action envelope_error must be an error code string such as 'EINTERNAL'")
        for k in ("nth", "times"):
            v = raw.get(k)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"fault rule {k} must be an integer >= 1, got {v!r}")
        port = raw.get("port")
        if port is not None and not isinstance(port, int):
            raise ValueError(f"fault rule port must be an integer, got {port!r}")
        for k in ("path", "method", "address"):
            v = raw.get(k)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"fault rule {k} must be a string, got {v!r}")
        if isinstance(raw.get("path"), str) and (raw["path"].startswith("^") or raw["path"].startswith("re:")):
            re.compile(raw["path"][3:] if raw["path"].startswith("re:") else raw["path"])
        return cls(action=action, method=raw.get("method"), path=raw.get("path"), address=raw.get("address"),
                   port=port, nth=raw.get("nth"), times=raw.get("times"), id=str(raw.get("id") or ""),
                   comment=raw.get("comment"))


class Faults:
    """The fault-rule table.

    Rule schema (JSON)::

        {"id": "optional-name",
         "method": "POST",                       # optional; "*" or "GET|POST"; UDP services use "DNS" / "NTP"
         "path": "/api/v2/deployment/cluster",   # optional; glob, or regex when it starts with ^ or re:
         "address": "10.0.20.11",                # optional; simulated address (glob allowed)
         "port": 443,                            # optional; simulated port
         "nth": 2,                               # optional; fire on the 2nd matching call only
         "times": 3,                             # optional; fire at most 3 times (with nth: calls nth..nth+times-1)
         "action": {...}}                        # what to do (the action keys may also sit at top level)

    Actions (keys can be combined; ``delay`` runs first):
    ``{"status": 503, "body": ...}`` plain HTTP error (body: object -> JSON, string -> text;
    default an error envelope), ``{"envelope_error": "EXXX", "status": 500, "msg": "..."}``,
    ``{"delay": 2.5}`` real seconds before handling normally, ``{"drop": true}`` close the
    connection without a response, ``{"operation": "stuck" | "fail", "msg": ..., "stage": n}``
    the long operation started by the call never finishes / ends failed.

    Every rule counts ``matches`` (selector matched) and ``hits`` (action fired). The
    first rule (in insertion order) that fires wins; every selecting rule counts.
    """

    def __init__(self, rules: Iterable[dict] | None = None):
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        if rules:
            self.extend(rules)

    def add(self, rule: dict | FaultRule) -> FaultRule:
        r = FaultRule.parse(rule)
        with self._lock:
            if not r.id:
                r.id = f"fault-{next(self._ids)}"
            self._rules.append(r)
        log.info("sim fault rule added: %s", r.to_dict())
        return r

    def extend(self, rules: Iterable[dict | FaultRule]) -> list[FaultRule]:
        return [self.add(r) for r in rules]

    def load(self, source: str | os.PathLike | list | dict | None) -> list[FaultRule]:
        """Load rules from a list/dict, a JSON text, or a path to a JSON file.

        The JSON may be a list of rules, a single rule, or ``{"rules": [...]}``.
        """
        if source is None or source == "":
            return []
        data: Any = source
        if isinstance(source, (str, os.PathLike)):
            text = str(source).strip()
            if text.startswith("[") or text.startswith("{"):
                data = json.loads(text)
            else:
                data = json.loads(Path(text).read_text(encoding="utf-8"))
        if isinstance(data, dict) and "rules" in data and set(data) <= {"rules", "comment"}:
            data = data["rules"]
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise ValueError("fault rules must be a list of rule objects")
        return self.extend(data)

    def load_env(self, var: str = "SMTX_SIM_FAULTS") -> list[FaultRule]:
        value = os.environ.get(var, "").strip()
        return self.load(value) if value else []

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def get(self, rule_id: str) -> FaultRule | None:
        with self._lock:
            return next((r for r in self._rules if r.id == rule_id), None)

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def match(self, method: str, path: str, address: str, port: int | None = None, *,
              explicit: bool = False) -> FaultRule | None:
        """Count the call against every selecting rule; return the rule that fires, if any.

        ``explicit``: only rules whose ``method`` names this method apply (SSH commands, the installer):
        a rule with no method, or ``*``, is meant for HTTP and is neither counted nor fired here."""
        chosen = None
        with self._lock:
            for r in self._rules:
                if explicit and method.upper() not in {m.strip().upper() for m in (r.method or "").split("|")}:
                    continue
                if not r.selects(method, path, address, port):
                    continue
                r.matches += 1
                if chosen is None and r._fires_now():
                    r.hits += 1
                    chosen = r
        if chosen is not None:
            log.info("sim fault %s fires on %s %s @ %s:%s -> %s", chosen.id, method, path, address, port,
                     chosen.action)
        return chosen

    def to_list(self) -> list[dict]:
        return [r.to_dict() for r in self.rules]


# --------------------------------------------------------------------------- redaction
def redact(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """Copy of ``obj`` with secrets masked: the suite's one redactor (``clients.redact``), given this
    simulator's own secrets, so the simulator's request log and state mask exactly what the suite's
    outputs do."""
    from clients.redact import Redactor

    r = Redactor()
    r.add(*secrets)
    return r.obj(obj)


# --------------------------------------------------------------------------- request log
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
                if _match_method(method, r.method) and match_path(path, r.path)
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


# --------------------------------------------------------------------------- envelopes
def envelope(data: Any = None) -> dict:
    """Success envelope: ``{"data": data, "ec": "EOK", "error": {}}``."""
    return {"data": data, "ec": "EOK", "error": {}}


def error_envelope(ec: str, msg: str, data: Any = None, **extra) -> dict:
    """Error envelope: ``{"data": null, "ec": ec, "error": {"msg": msg, ...}}``."""
    return {"data": data, "ec": ec, "error": {"msg": msg, **extra}}


# --------------------------------------------------------------------------- HTTP model
class BodyReader:
    """A request body read on demand (``Content-Length`` or chunked), never buffered whole.

    Handlers of *streaming* routes (``App.add(..., stream=True)``) get one as
    ``request.stream``; :meth:`read` returns ``b""`` at the end of the body. The server
    discards whatever the handler leaves unread before answering.
    """

    BLOCK = 64 * 1024

    def __init__(self, rfile, headers: Message):
        self._rfile = rfile
        self._chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        try:
            self.length: int | None = None if self._chunked else max(0, int(headers.get("Content-Length") or 0))
        except ValueError:
            raise ValueError("bad Content-Length") from None
        self._remaining = self.length or 0
        self._chunk_left = 0
        self._eof = False
        self.bytes_read = 0

    @property
    def eof(self) -> bool:
        return self._eof

    def read(self, n: int = BLOCK) -> bytes:
        if self._eof or n <= 0:
            return b""
        if not self._chunked:
            if self._remaining <= 0:
                self._eof = True
                return b""
            data = self._rfile.read(min(n, self._remaining))
            if not data:
                raise ConnectionError("client closed the connection in the middle of the request body")
            self._remaining -= len(data)
        else:
            if self._chunk_left == 0:
                line = self._rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed the connection in the middle of the request body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    self._eof = True
                    return b""
                self._chunk_left = size
            data = self._rfile.read(min(n, self._chunk_left))
            if not data:
                raise ConnectionError("client closed the connection in the middle of the request body")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self._rfile.readline(65537)
        self.bytes_read += len(data)
        return data

    def drain(self) -> int:
        """Read and discard the rest; returns the number of bytes discarded."""
        n = 0
        while True:
            block = self.read()
            if not block:
                return n
            n += len(block)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: Message
    body: bytes
    address: str                   # simulated address of the endpoint
    port: int                      # simulated port
    scheme: str                    # http | https
    client: tuple = ("", 0)
    params: dict[str, str] = field(default_factory=dict)   # route parameters
    operation_fault: dict | None = None   # action of an 'operation' fault rule that fired on this call
    fault_id: str | None = None
    stream: BodyReader | None = None      # streaming routes: the unread body (``body`` is then b"")

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[0] if v else default

    def json(self) -> Any:
        """Parsed JSON body; raises ``ValueError`` when it is not JSON."""
        if not self.body:
            raise ValueError("empty request body")
        return json.loads(self.body.decode("utf-8"))


class Response:
    def __init__(self, status: int = 200, body: bytes | str | Any = b"", *,
                 content_type: str | None = None, headers: dict[str, str] | None = None):
        self.status = int(status)
        self.headers = dict(headers or {})
        if isinstance(body, bytes):
            self.body = body
            self.content_type = content_type or "application/octet-stream"
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
            self.content_type = content_type or "text/plain; charset=utf-8"
        else:
            self.body = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.content_type = content_type or "application/json"

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict | None = None) -> Response:
        return cls(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   content_type="application/json", headers=headers)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:80]!r}>"


def ok(data: Any = None, status: int = 200) -> Response:
    """Envelope success response."""
    return Response.json(envelope(data), status)


def fail(ec: str, msg: str, status: int = 400, **extra) -> Response:
    """Envelope error response."""
    return Response.json(error_envelope(ec, msg, **extra), status)


class Drop(Exception):
    """Raise from a handler to close the connection without answering."""


class ApiError(Exception):
    """Raise from a handler to answer with ``response``."""

    def __init__(self, response: Response):
        super().__init__(response)
        self.response = response


Handler = Callable[[Request], Response]


class App:
    """A set of HTTP routes: one per API family.

    Patterns are paths with ``{name}`` placeholders (one path segment each). Override
    :meth:`before` for cross-cutting checks (auth) and :meth:`not_found` /
    :meth:`error` for the family's error body.
    """

    name = "app"

    def __init__(self, name: str | None = None):
        if name:
            self.name = name
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        self._streaming: set = set()

    def route(self, method: str, pattern: str, *, stream: bool = False) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, pattern, fn, stream=stream)
            return fn
        return deco

    def add(self, method: str, pattern: str, handler: Handler, *, stream: bool = False) -> None:
        """Register a route. ``stream=True``: the body is not read up front; the handler reads
        it from ``request.stream`` (a :class:`BodyReader`), so a large upload never sits in memory."""
        rx = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"
        self._routes.append((method.upper(), re.compile(rx), handler))
        if stream:
            self._streaming.add(handler)

    def streams(self, handler: Handler) -> bool:
        return handler in self._streaming

    def resolve(self, method: str, path: str) -> tuple[Handler | None, dict, set[str]]:
        allowed: set[str] = set()
        for m, rx, h in self._routes:
            mo = rx.match(path)
            if not mo:
                continue
            if m == method.upper() or (method.upper() == "HEAD" and m == "GET"):
                return h, mo.groupdict(), allowed
            allowed.add(m)
        return None, {}, allowed

    def before(self, request: Request) -> Response | None:
        return None

    def not_found(self, request: Request) -> Response:
        return fail("ENOTFOUND", f"no such endpoint: {request.method} {request.path}", 404)

    def method_not_allowed(self, request: Request, allowed: set[str]) -> Response:
        return Response(405, error_envelope("EMETHODNOTALLOWED", f"{request.method} not allowed on {request.path}"),
                        headers={"Allow": ", ".join(sorted(allowed))})

    def error(self, request: Request, exc: BaseException) -> Response:
        return fail("EINTERNAL", f"simulator internal error: {type(exc).__name__}: {exc}", 500)

    def fault_response(self, request: Request, action: dict) -> Response:
        """Response for a fault rule's ``status`` / ``envelope_error`` action."""
        status = int(action.get("status", 500))
        if "envelope_error" in action:
            return Response.json(error_envelope(action["envelope_error"],
                                                action.get("msg", f"injected fault {action['envelope_error']}")),
                                 status, headers=action.get("headers"))
        body = action.get("body")
        if body is None:
            body = error_envelope("ESIMFAULT", action.get("msg", f"injected fault: HTTP {status}"))
        return Response(status, body, headers=action.get("headers"))


# --------------------------------------------------------------------------- TLS
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class TLSMaterial:
    """Self-signed CA and a server certificate it signs.

    The server certificate's SANs are IP 127.0.0.1 and DNS ``localhost`` plus every
    simulated address (so verification works whether a client connects to the
    loopback port by name or keeps the simulated host in the URL). ``ca_bundle``
    is the CA PEM path to pass as ``verify=``.
    """

    def __init__(self, directory: Path):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ser, self._ec, self._oid = x509, hashes, serialization, ec, NameOID
        self.dir = Path(directory)
        self._lock = threading.Lock()
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        now = _dt.datetime.now(_dt.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SMTX simulator"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "SMTX simulator test CA")])
        ski = x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key())
        self._ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(self._ca_key, hashes.SHA256()))
        self.ca_bundle = str(self.dir / "sim-ca.pem")
        Path(self.ca_bundle).write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))
        self.cert_file = str(self.dir / "sim-server.pem")
        self.key_file = str(self.dir / "sim-server.key")
        self._names: set[str] = set()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.issue(())

    def issue(self, names: Iterable[str]) -> None:
        """(Re)issue the server certificate to cover ``names`` too; live context reloads."""
        x509, NameOID = self._x509, self._oid
        with self._lock:
            self._names |= {n for n in names if n}
            alt: list = [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
            for n in sorted(self._names):
                try:
                    ip = ipaddress.ip_address(n)
                    if str(ip) != LOOPBACK:
                        alt.append(x509.IPAddress(ip))
                except ValueError:
                    if n != "localhost" and _DNS_NAME.match(n):
                        alt.append(x509.DNSName(n))
            key = self._ec.generate_private_key(self._ec.SECP256R1())
            now = _dt.datetime.now(_dt.timezone.utc)
            cert = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(self._ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=825))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                             content_commitment=False, data_encipherment=False,
                                             key_agreement=True, key_cert_sign=False, crl_sign=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                               critical=False)
                .sign(self._ca_key, self._hashes.SHA256()))
            S = self._ser
            Path(self.key_file).write_bytes(key.private_bytes(S.Encoding.PEM, S.PrivateFormat.PKCS8,
                                                              S.NoEncryption()))
            Path(self.cert_file).write_bytes(cert.public_bytes(S.Encoding.PEM)
                                             + self._ca_cert.public_bytes(S.Encoding.PEM))
            self.context.load_cert_chain(self.cert_file, self.key_file)

    @property
    def names(self) -> set[str]:
        return set(self._names)


# --------------------------------------------------------------------------- HTTP server plumbing
class _SimHTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True          # headers and body are separate writes: avoid delayed-ACK stalls
    server_version = "nginx"
    sys_version = ""
    server: _EndpointHTTPServer

    def handle(self) -> None:
        conn = self.connection
        if isinstance(conn, ssl.SSLSocket):
            try:
                conn.settimeout(10)
                conn.do_handshake()
                conn.settimeout(None)
            except (ssl.SSLError, OSError) as exc:
                log.debug("sim TLS handshake failed on %s: %s", self.server.endpoint.label, exc)
                self.close_connection = True
                return
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.debug("sim connection error on %s: %s", self.server.endpoint.label, exc)

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (ConnectionError, ssl.SSLError, OSError, ValueError):
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        self.server.hub._serve_http(self.server.endpoint, self)

    def read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def write_response(self, resp: Response) -> None:
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)
        self.wfile.flush()

    def drop(self) -> None:
        self.close_connection = True
        _hard_shutdown(self.connection)

    def log_message(self, fmt: str, *args) -> None:   # route stdlib access log to logging
        log.debug("sim %s: " + fmt, self.server.endpoint.label, *args)


def _hard_shutdown(sock: socket.socket) -> None:
    """shutdown(2) on the raw fd (bypasses SSLSocket's own shutdown; safe cross-thread)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _EndpointHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer for one endpoint; accepting is driven by the Hub's I/O loop.

    Per-connection daemon threads are tracked so ``close()`` can shut their sockets
    down and join them.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: Hub, endpoint: Endpoint, sock: socket.socket):
        super().__init__((LOOPBACK, 0), _SimHTTPHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()
        self.server_name, self.server_port = "localhost", self.server_address[1]
        self.hub = hub
        self.endpoint = endpoint
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}

    def fileno(self) -> int:
        return self.socket.fileno()

    def accept_one(self) -> None:
        try:
            conn, addr = self.socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("sim accept failed on %s: %s", self.endpoint.label, exc)
            return
        conn.setblocking(True)
        if self.endpoint.stream_handler is not None:
            t = threading.Thread(target=self._serve_stream, args=(conn,), daemon=True,
                                 name=f"sim-{self.endpoint.label}")
            with self._conn_lock:
                self._conns[conn] = t
            t.start()
            return
        if self.endpoint.scheme == "https":
            try:
                conn = self.hub.tls.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            except (ssl.SSLError, OSError) as exc:
                log.debug("sim TLS wrap failed: %s", exc)
                conn.close()
                return
        t = threading.Thread(target=self._serve_conn, args=(conn, addr), daemon=True,
                             name=f"sim-{self.endpoint.label}")
        with self._conn_lock:
            self._conns[conn] = t
        t.start()

    def _serve_conn(self, conn: socket.socket, addr) -> None:
        try:
            self.finish_request(conn, addr)
        except Exception:                      # noqa: BLE001 - never let a handler kill the thread noisily
            log.debug("sim handler error on %s", self.endpoint.label, exc_info=True)
        finally:
            self.shutdown_request(conn)
            with self._conn_lock:
                self._conns.pop(conn, None)

    def _serve_stream(self, conn: socket.socket) -> None:
        try:
            self.endpoint.stream_handler(conn, self.endpoint)
        except Exception:                      # noqa: BLE001
            log.debug("sim stream handler error on %s", self.endpoint.label, exc_info=True)
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self._conn_lock:
                self._conns.pop(conn, None)

    def handle_error(self, request, client_address) -> None:
        log.debug("sim error on %s", self.endpoint.label, exc_info=True)

    def kill_connections(self, join: float = 0.0) -> None:
        with self._conn_lock:
            conns = list(self._conns.items())
        for conn, _ in conns:
            _hard_shutdown(conn)
        deadline = time.monotonic() + join
        for _, t in conns:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))


# --------------------------------------------------------------------------- endpoints
UdpHandler = Callable[[bytes, "Endpoint"], "UdpResult | None"]
StreamHandler = Callable[[socket.socket, "Endpoint"], None]   # runs on its own thread; owns the socket


@dataclass
class UdpResult:
    reply: bytes | None
    method: str               # service name for the log and fault matching, e.g. "DNS"
    path: str                 # e.g. the DNS query name
    result: str | None = None


@dataclass(eq=False)
class Endpoint:
    address: str
    port: int
    proto: str                       # tcp | udp
    scheme: str                      # http | https | udp
    role: str = ""
    apps: list[App] = field(default_factory=list)
    udp_handler: UdpHandler | None = None
    stream_handler: StreamHandler | None = None   # raw TCP service (e.g. SSH) instead of HTTP
    up: bool = False
    sock: socket.socket | None = field(default=None, repr=False)
    server: _EndpointHTTPServer | None = field(default=None, repr=False)
    local_port: int = 0
    internal: bool = False           # simulator plumbing (control endpoint): unmapped, unlogged, no faults

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.address, self.port, self.proto)

    @property
    def label(self) -> str:
        return f"{self.address}:{self.port}/{self.proto}"

    def to_dict(self) -> dict:
        return {"address": self.address, "port": self.port, "proto": self.proto, "scheme": self.scheme,
                "role": self.role, "up": self.up, "local": [LOOPBACK, self.local_port],
                "apps": [a.name for a in self.apps]}


def _new_tcp_socket(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name == "nt":
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_EXCLUSIVEADDRUSE", 0) or socket.SO_REUSEADDR, 1)
    else:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    last = None
    for _ in range(50):
        try:
            s.bind((LOOPBACK, port))
            return s
        except OSError as exc:                 # rebinding a just-closed port: retry briefly
            last = exc
            if port == 0:
                break
            time.sleep(0.02)
    s.close()
    raise OSError(f"cannot bind {LOOPBACK}:{port}: {last}")


def normalize_address(address: Any) -> str:
    """IP addresses in canonical form; host names as written (stripped), so the address map's
    keys equal what the plan says (``ntp.c89.fun``)."""
    s = str(address).strip()
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        return s.rstrip(".")


class Hub:
    """The simulated network.

    One loopback socket per simulated ``(address, port, proto)``. TCP endpoints that
    are *down* keep their port bound without ``listen()`` so connecting to them is
    refused (ECONNREFUSED); ``set_up`` starts/stops listening on the same local port.
    A single I/O thread accepts TCP connections (each served on its own daemon thread)
    and answers UDP datagrams.
    """

    def __init__(self, clock: SimClock, faults: Faults, requests: RequestLog, workdir: Path | None = None):
        self.clock = clock
        self.faults = faults
        self.requests = requests
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="smtx-sim-"))
        self._tls: TLSMaterial | None = None
        self._lock = threading.RLock()
        self._endpoints: dict[tuple[str, int, str], Endpoint] = {}
        self._alive: dict[str, bool] = {}
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._ops: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closing = threading.Event()     # wakes handlers sleeping in a 'delay' fault
        self.closed = False
        self._timers: list[threading.Timer] = []

    # ---- TLS
    @property
    def tls(self) -> TLSMaterial:
        if self._tls is None:
            self._tls = TLSMaterial(self.workdir)
            self._tls.issue(ep.address for ep in self.endpoints())
        return self._tls

    @property
    def ca_bundle(self) -> str:
        return self.tls.ca_bundle

    # ---- registration
    def add_tcp(self, address: str, port: int, *, scheme: str = "http", apps: Iterable[App] = (),
                up: bool = True, role: str = "", internal: bool = False,
                stream_handler: StreamHandler | None = None) -> Endpoint:
        """Simulate a TCP service. Binds its loopback port now; listens when up and started.

        HTTP(S) by default (routes from ``apps``); with ``stream_handler`` each accepted
        connection is handed to it instead (raw protocols such as SSH)."""
        address = normalize_address(address)
        with self._lock:
            key = (address, int(port), "tcp")
            if key in self._endpoints:
                ep = self._endpoints[key]
                for a in apps:
                    if a not in ep.apps:
                        ep.apps.append(a)
                return ep
            ep = Endpoint(address, int(port), "tcp", scheme, role, list(apps), internal=internal,
                          stream_handler=stream_handler)
            ep.sock = _new_tcp_socket()
            ep.local_port = ep.sock.getsockname()[1]
            self._endpoints[key] = ep
            if not internal:
                self._alive.setdefault(address, False)
            if not internal and self._tls is not None and address not in self._tls.names:
                self._tls.issue([address])
        if up:
            self.set_up(address, port, True, proto="tcp")
        return ep

    def add_udp(self, address: str, port: int, handler: UdpHandler, *, up: bool = True, role: str = "") -> Endpoint:
        address = normalize_address(address)
        with self._lock:
            key = (address, int(port), "udp")
            if key in self._endpoints:
                return self._endpoints[key]
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((LOOPBACK, 0))
            s.setblocking(False)
            ep = Endpoint(address, int(port), "udp", "udp", role, udp_handler=handler, sock=s,
                          local_port=s.getsockname()[1])
            self._endpoints[key] = ep
            self._alive.setdefault(address, False)
            self._call(lambda: self._sel.register(s, selectors.EVENT_READ, ep))
        if up:
            self.set_up(address, port, True, proto="udp")
        return ep

    def add_alive(self, address: str, alive: bool = True) -> None:
        """An address that answers 'ping' but serves no simulated port (gateways, BMCs)."""
        with self._lock:
            self._alive[normalize_address(address)] = alive

    # ---- queries
    def endpoint(self, address: str, port: int, proto: str = "tcp") -> Endpoint | None:
        return self._endpoints.get((normalize_address(address), int(port), proto))

    def endpoints(self) -> list[Endpoint]:
        """Simulated endpoints (not the simulator's own control endpoint)."""
        with self._lock:
            return [ep for ep in self._endpoints.values() if not ep.internal]

    @property
    def address_map(self) -> dict[tuple[str, int, str], tuple[str, int]]:
        """``{(address, port, proto): ("127.0.0.1", local_port)}`` for every simulated endpoint,
        plus ``(address, 0, "icmp"): ("127.0.0.1", 0)`` for every simulated address (ping
        answers come from :meth:`is_alive`, no socket behind it)."""
        with self._lock:
            out = {k: (LOOPBACK, ep.local_port) for k, ep in self._endpoints.items() if not ep.internal}
            for addr in self._alive:
                out[(addr, 0, "icmp")] = (LOOPBACK, 0)
            return out

    def addresses(self) -> list[str]:
        """Every simulated address (with ports or ping-only)."""
        with self._lock:
            return list(self._alive)

    def is_alive(self, address: str) -> bool:
        a = normalize_address(address)
        with self._lock:
            if a in self._alive:
                return bool(self._alive[a])
            return any(v for k, v in self._alive.items() if k.lower() == a.lower())   # host names: any case

    def set_alive(self, address: str, alive: bool) -> None:
        with self._lock:
            self._alive[normalize_address(address)] = bool(alive)

    def alive_state(self) -> dict[str, bool]:
        """``{address: alive}`` for every simulated address (snapshots)."""
        with self._lock:
            return dict(self._alive)

    # ---- up / down
    def set_up(self, address: str, port: int | None = None, up: bool = True, *, proto: str | None = None) -> None:
        """Bring an endpoint (or all endpoints of ``address`` when ``port`` is None) up or down.

        Up: TCP listens and serves; UDP answers; the address becomes alive.
        Down: TCP connections are refused (open connections are cut); UDP is ignored.
        When every endpoint of an address is down, the address stops being alive.
        """
        address = normalize_address(address)
        with self._lock:
            eps = [ep for ep in self._endpoints.values() if ep.address == address
                   and (port is None or ep.port == int(port)) and (proto is None or ep.proto == proto)]
            if not eps:
                raise KeyError(f"not a simulated endpoint: {address}:{port if port is not None else '*'}"
                               f"/{proto or '*'}")
            for ep in eps:
                if ep.up != up:
                    ep.up = up
                    if ep.proto == "tcp":
                        self._call(lambda ep=ep: self._apply_tcp_state(ep))
            if up:
                self._alive[address] = True
            elif not any(e.up for e in self._endpoints.values() if e.address == address):
                self._alive[address] = False

    def _apply_tcp_state(self, ep: Endpoint) -> None:
        """Runs on the I/O thread (or before start)."""
        running = self._thread is not None and not self._stopping
        if ep.up:
            if ep.server is None:
                ep.sock.listen(128)
                ep.sock.setblocking(False)
                ep.server = _EndpointHTTPServer(self, ep, ep.sock)
                if running:
                    self._sel.register(ep.sock, selectors.EVENT_READ, ep)
        else:
            server, ep.server = ep.server, None
            if server is not None:
                try:
                    self._sel.unregister(ep.sock)
                except (KeyError, ValueError):
                    pass
                ep.sock.close()
                server.kill_connections()
                ep.sock = _new_tcp_socket(ep.local_port)      # bound, not listening: refuses

    # ---- I/O loop
    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the I/O thread and wait (directly when not running)."""
        if self._thread is None or threading.current_thread() is self._thread or self._stopping:
            return fn()
        done = threading.Event()
        box: list = [None, None]

        def op():
            try:
                box[0] = fn()
            except BaseException as exc:          # noqa: BLE001
                box[1] = exc
            finally:
                done.set()

        self._ops.put(op)
        self._wake()
        if not done.wait(10):
            raise TimeoutError("simulator I/O loop did not respond")
        if box[1] is not None:
            raise box[1]
        return box[0]

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def start(self) -> None:
        if self._thread is not None:
            return
        _raise_fd_limit()
        _ = self.tls                          # generate certificates before serving
        with self._lock:
            for ep in self._endpoints.values():
                if ep.proto == "tcp" and ep.up and ep.server is not None:
                    self._sel.register(ep.sock, selectors.EVENT_READ, ep)
        self._thread = threading.Thread(target=self._loop, name="sim-io", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping:
            try:
                events = self._sel.select(timeout=1.0)
            except OSError:
                continue
            for key, _ in events:
                if key.fileobj is self._wake_r:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, InterruptedError, OSError):
                        pass
                    continue
                ep: Endpoint = key.data
                try:
                    if ep.proto == "udp":
                        self._serve_udp(ep)
                    elif ep.server is not None:
                        ep.server.accept_one()
                except Exception:          # noqa: BLE001
                    log.exception("sim I/O error on %s", ep.label)
            while True:
                try:
                    op = self._ops.get_nowait()
                except queue.Empty:
                    break
                op()

    def close(self) -> None:
        if self.closed:
            return
        self._stopping = True
        self._closing.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        while True:                                   # release any waiter
            try:
                self._ops.get_nowait()()
            except queue.Empty:
                break
        for t in self._timers:
            t.cancel()
        with self._lock:
            eps = list(self._endpoints.values())
        servers = [ep.server for ep in eps if ep.server is not None]
        for ep in eps:
            try:
                ep.sock.close()
            except OSError:
                pass
        for s in servers:
            s.kill_connections()
        deadline = time.monotonic() + 5
        for s in servers:
            with s._conn_lock:
                threads = list(s._conns.values())
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
        for s in (self._wake_r, self._wake_w):
            s.close()
        self._sel.close()
        self.closed = True
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- serving
    def _serve_udp(self, ep: Endpoint) -> None:
        try:
            data, client = ep.sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError, OSError):
            return
        if not ep.up or ep.udp_handler is None:
            return
        t0, sim_t, wall_t = time.monotonic(), self.clock.now(), time.time()
        try:
            res = ep.udp_handler(data, ep)
        except Exception:              # noqa: BLE001
            log.exception("sim UDP handler error on %s", ep.label)
            return
        if res is None:
            return
        rule = self.faults.match(res.method, res.path, ep.address, ep.port)
        reply, result = res.reply, res.result
        delay = 0.0
        if rule is not None:
            if rule.action.get("drop"):
                reply, result = None, "dropped"
            delay = float(rule.action.get("delay", 0) or 0)
        self.requests.add(address=ep.address, port=ep.port, proto="udp", scheme="udp", method=res.method,
                          path=res.path, query="", status=None, sim_time=sim_t, wall_time=wall_t,
                          duration=time.monotonic() - t0, fault=rule.id if rule else None, result=result)
        if reply is None:
            return

        def send(sock=ep.sock, reply=reply, client=client):
            try:
                sock.sendto(reply, client)
            except OSError:
                pass

        if delay > 0:
            t = threading.Timer(delay, send)
            t.daemon = True
            self._timers.append(t)
            t.start()
        else:
            send()

    def _resolve_app(self, ep: Endpoint, method: str, path: str) -> tuple[App | None, Handler | None]:
        """The app (and handler) that would serve ``method path`` on ``ep``, if any."""
        for app in ep.apps:
            handler, _, _ = app.resolve(method, path)
            if handler is not None:
                return app, handler
        return None, None

    def _serve_http(self, ep: Endpoint, h: _SimHTTPHandler) -> None:
        t0, sim_t, wall_t = time.monotonic(), self.clock.now(), time.time()
        split = urlsplit(h.path)
        path = split.path or "/"
        method = h.command.upper()
        route_app, route_handler = self._resolve_app(ep, method, path)
        reader: BodyReader | None = None
        try:
            if route_app is not None and route_app.streams(route_handler):
                reader, body = BodyReader(h.rfile, h.headers), b""
            else:
                body = h.read_body()
        except (ValueError, OSError):
            h.close_connection = True
            return
        req = Request(method=method, path=path, query=parse_qs(split.query, keep_blank_values=True),
                      raw_query=split.query, headers=h.headers, body=body, address=ep.address, port=ep.port,
                      scheme=ep.scheme, client=h.client_address, stream=reader)
        if ep.internal:
            resp = self._route(ep, req)
            if resp is not None and reader is not None and not self._drain(reader, h):
                resp = None
            if resp is None:
                h.drop()
            else:
                h.write_response(resp)
            return
        rule = self.faults.match(req.method, path, ep.address, ep.port)
        resp: Response | None = None
        result = None
        late_delay = 0.0          # streaming routes: the body is consumed first, the *answer* is delayed
        if rule is not None:
            req.fault_id = rule.id
            a = rule.action
            if a.get("delay"):
                if reader is not None:
                    late_delay = float(a["delay"])
                elif self._closing.wait(float(a["delay"])):
                    h.drop()                                # simulator closing: abandon the request
                    return
            if a.get("drop"):
                result = "dropped"
            elif "status" in a or "envelope_error" in a:
                app = route_app or (ep.apps[0] if ep.apps else App())
                resp = app.fault_response(req, a)
                result = "fault"
            if "operation" in a:
                req.operation_fault = dict(a)
        if result is None:
            resp = self._route(ep, req)
            if resp is None:
                result = "dropped"
        if reader is not None and resp is not None and not self._drain(reader, h):
            resp, result = None, "client-closed"
        stored = None
        if body and len(body) <= 256 * 1024:
            try:
                stored = redact(json.loads(body.decode("utf-8")), self.requests.secrets)
            except (ValueError, UnicodeDecodeError):
                stored = None
        self.requests.add(address=ep.address, port=ep.port, proto="tcp", scheme=ep.scheme, method=req.method,
                          path=path, query=split.query, status=None if resp is None else resp.status,
                          sim_time=sim_t, wall_time=wall_t, duration=time.monotonic() - t0,
                          fault=rule.id if rule else None, result=result, body=stored)
        if resp is None:
            h.drop()
            return
        if late_delay > 0 and self._closing.wait(late_delay):
            h.drop()
            return
        try:
            h.write_response(resp)
        except (ConnectionError, ssl.SSLError, OSError):
            h.close_connection = True

    @staticmethod
    def _drain(reader: BodyReader, h: _SimHTTPHandler) -> bool:
        """Discard the unread rest of a streamed body so the connection stays in sync; False when
        the client went away."""
        try:
            reader.drain()
            return True
        except (ValueError, OSError):
            h.close_connection = True
            return False

    def _route(self, ep: Endpoint, req: Request) -> Response | None:
        allowed: set[str] = set()
        for app in ep.apps:
            handler, params, allowed_here = app.resolve(req.method, req.path)
            allowed |= allowed_here
            if handler is None:
                continue
            req.params = params
            try:
                pre = app.before(req)
                if pre is not None:
                    return pre
                return handler(req)
            except Drop:
                return None
            except (ConnectionError, TimeoutError) as exc:
                if req.stream is not None:          # the client went away while sending its body
                    log.debug("sim: client went away during %s %s: %s", req.method, req.path, exc)
                    return None
                log.exception("sim handler %s failed on %s %s", app.name, req.method, req.path)
                return app.error(req, exc)
            except ApiError as exc:
                return exc.response
            except Exception as exc:         # noqa: BLE001
                log.exception("sim handler %s failed on %s %s", app.name, req.method, req.path)
                return app.error(req, exc)
        first = ep.apps[0] if ep.apps else App()
        if allowed:
            return first.method_not_allowed(req, allowed)
        log.warning("sim: no simulated endpoint for %s %s on %s (%s) -> 404", req.method, req.path,
                    ep.label, ep.role or "-")
        return first.not_found(req)

    # ---- inspection
    def to_dict(self) -> list[dict]:
        return [ep.to_dict() | {"alive": self.is_alive(ep.address)} for ep in self.endpoints()]


def _raise_fd_limit(target: int = 4096) -> None:
    """macOS defaults to 256 open files; a simulated world needs a few hundred sockets."""
    if sys.platform == "win32":
        return
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = target if hard == resource.RLIM_INFINITY else min(target, hard)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass
