"""SMTX OS deployment API (guide §01–§02): host scan, cluster deploy, status, verify."""
from __future__ import annotations

import time
from typing import Any

from .base import EnvelopeClient
from .poll import Pacing

# The guide's deployment-service token (x-smartx-token) used before the cluster exists.
GUIDE_DEPLOY_TOKEN = "e79b85fc18b7402fbcc0391fe8d7d24c"

# deploy_status right after the POST may not show the deployment yet (the older tool, which ran on real clusters,
# waited 10 s before its first poll): that long a status other than running means "not yet", not "ended".
START_GRACE = 60               # guide seconds
START_POLL = 5
# deploy_verify may lag the end of the deployment: the older tool asked up to 12 times, 5 s apart.
VERIFY_TRIES, VERIFY_INTERVAL = 12, 5


def deploy_state(status: Any) -> str | None:
    """``data.state`` of a deploy_status body (``running`` / ``success`` / ``failed``), None for anything else
    (an error envelope: no task known yet, or the service's unreliable answer after the end, guide line 482)."""
    data = status.get("data") if isinstance(status, dict) else None
    return data.get("state") if isinstance(data, dict) else None


class DeploymentClient(EnvelopeClient):
    family = "deployment"
    default_hint = ("检查主机是否已安装 SMTX OS 且部署服务可达（http/https）/ check that the host runs the SMTX OS "
                    "installer image and its deployment service is reachable")

    def __init__(self, host_ip: str, *, token: str = GUIDE_DEPLOY_TOKEN, **kw):
        self.host_ip = str(host_ip)
        headers = {"x-smartx-token": token, "content-type": "application/json"}
        super().__init__(f"http://{self.host_ip}", headers=headers, **kw)

    def scan_host(self) -> dict[str, Any]:
        return self.call("GET", "/api/v2/deployment/host")

    def scan_cluster(self) -> list[dict[str, Any]]:
        """GET /api/v2/deployment/cluster (guide lines 26-45): the layer-2 scan through this host's storage NIC;
        each host's scan with the ``host_ip`` the deploy payload takes. Empty with LACP bonds or VLAN sub-interfaces
        (guide line 28), so the per-host scan stays the source of everything else."""
        data = self.call("GET", "/api/v2/deployment/cluster")
        hosts = data.get("hosts") if isinstance(data, dict) else None
        return [h for h in hosts or [] if isinstance(h, dict)]

    def deploy(self, payload: dict[str, Any]) -> Any:
        return self.call("POST", "/api/v2/deployment/cluster", json_body=payload, timeout=120,
                         hint="部署请求被拒绝：按返回的错误修正规划表或主机状态后用 --resume 重跑 / the deploy request was "
                              "rejected: fix the plan or host as the error says, then rerun with --resume")

    def deploy_status(self, host_ip: str | None = None) -> dict[str, Any]:
        """Raw body: callers only look for state == running (the guide says to ignore anything else)."""
        resp = self.request("GET", "/api/v2/deployment/host/deploy_status",
                            params={"host_ip": host_ip or self.host_ip})
        try:
            return resp.json()
        except ValueError:
            return {"status": resp.status_code}

    def deploy_verify(self) -> dict[str, Any]:
        return self.call("GET", f"https://{self.host_ip}/api/v2/deployment/deploy_verify")

    def await_start(self, host_ip: str, pacing: Pacing, *, grace: float = START_GRACE) -> dict[str, Any]:
        """deploy_status until it shows the deployment (running, or already ended) or ``grace`` guide seconds pass;
        the last answer. Right after the POST a status that is not running yet means "not registered yet"."""
        deadline = time.monotonic() + grace * pacing.scale
        while True:
            status = self.deploy_status(host_ip)
            if deploy_state(status) in ("running", "success", "failed") or time.monotonic() >= deadline:
                return status
            pacing.sleep(START_POLL)

    def verify_deployed(self, pacing: Pacing, *, tries: int = VERIFY_TRIES,
                        interval: float = VERIFY_INTERVAL) -> dict[str, Any]:
        """deploy_verify, asked again (``tries`` x ``interval`` guide seconds) while it says not deployed: it may
        lag the end of the deployment. The last answer."""
        for attempt in range(1, tries + 1):
            verify = self.deploy_verify()
            if verify.get("is_deployed") is True or attempt == tries:
                return verify
            pacing.sleep(interval)
        return {}
