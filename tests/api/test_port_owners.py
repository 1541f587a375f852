"""Reserved device owners, foreign devices, service subnets and router-owned ports (issue 10,
items 1-4): every `network:*` owner follows Neutron's policy, the owners the server manages are
made only by the router/FIP/agent APIs, a request either commits and answers 2xx or changes
nothing, and a port exists until it is deleted."""
from __future__ import annotations

import pytest
from api_helpers import ADMIN_TOKEN, ALICE_TOKEN, BOB_TOKEN, TestClient, build_topology, neutron_error, ok

from dvrnet.api.app import create_app

A = {"X-Auth-Token": ADMIN_TOKEN}
ALICE = {"X-Auth-Token": ALICE_TOKEN}
BOB = {"X-Auth-Token": BOB_TOKEN}

# What the server makes and removes itself (router, floating IP and agent APIs).
MANAGED = ["network:router_gateway", "network:router_interface", "network:router_interface_distributed",
           "network:router_centralized_snat", "network:floatingip_agent_gateway", "network:floatingip"]
# Every other `network:*` owner Neutron knows: a port may carry it (admin or the network's owner).
OTHER_NETWORK = ["network:dhcp", "network:router_ha_interface", "network:ha_router_replicated_interface",
                 "network:local_ip", "network:routed", "network:distributed", "network:vpn_router_gateway",
                 "network:something_new"]


@pytest.fixture
def admin(db_url):
    with TestClient(create_app(db_url), raise_server_exceptions=False) as c:
        yield c, build_topology(c)


def cloud(c, headers=None):
    return ok(c.get("/v2.0/dvrnet/cloud", headers=headers or {}))["cloud"]


# ---- item 1: reserved owners on PUT and POST -----------------------------------------------
@pytest.mark.parametrize("owner", MANAGED)
def test_managed_owner_refused_on_update_and_nothing_changes(admin, owner):
    """Was: PUT device_owner=network:floatingip_agent_gateway answered 500 and deleted the port."""
    c, ids = admin
    before = cloud(c)
    err = neutron_error(c.put(f"/v2.0/ports/{ids['port']}", json={"port": {"device_owner": owner}}), 400)
    assert "device_owner" in err["message"]
    assert cloud(c) == before
    assert ok(c.get(f"/v2.0/ports/{ids['port']}"))["port"]["device_owner"] == "compute:nova"


@pytest.mark.parametrize("owner", MANAGED)
def test_managed_owner_refused_on_create(admin, owner):
    c, ids = admin
    before = cloud(c)
    for dev in ("", ids["router"], "compute1"):
        body = {"port": {"network_id": ids["net"], "device_owner": owner, "device_id": dev}}
        err = neutron_error(c.post("/v2.0/ports", json=body), 400)
        assert "device_owner" in err["message"]
    assert cloud(c) == before


@pytest.mark.parametrize("owner", OTHER_NETWORK)
def test_other_network_owners_are_kept(admin, owner):
    c, ids = admin
    p = ok(c.put(f"/v2.0/ports/{ids['port']}", json={"port": {"device_owner": owner}}))["port"]
    assert p["device_owner"] == owner
    assert ok(c.get(f"/v2.0/ports/{ids['port']}"))["port"]["device_owner"] == owner
    q = ok(c.post("/v2.0/ports", json={"port": {"network_id": ids["net"], "device_owner": owner}}), 201)["port"]
    assert ok(c.get(f"/v2.0/ports/{q['id']}"))["port"]["device_owner"] == owner
    ok(c.delete(f"/v2.0/ports/{q['id']}"), 204)


def test_network_owner_policy_in_token_mode(token_app):
    """`network:*` owners: admin or the network's owner (Neutron's create/update_port:device_owner)."""
    with TestClient(token_app) as c:
        build_topology(c, headers=A)
        shared = ok(c.post("/v2.0/networks", json={"network": {"name": "shared", "shared": True}}, headers=A))["network"]
        ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": shared["id"], "cidr": "10.9.0.0/24"}}, headers=A))
        mine = ok(c.post("/v2.0/networks", json={"network": {"name": "a"}}, headers=ALICE))["network"]
        ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": mine["id"], "cidr": "10.8.0.0/24"}}, headers=ALICE))
        for owner in OTHER_NETWORK:
            before = cloud(c, A)
            err = neutron_error(c.post("/v2.0/ports", json={"port": {"network_id": shared["id"], "device_owner": owner}},
                                       headers=BOB), 403, "PolicyNotAuthorized")
            assert "create_port:device_owner" in err["message"]
            p = ok(c.post("/v2.0/ports", json={"port": {"network_id": shared["id"]}}, headers=BOB), 201)["port"]
            err = neutron_error(c.put(f"/v2.0/ports/{p['id']}", json={"port": {"device_owner": owner}}, headers=BOB),
                                403, "PolicyNotAuthorized")
            assert "update_port:device_owner" in err["message"]
            ok(c.delete(f"/v2.0/ports/{p['id']}", headers=BOB), 204)
            assert cloud(c, A)["ports"] == before["ports"]
            q = ok(c.post("/v2.0/ports", json={"port": {"network_id": mine["id"], "device_owner": owner}},
                          headers=ALICE), 201)["port"]          # the network's owner may
            ok(c.delete(f"/v2.0/ports/{q['id']}", headers=ALICE), 204)
        # an ordinary owner is anyone's choice
        ok(c.post("/v2.0/ports", json={"port": {"network_id": shared["id"], "device_owner": "compute:nova"}},
                  headers=BOB), 201)



def test_no_request_commits_and_then_fails(admin, monkeypatch):
    """A failure after the change was computed (here: rendering the answer) rolls it back."""
    c, ids = admin
    from dvrnet.api import render
    before = cloud(c)
    monkeypatch.setitem(render.RENDER, "ports", lambda *a: 1 / 0)
    neutron_error(c.post("/v2.0/ports", json={"port": {"network_id": ids["net"]}}), 500, "HTTPInternalServerError")
    neutron_error(c.put(f"/v2.0/ports/{ids['port']}", json={"port": {"name": "x"}}), 500, "HTTPInternalServerError")
    monkeypatch.setitem(render.RENDER, "networks", lambda *a: 1 / 0)
    neutron_error(c.post("/v2.0/networks", json={"network": {"name": "n"}}), 500)
    monkeypatch.undo()
    assert cloud(c) == before


# ---- item 2: foreign devices and router interfaces through the port API --------------------
ROUTER_OWNERS = ["network:router_interface_distributed", "network:router_interface", "network:router_gateway",
                 "network:router_centralized_snat"]


@pytest.mark.parametrize("owner", ROUTER_OWNERS)
def test_foreign_router_as_device_is_refused(token_app, owner):
    with TestClient(token_app) as c:
        build_topology(c, headers=A)
        bob_router = ok(c.post("/v2.0/routers", json={"router": {"name": "b"}}, headers=BOB))["router"]
        net = ok(c.post("/v2.0/networks", json={"network": {"name": "a"}}, headers=ALICE))["network"]
        ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.8.0.0/24"}}, headers=ALICE))
        before = cloud(c, A)
        neutron_error(c.post("/v2.0/ports", json={"port": {"network_id": net["id"], "device_owner": owner,
                                                           "device_id": bob_router["id"]}}, headers=ALICE),
                      409, "DeviceIDNotOwnedByTenant")
        p = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}, headers=ALICE))["port"]
        mid = cloud(c, A)
        neutron_error(c.put(f"/v2.0/ports/{p['id']}", json={"port": {"device_owner": owner,
                                                                     "device_id": bob_router["id"]}}, headers=ALICE),
                      409, "DeviceIDNotOwnedByTenant")
        assert cloud(c, A) == mid
        ok(c.delete(f"/v2.0/ports/{p['id']}", headers=ALICE), 204)
        assert cloud(c, A)["ports"] == before["ports"]
        ok(c.delete(f"/v2.0/routers/{bob_router['id']}", headers=BOB), 204)



def test_router_interfaces_only_through_add_router_interface(admin):
    """Was: a port with the router's own interface owner skipped every check (overlap included)."""
    c, ids = admin
    net2 = ok(c.post("/v2.0/networks", json={"network": {"name": "n2"}}))["network"]
    ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": net2["id"], "cidr": "10.0.0.0/25"}}))   # overlaps priv
    before = cloud(c)
    for owner in ("network:router_interface_distributed", "network:router_interface"):
        neutron_error(c.post("/v2.0/ports", json={"port": {"network_id": net2["id"], "device_owner": owner,
                                                           "device_id": ids["router"]}}), 400)
    p = ok(c.post("/v2.0/ports", json={"port": {"network_id": net2["id"]}}))["port"]
    # the router API makes the same check it always makes: overlapping CIDR
    neutron_error(c.put(f"/v2.0/routers/{ids['router']}/add_router_interface", json={"port_id": p["id"]}), 400)
    ok(c.delete(f"/v2.0/ports/{p['id']}"), 204)
    after = cloud(c)
    assert {k: v for k, v in after.items() if k != "revision"} == {k: v for k, v in before.items() if k != "revision"}


# ---- item 3: service subnets refuse explicit requests from owners they do not serve -------
def test_agent_gateway_subnet_refuses_explicit_requests(admin):
    c, ids = admin
    before = cloud(c)
    fg = ids["s_fg"]
    cases = [
        ("POST", "/v2.0/floatingips", {"floatingip": {"floating_network_id": ids["ext"], "subnet_id": fg}}),
        ("POST", "/v2.0/floatingips", {"floatingip": {"floating_network_id": ids["ext"],
                                                      "floating_ip_address": "100.64.0.77"}}),
        ("POST", "/v2.0/floatingips", {"floatingip": {"floating_network_id": ids["ext"], "subnet_id": fg,
                                                      "floating_ip_address": "100.64.0.77"}}),
        ("PUT", f"/v2.0/routers/{ids['router']}", {"router": {"external_gateway_info": {
            "network_id": ids["ext"], "external_fixed_ips": [{"subnet_id": fg}]}}}),
        ("PUT", f"/v2.0/routers/{ids['router']}", {"router": {"external_gateway_info": {
            "network_id": ids["ext"], "external_fixed_ips": [{"ip_address": "100.64.0.77"}]}}}),
        ("POST", "/v2.0/routers", {"router": {"external_gateway_info": {
            "network_id": ids["ext"], "external_fixed_ips": [{"subnet_id": fg}]}}}),
        ("POST", "/v2.0/ports", {"port": {"network_id": ids["ext"], "device_owner": "compute:nova",
                                          "fixed_ips": [{"subnet_id": fg}]}}),
        ("POST", "/v2.0/ports", {"port": {"network_id": ids["ext"], "device_owner": "compute:nova",
                                          "fixed_ips": [{"ip_address": "100.64.0.77"}]}}),
        ("POST", "/v2.0/ports", {"port": {"network_id": ids["ext"], "fixed_ips": [{"subnet_id": fg}]}}),
        # the FIP-only subnet serves floating IPs only
        ("POST", "/v2.0/ports", {"port": {"network_id": ids["ext"], "device_owner": "compute:nova",
                                          "fixed_ips": [{"subnet_id": ids["s_fip"]}]}}),
        ("PUT", f"/v2.0/routers/{ids['router']}", {"router": {"external_gateway_info": {
            "network_id": ids["ext"], "external_fixed_ips": [{"subnet_id": ids["s_fip"]}]}}}),
    ]
    for method, path, body in cases:
        err = neutron_error(c.request(method, path, json=body), 400)
        assert "service" in err["message"], err
        assert cloud(c) == before, (method, path, body)
    p = ok(c.post("/v2.0/ports", json={"port": {"network_id": ids["ext"], "device_owner": "compute:nova"}}))["port"]
    neutron_error(c.put(f"/v2.0/ports/{p['id']}", json={"port": {"fixed_ips": [{"subnet_id": fg}]}}), 400)
    # what the subnets do serve still works
    f = ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"],
                                                             "subnet_id": ids["s_fip"]}}))["floatingip"]
    assert f["floating_ip_address"].startswith("198.51.100.")
    f = ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"],
                                                             "floating_ip_address": "203.0.113.77"}}))["floatingip"]
    assert f["subnet_id"] == ids["s_gw"]


# ---- item 4: router-owned ports keep their owner; the model stays consistent ---------------
def _router_ports(c, router):
    return {p["device_owner"]: p for p in ok(c.get(f"/v2.0/ports?device_id={router}"))["ports"]}


@pytest.mark.parametrize("owner", ["network:router_gateway", "network:router_interface_distributed",
                                   "network:router_centralized_snat"])
@pytest.mark.parametrize("change", [{"device_owner": ""}, {"device_id": ""}, {"device_owner": "compute:nova"},
                                    {"device_id": "elsewhere"}, {"binding:host_id": "compute1"}])
def test_router_ports_keep_their_owner(admin, owner, change):
    c, ids = admin
    port = _router_ports(c, ids["router"])[owner]
    before = cloud(c)
    if change.get("binding:host_id") == port["binding:host_id"]:
        change = {"binding:host_id": "network1-other"}
    neutron_error(c.put(f"/v2.0/ports/{port['id']}", json={"port": change}), 409, "L3PortInUse")
    assert cloud(c) == before


def test_agent_gateway_port_keeps_its_owner(admin):
    c, _ids = admin
    (fg,) = ok(c.get("/v2.0/ports?device_owner=network:floatingip_agent_gateway"))["ports"]
    before = cloud(c)
    for change in ({"device_owner": ""}, {"device_id": "x"}, {"binding:host_id": "network1"}):
        neutron_error(c.put(f"/v2.0/ports/{fg['id']}", json={"port": change}), 409, "L3PortInUse")
    assert cloud(c) == before



def test_router_interface_addresses_cannot_change(admin):
    c, ids = admin
    ports = _router_ports(c, ids["router"])
    before = cloud(c)
    for owner in ("network:router_interface_distributed", "network:router_centralized_snat"):
        neutron_error(c.put(f"/v2.0/ports/{ports[owner]['id']}", json={"port": {"fixed_ips": [
            {"subnet_id": ids["s_priv"], "ip_address": "10.0.0.200"}]}}), 400, "IPAddressChangeNotAllowed")
    assert cloud(c) == before
    # a gateway port's address may move (Neutron allows it); the router follows
    gw = ok(c.put(f"/v2.0/ports/{ports['network:router_gateway']['id']}", json={"port": {"fixed_ips": [
        {"subnet_id": ids["s_gw"], "ip_address": "203.0.113.99"}]}}))["port"]
    assert gw["fixed_ips"] == [{"subnet_id": ids["s_gw"], "ip_address": "203.0.113.99"}]
    r = ok(c.get(f"/v2.0/routers/{ids['router']}"))["router"]
    assert r["external_gateway_info"]["external_fixed_ips"] == gw["fixed_ips"]


def test_gateway_subnet_cannot_vanish_under_a_router(admin):
    """Was: clear the gateway port's owner, delete it, delete its subnet: the router kept the address."""
    c, ids = admin
    gw = _router_ports(c, ids["router"])["network:router_gateway"]
    neutron_error(c.put(f"/v2.0/ports/{gw['id']}", json={"port": {"device_owner": "", "device_id": ""}}),
                  409, "L3PortInUse")
    neutron_error(c.delete(f"/v2.0/ports/{gw['id']}"), 409, "L3PortInUse")
    neutron_error(c.delete(f"/v2.0/subnets/{ids['s_gw']}"), 409, "SubnetInUse")
    r = ok(c.get(f"/v2.0/routers/{ids['router']}"))["router"]
    ips = r["external_gateway_info"]["external_fixed_ips"]
    assert ips == gw["fixed_ips"] and all(ok(c.get(f"/v2.0/subnets/{f['subnet_id']}")) for f in ips)
