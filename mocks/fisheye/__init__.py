"""SMTX OS cluster management API ("fisheye", guide §03): models + HTTP routes."""
from .errors import FisheyeError, V3Error
from .models import (DEFAULT_CHUNK_SIZE, DEFAULT_SESSION_TTL, FisheyeModel, Job, Session, Upload, Vds, Vlan,
                     cpu_models_for)
from .responses import FisheyeApp

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_SESSION_TTL", "FisheyeApp", "FisheyeError", "FisheyeModel", "Job",
           "Session", "Upload", "V3Error", "Vds", "Vlan", "cpu_models_for"]
