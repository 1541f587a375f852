"""Model layer at N FIPs (pure, no root): what one change costs to the snapshot, the planner and the
per-host delta filter, the ChangeSet way against the snapshot way.

For `scale_cloud(routers=100, fips=N)` (hosts compute1/compute2/network1), medians of repeated
samples, each on a fresh copy of the same starting point:
- `apply` of a ChangeSet creating one FIP (with its VM port), and one adding an external subnet,
  onto a snapshot that was itself made by `apply` (collections and indexes are persistent);
- the snapshot way of getting the same snapshot: `changeset_between` (one comparison per
  collection) and a from-scratch `Cloud.validate` with its indexes;
- `HostPlanner.plan` for compute1 given apply's touched keys, against the same planner handed the
  new snapshot without them (it compares collections to find the change);
- `ViewTracker.advance` (the server's per-host delta filter) for the +1 FIP change: cost and the
  hosts it concerns;
- `server_write`: the server's whole write of one FIP (`Service.write` of `create_floatingip` into a
  `Store` on an SQLite file holding the cloud: Workspace, ChangeSet, rows, change log, snapshot),
  as CPU time of this process (`time.process_time`) and wall time, medians.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dvrnet.model import Cloud
from dvrnet.model.changeset import apply, changeset_between
from dvrnet.model.placement import ViewTracker
from dvrnet.plan.incremental import HostPlanner
from dvrnet.scenarios.scale import scale_cloud

ROUTERS = 100


@dataclass
class ModelRow:
    n: int
    apply_fip: float = 0.0
    apply_subnet: float = 0.0
    between_fip: float = 0.0
    validate_full: float = 0.0
    plan_touched: float = 0.0
    plan_compare: float = 0.0
    tracker_fip: float = 0.0
    tracker_hosts: int = 0
    touched_fip: int = 0
    samples: int = 0
    notes: list[str] = field(default_factory=list)


def _median(fn: Callable[[], object], samples: int) -> float:
    ts = []
    for _ in range(samples):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def run_n(n: int, samples: int = 15) -> ModelRow:
    row = ModelRow(n, samples=samples)
    a = scale_cloud(routers=ROUTERS, fips=n)
    b = scale_cloud(routers=ROUTERS, fips=n + 1)
    c = scale_cloud(routers=ROUTERS, fips=n + 1, extra_subnets=1)
    base, _ = apply(Cloud(), changeset_between(Cloud(), a))        # a snapshot made by apply
    base.held, base.ports_by_subnet                                 # noqa: B018 - indexes built before timing
    add_fip = changeset_between(a, b)
    add_subnet = changeset_between(b, c)
    one, touched = apply(base, add_fip)
    row.touched_fip = len(touched)
    row.apply_fip = _median(lambda: apply(base, add_fip), samples)
    row.apply_subnet = _median(lambda: apply(one, add_subnet), samples)
    row.between_fip = _median(lambda: changeset_between(a, b), samples)

    def full_validate() -> None:
        Cloud(dict(b.networks), dict(b.subnets), dict(b.routers), dict(b.ports), dict(b.floatingips),
              dict(b.hosts)).validate()
    row.validate_full = _median(full_validate, max(3, samples // 3))

    def planned(with_touched: bool) -> float:
        ts = []
        for _ in range(max(3, samples // 3)):
            p = HostPlanner("compute1")
            p.plan(base)
            t0 = time.perf_counter()
            if with_touched:
                p.plan(one, touched=touched)
            else:
                p.plan(b)
            ts.append(time.perf_counter() - t0)
            if p.fallbacks:
                row.notes.append("planner fell back to plan_host")
        return statistics.median(ts)
    row.plan_touched = planned(True)
    row.plan_compare = planned(False)

    ts = []
    for _ in range(max(3, samples // 3)):
        tr = ViewTracker()
        tr.advance(base)
        t0 = time.perf_counter()
        deltas = tr.advance(one, touched)
        ts.append(time.perf_counter() - t0)
        row.tracker_hosts = len(deltas)
    row.tracker_fip = statistics.median(ts)
    return row


def server_write(n: int, samples: int = 30) -> tuple[float, float]:
    """(CPU, wall) seconds of one +1 FIP write by the server holding scale_cloud(100 routers, N)."""
    from dvrnet.api.service import Service
    from dvrnet.store import Change, Store
    with tempfile.TemporaryDirectory(prefix="dvrnet-bench-db-") as d:
        store = Store(f"sqlite:///{d}/dvrnet.db")
        try:
            cloud = scale_cloud(routers=ROUTERS, fips=n)
            store.write(lambda s: Change(None, Cloud(cloud.networks, cloud.subnets, cloud.routers, cloud.ports,
                                                     cloud.floatingips, cloud.hosts, s.revision)))
            svc = Service(store)
            big = next(s for s in store.state().cloud.subnets.values() if s.name == "fip-pool")

            def one() -> None:
                svc.write(lambda txn: txn.ws.create_floatingip(big.network_id, subnet_id=big.id))
            one()       # the first write builds the Workspace from the cloud (O(n), once)
            cpu, wall = [], []
            for _ in range(samples):
                c, t = time.process_time(), time.perf_counter()
                one()
                cpu.append(time.process_time() - c)
                wall.append(time.perf_counter() - t)
        finally:
            store.close()
    return statistics.median(cpu), statistics.median(wall)


def main() -> int:
    for n in (100, 1_000, 10_000):
        cpu, wall = server_write(n)
        print(f"N={n:>6,}: server write +1 FIP (Service -> Store, SQLite file): CPU {cpu * 1e3:5.2f} ms, "
              f"wall {wall * 1e3:5.2f} ms")
        r = run_n(n)
        print(f"N={n:>6,}: apply +1 FIP {r.apply_fip * 1e6:7.0f} µs ({r.touched_fip} keys touched), "
              f"+1 ext subnet {r.apply_subnet * 1e6:7.0f} µs | snapshot way: compare {r.between_fip * 1e3:6.2f} ms "
              f"+ validate {r.validate_full * 1e3:6.1f} ms | plan compute1 with touched keys "
              f"{r.plan_touched * 1e3:5.2f} ms vs comparing {r.plan_compare * 1e3:5.2f} ms | "
              f"delta filter {r.tracker_fip * 1e3:5.2f} ms, {r.tracker_hosts} hosts concerned")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
