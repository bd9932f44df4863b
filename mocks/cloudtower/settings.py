"""CloudTower-wide settings: the NTP servers (``updateCloudTowerNtpUrl``), the deployed trial license
(``deployedLicense``) and the warm-up window (mixed into :class:`CloudTowerModel`)."""
from __future__ import annotations

import uuid

from .errors import GqlError
from .util import cuid, is_ntp_server, iso_ms

LICENSE_TRIAL_DAYS = 90         # the guide's deployedLicense: sign 2025-09-30, expire 2025-12-29


class SettingsMixin:
    """State: ``ntp_servers``, ``started_wall``, ``warmup_until``, ``warmup_status``."""

    # ------------------------------------------------------------------ warm-up
    def set_warmup(self, seconds: float, status: int = 503) -> None:
        """From now, for ``seconds`` simulated seconds, tcp/443 accepts but answers ``status``."""
        with self.lock:
            self.warmup_until = self.clock.now() + max(0.0, float(seconds))
            self.warmup_status = int(status)

    def warming(self) -> bool:
        return self.clock.now() < self.warmup_until

    # ------------------------------------------------------------------ NTP
    def set_ntp(self, url: str) -> str:
        """``ntp_service_url`` in: servers separated by ``,``; answer (and storage): ``;``-separated."""
        if not url.strip():
            raise GqlError("ntp_service_url must list at least one NTP server (comma separated)", "BAD_USER_INPUT")
        servers = [s.strip() for s in url.split(",")]
        bad = [s for s in servers if not is_ntp_server(s)]
        if bad:
            raise GqlError(f"ntp_service_url: {', '.join(repr(b) for b in bad)} is not an IP address or host name "
                           f"(servers are separated by ',')", "BAD_USER_INPUT")
        with self.lock:
            self.ntp_servers = servers
        return ";".join(servers)

    @property
    def ntp_service_url(self) -> str:
        return ";".join(self.ntp_servers)

    # ------------------------------------------------------------------ license
    @property
    def serial(self) -> str:
        """The deployed license's serial (``deployedLicense``): stable for this IP."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://cloudtower/{self.ip}/license"))

    def license_view(self) -> dict:
        sign = self.started_wall
        return {
            "id": cuid("smtx-sim://cloudtower", self.ip, "license"),
            "license_serial": self.serial,
            "maintenance_end_date": None,
            "maintenance_start_date": None,
            "max_chunk_num": 0,
            "max_cluster_num": 0,
            "max_vm_num": 0,
            "used_vm_num": 0,
            "sign_date": iso_ms(sign),
            "expire_date": iso_ms(sign + LICENSE_TRIAL_DAYS * 86400),
            "software_edition": "ENTERPRISE",
            "type": "TRIAL",
            "vendor": "SMTX",
        }

    def deploy_view(self) -> dict:
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://cloudtower/{self.ip}/deploy")),
                "license": self.license_view(), "version": self.installed_version()}

    def installed_version(self) -> str:
        """The version that was installed here: the CloudTower ISO's (the installer model reads it from the VM's
        CD-ROM image name), else the plan's, else 4.7.1 (``Deploy.version`` of the CloudTower SDK)."""
        install = getattr(getattr(getattr(self, "smtx", None), "sim", None), "install", None)
        try:
            return install._version(self.ip) if install is not None else "4.7.1"
        except Exception:  # noqa: BLE001 - a partial simulator (unit tests) has no VMs
            return "4.7.1"
