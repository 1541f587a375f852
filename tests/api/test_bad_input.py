"""Every kind of bad request gets a 4xx with Neutron's error body, never a 500 and never a bare
FastAPI error. One topology is shared by all cases: failed requests change nothing (checked)."""
from __future__ import annotations

import pytest
from api_helpers import TestClient, build_topology, neutron_error, ok

from dvrnet.api.app import create_app


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('bad') / 'dvrnet.db'}"
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        ids = build_topology(c)
        fip = ok(c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ids["ext"], "port_id": ids["port"]}}))["floatingip"]
        ids["fip"] = fip["id"]
        yield c, ids


RAW = [
    # (method, path, raw body, status, NeutronError type or None)
    ("POST", "/v2.0/networks", b"{not json", 400, "MalformedRequestBody"),
    ("POST", "/v2.0/networks", b"", 400, "MalformedRequestBody"),
    ("POST", "/v2.0/networks", b"[1, 2]", 400, "MalformedRequestBody"),
    ("PUT", "/v2.0/routers/{router}/add_router_interface", b"{", 400, "MalformedRequestBody"),
    ("POST", "/v2.0/subnets", b"\xff\xfe", 400, "MalformedRequestBody"),
]

JSON = [
    # wrong envelope
    ("POST", "/v2.0/networks", {"name": "x"}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/networks", {"network": "x"}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/networks", {"network": {}, "extra": 1}, 400, "HTTPBadRequest"),
    # unknown / read-only attributes
    ("POST", "/v2.0/networks", {"network": {"name": "x", "colour": "red"}}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/networks", {"network": {"status": "DOWN"}}, 400, "HTTPBadRequest"),
    ("PUT", "/v2.0/networks/{ext}", {"network": {"subnets": []}}, 400, "HTTPBadRequest"),
    ("PUT", "/v2.0/subnets/{s_gw}", {"subnet": {"cidr": "10.9.0.0/24"}}, 400, "HTTPBadRequest"),
    # wrong types
    ("POST", "/v2.0/networks", {"network": {"name": 5}}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/networks", {"network": {"router:external": "maybe"}}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/networks", {"network": {"mtu": "big"}}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/networks", {"network": {"mtu": 10}}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "{net}", "cidr": 10}}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "{net}", "cidr": "10.1.0.0/24",
                                          "allocation_pools": "all"}}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/ports", {"port": {"network_id": "{net}", "fixed_ips": [{"ip_address": 7}]}}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/routers", {"router": {"external_gateway_info": "ext"}}, 400, "HTTPBadRequest"),
    # invalid values
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "{net}", "cidr": "10.0.300.0/24"}}, 400, None),
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "{net}", "cidr": "10.1.0.1/24"}}, 400, None),
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "{net}", "cidr": "2001:db8::/64", "ip_version": 6}}, 400, None),
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "{net}", "cidr": "10.0.0.0/25"}}, 400, None),  # overlaps
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "{net}", "cidr": "10.2.0.0/24",
                                          "gateway_ip": "10.3.0.1"}}, 400, None),
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "{net}", "cidr": "10.2.0.0/24",
                                          "service_types": ["bogus"]}}, 400, None),
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "{net}"}}, 400, "HTTPBadRequest"),  # cidr missing
    ("POST", "/v2.0/ports", {"port": {"network_id": "{net}", "mac_address": "zz"}}, 400, None),
    ("POST", "/v2.0/ports", {"port": {"network_id": "{net}", "fixed_ips": [{"ip_address": "10.99.0.5"}]}}, 400, None),
    ("POST", "/v2.0/routers", {"router": {"external_gateway_info": {"network_id": "{net}"}}}, 400, None),
    ("POST", "/v2.0/floatingips", {"floatingip": {"floating_network_id": "{net}"}}, 400, None),
    ("PUT", "/v2.0/routers/{router}/add_router_interface", {"subnet_id": "{s_priv}", "port_id": "{port}"}, 400, None),
    ("PUT", "/v2.0/routers/{router}/add_router_interface", {}, 400, None),
    ("PUT", "/v2.0/routers/{router}/add_router_interface", {"router": {"subnet_id": "{s_priv}"}}, 400, None),
    ("GET", "/v2.0/networks?colour=red", None, 400, "HTTPBadRequest"),
    ("GET", "/v2.0/networks?limit=abc", None, 400, "HTTPBadRequest"),
    ("GET", "/v2.0/dvrnet/hosts/compute1/view?since=abc", None, 400, "HTTPBadRequest"),
    # ids and names that do not exist: 404 on GET, PUT and DELETE
    ("GET", "/v2.0/networks/no-such-net", None, 404, "NetworkNotFound"),
    ("GET", "/v2.0/networks/ext", None, 404, "NetworkNotFound"),          # a name, not an id
    ("GET", "/v2.0/subnets/00000000-0000-0000-0000-000000000000", None, 404, "SubnetNotFound"),
    ("PUT", "/v2.0/routers/%zz", {"router": {"name": "x"}}, 404, "RouterNotFound"),
    ("DELETE", "/v2.0/ports/nope", None, 404, "PortNotFound"),
    ("DELETE", "/v2.0/floatingips/nope", None, 404, None),
    ("POST", "/v2.0/subnets", {"subnet": {"network_id": "missing", "cidr": "10.5.0.0/24"}}, 404, "NetworkNotFound"),
    ("PUT", "/v2.0/routers/{router}/add_router_interface", {"subnet_id": "missing"}, 404, "SubnetNotFound"),
    ("PUT", "/v2.0/routers/missing/add_router_interface", {"subnet_id": "{s_priv}"}, 404, "RouterNotFound"),
    ("GET", "/v2.0/extensions/external-gateway-multihoming", None, 404, "ExtensionNotFound"),
    ("GET", "/v2.0/no-such-collection", None, 404, "HTTPNotFound"),
    ("GET", "/v2.0/dvrnet/hosts/nohost/view", None, 404, "HostNotFound"),
    ("PATCH", "/v2.0/networks", None, 405, "HTTPMethodNotAllowed"),
    # in use / conflicts
    ("DELETE", "/v2.0/subnets/{s_gw}", None, 409, "SubnetInUse"),
    ("DELETE", "/v2.0/subnets/{s_fip}", None, 409, "SubnetInUse"),
    ("DELETE", "/v2.0/subnets/{s_priv}", None, 409, "SubnetInUse"),
    ("DELETE", "/v2.0/networks/{ext}", None, 409, None),
    ("POST", "/v2.0/ports", {"port": {"network_id": "{net}", "fixed_ips": [{"ip_address": "10.0.0.1"}]}}, 409, None),
    # an address outside the subnet it names
    ("POST", "/v2.0/ports", {"port": {"network_id": "{ext}", "device_owner": "compute:nova",
                                      "fixed_ips": [{"ip_address": "100.64.0.250", "subnet_id": "{s_gw}"}]}}, 400, None),
]


def _fill(v, ids):
    if isinstance(v, str):
        return v.format(**ids) if "{" in v else v
    if isinstance(v, dict):
        return {k: _fill(x, ids) for k, x in v.items()}
    if isinstance(v, list):
        return [_fill(x, ids) for x in v]
    return v


@pytest.mark.parametrize("method,path,raw,status,type_", RAW)
def test_malformed_bodies(env, method, path, raw, status, type_):
    c, ids = env
    r = c.request(method, _fill(path, ids), content=raw, headers={"Content-Type": "application/json"})
    neutron_error(r, status, type_)


@pytest.mark.parametrize("method,path,body,status,type_", JSON, ids=[f"{m} {p} {s}" for m, p, _, s, _ in JSON])
def test_bad_requests(env, method, path, body, status, type_):
    c, ids = env
    before = c.get("/v2.0/dvrnet/cloud").json()
    kw = {"json": _fill(body, ids)} if body is not None else {}
    r = c.request(method, _fill(path, ids), **kw)
    neutron_error(r, status, type_)
    assert c.get("/v2.0/dvrnet/cloud").json() == before, "a failed request changed the cloud"


def test_service_type_violation_no_matching_subnet(env):
    """A port whose owner no subnet serves: the FIP-only and fg-only subnets refuse it."""
    c, _ids = env
    net = ok(c.post("/v2.0/networks", json={"network": {"name": "typed-only"}}))["network"]
    ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "192.0.2.0/24",
                                                 "service_types": ["network:floatingip"]}}))
    r = c.post("/v2.0/ports", json={"port": {"network_id": net["id"], "device_owner": "compute:nova"}})
    err = neutron_error(r, 409)
    assert "IpAddressGenerationFailure" in err["type"]


def test_unknown_attribute_message_is_neutrons(env):
    c, _ = env
    err = neutron_error(c.post("/v2.0/networks", json={"network": {"bogus": 1, "other": 2}}), 400)
    assert err["message"] == "Unrecognized attribute(s) 'bogus, other'"


def test_internal_errors_keep_the_neutron_shape(env, monkeypatch):
    c, _ = env
    from dvrnet.api import render
    monkeypatch.setitem(render.RENDER, "networks", lambda *a: 1 / 0)
    neutron_error(c.get("/v2.0/networks"), 500, "HTTPInternalServerError")
