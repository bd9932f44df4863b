from __future__ import annotations

import pytest

from clients.poll import Pacing, WaitTimeout, wait_for


def test_wait_for_returns_when_done_and_prints_progress():
    lines, values = [], iter(["running", "running", "running", "done"])
    pacing = Pacing(scale=0.0001, progress_every=0.0, echo=lines.append)
    assert wait_for(lambda: next(values), lambda v: v == "done", what="部署", interval=10, limit=1000,
                    pacing=pacing) == "done"
    assert len(lines) == 3 and "部署" in lines[0] and "limit" in lines[0]


def test_wait_for_times_out_with_last_state_and_hint():
    pacing = Pacing(scale=0.0001, echo=lambda s: None)
    with pytest.raises(WaitTimeout) as exc:
        wait_for(lambda: "stuck-state", lambda v: False, what="job", interval=10, limit=30, pacing=pacing,
                 hint="检查日志")
    assert "stuck-state" in str(exc.value) and "检查日志" in str(exc.value)
