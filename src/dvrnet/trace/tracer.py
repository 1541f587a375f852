"""The walk: a packet's path namespace by namespace, as the model says (the pure `plan.fib.lookup`
over each node's desired state) and as the kernel says (`ip route get` in the same namespace with
the same inputs), with the kernel objects it needs checked at every hop (trace/hops.py).

Outbound (`trace(vm, dst)`): from the VM's router's qrouter- on the VM's node, entering by the
qr- port of the VM's subnet, with fwmark FIP_MARK when the qrouter's `fixed2fip` map holds the
VM's address (what its nftables prerouting chain does; the kernel's element is checked). Between
namespaces it applies what the data plane does:
- leaving a qrouter by rfp-: source NAT to the FIP (`fixed2fip`), the mark is not carried across
  the veth; next: the fip- namespace, entering by fpr- (neighbour of the fpr- address checked);
- leaving a qrouter by qr- via a router's sg- address: the snat- namespace holding that address
  (on the router's SNAT node), entering by that sg- port (source NATed to the qg- address when it
  leaves); on-link by qr-: delivered (the destination's permanent neighbour checked);
- leaving a fip- namespace by fpr-: destination NAT in the qrouter (`fip2fixed`, checked at the
  qrouter's hop), entering by rfp-;
- leaving by fg-/qg- on-link to an address some node's fip- namespace hosts (a FIP): that node's
  fip- namespace, entering by its fg-; likewise by the routed default via the ToR (routed mode:
  the ToR routes the FIP to its node; in the lab its route is checked); via a gateway otherwise:
  the walk ends "leaves by gateway <name>".

Inbound (`inbound(fip, src)`): the first hop is the FIP node's fip- namespace entered by its fg-,
with the checks of how the packet got there (trace/entry.py: proxy ARP on an l2 external
network, the ToR's route and the node's BGP announcement on a routed one); then the walk above to the VM, and the VM's reply back out (a second leg from the VM to
SRC). A node the tracer cannot see (a real node sees only itself) ends the walk at its edge.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..plan import names
from ..plan.fib import Verdict, lookup
from ..plan.numbers import FIP_MARK, MAIN_TABLE_ID, NFT_TABLE, ROUTED_DEFAULT_TABLE
from ..plan.render import route_line, rule_line, table_name
from ..plan.state import Namespace
from . import probe
from .entry import ENTRY_PROBES, Segment, external_mode, fg_address
from .hops import Check, Hop, KernelAnswer, Trace
from .nodes import Node

MAX_HOPS = 10


class TraceError(ValueError):
    """Bad input to a trace (an unknown VM or FIP): one line for the operator."""


def _agree(v: Verdict, k: KernelAnswer) -> bool:
    if v.action != "route" or v.route is None:
        return not k.ok
    r = v.route
    return (k.ok and k.dev == r.dev and (k.gateway or None) == (r.via or None)
            and k.table == table_name(r.table))


def _map(ns: Namespace | None, name: str) -> dict[str, str]:
    for t in (ns.nft.values() if ns is not None else ()):
        for m in t.maps:
            if m.name == name:
                return {a: b for a, b in m.elements if b is not None}
    return {}


def _snat_to(ns: Namespace, src: str) -> str | None:
    for t in ns.nft.values():
        for c in t.chains:
            for rule in c.rules:
                m = re.search(r"ip saddr \{ ([^}]*) \} snat to (\S+)", rule)
                if m and any(ipaddress.ip_address(src) in ipaddress.ip_network(x.strip())
                             for x in m.group(1).split(",")):
                    return m.group(2)
    return None


def _dev_with(ns: Namespace, prefix: str, ip: str, exact: bool = False) -> str | None:
    a = ipaddress.ip_address(ip)
    for addr in sorted(ns.addresses):
        if not addr.dev.startswith(prefix):
            continue
        iface = ipaddress.ip_interface(addr.cidr)
        if (iface.ip == a) if exact else (a in iface.network):
            return addr.dev
    return None


@dataclass
class _Leg:
    """Where a walk ended: how, and (delivered) in which qrouter on which device."""
    how: str                     # "delivered" | "gateway" | "onlink" | "dropped" | "edge" | "broken" | "loop"
    host: str = ""
    ns: str = ""
    dev: str = ""
    dst: str = ""
    src: str = ""


class Tracer:
    """Walks paths over the desired state of NODES, checking each hop against this machine's kernel.

    lab: a LabInfo (VM names, gateway names, the ToR), or None on a real node; segment: what can
    be asked on the external segment (the lab's probes, trace/lab.py), or None."""

    def __init__(self, nodes: Sequence[Node], lab=None, segment: Segment | None = None,
                 served_at: Callable[[str], str | None] | None = None):
        """SERVED_AT: the host serving a FIP address that no node's view holds (a node's view holds
        only its own FIPs: model/placement.py), asked of the server (`nodes.server_fip_host`);
        None: not asked."""
        self.nodes = {n.host: n for n in nodes}
        self.lab = lab
        self.segment = segment
        self.served_at = served_at
        self.where: dict[str, tuple[str, Namespace]] = {
            ns_name: (n.host, ns) for n in nodes for ns_name, ns in n.desired.namespaces.items()}

    # --- the model around the walk ----------------------------------------------------------------
    def _fip_host(self, addr: str) -> tuple[str, str, Namespace] | None:
        """The visible fip- namespace whose main table holds ADDR/32 (the node hosting that FIP)."""
        for ns_name, (host, ns) in sorted(self.where.items()):
            if names.FIP_NS not in ns_name:
                continue
            if any(r.table == MAIN_TABLE_ID and r.dst == f"{addr}/32" for r in ns.routes):
                return host, ns_name, ns
        return None

    def _fip(self, addr: str):
        for n in self.nodes.values():
            for f in n.cloud.floatingips.values():
                if str(f.floating_ip_address) == addr:
                    return n, f
        return None, None

    def _port_with(self, ip: str):
        """(node whose view has it, port) of the VM port holding fixed IP IP."""
        for n in self.nodes.values():
            for p in n.cloud.ports.values():
                if p.device_owner.startswith("network:"):
                    continue
                if any(str(f.ip_address) == ip for f in p.fixed_ips):
                    return n, p
        return None, None

    def gateway_name(self, via: str) -> str | None:
        if self.lab is not None:
            g = next((g.name for g in self.lab.gateways if g.address == via), None)
            if g:
                return g
            if self.lab.tor is not None and self.lab.tor.get("address") == via:
                return "tor"
        for n in self.nodes.values():
            for s in n.cloud.subnets.values():
                if s.gateway_ip is not None and str(s.gateway_ip) == via:
                    return s.name or str(s.cidr)
        return None

    def _snat_ns_with(self, ip: str) -> tuple[str, str, Namespace] | None:
        for ns_name, (host, ns) in sorted(self.where.items()):
            if names.SNAT_NS in ns_name and _dev_with(ns, names.SNAT_IF_DEV, ip, exact=True):
                return host, ns_name, ns
        return None

    def _qrouter_for(self, host: str, ip: str) -> tuple[str, Namespace, str] | None:
        """The qrouter- namespace on HOST with a qr- port on IP's subnet, and that port."""
        node = self.nodes.get(host)
        for ns_name, ns in sorted((node.desired.namespaces if node else {}).items()):
            if names.QROUTER_NS in ns_name:
                dev = _dev_with(ns, names.ROUTER_IF_DEV, ip)
                if dev:
                    return ns_name, ns, dev
        return None

    # --- checks -------------------------------------------------------------------------------------
    @staticmethod
    def _neigh_check(ns_name: str, ns: Namespace, dev: str, ip: str) -> Check:
        want = next((n.mac.lower() for n in ns.neighbours if n.dev == dev and n.ip == ip), None)
        got = probe.neighbour(ns_name, dev, ip)
        if want is not None:
            ok = (got.mac or "").lower() == want and "PERMANENT" in got.state
            return Check(f"neighbour {ip} on {dev}", f"{want} permanent", got.text(), ok)
        return Check(f"neighbour {ip} on {dev}", "resolved by ARP", got.text(), "FAILED" not in got.state)

    @staticmethod
    def _map_check(ns_name: str, ns: Namespace, name: str, key: str) -> Check:
        want = _map(ns, name).get(key)
        got = probe.map_value(ns_name, "ip", NFT_TABLE, name, key)
        return Check(f"{name}[{key}]", want or "no element", got or "no element", got == want)

    def _tor_checks(self, fip: str, host: str, ns: Namespace, fg: str | None) -> list[Check]:
        """Where the ToR can be asked (the lab): its route for FIP goes to HOST's fg- address."""
        if self.segment is None or self.segment.tor_route is None or fg is None:
            return []
        seen = self.segment.tor_route(fip)
        if seen is None:
            return []
        local = fg_address(ns, fg)
        return [Check(f"{seen.router}'s route for {fip}", f"via {local} ({host}'s {fg})", seen.text,
                      local is not None and seen.via == local)]

    # --- walks --------------------------------------------------------------------------------------
    def resolve_vm(self, vm: str) -> tuple[str, str]:
        """(fixed IP, host) of VM: a lab VM name, a fixed IP or a port id (prefix)."""
        if self.lab is not None and any(v.name == vm for v in self.lab.vms):
            v = self.lab.vm(vm)
            return v.fixed_ip, v.node
        try:
            ipaddress.IPv4Address(vm)
            _, port = self._port_with(vm)
            if port is None:
                raise TraceError(f"no VM port with fixed IP {vm} in the model")
            return vm, port.host
        except ipaddress.AddressValueError:
            pass
        for n in self.nodes.values():
            for p in n.cloud.ports.values():
                if p.id.startswith(vm) and p.fixed_ips and not p.device_owner.startswith("network:"):
                    return str(p.fixed_ips[0].ip_address), p.host
        known = f" (VMs: {', '.join(v.name for v in self.lab.vms)})" if self.lab is not None else ""
        raise TraceError(f"no VM {vm!r}: give a lab VM name, a fixed IP or a port id{known}")

    def trace(self, vm: str, dst: str) -> Trace:
        ip, host = self.resolve_vm(vm)
        t = Trace(vm, dst)
        self._from_vm(t, ip, host, dst, "out")
        return t

    def _from_vm(self, t: Trace, ip: str, host: str, dst: str, leg: str) -> _Leg:
        if host not in self.nodes:
            t.end = f"the VM {ip} is on {host or 'no host'}: not visible from here (run `dvrnet trace` there)"
            return _Leg("edge")
        q = self._qrouter_for(host, ip)
        if q is None:
            t.end = f"{ip} has no router on {host}"
            t.broken = t.broken or f"no qrouter- namespace planned on {host} for {ip}'s subnet"
            return _Leg("broken")
        ns_name, ns, iif = q
        mark = FIP_MARK if ip in _map(ns, "fixed2fip") else 0
        pre = [self._map_check(ns_name, ns, "fixed2fip", ip)] if mark else []
        return self._walk(t, host, ns_name, iif, ip, dst, mark, leg, pre)

    def inbound(self, fip: str, src: str | None = None) -> Trace:
        """The packet for FIP from SRC (default: the gateway of the FIP's subnet) to its VM, and back."""
        try:
            ipaddress.IPv4Address(fip)
        except ipaddress.AddressValueError:
            raise TraceError(f"{fip!r} is not an IPv4 address") from None
        node, f = self._fip(fip)
        if f is None:
            where = self.served_at(fip) if self.served_at is not None else None
            if where and where not in self.nodes:
                t = Trace(fip, src or "its subnet's gateway", direction="inbound")
                t.end = f"{fip} is hosted on {where}: not visible from here (run `dvrnet trace --inbound` there)"
                return t
            raise TraceError(f"no floating IP {fip} in the model" + (" of this node" if self.lab is None else ""))
        sub = node.cloud.subnets.get(f.subnet_id)
        asker = str(sub.gateway_ip) if sub is not None and sub.gateway_ip is not None else None
        src = src or asker
        if src is None:
            raise TraceError(f"{fip}'s subnet has no gateway: give the sender with --from")
        t = Trace(fip, src, direction="inbound")
        if not f.port_id:
            t.end = f"{fip} is not associated with a port: nothing answers for it"
            t.broken = "unassociated FIP"
            return t
        hosted = self._fip_host(fip)
        if hosted is None:
            port = node.cloud.ports.get(f.port_id)
            where = port.host if port is not None else ""
            if where and where not in self.nodes:
                t.end = f"{fip} is hosted on {where}: not visible from here (run `dvrnet trace --inbound` there)"
                return t
            t.end = f"no node's fip- namespace is planned to hold {fip}/32"
            t.broken = f"nothing hosts {fip}"
            return t
        host, ns_name, ns = hosted
        mode = external_mode(self.nodes[host].cloud, f.floating_network_id)
        entry_probe = ENTRY_PROBES.get(mode)
        if entry_probe is None:
            raise TraceError(f"external network {f.floating_network_id}: no first hop known for mode {mode!r}")
        entry = entry_probe(self.nodes[host], ns_name, ns, fip, asker or src, self.segment)
        t.entry = entry.summary
        if entry.iif is None:
            t.end, t.broken = entry.summary, entry.summary
            return t
        first = self._walk(t, host, ns_name, entry.iif, src, fip, 0, "in", entry.checks)
        if first.how != "delivered":
            return t
        inbound_end = t.end
        q_ns = self.where[first.ns][1]
        mark = FIP_MARK if first.dst in _map(q_ns, "fixed2fip") else 0
        pre = [self._map_check(first.ns, q_ns, "fixed2fip", first.dst)] if mark else []
        self._walk(t, first.host, first.ns, first.dev, first.dst, src, mark, "out", pre)
        t.end = f"{inbound_end}; the reply {t.end}"
        return t

    def _walk(self, t: Trace, host: str, ns_name: str, iif: str | None, src: str, dst: str, mark: int,
              leg: str, pre: list[Check]) -> _Leg:
        if ns_name not in self.where:
            t.end = t.broken = f"{ns_name} is not planned"
            return _Leg("broken")
        ns = self.where[ns_name][1]
        for _ in range(MAX_HOPS):
            if iif is None:
                t.end = t.broken = f"no entry device in {ns_name}"
                return _Leg("broken")
            v = lookup(ns, dst, src, iif, mark)
            k = probe.route_get(ns_name, dst, src, iif, mark)
            r = v.route
            hop = Hop(host, ns_name, iif, src, dst, mark, rule_line(v.rule), route_line(r) if r else "", v.action,
                      r.dev if r else None, r.via if r else None, table_name(r.table) if r else None, k,
                      _agree(v, k), leg=leg, checks=list(pre))
            pre = []
            t.hops.append(hop)
            if v.action != "route" or r is None or r.dev is None:
                t.end = f"dropped in {ns_name}: {v.action}"
                return _Leg("dropped", host, ns_name)
            dev = r.dev
            if dev.startswith(names.RTR_TO_FIP_DEV):                  # qrouter -> fip-
                link = ns.links[dev]
                if r.via:
                    hop.checks.append(self._neigh_check(ns_name, ns, dev, r.via))
                new_src = _map(ns, "fixed2fip").get(src, src)
                if new_src != src:
                    if not any(c.what == f"fixed2fip[{src}]" for c in hop.checks):
                        hop.checks.append(self._map_check(ns_name, ns, "fixed2fip", src))
                    hop.note = f"source NAT {src} -> {new_src} (FIP) leaving by {dev}"
                src, mark, iif, ns_name = new_src, 0, link.peer, link.peer_netns or ""
            elif dev.startswith(names.FIP_TO_RTR_DEV):                # fip- -> qrouter (a local FIP)
                link = ns.links[dev]
                if r.via:
                    hop.checks.append(self._neigh_check(ns_name, ns, dev, r.via))
                q_name = link.peer_netns or ""
                qns = self.where.get(q_name, (host, None))[1]
                new_dst = _map(qns, "fip2fixed").get(dst, dst)
                if new_dst != dst and qns is not None:
                    pre = [self._map_check(q_name, qns, "fip2fixed", dst)]
                    hop.note = f"destination NAT {dst} -> {new_dst} in the qrouter"
                dst, mark, iif, ns_name = new_dst, 0, link.peer, q_name
            elif dev.startswith(names.ROUTER_IF_DEV):                 # qrouter -> VM or snat-
                hop.checks.append(self._neigh_check(ns_name, ns, dev, r.via or dst))
                if not r.via:
                    t.end = f"delivered to {dst} on {dev} ({host})"
                    return _Leg("delivered", host, ns_name, dev, dst, src)
                nxt = self._snat_ns_with(r.via)
                if nxt is None:
                    t.end = f"to {r.via} on {dev}: its snat- namespace is not visible from here"
                    return _Leg("edge", host, ns_name, dev)
                host, ns_name, sns = nxt
                hop.note = f"to the snat- namespace on {host} ({r.via})"
                iif, mark = _dev_with(sns, names.SNAT_IF_DEV, r.via, exact=True), 0
            elif dev.startswith((names.AGENT_GW_DEV, names.ROUTER_GW_DEV)):   # onto the external segment
                if dev.startswith(names.ROUTER_GW_DEV):
                    nat = _snat_to(ns, src)
                    if nat:
                        hop.note = f"source NAT {src} -> {nat} leaving by {dev}"
                        src = nat
                hop.checks.append(self._neigh_check(ns_name, ns, dev, r.via or dst))
                nxt = self._fip_host(dst) if r.via and r.table == ROUTED_DEFAULT_TABLE else None
                if nxt is not None:                                  # routed: the ToR routes a FIP to its node
                    host, ns_name, nns = nxt
                    fg_in = next((d for d in sorted(nns.links) if d.startswith(names.AGENT_GW_DEV)), None)
                    hop.note = (f"{hop.note + '; ' if hop.note else ''}via the ToR ({r.via}) to {host}'s "
                                f"fip- namespace")
                    hop.checks += self._tor_checks(dst, host, nns, fg_in)
                    iif, mark = fg_in, 0
                    if ns_name not in self.where:
                        t.end = t.broken = f"next namespace {ns_name} is not planned"
                        return _Leg("broken")
                    ns = self.where[ns_name][1]
                    continue
                if r.via:
                    t.gateway = self.gateway_name(r.via)
                    t.end = (f"leaves by gateway {t.gateway or '?'} ({r.via}) from {src}"
                             f"{'' if t.gateway else ' — not a known gateway'}")
                    return _Leg("gateway", host, ns_name, dev, dst, src)
                nxt = self._fip_host(dst)
                if nxt is None:
                    gw = self.gateway_name(dst)
                    if gw:
                        t.end = f"reaches gateway {gw} ({dst}) on-link from {src}"
                    else:
                        _, f = self._fip(dst)
                        where = ""
                        if f is not None and f.port_id:
                            p = next((n.cloud.ports.get(f.port_id) for n in self.nodes.values()
                                      if f.port_id in n.cloud.ports), None)
                            where = f" (hosted on {p.host}: not visible from here)" if p is not None else ""
                        elif f is None and self.served_at is not None:
                            h = self.served_at(dst)
                            where = f" (hosted on {h}: not visible from here)" if h and h not in self.nodes else ""
                        t.end = f"on the external segment to {dst}{where or ' (no node hosts it)'}"
                    return _Leg("onlink", host, ns_name, dev, dst, src)
                host, ns_name, nns = nxt
                hop.note = f"straight over the segment to {host}'s fip- namespace"
                iif, mark = next((d for d in sorted(nns.links) if d.startswith(names.AGENT_GW_DEV)), None), 0
            else:
                t.end = f"leaves {ns_name} by {dev}: not followed"
                return _Leg("edge", host, ns_name, dev)
            if ns_name not in self.where:
                t.end = t.broken = f"next namespace {ns_name} is not planned"
                return _Leg("broken")
            ns = self.where[ns_name][1]
        t.end = f"more than {MAX_HOPS} hops: a loop?"
        return _Leg("loop")
