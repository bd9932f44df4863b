"""SMTX OS deployment API state (guide §01 scan, §02 init cluster) -- models only, no HTTP.

``responses.py`` maps routes onto these.

* :mod:`.hosts`       :class:`SimHost` (NICs, disks, hardware, the scan), :func:`build_host`;
* :mod:`.operations`  :class:`DeployOperation`: one ``POST /api/v2/deployment/cluster``, a long
  operation whose progress is computed from simulated time on every read (no threads);
* :mod:`.validation`  the payload checks a real installer makes (a declarative schema plus
  semantic checks against the scanned hosts);
* :mod:`.errors`      :class:`DeployError` (typed, carries its status and envelope) and the codes;
* here:               :class:`DeploymentModel`, the hosts of a simulated world plus the operations.
"""
from __future__ import annotations

import ipaddress
import itertools
import re
import threading
from typing import Any, Iterable
from urllib.parse import unquote

from ..clock import SimClock
from ..events import Events
from ..http import envelope, error_envelope
from ..reqlog import redact
from .errors import (EC_BAD_REQUEST, EC_DEPLOY_FAILED, EC_DEPLOYED, EC_DEPLOYING, EC_INTERNAL, EC_INVALID,
                     EC_NO_DEPLOYMENT, EC_NOT_FOUND, EC_UNAUTHORIZED, DeployError)
from .hosts import (ARCH_DEFAULT_LAYOUT, BOOT_DISK, CPU, DISK_LAYOUTS, DISK_MODELS, MEMORY_TOTAL, Disk, Nic, SimHost,
                    build_host, link_local, local_mac, ovsbr_name)
from .operations import DEPLOY_STAGES, DeployOperation, _op_from_state, _op_state
from .validation import BOND_MODES, REQUIRED_HOST, REQUIRED_TOP, validate

DEFAULT_DEPLOY_TOKEN = "e79b85fc18b7402fbcc0391fe8d7d24c"

__all__ = ["ARCH_DEFAULT_LAYOUT", "BOND_MODES", "BOOT_DISK", "CPU", "DEFAULT_DEPLOY_TOKEN", "DEPLOY_STAGES",
           "DISK_LAYOUTS", "DISK_MODELS", "EC_BAD_REQUEST", "EC_DEPLOYED", "EC_DEPLOYING", "EC_DEPLOY_FAILED",
           "EC_INTERNAL", "EC_INVALID", "EC_NOT_FOUND", "EC_NO_DEPLOYMENT", "EC_UNAUTHORIZED", "MEMORY_TOTAL",
           "REQUIRED_HOST", "REQUIRED_TOP", "DeployError", "DeployOperation", "DeploymentModel", "Disk", "Nic",
           "SimHost", "build_host", "link_local", "local_mac", "ovsbr_name"]


class DeploymentModel:
    """Hosts as the deployment API sees them, and the cluster deployment operations."""

    family = "deployment"

    def __init__(self, clock: SimClock, hosts: Iterable[SimHost] = (), *, l2_scan_blocked: bool = False,
                 stages: Iterable[tuple[str, float]] = DEPLOY_STAGES, secrets: Iterable[str] = (),
                 events: Events | None = None):
        self.clock = clock
        self.events = events if events is not None else Events()   # emits "deployed" (op, state)
        self.lock = threading.RLock()
        self.hosts: dict[str, SimHost] = {h.mgmt_ip: h for h in hosts}
        self.operations: list[DeployOperation] = []
        self.l2_scan_blocked = l2_scan_blocked
        self.stages = tuple(stages)
        self.secrets = set(secrets)
        # What deploy_status returns once a run has ended (the guide calls that body unreliable):
        # "state" -> 200 envelope with state "success"/"failed"; "error" -> HTTP 500 error envelope.
        self.finished_status = "state"
        # Profile deploy-status-lags (issue 12 item 4; the older tool waited 10 s before its first poll and retried
        # deploy_verify 12 x 5 s on real gear): for status_lag_s simulated seconds after the POST, deploy_status
        # does not know the deployment yet (400 EDEPLOYNOTFOUND, as before any deploy); for verify_lag_s after the
        # deployment ended, deploy_verify still answers is_deployed false.
        self.status_lag_s = 0.0
        self.verify_lag_s = 0.0
        self._ids = itertools.count(1)

    # ---- lookup
    def host(self, address: str) -> SimHost | None:
        return self.hosts.get(address)

    def host_by_uuid(self, host_uuid: str) -> SimHost | None:
        return next((h for h in self.hosts.values() if h.host_uuid == host_uuid), None)

    def resolve_host_ip(self, value: str | None) -> SimHost | None:
        """A ``host_ip`` as callers send it: mgmt/storage IPv4, or an IPv6 link-local with or
        without ``%scope`` (URL-encoded or not), or the exact string sent in the deploy payload."""
        if not value:
            return None
        raw = unquote(value.strip())
        with self.lock:
            for op in reversed(self.operations):
                for u, hip in op.host_ips.items():
                    if hip == raw:
                        return self.host_by_uuid(u)
        addr = raw.split("%", 1)[0].strip("[]")
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return None
        for h in self.hosts.values():
            if ip.version == 4 and str(ip) in (h.mgmt_ip, h.storage_ip):
                return h
            if ip.version == 6 and str(ip) in h.addresses_v6():
                return h
        return None

    # ---- progress on read
    def settle(self) -> None:
        """Apply the effects of operations that have ended by now (called on every read)."""
        now = self.clock.now()
        fired = []
        with self.lock:
            for op in self.operations:
                if op.applied:
                    continue
                p = op.progress(now)
                if p["state"] == "running":
                    continue
                op.applied = True
                op.finished_at = p.get("ended", now)
                if p["state"] == "success":
                    for u in op.host_uuids:
                        h = self.host_by_uuid(u)
                        if h is not None:
                            h.apply_deployment(op.effects[u], op.cluster_name)
                fired.append((op, p["state"]))
        for op, state in fired:
            self.events.emit("deployed", op=op, state=state)

    def operation_for(self, host: SimHost) -> DeployOperation | None:
        with self.lock:
            return next((op for op in reversed(self.operations) if host.host_uuid in op.host_uuids), None)

    def running(self) -> DeployOperation | None:
        now = self.clock.now()
        with self.lock:
            return next((op for op in self.operations if op.progress(now)["state"] == "running"), None)

    @property
    def cluster(self) -> dict | None:
        """The deployed cluster (last successful operation), or None."""
        self.settle()
        with self.lock:
            for op in reversed(self.operations):
                if op.applied and op.progress(self.clock.now())["state"] == "success":
                    return {"name": op.cluster_name, "hosts": list(op.host_uuids), "operation": op.id}
        return None

    # ---- API operations
    def scan_host(self, address: str) -> dict:
        self.settle()
        with self.lock:
            return self.hosts[address].scan()

    def scan_cluster(self, address: str) -> list[dict]:
        """Layer-2 scan through the receiving host's storage NICs (empty with LACP / VLAN sub-interfaces)."""
        self.settle()
        with self.lock:
            me = self.hosts[address]
            return [h.scan(host_ip=hip) for h, hip in self._l2_found(me)]

    def _l2_found(self, me: SimHost) -> list[tuple[SimHost, str]]:
        """(host, host_ip) as the layer-2 scan run on ``me`` reports them: the target's link-local, ``%`` and
        the scanning host's outgoing NIC (as scan-cluster-response.json shows: zone ≠ the target's own NIC)."""
        if self.l2_scan_blocked:
            return []
        # the scan goes out of the scanning host's storage NIC; in the capture the zone names the other storage
        # NIC of the bond than the one whose address is reported (ens161 address %ens256 and back)
        up = [n for n in (me.nic(x) for x in me.storage_nics) if n is not None and n.physical_link_up and n.ipv6]
        out_nic = up[-1] if up else me.first_up(me.mgmt_nics)
        if out_nic is None:
            return []
        found = []
        for h in self.hosts.values():
            target = h.first_up(h.storage_nics) or h.first_up(h.mgmt_nics)
            if target is not None:
                found.append((h, f"{target.ipv6}%{out_nic.name}"))
        return found

    def l2_host_ips(self) -> dict[str, set[str]]:
        """host uuid -> every ``host_ip`` a layer-2 scan run on any host would report for it (deploy validation:
        the captured payloads send that string verbatim)."""
        out: dict[str, set[str]] = {}
        with self.lock:
            for me in self.hosts.values():
                for h, hip in self._l2_found(me):
                    out.setdefault(h.host_uuid, set()).add(hip)
        return out

    def verify(self, address: str) -> dict:
        self.settle()
        now = self.clock.now()
        with self.lock:
            host = self.hosts[address]
            op = self.operation_for(host)
            lagging = op is not None and op.finished_at is not None and now < op.finished_at + self.verify_lag_s
            return {"is_deployed": host.deployed and not lagging, "platform": "kvm"}

    def status(self, host: SimHost) -> tuple[int, dict] | None:
        """``(http_status, envelope)`` of deploy_status for ``host``; None when it has no operation."""
        self.settle()
        op = self.operation_for(host)
        if op is None or self.clock.now() < op.started + self.status_lag_s:   # not registered yet (lag profile)
            return None
        p = op.progress(self.clock.now())
        data = {"current_stage": p["current_stage"], "msg": p["msg"], "stage_info": p["stage_info"],
                "state": p["state"], "total_stages": op.total_stages}
        if p["state"] != "running" and self.finished_status == "error":
            if p["state"] == "failed":
                return 500, error_envelope(EC_DEPLOY_FAILED, p["msg"] or "deployment failed")
            return 500, error_envelope(EC_INTERNAL, "deployment service restarted; no task status available")
        return 200, envelope(data)

    def deploy(self, payload: Any, address: str, *, outcome: str | None = None, outcome_msg: str | None = None,
               outcome_stage: int | str | None = None, rule: str | None = None) -> DeployOperation:
        """Validate and start a deployment; raises :class:`DeployError`. ``outcome`` "stuck" | "fail"
        (an operation fault rule ``rule``): the run sticks / fails at ``outcome_stage`` with ``outcome_msg``."""
        self.settle()
        with self.lock:
            self._check_can_deploy(payload, address)
            effects = self._validated(payload, address)
            op = DeployOperation(
                id=f"deploy-{next(self._ids)}", started=self.clock.now(), receiving_host=address,
                host_uuids=tuple(effects), host_ips={h["host_uuid"]: h["host_ip"] for h in payload["hosts"]},
                cluster_name=payload["cluster_name"], effects=effects,
                payload=redact(payload, self.secrets), stages=self.stages)
            if outcome:
                op.fault, op.fault_msg, op.fault_rule = outcome, outcome_msg, rule
                op.fault_stage = self._stage_index(outcome_stage)
            self.operations.append(op)
            return op

    def _check_can_deploy(self, payload: Any, address: str) -> None:
        me = self.hosts[address]
        if not isinstance(payload, dict):
            raise DeployError(EC_BAD_REQUEST, "request body must be a JSON object", 400)
        if me.deployed:
            raise DeployError(EC_DEPLOYED, f"host {address} is already deployed (cluster {me.cluster_name})", 409)
        running = self.running()
        if running is not None:
            raise DeployError(EC_DEPLOYING, f"a cluster deployment is already running "
                                            f"({running.id}, cluster {running.cluster_name})", 409)

    def _validated(self, payload: dict, address: str) -> dict[str, dict]:
        """Per-host effects of a valid payload; raises :class:`DeployError`."""
        try:
            errors, effects = self.validate(payload, address)
        except (TypeError, KeyError, AttributeError, ValueError, IndexError) as exc:   # a shape not foreseen
            raise DeployError(EC_INVALID, f"malformed deployment payload ({type(exc).__name__}: {exc})", 400) from None
        if errors:
            raise DeployError(EC_INVALID, "; ".join(errors), 400, errors)
        already = [self.host_by_uuid(u) for u in effects if self.host_by_uuid(u).deployed]
        if already:
            raise DeployError(EC_DEPLOYED, "already deployed: " + ", ".join(h.mgmt_ip for h in already), 409)
        return effects

    def validate(self, payload: dict, address: str) -> tuple[list[str], dict[str, dict]]:
        """Checks a real installer would make (:func:`.validation.validate`). Returns (errors, per-host effects)."""
        return validate(payload, address, self.host_by_uuid, self.l2_host_ips())

    def _stage_index(self, stage: Any) -> int:
        n = len(self.stages)
        if isinstance(stage, int) and 1 <= stage <= n:
            return stage
        if isinstance(stage, str):
            for i, (name, _) in enumerate(self.stages, start=1):
                if name == stage:
                    return i
        return n // 2 + 1

    # ---- snapshot / restore
    def export_state(self) -> dict:
        """Restorable state (JSON-able; payloads are already redacted): hosts, operations, settings."""
        self.settle()
        with self.lock:
            return {"hosts": [h.export_state() for h in self.hosts.values()],
                    "operations": [_op_state(op) for op in self.operations],
                    "l2_scan_blocked": self.l2_scan_blocked, "finished_status": self.finished_status,
                    "status_lag_s": self.status_lag_s, "verify_lag_s": self.verify_lag_s}

    def import_state(self, state: dict) -> list[str]:
        """Restore :meth:`export_state` output over the seeded hosts. Hosts the snapshot has but
        the world does not are skipped (returned as notes). Listeners do not fire for operations
        that had already ended; a restored running operation ends (and notifies) as usual."""
        notes = []
        with self.lock:
            for hd in state.get("hosts", []):
                ip = hd.get("mgmt_ip")
                if ip not in self.hosts:
                    notes.append(f"snapshot host {ip} is not in this world; skipped")
                    continue
                self.hosts[ip] = SimHost.from_state(hd)
            self.operations = [_op_from_state(o) for o in state.get("operations", [])]
            self.l2_scan_blocked = bool(state.get("l2_scan_blocked", self.l2_scan_blocked))
            self.finished_status = state.get("finished_status", self.finished_status)
            self.status_lag_s = float(state.get("status_lag_s", self.status_lag_s))
            self.verify_lag_s = float(state.get("verify_lag_s", self.verify_lag_s))
            top = max((int(m.group(1)) for op in self.operations
                       for m in [re.match(r"^deploy-(\d+)$", op.id)] if m), default=0)
            self._ids = itertools.count(top + 1)
        return notes

    # ---- inspection
    def to_dict(self) -> dict:
        self.settle()
        now = self.clock.now()
        with self.lock:
            return {"hosts": [h.to_dict() for h in self.hosts.values()],
                    "operations": [op.to_dict(now) for op in self.operations],
                    "l2_scan_blocked": self.l2_scan_blocked, "finished_status": self.finished_status,
                    "stages": [list(s) for s in self.stages]}
