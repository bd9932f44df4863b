"""A killed SVT / ISO upload against the simulator, under each upload profile (mocks/fisheye/uploads.py):
the next run continues the same volume from the chunk it stopped at, or -- where the server cannot
continue it -- deletes the orphaned partial volume first and starts over. Asserted on the simulator's
request log and its upload accounting."""
from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from clients.addressing import AddressMap
from clients.base import TlsMode
from clients.fisheye import FisheyeClient, IsoUpload, SvtUpload
from clients.upload import finished_images, upload_file
from mocks import Simulator

from .conftest import SIM_CHUNK
from .test_sim_fisheye import deploy, host_ips
from .test_upload import Killed, KillAfter, MemoryJournal

CHUNKS, KILL_AT = 10, 6
ROUTES = {"SVT": ("/api/v2/svt_image/create_volume", "/api/v2/svt_image/upload_template", SvtUpload),
          "ISO": ("/api/v2/images/upload/volume", "/api/v2/images/upload", IsoUpload)}


@pytest.fixture(scope="module")
def world(plan):
    sim = Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False).start()
    try:
        deploy(sim, plan)
        sim.clock.time_scale = 1e6
        sim.fisheye.chunk_size = SIM_CHUNK
        first = fisheye(sim, plan, login=False)
        first.setup_root(plan.cluster_admin_password)
        first.close()
        yield sim
    finally:
        sim.close()


def fisheye(sim, plan, login: bool = True) -> FisheyeClient:
    """A new client, logged in: a new session, as a resumed run has."""
    fe = FisheyeClient(host_ips(plan)[0], username="root", password=plan.cluster_admin_password,
                       amap=AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive),
                       tls=TlsMode(True, sim.ca_bundle))
    if login:
        fe.login()
    return fe


def chunk_calls(sim, path: str, image_uuid: str, since: int) -> list[int]:
    """chunk_num of every chunk call (answered or not) for that image after request ``since``."""
    out = []
    for r in sim.requests:
        q = parse_qs(r.query)
        if r.seq > since and r.method == "POST" and r.path == path and q.get("image_uuid") == [image_uuid]:
            out.append(int(q["chunk_num"][0]))
    return out


def last_seq(sim) -> int:
    return max((r.seq for r in sim.requests), default=0)


@pytest.mark.parametrize("kind", ["SVT", "ISO"])
@pytest.mark.parametrize("profile", ["status", "listed", "opaque", "no-resume"])
def test_a_killed_upload_continues_the_same_volume_or_deletes_the_orphan(world, plan, tmp_path, profile, kind):
    sim = world
    sim.fisheye.upload_profile = profile
    create, chunk_route, flavour = ROUTES[kind]
    iso = tmp_path / f"{profile}-{kind}.iso"
    iso.write_bytes(bytes(range(251)) * (CHUNKS * SIM_CHUNK // 251 - 3))   # 10 chunks, the last one short
    journal = MemoryJournal()

    fe = fisheye(sim, plan)
    creates = sim.count("POST", create)
    with pytest.raises(Killed):
        upload_file(iso, KillAfter(flavour(fe), KILL_AT), journal=journal, record_every=0)
    fe.close()
    first = sim.fisheye.upload_by_name(iso.name, kind)
    assert first.status == "uploading" and first.to_upload == list(range(KILL_AT, CHUNKS))
    assert journal.record["image_uuid"] == first.image_uuid

    since = last_seq(sim)
    fe = fisheye(sim, plan)                                   # the resumed run: a new session
    try:
        result = upload_file(iso, flavour(fe), journal=journal, record_every=0)
        listed = finished_images(fe.list_images(), iso.name, iso.stat().st_size)
    finally:
        fe.close()
    final = sim.fisheye.upload_by_name(iso.name, kind)
    assert final.status == "ready" and [i["uuid"] for i in listed] == [final.image_uuid]
    if profile == "no-resume":
        # the server will not continue another session's volume: it is deleted first, then a new one
        assert first.status == "deleted" and final.image_uuid != first.image_uuid
        assert result.orphans_deleted == [first.image_uuid]
        assert sim.count("DELETE", f"/api/v2/images/{first.image_uuid}", status=200) == 1
        assert sim.count("POST", create) == creates + 2
        assert sorted(chunk_calls(sim, chunk_route, final.image_uuid, since)) == list(range(CHUNKS))
    else:
        # the same volume; no chunk below KILL_AT sent again; no second volume
        assert final.image_uuid == first.image_uuid and sim.count("POST", create) == creates + 1
        assert chunk_calls(sim, chunk_route, first.image_uuid, since) == list(range(KILL_AT, CHUNKS))
        assert final.received == [1] * CHUNKS and result.resumed_at == KILL_AT * SIM_CHUNK
        assert result.orphans_deleted == []
    assert journal.record is None


def test_a_partial_volume_is_not_taken_for_a_finished_image(world, plan, tmp_path):
    """Profile listed: the list shows the partial volume; the steps' "already there" check must skip it."""
    sim = world
    sim.fisheye.upload_profile = "listed"
    iso = tmp_path / "partial.iso"
    iso.write_bytes(b"x" * (3 * SIM_CHUNK))
    fe = fisheye(sim, plan)
    try:
        with pytest.raises(Killed):
            upload_file(iso, KillAfter(IsoUpload(fe), 1))
        items = [i for i in fe.list_images() if i.get("name") == iso.name]
        assert len(items) == 1 and items[0]["to_upload"] == [1, 2] and items[0]["resource_state"] == "uploading"
        assert finished_images(fe.list_images(), iso.name, 3 * SIM_CHUNK) == []
        result = upload_file(iso, IsoUpload(fe))          # no journal: the listing finds it
        assert result.resumed_at == SIM_CHUNK and result.chunks_sent == 2
    finally:
        fe.close()


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["status", "no-resume"])
def test_a_suite_run_killed_mid_upload_resumes_the_upload(tmp_path_factory, tmp_path, profile):
    """The real thing: SIGKILL the acceptance run while a chunk is in flight, then --resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from plan.example import write_example

    from .suite_runs import ROOT, outcomes, simulator, state_of

    plan_file = write_example(tmp_path_factory.mktemp("killplan") / "plan.xlsx")
    run_dir, chunk_route = tmp_path / "run", ROUTES["SVT"][1]
    # --rootdir/--config-file: no re-exec of pytest for a plan outside the suite folder, so the PID killed is the run
    args = [sys.executable, "-m", "pytest", "--plan", str(plan_file), "-m", "stage01 or stage02 or stage03",
            "--rootdir", str(ROOT), "--config-file", str(ROOT / "pyproject.toml")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST_", "PYTEST_ADDOPTS"))}
    with simulator(plan_file) as sim:
        sim.fisheye.chunk_size = 1024 * 1024                   # the 20 MiB stand-in: 21 chunks
        sim.fisheye.upload_profile = profile
        # the 10th chunk is received and counted, but its answer never comes before the kill
        sim.faults.add({"method": "POST", "path": chunk_route, "nth": 10, "times": 1, "action": {"delay": 8}})
        proc = subprocess.Popen([*args, "--simulator", sim.control_url, "--run-dir", str(run_dir)], cwd=ROOT,
                                env=env, stdout=open(tmp_path / "first.log", "w"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while sim.count("POST", chunk_route) < 10 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        first = sim.fisheye.upload_by_name("SMTX_VMTOOLS-3.2.0-sim.iso", "SVT")
        assert first is not None, (tmp_path / "first.log").read_text()[-3000:]
        assert first.status == "uploading" and first.to_upload == list(range(10, 21))
        since = last_seq(sim)

        second = subprocess.run([*args, "--simulator", sim.control_url, "--resume", str(run_dir)], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, f"killed PID {proc.pid}\n" + second.stdout[-4000:]
        assert outcomes(run_dir)["03.svt"] == "passed"
        final = sim.fisheye.upload_by_name("SMTX_VMTOOLS-3.2.0-sim.iso", "SVT")
        assert final.status == "ready" and state_of(run_dir)["outputs"]["svt"]["image_uuid"] == final.image_uuid
        if profile == "no-resume":
            assert first.status == "deleted" and final.image_uuid != first.image_uuid
            assert sim.count("POST", "/api/v2/svt_image/create_volume") == 2
        else:
            assert final is first and final.received == [1] * 21          # no chunk received twice
            assert chunk_calls(sim, chunk_route, first.image_uuid, since) == list(range(10, 21))
            assert sim.count("POST", "/api/v2/svt_image/create_volume") == 1
        assert [u.image_uuid for u in sim.fisheye.uploads.values() if u.status == "uploading"] == []
