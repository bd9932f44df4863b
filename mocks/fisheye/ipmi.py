"""IPMI accounts (``POST /api/v2/ipmi/upsert_accounts``), checked against the BMC credentials the
world was seeded with (only salted digests of their passwords are kept, in memory)."""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from ..deployment.models import SimHost
from .cluster import ClusterContext

IPMI_PORT = 623
FAILING_OUTCOMES = ("fail", "stuck")     # an operation fault on the call fails every account


@dataclass(frozen=True)
class IpmiAccount:
    """One entry of ``accounts`` (the app checks the shape)."""

    node_uuid: str
    host: str
    user: str
    password: str
    node_name: str | None = None


class Ipmi:
    def __init__(self, ctx: ClusterContext):
        self.ctx = ctx
        self.ipmi_accounts: dict[str, dict] = {}
        self.broken_bmcs: set[str] = set()
        self._bmc: dict[str, tuple[str, str, str]] = {}     # mgmt ip -> (bmc ip, user, salted digest)
        self._bmc_salt = os.urandom(16)

    def set_bmc_credentials(self, creds: dict[str, tuple[str | None, str | None, str | None]]) -> None:
        """``{host mgmt ip: (bmc ip, user, password)}`` from the plan. Only a salted digest of the
        password is kept (in memory; never in snapshots)."""
        with self.ctx.lock:
            for ip, (bmc_ip, user, password) in creds.items():
                if bmc_ip:
                    self._bmc[str(ip)] = (str(bmc_ip), str(user or ""), self._bmc_digest(password or ""))

    def _bmc_digest(self, password: str) -> str:
        return hmac.new(self._bmc_salt, password.encode("utf-8"), hashlib.sha256).hexdigest()

    def break_bmc(self, bmc_ip: str, broken: bool = True) -> None:
        """Make a BMC reject any credentials (``broken=False`` repairs it)."""
        with self.ctx.lock:
            (self.broken_bmcs.add if broken else self.broken_bmcs.discard)(str(bmc_ip))

    def _valid(self, h: SimHost, a: IpmiAccount, is_alive) -> bool:
        bmc = self._bmc.get(h.mgmt_ip)
        return (bmc is not None and a.host == bmc[0] and a.user == bmc[1]
                and hmac.compare_digest(self._bmc_digest(a.password), bmc[2])
                and bmc[0] not in self.broken_bmcs and is_alive(bmc[0]))

    def upsert(self, accounts: list[IpmiAccount], is_alive, *, outcome: str | None = None) -> dict:
        hosts = {h.host_uuid: h for h in self.ctx.cluster_hosts()}
        success, failure = [], []
        for a in accounts:
            item = {"node_uuid": a.node_uuid, "node_name": a.node_name, "host": a.host, "port": IPMI_PORT,
                    "user": a.user, "is_valid": False, "interface": None}
            h = hosts.get(a.node_uuid)
            if h is not None and outcome not in FAILING_OUTCOMES and self._valid(h, a, is_alive):
                item.update(is_valid=True, interface="lanplus")
                success.append(item)
            else:
                failure.append(item)
            if h is not None:
                with self.ctx.lock:
                    self.ipmi_accounts[h.host_uuid] = {k: item[k] for k in ("node_uuid", "node_name", "host", "port",
                                                                            "user", "is_valid")}
        return {"success": success, "failure": failure}
