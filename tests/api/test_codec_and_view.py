"""The Cloud<->JSON codec is lossless, and host views are valid sub-clouds with what agents need."""
from __future__ import annotations

import json

import pytest

from dvrnet.api.hostview import host_view
from dvrnet.model import Cloud, NotFound
from dvrnet.model.placement import routers_on_host
from dvrnet.ops import Workspace
from dvrnet.wire.codec import cloud_from_json, cloud_to_json


def _cloud() -> Cloud:
    ws = Workspace()
    ws.register_host("network1", mode="dvr_snat")
    ws.register_host("compute1")
    ws.register_host("compute2")
    ext = ws.create_network("ext", external=True)
    gw_sub = ws.create_subnet(ext.id, "203.0.113.0/24")
    ws.create_subnet(ext.id, "198.51.100.0/24", service_types=("network:floatingip",))
    ws.create_subnet(ext.id, "100.64.0.0/24", gateway_ip=None, service_types=("network:floatingip_agent_gateway",))
    r = ws.create_router("r1", external_gateway_info={"network_id": ext.id})
    ws.create_router("r-idle")
    net = ws.create_network("priv", project_id="p1")
    s = ws.create_subnet(net.id, "10.0.0.0/24", dns_nameservers=("192.0.2.53",))
    ws.add_router_interface(r.id, subnet_id=s.id)
    vm1 = ws.create_port(net.id, device_owner="compute:nova", host="compute1", name="vm1")
    ws.create_port(net.id, device_owner="compute:nova", host="compute2", name="vm2")
    ws.create_floatingip(ext.id, port_id=vm1.id, description="web")
    ws.create_floatingip(ext.id, subnet_id=gw_sub.id)
    return ws.snapshot()


def test_round_trip_is_lossless_and_json_safe():
    c = _cloud()
    data = cloud_to_json(c)
    again = cloud_from_json(json.loads(json.dumps(data)))
    assert again == c
    assert cloud_to_json(again) == data
    assert again.validate() is again


def test_decode_names_the_bad_field():
    data = cloud_to_json(_cloud())
    data["subnets"][0]["cidr"] = "not-a-cidr"
    with pytest.raises(ValueError, match=r"subnets\[0\]\.cidr"):
        cloud_from_json(data)
    data = cloud_to_json(_cloud())
    data["ports"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="colour"):
        cloud_from_json(data)


def test_compute_host_view_has_router_ports_neighbours_and_its_fg_port():
    c = _cloud()
    v = host_view(c, "compute1")
    assert v.validate() is v and v.revision == c.revision
    assert set(v.hosts) == {"compute1"}
    assert {r.name for r in v.routers.values()} == {"r1"}
    owners = sorted(p.device_owner for p in v.ports.values())
    assert "network:floatingip_agent_gateway" in owners
    assert "network:router_interface_distributed" in owners
    assert "network:router_gateway" in owners
    assert {p.name for p in v.ports.values() if p.device_owner.startswith("compute:")} == {"vm1", "vm2"}
    fg = [p for p in v.ports.values() if p.device_owner == "network:floatingip_agent_gateway"]
    assert [p.device_id for p in fg] == ["compute1"]
    assert {f.description for f in v.floatingips.values()} == {"web"}
    assert len(v.subnets) == 4     # every external subnet plus the tenant subnet
    assert cloud_from_json(cloud_to_json(v)) == v
    v2 = host_view(c, "compute2")      # the router is there too, vm1's FIP is not (not served there)
    assert v2.validate() is v2 and {r.name for r in v2.routers.values()} == {"r1"}
    assert "vm1" in {p.name for p in v2.ports.values()} and not v2.floatingips


def test_snat_host_view_has_the_router_and_no_fg_port():
    c = _cloud()
    v = host_view(c, "network1")
    assert {r.name for r in v.routers.values()} == {"r1"}
    assert routers_on_host(c, "network1") == ()
    assert any(p.device_owner == "network:router_centralized_snat" for p in v.ports.values())
    assert not any(p.device_owner == "network:floatingip_agent_gateway" for p in v.ports.values())
    assert v.validate() is v and not v.floatingips      # no FIP is served on the SNAT host


def test_unknown_host_is_not_found():
    with pytest.raises(NotFound):
        host_view(_cloud(), "nope")
