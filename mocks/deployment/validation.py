"""Validation of a ``POST /api/v2/deployment/cluster`` payload, as a real installer would do it.

Two layers, applied in the payload's order so every problem is reported (joined with ``"; "``):

* **declarative** -- :class:`~.schema.Field` rules (:mod:`.schema`): a (dotted) path, a type / format /
  enum test and the message; ``when`` makes a rule conditional, ``fatal`` stops checking that object.
  The tables :data:`TOP_FIELDS`, :data:`HOST_FIELDS`, :data:`VDS_FIELDS` and :data:`NETWORK_FIELDS` are the schema;
* **semantic** -- :class:`Check` functions over the scanned hosts: host uuids exist, NICs and disks
  are on the host, IPs match the host and are not reused, one service entry per host, ...

:func:`validate` returns ``(errors, effects)``: what success will change on each host.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable

from .hosts import SimHost
from .schema import (Check, Field, Rule, Subject, absent_or, apply, hostname, ipv4, is_bool, is_ip, is_list, is_str,
                     iso_time, list_of, netmask_ok, nonblank_str, nonempty_list, null_or, one_of, passwords_for,
                     required, truthy_str, value_at, vlan_ids)

BOND_MODES = ("active-backup", "balance-slb", "balance-tcp")
REQUIRED_TOP = ("platform", "cluster_name", "dns_server", "vdses", "networks", "hosts", "ntp",
                "vhost_enabled", "rdma_enabled")
REQUIRED_HOST = ("host_ip", "host_uuid", "hostname", "disk_data_with_cache", "host_passwords", "tags",
                 "ifaces", "disks", "is_master", "with_faster_ssd_as_cache")
NTP_MODES = ("internal", "external")
SYSTEM_NETWORKS = ("mgt", "storage")
MASTER_COUNTS = (3, 5)


class _Run:
    """State of one validation: the hosts and vdses seen so far (semantic checks consult them)."""

    def __init__(self, payload: dict, address: str, host_by_uuid: Callable[[str], SimHost | None],
                 l2_host_ips: dict[str, set[str]] | None = None):
        self.p, self.address, self.host_by_uuid = payload, address, host_by_uuid
        self.l2_host_ips = l2_host_ips or {}          # host uuid -> host_ip strings a layer-2 scan reports
        self.hosts: dict[str, SimHost] = {}           # uuid -> sim host
        self.entries: dict[str, dict] = {}            # uuid -> payload entry
        self.names: dict[str, str] = {}               # hostname (lower) -> mgmt ip
        self.ips: dict[str, str] = {}                 # ip -> "mgmt ip/function"
        self.vds_nics: dict[str, dict[str, list[str]]] = {}     # vds -> uuid -> nics
        self.used: dict[tuple[str, str], str] = {}    # (uuid, nic) -> vds
        self.seen_types: dict[str, str] = {}          # mgt / storage -> network name


# --------------------------------------------------------------------------- semantic checks: hosts
def _unique_hostname(s: Subject, run: _Run) -> list[str]:
    hn = s.obj["hostname"]
    if not hostname(hn):
        return []                                  # reported by the hostname field rule
    if hn.lower() in run.names:
        return [f"{s.where}: hostname {hn} already used by {run.names[hn.lower()]}"]
    run.names[hn.lower()] = s.host.mgmt_ip
    return []


def _host_ip(s: Subject, run: _Run) -> list[str]:
    where, h, value = s.where, s.host, s.obj["host_ip"]
    if not isinstance(value, str) or not value:
        return [f"{where}: host_ip must be a non-empty string"]
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return [f"{where}: host_ip {value!r} is not an IP address (expected the scanned IPv6 link-local"
                f"%interface or the management IP)"]
    if ip.version == 4 and str(ip) != h.mgmt_ip:
        return [f"{where}: host_ip {value} is not this host's management IP {h.mgmt_ip}"]
    if ip.version == 6 and str(ip) not in h.addresses_v6():
        return [f"{where}: host_ip {value} is not an address of host {h.host_uuid}"]
    if ip.version == 6 and ip.is_link_local:
        return _host_ip_zone(where, h, ip, value, run)
    return []


def _host_ip_zone(where: str, h: SimHost, ip: ipaddress.IPv6Address, value: str, run: _Run) -> list[str]:
    """A link-local ``host_ip`` needs the zone one of the two sources gives: the layer-2 scan's string verbatim
    (examples/scan-cluster-response.json; every captured payload in examples/ reuses it, zone and all), or the
    per-host scan (``GET /api/v2/deployment/host``; the annotated payload: "ipv6地址和网卡来源于主机扫描结果"): a
    management NIC's link-local with that NIC, or with another NIC of the management bond, as the guide's own
    payload has it (line 198: ens224's address ``…:9440`` with ``%ens192``; lines 285, 372). The L2 scan finds
    nothing with LACP or VLAN sub-interfaces (guide line 28, field notes): then only the per-host form exists."""
    zone = value.split("%", 1)[1] if "%" in value else ""
    if not zone:
        return [f"{where}: host_ip {value} is a link-local address without its %interface"]
    own = next((n.name for n in h.nics if n.ipv6 and ipaddress.ip_address(n.ipv6) == ip), None)
    if zone == own or value in run.l2_host_ips.get(h.host_uuid, set()):
        return []
    if own in h.mgmt_nics and zone in h.mgmt_nics:
        return []
    l2 = sorted(run.l2_host_ips.get(h.host_uuid, set()))
    return [f"{where}: host_ip {value}: zone %{zone} is neither the NIC that carries {ip} on host {h.mgmt_ip} "
            f"(%{own}) nor what the layer-2 scan reports for it ({', '.join(l2) or 'the scan finds nothing'})"]


def _ifaces(s: Subject, run: _Run) -> list[str]:
    where, h, ifaces = s.where, s.host, s.obj["ifaces"]
    if not isinstance(ifaces, list):
        return [f"{where}: ifaces must be a list"]
    errs, funcs = [], {}
    for x in ifaces:
        if not isinstance(x, dict) or not ipv4(x.get("ip")) or not isinstance(x.get("function"), str):
            errs.append(f"{where}: ifaces entries need an IPv4 'ip' and a 'function', got {x!r}")
            continue
        funcs[x["function"]] = x["ip"]
        if x["ip"] in run.ips:
            errs.append(f"{where}: IP {x['ip']} is also used by {run.ips[x['ip']]}")
        run.ips[x["ip"]] = f"{h.mgmt_ip}/{x['function']}"
    errs.extend(f"{where}: ifaces needs an entry with function {f!r}" for f in SYSTEM_NETWORKS if f not in funcs)
    if "mgt" in funcs and funcs["mgt"] != h.mgmt_ip:
        errs.append(f"{where}: mgt iface IP {funcs['mgt']} differs from the host's management IP {h.mgmt_ip} "
                    f"(the simulator cannot re-address a host)")
    return errs


def _disk(where: str, h: SimHost, d: Any, seen: set[str]) -> list[str]:
    if not isinstance(d, dict) or not isinstance(d.get("drive"), str):
        return [f"{where}: disk entries need a 'drive', got {d!r}"]
    drive = d["drive"]
    disk = h.disk(drive)
    if disk is None:
        return [f"{where}: disk {drive} does not exist on host {h.mgmt_ip}"]
    errs = [f"{where}: disk {drive} listed twice"] if drive in seen else []
    seen.add(drive)
    if disk.function == "boot":
        errs.append(f"{where}: disk {drive} is the boot disk and cannot be used for cache or data")
    if d.get("function") not in ("cache", "data"):
        errs.append(f"{where}: disk {drive} function must be 'cache' or 'data', got {d.get('function')!r}")
    for key, scanned in (("type", disk.type), ("size", disk.size)):
        if key in d and d[key] != scanned:
            errs.append(f"{where}: disk {drive} {key} {d[key]!r} does not match the scan ({scanned})")
    return errs


def _disks(s: Subject, run: _Run) -> list[str]:
    where, disks = s.where, s.obj["disks"]
    if not isinstance(disks, list) or not disks:
        return [f"{where}: disks must be a non-empty list"]
    errs: list[str] = []
    seen: set[str] = set()
    for d in disks:
        errs.extend(_disk(where, s.host, d, seen))
    if not any(isinstance(d, dict) and d.get("function") == "data" for d in disks):
        errs.append(f"{where}: at least one data disk is required")
    return errs


def _rdma(s: Subject, run: _Run) -> list[str]:
    if run.p["rdma_enabled"] is True and not any(n.rdma for n in s.host.nics):
        return [f"{s.where}: rdma_enabled but the host has no RDMA-capable NIC"]
    return []


# --------------------------------------------------------------------------- semantic checks: vdses
def _unique_vds(s: Subject, run: _Run) -> list[str]:
    name = s.obj["name"]
    if name in run.vds_nics:
        return [f"{s.where}: duplicate vds name {name}"]
    run.vds_nics[name] = {}
    s.where = f"vds {name}"
    return []


def _vds_member(name: str, a: Any, run: _Run) -> list[str]:
    u = a.get("host_uuid") if isinstance(a, dict) else None
    h = run.hosts.get(u) if isinstance(u, str) else None
    if h is None:
        return [f"vds {name}: host_uuid {u!r} is not one of the payload hosts"]
    nics = a.get("nics_associated")
    if not isinstance(nics, list) or not nics or not all(isinstance(n, str) for n in nics):
        return [f"vds {name}: host {h.mgmt_ip} needs a non-empty nics_associated list"]
    run.vds_nics[name][u] = nics
    errs = []
    for n in nics:
        if h.nic(n) is None or h.nic(n).kind != "physical":
            errs.append(f"vds {name}: host {h.mgmt_ip} ({run.entries[u].get('hostname')}, {u}) has no NIC {n}")
        elif (u, n) in run.used:
            errs.append(f"vds {name}: NIC {n} of host {h.mgmt_ip} is already in vds {run.used[(u, n)]}")
        else:
            run.used[(u, n)] = name
    return errs


def _vds_members(s: Subject, run: _Run) -> list[str]:
    return [e for a in s.obj["hosts_associated"] for e in _vds_member(s.obj["name"], a, run)]


# --------------------------------------------------------------------------- semantic checks: networks
def _attached_vds(s: Subject, run: _Run) -> list[str]:
    vds = s.obj.get("attached_vds")
    if not isinstance(vds, str):
        vds = repr(vds)
    s.extra["vds"] = vds
    return [] if vds in run.vds_nics else [f"{s.where}: attached_vds {vds!r} is not a vds in vdses"]


def _service_entry(nname: str, fn: str, svc: Any, run: _Run, seen: set[str]) -> list[str]:
    u = svc.get("host_uuid") if isinstance(svc, dict) else None
    if not isinstance(u, str) or u not in run.hosts:
        return [f"network {nname}: service entry for {u!r}, which is not one of the payload hosts"]
    h = run.hosts[u]
    if u in seen:
        return [f"network {nname}: two service entries for host {h.mgmt_ip}"]
    seen.add(u)
    errs = []
    ip = ipv4(svc.get("service_interface_ip"))
    if ip is None:
        errs.append(f"network {nname}: host {h.mgmt_ip} service_interface_ip "
                    f"{svc.get('service_interface_ip')!r} is not an IPv4 address")
    else:
        ifaces = run.entries[u]["ifaces"] if isinstance(run.entries[u]["ifaces"], list) else []
        want = next((x.get("ip") for x in ifaces if isinstance(x, dict) and x.get("function") == fn), None)
        if want is not None and want != ip:
            errs.append(f"network {nname}: host {h.mgmt_ip} service_interface_ip {ip} differs "
                        f"from its {fn} iface IP {want}")
    if not netmask_ok(svc.get("netmask")):
        errs.append(f"network {nname}: host {h.mgmt_ip} netmask {svc.get('netmask')!r} is invalid")
    if not truthy_str(svc.get("service_interface_name")):
        errs.append(f"network {nname}: host {h.mgmt_ip} service_interface_name is required")
    return errs


def _service(nname: str, ntype: str, net: dict, run: _Run, vds_hosts: dict[str, list[str]] | None) -> list[str]:
    cfg = net.get("network_config")
    service = cfg.get("service") if isinstance(cfg, dict) else None
    if not isinstance(service, list):
        return [f"network {nname}: network_config.service must be a list"]
    fn = "mgt" if ntype == "mgt" else "storage"
    seen: set[str] = set()
    errs = [e for svc in service for e in _service_entry(nname, fn, svc, run, seen)]
    for u, h in run.hosts.items():
        if u not in seen:
            errs.append(f"network {nname}: no service entry for host {h.mgmt_ip} ({u})")
        elif vds_hosts is not None and u not in vds_hosts:
            errs.append(f"network {nname}: host {h.mgmt_ip} is not associated with vds {net.get('attached_vds')}")
    routes = cfg.get("route") or []
    if not isinstance(routes, list):
        return errs + [f"network {nname}: network_config.route must be a list"]
    errs.extend(f"network {nname}: route entries need an IPv4 gateway, got {r!r}" for r in routes
                if not isinstance(r, dict) or not ipv4(r.get("gateway")))
    return errs


def _system_network(s: Subject, run: _Run) -> list[str]:
    net, nname, ntype = s.obj, s.extra["name"], s.obj["network_type"]
    if ntype not in SYSTEM_NETWORKS:
        return []
    if ntype in run.seen_types:
        return [f"network {nname}: a second {ntype} network (first: {run.seen_types[ntype]})"]
    run.seen_types[ntype] = nname
    return _service(nname, ntype, net, run, run.vds_nics.get(s.extra["vds"]))


# --------------------------------------------------------------------------- the schema
def _ntp_mode(*modes: str) -> Callable[[Any], bool]:
    return lambda p: isinstance(p.get("ntp"), dict) and p["ntp"].get("mode") in modes


TOP_FIELDS: tuple[Rule, ...] = (
    Field("platform", one_of("kvm"), "unsupported platform {value!r} (only 'kvm')"),
    Field("cluster_name", nonblank_str, "cluster_name must be a non-empty string"),
    Field("dns_server", list_of(lambda x: bool(ipv4(x)) or is_ip(x)), "dns_server must be a list of IP addresses"),
    Field("vhost_enabled", is_bool, "{path} must be a boolean"),
    Field("rdma_enabled", is_bool, "{path} must be a boolean"),
    Field("ntp.mode", one_of(*NTP_MODES), "ntp.mode must be 'internal' or 'external'"),
    Field("ntp.ntp_server", bool, "ntp.ntp_server is required when ntp.mode is 'external'",
          when=_ntp_mode("external")),
    Field("ntp.current_time", null_or(iso_time),
          "ntp.current_time {value!r} is not an ISO-8601 time like 2025-09-26T14:02:29.381Z", when=_ntp_mode(*NTP_MODES)),
    Field("vdses", nonempty_list, "{path} must be a non-empty list"),
    Field("networks", nonempty_list, "{path} must be a non-empty list"),
    Field("hosts", nonempty_list, "{path} must be a non-empty list"),
)

HOST_ENTRY: tuple[Rule, ...] = (
    Field("", lambda v: isinstance(v, dict), "{where} must be an object", fatal=True),
    required(REQUIRED_HOST, "{where}: missing required field: {key}"),
)

HOST_FIELDS: tuple[Rule, ...] = (             # where = "hosts[i] (<mgmt ip>)"; s.host = the scanned host
    Field("hostname", hostname, "{where}: invalid hostname {value!r}"),
    Check(_unique_hostname),
    Check(_host_ip),
    Field("disk_data_with_cache", is_bool, "{where}: {path} must be a boolean"),
    Field("is_master", is_bool, "{where}: {path} must be a boolean"),
    Field("with_faster_ssd_as_cache", is_bool, "{where}: {path} must be a boolean"),
    Field("host_passwords", passwords_for("root", "smartx"),
          "{where}: host_passwords must give a password for users root and smartx"),
    Field("tags", is_list, "{where}: tags must be a list"),
    Check(_ifaces),
    Check(_disks),
    Check(_rdma),
)

VDS_FIELDS: tuple[Rule, ...] = (              # where = "vdses[i]", then "vds <name>"
    Field("name", truthy_str, "{where}: name is required", fatal=True),
    Check(_unique_vds, fatal=True),
    Field("bond_mode", absent_or(one_of(*BOND_MODES)),
          "{where}: bond_mode {value!r} is not one of " + ", ".join(BOND_MODES)),
    Field("hosts_associated", nonempty_list, "{where}: hosts_associated must be a non-empty list", fatal=True),
    Check(_vds_members),
)

NETWORK_FIELDS: tuple[Rule, ...] = (          # where = "network <name>"
    Check(_attached_vds),
    Field("network_type", truthy_str, "{where}: network_type is required", fatal=True),
    Field("mode.type", is_str, "{where}: mode.type is required"),
    Field("mode.network_identities", vlan_ids, "{where}: mode.network_identities must be VLAN ids 0..4094",
          when=lambda net: is_str(value_at(net, "mode.type"))),
    Check(_system_network),
)


# --------------------------------------------------------------------------- validate
def _host(i: int, e: Any, run: _Run) -> list[str]:
    s = Subject(e, f"hosts[{i}]")
    errs, stop = apply(HOST_ENTRY, s, run)
    if stop:
        return errs
    u = e["host_uuid"]
    h = run.host_by_uuid(u) if isinstance(u, str) else None
    if h is None:
        return [f"{s.where}: unknown host_uuid {u!r} (no scanned host has it)"]
    if u in run.hosts:
        return [f"{s.where}: host_uuid {u} listed twice"]
    run.hosts[u], run.entries[u] = h, e
    return apply(HOST_FIELDS, Subject(e, f"hosts[{i}] ({h.mgmt_ip})", host=h), run)[0]


def _hosts(run: _Run) -> list[str]:
    errs = [x for i, e in enumerate(run.p["hosts"]) for x in _host(i, e, run)]
    if run.address not in {h.mgmt_ip for h in run.hosts.values()} and not errs:
        errs.append(f"the receiving host {run.address} is not one of the payload hosts")
    masters = sum(1 for e in run.entries.values() if e.get("is_master") is True)
    if run.entries and masters not in MASTER_COUNTS:
        errs.append(f"a cluster needs 3 or 5 master hosts (is_master true), got {masters}")
    return errs


def _network(i: int, net: Any, run: _Run) -> list[str]:
    if not isinstance(net, dict):
        return [f"networks[{i}] must be an object"]
    nname = net.get("name") or f"networks[{i}]"
    return apply(NETWORK_FIELDS, Subject(net, f"network {nname}", extra={"name": nname}), run)[0]


def _effects(run: _Run) -> dict[str, dict]:
    effects: dict[str, dict] = {}
    for u, e in run.entries.items():
        storage_ip = next((x["ip"] for x in e["ifaces"] if x.get("function") == "storage"), None)
        effects[u] = {
            "hostname": e["hostname"], "is_master": e["is_master"], "storage_ip": storage_ip,
            "disks": {d["drive"]: d["function"] for d in e["disks"]}, "vhost": run.p["vhost_enabled"],
            "vdses": [(name, per_host[u]) for name, per_host in run.vds_nics.items() if u in per_host],
        }
    return effects


def validate(p: dict, address: str, host_by_uuid: Callable[[str], SimHost | None],
             l2_host_ips: dict[str, set[str]] | None = None) -> tuple[list[str], dict]:
    """Checks a real installer would make on payload ``p`` received by ``address``; ``l2_host_ips``: host uuid ->
    the ``host_ip`` strings a layer-2 scan reports. Returns ``(errors, per-host effects)``; effects are empty when
    there are errors."""
    missing = [k for k in REQUIRED_TOP if k not in p]
    if missing:
        return [f"missing required field: {k}" for k in missing], {}
    run = _Run(p, address, host_by_uuid, l2_host_ips)
    errs = apply(TOP_FIELDS, Subject(p, ""), run)[0]
    if errs:
        return errs, {}
    errs = _hosts(run)
    errs += [x for i, v in enumerate(p["vdses"]) for x in apply(VDS_FIELDS, Subject(v, f"vdses[{i}]"), run)[0]]
    errs += [x for i, net in enumerate(p["networks"]) for x in _network(i, net, run)]
    errs += [f"networks: a network with network_type {t!r} is required" for t in SYSTEM_NETWORKS
             if t not in run.seen_types]
    return (errs, {}) if errs else ([], _effects(run))
