"""Plan checks on passwords (never quoted in a message) and the CloudTower admin password."""
from __future__ import annotations

from . import layout as L
from .check_common import (COMPONENT, HOSTS, NOT_APPLICABLE, WEAK_DEFAULT_PASSWORDS, CheckerBase, cell_ref,
                           password_classes)


class PasswordChecks(CheckerBase):
    # --- passwords -------------------------------------------------------------------------
    def passwords(self) -> None:
        p = self.plan
        cells: list[tuple[str, str | None, str, str]] = []   # ref, value (None = default used), zh, en
        raw = p.raw
        for h in p.hosts:
            for fieldname, zh, en in (("bmc_password", "带外（BMC）密码", "BMC password"),
                                      ("ssh_password", "SSH 密码", "SSH password"),
                                      ("admin_password", "管理员密码", "host admin password")):
                ref = h.ref(fieldname)
                blank = ref in raw and raw[ref] in ("", None)
                cells.append((ref, None if blank else getattr(h, fieldname),
                              f"第 {h.row} 行主机的{zh}", f"{en} of host row {h.row}"))
        cref = cell_ref(HOSTS, L.CLUSTER["admin_password"])
        cells.append((cref, None if cref in raw and raw[cref] in ("", None) else p.cluster_admin_password,
                      "集群管理员密码", "cluster admin password"))
        needed = {"cloudtower": ("web_password", "ssh_password", "sys_password"),
                  "obs": ("ssh_password", "sys_password"), "backup": ("ssh_password", "sys_password")}
        kinds = {"web_password": ("Web 管理员密码", "web admin password"),
                 "ssh_password": ("SSH 密码", "SSH password"), "sys_password": ("系统管理员密码", "system admin password")}
        for key, c in p.components.items():
            if c.ip is None:
                continue
            for fieldname in ("web_password", "ssh_password", "sys_password"):
                value = getattr(c, fieldname)
                zh, en = kinds[fieldname]
                zh, en = f"{COMPONENT[key]} {zh}", f"{COMPONENT[key]} {en}"
                ref = c.ref(fieldname)
                if fieldname in needed[key] and (value is None or value.strip() in NOT_APPLICABLE):
                    self.add("PLAN-PASSWORD-EMPTY", ref,
                             f"{zh}未填写（{COMPONENT[key]} 已规划 IP {c.ip}，需要该密码）",
                             f"{en} is empty ({COMPONENT[key]} has IP {c.ip} planned and needs it)",
                             "填写该密码", "enter this password")
                    continue
                if value is None or value.strip() in NOT_APPLICABLE:
                    continue
                cells.append((ref, value, zh, en))
        self.cloudtower_admin_password()
        for ref, value, zh, en in cells:
            reason = _weakness(value)
            if reason:
                self.add("PLAN-PASSWORD-WEAK", ref, f"{zh}强度不足：{reason[0]}", f"{en} is weak: {reason[1]}",
                         "使用至少 8 位、含大写、小写、数字、符号中至少三类且非默认值的密码",
                         "use 8+ characters from at least 3 of upper, lower, digit, symbol, not a default",
                         severity="warning")


    def cloudtower_admin_password(self) -> None:
        """CloudTower's first-run setup can only give root the fixed default password (the guide sends a
        fixed encoded value), so a planned web admin password that differs is set by hand after handover.
        The run notes the same thing at 01.plan; it is said here first, with its cell."""
        ct = self.plan.components.get("cloudtower")
        if ct is None or ct.ip is None or not ct.web_password or ct.web_password.strip() in NOT_APPLICABLE:
            return
        if ct.web_password != L.DEFAULT_PASSWORD:
            self.add("PLAN-CLOUDTOWER-ADMIN-PASSWORD", ct.ref("web_password"),
                     "CloudTower 管理员密码与默认值不同，但部署 API 只能把 root 设为默认密码",
                     "the CloudTower admin password differs from the default, which is all the deployment API "
                     "can set",
                     "交付后在 CloudTower 中手动修改为规划的密码", "change it to the planned one in CloudTower after handover",
                     severity="warning")


def _weakness(value: str | None) -> tuple[str, str] | None:
    """Why a password is weak (never quoting it), or None. None value = the documented default is used."""
    if value is None:
        return "单元格为空，将使用公开的默认密码", "the cell is blank, so the well-known default password is used"
    if value in WEAK_DEFAULT_PASSWORDS:
        return "使用的是公开的默认密码", "it is a well-known default password"
    if len(value) < 8:
        return f"长度只有 {len(value)} 位（至少 8 位）", f"only {len(value)} characters (at least 8)"
    n = password_classes(value)
    if n < 3:
        return (f"只包含 {n} 类字符（大写、小写、数字、符号中至少需要 3 类）",
                f"only {n} character class(es) (needs 3 of upper, lower, digit, symbol)")
    return None
