"""Read what the namespaces hold into the same `HostState` types the planner produces (a full
read; `incremental_read.IncrementalObserver` re-reads only what netlink events say changed).

Invariants:
- Routes and rules: only protocol RT_PROTO (the reader is where route/rule ownership applies,
  since `Route`/`Rule` carry no protocol). Links, IPv4 addresses and permanent neighbours: all of
  them (diff filters by ownership; foreign links are needed to resolve veth peers and to spot
  foreign holders of an address). Sysctls: only allow-listed keys the desired state names.
  nftables: only dvrnet's tables.
- Namespaces read: every existing namespace dvrnet owns (by prefix) plus every desired one that
  exists. A namespace that cannot be read is reported (`Observation.unreadable`; `read_host`
  raises): a failed read is never an empty namespace.
- veth peers are resolved across namespaces: link-netnsid → `ip netns list-id` → peer namespace,
  then the peer's ifindex in that namespace's dump.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dvrnet.plan.state import Address, HostState, Link, Namespace, Neighbour, Route, Rule, canon_prefix
from dvrnet.reconcile.ownership import Ownership, owns_route_protocol, owns_sysctl

from . import iproute, netns, nft, sysctl

_TABLES = {"main": 254, "local": 255, "default": 253, "unspec": 0}
DUMP = ["address show", "route show table all proto 94", "rule show",
        "neigh show nud permanent", "netns list-id"]


@dataclass
class RawNamespace:
    name: str
    links: list[dict]
    routes: list[dict]
    rules: list[dict]
    neigh: list[dict]
    nsids: dict[int, str]


def table_num(t: str | int | None) -> int:
    if t is None:
        return 254
    return _TABLES.get(str(t), None) if str(t) in _TABLES else int(t)


def _prefix(addr: str | None, length: int | None = None) -> str | None:
    if addr is None or addr == "all":
        return None
    if addr == "default":
        return "default"
    if "/" not in addr:
        addr = f"{addr}/{32 if length is None else length}"
    return canon_prefix(addr)


def parse_route(r: dict) -> Route:
    flags = r.get("flags", [])
    return Route(table=table_num(r.get("table")), dst=_prefix(r["dst"]) or "default",
                 via=r.get("gateway"), dev=r.get("dev"),
                 scope="link" if r.get("scope") == "link" else "global",
                 onlink="onlink" in flags, src=r.get("prefsrc"), type=r.get("type", "unicast"),
                 metric=int(r.get("metric", 0)))


def parse_rule(r: dict) -> Rule:
    action = r.get("action", "lookup")
    return Rule(priority=int(r["priority"]), action=action,
                table=table_num(r.get("table")) if action == "lookup" else None,
                src=_prefix(r.get("src"), r.get("srclen")), dst=_prefix(r.get("dst"), r.get("dstlen")),
                iif=r.get("iif"),
                fwmark=int(r["fwmark"], 16) if "fwmark" in r else None,
                fwmask=int(r["fwmask"], 16) if "fwmask" in r else None)


def dump_raw(ns: str) -> RawNamespace:
    links, routes, rules, neigh, ids = iproute.dump(ns, DUMP)
    return RawNamespace(ns, links, routes,
                [r for r in rules if owns_route_protocol(r.get("protocol"))],
                [n for n in neigh if "PERMANENT" in n.get("state", [])],
                {int(i["nsid"]): i["name"] for i in ids if "name" in i})


def resolve_links(raw: RawNamespace, by_ns: dict[str, RawNamespace]) -> dict[str, Link]:
    out = {}
    for d in raw.links:
        kind = d.get("linkinfo", {}).get("info_kind", "")
        peer_ns = peer = None
        if kind in ("veth", "macvlan") and "link_index" in d:
            nsid = d.get("link_netnsid")
            peer_ns = raw.name if nsid is None else raw.nsids.get(int(nsid), f"nsid:{nsid}")
            other = by_ns.get(peer_ns)
            idx = int(d["link_index"])
            peer = next((x["ifname"] for x in other.links if x["ifindex"] == idx), None) if other else None
            peer = peer or f"if{idx}"
        out[d["ifname"]] = Link(d["ifname"], kind, peer_ns, peer, d.get("address"), d.get("mtu"),
                                d.get("master"), "UP" in d.get("flags", []))
    return out


def build_namespace(raw: RawNamespace, by_ns: dict[str, RawNamespace], want: Namespace | None,
               sysctls: dict[str, str], tables: dict) -> Namespace:
    addrs = frozenset(Address(d["ifname"], f"{a['local']}/{a['prefixlen']}", bool(a.get("noprefixroute")))
                      for d in raw.links for a in d.get("addr_info", []) if a.get("family") == "inet")
    neigh = frozenset(Neighbour(n["dev"], n["dst"], n.get("lladdr", "")) for n in raw.neigh
                      if ":" not in n["dst"])
    return Namespace(raw.name, resolve_links(raw, by_ns), addrs,
                     frozenset(parse_route(r) for r in raw.routes if ":" not in r.get("dst", "")),
                     frozenset(parse_rule(r) for r in raw.rules), neigh, sysctls, tables,
                     managed=want.managed if want is not None else True)


def namespaces_to_read(desired: HostState, own: Ownership) -> list[str]:
    present = set(netns.list_names())
    return sorted(n for n in present if own.owns_namespace(n) or n in desired.namespaces)


@dataclass
class Observation:
    """What was read, and what could not be: `unreadable` namespaces (ip dump failed) and
    namespaces whose nftables could not be listed. Neither may be treated as empty."""
    state: HostState
    unreadable: dict[str, str]
    nft_unreadable: dict[str, str]


def observe(desired: HostState, prefix: str = "") -> Observation:
    own = Ownership(prefix)
    names = namespaces_to_read(desired, own)
    bad: dict[str, str] = {}
    bad_nft: dict[str, str] = {}

    def one(ns: str):
        want = desired.namespaces.get(ns)
        keys = [k for k in (want.sysctls if want else {}) if owns_sysctl(k)]
        try:
            raw, sysctls = dump_raw(ns), sysctl.read(ns, keys)
        except netns.MissingNamespace:
            return None                 # deleted while we read: absent, not empty
        except (iproute.ReadError, OSError) as e:
            bad[ns] = f"cannot read: {e}"
            return None
        try:
            tables = nft.read_tables(ns, dict(want.nft) if want else {})
        except netns.MissingNamespace:
            return None                 # deleted between the dump and the nft read: absent
        except (iproute.ReadError, OSError) as e:
            bad_nft[ns], tables = f"cannot read nftables: {e}", {}
        return raw, sysctls, tables

    with ThreadPoolExecutor(max_workers=4) as pool:
        parts = {n: p for n, p in zip(names, pool.map(one, names)) if p is not None}
    by_ns = {n: p[0] for n, p in parts.items()}
    state = HostState(desired.host, {n: build_namespace(p[0], by_ns, desired.namespaces.get(n), p[1], p[2])
                                     for n, p in parts.items()})
    return Observation(state, bad, bad_nft)


def read_host(desired: HostState, prefix: str = "") -> HostState:
    obs = observe(desired, prefix)
    if obs.unreadable or obs.nft_unreadable:
        raise iproute.ReadError("; ".join(f"{n}: {m}" for n, m in {**obs.unreadable, **obs.nft_unreadable}.items()))
    return obs.state
