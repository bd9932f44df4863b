"""SMTX OS deployment API (guide §01–§02): host scan, cluster deploy, status, verify."""
from __future__ import annotations

from typing import Any

from .base import EnvelopeClient

# The guide's deployment-service token (x-smartx-token) used before the cluster exists.
GUIDE_DEPLOY_TOKEN = "e79b85fc18b7402fbcc0391fe8d7d24c"


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
