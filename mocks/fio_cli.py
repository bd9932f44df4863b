"""fio's command line as the simulated guest understands it (issue 19): :func:`parse_fio_args` (fio's own error
texts), :func:`job_of` (job options -> :class:`mocks.fio_model.Job`), :func:`device_of` (the disk a job runs on) and
:func:`normal_output` (fio's human-readable summary, short). Used by :mod:`mocks.guest`."""
from __future__ import annotations

import posixpath
import re
import time

from . import fio_model as fm
from .fio_model import Job

__all__ = ["FioUsage", "device_of", "job_of", "normal_output", "parse_fio_args", "percentiles_of"]


_CLI_ONLY = {"output", "output-format", "eta", "eta-newline", "version"}
_OPTS = {   # name -> kind
    "name": "str", "filename": "str", "rw": "rw", "readwrite": "rw", "rwmixread": "pct", "rwmixwrite": "pct",
    "bs": "size", "blocksize": "size", "iodepth": "int", "numjobs": "int", "direct": "bool", "ioengine": "engine",
    "time_based": "flag", "runtime": "time", "ramp_time": "time", "size": "sizepct", "group_reporting": "flag",
    "write_bw_log": "str", "log_avg_msec": "int", "percentile_list": "plist", "randrepeat": "bool",
    "norandommap": "flag", "output": "str", "output-format": "format", "eta": "str", "eta-newline": "time",
    "version": "flag",
}
_ENGINES = {"libaio", "io_uring", "psync", "sync", "pvsync", "posixaio", "mmap"}
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}
_TIME_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "ms": 1e-3, "us": 1e-6}


class FioUsage(ValueError):
    """fio's own error text for a bad command line."""


def _size(v: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", v.strip(), re.I)
    if not m:
        raise ValueError(v)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _time(v: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|us|[smhd]?)", v.strip(), re.I)
    if not m:
        raise ValueError(v)
    return float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]


def _closest(opt: str) -> str | None:
    """fio's show_closest_option: a known option within edit distance 2."""
    def dist(a: str, b: str) -> int:
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]
    best = min(_OPTS, key=lambda o: dist(opt, o))
    return best if dist(opt, best) < 3 else None


def _valid(kind: str, value: str, name: str) -> bool:
    """Whether ``value`` parses as an option of ``kind`` (fio's own parser, roughly)."""
    try:
        if kind == "rw":
            return value in fm.RW_MODES
        if kind == "pct":
            return value.isdigit() and int(value) <= 100
        if kind == "int":
            return value.isdigit() and (int(value) >= 1 or name == "log_avg_msec")
        if kind == "bool":
            return value in ("0", "1")
        if kind == "size":
            return _size(value) > 0
        if kind == "sizepct":
            return 0 < float(value[:-1]) <= 100 if value.endswith("%") else _size(value) >= 0
        if kind == "time":
            return _time(value) >= 0
        if kind == "plist":
            return all(0 <= float(p) <= 100 for p in value.split(":"))
    except ValueError:
        return False
    return True


def _check_value(name: str, kind: str, value: str | None) -> str:
    if kind == "flag":
        if value not in (None, "1", "0", "true", "false"):
            raise FioUsage(f"fio: failed parsing {name}={value}")
        return "1" if value in (None, "1", "true") else "0"
    if value is None or value == "":
        raise FioUsage(f"fio: option '--{name}' requires an argument")
    if not _valid(kind, value, name):
        raise FioUsage(f"fio: failed parsing {name}={value}")
    if kind == "engine" and value not in _ENGINES:
        raise FioUsage(f"fio: engine {value} not loadable\nfio: failed to load engine")
    if kind == "format" and value not in ("normal", "json", "json+", "terse"):
        raise FioUsage(f'fio: unknown output format "{value}"')
    return value


def parse_fio_args(args: list[str]) -> tuple[dict, dict, list[dict]]:
    """fio's argv (without ``fio``) -> (command-line options, global options, [job options]); options before the
    first ``--name`` are global. Raises :class:`FioUsage` with fio's text."""
    cli: dict = {}
    glob: dict = {}
    jobs: list[dict] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if not a.startswith("-") or a in ("-", "--"):
            raise FioUsage(f"fio: job file {a} not found" if not a.startswith("-") else f"fio: unrecognized option '{a}'")
        name, eq, value = a.lstrip("-").partition("=")
        kind = _OPTS.get(name)
        if kind is None:
            hint = _closest(name)
            raise FioUsage(f"fio: unrecognized option '{a}'" + (f"\nDid you mean {hint}?" if hint else ""))
        if not eq:
            value = None
            if kind != "flag" and i < len(args) and not args[i].startswith("--"):
                value, i = args[i], i + 1
        value = _check_value(name, kind, value)
        if name in _CLI_ONLY:
            cli[name] = value
        elif name == "name":
            jobs.append({"name": value})
        else:
            (jobs[-1] if jobs else glob)[name] = value
    return cli, glob, jobs


def job_of(opts: dict) -> Job:
    """A job's options (global ones merged in) -> the model's :class:`Job`."""
    rw = opts.get("rw") or opts.get("readwrite") or "read"
    mix = int(opts["rwmixread"]) if "rwmixread" in opts else (100 - int(opts["rwmixwrite"]) if "rwmixwrite" in opts
                                                               else 50)
    return Job(name=opts["name"], rw=rw, bs=_size(opts.get("bs") or opts.get("blocksize") or "4k"),
               iodepth=int(opts.get("iodepth", 1)), numjobs=int(opts.get("numjobs", 1)), rwmixread=mix,
               runtime=_time(opts["runtime"]) if "runtime" in opts else 0.0,
               ramp_time=_time(opts["ramp_time"]) if "ramp_time" in opts else 0.0,
               time_based=opts.get("time_based") == "1", options=dict(opts))


# --------------------------------------------------------------------------- the commands
def device_of(disks: dict[str, int], job: Job, opts: dict, pid: int) -> tuple[str, int]:
    """(device name, bytes the job covers) on a guest with ``disks`` {name: bytes}; :class:`FioUsage` with fio's
    text for a missing device (``/dev/<name>`` not a disk, or not a device at all) or size."""
    filename = opts.get("filename") or job.name
    dev = posixpath.basename(filename) if filename.startswith("/dev/") else None
    size = opts.get("size")
    if dev not in disks:
        if size is None:
            raise FioUsage(f"{job.name}: you need to specify size=\n"
                           f"fio: pid={pid}, err=22/file:filesetup.c:1156, func=total_file_size, error=Invalid argument")
        raise FioUsage(f"fio: pid={pid}, err=2/file:filesetup.c:805, func=open({filename}), "
                       "error=No such file or directory")
    cap = disks[dev]
    if size is None:
        return dev, cap
    if size.endswith("%"):
        return dev, int(cap * float(size[:-1]) / 100)
    return dev, min(cap, _size(size))



def percentiles_of(opts: dict) -> tuple:
    given = opts.get("percentile_list")
    return tuple(float(p) for p in given.split(":") if p) if given else fm.DEFAULT_PERCENTILES


def _human(v: float, unit: str = "") -> str:
    for suffix in ("", "k", "M", "G"):
        if abs(v) < 1000 or suffix == "G":
            return f"{v:.1f}{suffix}{unit}" if suffix else f"{v:.0f}{unit}"
        v /= 1000
    return str(v)


def normal_output(entries: list[dict], jobs: list[Job], pid: int, end_wall: float) -> str:
    """fio's human-readable summary (a short form: the suite reads JSON)."""
    out = []
    for job in jobs:
        out.append(f"{job.name}: (g=0): rw={job.rw}, bs=(R) {job.bs}B-{job.bs}B, (W) {job.bs}B-{job.bs}B, "
                   f"(T) {job.bs}B-{job.bs}B, ioengine={job.options.get('ioengine', 'psync')}, "
                   f"iodepth={job.iodepth}")
    out.append(fm.FIO_VERSION)
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(end_wall))
    for e in entries:
        out.append(f"\n{e['jobname']}: (groupid=0, jobs=1): err={e['error']:2d}: pid={pid}: {stamp}")
        for d in ("read", "write"):
            s = e[d]
            if s["total_ios"]:
                out.append(f"  {d}: IOPS={_human(s['iops'])}, BW={s['bw'] / 1024:.1f}MiB/s "
                           f"({s['bw_bytes'] / 1e6:.1f}MB/s)({s['io_bytes'] / 2 ** 30:.2f}GiB/{s['runtime']}msec)")
                out.append(f"    clat (usec): min={s['clat_ns']['min'] // 1000}, max={s['clat_ns']['max'] // 1000}, "
                           f"avg={s['clat_ns']['mean'] / 1000:.2f}, stdev={s['clat_ns']['stddev'] / 1000:.2f}")
    out.append("\nRun status group 0 (all jobs):")
    return "\n".join(out) + "\n"


