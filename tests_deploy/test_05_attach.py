"""05 关联集群 / Stage 05: attach the cluster to CloudTower (organization, datacenter, connect, wait).

Where the sources disagree (../shared/reference/cloudtower-stage05-08-api-facts.md, "Contradictions" 1-3), the steps
follow the official SDK's REST shapes: creation calls send a JSON list and read a list of ``{data, task_id}``;
``get-*`` calls send ``{where}`` and read a list. The guide's intent (connect the VIP as root with the cluster admin
password, wait for CONNECTED) is kept; its bare-object bodies are not sent."""
from __future__ import annotations

import re
import time

import pytest

from clients.base import ApiError
from clients.ct_cluster import FAILED_STATES, POLL_S, fail_connect, synced_cluster, task_error, tasks_done
from clients.poll import wait_for
from fixtures.outputs import CloudTowerCluster, CloudTowerDatacenter, CloudTowerOrganization

pytestmark = pytest.mark.stage05


def _org(state) -> CloudTowerOrganization:
    org = state.take(CloudTowerOrganization)
    assert org and org.id, "05.org 没有记录组织 / 05.org recorded no organization"
    return org


def _dc(state) -> CloudTowerDatacenter:
    dc = state.take(CloudTowerDatacenter)
    assert dc and dc.id, "05.datacenter 没有记录数据中心 / 05.datacenter recorded no datacenter"
    return dc


def _vip(plan) -> str:
    assert plan.vip, "规划表没有集群 VIP（主机规划!I19）/ the plan has no cluster VIP (主机规划!I19)"
    return str(plan.vip)


@pytest.mark.dependency(name="05.org", depends=["04.login"], scope="session")
def test_organization(valid_plan, cloudtower, state, step):
    """查找规划的组织（04 阶段创建）/ Find the planned organization (created in stage 04)"""
    name = valid_plan.customer
    orgs = cloudtower.organizations()
    step.save("organizations.json", orgs)
    match = [o for o in orgs if o.get("name") == name]
    assert match, (f"CloudTower 中没有组织 {name}（文档描述!C15），现有 / CloudTower has no organization {name} "
                   f"(文档描述!C15); it has: {[o.get('name') for o in orgs] or '-'}\n"
                   f"下一步 / next: 核对 04.setup 的结果与文档描述!C15 / check 04.setup's result and 文档描述!C15")
    state.put(CloudTowerOrganization(id=match[0]["id"], name=name))
    assert match[0].get("id")


@pytest.mark.dependency(name="05.datacenter", depends=["05.org"], scope="session")
def test_datacenter(valid_plan, cloudtower, state, step, pacing):
    """创建（或复用）数据中心 / Create (or reuse) the datacenter"""
    org, name = _org(state), valid_plan.datacenter
    found = cloudtower.datacenters(name=name, organization_id=org.id)
    if found:
        dc, created = found[0], False
        step.note(f"数据中心 {name} 已存在，复用 / datacenter {name} exists; reused")
    else:
        answer = cloudtower.create_datacenter(org.id, name)
        step.save("create-datacenter.json", answer)
        dc, created = answer["data"], True
        assert dc.get("id"), f"创建数据中心未返回 ID / create-datacenter returned no id: {answer}"
        tasks_done(cloudtower, [answer], f"创建数据中心 {name} / create datacenter", pacing)
    state.put(CloudTowerDatacenter(id=dc["id"], name=name, organization_id=org.id, created=created))
    back = cloudtower.datacenters(id=dc["id"])
    assert len(back) == 1 and back[0].get("name") == name, f"数据中心回读不一致 / datacenter read back: {back}"
    assert (back[0].get("organization") or {}).get("id") == org.id
    same = cloudtower.datacenters(name=name, organization_id=org.id)
    assert len(same) == 1, f"同名数据中心不止一个 / {len(same)} datacenters named {name}"


@pytest.mark.dependency(name="05.connect", depends=["05.datacenter", "03.vip"], scope="session")
def test_connect_cluster(valid_plan, cloudtower, run, state, step, pacing):
    """关联集群并等待 connect_state == CONNECTED（已关联则复用，在其他数据中心则移动）/ Connect the cluster to CloudTower
    and wait for CONNECTED (reuse it when attached; move it when it sits in another datacenter)

    Never connects twice: ``get-clusters where ip = VIP`` first, and a resumed run reattaches to the connect it
    submitted. The connect and its wait are one step, so a failed connect is looked at again on resume: a cluster
    CloudTower holds in a failed state (CONNECTED_ERROR / DISCONNECTED) is not connected over; the step fails at
    once with CloudTower's reason and what to check, and the fix is made in CloudTower (or the cluster removed
    there, after which a resumed run connects it anew)."""
    vip, dc = _vip(valid_plan), _dc(state)
    with state.intent("05.connect", op="connect_cluster") as it:
        found = cloudtower.clusters(ip=vip)
        step.save("clusters-before.json", found)
        if found:
            cluster, how, moved_from = _existing(cloudtower, found[0], dc, it, step, pacing)
            started = it.get("epoch") if it.earlier else None
        else:
            it.begin(ip=vip, datacenter_id=dc.id, epoch=time.time())
            answer = _connect(cloudtower, vip, valid_plan.cluster_admin_password, dc.id)
            cluster, how, moved_from = answer["data"], "connected", None
            it.attach(cluster_id=cluster.get("id"), task_id=answer.get("task_id"))
            started = it.get("epoch")
            step.note(f"已提交关联，CloudTower 任务 {answer.get('task_id')} / connect submitted (task "
                      f"{answer.get('task_id')}); state {cluster.get('connect_state')}")
        assert cluster.get("id"), f"CloudTower 未返回集群 ID / no cluster id: {cluster}"
        t0 = time.monotonic()
        c = _wait_connected(cloudtower, cluster["id"], run.attach_timeout_min * 60, pacing, it.get("task_id"))
    # the time it took, when this run saw the whole connect (a resumed one would count the interruption too)
    seconds = _connect_seconds(started, time.monotonic() - t0, pacing.scale) if how == "connected" else None
    if how != "already":
        step.note("集群已连接（CONNECTED）" + (f"，用时 {seconds:.0f} s" if seconds else "") + " / the cluster is "
                  "CONNECTED" + (f"; took {seconds:.0f} s" if seconds else ""))
    state.put(CloudTowerCluster(id=c["id"], ip=vip, name=c.get("name"), how=how, moved_from=moved_from,
                                connect_state=c.get("connect_state"), connect_started=started,
                                connect_task_id=it.get("task_id"), connect_seconds=seconds))
    now = cloudtower.clusters(ip=vip)
    assert len(now) == 1, f"VIP {vip} 在 CloudTower 中对应 {len(now)} 个集群 / {len(now)} clusters at {vip}"
    dcs = [d.get("id") for d in now[0].get("datacenters") or []]
    assert dcs == [dc.id], f"集群应只在数据中心 {dc.name} 中 / the cluster should be in datacenter {dc.name} only: {dcs}"


def _connect(cloudtower, vip: str, password: str, datacenter_id: str) -> dict:
    """``connect-cluster``; CloudTower's at-once refusal (HTTP 400 with a ClusterConnectorErrorCode) fails the step
    with that code and what to check, like a connect that fails later."""
    try:
        return cloudtower.connect_cluster(vip, password, datacenter_id)
    except ApiError as exc:
        code = re.search(r"LOAD_CLUSTER_[A-Z_]+", exc.body or "")
        if exc.status != 400 or code is None:
            raise
        fail_connect({"ip": vip, "connect_state": "refused (HTTP 400)", "disconnected_reason": code.group(0)})
        raise


def _wait_connected(cloudtower, cluster_id: str, limit: float, pacing, task_id: str | None) -> dict:
    """Poll ``get-clusters`` every 10 s until CONNECTED; CONNECTED_ERROR / DISCONNECTED fail at once, with what the
    connect task (``task_id``) says."""
    def fetch() -> dict:
        found = cloudtower.clusters(id=cluster_id)
        assert found, (f"CloudTower 中已没有集群 {cluster_id} / the cluster {cluster_id} is gone from CloudTower\n"
                       f"下一步 / next: 用 --resume 续跑以重新关联 / continue with --resume to connect it again")
        return found[0]

    def connected(c: dict) -> bool:
        if c.get("connect_state") in FAILED_STATES:
            fail_connect(c, task_error(cloudtower, task_id))
        return c.get("connect_state") == "CONNECTED"

    return wait_for(fetch, connected, what="集群关联 / cluster connect", interval=POLL_S, limit=limit, pacing=pacing,
                    describe=lambda c: f"connect_state={c.get('connect_state')}",
                    hint="在 CloudTower 中查看集群与关联任务；可用 --attach-timeout 放宽上限 / check the cluster and the "
                         "connect task in CloudTower; --attach-timeout raises the limit")


def _existing(cloudtower, cluster: dict, dc: CloudTowerDatacenter, it, step, pacing) -> tuple[dict, str, str | None]:
    """A cluster CloudTower already knows at the VIP: reused, moved to the planned datacenter, or refused."""
    state_now = cluster.get("connect_state")
    if state_now in FAILED_STATES:
        fail_connect(cluster, task_error(cloudtower, it.get("task_id")))
    if it.earlier:
        step.note(f"续跑：上次运行提交的关联仍在进行（{state_now}），不重复关联 / resume: the connect the interrupted "
                  f"run submitted is there ({state_now}); not connected again")
    dcs = cluster.get("datacenters") or []
    if any(d.get("id") == dc.id for d in dcs):
        if not it.earlier:
            step.note(f"集群已关联到数据中心 {dc.name}（{state_now}），未重复关联 / already attached to {dc.name} "
                      f"({state_now}); not connected again")
        return cluster, "reattached" if it.earlier else "already", None
    if not dcs and state_now == "INITIALIZING" and it.earlier:
        return cluster, "reattached", None   # still connecting: its datacenter shows once it is connected
    names = ", ".join(str(d.get("name")) for d in dcs) or "-"
    answer = cloudtower.add_clusters_to_datacenter(dc.id, cluster["id"])
    step.save("add-clusters-to-datacenter.json", answer)
    tasks_done(cloudtower, [answer], f"移动集群到 {dc.name} / move the cluster to {dc.name}", pacing)
    step.note(f"集群原在数据中心 {names}，已移动到 {dc.name} / the cluster was in datacenter {names}; moved to {dc.name}")
    return cluster, "moved", names


@pytest.mark.dependency(name="05.cluster", depends=["05.connect"], scope="session")
def test_cluster_hosts(valid_plan, cloudtower, run, state, step, pacing):
    """核对 CloudTower 中的集群：主机数与管理 IP 与规划一致，记录集群 ID / Check the cluster in CloudTower: host count
    and management IPs as planned; record its ids for later stages

    CONNECTED can come before the hosts are synced (``host_num`` 0): they are waited for, within the same limit."""
    known = state.take(CloudTowerCluster)
    assert known and known.id, "05.connect 没有记录集群 / 05.connect recorded no cluster"
    want = {str(h.mgmt_ip) for h in valid_plan.hosts}

    c = synced_cluster(cloudtower, known.id, len(want), limit=run.attach_timeout_min * 60, pacing=pacing)
    step.save("cluster.json", c)
    hosts = sorted([[h.get("name"), h.get("management_ip")] for h in c.get("hosts") or []], key=lambda h: h[1] or "")
    state.put(CloudTowerCluster(**{**known.to_json(), "name": c.get("name"), "local_id": c.get("local_id"),
                                   "settings_id": (c.get("settings") or {}).get("id"), "host_num": c.get("host_num"),
                                   "hosts": hosts, "connect_state": c.get("connect_state"),
                                   "version": c.get("version")}))
    assert c.get("local_id"), f"集群没有 local_id / the cluster has no local_id: {c.get('id')}"
    assert (c.get("settings") or {}).get("id"), "集群详情缺少 settings.id / the cluster has no settings.id"
    got = {h[1] for h in hosts}
    assert got == want, (f"CloudTower 中的主机管理 IP 与规划不一致 / the hosts' management IPs differ from the plan: "
                         f"missing {sorted(want - got)}, unexpected {sorted(got - want)}")


def _connect_seconds(started: float | None, waited: float, scale: float) -> float:
    """From connect-cluster to connected, in guide seconds (``scale``: a simulation's time compression): from the
    intent's start when this suite connected (a resumed run included), else the wait this step saw."""
    if isinstance(started, (int, float)) and started <= time.time():
        waited = time.time() - started
    return round(waited / (scale or 1.0), 1)
