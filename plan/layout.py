"""The vendor workbook's cell map: where every field lives (see plan-fields.md).

This module is the single source of coordinates. The parser, the validator's
cell references, the example writer and the write-back all read from here.
"""
from __future__ import annotations

SHEET_DOC = "文档描述"
SHEET_NET = "虚拟网络"
SHEET_HOSTS = "主机规划"
SHEET_MGMT = "集群管理信息"

# Every sheet of the vendor template, in order (the example writer reproduces them).
ALL_SHEETS = (
    "更新说明", SHEET_DOC, "设计调研(内部）", "配置确认表", "逻辑拓扑图", "硬件兼容评估", "机架位置",
    SHEET_NET, SHEET_HOSTS, SHEET_MGMT, "端口开放需求(可选）", "超融合平台加固基线（可选）", "服务器端口连线(可选)",
)

# 文档描述
DOC = {"customer": "C15", "project": "C16", "datacenter": "C17"}

# 虚拟网络: one row per network; columns per field.
NET_COLS = {
    "vds": "C", "name": "D", "purpose": "E", "vlan_id": "F", "vlan_type": "G",
    "subnet": "H", "gateway": "I", "nics": "J", "bond_mode": "K",
}
NET_CLUSTER_NAME = "B3"
NET_ROW_BMC = 3
NET_ROW_MGMT = 4
NET_ROW_EXTRA_MGMT = 5        # shares C/J/K with row 4 (merged C4:C5, J4:J5, K4:K5)
NET_ROW_STORAGE = 6
NET_ROW_BACKUP = 7
NET_ROWS_BUSINESS = range(8, 19)  # C8/J8/K8 are merged down to row 18
NET_NOTE = "B23"

# 主机规划
HOST_ROWS = range(3, 19)
HOST_COLS = {
    "serial": "D", "bmc_ip": "E", "bmc_user": "F", "bmc_password": "G", "hostname": "H",
    "mgmt_ip": "I", "ssh_user": "J", "ssh_password": "K", "admin_user": "L", "admin_password": "M",
    "storage_ip": "N", "description": "O", "rack": "P", "rack_u": "Q",
}
HOSTS_CLUSTER_NAME = "C3"
CLUSTER = {
    "version": "C19", "serial": "E19", "vip": "I19", "admin_user": "L19", "admin_password": "M19",
    "feature": "O19", "storage_arch": "Q19", "network_arch": "Q20",
}

# 集群管理信息
COMPONENT_ROWS = {"cloudtower": 3, "obs": 4, "backup": 5}
COMPONENT_COLS = {
    "vm_name": "B", "version": "D", "ip": "E", "web_user": "F", "web_password": "G",
    "ssh_user": "H", "ssh_password": "I", "sys_user": "J", "sys_password": "K", "serial": "M",
}
COMPONENT_DEFAULT_NAMES = {"cloudtower": "cloudtower", "obs": "observability", "backup": "backup"}
MGMT_CLUSTER_NAME = "N3"
ER_VIP = "E6"
ER_NODES = ("E7", "E8", "E9", "E10", "E11")
ER_SERIAL = "M6"
TEST_RANGE = ("E18", "E19")
NTP_CELLS = ("E22", "E23", "E24")
DNS_CELLS = ("E25", "E26")

# Documented defaults for blank cells.
DEFAULT_PASSWORD = "HC!r0cks"
DEFAULTS = {
    "bmc_user": "ADMIN", "bmc_password": "ADMIN",
    "ssh_user": "smartx", "ssh_password": DEFAULT_PASSWORD,
    "admin_user": "root", "admin_password": DEFAULT_PASSWORD,
    "cluster_admin_user": "root", "cluster_admin_password": DEFAULT_PASSWORD,
    "customer": "SMTX-HCI", "datacenter": "SMTX-HCI-DC",
    "mgmt_network_name": "default",
}

BOND_MODES = ("active-backup", "balance-slb", "balance-tcp")
FEATURES = ("None", "RDMA", "Boost", "RDMA+Boost")
STORAGE_ARCHS = {"混闪-分层": "hybrid-tiered", "全闪-不分层": "allflash-flat"}
NETWORK_ARCHS = {"三网独立": "separate", "存储独立": "mgmt-business-shared", "三网融合": "converged"}
SUPPORTED_NETWORK_ARCHS = ("separate", "mgmt-business-shared")


def ref(sheet: str, cell: str) -> str:
    return f"{sheet}!{cell}"
