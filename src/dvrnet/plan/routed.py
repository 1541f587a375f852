"""Routed mode (S6) for an external network tagged `dvrnet:routed`: the fip- and snat- namespaces
route to the top-of-rack router (ToR) and a BIRD in each announces the public /32s they hold.

Addresses (issue 15's decisions): the network's *private* subnets are those with service type
`network:floatingip_agent_gateway` (where fg- takes its address; its gateway is the ToR) or
`network:router_gateway` (where qg- takes its address); every other subnet is *public* (FIPs,
SNAT addresses). Private subnets are on the segment; public ones are not on-link anywhere: every
packet to a public address leaves by the ToR, which learned from BGP which node holds it.

fip-<net> invariants (beside those of fip.py that do not concern the segment's L2):
- main holds only the /32 of every local FIP (via its router's rfp-), so FIP->FIP on one node
  stays local; FIP->FIP across nodes and everything else follows the default via the ToR;
- `iif fg- blackhole` comes before the on-link table and the default, so nothing arriving from
  the ToR that is not a local FIP is forwarded (no loop back to the ToR);
- no proxy ARP on fg- (nobody ARPs for a FIP: the ToR routes it to the fg- address), hence no
  gratuitous ARP either (reconcile/diff.py sends one only where proxy ARP answers);
- a BIRD process (plan/bird.py) announces the /32s of main inside the public subnets, and a
  watchdog (plan/watchdog.py) makes it announce them as stale when the agent stops renewing a lease.
snat-<router> invariants:
- qg- holds only the gateway port's private address (connected route in main); its public SNAT
  address is held as the route `<address>/32 dev qg-`, which BIRD announces (no public address
  on any fg-/qg-); tenant subnets are NATed to it (to the private address when there is none);
- `iif qg- blackhole` before the default via the ToR, as in fip-.
"""
from __future__ import annotations

from ipaddress import IPv4Address

from ..model import Network, Port, Router
from ..model.cloud import CloudView
from ..model.resources import Subnet
from . import names
from .bird import bird_process
from .builder import NsBuilder
from .config import BgpPeer, PlanConfig
from .numbers import (
    FIP_BLOCK_PRIO,
    FIP_ONLINK_PRIO,
    FIP_ONLINK_TABLE,
    MAIN_TABLE_ID,
    NFT_TABLE,
    ROUTED_DEFAULT_PRIO,
    ROUTED_DEFAULT_TABLE,
)
from .plug import plug
from .state import Address, NftChain, NftTable, Route, Rule
from .watchdog import watchdog_process


def is_private(s: Subnet) -> bool:
    return s.routed_private


def public_cidrs(cloud: CloudView, net_id: str) -> list[str]:
    return [str(s.cidr) for s in cloud.subnets_of(net_id) if not is_private(s)]


def _peers(cfg: PlanConfig, tor: IPv4Address | None) -> tuple[BgpPeer, ...]:
    if cfg.bgp.peers:
        return cfg.bgp.peers
    return (BgpPeer(str(tor), cfg.bgp.peer_as),) if tor is not None else ()


def _upstream(ns: NsBuilder, dev: str, cloud: CloudView, net: Network, local: IPv4Address | None,
              tor: IPv4Address | None, host: str, cfg: PlanConfig) -> None:
    """The part both namespaces share: nothing from the segment transits, default via the ToR,
    and the BIRD that announces the namespace's public /32s."""
    ns.rule(Rule(FIP_BLOCK_PRIO, action="blackhole", iif=dev))
    if tor is not None:
        ns.route(Route(ROUTED_DEFAULT_TABLE, "default", via=str(tor), dev=dev, onlink=True))
        ns.rule(Rule(ROUTED_DEFAULT_PRIO, table=ROUTED_DEFAULT_TABLE))
    peers = _peers(cfg, tor)
    if local is not None and peers:
        ns.process(bird_process(ns.name, str(local), cfg.bgp.asn(host), peers, public_cidrs(cloud, net.id),
                                dev, cfg.bgp))
        dog = watchdog_process(ns.name, cfg.bgp)
        if dog is not None:
            ns.process(dog)


def routed_fip_base(cloud: CloudView, net: Network, fg: Port, bridges: NsBuilder,
                    cfg: PlanConfig) -> tuple[NsBuilder, str]:
    ns = NsBuilder(names.fip_ns(cfg.netns_prefix, net.id))
    fg_dev = names.port_dev(names.AGENT_GW_DEV, fg.id)
    plug(ns, bridges, fg_dev, fg, cfg.bridge_for(net.id), net.mtu, cfg)
    fg_ips = {f.subnet_id: f.ip_address for f in fg.fixed_ips}
    local = tor = None
    for s in cloud.subnets_of(net.id):
        ip = fg_ips.get(s.id)
        if ip is not None:
            ns.address(Address(fg_dev, f"{ip}/{s.cidr.prefixlen}"))
            if local is None:
                local, tor = ip, s.gateway_ip
        if is_private(s):
            ns.route(Route(FIP_ONLINK_TABLE, str(s.cidr), dev=fg_dev, scope="link",
                           src=str(ip) if ip is not None else None))
    ns.rule(Rule(FIP_ONLINK_PRIO, table=FIP_ONLINK_TABLE))
    _upstream(ns, fg_dev, cloud, net, local, tor, fg.host or fg.device_id, cfg)
    return ns, fg_dev


def routed_fip_tail(ns: NsBuilder, fg_dev: str) -> None:
    ns.sysctl("net.ipv4.ip_forward", 1)
    ns.sysctl("net.ipv4.ip_nonlocal_bind", 1)
    ns.sysctl(f"net.ipv4.conf.{fg_dev}.proxy_arp", 0)
    ns.sysctl("net.ipv4.conf.all.send_redirects", 0)
    ns.sysctl("net.ipv4.conf.default.send_redirects", 0)
    ns.table(NftTable("ip", NFT_TABLE, chains=(
        NftChain("raw_pre", "filter", "prerouting", -300, ("notrack",)),
        NftChain("raw_out", "filter", "output", -300, ("notrack",)),
    )))


def routed_snat_upstream(ns: NsBuilder, cloud: CloudView, router: Router, gw_port: Port, qg: str,
                         cfg: PlanConfig) -> IPv4Address | None:
    """qg-'s addresses, routes and rules and the BIRD; returns the address to NAT tenants to."""
    assert router.gateway is not None
    net = cloud.network(router.gateway.network_id)
    local = tor = public = None
    for f in gw_port.fixed_ips:
        s = cloud.subnet(f.subnet_id)
        if is_private(s):
            ns.address(Address(qg, f"{f.ip_address}/{s.cidr.prefixlen}"))
            ns.route(Route(MAIN_TABLE_ID, str(s.cidr), dev=qg, scope="link", src=str(f.ip_address)))
            if local is None:
                local, tor = f.ip_address, s.gateway_ip
        else:
            # not an address of qg- (no public address on fg-/qg-): the route BIRD announces;
            # replies to NATed flows are de-NATed before routing and never need it
            ns.route(Route(MAIN_TABLE_ID, f"{f.ip_address}/32", dev=qg, scope="link"))
            public = public or f.ip_address
    _upstream(ns, qg, cloud, net, local, tor, gw_port.host, cfg)
    return public or local
