"""Validation of single resources and of a whole `Cloud`: every error names the field at fault."""
from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

import pytest

from dvrnet.model import (
    AllocationPool,
    Cloud,
    ExternalGateway,
    FixedIP,
    FloatingIP,
    Host,
    InvalidInput,
    Network,
    Port,
    Router,
    Subnet,
)
from dvrnet.model.resources import default_pools, parse_cidr, parse_ip


def field_of(fn) -> str:
    with pytest.raises(InvalidInput) as e:
        fn()
    assert e.value.status == 400 and e.value.type == "InvalidInput"
    assert f"Invalid input for {e.value.field}" in e.value.message
    return e.value.field


def pool(a, b):
    return AllocationPool(A(a), A(b))


def test_bad_cidr_names_cidr():
    assert field_of(lambda: parse_cidr("cidr", "10.0.0.0/33")) == "cidr"
    assert field_of(lambda: parse_cidr("cidr", "10.0.0.1/24")) == "cidr"   # host bits
    assert field_of(lambda: parse_cidr("cidr", "2001:db8::/64")) == "cidr"  # IPv4 only
    assert field_of(lambda: Subnet("s", "n", "10.0.0.0/24")) == "cidr"      # not parsed
    assert field_of(lambda: Subnet("s", "n", N("10.0.0.0/31"))) == "cidr"   # too small


def test_bad_ip_names_field():
    assert field_of(lambda: parse_ip("gateway_ip", "10.0.0.300")) == "gateway_ip"


def test_gateway_outside_subnet():
    assert field_of(lambda: Subnet("s", "n", N("10.0.0.0/24"), A("10.0.1.1"))) == "gateway_ip"
    assert field_of(lambda: Subnet("s", "n", N("10.0.0.0/24"), A("10.0.0.255"))) == "gateway_ip"


def test_pools_outside_overlapping_or_with_gateway():
    net = N("10.0.0.0/24")
    assert field_of(lambda: Subnet("s", "n", net, None, (pool("10.0.0.10", "10.0.1.5"),))) == "allocation_pools"
    assert field_of(lambda: Subnet("s", "n", net, None, (pool("10.0.0.20", "10.0.0.10"),))) == "allocation_pools"
    assert field_of(lambda: Subnet("s", "n", net, None, (pool("10.0.0.10", "10.0.0.20"),
                                                         pool("10.0.0.15", "10.0.0.30")))) == "allocation_pools"
    assert field_of(lambda: Subnet("s", "n", net, A("10.0.0.12"), (pool("10.0.0.10", "10.0.0.20"),))) == "allocation_pools"
    assert field_of(lambda: Subnet("s", "n", net, None, (pool("10.0.0.0", "10.0.0.20"),))) == "allocation_pools"


def test_default_pools_skip_gateway():
    assert default_pools(N("10.0.0.0/29"), A("10.0.0.1")) == (pool("10.0.0.2", "10.0.0.6"),)
    assert default_pools(N("10.0.0.0/29"), A("10.0.0.3")) == (pool("10.0.0.1", "10.0.0.2"), pool("10.0.0.4", "10.0.0.6"))
    assert default_pools(N("10.0.0.0/29"), None) == (pool("10.0.0.1", "10.0.0.6"),)
    s = Subnet("s", "n", N("10.0.0.0/29"), A("10.0.0.1"))
    assert not s.in_pools(A("10.0.0.1")) and s.in_pools(A("10.0.0.2"))


def test_unknown_or_repeated_service_type():
    net = N("10.0.0.0/24")
    assert field_of(lambda: Subnet("s", "n", net, service_types=("network:bogus",))) == "service_types"
    assert field_of(lambda: Subnet("s", "n", net, service_types=("compute:",))) == "service_types"
    assert field_of(lambda: Subnet("s", "n", net, service_types=("compute:nova", "compute:nova"))) == "service_types"
    Subnet("s", "n", net, service_types=("compute:nova", "network:floatingip_agent_gateway"))


def test_single_resource_checks():
    assert field_of(lambda: Network("n", mtu=40)) == "mtu"
    assert field_of(lambda: Network("")) == "id"
    assert field_of(lambda: Port("p", "n", mac_address="FA:16:3E:00:00:01")) == "mac_address"
    assert field_of(lambda: Port("p", "n", fixed_ips=(FixedIP("s", A("10.0.0.5")), FixedIP("s", A("10.0.0.5"))))) == "fixed_ips"
    assert field_of(lambda: FloatingIP("f", "n", A("1.2.3.4"), "s", port_id="p")) == "fixed_ip_address"
    assert field_of(lambda: Host("")) == "host"


def base():
    ext = Network("ext", external=True)
    ten = Network("ten")
    es = Subnet("es", "ext", N("203.0.113.0/24"), A("203.0.113.1"))
    ts = Subnet("ts", "ten", N("10.0.0.0/24"), A("10.0.0.1"))
    vm = Port("vm", "ten", "compute:nova", fixed_ips=(FixedIP("ts", A("10.0.0.5")),))
    return {"networks": [ext, ten], "subnets": [es, ts], "ports": [vm]}


def cloud_field(**kw) -> str:
    parts = base()
    for k, v in kw.items():
        parts[k] = parts.get(k, []) + v
    return field_of(lambda: Cloud.of(**parts).validate())


def test_valid_cloud_passes():
    Cloud.of(**base()).validate()


def test_overlapping_subnets_on_one_network():
    assert cloud_field(subnets=[Subnet("es2", "ext", N("203.0.113.128/25"), None)]) == "cidr"


def test_subnet_of_missing_network():
    assert cloud_field(subnets=[Subnet("x", "nope", N("192.0.2.0/24"))]) == "network_id"


def test_fixed_ip_problems():
    assert cloud_field(ports=[Port("p", "ten", fixed_ips=(FixedIP("es", A("203.0.113.9")),))]) == "fixed_ips"
    assert cloud_field(ports=[Port("p", "ten", fixed_ips=(FixedIP("ts", A("10.0.1.9")),))]) == "fixed_ips"
    assert cloud_field(ports=[Port("p", "ten", fixed_ips=(FixedIP("ts", A("10.0.0.5")),))]) == "fixed_ips"  # held twice
    assert cloud_field(ports=[Port("p", "gone")]) == "network_id"


def test_router_gateway_must_be_external():
    assert cloud_field(routers=[Router("r", gateway=ExternalGateway("ten"))]) == "external_gateway_info"


def test_fip_checks():
    assert cloud_field(floatingips=[FloatingIP("f", "ten", A("10.0.0.9"), "ts")]) == "floating_network_id"
    assert cloud_field(floatingips=[FloatingIP("f", "ext", A("198.51.100.9"), "es")]) == "floating_ip_address"
    assert cloud_field(floatingips=[FloatingIP("f", "ext", A("203.0.113.9"), "es", "vm", A("10.0.0.6"))]) == "fixed_ip_address"
    assert cloud_field(floatingips=[FloatingIP("f", "ext", A("203.0.113.9"), "es", "nope", A("10.0.0.5"))]) == "port_id"
    assert cloud_field(floatingips=[FloatingIP("f", "ext", A("203.0.113.9"), "es"),
                                    FloatingIP("g", "ext", A("203.0.113.9"), "es")]) == "floating_ip_address"
    Cloud.of(**{**base(), "floatingips": [FloatingIP("f", "ext", A("203.0.113.9"), "es", "vm", A("10.0.0.5"))]}).validate()
