"""fio in the test VMs (stage 10, issue 19 §4–§7): the profiles, the command lines, fio's JSON, the aggregation
across VMs, and the bandwidth log of the reliability run. The thresholds, the judging and the cross-check against
CloudTower's VM metrics are in :mod:`clients.perf`. Everything here is pure: text in, figures out.

Decisions (sources: the issue; fio's documentation for the option names, the JSON layout of fio 3.x and the
bandwidth-log format; HCIBench practice for preconditioning and the workload families):

* **Profiles** come from ``tests_deploy/data/fio_profiles.json`` (``_source`` there says where each one comes from).
  Every measuring run is ``--direct=1 --ioengine=libaio --time_based --group_reporting --output-format=json`` on the
  raw data disk (``/dev/vdb``), so the guest's page cache never flatters a figure.
* **Preconditioning** writes the whole data disk once (``--rw=write --bs=1M --iodepth=32 --size=100%``), as
  HCIBench's "prepare virtual disk" does: a thin-provisioned volume would otherwise answer reads of never-written
  blocks without touching a disk, and pay for allocation on first writes.
* **Parsing** tolerates what fio prints before the JSON document (``fio: …`` warnings, ``note: …``): the document
  starts at the first line that begins with ``{`` and ends where the JSON ends. fio 3.x only (``clat_ns``). Several
  job entries (a run without ``--group_reporting``) are summed as fio's group reporting would.
* **Latency** is fio's completion latency (``clat_ns``): the only latency fio gives percentiles for by default; with
  libaio the submission part (``slat``) is a few microseconds. p99 / p99.9 are the keys ``"99.000000"`` /
  ``"99.900000"`` of fio's default percentile list.
* **Units:** MB/s is decimal (10^6 bytes/s, fio's ``bw_bytes``), as storage vendors and HCIBench quote it; latency
  in the figures is in ms.
* **Aggregation across VMs** (:func:`aggregate`): IOPS and MB/s are summed (the cluster's total); the mean latency is
  weighted by each VM's I/O count (the mean over every I/O of the run); p99 and p99.9 are the worst VM's, because
  percentiles cannot be combined without the histograms, and the worst VM is what a tenant would see.
* **Reliability** (:func:`reliability`) reads fio's bandwidth log (``--write_bw_log=P --log_avg_msec=1000`` →
  ``P_bw.<job>.log``, lines ``msec, KiB/s, direction, bs, offset[, prio]``; msec count from the start of the
  measured part: fio resets its epoch when ``ramp_time`` ends, ``reset_all_stats`` in fio's backend). A sample at
  ``t`` averages ``(t − 1 s, t]``. The throughput of a window is, per (job, direction) stream, the mean of the samples
  in it, summed over the streams. Migration times go on the same axis: subtract :attr:`FioRun.start_ms` (fio's end
  stamp − job runtime, on the guest's clock) from the migration's start and end read on the guest's clock
  (``date +%s%3N``).
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

from .perf import (ARCHITECTURES, DATA_DIR, LIMITS, MB, METRICS, THRESHOLDS_FILE, TOLERANCE,  # noqa: F401 - re-exported
                   VERIFIED_METRICS, CrossCheck, Judgement, PerfDataError, ProfileFigures, Threshold, Thresholds,
                   architecture, cross_check, cross_check_metrics, cross_check_profile, effective, failures,
                   figures_dict, fio_metric_values, format_value, judge, load_thresholds, metric_window_average,
                   not_judged, read_json_file, summary_line)

DEFAULT_THRESHOLDS = THRESHOLDS_FILE

PROFILES_FILE = DATA_DIR / "fio_profiles.json"
RWS = ("read", "write", "randread", "randwrite", "randrw", "rw")
MIXED = ("randrw", "rw")
KINDS = ("iops", "throughput", "latency")
MEASURE_OPTIONS = ("--direct=1", "--ioengine=libaio", "--time_based")
MIN_RATIO = 0.5                         # reliability: after / before
WINDOW_MS = 30_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_BS = re.compile(r"^\d+[kKmM]?$")
_PROFILE_KEYS = {"name", "zh", "en", "rw", "bs", "iodepth", "numjobs", "kind", "rwmixread"}


# ---------------------------------------------------------------- profiles and command lines

@dataclass(frozen=True)
class FioProfile:
    name: str                           # also fio's --name and the bw-log prefix: [A-Za-z0-9._-]
    zh: str
    en: str
    rw: str                             # one of RWS
    bs: str                             # fio's --bs: "4k", "1m"
    iodepth: int
    numjobs: int
    kind: str                           # iops | throughput | latency
    rwmixread: int | None = None        # randrw / rw only

    @property
    def label(self) -> str:
        return f"{self.zh} / {self.en}"

    @property
    def directions(self) -> tuple[str, ...]:
        if self.rw in MIXED:
            return ("read", "write")
        return ("read",) if self.rw in ("read", "randread") else ("write",)


def load_profiles(path: Path = PROFILES_FILE) -> list[FioProfile]:
    """The profiles of ``path`` in file order; a bad entry is one :class:`PerfDataError` line."""
    fix = "修正该文件 / fix that file (format: tests_deploy/data/fio_profiles.json)"
    data = read_json_file(path, "fio 配置文件", "fio profiles file", fix)

    def bad(where: str, zh: str, en: str) -> PerfDataError:
        return PerfDataError(f"fio 配置文件 {path} {where}：{zh} / fio profiles file {path} {where}: {en}; {fix}")

    entries = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise bad("", "缺少非空的 profiles 列表", "needs a non-empty list \"profiles\"")
    out: list[FioProfile] = []
    for i, e in enumerate(entries, 1):
        where = f"profiles[{i}]"
        if not isinstance(e, dict):
            raise bad(where, "应为对象", "must be an object")
        where = f"profiles[{i}] ({e.get('name', '?')})"
        extra = sorted(k for k in e if k not in _PROFILE_KEYS and not str(k).startswith("_"))
        missing = sorted(k for k in _PROFILE_KEYS - {"rwmixread"} if k not in e)
        if extra or missing:
            raise bad(where, f"未知字段 {extra} / 缺少字段 {missing}", f"unknown keys {extra}, missing keys {missing}")
        checks = [
            (isinstance(e["name"], str) and bool(_NAME.match(e["name"])), "name", "[A-Za-z0-9._-]+"),
            (all(isinstance(e[k], str) and e[k].strip() for k in ("zh", "en")), "zh/en", "non-empty text"),
            (e["rw"] in RWS, "rw", " | ".join(RWS)),
            (isinstance(e["bs"], str) and bool(_BS.match(e["bs"])), "bs", "e.g. 4k, 1m"),
            (all(_posint(e[k]) for k in ("iodepth", "numjobs")), "iodepth/numjobs", "a whole number >= 1"),
            (e["kind"] in KINDS, "kind", " | ".join(KINDS)),
            ((e["rw"] in MIXED) == ("rwmixread" in e), "rwmixread", "given exactly for rw randrw / rw"),
            ("rwmixread" not in e or (_posint(e["rwmixread"]) and e["rwmixread"] < 100), "rwmixread", "1..99"),
        ]
        for ok, key, want in checks:
            if not ok:
                raise bad(where, f"{key} 取值无效（应为 {want}）", f"{key} is invalid (expected {want})")
        if any(p.name == e["name"] for p in out):
            raise bad(where, "名称重复", "duplicate name")
        out.append(FioProfile(e["name"], e["zh"], e["en"], e["rw"], e["bs"], e["iodepth"], e["numjobs"], e["kind"],
                              e.get("rwmixread")))
    return out


def _posint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _device(device: str) -> str:
    return device if device.startswith("/") else f"/dev/{device}"


def fio_command(profile: FioProfile, device: str, runtime_s: int, ramp_s: int, *, bw_log: str | None = None,
                output: str | None = None, log_avg_msec: int = 1000) -> str:
    """The shell-quoted fio command line of one measuring run on ``device`` ("vdb" or "/dev/vdb").
    ``bw_log``: a prefix; fio then writes ``<prefix>_bw.<job>.log`` (:func:`bw_log_files`)."""
    if int(runtime_s) < 1 or int(ramp_s) < 0:
        raise ValueError(f"runtime_s >= 1 and ramp_s >= 0 expected, got {runtime_s}, {ramp_s}")
    args = ["fio", f"--name={profile.name}", f"--filename={_device(device)}", f"--rw={profile.rw}"]
    if profile.rwmixread is not None:
        args.append(f"--rwmixread={profile.rwmixread}")
    args += [f"--bs={profile.bs}", f"--iodepth={profile.iodepth}", f"--numjobs={profile.numjobs}", *MEASURE_OPTIONS,
             f"--runtime={int(runtime_s)}", f"--ramp_time={int(ramp_s)}", "--group_reporting", "--output-format=json"]
    if output:
        args.append(f"--output={output}")
    if bw_log:
        args += [f"--write_bw_log={bw_log}", f"--log_avg_msec={int(log_avg_msec)}"]
    return shlex.join(args)


def precondition_command(device: str, *, output: str | None = None) -> str:
    """Write every block of ``device`` once (1 MiB sequential, queue depth 32), fio JSON on stdout (or ``output``)."""
    args = ["fio", "--name=precondition", f"--filename={_device(device)}", "--rw=write", "--bs=1M", "--iodepth=32",
            "--numjobs=1", "--direct=1", "--ioengine=libaio", "--size=100%", "--group_reporting",
            "--output-format=json"]
    if output:
        args.append(f"--output={output}")
    return shlex.join(args)


def bw_log_files(prefix: str, numjobs: int = 1) -> list[str]:
    """The files fio writes for ``--write_bw_log=prefix`` (one per job)."""
    return [f"{prefix}_bw.{i}.log" for i in range(1, numjobs + 1)]


def phase_budget(total_s: float, profiles: int, *, overhead_s: float = 10.0, ramp_s: int = 5,
                 min_runtime_s: int = 10) -> tuple[int, int]:
    """(runtime_s, ramp_s) per profile so that ``profiles`` runs, each with ``overhead_s`` for SSH and parsing,
    fit in ``total_s`` (never below ``min_runtime_s``: a shorter run measures start-up, not the cluster)."""
    per = total_s / max(profiles, 1) - overhead_s - ramp_s
    return max(int(per), min_runtime_s), ramp_s


# ---------------------------------------------------------------- fio's JSON

@dataclass(frozen=True)
class DirStats:
    """One direction (read or write) of a run."""

    iops: float = 0.0
    bw_bytes: float = 0.0               # bytes/s
    io_bytes: int = 0
    total_ios: int = 0
    runtime_ms: int = 0
    clat_mean_ns: float = 0.0
    clat_p99_ns: float | None = None
    clat_p999_ns: float | None = None

    @property
    def mbps(self) -> float:
        return self.bw_bytes / MB


@dataclass(frozen=True)
class FioRun:
    """One fio run in one VM (the job entries summed)."""

    jobname: str
    error: int                          # fio's job error (errno), 0 = none
    read: DirStats
    write: DirStats
    job_runtime_ms: int
    timestamp_ms: int | None            # when fio wrote the JSON: the end of the run
    version: str = ""
    vm: str = ""

    @property
    def iops(self) -> float:
        return self.read.iops + self.write.iops

    @property
    def mbps(self) -> float:
        return self.read.mbps + self.write.mbps

    @property
    def total_ios(self) -> int:
        return self.read.total_ios + self.write.total_ios

    @property
    def clat_mean_ns(self) -> float | None:
        return _weighted([(d.clat_mean_ns, d.total_ios) for d in (self.read, self.write)])

    @property
    def clat_p99_ns(self) -> float | None:
        return _worst(d.clat_p99_ns for d in (self.read, self.write) if d.total_ios)

    @property
    def clat_p999_ns(self) -> float | None:
        return _worst(d.clat_p999_ns for d in (self.read, self.write) if d.total_ios)

    @property
    def start_ms(self) -> int | None:
        """When the measured part began (epoch ms, the guest's clock): fio's end stamp − job runtime. fio restarts
        its clock after ``ramp_time``, so this is also the zero of the run's bandwidth log."""
        return None if self.timestamp_ms is None else self.timestamp_ms - self.job_runtime_ms

    @property
    def end_ms(self) -> int | None:
        return self.timestamp_ms

    @property
    def window_ms(self) -> tuple[int, int] | None:
        """(start, end) of the measured part, epoch ms, from fio's end stamp and job runtime."""
        if self.timestamp_ms is None:
            return None
        return self.timestamp_ms - self.job_runtime_ms, self.timestamp_ms


def _weighted(pairs: Iterable[tuple[float | None, int]]) -> float | None:
    pairs = [(v, n) for v, n in pairs if v is not None and n > 0]
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else None


def _worst(values: Iterable[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _percentile(table: Any, target: float) -> float | None:
    for key, value in (table or {}).items():
        try:
            if abs(float(key) - target) < 1e-6:
                return float(value)
        except (TypeError, ValueError):
            continue
    return None


def _dir_stats(d: Any) -> DirStats:
    d = d if isinstance(d, dict) else {}
    clat = d.get("clat_ns") if isinstance(d.get("clat_ns"), dict) else {}
    bw_bytes = d.get("bw_bytes")
    return DirStats(iops=float(d.get("iops") or 0),
                    bw_bytes=float(bw_bytes if bw_bytes is not None else float(d.get("bw") or 0) * 1024),
                    io_bytes=int(d.get("io_bytes") or 0), total_ios=int(d.get("total_ios") or 0),
                    runtime_ms=int(d.get("runtime") or 0), clat_mean_ns=float(clat.get("mean") or 0),
                    clat_p99_ns=_percentile(clat.get("percentile"), 99.0),
                    clat_p999_ns=_percentile(clat.get("percentile"), 99.9))


def _sum_dirs(stats: list[DirStats]) -> DirStats:
    if len(stats) == 1:
        return stats[0]
    return DirStats(iops=sum(s.iops for s in stats), bw_bytes=sum(s.bw_bytes for s in stats),
                    io_bytes=sum(s.io_bytes for s in stats), total_ios=sum(s.total_ios for s in stats),
                    runtime_ms=max(s.runtime_ms for s in stats),
                    clat_mean_ns=_weighted([(s.clat_mean_ns, s.total_ios) for s in stats]) or 0.0,
                    clat_p99_ns=_worst(s.clat_p99_ns for s in stats if s.total_ios),
                    clat_p999_ns=_worst(s.clat_p999_ns for s in stats if s.total_ios))


def parse_fio_json(text: str, *, vm: str = "") -> FioRun:
    """fio's ``--output-format=json`` output (warning lines before the document tolerated) → :class:`FioRun`.
    Output without a JSON document, or without jobs, is one :class:`PerfDataError` line naming ``vm``."""
    where = f" ({vm})" if vm else ""
    start, pos = -1, 0
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("{"):
            start = pos + len(line) - len(line.lstrip())
            break
        pos += len(line)
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")[:160]
    fix = "检查客户机中的 fio（3.x）与命令行 / check fio (3.x) in the guest and its command line"
    if start < 0:
        raise PerfDataError(f"fio 的输出不含 JSON{where} / fio's output holds no JSON document{where} "
                            f"(first line: {first!r}); {fix}")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise PerfDataError(f"fio 的 JSON 输出不完整或无效{where} / fio's JSON output is cut or invalid{where} "
                            f"({exc.msg} at char {exc.pos}); {fix}") from exc
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    if not isinstance(jobs, list) or not jobs or not all(isinstance(j, dict) for j in jobs):
        raise PerfDataError(f"fio 的 JSON 输出没有 jobs{where} / fio's JSON output has no jobs{where}; {fix}")
    try:
        stamp = doc.get("timestamp_ms")
        if stamp is None and doc.get("timestamp") is not None:
            stamp = int(doc["timestamp"]) * 1000
        return FioRun(jobname=str(jobs[0].get("jobname", "")),
                      error=next((int(j.get("error") or 0) for j in jobs if j.get("error")), 0),
                      read=_sum_dirs([_dir_stats(j.get("read")) for j in jobs]),
                      write=_sum_dirs([_dir_stats(j.get("write")) for j in jobs]),
                      job_runtime_ms=max(int(j.get("job_runtime") or 0) for j in jobs),
                      timestamp_ms=None if stamp is None else int(stamp),
                      version=str(doc.get("fio version", "")), vm=vm)
    except (TypeError, ValueError) as exc:
        raise PerfDataError(f"fio 的 JSON 输出含非数字字段{where} / fio's JSON output has a non-numeric "
                            f"field{where}: {exc}; {fix}") from exc


# ---------------------------------------------------------------- aggregation

def aggregate(name: str, runs: Sequence[FioRun]) -> ProfileFigures:
    """Sum IOPS and MB/s over the VMs' runs; the mean latency weighted by I/O count; p99 / p99.9 the worst VM's."""
    ms = 1e6
    worst = max((r for r in runs if r.clat_p99_ns is not None), key=lambda r: r.clat_p99_ns or 0, default=None)
    mean = _weighted([(r.clat_mean_ns, r.total_ios) for r in runs])
    p999 = _worst(r.clat_p999_ns for r in runs)
    windows = [r.window_ms for r in runs if r.window_ms]
    return ProfileFigures(
        name=name, vms=len(runs), iops=sum(r.iops for r in runs), read_iops=sum(r.read.iops for r in runs),
        write_iops=sum(r.write.iops for r in runs), mbps=sum(r.mbps for r in runs),
        read_mbps=sum(r.read.mbps for r in runs), write_mbps=sum(r.write.mbps for r in runs),
        lat_mean_ms=None if mean is None else mean / ms,
        lat_p99_ms=None if worst is None or worst.clat_p99_ns is None else worst.clat_p99_ns / ms,
        lat_p999_ms=None if p999 is None else p999 / ms, worst_vm=worst.vm if worst else "",
        errors=tuple(f"{r.vm or '?'}: error {r.error}" for r in runs if r.error),
        window_ms=(min(w[0] for w in windows), max(w[1] for w in windows)) if windows else None)


# ---------------------------------------------------------------- bandwidth log and reliability

class BwSample(NamedTuple):
    msec: int                           # since the job's start
    kib_s: float
    direction: int                      # 0 read, 1 write, 2 trim
    job: int = 1


def parse_bw_log(text: str, *, job: int = 1, source: str = "bw log") -> list[BwSample]:
    """fio's ``*_bw.<job>.log`` → samples; a line that is not ``msec, KiB/s, direction, …`` is one
    :class:`PerfDataError` line naming ``source`` and the line number."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            if len(parts) < 3:
                raise ValueError(line)
            out.append(BwSample(int(parts[0]), float(parts[1]), int(parts[2]), job))
        except ValueError as exc:
            raise PerfDataError(f"{source} 第 {n} 行不是 fio 带宽日志格式 / line {n} of {source} is not fio's "
                                f"bandwidth-log format 'msec, KiB/s, direction, bs, offset': {line[:80]!r}") from exc
    return out


class Reliability(NamedTuple):
    before: float                       # MB/s over the window before the migration started
    after: float                        # MB/s over the window after it ended
    ratio: float | None                 # after / before; None: not measurable (a window without samples, or 0 before)

    def ok(self, min_ratio: float = MIN_RATIO) -> bool:
        return self.ratio is not None and self.ratio >= min_ratio

    def describe(self, min_ratio: float = MIN_RATIO) -> str:
        if self.ratio is None:
            return ("无法测量：迁移前后 30 秒内没有带宽样本或迁移前吞吐为 0（fio 须在迁移结束后至少再运行 30 秒）/ "
                    "not measurable: no bandwidth sample, or no throughput, in the 30 s before or after the migration "
                    "(fio must run at least 30 s past its end)")
        verdict = "达标 / passes" if self.ok(min_ratio) else "未达标 / fails"
        return (f"迁移后 / after {self.after:,.1f} MB/s ÷ 迁移前 / before {self.before:,.1f} MB/s = "
                f"{self.ratio:.0%}（阈值 / threshold ≥ {min_ratio:.0%}）{verdict}")


def _window_mbps(samples: Sequence[BwSample], lo: float, hi: float) -> tuple[float, int]:
    streams: dict[tuple[int, int], list[float]] = {}
    for s in samples:
        if lo < s.msec <= hi:
            streams.setdefault((s.job, s.direction), []).append(s.kib_s)
    total = sum(sum(v) / len(v) for v in streams.values())
    return total * 1024 / MB, sum(len(v) for v in streams.values())


def reliability(samples: Sequence[BwSample], mig_start_ms: float, mig_end_ms: float,
                window_ms: float = WINDOW_MS) -> Reliability:
    """Throughput in the ``window_ms`` before ``mig_start_ms`` and after ``mig_end_ms`` (ms since the job's start,
    the bw log's axis) and their ratio."""
    before, n_before = _window_mbps(samples, mig_start_ms - window_ms, mig_start_ms)
    after, n_after = _window_mbps(samples, mig_end_ms, mig_end_ms + window_ms)
    ratio = after / before if n_before and n_after and before > 0 else None
    return Reliability(before, after, ratio)
