"""The simulated inspection centre (mocks/cloudtower/inspector.py, responses_inspector.py) on the wire: jobs by the
cluster's local_id, job status over simulated time (and its absence under a profile), the Word export, its status,
the download (404 before it is ready; a real zip holding a real .docx), faults, auth, and snapshots."""
from __future__ import annotations

import io
import zipfile

import pytest

from clients.addressing import AddressMap
from clients.base import TlsMode
from clients.cloudtower import CloudTowerClient
from mocks.presets import apply_preset
from mocks.server import Simulator
from plan.example import write_example
from plan.parse import load

V3, V1 = "/api/inspector/api/v3", "/api/inspector/api/v1"
ITEMS = ["fan_check", "host_power_is_on", "ipmi_account_is_valid", "zbs_chunk_dirty_cache_ratio"]


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return load(write_example(tmp_path_factory.mktemp("insp") / "plan.xlsx", hosts=3, business=1))[0]


@pytest.fixture
def world(plan, monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    owned = []

    def build(*profiles):
        # time moves by sim.advance(); 0.01 keeps the wall clock between two reads from moving it by much
        sim = Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False, profiles=list(profiles)).start()
        owned.append(sim)
        apply_preset(sim, "cloudtower-configured")
        ct = CloudTowerClient(str(plan.cloudtower.ip), tls=TlsMode(True, sim.ca_bundle),
                              amap=AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive))
        ct.login()
        owned.append(ct)
        return sim, ct, ct.rest("get-clusters", {"where": {}})[0]

    yield build
    for o in owned:
        o.close()


def _job(ct, uuid, items=ITEMS):
    return ct.authed("POST", f"{V3}/jobs", json_body={"version": "1.1.1-rc.11", "cluster_uuids": [uuid],
                                                      "user_defined_items_names": items})


def _export(ct, job_id, uuid, fmt="word"):
    return ct.authed("POST", f"{V3}/jobs/{job_id}:exportReport", params={"format": fmt} if fmt else None,
                     json_body={"options": [{"cluster_uuid": uuid, "items_names": ITEMS, "graph_duration_months": 6}]})


def _status(ct, filename):
    return ct.authed("GET", f"{V3}/export/status", params={"filename": filename}).json()


def _download(ct, filename):
    return ct.authed("GET", f"{V1}/export/download", params={"filename": filename})


def test_the_job_takes_the_local_id_and_refuses_a_cloudtower_id(world):
    sim, ct, c = world()
    for wrong in (c["id"], "00000000-0000-0000-0000-000000000000"):
        r = _job(ct, wrong)
        assert r.status_code == 404 and r.json() == {"code": 5, "message": f"cluster {wrong} not found",
                                                     "details": []}
    assert _job(ct, None).status_code == 400
    r = _job(ct, c["local_id"])
    assert r.status_code == 200
    job = r.json()
    assert len(job["id"]) == 27 and job["cluster_uuids"] == [c["local_id"]] and job["cluster_names"] == {}
    assert "status" not in job, "the create answers as the guide shows it"
    tower = sim.state.cloudtower.tower(ct.address)
    assert list(tower.inspector_jobs) == [job["id"]]


def test_job_status_runs_then_succeeds_and_the_export_follows(world):
    sim, ct, c = world()
    job = _job(ct, c["local_id"]).json()
    assert ct.authed("GET", f"{V3}/jobs/{job['id']}").json()["status"] == "RUNNING"
    r = _export(ct, job["id"], c["local_id"])
    filename = r.json()["filename"]
    assert filename.startswith("InspectorReport-") and filename.endswith(f"-{job['id']}.zip")
    assert _status(ct, filename) == {"filename": filename, "status": "EXPORT_RUNNING"}
    early = _download(ct, filename)
    assert early.status_code == 404 and "not ready" in early.json()["message"]
    sim.advance(121)
    assert ct.authed("GET", f"{V3}/jobs/{job['id']}").json()["status"] == "SUCCEEDED"
    assert _status(ct, filename)["status"] == "EXPORT_RUNNING"       # the export takes its own time
    sim.advance(21)
    assert _status(ct, filename)["status"] == "EXPORT_SUCCEEDED"
    got = _download(ct, filename)
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        [name] = z.namelist()
        assert name.endswith(".docx")
        import docx

        doc = docx.Document(io.BytesIO(z.read(name)))
    headers = [[cell.text for cell in t.rows[0].cells] for t in doc.tables]
    assert headers[0] == ["级别", "数量"] and headers[1] == ["巡检项", "对象", "结果", "级别", "值", "建议"]
    rows = [[cell.text for cell in r.cells] for t in doc.tables[1:] for r in t.rows[1:]]
    assert sorted(r[0] for r in rows) == sorted(ITEMS)
    assert sorted(r[3] for r in rows if r[2] != "正常") == ["严重", "提示", "警告"]
    assert _download(ct, filename).content == got.content, "deterministic bytes"


def test_export_needs_the_format_and_a_known_job(world):
    sim, ct, c = world()
    job = _job(ct, c["local_id"]).json()
    assert _export(ct, job["id"], c["local_id"], fmt=None).status_code == 400
    assert _export(ct, job["id"], c["local_id"], fmt="xls").status_code == 400
    assert _export(ct, "nope", c["local_id"]).status_code == 404
    assert _export(ct, job["id"], c["id"]).status_code == 404
    assert ct.authed("GET", f"{V3}/export/status", params={"filename": "x.zip"}).status_code == 404
    assert _download(ct, "x.zip").status_code == 404


def test_a_failed_job_fails_its_export(world):
    sim, ct, c = world()
    sim.faults.add({"method": "POST", "path": f"{V3}/jobs", "action": {"operation": "fail", "msg": "agent down"}})
    job = _job(ct, c["local_id"]).json()
    filename = _export(ct, job["id"], c["local_id"]).json()["filename"]
    sim.advance(31)
    read = ct.authed("GET", f"{V3}/jobs/{job['id']}").json()
    assert read["status"] == "FAILED" and read["message"] == "agent down"
    st = _status(ct, filename)
    assert st["status"] == "EXPORT_FAILED" and "agent down" in st["message"]
    assert _download(ct, filename).status_code == 404


def test_a_failed_export(world):
    sim, ct, c = world()
    sim.faults.add({"method": "POST", "path": f"{V3}/jobs/*:exportReport",
                    "action": {"operation": "fail", "msg": "disk full"}})
    job = _job(ct, c["local_id"]).json()
    filename = _export(ct, job["id"], c["local_id"]).json()["filename"]
    sim.advance(11)
    assert _status(ct, filename) == {"filename": filename, "status": "EXPORT_FAILED", "message": "disk full"}


def test_the_token_is_required(world):
    sim, ct, c = world()
    r = ct.request("POST", f"{V3}/jobs", json_body={"cluster_uuids": [c["local_id"]]},
                   headers={"Authorization": "nope"})
    assert r.status_code == 401 and r.json()["code"] == 16


def test_profile_without_a_job_read(world):
    sim, ct, c = world("inspector-job-status-absent")
    job = _job(ct, c["local_id"]).json()
    assert ct.authed("GET", f"{V3}/jobs/{job['id']}").status_code == 404
    filename = _export(ct, job["id"], c["local_id"]).json()["filename"]
    sim.advance(200)
    assert _status(ct, filename)["status"] == "EXPORT_SUCCEEDED"


def test_snapshots_keep_jobs_exports_and_knobs(world, plan):
    sim, ct, c = world()
    tower = sim.state.cloudtower.tower(ct.address)
    tower.inspector_layout = "prose"
    job = _job(ct, c["local_id"]).json()
    filename = _export(ct, job["id"], c["local_id"]).json()["filename"]
    saved = tower.export_state()["inspector"]
    assert [j["id"] for j in saved["jobs"]] == [job["id"]] and saved["exports"][0]["filename"] == filename
    again = Simulator.from_plan(plan, time_scale=0.0005, load_env_faults=False, profiles=[],
                                snapshot=sim.snapshot())
    try:
        t2 = again.state.cloudtower.tower(ct.address)
        assert list(t2.inspector_jobs) == [job["id"]] and list(t2.inspector_exports) == [filename]
        assert t2.inspector_layout == "prose"
    finally:
        again.close()
