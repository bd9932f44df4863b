"""A small declarative schema for JSON payloads: value tests, :class:`Field` rules (a dotted path, a
test, a message; optional ``when`` and ``fatal``), :class:`Check` (a semantic function) and
:func:`apply`, which runs a table of them over one object in order and collects the messages.

Messages are ``str.format`` templates with ``{where}`` (the object's label), ``{value}`` (the value
at the path; :data:`MISSING` when absent) and ``{path}``.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from clients import ipaddr

from .hosts import SimHost

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


# --------------------------------------------------------------------------- value tests
class _Missing:
    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def ipv4(v: Any) -> str | None:
    """The address as written (no blanks around it), else None."""
    a = ipaddr.ipv4(v, strip=False)
    return str(a) if a else None


def is_ip(v: Any) -> bool:
    return ipaddr.is_ip(v, strip=False)


def netmask_ok(v: Any) -> bool:
    try:
        ipaddress.IPv4Network(f"0.0.0.0/{v}")
        return isinstance(v, str)
    except ValueError:
        return False


def is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def is_str(v: Any) -> bool:
    return isinstance(v, str)


def is_list(v: Any) -> bool:
    return isinstance(v, list)


def truthy_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def nonblank_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def nonempty_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v)


def one_of(*choices: Any) -> Callable[[Any], bool]:
    return lambda v: v is not MISSING and v in choices


def list_of(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and all(test(x) for x in v)


def absent_or(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """The key may be left out; when given, the value must pass ``test``."""
    return lambda v: v is MISSING or test(v)


def null_or(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Left out, ``null`` or a value passing ``test``."""
    return lambda v: v is MISSING or v is None or test(v)


def iso_time(v: Any) -> bool:
    return isinstance(v, str) and bool(_ISO_TIME.match(v))


def hostname(v: Any) -> bool:
    return isinstance(v, str) and bool(_HOSTNAME.match(v))


def vlan_ids(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, int) and 0 <= x <= 4094 for x in v)


def passwords_for(*users: str) -> Callable[[Any], bool]:
    def test(v: Any) -> bool:
        have = {x.get("user") for x in v if isinstance(x, dict) and isinstance(x.get("password"), str)
                and x.get("password") and isinstance(x.get("user"), str)} if isinstance(v, list) else set()
        return set(users) <= have
    return test


def value_at(obj: Any, path: str) -> Any:
    """``obj`` at a dotted ``path`` ("" is ``obj``); :data:`MISSING` when a step is not an object / key."""
    for key in filter(None, path.split(".")):
        if not isinstance(obj, dict) or key not in obj:
            return MISSING
        obj = obj[key]
    return obj


# --------------------------------------------------------------------------- rules
@dataclass
class Subject:
    """One object being checked: the payload, a host entry, a vds, a network."""

    obj: Any
    where: str                             # message prefix, e.g. "hosts[1] (10.0.20.12)" or "vds mgt-vds"
    host: SimHost | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Field:
    path: str
    test: Callable[[Any], bool]
    message: str                           # str.format: {where}, {value}, {path}
    when: Callable[[Any], bool] | None = None
    fatal: bool = False

    def errors(self, s: Subject, run: Any) -> list[str]:
        if self.when is not None and not self.when(s.obj):
            return []
        v = value_at(s.obj, self.path)
        return [] if self.test(v) else [self.message.format(where=s.where, value=v, path=self.path)]


@dataclass(frozen=True)
class Check:
    fn: Callable[[Subject, Any], list[str]]
    fatal: bool = False

    def errors(self, s: Subject, run: Any) -> list[str]:
        return self.fn(s, run)


Rule = Field | Check


def apply(rules: Iterable[Rule], s: Subject, run: Any) -> tuple[list[str], bool]:
    """Every rule's errors, in order; ``(errors, stopped)`` -- a failing fatal rule stops."""
    errs: list[str] = []
    for r in rules:
        got = r.errors(s, run)
        errs.extend(got)
        if got and r.fatal:
            return errs, True
    return errs, False


def required(keys: tuple[str, ...], message: str) -> Check:
    return Check(lambda s, run: [message.format(where=s.where, key=k) for k in keys if k not in s.obj], fatal=True)
