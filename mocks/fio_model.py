"""The simulated test VMs' storage performance (issue 19, stages 09-10) and fio 3.x's output.

Nothing here touches a socket or the simulator: :func:`predict` is a pure function of a job and the cluster,
:func:`fio_json` / :func:`bw_log` turn a prediction into fio's JSON and bandwidth log. :mod:`mocks.guest` runs
them behind the guest's ``fio`` command.

Per-host capability (``MB`` = 10^6 bytes; base latency of one 4 KiB I/O at queue depth 1):

=============  ===============  ================  =============  ==============  ===========  ============  ===========
architecture   4k randread IOPS  4k randwrite IOPS  seq read MB/s  seq write MB/s  read lat µs  write lat µs  stream MB/s
=============  ===============  ================  =============  ==============  ===========  ============  ===========
hybrid         60 000           30 000            1 500          800             500          1 000         400
all-flash      150 000          60 000            3 000          1 600           200          400           800
=============  ===============  ================  =============  ==============  ===========  ============  ===========

(all-flash: every host's data disks SSD/NVMe, ``SimHost.is_all_flash``; hybrid: NVMe cache + HDD.)

Formulas, for a job ``rw, bs, iodepth, numjobs, rwmixread`` on ``hosts`` hosts with ``peers`` test VMs running it:

* base latency of one I/O of ``bs`` bytes: ``base_d = lat_d + max(0, bs - 4096) / stream`` (d = read | write);
* per-host IOPS capacity: random ``cap_d = min(rand_iops_d, seq_Bps_d / bs)``, sequential
  ``cap_d = min(2 × rand_iops_d, seq_Bps_d / bs)``; mixed (``rw``/``randrw``, read share ``r = rwmixread/100``,
  default 0.5): ``cap = 1 / (r / cap_read + (1 - r) / cap_write)``, ``base = r × base_read + (1 - r) × base_write``;
* cluster capacity ``C = cap × hosts ** 0.9``; one VM's demand ``D = iodepth × numjobs / base``;
* delivered total ``X = C × (1 - exp(-peers × D / C))`` (sub-linear in VMs), each VM ``x = X / peers × jitter``,
  ``jitter`` a deterministic 0.97-1.03 from a hash of (VM id, job name);
* completion latency (Little's law) ``clat = max(base, iodepth × numjobs / x)``; per direction
  ``clat_d = max(base_d, clat × base_d / base)``; submission latency 2-4 µs (``slat``), ``lat = slat + clat``;
* percentiles from the mean: p99 = mean × 2.5 (all-flash) / × 3.5 (hybrid), p99.9 = × 4 / × 6 (table
  :data:`SHAPE`, interpolated in log(1 - p) for other percentiles);
* read IOPS ``x × r``, write ``x × (1 - r)``; bytes/s = IOPS × bs.

Example, 3 hosts, 4k randread iodepth 32 numjobs 4 (before jitter): hybrid C = 60 000 × 3^0.9 ≈ 161 300,
D = 128 / 0.0005 = 256 000, one VM X ≈ 128 300 IOPS (clat ≈ 1.0 ms), two VMs X ≈ 154 500 (77 300 each, ≈ 1.66 ms);
all-flash C ≈ 403 200, D = 640 000, one VM ≈ 320 700 IOPS (≈ 0.40 ms), two ≈ 386 300 (193 200 each).
1M seqread iodepth 32 numjobs 1, one VM: hybrid ≈ 3.7 GB/s (≈ 8.8 ms), all-flash ≈ 7.5 GB/s (≈ 4.4 ms);
4k randread iodepth 1: ≈ the base latency (hybrid 0.50 ms, all-flash 0.20 ms).

During a live migration of the VM (``{"start", "end"}`` in simulated seconds, failed ones alike) throughput is
:data:`MIGRATION_FACTOR` (60 %) of normal; a second of the bandwidth log that overlaps a migration by a fraction ``f``
shows ``1 - 0.4 f`` of normal; the JSON's averages include it.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

__all__ = ["ALL_FLASH", "DEFAULT_PERCENTILES", "FIO_VERSION", "HYBRID", "MIGRATION_FACTOR", "SHAPE", "FioRun",
           "HostCapability", "Job", "Prediction", "bw_log", "dip_factor", "fio_json", "predict"]

FIO_VERSION = "fio-3.28"
MIGRATION_FACTOR = 0.6
DEFAULT_PERCENTILES = (1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9,
                       99.95, 99.99)


@dataclass(frozen=True)
class HostCapability:
    rand_read_iops: float
    rand_write_iops: float
    seq_read_mbps: float
    seq_write_mbps: float
    read_lat_us: float
    write_lat_us: float
    stream_mbps: float


HYBRID = HostCapability(60_000, 30_000, 1_500, 800, 500, 1_000, 400)
ALL_FLASH = HostCapability(150_000, 60_000, 3_000, 1_600, 200, 400, 800)

# latency distribution as multiples of the mean, per percentile (all-flash, hybrid)
SHAPE = {
    True: ((0.0, 0.40), (1.0, 0.45), (10.0, 0.62), (50.0, 0.93), (90.0, 1.45), (99.0, 2.5), (99.9, 4.0),
           (99.99, 6.0), (100.0, 8.0)),
    False: ((0.0, 0.30), (1.0, 0.38), (10.0, 0.55), (50.0, 0.85), (90.0, 1.7), (99.0, 3.5), (99.9, 6.0),
            (99.99, 9.0), (100.0, 12.0)),
}

READS, WRITES = {"read", "randread"}, {"write", "randwrite"}
RW_MODES = ("read", "write", "randread", "randwrite", "rw", "randrw")


@dataclass
class Job:
    """One fio job as the model needs it (sizes in bytes, times in seconds)."""

    name: str
    rw: str = "read"
    bs: int = 4096
    iodepth: int = 1
    numjobs: int = 1
    rwmixread: int = 50
    runtime: float = 0.0
    ramp_time: float = 0.0
    time_based: bool = False
    size: int = 0
    options: dict = field(default_factory=dict)        # as given, for "job options"

    @property
    def read_share(self) -> float:
        if self.rw in READS:
            return 1.0
        if self.rw in WRITES:
            return 0.0
        return max(0, min(100, self.rwmixread)) / 100.0


@dataclass
class Prediction:
    """Per-VM figures of a job (no migration): IOPS, bytes/s, mean completion latency (ns) per direction."""

    read_iops: float
    write_iops: float
    bs: int
    read_clat_ns: float
    write_clat_ns: float
    base_ns: float
    all_flash: bool

    @property
    def iops(self) -> float:
        return self.read_iops + self.write_iops


@dataclass
class FioRun:
    """One fio run of a VM, for CloudTower's VM metrics: simulated seconds and per-VM averages over the run
    (migration dips included); ``dips`` the (start, end) windows at :data:`MIGRATION_FACTOR`."""

    start: float
    end: float
    read_iops: float
    write_iops: float
    read_bps: float
    write_bps: float
    lat_ns: float
    job: str = ""
    error: int = 0
    dips: list = field(default_factory=list)

    def factor_at(self, t: float) -> float:
        """Throughput at simulated second ``t`` relative to the averages' undipped level (0 outside the run)."""
        if not self.start <= t <= self.end:
            return 0.0
        return MIGRATION_FACTOR if any(a <= t <= b for a, b in self.dips) else 1.0

    def to_dict(self) -> dict:
        return dict(self.__dict__, dips=[list(d) for d in self.dips])


def jitter(vm: str, job: str) -> float:
    """Deterministic 0.97-1.03 from (VM id, job name)."""
    h = int.from_bytes(hashlib.sha256(f"{vm}|{job}".encode()).digest()[:8], "big") / 2 ** 64
    return 1.0 + 0.03 * (2 * h - 1)


def _cap(c: HostCapability, read: bool, bs: int, sequential: bool) -> tuple[float, float]:
    """(per-host IOPS capacity, base latency in seconds) of one direction."""
    rand = c.rand_read_iops if read else c.rand_write_iops
    seq_bps = (c.seq_read_mbps if read else c.seq_write_mbps) * 1e6
    cap = min(rand * (2 if sequential else 1), seq_bps / bs)
    base = ((c.read_lat_us if read else c.write_lat_us) * 1e-6 + max(0, bs - 4096) / (c.stream_mbps * 1e6))
    return cap, base


def predict(job: Job, *, all_flash: bool, hosts: int, peers: int, vm: str = "") -> Prediction:
    """The model of the module docstring: one VM's figures while ``peers`` VMs run ``job``."""
    c = ALL_FLASH if all_flash else HYBRID
    r = job.read_share
    seq = not job.rw.startswith("rand")
    cap_r, base_r = _cap(c, True, job.bs, seq)
    cap_w, base_w = _cap(c, False, job.bs, seq)
    cap = 1.0 / (r / cap_r + (1 - r) / cap_w)
    base = r * base_r + (1 - r) * base_w
    peers = max(1, int(peers))
    capacity = cap * max(1, int(hosts)) ** 0.9
    outstanding = max(1, job.iodepth) * max(1, job.numjobs)
    demand = outstanding / base
    total = capacity * (1.0 - math.exp(-peers * demand / capacity))
    x = total / peers * jitter(vm, job.name)
    clat = max(base, outstanding / x)
    return Prediction(read_iops=x * r, write_iops=x * (1 - r), bs=job.bs,
                      read_clat_ns=max(base_r, clat * base_r / base) * 1e9,
                      write_clat_ns=max(base_w, clat * base_w / base) * 1e9, base_ns=base * 1e9, all_flash=all_flash)


# --------------------------------------------------------------------------- distribution helpers
def percentile(mean_ns: float, p: float, all_flash: bool) -> float:
    """Latency at percentile ``p`` (0-100) from the mean, by :data:`SHAPE` (log(1-p) interpolation)."""
    pts = SHAPE[all_flash]
    p = max(0.0, min(100.0, p))

    def u(q: float) -> float:
        return -math.log10(max(1e-4, 1 - q / 100.0))

    for (p0, m0), (p1, m1) in zip(pts, pts[1:]):
        if p0 <= p <= p1:
            f = (u(p) - u(p0)) / (u(p1) - u(p0)) if u(p1) > u(p0) else 1.0
            return mean_ns * (m0 + f * (m1 - m0))
    return mean_ns * pts[-1][1]


def _cdf(mean_ns: float, x_ns: float, all_flash: bool) -> float:
    """Fraction (0-1) of I/Os completing within ``x_ns`` (inverse of :func:`percentile`, bisection)."""
    lo, hi = 0.0, 100.0
    if x_ns < percentile(mean_ns, 0.0, all_flash):
        return 0.0
    if x_ns >= percentile(mean_ns, 100.0, all_flash):
        return 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if percentile(mean_ns, mid, all_flash) <= x_ns:
            lo = mid
        else:
            hi = mid
    return lo / 100.0


_BUCKETS = ("2", "4", "10", "20", "50", "100", "250", "500", "750", "1000")


def _latency_buckets(mean_ns: float, all_flash: bool) -> dict:
    """fio's latency_ns / latency_us / latency_ms histograms (percent of I/Os per bucket, upper bounds)."""
    out, prev = {}, 0.0
    for unit, scale, extra in (("latency_ns", 1, ()), ("latency_us", 1e3, ()), ("latency_ms", 1e6, ("2000",))):
        d = {}
        for b in _BUCKETS + extra:
            c = _cdf(mean_ns, float(b) * scale, all_flash) if mean_ns else 0.0
            d[b] = round(max(0.0, c - prev) * 100, 6)
            prev = max(prev, c)
        if unit == "latency_ms":
            d[">=2000"] = round(max(0.0, 1.0 - prev) * 100, 6) if mean_ns else 0.0
        out[unit] = d
    return out


def dip_factor(t0: float, t1: float, dips: list) -> float:
    """Mean throughput factor over simulated [t0, t1] given migration windows ``dips`` [(start, end)]."""
    span = t1 - t0
    if span <= 0:
        return 1.0
    covered = 0.0
    for a, b in dips:
        covered += max(0.0, min(t1, b) - max(t0, a))
    f = min(1.0, covered / span)
    return 1.0 - (1.0 - MIGRATION_FACTOR) * f


def _wobble(seed: str, i: int) -> float:
    """Deterministic ±2 % second-to-second variation."""
    h = int.from_bytes(hashlib.sha256(f"{seed}|{i}".encode()).digest()[:4], "big") / 2 ** 32
    return 1.0 + 0.02 * (2 * h - 1)


def samples(pred_bps: float, t0: float, seconds: int, dips: list, seed: str) -> list[float]:
    """Bytes/s per second of a run measured from simulated ``t0`` (migration dips applied)."""
    return [pred_bps * dip_factor(t0 + i, t0 + i + 1, dips) * _wobble(seed, i) for i in range(seconds)]


# --------------------------------------------------------------------------- fio's JSON
def _stats(values: list[float]) -> tuple[float, float, float, float]:
    if not values:
        return 0.0, 0.0, 0.0, 0.0
    mean = sum(values) / len(values)
    dev = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return min(values), max(values), mean, dev


def _direction(series_bps: list[float], bs: int, clat_mean_ns: float, runtime_ms: int, all_flash: bool,
               percentiles: tuple, numjobs: int) -> dict:
    """One of read / write / trim: fio 3.x field names and units (bw KiB/s, bw_bytes B/s, latencies ns)."""
    secs = max(1, len(series_bps))
    io_bytes = int(sum(series_bps) * runtime_ms / 1000.0 / secs) // bs * bs if series_bps else 0
    total_ios = io_bytes // bs if bs else 0
    bw_bytes = int(io_bytes * 1000 / runtime_ms) if runtime_ms and total_ios else 0
    iops = total_ios * 1000.0 / runtime_ms if runtime_ms and total_ios else 0.0
    n = total_ios
    clat_mean = clat_mean_ns if n else 0.0
    slat_mean = 3000.0 if n else 0.0
    per_job = [v / numjobs / 1024 for v in series_bps] if n else []
    bmin, bmax, bmean, bdev = _stats(per_job)
    imin, imax, imean, idev = _stats([v * 1024 / bs for v in per_job])
    clat = {"min": int(percentile(clat_mean, 0, all_flash)), "max": int(percentile(clat_mean, 100, all_flash)),
            "mean": round(clat_mean, 6), "stddev": round(clat_mean * (0.45 if all_flash else 0.7), 6), "N": n}
    if n:
        clat["percentile"] = {f"{p:.6f}": int(percentile(clat_mean, p, all_flash)) for p in percentiles}
    slat = {"min": 1000 if n else 0, "max": 45000 if n else 0, "mean": round(slat_mean, 6),
            "stddev": round(slat_mean * 0.4, 6), "N": n}
    lat = {"min": slat["min"] + clat["min"], "max": slat["max"] + clat["max"], "mean": round(slat_mean + clat_mean, 6),
           "stddev": clat["stddev"], "N": n}
    return {"io_bytes": io_bytes, "io_kbytes": io_bytes // 1024, "bw_bytes": bw_bytes, "bw": bw_bytes // 1024,
            "iops": round(iops, 6), "runtime": runtime_ms if n else 0, "total_ios": total_ios, "short_ios": 0,
            "drop_ios": 0, "slat_ns": slat, "clat_ns": clat, "lat_ns": lat,
            "bw_min": int(bmin), "bw_max": int(bmax), "bw_agg": 100.0 if n else 0.0, "bw_mean": round(bmean, 6),
            "bw_dev": round(bdev, 6), "bw_samples": len(per_job) * numjobs,
            "iops_min": int(imin), "iops_max": int(imax), "iops_mean": round(imean, 6),
            "iops_stddev": round(idev, 6), "iops_samples": len(per_job) * numjobs}


def job_entry(job: Job, pred: Prediction, *, read_series: list[float], write_series: list[float], runtime_ms: int,
              elapsed_s: int, error: int = 0, percentiles: tuple = DEFAULT_PERCENTILES, share: int = 1) -> dict:
    """One ``jobs[]`` entry; ``share`` > 1: one of ``share`` per-thread entries (no group_reporting)."""
    scale = 1.0 / share
    rd = _direction([v * scale for v in read_series], job.bs, pred.read_clat_ns, runtime_ms, pred.all_flash,
                    percentiles, max(1, job.numjobs // share))
    wr = _direction([v * scale for v in write_series], job.bs, pred.write_clat_ns, runtime_ms, pred.all_flash,
                    percentiles, max(1, job.numjobs // share))
    trim = _direction([], job.bs, 0.0, runtime_ms, pred.all_flash, percentiles, 1)
    mean_ns = (pred.read_clat_ns * pred.read_iops + pred.write_clat_ns * pred.write_iops) / max(pred.iops, 1e-9)
    depth = max(1, job.iodepth)
    levels = {k: 0.0 for k in ("1", "2", "4", "8", "16", "32", ">=64")}
    top = ">=64" if depth >= 64 else str(1 << (depth.bit_length() - 1))
    levels[top] = 100.0
    return {"jobname": job.name, "groupid": 0, "error": int(error), "eta": 0, "elapsed": int(elapsed_s),
            "job options": dict(job.options), "read": rd, "write": wr, "trim": trim,
            "sync": {"total_ios": 0, "lat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}},
            "job_runtime": runtime_ms, "usr_cpu": 4.2, "sys_cpu": 11.8, "ctx": int(rd["total_ios"] + wr["total_ios"]),
            "majf": 0, "minf": 40 * max(1, job.numjobs // share), "iodepth_level": levels,
            "iodepth_submit": {"0": 0.0, "4": 100.0, "8": 0.0, "16": 0.0, "32": 0.0, "64": 0.0, ">=64": 0.0},
            "iodepth_complete": {"0": 0.0, "4": 99.9, "8": 0.1, "16": 0.0, "32": 0.0, "64": 0.0, ">=64": 0.0},
            **_latency_buckets(mean_ns, pred.all_flash),
            "latency_depth": depth, "latency_target": 0, "latency_percentile": 100.0, "latency_window": 0}


def fio_json(jobs: list[dict], *, end_wall: float, global_options: dict | None = None,
             disk_util: list[dict] | None = None) -> dict:
    """The whole document: ``fio version``, ``timestamp`` / ``timestamp_ms`` / ``time`` (``end_wall``, UNIX s)."""
    doc = {"fio version": FIO_VERSION, "timestamp": int(end_wall), "timestamp_ms": int(end_wall * 1000),
           "time": time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(end_wall)),
           "global options": dict(global_options or {}), "jobs": jobs}
    if disk_util is not None:
        doc["disk_util"] = disk_util
    return doc


def disk_util(name: str, jobs: list[dict], runtime_ms: int) -> dict:
    rd = sum(j["read"]["total_ios"] for j in jobs)
    wr = sum(j["write"]["total_ios"] for j in jobs)
    return {"name": name, "read_ios": rd, "write_ios": wr, "read_merges": 0, "write_merges": 0,
            "read_ticks": runtime_ms if rd else 0, "write_ticks": runtime_ms if wr else 0,
            "in_queue": runtime_ms, "util": 99.8}


def bw_log(read_series: list[float], write_series: list[float], bs: int, avg_msec: int = 1000) -> str:
    """fio 3's bandwidth log of one job: ``msec, KiB/s, direction (0 read, 1 write), bs, offset`` per line,
    one line per direction per ``avg_msec`` (msec from the measurement start; the series are per second)."""
    step = max(1, int(avg_msec))
    total_ms = max(len(read_series), len(write_series)) * 1000
    lines = []
    for t in range(step, total_ms + 1, step):
        for ddir, series in ((0, read_series), (1, write_series)):
            if not any(series):
                continue
            lo, hi = (t - step) // 1000, max((t - step) // 1000 + 1, -(-t // 1000))
            chunk = series[lo:hi] or series[-1:]
            lines.append(f"{t}, {int(sum(chunk) / len(chunk) / 1024)}, {ddir}, {bs}, 0")
    return "".join(line + "\n" for line in lines)
