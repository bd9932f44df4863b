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

from collections import Counter

import pytest

from clients.cloudtower import TASK_FAILED, TASK_OK, GraphQLError
from clients.poll import wait_for
from fixtures.outputs import (CloudTowerCapacityAlert, CloudTowerCluster, CloudTowerDashboards, CloudTowerRacks,
                              CloudTowerStoragePolicy, DashboardView, RackPlacement)

pytestmark = pytest.mark.stage06

POLL_S = 10
FAILED_STATES = {"CONNECTED_ERROR", "DISCONNECTED"}

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

# 06.3: what the public dashboard script creates (facts 06-09-11 §1); titles are free text
TIME_UNIT, TIME_SPAN = "HOUR", 2
VIEWS = (
    ("Cluster", "cluster", (("cluster_cpu_usage_percent", "集群 CPU 使用率"),
                            ("cluster_memory_usage_percent", "集群内存使用率"),
                            ("zbs_cluster_provisioned_data_space_bytes", "集群已分配存储空间"))),
    ("Host", "host", (("host_cpu_overall_usage_percent", "主机 CPU 使用率"),
                      ("elf_host_vcpus_provisioned_running", "主机运行中的已分配 vCPU"),
                      ("host_cpu_temperature_celsius", "主机 CPU 温度"),
                      ("host_memory_usage_percent", "主机内存使用率"),
                      ("zbs_chunk_read_cache_hit_ratio", "主机读缓存命中率"),
                      ("zbs_chunk_write_cache_hit_ratio", "主机写缓存命中率"),
                      ("zbs_chunk_used_data_space_bytes", "主机已用存储空间"))),
    ("VM", "vm", (("elf_vm_cpu_overall_usage_percent", "虚拟机 CPU 使用率 Top 5"),
                  ("elf_vm_cpu_overall_steal_time_percent", "虚拟机 CPU 争用时间 Top 5"),
                  ("elf_vm_memory_usage_percent", "虚拟机内存使用率 Top 5"),
                  ("elf_vm_disk_overall_write_speed_bps", "虚拟机磁盘写带宽 Top 5"),
                  ("elf_vm_disk_overall_avg_read_write_latency_ns", "虚拟机磁盘平均读写延迟 Top 5"))),
)
VM_TOP = 5


# =========================================================================== shared
def _cluster(valid_plan, cloudtower, run, state, pacing) -> dict:
    """The cluster as CloudTower shows it now, once every planned host is synced (``host_num`` equals the plan's
    host count: never 0, never part of them), within --attach-timeout; a failed connection fails at once."""
    known = state.take(CloudTowerCluster)
    assert known and known.id, ("05.cluster 没有记录集群 / 05.cluster recorded no cluster\n"
                                "下一步 / next: 用 --resume 续跑阶段 05 / continue stage 05 with --resume")
    want = len(valid_plan.hosts)

    def fetch() -> dict:
        found = cloudtower.clusters(id=known.id)
        assert found, (f"CloudTower 中已没有集群 {known.id} / the cluster {known.id} is gone from CloudTower\n"
                       f"下一步 / next: 用 --resume 续跑阶段 05 以重新关联 / continue with --resume to attach it again")
        c = found[0]
        assert c.get("connect_state") not in FAILED_STATES, (
            f"集群在 CloudTower 中为 {c.get('connect_state')}（{c.get('disconnected_reason') or '-'}）/ the cluster reads "
            f"{c.get('connect_state')} ({c.get('disconnected_reason') or '-'}) in CloudTower\n"
            f"下一步 / next: 在 CloudTower 集群页面排除连接错误后用 --resume 续跑 / fix the connection on CloudTower's "
            f"cluster page, then continue with --resume")
        return c

    return wait_for(fetch, lambda c: c.get("host_num") == want and len(c.get("hosts") or []) == want,
                    what="CloudTower 同步主机 / host sync", interval=POLL_S, limit=run.attach_timeout_min * 60,
                    pacing=pacing, describe=lambda c: f"host_num={c.get('host_num')} / {want}",
                    hint="在 CloudTower 中查看集群的主机列表；可用 --attach-timeout 放宽上限 / check the cluster's hosts in "
                         "CloudTower; --attach-timeout raises the limit")


def _graphql(call, what_zh: str, what_en: str, next_zh: str, next_en: str):
    """A GraphQL call whose ``errors[]`` (HTTP 200) fail the step in plain words: what CloudTower said, what to do."""
    try:
        return call()
    except GraphQLError as exc:
        said = "; ".join(exc.messages) or exc.body[:300]
        raise AssertionError(f"{what_zh}：CloudTower 返回错误：{said} / {what_en}: CloudTower answered errors: {said}\n"
                             f"下一步 / next: {next_zh} / {next_en}") from exc


def _tasks_done(cloudtower, answers: list[dict], what: str, pacing, limit: float = 300) -> None:
    """Wait for the tasks of ``[{data, task_id}]`` answers (none: synchronous); FAILED fails at once."""
    for task_id in [a.get("task_id") for a in answers if isinstance(a, dict) and a.get("task_id")]:
        def done(tasks: list[dict], task_id=task_id) -> bool:
            t = tasks[0] if tasks else {}
            assert t.get("status") != TASK_FAILED, (
                f"{what} 任务失败 / the task failed: {t.get('error_message') or t.get('description')} (task {task_id})"
                f"\n下一步 / next: 在 CloudTower 任务中心查看该任务，排除后用 --resume 续跑 / check the task in "
                f"CloudTower, fix the cause, then continue with --resume")
            return t.get("status") == TASK_OK

        wait_for(lambda task_id=task_id: cloudtower.tasks(id=task_id), done, what=what, interval=2, limit=limit,
                 pacing=pacing, describe=lambda ts: ts[0].get("status") if ts else "?")


def _answers(answer) -> list[dict]:
    return [a for a in (answer if isinstance(answer, list) else [answer]) if isinstance(a, dict)]


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
        answer = _graphql(lambda: cloudtower.update_cluster_settings(sid, POLICY_DATA),
                          "设置默认存储策略", "updateClusterSettings",
                          "核对集群主机数（双副本至少 2 台）与 CloudTower 版本，排除后用 --resume 续跑",
                          "check the cluster's host count (two replicas need 2 hosts) and CloudTower's version, then "
                          "continue with --resume")
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
def notice_threshold(hosts: int) -> int:
    """NOTICE = ⌊((n−1)/n − 0.05)·100⌋ in whole numbers, with no float rounding: ⌊(95n − 100) / n⌋
    (3 → 61, 4 → 70, 5 → 75, 6 → 78, 8 → 82, 10 → 85, 16 → 88; 2 → 45)."""
    if hosts < 2:
        raise ValueError(f"no NOTICE threshold for {hosts} host(s)")
    return (95 * hosts - 100) // hosts


def _value(thresholds, severity: str):
    return next((t.get("value") for t in thresholds or [] if t.get("severity") == severity), None)


def _threshold(value, severity: str) -> dict:
    return {"value": value, "severity": severity, "quantile": 0, "__typename": "Thresholds"}


def _cluster_rule(cloudtower, cluster_id: str, run, pacing, step) -> tuple[dict, dict]:
    """The global rule ``RULE`` (asked for by name) and its per-cluster rule for ``cluster_id``, which CloudTower adds
    once it has synced the cluster: waited for, within --attach-timeout."""
    pages: list[int] = []

    def fetch() -> tuple[dict, dict | None]:
        rule, n = cloudtower.global_alert_rule(RULE)
        pages.append(n)
        assert rule, (f"CloudTower 中没有告警规则 {RULE} / CloudTower has no alert rule {RULE}\n下一步 / next: 核对 "
                      f"CloudTower 版本与指南一致 / check that CloudTower's version is the guide's")
        mine = next((a for a in rule.get("alert_rules") or [] if (a.get("cluster") or {}).get("id") == cluster_id),
                    None)
        return rule, mine

    rule, mine = wait_for(lambda: _graphql(fetch, "查询告警规则", "globalAlertRules",
                                           "核对 CloudTower 版本后用 --resume 续跑",
                                           "check CloudTower's version, then continue with --resume"),
                          lambda got: got[1] is not None, what=f"集群的告警规则 {RULE} / the cluster's rule {RULE}",
                          interval=POLL_S, limit=run.attach_timeout_min * 60, pacing=pacing,
                          describe=lambda got: f"alert_rules={len(got[0].get('alert_rules') or [])}",
                          hint="在 CloudTower 告警规则中查看该集群的规则 / check the cluster's rules under CloudTower's "
                               "alert rules")
    step.note(f"按名称查询告警规则 {RULE}（where.name），读取 {sum(pages)} 页 / rule {RULE} asked for by name "
              f"(where.name), {sum(pages)} page(s) read")
    return rule, mine


def _alert_update(rule: dict, mine: dict, notice: int, critical: int) -> dict:
    """The guide's updateGlobalAlertRule data: the global rule as it is (its thresholds sent back unchanged when
    CloudTower showed their values), the cluster's rule customized with NOTICE ``notice`` and CRITICAL ``critical``
    (any other severity it has kept)."""
    mine_th = [_threshold(critical, "CRITICAL"), _threshold(notice, "NOTICE")]
    mine_th += [_threshold(t.get("value"), t.get("severity")) for t in mine.get("thresholds") or []
                if t.get("severity") not in ("CRITICAL", "NOTICE") and t.get("value") is not None]
    data: dict = {"disabled": False,
                  "alert_rules": {"update": [{"where": {"id": mine["id"]},
                                              "data": {"customized": True, "disabled": False, "thresholds": mine_th}}]}}
    glob = rule.get("thresholds") or []
    if glob and all(t.get("value") is not None for t in glob):
        data["thresholds"] = [_threshold(t["value"], t["severity"]) for t in glob]
    return data


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
    notice = notice_threshold(n)
    rule, mine = _cluster_rule(cloudtower, c["id"], run, pacing, step)
    step.save("rule-before.json", rule)
    before, critical = _value(mine.get("thresholds"), "NOTICE"), _value(mine.get("thresholds"), "CRITICAL")
    critical = critical if critical is not None else (_value(rule.get("thresholds"), "CRITICAL") or DEFAULT_CRITICAL)
    assert notice < critical, (f"计算的 NOTICE {notice}% 不低于该集群规则的 CRITICAL {critical}% / the computed NOTICE "
                               f"{notice}% is not below the cluster rule's CRITICAL {critical}%\n下一步 / next: 在 "
                               f"CloudTower 中把该规则的 CRITICAL 调回 90% 后用 --resume 续跑 / set the rule's CRITICAL "
                               f"back to 90% in CloudTower, then continue with --resume")
    if mine.get("customized") and not mine.get("disabled") and before == notice:
        how = "already"
        step.note(f"集群规则已是 NOTICE {notice}% / CRITICAL {critical}%，未写入 / the cluster's rule already says NOTICE "
                  f"{notice}% / CRITICAL {critical}%; nothing written")
    else:
        data = _alert_update(rule, mine, notice, critical)
        step.save("updateGlobalAlertRule-variables.json", {"where": {"id": rule["id"]}, "data": data})
        answer = _graphql(lambda: cloudtower.update_global_alert_rule(rule["id"], data), "设置容量告警",
                          "updateGlobalAlertRule", "在 CloudTower 告警规则中查看该规则，排除后用 --resume 续跑",
                          "check the rule under CloudTower's alert rules, then continue with --resume")
        step.save("updateGlobalAlertRule.json", answer)
        how = "set"
        step.note(f"{n} 台主机：NOTICE {before}% → {notice}%，CRITICAL {critical}% 不变 / {n} hosts: NOTICE {before}% → "
                  f"{notice}%, CRITICAL {critical}% kept")
    rule, back = _cluster_rule(cloudtower, c["id"], run, pacing, step)
    step.save("rule.json", rule)
    got = {"customized": back.get("customized"), "disabled": back.get("disabled"),
           "NOTICE": _value(back.get("thresholds"), "NOTICE"), "CRITICAL": _value(back.get("thresholds"), "CRITICAL")}
    state.put(CloudTowerCapacityAlert(rule=RULE, global_rule_id=rule.get("id"), alert_rule_id=back.get("id"),
                                      host_num=n, notice=got["NOTICE"], critical=got["CRITICAL"], notice_before=before,
                                      how=how))
    want = {"customized": True, "disabled": False, "NOTICE": notice, "CRITICAL": critical}
    assert got == want, (f"读回的集群告警规则与设置不一致 / the cluster's rule reads back {got}, set {want}\n"
                         f"下一步 / next: 在 CloudTower 告警规则中查看 {RULE} / check {RULE} under CloudTower's alert rules")


# =========================================================================== 06.dashboards
def _graph_params(kind: str, metric: str, title: str, view_id: str, cluster_id: str, host_ids: list[str]) -> dict:
    params = {"type": "AREA", "resource_type": kind, "view_id": view_id, "title": title, "cluster_id": cluster_id,
              "connect_id": {"cluster": [cluster_id], "host": list(host_ids)}.get(kind, []), "metric_name": metric}
    if kind == "vm":
        params |= {"metric_type": "TOPK", "metric_count": VM_TOP}
    return params


def _view(cloudtower, cluster_id: str, name: str, step, pacing) -> tuple[dict, bool]:
    """The view ``name`` of the cluster: found by name (the first when there are several), else created."""
    found = cloudtower.views(cluster_id, name)
    if found:
        view = found[0]
        if len(found) > 1:
            step.note(f"集群有 {len(found)} 个名为 {name} 的视图，使用第一个 {view.get('id')} / the cluster has {len(found)} "
                      f"views named {name}; the first ({view.get('id')}) is used")
        if (view.get("time_unit"), view.get("time_span")) != (TIME_UNIT, TIME_SPAN):
            step.note(f"视图 {name} 的时间窗为 {view.get('time_span')} {view.get('time_unit')}，保留 / view {name} keeps "
                      f"its window of {view.get('time_span')} {view.get('time_unit')}")
        return view, False
    answer = cloudtower.create_view(cluster_id, name, TIME_UNIT, TIME_SPAN)
    _tasks_done(cloudtower, [answer], f"创建视图 {name} / create view {name}", pacing)
    view = answer["data"]
    assert view.get("id"), f"create-view 未返回 ID / create-view returned no id: {answer}"
    return view, True


def _dashboard(cloudtower, cluster_id: str, name: str, kind: str, graphs, host_ids: list[str], step,
               pacing) -> tuple[DashboardView, list[str]]:
    """One view and its graphs: existing graphs found by ``metric_name`` in the view, only the missing ones created
    (one ``create-graph`` call per view). Returns the view's record and what is wrong with it after."""
    view, view_created = _view(cloudtower, cluster_id, name, step, pacing)
    before = cloudtower.graphs(view["id"])
    have = {g.get("metric_name") for g in before}
    missing = [(m, t) for m, t in graphs if m not in have]
    if missing:
        answers = cloudtower.create_graphs([_graph_params(kind, m, t, view["id"], cluster_id, host_ids)
                                            for m, t in missing])
        step.save(f"create-graph-{name}.json", answers)
        _tasks_done(cloudtower, answers, f"创建视图 {name} 的图表 / create the graphs of view {name}", pacing)
    after = cloudtower.graphs(view["id"])
    counts = Counter(g.get("metric_name") for g in after)
    problems = [f"{name}: 缺少 / missing {m}" for m, _ in graphs if counts[m] < 1]
    if len(after) != len(before) + len(missing):
        problems.append(f"{name}: 图表数 / graphs {len(before)} + {len(missing)} → {len(after)}")
    extra = sorted(m for m, k in counts.items() if k > 1)
    if extra:
        step.note(f"视图 {name} 中已有重复图表（此前创建）：{', '.join(extra)} / view {name} already held duplicate graphs "
                  f"(made earlier): {', '.join(extra)}")
    return DashboardView(name=name, id=view["id"], resource_type=kind, graphs=len(after), planned=len(graphs),
                         created=len(missing), view_created=view_created), problems


@pytest.mark.dependency(name="06.dashboards", depends=["05.cluster"], scope="session")
def test_dashboards(valid_plan, cloudtower, run, state, step, pacing):
    """监控面板：集群、主机、虚拟机视图及其图表 / Monitoring dashboards: the Cluster, Host and VM views and graphs

    What the guide's init script creates (facts 06-09-11 §1): views ``Cluster`` (3 graphs), ``Host`` (7, over every
    host of the cluster) and ``VM`` (5, top 5), each over the last 2 hours, every graph an AREA graph. A view is found
    by name and a graph by ``metric_name`` in its view before anything is created (the script duplicates them on a
    rerun; this step does not). ``metric_count`` is sent as the SDK's integer, not the script's string "5"."""
    c = _cluster(valid_plan, cloudtower, run, state, pacing)
    hosts = cloudtower.hosts(c["id"])
    host_ids = [h["id"] for h in hosts if h.get("id")]
    assert host_ids, f"CloudTower 中集群 {c['id']} 没有主机 / CloudTower lists no host of the cluster {c['id']}"
    views, problems = [], []
    for name, kind, graphs in VIEWS:
        view, wrong = _dashboard(cloudtower, c["id"], name, kind, graphs, host_ids, step, pacing)
        views.append(view)
        problems += wrong
    step.save("views.json", cloudtower.views(c["id"]))
    state.put(CloudTowerDashboards(views))
    step.note("; ".join(f"{v.name}: {v.graphs} 个图表 / graphs (本次创建 / created {v.created})" for v in views))
    assert not problems, ("监控面板与计划不一致 / the dashboards differ from the plan: " + "; ".join(problems)
                          + "\n下一步 / next: 在 CloudTower 监控视图中查看后用 --resume 续跑 / check the views in "
                            "CloudTower's monitoring, then continue with --resume")


# =========================================================================== 06.racks
def _rack_groups(hosts) -> dict[tuple[str, int], list]:
    """Planned hosts by (rack, U), in plan order: several hosts at one rack and U share one chassis (brick)."""
    groups: dict[tuple[str, int], list] = {}
    for h in hosts:
        groups.setdefault((h.rack, h.rack_u), []).append(h)
    return groups


def _layout_problems(groups: dict, server_u: int, rack_u: int) -> list[str]:
    """What cannot be placed with these heights (checked before any call): a chassis reaching past the rack's top,
    or two chassis of one rack overlapping (positions are the lowest U a chassis occupies, counted from 1)."""
    if server_u < 1 or rack_u < 1:
        return [f"--server-height {server_u} / --rack-height {rack_u}: 须为正整数 / must be positive whole numbers"]
    out = []
    for (rack, u), members in groups.items():
        if u + server_u - 1 > rack_u:
            out.append(f"{rack} U{u}（{members[0].ref('rack_u')}）+ {server_u}U 超出 {rack_u}U 机架 / reaches past the "
                       f"top of a {rack_u}U rack")
    by_rack: dict[str, list[int]] = {}
    for rack, u in groups:
        by_rack.setdefault(rack, []).append(u)
    for rack, us in by_rack.items():
        us.sort()
        for low, high in zip(us, us[1:]):
            if high < low + server_u:
                a, b = groups[(rack, low)][0], groups[(rack, high)][0]
                out.append(f"{rack}: U{low}（{a.ref('rack_u')}）与 U{high}（{b.ref('rack_u')}）在 {server_u}U 高度下重叠 / "
                           f"U{low} and U{high} overlap with {server_u}U servers")
    return out


def _host_ids(plan_hosts, ct_hosts: list[dict]) -> dict[str, str]:
    """Plan management IP -> CloudTower host id (matched by management IP, else by name)."""
    by_ip = {h.get("management_ip"): h.get("id") for h in ct_hosts}
    by_name = {(h.get("name") or "").lower(): h.get("id") for h in ct_hosts}
    out = {}
    for h in plan_hosts:
        hid = by_ip.get(str(h.mgmt_ip)) or by_name.get((h.hostname or "").lower())
        assert hid, (f"CloudTower 中找不到主机 {h.hostname}（{h.mgmt_ip}）/ CloudTower has no host {h.hostname} "
                     f"({h.mgmt_ip})\n下一步 / next: 核对 05.cluster 的主机列表 / check 05.cluster's host list")
        out[str(h.mgmt_ip)] = hid
    return out


def _zone(cloudtower, cluster_id: str) -> str:
    zones = cloudtower.zone_topoes(cluster_id)
    assert len(zones) == 1, (
        f"集群有 {len(zones)} 个可用域（zone），规划表不指明机架属于哪个 / the cluster has {len(zones)} zone(s) and the "
        f"plan does not say which a rack belongs to\n下一步 / next: 双活（多可用域）集群请在 CloudTower 中手工放置机架 / "
        f"place the racks of a stretched cluster by hand in CloudTower")
    return zones[0]["id"]


class _Topology:
    """The cluster's racks, bricks and nodes as CloudTower shows them, and what this step changed."""

    def __init__(self, cloudtower, cluster_id: str, host_ids: dict[str, str], step, pacing):
        self.ct, self.cluster_id, self.host_ids, self.step, self.pacing = cloudtower, cluster_id, host_ids, step, pacing
        self.racks: dict[str, dict] = {}
        self.racks_created: list[str] = []
        self.bricks_created = self.bricks_moved = self.nodes_moved = 0
        self.claimed: set[str] = set()
        self.reload()

    def reload(self) -> None:
        self.bricks = {b["id"]: b for b in self.ct.brick_topoes(self.cluster_id)}
        self.nodes = {(n.get("host") or {}).get("id"): n for n in self.ct.node_topoes(list(self.host_ids.values()))}

    def node(self, h) -> dict:
        n = self.nodes.get(self.host_ids[str(h.mgmt_ip)])
        assert n and n.get("id"), (f"CloudTower 中主机 {h.hostname} 没有节点拓扑 / host {h.hostname} has no node topo in "
                                   f"CloudTower\n下一步 / next: 在 CloudTower 物理拓扑中查看 / check CloudTower's topology")
        return n

    def rack(self, name: str, zone_id: str, height: int) -> dict:
        """The rack ``name``: found by name (its height set to ``height``), else created."""
        found = self.ct.rack_topoes(self.cluster_id, name)
        if not found:
            answer = self.ct.create_rack_topo(self.cluster_id, zone_id, name, height)
            _tasks_done(self.ct, [answer], f"创建机架 {name} / create rack {name}", self.pacing)
            self.racks_created.append(name)
            rack = answer["data"]
        else:
            rack = found[0]
            if len(found) > 1:
                self.step.note(f"有 {len(found)} 个名为 {name} 的机架，使用第一个 / {len(found)} racks are named {name}; "
                               f"the first is used")
            if rack.get("height") != height:
                answer = self.ct.update_rack_topo(rack["id"], {"height": height})
                _tasks_done(self.ct, _answers(answer), f"修改机架 {name} / update rack {name}", self.pacing)
                self.step.note(f"机架 {name} 高度 {rack.get('height')}U → {height}U / rack {name}: height "
                               f"{rack.get('height')}U → {height}U")
        self.racks[name] = rack
        return rack

    def _find_brick(self, name: str, rack_id: str, u: int, node_ids: set[str]) -> dict | None:
        """An existing brick for this chassis, among those holding no other host's node (and not taken by another
        chassis of this step): preferably one already holding some of its nodes (its own brick, or a default brick
        named after the host), then one at its rack and U, then one with its name; None when there is none."""
        def score(b: dict) -> tuple[bool, bool, bool]:
            there = (b.get("rack_topo") or {}).get("id") == rack_id and b.get("position") == u
            return bool(holds[b["id"]]), there, b.get("name") == name

        free = [b for b in self.bricks.values() if b["id"] not in self.claimed]
        holds = {b["id"]: {n["id"] for n in self.nodes.values() if (n.get("brick_topo") or {}).get("id") == b["id"]}
                 for b in free}
        fits = [b for b in free if holds[b["id"]] <= node_ids and any(score(b))]
        return max(fits, key=score, default=None)

    def brick(self, name: str, rack: dict, u: int, height: int, members: list) -> dict:
        """The brick (chassis) at ``rack``/``u`` for ``members``: found and moved / updated as needed, else created."""
        node_ids = [self.node(h)["id"] for h in members]
        capacity = {"row": 1, "column": len(members)}
        brick = self._find_brick(name, rack["id"], u, set(node_ids))
        if brick is None:
            answer = self.ct.create_brick_topo({"cluster_id": self.cluster_id, "name": name, "position": u,
                                                "height": height, "rack_topo_id": rack["id"], "capacity": capacity,
                                                "node_topoes": {"id_in": node_ids}})
            _tasks_done(self.ct, [answer], f"创建机箱 {name} / create brick {name}", self.pacing)
            self.bricks_created += 1
            brick = answer["data"]
        else:
            if (brick.get("rack_topo") or {}).get("id") != rack["id"] or brick.get("position") != u:
                answer = self.ct.move_brick_topo(brick["id"], u, rack["id"])
                _tasks_done(self.ct, _answers(answer), f"移动机箱 {name} / move brick {name}", self.pacing)
                self.bricks_moved += 1
            change = {k: v for k, v in (("name", name), ("height", height), ("capacity", capacity))
                      if brick.get(k) != v}
            if change:
                answer = self.ct.update_brick_topo(brick["id"], change)
                _tasks_done(self.ct, _answers(answer), f"修改机箱 {name} / update brick {name}", self.pacing)
        self.claimed.add(brick["id"])
        return brick

    def place_nodes(self, brick: dict, members: list) -> None:
        """Each member's node in ``brick``: a node already in it stays in its slot (whether the brick's creation put
        it there or an earlier run did); any other is moved in with ``move-node-topo`` without a slot, which the SDK
        leaves optional, so CloudTower takes its first free one under its own numbering (0- or 1-based: unknown)."""
        self.reload()
        for h in members:
            n = self.node(h)
            if (n.get("brick_topo") or {}).get("id") == brick["id"]:
                continue
            answer = self.ct.move_node_topo(n["id"], {"brick_topo_id": brick["id"]})
            _tasks_done(self.ct, _answers(answer), f"放置节点 {h.hostname} / place node {h.hostname}", self.pacing)
            self.nodes_moved += 1


def _brick_name(rack: str, u: int, members: list) -> str:
    """One host: its name (facts §2); a multi-node chassis: ``<rack>-U<u>``."""
    return members[0].hostname if len(members) == 1 else f"{rack}-U{u}"


def _placements(topo: _Topology, groups: dict) -> tuple[list[RackPlacement], list[str]]:
    """Each planned host where CloudTower now shows it (node → brick → rack), and the ones not where planned."""
    topo.reload()
    racks = {r["id"]: r for r in topo.ct.rack_topoes(topo.cluster_id)}
    out, wrong = [], []
    for (rack, u), members in groups.items():
        for h in members:
            n = topo.node(h)
            b = topo.bricks.get((n.get("brick_topo") or {}).get("id")) or {}
            r = racks.get((b.get("rack_topo") or {}).get("id")) or {}
            out.append(RackPlacement(host=h.hostname, ip=str(h.mgmt_ip), rack=r.get("name") or "-",
                                     u=b.get("position") or 0, brick=b.get("name"),
                                     shared_with=[m.hostname for m in members if m is not h]))
            if (r.get("name"), b.get("position")) != (rack, u):
                wrong.append(f"{h.hostname}: {r.get('name') or '-'} U{b.get('position') or '-'}，规划 / planned "
                             f"{rack} U{u}（{h.ref('rack')}/{h.ref('rack_u')}）")
    return out, wrong


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
    CloudTower. Existing racks get the option's height. Nothing is deleted: a default brick left empty stays (noted).
    A plan without rack data makes the step not applicable; hosts without rack data where others have it stay where
    they are (noted)."""
    placed = [h for h in valid_plan.hosts if h.rack and h.rack_u]
    if not placed:
        step.not_applicable("规划表主机规划 P/Q 列没有机架数据", "the plan has no rack data (主机规划 columns P/Q)")
    unplaced = [h for h in valid_plan.hosts if h not in placed]
    groups = _rack_groups(placed)
    server_u, rack_u = int(run.server_height_u), int(run.rack_height_u)
    problems = _layout_problems(groups, server_u, rack_u)
    assert not problems, ("机架数据无法按此高度放置 / the rack data cannot be placed with these heights: "
                          + "; ".join(problems) + "\n下一步 / next: 核对主机规划 P/Q 列，或用 --server-height / "
                          "--rack-height 给出实际高度 / check 主机规划 columns P/Q, or give the real heights with "
                          "--server-height / --rack-height")
    c = _cluster(valid_plan, cloudtower, run, state, pacing)
    host_ids = _host_ids(valid_plan.hosts, cloudtower.hosts(c["id"]))
    topo = _Topology(cloudtower, c["id"], host_ids, step, pacing)
    step.save("topology-before.json", {"bricks": list(topo.bricks.values()), "nodes": list(topo.nodes.values())})
    zone_id = _zone(cloudtower, c["id"])
    for (rack, u), members in groups.items():
        r = topo.racks.get(rack) or topo.rack(rack, zone_id, rack_u)
        brick = topo.brick(_brick_name(rack, u, members), r, u, server_u, members)
        topo.place_nodes(brick, members)
        if len(members) > 1:
            step.note(f"{rack} U{u}：{len(members)} 台主机共用一个机箱（多节点机箱）/ {len(members)} hosts share one chassis "
                      f"(multi-node): {', '.join(h.hostname for h in members)}")
    if unplaced:
        step.note(f"规划未给出机架数据的主机保持原位 / hosts the plan gives no rack data stay where they are: "
                  f"{', '.join(h.hostname for h in unplaced)}")
    placements, wrong = _placements(topo, groups)
    empty = sorted(b.get("name") or b["id"] for b in topo.bricks.values() if not b.get("node_topoes"))
    if empty:
        step.note(f"空机箱保留未删除 / empty bricks left in place (not deleted): {', '.join(empty)}")
    step.save("topology.json", {"racks": cloudtower.rack_topoes(c["id"]), "bricks": list(topo.bricks.values()),
                                "nodes": list(topo.nodes.values())})
    state.put(CloudTowerRacks(placements=placements, server_height_u=server_u, rack_height_u=rack_u,
                              racks_created=topo.racks_created, bricks_created=topo.bricks_created,
                              bricks_moved=topo.bricks_moved, nodes_moved=topo.nodes_moved,
                              unplaced=[h.hostname for h in unplaced]))
    step.note(f"新建机架 {len(topo.racks_created)}、机箱 {topo.bricks_created}，移动机箱 {topo.bricks_moved}、节点 "
              f"{topo.nodes_moved} / racks created {len(topo.racks_created)}, bricks created {topo.bricks_created}, "
              f"bricks moved {topo.bricks_moved}, nodes placed {topo.nodes_moved}")
    assert not wrong, ("主机不在规划的机架位置 / hosts are not where the plan puts them: " + "; ".join(wrong)
                       + "\n下一步 / next: 在 CloudTower 物理拓扑中查看后用 --resume 续跑 / check CloudTower's topology, "
                         "then continue with --resume")
