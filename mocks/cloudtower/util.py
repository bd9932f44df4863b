"""Small helpers shared by the CloudTower models: ids, timestamps, digests, NTP server syntax."""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import ipaddress
import re
from typing import Any

PBKDF2_ITERATIONS = 20_000
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


def iso_ms(ts: float | None) -> str | None:
    """``2025-09-30T18:42:47.920Z`` (the API's DateTime)."""
    if ts is None:
        return None
    t = _dt.datetime.fromtimestamp(float(ts), tz=_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_datetime(v: Any) -> float | None:
    """UNIX seconds of an ISO 8601 DateTime, or None when ``v`` is not one."""
    if not isinstance(v, str) or not v.strip():
        return None
    s = v.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        t = _dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


def cuid(*parts: Any) -> str:
    """A deterministic cuid-looking id (``c`` + 24 base-36 characters) derived from ``parts``."""
    n = int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode("utf-8")).digest(), "big")
    out = []
    for _ in range(24):
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "c" + "".join(out)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def pbkdf2(password: str, salt: bytes, iterations: int = PBKDF2_ITERATIONS) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations).hex()


def is_ntp_server(s: str) -> bool:
    s = s.strip()
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(s)) and not s.replace(".", "").isdigit()
