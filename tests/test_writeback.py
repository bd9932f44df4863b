"""Tests for plan.writeback: surgical, atomic write-back of serial numbers into the customer's xlsx."""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import openpyxl
import pytest
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils.cell import column_index_from_string, coordinate_from_string
from openpyxl.worksheet.datavalidation import DataValidation

from plan import writeback
from plan.writeback import SERIAL_CELLS, WriteBackError, write_cells, write_serials

TEMPLATE = Path(__file__).parents[1].parent / "shared" / "reference" / "plan-template.xlsx"
SERIALS = {"cluster": "CL-0001", "cloudtower": "CT-0002", "obs": "OBS-0003", "backup": "BK-0004"}
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


# --------------------------------------------------------------------------------------- helpers

def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sheet_parts(path: Path) -> dict[str, str]:
    """Independent sheet name -> zip part resolver (workbook.xml + its rels)."""
    with zipfile.ZipFile(path) as z:
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        targets = {}
        for rel in rels:
            t = rel.get("Target")
            targets[rel.get("Id")] = t.lstrip("/") if t.startswith("/") else posixpath.normpath("xl/" + t)
        wb = ET.fromstring(z.read("xl/workbook.xml"))
        rid = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
        return {s.get("name"): targets[s.get(rid)] for s in wb.iter(f"{{{MAIN_NS}}}sheet")}


def part_text(path: Path, part: str) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read(part).decode("utf-8")


def strip_cells(xml: str, refs) -> str:
    """Remove the target <c> elements (any prefix), then rows left empty (in old and new alike)."""
    for ref in refs:
        xml = re.sub(rf'<(\w+:|)c r="{ref}"(?=[\s/>])[^>]*?(?:/>|>.*?</\1c>)', "", xml, flags=re.S)
    return re.sub(r'<(\w+:|)row r="\d+"></\1row>', "", xml)


def zip_entries(path: Path) -> list[tuple]:
    with zipfile.ZipFile(path) as z:
        return [(i.filename, i.date_time, i.compress_type, i.external_attr, i.comment, i.create_system,
                 z.read(i)) for i in z.infolist()]


def assert_surgical(old: Path, new: Path, touched: dict[str, set[str] | None]) -> None:
    """Only the target cells of the touched sheets differ; every other entry is identical.

    A touched sheet mapped to None may differ but its content is checked by the caller."""
    parts = sheet_parts(old)
    touched_parts = {parts[sheet]: refs for sheet, refs in touched.items()}
    old_entries, new_entries = zip_entries(old), zip_entries(new)
    assert [e[0] for e in old_entries] == [e[0] for e in new_entries]
    with zipfile.ZipFile(old) as zo, zipfile.ZipFile(new) as zn:
        assert zo.comment == zn.comment
    for o, n in zip(old_entries, new_entries):
        assert o[:-1] == n[:-1], f"ZipInfo metadata changed for {o[0]}"
        if o[0] in touched_parts:
            refs = touched_parts[o[0]]
            assert o[-1] != n[-1]
            if refs is None:
                continue
            assert strip_cells(o[-1].decode(), refs) == strip_cells(n[-1].decode(), refs), o[0]
        else:
            assert o[-1] == n[-1], f"{o[0]} changed"


def cell_xml(path: Path, sheet: str, ref: str) -> str:
    m = re.search(rf'<c r="{ref}"(?=[\s/>])[^>]*?(?:/>|>.*?</c>)', part_text(path, sheet_parts(path)[sheet]), re.S)
    return m.group(0) if m else ""


def values(path: Path, cells) -> dict:
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        return {(s, r): wb[s][r].value for s, r in cells}
    finally:
        wb.close()


def dir_listing(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


def build_synthetic(path: Path) -> Path:
    wb = openpyxl.Workbook()
    host = wb.active
    host.title = "主机规划"
    net = wb.create_sheet("虚拟网络")
    mgmt = wb.create_sheet("集群管理信息")
    wb.create_sheet("说明")["A1"] = "unrelated sheet"
    net["B3"] = "10.0.0.1"
    host["E1"] = "must not match E19"
    host["C3"] = "=虚拟网络!B3"
    host["D19"] = "Cluster SN"
    host["D19"].comment = Comment("在此填写集群序列号", "vendor")
    host["E19"].fill = PatternFill("solid", fgColor="FFFF00")
    host.merge_cells("E19:G19")
    host["H19"] = "=E19"
    host["E190"] = "row 190"
    dv = DataValidation(type="list", formula1='"None,RDMA"', allow_blank=True)
    host.add_data_validation(dv)
    dv.add("O19")
    host.protection.sheet = True
    host.protection.password = "secret"
    mgmt["M3"] = "placeholder"
    mgmt["N3"] = "=M3"
    mgmt["M4"].font = Font(bold=True)
    mgmt["L5"] = "no M5 cell in this row"
    mgmt["N5"] = "=M5"
    mgmt["M30"] = "keep"
    wb.save(path)
    return path


@pytest.fixture(params=["synthetic", "template"])
def workbook(request, tmp_path) -> Path:
    path = tmp_path / "plan.xlsx"
    if request.param == "template":
        if not TEMPLATE.exists():
            pytest.skip(f"vendor template not available at {TEMPLATE}")
        shutil.copyfile(TEMPLATE, path)  # copyfile: do not inherit the reference file's read-only mode
        return path
    return build_synthetic(path)


def serial_touched() -> dict[str, set[str]]:
    touched: dict[str, set[str]] = {}
    for sheet, ref in SERIAL_CELLS.values():
        touched.setdefault(sheet, set()).add(ref)
    return touched


# ----------------------------------------------------------------------------------------- tests

def test_write_serials_values_and_backup(workbook):
    original = workbook.read_bytes()
    backup = write_serials(workbook, SERIALS)
    got = values(workbook, SERIAL_CELLS.values())
    assert got == {SERIAL_CELLS[k]: v for k, v in SERIALS.items()}
    assert backup is not None and backup.parent == workbook.parent
    assert re.fullmatch(r"plan\.backup-\d{8}-\d{6}\.xlsx", backup.name)
    assert backup.read_bytes() == original
    assert not [n for n in dir_listing(workbook) if n.endswith(".tmp")]


def test_only_target_cells_change(workbook, tmp_path):
    old = tmp_path / "old.xlsx"
    shutil.copyfile(workbook, old)
    write_serials(workbook, SERIALS, backup=False)
    assert_surgical(old, workbook, serial_touched())
    style = re.search(r' s="\d+"', cell_xml(old, "主机规划", "E19")).group(0)  # E19 is styled
    assert cell_xml(workbook, "主机规划", "E19") == f'<c r="E19"{style} t="inlineStr"><is><t>CL-0001</t></is></c>'


def test_template_formula_xml_kept_exactly(tmp_path):
    if not TEMPLATE.exists():
        pytest.skip(f"vendor template not available at {TEMPLATE}")
    path = tmp_path / "plan.xlsx"
    shutil.copyfile(TEMPLATE, path)
    formula = '<c r="C3" s="344"><f>虚拟网络!B3</f><v /></c>'
    assert formula in part_text(path, sheet_parts(path)["主机规划"])
    write_serials(path, SERIALS, backup=False)
    assert formula in part_text(path, sheet_parts(path)["主机规划"])
    assert cell_xml(path, "主机规划", "E19") == '<c r="E19" s="333" t="inlineStr"><is><t>CL-0001</t></is></c>'


def test_write_twice(workbook, tmp_path):
    old = tmp_path / "old.xlsx"
    shutil.copyfile(workbook, old)
    first_backup = write_serials(workbook, SERIALS)
    after_first = workbook.read_bytes()
    second_backup = write_serials(workbook, {"cluster": "CL-9999", "obs": "OBS-9999"})
    assert second_backup != first_backup and second_backup.read_bytes() == after_first
    assert first_backup.read_bytes() == old.read_bytes()
    got = values(workbook, SERIAL_CELLS.values())
    assert got[SERIAL_CELLS["cluster"]] == "CL-9999" and got[SERIAL_CELLS["obs"]] == "OBS-9999"
    assert got[SERIAL_CELLS["cloudtower"]] == "CT-0002"
    assert_surgical(old, workbook, serial_touched())


def test_missing_cells_and_rows_are_inserted_in_order(tmp_path):
    path = tmp_path / "plan.xlsx"
    wb = openpyxl.Workbook()
    host = wb.active
    host.title = "主机规划"
    host["E18"], host["E190"] = "row 18", "row 190"  # no row 19; "190" must not be taken for "19"
    mgmt = wb.create_sheet("集群管理信息")
    for ref in ("B3", "Z3", "AC3", "M2", "M6", "A5"):  # no M3, no row 4, M5 goes after A5
        mgmt[ref] = ref
    wb.create_sheet("空表")  # written by openpyxl as <sheetData></sheetData>
    wb.save(path)
    old = tmp_path / "old.xlsx"
    shutil.copyfile(path, old)

    targets = {("主机规划", "E19"): "cluster", ("集群管理信息", "M3"): "m3", ("集群管理信息", "AA3"): "aa3",
               ("集群管理信息", "M4"): "m4", ("集群管理信息", "M5"): "m5", ("集群管理信息", "M100"): "m100",
               ("空表", "B2"): "b2"}
    assert "<sheetData></sheetData>" in part_text(old, sheet_parts(old)["空表"])
    write_cells(path, targets, backup=False)
    assert values(path, targets) == targets

    parts = sheet_parts(path)
    for sheet in ("主机规划", "集群管理信息", "空表"):
        root = ET.fromstring(part_text(path, parts[sheet]))
        rows = [int(r.get("r")) for r in root.iter(f"{{{MAIN_NS}}}row")]
        assert rows == sorted(rows) and len(rows) == len(set(rows)), (sheet, rows)
        for row in root.iter(f"{{{MAIN_NS}}}row"):
            cols = [column_index_from_string(coordinate_from_string(c.get("r"))[0])
                    for c in row.iter(f"{{{MAIN_NS}}}c")]
            assert cols == sorted(cols), (sheet, row.get("r"), cols)
    row3 = re.search(r'<row r="3".*?</row>', part_text(path, parts["集群管理信息"])).group(0)
    assert re.findall(r'<c r="(\w+)"', row3) == ["B3", "M3", "Z3", "AA3", "AC3"]

    # Beyond the inserted cells and rows, nothing changed.
    for sheet, refs in (("主机规划", {"E19"}), ("集群管理信息", {"M3", "AA3", "M4", "M5", "M100"})):
        assert strip_cells(part_text(path, parts[sheet]), refs) == strip_cells(part_text(old, parts[sheet]), refs)
    assert strip_cells(part_text(path, parts["空表"]), {"B2"}) == part_text(old, parts["空表"])


def test_excel_style_package(tmp_path):
    """Shared strings, XML declaration, relative rel targets, x: prefix, <sheetData/>, zip metadata."""
    path = tmp_path / "excel.xlsx"
    decl = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
    rel_ns = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    entries = {
        "[Content_Types].xml": decl + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/></Types>',
        "_rels/.rels": decl + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel_ns}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": decl + f'<workbook xmlns="{MAIN_NS}" xmlns:r="{rel_ns}"><sheets>'
        '<sheet name="Plain" sheetId="1" r:id="rId1"/><sheet name="Prefixed" sheetId="2" r:id="rId2"/>'
        '<sheet name="Empty" sheetId="3" r:id="rId4"/>'
        '</sheets></workbook>',
        "xl/_rels/workbook.xml.rels": decl + '<Relationships '
        'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel_ns}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{rel_ns}/worksheet" Target="/xl/worksheets/sheet2.xml"/>'
        f'<Relationship Id="rId3" Type="{rel_ns}/sharedStrings" Target="sharedStrings.xml"/>'
        f'<Relationship Id="rId4" Type="{rel_ns}/worksheet" Target="./worksheets/../worksheets/sheet3.xml"/>'
        '</Relationships>',
        "xl/worksheets/sheet1.xml": decl + f'<worksheet xmlns="{MAIN_NS}"><sheetData>'
        '<row r="1" spans="1:3"><c r="A1" t="s"><v>0</v></c><c r="C1" s="2"><v>5</v></c></row>'
        "<row r='2'><c r='A2' t='s'><v>1</v></c></row></sheetData></worksheet>",
        "xl/worksheets/sheet2.xml": decl + f'<x:worksheet xmlns:x="{MAIN_NS}"><x:sheetData>'
        '<x:row r="1"><x:c r="A1" s="1" t="s"><x:v>1</x:v></x:c></x:row></x:sheetData></x:worksheet>',
        "xl/worksheets/sheet3.xml": decl + f'<worksheet xmlns="{MAIN_NS}"><dimension ref="A1"/><sheetData/>'
        '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/></worksheet>',
        "xl/sharedStrings.xml": decl + f'<sst xmlns="{MAIN_NS}" count="2" uniqueCount="2">'
        '<si><t xml:space="preserve"> old </t></si><si><t>x</t></si></sst>',
    }
    with zipfile.ZipFile(path, "w") as z:
        z.comment = b"archive comment"
        for i, (name, text) in enumerate(entries.items()):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 2, 3, 4, 6 + 2 * i))
            info.compress_type = zipfile.ZIP_STORED if i % 2 else zipfile.ZIP_DEFLATED
            info.external_attr = (0o600 + i) << 16
            info.comment = f"c{i}".encode()
            z.writestr(info, text.encode())
    old = tmp_path / "old.xlsx"
    shutil.copyfile(path, old)

    write_cells(path, {("Plain", "A1"): "  new  ", ("Plain", "B1"): "b", ("Prefixed", "A1"): "p",
                       ("Prefixed", "B3"): "q", ("Empty", "C7"): "e"}, backup=False)

    assert_surgical(old, path, {"Plain": {"A1", "B1"}, "Prefixed": {"A1", "B3"}, "Empty": None})
    plain = part_text(path, "xl/worksheets/sheet1.xml")
    assert '<c r="A1" t="inlineStr"><is><t xml:space="preserve">  new  </t></is></c><c r="B1" t="inlineStr">' in plain
    prefixed = part_text(path, "xl/worksheets/sheet2.xml")
    assert prefixed == entries["xl/worksheets/sheet2.xml"].replace(
        '<x:c r="A1" s="1" t="s"><x:v>1</x:v></x:c></x:row>',
        '<x:c r="A1" s="1" t="inlineStr"><x:is><x:t>p</x:t></x:is></x:c></x:row>'
        '<x:row r="3"><x:c r="B3" t="inlineStr"><x:is><x:t>q</x:t></x:is></x:c></x:row>')
    cells = {c.get("r"): "".join(c.itertext()) for c in ET.fromstring(prefixed).iter(f"{{{MAIN_NS}}}c")}
    assert cells == {"A1": "p", "B3": "q"}
    assert part_text(path, "xl/worksheets/sheet3.xml") == entries["xl/worksheets/sheet3.xml"].replace(
        "<sheetData/>", '<sheetData><row r="7"><c r="C7" t="inlineStr"><is><t>e</t></is></c></row></sheetData>')


def test_formula_target_refused(workbook):
    before, listing = sha(workbook), dir_listing(workbook)
    with pytest.raises(WriteBackError, match=r"主机规划!C3.*formula"):
        write_cells(workbook, {("主机规划", "C3"): "x", ("主机规划", "E19"): "y"})
    assert sha(workbook) == before and dir_listing(workbook) == listing


def test_excel_lock_file_refused(workbook):
    (workbook.parent / f"~${workbook.name}").write_bytes(b"owner")
    before, listing = sha(workbook), dir_listing(workbook)
    with pytest.raises(WriteBackError, match=r"Excel.*Close it in Excel and retry"):
        write_serials(workbook, SERIALS)
    assert sha(workbook) == before and dir_listing(workbook) == listing


def test_permission_error_on_replace(workbook, monkeypatch):
    before, listing = sha(workbook), dir_listing(workbook)

    def locked(src, dst):
        raise PermissionError(13, "The process cannot access the file", str(dst))

    monkeypatch.setattr(writeback.os, "replace", locked)
    with pytest.raises(WriteBackError, match=r"open in Excel or is locked"):
        write_serials(workbook, SERIALS)
    assert sha(workbook) == before and dir_listing(workbook) == listing  # no temp file, no backup


def test_permission_error_on_open(workbook, monkeypatch):
    before, listing = sha(workbook), dir_listing(workbook)
    real = zipfile.ZipFile

    def zip_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == workbook:
            raise PermissionError(13, "sharing violation", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(writeback.zipfile, "ZipFile", zip_open)
    with pytest.raises(WriteBackError, match=r"locked"):
        write_serials(workbook, SERIALS)
    monkeypatch.undo()
    assert sha(workbook) == before and dir_listing(workbook) == listing


def test_special_characters_round_trip(workbook):
    value = 'SN <&> "q" \'a\' 序列号'
    write_cells(workbook, {("主机规划", "E19"): value, ("集群管理信息", "M3"): " padded "})
    got = values(workbook, [("主机规划", "E19"), ("集群管理信息", "M3")])
    assert got == {("主机规划", "E19"): value, ("集群管理信息", "M3"): " padded "}
    assert "SN &lt;&amp;&gt; \"q\" 'a' 序列号" in cell_xml(workbook, "主机规划", "E19")
    assert '<t xml:space="preserve"> padded </t>' in cell_xml(workbook, "集群管理信息", "M3")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_mode_preserved_and_read_only_refused(workbook):
    workbook.chmod(0o640)
    write_serials(workbook, SERIALS, backup=False)
    assert workbook.stat().st_mode & 0o777 == 0o640
    workbook.chmod(0o444)
    before = sha(workbook)
    with pytest.raises(WriteBackError, match="read-only"):
        write_serials(workbook, SERIALS)
    assert sha(workbook) == before


def test_backup_false_returns_none(workbook):
    listing = dir_listing(workbook)
    assert write_serials(workbook, {"cluster": "X"}, backup=False) is None
    assert dir_listing(workbook) == listing


def test_invalid_inputs(tmp_path):
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(WriteBackError, match="not a valid xlsx"):
        write_serials(bad, SERIALS)
    assert bad.read_bytes() == b"not a zip at all" and dir_listing(bad) == {"bad.xlsx"}

    path = tmp_path / "plan.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "主机规划"
    wb.save(path)
    with pytest.raises(WriteBackError, match="集群管理信息"):
        write_serials(path, SERIALS)
    with pytest.raises(WriteBackError, match="not found"):
        write_serials(tmp_path / "missing.xlsx", SERIALS)
    with pytest.raises(ValueError, match="unknown serial"):
        write_serials(path, {"tower": "x"})
    with pytest.raises(ValueError, match="cell reference"):
        write_cells(path, {("主机规划", "19E"): "x"})
    with pytest.raises(ValueError, match="not allowed in XML"):
        write_cells(path, {("主机规划", "E19"): "bad\x01"})
    assert write_cells(path, {}) is None
