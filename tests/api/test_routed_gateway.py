"""Routed mode's router gateway (issue 15): on a network tagged dvrnet:routed the server picks
two addresses for a gateway set without external_fixed_ips: qg-'s private address from the
subnet typed network:router_gateway, and the router's public SNAT address (announced as a /32)
from a subnet without service types. Explicit external_fixed_ips are kept as asked; untagged
networks keep Neutron's single pick; a routed network that cannot give both says why."""
from __future__ import annotations

import httpx
from api_helpers import ok, running_server
from test_openstack_cli import Osc, pytestmark  # noqa: F401  (the same skip when there is no client)

from dvrnet.api.app import create_app
from dvrnet.model.resources import ROUTED_TAG

GW = "network:router_gateway"
AGW = "network:floatingip_agent_gateway"


def _subnet(c, net, cidr, gateway, types=()):
    body = {"network_id": net, "cidr": cidr, "ip_version": 4, "gateway_ip": gateway}
    if types:
        body["service_types"] = list(types)
    return ok(c.post("/v2.0/subnets", json={"subnet": body}))["subnet"]["id"]


def _routed_net(c, with_private=True, with_public=True):
    net = ok(c.post("/v2.0/networks", json={"network": {"name": "ext", "router:external": True}}))["network"]["id"]
    ok(c.put(f"/v2.0/networks/{net}/tags", json={"tags": [ROUTED_TAG]}))
    subs = {}
    if with_public:
        subs["red"] = _subnet(c, net, "203.0.113.0/24", "203.0.113.1")
        subs["green"] = _subnet(c, net, "198.51.100.0/24", "198.51.100.1")
    if with_private:
        subs["private"] = _subnet(c, net, "100.64.0.0/24", "100.64.0.254", (AGW, GW))
    return net, subs


def test_openstack_client_router_on_routed_network_gets_private_and_snat(db_url, tmp_path):
    with running_server(create_app(db_url)) as url:
        c = httpx.Client(base_url=url)
        ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": "network1", "mode": "dvr_snat"}}))
        net, subs = _routed_net(c)
        o = Osc(url, tmp_path, ["--os-auth-type", "none"])
        router = o.json("router", "create", "--external-gateway", net, "r1")
        fixed = router["external_gateway_info"]["external_fixed_ips"]
        # the private one (lowest free of the router_gateway subnet), then the SNAT address: the lowest
        # free of the first public subnet in cidr order (198.51.100.0/24 before 203.0.113.0/24)
        assert [(f["subnet_id"], f["ip_address"]) for f in fixed] == [
            (subs["private"], "100.64.0.1"), (subs["green"], "198.51.100.2")]
        # a second router: the next free of each
        r2 = ok(c.post("/v2.0/routers", json={"router": {"name": "r2", "external_gateway_info": {"network_id": net}}}))
        assert [f["ip_address"] for f in r2["router"]["external_gateway_info"]["external_fixed_ips"]] == [
            "100.64.0.2", "198.51.100.3"]
        # the gateway port holds both (qg- takes the private one; the SNAT /32 is announced)
        ports = ok(c.get("/v2.0/ports", params={"device_owner": GW, "device_id": router["id"]}))["ports"]
        assert sorted(f["ip_address"] for f in ports[0]["fixed_ips"]) == ["100.64.0.1", "198.51.100.2"]


def test_explicit_request_and_untagged_network_unchanged(db_url):
    with running_server(create_app(db_url)) as url:
        c = httpx.Client(base_url=url)
        ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": "network1", "mode": "dvr_snat"}}))
        net, subs = _routed_net(c)
        asked = [{"subnet_id": subs["private"]}, {"subnet_id": subs["red"], "ip_address": "203.0.113.77"}]
        r = ok(c.post("/v2.0/routers", json={"router": {"external_gateway_info": {
            "network_id": net, "external_fixed_ips": asked}}}))["router"]
        assert [f["ip_address"] for f in r["external_gateway_info"]["external_fixed_ips"]] == [
            "100.64.0.1", "203.0.113.77"]
        ok(c.delete(f"/v2.0/networks/{net}/tags/{ROUTED_TAG}"))
        r = ok(c.post("/v2.0/routers", json={"router": {"external_gateway_info": {"network_id": net}}}))["router"]
        fixed = r["external_gateway_info"]["external_fixed_ips"]
        # Neutron's pick: one address, typed subnets first
        assert [(f["subnet_id"], f["ip_address"]) for f in fixed] == [(subs["private"], "100.64.0.2")]


def test_routed_network_without_a_private_or_public_subnet_says_why(db_url):
    with running_server(create_app(db_url)) as url:
        c = httpx.Client(base_url=url)
        ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": "network1", "mode": "dvr_snat"}}))
        for kw, missing in (({"with_private": False}, "network:router_gateway"),
                            ({"with_public": False}, "public subnet")):
            net, _subs = _routed_net(c, **kw)
            r = c.post("/v2.0/routers", json={"router": {"name": "r", "external_gateway_info": {"network_id": net}}})
            assert r.status_code in (400, 409), r.text
            err = r.json()["NeutronError"]
            assert missing in err["message"] and "dvrnet:routed" in err["message"], err
            assert ok(c.get("/v2.0/routers", params={"name": "r"}))["routers"] == []     # nothing half-applied
