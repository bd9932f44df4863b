"""The simulator's own HTTP control endpoint (``sim.control_url``, plain http on loopback).

Not part of the simulated world: not in ``address_map``, never fault-injected, not in
the request log. Bodies are plain JSON (no SmartX envelope).

=======  =======================  ===========================================================
GET      /_sim                    index of these routes
GET      /_sim/state              snapshot: clock, every family's models, endpoints, DNS, faults
GET      /_sim/requests           request log; optional filters ?method=&path=&status=&address=
DELETE   /_sim/requests           clear the request log
GET      /_sim/map                {"address_map": [[address, port, proto, "127.0.0.1", local_port]...],
                                   "endpoints": [...], "deploy_token", "time_scale"}
GET      /_sim/ca                 the CA bundle (PEM text)
GET      /_sim/alive?address=A    {"address": A, "alive": bool}
GET      /_sim/faults             fault rules with their match/hit counters
POST     /_sim/faults             add a rule (object) or rules (list / {"rules": [...]}) -> 201
DELETE   /_sim/faults             remove all rules
DELETE   /_sim/faults/{id}        remove one rule
POST     /_sim/clock              {"advance": seconds} and/or {"time_scale": x, "skew": s}
POST     /_sim/endpoints          {"address": a, "port": p (optional), "proto": "tcp" (optional), "up": bool}
GET      /_sim/tls?address=A      {"address": A, "sha256": fingerprint of the certificate A:443 presents}
POST     /_sim/tls                {"rotate": address}: a new certificate for it (as after a reinstall)
GET      /_sim/fisheye/uploads    SVT upload accounting: {"uploads": [{image_uuid, received, digests, ...}]}
POST     /_sim/fisheye            any of {"revoke_tokens": true, "break_bmc": ip|[ips], "repair_bmc": ip|[ips],
                                   "chunk_size": bytes, "session_ttl": sim seconds}
=======  =======================  ===========================================================
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .http import App, Request, Response

if TYPE_CHECKING:
    from .server import Simulator


def _err(msg: str, status: int = 400) -> Response:
    return Response.json({"error": msg}, status)


class ControlApp(App):
    name = "control"

    def __init__(self, sim: Simulator):
        super().__init__()
        self.sim = sim
        self.add("GET", "/_sim", self.index)
        self.add("GET", "/_sim/state", self.state)
        self.add("GET", "/_sim/requests", self.requests)
        self.add("DELETE", "/_sim/requests", self.clear_requests)
        self.add("GET", "/_sim/map", self.map)
        self.add("GET", "/_sim/ca", self.ca)
        self.add("GET", "/_sim/alive", self.alive)
        self.add("GET", "/_sim/faults", self.faults)
        self.add("POST", "/_sim/faults", self.add_faults)
        self.add("DELETE", "/_sim/faults", self.clear_faults)
        self.add("DELETE", "/_sim/faults/{rule_id}", self.remove_fault)
        self.add("POST", "/_sim/clock", self.clock)
        self.add("POST", "/_sim/endpoints", self.endpoints)
        self.add("GET", "/_sim/tls", self.tls)
        self.add("POST", "/_sim/tls", self.rotate_tls)
        self.add("GET", "/_sim/fisheye/uploads", self.fisheye_uploads)
        self.add("POST", "/_sim/fisheye", self.fisheye)

    def not_found(self, req: Request) -> Response:
        return _err(f"no control route {req.method} {req.path}; see GET /_sim", 404)

    def error(self, req: Request, exc: BaseException) -> Response:
        return _err(f"{type(exc).__name__}: {exc}", 500)

    def index(self, req: Request) -> Response:
        return Response.json({"routes": [f"{m} {rx.pattern}" for m, rx, _ in self._routes]})

    def state(self, req: Request) -> Response:
        return Response.json(self.sim.snapshot())

    def requests(self, req: Request) -> Response:
        status = req.arg("status")
        if status is not None and status.isdigit():
            status = int(status)
        recs = self.sim.requests.filter(method=req.arg("method"), path=req.arg("path"), status=status,
                                        address=req.arg("address"))
        return Response.json({"requests": [r.to_dict() for r in recs]})

    def clear_requests(self, req: Request) -> Response:
        self.sim.requests.clear()
        return Response.json({"cleared": True})

    def map(self, req: Request) -> Response:
        return Response.json({"address_map": [[a, p, proto, h, lp] for (a, p, proto), (h, lp)
                                              in self.sim.address_map.items()],
                              "endpoints": self.sim.hub.to_dict(), "deploy_token": self.sim.deploy_token,
                              "time_scale": self.sim.clock.time_scale})

    def ca(self, req: Request) -> Response:
        with open(self.sim.ca_bundle, "rb") as fh:
            return Response(200, fh.read(), content_type="application/x-pem-file")

    def alive(self, req: Request) -> Response:
        address = req.arg("address")
        if not address:
            return _err("query parameter address is required")
        return Response.json({"address": address, "alive": self.sim.is_alive(address)})

    def faults(self, req: Request) -> Response:
        return Response.json({"rules": self.sim.faults.to_list()})

    def add_faults(self, req: Request) -> Response:
        try:
            rules = self.sim.faults.load(req.json())
        except (ValueError, json.JSONDecodeError) as exc:
            return _err(f"bad fault rule: {exc}")
        return Response.json({"rules": [r.to_dict() for r in rules]}, 201)

    def clear_faults(self, req: Request) -> Response:
        self.sim.faults.clear()
        return Response.json({"cleared": True})

    def remove_fault(self, req: Request) -> Response:
        if not self.sim.faults.remove(req.params["rule_id"]):
            return _err(f"no fault rule {req.params['rule_id']}", 404)
        return Response.json({"removed": req.params["rule_id"]})

    def clock(self, req: Request) -> Response:
        try:
            body = req.json()
            if "time_scale" in body:
                self.sim.clock.time_scale = float(body["time_scale"])
            if "skew" in body:
                self.sim.clock.skew = float(body["skew"])
            if "advance" in body:
                self.sim.clock.advance(float(body["advance"]))
        except (ValueError, TypeError, AttributeError) as exc:
            return _err(f"bad clock request: {exc}")
        self.sim.settle()
        return Response.json(self.sim.clock.to_dict())

    def endpoints(self, req: Request) -> Response:
        try:
            body = req.json()
            self.sim.set_up(body["address"], body.get("port"), bool(body.get("up", True)), proto=body.get("proto"))
        except KeyError as exc:
            return _err(f"no such endpoint: {exc}", 404)
        except (ValueError, TypeError, AttributeError) as exc:
            return _err(f"bad endpoint request: {exc}")
        return Response.json({"endpoints": self.sim.hub.to_dict()})

    def tls(self, req: Request) -> Response:
        address = req.arg("address")
        if not address:
            return _err("query parameter address is required")
        return Response.json({"address": address, "sha256": self.sim.certificate_fingerprint(address)})

    def rotate_tls(self, req: Request) -> Response:
        try:
            address = str(req.json()["rotate"])
        except (KeyError, ValueError, TypeError) as exc:
            return _err(f"body must be {{\"rotate\": address}}: {exc}")
        return Response.json({"address": address, "sha256": self.sim.rotate_certificate(address)})

    def fisheye_uploads(self, req: Request) -> Response:
        import dataclasses
        fe = self.sim.fisheye
        with fe.lock:
            ups = [dataclasses.asdict(u) | {"to_upload": u.to_upload} for u in fe.uploads.values()]
        return Response.json({"uploads": ups})

    def fisheye(self, req: Request) -> Response:
        fe = self.sim.fisheye
        try:
            body = req.json()
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            out: dict = {}
            if body.get("revoke_tokens"):
                out["revoked"] = fe.revoke_tokens()
            for key, broken in (("break_bmc", True), ("repair_bmc", False)):
                ips = body.get(key) or []
                for ip in [ips] if isinstance(ips, str) else ips:
                    fe.break_bmc(str(ip), broken)
            if "chunk_size" in body:
                n = int(body["chunk_size"])
                if n <= 0:
                    raise ValueError("chunk_size must be > 0")
                fe.chunk_size = n
            if "session_ttl" in body:
                fe.session_ttl = float(body["session_ttl"])
        except (ValueError, TypeError) as exc:
            return _err(f"bad fisheye control request: {exc}")
        return Response.json(out | {"broken_bmcs": sorted(fe.broken_bmcs), "chunk_size": fe.chunk_size,
                                    "session_ttl": fe.session_ttl})
