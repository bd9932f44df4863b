"""VMs of the simulated cluster (guide §04, the CloudTower VM): models, HTTP routes, family."""
from __future__ import annotations

from .family import VmsFamily
from .models import (CLOUDTOWER_SSH_DEFAULT, CLOUDTOWER_SSH_USER, DEFAULT_OS_INSTALL_S, GA_NOT_RUNNING, GA_RUNNING, Vm,
                     VmsModel, guest_flavour, vm_mac)
from .responses import VmsApp

__all__ = ["CLOUDTOWER_SSH_DEFAULT", "CLOUDTOWER_SSH_USER", "DEFAULT_OS_INSTALL_S", "GA_NOT_RUNNING", "GA_RUNNING",
           "Vm", "VmsApp", "VmsFamily", "VmsModel", "guest_flavour", "vm_mac"]
