"""Create a scenario (the seed's figure by default) through the HTTP API, as an operator would, and
return what the lab needs from the answers (ids, MACs, addresses).

Two phases, because the lab must load the distributed-gateway bridge rules (which need the tenant
gateway addresses and the router-interface MACs) before any VM port makes an agent plug a qr- port:
- `create_topology`: hosts, the external network with its subnets (external subnets get an
  allocation pool that keeps .240-.254 free for the lab's probe/sink), tenant networks and
  subnets, routers with their external gateway, router interfaces;
- `create_vms`: VM ports (`binding:host_id`, `device_owner: compute:nova`) and their FIPs from the
  named external subnet (`subnet_id`).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import httpx

from ..scenarios.seed import SEED, ScenarioSpec

LAB_RESERVED_FROM = 240      # external subnets: addresses .240 and up stay out of the pools


class ApiError(RuntimeError):
    pass


def _ok(r: httpx.Response) -> dict:
    if r.status_code not in (200, 201, 204):
        raise ApiError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r.json() if r.content else {}


def _post(c: httpx.Client, path: str, body: dict) -> dict:
    return next(iter(_ok(c.post(path, json=body)).values()))


@dataclass
class Topology:
    external_network: dict
    external_subnets: dict[str, dict] = field(default_factory=dict)     # name -> subnet
    networks: dict[str, dict] = field(default_factory=dict)             # name -> network
    subnets: dict[str, dict] = field(default_factory=dict)              # network name -> its subnet
    routers: dict[str, dict] = field(default_factory=dict)              # name -> router (after interfaces)
    router_of_network: dict[str, str] = field(default_factory=dict)     # network name -> router name
    interface_ports: list[dict] = field(default_factory=list)           # qr- ports (router interfaces)
    vm_ports: dict[str, dict] = field(default_factory=dict)             # vm name -> port
    fips: dict[str, dict] = field(default_factory=dict)                 # vm name -> floating IP

    @property
    def tenant_gateway_ips(self) -> list[str]:
        return [s["gateway_ip"] for s in self.subnets.values() if s.get("gateway_ip")]

    @property
    def router_interface_macs(self) -> list[str]:
        return [p["mac_address"] for p in self.interface_ports if p.get("mac_address")]


def _pool(cidr: str) -> list[dict] | None:
    net = ipaddress.ip_network(cidr)
    if net.num_addresses < 256:
        return None
    return [{"start": str(net[2]), "end": str(net[LAB_RESERVED_FROM - 1])}]


def create_topology(c: httpx.Client, spec: ScenarioSpec = SEED, gateways: bool = True) -> Topology:
    """gateways=False: the routers are created without an external gateway (T1 sets it later)."""
    for name, mode in spec.hosts:
        _post(c, "/v2.0/dvrnet/hosts", {"host": {"name": name, "mode": mode}})
    ext = _post(c, "/v2.0/networks", {"network": {"name": spec.external_network, "router:external": True,
                                                  "mtu": spec.external_mtu}})
    if spec.routed:     # before any gateway: the server then picks each router's private and SNAT address
        from ..model.resources import ROUTED_TAG
        _ok(c.put(f"/v2.0/networks/{ext['id']}/tags", json={"tags": [ROUTED_TAG]}))
    topo = Topology(external_network=ext)
    for s in spec.external_subnets:
        body = {"network_id": ext["id"], "cidr": s.cidr, "ip_version": 4, "name": s.name, "gateway_ip": s.gateway}
        if s.service_types:
            body["service_types"] = list(s.service_types)
        if s.gateway and _pool(s.cidr):
            body["allocation_pools"] = _pool(s.cidr)
        topo.external_subnets[s.name] = _post(c, "/v2.0/subnets", {"subnet": body})
    for net_name, s in spec.tenant_networks:
        net = _post(c, "/v2.0/networks", {"network": {"name": net_name, "mtu": spec.tenant_mtu}})
        topo.networks[net_name] = net
        topo.subnets[net_name] = _post(c, "/v2.0/subnets", {"subnet": {
            "network_id": net["id"], "cidr": s.cidr, "ip_version": 4, "name": s.name, "gateway_ip": s.gateway}})
    for r_name, nets in spec.routers:
        body = {"name": r_name, "distributed": True}
        if gateways:
            from ..scenarios.seed import gateway_info
            body["external_gateway_info"] = gateway_info(spec, ext["id"],
                                                         {n: x["id"] for n, x in topo.external_subnets.items()})
        r = _post(c, "/v2.0/routers", {"router": body})
        for n in nets:
            _ok(c.put(f"/v2.0/routers/{r['id']}/add_router_interface", json={"subnet_id": topo.subnets[n]["id"]}))
            topo.router_of_network[n] = r_name
        topo.routers[r_name] = _ok(c.get(f"/v2.0/routers/{r['id']}"))["router"]
    ports = _ok(c.get("/v2.0/ports"))["ports"]
    topo.interface_ports = [p for p in ports if p.get("device_owner", "").startswith("network:router_interface")]
    return topo


def create_vms(c: httpx.Client, topo: Topology, spec: ScenarioSpec = SEED, fips: bool = True) -> Topology:
    """fips=False: VM ports only, no floating IPs."""
    for vm in spec.vms:
        net = topo.networks[vm.network]
        port = _post(c, "/v2.0/ports", {"port": {"network_id": net["id"], "device_owner": "compute:nova",
                                                  "device_id": f"lab-{vm.name}", "binding:host_id": vm.host,
                                                  "name": f"{vm.name}-port",
                                                  "fixed_ips": [{"subnet_id": topo.subnets[vm.network]["id"]}]}})
        topo.vm_ports[vm.name] = port
        if fips and vm.fip_subnet is not None:
            topo.fips[vm.name] = _post(c, "/v2.0/floatingips", {"floatingip": {
                "floating_network_id": topo.external_network["id"],
                "subnet_id": topo.external_subnets[vm.fip_subnet]["id"], "port_id": port["id"],
                "description": f"fip of {vm.name}"}})
    return topo


def create_extra_fips(c: httpx.Client, topo: Topology, spec: ScenarioSpec, count: int, tick=None) -> int:
    """COUNT more FIPs, each on a port of its own (no VM namespace behind it: the agents build
    the data plane, the checks judge the seed's VMs), spread round-robin over the routed tenant
    networks, the `dvr` hosts and the external subnets with a gateway. TICK: called per FIP."""
    nets = [n for n in topo.networks if n in topo.router_of_network]
    hosts = [h for h, mode in spec.hosts if mode == "dvr"] or [h for h, _ in spec.hosts]
    subs = [s for s in topo.external_subnets.values() if s.get("gateway_ip")]
    if count and not (nets and hosts and subs):
        raise RuntimeError("extra FIPs need a routed tenant network, a dvr host and an external subnet with a gateway")
    for i in range(count):
        net = topo.networks[nets[i % len(nets)]]
        port = _post(c, "/v2.0/ports", {"port": {
            "network_id": net["id"], "device_owner": "compute:nova", "device_id": f"lab-extra-{i}",
            "binding:host_id": hosts[i % len(hosts)], "name": f"extra-{i}-port",
            "fixed_ips": [{"subnet_id": topo.subnets[nets[i % len(nets)]]["id"]}]}})
        _post(c, "/v2.0/floatingips", {"floatingip": {
            "floating_network_id": topo.external_network["id"], "subnet_id": subs[i % len(subs)]["id"],
            "port_id": port["id"], "description": f"extra fip {i}"}})
        if tick is not None:
            tick()
    return count


def snat_host(c: httpx.Client, router_id: str) -> str | None:
    """The host of the router's gateway (qg-) port: where its snat- namespace lives."""
    ports = _ok(c.get("/v2.0/ports", params={"device_id": router_id}))["ports"]
    for p in ports:
        if p.get("device_owner") == "network:router_gateway" and p.get("binding:host_id"):
            return p["binding:host_id"]
    return None
