"""`[dvrnet] listen_notifications`: Neutron's notification bus (what neutron-server publishes with
`[oslo_messaging_notifications] driver = messagingv2`) read by the real oslo.messaging listener
on its in-memory `fake://` driver, and what the source does with what it hears. The real bus of
a real neutron-server is exercised in test_neutron_lab.py (T5: a new external subnet is served
well before the lab's periodic resync)."""
from __future__ import annotations

import threading
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import oslo_messaging as om
from oslo_config import cfg
from test_source import ROUTER, Recorded, src  # tests/neutron is on sys.path (pytest prepend)

from dvrnet.neutron.rpc import EXCHANGE, Event, NotificationEndpoint, NotificationListener

PUBLIC = "47dab4d0-b7ee-4d30-8e5f-534d8ca68f87"      # the external network of the captured payload


@pytest.fixture
def bus():
    conf = cfg.ConfigOpts()
    conf([], project="dvrnet-test", default_config_files=[], default_config_dirs=[])
    om.set_transport_defaults(control_exchange=EXCHANGE)
    tr = om.get_notification_transport(conf, url="fake://")
    yield tr
    tr.cleanup()


class Sink:
    def __init__(self):
        self.events: list[Event] = []
        self.got = threading.Event()

    def __call__(self, ev: Event) -> None:
        self.events.append(ev)
        self.got.set()


def test_subnet_writes_become_network_updates_and_the_rest_is_ignored(bus):
    sink = Sink()
    lst = NotificationListener(bus, "compute1", NotificationEndpoint(sink))
    lst.start()
    try:
        pub = om.Notifier(bus, publisher_id="network.controller", driver="messagingv2", topics=["notifications"])
        pub.info({}, "port.create.end", {"port": {"id": "p", "network_id": PUBLIC}})       # not a subnet
        pub.info({}, "subnet.create.start", {"subnet": {"network_id": PUBLIC}})             # not done yet
        pub.info({}, "subnet.create.end", {"subnet": {"id": "s", "network_id": PUBLIC, "cidr": "100.65.0.0/24"}})
        assert sink.got.wait(10), "the listener delivered nothing"
        pub.info({}, "subnet.delete.end", {"subnet": "nonsense"})                           # malformed: dropped
        sink.got.clear()
        pub.info({}, "subnet.update.end", {"subnet": {"id": "s", "network_id": "other"}})
        assert sink.got.wait(10)
    finally:
        lst.stop()
    assert [(e.kind, e.data["network_id"], e.data["via"]) for e in sink.events] == [
        ("network_update", PUBLIC, "subnet.create.end"), ("network_update", "other", "subnet.update.end")]


def test_a_subnet_write_on_a_routers_external_network_fetches_that_router_only():
    rec = Recorded()
    s = src(rec)
    v = s.next_view(None)
    rec.calls.clear()
    NotificationEndpoint(s.notify).info({}, "network.controller", "subnet.create.end",
                                        {"subnet": {"id": "s", "network_id": PUBLIC}}, {})
    v2 = s.next_view(v.revision)
    assert ("sync_routers", (ROUTER,)) in rec.calls and "get_router_ids" not in {c[0] for c in rec.calls}
    assert v2.revision > v.revision
    rec.calls.clear()
    NotificationEndpoint(s.notify).info({}, "network.controller", "subnet.create.end",
                                        {"subnet": {"id": "s", "network_id": "no-router-here"}}, {})
    s.next_view(v2.revision)
    assert not [c for c in rec.calls if c[0] == "sync_routers"], rec.calls
