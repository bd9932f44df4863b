"""Stage 06 of a simulated CloudTower: what it configures on the clusters it manages (guide §06).

:class:`ConfigMixin` (mixed into :class:`~mocks.cloudtower.models.CloudTowerModel`) brings together
:mod:`.cluster_settings` (default storage policy), :mod:`.alerts` (global and per-cluster alert rules),
:mod:`.views` (monitoring views and graphs) and :mod:`.topology` (rack topology), and derives what appears when
a cluster first reads ``CONNECTED`` (its settings, its per-cluster alert rules, its topology with the default
placement) in :meth:`ConfigMixin.sync_config`, which every stage-06 read and write calls first -- no hook in
the connection code is needed: the state is checked on read, as every long operation here is.

Knobs (``tower = sim.state.cloudtower.tower(ip)``): ``initial_storage_policy``, ``alert_rules_lag`` (snapshot
tunables); profile-chosen (not in snapshots): ``unique_names`` (``ct-names``), ``topology_default``
(``topology-default``: ``"unplaced"`` | ``"bricks"``), ``graphql_variable_status`` (``gql-variables``: 400 | 200).
"""
from __future__ import annotations

import dataclasses

from .alerts import AlertRule, AlertsMixin
from .cluster_settings import INITIAL_STORAGE_POLICY, ClusterSettings, ClusterSettingsMixin
from .topology import TOPO_TABLES, TopologyMixin
from .views import DashboardsMixin, Graph, View, ViewsMixin

__all__ = ["ConfigMixin"]


def _rows(table: dict) -> list[dict]:
    return [dataclasses.asdict(x) for x in table.values()]


def _table(cls, rows: list[dict]) -> dict:
    known = {f.name for f in dataclasses.fields(cls)}
    return {r["id"]: cls(**{k: v for k, v in r.items() if k in known}) for r in rows or []}


class ConfigMixin(ClusterSettingsMixin, AlertsMixin, ViewsMixin, DashboardsMixin, TopologyMixin):
    """State: ``cluster_settings``, ``global_alert_rules``, ``alert_rules``, ``views``, ``graphs`` and the topology
    tables; knobs in the module doc."""

    def _init_config(self) -> None:
        self.initial_storage_policy = INITIAL_STORAGE_POLICY
        self.alert_rules_lag = 0.0
        self.unique_names = False
        self.topology_default = "unplaced"
        self.graphql_variable_status = 400
        self.cluster_settings: dict[str, ClusterSettings] = {}
        self.views: dict[str, View] = {}
        self.graphs: dict[str, Graph] = {}
        self._init_alerts()
        self._init_topology()

    def sync_config(self) -> None:
        """Create what a cluster brings when it first reads CONNECTED; drop what belonged to a cluster gone."""
        hosts = self.list_hosts()                       # settles; CONNECTED (and DISCONNECTED) clusters' hosts
        with self.lock:
            connected = [c for c in self.clusters.values() if self.connect_state(c) == "CONNECTED"]
            for c in connected:
                self._ensure_settings(c)
            for s in [s for s in self.cluster_settings.values() if s.cluster_id not in self.clusters]:
                del self.cluster_settings[s.id]
            self._sync_alerts(connected)
            self._views_of_gone_clusters()
            self._sync_topology(connected, hosts)

    # ------------------------------------------------------------------ snapshot
    def export_config(self) -> dict:
        with self.lock:
            return {
                "cluster_settings": _rows(self.cluster_settings),
                "global_alert_rules": [{"id": g.id, "thresholds": g.thresholds, "disabled": g.disabled}
                                       for g in self.global_alert_rules.values()],
                "alert_rules": _rows(self.alert_rules),
                "views": _rows(self.views), "graphs": _rows(self.graphs),
                **{name: _rows(getattr(self, name)) for name in TOPO_TABLES},
                "tunables": {"initial_storage_policy": self.initial_storage_policy,
                             "alert_rules_lag": self.alert_rules_lag},
            }

    def import_config(self, saved: dict) -> None:
        with self.lock:
            self.cluster_settings = _table(ClusterSettings, saved.get("cluster_settings"))
            for g in saved.get("global_alert_rules") or []:
                rule = self.global_alert_rules.get(g.get("id"))
                if rule is not None:
                    rule.thresholds, rule.disabled = list(g.get("thresholds") or rule.thresholds), bool(g.get("disabled"))
            self.alert_rules = _table(AlertRule, saved.get("alert_rules"))
            self.views, self.graphs = _table(View, saved.get("views")), _table(Graph, saved.get("graphs"))
            for name, cls in TOPO_TABLES.items():
                setattr(self, name, _table(cls, saved.get(name)))
            tun = saved.get("tunables") or {}
            self.initial_storage_policy = tun.get("initial_storage_policy", self.initial_storage_policy)
            self.alert_rules_lag = float(tun.get("alert_rules_lag", self.alert_rules_lag))
