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
from dvrnet.model.changeset import apply, changeset_between
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
    """One FIP created on compute1's router: compute1's view changes by that FIP alone; the other
    hosts get nothing."""
    a = scale_cloud(routers=5, fips=50)
    b = scale_cloud(routers=5, fips=51)
    t = ViewTracker()
    t.advance(a)
    chain, touched = apply(a, changeset_between(a, b))
    deltas = t.advance(chain, touched)
    new_fip = (set(b.floatingips) - set(a.floatingips)).pop()
    port = b.floatingips[new_fip].port_id
    host = b.ports[port].host
    assert set(deltas) <= {host} | {r for r in b.hosts if b.hosts[r].mode.value == "dvr_snat"}
    keys = {(type(u).__name__, getattr(u, "id", None)) for u in deltas[host].upserts}
    assert ("FloatingIP", new_fip) in keys and ("Port", port) in keys and len(keys) == 2
    assert deltas[host].deletes == ()
