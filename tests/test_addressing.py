"""The address-map guard: in --simulate mode only loopback is ever contacted."""
from __future__ import annotations

import socket

import httpx
import pytest

from clients.addressing import CURRENT_STEP, AddressMap, GuardedTransport, UnroutableAddress


def test_real_mode_maps_to_itself():
    assert AddressMap(simulate=False).resolve("10.0.20.11", 80) == ("10.0.20.11", 80)


def test_simulated_address_maps_to_loopback():
    amap = AddressMap(simulate=True, mapping={("10.0.20.11", 80, "tcp"): ("127.0.0.1", 40001)})
    assert amap.resolve("10.0.20.11", 80) == ("127.0.0.1", 40001)


def test_unmapped_address_fails_loudly_naming_address_and_step():
    amap = AddressMap(simulate=True, mapping={("10.0.20.11", 80, "tcp"): ("127.0.0.1", 40001)})
    token = CURRENT_STEP.set("02.deploy")
    try:
        with pytest.raises(UnroutableAddress) as exc:
            amap.resolve("10.0.20.99", 443)
    finally:
        CURRENT_STEP.reset(token)
    assert "10.0.20.99:443" in str(exc.value) and "02.deploy" in str(exc.value)


def test_mapping_to_a_non_loopback_target_is_refused():
    amap = AddressMap(simulate=True, mapping={("10.0.20.11", 80, "tcp"): ("10.0.20.11", 80)})
    with pytest.raises(UnroutableAddress, match="not loopback"):
        amap.resolve("10.0.20.11", 80)


@pytest.mark.parametrize("probe", [
    lambda a: a.tcp_open("10.0.20.50", 22),
    lambda a: a.ping("10.0.20.50"),
    lambda a: a.dns_answers("10.0.0.114"),
    lambda a: a.ntp_answers("ntp.example.com"),
])
def test_every_kind_of_probe_goes_through_the_guard(probe, monkeypatch):
    """No socket is opened to a non-loopback address: the guard raises first."""
    opened = []
    real_connect = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: opened.append(a) or real_connect(*a, **k))
    amap = AddressMap(simulate=True, mapping={}, alive=lambda a: True)
    with pytest.raises(UnroutableAddress):
        probe(amap)
    assert opened == []


def test_http_transport_rewrites_destination_and_keeps_host_header():
    seen = {}

    class Inner(httpx.BaseTransport):
        def handle_request(self, request):
            seen["url"] = str(request.url)
            seen["host"] = request.headers["host"]
            return httpx.Response(200, json={})

    amap = AddressMap(simulate=True, mapping={("10.0.20.11", 443, "tcp"): ("127.0.0.1", 40443)})
    with httpx.Client(transport=GuardedTransport(amap, Inner())) as c:
        c.get("https://10.0.20.11/api/v2/deployment/deploy_verify")
        with pytest.raises(UnroutableAddress):
            c.get("http://10.0.20.11/api")  # port 80 not mapped
    assert seen == {"url": "https://127.0.0.1:40443/api/v2/deployment/deploy_verify", "host": "10.0.20.11"}


def test_loopback_is_allowed_without_mapping():
    amap = AddressMap(simulate=True)
    assert amap.resolve("127.0.0.1", 8080) == ("127.0.0.1", 8080)
