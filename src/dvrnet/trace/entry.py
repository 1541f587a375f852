"""The first hop of an inbound trace: how a packet for a FIP reaches the node hosting it, and the
kernel objects that make it happen. One function per kind of external network, chosen by
`external_mode` and registered in `ENTRY_PROBES`:

- "l2" (the article's external segment): the upstream gateway ARPs for the FIP; the FIP node's
  `fg-` answers by proxy ARP, with its own MAC, because its fip- namespace's main table holds the
  FIP's /32 (Linux answers when proxy_arp is on and the route for the target leaves by another
  device). Checked: proxy_arp on `fg-` (sysctl), the kernel's lookup for the FIP arriving on `fg-`
  (a route out of another device: the condition for the answer), `fg-`'s MAC against the port's,
  and — where the segment is reachable (the lab) — a real ARP request from the gateway, answered
  by exactly that MAC.
- "routed" (S6, docs/routed-mode.md): nobody ARPs for a FIP; the top-of-rack router (ToR) routes
  the FIP's /32 to the fg- address of the node that announced it by BGP, and ARPs for that
  address. Checked: the BIRD of the fip- namespace announces the /32 on every BGP session (its
  control socket: `show route export`), each session established; proxy ARP off on `fg-` as
  planned; `fg-`'s MAC; and — where the ToR is reachable (the lab) — the ToR's own route for the
  FIP (`ip route get` there: next hop the node's fg- address) and a real ARP request from the ToR
  for that next hop, answered by exactly `fg-`'s MAC.
With an Open vSwitch port kind (docs/port-kinds.md) both also check `fg-`'s port on the
integration bridge: present, of the planned type, with the external_ids the agent sets (what the
L2 agent binds it by), as the node's Open vSwitch database says.
The walk from the fip- namespace on is the same for both.

A `Segment` is what can be asked outside the node (the lab's segment and ToR are on this
machine); on a real node there is none and only the node's side is checked.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..model import Cloud
from ..plan import names
from ..plan.state import Namespace
from . import probe
from .hops import Check

if TYPE_CHECKING:
    from .nodes import Node


@dataclass
class Entry:
    iif: str | None                      # the device the packet arrives by in the fip- namespace
    checks: list[Check] = field(default_factory=list)
    summary: str = ""


# (target address, the asker's address) -> MACs that answered an ARP request on the segment, or
# None (cannot ask from there)
SegmentArp = Callable[[str, str], "list[str] | None"]


@dataclass(frozen=True)
class UpstreamRoute:
    """The ToR's route for a FIP, as the ToR's kernel says."""
    router: str                  # who was asked (the lab's ToR namespace)
    address: str                 # its address on the segment (it ARPs for the next hop from it)
    via: str | None              # the next hop (None: no route)
    text: str                    # the route as shown there


@dataclass(frozen=True)
class Segment:
    """What can be asked outside the node; None for what cannot (a real node: nothing)."""
    arp: SegmentArp | None = None
    tor_route: Callable[[str], UpstreamRoute | None] | None = None


# (node, fip- namespace name, its desired state, FIP, the packet's sender — by default the
# gateway of the FIP's subnet —, what can be asked on the segment or None)
EntryProbe = Callable[["Node", str, Namespace, str, str, "Segment | None"], Entry]


def external_mode(cloud: Cloud, network_id: str) -> str:
    """How packets for FIPs of this external network reach their node: "routed" for a network
    tagged routed (S6: the ToR's route), else "l2" (proxy ARP on the external segment)."""
    net = cloud.networks.get(network_id)
    return "routed" if net is not None and net.routed else "l2"


def ovs_plug(node: Node, ns: Namespace, dev: str) -> Check | None:
    """DEV's Open vSwitch port (an internal port, or the bridge end of its veth) as planned and
    as the node's OVSDB has it; None when DEV is not plugged into OVS."""
    link = ns.links.get(dev)
    if link is None or not link.peer_netns:
        return None
    if link.kind == "ovs":
        name = dev
    else:
        outer = node.desired.namespaces.get(link.peer_netns)
        peer = outer.links.get(link.peer or "") if outer is not None else None
        if peer is None or not peer.ovs:
            return None
        name = peer.name
    want = node.desired.namespaces[link.peer_netns].ovs_ports.get(name)
    if want is None:
        return None
    obs_ns = node.observed.namespaces.get(link.peer_netns) if node.observed is not None else None
    got = obs_ns.ovs_ports.get(name) if obs_ns is not None else None

    def text(p) -> str:
        return (f"{p.name} on {p.bridge}, type {p.type or 'system'}, iface-id {p.external_id('iface-id')}, "
                f"attached-mac {p.external_id('attached-mac')}, iface-status {p.external_id('iface-status')}")
    return Check(f"Open vSwitch port of {dev}", text(want), text(got) if got is not None else f"no port {name}",
                 got == want)


def proxy_arp(node: Node, ns_name: str, ns: Namespace, fip: str, asker: str, segment: Segment | None) -> Entry:
    fg = next((d for d in sorted(ns.links) if d.startswith(names.AGENT_GW_DEV)), None)
    if fg is None:
        return Entry(None, summary=f"{ns_name} has no {names.AGENT_GW_DEV} port planned")
    want_mac = (ns.links[fg].mac or "").lower()
    checks = []
    key = f"net.ipv4.conf.{fg}.proxy_arp"
    want = ns.sysctls.get(key, "1")
    got = probe.sysctl_value(ns_name, key)
    checks.append(Check(f"proxy ARP on {fg}", want, got if got is not None else "unreadable", got == want))
    k = probe.route_get(ns_name, fip, asker, fg, 0)
    answers = k.ok and k.dev is not None and k.dev != fg
    checks.append(Check(f"{fip} routed out of another device than {fg} (proxy ARP answers)",
                        f"a route to {fip} via another device", k.text, answers))
    mac = (probe.link_mac(ns_name, fg) or "").lower()
    checks.append(Check(f"MAC of {fg}", want_mac or "the port's", mac or "no such device",
                        bool(mac) and (not want_mac or mac == want_mac)))
    plugged = ovs_plug(node, ns, fg)
    if plugged is not None:
        checks.append(plugged)
    if segment is not None and segment.arp is not None:
        seen = segment.arp(fip, asker)
        if seen is not None:
            seen = sorted({m.lower() for m in seen})
            checks.append(Check(f"ARP for {fip} from {asker} on the segment", f"one answer, from {want_mac}",
                                ", ".join(seen) if seen else "no answer", seen == [want_mac]))
    ok = all(c.ok for c in checks)
    summary = (f"ARP for {fip} (from {asker}): {'answered' if ok else 'should be answered'} by {fg} of {node.host} "
               f"with MAC {want_mac} (proxy ARP: {fip}/32 in {ns_name}'s main table)")
    return Entry(fg, checks, summary)


def fg_address(ns: Namespace, fg: str) -> str | None:
    return next((a.ip for a in sorted(ns.addresses, key=lambda a: a.cidr) if a.dev == fg), None)


def _tor_address(ns: Namespace, fg: str) -> str | None:
    """The planned default route's next hop out of fg- (the ToR)."""
    return next((r.via for r in sorted(ns.routes, key=lambda r: (r.table, r.dst))
                 if r.dst == "default" and r.dev == fg and r.via), None)


def tor_route(node: Node, ns_name: str, ns: Namespace, fip: str, asker: str, segment: Segment | None) -> Entry:
    fg = next((d for d in sorted(ns.links) if d.startswith(names.AGENT_GW_DEV)), None)
    if fg is None:
        return Entry(None, summary=f"{ns_name} has no {names.AGENT_GW_DEV} port planned")
    want_mac = (ns.links[fg].mac or "").lower()
    local, tor = fg_address(ns, fg), _tor_address(ns, fg)
    checks = []
    if "bird" not in ns.processes:
        checks.append(Check(f"BIRD planned in {ns_name}", "a BIRD announcing the FIPs",
                            "none planned (no fg- address or no BGP peer)", False))
    else:
        announced = probe.bird_announces(ns_name, f"{fip}/32")
        if isinstance(announced, str):
            checks.append(Check(f"BIRD in {ns_name} announces {fip}/32", "announced on every session",
                                announced, False))
        else:
            got = "; ".join(f"{s}: {info or state}, {'announced' if yes else 'not announced'}"
                            for s, state, info, yes in announced) or "no BGP session"
            ok = bool(announced) and all(state == "up" and yes for _s, state, _i, yes in announced)
            checks.append(Check(f"BIRD in {ns_name} announces {fip}/32", "announced on every session, each up",
                                got, ok))
    key = f"net.ipv4.conf.{fg}.proxy_arp"
    want = ns.sysctls.get(key, "0")
    got = probe.sysctl_value(ns_name, key)
    checks.append(Check(f"proxy ARP on {fg} (nobody ARPs for a FIP)", want, got if got is not None else "unreadable",
                        got == want))
    mac = (probe.link_mac(ns_name, fg) or "").lower()
    checks.append(Check(f"MAC of {fg}", want_mac or "the port's", mac or "no such device",
                        bool(mac) and (not want_mac or mac == want_mac)))
    plugged = ovs_plug(node, ns, fg)
    if plugged is not None:
        checks.append(plugged)
    seen = segment.tor_route(fip) if segment is not None and segment.tor_route is not None else None
    if seen is not None:
        checks.append(Check(f"{seen.router}'s route for {fip}", f"via {local} ({node.host}'s {fg})", seen.text,
                            local is not None and seen.via == local))
        if segment is not None and segment.arp is not None and local is not None:
            macs = segment.arp(local, seen.address)
            if macs is not None:
                macs = sorted({m.lower() for m in macs})
                checks.append(Check(f"ARP for {local} from {seen.address} (the ToR) on the segment",
                                    f"one answer, from {want_mac}", ", ".join(macs) if macs else "no answer",
                                    macs == [want_mac]))
    ok = all(c.ok for c in checks)
    summary = (f"the ToR ({tor or '?'}) {'routes' if ok else 'should route'} {fip}/32 via {local or '?'}, "
               f"{fg} of {node.host} (MAC {want_mac}), announced by the BIRD of {ns_name}")
    return Entry(fg, checks, summary)


ENTRY_PROBES: dict[str, EntryProbe] = {"l2": proxy_arp, "routed": tor_route}
