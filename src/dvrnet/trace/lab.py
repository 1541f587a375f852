"""What the lab adds to a trace: the external segment (and, in routed mode, the ToR) is on this
machine, so the first hop of an inbound trace is also asked for real:
- an ARP request on the segment (`arping` from the asker's namespace), and which MACs answer: from
  the upstream gateway of the FIP's subnet for the FIP itself (l2), from the ToR for the next hop
  of its route (routed);
- routed: the ToR's route for the FIP (`ip route get` in its namespace, and the protocol that
  wrote it: `bird` when BGP did)."""
from __future__ import annotations

import json
import re
import subprocess

from .entry import Segment, SegmentArp, UpstreamRoute

_REPLY = re.compile(r"bytes from ([0-9A-Fa-f:]{17}) \(")     # arping (Habets'): "42 bytes from MAC (IP): ..."


def segment_arp(info) -> SegmentArp:
    def ask(target: str, asker: str) -> list[str] | None:
        if info.tor is not None and asker == info.tor.get("address"):
            netns = info.tor["netns"]
        else:
            gw = next((g for g in info.gateways if g.address == asker), None) or info.gateway_for(target)
            if gw is None:
                return None
            netns, asker = gw.netns, gw.address
        p = subprocess.run(["ip", "netns", "exec", netns, "arping", "-c", "2", "-W", "0.1", "-w", "1", "-i", "seg0",
                            "-S", asker, target], capture_output=True, text=True, check=False, timeout=10)
        return sorted({m.lower() for m in _REPLY.findall(p.stdout)})
    return ask


def tor_route(info):
    def ask(fip: str) -> UpstreamRoute | None:
        if info.tor is None:
            return None
        ns, addr = info.tor["netns"], info.tor["address"]

        def ip(*argv: str) -> list[dict]:
            p = subprocess.run(["ip", "-j", "-n", ns, *argv], capture_output=True, text=True, check=False, timeout=10)
            try:
                return json.loads(p.stdout or "[]") if p.returncode == 0 else []
            except ValueError:
                return []
        got = ip("route", "get", fip)
        if not got or got[0].get("type") in ("blackhole", "unreachable", "prohibit"):
            return UpstreamRoute(ns, addr, None, f"no route to {fip}")
        r = got[0]
        proto = next((x.get("protocol") for x in ip("route", "show", f"{fip}/32")), None)
        text = " ".join(x for x in (fip, f"via {r['gateway']}" if r.get("gateway") else "", f"dev {r.get('dev')}",
                                    f"proto {proto}" if proto else "(no /32: a wider route)") if x)
        return UpstreamRoute(ns, addr, r.get("gateway"), text)
    return ask


def segment(info) -> Segment:
    return Segment(arp=segment_arp(info), tor_route=tor_route(info) if info.tor is not None else None)
