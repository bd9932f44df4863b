"""The single redaction choke point.

Everything the suite writes (report, run.log, evidence, state.json, JUnit XML,
terminal failure text) passes through ``REDACTOR``. It masks:
- values under sensitive keys (password, token, authorization, cookie, …) in any mapping;
- every secret registered at run time (plan passwords, issued tokens) wherever it appears in text, in every
  encoding it can take in our outputs (:func:`encodings`): Python repr (either quote kind, ``ascii()``, bytes),
  JSON, URL (``quote``/``quote_plus``), HTML/XML, base64 (alone, or inside ``user:secret`` Basic auth), and
  one level of those nested (a repr of a JSON text, HTML of a repr, …);
- ``Authorization:``/``Cookie:``/token headers and ``"password": "…"`` pairs in free text (a quoted value
  runs to its closing quote, spaces and escaped quotes included).
"""
from __future__ import annotations

import base64
import functools
import itertools
import json
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "******"
_KEY = re.compile(r"pass(word|wd)?$|passwd|password|secret|token|authorization|cookie|credential|api[-_]?key",
                  re.IGNORECASE)
_KEY_NAME = (r'''(?P<k>(?:\\*["'])?[\w-]*(?:password|passwd|secret|token|cookie|authorization)[\w-]*'''
             r'''(?:\\*["'])?\s*[:=]\s*)''')
_TEXT_PATTERNS = [
    # "password": "a b\"c"  /  'token': 'x y'  (a quoted value runs to its closing quote, escapes included)
    re.compile(_KEY_NAME + r'''(?P<q>")(?P<v>(?:[^"\\\n]|\\.)*)(?P=q)''', re.IGNORECASE),
    re.compile(_KEY_NAME + r"""(?P<q>')(?P<v>(?:[^'\\\n]|\\.)*)(?P=q)""", re.IGNORECASE),
    # the same inside an escaped text (JSON in a JSON string, a repr of JSON): \"password\": \"x y\"
    re.compile(_KEY_NAME + r'''(?P<q>\\+["'])(?P<v>[^\n]*?)(?<!\\)(?P=q)''', re.IGNORECASE),
    # password=x  (unquoted: up to a space, comma, bracket or &)
    re.compile(_KEY_NAME + r'''(?P<q>)(?P<v>[^"'\s,}\]\[{&\\][^"'\s,}\]\[{&]*)''', re.IGNORECASE),
    re.compile(r"(?P<k>\b(?:authorization|cookie|set-cookie|x-smartx-token)\s*:\s*)(?P<q>)(?P<v>[^\r\n]+)",
               re.IGNORECASE),
    re.compile(r"(?P<k>\bbasic\s+)(?P<q>)(?P<v>[A-Za-z0-9+/=]{8,})", re.IGNORECASE),
]
_ANY_KEY = re.compile(r"password|passwd|secret|token|cookie|authorization|basic", re.IGNORECASE)
MIN_SECRET_LEN = 4
MIN_B64_CORE = 8     # base64 characters that depend on the secret alone, inside a longer base64 text


_NOT_SECRET = re.compile(r"^(?:-?\d+(?:\.\d+)?|true|false|null|none)$", re.IGNORECASE)


def _mask_match(m: re.Match) -> str:
    v = m.group("v")
    if v == MASK or not v or (not m.group("q") and _NOT_SECRET.match(v)):
        return m.group(0)  # already masked, or a count/flag such as "password_changes": 0
    return m.group("k") + m.group("q") + MASK + m.group("q")


# --- the encodings of one secret ---------------------------------------------------------------------------

def _py_escaped(s: str, quote_char: str, ascii_only: bool) -> str:
    """``s`` as it appears between ``quote_char`` quotes in a Python repr (``ascii()`` when ascii_only)."""
    out = []
    for ch in s:
        if ch == quote_char:
            out.append("\\" + ch)
        elif ch in "'\"":
            out.append(ch)
        else:
            out.append((ascii if ascii_only else repr)(ch)[1:-1])
    return "".join(out)


def _bytes_escaped(b: bytes, quote_char: str) -> str:
    """``b`` as it appears inside a bytes repr quoted with ``quote_char``."""
    out = []
    for byte in b:
        ch = chr(byte)
        out.append("\\" + ch if ch == quote_char else ch if ch in "'\"" else repr(bytes([byte]))[2:-1])
    return "".join(out)


def _html_forms(s: str) -> set[str]:
    base = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {base.replace("'", a).replace('"', q) for a in ("'", "&#x27;", "&#39;", "&apos;")
            for q in ('"', "&quot;", "&#34;")}


def _text_encodings(s: str) -> set[str]:
    """Encodings that can nest: repr (both quote kinds, ascii), JSON, HTML."""
    out = {_py_escaped(s, q, a) for q in "'\"" for a in (False, True)}
    out |= {json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1]}
    out |= _html_forms(s)
    return out


def _url_forms(s: str) -> set[str]:
    out = {quote(s, safe=""), quote(s), quote_plus(s), quote_plus(s, safe="/")}
    return out | {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), v) for v in out}


def _b64_forms(data: bytes) -> set[str]:
    """base64 of the secret alone, and the part of any longer base64 text (``user:secret``) that only the
    secret's bytes determine, at each of the three alignments."""
    full = base64.b64encode(data).decode()
    out = {full, full.rstrip("=")}
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data + b"\0\0").decode()
        core = enc[-(-8 * k // 6):(8 * (k + len(data))) // 6]
        if len(core) >= MIN_B64_CORE:
            out.add(core)
    return out | {v.replace("+", "-").replace("/", "_") for v in out}


def encodings(secret: str) -> set[str]:
    """Every form ``secret`` can take in our outputs (the secret itself included)."""
    level1 = {secret} | _text_encodings(secret)
    out = set(level1)
    for v in level1:
        out |= _text_encodings(v)
    out |= {_bytes_escaped(secret.encode("utf-8"), q) for q in "'\""}
    out |= _url_forms(secret)
    out |= _b64_forms(secret.encode("utf-8"))
    return {v for v in out if len(v) >= MIN_SECRET_LEN}


def _split_reprs(secret: str) -> list[str]:
    """Regular expressions for the repr of a secret that ``pprint`` (``pytest -vv -l``) split after a space
    inside a long string: ``'… P@ss '`` on one line and ``'w0rd …'`` on the next."""
    out = []
    for i, ch in enumerate(secret[:-1]):
        if ch.isspace() and not secret[i + 1].isspace():
            for q1, q2, a in itertools.product("'\"", "'\"", (False, True)):  # pprint reprs each piece alone
                out.append(re.escape(_py_escaped(secret[:i + 1], q1, a) + q1) + r"\s*"
                           + re.escape(q2 + _py_escaped(secret[i + 1:], q2, a)))
    return out


def _trie_pattern(words: set[str]) -> str:
    """One regular expression matching any of ``words``, longest first, as a trie (fast on many words)."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict) -> str:
        end = "" in node
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if end else body

    return build(trie)


@functools.lru_cache(maxsize=64)
def _secrets_pattern(secrets: frozenset[str]) -> re.Pattern:
    """One pattern for every encoding of every secret (cached: the simulator builds a Redactor per request)."""
    forms: set[str] = set()
    split: list[str] = []
    for s in sorted(secrets):
        forms |= encodings(s)
        split += _split_reprs(s)
    forms.discard(MASK)
    return re.compile("|".join([*split, _trie_pattern(forms)]))


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
                self._pattern = _secrets_pattern(frozenset(self._secrets))
            return self._pattern

    def text(self, s: Any) -> str:
        if s is None:
            return ""
        s = str(s)
        pat = self._compiled()
        if pat is not None:
            s = pat.sub(MASK, s)
        if _ANY_KEY.search(s):
            for p in _TEXT_PATTERNS:
                s = p.sub(_mask_match, s)
        return s

    def shows_secret(self, s: str) -> bool:
        """Whether ``s`` holds a registered secret in any of its encodings (what :meth:`text` would mask first)."""
        pat = self._compiled()
        return pat is not None and pat.search(s) is not None

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
