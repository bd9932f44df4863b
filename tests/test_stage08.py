"""Stage 08 (inspection) against the simulator: the happy path, an unrecognised layout, a resumed job, and every
fault the issue names (a failed job, a failed export, a download before the export is ready, a wrong cluster id).

The steps are called one by one (in process) against a simulator fast-forwarded to ``cloudtower-configured``
(stages 01-06); stage 05's steps run first through the same harness (they find the cluster attached and publish it
as 05 would). The assertions read the inspection centre's own state in the simulator (mocks/cloudtower/inspector.py).
"""
from __future__ import annotations

import dataclasses
import zipfile

import pytest

from clients import inspector as I
from clients.poll import WaitTimeout
from fixtures.outputs import CloudTowerCluster, InspectionExport, InspectionFindings, InspectionJob
from plan.example import write_example
from plan.parse import load

from .ct_harness import Harness, fail_once, fails_clearly, harnesses, simulators
from .suite_runs import load_steps

S08 = load_steps("test_08_inspection", "_s08_")
JOBS = "/api/inspector/api/v3/jobs"
EXPORT = "/api/inspector/api/v3/jobs/*:exportReport"


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return load(write_example(tmp_path_factory.mktemp("s08") / "plan.xlsx", hosts=3, business=1))[0]


@pytest.fixture
def world(plan, monkeypatch):
    with simulators(monkeypatch) as build:
        yield lambda *profiles: build(plan, *profiles, preset="cloudtower-configured")


class Stage08(Harness):
    """The harness with stage 08's steps (stage 05's run first)."""

    def job(self):
        S08.test_inspection_job(self.ct, self.run, self.state, self.step("08.job"), self.pacing)

    def export(self):
        S08.test_inspection_export(self.ct, self.run, self.state, self.step("08.export"), self.pacing)

    def download(self):
        S08.test_inspection_download(self.ct, self.run, self.state, self.step("08.download"))

    def summary(self):
        S08.test_inspection_summary(self.run, self.state, self.step("08.summary"))

    def all(self):
        for fn in (self.job, self.export, self.download, self.summary):
            fn()


@pytest.fixture
def harness(tmp_path):
    with harnesses(tmp_path, Stage08) as make:
        yield lambda sim, plan, name="run", **kw: make(sim, plan, name, **kw)


# =========================================================================== the normal path
def test_inspection_runs_exports_downloads_and_summarises(world, plan, harness):
    sim = world()
    h = harness(sim, plan).attach()
    h.all()
    job, exp, found = (h.state.take(k) for k in (InspectionJob, InspectionExport, InspectionFindings))
    c = h.state.take(CloudTowerCluster)
    tower = h.tower
    [sim_job] = tower.inspector_jobs.values()
    assert sim_job.cluster_uuids == [c.local_id] != [c.id], "cluster_uuids is the local_id"
    assert len(sim_job.items) == 82 and job.items == 82 and job.how == "created"
    assert job.status == "SUCCEEDED" and job.status_from == "job"
    [sim_exp] = tower.inspector_exports.values()
    assert len(sim_exp.options[0]["items_names"]) == 74 and sim_exp.format == "word"
    assert sim_exp.downloads == 1 and exp.status == "EXPORT_SUCCEEDED"
    zip_path = h.run.run_dir / exp.zip_path
    assert exp.zip_path.startswith("inspection/") and zipfile.is_zipfile(zip_path)
    assert [p.split("/")[0] for p in exp.docx] == ["inspection"] and (h.run.run_dir / exp.docx[0]).is_file()
    assert found.recognised and found.items == 74 and found.tables == 2
    assert found.by_severity == {"正常 / OK": 71, "严重": 1, "警告": 1, "提示": 1}
    bad = {f["item"]: f for f in found.not_ok}
    assert set(bad) == {"ipmi_account_is_valid", "fan_check", "zbs_chunk_dirty_cache_ratio"}
    assert bad["fan_check"]["value"].startswith("FAN3") and bad["fan_check"]["suggestion"]
    assert bad["fan_check"]["object"] != c.name and bad["zbs_chunk_dirty_cache_ratio"]["object"] == c.name
    assert "3 not OK" in h.notes("08.summary") and "fan_check" in h.notes("08.summary")


def test_an_unrecognised_layout_still_passes_and_says_so(world, plan, harness):
    sim = world()
    h = harness(sim, plan).attach()
    h.tower.inspector_layout = "prose"
    h.all()
    found = h.state.take(InspectionFindings)
    assert not found.recognised and found.files and found.files[0].endswith(".docx")
    assert "could not be read" in found.note and found.files[0] in found.note
    assert "not recognised" in h.notes("08.summary")


def test_without_a_job_read_the_export_status_decides(world, plan, harness):
    sim = world("inspector-job-status-absent")
    h = harness(sim, plan).attach()
    h.all()
    job = h.state.take(InspectionJob)
    assert job.status_from == "export" and job.status == "EXPORT_SUCCEEDED (export)"
    assert "export's status decides" in h.notes("08.job")
    assert h.state.take(InspectionFindings).recognised


# =========================================================================== faults
def test_a_failed_job_fails_at_once_and_the_next_run_creates_a_new_one(world, plan, harness):
    sim = world()
    fail_once(sim, JOBS, "collector unreachable on node 2")
    h = harness(sim, plan).attach()
    with fails_clearly(r"inspection job failed: FAILED .*collector unreachable"):
        h.job()
    assert sim.count("GET", JOBS + "/*") < 30, "FAILED fails at once, not at the limit"
    h.job()                                     # the resume: a new job, which succeeds
    assert len(h.tower.inspector_jobs) == 2 and h.state.take(InspectionJob).status == "SUCCEEDED"


def test_a_failed_export_fails_at_once_with_the_reason(world, plan, harness):
    sim = world()
    fail_once(sim, EXPORT, "render service out of memory")
    h = harness(sim, plan).attach()
    h.job()
    with fails_clearly(r"report export failed: message: render service out of memory"):
        h.export()
    h.export()                                  # the resume exports anew
    assert len(h.tower.inspector_exports) == 2 and h.state.take(InspectionExport).status == "EXPORT_SUCCEEDED"


def test_a_download_before_the_export_is_ready_fails_clearly(world, plan, harness):
    sim = world()
    h = harness(sim, plan).attach()
    h.job()
    h.tower.inspector_export_s = 10 ** 6         # the export never ends
    answer = I.InspectorApi(h.ct).export(h.state.take(InspectionJob).id, h.state.take(CloudTowerCluster).local_id,
                                         I.items().export)
    h.state.put(InspectionExport(filename=answer["filename"], job_id="j", status="EXPORT_SUCCEEDED"))
    with fails_clearly(r"download answered 404: .* not ready"):
        h.download()
    assert not list((h.run.run_dir / "inspection").glob("*.zip")), "nothing half-written is left"


def test_a_cloudtower_id_instead_of_the_local_id_is_refused_in_plain_words(world, plan, harness):
    sim = world()
    h = harness(sim, plan).attach()
    c = h.state.take(CloudTowerCluster)
    h.state.put(dataclasses.replace(c, local_id=c.id))     # what the guide's text would send: the cuid
    with pytest.raises(AssertionError, match=r"HTTP 404.*cluster_uuids was c\w+, a CloudTower id \(cuid\)") as e:
        h.job()
    assert "local_id" in str(e.value).split("下一步 / next:")[1]
    assert not h.tower.inspector_jobs


# =========================================================================== resume
def test_a_resumed_job_step_reattaches_instead_of_creating_another(world, plan, harness):
    sim = world()
    h = harness(sim, plan).attach()
    h.tower.inspector_job_s = 10 ** 6           # the job runs past the limit: the run is "killed" mid-wait
    h.run.inspection_timeout_min = 0.05
    with pytest.raises(WaitTimeout):
        h.job()
    pending = h.state.pending_intents()["08.job"]
    assert pending["job_id"] in h.tower.inspector_jobs
    h.tower.inspector_jobs[pending["job_id"]].run_s = 60.0
    h.run.inspection_timeout_min = None
    h.job()
    assert len(h.tower.inspector_jobs) == 1 and sim.count("POST", JOBS) == 1, "no second job"
    assert h.state.take(InspectionJob).how == "reattached" and "not created again" in h.notes("08.job")
    assert "08.job" not in h.state.pending_intents()
