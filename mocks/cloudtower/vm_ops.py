"""Stages 09-11 of a simulated CloudTower: what happens to CloudTower's VMs on simulated time -- the VM calls that start
a task (``start-vm``, ``shutdown-vm``, ``poweroff-vm``, ``delete-vm``, ``migrate-vm``, ``update-vm-nic``,
``delete-vm-volume``), settling their effects in time order when the tasks end, VM tools, and the test VM's guest on
the simulated network (``mocks.guest``). See :mod:`mocks.cloudtower.vms` for the whole picture.

Refusals (400): a VM with a task still running (``entityAsyncStatus`` not null: one operation at a time), start of a
RUNNING VM, shutdown / poweroff / migrate of a STOPPED one, delete of a RUNNING one, migrate to its own host or to a
host of another cluster, ``delete-vm-volume`` of a mounted volume, a VM of the cluster itself (read-only here).
An ``operation`` fault on the call: ``fail`` -> the task FAILED and nothing changes (a failed migration is still
recorded for the guest's throughput dip), ``stuck`` -> EXECUTING forever (the VM stays busy).
"""
from __future__ import annotations

import threading
from typing import Any

from . import vm_params as P
from .errors import RestError
from .filters import FilterError, select
from .tasks import Task, TaskFault

_ENDED = ("SUCCESSED", "FAILED")
_DESCRIPTIONS = {"start": "Start VM", "shutdown": "Shut down VM", "poweroff": "Power off VM", "delete": "Delete VM",
                 "migrate": "Migrate VM", "nic": "Update VM NIC", "delete-volume": "Delete VM volume"}


def _end(t: Task) -> float:
    return t.created + t.pending_s + t.running_s


class VmOpsMixin:
    """Operations and settling (state set up by ``VmsMixin._init_vms``)."""

    # ================================================================== calls
    def _where_vms(self, name: str, where: Any) -> list:
        try:
            hits = select(self.list_ct_vms(), {"where": where}, typename="Vm")
        except FilterError as exc:
            raise RestError(400, f"{name}: {exc}") from None
        return [self._own_vm(v["id"], f"{name}: where") for v in hits]

    def _op_task(self, kind: str, target: str, name: str, cluster_id: str | None, running_s: float,
                 user_id: str | None, fault: TaskFault | None, args: dict | None = None) -> Task:
        from .vms import VmOp

        t = self._task(description=f"{_DESCRIPTIONS[kind]} {name}", key=kind.replace("-", "_"), resource_type="Vm"
                       if kind != "delete-volume" else "VmVolume", resource_id=target, mutation=kind, args={"name": name},
                       running_s=max(0.0, float(running_s) - self.task_pending), user_id=user_id, cluster_id=cluster_id,
                       fault=fault)
        self.vm_ops[t.id] = VmOp(t.id, kind, target, dict(args or {}))
        return t

    def _idle(self, name: str, vm) -> None:
        op = self._pending_op(vm.id)
        if not vm.ready or op is not None:
            raise RestError(400, f"{name}: VM {vm.name} is busy (task {op.task_id if op else vm.task_id} still "
                                 f"running); wait for it to end")

    def vm_action(self, kind: str, body: dict, user_id: str | None, fault: TaskFault | None = None) -> list[dict]:
        """``start-vm`` / ``shutdown-vm`` / ``poweroff-vm`` / ``delete-vm`` / ``migrate-vm``: every matched VM checked
        first, then a task each -> ``[{data, task_id}]`` (``delete-vm``: ``data {id}``)."""
        name = f"{kind}-vm"
        allowed = {"where", "data"} if kind in ("start", "migrate") else {"where", "effect"} if kind == "delete" \
            else {"where"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise RestError(400, f"{name}: unknown field(s) {unknown}; the body is {{{', '.join(sorted(allowed))}}}")
        data = P.fields(f"{name}: data", body.get("data") or {}, {"host_id": "str"}, (), "VmStartParamsData")
        if kind == "delete":
            P.fields(f"{name}: effect", body.get("effect") or {}, {"include_snapshots": "bool"}, (),
                     "VmDeleteParamsEffect")
        if kind == "migrate" and not data.get("host_id"):
            raise RestError(400, f"{name}: data.host_id is required (the target host)")
        with self.lock:
            vms = self._where_vms(name, body.get("where"))
            for vm in vms:
                self._idle(name, vm)
                self._check_action(name, kind, vm, data.get("host_id"))
            out = []
            for vm in vms:
                running = self.vm_migrate_s if kind == "migrate" else self.vm_op_s
                t = self._op_task(kind, vm.id, vm.name, vm.cluster_id, running, user_id, fault,
                                  {"host_id": data.get("host_id")})
                if kind == "migrate":
                    start = t.created + t.pending_s
                    end = _end(t) if not (fault and fault.mode == "stuck") else start + 10 ** 9
                    vm.migrations.append({"start": start, "end": end, "ok": not (fault and fault.mode == "fail")})
                out.append({"data": {"id": vm.id} if kind == "delete" else self.vm_view(vm), "task_id": t.id})
            return out

    def _check_action(self, name: str, kind: str, vm, host_id: str | None) -> None:
        if kind == "start":
            if vm.status == "RUNNING":
                raise RestError(400, f"{name}: VM {vm.name} is already RUNNING")
            if host_id is not None:
                self._pick_host("data", host_id, vm.cluster_id)
        elif kind in ("shutdown", "poweroff") and vm.status != "RUNNING":
            raise RestError(400, f"{name}: VM {vm.name} is {vm.status}")
        elif kind == "delete" and vm.status == "RUNNING":
            raise RestError(400, f"{name}: VM {vm.name} is RUNNING: power it off first")
        elif kind == "migrate":
            if vm.status != "RUNNING":
                raise RestError(400, f"{name}: VM {vm.name} is {vm.status}: only a RUNNING VM is migrated")
            if host_id == vm.host_id:
                raise RestError(400, f"{name}: VM {vm.name} already runs on host {host_id}")
            if host_id not in self._cluster_hosts(vm.cluster_id):
                raise RestError(400, f"{name}: data.host_id {host_id!r} is not a host of the VM's cluster")

    def update_vm_nics(self, body: dict, user_id: str | None, fault: TaskFault | None = None) -> list[dict]:
        """``update-vm-nic {where, data: {nic_index, ip_address, subnet_mask, gateway, connect_vlan_id?}}``."""
        unknown = sorted(set(body) - {"where", "data"})
        if unknown:
            raise RestError(400, f"update-vm-nic: unknown field(s) {unknown}; the body is {{where, data}}")
        data = P.nic_update(body)
        with self.lock:
            vms = self._where_vms("update-vm-nic", body.get("where"))
            for vm in vms:
                self._idle("update-vm-nic", vm)
                if data["nic_index"] >= len(vm.nics):
                    raise RestError(400, f"update-vm-nic: data.nic_index {data['nic_index']}: VM {vm.name} has "
                                         f"{len(vm.nics)} NIC(s) (0-based)")
                self._check_nics("data", [data], vm.cluster_id, self._taken_ips(exclude_vm=vm.id))
            out = []
            for vm in vms:
                tools = vm.status == "RUNNING" and vm.tools_up_at is not None
                t = self._op_task("nic", vm.id, vm.name, vm.cluster_id, self.vm_op_s, user_id, fault,
                                  {"data": data, "tools": tools})
                out.append({"data": self.vm_view(vm), "task_id": t.id})
            return out

    def delete_vm_volumes(self, body: dict, user_id: str | None, fault: TaskFault | None = None) -> list[dict]:
        """``delete-vm-volume {where}``: unmounted volumes only -> ``[{data: {id}, task_id}]``."""
        unknown = sorted(set(body) - {"where", "effect"})
        if unknown:
            raise RestError(400, f"delete-vm-volume: unknown field(s) {unknown}; the body is {{where, effect?}}")
        with self.lock:
            try:
                hits = select(self.list_vm_volumes(), {"where": body.get("where")}, typename="VmVolume")
            except FilterError as exc:
                raise RestError(400, f"delete-vm-volume: {exc}") from None
            for v in hits:
                if v["mounting"]:
                    raise RestError(400, f"delete-vm-volume: volume {v['name']} is mounted on a VM")
                if v["entityAsyncStatus"]:
                    raise RestError(400, f"delete-vm-volume: volume {v['name']} is already being deleted")
            return [{"data": {"id": v["id"]}, "task_id": self._op_task("delete-volume", v["id"], v["name"],
                                                                         v["cluster"]["id"], self.vm_op_s, user_id,
                                                                         fault).id} for v in hits]

    # ================================================================== settling
    def settle(self) -> None:
        super().settle()
        me = threading.get_ident()
        with self.lock:
            if getattr(self, "_vm_settler", None) == me:      # a view read while settling settles again: skip
                return
            self._vm_settler = me
            try:
                self._vm_events(self.clock.now())
                self._vm_network(self._wanted_guests())
            finally:
                self._vm_settler = None

    def _next_event(self, now: float) -> tuple | None:
        best = None
        for op in self.vm_ops.values():
            if op.applied:
                continue
            t = self.tasks.get(op.task_id)
            st = t.status(now) if t else "FAILED"
            if st in _ENDED:
                ev = (_end(t) if t else now, 0, op.task_id, op, st)
                best = ev if best is None or ev[:3] < best[:3] else best
        if self.test_vm_tools:
            for vm in self.ct_vms.values():
                if vm.ready and vm.status == "RUNNING" and vm.tools_up_at is None and vm.booted_at is not None:
                    at = vm.booted_at + float(self.vm_tools_s)
                    if at <= now:
                        ev = (at, 1, vm.id, vm, None)
                        best = ev if best is None or ev[:3] < best[:3] else best
        return best

    def _vm_events(self, now: float) -> None:
        """Apply, in time order, every task that has ended and every VM tools start that is due."""
        for _ in range(10000):
            ev = self._next_event(now)
            if ev is None:
                return
            at, kind, _key, obj, status = ev
            if kind == 1:
                self._tools_up(obj, at)
            else:
                obj.applied = True
                self._apply_op(obj, status, at)

    def _tools_up(self, vm, at: float) -> None:
        vm.tools_up_at, vm.ever_tools = at, True
        if self.vm_nic_ip == "import":
            for n in vm.nics:
                if n.get("ip_address"):
                    n["guest_ip"] = n["ip_address"]

    def _drop_vm(self, vm, volumes: str) -> None:
        self.ct_vms.pop(vm.id, None)
        for v in [v for v in self.ct_volumes.values() if v.vm_id == vm.id]:
            if volumes == "kept":
                v.vm_id = None
            else:
                del self.ct_volumes[v.id]

    def _created(self, vm, ok: bool, at: float) -> None:
        if not ok:
            self._drop_vm(vm, "with-vm")                      # a failed import / clone leaves nothing
            return
        vm.ready = True
        if vm.want_status == "RUNNING":
            vm.status, vm.booted_at = "RUNNING", at

    def _apply_op(self, op, status: str, at: float) -> None:
        if op.kind == "delete-volume":
            if status == "SUCCESSED":
                self.ct_volumes.pop(op.target, None)
            return
        vm = self.ct_vms.get(op.target)
        if vm is None:
            return
        if op.kind == "create":
            self._created(vm, status == "SUCCESSED", at)
        elif status != "SUCCESSED":
            return
        elif op.kind == "start":
            vm.status, vm.booted_at, vm.tools_up_at = "RUNNING", at, None
            vm.host_id = op.args.get("host_id") or vm.host_id
        elif op.kind in ("shutdown", "poweroff"):
            vm.status, vm.booted_at, vm.tools_up_at = "STOPPED", None, None
        elif op.kind == "delete":
            self._drop_vm(vm, self.vm_delete_volumes)
        elif op.kind == "migrate":
            vm.host_id = op.args.get("host_id") or vm.host_id
        elif op.kind == "nic":
            self._nic_updated(vm, op.args)

    def _nic_updated(self, vm, args: dict) -> None:
        d = args["data"]
        n = vm.nics[d["nic_index"]]
        for k in ("ip_address", "subnet_mask", "gateway", "model", "enabled", "mirror", "mac_address"):
            if k in d:
                n[k] = d[k]
        if "connect_vlan_id" in d:
            n["vlan_id"] = d["connect_vlan_id"]
        tools = vm.status == "RUNNING" and vm.tools_up_at is not None
        if tools and (args.get("tools") or self.vm_nic_ip == "import"):
            n["guest_ip"] = n.get("ip_address")

    # ================================================================== the guest on the network
    def _wanted_guests(self) -> dict[str, str]:
        return {n["guest_ip"]: vm.id for vm in self.ct_vms.values()
                if vm.ready and vm.status == "RUNNING" and vm.tools_up_at is not None
                for n in vm.nics if n.get("guest_ip") and n.get("enabled", True)}

    def _guest_spec(self, vm_id: str):
        from ..guest import GuestSpec

        vm = self.ct_vms[vm_id]
        info = self._info(self.clusters[vm.cluster_id]) if vm.cluster_id in self.clusters else None
        return GuestSpec(vm_id=vm.id, name=vm.name, disks=lambda: self._guest_disks(vm_id),
                         peers=lambda: self._guest_peers(vm_id), migrations=lambda: self._guest_migrations(vm_id),
                         all_flash=bool((info or {}).get("is_all_flash")), hosts=len((info or {}).get("hosts") or []))

    def _guest_disks(self, vm_id: str) -> list[tuple[str, int]]:
        with self.lock:
            vm = self.ct_vms.get(vm_id)
            if vm is None:
                return []
            dev = self._devices(vm)
            return [(dev[d["id"]], self.ct_volumes[d["volume_id"]].size) for d in vm.disks
                    if d["type"] == "DISK" and d["volume_id"] in self.ct_volumes]

    def _guest_peers(self, vm_id: str) -> int:
        with self.lock:
            vm = self.ct_vms.get(vm_id)
            if vm is None:
                return 0
            return sum(1 for v in self.ct_vms.values()
                       if v.cluster_id == vm.cluster_id and v.ready and v.status == "RUNNING")

    def _guest_migrations(self, vm_id: str) -> list[dict]:
        with self.lock:
            vm = self.ct_vms.get(vm_id)
            return [dict(m) for m in vm.migrations] if vm else []

    def _vm_network(self, want: dict[str, str]) -> None:
        """Bring the guests of ``want`` (IP -> VM id) up and every other guest this tower brought up down (called
        with the tower's lock held)."""
        sim = getattr(self.smtx, "sim", None)
        if sim is None or want == self._vm_guests:
            return
        from ..guest import attach_guest, detach_guest

        for ip in [ip for ip, vid in self._vm_guests.items() if want.get(ip) != vid]:
            detach_guest(sim, ip)
            sim.set_alive(ip, False)
            del self._vm_guests[ip]
        for ip, vid in want.items():
            if ip not in self._vm_guests:
                attach_guest(sim, ip, self._guest_spec(vid))
                sim.set_alive(ip, True)
                self._vm_guests[ip] = vid
