"""The agent loop: full resync at start, then follow the change feed; a full resync also runs
every `resync_interval` seconds, and sooner after a pass that left errors or differences.

One pass (`Agent.reconcile`): plan the host view once to know which namespaces matter, read them
from the kernel, take the link-local /31s already there as hints (so a router never changes its
pair), plan again with the hints, diff, apply, read back and diff again. Nothing is stored on the
node between passes; the kernel and the server's view are the only truth.
While the server cannot be reached the data plane is left exactly as it is.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ..kernel import Reconciler
from ..model import Cloud
from ..model.placement import routers_on_host
from ..plan import PlanConfig, plan_host
from ..plan.linklocal import hints_from_state
from ..plan.state import HostState
from ..reconcile import diff, describe_plan
from .feed import Feed

log = logging.getLogger("dvrnet.agent")


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


def desired_state(cloud: Cloud, host: str, cfg: PlanConfig, reconciler: Reconciler) -> tuple[HostState, HostState]:
    """(desired, observed) for this host, with link-local slots kept from the kernel."""
    first = plan_host(cloud, host, cfg)
    observed = reconciler.observe(first)
    hints = hints_from_state(observed, [r.id for r in routers_on_host(cloud, host)])
    return plan_host(cloud, host, cfg, hints), observed


class Agent:
    def __init__(self, host: str, feed: Feed, cfg: PlanConfig, resync_interval: float = 60.0,
                 retry_interval: float = 2.0):
        self.host = host
        self.feed = feed
        self.cfg = cfg
        self.resync_interval = resync_interval
        self.retry_interval = retry_interval
        self.reconciler = Reconciler(prefix=cfg.netns_prefix)
        self.stop = threading.Event()
        self.last: PassReport | None = None

    def reconcile(self, cloud: Cloud) -> PassReport:
        t0 = time.perf_counter()
        desired, observed = desired_state(cloud, self.host, self.cfg, self.reconciler)
        plan = diff(desired, observed, self.cfg.netns_prefix)
        errors: list[str] = [f"conflict: {c}" for c in plan.conflicts]
        differences: tuple[str, ...] = ()
        if plan:
            for op in plan:
                log.debug("op %s", op)
            errors += [str(e) for e in self.reconciler.apply(plan)]
            verify = diff(desired, self.reconciler.observe(desired), self.cfg.netns_prefix)
            differences = tuple(describe_plan(verify))
        report = PassReport(cloud.revision, len(plan), tuple(errors), differences, time.perf_counter() - t0)
        for e in report.errors:
            log.error("%s", e)
        for d in report.differences:
            log.error("differs after apply: %s", d)
        log.info("%s", report.line())
        self.last = report
        return report

    def run(self, once: bool = False) -> PassReport | None:
        revision: int | None = None
        cloud: Cloud | None = None
        next_full = 0.0
        while not self.stop.is_set():
            view = self.feed.next_view(revision)
            if view is None:
                if once and self.stop.wait(0):
                    return None
                continue
            now = time.monotonic()
            if view.revision != revision or now >= next_full or cloud is None:
                cloud, revision = view.cloud, view.revision
                try:
                    report = self.reconcile(cloud)
                except Exception:       # never die on one bad pass: log it and retry soon
                    log.exception("reconcile pass failed")
                    report = None
                ok = report is not None and report.ok
                next_full = now + (self.resync_interval if ok else self.retry_interval)
                if once:
                    return report
                if not ok:
                    revision = None     # ask for the view again at once after the retry delay
                    self.stop.wait(self.retry_interval)
        return self.last
