"""The fip-<external network> namespace of one host (architecture.md §2; seed S3-S11).

Invariants:
- main holds only the /32 of every FIP hosted here, via its router's rfp- address, so inbound
  traffic for a local FIP always finds it first, and proxy ARP on fg- answers for exactly these;
- connected and on-link routes live in FIP_ONLINK_TABLE, looked up after `iif fg- blackhole`:
  nothing arriving from the external segment transits the node, yet FIP->FIP and SNAT->FIP go
  straight over the segment (S4, S9, S12);
- every subnet with a gateway gets one table (`default via` that gateway) and one rule
  `from <cidr>`; a FIP's replies therefore leave through its own subnet's gateway (S3, S11);
- the number of rules depends on the external subnets only, never on routers or FIPs.
A network tagged `dvrnet:routed` is routed mode (plan/routed.py): same main table, no segment
routes for public subnets, default via the ToR, a BIRD announcing the /32s.
"""
from __future__ import annotations

from ipaddress import IPv4Address

from ..model import FloatingIP, Network, Port, Router
from ..model.cloud import CloudView
from ..model.placement import local_fips
from . import names
from .builder import NsBuilder
from .config import PlanConfig
from .linklocal import pair, veth_mac
from .numbers import (
    FIP_BLOCK_PRIO,
    FIP_ONLINK_PRIO,
    FIP_ONLINK_TABLE,
    FIP_SUBNET_PRIO,
    MAIN_TABLE_ID,
    NFT_TABLE,
    subnet_table,
)
from .plug import plug
from .routed import routed_fip_base, routed_fip_tail
from .state import Address, Link, Neighbour, NftChain, NftTable, Route, Rule, ipstr


def fip_namespace(cloud: CloudView, host: str, net: Network, fg: Port, routers: list[Router],
                  slots: dict[str, int], bridges: NsBuilder, cfg: PlanConfig) -> NsBuilder:
    ns, fg_dev = fip_base(cloud, net, fg, bridges, cfg)
    for r in routers:
        fip_router_link(ns, r.id, slots[r.id], net, cfg)
        for route in fip_routes(cloud, host, r, slots[r.id]):
            ns.route(route)
    fip_tail(ns, fg_dev, net.routed)
    return ns


# The parts of `fip_namespace`, in the order it puts them; plan/incremental.py builds the
# namespace from the same parts, keeping each router's FIP routes (`fip_routes`) apart.
def fip_base(cloud: CloudView, net: Network, fg: Port, bridges: NsBuilder, cfg: PlanConfig) -> tuple[NsBuilder, str]:
    """The fg- port, the external subnets' routes and rules; (builder, fg- device). A routed
    network (tag dvrnet:routed) gets plan/routed.py's layout instead."""
    if net.routed:
        return routed_fip_base(cloud, net, fg, bridges, cfg)
    ns = NsBuilder(names.fip_ns(cfg.netns_prefix, net.id))
    fg_dev = names.port_dev(names.AGENT_GW_DEV, fg.id)
    plug(ns, bridges, fg_dev, fg, cfg.bridge_for(net.id), net.mtu, cfg)

    subnets = cloud.subnets_of(net.id)
    fg_ips: dict[str, IPv4Address] = {f.subnet_id: f.ip_address for f in fg.fixed_ips}
    for s in subnets:
        ip = fg_ips.get(s.id)
        if ip is not None:
            ns.address(Address(fg_dev, f"{ip}/{s.cidr.prefixlen}"))
        ns.route(Route(FIP_ONLINK_TABLE, str(s.cidr), dev=fg_dev, scope="link",
                       src=str(ip) if ip is not None else None))
        if s.gateway_ip is not None:
            ns.route(Route(subnet_table(s.cidr), "default", via=str(s.gateway_ip), dev=fg_dev, onlink=True))
            ns.rule(Rule(FIP_SUBNET_PRIO, src=str(s.cidr), table=subnet_table(s.cidr)))
    ns.rule(Rule(FIP_BLOCK_PRIO, action="blackhole", iif=fg_dev))
    ns.rule(Rule(FIP_ONLINK_PRIO, table=FIP_ONLINK_TABLE))
    return ns, fg_dev


def fip_router_link(ns: NsBuilder, router_id: str, slot: int, net: Network, cfg: PlanConfig) -> None:
    """The fpr- end of a router's /31 link: device, address, on-link route, neighbour."""
    rfp_ip, fpr_ip = pair(slot)
    fpr = names.fpr_dev(router_id)
    rfp = names.rfp_dev(router_id)
    qr_ns = names.qrouter_ns(cfg.netns_prefix, router_id)
    ns.link(Link(name=fpr, kind="veth", peer_netns=qr_ns, peer=rfp, mac=veth_mac(router_id, "fpr"), mtu=net.mtu))
    ns.address(Address(fpr, f"{fpr_ip}/31"))
    ns.route(Route(FIP_ONLINK_TABLE, f"{rfp_ip}/31", dev=fpr, scope="link", src=str(fpr_ip)))
    ns.neighbour(Neighbour(fpr, str(rfp_ip), veth_mac(router_id, "rfp")))


def fip_routes(cloud: CloudView, host: str, r: Router, slot: int) -> list[Route]:
    """main: one /32 per FIP of router R on HOST, via its rfp- address (the only routes in main)."""
    via = str(pair(slot)[0])
    fpr = names.fpr_dev(r.id)
    return [fip_route(f, via, fpr) for f in local_fips(cloud, host, r)]


def fip_route(f: FloatingIP, via: str, fpr: str) -> Route:
    """The main-table /32 of FIP F towards its router's rfp- address VIA (on the router's FPR)."""
    return Route(MAIN_TABLE_ID, ipstr(f.floating_ip_address) + "/32", via=via, dev=fpr, onlink=True)


def fip_tail(ns: NsBuilder, fg_dev: str, routed: bool = False) -> None:
    if routed:
        routed_fip_tail(ns, fg_dev)
        return
    ns.sysctl("net.ipv4.ip_forward", 1)
    ns.sysctl("net.ipv4.ip_nonlocal_bind", 1)
    ns.sysctl(f"net.ipv4.conf.{fg_dev}.proxy_arp", 1)
    ns.sysctl(f"net.ipv4.neigh.{fg_dev}.proxy_delay", 0)
    ns.sysctl("net.ipv4.conf.all.send_redirects", 0)
    ns.sysctl("net.ipv4.conf.default.send_redirects", 0)
    # The fip namespace only routes; nothing here needs connection tracking.
    ns.table(NftTable("ip", NFT_TABLE, chains=(
        NftChain("raw_pre", "filter", "prerouting", -300, ("notrack",)),
        NftChain("raw_out", "filter", "output", -300, ("notrack",)),
    )))
