"""Alert rules of a simulated CloudTower (guide §06 "获取所有报警规则" / "配置集群存储容量告警").

* **Global rules** (:data:`mocks.cloudtower.alert_catalog.CATALOG`, 116 of them; 94 pass the guide's filter):
  created with the tower, ids sorted in catalogue order so that ``zbs_cluster_data_space_use_rate`` comes
  73rd of the guide's 94 under ``orderBy: id_ASC`` (past ``first: 50``: the pagination trap).
* **Per-cluster rules** (``AlertRule``): one per global rule per cluster, created when the cluster reads
  ``CONNECTED`` (plus ``tower.alert_rules_lag`` simulated seconds, default 0: the "alert_rules empty until
  sync" fault) [inf]. Until then the guide's filter ``alert_rules_some: {}`` matches nothing. A rule that is
  not ``customized`` shows the global rule's thresholds and ``disabled``; ``customized: true`` gives it its own.
* ``updateGlobalAlertRule(where: {id}, data: {disabled?, thresholds?, alert_rules?: {update: [{where: {id},
  data: {customized?, disabled?, thresholds?}}]}})``: all or nothing. ``thresholds`` is a list of
  ``{value, severity, quantile?, __typename?}`` -- typed ``JSON`` in the SDL because the guide's browser sends
  ``__typename: "Thresholds"`` inside it, which a GraphQL input type would refuse [inf]. Checked: severities
  ``INFO|NOTICE|CRITICAL|SEVERITY_UNSPECIFIED``, each once; numbers ≥ 0 (≤ 100 for PERCENT); for a ``>`` rule
  INFO < NOTICE < CRITICAL (reversed for ``<``). A per-cluster ``where.id`` that is not one of this rule's
  -> ``NOT_FOUND``.
* REST: ``get-global-alert-rules`` / ``get-alert-rules`` (SDK shapes: a global rule's ``alert_rules`` are
  ``[{id}]``), ``update-global-alert-rule`` ``{where, data: {thresholds, disabled}}`` and
  ``update-customize-alert-rule`` ``{where, data: {clusters*, thresholds, disabled}}`` (sets the matching
  clusters' rules ``customized``); both answer ``[{data: <global rule>, task_id: null}]``.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from .alert_catalog import CATALOG, KINDS, message
from .errors import GqlError, RestError
from .filters import FilterError, matches
from .util import cuid

SEVERITIES = ("CRITICAL", "NOTICE", "INFO", "SEVERITY_UNSPECIFIED")      # output order: CRITICAL first
_RANK = {"INFO": 1, "NOTICE": 2, "CRITICAL": 3}
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_RULE_TS = "mixj2d6i"           # the cuid timestamp part of the guide's global rule id (cmixj2d6i010h0958…)


def _b36(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _B36[r] + out
    return out.rjust(width, "0")


def ordered_cuid(ip: str, index: int, name: str) -> str:
    """A cuid-like id that sorts by ``index`` (``c`` + timestamp + counter + fingerprint + random)."""
    return "c" + _RULE_TS + _b36(0x1000 + index, 4) + "0958" + cuid("smtx-sim://cloudtower", ip, "rule", name)[1:9]


@dataclass
class GlobalAlertRule:
    id: str
    name: str
    object: str
    unit: str
    operator: str
    thresholds: list[dict]
    default_thresholds: list[dict]
    disabled: bool = False


@dataclass
class AlertRule:
    id: str
    local_id: str
    global_id: str
    cluster_id: str
    customized: bool = False
    disabled: bool = False
    thresholds: list[dict] = field(default_factory=list)       # its own (used when customized)


class ThresholdError(ValueError):
    pass


def _sorted(ths: list[dict]) -> list[dict]:
    return sorted(ths, key=lambda t: SEVERITIES.index(t["severity"]))


def check_thresholds(raw: Any, rule: GlobalAlertRule, where: str) -> list[dict]:
    """``raw`` (the wire's thresholds list) checked and normalized to ``[{severity, value, quantile}]``."""
    if not isinstance(raw, list) or not raw:
        raise ThresholdError(f"{where} must be a non-empty list of {{value, severity}}")
    out, seen = [], set()
    for i, t in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(t, dict):
            raise ThresholdError(f"{at} must be an object {{value, severity}}")
        extra = set(t) - {"value", "severity", "quantile", "__typename"}
        if extra:
            raise ThresholdError(f"{at}: unknown field(s) {sorted(extra)} (Thresholds has value, severity, quantile)")
        if t.get("__typename", "Thresholds") != "Thresholds":
            raise ThresholdError(f"{at}.__typename must be \"Thresholds\", got {t['__typename']!r}")
        sev, value, q = t.get("severity"), t.get("value"), t.get("quantile", 0)
        if sev not in SEVERITIES:
            raise ThresholdError(f"{at}.severity must be one of {', '.join(SEVERITIES)}, got {sev!r}")
        if sev in seen:
            raise ThresholdError(f"{at}: severity {sev} given twice")
        seen.add(sev)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ThresholdError(f"{at}.value must be a number >= 0, got {value!r}")
        if rule.unit == "PERCENT" and value > 100:
            raise ThresholdError(f"{at}.value {value} is not a percentage (0-100)")
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or q < 0):
            raise ThresholdError(f"{at}.quantile must be an integer >= 0, got {q!r}")
        out.append({"severity": sev, "value": int(value) if float(value).is_integer() else value,
                    "quantile": q or 0})
    ranked = sorted((t for t in out if t["severity"] in _RANK), key=lambda t: _RANK[t["severity"]])
    if rule.operator in (">", "<"):
        for lo, hi in zip(ranked, ranked[1:]):
            bad = lo["value"] >= hi["value"] if rule.operator == ">" else lo["value"] <= hi["value"]
            if bad:
                rel = "below" if rule.operator == ">" else "above"
                raise ThresholdError(f"{where}: {lo['severity']} ({lo['value']}) must be {rel} {hi['severity']} "
                                     f"({hi['value']}) for {rule.name} ({rule.operator})")
    return _sorted(out)


class AlertsMixin:
    """State: ``global_alert_rules`` (id -> :class:`GlobalAlertRule`, catalogue order), ``alert_rules`` (id ->
    :class:`AlertRule`), ``alert_rules_lag``."""

    def _init_alerts(self) -> None:
        self.global_alert_rules: dict[str, GlobalAlertRule] = {}
        self.alert_rules: dict[str, AlertRule] = {}
        for i, (name, obj, unit, kind) in enumerate(CATALOG):
            op, ths = KINDS[kind]
            rule_ths = [{"severity": s, "value": v, "quantile": 0} for s, v in ths]
            r = GlobalAlertRule(id=ordered_cuid(self.ip, i, name), name=name, object=obj, unit=unit, operator=op,
                                thresholds=[dict(t) for t in rule_ths], default_thresholds=rule_ths)
            self.global_alert_rules[r.id] = r

    def _sync_alerts(self, connected: list) -> None:
        """Per-cluster rules for every cluster CONNECTED (``alert_rules_lag`` s ago); none for a cluster gone."""
        have = {a.cluster_id for a in self.alert_rules.values()}
        now = self.clock.now()
        for c in connected:
            if c.id in have:
                continue
            if self.alert_rules_lag:
                since = self._connected_at(c)
                if since is None or now < since + float(self.alert_rules_lag):
                    continue
            for g in self.global_alert_rules.values():
                aid = cuid("smtx-sim://cloudtower", self.ip, "alert-rule", c.id, g.id)
                self.alert_rules[aid] = AlertRule(id=aid, global_id=g.id, cluster_id=c.id,
                                                  local_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://{aid}")))
        for a in [a for a in self.alert_rules.values() if a.cluster_id not in self.clusters]:
            del self.alert_rules[a.id]

    # ------------------------------------------------------------------ views
    def _alert_view(self, a: AlertRule) -> dict:
        g = self.global_alert_rules[a.global_id]
        c = self.clusters.get(a.cluster_id)
        ths = a.thresholds if a.customized else g.thresholds
        return {"id": a.id, "local_id": a.local_id, "customized": a.customized,
                "disabled": a.disabled if a.customized else (a.disabled or g.disabled),
                "thresholds": [dict(t) for t in ths],
                "cluster": {"id": a.cluster_id, "name": (c.name or c.ip) if c else None},
                "global_alert_rule": {"id": g.id, "name": g.name}}

    def global_rule_view(self, g: GlobalAlertRule, *, rest: bool = False) -> dict:
        rules = [a for a in self.alert_rules.values() if a.global_id == g.id]
        return {"id": g.id, "name": g.name, "message": message(g.name), "object": g.object, "unit": g.unit,
                "disabled": g.disabled, "boolean": g.operator == "==", "operator": g.operator,
                "cause": f"{g.name} reached its threshold", "impact": "may affect the cluster's service",
                "solution": "check the object the alert names",
                "thresholds": [dict(t) for t in g.thresholds],
                "default_thresholds": [dict(t) for t in g.default_thresholds],
                "alert_rules": [{"id": a.id} if rest else self._alert_view(a) for a in rules]}

    def list_global_alert_rules(self, *, rest: bool = False) -> list[dict]:
        self.sync_config()
        with self.lock:
            return [self.global_rule_view(g, rest=rest) for g in self.global_alert_rules.values()]

    def list_alert_rules(self) -> list[dict]:
        self.sync_config()
        with self.lock:
            return [self._alert_view(a) for a in self.alert_rules.values()]

    def alert_rule_by_name(self, name: str) -> GlobalAlertRule | None:
        return next((g for g in self.global_alert_rules.values() if g.name == name), None)

    # ------------------------------------------------------------------ updates
    def _planned_rule_updates(self, g: GlobalAlertRule, updates: Any) -> list[tuple[AlertRule, dict]]:
        """``alert_rules: {update: [...]}`` checked: ``[(rule, normalized data)]``."""
        if updates is None:
            return []
        if not isinstance(updates, dict) or set(updates) - {"update"}:
            raise GqlError("data.alert_rules must be {update: [{where: {id}, data}]}", "BAD_USER_INPUT")
        out = []
        for i, u in enumerate(updates.get("update") or []):
            aid = (u.get("where") or {}).get("id")
            a = self.alert_rules.get(aid)
            if a is None or a.global_id != g.id:
                raise GqlError(f"data.alert_rules.update[{i}].where: no alert rule {aid!r} of global rule {g.name}",
                               "NOT_FOUND")
            d = dict(u.get("data") or {})
            if "thresholds" in d and d["thresholds"] is not None:
                d["thresholds"] = self._thresholds(d["thresholds"], g, f"data.alert_rules.update[{i}].data.thresholds")
            out.append((a, d))
        return out

    @staticmethod
    def _thresholds(raw: Any, g: GlobalAlertRule, where: str, *, rest: bool = False) -> list[dict]:
        try:
            return check_thresholds(raw, g, where)
        except ThresholdError as exc:
            if rest:
                raise RestError(400, str(exc)) from None
            raise GqlError(str(exc), "BAD_USER_INPUT") from None

    @staticmethod
    def _apply_rule_data(a: AlertRule, d: dict) -> None:
        if d.get("customized") is not None:
            a.customized = bool(d["customized"])
        if d.get("disabled") is not None:
            a.disabled = bool(d["disabled"])
        if d.get("thresholds") is not None:
            a.thresholds = d["thresholds"]
        if not a.customized:
            a.thresholds = []

    def update_global_alert_rule(self, rule_id: Any, data: dict) -> dict:
        """GraphQL ``updateGlobalAlertRule``: every part checked first, then applied."""
        self.sync_config()
        with self.lock:
            g = self.global_alert_rules.get(rule_id) if isinstance(rule_id, str) else None
            if g is None:
                raise GqlError(f"No GlobalAlertRule found for where {{id: {rule_id!r}}}", "NOT_FOUND")
            ths = None
            if data.get("thresholds") is not None:
                ths = self._thresholds(data["thresholds"], g, "data.thresholds")
            planned = self._planned_rule_updates(g, data.get("alert_rules"))
            if data.get("disabled") is not None:
                g.disabled = bool(data["disabled"])
            if ths is not None:
                g.thresholds = ths
            for a, d in planned:
                self._apply_rule_data(a, d)
            return self.global_rule_view(g)

    def _rest_rules(self, where: Any) -> list[GlobalAlertRule]:
        try:
            return [g for g in self.global_alert_rules.values() if matches(self.global_rule_view(g), where,
                                                                            typename="GlobalAlertRule")]
        except FilterError as exc:
            raise RestError(400, f"where: {exc}") from None

    def rest_update_global_alert_rules(self, body: dict, *, customize: bool) -> list[dict]:
        """REST ``update-global-alert-rule`` / ``update-customize-alert-rule`` (``customize``)."""
        self.sync_config()
        data = body.get("data")
        allowed = {"thresholds", "disabled"} | ({"clusters"} if customize else set())
        if not isinstance(data, dict) or set(data) - allowed:
            raise RestError(400, f"data must be an object with {sorted(allowed)}")
        if customize and not isinstance(data.get("clusters"), dict):
            raise RestError(400, "data.clusters is required (a ClusterWhereInput such as {id})")
        with self.lock:
            rules = self._rest_rules(body.get("where"))
            plans = []
            for g in rules:
                ths = None if data.get("thresholds") is None else self._thresholds(data["thresholds"], g,
                                                                                  "data.thresholds", rest=True)
                mine = []
                if customize:
                    try:
                        mine = [a for a in self.alert_rules.values() if a.global_id == g.id
                                and matches(self._alert_view(a)["cluster"], data["clusters"], typename="Cluster")]
                    except FilterError as exc:
                        raise RestError(400, f"data.clusters: {exc}") from None
                plans.append((g, ths, mine))
            for g, ths, mine in plans:
                if not customize:
                    g.thresholds = ths if ths is not None else g.thresholds
                    g.disabled = g.disabled if data.get("disabled") is None else bool(data["disabled"])
                for a in mine:
                    self._apply_rule_data(a, {"customized": True, "disabled": data.get("disabled"),
                                              "thresholds": ths if ths is not None else a.thresholds or
                                              [dict(t) for t in g.thresholds]})
            return [{"data": self.global_rule_view(g, rest=True), "task_id": None} for g, _t, _m in plans]

    def set_cluster_alert(self, cluster_id: str, name: str, thresholds: list[dict]) -> dict:
        """Model shortcut (presets, tests): the per-cluster rule ``name`` of a cluster customized with
        ``thresholds`` (``[{severity, value}]``), as the guide's mutation does."""
        self.sync_config()
        with self.lock:
            g = self.alert_rule_by_name(name)
            a = next((a for a in self.alert_rules.values() if g and a.global_id == g.id
                      and a.cluster_id == cluster_id), None)
            if g is None or a is None:
                raise ValueError(f"no per-cluster alert rule {name} for cluster {cluster_id} (not CONNECTED yet?)")
            return self.update_global_alert_rule(g.id, {"alert_rules": {"update": [
                {"where": {"id": a.id}, "data": {"customized": True, "disabled": False, "thresholds": thresholds}}]}})

