"""Simulator profiles: each plausible behaviour of a real system where the vendor sources conflict or are silent.

A profile belongs to a *group* (one behaviour); every group has a default (what the simulator does when no
profile of that group is chosen). ``SMTX_SIM_PROFILE=name[,name...]`` selects profiles for a whole run (the
in-process ``--simulate`` simulator and ``python -m mocks serve`` read it when they are built); the meta-profile
``real-gear`` expands to the profiles the older tool's calls on real clusters point to. The older upload variable
``SMTX_SIM_UPLOAD_PROFILE=<upload profile>`` still works (it is ``upload-<name>`` in the unified list).

    from mocks.profiles import apply_profiles, PROFILES
    apply_profiles(sim, "sudo-nopasswd,vip-job")      # or sim = Simulator.from_plan(plan, profiles=[...])

The table, with the evidence of each choice, is in mocks/README.md ("Profiles")."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable

PROFILE_ENV = "SMTX_SIM_PROFILE"
UPLOAD_PROFILE_ENV = "SMTX_SIM_UPLOAD_PROFILE"    # older spelling for the upload group alone


@dataclass(frozen=True)
class Profile:
    name: str
    group: str
    default: bool
    summary: str
    apply: Callable[[object], None]


def _sudo(mode: str) -> Callable[[object], None]:
    def apply(sim) -> None:
        sim.family("ssh").model.host_sudo = mode
    return apply


def _vip(mode: str) -> Callable[[object], None]:
    def apply(sim) -> None:
        sim.fisheye.cluster_settings.vip_mode = mode
    return apply


def _upload(name: str) -> Callable[[object], None]:
    def apply(sim) -> None:
        sim.fisheye.upload_profile = name
    return apply


def _vds_lacp(value: str) -> Callable[[object], None]:
    def apply(sim) -> None:
        sim.fisheye.network.lacp_mode = value
    return apply


def _l2(blocked: bool | None) -> Callable[[object], None]:
    def apply(sim) -> None:
        if blocked is not None:
            sim.deployment.l2_scan_blocked = blocked
    return apply


STATUS_LAG_S = 25.0     # deploy-status-lags: simulated s after the POST before deploy_status knows the deployment
VERIFY_LAG_S = 30.0     # deploy-status-lags: simulated s after the end before deploy_verify says deployed


def _deploy_status(lags: bool) -> Callable[[object], None]:
    def apply(sim) -> None:
        sim.deployment.status_lag_s = STATUS_LAG_S if lags else 0.0
        sim.deployment.verify_lag_s = VERIFY_LAG_S if lags else 0.0
    return apply


def _installer_log(recoverable: bool) -> Callable[[object], None]:
    def apply(sim) -> None:
        sim.install.recoverable_error = recoverable
    return apply


def _tower(**values) -> Callable[[object], None]:
    """Set CloudTower model attributes on every tower, now and later (mocks.cloudtower.models.CloudTowerFamily)."""
    def apply(sim) -> None:
        sim.cloudtower.configure(**values)
    return apply


def _sync_lag(lags: bool) -> Callable[[object], None]:
    def apply(sim) -> None:
        from .cloudtower.clusters import SYNC_LAG_S
        sim.cloudtower.configure(sync_lag_s=SYNC_LAG_S if lags else 0.0)
    return apply


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("sudo-password", "sudo", True,
            "host user smartx needs its password for sudo (field notes: sudo over SSH needs a PTY, password typed)",
            _sudo("password")),
    Profile("sudo-nopasswd", "sudo", False,
            "smartx has passwordless sudo (NOPASSWD), as the older tool's `sudo -n chpasswd` needs",
            _sudo("nopasswd")),
    Profile("vip-no-job", "vip", True,
            "PUT /api/v2/settings/vip answers no job (guide lines 546-558 show none); the VIP comes up after a delay",
            _vip("no-job")),
    Profile("vip-empty-body", "vip", False,
            "as vip-no-job, but HTTP 200 with an empty body (no envelope at all)", _vip("empty-body")),
    Profile("vip-job", "vip", False,
            "PUT /api/v2/settings/vip answers {job_id} like DNS/NTP; the VIP comes up when the job is done",
            _vip("job")),
    Profile("upload-status", "upload", True,
            "a partial upload volume is visible at GET /api/v2/images/{uuid} (status uploading, to_upload)",
            _upload("status")),
    Profile("upload-listed", "upload", False,
            "as upload-status, and GET /api/v2/images lists partial volumes too", _upload("listed")),
    Profile("upload-opaque", "upload", False,
            "a partial volume is invisible (404, not listed); chunks still accepted", _upload("opaque")),
    Profile("upload-no-resume", "upload", False,
            "as upload-opaque, and only the creating session may send chunks", _upload("no-resume")),
    Profile("vds-lacp-balance-tcp", "vds-lacp", True,
            "the VDS API (POST /api/v2/network/vds) takes LACP as balance-tcp, the deploy API's value",
            _vds_lacp("balance-tcp")),
    Profile("vds-lacp-lacp", "vds-lacp", False,
            "the VDS API takes LACP as `lacp` (the older tool's value) and refuses balance-tcp", _vds_lacp("lacp")),
    Profile("l2-scan-per-plan", "l2-scan", True,
            "GET /api/v2/deployment/cluster finds every host unless the plan bonds with LACP or trunks VLANs",
            _l2(None)),
    Profile("l2-scan-empty", "l2-scan", False,
            "GET /api/v2/deployment/cluster finds nothing (LACP / VLAN sub-interfaces, field notes)", _l2(True)),
    Profile("deploy-status-prompt", "deploy-status", True,
            "deploy_status shows the deployment running from the POST on; deploy_verify is true once it ended",
            _deploy_status(False)),
    Profile("deploy-status-lags", "deploy-status", False,
            f"deploy_status knows the deployment only {STATUS_LAG_S:.0f} s after the POST (400 EDEPLOYNOTFOUND until "
            f"then) and deploy_verify turns true {VERIFY_LAG_S:.0f} s after it ended (the older tool waited 10 s "
            f"before polling and retried verify 12 x 5 s)", _deploy_status(True)),
    Profile("installer-log-clean", "installer-log", True,
            "a successful CloudTower install logs no [ERROR] line", _installer_log(False)),
    Profile("installer-log-recoverable-error", "installer-log", False,
            "a successful CloudTower install logs an [ERROR] line it recovers from (an image pull retried)",
            _installer_log(True)),
    Profile("connect-auth-refused", "connect-auth", True,
            "connect-cluster with a wrong cluster root password answers HTTP 400 ErrorBody code "
            "LOAD_CLUSTER_UNAUTHORIZED at once (CloudTower logs in to the cluster before accepting). Neither this "
            "nor connect-auth-late is in real-gear: no source shows a wrong password on real gear (the older tool "
            "only polls for states that do not exist), so the suite is run against both",
            _tower(connect_auth="refused")),
    Profile("connect-auth-late", "connect-auth", False,
            "connect-cluster with a wrong password is accepted (cluster INITIALIZING, a connect task); about 20 s "
            "later the task is FAILED (error_message, error_code LOAD_CLUSTER_UNAUTHORIZED) and the cluster "
            "CONNECTED_ERROR with disconnected_reason LOAD_CLUSTER_UNAUTHORIZED", _tower(connect_auth="late")),
    Profile("cluster-sync-prompt", "cluster-sync", True,
            "a cluster reads CONNECTED with its hosts, VDSes and VLANs already synced (host_num = the hosts)",
            _sync_lag(False)),
    Profile("cluster-sync-lags", "cluster-sync", False,
            "a cluster reads CONNECTED with host_num 0 and no hosts / VDSes / VLANs for 40 simulated s, then "
            "they show. In real-gear: the older tool guards stage 06 against host_num 0 right after the connect "
            "(\"host_count_missing\"), which only makes sense if real CloudTower reports CONNECTED before the "
            "hosts are synced", _sync_lag(True)),
    Profile("rest-bodies-strict", "rest-bodies", True,
            "REST create calls (create-datacenter, connect-cluster, ...) take only a JSON list, as the SDK sends "
            "(a bare object -> 400)", _tower(rest_bodies="strict")),
    Profile("rest-bodies-lenient", "rest-bodies", False,
            "REST create calls also take the guide's / older tool's bare object and answer it bare "
            "{data, task_id} (the older tool apparently worked that way; unverified)", _tower(rest_bodies="lenient")),
    Profile("gql-variables-400", "gql-variables", True,
            "a GraphQL request whose variables fail coercion (a storage policy or severity outside its enum, an "
            "unknown input field) answers HTTP 400 BAD_USER_INPUT (Apollo Server 3 and 5, and 4 with the opt-in "
            "status400WithErrorsAndNoData)", _tower(graphql_variable_status=400)),
    Profile("gql-variables-200", "gql-variables", False,
            "the same answers HTTP 200 {errors} without data (Apollo Server 4's default, its 'status code "
            "regression', apollo-server PR #7465); CloudTower's Apollo version is unknown", _tower(graphql_variable_status=200)),
    Profile("ct-names-free", "ct-names", True,
            "CloudTower lets monitoring views and racks share a name (a re-run that creates again duplicates them; "
            "the dashboard script checks for its views by name itself)", _tower(unique_names=False)),
    Profile("ct-names-unique", "ct-names", False,
            "create-view / create-rack-topo refuse a name already used in the cluster (HTTP 400)",
            _tower(unique_names=True)),
    Profile("topology-nodes-unplaced", "topology-default", True,
            "after the connection every host's node sits directly under the cluster topo (zone default, empty rack "
            "defrack), as ZBS's `zbs-meta topo list` shows a fresh cluster", _tower(topology_default="unplaced")),
    Profile("topology-nodes-in-bricks", "topology-default", False,
            "after the connection every node is already in its own 1U brick (named after the host) in rack defrack: "
            "topology must move or reuse bricks, not assume free nodes", _tower(topology_default="bricks")),
    Profile("gql-login-encoded-only", "gql-login", True,
            "the GraphQL login with effect {encoded: true} takes only CloudTower's encoded password (the guide's "
            "form, G L2225; the simulator knows the guide's samples); a plaintext password is refused "
            "(UNAUTHENTICATED)", _tower(gql_login_plaintext=False)),
    Profile("gql-login-plaintext-accepted", "gql-login", False,
            "the GraphQL login with effect {encoded: true} also takes the plaintext password (what the older tool "
            "sends since 2af9a9a; acceptance on real gear unknown)", _tower(gql_login_plaintext=True)),
    Profile("inspector-job-status-served", "inspector-job-status", True,
            "GET /api/inspector/api/v3/jobs/<id> answers the job with status RUNNING -> SUCCEEDED | FAILED (the "
            "older tool's guess; facts 08.2)", _tower(inspector_job_status="served")),
    Profile("inspector-job-status-absent", "inspector-job-status", False,
            "no job read: GET …/v3/jobs/<id> answers 404 (the guide documents none and exports at once); the job is "
            "seen only through the export's status", _tower(inspector_job_status="absent")),

    Profile("elf-upload-first-chunk", "elf-upload", True,
            "upload-elf-file: the first call (no upload_task_id) creates the upload task and its file part is chunk 1",
            _tower(elf_upload_first="chunk")),
    Profile("elf-upload-create-only", "elf-upload", False,
            "upload-elf-file: the first call only creates the task (INITIALIZING, current_chunk 1); its file part is "
            "ignored and chunk 1 comes with the next call", _tower(elf_upload_first="create")),
    Profile("vm-nic-ip-import", "vm-nic-ip", True,
            "the IP given at import-vm / clone-vm takes effect in the guest once VM tools run",
            _tower(vm_nic_ip="import")),
    Profile("vm-nic-ip-update", "vm-nic-ip", False,
            "the import / clone IP stays on the NIC record only; the guest takes an address only from an "
            "update-vm-nic sent after VM tools run", _tower(vm_nic_ip="update")),
    Profile("vm-delete-volumes-with-vm", "vm-delete-volumes", True,
            "delete-vm deletes the VM's volumes with it", _tower(vm_delete_volumes="with-vm")),
    Profile("vm-delete-volumes-kept", "vm-delete-volumes", False,
            "delete-vm leaves the VM's volumes, unmounted, until delete-vm-volume", _tower(vm_delete_volumes="kept")),
    Profile("vm-metric-names-guessed", "vm-metric-names", True,
            "get-vm-metrics serves all five elf_vm_disk_overall_* names the suite uses",
            _tower(vm_metric_names="guessed")),
    Profile("vm-metric-names-verified-only", "vm-metric-names", False,
            "get-vm-metrics serves only the two names the sources verify (write_speed_bps, "
            "avg_read_write_latency_ns); the others answer a stream without points",
            _tower(vm_metric_names="verified-only")),
)}

META_PROFILES: dict[str, tuple[str, ...]] = {
    # what the older tool's calls on real clusters point to (issue 12 items 3, 4 and 8), and the recoverable
    # installer [ERROR] line (item 7); defaults elsewhere
    # ... and the older tool's host_num-0 guard after the connect (cluster-sync-lags); connect-auth: no evidence
    "real-gear": ("sudo-nopasswd", "vds-lacp-lacp", "deploy-status-lags", "installer-log-recoverable-error",
                  "cluster-sync-lags"),
}


def groups() -> dict[str, list[Profile]]:
    out: dict[str, list[Profile]] = {}
    for p in PROFILES.values():
        out.setdefault(p.group, []).append(p)
    return out


def parse(spec: str | Iterable[str] | None) -> list[Profile]:
    """``"a,b"`` or ``["a", "b"]`` -> the profiles (meta-profiles expanded; a later profile of a group an
    explicit earlier one already chose is an error). ValueError names the known profiles."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else (spec or [])) if n and n.strip()]
    chosen: dict[str, Profile] = {}
    for name in names:
        for n in META_PROFILES.get(name, (name,)):
            p = PROFILES.get(n)
            if p is None:
                raise ValueError(f"unknown simulator profile {n!r}; known: {', '.join(PROFILES)}, "
                                 f"{', '.join(META_PROFILES)}")
            other = chosen.get(p.group)
            if other is not None and other.name != p.name:
                raise ValueError(f"simulator profiles {other.name!r} and {p.name!r} both choose {p.group!r}; pick one")
            chosen[p.group] = p
    return list(chosen.values())


def from_env(environ: dict | None = None) -> list[Profile]:
    """The profiles ``SMTX_SIM_PROFILE`` (and the older ``SMTX_SIM_UPLOAD_PROFILE``) select."""
    env = os.environ if environ is None else environ
    spec = [n for n in (env.get(PROFILE_ENV) or "").split(",") if n.strip()]
    upload = (env.get(UPLOAD_PROFILE_ENV) or "").strip()
    if upload:
        name = upload if upload.startswith("upload-") else f"upload-{upload}"
        if name not in PROFILES:
            raise ValueError(f"{UPLOAD_PROFILE_ENV}={upload!r}: the upload profile must be one of "
                             f"{', '.join(p.name[7:] for p in groups()['upload'])}")
        spec.append(name)
    try:
        return parse(spec)
    except ValueError as exc:
        raise ValueError(f"{PROFILE_ENV}: {exc}") from None


def apply_profiles(sim, spec: str | Iterable[str] | Iterable[Profile] | None) -> list[str]:
    """Apply the defaults of every group, then the chosen profiles; returns the active profile names."""
    items = list(spec) if spec is not None and not isinstance(spec, str) else spec
    profiles = items if items and all(isinstance(p, Profile) for p in items) else parse(items)
    chosen = {p.group: p for p in profiles}
    active = []
    for group, members in groups().items():
        p = chosen.get(group) or next(m for m in members if m.default)
        p.apply(sim)
        active.append(p.name)
    sim.profiles = active
    return active


def usage_error(environ: dict | None = None) -> str | None:
    """A one-line message when the environment names an unknown profile (None when it is fine)."""
    try:
        from_env(environ)
    except ValueError as exc:
        return f"模拟器配置（profile）无效 / bad simulator profile: {exc}"
    return None
