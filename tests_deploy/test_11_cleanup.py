"""11 收尾清理 / Stage 11: remove what the run created for testing, and prove the customer's state is untouched.

Sources: ../shared/reference/cloudtower-stage06-09-11-api-facts.md §5 (delete calls, leftover queries). The guide has
only the heading ("待补充").

* **What is removed**: the test VMs (powered off first: whether ``delete-vm`` takes a running VM is not known, open
  question 6) and their volumes (whether they go with the VM is not known either: volumes still listed after the VM
  are deleted with ``delete-vm-volume``; simulator profiles ``vm-delete-volumes-with-vm`` / ``-kept``), and the
  image upload tasks that did not finish (``cancel-upload-task``; finished ones are records with no delete call in the
  SDK). Path A (stage 09) leaves no image, template or content-library object behind.
* **How they are found**: the ids this run recorded (facts and intents) **and** the name prefix
  ``smtx-acceptance-fio-``; an object is removed only when both its cluster is ours and its name carries the prefix --
  never by a broad pattern, never a customer VM.
* **When**: the steps depend on 05.cluster only, so a run whose stage 09 or 10 failed still removes what it created.
  ``--keep-test-vms`` keeps them (and says so). A resumed run after the cleanup builds the test VMs again (their steps
  are marked undone).
* **Verify** (11.verify): no test VM, no test volume and no unfinished upload of this run is left, and every customer
  object of 09.snapshot is still there unchanged. A new non-test object is reported, not failed (the customer may
  have created something meanwhile).
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from clients import ct_vms, workloads
from clients.ct_cluster import wait_task
from fixtures.outputs import CleanupSummary, CloudTowerCluster, CustomerSnapshot, TestImageUpload, TestVms

pytestmark = pytest.mark.stage11

NA = ("规划表没有测试用临时 IP 范围（集群管理信息!E18–E19），没有测试对象需要清理",
      "the plan has no temporary test range (集群管理信息!E18–E19): no test object to clean up")
APPLIES = (lambda plan: bool(plan.test_addresses()), *NA)
UNDONE = ["09.import", "09.clones", "09.start", "09.ip", "10.disks"]
UNFINISHED = ("INITIALIZING", "UPLOADING", "PAUSED", "FAILED")


def _cluster_id(state) -> str:
    return state.need(CloudTowerCluster, "05.cluster", "id").id


def _wait(cloudtower, task_id: str | None, what: str, pacing) -> None:
    wait_task(cloudtower, task_id, what, pacing, limit=900, next_step=(
        f"在 CloudTower 中手动删除以 {workloads.TEST_VM_PREFIX} 开头的对象，然后用 --resume 续跑",
        f"remove the objects named {workloads.TEST_VM_PREFIX}… in CloudTower, then continue with --resume"))


def _recorded_vm_ids(state) -> set[str]:
    ids = {v.get("id") for v in (state.take(TestVms) or TestVms()).vms if v.get("id")}
    for key, rec in (state.data.get("intents") or {}).items():
        if key.split("/")[0] in ("09.import", "09.clones") and rec.get("vm_id"):
            ids.add(rec["vm_id"])
    return ids


def _our_test_vms(cloudtower, state, cid: str) -> list[dict]:
    """Test VMs of this cluster: the recorded ids and the prefix, and only ever VMs whose name carries the prefix."""
    by_prefix = ct_vms.vms(cloudtower, prefix=workloads.TEST_VM_PREFIX)
    ids = _recorded_vm_ids(state)
    by_id = ct_vms.vms(cloudtower, ids=sorted(ids)) if ids else []
    seen, out = set(), []
    for v in by_prefix + by_id:
        if v.get("id") in seen or not workloads.is_test_object(v.get("name")):
            continue
        if (v.get("cluster") or {}).get("id") not in (None, cid):
            continue
        seen.add(v.get("id"))
        out.append(v)
    return out


# =========================================================================== 11.vms
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="11.vms", depends=["05.cluster"], scope="session")
def test_remove_test_vms(run, cloudtower, state, step, pacing):
    """删除测试虚拟机及其卷（先关机）/ Remove the test VMs and their volumes (powered off first)

    Found by the ids this run recorded and the name prefix; runs even when stage 09 or 10 failed. --keep-test-vms
    keeps them."""
    if run.workloads.keep:
        state.put(CleanupSummary(kept=True))
        step.not_applicable("按 --keep-test-vms 保留测试虚拟机", "the test VMs are kept (--keep-test-vms)")
    cid = _cluster_id(state)
    summary = state.take(CleanupSummary) or CleanupSummary()
    removed = [r for r in summary.removed]
    vms = _our_test_vms(cloudtower, state, cid)
    for vm in vms:
        volumes = sorted({(d.get("vm_volume") or {}).get("id") for d in ct_vms.vm_disks(cloudtower, vm["id"])} - {None})
        if vm.get("status") not in ("STOPPED", None):
            _wait(cloudtower, workloads.first(ct_vms.poweroff_vm(cloudtower, vm["id"])).get("task_id"),
                  f"关机 / power off {vm['name']}", pacing)
        _wait(cloudtower, workloads.first(ct_vms.delete_vm(cloudtower, vm["id"])).get("task_id"),
              f"删除 / delete {vm['name']}", pacing)
        removed.append(["VM", vm["name"], vm["id"]])
        for vol in ct_vms.vm_volumes(cloudtower, ids=volumes) if volumes else []:
            _wait(cloudtower, workloads.first(ct_vms.delete_vm_volume(cloudtower, vol["id"])).get("task_id"),
                  f"删除卷 / delete volume {vol.get('name')}", pacing)
            removed.append(["卷 / volume", vol.get("name") or "-", vol["id"]])
    (run.run_dir / workloads.KNOWN_HOSTS).unlink(missing_ok=True)
    if vms:
        state.undo_steps(UNDONE, "11.vms")
    state.put(CleanupSummary(removed=removed))
    step.note(f"已删除 {len(vms)} 台测试虚拟机 / removed {len(vms)} test VMs" +
              (": " + ", ".join(r[1] for r in removed) if removed else ""))


# =========================================================================== 11.uploads
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="11.uploads", depends=["05.cluster"], scope="session")
def test_cancel_uploads(run, cloudtower, state, step):
    """取消本次运行未完成的镜像上传任务 / Cancel the image upload tasks of this run that did not finish

    Only the tasks this run recorded (the upload journal and 09.import's record). A finished upload task is a record
    CloudTower keeps (the SDK has no delete call for it); no image or template was created (path A)."""
    if run.workloads.keep:
        step.not_applicable("按 --keep-test-vms 保留测试对象", "the test objects are kept (--keep-test-vms)")
    ids = _recorded_upload_ids(state)
    summary = state.take(CleanupSummary) or CleanupSummary()
    removed = list(summary.removed)
    cancelled = 0
    for t in ct_vms.upload_tasks(cloudtower, ids=sorted(ids)) if ids else []:
        if t.get("status") in UNFINISHED:
            ct_vms.cancel_upload_task(cloudtower, [t["id"]])
            removed.append(["上传任务 / upload task", (t.get("args") or {}).get("name") or "-", t["id"]])
            cancelled += 1
    state.put(CleanupSummary(removed=removed, kept=summary.kept))
    step.note(f"取消了 {cancelled} 个未完成的上传任务（记录的 {len(ids)} 个中）/ cancelled {cancelled} unfinished upload "
              f"tasks (of {len(ids)} recorded)")


def _recorded_upload_ids(state) -> set[str]:
    ids = {row[1] for row in (state.take(TestImageUpload) or TestImageUpload()).uploads if len(row) > 1 and row[1]}
    for key, value in (state.data.get("outputs") or {}).items():
        if key.startswith("test_image_upload/") and isinstance(value, dict):
            vol = value.get("volume") or value
            if isinstance(vol, dict) and vol.get("image_uuid"):
                ids.add(vol["image_uuid"])
    return ids


# =========================================================================== 11.verify
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="11.verify", depends=["05.cluster"], scope="session")
def test_verify(run, cloudtower, state, step):
    """核对：集群中没有测试对象，客户的对象与测试前一致 / Verify: no test object is left, and the customer's objects are
    as they were before the tests"""
    cid = _cluster_id(state)
    summary = state.take(CleanupSummary) or CleanupSummary()
    leftovers: list[list[str]] = []
    if not run.workloads.keep:
        leftovers += [["VM", v["name"], v["id"]] for v in _our_test_vms(cloudtower, state, cid)]
        leftovers += [["卷 / volume", v.get("name"), v["id"]]
                      for v in ct_vms.vm_volumes(cloudtower, name_prefix=workloads.TEST_VM_PREFIX)]
        ids = _recorded_upload_ids(state)
        leftovers += [["上传任务 / upload task", (t.get("args") or {}).get("name") or "-", t["id"]]
                      for t in (ct_vms.upload_tasks(cloudtower, ids=sorted(ids)) if ids else [])
                      if t.get("status") in UNFINISHED]
    snap = state.take(CustomerSnapshot)
    changes: list[list[str]] = []
    if snap and snap.objects:
        vds_ids = [v["id"] for v in cloudtower.rest("get-vdses", {"where": {"cluster": {"id": cid}}}) or []]
        now, notes = workloads.customer_snapshot(cloudtower, cid, vds_ids)
        for n in notes:
            step.note(n)
        step.save("customer-state-after.json", now)
        changes = workloads.compare_snapshots(snap.objects, now)
    else:
        step.note("没有测试前的客户状态快照（09.snapshot 未运行），未做比较 / no snapshot of the customer's state from "
                  "before the tests (09.snapshot did not run): not compared")
    broken = [c for c in changes if c[3] != "new"]
    state.put(CleanupSummary(removed=summary.removed, kept=summary.kept or run.workloads.keep, leftovers=leftovers,
                             customer_changes=changes,
                             verified=bool(snap and snap.objects) and not leftovers and not broken, checked=True,
                             compared=bool(snap and snap.objects)))
    for c in changes:
        if c[3] == "new":
            step.note(f"测试期间出现了新的对象 {c[0]} {c[1]}（非测试对象，未处理）/ a new object appeared meanwhile: "
                      f"{c[0]} {c[1]} (not a test object; left alone)")
    assert not leftovers, (
        "仍有测试对象 / test objects are left: " + ", ".join(f"{k} {n} ({i})" for k, n, i in leftovers) +
        f"\n下一步 / next: 用 --resume 重跑清理，或在 CloudTower 中删除以 {workloads.TEST_VM_PREFIX} 开头的对象 / run the "
        f"cleanup again with --resume, or remove the objects named {workloads.TEST_VM_PREFIX}… in CloudTower")
    assert not broken, (
        "客户的对象与测试前不同 / the customer's objects differ from before the tests: " +
        ", ".join(f"{k} {n} ({i}): {what}" for k, n, i, what in broken) +
        "\n下一步 / next: 对照 evidence 中的 customer-state-before.json 与 customer-state-after.json 核查 / compare "
        "customer-state-before.json and customer-state-after.json in the evidence")
    step.note(f"清理完成并核对（{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC）/ cleanup verified")
