"""Observability (OBS) through CloudTower, guide §07 "部署OBS" (facts: ../shared/reference/
cloudtower-stage05-08-api-facts.md, "Stage 07a"): the GraphQL documents as the guide captured them, the OVM operator's
chunked upload, and small typed helpers so that the steps (tests_deploy/test_07a_observability.py) read like the guide.

Sessions (clients/cloudtower.py): the GraphQL calls send the ``connect.sid`` cookie (session ``"cookie"``, guide L2476);
the OVM operator calls send the fixed Basic credential **and** the cookie (session ``"ovm"``, L2255). Each logs in
again once on a 401.

**The upload** (:class:`ObsUpload`). The OVM protocol sends no chunk index or offset: the server appends each chunk
it receives and answers the cumulative ``offset``. So a chunk is never re-sent blindly (a replayed chunk corrupts the
package, facts 07a.3 and field notes): after every chunk the answered ``offset`` must equal the bytes sent; when a
chunk's answer is lost (a timeout, a dropped connection) the upload's state is read first
(``GET …/v3/chunkedUploads/<id>``, inferred: the guide documents no read; the protocol's ``:commit`` custom method is
Google-API style, whose standard Get is this) and

* offset = bytes before the chunk + its length: the server has it; go on with the next;
* offset = bytes before the chunk: it never arrived; send it again (this is no blind re-send: the state says so);
* anything else, or no state can be read: the step fails and says why (the server's copy can no longer be trusted,
  or nobody can tell), and the next run starts a new upload.

**Why not clients/upload.py's ``upload_file``.** Its ``UploadApi`` protocol is index-based: the server lists the chunk
indexes it still misses (``to_upload``), a failed chunk is retried (re-sent where the server shows no view), and the
volume is deleted and recreated once. None of that fits OVM: no index, no list of missing chunks, no delete, and a
re-send without a state read is exactly what must not happen. What does fit is reused: :class:`clients.upload.FileSlice`
(one chunk streamed from disk, flat memory) and the progress line (% / MB/s / ETA). Resume across runs keeps the
upload id in the step's intent record; the state read tells where to continue (offsets are cumulative, so any
offset can be continued); without a state, a new upload is started (the old one is noted).
"""
from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .base import MUTATION, READ, ApiError, _excerpt
from .cloudtower import CloudTowerClient
from .upload import FileSlice, UploadError, _Progress

OVM_V3 = "/api/ovm-operator/api/v3/chunkedUploads"
OVM_V1 = "/api/ovm-operator/api/v1/chunkedUploads"
CHUNK = 4 * 1024 * 1024                 # the guide's and the older tool's 4 MiB (facts 07a.3)
CHUNK_TIMEOUT_S = 120.0                 # one chunk's answer; past it the upload's state decides (never a re-send)
PACKAGE_NAME = "Observability"          # bundleApplicationPackages[].name (guide L2333)
OVM_NAME = "observability"              # updateObservabilityConnectedSystemServices' fixed ovm_name (guide L2774)
INSTANCE_DONE, INSTANCE_FAILED = "SUCCESS", {"FAILED", "ERROR", "INSTALL_FAILED"}
VM_RUNNING = "RUNNING"
# the guide's fixed VM spec (L2488: "保持 … 不变"); sizes are strings on the wire
VM_SPEC_FIXED = {"vcpu_count": 16, "memory_size_bytes": "34359738368", "storage_size_bytes": "549755813888",
                 "env_vars": {"PRODUCT_VENDOR": "SMARTX"}}
ALERTING_RULES = Path(__file__).resolve().parents[1] / "tests_deploy" / "data" / "obs_alerting_rules.json"
TASK_INSTALLATION = "Create Installation package"
TASK_APPLICATION = "Create Application package"

# The guide's documents (§07, L2325-L2774) as captured, __typename included
Q_INVENTORY = (
    "query observabilityInstanceAndApps {\n  bundleApplicationPackages {\n    id\n    name\n    version\n"
    "    arch\n    application_packages {\n      id\n      architecture\n      version\n"
    "      applications {\n        id\n        name\n        __typename\n      }\n      __typename\n    }\n"
    "    host_plugin_packages {\n      id\n      arch\n      version\n      __typename\n    }\n"
    "    __typename\n  }\n  bundleApplicationInstances {\n    id\n    name\n    status\n    application {\n"
    "      id\n      instances {\n        id\n        vm {\n          id\n          status\n"
    "          cpu_usage\n          memory_usage\n          __typename\n        }\n        __typename\n"
    "      }\n      __typename\n    }\n    vm_spec {\n      ip\n      subnet_mask\n      gateway\n"
    "      vlan_id\n      vcpu_count\n      memory_size_bytes\n      storage_size_bytes\n      __typename\n"
    "    }\n    description\n    connected_clusters {\n      id\n      name\n      status\n"
    "      migration_status\n      cluster {\n        id\n        name\n        hosts {\n          id\n"
    "          name\n          __typename\n        }\n        type\n        __typename\n      }\n"
    "      host_plugin {\n        id\n        host_plugin_instances\n        __typename\n      }\n"
    "      observability_connected_cluster {\n        id\n        traffic_enabled\n        status\n"
    "        __typename\n      }\n      __typename\n    }\n    bundle_application_package {\n      id\n"
    "      version\n      arch\n      __typename\n    }\n    health_status\n"
    "    connected_system_services {\n      id\n      type\n      tenant_id\n      system_service {\n"
    "        id\n        name\n        __typename\n      }\n      instances {\n        state\n"
    "        __typename\n      }\n      __typename\n    }\n    __typename\n  }\n"
    "  bundleApplicationConnectedClusters {\n    id\n    name\n    status\n    migration_status\n"
    "    cluster {\n      id\n      name\n      local_id\n      connect_state\n      version\n      type\n"
    "      __typename\n    }\n    bundle_application_instance {\n      id\n      name\n      status\n"
    "      health_status\n      bundle_application_package {\n        id\n        version\n"
    "        __typename\n      }\n      vm_spec {\n        ip\n        __typename\n      }\n"
    "      connected_clusters {\n        id\n        name\n        cluster {\n          id\n"
    "          local_id\n          name\n          __typename\n        }\n        host_plugin {\n"
    "          id\n          host_plugin_instances\n          __typename\n        }\n        __typename\n"
    "      }\n      __typename\n    }\n    observability_connected_cluster {\n      id\n"
    "      traffic_enabled\n      status\n      __typename\n    }\n    __typename\n  }\n}\n\n"
)
Q_CREATE_INSTANCE = (
    "mutation createBundleApplicationInstance($data: BundleApplicationInstanceCreateInput!) {\n"
    "  createBundleApplicationInstance(data: $data) {\n    id\n    __typename\n  }\n}\n\n"
)
Q_NTP = (
    ""
    "mutation updateObservabilityNtpUrl($data: NtpCommonUpdateInput!, $where: BundleApplicationInstanceWhereUniqueInput!) {\n"
    "  updateObservabilityNtpUrl(data: $data, where: $where) {\n    ntp_service_url\n    __typename\n  }\n"
    "}\n\n"
)
Q_CONNECT_CLUSTERS = (
    ""
    "mutation updateBundleApplicationInstanceConnectClusters($where: BundleApplicationInstanceWhereInput!, $data: BundleApplicationInstanceConnectClustersInput!) {\n"
    "  updateBundleApplicationInstanceConnectClusters(where: $where, data: $data) {\n    id\n    name\n"
    "    description\n    status\n    error_code\n    vm_spec {\n      ip\n      subnet_mask\n"
    "      gateway\n      vlan_id\n      vcpu_count\n      memory_size_bytes\n      storage_size_bytes\n"
    "      __typename\n    }\n    connected_clusters {\n      id\n      name\n      cluster {\n        id\n"
    "        name\n        __typename\n      }\n      __typename\n    }\n    cluster {\n      id\n"
    "      name\n      __typename\n    }\n    __typename\n  }\n}\n\n"
)
Q_SYSTEM_SERVICES = (
    ""
    "mutation updateObservabilityConnectedSystemServices($ovm_name: String!, $connected_system_services: [UpdateObservabilityConnectedSystemServiceInput!]!) {\n"
    "  updateObservabilityConnectedSystemServices(ovm_name: $ovm_name, connected_system_services: $connected_system_services) {\n"
    "    connected_system_services {\n      id\n      type\n      status\n      system_service {\n"
    "        id\n        name\n        version\n        __typename\n      }\n      instances {\n"
    "        state\n        __typename\n      }\n      __typename\n    }\n    __typename\n  }\n}\n\n"
)


# =========================================================================== GraphQL
def inventory(ct: CloudTowerClient) -> dict:
    """The guide's ``observabilityInstanceAndApps`` (variables ``{}``): packages, instances, connected clusters."""
    return ct.graphql("observabilityInstanceAndApps", Q_INVENTORY, {}, session="cookie")


def packages(inv: dict) -> list[dict]:
    return [p for p in inv.get("bundleApplicationPackages") or [] if str(p.get("name", "")).lower()
            == PACKAGE_NAME.lower()]


def package_of(inv: dict, release: str, arch: str) -> dict | None:
    """The OBS package of exactly this version (``v1.4.2-release.20250926``) and architecture, if CloudTower has it.
    Exact equality (the older tool's substring test matches 1.4.2 against 1.4.21)."""
    return next((p for p in packages(inv) if p.get("version") == release
                 and str(p.get("arch") or arch).upper() == arch.upper()), None)


def instances(inv: dict) -> list[dict]:
    return list(inv.get("bundleApplicationInstances") or [])


def instance_for(inv: dict, *, id: str | None = None, name: str | None = None, ip: str | None = None) -> dict | None:
    """The instance with this id, else the one with this name or VM IP (the same OBS, made by anyone)."""
    found = instances(inv)
    return (next((i for i in found if id and i.get("id") == id), None)
            or next((i for i in found if name and i.get("name") == name), None)
            or next((i for i in found if ip and (i.get("vm_spec") or {}).get("ip") == ip), None))


def vm_states(instance: dict) -> list[str]:
    """The states of the instance's VMs (``application.instances[].vm.status``; empty while none exists)."""
    app = instance.get("application") or {}
    return [str((i.get("vm") or {}).get("status")) for i in app.get("instances") or [] if i.get("vm")]


def describe_instance(instance: dict | None) -> str:
    if not instance:
        return "无实例 / no instance"
    return (f"status={instance.get('status')} vm={','.join(vm_states(instance)) or '-'} "
            f"health={instance.get('health_status') or '-'}")


def create_instance(ct: CloudTowerClient, data: dict) -> dict:
    answer = ct.graphql("createBundleApplicationInstance", Q_CREATE_INSTANCE, {"data": data}, mutation=True,
                        session="cookie")
    return answer.get("createBundleApplicationInstance") or {}


def set_ntp(ct: CloudTowerClient, instance_id: str, servers: list[str]) -> str:
    """``updateObservabilityNtpUrl``: sent comma-joined (the guide), answered ``;``-joined."""
    answer = ct.graphql("updateObservabilityNtpUrl", Q_NTP, {"data": {"ntp_service_url": ",".join(servers)},
                                                              "where": {"id": instance_id}},
                        mutation=True, session="cookie")
    return (answer.get("updateObservabilityNtpUrl") or {}).get("ntp_service_url") or ""


def server_set(url: str) -> set[str]:
    """NTP servers of a ``,`` or ``;`` joined answer, as a set."""
    return {s.strip() for s in re.split(r"[;,]", url or "") if s.strip()}


def connect_clusters(ct: CloudTowerClient, instance_id: str, cluster_ids: list[str]) -> dict:
    """``updateBundleApplicationInstanceConnectClusters`` with ``id_in`` (which may set the whole list: the caller
    passes every cluster that should stay connected)."""
    answer = ct.graphql("updateBundleApplicationInstanceConnectClusters", Q_CONNECT_CLUSTERS,
                        {"where": {"id": instance_id}, "data": {"connected_clusters": {"id_in": list(cluster_ids)}}},
                        mutation=True, session="cookie")
    return answer.get("updateBundleApplicationInstanceConnectClusters") or {}


def alerting_rules() -> list[dict]:
    """The guide's 22 alerting rules (L2774, kept verbatim in tests_deploy/data/obs_alerting_rules.json)."""
    return json.loads(ALERTING_RULES.read_text(encoding="utf-8"))


def cloudtower_service(cloudtower_ip: str) -> dict:
    """The guide's CloudTower system service (L2774): only the IP in ``url`` varies."""
    return {"system_service_id": "CLOUDTOWER", "system_service_name": "CloudTower", "type": "CLOUDTOWER",
            "alerting_rules": alerting_rules(),
            "instances": [{"url": f"http://{cloudtower_ip}/admin/observability/agent",
                           "info": {"service_name": "CloudTower", "vm_name": "cloudtower"}}]}


def connect_system_services(ct: CloudTowerClient, services: list[dict]) -> list[dict]:
    answer = ct.graphql("updateObservabilityConnectedSystemServices", Q_SYSTEM_SERVICES,
                        {"ovm_name": OVM_NAME, "connected_system_services": services}, mutation=True,
                        session="cookie")
    return list((answer.get("updateObservabilityConnectedSystemServices") or {}).get("connected_system_services")
                or [])


# =========================================================================== REST: VLAN and tasks
def cluster_vlan(ct: CloudTowerClient, cluster_id: str, name: str = "default") -> tuple[dict | None, list[dict]]:
    """The VM network ``name`` of **this** cluster: its VDSes (``get-vdses`` where cluster), then ``get-vlans`` of
    that name on those VDSes (never the first ``default`` CloudTower lists: every cluster has one). Returns the
    VLAN (None: not there) and every VLAN of that name CloudTower has (for the message)."""
    vdses = ct.rest("get-vdses", {"where": {"cluster": {"id": cluster_id}}}) or []
    ids = [v.get("id") for v in vdses if v.get("id")]
    everywhere = ct.rest("get-vlans", {"where": {"name": name}}) or []
    mine = ct.rest("get-vlans", {"where": {"name": name, "vds": {"id_in": ids}}}) or [] if ids else []
    mine = [v for v in mine if (v.get("vds") or {}).get("id") in ids and v.get("name") == name]
    return (mine[0] if mine else None), everywhere


def package_tasks(ct: CloudTowerClient, file_name: str, release: str) -> list[dict]:
    """The two processing tasks of an OBS package (guide L2368): ``Create Installation package <file>`` and ``Create
    Application package observability-<ARCH>-<release>.tar.gz`` (lower-case, no build suffix), any age."""
    found = ct.rest("get-tasks", {"where": {"OR": [{"description_contains": TASK_INSTALLATION},
                                                   {"description_contains": TASK_APPLICATION}]}}) or []
    return [t for t in found if task_kind(t, file_name, release)]


def task_kind(task: dict, file_name: str, release: str) -> str | None:
    """``installation`` / ``application`` for a task of this package, else None."""
    desc = str(task.get("description") or "")
    if desc == f"{TASK_INSTALLATION} {file_name}":
        return "installation"
    if desc.lower().startswith(TASK_APPLICATION.lower()) and release.lower() in desc.lower():
        return "application"
    return None


def user_id(token: str | None) -> str | None:
    """The user id a CloudTower JWT carries (its payload is the base64url of the id; the guide's ``x-user-id``)."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if raw.startswith("{"):
        try:
            claims = json.loads(raw)
        except ValueError:
            return None
        return str(claims.get("id") or claims.get("sub") or "") or None
    return raw if re.fullmatch(r"[0-9A-Za-z_-]{8,64}", raw) else None


# =========================================================================== the OVM upload
class OvmApi:
    """The OVM operator's chunked upload calls (guide L2245-L2310), Basic + cookie (session ``ovm``). Every call is
    a mutation for the retry layer (never re-sent) except the state read."""

    def __init__(self, ct: CloudTowerClient, *, chunk_timeout: float | None = None):
        self.ct, self.chunk_timeout = ct, chunk_timeout or CHUNK_TIMEOUT_S

    def init(self, file_name: str) -> dict:
        resp = self.ct.authed("POST", OVM_V3, session="ovm", json_body={"origin_file_name": file_name}, kind=MUTATION)
        body = self.ct.check(resp, hint="OBS 上传初始化失败 / the OBS upload init failed") or {}
        if not body.get("id"):
            raise UploadError(f"OBS 上传初始化响应缺少上传 ID / the OBS upload init answered no id: "
                              f"{_excerpt(resp.content)}")
        return body

    def send(self, upload_id: str, chunk: FileSlice) -> dict:
        """One chunk (multipart ``file`` + ``id``); the answer's ``offset`` is the server's cumulative size."""
        files = {"file": (chunk.name, chunk, "application/octet-stream"), "id": (None, upload_id)}
        resp = self.ct.authed("POST", OVM_V1, session="ovm", files=files, kind=MUTATION, timeout=self.chunk_timeout)
        return self.ct.check(resp, hint="OBS 分块上传失败 / an OBS chunk was refused") or {}

    def state(self, upload_id: str) -> dict | None:
        """The upload as the server sees it (offset, status), or None when the server offers no such read."""
        try:
            resp = self.ct.authed("GET", f"{OVM_V3}/{upload_id}", session="ovm", kind=READ)
        except ApiError:
            return None
        if resp.status_code in (404, 405, 501) or resp.status_code >= 400:
            return None
        try:
            body = resp.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) and "offset" in body else None

    def commit(self, upload_id: str, user: str | None) -> Any:
        headers = {"x-user-id": user} if user else None
        resp = self.ct.authed("POST", f"{OVM_V3}/{upload_id}:commit", session="ovm", json_body={}, headers=headers,
                              kind=MUTATION)
        return self.ct.check(resp, hint="OBS 上传提交失败 / the OBS upload commit failed")


@dataclass
class ObsUploadResult:
    upload_id: str
    size: int
    seconds: float = 0.0
    chunks: int = 0
    resumed_at: int | None = None             # bytes the server had when an earlier run's upload was continued
    recovered: list[str] = field(default_factory=list)   # chunks whose answer was lost, settled by a state read
    notes: list[str] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float | None:
        sent = self.size - (self.resumed_at or 0)
        return round(sent / 1e6 / self.seconds, 1) if self.seconds > 0 else None


def _offset(answer: dict) -> int | None:
    try:
        return int(str(answer.get("offset")))
    except (TypeError, ValueError):
        return None


class ObsUpload:
    """Upload ``path`` to the OVM operator, chunk by chunk, checking the cumulative offset (module docstring).

    ``record(upload_id=...)`` is called once the server gave an id, before the first chunk (the step's intent);
    ``earlier``: an upload id an interrupted run left, continued where its state says."""

    def __init__(self, api: OvmApi, path: Path, *, echo: Callable[[str], None] | None = None,
                 progress_every: float = 10.0, chunk: int = CHUNK):
        self.api, self.path, self.chunk = api, Path(path), chunk
        self.size = os.stat(self.path).st_size
        self.progress = _Progress(self.path.name, self.size, echo, progress_every)

    def run(self, *, record: Callable[..., None], earlier: str | None = None) -> ObsUploadResult:
        start = time.monotonic()
        upload_id, offset, result = self._begin(earlier, record)
        self.progress.begin(offset)
        while offset < self.size:
            offset = self.send_chunk(upload_id, offset, result)
            result.chunks += 1
            self.progress.tick(offset)
        result.seconds = time.monotonic() - start
        return result

    def _begin(self, earlier: str | None, record: Callable[..., None]) -> tuple[str, int, ObsUploadResult]:
        if earlier:
            st = self.api.state(earlier)
            at = _offset(st) if st else None
            if at is not None and 0 <= at <= self.size and str(st.get("status", "UPLOADING")).upper() in (
                    "UPLOADING", "1", ""):
                result = ObsUploadResult(earlier, self.size, resumed_at=at)
                result.notes.append(f"续传上次运行的上传 {earlier}：服务端已有 {at} 字节 / continued upload {earlier} "
                                    f"of the interrupted run at {at} bytes")
                return earlier, at, result
            note = (f"上次运行的上传 {earlier} 无法续传（服务端状态：{(st or {}).get('status', '未知 / unknown')}），"
                    f"已重新开始 / the interrupted run's upload {earlier} cannot be continued (server state: "
                    f"{(st or {}).get('status', 'unknown')}); a new upload was started")
        else:
            note = None
        upload_id = str(self.api.init(self.path.name)["id"])
        record(upload_id=upload_id)
        result = ObsUploadResult(upload_id, self.size)
        if note:
            result.notes.append(note)
        return upload_id, 0, result

    def send_chunk(self, upload_id: str, offset: int, result: ObsUploadResult) -> int:
        """Send the chunk at ``offset``; the new cumulative offset, checked. A lost answer: the state decides."""
        length = min(self.chunk, self.size - offset)
        for attempt in range(2):
            piece = FileSlice(self.path, offset, length)
            try:
                answer = self.api.send(upload_id, piece)
            except ApiError as exc:
                if exc.status is not None:      # the server answered: it refused the chunk
                    raise UploadError(f"OBS 分块（偏移 {offset}）被拒绝 / the OBS chunk at offset {offset} was refused: "
                                      f"{str(exc).splitlines()[0]}\n下一步 / next: 检查 CloudTower 的存储空间与 OVM "
                                      f"服务后用 --resume 续跑 / check CloudTower's disk and the OVM operator, then "
                                      f"continue with --resume") from exc
                got = self._settle(upload_id, offset, length, exc)
                if got == offset + length:
                    result.recovered.append(f"{offset}")
                    result.notes.append(f"偏移 {offset} 的分块应答丢失，服务端状态显示已收到，不重发 / the answer for the "
                                        f"chunk at offset {offset} was lost; the server's state shows it received: "
                                        f"not sent again")
                    return got
                if attempt == 0:                # the state says it never arrived: sending it is no replay
                    result.notes.append(f"偏移 {offset} 的分块未到达服务端（状态 offset={got}），重新发送一次 / the chunk "
                                        f"at offset {offset} never reached the server (state offset={got}); sent once "
                                        f"more")
                    continue
                raise UploadError(f"偏移 {offset} 的分块两次未到达服务端 / the chunk at offset {offset} did not reach "
                                  f"the server twice\n下一步 / next: 检查到 CloudTower 的网络后用 --resume 续跑 / check "
                                  f"the network to CloudTower, then continue with --resume") from exc
            finally:
                piece.close()
            got = _offset(answer)
            if got != offset + length:
                raise UploadError(
                    f"OBS 上传偏移不一致：已发送 {offset + length} 字节，服务端报告 {got} / the OBS upload's offset is "
                    f"off: {offset + length} bytes sent, the server says {got}: its copy of the package cannot be "
                    f"trusted (upload {upload_id})\n下一步 / next: 用 --resume 续跑（将重新开始一个新的上传）/ "
                    f"continue with --resume (a new upload is started)")
            return got
        raise AssertionError("unreachable")  # pragma: no cover

    def _settle(self, upload_id: str, offset: int, length: int, exc: ApiError) -> int:
        """After a lost answer: the server's offset, which must be before or after this chunk, nothing else."""
        st = self.api.state(upload_id)
        got = _offset(st) if st else None
        if got is None:
            raise UploadError(
                f"偏移 {offset} 的 OBS 分块应答丢失（{str(exc).splitlines()[0]}），且无法读取上传状态：不能确定服务端是否已"
                f"追加该分块，重发可能损坏安装包，因此不重发 / the answer for the OBS chunk at offset {offset} was lost "
                f"and the upload's state cannot be read: nobody can tell whether the server appended it, and a "
                f"re-send could corrupt the package, so it is not re-sent (upload {upload_id})\n"
                f"下一步 / next: 用 --resume 续跑（将重新开始一个新的上传）/ continue with --resume (a new upload is "
                f"started)") from exc
        if got not in (offset, offset + length):
            raise UploadError(
                f"偏移 {offset} 的 OBS 分块应答丢失，服务端状态 offset={got}，既不是发送前也不是发送后的大小 / the answer "
                f"for the OBS chunk at offset {offset} was lost and the server's offset is {got}: neither before "
                f"({offset}) nor after ({offset + length}) it; the server's copy cannot be trusted (upload "
                f"{upload_id})\n下一步 / next: 用 --resume 续跑（将重新开始一个新的上传）/ continue with --resume (a new "
                f"upload is started)") from exc
        return got
