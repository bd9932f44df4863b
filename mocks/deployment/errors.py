"""The deployment API's error codes and its typed error (moto-style, see :mod:`mocks.errors`).

The vendor's own codes are not documented; these are the simulator's, stable for tests. Every
error is answered as the SmartX envelope ``{"data": null, "ec": EC, "error": {"msg": ...}}``."""
from __future__ import annotations

from ..errors import SimError

EC_UNAUTHORIZED = "EUNAUTHORIZED"        # 401: missing / wrong x-smartx-token
EC_BAD_REQUEST = "EBADREQUEST"           # 400: body is not a JSON object
EC_INVALID = "EINVALIDARGUMENT"          # 400: payload failed validation
EC_NOT_FOUND = "ENOTFOUND"               # 404: not a simulated host
EC_DEPLOYING = "EDEPLOYING"              # 409: a deployment is running
EC_DEPLOYED = "EALREADYDEPLOYED"         # 409: host(s) already deployed
EC_NO_DEPLOYMENT = "EDEPLOYNOTFOUND"     # 400: deploy_status for a host without a deployment
EC_DEPLOY_FAILED = "EDEPLOYFAILED"       # deploy_status body after a failed run (finished_status="error")
EC_INTERNAL = "EINTERNAL"                # 500


class DeployError(SimError):
    """``errors``: every validation problem (``msg`` joins them with ``"; "``)."""

    def __init__(self, ec: str, msg: str, status: int = 400, errors: list[str] | None = None):
        super().__init__(msg, status=status, code=ec)
        self.errors = errors or [msg]
