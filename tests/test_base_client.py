"""Retry policy, error messages and evidence of the shared client plumbing (respx at unit level)."""
from __future__ import annotations

import httpx
import pytest
import respx

from clients.addressing import AddressMap
from clients.base import ApiError, EnvelopeClient
from clients.redact import REDACTOR


def client(records):
    return EnvelopeClient("http://10.0.20.11", amap=AddressMap(simulate=False), on_call=records.append,
                          sleep=lambda s: None, headers={"x-smartx-token": "tok-abcdef"})


@respx.mock
def test_get_is_retried_on_transient_errors():
    route = respx.get("http://10.0.20.11/x").mock(side_effect=[
        httpx.Response(503), httpx.ConnectError("boom"), httpx.Response(200, json={"data": 1, "ec": "EOK", "error": {}})])
    records = []
    assert client(records).call("GET", "/x") == 1
    assert route.call_count == 3
    assert [r.get("status") for r in records] == [503, None, 200]


@respx.mock
def test_post_is_never_retried_blindly():
    route = respx.post("http://10.0.20.11/deploy").mock(return_value=httpx.Response(503, text="busy"))
    with pytest.raises(ApiError) as exc:
        client([]).call("POST", "/deploy", json_body={"a": 1})
    assert route.call_count == 1
    assert "POST http://10.0.20.11/deploy" in str(exc.value) and "HTTP 503" in str(exc.value)
    assert "下一步 / next" in str(exc.value)


@respx.mock
def test_error_envelope_is_an_api_error_with_ec():
    respx.get("http://10.0.20.11/y").mock(return_value=httpx.Response(
        200, json={"data": None, "ec": "EBadThing", "error": {"msg": "nope"}}))
    with pytest.raises(ApiError) as exc:
        client([]).call("GET", "/y")
    assert exc.value.ec == "EBadThing" and "nope" in str(exc.value)


@respx.mock
def test_evidence_is_redacted():
    REDACTOR.add("Hunter#2Pass")
    respx.post("http://10.0.20.11/login").mock(return_value=httpx.Response(
        200, json={"data": {"token": "issued-token-xyz"}, "ec": "EOK", "error": {}}))
    records = []
    client(records).call("POST", "/login", json_body={"username": "root", "password": "Hunter#2Pass"})
    blob = repr(records)
    assert "Hunter#2Pass" not in blob and "issued-token-xyz" not in blob
    assert records[0]["url"] == "http://10.0.20.11/login" and records[0]["status"] == 200
