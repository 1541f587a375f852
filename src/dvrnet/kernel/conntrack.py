"""Forget the connection-tracking entries of fixed IPs whose FIP NAT changed (qrouter- namespaces).

Why: NAT is decided on a connection's first packet. A flow that started before its fixed IP got a
FIP (a VM pinging out through SNAT, or a migrated VM whose packets reach the new node's qrouter
before the FIP is wired there) keeps its un-NATed conntrack entry, so its packets are marked into
the fip- namespace with their fixed source and die there — for as long as the flow lasts. The same
holds in reverse when a FIP goes away. Deleting the entries of exactly those fixed IPs lets the next
packet be NATed by the current rules (Neutron's agent deletes entries on FIP changes too).
Done through netlink (pyroute2) from a thread inside the namespace; no process is spawned.
"""
from __future__ import annotations

import logging

from . import netns

log = logging.getLogger("dvrnet.kernel")


def forget(ns: str, ips: list[str]) -> int:
    """Delete the entries whose original source or reply source is one of IPS; returns how many."""
    if not ips:
        return 0
    want = set(ips)

    def body() -> int:
        from pyroute2 import Conntrack
        ct = Conntrack()
        n = 0
        try:
            for e in list(ct.dump_entries()):
                o, r = e.tuple_orig, e.tuple_reply
                if getattr(o, "saddr", None) in want or getattr(r, "saddr", None) in want:
                    try:
                        ct.entry("del", tuple_orig=o)
                        n += 1
                    except Exception:  # noqa: BLE001, S110 - the entry went meanwhile
                        pass
        finally:
            ct.close()
        return n
    try:
        return netns.run_in(ns, body)
    except Exception as e:                      # noqa: BLE001 - never fail a pass over conntrack
        log.warning("%s: conntrack entries of %s not deleted: %s", ns, ", ".join(sorted(want)), e)
        return 0
