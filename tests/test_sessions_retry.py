"""Issue 11 items 6 and 7: CloudTower sessions re-login once on 401; reads (GET, CloudTower get-* POSTs,
GraphQL queries) are retried on HTTP 500 too, mutations never (respx at unit level)."""
from __future__ import annotations

import json

import httpx
import pytest
import respx

from clients.addressing import AddressMap
from clients.base import ApiError, EnvelopeClient
from clients.cloudtower import CloudTowerClient, GraphQLError

BASE = "http://10.0.20.11"
CT = "https://10.0.20.50"
OK = {"data": 1, "ec": "EOK", "error": {}}


def client(records=None, **kw):
    return EnvelopeClient(BASE, amap=AddressMap(simulate=False), on_call=(records or []).append,
                          sleep=lambda s: None, **kw)


def tower(records=None):
    return CloudTowerClient("10.0.20.50", amap=AddressMap(simulate=False), on_call=(records or []).append,
                            sleep=lambda s: None)


# --- item 7: the retry policy -------------------------------------------------------------------------------

@respx.mock
def test_get_is_retried_on_500():
    route = respx.get(f"{BASE}/x").mock(side_effect=[httpx.Response(500), httpx.Response(200, json=OK)])
    assert client().call("GET", "/x") == 1
    assert route.call_count == 2


@respx.mock
def test_get_500_budget_is_the_same_small_one():
    route = respx.get(f"{BASE}/x").mock(return_value=httpx.Response(500, text="boom"))
    with pytest.raises(ApiError, match="HTTP 500"):
        client().call("GET", "/x")
    assert route.call_count == 3


@pytest.mark.parametrize("status", [500, 502, 503])
@respx.mock
def test_mutation_is_never_retried(status):
    route = respx.post(f"{BASE}/deploy").mock(return_value=httpx.Response(status))
    with pytest.raises(ApiError):
        client().call("POST", "/deploy", json_body={"a": 1})
    assert route.call_count == 1


@respx.mock
def test_idempotent_write_is_retried_on_503_not_on_500():
    route = respx.put(f"{BASE}/s").mock(side_effect=[httpx.Response(503), httpx.Response(200, json=OK)])
    assert client().call("PUT", "/s", json_body={}, idempotent=True) == 1
    assert route.call_count == 2
    route = respx.put(f"{BASE}/t").mock(return_value=httpx.Response(500))
    with pytest.raises(ApiError):
        client().call("PUT", "/t", json_body={}, idempotent=True)
    assert route.call_count == 1


def test_one_policy_classifies_requests():
    from clients.base import IDEMPOTENT_WRITE, MUTATION, READ, RetryPolicy

    p = RetryPolicy()
    assert p.kind_of("GET") == READ and p.kind_of("post") == MUTATION
    assert p.kind_of("PUT", idempotent=True) == IDEMPOTENT_WRITE and p.kind_of("GET", idempotent=False) == MUTATION
    assert p.kind_of("POST", kind=READ) == READ
    assert p.attempts_for(MUTATION) == 1 and p.attempts_for(READ) == 3
    assert p.retries_status(READ, 500) and not p.retries_status(IDEMPOTENT_WRITE, 500)
    assert not p.retries_status(MUTATION, 503) and not p.retries_status(READ, 400)


def test_graphql_operation_type():
    from clients.cloudtower import graphql_operation_type

    assert graphql_operation_type("query checkTowerIsSetup { a }") == "query"
    assert graphql_operation_type("{ a }") == "query"
    assert graphql_operation_type("  # comment: mutation\nquery q { mutation }") == "query"
    assert graphql_operation_type("mutation m($a: String) { x(a: $a) { query } }") == "mutation"
    assert graphql_operation_type("query a { x } mutation b { y }", "b") == "mutation"
    assert graphql_operation_type("subscription s { x }") == "subscription"
    assert graphql_operation_type("garbage") == "mutation"


def _login_route(tokens):
    return respx.post(f"{CT}/v2/api/login").mock(side_effect=[
        httpx.Response(200, json={"data": {"token": t}}) for t in tokens])


@respx.mock
def test_cloudtower_get_star_is_a_read_others_are_mutations():
    _login_route(["tok-aaaaaaaa"])
    reads = respx.post(f"{CT}/v2/api/get-clusters").mock(side_effect=[httpx.Response(500),
                                                                      httpx.Response(200, json=[])])
    writes = respx.post(f"{CT}/v2/api/create-datacenter").mock(return_value=httpx.Response(503))
    ct = tower()
    assert ct.rest("get-clusters") == [] and reads.call_count == 2
    with pytest.raises(ApiError):
        ct.rest("create-datacenter", [{"name": "DC"}])
    assert writes.call_count == 1


def _gql(request: httpx.Request) -> str:
    return json.loads(request.content)["operationName"]


@respx.mock
def test_graphql_query_retried_on_500_mutation_not():
    calls = []

    def answer(request):
        calls.append(_gql(request))
        if calls.count(_gql(request)) == 1:
            return httpx.Response(500, json={"errors": [{"message": "boom"}]})
        return httpx.Response(200, json={"data": {"organizations": [], "userCreated": {"created": False}}})

    respx.post(f"{CT}/api").mock(side_effect=answer)
    ct = tower()
    assert ct.tower_setup()["organizations"] == []
    with pytest.raises(ApiError, match="HTTP 500"):
        ct.create_organization("ACME")
    assert calls == ["checkTowerIsSetup", "checkTowerIsSetup", "createOrganization"]


# --- item 6: re-login once on 401 ------------------------------------------------------------------------

@respx.mock
def test_rest_401_logs_in_again_once_and_resends():
    logins = _login_route(["tok-first-1111", "tok-second-2222"])
    seen = []

    def answer(request):
        seen.append(request.headers["Authorization"])
        return httpx.Response(401 if len(seen) == 1 else 200, json=[{"id": "c1"}])

    respx.post(f"{CT}/v2/api/get-clusters").mock(side_effect=answer)
    ct = tower()
    ct.login()
    assert ct.rest("get-clusters") == [{"id": "c1"}]
    assert seen == ["tok-first-1111", "tok-second-2222"] and logins.call_count == 2 and ct.relogins == 1


@respx.mock
def test_rest_second_401_is_an_error_not_a_loop():
    logins = _login_route(["tok-first-1111", "tok-second-2222", "tok-third-3333"])
    route = respx.post(f"{CT}/v2/api/create-datacenter").mock(return_value=httpx.Response(401, json={}))
    ct = tower()
    ct.login()
    with pytest.raises(ApiError, match="HTTP 401"):
        ct.rest("create-datacenter", [{"name": "DC"}])
    assert route.call_count == 2 and logins.call_count == 2


@respx.mock
def test_graphql_unauthenticated_logs_in_again_once():
    _login_route(["tok-first-1111", "tok-second-2222"])
    seen = []
    lic = {"data": {"deploys": [{"license": {"license_serial": "SN-1"}}]}}

    def answer(request):
        seen.append(request.headers.get("Authorization"))
        if len(seen) == 1:   # Apollo: HTTP 200 with an UNAUTHENTICATED error
            return httpx.Response(200, json={"errors": [{"message": "the token has expired",
                                                         "extensions": {"code": "UNAUTHENTICATED"}}], "data": None})
        return httpx.Response(200, json=lic)

    respx.post(f"{CT}/api").mock(side_effect=answer)
    ct = tower()
    ct.login()
    assert ct.deployed_license() == {"license_serial": "SN-1"}
    assert seen == ["tok-first-1111", "tok-second-2222"]


@respx.mock
def test_graphql_401_on_a_mutation_logs_in_again_once():
    _login_route(["tok-first-1111", "tok-second-2222"])
    route = respx.post(f"{CT}/api").mock(side_effect=[
        httpx.Response(401), httpx.Response(200, json={"data": {"updateCloudTowerNtpUrl": {"ntp_service_url": "a"}}})])
    ct = tower()
    ct.login()
    assert ct.update_ntp(["a"]) == "a" and route.call_count == 2


@respx.mock
def test_cookie_session_hook_relogs_in_on_401():
    from clients.cloudtower import CookieSession

    sids = iter(["sid-one-aaaa", "sid-two-bbbb"])
    cookies = []

    def answer(request):
        cookies.append(request.headers.get("Cookie"))
        return httpx.Response(401) if len(cookies) == 1 else httpx.Response(200, json={"data": {"x": 1}})

    respx.post(f"{CT}/api").mock(side_effect=answer)
    ct = tower()
    ct.add_session("cookie", CookieSession(lambda: next(sids)))
    assert ct.graphql("someQuery", "query someQuery { x }", session="cookie") == {"x": 1}
    assert cookies == ["connect.sid=sid-one-aaaa", "connect.sid=sid-two-bbbb"] and ct.relogins == 1


@respx.mock
def test_graphql_errors_still_raise():
    respx.post(f"{CT}/api").mock(return_value=httpx.Response(200, json={"errors": [{"message": "exists"}]}))
    with pytest.raises(GraphQLError):
        tower().create_organization("ACME")


# --- the same against the simulator's CloudTower (cloudtower-ready preset) -------------------------------

@pytest.fixture(scope="module")
def sim_tower(tmp_path_factory):
    from mocks import Simulator
    from mocks.presets import apply_preset
    from plan.example import write_example
    from plan.parse import load

    plan, _ = load(write_example(tmp_path_factory.mktemp("ctplan") / "plan.xlsx", hosts=3, business=1))
    with Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False) as sim:
        apply_preset(sim, "cloudtower-ready")
        yield sim, str(plan.cloudtower.ip)


@pytest.fixture
def sim_client(sim_tower):
    from clients.base import TlsMode

    sim, ip = sim_tower
    sim.faults.clear()
    amap = AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)
    ct = CloudTowerClient(ip, amap=amap, tls=TlsMode(verify=True, ca_bundle=str(sim.ca_bundle)),
                          sleep=lambda s: None)
    yield sim, sim.state.cloudtower.tower(ip), ct
    ct.close()
    sim.faults.clear()


def test_simulated_tower_revoked_tokens_relogin_once(sim_client):
    sim, tower_model, ct = sim_client
    ct.login()
    assert tower_model.revoke_tokens() >= 1
    assert isinstance(ct.rest("get-organizations"), list)              # REST: 401, login, resend
    tower_model.revoke_tokens()
    assert ct.deployed_license().get("license_serial")                 # GraphQL UNAUTHENTICATED, login, resend
    assert ct.relogins == 2


def test_simulated_tower_reads_survive_one_500_mutations_do_not_retry(sim_client):
    sim, _, ct = sim_client
    ct.login()
    sim.faults.add({"method": "POST", "path": "/v2/api/get-clusters", "nth": 1, "status": 500})
    assert isinstance(ct.rest("get-clusters"), list)
    assert sim.count("POST", "/v2/api/get-clusters") == 2
    sim.faults.add({"method": "POST", "path": "/api", "times": 1, "status": 500})
    assert "organizations" in ct.tower_setup()
    sim.faults.add({"method": "POST", "path": "/v2/api/create-datacenter", "status": 500})
    with pytest.raises(ApiError, match="HTTP 500"):
        ct.rest("create-datacenter", [{"organization_id": "x", "name": "DC"}])
    assert sim.count("POST", "/v2/api/create-datacenter") == 1


# --- stage 07: the GraphQL login's connect.sid cookie and the OVM operator's Basic + cookie -------------------
SID = "s%3Aabc.def%2Bsig"


def _gql_login(sid: str | None = SID):
    headers = {"Set-Cookie": f"connect.sid={sid}; Path=/; HttpOnly; Secure; SameSite=Strict"} if sid else {}
    return httpx.Response(200, json={"data": {"login": {"token": "gql-token-1", "need_mfa": False}}}, headers=headers)


@respx.mock
def test_the_cookie_session_logs_in_through_graphql_and_is_redacted():
    from clients.cloudtower import GUIDE_ENCODED_LOGIN_PASSWORD, OVM_BASIC
    from clients.redact import REDACTOR

    login = respx.post(f"{CT}/api", json__operationName="login").mock(return_value=_gql_login())
    ovm = respx.post(f"{CT}/api/ovm-operator/api/v3/chunkedUploads").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json={"id": "u1", "offset": "0"})])
    ct = tower()
    r = ct.authed("POST", "/api/ovm-operator/api/v3/chunkedUploads", session="ovm", json_body={"origin_file_name": "x"})
    assert r.status_code == 200 and login.call_count == 2, "logged in, then once more on the 401"
    sent = json.loads(login.calls[0].request.content)
    assert sent["variables"]["data"]["password"] == GUIDE_ENCODED_LOGIN_PASSWORD
    assert "encoded: true" in sent["query"]
    last = ovm.calls[-1].request.headers
    assert last["authorization"] == OVM_BASIC and last["cookie"] == f"connect.sid={SID}"
    text = f"cookie {SID} decoded s:abc.def+sig basic {OVM_BASIC} token gql-token-1 pw {GUIDE_ENCODED_LOGIN_PASSWORD}"
    red = REDACTOR.text(text)
    for secret in (SID, "s:abc.def+sig", "bzExeTpIQyFyMGNrcw==", "gql-token-1", GUIDE_ENCODED_LOGIN_PASSWORD):
        assert secret not in red, secret


@respx.mock
def test_a_graphql_login_without_a_cookie_fails_in_one_clear_line():
    respx.post(f"{CT}/api").mock(return_value=_gql_login(None))
    ct = tower()
    with pytest.raises(ApiError, match="缺少 connect.sid"):
        ct.sessions["cookie"].login()
