"""What a CloudTower learns from the SMTX OS cluster it connects to.

Read live from the simulator's ``fisheye`` family (and the deployment's hosts) every time a view is
built, so a VDS created on the cluster after the connection shows up in ``get-vdses`` (the real
CloudTower syncs periodically; the simulator syncs on every read). CloudTower only ever reaches the
cluster through the simulated network: an address whose tcp/443 is down cannot be connected.
"""
from __future__ import annotations

import ipaddress
from typing import Any

# ClusterConnectorErrorCode (cloudtower-sdk): why a connection fails
LOAD_CLUSTER_FAILED = "LOAD_CLUSTER_FAILED"
LOAD_CLUSTER_NETWORK_ERROR = "LOAD_CLUSTER_NETWORK_ERROR"
LOAD_CLUSTER_NOT_FOUND = "LOAD_CLUSTER_NOT_FOUND"
LOAD_CLUSTER_UNAUTHORIZED = "LOAD_CLUSTER_UNAUTHORIZED"

# fisheye VLAN type numbers -> CloudTower NetworkType
_VLAN_TYPES = {1: "MANAGEMENT", 2: "STORAGE", 3: "VM"}
_VDS_TYPES = {"mgt": "MANAGEMENT", "storage": "STORAGE"}


class SmtxSource:
    """Adapter over a :class:`mocks.server.Simulator` (duck-typed: ``state.families``, ``hub``)."""

    def __init__(self, sim: Any):
        self.sim = sim

    @property
    def fisheye(self):
        return self.sim.state.families.get("fisheye")

    @property
    def deployment(self):
        return self.sim.state.families.get("deployment")

    def probe(self, ip: str, username: Any, password: Any) -> tuple[str, str] | None:
        """``None`` when CloudTower can connect to ``ip`` with these credentials, else
        ``(ClusterConnectorErrorCode, message)``."""
        ep = self.sim.hub.endpoint(ip, 443, "tcp")
        if ep is None or not ep.up:
            return LOAD_CLUSTER_NETWORK_ERROR, f"cannot reach {ip}:443 (connection refused or no route)"
        fe = self.fisheye
        if fe is None:
            return LOAD_CLUSTER_NOT_FOUND, f"no SMTX OS cluster answers at {ip}"
        fe.settle()
        if not fe.serves(ip):
            return LOAD_CLUSTER_NOT_FOUND, f"no SMTX OS cluster answers at {ip}"
        if username != "root" or not isinstance(password, str) or not fe.check_root_password(password):
            return (LOAD_CLUSTER_UNAUTHORIZED,
                    f"the cluster at {ip} rejected user {username!r}: wrong username or password")
        return None

    def reachable(self, ip: str) -> bool:
        """Whether a cluster CloudTower connected to still answers at ``ip``: its tcp/443 up and fisheye
        serving there. False turns a CONNECTED cluster DISCONNECTED (``LOAD_CLUSTER_NETWORK_ERROR``).
        Reads only (the dispatcher settles every family before each request)."""
        ep = self.sim.hub.endpoint(ip, 443, "tcp")
        if ep is None or not ep.up:
            return False
        fe = self.fisheye
        return fe is not None and fe.active and fe.serves(ip)

    def info(self, ip: str) -> dict | None:
        """The cluster's facts as CloudTower shows them, or None when nothing answers at ``ip`` any more."""
        fe = self.fisheye
        if fe is None or not fe.active:
            return None
        fe.settle()
        with fe.lock:
            cluster = dict(fe.cluster or {})
            settings = dict(fe.settings)
            vdses = list(fe.vdses.values())
            vlans = list(fe.vlans.values())
        hosts = fe.cluster_hosts()
        lic = fe.license()
        netmask = None
        if cluster.get("mgmt_subnet"):
            try:
                netmask = str(ipaddress.IPv4Network(cluster["mgmt_subnet"]).netmask)
            except ValueError:
                netmask = None
        return {
            "name": cluster.get("name"),
            "version": hosts[0].version if hosts else "6.2.0",
            "hosts": [{"local_id": h.host_uuid, "name": h.hostname, "management_ip": h.mgmt_ip,
                       "data_ip": h.storage_ip, "version": h.version, "is_all_flash": h.is_all_flash}
                      for h in hosts],
            "is_all_flash": bool(hosts) and all(h.is_all_flash for h in hosts),
            "dns": list(settings.get("dns_servers") or []),
            "ntp_mode": str(settings.get("ntp_mode") or "internal").upper(),
            "ntp_servers": list(settings.get("ntp_servers") or []),
            "management_vip": settings.get("management_vip"),
            "iscsi_vip": settings.get("iscsi_vip"),
            "mgt_gateway": cluster.get("gateway"),
            "mgt_netmask": netmask,
            "recommended_cpu_models": fe.recommended_cpu_models(),
            "current_cpu_model": settings.get("cpu_model") or "host_passthrough",
            "license": {"serial": lic["serial"], "type": lic["license_type"], "edition": lic["software_edition"],
                        "sign_date": lic["sign_date"], "period": lic["period"], "max_chunk_num": lic["max_chunk_num"]},
            "vdses": [{"local_id": v.uuid, "name": v.name, "bond_mode": v.bond_mode, "ovsbr_name": v.ovsbr_name,
                       "type": _VDS_TYPES.get(v.role, "VM"), "internal": False,
                       "nics": sorted({n for h in v.hosts.values() for n in h.get("nics", [])})}
                      for v in vdses if v.ready],
            "vlans": [{"local_id": v.uuid, "name": v.name, "vds_local_id": v.vds_uuid, "vlan_id": v.vlan_id,
                       "type": _VLAN_TYPES.get(v.type, "VM")} for v in vlans],
        }
