"""Server writes are O(change): the Service hands the store the Workspace's ChangeSet (what the
operation put or dropped), the store writes those rows only and makes the next snapshot with
`changeset.apply`; the full comparison is a debug assertion that tests switch on (conftest)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from dvrnet.api.service import Service
from dvrnet.model import Cloud
from dvrnet.model.changeset import ChangeSet, key_of
from dvrnet.model.placement import view_keys
from dvrnet.ops import Workspace
from dvrnet.scenarios.seed import build
from dvrnet.store import Change, Store


def _seeded(tmp_path) -> tuple[Store, Service]:
    store = Store(f"sqlite:///{tmp_path / 'dvrnet.db'}")
    cloud = build()
    store.write(lambda s: Change(None, replace(cloud, revision=s.revision)))
    return store, Service(store)


def test_service_writes_carry_exactly_what_the_operation_changed(tmp_path, monkeypatch):
    store, svc = _seeded(tmp_path)
    seen: list[ChangeSet] = []
    real = store.write

    def spy(fn, then=None):
        def wrapped(state):
            change = fn(state)
            seen.append(change.changeset)
            return change
        return real(wrapped, then)
    monkeypatch.setattr(store, "write", spy)
    cloud = store.state().cloud
    ext = next(n for n in cloud.networks.values() if n.external)
    red = next(s for s in cloud.subnets.values() if s.name == "red")
    fip, _ = svc.write(lambda txn: txn.ws.create_floatingip(ext.id, subnet_id=red.id, description="one"))
    assert {key_of(o) for o in seen[-1].upserts} == {("floatingips", fip.id)} and not seen[-1].deletes
    svc.write(lambda txn: txn.ws.delete_floatingip(fip.id))
    assert seen[-1].deletes == (("floatingips", fip.id),) and not seen[-1].upserts
    # a compute port on a host that had none: the port and the host's new agent-gateway port
    tenant = next(n for n in cloud.networks.values() if not n.external and cloud.subnets_by_network.get(n.id))
    svc.write(lambda txn: txn.ws.register_host("compute9", "dvr"))
    port, _ = svc.write(lambda txn: txn.ws.create_port(tenant.id, device_owner="compute:nova", device_id="vm9",
                                                      host="compute9"))
    kinds = sorted(key_of(o)[0] for o in seen[-1].upserts)
    after = store.state().cloud
    agw = [p for p in after.ports.values() if p.device_owner == "network:floatingip_agent_gateway"
           and p.device_id == "compute9"]
    assert kinds == ["ports", "ports"] and {key_of(o)[1] for o in seen[-1].upserts} == {port.id, agw[0].id}
    # what was written is what a fresh load of the database reads back
    assert Store(store.url).state().cloud == after


def test_a_changeset_that_misses_a_change_is_caught_by_the_debug_assertion(tmp_path):
    store, _ = _seeded(tmp_path)
    before = store.state().cloud
    fip = next(iter(before.floatingips.values()))
    new = Cloud(dict(before.networks), dict(before.subnets), dict(before.routers), dict(before.ports),
                {k: v for k, v in before.floatingips.items() if k != fip.id}, dict(before.hosts), before.revision + 1)
    assert Store.verify_changesets
    with pytest.raises(AssertionError, match="does not make its snapshot"):
        store.write(lambda s: Change(None, new, changeset=ChangeSet()))
    assert set(store.state().cloud.floatingips) == set(before.floatingips)   # nothing written


def test_without_the_assertion_the_store_writes_the_changeset_only(tmp_path, monkeypatch):
    """The store trusts the ChangeSet (that is what makes a write O(change)): a Change whose cloud
    says more than its ChangeSet gets only the ChangeSet's rows."""
    monkeypatch.setattr(Store, "verify_changesets", False)
    store, _ = _seeded(tmp_path)
    before = store.state().cloud
    a, b = list(before.floatingips.values())[:2]
    new = Cloud(dict(before.networks), dict(before.subnets), dict(before.routers), dict(before.ports),
                {k: v for k, v in before.floatingips.items() if k not in (a.id, b.id)}, dict(before.hosts))
    store.write(lambda s: Change(None, new, changeset=ChangeSet((), (("floatingips", a.id),))))
    reloaded = Store(store.url).state().cloud
    assert a.id not in reloaded.floatingips and b.id in reloaded.floatingips


def test_workspace_snapshots_after_the_first_are_incremental_and_equal_a_full_build():
    ws = Workspace(build())
    first = ws.snapshot()
    ext = next(n for n in first.networks.values() if n.external)
    f = ws.create_floatingip(ext.id)
    snap = ws.snapshot()
    assert snap.floatingips[f.id] == f
    assert snap.networks is not first.networks or snap.networks == first.networks
    full = Cloud(dict(snap.networks), dict(snap.subnets), dict(snap.routers), dict(snap.ports),
                 dict(snap.floatingips), dict(snap.hosts), snap.revision).validate()
    assert snap == full
    # the untouched collections are the previous snapshot's objects, not copies
    assert all(snap.ports[k] is first.ports[k] for k in first.ports)
    cs = ws.take_changes()
    assert {key_of(o) for o in cs.upserts} == {("floatingips", f.id)} and cs.revision == ws.revision
    assert not ws.take_changes()


def test_warm_builds_what_the_first_write_after_a_start_needs(tmp_path):
    """A server started on a database (a new Store on the file): `Service.warm` brings the change
    log's tracker to the snapshot and makes the Service's Workspace of it; the first write then
    uses both (no catch-up, no new Workspace) and its tracker holds the views of the new snapshot."""
    store, _ = _seeded(tmp_path)
    store.close()
    url = f"sqlite:///{tmp_path / 'dvrnet.db'}"
    warm = Store(url)
    try:
        svc = Service(warm)
        assert warm.changelog.tracker.cloud is None
        svc.warm()
        st = warm.state()
        assert warm.changelog.tracker.cloud is st.cloud
        assert svc._ws is not None and svc._ws[0] == st.revision
        ws = svc._ws[1]
        used = []

        def op(txn):
            used.append(txn.ws)
            return txn.ws.register_host("compute9")
        svc.write(op)
        assert used == [ws]
        after = warm.state().cloud
        assert warm.changelog.tracker.cloud is after
        assert all(warm.changelog.tracker.view_keys(h) == view_keys(after, h) for h in after.hosts)
        svc.warm()                     # after a write: nothing to build
        assert warm.changelog.tracker.cloud is after and svc._ws is not None and svc._ws[0] == after.revision
    finally:
        warm.close()


def test_two_loads_of_one_revision_keep_one_cloud(tmp_path):
    """Two readers that loaded the same revision at once (a server just started: the warm-up and
    the first feed answers) keep the first cloud remembered, so what was built on it (indexes, the
    change log's tracker) is not built again for the other."""
    store, _ = _seeded(tmp_path)
    try:
        rev = store.state().revision
        a, b = (store._read(lambda c: store._load(c, rev)) for _ in range(2))
        assert a.cloud is not b.cloud and a.cloud == b.cloud
        stamp = store.head().stamp
        store._held = None
        assert store._remember(b, stamp) is b
        kept = store._remember(a, stamp)
        assert kept.cloud is b.cloud and store._state is kept and store.state().cloud is b.cloud
    finally:
        store.close()
