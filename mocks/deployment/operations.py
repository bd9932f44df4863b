"""The long operation of ``POST /api/v2/deployment/cluster``: its progress is computed from
simulated time on every read (no threads)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Deployment stages: (stage_info name, realistic duration in simulated seconds); total 15 min.
# The first name is the guide's; the rest are plausible SMTX OS install steps (invented).
DEPLOY_STAGES: tuple[tuple[str, float], ...] = (
    ("prepare_network_and_config_file", 60),
    ("check_host_environment", 30),
    ("config_host_network", 90),
    ("config_hostname_and_time", 30),
    ("init_zookeeper", 60),
    ("init_mongodb", 75),
    ("format_disks_and_partitions", 120),
    ("init_zbs_meta", 90),
    ("init_zbs_chunk", 120),
    ("start_elf_services", 90),
    ("start_management_services", 105),
    ("finish_deployment", 30),
)


# --------------------------------------------------------------------------- the long operation
@dataclass
class DeployOperation:
    id: str
    started: float                       # simulated seconds
    receiving_host: str                  # mgmt IP the POST went to
    host_uuids: tuple[str, ...]
    host_ips: dict[str, str]             # uuid -> host_ip as sent in the payload
    cluster_name: str
    effects: dict[str, dict]             # uuid -> what success changes on the host
    payload: dict                        # redacted copy of the accepted payload
    stages: tuple[tuple[str, float], ...]
    fault: str | None = None             # None | "stuck" | "fail"
    fault_msg: str | None = None
    fault_stage: int | None = None       # 1-based stage where stuck / failing
    fault_rule: str | None = None
    applied: bool = False
    finished_at: float | None = None

    @property
    def total_stages(self) -> int:
        return len(self.stages)

    @property
    def duration(self) -> float:
        return sum(d for _, d in self.stages)

    def progress(self, now: float) -> dict:
        """State at simulated time ``now``: state running|success|failed, current stage, message."""
        elapsed = max(0.0, now - self.started)
        t = 0.0
        for i, (name, dur) in enumerate(self.stages, start=1):
            if self.fault == "stuck" and i == self.fault_stage and elapsed >= t:
                return {"state": "running", "current_stage": i, "stage_info": name, "msg": None}
            if self.fault == "fail" and i == self.fault_stage and elapsed >= t + dur / 2:
                msg = self.fault_msg or f"stage {name} failed (simulated failure)"
                return {"state": "failed", "current_stage": i, "stage_info": name, "msg": msg,
                        "ended": self.started + t + dur / 2}
            if elapsed < t + dur:
                return {"state": "running", "current_stage": i, "stage_info": name, "msg": None}
            t += dur
        last = self.stages[-1][0] if self.stages else ""
        return {"state": "success", "current_stage": len(self.stages), "stage_info": last, "msg": None,
                "ended": self.started + t}

    def to_dict(self, now: float) -> dict:
        p = self.progress(now)
        return {"id": self.id, "started": round(self.started, 3), "receiving_host": self.receiving_host,
                "hosts": list(self.host_uuids), "cluster_name": self.cluster_name, "fault": self.fault,
                "fault_stage": self.fault_stage, "fault_rule": self.fault_rule, "total_stages": self.total_stages,
                "state": p["state"], "current_stage": p["current_stage"], "stage_info": p["stage_info"],
                "msg": p["msg"], "payload": self.payload}


def _op_state(op: DeployOperation) -> dict:
    d = dataclasses.asdict(op)
    d["host_uuids"] = list(op.host_uuids)
    d["stages"] = [list(x) for x in op.stages]
    d["effects"] = {u: dict(fx, vdses=[[name, list(nics)] for name, nics in fx.get("vdses", [])])
                    for u, fx in op.effects.items()}
    return d


def _op_from_state(d: dict) -> DeployOperation:
    d = dict(d)
    d["host_uuids"] = tuple(d.get("host_uuids") or ())
    d["stages"] = tuple((str(n), float(t)) for n, t in d.get("stages") or ())
    d["effects"] = {u: dict(fx, vdses=[(name, list(nics)) for name, nics in fx.get("vdses", [])])
                    for u, fx in (d.get("effects") or {}).items()}
    known = {f.name for f in dataclasses.fields(DeployOperation)}
    return DeployOperation(**{k: v for k, v in d.items() if k in known})
