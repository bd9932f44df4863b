"""02 初始化集群 / Stage 02: initialise the cluster (scan, deploy, verify)."""
from __future__ import annotations

import pytest

from clients.base import ApiError
from clients.deployment import START_GRACE, deploy_state
from clients.payloads import check_scan, deploy_payload, disk_roles_of, l2_host_ips
from clients.poll import wait_for
from fixtures.outputs import ClusterScan, Deployment, DiskRoles, HostFacts, Hosts, HostScans

pytestmark = pytest.mark.stage02

DEPLOY_POLL_INTERVAL = 10          # the guide: every ten seconds
DEPLOY_LIMIT = 2 * 60 * 60         # a real deployment takes many minutes; two hours is a hard stop


@pytest.mark.dependency(name="02.scan", depends=["01.plan", "01.hosts"], scope="session")
def test_scan_hosts(valid_plan, deploy_clients, state, step):
    """逐台扫描主机：UUID、规划网卡、磁盘清单 / Scan every host: UUID, planned NICs, disk inventory"""
    hosts = valid_plan.hosts
    scans = dict(zip((str(h.mgmt_ip) for h in hosts),
                     step.map(lambda h: deploy_clients[str(h.mgmt_ip)].scan_host(), hosts)))
    step.save("host-scans.json", scans)
    state.put(ClusterScan(_l2_scan(deploy_clients[str(hosts[0].mgmt_ip)], step)))
    problems = {str(h.mgmt_ip): check_scan(valid_plan, h, scans[str(h.mgmt_ip)]) for h in hosts}
    state.put(HostScans(scans))
    state.put(Hosts({ip: HostFacts(s.get("host_uuid"), s.get("hostname"), s.get("sn")) for ip, s in scans.items()}))
    assert not any(problems.values()), "主机扫描结果与规划不符 / scan does not match the plan: " + "; ".join(
        f"{ip}: {', '.join(p)}" for ip, p in problems.items() if p)


@pytest.mark.dependency(name="02.deploy", depends=["02.scan"], scope="session")
def test_deploy_cluster(valid_plan, deploy_clients, state, step, pacing):
    """部署集群并确认 deploy_verify.is_deployed / Deploy the cluster and verify is_deployed"""
    first = str(valid_plan.hosts[0].mgmt_ip)
    api = deploy_clients[first]
    last: dict | None = None          # the last deploy_status seen: it carries the cause when the deployment fails
    if api.deploy_verify().get("is_deployed"):
        step.outcome(Deployment, "集群已部署，未重复部署", "already deployed; not deployed again")
    else:
        with state.intent("02.deploy", op="deploy") as it:  # recorded before the call: a resume reattaches
            status = api.deploy_status(first)
            if it.earlier and deploy_state(status) is None:   # the interrupted run's POST may not show yet
                status = api.await_start(first, pacing)
            if deploy_state(status) not in ("running", "success"):
                payload = deploy_payload(valid_plan, state.take(HostScans).by_ip,
                                         l2=(state.take(ClusterScan) or ClusterScan()).host_ips)
                step.save("deploy-payload.json", payload)
                state.put(DiskRoles(disk_roles_of(payload)))
                it.begin(host=first)
                _accepted(api.deploy(payload), step)
                it.attach(status="submitted")
                status = api.await_start(first, pacing)      # real gear may not show it running at once
                if deploy_state(status) is None:
                    step.note(f"部署状态在 {START_GRACE}s 内未显示运行 / deploy_status did not show the deployment "
                              f"within {START_GRACE}s: {_stage(status)}")
            else:
                step.note("检测到已提交的部署（" + _stage(status) + "），不重复提交 / a deployment was already submitted; "
                          "waiting, not resubmitting" + (f" (started {it.get('started')})" if it.earlier else ""))
            last = wait_for(lambda: api.deploy_status(first), lambda s: deploy_state(s) != "running",
                            what="集群部署 / cluster deployment", interval=DEPLOY_POLL_INTERVAL, limit=DEPLOY_LIMIT,
                            pacing=pacing, describe=_stage, hint=_stuck_hint(first))
    if not (state.take(DiskRoles) or DiskRoles()).by_ip:  # deployed earlier: the hosts report the roles they were given
        scans = (state.take(HostScans) or HostScans()).by_ip
        state.put(DiskRoles({ip: [d for d in scan.get("disks", []) if d.get("function") not in ("boot",)]
                             for ip, scan in scans.items()}))
    verify = api.verify_deployed(pacing)     # it may lag the end of the deployment: asked again, 12 x 5 s
    step.save("deploy-verify.json", verify)
    if last is not None:
        step.save("deploy-status-final.json", last)
    assert verify.get("is_deployed") is True, _not_deployed(first, verify, last)
    if last is not None:   # recorded only once verified: a failed deployment is never reported as "deployed"
        step.outcome(Deployment, "本次运行完成部署", "deployed by this run")


def _not_deployed(first: str, verify: dict, last: dict | None) -> str:
    """The failed deployment's cause and next action. deploy_verify decides (guide lines 482-505), but only the last
    deploy_status says why: its ``data.msg`` when it reports ``failed``, or an error envelope's message."""
    data = last.get("data") if isinstance(last, dict) else None
    error = last.get("error") if isinstance(last, dict) else None
    msg = data.get("msg") if isinstance(data, dict) else None
    msg = msg or ((error.get("msg") or error.get("message")) if isinstance(error, dict) else None)
    at = at_en = ""
    if isinstance(data, dict) and data.get("current_stage") is not None:
        at = f"（第 {data.get('current_stage')}/{data.get('total_stages')} 阶段 {data.get('stage_info')}）"
        at_en = f" at stage {data.get('current_stage')}/{data.get('total_stages')} ({data.get('stage_info')})"
    if msg:
        cause = f"集群部署失败{at}：{msg} / the deployment failed{at_en}: {msg}"
    elif last is None:
        cause = f"集群未部署 / the cluster is not deployed (deploy_verify: {verify})"
    else:
        cause = (f"集群部署已结束但未成功，部署状态未给出原因 / the deployment ended without success and deploy_status "
                 f"gave no reason ({_stage(last)}; deploy_verify: {verify})")
    return (f"{cause}\n下一步 / next: 在主机 {first} 上查看部署日志，按原因修复（磁盘、网络或主机状态）后用 --resume 重跑，"
            f"部署会重新提交 / check the deployment log on {first}, fix the cause (disks, network or host state), then "
            f"rerun with --resume: the deployment is submitted again")


def _stuck_hint(first: str) -> str:
    """What to check when the deployment does not end within the limit (the last state names the stage)."""
    return (f"部署长时间停在同一阶段：检查主机 {first} 上的部署服务及其日志、各主机之间管理与存储网络是否互通、磁盘是否正常；"
            f"排除后用 --resume 续跑（接着等待这次部署，不会重复提交）/ the deployment does not end: check the "
            f"deployment service and its log on {first}, that the hosts reach each other on the management and storage "
            f"networks, and that their disks are healthy; then continue with --resume (it waits for this deployment "
            f"and does not submit it again)")


def _accepted(answer, step) -> None:
    """The deploy POST's answer: real gear carries ``data.msg``; it is kept as evidence (the outcome is read from
    deploy_status / deploy_verify, guide lines 478-505)."""
    msg = answer.get("msg") if isinstance(answer, dict) else None
    step.note(f"部署请求已受理 / deploy request accepted: {msg if msg else answer!r}")


def _l2_scan(api, step) -> dict[str, str]:
    """The layer-2 scan's host_ip per host uuid (guide lines 26-28; the payload uses it verbatim, see
    clients.payloads.host_ip); nothing when it finds no host or fails (the per-host scan then suffices)."""
    try:
        found = api.scan_cluster()
    except ApiError as exc:  # optional: the per-host construction remains
        step.note(f"二层扫描失败，改用逐台构造 host_ip / the layer-2 scan failed; host_ip built per host: {exc}")
        return {}
    step.save("cluster-scan-host-ips.json", {h.get("host_uuid"): h.get("host_ip") for h in found})
    if not found:
        step.note("二层扫描无结果（LACP 或 VLAN 子接口），逐台构造 host_ip / the layer-2 scan found no host (LACP or "
                  "VLAN sub-interfaces): host_ip built per host")
    return l2_host_ips(found)


def _stage(status: dict) -> str:
    d = status.get("data") or {}
    if not isinstance(d, dict):
        return str(status)[:200]
    return f"{d.get('state')} {d.get('current_stage')}/{d.get('total_stages')} {d.get('stage_info')}"
