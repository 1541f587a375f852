"""`dvrnet neutron-agent`: the node agent as the L3 agent of a real neutron-server.

Threads (all daemons of this process; the kernel is only ever touched by the main one):
- main: `agent.loop.Agent` — the loop of `dvrnet agent` (incremental planner, reconciler,
  ownership, full kernel reads every `resync_interval`), fed by `source.NeutronSource`;
- oslo.messaging's consumer threads: notifications become `Event`s queued in the source (with
  `[dvrnet] listen_notifications`, also subnet writes read from Neutron's notification bus);
- `state`: `report_state` every `[AGENT] report_interval` (the first with `start_flag`, each a
  call, as upstream's agent does); a `revived` answer, a `new` one (the agent row was created just
  now: a sync before it found no routers for this host — ports bound before the agent started),
  or the first success after failures (RabbitMQ or neutron-server was away and notifications may
  have been lost), asks for a full sync;
- `status`: `update_floatingip_statuses` per router, from the kernel as read back after each pass
  (`status.fip_statuses`); a failed report is retried with the newest statuses.
Stopping (SIGTERM) leaves the data plane exactly as it is. Nothing is stored on disk.
"""
from __future__ import annotations

import logging
import threading
import time

from ..agent.loop import Agent, PassReport
from ..plan.state import HostState
from .config import AgentConfig
from .rpc import (
    Consumers,
    L3AgentEndpoint,
    L3Plugin,
    NotificationEndpoint,
    NotificationListener,
    RpcError,
    StateReporter,
    notification_transport,
    transport,
)
from .source import NeutronSource
from .status import changed, fip_statuses

log = logging.getLogger("dvrnet.neutron")


def switch_for(conf: AgentConfig):
    """The node's Open vSwitch (kernel/ovs.py) with an OVS port kind (interface_driver =
    openvswitch): the ovs-vswitchd of `[dvrnet] bridge_netns`, its database `[OVS]
    ovsdb_connection`; None with the Linux kinds."""
    if conf.ovs_db is None:
        return None
    from ..kernel.ovs import Switch
    return Switch(netns=conf.plan.bridge_netns, db=conf.ovs_db)


class NeutronAgent:
    def __init__(self, conf: AgentConfig, transport_url: str | None = None, ready_file: str | None = None,
                 oslo_conf=None):
        self.conf = conf
        self.transport = transport(oslo_conf, transport_url)
        self.plugin = L3Plugin(self.transport, conf.host, timeout=conf.rpc_timeout)
        self.reporter = StateReporter(self.transport, timeout=min(conf.rpc_timeout, max(conf.report_interval, 5.0)))
        self.source = NeutronSource(self.plugin, conf.host, conf.mode, coalesce_window=conf.coalesce_window,
                                    resync_interval=conf.neutron_resync_interval, max_backoff=conf.max_backoff,
                                    on_synced=self._synced)
        self.consumers = Consumers(self.transport, conf.host, L3AgentEndpoint(self.source.notify))
        self.notifications = None
        if conf.listen_notifications:
            self.notifications = NotificationListener(notification_transport(oslo_conf, transport_url), conf.host,
                                                      NotificationEndpoint(self.source.notify),
                                                      conf.notification_topics)
        self.agent = Agent(conf.host, self.source, conf.plan, resync_interval=conf.resync_interval,
                           ready_file=ready_file, on_pass=self._on_pass,
                           adopt_neutron_state=conf.adopt_neutron_state, switch=switch_for(conf))
        self.stop = self.agent.stop
        self._lock = threading.Lock()
        self._refetched: set[str] = set()
        self._sent: dict[str, dict[str, str]] = {}
        self._pending: dict[str, dict[str, str]] = {}
        self._wake = threading.Event()
        self._sending = False
        self.state_answers: list[str] = []

    # ---- FIP statuses -------------------------------------------------------------------------
    def _synced(self, routers: set[str]) -> None:
        self._refetched |= routers

    def _on_pass(self, report: PassReport, desired: HostState, observed: HostState) -> None:
        now = fip_statuses(self.source.graphs.values(), observed, self.conf.plan.netns_prefix)
        with self._lock:
            todo = changed(self._sent, now, self._refetched & set(now))
            self._refetched.clear()
            self._pending.update(todo)
        if todo:
            self._wake.set()

    def _status_loop(self) -> None:
        backoff = 0.0
        while not self.stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                todo, self._pending = self._pending, {}
                self._sending = bool(todo)
            for rid, st in todo.items():
                try:
                    self.plugin.update_floatingip_statuses(rid, st)
                except RpcError as e:
                    log.warning("reporting FIP statuses of router %s: %s", rid, e)
                    with self._lock:
                        self._pending.setdefault(rid, st)       # newer statuses win
                    backoff = min(self.conf.max_backoff, max(0.5, backoff * 2))
                    continue
                backoff = 0.0
                with self._lock:
                    self._sent[rid] = st
                log.info("FIP statuses of router %s: %s", rid, ", ".join(f"{k}={v}" for k, v in sorted(st.items()))
                         or "none served here")
            self._sending = False
            if backoff:
                self.stop.wait(backoff)
                self._wake.set()

    # ---- report_state ---------------------------------------------------------------------------
    def agent_state(self, start: bool) -> dict:
        state = {"binary": "neutron-l3-agent", "host": self.conf.host, "topic": "l3_agent",
                 "availability_zone": self.conf.availability_zone, "agent_type": "L3 agent",
                 "configurations": {"agent_mode": self.conf.mode, "handle_internal_only_routers": True,
                                    "interface_driver": self.conf.interface_driver, "log_agent_heartbeats": False,
                                    "extensions": [], "dvrnet": True, **self.source.counts()}}
        if start:
            state["start_flag"] = True
        return state

    def _state_loop(self) -> None:
        started = False
        failed = False
        backoff = 0.0
        while not self.stop.is_set():
            try:
                answer = self.reporter.report(self.agent_state(not started), call=True)
            except RpcError as e:
                if not failed:
                    log.warning("%s (neutron-server or RabbitMQ away?)", e)
                failed = True
                backoff = min(self.conf.report_interval, max(0.5, backoff * 2))
                self.stop.wait(backoff)
                continue
            self.state_answers.append(str(answer))
            if answer in ("revived", "new") or (failed and started):
                # 'new': neutron-server created the agent just now, so a full sync that ran before
                # (the source's first, in the agent thread) was answered as for an unknown host:
                # no routers (get_router_ids finds no L3 agent of that host)
                log.info("state report answered %r after %s: full sync", answer,
                         "failures" if failed else "a revival" if answer == "revived" else "the agent's creation")
                self.source.request_full_sync()
            started, failed, backoff = True, False, 0.0
            self.stop.wait(self.conf.report_interval)

    # ---- running ---------------------------------------------------------------------------------
    def run(self, once: bool = False) -> PassReport | None:
        threading.Thread(target=self._state_loop, name="state", daemon=True).start()
        threading.Thread(target=self._status_loop, name="status", daemon=True).start()
        self._start_consumers()
        try:
            report = self.agent.run(once=once)
            if once:        # let the status thread send what the pass found
                end = time.monotonic() + 10
                while (self._pending or self._sending or self._wake.is_set()) and time.monotonic() < end:
                    time.sleep(0.05)
            return report
        finally:
            self.stop.set()

    def _start_consumers(self) -> None:
        """Start the consumers; while RabbitMQ cannot be reached, keep trying in the background."""
        def go() -> None:
            backoff = 0.5
            while not self.stop.is_set():
                try:
                    self.consumers.start()
                    if self.notifications is not None:
                        self.notifications.start()
                    return
                except Exception as e:      # noqa: BLE001 - the transport's own errors vary with the driver
                    log.warning("starting the l3_agent consumers: %s; retrying in %.1f s", e, backoff)
                    self.stop.wait(backoff)
                    backoff = min(self.conf.max_backoff, backoff * 2)
        threading.Thread(target=go, name="consumers", daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        try:
            self.consumers.stop()
            if self.notifications is not None:
                self.notifications.stop()
        except Exception:
            log.exception("stopping the consumers")
        self.agent.close()


def main(config_files: list[str], host: str | None = None, once: bool = False, ready_file: str | None = None,
         transport_url: str | None = None, adopt_neutron_state: bool = False) -> int:
    """`dvrnet neutron-agent`: 0 after a converged `--once` pass (or a clean stop), 1 otherwise.
    ADOPT_NEUTRON_STATE (or `[dvrnet] adopt_neutron_state`): take over neutron-l3-agent's objects;
    without it they raise `kernel.takeover.NeutronStateFound` before anything is changed."""
    import dataclasses
    import signal

    from .config import load
    conf = load(config_files, host=host)
    if adopt_neutron_state:
        conf = dataclasses.replace(conf, adopt_neutron_state=True)
    na = NeutronAgent(conf, transport_url=transport_url, ready_file=ready_file)

    def _terminate(*_):
        na.stop.set()
        raise KeyboardInterrupt     # wakes a wait in progress; the data plane is left as it is
    signal.signal(signal.SIGTERM, _terminate)
    log.info("dvrnet neutron-agent for host %s (%s), port kind %s", conf.host, conf.mode, conf.plan.port_kind)
    try:
        report = na.run(once=once)
    except KeyboardInterrupt:
        report = na.agent.last
    finally:
        na.stop.set()
    if once:
        return 0 if report is not None and report.ok else 1
    return 0
