"""`HostPlanner`: `plan_host` for a stream of models, re-planning only what changed.

`HostPlanner(host, cfg).plan(cloud, hints)` returns a `HostState` equal to
`plan_host(cloud, host, cfg, hints)` (same `render` bytes), and a namespace whose inputs did not
change is the *same* `Namespace` object as in the previous plan, so the reconciler's identity
memo (`DiffMemo`, `Reconciler.intern`) skips it without comparing values.

How (adapton/salsa style, with read sets recorded rather than declared):
1. `_Index.update(new)` compares the new `Cloud` with the previous one resource by resource (by
   value: a fresh `Cloud` per view shares no objects with the last one) and keeps the indexes
   `plan_host` needs (ports by device and by subnet, subnets by network, FIPs by router, the
   subnets holding compute ports of this host) up to date from the resources that changed. It
   returns the *dependency keys* those changes touch: ("net", id), ("subnet", id),
   ("router", id), ("port", id), ("subnets_of", network), ("dev", device id),
   ("port_subnet", subnet), ("router_fips", router); a changed resource touches the keys of its
   old *and* its new value (a port moving from subnet A to B touches both buckets).
2. Each namespace (each router's FIP routes in a fip- namespace, and the rest of that namespace)
   is a *cell*: its value is computed by the very functions `plan_host` uses (qrouter.py,
   snat.py, fip.py), given a `_View` of the cloud that answers the same lookups as `Cloud` from
   the index and records every key it reads. A cell is reused while none of its reads was touched
   and its non-model parameters (link-local slot, the routers and slots of a fip- namespace) are
   equal; otherwise it is recomputed. The view cannot be iterated, so a planner function that
   needed a whole collection would fail loudly rather than go stale.
3. Which namespaces exist (routers on the host, SNAT routers, fip- networks, slots) is computed
   every pass from the index (100 routers: well under a millisecond), exactly as `plan_host`.
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
from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace

from ..model import Cloud, Router
from ..model.cloud import Lookups
from ..model.placement import routers_on_host, snat_host
from ..model.resources import AgentMode, is_compute
from .builder import NsBuilder
from .config import DEFAULT_CONFIG, PlanConfig
from .fip import fip_base, fip_router_link, fip_routes, fip_tail
from .host import plan_host
from .l2 import bridge_guard
from .linklocal import assign_slots
from .numbers import MAIN_TABLE_ID
from .qrouter import qrouter_namespace
from .snat import snat_namespace
from .state import HostState, Namespace

log = logging.getLogger("dvrnet.plan")

Key = tuple


class _Irregular(Exception):
    """A cloud the index does not model (a resource stored under another id): plan in full."""


def _delta(old: Mapping, new: Mapping) -> list[tuple]:
    """(key, old value or None, new value or None) of every entry that differs by value."""
    if old is new:
        return []
    get = old.get
    out = [(k, o, v) for k, v in new.items() if (o := get(k)) is not v and o != v]
    added = sum(1 for _, o, _ in out if o is None)
    if len(new) - added != len(old):
        out += [(k, old[k], None) for k in old.keys() - new.keys()]
    return out


def _put(buckets: dict, bucket: str, key: str, value) -> None:
    b = buckets.get(bucket)
    if b is None:
        buckets[bucket] = b = {}
    b[key] = value


def _drop(buckets: dict, bucket: str, key: str) -> None:
    b = buckets.get(bucket)
    if b is not None:
        b.pop(key, None)
        if not b:
            del buckets[bucket]


class _Index:
    """The indexes `Cloud` computes per snapshot (its cached properties), kept across snapshots and
    updated from the resources that changed; plus the subnets of the host's compute ports."""

    def __init__(self, host: str):
        self.host = host
        self.cloud = Cloud()
        self.dev: dict[str, dict] = {}          # device_id -> {port id: Port}  (device_id != "")
        self.on_subnet: dict[str, dict] = {}    # subnet id -> {port id: Port}
        self.net_subnets: dict[str, dict] = {}  # network id -> {subnet id: Subnet}
        self.router_fips: dict[str, dict] = {}  # router id -> {fip id: FloatingIP}  (router_id set)
        self.compute: dict[str, int] = {}       # subnet id -> fixed IPs of compute ports bound here
        self._sorted: dict[Key, tuple] = {}     # sorted bucket views, by dependency key

    def update(self, new: Cloud) -> set[Key]:
        old, dirty = self.cloud, set()
        for coll, attr, tag in (("hosts", "name", "host"), ("networks", "id", "net"), ("routers", "id", "router")):
            for k, o, v in _delta(getattr(old, coll), getattr(new, coll)):
                if v is not None and getattr(v, attr) != k:
                    raise _Irregular(f"{tag} {getattr(v, attr)} stored as {k}")
                dirty.add((tag, k))
        for k, o, v in _delta(old.subnets, new.subnets):
            if v is not None and v.id != k:
                raise _Irregular(f"subnet {v.id} stored as {k}")
            dirty.add(("subnet", k))
            if o is not None:
                _drop(self.net_subnets, o.network_id, k)
                dirty.add(("subnets_of", o.network_id))
            if v is not None:
                _put(self.net_subnets, v.network_id, k, v)
                dirty.add(("subnets_of", v.network_id))
        host = self.host
        for k, o, v in _delta(old.ports, new.ports):
            if v is not None and v.id != k:
                raise _Irregular(f"port {v.id} stored as {k}")
            dirty.add(("port", k))
            if o is not None:
                if o.device_id:
                    _drop(self.dev, o.device_id, k)
                    dirty.add(("dev", o.device_id))
                for f in o.fixed_ips:
                    _drop(self.on_subnet, f.subnet_id, k)
                    dirty.add(("port_subnet", f.subnet_id))
                if o.host == host and is_compute(o.device_owner):
                    for f in o.fixed_ips:
                        n = self.compute[f.subnet_id] - 1
                        if n:
                            self.compute[f.subnet_id] = n
                        else:
                            del self.compute[f.subnet_id]
            if v is not None:
                if v.device_id:
                    _put(self.dev, v.device_id, k, v)
                    dirty.add(("dev", v.device_id))
                for f in v.fixed_ips:
                    _put(self.on_subnet, f.subnet_id, k, v)
                    dirty.add(("port_subnet", f.subnet_id))
                if v.host == host and is_compute(v.device_owner):
                    for f in v.fixed_ips:
                        self.compute[f.subnet_id] = self.compute.get(f.subnet_id, 0) + 1
        for k, o, v in _delta(old.floatingips, new.floatingips):
            if v is not None and v.id != k:
                raise _Irregular(f"floating IP {v.id} stored as {k}")
            if o is not None and o.router_id:
                _drop(self.router_fips, o.router_id, k)
                dirty.add(("router_fips", o.router_id))
            if v is not None and v.router_id:
                _put(self.router_fips, v.router_id, k, v)
                dirty.add(("router_fips", v.router_id))
        self.cloud = new
        for d in dirty:
            self._sorted.pop(d, None)
        return dirty

    # Sorted bucket views, ordered exactly as the `Cloud` indexes order them (None: empty).
    def _view(self, key: Key, buckets: dict, sort_key: Callable) -> tuple | None:
        v = self._sorted.get(key)
        if v is None:
            b = buckets.get(key[1])
            if not b:
                return None
            v = self._sorted[key] = tuple(sorted(b.values(), key=sort_key))
        return v

    def subnets_of(self, net_id: str) -> tuple | None:
        return self._view(("subnets_of", net_id), self.net_subnets, lambda s: (s.cidr, s.id))

    def ports_of_device(self, device_id: str) -> tuple | None:
        return self._view(("dev", device_id), self.dev, lambda p: p.id)

    def ports_on_subnet(self, subnet_id: str) -> tuple | None:
        return self._view(("port_subnet", subnet_id), self.on_subnet, lambda p: p.id)

    def fips_of_router(self, router_id: str) -> tuple | None:
        # Ties (two FIPs of one router with one address: an invalid model) may order differently
        # from Cloud.fips_by_router; no output depends on that order (equal routes; nft elements
        # are a set).
        return self._view(("router_fips", router_id), self.router_fips, lambda f: f.floating_ip_address)


class _Tracked:
    """A read-only mapping answering from GETTER, recording (KIND, key) for every key asked."""
    __slots__ = ("getter", "kind", "reads")

    def __init__(self, kind: str, getter: Callable, reads: set | None):
        self.kind, self.getter, self.reads = kind, getter, reads

    def get(self, k, default=None):
        if self.reads is not None:
            self.reads.add((self.kind, k))
        v = self.getter(k)
        return default if v is None else v

    def __getitem__(self, k):
        if self.reads is not None:
            self.reads.add((self.kind, k))
        v = self.getter(k)
        if v is None:
            raise KeyError(k)
        return v

    def __contains__(self, k) -> bool:
        return self.get(k) is not None


class _View(Lookups):
    """What the namespace functions see of the cloud: `Cloud`'s own lookup methods (`Lookups`),
    over tracked mappings (no iteration: every read names its key)."""

    def __init__(self, idx: _Index, reads: set | None):
        c = idx.cloud
        self.networks = _Tracked("net", c.networks.get, reads)
        self.subnets = _Tracked("subnet", c.subnets.get, reads)
        self.routers = _Tracked("router", c.routers.get, reads)
        self.ports = _Tracked("port", c.ports.get, reads)
        self.subnets_by_network = _Tracked("subnets_of", idx.subnets_of, reads)
        self.ports_by_device = _Tracked("dev", idx.ports_of_device, reads)
        self.ports_by_subnet = _Tracked("port_subnet", idx.ports_on_subnet, reads)
        self.fips_by_router = _Tracked("router_fips", idx.fips_of_router, reads)


class _Cell:
    __slots__ = ("params", "reads", "value")

    def __init__(self, params, reads: frozenset, value):
        self.params, self.reads, self.value = params, reads, value


class _Fallback(Exception):
    pass


class HostPlanner:
    """`plan_host(cloud, host, cfg, hints)` for successive models of one host, incrementally.

    `plan(cloud, hints)` is equal to `plan_host(cloud, host, cfg, hints)`; unchanged namespaces are
    the same objects as in the previous result. `router_ids` are the routers on the host in the
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
        self._idx = _Index(self.host)
        self._cells: dict[Hashable, _Cell] = {}
        self._readers: dict[Key, set] = {}      # dependency key -> cells that read it
        self._stale: set = set()
        self._fip: dict[str, tuple] = {}        # network -> (parts, namespace) of the last merge
        self._bridge: tuple | None = None       # (records, namespace) of the last bridge namespace
        self._last: HostState | None = None

    # ---- cells -------------------------------------------------------------------------------
    def _invalidate(self, dirty: set[Key]) -> None:
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
        value = compute(_View(self._idx, reads))
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
        return (ns, tuple(br.links.values()), br.used)

    def _qrouter(self, r: Router, slot: int | None) -> tuple:
        def compute(view: _View) -> tuple:
            br = self._bridges()
            return self._record(qrouter_namespace(view, self.host, r, slot, br, self.cfg).freeze(), br)
        return self._cell(("qrouter", r.id), slot, compute, (("router", r.id),))

    def _snat(self, r: Router) -> tuple:
        def compute(view: _View) -> tuple:
            br = self._bridges()
            b = snat_namespace(view, r, br, self.cfg)
            return self._record(b.freeze() if b is not None else None, br)
        return self._cell(("snat", r.id), None, compute, (("router", r.id),))

    def _fip_ns(self, net_id: str, rs: list[Router], slots: dict[str, int]) -> tuple:
        host, cfg = self.host, self.cfg
        ids = tuple((r.id, slots[r.id]) for r in rs)

        def base(view: _View) -> tuple:
            fg = view.agent_gateway_port(host, net_id)
            assert fg is not None               # _plan plans a fip- namespace only with its fg- port
            net = view.network(net_id)
            br = self._bridges()
            ns, fg_dev = fip_base(view, net, fg, br, cfg)
            for rid, slot in ids:
                fip_router_link(ns, rid, slot, net, cfg)
            fip_tail(ns, fg_dev)
            return self._record(ns.freeze(), br)
        rec = self._cell(("fip", net_id), ids, base)

        parts = [rec[0]]
        for r in rs:
            def fip32s(view: _View, r=r) -> tuple:
                rr = fip_routes(view, host, r, slots[r.id])
                return frozenset(rr), frozenset(x.dst for x in rr)
            parts.append(self._cell(("fip-routes", net_id, r.id), slots[r.id], fip32s, (("router", r.id),)))
        last = self._fip.get(net_id)
        if last is not None and len(last[0]) == len(parts) and all(a is b for a, b in zip(last[0], parts)):
            return (last[1],) + rec[1:]
        small: Namespace = rec[0]
        if any(x.table == MAIN_TABLE_ID for x in small.routes):
            raise _Fallback("fip- namespace: a route in main besides the FIP /32s")
        routes = set(small.routes)
        dsts: set = set()
        total = 0
        for rr, dd in parts[1:]:
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
    def plan(self, cloud: Cloud, hints: Mapping[str, int] | None = None) -> HostState:
        try:
            return self._plan(cloud, hints)
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

    def _plan(self, cloud: Cloud, hints: Mapping[str, int] | None) -> HostState:
        t0 = time.perf_counter()
        self._used: set = set()
        self.recomputed = []
        idx = self._idx
        dirty = idx.update(cloud)
        self._invalidate(dirty)
        t1 = time.perf_counter()
        host = self.host
        h = cloud.hosts.get(host)
        if h is None:
            self.router_ids = ()
            self._sweep()
            return HostState(host, {})
        top = _View(idx, None)

        # placement.routers_on_host, over the index
        compute = idx.compute
        routers = sorted((r for r in cloud.routers.values() if r.distributed and any(
            f.subnet_id in compute for p in top.router_interfaces(r.id) for f in p.fixed_ips)),
            key=lambda r: r.id)
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
        if h.mode is AgentMode.DVR_SNAT:       # placement.snat_routers_on_host
            for r in sorted((r for r in cloud.routers.values()
                             if r.gateway is not None and r.distributed and snat_host(top, r.id) == host),
                            key=lambda r: r.id):
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
        for _, links, used in key:
            for lk in links:
                b.link(lk)
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
