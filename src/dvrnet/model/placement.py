"""Where things live: which routers, FIPs and namespaces belong on which host. Pure.

The rules (DVR, as upstream Neutron places them):
- a distributed router is *on* a host when a compute port bound to that host has an address in a
  subnet the router has an interface on;
- its SNAT part (`snat-` namespace) is on the host its `network:router_gateway` port is bound to
  (the server schedules it on a `dvr_snat` host);
- a FIP is on the host its port is bound to, when the port is a compute port of a router that is on
  that host and the router's gateway is on the FIP's network;
- a host needs the `fip-` namespace (and an agent-gateway port) of external network N when a router
  with its gateway on N is on that host.
"""
from __future__ import annotations

from collections.abc import Iterable

from .cloud import Cloud, CloudView
from .resources import AgentMode, FloatingIP, Router, is_compute


def compute_subnets_on_host(cloud: Cloud, host: str) -> set[str]:
    out: set[str] = set()
    for p in cloud.ports.values():
        if p.host == host and is_compute(p.device_owner):
            out.update(f.subnet_id for f in p.fixed_ips)
    return out


def routers_on_host(cloud: Cloud, host: str) -> tuple[Router, ...]:
    """Distributed routers that need a qrouter- namespace on `host`, sorted by id."""
    h = cloud.hosts.get(host)
    if h is None:
        return ()
    subnets = compute_subnets_on_host(cloud, host)
    out = []
    for r in cloud.routers.values():
        if not r.distributed:
            continue
        if any(f.subnet_id in subnets for p in cloud.router_interfaces(r.id) for f in p.fixed_ips):
            out.append(r)
    return tuple(sorted(out, key=lambda r: r.id))


def snat_host(cloud: CloudView, router_id: str) -> str | None:
    gw = cloud.gateway_port(router_id)
    return gw.host if gw is not None and gw.host else None


def snat_routers_on_host(cloud: Cloud, host: str) -> tuple[Router, ...]:
    h = cloud.hosts.get(host)
    if h is None or h.mode is not AgentMode.DVR_SNAT:
        return ()
    return tuple(sorted((r for r in cloud.routers.values()
                         if r.gateway is not None and r.distributed and snat_host(cloud, r.id) == host),
                        key=lambda r: r.id))


def fip_networks_on_host(cloud: Cloud, host: str) -> tuple[str, ...]:
    """External networks whose fip- namespace (and agent-gateway port) `host` needs."""
    return tuple(sorted({r.gateway.network_id for r in routers_on_host(cloud, host) if r.gateway is not None}))


def local_fips(cloud: CloudView, host: str, router: Router) -> tuple[FloatingIP, ...]:
    """FIPs served by `router` on `host`, sorted by address."""
    if router.gateway is None:
        return ()
    out = []
    for f in cloud.fips_by_router.get(router.id, ()):
        if f.port_id is None or f.floating_network_id != router.gateway.network_id:
            continue
        port = cloud.ports.get(f.port_id, None)
        if port is not None and port.host == host and is_compute(port.device_owner):
            out.append(f)
    return tuple(sorted(out, key=lambda f: f.floating_ip_address))


def hosts_needing_agent_gateway(cloud: Cloud) -> set[tuple[str, str]]:
    """(host, external network) pairs that need an agent-gateway port."""
    return {(h, n) for h in cloud.hosts for n in fip_networks_on_host(cloud, h)}


def first(items: Iterable):
    for i in items:
        return i
    return None
