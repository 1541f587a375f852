"""Neutron's L3 agent protocol over oslo.messaging: what dvrnet's agent calls and what it consumes.

Calls (topic `q-l3-plugin`, exchange `neutron`; `L3Plugin`): `get_router_ids(host)`,
`sync_routers(host, router_ids)`, `get_ports_by_subnet(host, subnet_id)`,
`get_agent_gateway_port(network_id, host)`, `update_floatingip_statuses(router_id, fip_statuses)`;
on a dvr_snat node also ML2's `get_ports_by_vnic_type_and_host` (topic `q-plugin`), the one call
that says which ports are bound to the node (`get_ports_by_subnet` leaves the binding out).
Routed mode needs what `sync_routers` leaves out (translate.py): an external network's tags,
`get_networks(filters={'id': [...]}, fields=['id', 'tags'])` on `q-l3-plugin` (version 1.12), and
its subnets' service types, the resources pull RPC on `q-plugin` (ML2's ResourcesPullRpcCallback,
version 1.1, no namespace in neutron-lib 3.16): `bulk_pull(resource_type='Subnet', version='1.2',
filter_kwargs={'network_id': NET})`, Subnet object primitives with `service_types`.
State reports (topic `q-reports-plugin`; `StateReporter`): `report_state(agent_state={'agent_state':
{...}}, time=...)`, a call the first time (`start_flag`) and whenever the answer matters, else a cast.

Consumed (`L3AgentEndpoint`, one RPC server on topic `l3_agent` with server=host, which covers
the node topic `l3_agent.<host>` and the fanout exchange `l3_agent_fanout`; plus the ML2
`q-agent-notifier-network-update` fanout upstream's agent listens to for MTU changes):
`routers_updated`, `router_deleted`, `router_removed_from_agent`, `router_added_to_agent` (a call:
returning sends the reply), `fipnamespace_delete_on_ext_net`, `add_arp_entry`, `del_arp_entry`,
`agent_updated`, `network_update`. Every one is turned into an `Event` handed to a sink and
returns at once; an argument of the wrong shape is logged and dropped (never raised into
oslo.messaging, never a crash). A method dvrnet does not know is answered by oslo.messaging's
dispatcher (logged, NoSuchMethod for a call) and changes nothing.

Optionally (`[dvrnet] listen_notifications`), Neutron's notification bus: with `[oslo_messaging_notifications]
driver = messagingv2` neutron-server publishes `<resource>.<action>.end` for every API write on
`notifications.info` (what Ceilometer and Designate read). The L3 protocol says nothing when a
subnet is added to (or removed from, or changed on) an external network; `NotificationListener`
turns `subnet.create.end`, `subnet.update.end` and `subnet.delete.end` into a `network_update`
Event for the subnet's network, so the routers on it are fetched again at once instead of at the
next periodic full sync. Each agent reads from a queue of its own (pool `dvrnet-l3-agent.<host>`).

Context: neutron-server rebuilds a RequestContext from the plain dict `agent_context()`.
The executor is oslo.messaging's `threading` one: no eventlet monkey-patching in dvrnet.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

with warnings.catch_warnings():     # oslo.service imports eventlet (unpatched, unused here) and it warns
    warnings.simplefilter("ignore")
    import oslo_messaging as om
    from oslo_config import cfg

from ..model.errors import DvrnetError

log = logging.getLogger("dvrnet.neutron")

EXCHANGE = "neutron"
L3_PLUGIN_TOPIC = "q-l3-plugin"
REPORTS_TOPIC = "q-reports-plugin"
PLUGIN_TOPIC = "q-plugin"
L3_AGENT_TOPIC = "l3_agent"
NETWORK_UPDATE_TOPIC = "q-agent-notifier-network-update"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def agent_context() -> dict:
    """The request context sent with every call: an admin context, as upstream agents send."""
    return {"user_id": None, "project_id": None, "tenant_id": None, "is_admin": True, "roles": ["admin"],
            "request_id": f"req-{uuid.uuid4()}", "read_only": False, "show_deleted": False}


def transport(conf: cfg.ConfigOpts | None, url: str | None = None) -> om.RPCTransport:
    """An RPC transport for URL (or CONF's transport_url: several hosts, TLS via `[oslo_messaging_rabbit]
    ssl` as oslo.messaging supports). Neutron's exchange is `neutron`. CONF defaults to oslo.config's
    global CONF (parsed with no files if nobody parsed it yet)."""
    om.set_transport_defaults(control_exchange=EXCHANGE)
    if conf is None:
        # oslo.messaging registers some of its options (tracing) on the global CONF only
        conf = cfg.CONF
        if conf._args is None:
            conf([], project="dvrnet", default_config_files=[], default_config_dirs=[])
    return om.get_rpc_transport(conf, url=url)


def notification_transport(conf: cfg.ConfigOpts | None, url: str | None = None) -> om.Transport:
    """The transport notifications come on: `[oslo_messaging_notifications] transport_url`, else
    URL, else `[DEFAULT] transport_url` (as neutron-server publishes them)."""
    om.set_transport_defaults(control_exchange=EXCHANGE)
    conf = conf if conf is not None else cfg.CONF
    if conf._args is None:
        conf([], project="dvrnet", default_config_files=[], default_config_dirs=[])
    try:
        own = conf.oslo_messaging_notifications.transport_url      # registered by config.register
    except cfg.NoSuchOptError:
        own = None
    return om.get_notification_transport(conf, url=own or url)


class RpcError(DvrnetError):
    """A call to neutron-server failed (timeout, server away, remote error); names the method."""


class RpcUnsupported(RpcError):
    """neutron-server does not have that method or version (an older release): asking again
    will not help."""


UNSUPPORTED = ("UnsupportedVersion", "NoSuchMethod", "CallbackNotFound")


class L3Plugin:
    """The agent side of `q-l3-plugin` for one HOST."""

    def __init__(self, tr: om.RPCTransport, host: str, timeout: float = 60.0):
        self.host = host
        self.timeout = timeout
        self.client = om.get_rpc_client(tr, om.Target(topic=L3_PLUGIN_TOPIC, exchange=EXCHANGE, version="1.0"))
        self.ml2 = om.get_rpc_client(tr, om.Target(topic=PLUGIN_TOPIC, exchange=EXCHANGE, version="1.0"))

    def _call(self, rpc_version: str, method: str, timeout: float | None = None, client=None, **kw) -> Any:
        cctxt = (client or self.client).prepare(version=rpc_version, timeout=timeout or self.timeout)
        try:
            return cctxt.call(agent_context(), method, **kw)
        except om.MessagingTimeout as e:
            raise RpcError(f"{method}: no answer from neutron-server within {timeout or self.timeout:.0f}s") from e
        except om.MessagingException as e:
            raise RpcError(f"{method}: {type(e).__name__}: {e}") from e
        except om.RemoteError as e:
            cls = RpcUnsupported if e.exc_type in UNSUPPORTED else RpcError
            raise cls(f"{method}: neutron-server answered {e.exc_type}: {e.value}") from e
        except (OSError, ConnectionError) as e:
            raise RpcError(f"{method}: {e}") from e

    def get_router_ids(self) -> list[str]:
        return list(self._call("1.9", "get_router_ids", host=self.host) or [])

    def sync_routers(self, router_ids: list[str] | None) -> list[dict]:
        return list(self._call("1.0", "sync_routers", host=self.host, router_ids=router_ids) or [])

    def get_ports_by_subnet(self, subnet_id: str) -> list[dict]:
        return list(self._call("1.2", "get_ports_by_subnet", host=self.host, subnet_id=subnet_id) or [])

    def get_agent_gateway_port(self, network_id: str) -> dict | None:
        return self._call("1.2", "get_agent_gateway_port", network_id=network_id, host=self.host)

    def get_networks(self, network_ids: list[str]) -> list[dict]:
        """The networks NETWORK_IDS with their `tags` (what routed mode reads)."""
        return list(self._call("1.12", "get_networks", filters={"id": list(network_ids)},
                               fields=["id", "tags"]) or [])

    def get_subnets(self, network_id: str) -> list[dict]:
        """The Subnet objects of NETWORK_ID as primitives (with `service_types`)."""
        return list(self._call("1.1", "bulk_pull", client=self.ml2, resource_type="Subnet", version="1.2",
                               filter_kwargs={"network_id": network_id}) or [])

    def update_floatingip_statuses(self, router_id: str, statuses: dict[str, str]) -> None:
        self._call("1.1", "update_floatingip_statuses", router_id=router_id, fip_statuses=statuses)

    def get_local_port_ids(self) -> set[str]:
        """Ids of the (normal vNIC) ports bound to this host: ML2's `get_ports_by_vnic_type_and_host`
        on `q-plugin` (an L2 agent call; the L3 RPC has none that names a port's host)."""
        cctxt = self.ml2.prepare(version="1.7", timeout=self.timeout)
        try:
            ports = cctxt.call(agent_context(), "get_ports_by_vnic_type_and_host", vnic_type="normal", host=self.host)
        except (om.MessagingException, om.RemoteError, OSError) as e:
            raise RpcError(f"get_ports_by_vnic_type_and_host: {e}") from e
        return {p["id"] for p in ports or () if isinstance(p, dict) and isinstance(p.get("id"), str)}


class StateReporter:
    """`report_state` to `q-reports-plugin`. `report(state, call=True)` returns the server's answer
    ('new', 'alive', 'revived'); a cast returns None."""

    def __init__(self, tr: om.RPCTransport, timeout: float = 30.0):
        self.timeout = timeout
        self.client = om.get_rpc_client(tr, om.Target(topic=REPORTS_TOPIC, exchange=EXCHANGE, version="1.0"))

    def report(self, agent_state: dict, call: bool = False) -> str | None:
        cctxt = self.client.prepare(timeout=self.timeout)
        state = dict(agent_state, uuid=str(uuid.uuid4()))
        kw = {"agent_state": {"agent_state": state},
              "time": dt.datetime.now(dt.UTC).replace(tzinfo=None).strftime(TIME_FORMAT)}
        try:
            if call:
                return cctxt.call(agent_context(), "report_state", **kw)
            cctxt.cast(agent_context(), "report_state", **kw)
        except om.MessagingTimeout as e:
            raise RpcError(f"report_state: no answer within {self.timeout:.0f}s") from e
        except (om.MessagingException, om.RemoteError, OSError) as e:
            raise RpcError(f"report_state: {e}") from e
        return None


# ---- what the server sends ------------------------------------------------------------------

class Malformed(Exception):
    """An RPC argument of the wrong shape; the message names it."""


@dataclass(frozen=True)
class Event:
    """One notification: KIND is the RPC method; ROUTERS the router ids it names (empty when it
    names none); DATA the rest, already checked for shape."""
    kind: str
    routers: tuple[str, ...] = ()
    data: dict = field(default_factory=dict)


def _ids(value: object, what: str) -> tuple[str, ...]:
    """A list of router ids (or of router dicts with an id, the RPC 1.0 form) as a tuple of str."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)):
        raise Malformed(f"{what}: expected a list of router ids, got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, dict) and isinstance(v.get("id"), str):
            out.append(v["id"])
        elif isinstance(v, str):
            out.append(v)
        else:
            raise Malformed(f"{what}: {v!r} is not a router id")
    return tuple(out)


def _arp(payload: object) -> dict:
    if not isinstance(payload, dict):
        raise Malformed("payload: expected a dict")
    t = payload.get("arp_table")
    if not isinstance(t, dict) or not all(isinstance(t.get(k), str) for k in ("ip_address", "mac_address", "subnet_id")):
        raise Malformed("payload.arp_table: needs ip_address, mac_address and subnet_id strings")
    rid = payload.get("router_id")
    return {"router_id": rid if isinstance(rid, str) else None, "ip_address": t["ip_address"],
            "mac_address": t["mac_address"].lower(), "subnet_id": t["subnet_id"]}


class L3AgentEndpoint:
    """The methods neutron-server invokes on an L3 agent (RPC API up to 1.4). Each hands one
    `Event` to SINK and returns; bad arguments are logged and dropped."""

    target = om.Target(version="1.4")

    def __init__(self, sink: Callable[[Event], None]):
        self._sink = sink

    def _emit(self, method: str, build: Callable[[], Event]) -> None:
        try:
            ev = build()
        except (Malformed, TypeError, KeyError, AttributeError) as e:
            log.error("ignoring %s with a malformed argument: %s", method, e)
            return
        try:
            self._sink(ev)
        except Exception:       # the consumer thread must survive whatever the sink does
            log.exception("handling %s failed", method)

    def routers_updated(self, context, routers=None, **_kw):
        self._emit("routers_updated", lambda: Event("routers_updated", _ids(routers, "routers")))

    def router_deleted(self, context, router_id=None, **_kw):
        self._emit("router_deleted", lambda: Event("router_deleted", _ids(router_id, "router_id")))

    def router_removed_from_agent(self, context, payload=None, **_kw):
        self._emit("router_removed_from_agent",
                   lambda: Event("router_removed_from_agent", _ids((payload or {})["router_id"], "payload.router_id")))

    def router_added_to_agent(self, context, payload=None, **_kw):
        # a call: neutron-server waits for this return (and retries without it)
        self._emit("router_added_to_agent", lambda: Event("router_added_to_agent", _ids(payload, "payload")))

    def fipnamespace_delete_on_ext_net(self, context, ext_net_id=None, **_kw):
        def build() -> Event:
            if not isinstance(ext_net_id, str):
                raise Malformed("ext_net_id: expected a network id")
            return Event("fipnamespace_delete_on_ext_net", (), {"network_id": ext_net_id})
        self._emit("fipnamespace_delete_on_ext_net", build)

    def add_arp_entry(self, context, payload=None, **_kw):
        self._emit("add_arp_entry", lambda: Event("add_arp_entry", (), _arp(payload)))

    def del_arp_entry(self, context, payload=None, **_kw):
        self._emit("del_arp_entry", lambda: Event("del_arp_entry", (), _arp(payload)))

    def agent_updated(self, context, payload=None, **_kw):
        self._emit("agent_updated", lambda: Event("agent_updated", (), dict(payload or {})))

    def network_update(self, context, network=None, **_kw):
        def build() -> Event:
            if not isinstance(network, dict) or not isinstance(network.get("id"), str):
                raise Malformed("network: expected a network dict with an id")
            return Event("network_update", (), {"network_id": network["id"]})
        self._emit("network_update", build)


SUBNET_EVENTS = ("subnet.create.end", "subnet.update.end", "subnet.delete.end")
NOTIFICATIONS_POOL = "dvrnet-l3-agent"


class NotificationEndpoint:
    """`info` notifications of Neutron's bus: subnet writes -> `network_update` Events (the
    routers on that network are fetched again); everything else is ignored."""

    filter_rule = om.NotificationFilter(event_type=r"^subnet\.(create|update|delete)\.end$")

    def __init__(self, sink: Callable[[Event], None]):
        self._sink = sink

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        try:
            sub = payload.get("subnet") if isinstance(payload, dict) else None
            net = sub.get("network_id") if isinstance(sub, dict) else None
            if not isinstance(net, str):
                raise Malformed("payload.subnet.network_id: expected a network id")
            self._sink(Event("network_update", (), {"network_id": net, "via": event_type}))
        except Malformed as e:
            log.error("ignoring %s with a malformed payload: %s", event_type, e)
        except Exception:       # the listener thread must survive whatever the sink does
            log.exception("handling %s failed", event_type)
        return om.NotificationResult.HANDLED


class NotificationListener:
    """One notification listener on TOPICS (`<topic>.info`, exchange `neutron`), in a pool of
    this host's own, on the threading executor. start()/stop() as `Consumers`."""

    def __init__(self, ntr: om.Transport, host: str, endpoint: NotificationEndpoint,
                 topics: tuple[str, ...] = ("notifications",)):
        self.listener = om.get_notification_listener(
            ntr, [om.Target(topic=t, exchange=EXCHANGE) for t in topics], [endpoint], executor="threading",
            pool=f"{NOTIFICATIONS_POOL}.{host}")
        self.started = False

    def start(self) -> None:
        if not self.started:
            self.listener.start()
            self.started = True

    def stop(self) -> None:
        if self.started:
            self.listener.stop()
            self.listener.wait()
            self.started = False


class Consumers:
    """The RPC servers of one agent: `l3_agent` (node topic + fanout) and the network-update
    fanout, on oslo.messaging's threading executor. start()/stop() from any thread."""

    def __init__(self, tr: om.RPCTransport, host: str, endpoint: L3AgentEndpoint):
        policy = om.DefaultRPCAccessPolicy
        self.servers = [
            om.get_rpc_server(tr, om.Target(topic=L3_AGENT_TOPIC, server=host, exchange=EXCHANGE), [endpoint],
                              executor="threading", access_policy=policy),
            om.get_rpc_server(tr, om.Target(topic=NETWORK_UPDATE_TOPIC, server=host, exchange=EXCHANGE, fanout=True),
                              [endpoint], executor="threading", access_policy=policy),
        ]
        self._lock = threading.Lock()
        self.started = False

    def start(self) -> None:
        with self._lock:
            if not self.started:
                for s in self.servers:
                    s.start()
                self.started = True

    def stop(self) -> None:
        with self._lock:
            if self.started:
                for s in self.servers:
                    s.stop()
                for s in self.servers:
                    s.wait()
                self.started = False
