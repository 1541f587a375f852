"""The agent: one class holding the host's view, running one `Reconciler.sync` per change.

A full pass at start, then the change feed; a full resync also runs every `resync_interval`
seconds, and sooner after a pass that left errors or differences.

One pass (`Agent.reconcile(cloud)`): plan the host view (incrementally: `plan.incremental.HostPlanner`
re-plans only the namespaces whose inputs changed; the result equals `plan_host`) and hand it to
`Reconciler.sync` — the one reconciliation pass (kernel/reconciler.py): read; from what was read,
re-plan with the link-local /31s already in the kernel when they differ from the ones planned with
(so a router never changes its pair) and add routed mode's migration blackholes; diff, apply, read
back, diff again. A namespace that cannot be read is left out of the pass and reported; the rest
is reconciled.
Nothing is stored on the node between passes but a cache of what was read (and, in routed mode,
the expiry times of migration blackholes: plan/timed.py); the kernel and the server's view are
the only truth.

The long-poll runs in a thread of its own (`_Poll`), so the loop also wakes on its own timers
without asking the server again: in routed mode every `upkeep_interval` (1 s) it renews the
watchdogs' leases (plan/watchdog.py), checks that the owned daemons still run (microseconds:
their pids' start times) and whether a migration blackhole has expired, and if so re-plans from
the view it already holds.

Reads are incremental (`Reconciler(watch=True)`, docs/reconciler.md): netlink event sockets in
every owned namespace say what changed since it was last read, and only that is read again. A
full read of every namespace runs at start, every `resync_interval` seconds, and on the pass
after one that left errors or differences (or raised). A view with changes that arrives when
only the resync timer is due is applied by an incremental pass first and the full pass follows
at once (a full read of a host with 10,000 FIPs takes ~0.3-0.5 s: the change does not wait for it).
While the long-poll waits, the kernel's
events are looked at every `kernel_poll` seconds (0.25 s), also while a failed pass waits for its
retry: a change behind our back — a link losing carrier because ovs-vswitchd died, the taps a
restarted one makes, a route someone deleted — runs a (cheap) pass at once with the view in hand,
so it is repaired within a second, not at the next view or full resync.
While the server cannot be reached the data plane is left exactly as it is; `run(once=True)`
(`dvrnet agent --once`) tries once and raises `DvrnetError` naming the server instead.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..kernel import Reconciler
from ..kernel.takeover import NeutronState, NeutronStateFound
from ..model import Cloud
from ..model.errors import DvrnetError
from ..model.placement import routers_on_host
from ..plan import PlanConfig, plan_host, timed
from ..plan.incremental import HostPlanner
from ..plan.linklocal import hints_from_state
from ..plan.state import HostState
from ..progress import Progress
from .feed import Feed
from .view import View, chain

log = logging.getLogger("dvrnet.agent")
BIG_APPLY = 2000


@dataclass
class PassReport:
    revision: int
    ops: int
    errors: tuple[str, ...]
    differences: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.errors and not self.differences

    def line(self) -> str:
        state = "converged" if self.ok else f"{len(self.errors)} errors, {len(self.differences)} differences"
        return f"revision {self.revision}: {self.ops} ops in {self.seconds * 1000:.0f} ms, {state}"


def desired_state(cloud: Cloud, host: str, cfg: PlanConfig, reconciler: Reconciler,
                  planner: HostPlanner | None = None) -> tuple[HostState, HostState]:
    """(desired, observed) for this host as its agent plans it, with link-local slots kept from
    the kernel, for inspection (`dvrnet show`, the lab's convergence checks): it reads only, so
    pass a `Reconciler(..., register_proto=False)` (nothing written). PLANNER (for HOST and CFG):
    plan incrementally, as the agent does (the same result). Raises `kernel.iproute.ReadError`
    naming a namespace that cannot be read."""
    if planner is None:
        first = plan_host(cloud, host, cfg)
        observed = reconciler.observe(first)
        hints = hints_from_state(observed, [r.id for r in routers_on_host(cloud, host)])
        desired = plan_host(cloud, host, cfg, hints)
    else:
        first = planner.plan(cloud)
        observed = reconciler.observe(first)
        hints = hints_from_state(observed, planner.router_ids)
        desired = planner.plan(cloud, hints)
    if desired != first:                # what is read depends on the desired state
        observed = reconciler.observe(desired)
    # a reader without the agent's timers accepts the migration blackholes it finds (plan/timed.py)
    return timed.overlay(desired, timed.lenient_holds(desired, observed)), observed


class _Poll:
    """One request of the feed (`Feed.next_view(since)`, a long-poll) in a daemon thread: the loop
    waits on `done` with a timeout of its own. `view` is None after a failure (the feed backed off)."""
    def __init__(self, feed: Feed, since: int | None) -> None:
        self.done = threading.Event()
        self.view: View | None = None
        threading.Thread(target=self._run, args=(feed, since), name="feed-poll", daemon=True).start()

    def _run(self, feed: Feed, since: int | None) -> None:
        try:
            self.view = feed.next_view(since)
        except Exception:
            log.exception("feed request failed")
        finally:
            self.done.set()


class Agent:
    def __init__(self, host: str, feed: Feed, cfg: PlanConfig, resync_interval: float = 60.0,
                 retry_interval: float = 2.0, incremental: bool = True, ready_file: str | None = None,
                 progress: Progress | None = None, switch=None,
                 on_pass: Callable[[PassReport, HostState, HostState], None] | None = None,
                 adopt_neutron_state: bool = False):
        """on_pass(report, desired, observed): called after every pass with what the kernel holds
        then (read back after apply) — e.g. to report what is really in place.
        adopt_neutron_state: take over neutron-l3-agent's objects found on the node instead of
        refusing to start (kernel/takeover.py, docs/neutron.md)."""
        self.host = host
        self.on_pass = on_pass
        # a pass with at least BIG_APPLY ops (a cold start at scale) shows its progress
        self.progress = progress if progress is not None else Progress.plain(log.info)
        self.ready_file = ready_file
        self.feed = feed
        self.cfg = cfg
        self.resync_interval = resync_interval
        self.retry_interval = retry_interval
        ovs = {"switch": switch} if switch is not None else {}     # the node's Open vSwitch (kernel/ovs.py)
        self.reconciler = Reconciler(prefix=cfg.netns_prefix, watch=incremental,
                                     neutron=NeutronState(cfg.netns_prefix, adopt=adopt_neutron_state), **ovs)
        # plans only the namespaces whose inputs changed since the last view (plan/incremental.py);
        # equal to plan_host, and unchanged namespaces are the same objects (the diff memo hits)
        self.planner = HostPlanner(host, cfg)
        self.stop = threading.Event()
        self.last: PassReport | None = None
        self.cloud: Cloud | None = None             # the view the last pass reconciled (for on_pass hooks)
        self._hints: dict[str, int] | None = None   # the link-local slots the last plan used
        # routed mode's migration blackholes: (namespace, /32) -> expiry (time.monotonic(); plan/timed.py)
        self.holds: dict[tuple[str, str], float] = {}
        self.upkeep_interval = 1.0      # routed mode: how often a dead BIRD is noticed (no server change needed)
        self.kernel_poll = 0.25         # how often kernel events are looked at while the long-poll waits
        self._renewed: float | None = None      # when the watchdogs' leases were last renewed
        self.settler = None                     # heap.Settler: told of every pass (`dvrnet agent` sets one)

    def close(self) -> None:
        self.reconciler.close()

    def _apply_progress(self, ops: int):
        """A big apply (at least BIG_APPLY ops: a cold start at scale) reports its progress."""
        if ops >= BIG_APPLY:
            return self.progress.task(f"applying {ops:,} ops", ops)
        return contextlib.nullcontext(None)

    def reconcile(self, cloud: Cloud, full: bool = True, touched: frozenset | None = None) -> PassReport:
        """One pass; `full=False` reads only what changed since the last pass (watch mode).
        TOUCHED: the keys `changeset.apply` touched from the cloud of the last pass to CLOUD (None:
        the planner compares; see agent/view.py)."""
        t0 = time.perf_counter()
        if self.settler is not None:
            self.settler.touch()
        self._renew()                           # late: the processes are read again (digests asked)
        planned = self.planner.plan(cloud, self._hints, touched)

        def from_the_kernel(observed: HostState) -> HostState:
            # the observed link-local addresses do not depend on the desired state read with:
            # plan once more only when they are not the ones planned with
            desired = planned
            now = hints_from_state(observed, self.planner.router_ids)
            if now != self._hints:
                self._hints = now
                desired = self.planner.plan(cloud, now)
            if not getattr(self.feed, "backoff", 0):   # the watchdogs just found, before anything is applied
                self.reconciler.processes.renew(time.monotonic())
            self.holds = timed.departures(self.holds, desired, observed, time.monotonic(), self.cfg.bgp.blackhole_s)
            return timed.overlay(desired, self.holds)     # DESIRED itself when there is no hold
        try:
            res = self.reconciler.sync(planned, full=full, replan=from_the_kernel, progress=self._apply_progress)
        except Exception:
            if self.reconciler.observer is not None:
                self.reconciler.observer.invalidate()     # unsure what was read: everything next time
            self._hints = None
            raise
        for op in res.applied:
            log.debug("op %s", op)
        report = PassReport(cloud.revision, len(res.plan), tuple(str(e) for e in res.errors), res.differences,
                            time.perf_counter() - t0)
        for e in report.errors:
            log.error("%s", e)
        for d in report.differences:
            log.error("differs after apply: %s", d)
        log.info("%s", report.line())
        self.last = report
        self.cloud = cloud
        if self.on_pass is not None:
            self.on_pass(report, res.desired or planned, res.observed or HostState(self.host, {}))
        return report

    # ---- timers of routed mode (plan/timed.py) and the liveness of owned processes ---------------
    def _routed(self) -> bool:
        return self.reconciler.processes.running() or bool(self.holds)

    def _wait(self) -> float | None:
        """How long the loop may wait for the feed before it looks at its own timers: until the
        next blackhole expires, and at most `upkeep_interval` while owned processes run (a BIRD
        that died is restarted that soon); None (no timer) otherwise."""
        waits = []
        t = timed.next_expiry(self.holds)
        if t is not None:
            waits.append(max(0.05, t - time.monotonic()))
        if self._routed():
            waits.append(self.upkeep_interval)
        if self.reconciler.observer is not None and self.kernel_poll:
            waits.append(self.kernel_poll)
        return min(waits) if waits else None

    def _renew(self) -> bool:
        """Renew the watchdogs' leases (plan/watchdog.py) while the feed is healthy (its last
        request did not fail: an agent cut off from the server cannot know that a FIP moved).
        True when the previous renewal is older than the lease: a watchdog may have made its BIRD
        announce as stale, so the processes are read again (digests asked) at the next pass."""
        if getattr(self.feed, "backoff", 0):
            return False
        now = time.monotonic()
        late = self._renewed is not None and now - self._renewed > self.cfg.bgp.lease_s
        self.reconciler.processes.renew(now)
        self._renewed = now
        if late:
            self.reconciler.processes.dirty = True
        return late

    def _timer_due(self) -> bool:
        if self._renew():
            return True
        t = timed.next_expiry(self.holds)
        if t is not None and t <= time.monotonic():
            return True
        if not self.reconciler.processes.alive():
            return True
        # the kernel changed behind our back (a link lost carrier because ovs-vswitchd died, the
        # taps a restarted one made, a route someone deleted): a pass now, not at the next view
        obs = self.reconciler.observer
        return obs is not None and bool(self.kernel_poll) and obs.pending()

    def _wait_retry(self) -> None:
        """`retry_interval` seconds, or less when kernel events come first (e.g. the taps of an
        ovs-vswitchd that came back): the retry then runs at once."""
        obs = self.reconciler.observer
        end = time.monotonic() + self.retry_interval
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left <= 0 or self.stop.wait(min(left, self.kernel_poll or left)):
                return
            if obs is not None and self.kernel_poll and obs.pending():
                return

    def _timer_pass(self, cloud: Cloud) -> None:
        try:
            self.reconcile(cloud, full=False)
        except Exception:
            log.exception("timer pass failed")

    def _announce_ready(self) -> None:
        """After the first converged pass, create `ready_file` (once): whoever started the agent
        knows it now follows the feed."""
        path, self.ready_file = self.ready_file, None
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")

    def run_once(self, timeout: float = 60.0) -> PassReport:
        """One full pass on the current view. A dvrnet server that cannot be reached raises
        `DvrnetError` (`Feed.connect`: one try, within seconds); a source without `connect` (Neutron
        mode's) is asked until it has a view, for at most TIMEOUT seconds, then DvrnetError. A pass
        that raises, raises."""
        connect = getattr(self.feed, "connect", None)
        if connect is not None:
            view = connect()
        else:
            end = time.monotonic() + timeout
            view = None
            while view is None and not self.stop.is_set():
                if time.monotonic() >= end:
                    raise DvrnetError(f"no view of {self.host} after {timeout:.0f} s: its source cannot be reached")
                view = self.feed.next_view(None)
            if view is None:
                raise DvrnetError("stopped before the first view")
        report = self.reconcile(view.cloud, full=True)
        if report.ok and self.ready_file:
            self._announce_ready()
        return report

    def run(self, once: bool = False) -> PassReport | None:
        if once:
            return self.run_once()
        revision: int | None = None
        cloud: Cloud | None = None
        pending: frozenset | None = frozenset()     # touched since the cloud last planned (view.py)
        next_full = 0.0
        full_due = True                 # the first pass, and the one after a failed pass, read all
        poll: _Poll | None = None
        while not self.stop.is_set():
            if poll is None:
                poll = _Poll(self.feed, revision)
            if not poll.done.wait(self._wait()):
                # no news from the server: the timers, from the view already held
                if cloud is not None and self._timer_due():
                    self._timer_pass(cloud)
                continue
            view, poll = poll.view, None
            if view is None:
                continue
            pending = chain(pending, view)
            now = time.monotonic()
            drift = (view.revision == revision and cloud is not None and self.reconciler.observer is not None
                     and (self.reconciler.observer.pending() or self._timer_due()))
            if view.revision != revision or now >= next_full or cloud is None or drift:
                changed = view.revision != revision and cloud is not None
                cloud, revision = view.cloud, view.revision
                full = full_due or now >= next_full
                touched, pending = pending, frozenset()
                try:
                    if full and not full_due and changed and self.reconciler.observer is not None:
                        # a change that finds only the resync timer due is applied first (an
                        # incremental pass), the full read of every namespace right after it
                        report = self.reconcile(cloud, full=False, touched=touched)
                        if report.ok:
                            report = self.reconcile(cloud, full=True, touched=frozenset())
                    else:
                        report = self.reconcile(cloud, full=full, touched=touched)
                except NeutronStateFound:
                    raise               # upstream's objects and no --adopt-neutron-state: nothing is touched
                except Exception:       # never die on one bad pass: log it and retry soon
                    log.exception("reconcile pass failed")
                    report = None
                ok = report is not None and report.ok
                if ok and self.ready_file:
                    self._announce_ready()
                full_due = not ok
                if full or not ok:
                    next_full = now + (self.resync_interval if ok else self.retry_interval)
                if not ok:
                    revision = None     # ask for the view again at once after the retry delay
                    self._wait_retry()
        return self.last
