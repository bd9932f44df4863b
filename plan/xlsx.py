"""A small, fast, read-only xlsx cell reader.

openpyxl can give either a cell's formula or its cached value, never both, and a
full ``load_workbook`` of the vendor template takes seconds. This reader streams
only the sheets it is asked for and keeps both, so formula cells without a
cached value (workbooks last saved by a script) can be resolved here.
"""
from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_REF = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)$")


class XlsxError(Exception):
    """The file is not a readable workbook, or a sheet is missing. ``zh`` / ``en``: the reason in each
    language, without the path (the caller names the file once)."""

    def __init__(self, zh: str, en: str | None = None):
        self.zh, self.en = zh, (en if en is not None else zh)
        super().__init__(zh if en is None else f"{zh} / {en}")


def _os_reason(exc: OSError) -> tuple[str, str]:
    if isinstance(exc, FileNotFoundError):
        return "文件不存在", "no such file"
    if isinstance(exc, PermissionError):
        return "没有读取权限", "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "这是一个文件夹，不是文件", "it is a folder, not a file"
    return f"读取失败（{exc.strerror or exc}）", f"read failed ({exc.strerror or exc})"


class XlsxFormatError(XlsxError):
    """A workbook in a form this reader cannot open (password-protected, old .xls): one line, what to do."""


_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"   # Compound File: .xls, and Office-encrypted .xlsx
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")


def _format_problem(path: Path) -> str | None:
    """Why a file that is not a zip cannot be a workbook we read, when we can tell: Excel encrypts a
    password-protected .xlsx into a Compound File holding an ``EncryptedPackage`` stream; a Compound File
    without one is the old binary .xls format."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_OLE2_MAGIC))
            compound = head == _OLE2_MAGIC
            encrypted = compound and _ENCRYPTED_STREAM in fh.read(64 << 20)
    except OSError:
        return None
    if encrypted:
        return (f"规划表 {path.name} 是受密码保护的工作簿：请在 Excel 中取消密码保护后另存 / "
                f"password-protected workbook: save it unprotected")
    if compound or path.suffix.lower() == ".xls":
        return f"规划表 {path.name} 是旧的 .xls 格式：请在 Excel 中另存为 .xlsx / old .xls format: save as .xlsx"
    return None


@dataclass(frozen=True)
class RawCell:
    value: object = None          # cached/literal value: str, int, float, bool or None
    formula: str | None = None    # formula text without the leading '='


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def split_ref(ref: str) -> tuple[str, int]:
    m = _REF.match(ref.upper())
    if not m:
        raise ValueError(f"not a cell reference: {ref!r}")
    return m.group(1), int(m.group(2))


def col_index(col: str) -> int:
    """1 for A, 27 for AA (openpyxl's own conversion)."""
    from openpyxl.utils.cell import column_index_from_string

    return column_index_from_string(col)


def _number(text: str) -> int | float:
    f = float(text)
    return int(f) if f.is_integer() else f


class Workbook:
    """Lazily parsed workbook: ``wb.cell(sheet, "B3")`` returns a RawCell."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
            self._sheet_parts = self._read_sheet_parts()
            self._shared = self._read_shared_strings()
        except zipfile.BadZipFile as exc:
            problem = _format_problem(self.path)
            if problem:
                raise XlsxFormatError(problem) from exc
            raise XlsxError("不是 .xlsx 工作簿（文件不是 zip 格式）", "not an .xlsx workbook (the file is not a zip)") from exc
        except OSError as exc:
            raise XlsxError(*_os_reason(exc)) from exc
        except (KeyError, ET.ParseError) as exc:
            raise XlsxError(f"工作簿结构损坏（{exc}）", f"the workbook is damaged ({exc})") from exc
        self._cells: dict[str, dict[str, RawCell]] = {}

    def close(self) -> None:
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def sheet_names(self) -> list[str]:
        return list(self._sheet_parts)

    def _read_sheet_parts(self) -> dict[str, str]:
        rels = ET.fromstring(self._zip.read("xl/_rels/workbook.xml.rels"))
        targets = {}
        for rel in rels:
            target = rel.get("Target", "")
            target = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
            targets[rel.get("Id")] = target
        book = ET.fromstring(self._zip.read("xl/workbook.xml"))
        parts = {}
        for el in book.iter():
            if _local(el.tag) == "sheet":
                rid = el.get(f"{{{_NS_REL}}}id") or el.get("id")
                if rid in targets:
                    parts[el.get("name")] = targets[rid]
        return parts

    def _read_shared_strings(self) -> list[str]:
        try:
            data = self._zip.read("xl/sharedStrings.xml")
        except KeyError:
            return []
        out = []
        for si in ET.fromstring(data):
            out.append("".join(t.text or "" for t in si.iter() if _local(t.tag) == "t" and not _in_phonetic(si, t)))
        return out

    def sheet(self, name: str) -> dict[str, RawCell]:
        if name not in self._cells:
            part = self._sheet_parts.get(name)
            if part is None:
                raise XlsxError(f"工作簿缺少工作表「{name}」", f"workbook has no sheet {name!r}")
            with self._zip.open(part) as fh:
                self._cells[name] = self._parse_sheet(fh)
        return self._cells[name]

    def has_sheet(self, name: str) -> bool:
        return name in self._sheet_parts

    def cell(self, sheet: str, ref: str) -> RawCell:
        return self.sheet(sheet).get(ref.replace("$", "").upper(), RawCell())

    def _value(self, ctype: str, text: str | None):
        """A cell's cached value ``<v>`` by its type ``t``: shared string, text, error, boolean or number."""
        if text is None or text == "":
            return None
        if ctype == "s":
            return self._shared[int(text)]
        if ctype in ("str", "inlineStr", "e"):
            return text
        if ctype == "b":
            return text == "1"
        return _number(text)

    def _parse_sheet(self, fh) -> dict[str, RawCell]:
        cells: dict[str, RawCell] = {}
        shared_masters: dict[str, tuple[str, str]] = {}
        for _event, el in ET.iterparse(fh, events=("end",)):
            tag = _local(el.tag)
            if tag != "c":
                if tag == "row":
                    el.clear()
                continue
            ref = el.get("r")
            ctype = el.get("t", "n")
            value = None
            formula = None
            for child in el:
                ctag = _local(child.tag)
                if ctag == "v":
                    value = self._value(ctype, child.text)
                elif ctag == "is":
                    value = "".join(t.text or "" for t in child.iter() if _local(t.tag) == "t")
                elif ctag == "f":
                    formula = child.text or ""
                    if child.get("t") == "shared":
                        si = child.get("si")
                        if formula:
                            shared_masters[si] = (ref, formula)
                        elif si in shared_masters:
                            formula = _translate(shared_masters[si], ref)
            if value is not None or formula is not None:
                cells[ref] = RawCell(value, formula)
        return cells


def _in_phonetic(si, t) -> bool:
    # Phonetic runs (<rPh>) are annotations, not part of the string.
    for rph in si:
        if _local(rph.tag) == "rPh" and t in list(rph.iter()):
            return True
    return False


def _translate(master: tuple[str, str], ref: str) -> str:
    from openpyxl.formula.translate import Translator

    origin, formula = master
    return Translator("=" + formula, origin=origin).translate_formula(ref)[1:]


# --- formula evaluation: references and '&' concatenation -------------------

class FormulaError(Exception):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"]|"")*")
      | (?P<num>\d+(?:\.\d+)?)
      | (?P<ref>(?:(?:'(?:[^']|'')+'|[^\s!&"'()=+\-*/,<>]+)!)?\$?[A-Za-z]{1,3}\$?\d+)
      | (?P<amp>&)
    )\s*""",
    re.VERBOSE,
)


def evaluate(book: Workbook, sheet: str, ref: str, _seen: frozenset = frozenset()) -> object:
    """The value of a cell: its cached value when it has one, else its formula evaluated.

    Supports direct references (``=虚拟网络!B3``, ``='My sheet'!$B$3``), string and
    number literals, and ``&`` concatenation. Anything else raises FormulaError.
    """
    raw = book.cell(sheet, ref)
    if raw.formula is None or raw.value not in (None, ""):
        return raw.value
    key = (sheet, ref.upper())
    if key in _seen:
        raise FormulaError(f"circular reference at {sheet}!{ref}")
    text = raw.formula.strip()
    pos, parts = 0, []
    expect_term = True
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FormulaError(f"unsupported formula ={raw.formula}")
        pos = m.end()
        if m.group("amp"):
            if expect_term:
                raise FormulaError(f"unsupported formula ={raw.formula}")
            expect_term = True
            continue
        if not expect_term:
            raise FormulaError(f"unsupported formula ={raw.formula}")
        expect_term = False
        if m.group("str") is not None:
            parts.append(m.group("str")[1:-1].replace('""', '"'))
        elif m.group("num") is not None:
            parts.append(_number(m.group("num")))
        else:
            target = m.group("ref")
            tsheet, tref = sheet, target
            if "!" in target:
                tsheet, tref = target.rsplit("!", 1)
                if tsheet.startswith("'"):
                    tsheet = tsheet[1:-1].replace("''", "'")
            if not book.has_sheet(tsheet):
                raise FormulaError(f"formula refers to a missing sheet {tsheet!r}")
            parts.append(evaluate(book, tsheet, tref.replace("$", ""), _seen | {key}))
    if expect_term:
        raise FormulaError(f"unsupported formula ={raw.formula}")
    if len(parts) == 1:
        return parts[0]
    return "".join("" if p is None else _as_text(p) for p in parts)


def _as_text(v: object) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    return str(v)
