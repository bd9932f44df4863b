"""The cluster management API family ("fisheye", guide §03) as a :class:`mocks.family.Family`."""
from __future__ import annotations

from ..family import Family
from .models import FisheyeModel
from .responses import FisheyeApp

VIP_PORTS = ((80, "http"), (443, "https"))      # fisheye on the VIP; tcp/22 belongs to the SSH family


class FisheyeFamily(Family):
    """Serves fisheye on every host's 80/443 (answers once deployed) and on the VIP.

    Reacts to ``deployed`` (a successful deployment brings fisheye up) and to its own
    ``vip_changed``: the old VIP stops answering; the new one serves every family's ``vip`` apps."""

    name = "fisheye"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.model = FisheyeModel(sim.clock, sim.deployment, secrets=sim.requests.secrets, events=sim.events,
                                  is_alive=sim.hub.is_alive)
        self.app = FisheyeApp(self.model)

    def apps_for(self, role: str, port: int) -> list:
        return [self.app] if role in ("host-mgmt", "vip") and port in (80, 443) else []

    def attach(self) -> None:
        self.sim.events.on("deployed", self._on_deployed)
        self.sim.events.on("vip_changed", self._on_vip_changed)
        plan = self.sim.plan
        if plan is not None:
            self.model.set_bmc_credentials({str(h.mgmt_ip): (_str(h.bmc_ip), h.bmc_user, h.bmc_password)
                                            for h in plan.hosts if h.mgmt_ip is not None})

    def _on_deployed(self, op, state: str) -> None:
        self.model.on_deployment(op, state)

    def _on_vip_changed(self, old: str | None, new: str | None) -> None:
        hub = self.sim.hub
        for port, scheme in VIP_PORTS:
            if old:
                ep = hub.endpoint(old, port)
                if ep is not None and ep.up and self.app in ep.apps:
                    hub.set_up(old, port, False, proto="tcp")
            if new:
                hub.add_tcp(new, port, scheme=scheme, apps=self.sim.apps_for("vip", port), up=False, role="vip")
                hub.set_up(new, port, True, proto="tcp")


def _str(v) -> str | None:
    return None if v is None else str(v)
