"""The suite's pytest options and report hooks. The machinery lives in fixtures/."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures import options as _options
from fixtures import report as _report
from fixtures import session as _session

pytest_plugins = ["fixtures.plugin"]


def pytest_addoption(parser: pytest.Parser, pluginmanager) -> None:
    # Normally registered by the installed package's pytest11 entry point (fixtures/options.py).
    if pluginmanager.get_plugin(_options.PLUGIN_NAME) is None:
        _options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("plan"):
        return
    for opt, flag in (("lf", "--lf"), ("failedfirst", "--ff"), ("stepwise", "--sw"), ("keyword", "-k")):
        if config.getoption(opt, default=None):
            raise pytest.UsageError(
                f"{flag} 会让 pytest-dependency 静默跳过依赖步骤；请用 --resume 续跑 / {flag} silently skips dependent "
                f"steps under pytest-dependency; use --resume to continue a run, or -m preflight / -m stageNN")
    steps_dir = config.rootpath / "tests_deploy"
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(steps_dir)]  # --plan runs the acceptance steps, never the suite's own tests
    else:
        outside = [a for a in config.args if steps_dir not in Path(a.split("::")[0]).resolve().parents
                   and Path(a.split("::")[0]).resolve() != steps_dir]
        if outside:
            raise pytest.UsageError(f"--plan 只运行 tests_deploy/ 下的验收步骤 / with --plan only acceptance steps under "
                                    f"tests_deploy/ run; not: {', '.join(outside)}")
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
