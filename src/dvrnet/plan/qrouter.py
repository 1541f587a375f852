"""The qrouter-<router> namespace of one host (architecture.md §2; validated design B).

Invariants:
- qr- ports hold their subnet's gateway address with the same MAC on every node; every other port
  of those subnets has a permanent neighbour entry (routing between nodes is asymmetric, so ARP
  cannot resolve them);
- FIPs cost the same per packet whatever their number: nftables marks packets whose source is a
  fixed IP with a FIP (map lookup), ONE fwmark rule sends them to QR_FIP_TABLE (default via the
  fip- namespace), and DNAT/SNAT use maps. Adding a FIP adds map elements, never a rule;
- fixed IPs without a FIP follow `from <tenant cidr>` to the table of their subnet, whose default
  is the router's sg- address on that subnet (the snat- namespace on the SNAT host);
- rp_filter is strict on qr- (anti-spoofing from VMs) and off on `all` and rfp-: the reverse-path
  lookup carries no fwmark, so strict checking there would drop NATed FIP traffic.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..model import DeviceOwner, FloatingIP, Router
from ..model.cloud import CloudView
from ..model.placement import local_fips
from . import names
from .builder import NsBuilder
from .config import PlanConfig
from .connlimit import JUMP, limit_parts, vm_limits
from .linklocal import pair, veth_mac
from .metadata import add_metadata
from .numbers import (
    FIP_MARK,
    MAIN_TABLE_ID,
    NFT_TABLE,
    QR_FIP_PRIO,
    QR_FIP_TABLE,
    QR_SNAT_PRIO,
    subnet_table,
)
from .plug import plug
from .state import Address, Link, Neighbour, NftChain, NftMap, NftTable, Route, Rule, ipstr


def qrouter_namespace(cloud: CloudView, host: str, router: Router, slot: int | None,
                      bridges: NsBuilder, cfg: PlanConfig, nat: bool = True) -> NsBuilder:
    """`slot` is the router's link-local slot when it is linked to a fip- namespace here.
    NAT=False: without the FIP NAT table (`qrouter_nat_frame` + `nat_table`: what the incremental
    planner keeps apart, so a FIP change does not rebuild the rest of the namespace)."""
    ns = NsBuilder(names.qrouter_ns(cfg.netns_prefix, router.id))
    sg_by_subnet = {}
    if router.gateway is not None:
        for p in cloud.router_ports(router.id, DeviceOwner.ROUTER_SNAT):
            for f in p.fixed_ips:
                sg_by_subnet[f.subnet_id] = f.ip_address

    ns.sysctl("net.ipv4.ip_forward", 1)
    ns.sysctl("net.ipv4.conf.all.rp_filter", 0)
    ns.sysctl("net.ipv4.conf.default.rp_filter", 0)
    ns.sysctl("net.ipv4.conf.all.send_redirects", 0)
    ns.sysctl("net.ipv4.conf.default.send_redirects", 0)

    interfaces = cloud.router_interfaces(router.id)
    if interfaces:
        add_metadata(ns, router.id, cfg.metadata)      # plan/metadata.py: the proxy and its redirect
    for port in interfaces:
        net = cloud.network(port.network_id)
        dev = names.port_dev(names.ROUTER_IF_DEV, port.id)
        plug(ns, bridges, dev, port, names.tenant_bridge(net.id), net.mtu, cfg)
        ns.sysctl(f"net.ipv4.conf.{dev}.rp_filter", 1)
        ns.sysctl(f"net.ipv4.conf.{dev}.send_redirects", 0)
        for f in port.fixed_ips:
            s = cloud.subnet(f.subnet_id)
            ns.address(Address(dev, f"{f.ip_address}/{s.cidr.prefixlen}"))
            ns.route(Route(MAIN_TABLE_ID, str(s.cidr), dev=dev, scope="link", src=str(f.ip_address)))
            for other in cloud.ports_by_subnet.get(s.id, ()):
                if other.id == port.id or not other.mac_address:
                    continue
                ip = other.ip_on(s.id)
                if ip is not None and ip != f.ip_address:
                    ns.neighbour(Neighbour(dev, ipstr(ip), other.mac_address))
            sg_ip = sg_by_subnet.get(s.id)
            if sg_ip is not None:
                table = subnet_table(s.cidr)
                ns.route(Route(table, "default", via=str(sg_ip), dev=dev))
                ns.rule(Rule(QR_SNAT_PRIO, src=str(s.cidr), table=table))

    if slot is not None and router.gateway is not None:
        ext = cloud.network(router.gateway.network_id)
        rfp_ip, fpr_ip = pair(slot)
        rfp = names.rfp_dev(router.id)
        fpr = names.fpr_dev(router.id)
        ns.link(Link(name=rfp, kind="veth", peer_netns=names.fip_ns(cfg.netns_prefix, ext.id), peer=fpr,
                     mac=veth_mac(router.id, "rfp"), mtu=ext.mtu))
        ns.address(Address(rfp, f"{rfp_ip}/31"))
        ns.route(Route(MAIN_TABLE_ID, f"{rfp_ip}/31", dev=rfp, scope="link", src=str(rfp_ip)))
        ns.neighbour(Neighbour(rfp, str(fpr_ip), veth_mac(router.id, "fpr")))
        ns.route(Route(QR_FIP_TABLE, "default", via=str(fpr_ip), dev=rfp, onlink=True))
        ns.rule(Rule(QR_FIP_PRIO, fwmark=FIP_MARK, fwmask=FIP_MARK, table=QR_FIP_TABLE))
        ns.sysctl(f"net.ipv4.conf.{rfp}.rp_filter", 0)
        ns.sysctl(f"net.ipv4.conf.{rfp}.send_redirects", 0)
        if nat:
            fips = local_fips(cloud, host, router)
            ns.table(fip_nat_table(rfp, [nat_pair(f) for f in fips], vm_limits(cloud, router, host), cfg))
    return ns


def nat_pair(f: FloatingIP) -> tuple[str, str]:
    """(FIP, fixed IP) of a FIP with a port: its element of the `fip2fixed` map."""
    return ipstr(f.floating_ip_address), ipstr(f.fixed_ip_address)


def qrouter_nat_frame(cloud: CloudView, host: str, router: Router, cfg: PlanConfig) -> tuple:
    """What the FIP NAT table of ROUTER's qrouter- on HOST holds besides its FIPs: (chains, the
    connection-limit maps), for `nat_table`; it does not depend on the FIPs."""
    return fip_nat_frame(names.rfp_dev(router.id), vm_limits(cloud, router, host), cfg)


def fip_nat_table(rfp: str, fip_fixed: list[tuple[str, str]], vm_limits: Sequence[tuple[str, int | None]] = (),
                  cfg: PlanConfig | None = None) -> NftTable:
    """The FIP NAT of one qrouter: structure fixed, FIPs only as map elements; with CFG, the
    connection limits of VM_LIMITS (plan/connlimit.py) in the same table, and the stateless
    variant of the NAT when `cfg.stateless_fips` (docs/dataplane.md):
    - stateful (default): conntrack NAT from the maps (`dnat to`/`snat to ... map`), decided on a
      connection's first packet, ICMP errors translated by conntrack (inner header included);
    - stateless: every packet rewritten from the same maps without conntrack: inbound `ip daddr
      set ... map` + `notrack` in a raw-priority chain (before routing), outbound `notrack` + mark
      there and `ip saddr set ... map` after routing (a strict rp_filter on qr- sees the fixed
      IP); TCP SYN/SYN-ACKs through a FIP get their MSS clamped (ICMP errors from beyond the node keep
      the FIP as inner source, so the VM never learns the path MTU: docs/dataplane.md)."""
    chains, limit_maps = fip_nat_frame(rfp, vm_limits, cfg)
    return nat_table(chains, limit_maps, frozenset(fip_fixed), frozenset((b, a) for a, b in fip_fixed))


def nat_table(chains: tuple[NftChain, ...], limit_maps: tuple[NftMap, ...], fip2fixed: frozenset[tuple[str, str]],
              fixed2fip: frozenset[tuple[str, str]]) -> NftTable:
    """The FIP NAT table from its frame (`fip_nat_frame`) and its two maps' elements."""
    return NftTable("ip", NFT_TABLE, chains=chains, maps=(
        NftMap("fip2fixed", "ipv4_addr", "ipv4_addr", fip2fixed),
        NftMap("fixed2fip", "ipv4_addr", "ipv4_addr", fixed2fip),
    ) + limit_maps)


def fip_nat_frame(rfp: str, vm_limits: Sequence[tuple[str, int | None]] = (),
                  cfg: PlanConfig | None = None) -> tuple[tuple[NftChain, ...], tuple[NftMap, ...]]:
    """(chains, connection-limit maps) of `fip_nat_table`: everything but the FIP maps."""
    stateless = cfg is not None and cfg.stateless_fips
    limit_chains, limit_maps = (limit_parts(rfp, vm_limits, cfg, inbound_dnat=True, base=stateless)
                                if cfg else ((), ()))
    mark = f'iifname != "{rfp}" ip saddr @fixed2fip meta mark set meta mark | {FIP_MARK:#x}'
    if stateless:
        assert cfg is not None
        mss = cfg.stateless_mss
        clamp = f"tcp flags & syn == syn tcp option maxseg size > {mss}"      # cheap tests first
        nat: tuple[NftChain, ...] = (
            NftChain("raw_pre", "filter", "prerouting", -300, (
                f'{clamp} iifname "{rfp}" ip daddr @fip2fixed tcp option maxseg size set {mss}',
                f'{clamp} iifname != "{rfp}" ip saddr @fixed2fip tcp option maxseg size set {mss}',
                f'iifname "{rfp}" ip daddr set ip daddr map @fip2fixed notrack',
                f'iifname != "{rfp}" ip saddr @fixed2fip notrack meta mark set meta mark | {FIP_MARK:#x}')),
            NftChain("post_stateless", "filter", "postrouting", 100, (
                f'oifname "{rfp}" ip saddr set ip saddr map @fixed2fip',)),
        )
    else:
        # after DNAT (-100), before routing: the mark, then the limits of new connections
        nat = (
            NftChain("pre_mangle", "filter", "prerouting", -90, (mark, JUMP) if limit_chains else (mark,)),
            NftChain("pre_nat", "nat", "prerouting", -100,
                     (f'iifname "{rfp}" dnat to ip daddr map @fip2fixed',)),
            NftChain("post_nat", "nat", "postrouting", 100,
                     (f'oifname "{rfp}" snat to ip saddr map @fixed2fip',)),
        )
    return nat + tuple(limit_chains), tuple(limit_maps)
