"""`dvrnet trace VM DST`: the path of a VM's packet to DST, namespace by namespace, as the model
says (the pure `plan.fib.lookup` over each node's desired state) and as the kernel says (`ip -n NS
route get DST from SRC iif DEV mark M` in the same namespace with the same inputs), hop by hop.

The walk starts in the VM's router's qrouter- namespace on the VM's node, entering by the qr- port
of the VM's subnet, with fwmark FIP_MARK when the qrouter's `fixed2fip` map holds the VM's address
(what its nftables prerouting chain does). Between namespaces it applies what the data plane does:
- leaving a qrouter by rfp-: source NAT to the FIP (`fixed2fip`), the mark is not carried across
  the veth; next hop: the fip- namespace, entering by fpr-;
- leaving a qrouter by qr- via a router's sg- address: next hop the snat- namespace on the router's
  SNAT node, entering by that sg- port (the source is NATed to the qg- address when it leaves);
- leaving a fip- namespace by fpr-: destination NAT in the qrouter (`fip2fixed`);
- leaving by fg-/qg- on-link to an address some node's fip- namespace hosts (a FIP): that node's
  fip- namespace, entering by its fg-; via a gateway: the walk ends "leaves by gateway <name>".
Each hop reports the rule and route of both answers and whether they agree (same outgoing device,
next hop and table; or both refuse the packet).
"""
from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from dataclasses import asdict, dataclass, field

from .lab.info import LabInfo
from .plan import names
from .plan.fib import Verdict, lookup
from .plan.numbers import FIP_MARK, MAIN_TABLE_ID
from .plan.render import route_line, rule_line, table_name
from .plan.state import HostState, Namespace

MAX_HOPS = 10


@dataclass
class KernelAnswer:
    ok: bool
    dev: str | None = None
    gateway: str | None = None
    table: str | None = None
    text: str = ""


@dataclass
class Hop:
    node: str
    ns: str
    iif: str
    src: str
    dst: str
    mark: int
    rule: str
    route: str
    action: str
    dev: str | None
    via: str | None
    table: str | None
    kernel: KernelAnswer
    agree: bool
    note: str = ""

    def line(self) -> str:
        ours = self.route if self.action == "route" else self.action
        k = self.kernel.text
        return (f"{self.node} {self.ns}\n"
                f"    in {self.iif} from {self.src} to {self.dst} mark {self.mark:#x}\n"
                f"    model:  {self.rule} -> {ours}\n"
                f"    kernel: {k}\n"
                f"    {'agree' if self.agree else 'DISAGREE'}" + (f"; {self.note}" if self.note else ""))


@dataclass
class Trace:
    vm: str
    dst: str
    hops: list[Hop] = field(default_factory=list)
    end: str = ""
    gateway: str | None = None           # the lab gateway's name the packet leaves by, if any

    @property
    def agree(self) -> bool:
        return bool(self.hops) and all(h.agree for h in self.hops)

    def text(self) -> str:
        out = [f"trace {self.vm} -> {self.dst}"]
        out += [f"{i}. {h.line()}" for i, h in enumerate(self.hops, 1)]
        out.append(f"=> {self.end}")
        out.append("model and kernel agree on every hop" if self.agree else
                   f"model and kernel DISAGREE on hop(s) {', '.join(str(i) for i, h in enumerate(self.hops, 1) if not h.agree)}")
        return "\n".join(out)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "agree": self.agree}, indent=2)


# ------------------------------------------------------------------------------------------------

def kernel_route_get(ns: str, dst: str, src: str, iif: str, mark: int) -> KernelAnswer:
    argv = ["ip", "-j", "-n", ns, "route", "get", dst, "from", src, "iif", iif]
    if mark:
        argv += ["mark", hex(mark)]
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    err = (p.stderr.strip() or "no answer").splitlines()[-1]
    if p.returncode != 0 or not p.stdout.strip():
        return KernelAnswer(False, text=f"refused ({err})")
    try:
        r = json.loads(p.stdout)[0]
    except (ValueError, IndexError):
        return KernelAnswer(False, text=f"unreadable answer: {p.stdout.strip()[:100]}")
    if r.get("type") in ("blackhole", "unreachable", "prohibit"):
        return KernelAnswer(False, text=r["type"])
    table = str(r.get("table", "main"))
    text = " ".join(x for x in (dst, f"via {r['gateway']}" if r.get("gateway") else "", f"dev {r.get('dev')}",
                                f"table {table}") if x)
    return KernelAnswer(True, r.get("dev"), r.get("gateway"), table, text)


def _agree(v: Verdict, k: KernelAnswer) -> bool:
    if v.action != "route" or v.route is None:
        return not k.ok
    r = v.route
    return (k.ok and k.dev == r.dev and (k.gateway or None) == (r.via or None)
            and k.table == table_name(r.table))


def _map(ns: Namespace, name: str) -> dict[str, str]:
    for t in ns.nft.values():
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


class Tracer:
    """Plans every node of a lab once (desired state, link-local slots read back from the kernel)."""

    def __init__(self, info: LabInfo, states: dict[str, HostState] | None = None):
        self.info = info
        self.states = states if states is not None else self._plan_all()
        self.where: dict[str, tuple[str, Namespace]] = {
            ns_name: (host, ns) for host, st in self.states.items() for ns_name, ns in st.namespaces.items()}

    def _plan_all(self) -> dict[str, HostState]:
        from .agent.feed import Feed
        from .agent.loop import desired_state
        from .kernel import Reconciler
        from .plan import PlanConfig
        out = {}
        for n in self.info.nodes:
            feed = Feed(self.info.server_url or "", n.name, n.mode, max_backoff=0)
            try:
                view = feed.fetch_once()
            finally:
                feed.close()
            cfg = PlanConfig(netns_prefix=n.prefix, bridge_netns=n.bridge_netns)
            out[n.name] = desired_state(view.cloud, n.name, cfg, Reconciler(prefix=n.prefix))[0]
        return out

    def _fip_host(self, addr: str) -> tuple[str, str, Namespace] | None:
        """The fip- namespace whose main table holds ADDR/32 (the node hosting that FIP)."""
        for ns_name, (host, ns) in sorted(self.where.items()):
            if names.FIP_NS not in ns_name:
                continue
            if any(r.table == MAIN_TABLE_ID and r.dst == f"{addr}/32" for r in ns.routes):
                return host, ns_name, ns
        return None

    def _gateway_name(self, via: str) -> str | None:
        return next((g.name for g in self.info.gateways if g.address == via), None)

    def trace(self, vm_name: str, dst: str) -> Trace:
        info = self.info
        vm = info.vm(vm_name)
        t = Trace(vm_name, dst)
        router = info.router(vm.router)
        if router is None:
            t.end = f"{vm_name} has no router"
            return t
        host = vm.node
        ns_name = names.qrouter_ns(info.node(host).prefix, router.id)
        if ns_name not in self.where:
            t.end = f"no {ns_name} planned on {host}"
            return t
        ns = self.where[ns_name][1]
        iif = _dev_with(ns, names.ROUTER_IF_DEV, vm.fixed_ip)
        src = vm.fixed_ip
        mark = FIP_MARK if src in _map(ns, "fixed2fip") else 0
        for _ in range(MAX_HOPS):
            if iif is None:
                t.end = f"no entry device in {ns_name}"
                return t
            v = lookup(ns, dst, src, iif, mark)
            k = kernel_route_get(ns_name, dst, src, iif, mark)
            r = v.route
            hop = Hop(host, ns_name, iif, src, dst, mark, rule_line(v.rule), route_line(r) if r else "", v.action,
                      r.dev if r else None, r.via if r else None, table_name(r.table) if r else None, k, _agree(v, k))
            t.hops.append(hop)
            if v.action != "route" or r is None or r.dev is None:
                t.end = f"dropped in {ns_name}: {v.action}"
                return t
            dev = r.dev
            if dev.startswith(names.RTR_TO_FIP_DEV):                  # qrouter -> fip-
                link = ns.links[dev]
                new_src = _map(ns, "fixed2fip").get(src, src)
                if new_src != src:
                    hop.note = f"source NAT {src} -> {new_src} (FIP) leaving by {dev}"
                src, mark, iif, ns_name = new_src, 0, link.peer, link.peer_netns
            elif dev.startswith(names.FIP_TO_RTR_DEV):                # fip- -> qrouter (a local FIP)
                link = ns.links[dev]
                qns = self.where.get(link.peer_netns or "", (host, None))[1]
                new_dst = _map(qns, "fip2fixed").get(dst, dst) if qns else dst
                if new_dst != dst:
                    hop.note = f"destination NAT {dst} -> {new_dst} in the qrouter"
                dst, mark, iif, ns_name = new_dst, 0, link.peer, link.peer_netns
            elif dev.startswith(names.ROUTER_IF_DEV):                 # qrouter -> VM or snat-
                if not r.via:
                    t.end = f"delivered to {dst} on {dev} ({host})"
                    return t
                snat_node = router.snat_node
                snat_ns = names.snat_ns(info.node(snat_node).prefix, router.id) if snat_node else None
                if snat_ns not in self.where:
                    t.end = f"to {r.via} on {dev}: no snat- namespace planned for {router.name}"
                    return t
                host, sns = self.where[snat_ns]
                hop.note = f"to the snat- namespace on {host} ({r.via})"
                iif, mark, ns_name = _dev_with(sns, names.SNAT_IF_DEV, r.via, exact=True), 0, snat_ns
            elif dev.startswith((names.AGENT_GW_DEV, names.ROUTER_GW_DEV)):   # onto the external segment
                if dev.startswith(names.ROUTER_GW_DEV):
                    nat = _snat_to(ns, src)
                    if nat:
                        hop.note = f"source NAT {src} -> {nat} leaving by {dev}"
                        src = nat
                if r.via:
                    t.gateway = self._gateway_name(r.via)
                    t.end = (f"leaves by gateway {t.gateway or '?'} ({r.via}) from {src}"
                             f"{'' if t.gateway else ' — not a lab gateway'}")
                    return t
                nxt = self._fip_host(dst)
                if nxt is None:
                    t.end = f"on the external segment to {dst} (no node hosts it)"
                    return t
                host, ns_name, nns = nxt
                hop.note = f"straight over the segment to {host}'s fip- namespace"
                iif, mark = next((d for d in sorted(nns.links) if d.startswith(names.AGENT_GW_DEV)), None), 0
            else:
                t.end = f"leaves {ns_name} by {dev}: not followed"
                return t
            if ns_name not in self.where:
                t.end = f"next namespace {ns_name} is not planned"
                return t
            ns = self.where[ns_name][1]
        t.end = f"more than {MAX_HOPS} hops: a loop?"
        return t


def trace(info: LabInfo, vm: str, dst: str) -> Trace:
    return Tracer(info).trace(vm, dst)


__all__ = ["Hop", "KernelAnswer", "Trace", "Tracer", "kernel_route_get", "trace"]
