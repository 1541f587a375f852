"""The picture of a node (picture/, pure): the SVG has a group per namespace, a port per device, an
edge per link (veth pair or macvlan), the fip- namespace's rules and per-subnet tables, the objects
that differ from the desired state marked, and a traced path highlighted."""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

from dvrnet.picture import BridgeLink, build, render
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.state import HostState, Route
from dvrnet.scenarios.seed import build as seed
from dvrnet.trace.hops import Hop, KernelAnswer, Trace

NS = "{http://www.w3.org/2000/svg}"
BR = "c1-node"


def _bridge_links(state: HostState) -> list[BridgeLink]:
    br = state.namespaces[BR]
    out = [BridgeLink(lk.name, "veth", lk.master, lk.mac) for lk in br.links.values()]
    out += [BridgeLink(m, "bridge") for m in sorted({lk.master for lk in br.links.values() if lk.master})]
    out += [BridgeLink("vx-tenant", "vxlan", next(lk.master for lk in br.links.values()
                                                   if lk.master and lk.master.startswith("brq")))]
    return out


def _svg(pic) -> ET.Element:
    return ET.fromstring(render(pic))


def _veth_pairs(state: HostState) -> int:
    pairs = set()
    for ns in state.namespaces.values():
        for lk in ns.links.values():
            if lk.peer and lk.peer_netns:
                pairs.add(tuple(sorted(((ns.name, lk.name), (lk.peer_netns, lk.peer)))))
    return len(pairs)


def _hop(node, ns, iif, dev, leg="in"):
    return Hop(node, ns, iif, "192.0.2.10", "203.0.113.2", 0, "", "", "route", dev, None, None,
               KernelAnswer(True), True, leg=leg)


def test_structure_marks_and_path():
    cloud = seed()
    cfg = PlanConfig(netns_prefix="c1-", bridge_netns=BR)
    desired = plan_host(cloud, "compute1", cfg)
    fip_ns = next(n for n in desired.namespaces if n.startswith("c1-fip-"))
    q_ns = next(n for n in desired.namespaces if n.startswith("c1-qrouter-"))
    q = desired.namespaces[q_ns]
    rfp = next(d for d in q.links if d.startswith("rfp-"))
    qr = sorted(d for d in q.links if d.startswith("qr-"))
    f = desired.namespaces[fip_ns]
    fg = next(d for d in f.links if d.startswith("fg-"))
    fpr = q.links[rfp].peer
    # the kernel: one qr- port missing, a stale route, another MAC on fg-
    gone = qr[-1]
    obs_q = dataclasses.replace(q, links={k: v for k, v in q.links.items() if k != gone},
                                routes=q.routes | {Route(254, "192.0.2.0/24", dev=qr[0], scope="link")})
    obs_f = dataclasses.replace(f, links={**f.links, fg: dataclasses.replace(f.links[fg], mac="02:00:00:00:00:01")})
    observed = HostState("compute1", {**desired.namespaces, q_ns: obs_q, fip_ns: obs_f})
    trace = Trace("203.0.113.2", "192.0.2.10", direction="inbound", end="delivered")
    trace.hops = [_hop("compute1", fip_ns, fg, fpr), _hop("compute1", q_ns, rfp, qr[0]),
                  _hop("compute2", "c2-x", "a", "b")]             # another node's hop: not drawn here
    pic = build("compute1", desired, observed, _bridge_links(desired), BR, "c1-", cloud, trace)
    root = _svg(pic)

    groups = {g.get("data-ns"): g for g in root.iter(f"{NS}g") if "ns" in (g.get("class") or "").split()}
    assert set(groups) == set(desired.namespaces), set(groups) ^ set(desired.namespaces)
    assert groups[fip_ns].get("data-kind") == "fip" and groups[BR].get("data-kind") == "bridges"
    bridges = {g.get("data-bridge") for g in groups[BR].iter(f"{NS}g") if g.get("class") == "bridge"}
    assert bridges == {lk.master for lk in desired.namespaces[BR].links.values()}
    ports = {g.get("data-port"): g for g in root.iter(f"{NS}g") if "port" in (g.get("class") or "").split()}
    for ns in desired.namespaces.values():
        for dev in ns.links:
            assert f"{ns.name}/{dev}" in ports
    assert "c1-node/vx-tenant" in ports                       # bridge ports that are not dvrnet's too
    links = [p for p in root.iter(f"{NS}path") if "link" in (p.get("class") or "").split()]
    assert len(links) == _veth_pairs(desired)                  # an edge per link
    ends = {frozenset((p.get("data-a"), p.get("data-b"))) for p in links}
    assert frozenset((f"{fip_ns}/{fpr}", f"{q_ns}/{rfp}")) in ends
    # what differs from the desired state
    assert ports[f"{q_ns}/{gone}"].get("data-status") == "missing"
    assert ports[f"{fip_ns}/{fg}"].get("data-status") == "differs"
    texts = [t.text or "" for t in groups[q_ns].iter(f"{NS}text")]
    assert any(t.strip().startswith("+ 192.0.2.0/24 dev") for t in texts), texts
    assert groups[q_ns].get("data-status") == "differs"
    # the fip- namespace's rules and its tables per external subnet, named
    ftexts = [t.text or "" for t in groups[fip_ns].iter(f"{NS}text")]
    for s in ("red 203.0.113.0/24", "green 198.51.100.0/24"):
        assert any(s in t for t in ftexts), ftexts
    assert any(t.strip().startswith("40000 from all iif fg-") for t in ftexts) and any("FIP /32" in t for t in ftexts)
    # the path: the ports of its hops numbered, the links between them and to the bridges highlighted
    on = {p: g.get("data-hops") for p, g in ports.items() if "on-path" in g.get("class").split()}
    assert on[f"{fip_ns}/{fg}"] == "1" and on[f"{fip_ns}/{fpr}"] == "1"
    assert on[f"{q_ns}/{rfp}"] == "2" and on[f"{q_ns}/{qr[0]}"] == "2"
    assert on[f"{BR}/{desired.namespaces[fip_ns].links[fg].peer}"] is None      # the bridge end of fg-
    hot = [p for p in links if "on-path" in p.get("class").split()]
    assert len(hot) == 3, [(p.get("data-a"), p.get("data-b")) for p in hot]   # fg-|dv-, fpr-|rfp-, qr-|dv-
    assert not any(p.startswith("c2-") for p in ports)


def test_macvlan_ports_hang_off_their_bridge_and_missing_namespaces_show():
    cloud = seed()
    cfg = PlanConfig(netns_prefix="c1-", bridge_netns=BR, port_kind="macvlan")
    desired = plan_host(cloud, "compute1", cfg)
    q_ns = next(n for n in desired.namespaces if n.startswith("c1-qrouter-"))
    observed = HostState("compute1", {k: v for k, v in desired.namespaces.items() if k != q_ns})
    links = [BridgeLink(m, "bridge") for m in ("br-ex", *sorted({lk.peer for ns in desired.namespaces.values()
                                                                 for lk in ns.links.values()
                                                                 if lk.kind == "macvlan"}))]
    root = _svg(build("compute1", desired, observed, links, BR, "c1-", cloud))
    groups = {g.get("data-ns"): g for g in root.iter(f"{NS}g") if "ns" in (g.get("class") or "").split()}
    assert groups[q_ns].get("data-status") == "missing"
    mac = [p for p in root.iter(f"{NS}path") if "macvlan" in (p.get("class") or "").split()]
    n_macvlan = sum(lk.kind == "macvlan" for ns in desired.namespaces.values() for lk in ns.links.values())
    assert n_macvlan and len(mac) == n_macvlan
    assert all(p.get("data-b", "").startswith(f"{BR}/") for p in mac)

