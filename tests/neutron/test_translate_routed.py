"""Routed mode in Neutron mode (issue 15): the translation of an external network tagged
`dvrnet:routed` and its typed subnets, on answers captured from a real neutron-server 25.2.3
running `dvrnet lab up --routed --control neutron` (tests/neutron/payloads/routed-*.json):

- routed-sync-compute1.json / routed-sync-network1.json: `sync_routers` of both routers for a
  compute and the SNAT node, each gateway set with `router set --external-gateway public
  --fixed-ip subnet=private --fixed-ip subnet=red|green`;
- routed-get-networks.json: `get_networks(filters={'id': [public]}, fields=['id', 'tags'])`
  after `openstack network set --tag dvrnet:routed public`;
- routed-bulk-pull-subnets.json: `bulk_pull('Subnet', '1.2', {'network_id': public})` per network;
- routed-sync-network1-public-only-gateway.json: a router whose gateway was set with
  `--fixed-ip subnet=red` alone (no private address).
Captured with rpc.L3Plugin's own calls against the lab's RabbitMQ."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from dvrnet.model.placement import snat_routers_on_host
from dvrnet.neutron.translate import BadAnswer, ExternalInfo, Refused, cloud_of, external_info, translate_router
from dvrnet.plan import plan_host
from dvrnet.plan.numbers import MAIN_TABLE_ID

PAYLOADS = Path(__file__).parent / "payloads"
EXT = "9dc2fc77-53a0-4293-a051-bdfd8864d51b"
RED, GREEN, PRIVATE = ("9d9994b6-5e91-41aa-84c8-80a9cf981c84", "83e4d7de-a31f-4b73-ab47-1c61c9e9df6a",
                       "52e426f2-1cb3-43dc-880a-898ecc7a2345")
ROUTER1, ROUTER2 = "347c7de8-4fb6-4ca8-8583-25863321c68b", "e79c3765-36b4-4b9d-b755-b4010990df14"
TYPES = ("network:floatingip_agent_gateway", "network:router_gateway")


def load(name: str):
    return json.loads((PAYLOADS / name).read_text())


@pytest.fixture
def info() -> dict[str, ExternalInfo]:
    return external_info(load("routed-get-networks.json"), load("routed-bulk-pull-subnets.json"))


def graphs(host: str, info) -> list:
    return [translate_router(r, host, external=info) for r in load(f"routed-sync-{host}.json")]


def test_external_info_from_the_real_answers(info):
    assert set(info) == {EXT}
    e = info[EXT]
    assert e.routed and e.tags == ("dvrnet:routed",)
    assert e.service_types == {PRIVATE: TYPES}          # untyped subnets are not listed


def test_routed_network_and_private_subnet_in_the_model(info):
    g = graphs("compute1", info)[0]
    net = g.networks[EXT]
    assert net.external and net.routed
    subs = {s.id: s for s in g.subnets[EXT]}
    assert set(subs) == {RED, GREEN, PRIVATE}
    assert subs[PRIVATE].routed_private and subs[PRIVATE].service_types == TYPES
    assert str(subs[PRIVATE].gateway_ip) == "100.64.0.254"          # the ToR
    assert not subs[RED].routed_private and not subs[GREEN].routed_private
    gw = g.router.gateway
    assert gw is not None and {f.subnet_id for f in gw.external_fixed_ips} == {PRIVATE, RED}
    # tenant networks carry no tags; the payload alone (no ExternalInfo) is l2, as before
    assert not any(n.tags for nid, n in g.networks.items() if nid != EXT)
    plain = translate_router(load("routed-sync-compute1.json")[0], "compute1")
    assert not plain.networks[EXT].routed and not any(s.service_types for s in plain.subnets[EXT])


def test_compute_node_plans_the_routed_fip_namespace(info):
    cloud = cloud_of("compute1", "dvr", graphs("compute1", info))
    state = plan_host(cloud, "compute1")
    ns = state.namespaces[f"fip-{EXT}"]
    fg = next(d for d in ns.links if d.startswith("fg-"))
    assert {a.cidr for a in ns.addresses if a.dev == fg} == {"100.64.0.116/24"}     # private only
    assert ns.sysctls[f"net.ipv4.conf.{fg}.proxy_arp"] == "0"
    main = {r.dst for r in ns.routes if r.table == MAIN_TABLE_ID}
    assert {"198.51.100.64/32", "203.0.113.76/32", "198.51.100.73/32"} <= main
    assert any(r.dst == "default" and r.via == "100.64.0.254" for r in ns.routes)
    bird = ns.processes["bird"]
    conf = dict(bird.files)
    text = next(v for k, v in conf.items() if k.endswith("bird.conf"))
    assert "neighbor 100.64.0.254 as 65000" in text and "local 100.64.0.116" in text
    assert "198.51.100.0/24{32,32}" in text and "203.0.113.0/24{32,32}" in text
    assert "100.64.0.0/24" not in text.split("import filter")[1].split(";")[0]      # never the private subnet


def test_network_node_plans_routed_snat(info):
    cloud = cloud_of("network1", "dvr_snat", graphs("network1", info))
    assert {r.id for r in snat_routers_on_host(cloud, "network1")} == {ROUTER1, ROUTER2}
    state = plan_host(cloud, "network1")
    snat = state.namespaces[f"snat-{ROUTER1}"]
    qg = next(d for d in snat.links if d.startswith("qg-"))
    assert {a.cidr for a in snat.addresses if a.dev == qg} == {"100.64.0.196/24"}   # no public address
    assert any(r.dst == "203.0.113.10/32" and r.dev == qg for r in snat.routes)      # what BIRD announces
    assert "bird" in snat.processes


def test_gateway_without_a_private_address_is_refused(info):
    r = load("routed-sync-network1-public-only-gateway.json")[0]
    with pytest.raises(Refused) as e:
        translate_router(r, "network1", external=info)
    assert "no address in a private subnet" in e.value.reason
    assert f"--fixed-ip subnet={PRIVATE} --fixed-ip subnet=PUBLIC" in e.value.reason
    translate_router(r, "network1")                 # the same router on an l2 network is served
    untagged = {EXT: ExternalInfo((), info[EXT].service_types)}
    translate_router(r, "network1", external=untagged)


def test_tag_removed_makes_the_network_l2_again(info):
    untagged = {EXT: ExternalInfo(("other",), info[EXT].service_types)}
    g = translate_router(load("routed-sync-compute1.json")[0], "compute1", external=untagged)
    assert not g.networks[EXT].routed and g.networks[EXT].tags == ("other",)
    state = plan_host(cloud_of("compute1", "dvr", [g]), "compute1")
    assert "bird" not in state.namespaces[f"fip-{EXT}"].processes


def test_unknown_service_types_are_left_out():
    subs = copy.deepcopy(load("routed-bulk-pull-subnets.json"))
    d = next(p["versioned_object.data"] for p in subs[EXT] if p["versioned_object.data"]["id"] == RED)
    d["service_types"] = ["network:floatingip", "vendor:something"]
    info = external_info(load("routed-get-networks.json"), subs)
    assert info[EXT].service_types[RED] == ("network:floatingip",)


@pytest.mark.parametrize("networks, subnets, field", [
    ([{"tags": []}], {}, r"get_networks\[0\]: not a network with an id"),
    ([{"id": EXT, "tags": "dvrnet:routed"}], {}, r"get_networks\[0\]\.tags: expected a list"),
    ([{"id": EXT, "tags": [""]}], {}, r"get_networks\[0\]\.tags"),
    ([], {EXT: [{"versioned_object.name": "Network"}]}, r"bulk_pull\(Subnet, network_id=.*\)\[0\]: not a Subnet"),
    ([], {EXT: [{"versioned_object.name": "Subnet", "versioned_object.data": {"id": RED, "service_types": "x"}}]},
     r"\[0\]\.service_types: expected a list of strings"),
    ([], {EXT: [{"versioned_object.name": "Subnet", "versioned_object.data": {"id": RED, "network_id": "other"}}]},
     r"\[0\]\.network_id"),
])
def test_malformed_answers_name_the_field(networks, subnets, field):
    with pytest.raises(BadAnswer, match=field):
        external_info(networks, subnets)
