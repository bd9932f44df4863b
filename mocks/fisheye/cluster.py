"""What every fisheye sub-model shares: the clock, the one lock, the deployment's hosts and the
deployed cluster (``None`` until a deployment succeeds), plus small value helpers."""
from __future__ import annotations

import datetime as _dt
import ipaddress
import re
import threading

from clients.ipaddr import ipv4

from ..clock import SimClock
from ..deployment.models import DeploymentModel, DeployOperation, SimHost
from ..events import Events

HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                         r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


def rfc3339_nano(ns: int) -> str:
    """``2025-09-27T22:38:57.921456349Z`` (nanoseconds, as the guide's session sample)."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    t = _dt.datetime.fromtimestamp(sec, tz=_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{frac:09d}Z"


def mgt_network(payload: dict) -> dict:
    return next((n for n in payload.get("networks", []) if isinstance(n, dict) and n.get("network_type") == "mgt"),
                {})


def _mgmt_subnet(cfg: dict) -> str | None:
    for s in cfg.get("service") or []:
        try:
            return str(ipaddress.IPv4Interface(f"{s['service_interface_ip']}/{s['netmask']}").network)
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _gateway(cfg: dict) -> str | None:
    for r in cfg.get("route") or []:
        if isinstance(r, dict) and ipv4(r.get("gateway")):
            return str(ipv4(r["gateway"]))
    return None


class ClusterContext:
    """Shared by the sub-models of one :class:`~mocks.fisheye.models.FisheyeModel`."""

    def __init__(self, clock: SimClock, deployment: DeploymentModel, events: Events, secrets: set[str]):
        self.clock = clock
        self.deployment = deployment
        self.events = events
        self.secrets = secrets
        self.lock = threading.RLock()
        self.cluster: dict | None = None

    @property
    def cluster_name(self) -> str:
        return self.cluster["name"] if self.cluster else ""

    def activate(self, op: DeployOperation) -> None:
        """The cluster of a successful deployment: hosts, management subnet and gateway."""
        cfg = mgt_network(op.payload or {}).get("network_config") or {}
        self.cluster = {"name": op.cluster_name, "hosts": list(op.host_uuids), "operation": op.id,
                        "mgmt_subnet": _mgmt_subnet(cfg), "gateway": _gateway(cfg),
                        "activated_wall": int(self.clock.wall())}

    def cluster_hosts(self) -> list[SimHost]:
        if self.cluster is None:
            return []
        hosts = [self.deployment.host_by_uuid(u) for u in self.cluster["hosts"]]
        return [h for h in hosts if h is not None and h.deployed]

    @staticmethod
    def host_label(h: SimHost) -> str:
        return f"{h.hostname} ({h.mgmt_ip}, {h.host_uuid})"
