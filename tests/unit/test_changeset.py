"""model/changeset.py: `apply` builds the same snapshot (collections and every index) as a fresh
`Cloud`, shares every unchanged object, validates exactly what `Cloud.validate` would reject, and
`ChangeSet` refuses malformed changes."""
from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv4Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.test_plan_incremental import Walk

from dvrnet.model import Cloud, DvrnetError, InvalidInput
from dvrnet.model.changeset import ChangeSet, apply, changeset_between, changeset_replacing, key_of
from dvrnet.model.cloud import INDEXES
from dvrnet.model.placement import router_fips_scope, router_scope
from dvrnet.scenarios.scale import scale_cloud


def _same_indexes(a: Cloud, b: Cloud) -> None:
    for spec in INDEXES:
        assert dict(getattr(a, spec.name)) == dict(getattr(b, spec.name)), spec.name
    assert {h: dict(c) for h, c in a.compute_subnets_by_host.items()} == \
        {h: dict(c) for h, c in b.compute_subnets_by_host.items()}
    assert dict(a.held) == dict(b.held)


@pytest.mark.parametrize("seed", range(6))
def test_apply_chain_equals_snapshots(seed):
    """Following a random walk by ChangeSets gives, at every step, the Workspace's snapshot with
    equal indexes, and the touched keys name every changed resource and index bucket."""
    w = Walk(random.Random(seed))
    chain = prev = w.c()
    for _ in range(80):
        w.step()
        snap = w.c()
        cs = changeset_between(prev, snap)
        nxt, touched = apply(chain, cs)
        assert nxt == snap
        _same_indexes(nxt, snap)
        for kind, i in cs.resource_keys():
            assert (kind, i) in touched
            assert getattr(nxt, kind).get(i) == getattr(snap, kind).get(i)
        for spec in INDEXES:        # a bucket that differs from the last snapshot's is touched
            old, new = getattr(prev, spec.name), getattr(snap, spec.name)
            for b in set(old) | set(new):
                if old.get(b) != new.get(b):
                    assert (spec.name, b) in touched, (spec.name, b)
        for kind in ("networks", "subnets", "routers", "ports", "floatingips", "hosts"):
            for i, o in getattr(chain, kind).items():     # unchanged objects are shared
                if (kind, i) not in touched:
                    assert getattr(nxt, kind)[i] is o
        chain, prev = nxt, snap


def test_apply_shares_and_does_not_mutate_its_input():
    c = scale_cloud(routers=3, fips=30)
    before = {k: dict(getattr(c, k)) for k in ("ports", "floatingips")}
    f = c.floatingips[min(c.floatingips)]
    n, touched = apply(c, ChangeSet(deletes=(("floatingips", f.id),), revision=7))
    assert f.id not in n.floatingips and f.id in c.floatingips
    assert {k: dict(getattr(c, k)) for k in ("ports", "floatingips")} == before
    assert n.revision == 7 and c.revision == 0
    assert ("floatingips", f.id) in touched and ("fips_by_router", f.router_id) in touched
    assert all(n.ports[i] is p for i, p in c.ports.items())
    again, t2 = apply(n, ChangeSet(upserts=(n.ports[min(n.ports)],)))   # equal upsert: nothing
    assert again is n and t2 == frozenset()


def _mutations(c: Cloud, rnd: random.Random) -> list[ChangeSet]:
    """Changes of every kind, many of them invalid."""
    out = []
    pick = lambda m: m[rnd.choice(sorted(m))] if m else None
    for kind in ("networks", "subnets", "routers", "ports", "floatingips"):
        o = pick(getattr(c, kind))
        if o is not None:
            out.append(ChangeSet(deletes=((kind, o.id),)))
    net, sub, port, fip = pick(c.networks), pick(c.subnets), pick(c.ports), pick(c.floatingips)
    if net is not None:
        out.append(ChangeSet(upserts=(replace(net, external=not net.external),)))
    if sub is not None:
        other = pick(c.subnets)
        out.append(ChangeSet(upserts=(replace(sub, id="new-subnet"),)))                  # overlaps itself
        out.append(ChangeSet(upserts=(replace(sub, network_id=other.network_id),)))
        out.append(ChangeSet(upserts=(replace(sub, network_id="nowhere"),)))
    if port is not None and port.fixed_ips:
        other = pick(c.ports)
        out.append(ChangeSet(upserts=(replace(port, id="new-port", mac_address=""),)))       # same addresses
        out.append(ChangeSet(upserts=(replace(port, fixed_ips=other.fixed_ips),)))
        out.append(ChangeSet(upserts=(replace(port, network_id=other.network_id),)))
        out.append(ChangeSet(upserts=(replace(port, fixed_ips=()),)))
        f0 = port.fixed_ips[0]
        out.append(ChangeSet(upserts=(replace(port, fixed_ips=(replace(f0, ip_address=IPv4Address("192.0.2.77")),)),)))
    if fip is not None:
        other = pick(c.floatingips)
        out.append(ChangeSet(upserts=(replace(fip, floating_ip_address=other.floating_ip_address),)))
        out.append(ChangeSet(upserts=(replace(fip, id="new-fip"),)))
        if port is not None and port.fixed_ips:
            out.append(ChangeSet(upserts=(replace(fip, port_id=port.id, fixed_ip_address=port.fixed_ips[0].ip_address),)))
            out.append(ChangeSet(upserts=(replace(fip, port_id=port.id, fixed_ip_address=IPv4Address("192.0.2.78")),)))
    r = pick(c.routers)
    if r is not None and net is not None and r.gateway is not None:
        out.append(ChangeSet(upserts=(replace(r, gateway=replace(r.gateway, network_id=net.id)),)))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(5, 60))
def test_apply_validates_like_validate(seed, steps):
    """For valid clouds and arbitrary (often invalid) single changes: apply raises InvalidInput
    exactly when Cloud.validate rejects the result."""
    rnd = random.Random(seed)
    w = Walk(rnd)
    for _ in range(steps):
        w.step()
    c = w.c()
    chain, _ = apply(Cloud(), changeset_between(Cloud(), c))     # an applied chain (Map-based)
    for base in (c, chain):
        for cs in _mutations(c, rnd):
            full = apply(base, cs, validate=False)[0]
            try:
                Cloud(*(dict(getattr(full, k)) for k in ("networks", "subnets", "routers", "ports",
                                                          "floatingips", "hosts"))).validate()
                want = None
            except InvalidInput as e:
                want = e
            try:
                got = apply(base, cs)[0]
            except InvalidInput as e:
                assert want is not None, f"{cs}: apply refused ({e}) what validate accepts"
                continue        # both refuse (each names the first violation it meets, maybe another field)
            assert want is None, f"{cs}: apply accepted what validate refuses ({want})"
            assert got == full


def test_changeset_refuses_malformed_changes():
    c = scale_cloud(routers=1, fips=2)
    p = c.ports[min(c.ports)]
    with pytest.raises(InvalidInput, match="upserted twice"):
        ChangeSet(upserts=(p, p))
    with pytest.raises(InvalidInput, match="both upserted and deleted"):
        ChangeSet(upserts=(p,), deletes=(("ports", p.id),))
    with pytest.raises(InvalidInput, match="unknown kind 'port'"):
        ChangeSet(deletes=(("port", p.id),))
    with pytest.raises(TypeError):
        ChangeSet(upserts=("not a resource",))  # type: ignore[arg-type]  # the wrong type is the test


def test_changeset_replacing_a_router_subgraph():
    """A router's fetched subgraph (here: the same router with one FIP fewer and one port
    renamed) becomes the ChangeSet of exactly that difference; keys kept by others stay."""
    c = scale_cloud(routers=2, fips=6)
    rid = min(c.routers)
    def scope_of(c):        # the router's part of compute1's view, its FIPs there included
        return router_scope(c, rid) | router_fips_scope(c, rid, "compute1")
    scope = scope_of(c)
    fetched = {k: getattr(c, k[0])[k[1]] for k in scope}
    gone = next(k for k in sorted(scope) if k[0] == "floatingips")
    del fetched[gone]
    pk = next(k for k in sorted(scope) if k[0] == "ports")
    fetched[pk] = replace(fetched[pk], name="renamed")
    net = next(k for k in sorted(scope) if k[0] == "networks")
    del fetched[net]
    cs = changeset_replacing(c, scope, fetched.values(), keep={net}, revision=3)
    assert cs.deletes == (gone,) and [key_of(u) for u in cs.upserts] == [pk] and cs.revision == 3
    n, _ = apply(c, cs)
    assert scope_of(n) == scope - {gone} and n.ports[pk[1]].name == "renamed"


def test_apply_refuses_and_leaves_the_cloud_alone():
    c = scale_cloud(routers=1, fips=2)
    s = c.subnets[min(c.subnets)]
    with pytest.raises(DvrnetError):
        apply(c, ChangeSet(deletes=(("networks", s.network_id),)))
    assert s.network_id in c.networks and c.validate() is c
