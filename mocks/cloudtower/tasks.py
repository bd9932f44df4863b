"""CloudTower tasks (``get-tasks``): long operations that progress on simulated time, computed on read.

``PENDING`` for ``pending_s``, ``EXECUTING`` for ``running_s``, then ``SUCCESSED`` -- or ``FAILED`` /
stuck in ``EXECUTING`` when an ``operation`` fault fired on the call, or when the model itself decided the
operation fails (:class:`TaskFault`; e.g. a connect whose password the cluster refuses under profile
``connect-auth-late``). A failed task answers ``error_message`` and ``error_code``: the fault's ``code`` (a
``ClusterConnectorErrorCode`` for a connect), else ``LOAD_CLUSTER_FAILED`` / ``TASK_FAILED``.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from ..clock import timed_phase
from .util import iso_ms

TASK_STATUS = {"pending": "PENDING", "running": "EXECUTING", "done": "SUCCESSED", "failed": "FAILED"}
TASK_PENDING_S = 2.0            # simulated seconds a task stays PENDING before EXECUTING


@dataclass(frozen=True)
class TaskFault:
    """What an ``operation`` fault does to the task a call starts: ``mode`` ``"fail"`` (FAILED with
    ``msg`` and error code ``code``) or ``"stuck"`` (EXECUTING forever)."""

    mode: str
    msg: str | None = None
    code: str | None = None

    @classmethod
    def of(cls, outcome: str | None, msg: str | None = None) -> "TaskFault | None":
        """From the request's typed operation fault (``req.outcome``, ``req.outcome_msg``); None when none fired."""
        return cls(outcome, msg) if outcome in ("stuck", "fail") else None


@dataclass
class Task:
    id: str
    description: str
    key: str                         # e.g. connect_cluster
    resource_type: str               # Cluster | Datacenter
    resource_id: str
    resource_mutation: str           # connectCluster | createDatacenter
    args: dict                       # the call's arguments, without passwords
    created: float                   # simulated seconds
    created_wall: float              # UNIX seconds
    pending_s: float
    running_s: float
    user_id: str | None = None
    cluster_id: str | None = None
    fault: str | None = None         # None | "stuck" | "fail"
    fault_msg: str | None = None
    fault_code: str | None = None    # the error code a failing task answers (None: the generic one)
    applied: bool = False
    outcome: str | None = None       # SUCCESSED | FAILED once applied

    def timed_status(self, now: float) -> str:
        return TASK_STATUS[timed_phase(now, self.created, self.pending_s, self.running_s, self.fault)]

    def status(self, now: float) -> str:
        return self.outcome if self.applied and self.outcome else self.timed_status(now)

    def progress(self, now: float) -> float:
        st = self.status(now)
        if st in ("SUCCESSED", "FAILED"):
            return 1.0
        if st == "PENDING" or self.running_s <= 0:
            return 0.0
        return round(min(0.99, max(0.0, (now - self.created - self.pending_s) / self.running_s)), 2)


def _error_code(t: Task, failed: bool) -> str | None:
    if not failed:
        return None
    if t.fault_code:
        return t.fault_code
    return "LOAD_CLUSTER_FAILED" if t.resource_type == "Cluster" else "TASK_FAILED"


class TasksMixin:
    """State: ``tasks`` (id -> :class:`Task`), ``task_pending`` (set up by :class:`CloudTowerModel`)."""

    def _wall_at(self, sim_t: float) -> float:
        """Wall-clock time of a simulated instant (for task timestamps)."""
        return self.clock.wall() - (self.clock.now() - sim_t)

    def _task(self, *, description: str, key: str, resource_type: str, resource_id: str, mutation: str,
              args: dict, running_s: float, user_id: str | None, cluster_id: str | None = None,
              fault: TaskFault | None = None) -> Task:
        t = Task(id=self._new_id("task"), description=description, key=key, resource_type=resource_type,
                 resource_id=resource_id, resource_mutation=mutation, args=args, created=self.clock.now(),
                 created_wall=self.clock.wall(), pending_s=float(self.task_pending), running_s=float(running_s),
                 user_id=user_id, cluster_id=cluster_id, fault=fault.mode if fault else None,
                 fault_msg=fault.msg if fault else None, fault_code=fault.code if fault else None)
        self.tasks[t.id] = t
        return t

    def settle(self) -> None:
        """Mark tasks that have ended by now (their effect shows through ``connect_state``)."""
        now = self.clock.now()
        with self.lock:
            for t in self.tasks.values():
                if not t.applied:
                    st = t.timed_status(now)
                    if st in ("SUCCESSED", "FAILED"):
                        t.applied, t.outcome = True, st

    def _iso_sim(self, sim_t: float | None) -> str | None:
        return iso_ms(self._wall_at(sim_t)) if sim_t is not None else None

    def task_view(self, t: Task) -> dict:
        now = self.clock.now()
        st = t.status(now)
        ended = st in ("SUCCESSED", "FAILED")
        started = t.created + t.pending_s if st != "PENDING" else None
        finished = t.created + t.pending_s + t.running_s if ended else None
        c = self.clusters.get(t.cluster_id) if t.cluster_id else None
        failed = st == "FAILED"
        snapshot: dict[str, Any] = {"id": t.resource_id, **{k: v for k, v in t.args.items() if k in ("ip", "name")}}
        return {
            "id": t.id,
            "args": copy.deepcopy(t.args),
            "cluster": {"id": c.id, "name": c.name} if c else None,
            "description": t.description,
            "error_code": _error_code(t, failed),
            "error_message": (t.fault_msg or f"{t.description} failed") if failed else None,
            "finished_at": self._iso_sim(finished),
            "internal": False,
            "key": t.key,
            "local_created_at": iso_ms(t.created_wall),
            "progress": t.progress(now),
            "resource_id": t.resource_id,
            "resource_mutation": t.resource_mutation,
            "resource_rollback_error": None,
            "resource_rollback_retry_count": None,
            "resource_rollbacked": None,
            "resource_type": t.resource_type,
            "snapshot": json.dumps(snapshot, ensure_ascii=False),
            "started_at": self._iso_sim(started),
            "status": st,
            "steps": [],
            "type": None,
            "user": {"id": t.user_id, "name": "root"} if t.user_id else None,
        }

    def list_tasks(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self.task_view(t) for t in self.tasks.values()]
