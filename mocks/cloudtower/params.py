"""Shape checks for REST bodies of the stage-06 calls (views, graphs, topology): SDK ``*Params`` -> values.

Every helper raises :class:`RestError` 400 naming the item (``[i].field``), as CloudTower's request
validation answers a body its OpenAPI schema refuses.
"""
from __future__ import annotations

from typing import Any

from .errors import RestError


def obj(at: str, it: Any, allowed: set[str], params: str) -> dict:
    if not isinstance(it, dict):
        raise RestError(400, f"{at} must be an object ({params})")
    unknown = set(it) - allowed
    if unknown:
        raise RestError(400, f"{at}: unknown field(s) {sorted(unknown)} for {params} (allowed: {sorted(allowed)})")
    return it


def text(at: str, it: dict, key: str, *, required: bool = True) -> str | None:
    v = it.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise RestError(400, f"{at}.{key} is required (a non-empty string)" if v is None else
                        f"{at}.{key} must be a non-empty string, got {v!r}")
    return v


def integer(at: str, it: dict, key: str, *, required: bool = True, minimum: int | None = None,
            lenient: bool = False) -> int | None:
    """An integer field; ``lenient``: a string of digits is taken too (the dashboard script sends
    ``metric_count: "5"``)."""
    v = it.get(key)
    if v is None:
        if required:
            raise RestError(400, f"{at}.{key} is required (an integer)")
        return None
    if lenient and isinstance(v, str) and v.strip().isdigit():
        v = int(v.strip())
    if isinstance(v, bool) or not isinstance(v, int):
        raise RestError(400, f"{at}.{key} must be an integer, got {v!r}")
    if minimum is not None and v < minimum:
        raise RestError(400, f"{at}.{key} must be >= {minimum}, got {v}")
    return v


def choice(at: str, it: dict, key: str, allowed: tuple[str, ...], *, required: bool = True,
           default: str | None = None) -> str | None:
    v = it.get(key)
    if v is None:
        if required:
            raise RestError(400, f"{at}.{key} is required (one of {', '.join(allowed)})")
        return default
    if v not in allowed:
        raise RestError(400, f"{at}.{key} must be one of {', '.join(allowed)}, got {v!r}")
    return v


def strings(at: str, it: dict, key: str, *, required: bool = True) -> list[str]:
    v = it.get(key)
    if v is None:
        if required:
            raise RestError(400, f"{at}.{key} is required (a list of ids)")
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise RestError(400, f"{at}.{key} must be a list of strings, got {v!r}")
    return list(v)


def where_of(at: str, body: Any, allowed: set[str], params: str) -> tuple[dict, dict]:
    """``{where, data?}`` of an update / delete / move call -> ``(where, data)``."""
    b = obj(at, body, allowed, params)
    where = b.get("where")
    if not isinstance(where, dict):
        raise RestError(400, f"{at}.where is required (an object)")
    data = b.get("data")
    if "data" in allowed and data is not None and not isinstance(data, dict):
        raise RestError(400, f"{at}.data must be an object")
    return where, data or {}


def position(at: str, v: Any) -> tuple[int, int] | None:
    """``{row, column}`` (both integers >= 1) or None."""
    if v is None:
        return None
    p = obj(at, v, {"row", "column"}, "Position")
    row, col = integer(at, p, "row", minimum=1), integer(at, p, "column", minimum=1)
    return row, col
