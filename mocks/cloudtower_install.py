"""The CloudTower installer in the CloudTower VM (guide §04), over SSH (README: "CloudTower installer over SSH").

``sim.install`` is the :class:`InstallModel` of family ``cloudtower_install`` (:class:`InstallerFamily`):
every CloudTower guest's SSH service gets two programs when the guest takes its address --
``preinstall.sh`` (root; prepares the machine) and ``installer deploy`` (root; normally run as the guide
does, ``nohup`` appending to the root-only ``/home/cloudtower/nohup.out``). The log grows with simulated
time (:attr:`InstallModel.duration_s`) and ends with ``Install Operation Center Successfully``; then the
event ``tower_ready`` lets the CloudTower family bring HTTPS (443) up on the VM's address. The installer
fails at once (``[ERROR]`` line, ``Install Operation Center Failed``, exit 1) without ``preinstall.sh``
first, or when ``/etc/resolv.conf`` lacks a ``nameserver`` line for a plan DNS server.

Knobs (``sim.install``) and the equivalent fault rules (method ``INSTALLER``; ``path`` globs the
installer's command line ``/usr/share/smartx/tower/installer/binary/installer deploy``; ``address`` is
the VM's address; checked once per installer start):

======================================  =====================================================  =========
knob                                    fault rule action                                      effect
======================================  =====================================================  =========
``fail_with = "<error line>"``          ``{"operation": "fail", "msg": "<error line>"}``       the log shows progress, then the error line and ``Install Operation Center Failed``; the process exits
``exit_early = True``                   ``{"operation": "fail", "stage": "exit"}``             the log stops at about 40 % without any verdict line and the process exits (a crash)
``stall = True``                        ``{"operation": "stuck"}``                             the log stops growing about halfway; the process hangs (never exits)
``recoverable_error = True``            (profile ``installer-log-recoverable-error``)          a successful run logs an ``[ERROR]`` image-pull line, retries and goes on
``never_open_443 = True``               ``{"operation": "stuck", "stage": "https"}``           the log ends with the success line, but 443 never opens
``duration_s = 1200.0``                                                                        simulated seconds of a successful install
``service_warmup_s = 0.0``                                                                     > 0: ``start(..., warmup=N)`` (443 answers 503 that long)
======================================  =====================================================  =========

Knobs stay set until changed (a rerun fails again); a fault rule fires per its ``times``/``nth``.

Only the success line is documented (guide §04); ``[ERROR]`` and ``... Failed`` lines are the simulator's
wording. What a client can rely on is the process: ``pgrep -f <regex>`` on the guest lists the installer's
pid while it runs (exit 0) and nothing once it exited (exit 1). A successful run exits right after its
success line, a failed or crashed one at its last line; a stalled one never exits.
"""
from __future__ import annotations

import dataclasses
import logging
import posixpath
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .family import Family

log = logging.getLogger("mocks")

PREINSTALL = "/usr/share/smartx/tower/preinstall.sh"
INSTALLER = "/usr/share/smartx/tower/installer/binary/installer"
INSTALL_COMMAND = f"{INSTALLER} deploy"
DONE_LINE = "Install Operation Center Successfully"
FAILED_LINE = "Install Operation Center Failed"
DEFAULT_INSTALL_S = 1200.0
GUIDE_COMMAND = f"sudo sh {PREINSTALL} && sudo nohup sudo {INSTALLER} deploy &"
FAULT_METHOD = "INSTALLER"
_KNOBS = {"duration_s": (float, DEFAULT_INSTALL_S), "fail_with": (None, None), "stall": (bool, False),
          "never_open_443": (bool, False), "service_warmup_s": (float, 0.0), "exit_early": (bool, False),
          "recoverable_error": (bool, False)}     # knob -> (type, default)
PID_BASE = 4100
# the [ERROR] line a run recovers from (profile installer-log-recoverable-error), logged after this image
RETRIED_IMAGE = "grafana"
RECOVERABLE_ERROR = (f"[ERROR] [images] loading image tower/{RETRIED_IMAGE} failed: context deadline exceeded "
                     f"(Client.Timeout exceeded while awaiting headers); retrying (1/3)")
_NAMESERVER = re.compile(r"^\s*nameserver\s+(\S+)\s*$", re.M)
_VERSION = re.compile(r"(\d+\.\d+\.\d+)")

# (fraction of the install, what is logged); the images and pods lines are expanded below
_STEPS = [
    (0.000, "[INFO] [precheck] checking the environment"),
    (0.002, "[INFO] [precheck] cpu: {cpu} cores, memory: {mem:.1f} GiB, disk: {disk:.1f} GiB ... ok"),
    (0.004, "[INFO] [precheck] name resolution: nameserver {dns} (/etc/resolv.conf) ... ok"),
    (0.006, "[INFO] [precheck] time synchronisation ... ok"),
    (0.010, "[INFO] [k3s] installing k3s v1.24.17+k3s1"),
    (0.060, "[INFO] [k3s] k3s is running"),
    ("images", None),
    (0.480, "[INFO] [db] initialising postgresql"),
    (0.520, "[INFO] [db] postgresql is ready"),
    ("charts", None),
    ("pods", None),
    (0.985, "[INFO] [post] registering the Operation Center service"),
    (0.995, "[INFO] Operation Center is ready: https://{ip}"),
]
_IMAGES = ["tower-api", "tower-web", "tower-worker", "tower-gateway", "graphql-server", "prisma", "postgresql",
           "redis", "prometheus", "alertmanager", "grafana", "loki", "nginx", "license-server", "task-manager",
           "event-collector", "vm-tools-agent", "backup-plugin", "observability-agent", "upgrade-center"]
_CHARTS = ["infra", "database", "tower-core", "tower-web", "monitoring", "logging", "license", "gateway"]
_GROUPS = {   # the expanded steps: name -> (start, span, [(i, n, text)]); line i of n at start + span * i / n
    "images": (0.07, 0.40, [(i, len(_IMAGES), f"[INFO] [images] loading image {i + 1}/{len(_IMAGES)}: tower/{x}")
                            for i, x in enumerate(_IMAGES)]),
    "charts": (0.53, 0.15, [(i, len(_CHARTS), f"[INFO] [deploy] installing chart {x}") for i, x in enumerate(_CHARTS)]),
    "pods": (0.70, 0.28, [(k, 31, f"[INFO] [deploy] waiting for pods to be ready ({k}/31)") for k in range(0, 32, 4)])}


@dataclass(frozen=True)
class InstallerFate:
    """What a fault rule decided for one installer start (typed: the model never reads rule dicts)."""

    outcome: str | None = None      # "fail" | "stuck" | None
    msg: str | None = None
    stage: str = ""                 # lower-case; "https": success, but 443 never opens
    rule: str | None = None


def installer_fault(faults, address: str) -> InstallerFate:
    """The fate of an installer start at ``address``: only fault rules whose ``method`` names
    ``INSTALLER`` apply (``path`` globs ``INSTALL_COMMAND``); see ``Faults.match``."""
    rule = faults.match(FAULT_METHOD, INSTALL_COMMAND, address, 22, explicit=True)
    if rule is None:
        return InstallerFate()
    a = rule.action
    return InstallerFate(a.get("operation"), a.get("msg"), str(a.get("stage") or "").lower(), rule.id)


def plan_dns(sim) -> list[str]:
    return [str(x) for x in (getattr(getattr(sim, "plan", None), "dns", None) or ())]


def nameservers(resolv: str) -> list[str]:
    return _NAMESERVER.findall(resolv or "")


@dataclass
class InstallRun:
    """One start of the installer on one address."""

    address: str
    started: float                  # simulated seconds
    started_wall: float             # UNIX seconds (log timestamps)
    duration: float                 # simulated seconds of a successful install
    outcome: str                    # success | failed | stalled
    lines: list[list] = field(default_factory=list)   # [[offset_s, text], ...] the whole log of this run
    log_path: str | None = None     # the file the output goes to (nohup.out); None: a terminal
    https: bool = True              # success opens 443 (False: never_open_443 / the 'https' stage fault)
    fault_rule: str | None = None
    finished: bool = False          # success applied (the service was started)

    @property
    def end(self) -> float:
        """Offset of the last line (the log stops growing there)."""
        return self.lines[-1][0] if self.lines else 0.0

    def alive(self, now: float) -> bool:
        """The installer process still runs: a stalled one hangs forever; the others exit at their last line."""
        if self.outcome == "stalled":
            return True
        last = self.duration if self.outcome == "success" else self.end
        return now < self.started + last

    def text(self, elapsed: float) -> str:
        return "".join(t + "\n" for off, t in self.lines if off <= elapsed)


@dataclass
class TimedLog:
    """A log file the installer writes (nohup.out): what it held before, then lines stamped with the
    simulated time they appear at. Several runs (and the refusals of a second run) append to the same
    file without freezing each other (the SSH family's files freeze when something else appends)."""

    address: str
    path: str
    prefix: str = ""
    entries: list[list] = field(default_factory=list)    # [[sim_time, text], ...] in time order

    def add(self, at: float, text: str) -> None:
        self.entries.append([at, text])
        self.entries.sort(key=lambda e: e[0])

    def text(self, now: float) -> str:
        return self.prefix + "".join(t + "\n" for at, t in self.entries if at <= now)


class InstallModel:
    """``sim.install``: CloudTower installs per address, their logs and outcomes."""

    family = "cloudtower_install"

    def __init__(self, sim):
        self.sim = sim
        self.clock = sim.clock
        self.lock = threading.RLock()
        # ---- knobs
        self.duration_s = DEFAULT_INSTALL_S
        self.fail_with: str | None = None
        self.stall = False
        self.never_open_443 = False
        self.service_warmup_s = 0.0         # > 0: 443 accepts but answers 503 that long (the service's warmup)
        self.exit_early = False             # the process exits at ~40 % without a verdict line
        self.recoverable_error = False      # a successful run logs an [ERROR] line it recovers from
        # ---- how the service starts; presets put the setup to pass in service_setup[address]
        self.service_setup: dict[str, dict] = {}
        # ---- state
        self.preinstalled: set[str] = set()
        self.runs: list[InstallRun] = []
        self.logs: dict[tuple[str, str], TimedLog] = {}
        self._providers: dict[tuple[str, str], Callable[[float], str]] = {}
        self.services_started: list[str] = []

    # ------------------------------------------------------------------ guest wiring
    def attach(self, address: str) -> None:
        """Give the CloudTower guest at ``address`` (its SSH service exists) the two programs."""
        from .ssh import ssh_service

        svc = ssh_service(self.sim, address)
        svc.register_command(PREINSTALL, self._preinstall)
        svc.register_command(INSTALLER, self._installer)
        svc.register_command("pgrep", self._pgrep)
        if not svc.fs.exists(PREINSTALL):
            svc.fs.write(PREINSTALL, "#!/bin/sh\n# CloudTower preinstall (simulated)\n", mode=0o755)
            svc.fs.write(INSTALLER, b"\x7fELF (simulated CloudTower installer)\n", mode=0o755)

    # ------------------------------------------------------------------ programs
    def _preinstall(self, inv) -> int:
        if inv.user != "root":
            return inv.fail(f"{PREINSTALL}: this script must be run as root")
        addr = inv.service.address
        for line in ("[preinstall] checking the operating system: openEuler 20.03 (LTS-SP3) ... ok",
                     "[preinstall] setting kernel parameters ... ok",
                     "[preinstall] disabling firewalld and selinux ... ok",
                     "[preinstall] preparing /usr/share/smartx/tower ... ok",
                     "[preinstall] done"):
            inv.out.write(line + "\n")
        with self.lock:
            self.preinstalled.add(addr)
        return 0

    def _installer(self, inv) -> int:
        args = inv.argv[1:]
        if args != ["deploy"]:
            return inv.fail(f"Usage: {INSTALLER} deploy", 2)
        if inv.user != "root":
            return inv.fail("installer: permission denied: run it as root (sudo)")
        addr = inv.service.address
        self.settle()
        now = self.clock.now()
        path = getattr(inv.out, "path", None)
        log_ = self._open_log(inv.service, path) if path and path != "/dev/null" else None
        refused = self._refusal(addr)
        if refused is not None:
            status, msg = refused
            if log_ is not None:
                for line in msg:
                    log_.add(now, line)
            else:
                inv.out.write("".join(line + "\n" for line in msg))
            return status
        run = InstallRun(addr, now, self.clock.wall(), float(self.duration_s), "success",
                         log_path=log_.path if log_ is not None else None)
        self._plan_run(run, inv.fs.text("/etc/resolv.conf") if inv.fs.is_file("/etc/resolv.conf") else "")
        with self.lock:
            self.runs.append(run)
            if log_ is not None:
                for off, line in run.lines:
                    log_.add(run.started + off, line)
        if log_ is None:
            inv.out.write(run.text(0.0))           # a terminal: what is there at once (the rest is not kept)
        log.info("sim install: installer started on %s -> %s%s", addr, run.outcome,
                 "" if run.https else " (443 will not open)")
        return 1 if run.outcome == "failed" and run.end == 0 else 0

    def _pgrep(self, inv) -> int:
        """``pgrep [-f] [-a|-l] PATTERN``: the installer processes running on this guest (the only processes the
        simulator knows); pids from :data:`PID_BASE` on, one per run."""
        flags = "".join(a[1:] for a in inv.argv[1:] if a.startswith("-"))
        words = [a for a in inv.argv[1:] if not a.startswith("-")]
        if len(words) != 1 or set(flags) - set("fal"):
            return inv.fail("pgrep: usage: pgrep [-f] [-a|-l] PATTERN (simulated)", 2)
        try:
            rx = re.compile(words[0])
        except re.error as exc:
            return inv.fail(f"pgrep: invalid pattern: {exc}", 2)
        addr = inv.service.address
        self.settle(addr)
        now = self.clock.now()
        name = INSTALL_COMMAND if "f" in flags else posixpath.basename(INSTALLER)
        with self.lock:
            pids = [PID_BASE + i for i, r in enumerate(self.runs) if r.address == addr and r.alive(now)]
        pids = pids if rx.search(name) else []
        shown = INSTALL_COMMAND if "a" in flags else posixpath.basename(INSTALLER) if "l" in flags else ""
        inv.out.write("".join(f"{pid} {shown}".rstrip() + "\n" for pid in pids))
        return 0 if pids else 1

    def _refusal(self, addr: str) -> tuple[int, list[str]] | None:
        """``(exit status, log lines)`` when an install runs (or ran) at ``addr`` already, else None."""
        now = self.clock.now()
        with self.lock:
            busy = next((r for r in self.runs if r.address == addr and r.alive(now)
                         and not r.finished), None)
            done = next((r for r in self.runs if r.address == addr and r.outcome == "success" and r.finished), None)
        stamp = self._stamp(self.clock.wall())
        if busy is not None:
            return 1, [f"{stamp} [ERROR] another installation is in progress (started at "
                       f"{self._stamp(busy.started_wall)}); exiting"]
        if done is not None:
            return 0, [f"{stamp} [INFO] Operation Center is already installed on this machine", DONE_LINE]
        return None

    def _open_log(self, svc, path: str) -> TimedLog:
        """The timed log behind ``path`` on that guest, (re)attached to the file when the file is not
        ours any more (created anew, or someone else appended to it)."""
        key = (svc.address, path)
        with self.lock:
            log_ = self.logs.get(key)
            f = svc.fs.stat(path)
            if log_ is None or f is None or f.provider is not self._providers.get(key):
                log_ = self.logs[key] = TimedLog(svc.address, path, prefix=svc.fs.text(path) if f else "")
                self._attach_log(svc.fs, log_)
            return log_

    def _attach_log(self, fs, log_: TimedLog) -> None:
        key = (log_.address, log_.path)
        st = fs.stat(log_.path)
        owner, mode = (st.owner, st.mode) if st is not None else ("root", 0o600)

        def provider(_elapsed: float, log_=log_) -> str:
            self._on_read(log_.address)
            return log_.text(self.clock.now())

        fs.provide(log_.path, provider, owner=owner, mode=mode)
        fs.stat(log_.path).owner, fs.stat(log_.path).mode = owner, mode
        self._providers[key] = provider

    # ------------------------------------------------------------------ the run's log
    def _plan_run(self, run: InstallRun, resolv: str) -> None:
        """Decide the outcome (preinstall, DNS, fault rules, knobs) and lay out the whole log."""
        dur = run.duration
        head = [[0.0, f"[INFO] Start to install Operation Center {self._version(run.address)}"]]
        wanted, have = plan_dns(self.sim), nameservers(resolv)
        missing = [d for d in wanted if d not in have]
        if run.address not in self.preinstalled or missing:
            run.outcome, run.https = "failed", False
            run.lines = head + self._precheck_failure(run.address not in self.preinstalled, missing, have)
            self._stamp_lines(run)
            return
        fate = installer_fault(self.sim.faults, run.address)
        op, stage, run.fault_rule = fate.outcome, fate.stage, fate.rule
        lines = head + self._progress(run, dur, have)
        if (op == "fail" and stage == "exit") or (op is None and self.exit_early):
            run.outcome, run.https = "exited", False      # crashed: no verdict line at all
            run.lines = [x for x in lines if x[0] < round(dur * 0.4)]
            self._stamp_lines(run)
            return
        if op == "fail" or (op is None and self.fail_with):
            msg = (fate.msg if op == "fail" else self.fail_with) or "[ERROR] installation failed"
            at = round(dur * 0.6)
            run.outcome, run.https = "failed", False
            run.lines = [x for x in lines if x[0] < at] + [[at, msg], [at, FAILED_LINE]]
            self._stamp_lines(run, verbatim={msg})
            return
        if (op == "stuck" and stage != "https") or (op is None and self.stall):
            run.outcome, run.https = "stalled", False
            run.lines = [x for x in lines if x[0] < round(dur * 0.5)]
        else:
            run.lines = lines + [[dur, DONE_LINE]]
            run.https = not ((op == "stuck" and stage == "https") or (op is None and self.never_open_443))
        self._stamp_lines(run)

    @staticmethod
    def _precheck_failure(unprepared: bool, missing: list[str], have: list[str]) -> list[list]:
        """The log of a start refused by the precheck: no ``preinstall.sh`` first, or DNS missing."""
        if unprepared:
            return [[0.0, f"[ERROR] [precheck] the environment is not prepared: run {PREINSTALL} first"],
                    [0.0, FAILED_LINE]]
        return [[0.0, "[INFO] [precheck] checking the environment"],
                [0.0, f"[ERROR] [precheck] name resolution: /etc/resolv.conf has no nameserver "
                      f"{', '.join(missing)} (found: {', '.join(have) or 'none'}); configure /etc/resolv.conf "
                      f"before running the installer"],
                [0.0, FAILED_LINE]]

    def _progress(self, run: InstallRun, dur: float, dns: list[str]) -> list[list]:
        vm = self._vm(run.address)
        fmt = {"cpu": vm.vcpu if vm else 8, "mem": (vm.memory if vm else 20401094656) / 2 ** 30,
               "disk": (next((d["size"] for d in vm.disks if d["type"] == "disk"), 0) if vm else 429496729600) / 2 ** 30,
               "dns": ", ".join(dns) or "-", "ip": run.address}
        out: list[list] = []
        for frac, text in _STEPS:
            if frac in _GROUPS:
                begin, span, items = _GROUPS[frac]
                out += [[round(dur * (begin + span * i / n)), line] for i, n, line in items]
                if frac == "images" and self.recoverable_error:       # pulled again after a timeout
                    k = _IMAGES.index(RETRIED_IMAGE)
                    at = round(dur * (begin + span * (k + 0.5) / len(_IMAGES)))
                    out += [[at, RECOVERABLE_ERROR],
                            [at, f"[INFO] [images] loading image tower/{RETRIED_IMAGE}: retry 1/3 succeeded"]]
                    out.sort(key=lambda x: x[0])
            else:
                out.append([round(dur * frac), text.format(**fmt)])
        return out

    def _stamp_lines(self, run: InstallRun, verbatim: set[str] = frozenset()) -> None:
        """Timestamp every line except the final verdicts and a given error line (kept verbatim)."""
        for x in run.lines:
            if x[1] not in (DONE_LINE, FAILED_LINE) and x[1] not in verbatim:
                x[1] = f"{self._stamp(run.started_wall + x[0])} {x[1]}"

    @staticmethod
    def _stamp(wall: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(wall))

    def _vm(self, address: str):
        vms = getattr(self.sim, "vms", None)
        return next((v for v in vms.vms.values() if address in v.ips and v.ready), None) if vms is not None else None

    def _version(self, address: str) -> str:
        vm = self._vm(address)
        for n in ([d.get("image_name") or "" for d in vm.disks if d["type"] == "cdrom"] if vm else []):
            if (m := _VERSION.search(n)):
                return m.group(1)
        comp = getattr(getattr(self.sim, "plan", None), "components", {}) or {}
        ct = comp.get("cloudtower") if isinstance(comp, dict) else None
        return str(getattr(ct, "version", None) or "4.7.1")

    def _on_read(self, address: str) -> None:
        """Someone reads the log (nohup.out): runs that reached their last line finish now, so a client
        that saw ``Install Operation Center Successfully`` can connect to 443 at once."""
        self.settle(address)

    # ------------------------------------------------------------------ progress on read
    def settle(self, address: str | None = None) -> None:
        """Finish the successful runs (at ``address``, default: everywhere) whose time is up."""
        now = self.clock.now()
        with self.lock:
            due = [r for r in self.runs if r.outcome == "success" and not r.finished and now >= r.started + r.duration
                   and address in (None, r.address)]
        for r in due:
            self._finish(r)

    def _finish(self, run: InstallRun) -> None:
        with self.lock:
            if run.finished:
                return
            run.finished = True
            start = run.https and run.address not in self.services_started
            if start:
                self.services_started.append(run.address)
            setup = self.service_setup.pop(run.address, None)
        log.info("sim install: CloudTower installed on %s%s", run.address, "" if run.https else " (443 stays closed)")
        if start:       # the CloudTower family brings its HTTPS (REST and GraphQL) up there
            self.sim.events.emit("tower_ready", ip=run.address, setup=setup, warmup=float(self.service_warmup_s))

    # ------------------------------------------------------------------ inspection
    def runs_at(self, address: str) -> list[InstallRun]:
        with self.lock:
            return [r for r in self.runs if r.address == address]

    def state_of(self, address: str) -> str:
        """``none`` | ``running`` | ``stalled`` | ``failed`` | ``installed`` (latest run at ``address``)."""
        runs = self.runs_at(address)
        if not runs:
            return "none"
        r = runs[-1]
        if r.outcome == "success":
            return "installed" if r.finished or self.clock.now() >= r.started + r.duration else "running"
        return r.outcome

    # ------------------------------------------------------------------ snapshot / restore
    def _guest_fs(self, address: str):
        """The file system of the guest's SSH service at ``address`` (None when it has none)."""
        from .ssh import ssh_service
        try:
            return ssh_service(self.sim, address).fs
        except KeyError:
            return None

    def export_state(self) -> dict:
        self.settle()
        resolv = {}
        for a in sorted({r.address for r in self.runs} | set(self.preinstalled)):
            fs = self._guest_fs(a)
            if fs is not None and fs.is_file("/etc/resolv.conf"):
                resolv[a] = fs.text("/etc/resolv.conf")
        with self.lock:
            return {"knobs": {k: getattr(self, k) for k in _KNOBS}, "preinstalled": sorted(self.preinstalled),
                    "services_started": list(self.services_started),
                    "resolv_conf": resolv, "runs": [dataclasses.asdict(r) for r in self.runs],
                    "logs": [dataclasses.asdict(x) for x in self.logs.values()]}

    def to_dict(self) -> dict:
        d = self.export_state()
        d["state"] = {a: self.state_of(a) for a in sorted({r["address"] for r in d["runs"]})}
        return d

    def import_state(self, state: dict) -> list[str]:
        notes: list[str] = []
        known = {f.name for f in dataclasses.fields(InstallRun)}
        knobs = state.get("knobs") or {}
        with self.lock:
            for k, (kind, default) in _KNOBS.items():
                v = knobs.get(k, default)
                setattr(self, k, v if kind is None or v is None else kind(v))
            self.preinstalled = set(state.get("preinstalled", []))
            self.runs = [InstallRun(**{x: v for x, v in r.items() if x in known}) for r in state.get("runs", [])]
            started = list(state.get("services_started", []))
            self.services_started = list(started)
        for a, text in (state.get("resolv_conf") or {}).items():
            fs = self._guest_fs(a)
            if fs is None:
                notes.append(f"cloudtower install: no SSH service at {a}; its /etc/resolv.conf was not restored")
            else:
                fs.write("/etc/resolv.conf", text)
        for d in state.get("logs", []):
            log_ = TimedLog(d["address"], d["path"], d.get("prefix", ""), [list(e) for e in d.get("entries", [])])
            fs = self._guest_fs(log_.address)
            if fs is None:
                notes.append(f"cloudtower install: no SSH service at {log_.address}; {log_.path} was not restored")
                continue
            with self.lock:
                self.logs[(log_.address, log_.path)] = log_
            fs.write(log_.path, b"", owner="root", mode=0o600)
            self._attach_log(fs, log_)
        return notes


class InstallerFamily(Family):
    """The CloudTower installer over a CloudTower guest's SSH (``sim.install``). Reacts to
    ``vm_address``: a CloudTower guest that takes an address gets ``preinstall.sh`` and the installer."""

    name = "cloudtower_install"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.model = InstallModel(sim)

    def attach(self) -> None:
        self.sim.events.on("vm_address", self._on_address)

    def _on_address(self, vm, old, new) -> None:
        if vm.flavour == "cloudtower":
            self.model.attach(new)
