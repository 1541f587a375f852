"""Statuses from the agents (issue 17 item 1): `PUT /v2.0/dvrnet/hosts/<host>/status` and what the
API shows from it, on a real server and database.

- a FIP is DOWN until the node serving it reports it for its current association, ACTIVE once
  reported, ERROR with the agent's reason (admin view), DOWN again when disassociated or moved;
- the router gateway port follows its SNAT node's report;
- reports survive a server restart, never move the revision, never wake a long-poll (of the
  reporting host or another), are admin-only, and bad bodies are 400s naming the field;
- two servers on one PostgreSQL database show each other's reports at once;
- a dead agent (no heartbeat for longer than the agent down time) shows alive=false and leaves its
  last statuses.
"""
from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from api_helpers import (
    ADMIN_TOKEN,
    ALICE_TOKEN,
    TestClient,
    build_topology,
    fresh_postgres_db,
    neutron_error,
    ok,
    postgres_server,
    running_server,
)

from dvrnet.api.app import create_app

STATUS = "/v2.0/dvrnet/hosts/{}/status"


def report(c, host, revision, fips=(), ports=(), removed=None, headers=None):
    body = {"status": {"revision": revision, "floatingips": list(fips), "ports": list(ports)}}
    if removed is not None:
        body["status"]["removed"] = removed
    return ok(c.put(STATUS.format(host), json=body, headers=headers or {}))["status"]


def fip_entry(f, status="ACTIVE", reason=None):
    return {"id": f["id"], "status": status, "port_id": f["port_id"], "fixed_ip_address": f["fixed_ip_address"],
            "reason": reason}


def fip_status(c, fid):
    return ok(c.get(f"/v2.0/floatingips/{fid}"))["floatingip"]["status"]


def test_fip_status_follows_the_serving_agents_report(db_url):
    with TestClient(create_app(db_url)) as c:
        ids = build_topology(c)
        f = ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"],
                                                                "port_id": ids["port"]}}))["floatingip"]
        assert f["status"] == "DOWN"                     # associated, but no agent has put it in place
        rev = ok(c.get("/v2.0/dvrnet/cloud"))["revision"]

        # another host's report does not count: compute1 serves it (its VM's node)
        report(c, "network1", rev, [fip_entry(f)])
        assert fip_status(c, f["id"]) == "DOWN"
        answer = report(c, "compute1", rev, [fip_entry(f)])
        assert answer == {"host": "compute1", "revision": rev, "floatingips": 1, "ports": 0, "ignored": []}
        assert fip_status(c, f["id"]) == "ACTIVE"
        assert ok(c.get("/v2.0/dvrnet/cloud"))["revision"] == rev       # a report is no write of the cloud
        assert [x["status"] for x in ok(c.get("/v2.0/floatingips?status=ACTIVE"))["floatingips"]] == ["ACTIVE"]

        # ERROR with the agent's reason, readable in the admin views
        report(c, "compute1", rev, [fip_entry(f, "ERROR", "qrouter-x: nft: EPERM: Operation not permitted")])
        assert fip_status(c, f["id"]) == "ERROR"
        view = ok(c.get(f"/v2.0/dvrnet/floatingips/{f['id']}/status"))["floatingip_status"]
        assert view["status"] == "ERROR" and view["host"] == "compute1"
        assert "EPERM: Operation not permitted" in view["reason"] and view["reported"]["revision"] == rev
        hs = ok(c.get(STATUS.format("compute1")))["status"]
        assert [(x["id"], x["status"]) for x in hs["floatingips"]] == [(f["id"], "ERROR")]
        assert "EPERM" in hs["floatingips"][0]["reason"]

        # a new association is DOWN until reported for it, whatever was reported before
        report(c, "compute1", rev, [fip_entry(f)])
        vm2 = ok(c.post("/v2.0/ports", json={"port": {"network_id": ids["net"], "device_owner": "compute:nova",
                                                      "binding:host_id": "compute1", "name": "vm2"}}))["port"]
        moved = ok(c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": vm2["id"]}}))["floatingip"]
        assert moved["status"] == "DOWN"
        assert "not yet reported" in ok(c.get(f"/v2.0/dvrnet/floatingips/{f['id']}/status"))["floatingip_status"]["reason"]
        report(c, "compute1", rev + 1, [fip_entry(moved)])
        assert fip_status(c, f["id"]) == "ACTIVE"

        # disassociated: DOWN at once; the agent's withdrawal removes its row
        down = ok(c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": None}}))["floatingip"]
        assert down["status"] == "DOWN"
        assert report(c, "compute1", rev + 2, removed={"floatingips": [f["id"]]})["floatingips"] == 0
        # an entry for a resource the server no longer has is ignored, and said so
        assert report(c, "compute1", rev + 2, [{**fip_entry(moved), "id": "gone"}])["ignored"] == ["gone"]


def test_gateway_port_follows_the_snat_nodes_report(db_url):
    with TestClient(create_app(db_url)) as c:
        ids = build_topology(c)
        gw = ok(c.get("/v2.0/ports?device_owner=network:router_gateway"))["ports"][0]
        assert gw["binding:host_id"] == "network1" and gw["status"] == "DOWN"
        vm = ok(c.get(f"/v2.0/ports/{ids['port']}"))["port"]
        assert vm["status"] == "ACTIVE"                 # other ports: bound to a host
        addrs = [x["ip_address"] for x in gw["fixed_ips"]]
        report(c, "network1", 5, ports=[{"id": gw["id"], "status": "ACTIVE", "fixed_ips": addrs}])
        assert ok(c.get(f"/v2.0/ports/{gw['id']}"))["port"]["status"] == "ACTIVE"
        report(c, "network1", 6, ports=[{"id": gw["id"], "status": "ERROR", "fixed_ips": addrs, "reason": "qg- missing"}])
        assert ok(c.get(f"/v2.0/ports/{gw['id']}"))["port"]["status"] == "ERROR"
        hs = ok(c.get(STATUS.format("network1")))["status"]["ports"]
        assert [(p["id"], p["status"], p["reported"]["reason"]) for p in hs] == [(gw["id"], "ERROR", "qg- missing")]
        # a report for other addresses than the port's current ones says nothing of them
        report(c, "network1", 7, ports=[{"id": gw["id"], "status": "ACTIVE", "fixed_ips": ["203.0.113.250"]}])
        assert ok(c.get(f"/v2.0/ports/{gw['id']}"))["port"]["status"] == "DOWN"


def test_reports_survive_a_restart_and_a_dead_agent_keeps_them(db_url):
    with TestClient(create_app(db_url)) as c:
        ids = build_topology(c)
        f = ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"],
                                                                "port_id": ids["port"]}}))["floatingip"]
        report(c, "compute1", 1, [fip_entry(f)])
    with TestClient(create_app(db_url)) as c:
        assert fip_status(c, f["id"]) == "ACTIVE"
        # compute1's agent dies: no heartbeat for longer than the agent down time (75 s)
        store = c.app.state.store
        from dvrnet.store import tables as t
        with store.engine.begin() as conn:
            conn.execute(t.hosts.update().where(t.hosts.c.name == "compute1")
                         .values(heartbeat_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))))
        agents = {a["host"]: a["alive"] for a in ok(c.get("/v2.0/agents"))["agents"]}
        assert agents == {"compute1": False, "network1": True}
        assert fip_status(c, f["id"]) == "ACTIVE"       # its last status stays, as in Neutron
        # its next report is also its heartbeat: alive again
        report(c, "compute1", 2, [fip_entry(f)])
        assert {a["host"]: a["alive"] for a in ok(c.get("/v2.0/agents"))["agents"]}["compute1"] is True


def test_reports_are_admin_only(db_url, tokens_file):
    app = create_app(db_url, auth="token", tokens=tokens_file)
    admin = {"X-Auth-Token": ADMIN_TOKEN}
    with TestClient(app) as c:
        build_topology(c, admin)
        alice = {"X-Auth-Token": ALICE_TOKEN}
        body = {"status": {"revision": 1}}
        neutron_error(c.put(STATUS.format("compute1"), json=body), 401)
        neutron_error(c.put(STATUS.format("compute1"), json=body, headers=alice), 403, "PolicyNotAuthorized")
        neutron_error(c.get(STATUS.format("compute1"), headers=alice), 403, "PolicyNotAuthorized")
        neutron_error(c.get("/v2.0/dvrnet/floatingips/x/status", headers=alice), 403, "PolicyNotAuthorized")
        assert report(c, "compute1", 1, headers=admin)["floatingips"] == 0
        neutron_error(c.put(STATUS.format("nope"), json=body, headers=admin), 404, "HostNotFound")
        neutron_error(c.get("/v2.0/dvrnet/floatingips/nope/status", headers=admin), 404)


def test_bad_reports_name_the_field(db_url):
    with TestClient(create_app(db_url)) as c:
        ids = build_topology(c)
        f = ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"],
                                                                "port_id": ids["port"]}}))["floatingip"]
        good = fip_entry(f)
        cases = [
            ({"revision": 1}, None),
            ({"status": {}}, "status.revision"),
            ({"status": {"revision": -1}}, "status.revision"),
            ({"status": {"revision": True}}, "status.revision"),
            ({"status": {"revision": 1, "floatingips": {}}}, "status.floatingips"),
            ({"status": {"revision": 1, "floatingips": [good, {**good, "status": "UP"}]}}, "status.floatingips[1].status"),
            ({"status": {"revision": 1, "floatingips": [{"id": f["id"], "status": "ACTIVE", "port_id": None}]}},
             "status.floatingips[0].fixed_ip_address"),
            ({"status": {"revision": 1, "floatingips": [{**good, "fixed_ip_address": "10.0.0.300"}]}},
             "status.floatingips[0].fixed_ip_address"),
            ({"status": {"revision": 1, "floatingips": [{**good, "reason": 7}]}}, "status.floatingips[0].reason"),
            ({"status": {"revision": 1, "floatingips": [{**good, "colour": "red"}]}}, "status.floatingips[0]"),
            ({"status": {"revision": 1, "ports": [{"id": "p", "status": "ACTIVE", "fixed_ips": ["x"]}]}},
             "status.ports[0].fixed_ips[0]"),
            ({"status": {"revision": 1, "removed": {"routers": []}}}, "status.removed"),
            ({"status": {"revision": 1, "removed": {"floatingips": [1]}}}, "status.removed.floatingips[0]"),
            ({"status": {"revision": 1, "extra": 1}}, "extra"),
        ]
        for body, field in cases:
            err = neutron_error(c.put(STATUS.format("compute1"), json=body), 400)
            if field is not None:
                assert field in err["message"], (body, err)
        # nothing of a refused report was stored
        assert fip_status(c, f["id"]) == "DOWN"
        assert ok(c.get(STATUS.format("compute1")))["status"]["floatingips"][0]["reported"] is None


def test_a_report_wakes_no_long_poll(db_url):
    """compute1's and network1's long-polls (view and delta feed) wait out their timeout while
    compute1 reports; a real write that concerns compute1 then wakes compute1's at once."""
    app = create_app(db_url, feed_poll_interval=0.1)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        ids = build_topology(c)
        f = ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"],
                                                                "port_id": ids["port"]}}))["floatingip"]
        rev = ok(c.get("/v2.0/dvrnet/cloud"))["revision"]
        cursors = {h: ok(c.get(f"/v2.0/dvrnet/hosts/{h}/changes"))["cursor"] for h in ("compute1", "network1")}
        out: dict = {}

        def wait(name, path, params):
            t0 = time.monotonic()
            with httpx.Client(base_url=url, timeout=30) as w:
                out[name] = (ok(w.get(path, params=params)), time.monotonic() - t0)
        waiters = [threading.Thread(target=wait, args=(f"changes-{h}", f"/v2.0/dvrnet/hosts/{h}/changes",
                                                       {"since": cursors[h], "wait": 3})) for h in cursors]
        waiters += [threading.Thread(target=wait, args=(f"view-{h}", f"/v2.0/dvrnet/hosts/{h}/view",
                                                        {"since": rev, "wait": 3})) for h in cursors]
        for th in waiters:
            th.start()
        time.sleep(0.3)
        for i in range(5):
            report(c, "compute1", rev, [fip_entry(f, "ERROR" if i % 2 else "ACTIVE", "x")])
            report(c, "network1", rev)
        for th in waiters:
            th.join(10)
        for name, (body, took) in out.items():
            assert took >= 2.5, f"{name} answered after {took:.2f} s: woken by a status report"
            assert body["revision"] == rev, name
            if name.startswith("changes"):
                assert not body["resync"] and body["upserts"] == {} and body["deletes"] == {}, name
        assert ok(c.get("/v2.0/dvrnet/cloud"))["revision"] == rev
        assert fip_status(c, f["id"]) == "ACTIVE"

        # the control: a write that concerns compute1 does wake its long-poll (well before 20 s)
        cursor = ok(c.get("/v2.0/dvrnet/hosts/compute1/changes"))["cursor"]
        th = threading.Thread(target=wait, args=("control", "/v2.0/dvrnet/hosts/compute1/changes",
                                                 {"since": cursor, "wait": 20}))
        th.start()
        time.sleep(0.3)
        ok(c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": None}}))
        th.join(25)
        body, took = out["control"]
        touched = body["upserts"].get("floatingips", []) + body["deletes"].get("floatingips", [])
        assert took < 10 and touched, (took, body)


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as url:
        yield url


def test_two_servers_on_postgresql_share_the_reports(postgres):
    """A report through server A: server B shows it at once (the reports' generation moved), its
    compute1 long-poll is not woken (no NOTIFY, no revision), and a restart of both keeps it."""
    with fresh_postgres_db(postgres, f"dvrnet_{uuid.uuid4().hex[:8]}") as db:
        a, b = create_app(db, feed_poll_interval=30), create_app(db, feed_poll_interval=30)
        with running_server(a) as url_a, running_server(b) as url_b, \
                httpx.Client(base_url=url_a, timeout=30) as ca, httpx.Client(base_url=url_b, timeout=30) as cb:
            ids = build_topology(ca)
            f = ok(ca.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"],
                                                                     "port_id": ids["port"]}}))["floatingip"]
            assert fip_status(cb, f["id"]) == "DOWN"
            cursor = ok(cb.get("/v2.0/dvrnet/hosts/compute1/changes"))["cursor"]
            out: dict = {}

            def waiter():
                t0 = time.monotonic()
                out["body"] = ok(cb.get("/v2.0/dvrnet/hosts/compute1/changes", params={"since": cursor, "wait": 3}))
                out["took"] = time.monotonic() - t0
            th = threading.Thread(target=waiter)
            th.start()
            time.sleep(0.3)
            report(ca, "compute1", 1, [fip_entry(f, "ERROR", "seen through A")])
            assert fip_status(cb, f["id"]) == "ERROR"
            view = ok(cb.get(f"/v2.0/dvrnet/floatingips/{f['id']}/status"))["floatingip_status"]
            assert "seen through A" in view["reason"]
            th.join(10)
            assert out["took"] >= 2.5 and out["body"]["upserts"] == {}, out
            report(cb, "compute1", 2, [fip_entry(f)])
            assert fip_status(ca, f["id"]) == "ACTIVE"
        with TestClient(create_app(db)) as c:
            assert fip_status(c, f["id"]) == "ACTIVE"


def test_a_report_applied_to_the_cached_statuses_equals_reading_every_row(tmp_path):
    """`Store.report` applies a report to the cached statuses when they are current
    (`statuses.applied`) instead of reading the table again: after each of a sequence of reports
    of two hosts (upserts, a changed status, removals, a resource reported by both) the result
    equals a full read, and a cache made stale by another writer is read in full."""
    from dvrnet.store import Store
    from dvrnet.store import statuses as S
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        def fip(host, i, status="ACTIVE", rev=1):
            return S.Reported(host, "floatingips", f"f{i}", status, f"p{i}", (f"10.0.0.{i}",), rev,
                              None if status == "ACTIVE" else "not in the kernel")

        def full() -> S.Statuses:
            return store._read(lambda c: S.load(c, S.generation(c)))
        steps = [("compute1", [fip("compute1", i) for i in range(5)], []),
                 ("compute2", [fip("compute2", 3), S.Reported("compute2", "ports", "gw", "ACTIVE", None,
                                                              ("203.0.113.9", "198.51.100.9"), 2, None)], []),
                 ("compute1", [fip("compute1", 2, "ERROR", 3)], [("floatingips", "f4")]),
                 ("compute2", [], [("floatingips", "f3"), ("ports", "gw")]),
                 ("compute1", [], [("floatingips", "f3")])]
        for host, ups, gone in steps:
            out = store.report(host, ups, gone)
            want = full()
            assert out.generation == want.generation and out.by_resource == want.by_resource
            assert store.statuses() is out                  # the cache, not read again
        store._statuses = S.Statuses(0, {})                 # stale (as after another server's report)
        out = store.report("compute1", [fip("compute1", 9)], [])
        assert out.by_resource == full().by_resource
    finally:
        store.close()
