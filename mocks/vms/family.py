"""VMs of the simulated cluster (guide §04, the CloudTower VM) as a :class:`mocks.family.Family`."""
from __future__ import annotations

import logging

from ..family import Family
from .models import CLOUDTOWER_SSH_DEFAULT, CLOUDTOWER_SSH_USER, Vm, VmsModel
from .responses import VmsApp

log = logging.getLogger("mocks")


class VmsFamily(Family):
    """Serves ``/api/v2/vms`` and ``/api/v2/storage_policies`` wherever fisheye is served (hosts'
    80/443 and the VIP), behind fisheye's gate.

    Emits ``vm_address`` (``vm``, ``old``, ``new``) when a guest takes an address, and reacts to it:
    the address answers ping; a CloudTower guest's SSH (tcp/22) comes up with ``cloudtower`` /
    ``HC!r0cks``; an address it gave up goes down."""

    name = "vms"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.model = VmsModel(sim.clock, sim.fisheye, sim.deployment, events=sim.events)
        self.app = VmsApp(self.model, sim.family("fisheye").app)

    def apps_for(self, role: str, port: int) -> list:
        return [self.app] if role in ("host-mgmt", "vip") and port in (80, 443) else []

    def attach(self) -> None:
        self.sim.events.on("vm_address", self._on_address)

    def _on_address(self, vm: Vm, old: str | None, new: str) -> None:
        from ..ssh import attach_ssh

        sim = self.sim
        if old and old != new:
            for ep in sim.hub.endpoints():
                if ep.address == old and ep.up:
                    sim.hub.set_up(old, ep.port, False, proto=ep.proto)
            sim.set_alive(old, False)
        if vm.flavour == "cloudtower":
            attach_ssh(sim, new, users={CLOUDTOWER_SSH_USER: CLOUDTOWER_SSH_DEFAULT}, up=True,
                       hostname=lambda vm=vm: vm.guest_hostname, role="vm-guest")
        sim.set_alive(new, True)
        log.info("sim vms: VM %s (%s) took address %s", vm.name, vm.uuid, new)
