"""SMTX OS deployment API family (guide §01/§02): models + HTTP routes."""
from .models import (ARCH_DEFAULT_LAYOUT, DEFAULT_DEPLOY_TOKEN, DEPLOY_STAGES, DISK_LAYOUTS, DeployError,
                     DeploymentModel, DeployOperation, Disk, Nic, SimHost, build_host)
from .responses import DeploymentApp

__all__ = ["ARCH_DEFAULT_LAYOUT", "DEFAULT_DEPLOY_TOKEN", "DEPLOY_STAGES", "DISK_LAYOUTS", "DeployError",
           "DeploymentApp", "DeploymentModel", "DeployOperation", "Disk", "Nic", "SimHost", "build_host"]
