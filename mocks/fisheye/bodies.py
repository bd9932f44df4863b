"""Request bodies of the fisheye routes -> the models' typed arguments.

The app (``responses.py``) parses JSON and calls these; they check the *shape* of a body (what the
real API answers ``EBADREQUEST`` / v3 ``INVALID_ARGUMENT`` for) and return typed values. Checks of
the values against the cluster (IPs in subnets, NICs on hosts, duplicates) are the models'."""
from __future__ import annotations

from typing import Any

from .errors import bad_request, invalid, v3_invalid
from .ipmi import IpmiAccount
from .network import VdsMember, check_bond_mode

_ENCRYPTED = "encrypted passwords are not supported by the simulator; send encrypted=false"
_NOT_OBJECT = "request body must be a JSON object"


def _v3_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise v3_invalid(_NOT_OBJECT)
    if body.get("encrypted"):
        raise v3_invalid(_ENCRYPTED)
    return body


def _strings(body: dict, *keys: str) -> bool:
    return all(isinstance(body.get(k), str) for k in keys)


# ---- v3
def setup_root(body: Any) -> tuple[str, str]:
    """``{"password", "repeat", "encrypted": false}`` -> (password, repeat)."""
    body = _v3_object(body)
    if not _strings(body, "password", "repeat"):
        raise v3_invalid("password and repeat are required strings")
    return body["password"], body["repeat"]


def login(body: Any) -> tuple[str, str]:
    """``{"username", "password", "encrypted": false}`` -> (username, password)."""
    body = _v3_object(body)
    if not _strings(body, "username", "password"):
        raise v3_invalid("username and password are required strings")
    return body["username"], body["password"]


# ---- settings
def vip(body: Any) -> tuple[Any, Any]:
    """``{"iscsi_vip", "management_vip"}`` -> (management_vip, iscsi_vip)."""
    if not isinstance(body, dict) or "management_vip" not in body:
        raise bad_request('body must be {"iscsi_vip": ..., "management_vip": ...}')
    return body.get("management_vip"), body.get("iscsi_vip")


def dns(body: Any) -> list:
    servers = body.get("dns_servers") if isinstance(body, dict) else None
    if not isinstance(servers, list):
        raise bad_request('body must be {"dns_servers": ["IP", ...]}')
    return servers


def ntp(body: Any) -> tuple[Any, list]:
    """-> (ntp_mode, ntp_servers)."""
    if not isinstance(body, dict) or not isinstance(body.get("ntp_servers", []), list):
        raise bad_request('body must be {"ntp_mode": "external", "ntp_servers": [...]}')
    return body.get("ntp_mode"), body.get("ntp_servers") or []


def cpu(body: Any) -> str:
    model = body.get("cpu_model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model:
        raise bad_request('body must be {"cpu_model": "..."}')
    return model


# ---- IPMI
def ipmi_accounts(body: Any) -> list[IpmiAccount]:
    accounts = body.get("accounts") if isinstance(body, dict) else None
    if not isinstance(accounts, list):
        raise bad_request('body must be {"accounts": [...]}')
    out = []
    for i, a in enumerate(accounts):
        if not isinstance(a, dict) or not _strings(a, "node_uuid", "host", "user", "password"):
            raise invalid(f"accounts[{i}] needs string node_uuid, host, user and password")
        out.append(IpmiAccount(a["node_uuid"], a["host"], a["user"], a["password"], a.get("node_name")))
    return out


# ---- network
def vds(body: Any) -> tuple[str, Any, list[VdsMember]]:
    """``{"name", "bond_mode", "hosts_associated": [{host_uuid, nics_associated, data_ip}]}``."""
    if not isinstance(body, dict):
        raise bad_request(_NOT_OBJECT)
    name, bond, assoc = body.get("name"), body.get("bond_mode"), body.get("hosts_associated")
    if not isinstance(name, str) or not name.strip():
        raise invalid("name is required")
    check_bond_mode(bond)
    if not isinstance(assoc, list) or not assoc:
        raise invalid("hosts_associated must be a non-empty list")
    members = [VdsMember(a.get("host_uuid"), a.get("nics_associated"), a.get("data_ip")) if isinstance(a, dict)
               else VdsMember(None, None) for a in assoc]
    return name, bond, members


def vlan(body: Any) -> tuple[Any, Any, Any]:
    """``{"name", "vlan_id", "vds_uuid"}`` -> (name, vlan_id, vds_uuid); values checked by the model."""
    if not isinstance(body, dict):
        raise bad_request(_NOT_OBJECT)
    return body.get("name"), body.get("vlan_id"), body.get("vds_uuid")
