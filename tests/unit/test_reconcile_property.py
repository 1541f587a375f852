"""An in-memory model of the kernel state the reconciler touches — only for the pure property
test. Semantics follow the kernel where it matters: deleting a link deletes its veth peer and
every address, route and neighbour on either end; `replace` overwrites by key; reads return
only routes/rules of protocol 94 and nft tables named dvrnet, as the real reader does."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from dvrnet.plan.state import HostState, Link, Namespace, NftMap, NftTable
from dvrnet.reconcile import ops as O
from dvrnet.reconcile.ownership import Ownership, owns_nft_table

DVR = 94


@dataclass
class MemNs:
    managed: bool = True
    links: dict = field(default_factory=dict)
    addresses: set = field(default_factory=set)
    routes: dict = field(default_factory=dict)       # key -> (route, proto)
    rules: set = field(default_factory=set)          # (rule, proto)
    neighbours: dict = field(default_factory=dict)
    sysctls: dict = field(default_factory=dict)
    nft: dict = field(default_factory=dict)


class MemKernel:
    def __init__(self) -> None:
        self.ns: dict[str, MemNs] = {}

    # -- building ------------------------------------------------------------------------------
    def load(self, state: HostState, proto: int = DVR) -> None:
        for name, n in state.namespaces.items():
            m = self.ns.setdefault(name, MemNs(managed=n.managed))
            m.links.update(n.links)
            def on_link(dev, m=m):
                return dev is None or dev in m.links
            m.addresses |= {a for a in n.addresses if on_link(a.dev)}
            m.routes.update({r.key: (r, proto) for r in n.routes if on_link(r.dev)})
            m.rules |= {(r, proto) for r in n.rules}
            m.neighbours.update({(x.dev, x.ip): x for x in n.neighbours if on_link(x.dev)})
            m.sysctls.update(n.sysctls)
            m.nft.update(n.nft)

    def read(self, desired: HostState, prefix: str) -> HostState:
        own = Ownership(prefix)
        out = {}
        for name, m in self.ns.items():
            if not (own.owns_namespace(name) or name in desired.namespaces):
                continue
            want = desired.namespaces.get(name)
            keys = set(want.sysctls) if want else set()
            out[name] = Namespace(
                name, dict(m.links), frozenset(m.addresses),
                frozenset(r for r, p in m.routes.values() if p == DVR),
                frozenset(r for r, p in m.rules if p == DVR), frozenset(m.neighbours.values()),
                {k: v for k, v in m.sysctls.items() if k in keys},
                {k: t for k, t in m.nft.items() if owns_nft_table(*k)},
                managed=want.managed if want else True)
        return HostState(desired.host, out)

    def snapshot(self) -> dict:
        return {n: (dict(m.links), set(m.addresses), dict(m.routes), set(m.rules),
                    dict(m.neighbours), dict(m.sysctls), dict(m.nft)) for n, m in self.ns.items()}

    # -- executing -----------------------------------------------------------------------------
    def _drop_link(self, ns: str, name: str) -> None:
        m = self.ns.get(ns)
        if m is None or name not in m.links:
            return
        lk = m.links.pop(name)
        m.addresses = {a for a in m.addresses if a.dev != name}
        m.routes = {k: v for k, v in m.routes.items() if v[0].dev != name}
        m.neighbours = {k: v for k, v in m.neighbours.items() if v.dev != name}
        if lk.kind == "veth" and lk.peer:
            self._drop_link(lk.peer_netns or ns, lk.peer)

    def apply(self, op: O.Op) -> None:
        if isinstance(op, O.NetnsAdd):
            self.ns.setdefault(op.ns, MemNs())
            return
        if isinstance(op, O.NetnsDel):
            for lk in list(self.ns.get(op.ns, MemNs()).links.values()):
                self._drop_link(op.ns, lk.name)
            self.ns.pop(op.ns, None)
            return
        m = self.ns[op.ns]          # KeyError = "missing namespace"
        if isinstance(op, O.LinkAdd):
            lk = op.link
            m.links[lk.name] = replace(lk, master=None, up=False)
            if lk.kind == "veth":
                pns = lk.peer_netns or op.ns
                src = op.peer_link or Link(lk.peer or "")
                self.ns[pns].links[lk.peer] = Link(lk.peer, "veth", op.ns, lk.name, src.mac, src.mtu, None, False)
        elif isinstance(op, O.LinkSet):
            lk = m.links[op.name]
            m.links[op.name] = replace(
                lk, mac=op.mac or lk.mac, mtu=op.mtu or lk.mtu,
                master=None if op.master == "nomaster" else (op.master or lk.master),
                up=lk.up if op.up is None else op.up)
        elif isinstance(op, O.LinkDel):
            self._drop_link(op.ns, op.name)
        elif isinstance(op, O.AddrAdd):
            m.addresses = {a for a in m.addresses if (a.dev, a.cidr) != (op.addr.dev, op.addr.cidr)}
            m.addresses.add(op.addr)
        elif isinstance(op, O.AddrDel):
            m.addresses = {a for a in m.addresses if (a.dev, a.cidr) != (op.addr.dev, op.addr.cidr)}
        elif isinstance(op, O.RouteReplace):
            m.routes[op.route.key] = (op.route, DVR)
        elif isinstance(op, O.RouteDel):
            if m.routes.get(op.route.key, (None, None))[1] == DVR:
                del m.routes[op.route.key]
        elif isinstance(op, O.RuleAdd):
            m.rules.add((op.rule, DVR))
        elif isinstance(op, O.RuleDel):
            m.rules.discard((op.rule, DVR))
        elif isinstance(op, O.NeighReplace):
            m.neighbours[(op.neigh.dev, op.neigh.ip)] = op.neigh
        elif isinstance(op, O.NeighDel):
            m.neighbours.pop((op.neigh.dev, op.neigh.ip), None)
        elif isinstance(op, O.SysctlSet):
            m.sysctls[op.key] = op.value
        elif isinstance(op, O.NftReplaceTable):
            m.nft[(op.table.family, op.table.name)] = op.table
        elif isinstance(op, O.NftDelTable):
            m.nft.pop((op.family, op.name), None)
        elif isinstance(op, O.NftElements):
            t = m.nft[(op.family, op.table)]
            maps = []
            for mp in t.maps:
                els = set(mp.elements) - {(k, v) for n, k, v in op.delete if n == mp.name}
                els |= {(k, v) for n, k, v in op.add if n == mp.name}
                maps.append(NftMap(mp.name, mp.key_type, mp.data_type, frozenset(els)))
            m.nft[(op.family, op.table)] = NftTable(t.family, t.name, t.chains, tuple(maps))
        elif isinstance(op, O.Garp):
            pass
        else:
            raise TypeError(op)


# --- property: apply(plan) on the model converges and leaves foreign objects alone -------------
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvrnet.plan.state import Address, Neighbour, NftChain, Route, Rule
from dvrnet.reconcile import diff

P = "p1-"
FIP, QB, QC, BR, OLD = f"{P}fip-a", f"{P}qrouter-b", f"{P}qrouter-c", "bridges", f"{P}snat-old"
PAIRS = [((FIP, "fpr-b"), (QB, "rfp-b")), ((FIP, "fg-1"), (BR, "dv-1")), ((QC, "qr-1"), (BR, "dv-2")),
         ((FIP, "fpr-c"), (QC, "rfp-c"))]
DEVS = {FIP: ["fpr-b", "fg-1", "fpr-c"], QB: ["rfp-b"], QC: ["qr-1", "rfp-c"]}


def _pair_links(pair, variant: int) -> dict:
    (na, a), (nb, b) = pair
    if variant == 1:        # wrong kind on one end
        return {(na, a): Link(a, "dummy")}
    if variant == 2:        # wrong peer: both ends in their namespaces but paired elsewhere
        return {(na, a): Link(a, "veth", na, a + "x"), (na, a + "x"): Link(a + "x", "veth", na, a)}
    mac = "fa:16:3e:00:00:%02x" % (variant % 256)
    return {(na, a): Link(a, "veth", nb, b, mac=mac if variant == 3 else None, up=True),
            (nb, b): Link(b, "veth", na, a, master="brx" if nb == BR else None, up=True)}


@st.composite
def host_states(draw, desired: bool):
    nss = {FIP, QB, QC, BR} | ({OLD} if not desired and draw(st.booleans()) else set())
    links: dict = {}
    for pair in PAIRS:
        if draw(st.booleans()):
            links.update(_pair_links(pair, 0 if desired else draw(st.integers(0, 3))))
    if desired and draw(st.booleans()):
        links[(QC, "qg-9")] = Link("qg-9", "dummy", up=True)
    out = {}
    for n in sorted(nss):
        mine = {k[1]: v for k, v in links.items() if k[0] == n}
        devs = sorted(mine) if n != BR else []     # objects only on links that exist / are desired
        dev = st.sampled_from(devs) if devs else st.none()
        routes = draw(st.lists(st.builds(
            Route, table=st.sampled_from([254, 16, 40005]),
            dst=st.sampled_from(["default", "203.0.113.0/24", "203.0.113.50/32", "198.51.100.60/32"]),
            via=st.sampled_from([None, "169.254.64.0", "203.0.113.1"]), dev=dev,
            onlink=st.booleans()), max_size=5)) if devs else []
        rules = draw(st.frozensets(st.builds(
            Rule, priority=st.sampled_from([32768, 40000, 40010]), action=st.just("lookup"),
            table=st.sampled_from([16, 40005]), src=st.sampled_from([None, "203.0.113.0/24"])), max_size=3))
        addrs = draw(st.frozensets(st.builds(
            Address, dev=st.sampled_from(devs), cidr=st.sampled_from(["169.254.64.1/31", "100.64.0.11/24",
                                                                      "100.64.0.11/25"]),
            noprefixroute=st.booleans()), max_size=3)) if devs else frozenset()
        addrs = frozenset({(a.dev, a.ip): a for a in sorted(addrs)}.values())
        neigh = draw(st.frozensets(st.builds(
            Neighbour, dev=st.sampled_from(devs), ip=st.sampled_from(["10.0.0.12", "10.0.0.13"]),
            mac=st.sampled_from(["fa:16:3e:00:00:12", "fa:16:3e:00:00:13"])), max_size=2)) if devs else frozenset()
        neigh = frozenset({(x.dev, x.ip): x for x in sorted(neigh)}.values())
        sysctls = draw(st.dictionaries(st.sampled_from(["net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter"]),
                                       st.sampled_from(["0", "1"]), max_size=2)) if n != BR else {}
        nft = {}
        if n in (QB, QC) and draw(st.booleans()):
            chain_rule = draw(st.sampled_from(["ip saddr @m accept", "ip daddr @m accept"]))
            els = draw(st.frozensets(st.tuples(st.sampled_from(["203.0.113.50", "203.0.113.51"]),
                                               st.sampled_from(["10.0.0.5", "10.0.0.6"])), max_size=2))
            els = frozenset({k: (k, v) for k, v in sorted(els)}.values())
            nft[("ip", "dvrnet")] = NftTable("ip", "dvrnet", (NftChain("c", "filter", "prerouting", 0, (chain_rule,)),),
                                             (NftMap("m", "ipv4_addr", "ipv4_addr", els),))
        if n == BR:
            routes, rules = [], frozenset()
        out[n] = Namespace(n, mine, addrs, frozenset({r.key: r for r in routes}.values()), rules,
                           neigh, sysctls, nft, managed=n != BR)
    return HostState("h", out)


def _foreign(k: MemKernel) -> dict:
    snap = {}
    for n, m in k.ns.items():
        ns = Namespace(n, managed=m.managed)
        snap[n] = ({x: v for x, v in m.links.items() if not Ownership(P).owns_link(ns, x)},
                   {k_: v for k_, v in m.routes.items() if v[1] != DVR},
                   {r for r in m.rules if r[1] != DVR},
                   {k_: v for k_, v in m.nft.items() if not owns_nft_table(*k_)},
                   {a for a in m.addresses if a.dev.startswith("eth")})
    return snap


def _add_foreign(k: MemKernel) -> None:
    k.ns.setdefault("elsewhere", MemNs()).links["fg-notmine"] = Link("fg-notmine", "dummy")
    for n in (FIP, QB, QC):
        m = k.ns.setdefault(n, MemNs())
        m.links["eth0"] = Link("eth0", "dummy", up=True)
        m.addresses.add(Address("eth0", "192.0.2.7/24", False))
        m.routes[(40005, "192.0.2.0/24", 0)] = (Route(40005, "192.0.2.0/24", dev="eth0"), 4)
        m.routes[(254, "192.0.2.99/32", 0)] = (Route(254, "192.0.2.99/32", type="blackhole"), 3)
        m.rules.add((Rule(40000, "lookup", 40005, src="192.0.2.0/24"), 0))
        m.nft[("inet", "filter")] = NftTable("inet", "filter")
    k.ns.setdefault(BR, MemNs(managed=False)).links["brx"] = Link("brx", "bridge", up=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired=host_states(desired=True), observed=host_states(desired=False))
def test_applying_the_plan_converges_and_spares_foreign_objects(desired, observed):
    k = MemKernel()
    k.load(observed)
    _add_foreign(k)
    before = _foreign(k)
    plan = diff(desired, k.read(desired, P), P)
    for op in plan:
        k.apply(op)
    after = diff(desired, k.read(desired, P), P)
    assert not after, f"not converged:\n{after}\n--- plan was:\n{plan}"
    now = _foreign(k)
    for n in before:
        if n == OLD:
            continue                    # an obsolete owned namespace goes whole
        assert now.get(n) == before[n], n
    assert "elsewhere" in k.ns and "fg-notmine" in k.ns["elsewhere"].links
    assert OLD not in k.ns
