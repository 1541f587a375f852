"""A picture of one node as plain values (pure): its namespaces with their ports, the links
between ports (veth peers, macvlans on their bridge), the bridges of the bridge namespace with
every port on them (dvrnet's and the rest: VXLAN, taps, uplinks), each namespace's rules and tables
(the fip- namespace's per external subnet), what differs from the desired state, and a traced path.

Inputs: the desired and the observed `HostState` (the agent's planner and reader), the bridge
namespace's links as the kernel lists them (`BridgeLink`, every one, not only dvrnet's), the host's
view of the model (to name external subnets) and optionally a `Trace` whose hops on this node are
marked. Status of an object: "ok", "missing" (desired, not in the kernel), "extra" (in the kernel
among dvrnet's objects, not desired) or "differs" (both, with other attributes).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_interface

from ..plan import names
from ..plan.numbers import FIP_ONLINK_TABLE, MAIN_TABLE_ID, QR_FIP_TABLE
from ..plan.render import route_line, rule_line
from ..plan.state import HostState, Link, Namespace, Route

_LINK_FIELDS = ("kind", "peer_netns", "peer", "mac", "mtu", "master")


@dataclass(frozen=True)
class BridgeLink:
    """A device of the bridge namespace as `ip -d -j link` lists it."""
    name: str
    kind: str                    # "bridge", "veth", "vxlan", ... ("" for a device without a kind)
    master: str | None = None
    mac: str | None = None


@dataclass
class Port:
    id: str                      # "<namespace>/<device>"
    ns: str
    name: str
    kind: str
    side: str                    # "up" (towards the external segment) | "down" (tenant networks) | "mid"
    lines: list[str] = field(default_factory=list)
    status: str = "ok"
    note: str = ""
    path: list[int] = field(default_factory=list)     # hop numbers of a traced path through this port
    on_path: bool = False


@dataclass
class Line:
    text: str
    status: str = "ok"


@dataclass
class Box:
    ns: str
    kind: str                    # "fip" | "qrouter" | "snat" | "other"
    ports: list[Port] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    status: str = "ok"


@dataclass
class Bridge:
    name: str
    side: str                    # "up": a bridge of an external network, "down": a tenant network's
    ports: list[Port] = field(default_factory=list)


@dataclass
class Edge:
    a: str                       # port ids
    b: str
    kind: str                    # "veth" | "macvlan"
    status: str = "ok"
    path: bool = False


@dataclass
class Picture:
    host: str
    bridge_ns: str
    boxes: list[Box] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    title: str = ""
    path_text: str = ""

    def port(self, pid: str) -> Port | None:
        for b in self.boxes:
            for p in b.ports:
                if p.id == pid:
                    return p
        for br in self.bridges:
            for p in br.ports:
                if p.id == pid:
                    return p
        return None


def _kind(ns_name: str, prefix: str) -> str:
    rest = ns_name.removeprefix(prefix)
    for k in ("fip", "qrouter", "snat"):
        if rest.startswith(k + "-"):
            return k
    return "other"


def _side(dev: str) -> str:
    if dev.startswith((names.AGENT_GW_DEV, names.ROUTER_GW_DEV)):
        return "up"
    if dev.startswith((names.ROUTER_IF_DEV, names.SNAT_IF_DEV)):
        return "down"
    return "mid"


def _link_status(want: Link | None, have: Link | None) -> tuple[str, str]:
    if want is None:
        return "extra", "not desired"
    if have is None:
        return "missing", "not in the kernel"
    diffs = [f for f in _LINK_FIELDS if getattr(want, f) is not None and getattr(want, f) != getattr(have, f)]
    if diffs:
        return "differs", ", ".join(f"{f} {getattr(have, f)} (want {getattr(want, f)})" for f in diffs)
    return "ok", ""


def _lines(want: Iterable, have: Iterable, text) -> list[Line]:
    w, h = {text(x) for x in want}, {text(x) for x in have}
    return ([Line(t, "ok" if t in h else "missing") for t in sorted(w)]
            + [Line(t, "extra") for t in sorted(h - w)])


def _subnet_names(cloud) -> dict[int, str]:
    """table number -> "name cidr" of every subnet with a gateway (plan/numbers.subnet_table)."""
    out = {}
    for s in (cloud.subnets.values() if cloud is not None else ()):
        out[int(s.cidr.network_address)] = f"{s.name or s.id[:8]} {s.cidr}"
    return out


def _box_lines(kind: str, want: Namespace, have: Namespace, subnets: dict[int, str]) -> list[Line]:
    out: list[Line] = []
    rules = _lines(want.rules, have.rules, lambda r: rule_line(r).removeprefix("rule "))
    out.append(Line("rules"))
    out += [Line("  " + x.text, x.status) for x in sorted(rules, key=lambda x: int(x.text.split()[0]))]

    def routes(ns: Namespace, table: int) -> list[Route]:
        return [r for r in ns.routes if r.table == table]
    tables = sorted({r.table for r in want.routes} | {r.table for r in have.routes})
    for t in tables:
        w, h = routes(want, t), routes(have, t)
        if kind == "fip" and t == MAIN_TABLE_ID:
            missing = len({r.dst for r in w} - {r.dst for r in h})
            extra = len({r.dst for r in h} - {r.dst for r in w})
            st = "ok" if not (missing or extra) else "missing" if missing else "extra"
            shown = ", ".join(sorted(r.dst.removesuffix("/32") for r in w)[:4])
            more = f" …+{len(w) - 4}" if len(w) > 4 else ""
            out.append(Line(f"main: {len(w)} FIP /32 ({shown}{more})"
                            + (f" — {missing} missing" if missing else "") + (f", {extra} extra" if extra else ""), st))
            continue
        label = ("main" if t == MAIN_TABLE_ID else f"table {t}"
                 + (" on-link" if kind == "fip" and t == FIP_ONLINK_TABLE else "")
                 + (" (FIPs → fip-)" if kind == "qrouter" and t == QR_FIP_TABLE else "")
                 + (f" ({subnets[t]})" if t in subnets else ""))
        out.append(Line(label))
        out += [Line("  " + x.text, x.status) for x in _lines(w, h, lambda r: _route_text(r))]
    for key, t in sorted(want.nft.items()):
        got = have.nft.get(key)
        for m in t.maps:
            hm = next((x for x in got.maps if x.name == m.name), None) if got is not None else None
            st = "missing" if hm is None else ("ok" if hm.elements == m.elements else "differs")
            n = len(m.elements)
            out.append(Line(f"nft map {m.name}: {n} element{'s' if n != 1 else ''}"
                            + ("" if st == "ok" or hm is None else f" (kernel {len(hm.elements)})"), st))
    return out


def _route_text(r: Route) -> str:
    text = route_line(r).removeprefix("route ")
    return text.split(" table ")[0] if " table " in text else text


def build(host: str, desired: HostState, observed: HostState, bridge_links: Sequence[BridgeLink],
          bridge_ns: str, prefix: str = "", cloud=None, trace=None) -> Picture:
    pic = Picture(host, bridge_ns, title=f"dvrnet node {host}")
    subnets = _subnet_names(cloud)
    empty = Namespace("")
    for name in sorted(set(desired.namespaces) | set(observed.namespaces)):
        if name == bridge_ns:
            continue
        want, have = desired.namespaces.get(name), observed.namespaces.get(name)
        kind = _kind(name, prefix)
        box = Box(name, kind, status="missing" if have is None else ("extra" if want is None else "ok"))
        w, h = want or empty, have or empty
        for dev in sorted((set(w.links) | set(h.links)) - {"lo"}):
            lw, lh = w.links.get(dev), h.links.get(dev)
            st, note = _link_status(lw, lh) if want is not None else ("extra", "not desired")
            lk = lw or lh
            assert lk is not None
            addrs = sorted({a.cidr for a in w.addresses if a.dev == dev} | {a.cidr for a in h.addresses if a.dev == dev},
                           key=lambda c: ip_interface(c))
            lines = [f"{a}" + ("" if any(x.cidr == a for x in h.addresses) else " (missing)") for a in addrs]
            if lk.mac:
                lines.append(lk.mac)
            box.ports.append(Port(f"{name}/{dev}", name, dev, lk.kind, _side(dev), lines, st, note))
        box.lines = _box_lines(kind, w, h, subnets)
        if box.ports and any(p.status != "ok" for p in box.ports) and box.status == "ok":
            box.status = "differs"
        pic.boxes.append(box)
    # the bridge namespace: every bridge with its ports, as the kernel has them
    want_br = desired.namespaces.get(bridge_ns, empty)
    have_br = observed.namespaces.get(bridge_ns, empty)
    by_master: dict[str, list[BridgeLink]] = {}
    for lk in bridge_links:
        if lk.master:
            by_master.setdefault(lk.master, []).append(lk)
    wanted_masters = {lk.master for lk in want_br.links.values() if lk.master}
    for b in sorted((lk for lk in bridge_links if lk.kind == "bridge"), key=lambda x: x.name):
        side = "down" if b.name.startswith("brq") else "up"
        br = Bridge(b.name, side)
        for p in sorted(by_master.get(b.name, []), key=lambda x: x.name):
            st, note = "ok", ""
            if p.name.startswith(names.BRIDGE_SIDE_DEV):
                st, note = _link_status(want_br.links.get(p.name), have_br.links.get(p.name))
            br.ports.append(Port(f"{bridge_ns}/{p.name}", bridge_ns, p.name, p.kind, side, [p.mac or ""], st, note))
        present = {p.name for p in br.ports}
        for lk in sorted(want_br.links.values(), key=lambda x: x.name):      # desired dv- ends not there
            if lk.master == b.name and lk.name not in present:
                br.ports.append(Port(f"{bridge_ns}/{lk.name}", bridge_ns, lk.name, lk.kind, side, [lk.mac or ""],
                                     "missing", "not in the kernel"))
        pic.bridges.append(br)
    for m in sorted(wanted_masters - {b.name for b in pic.bridges}):
        br = Bridge(m, "down" if m.startswith("brq") else "up")
        br.ports = [Port(f"{bridge_ns}/{lk.name}", bridge_ns, lk.name, lk.kind, br.side, [lk.mac or ""], "missing",
                         "bridge not in the kernel") for lk in want_br.links.values() if lk.master == m]
        pic.bridges.append(br)
    # links between ports
    seen = set()
    for box in pic.boxes:
        want = desired.namespaces.get(box.ns, empty)
        have = observed.namespaces.get(box.ns, empty)
        for p in box.ports:
            lk = want.links.get(p.name) or have.links.get(p.name)
            if lk is None or not lk.peer_netns or not lk.peer:
                continue
            if lk.kind == "macvlan":
                other = _bridge_port_id(pic, lk.peer)
                kind = "macvlan"
            else:
                other, kind = f"{lk.peer_netns}/{lk.peer}", "veth"
            if other is None:
                continue
            key = tuple(sorted((p.id, other)))
            if key in seen:
                continue
            seen.add(key)
            o = pic.port(other)
            st = p.status if p.status != "ok" or kind == "macvlan" else (o.status if o is not None else "missing")
            pic.edges.append(Edge(p.id, other, kind, st))
    if trace is not None:
        mark_path(pic, trace)
    return pic


def _bridge_port_id(pic: Picture, bridge: str) -> str | None:
    """A macvlan hangs off the bridge device itself: its bar's anchor port id."""
    for br in pic.bridges:
        if br.name == bridge:
            return f"{pic.bridge_ns}/{bridge}"
    return None


def mark_path(pic: Picture, trace) -> None:
    """Number the ports a trace's hops on this node enter and leave by, and mark the links they use."""
    on: set[str] = set()
    for i, h in enumerate(trace.hops, 1):
        if h.node != pic.host:
            continue
        for dev in (h.iif, h.dev):
            if not dev:
                continue
            p = pic.port(f"{h.ns}/{dev}")
            if p is not None and i not in p.path:
                p.path.append(i)
                p.on_path = True
                on.add(p.id)
    for e in pic.edges:
        if e.a in on or e.b in on:
            e.path = True
            for pid in (e.a, e.b):
                p = pic.port(pid)
                if p is not None:
                    p.on_path = True
    pic.path_text = (f"{'inbound ' if trace.direction == 'inbound' else ''}trace {trace.vm} → {trace.dst}: "
                     f"{trace.end}" + ("" if trace.agree else f" — first wrong hop {trace.first_wrong}"))


__all__ = ["Box", "Bridge", "BridgeLink", "Edge", "Line", "Picture", "Port", "build", "mark_path"]
