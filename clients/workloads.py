"""Stages 09–11 plumbing the steps share: the customer's state as a comparable snapshot, the test VM plan (how many,
which host, which address), the VM network that holds the test range, and SSH into a test VM.

Sources: ../shared/reference/cloudtower-stage06-09-11-api-facts.md §3–§5; the issue's rules: one test VM per host by
default, capped by the test range (集群管理信息!E18–E19); each on a distinct host; names with a fixed prefix so that cleanup
never touches a customer VM; the customer's state compared before and after."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from plan.model import Plan

from .cloudtower import CloudTowerClient
from .ct_cluster import answers
from .ct_vms import TEST_VM_PREFIX, test_vm_name
from .testvm_image import STAND_IN_PASSWORD


def is_test_object(name: str | None) -> bool:
    return bool(name) and str(name).startswith(TEST_VM_PREFIX)


# --------------------------------------------------------------------------- the plan of test VMs
@dataclass(frozen=True)
class VmSlot:
    name: str
    host_ip: str
    host_name: str
    ip: str


@dataclass(frozen=True)
class VmPlan:
    slots: tuple[VmSlot, ...]
    wanted: int
    addresses: int
    hosts: int
    capped_by: str | None          # None | "addresses" | "hosts"


def plan_test_vms(plan: Plan, requested: int | None) -> VmPlan:
    """One VM per host (or ``requested``), never more than the test range's addresses nor than the hosts (each VM on a
    distinct host); the first addresses of the range, hosts in plan order."""
    addresses = plan.test_addresses()
    hosts = list(plan.hosts)
    wanted = requested if requested is not None else len(hosts)
    n = min(wanted, len(addresses), len(hosts))
    capped_by = None if n >= wanted else ("addresses" if len(addresses) == n else "hosts")
    slots = tuple(VmSlot(test_vm_name(i + 1), str(hosts[i].mgmt_ip), hosts[i].hostname or str(hosts[i].mgmt_ip),
                         str(addresses[i])) for i in range(n))
    return VmPlan(slots, wanted, len(addresses), len(hosts), capped_by)


def test_network(plan: Plan):
    """The plan's network whose subnet holds the whole test range: management first (the vendor template's case: the
    VM network ``default``), else a business network. None when none does."""
    addresses = plan.test_addresses()
    if not addresses:
        return None
    for net in (plan.mgmt, *plan.business):
        if net is not None and net.subnet is not None and all(a in net.subnet for a in (addresses[0], addresses[-1])):
            return net
    return None


def vm_network_id(ct: CloudTowerClient, cluster_id: str, net) -> tuple[str, str]:
    """``(Vlan.id, name)`` of the VM network for ``net`` on this cluster: ``default`` on the management VDS for the
    management subnet, else the business network by its planned name (and tag). ``connect_vlan_id`` is this id,
    never the numeric tag (facts §3)."""
    vdses = ct.rest("get-vdses", {"where": {"cluster": {"id": cluster_id}}}) or []
    vds_ids = [v["id"] for v in vdses if (v.get("cluster") or {}).get("id", cluster_id) == cluster_id]
    vlans = ct.rest("get-vlans", {"where": {"vds": {"id_in": vds_ids}}}) if vds_ids else []
    vlans = [v for v in vlans or [] if (v.get("vds") or {}).get("id") in vds_ids and v.get("type") in (None, "VM")]
    if net.role in ("mgmt", "extra_mgmt"):
        mgmt_vds = {v["id"] for v in vdses if v.get("type") == "MANAGEMENT"} or set(vds_ids)
        found = [v for v in vlans if v.get("name") == "default" and (v.get("vds") or {}).get("id") in mgmt_vds]
        want = "default"
    else:
        want = net.name
        found = [v for v in vlans if v.get("name") == net.name
                 and (net.vlan_id is None or int(v.get("vlan_id") or 0) == int(net.vlan_id))]
    if not found:
        raise AssertionError(
            f"CloudTower 中找不到本集群的虚拟机网络 {want}（测试 IP 范围所在子网 {net.subnet}）/ CloudTower lists no VM "
            f"network {want} of this cluster (the test range's subnet {net.subnet}); networks seen: "
            f"{sorted({v.get('name') for v in vlans})}\n下一步 / next: 确认阶段 03 已创建该网络且 CloudTower 已同步，"
            f"然后用 --resume 续跑 / make sure stage 03 created it and CloudTower synced it, then continue with --resume")
    return found[0]["id"], found[0].get("name") or want


# --------------------------------------------------------------------------- the customer's state
# What the snapshot reads: CloudTower REST calls scoped to the cluster. Volatile fields (times, usage, counters,
# states that move on their own) are left out of the digest, so only a real change of the customer's objects shows.
SNAPSHOT_CALLS: dict[str, tuple[str, Callable[[str], dict]]] = {
    "vms": ("get-vms", lambda cid: {"where": {"cluster": {"id": cid}}}),
    "vdses": ("get-vdses", lambda cid: {"where": {"cluster": {"id": cid}}}),
    "vlans": ("get-vlans", lambda cid: {}),
    "cluster-settings": ("get-cluster-settingses", lambda cid: {"where": {"cluster": {"id": cid}}}),
    "views": ("get-views", lambda cid: {"where": {"cluster": {"id": cid}}}),
    "backup-services": ("get-backup-services", lambda cid: {}),
    "alert-rules": ("get-alert-rules", lambda cid: {"where": {"cluster": {"id": cid}}}),
}
VOLATILE = re.compile(r"(_at|At|time|usage|used|progress|speed|iops|latency|bandwidth|count|num|ips|status|version|"
                      r"ip_address(es)?|entity_?async_?status|bps|hz|percent|ratio|size|capacity|_data|"
                      r"vm_nics|vm_disks|labels)$", re.IGNORECASE)


def _stable(value: Any) -> Any:
    """``value`` without its volatile fields, at every depth (an alert rule's thresholds are a nested list)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not VOLATILE.search(k) and not k.startswith("__")}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(_stable(obj), sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def customer_snapshot(ct: CloudTowerClient, cluster_id: str, vds_ids: list[str] | None = None
                      ) -> tuple[dict[str, list[list[str]]], list[str]]:
    """``({kind: [[id, name, digest]]}, notes)``: every object of the kinds above except test objects (the prefix).
    A call CloudTower does not serve (404) is noted, not fatal: that kind is then not compared."""
    from .base import ApiError

    out: dict[str, list[list[str]]] = {}
    notes: list[str] = []
    for kind, (call, body) in SNAPSHOT_CALLS.items():
        try:
            items = ct.rest(call, body(cluster_id)) or []
        except ApiError as exc:
            if exc.status == 404:
                notes.append(f"CloudTower 不提供 {call}，{kind} 不做比较 / CloudTower serves no {call}: {kind} not compared")
                continue
            raise
        if kind == "vlans" and vds_ids is not None:
            items = [v for v in items if (v.get("vds") or {}).get("id") in vds_ids]
        out[kind] = sorted([str(o.get("id")), str(o.get("name") or ""), _digest(o)] for o in items
                           if isinstance(o, dict) and not is_test_object(o.get("name")))
    try:   # the OBS instances (GraphQL, as stage 07a reads them)
        from . import obs

        out["obs-instances"] = sorted([str(i.get("id")), str(i.get("name") or ""), _digest(i)]
                                      for i in obs.instances(obs.inventory(ct)) if isinstance(i, dict))
    except (ApiError, AssertionError) as exc:
        notes.append(f"读不到 OBS 实例，OBS 不做比较 / the OBS instances could not be read: not compared ({exc})"[:300])
    return out, notes


def compare_snapshots(before: dict[str, list[list[str]]], after: dict[str, list[list[str]]]) -> list[list[str]]:
    """``[kind, name, id, change]`` for every customer object missing or changed since ``before`` (new objects that are
    not test objects too: something else changed the cluster meanwhile -- said, not failed, by the caller)."""
    out: list[list[str]] = []
    for kind, items in before.items():
        now = {i: (n, d) for i, n, d in after.get(kind, [])}
        for oid, name, digest in items:
            if oid not in now:
                out.append([kind, name, oid, "missing"])
            elif now[oid][1] != digest:
                out.append([kind, name, oid, "changed"])
        was = {i for i, _, _ in items}
        out += [[kind, n, i, "new"] for i, n, _ in after.get(kind, []) if i not in was]
    return out


# --------------------------------------------------------------------------- small helpers
def first(answer: Any) -> dict:
    """The first ``{data, task_id}`` item of a REST answer (:func:`clients.ct_cluster.answers`), or ``{}``."""
    return next(iter(answers(answer)), {})


# --------------------------------------------------------------------------- SSH into a test VM
SIM_PASSWORD = STAND_IN_PASSWORD       # the simulated FIO image's account (mocks/README.md "Test VMs"); never real gear
KNOWN_HOSTS = "known_hosts.test-vms"   # test VMs' host keys apart from the cluster's: they come and go (11 drops it)


def vm_password(run) -> str:
    """The FIO image's SSH password: --test-vm-password (or SMTX_TEST_VM_PASSWORD); the simulated image's own when
    simulating without one (09.image refuses a real run without it)."""
    if run.workloads.password:
        return run.workloads.password
    assert run.simulate, "未给出 --test-vm-password / --test-vm-password is missing"
    return SIM_PASSWORD


def vm_ssh(run, amap, ip: str):
    """An unconnected :class:`clients.ssh.SshClient` to a test VM (its host key pinned in its own known_hosts)."""
    from .ssh import SshClient

    return SshClient(ip, amap=amap, username=run.workloads.user, password=vm_password(run),
                     known_hosts=run.run_dir / KNOWN_HOSTS)


def ssh_answers(run, amap, name: str, ip: str) -> bool:
    """Whether the test VM at ``ip`` takes an SSH login and runs a command; a refused login fails at once (the account
    is wrong, waiting does not help)."""
    from .ssh.errors import SshAuthError, SshError

    client = vm_ssh(run, amap, ip)
    try:
        return client.connect().run("true", timeout=30).ok
    except SshAuthError as exc:
        raise AssertionError(f"{name} 拒绝 SSH 登录（{run.workloads.user}）/ {name} refused the SSH login "
                             f"({run.workloads.user})\n下一步 / next: 用 --test-vm-user / --test-vm-password 给出 FIO "
                             f"镜像的账号后用 --resume 续跑 / give the FIO image's account with --test-vm-user / "
                             f"--test-vm-password, then continue with --resume") from exc
    except (SshError, OSError):
        return False
    finally:
        client.close()
