"""CloudTower upload tasks (SDK ``UploadTask``), shared by every chunked upload that CloudTower tracks with one: the
backup package (stage 07b, GraphQL) and the test VM's disks (stage 09, ``upload-elf-file``).

One convention for both (the simulator serves them from one store): ``current_chunk`` is the last chunk received,
1-based, and status ``INITIALIZING`` means none yet. The adapters of the one uploader (clients/upload.py) turn a task
into the 0-based chunks still to send with :func:`missing_chunks`.
"""
from __future__ import annotations

import math
from typing import Any

from .cloudtower import CloudTowerClient

UPLOAD_DONE, UPLOAD_FAILED, UPLOAD_NEW = "SUCCESSED", "FAILED", "INITIALIZING"   # SDK UploadTaskStatus
UNFINISHED = ["INITIALIZING", "UPLOADING", "PAUSED", "FAILED"]                   # facts §5: leftovers to look for


def missing_chunks(task: dict, chunk_size: int, size: int) -> list[int] | None:
    """0-based chunks ``task`` still misses for a file of ``size`` bytes in ``chunk_size`` chunks; None when the
    upload cannot continue (FAILED) or the task does not say (no size, no ``current_chunk``)."""
    if not size:
        return None
    total = max(1, math.ceil(size / chunk_size))
    status = task.get("status")
    if status == UPLOAD_DONE:
        return []
    if status == UPLOAD_FAILED:
        return None
    if status == UPLOAD_NEW:
        return list(range(total))
    current = task.get("current_chunk")
    if not isinstance(current, int):
        return None
    return list(range(min(current, total), total))


def upload_tasks(ct: CloudTowerClient, ids: list[str] | None = None, name_in: list[str] | None = None,
                 unfinished: bool = False) -> list[dict]:
    """``get-upload-tasks`` by ``ids`` and/or unfinished status (server-side); ``name_in`` (the task's ``args.name``,
    which UploadTaskWhereInput cannot filter) and the rest also client-side."""
    where: dict[str, Any] = {}
    if ids is not None:
        where["id_in"] = list(ids)
    if unfinished:
        where["status_in"] = list(UNFINISHED)
    found = ct.rest("get-upload-tasks", {"where": where}) or []
    return [t for t in found if isinstance(t, dict)
            and (ids is None or t.get("id") in ids)
            and (not unfinished or t.get("status") in UNFINISHED)
            and (name_in is None or ((t.get("args") or {}).get("name") in name_in))]


def cancel_upload_task(ct: CloudTowerClient, ids: list[str]) -> list:
    """``cancel-upload-task`` ``{where: {id_in}}``: the ids cancelled (the SDK has no delete call for upload tasks)."""
    return ct.rest("cancel-upload-task", {"where": {"id_in": list(ids)}}) or []
