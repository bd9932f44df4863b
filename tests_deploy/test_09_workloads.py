"""09 测试负载 / Stage 09: the FIO test VMs -- imported from OVF through CloudTower, one per host, on the test range.

Sources: ../shared/reference/cloudtower-stage06-09-11-api-facts.md §3 (OVF parse, upload, import; clone; NIC; start;
VM state) and the guide's §09 headings (import the OVF, configure the NIC, start, set the IP). The plumbing is
clients/ct_vms.py (CloudTower VM calls, the image upload through the one uploader), clients/testvm_image.py (the image)
and clients/workloads.py (the plan of test VMs, the network, the customer's snapshot).

Decisions where the sources are silent (the issue leaves the path open):

* **Path A, import then clone.** The first test VM is imported from the OVF (``parse-ovf``, ``upload-elf-file`` chunked
  and streamed, ``import-vm``), stopped; the others are full clones of it (``clone-vm``), each on its own host with its
  own NIC settings. One upload whatever the number of VMs (an FIO image is GBs; 16 uploads would be 16 times the
  traffic), no content-library template left behind to clean up, and no dependency on cloud-init, which a template's
  NIC addressing needs (facts §3: "when creating from a template, the NIC's IP cannot be set") and which the FIO image
  may not have (open question 3).
* **PAT is left out** (its API is documented nowhere we have); only the FIO path is built.
* The NIC goes on the VM network whose subnet holds the test range (集群管理信息!E18–E19): in the vendor template the
  management subnet, i.e. the VM network ``default`` on the management VDS; its ``connect_vlan_id`` is the CloudTower
  Vlan id. The IP comes from the test range, in order; 01.addresses already checks those addresses are free.
* **The IP**: sent with the import / clone NIC settings. Whether CloudTower applies them without cloud-init is not
  known (open question 3), so once VM tools run the guest's own address list (``guest_info_ip_addresses``) decides;
  where the address is not there, ``update-vm-nic`` sets it through VM tools. Both behaviours are simulator profiles
  (``vm-nic-ip-import`` / ``vm-nic-ip-update``); the suite passes under both.
* One test VM per host by default (``--test-vms N`` otherwise), capped by the test range's addresses and by the hosts
  (each VM on a distinct host); the report says when a cap applied. Names carry the prefix ``smtx-acceptance-fio-``:
  cleanup (stage 11) matches only that prefix and the ids this run recorded.
* The customer's CloudTower state is snapshotted (09.snapshot) before any test object exists; stage 11 compares.
* Import, clones and starts are long operations: intents are recorded before each call and a resumed run reattaches
  to the task it started; the image upload journals its task so a resumed upload continues, never restarts.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from clients import ct_vms, testvm_image, workloads
from clients.ct_cluster import wait_task
from clients.poll import WaitTimeout, wait_for
from clients.upload import StateJournal
from fixtures.outputs import (CloudTowerCluster, CustomerSnapshot, TestImage, TestImageUpload, TestNetwork,
                              TestVmPlan, TestVms)

pytestmark = pytest.mark.stage09

NA = ("规划表没有测试用临时 IP 范围（集群管理信息!E18–E19），不做测试负载与性能验收",
      "the plan has no temporary test range (集群管理信息!E18–E19): no test workloads, no performance acceptance")
APPLIES = (lambda plan: bool(plan.test_addresses()), *NA)
POLL_S = 5
IMAGE_DIR = ".smtx-test-image"


# =========================================================================== shared
def _limit(run) -> float:
    return run.workloads.timeout_min * 60


def _task_wait(cloudtower, task_id: str | None, what: str, run, pacing) -> dict:
    """Wait for one CloudTower task; FAILED fails at once with CloudTower's reason and the next action."""
    return wait_task(cloudtower, task_id, what, pacing, limit=_limit(run), interval=POLL_S, next_step=(
        "在 CloudTower 任务中心查看该任务，排除原因（主机资源、存储空间、镜像）后用 --resume 续跑",
        "check the task in CloudTower (host resources, storage space, the image), then continue with --resume"))


def _cluster_id(state) -> str:
    return state.need(CloudTowerCluster, "05.cluster", "id").id


def _hosts_by_ip(cloudtower, cluster_id: str) -> dict[str, dict]:
    return {h.get("management_ip"): h for h in cloudtower.hosts(cluster_id)}


def _vm_plan(state) -> TestVmPlan:
    return state.need(TestVmPlan, "09.plan", "vms")


def _by_name(cloudtower, names: list[str]) -> dict[str, dict]:
    return {v.get("name"): v for v in ct_vms.vms(cloudtower, names=names) if not v.get("in_recycle_bin")}


# =========================================================================== 09.snapshot
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="09.snapshot", depends=["05.cluster"], scope="session")
def test_customer_snapshot(cloudtower, state, step):
    """记录测试前的客户状态（虚拟机、网络、策略、监控视图、备份服务）/ Record the customer's state before any test object
    exists (VMs, networks, policies, views, backup service)

    Stage 11 compares against it: cleanup must leave the customer's objects as they were. Test objects (the name
    prefix) are never part of it, so it is taken again whenever this step runs: a resumed run that re-ran earlier
    steps (e.g. a dashboard 06 finished only now) compares against the state those steps left, not an older one."""
    cid = _cluster_id(state)
    vds_ids = [v["id"] for v in cloudtower.rest("get-vdses", {"where": {"cluster": {"id": cid}}}) or []]
    objects, notes = workloads.customer_snapshot(cloudtower, cid, vds_ids)
    for n in notes:
        step.note(n)
    step.save("customer-state-before.json", objects)
    state.put(CustomerSnapshot(taken_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), objects=objects))
    step.note("客户状态快照 / customer state: " + ", ".join(f"{k} {len(v)}" for k, v in objects.items()))


# =========================================================================== 09.image
@pytest.mark.preflight
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="09.image", depends=["01.plan"], scope="session")
def test_image(run, state, step):
    """找到 FIO 测试虚拟机镜像（OVF 及其磁盘，或解开的 OVA）并核对 / Find the FIO test VM image (an OVF with its disks,
    or an OVA unpacked here) and check it

    Looked for in --packages (``*fio*.ova`` / ``*fio*.ovf``); the OVF's disks are checked against its references (and
    its manifest's digests where it has one). In --simulate without --packages a small stand-in is generated. On real
    gear the image's SSH password must be given (--test-vm-password or SMTX_TEST_VM_PASSWORD)."""
    work = _image_cache(run)
    image = testvm_image.find_image(run.packages, work) if run.packages else None
    if image is None:
        assert run.simulate, (
            f"在 {run.packages or '（未给出 --packages）'} 中找不到 FIO 测试虚拟机镜像（*fio*.ova 或 *fio*.ovf）/ no FIO "
            f"test VM image (*fio*.ova or *fio*.ovf) in {run.packages or '(no --packages given)'}\n"
            f"下一步 / next: 把 FIO 测试虚拟机镜像放入 --packages 目录后重跑 / put the FIO test VM image into the "
            f"--packages folder, then rerun")
        image = testvm_image.stand_in(work)
        step.note("模拟：使用生成的小型 FIO 测试镜像 / simulated: a small generated FIO test image is used")
    if not run.simulate:
        assert run.workloads.password, (
            "未给出 FIO 测试虚拟机的 SSH 密码 / the FIO test VM's SSH password is missing\n下一步 / next: 用 "
            "--test-vm-password（或环境变量 SMTX_TEST_VM_PASSWORD）给出镜像的 root 密码 / give the image's password "
            "with --test-vm-password (or SMTX_TEST_VM_PASSWORD)")
    fact = TestImage(name=image.name, ovf=str(image.ovf), source=image.source,
                     disks=[[d.path.name, d.size, d.capacity] for d in image.disks], cpu=image.cpu,
                     memory_mib=image.memory // 1024 ** 2 if image.memory else None)
    state.put(fact)
    step.note(f"测试镜像 / test image: {image.name} ({image.source}); " +
              ", ".join(f"{d.path.name} {d.size} B" for d in image.disks))


def _image_cache(run):
    """Where an OVA is unpacked (or the simulated stand-in written): beside the packages when that folder is writable,
    else beside the delivery folder -- never inside it (an OVA is GBs; the delivery folder goes to the customer). A
    later run, and a run after ``-m preflight``, reuses what is already there (same names and sizes)."""
    import os

    if run.packages and os.access(run.packages, os.W_OK):
        return run.packages.resolve() / ".smtx-unpacked"
    return run.run_dir.resolve().parent / IMAGE_DIR      # absolute: the run may name a relative --run-dir


# =========================================================================== 09.plan
@pytest.mark.preflight
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="09.plan", depends=["01.plan"], scope="session")
def test_vm_plan(valid_plan, run, state, step):
    """规划测试虚拟机：每台主机一台，地址取自测试 IP 范围 / Plan the test VMs: one per host, addresses from the test
    range

    ``--test-vms N`` asks for another count. Capped by the addresses of 集群管理信息!E18–E19 and by the hosts (each VM
    on a distinct host); the report says when a cap applied."""
    vp = workloads.plan_test_vms(valid_plan, run.workloads.vms)
    assert vp.slots, "测试 IP 范围没有可用地址 / the test range has no address"
    if vp.capped_by:
        why = {"addresses": (f"测试 IP 范围只有 {vp.addresses} 个地址", f"the test range has {vp.addresses} addresses"),
               "hosts": (f"集群只有 {vp.hosts} 台主机（每台主机最多一台）", f"the cluster has {vp.hosts} hosts (one VM "
                                                             f"per host at most)")}[vp.capped_by]
        step.note(f"测试虚拟机数量由 {vp.wanted} 限为 {len(vp.slots)}：{why[0]} / test VMs capped from {vp.wanted} to "
                  f"{len(vp.slots)}: {why[1]}")
    state.put(TestVmPlan(vms=[[s.name, s.host_ip, s.host_name, s.ip] for s in vp.slots], wanted=vp.wanted,
                         addresses=vp.addresses, capped=vp.capped_by is not None, capped_by=vp.capped_by, requested=run.workloads.vms,
                         disk_gib=run.workloads.disk_gib))
    step.save("test-vms.json", [dataclasses.asdict(s) for s in vp.slots])


# =========================================================================== 09.network
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="09.network", depends=["05.cluster", "09.plan"], scope="session")
def test_network(valid_plan, cloudtower, state, step):
    """找到测试 IP 范围所在子网的虚拟机网络 / Find the VM network whose subnet holds the test range"""
    net = workloads.test_network(valid_plan)
    start, end = valid_plan.test_range
    assert net is not None, (
        f"测试 IP 范围 {start}–{end}（集群管理信息!E18–E19）不在规划的任何子网内 / the test range {start}–{end} "
        f"(集群管理信息!E18–E19) is in none of the planned subnets\n下一步 / next: 把范围改到管理或业务子网内后重跑 / "
        f"move the range into the management or a business subnet, then rerun")
    vlan_id, name = workloads.vm_network_id(cloudtower, _cluster_id(state), net)
    state.put(TestNetwork(vlan_id=vlan_id, name=name, subnet=str(net.subnet), netmask=net.netmask,
                          gateway=str(net.gateway) if net.gateway else None))
    step.note(f"虚拟机网络 / VM network: {name} ({vlan_id}), {net.subnet}")


# =========================================================================== 09.import
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="09.import", depends=["09.image", "09.network", "09.snapshot"], scope="session")
def test_import(run, cloudtower, state, step, pacing):
    """从 OVF 导入第一台测试虚拟机：解析 OVF、分块上传磁盘、导入（带数据盘与网卡）/ Import the first test VM from the OVF:
    parse it, upload its disks in chunks, import it (with its data disk and NIC)

    Found by name first: a rerun imports nothing twice. The upload journals its task (a resumed upload continues from
    the chunk CloudTower last received); the import records an intent, and a resumed run waits for the import it
    started."""
    cid, vp, net = _cluster_id(state), _vm_plan(state), state.need(TestNetwork, "09.network", "vlan_id")
    image = state.need(TestImage, "09.image", "ovf")
    name, host_ip, _host, ip = vp.vms[0]
    hosts = _hosts_by_ip(cloudtower, cid)
    assert host_ip in hosts, f"CloudTower 中找不到主机 {host_ip} / CloudTower lists no host {host_ip}"
    with state.intent("09.import", op="import_vm") as it:
        found = _by_name(cloudtower, [name]).get(name)
        if found is None and it.get("task_id"):
            step.note(f"续跑：等待上次运行提交的导入任务 {it.get('task_id')} / resume: waiting for the import task the "
                      f"interrupted run submitted")
            _task_wait(cloudtower, it.get("task_id"), f"导入 / import {name}", run, pacing)
            found = _by_name(cloudtower, [name]).get(name)
        if found is not None:
            how = "existing"
            step.note(f"测试虚拟机 {name} 已存在，不再导入 / the test VM {name} exists; not imported again")
            _wait_created(cloudtower, found, run, pacing)
            uploads = state.take(TestImageUpload) or TestImageUpload(how="not needed")
        else:
            uploads = (_recorded_upload(cloudtower, state, step, image, it) or
                       _upload(run, cloudtower, state, step, pacing, cid, image))
            it.begin(name=name, host=host_ip)
            item = ct_vms.import_vm(cloudtower, cluster_id=cid, name=name, parsed_ovf=uploads.parsed_ovf,
                                    upload_tasks=[u[1] for u in uploads.uploads], host_id=hosts[host_ip]["id"],
                                    vm_nics=[ct_vms.nic(net.vlan_id, ip, net.netmask, net.gateway)],
                                    new_disks=[ct_vms.new_disk(f"{name}-data", vp.disk_gib * 1024 ** 3)])
            step.save("import-vm.json", item)
            it.attach(task_id=item.get("task_id"), vm_id=(item.get("data") or {}).get("id"))
            _task_wait(cloudtower, item.get("task_id"), f"导入 / import {name}", run, pacing)
            found = _by_name(cloudtower, [name]).get(name)
            assert found, f"导入任务成功但找不到虚拟机 {name} / the import succeeded but CloudTower lists no VM {name}"
            how = "imported"
    vm = _record(found, how, ip, hosts)
    state.put(TestVms(vms=[vm]))
    step.note(f"{name}: {how} ({found.get('id')}) on {vm['host']}")


def _wait_created(cloudtower, vm: dict, run, pacing) -> dict:
    """A VM still being created (``entityAsyncStatus`` CREATING) is waited for."""
    if not vm.get("entityAsyncStatus"):
        return vm
    return wait_for(lambda: _by_name(cloudtower, [vm["name"]]).get(vm["name"]) or {},
                    lambda v: not v or not v.get("entityAsyncStatus"), what=f"{vm['name']} created",
                    interval=POLL_S, limit=_limit(run), pacing=pacing,
                    describe=lambda v: str(v.get("entityAsyncStatus")))


def _upload(run, cloudtower, state, step, pacing, cid: str, image: TestImage) -> TestImageUpload:
    """``parse-ovf``, then every disk through the one uploader (journaled: a resumed upload continues)."""
    ovf = Path(image.ovf)            # absolute: the image cache is outside the delivery folder
    t0 = time.monotonic()
    parsed = ct_vms.parse_ovf(cloudtower, ovf, cid)
    step.save("parsed-ovf.json", parsed)
    rows = []
    for fname, _size, _cap in image.disks:
        task_id, result = ct_vms.upload_disk(cloudtower, cid, ovf.parent / fname, echo=pacing.echo,
                                             journal=StateJournal(state, f"test_image_upload/{fname}"))
        for n in result.notes:
            step.note(n)
        rows.append([fname, task_id, "SUCCESSED"])
        step.note(f"已上传 / uploaded {fname}: {result.size} B")
    fact = TestImageUpload(parsed_ovf=parsed, uploads=rows, seconds=round(time.monotonic() - t0, 1), how="uploaded")
    state.put(fact)
    return fact


def _recorded_upload(cloudtower, state, step, image: TestImage, it) -> TestImageUpload | None:
    """The upload an interrupted run finished and recorded before its import (no intent ended, no test VM recorded
    yet), when every one of its tasks is still SUCCESSED: the disks are not uploaded again."""
    known = state.take(TestImageUpload)
    if known is None or known.how != "uploaded" or not known.parsed_ovf or (
            it.earlier is None and state.take(TestVms) is not None):
        return None
    if sorted(u[0] for u in known.uploads) != sorted(d[0] for d in image.disks):
        return None
    ids = [u[1] for u in known.uploads]
    done = {t.get("id") for t in ct_vms.upload_tasks(cloudtower, ids=ids) if t.get("status") == ct_vms.UPLOAD_DONE}
    if not ids or set(ids) - done:
        return None
    step.note("续跑：磁盘已由上次运行上传完成，不再上传 / resume: the disks were uploaded by the interrupted run; not "
              "uploaded again")
    return known


def _record(vm: dict, how: str, ip: str, hosts: dict[str, dict]) -> dict:
    host = vm.get("host") or {}
    name = host.get("name") or next((h.get("name") for h in hosts.values() if h.get("id") == host.get("id")), None)
    return {"name": vm.get("name"), "id": vm.get("id"), "host_id": host.get("id"), "host": name, "ip": ip, "how": how}


# =========================================================================== 09.clones
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="09.clones", depends=["09.import"], scope="session")
def test_clones(run, cloudtower, state, step, pacing):
    """其余测试虚拟机由第一台完整克隆，各在自己的主机上、各有自己的地址 / The other test VMs: full clones of the first,
    each on its own host with its own address

    Found by name first; each clone records an intent, and a resumed run waits for the clone it started. The source
    must be stopped to be cloned: when it already runs (a rerun that asks for more VMs), it is powered off first."""
    cid, vp, net = _cluster_id(state), _vm_plan(state), state.need(TestNetwork, "09.network", "vlan_id")
    vms = state.need(TestVms, "09.import", "vms")
    src = vms.vms[0]
    hosts = _hosts_by_ip(cloudtower, cid)
    names = [row[0] for row in vp.vms]
    found = _by_name(cloudtower, names)
    records = [src]
    pending: list[tuple[list[str], str | None]] = []
    for row in vp.vms[1:]:
        name, host_ip, _h, ip = row
        with state.intent(f"09.clones/{name}", op="clone_vm") as it:
            if name in found:
                pending.append((row, None))
                continue
            if it.get("task_id"):
                pending.append((row, it.get("task_id")))
                continue
            _stopped(cloudtower, src, run, pacing, step)
            assert host_ip in hosts, f"CloudTower 中找不到主机 {host_ip} / CloudTower lists no host {host_ip}"
            it.begin(name=name, host=host_ip)
            item = ct_vms.clone_vm(cloudtower, src_vm_id=src["id"], cluster_id=cid, name=name,
                                   host_id=hosts[host_ip]["id"], is_full_copy=True,
                                   vm_nics=[ct_vms.nic(net.vlan_id, ip, net.netmask, net.gateway)])
            it.attach(task_id=item.get("task_id"), vm_id=(item.get("data") or {}).get("id"))
            pending.append((row, item.get("task_id")))
    for row, task_id in pending:
        name, _host_ip, _h, ip = row
        how = "existing" if task_id is None else "cloned"
        with state.intent(f"09.clones/{name}", op="clone_vm"):
            _task_wait(cloudtower, task_id, f"克隆 / clone {name}", run, pacing)
        vm = _by_name(cloudtower, [name]).get(name)
        assert vm, f"克隆任务成功但找不到虚拟机 {name} / the clone succeeded but CloudTower lists no VM {name}"
        _wait_created(cloudtower, vm, run, pacing)
        records.append(_record(vm, how, ip, hosts))
    hosts_used = [r["host_id"] for r in records]
    assert len(set(hosts_used)) == len(hosts_used), (
        f"测试虚拟机不在不同主机上 / the test VMs are not on distinct hosts: "
        f"{[(r['name'], r['host']) for r in records]}\n下一步 / next: 在 CloudTower 中迁移或删除后用 --resume 续跑 / "
        f"migrate or delete them in CloudTower, then continue with --resume")
    state.put(TestVms(vms=records))
    step.note("测试虚拟机 / test VMs: " + ", ".join(f"{r['name']} ({r['how']}, {r['host']})" for r in records))


def _stopped(cloudtower, vm: dict, run, pacing, step) -> None:
    cur = _by_name(cloudtower, [vm["name"]]).get(vm["name"]) or {}
    if cur.get("status") == "STOPPED":
        return
    step.note(f"克隆前关闭源虚拟机 {vm['name']} / the source {vm['name']} is powered off before cloning")
    _task_wait(cloudtower, workloads.first(ct_vms.poweroff_vm(cloudtower, vm["id"])).get("task_id"),
               f"关机 / power off {vm['name']}", run, pacing)


# =========================================================================== 09.start
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="09.start", depends=["09.clones"], scope="session")
def test_start(run, cloudtower, state, step, pacing):
    """启动每台测试虚拟机并等待 VM Tools 运行 / Start every test VM and wait for VM tools to run

    A VM already running is not started again. VM tools must come up within --test-vm-timeout: the FIO image needs them
    (the address is read and, where needed, set through them)."""
    vms = state.need(TestVms, "09.clones", "vms")
    current = _by_name(cloudtower, [v["name"] for v in vms.vms])
    for v in vms.vms:
        cur = current.get(v["name"]) or {}
        if cur.get("status") == "RUNNING":
            continue
        with state.intent(f"09.start/{v['name']}", op="start_vm") as it:
            task_id = it.get("task_id")
            if not task_id:
                it.begin(vm_id=v["id"])
                task_id = workloads.first(ct_vms.start_vm(cloudtower, v["id"])).get("task_id")
                it.attach(task_id=task_id)
            _task_wait(cloudtower, task_id, f"开机 / start {v['name']}", run, pacing)

    def tools_up(vm: dict) -> dict:
        def fetch() -> dict:
            return _by_name(cloudtower, [vm["name"]]).get(vm["name"]) or {}

        def done(cur: dict) -> bool:
            if cur.get("status") not in (None, "RUNNING"):
                raise AssertionError(f"{vm['name']} 启动后状态为 {cur.get('status')} / is {cur.get('status')} after "
                                     f"the start\n下一步 / next: 在 CloudTower 中查看该虚拟机的事件后用 --resume 续跑 / "
                                     f"check the VM's events in CloudTower, then continue with --resume")
            return cur.get("vm_tools_status") == "RUNNING"
        try:
            return wait_for(fetch, done, what=f"{vm['name']} VM tools", interval=POLL_S, limit=_limit(run),
                            pacing=pacing, describe=lambda c: f"{c.get('status')}/{c.get('vm_tools_status')}")
        except WaitTimeout:
            raise AssertionError(
                f"{vm['name']} 的 VM Tools 在 {run.workloads.timeout_min:g} 分钟内没有运行 / VM tools never ran in "
                f"{vm['name']} within {run.workloads.timeout_min:g} min\n下一步 / next: FIO 测试镜像需要安装 VM Tools"
                f"（SVT）；在 CloudTower 中为该虚拟机安装 VM Tools 或换用带 VM Tools 的镜像后用 --resume 续跑 / the FIO "
                f"image needs VM tools (SVT): install them in the VM from CloudTower or use an image that has them, "
                f"then continue with --resume") from None

    step.map(tools_up, vms.vms)
    step.note("每台测试虚拟机均已运行且 VM Tools 运行 / every test VM runs with VM tools running")


# =========================================================================== 09.ip
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="09.ip", depends=["09.start"], scope="session")
def test_ip(run, cloudtower, amap, state, step, pacing):
    """确认每台测试虚拟机取得测试范围内的地址并可 SSH 登录 / Make sure every test VM holds its test-range address and
    answers SSH

    The guest's own address list decides; where the address given at import did not take, ``update-vm-nic`` sets it
    (through VM tools) and the step waits for the guest to show it."""
    vms = state.need(TestVms, "09.start", "vms")
    net = state.need(TestNetwork, "09.network", "vlan_id")
    hows: set[str] = set()

    def ready(vm: dict) -> str:
        how = "import"
        nic = _nic(cloudtower, vm)
        if vm["ip"] not in (nic.get("guest_info_ip_addresses") or []):
            how = "update-vm-nic"
            answer = ct_vms.update_nic_ip(cloudtower, vm["id"], int(nic.get("order") or 0), vm["ip"],
                                          net.netmask, net.gateway)
            _task_wait(cloudtower, workloads.first(answer).get("task_id"), f"设置地址 / set the IP of {vm['name']}",
                       run, pacing)
            wait_for(lambda: _nic(cloudtower, vm), lambda n: vm["ip"] in (n.get("guest_info_ip_addresses") or []),
                     what=f"{vm['name']} {vm['ip']}", interval=POLL_S, limit=_limit(run), pacing=pacing,
                     describe=lambda n: str(n.get("guest_info_ip_addresses")))
        wait_for(lambda: _ssh_ok(run, amap, vm), bool, what=f"{vm['name']} SSH {vm['ip']}", interval=POLL_S,
                 limit=_limit(run), pacing=pacing, describe=lambda ok: "no answer")
        return how

    for how in step.map(ready, vms.vms):
        hows.add(how)
    ip_how = "update-vm-nic" if "update-vm-nic" in hows else "import"
    if ip_how == "update-vm-nic":
        step.note("导入时的网卡地址未生效，已通过 update-vm-nic 设置 / the address given at import did not take; set with "
                  "update-vm-nic")
    state.put(dataclasses.replace(vms, ready=True, ip_how=ip_how))
    step.note("每台测试虚拟机均可 SSH 登录 / every test VM answers SSH: " + ", ".join(v["ip"] for v in vms.vms))


def _nic(cloudtower, vm: dict) -> dict:
    nics = ct_vms.vm_nics(cloudtower, vm["id"])
    assert nics, f"{vm['name']} 没有网卡 / has no NIC"
    return nics[0]


def _ssh_ok(run, amap, vm: dict) -> bool:
    return workloads.ssh_answers(run, amap, vm["name"], vm["ip"])
