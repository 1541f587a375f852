"""What one host's agent needs to know: a sub-`Cloud`, computed purely from the full one.

Contents (placement rules in `dvrnet.model.placement`):
- the host itself;
- the distributed routers on the host, plus (dvr_snat) the routers whose SNAT is scheduled here;
- every port of those routers (interfaces, gateway, centralized-SNAT ports);
- every port with an address on one of those routers' interface subnets (the agent writes
  permanent neighbours for them), and the ports the routers' FIPs point at;
- the host's agent-gateway ports and the FIPs of those routers;
- the networks of all included ports, gateways and FIPs, with all of their subnets (so the view
  validates: every fixed IP's subnet is present, and the agent sees every external subnet).
A bigger view than strictly needed is fine; a smaller one is a bug. The view keeps the full
cloud's revision.
"""
from __future__ import annotations

from ..model import Cloud, DeviceOwner
from ..model.errors import NotFound
from ..model.placement import routers_on_host, snat_routers_on_host


def host_view(cloud: Cloud, host: str) -> Cloud:
    h = cloud.hosts.get(host)
    if h is None:
        raise NotFound("Host", host)
    routers = {r.id: r for r in routers_on_host(cloud, host)}
    routers.update({r.id: r for r in snat_routers_on_host(cloud, host)})
    ports = {}
    for rid in routers:
        for p in cloud.ports_by_device.get(rid, ()):
            ports[p.id] = p
    iface_subnets = {f.subnet_id for rid in routers for p in cloud.router_interfaces(rid) for f in p.fixed_ips}
    for sid in iface_subnets:
        for p in cloud.ports_by_subnet.get(sid, ()):
            ports[p.id] = p
    for p in cloud.ports_by_device.get(host, ()):
        if p.device_owner == DeviceOwner.AGENT_GATEWAY.value:
            ports[p.id] = p
    fips = {f.id: f for rid in routers for f in cloud.fips_by_router.get(rid, ())}
    for f in fips.values():
        if f.port_id and f.port_id in cloud.ports:
            ports[f.port_id] = cloud.ports[f.port_id]
    net_ids = {p.network_id for p in ports.values()}
    net_ids |= {r.gateway.network_id for r in routers.values() if r.gateway is not None}
    net_ids |= {f.floating_network_id for f in fips.values()}
    networks = [cloud.networks[n] for n in net_ids if n in cloud.networks]
    subnets = [s for n in net_ids for s in cloud.subnets_of(n)]
    return Cloud.of(networks=networks, subnets=subnets, routers=routers.values(), ports=ports.values(),
                    floatingips=fips.values(), hosts=[h], revision=cloud.revision)
