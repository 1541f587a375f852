"""NeutronSource's Views as the agent loop consumes them (agent/view.py): the touched keys of each
View, chained over views as the loop does, let the incremental planner (plan/incremental.py) plan
exactly what `plan_host` plans from scratch — along random sequences of Neutron notifications
(routers re-fetched after their payload changed, routers removed and back, neighbours added and
deleted) for several routers sharing the external network, its subnets and the fg- port."""
from __future__ import annotations

import random

import pytest
from test_assemble import variant  # tests/neutron is on sys.path (pytest prepend)
from test_source import Recorded, src

from dvrnet.agent.view import chain
from dvrnet.neutron.rpc import Event
from dvrnet.plan import plan_host
from dvrnet.plan.incremental import HostPlanner


@pytest.mark.parametrize("seed", range(6))
def test_touched_views_plan_what_plan_host_plans(seed, monkeypatch):
    from dvrnet.neutron import source
    monkeypatch.setattr(source, "HAND_ON_TOUCHED", True)
    rng = random.Random(seed)
    rec = Recorded()
    rec.routers = {}
    for k in range(3):
        r = variant(k, rng)
        rec.routers[r["id"]] = r
    s = src(rec)
    planner = HostPlanner("compute1")
    pending: frozenset | None = frozenset()
    since = None
    incremental = 0
    for step in range(30):
        if step:
            x = rng.random()
            k = rng.randrange(3)
            rid = variant(k, rng)["id"]
            if x < 0.2 and rid in rec.routers:
                del rec.routers[rid]
                s.notify(Event("router_removed_from_agent", (rid,)))
            elif x < 0.35:
                ip = f"10.0.1.{60 + rng.randrange(4)}"
                kind = "add_arp_entry" if rng.random() < 0.6 else "del_arp_entry"
                s.notify(Event(kind, (), {"router_id": rid, "subnet_id": "089ca4bc-f292-4a33-bd36-98d3b8f88664",
                                          "ip_address": ip, "mac_address": f"fa:16:3e:aa:00:{int(ip.split('.')[-1]):02x}"}))
            else:
                r = variant(k, rng, green=rng.choice(("yes", "nofips")))
                r["_floatingips"] = [f for f in r["_floatingips"] if rng.random() < 0.7]
                rec.routers[rid] = r
                s.notify(Event("routers_updated", (rid,)))
        view = s.next_view(since)
        assert view is not None
        since = view.revision
        pending = chain(pending, view)
        touched, pending = pending, frozenset()
        incremental += touched is not None
        planned = planner.plan(view.cloud, None, touched)
        assert planned == plan_host(view.cloud, "compute1"), f"seed {seed} step {step}"
    assert planner.fallbacks == 0
    assert incremental >= 25, incremental       # the first view is a snapshot, the rest ChangeSets
