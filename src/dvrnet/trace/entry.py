"""The first hop of an inbound trace: how a packet for a FIP reaches the node hosting it, and the
kernel objects that make it happen. One function per kind of external network, chosen by
`external_mode`:

- "l2" (the article's external segment): the upstream gateway ARPs for the FIP; the FIP node's
  `fg-` answers by proxy ARP, with its own MAC, because its fip- namespace's main table holds the
  FIP's /32 (Linux answers when proxy_arp is on and the route for the target leaves by another
  device). Checked: proxy_arp on `fg-` (sysctl), the kernel's lookup for the FIP arriving on `fg-`
  (a route out of another device: the condition for the answer), `fg-`'s MAC against the port's,
  and — where the segment is reachable (the lab) — a real ARP request from the gateway, answered
  by exactly that MAC.
- "routed" (S6, no proxy ARP: the ToR routes the FIP's /32 to the node) plugs in here: register
  an `EntryProbe` under its mode in `ENTRY_PROBES` and make `external_mode` return it for such
  networks; the walk from the fip- namespace on is the same.
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


# (node, fip- namespace name, its desired state, FIP, the ARP sender's address — the upstream
# gateway of the FIP's subnet —, segment ARP probe or None)
EntryProbe = Callable[["Node", str, Namespace, str, str, "SegmentArp | None"], Entry]
# (FIP, the asker's address) -> MACs that answered an ARP request on the segment, or None (cannot ask)
SegmentArp = Callable[[str, str], "list[str] | None"]


def external_mode(cloud: Cloud, network_id: str) -> str:
    """How packets for FIPs of this external network reach their node: "routed" for a network
    tagged routed (S6: the ToR's route), else "l2" (proxy ARP on the external segment)."""
    net = cloud.networks.get(network_id)
    return "routed" if net is not None and net.routed else "l2"


def proxy_arp(node: Node, ns_name: str, ns: Namespace, fip: str, asker: str, segment_arp: SegmentArp | None) -> Entry:
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
    if segment_arp is not None:
        seen = segment_arp(fip, asker)
        if seen is not None:
            seen = sorted({m.lower() for m in seen})
            checks.append(Check(f"ARP for {fip} from {asker} on the segment", f"one answer, from {want_mac}",
                                ", ".join(seen) if seen else "no answer", seen == [want_mac]))
    ok = all(c.ok for c in checks)
    summary = (f"ARP for {fip} (from {asker}): {'answered' if ok else 'should be answered'} by {fg} of {node.host} "
               f"with MAC {want_mac} (proxy ARP: {fip}/32 in {ns_name}'s main table)")
    return Entry(fg, checks, summary)


ENTRY_PROBES: dict[str, EntryProbe] = {"l2": proxy_arp}
