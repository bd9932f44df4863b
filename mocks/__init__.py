"""SMTX OS world simulator (moto-style): models apart from HTTP routes, one package/module per API family.

Public entry point: :class:`mocks.server.Simulator` (``Simulator.from_plan(plan, ...)``).
Run standalone: ``python -m mocks serve --plan PLAN.xlsx``.
"""
from .core import FaultRule, Faults, RequestLog, RequestRecord, SimClock
from .deployment.models import DEFAULT_DEPLOY_TOKEN, DEPLOY_STAGES, DISK_LAYOUTS
from .server import Simulator, format_address_map

__all__ = ["DEFAULT_DEPLOY_TOKEN", "DEPLOY_STAGES", "DISK_LAYOUTS", "FaultRule", "Faults", "RequestLog",
           "RequestRecord", "SimClock", "Simulator", "format_address_map"]
