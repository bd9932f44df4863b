"""CloudTower's GraphQL endpoint (``POST /api``), served by graphql-core from ``schema.graphql``.

A real GraphQL server for the part of CloudTower's schema the guide uses: graphql-core parses the
document, validates it against the schema (unknown fields / arguments / types, variables, fragments,
``@skip`` / ``@include``), coerces the variables and executes the operation; the answer holds exactly
the selected fields. Resolvers (:data:`RESOLVERS`) read and write the :class:`CloudTowerModel`.

Errors follow Apollo Server (what CloudTower runs), as :class:`GqlError`::

    400 {"errors": [{message, locations?, extensions: {code}}]}   GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED,
                                                               OPERATION_RESOLUTION_FAILURE, BAD_USER_INPUT
                                                               (variables), BAD_REQUEST (not a GraphQL request)
    200 {"errors": [{message, locations, path, extensions: {code}}], "data": null}   resolver errors:
        UNAUTHENTICATED (no / bad Authorization or connect.sid), ALREADY_EXISTS, BAD_USER_INPUT

Authentication is per root field: ``createUser``, ``organizations``, ``userCreated`` and ``login`` need
none; ``createOrganization`` needs none while the tower has no organization (the first-run wizard), a
token afterwards; ``updateCloudTowerNtpUrl``, ``deploys`` and the §06 fields (``updateClusterSettings``,
``globalAlertRules``, ``globalAlertRulesConnection``, ``updateGlobalAlertRule``) need a token (or the
``connect.sid`` cookie).

Variable coercion errors (a bad enum value, an unknown input field) answer 400 ``BAD_USER_INPUT`` (Apollo
Server 3 and 5, and 4 with the opt-in ``status400WithErrorsAndNoData``); under profile ``gql-variables-200``
(``tower.graphql_variable_status = 200``) HTTP 200 ``{"errors": [...]}`` without ``data`` (Apollo Server 4's
default). Output numbers are written as JavaScript does: an integral ``Float`` (a
threshold's ``value``) as ``90``, not ``90.0``.

Adding an operation: its root field (and types) in ``schema.graphql``, a resolver in :data:`RESOLVERS`,
its name in :data:`GUIDE_OPERATIONS`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable

from graphql import (ExecutionResult, GraphQLError, GraphQLScalarType, GraphQLSchema, StringValueNode, build_schema,
                     execute_sync, parse, validate)
from graphql.utilities import get_operation_ast, value_from_ast_untyped

from .errors import GqlError, RestError, Unauthenticated
from .filters import FilterError, select
from .models import CloudTowerModel
from .util import parse_datetime

# the operations of the guide (by operationName); any valid document is served, these name the
# documents the simulator was built for (an invalid document of another name says so)
GUIDE_OPERATIONS = ("checkTowerIsSetup", "createOrganization", "createRootUser", "deployedLicense", "globalAlertRules",
                    "login", "updateCloudTowerNtpUrl", "updateClusterSettings", "updateGlobalAlertRule")
GUIDE_OPERATIONS += ("observabilityInstanceAndApps", "createBundleApplicationInstance", "updateObservabilityNtpUrl",
                     "updateBundleApplicationInstanceConnectClusters", "updateObservabilityConnectedSystemServices")  # §07 OBS


@dataclass
class Ctx:
    """``context_value`` of one request: the tower, the request's credentials (checked when a field
    needs them) and the response headers a resolver adds (``Set-Cookie``)."""

    tower: CloudTowerModel
    auth_header: str | None = None
    cookie_sid: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    fault: Any = None               # a TaskFault when an 'operation' fault rule fired on this request (else None)

    def user(self) -> str:
        """The authenticated user's id; ``UNAUTHENTICATED`` otherwise."""
        try:
            return self.tower.authenticate(self.auth_header, cookie=self.cookie_sid)
        except Unauthenticated as exc:
            raise GqlError(exc.message, "UNAUTHENTICATED") from None


# =========================================================================== resolvers
def _decoded(ctx: Ctx, password: str, effect: dict | None) -> str | None:
    """The clear password: as sent, or decoded when ``effect: {encoded: true}`` (None: cannot decode)."""
    return ctx.tower.decode_password(password) if (effect or {}).get("encoded") else password


def _create_user(_root, info, data: dict, effect: dict | None = None) -> dict:
    ctx: Ctx = info.context
    wrong = [f"{k} must be {want!r}, got {data.get(k)!r}" for k, want in
             (("username", "root"), ("name", "root"), ("role", "ROOT"), ("source", "LOCAL"))
             if data.get(k) != want and not (k == "role" and data.get(k) is None)]
    if wrong:
        raise GqlError("the simulator only creates the root user: " + "; ".join(wrong), "BAD_USER_INPUT")
    pw = _decoded(ctx, data["password"], effect)
    if pw is None:
        raise GqlError("password: cannot decode the encoded password (the simulator knows the guide's fixed "
                       "encoded HC!r0cks only)", "BAD_USER_INPUT")
    updated = data.get("password_updated_at")
    return ctx.tower.create_root(pw, parse_datetime(updated) if updated else ctx.tower.clock.wall())


def _create_organization(_root, info, data: dict) -> dict:
    ctx: Ctx = info.context
    if ctx.tower.organizations:                  # first-run wizard: no token until an organization exists
        ctx.user()
    return ctx.tower.organization_view(ctx.tower.create_organization(data["name"]))


def _select(items: list[dict], args: dict, typename: str) -> list[dict]:
    try:
        return select(items, args, typename=typename)
    except FilterError as exc:
        raise GqlError(str(exc), "BAD_USER_INPUT") from None


def _organizations(_root, info, **args) -> list[dict]:
    return _select(info.context.tower.list_organizations(), args, "Organization")


def _user_created(_root, info) -> dict:
    return {"created": info.context.tower.root_created}


def _update_ntp(_root, info, data: dict) -> dict:
    ctx: Ctx = info.context
    ctx.user()
    return {"ntp_service_url": ctx.tower.set_ntp(data["ntp_service_url"])}


def _deploys(_root, info, **args) -> list[dict]:
    ctx: Ctx = info.context
    ctx.user()
    return _select([ctx.tower.deploy_view()], args, "Deploy")


def _login(_root, info, data: dict, effect: dict | None = None) -> dict:
    ctx: Ctx = info.context
    pw = _decoded(ctx, data["password"], effect)
    if pw is None and getattr(ctx.tower, "gql_login_plaintext", False):
        pw = data["password"]        # profile gql-login-plaintext-accepted: CX's plaintext with encoded:true
    if pw is None:
        raise GqlError("invalid username or password", "UNAUTHENTICATED")
    try:
        token = ctx.tower.login(data["username"], pw, data.get("source") or "LOCAL")
    except RestError as exc:
        raise GqlError(exc.message, "UNAUTHENTICATED") from None
    sid = ctx.tower.issue_cookie()
    ctx.response_headers["Set-Cookie"] = f"connect.sid={sid}; Path=/; HttpOnly; Secure; SameSite=Strict"
    return {"token": token, "uid": None, "need_mfa": None, "mfa_meta": None}


# --------------------------------------------------------------------------- §06
def _update_cluster_settings(_root, info, where: dict, data: dict) -> dict:
    ctx: Ctx = info.context
    ctx.user()
    return ctx.tower.update_cluster_settings(where.get("id"), data)


def _global_alert_rules(_root, info, **args) -> list[dict]:
    ctx: Ctx = info.context
    ctx.user()
    return _select(ctx.tower.list_global_alert_rules(), args, "GlobalAlertRule")


def _global_alert_rules_connection(_root, info, **args) -> dict:
    ctx: Ctx = info.context
    ctx.user()
    return {"aggregate": {"count": len(_select(ctx.tower.list_global_alert_rules(), {"where": args.get("where")},
                                                "GlobalAlertRule"))}}


def _update_global_alert_rule(_root, info, data: dict, where: dict) -> dict:
    ctx: Ctx = info.context
    ctx.user()
    return ctx.tower.update_global_alert_rule(where.get("id"), data)


def _alert_rule_global(parent: dict, info) -> dict:
    """``AlertRule.global_alert_rule``: the whole global rule (the view nests only its id and name)."""
    tower = info.context.tower
    return tower.global_rule_view(tower.global_alert_rules[parent["global_alert_rule"]["id"]])


RESOLVERS: dict[tuple[str, str], Callable] = {
    ("Query", "globalAlertRules"): _global_alert_rules,
    ("Query", "globalAlertRulesConnection"): _global_alert_rules_connection,
    ("Mutation", "updateClusterSettings"): _update_cluster_settings,
    ("Mutation", "updateGlobalAlertRule"): _update_global_alert_rule,
    ("AlertRule", "global_alert_rule"): _alert_rule_global,
    ("Query", "organizations"): _organizations,
    ("Query", "userCreated"): _user_created,
    ("Query", "deploys"): _deploys,
    ("Mutation", "createUser"): _create_user,
    ("Mutation", "createOrganization"): _create_organization,
    ("Mutation", "updateCloudTowerNtpUrl"): _update_ntp,
    ("Mutation", "login"): _login,
}


# =========================================================================== schema
def _datetime_value(value: Any) -> str:
    if parse_datetime(value) is None:
        raise GraphQLError(f"DateTime cannot represent an invalid date-time-string {json.dumps(value)}.")
    return value


def _datetime_literal(node: Any, _variables: Any = None) -> str:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("DateTime cannot represent a non string value.", node)
    return _datetime_value(node.value)


def _identity(value: Any) -> Any:
    return value


def _wire_scalar(scalar: GraphQLScalarType, *, value: Callable, literal: Callable) -> None:
    """Set a custom scalar's coercion on graphql-core 3.2 (``parse_*`` / ``serialize``) and 3.3
    (``coerce_*``, graphql-js 17) alike: output as is, input through ``value`` / ``literal``."""
    for names, fn in ((("serialize", "coerce_output_value"), _identity),
                      (("parse_value", "coerce_input_value"), value),
                      (("parse_literal", "coerce_input_literal"), literal)):
        for name in names:
            if hasattr(scalar, name):
                setattr(scalar, name, fn)


# Families of operations kept apart (stage 07: OBS, backup): each adds ``schema_<name>.graphql`` (``extend type
# Query`` / ``extend type Mutation`` and its own types) and a module ``graphql_<name>.py`` whose ``RESOLVERS`` dict
# is merged into :data:`RESOLVERS` here.
EXTENSIONS = ("obs", "backup")


def _sdl() -> str:
    """``schema.graphql`` and, after it, each extension's ``schema_<name>.graphql`` (absent or empty: skipped)."""
    root = resources.files(__package__)
    parts = [root.joinpath("schema.graphql").read_text(encoding="utf-8")]
    for name in EXTENSIONS:
        f = root.joinpath(f"schema_{name}.graphql")
        if f.is_file() and f.read_text(encoding="utf-8").strip():
            parts.append(f.read_text(encoding="utf-8"))
    return "\n".join(parts)


def _extension_resolvers() -> None:
    import importlib

    for name in EXTENSIONS:
        try:
            mod = importlib.import_module(f"{__package__}.graphql_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.graphql_{name}":
                raise
            continue
        RESOLVERS.update(mod.RESOLVERS)
        global GUIDE_OPERATIONS             # the extension's guide documents (its OPERATIONS), for error messages
        GUIDE_OPERATIONS = tuple(dict.fromkeys(GUIDE_OPERATIONS + tuple(getattr(mod, "OPERATIONS", ()))))


def load_schema() -> GraphQLSchema:
    """``schema.graphql`` (and the extensions') with the custom scalars and :data:`RESOLVERS` wired in."""
    _extension_resolvers()
    schema = build_schema(_sdl())
    _wire_scalar(schema.type_map["DateTime"], value=_datetime_value, literal=_datetime_literal)
    _wire_scalar(schema.type_map["JSON"], value=_identity, literal=value_from_ast_untyped)
    roots = {"Query": schema.query_type, "Mutation": schema.mutation_type}
    for (type_name, field_name), fn in RESOLVERS.items():
        schema.type_map[type_name].fields[field_name].resolve = fn
    missing = [f"{t}.{f}" for t, typ in roots.items() for f, fd in typ.fields.items() if fd.resolve is None]
    if missing:
        raise RuntimeError(f"schema.graphql root fields without a resolver: {missing}")
    return schema


SCHEMA = load_schema()


# =========================================================================== request
def _locations(err: GraphQLError) -> list[dict] | None:
    return [loc.formatted for loc in err.locations] if err.locations else None


def _phase_error(errors: list[GraphQLError], code: str, prefix: str = "") -> GqlError:
    """A 400 before execution, answering every error of the phase."""
    entries = [{"message": prefix + e.message, **({"locations": _locations(e)} if e.locations else {}),
                "extensions": {"code": code}} for e in errors]
    return GqlError(entries[0]["message"], code, status=400, locations=_locations(errors[0]), more=entries[1:])


def _request_parts(body: Any) -> tuple[str, dict, str | None]:
    if isinstance(body, list):
        raise GqlError("batched GraphQL requests are not supported by the simulator", "BAD_REQUEST", status=400)
    if not isinstance(body, dict):
        raise GqlError("POST body must be a JSON object {operationName, variables, query}", "BAD_REQUEST",
                       status=400)
    src, variables, op_name = body.get("query"), body.get("variables"), body.get("operationName")
    if not isinstance(src, str) or not src.strip():
        raise GqlError("GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension.",
                       "BAD_REQUEST", status=400)
    if variables is not None and not isinstance(variables, dict):
        raise GqlError("`variables` in a POST body should be an object.", "BAD_REQUEST", status=400)
    if op_name is not None and not isinstance(op_name, str):
        raise GqlError("`operationName` in a POST body should be a string.", "BAD_REQUEST", status=400)
    return src, variables or {}, op_name


def _document(src: str, op_name: str | None):
    try:
        doc = parse(src)
    except GraphQLError as exc:
        raise _phase_error([exc], "GRAPHQL_PARSE_FAILED") from None
    errors = validate(SCHEMA, doc)
    if errors:
        names = [o.name.value for o in doc.definitions if getattr(o, "operation", None) and o.name]
        name = op_name or (names[0] if names else None)
        prefix = "" if name in GUIDE_OPERATIONS else (
            f'the simulated CloudTower does not implement operation "{name}" (it serves the guide\'s '
            f'{", ".join(GUIDE_OPERATIONS)}): ')
        raise _phase_error(errors, "GRAPHQL_VALIDATION_FAILED", prefix)
    if get_operation_ast(doc, op_name) is None:
        msg = (f'Unknown operation named "{op_name}".' if op_name else
               "Must provide operation name if query contains multiple operations.")
        raise GqlError(msg, "OPERATION_RESOLUTION_FAILURE", status=400)
    return doc


def _js_numbers(v: Any) -> Any:
    """Numbers as a JavaScript server writes them: an integral float without its ``.0``."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: _js_numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_js_numbers(x) for x in v]
    return v


def _answer(result: ExecutionResult, variable_status: int = 400) -> dict:
    if not result.errors:
        return {"data": _js_numbers(result.data)}
    if result.data is None and all(e.path is None for e in result.errors):      # variable coercion
        err = _phase_error(list(result.errors), "BAD_USER_INPUT")
        if variable_status == 200:                       # profile gql-variables-200 (Apollo Server 4's default)
            return {"errors": [err.entry(), *err.more]}
        raise err
    entries = []
    for e in result.errors:
        orig = e.original_error
        if orig is not None and not isinstance(orig, GqlError):
            raise orig                                   # a simulator bug: the app answers 500
        entries.append({"message": e.message, "locations": _locations(e), "path": e.path,
                        "extensions": {"code": orig.code if orig else "INTERNAL_SERVER_ERROR"}})
    return {"errors": entries, "data": _js_numbers(result.data)}


def execute(tower: CloudTowerModel, body: Any, *, auth_header: str | None = None,
            cookie_sid: str | None = None, fault: Any = None) -> tuple[dict, dict[str, str]]:
    """Run one GraphQL request (the parsed JSON body); returns ``(200 body, extra response headers)``.
    Raises :class:`GqlError` (status 400) for a request that fails before execution."""
    src, variables, op_name = _request_parts(body)
    doc = _document(src, op_name)
    ctx = Ctx(tower, auth_header, cookie_sid, fault=fault)
    result = execute_sync(SCHEMA, doc, root_value=None, context_value=ctx, variable_values=variables,
                          operation_name=op_name)
    return _answer(result, getattr(tower, "graphql_variable_status", 400)), ctx.response_headers
