"""NeutronSource in routed mode: when an external network's tags and its subnets' service types
are read (`get_networks`, `get_subnets`), against the answers captured from a real neutron-server
(test_translate_routed.py says how): on every full sync, when a network or one of its subnets is
first seen, on a subnet notification for it; never for a FIP change. A tag change is seen at the
next full sync; a server without the calls leaves the network l2, logged once."""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

from test_source import Recorded  # tests/neutron is on sys.path (pytest prepend)

from dvrnet.neutron.rpc import Event, RpcUnsupported
from dvrnet.neutron.source import NeutronSource
from dvrnet.plan import plan_host

PAYLOADS = Path(__file__).parent / "payloads"
EXT = "9dc2fc77-53a0-4293-a051-bdfd8864d51b"
ROUTER1 = "347c7de8-4fb6-4ca8-8583-25863321c68b"
GREEN = "83e4d7de-a31f-4b73-ab47-1c61c9e9df6a"


def load(name: str):
    return json.loads((PAYLOADS / name).read_text())


def routed() -> Recorded:
    rec = Recorded()
    rec.routers = {r["id"]: r for r in load("routed-sync-compute1.json")}
    rec.tags = {n["id"]: tuple(n["tags"]) for n in load("routed-get-networks.json")}
    rec.subnets = load("routed-bulk-pull-subnets.json")
    rec.get_ports_by_subnet = lambda sid: []        # the stand-in's own port is on the l2 capture's network
    return rec


def src(rec) -> NeutronSource:
    return NeutronSource(rec, "compute1", "dvr", coalesce_window=0.01, wait=0.2, max_backoff=0.2)


def test_full_sync_reads_tags_and_service_types_once():
    rec = routed()
    s = src(rec)
    v = s.next_view(None)
    assert v.cloud.networks[EXT].routed
    assert any(x.routed_private for x in v.cloud.subnets.values())
    assert rec.external_calls == [("get_networks", (EXT,)), ("get_subnets", EXT)]    # two routers, one network
    assert "bird" in plan_host(v.cloud, "compute1").namespaces[f"fip-{EXT}"].processes


def test_fip_changes_read_nothing_more():
    rec = routed()
    s = src(rec)
    v = s.next_view(None)
    rec.external_calls.clear()
    rec.routers[ROUTER1]["_floatingips"].pop()
    s.notify(Event("routers_updated", (ROUTER1,)))
    v2 = s.next_view(v.revision)
    assert v2.revision > v.revision and len(v2.cloud.floatingips) == len(v.cloud.floatingips) - 1
    assert rec.external_calls == []


def test_a_subnet_notification_and_a_new_subnet_read_again():
    rec = routed()
    s = src(rec)
    v = s.next_view(None)
    rec.external_calls.clear()
    s.notify(Event("network_update", (), {"network_id": EXT, "via": "subnet.update.end"}))
    v = s.next_view(v.revision)
    assert rec.external_calls == [("get_networks", (EXT,)), ("get_subnets", EXT)]
    rec.external_calls.clear()
    # a payload naming a subnet not read yet (created without a notification reaching us)
    gw = rec.routers[ROUTER1]["gw_port"]
    extra = copy.deepcopy(gw["extra_subnets"][0])
    extra.update(id="5e1f3c1e-0000-4000-8000-000000000001", cidr="192.0.2.128/25", gateway_ip="192.0.2.129")
    gw["extra_subnets"].append(extra)
    s.notify(Event("routers_updated", (ROUTER1,)))
    s.next_view(v.revision)
    assert rec.external_calls == [("get_networks", (EXT,)), ("get_subnets", EXT)]


def test_tag_change_is_seen_at_the_next_full_sync():
    rec = routed()
    s = src(rec)
    v = s.next_view(None)
    rec.tags[EXT] = ()                           # `openstack network unset --tag dvrnet:routed`: no cast
    s.notify(Event("routers_updated", (ROUTER1,)))
    v = s.next_view(v.revision)
    assert v.cloud.networks[EXT].routed          # not yet: nothing told the agent
    s.request_full_sync()                        # what neutron_resync_interval does
    v = s.next_view(v.revision)
    assert not v.cloud.networks[EXT].routed
    assert s.cloud is not None and not s.cloud.networks[EXT].tags


def test_server_without_the_calls_leaves_the_network_l2(caplog):
    rec = routed()

    def unsupported(ids):
        rec.external_calls.append(("get_networks", tuple(ids)))
        raise RpcUnsupported("get_networks: neutron-server answered UnsupportedVersion: 1.12")
    rec.get_networks = unsupported
    s = src(rec)
    with caplog.at_level(logging.ERROR, "dvrnet.neutron"):
        v = s.next_view(None)
        s.request_full_sync()
        s.next_view(v.revision)
    assert v is not None and not v.cloud.networks[EXT].routed and len(v.cloud.routers) == 2
    assert sum("treated as an l2 network" in r.message for r in caplog.records) == 1


def test_server_away_during_the_read_keeps_the_view():
    rec = routed()
    s = src(rec)
    v = s.next_view(None)
    rec.down = True
    s.notify(Event("network_update", (), {"network_id": EXT}))
    v2 = s.next_view(v.revision)
    assert v2.cloud is v.cloud and s.stats.failures == 1 and s.external[EXT].routed
