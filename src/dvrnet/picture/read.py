"""The one kernel read the picture needs beyond the agent's reader: every device of the bridge
namespace (bridges and all their ports, not only dvrnet's `dv-` ends)."""
from __future__ import annotations

import json
import subprocess

from .build import BridgeLink


def bridge_links(ns: str) -> list[BridgeLink]:
    p = subprocess.run(["ip", "-d", "-j", "-n", ns, "link", "show"], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return []
    out = []
    for lk in json.loads(p.stdout or "[]"):
        name = lk.get("ifname", "")
        if not name or name == "lo":
            continue
        out.append(BridgeLink(name, (lk.get("linkinfo") or {}).get("info_kind", ""), lk.get("master"),
                              lk.get("address")))
    return out
