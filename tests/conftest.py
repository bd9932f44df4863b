from __future__ import annotations

from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "plan-template.xlsx"
REFERENCE = TEMPLATE.parent


@pytest.fixture
def template_path() -> Path:
    if not TEMPLATE.exists():
        pytest.skip(f"vendor template not present at {TEMPLATE} (it lives only in the team's shared reference folder)")
    return TEMPLATE


@pytest.fixture(scope="session")
def example_plan_path(tmp_path_factory) -> Path:
    from plan.example import write_example

    return write_example(tmp_path_factory.mktemp("plan") / "example.xlsx")
