"""10 性能与可靠性验收 / Stage 10: performance acceptance with fio in every test VM at once (and, opt-in, reliability).

The guide plans PAT test tasks here ("待补充", to be supplemented); PAT's API is documented nowhere we have, so it is
left out (README). The anchor is what customers know from VMware's HCIBench: worker VMs driven by fio, IOPS,
throughput and latency reported for the cluster as a whole.

* **Profiles** are a data file (tests_deploy/data/fio_profiles.json): 4k random read, write and 70/30, 1M sequential
  read and write, and a queue-depth-1 latency profile. Each runs in every test VM at once, over SSH, with
  ``--output-format=json``.
* **Time**: each profile runs --perf-duration seconds (default 45) after a short ramp; with the preconditioning the
  whole phase stays within about 10 minutes on real gear (HCIBench's "easy run" spirit); --perf-duration lengthens it.
* **Preconditioning** (10.disks): the data disk of every VM is written once in full (1M sequential) before anything
  is measured, as HCIBench does, so thin-provisioned first writes neither flatter nor spoil the figures.
* **Figures**: fio's JSON is the primary figure, aggregated per profile across VMs (clients/fio.py: IOPS and MB/s
  summed, mean latency weighted by I/Os, p99 and p99.9 the worst VM's). CloudTower's VM metrics over the same window
  (``get-vm-metrics``) are a cross-check where CloudTower serves the metric: both are reported, and a profile where
  they differ by more than 25 % is flagged (not failed: the metric names are partly inferred, facts §4).
* **Thresholds**: tests_deploy/data/perf_thresholds.json (conservative floors per storage architecture, each with its
  source) or --perf-thresholds FILE (e.g. the contract's figures); the report names the file. A profile under its
  threshold fails its step, naming the figure and the threshold -- after its figures are recorded for the report.
* **Reliability** (10.reliability, --reliability only; it changes the cluster's state): while fio runs, each test VM
  is live-migrated once to the next host in turn; no I/O error is allowed, and the throughput in the 30 s after the
  migration must be at least 50 % of the 30 s before (fio's per-second bandwidth log, the guest's clock).
"""
from __future__ import annotations

import dataclasses
import re
import shlex
import threading
import time
from pathlib import Path

import pytest

from clients import ct_vms, fio, workloads
from clients.base import ApiError
from clients.ct_cluster import TaskFailed, wait_task
from clients.poll import WaitTimeout
from fixtures.failures import SUITE
from fixtures.outputs import CloudTowerCluster, PerfResults, ReliabilityResult, TestDisks, TestVmPlan, TestVms

pytestmark = pytest.mark.stage10

NA = ("规划表没有测试用临时 IP 范围（集群管理信息!E18–E19），不做性能验收",
      "the plan has no temporary test range (集群管理信息!E18–E19): no performance acceptance")
APPLIES = (lambda plan: bool(plan.test_addresses()), *NA)
PROFILES = fio.load_profiles()
RUNTIME_S, RAMP_S = 45, 5           # per profile: 6 x 50 s plus preconditioning stays within ~10 min
RELIABILITY_RUNTIME_S = 180         # 30 s before + the migration + 30 s after, with margins
MIGRATE_AFTER_S = 45                # into the reliability run: well past fio's ramp and its first 30 s


# =========================================================================== shared
def _vms(state) -> list[dict]:
    vms = state.need(TestVms, "09.ip", "vms")
    assert vms.ready, "09.ip 未确认测试虚拟机可登录 / 09.ip did not find the test VMs ready"
    return vms.vms


def _run_each(step, run, amap, vms: list[dict], command, timeout: float) -> list[tuple[dict, object]]:
    """Run ``command(vm)`` in every VM at once over SSH: ``[(vm, Result)]``."""
    def one(vm: dict):
        client = workloads.vm_ssh(run, amap, vm["ip"])
        try:
            return vm, client.connect().run(command(vm), timeout=timeout)
        finally:
            client.close()
    return step.map(one, vms)


def _fio_failed(vm: dict, res, what: str) -> AssertionError:
    tail = (res.stderr or res.stdout or "").strip().splitlines()[-3:]
    return AssertionError(
        f"{vm['name']} 上的 fio（{what}）退出码 {res.exit_status}：{' | '.join(tail) or '-'} / fio ({what}) exited "
        f"{res.exit_status} in {vm['name']}: {' | '.join(tail) or '-'}\n下一步 / next: 登录该虚拟机（{vm['ip']}）查看 "
        f"fio 与数据盘，排除后用 --resume 续跑 / log in to the VM ({vm['ip']}), check fio and the data disk, then "
        f"continue with --resume")


def _durations(run) -> tuple[int, int]:
    return (run.workloads.duration_s or RUNTIME_S), RAMP_S


# =========================================================================== 10.disks
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="10.disks", depends=["09.ip"], scope="session")
def test_disks(run, amap, state, step, pacing):
    """找到每台测试虚拟机的 fio 数据盘并预写满一次 / Find each test VM's fio data disk and precondition it (write it
    once in full)

    The data disk is the disk of the planned size (--test-disk-gib) that is not the system disk. Preconditioning is
    not repeated by a resumed run once it is recorded."""
    vms = _vms(state)
    size = state.need(TestVmPlan, "09.plan", "vms").disk_gib * 1024 ** 3
    known = state.take(TestDisks)
    if known and known.preconditioned and set(known.devices) == {v["name"] for v in vms}:
        step.note("数据盘已在上次运行中预写 / the data disks were preconditioned by an earlier run")
        return
    devices: dict[str, str] = {}
    for vm, res in _run_each(step, run, amap, vms, lambda vm: "lsblk -b -d -n -o NAME,SIZE,TYPE", 60):
        assert res.ok, f"{vm['name']}: lsblk 失败 / failed: {res.stderr.strip()[:200]}"
        disks = [ln.split() for ln in res.stdout.splitlines() if len(ln.split()) >= 3 and ln.split()[2] == "disk"]
        found = [d[0] for d in disks[1:] if int(d[1]) == size] or [d[0] for d in disks if int(d[1]) == size]
        assert found, (f"{vm['name']} 中找不到 {size // 1024 ** 3} GiB 的数据盘 / {vm['name']} has no data disk of "
                       f"{size // 1024 ** 3} GiB: {[(d[0], d[1]) for d in disks]}\n下一步 / next: 检查 09.import 的数据盘 / "
                       f"check the data disk 09.import added")
        devices[vm["name"]] = f"/dev/{found[0]}"
    step.save("devices.json", devices)
    t0 = time.monotonic()
    limit = size / 20e6 + 600          # 20 MB/s would be very slow; 10 min margin
    for vm, res in _run_each(step, run, amap, vms, lambda vm: fio.precondition_command(devices[vm["name"]]), limit):
        if not res.ok:
            raise _fio_failed(vm, res, "预写 / preconditioning")
    seconds = round((time.monotonic() - t0) / (pacing.scale or 1.0), 1)
    state.put(TestDisks(devices=devices, size=size, preconditioned=True, seconds=seconds))
    step.note(f"已预写 {len(vms)} 块数据盘（各 {size // 1024 ** 3} GiB，{seconds:g} 秒）/ preconditioned {len(vms)} data "
              f"disks ({size // 1024 ** 3} GiB each, {seconds:g} s)")


# =========================================================================== 10.<profile>
def _thresholds(run):
    path = Path(run.workloads.thresholds) if run.workloads.thresholds else fio.DEFAULT_THRESHOLDS
    return path, fio.load_thresholds(path, profiles=[p.name for p in PROFILES])


def _results(run, state, plan) -> PerfResults:
    known = state.take(PerfResults)
    path, th = _thresholds(run)
    runtime, ramp = _durations(run)
    try:       # the suite's own file by its path in the suite; the customer's as given
        shown = path.resolve().relative_to(SUITE).as_posix()
    except ValueError:
        shown = str(path)
    if known is None or known.thresholds_file != shown:
        known = PerfResults(thresholds_file=shown, thresholds_source=th.source, architecture=plan.storage_arch,
                            hosts=len(plan.hosts), vms=len(_vms(state)), runtime_s=runtime, ramp_s=ramp)
    return known


@pytest.mark.applies(*APPLIES)
@pytest.mark.parametrize("profile", [
    pytest.param(p, id=p.name, marks=pytest.mark.dependency(name=f"10.{p.name}", depends=["10.disks"], scope="session"))
    for p in PROFILES])
def test_profile(profile, valid_plan, run, amap, cloudtower, state, step):
    """fio 测试项：在每台测试虚拟机上同时运行，汇总并与验收阈值比较 / A fio profile: run in every test VM at once,
    aggregated and compared with the acceptance thresholds"""
    vms = _vms(state)
    disks = state.need(TestDisks, "10.disks", "devices")
    runtime, ramp = _durations(run)
    path, th = _thresholds(run)
    cmd = {vm["name"]: fio.fio_command(profile, disks.devices[vm["name"]], runtime, ramp) for vm in vms}
    step.save("command.txt", "\n".join(f"{k}: {v}" for k, v in cmd.items()))
    runs = []
    for vm, res in _run_each(step, run, amap, vms, lambda vm: cmd[vm["name"]], runtime + ramp + 300):
        step.save(f"fio-{vm['name']}.json", res.stdout)
        if not res.ok:
            raise _fio_failed(vm, res, profile.name)
        r = fio.parse_fio_json(res.stdout)
        assert not r.error, (f"{vm['name']} 的 fio 报告 I/O 错误（error={r.error}）/ fio reported an I/O error in "
                             f"{vm['name']} (error={r.error})\n下一步 / next: 检查集群告警与该虚拟机的数据盘后用 --resume 续跑 / "
                             f"check the cluster's alarms and the VM's data disk, then continue with --resume")
        runs.append((vm, r))
    figures = fio.aggregate(profile.name, [r for _, r in runs])
    cross = _cross_check(cloudtower, step, profile, figures, runs)
    judged = fio.judge(figures, th, valid_plan.storage_arch, len(valid_plan.hosts),
                       labels={profile.name: profile.label})
    if not judged:
        step.note(f"阈值文件没有 {valid_plan.storage_arch} / {profile.name} 的阈值，本项只报告不判定 / the thresholds file "
                  f"has no threshold for {valid_plan.storage_arch} / {profile.name}: reported, not judged ({path})")
    res = _results(run, state, valid_plan)
    res.profiles[profile.name] = {"zh": profile.zh, "en": profile.en, "kind": profile.kind,
                                  **fio.figures_dict(figures), "crosscheck": cross,
                                  "judgements": [dataclasses.asdict(j) for j in judged],
                                  "passed": all(j.passed for j in judged) if judged else None}
    state.put(dataclasses.replace(res, profiles=dict(res.profiles)))
    step.note(fio.summary_line(figures))
    for c in cross:
        if c.get("flag"):
            step.note(f"CloudTower 指标与 fio 相差超过 25%：{c['what']} fio {c['fio']:.0f}，CloudTower {c['ct']:.0f} / "
                      f"CloudTower's metric differs from fio by more than 25 %: {c['what']}")
    failed = [j for j in judged if not j.passed]
    assert not failed, "\n".join(f"{j.text_zh} / {j.text_en}" for j in failed) + (
        f"\n阈值文件 / thresholds file: {path}\n下一步 / next: 检查集群负载、网络与磁盘告警；若合同指标不同，用 "
        f"--perf-thresholds 给出后用 --resume 续跑 / check the cluster's load, network and disk alarms; if the contract's "
        f"figures differ, give them with --perf-thresholds, then continue with --resume")


def _cross_check(cloudtower, step, profile, figures, runs) -> list[dict]:
    """CloudTower's VM metrics over the fio window, beside fio's own figures (a metric CloudTower does not serve is
    said, not failed)."""
    start = min(r.start_ms for _, r in runs)
    end = max(r.end_ms for _, r in runs)
    vm_ids = [vm["id"] for vm, _ in runs]
    try:   # the range ends now, on CloudTower's clock: the window (on the guests' clocks) plus a margin
        answer = ct_vms.vm_metrics(cloudtower, vm_ids, list(ct_vms.VM_METRICS), range_s=int((end - start) / 1000) + 300)
    except (ApiError, AssertionError) as exc:      # a cross-check, never the verdict
        step.note(f"读取 CloudTower 虚拟机指标失败，未做交叉核对 / CloudTower's VM metrics could not be read: {exc}")
        return []
    step.save("cloudtower-metrics.json", answer)
    return [c.to_json() for c in fio.cross_check_metrics(figures, answer, vm_ids, start, end)]


# =========================================================================== 10.reliability
@pytest.mark.applies(*APPLIES)
@pytest.mark.dependency(name="10.reliability", depends=["10.disks"], scope="session")
def test_reliability(run, amap, cloudtower, state, step, pacing):
    """可靠性（--reliability）：fio 运行期间把每台测试虚拟机热迁移一次，无 I/O 错误且迁移后吞吐不低于之前的 50% /
    Reliability (--reliability): live-migrate each test VM once while fio runs; no I/O error, and throughput after the
    migration at least 50 % of before

    Off by default: it changes the cluster's state (where the test VMs run). Each VM moves to the next host in turn."""
    if not run.workloads.reliability:
        state.put(ReliabilityResult(ran=False))          # the report says it did not run
        step.not_applicable("未要求可靠性测试（--reliability）", "reliability was not asked for (--reliability)")
    vms = _vms(state)
    disks = state.need(TestDisks, "10.disks", "devices")
    cid = state.need(CloudTowerCluster, "05.cluster", "id").id
    ct_hosts = sorted(cloudtower.hosts(cid), key=lambda h: h.get("management_ip") or "")
    hosts = [h["id"] for h in ct_hosts]
    names = {h["id"]: h.get("name") or h.get("management_ip") for h in ct_hosts}
    assert len(hosts) >= 2, "热迁移至少需要 2 台主机 / live migration needs at least 2 hosts"
    profile = next(p for p in PROFILES if p.name == "1m-seqread") if any(p.name == "1m-seqread" for p in PROFILES) \
        else PROFILES[0]
    results: list[dict] = []
    lock = threading.Lock()

    def one(vm: dict) -> None:
        cur = ct_vms.vms(cloudtower, ids=[vm["id"]])[0]
        src = (cur.get("host") or {}).get("id")
        dst = hosts[(hosts.index(src) + 1) % len(hosts)] if src in hosts else hosts[0]
        log = f"/tmp/smtx-rel-{vm['name']}"
        cmd = fio.fio_command(profile, disks.devices[vm["name"]], RELIABILITY_RUNTIME_S, RAMP_S, bw_log=log)
        client = workloads.vm_ssh(run, amap, vm["ip"]).connect()
        try:
            out: dict = {}
            t = threading.Thread(target=lambda: out.setdefault(
                "res", client.run(cmd, timeout=RELIABILITY_RUNTIME_S + RAMP_S + 300)), daemon=True)
            t.start()
            pacing.sleep(MIGRATE_AFTER_S)
            before = _guest_ms(client, vm)
            answer = ct_vms.migrate_vm(cloudtower, vm["id"], dst)
            task_id = workloads.first(answer).get("task_id")
            ok, why = _migrated(cloudtower, task_id, pacing)
            after = _guest_ms(client, vm)
            t.join()
            res = out.get("res")
            if ok:      # the task says done: the VM must now run on the target host
                now_on = (ct_vms.vms(cloudtower, ids=[vm["id"]])[0].get("host") or {}).get("id")
                ok, why = (True, None) if now_on == dst else (False, f"the VM is on {names.get(now_on, now_on)}, not "
                                                                     f"{names.get(dst, dst)}")
            rec = {"vm": vm["name"], "from_host": src, "to_host": dst, "from_name": names.get(src),
                   "to_name": names.get(dst), "task": task_id, "ok": ok, "why": why}
            if res is None or not res.ok:
                rec.update(io_errors=True, ratio=None)
            else:
                r = fio.parse_fio_json(res.stdout)
                samples = []
                for n, f in enumerate(fio.bw_log_files(log, profile.numjobs), start=1):   # one log per fio job
                    samples += fio.parse_bw_log(client.run(f"cat {shlex.quote(f)}", timeout=60).stdout, job=n)
                b, a, ratio = fio.reliability(samples, before - r.start_ms, after - r.start_ms)
                rec.update(io_errors=bool(r.error), before_mbps=round(b, 1), after_mbps=round(a, 1),
                           ratio=round(ratio, 3) if ratio is not None else None)
            with lock:
                results.append(rec)
        finally:
            client.close()

    step.map(one, vms)
    results.sort(key=lambda r: r["vm"])
    state.put(ReliabilityResult(ran=True, migrations=results))
    step.save("reliability.json", results)
    bad = [r for r in results if not r["ok"] or r.get("io_errors") or r.get("ratio") is None or r["ratio"] < 0.5]
    assert not bad, "\n".join(
        (f"{r['vm']}: 迁移失败 / the migration failed: {r.get('why')}" if not r["ok"] else
         f"{r['vm']}: fio 出现 I/O 错误 / fio hit an I/O error" if r.get("io_errors") else
         f"{r['vm']}: 迁移后 30 秒吞吐 {r.get('after_mbps')} MB/s，低于迁移前 {r.get('before_mbps')} MB/s 的 50% / "
         f"throughput in the 30 s after the migration {r.get('after_mbps')} MB/s is under 50 % of the "
         f"{r.get('before_mbps')} MB/s before") for r in bad) + (
        "\n下一步 / next: 在 CloudTower 中查看迁移任务与集群告警，排除后用 --resume 续跑 / check the migration tasks and "
        "the cluster's alarms in CloudTower, then continue with --resume")
    step.note("每台测试虚拟机热迁移一次，无 I/O 错误，吞吐保持 / every test VM live-migrated once; no I/O error; "
              "throughput held: " + ", ".join(f"{r['vm']} {r['ratio']:.0%}" for r in results))


def _guest_ms(client, vm: dict) -> int:
    """The guest's clock in ms (the bandwidth log is on it), read on the connection fio runs on."""
    res = client.run("date +%s%3N", timeout=30)
    m = re.search(r"\d{12,}", res.stdout)
    assert m, f"{vm['name']}: date 没有给出毫秒时间 / date gave no milliseconds: {res.stdout[:80]}"
    return int(m.group(0))


def _migrated(cloudtower, task_id: str | None, pacing) -> tuple[bool, str | None]:
    """Whether the migration task succeeded, and CloudTower's reason when it did not."""
    try:
        wait_task(cloudtower, task_id, f"migrate task {task_id}", pacing, limit=900)
    except TaskFailed as exc:
        return False, exc.task.get("error_message") or exc.task.get("description")
    except WaitTimeout as exc:
        return False, str(exc).splitlines()[0]
    return True, None
