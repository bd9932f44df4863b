"""VMs of the simulated cluster (guide §04, the CloudTower VM): models + HTTP routes + wiring.

    from mocks.vms import install
    install(sim)          # once, right after seeding (Simulator.from_plan does it): sim.vms, routes mounted

Wiring (no change to fisheye's code):

* ``sim.vms`` / ``sim.state.vms``: the :class:`VmsModel` (registered as family ``vms``; registered
  before the SSH family so that on restore a guest's SSH service exists when SSH accounts are restored);
* the :class:`VmsApp` routes are added to every endpoint that serves fisheye (hosts' tcp/80 and 443),
  and to the VIP's when a VIP is applied (fisheye's ``vip_hook`` is chained);
* fisheye's ``settle`` is chained so that polling a VM job (``GET /api/v2/jobs/{id}``) applies the
  VM's effects at once (the job shows ``done`` -> the guest already has its address);
* when a guest takes an address: the address answers ping; a CloudTower guest's SSH (tcp/22) comes up
  with ``cloudtower`` / ``HC!r0cks`` (``mocks.ssh.attach_ssh``); an address it gave up goes down.
"""
from __future__ import annotations

import logging

from .models import (CLOUDTOWER_SSH_DEFAULT, CLOUDTOWER_SSH_USER, DEFAULT_OS_INSTALL_S, GA_NOT_RUNNING, GA_RUNNING,
                     Vm, VmsModel, guest_flavour, vm_mac)
from .responses import VmsApp

log = logging.getLogger("mocks")

__all__ = ["CLOUDTOWER_SSH_DEFAULT", "CLOUDTOWER_SSH_USER", "DEFAULT_OS_INSTALL_S", "GA_NOT_RUNNING", "GA_RUNNING",
           "Vm", "VmsApp", "VmsModel", "guest_flavour", "install", "vm_mac"]


def chain_settle(sim, fn) -> None:
    """Run ``fn()`` after fisheye's own settle (every fisheye request and job poll settles)."""
    fe = sim.fisheye
    inner = fe.settle

    def settle() -> None:
        inner()
        fn()

    fe.settle = settle


def install(sim) -> VmsModel:
    """Wire the VMs family into a simulator (idempotent)."""
    existing = sim.state.families.get("vms")
    if existing is not None:
        return existing
    model: VmsModel = sim.state.register("vms", VmsModel(sim.clock, sim.fisheye, sim.deployment))
    sim.vms = model
    app = VmsApp(model, sim.fisheye_app)
    sim.vms_app = app
    for ep in sim.hub.endpoints():
        if sim.fisheye_app in ep.apps and app not in ep.apps:
            ep.apps.append(app)
    vip_hook = sim.fisheye.vip_hook

    def on_vip(old, new) -> None:
        if vip_hook is not None:
            vip_hook(old, new)
        for ep in sim.hub.endpoints():
            if ep.address == new and sim.fisheye_app in ep.apps and app not in ep.apps:
                ep.apps.append(app)

    sim.fisheye.vip_hook = on_vip
    chain_settle(sim, model.settle)

    def on_address(vm: Vm, old: str | None, new: str) -> None:
        from ..ssh import attach_ssh

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

    model.address_hooks.append(on_address)
    return model
