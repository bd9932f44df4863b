"""Surgical write-back of values (serial numbers) into the customer's .xlsx workbook.

The workbook belongs to the customer, so nothing but the target cells may change. openpyxl is not
used for writing (it drops cached formula values and drawings). Instead the target sheet part is
edited as text: only the target ``<c>`` element is replaced (or inserted), and every other zip entry
is copied with its original ZipInfo. The result is written to a temp file beside the workbook,
fsynced, the original is backed up, and the temp file atomically replaces the original.
"""
from __future__ import annotations

import copy
import itertools
import os
import posixpath
import re
import shutil
import stat
import xml.etree.ElementTree as ET
import zipfile
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

from openpyxl.utils.cell import column_index_from_string, get_column_letter

from clients.files import replace_atomically, temp_beside

from . import layout as L

__all__ = ["PASSWORD_CELLS", "SERIAL_CELLS", "WriteBackError", "blanked_copy", "write_cells", "write_serials"]

SERIAL_CELLS: dict[str, tuple[str, str]] = {
    "cluster": (L.SHEET_HOSTS, L.CLUSTER["serial"]),
    **{k: (L.SHEET_MGMT, f"{L.COMPONENT_COLS['serial']}{row}") for k, row in L.COMPONENT_ROWS.items()},
}

# Every cell of the vendor layout that holds a password (whether the plan fills it or not): host BMC / SSH / admin
# (主机规划 G/K/M), the cluster's admin (主机规划!M19), and each component's web / SSH / system (集群管理信息 G/I/K).
PASSWORD_CELLS: tuple[tuple[str, str], ...] = (
    (L.SHEET_HOSTS, L.CLUSTER["admin_password"]),
    *((L.SHEET_HOSTS, f"{L.HOST_COLS[f]}{row}") for row in L.HOST_ROWS
      for f in ("bmc_password", "ssh_password", "admin_password")),
    *((L.SHEET_MGMT, f"{L.COMPONENT_COLS[f]}{row}") for row in L.COMPONENT_ROWS.values()
      for f in ("web_password", "ssh_password", "sys_password")),
)

_MAIN_NS = {
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",  # Strict OOXML
}
# Attributes of a start tag (values may contain '>'), then '/>' or '>'.
_ATTRS = r"""(?P<attrs>(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(?P<empty>/?)>"""
_ATTR = re.compile(r"""([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?([1-9][0-9]{0,6})")
_BAD_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class WriteBackError(Exception):
    """Write-back refused or failed; the workbook was left untouched. Message: Chinese / English."""

    def __init__(self, zh: str, en: str):
        super().__init__(f"{zh} / {en}")
        self.zh, self.en = zh, en


def write_serials(path: str | os.PathLike, serials: dict[str, str], *, backup: bool = True) -> Path | None:
    """Write serial numbers; ``serials`` keys are SERIAL_CELLS keys (unknown key -> ValueError)."""
    unknown = sorted(set(serials) - SERIAL_CELLS.keys())
    if unknown:
        raise ValueError(f"unknown serial key(s) {unknown}; expected some of {sorted(SERIAL_CELLS)}")
    return write_cells(path, {SERIAL_CELLS[k]: v for k, v in serials.items()}, backup=backup)


def write_cells(path: str | os.PathLike, values: dict[tuple[str, str], str], *,
                backup: bool = True) -> Path | None:
    """Write string ``values`` keyed by (sheet_name, cell_ref) into the workbook at ``path``.

    Returns the backup path, or None when ``backup`` is False or ``values`` is empty (nothing written).
    Raises WriteBackError (file untouched) when the workbook is locked/open in Excel, is not a valid
    xlsx, lacks a sheet, or a target cell holds a formula.
    """
    edits: dict[tuple[str, str], str] = {}
    for (sheet, ref), value in values.items():
        if not isinstance(value, str):
            raise TypeError(f"value for {sheet}!{ref} must be str, not {type(value).__name__}")
        if _BAD_XML_CHARS.search(value):
            raise ValueError(f"value for {sheet}!{ref} contains characters not allowed in XML")
        col, row = _parse_ref(ref)
        edits[(sheet, f"{get_column_letter(col)}{row}")] = value
    if not edits:
        return None

    path = Path(path)
    if path.is_symlink():  # replace the real file, not the link
        path = path.resolve()
    _refuse_if_locked(path)
    try:
        st = path.stat()
        if not st.st_mode & stat.S_IWUSR:
            raise WriteBackError(f"工作簿是只读文件，无法写回：{path}。请取消只读属性后重试",
                                 f"the workbook is read-only: {path}. Make it writable and retry")
        with zipfile.ZipFile(path) as zin:
            new_parts = _edit_parts(zin, edits)
            tmp = _write_temp(path, zin, new_parts, stat.S_IMODE(st.st_mode))
    except PermissionError as exc:
        raise _locked_error(path) from exc
    except FileNotFoundError as exc:
        raise WriteBackError(f"找不到工作簿：{path}", f"workbook not found: {path}") from exc
    except (zipfile.BadZipFile, ET.ParseError, KeyError, EOFError) as exc:
        raise WriteBackError(
            f"不是有效的 xlsx 工作簿（文件损坏或已加密）：{path}。请在 Excel 中另存为 .xlsx 且不设密码后重试",
            f"not a valid xlsx workbook (corrupt or password-protected): {path}. "
            f"Save it from Excel as .xlsx without a password and retry ({exc})") from exc

    backup_path = None
    try:
        now = path.stat()
        if (now.st_mtime_ns, now.st_size) != (st.st_mtime_ns, st.st_size):
            raise WriteBackError(f"写回期间工作簿被其他程序修改：{path}。请关闭其他程序后重试",
                                 f"the workbook was modified by another program during write-back: {path}. "
                                 f"Close it elsewhere and retry")
        if backup:
            backup_path = _make_backup(path)
        replace_atomically(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if backup_path is not None:
            backup_path.unlink(missing_ok=True)
        if isinstance(exc, PermissionError):
            raise _locked_error(path) from exc
        raise
    return backup_path


def blanked_copy(src: str | os.PathLike, dst: str | os.PathLike,
                 cells: tuple[tuple[str, str], ...] | list[tuple[str, str]] = PASSWORD_CELLS) -> Path:
    """Write ``dst``: a copy of the workbook ``src`` whose ``cells`` (sheet, ref) are blank, by the same text edit
    as the write-back (every other part and cell byte for byte as in ``src``; ``src`` is only read).

    A blanked cell keeps its style and loses its value (and formula). Its text leaves the file too: a shared
    string used only by blanked cells is emptied in place (indices unchanged); one that a kept cell also shows
    stays, being visible there anyway. Raises WriteBackError as :func:`write_cells` does."""
    src, dst = Path(src), Path(dst)
    wanted: dict[str, set[str]] = {}
    for sheet, ref in cells:
        col, row = _parse_ref(ref)
        wanted.setdefault(sheet, set()).add(f"{get_column_letter(col)}{row}")
    try:
        with zipfile.ZipFile(src) as zin:
            sheets = _sheet_parts(zin)
            parts, dropped, kept = {}, set(), set()
            for sheet, part in sheets.items():
                name = _zip_name(zin, part)
                text, gone, used = _blank_sheet(zin.read(name).decode("utf-8"), wanted.get(sheet, set()))
                dropped |= gone
                kept |= used
                if wanted.get(sheet):
                    parts[name] = text.encode("utf-8")
            if (sst := _shared_strings_part(zin)) is not None and dropped - kept:
                parts[sst] = _empty_strings(zin.read(sst).decode("utf-8"), dropped - kept).encode("utf-8")
            tmp = _write_temp(dst, zin, parts, 0o600)
    except (zipfile.BadZipFile, ET.ParseError, KeyError, EOFError, UnicodeDecodeError) as exc:
        raise WriteBackError(f"不是有效的 xlsx 工作簿，无法生成去除密码的副本：{src}",
                             f"not a valid xlsx workbook; no copy without passwords can be made: {src} ({exc})") from exc
    replace_atomically(tmp, dst)
    return dst


def _blank_sheet(xml: str, refs: set[str]) -> tuple[str, set[int], set[int]]:
    """(xml with the cells ``refs`` emptied, shared-string indices those cells used, indices other cells use)."""
    root = re.search(r"<(?:([\w.-]+):)?worksheet" + _ATTRS, xml)
    p = f"{root.group(1)}:" if root and root.group(1) else ""
    cell_re = re.compile(rf"<{p}c" + _ATTRS)
    out, pos, gone, used = [], 0, set(), set()
    for m in cell_re.finditer(xml):
        if m.start() < pos:
            continue
        attrs = _attrs(m.group("attrs"))
        end = m.end()
        body = ""
        if not m.group("empty"):
            close = xml.find(f"</{p}c>", m.end())
            if close < 0:
                raise _malformed(attrs.get("r", "?"))
            body, end = xml[m.end():close], close + len(f"</{p}c>")
        idx = None
        if attrs.get("t") == "s" and (v := re.search(rf"<{p}v>\s*(\d+)\s*</{p}v>", body)):
            idx = int(v.group(1))
        ref = attrs.get("r", "").replace("$", "").upper()
        if ref in refs:
            if idx is not None:
                gone.add(idx)
            style = f' s="{attrs["s"]}"' if "s" in attrs else ""
            out += [xml[pos:m.start()], f'<{p}c r="{ref}"{style}/>']
            pos = end
        elif idx is not None:
            used.add(idx)
    out.append(xml[pos:])
    return "".join(out), gone, used


def _shared_strings_part(zin: zipfile.ZipFile) -> str | None:
    wb_part = next((t for typ, t in _rels(zin, "").values() if typ.endswith("/officeDocument")), "xl/workbook.xml")
    for typ, target in _rels(zin, wb_part).values():
        if typ.endswith("/sharedStrings"):
            return _zip_name(zin, target)
    return None


def _empty_strings(xml: str, indices: set[int]) -> str:
    """Shared strings ``indices`` emptied in place (``<si><t/></si>``): every other index keeps its text."""
    root = re.search(r"<(?:([\w.-]+):)?sst" + _ATTRS, xml)
    p = f"{root.group(1)}:" if root and root.group(1) else ""
    si = re.compile(rf"<{p}si(?:\s[^>]*)?(?:/>|>.*?</{p}si>)", re.DOTALL)
    out, pos = [], 0
    for i, m in enumerate(si.finditer(xml)):
        if i in indices:
            out += [xml[pos:m.start()], f"<{p}si><{p}t/></{p}si>"]
            pos = m.end()
    out.append(xml[pos:])
    return "".join(out)


# ---------------------------------------------------------------------------------------- helpers

def _parse_ref(ref: str) -> tuple[int, int]:
    m = _REF.fullmatch(ref.strip()) if isinstance(ref, str) else None
    try:
        col = column_index_from_string(m.group(1)) if m else 0
    except ValueError:  # past XFD
        col = 16385
    if not m or col > 16384 or int(m.group(2)) > 1048576:
        raise ValueError(f"not a cell reference: {ref!r}")
    return col, int(m.group(2))


def _attrs(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _ATTR.finditer(text)}


def _locked_error(path: Path) -> WriteBackError:
    return WriteBackError(
        f"工作簿似乎正在 Excel 中打开或被锁定（或没有写入权限）：{path}。请在 Excel 中关闭该工作簿后重试",
        f"the workbook appears to be open in Excel or is locked (or not writable): {path}. "
        f"Close it in Excel and retry")


def _refuse_if_locked(path: Path) -> None:
    # Excel/WPS owner file "~$name"; LibreOffice ".~lock.name#".
    for lock in (path.with_name("~$" + path.name), path.with_name(f".~lock.{path.name}#")):
        if lock.exists():
            raise WriteBackError(
                f"工作簿似乎正在 Excel 中打开（发现锁文件 {lock.name}）：{path}。请在 Excel 中关闭该工作簿后重试；"
                f"若 Excel 并未打开它，请删除该锁文件",
                f"the workbook appears to be open in Excel (lock file {lock.name} exists): {path}. "
                f"Close it in Excel and retry; if Excel is not running, delete the stale lock file")


def _zip_name(zin: zipfile.ZipFile, name: str) -> str:
    if name in zin.NameToInfo:
        return name
    for n in zin.namelist():  # OPC part names are case-insensitive
        if n.lower() == name.lower():
            return n
    raise KeyError(name)


def _rels(zin: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """Relationships of ``part`` ("" for the package): Id -> (Type, resolved part name)."""
    folder, name = posixpath.split(part)
    root = ET.fromstring(zin.read(_zip_name(zin, posixpath.join(folder, "_rels", name + ".rels"))))
    out = {}
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Relationship" and el.get("TargetMode") != "External":
            target = unquote(el.get("Target", ""))
            target = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
                posixpath.join(folder, target))
            out[el.get("Id")] = (el.get("Type", ""), target)
    return out


def _sheet_parts(zin: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> zip entry name, resolved through workbook.xml and its rels."""
    wb_part = next((t for typ, t in _rels(zin, "").values() if typ.endswith("/officeDocument")),
                   "xl/workbook.xml")
    rels = _rels(zin, wb_part)
    sheets = {}
    for el in ET.fromstring(zin.read(_zip_name(zin, wb_part))).iter():
        if el.tag.rsplit("}", 1)[-1] == "sheet":
            rid = next((v for k, v in el.attrib.items() if k.endswith("}id")), None)
            if rid in rels:
                sheets[el.get("name")] = rels[rid][1]
    return sheets


def _edit_parts(zin: zipfile.ZipFile, edits: dict[tuple[str, str], str]) -> dict[str, bytes]:
    """Return {zip entry name: new bytes} for every sheet part that has edits."""
    sheets = _sheet_parts(zin)
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    for (sheet, ref), value in edits.items():
        if sheet not in sheets:
            raise WriteBackError(
                f"工作簿中找不到工作表「{sheet}」（现有：{'、'.join(sheets)}）。请确认使用的是正确的规划表模板",
                f"the workbook has no sheet {sheet!r} (sheets: {', '.join(sheets)}). "
                f"Check that this is the right planning workbook")
        grouped.setdefault(sheets[sheet], []).append((sheet, ref, value))
    out = {}
    for part, cells in grouped.items():
        name = _zip_name(zin, part)
        try:
            text = zin.read(name).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WriteBackError(f"工作表「{cells[0][0]}」不是 UTF-8 编码，无法安全写回。请在 Excel 中另存后重试",
                                 f"sheet {cells[0][0]!r} is not UTF-8 encoded; re-save it in Excel and retry") from exc
        for sheet, ref, value in cells:
            text = _set_cell(text, ref, value, f"{sheet}!{ref}")
        data = text.encode("utf-8")
        try:
            ET.fromstring(data)  # sanity check only; the text itself is what gets written
        except ET.ParseError as exc:
            raise WriteBackError(f"写回后工作表「{cells[0][0]}」的 XML 无效，已放弃写回（工作簿未改动）",
                                 f"sheet {cells[0][0]!r} would become invalid XML; aborted, workbook untouched") from exc
        out[name] = data
    return out


def _set_cell(xml: str, ref: str, value: str, where: str) -> str:
    """Replace or insert the cell ``ref`` in worksheet XML text, touching nothing else."""
    root = re.search(r"<(?:([\w.-]+):)?worksheet" + _ATTRS, xml)
    prefix = root.group(1) if root else None
    if not root or _attrs(root.group("attrs")).get(f"xmlns:{prefix}" if prefix else "xmlns") not in _MAIN_NS:
        raise WriteBackError(f"{where}：工作表 XML 结构无法识别（不是普通工作表或命名空间不受支持）",
                             f"{where}: unrecognised worksheet XML (not a worksheet, or unsupported namespace)")
    p = f"{prefix}:" if prefix else ""
    col, row = _parse_ref(ref)
    space = ' xml:space="preserve"' if value != value.strip() else ""
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")

    def cell(style: str | None) -> str:
        s = f' s="{style}"' if style is not None else ""
        return f'<{p}c r="{ref}"{s} t="inlineStr"><{p}is><{p}t{space}>{value}</{p}t></{p}is></{p}c>'

    def opened(tag: str) -> str:  # "<x .../>" -> "<x ...>"
        return tag[:-2].rstrip() + ">"

    def malformed() -> WriteBackError:
        return _malformed(where)

    sd = re.search(rf"<{p}sheetData" + _ATTRS, xml)
    if not sd:
        raise malformed()
    new_row = f'<{p}row r="{row}">{cell(None)}</{p}row>'
    if sd.group("empty"):
        return f"{xml[:sd.start()]}{opened(sd.group(0))}{new_row}</{p}sheetData>{xml[sd.end():]}"
    sd_end = xml.find(f"</{p}sheetData>", sd.end())
    if sd_end < 0:
        raise malformed()

    prev = 0
    for r in re.compile(rf"<{p}row" + _ATTRS).finditer(xml, sd.end(), sd_end):
        num = _attrs(r.group("attrs")).get("r")
        prev = int(num) if num and num.isdigit() else prev + 1  # r is optional: implicit next row
        if prev > row:
            return xml[:r.start()] + new_row + xml[r.start():]
        if prev < row:
            continue
        if r.group("empty"):
            return f"{xml[:r.start()]}{opened(r.group(0))}{cell(None)}</{p}row>{xml[r.end():]}"
        row_end = xml.find(f"</{p}row>", r.end(), sd_end)
        if row_end < 0:
            raise malformed()
        return _place_in_row(xml, p, r.end(), row_end, col, cell, where)
    return xml[:sd_end] + new_row + xml[sd_end:]


def _malformed(where: str) -> WriteBackError:
    return WriteBackError(f"{where}：工作表 XML 结构异常，无法安全写回", f"{where}: malformed worksheet XML")


def _place_in_row(xml: str, p: str, start: int, row_end: int, col: int, cell, where: str) -> str:
    """Replace (keeping its style) or insert, in column order, the cell of ``col`` in the row body xml[start:row_end]."""
    prev_col = 0
    for c in re.compile(rf"<{p}c" + _ATTRS).finditer(xml, start, row_end):
        attrs = _attrs(c.group("attrs"))
        try:
            prev_col = _parse_ref(attrs["r"])[0] if "r" in attrs else prev_col + 1
        except ValueError:
            raise _malformed(where) from None
        if prev_col > col:
            return xml[:c.start()] + cell(None) + xml[c.start():]
        if prev_col < col:
            continue
        end = c.end()
        if not c.group("empty"):
            close = xml.find(f"</{p}c>", c.end(), row_end)
            if close < 0:
                raise _malformed(where)
            if re.search(rf"<{p}f[\s/>]", xml[c.end():close]):
                raise WriteBackError(
                    f"单元格 {where} 含有公式，拒绝写入（写入值会破坏公式计算链）。请确认规划表模板正确，或清除该公式后重试",
                    f"cell {where} holds a formula; refusing to overwrite it (it would break the "
                    f"calculation chain). Check the planning template, or clear the formula and retry")
            end = close + len(f"</{p}c>")
        return xml[:c.start()] + cell(attrs.get("s")) + xml[end:]
    return xml[:row_end] + cell(None) + xml[row_end:]


def _write_temp(path: Path, zin: zipfile.ZipFile, new_parts: dict[str, bytes], mode: int) -> Path:
    """Copy every entry (same order, same ZipInfo) into a temp file beside ``path``; fsync it."""
    fd, tmp = temp_beside(path, prefix=f".{path.stem}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w") as zout:
                zout.comment = zin.comment
                for info in zin.infolist():
                    data = new_parts[info.filename] if info.filename in new_parts else zin.read(info)
                    zout.writestr(copy.copy(info), data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _make_backup(path: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in itertools.count():
        backup = path.with_name(f"{path.stem}.backup-{stamp}{f'-{i}' if i else ''}{path.suffix or '.xlsx'}")
        try:
            dst = open(backup, "xb")
        except FileExistsError:
            continue
        try:
            with dst, open(path, "rb") as src:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
            shutil.copystat(path, backup)
        except BaseException:
            backup.unlink(missing_ok=True)
            raise
        return backup
    raise AssertionError("unreachable")
