"""SMTX OS cluster management API ("fisheye", guide §03) -- state only, no HTTP.

:class:`FisheyeModel` is the one facade the app, the other families, presets and tests use. It
composes one sub-model per area, all sharing a :class:`~.cluster.ClusterContext` (clock, lock,
deployment, the deployed cluster):

==================  ===========================================================================
``accounts``        root account (salted PBKDF2 digest) and sessions (:mod:`mocks.sessions`)  -- sessions.py
``jobboard``        jobs: pending -> running -> done | failed on simulated time; effects on end -- jobs.py
``cluster_settings`` VIP, DNS, NTP (jobs), license                                            -- settings.py
``cpu``             CPU compatibility                                                         -- cpu.py
``network``         VDSes and VLANs (the deployment's included)                               -- network.py
``ipmi``            IPMI accounts against the seeded BMC credentials                          -- ipmi.py
``images``          SVT / ISO uploads: chunk accounting only                                  -- uploads.py
==================  ===========================================================================

The model becomes *active* when a deployment succeeds (event ``deployed``); before that the routes
answer 404 like an undeployed host. Models take typed arguments and raise typed errors
(:mod:`.errors`); request bodies are parsed by the app (:mod:`.bodies`). Everything
:meth:`FisheyeModel.export_state` returns is JSON-able and free of passwords and tokens.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any, Callable

from ..clock import SimClock
from ..deployment.models import DeploymentModel, DeployOperation, SimHost
from ..events import Events
from ..sessions import Session
from .cluster import ClusterContext, rfc3339_nano
from .cpu import Cpu, cpu_models_for
from .errors import (EC_BAD_REQUEST, EC_EXISTS, EC_INVALID, EC_JOB_FAILED, EC_NOT_FOUND, EC_UNAUTHORIZED,
                     GRPC_ALREADY_EXISTS, GRPC_FAILED_PRECONDITION, GRPC_INVALID_ARGUMENT, GRPC_UNAUTHENTICATED,
                     FisheyeError, V3Error)
from .ipmi import IPMI_PORT, Ipmi, IpmiAccount
from .jobs import JOB_PENDING_S, JOB_RUNNING_S, Job, JobBoard
from .network import VDS_TYPE, VLAN_TYPE_MGMT, VLAN_TYPE_STORAGE, VLAN_TYPE_VM, Network, Vds, VdsMember, Vlan
from .sessions import DEFAULT_SESSION_TTL, PBKDF2_ITERATIONS, Accounts
from .settings import Settings
from .uploads import (DEFAULT_CHUNK_SIZE, FIRST_ISCSI_LUN, ISCSI_IQN, ISO_DEVICES, MAX_CHUNKS, SVT_IMAGE_DIR,
                      UPLOAD_KINDS, Upload, Uploads, _lun_of, iscsi_datastore, iscsi_path)

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_SESSION_TTL", "EC_BAD_REQUEST", "EC_EXISTS", "EC_INVALID", "EC_JOB_FAILED",
           "EC_NOT_FOUND", "EC_UNAUTHORIZED", "FIRST_ISCSI_LUN", "GRPC_ALREADY_EXISTS", "GRPC_FAILED_PRECONDITION",
           "GRPC_INVALID_ARGUMENT", "GRPC_UNAUTHENTICATED", "IPMI_PORT", "ISCSI_IQN", "ISO_DEVICES",
           "JOB_PENDING_S", "JOB_RUNNING_S", "MAX_CHUNKS", "PBKDF2_ITERATIONS", "SVT_IMAGE_DIR", "UPLOAD_KINDS",
           "VDS_TYPE", "VLAN_TYPE_MGMT", "VLAN_TYPE_STORAGE", "VLAN_TYPE_VM", "FisheyeError", "FisheyeModel",
           "IpmiAccount", "Job", "Session", "Upload", "V3Error", "Vds", "VdsMember", "Vlan", "cpu_models_for",
           "iscsi_datastore", "iscsi_path", "rfc3339_nano"]


def _part(part: str, name: str, doc: str = "") -> property:
    """An attribute of the facade that is ``self.<part>.<name>`` (read and write; ``part`` may be dotted)."""
    def owner(self):
        return functools.reduce(getattr, part.split("."), self)
    return property(lambda self: getattr(owner(self), name), lambda self, value: setattr(owner(self), name, value),
                    doc=doc)


def _forward(part: str, name: str, *, settle: bool = False) -> Callable:
    """A method of the facade that calls ``self.<part>.<name>`` (after :meth:`settle` if asked)."""
    def method(self, *args, **kwargs):
        if settle:
            self.settle()
        return getattr(getattr(self, part), name)(*args, **kwargs)
    method.__name__ = name
    return method


class FisheyeModel:
    """The cluster as fisheye (the SMTX OS management API) sees it after deployment."""

    family = "fisheye"

    def __init__(self, clock: SimClock, deployment: DeploymentModel, *, secrets: set[str] | None = None,
                 events: Events | None = None, is_alive: Callable[[str], bool] | None = None):
        self.ctx = ClusterContext(clock, deployment, events if events is not None else Events(),
                                  secrets if secrets is not None else set())   # secrets: shared with the request log
        self.is_alive: Callable[[str], bool] = is_alive or (lambda address: True)   # ICMP stand-in (BMCs)
        self.accounts = Accounts(self.ctx)
        self.jobboard = JobBoard(self.ctx)
        self.cluster_settings = Settings(self.ctx, self.jobboard)
        self.cpu = Cpu(self.ctx, self.cluster_settings.settings)
        self.network = Network(self.ctx, self.jobboard)
        self.ipmi = Ipmi(self.ctx)
        self.images = Uploads(self.ctx)

    # ------------------------------------------------------------------ shared state and tunables
    clock = _part("ctx", "clock")
    deployment = _part("ctx", "deployment")
    events = _part("ctx", "events", "emits vip_changed (old, new)")
    lock = _part("ctx", "lock")
    secrets = _part("ctx", "secrets")
    cluster = _part("ctx", "cluster")
    session_ttl = _part("accounts.store", "ttl")
    chunk_size = _part("images", "chunk_size")
    upload_profile = _part("images", "profile", "SVT/ISO partial-volume behaviour (uploads.UPLOAD_PROFILES)")
    job_pending = _part("jobboard", "pending_s")
    job_running = _part("jobboard", "running_s")
    root_login = _part("accounts", "root_login")
    settings = _part("cluster_settings", "settings")
    jobs = _part("jobboard", "jobs")
    vdses = _part("network", "vdses")
    vlans = _part("network", "vlans")
    uploads = _part("images", "uploads")
    ipmi_accounts = _part("ipmi", "ipmi_accounts")
    broken_bmcs = _part("ipmi", "broken_bmcs")

    # ------------------------------------------------------------------ seeding / activation
    set_bmc_credentials = _forward("ipmi", "set_bmc_credentials")
    cluster_hosts = _forward("ctx", "cluster_hosts")

    @property
    def active(self) -> bool:
        return self.ctx.cluster is not None

    def on_deployment(self, op: DeployOperation, state: str) -> None:
        """``deployed`` event: a successful deployment brings fisheye up."""
        if state == "success":
            self.activate(op)

    def activate(self, op: DeployOperation) -> None:
        with self.lock:
            self.ctx.activate(op)
            self.network.seed(op)
            self.cluster_settings.seed(op.payload or {})

    def serves(self, address: str) -> bool:
        """Whether fisheye answers on ``address``: a deployed cluster host, or the applied VIP."""
        if self.ctx.cluster is None:
            return False
        if address == self.settings.get("management_vip"):
            return True
        return any(h.mgmt_ip == address for h in self.cluster_hosts())

    def _host_label(self, h: SimHost) -> str:
        return self.ctx.host_label(h)

    # ------------------------------------------------------------------ progress on read
    def settle(self) -> None:
        """Apply the effects of jobs that have ended by now (called on every request)."""
        self.deployment.settle()                   # may activate us (event)
        for hook in self.jobboard.settle():
            hook()

    def new_job(self, description: str, event_name: str, action: str, args: dict, **kw: Any) -> Job:
        """A new job (lock held): see :meth:`JobBoard.new` (``outcome``, ``outcome_msg``, ``rule``, ...)."""
        return self.jobboard.new(description, event_name, action, args, **kw)

    job = _forward("jobboard", "view", settle=True)

    # ------------------------------------------------------------------ v3: root account and sessions
    def setup_root(self, password: str, repeat: str) -> dict:
        return self.accounts.setup_root(password, repeat)

    check_root_password = _forward("accounts", "check_root_password")

    def login(self, username: str, password: str) -> dict:
        return self.accounts.login(username, password)

    authenticate = _forward("accounts", "authenticate")

    def revoke_tokens(self) -> int:
        """Revoke every session (e.g. fisheye restarted); returns how many were live."""
        return self.accounts.store.revoke_all()

    @property
    def session_count(self) -> int:
        return self.accounts.store.count

    # ------------------------------------------------------------------ settings, license, CPU
    vip = _forward("cluster_settings", "vip")
    set_vip = _forward("cluster_settings", "set_vip")
    dns = _forward("cluster_settings", "dns")
    set_dns = _forward("cluster_settings", "set_dns")
    ntp = _forward("cluster_settings", "ntp")
    set_ntp = _forward("cluster_settings", "set_ntp")
    license = _forward("cluster_settings", "license")
    recommended_cpu_models = _forward("cpu", "recommended_cpu_models")
    cpu_compatibility = _forward("cpu", "cpu_compatibility")
    set_cpu_compatibility = _forward("cpu", "set_cpu_compatibility")

    # ------------------------------------------------------------------ IPMI
    break_bmc = _forward("ipmi", "break_bmc")

    def upsert_ipmi(self, accounts: list[IpmiAccount], *, outcome: str | None = None) -> dict:
        return self.ipmi.upsert(accounts, self.is_alive, outcome=outcome)

    # ------------------------------------------------------------------ VDS / VLAN
    create_vds = _forward("network", "create_vds")
    vlans_count = _forward("network", "vlans_count")
    list_vds = _forward("network", "list_vds", settle=True)
    get_vds = _forward("network", "get_vds", settle=True)
    vds_by_name = _forward("network", "vds_by_name")
    list_vlans = _forward("network", "list_vlans")
    create_vlan = _forward("network", "create_vlan")

    # ------------------------------------------------------------------ image uploads (SVT §03, ISO §04)
    create_volume = _forward("images", "create_volume")
    next_iscsi_lun = _forward("images", "next_iscsi_lun")
    note_iscsi_lun = _forward("images", "note_iscsi_lun")
    _lun_of = staticmethod(_lun_of)
    upload_target = _forward("images", "upload_target")
    accept_chunk = _forward("images", "accept_chunk")
    reject_chunk = _forward("images", "reject_chunk")
    image = _forward("images", "image")
    delete_image = _forward("images", "delete_image")
    upload_by_name = _forward("images", "upload_by_name")
    list_images = _forward("images", "list_images")
    image_by_path = _forward("images", "image_by_path")

    @property
    def svt_images(self) -> list[Upload]:
        return self.images.ready("SVT")

    @property
    def iso_images(self) -> list[Upload]:
        return self.images.ready("ISO")

    # ------------------------------------------------------------------ snapshot / restore
    def export_state(self) -> dict:
        """JSON-able state without passwords or tokens (digests only)."""
        self.settle()
        now = self.clock.now()
        with self.lock:
            jobs = []
            for j in self.jobs.values():
                d = dataclasses.asdict(j)
                d["state"] = j.state(now)                    # informational; recomputed on restore
                jobs.append(d)
            acc = self.accounts.export_state()
            return {
                "cluster": copy.deepcopy(self.cluster),
                "root_login": acc["root_login"],
                "sessions": acc["sessions"],
                "session_ttl": acc["session_ttl"],
                "chunk_size": self.chunk_size,
                "job_timing": {"pending": self.job_pending, "running": self.job_running},
                "settings": copy.deepcopy(self.settings),
                "vdses": [dataclasses.asdict(v) for v in self.vdses.values()],
                "vlans": [dataclasses.asdict(v) for v in self.vlans.values()],
                "jobs": jobs,
                "uploads": [dataclasses.asdict(u) for u in self.uploads.values()],
                "ipmi_accounts": list(self.ipmi_accounts.values()),
                "broken_bmcs": sorted(self.broken_bmcs),
            }

    def to_dict(self) -> dict:
        d = self.export_state()
        d["active"] = self.active
        return d

    def import_state(self, state: dict) -> None:
        """Restore :meth:`export_state` output; brings the VIP up (event ``vip_changed``)."""
        def build(cls, d: dict):
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in d.items() if k in known})

        with self.lock:
            old_vip = self.settings.get("management_vip")
            self.cluster = copy.deepcopy(state.get("cluster"))
            self.accounts.import_state(state)
            self.chunk_size = int(state.get("chunk_size", self.chunk_size))
            timing = state.get("job_timing") or {}
            self.job_pending = float(timing.get("pending", self.job_pending))
            self.job_running = float(timing.get("running", self.job_running))
            self.settings.update(copy.deepcopy(state.get("settings") or {}))
            self.vdses = {v["uuid"]: build(Vds, v) for v in state.get("vdses", [])}
            self.vlans = {v["uuid"]: build(Vlan, v) for v in state.get("vlans", [])}
            self.jobs = {j["job_id"]: build(Job, j) for j in state.get("jobs", [])}
            self.uploads = {u["image_uuid"]: build(Upload, u) for u in state.get("uploads", [])}
            self.ipmi_accounts = {a["node_uuid"]: dict(a) for a in state.get("ipmi_accounts", [])}
            self.broken_bmcs = set(state.get("broken_bmcs", []))
            new_vip = self.settings.get("management_vip")
        if new_vip or old_vip:
            self.events.emit("vip_changed", old=old_vip if old_vip != new_vip else None, new=new_vip)
