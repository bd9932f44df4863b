"""Fault injection rules: :class:`FaultRule` (one declarative rule) and :class:`Faults` (the table,
with hit counters), plus the patterns they (and the request log) select with: :func:`match_path`,
:func:`match_address`, :func:`match_method`.

The rules are only *chosen* here; the dispatcher (:mod:`mocks.http`) applies them to HTTP and UDP
requests, and the SSH family applies its own (``Faults.match(..., explicit=True)``).
"""
from __future__ import annotations

import fnmatch
import itertools
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger("mocks")

__all__ = ["ACTION_KEYS", "RULE_KEYS", "FaultRule", "Faults", "match_address", "match_method", "match_path",
           "parse_rules", "usage_error"]


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


def match_method(pattern: str | None, method: str) -> bool:
    if pattern is None or pattern == "*":
        return True
    return method.upper() in {m.strip().upper() for m in pattern.split("|")}


# --------------------------------------------------------------------------- rules
RULE_KEYS = frozenset({"id", "comment", "method", "path", "address", "port", "operation_name", "nth", "times",
                       "action"})
ACTION_KEYS = frozenset({"status", "body", "headers", "envelope_error", "msg", "delay", "drop", "drop_after",
                         "operation", "stage", "tls"})
_ACTION_KINDS = ("status", "envelope_error", "delay", "drop", "drop_after", "operation", "tls")


def _split_action(raw: dict) -> dict:
    """Pop the action out of ``raw`` (nested ``action`` object, or the flat form: action keys beside
    the selectors) and check both key sets."""
    if "action" in raw:
        action = raw.pop("action")
        if not isinstance(action, dict):
            raise ValueError("fault rule 'action' must be an object")
        action = dict(action)
    else:
        action = {k: raw.pop(k) for k in list(raw) if k in ACTION_KEYS}
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise ValueError(f"fault rule: unknown key(s) {sorted(unknown)}; allowed {sorted(RULE_KEYS)}")
    bad = set(action) - ACTION_KEYS
    if bad:
        raise ValueError(f"fault action: unknown key(s) {sorted(bad)}; allowed {sorted(ACTION_KEYS)}")
    return action


def _check_action(action: dict) -> None:
    if not any(k in action for k in _ACTION_KINDS):
        raise ValueError("fault action needs one of status, envelope_error, delay, drop, drop_after, operation, tls")
    if "tls" in action and action["tls"] != "rotated":
        raise ValueError(f"fault action tls must be 'rotated', got {action['tls']!r}")
    if "status" in action and not (isinstance(action["status"], int) and 100 <= action["status"] <= 599):
        raise ValueError(f"fault action status must be an HTTP status code, got {action['status']!r}")
    if "delay" in action and not (isinstance(action["delay"], (int, float)) and action["delay"] >= 0):
        raise ValueError(f"fault action delay must be seconds >= 0, got {action['delay']!r}")
    if "drop" in action and action["drop"] is not True:
        raise ValueError("fault action drop must be true")
    if "drop_after" in action and action["drop_after"] is not True:
        raise ValueError("fault action drop_after must be true")
    if "operation" in action and action["operation"] not in ("stuck", "fail"):
        raise ValueError(f"fault action operation must be 'stuck' or 'fail', got {action['operation']!r}")
    if "envelope_error" in action and not isinstance(action["envelope_error"], str):
        raise ValueError("fault action envelope_error must be an error code string such as 'EINTERNAL'")


def _check_selectors(raw: dict) -> None:
    for k in ("nth", "times"):
        v = raw.get(k)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise ValueError(f"fault rule {k} must be an integer >= 1, got {v!r}")
    port = raw.get("port")
    if port is not None and not isinstance(port, int):
        raise ValueError(f"fault rule port must be an integer, got {port!r}")
    for k in ("path", "method", "address", "operation_name"):
        v = raw.get(k)
        if v is not None and not isinstance(v, str):
            raise ValueError(f"fault rule {k} must be a string, got {v!r}")
    path = raw.get("path")
    if isinstance(path, str) and (path.startswith("^") or path.startswith("re:")):
        try:
            re.compile(path[3:] if path.startswith("re:") else path)
        except re.error as exc:
            raise ValueError(f"fault rule path is not a valid regular expression: {path!r} ({exc})") from None


@dataclass
class FaultRule:
    """One declarative fault. See :class:`Faults` for the schema."""

    action: dict
    method: str | None = None
    path: str | None = None
    address: str | None = None
    port: int | None = None
    operation_name: str | None = None   # GraphQL: the body's operationName (glob); a request without one never matches
    nth: int | None = None
    times: int | None = None
    id: str = ""
    comment: str | None = None
    matches: int = 0          # requests that matched method/path/address/port
    hits: int = 0             # times the action fired

    def selects(self, method: str, path: str, address: str, port: int | None,
                operation_name: str | None = None) -> bool:
        return (match_method(self.method, method) and match_path(self.path, path)
                and match_address(self.address, address)
                and (self.port is None or port is None or int(self.port) == int(port))
                and (self.operation_name is None
                     or (operation_name is not None and fnmatch.fnmatchcase(operation_name, self.operation_name))))

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
             "port": self.port, "operation_name": self.operation_name, "nth": self.nth, "times": self.times, "action": dict(self.action),
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
        action = _split_action(raw)
        _check_action(action)
        _check_selectors(raw)
        return cls(action=action, method=raw.get("method"), path=raw.get("path"), address=raw.get("address"),
                   port=raw.get("port"), operation_name=raw.get("operation_name"), nth=raw.get("nth"), times=raw.get("times"), id=str(raw.get("id") or ""),
                   comment=raw.get("comment"))


def parse_rules(source: str | os.PathLike | list | dict) -> list[FaultRule]:
    """The rules of a list/dict, a JSON text, or a path to a JSON file (a list of rules, a single rule, or
    ``{"rules": [...]}``), all checked. A bad one raises ValueError naming the rule (number and id) and
    the field."""
    data: Any = source
    if isinstance(source, (str, os.PathLike)):
        text = str(source).strip()
        try:
            if text.startswith("[") or text.startswith("{"):
                data = json.loads(text)
            else:
                data = json.loads(Path(text).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"fault rules are not valid JSON ({exc})") from None
        except OSError as exc:
            raise ValueError(f"fault rules: neither JSON nor a readable file: {text[:80]!r} ({exc.strerror})") \
                from None
    if isinstance(data, dict) and "rules" in data and set(data) <= {"rules", "comment"}:
        data = data["rules"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError("fault rules must be a list of rule objects")
    out = []
    for i, raw in enumerate(data, 1):
        try:
            out.append(FaultRule.parse(raw))
        except ValueError as exc:
            rid = raw.get("id") if isinstance(raw, dict) else None
            raise ValueError(f"fault rule #{i}{f' ({rid})' if rid else ''}: {exc}") from None
    return out


def usage_error(var: str = "SMTX_SIM_FAULTS") -> str | None:
    """One line for a run to refuse with when ``var`` holds a bad fault rule (None when it is fine or unset)."""
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    try:
        parse_rules(value)
    except ValueError as exc:
        return f"模拟器故障规则无效 / invalid simulator fault rule in {var}: {exc}"
    return None


class Faults:
    """The fault-rule table.

    Rule schema (JSON)::

        {"id": "optional-name",
         "method": "POST",                       # optional; "*" or "GET|POST"; UDP services use "DNS" / "NTP"
         "path": "/api/v2/deployment/cluster",   # optional; glob, or regex when it starts with ^ or re:
         "address": "10.0.20.11",                # optional; simulated address (glob allowed)
         "port": 443,                            # optional; simulated port
         "operation_name": "updateClusterSettings",  # optional; GraphQL operationName of the body (glob)
         "nth": 2,                               # optional; fire on the 2nd matching call only
         "times": 3,                             # optional; fire at most 3 times (with nth: calls nth..nth+times-1)
         "action": {...}}                        # what to do (the action keys may also sit at top level)

    Actions (keys can be combined; ``delay`` runs first):
    ``{"status": 503, "body": ...}`` plain HTTP error (body: object -> JSON, string -> text;
    default an error envelope), ``{"envelope_error": "EXXX", "status": 500, "msg": "..."}``,
    ``{"delay": 2.5}`` real seconds before handling normally, ``{"drop": true}`` close the
    connection without a response, ``{"drop_after": true}`` handle the request normally (its effects happen) and
    then close the connection without the answer (a timeout where the server completed),
    ``{"operation": "stuck" | "fail", "msg": ..., "stage": n}``
    the long operation started by the call never finishes / ends failed.
    ``{"method": "TLS", "address": ..., "tls": "rotated"}`` (TLS handshakes only: ``method`` must say ``TLS``):
    the connections it fires on get another certificate (the address's next generation, as after a reinstall).

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
        rules = parse_rules(source)
        return self.extend(rules)

    def load_env(self, var: str = "SMTX_SIM_FAULTS") -> list[FaultRule]:
        value = os.environ.get(var, "").strip()
        if not value:
            return []
        try:
            rules = parse_rules(value)
        except ValueError as exc:
            raise ValueError(f"{var}: {exc}") from None
        return self.extend(rules)

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
    def wants_operation_name(self) -> bool:
        """Whether a rule selects on the GraphQL ``operationName`` (the dispatcher then reads it from the body)."""
        with self._lock:
            return any(r.operation_name is not None for r in self._rules)

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def match(self, method: str, path: str, address: str, port: int | None = None, *,
              explicit: bool = False, operation_name: str | None = None) -> FaultRule | None:
        """Count the call against every selecting rule; return the rule that fires, if any.

        ``explicit``: only rules whose ``method`` names this method apply (SSH commands, the installer):
        a rule with no method, or ``*``, is meant for HTTP and is neither counted nor fired here."""
        chosen = None
        with self._lock:
            for r in self._rules:
                if explicit and method.upper() not in {m.strip().upper() for m in (r.method or "").split("|")}:
                    continue
                if not r.selects(method, path, address, port, operation_name):
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
