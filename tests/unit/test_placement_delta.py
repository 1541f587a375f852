"""The one placement (model/placement.py) and the delta path built on it.

Property (hypothesis drives random walks of Workspace operations): every host that follows the
per-host ChangeSets of `ViewTracker` — applying them to its model, planning incrementally from the
touched keys — has, after every step, the same model as a fresh `host_view` of the full snapshot
and the same plan as `plan_host` of the full cloud. Hosts a step does not concern get no
ChangeSet. Also: the forward and inverse placement agree, and the agent-gateway rule equals the
per-host one."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.test_plan_incremental import HOSTS, Walk

from dvrnet.model import Cloud
from dvrnet.model.changeset import apply, changeset_between, key_of
from dvrnet.model.placement import (
    ViewTracker,
    fip_networks_on_host,
    host_view,
    hosts_needing_agent_gateway,
    placed_routers,
    router_hosts,
    sub_cloud,
    view_keys,
)
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.incremental import HostPlanner
from dvrnet.scenarios.scale import scale_cloud


def _unrevisioned(c: Cloud) -> Cloud:
    return c.with_(revision=0)


def _placement_agrees(c: Cloud) -> None:
    for h in HOSTS:
        assert {r.id for r in placed_routers(c, h)} == {rid for rid in c.routers if h in router_hosts(c, rid)}
    assert hosts_needing_agent_gateway(c) == {(h, n) for h in c.hosts for n in fip_networks_on_host(c, h)}


def _follow(seed: int, steps: int, fresh_every: int = 0) -> None:
    rnd = random.Random(seed)
    w = Walk(rnd)
    cfg = PlanConfig()
    chain = snap = w.c()
    tracker = ViewTracker()
    assert tracker.advance(chain) == {}
    models = {h: sub_cloud(chain, view_keys(chain, h)) for h in HOSTS}
    planners = {h: HostPlanner(h, cfg) for h in HOSTS}
    for h in HOSTS:
        planners[h].plan(models[h])
    for i in range(steps):
        what = w.step()
        prev, snap = snap, w.c()
        chain, touched = apply(chain, changeset_between(prev, snap))
        if fresh_every and i % fresh_every == 0:        # a server restart: a tracker from scratch
            tracker = ViewTracker()
            tracker.advance(apply(Cloud(), changeset_between(Cloud(), prev))[0])
            deltas = tracker.advance(chain)
        else:
            deltas = tracker.advance(chain, touched)
        _placement_agrees(snap)
        for h in HOSTS:
            want = sub_cloud(snap, view_keys(snap, h))
            where = f"seed {seed} step {i} ({what}) host {h}"
            assert tracker.view_keys(h) == view_keys(snap, h), where
            cs = deltas.get(h)
            if cs is None:
                assert _unrevisioned(models[h]) == _unrevisioned(want), f"{where}: not told of a change"
                continue
            assert cs, f"{where}: an empty ChangeSet was sent"
            models[h], ht = apply(models[h], cs)
            assert models[h] == want, where
            got = planners[h].plan(models[h], touched=ht)
            assert got == plan_host(snap, h, cfg), f"{where}: plan"
            assert planners[h].fallbacks == 0
        for h in HOSTS:
            if h in snap.hosts:
                assert _unrevisioned(host_view(snap, h)) == _unrevisioned(models[h])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 100_000), st.integers(10, 80))
def test_delta_path_equals_fresh_snapshots(seed, steps):
    _follow(seed, steps)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 100_000))
def test_delta_path_across_tracker_restarts(seed):
    """A tracker started afresh on the previous snapshot (a server restart) gives the same deltas."""
    _follow(seed, 40, fresh_every=7)


def test_a_fip_concerns_only_its_hosts():
    """One VM port and its FIP created on compute1's router: compute1's view changes by both; the
    router's SNAT host (network1) gets the port (a port of the router's subnets) but not the FIP."""
    a = scale_cloud(routers=5, fips=50)
    b = scale_cloud(routers=5, fips=51)
    t = ViewTracker()
    t.advance(a)
    chain, touched = apply(a, changeset_between(a, b))
    deltas = t.advance(chain, touched)
    new_fip = (set(b.floatingips) - set(a.floatingips)).pop()
    port = b.floatingips[new_fip].port_id
    host = b.ports[port].host
    assert set(deltas) == {host, "network1"} and host != "network1"
    assert [key_of(u) for u in deltas["network1"].upserts] == [("ports", port)]
    keys = {(type(u).__name__, getattr(u, "id", None)) for u in deltas[host].upserts}
    assert ("FloatingIP", new_fip) in keys and ("Port", port) in keys and len(keys) == 2
    assert deltas[host].deletes == ()


def test_a_fip_concerns_only_its_ports_host_and_follows_the_port():
    """A router spread over 10 hosts (and its SNAT on network1): +1 FIP wakes exactly the host its
    port is bound to; migrating the VM, to a host of the router and to one the router enters only
    with it, moves the FIP between exactly those two hosts' views; re-associating it to a VM on a
    third host moves it again; deleting the VM's port takes it out. Every step: every host's view
    from the tracker equals `view_keys` of the new cloud, and hosts whose view holds neither the FIP
    nor its port before or after get nothing."""
    from dvrnet.bench.fanout import fanout_cloud
    from dvrnet.model.placement import local_fips
    from dvrnet.ops import Workspace
    c0 = fanout_cloud(hosts=20, routers=2, fips=40, spare_ports=3)
    spare = next(p for p in c0.ports.values() if p.name == "spare0")
    other = next(p for p in c0.ports.values() if p.name == "spare2")     # a VM of the same router
    rid = next(r.device_id for r in c0.ports_by_subnet[spare.fixed_ips[0].subnet_id]
               if r.device_owner == "network:router_interface_distributed")
    on = sorted(router_hosts(c0, rid) - {"network1"})
    off = sorted(h for h in c0.hosts if h not in router_hosts(c0, rid))
    assert len(on) == 10 and off and spare.host in on and other.host in on and other.host != spare.host
    assert other.fixed_ips[0].subnet_id == spare.fixed_ips[0].subnet_id
    ext = next(n.id for n in c0.networks.values() if n.external)
    pool = next(s.id for s in c0.subnets.values() if s.name == "fip-pool")
    ws = Workspace(c0)
    t = ViewTracker()
    t.advance(c0)

    def step(change):
        change()
        new = ws.snapshot()
        assert t.cloud is not None
        chain, touched = apply(t.cloud, changeset_between(t.cloud, new))
        deltas = t.advance(chain, touched)
        for h in new.hosts:
            assert t.view_keys(h) == view_keys(new, h), h
        return new, deltas

    def fip_in(deltas) -> dict[str, str]:
        """host -> "+" / "-" for the hosts whose delta upserts / deletes the FIP."""
        out = {}
        for h, cs in deltas.items():
            if any(getattr(u, "id", None) == fid for u in cs.upserts):
                out[h] = "+"
            if ("floatingips", fid) in cs.deletes:
                out[h] = "-"
        return out

    fid = ""

    def create():
        nonlocal fid
        fid = ws.create_floatingip(ext, subnet_id=pool, port_id=spare.id).id
    c, d = step(create)
    assert set(d) == {spare.host} and fip_in(d) == {spare.host: "+"}
    assert [f.id for f in local_fips(c, spare.host, c.routers[rid])].count(fid) == 1

    a, b = spare.host, next(h for h in on if h not in (spare.host, other.host))
    c, d = step(lambda: ws.update_port(spare.id, host=b))           # migration within the router's hosts
    assert fip_in(d) == {a: "-", b: "+"}
    assert set(d) <= set(on) | {"network1"}     # the others hold the port (a neighbour): its new binding
    assert fid in {f.id for f in local_fips(c, b, c.routers[rid])}

    x = off[0]
    c, d = step(lambda: ws.update_port(spare.id, host=x))           # to a host the router enters with it
    assert fip_in(d) == {b: "-", x: "+"} and ("routers", rid) in {key_of(u) for u in d[x].upserts}
    c, d = step(lambda: ws.update_floatingip(fid, port_id=other.id))  # re-associated to a VM on a third host
    assert fip_in(d) == {x: "-", other.host: "+"}
    assert set(d) <= {x, other.host}

    c, d = step(lambda: ws.delete_port(other.id))                    # the VM's port deleted
    assert fip_in(d) == {other.host: "-"}
    assert c.floatingips[fid].port_id is None
