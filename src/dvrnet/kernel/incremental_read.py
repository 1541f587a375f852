"""Incremental reads: re-read only what netlink events say changed since the last read.

`IncrementalObserver.observe(desired)` computes the same `Observation` as `read.observe(desired)`
(the full reader), reading only the namespaces — and within them only the route slices, rules,
neighbours, nft tables or sysctls — that `watch.Watcher` events name.

Invariants:
- The result equals a full read (tests/kernel/test_watch.py compares them after every step).
- Unchanged namespaces keep the *same* `Namespace` object from pass to pass (the diff memo in
  `reconcile.diff.DiffMemo` relies on it).
- Anything the events cannot account for (a new namespace, an overflowed or failed socket, changed
  desired-side read parameters, `full=True`) is read in full; a namespace that cannot be read is
  reported in `Observation.unreadable` and dropped from the cache, never kept as stale or empty.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from dvrnet.plan.state import HostState, Namespace, Neighbour, Route
from dvrnet.reconcile.ownership import Ownership, owns_route_protocol, owns_sysctl

from . import iproute, netns, nft, sysctl
from .read import (
    Observation,
    RawNamespace,
    build_namespace,
    dump_raw,
    namespaces_to_read,
    parse_route,
    parse_rule,
    resolve_links,
)

ROUTE_SLICES_MAX = 64          # more (table, dst) slices than this in one namespace: dump all routes


@dataclass
class _Cached:
    raw: RawNamespace                  # links, nsids, neighbours and rules as last dumped
    value: Namespace
    params: tuple                      # what the value depends on besides the kernel (see _params)
    by_slice: dict[tuple[int, str], list[Route]] | None = None


def _params(want: Namespace | None) -> tuple:
    """The desired-side inputs of a namespace's observed value: `managed`, the sysctl keys read,
    and the rules of its nft tables (their tags map read-back rules to desired text)."""
    if want is None:
        return (True, (), ())
    return (want.managed, tuple(k for k in want.sysctls if owns_sysctl(k)),
            tuple((k, t.chains) for k, t in want.nft.items()))


def _peers(raw: RawNamespace) -> set[str]:
    """Namespaces whose dumps resolve this namespace's veth peers."""
    return {raw.nsids.get(int(d["link_netnsid"]), "") for d in raw.links
            if "link_netnsid" in d} - {""}


class IncrementalObserver:
    """`observe(desired)` with the same result as `read.observe(desired)`, reading only the
    namespaces (and within them only the route slices, rules, neighbours or nft tables) that
    netlink events say changed since they were last read (`watch.Watcher`).

    Everything is read again on `observe(desired, full=True)` (the agent's periodic resync), for
    a namespace that is new, whose socket overflowed or failed, or whose desired-side read
    parameters (sysctl keys, nft rules, managed) changed; sysctls have no events, so they are
    re-read only then. If the watcher itself fails, every namespace is read in full.
    Unchanged namespaces keep the *same* `Namespace` object from pass to pass (see
    `reconcile.diff.DiffMemo`). `reads` counts reads per namespace (tests, benchmarks).
    """

    def __init__(self, prefix: str = "", watcher=None) -> None:
        from .watch import Watcher
        self.prefix = prefix
        self.own = Ownership(prefix)
        self.watcher = watcher if watcher is not None else Watcher()
        self._cache: dict[str, _Cached] = {}
        self.reads: dict[str, int] = {}            # namespace -> full reads
        self.partial_reads: dict[str, int] = {}    # namespace -> partial reads
        self.last_dirty: dict[str, str] = {}       # namespace -> why it was read in the last pass
        self._sysctls: set[str] = set()            # namespaces whose sysctls we wrote since last read
        self._params_memo: dict[str, tuple[Namespace | None, tuple]] = {}

    def _params(self, n: str, want: Namespace | None) -> tuple:
        """`_params(want)`, computed once per desired namespace object (frozen)."""
        hit = self._params_memo.get(n)
        if hit is not None and hit[0] is want:
            return hit[1]
        out = _params(want)
        self._params_memo[n] = (want, out)
        return out

    def applied(self, ops) -> None:
        """Tell the reader what was just applied: sysctls have no events, so the namespaces
        whose sysctls were written are read again (their sysctls) by the next observe."""
        from dvrnet.reconcile.ops import SysctlSet
        self._sysctls |= {op.ns for op in ops if isinstance(op, SysctlSet)}

    def close(self) -> None:
        self.watcher.close()
        self._cache.clear()

    def invalidate(self, names=None) -> None:
        """Forget what was read (all, or `names`): they are read in full next time."""
        for n in list(self._cache) if names is None else names:
            self._cache.pop(n, None)
            self._params_memo.pop(n, None)

    def pending(self) -> bool:
        """True when something changed since the last read (events queued, namespaces gone/new)."""
        try:
            dirt = self.watcher.poll()
        except OSError:
            return True
        for n, d in dirt.items():                  # keep them for the next observe
            self.watcher._pending[n] = d
        names = set(netns.list_names())
        return (bool(dirt) or any(n not in names for n in self._cache)
                or any(n not in self._cache and self.own.owns_namespace(n) for n in names))

    def observe(self, desired: HostState, full: bool = False) -> Observation:
        from .watch import Dirt
        names = namespaces_to_read(desired, self.own)
        present = set(names)
        gone = [n for n in self._cache if n not in present]
        # namespaces that resolved a veth peer through a namespace that is now gone
        gone_set = set(gone)
        refer = {n for n, c in self._cache.items() if n in present and _peers(c.raw) & gone_set} if gone else set()
        self.invalidate(gone)
        self.watcher.discard([n for n in self.watcher.names() if n not in present])
        why: dict[str, str] = {}
        try:
            if full:
                self.watcher.poll()                # drop queued events: everything is read anyway
                dirt = {n: Dirt(full=True, why=["full resync"]) for n in names}
            else:
                dirt = self.watcher.poll()
            errors = self.watcher.add([n for n in names if n not in self.watcher])
        except OSError as e:                       # the watcher is unsure: read everything
            self.watcher.close()
            from .watch import Watcher
            self.watcher = Watcher()
            errors = self.watcher.add(names)
            dirt = {n: Dirt(full=True, why=[f"watcher failed: {e}"]) for n in names}
        jobs: dict[str, Dirt] = {}
        for n in names:
            d = dirt.get(n) or Dirt()
            c = self._cache.get(n)
            want = desired.namespaces.get(n)
            if c is None:
                d.mark_full("new" if n not in errors else f"unwatched: {errors[n]}")
            elif c.params != self._params(n, want):
                d.mark_full("desired read parameters changed")
            elif n in refer:
                d.mark_full("veth peer namespace gone")
            if n in errors:                        # no socket: never trust the cache for it
                self._cache.pop(n, None)
            if not d.full and not self.watcher.watches_nft(n):
                d.nft = True
            if n in self._sysctls:
                d.sysctls = True
            if d:
                jobs[n] = d
                why[n] = "; ".join(d.why) if d.full else ", ".join(
                    x for x, on in (("routes", bool(d.routes)), ("rules", d.rules),
                                    ("neighbours", d.neigh), ("nft", d.nft), ("sysctls", d.sysctls)) if on)
        bad: dict[str, str] = {}
        bad_nft: dict[str, str] = {}

        def one(n: str):
            try:
                return self._read(n, jobs[n], desired.namespaces.get(n), bad_nft)
            except netns.MissingNamespace:
                return None
            except (iproute.ReadError, OSError) as e:
                bad[n] = f"cannot read: {e}"
                return None

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip(jobs, pool.map(one, jobs)))
        self._sysctls -= set(results)
        reread = set()
        relinked = set()        # read again with a new link dump (a partial read keeps the old one)
        for n, res in results.items():
            if res is None:
                self._cache.pop(n, None)
                continue
            old = self._cache.get(n)
            if old is None or res.raw.links is not old.raw.links or res.raw.nsids is not old.raw.nsids:
                relinked.add(n)
            self._cache[n] = res
            reread.add(n)
        # veth peers: rebuild the links of namespaces whose peers' link dumps were read again
        # (links come only from link dumps: a namespace whose own and whose peers' dumps are the
        # same objects as last time would rebuild the links it has)
        if relinked:
            by_ns = {n: c.raw for n, c in self._cache.items()}
            for n, c in self._cache.items():
                if n in results or not (_peers(c.raw) & relinked):
                    continue
                links = resolve_links(c.raw, by_ns)
                if links != c.value.links:
                    c.value = replace(c.value, links=links)
            for n in reread:                        # links of a namespace read in this pass
                c = self._cache[n]
                if n in relinked or _peers(c.raw) & relinked:
                    links = resolve_links(c.raw, by_ns)
                    if links != c.value.links:
                        c.value = replace(c.value, links=links)
        for n in reread:
            c = self._cache[n]
            idx = {d["ifname"]: d["ifindex"] for d in c.raw.links}
            self.watcher.set_neighbours(n, {(idx.get(x.dev, -1), x.ip) for x in c.value.neighbours})
        self.last_dirty = why
        out = {n: self._cache[n].value for n in names if n in self._cache and n not in bad}
        for n in bad_nft:
            self._cache.pop(n, None)               # nft unreadable: read it all next time
        return Observation(HostState(desired.host, out), bad, bad_nft)

    def _read(self, n: str, d, want: Namespace | None, bad_nft: dict[str, str]) -> _Cached | None:
        c = self._cache.get(n)
        if d.full or c is None:
            self.reads[n] = self.reads.get(n, 0) + 1
            keys = [k for k in (want.sysctls if want else {}) if owns_sysctl(k)]
            raw, sysctls = dump_raw(n), sysctl.read(n, keys)
            try:
                tables = nft.read_tables(n, dict(want.nft) if want else {})
            except (iproute.ReadError, OSError) as e:
                bad_nft[n], tables = f"cannot read nftables: {e}", {}
            value = build_namespace(raw, {n: raw}, want, sysctls, tables)   # links fixed up by the caller
            return _Cached(raw, value, self._params(n, want))
        self.partial_reads[n] = self.partial_reads.get(n, 0) + 1
        cmds: list[str] = []
        slices = sorted(d.routes) if len(d.routes) <= ROUTE_SLICES_MAX else None
        if d.routes:
            cmds += ([f"route show table {t} exact {dst} proto 94" for t, dst in slices]
                     if slices is not None else ["route show table all proto 94"])
        if d.rules:
            cmds.append("rule show")
        if d.neigh:
            cmds.append("neigh show nud permanent")
        value, raw = c.value, c.raw
        # the nft read (a process when the table changed) runs beside the `ip` dump
        # (our own element transactions since: verified by the generation, nft.committed)
        nft_job = _Background(lambda: nft.read_tables(n, dict(want.nft) if want else {}, trust_commits=True)) \
            if d.nft else None
        if cmds:
            try:
                res = iproute.dump(n, cmds)
            except BaseException:
                if nft_job is not None:
                    nft_job.wait()
                raise
            i = 0
            if d.routes and slices is None:
                routes = frozenset(parse_route(r) for r in res[0] if ":" not in r.get("dst", ""))
                c.by_slice, i = None, 1
            elif d.routes:
                if c.by_slice is None:
                    c.by_slice = {}
                    for r in value.routes:
                        c.by_slice.setdefault((r.table, r.dst), []).append(r)
                stale, fresh = [], []
                for (t, dst), rows in zip(slices, res[:len(slices)]):
                    stale += c.by_slice.pop((t, dst), [])
                    new = [parse_route({**r, "table": r.get("table", t)}) for r in rows
                           if ":" not in r.get("dst", "")]
                    if new:
                        c.by_slice[(t, dst)] = new
                    fresh += new
                routes = value.routes.difference(stale).union(fresh)
                i = len(slices)
            else:
                routes = value.routes
            rules, neigh = value.rules, value.neighbours
            if d.rules:
                raw = replace(raw, rules=[r for r in res[i] if owns_route_protocol(r.get("protocol"))])
                rules = frozenset(parse_rule(r) for r in raw.rules)
                i += 1
            if d.neigh:
                raw = replace(raw, neigh=[x for x in res[i] if "PERMANENT" in x.get("state", [])])
                neigh = frozenset(Neighbour(x["dev"], x["dst"], x.get("lladdr", "")) for x in raw.neigh
                                  if ":" not in x["dst"])
            value = replace(value, routes=routes, rules=rules, neighbours=neigh)
        if d.sysctls:
            sysctls = sysctl.read(n, [k for k in (want.sysctls if want else {}) if owns_sysctl(k)])
            if sysctls != value.sysctls:
                value = replace(value, sysctls=sysctls)
        if nft_job is not None:
            try:
                tables = nft_job.result()
            except (iproute.ReadError, OSError) as e:
                bad_nft[n], tables = f"cannot read nftables: {e}", {}
            if tables != value.nft:
                value = replace(value, nft=tables)
        return _Cached(raw, value, c.params, c.by_slice)


class _Background:
    """fn() in a thread; `result()` joins and returns or raises what it did."""

    def __init__(self, fn) -> None:
        self._box: dict[str, object] = {}

        def body() -> None:
            try:
                self._box["r"] = fn()
            except BaseException as e:  # noqa: BLE001 - handed to result(), not swallowed
                self._box["e"] = e
        self._t = threading.Thread(target=body, name="dvrnet-read-nft", daemon=True)
        self._t.start()

    def wait(self) -> None:
        self._t.join()

    def result(self):
        self._t.join()
        if "e" in self._box:
            raise self._box["e"]                # type: ignore[misc]  # the box holds the exception the thread raised
        return self._box["r"]
