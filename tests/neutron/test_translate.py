"""The payload -> model translation, on payloads captured from a real neutron-server 25.2.3
(tests/neutron/payloads: payload-*.json and agent-gw-port-compute1.json from the design notes,
probe-*.json from this suite's own run of the server: sync_routers and get_ports_by_subnet)."""
from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path

import pytest

from dvrnet.model import DeviceOwner
from dvrnet.model.placement import local_fips, routers_on_host, snat_routers_on_host
from dvrnet.neutron.translate import Refused, cloud_of, translate_router
from dvrnet.plan import plan_host
from dvrnet.plan.numbers import MAIN_TABLE_ID

PAYLOADS = Path(__file__).parent / "payloads"
RED, GREEN, SVC = "e6be814d-20aa-4bbd-8d00-6f70db9fba33", "289b48ee-bfcd-4cd3-aec1-300e2c864ef3", \
    "b1c7bea8-1863-4bad-a8d7-8efbdf580cd8"
EXT = "47dab4d0-b7ee-4d30-8e5f-534d8ca68f87"
ROUTER = "81e0b6f4-e7c9-44e8-98b2-af562ef216cd"
TENANT_SUBNET = "089ca4bc-f292-4a33-bd36-98d3b8f88664"


def load(name: str):
    return json.loads((PAYLOADS / name).read_text())


@pytest.fixture
def compute1() -> dict:
    return load("payload-compute1.json")[0]


@pytest.fixture
def network1() -> dict:
    return load("payload-network1.json")[0]


def test_external_subnets_and_gateways_from_gw_port_and_extra_subnets(compute1):
    g = translate_router(compute1, "compute1")
    subs = {s.id: s for s in g.subnets[EXT]}
    assert set(subs) == {RED, GREEN, SVC}
    assert str(subs[RED].cidr) == "203.0.113.0/24" and str(subs[RED].gateway_ip) == "203.0.113.1"
    assert str(subs[GREEN].cidr) == "198.51.100.0/24" and str(subs[GREEN].gateway_ip) == "198.51.100.1"
    assert str(subs[SVC].cidr) == "100.64.0.0/24" and subs[SVC].gateway_ip is None
    assert g.networks[EXT].external and g.networks[EXT].mtu == 1500
    assert g.router.gateway is not None and g.router.gateway.network_id == EXT
    assert [str(f.ip_address) for f in g.router.gateway.external_fixed_ips] == ["203.0.113.77"]


def test_fip_subnet_is_found_by_its_address(compute1):
    g = translate_router(compute1, "compute1")
    by_addr = {str(f.floating_ip_address): f for f in g.fips}
    assert by_addr["198.51.100.104"].subnet_id == GREEN
    assert by_addr["203.0.113.26"].subnet_id == RED
    assert str(by_addr["203.0.113.26"].fixed_ip_address) == "10.0.1.54"
    assert g.skipped_fips == {}


def test_agent_gateway_port_from_floatingip_agent_interfaces(compute1):
    g = translate_router(compute1, "compute1")
    fg = g.agent_gateways[EXT]
    assert fg.device_owner == DeviceOwner.AGENT_GATEWAY.value
    assert fg.device_id == "compute1" and fg.host == "compute1"      # dvrnet's model: the host, not the agent id
    assert [(f.subnet_id, str(f.ip_address)) for f in fg.fixed_ips] == [(SVC, "100.64.0.174")]
    assert not g.needs_agent_gateway
    cloud = cloud_of("compute1", "dvr", [g])
    assert cloud.agent_gateway_port("compute1", EXT) == fg


def test_missing_agent_gateway_port_is_asked_for_and_then_used(compute1):
    r = copy.deepcopy(compute1)
    r["_floatingip_agent_interfaces"] = []
    g = translate_router(r, "compute1")
    assert g.needs_agent_gateway
    gw = load("agent-gw-port-compute1.json")
    g2 = translate_router(r, "compute1", agent_gateways={EXT: gw})
    assert not g2.needs_agent_gateway
    assert [str(f.ip_address) for f in g2.agent_gateways[EXT].fixed_ips] == ["100.64.0.174"]
    # an fg- port bound to another host is not this host's
    other = dict(gw, **{"binding:host_id": "compute2"})
    assert translate_router(r, "compute1", agent_gateways={EXT: other}).needs_agent_gateway


def test_interfaces_and_snat_interfaces(compute1):
    g = translate_router(compute1, "compute1")
    own = {p.device_owner: p for p in g.own_ports}
    qr = own[DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value]
    sg = own[DeviceOwner.ROUTER_SNAT.value]
    gw = own[DeviceOwner.ROUTER_GATEWAY.value]
    assert [str(f.ip_address) for f in qr.fixed_ips] == ["10.0.1.1"] and qr.host == "" and qr.device_id == ROUTER
    assert [str(f.ip_address) for f in sg.fixed_ips] == ["10.0.1.33"] and sg.host == "network1"
    assert gw.host == "network1"                    # gw_port_host: the SNAT node
    net = g.networks["58111f6b-82e1-43a5-bdf7-7fc1472a3edf"]
    assert not net.external and net.mtu == 1450
    assert g.tenant_subnet_ids == (TENANT_SUBNET,)


def test_plan_on_compute1_puts_fips_in_the_fip_namespace_and_nat(compute1):
    cloud = cloud_of("compute1", "dvr", [translate_router(compute1, "compute1")])
    state = plan_host(cloud, "compute1")
    fip_ns = state.namespaces[f"fip-{EXT}"]
    qr_ns = state.namespaces[f"qrouter-{ROUTER}"]
    main = {r.dst for r in fip_ns.routes if r.table == MAIN_TABLE_ID}
    assert {"198.51.100.104/32", "203.0.113.26/32"} <= main
    assert any(a.cidr == "100.64.0.174/24" for a in fip_ns.addresses)
    nat = qr_ns.nft[("ip", "dvrnet")]
    elems = {m.name: set(m.elements) for m in nat.maps}
    assert elems["fip2fixed"] == {("198.51.100.104", "10.0.1.38"), ("203.0.113.26", "10.0.1.54")}
    assert f"snat-{ROUTER}" not in state.namespaces


def test_plan_on_network1_is_the_snat_namespace(network1):
    cloud = cloud_of("network1", "dvr_snat", [translate_router(network1, "network1")])
    assert [r.id for r in snat_routers_on_host(cloud, "network1")] == [ROUTER]
    state = plan_host(cloud, "network1")
    snat = state.namespaces[f"snat-{ROUTER}"]
    assert any(a.cidr == "203.0.113.77/24" for a in snat.addresses)
    assert any(a.cidr == "10.0.1.33/24" for a in snat.addresses)


def test_fips_of_other_hosts_are_left_out_and_dest_host_is_served(compute1):
    r = copy.deepcopy(compute1)
    a, b = r["_floatingips"]
    a["host"] = "compute2"                          # bound elsewhere: not ours
    b["host"], b["dest_host"] = "compute2", "compute1"      # live migration to compute1
    g = translate_router(r, "compute1")
    assert [f.id for f in g.fips] == [b["id"]]
    cloud = cloud_of("compute1", "dvr", [g])
    assert [f.id for f in local_fips(cloud, "compute1", cloud.routers[ROUTER])] == [b["id"]]
    # on the source host, the FIP stays until the port has moved
    src = translate_router(r, "compute2")
    assert [f.id for f in src.fips] == [a["id"], b["id"]]


def test_neighbours_from_get_ports_by_subnet():
    """A payload and get_ports_by_subnet answer captured together from the real server."""
    r = load("probe-sync-compute1.json")[0]
    ports = load("probe-ports-by-subnet.json")
    sid = r["_interfaces"][0]["fixed_ips"][0]["subnet_id"]
    extra = dict(copy.deepcopy(ports[0]), id="c0ffee00-0000-4000-8000-000000000001", mac_address="FA:16:3E:00:00:77",
                 fixed_ips=[{"subnet_id": sid, "ip_address": "10.0.1.77"}], name="vm-without-fip")
    g = translate_router(r, "compute1", ports_by_subnet={sid: [*ports, extra]})
    cloud = cloud_of("compute1", "dvr", [g])
    assert [x.id for x in routers_on_host(cloud, "compute1")] == [r["id"]]
    qr = plan_host(cloud, "compute1").namespaces[f"qrouter-{r['id']}"]
    neigh = {(n.ip, n.mac) for n in qr.neighbours}
    assert ("10.0.1.93", "fa:16:3e:39:d6:40") in neigh             # the VM of the FIP
    assert ("10.0.1.77", "fa:16:3e:00:00:77") in neigh             # a VM without a FIP, MAC lower-cased
    sg = next(p for p in ports if p["device_owner"] == "network:router_centralized_snat")
    assert (sg["fixed_ips"][0]["ip_address"], sg["mac_address"]) in neigh


@pytest.mark.parametrize("change, reason", [
    ({"distributed": False}, "not a distributed router"),
    ({"ha": True}, "HA router"),
    ({"routes": [{"destination": "10.9.0.0/24", "nexthop": "10.0.1.5"}]}, "extra routes"),
    ({"enable_default_route_ecmp": True}, "ECMP"),
    ({"_pf_floatingips": [{"id": "x"}]}, "port-forwarding"),
])
def test_routers_dvrnet_cannot_serve_are_refused(compute1, change, reason):
    r = dict(copy.deepcopy(compute1), **change)
    with pytest.raises(Refused, match=reason) as e:
        translate_router(r, "compute1")
    assert e.value.router_id == ROUTER


def test_ipv6_gateway_is_refused(compute1):
    r = copy.deepcopy(compute1)
    r["gw_port"]["fixed_ips"].append({"ip_address": "2001:db8::7", "prefixlen": 64, "subnet_id": "v6"})
    with pytest.raises(Refused, match="IPv6 external gateway"):
        translate_router(r, "compute1")


def test_ipv6_subnets_elsewhere_are_skipped(compute1):
    r = copy.deepcopy(compute1)
    r["gw_port"]["extra_subnets"].append({"id": "v6sub", "cidr": "2001:db8::/64", "gateway_ip": "2001:db8::1"})
    g = translate_router(r, "compute1")
    assert "v6sub" not in {s.id for s in g.subnets[EXT]}


@pytest.mark.parametrize("path, value, field", [
    (("gw_port", "fixed_ips", 0, "ip_address"), "not-an-ip", "gw_port.fixed_ips[0]"),
    (("_interfaces", 0, "subnets", 0, "cidr"), "10.0.1.0/99", "_interfaces[0].subnets[0].cidr"),
    (("_floatingips", 0, "floating_ip_address"), 7, "_floatingips[0]"),
    (("_interfaces",), {"not": "a list"}, "_interfaces"),
    (("gw_port", "subnets", 0, "gateway_ip"), "10.0.0.1", "gw_port.subnets[0]"),
])
def test_malformed_payload_refuses_the_router_naming_the_field(compute1, path, value, field):
    r = copy.deepcopy(compute1)
    node = r
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(Refused) as e:
        translate_router(r, "compute1")
    assert field in e.value.reason


def test_not_a_router_at_all():
    with pytest.raises(Refused, match="not a router object"):
        translate_router(["x"], "compute1")


def test_newest_graph_decides_shared_resources(compute1):
    """A subnet removed from the external network disappears as soon as one router on it is
    fetched again, although an older router's cached payload still lists it."""
    old = translate_router(compute1, "compute1")
    r2 = copy.deepcopy(compute1)
    r2["id"] = "22222222-e7c9-44e8-98b2-af562ef216cd"
    r2["gw_port"]["extra_subnets"] = [s for s in r2["gw_port"]["extra_subnets"] if s["id"] != GREEN]
    r2["_floatingip_agent_interfaces"][0]["extra_subnets"] = [
        s for s in r2["_floatingip_agent_interfaces"][0]["extra_subnets"] if s["id"] != GREEN]
    r2["_floatingips"] = []
    r2["gw_port"]["id"] = "8d8aebce-0000-4000-8000-000000000002"
    r2["gw_port"]["fixed_ips"][0]["ip_address"] = "203.0.113.78"
    for p in r2["_interfaces"] + r2["_snat_router_interfaces"]:
        p["id"] = p["id"][:-4] + "2222"
    new = translate_router(r2, "compute1")
    assert GREEN in cloud_of("compute1", "dvr", [new, old]).subnets
    cloud = cloud_of("compute1", "dvr", [old, new])
    assert GREEN not in cloud.subnets
    assert {str(s.cidr) for s in cloud.subnets_of(EXT)} == {"203.0.113.0/24", "100.64.0.0/24"}


def test_every_fip_address_is_in_its_subnet(compute1):
    g = translate_router(compute1, "compute1")
    subs = {s.id: s for s in g.subnets[EXT]}
    for f in g.fips:
        assert ipaddress.ip_address(f.floating_ip_address) in subs[f.subnet_id].cidr


def test_dvr_snat_node_places_routers_by_the_ports_bound_there():
    """A dvr_snat node is sent routers for their SNAT too: with the ids of the ports bound to it
    (ML2's get_ports_by_vnic_type_and_host), a router with no VM there gets no qrouter-."""
    r = load("probe-sync-compute1.json")[0]
    ports = load("probe-ports-by-subnet.json")
    sid = r["_interfaces"][0]["fixed_ips"][0]["subnet_id"]
    vm = next(p for p in ports if p["device_owner"].startswith("compute:"))
    nowhere = cloud_of("network1", "dvr_snat", [translate_router(r, "network1", {sid: ports}, local_ports=set())])
    assert routers_on_host(nowhere, "network1") == ()
    here = cloud_of("network1", "dvr_snat", [translate_router(r, "network1", {sid: ports}, local_ports={vm["id"]})])
    assert [x.id for x in routers_on_host(here, "network1")] == [r["id"]]
