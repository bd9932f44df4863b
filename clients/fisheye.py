"""SMTX OS cluster management API after deployment (fisheye, guide §03).

v3 endpoints (users:setupRoot, sessions) answer plain objects; v2 endpoints answer the
{data, ec, error} envelope and need the session token in ``x-smartx-token``. A 401
(expired or revoked token) triggers exactly one re-login, then the request is retried.
"""
from __future__ import annotations

from typing import Any, Callable

import httpx

from .base import ApiError, EnvelopeClient, _excerpt
from .payloads import other_lacp_word
from .redact import REDACTOR

# Cluster jobs (GET /api/v2/jobs/{id}), as the guide polls them.
JOB_OK = {"done"}                  # the guide: a job ends done (its VDS job sample, lines 760-800)
JOB_FAILED = {"failed", "error", "aborted"}    # every failure word fails the wait at once, never polled to the limit
JOB_END = JOB_OK | JOB_FAILED
JOB_POLL_INTERVAL = 2              # seconds between polls
JOB_POLL_LIMIT = 10 * 60           # a job still running after this is reported as timed out
VIP_POLL_INTERVAL = 3              # seconds between checks that the VIP answers after PUT settings/vip
VIP_LIMIT = 5 * 60                 # the VIP not answering after this fails the step


class FisheyeClient(EnvelopeClient):
    family = "fisheye"
    default_hint = "检查集群管理服务（fisheye）状态与网络 / check the cluster management service (fisheye) and network"

    def __init__(self, address: str, *, username: str, password: str, **kw):
        self.address = str(address)
        self.username, self._password = username, password
        self.token: str | None = None
        self.relogins = 0
        REDACTOR.add(password)
        super().__init__(f"https://{self.address}", **kw)  # httpx sets JSON or multipart per request

    def use_address(self, address: str) -> None:
        """Point at another address of the same cluster (the VIP, or a host when the VIP is silent)."""
        self.address = str(address)
        self.base_url = f"https://{self.address}"

    # --- session --------------------------------------------------------
    def setup_root(self, password: str) -> httpx.Response:
        """POST /api/v3/users:setupRoot; returns the raw response (already-set is for the caller to judge)."""
        return self.request("POST", "/api/v3/users:setupRoot",
                            json_body={"password": password, "repeat": password, "encrypted": False})

    def login(self) -> str:
        resp = self.request("POST", "/api/v3/sessions", json_body={
            "username": self.username, "password": self._password, "encrypted": False})
        body = self.check(resp, hint="登录失败：核对规划表 主机规划!L19/M19 的集群管理员账号密码 / login failed: check the "
                                     "cluster admin user and password (主机规划!L19/M19)")
        token = (body or {}).get("token")
        if not token:
            raise ApiError("POST", self.url("/api/v3/sessions"), resp.status_code, _excerpt(resp.content),
                           "登录响应没有 token / the login answer has no token")
        REDACTOR.add(token)
        self.token = token
        self.http.headers["x-smartx-token"] = token
        return token

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        if self.token is None and path.startswith("/api/v2/"):
            self.login()  # e.g. a resumed run whose login step passed earlier
        resp = super().request(method, path, **kw)
        if resp.status_code == 401 and self.token is not None and not path.startswith("/api/v3/sessions"):
            self.relogins += 1
            self.login()
            resp = super().request(method, path, **kw)
        return resp

    # --- settings ---------------------------------------------------------
    def set_vip(self, vip: str) -> dict:
        """PUT /api/v2/settings/vip (guide lines 546-558: the request, and no answer body shown). Returns the
        answer's ``data`` ({} when there is none; ``{"job_id"}`` where the API answers a job): the caller
        waits for the job if any, then for the VIP to answer (:func:`wait_vip`)."""
        resp = self.request("PUT", "/api/v2/settings/vip", json_body={"iscsi_vip": None, "management_vip": vip},
                            idempotent=True)
        body = self.check(resp)
        if body is None:                              # HTTP 2xx without a body: nothing to read
            return {}
        if not isinstance(body, dict) or body.get("ec", "EOK") != "EOK":
            raise ApiError("PUT", self.logical_url(resp), resp.status_code, _excerpt(resp.content),
                           "设置 VIP 被拒绝 / setting the VIP was refused", ec=body.get("ec") if isinstance(body, dict)
                           else None)
        data = body.get("data") if "ec" in body else body
        return data if isinstance(data, dict) else {}

    def wait_vip(self, vip: str, *, answers: Callable[[str], bool], pacing, interval: float = VIP_POLL_INTERVAL,
                 limit: float = VIP_LIMIT) -> None:
        """Bounded poll until the cluster reports the VIP (``GET /api/v2/settings/vip`` on the current address) and
        the VIP answers (``answers(vip)``: e.g. its 443 accepts a connection), whether or not the PUT gave a job: the
        guide shows no answer for it, and the VIP takes a moment to move."""
        from .poll import wait_for

        def look() -> tuple[object, bool]:
            try:
                reported = (self.get_vip() or {}).get("management_vip")
            except ApiError as exc:                   # e.g. the address moved under us: keep polling
                reported = f"({exc.status})"
            return reported, reported == vip and answers(vip)

        wait_for(look, lambda r: r[1], what=f"VIP {vip} 生效 / the VIP {vip} to answer", interval=interval,
                 limit=limit, pacing=pacing, describe=lambda r: f"management_vip={r[0]}; " + (
                     "443 已应答 / 443 answers" if r[1] else "443 无应答 / 443 not answering yet"),
                 hint="检查 VIP 是否与管理网同网段、未被占用，集群管理服务是否正常 / check that the VIP is in the management "
                      "subnet and unused, and that the cluster management service is healthy")

    def get_vip(self) -> Any:
        return self.call("GET", "/api/v2/settings/vip")

    def license(self) -> dict:
        return self.call("GET", "/api/v2/tools/license")

    def set_dns(self, servers: list[str]) -> dict:
        return self.call("PUT", "/api/v2/settings/dns", json_body={"dns_servers": servers}, idempotent=True)

    def get_dns(self) -> dict:
        return self.call("GET", "/api/v2/settings/dns")

    def set_ntp(self, servers: list[str]) -> dict:
        return self.call("PUT", "/api/v2/settings/ntp", json_body={"ntp_mode": "external", "ntp_servers": servers},
                         idempotent=True)

    def get_ntp(self) -> dict:
        return self.call("GET", "/api/v2/settings/ntp")

    def job(self, job_id: str) -> dict:
        return (self.call("GET", f"/api/v2/jobs/{job_id}") or {}).get("job") or {}

    def wait_job(self, job_id: str, what: str, pacing=None) -> dict:
        """Poll ``GET /api/v2/jobs/{id}`` until the job ends (done or a failure word); returns it as it ended."""
        from .poll import wait_for

        return wait_for(lambda: self.job(job_id), lambda j: j.get("state") in JOB_END, what=what,
                        interval=JOB_POLL_INTERVAL, limit=JOB_POLL_LIMIT, pacing=pacing,
                        describe=lambda j: f"job {job_id} {j.get('state')}")

    # --- IPMI, network ------------------------------------------------------
    def upsert_ipmi_accounts(self, accounts: list[dict]) -> dict:
        return self.call("POST", "/api/v2/ipmi/upsert_accounts", json_body={"accounts": accounts}, idempotent=True)

    def list_vds(self) -> list[dict]:
        return self.call("GET", "/api/v2/network/vds") or []

    def get_vds(self, uuid: str) -> dict:
        return self.call("GET", f"/api/v2/network/vds/{uuid}")

    def create_vds(self, body: dict) -> dict:
        return self.call("POST", "/api/v2/network/vds", json_body=body)

    def find_vds(self, name: str) -> dict | None:
        return next((v for v in self.list_vds() if v.get("name") == name), None)

    def ensure_vds(self, body: dict, *, wait_job: Callable[[str, str], dict],
                   before_create: Callable[[dict], Any] | None = None) -> tuple[dict, bool]:
        """The VDS named ``body["name"]``: found, or created from ``body`` (guide §03). Returns it and whether
        it was created now. ``wait_job(job_id, what)`` waits for the creation job and returns it ended;
        ``before_create(body)`` runs just before the create call (e.g. to keep the request as evidence)."""
        name = body["name"]
        found = self.find_vds(name)
        if found:
            return found, False
        if before_create:
            before_create(body)
        try:
            answer = self.create_vds(body)
        except ApiError as exc:
            other = other_lacp_word(body.get("bond_mode"))
            if not (other and exc.status == 400 and "bond_mode" in exc.body):
                raise
            # LACP's word for this API is ambiguous (clients.payloads.LACP_MODES): refused -> nothing was created
            body = {**body, "bond_mode": other}
            if before_create:
                before_create(body)
            answer = self.create_vds(body)
        job = wait_job(answer["job_id"], f"创建业务交换机 {name} / create VDS")
        created = [r for r in (job.get("resources") or {}).values() if r.get("type") == "NETWORK_VDS"]
        if not created:
            raise AssertionError(f"任务结果中没有 VDS / the job's resources hold no VDS: {job.get('resources')}")
        return created[0], True

    def list_vlans(self, vds_uuid: str) -> list[dict]:
        return self.call("GET", f"/api/v2/network/vds/{vds_uuid}/vlans") or []

    def create_vlan(self, vds_uuid: str, name: str, vlan_id: int) -> dict:
        return self.call("POST", f"/api/v2/network/vds/{vds_uuid}/vlans",
                         json_body={"name": name, "vlan_id": vlan_id, "vds_uuid": vds_uuid})

    # --- CPU compatibility --------------------------------------------------
    def recommended_cpu_models(self) -> list[str]:
        return (self.call("GET", "/api/v2/elf/cluster_recommended_cpu_models") or {}).get("cpu_models") or []

    def set_cpu_model(self, model: str) -> Any:
        return self.call("PUT", "/api/v2/elf/cluster_cpu_compatibility", json_body={"cpu_model": model},
                         idempotent=True)

    def cpu_model(self) -> str | None:
        return (self.call("GET", "/api/v2/elf/cluster_cpu_compatibility") or {}).get("cpu_model")

    # --- SVT image upload (see clients/upload.py) ---------------------------
    def svt_create_volume(self, name: str, size: int) -> dict:
        return self.call("POST", "/api/v2/svt_image/create_volume", params={"name": name, "size": size})

    def svt_upload_chunk(self, volume: dict, chunk_num: int, chunk) -> dict:
        return self.call("POST", "/api/v2/svt_image/upload_template",
                         params={"zbs_volume_id": volume["zbs_volume_id"], "chunk_num": chunk_num,
                                 "image_uuid": volume["image_uuid"]},
                         files={"file": (chunk.name, chunk, "application/octet-stream")}, timeout=300)

    # --- ISO upload and VMs (guide §04) -----------------------------------------
    def iso_create_volume(self, name: str, size: int, description: str = "") -> dict:
        return self.call("POST", "/api/v2/images/upload/volume", params={
            "name": name, "size": size, "device": "nfs", "description": description, "task_id": 2})

    def iso_upload_chunk(self, volume: dict, chunk_num: int, chunk) -> dict:
        return self.call("POST", "/api/v2/images/upload",
                         params={"zbs_volume_id": volume["zbs_volume_id"], "chunk_num": chunk_num,
                                 "image_uuid": volume["image_uuid"]},
                         files={"file": (chunk.name, chunk, "application/octet-stream")}, timeout=300)

    def storage_policies(self) -> list[dict]:
        data = self.call("GET", "/api/v2/storage_policies")
        return data.get("storage_policies", data) if isinstance(data, dict) else (data or [])

    def list_vms(self) -> list[dict]:
        data = self.call("GET", "/api/v2/vms")
        return data.get("vms", data) if isinstance(data, dict) else (data or [])

    def create_vm(self, body: dict) -> dict:
        return self.call("POST", "/api/v2/vms", json_body=body)

    def get_vm(self, uuid: str) -> dict:
        return self.call("GET", f"/api/v2/vms/{uuid}")

    def update_vm(self, uuid: str, body: dict) -> dict:
        return self.call("PUT", f"/api/v2/vms/{uuid}", json_body=body)

    def list_images(self) -> list[dict]:
        return (self.call("GET", "/api/v2/images") or {}).get("images") or []

    def delete_image(self, image_uuid: str) -> Any:
        return self.call("DELETE", f"/api/v2/images/{image_uuid}", idempotent=True)

    def get_image(self, image_uuid: str) -> dict:
        return self.call("GET", f"/api/v2/images/{image_uuid}")


class SvtUpload:
    """The SVT flavour of the upload API (guide §03) for clients.upload.upload_file."""

    def __init__(self, fisheye: FisheyeClient):
        self.fisheye = fisheye

    def create(self, name: str, size: int) -> dict:
        return self.fisheye.svt_create_volume(name, size)

    def send(self, volume: dict, num: int, chunk) -> dict:
        return self.fisheye.svt_upload_chunk(volume, num, chunk)

    def delete(self, volume: dict) -> None:
        try:
            self.fisheye.delete_image(volume["image_uuid"])
        except ApiError:
            pass  # the volume may never have been registered; recreating it goes ahead

    # resume (clients.upload): the server's view of a partial volume, and partial volumes it lists
    image_type = "SVT_IMAGE"

    def status(self, volume: dict) -> dict | None:
        try:
            return self.fisheye.get_image(volume["image_uuid"])
        except ApiError as exc:
            if exc.status == 404:
                return None      # gone, or the API shows no volume still uploading
            raise

    def partials(self, name: str) -> list[dict]:
        return [i for i in self.fisheye.list_images()
                if i.get("name") == name and i.get("type") in (None, self.image_type)]


class IsoUpload(SvtUpload):
    """The ISO flavour of the upload API (guide §04): upload volume (nfs), chunks, delete."""

    image_type = "ISO_IMAGE"

    def create(self, name: str, size: int) -> dict:
        return self.fisheye.iso_create_volume(name, size, description="cloudtower os image")

    def send(self, volume: dict, num: int, chunk) -> dict:
        return self.fisheye.iso_upload_chunk(volume, num, chunk)


def job_failure(job: dict) -> str:
    """A failed job's reason in plain words: the vendor's message, not the record it sits in."""
    err = job.get("error") or job.get("message") or job.get("msg")
    if isinstance(err, dict):
        err = err.get("msg") or err.get("message") or err.get("code")
    return str(err) if err else f"state {job.get('state')}"
