"""The route diff's set-difference shortcut (`diff._route_delta`) gives exactly the ops of the
per-key comparison it replaces (kept below as the reference), also with repeated keys on either
side, routes on vanishing devices, and the per-set key cache reused across calls."""
from __future__ import annotations

import importlib

from hypothesis import given, settings
from hypothesis import strategies as st

from dvrnet.plan.names import AGENT_GW_DEV
from dvrnet.plan.state import MAIN_TABLE, Link, Namespace, Route

D = importlib.import_module("dvrnet.reconcile.diff")
from dvrnet.reconcile.ops import Garp, RouteReplace
from dvrnet.reconcile.ownership import Ownership

P = "t-"
NS = P + "fip-x"
DEVS = ("fpr-a", "fpr-b", AGENT_GW_DEV + "x")


def reference(d: Namespace, o: Namespace, acc: D._Acc) -> None:
    """`_diff_routes` before the shortcut (per-key maps of both sides)."""
    have = {r.key: r for r in o.routes if D._alive(d.name, r.dev, acc)}
    fg = sorted(n for n in d.links if n.startswith(AGENT_GW_DEV))
    changed, want = [], set()
    for r in d.routes:
        k = r.key
        want.add(k)
        old = have.get(k)
        if old != r:
            changed.append((r.sort_key(), r, old))
    changed.sort(key=D._first)
    for _, r, old in changed:
        acc.target("route", d.name, r.dev).append(RouteReplace(d.name, r, old))
        if (old is None and fg and r.table == MAIN_TABLE and r.type == "unicast"
                and r.dst != "default" and D._prefixlen(r.dst) == 32):
            acc.creates["garp"].append(Garp(d.name, dev=fg[0], ip=r.dst.split("/")[0]))
    gone = [r for k, r in have.items() if k not in want]
    acc.deletes["route"] += [D.RouteDel(d.name, r) for r in sorted(gone, key=Route.sort_key)]


routes = st.builds(Route, table=st.sampled_from([MAIN_TABLE, 16]),
                   dst=st.sampled_from(["203.0.113.1/32", "203.0.113.2/32", "198.51.100.0/24", "default"]),
                   via=st.sampled_from([None, "169.254.64.1", "169.254.64.3"]),
                   dev=st.sampled_from(DEVS), metric=st.sampled_from([0, 0, 5]))


def _ns(rs) -> Namespace:
    # an L2-mode fip- namespace: fg- answers proxy ARP, so new FIP /32s are announced by GARP
    return Namespace(NS, {n: Link(n) for n in DEVS}, frozenset(), frozenset(rs),
                     sysctls={f"net.ipv4.conf.{AGENT_GW_DEV}x.proxy_arp": "1"})


def _ops(fn, d, o, gone) -> tuple:
    acc = D._Acc()
    acc.gone = set(gone)
    fn(d, o, acc)
    return tuple(op for k in D.CREATE_ORDER for op in acc.creates[k]) + tuple(acc.deletes["route"])


@settings(max_examples=400, deadline=None)
@given(st.lists(routes, max_size=8), st.lists(routes, max_size=8), st.sampled_from([(), ((NS, "fpr-a"),),
                                                                                 ((P + "other", "fpr-a"),)]))
def test_same_ops_as_the_per_key_comparison(want, have, gone):
    d, o = _ns(want), _ns(have)
    new = _ops(lambda d, o, acc: D._diff_routes(d, o, Ownership(P), acc, P), d, o, gone)
    assert new == _ops(reference, d, o, gone)
    # again, with the desired keys now cached for this set object
    assert new == _ops(lambda d, o, acc: D._diff_routes(d, o, Ownership(P), acc, P), d, o, gone)


def _fast(idx=None):
    return lambda d, o, acc: D._diff_routes(d, o, Ownership(P), acc, P, idx)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(routes, max_size=6), st.lists(routes, max_size=6),
                          st.sampled_from([(), ((NS, "fpr-a"),)]), st.booleans(), st.booleans()),
                min_size=1, max_size=8))
def test_one_index_over_a_sequence_of_states(steps):
    """The per-namespace index of a `DiffMemo` (desired keys kept up to date by set differences,
    the last equal pair as a base) gives the reference's ops at every step; steps reuse the
    previous sets (as the planner and the reader do), build equal copies, or converge."""
    idx, prev_d, prev_o = None, None, None
    for want, have, gone, keep_d, converge in steps:
        d = _ns(want) if not (keep_d and prev_d) else prev_d
        if converge:
            have = [Route(r.table, r.dst, r.via, r.dev, r.scope, r.onlink, r.src, r.type, r.metric)
                    for r in d.routes]
        o = _ns(list(prev_o.routes)[: len(have)] + have) if prev_o is not None and not converge else _ns(have)
        if idx is None:
            idx = D._RouteIdx(d.routes)
        assert _ops(_fast(idx), d, o, gone) == _ops(reference, d, o, gone)
        assert _ops(_fast(idx), d, o, gone) == _ops(reference, d, o, gone)
        prev_d, prev_o = d, o


def test_memo_index_after_convergence():
    """Grow one large namespace route by route, converging after each step, through one memo."""
    from dvrnet.plan.state import HostState
    rs = [Route(MAIN_TABLE, f"203.0.{i // 256}.{i % 256}/32", "169.254.64.1", "fpr-a", onlink=True)
          for i in range(600)]
    memo = D.DiffMemo()
    obs = frozenset(rs[:500])
    for n in range(500, 505):
        want = HostState("h", {NS: _ns(rs[:n + 1])})
        seen = HostState("h", {NS: _ns(obs)})
        plan = D.diff(want, seen, P, memo=memo)
        assert plan == D.diff(want, seen, P)
        assert [type(op).__name__ for op in plan] == ["RouteReplace", "Garp"]
        obs = obs | {Route(rs[n].table, rs[n].dst, rs[n].via, rs[n].dev, onlink=True)}   # "applied"
        seen = HostState("h", {NS: _ns(obs)})
        assert not D.diff(want, seen, P, memo=memo)
        assert memo.routes[NS].base is not None


def test_large_namespace_one_new_route():
    rs = [Route(MAIN_TABLE, f"203.0.{i // 256}.{i % 256}/32", "169.254.64.1", "fpr-a", onlink=True)
          for i in range(2000)]
    d = _ns(rs)
    o = _ns([Route(r.table, r.dst, r.via, r.dev, r.scope, r.onlink) for r in rs[:-1]]
            + [Route(MAIN_TABLE, "198.51.100.7/32", "169.254.64.1", "fpr-a", onlink=True)])
    ops = _ops(lambda d, o, acc: D._diff_routes(d, o, Ownership(P), acc, P), d, o, ())
    assert ops == _ops(reference, d, o, ())
    assert [type(op).__name__ for op in ops] == ["RouteReplace", "Garp", "RouteDel"]
