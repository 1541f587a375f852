"""Answers from a server's own recent writes (`api/recent.py`) are the database's answers, byte
for byte, and are given only when that is provable. Random Workspace walks are written through a
real Store (SQLite file) with a `Recent` as its commit listener, and sometimes through a second
Store on the same file (another server: its writes are not in the first one's memory); halfway,
the database is restored from a backup taken earlier while the `Recent` lives on (a server that
keeps running while its database is restored under it: the lost revisions' numbers come again,
with other stamps). After every write, for every host and each cursor it was handed in the last
revisions: `Recent.answer` at a fresh head is None or exactly the database path's bytes; it is
not None when every revision since the cursor is one of the first Store's writes on the cursor's
timeline (within what it keeps); and it is None whenever the database answers with a snapshot.
`Recent.woken` (no head read), asked at each write that is news for a host (numbered above every
one heard of, changing its view) for its cursors whose long-poll waits from the newest revision
heard of (parked: `Recent.parks` when handed out; or after a head read there), with the highest
revision heard of: None whenever the newest write is
another server's, else exactly `answer`'s bytes (or None only where the log's floor may pass the
cursor)."""
from __future__ import annotations

import random
import sqlite3

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.unit.test_plan_incremental import Walk

from dvrnet.api.changes import answer, encode_body, parse_since
from dvrnet.api.recent import Recent
from dvrnet.api.service import Service
from dvrnet.store import Change, Store
from waiting import wait_for

KEEP = 6


def _backup(src: str, dst: str) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.integers(0, 100_000))
@example(0)
def test_recent_answers_are_the_databases(tmp_path_factory, seed):
    rnd = random.Random(seed)
    d = tmp_path_factory.mktemp("recent")
    path = str(d / "dvrnet.db")
    url = f"sqlite:///{path}"
    w = Walk(rnd)
    log_keep = rnd.choice([3, 40])                  # 3: the log's floor passes cursors memory still holds
    recent = Recent(keep=KEEP, log_keep=log_keep)
    store, other = Store(url, change_log_revisions=log_keep), Store(url, change_log_revisions=log_keep)
    store.add_commit_listener(recent.record)
    svc = Service(store)
    own: dict[int, str] = {}             # revision -> stamp, of the first store's writes (this timeline)
    cursors: dict[str, list[str]] = {}
    counts = {"served": 0, "fallback": 0, "snapshot": 0, "foreign": 0, "woken": 0}
    latest = 0                              # Feed.latest: the highest revision heard of, only grows
    host_rev: dict[str, int] = {}           # Feed.host_revision: what wakes a host's long-poll
    parkable: set[str] = set()              # cursors whose long-poll parks (Recent.parks) when handed out
    concerned: dict[int, frozenset[str]] = {}

    def listen(*stores: Store) -> None:
        for x in stores:
            x.add_change_listener(lambda rev, hosts: concerned.__setitem__(rev, hosts))
    listen(store, other)
    try:
        for step in range(36):
            w.step()
            if step == 8:
                _backup(path, str(d / "backup.db"))
            if step == 20:                                  # restored under the running server
                store.close()
                other.close()
                _backup(str(d / "backup.db"), path)
                store, other = Store(url, change_log_revisions=log_keep), Store(url, change_log_revisions=log_keep)
                store.add_commit_listener(recent.record)
                svc = Service(store)
                listen(store, other)
                head = store.head()
                own = {r: s for r, s in own.items() if r <= head.revision}
            foreign = rnd.random() < 0.2
            _, after = (other if foreign else store).write(lambda s: Change(None, w.c()))
            head = store.head()
            before_rev = dict(host_rev)
            fresh = store.head().revision == latest    # a head read before waiting is at the newest heard of
            news = False
            if after.revision > latest:           # a number at or below it (a restore's) is not news
                latest = after.revision
                news = True
                for h in concerned[after.revision]:
                    host_rev[h] = max(host_rev.get(h, 0), after.revision)
            if foreign:
                counts["foreign"] += 1
            else:
                assert head.revision == after.revision
                own[head.revision] = head.stamp
            for h in sorted(after.cloud.hosts):
                body, _ = answer(svc, h, None)
                mine = cursors.setdefault(h, [])
                mine.append(body["cursor"])
                if recent.parks(h, parse_since(body["cursor"]), latest):     # its long-poll would park
                    parkable.add(body["cursor"])
                for text in mine[-10:]:
                    cursor = parse_since(text)
                    assert cursor is not None
                    want, empty = answer(svc, h, cursor)
                    got = recent.answer(h, cursor, head)
                    # asked only of a parked long-poll when news wakes it: this write is the first above
                    # its cursor to change its view
                    # (parked at it, or waiting after a head read at the newest heard of)
                    wakes = news and h in concerned[after.revision] and (
                        fresh or (text in parkable and before_rev.get(h, 0) <= cursor.revision))
                    woken = recent.woken(h, cursor, latest) if wakes else None
                    if woken is not None:   # only ever the database's answer at the head it stands for
                        counts["woken"] += 1
                        assert not foreign and latest == head.revision, f"seed {seed} step {step}: {h} from {text}: " \
                            "answered from memory with another server's write the newest heard of"
                        assert got is not None and woken.data == got.data, f"seed {seed} step {step}: {h} from {text}"
                    elif got is not None and latest == head.revision and cursor.revision >= head.revision - log_keep \
                            and wakes:
                        raise AssertionError(f"seed {seed} step {step}: {h} from {text}: provable at the newest, not answered")
                    if want["resync"]:
                        counts["snapshot"] += 1
                        assert got is None, f"seed {seed} step {step}: {h} from {text}: memory answered, the database resyncs"
                        continue
                    provable = cursor.revision >= head.revision - KEEP + 1 and own.get(cursor.revision) == cursor.stamp \
                        and all(r in own for r in range(cursor.revision + 1, head.revision + 1))
                    if got is None:
                        counts["fallback"] += 1
                        assert not provable, f"seed {seed} step {step}: {h} from {text}: provable, not answered"
                        continue
                    counts["served"] += 1
                    assert got.data == encode_body(want), f"seed {seed} step {step}: {h} from {text}\n{got.data.decode()}\n{encode_body(want).decode()}"
                    assert (got.revision, got.empty) == (want["revision"], empty)
    finally:
        store.close()
        other.close()
    assert counts["served"] and counts["fallback"] and counts["snapshot"] and counts["foreign"], counts
    assert counts["woken"] or seed != 0, counts     # seed 0 (always run) answers woken long-polls from memory


def test_the_endpoint_answers_from_memory_only_its_own_writes(db_url):
    """Over HTTP: compute1's long-poll woken by a FIP written through server A is answered from A's
    memory (its counter moves) with exactly the bytes the database path gives for that cursor; the
    next long-poll (nothing new) too; a write through server B (same file) is answered by A from
    the database (A's counter does not move), and B, which wrote it, answers from its memory."""
    import threading

    import httpx
    from api_helpers import build_topology, ok, running_server

    from dvrnet.api.app import create_app

    a, b = create_app(db_url, feed_poll_interval=0.1), create_app(db_url, feed_poll_interval=0.1)
    with running_server(a) as url_a, running_server(b) as url_b, \
            httpx.Client(base_url=url_a, timeout=30) as ca, httpx.Client(base_url=url_b, timeout=30) as cb:
        ids = build_topology(ca)
        ok(ca.post("/v2.0/networks", json={"network": {"name": "a write of A's after the topology"}}))
        path = "/v2.0/dvrnet/hosts/compute1/changes"
        cursor = ok(ca.get(path))["cursor"]
        out: dict = {}

        def poll(c: httpx.Client, since: str, key: str) -> None:
            out[key] = c.get(path, params={"since": since, "wait": 20})
        with httpx.Client(base_url=url_a, timeout=30) as w:
            t = threading.Thread(target=poll, args=(w, cursor, "a"))
            t.start()
            wait_for(lambda: a.state.feed._waiters == 1, 10, "compute1's long-poll waiting on A")
            served = a.state.recent.served
            fip = ok(ca.post("/v2.0/floatingips", json={"floatingip": {
                "floating_network_id": ids["ext"], "port_id": ids["port"]}}))["floatingip"]["id"]
            t.join(30)
        r = out["a"]
        assert r.status_code == 200 and [f["id"] for f in r.json()["upserts"]["floatingips"]] == [fip]
        assert a.state.recent.served > served, "A's own write was not answered from its memory"
        want, _ = answer(a.state.service, "compute1", parse_since(cursor))
        assert r.content == encode_body(want)
        after = r.json()["cursor"]
        served = a.state.recent.served
        again = ok(ca.get(path, params={"since": after}))          # nothing new: from memory too
        assert not again["upserts"] and again["cursor"] == after and a.state.recent.served == served + 1
        ok(cb.delete(f"/v2.0/floatingips/{fip}"))                  # B's write
        served_a, served_b = a.state.recent.served, b.state.recent.served
        gone = ok(ca.get(path, params={"since": after}))
        assert gone["deletes"] == {"floatingips": [fip]} and a.state.recent.served == served_a
        assert ok(cb.get(path, params={"since": after})) == gone and b.state.recent.served == served_b + 1


def test_a_store_does_not_serve_its_cache_for_a_restored_timeline(tmp_path):
    """A database restored from a backup under a running Store, then written by another (as a
    second server would) until it is at the cached revision's number again: the running Store's
    reads and its next write use the database's state, not the cache of the lost timeline (the
    cache is keyed by revision and stamp; by revision alone it served the old cloud)."""
    path = str(tmp_path / "dvrnet.db")
    url = f"sqlite:///{path}"
    w = Walk(random.Random(5))
    store = Store(url)
    try:
        store.write(lambda s: Change(None, w.c()))
        _backup(path, str(tmp_path / "backup.db"))
        lost = Walk(random.Random(6))          # the timeline the restore loses
        for _ in range(3):
            lost.step()
            store.write(lambda s: Change(None, lost.c()))
        cached = store.state()
        _backup(str(tmp_path / "backup.db"), path)
        other = Store(url)
        try:
            again = Walk(random.Random(7))
            while other.current_revision() < cached.revision:
                again.step()
                other.write(lambda s: Change(None, again.c()))
            assert other.current_revision() == cached.revision
            truth = Store(url, migrate=False)
            try:
                want = truth.state().cloud
            finally:
                truth.close()
            assert want != cached.cloud, "the two timelines happen to agree: the test shows nothing"
            assert store.state().cloud == want
            _, after = store.write(lambda s: Change(None, s.cloud))        # a write from the database's state
            assert after.cloud.hosts == want.hosts and after.cloud.networks == want.networks
        finally:
            other.close()
    finally:
        store.close()


def test_a_long_poll_at_the_newest_write_waits_without_a_head_read(db_url):
    """A long-poll whose cursor is at server A's newest write, with nothing newer heard of, waits
    at once (`Recent.parks`: no head read while it waits) and still gets every change: a write
    through server B (same file: A's poller reports it; the answer reads the head) and A's own next
    write (answered without a head read: `Recent.woken`), each with exactly the database path's
    bytes for that cursor. A cursor that is not at A's newest write (B's), or
    that names A's newest revision with another stamp, takes the head read as before (the second
    gets a snapshot)."""
    import threading

    import httpx
    from api_helpers import build_topology, ok, running_server

    from dvrnet.api.app import create_app

    a, b = create_app(db_url, feed_poll_interval=0.1), create_app(db_url, feed_poll_interval=0.1)
    path = "/v2.0/dvrnet/hosts/compute1/changes"
    with running_server(a) as url_a, running_server(b) as url_b, \
            httpx.Client(base_url=url_a, timeout=30) as ca, httpx.Client(base_url=url_b, timeout=30) as cb:
        ids = build_topology(ca)
        cursor = ok(ca.get(path))["cursor"]         # a head read: A knows the database's id
        heads = {"n": 0}
        store_head = a.state.store.head

        def counted():
            heads["n"] += 1
            return store_head()
        a.state.store.head = counted

        def poll_a(since: str) -> httpx.Response:
            out: dict = {}
            with httpx.Client(base_url=url_a, timeout=30) as w:
                t = threading.Thread(target=lambda: out.update(r=w.get(path, params={"since": since, "wait": 20})))
                parked = a.state.recent.parked
                t.start()
                wait_for(lambda: a.state.feed._waiters == 1, 10, "compute1's long-poll waiting on A")
                assert a.state.recent.parked == parked + 1 and heads["n"] == 0, "it read the head to wait"
                yield
                t.join(30)
            assert not t.is_alive()
            yield out["r"]

        # 1. B writes while A's long-poll waits: A's poller wakes it
        g = poll_a(cursor)
        next(g)
        fip = ok(cb.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ids["ext"], "port_id": ids["port"]}}))["floatingip"]["id"]
        r = g.send(None)
        assert r.status_code == 200 and [f["id"] for f in r.json()["upserts"]["floatingips"]] == [fip]
        want, _ = answer(a.state.service, "compute1", parse_since(cursor))
        assert r.content == encode_body(want)
        assert heads["n"] >= 1, "B's write was answered without reading the head"
        after_b = r.json()["cursor"]

        # 2. a cursor at B's write is not at A's newest: the head is read, nothing new, then it waits
        heads["n"] = 0
        parked = a.state.recent.parked
        same = ok(ca.get(path, params={"since": after_b, "wait": 0.3}))
        assert same["cursor"] == after_b and not same["upserts"] and heads["n"] >= 1
        assert a.state.recent.parked == parked

        # 3. A's own write, then a long-poll at it waits without the head and is woken by A's next write
        ok(ca.delete(f"/v2.0/floatingips/{fip}"))
        at_a = ok(ca.get(path, params={"since": after_b}))["cursor"]
        heads["n"] = 0
        g = poll_a(at_a)
        next(g)
        fip2 = ok(ca.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ids["ext"], "port_id": ids["port"]}}))["floatingip"]["id"]
        r = g.send(None)
        assert [f["id"] for f in r.json()["upserts"]["floatingips"]] == [fip2]
        assert heads["n"] == 0, "woken by A's own newest write, it read the head (Recent.woken)"
        want, _ = answer(a.state.service, "compute1", parse_since(at_a))
        assert r.content == encode_body(want)

        # 4. A's newest revision with another stamp: no waiting first; the database's snapshot
        newest = r.json()["cursor"]
        db, rev, stamp = newest.split(":")
        parked = a.state.recent.parked
        other = ok(ca.get(path, params={"since": f"{db}:{rev}:{'0' * len(stamp)}", "wait": 5}))
        assert other["resync"] is True and a.state.recent.parked == parked
