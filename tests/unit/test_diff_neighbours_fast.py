"""The neighbour diff from set differences (`diff._diff_neighbours`) gives exactly the ops of the
per-object pass (`diff._diff_neighbours_all`, the reference): neighbours held as they are, with
another MAC, missing, unwanted, on a device this namespace does not own, and on a device that
vanishes in the plan (then the per-object pass itself runs)."""
from __future__ import annotations

import importlib

from hypothesis import given, settings
from hypothesis import strategies as st

from dvrnet.plan.state import HostState, Link, Namespace, Neighbour

D = importlib.import_module("dvrnet.reconcile.diff")
from dvrnet.reconcile.ownership import Ownership

P = "t-"
NS = P + "qrouter-x"
OWNED = ("qr-a", "qr-b", "rfp-x")
DEVS = OWNED + ("eth0",)            # eth0: not dvrnet's (only ever on the observed side)
IPS = ("10.0.0.2", "10.0.0.3", "10.0.0.4", "169.254.64.1")
MACS = ("fa:16:3e:00:00:01", "fa:16:3e:00:00:02")


def _unique(ns) -> list[Neighbour]:
    """One neighbour per (dev, ip), as the builder and the kernel hold them."""
    return list({(n.dev, n.ip): n for n in ns}.values())


def neighbours(devs):
    return st.lists(st.builds(Neighbour, dev=st.sampled_from(devs), ip=st.sampled_from(IPS),
                              mac=st.sampled_from(MACS)), max_size=12).map(_unique)


def _ns(ns) -> Namespace:
    return Namespace(NS, {n: Link(n) for n in OWNED}, neighbours=frozenset(ns))


def _ops(fn, d, o, gone) -> tuple:
    acc = D._Acc()
    acc.gone = set(gone)
    fn(d, o, Ownership(P), acc)
    return tuple(acc.creates["neighbour"]) + tuple(acc.deletes["neighbour"])


@settings(max_examples=500, deadline=None)
@given(neighbours(OWNED), neighbours(DEVS),
       st.sampled_from([(), ((NS, "qr-a"),), ((P + "other", "qr-a"),)]))
def test_same_ops_as_the_per_object_pass(want, have, gone):
    d, o = _ns(want), _ns(have)
    assert _ops(D._diff_neighbours, d, o, gone) == _ops(D._diff_neighbours_all, d, o, gone)


def test_one_changed_mac_among_thousands():
    """A qrouter's neighbours: thousands equal on both sides (distinct objects), one with another
    MAC, one missing, one unwanted: exactly those three ops, through `diff` itself."""
    rows = [Neighbour("qr-a", f"10.1.{i // 256}.{i % 256}", MACS[0]) for i in range(3000)]
    held = [Neighbour(n.dev, n.ip, n.mac) for n in rows[1:]]         # rows[0] missing
    held[0] = Neighbour(held[0].dev, held[0].ip, MACS[1])            # rows[1] with another MAC
    held.append(Neighbour("qr-a", "10.9.9.9", MACS[0]))              # nobody wants it
    want = HostState("h", {NS: _ns(rows)})
    seen = HostState("h", {NS: _ns(held)})
    plan = D.diff(want, seen, P)
    assert [(type(op).__name__, op.neigh.ip) for op in plan] == [
        ("NeighReplace", "10.1.0.0"), ("NeighReplace", "10.1.0.1"), ("NeighDel", "10.9.9.9")]
    assert plan.ops[1].old == held[0]


def test_the_memo_skips_neighbour_sets_that_diffed_to_nothing_and_sees_a_change():
    """Through one `DiffMemo`: namespaces that differ elsewhere (a FIP's NAT element) but hold the
    same neighbour sets as when they last diffed to nothing plan exactly what the memo-less diff
    plans; a changed observed set (a neighbour deleted behind our back) is diffed again."""
    from dvrnet.plan.state import NftMap, NftTable
    rows = frozenset(Neighbour("qr-a", f"10.1.{i // 256}.{i % 256}", MACS[0]) for i in range(500))
    held = frozenset(Neighbour(n.dev, n.ip, n.mac) for n in rows)

    def ns(neigh, elements) -> Namespace:
        t = NftTable("ip", "dvrnet", maps=(NftMap("fip2fixed", "ipv4_addr", "ipv4_addr", frozenset(elements)),))
        return Namespace(NS, {n: Link(n) for n in OWNED}, neighbours=neigh, nft={("ip", "dvrnet"): t})
    memo = D.DiffMemo()
    pairs = [("203.0.113.2", "10.1.0.5")]
    for step in range(4):
        want = HostState("h", {NS: ns(rows, pairs)})
        seen = HostState("h", {NS: ns(held, pairs[:-1] if step else pairs)})
        assert D.diff(want, seen, P, memo=memo) == D.diff(want, seen, P)
        pairs = pairs + [(f"203.0.113.{3 + step}", f"10.1.0.{6 + step}")]
    assert memo.neighbours[NS][0] is rows
    gone = held - {next(iter(held))}
    want, seen = HostState("h", {NS: ns(rows, pairs)}), HostState("h", {NS: ns(gone, pairs)})
    plan = D.diff(want, seen, P, memo=memo)
    assert plan == D.diff(want, seen, P) and [type(op).__name__ for op in plan] == ["NeighReplace"]
