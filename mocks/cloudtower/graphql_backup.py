"""GraphQL of stage 07b (backup), merged into :data:`mocks.cloudtower.graphql.RESOLVERS` (see ``EXTENSIONS``); the
schema is ``schema_backup.graphql``, the state :mod:`mocks.cloudtower.backup`.

Every field needs a session: ``Authorization: <token>`` or the ``connect.sid`` cookie of the GraphQL ``login``.

**Uploads** follow the GraphQL multipart request spec (:func:`multipart_body`, used by ``POST /api`` when the body
is ``multipart/form-data``): part ``operations`` (the JSON request, the file variable ``null``), part ``map``
(``{"1": ["variables.data.file"]}``), then the file parts. Each file part becomes an :class:`~.backup.Upload` (size,
SHA-256, its blocks for the upload's running hash) put where ``map`` says. A malformed request answers 400
``BAD_REQUEST`` (as graphql-upload does); a bad chunk answers ``errors[]`` with HTTP 200 (the model's checks).
"""
from __future__ import annotations

import io
import json
from typing import Any, Callable

from ..multipart import MultipartError, MultipartReader, boundary_of
from .backup import Upload
from .errors import GqlError
from .filters import FilterError, select

MAX_OPERATIONS_BYTES = 1024 * 1024
# the guide's §07 backup documents by operationName (graphql.py names them in validation errors)
OPERATIONS = ("cloudTowerApplicationPackages", "createUploadTask", "uploadCloudTowerApplicationPackage",
              "createBackupService", "getBackupServices", "updateBackupService")


# =========================================================================== multipart (GraphQL multipart request spec)
def is_multipart(req) -> bool:
    return boundary_of(req.header("Content-Type")) is not None


def _set_path(doc: Any, path: str, value: Any) -> None:
    keys = path.split(".")
    cur = doc
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    last = keys[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    elif isinstance(cur, dict):
        cur[last] = value
    else:
        raise KeyError(path)


def _json_part(part, what: str) -> Any:
    raw = b"".join(part.blocks())
    if len(raw) > MAX_OPERATIONS_BYTES:
        raise ValueError(f"the '{what}' part is too large")
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"Invalid JSON in the '{what}' multipart field "
                         "(https://github.com/jaydenseric/graphql-multipart-request-spec).") from None


def _file_part(part) -> Upload:
    blocks = list(part.blocks())
    return Upload(part.filename, part.content_type, sum(len(b) for b in blocks), blocks)


def _parse_parts(body: bytes, boundary: str) -> tuple[Any, dict, dict[str, Upload]]:
    operations, mapping, files = None, None, {}
    for i, part in enumerate(MultipartReader(io.BytesIO(body).read, boundary).parts()):
        if i == 0 and part.name != "operations":
            raise ValueError("Misordered multipart fields; expected 'operations' first.")
        if part.name == "operations":
            operations = _json_part(part, "operations")
        elif part.name == "map":
            mapping = _json_part(part, "map")
        elif mapping is None:
            raise ValueError("Misordered multipart fields; expected 'map' second.")
        elif part.name in mapping:
            files[part.name] = _file_part(part)
    if operations is None:
        raise ValueError("Missing multipart field 'operations'.")
    if not isinstance(mapping, dict):
        raise ValueError("Missing multipart field 'map', or it is not a JSON object.")
    return operations, mapping, files


def multipart_body(req) -> tuple[Any, str | None]:
    """``(the GraphQL request with its files in place, None)`` or ``(None, problem)``."""
    try:
        operations, mapping, files = _parse_parts(req.body, boundary_of(req.header("Content-Type")))
        for key, paths in mapping.items():
            if key not in files:
                raise ValueError(f"File missing in the request: map key {key!r} has no part.")
            if not isinstance(paths, list):
                raise ValueError(f"Invalid type for the 'map' multipart field entry key '{key}' array.")
            for p in paths:
                try:
                    _set_path(operations, str(p), files[key])
                except (KeyError, IndexError, ValueError, TypeError):
                    raise ValueError(f"map path {p!r} does not name a null in operations") from None
    except (MultipartError, ValueError) as exc:
        return None, str(exc)
    return operations, None


# =========================================================================== resolvers
def _select(items: list[dict], args: dict, typename: str) -> list[dict]:
    try:
        return select(items, args, typename=typename)
    except FilterError as exc:
        raise GqlError(str(exc), "BAD_USER_INPUT") from None


def _packages(_root, info, **args) -> list[dict]:
    info.context.user()
    return _select(info.context.tower.list_packages(), args, "CloudTowerApplicationPackage")


def _packages_connection(_root, info, **args) -> dict:
    info.context.user()
    rows = _select(info.context.tower.list_packages(), {"where": args.get("where")}, "CloudTowerApplicationPackage")
    return {"aggregate": {"count": len(rows)}}


def _upload_tasks(_root, info, **args) -> list[dict]:
    info.context.user()
    return _select(info.context.tower.list_upload_tasks(), args, "UploadTask")


def _backup_services(_root, info, **args) -> list[dict]:
    info.context.user()
    return _select(info.context.tower.list_backup_services(), args, "BackupService")


def _create_upload_task(_root, info, data: dict) -> dict:
    info.context.user()
    return info.context.tower.create_upload_task(data)


def _upload_package(_root, info, data: dict) -> dict:
    ctx = info.context
    ctx.user()
    return ctx.tower.upload_chunk(data.get("upload_task_id"), data.get("current_chunk"), data.get("file"),
                                  ctx.fault)


def _create_backup_service(_root, info, data: dict, effect: dict | None = None) -> dict:
    ctx = info.context
    user = ctx.user()
    return ctx.tower.create_backup_service(data, effect, user, ctx.fault)


def _update_backup_service(_root, info, where: dict, data: dict) -> dict:
    info.context.user()
    return info.context.tower.update_backup_service(where, data)


RESOLVERS: dict[tuple[str, str], Callable] = {
    ("Query", "cloudTowerApplicationPackages"): _packages,
    ("Query", "cloudTowerApplicationPackagesConnection"): _packages_connection,
    ("Query", "uploadTasks"): _upload_tasks,
    ("Query", "backupServices"): _backup_services,
    ("Mutation", "createUploadTask"): _create_upload_task,
    ("Mutation", "uploadCloudTowerApplicationPackage"): _upload_package,
    ("Mutation", "createBackupService"): _create_backup_service,
    ("Mutation", "updateBackupService"): _update_backup_service,
}
