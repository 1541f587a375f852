"""Where things live: which routers, FIPs and namespaces belong on which host, and which resources
concern a host. Pure. This is the one placement: the planners, the server's Workspace (agent
gateway ports), the server's host view and the per-host delta filter (`ViewTracker`) all call it.

The rules (DVR, as upstream Neutron places them):
- a distributed router is *on* a host when a compute port bound to that (registered) host has an
  address in a subnet the router has an interface on (`routers_on_host`; its inverse, the hosts
  of one router, is `router_hosts`);
- its SNAT part (`snat-` namespace) is on the host its `network:router_gateway` port is bound to
  (the server schedules it on a `dvr_snat` host);
- a FIP is on the host its port is bound to, when the port is a compute port of a router that is on
  that host and the router's gateway is on the FIP's network (`fip_host`, `local_fips`);
- a host needs the `fip-` namespace (and an agent-gateway port) of external network N when a router
  with its gateway on N is on that host.

What concerns a host (its *view*, `view_keys` / `host_view`: what its agent is sent) is the union
of the host's own scope, the scopes of the routers placed there (on it, or SNAT on it) and the
places of those routers' FIPs served there:
- `host_scope(H)`: the host, its agent-gateway ports, their networks with all of their subnets;
- `router_scope(R)`: the router, all of its ports (interfaces, gateway, centralized SNAT), every
  port with an address on one of its interface subnets (the agent writes permanent neighbours for
  them), and the networks of all of these and of its gateway, with all of their subnets (so the
  view validates: every fixed IP's subnet is present, and the agent sees every external subnet);
  no FIPs;
- `fip_place(F)`: a FIP is in H's view iff `fip_host(F)` is H (its port, a compute port, is bound
  to H, and its router has its gateway on the FIP's network) and its router is placed on H; it
  brings its port and the port's network with all of its subnets (its floating network and
  subnet are the router's gateway network, in `router_scope`). Nothing else reads other hosts'
  FIPs: the planners and the reporter take `local_fips` (the same `fip_host`), the server's
  status shows a FIP from its port's host's report, `dvrnet trace` on one node asks the API where
  a FIP that is not in its view is served. So a FIP concerns exactly one host (none while
  unassociated or its port unbound); moving its port, re-associating it or deleting the port moves
  or removes it in exactly the old and new hosts' views.
A bigger view than strictly needed is fine; a smaller one is a bug.

The scope functions read the cloud through `CloudView`'s keyed lookups only, so run over a
`tracked.TrackedView` they record what they depend on; `ViewTracker` uses that to keep, across
snapshots, every router's hosts and scope, every host's scope and every FIP's place, recomputing only those whose
reads a change touched, and to turn each change into exactly the per-host view changes.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from .changeset import ChangeSet, Key, Resource, apply, changeset_between
from .cloud import Cloud, CloudView, KeyLookup
from .errors import NotFound
from .resources import AgentMode, DeviceOwner, FloatingIP, Host, Port, Router, is_compute
from .tracked import TrackedView

AGW = DeviceOwner.AGENT_GATEWAY.value
CellKey = tuple[str, str]       # ("hosts_of" | "scope", router id), ("hostscope", host) or ("fip", FIP id)


class PlacementSource(Protocol):
    """What the host-level placement reads: a `Cloud`, or the Workspace's tables mid-transaction."""
    @property
    def routers(self) -> Mapping[str, Router]: ...
    @property
    def hosts(self) -> Mapping[str, Host]: ...
    @property
    def compute_subnets_by_host(self) -> KeyLookup[Mapping[str, int]]: ...
    def router_interfaces(self, router_id: str) -> tuple[Port, ...]: ...
    def gateway_port(self, router_id: str) -> Port | None: ...


def compute_subnets_on_host(cloud: PlacementSource, host: str) -> set[str]:
    return set(cloud.compute_subnets_by_host.get(host, {}))


def routers_on_host(cloud: PlacementSource, host: str) -> tuple[Router, ...]:
    """Distributed routers that need a qrouter- namespace on `host`, sorted by id."""
    if host not in cloud.hosts:
        return ()
    subnets = cloud.compute_subnets_by_host.get(host, {})
    if not subnets:
        return ()
    out = []
    for r in cloud.routers.values():
        if not r.distributed:
            continue
        if any(f.subnet_id in subnets for p in cloud.router_interfaces(r.id) for f in p.fixed_ips):
            out.append(r)
    return tuple(sorted(out, key=lambda r: r.id))


def snat_host(cloud: CloudView | PlacementSource, router_id: str) -> str | None:
    gw = cloud.gateway_port(router_id)
    return gw.host if gw is not None and gw.host else None


def snat_routers_on_host(cloud: PlacementSource, host: str) -> tuple[Router, ...]:
    h = cloud.hosts.get(host)
    if h is None or h.mode is not AgentMode.DVR_SNAT:
        return ()
    return tuple(sorted((r for r in cloud.routers.values()
                         if r.gateway is not None and r.distributed and snat_host(cloud, r.id) == host),
                        key=lambda r: r.id))


def placed_routers(cloud: PlacementSource, host: str) -> tuple[Router, ...]:
    """The routers whose scope is in `host`'s view: on it, or with their SNAT on it; by id."""
    out = {r.id: r for r in routers_on_host(cloud, host)}
    out.update((r.id, r) for r in snat_routers_on_host(cloud, host))
    return tuple(out[k] for k in sorted(out))


def router_hosts(cloud: CloudView, router_id: str) -> frozenset[str]:
    """The inverse of `placed_routers`: the hosts whose view holds the router (on them or SNAT)."""
    r = cloud.routers.get(router_id, None)
    if r is None:
        return frozenset()
    out: set[str] = set()
    hosts = cloud.hosts
    if r.distributed:
        for p in cloud.router_interfaces(router_id):
            for f in p.fixed_ips:
                for q in cloud.ports_by_subnet.get(f.subnet_id, ()):
                    if q.host and q.host not in out and is_compute(q.device_owner) and q.host in hosts:
                        out.add(q.host)
        if r.gateway is not None:
            sh = snat_host(cloud, router_id)
            if sh is not None:
                h = hosts.get(sh, None)
                if h is not None and h.mode is AgentMode.DVR_SNAT:
                    out.add(sh)
    return frozenset(out)


def fip_networks_on_host(cloud: PlacementSource, host: str) -> tuple[str, ...]:
    """External networks whose fip- namespace (and agent-gateway port) `host` needs."""
    return tuple(sorted({r.gateway.network_id for r in routers_on_host(cloud, host) if r.gateway is not None}))


def _fip_port(v: CloudView, f: FloatingIP) -> Port | None:
    if f.port_id is None or f.router_id is None:
        return None
    r = v.routers.get(f.router_id, None)
    if r is None or r.gateway is None or r.gateway.network_id != f.floating_network_id:
        return None
    port = v.ports.get(f.port_id, None)
    if port is None or not port.host or not is_compute(port.device_owner):
        return None
    return port


def fip_host(v: CloudView, f: FloatingIP) -> str | None:
    """The host that serves FIP F (DVR, as Neutron sends a FIP only to its port's host): the host
    its port is bound to, when the port is a compute port and the FIP's router has its gateway on
    the FIP's network; None when no host serves it (unassociated, port unbound or not a VM's,
    router without that gateway). Whether the router is on that host is the caller's question."""
    port = _fip_port(v, f)
    return port.host if port is not None else None


def local_fips(cloud: CloudView, host: str, router: Router) -> tuple[FloatingIP, ...]:
    """FIPs served by `router` on `host` (`fip_host` is `host`), sorted by address."""
    if router.gateway is None:
        return ()
    out = [f for f in cloud.fips_by_router.get(router.id, ()) if fip_host(cloud, f) == host]
    return tuple(sorted(out, key=lambda f: f.floating_ip_address))


def hosts_needing_agent_gateway(cloud: PlacementSource) -> set[tuple[str, str]]:
    """(host, external network) pairs that need an agent-gateway port: every (H, N) with N in
    `fip_networks_on_host(H)`, computed in one pass (O(routers + the hosts' compute subnets))."""
    nets_by_subnet: dict[str, set[str]] = {}
    for r in cloud.routers.values():
        if not r.distributed or r.gateway is None:
            continue
        for p in cloud.router_interfaces(r.id):
            for f in p.fixed_ips:
                nets_by_subnet.setdefault(f.subnet_id, set()).add(r.gateway.network_id)
    out: set[tuple[str, str]] = set()
    for host in cloud.hosts:
        for sid in cloud.compute_subnets_by_host.get(host, {}):
            out.update((host, net) for net in nets_by_subnet.get(sid, ()))
    return out


# ---- what concerns a host ---------------------------------------------------------------------
def _with_networks(v: CloudView, keys: set[Key], nets: Iterable[str]) -> None:
    for n in nets:
        if n in v.networks:
            keys.add(("networks", n))
        for s in v.subnets_by_network.get(n, ()):
            keys.add(("subnets", s.id))


def router_scope(v: CloudView, router_id: str) -> frozenset[Key]:
    """The keys of router `router_id`'s part of a host view, FIPs apart (see the module doc); empty
    if absent."""
    r = v.routers.get(router_id, None)
    if r is None:
        return frozenset()
    ports: dict[str, Port] = {p.id: p for p in v.ports_by_device.get(router_id, ())}
    for p in v.router_interfaces(router_id):
        for f in p.fixed_ips:
            for q in v.ports_by_subnet.get(f.subnet_id, ()):
                ports[q.id] = q
    keys: set[Key] = {("routers", router_id)}
    keys.update(("ports", i) for i in ports)
    nets = {p.network_id for p in ports.values()}
    if r.gateway is not None:
        nets.add(r.gateway.network_id)
    _with_networks(v, keys, sorted(nets))
    return frozenset(keys)


FipPlace = tuple[str, str, frozenset[Key]]      # (router, host, keys)


def fip_place(v: CloudView, fip_id: str) -> FipPlace | None:
    """Where FIP `fip_id` is needed: (its router, `fip_host`, the keys it brings to that host's view:
    itself, its port, the port's network with all of its subnets); None when no host needs it. The
    host's view holds them while the router is placed there (see the module doc)."""
    f = v.floatingips.get(fip_id, None)
    port = _fip_port(v, f) if f is not None else None
    if f is None or f.router_id is None or port is None:
        return None
    keys: set[Key] = {("floatingips", fip_id), ("ports", port.id)}
    _with_networks(v, keys, (port.network_id,))
    return f.router_id, port.host, frozenset(keys)


def router_fips_scope(v: CloudView, router_id: str, host: str) -> frozenset[Key]:
    """The keys the FIPs of router `router_id` bring to `host`'s view (`fip_place` there)."""
    keys: set[Key] = set()
    for f in v.fips_by_router.get(router_id, ()):
        place = fip_place(v, f.id)
        if place is not None and place[1] == host:
            keys |= place[2]
    return frozenset(keys)


def host_scope(v: CloudView, host: str) -> frozenset[Key]:
    """The keys of `host`'s own part of its view: itself, its agent-gateway ports, their networks."""
    if host not in v.hosts:
        return frozenset()
    keys: set[Key] = {("hosts", host)}
    nets = set()
    for p in v.ports_by_device.get(host, ()):
        if p.device_owner == AGW:
            keys.add(("ports", p.id))
            nets.add(p.network_id)
    _with_networks(v, keys, sorted(nets))
    return frozenset(keys)


def view_keys(cloud: Cloud, host: str) -> frozenset[Key]:
    """The (collection, id) keys of everything that concerns `host` (empty for an unknown host)."""
    if host not in cloud.hosts:
        return frozenset()
    keys = set(host_scope(cloud, host))
    for r in placed_routers(cloud, host):
        keys |= router_scope(cloud, r.id)
        keys |= router_fips_scope(cloud, r.id, host)
    return frozenset(keys)


def sub_cloud(cloud: Cloud, keys: Iterable[Key]) -> Cloud:
    """The resources of CLOUD named by KEYS, as a Cloud (keeping CLOUD's revision)."""
    out: dict[str, dict] = {k: {} for k in ("networks", "subnets", "routers", "ports", "floatingips", "hosts")}
    for kind, i in keys:
        o = getattr(cloud, kind).get(i)
        if o is not None:
            out[kind][i] = o
    return Cloud(out["networks"], out["subnets"], out["routers"], out["ports"], out["floatingips"],
                 out["hosts"], cloud.revision)


def host_view(cloud: Cloud, host: str) -> Cloud:
    """What `host`'s agent needs to know: the sub-Cloud of `view_keys` (NotFound for an unknown host)."""
    if host not in cloud.hosts:
        raise NotFound("Host", host)
    return sub_cloud(cloud, view_keys(cloud, host))


# ---- the per-host delta filter ------------------------------------------------------------------
class _Cell:
    __slots__ = ("reads", "value")

    def __init__(self, value, reads: frozenset):
        self.value, self.reads = value, reads


class ViewTracker:
    """Follows successive snapshots of the whole cloud and tells, per step, how every host's view
    (`view_keys`, with the resources' values) changed: `advance(new, touched)` returns
    {host: ChangeSet} for exactly the hosts whose view changed, each ChangeSet turning the host's
    old view into its new one (`apply(host_view(old, H), cs) == host_view(new, H)`, tested).

    It keeps four kinds of cells, each computed over a `TrackedView` (so with recorded reads) and
    recomputed only when a touched key meets its reads: `router_hosts(R)` for every router,
    `router_scope(R)` for every router placed somewhere, `host_scope(H)` for every host and
    `fip_place(F)` for every FIP (indexed by (router, host) and by the keys it brings). A change
    then costs the cells it touches (e.g. one FIP: its own cell) plus, per concerned host, a
    membership test per candidate key over the host's scope, its placed routers' scopes and the
    FIP cells holding the key. The first `advance` (or one after `reset`) computes every cell and
    returns {} (no previous views)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.cloud: Cloud | None = None
        self._cells: dict[CellKey, _Cell] = {}
        self._readers: dict[Key, set[CellKey]] = {}
        self._placed: dict[str, set[str]] = {}      # host -> routers placed there (router_hosts inverse)
        self._fips_at: dict[tuple[str, str], set[str]] = {}   # (router, host) -> FIPs placed there
        self._holders: dict[Key, set[str]] = {}     # key -> FIPs whose place brings it

    # ---- cells ----
    def _compute(self, cloud: Cloud, key: CellKey) -> _Cell:
        reads: set = set()
        v = TrackedView(cloud, reads)
        kind, arg = key
        value = (router_hosts(v, arg) if kind == "hosts_of" else
                 router_scope(v, arg) if kind == "scope" else
                 fip_place(v, arg) if kind == "fip" else host_scope(v, arg))
        return _Cell(value, frozenset(reads))

    def _set(self, key: CellKey, cell: _Cell | None) -> None:
        old = self._cells.pop(key, None)
        if old is not None:
            for r in old.reads:
                cs = self._readers.get(r)
                if cs is not None:
                    cs.discard(key)
                    if not cs:
                        del self._readers[r]
            if key[0] == "fip" and old.value is not None:
                self._index_fip(key[1], old.value, add=False)
        if cell is not None:
            self._cells[key] = cell
            for r in cell.reads:
                self._readers.setdefault(r, set()).add(key)
            if key[0] == "fip" and cell.value is not None:
                self._index_fip(key[1], cell.value, add=True)

    def _index_fip(self, fid: str, place: FipPlace, add: bool) -> None:
        rid, host, keys = place
        _index(self._fips_at, (rid, host), fid, add)
        for k in keys:
            _index(self._holders, k, fid, add)

    def _value(self, key: CellKey) -> frozenset:
        c = self._cells.get(key)
        return c.value if c is not None else frozenset()

    def _place(self, fid: str) -> FipPlace | None:
        c = self._cells.get(("fip", fid))
        return c.value if c is not None else None

    def _start(self, cloud: Cloud) -> None:
        self.reset()
        self.cloud = cloud
        for rid in cloud.routers:
            self._set(("hosts_of", rid), self._compute(cloud, ("hosts_of", rid)))
            for h in self._value(("hosts_of", rid)):
                self._placed.setdefault(h, set()).add(rid)
        for rid in {r for rs in self._placed.values() for r in rs}:
            self._set(("scope", rid), self._compute(cloud, ("scope", rid)))
        for h in cloud.hosts:
            self._set(("hostscope", h), self._compute(cloud, ("hostscope", h)))
        for fid in cloud.floatingips:
            self._set(("fip", fid), self._compute(cloud, ("fip", fid)))

    def placed(self, host: str) -> frozenset[str]:
        return frozenset(self._placed.get(host, ()))

    def view_keys(self, host: str) -> frozenset[Key]:
        """`view_keys(self.cloud, host)`, from the cells."""
        keys = set(self._value(("hostscope", host)))
        if not keys:
            return frozenset()
        for rid in self._placed.get(host, ()):
            keys |= self._value(("scope", rid))
            for fid in self._fips_at.get((rid, host), ()):
                place = self._place(fid)
                if place is not None:
                    keys |= place[2]
        return frozenset(keys)

    # ---- one step ----
    def advance(self, new: Cloud, touched: Iterable[Key] | None = None) -> dict[str, ChangeSet]:
        """Move to NEW; TOUCHED: `apply`'s touched keys from the last cloud to NEW (None: found by
        comparing the two). Returns the per-host view changes."""
        old = self.cloud
        if old is None:
            self._start(new)
            return {}
        if new is old:
            return {}
        if touched is None:
            touched = apply(old, changeset_between(old, new), validate=False)[1]
        touched_s = set(touched)
        stale: set[CellKey] = set()
        for k in touched_s:
            cs = self._readers.get(k)
            if cs:
                stale |= cs
            missing = {"routers": "hosts_of", "hosts": "hostscope", "floatingips": "fip"}.get(k[0])
            if missing is not None and (missing, k[1]) not in self._cells:
                stale.add((missing, k[1]))
        prev: dict[CellKey, frozenset] = {}       # old values of the scope cells recomputed
        prev_fip: dict[str, FipPlace | None] = {}  # old places of the FIP cells recomputed
        entered: dict[str, set[str]] = {}           # host -> routers placed there now, not before
        left: dict[str, set[str]] = {}
        self.cloud = new
        for key in sorted((k for k in stale if k[0] == "hosts_of"), key=str):
            prev[key] = self._value(key)
            rid = key[1]
            self._set(key, self._compute(new, key) if rid in new.routers else None)
            was, now = prev[key], self._value(key)
            for h in was - now:
                left.setdefault(h, set()).add(rid)
                self._placed[h].discard(rid)
                if not self._placed[h]:
                    del self._placed[h]
            for h in now - was:
                entered.setdefault(h, set()).add(rid)
                self._placed.setdefault(h, set()).add(rid)
        for key in sorted((k for k in stale if k[0] != "hosts_of"), key=str):
            kind, arg = key
            if kind == "fip":
                prev_fip[arg] = self._place(arg)
                self._set(key, self._compute(new, key) if arg in new.floatingips else None)
                continue
            prev[key] = self._value(key)
            exists = arg in (new.routers if kind == "scope" else new.hosts)
            self._set(key, self._compute(new, key) if exists else None)
        for hs in entered.values():                 # a router placed for the first time: its scope
            for rid in hs:
                key = ("scope", rid)
                if key not in self._cells:
                    prev.setdefault(key, frozenset())
                    self._set(key, self._compute(new, key))

        def old_value(key: CellKey) -> frozenset:  # the value before this step
            return prev[key] if key in prev else self._value(key)

        def old_place(fid: str) -> FipPlace | None:
            return prev_fip[fid] if fid in prev_fip else self._place(fid)

        def fip_keys(rid: str, h: str, place: Callable[[str], FipPlace | None]) -> set[Key]:
            out: set[Key] = set()
            for fid in self._fips_at.get((rid, h), ()):
                p = place(fid)
                if p is not None:
                    out |= p[2]
            return out

        resources = {k for k in touched_s if k[0] in _KINDS}
        candidates: dict[str, set[Key]] = {}
        for h, rids in entered.items():
            for rid in rids:
                candidates.setdefault(h, set()).update(self._value(("scope", rid)), fip_keys(rid, h, self._place))
        for h, rids in left.items():
            for rid in rids:
                candidates.setdefault(h, set()).update(old_value(("scope", rid)), fip_keys(rid, h, old_place))
        for key, was in prev.items():
            kind, arg = key
            if kind == "hosts_of":
                continue
            now = self._value(key)
            cand = (was ^ now) | ((was | now) & resources)
            if not cand:
                continue
            if kind == "hostscope":
                candidates.setdefault(arg, set()).update(cand)
            else:
                for h in old_value(("hosts_of", arg)) | self._value(("hosts_of", arg)):
                    candidates.setdefault(h, set()).update(cand)
        old_holders: dict[Key, set[str]] = {}       # key -> recomputed FIPs whose old place brought it
        for fid, was_p in prev_fip.items():
            now_p = self._place(fid)
            k0 = was_p[2] if was_p is not None else frozenset()
            k1 = now_p[2] if now_p is not None else frozenset()
            for k in k0:
                old_holders.setdefault(k, set()).add(fid)
            if was_p is not None and now_p is not None and was_p[:2] == now_p[:2]:
                cand = (k0 ^ k1) | ((k0 | k1) & resources)
                if cand:
                    candidates.setdefault(now_p[1], set()).update(cand)
                continue
            if was_p is not None:
                candidates.setdefault(was_p[1], set()).update(k0)
            if now_p is not None:
                candidates.setdefault(now_p[1], set()).update(k1)

        def in_fips(c: Key, h: str, placed: set[str], place: Callable[[str], FipPlace | None],
                    holders: Iterable[str]) -> bool:
            for fid in holders:
                p = place(fid)
                if p is not None and p[1] == h and p[0] in placed and c in p[2]:
                    return True
            return False

        out: dict[str, ChangeSet] = {}
        for h, keys in candidates.items():
            placed_now = self._placed.get(h, set())
            placed_old = (placed_now - entered.get(h, set())) | left.get(h, set())
            hs_old, hs_new = old_value(("hostscope", h)), self._value(("hostscope", h))
            scopes_old = [old_value(("scope", r)) for r in placed_old]
            scopes_new = [self._value(("scope", r)) for r in placed_now]
            upserts: list[Resource] = []
            deletes: list[Key] = []
            for c in sorted(keys):
                in_old = bool(hs_old) and (c in hs_old or any(c in s for s in scopes_old) or in_fips(
                    c, h, placed_old, old_place, self._holders.get(c, set()) | old_holders.get(c, set())))
                in_new = bool(hs_new) and (c in hs_new or any(c in s for s in scopes_new) or in_fips(
                    c, h, placed_now, self._place, self._holders.get(c, ())))
                if in_new and (not in_old or c in resources):
                    upserts.append(getattr(new, c[0])[c[1]])
                elif in_old and not in_new:
                    deletes.append(c)
            if upserts or deletes:
                out[h] = ChangeSet(tuple(upserts), tuple(deletes), new.revision)
        for rid in {k[1] for k in stale if k[0] in ("hosts_of", "scope")}:   # scopes of routers placed nowhere
            if ("scope", rid) in self._cells and not self._value(("hosts_of", rid)):
                self._set(("scope", rid), None)
        return out


def _index(index: dict, k, v: str, add: bool) -> None:
    if add:
        index.setdefault(k, set()).add(v)
        return
    vs = index.get(k)
    if vs is not None:
        vs.discard(v)
        if not vs:
            del index[k]


_KINDS = frozenset(("networks", "subnets", "routers", "ports", "floatingips", "hosts"))


def first(items: Iterable):
    for i in items:
        return i
    return None
