"""Heartbeats are batched: every beat is recorded at once (in memory, `heartbeats()` shows it) and
the unwritten ones reach the database together, in one write per interval, not one per host."""
from __future__ import annotations

from dataclasses import replace

from dvrnet.scenarios.seed import build
from dvrnet.store import Change, Store


def test_beats_of_many_hosts_go_to_the_database_in_one_write(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'dvrnet.db'}")
    cloud = build()
    store.write(lambda s: Change(None, replace(cloud, revision=s.revision)))
    hosts = sorted(cloud.hosts)
    from dvrnet.store import tables as t
    with store.engine.begin() as c:             # as if never seen: only beats set it from here
        c.execute(t.hosts.update().values(heartbeat_at=None))
    writes = []
    import dvrnet.store.store as mod
    real = mod.write_transaction

    def counting(engine):
        writes.append(1)
        return real(engine)
    monkeypatch.setattr(mod, "write_transaction", counting)
    first = store.heartbeat(hosts[0])           # the first beat is written at once
    assert first is not None and len(writes) == 1
    later = [store.heartbeat(h) for h in hosts[1:]]
    assert all(later) and len(writes) == 1      # recorded, not yet written
    assert store.heartbeat(hosts[0]) is None    # too soon for the same host: nothing to do
    shown = store.heartbeats()
    assert all(shown[h] for h in hosts)         # the unwritten beats are shown
    fresh = Store(store.url).heartbeats()       # another server reads the database
    assert fresh[hosts[0]] == first and all(fresh[h] is None for h in hosts[1:])
    assert store.heartbeat(hosts[0], 0.0) is not None and len(writes) == 2   # interval 0: written now, all of them
    fresh = Store(store.url).heartbeats()
    assert all(fresh[h] == b for h, b in zip(hosts[1:], later))
