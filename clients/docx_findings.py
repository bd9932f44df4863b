"""The findings of an inspection report exported as Word (.docx), read with python-docx.

No real export sample is at hand (facts 08.5: the older tool never parses it), so nothing here depends on where a
table sits: every table of the document is looked at, and a table is a *findings table* when its first row names
at least the item and its result or severity, by header words (``HEADER_WORDS``: 检查项 / 巡检项, 对象, 结果 /
状态, 级别, 值, 建议, and their English forms). Rows whose result is an OK word (``OK_WORDS``) and carry no
severity are OK; every other row is a finding that is not OK. A document without such a table is *not
recognised*: :attr:`Findings.recognised` is False and :attr:`Findings.reason` says why (the caller links the
file instead of guessing)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

# column -> words a header cell may contain (checked in this order; the first free column that matches wins)
HEADER_WORDS: dict[str, tuple[str, ...]] = {
    "item": ("检查项", "巡检项", "检查名称", "巡检名称", "项目", "item", "check"),
    "severity": ("级别", "等级", "严重性", "严重程度", "severity", "level"),
    "suggestion": ("建议", "处理", "修复", "suggestion", "advice", "recommend", "remedy"),
    "object": ("对象", "资源", "主机", "object", "target", "resource", "host"),
    "result": ("结果", "状态", "结论", "result", "status", "outcome"),
    "value": ("值", "数值", "详情", "value", "detail"),
}
OK_WORDS = {"正常", "通过", "健康", "无异常", "ok", "pass", "passed", "normal", "healthy", "success", "succeeded"}
UNRATED = "未分级 / unrated"
OK_KEY = "正常 / OK"


@dataclass
class Finding:
    item: str
    object: str = ""
    result: str = ""
    severity: str = ""
    value: str = ""
    suggestion: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Findings:
    recognised: bool
    tables: int = 0                     # findings tables found
    items: int = 0                      # rows in them
    by_severity: dict[str, int] = field(default_factory=dict)
    not_ok: list[Finding] = field(default_factory=list)
    reason: str | None = None


def columns(header: list[str]) -> dict[str, int]:
    """Header cells -> ``{column: index}`` by ``HEADER_WORDS`` (each cell and each column used once)."""
    found: dict[str, int] = {}
    for i, cell in enumerate(header):
        text = cell.strip().lower()
        if not text:
            continue
        for col, words in HEADER_WORDS.items():
            if col not in found and any(w in text for w in words):
                found[col] = i
                break
    return found


def is_findings(cols: dict[str, int]) -> bool:
    return "item" in cols and ("result" in cols or "severity" in cols)


def _is_ok(result: str, severity: str) -> bool:
    words = {result.strip().lower(), severity.strip().lower()} - {"", "-"}
    return not severity.strip(" -") and bool(words) and words <= OK_WORDS


def read_findings(path: Path) -> Findings:
    """Every findings table of ``path`` (a .docx) summed up; a document python-docx cannot open, or without a
    findings table, is not recognised (never an exception)."""
    import docx

    try:
        doc = docx.Document(str(path))
    except Exception as exc:            # noqa: BLE001 - any unreadable file is "not recognised", said plainly
        return Findings(False, reason=f"python-docx 无法打开 / cannot open: {type(exc).__name__}: {exc}")
    out = Findings(True)
    headers_seen = []
    for table in doc.tables:
        rows = [[c.text.strip() for c in r.cells] for r in table.rows]
        if not rows:
            continue
        cols = columns(rows[0])
        headers_seen.append(" | ".join(rows[0])[:80])
        if not is_findings(cols):
            continue
        out.tables += 1
        for row in rows[1:]:
            def get(col: str, row=row, cols=cols) -> str:
                i = cols.get(col)
                return row[i] if i is not None and i < len(row) else ""
            if not any(row) or not get("item"):
                continue
            out.items += 1
            f = Finding(get("item"), get("object"), get("result"), get("severity"), get("value"), get("suggestion"))
            key = OK_KEY if _is_ok(f.result, f.severity) else (f.severity or UNRATED)
            out.by_severity[key] = out.by_severity.get(key, 0) + 1
            if key != OK_KEY:
                out.not_ok.append(f)
    if not out.tables:
        seen = "; ".join(headers_seen) or "无表格 / no tables"
        return Findings(False, reason=f"没有找到表头含检查项与结果/级别的表格 / no table whose header names the item "
                                      f"and its result or severity (headers seen: {seen})")
    return out
