"""CloudTower monitoring dashboards, stage 06.3 (../shared/reference/cloudtower-stage06-09-11-api-facts.md §1): the
views and graphs the public dashboard script creates, found before anything is created so a rerun adds nothing."""
from __future__ import annotations

from collections import Counter

from .cloudtower import CloudTowerClient
from .ct_cluster import Recorder, tasks_done
from .poll import Pacing

# What the public dashboard script creates (facts 06-09-11 §1); titles are free text
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


def graph_params(kind: str, metric: str, title: str, view_id: str, cluster_id: str, host_ids: list[str]) -> dict:
    """One ``create-graph`` item: an AREA graph of ``metric`` over the cluster, its hosts, or its top VMs."""
    params = {"type": "AREA", "resource_type": kind, "view_id": view_id, "title": title, "cluster_id": cluster_id,
              "connect_id": {"cluster": [cluster_id], "host": list(host_ids)}.get(kind, []), "metric_name": metric}
    if kind == "vm":
        params |= {"metric_type": "TOPK", "metric_count": VM_TOP}
    return params


def view(cloudtower: CloudTowerClient, cluster_id: str, name: str, record: Recorder,
         pacing: Pacing) -> tuple[dict, bool]:
    """The view ``name`` of the cluster: found by name (the first when there are several), else created. Returns it
    and whether it was created."""
    found = cloudtower.views(cluster_id, name)
    if found:
        v = found[0]
        if len(found) > 1:
            record.note(f"集群有 {len(found)} 个名为 {name} 的视图，使用第一个 {v.get('id')} / the cluster has "
                        f"{len(found)} views named {name}; the first ({v.get('id')}) is used")
        if (v.get("time_unit"), v.get("time_span")) != (TIME_UNIT, TIME_SPAN):
            record.note(f"视图 {name} 的时间窗为 {v.get('time_span')} {v.get('time_unit')}，保留 / view {name} keeps "
                        f"its window of {v.get('time_span')} {v.get('time_unit')}")
        return v, False
    answer = cloudtower.create_view(cluster_id, name, TIME_UNIT, TIME_SPAN)
    tasks_done(cloudtower, [answer], f"创建视图 {name} / create view {name}", pacing)
    v = answer["data"]
    if not v.get("id"):
        raise AssertionError(f"create-view 未返回 ID / create-view returned no id: {answer}")
    return v, True


def dashboard(cloudtower: CloudTowerClient, cluster_id: str, name: str, kind: str, graphs, host_ids: list[str],
              record: Recorder, pacing: Pacing) -> tuple[dict, list[str]]:
    """One view and its graphs: existing graphs found by ``metric_name`` in the view, only the missing ones created
    (one ``create-graph`` call per view). Returns the view's record and what is wrong with it after: the record's
    keys are the fields of the run's ``DashboardView`` (``graphs`` in the view after, ``planned`` of them managed
    here, ``created`` by this call, ``view_created`` whether this call created the view)."""
    v, view_created = view(cloudtower, cluster_id, name, record, pacing)
    before = cloudtower.graphs(v["id"])
    have = {g.get("metric_name") for g in before}
    missing = [(m, t) for m, t in graphs if m not in have]
    if missing:
        answers = cloudtower.create_graphs([graph_params(kind, m, t, v["id"], cluster_id, host_ids)
                                            for m, t in missing])
        record.save(f"create-graph-{name}.json", answers)
        tasks_done(cloudtower, answers, f"创建视图 {name} 的图表 / create the graphs of view {name}", pacing)
    after = cloudtower.graphs(v["id"])
    counts = Counter(g.get("metric_name") for g in after)
    problems = [f"{name}: 缺少 / missing {m}" for m, _ in graphs if counts[m] < 1]
    if len(after) != len(before) + len(missing):
        problems.append(f"{name}: 图表数 / graphs {len(before)} + {len(missing)} → {len(after)}")
    extra = sorted(m for m, k in counts.items() if k > 1)
    if extra:
        record.note(f"视图 {name} 中已有重复图表（此前创建）：{', '.join(extra)} / view {name} already held duplicate "
                    f"graphs (made earlier): {', '.join(extra)}")
    return dict(name=name, id=v["id"], resource_type=kind, graphs=len(after), planned=len(graphs),
                created=len(missing), view_created=view_created), problems


def dashboards(cloudtower: CloudTowerClient, cluster_id: str, host_ids: list[str], record: Recorder,
               pacing: Pacing) -> tuple[list[dict], list[str]]:
    """Every view of ``VIEWS`` with its graphs (see :func:`dashboard`); returns their records and all problems."""
    views, problems = [], []
    for name, kind, graphs in VIEWS:
        d, wrong = dashboard(cloudtower, cluster_id, name, kind, graphs, host_ids, record, pacing)
        views.append(d)
        problems += wrong
    return views, problems
