"""03 配置集群 / Stage 03: configure the new cluster (guide §03)."""
from __future__ import annotations

import pytest

from clients.fisheye import SvtUpload
from clients.payloads import business_vds_body, same_bond_mode
from clients.upload import StateJournal, finished_images, upload_file
from fixtures.outputs import (AddressesInUse, BusinessVds, BusinessVlans, ClusterVip, CpuCompatibility, DnsNtp, Hosts,
                              Ipmi, License, PasswordResults, RootPassword, SvtImage, Vlan)

pytestmark = pytest.mark.stage03


@pytest.mark.dependency(name="03.root_password", depends=["02.deploy"], scope="session")
def test_set_fisheye_admin_password(valid_plan, fisheye, step):
    """设置集群管理员（fisheye root）密码 / Set the cluster admin (fisheye root) password"""
    resp = fisheye.setup_root(valid_plan.cluster_admin_password)
    if resp.status_code in (200, 201):
        step.outcome(RootPassword, "已按规划设置管理员密码", "admin password set as planned")
    else:
        # Already set (a rerun, or set by hand): logging in with the plan's password is the proof.
        step.note(f"setupRoot 返回 HTTP {resp.status_code}，改用登录验证 / setupRoot answered HTTP {resp.status_code}; "
                  f"checking by logging in instead")
        step.outcome(RootPassword, "管理员密码此前已设置，规划密码可登录", "admin password was already set; the plan's works")
    # guide §03 (lines 514-545): setupRoot, then a session with the same password; the token proves the password
    assert fisheye.login(), "规划的管理员密码无法登录 / the planned admin password does not log in"


@pytest.mark.dependency(name="03.login", depends=["03.root_password"], scope="session")
def test_login(fisheye, step):
    """登录集群管理 API 获取令牌 / Log in to the cluster API (token for later steps)"""
    assert fisheye.login(), "登录未返回令牌 / login returned no token"
    step.note(f"已登录 {fisheye.address}（令牌已脱敏）/ logged in to {fisheye.address} (token redacted)")


@pytest.mark.dependency(name="03.vip", depends=["03.login"], scope="session")
def test_set_vip(valid_plan, fisheye, cluster_address, state, step, amap, pacing):
    """配置集群 VIP 并确认 VIP 可访问 / Set the cluster VIP and check it answers

    Guide lines 546-558: ``PUT /api/v2/settings/vip`` with ``{"iscsi_vip":null,"management_vip":...}`` and no answer
    shown (DNS/NTP, lines 598-614, show a ``job_id``). A job, if one comes back, is waited for; either way the VIP
    is then polled (bounded) until its 443 answers, since it comes up a little after the call."""
    vip = str(valid_plan.vip)
    current = (fisheye.get_vip() or {}).get("management_vip")
    if current == vip:
        step.note(f"VIP 已是 {vip}，未重复设置 / VIP already {vip}; not set again")
    else:
        answer = fisheye.set_vip(vip)
        if answer.get("job_id"):
            cluster_address.wait_job(answer["job_id"], "设置 VIP / set VIP")
        else:
            step.note("设置 VIP 未返回任务（与指南一致），轮询 VIP 直到应答 / no job came back (as in the guide); "
                      "polling the VIP until it answers")
    fisheye.wait_vip(vip, answers=lambda a: amap.tcp_open(a, 443, timeout=2), pacing=pacing)
    state.put(ClusterVip(vip))
    state.put((state.take(AddressesInUse) or AddressesInUse()).adding(vip))
    cluster_address.prefer_vip(vip)
    assert amap.tcp_open(vip, 443, timeout=5), f"VIP {vip}:443 无应答 / the VIP does not answer on 443"
    assert (fisheye.get_vip() or {}).get("management_vip") == vip
    assert fisheye.address == vip, "之后的调用应走 VIP / later calls should go to the VIP"


@pytest.mark.dependency(name="03.license", depends=["03.login"], scope="session")
def test_read_license_and_write_serial(fisheye, run, state, step):
    """读取许可证并回写集群序列号 / Read the license; write the cluster serial back"""
    lic = fisheye.license()
    step.save("license.json", lic)
    serial = lic.get("serial")
    assert serial, f"许可证没有序列号 / the license has no serial: {lic}"
    state.put(License.from_json(lic))
    written = run.write_serials({"cluster": serial})
    step.note(f"集群序列号已写入 / cluster serial written to: {', '.join(str(p) for p in written)}")


@pytest.mark.dependency(name="03.dns_ntp", depends=["03.login"], scope="session")
def test_dns_and_ntp(valid_plan, fisheye, cluster_address, state, step):
    """配置 DNS 与外部 NTP 并回读核对 / Set DNS and external NTP, then read them back"""
    dns, ntp = list(valid_plan.dns), list(valid_plan.ntp)
    cluster_address.wait_job(fisheye.set_dns(dns)["job_id"], "配置 DNS / set DNS")
    cluster_address.wait_job(fisheye.set_ntp(ntp)["job_id"], "配置 NTP / set NTP")
    got_dns, got_ntp = fisheye.get_dns(), fisheye.get_ntp()
    state.put(DnsNtp(got_dns, got_ntp))
    assert got_dns.get("dns_servers") == dns, f"DNS 回读不一致 / DNS read back {got_dns}, planned {dns}"
    assert got_ntp.get("ntp_servers") == ntp and got_ntp.get("ntp_mode") == "external", (
        f"NTP 回读不一致 / NTP read back {got_ntp}, planned {ntp}")


@pytest.mark.applies(lambda plan: any(h.bmc_ip is not None for h in plan.hosts),
                     "规划表未填写带外地址（主机规划 E 列）", "the plan has no BMC addresses (主机规划 column E)")
@pytest.mark.dependency(name="03.ipmi", depends=["03.login"], scope="session")
def test_ipmi_accounts(valid_plan, fisheye, state, step):
    """配置各节点 IPMI（带外）账号 / Register every node's IPMI (BMC) account"""
    hosts = state.take(Hosts) or Hosts()
    accounts = [{"node_name": h.hostname, "host": str(h.bmc_ip), "user": h.bmc_user,
                 "node_uuid": hosts.uuid(h.mgmt_ip), "password": h.bmc_password}
                for h in valid_plan.hosts if h.bmc_ip is not None]
    result = fisheye.upsert_ipmi_accounts(accounts)
    state.put(Ipmi(success=[(a.get("node_name"), a.get("host")) for a in result.get("success", [])],
                   failure=[(a.get("node_name"), a.get("host")) for a in result.get("failure", [])]))
    failed = result.get("failure") or []
    assert not failed, ("以下节点 IPMI 账号无效，请核对带外地址/账号/密码（主机规划 E/F/G 列）/ IPMI accounts failed: "
                        + ", ".join(f"{a.get('node_name')} (BMC {a.get('host')})" for a in failed))
    assert len(result.get("success") or []) == len(accounts)


@pytest.mark.applies(lambda plan: bool(plan.business), "规划表没有业务网络", "the plan has no business networks")
@pytest.mark.dependency(name="03.vds", depends=["03.login"], scope="session")
def test_business_vds(valid_plan, fisheye, cluster_address, state, step):
    """创建（或复用）业务虚拟交换机 / Create (or reuse) the business VDS"""
    if valid_plan.business_on_mgmt_vds:
        name, bond = valid_plan.mgmt.vds, valid_plan.mgmt.bond_mode
        vds = fisheye.find_vds(name)
        assert vds, f"找不到管理虚拟交换机 {name} / management VDS {name} not found"
        step.note(f"存储独立架构：业务网络放在管理交换机 {name} 上 / business networks go on the management VDS {name}")
    else:
        name, bond = valid_plan.business_vds, valid_plan.business_bond_mode
        body = business_vds_body(valid_plan, (state.take(Hosts) or Hosts()).uuid)
        vds, created = fisheye.ensure_vds(body, wait_job=cluster_address.wait_job,
                                          before_create=lambda b: step.save("vds-request.json", b))
        if not created:
            step.note(f"业务交换机 {name} 已存在，复用 / business VDS {name} exists; reused")
    detail = fisheye.get_vds(vds["uuid"])
    step.save("vds.json", detail)
    state.put(BusinessVds.from_json(detail))
    assert detail["name"] == name
    assert same_bond_mode(detail.get("bond_mode"), bond), (
        f"绑定模式 {detail.get('bond_mode')} ≠ 规划 {bond} / bond mode differs")


@pytest.mark.dependency(name="03.vlans", depends=["03.vds"], scope="session")
def test_business_vlans(valid_plan, fisheye, state, step):
    """创建业务网络并核对 vlans_count / Create the business networks; vlans_count equals the plan"""
    vds = state.take(BusinessVds)
    before = fisheye.get_vds(vds.uuid).get("vlans_count")
    existing = {(v["name"], v["vlan_id"]): v for v in fisheye.list_vlans(vds.uuid)}
    created, kept = [], []
    for net in valid_plan.business:
        key = (net.name, net.vlan_id or 0)
        if key in existing:
            kept.append(net.name)
            continue
        existing[key] = fisheye.create_vlan(vds.uuid, net.name, net.vlan_id or 0)
        created.append(net.name)
    step.note(f"新建 / created: {created or '-'}; 已存在保留 / kept: {kept or '-'}")
    planned = {(n.name, n.vlan_id or 0) for n in valid_plan.business}
    vlans = [v for v in fisheye.list_vlans(vds.uuid) if (v["name"], v["vlan_id"]) in planned]
    state.put(BusinessVlans([Vlan(v["name"], v["vlan_id"], v.get("uuid")) for v in vlans]))
    assert len(vlans) == len(planned), f"业务网络缺失 / missing networks: {planned - {(v['name'], v['vlan_id']) for v in vlans}}"
    # guide lines 884-901: vlans_count against the plan's business networks. On a shared management VDS (存储独立) it
    # counts the system networks too (mgt-network, default): what was there before plus what this step created.
    count = fisheye.get_vds(vds.uuid).get("vlans_count")
    assert count == before + len(created), (
        f"vlans_count={count}，之前 {before} 个 + 新建业务网络 {len(created)} 个 / expected {before} before + "
        f"{len(created)} created (planned business networks: {len(planned)})")


@pytest.mark.dependency(name="03.mgmt_network", depends=["03.login"], scope="session")
def test_extra_mgmt_network(valid_plan, fisheye, step):
    """创建管理组件网络（虚拟网络第 5 行）/ Create the extra management network (虚拟网络 row 5) for CloudTower & co.

    Created as the business networks are (guide lines 844-869), on the management VDS the row shares with row 4;
    04.vm puts the CloudTower VM on it when its IP is in that network."""
    net = valid_plan.extra_mgmt
    if not net.used:
        step.note("规划表没有管理组件网络，CloudTower 使用管理交换机上的虚拟机网络 / no extra management network planned: "
                  "CloudTower goes on the management VDS's VM network")
        return
    vds = fisheye.find_vds(valid_plan.mgmt.vds)
    assert vds, f"找不到管理虚拟交换机 {valid_plan.mgmt.vds} / management VDS {valid_plan.mgmt.vds} not found"
    if any(v.get("name") == net.name for v in fisheye.list_vlans(vds["uuid"])):
        step.note(f"{net.name} 已存在，保留 / {net.name} exists; kept")
    else:
        fisheye.create_vlan(vds["uuid"], net.name, net.vlan_id or 0)
        step.note(f"已在 {vds['name']} 上创建 {net.name}（VLAN {net.vlan_id or 0}）/ created on {vds['name']}")
    found = [v for v in fisheye.list_vlans(vds["uuid"]) if v.get("name") == net.name]
    assert found and found[0].get("vlan_id") == (net.vlan_id or 0), (
        f"{net.name} 未按规划创建 / {net.name} is not there as planned (VLAN {net.vlan_id or 0}): {found}")


@pytest.mark.dependency(name="03.host_passwords", depends=["02.deploy"], scope="session")
def test_host_passwords(valid_plan, ssh, state, step):
    """通过 SSH 把各主机 root/smartx 密码改为规划值 / Set every host's root and smartx passwords over SSH"""
    results = step.map(lambda h: ssh.set_host_passwords(h), valid_plan.hosts)
    state.put(PasswordResults({str(h.mgmt_ip): r for h, r in zip(valid_plan.hosts, results)}))
    for h, r in zip(valid_plan.hosts, results):
        step.note(f"{h.hostname} ({h.mgmt_ip}): {r}")
    assert all(r in ("changed", "already") for r in results)


@pytest.mark.dependency(name="03.svt", depends=["03.login"], scope="session")
def test_upload_vmtools_iso(fisheye, packages, state, step, pacing):
    """上传虚拟机工具镜像（SVT）/ Upload the VM tools ISO (SVT)"""
    iso = packages.find("SMTX_VMTOOLS-*.iso")
    same = finished_images(fisheye.list_images(), iso.name, iso.stat().st_size)
    if same:
        state.put(SvtImage(name=iso.name, size=same[0]["size"], image_uuid=same[0].get("uuid"),
                           image_path=same[0].get("path"), reused=True))
        step.note(f"{iso.name} 已在集群中（{same[0].get('uuid')}），未重复上传 / already on the cluster; not uploaded again")
        return
    # the volume is recorded before its first chunk: a killed run continues it (clients/upload.py)
    result = upload_file(iso, SvtUpload(fisheye), echo=pacing.echo, journal=StateJournal(state, "svt_upload"))
    for n in result.notes:
        step.note(n)
    state.put(SvtImage(name=iso.name, size=result.size, image_uuid=result.volume.get("image_uuid"),
                       image_path=result.volume.get("image_path"), **SvtImage.figures(result)))
    step.note(f"{iso.name}: {result.size} 字节 / bytes, {result.mb_per_s:.1f} MB/s")
    listed = finished_images(fisheye.list_images(), iso.name, iso.stat().st_size)   # as 04.iso_upload checks
    assert any(i.get("uuid") == result.volume.get("image_uuid") for i in listed), (
        f"上传后镜像列表中没有 {iso.name}（{result.volume.get('image_uuid')}）/ {iso.name} is not listed after the upload: "
        f"{[(i.get('name'), i.get('uuid')) for i in listed] or '-'}")


@pytest.mark.dependency(name="03.cpu", depends=["03.login"], scope="session")
def test_cpu_compatibility(fisheye, state, step):
    """配置集群 CPU 兼容性为推荐型号 / Set the cluster CPU compatibility to the recommended model"""
    models = fisheye.recommended_cpu_models()
    assert models, "集群没有推荐的 CPU 型号 / the cluster recommends no CPU model"
    if fisheye.cpu_model() != models[0]:
        fisheye.set_cpu_model(models[0])
    got = fisheye.cpu_model()
    state.put(CpuCompatibility(got))
    assert got == models[0], f"CPU 兼容性 {got} ≠ 推荐 {models[0]} / CPU compatibility differs from the recommended"

