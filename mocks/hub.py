"""The simulated network: :class:`Hub` -- one loopback socket per simulated ``(address, port, proto)``,
up/down state (a down TCP endpoint refuses connections), liveness ("ping"), one I/O thread that
accepts TCP connections (each served on its own thread by :mod:`mocks.httpserver`, or by a raw
``stream_handler`` such as SSH) and receives UDP datagrams. What a request gets as an answer
is decided by :class:`mocks.dispatch.Dispatcher` (routing, faults, request log).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import queue
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .clock import SimClock
from .faults import Faults
from .dispatch import Dispatcher
from .http import App
from .httpserver import EndpointHTTPServer
from .reqlog import RequestLog
from .tls import LOOPBACK, TLSMaterial

log = logging.getLogger("mocks")

__all__ = ["LOOPBACK", "Endpoint", "Hub", "StreamHandler", "UdpHandler", "UdpResult", "normalize_address"]


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
    server: EndpointHTTPServer | None = field(default=None, repr=False)
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
        self.tls_seed = ""                    # the plan's cluster name: certificates differ between clusters
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
        self.dispatcher = Dispatcher(clock, faults, requests, self._closing)
        self.closed = False
        self._timers: list[threading.Timer] = []

    # ---- TLS
    @property
    def tls(self) -> TLSMaterial:
        """The CA and the per-endpoint certificates (each made on the first connection to its endpoint)."""
        if self._tls is None:
            self._tls = TLSMaterial(self.workdir, self.tls_seed)
        return self._tls

    def tls_context(self, ep: Endpoint):
        """The server SSLContext for one new connection to ``ep``: its certificate, or the next generation's where
        a fault rule ``{"method": "TLS", "tls": "rotated"}`` fires (explicit: HTTP rules never touch handshakes)."""
        rule = self.faults.match("TLS", "/", ep.address, ep.port, explicit=True)
        rotated = rule is not None and rule.action.get("tls") == "rotated"
        return self.tls.context_for(ep.address, ep.port, ahead=1 if rotated else 0)

    def set_tls_seed(self, seed: str) -> None:
        self.tls_seed = seed
        if self._tls is not None:
            self._tls.set_seed(seed)

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
            if all(ep.internal for ep in eps):           # the simulator's own control endpoint: not an address
                return
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
                ep.server = EndpointHTTPServer(self, ep, ep.sock)
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
        _ = self.tls                          # the CA before serving (each endpoint's certificate on first use)
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
        answer = self.dispatcher.serve_udp(ep, data)
        if answer is None:
            return
        reply, delay = answer

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
