"""Planned versions (主机规划!C19, 集群管理信息!D3–D5) against packages and what was deployed.

The plan states the SMTX OS version in 主机规划!C19 (as ``版本:6.2.0P4`` in the vendor template) and the
CloudTower / Observability / backup versions in 集群管理信息!D3 / D4 / D5. Versions are compared on their
numbers (``6.2`` equals ``6.2.0``) and, when both sides name one, the patch (``P4``). A difference is a warning
that names the cell, never a failure: the delivery engineer decides.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import layout as L
from .model import Plan

# 6.2.0P4, 6.2.0-P4, v4.7.1, v1.4.2-release.20250926 -> numbers and an optional patch
_VERSION = re.compile(r"(?<![\d.])v?(\d+(?:\.\d+){1,3})(?:[-_ ]?[Pp](\d+))?(?![\d])")

# package / ISO file names of each component (case-insensitive, at the start of the name)
PACKAGE_PATTERNS = {
    "smtx_os": re.compile(r"^smtx[_-]?os[_-]", re.IGNORECASE),
    "cloudtower": re.compile(r"^cloudtower[_-]", re.IGNORECASE),
    "obs": re.compile(r"^(observability|obs)[_-]", re.IGNORECASE),
    "backup": re.compile(r"^(iomesh[_-]backup|smtx[_-]backup|backup)[_-]", re.IGNORECASE),
}
LABELS = {"smtx_os": "SMTX OS", "cloudtower": "CloudTower", "obs": "Observability (OBS)", "backup": "备份 / Backup"}
PACKAGE_SUFFIXES = (".iso", ".tar.gz", ".tgz", ".tar", ".zip", ".qcow2", ".img")


@dataclass(frozen=True)
class Planned:
    key: str             # smtx_os | cloudtower | obs | backup
    ref: str             # sheet!cell
    text: str            # as the plan says it
    version: str | None  # the version found in it (None: the cell holds no version)

    @property
    def label(self) -> str:
        return LABELS[self.key]


def parse(text: object) -> str | None:
    """The first version in ``text`` as ``6.2.0`` or ``6.2.0P4``; None when there is none."""
    if text in (None, ""):
        return None
    m = _VERSION.search(str(text))
    if not m:
        return None
    return m.group(1) + (f"P{int(m.group(2))}" if m.group(2) else "")


def _key(version: str) -> tuple[tuple[int, ...], int | None]:
    m = _VERSION.search(version)
    if not m:
        return (), None
    numbers = [int(n) for n in m.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers), (int(m.group(2)) if m.group(2) else None)


def same(planned: str, actual: str) -> bool:
    """Numbers equal (trailing zeros aside); patches equal when both name one."""
    (pn, pp), (an, ap) = _key(planned), _key(actual)
    return pn == an and (pp is None or ap is None or pp == ap)


def planned(plan: Plan) -> list[Planned]:
    """The versions the plan states, with their cells (components whose version cell is blank are left out)."""
    out = []
    if plan.cluster_version:
        out.append(Planned("smtx_os", L.ref(L.SHEET_HOSTS, L.CLUSTER["version"]), plan.cluster_version,
                           parse(plan.cluster_version)))
    for key in ("cloudtower", "obs", "backup"):
        comp = plan.components.get(key)
        if comp is not None and comp.version:
            out.append(Planned(key, comp.ref("version"), comp.version, parse(comp.version)))
    return out


def package_versions(names: list[str]) -> dict[str, list[tuple[str, str | None]]]:
    """``{component: [(file name, version), ...]}`` for the package and ISO file names given."""
    out: dict[str, list[tuple[str, str | None]]] = {}
    for name in sorted(names):
        if not name.lower().endswith(PACKAGE_SUFFIXES):
            continue
        for key, pattern in PACKAGE_PATTERNS.items():
            if pattern.match(name):
                out.setdefault(key, []).append((name, parse(pattern.sub("", name))))
                break
    return out


def host_version(scan: dict) -> str | None:
    """SMTX OS version of a host as the deployment API's scan reports it (``version`` + ``patch_version``)."""
    version = parse(scan.get("version"))
    patch = str(scan.get("patch_version") or "").strip()
    if version and patch and "P" not in version and re.fullmatch(r"[Pp]?\d+", patch):
        version += "P" + patch.lstrip("Pp")
    return version


def mismatch(p: Planned, actual: str, source_zh: str, source_en: str) -> str:
    """The warning for a planned version that differs from ``actual`` (one line, the cell named)."""
    return (f"{p.label} 规划版本 {p.text}（{p.ref}）与{source_zh}的版本 {actual} 不一致，请核对规划或安装包 / "
            f"{p.label}: the planned version {p.text} ({p.ref}) differs from {actual} of {source_en}; "
            f"check the plan or the package")


def unreadable(p: Planned) -> str:
    return (f"{p.label} 规划版本 {p.text!r}（{p.ref}）中没有可识别的版本号 / {p.label}: no version number in "
            f"{p.text!r} ({p.ref})")
