"""CloudTower's GraphQL endpoint (``POST /api``), Apollo-style, for the operations the guide uses.

A small but real GraphQL front end: the ``query`` text is parsed (operations, variable definitions,
arguments, selection sets, fragments, aliases, ``@skip``/``@include``), variables are coerced
against their declared types, arguments against the simulator's schema, and the answer holds
exactly the fields the client selected. A field the schema lacks is a validation error, as on the
real server -- so a typo in a client's query fails here, not only on site.

Dispatch is on ``operationName`` (:data:`OPERATIONS`): an operation the simulator does not implement
is an error naming the ones it does. Each operation lists the root fields it may select and its
authentication rule. Adding one later: an entry in :data:`OPERATIONS`, its root field in
:data:`ROOT_FIELDS` (argument types, return type, resolver), and any new types in :data:`INPUT_TYPES`,
:data:`ENUMS` and :data:`OUTPUT_TYPES`.

Answers::

    200 {"data": {...}}                                       success
    200 {"errors": [{message, locations, path, extensions: {code}}], "data": null}   resolver error
    400 {"errors": [{message, locations?, extensions: {code}}]}   syntax (GRAPHQL_PARSE_FAILED), validation
                                                               (GRAPHQL_VALIDATION_FAILED), bad variables
                                                               (BAD_USER_INPUT), bad request (BAD_REQUEST)

Resolver error codes: ``UNAUTHENTICATED`` (no / bad ``Authorization``), ``ALREADY_EXISTS`` (root user
or organization name taken), ``BAD_USER_INPUT`` (a value the resolver rejects). The vendor's own codes
are not documented; these are stable for tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .filters import FilterError, select
from .models import CloudTowerModel, GqlError, RestError, Unauthenticated, parse_datetime


class GraphQLSyntaxError(Exception):
    def __init__(self, message: str, line: int, column: int):
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


class RequestError(Exception):
    """An error answered before execution: HTTP ``status`` with ``{"errors": [...]}``."""

    def __init__(self, message: str, code: str, status: int = 400, locations: list | None = None):
        super().__init__(message)
        self.message, self.code, self.status, self.locations = message, code, status, locations


# =========================================================================== lexer / parser
_TOKEN = re.compile(r"""
    (?P<ws>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[!$&()\:=@\[\]{|}])
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<float>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+))
  | (?P<int>-?(?:0|[1-9][0-9]*))
  | (?P<block>\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\")
  | (?P<string>"(?:[^"\\\n\r]|\\.)*")
""", re.X | re.S)


@dataclass
class Tok:
    kind: str
    value: str
    pos: int


def _line_col(src: str, pos: int) -> tuple[int, int]:
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1) + 1
    return line, col


def tokenize(src: str) -> list[Tok]:
    out, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            line, col = _line_col(src, pos)
            raise GraphQLSyntaxError(f"Syntax Error: Unexpected character: {src[pos]!r}.", line, col)
        kind = m.lastgroup
        if kind != "ws":
            out.append(Tok(kind, m.group(), pos))
        pos = m.end()
    out.append(Tok("eof", "", len(src)))
    return out


@dataclass
class Field:
    name: str
    alias: str | None
    args: dict[str, Any]
    directives: list[tuple[str, dict]]
    selections: list | None
    pos: int

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class Spread:
    name: str
    directives: list[tuple[str, dict]]
    pos: int


@dataclass
class Inline:
    type_cond: str | None
    directives: list[tuple[str, dict]]
    selections: list
    pos: int


@dataclass
class Operation:
    kind: str                           # query | mutation | subscription
    name: str | None
    var_defs: dict[str, tuple[str, Any, bool]]   # name -> (type, default node, has default)
    selections: list
    pos: int


@dataclass
class Document:
    operations: list[Operation] = field(default_factory=list)
    fragments: dict[str, tuple[str, list]] = field(default_factory=dict)   # name -> (type, selections)


class _Parser:
    def __init__(self, src: str):
        self.src = src
        self.toks = tokenize(src)
        self.i = 0

    # ---- primitives
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def fail(self, msg: str, tok: Tok | None = None):
        t = tok or self.tok
        line, col = _line_col(self.src, t.pos)
        shown = "<EOF>" if t.kind == "eof" else f'"{t.value}"'
        raise GraphQLSyntaxError(f"Syntax Error: {msg}, found {shown}.", line, col)

    def peek(self, value: str) -> bool:
        return self.tok.kind in ("punct", "spread") and self.tok.value == value

    def expect(self, value: str) -> Tok:
        if not self.peek(value):
            self.fail(f'Expected "{value}"')
        t = self.tok
        self.i += 1
        return t

    def name(self) -> str:
        if self.tok.kind != "name":
            self.fail("Expected Name")
        v = self.tok.value
        self.i += 1
        return v

    # ---- document
    def document(self) -> Document:
        doc = Document()
        if self.tok.kind == "eof":
            self.fail("Unexpected <EOF>")
        while self.tok.kind != "eof":
            if self.peek("{"):
                doc.operations.append(Operation("query", None, {}, self.selection_set(), self.tok.pos))
            elif self.tok.kind == "name" and self.tok.value in ("query", "mutation", "subscription"):
                pos = self.tok.pos
                kind = self.name()
                name = self.name() if self.tok.kind == "name" else None
                var_defs = self.variable_definitions() if self.peek("(") else {}
                self.directives()
                doc.operations.append(Operation(kind, name, var_defs, self.selection_set(), pos))
            elif self.tok.kind == "name" and self.tok.value == "fragment":
                self.i += 1
                fname = self.name()
                if self.name() != "on":
                    self.fail('Expected "on"', self.toks[self.i - 1])
                tcond = self.name()
                self.directives()
                doc.fragments[fname] = (tcond, self.selection_set())
            else:
                self.fail("Unexpected token")
        return doc

    def variable_definitions(self) -> dict:
        out = {}
        self.expect("(")
        while not self.peek(")"):
            self.expect("$")
            name = self.name()
            self.expect(":")
            typ = self.type_ref()
            default, has_default = None, False
            if self.peek("="):
                self.i += 1
                default, has_default = self.value(const=True), True
            self.directives()
            out[name] = (typ, default, has_default)
        self.expect(")")
        return out

    def type_ref(self) -> str:
        if self.peek("["):
            self.i += 1
            inner = self.type_ref()
            self.expect("]")
            t = f"[{inner}]"
        else:
            t = self.name()
        if self.peek("!"):
            self.i += 1
            t += "!"
        return t

    def directives(self) -> list[tuple[str, dict]]:
        out = []
        while self.peek("@"):
            self.i += 1
            out.append((self.name(), self.arguments() if self.peek("(") else {}))
        return out

    def arguments(self) -> dict:
        out = {}
        self.expect("(")
        while not self.peek(")"):
            k = self.name()
            self.expect(":")
            out[k] = self.value()
        self.expect(")")
        return out

    def value(self, const: bool = False):
        t = self.tok
        if t.kind == "punct" and t.value == "$":
            if const:
                self.fail("Unexpected variable in a constant value")
            self.i += 1
            return ("var", self.name())
        if t.kind == "punct" and t.value == "[":
            self.i += 1
            items = []
            while not self.peek("]"):
                items.append(self.value(const))
            self.i += 1
            return ("list", items)
        if t.kind == "punct" and t.value == "{":
            self.i += 1
            obj = {}
            while not self.peek("}"):
                k = self.name()
                self.expect(":")
                obj[k] = self.value(const)
            self.i += 1
            return ("obj", obj)
        self.i += 1
        if t.kind == "int":
            return ("lit", int(t.value))
        if t.kind == "float":
            return ("lit", float(t.value))
        if t.kind == "string":
            return ("lit", _unescape(t.value[1:-1]))
        if t.kind == "block":
            return ("lit", t.value[3:-3])
        if t.kind == "name":
            if t.value in ("true", "false"):
                return ("lit", t.value == "true")
            if t.value == "null":
                return ("lit", None)
            return ("enum", t.value)
        self.i -= 1
        self.fail("Unexpected token")

    def selection_set(self) -> list:
        self.expect("{")
        out = []
        while not self.peek("}"):
            pos = self.tok.pos
            if self.peek("..."):
                self.i += 1
                if self.tok.kind == "name" and self.tok.value == "on":
                    self.i += 1
                    tcond = self.name()
                    out.append(Inline(tcond, self.directives(), self.selection_set(), pos))
                elif self.peek("{") or self.peek("@"):
                    dirs = self.directives()
                    out.append(Inline(None, dirs, self.selection_set(), pos))
                else:
                    out.append(Spread(self.name(), self.directives(), pos))
                continue
            name = self.name()
            alias = None
            if self.peek(":"):
                self.i += 1
                alias, name = name, self.name()
            args = self.arguments() if self.peek("(") else {}
            dirs = self.directives()
            sels = self.selection_set() if self.peek("{") else None
            out.append(Field(name, alias, args, dirs, sels, pos))
        self.i += 1
        if not out:
            self.fail("Expected Name", self.toks[self.i - 1])
        return out


def _unescape(s: str) -> str:
    def rep(m: re.Match) -> str:
        e = m.group(1)
        if e.startswith("u"):
            return chr(int(e[1:], 16))
        return {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(e, e)
    return re.sub(r"\\(u[0-9A-Fa-f]{4}|.)", rep, s)


def parse(src: str) -> Document:
    return _Parser(src).document()


# =========================================================================== schema (the simulator's part)
SCALARS = {"String", "Int", "Float", "Boolean", "ID", "DateTime", "JSON"}
ENUMS: dict[str, tuple[str, ...]] = {
    "UserSource": ("AUTHN", "LDAP", "LOCAL", "SSO"),
    "UserRole": ("ADMIN", "GUEST", "OPERATOR", "READ_ONLY", "ROOT", "SUPER_ADMIN", "USER_ADMIN", "VM_ADMIN"),
    "MfaType": ("Mail", "SMS"),
}
# input object types: field -> type ("JSON": any value; where/orderBy inputs are checked by filters.py)
INPUT_TYPES: dict[str, dict[str, str]] = {
    "UserCreateInput": {"name": "String!", "source": "UserSource!", "role": "UserRole", "username": "String!",
                        "display_username": "String", "password": "String!", "password_recover_qa": "JSON",
                        "password_updated_at": "DateTime", "email_address": "String", "mobile_phone": "String",
                        "internal": "Boolean", "roles": "JSON"},
    "CreateUserEffect": {"encoded": "Boolean"},
    "OrganizationCreateInput": {"name": "String!", "datacenters": "JSON"},
    "NtpCommonUpdateInput": {"ntp_service_url": "String!"},
    "LoginInput": {"username": "String!", "password": "String!", "source": "UserSource",
                   "auth_config_id": "String", "mfa_type": "MfaType"},
    "LoginEffect": {"encoded": "Boolean"},
    "OrganizationWhereInput": {"*": "JSON"},
    "DeployWhereInput": {"*": "JSON"},
}
# orderBy enums (``<field>_ASC`` / ``<field>_DESC``; the field is checked by filters.py)
ORDER_BY_TYPES = {"OrganizationOrderByInput", "DeployOrderByInput"}
# output object types: field -> type name (scalars: any of SCALARS; [T] lists; nullable everywhere)
OUTPUT_TYPES: dict[str, dict[str, str]] = {
    "User": {"id": "ID", "name": "String", "username": "String", "display_username": "String", "role": "String",
             "source": "String", "password_updated_at": "DateTime"},
    "Organization": {"id": "ID", "name": "String", "datacenters": "[Datacenter]"},
    "Datacenter": {"id": "ID", "name": "String"},
    "UserCreatedData": {"created": "Boolean"},
    "UpdateNtpCommonResult": {"ntp_service_url": "String"},
    "Deploy": {"id": "ID", "license": "License"},
    "License": {k: "JSON" for k in ("id", "license_serial", "maintenance_end_date", "maintenance_start_date",
                                    "max_chunk_num", "max_cluster_num", "max_vm_num", "used_vm_num", "sign_date",
                                    "expire_date", "software_edition", "type", "vendor")},
    "Login": {"token": "String", "uid": "String", "need_mfa": "Boolean", "mfa_meta": "MfaMeta"},
    "MfaMeta": {"recipient": "String", "mid": "String", "type": "String", "valid": "Boolean"},
}
LIST_ARGS = {"where": "{T}WhereInput", "orderBy": "{T}OrderByInput", "skip": "Int", "first": "Int", "last": "Int",
             "after": "String", "before": "String"}


@dataclass
class Ctx:
    """What a resolver gets: the tower, the request's user (None when not authenticated) and the
    HTTP request (headers), plus response headers it may add (``Set-Cookie``)."""

    tower: CloudTowerModel
    user_id: str | None
    request: Any
    response_headers: dict[str, str] = field(default_factory=dict)


Resolver = Callable[[Ctx, dict], Any]


@dataclass
class RootField:
    kind: str                    # query | mutation
    args: dict[str, str]
    returns: str                 # output type, "[T]" for a list
    resolve: Resolver


def _list_args(t: str) -> dict[str, str]:
    return {k: v.replace("{T}", t) for k, v in LIST_ARGS.items()}


# ---- resolvers
def _create_user(ctx: Ctx, args: dict) -> dict:
    data = args["data"]
    encoded = bool((args.get("effect") or {}).get("encoded"))
    wrong = [f"{k} must be {want!r}, got {data.get(k)!r}" for k, want in
             (("username", "root"), ("name", "root"), ("role", "ROOT"), ("source", "LOCAL"))
             if data.get(k) != want and not (k == "role" and data.get(k) is None)]
    if wrong:
        raise GqlError("the simulator only creates the root user: " + "; ".join(wrong), "BAD_USER_INPUT")
    pw = data["password"]
    if encoded:
        clear = ctx.tower.decode_password(pw)
        if clear is None:
            raise GqlError("password: cannot decode the encoded password (the simulator knows the guide's fixed "
                           "encoded HC!r0cks only)", "BAD_USER_INPUT")
        pw = clear
    updated = data.get("password_updated_at")
    return ctx.tower.create_root(pw, parse_datetime(updated) if updated else ctx.tower.clock.wall())


def _create_organization(ctx: Ctx, args: dict) -> dict:
    org = ctx.tower.create_organization(args["data"]["name"])
    return ctx.tower.organization_view(org) | {"__typename": "Organization"}


def _organizations(ctx: Ctx, args: dict) -> list:
    items = [o | {"__typename": "Organization",
                  "datacenters": [d | {"__typename": "Datacenter"} for d in o["datacenters"]]}
             for o in ctx.tower.list_organizations()]
    return _select(items, args, "Organization")


def _select(items: list[dict], args: dict, typename: str) -> list[dict]:
    try:
        return select(items, args, typename=typename)
    except FilterError as exc:
        raise GqlError(str(exc), "BAD_USER_INPUT") from None


def _user_created(ctx: Ctx, args: dict) -> dict:
    return {"created": ctx.tower.root_created, "__typename": "UserCreatedData"}


def _update_ntp(ctx: Ctx, args: dict) -> dict:
    return {"ntp_service_url": ctx.tower.set_ntp(args["data"]["ntp_service_url"]),
            "__typename": "UpdateNtpCommonResult"}


def _deploys(ctx: Ctx, args: dict) -> list:
    return _select([ctx.tower.deploy_view()], args, "Deploy")


def _login(ctx: Ctx, args: dict) -> dict:
    data = args["data"]
    pw = data["password"]
    if (args.get("effect") or {}).get("encoded"):
        clear = ctx.tower.decode_password(pw)
        if clear is None:
            raise GqlError("invalid username or password", "UNAUTHENTICATED")
        pw = clear
    try:
        token = ctx.tower.login(data["username"], pw, data.get("source") or "LOCAL")
    except RestError as exc:
        raise GqlError(exc.message, "UNAUTHENTICATED") from None
    sid = ctx.tower._issue(ctx.tower.root["id"], "cookie")
    ctx.response_headers["Set-Cookie"] = f"connect.sid={sid}; Path=/; HttpOnly; Secure; SameSite=Strict"
    return {"token": token, "uid": None, "need_mfa": None, "mfa_meta": None, "__typename": "Login"}


ROOT_FIELDS: dict[str, RootField] = {
    "createUser": RootField("mutation", {"data": "UserCreateInput!", "effect": "CreateUserEffect"}, "User",
                            _create_user),
    "createOrganization": RootField("mutation", {"data": "OrganizationCreateInput!"}, "Organization",
                                    _create_organization),
    "organizations": RootField("query", _list_args("Organization"), "[Organization]", _organizations),
    "userCreated": RootField("query", {}, "UserCreatedData", _user_created),
    "updateCloudTowerNtpUrl": RootField("mutation", {"data": "NtpCommonUpdateInput!"}, "UpdateNtpCommonResult",
                                        _update_ntp),
    "deploys": RootField("query", _list_args("Deploy"), "[Deploy]", _deploys),
    "login": RootField("mutation", {"data": "LoginInput!", "effect": "LoginEffect"}, "Login", _login),
}

# auth: "none" | "token" (a valid Authorization / connect.sid) | "setup" (none while the tower has no
# organization yet -- the first-run wizard -- a token afterwards)
OPERATIONS: dict[str, dict] = {
    "createRootUser": {"kind": "mutation", "fields": {"createUser"}, "auth": "none"},
    "createOrganization": {"kind": "mutation", "fields": {"createOrganization"}, "auth": "setup"},
    "checkTowerIsSetup": {"kind": "query", "fields": {"organizations", "userCreated"}, "auth": "none"},
    "login": {"kind": "mutation", "fields": {"login"}, "auth": "none"},
    "updateCloudTowerNtpUrl": {"kind": "mutation", "fields": {"updateCloudTowerNtpUrl"}, "auth": "token"},
    "deployedLicense": {"kind": "query", "fields": {"deploys"}, "auth": "token"},
}


# =========================================================================== coercion
class _Invalid(Exception):
    pass


def _base(t: str) -> str:
    return t.rstrip("!").strip("[]").rstrip("!")


def _show(v: Any) -> str:
    import json
    return json.dumps(v, ensure_ascii=False)


def coerce(value: Any, typ: str, where: str) -> Any:
    """Coerce a JSON value (a variable or a resolved argument) to ``typ``; raises _Invalid."""
    if typ.endswith("!"):
        if value is None:
            raise _Invalid(f'{where}: expected non-nullable type "{typ}" not to be null.')
        return coerce(value, typ[:-1], where)
    if value is None:
        return None
    if typ.startswith("["):
        inner = typ[1:-1]
        items = value if isinstance(value, list) else [value]
        return [coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(items)]
    if typ in ("String", "ID"):
        if typ == "ID" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise _Invalid(f"{where}: {typ} cannot represent a non string value: {_show(value)}")
        return value
    if typ == "Int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(f"{where}: Int cannot represent non-integer value: {_show(value)}")
        return value
    if typ == "Float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _Invalid(f"{where}: Float cannot represent non numeric value: {_show(value)}")
        return value
    if typ == "Boolean":
        if not isinstance(value, bool):
            raise _Invalid(f"{where}: Boolean cannot represent a non boolean value: {_show(value)}")
        return value
    if typ == "DateTime":
        if parse_datetime(value) is None:
            raise _Invalid(f"{where}: DateTime cannot represent an invalid date-time-string {_show(value)}.")
        return value
    if typ == "JSON":
        return value
    if typ in ORDER_BY_TYPES:
        if not isinstance(value, str) or not re.match(r"^\w+_(ASC|DESC)$", value):
            raise _Invalid(f'{where}: Value {_show(value)} does not exist in "{typ}" enum.')
        return value
    if typ in ENUMS:
        if value not in ENUMS[typ]:
            raise _Invalid(f'{where}: Value {_show(value)} does not exist in "{typ}" enum.')
        return value
    if typ in INPUT_TYPES:
        spec = INPUT_TYPES[typ]
        if not isinstance(value, dict):
            raise _Invalid(f'{where}: Expected type "{typ}" to be an object.')
        if "*" in spec:
            return value
        out = {}
        for k in value:
            if k not in spec:
                raise _Invalid(f'{where}: Field "{k}" is not defined by type "{typ}".')
        for k, ft in spec.items():
            if k not in value:
                if ft.endswith("!"):
                    raise _Invalid(f'{where}: Field "{k}" of required type "{ft}" was not provided.')
                continue
            out[k] = coerce(value[k], ft, f"{where}.{k}")
        return out
    raise _Invalid(f'{where}: Unknown type "{typ}".')


def _known_type(t: str) -> bool:
    b = _base(t)
    return b in SCALARS or b in ENUMS or b in INPUT_TYPES or b in ORDER_BY_TYPES


def _resolve_node(node: Any, variables: dict) -> Any:
    kind, v = node
    if kind == "var":
        return variables.get(v)
    if kind == "list":
        return [_resolve_node(x, variables) for x in v]
    if kind == "obj":
        return {k: _resolve_node(x, variables) for k, x in v.items()}
    return v                                      # lit / enum


def _vars_in(node: Any) -> set[str]:
    kind, v = node
    if kind == "var":
        return {v}
    if kind == "list":
        return set().union(*(_vars_in(x) for x in v)) if v else set()
    if kind == "obj":
        return set().union(*(_vars_in(x) for x in v.values())) if v else set()
    return set()


# =========================================================================== execution
class _Executor:
    def __init__(self, src: str, doc: Document, op: Operation, variables: dict):
        self.src, self.doc, self.op, self.variables = src, doc, op, variables

    def loc(self, pos: int) -> list[dict]:
        line, col = _line_col(self.src, pos)
        return [{"line": line, "column": col}]

    def invalid(self, message: str, pos: int) -> RequestError:
        return RequestError(message, "GRAPHQL_VALIDATION_FAILED", 400, self.loc(pos))

    # ---- flatten fields (fragments, inline fragments, @skip / @include)
    def included(self, directives: list[tuple[str, dict]]) -> bool:
        for name, args in directives:
            if name in ("skip", "include"):
                node = args.get("if", ("lit", False))
                for v in _vars_in(node):
                    if v not in self.op.var_defs:
                        raise self.invalid(f'Variable "${v}" is not defined by operation "{self.op.name}".',
                                           self.op.pos)
                cond = _resolve_node(node, self.variables)
                if (name == "skip" and cond is True) or (name == "include" and cond is not True):
                    return False
        return True

    def fields(self, selections: list, typename: str, seen: frozenset = frozenset()) -> list[Field]:
        out: list[Field] = []
        for s in selections:
            if not self.included(s.directives):
                continue
            if isinstance(s, Field):
                out.append(s)
            elif isinstance(s, Inline):
                if s.type_cond in (None, typename):
                    out += self.fields(s.selections, typename, seen)
            else:
                if s.name in seen:
                    raise self.invalid(f'Cannot spread fragment "{s.name}" within itself.', s.pos)
                frag = self.doc.fragments.get(s.name)
                if frag is None:
                    raise self.invalid(f'Unknown fragment "{s.name}".', s.pos)
                if frag[0] == typename:
                    out += self.fields(frag[1], typename, seen | {s.name})
        return out

    # ---- validation of selections against OUTPUT_TYPES (before anything runs)
    def validate(self, selections: list | None, typ: str, pos: int, fname: str) -> None:
        base = typ.strip("[]")
        if base in OUTPUT_TYPES:
            if not selections:
                raise self.invalid(f'Field "{fname}" of type "{typ}" must have a selection of subfields. '
                                   f'Did you mean "{fname} {{ ... }}"?', pos)
            for f in self.fields(selections, base):
                if f.name == "__typename":
                    continue
                ftype = OUTPUT_TYPES[base].get(f.name)
                if ftype is None:
                    raise self.invalid(f'Cannot query field "{f.name}" on type "{base}".', f.pos)
                if f.args:
                    raise self.invalid(f'Unknown argument "{next(iter(f.args))}" on field "{base}.{f.name}".',
                                       f.pos)
                self.validate(f.selections, ftype, f.pos, f.name)
        elif selections:
            raise self.invalid(f'Field "{fname}" must not have a selection since type "{typ}" has no subfields.',
                               pos)

    # ---- projection of resolver output onto the selection
    def project(self, value: Any, selections: list | None, typ: str) -> Any:
        if value is None or selections is None:
            return value
        if isinstance(value, list):
            return [self.project(v, selections, typ.strip("[]")) for v in value]
        base = typ.strip("[]")
        out = {}
        for f in self.fields(selections, base):
            if f.name == "__typename":
                out[f.key] = value.get("__typename", base)
            else:
                out[f.key] = self.project(value.get(f.name), f.selections, OUTPUT_TYPES[base][f.name])
        return out


def _error(message: str, code: str, **extra) -> dict:
    return {"message": message, **extra, "extensions": {"code": code}}


def execute(tower: CloudTowerModel, body: Any, request: Any, *, auth_header: str | None,
            cookie_sid: str | None) -> tuple[int, dict, dict]:
    """Run one GraphQL request; returns ``(http status, body, extra response headers)``."""
    try:
        return _execute(tower, body, request, auth_header, cookie_sid)
    except RequestError as exc:
        err = {"message": exc.message}
        if exc.locations:
            err["locations"] = exc.locations
        err["extensions"] = {"code": exc.code}
        return exc.status, {"errors": [err]}, {}


def _execute(tower: CloudTowerModel, body: Any, request: Any, auth_header: str | None,
             cookie_sid: str | None) -> tuple[int, dict, dict]:
    if isinstance(body, list):
        raise RequestError("batched GraphQL requests are not supported by the simulator", "BAD_REQUEST")
    if not isinstance(body, dict):
        raise RequestError("POST body must be a JSON object {operationName, variables, query}", "BAD_REQUEST")
    src = body.get("query")
    if not isinstance(src, str) or not src.strip():
        raise RequestError("GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension.",
                           "BAD_REQUEST")
    variables = body.get("variables")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise RequestError("`variables` in a POST body should be an object.", "BAD_REQUEST")
    op_name = body.get("operationName")
    if op_name is not None and not isinstance(op_name, str):
        raise RequestError("`operationName` in a POST body should be a string.", "BAD_REQUEST")
    try:
        doc = parse(src)
    except GraphQLSyntaxError as exc:
        raise RequestError(exc.message, "GRAPHQL_PARSE_FAILED", 400,
                           [{"line": exc.line, "column": exc.column}]) from None
    if op_name is None:
        if len(doc.operations) != 1:
            raise RequestError("Must provide operation name if query contains multiple operations.",
                               "OPERATION_RESOLUTION_FAILURE")
        op = doc.operations[0]
    else:
        op = next((o for o in doc.operations if o.name == op_name), None)
        if op is None:
            raise RequestError(f'Unknown operation named "{op_name}".', "OPERATION_RESOLUTION_FAILURE")
    name = op.name or op_name
    spec = OPERATIONS.get(name or "")
    if spec is None:
        raise RequestError(f'the simulated CloudTower does not implement operation "{name}" (implemented: '
                           f'{", ".join(sorted(OPERATIONS))})', "GRAPHQL_VALIDATION_FAILED")
    ex = _Executor(src, doc, op, {})
    if op.kind != spec["kind"]:
        raise ex.invalid(f'operation "{name}" is a {spec["kind"]}, not a {op.kind}', op.pos)

    # ---- variable definitions and values
    for vname, (vtype, _d, _h) in op.var_defs.items():
        if not _known_type(vtype):
            raise ex.invalid(f'Unknown type "{_base(vtype)}".', op.pos)
        if _base(vtype) in OUTPUT_TYPES:
            raise ex.invalid(f'Variable "${vname}" cannot be non-input type "{vtype}".', op.pos)
    coerced = {}
    for vname, (vtype, default, has_default) in op.var_defs.items():
        if vname not in variables:
            if has_default:
                coerced[vname] = _resolve_node(default, {})
                continue
            if vtype.endswith("!"):
                raise RequestError(f'Variable "${vname}" of required type "{vtype}" was not provided.',
                                   "BAD_USER_INPUT", 400, ex.loc(op.pos))
            continue
        try:
            coerced[vname] = coerce(variables[vname], vtype, "value")
        except _Invalid as exc:
            raise RequestError(f'Variable "${vname}" got invalid value {_show(variables[vname])}; {exc}',
                               "BAD_USER_INPUT", 400, ex.loc(op.pos)) from None
    ex.variables = coerced

    # ---- root fields: allowed, validated, arguments coerced -- all before anything runs
    roots = ex.fields(op.selections, "Mutation" if op.kind == "mutation" else "Query")
    plan: list[tuple[Field, RootField, dict]] = []
    for f in roots:
        if f.name == "__typename":
            plan.append((f, None, {}))          # type: ignore[arg-type]
            continue
        rf = ROOT_FIELDS.get(f.name)
        if rf is None or rf.kind != op.kind:
            root_type = "Mutation" if op.kind == "mutation" else "Query"
            raise ex.invalid(f'Cannot query field "{f.name}" on type "{root_type}".', f.pos)
        if f.name not in spec["fields"]:
            raise ex.invalid(f'the simulated operation "{name}" serves only {sorted(spec["fields"])}, '
                             f'not "{f.name}"', f.pos)
        args = {}
        for aname, node in f.args.items():
            if aname not in rf.args:
                raise ex.invalid(f'Unknown argument "{aname}" on field "{f.name}".', f.pos)
            for v in _vars_in(node):
                if v not in op.var_defs:
                    raise ex.invalid(f'Variable "${v}" is not defined by operation "{name}".', f.pos)
            value = _resolve_node(node, coerced)
            try:
                args[aname] = coerce(value, rf.args[aname], "value")
            except _Invalid as exc:
                code = "BAD_USER_INPUT" if _vars_in(node) else "GRAPHQL_VALIDATION_FAILED"
                raise RequestError(f'Argument "{aname}" of field "{f.name}" has invalid value {_show(value)}; '
                                   f'{exc}', code, 400, ex.loc(f.pos)) from None
        for aname, atype in rf.args.items():
            if atype.endswith("!") and aname not in f.args:
                raise ex.invalid(f'Field "{f.name}" argument "{aname}" of type "{atype}" is required, but it was '
                                 f'not provided.', f.pos)
        ex.validate(f.selections, rf.returns, f.pos, f.name)
        plan.append((f, rf, args))

    # ---- authentication
    user_id = None
    auth_error = None
    try:
        if auth_header or cookie_sid:
            user_id = tower.authenticate(auth_header, cookie=cookie_sid)
    except Unauthenticated as exc:
        auth_error = str(exc)
    need = spec["auth"]
    if need == "setup":
        need = "token" if tower.organizations else "none"
    ctx = Ctx(tower, user_id, request)
    if need == "token" and user_id is None:
        msg = auth_error or "missing Authorization header"
        first = next((f for f, rf, _ in plan if rf is not None), None)
        return 200, {"errors": [_error(f"Unauthorized: {msg}", "UNAUTHENTICATED",
                                       locations=ex.loc(first.pos if first else op.pos),
                                       path=[first.key] if first else [])], "data": None}, {}

    # ---- execution (serial)
    data: dict[str, Any] = {}
    for f, rf, args in plan:
        if rf is None:
            data[f.key] = "Mutation" if op.kind == "mutation" else "Query"
            continue
        try:
            value = rf.resolve(ctx, args)
        except GqlError as exc:
            return 200, {"errors": [_error(exc.message, exc.code, locations=ex.loc(f.pos), path=[f.key])],
                         "data": None}, ctx.response_headers
        data[f.key] = ex.project(value, f.selections, rf.returns)
    return 200, {"data": data}, ctx.response_headers
