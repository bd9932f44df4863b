"""Stage 09 REST bodies -> checked dicts: ``import-vm`` (``VmImportParams``), ``clone-vm`` (``VmCloneParams``), VM NICs
(``VmImportNicParams`` / ``VmNicParams``), new disks (``MountNewCreateDisksParams``), ``update-vm-nic`` data and
``get-vm-metrics`` input. Field names, required fields and enum values are the SDK's (cloudtower-sdk 2.23.0); a field
the SDK lacks, a wrong type, a missing required field or a value outside its enum is a 400 naming it."""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from .errors import RestError

BUSES = ("IDE", "SCSI", "USB", "VIRTIO")
DISK_TYPES = ("CD_ROM", "DISK")
FIRMWARES = ("BIOS", "UEFI")
NIC_MODELS = ("E1000", "SRIOV", "VIRTIO")
BYTE_UNITS = {"B": 1, "KB": 2 ** 10, "MB": 2 ** 20, "GB": 2 ** 30, "TB": 2 ** 40, "PB": 2 ** 50}   # the SDK's ByteUnit
CREATE_STATUSES = ("RUNNING", "STOPPED")
_RANGE = re.compile(r"^(\d+)([smh])$")

_ANY = "any"
_IO = {"max_bandwidth_policy": _ANY, "max_bandwidth_unit": _ANY, "max_bandwidth": _ANY, "max_iops_policy": _ANY,
       "max_iops": _ANY, "io_policy": _ANY}
IMPORT_SPEC = {"cluster_id": "str", "name": "str", "parsed_ovf": "dict", "upload_tasks": "list", "host_id": "str",
               "status": CREATE_STATUSES, "vm_nics": "list", "disk_operate": "dict", "vcpu": "int", "memory": "int",
               "memory_unit": tuple(BYTE_UNITS), "cpu_cores": "int", "cpu_sockets": "int", "ha": "bool",
               "guest_os_type": ("LINUX", "UNKNOWN", "WINDOWS"), "folder_id": "str", "description": "str",
               "owner_id": "str", **_IO}
IMPORT_REQUIRED = ("cluster_id", "name", "parsed_ovf", "upload_tasks")
CLONE_SPEC = {"src_vm_id": "str", "name": "str", "cluster_id": "str", "host_id": "str", "is_full_copy": "bool",
              "status": CREATE_STATUSES, "vm_nics": "list", "vcpu": "int", "memory": "int",
              "memory_unit": tuple(BYTE_UNITS), "cpu_cores": "int", "cpu_sockets": "int", "ha": "bool",
              "firmware": FIRMWARES, "description": "str", "folder_id": "str", "guest_os_type": _ANY, "owner": _ANY,
              "gpu_devices": _ANY, "ha_priority": _ANY, "pci_nics": _ANY, "vm_placement_group": _ANY,
              "vm_disks": _ANY, **_IO}
CLONE_REQUIRED = ("src_vm_id", "name")
NIC_SPEC = {"connect_vlan_id": "str", "model": NIC_MODELS, "enabled": "bool", "mirror": "bool", "ip_address": "str",
            "subnet_mask": "str", "gateway": "str", "mac_address": "str", "nic_id": "str", "local_id": "str",
            "type": ("VLAN", "VPC"), "qos": _ANY, "vpc_nic": _ANY}
NIC_UPDATE_SPEC = {k: v for k, v in NIC_SPEC.items() if k not in ("local_id", "type", "qos")} | {"nic_index": "int"}
OVF_SPEC = {"name": "str", "description": "str", "cpu": "dict", "vcpu": "int", "memory": "int", "firmware": FIRMWARES,
            "disks": "list", "nics": "list"}
OVF_REQUIRED = ("cpu", "disks", "firmware", "memory", "name", "nics", "vcpu")
NEW_DISK_SPEC = {"bus": BUSES, "boot": "int", "vm_volume": "dict", "index": "int", "key": "int", **_IO}
VOLUME_SPEC = {"name": "str", "size": "int", "size_unit": tuple(BYTE_UNITS), "elf_storage_policy": _ANY,
               "elf_replica_storage_policy": _ANY, "elf_ec_storage_policy": _ANY, "path": "str",
               "resident_in_cache": "bool"}


def _type_ok(v: Any, typ: Any) -> bool:
    if typ == _ANY:
        return True
    if isinstance(typ, tuple):
        return v in typ
    if typ == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, {"str": str, "bool": bool, "dict": dict, "list": list}[typ])


def fields(where: str, obj: Any, spec: dict, required: tuple = (), model: str = "object") -> dict:
    """``obj`` checked against ``spec`` (field -> "str"|"int"|"bool"|"dict"|"list"|enum tuple|"any"); nulls are
    absent. 400 naming the first problem."""
    if not isinstance(obj, dict):
        raise RestError(400, f"{where} must be an object ({model})")
    unknown = sorted(set(obj) - set(spec))
    if unknown:
        raise RestError(400, f"{where}: unknown field(s) {unknown} for {model}")
    for k in required:
        if obj.get(k) is None or (spec.get(k) == "str" and not str(obj[k]).strip()):
            raise RestError(400, f"{where}.{k} is required ({model})")
    for k, v in obj.items():
        typ = spec[k]
        if v is not None and not _type_ok(v, typ):
            want = f"one of {', '.join(typ)}" if isinstance(typ, tuple) else f"a{'n' if typ == 'int' else ''} {typ}"
            raise RestError(400, f"{where}.{k} must be {want}, got {v!r}")
    return {k: v for k, v in obj.items() if v is not None}


def ipv4(where: str, v: str) -> str:
    try:
        return str(ipaddress.IPv4Address(v.strip()))
    except ValueError:
        raise RestError(400, f"{where}: {v!r} is not an IPv4 address") from None


def nic_addressing(where: str, nic: dict) -> None:
    """``ip_address`` / ``subnet_mask`` / ``gateway`` of one NIC: IPv4, a netmask, the gateway in the subnet."""
    ip, mask, gw = nic.get("ip_address"), nic.get("subnet_mask"), nic.get("gateway")
    if ip is None:
        if mask is not None or gw is not None:
            raise RestError(400, f"{where}: subnet_mask / gateway without ip_address")
        return
    ip = nic["ip_address"] = ipv4(f"{where}.ip_address", ip)
    if mask is None:
        raise RestError(400, f"{where}.subnet_mask is required with ip_address")
    try:
        net = ipaddress.IPv4Network(f"{ip}/{mask.strip()}", strict=False)
    except ValueError:
        raise RestError(400, f"{where}.subnet_mask: {mask!r} is not a netmask") from None
    if ipaddress.IPv4Address(ip) in (net.network_address, net.broadcast_address):
        raise RestError(400, f"{where}.ip_address: {ip} is not a host address of {net}")
    if gw is not None:
        gw = nic["gateway"] = ipv4(f"{where}.gateway", gw)
        if ipaddress.IPv4Address(gw) not in net or gw == ip:
            raise RestError(400, f"{where}.gateway: {gw} is not another address of {net}")


def nics(where: str, items: Any, *, required_vlan: bool) -> list[dict]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise RestError(400, f"{where} must be a list")
    out = []
    for j, n in enumerate(items):
        w = f"{where}[{j}]"
        n = fields(w, n, NIC_SPEC, ("connect_vlan_id",) if required_vlan else (), "VmImportNicParams")
        nic_addressing(w, n)
        out.append(n)
    return out


def parsed_ovf(where: str, ovf: Any) -> dict:
    ovf = fields(where, ovf, OVF_SPEC, OVF_REQUIRED, "ParsedOVF")
    fields(f"{where}.cpu", ovf["cpu"], {"sockets": "int", "cores": "int"}, ("sockets", "cores"), "OvfCpu")
    for j, d in enumerate(ovf["disks"]):
        fields(f"{where}.disks[{j}]", d, {"name": "str", "size": "int", "type": DISK_TYPES, "bus": BUSES},
               ("name", "size", "type", "bus"), "OvfDisk")
    for j, n in enumerate(ovf["nics"]):
        fields(f"{where}.nics[{j}]", n, {"mac": "str"}, (), "OvfNic")   # parse-ovf answers "" without an Address
    return ovf


def new_disks(where: str, op: Any) -> list[dict]:
    """``disk_operate`` (``OvfDiskOperate``) -> the new disks ``[{bus, boot, name, size (bytes)}]``; the other
    operations are not simulated (non-empty -> 400)."""
    if op is None:
        return []
    op = fields(where, op, {"new_disks": "dict", "modify_cd_roms": "list", "modify_vmdk_disks": "list"},
                model="OvfDiskOperate")
    for k in ("modify_cd_roms", "modify_vmdk_disks"):
        if op.get(k):
            raise RestError(400, f"{where}.{k} is not simulated (send an empty list)")
    nd = fields(f"{where}.new_disks", op.get("new_disks") or {},
                {"mount_new_create_disks": "list", "mount_disks": "list", "mount_cd_roms": "list"},
                model="VmDiskParams")
    for k in ("mount_disks", "mount_cd_roms"):
        if nd.get(k):
            raise RestError(400, f"{where}.new_disks.{k} is not simulated (send an empty list)")
    out = []
    for j, d in enumerate(nd.get("mount_new_create_disks") or []):
        w = f"{where}.new_disks.mount_new_create_disks[{j}]"
        d = fields(w, d, NEW_DISK_SPEC, ("boot", "bus", "vm_volume"), "MountNewCreateDisksParams")
        vol = fields(f"{w}.vm_volume", d["vm_volume"], VOLUME_SPEC, ("name", "size"),
                     "MountNewCreateDisksParamsVmVolume")
        size = vol["size"] * BYTE_UNITS[vol.get("size_unit", "B")]
        if size <= 0:
            raise RestError(400, f"{w}.vm_volume.size must be positive")
        out.append({"bus": d["bus"], "boot": d["boot"], "name": vol["name"], "size": size})
    return out


def import_item(i: int, it: Any) -> dict:
    w = f"[{i}]"
    it = fields(w, it, IMPORT_SPEC, IMPORT_REQUIRED, "VmImportParams")
    it["parsed_ovf"] = parsed_ovf(f"{w}.parsed_ovf", it["parsed_ovf"])
    if not all(isinstance(x, str) and x for x in it["upload_tasks"]):
        raise RestError(400, f"{w}.upload_tasks must be a list of upload task ids")
    it["vm_nics"] = nics(f"{w}.vm_nics", it.get("vm_nics"), required_vlan=True)
    it["new_disks"] = new_disks(f"{w}.disk_operate", it.pop("disk_operate", None))
    _cpu_memory(w, it)
    return it


def clone_item(i: int, it: Any) -> dict:
    w = f"[{i}]"
    it = fields(w, it, CLONE_SPEC, CLONE_REQUIRED, "VmCloneParams")
    if it.get("vm_disks"):
        raise RestError(400, f"{w}.vm_disks is not simulated: a clone gets copies of every source disk")
    it["vm_nics"] = nics(f"{w}.vm_nics", it.get("vm_nics"), required_vlan=False) if "vm_nics" in it else None
    _cpu_memory(w, it)
    return it


def _cpu_memory(w: str, it: dict) -> None:
    for k in ("vcpu", "memory", "cpu_cores", "cpu_sockets"):
        if k in it and it[k] <= 0:
            raise RestError(400, f"{w}.{k} must be positive")
    if "memory" in it:
        it["memory"] *= BYTE_UNITS[it.get("memory_unit", "B")]


def nic_update(body: dict) -> dict:
    """``update-vm-nic`` ``data`` (``VmUpdateNicParamsData``)."""
    data = fields("data", body.get("data"), NIC_UPDATE_SPEC, ("nic_index",), "VmUpdateNicParamsData")
    if data["nic_index"] < 0:
        raise RestError(400, "data.nic_index must be >= 0 (0-based)")
    nic_addressing("data", data)
    return data


def metric_range(v: Any) -> int:
    """``"<n>s"|"<n>m"|"<n>h"`` -> seconds."""
    m = _RANGE.match(v) if isinstance(v, str) else None
    if m is None or int(m.group(1)) <= 0:
        raise RestError(400, f"range must look like 30s, 10m or 1h, got {v!r}")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
