"""SMTX OS deployment API family (guide §01/§02): models + HTTP routes."""
from .errors import DeployError
from .hosts import ARCH_DEFAULT_LAYOUT, DISK_LAYOUTS, Disk, Nic, SimHost, build_host
from .models import DEFAULT_DEPLOY_TOKEN, DeploymentModel
from .operations import DEPLOY_STAGES, DeployOperation
from .responses import DeploymentApp

__all__ = ["ARCH_DEFAULT_LAYOUT", "DEFAULT_DEPLOY_TOKEN", "DEPLOY_STAGES", "DISK_LAYOUTS", "DeployError",
           "DeploymentApp", "DeploymentModel", "DeployOperation", "Disk", "Nic", "SimHost", "build_host"]
