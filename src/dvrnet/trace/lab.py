"""What the lab adds to a trace: the external segment is on this machine, so the first hop of an
inbound trace is also asked for real — an ARP request from the upstream gateway of the FIP's
subnet (its namespace), and which MACs answer."""
from __future__ import annotations

import re
import subprocess

from .entry import SegmentArp

_REPLY = re.compile(r"bytes from ([0-9A-Fa-f:]{17}) \(")     # arping (Habets'): "42 bytes from MAC (IP): ..."


def segment_arp(info) -> SegmentArp:
    def ask(fip: str, asker: str) -> list[str] | None:
        gw = next((g for g in info.gateways if g.address == asker), None) or info.gateway_for(fip)
        if gw is None:
            return None
        p = subprocess.run(["ip", "netns", "exec", gw.netns, "arping", "-c", "2", "-W", "0.1", "-w", "1", "-i", "seg0",
                            "-S", gw.address, fip], capture_output=True, text=True, check=False, timeout=10)
        return sorted({m.lower() for m in _REPLY.findall(p.stdout)})
    return ask
