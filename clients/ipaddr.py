"""IP address parsing shared by plan/, clients/ and mocks/ (standard library only)."""
from __future__ import annotations

import ipaddress
from typing import Any


def ipv4(v: Any, *, strip: bool = True) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``v`` spells (a string; surrounding blanks allowed unless ``strip=False``), else None."""
    if not isinstance(v, str):
        return None
    try:
        return ipaddress.IPv4Address(v.strip() if strip else v)
    except ValueError:
        return None


def is_ip(v: Any, *, strip: bool = True) -> bool:
    """``v`` is a string spelling an IPv4 or IPv6 address (surrounding blanks allowed unless ``strip=False``)."""
    if not isinstance(v, str):
        return False
    try:
        ipaddress.ip_address(v.strip() if strip else v)
        return True
    except ValueError:
        return False
