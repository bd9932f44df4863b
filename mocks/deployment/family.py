"""The SMTX OS deployment API family (guide §01/§02) as a :class:`mocks.family.Family`."""
from __future__ import annotations

from ..family import Family
from .models import DeploymentModel
from .responses import DeploymentApp


class DeploymentFamily(Family):
    """Hosts before and after deployment; serves the deployment routes on every host's 80/443.

    Emits ``deployed`` (``op``, ``state``) when a deployment ends."""

    name = "deployment"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.model = DeploymentModel(sim.clock, secrets=sim.requests.secrets, events=sim.events)
        self.app = DeploymentApp(self.model, lambda: sim.deploy_token)

    def apps_for(self, role: str, port: int) -> list:
        return [self.app] if role == "host-mgmt" and port in (80, 443) else []
