"""`Cloud.validate` and a router's gateway (issue 10, item 4): the gateway's addresses are those
of exactly one gateway port of the router, so a router can never report an address that no port
holds (e.g. one of a deleted subnet)."""
from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

import pytest

from dvrnet.model import Cloud, ExternalGateway, FixedIP, InvalidInput, Network, Port, Router, Subnet

GW = "network:router_gateway"
IP = (FixedIP("es", A("203.0.113.5")),)


def parts(routers, ports=()):
    ext = Network("ext", external=True)
    es = Subnet("es", "ext", N("203.0.113.0/24"), A("203.0.113.1"))
    return {"networks": [ext], "subnets": [es], "routers": routers, "ports": list(ports)}


def field(**kw) -> str:
    with pytest.raises(InvalidInput) as e:
        Cloud.of(**parts(**kw)).validate()
    return e.value.field


def test_consistent_gateway_passes():
    Cloud.of(**parts([Router("r", gateway=ExternalGateway("ext", IP))], [Port("g", "ext", GW, "r", fixed_ips=IP)])).validate()
    Cloud.of(**parts([Router("r")])).validate()


def test_gateway_without_its_port():
    """What the admin could make before: the gateway port unowned, deleted, its subnet gone."""
    assert field(routers=[Router("r", gateway=ExternalGateway("ext", IP))]) == "external_gateway_info"
    assert field(routers=[Router("r", gateway=ExternalGateway("ext", (FixedIP("gone", A("192.0.2.5")),)))]) \
        == "external_gateway_info"
    assert field(routers=[Router("r", gateway=ExternalGateway("ext", IP))],
                 ports=[Port("g", "ext", "", "", fixed_ips=IP)]) == "external_gateway_info"


def test_gateway_addresses_must_be_its_ports():
    other = (FixedIP("es", A("203.0.113.6")),)
    assert field(routers=[Router("r", gateway=ExternalGateway("ext", other))],
                 ports=[Port("g", "ext", GW, "r", fixed_ips=IP)]) == "external_fixed_ips"
    assert field(routers=[Router("r", gateway=ExternalGateway("ext", IP))],
                 ports=[Port("g", "ext", GW, "r", fixed_ips=IP),
                        Port("h", "ext", GW, "r", fixed_ips=other)]) == "external_gateway_info"


def test_gateway_port_without_gateway():
    assert field(routers=[Router("r")], ports=[Port("g", "ext", GW, "r", fixed_ips=IP)]) == "external_gateway_info"
