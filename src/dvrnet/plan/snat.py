"""The snat-<router> namespace on the router's SNAT host (dvr_snat mode; seed S12).

Invariants:
- qg- holds the router gateway port's addresses; main holds their connected routes and an on-link
  route for every other subnet of the external network, so SNAT traffic to any FIP goes straight
  to the node hosting it, never through a gateway;
- main has no default: traffic sourced from a qg- address leaves by that address's own subnet
  gateway (one table and one `from <addr>/32` rule each), and forwarded tenant traffic, routed
  before it is NATed, leaves by the gateway of the SNAT address's subnet;
- the SNAT address is the gateway port's first address (in fixed_ips order) whose subnet has a
  gateway; tenant subnets (the sg- ports' subnets) are NATed to it when enable_snat is set.
On a network tagged `dvrnet:routed` the qg- side is plan/routed.py's (private address, public
SNAT /32 announced by BIRD, default via the ToR); the tenant side is the same.
"""
from __future__ import annotations

from ..model import DeviceOwner, Router
from ..model.cloud import CloudView
from . import names
from .builder import NsBuilder
from .config import PlanConfig
from .connlimit import limit_parts, vm_limits
from .numbers import MAIN_TABLE_ID, NFT_TABLE, SNAT_DEFAULT_PRIO, SNAT_SRC_PRIO, subnet_table
from .plug import plug
from .routed import routed_snat_upstream
from .state import Address, NftChain, NftTable, Route, Rule


def snat_namespace(cloud: CloudView, router: Router, bridges: NsBuilder, cfg: PlanConfig) -> NsBuilder | None:
    gw_port = cloud.gateway_port(router.id)
    if router.gateway is None or gw_port is None:
        return None
    ns = NsBuilder(names.snat_ns(cfg.netns_prefix, router.id))
    ext = cloud.network(router.gateway.network_id)
    qg = names.port_dev(names.ROUTER_GW_DEV, gw_port.id)
    plug(ns, bridges, qg, gw_port, cfg.bridge_for(ext.id), ext.mtu, cfg)
    ns.sysctl("net.ipv4.ip_forward", 1)
    ns.sysctl("net.ipv4.conf.all.send_redirects", 0)
    ns.sysctl("net.ipv4.conf.default.send_redirects", 0)

    if ext.routed:
        snat_ip = routed_snat_upstream(ns, cloud, router, gw_port, qg, cfg)
    else:
        snat_ip = _l2_upstream(ns, cloud, ext.id, gw_port, qg)
    _tenant_side(ns, cloud, router, bridges, qg, snat_ip, cfg)
    return ns


def _l2_upstream(ns: NsBuilder, cloud: CloudView, ext_id: str, gw_port, qg: str):
    own = {f.subnet_id: f.ip_address for f in gw_port.fixed_ips}
    snat_ip = None
    snat_table = None
    for f in gw_port.fixed_ips:
        s = cloud.subnet(f.subnet_id)
        if s.gateway_ip is not None and snat_ip is None:
            snat_ip, snat_table = f.ip_address, subnet_table(s.cidr)
    for s in cloud.subnets_of(ext_id):
        ip = own.get(s.id)
        if ip is not None:
            ns.address(Address(qg, f"{ip}/{s.cidr.prefixlen}"))
            if s.gateway_ip is not None:
                ns.route(Route(subnet_table(s.cidr), "default", via=str(s.gateway_ip), dev=qg, onlink=True))
                ns.rule(Rule(SNAT_SRC_PRIO, src=f"{ip}/32", table=subnet_table(s.cidr)))
        ns.route(Route(MAIN_TABLE_ID, str(s.cidr), dev=qg, scope="link", src=str(ip) if ip is not None else None))
    if snat_table is not None:
        ns.rule(Rule(SNAT_DEFAULT_PRIO, table=snat_table))
    return snat_ip


def _tenant_side(ns: NsBuilder, cloud: CloudView, router: Router, bridges: NsBuilder, qg: str, snat_ip,
                 cfg: PlanConfig) -> None:
    assert router.gateway is not None
    tenant_cidrs = []
    for p in cloud.router_ports(router.id, DeviceOwner.ROUTER_SNAT):
        net = cloud.network(p.network_id)
        dev = names.port_dev(names.SNAT_IF_DEV, p.id)
        plug(ns, bridges, dev, p, names.tenant_bridge(net.id), net.mtu, cfg)
        for f in p.fixed_ips:
            s = cloud.subnet(f.subnet_id)
            ns.address(Address(dev, f"{f.ip_address}/{s.cidr.prefixlen}"))
            ns.route(Route(MAIN_TABLE_ID, str(s.cidr), dev=dev, scope="link", src=str(f.ip_address)))
            tenant_cidrs.append(s.cidr)
    rules: tuple[str, ...] = ()
    if router.gateway.enable_snat and snat_ip is not None and tenant_cidrs:
        cidrs = ", ".join(str(c) for c in sorted(tenant_cidrs))
        rules = (f'oifname "{qg}" ip saddr {{ {cidrs} }} snat to {snat_ip}',)
    limit_chains, limit_maps = limit_parts(qg, vm_limits(cloud, router, None), cfg, inbound_dnat=False)
    ns.table(NftTable("ip", NFT_TABLE, chains=(NftChain("post_nat", "nat", "postrouting", 100, rules),)
                      + limit_chains, maps=limit_maps))
