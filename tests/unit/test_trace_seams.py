"""Pure pieces of `dvrnet trace` (no root): the first hop of an inbound trace is chosen by the
external network's mode (trace/entry.py)."""
from __future__ import annotations

import dataclasses

import pytest

from dvrnet.model.resources import ROUTED_TAG
from dvrnet.plan import plan_host
from dvrnet.scenarios.seed import build as seed
from dvrnet.trace import Node, TraceError, Tracer
from dvrnet.trace.entry import ENTRY_PROBES, Entry, external_mode


def test_inbound_trace_picks_its_first_hop_by_the_networks_mode():
    """The seam for routed mode (trace/entry.py): a FIP of a network tagged routed asks
    `ENTRY_PROBES["routed"]` for its first hop (the ToR's route, no proxy ARP); until routed mode
    registers one, the trace says so instead of checking proxy ARP that routed mode does not use."""
    cloud = seed()
    fip = next(f for f in cloud.floatingips.values() if f.port_id)
    ext = cloud.networks[fip.floating_network_id]
    assert external_mode(cloud, ext.id) == "l2"
    routed = cloud.with_(networks={**cloud.networks, ext.id: dataclasses.replace(ext, tags=(ROUTED_TAG,))})
    assert external_mode(routed, ext.id) == "routed"
    host = cloud.ports[fip.port_id].host
    node = Node(host, "", plan_host(routed, host), routed)
    with pytest.raises(TraceError, match="routed"):
        Tracer([node]).inbound(str(fip.floating_ip_address))
    seen = []
    ENTRY_PROBES["routed"] = lambda n, ns_name, ns, f, asker, arp: seen.append(ns_name) or Entry(None, [], "tor")
    try:
        t = Tracer([node]).inbound(str(fip.floating_ip_address))
    finally:
        del ENTRY_PROBES["routed"]
    assert seen and seen[0].startswith("fip-") and t.entry == "tor" and not t.agree
