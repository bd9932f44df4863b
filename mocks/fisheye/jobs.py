"""Fisheye jobs: long operations whose state (pending -> running -> done | failed) is computed from
simulated time on every read; their effects apply when they end (:meth:`JobBoard.settle`).

Each sub-model registers the effect of its job ``action`` (``vip``, ``dns``, ``ntp``, ``vds``) with
:meth:`JobBoard.on`; an action without a registered effect (the VMs family's) just ends ``done``."""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Callable

from ..clock import timed_phase
from .cluster import ClusterContext
from .errors import EC_JOB_FAILED, FisheyeError, not_found

JOB_PENDING_S = 2.0                    # simulated seconds a job stays pending
JOB_RUNNING_S = 3.0                    # ... then running
OUTCOMES = ("stuck", "fail")

Hook = Callable[[], None]
Apply = Callable[["Job"], "Hook | None"]     # may raise FisheyeError: the job then fails
Undo = Callable[["Job"], None]


@dataclass
class Job:
    job_id: str
    description: str                     # e.g. NETWORK_CREATE_VDS (the guide's), SETTINGS_UPDATE_DNS
    event_name: str                      # e.g. CREATE_VDS
    action: str                          # effect applied when done: vip | dns | ntp | vds | (vms') vm_*
    args: dict                           # the effect's arguments (no secrets)
    created: float                       # simulated seconds
    ctime: int                           # wall clock UNIX seconds (the guide's ctime)
    resources: dict = field(default_factory=dict)
    event_message: dict = field(default_factory=dict)     # {"zh_CN", "en_US"}
    event_detail: dict = field(default_factory=dict)
    event_data: dict = field(default_factory=dict)
    pending_s: float = JOB_PENDING_S
    running_s: float = JOB_RUNNING_S
    fault: str | None = None             # None | "stuck" | "fail"  (an operation fault rule's outcome)
    fault_msg: str | None = None
    fault_rule: str | None = None
    applied: bool = False
    outcome: str | None = None           # "done" | "failed" once applied
    message: str | None = None           # failure message
    finished_at: float | None = None
    failed_word: str = "failed"           # the state a failed job shows (JobBoard.failed_state)

    def timed_state(self, now: float) -> str:
        return timed_phase(now, self.created, self.pending_s, self.running_s, self.fault)

    def state(self, now: float) -> str:
        return self.outcome if self.applied and self.outcome else self.timed_state(now)

    def _event(self) -> dict:
        return {
            "event_name": self.event_name,
            "user_name": "root",
            "user_role": "ROOT",
            "resources": {k: v.get("type", "") for k, v in self.resources.items() if isinstance(v, dict)},
            "message": dict(self.event_message),
            "detail": dict(self.event_detail),
            "data": dict(self.event_data),
            "user_type": "USER",
            "batch": None,
        }

    def view(self, now: float) -> dict:
        """``data.job`` of ``GET /api/v2/jobs/{id}`` (the guide's VDS job sample, plus message/error)."""
        state = self.state(now)
        failed = state == "failed"
        msg = (self.message or self.fault_msg or f"job {self.description} failed") if failed else None
        return {
            "job_id": self.job_id, "state": self.failed_word if failed else state, "life_cycle": "run", "description": self.description,
            "type": "action", "user": "", "resources": copy.deepcopy(self.resources), "schedule_task": None,
            "one_time_task": None, "ctime": self.ctime, "task_list": [], "queue": None, "resource_group": None,
            "event": self._event(),
            "message": msg,
            "error": {"code": EC_JOB_FAILED, "msg": msg} if failed else None,
        }


class JobBoard:
    """The cluster's jobs (``jobs``: id -> :class:`Job`) and their timing tunables."""

    def __init__(self, ctx: ClusterContext):
        self.ctx = ctx
        self.jobs: dict[str, Job] = {}
        self.pending_s = JOB_PENDING_S
        self.running_s = JOB_RUNNING_S
        # the word a failed job's state shows: the guide's jobs end done (or failed); real clusters also report
        # error / aborted (issue 12 item 9): a client must stop polling on each
        self.failed_state = "failed"
        self._effects: dict[str, tuple[Apply, Undo | None]] = {}

    def on(self, action: str, apply: Apply, undo: Undo | None = None) -> None:
        """Register what a job of ``action`` does when it ends done (``apply``) or failed (``undo``)."""
        self._effects[action] = (apply, undo)

    def new(self, description: str, event_name: str, action: str, args: dict, *, outcome: str | None = None,
            outcome_msg: str | None = None, rule: str | None = None, resources: dict | None = None,
            message: tuple[str, str] = ("", ""), detail: tuple[str, str] = ("", ""),
            data: dict | None = None) -> Job:
        """A new job (call with the lock held). ``outcome`` "stuck" | "fail": an operation fault rule
        (``rule``) makes it stay running / fail with ``outcome_msg``."""
        clock = self.ctx.clock
        job = Job(job_id=str(uuid.uuid4()), description=description, event_name=event_name, action=action,
                  args=args, created=clock.now(), ctime=int(clock.wall()), resources=resources or {},
                  event_message={"zh_CN": message[0], "en_US": message[1]},
                  event_detail={"zh_CN": detail[0], "en_US": detail[1]}, event_data=data or {},
                  pending_s=self.pending_s, running_s=self.running_s, failed_word=self.failed_state)
        if outcome in OUTCOMES:
            job.fault, job.fault_msg, job.fault_rule = outcome, outcome_msg, rule
        self.jobs[job.job_id] = job
        return job

    def view(self, job_id: str) -> dict:
        with self.ctx.lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise not_found(f"job {job_id} not found")
            return job.view(self.ctx.clock.now())

    def settle(self) -> list[Hook]:
        """End the jobs whose time is up (effects applied under the lock); returns the hooks (events)
        to run once the lock is released."""
        hooks: list[Hook] = []
        now = self.ctx.clock.now()
        with self.ctx.lock:
            for job in self.jobs.values():
                if job.applied:
                    continue
                state = job.timed_state(now)
                if state in ("pending", "running"):
                    continue
                hook = self._end(job, state)
                if hook is not None:
                    hooks.append(hook)
        return hooks

    def _end(self, job: Job, state: str) -> Hook | None:
        job.applied = True
        job.finished_at = job.created + job.pending_s + job.running_s
        apply, undo = self._effects.get(job.action, (None, None))
        if state == "failed":
            job.outcome = "failed"
            job.message = job.fault_msg or f"job {job.description} failed (simulated failure)"
        else:
            try:
                hook = apply(job) if apply is not None else None
                job.outcome = "done"
                return hook
            except FisheyeError as exc:
                job.outcome, job.message = "failed", exc.msg
        if undo is not None:
            undo(job)
        return None
