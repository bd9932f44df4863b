"""Fisheye's typed errors (moto-style, see :mod:`mocks.errors`) and their wire codes.

v2 routes answer the SmartX envelope ``{"data": null, "ec": EC, "error": {"msg": ...}}``
(:class:`FisheyeError`); v3 routes answer grpc-gateway style ``{"code", "message", "details": []}``
(:class:`V3Error`). The ``ec`` values are the simulator's (the vendor's own are not documented),
stable for tests. The dispatcher answers a raised error with ``err.response()``.
"""
from __future__ import annotations

from typing import Any

from ..errors import SimError

EC_UNAUTHORIZED = "EUNAUTHORIZED"      # 401: missing / unknown / expired / revoked x-smartx-token
EC_BAD_REQUEST = "EBADREQUEST"         # 400: body is not JSON / not the expected shape
EC_INVALID = "EINVALIDARGUMENT"        # 400: a value failed validation
EC_EXISTS = "EALREADYEXISTS"           # 400: duplicate name / NIC already in a VDS
EC_NOT_FOUND = "ENOTFOUND"             # 404: unknown job / VDS / image
EC_JOB_FAILED = "EJOBFAILED"           # job.error.code of a failed job

GRPC_INVALID_ARGUMENT = 3              # HTTP 400
GRPC_ALREADY_EXISTS = 6                # HTTP 409
GRPC_FAILED_PRECONDITION = 9           # HTTP 400
GRPC_INTERNAL = 13                     # HTTP 500
GRPC_UNAUTHENTICATED = 16              # HTTP 401


class FisheyeError(SimError):
    """A v2 error: answered as ``{"data": null, "ec": ec, "error": {"msg": msg}}`` with ``status``."""

    def __init__(self, ec: str, msg: str, status: int = 400):
        super().__init__(msg, status=status, code=ec)


class V3Error(SimError):
    """A v3 error: answered as ``{"code": code, "message": msg, "details": []}`` with ``status``."""

    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg, status=status)
        self.grpc_code = int(code)

    @property
    def code(self) -> int:                      # type: ignore[override]  (gRPC code, not an ``ec``)
        return self.grpc_code

    @code.setter
    def code(self, value: Any) -> None:         # SimError.__init__ only sets it when given
        self.grpc_code = int(value)

    @property
    def msg(self) -> str:
        return self.message

    def body(self) -> dict:
        return {"code": self.code, "message": self.message, "details": []}


def invalid(msg: str) -> FisheyeError:
    return FisheyeError(EC_INVALID, msg, 400)


def bad_request(msg: str) -> FisheyeError:
    return FisheyeError(EC_BAD_REQUEST, msg, 400)


def not_found(msg: str) -> FisheyeError:
    return FisheyeError(EC_NOT_FOUND, msg, 404)


def v3_invalid(msg: str) -> V3Error:
    return V3Error(400, GRPC_INVALID_ARGUMENT, msg)
