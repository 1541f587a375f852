"""The macvlan port kind in the pure layers (no root): the plan, the diff of a kind change, and the
exact iproute2 line."""
from __future__ import annotations

from dvrnet.plan import PlanConfig, plan_host
from dvrnet.reconcile import diff
from dvrnet.reconcile.ops import LinkAdd, LinkReplaceDel
from dvrnet.scenarios.seed import build

P = "t1-"


def _cfg(kind: str) -> PlanConfig:
    return PlanConfig(netns_prefix=P, bridge_netns="t1-node", port_kind=kind)


def test_macvlan_ports_have_the_bridge_as_lower_device_and_no_bridge_side_end():
    cloud = build()
    st = plan_host(cloud, "compute1", _cfg("macvlan"))
    plugged = [lk for ns in st.namespaces.values() for n, lk in ns.links.items() if n.startswith(("fg-", "qr-"))]
    assert plugged and all(lk.kind == "macvlan" and lk.peer_netns == "t1-node" for lk in plugged)
    assert {lk.peer for lk in plugged if lk.name.startswith("fg-")} == {"br-ex"}
    assert all(lk.peer.startswith("brq") for lk in plugged if lk.name.startswith("qr-"))
    assert "t1-node" in st.namespaces and not st.namespaces["t1-node"].links


def test_kind_change_replaces_each_plugged_port_and_nothing_else():
    cloud = build()
    old = plan_host(cloud, "compute1", _cfg("veth"))
    new = plan_host(cloud, "compute1", _cfg("macvlan"))
    plan = diff(new, old, P)
    replaced = sorted(op.name for op in plan if isinstance(op, LinkReplaceDel))
    adds = [op for op in plan if isinstance(op, LinkAdd)]
    assert replaced == sorted(n for ns in new.namespaces.values() for n in ns.links if n.startswith(("fg-", "qr-")))
    assert all(op.ns == "t1-node" and op.into.startswith(P) for op in adds)
    line = adds[0].line()
    assert line.startswith("link add link ") and line.endswith("type macvlan mode bridge") and " netns " in line
    assert not diff(new, new, P)
