"""The suite's pytest options and report hooks. The machinery lives in fixtures/."""
from __future__ import annotations

import pytest

from fixtures import report as _report
from fixtures import session as _session

pytest_plugins = ["fixtures.plugin"]


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("smtx", "SMTX 集群交付验收 / SMTX acceptance")
    g.addoption("--plan", metavar="PATH", help="规划设计表 .xlsx；给出时运行 tests_deploy/ 验收步骤 / planning workbook")
    g.addoption("--simulate", action="store_true", help="启动内置模拟器并把所有连接路由到回环地址 / use the built-in simulator")
    g.addoption("--simulator", metavar="CONTROL_URL",
                help="连接已运行的独立模拟器（python -m mocks serve 打印的控制地址）/ attach to a standalone simulator")
    g.addoption("--time-scale", type=float, default=0.002, metavar="X",
                help="模拟时间倍率：1 为真实节奏，默认 0.002 / simulated pacing: 1 = realistic (default 0.002)")
    g.addoption("--packages", metavar="DIR", help="ISO 与安装包目录 / where ISOs and packages are found")
    g.addoption("--run-dir", metavar="DIR", help="交付目录，默认 reports/<集群名>-<UTC 时间> / delivery folder")
    g.addoption("--resume", nargs="?", const="latest", metavar="RUN_DIR",
                help="从上次未通过的步骤续跑 / continue a previous run from its first step that did not pass")
    g.addoption("--insecure", action="store_true", help="不校验 TLS 证书 / do not verify TLS certificates")
    g.addoption("--ca-bundle", metavar="PEM", help="自定义 CA 证书 / custom CA bundle for TLS verification")
    g.addoption("--deploy-token", metavar="TOKEN", help="部署服务令牌，默认为指南中的值 / deployment service token")
    g.addoption("--operator", metavar="NAME", help="报告中的操作人员 / operator named in the report")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("plan"):
        return
    for opt, flag in (("lf", "--lf"), ("failedfirst", "--ff"), ("stepwise", "--sw"), ("keyword", "-k")):
        if config.getoption(opt, default=None):
            raise pytest.UsageError(
                f"{flag} 会让 pytest-dependency 静默跳过依赖步骤；请用 --resume 续跑 / {flag} silently skips dependent "
                f"steps under pytest-dependency; use --resume to continue a run, or -m preflight / -m stageNN")
    if not config.args or config.args == [str(config.rootpath)] or config.args == config.getini("testpaths"):
        config.args = [str(config.rootpath / "tests_deploy")]
    config.stash[_session.RUN_KEY] = _session.setup_run(config)


def pytest_metadata(metadata: dict, config: pytest.Config) -> None:
    ctx = config.stash.get(_session.RUN_KEY, None)
    if ctx is not None:
        metadata.clear()  # drops the CI variables and plugin lists pytest-metadata adds
        metadata.update(_session.environment(ctx))


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    ctx = config.stash.get(_session.RUN_KEY, None)
    steps = [i for i in items if _session.is_step(i)]
    if steps and ctx is None:
        raise pytest.UsageError("tests_deploy/ 的验收步骤需要 --plan 规划表.xlsx / acceptance steps need --plan PLAN.xlsx")
    if ctx is not None:
        _session.plan_replay(ctx, steps)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    ctx = pyfuncitem.config.stash.get(_session.RUN_KEY, None)
    if ctx is not None and _session.step_id(pyfuncitem) in ctx.replay:
        return True  # passed in the run being resumed: replayed, not re-run
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    rep = outcome.get_result()
    ctx = item.config.stash.get(_session.RUN_KEY, None)
    if ctx is not None:
        _session.finish_report(ctx, item, rep)
    else:
        _session.redact_report(rep)


def pytest_runtest_setup(item: pytest.Item) -> None:
    from clients.addressing import CURRENT_STEP

    CURRENT_STEP.set(_session.step_id(item) or item.name)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ctx = session.config.stash.get(_session.RUN_KEY, None)
    if ctx is None:
        return
    _report.finish(session, ctx)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    ctx = config.stash.get(_session.RUN_KEY, None)
    if ctx is not None:
        _report.terminal_summary(terminalreporter, ctx)


def pytest_html_report_title(report) -> None:
    ctx = report.config.stash.get(_session.RUN_KEY, None)
    report.title = _report.title(ctx)


def pytest_html_results_table_header(cells: list) -> None:
    _report.table_header(cells)


def pytest_html_results_table_row(report, cells: list) -> None:
    _report.table_row(report, cells)


def pytest_html_results_summary(prefix: list, summary: list, postfix: list, session: pytest.Session) -> None:
    ctx = session.config.stash.get(_session.RUN_KEY, None)
    if ctx is not None:
        postfix.extend(_report.as_built(ctx))
