"""CloudTower alert rules, stage 06.2 (guide §06; ../shared/reference/cloudtower-stage05-08-api-facts.md "Stage 06"):
the capacity NOTICE threshold from the host count, the rule and its per-cluster rule as CloudTower shows them, and
the guide's ``updateGlobalAlertRule`` data that customizes only the cluster's own rule."""
from __future__ import annotations

from .cloudtower import CloudTowerClient
from .ct_cluster import POLL_S, Recorder, graphql_or_fail
from .poll import Pacing, wait_for


def notice_threshold(hosts: int) -> int:
    """NOTICE = ⌊((n−1)/n − 0.05)·100⌋ in whole numbers, with no float rounding: ⌊(95n − 100) / n⌋
    (3 → 61, 4 → 70, 5 → 75, 6 → 78, 8 → 82, 10 → 85, 16 → 88; 2 → 45)."""
    if hosts < 2:
        raise ValueError(f"no NOTICE threshold for {hosts} host(s)")
    return (95 * hosts - 100) // hosts


def threshold_value(thresholds: list[dict] | None, severity: str):
    """The value of the ``severity`` threshold among ``thresholds`` (None: there is none)."""
    return next((t.get("value") for t in thresholds or [] if t.get("severity") == severity), None)


def threshold(value, severity: str) -> dict:
    """One threshold as the guide's updateGlobalAlertRule sends it."""
    return {"value": value, "severity": severity, "quantile": 0, "__typename": "Thresholds"}


def cluster_rule(cloudtower: CloudTowerClient, name: str, cluster_id: str, *, limit: float, pacing: Pacing,
                 record: Recorder | None = None) -> tuple[dict, dict]:
    """The global rule ``name`` (asked for by name) and its per-cluster rule for ``cluster_id``, which CloudTower adds
    once it has synced the cluster: waited for, within ``limit`` guide seconds. How many pages the search read is
    noted."""
    pages: list[int] = []

    def fetch() -> tuple[dict, dict | None]:
        rule, n = cloudtower.global_alert_rule(name)
        pages.append(n)
        if not rule:
            raise AssertionError(f"CloudTower 中没有告警规则 {name} / CloudTower has no alert rule {name}\n下一步 / next: "
                                 f"核对 CloudTower 版本与指南一致 / check that CloudTower's version is the guide's")
        mine = next((a for a in rule.get("alert_rules") or [] if (a.get("cluster") or {}).get("id") == cluster_id),
                    None)
        return rule, mine

    rule, mine = wait_for(lambda: graphql_or_fail(fetch, "查询告警规则", "globalAlertRules",
                                                  "核对 CloudTower 版本后用 --resume 续跑",
                                                  "check CloudTower's version, then continue with --resume"),
                          lambda got: got[1] is not None, what=f"集群的告警规则 {name} / the cluster's rule {name}",
                          interval=POLL_S, limit=limit, pacing=pacing,
                          describe=lambda got: f"alert_rules={len(got[0].get('alert_rules') or [])}",
                          hint="在 CloudTower 告警规则中查看该集群的规则 / check the cluster's rules under CloudTower's "
                               "alert rules")
    if record is not None:   # the read-back after the update passes none: the search is noted once
        record.note(f"按名称查询告警规则 {name}（where.name），读取 {sum(pages)} 页 / rule {name} asked for by name "
                    f"(where.name), {sum(pages)} page(s) read")
    return rule, mine


def rule_reads(rule: dict) -> dict:
    """What a per-cluster rule says: customized, disabled, and its NOTICE and CRITICAL values."""
    return {"customized": rule.get("customized"), "disabled": rule.get("disabled"),
            "NOTICE": threshold_value(rule.get("thresholds"), "NOTICE"),
            "CRITICAL": threshold_value(rule.get("thresholds"), "CRITICAL")}


def critical_of(rule: dict, mine: dict, default: int):
    """The CRITICAL value the cluster's rule ``mine`` uses: its own, else the global ``rule``'s, else ``default``."""
    critical = threshold_value(mine.get("thresholds"), "CRITICAL")
    return critical if critical is not None else (threshold_value(rule.get("thresholds"), "CRITICAL") or default)


def alert_update(rule: dict, mine: dict, notice: int, critical: int) -> dict:
    """The guide's updateGlobalAlertRule data: the global rule as it is (its thresholds sent back unchanged when
    CloudTower showed their values), the cluster's rule customized with NOTICE ``notice`` and CRITICAL ``critical``
    (any other severity it has kept)."""
    mine_th = [threshold(critical, "CRITICAL"), threshold(notice, "NOTICE")]
    mine_th += [threshold(t.get("value"), t.get("severity")) for t in mine.get("thresholds") or []
                if t.get("severity") not in ("CRITICAL", "NOTICE") and t.get("value") is not None]
    data: dict = {"disabled": False,
                  "alert_rules": {"update": [{"where": {"id": mine["id"]},
                                              "data": {"customized": True, "disabled": False, "thresholds": mine_th}}]}}
    glob = rule.get("thresholds") or []
    if glob and all(t.get("value") is not None for t in glob):
        data["thresholds"] = [threshold(t["value"], t["severity"]) for t in glob]
    return data
