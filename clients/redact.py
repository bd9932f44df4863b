"""The single redaction choke point.

Everything the suite writes (report, run.log, evidence, state.json, JUnit XML,
terminal failure text) passes through ``REDACTOR``. It masks:
- values under sensitive keys (password, token, authorization, cookie, …) in any mapping;
- every secret registered at run time (plan passwords, issued tokens) wherever it appears in text;
- ``Authorization:``/``Cookie:``/token headers and ``"password": "…"`` pairs in free text.
"""
from __future__ import annotations

import re
import threading
from typing import Any

MASK = "******"
_KEY = re.compile(r"pass(word|wd)?$|passwd|password|secret|token|authorization|cookie|credential|api[-_]?key",
                  re.IGNORECASE)
_TEXT_PATTERNS = [
    # "password": "x"  /  'token': 'x'  / password=x
    re.compile(r'''(?P<k>["']?[\w-]*(?:password|passwd|secret|token|cookie|authorization)[\w-]*["']?\s*[:=]\s*)'''
               r'''(?P<q>["']?)(?P<v>[^"'\s,}\]\[{&]+)(?P=q)''', re.IGNORECASE),
    re.compile(r"(?P<k>\b(?:authorization|cookie|set-cookie|x-smartx-token)\s*:\s*)(?P<q>)(?P<v>[^\r\n]+)",
               re.IGNORECASE),
    re.compile(r"(?P<k>\bbasic\s+)(?P<q>)(?P<v>[A-Za-z0-9+/=]{8,})", re.IGNORECASE),
]
MIN_SECRET_LEN = 4


_NOT_SECRET = re.compile(r"^(?:-?\d+(?:\.\d+)?|true|false|null|none)$", re.IGNORECASE)


def _mask_match(m: re.Match) -> str:
    v = m.group("v")
    if v == MASK or (not m.group("q") and _NOT_SECRET.match(v)):
        return m.group(0)  # already masked, or a count/flag such as "password_changes": 0
    return m.group("k") + m.group("q") + MASK + m.group("q")


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern | None = None

    def add(self, *secrets: str | None) -> None:
        with self._lock:
            for s in secrets:
                if s and len(s) >= MIN_SECRET_LEN and s != MASK:
                    self._secrets.add(s)
            self._pattern = None

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def _compiled(self) -> re.Pattern | None:
        with self._lock:
            if self._pattern is None and self._secrets:
                alts = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in alts))
            return self._pattern

    def text(self, s: Any) -> str:
        if s is None:
            return ""
        s = str(s)
        pat = self._compiled()
        if pat is not None:
            s = pat.sub(MASK, s)
        for p in _TEXT_PATTERNS:
            s = p.sub(_mask_match, s)
        return s

    def obj(self, o: Any) -> Any:
        """A redacted deep copy of JSON-like data."""
        if isinstance(o, dict):
            return {k: (MASK if isinstance(k, str) and _KEY.search(k) and isinstance(v, (str, bytes)) and v
                        else self.obj(v)) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [self.obj(v) for v in o]
        if isinstance(o, str):
            return self.text(o)
        return o

    def headers(self, headers: Any) -> dict[str, str]:
        return {k: (MASK if _KEY.search(k) else self.text(v)) for k, v in dict(headers).items()}


REDACTOR = Redactor()


class RedactingFilter:
    """logging filter: redacts each record's final message."""

    def filter(self, record) -> bool:
        msg = record.getMessage()
        record.msg, record.args = REDACTOR.text(msg), None
        if record.exc_info and not record.exc_text:
            import logging

            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = REDACTOR.text(record.exc_text)
        return True
