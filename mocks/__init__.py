"""SMTX OS world simulator (moto-style): models apart from HTTP routes, one package/module per API family.

Public entry point: :class:`mocks.server.Simulator` (``Simulator.from_plan(plan, ...)``).
Run standalone: ``python -m mocks serve --plan PLAN.xlsx``.
"""
from .clock import SimClock
from .deployment.models import DEFAULT_DEPLOY_TOKEN, DEPLOY_STAGES, DISK_LAYOUTS
from .faults import FaultRule, Faults
from .reqlog import RequestLog, RequestRecord
from .server import Simulator, format_address_map

__all__ = ["DEFAULT_DEPLOY_TOKEN", "DEPLOY_STAGES", "DISK_LAYOUTS", "FaultRule", "Faults", "RequestLog",
           "RequestRecord", "SimClock", "Simulator", "format_address_map"]
