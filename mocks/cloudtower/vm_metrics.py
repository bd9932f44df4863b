"""Stage 10 of a simulated CloudTower: ``get-vm-metrics`` -- VM disk metrics from the test VMs' fio runs.

``{vms: VmWhereInput, metrics: [names], range: "<n>s"|"<n>m"|"<n>h"}`` -> a list of ONE ``WithTaskMetric``
``{data: Metric {unit, step, dropped: false, samples: [], sample_streams: [{labels: {_vm: <Vm.id>, metric_name},
points: [{t: epoch ms, v}]}]}, task_id: null}`` (``_vm``: the SDK's wire key of ``MetricLabel.vm``): one stream per
matched VM and requested name. Points every ``METRIC_STEP_S``
(10) simulated seconds over the range ending now, on the simulated timeline (``sim.clock.sim_wall()``, the guest's
``date`` and fio's timestamps); ranges over ``FINE_RANGE_S`` (2 h) are thinned to at most ``MAX_POINTS`` points per
stream (the step grows in multiples of 10 s). Values come from the guest's fio run records
(``mocks.guest.fio_runs(sim, vm_id)``: IOPS and bytes/s summed, latency averaged over the runs covering a point), a
deterministic +-3 % jitter, times ``tower.vm_metric_bias`` (1.0; 2.0 = CloudTower reads double: the ">25 % apart"
fault); 0 outside runs. Names (``METRIC_NAMES``): profile group ``vm-metric-names`` (``tower.vm_metric_names``):
``"guessed"`` (default) serves all five, ``"verified-only"`` only ``VERIFIED_METRICS`` -- any other name (unknown ones
too) is a stream with no points.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any

from . import vm_params as P
from .errors import RestError
from .filters import FilterError, select

METRIC_NAMES = {                       # name -> (FioRun attribute, MetricUnit)
    "elf_vm_disk_overall_read_iops": ("read_iops", "COUNT"),
    "elf_vm_disk_overall_write_iops": ("write_iops", "COUNT"),
    "elf_vm_disk_overall_read_speed_bps": ("read_bps", "DATA_RATE_BYTE"),
    "elf_vm_disk_overall_write_speed_bps": ("write_bps", "DATA_RATE_BYTE"),
    "elf_vm_disk_overall_avg_read_write_latency_ns": ("lat_ns", "TIME"),
}
VERIFIED_METRICS = ("elf_vm_disk_overall_write_speed_bps", "elf_vm_disk_overall_avg_read_write_latency_ns")
METRIC_NAME_MODES = ("guessed", "verified-only")
METRIC_STEP_S = 10
FINE_RANGE_S = 7200
MAX_POINTS = 720
JITTER = 0.03


def _jitter(*parts: Any) -> float:
    u = int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "big") / 2 ** 32
    return 1.0 + JITTER * (2 * u - 1)


def metric_value(runs: list, attr: str, sim_t: float) -> float:
    """The raw value of ``attr`` at simulated second ``sim_t`` from fio run records (0 outside runs)."""
    covering = [r for r in runs if r.start <= sim_t <= r.end]
    if not covering:
        return 0.0
    values = [float(getattr(r, attr, 0.0) or 0.0) for r in covering]
    return sum(values) / len(values) if attr == "lat_ns" else sum(values)


class VmMetricsMixin:
    """``get-vm-metrics`` (state: the tower's VMs; the records: ``mocks.guest``)."""

    def served_metric_names(self) -> tuple[str, ...]:
        return VERIFIED_METRICS if self.vm_metric_names == "verified-only" else tuple(METRIC_NAMES)

    def _fio_runs(self, vm_id: str) -> list:
        sim = getattr(self.smtx, "sim", None)
        if sim is None or vm_id not in self.ct_vms:
            return []
        from ..guest import fio_runs

        return list(fio_runs(sim, vm_id) or [])

    def vm_metrics(self, body: Any) -> list[dict]:
        body = P.fields("get-vm-metrics", body, {"vms": "dict", "metrics": "list", "range": "str"},
                        ("vms", "metrics", "range"), "GetVmMetricInput")
        names = body["metrics"]
        if not names or not all(isinstance(n, str) and n for n in names):
            raise RestError(400, "get-vm-metrics: metrics must be a non-empty list of metric names")
        seconds = P.metric_range(body["range"])
        step = METRIC_STEP_S if seconds <= FINE_RANGE_S else METRIC_STEP_S * math.ceil(seconds / MAX_POINTS / 10)
        try:
            vms = select(self.list_ct_vms(), {"where": body["vms"]}, typename="Vm")
        except FilterError as exc:
            raise RestError(400, f"get-vm-metrics: vms: {exc}") from None
        served = set(self.served_metric_names())
        base = self.clock.sim_wall(0.0)                    # UNIX s of simulated second 0
        end = math.floor(self.clock.sim_wall() / step) * step
        stamps = [end - k * step for k in range(seconds // step, -1, -1) if end - k * step >= base]
        bias = float(self.vm_metric_bias)
        streams = []
        for v in vms:
            runs = self._fio_runs(v["id"])
            for name in names:
                points = []
                if name in served:
                    attr = METRIC_NAMES[name][0]
                    for t in stamps:
                        raw = metric_value(runs, attr, t - base)
                        val = raw * _jitter(v["id"], name, t) * bias if raw else 0.0
                        points.append({"__typename": "DataPoint", "t": int(round(t * 1000)), "v": round(val, 3)})
                streams.append({"__typename": "MetricStream", "points": points,
                                "labels": {"__typename": "MetricLabel", "_vm": v["id"], "metric_name": name}})
        unit = METRIC_NAMES.get(names[0], (None, "COUNT"))[1]
        return [{"data": {"__typename": "Metric", "unit": unit, "step": step, "dropped": False, "samples": [],
                          "sample_streams": streams}, "task_id": None}]
