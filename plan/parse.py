"""Workbook -> typed Plan. Conversion problems become findings, never exceptions."""
from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from pathlib import Path

from . import layout as L
from .model import Component, Finding, Host, Network, Plan
from .xlsx import FormulaError, Workbook, XlsxError, XlsxFormatError, evaluate

_NIC_SPLIT = re.compile(r"[,;，；、\s]+")
_BLANK = ("", None)


class _Reader:
    def __init__(self, book: Workbook):
        self.book = book
        self.findings: list[Finding] = []
        self.invalid: set[str] = set()
        self.raw: dict[str, object] = {}

    def error(self, code, ref, zh, en, fix_zh, fix_en, severity="error"):
        self.findings.append(Finding(severity, code, zh, en, ref, fix_zh, fix_en))
        self.invalid.add(ref)

    def value(self, sheet: str, cell: str) -> object:
        ref = L.ref(sheet, cell)
        try:
            v = evaluate(self.book, sheet, cell)
        except FormulaError as exc:
            raw = self.book.cell(sheet, cell)
            self.error("PLAN-FORMULA-UNRESOLVED", ref,
                       f"公式 ={raw.formula} 没有缓存值且无法计算（{exc}）",
                       f"formula ={raw.formula} has no cached value and cannot be evaluated ({exc})",
                       "在 Excel 中打开并保存工作簿，或直接填写该值", "open and save the workbook in Excel, or type the value")
            return None
        self.raw[ref] = v
        return v

    def text(self, sheet: str, cell: str, default: str | None = None, *, technical: bool = False) -> str | None:
        v = self.value(sheet, cell)
        if v in _BLANK:
            return default
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        s = str(v)
        if technical:
            s = unicodedata.normalize("NFKC", s)
        s = s.strip().strip("\u3000\u00a0").strip()
        return s if s else default

    def secret(self, sheet: str, cell: str, default: str) -> str:
        """Passwords are taken verbatim (no stripping: a space may be part of one)."""
        v = self.value(sheet, cell)
        if v in _BLANK:
            return default
        s = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
        if s != s.strip():
            self.findings.append(Finding(
                "warning", "PLAN-PASSWORD-WHITESPACE", "密码首尾含空格，将原样使用",
                "password has leading or trailing spaces; it is used as typed", L.ref(sheet, cell),
                "确认空格是密码的一部分，否则删除", "confirm the spaces belong to the password, or remove them"))
        return s

    def ip(self, sheet: str, cell: str) -> ipaddress.IPv4Address | None:
        s = self.text(sheet, cell, technical=True)
        if s is None:
            return None
        try:
            return ipaddress.IPv4Address(s)
        except ValueError:
            self.error("PLAN-IP-SYNTAX", L.ref(sheet, cell), f"「{s}」不是有效的 IPv4 地址",
                       f"{s!r} is not a valid IPv4 address", "填写形如 10.0.20.11 的地址",
                       "enter an address such as 10.0.20.11")
            return None

    def cidr(self, sheet: str, cell: str) -> ipaddress.IPv4Network | None:
        s = self.text(sheet, cell, technical=True)
        if s is None:
            return None
        try:
            if "/" not in s:
                raise ValueError("no prefix length")
            return ipaddress.IPv4Network(s, strict=False)
        except ValueError:
            self.error("PLAN-CIDR-SYNTAX", L.ref(sheet, cell), f"「{s}」不是有效的 CIDR 子网",
                       f"{s!r} is not a valid CIDR subnet", "填写形如 10.0.20.0/24 的子网（含掩码长度）",
                       "enter a subnet such as 10.0.20.0/24, with its prefix length")
            return None

    def integer(self, sheet: str, cell: str) -> int | None:
        s = self.text(sheet, cell, technical=True)
        if s is None:
            return None
        try:
            f = float(s)
            if not f.is_integer():
                raise ValueError
            return int(f)
        except ValueError:
            self.error("PLAN-INT-SYNTAX", L.ref(sheet, cell), f"「{s}」不是整数", f"{s!r} is not a whole number",
                       "填写整数", "enter a whole number")
            return None

    def rack_u(self, sheet: str, cell: str) -> int | None:
        """A rack U position: a positive whole number (``3``, or ``3.0`` as Excel stores it); anything else (``3.5``,
        ``U3``, ``0``, ``-1``) is a finding naming the cell, and the host has no U."""
        s = self.text(sheet, cell, technical=True)
        if s is None:
            return None
        try:
            f = float(s)
            if f.is_integer() and f >= 1:
                return int(f)
        except (ValueError, OverflowError):
            pass
        self.error("PLAN-RACK-U-INVALID", L.ref(sheet, cell), f"机架 U 位「{s}」不是正整数",
                   f"rack U position {s!r} is not a positive whole number",
                   "只填写服务器所在最低 U 位的数字（从 1 开始），例如 5", "enter only the number of the lowest U the "
                   "server occupies (from 1), e.g. 5")
        return None

    def nics(self, sheet: str, cell: str) -> tuple[str, ...]:
        s = self.text(sheet, cell, technical=True)
        if not s:
            return ()
        return tuple(n for n in _NIC_SPLIT.split(s) if n)


def _network(r: _Reader, role: str, row: int, shared_row: int | None = None) -> Network:
    S, C = L.SHEET_NET, L.NET_COLS
    srow = shared_row or row
    return Network(
        role=role, row=row,
        vds=r.text(S, f"{C['vds']}{srow}"),
        name=r.text(S, f"{C['name']}{row}"),
        vlan_id=r.integer(S, f"{C['vlan_id']}{row}"),
        vlan_type=r.text(S, f"{C['vlan_type']}{row}"),
        subnet=r.cidr(S, f"{C['subnet']}{row}"),
        gateway=r.ip(S, f"{C['gateway']}{row}"),
        nics=r.nics(S, f"{C['nics']}{srow}"),
        bond_mode=r.text(S, f"{C['bond_mode']}{srow}", technical=True),
    )


def _host(r: _Reader, row: int) -> Host:
    S, C, D = L.SHEET_HOSTS, L.HOST_COLS, L.DEFAULTS
    return Host(
        row=row,
        serial=r.text(S, f"{C['serial']}{row}"),
        bmc_ip=r.ip(S, f"{C['bmc_ip']}{row}"),
        bmc_user=r.text(S, f"{C['bmc_user']}{row}", D["bmc_user"]),
        bmc_password=r.secret(S, f"{C['bmc_password']}{row}", D["bmc_password"]),
        hostname=r.text(S, f"{C['hostname']}{row}", technical=True),
        mgmt_ip=r.ip(S, f"{C['mgmt_ip']}{row}"),
        ssh_user=r.text(S, f"{C['ssh_user']}{row}", D["ssh_user"]),
        ssh_password=r.secret(S, f"{C['ssh_password']}{row}", D["ssh_password"]),
        admin_user=r.text(S, f"{C['admin_user']}{row}", D["admin_user"]),
        admin_password=r.secret(S, f"{C['admin_password']}{row}", D["admin_password"]),
        storage_ip=r.ip(S, f"{C['storage_ip']}{row}"),
        description=r.text(S, f"{C['description']}{row}"),
        rack=r.text(S, f"{C['rack']}{row}"),
        rack_u=r.rack_u(S, f"{C['rack_u']}{row}"),
    )


def _component(r: _Reader, key: str) -> Component:
    S, C, row = L.SHEET_MGMT, L.COMPONENT_COLS, L.COMPONENT_ROWS[key]

    def t(name, **kw):
        return r.text(S, f"{C[name]}{row}", **kw)

    def pw(name):
        v = r.secret(S, f"{C[name]}{row}", "")
        return v or None

    name = t("vm_name", technical=True)
    return Component(
        key=key, vm_name=(name or L.COMPONENT_DEFAULT_NAMES[key]).lower(),
        version=t("version", technical=True), ip=r.ip(S, f"{C['ip']}{row}"),
        web_user=t("web_user"), web_password=pw("web_password"),
        ssh_user=t("ssh_user"), ssh_password=pw("ssh_password"),
        sys_user=t("sys_user"), sys_password=pw("sys_password"),
        serial=t("serial"),
    )


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class PlanReadError(Exception):
    """The file cannot be read as a planning workbook at all."""


def load(path: str | Path) -> tuple[Plan, list[Finding]]:
    """Read the workbook. Returns the plan and the findings met while converting values."""
    path = Path(path)
    try:
        book = Workbook(path)
    except XlsxFormatError as exc:
        raise PlanReadError(str(exc)) from exc   # already one clear line: what it is and what to do
    except XlsxError as exc:
        raise PlanReadError(f"无法读取规划表 {path}：{exc.zh} / cannot read the planning workbook: {exc.en}") from exc
    with book:
        missing = [s for s in (L.SHEET_DOC, L.SHEET_NET, L.SHEET_HOSTS, L.SHEET_MGMT) if not book.has_sheet(s)]
        if missing:
            raise PlanReadError(
                f"规划表缺少工作表 {', '.join(missing)}：请使用厂商规划设计表模板 / "
                f"the workbook lacks sheet(s) {', '.join(missing)}: use the vendor planning template")
        return _build(path, _Reader(book))


def _build(path: Path, r: _Reader) -> tuple[Plan, list[Finding]]:
    D = L.DEFAULTS
    names = {
        L.ref(L.SHEET_NET, L.NET_CLUSTER_NAME): r.text(L.SHEET_NET, L.NET_CLUSTER_NAME),
        L.ref(L.SHEET_HOSTS, L.HOSTS_CLUSTER_NAME): r.text(L.SHEET_HOSTS, L.HOSTS_CLUSTER_NAME),
        L.ref(L.SHEET_MGMT, L.MGMT_CLUSTER_NAME): r.text(L.SHEET_MGMT, L.MGMT_CLUSTER_NAME),
    }
    business_rows = [row for row in L.NET_ROWS_BUSINESS
                     if r.text(L.SHEET_NET, f"{L.NET_COLS['name']}{row}") is not None]
    business = tuple(_network(r, "business", row, L.NET_ROWS_BUSINESS.start) for row in business_rows)
    host_rows = [row for row in L.HOST_ROWS
                 if r.text(L.SHEET_HOSTS, f"{L.HOST_COLS['mgmt_ip']}{row}") is not None]
    H = L.SHEET_HOSTS
    storage_arch_raw = r.text(H, L.CLUSTER["storage_arch"])
    network_arch_raw = r.text(H, L.CLUSTER["network_arch"])
    plan = Plan(
        source=path, sha256=sha256_of(path),
        customer=r.text(L.SHEET_DOC, L.DOC["customer"], D["customer"]),
        project=r.text(L.SHEET_DOC, L.DOC["project"]),
        datacenter=r.text(L.SHEET_DOC, L.DOC["datacenter"], D["datacenter"]),
        cluster_name=names[L.ref(L.SHEET_NET, L.NET_CLUSTER_NAME)],
        cluster_names=names,
        bmc=_network(r, "bmc", L.NET_ROW_BMC),
        mgmt=_network(r, "mgmt", L.NET_ROW_MGMT),
        extra_mgmt=_network(r, "extra_mgmt", L.NET_ROW_EXTRA_MGMT, L.NET_ROW_MGMT),
        storage=_network(r, "storage", L.NET_ROW_STORAGE),
        backup=_network(r, "backup", L.NET_ROW_BACKUP),
        business_vds=r.text(L.SHEET_NET, f"{L.NET_COLS['vds']}8"),
        business_nics=r.nics(L.SHEET_NET, f"{L.NET_COLS['nics']}8"),
        business_bond_mode=r.text(L.SHEET_NET, f"{L.NET_COLS['bond_mode']}8", technical=True),
        business=business,
        hosts=tuple(_host(r, row) for row in host_rows),
        cluster_version=r.text(H, L.CLUSTER["version"]),
        cluster_serial=r.text(H, L.CLUSTER["serial"]),
        vip=r.ip(H, L.CLUSTER["vip"]),
        cluster_admin_user=r.text(H, L.CLUSTER["admin_user"], D["cluster_admin_user"]),
        cluster_admin_password=r.secret(H, L.CLUSTER["admin_password"], D["cluster_admin_password"]),
        feature=r.text(H, L.CLUSTER["feature"], "None", technical=True),
        storage_arch=L.STORAGE_ARCHS.get(storage_arch_raw, storage_arch_raw),
        network_arch=L.NETWORK_ARCHS.get(network_arch_raw, network_arch_raw),
        components={k: _component(r, k) for k in L.COMPONENT_ROWS},
        er_vip=r.ip(L.SHEET_MGMT, L.ER_VIP),
        er_nodes=tuple(ip for ip in (r.ip(L.SHEET_MGMT, c) for c in L.ER_NODES) if ip is not None),
        test_range=(r.ip(L.SHEET_MGMT, L.TEST_RANGE[0]), r.ip(L.SHEET_MGMT, L.TEST_RANGE[1])),
        ntp=tuple(v for v in (r.text(L.SHEET_MGMT, c, technical=True) for c in L.NTP_CELLS) if v),
        dns=tuple(v for v in (r.text(L.SHEET_MGMT, c, technical=True) for c in L.DNS_CELLS) if v),
        invalid=frozenset(r.invalid),
        raw=r.raw,
    )
    return plan, r.findings
