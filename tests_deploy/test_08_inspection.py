"""08 集群巡检 / Stage 08: inspect the cluster with CloudTower's inspection centre and hand over its report (guide §08).

Sources: ../shared/reference/cloudtower-stage05-08-api-facts.md ("Stage 08", contradictions 4-5, open question 1)
and the guide's §08 (clients/inspector.py). Order: job, export (Word), download into the delivery folder
(``inspection/``), summary of the findings for the report. The steps depend on 05.cluster only (never on OBS or
backup: the older tool even inspects before them).

Decisions where the sources are silent or disagree:

* cluster id: ``cluster_uuids`` = the cluster's ``local_id`` (05.cluster's ``CloudTowerCluster.local_id``), as the
  guide's example and the older tool send it; the guide's text says "the id the connect returned" (a cuid), which
  its own example contradicts (contradiction 4). A refusal (4xx) says which id was sent and which kind it is;
* items: the guide's lists verbatim (tests_deploy/data/inspection_items.json): the job's 82, the export's 74;
* the job's status: see 08.job; the export's: ``EXPORT_RUNNING`` → ``EXPORT_SUCCEEDED``, ``EXPORT_FAILED`` fails
  at once with what CloudTower said;
* the report: the zip is kept as CloudTower made it; its .docx is unpacked next to it and read by header words;
  a layout that is not recognised does not fail the handover (08.summary says so and links the file)."""
from __future__ import annotations

import dataclasses
import re
import time
import zipfile
from pathlib import Path

import pytest

from clients import inspector as I
from clients.base import ApiError
from clients.docx_findings import read_findings
from clients.poll import wait_for
from fixtures.outputs import CloudTowerCluster, InspectionExport, InspectionFindings, InspectionJob

pytestmark = pytest.mark.stage08

JOB_POLL_S, JOB_LIMIT_S = 5, 600           # the older tool's 5 s / 600 s (facts 08.2)
EXPORT_POLL_S, EXPORT_LIMIT_S = 2, 600     # the guide polls every 1 s; the older tool 5 s / 600 s
FOLDER = "inspection"
CUID = re.compile(r"^c[a-z0-9]{24}$")
NEXT_RETRY = ("在 CloudTower 的巡检中心查看，排除后用 --resume 续跑", "check CloudTower's inspection centre, then continue "
              "with --resume")


# =========================================================================== shared
def _job(state) -> InspectionJob:
    job = state.take(InspectionJob)
    assert job and job.id, "08.job 没有记录巡检任务 / 08.job recorded no inspection job"
    return job


def _export(state) -> InspectionExport:
    exp = state.take(InspectionExport)
    assert exp and exp.filename, "08.export 没有记录导出文件 / 08.export recorded no export"
    return exp


def _limit(run, default_s: float) -> float:
    minutes = getattr(run, "inspection_timeout_min", None)
    return minutes * 60 if minutes else default_s


def _rel(run, path: Path) -> str:
    try:
        return path.relative_to(run.run_dir).as_posix()
    except ValueError:
        return path.as_posix()


# =========================================================================== 08.job
@pytest.mark.dependency(name="08.job", depends=["05.cluster"], scope="session")
def test_inspection_job(cloudtower, run, state, step, pacing):
    """创建巡检任务（指南的 82 个巡检项，集群 local_id）并等待其完成 / Create the inspection job (the guide's 82
    items, the cluster's local_id) and wait for it where CloudTower allows

    The status endpoint is uncertain (facts 08.2, open question 1: only the older tool reads
    ``GET …/v3/jobs/<id>``, its state names guessed; the guide exports at once). So the job is read and

    * SUCCEEDED / FINISHED / SUCCESS / COMPLETED: done; FAILED / ERROR: the step fails at once with what CloudTower
      said (and the next run creates a new job);
    * any other status word: still running, polled every 5 s up to 600 s (the older tool's values);
    * no such read (404 / 405 / 501) or an answer without ``status``: nothing to wait for here; the step says so and
      records ``status_from = export``: the export's status (08.export) then decides, as in the guide's flow.

    The job is a long operation: its intent is recorded before the call and its id right after; a resumed run
    reattaches to that job and never creates a second one."""
    c = state.need(CloudTowerCluster, "05.cluster", "local_id")
    lists = I.items()
    api = I.InspectorApi(cloudtower)
    with state.intent("08.job", op="inspection_job") as it:
        job_id, how, t0 = it.get("job_id"), "reattached", it.get("epoch") or time.time()
        if job_id and it.get("cluster_uuid") == c.local_id:
            step.note(f"续跑：接续上次运行创建的巡检任务 {job_id}，不重复创建 / resume: reattached to the inspection "
                      f"job {job_id} the interrupted run created; not created again")
        else:
            t0, how = time.time(), "created"
            it.begin(cluster_uuid=c.local_id, items=len(lists.job), epoch=t0)
            answer = _create(api, c, lists)
            step.save("job.json", answer)
            job_id = answer.get("id")
            assert job_id, (f"CloudTower 巡检任务请求未返回任务 ID / the inspection job answer has no id: "
                            f"{str(answer)[:300]}\n下一步 / next: {NEXT_RETRY[0]} / {NEXT_RETRY[1]}")
            it.attach(job_id=job_id)
            step.note(f"已创建巡检任务 {job_id}（{len(lists.job)} 个巡检项，集群 local_id {c.local_id}）/ created the "
                      f"inspection job {job_id} ({len(lists.job)} items, cluster local_id {c.local_id})")
        last = _wait_job(api, job_id, it, _limit(run, JOB_LIMIT_S), pacing)
    step.save("job-status.json", last if last is not None else {"job_read": "not served"})
    status_from = "job" if I.job_state(last) == "done" else "export"
    if status_from == "export":
        step.note("CloudTower 未提供巡检任务状态（无任务查询接口或应答无 status），以导出状态为准 / CloudTower serves no "
                  "job status (no job read, or no status in it): the export's status decides (the guide's flow)")
    state.put(InspectionJob(id=job_id, cluster_uuid=c.local_id, version=lists.version, items=len(lists.job),
                            status=(last or {}).get("status"), status_from=status_from, how=how,
                            seconds=round((time.time() - t0) / (pacing.scale or 1.0), 1)))


def _create(api: I.InspectorApi, c: CloudTowerCluster, lists: I.Items) -> dict:
    """``POST …/v3/jobs``; a 4xx naming the cluster is told in plain words (which id was sent, which kind)."""
    try:
        return api.create_job(c.local_id, lists.job, lists.version)
    except ApiError as exc:
        if exc.status is None or not 400 <= exc.status < 500 or exc.status == 401:
            raise
        kind = ("CloudTower 对象 ID（cuid）", "a CloudTower id (cuid)") if CUID.match(c.local_id or "") \
            else ("集群 local_id", "the cluster's local_id")
        raise AssertionError(
            f"CloudTower 巡检中心拒绝了巡检任务（HTTP {exc.status}）：{exc.body[:200]}；发送的 cluster_uuids 为 "
            f"{c.local_id}，即{kind[0]} / the inspection centre refused the job (HTTP {exc.status}): cluster_uuids was "
            f"{c.local_id}, {kind[1]} (CloudTower id {c.id})\n下一步 / next: 巡检中心要集群的 local_id"
            f"（get-clusters 的 local_id），不是 CloudTower 的集群 ID；核对 05.cluster 记录的 local_id 后用 --resume 续跑 / "
            f"the inspection centre wants the cluster's local_id (get-clusters' local_id), not the CloudTower id; check "
            f"the local_id 05.cluster recorded, then continue with --resume") from exc


def _wait_job(api: I.InspectorApi, job_id: str, it, limit: float, pacing) -> dict | None:
    """Wait while CloudTower reads the job as running; None when it serves no job read."""
    def done(job: dict | None) -> bool:
        state = I.job_state(job)
        if state == "failed":
            it.attach(failed_job_id=job_id, job_id=None)     # the next run creates a new job
            raise AssertionError(
                f"巡检任务失败：{job.get('status')}（{I.reason(job)}）/ the inspection job failed: {job.get('status')} "
                f"({I.reason(job)}) (job {job_id})\n下一步 / next: 在 CloudTower 巡检中心查看该任务，排除后用 --resume "
                f"续跑（将创建新的巡检任务）/ check the job in CloudTower's inspection centre, fix the cause, then "
                f"continue with --resume (a new job is created)")
        return state != "running"

    return wait_for(lambda: api.job(job_id), done, what="巡检任务 / inspection job", interval=JOB_POLL_S,
                    limit=limit, pacing=pacing, describe=lambda j: f"status={(j or {}).get('status')}",
                    hint="在 CloudTower 巡检中心查看任务进度 / check the job's progress in CloudTower's inspection centre")


# =========================================================================== 08.export
@pytest.mark.dependency(name="08.export", depends=["08.job"], scope="session")
def test_inspection_export(cloudtower, run, state, step, pacing):
    """导出巡检报告（Word）并等待 EXPORT_SUCCEEDED / Export the report as Word and wait for EXPORT_SUCCEEDED

    ``:exportReport?format=word`` with the guide's 74 items and ``graph_duration_months`` 6, then
    ``export/status`` until ``EXPORT_SUCCEEDED``; ``EXPORT_FAILED`` fails at once with what CloudTower said (and the
    next run exports anew). The export is a long operation: a resumed run reattaches to its file name."""
    job, c = _job(state), state.need(CloudTowerCluster, "05.cluster", "local_id")
    lists = I.items()
    api = I.InspectorApi(cloudtower)
    with state.intent("08.export", op="inspection_export") as it:
        filename, how = it.get("filename"), "reattached"
        if filename and it.get("job_id") == job.id:
            step.note(f"续跑：接续上次运行的导出 {filename}，不重复导出 / resume: reattached to the export {filename} "
                      f"the interrupted run started; not exported again")
        else:
            how = "created"
            it.begin(job_id=job.id)
            answer = api.export(job.id, c.local_id, lists.export, lists.months)
            step.save("export.json", answer)
            filename = answer.get("filename")
            assert filename, (f"导出请求未返回文件名 / the export answer has no filename: {str(answer)[:300]}\n"
                              f"下一步 / next: {NEXT_RETRY[0]} / {NEXT_RETRY[1]}")
            it.attach(filename=filename)
        last = _wait_export(api, filename, it, _limit(run, EXPORT_LIMIT_S), pacing)
    step.save("export-status.json", last)
    state.put(InspectionExport(filename=filename, job_id=job.id, format=I.FORMAT, status=last.get("status"), how=how))
    if job.status_from == "export":
        state.put(dataclasses.replace(job, status=f"{last.get('status')} (export)"))


def _wait_export(api: I.InspectorApi, filename: str, it, limit: float, pacing) -> dict:
    def done(answer: dict) -> bool:
        status = answer.get("status")
        if status == I.EXPORT_FAILED:
            it.attach(failed_filename=filename, filename=None)    # the next run exports anew
            raise AssertionError(
                f"巡检报告导出失败：{I.reason(answer)} / the report export failed: {I.reason(answer)} ({filename})\n"
                f"下一步 / next: 在 CloudTower 巡检中心查看该任务与导出，排除后用 --resume 续跑（将重新导出；任务本身失败时"
                f"请不带 --resume 重新运行以重新巡检）/ check the job and its export in CloudTower's inspection centre, "
                f"then continue with --resume (it exports again; if the job itself failed, start a new run to "
                f"inspect again)")
        return status == I.EXPORT_SUCCEEDED

    return wait_for(lambda: api.export_status(filename), done, what="巡检报告导出 / report export",
                    interval=EXPORT_POLL_S, limit=limit, pacing=pacing,
                    describe=lambda a: f"status={a.get('status')}",
                    hint="在 CloudTower 巡检中心查看导出进度 / check the export in CloudTower's inspection centre")


# =========================================================================== 08.download
@pytest.mark.dependency(name="08.download", depends=["08.export"], scope="session")
def test_inspection_download(cloudtower, run, state, step):
    """下载导出的 zip 到交付目录 inspection/，并解出其中的 Word 文档 / Download the export's zip into the delivery
    folder (``inspection/``), streamed, and unpack its Word document next to it

    ``…/v1/export/download`` (note v1) is streamed to a temp file and renamed when complete. The file must be a valid
    zip holding at least one ``.docx``; each is unpacked next to the zip (flat, names sanitised)."""
    exp = _export(state)
    folder = Path(run.run_dir) / FOLDER
    dest = folder / Path(exp.filename).name
    try:
        got = I.InspectorApi(cloudtower).download(exp.filename, dest)
    except I.NotReady as exc:
        raise AssertionError(
            f"下载返回 404：导出文件 {exp.filename} 尚未就绪或已不存在 / the download answered 404: the export "
            f"{exp.filename} is not ready or gone\n下一步 / next: 用 --resume 续跑（08.export 已报告完成时，请在 CloudTower "
            f"巡检中心确认该报告）/ continue with --resume (08.export saw it succeed: check the report in CloudTower's "
            f"inspection centre)") from exc
    step.note(f"已下载 {_rel(run, dest)}：{got.size} 字节，SHA-256 {got.sha256[:16]}… / downloaded {got.size} bytes")
    assert zipfile.is_zipfile(dest), (f"下载的文件不是有效的 zip / the download is not a valid zip: {_rel(run, dest)} "
                                      f"({got.size} bytes)\n下一步 / next: {NEXT_RETRY[0]} / {NEXT_RETRY[1]}")
    with zipfile.ZipFile(dest) as z:
        bad = z.testzip()
        assert bad is None, f"zip 中的 {bad} 已损坏 / {bad} in the zip is corrupt"
        names = [n for n in z.namelist() if n.lower().endswith(".docx") and not n.endswith("/")]
        step.save("zip-members.json", z.namelist())
        assert names, (f"zip 中没有 .docx / the zip holds no .docx: {z.namelist()}\n下一步 / next: 确认导出格式为 word "
                       f"/ check that the export format is word")
        docx = []
        for n in names:
            out = folder / re.sub(r"[^\w.\-]+", "_", Path(n).name)
            out.write_bytes(z.read(n))
            assert zipfile.is_zipfile(out), f"{n} 不是有效的 Word 文档 / {n} is not a valid Word document"
            docx.append(_rel(run, out))
    state.put(dataclasses.replace(exp, zip_path=_rel(run, dest), docx=docx, size=got.size, sha256=got.sha256))


# =========================================================================== 08.summary
@pytest.mark.dependency(name="08.summary", depends=["08.download"], scope="session")
def test_inspection_summary(run, state, step):
    """汇总巡检结果：按级别计数，列出每个非正常项（名称、对象、值、建议）/ Summarise the findings: counts by
    severity and every item that is not OK (name, object, value, suggestion)

    The .docx is read with python-docx; findings tables are found by their header words (检查项 / 巡检项, 对象,
    结果 / 状态, 级别, 值, 建议), never by position (clients/docx_findings.py). A layout that is not recognised does
    not fail the step: the export is valid (08.download), so the step passes, says the findings could not be read
    and links the file for the customer to read."""
    exp = _export(state)
    assert exp.docx, "08.download 没有记录 Word 文档 / 08.download recorded no Word document"
    total = InspectionFindings(recognised=True, files=list(exp.docx))
    reasons = []
    for rel in exp.docx:
        f = read_findings(Path(run.run_dir) / rel)
        if not f.recognised:
            reasons.append(f"{rel}: {f.reason}")
            continue
        total.tables += f.tables
        total.items += f.items
        for k, v in f.by_severity.items():
            total.by_severity[k] = total.by_severity.get(k, 0) + v
        total.not_ok += [x.to_json() for x in f.not_ok]
    if not total.tables:
        note = (f"无法识别巡检报告的版式，未能读出巡检结果，请直接查看 {', '.join(exp.docx)} / the report's layout was not "
                f"recognised: the findings could not be read; see {', '.join(exp.docx)} ({'; '.join(reasons)})")
        step.note(note)
        state.put(InspectionFindings(recognised=False, files=list(exp.docx), note=note))
        return
    step.save("findings.json", dataclasses.asdict(total))
    counts = ", ".join(f"{k} {v}" for k, v in total.by_severity.items())
    step.note(f"巡检 {total.items} 项：{counts}；非正常 {len(total.not_ok)} 项 / {total.items} items inspected: "
              f"{counts}; {len(total.not_ok)} not OK")
    for x in total.not_ok:
        step.note(f"{x['severity'] or '-'} {x['item']} @ {x['object'] or '-'}: {x['value'] or '-'} → "
                  f"{x['suggestion'] or '-'}")
    if reasons:
        total.note = "部分文档未能识别 / some documents were not recognised: " + "; ".join(reasons)
    state.put(total)
