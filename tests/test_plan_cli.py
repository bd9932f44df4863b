"""``python -m plan validate`` as a new user meets it: languages, help, one error sentence, and the
same warnings the run will raise from the plan alone."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from plan.__main__ import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plan-example.xlsx"
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_lang_en_table_has_no_chinese_but_the_cell(capsys):
    main(["validate", str(EXAMPLE), "--lang", "en"])
    out = capsys.readouterr().out
    assert "PLAN-CLOUDTOWER-ADMIN-PASSWORD" in out
    for line in out.splitlines():
        assert not CJK.search(line.replace("集群管理信息", "")), line       # sheet names stay as the workbook has them


def test_json_splits_fix_and_honours_lang(capsys):
    main(["validate", str(EXAMPLE), "--json", "--lang", "en"])
    f = json.loads(capsys.readouterr().out)["findings"][0]
    assert {"message_zh", "message_en", "fix_zh", "fix_en"} <= set(f)
    assert f["message"] == f["message_en"] and f["fix"] == f["fix_en"] and not CJK.search(f["fix"])
    assert CJK.search(f["fix_zh"]) and " / " not in f["fix_zh"]
    main(["validate", str(EXAMPLE), "--json"])
    f = json.loads(capsys.readouterr().out)["findings"][0]
    assert f["message"] == f["message_zh"] and f["fix"] == f["fix_zh"]


def test_help_describes_path_and_lang():
    out = subprocess.run([sys.executable, "-m", "plan", "validate", "--help"], capture_output=True, text=True,
                         cwd=REPO).stdout
    assert re.search(r"path\s+规划设计表", out) and re.search(r"--lang \{zh,en\}\s+\S", out)


def test_a_missing_workbook_is_one_sentence_per_language(capsys, tmp_path):
    missing = tmp_path / "x.xlsx"
    assert main(["validate", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count(str(missing)) == 1 and "\n" not in err
    zh, en = err.split(" / ")
    assert "无法读取规划表" in zh and "文件不存在" in zh and not CJK.search(en) and "no such file" in en
    assert "Errno" not in err


def test_validation_names_what_the_run_will_warn_about_with_its_cell():
    from plan.validate import check

    _, findings = check(EXAMPLE)
    [f] = [f for f in findings if f.code == "PLAN-CLOUDTOWER-ADMIN-PASSWORD"]
    assert f.ref == "集群管理信息!G3" and f.severity == "warning"
