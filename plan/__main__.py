"""python -m plan validate PATH [--json] [--lang en] | python -m plan example OUT.xlsx [--hosts N]"""
from __future__ import annotations

import argparse
import sys

from . import layout as L


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m plan", description="规划设计表工具 / planning workbook tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="校验规划表 / validate a planning workbook")
    v.add_argument("path", help="规划设计表（.xlsx）/ the planning workbook (.xlsx)")
    v.add_argument("--json", action="store_true", help="以 JSON 输出 / print JSON")
    v.add_argument("--lang", choices=("zh", "en"), default="zh",
                   help="输出语言（表格与 JSON 的 message/fix），默认中文 / output language (table, and JSON "
                        "message/fix); default zh")
    e = sub.add_parser("example", help="生成示例规划表 / write an example workbook")
    e.add_argument("out")
    e.add_argument("--hosts", type=int, default=4, help="主机数 3..16 / number of hosts")
    e.add_argument("--business", type=int, default=11, help="业务网络数 0..11 / number of business networks")
    e.add_argument("--network-arch", choices=[k for k, v in L.NETWORK_ARCHS.items()
                                              if v in L.SUPPORTED_NETWORK_ARCHS], default="三网独立")
    args = ap.parse_args(argv)

    if args.cmd == "example":
        from .example import write_example

        if not 3 <= args.hosts <= 16:
            ap.error("--hosts 必须在 3..16 之间 / must be 3..16")
        out = write_example(args.out, hosts=args.hosts, business=args.business, network_arch=args.network_arch)
        print(f"示例规划表已写入 / example written: {out}")
        return 0

    from .parse import PlanReadError
    from .render import format_json, format_table
    from .validate import check

    try:
        _plan, findings = check(args.path)
    except PlanReadError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(format_json(findings, args.lang) if args.json else format_table(findings, args.lang))
    return 1 if any(f.is_error for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
