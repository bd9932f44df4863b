"""Simulated CloudTower (guide §04–§06): GraphQL ``POST /api`` and REST ``POST /v2/api/*`` on
``(ip, 443)``, the http->https redirect on ``(ip, 80)``.

Entry point: :func:`mocks.cloudtower.service.start` (``start(sim, ip, *, setup=None, warmup=0.0)``).
The family (:class:`CloudTowerService`) is always there; it holds no tower until one is started.
"""
from .models import (DEFAULT_ROOT_PASSWORD, ENCODED_PASSWORDS, GUIDE_ENCODED_LOGIN_PASSWORD,
                     GUIDE_ENCODED_ROOT_PASSWORD, CloudTowerFamily, CloudTowerModel, GqlError, RestError)
from .service import CloudTowerService, attach, start, stop

__all__ = ["CloudTowerFamily", "CloudTowerModel", "DEFAULT_ROOT_PASSWORD", "ENCODED_PASSWORDS",
           "GUIDE_ENCODED_LOGIN_PASSWORD", "GUIDE_ENCODED_ROOT_PASSWORD", "GqlError", "RestError", "attach",
           "CloudTowerService", "start", "stop"]
