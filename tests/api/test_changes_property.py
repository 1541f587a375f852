"""Nothing lost (issue 11's property): random walks of Workspace operations written through the
real Store (SQLite file), hosts following the delta feed (`api.changes.answer`, what the endpoint
serves) — some of them falling behind for a while — with server restarts (a new Store on the same
file: its change log tracker starts from scratch) and a change log kept only a few revisions
(so laggards get resync answers). After every step, every host that asks has exactly the model a
fresh snapshot of its view gives, and the plan of that model is `plan_host` of the whole cloud."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.test_plan_incremental import Walk

from dvrnet.api.changes import answer, parse_since
from dvrnet.api.service import Service
from dvrnet.model.placement import host_view
from dvrnet.plan import plan_host
from dvrnet.store import Change, Store
from dvrnet.wire.codec import cloud_from_json, cloud_to_json
from dvrnet.wire.delta import take

HOSTS = ("compute1", "compute2", "network1", "network2")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.integers(0, 100_000), st.integers(20, 60))
def test_followers_never_lose_a_change(tmp_path_factory, seed, steps):
    rnd = random.Random(seed)
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'dvrnet.db'}"
    w = Walk(rnd)
    store = Store(url, change_log_revisions=5)
    svc = Service(store)
    store.write(lambda s: Change(None, w.c()))
    followers: dict = {}
    resyncs = 0
    try:
        for _ in range(steps):
            what = w.step()
            store.write(lambda s: Change(None, w.c()))
            if rnd.random() < 0.15:                    # a server restart
                store.close()
                store = Store(url, change_log_revisions=5)
                svc = Service(store)
            full = store.state().cloud
            for h in HOSTS:
                if h not in full.hosts or rnd.random() < 0.3:       # not registered, or lagging this step
                    continue
                cursor, model = followers.get(h, (None, None))
                body, _ = answer(svc, h, parse_since(cursor))
                got = take(model, body)
                model = got.model
                resyncs += got.touched is None and cursor is not None
                followers[h] = (got.cursor, model)
                want = cloud_from_json(cloud_to_json(host_view(full, h)))
                assert model == want, f"seed {seed} after {what}: {h}'s model differs from its view"
                assert plan_host(model, h) == plan_host(full, h), f"seed {seed} after {what}: {h}'s plan"
    finally:
        store.close()
    assert followers, "no host followed"
