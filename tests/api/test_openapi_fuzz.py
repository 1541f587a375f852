"""Schema fuzzing (issue 10, item 11) with schemathesis: every operation of the OpenAPI document
the server serves (so operations added later are fuzzed without touching this file), against a
real uvicorn server holding a small cloud. Deterministic: a fixed seed, a fixed number of
examples per operation, derandomized, no example database.

Every response must: not be a 5xx; carry X-Openstack-Request-Id; on a 4xx, be Neutron's error
body; and match the document (a status it declares, its content type, headers and schema), so
the document says what the server does. Long polls (`wait`) are capped so a case never waits.
"""
from __future__ import annotations

import itertools
import zlib

import httpx
import pytest
import schemathesis
from api_helpers import build_topology, ok, running_server
from hypothesis import HealthCheck, Phase, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dvrnet.api.app import create_app

EXAMPLES = 25         # per operation (positive and negative cases mixed)
SEED = 10


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    app = create_app(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'dvrnet.db'}")
    with running_server(app) as url, httpx.Client(base_url=url) as c:
        ids = build_topology(c)
        ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"], "port_id": ids["port"]}}))
        ok(c.put(f"/v2.0/networks/{ids['net']}/tags", json={"tags": ["blue", "green"]}))
        real = {"id_": list(ids.values()), "name": ["compute1", "network1"], "agent_id": [],
                "alias": ["dvr", "router"], "tag": ["blue", "green"]}
        real["agent_id"] = [a["id"] for a in ok(c.get("/v2.0/agents"))["agents"]]
        yield url, real


def _document() -> dict:
    """The document every server serves (it depends on the code only, not on the database)."""
    app = create_app("sqlite://")
    return app.openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(modes=["positive", "negative"], max_examples=EXAMPLES, deterministic=True)
schema.config.seed = SEED
schema.config.phases.update(phases=["examples", "fuzzing"])


def test_the_fuzzed_document_is_the_served_one(served):
    """What is fuzzed is what is served, and it documents every route the app has."""
    from fastapi.routing import APIRoute
    url, _ = served
    assert ok(httpx.get(url + "/openapi.json")) == DOCUMENT
    documented = {(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops}

    def api_routes(routes):     # FastAPI keeps included routers as nodes (no prefixes are used here)
        for r in routes:
            sub = getattr(r, "original_router", None)
            if sub is not None:
                yield from api_routes(sub.routes)
            elif isinstance(r, APIRoute):
                yield r
    every = list(api_routes(create_app("sqlite://").routes))
    routes = {(m, r.path) for r in every if r.include_in_schema for m in r.methods}
    assert routes == documented and len(routes) >= 46
    hidden = {r.path for r in every if not r.include_in_schema}
    assert hidden == {"/v2.0/"}, hidden          # the same operation as /v2.0
    for (m, p) in documented:
        o = DOCUMENT["paths"][p][m.lower()]
        codes = set(o["responses"])
        assert codes <= {"200", "201", "204", "400", "401", "403", "404", "409", "413", "503"}, (m, p, codes)
        errors = codes - {"200", "201", "204"}
        assert all(o["responses"][c]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/NeutronError"} for c in errors), (m, p)
        if "requestBody" in o:
            assert {"400", "413"} <= codes and o["requestBody"]["content"]["application/json"]["schema"], (m, p)
    assert set(DOCUMENT["components"]["schemas"]) == {"NeutronError"}


@schemathesis.check
def neutron_error_body(ctx, response, case):
    """A request id on every response; Neutron's error body on every 4xx."""
    rid = response.headers.get("x-openstack-request-id", [""])
    rid = rid[0] if isinstance(rid, list) else rid
    assert rid.startswith("req-"), f"no X-Openstack-Request-Id: {dict(response.headers)}"
    if 400 <= response.status_code < 500:
        body = response.json()
        assert set(body) == {"NeutronError"}, body
        err = body["NeutronError"]
        assert set(err) == {"type", "message", "detail"} and err["type"] and err["message"], err


_turn = itertools.count()


@schema.parametrize()
@seed(SEED)
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
def test_every_operation(case, served):
    url, real = served
    # every other case names things that exist, so the operations get past their 404s
    if case.path_parameters and next(_turn) % 2 == 0:
        for k in case.path_parameters:
            if real.get(k):
                case.path_parameters[k] = real[k][zlib.crc32(str(case.path_parameters[k]).encode()) % len(real[k])]
    if case.query and "wait" in case.query:
        case.query["wait"] = 0
    case.call_and_validate(base_url=url, timeout=30,
                           checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_headers_conformance, response_schema_conformance, neutron_error_body])
