"""Cluster settings: VIP, DNS, NTP (each changed by a job), license; the CPU model lives in
``settings["cpu_model"]`` (:mod:`.cpu`)."""
from __future__ import annotations

import ipaddress
import uuid
from typing import Any, Callable

from clients.ipaddr import ipv4, is_ip

from .cluster import HOSTNAME_RE, ClusterContext
from .errors import invalid
from .jobs import Job, JobBoard


def default_settings() -> dict[str, Any]:
    return {"management_vip": None, "iscsi_vip": None, "dns_servers": [], "ntp_mode": "internal",
            "ntp_servers": [], "cpu_model": None}


def _ntp_servers(value: Any) -> list[str]:
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    return list(value or [])


VIP_DELAY_S = 20.0          # simulated seconds between PUT /api/v2/settings/vip and the VIP answering (vip-no-job)


class Settings:
    """``settings`` (a dict: VIP, DNS, NTP, CPU model) and the jobs that change it."""

    def __init__(self, ctx: ClusterContext, jobs: JobBoard):
        self.ctx = ctx
        self.jobs = jobs
        self.settings: dict[str, Any] = default_settings()
        # PUT /api/v2/settings/vip (profiles vip-no-job / vip-job, mocks/profiles.py): "no-job" is the guide's
        # (lines 546-558 show the request and no answer body): {} back, the VIP applied vip_delay_s later;
        # "job" answers {job_id} like DNS/NTP and applies when the job is done
        self.vip_mode = "no-job"
        self.vip_delay_s = VIP_DELAY_S
        jobs.on("vip", self._apply_vip)
        jobs.on("dns", self._apply_dns)
        jobs.on("ntp", self._apply_ntp)

    def seed(self, payload: dict) -> None:
        """DNS and NTP as the deployment payload set them."""
        ntp = payload.get("ntp") or {}
        self.settings.update(dns_servers=list(payload.get("dns_server") or []),
                             ntp_mode=ntp.get("mode") or "internal", ntp_servers=_ntp_servers(ntp.get("ntp_server")))

    # ---- VIP
    def vip(self) -> dict:
        return {"iscsi_vip": self.settings.get("iscsi_vip"), "management_vip": self.settings.get("management_vip")}

    def _check_vip(self, value: Any) -> str:
        ip = ipv4(value)
        if ip is None:
            raise invalid(f"management_vip {value!r} is not an IPv4 address")
        cluster = self.ctx.cluster or {}
        if cluster.get("mgmt_subnet"):
            net = ipaddress.IPv4Network(cluster["mgmt_subnet"])
            if ip not in net or ip in (net.network_address, net.broadcast_address):
                raise invalid(f"management_vip {ip} is not a host address of the management network {net}")
        for h in self.ctx.cluster_hosts():
            if str(ip) in (h.mgmt_ip, h.storage_ip):
                raise invalid(f"management_vip {ip} is already used by host {h.hostname} ({h.mgmt_ip})")
        if str(ip) == cluster.get("gateway"):
            raise invalid(f"management_vip {ip} is the management gateway")
        return str(ip)

    def set_vip(self, management_vip: str | None, iscsi_vip: str | None = None, *, outcome: str | None = None,
                outcome_msg: str | None = None, rule: str | None = None) -> dict:
        new = self._check_vip(management_vip) if management_vip is not None else None
        iscsi = iscsi_vip
        if iscsi is not None:
            if ipv4(iscsi) is None:
                raise invalid(f"iscsi_vip {iscsi!r} is not an IPv4 address")
            iscsi = str(ipv4(iscsi))
        with self.ctx.lock:
            job = self.jobs.new("SETTINGS_UPDATE_VIP", "UPDATE_VIP", "vip", {"management_vip": new, "iscsi_vip": iscsi},
                                outcome=outcome, outcome_msg=outcome_msg, rule=rule,
                                message=(f"更新集群虚拟 IP 为 {new}。\n", f"Updated cluster VIP to {new}.\n"),
                                data={"management_vip": new, "iscsi_vip": iscsi})
            if self.vip_mode != "job":             # the guide's: no job to poll; the change lands a little later
                job.pending_s, job.running_s = 0.0, float(self.vip_delay_s)
                return {}
        return {"job_id": job.job_id}

    def _apply_vip(self, job: Job) -> Callable[[], None] | None:
        old, new = self.settings.get("management_vip"), job.args.get("management_vip")
        self.settings["management_vip"], self.settings["iscsi_vip"] = new, job.args.get("iscsi_vip")
        if old != new:
            return lambda: self.ctx.events.emit("vip_changed", old=old, new=new)
        return None

    # ---- DNS
    def dns(self) -> dict:
        return {"dns_servers": list(self.settings["dns_servers"])}

    def set_dns(self, dns_servers: list[str], *, outcome: str | None = None, outcome_msg: str | None = None,
                rule: str | None = None) -> dict:
        if not dns_servers:
            raise invalid("dns_servers needs at least one DNS server")
        for s in dns_servers:
            if not is_ip(s):
                raise invalid(f"DNS server {s!r} is not an IP address (DNS servers must be IPs)")
        servers = [str(ipaddress.ip_address(s.strip())) for s in dns_servers]
        with self.ctx.lock:
            job = self.jobs.new("SETTINGS_UPDATE_DNS", "UPDATE_DNS", "dns", {"dns_servers": servers},
                                outcome=outcome, outcome_msg=outcome_msg, rule=rule,
                                message=("更新 DNS 服务器。\n", "Updated DNS servers.\n"),
                                detail=("DNS 服务器: " + ", ".join(servers) + "\n",
                                        "DNS servers: " + ", ".join(servers) + "\n"),
                                data={"dns_servers": servers})
        return {"job_id": job.job_id}

    def _apply_dns(self, job: Job) -> None:
        self.settings["dns_servers"] = list(job.args["dns_servers"])

    # ---- NTP
    def ntp(self) -> dict:
        return {"ntp_mode": self.settings["ntp_mode"], "ntp_servers": list(self.settings["ntp_servers"])}

    def set_ntp(self, ntp_mode: Any, ntp_servers: list[str], *, outcome: str | None = None,
                outcome_msg: str | None = None, rule: str | None = None) -> dict:
        if ntp_mode not in ("internal", "external"):
            raise invalid(f"ntp_mode {ntp_mode!r} must be 'internal' or 'external'")
        if ntp_mode == "external" and not ntp_servers:
            raise invalid("ntp_servers needs at least one server when ntp_mode is 'external'")
        out = [_ntp_server(s) for s in ntp_servers]
        with self.ctx.lock:
            job = self.jobs.new("SETTINGS_UPDATE_NTP", "UPDATE_NTP", "ntp", {"ntp_mode": ntp_mode, "ntp_servers": out},
                                outcome=outcome, outcome_msg=outcome_msg, rule=rule,
                                message=("更新 NTP 服务器。\n", "Updated NTP servers.\n"),
                                detail=("NTP 服务器: " + ", ".join(out) + "\n", "NTP servers: " + ", ".join(out) + "\n"),
                                data={"ntp_mode": ntp_mode, "ntp_servers": out})
        return {"job_id": job.job_id}

    def _apply_ntp(self, job: Job) -> None:
        self.settings["ntp_mode"], self.settings["ntp_servers"] = job.args["ntp_mode"], list(job.args["ntp_servers"])

    # ---- license
    def license(self) -> dict:
        cluster = self.ctx.cluster
        return {
            "serial": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://cluster/{self.ctx.cluster_name}")),
            "software_edition": "ENTERPRISE",
            "max_chunk_num": 255,
            "max_physical_data_capacity": 0,
            "max_physical_data_capacity_per_node": 140737488355328,
            "license_capabilities": {"has_metrox": True, "has_remote_backup": True},
            "license_type": "TRIAL",
            "vendor": "SMTX",
            "maintenance_start_date": 0,
            "maintenance_period": 0,
            "sign_date": int(cluster["activated_wall"]) if cluster else 0,
            "platform": 15,
            "mode": "HCI",
            "period": 2592000,
            "pricing_type": "PRICING_TYPE_UNKNOWN",
        }


def _ntp_server(s: Any) -> str:
    if is_ip(s):
        return str(ipaddress.ip_address(s.strip()))
    if isinstance(s, str) and HOSTNAME_RE.match(s.strip()):
        return s.strip().rstrip(".")
    raise invalid(f"NTP server {s!r} is neither an IP address nor a host name")
