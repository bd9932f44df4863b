"""Request bodies of the VM routes, declared as field tables and parsed into typed specs.

``POST /api/v2/vms`` and ``PUT /api/v2/vms/{uuid}`` bodies are JSON objects; each field's rule
(type, required, allowed values, minimum, default) is one row of a table below. :func:`parse_create`
and :func:`parse_update` walk the tables and return typed specs (:class:`VmSpec`,
:class:`NicUpdate`) carrying every structural problem found (``problems``). What needs the cluster
(VLANs, bridges, storage policies, images, hosts, names, addresses) is checked by the model
(:mod:`.models`), which reports both kinds of problem together, joined with ``; ``.

A body that is not a JSON object at all is a 400 ``EBADREQUEST`` at once.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from clients.ipaddr import ipv4

from ..fisheye.models import EC_BAD_REQUEST, FisheyeError
from .vm import netmask_prefix

NIC_MODELS = ("virtio", "e1000", "rtl8139")
NIC_LINKS = ("up", "down")
DISK_BUSES = ("virtio", "scsi", "ide", "sata")
CDROM_BUSES = ("ide", "sata", "scsi")
FIRMWARES = ("BIOS", "UEFI")
VM_STATUSES = ("running", "stopped")
MIN_MEMORY = 256 * 1024 * 1024
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_ABSENT = object()


# --------------------------------------------------------------------------- the declarative part
@dataclass(frozen=True)
class Field:
    """One field of a JSON object.

    ``type``: ``any`` | ``int`` | ``bool`` | ``str`` | ``name`` (a non-blank string) | ``nonempty``
    (a non-empty string) | ``mac``.
    ``required``: absent is a problem. ``choices``: allowed values. ``minimum``: for ``int``.
    ``default``: the value when absent (also what ``choices`` checks then). ``message``: the problem's
    text (``{label}`` and ``{value!r}`` are filled in); each check has a default wording."""

    key: str
    type: str = "any"
    required: bool = False
    choices: tuple = ()
    minimum: int | None = None
    default: Any = None
    message: str | None = None

    def check(self, obj: dict, where: str) -> str | None:
        """The problem with this field of ``obj`` (``where`` prefixes its label), or None."""
        label = f"{where}.{self.key}" if where else self.key
        value = obj.get(self.key, _ABSENT)
        if value is _ABSENT:
            if self.required:
                return self._say(f"{label} is required", label, None)
            if not self.choices:
                return None
            value = self.default
        if self.choices and value not in self.choices:
            return self._say(f"{label} {value!r} is not one of {', '.join(self.choices)}", label, value)
        return None if self._type_ok(value) else self._say(self._wording(label, value), label, value)

    def _type_ok(self, value: Any) -> bool:
        t = self.type
        if t == "int":
            return _int(value) is not None and (self.minimum is None or value >= self.minimum)
        if t in ("name", "nonempty"):
            return isinstance(value, str) and bool(value.strip() if t == "name" else value)
        return {"any": True, "bool": isinstance(value, bool), "str": isinstance(value, str),
                "mac": isinstance(value, str) and bool(_MAC.match(value))}[t]

    def _wording(self, label: str, value: Any) -> str:
        return {"bool": f"{label} must be true or false", "mac": f"{label} {value!r} is not a MAC address",
                "int": f"{label} {value!r} must be an integer" + (f" >= {self.minimum}" if self.minimum else "")
                }.get(self.type, f"{label} is required")

    def _say(self, default: str, label: str, value: Any) -> str:
        return self.message.format(label=label, value=value) if self.message else default


def check_fields(fields: tuple[Field, ...], obj: dict, where: str = "") -> list[str]:
    """Every problem with ``obj`` against ``fields``, in table order."""
    return [p for f in fields if (p := f.check(obj, where)) is not None]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


VM_FIELDS = (
    Field("vm_name", "name", required=True),
    Field("vcpu", "int", required=True, minimum=1, message="{label} {value!r} must be an integer >= 1"),
    Field("memory", "int", required=True, minimum=MIN_MEMORY,
          message="{label} {value!r} must be the size in bytes (an integer >= 256 MiB)"),
    Field("firmware", choices=FIRMWARES, default="BIOS"),
    Field("status", choices=VM_STATUSES, default="running"),
    Field("status", required=True, message="status is required (running: the VM starts once created)"),
    Field("ha", "bool"),
    Field("nested_virtualization", "bool"),
    Field("auto_schedule", "bool"),
    Field("cpu_model", "str", message="cpu_model must be a string (cluster_default)"),
)
TOPOLOGY_FIELDS = (Field("sockets", "int", required=True, minimum=1),
                   Field("cores", "int", required=True, minimum=1))
NIC_REQUIRED = (Field("vlan_uuid", required=True), Field("ovs", required=True))
NIC_FIELDS = (        # create and update alike (vlan_uuid / ovs: the model checks them against the cluster)
    Field("model", choices=NIC_MODELS, default="virtio"),
    Field("link", choices=NIC_LINKS, default="up"),
    Field("mirror", "bool", default=False),
)
NIC_MAC = (Field("mac_address", "mac"),)
DISK_FIELDS = (
    Field("bus", choices=DISK_BUSES),
    Field("size_in_byte", "int", required=True, minimum=1, message="{label} {value!r} must be the size in bytes (> 0)"),
    Field("name", "nonempty", required=True),
)
CDROM_FIELDS = (
    Field("bus", choices=CDROM_BUSES),
    Field("disabled", "bool", default=False),
)


# --------------------------------------------------------------------------- typed specs
@dataclass
class NicSpec:
    vlan_uuid: Any
    ovs: Any
    model: str = "virtio"
    link: str = "up"
    mirror: bool = False
    mac_address: str | None = None


@dataclass
class DiskSpec:
    type: str                               # disk | cdrom
    bus: str
    name: str = ""                          # disk
    size: int = 0                           # disk: bytes
    storage_policy_uuid: Any = None         # disk
    path: Any = None                        # cdrom: an image's path
    disabled: bool = False                  # cdrom


@dataclass
class VmSpec:
    """A VM to create (``POST /api/v2/vms``), typed. ``problems``: what the body got wrong (then the
    values are as given, possibly None). Presets build one directly."""

    name: str
    vcpu: int
    memory: int
    sockets: int
    cores: int
    status: str = "running"
    description: str = ""
    firmware: str = "BIOS"
    ha: bool = True
    nested_virtualization: bool = False
    cpu_model: str = "cluster_default"
    node_ip: Any = None
    nics: list[NicSpec] = field(default_factory=list)
    disks: list[DiskSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class NicUpdate:
    """One NIC of ``PUT /api/v2/vms/{uuid}``: fields left None were not given (kept as they are)."""

    where: str                              # nics[i], for messages
    mac_address: Any
    vlan_uuid: Any = None
    ovs: Any = None
    model: str | None = None
    mirror: bool | None = None
    link: str | None = None
    address: bool = False                   # the body sets an address (ip_address / subnet_mask / gateway)
    ip_address: Any = None                  # as given
    subnet_mask: Any = None
    gateway: Any = None

    def interface(self) -> ipaddress.IPv4Interface | None:
        """The address as an interface (``10.0.0.5/24``); None when ip or mask is not valid."""
        addr, prefix = ipv4(self.ip_address), netmask_prefix(self.subnet_mask)
        return None if addr is None or prefix is None else ipaddress.IPv4Interface(f"{addr}/{prefix}")

    def applied(self) -> dict:
        """What the job sets on the VM's NIC (kept in the VM's ``updates``)."""
        want = {k: getattr(self, k) for k in ("vlan_uuid", "ovs", "model", "mirror", "link")
                if getattr(self, k) is not None}
        want["mac_address"] = self.mac_address.lower() if isinstance(self.mac_address, str) else self.mac_address
        iface = self.interface()
        if self.address and iface is not None:
            gw = ipv4(self.gateway) if self.gateway else None
            want.update(ip_address=str(iface.ip), subnet_mask=str(iface.netmask),
                        gateway=str(gw) if gw else None)
        return want


@dataclass
class VmUpdate:
    """A ``PUT /api/v2/vms/{uuid}`` body, typed. ``problems``: what the body got wrong."""

    nics: list[NicUpdate]
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- POST /api/v2/vms
def parse_create(body: Any) -> VmSpec:
    """The typed VM of a ``POST /api/v2/vms`` body; structural problems in ``spec.problems``."""
    if not isinstance(body, dict):
        raise FisheyeError(EC_BAD_REQUEST, "request body must be a JSON object (the VM to create)")
    problems = check_fields(VM_FIELDS, body)
    vcpu = _int(body.get("vcpu"))
    sockets, cores = _topology(body, vcpu, problems)
    spec = VmSpec(name=body.get("vm_name"), vcpu=vcpu, memory=_int(body.get("memory")), sockets=sockets,
                  cores=cores, status=body.get("status"), description=str(body.get("description") or ""),
                  firmware=body.get("firmware", "BIOS"), ha=bool(body.get("ha", True)),
                  nested_virtualization=bool(body.get("nested_virtualization", False)),
                  cpu_model=body.get("cpu_model") or "cluster_default", node_ip=body.get("node_ip"),
                  problems=problems)
    spec.nics = _items(body, "nics", problems, _nic)
    spec.disks = _items(body, "disks", problems, _disk)
    return spec


def _topology(body: dict, vcpu: int | None, problems: list[str]) -> tuple[int | None, int | None]:
    cpu = body.get("cpu")
    topo = cpu.get("topology") if isinstance(cpu, dict) else None
    topo = topo if isinstance(topo, dict) else {}
    sockets, cores = _int(topo.get("sockets")), _int(topo.get("cores"))
    if check_fields(TOPOLOGY_FIELDS, topo):
        problems.append("cpu.topology needs integer sockets and cores >= 1")
    elif vcpu is not None and sockets * cores != vcpu:
        problems.append(f"cpu.topology sockets x cores = {sockets * cores} does not equal vcpu {vcpu}")
    return sockets, cores


def _items(body: dict, key: str, problems: list[str], parse) -> list:
    items = body.get(key)
    if not isinstance(items, list) or not items:
        problems.append(f"{key} must be a non-empty list")
        return []
    out = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where} must be an object")
            continue
        spec = parse(item, where, problems)
        if spec is not None:
            out.append(spec)
    return out


def _nic(n: dict, where: str, problems: list[str]) -> NicSpec:
    problems += check_fields(NIC_REQUIRED + NIC_FIELDS + NIC_MAC, n, where)
    return NicSpec(vlan_uuid=n.get("vlan_uuid"), ovs=n.get("ovs"), model=n.get("model", "virtio"),
                   link=n.get("link", "up"), mirror=bool(n.get("mirror", False)), mac_address=n.get("mac_address"))


def _disk(d: dict, where: str, problems: list[str]) -> DiskSpec | None:
    kind = d.get("type")
    if kind == "disk":
        problems += check_fields(DISK_FIELDS, d, where)
        return DiskSpec("disk", d.get("bus"), name=d.get("name"), size=_int(d.get("size_in_byte")),
                        storage_policy_uuid=d.get("storage_policy_uuid"))
    if kind == "cdrom":
        problems += check_fields(CDROM_FIELDS, d, where)
        return DiskSpec("cdrom", d.get("bus"), path=d.get("path"), disabled=d.get("disabled", False))
    problems.append(f"{where}.type {kind!r} must be disk or cdrom")
    return None


# --------------------------------------------------------------------------- PUT /api/v2/vms/{uuid}
UPDATE_SHAPE = ('body must be {"nics": [{"vlan_uuid", "ovs", "model", "mac_address", "mirror", "gateway", '
                '"subnet_mask", "ip_address", "link"}]}')


def parse_update(body: Any) -> VmUpdate:
    """The typed NICs of a ``PUT /api/v2/vms/{uuid}`` body; structural problems in ``problems``."""
    if not isinstance(body, dict) or not isinstance(body.get("nics"), list) or not body["nics"]:
        raise FisheyeError(EC_BAD_REQUEST, UPDATE_SHAPE)
    problems: list[str] = []
    nics = _items(body, "nics", problems, _nic_update)
    return VmUpdate(nics, problems)


def _nic_update(n: dict, where: str, problems: list[str]) -> NicUpdate:
    problems += check_fields(NIC_FIELDS, n, where)
    ip, mask, gw = n.get("ip_address"), n.get("subnet_mask"), n.get("gateway")
    upd = NicUpdate(where, n.get("mac_address"), vlan_uuid=n.get("vlan_uuid"), ovs=n.get("ovs"),
                    model=n.get("model"), mirror=n.get("mirror"), link=n.get("link"),
                    address=ip is not None or mask is not None or bool(gw), ip_address=ip, subnet_mask=mask,
                    gateway=gw)
    if upd.address:
        problems += _address_problems(upd)
    return upd


def _address_problems(upd: NicUpdate) -> list[str]:
    where, errs = upd.where, []
    if ipv4(upd.ip_address) is None:
        errs.append(f"{where}.ip_address {upd.ip_address!r} is not an IPv4 address")
    if netmask_prefix(upd.subnet_mask) is None:
        errs.append(f"{where}.subnet_mask {upd.subnet_mask!r} is not a netmask such as 255.255.255.0")
    iface = upd.interface()
    if iface is None:
        return errs
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        errs.append(f"{where}.ip_address {iface.ip} is not a host address of {net}")
    if upd.gateway:
        g = ipv4(upd.gateway)
        if g is None or g not in net or g == iface.ip:
            errs.append(f"{where}.gateway {upd.gateway!r} is not another address of {net}")
    return errs
