"""The agent's reporter (agent/report.py) against a real server over HTTP: the entries of a pass
reach the server; only changes are sent afterwards; a server that is away is caught up when it
is back (everything sent again); a new reporter (an agent restart) removes the rows it does not
stand behind. The pass here is the plan taken as what the kernel holds (a real agent and kernel:
tests/agent/test_real_agent_status.py)."""
from __future__ import annotations

from dataclasses import dataclass

import httpx
from api_helpers import build_topology, free_port, ok, running_server

from dvrnet.agent.report import Reporter
from dvrnet.api.app import create_app
from dvrnet.plan import plan_host
from dvrnet.wire import cloud_from_json


@dataclass
class Pass:
    revision: int
    errors: tuple = ()
    differences: tuple = ()


def view(c):
    body = ok(c.get("/v2.0/dvrnet/hosts/compute1/view"))
    return body["revision"], cloud_from_json(body["cloud"])


def statuses(c):
    return {f["id"]: f["status"] for f in ok(c.get("/v2.0/floatingips"))["floatingips"]}


def test_reporter_sends_changes_and_catches_up_after_the_server_was_away(db_url):
    port = free_port()
    with running_server(create_app(db_url), port) as url, httpx.Client(base_url=url, timeout=10) as c:
        ids = build_topology(c)
        f1 = ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"],
                                                                 "port_id": ids["port"]}}))["floatingip"]
        rep = Reporter(url, "compute1", max_backoff=0.5)
        try:
            rev, cloud = view(c)
            desired = plan_host(cloud, "compute1")
            rep.on_pass(cloud, Pass(rev), desired, desired)
            assert rep.flush(10)
            assert statuses(c) == {f1["id"]: "ACTIVE"}
            first = rep.reports
            rep.on_pass(cloud, Pass(rev), desired, desired)      # nothing changed: nothing sent
            assert rep.flush(10) and rep.reports == first
        except BaseException:
            rep.close()
            raise
    # the server is away: a pass with a new FIP cannot be reported, and is once it is back
    with running_server(create_app(db_url), port) as url, httpx.Client(base_url=url, timeout=10) as c:
        f2 = ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"]}}))["floatingip"]
        vm2 = ok(c.post("/v2.0/ports", json={"port": {"network_id": ids["net"], "device_owner": "compute:nova",
                                                      "binding:host_id": "compute1", "name": "vm2"}}))["port"]
        f2 = ok(c.put(f"/v2.0/floatingips/{f2['id']}", json={"floatingip": {"port_id": vm2["id"]}}))["floatingip"]
        rev, cloud = view(c)
    try:
        desired = plan_host(cloud, "compute1")
        rep.on_pass(cloud, Pass(rev), desired, desired)
        assert not rep.flush(1.5)                               # nobody listens on the port now
        with running_server(create_app(db_url), port) as url, httpx.Client(base_url=url, timeout=10) as c:
            assert rep.flush(15), "the reporter did not catch up with the server back"
            assert statuses(c) == {f1["id"]: "ACTIVE", f2["id"]: "ACTIVE"}
    finally:
        rep.close()

    # an agent restart: the new reporter sends everything again and removes what it does not serve
    with running_server(create_app(db_url), port) as url, httpx.Client(base_url=url, timeout=10) as c:
        ok(c.put(f"/v2.0/floatingips/{f2['id']}", json={"floatingip": {"port_id": None}}))
        rev, cloud = view(c)
        held = ok(c.get("/v2.0/dvrnet/hosts/compute1/status"))["status"]["reported"]["floatingips"]
        assert sorted(held) == sorted([f1["id"], f2["id"]])      # the old reporter never saw it go
        rep2 = Reporter(url, "compute1")
        try:
            desired = plan_host(cloud, "compute1")
            rep2.on_pass(cloud, Pass(rev), desired, desired)
            assert rep2.flush(10)
            assert ok(c.get("/v2.0/dvrnet/hosts/compute1/status"))["status"]["reported"]["floatingips"] == [f1["id"]]
            assert statuses(c) == {f1["id"]: "ACTIVE", f2["id"]: "DOWN"}
        finally:
            rep2.close()
