"""06 通过 CloudTower 配置集群 / Stage 06: configure the cluster through CloudTower: default storage policy, capacity
alert, monitoring dashboards, rack topology (guide §06).

Sources: ../shared/reference/cloudtower-stage05-08-api-facts.md ("Stage 06": the storage policy and the alert, sent as
the guide sends them, GraphQL ``POST /api``) and ../shared/reference/cloudtower-stage06-09-11-api-facts.md (§1
dashboards, §2 rack topology: REST v2 in the official SDK's shapes, creation calls and ``move-node-topo`` a JSON list,
updates one ``{where, data}``). Each step reads what exists first and writes only what differs, so a rerun creates
nothing twice. Each works on the cluster as CloudTower shows it now (``get-clusters`` by the id 05 recorded), with
every planned host synced: CloudTower can read CONNECTED before it has synced the hosts (``host_num`` 0: the older
tool's "host_count_missing" guard), so that is waited for, within --attach-timeout, and never computed from."""
from __future__ import annotations

import pytest

from clients import alerts, dashboards, topology
from clients.ct_cluster import graphql_or_fail, synced_cluster
from fixtures.outputs import (CloudTowerCapacityAlert, CloudTowerCluster, CloudTowerDashboards, CloudTowerRacks,
                              CloudTowerStoragePolicy, DashboardView, RackPlacement)

pytestmark = pytest.mark.stage06

# 06.1: the guide's variables (L2052), sent as they are; the read-back checks the three fields the guide names
POLICY = "REPLICA_2_THIN_PROVISION"
POLICY_DATA = {"default_storage_policy": POLICY, "default_storage_policy_replica_num": 2,
               "default_storage_policy_ec_k": None, "default_storage_policy_ec_m": None,
               "default_storage_policy_thin_provision": True}
POLICY_CHECKED = ("default_storage_policy", "default_storage_policy_replica_num",
                  "default_storage_policy_thin_provision")

# 06.2
RULE = "zbs_cluster_data_space_use_rate"
DEFAULT_CRITICAL = 90                 # the rule's default CRITICAL (facts 06.2), used only when the rule shows none

# 06.3: what the public dashboard script creates: clients.dashboards.VIEWS (facts 06-09-11 §1)


# =========================================================================== shared
def _cluster(valid_plan, cloudtower, run, state, pacing) -> dict:
    """The cluster as CloudTower shows it now, once every planned host is synced (``host_num`` equals the plan's
    host count: never 0, never part of them), within --attach-timeout; a failed connection fails at once."""
    known = state.need(CloudTowerCluster, "05.cluster", "id")
    return synced_cluster(cloudtower, known.id, len(valid_plan.hosts), limit=run.attach_timeout_min * 60,
                          pacing=pacing)


# =========================================================================== 06.storage_policy
def _settings_of(cloudtower, cluster_id: str) -> dict:
    found = cloudtower.cluster_settings(cluster_id)
    assert len(found) == 1, (f"get-cluster-settingses 对集群 {cluster_id} 返回 {len(found)} 项 / get-cluster-settingses "
                             f"answered {len(found)} item(s) for the cluster {cluster_id}: {str(found)[:300]}")
    return found[0]


def _policy_differs(s: dict) -> dict:
    """The fields of settings ``s`` that differ from the planned policy (empty: it is the planned policy)."""
    return {k: s.get(k) for k in POLICY_DATA if s.get(k) != POLICY_DATA[k]}


@pytest.mark.dependency(name="06.storage_policy", depends=["05.cluster"], scope="session")
def test_storage_policy(valid_plan, cloudtower, run, state, step, pacing):
    """默认存储策略：双副本、精简置备 / Default storage policy: two replicas, thin (REPLICA_2_THIN_PROVISION)

    GraphQL ``updateClusterSettings`` with the guide's variables on the cluster's ``settings.id`` as ``get-clusters``
    reads it now (a stale id, say one 05 recorded before CloudTower re-synced the cluster, is answered NOT_FOUND),
    then read back independently with REST ``get-cluster-settingses``. When the settings already hold the policy
    nothing is written."""
    c = _cluster(valid_plan, cloudtower, run, state, pacing)
    sid = (c.get("settings") or {}).get("id")
    assert sid, ("CloudTower 集群详情缺少 settings.id / the cluster has no settings.id in CloudTower\n"
                 "下一步 / next: 在 CloudTower 中确认集群已同步完成后用 --resume 续跑 / check that CloudTower finished "
                 "syncing the cluster, then continue with --resume")
    known = state.take(CloudTowerCluster)
    if known.settings_id and known.settings_id != sid:
        step.note(f"集群 settings.id 已变为 {sid}（05 记录的是 {known.settings_id}），使用当前值 / the cluster's settings.id "
                  f"is now {sid} (05 recorded {known.settings_id}); the current one is used")
    before = _settings_of(cloudtower, c["id"])
    step.save("cluster-settings-before.json", before)
    if not _policy_differs(before):
        how = "already"
        step.note(f"默认存储策略已是 {POLICY}，未写入 / the default storage policy already is {POLICY}; nothing written")
    else:
        answer = graphql_or_fail(lambda: cloudtower.update_cluster_settings(sid, POLICY_DATA),
                                 "设置默认存储策略", "updateClusterSettings",
                                 "核对集群主机数（双副本至少 2 台）与 CloudTower 版本，排除后用 --resume 续跑",
                                 "check the cluster's host count (two replicas need 2 hosts) and CloudTower's version, "
                                 "then continue with --resume")
        step.save("updateClusterSettings.json", answer)
        how = "set"
        wrong = {k: answer.get(k) for k in POLICY_CHECKED if answer.get(k) != POLICY_DATA[k]}
        assert not wrong, (f"updateClusterSettings 的应答与请求不一致 / updateClusterSettings answered other values: "
                           f"{wrong}\n下一步 / next: 在 CloudTower 集群设置中查看默认存储策略 / check the default storage "
                           f"policy in CloudTower's cluster settings")
    after = _settings_of(cloudtower, c["id"])
    step.save("cluster-settings.json", after)
    state.put(CloudTowerStoragePolicy(policy=after.get("default_storage_policy"),
                                      replica_num=after.get("default_storage_policy_replica_num"),
                                      thin_provision=after.get("default_storage_policy_thin_provision"),
                                      settings_id=after.get("id") or sid,
                                      before=before.get("default_storage_policy"), how=how))
    wrong = _policy_differs(after)
    assert not wrong, (f"get-cluster-settingses 读回的默认存储策略不是 {POLICY} / get-cluster-settingses reads back other "
                       f"values than {POLICY}: {wrong}\n下一步 / next: 在 CloudTower 集群设置中查看默认存储策略后用 "
                       f"--resume 续跑 / check the default storage policy in CloudTower, then continue with --resume")


# =========================================================================== 06.capacity_alert
@pytest.mark.dependency(name="06.capacity_alert", depends=["05.cluster"], scope="session")
def test_capacity_alert(valid_plan, cloudtower, run, state, step, pacing):
    """容量告警：NOTICE = ⌊((n−1)/n − 5%)·100⌋，CRITICAL 不变 / Capacity alert: NOTICE from n hosts, CRITICAL kept

    The rule ``zbs_cluster_data_space_use_rate`` is asked for by name (``where: {name}``), never looked for in the
    guide's first page of 50 of the 94 rules (where it is not); should a server ignore the filter, the pages are read
    on while the count says there are more. As the guide does, only the cluster's own rule changes (``customized``
    true, NOTICE computed, CRITICAL as it was, default 90); the global rule keeps its thresholds (the older tool also
    wrote them: not followed). n is ``host_num`` once every planned host is synced, never 0 right after the connect.
    The per-cluster rule CloudTower adds after the sync is waited for. Nothing is written when the rule already says
    so. Host counts: 3 → 61, 4 → 70, 16 → 88 (integer arithmetic, no float error). A 2-host cluster gets the formula's
    45 (no floor as the older tool's 50/60: with two hosts, use above half of the space cannot survive a host loss);
    a 1-host cluster has no host to lose and no threshold to compute: the step fails (the plan needs 3 to 16 hosts,
    so a valid plan never gets there). A NOTICE at or above the rule's CRITICAL fails rather than moving CRITICAL."""
    c = _cluster(valid_plan, cloudtower, run, state, pacing)
    n = int(c["host_num"])
    assert n >= 2, (f"集群只有 {n} 台主机，无法计算容量告警阈值 / the cluster has {n} host(s): no capacity threshold can be "
                    f"computed\n下一步 / next: 规划至少 3 台主机 / plan at least 3 hosts")
    notice = alerts.notice_threshold(n)
    limit = run.attach_timeout_min * 60
    rule, mine = alerts.cluster_rule(cloudtower, RULE, c["id"], limit=limit, pacing=pacing, record=step)
    step.save("rule-before.json", rule)
    before = alerts.threshold_value(mine.get("thresholds"), "NOTICE")
    critical = alerts.critical_of(rule, mine, DEFAULT_CRITICAL)
    assert notice < critical, (f"计算的 NOTICE {notice}% 不低于该集群规则的 CRITICAL {critical}% / the computed NOTICE "
                               f"{notice}% is not below the cluster rule's CRITICAL {critical}%\n下一步 / next: 在 "
                               f"CloudTower 中把该规则的 CRITICAL 调回 90% 后用 --resume 续跑 / set the rule's CRITICAL "
                               f"back to 90% in CloudTower, then continue with --resume")
    if mine.get("customized") and not mine.get("disabled") and before == notice:
        how = "already"
        step.note(f"集群规则已是 NOTICE {notice}% / CRITICAL {critical}%，未写入 / the cluster's rule already says NOTICE "
                  f"{notice}% / CRITICAL {critical}%; nothing written")
    else:
        data = alerts.alert_update(rule, mine, notice, critical)
        step.save("updateGlobalAlertRule-variables.json", {"where": {"id": rule["id"]}, "data": data})
        answer = graphql_or_fail(lambda: cloudtower.update_global_alert_rule(rule["id"], data), "设置容量告警",
                                 "updateGlobalAlertRule", "在 CloudTower 告警规则中查看该规则，排除后用 --resume 续跑",
                                 "check the rule under CloudTower's alert rules, then continue with --resume")
        step.save("updateGlobalAlertRule.json", answer)
        how = "set"
        step.note(f"{n} 台主机：NOTICE {before}% → {notice}%，CRITICAL {critical}% 不变 / {n} hosts: NOTICE {before}% → "
                  f"{notice}%, CRITICAL {critical}% kept")
    rule, back = alerts.cluster_rule(cloudtower, RULE, c["id"], limit=limit, pacing=pacing)
    step.save("rule.json", rule)
    got = alerts.rule_reads(back)
    state.put(CloudTowerCapacityAlert(rule=RULE, global_rule_id=rule.get("id"), alert_rule_id=back.get("id"),
                                      host_num=n, notice=got["NOTICE"], critical=got["CRITICAL"], notice_before=before,
                                      how=how))
    want = {"customized": True, "disabled": False, "NOTICE": notice, "CRITICAL": critical}
    assert got == want, (f"读回的集群告警规则与设置不一致 / the cluster's rule reads back {got}, set {want}\n"
                         f"下一步 / next: 在 CloudTower 告警规则中查看 {RULE} / check {RULE} under CloudTower's alert rules")


# =========================================================================== 06.dashboards
@pytest.mark.dependency(name="06.dashboards", depends=["05.cluster"], scope="session")
def test_dashboards(valid_plan, cloudtower, run, state, step, pacing):
    """监控面板：集群、主机、虚拟机视图及其图表 / Monitoring dashboards: the Cluster, Host and VM views and graphs

    What the guide's init script creates (facts 06-09-11 §1): views ``Cluster`` (3 graphs), ``Host`` (7, over every
    host of the cluster) and ``VM`` (5, top 5), each over the last 2 hours, every graph an AREA graph. A view is found
    by name and a graph by ``metric_name`` in its view before anything is created (the script duplicates them on a
    rerun; this step does not). ``metric_count`` is sent as the SDK's integer, not the script's string "5"."""
    c = _cluster(valid_plan, cloudtower, run, state, pacing)
    host_ids = [h["id"] for h in cloudtower.hosts(c["id"]) if h.get("id")]
    assert host_ids, f"CloudTower 中集群 {c['id']} 没有主机 / CloudTower lists no host of the cluster {c['id']}"
    found, problems = dashboards.dashboards(cloudtower, c["id"], host_ids, step, pacing)
    views = [DashboardView(**v) for v in found]
    step.save("views.json", cloudtower.views(c["id"]))
    state.put(CloudTowerDashboards(views))
    step.note("; ".join(f"{v.name}: {v.graphs} 个图表 / graphs (本次创建 / created {v.created})" for v in views))
    assert not problems, ("监控面板与计划不一致 / the dashboards differ from the plan: " + "; ".join(problems)
                          + "\n下一步 / next: 在 CloudTower 监控视图中查看后用 --resume 续跑 / check the views in "
                            "CloudTower's monitoring, then continue with --resume")


# =========================================================================== 06.racks
@pytest.mark.applies(lambda plan: any(h.rack and h.rack_u for h in plan.hosts),
                     "规划表主机规划 P/Q 列没有机架数据", "the plan has no rack data (主机规划 columns P/Q)")
@pytest.mark.dependency(name="06.racks", depends=["05.cluster"], scope="session")
def test_racks(valid_plan, cloudtower, run, state, step, pacing):
    """机架拓扑：按主机规划 P/Q 列放置机架与 U 位 / Rack topology: each host's rack and U from 主机规划 P/Q

    The guide marks this "to be supplemented"; the step follows the placement the facts suggest (06-09-11 §2,
    inferred): one rack per planned rack name (``get-rack-topoes`` by name, else ``create-rack-topo`` in the
    cluster's one zone), one brick per rack and U at ``position`` = the workbook's U (taken as the lowest U the
    chassis occupies, counted from 1, as ZBS lists positions), the host's node in it. Hosts sharing a rack and U are
    one multi-node chassis: one brick of capacity 1 x k holding their k nodes; that is fine, and noted. Heights are
    options (--server-height, default 2U: the workbook's U 1, 3, … suggest 2U servers; --rack-height, default 42U),
    checked against the plan before any call.

    Idempotent under either default placement CloudTower may have (nodes under the cluster with no brick, or each
    in its own brick in a default rack): the chassis' brick is an existing one that holds no other host's node --
    preferably one holding its nodes already (a default brick: moved, renamed, resized), else one at its rack and U,
    else one with its name -- or else created (``node_topoes`` passed at creation). Each node not in its brick
    afterwards, whether or not the creation moved it, is moved in with ``move-node-topo``, its slot left to
    CloudTower. Existing racks get --rack-height only when it is given; otherwise they keep their own height (raised
    only when the plan needs more). Nothing is deleted: a default brick left empty stays (noted).
    A plan without rack data makes the step not applicable; hosts without rack data where others have it stay where
    they are (noted)."""
    placed = [h for h in valid_plan.hosts if h.rack and h.rack_u]
    if not placed:
        step.not_applicable("规划表主机规划 P/Q 列没有机架数据", "the plan has no rack data (主机规划 columns P/Q)")
    unplaced = [h for h in valid_plan.hosts if h not in placed]
    groups = topology.rack_groups(placed)
    server_u = int(run.server_height_u)
    rack_u = int(run.rack_height_u or topology.DEFAULT_RACK_U)   # given: racks get it; else they keep their own
    problems = topology.layout_problems(groups, server_u, rack_u)
    assert not problems, ("机架数据无法按此高度放置 / the rack data cannot be placed with these heights: "
                          + "; ".join(problems) + "\n下一步 / next: 核对主机规划 P/Q 列，或用 --server-height / "
                          "--rack-height 给出实际高度 / check 主机规划 columns P/Q, or give the real heights with "
                          "--server-height / --rack-height")
    c = _cluster(valid_plan, cloudtower, run, state, pacing)
    host_ids = topology.host_ids(valid_plan.hosts, cloudtower.hosts(c["id"]))
    topo = topology.Topology(cloudtower, c["id"], host_ids, step, pacing)
    step.save("topology-before.json", topo.snapshot())
    zone_id = topology.zone(cloudtower, c["id"])
    for (rack, u), members in groups.items():
        need = max(g_u + server_u - 1 for (g_rack, g_u) in groups if g_rack == rack)
        topo.place(rack, u, members, zone_id, server_u, rack_u, need=need, resize=run.rack_height_u is not None)
        if len(members) > 1:
            step.note(f"{rack} U{u}：{len(members)} 台主机共用一个机箱（多节点机箱）/ {len(members)} hosts share one chassis "
                      f"(multi-node): {', '.join(h.hostname for h in members)}")
    if unplaced:
        step.note(f"规划未给出机架数据的主机保持原位 / hosts the plan gives no rack data stay where they are: "
                  f"{', '.join(h.hostname for h in unplaced)}")
    placements, wrong = topo.placements(groups)
    empty = topo.empty_bricks()
    if empty:
        step.note(f"空机箱保留未删除 / empty bricks left in place (not deleted): {', '.join(empty)}")
    step.save("topology.json", {"racks": cloudtower.rack_topoes(c["id"]), **topo.snapshot()})
    state.put(CloudTowerRacks(placements=[RackPlacement(**p) for p in placements], server_height_u=server_u,
                              rack_height_u=rack_u, racks_created=topo.racks_created,
                              bricks_created=topo.bricks_created, bricks_moved=topo.bricks_moved,
                              nodes_moved=topo.nodes_moved, unplaced=[h.hostname for h in unplaced]))
    step.note(f"新建机架 {len(topo.racks_created)}、机箱 {topo.bricks_created}，移动机箱 {topo.bricks_moved}、节点 "
              f"{topo.nodes_moved} / racks created {len(topo.racks_created)}, bricks created {topo.bricks_created}, "
              f"bricks moved {topo.bricks_moved}, nodes placed {topo.nodes_moved}")
    assert not wrong, ("主机不在规划的机架位置 / hosts are not where the plan puts them: " + "; ".join(wrong)
                       + "\n下一步 / next: 在 CloudTower 物理拓扑中查看后用 --resume 续跑 / check CloudTower's topology, "
                         "then continue with --resume")
