"""clients/fio.py and clients/perf.py: profiles, command lines, fio 3.x JSON, aggregation, bw log, reliability,
thresholds, judging and the CloudTower metrics cross-check. The fio samples below keep fio 3.x's real layout
(abridged where fields repeat)."""
from __future__ import annotations

import json
import math
import shlex

import pytest

from clients import fio, perf
from clients.fio import (BwSample, FioRun, PerfDataError, aggregate, fio_command, load_profiles, parse_bw_log,
                         parse_fio_json, precondition_command, reliability)

_ZERO_DIR = {
    "io_bytes": 0, "io_kbytes": 0, "bw_bytes": 0, "bw": 0, "iops": 0.0, "runtime": 0, "total_ios": 0, "short_ios": 0,
    "drop_ios": 0, "slat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0},
    "clat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0},
    "lat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0},
    "bw_min": 0, "bw_max": 0, "bw_agg": 0.0, "bw_mean": 0.0, "bw_dev": 0.0, "bw_samples": 0,
    "iops_min": 0, "iops_max": 0, "iops_mean": 0.0, "iops_stddev": 0.0, "iops_samples": 0,
}


def _dir(iops: float, bs: int, runtime_ms: int, clat_mean: float, p99: int, p999: int) -> dict:
    ios = int(iops * runtime_ms / 1000)
    bw_bytes = int(iops * bs)
    return {
        "io_bytes": ios * bs, "io_kbytes": ios * bs // 1024, "bw_bytes": bw_bytes, "bw": bw_bytes // 1024,
        "iops": iops, "runtime": runtime_ms, "total_ios": ios, "short_ios": 0, "drop_ios": 0,
        "slat_ns": {"min": 1200, "max": 90211, "mean": 3120.4, "stddev": 801.2, "N": ios},
        "clat_ns": {"min": 98000, "max": 41877000, "mean": clat_mean, "stddev": 250113.7, "N": ios,
                    "percentile": {"1.000000": 181248, "5.000000": 220160, "10.000000": 248832,
                                   "50.000000": 440320, "90.000000": 905216, "95.000000": 1122304,
                                   "99.000000": p99, "99.500000": p99 + 200000, "99.900000": p999,
                                   "99.950000": p999 + 500000, "99.990000": p999 * 2}},
        "lat_ns": {"min": 101000, "max": 41880000, "mean": clat_mean + 3120.4, "stddev": 250200.1, "N": ios},
        "bw_min": 90000, "bw_max": 120000, "bw_agg": 100.0, "bw_mean": bw_bytes / 1024, "bw_dev": 3001.5,
        "bw_samples": 118, "iops_min": 22000, "iops_max": 30000, "iops_mean": iops, "iops_stddev": 750.2,
        "iops_samples": 118,
    }


def fio_doc(name="4k-randread", rw="randread", read=None, write=None, error=0, runtime_ms=60000,
            end_ms=1_700_000_060_000, jobs=None) -> dict:
    job = {
        "jobname": name, "groupid": 0, "error": error, "eta": 0, "elapsed": 66,
        "job options": {"name": name, "filename": "/dev/vdb", "rw": rw, "bs": "4k", "iodepth": "32",
                        "numjobs": "2", "direct": "1", "ioengine": "libaio", "time_based": "", "runtime": "60",
                        "ramp_time": "5", "group_reporting": ""},
        "read": read or dict(_ZERO_DIR), "write": write or dict(_ZERO_DIR), "trim": dict(_ZERO_DIR),
        "sync": {"total_ios": 0, "lat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}},
        "job_runtime": runtime_ms, "usr_cpu": 4.93, "sys_cpu": 12.01, "ctx": 1432011, "majf": 0, "minf": 91,
        "iodepth_level": {"1": 0.1, "2": 0.1, "4": 0.1, "8": 0.1, "16": 0.1, "32": 99.9, ">=64": 0.0},
        "latency_us": {"2": 0.0, "4": 0.0, "10": 0.0, "20": 0.0, "50": 0.0, "100": 0.01, "250": 10.5,
                       "500": 55.2, "750": 22.1, "1000": 7.7},
        "latency_ms": {"2": 3.9, "4": 0.4, "10": 0.1, "20": 0.01, "50": 0.01, "100": 0.0, "250": 0.0,
                       "500": 0.0, "750": 0.0, "1000": 0.0, "2000": 0.0, ">=2000": 0.0},
    }
    return {"fio version": "fio-3.28", "timestamp": end_ms // 1000, "timestamp_ms": end_ms,
            "time": "Tue Nov 14 22:14:20 2023",
            "global options": {"direct": "1"}, "jobs": jobs if jobs is not None else [job],
            "disk_util": [{"name": "vdb", "read_ios": 1740000, "write_ios": 0, "util": 99.8}]}


RANDREAD = json.dumps(fio_doc(read=_dir(29000.5, 4096, 60000, 1_102_000.0, 4_177_920, 9_371_648)), indent=2)
RANDRW = json.dumps(fio_doc(name="4k-randrw-70-30", rw="randrw",
                            read=_dir(14000.0, 4096, 60000, 1_500_000.0, 5_000_000, 11_000_000),
                            write=_dir(6000.0, 4096, 60000, 2_500_000.0, 8_000_000, 20_000_000)), indent=2)
WARNED = ("fio: ioengines.c:346, td_io_queue: io_u error on file /dev/vdb: Input/output error: read "
          "offset=1048576, buflen=4096\nnote: both iodepth >= 1 and synchronous I/O engine are selected\n"
          + json.dumps(fio_doc(error=5, read=_dir(1000.0, 4096, 2000, 900_000.0, 3_000_000, 7_000_000),
                               runtime_ms=2000)) + "\nfio: pid=1234, err=5/file:io_u.c:1889, func=io_u error\n")


def profile(name="4k-randread"):
    return next(p for p in load_profiles() if p.name == name)


# ---------------------------------------------------------------- profiles and commands

def test_profiles_file_has_the_six_profiles_of_the_issue():
    profiles = load_profiles()
    assert [p.name for p in profiles] == ["4k-randread", "4k-randwrite", "4k-randrw-70-30", "1m-seqread",
                                          "1m-seqwrite", "4k-randread-qd1"]
    assert profile("4k-randrw-70-30").rwmixread == 70 and profile("4k-randrw-70-30").directions == ("read", "write")
    assert profile("4k-randread-qd1").kind == "latency" and profile("4k-randread-qd1").iodepth == 1
    assert profile("1m-seqwrite").directions == ("write",)
    assert " / " in profile().label


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d["profiles"][0].update(rw="random"), "rw"),
    (lambda d: d["profiles"][0].update(iodepth=0), "iodepth"),
    (lambda d: d["profiles"][0].update(name="a b"), "name"),
    (lambda d: d["profiles"][0].update(rwmixread=70), "rwmixread"),
    (lambda d: d["profiles"][2].pop("rwmixread"), "rwmixread"),
    (lambda d: d["profiles"][0].update(iodpeth=4), "unknown keys ['iodpeth']"),
    (lambda d: d["profiles"].append(dict(d["profiles"][0])), "duplicate"),
    (lambda d: d.update(profiles=[]), "profiles"),
])
def test_bad_profiles_file_is_one_line_naming_the_file(tmp_path, mutate, words):
    data = json.loads(fio.PROFILES_FILE.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(PerfDataError) as exc:
        load_profiles(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value) and words in str(exc.value)


def test_profiles_file_not_json_or_missing(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{\"profiles\": [", encoding="utf-8")
    with pytest.raises(PerfDataError, match=r"line 1, column"):
        load_profiles(path)
    with pytest.raises(PerfDataError, match="cannot read"):
        load_profiles(tmp_path / "absent.json")


def test_fio_command_quotes_and_carries_the_measuring_options():
    cmd = fio_command(profile("4k-randrw-70-30"), "vdb", 60, 5, bw_log="/tmp/rel run")
    args = shlex.split(cmd)
    assert args[0] == "fio" and "--filename=/dev/vdb" in args and "--rw=randrw" in args
    for opt in ("--rwmixread=70", "--bs=4k", "--iodepth=32", "--numjobs=2", "--direct=1", "--ioengine=libaio",
                "--time_based", "--runtime=60", "--ramp_time=5", "--group_reporting", "--output-format=json",
                "--write_bw_log=/tmp/rel run", "--log_avg_msec=1000"):
        assert opt in args
    assert "'--write_bw_log=/tmp/rel run'" in cmd
    assert "--rwmixread" not in fio_command(profile(), "/dev/vdb", 30, 0)
    with pytest.raises(ValueError):
        fio_command(profile(), "vdb", 0, 5)
    assert fio.bw_log_files("/tmp/rel", 2) == ["/tmp/rel_bw.1.log", "/tmp/rel_bw.2.log"]


def test_precondition_writes_the_whole_disk_once():
    args = shlex.split(precondition_command("vdb", output="/root/pre.json"))
    for opt in ("--rw=write", "--bs=1M", "--iodepth=32", "--size=100%", "--direct=1", "--filename=/dev/vdb",
                "--output-format=json", "--output=/root/pre.json"):
        assert opt in args
    assert "--time_based" not in args


def test_phase_budget_fits_ten_minutes_and_never_goes_below_the_minimum():
    runtime, ramp = fio.phase_budget(600 - 120, 6)
    assert 6 * (runtime + ramp + 10) <= 480 and runtime >= 10
    assert fio.phase_budget(30, 6) == (10, 5)


# ---------------------------------------------------------------- fio's JSON

def test_parse_randread():
    run = parse_fio_json(RANDREAD, vm="smtx-acceptance-fio-01")
    assert run.error == 0 and run.jobname == "4k-randread" and run.version == "fio-3.28"
    assert run.read.iops == pytest.approx(29000.5) and run.write.total_ios == 0
    assert run.read.bw_bytes == int(29000.5 * 4096) and run.mbps == pytest.approx(29000.5 * 4096 / 1e6, rel=1e-6)
    assert run.read.clat_p99_ns == 4_177_920 and run.read.clat_p999_ns == 9_371_648
    assert run.clat_mean_ns == pytest.approx(1_102_000.0) and run.clat_p99_ns == 4_177_920
    assert run.job_runtime_ms == 60000 and run.window_ms == (1_700_000_000_000, 1_700_000_060_000)
    assert (run.start_ms, run.end_ms) == run.window_ms


def test_parse_randrw_has_both_directions():
    run = parse_fio_json(RANDRW)
    assert run.read.iops == 14000 and run.write.iops == 6000 and run.iops == 20000
    # the mean over every I/O: 70 % at 1.5 ms, 30 % at 2.5 ms
    assert run.clat_mean_ns == pytest.approx(1_800_000.0)
    assert run.clat_p99_ns == 8_000_000 and run.clat_p999_ns == 20_000_000


def test_parse_tolerates_warnings_before_and_after_and_reports_the_error():
    run = parse_fio_json(WARNED, vm="smtx-acceptance-fio-02")
    assert run.error == 5 and run.read.iops == 1000 and run.vm == "smtx-acceptance-fio-02"


def test_parse_sums_jobs_without_group_reporting():
    a = fio_doc(read=_dir(10000.0, 4096, 60000, 1_000_000.0, 3_000_000, 6_000_000))["jobs"][0]
    b = fio_doc(read=_dir(30000.0, 4096, 59000, 2_000_000.0, 5_000_000, 9_000_000))["jobs"][0]
    run = parse_fio_json(json.dumps(fio_doc(jobs=[a, b])))
    assert run.read.iops == 40000 and run.read.clat_p99_ns == 5_000_000 and run.job_runtime_ms == 60000
    assert run.read.clat_mean_ns == pytest.approx((1e6 * 600000 + 2e6 * 1770000) / 2370000)


@pytest.mark.parametrize("text, words", [
    ("fio: failed to open /dev/vdc: No such file or directory\n", "no JSON"),
    ('{"fio version": "fio-3.28", "jobs": [', "cut or invalid"),
    ('{"fio version": "fio-3.28", "jobs": []}', "no jobs"),
    ('{"jobs": [{"read": {"iops": "fast"}}]}', "non-numeric"),
])
def test_unusable_fio_output_is_one_line_naming_the_vm(text, words):
    with pytest.raises(PerfDataError) as exc:
        parse_fio_json(text, vm="smtx-acceptance-fio-03")
    assert "\n" not in str(exc.value) and words in str(exc.value) and "smtx-acceptance-fio-03" in str(exc.value)


# ---------------------------------------------------------------- aggregation

def _run(vm, read_iops, mean_ns, p99, p999, ios, end=1_700_000_060_000, error=0, write_iops=0.0):
    from clients.fio import DirStats
    return FioRun("x", error, DirStats(read_iops, read_iops * 4096, ios * 4096, ios, 60000, mean_ns, p99, p999),
                  DirStats(write_iops, write_iops * 4096, 0, 0, 60000), 60000, end, "fio-3.28", vm)


def test_aggregate_sums_throughput_weights_the_mean_and_takes_the_worst_percentiles():
    runs = [_run("vm1", 20000, 1e6, 3e6, 8e6, 1_200_000), _run("vm2", 10000, 2e6, 5e6, 7e6, 600_000,
                                                                 end=1_700_000_061_000, error=5)]
    f = aggregate("4k-randread", runs)
    assert f.vms == 2 and f.iops == 30000 and f.read_iops == 30000 and f.write_iops == 0
    assert f.mbps == pytest.approx(30000 * 4096 / 1e6)
    assert f.lat_mean_ms == pytest.approx((1.0 * 1.2 + 2.0 * 0.6) / 1.8)
    assert f.lat_p99_ms == 5.0 and f.worst_vm == "vm2" and f.lat_p999_ms == 8.0
    assert f.errors == ("vm2: error 5",)
    assert f.window_ms == (1_700_000_000_000, 1_700_000_061_000)
    empty = aggregate("4k-randread", [])
    assert empty.vms == 0 and empty.lat_mean_ms is None and empty.window_ms is None


# ---------------------------------------------------------------- bw log and reliability

BW_LOG = """1000, 102400, 0, 4096, 0
2000, 104448, 0, 4096, 0
 3000, 100352, 0, 4096, 0, 0

4000, 51200, 1, 4096, 0
"""


def test_parse_bw_log():
    samples = parse_bw_log(BW_LOG, job=2)
    assert samples[0] == BwSample(1000, 102400.0, 0, 2) and len(samples) == 4 and samples[3].direction == 1


def test_bad_bw_log_line_is_one_line_naming_the_file_and_line():
    with pytest.raises(PerfDataError) as exc:
        parse_bw_log("1000, 100, 0, 4096, 0\nnot a sample\n", source="vm1:/root/rel_bw.1.log")
    assert "line 2" in str(exc.value) and "vm1:/root/rel_bw.1.log" in str(exc.value) and "\n" not in str(exc.value)


def _series(start_s, end_s, kib, job=1, direction=0):
    return [BwSample(t * 1000, kib, direction, job) for t in range(start_s, end_s + 1)]


def test_reliability_ratio_of_the_windows_around_the_migration():
    # 100 MiB/s before, 60 % during the migration (40 s .. 60 s), 80 MiB/s after; a sample at t averages (t − 1 s, t]
    samples = _series(1, 40, 102400) + _series(41, 60, 61440) + _series(61, 120, 81920)
    r = reliability(samples, 40_000, 60_000)
    assert r.before == pytest.approx(102400 * 1024 / 1e6) and r.after == pytest.approx(81920 * 1024 / 1e6)
    assert r.ratio == pytest.approx(0.8) and r.ok() and "80%" in r.describe()
    before, after, ratio = r                    # the (before, after, ratio) of the design
    assert ratio == r.ratio
    low = reliability(_series(1, 40, 102400) + _series(61, 120, 40960), 40_000, 60_000)
    assert low.ratio == pytest.approx(0.4) and not low.ok() and "fails" in low.describe()


def test_reliability_sums_jobs_and_directions_and_says_when_not_measurable():
    samples = (_series(1, 30, 1000, job=1) + _series(1, 30, 3000, job=2) + _series(1, 30, 500, job=1, direction=1)
               + _series(41, 70, 4500, job=1))
    r = reliability(samples, 31_000, 40_000)
    assert r.before == pytest.approx(4500 * 1024 / 1e6) and r.ratio == pytest.approx(1.0)
    short = reliability(_series(1, 30, 1000), 31_000, 40_000)       # fio stopped before the migration ended
    assert short.ratio is None and not short.ok() and "not measurable" in short.describe()


# ---------------------------------------------------------------- thresholds and judging

NAMES = [p.name for p in load_profiles()]


def test_default_thresholds_load_with_a_source_for_every_entry():
    th = perf.load_thresholds(profiles=NAMES)
    assert th.is_default and "conservative" in th.source
    for arch in perf.ARCHITECTURES:
        assert perf.not_judged(NAMES, th, arch) == []
        for name in NAMES:
            assert th.get(arch, name).source
    assert perf.architecture(True) == "allflash-flat" and perf.architecture(False) == "hybrid-tiered"


def _model_figures(arch: str, hosts: int, vms: int) -> list:
    """Roughly the figures the simulator's model (design §5) gives a healthy cluster, 3 % low: capacity = per host ×
    hosts^0.9, delivered = capacity × (1 − exp(−vms × demand / capacity)), demand = iodepth × numjobs / base latency
    (write latency taken as twice the read latency)."""
    m = {"hybrid-tiered": dict(rr=25000, rw=12000, sr=1000, sw=500, lat=0.5e-3, p99=3.5),
         "allflash-flat": dict(rr=80000, rw=40000, sr=2000, sw=1000, lat=0.2e-3, p99=2.5)}[arch]

    def delivered(per_host: float, outstanding: int, latency: float, unit: float = 1.0) -> float:
        capacity = per_host * hosts ** 0.9
        demand = outstanding / latency * unit
        return capacity * (1 - math.exp(-vms * demand / capacity)) * 0.97

    out = []
    for name, per_host, lat in (("4k-randread", m["rr"], m["lat"]), ("4k-randwrite", m["rw"], 2 * m["lat"]),
                                ("4k-randrw-70-30", min(m["rr"], m["rw"]), 2 * m["lat"])):
        iops = delivered(per_host, 64, lat)
        out.append(fio.ProfileFigures(name, vms, iops, iops, 0, iops * 4096 / 1e6, iops * 4096 / 1e6, 0,
                                      3.0, 9.0, 15.0))
    for name, per_host, lat in (("1m-seqread", m["sr"], m["lat"]), ("1m-seqwrite", m["sw"], 2 * m["lat"])):
        mbps = delivered(per_host, 8, lat, 1.048576)
        out.append(fio.ProfileFigures(name, vms, mbps, mbps, 0, mbps, mbps, 0, 3.0, 9.0, 15.0))
    iops = delivered(m["rr"], 1, m["lat"])
    lat_ms = max(vms / iops, m["lat"]) * 1000 * 1.03
    out.append(fio.ProfileFigures("4k-randread-qd1", vms, iops, iops, 0, 1, 1, 0, lat_ms, lat_ms * m["p99"],
                                  lat_ms * m["p99"] * 12 / 7))
    return out


@pytest.mark.parametrize("arch", perf.ARCHITECTURES)
@pytest.mark.parametrize("hosts, vms", [(3, 3), (4, 4), (16, 16), (16, 3)])
def test_a_healthy_simulated_cluster_passes_the_default_floors(arch, hosts, vms):
    th = perf.load_thresholds(profiles=NAMES)
    judgements = perf.judge(_model_figures(arch, hosts, vms), th, arch, hosts)
    assert len(judgements) == 7 and perf.failures(judgements) == []


def test_judge_names_figure_value_and_threshold_and_scales_per_host():
    th = perf.load_thresholds(profiles=NAMES)
    low = fio.ProfileFigures("4k-randread", 3, 12345.0, 12345.0, 0, 50.6, 50.6, 0, 2.0, 6.0, 9.0)
    (j,) = perf.judge([low], th, "hybrid-tiered", hosts=8, labels={"4k-randread": profile().label})
    assert not j.passed and j.threshold == 15000 and j.scale == 3 and j.base == 5000 and j.op == ">="
    assert j.text_zh == "4k 随机读 — IOPS 12,345 低于阈值 ≥ 15,000（5,000 × 3 台主机）"
    assert j.text_en == "4k random read — IOPS 12,345 is below the threshold ≥ 15,000 (5,000 × 3 hosts)"
    assert j.message == f"{j.text_zh} / {j.text_en}"
    assert perf.failures([j]) == [j.message]
    slow = fio.ProfileFigures("4k-randread-qd1", 3, 3000, 3000, 0, 12.0, 12.0, 0, 2.5, None, None)
    mean, p99 = perf.judge(slow, th, "hybrid-tiered", 3)
    assert not mean.passed and mean.text_zh == "4k-randread-qd1 — 平均时延 2.5 高于阈值 ≤ 2"
    assert mean.text_en == "4k-randread-qd1 — mean latency (ms) 2.5 is above the threshold ≤ 2"
    assert mean.scale == 1 and not p99.passed and "not measured" in p99.message
    ok = fio.ProfileFigures("1m-seqread", 4, 0, 0, 0, 2400.0, 2400.0, 0, 10.0, 20.0, 30.0)
    (j,) = perf.judge(ok, th, "allflash-flat", 4)
    assert j.passed and "meets the threshold ≥ 1,600.0" in j.message
    with pytest.raises(ValueError):
        perf.judge(ok, th, "allflash-flat", 0)


def test_missing_architecture_or_profile_is_not_judged(tmp_path):
    path = tmp_path / "contract.json"
    path.write_text(json.dumps({"_source": "contract §7", "architectures": {"allflash-flat": {
        "4k-randread": {"iops_min": 300000, "_source": "contract §7.1"}}}}), encoding="utf-8")
    th = perf.load_thresholds(path, profiles=NAMES)
    assert not th.is_default and th.path == path
    assert perf.judge(_model_figures("hybrid-tiered", 3, 3), th, "hybrid-tiered", 3) == []
    assert perf.not_judged(NAMES, th, "allflash-flat") == NAMES[1:]
    (j,) = perf.judge(_model_figures("allflash-flat", 3, 3), th, "allflash-flat", 3)
    assert not j.passed and j.threshold == 300000 and j.scale == 1


@pytest.mark.parametrize("data, words", [
    ({"architectures": {}}, "architectures"),
    ({"_source": "x", "architectures": {"hybrid": {}}}, "unknown architecture"),
    ({"architectures": {"hybrid-tiered": {"4k-randread": {"iops_min": 1, "_source": "s"}}}}, "_source"),
    ({"_source": "x", "architectures": {"hybrid-tiered": {"4k-randraed": {"iops_min": 1, "_source": "s"}}}},
     "unknown fio profile"),
    ({"_source": "x", "architectures": {"hybrid-tiered": {"4k-randread": {"iops_min": 1}}}}, "lacks \"_source\""),
    ({"_source": "x", "architectures": {"hybrid-tiered": {"4k-randread": {"iops_minimum": 1, "_source": "s"}}}},
     "unknown keys"),
    ({"_source": "x", "architectures": {"hybrid-tiered": {"4k-randread": {"iops_min": -1, "_source": "s"}}}},
     "positive"),
    ({"_source": "x", "architectures": {"hybrid-tiered": {"4k-randread": {"iops_min": "5k", "_source": "s"}}}},
     "positive"),
    ({"_source": "x", "architectures": {"hybrid-tiered": {"4k-randread": {"_source": "s"}}}}, "at least one"),
    ({"_source": "x", "architectures": {"hybrid-tiered": {"4k-randread": {"iops_min": 1, "per_host": "yes",
                                                                          "_source": "s"}}}}, "per_host"),
])
def test_bad_thresholds_file_is_one_line_naming_the_file_and_the_fix(tmp_path, data, words):
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(PerfDataError) as exc:
        perf.load_thresholds(path, profiles=NAMES)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and words in msg and "--perf-thresholds" in msg


def test_thresholds_file_not_json(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{'architectures': 1}", encoding="utf-8")
    with pytest.raises(PerfDataError, match=r"thresholds file .*t\.json is not valid JSON \(line 1, column 2"):
        perf.load_thresholds(path)


# ---------------------------------------------------------------- CloudTower metrics cross-check

def _metrics_answer(values: dict[str, dict[str, list[tuple[int, float]]]]) -> list:
    streams = [{"labels": {"_vm": vm, "metric_name": name}, "points": [{"t": t, "v": v} for t, v in pts]}
               for name, by_vm in values.items() for vm, pts in by_vm.items()]
    return [{"data": {"unit": "COUNT", "step": 10, "dropped": False, "samples": [], "sample_streams": streams},
             "task_id": None}]


def test_metric_window_average_sums_vms_and_averages_latency_inside_the_window():
    t0 = 1_700_000_000_000
    pts = lambda v: [(t0 - 10_000, 0.0)] + [(t0 + 10_000 * i, v) for i in range(7)] + [(t0 + 80_000, 0.0)]  # noqa: E731
    answer = _metrics_answer({
        "elf_vm_disk_overall_read_iops": {"vm1": pts(20000.0), "vm2": pts(10000.0), "other": pts(5.0)},
        "elf_vm_disk_overall_avg_read_write_latency_ns": {"vm1": pts(1e6), "vm2": pts(3e6)},
        "elf_vm_disk_overall_write_iops": {"vm1": pts(1.0), "vm2": []},
    })
    avg = perf.metric_window_average(answer, ["vm1", "vm2"], t0, t0 + 60_000)
    assert avg["elf_vm_disk_overall_read_iops"] == pytest.approx(30000.0)
    assert avg["elf_vm_disk_overall_avg_read_write_latency_ns"] == pytest.approx(2e6)
    assert avg["elf_vm_disk_overall_write_iops"] is None            # vm2 has no point: not comparable
    seconds = _metrics_answer({"elf_vm_disk_overall_read_iops": {"vm1": [(t0 // 1000 + 5, 7.0)]}})
    assert perf.metric_window_average(seconds, ["vm1"], t0, t0 + 60_000) == {"elf_vm_disk_overall_read_iops": 7.0}


def test_cross_check_flags_more_than_25_percent():
    assert not perf.cross_check(1000.0, 1200.0).flagged
    c = perf.cross_check(1000.0, 2000.0, metric="elf_vm_disk_overall_read_iops")
    assert c.flagged and c.difference == pytest.approx(1.0) and "differ by more than the tolerance" in c.describe()
    assert not perf.cross_check(1000.0, None).flagged and "no CloudTower data" in perf.cross_check(1, None).describe()
    assert perf.cross_check(0.0, 5.0).flagged and not perf.cross_check(0.0, 0.0).flagged


def test_cross_check_profile_compares_what_the_profile_exercises():
    f = fio.ProfileFigures("4k-randread", 2, 30000.0, 30000.0, 0.0, 122.88, 122.88, 0.0, 1.0, 3.0, 5.0)
    checks = perf.cross_check_profile(f, {"elf_vm_disk_overall_read_iops": 61000.0,
                                          "elf_vm_disk_overall_avg_read_write_latency_ns": 1.1e6,
                                          "elf_vm_disk_overall_write_iops": 12.0})
    by = {c.metric: c for c in checks}
    assert set(by) == {"elf_vm_disk_overall_read_iops", "elf_vm_disk_overall_read_speed_bps",
                       "elf_vm_disk_overall_avg_read_write_latency_ns"}     # no write figures for a read profile
    assert by["elf_vm_disk_overall_read_iops"].flagged
    assert not by["elf_vm_disk_overall_avg_read_write_latency_ns"].flagged
    assert by["elf_vm_disk_overall_read_speed_bps"].cloudtower is None


def test_cross_check_metrics_in_one_call_and_json_ready_records():
    t0 = 1_700_000_000_000
    answer = _metrics_answer({"elf_vm_disk_overall_read_iops": {"vm1": [(t0 + 10_000, 39000.0)]},
                              "elf_vm_disk_overall_avg_read_write_latency_ns": {"vm1": [(t0 + 10_000, 1e6)]}})
    f = fio.ProfileFigures("4k-randread", 1, 30000.0, 30000.0, 0.0, 122.88, 122.88, 0.0, 1.0, 3.0, 5.0)
    rows = [c.to_json() for c in fio.cross_check_metrics(f, answer, ["vm1"], t0, t0 + 60_000)]
    assert json.loads(json.dumps(rows)) == rows
    by = {r["metric"]: r for r in rows}
    assert by["elf_vm_disk_overall_read_iops"]["flag"] and by["elf_vm_disk_overall_read_iops"]["ct"] == 39000.0
    assert by["elf_vm_disk_overall_read_iops"]["what"] == "读 IOPS / read IOPS"
    assert not by["elf_vm_disk_overall_read_iops"]["verified"]
    assert by["elf_vm_disk_overall_avg_read_write_latency_ns"]["verified"]
    bps = by["elf_vm_disk_overall_read_speed_bps"]
    assert bps["ct"] is None and not bps["flag"]


def test_figures_dict_and_summary_line():
    runs = [parse_fio_json(RANDREAD, vm="vm1"), parse_fio_json(RANDRW, vm="vm2")]
    f = aggregate("mixed", runs)
    d = fio.figures_dict(f)
    assert json.loads(json.dumps(d)) == d and d["iops"] == f.iops and d["window_ms"] == list(f.window_ms)
    line = fio.summary_line(f, profile().label)
    assert line.startswith("4k 随机读 / 4k random read：2 台虚拟机 / VMs, IOPS 49,000") and "ms" in line
    assert fio.DEFAULT_THRESHOLDS == perf.THRESHOLDS_FILE and fio.load_thresholds is perf.load_thresholds
