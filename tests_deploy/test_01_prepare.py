"""01 准备阶段：校验规划表，验证网络连通性 / Stage 01: prepare — validate the plan, check connectivity."""
from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from clients.base import ApiError
from fixtures.outputs import AddressesInUse, Versions, Warnings
from plan import versions as V
from plan.render import format_table

pytestmark = [pytest.mark.stage01, pytest.mark.preflight]

NOTED_IN_REPORT = {"PLAN-CLOUDTOWER-ADMIN-PASSWORD"}   # plan warnings the report repeats as run warnings


@pytest.mark.dependency(name="01.plan", scope="session")
def test_plan_validates(run, step):
    """规划表校验无错误 / The planning workbook validates without errors"""
    step.save("findings.txt", format_table(run.findings) + "\n\n" + format_table(run.findings, "en"))
    for f in (f for f in run.findings if f.code in NOTED_IN_REPORT):      # what the handover must say
        warning = f"{f.message_zh}（{f.ref}），{f.fix_zh} / {f.message_en} ({f.ref}): {f.fix_en}"
        step.note(warning)
        run.state.put((run.state.take(Warnings) or Warnings()).adding(warning))
    errors = [f for f in run.findings if f.is_error]
    assert not errors, "规划表有错误，修正后重跑 / the plan has errors; fix them and rerun:\n" + format_table(errors)


@pytest.mark.dependency(name="01.hosts", depends=["01.plan"], scope="session")
def test_hosts_answer_deployment_api(plan, deploy_clients, state, step):
    """每台主机的部署 API 可访问 / Every host answers on the deployment API"""
    unreachable, os_versions = {}, {}
    for host in plan.hosts:
        try:
            scan = deploy_clients[str(host.mgmt_ip)].scan_host()
            step.note(f"{host.mgmt_ip}: {scan.get('product')} {scan.get('version')} {scan.get('patch_version') or ''} "
                      f"({scan.get('hostname')})")
            if (version := V.host_version(scan)) is not None:
                os_versions[str(host.mgmt_ip)] = version
        except ApiError as exc:  # every failure to answer is reported per host below (a TLS error is not one)
            unreachable[str(host.mgmt_ip)] = str(exc).splitlines()[0]
    if os_versions:   # compared with 主机规划!C19 by 01.versions
        known = state.take(Versions) or Versions()
        state.put(Versions(packages=known.packages, hosts=os_versions, deployed=known.deployed))
    assert not unreachable, "以下主机的部署 API 不可达 / hosts not answering: " + "; ".join(
        f"{ip}: {why}" for ip, why in unreachable.items())


@pytest.mark.dependency(name="01.addresses", depends=["01.plan"], scope="session")
def test_planned_addresses_are_free(plan, amap, state, step, deploy_clients):
    """VIP 与管理组件地址尚未被占用 / VIP and component addresses are not yet in use"""
    ours = set((state.take(AddressesInUse) or AddressesInUse()).addresses)
    deployed = _already_deployed(deploy_clients[str(plan.hosts[0].mgmt_ip)]) if plan.hosts else False
    candidates = {"VIP": plan.vip, **{f"{c.key} IP": c.ip for c in plan.components.values()},
                  "ER VIP": plan.er_vip}
    candidates.update({f"测试地址 / test {ip}": ip for ip in plan.test_addresses()})
    todo = [(label, str(ip)) for label, ip in candidates.items() if ip is not None and str(ip) not in ours]
    started = time.monotonic()
    in_use = [f"{label} {ip}" for (label, ip), used in zip(todo, _probe_all(amap, [ip for _, ip in todo])) if used]
    step.note(f"地址探测 {len(todo)} 个，并行 {min(PROBE_WORKERS, len(todo) or 1)} 路，用时 {time.monotonic() - started:.1f}s / "
              f"probed {len(todo)} addresses, {min(PROBE_WORKERS, len(todo) or 1)} at a time, in "
              f"{time.monotonic() - started:.1f}s")
    step.note(f"已检查 {len(candidates)} 个地址 / checked {len(candidates)} addresses; "
              f"本次运行已部署的跳过 / skipped as deployed by this run: {sorted(ours) or '-'}")
    if deployed and in_use:
        step.note("集群已部署：以下地址被占用属预期（VIP/组件），请确认属于本集群 / the cluster is already deployed: these "
                  "addresses being in use is expected (VIP, components); confirm they belong to it: " + ", ".join(in_use))
        return
    assert not in_use, ("以下规划地址已被占用，请核对规划或释放地址 / planned addresses already in use: "
                        + ", ".join(in_use))


@pytest.mark.dependency(name="01.ntp_dns", depends=["01.plan"], scope="session")
def test_ntp_and_dns_servers_answer(plan, amap, step):
    """NTP 与 DNS 服务器可达 / NTP and DNS servers answer"""
    silent = [f"NTP {s}" for s in plan.ntp if not amap.ntp_answers(s)]
    silent += [f"DNS {s}" for s in plan.dns if not amap.dns_answers(s)]
    step.note(f"NTP: {', '.join(plan.ntp)}; DNS: {', '.join(plan.dns)}")
    assert not silent, ("以下服务器无应答（UDP 探测），请检查网络或规划 / servers did not answer a UDP probe: "
                        + ", ".join(silent))


@pytest.mark.dependency(name="01.versions", depends=["01.plan"], scope="session")
def test_planned_versions_match(plan, run, packages, state, step):
    """规划版本与安装包、主机版本一致（不一致为警告）/ Planned versions match the packages and hosts (else a warning)"""
    names = package_names(run, packages)
    found = V.package_versions(names)
    known = state.take(Versions) or Versions()
    warnings, seen = [], {}
    for p in V.planned(plan):
        if p.version is None:
            warnings.append(V.unreadable(p))
            continue
        for name, version in found.get(p.key, []):
            seen[p.key] = f"{name} ({version or '?'})"
            if version is not None and not V.same(p.version, version):
                warnings.append(V.mismatch(p, version, f"安装包 {name} ", f"the package {name}"))
        if p.key == "smtx_os":
            for ip, version in sorted(known.hosts.items()):
                if not V.same(p.version, version):
                    warnings.append(V.mismatch(p, version, f"主机 {ip} ", f"host {ip}"))
        step.note(f"{p.label}: 规划 / planned {p.text} ({p.ref}); 安装包 / package: {seen.get(p.key, '-')}")
    if not names:
        step.note("未给出 --packages（或目录为空）：未与安装包比较 / no --packages (or it is empty): packages not compared")
    state.put(Versions(packages=seen, hosts=known.hosts, deployed=known.deployed))
    for w in warnings:   # a warning, never a failure: the report repeats it at the top
        step.note(w)
        state.put((state.take(Warnings) or Warnings()).adding(w))


def package_names(run, packages) -> list[str]:
    """File names in --packages; in simulate mode without it, the stand-ins the run would generate."""
    if run.packages is not None:
        return [p.name for p in run.packages.iterdir() if p.is_file()] if run.packages.is_dir() else []
    if run.simulate:
        return [name for name, _size in packages.STANDINS.values()]
    return []


PROBE_WORKERS = 32              # addresses probed at once (the plan's test range alone has up to 64)
PROBE_TIMEOUT = 1.0             # seconds per ping / TCP connect: a silent address costs at most 4 of them
PROBE_PORTS = (22, 80, 443)


def _in_use(amap, ip: str) -> bool:
    """Answers ping, or accepts on 22/80/443 -- each probe bounded by PROBE_TIMEOUT."""
    return amap.ping(ip, timeout=PROBE_TIMEOUT) or any(amap.tcp_open(ip, port, timeout=PROBE_TIMEOUT)
                                                       for port in PROBE_PORTS)


def _probe_all(amap, ips: list[str]) -> list[bool]:
    """:func:`_in_use` for every address, in parallel (bounded pool), keeping the step's context (evidence)."""
    if not ips:
        return []
    with ThreadPoolExecutor(max_workers=min(PROBE_WORKERS, len(ips)), thread_name_prefix="preflight") as pool:
        futures = [pool.submit(contextvars.copy_context().run, _in_use, amap, ip) for ip in ips]
        return [f.result() for f in futures]


def _already_deployed(api) -> bool:
    try:
        return bool(api.deploy_verify().get("is_deployed"))
    except ApiError:  # an unreachable host is reported by 01.hosts (a TLS error is not one: it stops the run)
        return False
