"""Pure tests of port replacement one at a time (S16, issue 6 item 7): every replaced link's whole
life is one contiguous group of the plan (delete, create, sets, addresses, routes, neighbours,
sysctls), groups run one after the other between the creates and the deletes, the executor keeps
that order, and the plan applied to a strict in-memory kernel converges with at most one group's
ports broken at any moment. No root, no kernel."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from test_reconcile_property import MemKernel, _add_foreign, host_states
from test_reconcile_property import P as PP

from dvrnet.kernel import apply as A
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.state import Address, HostState, Link, Namespace, Neighbour, Route
from dvrnet.reconcile import diff
from dvrnet.reconcile import ops as O
from dvrnet.reconcile.diff import DiffMemo, sysctl_dev
from dvrnet.scenarios.seed import build

P = "rp1-"
BR = "rp1-node"                           # the (unmanaged) bridge namespace
FIP, QA, QB = f"{P}fip-e", f"{P}qrouter-a", f"{P}qrouter-b"
T = 3405803776


# --- a strict model: an op whose device, namespace or name is not right fails, as in the kernel --
class StrictKernel(MemKernel):
    def apply(self, op: O.Op) -> None:
        m = self.ns.get(op.ns)
        if not isinstance(op, O.NetnsAdd) and m is None:
            raise AssertionError(f"{op}: no namespace")

        def need(ns: str, dev: str | None) -> None:
            if dev is not None and dev not in self.ns[ns].links:
                raise AssertionError(f"{op}: no device {ns}/{dev}")
        if isinstance(op, O.LinkAdd):
            lk = op.link
            if lk.kind == "macvlan":           # created from the lower's namespace into op.into
                need(op.ns, lk.peer)
                into = self.ns[op.into or op.ns]
                assert lk.name not in into.links, f"{op}: EEXIST"
                into.links[lk.name] = replace(lk, master=None, up=False)
                return
            assert lk.name not in m.links, f"{op}: EEXIST"
            if lk.kind == "veth":
                assert lk.peer not in self.ns[lk.peer_netns or op.ns].links, f"{op}: peer EEXIST"
        elif isinstance(op, O.LinkSet):
            need(op.ns, op.name)
            if op.master and op.master != "nomaster":
                need(op.ns, op.master)
        elif isinstance(op, (O.AddrAdd, O.NeighReplace)):
            need(op.ns, op.addr.dev if isinstance(op, O.AddrAdd) else op.neigh.dev)
        elif isinstance(op, O.RouteReplace):
            need(op.ns, op.route.dev)
            if op.route.src:
                assert op.route.src in {a.ip for a in m.addresses}, f"{op}: invalid prefsrc"
        elif isinstance(op, O.SysctlSet):
            need(op.ns, sysctl_dev(op.key))
        elif isinstance(op, O.Garp):
            need(op.ns, op.dev)
            assert m.links[op.dev].up, f"{op}: network is down"
        super().apply(op)

    def _drop_link(self, ns: str, name: str) -> None:
        m = self.ns.get(ns)
        super()._drop_link(ns, name)
        if m is not None:                      # per-device sysctls die with the device
            m.sysctls = {k: v for k, v in m.sysctls.items() if sysctl_dev(k) != name}


def broken(k: MemKernel, desired: HostState, keys) -> set[tuple[str, str]]:
    """The desired links among `keys` that are missing, of the wrong kind, or lack something
    desired on them (address, route, neighbour, sysctl)."""
    out = set()
    for ns, name in keys:
        want = desired.namespaces[ns]
        m = k.ns.get(ns)
        lk = m.links.get(name) if m else None
        if lk is None or lk.kind != want.links[name].kind or lk.up != want.links[name].up:
            out.add((ns, name))
            continue
        routes = {r for r, _p in m.routes.values()}
        if (any(a.dev == name and a not in m.addresses for a in want.addresses)
                or any(r.dev == name and r not in routes for r in want.routes)
                or any(n.dev == name and m.neighbours.get((n.dev, n.ip)) != n for n in want.neighbours)
                or any(sysctl_dev(s) == name and m.sysctls.get(s) != v for s, v in want.sysctls.items())):
            out.add((ns, name))
    return out


def group_keys(plan: O.Plan, a: int, b: int) -> set[tuple[str, str]]:
    """The links a group deletes or creates (both ends of a veth)."""
    keys = set()
    for op in plan.ops[a:b]:
        if isinstance(op, O.LinkReplaceDel):
            keys.add((op.ns, op.name))
        elif isinstance(op, O.LinkAdd):
            keys.add((op.into or op.ns, op.link.name))
            if op.link.kind == "veth":
                keys.add((op.link.peer_netns or op.ns, op.link.peer))
    return keys


def run_checked(k: MemKernel, plan: O.Plan, desired: HostState) -> None:
    """Apply the plan op by op; outside its group a replaced port must be whole (the ports of
    other groups are either not yet touched or already back)."""
    spans = {i: (a, b) for a, b in plan.groups for i in range(a, b)}
    replaced = {key for a, b in plan.groups for key in group_keys(plan, a, b)
                if key[1] in desired.namespaces.get(key[0], Namespace("")).links}
    done: set[tuple[str, str]] = set()
    for i, op in enumerate(plan.ops):
        k.apply(op)
        span = spans.get(i)
        current = group_keys(plan, *span) if span else set()
        if span and i == span[1] - 1:
            assert not broken(k, desired, current & replaced), f"group ending at {op} left its port broken"
            done |= current
            current = set()
        # every port of an earlier group is whole again while later ones run
        assert not broken(k, desired, (done & replaced) - current), f"after {op}"


# --- a hand-made node: three ports of the wrong kind, plus unrelated changes ---------------------
def _ports(kind: str) -> dict[str, dict[str, Link]]:
    def port(ns: str, name: str, lower: str, mac: str) -> dict:
        if kind == "macvlan":
            return {ns: {name: Link(name, "macvlan", BR, lower, mac=mac, mtu=1450)}}
        dv = "dv-" + name[3:]
        return {ns: {name: Link(name, "veth", BR, dv, mac=mac, mtu=1450)},
                BR: {dv: Link(dv, "veth", ns, name, mtu=1450, master=lower)}}
    out: dict[str, dict[str, Link]] = {}
    for d in (port(FIP, "fg-1", "br-ex", "fa:16:3e:00:00:01"), port(QA, "qr-a", "brq-a", "fa:16:3e:00:00:0a"),
              port(QB, "qr-b", "brq-b", "fa:16:3e:00:00:0b")):
        for ns, links in d.items():
            out.setdefault(ns, {}).update(links)
    return out


def node(kind: str, fips=("203.0.113.50",), extra_route: bool = False, old_route: bool = False) -> HostState:
    links = _ports(kind)
    links[FIP]["fpr-a"] = Link("fpr-a", "veth", QA, "rfp-a")
    links[QA]["rfp-a"] = Link("rfp-a", "veth", FIP, "fpr-a")
    fip = Namespace(
        FIP, links[FIP],
        addresses=frozenset({Address("fg-1", "100.64.0.11/24"), Address("fpr-a", "169.254.64.1/31")}),
        routes=frozenset({Route(T, "default", via="203.0.113.1", dev="fg-1", onlink=True),
                          Route(40005, "203.0.113.0/24", dev="fg-1", scope="link"),
                          Route(40005, "100.64.0.0/24", dev="fg-1", scope="link", src="100.64.0.11")}
                         | {Route(254, f"{f}/32", via="169.254.64.0", dev="fpr-a", onlink=True) for f in fips}
                         | ({Route(254, "198.51.100.0/24", via="169.254.64.0", dev="fpr-a", onlink=True)}
                            if old_route else set())),
        sysctls={"net.ipv4.ip_forward": "1", "net.ipv4.conf.fg-1.proxy_arp": "1",
                 "net.ipv4.neigh.fg-1.proxy_delay": "0"})

    def qr(ns: str, dev: str, net: str, rfp: bool) -> Namespace:
        routes = {Route(254, f"10.0.{net}.0/24", dev=dev, scope="link", src=f"10.0.{net}.1"),
                  Route(167772672 + int(net), "default", via=f"10.0.{net}.2", dev=dev)}
        if extra_route and rfp:
            routes.add(Route(254, "192.0.2.0/24", via="169.254.64.1", dev="rfp-a", onlink=True))
        return Namespace(ns, links[ns],
                         addresses=frozenset({Address(dev, f"10.0.{net}.1/24")}
                                             | ({Address("rfp-a", "169.254.64.0/31")} if rfp else set())),
                         routes=frozenset(routes),
                         neighbours=frozenset({Neighbour(dev, f"10.0.{net}.{h}", f"fa:16:3e:{net:0>2}:00:{h:02x}")
                                               for h in (2, 3)}),
                         sysctls={f"net.ipv4.conf.{dev}.rp_filter": "1", f"net.ipv4.conf.{dev}.send_redirects": "0"})
    br = Namespace(BR, links.get(BR, {}), managed=False)
    return HostState("h", {n.name: n for n in (fip, qr(QA, "qr-a", "1", True), qr(QB, "qr-b", "2", False), br)})


def with_bridges(k: MemKernel) -> MemKernel:
    k.ns.setdefault(BR, type(next(iter(k.ns.values())))(managed=False))
    for b in ("br-ex", "brq-a", "brq-b"):
        k.ns[BR].links[b] = Link(b, "bridge")
    return k


def kernel_of(state: HostState) -> StrictKernel:
    k = StrictKernel()
    k.load(state)
    return with_bridges(k)


def op_dev(op: O.Op) -> str | None:
    """The device an op is about."""
    for v in (getattr(op, "name", None), getattr(op, "dev", None)):
        if v:
            return v
    for attr in ("link", "addr", "route", "neigh"):
        if (x := getattr(op, attr, None)) is not None:
            return getattr(x, "name", None) or getattr(x, "dev", None)
    return sysctl_dev(getattr(op, "key", ""))


GROUP_KINDS = ["LinkReplaceDel", "LinkAdd", "LinkSet", "AddrAdd", "RouteReplace", "NeighReplace", "SysctlSet",
               "Garp"]


@pytest.mark.parametrize("old,new", [("veth", "macvlan"), ("macvlan", "veth")])
def test_three_replaced_ports_are_three_contiguous_groups_in_order(old, new):
    before = node(old, old_route=True)
    desired = node(new, fips=("203.0.113.50", "203.0.113.51"), extra_route=True)
    k = kernel_of(before)
    plan = diff(desired, k.read(desired, P), P)
    assert len(plan.groups) == 3, str(plan)
    ports = [(FIP, "fg-1"), (QA, "qr-a"), (QB, "qr-b")]
    first, last = plan.groups[0][0], plan.groups[-1][1]
    for (a, b), (ns, dev) in zip(plan.groups, ports):
        g = plan.ops[a:b]
        kinds = [type(op).__name__ for op in g]
        # delete -> create -> sets -> addresses -> routes -> neighbours -> sysctls, in that order
        assert kinds == sorted(kinds, key=GROUP_KINDS.index), kinds
        assert kinds[:2] == ["LinkReplaceDel", "LinkAdd"] and (g[0].ns, g[0].name) == (ns, dev)
        want = desired.namespaces[ns]
        assert {op.addr for op in g if isinstance(op, O.AddrAdd)} == {a for a in want.addresses if a.dev == dev}
        assert {op.route for op in g if isinstance(op, O.RouteReplace)} == {r for r in want.routes if r.dev == dev}
        assert {op.neigh for op in g if isinstance(op, O.NeighReplace)} == {n for n in want.neighbours if n.dev == dev}
        assert {op.key for op in g if isinstance(op, O.SysctlSet)} == {s for s in want.sysctls if sysctl_dev(s) == dev}
        assert "AddrAdd" in kinds and "RouteReplace" in kinds and "SysctlSet" in kinds
        # nothing in the group is on another device (the dv- end's set is its own pair's)
        assert {op_dev(op) for op in g} <= {dev, "dv-" + dev[3:]}, str(plan)
    # unrelated creates keep their phases before the groups, deletes come after them
    pre, post = plan.ops[:first], plan.ops[last:]
    assert [str(op) for op in pre] == [
        f"{FIP}: route add 203.0.113.51/32 via 169.254.64.0 dev fpr-a table 254 proto 94 onlink",
        f"{QA}: route add 192.0.2.0/24 via 169.254.64.1 dev rfp-a table 254 proto 94 onlink"]
    assert [str(op) for op in post] == [f"{FIP}: route del 198.51.100.0/24 table 254 proto 94"]
    # the new FIP's gratuitous ARP goes from the new fg-1: inside its group
    garps = [i for i, op in enumerate(plan.ops) if isinstance(op, O.Garp) and op.ip.startswith("203.0.113.")]
    assert garps and all(plan.groups[0][0] <= i < plan.groups[0][1] for i in garps)
    # and each replaced port announces its own addresses from its new device, last in its group
    for (a, b), (ns, dev) in zip(plan.groups, ports):
        own = {(op.dev, op.ip) for op in plan.ops[a:b] if isinstance(op, O.Garp) and not op.ip.startswith("203.")}
        assert own == {(x.dev, x.ip) for x in desired.namespaces[ns].addresses if x.dev == dev}
    run_checked(k, plan, desired)
    after = diff(desired, k.read(desired, P), P)
    assert not after, str(after)


def test_memo_gives_the_same_plan_and_groups():
    desired = node("macvlan")
    k = kernel_of(node("veth"))
    memo = DiffMemo()
    obs = k.read(desired, P)
    plan = diff(desired, obs, P, memo=memo)
    assert plan == diff(desired, obs, P) and plan.groups
    run_checked(k, plan, desired)
    obs2 = k.read(desired, P)
    assert not diff(desired, obs2, P, memo=memo)
    assert not diff(desired, obs2, P, memo=memo) and memo.skipped == len(desired.namespaces)
    # a cross-namespace replacement: QA's rfp-a seen with the wrong kind while FIP is the same
    # object as in the clean pass — FIP's fpr-a is re-created with rfp-a, so FIP is diffed again
    qa = obs2.namespaces[QA]
    obs3 = HostState("h", {**obs2.namespaces, QA: replace(qa, links={**qa.links, "rfp-a": Link("rfp-a", "dummy")})})
    p3 = diff(desired, obs3, P, memo=memo)
    assert p3 == diff(desired, obs3, P)
    assert len(p3.groups) == 1 and any(isinstance(op, O.AddrAdd) and op.addr.dev == "fpr-a" for op in p3)


def test_port_kind_change_of_the_seed_node_converges_one_port_at_a_time():
    cloud = build()
    for old, new in (("veth", "macvlan"), ("macvlan", "veth")):
        cfg = lambda kind: PlanConfig(netns_prefix=P, bridge_netns=BR, port_kind=kind)
        before, desired = plan_host(cloud, "compute1", cfg(old)), plan_host(cloud, "compute1", cfg(new))
        k = StrictKernel()
        k.load(before)
        links = [lk for st in (before, desired) for ns in st.namespaces.values() for lk in ns.links.values()]
        bridges = {lk.master for lk in links if lk.master} | {lk.peer for lk in links if lk.kind == "macvlan"}
        k.ns.setdefault(BR, type(k.ns[next(iter(k.ns))])(managed=False))
        for b in bridges:
            k.ns[BR].links[b] = Link(b, "bridge")
        plan = diff(desired, k.read(desired, P), P)
        plugged = sorted((ns, n) for ns, d in desired.namespaces.items() for n in d.links if n.startswith(("fg-", "qr-")))
        assert len(plan.groups) == len(plugged) >= 3
        assert sorted((plan.ops[a].ns, plan.ops[a].name) for a, _ in plan.groups) == plugged
        assert plan.groups[-1][1] == len(plan.ops)      # only the port changes: nothing else to do
        run_checked(k, plan, desired)
        assert not diff(desired, k.read(desired, P), P)


# --- the executor keeps the groups' order and contiguity ---------------------------------------
def test_executor_runs_creates_then_each_group_alone_then_deletes(monkeypatch):
    before = node("veth", old_route=True)
    desired = node("macvlan", fips=("203.0.113.50", "203.0.113.51"), extra_route=True)
    plan = diff(desired, kernel_of(before).read(desired, P), P)
    calls: list[tuple[str, str, list[O.Op]]] = []
    monkeypatch.setattr(A, "_run_group", lambda ns, tool, ops: calls.append((ns, tool, list(ops))) or [])
    assert A.execute(plan, parallel=True) == []
    ran = [op for _ns, _tool, ops in calls for op in ops]
    assert sorted(map(id, ran)) == sorted(map(id, plan.ops))            # each op once
    pos = {id(op): i for i, op in enumerate(ran)}
    first, last = plan.groups[0][0], plan.groups[-1][1]
    for a, b in plan.groups:
        # a group runs exactly in plan order, contiguously
        assert [pos[id(op)] for op in plan.ops[a:b]] == list(range(pos[id(plan.ops[a])], pos[id(plan.ops[a])] + b - a))
    assert max(pos[id(op)] for op in plan.ops[:first]) < pos[id(plan.ops[first])]
    assert min(pos[id(op)] for op in plan.ops[last:]) > pos[id(plan.ops[last - 1])]
    # one batch per namespace and tool run inside a group: a handful of processes per port
    for a, b in plan.groups:
        ids = {id(op) for op in plan.ops[a:b]}
        assert sum(1 for _n, t, ops in calls if t == "ip" and id(ops[0]) in ids) <= 3


def test_plan_without_replacement_has_no_groups_and_groups_must_be_adjacent():
    d = node("veth")
    assert not diff(d, kernel_of(d).read(d, P), P).groups
    plan = diff(node("veth", fips=("203.0.113.50", "203.0.113.51")), kernel_of(d).read(d, P), P)
    assert plan and not plan.groups and plan.segments() == [(plan.ops, False)]
    ops = tuple(O.NetnsAdd(f"x{i}") for i in range(4))
    assert [len(s) for s, _g in O.Plan(ops, (), ((1, 2), (2, 3))).segments()] == [1, 1, 1, 1]
    with pytest.raises(ValueError):
        O.Plan(ops, (), ((0, 1), (2, 3)))


# --- property: random kernels and desired states (test_reconcile_property's) ---------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired=host_states(desired=True), observed=host_states(desired=False))
def test_grouped_plans_converge_and_groups_hold_only_their_links(desired, observed):
    k = StrictKernel()
    k.load(observed)
    _add_foreign(k)
    obs = k.read(desired, PP)
    plan = diff(desired, obs, PP)
    assert plan == diff(desired, obs, PP, memo=DiffMemo())
    replaced = [(op.ns, op.name) for op in plan if isinstance(op, O.LinkReplaceDel)]
    assert sorted(replaced) == sorted(key for a, b in plan.groups for key in
                                      [(op.ns, op.name) for op in plan.ops[a:b] if isinstance(op, O.LinkReplaceDel)])
    for a, b in plan.groups:
        assert isinstance(plan.ops[a], O.LinkReplaceDel)
        assert not any(isinstance(op, (O.RuleAdd, O.RuleDel, O.NftReplaceTable, O.NftElements, O.NetnsAdd,
                                       O.NetnsDel, O.RouteDel, O.NeighDel)) for op in plan.ops[a:b])
        assert not any(type(op) is O.LinkDel for op in plan.ops[a:b])
    for op in plan:
        k.apply(op)
    after = diff(desired, k.read(desired, PP), PP)
    assert not after, f"not converged:\n{after}\n--- plan was:\n{plan}"
