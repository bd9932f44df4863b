"""The global alert rules a simulated CloudTower ships with (guide §06 "获取所有报警规则").

What is verified: the guide's filter (``alert_rules_some: {}``, names not starting with ``elf_`` ``scvm_``
``vsphere_`` ``witness_`` ``zone`` ``metro_`` ``system.``, objects not ``SKS_*``) counts **94** rules (L2138);
``zbs_cluster_data_space_use_rate`` is object ``CLUSTER`` with CRITICAL 90 / NOTICE 80 and the message below
(L2098). The other names are plausible ones (many are the guide's inspection items, §08); their thresholds,
units and texts are the simulator's [inf].

Order matters: the rules are created in :data:`CATALOG` order and their ids (cuid-like, a counter after a
fixed timestamp, as CloudTower's creation-ordered cuids) sort the same way, so under ``orderBy: id_ASC`` the
target comes at position :data:`TARGET_POSITION` (1-based) of the guide's 94 -- past the first page of 50.
"""
from __future__ import annotations

TARGET = "zbs_cluster_data_space_use_rate"
TARGET_MESSAGE = "集群存储空间使用率超过 { .threshold }。 "
GUIDE_EXCLUDED_PREFIXES = ("elf_", "scvm_", "vsphere_", "witness_", "zone", "metro_", "system.")
SKS_OBJECTS = ("SKS_SERVICE", "SKS_REGISTRY", "SKS_CLUSTER", "SKS_CLUSTER_NODE", "SKS_PV", "SKS_PVC")
GUIDE_COUNT = 94

# (name, object, unit, thresholds kind); kinds: pct (NOTICE 80 / CRITICAL 90, '>'), low (NOTICE 20 / CRITICAL
# 10, '<': a remaining life, a hit ratio), bool (a yes/no rule: CRITICAL 1), ns / s / bytes / count (two levels)
_C, _H, _D, _V, _N = "CLUSTER", "PHYSICAL_HOST", "DISK", "VM", "NETWORK"
CATALOG: tuple[tuple[str, str, str, str], ...] = (
    ("cluster_cpu_usage_percent", _C, "PERCENT", "pct"),
    ("cluster_memory_usage_percent", _C, "PERCENT", "pct"),
    ("host_cpu_overall_usage_percent", _H, "PERCENT", "pct"),
    ("host_memory_usage_percent", _H, "PERCENT", "pct"),
    ("elf_vm_cpu_overall_usage_percent", _V, "PERCENT", "pct"),
    ("host_cpu_temperature_celsius", _H, "CELSIUS", "temp"),
    ("host_disk_remaining_life_percent", _D, "PERCENT", "low"),
    ("host_power_is_on", _H, "UNIT_UNSPECIFIED", "bool"),
    ("host_disk_is_healthy", _D, "UNIT_UNSPECIFIED", "bool"),
    ("host_unhealthy_disk_is_offline", _D, "UNIT_UNSPECIFIED", "bool"),
    ("elf_vm_memory_usage_percent", _V, "PERCENT", "pct"),
    ("host_service_is_running", "SYSTEM_SERVICE", "UNIT_UNSPECIFIED", "bool"),
    ("host_service_resident_memory_bytes", "SYSTEM_SERVICE", "BYTE", "bytes"),
    ("host_time_diff_with_ntp_leader_seconds", _H, "SECOND", "s"),
    ("cluster_can_sync_time_with_external_ntp_server", _C, "UNIT_UNSPECIFIED", "bool"),
    ("cluster_can_connect_to_external_ntp_server", "NTP_SERVER", "UNIT_UNSPECIFIED", "bool"),
    ("scvm_cpu_usage_percent", "SCVM", "PERCENT", "pct"),
    ("host_storage_network_can_ping", _N, "UNIT_UNSPECIFIED", "bool"),
    ("host_management_network_can_ping", _N, "UNIT_UNSPECIFIED", "bool"),
    ("host_access_network_can_ping", _N, "UNIT_UNSPECIFIED", "bool"),
    ("host_to_host_max_ping_time_ns", _N, "NANOSECOND", "ns"),
    ("host_work_status_is_unknown", _H, "UNIT_UNSPECIFIED", "bool"),
    ("host_bond_slave_is_normal", _N, "UNIT_UNSPECIFIED", "bool"),
    ("host_network_ping_packet_loss_percent_management", _N, "PERCENT", "pct"),
    ("host_network_ping_packet_loss_percent_storage", _N, "PERCENT", "pct"),
    ("vsphere_esxi_host_disconnected", "HYPERVISOR", "UNIT_UNSPECIFIED", "bool"),
    ("host_root_partition_usage_percent", _H, "PERCENT", "pct"),
    ("host_log_partition_usage_percent", _H, "PERCENT", "pct"),
    ("host_meta_partition_usage_percent", _H, "PERCENT", "pct"),
    ("host_nic_is_up", _N, "UNIT_UNSPECIFIED", "bool"),
    ("host_nic_speed_is_degraded", _N, "UNIT_UNSPECIFIED", "bool"),
    ("host_nic_rx_errors_count", _N, "UNIT_UNSPECIFIED", "count"),
    ("witness_is_reachable", "WITNESS", "UNIT_UNSPECIFIED", "bool"),
    ("host_fan_is_healthy", _H, "UNIT_UNSPECIFIED", "bool"),
    ("host_psu_is_healthy", _H, "UNIT_UNSPECIFIED", "bool"),
    ("host_ipmi_account_is_valid", _H, "UNIT_UNSPECIFIED", "bool"),
    ("host_is_in_maintenance_mode", _H, "UNIT_UNSPECIFIED", "bool"),
    ("host_load_average_per_cpu", _H, "UNIT_UNSPECIFIED", "count"),
    ("host_swap_usage_percent", _H, "PERCENT", "pct"),
    ("host_raid_is_degraded", _H, "UNIT_UNSPECIFIED", "bool"),
    ("host_sys_boot_partition_is_healthy", _H, "UNIT_UNSPECIFIED", "bool"),
    ("sks_cluster_is_unhealthy", "SKS_CLUSTER", "UNIT_UNSPECIFIED", "bool"),
    ("cluster_master_redundancy_is_enough", _C, "UNIT_UNSPECIFIED", "bool"),
    ("cluster_license_expire_days", _C, "UNIT_UNSPECIFIED", "days"),
    ("cluster_maintenance_expire_days", _C, "UNIT_UNSPECIFIED", "days"),
    ("cluster_zookeeper_is_healthy", _C, "UNIT_UNSPECIFIED", "bool"),
    ("cluster_mongo_is_healthy", _C, "UNIT_UNSPECIFIED", "bool"),
    ("zone_is_reachable", "ZBS_ZONE", "UNIT_UNSPECIFIED", "bool"),
    ("cluster_vip_is_reachable", _C, "UNIT_UNSPECIFIED", "bool"),
    ("cluster_hotfix_package_is_consistent", _C, "UNIT_UNSPECIFIED", "bool"),
    ("cluster_worker_status_is_normal", _C, "UNIT_UNSPECIFIED", "bool"),
    ("cluster_failed_job_count", _C, "UNIT_UNSPECIFIED", "count"),
    ("cluster_job_duration_seconds", _C, "SECOND", "s"),
    ("metro_data_sync_lag_seconds", _C, "SECOND", "s"),
    ("zbs_chunk_data_space_use_rate", "STORAGE_CHUNK", "PERCENT", "pct"),
    ("zbs_cluster_chunks_unsafe_failure_space", _C, "UNIT_UNSPECIFIED", "bool"),
    ("zbs_cluster_pending_migrate_bytes", _C, "BYTE", "bytes"),
    ("zbs_chunk_avg_readwrite_latency_ns", "STORAGE_CHUNK", "NANOSECOND", "ns"),
    ("zbs_chunk_connect_status", "STORAGE_CHUNK", "UNIT_UNSPECIFIED", "bool"),
    ("elf_host_ha_status", "HYPERVISOR", "UNIT_UNSPECIFIED", "bool"),
    ("zbs_chunk_maintenance_mode", "STORAGE_CHUNK", "UNIT_UNSPECIFIED", "bool"),
    ("zbs_cluster_chunks_without_topo", _C, "UNIT_UNSPECIFIED", "count"),
    ("zbs_chunk_dirty_cache_ratio", "STORAGE_CHUNK", "PERCENT", "pct"),
    ("zbs_zone_maximum_proportion_of_rack_space", _C, "PERCENT", "pct"),
    ("zbs_rack_maximum_proportion_of_brick_space", _C, "PERCENT", "pct"),
    ("zbs_cluster_recover_data_bytes", _C, "BYTE", "bytes"),
    ("zbs_cluster_dead_data_bytes", _C, "BYTE", "bytes"),
    ("system.cloudtower_disk_usage_percent", "SYSTEM_SERVICE", "PERCENT", "pct"),
    ("zbs_chunk_cache_status_is_normal", "STORAGE_CHUNK", "UNIT_UNSPECIFIED", "bool"),
    ("zbs_chunk_journal_status_is_normal", "STORAGE_CHUNK", "UNIT_UNSPECIFIED", "bool"),
    ("zbs_meta_leader_is_stable", _C, "UNIT_UNSPECIFIED", "bool"),
    ("zbs_zk_hosts_cfg_is_consistent", _C, "UNIT_UNSPECIFIED", "bool"),
    ("zbs_chunk_read_cache_hit_ratio", "STORAGE_CHUNK", "PERCENT", "low"),
    ("zbs_chunk_write_cache_hit_ratio", "STORAGE_CHUNK", "PERCENT", "low"),
    ("zbs_chunk_used_data_space_bytes", "STORAGE_CHUNK", "BYTE", "bytes"),
    ("sks_pv_capacity_use_rate", "SKS_PV", "PERCENT", "pct"),
    ("zbs_cluster_provisioned_data_space_ratio", _C, "PERCENT", "pct"),
    ("zbs_cluster_perf_space_use_rate", _C, "PERCENT", "pct"),
    ("zbs_chunk_perf_space_use_rate", "STORAGE_CHUNK", "PERCENT", "pct"),
    ("zbs_cluster_iscsi_target_is_available", _C, "UNIT_UNSPECIFIED", "bool"),
    ("zbs_lsm_manifest_size_bytes", "STORAGE_CHUNK", "BYTE", "bytes"),
    ("zbs_cluster_replica_is_degraded", _C, "UNIT_UNSPECIFIED", "bool"),
    ("zbs_cluster_ec_is_degraded", _C, "UNIT_UNSPECIFIED", "bool"),
    (TARGET, _C, "PERCENT", "pct"),
    ("disk_smart_status_is_ok", _D, "UNIT_UNSPECIFIED", "bool"),
    ("disk_io_latency_ns", _D, "NANOSECOND", "ns"),
    ("sks_cluster_node_is_not_ready", "SKS_CLUSTER_NODE", "UNIT_UNSPECIFIED", "bool"),
    ("disk_max_sectors_kb_is_consistent", _D, "UNIT_UNSPECIFIED", "bool"),
    ("disk_slot_is_removed", _D, "UNIT_UNSPECIFIED", "bool"),
    ("disk_is_offline", _D, "UNIT_UNSPECIFIED", "bool"),
    ("disk_partition_is_normal", _D, "UNIT_UNSPECIFIED", "bool"),
    ("disk_pool_capacity_use_rate", "DISK_POOL", "PERCENT", "pct"),
    ("storage_pool_capacity_use_rate", "STORAGE_POOL", "PERCENT", "pct"),
    ("vm_uuid_is_duplicate", _V, "UNIT_UNSPECIFIED", "bool"),
    ("vm_zero_page_refcount_is_abnormal", _V, "UNIT_UNSPECIFIED", "bool"),
    ("vm_without_uuid", _V, "UNIT_UNSPECIFIED", "bool"),
    ("vm_ha_failed", _V, "UNIT_UNSPECIFIED", "bool"),
    ("snapshot_plan_execute_failed", "SNAPSHOT_PLAN", "UNIT_UNSPECIFIED", "bool"),
    ("time_machine_plan_execute_failed", "TIME_MACHINE_PLAN", "UNIT_UNSPECIFIED", "bool"),
    ("sks_pvc_is_pending", "SKS_PVC", "UNIT_UNSPECIFIED", "bool"),
    ("network_packet_loss_rate", _N, "PERCENT", "pct"),
    ("network_default_gateway_is_unreachable", _N, "UNIT_UNSPECIFIED", "bool"),
    ("network_associated_nic_count_mismatch", _N, "UNIT_UNSPECIFIED", "bool"),
    ("ntp_server_is_unreachable", "NTP_SERVER", "UNIT_UNSPECIFIED", "bool"),
    ("observability_service_is_unhealthy", "OBSERVABILITY_SERVICE", "UNIT_UNSPECIFIED", "bool"),
    ("observability_connected_service_is_unhealthy", "OBSERVABILITY_CONNECTED_SYSTEM_SERVICE",
     "UNIT_UNSPECIFIED", "bool"),
    ("system_service_is_unhealthy", "SYSTEM_SERVICE", "UNIT_UNSPECIFIED", "bool"),
    ("sks_registry_is_unreachable", "SKS_REGISTRY", "UNIT_UNSPECIFIED", "bool"),
    ("sks_service_is_unhealthy", "SKS_SERVICE", "UNIT_UNSPECIFIED", "bool"),
    ("witness_network_latency_ns", "WITNESS_NETWORK", "NANOSECOND", "ns"),
    ("zone_network_latency_ns", "ZBS_ZONE", "NANOSECOND", "ns"),
    ("metro_witness_is_reachable", "WITNESS", "UNIT_UNSPECIFIED", "bool"),
    ("elf_cluster_cpu_model_is_not_recommended", _C, "UNIT_UNSPECIFIED", "bool"),
    ("elf_vm_placement_is_expired", _V, "UNIT_UNSPECIFIED", "bool"),
    ("scvm_memory_usage_percent", "SCVM", "PERCENT", "pct"),
    ("system.cloudtower_memory_usage_percent", "SYSTEM_SERVICE", "PERCENT", "pct"),
)

# kind -> (operator, [(severity, value)]) -- stored CRITICAL first, as the guide's answers list them
KINDS: dict[str, tuple[str, list[tuple[str, int]]]] = {
    "pct": (">", [("CRITICAL", 90), ("NOTICE", 80)]),
    "low": ("<", [("CRITICAL", 10), ("NOTICE", 20)]),
    "bool": ("==", [("CRITICAL", 1)]),
    "temp": (">", [("CRITICAL", 90), ("NOTICE", 80)]),
    "ns": (">", [("CRITICAL", 100_000_000), ("NOTICE", 50_000_000)]),
    "s": (">", [("CRITICAL", 10), ("NOTICE", 5)]),
    "bytes": (">", [("CRITICAL", 1 << 40), ("NOTICE", 1 << 39)]),
    "count": (">", [("CRITICAL", 100), ("NOTICE", 10)]),
    "days": ("<", [("CRITICAL", 7), ("NOTICE", 30)]),
}


def guide_filtered(name: str, obj: str) -> bool:
    """Whether the guide's globalAlertRules filter keeps a rule (``alert_rules_some`` aside)."""
    return not name.startswith(GUIDE_EXCLUDED_PREFIXES) and obj not in SKS_OBJECTS


def message(name: str) -> str:
    return TARGET_MESSAGE if name == TARGET else f"{name} 超过阈值 {{ .threshold }}。"


_kept = [n for n, o, _u, _k in CATALOG if guide_filtered(n, o)]
TARGET_POSITION = _kept.index(TARGET) + 1
assert len(_kept) == GUIDE_COUNT and TARGET_POSITION > 50, (len(_kept), TARGET_POSITION)
assert len({n for n, *_ in CATALOG}) == len(CATALOG)
