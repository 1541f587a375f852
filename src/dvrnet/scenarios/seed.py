"""The seed scenario: the article's figure (seed-notes.md, "The article's test plan").

One external network `public` with three subnets — red 203.0.113.0/24 (gateway .1), green
198.51.100.0/24 (gateway .1), and the agent-gateway service subnet 100.64.0.0/24 without a
gateway — hosts compute1 and compute2 (`dvr`) and network1 (`dvr_snat`), three tenant networks,
two routers with gateways on `public`, eight VMs over both compute nodes, FIPs from both external
subnets. The spec is plain data so the lab can create the same resources through the API.
Ids are uuid5 of the resource's kind and name, so every build gives the same ids (golden files).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..model import Cloud, DeviceOwner
from ..model.resources import ROUTED_TAG
from ..ops import IpRequest, Workspace

ID_NAMESPACE = uuid.UUID("6d1c4a0e-8f3b-4c2e-9a57-0c0ffee0d5a1")


def seed_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{kind}:{name}"))


@dataclass(frozen=True)
class SubnetSpec:
    name: str
    cidr: str
    gateway: str | None
    service_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class VmSpec:
    name: str
    network: str
    host: str
    fip_subnet: str | None      # name of the external subnet its FIP comes from, or None


@dataclass(frozen=True)
class ScenarioSpec:
    external_network: str
    external_mtu: int
    external_subnets: tuple[SubnetSpec, ...]
    hosts: tuple[tuple[str, str], ...]                 # (name, mode)
    tenant_networks: tuple[tuple[str, SubnetSpec], ...]  # (network name, its subnet)
    tenant_mtu: int
    routers: tuple[tuple[str, tuple[str, ...]], ...]   # (router name, tenant networks attached)
    vms: tuple[VmSpec, ...]
    # routed mode (S6): the external network carries the tag dvrnet:routed; each router's gateway
    # asks for its private address plus a public SNAT address from `snat_subnet`, or (None) leaves
    # both to the server (ops/workspace.py: Allocator.pick_routed_gateway)
    routed: bool = False
    snat_subnet: str | None = None


SEED = ScenarioSpec(
    external_network="public",
    external_mtu=1500,
    external_subnets=(
        SubnetSpec("red", "203.0.113.0/24", "203.0.113.1"),
        SubnetSpec("green", "198.51.100.0/24", "198.51.100.1"),
        SubnetSpec("fg-service", "100.64.0.0/24", None, (DeviceOwner.AGENT_GATEWAY.value,)),
    ),
    hosts=(("compute1", "dvr"), ("compute2", "dvr"), ("network1", "dvr_snat")),
    tenant_networks=(
        ("net1", SubnetSpec("net1-subnet", "10.0.1.0/24", "10.0.1.1")),
        ("net2", SubnetSpec("net2-subnet", "10.0.2.0/24", "10.0.2.1")),
        ("net3", SubnetSpec("net3-subnet", "10.0.3.0/24", "10.0.3.1")),
    ),
    tenant_mtu=1450,
    routers=(("router1", ("net1", "net2")), ("router2", ("net3",))),
    vms=(
        VmSpec("vm1", "net1", "compute1", "red"),
        VmSpec("vm2", "net1", "compute2", "green"),
        VmSpec("vm3", "net2", "compute1", None),
        VmSpec("vm4", "net2", "compute2", "red"),
        VmSpec("vm5", "net3", "compute1", "green"),
        VmSpec("vm6", "net3", "compute2", None),
        VmSpec("vm7", "net1", "compute1", "green"),
        VmSpec("vm8", "net3", "compute2", "red"),
    ),
)


def build(spec: ScenarioSpec = SEED) -> Cloud:
    ws = Workspace(id_factory=seed_id)
    for name, mode in spec.hosts:
        ws.register_host(name, mode)
    ext = ws.create_network(name=spec.external_network, external=True, mtu=spec.external_mtu,
                            tags=(ROUTED_TAG,) if spec.routed else ())
    ext_subnets = {}
    for s in spec.external_subnets:
        ext_subnets[s.name] = ws.create_subnet(ext.id, s.cidr, gateway_ip=s.gateway, name=s.name,
                                               service_types=s.service_types)
    tenant = {}
    for net_name, s in spec.tenant_networks:
        net = ws.create_network(name=net_name, mtu=spec.tenant_mtu)
        tenant[net_name] = (net, ws.create_subnet(net.id, s.cidr, gateway_ip=s.gateway, name=s.name))
    for r_name, nets in spec.routers:
        r = ws.create_router(name=r_name, distributed=True, external_gateway_info=gateway_info(
            spec, ext.id, {n: x.id for n, x in ext_subnets.items()}))
        for n in nets:
            ws.add_router_interface(r.id, subnet_id=tenant[n][1].id)
    for vm in spec.vms:
        net, sub = tenant[vm.network]
        port = ws.create_port(net.id, device_owner="compute:nova", device_id=seed_id("server", vm.name),
                              host=vm.host, name=f"{vm.name}-port", fixed_ips=[IpRequest(subnet_id=sub.id)])
        if vm.fip_subnet is not None:
            ws.create_floatingip(ext.id, subnet_id=ext_subnets[vm.fip_subnet].id, port_id=port.id,
                                 description=f"fip of {vm.name}")
    return ws.snapshot()


def gateway_info(spec: ScenarioSpec, ext_id: str, subnet_ids: dict[str, str]) -> dict:
    """A router's external_gateway_info: the network alone (L2 mode: IPAM picks the address), or
    in routed mode one address from the private router_gateway subnet and one (the SNAT address)
    from `spec.snat_subnet`."""
    if not spec.routed or spec.snat_subnet is None:
        return {"network_id": ext_id}
    private = next(s.name for s in spec.external_subnets if DeviceOwner.ROUTER_GATEWAY.value in s.service_types)
    return {"network_id": ext_id, "external_fixed_ips": [{"subnet_id": subnet_ids[private]},
                                                         {"subnet_id": subnet_ids[spec.snat_subnet]}]}


# The same figure in routed mode (S6): the public subnets are not on the segment; the private
# subnet 100.64.0.0/24 carries fg- and qg- addresses, its gateway .254 is the ToR (AS 65000).
ROUTED = ScenarioSpec(
    external_network=SEED.external_network, external_mtu=SEED.external_mtu,
    external_subnets=(
        SubnetSpec("red", "203.0.113.0/24", "203.0.113.1"),
        SubnetSpec("green", "198.51.100.0/24", "198.51.100.1"),
        SubnetSpec("private", "100.64.0.0/24", "100.64.0.254",
                   (DeviceOwner.AGENT_GATEWAY.value, DeviceOwner.ROUTER_GATEWAY.value)),
    ),
    hosts=SEED.hosts, tenant_networks=SEED.tenant_networks, tenant_mtu=SEED.tenant_mtu,
    routers=SEED.routers, vms=SEED.vms, routed=True,
)
