"""What every group of plan checks shares: sheet names, labels, cell helpers (:mod:`plan.validate`)."""
from __future__ import annotations

import re
import unicodedata

from . import layout as L
from .model import Finding, Network, Plan
from .xlsx import col_index

NET, HOSTS, MGMT = L.SHEET_NET, L.SHEET_HOSTS, L.SHEET_MGMT

WEAK_DEFAULT_PASSWORDS = frozenset({"HC!r0cks", "P@ssw0rd!123", "ADMIN", "admin", "root"})
NOT_APPLICABLE = ("N/A", "n/a", "NA", "-")

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_CELL = re.compile(r"^([A-Z]{1,3})(\d+)$")
_SHEET_ORDER = {name: i for i, name in enumerate(L.ALL_SHEETS)}

_ARCH_LABEL = {v: k for k, v in L.NETWORK_ARCHS.items()}
_STORAGE_LABEL = {v: k for k, v in L.STORAGE_ARCHS.items()}
ROLE = {
    "bmc": ("带外管理网络", "BMC network"),
    "mgmt": ("管理网络", "management network"),
    "extra_mgmt": ("管理组件网络", "management-component network"),
    "storage": ("存储网络", "storage network"),
    "backup": ("备份网络", "backup network"),
    "business": ("业务网络", "business network"),
}
COMPONENT = {"cloudtower": "CloudTower", "obs": "Observability (OBS)", "backup": "Backup"}


def cell_ref(sheet: str, cell: str) -> str:
    return L.ref(sheet, cell)


def cell_key(ref: str) -> tuple[int, int, int]:
    sheet, _, cell = ref.partition("!")
    m = _CELL.match(cell)
    row, col = (int(m.group(2)), col_index(m.group(1))) if m else (1 << 30, 0)
    return _SHEET_ORDER.get(sheet, len(_SHEET_ORDER)), row, col


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then by sheet order (as in the workbook), then row and column. Stable."""
    return sorted(findings, key=lambda f: (0 if f.is_error else 1, *cell_key(f.ref)))


def raw_text(v: object) -> str | None:
    """A raw cell value as the parser's ``text(technical=True)`` sees it."""
    if v in ("", None):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = unicodedata.normalize("NFKC", str(v)).strip().strip("\u3000\u00a0").strip()
    return s or None


def locate(plan: Plan, sheet: str, cells: tuple[str, ...], values: tuple) -> list[tuple[str, object]]:
    """Map values the parser kept (non-empty cells, in order) back to their cells."""
    refs = [cell_ref(sheet, c) for c in cells]
    if any(r in plan.raw for r in refs):
        present = [r for r in refs if r not in plan.invalid and raw_text(plan.raw.get(r)) is not None]
        if len(present) == len(values):
            return list(zip(present, values))
    return list(zip(refs, values))


def is_hostname(name: str) -> bool:
    """RFC 1123 host name (labels 1..63 of [A-Za-z0-9-], no leading/trailing '-', total <= 253)."""
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def password_classes(pw: str) -> int:
    return sum((any(c.islower() and c.isascii() for c in pw), any(c.isupper() and c.isascii() for c in pw),
                any(c.isdigit() for c in pw), any(not (c.isascii() and c.isalnum()) for c in pw)))


class CheckerBase:
    """The plan and the findings so far; :meth:`add` reports a finding unless the parser already did."""

    plan: Plan
    out: list[Finding]
    shared: bool
    business_required: bool

    def add(self, code: str, ref: str, zh: str, en: str, fix_zh: str, fix_en: str, severity: str = "error") -> None:
        if ref in self.plan.invalid:       # already reported by the parser
            return
        self.out.append(Finding(severity, code, zh, en, ref, fix_zh, fix_en))

    def _networks(self) -> list[Network]:
        """The planned IP networks with subnets (the BMC network is checked apart)."""
        p = self.plan
        return [p.mgmt, p.extra_mgmt, p.storage, p.backup, *p.business]
