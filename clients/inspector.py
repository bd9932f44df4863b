"""CloudTower's inspection centre (巡检中心), guide §08 (facts: ../shared/reference/cloudtower-stage05-08-api-facts.md,
"Stage 08"): the job, its status where CloudTower serves one, the Word export, its status and the streamed download,
so that the steps (tests_deploy/test_08_inspection.py) read like the guide.

Every call sends the REST token as raw ``Authorization`` (session ``"token"``; a 401 logs in again once).

* ``POST /api/inspector/api/v3/jobs`` ``{version, cluster_uuids: [<Cluster.local_id>], user_defined_items_names}``
  → ``{id, …}`` (facts 08.1: the guide's example and the older tool use ``local_id``, not the CloudTower id).
* ``GET …/v3/jobs/<id>`` → ``status`` (facts 08.2: only the older tool reads it, its state names guessed). This
  module does not guess on the step's behalf: :meth:`InspectorApi.job` answers ``None`` when CloudTower serves no
  such read (404 / 405 / 501), and :func:`job_state` sorts an answer into done / failed / running / no status.
* ``POST …/v3/jobs/<id>:exportReport?format=word`` ``{options: [{cluster_uuid, items_names,
  graph_duration_months: 6}]}`` → ``{filename}``; ``GET …/v3/export/status?filename=`` → ``{filename, status}``.
* ``GET /api/inspector/api/v1/export/download?filename=`` (note **v1**) → the zip, streamed to disk
  (:meth:`InspectorApi.download`: a temp file beside the target, replaced when complete; a 404 is
  :class:`NotReady`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx

from .addressing import CURRENT_STEP
from .base import MUTATION, READ, ApiError, _excerpt
from .cloudtower import CloudTowerClient
from .files import replace_atomically, temp_beside

V3 = "/api/inspector/api/v3"
V1 = "/api/inspector/api/v1"
ITEMS_FILE = Path(__file__).resolve().parents[1] / "tests_deploy" / "data" / "inspection_items.json"
FORMAT = "word"
JOB_DONE = {"SUCCEEDED", "FINISHED", "SUCCESS", "COMPLETED"}      # facts 08.2 (the older tool's guesses) + one
JOB_FAILED = {"FAILED", "ERROR"}
EXPORT_RUNNING, EXPORT_SUCCEEDED, EXPORT_FAILED = "EXPORT_RUNNING", "EXPORT_SUCCEEDED", "EXPORT_FAILED"
NO_READ = (404, 405, 501)           # CloudTower has no job read: the export's status decides
DOWNLOAD_TIMEOUT_S = 300.0
BLOCK = 1 << 16


class NotReady(ApiError):
    """The download answered 404: the export is not ready (or unknown)."""


@dataclass(frozen=True)
class Items:
    """The guide's item lists (tests_deploy/data/inspection_items.json): the job's 82, the export's 74."""

    version: str
    job: list[str]
    export: list[str]
    months: int


def items(path: Path = ITEMS_FILE) -> Items:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Items(data["version"], list(data["job_items"]), list(data["export_items"]),
                 int(data.get("graph_duration_months", 6)))


def job_state(job: dict | None) -> str:
    """``"done"``, ``"failed"``, ``"running"`` (any other word: not known to be final), or ``"unknown"`` (no job
    read, or an answer without ``status``)."""
    status = str((job or {}).get("status") or "").upper()
    if not status:
        return "unknown"
    if status in JOB_DONE:
        return "done"
    if status in JOB_FAILED:
        return "failed"
    return "running"


def reason(answer: dict) -> str:
    """What an answer says besides filename / status / ids (a failed export's or job's message), or ``-``."""
    said = {k: v for k, v in (answer or {}).items() if k not in ("filename", "status", "id", "cluster_uuids",
                                                                   "user_defined_items_names", "cluster_names",
                                                                   "version") and v not in (None, "", [], {})}
    return "; ".join(f"{k}: {v}" for k, v in said.items()) or "-"


@dataclass
class Download:
    path: Path
    size: int
    sha256: str
    seconds: float


class InspectorApi:
    def __init__(self, ct: CloudTowerClient):
        self.ct = ct

    def _call(self, method: str, path: str, *, kind: str, **kw) -> Any:
        return self.ct.check(self.ct.authed(method, path, kind=kind, **kw))

    def create_job(self, cluster_uuid: str, names: list[str], version: str) -> dict:
        body = {"version": version, "cluster_uuids": [cluster_uuid], "user_defined_items_names": list(names)}
        return self._call("POST", f"{V3}/jobs", kind=MUTATION, json_body=body) or {}

    def job(self, job_id: str) -> dict | None:
        """The job as CloudTower reads it, or None when it serves no job read (404 / 405 / 501)."""
        try:
            return self._call("GET", f"{V3}/jobs/{job_id}", kind=READ) or {}
        except ApiError as exc:
            if exc.status in NO_READ:
                return None
            raise

    def export(self, job_id: str, cluster_uuid: str, names: list[str], months: int = 6) -> dict:
        body = {"options": [{"cluster_uuid": cluster_uuid, "items_names": list(names),
                             "graph_duration_months": months}]}
        return self._call("POST", f"{V3}/jobs/{job_id}:exportReport", kind=MUTATION, params={"format": FORMAT},
                          json_body=body) or {}

    def export_status(self, filename: str) -> dict:
        return self._call("GET", f"{V3}/export/status", kind=READ, params={"filename": filename}) or {}

    def download(self, filename: str, dest: Path, *, progress: Callable[[int], None] | None = None) -> Download:
        """Stream ``…/v1/export/download`` into ``dest`` (a temp file beside it, replaced when complete)."""
        sess = self.ct.sessions["token"]
        if sess.value is None:
            sess.login()
        for attempt in (1, 2):
            try:
                return self._stream(filename, dest, sess.headers(), progress)
            except ApiError as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                self.ct.relogins += 1
                sess.login()
        raise AssertionError("unreachable")  # pragma: no cover

    def _stream(self, filename: str, dest: Path, headers: dict, progress) -> Download:
        url = self.ct.url(f"{V1}/export/download")
        record = {"step": CURRENT_STEP.get(), "family": self.ct.family, "method": "GET", "url": url,
                  "params": {"filename": filename}, "request": "", "attempt": 1}
        start = time.perf_counter()
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        try:
            with self.ct.http.stream("GET", url, params={"filename": filename}, headers=headers,
                                     timeout=DOWNLOAD_TIMEOUT_S) as resp:
                if resp.status_code != 200:
                    body = resp.read()
                    record.update(status=resp.status_code, response=_excerpt(body),
                                  duration_ms=round((time.perf_counter() - start) * 1000, 1))
                    self.ct._emit(record)
                    cls = NotReady if resp.status_code == 404 else ApiError
                    raise cls("GET", url, resp.status_code, _excerpt(body), self.ct.hint_for(resp.status_code))
                fd, tmp = temp_beside(dest)
                try:
                    with os.fdopen(fd, "wb") as fh:
                        for block in resp.iter_bytes(BLOCK):
                            fh.write(block)
                            digest.update(block)
                            size += len(block)
                            if progress is not None:
                                progress(size)
                        fh.flush()
                        os.fsync(fh.fileno())
                    replace_atomically(tmp, dest)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
        except httpx.TransportError as exc:
            record.update(status=None, error=f"{type(exc).__name__}: {exc}",
                          duration_ms=round((time.perf_counter() - start) * 1000, 1))
            self.ct._emit(record)
            raise ApiError("GET", url, None, f"{type(exc).__name__}: {exc}", self.ct.default_hint) from exc
        seconds = time.perf_counter() - start
        record.update(status=200, response=f"<{size} bytes, zip>", duration_ms=round(seconds * 1000, 1))
        self.ct._emit(record)
        return Download(dest, size, digest.hexdigest(), seconds)
