"""Benchmark: parse + validate a planning workbook vs a bare openpyxl.load_workbook.

    python bench/bench_plan_parse.py [PLAN.xlsx] [--repeat N]

Without a path it uses ../shared/reference/plan-template.xlsx when present, else a generated example.
Prints the best-of-N times and their ratio.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import openpyxl

    from plan.validate import check

    path = Path(args.path) if args.path else ROOT.parent / "shared" / "reference" / "plan-template.xlsx"
    if not path.exists():
        from plan.example import write_example

        path = write_example(Path(tempfile.mkdtemp()) / "example.xlsx")
    ours = best(lambda: check(path), args.repeat)
    bare = best(lambda: openpyxl.load_workbook(path), args.repeat)
    print(f"workbook:                      {path.name} ({path.stat().st_size / 1024:.0f} KB)")
    print(f"parse + validate (ours):       {ours * 1000:8.1f} ms")
    print(f"openpyxl.load_workbook (bare): {bare * 1000:8.1f} ms")
    print(f"ratio ours / bare:             {ours / bare:8.3f}  (target: well under 2 s absolute)")


if __name__ == "__main__":
    main()
