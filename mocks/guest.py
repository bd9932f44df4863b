"""The FIO worker test VMs' guest (issue 19, stages 09-11): SSH on the VM's address as ``root`` / ``Fio@Worker1``,
hostname = the VM name, and the commands ``fio``, ``lsblk``, ``date`` besides the SSH shell's built-ins.

CloudTower's VM side (``mocks/cloudtower/vms.py``) calls :func:`attach_guest` once a VM's guest has its address
and :func:`detach_guest` when it powers off or goes away; it reads :func:`fio_runs` for the VM metrics. The
performance figures come from :mod:`mocks.fio_model` (its docstring documents the model).

State per simulator (a module-level ``WeakKeyDictionary`` keyed by the simulator): the guests' specs by address and
every fio run by VM id. Snapshots: not part of one by default (the fio runs only feed the metrics of the run that
made them); :func:`export_state` / :func:`import_state` exist for a family that wants to carry them.

Faults: ``GuestSpec.io_error = True`` (or a fault rule ``{"method": "FIO", "action": {"operation": "fail"}}``,
``path`` globbing the fio command line, ``address`` the guest's) → the run stops at 40 % with
``fio: io_u error on file …: Input/output error``, the job's ``error`` 5 and exit 1 (the JSON is still written).
An SSH rule ``{"method": "SSH", "path": "*fio *", "status": 500, "msg": "…"}`` fails the command before it runs
(exit 1, ``msg`` on stderr, no output).
"""
from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable

from . import fio_model as fm
from .fio_cli import FioUsage, device_of, job_of, normal_output, parse_fio_args, percentiles_of
from .fio_model import FioRun

__all__ = ["GUEST_PASSWORD", "GUEST_USER", "FioRun", "GuestSpec", "attach_guest", "detach_guest", "export_state",
           "fio_runs", "guest_spec", "import_state", "parse_fio_args"]

GUEST_USER, GUEST_PASSWORD = "root", "Fio@Worker1"
FAULT_METHOD = "FIO"
IO_ERROR_AT = 0.4                  # an I/O error stops the run at this fraction of its duration


@dataclass
class GuestSpec:
    """What the guest needs from CloudTower's VM model (callables are read when a command runs)."""

    vm_id: str
    name: str
    disks: Callable[[], list[tuple[str, int]]]       # [("vda", bytes), ("vdb", bytes)]
    peers: Callable[[], int]                         # running test VMs of the cluster (this one included)
    migrations: Callable[[], list[dict]]             # [{"start": sim s, "end": sim s | None, "ok": bool}]
    all_flash: bool
    hosts: int
    io_error: bool = False                           # fault knob: fio hits an I/O error


@dataclass
class _World:
    guests: dict[str, GuestSpec] = field(default_factory=dict)
    runs: dict[str, list[FioRun]] = field(default_factory=dict)
    pids: itertools.count = field(default_factory=lambda: itertools.count(2417))
    lock: threading.Lock = field(default_factory=threading.Lock)


_WORLDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_WORLDS_LOCK = threading.Lock()


def _world(sim) -> _World:
    with _WORLDS_LOCK:
        w = _WORLDS.get(sim)
        if w is None:
            w = _WORLDS[sim] = _World()
        return w


def attach_guest(sim, ip: str, spec: GuestSpec):
    """The guest of ``spec`` is up at ``ip``: SSH on tcp/22 (root / ``Fio@Worker1``), ping. Idempotent; returns
    the :class:`mocks.ssh.server.SshService`."""
    from .hub import normalize_address
    from .ssh import attach_ssh

    ip = normalize_address(ip)
    _world(sim).guests[ip] = spec
    svc = attach_ssh(sim, ip, users={GUEST_USER: GUEST_PASSWORD}, up=True,
                     hostname=lambda: _world(sim).guests.get(ip, spec).name, role="test-vm")
    svc.register_command("fio", lambda inv: _cmd_fio(sim, ip, inv))
    svc.register_command("lsblk", lambda inv: _cmd_lsblk(sim, ip, inv))
    svc.register_command("date", lambda inv: _cmd_date(sim, inv))
    sim.set_alive(ip, True)
    return svc


def detach_guest(sim, ip: str) -> None:
    """The guest at ``ip`` is gone (power-off, delete): its SSH refuses, it no longer answers ping."""
    from .hub import normalize_address

    ip = normalize_address(ip)
    _world(sim).guests.pop(ip, None)
    if sim.hub.endpoint(ip, 22, "tcp") is not None:
        sim.set_up(ip, 22, False, proto="tcp")
    sim.set_alive(ip, False)


def guest_spec(sim, ip: str) -> GuestSpec | None:
    from .hub import normalize_address

    return _world(sim).guests.get(normalize_address(ip))


def fio_runs(sim, vm_id: str) -> list[FioRun]:
    """Every fio run of VM ``vm_id`` so far (simulated seconds), oldest first."""
    w = _world(sim)
    with w.lock:
        return list(w.runs.get(vm_id, []))


def export_state(sim) -> dict:
    w = _world(sim)
    with w.lock:
        return {"fio_runs": {vm: [r.to_dict() for r in runs] for vm, runs in w.runs.items()}}


def import_state(sim, saved: dict) -> None:
    w = _world(sim)
    with w.lock:
        for vm, runs in (saved or {}).get("fio_runs", {}).items():
            w.runs[vm] = [FioRun(**{**r, "dips": [tuple(d) for d in r.get("dips", [])]}) for r in runs]


@dataclass
class _Planned:
    job: object
    opts: dict
    dev: str
    pred: fm.Prediction
    runtime: float                                     # simulated seconds measured (after ramp_time)


def _plan(spec: GuestSpec, glob: dict, raw_jobs: list[dict], pid: int) -> list[_Planned]:
    """Each job's device, prediction and measured runtime (time_based: runtime; else the size at the predicted
    rate, capped by runtime). Raises FioUsage for a missing device."""
    disks = dict(spec.disks())
    peers = max(1, int(spec.peers()))
    out = []
    for raw in raw_jobs:
        opts = {**glob, **raw}
        job = job_of(opts)
        job.options = dict(raw)                        # fio's "job options": the job's own, not the globals
        dev, nbytes = device_of(disks, job, opts, pid)
        pred = fm.predict(job, all_flash=spec.all_flash, hosts=spec.hosts, peers=peers, vm=spec.vm_id)
        bps = pred.iops * job.bs
        io_s = nbytes * max(1, job.numjobs) / bps if bps else 0.0
        if job.time_based and job.runtime:
            runtime = job.runtime
        else:
            runtime = min(io_s, job.runtime) if job.runtime else io_s
        out.append(_Planned(job, opts, dev, pred, max(runtime, 0.001)))
    return out


def _dips(spec: GuestSpec, start: float, end: float) -> list[tuple[float, float]]:
    """The VM's migrations overlapping [start, end] as (start, end) simulated seconds (one still running: to end)."""
    out = []
    try:
        for m in spec.migrations() or []:
            a = float(m["start"])
            b = float(m["end"]) if m.get("end") is not None else end
            if b > start and a < end:
                out.append((a, b))
    except Exception:                                  # noqa: BLE001 -- a model mid-change: no dip
        return []
    return out


def _results(w: _World, spec: GuestSpec, inv, planned: list[_Planned], start: float, end: float,
             error: int) -> tuple[list[dict], list[dict]]:
    """Run the planned jobs' figures over [start, end]: job entries, disk_util, bw logs written, runs recorded."""
    dips = _dips(spec, start, end)
    entries, utils, log_no = [], [], 0
    for p in planned:
        job, opts = p.job, p.opts
        meas_start = start + job.ramp_time
        ran = max(0.001, min(p.runtime, end - meas_start))
        secs = max(1, math.ceil(ran - 1e-9))
        seed = f"{spec.vm_id}|{job.name}|{start:.3f}"
        rd = fm.samples(p.pred.read_iops * job.bs, meas_start, secs, dips, seed + "|r")
        wr = fm.samples(p.pred.write_iops * job.bs, meas_start, secs, dips, seed + "|w")
        f = fm.dip_factor(meas_start, meas_start + ran, dips)
        pred = fm.Prediction(p.pred.read_iops * f, p.pred.write_iops * f, job.bs, p.pred.read_clat_ns / f,
                             p.pred.write_clat_ns / f, p.pred.base_ns, p.pred.all_flash)
        runtime_ms = int(round(ran * 1000))
        share = 1 if opts.get("group_reporting") == "1" else max(1, job.numjobs)
        for _ in range(share):
            entries.append(fm.job_entry(job, pred, read_series=rd, write_series=wr, runtime_ms=runtime_ms,
                                        elapsed_s=math.ceil(job.ramp_time + ran), error=error,
                                        percentiles=percentiles_of(opts), share=share))
        utils.append(fm.disk_util(p.dev, entries[-share:], runtime_ms))
        if opts.get("write_bw_log"):
            n = max(1, job.numjobs)
            text = fm.bw_log([v / n for v in rd], [v / n for v in wr], job.bs, int(opts.get("log_avg_msec") or 1000))
            for _ in range(n):                         # one log per job thread, as fio's per_job_logs=1
                log_no += 1
                inv.fs.write(inv.path(f"{opts['write_bw_log']}_bw.{log_no}.log"), text, owner=inv.user)
        rbps, wbps = sum(rd) / len(rd), sum(wr) / len(wr)
        lat = (pred.read_clat_ns * pred.read_iops + pred.write_clat_ns * pred.write_iops) / max(pred.iops, 1e-9)
        with w.lock:
            w.runs.setdefault(spec.vm_id, []).append(FioRun(
                start=start, end=end, read_iops=rbps / job.bs, write_iops=wbps / job.bs, read_bps=rbps,
                write_bps=wbps, lat_ns=lat, job=job.name, error=error, dips=list(dips)))
    return entries, utils


def _cmd_fio(sim, ip: str, inv) -> int:
    """``fio`` (see the module docstring and :mod:`mocks.fio_cli`): takes its simulated duration."""
    if inv.argv[1:] == ["--version"]:
        inv.out.write(fm.FIO_VERSION + "\n")
        return 0
    w = _world(sim)
    spec = w.guests.get(ip)
    pid = next(w.pids)
    try:
        cli, glob, raw_jobs = parse_fio_args(inv.argv[1:])
        if not raw_jobs:
            raise FioUsage(f"No job(s) defined\n\n{fm.FIO_VERSION}\nfio [options] [job options] <job file(s)>")
        if spec is None:                               # detached while connected
            raise FioUsage(f"fio: pid={pid}, err=5/file:filesetup.c:805, func=open, error=Input/output error")
        planned = _plan(spec, glob, raw_jobs, pid)
    except FioUsage as exc:
        return inv.fail(str(exc))
    rule = sim.faults.match(FAULT_METHOD, " ".join(inv.argv), ip, 22, explicit=True)
    io_error = bool(spec.io_error) or (rule is not None and rule.action.get("operation") == "fail")
    clock = sim.clock
    start = clock.now()
    duration = max(p.job.ramp_time + p.runtime for p in planned)
    end = start + (duration * IO_ERROR_AT if io_error else duration)
    while clock.now() < end:                           # sim.advance() shortens the wait
        time.sleep(min(0.05, max(0.0005, clock.real(end - clock.now()))))
    entries, utils = _results(w, spec, inv, planned, start, end, 5 if io_error else 0)
    if cli.get("output-format", "normal") in ("json", "json+"):
        doc = fm.fio_json(entries, end_wall=clock.sim_wall(end), global_options=glob, disk_util=utils)
        text = json.dumps(doc, indent=2) + "\n"
    else:
        text = normal_output(entries, [p.job for p in planned], pid, clock.sim_wall(end))
    if io_error:
        first = planned[0]
        what = "read" if first.job.read_share else "write"
        inv.err.write(f"fio: io_u error on file /dev/{first.dev}: Input/output error: {what} offset=1048576000, "
                      f"buflen={first.job.bs}\nfio: pid={pid}, err=5/file:io_u.c:1845, func=io_u error, "
                      "error=Input/output error\n")
    if cli.get("output"):
        inv.fs.write(inv.path(cli["output"]), text, owner=inv.user)
    else:
        inv.out.write(text)
    return 1 if io_error else 0


def _cmd_lsblk(sim, ip: str, inv) -> int:
    spec = _world(sim).guests.get(ip)
    cols, raw, heading, i, args = ["NAME", "MAJ:MIN", "RM", "SIZE", "RO", "TYPE", "MOUNTPOINT"], False, True, 0, \
        inv.argv[1:]
    while i < len(args):
        a = args[i]
        i += 1
        if a in ("-b", "--bytes"):
            raw = True
        elif a in ("-d", "--nodeps"):
            pass
        elif a in ("-n", "--noheadings"):
            heading = False
        elif a in ("-o", "--output") or a.startswith("--output="):
            val = a.partition("=")[2] if "=" in a else (args[i] if i < len(args) else None)
            if val is None:
                return inv.fail("lsblk: option requires an argument -- 'o'\nTry 'lsblk --help' for more information.")
            i += 0 if "=" in a else 1
            cols = [c.strip().upper() for c in val.split(",") if c.strip()]
        elif a.startswith("-") and len(a) > 2 and not a.startswith("--") and set(a[1:]) <= set("bdn"):
            raw = raw or "b" in a
            heading = heading and "n" not in a
        else:
            return inv.fail(f"lsblk: {a}: not a block device" if not a.startswith("-") else
                            f"lsblk: unrecognized option '{a}'\nTry 'lsblk --help' for more information.")
    known = {"NAME", "MAJ:MIN", "RM", "SIZE", "RO", "TYPE", "MOUNTPOINT", "ROTA"}
    for c in cols:
        if c not in known:
            return inv.fail(f"lsblk: unknown column: {c}")
    rows = []
    for k, (name, size) in enumerate(spec.disks() if spec else []):
        vals = {"NAME": name, "MAJ:MIN": f"252:{16 * k}", "RM": "0", "RO": "0", "TYPE": "disk", "ROTA": "0",
                "SIZE": str(int(size)) if raw else _iec(size), "MOUNTPOINT": ""}
        rows.append([vals[c] for c in cols])
    table = ([cols] if heading else []) + rows
    widths = [max(len(r[j]) for r in table) for j in range(len(cols))] if table else []
    right = {"SIZE", "RM", "RO", "ROTA"}
    for r in table:
        cells = [v.rjust(widths[j]) if cols[j] in right else v.ljust(widths[j]) for j, v in enumerate(r)]
        inv.out.write(" ".join(cells).rstrip() + "\n")
    return 0


def _iec(size: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:g}{unit}" if unit == "B" else (f"{size:.0f}{unit}" if size == int(size) else
                                                         f"{size:.1f}{unit}")
        size /= 1024
    return str(size)


def _cmd_date(sim, inv) -> int:
    """``date [-u] [+FORMAT]`` on the simulated timeline (``sim.clock.sim_wall()``, UTC); ``%N`` / ``%3N``."""
    now = sim.clock.sim_wall()
    fmt = "%a %b %e %H:%M:%S UTC %Y"
    for a in inv.argv[1:]:
        if a in ("-u", "--utc", "--universal"):
            continue
        if a.startswith("+"):
            fmt = a[1:]
        else:
            return inv.fail(f"date: invalid date '{a}'")
    frac = f"{now - math.floor(now):.9f}"[2:]

    def sub(m: re.Match) -> str:
        if m.group(0) == "%%":
            return "%%"
        if m.group(2) == "s":
            return str(int(math.floor(now)))
        if m.group(2) == "N":
            return frac[:int(m.group(1))] if m.group(1) else frac
        return m.group(0)

    fmt = re.sub(r"%%|%(\d?)([sN])", sub, fmt)
    inv.out.write(time.strftime(fmt, time.gmtime(now)) + "\n")
    return 0
