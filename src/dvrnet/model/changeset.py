"""`ChangeSet`: one change to the model, and `apply`, which makes the next snapshot from it in O(change).

The interface every source of changes codes against (dvrnet's delta feed, Neutron's per-router
payloads, tests):

- `ChangeSet(upserts, deletes, revision=None)`:
  `upserts: tuple[resource, ...]` — `Network`, `Subnet`, `Router`, `Port`, `FloatingIP` or `Host`
  values, new or replacing the one with the same key; `deletes: tuple[tuple[kind, id], ...]` with
  kind one of `Cloud`'s collection names (`KINDS`: "networks", "subnets", "routers", "ports",
  "floatingips", "hosts"; a host's id is its name); `revision`: the source's revision after the
  change (None: the snapshot keeps its revision). A key is upserted or deleted at most once.
- `apply(cloud, changeset) -> (new Cloud, touched keys)`. The new `Cloud` shares every unchanged
  object with `cloud` (which is not modified: snapshots are never mutated); its collections are
  `immutables.Map`s (a persistent HAMT: one set is O(log n)) and its indexes are the parent's with
  only the touched buckets rebuilt; only the touched part is validated (see below). So applying
  costs O(change): O(log n) per changed resource plus, per touched index bucket, a copy of that
  bucket (a C-level tuple copy; a bucket is e.g. one router's FIPs). The first `apply` to a
  snapshot built from dicts (`Cloud.of`, a decoded view) converts it once, O(n).
  Touched keys are `(name, key)` pairs naming what a reader of the new snapshot may see differently
  from the old one: `(collection, id)` for every resource whose value changed (upserted with
  another value, or deleted) and `(index, bucket)` for every index bucket that changed
  (`cloud.INDEXES` names, plus "compute_subnets_by_host"). A planner that recorded the
  `(name, key)` pairs it read (plan/incremental.py) re-plans exactly what reads a touched key.
  An upsert equal to what the cloud holds and a delete of an absent key change nothing.
- `changeset_between(old, new)`: the ChangeSet that turns snapshot `old` into `new` (a full
  comparison, O(n); for sources that only have snapshots). `apply(old, changeset_between(old,
  new))` equals `new`.
- `changeset_replacing(cloud, scope, resources, keep=())`: for a source that sends a whole
  subgraph (a Neutron router's fetched payload): the ChangeSet that makes the keys in `scope`
  (what the model holds for that subgraph, e.g. `placement.router_scope(cloud, router_id)`) exactly
  `resources`: upserts for new or changed values, deletes for keys of `scope` absent from
  `resources` and not in `keep` (keys that other subgraphs still hold, e.g. a shared network).

Validation (`apply(..., validate=True)`, the default) checks, assuming `cloud` was valid, exactly
what `Cloud.validate` would find wrong with the result: every upserted resource against the rest
(its network, subnets, gateway network and gateway port, port, overlaps with the other subnets of
its network), no address held twice (the `held` index), and the dependents of a deleted or
re-shaped resource (the router of a changed gateway port; the floating IPs of a changed or deleted port; the ports and floating IPs of a subnet deleted or moved
to another CIDR or network; the subnets, ports, routers and floating IPs of a network deleted or
no longer external — the last two are a scan of those collections, rare changes). It raises
`InvalidInput` naming the field; `cloud` is untouched, so nothing is half-applied.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import immutables

from .cloud import (
    COLLECTIONS,
    INDEXES,
    Cloud,
    IndexSpec,
    check_fip,
    check_port,
    check_router,
    check_subnet_network,
    check_subnet_overlaps,
    compute_subnets,
    holds,
)
from .errors import InvalidInput
from .resources import DeviceOwner, FloatingIP, Host, Network, Port, Router, Subnet

KINDS = COLLECTIONS
GW_OWNER = DeviceOwner.ROUTER_GATEWAY.value
Resource = Network | Subnet | Router | Port | FloatingIP | Host
Key = tuple[str, str]
KIND_OF: dict[type, str] = {Network: "networks", Subnet: "subnets", Router: "routers", Port: "ports",
                            FloatingIP: "floatingips", Host: "hosts"}


def key_of(obj: Resource) -> Key:
    """(collection, id) of a resource; a host's id is its name."""
    if isinstance(obj, Host):
        return ("hosts", obj.name)
    kind = KIND_OF.get(type(obj))
    if kind is None:
        raise TypeError(f"not a model resource: {obj!r}")
    return (kind, obj.id)


@dataclass(frozen=True)
class ChangeSet:
    upserts: tuple[Resource, ...] = ()
    deletes: tuple[Key, ...] = ()
    revision: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "upserts", tuple(self.upserts))
        object.__setattr__(self, "deletes", tuple((str(k), str(i)) for k, i in self.deletes))
        seen: set[Key] = set()
        for o in self.upserts:
            k = key_of(o)
            if k in seen:
                raise InvalidInput("upserts", f"{k[0]} {k[1]} is upserted twice")
            seen.add(k)
        for k in self.deletes:
            if k[0] not in KINDS:
                raise InvalidInput("deletes", f"unknown kind {k[0]!r} (one of {', '.join(KINDS)})")
            if k in seen:
                raise InvalidInput("deletes", f"{k[0]} {k[1]} is both upserted and deleted, or deleted twice")
            seen.add(k)

    def resource_keys(self) -> set[Key]:
        return {key_of(o) for o in self.upserts} | set(self.deletes)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes)

    def __len__(self) -> int:
        return len(self.upserts) + len(self.deletes)


def _as_map(m: Mapping) -> immutables.Map:
    return m if isinstance(m, immutables.Map) else immutables.Map(m)


def _rebuild(bucket: tuple, removed: list, added: list, spec: IndexSpec) -> tuple:
    """BUCKET (ordered by spec.order) less REMOVED plus ADDED, by bisection: one list copy."""
    order = spec.order
    lst = list(bucket)
    for o in removed:
        i = bisect_left(lst, order(o), key=order)
        if i < len(lst) and lst[i].id == o.id:
            del lst[i]
        else:                                   # not where its order says: an inconsistent parent
            lst = [x for x in lst if x.id != o.id]
    for v in added:
        insort(lst, v, key=order)
    return tuple(lst)


def apply(cloud: Cloud, cs: ChangeSet, *, validate: bool = True) -> tuple[Cloud, frozenset[Key]]:
    changes: dict[str, list[tuple[str, Any, Any]]] = {k: [] for k in KINDS}   # kind -> (id, old, new)
    for v in cs.upserts:
        kind, i = key_of(v)
        o = getattr(cloud, kind).get(i)
        if o is not v and o != v:
            changes[kind].append((i, o, v))
    for kind, i in cs.deletes:
        o = getattr(cloud, kind).get(i)
        if o is not None:
            changes[kind].append((i, o, None))
    touched: set[Key] = set()
    colls: dict[str, Mapping] = {}
    for kind in KINDS:
        ch = changes[kind]
        coll = getattr(cloud, kind)
        if not ch:
            colls[kind] = coll
            continue
        with _as_map(coll).mutate() as mm:
            for i, _, v in ch:
                touched.add((kind, i))
                if v is None:
                    del mm[i]
                else:
                    mm[i] = v
            colls[kind] = mm.finish()
    if not touched and cs.revision in (None, cloud.revision):
        return cloud, frozenset()
    new = Cloud(colls["networks"], colls["subnets"], colls["routers"], colls["ports"], colls["floatingips"],
                colls["hosts"], cloud.revision if cs.revision is None else cs.revision)
    derived = new.__dict__
    for spec in INDEXES:
        ch = changes[spec.collection]
        parent = getattr(cloud, spec.name)
        if not ch:
            derived[spec.name] = parent
            continue
        edits: dict[str, tuple[list, list]] = {}
        for _, o, v in ch:
            ok = tuple(spec.keys(o)) if o is not None else ()
            vk = tuple(spec.keys(v)) if v is not None else ()
            for b in ok:
                edits.setdefault(b, ([], []))[0].append(o)
            for b in vk:
                edits.setdefault(b, ([], []))[1].append(v)
        with _as_map(parent).mutate() as mm:
            for b, (removed, added) in edits.items():
                cur = mm.get(b, ())
                nb = _rebuild(cur, removed, added, spec)
                if len(nb) == len(cur) and all(x is y for x, y in zip(nb, cur)):
                    continue
                touched.add((spec.name, b))
                if nb:
                    mm[b] = nb
                else:
                    del mm[b]
            derived[spec.name] = mm.finish()
    derived["compute_subnets_by_host"] = _compute_subnets(cloud, changes["ports"], touched)
    derived["held"] = _held(cloud, changes, validate)
    if validate:
        _validate(cloud, new, changes)
    return new, frozenset(touched)


def _compute_subnets(cloud: Cloud, ports: list, touched: set[Key]) -> Mapping[str, Mapping[str, int]]:
    parent = cloud.compute_subnets_by_host
    if not ports:
        return parent
    delta: dict[str, dict[str, int]] = {}
    for _, o, v in ports:
        for p, sign in ((o, -1), (v, 1)):
            if p is not None:
                for sid in compute_subnets(p):
                    d = delta.setdefault(p.host, {})
                    d[sid] = d.get(sid, 0) + sign
    if not any(any(d.values()) for d in delta.values()):
        return parent
    with _as_map(parent).mutate() as mm:
        for host, d in delta.items():
            if not any(d.values()):
                continue
            c = dict(mm.get(host, {}))
            for sid, n in d.items():
                n += c.get(sid, 0)
                if n > 0:
                    c[sid] = n
                else:
                    c.pop(sid, None)
            touched.add(("compute_subnets_by_host", host))
            if c:
                mm[host] = c
            else:
                del mm[host]
        out = mm.finish()
    return out


def _held(cloud: Cloud, changes: dict, validate: bool) -> Mapping[tuple[str, IPv4Address], Key]:
    parent = cloud.held
    if not changes["ports"] and not changes["floatingips"]:
        return parent
    with _as_map(parent).mutate() as mm:
        for kind in ("ports", "floatingips"):
            for i, o, _ in changes[kind]:
                if o is not None:
                    for h in holds(kind, o):
                        if mm.get(h) == (kind, i):
                            del mm[h]
        for kind in ("ports", "floatingips"):
            for i, _, v in changes[kind]:
                if v is None:
                    continue
                for h in holds(kind, v):
                    by = mm.get(h)
                    if by is not None and by != (kind, i):
                        if validate:
                            what = "port" if by[0] == "ports" else "floating IP"
                            field = "fixed_ips" if kind == "ports" else "floating_ip_address"
                            who = f"port {i}: " if kind == "ports" else ""
                            raise InvalidInput(field, f"{who}{h[1]} is already held by {what} {by[1]}")
                        continue
                    mm[h] = (kind, i)
        out = mm.finish()
    return out


def _validate(old: Cloud, new: Cloud, changes: dict) -> None:
    ports_to_check: dict[str, Port] = {}
    fips_to_check: dict[str, FloatingIP] = {}
    for _, _, v in changes["subnets"]:
        if v is not None:
            check_subnet_network(new, v)
            check_subnet_overlaps(new, v)
    routers_to_check: dict[str, Router] = {}
    for _, _, v in changes["routers"]:
        if v is not None:
            routers_to_check[v.id] = v
    for i, o, v in changes["ports"]:
        for p in (o, v):        # a router's gateway port changed: the router is checked again
            if p is not None and p.device_id and p.device_owner == GW_OWNER:
                r = new.routers.get(p.device_id)
                if r is not None:
                    routers_to_check[r.id] = r
        if v is not None:
            ports_to_check[i] = v
        if o is not None and (v is None or o.fixed_ips != v.fixed_ips or o.network_id != v.network_id):
            for f in new.fips_by_port.get(i, ()):
                fips_to_check[f.id] = f
    for i, _, v in changes["floatingips"]:
        if v is not None:
            fips_to_check[i] = v
    for i, o, v in changes["subnets"]:
        if v is None or o is None or (o.cidr, o.network_id) != (v.cidr, v.network_id):
            for p in old.ports_by_subnet.get(i, ()):
                q = new.ports.get(p.id)
                if q is not None:
                    ports_to_check[q.id] = q
            if o is not None:
                for f in new.floatingips.values():
                    if f.subnet_id == i:
                        fips_to_check[f.id] = f
    for i, o, v in changes["networks"]:
        if v is None or o is None or o.external != v.external:
            if v is None:
                for s in new.subnets_by_network.get(i, ()):
                    check_subnet_network(new, s)
                for p in new.ports.values():
                    if p.network_id == i:
                        ports_to_check[p.id] = p
            for r in new.routers.values():
                if r.gateway is not None and r.gateway.network_id == i:
                    routers_to_check[r.id] = r
            for f in new.floatingips.values():
                if f.floating_network_id == i:
                    fips_to_check[f.id] = f
    for r in routers_to_check.values():
        check_router(new, r)
    for p in ports_to_check.values():
        check_port(new, p)
    for f in fips_to_check.values():
        check_fip(new, f)


def changeset_between(old: Cloud, new: Cloud, revision: int | None = None) -> ChangeSet:
    """The ChangeSet that turns OLD into NEW (compares every collection: O(n), with an identity
    shortcut for shared objects). REVISION: default NEW's revision. Raises ValueError for a
    resource stored under another key than its own."""
    upserts: list[Resource] = []
    deletes: list[Key] = []
    for kind in KINDS:
        o, n = getattr(old, kind), getattr(new, kind)
        if o is n:
            continue
        get = o.get
        added = 0
        for k, v in n.items():
            w = get(k)
            if w is v:
                continue
            if key_of(v) != (kind, k):
                raise ValueError(f"{kind}: {key_of(v)[1]} stored as {k}")
            if w is None:
                added += 1
                upserts.append(v)
            elif w != v:
                upserts.append(v)
        if len(n) - added != len(o):
            deletes += [(kind, k) for k in o if k not in n]
    return ChangeSet(tuple(upserts), tuple(sorted(deletes)), new.revision if revision is None else revision)


def changeset_replacing(cloud: Cloud, scope: Iterable[Key], resources: Iterable[Resource],
                        keep: Iterable[Key] = (), revision: int | None = None) -> ChangeSet:
    """The ChangeSet that makes the part SCOPE of CLOUD exactly RESOURCES (see the module doc)."""
    given = {key_of(r): r for r in resources}
    upserts = tuple(r for k, r in given.items() if getattr(cloud, k[0]).get(k[1]) != r)
    keep_s = set(keep)
    deletes = tuple(sorted(k for k in set(scope) if k not in given and k not in keep_s
                           and k[1] in getattr(cloud, k[0])))
    return ChangeSet(upserts, deletes, revision)
