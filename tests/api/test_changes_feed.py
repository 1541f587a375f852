"""The per-host delta feed (`GET /v2.0/dvrnet/hosts/<host>/changes`, api/changes.py) over real
servers, on SQLite and on the real PostgreSQL: followers applying the deltas have, after every
write, exactly the host view a snapshot gives; hosts a write does not concern get nothing and are
not woken; old, foreign, future and malformed cursors; several servers woken by NOTIFY."""
from __future__ import annotations

import json
import re
import threading
import time
import uuid

import httpx
import pytest
from api_helpers import build_topology, fresh_postgres_db, neutron_error, ok, postgres_server, running_server

from dvrnet.api.app import create_app
from dvrnet.wire.codec import cloud_from_json
from dvrnet.wire.delta import take
from waiting import wait_for

HOSTS = ("compute1", "compute2", "network1")


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as url:
        yield url


def changes(c: httpx.Client, host: str, cursor: str | None = None, wait: float = 0) -> dict:
    params: dict = {}
    if cursor is not None:
        params["since"] = cursor
    if wait:
        params["wait"] = wait
    return ok(c.get(f"/v2.0/dvrnet/hosts/{host}/changes", params=params))


class Follower:
    """What an agent keeps: its cursor and its model, moved by each answer."""

    def __init__(self, c: httpx.Client, host: str):
        self.host = host
        b = changes(c, host)
        assert b["resync"] is True and b["version"] == 1 and b["reason"]
        self.cursor, self.model = b["cursor"], cloud_from_json(b["cloud"])
        self.resyncs, self.sizes = 0, []

    def take(self, b: dict, size: int) -> None:
        self.sizes.append(size)
        got = take(self.model, b)
        self.cursor, self.model = got.cursor, got.model
        self.resyncs += got.touched is None

    def follow(self, c: httpx.Client) -> dict:
        r = c.get(f"/v2.0/dvrnet/hosts/{self.host}/changes", params={"since": self.cursor})
        b = ok(r)
        self.take(b, len(r.content))
        return b


def snapshot(c: httpx.Client, host: str):
    return cloud_from_json(ok(c.get(f"/v2.0/dvrnet/hosts/{host}/view"))["cloud"])


def _writes(c: httpx.Client, ids: dict) -> list:
    """A sequence of writes of every kind (each a callable), for the followers to follow."""
    state: dict = {}

    def fip():
        state["fip"] = ok(c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ids["ext"], "port_id": ids["port"]}}))["floatingip"]["id"]

    def unrelated_network():
        ok(c.post("/v2.0/networks", json={"network": {"name": "nobody-uses-me"}}))

    def vm_on_compute2():
        state["vm2"] = ok(c.post("/v2.0/ports", json={"port": {"network_id": ids["net"], "device_owner": "compute:nova",
                                                                "binding:host_id": "compute2"}}))["port"]["id"]

    def fip_moves():
        ok(c.put(f"/v2.0/floatingips/{state['fip']}", json={"floatingip": {"port_id": state["vm2"]}}))

    def ext_subnet():
        ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": ids["ext"], "cidr": "192.0.2.0/24"}}))

    def rename_router():
        ok(c.put(f"/v2.0/routers/{ids['router']}", json={"router": {"name": "renamed"}}))

    def fip_gone():
        ok(c.delete(f"/v2.0/floatingips/{state['fip']}"))

    def vm2_gone():
        ok(c.delete(f"/v2.0/ports/{state['vm2']}"))

    def interface_gone():
        ok(c.put(f"/v2.0/routers/{ids['router']}/remove_router_interface", json={"subnet_id": ids["s_priv"]}))

    def interface_back():
        ok(c.put(f"/v2.0/routers/{ids['router']}/add_router_interface", json={"subnet_id": ids["s_priv"]}))

    return [fip, unrelated_network, vm_on_compute2, fip_moves, ext_subnet, rename_router, fip_gone, vm2_gone,
            interface_gone, interface_back]


def _follow_all(urls: list[str]) -> None:
    clients = [httpx.Client(base_url=u, timeout=30) for u in urls]
    try:
        c0 = clients[0]
        ok(c0.post("/v2.0/dvrnet/hosts", json={"host": {"name": "compute2"}}))
        ids = build_topology(c0)
        followers = {h: Follower(clients[-1], h) for h in HOSTS}
        for i, write in enumerate(_writes(c0, ids)):
            before = {h: f.model for h, f in followers.items()}
            write()
            reader = clients[(i + 1) % len(clients)]           # another server than the writer, if any
            for h, f in followers.items():
                b = f.follow(reader)
                assert not b["resync"], f"{write.__name__}: {h} was told to resync: {b['reason']}"
                want = snapshot(reader, h)
                assert f.model == want, f"{write.__name__}: {h}'s model differs from its view"
                if f.model.with_(revision=0) == before[h].with_(revision=0):
                    assert not b["upserts"] and not b["deletes"], f"{write.__name__}: {h} got a change it does not see"
        # what the fan-out numbers are about, on this small cloud: bytes to the hosts
        assert max(followers["compute2"].sizes[:2]) < 300       # a FIP on compute1, a network nobody uses
        assert followers["compute1"].sizes[0] < 4096
    finally:
        for c in clients:
            c.close()


def test_followers_equal_snapshots_sqlite(db_url):
    with running_server(create_app(db_url)) as url:
        _follow_all([url])


def test_followers_equal_snapshots_postgresql_two_servers(postgres):
    with fresh_postgres_db(postgres, f"dvrnet_{uuid.uuid4().hex[:8]}") as db, \
            running_server(create_app(db)) as a, running_server(create_app(db)) as b:
        _follow_all([a, b])


def test_only_concerned_hosts_wake(db_url):
    """A FIP on compute1 wakes compute1's long-poll at once; compute2's and the ones of a host that
    only heartbeats and re-registers (agent state) wait out their timeout with an empty answer."""
    app = create_app(db_url, feed_poll_interval=0.1)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": "compute2"}}))
        ids = build_topology(c)
        cur = {h: changes(c, h)["cursor"] for h in HOSTS}
        out: dict = {}

        def wait(host: str, seconds: float):
            with httpx.Client(base_url=url, timeout=30) as w:
                t = time.monotonic()
                out[host] = (changes(w, host, cur[host], wait=seconds), time.monotonic() - t)

        threads = [threading.Thread(target=wait, args=("compute1", 20)), threading.Thread(target=wait, args=("compute2", 2.5))]
        for t in threads:
            t.start()
        wait_for(lambda: app.state.feed._waiters == len(threads), 10, "the long-polls waiting in the feed")
        ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": "compute2"}}))        # agent state only
        ok(c.get("/v2.0/dvrnet/hosts/compute2/view"))                                 # a heartbeat
        t0 = time.monotonic()
        ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"], "port_id": ids["port"]}}))
        threads[0].join(30)
        woke = time.monotonic() - t0
        threads[1].join(30)
        b1, _ = out["compute1"]
        assert [f["port_id"] for f in b1["upserts"]["floatingips"]] == [ids["port"]] and woke < 10.0       # woken, not timed out (20 s)
        b2, slept = out["compute2"]
        assert not b2["upserts"] and not b2["deletes"] and slept >= 2.3
        assert b2["revision"] == b1["revision"]       # the cursor moved on anyway (O(1) bytes)
        assert len(json.dumps(b2)) < 300


def test_cursors_old_foreign_future_and_malformed(tmp_path):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    app = create_app(db, change_log_revisions=3)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        ids = build_topology(c)
        first = changes(c, "compute1")
        dbid, rev = first["database"], first["revision"]
        assert re.fullmatch(rf"{dbid}:{rev}:[0-9a-f]{{16}}", first["cursor"]), first["cursor"]   # + the revision's stamp
        legacy = changes(c, "compute1", f"{dbid}:{rev}")           # a cursor from before stamps: still a delta
        assert not legacy["resync"] and legacy["cursor"] == first["cursor"]
        other = changes(c, "compute1", f"{dbid}:{rev}:0123456789abcdef")   # revision REV of another timeline
        assert other["resync"] and "another timeline" in other["reason"]
        for i in range(20):                         # > TRIM_EVERY writes: the log keeps the last 3
            ok(c.post("/v2.0/networks", json={"network": {"name": f"n{i}"}}))
        old = changes(c, "compute1", first["cursor"])
        assert old["resync"] and "older than the change log" in old["reason"]
        assert cloud_from_json(old["cloud"]) == snapshot(c, "compute1")
        fresh = changes(c, "compute1", old["cursor"])
        assert not fresh["resync"] and not fresh["upserts"]
        foreign = changes(c, "compute1", f"{uuid.uuid4()}:{rev}")
        assert foreign["resync"] and "cursor of database" in foreign["reason"]
        future = changes(c, "compute1", f"{dbid}:{rev + 10_000}")
        assert future["resync"] and "ahead of this database" in future["reason"]
        for bad in ("12", "x:y", f"{dbid}:-1", f"{dbid}:1.5", ":5", "a b:5", f"{dbid}:" + "9" * 30, f"{dbid}:",
                    f"{dbid}:5:XYZ", f"{dbid}:5:", f"{dbid}:5:ab:cd"):
            err = neutron_error(c.get("/v2.0/dvrnet/hosts/compute1/changes", params={"since": bad}), 400)
            assert "since" in err["message"], err
        neutron_error(c.get("/v2.0/dvrnet/hosts/nope/changes"), 404)
        for wait in ("-1", "abc", "nan"):
            err = neutron_error(c.get("/v2.0/dvrnet/hosts/compute1/changes", params={"since": first["cursor"], "wait": wait}), 400)
            assert "wait" in err["message"], err
        keep = fresh["cursor"]
        ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"], "port_id": ids["port"]}}))
    # a restarted server on the same database continues the same log (same identity)
    with running_server(create_app(db)) as url, httpx.Client(base_url=url, timeout=30) as c:
        b = changes(c, "compute1", keep)
        assert not b["resync"] and b["database"] == dbid and len(b["upserts"]["floatingips"]) == 1


def test_postgresql_notify_wakes_a_long_poll_on_another_server(postgres):
    """A write through B wakes compute1's long-poll on A within a second, although A polls only
    every 30 s (so the wake came from NOTIFY); a write that does not concern compute1 does not."""
    with fresh_postgres_db(postgres, f"dvrnet_{uuid.uuid4().hex[:8]}") as db:
        a, b = create_app(db, feed_poll_interval=30), create_app(db, feed_poll_interval=30)
        with running_server(a) as url_a, running_server(b) as url_b, \
                httpx.Client(base_url=url_a, timeout=40) as ca, httpx.Client(base_url=url_b, timeout=40) as cb:
            ids = build_topology(cb)
            cursor = changes(ca, "compute1")["cursor"]
            out: dict = {}

            def waiter():
                t = time.monotonic()
                out["b"] = changes(ca, "compute1", cursor, wait=20)
                out["t"] = time.monotonic() - t
            th = threading.Thread(target=waiter)
            th.start()
            wait_for(lambda: a.state.feed._waiters == 1, 10, "the long-poll waiting on A")
            ok(cb.post("/v2.0/networks", json={"network": {"name": "nobody"}}))      # concerns no host
            time.sleep(1.0)
            assert th.is_alive(), "woken by a write that does not concern compute1"
            t0 = time.monotonic()
            ok(cb.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"], "port_id": ids["port"]}}))
            th.join(30)
            # woken by NOTIFY: A polls only every 30 s and the long-poll waits 20 s
            assert time.monotonic() - t0 < 10.0 and out["b"]["upserts"]["floatingips"]


def test_sqlite_two_servers_wake_by_polling(db_url):
    """On SQLite (no NOTIFY) a write through B reaches compute1's long-poll on A by A's poller,
    and only compute1's: compute2's waits out its timeout."""
    a, b = create_app(db_url, feed_poll_interval=0.1), create_app(db_url)
    with running_server(a) as url_a, running_server(b) as url_b, \
            httpx.Client(base_url=url_a, timeout=30) as ca, httpx.Client(base_url=url_b, timeout=30) as cb:
        ok(cb.post("/v2.0/dvrnet/hosts", json={"host": {"name": "compute2"}}))
        ids = build_topology(cb)
        cur = {h: changes(ca, h)["cursor"] for h in ("compute1", "compute2")}
        out: dict = {}

        def wait(host: str, seconds: float):
            with httpx.Client(base_url=url_a, timeout=30) as w:
                t = time.monotonic()
                out[host] = (changes(w, host, cur[host], wait=seconds), time.monotonic() - t)
        threads = [threading.Thread(target=wait, args=("compute1", 20)), threading.Thread(target=wait, args=("compute2", 2.5))]
        for t in threads:
            t.start()
        wait_for(lambda: a.state.feed._waiters == len(threads), 10, "the long-polls waiting on A")
        t0 = time.monotonic()
        ok(cb.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"], "port_id": ids["port"]}}))
        threads[0].join(30)
        woke = time.monotonic() - t0
        threads[1].join(30)
        assert out["compute1"][0]["upserts"]["floatingips"] and woke < 10.0       # woken, not timed out (20 s)
        assert not out["compute2"][0]["upserts"] and out["compute2"][1] >= 2.3
