"""Stage 08 of a simulated CloudTower: the inspection centre (巡检中心), guide §08 -- state only, no HTTP.

:class:`InspectorMixin` (mixed into :class:`~mocks.cloudtower.models.CloudTowerModel`; the wire is
``responses_inspector.py``) keeps

* **jobs** (``POST …/v3/jobs``): 27-character KSUID ids; ``cluster_uuids`` must name connected clusters by their
  ``local_id`` (a CloudTower cuid or an unknown id: :class:`InspectorError` 404, grpc code 5 [inf]). A job is
  ``RUNNING`` for ``inspector_job_s`` (120 simulated s [inf]) then ``SUCCEEDED``; an ``operation`` fault on the
  create: ``fail`` = ``FAILED`` after ``JOB_FAIL_S`` with ``message``, ``stuck`` = ``RUNNING`` forever.
  Its status (``status`` on ``GET …/v3/jobs/<id>``) is CX's guess; profile ``inspector-job-status-absent`` serves
  no such read (the guide documents none).
* **exports** (``:exportReport?format=word``): ``filename`` ``InspectorReport-<UTC date>-<job id>.zip``;
  ``EXPORT_RUNNING`` until the job has ended plus ``inspector_export_s`` (20 s [inf]), then ``EXPORT_SUCCEEDED``;
  ``EXPORT_FAILED`` (with ``message`` [inf]) when the job failed, or ``EXPORT_FAIL_S`` after an export whose
  create met an ``operation: fail`` fault (``stuck``: ``EXPORT_RUNNING`` forever).
* **the report**: a real zip holding one real ``.docx`` (python-docx, built at request time, byte-deterministic:
  fixed zip timestamps and core properties). Its findings tables have the columns 巡检项 / 对象 / 结果 / 级别 / 值 /
  建议, one row per exported item; three items (when exported) are not OK (严重 / 警告 / 提示). A summary table
  (级别 / 数量) comes first. ``inspector_layout = "prose"`` (a knob): the same facts as paragraphs and a table
  with other headers, a layout no header-word reader recognises.

Knobs: ``inspector_job_s``, ``inspector_export_s``, ``inspector_layout`` (kept in snapshots),
``inspector_job_status`` (``"served"`` | ``"absent"``: the profile's, not in snapshots).
State: ``inspector_jobs``, ``inspector_exports``.
"""
from __future__ import annotations

import dataclasses
import io
import re
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any

from .obs import ksuid

INSPECTOR_VERSION = "1.1.1-rc.11"
JOB_S = 120.0              # RUNNING -> SUCCEEDED [inf: the guide exports at once, CX polls 5 s / 600 s]
JOB_FAIL_S = 30.0          # operation fault "fail": FAILED this long after the create [inf]
EXPORT_S = 20.0            # EXPORT_RUNNING this long after the job ended [inf: the guide polls every 1 s]
EXPORT_FAIL_S = 10.0       # operation fault "fail" on the export: EXPORT_FAILED after this long [inf]
FORMATS = ("word", "pdf")  # CX's config comment names pdf too [inf]
_ZIP_TIME = (2025, 10, 1, 3, 45, 28)
_FALLBACK_ITEMS = ["master_redundancy_check", "fan_check", "ipmi_account_is_valid", "zbs_chunk_dirty_cache_ratio",
                   "host_power_is_on"]
# item -> (object kind, severity, value, suggestion): the findings that are not OK when the item is exported
NOT_OK = {
    "ipmi_account_is_valid": ("host0", "严重", "IPMI 账户认证失败 (401)", "在 BMC 中核对 IPMI 账户与密码，并在集群中重新填写"),
    "fan_check": ("host1", "警告", "FAN3 2100 RPM（阈值 3000）", "检查 FAN3，必要时更换风扇模块"),
    "zbs_chunk_dirty_cache_ratio": ("cluster", "提示", "35%", "观察业务负载；持续高于 30% 时联系 SmartX 支持"),
}
SEVERITIES = ("严重", "警告", "提示")
HEADERS = ["巡检项", "对象", "结果", "级别", "值", "建议"]


class InspectorError(Exception):
    """A refusal in grpc-gateway's shape ``{"code", "message", "details": []}`` [inf] with HTTP ``status``."""

    GRPC = {400: 3, 401: 16, 404: 5, 409: 9}

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

    def body(self) -> dict:
        return {"code": self.GRPC.get(self.status, 2), "message": self.message, "details": []}


@dataclass
class InspectorJob:
    id: str
    version: str
    cluster_uuids: list[str]
    items: list[str]
    created: float                  # simulated seconds
    created_wall: float
    run_s: float
    user_id: str | None = None
    fault: str | None = None        # None | "fail" | "stuck"
    fault_msg: str | None = None


@dataclass
class InspectorExport:
    filename: str
    job_id: str
    format: str
    options: list[dict] = field(default_factory=list)
    created: float = 0.0
    export_s: float = EXPORT_S
    fault: str | None = None
    fault_msg: str | None = None
    downloads: int = 0


class InspectorMixin:
    """State: ``inspector_jobs`` (id -> job), ``inspector_exports`` (filename -> export)."""

    def _init_inspector(self) -> None:
        self.inspector_job_s = JOB_S
        self.inspector_export_s = EXPORT_S
        self.inspector_layout = "findings"
        self.inspector_job_status = "served"
        self.inspector_jobs: dict[str, InspectorJob] = {}
        self.inspector_exports: dict[str, InspectorExport] = {}

    # ------------------------------------------------------------------ jobs
    def _inspected_cluster(self, uuid: Any):
        """The connected cluster whose ``local_id`` is ``uuid`` (never its CloudTower id), else None."""
        return next((c for c, _ in self._connected() if c.local_id and c.local_id == uuid), None)

    def create_inspection_job(self, body: Any, user_id: str | None, fault=None) -> dict:
        if not isinstance(body, dict):
            raise InspectorError(400, "the body must be a JSON object {version, cluster_uuids, "
                                      "user_defined_items_names}")
        uuids, items = body.get("cluster_uuids"), body.get("user_defined_items_names", [])
        if not isinstance(uuids, list) or not uuids or not all(isinstance(u, str) for u in uuids):
            raise InspectorError(400, "cluster_uuids must be a non-empty list of cluster uuids")
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise InspectorError(400, "user_defined_items_names must be a list of item names")
        for u in uuids:
            if self._inspected_cluster(u) is None:
                raise InspectorError(404, f"cluster {u} not found")      # a cuid is no cluster uuid here [inf]
        now, wall = self.clock.now(), self.clock.wall()
        with self.lock:
            self._seq += 1
            job = InspectorJob(ksuid(wall, "smtx-sim://inspector", self.ip, "job", self._seq),
                               str(body.get("version") or INSPECTOR_VERSION), list(uuids), list(items), now, wall,
                               float(self.inspector_job_s), user_id, getattr(fault, "mode", None),
                               getattr(fault, "msg", None))
            self.inspector_jobs[job.id] = job
            return self.inspection_job_view(job, with_status=False)

    def inspection_job(self, job_id: str) -> InspectorJob:
        job = self.inspector_jobs.get(job_id)
        if job is None:
            raise InspectorError(404, f"job {job_id} not found")
        return job

    def _job_end(self, job: InspectorJob) -> float | None:
        """Simulated second the job ends (None: never)."""
        if job.fault == "stuck":
            return None
        return job.created + (JOB_FAIL_S if job.fault == "fail" else job.run_s)

    def inspection_job_status(self, job: InspectorJob, now: float | None = None) -> str:
        now = self.clock.now() if now is None else now
        end = self._job_end(job)
        if end is None or now < end:
            return "RUNNING"
        return "FAILED" if job.fault == "fail" else "SUCCEEDED"

    def inspection_job_view(self, job: InspectorJob, *, with_status: bool = True) -> dict:
        view = {"id": job.id, "version": job.version, "cluster_uuids": list(job.cluster_uuids), "cluster_names": {},
                "user_defined_items_names": list(job.items)}
        if with_status:
            status = self.inspection_job_status(job)
            view |= {"status": status, "create_time": _rfc3339(job.created_wall)}
            if status == "FAILED":
                view["message"] = job.fault_msg or "inspection failed"
        return view

    # ------------------------------------------------------------------ exports
    def export_inspection(self, job_id: str, fmt: str | None, body: Any, fault=None) -> dict:
        job = self.inspection_job(job_id)
        if not fmt:
            raise InspectorError(400, "the query parameter format is required (format=word)")
        if fmt not in FORMATS:
            raise InspectorError(400, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        options = body.get("options") if isinstance(body, dict) else None
        if not isinstance(options, list) or not options or not all(isinstance(o, dict) for o in options):
            raise InspectorError(400, "the body must be {options: [{cluster_uuid, items_names, "
                                      "graph_duration_months}]}")
        for o in options:
            if o.get("cluster_uuid") not in job.cluster_uuids:
                raise InspectorError(404, f"cluster {o.get('cluster_uuid')} is not in job {job.id}")
        wall = self.clock.wall()
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(wall))
        with self.lock:
            name = f"InspectorReport-{stamp}-{job.id}.zip"
            n = 1
            while name in self.inspector_exports:
                n += 1
                name = f"InspectorReport-{stamp}-{job.id}-{n}.zip"
            exp = InspectorExport(name, job.id, fmt, [dict(o) for o in options], self.clock.now(),
                                  float(self.inspector_export_s), getattr(fault, "mode", None),
                                  getattr(fault, "msg", None))
            self.inspector_exports[name] = exp
        return {"filename": name}

    def inspection_export(self, filename: str | None) -> InspectorExport:
        exp = self.inspector_exports.get(filename or "")
        if exp is None:
            raise InspectorError(404, f"export {filename} not found")
        return exp

    def export_state_of(self, exp: InspectorExport, now: float | None = None) -> tuple[str, str | None]:
        """``(status, message)``: EXPORT_RUNNING, EXPORT_SUCCEEDED or EXPORT_FAILED (with why)."""
        now = self.clock.now() if now is None else now
        if exp.fault == "fail" and now >= exp.created + EXPORT_FAIL_S:
            return "EXPORT_FAILED", exp.fault_msg or "export failed"
        if exp.fault == "stuck":
            return "EXPORT_RUNNING", None
        job = self.inspector_jobs.get(exp.job_id)
        end = self._job_end(job) if job else exp.created
        if end is None or now < end:
            return "EXPORT_RUNNING", None
        if job is not None and job.fault == "fail":
            return "EXPORT_FAILED", f"job {job.id} failed: {job.fault_msg or 'inspection failed'}"
        return ("EXPORT_SUCCEEDED", None) if now >= max(end, exp.created) + exp.export_s else ("EXPORT_RUNNING", None)

    def export_status_view(self, filename: str | None) -> dict:
        exp = self.inspection_export(filename)
        status, message = self.export_state_of(exp)
        return {"filename": exp.filename, "status": status, **({"message": message} if message else {})}

    def export_download(self, filename: str | None) -> bytes:
        exp = self.inspection_export(filename)
        status, _ = self.export_state_of(exp)
        if status != "EXPORT_SUCCEEDED":
            raise InspectorError(404, f"export {exp.filename} is not ready ({status})")
        with self.lock:
            exp.downloads += 1
        return self._report_zip(exp)

    # ------------------------------------------------------------------ the report
    def _report_zip(self, exp: InspectorExport) -> bytes:
        job = self.inspector_jobs.get(exp.job_id)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for o in exp.options:
                c = self._inspected_cluster(o.get("cluster_uuid"))
                name = re.sub(r"[^\w.-]+", "_", (c.name if c else None) or str(o.get("cluster_uuid")))
                items = list(o.get("items_names") or (job.items if job else []) or _FALLBACK_ITEMS)
                info = next((i for x, i in self._connected() if c is not None and x.id == c.id), None)
                hosts = [h["name"] for h in (info or {}).get("hosts") or []] or ["host-1", "host-2"]
                doc = report_docx(c.name if c else str(o.get("cluster_uuid")), hosts, items, exp.job_id,
                                  layout=self.inspector_layout, ext=exp.format)
                info_z = zipfile.ZipInfo(f"InspectorReport-{name}.{'docx' if exp.format == 'word' else 'pdf'}",
                                         _ZIP_TIME)
                info_z.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info_z, doc)
        return out.getvalue()

    # ------------------------------------------------------------------ snapshot
    def export_inspector(self) -> dict:
        with self.lock:
            return {"jobs": [dataclasses.asdict(j) for j in self.inspector_jobs.values()],
                    "exports": [dataclasses.asdict(e) for e in self.inspector_exports.values()],
                    "tunables": {"inspector_job_s": self.inspector_job_s,
                                 "inspector_export_s": self.inspector_export_s,
                                 "inspector_layout": self.inspector_layout}}

    def import_inspector(self, saved: dict) -> None:
        with self.lock:
            self.inspector_jobs = {j["id"]: _build(InspectorJob, j) for j in saved.get("jobs") or []}
            self.inspector_exports = {e["filename"]: _build(InspectorExport, e) for e in saved.get("exports") or []}
            tun = saved.get("tunables") or {}
            self.inspector_job_s = float(tun.get("inspector_job_s", self.inspector_job_s))
            self.inspector_export_s = float(tun.get("inspector_export_s", self.inspector_export_s))
            self.inspector_layout = str(tun.get("inspector_layout", self.inspector_layout))


def findings(cluster: str, hosts: list[str], items: list[str]) -> list[list[str]]:
    """The report's rows (``HEADERS``): every item OK on the cluster but the ``NOT_OK`` ones."""
    rows = []
    for item in items:
        bad = NOT_OK.get(item)
        if bad is None:
            rows.append([item, cluster, "正常", "", "-", ""])
            continue
        kind, severity, value, suggestion = bad
        obj = cluster if kind == "cluster" else hosts[min(int(kind[4:]), len(hosts) - 1)]
        rows.append([item, obj, "异常", severity, value, suggestion])
    return rows


def report_docx(cluster: str, hosts: list[str], items: list[str], job_id: str, *, layout: str = "findings",
                ext: str = "word") -> bytes:
    """A small real Word document (or, for ``pdf``, a minimal PDF) listing the findings; byte-deterministic."""
    rows = findings(cluster, hosts, items)
    if ext != "word":
        return b"%PDF-1.4\n% inspector report (simulated)\n%%EOF\n"
    import docx

    d = docx.Document()
    props = d.core_properties
    props.author, props.title, props.last_modified_by = "SmartX Inspector", f"{cluster} 巡检报告", "SmartX Inspector"
    from datetime import datetime

    props.created = props.modified = datetime(2025, 10, 1, 3, 45, 27)
    props.revision = 1
    d.add_heading(f"{cluster} 集群巡检报告 / Inspection report", 0)
    d.add_paragraph(f"巡检任务 / Job: {job_id}；巡检项 {len(rows)} 个")
    bad = [r for r in rows if r[2] != "正常"]
    if layout == "prose":
        for r in bad:
            d.add_paragraph(f"{r[0]} @ {r[1]}: {r[4]} -- {r[5]}")
        t = d.add_table(rows=1, cols=2)
        t.rows[0].cells[0].text, t.rows[0].cells[1].text = "Name", "Detail"
        for r in rows[:5]:
            cells = t.add_row().cells
            cells[0].text, cells[1].text = r[0], r[2]
    else:
        d.add_heading("概览 / Summary", 1)
        t = d.add_table(rows=1, cols=2)
        t.rows[0].cells[0].text, t.rows[0].cells[1].text = "级别", "数量"
        for sev in SEVERITIES:
            cells = t.add_row().cells
            cells[0].text, cells[1].text = sev, str(sum(1 for r in bad if r[3] == sev))
        half = (len(rows) + 1) // 2
        for title, part in (("硬件与主机 / Hardware and hosts", rows[:half]), ("存储与虚拟化 / Storage and VMs",
                                                                                 rows[half:])):
            if not part:
                continue
            d.add_heading(title, 1)
            t = d.add_table(rows=1, cols=len(HEADERS))
            for cell, h in zip(t.rows[0].cells, HEADERS):
                cell.text = h
            for r in part:
                for cell, v in zip(t.add_row().cells, r):
                    cell.text = v
    raw = io.BytesIO()
    d.save(raw)
    return _fixed_zip(raw.getvalue())


def _fixed_zip(data: bytes) -> bytes:
    """The same zip with fixed member timestamps (python-docx stamps the current time)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            z = zipfile.ZipInfo(info.filename, _ZIP_TIME)
            z.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(z, src.read(info.filename))
    return out.getvalue()


def _build(cls, d: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in known})


def _rfc3339(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
