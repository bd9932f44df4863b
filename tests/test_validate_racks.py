"""Rack data (主机规划 columns P/Q, stage 06's rack topology) in ``plan validate``: every finding names its cell.

The example workbook places host i at rack A01 (A02 from the ninth host on), U 1 + 2·(i mod 8); each test
overrides single cells with ``write_example(..., overrides={(sheet, cell): value})``."""
from __future__ import annotations

import json

import pytest

from plan import layout as L
from plan.__main__ import main
from plan.example import write_example
from plan.validate import check

HOSTS = L.SHEET_HOSTS
RACK_CODES = {"PLAN-RACK-U-MISSING", "PLAN-RACK-NAME-MISSING", "PLAN-RACK-U-INVALID"}


def ref(cell: str) -> str:
    return L.ref(HOSTS, cell)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    folder = tmp_path_factory.mktemp("racks")
    cache: dict = {}

    def _build(overrides: dict | None = None, hosts: int = 4):
        key = (hosts, tuple(sorted((overrides or {}).items(), key=repr)))
        if key not in cache:
            cache[key] = check(write_example(folder / f"plan-{len(cache)}.xlsx", hosts=hosts, business=1,
                                             overrides=overrides))
        return cache[key]

    return _build


def rack_findings(findings):
    return [f for f in findings if f.code in RACK_CODES or f.ref.startswith(f"{HOSTS}!P")
            or f.ref.startswith(f"{HOSTS}!Q")]


def test_the_example_has_rack_data_and_no_rack_finding(build):
    plan, findings = build()
    assert [(h.rack, h.rack_u) for h in plan.hosts] == [("A01", 1), ("A01", 3), ("A01", 5), ("A01", 7)]
    assert rack_findings(findings) == []


def test_a_rack_without_a_u_names_the_empty_u_cell(build):
    _, findings = build({(HOSTS, "Q5"): None})
    got = rack_findings(findings)
    assert [(f.code, f.ref, f.severity) for f in got] == [("PLAN-RACK-U-MISSING", ref("Q5"), "error")]
    assert "A01" in got[0].message_zh and ref("P5") in got[0].message_en and "demo-node-03" in got[0].message_en
    assert " / " in got[0].fix


def test_a_u_without_a_rack_names_the_empty_rack_cell(build):
    _, findings = build({(HOSTS, "P4"): None})
    got = rack_findings(findings)
    assert [(f.code, f.ref, f.severity) for f in got] == [("PLAN-RACK-NAME-MISSING", ref("P4"), "error")]
    assert "3" in got[0].message_en and ref("Q4") in got[0].message_zh


@pytest.mark.parametrize("value", ["3.5", "U3", "abc", 0, -1, "0", "-2", 2.5])
def test_a_u_that_is_not_a_positive_whole_number_is_one_clear_error(build, value):
    plan, findings = build({(HOSTS, "Q6"): value})
    got = rack_findings(findings)
    assert [(f.code, f.ref, f.severity) for f in got] == [("PLAN-RACK-U-INVALID", ref("Q6"), "error")], got
    assert str(value) in got[0].message_en and "positive whole number" in got[0].message_en
    assert "正整数" in got[0].message_zh
    assert plan.hosts[3].rack_u is None and ref("Q6") in plan.invalid      # no second "rack without U" finding


@pytest.mark.parametrize("value, u", [(5, 5), ("5", 5), (" 7 ", 7), ("５", 5), (3.0, 3)])
def test_whole_numbers_typed_any_way_are_taken(build, value, u):
    plan, findings = build({(HOSTS, "Q3"): value})
    assert rack_findings(findings) == [] and plan.hosts[0].rack_u == u


def test_hosts_sharing_a_rack_and_u_are_a_chassis_not_an_error(build):
    plan, findings = build({(HOSTS, "Q4"): 1, (HOSTS, "Q5"): 1, (HOSTS, "Q6"): 1})
    assert rack_findings(findings) == []
    assert {(h.rack, h.rack_u) for h in plan.hosts} == {("A01", 1)}


def test_no_rack_data_at_all_is_no_finding(build):
    blanks = {(HOSTS, f"{c}{r}"): None for r in range(3, 19) for c in "PQ"}
    plan, findings = build(blanks, hosts=16)
    assert len(plan.hosts) == 16 and all(h.rack is None and h.rack_u is None for h in plan.hosts)
    assert rack_findings(findings) == [] and not [f for f in findings if f.is_error]


def test_plan_validate_rejects_bad_rack_data_naming_the_cells(tmp_path, capsys):
    path = write_example(tmp_path / "bad.xlsx", hosts=4, business=1,
                         overrides={(HOSTS, "Q3"): None, (HOSTS, "P4"): None, (HOSTS, "Q6"): "1.5"})
    assert main(["validate", str(path), "--json", "--lang", "en"]) == 1
    found = {(f["code"], f["ref"]) for f in json.loads(capsys.readouterr().out)["findings"]}
    assert {("PLAN-RACK-U-MISSING", ref("Q3")), ("PLAN-RACK-NAME-MISSING", ref("P4")),
            ("PLAN-RACK-U-INVALID", ref("Q6"))} <= found


def test_chassis_that_overlap_or_overflow_at_the_default_heights_are_a_warning_naming_the_cell(build):
    _, findings = build({(HOSTS, "Q4"): 2})                   # host 1 at U1, host 2 at U2: 2U servers overlap
    layout = [f for f in findings if f.code == "PLAN-RACK-LAYOUT"]
    assert [(f.severity, f.ref) for f in layout] == [("warning", ref("Q3"))]
    assert "U1" in layout[0].message_zh and "U2" in layout[0].message_en and "--server-height" in layout[0].fix
    _, top = build({(HOSTS, "Q3"): 42})                       # U42 + 2U reaches past a 42U rack
    top = [f for f in top if f.code == "PLAN-RACK-LAYOUT"]
    assert [f.ref for f in top] == [ref("Q3")] and "42U" in top[0].message_en
    assert not [f for f in build()[1] if f.code == "PLAN-RACK-LAYOUT"], "the example's layout fits"
