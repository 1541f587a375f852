"""`HostPlanner`: `plan_host` for a stream of models, re-planning only what changed.

`HostPlanner(host, cfg).plan(cloud, hints)` returns a `HostState` equal to
`plan_host(cloud, host, cfg, hints)` (same `render` bytes), and a namespace whose inputs did not
change is the *same* `Namespace` object as in the previous plan, so the reconciler's identity
memo (`DiffMemo`, `Reconciler.intern`) skips it without comparing values.

How (adapton/salsa style, with read sets recorded rather than declared):
1. The input is a `Cloud` made by `model.changeset.apply` from the previous plan's cloud, with the
   touched keys `apply` returned (`plan(cloud, hints, touched)`): the planner reads the cloud's own
   indexes, which `apply` keeps up to date, and does no comparison of its own. Given a cloud
   without touched keys (a freshly decoded view, sharing no objects with the last one), it derives
   them: `changeset_between(last, cloud)` (a comparison per collection) applied to the last cloud,
   and plans on that result (equal to the given cloud). Touched keys are `(name, key)` pairs naming
   a `Cloud` collection or index and one key of it ("ports", id), ("ports_by_subnet", subnet), ...
2. Each namespace (each router's FIP routes in a fip- namespace, and the rest of that namespace)
   is a *cell*: its value is computed by the very functions `plan_host` uses (qrouter.py,
   snat.py, fip.py), given a `model.tracked.TrackedView` of the cloud that answers the same
   lookups as `Cloud` and records every `(name, key)` it reads. A cell is reused while none of its
   reads was touched and its non-model parameters (link-local slot, the routers and slots of a
   fip- namespace) are equal; otherwise it is recomputed. The view cannot be iterated, so a
   planner function that needed a whole collection would fail loudly rather than go stale.
3. Which namespaces exist (routers on the host, SNAT routers, fip- networks, slots) is computed
   every pass by `model.placement` (the functions `plan_host` calls; O(routers) with the cloud's
   compute-subnets index: 100 routers, well under a millisecond).
4. A fip- namespace = its base cell + every router's FIP /32 routes (a frozenset per router,
   merged by set union, which reuses the stored hashes: ~1 ms for 10,000 routes). main holds
   only those /32s and nothing else of the namespace is in main (checked), so the merge equals
   `fip_namespace`'s puts unless two routers hold the same FIP address, which `plan_host`
   rejects (PlanConflict): then, as on any exception, the pass falls back to `plan_host` itself
   (which raises or returns exactly what the full planner does) and the planner starts afresh.
5. The bridge namespace is replayed from each cell's recorded `dv-` links, in `plan_host`'s order.

Measured (100 routers, 10,000 FIPs, docs/benchmarks.md): see `HostPlanner.timings`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import replace

from ..model import Cloud, FloatingIP, Router
from ..model.changeset import apply, changeset_between
from ..model.placement import fip_host, routers_on_host, snat_routers_on_host
from ..model.tracked import TrackedView
from . import names
from .builder import NsBuilder
from .config import DEFAULT_CONFIG, PlanConfig
from .fip import fip_base, fip_route, fip_router_link, fip_tail
from .host import plan_host
from .l2 import bridge_guard
from .linklocal import assign_slots, pair
from .numbers import MAIN_TABLE_ID, NFT_TABLE
from .qrouter import nat_pair, nat_table, qrouter_namespace, qrouter_nat_frame
from .snat import snat_namespace
from .state import HostState, Namespace

log = logging.getLogger("dvrnet.plan")

Key = tuple


class _Irregular(Exception):
    """A cloud the incremental path does not model (a resource stored under another key): plan in full."""


class _Cell:
    __slots__ = ("params", "reads", "value")

    def __init__(self, params, reads: frozenset, value):
        self.params, self.reads, self.value = params, reads, value


class _Fallback(Exception):
    pass


class _Fips:
    """One router's FIPs on this host (`placement.local_fips`: `fip_host` is this host, as a set) and what the plan makes
    of each — its fip- /32 (`fip.fip_route`, for the slot it was made with) and its NAT pair
    (`qrouter.nat_pair`) — kept up to date from the touched keys: a FIP change re-evaluates that
    FIP alone (its `floatingips` key), a port change the FIPs of the router on that port; the
    sets are changed by set difference and union (C-level, no per-FIP Python call for the rest).
    Anything else that could change the answer (the router itself) builds it again."""
    __slots__ = ("dsts", "local", "pairs", "port_of", "ports", "router", "routes", "rpairs", "slot")

    def __init__(self, cloud: Cloud, host: str, r: Router, slot: int | None):
        self.router, self.slot = r, slot
        self.local: dict[str, FloatingIP] = {}
        self.port_of: dict[str, str] = {}           # FIP id -> its port (every FIP of the bucket with one)
        self.ports: dict[str, set[str]] = {}        # port id -> FIP ids of the bucket on it
        for f in cloud.fips_by_router.get(r.id, ()):
            self._track(f)
            if fip_host(cloud, f) == host:
                self.local[f.id] = f
        fs = self.local.values()
        self.routes, self.dsts = self._route_sets(fs)
        self.pairs = frozenset(nat_pair(f) for f in fs)
        self.rpairs = frozenset((b, a) for a, b in self.pairs)

    def _track(self, f: FloatingIP) -> None:
        if f.port_id is not None:
            self.port_of[f.id] = f.port_id
            self.ports.setdefault(f.port_id, set()).add(f.id)

    def _untrack(self, fid: str) -> None:
        pid = self.port_of.pop(fid, None)
        if pid is not None:
            on = self.ports.get(pid)
            if on is not None:
                on.discard(fid)
                if not on:
                    del self.ports[pid]

    def _route_sets(self, fs) -> tuple[frozenset, frozenset]:
        if self.slot is None:
            return frozenset(), frozenset()
        via, fpr = str(pair(self.slot)[0]), names.fpr_dev(self.router.id)
        rs = frozenset(fip_route(f, via, fpr) for f in fs)
        return rs, frozenset(x.dst for x in rs)

    def update(self, cloud: Cloud, host: str, dirty: Iterable[Key]) -> bool:
        """Bring it to CLOUD given the keys touched since (DIRTY); False when it must be built
        again (the router changed, or its bucket changed without a FIP key saying which)."""
        rid = self.router.id
        cands: set[str] = set()
        bucket = False
        for k in dirty:
            kind = k[0]
            if kind == "floatingips":
                cands.add(k[1])
            elif kind == "ports":
                cands |= self.ports.get(k[1], set())
            elif kind == "routers" and k[1] == rid:
                return False
            elif kind == "fips_by_router" and k[1] == rid:
                bucket = True
        if bucket and not any(k[0] == "floatingips" for k in dirty):
            return False
        if not cands:
            return True
        gone: list[FloatingIP] = []
        new: list[FloatingIP] = []
        for fid in cands:
            old = self.local.pop(fid, None)
            self._untrack(fid)
            f = cloud.floatingips.get(fid)
            if f is not None and f.router_id == rid:
                self._track(f)
                if fip_host(cloud, f) == host:
                    self.local[fid] = f
            now = self.local.get(fid)
            if old is not now and old != now:
                if old is not None:
                    gone.append(old)
                if now is not None:
                    new.append(now)
        if gone or new:
            rg, dg = self._route_sets(gone)
            rn, dn = self._route_sets(new)
            self.routes = self.routes.difference(rg).union(rn)
            self.dsts = self.dsts.difference(dg).union(dn)
            pg, pn = {nat_pair(f) for f in gone}, {nat_pair(f) for f in new}
            self.pairs = self.pairs.difference(pg).union(pn)
            self.rpairs = self.rpairs.difference((b, a) for a, b in pg).union((b, a) for a, b in pn)
        return True


class HostPlanner:
    """`plan_host(cloud, host, cfg, hints)` for successive models of one host, incrementally.

    `plan(cloud, hints, touched=None)` is equal to `plan_host(cloud, host, cfg, hints)`; unchanged
    namespaces are the same objects as in the previous result. TOUCHED, when given, must be the
    touched keys of `changeset.apply` from the cloud of the previous `plan` call to CLOUD. `router_ids` are the routers on the host in the
    last plan (`placement.routers_on_host`), for `linklocal.hints_from_state`. `timings` holds the
    last pass's phases in seconds; `fallbacks` counts passes planned by `plan_host` because the
    incremental path raised (a model `plan_host` rejects, or a bug: it is logged)."""

    def __init__(self, host: str, cfg: PlanConfig = DEFAULT_CONFIG):
        self.host = host
        self.cfg = cfg
        self.router_ids: tuple[str, ...] = ()
        self.timings: dict[str, float] = {}
        self.fallbacks = 0
        self.recomputed: list[Hashable] = []    # cells recomputed by the last pass
        self.reset()

    def reset(self) -> None:
        self._cloud: Cloud | None = None
        self._cells: dict[Hashable, _Cell] = {}
        self._readers: dict[Key, set] = {}      # dependency key -> cells that read it
        self._stale: set = set()
        self._fip: dict[str, tuple] = {}        # network -> (parts, namespace) of the last merge
        self._bridge: tuple | None = None       # (records, namespace) of the last bridge namespace
        self._last: HostState | None = None
        self._fips: dict[str, _Fips] = {}       # router -> its FIPs on this host (kept from the touched keys)
        self._qr: dict[str, tuple] = {}         # router -> (base, frame, pairs, namespace) of the last merge
        self._dirty: Iterable[Key] = ()

    # ---- cells -------------------------------------------------------------------------------
    def _invalidate(self, dirty: Iterable[Key]) -> None:
        readers = self._readers
        for k in dirty:
            cs = readers.get(k)
            if cs:
                self._stale.update(cs)

    def _forget(self, key: Hashable) -> None:
        c = self._cells.pop(key)
        for r in c.reads:
            cs = self._readers.get(r)
            if cs is not None:
                cs.discard(key)
                if not cs:
                    del self._readers[r]
        self._stale.discard(key)

    def _cell(self, key: Hashable, params, compute: Callable, extra: tuple = ()):
        """The value of cell KEY: reused when PARAMS are equal and none of its reads changed;
        else `compute(view)`. EXTRA: keys read outside the view (the Router object passed in)."""
        self._used.add(key)
        c = self._cells.get(key)
        if c is not None and key not in self._stale and c.params == params:
            return c.value
        reads: set = set(extra)
        assert self._cloud is not None
        value = compute(TrackedView(self._cloud, reads))
        if c is not None:
            if value == c.value:            # inputs touched, output the same: keep the object
                value = c.value
            self._forget(key)
        reads_f = frozenset(reads)
        self._cells[key] = _Cell(params, reads_f, value)
        for r in reads_f:
            cs = self._readers.get(r)
            if cs is None:
                self._readers[r] = {key}
            else:
                cs.add(key)
        self.recomputed.append(key)
        return value

    # ---- namespaces (each as plan_host builds it, with a private bridge builder) --------------
    def _bridges(self) -> NsBuilder:
        return NsBuilder(self.cfg.bridge_netns, managed=False, host=self.host)

    @staticmethod
    def _record(ns: Namespace | None, br: NsBuilder) -> tuple:
        return (ns, (tuple(br.links.values()), tuple(br.ovs_ports.values())), br.used)

    def _local(self, r: Router, slot: int | None) -> _Fips:
        """R's FIPs on this host (`_Fips`), updated from this pass's touched keys."""
        f = self._fips.get(r.id)
        if r.id in self._used_fips and f is not None and f.router is r and f.slot == slot:
            return f                            # already brought up to date in this pass
        self._used_fips.add(r.id)
        assert self._cloud is not None
        if f is None or f.router is not r or f.slot != slot or not f.update(self._cloud, self.host, self._dirty):
            f = self._fips[r.id] = _Fips(self._cloud, self.host, r, slot)
        return f

    def _qrouter(self, r: Router, slot: int | None) -> tuple:
        """The qrouter- namespace: a cell for all but the FIP NAT table (`nat=False`), one for
        that table's frame (chains, connection limits), and the FIP maps from `_Fips`: a FIP
        change rebuilds neither cell (thousands of neighbours and limits at scale)."""
        def compute(view: TrackedView) -> tuple:
            br = self._bridges()
            return self._record(qrouter_namespace(view, self.host, r, slot, br, self.cfg, nat=False).freeze(), br)
        rec = self._cell(("qrouter", r.id), slot, compute, (("routers", r.id),))
        if slot is None or r.gateway is None:
            return rec
        frame = self._cell(("qrouter-nat", r.id), None, lambda view: qrouter_nat_frame(view, self.host, r, self.cfg),
                           (("routers", r.id),))
        fips = self._local(r, slot)
        base: Namespace = rec[0]
        last = self._qr.get(r.id)
        if (last is not None and last[0] is base and last[1] is frame and last[2] is fips.pairs
                and last[3] is fips.rpairs):
            return (last[4],) + rec[1:]
        table = nat_table(frame[0], frame[1], fips.pairs, fips.rpairs)
        key = ("ip", NFT_TABLE)
        if key in base.nft:
            raise _Fallback("qrouter- namespace: a second table named like the FIP NAT table")
        ns = replace(base, nft=dict(sorted({**base.nft, key: table}.items())))
        if last is not None and last[4] == ns:
            ns = last[4]
        self._qr[r.id] = (base, frame, fips.pairs, fips.rpairs, ns)
        return (ns,) + rec[1:]

    def _snat(self, r: Router) -> tuple:
        def compute(view: TrackedView) -> tuple:
            br = self._bridges()
            b = snat_namespace(view, r, br, self.cfg)
            return self._record(b.freeze() if b is not None else None, br)
        return self._cell(("snat", r.id), None, compute, (("routers", r.id),))

    def _fip_ns(self, net_id: str, rs: list[Router], slots: dict[str, int]) -> tuple:
        host, cfg = self.host, self.cfg
        ids = tuple((r.id, slots[r.id]) for r in rs)

        def base(view: TrackedView) -> tuple:
            fg = view.agent_gateway_port(host, net_id)
            assert fg is not None               # _plan plans a fip- namespace only with its fg- port
            net = view.network(net_id)
            br = self._bridges()
            ns, fg_dev = fip_base(view, net, fg, br, cfg)
            for rid, slot in ids:
                fip_router_link(ns, rid, slot, net, cfg)
            fip_tail(ns, fg_dev, net.routed)
            return self._record(ns.freeze(), br)
        rec = self._cell(("fip", net_id), ids, base)

        parts = [rec[0]]
        for r in rs:
            fips = self._local(r, slots[r.id])
            parts += [fips.routes, fips.dsts]
        last = self._fip.get(net_id)
        if last is not None and len(last[0]) == len(parts) and all(a is b for a, b in zip(last[0], parts)):
            return (last[1],) + rec[1:]
        small: Namespace = rec[0]
        if any(x.table == MAIN_TABLE_ID for x in small.routes):
            raise _Fallback("fip- namespace: a route in main besides the FIP /32s")
        routes = set(small.routes)
        dsts: set = set()
        total = 0
        for i in range(1, len(parts), 2):
            rr, dd = parts[i], parts[i + 1]
            routes |= rr
            dsts |= dd
            total += len(dd)
        if len(dsts) != total:
            raise _Fallback("fip- namespace: one FIP address routed to two routers")
        ns = replace(small, routes=frozenset(routes))
        if last is not None and last[1].routes == ns.routes and last[1] == ns:
            ns = last[1]
        self._fip[net_id] = (parts, ns)
        return (ns,) + rec[1:]

    # ---- the pass ----------------------------------------------------------------------------
    def plan(self, cloud: Cloud, hints: Mapping[str, int] | None = None,
             touched: Iterable[Key] | None = None) -> HostState:
        try:
            return self._plan(cloud, hints, touched)
        except Exception as e:  # noqa: BLE001 - any failure falls back to the full planner (logged)
            self.reset()
            self.fallbacks += 1
            t = time.perf_counter()
            out = plan_host(cloud, self.host, self.cfg, hints)       # raises as the full planner does
            self.router_ids = tuple(r.id for r in routers_on_host(cloud, self.host))
            if not isinstance(e, (_Fallback, _Irregular)):
                log.warning("incremental planner failed (%s: %s); planned in full", type(e).__name__, e)
            self.timings = {"full": time.perf_counter() - t}
            return out

    def _advance(self, cloud: Cloud, touched: Iterable[Key] | None) -> tuple[Cloud, Iterable[Key]]:
        """The cloud to plan on and the keys touched since the last plan's cloud."""
        prev = self._cloud
        if prev is None or cloud is prev:
            return cloud, set()
        if touched is not None:
            return cloud, touched
        try:
            cs = changeset_between(prev, cloud)
        except ValueError as e:
            raise _Irregular(str(e)) from None
        return apply(prev, cs, validate=False)

    def _plan(self, cloud: Cloud, hints: Mapping[str, int] | None, touched: Iterable[Key] | None) -> HostState:
        t0 = time.perf_counter()
        self._used: set = set()
        self.recomputed = []
        cloud, dirty = self._advance(cloud, touched)
        self._cloud = cloud
        self._dirty = dirty if isinstance(dirty, (set, frozenset)) else frozenset(dirty)
        self._used_fips: set[str] = set()
        self._invalidate(self._dirty)
        t1 = time.perf_counter()
        host = self.host
        h = cloud.hosts.get(host)
        if h is None:
            self.router_ids = ()
            self._sweep()
            return HostState(host, {})
        top = TrackedView(cloud, None)
        routers = routers_on_host(cloud, host)
        self.router_ids = tuple(r.id for r in routers)

        records: list[tuple] = []
        by_net: dict[str, list] = {}
        for r in routers:
            if r.gateway is not None:
                by_net.setdefault(r.gateway.network_id, []).append(r)
        slots: dict[str, int] = {}
        for net_id in sorted(by_net):
            if top.agent_gateway_port(host, net_id) is None:
                continue
            rs = by_net[net_id]
            net_slots = assign_slots([r.id for r in rs], {r.id: hints[r.id] for r in rs if hints and r.id in hints})
            slots.update(net_slots)
            records.append(self._fip_ns(net_id, rs, net_slots))
        for r in routers:
            records.append(self._qrouter(r, slots.get(r.id)))
        for r in snat_routers_on_host(cloud, host):
            rec = self._snat(r)
            if rec[0] is not None:
                records.append(rec)
        t2 = time.perf_counter()

        namespaces: dict[str, Namespace] = {}
        for ns, _, _ in records:
            namespaces[ns.name] = ns
        bridge = self._bridge_ns(records)
        if bridge is not None:
            namespaces[bridge.name] = bridge
        self._sweep()
        out = dict(sorted(namespaces.items()))
        last = self._last
        if (last is not None and last.host == host and len(last.namespaces) == len(out)
                and all(last.namespaces.get(n) is ns for n, ns in out.items())):
            state = last
        else:
            state = self._last = HostState(host, out)
        t3 = time.perf_counter()
        self.timings = {"index": t1 - t0, "cells": t2 - t1, "merge": t3 - t2}
        return state

    def _bridge_ns(self, records: list[tuple]) -> Namespace | None:
        # the namespaces too: the L2 guard reads their qr- ports (a macvlan plug has no bridge links)
        key = tuple((ns, links, used) for ns, links, used in records)
        last = self._bridge
        if last is not None and len(last[0]) == len(key) and all(
                a[0] is b[0] and a[1] is b[1] and a[2] == b[2] for a, b in zip(last[0], key)):
            return last[1]
        b = self._bridges()
        for _, (links, ports), used in key:
            for lk in links:
                b.link(lk)
            for p in ports:
                b.ovs_port(p)
            b.used = b.used or used
        cfg = self.cfg
        guard = bridge_guard([r[0] for r in records], self.host, cfg.port_kind, cfg.dvr_mac, cfg.uplinks)
        if guard is not None:
            b.table(guard)
        ns = b.freeze() if (b.links or b.used or b.nft) else None
        if last is not None and ns is not None and last[1] == ns:
            ns = last[1]
        self._bridge = (key, ns)
        return ns

    def _sweep(self) -> None:
        """Forget cells this pass did not use (routers gone from the host, old fip- networks)."""
        for key in [k for k in self._cells if k not in self._used]:
            self._forget(key)
        nets = {k[1] for k in self._used if k[0] == "fip"}
        for n in [n for n in self._fip if n not in nets]:
            del self._fip[n]
        used: set[str] = getattr(self, "_used_fips", set())
        for rid in [x for x in self._fips if x not in used]:
            del self._fips[rid]
        for rid in [x for x in self._qr if ("qrouter-nat", x) not in self._used]:
            del self._qr[rid]
