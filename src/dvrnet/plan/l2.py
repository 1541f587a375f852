"""The distributed gateway's L2 guard: an nftables table (`bridge dvrnet`) in the node's bridge
namespace, so the gateway MAC and addresses every node shares stay on the node.

Every node hosting a router has a `qr-` port per tenant subnet with the *same* MAC and the subnet's
gateway address (plan/qrouter.py). On the tenant network's bridge that is harmless locally and
wrong across nodes: a frame leaving the node with the shared MAC as its source makes the other
nodes' bridges (and a physical fabric) learn the gateway MAC on their uplink, and an ARP for the
gateway answered by another node's `qr-` points a VM at a remote gateway. Neutron's OVS agent
rewrites and drops the same frames in its tunnel bridge; dvrnet does it on Linux bridges:

- on an uplink port (below), ARP whose sender or target address is a distributed gateway address
  is dropped in both directions: a VM's gateway always resolves to its own node's `qr-`;
- a frame leaving by an uplink with a `qr-` MAC as its source gets the node's own MAC (the DVR host
  MAC: `PlanConfig.dvr_mac`, else derived from the host name, unique per host) instead; routed
  frames to VMs on other nodes still arrive (a host does not check the source MAC of what it gets).
- uplink ports: bridge ports whose device kind leads off the node (`UPLINK_KINDS`: VXLAN, GENEVE,
  GRE taps, VLAN subinterfaces, bonds, teams), plus the ports named in `PlanConfig.uplinks` (a
  physical NIC has no kind; name it there, e.g. `--uplink eth1`). VM taps and dvrnet's own
  `dv-` veth ends are never uplinks.

The table exists only when the host has `qr-` ports on Linux bridges (port kinds veth and
macvlan: plan/plug.py); it is replaced whole when its addresses or MACs change, and the reconciler
writes it before it creates any link (reconcile/diff.py), so no new `qr-` port is ever up without it.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import names
from .numbers import NFT_TABLE
from .state import Namespace, NftChain, NftTable

UPLINK_KINDS = ("bond", "geneve", "gretap", "team", "vlan", "vxlan")
LINUX_BRIDGE_KINDS = ("veth", "macvlan")


def host_mac(host: str) -> str:
    """The DVR host MAC derived from a host name (locally administered, 40 bits of hash)."""
    return names.local_mac(f"dvr-host:{host}")


def _set(items: Iterable[str], quote: bool = False) -> str:
    xs = sorted(set(items))
    return "{ " + ", ".join(f'"{x}"' if quote else x for x in xs) + " }"


def distributed_gateways(namespaces: Iterable[Namespace]) -> tuple[list[str], list[str]]:
    """(gateway addresses, MACs) of every `qr-` port in these namespaces."""
    ips, macs = set(), set()
    for ns in namespaces:
        qr = {n: lk for n, lk in ns.links.items() if n.startswith(names.ROUTER_IF_DEV)}
        macs |= {lk.mac.lower() for lk in qr.values() if lk.mac}
        ips |= {a.ip for a in ns.addresses if a.dev in qr}
    return sorted(ips), sorted(macs)


def uplink_guard(gateway_ips: Sequence[str], router_macs: Sequence[str], node_mac: str,
                 uplinks: Sequence[str] = ()) -> NftTable | None:
    if not gateway_ips and not router_macs:
        return None
    pre: list[str] = []
    post: list[str] = []
    for direction, chain in (("iif", pre), ("oif", post)):
        matches = [f"meta {direction}kind {_set(UPLINK_KINDS, quote=True)}"]
        if uplinks:
            matches.append(f"{direction}name {_set(uplinks, quote=True)}")
        for m in matches:
            if gateway_ips:
                g = _set(gateway_ips)
                chain += [f"{m} arp saddr ip {g} counter drop", f"{m} arp daddr ip {g} counter drop"]
            if direction == "oif" and router_macs:
                chain.append(f"{m} ether saddr {_set(router_macs)} counter ether saddr set {node_mac.lower()}")
    return NftTable("bridge", NFT_TABLE, chains=(
        NftChain("pre", "filter", "prerouting", -200, tuple(pre)),
        NftChain("post", "filter", "postrouting", 0, tuple(post)),
    ))


def bridge_guard(namespaces: Iterable[Namespace], host: str, port_kind: str, dvr_mac: str | None,
                 uplinks: Sequence[str]) -> NftTable | None:
    """The guard table of a host whose router namespaces are NAMESPACES, or None."""
    if port_kind not in LINUX_BRIDGE_KINDS:
        return None
    ips, macs = distributed_gateways(namespaces)
    return uplink_guard(ips, macs, dvr_mac or host_mac(host), uplinks)
