"""07a 部署 OBS / Stage 07a: deploy Observability (OBS) and connect it to the cluster (guide §07 "部署OBS").

Sources: ../shared/reference/cloudtower-stage05-08-api-facts.md ("Stage 07a", "Contradictions" 8-12) and the guide's
documents (clients/obs.py keeps them as captured). Order: package (inventory query; upload only when CloudTower lacks
that version), its two processing tasks, the instance and its install, NTP, connected cluster, the CloudTower system
service, DNS inside the OBS VM, record. Every step asserts (the older tool turned every failure after "create" into a
warning). The component is optional (可选): with no OBS IP (集群管理信息!E4) every step is *not applicable*. A failure
blocks only OBS's own steps: they depend on 05.cluster and on each other, never on the backup (07b).

Decisions where the sources are silent or disagree:

* instance name: the workbook's OBS VM name (集群管理信息!B4, default ``observability``; the guide's capture used
  ``obs``, the older tool ``observability``); an instance of that name **or** at the planned IP is reused;
* VLAN: the CloudTower ``Vlan.id`` of the VM network ``default`` on the VDSes of *this* cluster (never the first
  ``default`` CloudTower lists); subnet mask and gateway: the plan's network the OBS IP is in (management, or the
  extra management network), as for CloudTower;
* connected clusters: ``id_in`` may replace the list, so the clusters already connected are sent along;
* the system service is sent once; when the instance already shows a CLOUDTOWER service it is not sent again;
* the OBS VM's SSH: ``o11y`` with the guide's fixed ``HC!r0cks``; when that is refused, the workbook's OBS SSH
  password (集群管理信息!I4), which the customer may have set already;
* no API returns an OBS serial, so 集群管理信息!M4 is never written (07a.record says so)."""
from __future__ import annotations

import dataclasses
import re
import time

import pytest

from clients import obs as O
from clients.base import ApiError
from clients.cloudtower import DEFAULT_ROOT_PASSWORD
from clients.ct_cluster import graphql_or_fail
from clients.packages import OBS as OBS_KIND
from clients.poll import wait_for
from fixtures.outputs import CloudTowerCluster, ObsInstance, ObsPackage, ObsServices

pytestmark = pytest.mark.stage07

OBS_PLANNED = pytest.mark.applies(lambda plan: plan.components["obs"].ip is not None,
                                  "规划表未给出 OBS IP（集群管理信息!E4），OBS 为可选组件",
                                  "the plan gives no OBS IP (集群管理信息!E4); OBS is optional")
TASK_POLL_S, INSTANCE_POLL_S = 5, 10        # the older tool's intervals (facts 07a.3, 07a.4)
SSH_PORT, SSH_USER, SSH_DEFAULT_PASSWORD = 10022, "o11y", DEFAULT_ROOT_PASSWORD   # field notes; facts 07a.8
TIMEOUT_HINT = "可用 --obs-timeout 放宽上限 / --obs-timeout raises the limit"


# =========================================================================== shared
def _obs(plan, step):
    """The planned OBS (集群管理信息 row 4); no IP: the step (and every OBS step after it) is not applicable."""
    obs = plan.components["obs"]
    if obs.ip is None:
        step.not_applicable("规划表未给出 OBS IP（集群管理信息!E4），OBS 为可选组件",
                            "the plan gives no OBS IP (集群管理信息!E4); OBS is optional")
    return obs


def _name(plan) -> str:
    return plan.components["obs"].vm_name or "observability"


def _package(state) -> ObsPackage:
    pkg = state.take(ObsPackage)
    assert pkg and pkg.release, "07a.package 没有记录安装包 / 07a.package recorded no package"
    return pkg


def _instance(state) -> ObsInstance:
    inst = state.take(ObsInstance)
    assert inst and inst.id, "07a.instance 没有记录 OBS 实例 / 07a.instance recorded no OBS instance"
    return inst


def _gql(call, zh: str, en: str):
    """A GraphQL call whose ``errors[]`` fail the step in plain words."""
    return graphql_or_fail(call, zh, en, "在 CloudTower 的可观测性页面查看该实例，排除后用 --resume 续跑",
                           "check the instance on CloudTower's Observability page, then continue with --resume")


def _inventory(cloudtower, step=None, name: str | None = None) -> dict:
    inv = _gql(lambda: O.inventory(cloudtower), "查询 OBS", "observabilityInstanceAndApps")
    if step is not None and name:
        step.save(name, inv)
    return inv


def _current(cloudtower, inst: ObsInstance) -> dict:
    found = O.instance_for(_inventory(cloudtower), id=inst.id)
    assert found, (f"CloudTower 中已没有 OBS 实例 {inst.id} / the OBS instance {inst.id} is gone from CloudTower\n"
                   f"下一步 / next: 用 --resume 从 07a.instance 续跑 / continue from 07a.instance with --resume")
    return found


def _services(state) -> ObsServices:
    return state.take(ObsServices) or ObsServices()


# =========================================================================== 07a.package
@OBS_PLANNED
@pytest.mark.dependency(name="07a.package", depends=["05.cluster"], scope="session")
def test_obs_package(valid_plan, cloudtower, packages, run, state, step, pacing):
    """OBS 安装包：CloudTower 已有同版本则复用，否则上传（初始化、分块、提交）/ OBS package: reuse the same version
    when CloudTower has it, else upload it (init, chunks, commit)

    The package in --packages (highest version for the cluster's architecture; a small real stand-in with --simulate
    and no --packages) is compared by its version as CloudTower records it (``v1.4.2-release.20250926``: no build
    suffix), exactly. The upload checks every chunk's cumulative offset and never re-sends blindly (clients/obs.py).
    Tasks that exist before the commit are recorded as stale, so 07a.package_tasks waits only for this upload's."""
    obs, c = _obs(valid_plan, step), state.need(CloudTowerCluster, "05.cluster", "id")
    arch = str((cloudtower.clusters(id=c.id) or [{}])[0].get("architecture") or "X86_64").upper()
    pkg = packages.component(OBS_KIND, arch, obs.version)
    size = pkg.path.stat().st_size
    base = {"file": pkg.path.name, "release": pkg.release, "arch": arch, "size": size}
    found = O.package_of(_inventory(cloudtower, step, "inventory-before.json"), pkg.release, arch)
    if found:
        step.note(f"CloudTower 已有 OBS 安装包 {pkg.release}（{arch}），不上传 / CloudTower already has the OBS package "
                  f"{pkg.release} ({arch}); not uploaded")
        state.put(ObsPackage(**base, how="already", package_id=found.get("id")))
        return
    ident = {"file": pkg.path.name, "size": size, "mtime_ns": pkg.path.stat().st_mtime_ns}
    with state.intent("07a.package", op="obs_upload") as it:
        same = bool(it.earlier) and all(it.earlier.get(k) == v for k, v in ident.items())
        if same and it.earlier.get("committing") and _committed(cloudtower, it, pkg):
            upload_id, stale = it.earlier.get("upload_id"), list(it.earlier.get("stale_task_ids") or [])
            step.note(f"续跑：上次运行已提交上传 {upload_id}，不重复上传 / resume: the interrupted run committed upload "
                      f"{upload_id}; not uploaded again")
            state.put(ObsPackage(**base, how="uploaded", upload_id=upload_id, stale_task_ids=stale))
            return
        if same and it.earlier.get("committing"):
            upload_id, result = it.earlier.get("upload_id"), None   # complete but not committed: commit it now
        else:
            it.begin(**ident)
            upload_id, result = _upload(cloudtower, pkg.path, it, same, pacing, step)
        stale = [t.get("id") for t in O.package_tasks(cloudtower, pkg.path.name, pkg.release)]
        it.attach(upload_id=upload_id, stale_task_ids=stale, committing=True)
        _commit(cloudtower, upload_id, step)
        it.attach(committed=True)
    state.put(ObsPackage(**base, how="uploaded", upload_id=upload_id, stale_task_ids=stale,
                         mb_per_s=result.mb_per_s if result else None,
                         seconds=round(result.seconds, 1) if result else None))


def _upload(cloudtower, path, it, same: bool, pacing, step):
    """Stream the package (clients.obs.ObsUpload); an upload the interrupted run left is continued when the server's
    state allows. A failed upload is given up in the intent record, so the next run starts a new one."""
    earlier = it.earlier.get("upload_id") if same and it.earlier else None
    up = O.ObsUpload(O.OvmApi(cloudtower), path, echo=pacing.echo, progress_every=pacing.progress_every)
    try:
        result = up.run(record=lambda **ids: it.attach(**ids), earlier=earlier)
    except AssertionError:
        it.attach(abandoned=it.get("upload_id"), upload_id=None)
        raise
    for n in result.notes:
        step.note(n)
    step.note(f"已上传 {path.name}：{result.size} 字节，{result.chunks} 个分块，{result.mb_per_s or '-'} MB/s，"
              f"{result.seconds:.1f} s / uploaded {path.name}: {result.size} bytes in {result.chunks} chunks, "
              f"{result.mb_per_s or '-'} MB/s, {result.seconds:.1f} s (upload {result.upload_id})")
    return result.upload_id, result


def _committed(cloudtower, it, pkg) -> bool:
    """Whether the interrupted run's commit reached the server: it recorded so, or tasks newer than the stale
    ones exist for this package."""
    if it.earlier.get("committed"):
        return True
    stale = set(it.earlier.get("stale_task_ids") or [])
    return any(t.get("id") not in stale for t in O.package_tasks(cloudtower, pkg.path.name, pkg.release))


def _commit(cloudtower, upload_id: str, step) -> None:
    """``…/chunkedUploads/<id>:commit`` with ``x-user-id`` (guide L2304). A lost answer is not sent again: the
    processing tasks (07a.package_tasks) show whether the server took it."""
    try:
        answer = O.OvmApi(cloudtower).commit(upload_id, O.user_id(cloudtower.token))
    except ApiError as exc:
        if exc.status is not None:
            raise
        step.note(f"提交上传的应答丢失（{str(exc).splitlines()[0]}），不重复提交，由安装包处理任务判断 / the commit's answer "
                  f"was lost; not sent again: the package's processing tasks tell whether it was taken")
        return
    step.save("commit.json", answer if isinstance(answer, (dict, list)) else {"answer": answer})


# =========================================================================== 07a.package_tasks
@OBS_PLANNED
@pytest.mark.dependency(name="07a.package_tasks", depends=["07a.package"], scope="session")
def test_obs_package_tasks(valid_plan, cloudtower, run, state, step, pacing):
    """等待安装包处理任务（安装包与应用包两个任务）均为 SUCCESSED / Wait for both package tasks ("Create Installation
    package …", "Create Application package …") to be SUCCESSED

    Only tasks newer than the commit count (those 07a.package saw before it are stale: earlier uploads of the same
    file). A FAILED task fails at once with its ``error_message``. Then the package must be in the inventory."""
    _obs(valid_plan, step)
    pkg = _package(state)
    if pkg.how == "already":
        step.note("安装包已在 CloudTower 中，无处理任务 / the package was already in CloudTower: no processing tasks")
    else:
        tasks = _wait_tasks(cloudtower, pkg, run.obs_timeout_min * 60, pacing)
        step.save("package-tasks.json", tasks)
        pkg = dataclasses.replace(pkg, tasks=[[str(t.get("description")), str(t.get("status"))] for t in tasks])
    found = O.package_of(_inventory(cloudtower, step, "inventory.json"), pkg.release, pkg.arch or "X86_64")
    assert found and found.get("id"), (
        f"处理任务已完成，但 CloudTower 中没有 OBS 安装包 {pkg.release} / the tasks ended but CloudTower lists no OBS "
        f"package {pkg.release}\n下一步 / next: 在 CloudTower 的安装包列表中查看，必要时删除后用 --resume 重新上传 / check "
        f"CloudTower's package list; delete a broken one and continue with --resume to upload again")
    state.put(dataclasses.replace(pkg, package_id=found["id"]))


def _wait_tasks(cloudtower, pkg: ObsPackage, limit: float, pacing) -> list[dict]:
    stale = set(pkg.stale_task_ids)

    def fetch() -> list[dict]:
        return [t for t in O.package_tasks(cloudtower, pkg.file or "", pkg.release or "") if t.get("id") not in stale]

    def done(tasks: list[dict]) -> bool:
        for t in tasks:
            if t.get("status") == "FAILED":
                raise AssertionError(
                    f"OBS 安装包处理任务失败：{t.get('description')}：{t.get('error_message') or '-'} / an OBS package "
                    f"task failed: {t.get('description')}: {t.get('error_message') or '-'} (task {t.get('id')})\n"
                    f"下一步 / next: 在 CloudTower 任务中心查看该任务，核对安装包文件完整（大小、校验和）后用 --resume 续跑 / check "
                    f"the task in CloudTower and the package file (size, checksum), then continue with --resume")
        kinds = {O.task_kind(t, pkg.file or "", pkg.release or ""): t.get("status") for t in tasks}
        return kinds.get("installation") == "SUCCESSED" and kinds.get("application") == "SUCCESSED"

    def describe(tasks: list[dict]) -> str:
        return "; ".join(f"{O.task_kind(t, pkg.file or '', pkg.release or '')}={t.get('status')}" for t in tasks) \
            or "尚无任务 / no task yet"

    return wait_for(fetch, done, what="OBS 安装包处理 / OBS package processing", interval=TASK_POLL_S, limit=limit,
                    pacing=pacing, describe=describe,
                    hint="在 CloudTower 任务中心查看安装包任务；" + TIMEOUT_HINT.split(" / ")[0] + " / check the package "
                         "tasks in CloudTower; " + TIMEOUT_HINT.split(" / ")[1])


# =========================================================================== 07a.instance
@OBS_PLANNED
@pytest.mark.dependency(name="07a.instance", depends=["07a.package_tasks"], scope="session")
def test_obs_instance(valid_plan, cloudtower, run, state, step, pacing):
    """创建 OBS 实例并等待安装完成（SUCCESS 且虚拟机 RUNNING）/ Create the OBS instance and wait for its install
    (status SUCCESS and its VM RUNNING)

    ``createBundleApplicationInstance`` with the guide's fixed VM spec, the OBS IP (集群管理信息!E4) and this
    cluster's ``default`` VM network. An instance of the same name or IP is reused; a resumed run reattaches to the
    one it created. The install is polled every 10 s with progress lines, up to --obs-timeout; FAILED fails at once,
    a stuck install at the limit, both with the last status seen."""
    obs, c, pkg = _obs(valid_plan, step), state.need(CloudTowerCluster, "05.cluster", "id"), _package(state)
    assert pkg.package_id, "07a.package_tasks 没有记录安装包 ID / 07a.package_tasks recorded no package id"
    name, ip = _name(valid_plan), str(obs.ip)
    t0, vlan_id = time.time(), None
    with state.intent("07a.instance", op="create_obs_instance") as it:
        inst = O.instance_for(_inventory(cloudtower, step, "inventory-before.json"), id=it.get("instance_id"),
                              name=name, ip=ip)
        if inst:
            how = _reuse(inst, name, ip, it, step)
            t0 = it.get("epoch") or t0
        else:
            vlan_id = _vlan(cloudtower, c, step)
            data = _instance_data(valid_plan, name, ip, pkg.package_id, c.id, vlan_id)
            step.save("create-instance.json", data)
            it.begin(name=name, ip=ip, epoch=t0)
            created = _gql(lambda: O.create_instance(cloudtower, data), "创建 OBS 实例", "createBundleApplicationInstance")
            assert created.get("id"), f"创建 OBS 实例未返回 ID / createBundleApplicationInstance answered no id: {created}"
            it.attach(instance_id=created["id"])
            inst, how = created, "created"
            step.note(f"已创建 OBS 实例 {name}（{created['id']}），等待安装 / created the OBS instance {name}; waiting for "
                      f"its install")
        done = _wait_installed(cloudtower, inst["id"], run.obs_timeout_min * 60, pacing)
    step.save("instance.json", done)
    vms = O.vm_states(done)
    state.put(ObsInstance(id=done["id"], name=done.get("name"), ip=(done.get("vm_spec") or {}).get("ip"),
                          vlan_id=(done.get("vm_spec") or {}).get("vlan_id") or vlan_id, package_id=pkg.package_id,
                          version=(done.get("bundle_application_package") or {}).get("version"),
                          status=done.get("status"), vm_status=",".join(vms), health_status=done.get("health_status"),
                          how=how, install_seconds=round((time.time() - t0) / (pacing.scale or 1.0), 1)
                          if how != "already" else None))
    same_ip = [i for i in O.instances(_inventory(cloudtower)) if (i.get("vm_spec") or {}).get("ip") == ip]
    assert len(same_ip) == 1, f"IP {ip} 上有 {len(same_ip)} 个 OBS 实例 / {len(same_ip)} OBS instances at {ip}"


def _reuse(inst: dict, name: str, ip: str, it, step) -> str:
    """An instance CloudTower already has (same name or IP, or the one the interrupted run created)."""
    have_ip = (inst.get("vm_spec") or {}).get("ip")
    assert have_ip == ip, (
        f"CloudTower 已有名为 {inst.get('name')} 的 OBS 实例，但其 IP 为 {have_ip}，规划为 {ip}（集群管理信息!E4）/ "
        f"CloudTower has an OBS instance named {inst.get('name')} at {have_ip}; the plan says {ip} "
        f"(集群管理信息!E4)\n下一步 / next: 核对规划表，或在 CloudTower 中删除该实例后用 --resume 续跑 / check the plan, or "
        f"delete that instance in CloudTower and continue with --resume")
    if str(inst.get("status")) in O.INSTANCE_FAILED:
        _fail_install(inst)
    if it.earlier:
        step.note(f"续跑：接续上次运行创建的 OBS 实例 {inst.get('id')}（{O.describe_instance(inst)}），不重复创建 / resume: "
                  f"reattached to the OBS instance the interrupted run created; not created again")
        return "reattached"
    step.note(f"CloudTower 已有 OBS 实例 {inst.get('name')}（{ip}，{O.describe_instance(inst)}），复用 / CloudTower "
              f"already has the OBS instance {inst.get('name')} at {ip}; reused, not created again")
    return "already"


def _vlan(cloudtower, c: CloudTowerCluster, step) -> str:
    vlan, everywhere = O.cluster_vlan(cloudtower, c.id)
    step.save("vlans-default.json", everywhere)
    assert vlan and vlan.get("id"), (
        f"集群 {c.name or c.id} 上没有名为 default 的虚拟机网络（CloudTower 中同名网络 {len(everywhere)} 个，均不属于该集群）/ "
        f"the cluster {c.name or c.id} has no VM network named default in CloudTower ({len(everywhere)} of that name, "
        f"none on this cluster)\n下一步 / next: 在 CloudTower 中确认集群已同步网络后用 --resume 续跑 / check that CloudTower "
        f"synced the cluster's networks, then continue with --resume")
    if len(everywhere) > 1:
        step.note(f"CloudTower 中有 {len(everywhere)} 个 default 网络，使用本集群的 {vlan['id']} / CloudTower has "
                  f"{len(everywhere)} networks named default; this cluster's ({vlan['id']}) is used")
    return str(vlan["id"])


def _instance_data(plan, name: str, ip: str, package_id: str, cluster_id: str, vlan_id: str) -> dict:
    """The guide's ``createBundleApplicationInstance`` data (L2488): IP from the plan, mask and gateway of the plan's
    network that holds it, the fixed sizes."""
    net = next((n for n in (plan.extra_mgmt, plan.mgmt) if getattr(n, "subnet", None) is not None
                and n.gateway is not None and plan.components["obs"].ip in n.subnet), plan.mgmt)
    return {"name": name, "description": "", "bundle_application_package": {"id": package_id},
            "cluster": {"id": cluster_id}, "host_id": "",
            "vm_spec": {"ip": ip, "subnet_mask": str(net.subnet.netmask), "gateway": str(net.gateway),
                        "vlan_id": vlan_id, **O.VM_SPEC_FIXED}}


def _fail_install(inst: dict) -> None:
    raise AssertionError(
        f"OBS 实例安装失败：{O.describe_instance(inst)}{'，' + inst['error_code'] if inst.get('error_code') else ''} / the "
        f"OBS instance install failed: {O.describe_instance(inst)}\n下一步 / next: 在 CloudTower 的可观测性页面查看失败原因，"
        f"删除该实例后用 --resume 续跑 / see the failure on CloudTower's Observability page, delete the instance, then "
        f"continue with --resume")


def _wait_installed(cloudtower, instance_id: str, limit: float, pacing) -> dict:
    def fetch() -> dict:
        inst = O.instance_for(_inventory(cloudtower), id=instance_id)
        assert inst, (f"CloudTower 中已没有 OBS 实例 {instance_id} / the OBS instance {instance_id} is gone from "
                      f"CloudTower\n下一步 / next: 用 --resume 续跑以重新创建 / continue with --resume to create it again")
        return inst

    def done(inst: dict) -> bool:
        if str(inst.get("status")) in O.INSTANCE_FAILED:
            _fail_install(inst)
        return inst.get("status") == O.INSTANCE_DONE and O.VM_RUNNING in O.vm_states(inst)

    return wait_for(fetch, done, what="OBS 实例安装 / OBS instance install", interval=INSTANCE_POLL_S, limit=limit,
                    pacing=pacing, describe=O.describe_instance,
                    hint="在 CloudTower 的可观测性页面查看安装进度；" + TIMEOUT_HINT.split(" / ")[0]
                         + " / check the install on CloudTower's Observability page; " + TIMEOUT_HINT.split(" / ")[1])


# =========================================================================== 07a.ntp
@OBS_PLANNED
@pytest.mark.dependency(name="07a.ntp", depends=["07a.instance"], scope="session")
def test_obs_ntp(valid_plan, cloudtower, state, step):
    """配置 OBS 的 NTP 服务器 / Set OBS's NTP servers (updateObservabilityNtpUrl)

    Sent comma-joined as the guide does (集群管理信息!E22–E24); the answer joins with ``;``: compared as sets."""
    _obs(valid_plan, step)
    inst = _instance(state)
    want = list(valid_plan.ntp)
    assert want, "规划表没有 NTP 服务器（集群管理信息!E22–E24）/ the plan has no NTP servers (集群管理信息!E22–E24)"
    url = _gql(lambda: O.set_ntp(cloudtower, inst.id, want), "设置 OBS NTP", "updateObservabilityNtpUrl")
    state.put(dataclasses.replace(_services(state), ntp=url))
    assert O.server_set(url) == set(want), (f"OBS 的 NTP 应答与规划不一致 / OBS answered other NTP servers: {url!r}, "
                                            f"planned {want}")


# =========================================================================== 07a.connect_cluster
@OBS_PLANNED
@pytest.mark.dependency(name="07a.connect_cluster", depends=["07a.instance"], scope="session")
def test_obs_connect_cluster(valid_plan, cloudtower, state, step):
    """把集群关联到 OBS，并读回 connected_clusters / Connect the cluster to OBS; read back connected_clusters

    ``updateBundleApplicationInstanceConnectClusters`` with ``id_in``: the clusters already connected are sent along
    (``id_in`` may set the whole list). Nothing is sent when the cluster is connected already."""
    _obs(valid_plan, step)
    inst, c = _instance(state), state.need(CloudTowerCluster, "05.cluster", "id")
    before = [(x.get("cluster") or {}).get("id") for x in _current(cloudtower, inst).get("connected_clusters") or []]
    if c.id in before:
        step.note(f"集群 {c.name or c.id} 已关联到 OBS，未重复关联 / the cluster is connected to OBS already; not sent")
    else:
        answer = _gql(lambda: O.connect_clusters(cloudtower, inst.id, [i for i in before if i] + [c.id]),
                      "关联集群到 OBS", "updateBundleApplicationInstanceConnectClusters")
        step.save("connect-clusters.json", answer)
    now = _current(cloudtower, inst).get("connected_clusters") or []
    step.save("connected-clusters.json", now)
    names = [str((x.get("cluster") or {}).get("name") or x.get("name")) for x in now]
    state.put(dataclasses.replace(_services(state), clusters=names))
    assert c.id in [(x.get("cluster") or {}).get("id") for x in now], (
        f"OBS 的 connected_clusters 中没有集群 {c.name or c.id} / OBS's connected_clusters lack the cluster "
        f"{c.name or c.id}: {names}\n下一步 / next: 在 CloudTower 的可观测性页面关联集群后用 --resume 续跑 / connect it "
        f"on CloudTower's Observability page, then continue with --resume")


# =========================================================================== 07a.system_service
@OBS_PLANNED
@pytest.mark.dependency(name="07a.system_service", depends=["07a.instance"], scope="session")
def test_obs_system_service(valid_plan, cloudtower, state, step):
    """关联 CloudTower 系统服务（指南的 22 条告警规则）/ Connect the CloudTower system service (the guide's 22 alerting
    rules)

    ``updateObservabilityConnectedSystemServices`` (``ovm_name`` fixed ``observability``) with the rules kept verbatim
    in tests_deploy/data/obs_alerting_rules.json and the agent URL on the CloudTower IP. Not sent again when the
    instance already shows a CLOUDTOWER service. The read-back must show it; its status is reported (the guide
    documents no wait, INSTALLING is what it answers)."""
    _obs(valid_plan, step)
    inst = _instance(state)
    have = _current(cloudtower, inst).get("connected_system_services") or []
    service = O.cloudtower_service(str(valid_plan.cloudtower.ip))
    answer: list[dict] = []
    if any(s.get("type") == "CLOUDTOWER" for s in have):
        step.note("OBS 已关联 CloudTower 系统服务，未重复发送 / OBS already has the CloudTower system service; not sent")
    else:
        answer = _gql(lambda: O.connect_system_services(cloudtower, [service]), "关联 CloudTower 系统服务",
                      "updateObservabilityConnectedSystemServices")
        step.save("connected-system-services.json", answer)
        assert any(s.get("type") == "CLOUDTOWER" for s in answer), (
            f"应答中没有 CLOUDTOWER 系统服务 / the answer lists no CLOUDTOWER service: {str(answer)[:300]}")
    now = _current(cloudtower, inst).get("connected_system_services") or []
    said = {s.get("id"): s.get("status") for s in answer}    # the inventory selects no status; the answer does
    listed = [f"{s.get('type')} {s.get('status') or said.get(s.get('id')) or '-'}" for s in now]
    state.put(dataclasses.replace(_services(state), system_services=listed, rules=len(service["alerting_rules"])))
    assert any(s.get("type") == "CLOUDTOWER" for s in now), (
        f"OBS 实例读回没有 CloudTower 系统服务 / the OBS instance reads back no CloudTower system service: {listed}\n"
        f"下一步 / next: 在 CloudTower 的可观测性页面查看系统服务后用 --resume 续跑 / check the system services on "
        f"CloudTower's Observability page, then continue with --resume")


# =========================================================================== 07a.dns
@OBS_PLANNED
@pytest.mark.dependency(name="07a.dns", depends=["07a.instance"], scope="session")
def test_obs_dns(valid_plan, run, amap, state, step):
    """通过 SSH（10022 端口）替换 OBS 虚拟机的 /etc/resolv.conf 并读回 / Replace the OBS VM's /etc/resolv.conf with the
    plan's DNS over SSH (port 10022) and read it back

    The default file has to be replaced, not appended to (field notes): written through ``sudo sh -c`` (the older
    tool's redirections ran outside sudo), then read back: exactly the plan's servers, in order."""
    obs = _obs(valid_plan, step)
    _instance(state)
    want = list(valid_plan.dns)
    assert want, "规划表没有 DNS 服务器 / the plan has no DNS servers"
    with _obs_ssh(valid_plan, run, amap, str(obs.ip), step) as ssh:
        ssh.write_file_sudo("/etc/resolv.conf", "".join(f"nameserver {d}\n" for d in want))
        text = ssh.read_file("/etc/resolv.conf")
    step.save("resolv.conf.txt", text)
    got = re.findall(r"^\s*nameserver\s+(\S+)", text, re.MULTILINE)
    state.put(dataclasses.replace(_services(state), dns=got))
    assert got == want, f"OBS 虚拟机的 resolv.conf 应只列出规划的 DNS / the OBS VM's resolv.conf should list the plan's " \
                        f"DNS only: {got}, planned {want}"


def _obs_ssh(plan, run, amap, ip: str, step):
    """``o11y@<OBS IP>:10022`` with the guide's fixed password; refused: the workbook's (集群管理信息!I4)."""
    from clients.ssh import SshClient
    from clients.ssh.errors import SshAuthError

    known = run.run_dir / "known_hosts"
    tried = [SSH_DEFAULT_PASSWORD] + [p for p in (plan.components["obs"].ssh_password,)
                                      if p and p not in (SSH_DEFAULT_PASSWORD, "N/A", "-")]
    for n, password in enumerate(tried):
        client = SshClient(ip, amap=amap, username=SSH_USER, password=password, port=SSH_PORT, known_hosts=known)
        try:
            return client.connect()
        except SshAuthError:
            client.close()
            if n + 1 == len(tried):
                raise
            step.note("OBS 虚拟机拒绝默认密码，改用规划表的 SSH 密码（集群管理信息!I4）/ the OBS VM refused the default "
                      "password; the workbook's SSH password (集群管理信息!I4) is used")
    raise AssertionError("unreachable")  # pragma: no cover


# =========================================================================== 07a.record
@OBS_PLANNED
@pytest.mark.dependency(name="07a.record", depends=["07a.ntp", "07a.connect_cluster", "07a.system_service",
                                                     "07a.dns"], scope="session")
def test_obs_record(valid_plan, cloudtower, state, step):
    """记录 OBS：版本、实例 ID、虚拟机状态（无序列号可回写）/ Record OBS: version, instance id, VM state (no serial to
    write back)

    The instance as CloudTower shows it now: its package's version must be the one uploaded or reused. No call of the
    guide's OBS section returns a serial, so 集群管理信息!M4 is not written (the step says so)."""
    _obs(valid_plan, step)
    inst, pkg = _instance(state), _package(state)
    now = _current(cloudtower, inst)
    step.save("instance.json", now)
    version = (now.get("bundle_application_package") or {}).get("version")
    state.put(dataclasses.replace(inst, version=version, status=now.get("status"),
                                  vm_status=",".join(O.vm_states(now)), health_status=now.get("health_status")))
    note = ("指南的 OBS 接口均不返回序列号，未回写集群管理信息!M4 / no call of the guide's OBS section returns a serial: "
            "集群管理信息!M4 is not written")
    step.note(note)
    step.note(f"OBS {version}，实例 {inst.id}（{O.describe_instance(now)}）/ OBS {version}, instance {inst.id}")
    state.put(dataclasses.replace(_services(state), serial_note=note))
    assert version == pkg.release, (f"OBS 实例的版本 {version} 不是上传/复用的 {pkg.release} / the OBS instance runs "
                                    f"{version}, not the package {pkg.release}")
    assert now.get("status") == O.INSTANCE_DONE and O.VM_RUNNING in O.vm_states(now), O.describe_instance(now)
