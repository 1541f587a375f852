"""Workspace operations: Neutron's DVR server behaviour on the in-memory model."""
import itertools
from ipaddress import IPv4Address as A

import pytest

from dvrnet.model import (
    Conflict,
    InvalidInput,
    IpAddressAlreadyAllocated,
    IpAddressGenerationFailure,
    NotFound,
    SubnetInUse,
)
from dvrnet.model.errors import BadRequest
from dvrnet.model.placement import hosts_needing_agent_gateway
from dvrnet.ops import IpRequest, Workspace, errors

AGW = "network:floatingip_agent_gateway"
GW = "network:router_gateway"
SNAT = "network:router_centralized_snat"
DVR_IF = "network:router_interface_distributed"


def make_ws() -> Workspace:
    n = itertools.count()
    return Workspace(id_factory=lambda kind, name: f"{kind}-{name or next(n)}", check=True)


class Lab:
    """The seed's figure: two public subnets and a service subnet; two tenant networks."""

    def __init__(self, snat_hosts=("network1",)):
        ws = self.ws = make_ws()
        ws.register_host("compute1")
        ws.register_host("compute2")
        for h in snat_hosts:
            ws.register_host(h, "dvr_snat")
        self.ext = ws.create_network("ext", external=True).id
        self.red = ws.create_subnet(self.ext, "203.0.113.0/24", name="red").id
        self.green = ws.create_subnet(self.ext, "198.51.100.0/24", name="green").id
        self.svc = ws.create_subnet(self.ext, "100.64.0.0/24", gateway_ip=None, name="svc",
                                    service_types=[AGW]).id
        self.t1 = ws.create_network("t1").id
        self.ts1 = ws.create_subnet(self.t1, "10.1.0.0/24", name="ts1").id
        self.t2 = ws.create_network("t2").id
        self.ts2 = ws.create_subnet(self.t2, "10.2.0.0/24", name="ts2").id

    def router(self, name, ifs=(), gw=True, **kw):
        info = {"network_id": self.ext} if gw else None
        r = self.ws.create_router(name, external_gateway_info=info, **kw).id
        for s in ifs:
            self.ws.add_router_interface(r, subnet_id=s)
        return r

    def vm(self, name, net, host):
        return self.ws.create_port(net, device_owner="compute:nova", host=host, name=name).id

    def ports(self, owner, device_id=None):
        c = self.ws.snapshot()
        return sorted((p for p in c.ports.values() if p.device_owner == owner
                       and (device_id is None or p.device_id == device_id)), key=lambda p: p.id)

    def fg(self, host):
        return self.ws.snapshot().agent_gateway_port(host, self.ext)


def agent_gateways_match_placement(ws: Workspace) -> None:
    c = ws.snapshot()
    have = {(p.device_id, p.network_id) for p in c.ports.values() if p.device_owner == AGW}
    assert have == hosts_needing_agent_gateway(c)
    for p in c.ports.values():
        if p.device_owner == AGW:
            assert p.host == p.device_id
    # the index the settling reads instead of scanning every agent-gateway port
    assert ws._st.bare_agent_gateways == {p.id for p in c.ports.values() if p.device_owner == AGW and not p.fixed_ips}


# ---- networks and subnets -----------------------------------------------------------------
def test_subnet_defaults_and_overlap():
    ws = make_ws()
    n = ws.create_network("n").id
    s = ws.create_subnet(n, "10.0.0.0/24")
    assert s.gateway_ip == A("10.0.0.1") and str(s.allocation_pools[0].start) == "10.0.0.2"
    with pytest.raises(InvalidInput) as e:
        ws.create_subnet(n, "10.0.0.128/25")
    assert e.value.field == "cidr"
    with pytest.raises(errors.GatewayConflictWithAllocationPools):
        ws.create_subnet(n, "10.9.0.0/24", allocation_pools=[("10.9.0.1", "10.9.0.50")])
    with pytest.raises(InvalidInput) as e:
        ws.create_subnet(n, "10.8.0.0/24", service_types=["network:nope"])
    assert e.value.field == "service_types"
    s2 = ws.create_subnet(n, "10.9.0.0/24", gateway_ip=None, allocation_pools=[{"start": "10.9.0.1", "end": "10.9.0.5"}])
    assert s2.gateway_ip is None and len(s2.allocation_pools) == 1
    assert ws.snapshot().revision == 3


def test_delete_network_in_use_and_cleanup():
    lab = Lab()
    ws = lab.ws
    vm = lab.vm("vm", lab.t1, "compute1")
    with pytest.raises(errors.NetworkInUse) as e:
        ws.delete_network(lab.t1)
    assert vm in e.value.message and e.value.status == 409
    ws.delete_port(vm)
    ws.delete_network(lab.t1)
    c = ws.snapshot()
    assert lab.t1 not in c.networks and lab.ts1 not in c.subnets


def test_update_network_external_refused_while_gateway():
    lab = Lab()
    lab.router("r1")
    with pytest.raises(errors.ExternalNetworkInUse):
        lab.ws.update_network(lab.ext, external=False)
    assert lab.ws.update_network(lab.ext, name="public", mtu=1450).mtu == 1450


# ---- router gateway, SNAT scheduling, sg ports --------------------------------------------
def test_router_gateway_port_and_snat_scheduling():
    lab = Lab(snat_hosts=("net-b", "net-a"))
    r1 = lab.router("r1", [lab.ts1])
    r2 = lab.router("r2", [lab.ts2])
    r3 = lab.router("r3")
    gws = {p.device_id: p for p in lab.ports(GW)}
    assert gws[r1].host == "net-a" and gws[r2].host == "net-b" and gws[r3].host == "net-a"
    # gateway from the untyped subnet (service subnet serves only fg ports), lowest free address
    assert [str(f.ip_address) for f in gws[r1].fixed_ips] == ["198.51.100.2"]
    router = lab.ws.snapshot().routers[r1]
    assert router.gateway.network_id == lab.ext and router.gateway.external_fixed_ips == gws[r1].fixed_ips
    sg = lab.ports(SNAT, r1)
    assert len(sg) == 1 and sg[0].host == "net-a" and sg[0].fixed_ips[0].subnet_id == lab.ts1
    assert str(sg[0].fixed_ips[0].ip_address) == "10.1.0.2"


def test_gateway_with_external_fixed_ips_and_refusals():
    lab = Lab()
    ws = lab.ws
    r = ws.create_router("r", external_gateway_info={
        "network_id": lab.ext, "external_fixed_ips": [{"subnet_id": lab.red}, {"ip_address": "198.51.100.77"}]}).id
    gw = lab.ports(GW, r)[0]
    assert [str(f.ip_address) for f in gw.fixed_ips] == ["203.0.113.2", "198.51.100.77"]
    with pytest.raises(InvalidInput):
        ws.update_router(r, external_gateway_info={"network_id": lab.t1})
    with pytest.raises(InvalidInput):
        ws.create_router("x", external_gateway_info={"network_id": lab.ext,
                                                      "external_fixed_ips": [{"ip_address": "203.0.113.1"}]})
    with pytest.raises(IpAddressAlreadyAllocated):
        ws.create_router("x", external_gateway_info={"network_id": lab.ext,
                                                      "external_fixed_ips": [{"ip_address": "198.51.100.77"}]})
    # same network, new addresses: the port is updated in place, the kept address stays
    ws.update_router(r, external_gateway_info={"network_id": lab.ext,
                                               "external_fixed_ips": [{"ip_address": "198.51.100.77"}]})
    gw2 = lab.ports(GW, r)[0]
    assert gw2.id == gw.id and [str(f.ip_address) for f in gw2.fixed_ips] == ["198.51.100.77"]
    assert ws.snapshot().routers[r].gateway.external_fixed_ips == gw2.fixed_ips


def test_unschedulable_gateway_is_scheduled_when_snat_host_registers():
    lab = Lab(snat_hosts=())
    r = lab.router("r", [lab.ts1])
    assert lab.ports(GW, r)[0].host == "" and lab.ports(SNAT, r)[0].host == ""
    lab.ws.register_host("network9", "dvr_snat")
    assert lab.ports(GW, r)[0].host == "network9" and lab.ports(SNAT, r)[0].host == "network9"


def test_sg_ports_follow_interfaces_and_gateway():
    lab = Lab()
    ws = lab.ws
    r = lab.router("r", gw=False)
    ws.add_router_interface(r, subnet_id=lab.ts1)
    assert lab.ports(SNAT, r) == []
    ws.update_router(r, external_gateway_info={"network_id": lab.ext})
    assert [p.fixed_ips[0].subnet_id for p in lab.ports(SNAT, r)] == [lab.ts1]
    ws.add_router_interface(r, subnet_id=lab.ts2)
    assert sorted(p.fixed_ips[0].subnet_id for p in lab.ports(SNAT, r)) == sorted([lab.ts1, lab.ts2])
    ws.remove_router_interface(r, subnet_id=lab.ts1)
    assert [p.fixed_ips[0].subnet_id for p in lab.ports(SNAT, r)] == [lab.ts2]
    ws.update_router(r, external_gateway_info=None)
    assert lab.ports(SNAT, r) == [] and lab.ports(GW, r) == []
    legacy = lab.router("legacy", [lab.ts1], distributed=False)
    assert lab.ports(SNAT, legacy) == []
    assert lab.ports("network:router_interface", legacy)[0].fixed_ips[0].ip_address == A("10.1.0.1")


# ---- interfaces ---------------------------------------------------------------------------
def test_router_interfaces():
    lab = Lab()
    ws = lab.ws
    r = lab.router("r")
    qr = ws.add_router_interface(r, subnet_id=lab.ts1)
    assert qr.device_owner == DVR_IF and qr.device_id == r and qr.fixed_ips[0].ip_address == A("10.1.0.1")
    with pytest.raises(errors.SubnetAlreadyAttached):
        ws.add_router_interface(r, subnet_id=lab.ts1)
    with pytest.raises(BadRequest):
        ws.add_router_interface(r, subnet_id=lab.red)
    with pytest.raises(BadRequest):
        ws.add_router_interface(r, subnet_id=lab.ts2, port_id="x")
    with pytest.raises(errors.L3PortInUse):
        ws.delete_port(qr.id)
    with pytest.raises(errors.RouterInUse):
        ws.delete_router(r)
    # by port: adopts it
    p = ws.create_port(lab.t2, fixed_ips=[IpRequest(ip_address="10.2.0.9")]).id
    q = ws.add_router_interface(r, port_id=p)
    assert q.id == p and q.device_owner == DVR_IF and q.device_id == r
    vm = lab.vm("vm", lab.t2, "compute1")
    ws.update_port(vm, device_id="instance-1")
    with pytest.raises(errors.PortInUse):
        ws.add_router_interface(r, port_id=vm)
    ws.remove_router_interface(r, port_id=p)
    assert p not in ws.snapshot().ports
    with pytest.raises(errors.RouterInterfaceNotFoundForSubnet):
        ws.remove_router_interface(r, subnet_id=lab.ts2)
    ws.remove_router_interface(r, subnet_id=lab.ts1)
    ws.update_router(r, external_gateway_info={})
    ws.delete_router(r)
    assert not [p for p in ws.snapshot().ports.values() if p.device_id == r]


def test_interface_needs_free_gateway():
    lab = Lab()
    ws = lab.ws
    s = ws.create_subnet(lab.t1, "10.3.0.0/24", gateway_ip=None).id
    r = lab.router("r")
    with pytest.raises(InvalidInput):
        ws.add_router_interface(r, subnet_id=s)
    ws.create_port(lab.t2, fixed_ips=[IpRequest(ip_address="10.2.0.1")])
    with pytest.raises(InvalidInput):
        ws.add_router_interface(r, subnet_id=lab.ts2)


# ---- floating IPs -------------------------------------------------------------------------
def test_floatingip_create_associate_and_router_found():
    lab = Lab()
    ws = lab.ws
    r = lab.router("r", [lab.ts1])
    vm = lab.vm("vm", lab.t1, "compute1")
    f = ws.create_floatingip(lab.ext, subnet_id=lab.red, port_id=vm)
    assert f.router_id == r and f.fixed_ip_address == A("10.1.0.3") and f.subnet_id == lab.red
    assert str(f.floating_ip_address) == "203.0.113.2"
    with pytest.raises(errors.FloatingIPPortAlreadyAssociated):
        ws.create_floatingip(lab.ext, port_id=vm)
    with pytest.raises(InvalidInput) as e:
        ws.create_floatingip(lab.t1)
    assert e.value.field == "floating_network_id"
    other = lab.vm("o", lab.t2, "compute1")   # no router on ts2
    with pytest.raises(errors.ExternalGatewayForFloatingIPNotFound) as e:
        ws.create_floatingip(lab.ext, port_id=other)
    assert e.value.status == 404
    g = ws.create_floatingip(lab.ext, floating_ip_address="198.51.100.50")
    assert g.subnet_id == lab.green and g.port_id is None
    with pytest.raises(IpAddressAlreadyAllocated):
        ws.create_floatingip(lab.ext, floating_ip_address="198.51.100.50")
    ws.update_floatingip(f.id, port_id=None)
    g = ws.update_floatingip(g.id, port_id=vm)
    assert g.router_id == r and g.fixed_ip_address == A("10.1.0.3")
    ws.delete_port(vm)
    g = ws.snapshot().floatingips[g.id]
    assert (g.port_id, g.fixed_ip_address, g.router_id) == (None, None, None)
    ws.delete_floatingip(g.id)
    assert g.id not in ws.snapshot().floatingips


def test_fip_blocks_gateway_removal_and_interface_removal():
    lab = Lab()
    ws = lab.ws
    r = lab.router("r", [lab.ts1])
    vm = lab.vm("vm", lab.t1, "compute1")
    f = ws.create_floatingip(lab.ext, port_id=vm)
    with pytest.raises(errors.RouterExternalGatewayInUseByFloatingIp):
        ws.update_router(r, external_gateway_info=None)
    with pytest.raises(errors.RouterInterfaceInUseByFloatingIP):
        ws.remove_router_interface(r, subnet_id=lab.ts1)
    with pytest.raises(errors.FixedIpInUseByFloatingIP):
        ws.update_port(vm, fixed_ips=[IpRequest(subnet_id=lab.ts1)])
    ws.update_floatingip(f.id, port_id=None)
    ws.remove_router_interface(r, subnet_id=lab.ts1)
    ws.update_router(r, external_gateway_info=None)


def test_floating_ip_subnet_preferred_and_exhaustion():
    ws = make_ws()
    ext = ws.create_network("ext", external=True).id
    ws.create_subnet(ext, "203.0.113.0/30", name="gwsub")           # one address: .2
    fs = ws.create_subnet(ext, "198.51.100.0/30", name="fipsub", service_types=["network:floatingip"]).id
    assert ws.create_floatingip(ext).subnet_id == fs
    assert ws.create_floatingip(ext).subnet_id != fs                # falls back to the untyped subnet
    with pytest.raises(IpAddressGenerationFailure) as e:
        ws.create_floatingip(ext)
    assert ext in e.value.message


# ---- agent-gateway ports ------------------------------------------------------------------
def test_agent_gateway_ports_from_service_subnet():
    lab = Lab()
    r = lab.router("r", [lab.ts1])
    assert lab.fg("compute1") is None                 # no VM yet: the router is not on compute1
    lab.vm("vm", lab.t1, "compute1")
    fg = lab.fg("compute1")
    assert fg.device_id == "compute1" and fg.host == "compute1"
    assert [(f.subnet_id, str(f.ip_address)) for f in fg.fixed_ips] == [(lab.svc, "100.64.0.1")]
    agent_gateways_match_placement(lab.ws)
    lab.ws.update_router(r, external_gateway_info=None)
    assert lab.fg("compute1") is None
    agent_gateways_match_placement(lab.ws)


def test_agent_gateway_follows_port_binding():
    lab = Lab()
    lab.router("r", [lab.ts1])
    vm = lab.vm("vm", lab.t1, "")
    assert lab.fg("compute1") is None
    lab.ws.update_port(vm, host="compute1")
    assert lab.fg("compute1") is not None
    lab.ws.update_port(vm, host="compute2")
    assert lab.fg("compute1") is None and lab.fg("compute2") is not None
    lab.ws.delete_port(vm)
    assert lab.fg("compute2") is None
    agent_gateways_match_placement(lab.ws)


def test_t3_removing_one_gateway_keeps_the_others_addresses():
    lab = Lab()
    ws = lab.ws
    r1 = lab.router("r1", [lab.ts1])
    r2 = lab.router("r2", [lab.ts2])
    lab.vm("vm1", lab.t1, "compute1")
    lab.vm("vm2", lab.t2, "compute1")
    fg_before = lab.fg("compute1")
    qg1_before = lab.ports(GW, r1)[0]
    ws.update_router(r2, external_gateway_info=None)
    assert lab.fg("compute1") == fg_before
    assert lab.ports(GW, r1)[0] == qg1_before
    ws.update_router(r2, external_gateway_info={"network_id": lab.ext})
    assert lab.fg("compute1") == fg_before
    agent_gateways_match_placement(ws)


def test_new_external_subnet_renumbers_nothing():
    lab = Lab()
    ws = lab.ws
    lab.router("r", [lab.ts1])
    lab.vm("vm", lab.t1, "compute1")
    before = {p.id: p.fixed_ips for p in ws.snapshot().ports.values()}
    ws.create_subnet(lab.ext, "192.0.2.0/24", service_types=[AGW, GW])
    after = {p.id: p.fixed_ips for p in ws.snapshot().ports.values()}
    assert before == after


# ---- subnet delete and update -------------------------------------------------------------
def test_subnet_in_use_by_fip_gateway_interface():
    lab = Lab()
    ws = lab.ws
    lab.router("r", [lab.ts1])
    vm = lab.vm("vm", lab.t1, "compute1")
    f = ws.create_floatingip(lab.ext, subnet_id=lab.red, port_id=vm)
    with pytest.raises(SubnetInUse) as e:
        ws.delete_subnet(lab.red)
    assert "floating IPs" in e.value.message and f.id in e.value.message
    with pytest.raises(SubnetInUse) as e:
        ws.delete_subnet(lab.green)
    assert "router gateway ports" in e.value.message
    with pytest.raises(SubnetInUse) as e:
        ws.delete_subnet(lab.ts1)
    assert "router interface ports" in e.value.message and "compute ports" in e.value.message
    ws.delete_floatingip(f.id)
    ws.delete_subnet(lab.red)
    assert lab.red not in ws.snapshot().subnets


def test_agent_gateway_address_released_on_subnet_delete():
    lab = Lab()
    ws = lab.ws
    r = lab.router("r", [lab.ts1], gw=False)
    ws.update_router(r, external_gateway_info={"network_id": lab.ext,
                                               "external_fixed_ips": [{"subnet_id": lab.red}]})
    lab.vm("vm", lab.t1, "compute1")
    fg = lab.fg("compute1")
    assert fg.fixed_ips[0].subnet_id == lab.svc
    released = ws.delete_subnet(lab.svc)
    assert [(x.port_id, x.fixed_ips) for x in released] == [(fg.id, fg.fixed_ips)]
    fg2 = lab.fg("compute1")
    assert fg2.id == fg.id                                    # the port stays
    assert lab.svc not in {f.subnet_id for f in fg2.fixed_ips}
    # left without an address, it is given one from a subnet that can serve it (green: untyped)
    assert [f.subnet_id for f in fg2.fixed_ips] == [lab.green]
    agent_gateways_match_placement(ws)


def test_update_subnet_gateway_rules():
    lab = Lab()
    ws = lab.ws
    r = lab.router("r", [lab.ts1])
    with pytest.raises(errors.GatewayIpInUse):
        ws.update_subnet(lab.ts1, gateway_ip="10.1.0.254")
    with pytest.raises(errors.GatewayIpInUse):
        ws.update_subnet(lab.ts1, gateway_ip=None)
    ws.remove_router_interface(r, subnet_id=lab.ts1)
    vm = ws.create_port(lab.t2, fixed_ips=[IpRequest(ip_address="10.2.0.254")]).id
    with pytest.raises(errors.GatewayIpInUse):
        ws.update_subnet(lab.ts2, gateway_ip="10.2.0.254")
    with pytest.raises(errors.GatewayConflictWithAllocationPools):
        ws.update_subnet(lab.ts1, gateway_ip="10.1.0.100")
    s = ws.update_subnet(lab.ts1, gateway_ip="10.1.0.254",
                         allocation_pools=[("10.1.0.2", "10.1.0.200")], name="renamed")
    assert s.gateway_ip == A("10.1.0.254") and s.name == "renamed"
    assert ws.update_subnet(lab.ts1, gateway_ip=None).gateway_ip is None
    del vm


# ---- ports --------------------------------------------------------------------------------
def test_port_macs_and_fixed_ips():
    lab = Lab()
    ws = lab.ws
    a = ws.create_port(lab.t1, id="aaa")
    b = ws.create_port(lab.t1, id="bbb")
    assert a.mac_address.startswith("fa:16:3e:") and a.mac_address != b.mac_address
    ws2 = make_ws()
    n = ws2.create_network().id
    assert ws2.create_port(n, id="aaa", fixed_ips=[]).mac_address == a.mac_address   # derived from the id
    with pytest.raises(errors.MacAddressInUse):
        ws.create_port(lab.t1, mac_address=a.mac_address)
    with pytest.raises(Conflict):
        ws.create_port(lab.t1, id="aaa")
    c = ws.create_port(lab.t1, fixed_ips=[IpRequest(subnet_id=lab.ts1), IpRequest(ip_address="10.1.0.99")])
    assert [str(f.ip_address) for f in c.fixed_ips] == ["10.1.0.4", "10.1.0.99"]
    c = ws.update_port(c.id, fixed_ips=[IpRequest(ip_address="10.1.0.99")], name="c")
    assert [str(f.ip_address) for f in c.fixed_ips] == ["10.1.0.99"] and c.name == "c"
    assert ws.create_port(lab.t1).fixed_ips[0].ip_address == A("10.1.0.4")   # released address reused
    with pytest.raises(InvalidInput) as e:
        ws.create_port(lab.t1, fixed_ips=[IpRequest(ip_address="10.2.0.5")])
    assert e.value.field == "fixed_ips"
    with pytest.raises(NotFound):
        ws.create_port("nope")
    r = lab.router("r", [lab.ts2])
    for owner in (GW, SNAT, DVR_IF):
        with pytest.raises(errors.L3PortInUse):
            ws.delete_port(lab.ports(owner, r)[0].id)


# ---- transactions -------------------------------------------------------------------------
def test_nothing_half_applied_on_error():
    lab = Lab()
    ws = lab.ws
    r = lab.router("r", [lab.ts1])
    lab.vm("vm", lab.t1, "compute1")
    before = ws.snapshot()
    # the sg port needs an address on the new tenant subnet, which is full: the interface add fails
    tiny = ws.create_subnet(lab.t2, "10.2.9.0/30", gateway_ip="10.2.9.1").id   # pool: .2 only
    ws.create_port(lab.t2, fixed_ips=[IpRequest(subnet_id=tiny)])
    mid = ws.snapshot()
    with pytest.raises(IpAddressGenerationFailure):
        ws.add_router_interface(r, subnet_id=tiny)
    assert ws.snapshot() == mid and ws.snapshot().revision == mid.revision
    # a two-address request whose second address is taken leaves the first one free
    with pytest.raises(IpAddressAlreadyAllocated):
        ws.create_port(lab.t1, fixed_ips=[IpRequest(subnet_id=lab.ts1), IpRequest(ip_address="10.1.0.1")])
    assert ws.snapshot() == mid
    assert ws.create_port(lab.t1).fixed_ips[0].ip_address == A("10.1.0.4")
    # a compute port whose fg port cannot get an address is refused as a whole
    ws2 = make_ws()
    ws2.register_host("c1")
    ext = ws2.create_network(external=True).id
    ws2.create_subnet(ext, "203.0.113.0/30")                      # .2 only
    t = ws2.create_network().id
    ts = ws2.create_subnet(t, "10.0.0.0/24").id
    ws2.create_router(external_gateway_info={"network_id": ext})  # takes .2
    rr = next(iter(ws2.snapshot().routers))
    ws2.add_router_interface(rr, subnet_id=ts)
    snap = ws2.snapshot()
    with pytest.raises(IpAddressGenerationFailure) as e:
        ws2.create_port(t, device_owner="compute:nova", host="c1")
    assert "agent gateway" in e.value.message and ws2.snapshot() == snap
    del before


def test_workspace_loads_a_cloud_and_counts_revisions():
    lab = Lab()
    lab.router("r", [lab.ts1])
    lab.vm("vm", lab.t1, "compute1")
    c = lab.ws.snapshot()
    ws = Workspace(c, check=True)
    assert ws.snapshot() == c
    ws.create_network("more")
    assert ws.snapshot().revision == c.revision + 1
    assert ws.snapshot().ports == c.ports


def test_random_operations_keep_the_cloud_valid():
    """150 random operations; those the model refuses (a Neutron error) are counted, not hidden:
    every kind of operation must also succeed, and after each step the agent gateways match the
    placement and the cloud validates."""
    import random
    from collections import Counter
    rnd = random.Random(7)
    lab = Lab()
    ws = lab.ws
    routers = [lab.router("r1", [lab.ts1]), lab.router("r2", [lab.ts2])]
    vms, fips = [], []
    done: Counter[str] = Counter()
    refused: Counter[str] = Counter()

    def step_once(step: int, op: str) -> bool:
        """Run OP; False when there was nothing to run it on."""
        if op == "vm":
            vms.append(lab.vm(f"v{step}", rnd.choice([lab.t1, lab.t2]), rnd.choice(["compute1", "compute2", ""])))
        elif op == "move" and vms:
            ws.update_port(rnd.choice(vms), host=rnd.choice(["compute1", "compute2", ""]))
        elif op == "del" and vms:
            ws.delete_port(vms.pop(rnd.randrange(len(vms))))
        elif op == "fip":
            fips.append(ws.create_floatingip(lab.ext, port_id=rnd.choice(vms) if vms and rnd.random() < .7 else None).id)
        elif op == "unfip" and fips:
            ws.update_floatingip(rnd.choice(fips), port_id=None)
        elif op == "delfip" and fips:
            ws.delete_floatingip(fips.pop(rnd.randrange(len(fips))))
        elif op == "gw":
            r = rnd.choice(routers)
            ws.update_router(r, external_gateway_info=None if ws.snapshot().routers[r].gateway else {"network_id": lab.ext})
        else:
            return False
        return True

    for step in range(150):
        op = rnd.choice(["vm", "vm", "move", "del", "fip", "unfip", "gw", "delfip"])
        try:
            if step_once(step, op):
                done[op] += 1
        except (Conflict, NotFound, BadRequest, InvalidInput):
            refused[op] += 1
        agent_gateways_match_placement(ws)
        assert ws.snapshot().validate() is not None
    assert set(done) == {"vm", "move", "del", "fip", "unfip", "gw", "delfip"}, (done, refused)
    assert sum(done.values()) > 100, (done, refused)


def test_ten_thousand_floating_ips():
    """10,000 FIPs from one /16 service-typed subnet: every address distinct, all from the FIP
    subnet. (What a write costs at that size is `python -m dvrnet.bench.model`'s, not a test's.)"""
    ws = Workspace()
    ws.register_host("c1")
    ws.register_host("c2")
    ws.register_host("n1", "dvr_snat")
    ext = ws.create_network(external=True).id
    fsub = ws.create_subnet(ext, "10.128.0.0/16", service_types=["network:floatingip"]).id
    ws.create_subnet(ext, "203.0.113.0/24")
    t = ws.create_network().id
    ts = ws.create_subnet(t, "172.16.0.0/16").id
    r = ws.create_router(external_gateway_info={"network_id": ext}).id
    ws.add_router_interface(r, subnet_id=ts)
    for i in range(10000):
        p = ws.create_port(t, device_owner="compute:nova", host="c1" if i % 2 else "c2").id
        ws.create_floatingip(ext, port_id=p)
    c = ws.snapshot()
    assert len(c.floatingips) == 10000 and {f.subnet_id for f in c.floatingips.values()} == {fsub}
    assert len({f.floating_ip_address for f in c.floatingips.values()}) == 10000


def test_deterministic_id_factory_gets_distinct_names():
    ws = Workspace(id_factory=lambda kind, name: f"{kind}:{name}", check=True)
    ws.register_host("c1")
    ws.register_host("n1", "dvr_snat")
    ext = ws.create_network("ext", external=True).id
    ws.create_subnet(ext, "203.0.113.0/24", name="pub")
    t = ws.create_network("t").id
    ts = ws.create_subnet(t, "10.0.0.0/24", name="ts").id
    r = ws.create_router("r", external_gateway_info={"network_id": ext}).id
    qr = ws.add_router_interface(r, subnet_id=ts)
    assert qr.id == f"port:{DVR_IF}:{r}:{ts}"
    vm = ws.create_port(t, device_owner="compute:nova", host="c1", name="vm").id
    ws.create_port(t, name="vm")                                   # same name: made again with a suffix
    assert ws.create_floatingip(ext, port_id=vm, description="fip of vm").id == "floatingip:fip of vm"
    assert ws.create_floatingip(ext).id == "floatingip:203.0.113.5"   # .2 gw, .3 fg, .4 first FIP
    assert ws.snapshot().agent_gateway_port("c1", ext).id == f"port:{AGW}:c1:{ext}"


def test_agent_gateway_without_address_until_a_subnet_can_serve_it():
    ws = make_ws()
    ws.register_host("compute1")
    ws.register_host("network1", "dvr_snat")
    ext = ws.create_network("ext", external=True).id
    ws.create_subnet(ext, "203.0.113.0/24", name="gw-only", service_types=[GW])
    svc = ws.create_subnet(ext, "100.64.0.0/24", gateway_ip=None, name="svc", service_types=[AGW]).id
    t1 = ws.create_network("t1").id
    ts1 = ws.create_subnet(t1, "10.1.0.0/24", name="ts1").id
    r = ws.create_router("r", external_gateway_info={"network_id": ext}).id
    ws.add_router_interface(r, subnet_id=ts1)
    ws.create_port(t1, device_owner="compute:nova", host="compute1", name="vm")
    fg = ws.snapshot().agent_gateway_port("compute1", ext)
    assert [f.subnet_id for f in fg.fixed_ips] == [svc]
    ws.delete_subnet(svc)
    assert ws.snapshot().agent_gateway_port("compute1", ext).fixed_ips == ()   # no subnet may serve it
    agent_gateways_match_placement(ws)
    assert ws._st.bare_agent_gateways == {fg.id}
    ws.create_network("other")                        # an unrelated write leaves it waiting
    assert ws.snapshot().agent_gateway_port("compute1", ext).fixed_ips == ()
    green = ws.create_subnet(ext, "198.51.100.0/24", name="green").id
    fg2 = ws.snapshot().agent_gateway_port("compute1", ext)
    assert [f.subnet_id for f in fg2.fixed_ips] == [green]
    agent_gateways_match_placement(ws)
    assert ws._st.bare_agent_gateways == set()
