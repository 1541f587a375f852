"""Pure pieces of `dvrnet trace` (no root): the first hop of an inbound trace is chosen by the
external network's mode (trace/entry.py)."""
from __future__ import annotations

import dataclasses

import pytest

from dvrnet.model.resources import ROUTED_TAG
from dvrnet.plan import plan_host
from dvrnet.scenarios.seed import build as seed
from dvrnet.trace import Node, TraceError, Tracer
from dvrnet.trace.entry import ENTRY_PROBES, Entry, external_mode, proxy_arp, tor_route


def test_inbound_trace_picks_its_first_hop_by_the_networks_mode(monkeypatch):
    """The seam for routed mode (trace/entry.py): a FIP of a network tagged routed asks
    `ENTRY_PROBES["routed"]` for its first hop (the ToR's route, no proxy ARP: `tor_route`, tested
    on a routed lab in tests/lab/test_routed.py); a mode nobody registered is named, never traced
    as proxy ARP."""
    cloud = seed()
    fip = next(f for f in cloud.floatingips.values() if f.port_id)
    ext = cloud.networks[fip.floating_network_id]
    assert external_mode(cloud, ext.id) == "l2"
    routed = cloud.with_(networks={**cloud.networks, ext.id: dataclasses.replace(ext, tags=(ROUTED_TAG,))})
    assert external_mode(routed, ext.id) == "routed"
    host = cloud.ports[fip.port_id].host
    node = Node(host, "", plan_host(routed, host), routed)
    assert ENTRY_PROBES["routed"] is tor_route and ENTRY_PROBES["l2"] is proxy_arp
    seen = []
    monkeypatch.setitem(ENTRY_PROBES, "routed", lambda n, ns_name, ns, f, asker, seg: seen.append(ns_name) or Entry(None, [], "tor"))
    t = Tracer([node]).inbound(str(fip.floating_ip_address))
    assert seen and seen[0].startswith("fip-") and t.entry == "tor" and not t.agree
    monkeypatch.delitem(ENTRY_PROBES, "routed")
    with pytest.raises(TraceError, match="routed"):
        Tracer([node]).inbound(str(fip.floating_ip_address))


@pytest.mark.parametrize("kind", ["ovs", "ovs-veth", "veth"])
def test_inbound_entry_checks_fg_ports_open_vswitch_plug(kind):
    """With an OVS port kind the first hop checks fg-'s port on the integration bridge (the
    internal port itself, or the bridge end of its veth) against what OVSDB has: equal -> ok, gone
    or with other external_ids -> wrong, naming the port; a Linux-bridge kind has no such check."""
    from dvrnet.plan import PlanConfig
    from dvrnet.plan.names import AGENT_GW_DEV, FIP_NS, bridge_side_dev
    from dvrnet.trace.entry import ovs_plug
    cloud = seed()
    fip = next(f for f in cloud.floatingips.values() if f.port_id)
    host = cloud.ports[fip.port_id].host
    cfg = PlanConfig(port_kind=kind)
    desired = plan_host(cloud, host, cfg)
    ns = next(v for k, v in desired.namespaces.items() if k.startswith(FIP_NS))
    fg = next(d for d in ns.links if d.startswith(AGENT_GW_DEV))
    check = ovs_plug(Node(host, "", desired, cloud, desired, cfg), ns, fg)
    if kind == "veth":
        assert check is None
        return
    assert check is not None and check.ok and " on br-int, " in check.got
    fg_port = next(p for p in cloud.ports.values()
                   if p.device_owner == "network:floatingip_agent_gateway" and p.host == host)
    name = fg if kind == "ovs" else bridge_side_dev(fg_port.id)
    bridge_ns = next(k for k, b in desired.namespaces.items() if name in b.ovs_ports)
    b = desired.namespaces[bridge_ns]
    gone = dataclasses.replace(b, ovs_ports={k: v for k, v in b.ovs_ports.items() if k != name})
    observed = dataclasses.replace(desired, namespaces={**desired.namespaces, bridge_ns: gone})
    check = ovs_plug(Node(host, "", desired, cloud, observed, cfg), ns, fg)
    assert check is not None and not check.ok and check.got == f"no port {name}"
    other = dataclasses.replace(b.ovs_ports[name], external_ids=(("iface-id", "someone-else"),))
    observed = dataclasses.replace(desired, namespaces={**desired.namespaces, bridge_ns: dataclasses.replace(
        b, ovs_ports={**b.ovs_ports, name: other})})
    check = ovs_plug(Node(host, "", desired, cloud, observed, cfg), ns, fg)
    assert check is not None and not check.ok and "iface-id someone-else" in check.got
