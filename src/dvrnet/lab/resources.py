"""Create a scenario (the seed's figure by default) through the HTTP API, as an operator would, and
return what the lab needs from the answers (ids, MACs, addresses).

Two phases, because the lab must load the distributed-gateway bridge rules (which need the tenant
gateway addresses and the router-interface MACs) before any VM port makes an agent plug a qr- port:
- `create_topology`: hosts, the external network with its subnets (external subnets get an
  allocation pool that keeps .240-.254 free for the lab's probe/sink), tenant networks and
  subnets, routers with their external gateway, router interfaces;
- `create_vms`: VM ports (`binding:host_id`, `device_owner: compute:nova`) and their FIPs from the
  named external subnet (`subnet_id`).

`--extra-fips N` (`with_extra_fips`, `create_extra_fips`): N more FIPs, up to `MAX_EXTRA_FIPS`, on
ports without VMs bound to compute1 and compute2, from two more external subnets of the external
network (`EXTRA_EXTERNAL`: /18s of 100.64.0.0/10 above 100.64.64.0 — 100.64.0.0/18 stays free for
the service subnet and private addresses — each with its own gateway namespace, like the seed's),
their fixed IPs on two more tenant networks (/18s, one on each router). Created with bulk
requests, each body under the API's limit (`api.edge.MAX_BODY`).
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import httpx

from ..scenarios.seed import SEED, ScenarioSpec, SubnetSpec

LAB_RESERVED_FROM = 240      # external subnets: addresses .240 and up stay out of the pools
# Subnets larger than a /24: the first 256 addresses stay out of the pool (the gateway, the lab's
# probe and sink, .240 and up as in the small ones).
MAX_EXTRA_FIPS = 10_000
EXTRA_EXTERNAL = (SubnetSpec("xfip1", "100.64.64.0/18", "100.64.64.1"),
                  SubnetSpec("xfip2", "100.64.128.0/18", "100.64.128.1"))
EXTRA_TENANT = (("xnet1", SubnetSpec("xnet1-subnet", "10.128.0.0/18", "10.128.0.1")),
                ("xnet2", SubnetSpec("xnet2-subnet", "10.128.64.0/18", "10.128.64.1")))
BODY_BUDGET = 100_000        # bytes per bulk body: under api.edge.MAX_BODY (114,688) with room


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
    if net.num_addresses > 256:
        return [{"start": str(net[256]), "end": str(net[-2])}]
    return [{"start": str(net[2]), "end": str(net[LAB_RESERVED_FROM - 1])}]


def with_extra_fips(spec: ScenarioSpec) -> ScenarioSpec:
    """SPEC plus what `create_extra_fips` needs: the two extra external subnets (the world gives each
    its gateway namespace) and the two extra tenant networks, one on each of the first two routers."""
    if len(spec.routers) < 1:
        raise ValueError("extra FIPs need a router")
    routers = list(spec.routers)
    for i, (net, _) in enumerate(EXTRA_TENANT):
        r_name, nets = routers[i % len(routers)]
        routers[i % len(routers)] = (r_name, (*nets, net))
    return replace(spec, external_subnets=(*spec.external_subnets, *EXTRA_EXTERNAL),
                   tenant_networks=(*spec.tenant_networks, *EXTRA_TENANT), routers=tuple(routers))


def bulk_bodies(collection: str, items: list[dict], budget: int = BODY_BUDGET) -> Iterator[list[dict]]:
    """ITEMS in consecutive chunks whose bulk body `{COLLECTION: chunk}` stays within BUDGET bytes."""
    chunk: list[dict] = []
    size = len(json.dumps({collection: []}))
    for item in items:
        n = len(json.dumps(item)) + 2
        if chunk and size + n > budget:
            yield chunk
            chunk, size = [], len(json.dumps({collection: []}))
        chunk.append(item)
        size += n
    if chunk:
        yield chunk


def _post_bulk(c: httpx.Client, path: str, collection: str, items: list[dict],
               done: Callable[[int], None] | None = None) -> list[dict]:
    out: list[dict] = []
    for chunk in bulk_bodies(collection, items):
        got = _ok(c.post(path, json={collection: chunk}))[collection]
        out += got
        if done is not None:
            done(len(got))
    return out


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


def create_extra_fips(c: httpx.Client, topo: Topology, spec: ScenarioSpec, count: int,
                      tick: Callable[..., None] | None = None, start: int = 0) -> int:
    """COUNT more FIPs (see the module doc; SPEC made by `with_extra_fips`), each on a port of its
    own (no VM namespace behind it: the agents build the data plane, the checks judge the seed's
    VMs): ports round-robin over the extra tenant networks and the `dvr` hosts, FIPs alternating
    between the extra external subnets. Bulk requests; TICK(n): n more FIPs made (ports count half).
    START: the number of extra FIPs made before (names and the spread go on from there)."""
    if not 0 <= count or start + count > MAX_EXTRA_FIPS:
        raise ValueError(f"extra FIPs: 0 to {MAX_EXTRA_FIPS:,} in all, not {start} + {count}")
    nets = [n for n, _ in EXTRA_TENANT if n in topo.networks]
    subs = [topo.external_subnets[s.name] for s in EXTRA_EXTERNAL if s.name in topo.external_subnets]
    hosts = [h for h, mode in spec.hosts if mode == "dvr"] or [h for h, _ in spec.hosts]
    if count and not (nets and subs and hosts):
        raise RuntimeError("extra FIPs need the lab's extra tenant networks and external subnets (with_extra_fips)")
    made = [0.0]

    def progress(weight: float) -> Callable[[int], None]:
        def done(n: int) -> None:
            before = int(made[0])
            made[0] += n * weight
            if tick is not None and int(made[0]) > before:
                tick(int(made[0]) - before)
        return done
    def net(i: int) -> str:      # every mix of host, external subnet and network occurs
        return nets[(i // (len(hosts) * len(subs))) % len(nets)]
    ports = _post_bulk(c, "/v2.0/ports", "ports", [{
        "network_id": topo.networks[net(i)]["id"], "device_owner": "compute:nova",
        "device_id": f"lab-extra-{i}", "binding:host_id": hosts[i % len(hosts)], "name": f"extra-{i}-port",
        "fixed_ips": [{"subnet_id": topo.subnets[net(i)]["id"]}]} for i in range(start, start + count)],
        progress(0.5))
    _post_bulk(c, "/v2.0/floatingips", "floatingips", [{
        "floating_network_id": topo.external_network["id"], "subnet_id": subs[(i // len(hosts)) % len(subs)]["id"],
        "port_id": p["id"], "description": f"extra fip {i}"} for i, p in enumerate(ports, start=start)], progress(0.5))
    if tick is not None and count - int(made[0]) > 0:
        tick(count - int(made[0]))
    return count


def snat_host(c: httpx.Client, router_id: str) -> str | None:
    """The host of the router's gateway (qg-) port: where its snat- namespace lives."""
    ports = _ok(c.get("/v2.0/ports", params={"device_id": router_id}))["ports"]
    for p in ports:
        if p.get("device_owner") == "network:router_gateway" and p.get("binding:host_id"):
            return p["binding:host_id"]
    return None
