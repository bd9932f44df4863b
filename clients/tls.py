"""TLS trust for every HTTPS client: trust on first use (pins, like SSH's known_hosts), a customer CA, or none.

SMTX OS and CloudTower ship self-signed certificates, so by default the suite *pins*: before the first request to
an address it fetches the certificate with a plain TLS handshake (through the address map), records its SHA-256
fingerprint and PEM in the delivery folder's ``tls_pins.json`` (carried over between runs of the same cluster, as
``known_hosts`` is), and from then on talks to that address only through an ``SSLContext`` that trusts exactly
the pinned certificate (``VERIFY_X509_PARTIAL_CHAIN``: a leaf can be its own trust anchor; no host name check:
the pin is the identity). OpenSSL thus enforces the pin on every connection. A certificate that differs from the
pin fails at once with :class:`TlsError`, naming the address, the pinned fingerprint and the presented one.

``--ca-bundle`` verifies against the customer's CA instead (host name included); ``--insecure`` verifies nothing.
Both still note what each address presented, for the report. Only the pinning mode reads or writes the pin file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import httpx

from .addressing import AddressMap, GuardedTransport
from .files import atomic_write_text
from .ipaddr import is_ip

log = logging.getLogger("smtx.tls")

PIN_FILE = "tls_pins.json"
_NO_CHECK_TIME = 0x200000       # X509_V_FLAG_NO_CHECK_TIME: a pinned certificate is the identity, expired or not

# how a certificate was seen in this run (the report's status column)
FIRST_USE = "first-use"         # unknown before: pinned now
MATCHED = "matched"             # equals the pin an earlier run recorded
OBSERVED = "observed"           # --ca-bundle / --insecure: seen, not pinned


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as ``AB:CD:…`` (what ``openssl x509 -noout -fingerprint -sha256`` prints)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def pin_key(address: str, port: int) -> str:
    """``address`` for 443 (every SMTX OS / CloudTower API), ``address:port`` otherwise."""
    if port == 443:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class TlsError(Exception):
    """A TLS failure that no retry or poll can cure (changed certificate, failed verification): terminal.

    Deliberately neither an ``httpx.TransportError`` (retried by the clients) nor an ``ApiError`` (polled by
    some steps): it ends the step with the address, the cause and the next action."""

    def __init__(self, address: str, port: int, message: str, *, pinned: list[str] | None = None,
                 presented: str | None = None):
        self.address, self.port, self.pinned, self.presented = address, port, pinned or [], presented
        super().__init__(message)


def fetch_certificate(amap: AddressMap, address: str, port: int = 443, timeout: float = 10.0) -> bytes:
    """The DER certificate ``address:port`` presents (a handshake that verifies nothing; no request is sent).

    A connection or handshake failure raises ``httpx.ConnectError`` (transient, like any connect failure), its
    message naming TLS when the handshake was what failed."""
    host, p = amap.resolve(address, port, "tcp")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        sni = None if is_ip(address, strip=False) else address
        with socket.create_connection((host, p), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                der = tls.getpeercert(binary_form=True)
    except ssl.SSLError as exc:
        raise httpx.ConnectError(f"TLS 握手失败 / TLS handshake with {address}:{port} failed: {exc}") from exc
    except OSError as exc:
        raise httpx.ConnectError(f"无法连接 / cannot connect to {address}:{port}: {exc}") from exc
    if not der:
        raise httpx.ConnectError(f"{address}:{port} 未出示证书 / presented no certificate")
    return der


def pinned_context(pems: Iterable[str]) -> ssl.SSLContext:
    """A client context that trusts exactly these certificates (each its own anchor), whatever their names."""
    ctx = ssl.create_default_context(cadata="".join(pems))
    ctx.check_hostname = False
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        ctx.verify_flags |= _NO_CHECK_TIME
    except (ValueError, ssl.SSLError):           # pragma: no cover - an OpenSSL without the flag
        pass
    return ctx


class PinStore:
    """``{key: {"sha256", "pem", "first_seen"}}`` in ``tls_pins.json`` (``path`` None: in memory only), plus
    what this run saw (:attr:`seen`, for the report). Thread-safe; the file is rewritten atomically.

    ``trust_together(addresses)`` makes addresses one group (the cluster's hosts and its VIP: the VIP is served
    by whichever host holds it): each trusts its own pin and those of the group."""

    def __init__(self, path: Path | str | None, *, notify: Callable[[str], None] | None = None):
        self.path = Path(path) if path is not None else None
        self.notify = notify
        self._lock = threading.RLock()
        self._pins: dict[str, dict] | None = None
        self.seen: dict[str, dict] = {}
        self._groups: dict[str, frozenset[str]] = {}

    # ---- the file
    def _load(self) -> dict[str, dict]:
        if self._pins is None:
            self._pins = {}
            if self.path is not None and self.path.is_file():
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise TlsError("", 0, f"无法读取证书固定文件 / cannot read the pin file {self.path}: {exc}\n"
                                          f"下一步 / next: 修复或删除该文件后重跑 / repair or delete it, then rerun") from exc
                pins = data.get("pins") if isinstance(data, dict) else None
                self._pins = {k: v for k, v in (pins or {}).items() if isinstance(v, dict) and v.get("sha256")}
        return self._pins

    def _save(self) -> None:
        if self.path is None:
            return
        body = {"comment": "TLS 证书固定（首次信任）/ TLS certificates trusted on first use; delete an entry only "
                           "after checking the new certificate on the machine itself",
                "pins": self._pins}
        atomic_write_text(self.path, json.dumps(body, ensure_ascii=False, indent=2) + "\n")

    def entries(self) -> dict[str, dict]:
        with self._lock:
            return {k: dict(v) for k, v in self._load().items()}

    def get(self, key: str) -> dict | None:
        with self._lock:
            entry = self._load().get(key)
            return dict(entry) if entry else None

    # ---- groups
    def trust_together(self, addresses: Iterable[str]) -> None:
        group = frozenset(str(a) for a in addresses if a)
        with self._lock:
            for a in group:
                self._groups[a] = self._groups.get(a, frozenset()) | group

    def trusted(self, address: str, port: int) -> list[dict]:
        """The pin entries ``address:port`` may present: its own first, then its group's."""
        with self._lock:
            pins = self._load()
            keys = [pin_key(address, port)] + sorted(pin_key(a, port) for a in self._groups.get(address, ())
                                                     if a != address)
            return [pins[k] for k in dict.fromkeys(keys) if k in pins]

    # ---- first use
    def ensure(self, address: str, port: int, fetch: Callable[[], bytes]) -> list[str]:
        """The PEMs to trust for ``address:port``: pinned already, or fetched now and pinned (first use)."""
        key = pin_key(address, port)
        with self._lock:
            own = self._load().get(key)
            if own is not None:
                self.seen.setdefault(key, {"sha256": own["sha256"], "status": MATCHED})
                return [e["pem"] for e in self.trusted(address, port)]
            der = fetch()
            fp = fingerprint(der)
            pem = ssl.DER_cert_to_PEM_cert(der)
            self._pins[key] = {"sha256": fp, "pem": pem,
                               "first_seen": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
            self._save()
            self.seen[key] = {"sha256": fp, "status": FIRST_USE}
        self._say(f"TLS 首次联系 {key}，已固定证书 SHA256 {fp} / first contact with {key}: pinned its certificate "
                  f"SHA256 {fp}" + (f" in {self.path}" if self.path else ""))
        return [e["pem"] for e in self.trusted(address, port)]

    def observe(self, address: str, port: int, fetch: Callable[[], bytes]) -> None:
        """``--ca-bundle`` / ``--insecure``: note what the address presents (once per run), never pin it."""
        key = pin_key(address, port)
        with self._lock:
            if key in self.seen:
                return
            self.seen[key] = {"sha256": None, "status": OBSERVED}
        try:
            fp = fingerprint(fetch())
        except httpx.TransportError:
            with self._lock:
                self.seen.pop(key, None)           # try again on the next request
            return
        with self._lock:
            self.seen[key] = {"sha256": fp, "status": OBSERVED}

    def _say(self, text: str) -> None:
        log.info("%s", text)
        if self.notify is not None:
            try:
                self.notify(text)
            except Exception:                   # noqa: BLE001 - a note must never break a connection
                log.debug("pin notification failed", exc_info=True)


def _verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind an httpx error, if that is what it is."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class TlsTransport(httpx.BaseTransport):
    """The transport of one client: requests go through the address map (:class:`GuardedTransport`); HTTPS goes
    through a pool per ``(address, port)`` whose SSLContext the TLS mode gives (pinned certificates by default).

    A certificate verification failure becomes :class:`TlsError` (terminal) with the cause and the next action;
    in the pinning mode with the pinned and the presented fingerprints."""

    def __init__(self, amap: AddressMap, mode, *, connect_timeout: float = 10.0):
        self.amap, self.mode, self.connect_timeout = amap, mode, connect_timeout
        self._lock = threading.Lock()
        self._shared = GuardedTransport(amap, httpx.HTTPTransport(verify=mode.shared_verify))
        self._pinned: dict[tuple[str, int], tuple[tuple[str, ...], httpx.BaseTransport]] = {}

    def _fetch(self, address: str, port: int) -> Callable[[], bytes]:
        return lambda: fetch_certificate(self.amap, address, port, self.connect_timeout)

    def _transport(self, address: str, port: int) -> httpx.BaseTransport:
        pins = self.mode.pins
        if not self.mode.pinning:
            if pins is not None:
                pins.observe(address, port, self._fetch(address, port))
            return self._shared
        pems = tuple(pins.ensure(address, port, self._fetch(address, port)))
        with self._lock:
            have = self._pinned.get((address, port))
            if have is not None and have[0] == pems:
                return have[1]
            inner = GuardedTransport(self.amap, httpx.HTTPTransport(verify=pinned_context(pems)))
            self._pinned[(address, port)] = (pems, inner)
        if have is not None:
            have[1].close()
        return inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "https":
            return self._shared.handle_request(request)
        address, port = url.host, url.port or 443
        transport = self._transport(address, port)
        try:
            return transport.handle_request(request)
        except httpx.TransportError as exc:
            cause = _verification_error(exc)
            if cause is None:
                raise
            raise self._tls_error(address, port, cause) from exc

    def _tls_error(self, address: str, port: int, cause: ssl.SSLCertVerificationError) -> TlsError:
        reason = getattr(cause, "verify_message", None) or str(cause)
        mode = self.mode
        if not mode.pinning:
            return TlsError(address, port, (
                f"TLS 证书校验失败 / TLS certificate verification failed for {address}:{port}: {reason}"
                f" ({mode.describe()})\n"
                f"下一步 / next: 用 --ca-bundle 指定签发该证书的 CA；设备使用自签名证书时去掉 --ca-bundle 以首次信任并"
                f"固定 / pass the CA that signed it with --ca-bundle; for the self-signed certificates SMTX OS and "
                f"CloudTower ship, leave --ca-bundle out (trust on first use)"))
        key = pin_key(address, port)
        pinned = [e["sha256"] for e in mode.pins.trusted(address, port)]
        try:
            presented = fingerprint(fetch_certificate(self.amap, address, port, self.connect_timeout))
        except httpx.TransportError as exc:
            presented = f"(无法再次获取 / could not fetch it again: {exc})"
        where = mode.pins.path or "tls_pins.json"
        if presented in pinned:
            return TlsError(address, port, (
                f"TLS 证书与固定的一致但校验失败 / TLS verification of {address}:{port} failed although it presents "
                f"its pinned certificate SHA256 {presented}: {reason}\n"
                f"下一步 / next: 检查该证书（密钥长度、签名算法）或用 --ca-bundle / --insecure 明确指定 / check the "
                f"certificate (key size, signature algorithm), or choose --ca-bundle or --insecure explicitly"),
                pinned=pinned, presented=presented)
        own = (mode.pins.get(key) or {}).get("sha256") or "-"
        others = [p for p in pinned if p != own]
        also = f" (或本集群其他地址的 / or one of this cluster's: {', '.join(others)})" if others else ""
        return TlsError(address, port, (
            f"TLS 证书已变更 / TLS certificate CHANGED for {address}:{port}: 固定的 / pinned SHA256 {own}, "
            f"现在出示 / now presents SHA256 {presented}{also}\n"
            f"固定记录 / pinned in: {where} (key {key!r})\n"
            f"下一步 / next: 在该设备本机核对新证书指纹（openssl x509 -noout -fingerprint -sha256）。若确因重装或更换证书而变更，"
            f"从 {where} 删除 {key!r} 条目后重跑；否则该地址上可能是另一台机器或中间人，停止并排查 / on the machine itself, "
            f"check the new certificate's fingerprint (openssl x509 -noout -fingerprint -sha256). If it changed "
            f"legitimately (reinstall, new certificate), delete the {key!r} entry from {where} and rerun; otherwise "
            f"something else answers on this address: stop and investigate"), pinned=pinned, presented=presented)

    def close(self) -> None:
        self._shared.close()
        with self._lock:
            pinned, self._pinned = list(self._pinned.values()), {}
        for _, t in pinned:
            t.close()
