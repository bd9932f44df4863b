"""Where every connection goes: the address map and its guard.

In real mode an address maps to itself. In ``--simulate`` mode each planned
(address, port, proto) maps to the simulator on 127.0.0.1, and any destination
that is not in the map, or not loopback, raises ``UnroutableAddress`` naming the
address and the step. HTTP (via ``GuardedTransport``), SSH, TCP probes, UDP
probes and ping all resolve through ``AddressMap.resolve``/``ping``.
"""
from __future__ import annotations

import contextvars
import ipaddress
import platform
import socket
import struct
import subprocess
import time
from typing import Callable

import httpx

CURRENT_STEP: contextvars.ContextVar[str] = contextvars.ContextVar("current_step", default="(无步骤 / no step)")
DEFAULT_PORTS = {"http": 80, "https": 443}


class UnroutableAddress(RuntimeError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AddressMap:
    def __init__(self, simulate: bool, mapping: dict | None = None,
                 alive: Callable[[str], bool] | None = None) -> None:
        self.simulate = simulate
        self.mapping: dict[tuple[str, int, str], tuple[str, int]] = dict(mapping or {})
        self._alive = alive

    @property
    def mode(self) -> str:
        return "simulated" if self.simulate else "real"

    def resolve(self, address: str, port: int, proto: str = "tcp") -> tuple[str, int]:
        address = str(address)
        if not self.simulate:
            return address, port
        target = self.mapping.get((address, port, proto))
        if target is None and is_loopback(address):
            target = (address, port)
        if target is None:
            raise UnroutableAddress(
                f"模拟模式下拒绝连接 {address}:{port}/{proto}（步骤 {CURRENT_STEP.get()}）：该地址不在模拟器地址映射中。"
                f" / refused in --simulate mode: {address}:{port}/{proto} (step {CURRENT_STEP.get()}) is not in the "
                f"simulator's address map; only loopback is ever contacted.")
        if not is_loopback(target[0]):
            raise UnroutableAddress(
                f"模拟模式下目标 {target[0]} 不是回环地址（步骤 {CURRENT_STEP.get()}）/ in --simulate mode the target "
                f"{target[0]} for {address}:{port} is not loopback (step {CURRENT_STEP.get()})")
        return target

    # --- probes -----------------------------------------------------------
    def tcp_open(self, address: str, port: int, timeout: float = 2.0) -> bool:
        host, p = self.resolve(address, port, "tcp")
        try:
            with socket.create_connection((host, p), timeout=timeout):
                return True
        except OSError:
            return False

    def ping(self, address: str, timeout: float = 1.0) -> bool:
        address = str(address)
        if self.simulate:
            if self._alive is None or not any(k[0] == address for k in self.mapping):
                self.resolve(address, 0, "icmp")  # raises: only simulated addresses answer here
            return bool(self._alive(address))
        flag = ["-n", "1", "-w", str(int(timeout * 1000))] if platform.system() == "Windows" else \
            ["-c", "1", "-W", str(max(1, int(timeout)))]
        try:
            return subprocess.run(["ping", *flag, address], capture_output=True, timeout=timeout + 2).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def udp_exchange(self, address: str, port: int, payload: bytes, timeout: float = 2.0) -> bytes | None:
        host, p = self.resolve(address, port, "udp")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(payload, (host, p))
                data, _ = s.recvfrom(4096)
                return data
            except OSError:
                return None

    def dns_answers(self, server: str, name: str = "localhost", timeout: float = 2.0) -> bool:
        """A DNS server answers a standard query (any rcode counts as an answer)."""
        qid = int(time.monotonic() * 1000) & 0xFFFF
        q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
        resp = self.udp_exchange(server, 53, q, timeout)
        return bool(resp and len(resp) >= 12 and resp[:2] == q[:2] and resp[2] & 0x80)

    def ntp_answers(self, server: str, timeout: float = 2.0) -> bool:
        """An NTP server answers a client request with a server-mode reply."""
        resp = self.udp_exchange(server, 123, b"\x1b" + 47 * b"\0", timeout)
        return bool(resp and len(resp) >= 48 and resp[0] & 0x07 == 4)


class GuardedTransport(httpx.BaseTransport):
    """Rewrites each request's destination through the address map (keeping the Host header)."""

    def __init__(self, amap: AddressMap, inner: httpx.BaseTransport) -> None:
        self.amap = amap
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or DEFAULT_PORTS.get(url.scheme, 80)
        host, p = self.amap.resolve(url.host, port, "tcp")
        if (host, p) != (url.host, port):
            request.url = url.copy_with(host=host, port=p)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
