"""CloudTower (Prisma-style) list arguments: ``where``, ``orderBy``, ``first``, ``skip``, ``last``.

Shared by the REST ``get-*`` calls and the GraphQL list fields (``organizations(first: 1)``).
Objects are the JSON views the API answers (plain dicts), so a filter can only name a field the
view has: an unknown field is an error (the real API rejects fields its schema lacks; the simulator
may lack a few real fields -- the error says so), never a silent "matches nothing".

``where`` keys (the SDK's ``*WhereInput``)::

    field                     equality; on a nested object (``cluster``, ``vds``, ``organization``) the value
                              is itself a where applied to that object
    field_not                 inequality
    field_in / field_not_in   membership (list)
    field_contains / _not_contains / _starts_with / _not_starts_with / _ends_with / _not_ends_with
    field_lt / _lte / _gt / _gte
    field_some / _every / _none   on list relations (``datacenters_some: {id: ...}``)
    AND / OR / NOT            list of wheres (a single where object is accepted too)

A nested view is short (``vds: {id, name}``) but the real API filters on the whole related object
(``get-vlans {where: {vds: {cluster: {id}}}}``): ``relations`` maps such a field to its objects by id, and a
where on the field is applied to the related object found there (the answer still shows the short view).
"""
from __future__ import annotations

from typing import Any, Iterable

_SUFFIXES = (  # longest first: "_not_in" before "_in" and "_not"
    "_not_starts_with", "_not_ends_with", "_not_contains", "_starts_with", "_ends_with", "_contains",
    "_not_in", "_every", "_some", "_none", "_not", "_lte", "_gte", "_in", "_lt", "_gt",
)


class FilterError(ValueError):
    """A ``where`` / ``orderBy`` / paging argument the API would reject (400 / BAD_USER_INPUT)."""


def _as_list(v: Any, key: str) -> list:
    if isinstance(v, dict):
        return [v]
    if isinstance(v, list) and all(isinstance(x, dict) for x in v):
        return v
    raise FilterError(f"where.{key} must be a list of where objects")


def _cmp_ok(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    num = (int, float)
    return (isinstance(a, num) and isinstance(b, num)) or (isinstance(a, str) and isinstance(b, str))


_LOGIC = {"AND": all, "OR": any, "NOT": lambda hits: not any(hits)}


Relations = dict[str, dict[str, dict]]     # field -> {id: the related object's full view}


def matches(obj: dict, where: Any, *, typename: str = "object", relations: Relations | None = None) -> bool:
    """Whether ``obj`` (an API view) satisfies ``where`` (``relations``: see the module doc)."""
    if where is None:
        return True
    if not isinstance(where, dict):
        raise FilterError(f"where must be an object, got {type(where).__name__}")
    return all(_term(obj, key, want, typename, relations) for key, want in where.items())


def _term(obj: dict, key: str, want: Any, typename: str, relations: Relations | None = None) -> bool:
    """One ``where`` entry: ``AND`` / ``OR`` / ``NOT``, a field's equality, or ``<field><suffix>``."""
    if key in _LOGIC:
        return _LOGIC[key](matches(obj, w, typename=typename, relations=relations) for w in _as_list(want, key))
    if key in obj:
        have = obj[key]
        if relations and key in relations and isinstance(have, dict) and isinstance(want, dict):
            have = relations[key].get(have.get("id"), have)     # the whole related object, not its short view
        return _equals(have, want, key)
    for suffix in _SUFFIXES:
        if key.endswith(suffix) and key[: -len(suffix)] in obj:
            return _op(obj[key[: -len(suffix)]], suffix, want, key)
    raise FilterError(f'where: "{key}" is not a filter of {typename} (the simulator\'s {typename} has '
                      f"fields {sorted(obj)})")


def _equals(have: Any, want: Any, key: str) -> bool:
    """``field: value``; on a nested object (``cluster: {id}``) the value is a where on that object."""
    if isinstance(have, list) and isinstance(want, dict):
        raise FilterError(f"where.{key}: {key} is a list relation; filter it with {key}_some / "
                          f"{key}_every / {key}_none")
    if isinstance(have, dict) and isinstance(want, dict):
        return matches(have, want, typename=key)
    if isinstance(want, dict):
        return have is None and not want          # a relation filter on an empty relation
    return have == want


def _op(have: Any, suffix: str, want: Any, key: str) -> bool:
    if suffix in ("_some", "_every", "_none"):
        if not isinstance(have, list):
            raise FilterError(f"where.{key}: {key[: -len(suffix)]} is not a list relation")
        hits = [matches(x, want, typename=key[: -len(suffix)]) for x in have if isinstance(x, dict)]
        return any(hits) if suffix == "_some" else all(hits) if suffix == "_every" else not any(hits)
    if suffix in ("_in", "_not_in"):
        if not isinstance(want, list):
            raise FilterError(f"where.{key} must be a list")
        return (have in want) == (suffix == "_in")
    if suffix == "_not":
        return have != want
    if suffix in ("_lt", "_lte", "_gt", "_gte"):
        if not _cmp_ok(have, want):
            return False
        return {"_lt": have < want, "_lte": have <= want, "_gt": have > want, "_gte": have >= want}[suffix]
    if not isinstance(want, str):
        raise FilterError(f"where.{key} must be a string")
    if not isinstance(have, str):
        return suffix.startswith("_not")
    base = suffix.replace("_not", "", 1)
    hit = {"_contains": want in have, "_starts_with": have.startswith(want),
           "_ends_with": have.endswith(want)}[base]
    return hit != suffix.startswith("_not_")


def _sort_key(v: Any):
    if v is None:
        return (0, 0, "")
    if isinstance(v, bool):
        return (1, int(v), "")
    if isinstance(v, (int, float)):
        return (1, v, "")
    return (2, 0, str(v))


def _int_arg(name: str, v: Any) -> int | None:
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise FilterError(f"{name} must be an integer >= 0, got {v!r}")
    return v


def select(items: Iterable[dict], args: dict | None, *, typename: str = "object",
           relations: Relations | None = None) -> list[dict]:
    """Apply ``where`` / ``orderBy`` / ``skip`` / ``first`` / ``last`` (in the API's order) to ``items``.

    ``after`` / ``before`` (cursor paging) are refused: the suite has no use for them yet."""
    args = args or {}
    if not isinstance(args, dict):
        raise FilterError("the request body must be a JSON object")
    for k in ("after", "before"):
        if args.get(k) is not None:
            raise FilterError(f"{k} (cursor paging) is not supported by the simulator; use skip/first")
    where = args.get("where")
    out = [o for o in items if matches(o, where, typename=typename, relations=relations)]
    order = args.get("orderBy", args.get("order_by"))
    if order is not None:
        if not isinstance(order, str) or not (order.endswith("_ASC") or order.endswith("_DESC")):
            raise FilterError(f"orderBy must look like <field>_ASC or <field>_DESC, got {order!r}")
        field, _, direction = order.rpartition("_")
        if out and field not in out[0]:
            raise FilterError(f'orderBy: "{field}" is not a field of {typename}')
        out.sort(key=lambda o: _sort_key(o.get(field)), reverse=direction == "DESC")
    skip = _int_arg("skip", args.get("skip")) or 0
    first = _int_arg("first", args.get("first"))
    last = _int_arg("last", args.get("last"))
    out = out[skip:]
    if first is not None:
        out = out[:first]
    if last is not None:
        out = out[-last:] if last else []
    return out
