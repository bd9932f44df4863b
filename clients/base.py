"""Shared plumbing of every API client: address map, auth, timeouts, retry, evidence, errors."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from .addressing import CURRENT_STEP, AddressMap, UnroutableAddress
from .redact import REDACTOR
from .tls import PinStore, TlsError, TlsTransport

log = logging.getLogger("smtx.http")
EXCERPT = 2000
TRANSIENT_STATUS = {502, 503, 504}
IDEMPOTENT = {"GET", "HEAD", "OPTIONS"}

# What a request is, for the retry policy: the client that knows the API says so (a GET is a read; so are
# CloudTower's get-* REST POSTs and GraphQL queries), the default is a mutation.
READ = "read"              # changes nothing: retried on transport errors, 502/503/504 and 500
IDEMPOTENT_WRITE = "idempotent"  # the same write again is harmless (PUT a setting): transport errors, 502/503/504
MUTATION = "mutation"      # never retried blindly
KINDS = (READ, IDEMPOTENT_WRITE, MUTATION)


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy of every client: which request is retried on what, how often, how long apart."""

    attempts: int = 3          # the small budget: at most 3 tries of a request
    backoff: float = 0.5       # seconds before the 2nd try, doubled for each further one

    RETRY_STATUS = {READ: TRANSIENT_STATUS | {500}, IDEMPOTENT_WRITE: TRANSIENT_STATUS, MUTATION: frozenset()}

    @staticmethod
    def kind_of(method: str, idempotent: bool | None = None, kind: str | None = None) -> str:
        if kind is not None:
            if kind not in KINDS:
                raise ValueError(f"request kind must be one of {KINDS}, got {kind!r}")
            return kind
        if idempotent is False:
            return MUTATION
        if method.upper() in IDEMPOTENT:
            return READ
        return IDEMPOTENT_WRITE if idempotent else MUTATION

    def attempts_for(self, kind: str) -> int:
        return 1 if kind == MUTATION else max(1, self.attempts)

    def retries_status(self, kind: str, status: int) -> bool:
        return status in self.RETRY_STATUS[kind]

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        return self.backoff * 2 ** (attempt - 1)


@dataclass(frozen=True)
class TlsMode:
    """How HTTPS peers are trusted: pinned on first use (``pins`` given, the default of a run), a customer CA
    (``ca_bundle``), or not at all (``verify=False``, ``--insecure``). Without pins, CA or ``--insecure``: the
    system CAs. See :mod:`clients.tls`."""

    verify: bool = True
    ca_bundle: str | None = None
    pins: PinStore | None = field(default=None, compare=False)

    @property
    def mode(self) -> str:
        if not self.verify:
            return "insecure"
        if self.ca_bundle:
            return "ca-bundle"
        return "pinned" if self.pins is not None else "system"

    @property
    def pinning(self) -> bool:
        return self.mode == "pinned"

    @property
    def shared_verify(self):
        """The verify= of every connection that is not pinned (plain HTTP, CA bundle, --insecure, system CAs)."""
        if not self.verify:
            return False
        if self.ca_bundle:
            import ssl

            return ssl.create_default_context(cafile=self.ca_bundle)
        return True


    def transport(self, amap: AddressMap) -> httpx.BaseTransport:
        """The transport an API client talks through: address map + this TLS mode (:class:`TlsTransport`)."""
        return TlsTransport(amap, self)

    def describe(self) -> str:
        mode = self.mode
        if mode == "insecure":
            return "不校验证书 (--insecure) / verification off (--insecure)"
        if mode == "ca-bundle":
            return f"按 CA 校验证书：{self.ca_bundle} / verified against the CA bundle {self.ca_bundle} (--ca-bundle)"
        if mode == "pinned":
            where = self.pins.path.name if self.pins.path else "(内存 / in memory)"
            return (f"首次信任并固定证书（{where}）/ trust on first use: each address's certificate pinned in {where}; "
                    f"a changed certificate stops the run")
        return "校验证书（系统 CA）/ verified against system CAs"


class ApiError(Exception):
    """A call failed: which call, what came back, what to do next."""

    def __init__(self, method: str, url: str, status: int | None, body: str, hint: str, ec: str | None = None):
        self.method, self.url, self.status, self.body, self.hint, self.ec = method, url, status, body, hint, ec
        got = f"HTTP {status}" if status is not None else "无响应 / no response"
        super().__init__(REDACTOR.text(
            f"调用失败 / call failed: {method} {url} → {got}{f' ec={ec}' if ec else ''}\n"
            f"返回内容 / response: {body[:EXCERPT] or '(空 / empty)'}\n"
            f"下一步 / next: {hint}"))


def _excerpt(content: Any) -> str:
    if content is None or content == b"" or content == "":
        return ""
    if isinstance(content, (bytes, bytearray)):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(content)} bytes binary>"
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    try:
        content = json.dumps(REDACTOR.obj(json.loads(content)), ensure_ascii=False)
    except (ValueError, TypeError):
        content = REDACTOR.text(content)
    return content if len(content) <= EXCERPT else content[:EXCERPT] + f"… (+{len(content) - EXCERPT} chars)"


class ApiClient:
    """One thin httpx client per API family derives from this."""

    family = "api"
    default_hint = "检查网络与服务状态后重试 / check connectivity and the service, then rerun"

    def __init__(self, base_url: str, *, amap: AddressMap, tls: TlsMode = TlsMode(), timeout: float = 30.0,
                 headers: dict | None = None, on_call: Callable[[dict], None] | None = None,
                 retries: int = 3, backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.amap = amap
        self.tls = tls
        self.on_call = on_call
        self.retry = RetryPolicy(attempts=retries, backoff=backoff)
        self.sleep = sleep
        self.http = httpx.Client(transport=tls.transport(amap), timeout=timeout,
                                 headers=headers or {}, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    def request(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None,
                files: Any = None, headers: dict | None = None, idempotent: bool | None = None,
                kind: str | None = None, timeout: float | None = None, hint: str | None = None) -> httpx.Response:
        """Send one request, retried per :class:`RetryPolicy`: ``kind`` (READ, IDEMPOTENT_WRITE, MUTATION) says
        what it is; without it a GET/HEAD/OPTIONS is a read, ``idempotent=True`` an idempotent write, else a
        mutation (never retried)."""
        method = method.upper()
        url = self.url(path)
        kind = self.retry.kind_of(method, idempotent, kind)
        attempts = self.retry.attempts_for(kind)
        last_exc: Exception | None = None
        for attempt in range(1, attempts + 1):
            start = time.perf_counter()
            record = {"step": CURRENT_STEP.get(), "family": self.family, "method": method, "url": url,
                      "params": REDACTOR.obj(params) if params else None,
                      "request": _excerpt(json_body) if json_body is not None else ("<multipart>" if files else ""),
                      "attempt": attempt}
            try:
                kw = {"timeout": timeout} if timeout is not None else {}
                resp = self.http.request(method, url, json=json_body, params=params, files=files,
                                         headers=headers, **kw)
            except UnroutableAddress:
                raise
            except TlsError as exc:                     # terminal: a retry or a poll cannot cure it
                record.update(status=None, duration_ms=round((time.perf_counter() - start) * 1000, 1),
                              error=f"TLS: {str(exc).splitlines()[0]}")
                self._emit(record)
                raise
            except httpx.TransportError as exc:
                last_exc = exc
                record.update(status=None, duration_ms=round((time.perf_counter() - start) * 1000, 1),
                              error=f"{type(exc).__name__}: {exc}")
                self._emit(record)
                if attempt < attempts:
                    self.sleep(self.retry.delay(attempt))
                    continue
                raise ApiError(method, url, None, f"{type(exc).__name__}: {exc}", hint or self.default_hint) from exc
            record.update(status=resp.status_code, duration_ms=round((time.perf_counter() - start) * 1000, 1),
                          response=_excerpt(resp.content))
            self._emit(record)
            if attempt < attempts and self.retry.retries_status(kind, resp.status_code):
                self.sleep(self.retry.delay(attempt))
                continue
            return resp
        raise AssertionError(last_exc)  # pragma: no cover - loop always returns or raises

    def _emit(self, record: dict) -> None:
        log.info("%s %s %s → %s (%.0f ms)", record["step"], record["method"], record["url"],
                 record.get("status") or record.get("error"), record.get("duration_ms", 0))
        if self.on_call is not None:
            self.on_call(record)

    def check(self, resp: httpx.Response, hint: str | None = None, ok: tuple[int, ...] = (200, 201, 202)) -> Any:
        """Raise ApiError unless the status is OK; return the parsed JSON body (or None)."""
        body = None
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            pass
        if resp.status_code not in ok:
            raise ApiError(resp.request.method, str(self.logical_url(resp)), resp.status_code,
                           _excerpt(resp.content), hint or self.hint_for(resp.status_code))
        return body

    def logical_url(self, resp: httpx.Response) -> str:
        req = resp.request
        host = req.headers.get("host")
        return str(req.url.copy_with(netloc=host.encode())) if host else str(req.url)

    def hint_for(self, status: int) -> str:
        if status == 401:
            return "认证失败：检查令牌/密码是否正确 / authentication failed: check the token or password"
        if status == 404:
            return "接口不存在：检查软件版本是否与指南一致 / endpoint not found: check the product version"
        return self.default_hint


class EnvelopeClient(ApiClient):
    """SMTX OS APIs answer {"data": …, "ec": "EOK", "error": {}}."""

    def call(self, method: str, path: str, *, hint: str | None = None, **kw) -> Any:
        resp = self.request(method, path, hint=hint, **kw)
        body = self.check(resp, hint)
        if not isinstance(body, dict) or "ec" not in body:
            raise ApiError(method, self.logical_url(resp), resp.status_code, _excerpt(resp.content),
                           "响应不是预期的 {data, ec, error} 结构 / unexpected response shape")
        if body.get("ec") != "EOK":
            raise ApiError(method, self.logical_url(resp), resp.status_code, _excerpt(resp.content),
                           hint or self.default_hint, ec=body.get("ec"))
        return body.get("data")
