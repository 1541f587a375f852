"""`NeutronSource`: the agent's view of the cloud, built from what neutron-server sends, change by
change. It answers the agent loop's feed interface (`next_view(since) -> View | None`), so
`dvrnet neutron-agent` runs the very loop, planner, reconciler and ownership of `dvrnet agent`.

What it keeps (memory only; nothing on disk): the raw router dicts of the routers this host
serves, the ports of their tenant subnets (`get_ports_by_subnet`, then `add_arp_entry` /
`del_arp_entry`), the agent-gateway ports it asked for, and each router's translated graph.

How a view changes:
- start, `agent_updated`, a `revived` state report, a reconnection after neutron-server or
  RabbitMQ was away, and every `neutron_resync_interval`: a full sync — `get_router_ids`, then
  `sync_routers` in chunks, and `get_ports_by_subnet` for every tenant subnet;
- notifications (`Event`s from rpc.L3AgentEndpoint) are gathered for `coalesce_window` seconds
  after the first one; then each router they name is fetched once (`sync_routers([ids])`), its
  unseen tenant subnets' ports fetched, and only those routers re-translated: the cost of a change
  is that of the routers it names. The Cloud handed to the planner is changed, not rebuilt: the
  changed routers' graphs become one ChangeSet against what the model holds for them, applied
  with `model.changeset.apply` (assemble.py: the same value as `translate.cloud_of` of all
  graphs, at the cost of the routers and shared groups touched); the touched keys since the last
  view returned are `touched` (None after a snapshot), for the View's `touched`
  (agent/view.py; `HAND_ON_TOUCHED`).
- a router missing from `sync_routers`, `router_deleted` or `router_removed_from_agent` drops it;
- a router dvrnet cannot serve (translate.Refused) is logged at ERROR once per reason, listed in
  `refused`, and left as it is: never planned if it was not, its last good graph kept if it was;
- a graph needing the host's `fg-` port that the payload did not carry asks
  `get_agent_gateway_port` once per external network;
- routed mode (translate.py `ExternalInfo`): the tags of the routers' external networks
  (`get_networks`, one call) and their subnets' service types (`get_subnets`, one call per
  network) are read on every full sync, when an external network is first seen, when a fetched
  router names a subnet of it not read yet, and when a `network_update` names it (a subnet
  notification, with `listen_notifications`); never per FIP change. A tag change notifies nothing
  (Neutron's tag API casts nothing): it is seen at the next full sync (`neutron_resync_interval`).
  A server without these calls (RpcUnsupported) leaves the networks `l2`, logged once.
While calls fail the current view stays (the data plane is left as it is) and the next try waits
a capped, jittered backoff; the first success after a failure runs a full sync.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..agent.view import View
from ..model import Cloud
from ..model.changeset import Key
from ..model.resources import AgentMode
from .assemble import Assembly
from .rpc import Event, RpcError, RpcUnsupported
from .translate import BadAnswer, ExternalInfo, Refused, RouterGraph, external_info, translate_router

log = logging.getLogger("dvrnet.neutron")

SYNC_CHUNK = 64
# touched keys handed to the agent loop (agent.view.View.touched): its incremental planner
# re-plans only the namespaces reading them (False: each View a snapshot to the loop, compared
# with what it planned last, O(n); tests/neutron/test_source_touched.py checks both agree)
HAND_ON_TOUCHED = True


class Plugin:
    """What the source needs from neutron-server (rpc.L3Plugin, or a test double of it)."""
    def get_router_ids(self) -> list[str]: ...
    def sync_routers(self, router_ids: list[str] | None) -> list[dict]: ...
    def get_ports_by_subnet(self, subnet_id: str) -> list[dict]: ...
    def get_agent_gateway_port(self, network_id: str) -> dict | None: ...
    def get_local_port_ids(self) -> set[str]: ...
    def get_networks(self, network_ids: list[str]) -> list[dict]: ...
    def get_subnets(self, network_id: str) -> list[dict]: ...


@dataclass
class SyncStats:
    full_syncs: int = 0
    router_fetches: int = 0          # sync_routers calls
    routers_fetched: int = 0         # router dicts received
    port_fetches: int = 0            # get_ports_by_subnet calls
    network_fetches: int = 0         # get_networks calls (each with get_subnets per network)
    last_change_seconds: float = 0.0
    events: int = 0
    failures: int = 0
    last: dict[str, float] = field(default_factory=dict)


class NeutronSource:
    def __init__(self, plugin: Plugin, host: str, mode: str, coalesce_window: float = 0.2,
                 resync_interval: float = 60.0, wait: float = 5.0, max_backoff: float = 10.0,
                 on_synced: Callable[[set[str]], None] | None = None, create_agent_gateways: bool = True):
        """create_agent_gateways=False: never call get_agent_gateway_port (it creates the port):
        for a look that must change nothing (`dvrnet show`, the lab's checks)."""
        self.plugin = plugin
        self.host = host
        self.mode = AgentMode(mode)
        self.coalesce_window = coalesce_window
        self.resync_interval = resync_interval
        self.wait = wait
        self.max_backoff = max_backoff
        self.on_synced = on_synced          # called with the router ids fetched (FIP status reports)
        self.create_agent_gateways = create_agent_gateways
        self.routers: dict[str, dict] = {}
        self.graphs: dict[str, RouterGraph] = {}
        self.order: dict[str, int] = {}     # router id -> fetch sequence (newest decides shared resources)
        self.ports: dict[str, dict[str, dict]] = {}     # tenant subnet -> ip -> port dict
        self.agent_gateways: dict[str, dict] = {}       # external network -> fg- port dict
        self.external: dict[str, ExternalInfo] = {}     # external network -> tags, service types
        self._external_subnets: dict[str, frozenset[str]] = {}     # ... and the subnets read with them
        self._external_warned: set[str] = set()
        self.refused: dict[str, str] = {}
        self.local_ports: set[str] | None = None        # dvr_snat: the ports bound here (ML2)
        self.stats = SyncStats()
        self.revision = 0
        self.cloud: Cloud | None = None
        self.assembly = Assembly(host, self.mode)
        self.touched: frozenset[Key] | None = None      # since the last view returned (None: snapshot)
        self.view_touched: frozenset[Key] | None = None
        self._seq = 0
        self._events: list[Event] = []
        self._cv = threading.Condition()
        self._full_due = True
        self._next_full = 0.0
        self._retry_at = 0.0
        self._backoff = 0.0

    # ---- notifications ------------------------------------------------------------------------
    def notify(self, ev: Event) -> None:
        """The rpc endpoint's sink: thread-safe, returns at once."""
        with self._cv:
            self._events.append(ev)
            self._cv.notify_all()

    def request_full_sync(self) -> None:
        with self._cv:
            self._full_due = True
            self._cv.notify_all()

    def close(self) -> None:
        pass

    # ---- the feed interface ---------------------------------------------------------------------
    def next_view(self, since: int | None) -> View | None:
        """The current view, newer than SINCE once something changed, or after at most `wait`
        seconds; None until the first full sync succeeded (after waiting the retry delay)."""
        now = time.monotonic()
        if (self._full_due or now >= self._next_full) and now >= self._retry_at:
            self._guarded(self._full_sync)
        if self.cloud is None:
            time.sleep(max(0.0, min(self.wait, self._retry_at - time.monotonic())))
            return None
        if since is None or since != self.revision:
            return self._view()
        with self._cv:
            end = min(time.monotonic() + self.wait, self._next_full)
            while True:
                now = time.monotonic()
                if self._events and now >= self._retry_at:
                    break
                if self._full_due and now >= self._retry_at:
                    return self._view()             # the next call syncs
                until = end if not (self._full_due or self._events) else min(end, self._retry_at)
                if now >= until:
                    return self._view()
                self._cv.wait(until - now)
        if self.coalesce_window:
            time.sleep(self.coalesce_window)         # a burst of routers_updated: one fetch per router
        with self._cv:
            events, self._events = self._events, []
        self._guarded(lambda: self._apply_events(events))
        return self._view()

    def _view(self) -> View | None:
        if self.cloud is None:
            return None
        touched, self.touched = self.touched, frozenset()
        self.view_touched = touched         # what the view would carry as View.touched
        if HAND_ON_TOUCHED:
            return View(self.revision, self.cloud, touched)
        return View(self.revision, self.cloud)

    def _guarded(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except RpcError as e:
            self.stats.failures += 1
            self._backoff = min(self.max_backoff, max(0.5, self._backoff * 2))
            delay = self._backoff * random.uniform(0.8, 1.2)
            self._retry_at = time.monotonic() + delay
            self._full_due = True           # what was missed while away is fetched in full
            log.warning("%s; data plane left as it is, retrying in %.1f s", e, delay)
            return
        if self._backoff:
            log.info("neutron-server answers again")
        self._backoff = 0.0
        self._retry_at = 0.0

    # ---- fetching -----------------------------------------------------------------------------
    def _full_sync(self) -> None:
        t0 = time.perf_counter()
        with self._cv:
            self._full_due = False
            pending, self._events = self._events, []        # a full sync covers them
        try:
            ids = self.plugin.get_router_ids()
            fetched: list[dict] = []
            for i in range(0, len(ids), SYNC_CHUNK):
                fetched += self._sync(ids[i:i + SYNC_CHUNK])
            got = {r["id"] for r in fetched if isinstance(r, dict) and isinstance(r.get("id"), str)}
            self._read_external(fetched, force=True)
            self._read_local_ports()
            old_ports, self.ports = self.ports, {}      # every tenant subnet is read again ...
            try:
                for r in fetched:
                    if isinstance(r, dict):
                        self._ports_for(r)
            except RpcError:
                self.ports = old_ports                  # ... or none is: the views stay consistent
                raise
        except RpcError:
            with self._cv:
                self._events[:0] = pending
            raise
        before = set(self.graphs)
        for rid in list(self.routers):
            if rid not in got:
                self._drop(rid)
        self._take(fetched)
        self.stats.full_syncs += 1
        self._next_full = time.monotonic() + self.resync_interval
        self._publish(set(got), time.perf_counter() - t0, before | set(self.graphs))
        log.info("full sync: %d routers (%d refused) in %.2f s", len(self.graphs), len(self.refused),
                 time.perf_counter() - t0)

    def _read_local_ports(self) -> None:
        """A dvr_snat node gets routers for their SNAT too: which are also local it learns from the
        ports bound here (a dvr node is sent only the routers it serves)."""
        if self.mode is AgentMode.DVR_SNAT:
            self.local_ports = self.plugin.get_local_port_ids()

    def _sync(self, ids: list[str]) -> list[dict]:
        self.stats.router_fetches += 1
        out = self.plugin.sync_routers(ids)
        self.stats.routers_fetched += len(out)
        return out

    def _apply_events(self, events: list[Event]) -> None:
        t0 = time.perf_counter()
        self.stats.events += len(events)
        fetch: list[str] = []
        dropped: set[str] = set()
        touched: set[str] = set()
        stale: set[str] = set()         # external networks whose tags/service types are read again
        for ev in events:
            if ev.kind in ("routers_updated", "router_added_to_agent"):
                fetch += [r for r in ev.routers if r not in fetch]
            elif ev.kind in ("router_deleted", "router_removed_from_agent"):
                for r in ev.routers:
                    dropped.add(r)
                    if r in fetch:
                        fetch.remove(r)
            elif ev.kind in ("add_arp_entry", "del_arp_entry"):
                touched |= self._arp(ev)
            elif ev.kind == "fipnamespace_delete_on_ext_net":
                net = ev.data["network_id"]
                self.agent_gateways.pop(net, None)
                fetch += [rid for rid, g in self.graphs.items() if g.external_network_id == net and rid not in fetch]
            elif ev.kind == "network_update":
                net = ev.data["network_id"]
                fetch += [rid for rid, g in self.graphs.items() if net in g.networks and rid not in fetch]
                if net in self.external:
                    stale.add(net)
            elif ev.kind == "agent_updated":
                self.request_full_sync()
            else:
                log.warning("ignoring notification %s", ev.kind)
        for rid in dropped:
            self._drop(rid)
        if fetch:
            fetched = self._sync(fetch)
            self._read_external(fetched, stale=stale)
            self._read_local_ports()
            got = {r.get("id") for r in fetched if isinstance(r, dict)}
            for rid in fetch:
                if rid not in got:          # not ours (any more)
                    self._drop(rid)
                    dropped.add(rid)
            self._take(fetched)
        retranslate = {rid for rid, g in self.graphs.items() if set(g.tenant_subnet_ids) & touched} - set(fetch)
        for rid in retranslate:
            self._translate(rid)
        kinds: dict[str, int] = {}
        for ev in events:
            kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
        log.info("%s: fetched %d routers, dropped %d, re-translated %d in %.2f s",
                 ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), len(fetch), len(dropped),
                 len(retranslate), time.perf_counter() - t0)
        if fetch or dropped or retranslate:
            self._publish(set(fetch), time.perf_counter() - t0, set(fetch) | dropped | retranslate)

    def _take(self, fetched: Iterable[dict]) -> None:
        for r in fetched:
            if not isinstance(r, dict) or not isinstance(r.get("id"), str):
                log.error("ignoring a router of sync_routers that has no id: %r", r)
                continue
            rid = r["id"]
            self.routers[rid] = r
            self._seq += 1
            self.order[rid] = self._seq
            self._ports_for(r)
            self._translate(rid)

    @staticmethod
    def _external_of(r: dict) -> tuple[str | None, set[str]]:
        """A raw router's external network and the ids of the subnets its payload names there."""
        gw = r.get("gw_port") if isinstance(r, dict) else None
        if not isinstance(gw, dict) or not isinstance(gw.get("network_id"), str):
            return None, set()
        subs = {s.get("id") for k in ("subnets", "extra_subnets") for s in (gw.get(k) or ()) if isinstance(s, dict)}
        return gw["network_id"], {x for x in subs if isinstance(x, str)}

    def _read_external(self, fetched: Iterable[dict], force: bool = False, stale: Iterable[str] = ()) -> None:
        """Tags and subnet service types of the external networks of FETCHED routers: all of them
        (FORCE: a full sync), else those not read yet, those named in STALE, and those whose payload
        names a subnet not read yet. One get_networks, one get_subnets per network."""
        want: set[str] = set(stale)
        named: dict[str, set[str]] = {}
        for r in fetched:
            net, subs = self._external_of(r)
            if net is not None:
                named.setdefault(net, set()).update(subs)
            if net is not None and (force or net not in self.external
                                    or not subs <= self._external_subnets.get(net, frozenset())):
                want.add(net)
        if not want:
            return
        nets = sorted(want)
        try:
            self.stats.network_fetches += 1
            networks = self.plugin.get_networks(nets)
            prims = {n: self.plugin.get_subnets(n) for n in nets}
            info = external_info(networks, prims)
        except RpcUnsupported as e:
            for n in nets:
                if n not in self._external_warned:
                    log.error("neutron-server cannot say network %s's tags or subnet service types (%s): "
                              "treated as an l2 network", n, e)
                    self._external_warned.add(n)
                self.external.setdefault(n, ExternalInfo())
                self._external_subnets[n] = self._external_subnets.get(n, frozenset()) | named.get(n, set())
            return
        except BadAnswer as e:
            log.error("ignoring the answer about networks %s (kept what was known): %s", ", ".join(nets), e)
            return
        for n in nets:
            old = self.external.get(n)
            new = info.get(n, ExternalInfo())
            if old is not None and old.routed != new.routed:
                log.info("external network %s is %s now", n, "routed (tag dvrnet:routed)" if new.routed else "l2")
            self.external[n] = new
            # what was read, and what the payloads named (read with it, even if the answer left it out)
            self._external_subnets[n] = frozenset(named.get(n, set())).union(
                d["versioned_object.data"]["id"] for d in prims[n])

    def _ports_for(self, r: dict) -> None:
        """get_ports_by_subnet for the router's tenant subnets not read yet."""
        for p in r.get("_interfaces") or ():
            if not isinstance(p, dict):
                continue
            for fi in p.get("fixed_ips") or ():
                sid = fi.get("subnet_id") if isinstance(fi, dict) else None
                if isinstance(sid, str) and sid not in self.ports and ":" not in str(fi.get("ip_address", "")):
                    self.stats.port_fetches += 1
                    ports = self.plugin.get_ports_by_subnet(sid)
                    by_ip: dict[str, dict] = {}
                    for port in ports:
                        for x in (port.get("fixed_ips") or ()) if isinstance(port, dict) else ():
                            if isinstance(x, dict) and x.get("subnet_id") == sid and isinstance(x.get("ip_address"), str):
                                by_ip[x["ip_address"]] = port
                    self.ports[sid] = by_ip

    def _arp(self, ev: Event) -> set[str]:
        """add_arp_entry / del_arp_entry: one neighbour of a tenant subnet; returns the subnets changed."""
        sid, ip, mac = ev.data["subnet_id"], ev.data["ip_address"], ev.data["mac_address"]
        by_ip = self.ports.get(sid)
        if by_ip is None:
            return set()                    # a subnet of no router here
        old = by_ip.get(ip)
        if ev.kind == "add_arp_entry":
            if old is not None and str(old.get("mac_address", "")).lower() == mac:
                return set()
            net = next((s.network_id for g in self.graphs.values() for subs in g.subnets.values()
                        for s in subs if s.id == sid), None)
            if net is None:
                return set()
            by_ip[ip] = {"id": (old or {}).get("id") or f"arp-{sid[:8]}-{ip}", "network_id": net,
                         "device_owner": (old or {}).get("device_owner", ""), "device_id": (old or {}).get("device_id", ""),
                         "mac_address": mac, "fixed_ips": [{"subnet_id": sid, "ip_address": ip}]}
            return {sid}
        if old is not None and str(old.get("mac_address", "")).lower() == mac:
            del by_ip[ip]
            return {sid}
        return set()

    def _agent_gateway(self, net: str) -> dict | None:
        if net not in self.agent_gateways:
            p = self.plugin.get_agent_gateway_port(net)
            if isinstance(p, dict):
                self.agent_gateways[net] = p
            else:
                log.error("neutron-server has no agent gateway port for host %s on network %s", self.host, net)
                return None
        return self.agent_gateways[net]

    def _translate(self, rid: str) -> None:
        r = self.routers.get(rid)
        if r is None:
            return
        ports = {sid: list(by_ip.values()) for sid, by_ip in self.ports.items()}
        try:
            g = translate_router(r, self.host, ports, self.agent_gateways, self.local_ports, self.external)
            if self._wants_fg(g) and self._agent_gateway(g.external_network_id or ""):
                g = translate_router(r, self.host, ports, self.agent_gateways, self.local_ports, self.external)
        except Refused as e:
            if self.refused.get(rid) != e.reason:
                log.error("router %s is refused and left as it is: %s", rid, e.reason)
            self.refused[rid] = e.reason
            return
        if rid in self.refused:
            log.info("router %s is served again", rid)
            del self.refused[rid]
        self.graphs[rid] = g

    def _wants_fg(self, g: RouterGraph) -> bool:
        """The router needs this host's fg- port (it is placed here and has a gateway) and the
        payload brought none: ask `get_agent_gateway_port` (which creates it)."""
        if not g.needs_agent_gateway or not self.create_agent_gateways:
            return False
        if self.local_ports is None:
            return True
        return any(p.host == self.host for ps in g.ports_on_subnet.values() for p in ps)

    def _drop(self, rid: str) -> None:
        self.routers.pop(rid, None)
        self.graphs.pop(rid, None)
        self.order.pop(rid, None)
        self.refused.pop(rid, None)

    def _publish(self, fetched: set[str], seconds: float, changed: set[str]) -> None:
        """A new model after the graphs of CHANGED routers changed (added, replaced or dropped)."""
        self.revision += 1
        touched = self.assembly.update(self.graphs, self.order, changed, self.revision)
        self.cloud = self.assembly.cloud
        self.touched = None if touched is None or self.touched is None else self.touched | touched
        self.stats.last_change_seconds = seconds
        if self.on_synced is not None:
            try:
                self.on_synced(fetched)
            except Exception:
                log.exception("on_synced failed")

    # ---- what `report_state` shows --------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        gs = self.graphs.values()
        return {"routers": len(self.graphs),
                "ex_gw_ports": sum(1 for g in gs if g.router.gateway is not None),
                "interfaces": sum(1 for g in gs for p in g.own_ports
                                  if p.device_owner == "network:router_interface_distributed"),
                "floating_ips": sum(len(g.fips) for g in gs)}
