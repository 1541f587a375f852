"""diff(desired, observed, prefix) -> Plan: what to do so the kernel holds the desired state.

Pure: no I/O, deterministic (namespaces, objects and ops in sorted order).

Invariants:
- Only owned objects (`ownership.py`) are ever deleted or replaced. Desired state that names an
  object dvrnet cannot own raises `NotOwned` (a planner bug).
- Creates run in dependency order namespace → (namespace-wide sysctls of managed namespaces and
  nftables tables of unmanaged ones: what links must be born into) → link → address → route → rule →
  neighbour → sysctl → nftables (→ gratuitous ARP for new FIP /32s in fip- namespaces whose fg-
  answers proxy ARP) → processes (start, restart, reload: after the addresses they bind); then the
  replacement groups (below), one after the other; deletes of obsolete objects follow, in reverse
  order; obsolete links and processes (stopped before their namespace), then obsolete owned
  namespaces go last; owned orphan processes (their namespace gone) are stopped.
- Make-before-break: a route with the same (table, dst, metric) and another value is replaced in
  place (`ip route replace`); a changed rule is a new rule (added in the create phase) plus the
  old one (deleted after). The only break-before-make is a link of the wrong kind or peer, which
  must be deleted to free its name.
- Replacement groups (S16): each replaced link is one contiguous run of ops, `Plan.groups`: its
  delete (and that of any link replaced with it: the ends of one veth pair), its create, its
  attribute sets (and those of a veth peer created with it, e.g. the `dv-` end's master), then
  the addresses, routes, neighbours and per-device sysctls on those devices — everything that
  vanished with the device — before the next group starts; a gratuitous ARP goes in the group of
  its `fg-` or of its route's device (the later one) if either is replaced, and a replaced
  plugged port (`fg-`, `qg-`, `qr-`, `sg-`) announces each of its addresses from its new device
  (gratuitous ARP, last in its group) so that L2 learns where its MAC is now. So a node switching
  port kind has one port down at a time, each for the few ms of its group. A group holds only
  objects on its own devices (a route is grouped by its `dev`), so no op outside a group depends
  on one inside it and groups do not depend on each other. Links created for other reasons, and
  everything else, keep the phase order above. Every device of a group is in `_Acc.gone`, so the
  `DiffMemo` never skips a namespace holding part of a group.
- A veth pair is created once, from the end whose (namespace, name) sorts first.
- Open vSwitch ports (`Namespace.ovs_ports` of the bridge namespace; plan/plug.py): an internal
  port is created together with its link (`OvsPlug`: the port, then its tap moved into the router
  namespace); a system port (the `dv-` end of an ovs-veth) is added after its veth exists, and
  deleted and added again whenever its device is re-created (ovs-vswitchd would not reopen it);
  a port whose columns differ is updated in place. Owned ports nobody wants are deleted — in the
  replacement group of their device when it is replaced, else before the obsolete links; foreign
  ports (no owner marker) are never touched, and a desired port whose name one holds is a
  conflict. A link of kind "ovs" without carrier (an internal port left behind by an
  ovs-vswitchd restart), or whose OVS attachment (`Link.ovs`) differs, is replaced like a link of
  the wrong kind (S16). `tx_csum` is set (`EthtoolSet`) where desired and different.
- nftables: a table whose structure differs is replaced whole; otherwise only elements change.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from ipaddress import ip_network
from operator import attrgetter

from dvrnet.plan.names import AGENT_GW_DEV, FIP_NS, ROUTER_GW_DEV, ROUTER_IF_DEV, SNAT_IF_DEV
from dvrnet.plan.state import MAIN_TABLE, Address, HostState, Link, Namespace, NftTable, Route, parse_v4

from .ops import (
    AddrAdd,
    AddrDel,
    EarlyNftTable,
    EarlySysctlSet,
    EthtoolSet,
    Garp,
    LinkAdd,
    LinkDel,
    LinkReplaceDel,
    LinkSet,
    NeighDel,
    NeighReplace,
    NetnsAdd,
    NetnsDel,
    NftDelTable,
    NftElements,
    NftReplaceTable,
    Op,
    OvsPlug,
    OvsPortDel,
    OvsPortSet,
    Plan,
    ProcReload,
    ProcStart,
    ProcStop,
    RouteDel,
    RouteReplace,
    RuleAdd,
    RuleDel,
    SysctlSet,
)
from .ownership import Ownership, owns_nft_table, owns_sysctl

EMPTY = Namespace("")
PLUGGED_DEVS = (AGENT_GW_DEV, ROUTER_GW_DEV, ROUTER_IF_DEV, SNAT_IF_DEV)
CREATE_ORDER = ("netns", "early", "link", "ovsdel", "ovs", "ethtool", "address", "route", "rule", "neighbour",
                "sysctl", "nft", "garp", "process")
DELETE_ORDER = ("nft", "neighbour", "rule", "route", "address")
# one replaced link's life
GROUP_ORDER = ("ovsdel", "link", "ovs", "ethtool", "address", "route", "neighbour", "sysctl", "garp")


class NotOwned(ValueError):
    """Desired state names an object outside dvrnet's ownership."""


@dataclass
class _Acc:
    creates: dict[str, list[Op]] = field(default_factory=lambda: {k: [] for k in CREATE_ORDER})
    deletes: dict[str, list[Op]] = field(default_factory=lambda: {k: [] for k in DELETE_ORDER})
    teardown: list[Op] = field(default_factory=list)
    ovs_teardown: list[Op] = field(default_factory=list)       # obsolete OVS ports, before `teardown`
    ovs_done: set[tuple[str, str]] = field(default_factory=set)   # OVS ports handled with their link
    ns_dels: list[Op] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    gone: set[tuple[str, str]] = field(default_factory=set)    # links that vanish during apply
    # replacement groups: (ns, link) -> group id (the smallest key of the group), and their ops
    group_of: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    groups: dict[tuple[str, str], dict[str, list[Op]]] = field(default_factory=dict)

    def target(self, kind: str, ns: str, dev: str | None) -> list[Op]:
        """The op list a create of `kind` on device `dev` of `ns` goes to: its replacement
        group's if `dev` is replaced in this plan, else the phase's."""
        if self.group_of and dev is not None:
            gid = self.group_of.get((ns, dev))
            if gid is not None:
                return self.groups[gid][kind]
        return self.creates[kind]


class DiffMemo:
    """Namespaces whose objects diffed to nothing, by the identity of their (desired, observed)
    values: `diff(..., memo=m)` skips the per-namespace object diff of a namespace whose desired
    and observed `Namespace` are the *same objects* as when it last diffed to nothing, provided no
    link in it is replaced or removed now or was then (those are the only cross-namespace inputs
    of the per-namespace diff: `_alive`). Values are frozen, so the skipped diff would again be
    empty: the plan is identical to `diff` without a memo. Links (all namespaces, cheap) and the
    namespace list are always diffed. One memo per prefix."""

    def __init__(self) -> None:
        self.prefix: str | None = None
        self.clean: dict[str, tuple[Namespace, Namespace]] = {}
        self.checked: dict[str, Namespace] = {}   # desired namespaces that passed check_owned
        self.routes: dict[str, _RouteIdx] = {}     # per namespace: desired route keys, last equal pair
        # per namespace: the (desired, observed) neighbour sets that last diffed to nothing (a
        # qrouter's thousands of neighbours are the same objects while only its FIPs change)
        self.neighbours: dict[str, tuple[frozenset, frozenset, bool]] = {}
        self.skipped = 0                     # namespaces skipped by the last diff (benchmarks, tests)


def _count(acc: _Acc) -> int:
    return (sum(map(len, acc.creates.values())) + sum(map(len, acc.deletes.values()))
            + sum(len(v) for g in acc.groups.values() for v in g.values()) + len(acc.conflicts))


def diff(desired: HostState, observed: HostState, prefix: str = "", memo: DiffMemo | None = None) -> Plan:
    own = Ownership(prefix)
    if memo is not None and memo.prefix != prefix:
        memo.prefix, memo.clean, memo.checked, memo.routes, memo.neighbours = prefix, {}, {}, {}, {}
    check_owned(desired, own, memo)
    acc = _Acc()
    for name in sorted(desired.namespaces):
        d = desired.namespaces[name]
        if name not in observed.namespaces and own.creates_namespace(d):
            acc.creates["netns"].append(NetnsAdd(name))
    _diff_links(desired, observed, own, acc)
    _diff_ovs(desired, observed, own, acc)
    gone_ns = {ns for ns, _ in acc.gone}
    skipped = 0
    for name in sorted(desired.namespaces):
        d, o = desired.namespaces[name], observed.namespaces.get(name, EMPTY)
        if memo is not None:
            hit = memo.clean.get(name)
            if hit is not None and hit[0] is d and hit[1] is o and name not in gone_ns:
                skipped += 1
                continue
            before = _count(acc)
        _diff_addresses(d, o, own, acc)
        if memo is None:
            _diff_routes(d, o, own, acc, prefix)
        else:
            idx = memo.routes.get(name)
            if idx is None:
                idx = memo.routes[name] = _RouteIdx(d.routes)
            _diff_routes(d, o, own, acc, prefix, idx)
        _diff_rules(d, o, acc)
        if memo is None:
            _diff_neighbours(d, o, own, acc)
        else:
            nb = memo.neighbours.get(name)
            if (nb is None or nb[0] is not d.neighbours or nb[1] is not o.neighbours or nb[2] != d.managed
                    or name in gone_ns):
                n0 = len(acc.creates["neighbour"]) + len(acc.deletes["neighbour"])
                _diff_neighbours(d, o, own, acc)
                if (len(acc.creates["neighbour"]) + len(acc.deletes["neighbour"]) == n0 and not acc.groups
                        and name not in gone_ns):
                    memo.neighbours[name] = (d.neighbours, o.neighbours, d.managed)
                else:
                    memo.neighbours.pop(name, None)
        _diff_sysctls(d, o, acc)
        _diff_nft(d, o, acc)
        _diff_processes(d, o, acc)
        if memo is not None:
            if _count(acc) == before and name not in gone_ns:
                memo.clean[name] = (d, o)
            else:
                memo.clean.pop(name, None)
    if memo is not None:
        memo.skipped = skipped
        for name in [n for n in memo.clean if n not in desired.namespaces]:
            del memo.clean[name]
        for name in [n for n in memo.checked if n not in desired.namespaces]:
            del memo.checked[name]
        for name in [n for n in memo.routes if n not in desired.namespaces]:
            del memo.routes[name]
        for name in [n for n in memo.neighbours if n not in desired.namespaces]:
            del memo.neighbours[name]
    for name in sorted(observed.namespaces):
        if name not in desired.namespaces and own.owns_namespace(name):
            o = observed.namespaces[name]
            acc.teardown += [ProcStop(name, proc=p) for _, p in sorted(o.processes.items())]
            acc.ns_dels.append(NetnsDel(name))
    for name, p in observed.orphans:
        if own.owns_namespace(name):
            acc.teardown.append(ProcStop(name, proc=p))
    ops = [op for k in CREATE_ORDER for op in acc.creates[k]]
    groups = []
    for gid in sorted(acc.groups):
        start = len(ops)
        ops += [op for k in GROUP_ORDER for op in acc.groups[gid][k]]
        if len(ops) > start:
            groups.append((start, len(ops)))
    ops += [op for k in DELETE_ORDER for op in acc.deletes[k]]
    ops += acc.ovs_teardown + acc.teardown + acc.ns_dels
    return Plan(tuple(ops), tuple(acc.conflicts), tuple(groups))


def check_owned(desired: HostState, own: Ownership, memo: DiffMemo | None = None) -> None:
    for ns in desired.namespaces.values():
        if memo is not None:
            last = memo.checked.get(ns.name)
            if last is ns:
                continue
            _check_ns(ns, own, last)
            memo.checked[ns.name] = ns
        else:
            _check_ns(ns, own)


def _check_ns(ns: Namespace, own: Ownership, last: Namespace | None = None) -> None:
    """LAST: a namespace of the same name that passed; its neighbour set, when NS holds the same
    object (and ownership is the same: name and `managed`), is not walked again."""
    if ns.managed and not own.owns_namespace(ns.name):
        raise NotOwned(f"{ns.name}: managed namespace outside prefix {own.prefix!r}")
    bad = [n for n in ns.links if not own.owns_link(ns, n)]
    bad += [f"{a.cidr} on {a.dev}" for a in ns.addresses if not own.owns_dev_object(ns, a.dev)]
    if last is None or last.neighbours is not ns.neighbours or last.managed != ns.managed:
        bad += [f"neighbour {n.ip} on {n.dev}" for n in ns.neighbours if not own.owns_dev_object(ns, n.dev)]
    bad += [f"sysctl {k}" for k in ns.sysctls if not owns_sysctl(k)]
    bad += [f"nft table {f} {n}" for f, n in ns.nft if not owns_nft_table(f, n)]
    bad += [f"OVS port {p.name}" for p in ns.ovs_ports.values() if not own.owns_ovs_port(p)]
    if bad:
        raise NotOwned(f"{ns.name}: not dvrnet's to manage: {', '.join(sorted(bad))}")


# --- links ------------------------------------------------------------------------------------
def _peer(ns: str, lk: Link) -> tuple[str, str]:
    return (lk.peer_netns or ns, lk.peer or "")


def _mismatch(ns: str, want: Link, have: Link) -> str | None:
    if want.kind != have.kind:
        return f"kind {have.kind}, desired {want.kind}"
    if want.kind in ("veth", "macvlan", "ovs") and _peer(ns, want) != _peer(ns, have):
        pn, p = _peer(ns, have)
        return f"peer {pn}/{p}, desired {_peer(ns, want)[0]}/{want.peer}"
    if want.kind == "ovs" and not have.carrier:
        return "no carrier: an OVS internal port left behind by an ovs-vswitchd restart"
    if want.ovs != have.ovs:
        found = f"a port of OVS bridge {have.ovs}" if have.ovs else "not an OVS port"
        return f"{found}, desired " + (f"a port of OVS bridge {want.ovs}" if want.ovs else "no OVS port")
    return None


def _diff_links(desired: HostState, observed: HostState, own: Ownership, acc: _Acc) -> None:
    """Creates (stage 1) then attribute changes, in the link phase, except for replaced links:
    those go to their replacement group (delete, create, sets). Obsolete links in teardown."""
    fresh: set[tuple[str, str]] = set()        # links that will exist only after this plan
    replaced: list[tuple[tuple[str, str], str]] = []
    parent: dict[tuple[str, str], tuple[str, str]] = {}     # union-find: the ends of one group

    def find(x: tuple[str, str]) -> tuple[str, str]:
        while parent.get(x, x) != x:
            parent[x] = x = parent.get(parent[x], parent[x])
        return x

    def union(a: tuple[str, str], b: tuple[str, str]) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root is the smallest key: the group id

    dlinks = {(ns, n): lk for ns, d in desired.namespaces.items() for n, lk in d.links.items()}
    for (ns, name), want in sorted(dlinks.items()):
        have = observed.namespaces.get(ns, EMPTY).links.get(name)
        why = None if have is None else _mismatch(ns, want, have)
        if have is not None and why is None:
            continue
        if why is not None:
            assert have is not None             # a mismatch needs something found
            replaced.append(((ns, name), why))
            acc.gone.add((ns, name))
            parent.setdefault((ns, name), (ns, name))
            if have.kind == "veth" and have.peer:
                acc.gone.add(_peer(ns, have))   # deleting one end deletes the other
                union((ns, name), _peer(ns, have))
        fresh.add((ns, name))
    # the other end of a replaced veth vanishes too: it must be recreated
    for key in list(acc.gone):
        if key in dlinks:
            fresh.add(key)
    if replaced:
        for key in fresh:                      # a veth pair is created (and grouped) as one
            want = dlinks[key]
            if want.kind == "veth" and _peer(key[0], want) in dlinks:
                union(key, _peer(key[0], want))
        roots = {find(k) for k, _ in replaced}
        acc.group_of = {k: r for k in set(parent) | fresh | roots if (r := find(k)) in roots}
        acc.groups = {r: {k: [] for k in GROUP_ORDER} for r in roots}
    for key, why in replaced:
        acc.target("link", *key).append(LinkReplaceDel(key[0], key[1], why=why))
    created: set[tuple[str, str]] = set()
    blocked: set[tuple[str, str]] = set()      # not created: the OVS port's name is held by a foreign one
    for key in sorted(fresh):
        ns, name = key
        want = dlinks[key]
        peer_key = _peer(ns, want)
        if key in created:
            continue
        if want.kind == "ovs":
            if not _ovs_plug(desired, observed, own, acc, ns, want):
                blocked.add(key)
                continue
            created.add(key)
            acc.gone.discard(key)
            continue
        peer_desired = want.kind == "veth" and peer_key in dlinks
        if peer_desired and peer_key < key and peer_key in fresh:
            continue                            # created from the other end
        peer_link = dlinks.get(peer_key) if peer_desired else None
        if want.kind == "macvlan":             # created from its lower device's namespace
            acc.target("link", ns, name).append(LinkAdd(want.peer_netns or ns, link=want, into=ns))
        else:
            acc.target("link", ns, name).append(LinkAdd(ns, link=want, peer_link=peer_link))
        created.add(key)
        if peer_desired:
            created.add(peer_key)
            acc.gone.discard(peer_key)
        acc.gone.discard(key)
    acc.gone |= created                        # observed objects on them do not survive
    for (ns, name), want in sorted(dlinks.items()):
        if (ns, name) in blocked:
            continue
        have = None if (ns, name) in created else observed.namespaces.get(ns, EMPTY).links.get(name)
        base = have or Link(name, want.kind, want.peer_netns, want.peer, want.mac, want.mtu, None, False)
        s = LinkSet(ns, name,
                    mac=want.mac if want.mac and want.mac != base.mac else None,
                    mtu=want.mtu if want.mtu and want.mtu != base.mtu else None,
                    master=(want.master or "nomaster") if want.master != base.master else None,
                    up=want.up if want.up != base.up else None)
        if any(v is not None for v in (s.mac, s.mtu, s.master, s.up)):
            acc.target("link", ns, name).append(s)
        if want.tx_csum is not None and want.tx_csum != base.tx_csum:
            acc.target("ethtool", ns, name).append(EthtoolSet(ns, dev=name, tx=want.tx_csum))
    for ns in sorted(observed.namespaces):
        o = observed.namespaces[ns]
        d = desired.namespaces.get(ns)
        if d is None:
            continue                            # whole namespace goes (if owned) or is foreign
        for name in sorted(o.links):
            if name not in d.links and own.owns_link(d, name) and (ns, name) not in acc.gone:
                acc.teardown.append(LinkDel(ns, name))
                acc.gone.add((ns, name))        # its addresses, routes, neighbours go with it
                lk = o.links[name]
                if lk.kind == "veth" and lk.peer:
                    acc.gone.add(_peer(ns, lk))


# --- Open vSwitch ports -------------------------------------------------------------------------
def _ovs_plug(desired: HostState, observed: HostState, own: Ownership, acc: _Acc, ns: str, want: Link) -> bool:
    """The create of an internal port's link: its OVS port (replacing an owned one of another
    type or bridge) and the move of its tap into NS. False when it cannot be created."""
    bns = want.peer_netns or ns
    port = desired.namespaces.get(bns, EMPTY).ovs_ports.get(want.name)
    row = observed.namespaces.get(bns, EMPTY).ovs_ports.get(want.name)
    acc.ovs_done.add((bns, want.name))
    if port is None:
        acc.conflicts.append(f"{ns}: link {want.name}: no OVS port planned for it in {bns}")
        return False
    if row is not None and not own.owns_ovs_port(row):
        acc.conflicts.append(f"{bns}: OVS port {want.name}: held by a foreign port (no {own.prefix or 'dvrnet'} "
                             f"owner marker); {ns}/{want.name} not plugged")
        return False
    out = acc.target("link", ns, want.name)
    if row is not None and (row.type != port.type or row.bridge != port.bridge):
        # in the plug's own run: kernel/ovs.py deletes it in a transaction before the add
        out.append(OvsPortDel(bns, bridge=row.bridge, name=row.name, why=f"type {row.type or 'system'} on {row.bridge}"))
    out.append(OvsPlug(bns, link=want, port=port, into=ns))
    return True


def _ovs_devices(state: HostState) -> dict[tuple[str, str], tuple[str, str]]:
    """(ovs-vswitchd namespace, port name) -> (namespace, link) of the internal ports' devices."""
    return {(lk.peer_netns or ns, name): (ns, name) for ns, n in state.namespaces.items()
            for name, lk in n.links.items() if lk.kind == "ovs"}


def _diff_ovs(desired: HostState, observed: HostState, own: Ownership, acc: _Acc) -> None:
    names = sorted({n for n, x in desired.namespaces.items() if x.ovs_ports}
                   | {n for n, x in observed.namespaces.items() if x.ovs_ports})
    if not names:
        return
    d_dev, o_dev = _ovs_devices(desired), _ovs_devices(observed)
    for bns in names:
        d = desired.namespaces.get(bns, EMPTY).ovs_ports
        o = observed.namespaces.get(bns, EMPTY).ovs_ports
        for name, want in sorted(d.items()):
            if (bns, name) in acc.ovs_done:
                continue                            # created with its link (OvsPlug)
            have = o.get(name)
            if have is not None and not own.owns_ovs_port(have):
                acc.conflicts.append(f"{bns}: OVS port {name}: held by a foreign port")
                continue
            dev = d_dev.get((bns, name), (bns, name))
            if have is not None and (dev in acc.gone or have.type != want.type or have.bridge != want.bridge):
                why = "device re-created" if dev in acc.gone else f"type {have.type or 'system'} on {have.bridge}"
                acc.target("ovsdel", *dev).append(OvsPortDel(bns, bridge=have.bridge, name=name, why=why))
                have = None
            if have != want:
                acc.target("ovs", *dev).append(OvsPortSet(bns, port=want, old=have))
        for name, have in sorted(o.items()):
            if name in d or not own.owns_ovs_port(have):
                continue
            dev = o_dev.get((bns, name), (bns, name))
            op = OvsPortDel(bns, bridge=have.bridge, name=name)
            gid = acc.group_of.get(dev)
            (acc.groups[gid]["ovsdel"] if gid is not None else acc.ovs_teardown).append(op)


def _alive(ns: str, dev: str | None, acc: _Acc) -> bool:
    return dev is None or (ns, dev) not in acc.gone


# --- addresses --------------------------------------------------------------------------------
def _diff_addresses(d: Namespace, o: Namespace, own: Ownership, acc: _Acc) -> None:
    have = {(a.dev, a.ip): a for a in o.addresses
            if own.owns_dev_object(d, a.dev) and _alive(d.name, a.dev, acc)}
    foreign = {a.ip: a.dev for a in o.addresses if not own.owns_dev_object(d, a.dev)}
    for a in sorted(d.addresses):
        old = have.get((a.dev, a.ip))
        if old == a:
            continue
        if a.ip in foreign:
            acc.conflicts.append(f"{d.name}: address {a.cidr} on {a.dev}: held by foreign "
                                 f"device {foreign[a.ip]}")
            continue
        out = acc.target("address", d.name, a.dev)
        if old is not None and old.cidr == a.cidr and old.noprefixroute != a.noprefixroute:
            out += _reflag(d.name, old, a)
            continue
        if old is not None and old.cidr != a.cidr:
            out.append(AddrDel(d.name, old))
        out.append(AddrAdd(d.name, a, old))
        gid = acc.group_of.get((d.name, a.dev)) if acc.group_of else None
        if gid is not None and a.dev.startswith(PLUGGED_DEVS):
            # a replaced port announces its addresses from its new device: the bridges (and a
            # fabric) learn at once where its MAC is now (e.g. from an OVS uplink back to a
            # Linux bridge port), instead of sending its frames the old way until they age out
            acc.groups[gid]["garp"].append(Garp(d.name, dev=a.dev, ip=a.ip))
    want = {(a.dev, a.ip) for a in d.addresses}
    acc.deletes["address"] += [AddrDel(d.name, a) for k, a in sorted(have.items()) if k not in want]


def _reflag(ns: str, old: Address, a: Address) -> list[Op]:
    """The address with another noprefixroute flag (`address replace` keeps the kernel's): deleted
    and added again while a stand-in of another prefix length holds the same IP, so the device
    never loses it (losing a device's last address flushes its neighbours, permanent ones too,
    and the routes using it as source)."""
    plen = int(a.cidr.split("/")[1])
    tmp = Address(a.dev, f"{a.ip}/{31 if plen == 32 else 32}", True)
    return [AddrAdd(ns, tmp), AddrDel(ns, old), AddrAdd(ns, a, old), AddrDel(ns, tmp)]


# --- routes -----------------------------------------------------------------------------------
_ROUTE_KEY = attrgetter("table", "dst", "metric")     # == Route.key, in C


class _RouteIdx:
    """One namespace's desired routes with the multiset of their keys, kept up to date from set
    to set by their differences (a new plan shares the unchanged `Route` objects, so a 10k-route
    difference is ~identity checks), and the last (desired, observed) pair of route sets found
    equal (`base`): later pairs are compared through their differences from that pair."""

    __slots__ = ("base", "count", "routes")

    def __init__(self, routes: frozenset) -> None:
        self.routes = routes
        self.count = Counter(map(_ROUTE_KEY, routes))
        self.base: tuple[frozenset, frozenset] | None = None

    def update(self, routes: frozenset) -> None:
        old = self.routes
        if routes is old:
            return
        add, rem = routes - old, old - routes
        if len(add) + len(rem) > len(routes) // 2:
            self.count = Counter(map(_ROUTE_KEY, routes))
        else:
            count = self.count
            for k in map(_ROUTE_KEY, rem):
                if count[k] == 1:
                    del count[k]
                else:
                    count[k] -= 1
            count.update(map(_ROUTE_KEY, add))
        self.routes = routes

    def unique(self) -> bool:
        return len(self.count) == len(self.routes)

    def delta(self, d: frozenset, o: frozenset) -> tuple[frozenset, frozenset]:
        """(d - o, o - d), by value. Through `base` (b, b2 equal) when there is one:
        d = (S - Rd) | Ad and o = (S - Ro) | Ao with S = b = b2, so
        d - o = {x in Ad not in o} | (Ro - Rd) and o - d = {x in Ao not in d} | (Rd - Ro)."""
        if self.base is None:
            return d - o, o - d
        bd, bo = self.base
        ad, rd, ao, ro = d - bd, bd - d, o - bo, bo - o
        return (frozenset(x for x in ad if x not in o) | (ro - rd),
                frozenset(x for x in ao if x not in d) | (rd - ro))


def _route_delta(d: Namespace, o: Namespace, acc: _Acc, idx: _RouteIdx | None):
    """(desired routes to write with the observed route of their key, observed routes to delete)
    from the set differences of the two route sets: a 10k-route namespace with one new route
    costs no 10k-entry key maps. None when that shortcut is not exactly the per-key comparison
    of `_diff_routes`: a device of this namespace vanishes in this plan (observed routes are
    filtered by `_alive`), or keys repeat (two desired routes with one key; two observed routes
    with one key outside the common part, or beside an equal common route) — the per-key
    comparison then decides which one wins."""
    if idx is None:
        idx = _RouteIdx(d.routes)
    else:
        idx.update(d.routes)
    dd, oo = idx.delta(d.routes, o.routes)
    if not dd and not oo:
        idx.base = (d.routes, o.routes)
    if not idx.unique() or (acc.gone and any(ns == d.name for ns, _ in acc.gone)):
        return None
    if not dd and not oo:
        return (), ()
    have = {r.key: r for r in oo}
    if len(have) != len(oo):
        return None
    new = {r.key for r in dd}
    count = idx.count
    if any(k in count and k not in new for k in have):
        return None                            # an observed duplicate of an equal common route
    return [(r, have.get(r.key)) for r in dd], [r for k, r in have.items() if k not in new]


def _diff_routes(d: Namespace, o: Namespace, own: Ownership, acc: _Acc, prefix: str,
                 idx: _RouteIdx | None = None) -> None:
    fg = sorted(n for n in d.links if n.startswith(AGENT_GW_DEV))
    is_fip = d.name.startswith(prefix + FIP_NS)
    # a new FIP /32 is announced by gratuitous ARP where fg- answers ARP for it (L2 mode's proxy
    # ARP); in routed mode BGP announces it and nothing is sent on the segment
    garp = is_fip and bool(fg) and d.sysctls.get(f"net.ipv4.conf.{fg[0]}.proxy_arp") == "1"
    delta = _route_delta(d, o, acc, idx)
    if delta is not None:
        writes, gone = delta
        if not writes and not gone:
            return
        changed = [(r.sort_key(), r, old) for r, old in writes]
    else:
        have = {r.key: r for r in o.routes if _alive(d.name, r.dev, acc)}
        # only the routes that change are sorted (a no-change pass over 10k routes sorts nothing)
        changed, want = [], set()
        for r in d.routes:
            k = r.key
            want.add(k)
            old = have.get(k)
            if old != r:
                changed.append((r.sort_key(), r, old))
        gone = [r for k, r in have.items() if k not in want]
    changed.sort(key=_first)
    group_of = acc.group_of
    for _, r, old in changed:
        acc.target("route", d.name, r.dev).append(RouteReplace(d.name, r, old))
        if (old is None and garp and r.table == MAIN_TABLE and r.type == "unicast"
                and r.dst != "default" and _prefixlen(r.dst) == 32):
            # sent from fg- once both it and the route's device exist: in the later of their
            # replacement groups, if any
            gid = max((g for g in (group_of.get((d.name, fg[0])), group_of.get((d.name, r.dev or "")))
                       if g is not None), default=None) if group_of else None
            (acc.creates["garp"] if gid is None else acc.groups[gid]["garp"]).append(
                Garp(d.name, dev=fg[0], ip=r.dst.split("/")[0]))
    acc.deletes["route"] += [RouteDel(d.name, r) for r in sorted(gone, key=Route.sort_key)]


def _first(t: tuple):
    return t[0]


def _prefixlen(dst: str) -> int:
    if dst.endswith("/32") and parse_v4(dst) is not None:       # the common case, without ipaddress
        return 32
    return ip_network(dst).prefixlen


# --- rules ------------------------------------------------------------------------------------
def _diff_rules(d: Namespace, o: Namespace, acc: _Acc) -> None:
    acc.creates["rule"] += [RuleAdd(d.name, r) for r in sorted(d.rules - o.rules, key=lambda r: r.sort_key())]
    acc.deletes["rule"] += [RuleDel(d.name, r) for r in sorted(o.rules - d.rules, key=lambda r: r.sort_key())]


# --- neighbours -------------------------------------------------------------------------------
def _diff_neighbours(d: Namespace, o: Namespace, own: Ownership, acc: _Acc) -> None:
    """Replace every desired neighbour the kernel does not hold as it is, delete owned ones
    nobody wants. Computed from the two set differences (C-level, with the hashes the frozensets
    store: a qrouter holds one neighbour per port of its subnets, thousands, and one FIP changes
    none of them), which gives the per-object pass's plan (`_diff_neighbours_all`) because keys
    (dev, ip) are unique on both sides (the builder's `_put`, the kernel's table) and desired
    neighbours are on owned devices (`check_owned`): a desired neighbour held as it is needs
    nothing, one held with another MAC is in both differences under one key. When a device of
    this namespace vanishes in this plan, the per-object pass runs (everything on it is created
    again)."""
    if any(ns == d.name for ns, _ in acc.gone):
        _diff_neighbours_all(d, o, own, acc)
        return
    added = d.neighbours - o.neighbours
    removed = o.neighbours - d.neighbours
    if not added and not removed:
        return
    owned: dict[str, bool] = {}

    def ok(dev: str) -> bool:
        v = owned.get(dev)
        if v is None:
            v = owned[dev] = own.owns_dev_object(d, dev)
        return v
    have = {(n.dev, n.ip): n for n in removed if ok(n.dev)}
    for n in sorted(added):
        acc.target("neighbour", d.name, n.dev).append(NeighReplace(d.name, n, have.get((n.dev, n.ip))))
    want = {(n.dev, n.ip) for n in added}
    acc.deletes["neighbour"] += [NeighDel(d.name, n) for k, n in sorted(have.items()) if k not in want]


def _diff_neighbours_all(d: Namespace, o: Namespace, own: Ownership, acc: _Acc) -> None:
    have = {(n.dev, n.ip): n for n in o.neighbours
            if own.owns_dev_object(d, n.dev) and _alive(d.name, n.dev, acc)}
    for n in sorted(d.neighbours):
        old = have.get((n.dev, n.ip))
        if old != n:
            acc.target("neighbour", d.name, n.dev).append(NeighReplace(d.name, n, old))
    want = {(n.dev, n.ip) for n in d.neighbours}
    acc.deletes["neighbour"] += [NeighDel(d.name, n) for k, n in sorted(have.items()) if k not in want]


# --- sysctls ----------------------------------------------------------------------------------
def sysctl_dev(key: str) -> str | None:
    """The device a per-device sysctl belongs to (`net.ipv4.conf.<dev>.x`), else None."""
    parts = key.split(".")
    if len(parts) >= 5 and parts[2] in ("conf", "neigh") and parts[3] not in ("all", "default"):
        return ".".join(parts[3:-1])
    return None


def _diff_sysctls(d: Namespace, o: Namespace, acc: _Acc) -> None:
    for key in sorted(d.sysctls):
        want, have = str(d.sysctls[key]).strip(), o.sysctls.get(key)
        dev = sysctl_dev(key)
        if not _alive(d.name, dev, acc):
            have = None                         # a recreated device starts from defaults
        if have is None or str(have).strip() != want:
            if dev is None and d.managed and _ns_wide(key):
                acc.creates["early"].append(EarlySysctlSet(d.name, key, want, have))
            else:
                acc.target("sysctl", d.name, dev).append(SysctlSet(d.name, key, want, have))


def _ns_wide(key: str) -> bool:
    parts = key.split(".")
    return len(parts) >= 5 and parts[2] == "conf" and parts[3] in ("all", "default")


# --- processes ---------------------------------------------------------------------------------
def _diff_processes(d: Namespace, o: Namespace, acc: _Acc) -> None:
    """Start what is missing, restart what runs another command line, reload what runs another
    configuration (digest), stop what is no longer desired (before its namespace would go)."""
    for role in sorted(d.processes):
        want, have = d.processes[role], o.processes.get(role)
        if have is None:
            acc.creates["process"].append(ProcStart(d.name, proc=want))
        elif have.argv != want.argv:
            acc.creates["process"].append(ProcStart(d.name, proc=want, old=have))
        elif have.digest != want.digest:
            acc.creates["process"].append(ProcReload(d.name, proc=want, old=have))
    acc.teardown += [ProcStop(d.name, proc=p) for r, p in sorted(o.processes.items()) if r not in d.processes]


# --- nftables ---------------------------------------------------------------------------------
def nft_shape(t: NftTable) -> tuple:
    s = t.structure()
    return (s.family, s.name, tuple(sorted(s.chains, key=lambda c: c.name)),
            tuple(sorted(s.maps, key=lambda m: m.name)))


def _diff_nft(d: Namespace, o: Namespace, acc: _Acc) -> None:
    for key in sorted(d.nft):
        want, have = d.nft[key], o.nft.get(key)
        if have is None or nft_shape(want) != nft_shape(have):
            if d.managed:
                acc.creates["nft"].append(NftReplaceTable(d.name, want, exists=have is not None))
            else:
                acc.creates["early"].append(EarlyNftTable(d.name, want, exists=have is not None))
            continue
        old = {m.name: m.elements for m in have.maps}
        add, dele = [], []
        for m in want.maps:
            add += [(m.name, k, v) for k, v in m.elements - old[m.name]]
            dele += [(m.name, k, v) for k, v in old[m.name] - m.elements]
        if add or dele:
            acc.creates["nft"].append(NftElements(d.name, key[0], key[1], tuple(sorted(add, key=str)),
                                                  tuple(sorted(dele, key=str)), want.maps))
    for key in sorted(o.nft):
        if key not in d.nft and owns_nft_table(*key):
            acc.deletes["nft"].append(NftDelTable(o.name or d.name, key[0], key[1]))
