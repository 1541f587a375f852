"""The agent wakes on its own timers (routed mode: migration blackholes expiring, owned daemons
dying) and re-plans from the view it holds, while its one long-poll of the feed stays open: the
server is not asked again (agent/loop.py `_Poll`)."""
from __future__ import annotations

import threading
import time

from dvrnet.agent import loop
from dvrnet.agent.feed import View
from dvrnet.model import Cloud
from dvrnet.plan import PlanConfig
from dvrnet.plan.config import BgpConfig


class _Procs:
    def __init__(self) -> None:
        self.up = True
        self.dirty = False
        self.renewed: list[float] = []

    def renew(self, now: float) -> int:
        self.renewed.append(now)
        return 1

    def running(self) -> bool:
        return True

    def alive(self) -> bool:
        return self.up


class _Reconciler:
    def __init__(self, prefix: str = "", watch: bool = False, **_kw) -> None:    # neutron=, switch=: unused here
        self.processes = _Procs()
        self.observer = None

    def close(self) -> None:
        pass


class _Feed:
    """The first request answers at once; every later one is a long-poll with nothing new (it
    blocks until the test ends)."""
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.backoff = 0.0                  # as Feed: > 0 while requests fail
        self.calls: list[int | None] = []
        self.release = threading.Event()

    def next_view(self, since, wait=None):
        self.calls.append(since)
        if len(self.calls) == 1:
            return View(7, self.cloud)
        self.release.wait(10)
        return None


def _agent(monkeypatch, feed, lease_s: float = 5.0):
    monkeypatch.setattr(loop, "Reconciler", _Reconciler)
    a = loop.Agent("compute1", feed, PlanConfig(bgp=BgpConfig(lease_s=lease_s)))
    a.upkeep_interval = 0.05
    passes: list[tuple[Cloud, bool]] = []

    def reconcile(cloud, full=True, touched=None):
        passes.append((cloud, full))
        if len(passes) == 1:
            a.holds = {("fip-x", "203.0.113.9/32"): time.monotonic() + 0.3}
        else:
            a.holds = {}
        return loop.PassReport(7, 0, (), (), 0.0)
    a.reconcile = reconcile
    return a, passes


def _run(a):
    t = threading.Thread(target=a.run, daemon=True)
    t.start()
    return t


def _until(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred():
        time.sleep(0.01)
    return pred()


def test_blackhole_expiry_replans_the_held_view_without_asking_the_server(monkeypatch):
    cloud = Cloud()
    feed = _Feed(cloud)
    a, passes = _agent(monkeypatch, feed)
    t0 = time.monotonic()
    t = _run(a)
    try:
        assert _until(lambda: len(passes) >= 2), passes
        waited = time.monotonic() - t0
        # one pass for the view, one when the hold expired (not before it): same view, partial read
        assert passes[1] == (cloud, False)
        assert waited >= 0.3
        # the server was asked twice: the view, and one long-poll still open; nothing re-fetched
        assert feed.calls == [None, 7]
        time.sleep(0.3)
        assert len(passes) == 2 and feed.calls == [None, 7]     # nothing due: no pass, no request
    finally:
        a.stop.set()
        feed.release.set()
        t.join(5)


def test_dead_daemon_replans_within_the_upkeep_interval(monkeypatch):
    cloud = Cloud()
    feed = _Feed(cloud)
    a, passes = _agent(monkeypatch, feed)
    t = _run(a)
    try:
        assert _until(lambda: len(passes) >= 2)             # the first pass and its hold's expiry
        a.reconciler.processes.up = False                    # a BIRD was kill -9'ed
        t1 = time.monotonic()
        assert _until(lambda: len(passes) >= 3)
        assert time.monotonic() - t1 < 1.0
        assert passes[2] == (cloud, False) and feed.calls == [None, 7]
    finally:
        a.stop.set()
        feed.release.set()
        t.join(5)


def test_leases_renewed_while_the_feed_is_healthy(monkeypatch):
    """The watchdogs' leases (plan/watchdog.py) are renewed at every upkeep wake-up, not while the
    feed fails; renewed late (after more than the lease), the processes are read again (a watchdog
    may have made a BIRD stale) and a pass runs from the held view."""
    cloud = Cloud()
    feed = _Feed(cloud)
    a, passes = _agent(monkeypatch, feed, lease_s=0.3)
    procs = a.reconciler.processes
    t = _run(a)
    try:
        assert _until(lambda: len(passes) >= 2 and len(procs.renewed) >= 5)
        gaps = [y - x for x, y in zip(procs.renewed[-5:], procs.renewed[-4:])]
        assert max(gaps) < 0.3, gaps                      # every upkeep (0.05 s here)
        feed.backoff = 1.0                                # the server is away
        time.sleep(0.1)
        n, p = len(procs.renewed), len(passes)
        time.sleep(0.5)
        assert len(procs.renewed) == n                    # no renewal meanwhile
        procs.dirty = False
        feed.backoff = 0.0                                # back: renewed late
        assert _until(lambda: len(procs.renewed) > n and len(passes) > p)
        assert procs.dirty and passes[-1] == (cloud, False)
        assert feed.calls == [None, 7]
    finally:
        a.stop.set()
        feed.release.set()
        t.join(5)


def test_a_change_when_the_resync_is_due_is_applied_before_the_full_read(monkeypatch):
    """A view with changes that arrives when only the resync timer is due: an incremental pass
    for it, then the full pass at once, on the same view (the full read is not skipped)."""
    c1, c2 = Cloud(), Cloud()
    views = [View(1, c1), View(2, c2, frozenset({("floatingips", "f")}))]
    gate = threading.Event()

    class Feed(_Feed):
        def next_view(self, since, wait=None):
            self.calls.append(since)
            if len(self.calls) == 1:
                return views[0]
            if len(self.calls) == 2:
                gate.wait(10)
                return views[1]
            self.release.wait(10)
            return None
    feed = Feed(c1)
    monkeypatch.setattr(loop, "Reconciler", _Reconciler)
    a = loop.Agent("compute1", feed, PlanConfig(), resync_interval=0.2)
    a.reconciler.observer = object()            # watch mode (incremental reads)
    a.kernel_poll = 0                           # nothing else wakes the loop
    passes: list[tuple[Cloud, bool, object]] = []

    def reconcile(cloud, full=True, touched=None):
        passes.append((cloud, full, touched))
        return loop.PassReport(len(passes), 0, (), (), 0.0)
    a.reconcile = reconcile
    t = _run(a)
    try:
        assert _until(lambda: len(passes) >= 1)
        time.sleep(0.3)                         # the resync is due now
        gate.set()
        assert _until(lambda: len(passes) >= 3)
        assert passes[0][:2] == (c1, True)      # the first pass reads everything
        assert passes[1] == (c2, False, frozenset({("floatingips", "f")}))
        assert passes[2] == (c2, True, frozenset())
    finally:
        a.stop.set()
        feed.release.set()
        gate.set()
        t.join(5)
