"""Performance acceptance (stage 10, issue 19 §5–§6): the thresholds file, the judging of each profile's figures
against it, and the cross-check of fio's figures against CloudTower's VM metrics. It also holds what
:mod:`clients.fio` builds on (:class:`PerfDataError`, :class:`ProfileFigures`); ``clients.fio`` re-exports every
public name here, so a step needs only ``from clients import fio``.

* **Thresholds** (:func:`load_thresholds`): ``tests_deploy/data/perf_thresholds.json`` by default, or the file of
  ``--perf-thresholds`` (e.g. the figures of the customer's contract), same format::

      {"_source": "...", "architectures": {"hybrid-tiered" | "allflash-flat": {"_source"?: "...",
          "<profile>": {"iops_min"?, "mbps_min"?, "lat_mean_ms_max"?, "lat_p99_ms_max"?, "per_host"?: bool,
                        "_source": "where these numbers come from"}}}}

  Every entry must say where its numbers come from (``_source``); an unknown architecture, profile or key, a
  number that is not positive, or an entry without a limit is one :class:`PerfDataError` line naming the file.
  An architecture or profile the file leaves out is *not judged* (the report says so), never passed silently.
* **Per host** (``per_host: true``): a minimum (IOPS, MB/s) is multiplied by the number of hosts that carry a test
  VM — ``min(hosts, test VMs)``, since each test VM sits on its own host — so one file holds from 3 to 16 hosts and
  a run capped to fewer VMs than hosts is not asked for load it did not generate. Latency ceilings never scale.
* **Judging** (:func:`judge`): one :class:`Judgement` per limit; its text names the profile, the figure, the value
  and the threshold (and the scaling), in Chinese and English, so a failed step reads e.g. ``4k 随机读 — IOPS
  12,345 低于阈值 ≥ 15,000（5,000 × 3 台主机） / 4k random read — IOPS 12,345 is below the threshold ≥ 15,000
  (5,000 × 3 hosts)``.
* **Cross-check** (:func:`cross_check_metrics` = :func:`metric_window_average` + :func:`cross_check_profile`):
  CloudTower's VM metrics averaged over the run's window against fio's totals; a difference over 25 % of fio's
  figure is flagged (reported, not failed: fio is the primary figure). Only :data:`VERIFIED_METRICS` are confirmed
  names (facts §4); the others are guessed from the naming pattern, so a name without points is "no data", never a
  failure.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

DATA_DIR = Path(__file__).resolve().parents[1] / "tests_deploy" / "data"
MB = 1_000_000                          # MB/s is decimal
THRESHOLDS_FILE = DATA_DIR / "perf_thresholds.json"
ARCHITECTURES = ("hybrid-tiered", "allflash-flat")
# limit key -> (ProfileFigures attribute, comparison, label)
LIMITS = {
    "iops_min": ("iops", ">=", "IOPS"),
    "mbps_min": ("mbps", ">=", "吞吐 / throughput (MB/s)"),
    "lat_mean_ms_max": ("lat_mean_ms", "<=", "平均时延 / mean latency (ms)"),
    "lat_p99_ms_max": ("lat_p99_ms", "<=", "p99 时延 / p99 latency (ms)"),
}
TOLERANCE = 0.25                        # cross-check: |CloudTower − fio| / fio
METRICS = {                             # fio figure -> CloudTower VM metric (facts §4)
    "read_iops": "elf_vm_disk_overall_read_iops",
    "write_iops": "elf_vm_disk_overall_write_iops",
    "read_bps": "elf_vm_disk_overall_read_speed_bps",
    "write_bps": "elf_vm_disk_overall_write_speed_bps",
    "lat_ns": "elf_vm_disk_overall_avg_read_write_latency_ns",
}
VERIFIED_METRICS = ("elf_vm_disk_overall_write_speed_bps", "elf_vm_disk_overall_avg_read_write_latency_ns")
_FIX = ("修正该文件或去掉 --perf-thresholds 使用默认值 / fix that file, or drop --perf-thresholds for the defaults "
        "(format: tests_deploy/data/perf_thresholds.json)")


class PerfDataError(ValueError):
    """A profiles or thresholds file, fio's output or a bandwidth log that cannot be used; the message is one line
    naming the file (or VM) and the fix."""


def read_json_file(path: Path, what_zh: str, what_en: str, fix: str) -> Any:
    """``path`` as JSON, or :class:`PerfDataError` naming the file, the place of the error and ``fix``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        gap = " " if what_zh[:1].isascii() else ""
        raise PerfDataError(f"无法读取{gap}{what_zh} {path} / cannot read the {what_en} {path}: "
                            f"{getattr(exc, 'strerror', None) or exc}; {fix}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PerfDataError(f"{what_zh} {path} 不是有效的 JSON（第 {exc.lineno} 行第 {exc.colno} 列）/ the {what_en} "
                            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                            f"{fix}") from exc


@dataclass(frozen=True)
class ProfileFigures:
    """One profile over every test VM (see the module docstring for how each figure combines)."""

    name: str
    vms: int
    iops: float
    read_iops: float
    write_iops: float
    mbps: float
    read_mbps: float
    write_mbps: float
    lat_mean_ms: float | None
    lat_p99_ms: float | None
    lat_p999_ms: float | None
    worst_vm: str = ""                  # the VM whose p99 is reported
    errors: tuple[str, ...] = ()        # "<vm>: error <n>" for every run fio ended with an error
    window_ms: tuple[int, int] | None = None    # earliest start, latest end (epoch ms)

    def figure(self, key: str) -> float | None:
        return getattr(self, key)


def architecture(all_flash: bool) -> str:
    """The thresholds' architecture key: every data disk SSD/NVMe → ``allflash-flat``, else ``hybrid-tiered``."""
    return ARCHITECTURES[1] if all_flash else ARCHITECTURES[0]


@dataclass(frozen=True)
class Threshold:
    profile: str
    limits: dict[str, float]            # LIMITS key -> the number in the file
    per_host: bool
    source: str


@dataclass(frozen=True)
class Thresholds:
    path: Path
    source: str                         # the file's top-level _source
    architectures: dict[str, dict[str, Threshold]]

    @property
    def is_default(self) -> bool:
        return Path(self.path).resolve() == THRESHOLDS_FILE

    def get(self, arch: str, profile: str) -> Threshold | None:
        return self.architectures.get(arch, {}).get(profile)


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def load_thresholds(path: Path | str = THRESHOLDS_FILE, *, profiles: Iterable[str] | None = None) -> Thresholds:
    """The thresholds of ``path``; ``profiles`` (names) makes an unknown profile name an error (a typo would
    otherwise leave a profile unjudged)."""
    path = Path(path)
    data = read_json_file(path, "性能阈值文件", "performance thresholds file", _FIX)
    known = set(profiles) if profiles is not None else None

    def bad(where: str, zh: str, en: str) -> PerfDataError:
        return PerfDataError(f"性能阈值文件 {path} {where}：{zh} / performance thresholds file {path} {where}: {en}; "
                             f"{_FIX}")

    if not isinstance(data, dict) or not isinstance(data.get("architectures"), dict) or not data["architectures"]:
        raise bad("", "缺少非空的 architectures 对象", "needs a non-empty object \"architectures\"")
    if not _text(data.get("_source")):
        raise bad("", "缺少 _source（说明数值来源）", "lacks \"_source\" (where the numbers come from)")
    out: dict[str, dict[str, Threshold]] = {}
    for arch, entries in data["architectures"].items():
        if arch not in ARCHITECTURES:
            raise bad(f"architectures.{arch}", f"未知架构（应为 {' | '.join(ARCHITECTURES)}）",
                      f"unknown architecture (expected {' | '.join(ARCHITECTURES)})")
        if not isinstance(entries, dict):
            raise bad(f"architectures.{arch}", "应为对象", "must be an object")
        out[arch] = {}
        for name, e in entries.items():
            if str(name).startswith("_"):
                continue
            where = f"architectures.{arch}.{name}"
            if known is not None and name not in known:
                raise bad(where, f"未知的 fio 配置（已知：{', '.join(sorted(known))}）",
                          f"unknown fio profile (known: {', '.join(sorted(known))})")
            out[arch][name] = _entry(name, e, lambda zh, en, where=where: bad(where, zh, en))
    return Thresholds(path, data["_source"].strip(), out)


def _entry(name: str, e: Any, bad) -> Threshold:
    if not isinstance(e, dict):
        raise bad("应为对象", "must be an object")
    extra = sorted(k for k in e if k not in LIMITS and k not in ("per_host", "_source"))
    if extra:
        raise bad(f"未知字段 {extra}（可用：{', '.join(LIMITS)}, per_host, _source）",
                  f"unknown keys {extra} (allowed: {', '.join(LIMITS)}, per_host, _source)")
    limits = {k: e[k] for k in LIMITS if k in e}
    if not limits:
        raise bad("至少需要一个阈值", f"needs at least one of {', '.join(LIMITS)}")
    wrong = [k for k, v in limits.items() if not _positive(v)]
    if wrong:
        raise bad(f"{', '.join(wrong)} 应为正数", f"{', '.join(wrong)} must be a positive number")
    if not isinstance(e.get("per_host", False), bool):
        raise bad("per_host 应为 true 或 false", "per_host must be true or false")
    if not _text(e.get("_source")):
        raise bad("缺少 _source（说明数值来源）", "lacks \"_source\" (where the numbers come from)")
    return Threshold(name, {k: float(v) for k, v in limits.items()}, bool(e.get("per_host")), e["_source"].strip())


# ---------------------------------------------------------------- judging

@dataclass(frozen=True)
class Judgement:
    profile: str
    figure: str                         # ProfileFigures attribute: iops | mbps | lat_mean_ms | lat_p99_ms
    value: float | None                 # None: not measured (fails)
    threshold: float                    # effective: the file's number × scale
    op: str                             # ">=" | "<="
    passed: bool
    base: float                         # the file's number
    scale: int                          # hosts carrying a test VM when per_host, else 1
    source: str                         # the entry's _source
    text_zh: str
    text_en: str

    @property
    def message(self) -> str:
        return f"{self.text_zh} / {self.text_en}"


def format_value(figure: str, value: float | None) -> str:
    """A figure for people: IOPS ``12,345``, MB/s ``1,234.5``, ms ``0.523``; ``-`` for None."""
    if value is None:
        return "-"
    if figure in ("iops", "read_iops", "write_iops"):
        return f"{value:,.0f}"
    if figure.endswith("mbps"):
        return f"{value:,.1f}"
    return f"{value:,.3g}" if value < 100 else f"{value:,.0f}"


def effective(threshold: Threshold, key: str, hosts: int, vms: int) -> tuple[float, int]:
    """(the limit ``key`` as applied, its scale) for a cluster of ``hosts`` with ``vms`` test VMs."""
    scale = max(min(hosts, vms), 1) if threshold.per_host and LIMITS[key][1] == ">=" else 1
    return threshold.limits[key] * scale, scale


def _judge_one(f: ProfileFigures, th: Threshold, key: str, hosts: int, label: str) -> Judgement:
    figure, op, name = LIMITS[key]
    (name_zh, name_en), (label_zh, label_en) = _halves(name), _halves(label)
    limit, scale = effective(th, key, hosts, f.vms)
    value = f.figure(figure)
    passed = value is not None and (value >= limit if op == ">=" else value <= limit)
    shown = f"{'≥' if op == '>=' else '≤'} {format_value(figure, limit)}"
    per_zh = per_en = ""
    if scale > 1:
        per_zh = f"（{format_value(figure, th.limits[key])} × {scale} 台主机）"
        per_en = f" ({format_value(figure, th.limits[key])} × {scale} hosts)"
    head_zh, head_en = f"{label_zh} — {name_zh}", f"{label_en} — {name_en}"
    shown_v = format_value(figure, value)
    if value is None:
        zh, en = f"无测量值（阈值 {shown}{per_zh}）", f"not measured (threshold {shown}{per_en})"
    elif passed:
        zh, en = f"{shown_v} 达到阈值 {shown}{per_zh}", f"{shown_v} meets the threshold {shown}{per_en}"
    elif op == ">=":
        zh, en = f"{shown_v} 低于阈值 {shown}{per_zh}", f"{shown_v} is below the threshold {shown}{per_en}"
    else:
        zh, en = f"{shown_v} 高于阈值 {shown}{per_zh}", f"{shown_v} is above the threshold {shown}{per_en}"
    zh, en = f"{head_zh} {zh}", f"{head_en} {en}"
    return Judgement(f.name, figure, value, limit, op, passed, th.limits[key], scale, th.source, zh, en)


def _halves(text: str) -> tuple[str, str]:
    """``中文 / English`` → (中文, English); text without the separator serves both."""
    zh, sep, en = text.partition(" / ")
    return (zh, en) if sep else (text, text)


def judge(figures: ProfileFigures | Sequence[ProfileFigures], thresholds: Thresholds, arch: str, hosts: int, *,
          labels: dict[str, str] | None = None) -> list[Judgement]:
    """Each profile's figures against its thresholds for ``arch`` (profiles without one: no judgement — see
    :func:`not_judged`). ``labels``: profile name → ``中文 / English`` to show (``FioProfile.label``; default the
    name). A profile run by no VM fails every limit as not measured."""
    if hosts < 1:
        raise ValueError(f"hosts must be >= 1, got {hosts}")
    items = [figures] if isinstance(figures, ProfileFigures) else list(figures)
    out = []
    for f in items:
        th = thresholds.get(arch, f.name)
        if th is None:
            continue
        label = (labels or {}).get(f.name, f.name)
        out += [_judge_one(f, th, key, hosts, label) for key in LIMITS if key in th.limits]
    return out


def not_judged(names: Iterable[str], thresholds: Thresholds, arch: str) -> list[str]:
    """The profiles ``thresholds`` gives no limit for under ``arch`` (the report lists them as not judged)."""
    return [n for n in names if thresholds.get(arch, n) is None]


def failures(judgements: Iterable[Judgement]) -> list[str]:
    """``中文 / English`` of each failed judgement: what the failing step says."""
    return [j.message for j in judgements if not j.passed]


def figures_dict(figures: ProfileFigures) -> dict:
    """The figures as JSON-ready data (the report's and the state's record)."""
    out = asdict(figures)
    out["errors"] = list(figures.errors)
    out["window_ms"] = list(figures.window_ms) if figures.window_ms else None
    return out


def summary_line(figures: ProfileFigures, label: str | None = None) -> str:
    """One line for the step's notes: VMs, IOPS, MB/s, mean / p99 / p99.9 latency."""
    f = figures
    lat = (f"{format_value('ms', f.lat_mean_ms)} / {format_value('ms', f.lat_p99_ms)} / "
           f"{format_value('ms', f.lat_p999_ms)} ms")
    return (f"{label or f.name}：{f.vms} 台虚拟机 / VMs, IOPS {format_value('iops', f.iops)}, "
            f"{format_value('mbps', f.mbps)} MB/s, 时延 平均 / p99 / p99.9 latency mean / p99 / p99.9 {lat}")


# ---------------------------------------------------------------- CloudTower metrics cross-check

WHAT = {METRICS["read_iops"]: "读 IOPS / read IOPS", METRICS["write_iops"]: "写 IOPS / write IOPS",
        METRICS["read_bps"]: "读吞吐 / read throughput (B/s)", METRICS["write_bps"]: "写吞吐 / write throughput (B/s)",
        METRICS["lat_ns"]: "平均时延 / mean latency (ns)"}


@dataclass(frozen=True)
class CrossCheck:
    metric: str
    fio: float
    cloudtower: float | None            # None: CloudTower gave no points for it (not compared)
    difference: float | None            # |cloudtower − fio| / fio
    flagged: bool                       # more than the tolerance apart

    def describe(self) -> str:
        what = WHAT.get(self.metric, self.metric)
        if self.cloudtower is None:
            return f"{what}: CloudTower 无数据 / no CloudTower data ({self.metric})"
        diff = "-" if self.difference is None else f"{self.difference:.0%}"
        mark = "相差超过容差 / differ by more than the tolerance" if self.flagged else "一致 / agree"
        return f"{what}: fio {self.fio:,.6g} · CloudTower {self.cloudtower:,.6g} ({diff}) {mark}"

    def to_json(self) -> dict:
        """``{metric, what, fio, ct, difference, flag, verified}`` (``verified``: a name the sources confirm)."""
        return {"metric": self.metric, "what": WHAT.get(self.metric, self.metric), "fio": self.fio,
                "ct": self.cloudtower, "difference": self.difference, "flag": self.flagged,
                "verified": self.metric in VERIFIED_METRICS}


def _streams(answer: Any) -> Iterable[tuple[dict, list[dict]]]:
    items = answer if isinstance(answer, list) else [answer]
    for item in items:
        metric = item.get("data", item) if isinstance(item, dict) else None
        if not isinstance(metric, dict):
            continue
        for stream in metric.get("sample_streams") or []:
            yield stream.get("labels") or {}, list(stream.get("points") or [])
        for sample in metric.get("samples") or []:
            yield sample.get("labels") or {}, [sample.get("point") or {}]


def metric_window_average(answer: Any, vm_ids: Sequence[str], start_ms: float, end_ms: float
                          ) -> dict[str, float | None]:
    """``get-vm-metrics``' answer → {metric name: value over the window} for the VMs ``vm_ids``: each VM's mean of
    the points in [start_ms, end_ms], summed over the VMs (latency names ``*_latency_ns``: averaged). A name gets
    None unless every VM has a point in the window. Point stamps below 10^11 are taken as seconds."""
    per: dict[str, dict[str, list[float]]] = {}
    for labels, points in _streams(answer):
        name, vm = str(labels.get("metric_name") or labels.get("__name__") or ""), str(labels.get("_vm") or labels.get("vm") or "")
        bucket = per.setdefault(name, {})
        for p in points:
            t, v = p.get("t"), p.get("v")
            if t is None or v is None:
                continue
            t = float(t) * (1000 if float(t) < 1e11 else 1)
            if start_ms <= t <= end_ms:
                bucket.setdefault(vm, []).append(float(v))
    out: dict[str, float | None] = {}
    for name, by_vm in per.items():
        means = [sum(by_vm[v]) / len(by_vm[v]) for v in vm_ids if by_vm.get(v)]
        if not vm_ids or len(means) < len(vm_ids):
            out[name] = None
        else:
            out[name] = sum(means) / len(means) if name.endswith("_latency_ns") else sum(means)
    return out


def cross_check(fio_value: float, ct_value: float | None, tolerance: float = TOLERANCE, *,
                metric: str = "") -> CrossCheck:
    """Compare one figure; the difference is relative to fio's (the primary figure)."""
    if ct_value is None:
        return CrossCheck(metric, fio_value, None, None, False)
    if fio_value == 0:
        return CrossCheck(metric, fio_value, ct_value, 0.0 if ct_value == 0 else None, ct_value != 0)
    diff = abs(ct_value - fio_value) / abs(fio_value)
    return CrossCheck(metric, fio_value, ct_value, diff, diff > tolerance)


def fio_metric_values(figures: ProfileFigures) -> dict[str, float]:
    """A profile's fio figures in CloudTower's names and units (IOPS, bytes/s, ns), totals over the VMs."""
    lat = None if figures.lat_mean_ms is None else figures.lat_mean_ms * 1e6
    values = {"read_iops": figures.read_iops, "write_iops": figures.write_iops,
              "read_bps": figures.read_mbps * MB, "write_bps": figures.write_mbps * MB, "lat_ns": lat}
    return {METRICS[k]: v for k, v in values.items() if v is not None}


def cross_check_profile(figures: ProfileFigures, ct_values: dict[str, float | None],
                        tolerance: float = TOLERANCE) -> list[CrossCheck]:
    """Every CloudTower metric against fio's figure, skipping what the profile does not exercise (fio value 0,
    e.g. writes during a read profile). A name CloudTower did not answer is listed with ``cloudtower`` None."""
    return [cross_check(v, ct_values.get(name), tolerance, metric=name)
            for name, v in fio_metric_values(figures).items() if v]


def cross_check_metrics(figures: ProfileFigures, answer: Any, vm_ids: Sequence[str], start_ms: float, end_ms: float,
                        tolerance: float = TOLERANCE) -> list[CrossCheck]:
    """``get-vm-metrics``' answer for the run's VMs and window against the profile's fio figures, in one call:
    :func:`metric_window_average` then :func:`cross_check_profile`."""
    return cross_check_profile(figures, metric_window_average(answer, vm_ids, start_ms, end_ms), tolerance)
