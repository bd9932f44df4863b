"""Issue 11 item 8: a step that does not pass carries its cause and next action (from the client error or the
assertion message, never a traceback location) into its message, state.json, the report and the terminal;
a failed deployment says deploy_status's reason, a stuck one says what to check. Also item 11's "state.json never
disagrees with the report": a replayed step whose setup fails is recorded as it is reported."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from clients.base import ApiError
from clients.poll import WaitTimeout
from fixtures.run import Evidence, RunState
from fixtures.session import DEFAULT_NEXT, failure_of, finish_report

from .suite_runs import ROOT, disagreements, report_of, run_suite, state_of

LOCATION = re.compile(r"^\S+\.py:\d+: \w+")   # the old message: "tests_deploy/x.py:60: AssertionError"


def _raised(exc: BaseException) -> pytest.ExceptionInfo:
    with pytest.raises(type(exc)) as info:
        raise exc
    return info


def test_client_error_gives_the_call_and_its_hint():
    err = ApiError("PUT", "https://10.0.0.1/api/v2/settings/dns", 500, '{"ec": "EDNS", "error": {"msg": "boom"}}',
                   "检查 DNS 服务 / check the DNS service", ec="EDNS")
    f = failure_of(_raised(err))
    assert f.cause.startswith("调用失败 / call failed: PUT https://10.0.0.1/api/v2/settings/dns → HTTP 500 ec=EDNS")
    assert "boom" in f.cause and "下一步" not in f.cause
    assert f.next == "检查 DNS 服务 / check the DNS service"
    assert f.message == f"{f.cause}\n下一步 / next: {f.next}"
    assert f.where and f.where.startswith("tests/test_failure_causes.py:")
    assert not LOCATION.match(f.message)


def test_assertion_message_splits_at_next_and_drops_pytests_explanation():
    verify = {"is_deployed": False}
    with pytest.raises(AssertionError) as info:
        assert verify.get("is_deployed") is True, "集群部署失败：disk / the deployment failed: disk\n下一步 / next: 修复 / fix"
    f = failure_of(info)
    assert f.cause == "集群部署失败：disk / the deployment failed: disk"
    assert f.next == "修复 / fix"
    assert "where" not in f.message and "assert " not in f.message


def test_bare_assert_and_other_errors_get_the_general_next_action():
    with pytest.raises(AssertionError) as info:
        assert 1 + 1 == 3
    f = failure_of(info)
    assert f.cause.startswith("断言失败 / assertion failed: assert") and f.next == DEFAULT_NEXT
    f = failure_of(_raised(KeyError("sim_now")))
    assert f.cause == "KeyError: 'sim_now'" and f.next == DEFAULT_NEXT
    f = failure_of(_raised(WaitTimeout("等待超时 / timed out: x — last state: running 7/12\n下一步 / next: 检查 / check")))
    assert f.cause.endswith("running 7/12") and f.next == "检查 / check"
    with pytest.raises(pytest.fail.Exception) as info:
        pytest.fail("需要 --packages / --packages DIR is needed")
    assert failure_of(info).cause == "需要 --packages / --packages DIR is needed"


def test_a_cause_is_redacted_and_bounded():
    from clients.redact import REDACTOR

    REDACTOR.add("Sup3r-Secret!x")
    f = failure_of(_raised(AssertionError("login failed with Sup3r-Secret!x " + "x" * 5000)))
    assert "Sup3r-Secret!x" not in f.cause and len(f.cause) < 1000


# --- finish_report: state.json says what the report says ----------------------------------------------------

def _item(sid: str):
    mark = SimpleNamespace(kwargs={"name": sid})
    return SimpleNamespace(get_closest_marker=lambda name: mark if name == "dependency" else None,
                           path=ROOT / "tests_deploy" / "test_01_prepare.py", nodeid=f"tests_deploy/x.py::{sid}",
                           function=SimpleNamespace(__doc__="a step"), name=sid)


def _ctx(tmp_path: Path, replay=()):
    state = RunState.create(tmp_path, plan_path=tmp_path / "p.xlsx", plan_sha256="0" * 64, cluster="c",
                            mode="simulated")
    state.begin_run(resumed=bool(replay))
    return SimpleNamespace(state=state, evidence=Evidence(tmp_path), replay=set(replay))


def test_a_replayed_step_whose_setup_fails_is_recorded_as_the_error_it_is(tmp_path):
    ctx = _ctx(tmp_path, replay={"01.hosts"})

    def boom():
        raise ApiError("GET", "http://127.0.0.1:9/_sim/map", None, "ConnectError", "启动模拟器 / start the simulator")

    call = pytest.CallInfo.from_call(boom, when="setup")
    rep = pytest.TestReport("tests_deploy/x.py::01.hosts", ("x.py", 1, "t"), {}, "failed", "traceback text", "setup")
    finish_report(ctx, _item("01.hosts"), rep, call)
    step = ctx.state.step("01.hosts")
    assert step["outcome"] == "error" and step["replayed"] is False      # the old code said "passed", replayed
    assert step["cause"].startswith("调用失败 / call failed: GET") and step["next"] == "启动模拟器 / start the simulator"
    assert rep.longrepr.startswith("原因 / cause: 调用失败") and "traceback text" in rep.longrepr


def test_a_replayed_step_that_passes_stays_replayed(tmp_path):
    ctx = _ctx(tmp_path, replay={"01.plan"})
    rep = pytest.TestReport("tests_deploy/x.py::01.plan", ("x.py", 1, "t"), {}, "passed", None, "call")
    finish_report(ctx, _item("01.plan"), rep, pytest.CallInfo.from_call(lambda: True, when="call"))
    assert ctx.state.step("01.plan")["outcome"] == "passed" and ctx.state.step("01.plan")["replayed"] is True


# --- whole runs: a failed and a stuck deployment (slow) ------------------------------------------------------

def _deploy_fault(**action) -> str:
    return json.dumps([{"method": "POST", "path": "/api/v2/deployment/cluster", "action": action}])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["failed", "stuck"])
def test_deployment_failure_cause_reaches_message_state_report_and_terminal(kind, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setenv("COLUMNS", "250")          # the short summary line is not cut before the cause
    if kind == "failed":
        monkeypatch.setenv("SMTX_SIM_FAULTS", _deploy_fault(operation="fail", msg="stage 6: format disk sdb failed",
                                                            stage="format_disks_and_partitions"))
        extra = []
    else:
        monkeypatch.setenv("SMTX_SIM_FAULTS", _deploy_fault(operation="stuck", stage="init_zbs_meta"))
        extra = ["--time-scale", "0.0005"]     # the two-hour limit passes in about 4 s
    proc = run_suite("--plan", str(ROOT / "examples" / "plan-example.xlsx"), "--simulate", "--run-dir", str(run_dir),
                     *extra, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    step = state_of(run_dir)["steps"]["02.deploy"]
    assert step["outcome"] == "failed" and not LOCATION.match(step["message"])
    if kind == "failed":
        assert "stage 6: format disk sdb failed" in step["cause"] and "format_disks_and_partitions" in step["cause"]
        assert step["cause"].index("集群部署失败") < step["cause"].index("the deployment failed")   # Chinese first
        assert "--resume" in step["next"] and "部署日志" in step["next"]
    else:
        assert "init_zbs_meta" in step["cause"] and "等待超时 / timed out" in step["cause"]
        assert "存储网络" in step["next"] and "storage network" in step["next"] and "does not submit" in step["next"]
    assert step["message"] == f"{step['cause']}\n下一步 / next: {step['next']}"
    _, text = report_of(run_dir)
    assert "未通过的步骤 / Steps that did not pass" in text and step["cause"] in text
    assert "本次运行完成部署" not in text, "a failed deployment is never reported as deployed by this run"
    assert "FAILED tests_deploy/test_02_init_cluster.py::test_deploy_cluster - 原因 / cause:" in proc.stdout
    assert disagreements(run_dir) == []
