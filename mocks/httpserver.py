"""The HTTP(S) server of one simulated TCP endpoint: ``http.server``'s threaded server, with accepting
driven by the :class:`mocks.hub.Hub`'s I/O loop, TLS handshakes on the connection's own thread,
tracked connections (so an endpoint going down can cut them) and raw ``stream_handler`` connections
(SSH). Each parsed request goes to ``hub.dispatcher`` (:class:`mocks.dispatch.Dispatcher`).
"""
from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from .http import Response
from .tls import LOOPBACK

if TYPE_CHECKING:
    from .hub import Endpoint, Hub

log = logging.getLogger("mocks")

__all__ = ["EndpointHTTPServer", "hard_shutdown"]


class _SimHTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True          # headers and body are separate writes: avoid delayed-ACK stalls
    server_version = "nginx"
    sys_version = ""
    server: EndpointHTTPServer

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
        self.server.hub.dispatcher.serve_http(self.server.endpoint, self)

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
        hard_shutdown(self.connection)

    def log_message(self, fmt: str, *args) -> None:   # route stdlib access log to logging
        log.debug("sim %s: " + fmt, self.server.endpoint.label, *args)


def hard_shutdown(sock: socket.socket) -> None:
    """shutdown(2) on the raw fd (bypasses SSLSocket's own shutdown; safe cross-thread)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class EndpointHTTPServer(ThreadingHTTPServer):
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
                ctx = self.hub.tls_context(self.endpoint)      # the endpoint's own certificate (fault rules: rotated)
                conn = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
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
            hard_shutdown(conn)
        deadline = time.monotonic() + join
        for _, t in conns:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
