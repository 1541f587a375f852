"""The change feed over a real server: immediate answer when behind, long-poll until a change,
timeout with the same revision, many waiters at once."""
from __future__ import annotations

import threading
import time

import httpx
from api_helpers import build_topology, ok, running_server

from dvrnet.api.app import create_app
from dvrnet.wire.codec import cloud_from_json
from waiting import wait_for


def test_long_poll(db_url):
    app = create_app(db_url, feed_poll_interval=0.2)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        ids = build_topology(c)
        v = ok(c.get("/v2.0/dvrnet/hosts/compute1/view"))
        rev = v["revision"]
        view = cloud_from_json(v["cloud"])
        assert view.validate() is view and set(view.hosts) == {"compute1"}

        t0 = time.monotonic()
        assert ok(c.get(f"/v2.0/dvrnet/hosts/compute1/view?since={rev - 1}&wait=10"))["revision"] == rev
        assert time.monotonic() - t0 < 5.0             # behind: answered at once, not after the wait

        t0 = time.monotonic()
        same = ok(c.get(f"/v2.0/dvrnet/hosts/compute1/view?since={rev}&wait=0.5"))
        assert same["revision"] == rev and 0.4 < time.monotonic() - t0 < 8   # held for the wait, then answered

        results: list[tuple[int, float]] = []

        def waiter():
            with httpx.Client(base_url=url, timeout=30) as w:
                t = time.monotonic()
                r = ok(w.get(f"/v2.0/dvrnet/hosts/compute1/view?since={rev}&wait=20"))
                results.append((r["revision"], time.monotonic() - t))
                assert any(f["port_id"] == ids["port"] for f in r["cloud"]["floatingips"])

        threads = [threading.Thread(target=waiter) for _ in range(20)]
        for t in threads:
            t.start()
        feed = app.state.feed
        wait_for(lambda: feed._waiters == 20, 10, "20 long-polls waiting in the feed")
        t_change = time.monotonic()
        ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"], "port_id": ids["port"]}}))
        for t in threads:
            t.join(30)
        assert len(results) == 20 and all(r == rev + 1 for r, _ in results)
        assert time.monotonic() - t_change < 10.0      # woken by the change, well before their 20 s wait


def test_feed_notices_writes_by_another_server(db_url):
    """Two apps on one database: a write through B wakes a waiter on A (revision poller)."""
    a, b = create_app(db_url, feed_poll_interval=0.1), create_app(db_url)
    with running_server(a) as url_a, running_server(b) as url_b, \
            httpx.Client(base_url=url_a, timeout=30) as ca, httpx.Client(base_url=url_b, timeout=30) as cb:
        ok(cb.post("/v2.0/dvrnet/hosts", json={"host": {"name": "h1"}}))
        rev = ok(ca.get("/v2.0/dvrnet/hosts/h1/view"))["revision"]
        out = {}
        t = threading.Thread(target=lambda: out.update(ok(ca.get(f"/v2.0/dvrnet/hosts/h1/view?since={rev}&wait=20"))))
        t.start()
        wait_for(lambda: a.state.feed._waiters == 1, 10, "the long-poll waiting on A")
        t0 = time.monotonic()
        ok(cb.post("/v2.0/networks", json={"network": {"name": "n"}}))
        t.join(30)
        assert out["revision"] == rev + 1 and time.monotonic() - t0 < 10.0   # woken, not timed out (20 s)
        # and A serves the new state (its cache follows the revision)
        assert [n["name"] for n in ok(ca.get("/v2.0/networks"))["networks"]] == ["n"]
