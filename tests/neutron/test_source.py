"""NeutronSource (the agent's view from what Neutron sends) against a recorded neutron-server:
the captured payloads served by a stand-in of the four L3 calls, which counts what it is asked.
The real server is exercised end to end in test_neutron_lab.py; here the rules: bursts coalesce,
refusals are logged once and leave the router as it was, failures keep the view and bring a full
sync, ARP casts change neighbours, malformed notifications are dropped by the endpoint."""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest

from dvrnet.neutron.rpc import Event, L3AgentEndpoint, RpcError
from dvrnet.neutron.source import NeutronSource

PAYLOADS = Path(__file__).parent / "payloads"
ROUTER = "81e0b6f4-e7c9-44e8-98b2-af562ef216cd"
SUBNET = "089ca4bc-f292-4a33-bd36-98d3b8f88664"


class Recorded:
    def __init__(self):
        self.routers = {r["id"]: r for r in json.loads((PAYLOADS / "payload-compute1.json").read_text())}
        self.calls: list[tuple] = []
        self.external_calls: list[tuple] = []
        self.tags: dict[str, tuple[str, ...]] = {}
        self.subnets: dict[str, list[dict]] = {}
        self.down = False

    def _c(self, *call):
        self.calls.append(call)
        if self.down:
            raise RpcError(f"{call[0]}: no answer from neutron-server within 1s")

    def get_router_ids(self):
        self._c("get_router_ids")
        return list(self.routers)

    def sync_routers(self, ids):
        self._c("sync_routers", tuple(ids))
        return [copy.deepcopy(self.routers[i]) for i in ids if i in self.routers]

    def get_ports_by_subnet(self, sid):
        self._c("get_ports_by_subnet", sid)
        return [{"id": "vm-a", "network_id": "58111f6b-82e1-43a5-bdf7-7fc1472a3edf", "device_owner": "compute:nova",
                 "mac_address": "fa:16:3e:00:00:0a", "fixed_ips": [{"subnet_id": sid, "ip_address": "10.0.1.10"}]}]

    def get_agent_gateway_port(self, net):
        self._c("get_agent_gateway_port", net)

    def get_local_port_ids(self):
        self._c("get_local_port_ids")
        return set()

    # routed mode's reads (tags, service types), recorded apart: the rules above count L3 calls
    def get_networks(self, ids):
        self.external_calls.append(("get_networks", tuple(ids)))
        if self.down:
            raise RpcError("get_networks: no answer from neutron-server within 1s")
        return [{"id": i, "tags": list(self.tags.get(i, ()))} for i in ids]

    def get_subnets(self, net):
        self.external_calls.append(("get_subnets", net))
        if self.down:
            raise RpcError("bulk_pull: no answer from neutron-server within 1s")
        return copy.deepcopy(self.subnets.get(net, []))


@pytest.fixture
def rec():
    return Recorded()


def src(rec, **kw) -> NeutronSource:
    return NeutronSource(rec, "compute1", "dvr", coalesce_window=0.05, wait=0.2, max_backoff=0.2, **kw)


def neighbours(view) -> set[tuple[str, str]]:
    from dvrnet.plan import plan_host
    ns = plan_host(view.cloud, "compute1").namespaces[f"qrouter-{ROUTER}"]
    return {(n.ip, n.mac) for n in ns.neighbours}


def test_start_is_a_full_sync_and_a_burst_is_one_fetch(rec):
    s = src(rec)
    v = s.next_view(None)
    assert v is not None and ROUTER in v.cloud.routers
    assert [c[0] for c in rec.calls] == ["get_router_ids", "sync_routers", "get_ports_by_subnet"]
    rec.calls.clear()
    for _ in range(20):
        s.notify(Event("routers_updated", (ROUTER,)))
    v2 = s.next_view(v.revision)
    assert v2.revision == v.revision + 1
    assert rec.calls == [("sync_routers", (ROUTER,))], rec.calls      # one fetch, ports already known


def test_refused_router_is_logged_once_and_left_as_it_was(rec, caplog):
    s = src(rec)
    v = s.next_view(None)
    before = v.cloud.routers[ROUTER]
    rec.routers[ROUTER]["routes"] = [{"destination": "10.9.0.0/24", "nexthop": "10.0.1.5"}]
    with caplog.at_level(logging.ERROR, "dvrnet.neutron"):
        for _ in range(3):
            s.notify(Event("routers_updated", (ROUTER,)))
            v = s.next_view(v.revision)
    assert "extra routes" in s.refused[ROUTER]
    assert sum("refused" in r.message for r in caplog.records if r.name == "dvrnet.neutron") == 1   # not oslo's "Connection refused" of an earlier test's transport
    assert v.cloud.routers[ROUTER] is before             # the last good graph stays


def test_server_away_keeps_the_view_then_full_sync(rec):
    s = src(rec)
    v = s.next_view(None)
    rec.down = True
    s.notify(Event("routers_updated", (ROUTER,)))
    v2 = s.next_view(v.revision)
    assert v2.cloud is v.cloud and s.stats.failures == 1
    rec.down = False
    rec.calls.clear()
    for _ in range(20):
        v3 = s.next_view(v2.revision)
        if v3.revision != v2.revision:
            break
    assert rec.calls[0] == ("get_router_ids",), rec.calls      # what was missed: fetched in full


def test_router_removed_and_arp_entries(rec):
    s = src(rec)
    v = s.next_view(None)
    assert ("10.0.1.10", "fa:16:3e:00:00:0a") in neighbours(v)
    s.notify(Event("add_arp_entry", (), {"router_id": ROUTER, "subnet_id": SUBNET, "ip_address": "10.0.1.20",
                                         "mac_address": "fa:16:3e:00:00:14"}))
    v = s.next_view(v.revision)
    assert ("10.0.1.20", "fa:16:3e:00:00:14") in neighbours(v)
    s.notify(Event("del_arp_entry", (), {"router_id": ROUTER, "subnet_id": SUBNET, "ip_address": "10.0.1.20",
                                         "mac_address": "fa:16:3e:00:00:14"}))
    v = s.next_view(v.revision)
    assert ("10.0.1.20", "fa:16:3e:00:00:14") not in neighbours(v)
    s.notify(Event("router_removed_from_agent", (ROUTER,)))
    v = s.next_view(v.revision)
    assert ROUTER not in v.cloud.routers and not v.cloud.floatingips


def test_endpoint_drops_malformed_notifications(caplog):
    got = []
    ep = L3AgentEndpoint(got.append)
    with caplog.at_level(logging.ERROR, "dvrnet.neutron"):
        ep.routers_updated({}, routers=[{"no": "id"}])
        ep.add_arp_entry({}, payload={"router_id": "r", "arp_table": {"ip_address": "10.0.0.1"}})
        ep.router_removed_from_agent({}, payload="nonsense")
        ep.fipnamespace_delete_on_ext_net({}, ext_net_id=7)
    assert got == []
    assert len([r for r in caplog.records if "malformed" in r.message]) == 4
    ep.routers_updated({}, routers=["r1", {"id": "r2"}])
    ep.router_added_to_agent({}, payload=["r3"])
    assert got == [Event("routers_updated", ("r1", "r2")), Event("router_added_to_agent", ("r3",))]


def test_a_fetched_router_is_a_changeset_against_the_model(rec):
    """The model is changed by the fetched router's ChangeSet (assemble.py), not rebuilt: after
    a FIP of the router is removed in Neutron, the new Cloud is exactly `cloud_of` of the graphs,
    it shares every unchanged resource with the previous one, and `touched` (since the last view)
    names the FIP (and the VM port only it brought) and index buckets, no other resource."""
    from dvrnet.neutron.translate import cloud_of
    s = src(rec)
    v = s.next_view(None)
    assert s.view_touched is None and s.assembly.snapshots == 1         # the first view: a snapshot
    gone = rec.routers[ROUTER]["_floatingips"].pop()
    s.notify(Event("routers_updated", (ROUTER,)))
    v2 = s.next_view(v.revision)
    assert s.assembly.applied == 1 and s.assembly.snapshots == 1
    assert v2.cloud == cloud_of("compute1", "dvr", list(s.graphs.values()), revision=v2.revision)
    assert gone["id"] in v.cloud.floatingips and gone["id"] not in v2.cloud.floatingips
    kept = [p for p in v2.cloud.ports if p in v.cloud.ports]
    assert kept and all(v2.cloud.ports[p] is v.cloud.ports[p] for p in kept)     # unchanged: the same objects
    touched = s.view_touched
    assert ("floatingips", gone["id"]) in touched
    resources = {k for k in touched if k[0] in ("networks", "subnets", "routers", "ports", "floatingips", "hosts")}
    assert resources <= {("floatingips", gone["id"]), ("ports", gone["port_id"])}, resources
