"""Helpers for tests that run against the simulator (no pytest dependency here)."""
from __future__ import annotations

import os
import ssl
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_CANDIDATES = (
    os.environ.get("SMTX_PLAN_TEMPLATE", ""),
    str(REPO.parent / "shared" / "reference" / "plan-template.xlsx"),
)


def plan_path(tmp_dir: str | os.PathLike, *, hosts: int = 4, **kw) -> Path | None:
    """A planning workbook to simulate: ``plan.example.write_example`` output when that module
    exists (preferred: needs no vendor file), else the vendor template (read in place, never
    copied), else None."""
    try:
        from plan.example import write_example
    except ImportError:
        write_example = None
    if write_example is not None:
        return Path(write_example(Path(tmp_dir) / f"sim-plan-{hosts}.xlsx", hosts=hosts, **kw))
    for c in TEMPLATE_CANDIDATES:
        if c and Path(c).is_file():
            return Path(c)
    return None


def load_plan(path: str | os.PathLike):
    from plan.parse import load
    plan, _findings = load(path)
    return plan


def ssl_context(sim) -> ssl.SSLContext:
    """Client TLS context trusting the simulator's CA (pass as httpx ``verify=``)."""
    return ssl.create_default_context(cafile=str(sim.ca_bundle))
