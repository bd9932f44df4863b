"""The attached cluster as CloudTower shows it, shared by stages 05 and 06 (guide §05, §06): how often to poll, which
connect states have failed and what to check then, the wait for its hosts to sync, CloudTower's tasks, and GraphQL
``errors[]`` told in plain words.

Failures are raised as :class:`AssertionError` whose message says what happened and, after ``下一步 / next:``, what
to do: the step fails with that cause and next action, as if it had asserted it itself."""
from __future__ import annotations

from typing import Any, Callable, Protocol, TypeVar

from .cloudtower import TASK_FAILED, TASK_OK, CloudTowerClient, GraphQLError
from .poll import Pacing, wait_for

T = TypeVar("T")

POLL_S = 10                        # facts 05.4: poll every 10 s
FAILED_STATES = {"CONNECTED_ERROR", "DISCONNECTED"}
# What to check for each ClusterConnectorErrorCode (SDK) when the connection failed
REASON_NEXT = {
    "LOAD_CLUSTER_UNAUTHORIZED": ("核对集群管理员密码（主机规划!M19）与集群 root 实际密码",
                                  "check the cluster admin password (主机规划!M19) against the cluster's root password"),
    "LOAD_CLUSTER_NETWORK_ERROR": ("确认 CloudTower 能访问集群 VIP 的 443 端口（路由、防火墙）",
                                   "check that CloudTower reaches the cluster VIP on 443 (routing, firewall)"),
    "LOAD_CLUSTER_NOT_FOUND": ("确认 VIP 上是 SMTX OS 集群（主机规划!I19）",
                               "check that the VIP (主机规划!I19) is the SMTX OS cluster's"),
    "LOAD_CLUSTER_UNHEALTHY": ("在集群管理界面检查集群健康状态", "check the cluster's health in its own console"),
}
DEFAULT_NEXT = ("在 CloudTower 集群页面查看连接错误，排除后从 CloudTower 移除该集群再用 --resume 续跑",
                "see the connection error on CloudTower's cluster page; fix it, remove the cluster from CloudTower, "
                "then continue with --resume")
# How a cluster CloudTower holds in a failed state is removed, so that a resumed run connects it anew
REMOVE_HINT = ("移除方法：CloudTower →「集群」→ 该集群 →「更多」→「移除集群」",
               "to remove it: CloudTower > Clusters > the cluster > More > Remove cluster")


class Recorder(Protocol):
    """Where a helper leaves its evidence: the step's notes and saved files (a step is one)."""

    def note(self, text: str) -> None: ...

    def save(self, name: str, data: Any) -> Any: ...


def fail_connect(cluster: dict, said: str | None = None) -> None:
    """Fail with why CloudTower cannot connect ``cluster`` (its state, ``disconnected_reason`` and, when known, what
    the connect task said: ``said``) and what to check for that ClusterConnectorErrorCode, and how to remove it."""
    reason = cluster.get("disconnected_reason") or "-"
    zh, en = REASON_NEXT.get(reason, DEFAULT_NEXT)
    told_zh, told_en = (f"；CloudTower 报告：{said}", f"; CloudTower says: {said}") if said else ("", "")
    raise AssertionError(
        f"CloudTower 无法连接集群 {cluster.get('ip')}：{cluster.get('connect_state')}（{reason}）{told_zh} / CloudTower "
        f"cannot connect the cluster at {cluster.get('ip')}: {cluster.get('connect_state')} ({reason}){told_en}\n"
        f"下一步 / next: {zh}；{REMOVE_HINT[0]} / {en}; {REMOVE_HINT[1]}")


def task_error(cloudtower: CloudTowerClient, task_id: str | None) -> str | None:
    """A CloudTower task's ``error_message`` (None: no task, none said, or it cannot be read now)."""
    from .base import ApiError

    if not task_id:
        return None
    try:
        tasks = cloudtower.tasks(id=task_id)
    except ApiError:
        return None
    return (tasks[0].get("error_message") or None) if tasks else None


def synced_cluster(cloudtower: CloudTowerClient, cluster_id: str, hosts: int, *, limit: float,
                   pacing: Pacing) -> dict:
    """The cluster ``cluster_id`` as CloudTower shows it now, once all ``hosts`` hosts are synced (``host_num`` equals
    it: never 0, never part of them), within ``limit`` guide seconds; a cluster gone or in a failed connect state
    fails at once."""
    def fetch() -> dict:
        found = cloudtower.clusters(id=cluster_id)
        if not found:
            raise AssertionError(
                f"CloudTower 中已没有集群 {cluster_id} / the cluster {cluster_id} is gone from CloudTower\n"
                f"下一步 / next: 用 --resume 续跑阶段 05 以重新关联 / continue with --resume to attach it again")
        c = found[0]
        if c.get("connect_state") in FAILED_STATES:
            raise AssertionError(
                f"集群在 CloudTower 中为 {c.get('connect_state')}（{c.get('disconnected_reason') or '-'}）/ the cluster "
                f"reads {c.get('connect_state')} ({c.get('disconnected_reason') or '-'}) in CloudTower\n"
                f"下一步 / next: 在 CloudTower 集群页面排除连接错误后用 --resume 续跑 / fix the connection on "
                f"CloudTower's cluster page, then continue with --resume")
        return c

    def synced(c: dict) -> bool:
        if (c.get("host_num") or 0) > hosts:   # more hosts than planned never becomes right by waiting
            raise AssertionError(
                f"CloudTower 中该集群有 {c.get('host_num')} 台主机，规划为 {hosts} 台 / CloudTower shows {c.get('host_num')} "
                f"hosts in the cluster; the plan has {hosts}\n下一步 / next: 核对规划表主机规划的主机行与集群实际节点 / "
                f"check the plan's host rows (主机规划) against the cluster's nodes")
        return c.get("host_num") == hosts and len(c.get("hosts") or []) == hosts

    return wait_for(fetch, synced,
                    what="CloudTower 同步主机 / host sync", interval=POLL_S, limit=limit,
                    pacing=pacing, describe=lambda c: f"host_num={c.get('host_num')} / {hosts}",
                    hint="在 CloudTower 中查看集群的主机列表；可用 --attach-timeout 放宽上限 / check the cluster's hosts in "
                         "CloudTower; --attach-timeout raises the limit")


def graphql_or_fail(call: Callable[[], T], what_zh: str, what_en: str, next_zh: str, next_en: str) -> T:
    """``call()``, a GraphQL call whose ``errors[]`` (HTTP 200) fail the step in plain words: what CloudTower said,
    what to do."""
    try:
        return call()
    except GraphQLError as exc:
        said = "; ".join(exc.messages) or exc.body[:300]
        raise AssertionError(f"{what_zh}：CloudTower 返回错误：{said} / {what_en}: CloudTower answered errors: {said}\n"
                             f"下一步 / next: {next_zh} / {next_en}") from exc


def answers(answer: Any) -> list[dict]:
    """A REST answer as its list of ``{data, task_id}`` items (an update may answer one object)."""
    return [a for a in (answer if isinstance(answer, list) else [answer]) if isinstance(a, dict)]


NEXT_TASK = ("在 CloudTower 任务中心查看该任务，排除后用 --resume 续跑",
             "check the task in CloudTower, fix the cause, then continue with --resume")


class TaskFailed(AssertionError):
    """A CloudTower task ended FAILED (its ``task`` record attached)."""

    def __init__(self, text: str, task: dict):
        super().__init__(text)
        self.task = task


def wait_task(cloudtower: CloudTowerClient, task_id: str | None, what: str, pacing: Pacing, *, limit: float = 300,
              interval: float = 2, next_step: tuple[str, str] = NEXT_TASK) -> dict:
    """Wait for one CloudTower task (None: a synchronous call, nothing to wait for): its record once SUCCESSED.
    FAILED raises :class:`TaskFailed` at once with CloudTower's reason and ``next_step``; the limit, WaitTimeout."""
    if not task_id:
        return {}

    def done(tasks: list[dict]) -> bool:
        t = tasks[0] if tasks else {}
        if t.get("status") == TASK_FAILED:
            raise TaskFailed(
                f"{what} 任务失败 / the task failed: {t.get('error_message') or t.get('description')} (task "
                f"{task_id}{', ' + t['error_code'] if t.get('error_code') else ''})\n下一步 / next: {next_step[0]} / "
                f"{next_step[1]}", t)
        return t.get("status") == TASK_OK

    tasks = wait_for(lambda: cloudtower.tasks(id=task_id), done, what=what, interval=interval, limit=limit,
                     pacing=pacing, describe=lambda ts: (ts[0].get("status") if ts else "?") or "?")
    return tasks[0]


def tasks_done(cloudtower: CloudTowerClient, items: list[dict], what: str, pacing: Pacing,
               limit: float = 300) -> None:
    """Wait for the tasks of ``[{data, task_id}]`` answers (none: synchronous); FAILED fails at once."""
    for task_id in [a.get("task_id") for a in items if isinstance(a, dict) and a.get("task_id")]:
        wait_task(cloudtower, task_id, what, pacing, limit=limit)
