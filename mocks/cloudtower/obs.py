"""Stage 07a of a simulated CloudTower: Observability (OBS), guide §07 -- state only, no HTTP.

:class:`ObsMixin` (mixed into :class:`~mocks.cloudtower.models.CloudTowerModel`) keeps

* **OVM operator chunked uploads** (``responses_obs.py`` serves the wire): a session per
  ``POST …/v3/chunkedUploads`` (27-character KSUID id, cumulative ``offset``); every chunk is *appended* (no index
  is sent, so a replayed chunk really lands twice). Nothing is kept but the size, a running SHA-256 and a gzip
  decompressor fed as the bytes arrive (:class:`GzipCheck`): a 2 GiB package never sits in memory or on disk.
* **package processing**: the commit starts the task ``Create Installation package <file>`` (``INSTALL_PKG_S``,
  315 simulated s as in the guide) and, ``APP_PKG_AT`` s later, ``Create Application package
  observability-<ARCH>-<version>.tar.gz`` (``APP_PKG_S`` = 101 s, ending before the first). When the first ends the
  :class:`ObsPackage` (``BundleApplicationPackage``, version without the build suffix) exists. Bytes that are not one
  complete gzip stream holding a tar archive (a replayed or missing chunk), or a file name that is not an
  Observability package's, make the first task FAILED after ``PKG_FAIL_S`` with an ``error_message`` (no second
  task, no package). An ``operation`` fault on the commit: ``fail`` the same, ``stuck`` EXECUTING forever.
* **bundle application instances** (:class:`ObsInstance`): ``INSTALLING`` for ``obs_install_s`` (600 simulated s),
  then ``SUCCESS`` with ``health_status`` ``NORMAL``; the VM (``application.instances[].vm``) exists and is
  ``RUNNING`` ``obs_vm_lead_s`` (120 s) before that. When the VM runs it takes the planned IP on the simulated
  network: ping, SSH on tcp/10022 (``o11y`` / ``HC!r0cks``, sudo asking for the password, a default
  ``/etc/resolv.conf``). An ``operation`` fault on ``createBundleApplicationInstance``: ``stuck`` = INSTALLING
  forever (the VM still goes RUNNING), ``fail`` = ``FAILED`` after ``INSTANCE_FAIL_S`` with ``error_code``.
  NTP (``;``-joined), connected clusters (``id_in`` *sets* the list), connected system services (``INSTALLING``,
  ``RUNNING`` after ``SYSTEM_SERVICE_S``; both [inf]) need the instance ``SUCCESS``.

Knobs (``tower = sim.state.cloudtower.tower(ip)``): ``obs_install_s``, ``obs_vm_lead_s`` (snapshot tunables; read
at create), ``obs_ssh`` (False: the OBS VM's 10022 stays down -- or ``sim.set_up(ip, 10022, False, proto="tcp")``
once it is up), :meth:`ObsMixin.add_foreign_vlan` (a VLAN -- ``default`` -- on another cluster's VDS, listed
first by ``get-vlans``), :meth:`ObsMixin.revoke_cookies` (every ``connect.sid`` expires; tokens stay).
State: ``obs_uploads``, ``obs_jobs``, ``obs_packages``, ``obs_instances``, ``foreign_vlans``.

Split by concept: ``obs_packages.py`` (OVM chunked uploads, package tasks and packages), ``obs_instances.py``
(bundle instances, NTP, connected clusters, system services), this module (settling, the OBS VM on the network and
its SSH, fault helpers, snapshot).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .obs_instances import (CLOUDTOWER_VERSION, INSTANCE_FAIL_S, OBS_INSTALL_S, OBS_VM_LEAD_S, SYSTEM_SERVICE_S,
                            ObsInstance, ObsInstancesMixin)
from .obs_packages import (APP_PKG_AT, APP_PKG_S, INSTALL_PKG_S, OBS_PACKAGE_NAME, PACKAGE_RE, PKG_FAIL_S, GzipCheck,
                           ObsJob, ObsPackage, ObsPackagesMixin, ObsUpload, ksuid, package_of)
from .util import cuid

__all__ = ["APP_PKG_AT", "APP_PKG_S", "CLOUDTOWER_VERSION", "GzipCheck", "INSTALL_PKG_S", "INSTANCE_FAIL_S",
           "OBS_BASIC", "OBS_INSTALL_S", "OBS_PACKAGE_NAME", "OBS_SSH_PASSWORD", "OBS_SSH_PORT", "OBS_SSH_USER",
           "OBS_VM_LEAD_S", "ObsInstance", "ObsInstancesMixin", "ObsJob", "ObsMixin", "ObsPackage", "ObsPackagesMixin",
           "ObsUpload", "PACKAGE_RE", "PKG_FAIL_S", "SYSTEM_SERVICE_S", "ksuid", "package_of"]

OBS_SSH_PORT = 10022
OBS_SSH_USER = "o11y"
OBS_SSH_PASSWORD = "HC!r0cks"
OBS_BASIC = ("o11y", "HC!r0cks")      # the OVM operator's Basic credential (G L2255)


def _rows(table: dict) -> list[dict]:
    return [dataclasses.asdict(x) for x in table.values()]


def _table(cls, rows) -> dict:
    known = {f.name for f in dataclasses.fields(cls)}
    return {r["id" if "id" in known else "upload_id"]: cls(**{k: v for k, v in r.items() if k in known})
            for r in rows or []}


class ObsMixin(ObsPackagesMixin, ObsInstancesMixin):
    """OBS state and operations; see the module doc. Uploads and packages come from :class:`ObsPackagesMixin`,
    instances from :class:`ObsInstancesMixin`."""

    # ------------------------------------------------------------------ setup
    def _init_obs(self) -> None:
        self.obs_install_s = OBS_INSTALL_S
        self.obs_vm_lead_s = OBS_VM_LEAD_S
        self.obs_ssh = True
        self.obs_uploads: dict[str, ObsUpload] = {}
        self.obs_jobs: dict[str, ObsJob] = {}
        self.obs_packages: dict[str, ObsPackage] = {}
        self.obs_instances: dict[str, ObsInstance] = {}
        self.foreign_vlans: list[dict] = []
        self._obs_streams: dict[str, tuple[Any, GzipCheck]] = {}      # upload id -> (sha256, gzip check); memory

    def settle(self) -> None:
        super().settle()
        self.settle_obs()

    # ------------------------------------------------------------------ processing (settle)
    def settle_obs(self) -> None:
        """Start / finish package tasks and packages that are due; bring up the network of OBS VMs now running."""
        now = self.clock.now()
        with self.lock:
            for job in self.obs_jobs.values():
                if not job.done:
                    self._advance_job(job, now)
            newly = [i for i in self.obs_instances.values() if not i.networked and self._vm_running(i, now)]
            for inst in newly:
                inst.networked = True
        for inst in newly:
            self._obs_network_up(inst.vm_spec["ip"])

    # ------------------------------------------------------------------ the OBS VM on the network
    def _obs_network_up(self, ip: str) -> None:
        """The OBS VM took ``ip``: ping, SSH on 10022 (``o11y``; up unless ``obs_ssh`` is False)."""
        sim = getattr(self.smtx, "sim", None)
        if sim is None:
            return
        from ..ssh import attach_ssh

        attach_ssh(sim, ip, users={OBS_SSH_USER: OBS_SSH_PASSWORD}, port=OBS_SSH_PORT, up=bool(self.obs_ssh),
                   hostname="observability", role="obs")
        sim.set_alive(ip, True)

    # ------------------------------------------------------------------ faults / helpers
    def revoke_cookies(self) -> int:
        """Every ``connect.sid`` cookie expires (the REST / GraphQL tokens stay): the "expired cookie" fault."""
        store = self.sessions
        with store.lock:
            gone = [d for d, s in store._sessions.items() if s.kind == "cookie"]
            for d in gone:
                del store._sessions[d]
        return len(gone)

    def add_foreign_vlan(self, name: str = "default", *, cluster_name: str = "other-cluster", vlan_id: int = 0) -> dict:
        """A VM network ``name`` on a VDS of *another* cluster (not one this tower connected), listed before the
        real ones by ``get-vlans`` (and its VDS by ``get-vdses``): a cluster-blind lookup by name takes it."""
        with self.lock:
            n = len(self.foreign_vlans)
            cid = cuid("smtx-sim://cloudtower", self.ip, "foreign-cluster", cluster_name)
            v = {"id": cuid("smtx-sim://cloudtower", self.ip, "foreign-vlan", cluster_name, name, n),
                 "name": name, "vlan_id": int(vlan_id), "cluster": {"id": cid, "name": cluster_name},
                 "vds": {"id": cuid("smtx-sim://cloudtower", self.ip, "foreign-vds", cluster_name),
                         "name": f"{cluster_name}-vds"}}
            self.foreign_vlans.append(v)
            return v

    def list_vlans(self) -> list[dict]:
        own = super().list_vlans()
        with self.lock:
            extra = [{**own[0], **{"id": v["id"], "name": v["name"], "local_id": v["id"], "type": "VM",
                                   "vlan_id": v["vlan_id"], "vds": dict(v["vds"])}} if own else
                     {"id": v["id"], "name": v["name"], "local_id": v["id"], "type": "VM", "vlan_id": v["vlan_id"],
                      "mode_type": "VLAN_ACCESS", "vds": dict(v["vds"])}
                     for v in self.foreign_vlans]
        return extra + own

    def list_vdses(self) -> list[dict]:
        own = super().list_vdses()
        with self.lock:
            seen, extra = set(), []
            for v in self.foreign_vlans:
                if v["vds"]["id"] in seen:
                    continue
                seen.add(v["vds"]["id"])
                mine = [x for x in self.foreign_vlans if x["vds"]["id"] == v["vds"]["id"]]
                extra.append({**(own[0] if own else {}), "id": v["vds"]["id"], "name": v["vds"]["name"],
                              "local_id": v["vds"]["id"], "type": "VM", "internal": False,
                              "cluster": dict(v["cluster"]), "vlans_num": len(mine),
                              "vlans": [{"id": x["id"], "name": x["name"]} for x in mine]})
        return extra + own

    # ------------------------------------------------------------------ snapshot
    def export_obs(self) -> dict:
        with self.lock:
            return {"uploads": _rows(self.obs_uploads), "jobs": _rows(self.obs_jobs),
                    "packages": _rows(self.obs_packages), "instances": _rows(self.obs_instances),
                    "foreign_vlans": [dict(v) for v in self.foreign_vlans],
                    "tunables": {"obs_install_s": self.obs_install_s, "obs_vm_lead_s": self.obs_vm_lead_s,
                                 "obs_ssh": self.obs_ssh}}

    def import_obs(self, saved: dict) -> None:
        with self.lock:
            self.obs_uploads = _table(ObsUpload, saved.get("uploads"))
            for up in self.obs_uploads.values():
                if up.status == "UPLOADING":
                    up.verifiable = False               # the running digest / gzip state lived in memory only
            self.obs_jobs = {r["upload_id"]: _build(ObsJob, r) for r in saved.get("jobs") or []}
            self.obs_packages = _table(ObsPackage, saved.get("packages"))
            self.obs_instances = _table(ObsInstance, saved.get("instances"))
            self.foreign_vlans = [dict(v) for v in saved.get("foreign_vlans") or []]
            self._obs_streams = {}
            tun = saved.get("tunables") or {}
            self.obs_install_s = float(tun.get("obs_install_s", self.obs_install_s))
            self.obs_vm_lead_s = float(tun.get("obs_vm_lead_s", self.obs_vm_lead_s))
            self.obs_ssh = bool(tun.get("obs_ssh", self.obs_ssh))
            up = [i.vm_spec["ip"] for i in self.obs_instances.values() if i.networked]
        for ip in up:                                   # the SSH family imported before this tower existed
            self._obs_network_up(ip)


def _build(cls, d: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in known})
