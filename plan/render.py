"""Findings as a readable table (CJK-aware widths) or JSON."""
from __future__ import annotations

import json
import unicodedata

from .model import Finding

SEVERITY = {"error": ("错误", "ERROR"), "warning": ("警告", "WARN")}


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _pad(s: str, width: int) -> str:
    return s + " " * (width - _width(s))


def format_table(findings: list[Finding], lang: str = "zh") -> str:
    if not findings:
        return "规划表校验通过，没有发现问题。" if lang == "zh" else "The plan validates clean: no findings."
    rows = []
    for f in findings:
        sev = SEVERITY[f.severity][0 if lang == "zh" else 1]
        rows.append((sev, f.code, f.ref, f.message(lang), f.fix_in(lang)))
    heads = ("级别", "代码", "位置", "问题", "修改建议") if lang == "zh" else ("level", "code", "cell", "problem", "fix")
    widths = [max(_width(h), *(_width(r[i]) for r in rows)) for i, h in enumerate(heads[:3])]
    lines = ["  ".join(_pad(h, w) for h, w in zip(heads[:3], widths)) + f"  {heads[3]}"]
    for r in rows:
        lines.append("  ".join(_pad(c, w) for c, w in zip(r[:3], widths)) + f"  {r[3]}")
        lines.append(" " * (sum(widths) + 6) + f"→ {r[4]}")
    errors = sum(f.is_error for f in findings)
    warnings = len(findings) - errors
    lines.append(f"共 {errors} 个错误，{warnings} 个警告。" if lang == "zh" else f"{errors} error(s), {warnings} warning(s).")
    return "\n".join(lines)


def format_json(findings: list[Finding], lang: str = "zh") -> str:
    """``message`` / ``fix`` in ``lang``; ``message_zh``/``message_en`` and ``fix_zh``/``fix_en`` always."""
    errors = sum(f.is_error for f in findings)
    return json.dumps({"errors": errors, "warnings": len(findings) - errors,
                       "findings": [f.as_dict(lang) for f in findings]}, ensure_ascii=False, indent=2)
