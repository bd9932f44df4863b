"""The served simulator and the official CloudTower SDK client shared by the SDK tests (test_sim_cloudtower_sdk,
test_sim_backup_sdk): ``python -m mocks serve --preset ...`` in its own process, and an SDK ``ApiClient`` on the
loopback port serving the CloudTower IP's 443 whose every request is checked (only 127.0.0.0/8 is ever contacted).
Import it after ``pytest.importorskip("cloudtower")``: the SDK is a test-only dependency."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import cloudtower as ct
import httpx
from cloudtower.exceptions import ApiException

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "examples" / "plan-example.xlsx"
TOWER_PW = "HC!r0cks"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


@contextmanager
def serve(preset: str, wait_s: float) -> Iterator[dict]:
    """``python -m mocks serve --preset <preset>`` at 1000x (no proxy, faults or profile from the environment),
    waited for up to ``wait_s``: its control URL, CA bundle and preset summary; stopped after."""
    env = {k: v for k, v in os.environ.items()
           if k not in PROXY_VARS and k not in ("SMTX_SIM_FAULTS", "SMTX_SIM_PROFILE", "SMTX_SIM_UPLOAD_PROFILE")}
    proc = subprocess.Popen([sys.executable, "-m", "mocks", "serve", "--plan", str(PLAN), "--time-scale", "0.001",
                             "--preset", preset], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    info: dict = {}
    try:
        deadline = time.monotonic() + wait_s
        for line in proc.stdout:
            if line.startswith("control:"):
                info["control"] = line.split(":", 1)[1].strip().removesuffix("/_sim")
            elif line.startswith("ca bundle:"):
                info["ca"] = line.split(":", 1)[1].strip()
            elif line.startswith(f"preset {preset}:"):
                info["summary"] = json.loads(line.split(":", 1)[1])
            if line.startswith("serving;") or time.monotonic() > deadline:
                break
        assert {"control", "ca", "summary"} <= set(info), f"serve printed {sorted(info)} before serving"
        assert loopback(urlsplit(info["control"]).hostname)
        yield info
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


class Recorder:
    """Wraps the SDK's REST client: refuses any request to a non-loopback address, keeps each raw answer."""

    def __init__(self, rest_client):
        self.inner = rest_client.request
        self.last: tuple[int, bytes] | None = None
        self.urls: list[str] = []
        rest_client.request = self.request

    def request(self, method, url, *args, **kw):
        host = urlsplit(url).hostname
        assert loopback(host), f"the SDK tried to reach {url}: only 127.0.0.0/8 may be contacted"
        self.urls.append(url)
        try:
            r = self.inner(method, url, *args, **kw)
        except ApiException as exc:
            self.last = (exc.status, exc.body if isinstance(exc.body, bytes) else (exc.body or "").encode())
            raise
        self.last = (r.status, r.data)
        return r

    def raw(self):
        return json.loads(self.last[1])


def sdk_configuration(served: dict, monkeypatch) -> ct.Configuration:
    """The SDK's configuration for the served CloudTower (no proxy): its loopback port, the simulator's CA (its
    certificate names the CloudTower IP)."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    ct_ip = served["summary"]["cloudtower"]["ip"]
    amap = httpx.get(f"{served['control']}/_sim/map", timeout=10, trust_env=False).json()["address_map"]
    (port,) = [lp for addr, p, proto, _lh, lp in amap if addr == ct_ip and p == 443 and proto == "tcp"]
    conf = ct.Configuration(host=f"https://127.0.0.1:{port}/v2/api")
    conf.ssl_ca_cert = served["ca"]
    conf.assert_hostname = ct_ip
    conf.proxy = None
    return conf


@contextmanager
def sdk_client(conf: ct.Configuration) -> Iterator[tuple[ct.ApiClient, Recorder]]:
    """An SDK client on ``conf`` and the :class:`Recorder` of its requests; closed after."""
    client = ct.ApiClient(conf)
    rec = Recorder(client.rest_client)
    try:
        yield client, rec
    finally:
        client.close()
