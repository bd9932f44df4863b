"""04 部署后核对版本 / After deployment: what was deployed against the versions the plan states.

SMTX OS (主机规划!C19) against the version the hosts' deployment API reports after the deploy (``version`` +
``patch_version``; the license answer of fisheye carries no version), CloudTower (集群管理信息!D3) against
``Deploy.version`` of the installed CloudTower. A difference is a warning naming the cell; the report shows
planned against deployed (plan/versions.py).
"""
from __future__ import annotations

import pytest

from clients.base import ApiError
from fixtures.outputs import Versions, Warnings
from plan import versions as V

pytestmark = pytest.mark.stage04


@pytest.mark.dependency(name="04.versions", depends=["02.deploy"], scope="session")
def test_deployed_versions_match_plan(plan, deploy_clients, cloudtower, state, step):
    """部署的版本与规划一致（不一致为警告）/ Deployed versions match the plan (else a warning)"""
    known = state.take(Versions) or Versions()
    deployed = dict(known.deployed)
    host = str(plan.hosts[0].mgmt_ip) if plan.hosts else None
    try:
        if host is not None and (version := V.host_version(deploy_clients[host].scan_host())):
            deployed["smtx_os"] = version
    except ApiError as exc:  # fall back to what the hosts said before the deploy
        step.note(f"部署后读取主机版本失败，沿用部署前扫描结果 / could not read the host version after the deploy "
                  f"({str(exc).splitlines()[0]}); using the scan before it")
        if known.hosts:
            deployed["smtx_os"] = sorted(known.hosts.values())[0]
    if state.passed("04.login"):    # CloudTower installed and answering
        try:
            if (version := cloudtower.deployed_version()):
                deployed["cloudtower"] = V.parse(version) or version
        except ApiError as exc:  # a tower without Deploy.version: noted, not failed
            step.note(f"CloudTower 未给出版本 / CloudTower did not tell its version: {str(exc).splitlines()[0]}")
    state.put(Versions(packages=known.packages, hosts=known.hosts, deployed=deployed))
    compared = 0
    for p in V.planned(plan):
        actual = deployed.get(p.key)
        if actual is None or p.version is None:
            continue
        compared += 1
        step.note(f"{p.label}: 规划 / planned {p.text} ({p.ref}); 部署 / deployed {actual}")
        if not V.same(p.version, actual):
            warning = V.mismatch(p, actual, "已部署", "what was deployed")
            step.note(warning)
            state.put((state.take(Warnings) or Warnings()).adding(warning))
    assert compared or not V.planned(plan), f"没有可比较的已部署版本 / no deployed version to compare: {deployed}"
