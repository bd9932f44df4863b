"""Simulated FIO worker guests (issue 19, S2): the performance model (mocks/fio_model.py), fio's JSON and bandwidth
log, and the guest's ``fio`` / ``lsblk`` / ``date`` over real SSH (paramiko) on a simulator on loopback. A small fake
VM stands in for CloudTower's VM model (``GuestSpec``)."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import paramiko
import pytest

from mocks import Simulator
from mocks import fio_model as fm
from mocks.guest import GUEST_PASSWORD, GuestSpec, attach_guest, detach_guest, fio_runs, parse_fio_args
from mocks.ssh import ssh_service

from .ct_world import three_host_plan

plan = three_host_plan("fioplan")

GIB = 1024 ** 3
IP = "10.0.20.231"                      # first address of the plan's temporary test range
# the six profiles of design §6 (the suite's data file is L's; these are the same shapes)
PROFILES = {
    "4k-randread": fm.Job("4k-randread", "randread", 4096, 32, 4),
    "4k-randwrite": fm.Job("4k-randwrite", "randwrite", 4096, 32, 4),
    "4k-randrw-70-30": fm.Job("4k-randrw-70-30", "randrw", 4096, 32, 4, rwmixread=70),
    "1m-seqread": fm.Job("1m-seqread", "read", 1 << 20, 32, 1),
    "1m-seqwrite": fm.Job("1m-seqwrite", "write", 1 << 20, 32, 1),
    "4k-randread-qd1": fm.Job("4k-randread-qd1", "randread", 4096, 1, 1),
}
FIO = ("fio --name={name} --filename=/dev/vdb --rw={rw} --bs={bs} --iodepth=32 --numjobs={nj} --direct=1 "
       "--ioengine=libaio --time_based --runtime={rt} --ramp_time={ramp} --group_reporting --output-format=json")


def fio_cmd(name="t", rw="randread", bs="4k", nj=4, rt=60, ramp=5, extra="") -> str:
    return FIO.format(name=name, rw=rw, bs=bs, nj=nj, rt=rt, ramp=ramp) + (" " + extra if extra else "")


@dataclass
class FakeVm:
    vm_id: str = "vm-fio-01"
    name: str = "smtx-acceptance-fio-01"
    peers: int = 1
    all_flash: bool = False
    migrations: list = field(default_factory=list)

    def spec(self) -> GuestSpec:
        return GuestSpec(vm_id=self.vm_id, name=self.name, disks=lambda: [("vda", 20 * GIB), ("vdb", 10 * GIB)],
                         peers=lambda: self.peers, migrations=lambda: list(self.migrations), all_flash=self.all_flash,
                         hosts=3)


@pytest.fixture
def sim(plan, monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    s = Simulator.from_plan(plan, time_scale=0.0005, load_env_faults=False, profiles=[])
    s.start()
    yield s
    s.close()


@pytest.fixture
def vm(sim):
    v = FakeVm()
    v.guest_spec = v.spec()
    attach_guest(sim, IP, v.guest_spec)
    return v


def run(sim, cmd: str) -> tuple[int, str, str]:
    status, out, err = ssh_service(sim, IP).run_command(cmd, user="root")
    return status, out.decode(), err.decode()


def ssh_run(sim, cmd: str, password: str = GUEST_PASSWORD) -> tuple[int, str, str]:
    host, port = sim.local(IP, 22)
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect(host, port, username="root", password=password, look_for_keys=False, allow_agent=False, timeout=10)
    try:
        _, out, err = c.exec_command(cmd, timeout=30)
        status = out.channel.recv_exit_status()
        return status, out.read().decode(), err.read().decode()
    finally:
        c.close()


# --------------------------------------------------------------------------- the model
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_all_flash_beats_hybrid_on_every_profile(name):
    job = PROFILES[name]
    for peers in (1, 4):
        h = fm.predict(job, all_flash=False, hosts=3, peers=peers, vm="vm-1")
        a = fm.predict(job, all_flash=True, hosts=3, peers=peers, vm="vm-1")
        assert a.iops > h.iops
        assert a.read_clat_ns <= h.read_clat_ns and a.write_clat_ns <= h.write_clat_ns


def test_more_vms_total_up_per_vm_down():
    for job in PROFILES.values():
        for af in (False, True):
            per_vm = [fm.predict(job, all_flash=af, hosts=3, peers=n, vm="same").iops for n in (1, 2, 4, 8)]
            totals = [x * n for x, n in zip(per_vm, (1, 2, 4, 8))]
            assert totals == sorted(totals) and len(set(totals)) == 4
            assert per_vm == sorted(per_vm, reverse=True)


def test_latency_never_below_base_and_documented_figures():
    for job in PROFILES.values():
        for af in (False, True):
            for peers in (1, 3, 16):
                p = fm.predict(job, all_flash=af, hosts=4, peers=peers, vm=f"vm-{peers}")
                assert p.read_clat_ns >= p.base_ns * 0.999 or job.read_share == 0
                assert min(p.read_clat_ns, p.write_clat_ns) > 0
    # the docstring's example (3 hosts, one VM, before the ±3 % jitter)
    h = fm.predict(PROFILES["4k-randread"], all_flash=False, hosts=3, peers=1, vm="x")
    j = fm.jitter("x", "4k-randread")
    assert h.iops / j == pytest.approx(128_300, rel=0.002)
    assert fm.predict(PROFILES["4k-randread"], all_flash=True, hosts=3, peers=1, vm="x").iops / j == \
        pytest.approx(320_700, rel=0.002)
    qd1 = fm.predict(PROFILES["4k-randread-qd1"], all_flash=True, hosts=3, peers=1, vm="x")
    assert 200_000 <= qd1.read_clat_ns <= 200_000 * 1.04


def test_model_is_deterministic_with_bounded_jitter():
    job = PROFILES["4k-randrw-70-30"]
    a = fm.predict(job, all_flash=True, hosts=3, peers=2, vm="vm-a")
    assert a == fm.predict(job, all_flash=True, hosts=3, peers=2, vm="vm-a")
    assert a != fm.predict(job, all_flash=True, hosts=3, peers=2, vm="vm-b")
    js = [fm.jitter(f"vm-{i}", "p") for i in range(200)]
    assert 0.97 <= min(js) < 0.99 and 1.01 < max(js) <= 1.03
    assert a.read_iops / a.iops == pytest.approx(0.7)


def test_percentile_shape():
    for af, p99, p999 in ((True, 2.5, 4.0), (False, 3.5, 6.0)):
        assert fm.percentile(1000.0, 99.0, af) == pytest.approx(1000 * p99)
        assert fm.percentile(1000.0, 99.9, af) == pytest.approx(1000 * p999)
        vals = [fm.percentile(1000.0, p, af) for p in fm.DEFAULT_PERCENTILES]
        assert vals == sorted(vals)


# --------------------------------------------------------------------------- fio's JSON and the guest
def test_fio_json_structure_and_units(sim, vm):
    t0 = sim.clock.sim_wall()
    status, out, err = run(sim, fio_cmd(extra="--percentile_list=1:50:99:99.9:99.99"))
    assert (status, err) == (0, "")
    doc = json.loads(out)
    assert doc["fio version"].startswith("fio-3.")
    assert isinstance(doc["timestamp"], int) and isinstance(doc["timestamp_ms"], int) and isinstance(doc["time"], str)
    assert doc["timestamp_ms"] / 1000 == pytest.approx(t0 + 65, abs=5)          # end of the run, on sim_wall
    assert doc["global options"] == {}
    [job] = doc["jobs"]                                                          # --group_reporting: one entry
    for k in ("jobname", "groupid", "error", "elapsed", "job options", "read", "write", "trim", "sync",
              "job_runtime", "usr_cpu", "sys_cpu", "ctx", "majf", "minf", "iodepth_level", "latency_us",
              "latency_ms"):
        assert k in job, k
    assert job["jobname"] == "t" and job["error"] == 0 and job["elapsed"] == 65
    assert job["job options"]["rw"] == "randread" and job["job options"]["iodepth"] == "32"
    assert job["job_runtime"] == 60000
    rd, wr = job["read"], job["write"]
    for k, t in (("io_bytes", int), ("io_kbytes", int), ("bw_bytes", int), ("bw", int), ("iops", float),
                 ("runtime", int), ("total_ios", int), ("short_ios", int), ("drop_ios", int), ("bw_min", int),
                 ("bw_max", int), ("bw_agg", float), ("bw_mean", float), ("bw_dev", float), ("bw_samples", int),
                 ("iops_min", int), ("iops_max", int), ("iops_mean", float), ("iops_stddev", float),
                 ("iops_samples", int)):
        assert isinstance(rd[k], t), k
    assert rd["bw"] == rd["bw_bytes"] // 1024 and rd["io_kbytes"] == rd["io_bytes"] // 1024
    assert rd["bw_bytes"] == pytest.approx(rd["iops"] * 4096, rel=0.001)
    assert rd["total_ios"] == rd["io_bytes"] // 4096 and rd["runtime"] == 60000
    pred = fm.predict(fm.Job("t", "randread", 4096, 32, 4), all_flash=False, hosts=3, peers=1, vm=vm.vm_id)
    assert rd["iops"] == pytest.approx(pred.iops, rel=0.01)                     # the model, same jitter key
    clat = rd["clat_ns"]
    assert set(clat) >= {"min", "max", "mean", "stddev", "N", "percentile"} and clat["N"] == rd["total_ios"]
    assert list(clat["percentile"]) == ["1.000000", "50.000000", "99.000000", "99.900000", "99.990000"]
    assert all(isinstance(v, int) for v in clat["percentile"].values())
    assert 500_000 <= clat["mean"] < 2_000_000                                   # ns: ~1 ms on hybrid
    assert clat["percentile"]["99.000000"] == pytest.approx(clat["mean"] * 3.5, rel=0.01)
    assert set(rd["lat_ns"]) == {"min", "max", "mean", "stddev", "N"} and rd["lat_ns"]["mean"] > clat["mean"]
    assert wr["total_ios"] == 0 and wr["bw"] == 0 and "percentile" not in wr["clat_ns"]
    assert sum(job["latency_us"].values()) + sum(job["latency_ms"].values()) == pytest.approx(100, abs=0.1)
    [run_] = fio_runs(sim, vm.vm_id)                                             # recorded for the VM metrics
    assert run_.end - run_.start == pytest.approx(65) and run_.write_iops == 0
    assert run_.read_bps == pytest.approx(rd["bw_bytes"], rel=0.01) and run_.lat_ns == pytest.approx(clat["mean"])
    assert fio_runs(sim, "other-vm") == []


def test_numjobs_without_group_reporting_and_output_file(sim, vm):
    cmd = fio_cmd(rw="randrw", extra="--rwmixread=70 --output=/root/r.json").replace(" --group_reporting", "")
    status, out, err = run(sim, cmd)
    assert (status, out, err) == (0, "", "")
    doc = json.loads(ssh_service(sim, IP).fs.text("/root/r.json"))
    assert [j["jobname"] for j in doc["jobs"]] == ["t"] * 4
    rd = sum(j["read"]["iops"] for j in doc["jobs"])
    wr = sum(j["write"]["iops"] for j in doc["jobs"])
    assert rd / (rd + wr) == pytest.approx(0.7, abs=0.01)


def test_size_based_run_and_normal_output(sim, vm):
    t0 = sim.clock.now()
    status, out, _ = run(sim, "fio --name=pre --filename=/dev/vdb --rw=write --bs=1M --iodepth=32 --size=100% "
                              "--direct=1 --ioengine=libaio")
    assert status == 0 and "pre: (groupid=0" in out and "write: IOPS=" in out
    [r] = fio_runs(sim, vm.vm_id)
    assert r.write_bps * (r.end - r.start) == pytest.approx(10 * GIB, rel=0.05)   # the whole 10 GiB data disk
    assert sim.clock.now() - t0 >= r.end - r.start


@pytest.mark.parametrize("args, text", [
    ("--name=x --filename=/dev/vdb --foo=1", "fio: unrecognized option '--foo=1'"),
    ("--name=x --filename=/dev/vdb --iodepht=32", "Did you mean iodepth?"),
    ("--name=x --filename=/dev/vdb --rw=bogus", "fio: failed parsing rw=bogus"),
    ("--name=x --filename=/dev/vdb --bs=4q", "fio: failed parsing bs=4q"),
    ("--name=x --filename=/dev/vdb --ioengine=windowsaio", "fio: engine windowsaio not loadable"),
    ("--name=x --filename=/dev/vdc --rw=read", "x: you need to specify size="),
    ("--name=x --filename=/dev/vdc --size=1G", "func=open(/dev/vdc), error=No such file or directory"),
    ("--filename=/dev/vdb", "No job(s) defined"),
])
def test_bad_options_are_fios_errors(sim, vm, args, text):
    status, out, err = run(sim, "fio " + args)
    assert status == 1 and out == "" and text in err
    assert fio_runs(sim, vm.vm_id) == []


def test_parse_fio_args_global_and_job_options():
    cli, glob, jobs = parse_fio_args(["--direct=1", "--name=a", "--bs", "1M", "--time_based", "--output-format=json",
                                      "--name=b", "--rw=write"])
    assert cli == {"output-format": "json"} and glob == {"direct": "1"}
    assert jobs == [{"name": "a", "bs": "1M", "time_based": "1"}, {"name": "b", "rw": "write"}]


def test_over_ssh_hostname_lsblk_date_fio(sim, vm):
    assert sim.is_alive(IP)
    assert ssh_run(sim, "hostname") == (0, "smtx-acceptance-fio-01\n", "")
    assert ssh_run(sim, "lsblk -b -d -n -o NAME,SIZE,TYPE") == (0, "vda 21474836480 disk\nvdb 10737418240 disk\n", "")
    status, out, _ = ssh_run(sim, "date +%s%3N")
    assert status == 0 and out.strip().isdigit() and len(out.strip()) == 13
    assert int(out) / 1000 == pytest.approx(sim.clock.sim_wall(), abs=60)      # simulated timeline, not real time
    status, out, _ = ssh_run(sim, "date +%s")
    assert status == 0 and int(out) == pytest.approx(sim.clock.sim_wall(), abs=60)
    sim.advance(3600)
    assert int(ssh_run(sim, "date -u +%s")[1]) == pytest.approx(sim.clock.sim_wall(), abs=60)
    status, out, err = ssh_run(sim, fio_cmd(rt=30, ramp=2))
    assert (status, err) == (0, "") and json.loads(out)["jobs"][0]["read"]["iops"] > 0
    with pytest.raises(paramiko.AuthenticationException):
        ssh_run(sim, "true", password="wrong")


def test_bw_log_dips_during_a_migration(sim, vm):
    # fio reads the migrations when the run ends: a window 200-300 s into the 600 s run, whatever the start lag
    vm.guest_spec.migrations = lambda: [{"start": sim.clock.now() - 400, "end": sim.clock.now() - 300, "ok": True}]
    status, _, _ = run(sim, fio_cmd(nj=1, rt=600, ramp=0, extra="--write_bw_log=/root/mig --log_avg_msec=1000"))
    now = fio_runs(sim, vm.vm_id)[0].start
    assert status == 0
    text = ssh_service(sim, IP).fs.text("/root/mig_bw.1.log")
    rows = [[int(x) for x in line.split(", ")] for line in text.splitlines()]
    assert len(rows) == 600 and rows[0][0] == 1000 and {r[2] for r in rows} == {0} and {r[3] for r in rows} == {4096}
    before = [r[1] for r in rows if r[0] <= 150_000]
    during = [r[1] for r in rows if 230_000 <= r[0] <= 270_000]
    after = [r[1] for r in rows if r[0] >= 350_000]
    ratio = (sum(during) / len(during)) / (sum(before) / len(before))
    assert ratio == pytest.approx(0.6, abs=0.05)
    assert sum(after) / len(after) == pytest.approx(sum(before) / len(before), rel=0.03)
    [r] = fio_runs(sim, vm.vm_id)
    assert r.dips and r.factor_at(now + 250) == fm.MIGRATION_FACTOR and r.factor_at(now + 100) == 1.0


def test_bw_log_randrw_has_both_directions_per_job(sim, vm):
    status, _, _ = run(sim, fio_cmd(rw="randrw", nj=2, rt=10, ramp=0, extra="--rwmixread=70 --write_bw_log=b"))
    assert status == 0
    fs = ssh_service(sim, IP).fs
    assert fs.is_file("/root/b_bw.1.log") and fs.is_file("/root/b_bw.2.log")
    rows = [line.split(", ") for line in fs.text("/root/b_bw.1.log").splitlines()]
    assert {r[2] for r in rows} == {"0", "1"} and len(rows) == 20


def test_fio_failure_faults(sim, vm):
    # 1. an SSH fault rule on the command line: exit 1 before fio runs
    sim.faults.add({"method": "SSH", "path": "*fio *", "address": IP, "times": 1, "status": 500,
                    "msg": "fio: simulated crash"})
    assert ssh_run(sim, fio_cmd(rt=10)) == (1, "", "fio: simulated crash\n")
    assert fio_runs(sim, vm.vm_id) == []
    # 2. a FIO rule: an I/O error part-way, JSON with the job's error, exit 1
    sim.faults.add({"method": "FIO", "address": IP, "times": 1, "action": {"operation": "fail"}})
    status, out, err = ssh_run(sim, fio_cmd(rt=100, ramp=0))
    assert status == 1 and "fio: io_u error on file /dev/vdb: Input/output error" in err
    job = json.loads(out)["jobs"][0]
    assert job["error"] == 5 and job["job_runtime"] == 40000
    assert [r.error for r in fio_runs(sim, vm.vm_id)] == [5]
    # 3. the guest knob
    vm.guest_spec.io_error = True
    assert run(sim, fio_cmd(rt=10))[0] == 1
    vm.guest_spec.io_error = False
    assert run(sim, fio_cmd(rt=10))[0] == 0


def test_detach_takes_the_guest_down(sim, vm):
    assert ssh_run(sim, "true")[0] == 0
    detach_guest(sim, IP)
    assert not sim.is_alive(IP)
    with pytest.raises(OSError):
        ssh_run(sim, "true")
    attach_guest(sim, IP, vm.spec())                                             # back (same host key)
    assert sim.is_alive(IP) and ssh_run(sim, "hostname")[1] == "smtx-acceptance-fio-01\n"


def test_run_takes_simulated_time_and_advance_shortens_it(sim, vm):
    t0 = time.monotonic()
    assert run(sim, fio_cmd(rt=60, ramp=0))[0] == 0
    real = time.monotonic() - t0
    assert 60 * sim.clock.time_scale * 0.9 <= real < 2.0
    assert math.isclose(fio_runs(sim, vm.vm_id)[0].end - fio_runs(sim, vm.vm_id)[0].start, 60)
