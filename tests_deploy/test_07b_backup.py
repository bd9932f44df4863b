"""07b 部署备份服务 / Stage 07b: the backup service (iomesh-backup), guide §07 "部署备份".

Sources: ../shared/reference/cloudtower-stage05-08-api-facts.md ("Stage 07b", "Contradictions" 14-18) and the guide
(L2807-L3515). GraphQL goes with the ``connect.sid`` cookie only, as the guide's captures; REST in the official SDK's
shapes. The plumbing is clients/backup.py; each step reads what exists first, so a rerun creates nothing twice.

Decisions where the sources are silent or disagree (the facts file is the arbiter):

* The component is optional (可选): a blank 集群管理信息!E5 makes every step here not applicable. A failure here
  blocks only these steps (they depend on 05.cluster and on each other, never on 07a).
* The storage VDS is this cluster's (``get-vdses`` scoped to the cluster, and only VDSes whose ``cluster.id`` is
  ours), never the first name match across clusters as the older tool. When the plan has its own backup network
  (虚拟网络 row 7: VDS and NICs), that VDS is created first as stage 03 creates the business VDS, and the VLAN goes on
  it; otherwise on the storage VDS as the guide. Either way it is named 虚拟网络!D7, else ``backup-storage-network``
  (the older tool's), with the tag 虚拟网络!F7, else 0 (the guide sends none: facts 07b.3). The service's storage
  NIC uses the new VLAN (contradiction 15: the guide's text and the older tool), not an existing business network.
* The storage IP has no workbook cell: ``--backup-storage-ip`` (required in real mode; a run without it is refused
  at start in one line), else in --simulate a free address of the subnet (the one with E5's host part, as the
  guide's 10.0.20.4 -> 10.0.21.4, else the highest free one), chosen and checked by the preflight step
  07b.storage_ip (inside the storage subnet -- the backup subnet H7 when row 7 has one --, not the network, broadcast,
  gateway or a host's storage IP, and not answering).
* The service is named after 集群管理信息!B5 (default ``backup``), its application ``backup-<name>`` (contradiction
  14); done means RUNNING **and** the install task ``Install Application backup-<name>`` SUCCESSED (the one on the
  service's application: a stale task of an earlier attempt never counts); INSTALL_FAILED / ERROR / a FAILED task
  fail at once with CloudTower's reason.
* ``backup_clusters: {set}`` replaces the list, so the clusters already attached are sent along with ours.
* No API in the guide returns a backup serial: 集群管理信息!M5 is not written (said in the report).
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import replace

import pytest

from clients import backup
from clients.cloudtower import TASK_OK
from clients.ct_cluster import graphql_or_fail, tasks_done
from clients.packages import BACKUP
from clients.poll import wait_for
from clients.upload import StateJournal, upload_file
from fixtures.outputs import (AddressesInUse, BackupNetwork, BackupPackage, BackupServiceFact, BackupStorageIp,
                              CloudTowerCluster, Hosts, Versions)

pytestmark = pytest.mark.stage07

NA = ("规划表没有备份服务地址（集群管理信息!E5），备份为可选组件",
      "the plan has no backup service address (集群管理信息!E5); backup is an optional component")
APPLIES = (lambda plan: plan.components["backup"].ip is not None, *NA)
POLL_S = 5                   # the older tool's 5 s, for the registration, the VLAN task and the install
SERIAL_NOTE = ("部署 API 指南中没有返回备份服务序列号的接口，集群管理信息!M5 未回写 / no API in the deployment guide "
               "returns a backup serial; 集群管理信息!M5 is not written")


# =========================================================================== shared
def _applies(plan, step) -> None:
    if plan.components["backup"].ip is None:
        step.not_applicable(*NA)


def _cluster(cloudtower, state) -> dict:
    known = state.need(CloudTowerCluster, "05.cluster", "id")
    found = cloudtower.clusters(id=known.id)
    assert found, (f"CloudTower 中已没有集群 {known.id} / the cluster {known.id} is gone from CloudTower\n"
                   f"下一步 / next: 用 --resume 续跑阶段 05 以重新关联 / continue with --resume to attach it again")
    return found[0]


def _own_backup_network(plan) -> bool:
    """The plan has its own backup network (虚拟网络 row 7: a VDS and NICs)."""
    return bool(plan.backup.vds and plan.backup.nics)


def _storage_subnet(plan):
    """Where the backup VM's storage NIC lives: the backup network's subnet (H7) when the plan has one, else the
    storage network's (H6)."""
    return plan.backup if _own_backup_network(plan) and plan.backup.subnet else plan.storage


def _taken(plan, net) -> set[str]:
    """Addresses of the subnet the plan gives to something else."""
    out = {str(net.gateway)} if net.gateway else set()
    out |= {str(h.storage_ip) for h in plan.hosts if h.storage_ip}
    out |= {str(ip) for ip in [plan.vip, plan.er_vip, *plan.er_nodes, *(c.ip for c in plan.components.values())]
            if ip}
    return out


def _answers(amap, ip: str) -> bool:
    """Whether something answers at ``ip`` (ping, or 22/80/443). Simulated: an address the simulator does not serve
    has nothing on it (and is never contacted)."""
    if amap.simulate and not any(k[0] == ip for k in amap.mapping):
        return False
    return amap.ping(ip, timeout=1.0) or any(amap.tcp_open(ip, p, timeout=1.0) for p in (22, 80, 443))


# =========================================================================== 07b.storage_ip
@pytest.mark.preflight
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="07b.storage_ip", depends=["01.plan"], scope="session")
def test_storage_ip(plan, run, amap, state, step, deploy_clients):
    """备份虚拟机存储网络地址：在存储子网内且未被占用 / The backup VM's storage IP: inside the storage subnet and free

    ``--backup-storage-ip`` (the workbook has no cell); simulated without it, a free address of the subnet the plan
    leaves unused (E5's host part first, else the highest). An address in use is expected when the cluster is already deployed (a rerun: the backup
    VM may hold it), and then only noted, as 01.addresses does."""
    _applies(plan, step)
    net = _storage_subnet(plan)
    assert net.subnet is not None, (f"规划表没有存储子网（{net.ref('subnet')}）/ the plan has no storage subnet "
                                    f"({net.ref('subnet')})\n下一步 / next: 填写后重跑 / fill it in, then rerun")
    known = state.take(BackupStorageIp)
    value, source = run.backup_storage_ip, "option"
    if not value and known and known.ip:
        value, source = known.ip, known.source      # a resumed run keeps the address it chose
    if not value:
        assert run.simulate, ("未给出 --backup-storage-ip IP（备份虚拟机的存储网络地址）/ --backup-storage-ip IP (the "
                              "backup VM's storage-network address) is missing\n下一步 / next: 在存储子网 "
                              f"{net.subnet} 中选一个空闲地址，加 --backup-storage-ip 后重跑 / pick a free address of "
                              f"{net.subnet} and rerun with --backup-storage-ip")
        taken = _taken(plan, net)
        value = next((str(ip) for ip in _candidates(plan, net) if str(ip) not in taken and not _answers(amap, str(ip))),
                     None)
        source = "simulated-default"
        assert value, f"存储子网 {net.subnet} 中没有空闲地址 / no free address in the storage subnet {net.subnet}"
        step.note(f"模拟：未给出 --backup-storage-ip，使用存储子网中的空闲地址 {value} / simulated: no "
                  f"--backup-storage-ip; using the free address {value} of the storage subnet")
    try:
        ip = ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise AssertionError(f"--backup-storage-ip {value!r} 不是 IPv4 地址 / is not an IPv4 address\n"
                             f"下一步 / next: 给出存储子网 {net.subnet} 中的地址 / give an address of {net.subnet}") from None
    assert ip in net.subnet and ip not in (net.subnet.network_address, net.subnet.broadcast_address), (
        f"备份存储地址 {ip} 不在存储子网 {net.subnet}（{net.ref('subnet')}）内 / the backup storage IP {ip} is not a "
        f"host address of the storage subnet {net.subnet} ({net.ref('subnet')})\n"
        f"下一步 / next: 用 --backup-storage-ip 给出该子网中的空闲地址 / give a free address of it with --backup-storage-ip")
    assert str(ip) not in _taken(plan, net), (
        f"备份存储地址 {ip} 已在规划表中分配（网关、主机存储 IP 或组件地址）/ the backup storage IP {ip} is already "
        f"planned for something else (gateway, a host's storage IP, a component)\n"
        f"下一步 / next: 用 --backup-storage-ip 换一个地址 / choose another with --backup-storage-ip")
    ours = set((state.take(AddressesInUse) or AddressesInUse()).addresses)
    if str(ip) not in ours and _answers(amap, str(ip)):
        assert _deployed(deploy_clients, plan), (
            f"备份存储地址 {ip} 已被占用 / the backup storage IP {ip} is in use\n"
            f"下一步 / next: 释放该地址，或用 --backup-storage-ip 换一个空闲地址 / free it, or choose another free "
            f"address with --backup-storage-ip")
        step.note(f"集群已部署：{ip} 被占用属预期（可能是已部署的备份虚拟机），请确认 / the cluster is already deployed: "
                  f"{ip} in use is expected (the backup VM, perhaps); confirm it")
    state.put(BackupStorageIp(ip=str(ip), subnet=str(net.subnet), netmask=net.netmask, source=source))
    step.note(f"备份存储地址 / backup storage IP: {ip} ({net.subnet}, {source})")


def _candidates(plan, net):
    """Simulated default addresses, best first: the one with the backup address's host part (the guide's 10.0.20.4 ->
    10.0.21.4), then the subnet's from the top."""
    comp, mgmt = plan.components["backup"].ip, plan.mgmt.subnet
    if comp is not None and mgmt is not None and comp in mgmt:
        same = ipaddress.IPv4Address(int(net.subnet.network_address) + int(comp) - int(mgmt.network_address))
        if same in net.subnet and same not in (net.subnet.network_address, net.subnet.broadcast_address):
            yield same
    top, bottom = int(net.subnet.broadcast_address) - 1, int(net.subnet.network_address)
    yield from (ipaddress.IPv4Address(i) for i in range(top, bottom, -1))


def _deployed(deploy_clients, plan) -> bool:
    from clients.base import ApiError

    try:
        return bool(deploy_clients[str(plan.hosts[0].mgmt_ip)].deploy_verify().get("is_deployed"))
    except (ApiError, KeyError, IndexError):
        return False


# =========================================================================== 07b.package
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="07b.package", depends=["05.cluster"], scope="session")
def test_package(valid_plan, run, cloudtower, packages, state, step, pacing):
    """上传（或复用）备份安装包并等待注册 / Upload (or reuse) the backup package and wait until it is registered

    ``cloudTowerApplicationPackages`` (name iomesh-backup) first: the same architecture and version there is reused.
    Else ``createUploadTask`` and 1-based chunks (GraphQL multipart request spec, the chunk size the server answers),
    streamed by the one uploader (clients/upload.py). A chunk whose answer is lost is never sent again blindly:
    ``get-upload-tasks`` (else the package list) says whether the server has it. Then the package list is polled
    until the package is registered (it may take over 30 s), within --backup-timeout. The upload task is recorded
    before its first chunk (a killed run continues it), and once complete (a resumed run only waits)."""
    _applies(valid_plan, step)
    arch = str(_cluster(cloudtower, state).get("architecture") or "X86_64").upper()
    pkg = packages.component(BACKUP, arch, valid_plan.components["backup"].version)
    step.note(f"安装包 / package: {pkg.path.name} ({pkg.arch} {pkg.version}, {pkg.path.stat().st_size} B)")
    listed = backup.packages(cloudtower)
    step.save("packages-before.json", listed)
    found = backup.same_package(listed, arch=pkg.arch, version=pkg.version, filename=pkg.path.name)
    figures: dict = {}
    with state.intent("07b.package", op="upload_backup_package") as it:
        if found:
            how = "reused"
            step.note(f"CloudTower 已有同架构同版本的备份安装包 {found.get('filename')}（{found.get('id')}），不再上传 / "
                      f"the package of this architecture and version is there; not uploaded again")
        elif it.earlier and it.earlier.get("upload_task_id") and _upload_complete(cloudtower, it.earlier):
            how = "resumed"
            figures = {"upload_task_id": it.earlier["upload_task_id"]}
            step.note(f"续跑：上次运行的上传任务 {it.earlier['upload_task_id']} 已完成，只等待注册 / resume: the interrupted "
                      f"run's upload task is complete; waiting for the registration only")
        else:
            how = "uploaded"
            it.begin(file=pkg.path.name, size=pkg.path.stat().st_size)
            api = backup.BackupUpload(cloudtower, name=pkg.path.name)
            result = upload_file(pkg.path, api, echo=pacing.echo, progress_every=pacing.progress_every,
                                 journal=StateJournal(state, "backup_package_upload"))
            for n in result.notes:
                step.note(n)
            task_id = result.volume.get("image_uuid")
            it.attach(upload_task_id=task_id)
            figures = {"upload_task_id": task_id, "chunks": result.chunks_sent,
                       "chunk_size": result.volume.get("chunk_size"), "mb_per_s": round(result.mb_per_s, 1),
                       "confirmed_by": api.confirmed_by}
        t0 = time.monotonic()
        registered = found or _registered(cloudtower, pkg, run.backup_timeout_min * 60, pacing)
    seconds = round((time.monotonic() - t0) / (pacing.scale or 1.0), 1) if not found else None
    step.save("packages.json", backup.packages(cloudtower))
    state.put(BackupPackage(id=registered.get("id"), filename=registered.get("filename"),
                            version=registered.get("version"), architecture=registered.get("architecture"), how=how,
                            register_seconds=seconds, **figures))
    assert registered.get("id"), f"备份安装包没有 ID / the package has no id: {registered}"


def _upload_complete(cloudtower, earlier: dict) -> bool:
    """Whether the upload task an interrupted run recorded is complete (SUCCESSED)."""
    from clients.base import ApiError

    try:
        tasks = backup.upload_tasks(cloudtower, ids=[earlier["upload_task_id"]])
    except ApiError:
        return False
    return any(t.get("id") == earlier["upload_task_id"] and t.get("status") == backup.UPLOAD_DONE for t in tasks)


def _registered(cloudtower, pkg, limit: float, pacing) -> dict:
    """Poll the package list until the uploaded package is registered (by file name, else architecture and
    version): "未找到备份安装包 ID" at the limit, never after the older tool's single 30 s sleep."""
    return wait_for(lambda: backup.same_package(backup.packages(cloudtower), arch=pkg.arch, version=pkg.version,
                                                filename=pkg.path.name) or {},
                    lambda p: bool(p.get("id")), what=f"备份安装包注册 / package registration ({pkg.path.name})",
                    interval=POLL_S, limit=limit, pacing=pacing,
                    describe=lambda p: "已注册 / registered" if p else "未列出 / not listed yet",
                    hint="未找到备份安装包 ID：在 CloudTower 应用包与任务中心查看处理情况；可用 --backup-timeout 放宽上限 / "
                         "no package id: check CloudTower's application packages and tasks; --backup-timeout raises "
                         "the limit")


# =========================================================================== 07b.network
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="07b.network", depends=["05.cluster"], scope="session")
def test_storage_network(valid_plan, run, cloudtower, fisheye, cluster_address, state, step, pacing):
    """备份存储网络：在本集群的存储（或规划的备份）交换机上查找或创建 VLAN / Backup storage network: find or create the
    VLAN on this cluster's storage VDS (or the plan's backup VDS)"""
    _applies(valid_plan, step)
    plan, c = valid_plan, _cluster(cloudtower, state)
    created_vds = False
    name, tag = plan.backup.name or backup.DEFAULT_STORAGE_VLAN, plan.backup.vlan_id or 0
    if _own_backup_network(plan):
        vds_name, on = plan.backup.vds, "backup"
        created_vds = _ensure_backup_vds(plan, cloudtower, fisheye, cluster_address, c, state, step)
    else:
        vds_name, on = plan.storage.vds, "storage"
    vds = _cluster_vds(cloudtower, c, vds_name, run.attach_timeout_min * 60, pacing, step)
    existing = backup.vlans(cloudtower, vds_id=vds["id"], name=name)
    if existing:
        vlan, created = existing[0], False
        step.note(f"{vds['name']} 上已有网络 {name}，复用 / the network {name} exists on {vds['name']}; reused")
    else:
        answer = backup.create_vm_vlan(cloudtower, vds["id"], name, tag)
        step.save("create-vm-vlan.json", answer)
        vlan, created = answer["data"], True
        tasks_done(cloudtower, [answer], f"创建备份存储网络 {name} / create VLAN {name}", pacing)
    back = wait_for(lambda: backup.vlans(cloudtower, vds_id=vds["id"], name=name), lambda vs: bool(vs) and all(
        v.get("entityAsyncStatus") is None for v in vs), what=f"网络 {name} 就绪 / VLAN {name} ready", interval=POLL_S,
        limit=run.attach_timeout_min * 60, pacing=pacing,
        describe=lambda vs: ", ".join(str(v.get("entityAsyncStatus")) for v in vs) or "未列出 / not listed")
    step.save("vlans.json", back)
    state.put(BackupNetwork(vds_id=vds["id"], vds_name=vds["name"], on=on, vds_created=created_vds,
                            vlan_id=back[0].get("id"), vlan_name=name, vlan_tag=back[0].get("vlan_id"),
                            vlan_created=created))
    assert len(back) == 1, f"{vds['name']} 上有 {len(back)} 个 {name} 网络 / {len(back)} networks named {name}: {back}"
    assert back[0].get("id") == vlan.get("id") or not created, f"新建网络回读不一致 / the new VLAN reads back {back}"
    assert back[0].get("vlan_id") == tag, (f"网络 {name} 的 VLAN 为 {back[0].get('vlan_id')}，规划为 {tag} / the VLAN "
                                           f"{name} has tag {back[0].get('vlan_id')}; planned {tag}")


def _cluster_vds(cloudtower, c: dict, name: str, limit: float, pacing, step) -> dict:
    """The VDS ``name`` of this cluster as CloudTower lists it (waited for: a VDS made just now shows after a sync);
    none or several fail with the names there are."""
    seen = wait_for(lambda: backup.vdses(cloudtower, c["id"]), lambda vs: bool(backup.pick_vds(vs, name)),
                    what=f"CloudTower 列出交换机 {name} / VDS {name} listed", interval=POLL_S, limit=limit,
                    pacing=pacing, describe=lambda vs: ", ".join(str(v.get("name")) for v in vs) or "-",
                    hint=f"核对虚拟网络表中的交换机名称 {name} / check the VDS name {name} in 虚拟网络")
    step.save("vdses.json", seen)
    found = backup.pick_vds(seen, name)
    assert len(found) == 1, (f"集群 {c.get('name')} 中名称含 {name} 的交换机有 {len(found)} 个 / {len(found)} VDSes of "
                             f"the cluster match {name}: {[v.get('name') for v in found]}\n下一步 / next: 核对虚拟网络表"
                             f" / check 虚拟网络")
    return found[0]


def _ensure_backup_vds(plan, cloudtower, fisheye, cluster_address, c: dict, state, step) -> bool:
    """The plan's backup VDS (虚拟网络 row 7) on the cluster, created as stage 03 creates the business VDS (fisheye,
    each host's backup NICs); returns whether it was created now."""
    hosts = state.take(Hosts) or Hosts()
    by_ip = {h.get("management_ip"): h.get("local_id") for h in cloudtower.hosts(c["id"])}
    body = {"name": plan.backup.vds, "bond_mode": plan.backup.bond_mode, "hosts_associated": [
        {"host_uuid": hosts.uuid(h.mgmt_ip) or by_ip.get(str(h.mgmt_ip)), "nics_associated": list(plan.backup.nics),
         "data_ip": str(h.storage_ip)} for h in plan.hosts]}
    vds, created = fisheye.ensure_vds(body, wait_job=cluster_address.wait_job,
                                      before_create=lambda b: step.save("backup-vds-request.json", b))
    step.note(f"备份交换机 {plan.backup.vds}（{', '.join(plan.backup.nics)}）" + ("已创建 / created" if created else
              "已存在，复用 / exists; reused"))
    return created


# =========================================================================== 07b.service
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="07b.service", depends=["07b.package", "07b.network", "07b.storage_ip"],
                        scope="session")
def test_backup_service(valid_plan, run, cloudtower, state, step, pacing):
    """创建（或复用）备份服务，等待 RUNNING 且安装任务 SUCCESSED / Create (or reuse) the backup service; wait until it
    is RUNNING and its install task SUCCESSED

    ``createBackupService`` with the guide's payload (management network as the backup network, a new NIC on the
    backup storage VLAN), the intent recorded first: a resumed run reattaches to the service it created (found by
    name), never creates a second. INSTALL_FAILED, ERROR or a FAILED install task fail at once with CloudTower's
    reason (the older tool spun an hour on them); the limit is --backup-timeout."""
    _applies(valid_plan, step)
    comp, c = valid_plan.components["backup"], _cluster(cloudtower, state)
    pkg, net, sip = state.take(BackupPackage), state.take(BackupNetwork), state.take(BackupStorageIp)
    assert pkg and pkg.id and net and net.vlan_id and sip and sip.ip, (
        "07b.package / 07b.network / 07b.storage_ip 没有记录结果 / recorded nothing\n"
        "下一步 / next: 用 --resume 续跑 / continue with --resume")
    name = comp.vm_name
    with state.intent("07b.service", op="create_backup_service") as it:
        found = backup.services(cloudtower, name=name)
        step.save("backup-services-before.json", found)
        if found:
            sid, how = found[0]["id"], "reattached" if it.earlier else "already"
            step.note(f"备份服务 {name} 已存在（{found[0].get('status')}），复用，不重复创建 / the backup service {name} "
                      f"exists ({found[0].get('status')}); reused, not created again")
        else:
            data = backup.service_data(name, pkg.id, mgmt=_mgmt(valid_plan, cloudtower, c, comp),
                                       storage={"ip": sip.ip, "subnet_mask": sip.netmask, "vlan": net.vlan_id})
            step.save("createBackupService-variables.json", {"data": data, "effect": {
                "running_cluster": c["id"], "running_host": "AUTO_SCHEDULE"}})
            it.begin(name=name, epoch=time.time())
            sid = graphql_or_fail(lambda: backup.create_service(cloudtower, data, c["id"]), "创建备份服务",
                                  "createBackupService", "核对安装包、网络与地址后用 --resume 续跑",
                                  "check the package, the networks and the addresses, then continue with --resume")
            it.attach(service_id=sid)
            how = "created"
            step.note(f"已提交创建备份服务 {name}（{sid}）/ createBackupService submitted ({sid})")
        t0 = time.monotonic()
        svc, task = _wait_installed(cloudtower, sid, how, run.backup_timeout_min * 60, pacing)
    step.save("backup-service.json", svc)
    started = it.get("epoch")
    seconds = (time.time() - started) if isinstance(started, (int, float)) and how != "already" \
        else time.monotonic() - t0
    ips = backup.instance_ips(svc)
    state.put(BackupServiceFact(id=svc["id"], name=svc.get("name"), status=svc.get("status"),
                                application_id=(svc.get("application") or {}).get("id"),
                                version=((svc.get("application") or {}).get("package") or {}).get("version"),
                                install_task_id=(task or {}).get("id"), management_ip=str(comp.ip),
                                storage_ip=next((ip for ip in ips if ip != str(comp.ip)), sip.ip), how=how,
                                install_seconds=round(seconds / (pacing.scale or 1.0), 1),
                                clusters=[b.get("name") for b in svc.get("backup_clusters") or []]))
    inuse = state.take(AddressesInUse) or AddressesInUse()
    state.put(inuse.adding(str(comp.ip)).adding(sip.ip))
    if ips and sip.ip not in ips:
        step.note(f"复用的备份服务的存储地址为 {ips}，不是 {sip.ip} / the reused service's addresses are {ips}, not {sip.ip}")
    assert svc.get("status") == backup.SERVICE_OK


def _mgmt(plan, cloudtower, c: dict, comp) -> dict:
    """The management (and backup) network of the service: the plan's network holding 集群管理信息!E5 (the extra
    management network when E5 is in its subnet), and CloudTower's VM network on the management VDS."""
    net = plan.extra_mgmt if plan.extra_mgmt.used and comp.ip in plan.extra_mgmt.subnet else plan.mgmt
    assert net.subnet is not None and comp.ip in net.subnet, (
        f"备份地址 {comp.ip}（{comp.ref('ip')}）不在管理网络 {net.subnet} 内 / the backup address {comp.ip} is not in "
        f"the management subnet {net.subnet}\n下一步 / next: 核对规划表 / check the plan")
    vds = net.vds or plan.mgmt.vds
    ours = [v.get("id") for v in backup.vdses(cloudtower, c["id"])]        # never another cluster's "default"
    vlan = backup.vm_vlan(backup.vlans(cloudtower, vds_ids=ours), vds, net.name)
    assert vlan and vlan.get("id"), (f"CloudTower 中找不到 {vds} 上的虚拟机网络 {net.name or 'default'} / no VM network "
                                     f"{net.name or 'default'} on {vds} in CloudTower\n下一步 / next: 核对虚拟网络表与 "
                                     f"CloudTower 中集群的网络 / check 虚拟网络 and the cluster's networks in CloudTower")
    return {"ip": str(comp.ip), "subnet_mask": net.netmask, "gateway": str(net.gateway), "vlan": vlan["id"]}


def _wait_installed(cloudtower, sid: str, how: str, limit: float, pacing) -> tuple[dict, dict | None]:
    """Until the service is RUNNING and its install task SUCCESSED (a service found RUNNING whose task CloudTower no
    longer lists is taken as installed); INSTALL_FAILED / ERROR / a FAILED task fail at once."""
    def fetch() -> tuple[dict, dict | None]:
        found = backup.services(cloudtower, id=sid)
        assert found, (f"CloudTower 中已没有备份服务 {sid} / the backup service {sid} is gone from CloudTower\n"
                       f"下一步 / next: 用 --resume 续跑以重新创建 / continue with --resume to create it again")
        return found[0], backup.install_task(cloudtower, found[0])

    def done(pair) -> bool:
        svc, task = pair
        reason = backup.install_failure(svc, task)
        assert reason is None, (
            f"备份服务 {svc.get('name')} 安装失败 / the backup service {svc.get('name')} failed to install: {reason}\n"
            f"下一步 / next: 在 CloudTower 任务中心查看安装任务，排除原因后删除该备份服务再用 --resume 续跑 / check the "
            f"install task in CloudTower, fix the cause, delete the backup service, then continue with --resume")
        ok = svc.get("status") == backup.SERVICE_OK
        return ok and ((task or {}).get("status") == TASK_OK or (task is None and how == "already"))

    return wait_for(fetch, done, what="备份服务安装 / backup service install", interval=POLL_S, limit=limit,
                    pacing=pacing, describe=lambda p: f"status={p[0].get('status')}, task="
                                                      f"{(p[1] or {}).get('status', '-')}",
                    hint="在 CloudTower 中查看备份服务与安装任务；可用 --backup-timeout 放宽上限 / check the backup "
                         "service and its install task in CloudTower; --backup-timeout raises the limit")


# =========================================================================== 07b.attach
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="07b.attach", depends=["07b.service"], scope="session")
def test_attach_cluster(valid_plan, cloudtower, state, step):
    """备份服务关联集群并回读 / Attach the cluster to the backup service; read it back

    ``updateBackupService`` with ``backup_clusters: {set: [...]}``: ``set`` replaces the list, so the clusters
    already attached are sent with ours; nothing is written when ours is there."""
    _applies(valid_plan, step)
    known, c = state.take(BackupServiceFact), _cluster(cloudtower, state)
    assert known and known.id, "07b.service 没有记录备份服务 / 07b.service recorded no backup service"
    svc = (backup.services(cloudtower, id=known.id) or [{}])[0]
    ids = [b.get("id") for b in svc.get("backup_clusters") or []]
    if c["id"] in ids:
        how = "already"
        step.note(f"集群 {c.get('name')} 已关联到备份服务，未写入 / the cluster is attached already; nothing written")
    else:
        answer = graphql_or_fail(lambda: backup.set_clusters(cloudtower, known.id, ids + [c["id"]]), "备份服务关联集群",
                                 "updateBackupService", "确认备份服务为 RUNNING、集群已连接后用 --resume 续跑",
                                 "check that the service is RUNNING and the cluster connected, then continue with "
                                 "--resume")
        step.save("updateBackupService.json", answer)
        how = "attached"
    back = (backup.services(cloudtower, id=known.id) or [{}])[0]
    step.save("backup-service.json", back)
    names = [b.get("name") for b in back.get("backup_clusters") or []]
    state.put(replace(known, clusters=names, attach_how=how, status=back.get("status")))
    got = [b.get("id") for b in back.get("backup_clusters") or []]
    assert c["id"] in got, (f"回读的备份服务未关联集群 {c.get('name')} / the service reads back without the cluster "
                            f"{c.get('name')}: {names}\n下一步 / next: 在 CloudTower 备份服务中查看 / check the backup "
                            f"service in CloudTower")
    assert set(ids) <= set(got), f"已关联的其他集群被移除 / other attached clusters were dropped: {ids} -> {got}"


# =========================================================================== 07b.record
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="07b.record", depends=["07b.attach"], scope="session")
def test_record(valid_plan, cloudtower, state, step):
    """记录备份服务：版本、状态、存储网络与地址、关联集群 / Record the backup service: version, state, storage network
    and IP, attached clusters"""
    _applies(valid_plan, step)
    known = state.take(BackupServiceFact)
    assert known and known.id, "07b.service 没有记录备份服务 / 07b.service recorded no backup service"
    svc = (backup.services(cloudtower, id=known.id) or [{}])[0]
    version = ((svc.get("application") or {}).get("package") or {}).get("version") or known.version
    state.put(replace(known, status=svc.get("status"), version=version, serial_note=SERIAL_NOTE,
                      clusters=[b.get("name") for b in svc.get("backup_clusters") or []]))
    versions = state.take(Versions) or Versions()
    if version:
        state.put(replace(versions, deployed={**versions.deployed, "backup": version}))
    net, sip = state.take(BackupNetwork), state.take(BackupStorageIp)
    step.note(f"备份服务 / backup service {known.name}: {svc.get('status')}, 版本 / version {version}, "
              f"{net.vds_name if net else '-'} / {net.vlan_name if net else '-'}, {sip.ip if sip else '-'}")
    step.note(SERIAL_NOTE)
    assert svc.get("status") == backup.SERVICE_OK, f"备份服务状态为 {svc.get('status')} / the service is {svc.get('status')}"
