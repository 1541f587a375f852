"""Taking a node over from neutron-l3-agent (`--adopt-neutron-state`): which of the objects found
in the namespaces dvrnet is about to own are upstream's, and the plan that removes them.

Pure: what the kernel holds comes in as `Seen` values (read by `kernel/takeover.py`); the result
is a list of `Upstream` objects and the ops that remove them. Upstream's layout on this topology
is recorded in shared/design/notes/neutron-peer-run.md; an object is upstream's only when it has
one of these shapes (anything else is foreign and never touched):
- routes: protocol `static` or `kernel`, outside the local table, on a device named the way
  upstream names its ports and veths (`qr-`, `qg-`, `sg-`, `fg-`, `rfp-`, `fpr-`): its FIP /32s,
  per-router and per-subnet defaults, on-link routes of the external subnets and the connected
  routes of its addresses (dvrnet's own routes carry protocol 94; its addresses add none);
- rules (never dvrnet's protocol 94, never the kernel's defaults), in qrouter-: one
  `from <fixed>/32 lookup 16` per FIP at a priority in 32768-72767 (upstream's FIP rule
  allocator), and `from <address>/<len> lookup N` at priority N where N is that address as an
  integer (the SNAT redirect of a tenant subnet); in fip-: `iif fpr-… lookup N` at priority N
  where N is an address of 169.254.64.0/18 as an integer (the per-router table);
- iptables and ip6tables: chains named `neutron-l3-agent-…` (upstream's wrapped chains: the
  agent's binary name) and its unwrapped `neutron-filter-top` / `neutron-postrouting-bottom`,
  and the rules of built-in chains that only jump to them; a table left with nothing but empty
  built-in chains of policy ACCEPT goes too when iptables is the nf_tables kind;
- processes: haproxy with `-f …/ns-metadata-proxy/<router id>.conf` running in that router's
  qrouter- namespace (upstream's metadata proxy);
- sysctls upstream sets that dvrnet does not (`conf.all.arp_ignore=1`, `conf.all.arp_announce=2`,
  `ip_nonlocal_bind=1`, `nf_conntrack_tcp_loose=0`, IPv6 `conf.all.forwarding=1`): set back to
  the kernel's default — unless dvrnet's desired state sets that key itself.
Links (upstream's ports carry the names dvrnet gives the same ports), their addresses and
permanent neighbours are dvrnet's by ownership already: the ordinary diff replaces a port of
the wrong kind or peer and keeps a veth pair that already joins the right namespaces.

Order (`merge`): dvrnet's whole layout is built first — its FIP /32s replace upstream's in
place (same key), its NAT maps and its one fwmark rule are in before any upstream rule goes,
replaced ports are swapped one at a time — and only then are upstream's objects removed, before
dvrnet's own deletes. So each FIP is carried by upstream's objects or by dvrnet's at every moment
but while its own port is being swapped.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, ip_address
from typing import ClassVar

from dvrnet.plan.names import BRIDGE_SIDE_DEV, FIP_NS, OWNED_DEV_PREFIXES, QROUTER_NS, SNAT_NS
from dvrnet.plan.numbers import LINK_LOCAL_CIDR
from dvrnet.plan.state import HostState, Namespace, Neighbour

from .ops import (
    AddrDel,
    LinkDel,
    LinkReplaceDel,
    LinkSet,
    NeighDel,
    NeighReplace,
    NetnsDel,
    NftDelTable,
    Op,
    Plan,
    ProcStop,
    RouteDel,
    RuleDel,
)

UPSTREAM_PROTOS = frozenset({"static", "kernel", "4", "2"})
FIP_RULE_TABLE = 16
FIP_RULE_PRIOS = range(32768, 32768 + 40000)
LOCAL_TABLE = 255
WRAP = "neutron-l3-agent-"
UNWRAPPED = frozenset({"neutron-filter-top", "neutron-postrouting-bottom"})
BUILTIN = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
# key -> (the value upstream's agent sets, the kernel's default in a new namespace)
SYSCTLS: Mapping[str, tuple[str, str]] = {
    "net.ipv4.conf.all.arp_ignore": ("1", "0"),
    "net.ipv4.conf.all.arp_announce": ("2", "0"),
    "net.ipv4.ip_nonlocal_bind": ("1", "0"),
    "net.netfilter.nf_conntrack_tcp_loose": ("0", "1"),
    "net.ipv6.conf.all.forwarding": ("1", "0"),
}
_METADATA_CONF = re.compile(r"/ns-metadata-proxy/([0-9a-fA-F-]{8,})\.conf\Z")


# --- what the kernel holds (kernel/takeover.py reads it) ---------------------------------------
@dataclass(frozen=True)
class SeenRoute:
    table: int
    dst: str                       # as `ip -j` prints it ("default", "10.0.0.0/24", "203.0.113.50")
    proto: str
    dev: str | None = None
    via: str | None = None
    type: str = "unicast"
    metric: int = 0


@dataclass(frozen=True)
class SeenRule:
    priority: int
    proto: str = ""
    table: int | None = None
    src: str | None = None         # as printed, host bits kept ("10.0.0.1/24", "10.0.0.5")
    iif: str | None = None
    other: bool = False            # any selector besides from/iif (to, fwmark, oif, ...), or not `lookup`


@dataclass(frozen=True)
class SeenChain:
    family: str                    # "ip" | "ip6"
    table: str                     # "nat", "filter", ...
    name: str
    policy: str                    # "ACCEPT"/"DROP" for built-in chains, "-" otherwise
    rules: tuple[str, ...] = ()    # each as iptables-save prints it after `-A <name> `


@dataclass(frozen=True)
class SeenProcess:
    pid: int
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Seen:
    """One namespace as read for the takeover. `iptables_nft`: per family, whether iptables
    there is the nf_tables kind (its tables can then be deleted); `incompatible`: (family, table)
    that iptables-save could not show (something else wrote them: never touched)."""
    ns: str
    routes: tuple[SeenRoute, ...] = ()
    rules: tuple[SeenRule, ...] = ()
    chains: tuple[SeenChain, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    processes: tuple[SeenProcess, ...] = ()
    iptables_nft: Mapping[str, bool] = field(default_factory=dict)
    incompatible: frozenset[tuple[str, str]] = frozenset()


# --- upstream's objects ------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Upstream:
    """One object of upstream's, as `describe()` names it in errors and logs; sorted by kind
    first (processes, iptables, rules, routes, sysctls), then namespace."""
    rank: int
    ns: str
    what: str

    def describe(self) -> str:
        return f"{self.ns}: {self.what}"


@dataclass(frozen=True)
class Found:
    ns: str
    routes: tuple[SeenRoute, ...] = ()
    rules: tuple[SeenRule, ...] = ()
    # per (family, table): built-in rules to delete (chain, rule), upstream chains, delete the table
    iptables: tuple[tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...], bool], ...] = ()
    processes: tuple[SeenProcess, ...] = ()
    sysctls: tuple[tuple[str, str, str], ...] = ()        # (key, upstream value, reset to)

    def objects(self) -> list[Upstream]:
        out = [Upstream(0, self.ns, f"metadata proxy process {p.pid} ({' '.join(p.argv)})")
               for p in self.processes]
        for fam, table, jumps, chains, _drop in self.iptables:
            tool = "iptables" if fam == "ip" else "ip6tables"
            out += [Upstream(1, self.ns, f"{tool} -t {table} chain {c}") for c in chains]
            out += [Upstream(1, self.ns, f"{tool} -t {table} -A {c} {r}") for c, r in jumps]
        out += [Upstream(2, self.ns, f"rule {r.priority}: from {r.src or 'all'}"
                         + (f" iif {r.iif}" if r.iif else "") + f" lookup {r.table}") for r in self.rules]
        out += [Upstream(3, self.ns, f"route {r.dst}" + (f" via {r.via}" if r.via else "")
                         + (f" dev {r.dev}" if r.dev else "") + f" table {r.table} proto {r.proto}")
                for r in self.routes]
        out += [Upstream(4, self.ns, f"sysctl {k} = {v}") for k, v, _d in self.sysctls]
        return sorted(out)

    def conflicts(self) -> list[Upstream]:
        """What stops an agent without --adopt-neutron-state: everything but sysctl values."""
        return [o for o in self.objects() if o.rank < 4]

    def __bool__(self) -> bool:
        return bool(self.routes or self.rules or self.iptables or self.processes or self.sysctls)


def kind_of(ns: str, prefix: str) -> tuple[str, str]:
    """(namespace kind "fip-"/"qrouter-"/"snat-", the id after it) of an owned namespace name."""
    rest = ns.removeprefix(prefix)
    for k in (FIP_NS, QROUTER_NS, SNAT_NS):
        if rest.startswith(k):
            return k, rest[len(k):]
    return "", rest


def _upstream_dev(dev: str | None) -> bool:
    return dev is not None and dev.startswith(OWNED_DEV_PREFIXES)


def upstream_route(r: SeenRoute) -> bool:
    return r.proto in UPSTREAM_PROTOS and r.table != LOCAL_TABLE and r.type == "unicast" and _upstream_dev(r.dev)


def _as_int(addr: str) -> int | None:
    try:
        a = ip_address(addr.split("/")[0])
    except ValueError:
        return None
    return int(a) if isinstance(a, IPv4Address) else None


def upstream_rule(r: SeenRule, kind: str) -> bool:
    if r.other or r.proto in ("94", "dvrnet", "kernel", "2") or r.table is None:
        return False
    if kind == QROUTER_NS and r.src is not None and r.iif is None:
        addr, _, plen = r.src.partition("/")
        n = _as_int(addr)
        if r.table == FIP_RULE_TABLE and r.priority in FIP_RULE_PRIOS and plen in ("", "32"):
            return n is not None                                   # from <fixed> lookup 16
        return plen not in ("", "32") and n is not None and r.priority == r.table == n   # SNAT redirect
    if kind == FIP_NS and r.src is None and r.iif is not None and r.iif.startswith("fpr-"):
        return r.priority == r.table and 0 <= r.table < 2**32 and IPv4Address(r.table) in LINK_LOCAL_CIDR
    return False


def _upstream_chain(name: str) -> bool:
    return name.startswith(WRAP) or name in UNWRAPPED


def _jump_target(rule: str) -> str | None:
    m = re.fullmatch(r"-j (\S+)", rule.strip())
    return m.group(1) if m else None


def upstream_iptables(chains: Sequence[SeenChain], nft_kind: Mapping[str, bool],
                      incompatible: frozenset[tuple[str, str]] = frozenset()):
    out = []
    tables = sorted({(c.family, c.table) for c in chains} - incompatible)
    for fam, table in tables:
        cs = [c for c in chains if (c.family, c.table) == (fam, table)]
        ups = tuple(sorted(c.name for c in cs if _upstream_chain(c.name)))
        jumps = tuple((c.name, r) for c in cs if c.name in BUILTIN for r in c.rules
                      if (t := _jump_target(r)) is not None and _upstream_chain(t))
        if not ups and not jumps:
            continue
        left = [c for c in cs if not _upstream_chain(c.name)]
        empty = all(c.name in BUILTIN and c.policy == "ACCEPT"
                    and all((c.name, r) in jumps for r in c.rules) for c in left)
        out.append((fam, table, jumps, ups, empty and bool(nft_kind.get(fam))))
    return tuple(out)


def upstream_processes(procs: Iterable[SeenProcess], kind: str, ident: str) -> tuple[SeenProcess, ...]:
    if kind != QROUTER_NS:
        return ()
    out = []
    for p in procs:
        if not p.argv or p.argv[0].rsplit("/", 1)[-1] != "haproxy":
            continue
        conf = [a for a, b in zip(p.argv, p.argv[1:]) if a == "-f" and _METADATA_CONF.search(b)]
        names = [m.group(1) for b in p.argv if (m := _METADATA_CONF.search(b))]
        if conf and names and names[0] == ident:
            out.append(p)
    return tuple(out)


def find(seen: Seen, prefix: str, desired: Namespace | None) -> Found:
    """Upstream's objects in one namespace (DESIRED: dvrnet's plan for it, None when it goes)."""
    kind, ident = kind_of(seen.ns, prefix)
    want = desired.sysctls if desired is not None else {}
    resets = tuple((k, v, SYSCTLS[k][1]) for k, v in sorted(seen.sysctls.items())
                   if k in SYSCTLS and v == SYSCTLS[k][0] and k not in want)
    return Found(seen.ns,
                 tuple(r for r in seen.routes if upstream_route(r)),
                 tuple(r for r in seen.rules if upstream_rule(r, kind)),
                 upstream_iptables(seen.chains, seen.iptables_nft, seen.incompatible),
                 upstream_processes(seen.processes, kind, ident),
                 resets)


# --- removal ops (executed by kernel/takeover.py) ------------------------------------------------
@dataclass(frozen=True)
class UpstreamRouteDel(Op):
    route: SeenRoute = field(default_factory=lambda: SeenRoute(0, "", ""))
    tool: ClassVar[str] = "neutron"

    def line(self) -> str:
        r = self.route
        w = ([] if r.type == "unicast" else [r.type]) + [r.dst, "table", str(r.table), "proto", r.proto]
        if r.dev:
            w += ["dev", r.dev]
        if r.via:
            w += ["via", r.via]
        if r.metric:
            w += ["metric", str(r.metric)]
        return "route del " + " ".join(w)

    def describe(self) -> str:
        r = self.route
        via = f" via {r.via}" if r.via else ""
        dev = f" dev {r.dev}" if r.dev else ""
        return (f"{self.ns} table {r.table} {r.dst}: desired nothing, found neutron-l3-agent's"
                f"{via}{dev} proto {r.proto}")


@dataclass(frozen=True)
class UpstreamRuleDel(Op):
    rule: SeenRule = field(default_factory=lambda: SeenRule(0))
    tool: ClassVar[str] = "neutron"

    def line(self) -> str:
        r = self.rule
        w = ["priority", str(r.priority)]
        if r.src:
            w += ["from", r.src]
        if r.iif:
            w += ["iif", r.iif]
        return "rule del " + " ".join(w + ["lookup", str(r.table)])

    def describe(self) -> str:
        r = self.rule
        return (f"{self.ns} rule {r.priority}: desired nothing, found neutron-l3-agent's from {r.src or 'all'}"
                + (f" iif {r.iif}" if r.iif else "") + f" lookup {r.table}")


@dataclass(frozen=True)
class UpstreamIptablesDel(Op):
    """One iptables-restore --noflush transaction: the jumps into upstream's chains, then its
    chains flushed and deleted; `drop_table`: the table is empty afterwards (nf_tables kind):
    deleted with nft."""
    family: str = "ip"
    table: str = ""
    jumps: tuple[tuple[str, str], ...] = ()
    chains: tuple[str, ...] = ()
    drop_table: bool = False
    tool: ClassVar[str] = "neutron"

    def script(self) -> str:
        out = [f"*{self.table}"]
        out += [f"-D {c} {r}" for c, r in self.jumps]
        out += [f"-F {c}" for c in self.chains]
        out += [f"-X {c}" for c in self.chains]
        return "\n".join(out + ["COMMIT", ""])

    def line(self) -> str:
        tool = "iptables" if self.family == "ip" else "ip6tables"
        gone = f"; nft delete table {self.family} {self.table}" if self.drop_table else ""
        return (f"{tool} -t {self.table}: delete {len(self.jumps)} jumps and {len(self.chains)} chains of "
                f"neutron-l3-agent{gone}")

    def describe(self) -> str:
        tool = "iptables" if self.family == "ip" else "ip6tables"
        return (f"{self.ns} {tool} -t {self.table}: desired no chain of neutron-l3-agent, found "
                f"{len(self.chains)} chains and {len(self.jumps)} jumps into them")


@dataclass(frozen=True)
class UpstreamProcStop(Op):
    proc: SeenProcess = field(default_factory=lambda: SeenProcess(0, ()))
    tool: ClassVar[str] = "neutron"

    def line(self) -> str:
        return f"stop neutron-l3-agent's metadata proxy pid {self.proc.pid}"

    def describe(self) -> str:
        return f"{self.ns} process haproxy pid {self.proc.pid}: desired nothing, found neutron-l3-agent's metadata proxy running"


@dataclass(frozen=True)
class UpstreamSysctlReset(Op):
    key: str = ""
    value: str = ""
    was: str = ""
    tool: ClassVar[str] = "neutron"

    def line(self) -> str:
        return f"sysctl {self.key}={self.value} (neutron-l3-agent set {self.was})"

    def describe(self) -> str:
        return f"{self.ns} sysctl {self.key}: desired {self.value}, found {self.was} (neutron-l3-agent's)"


def removal_ops(found: Found, goes: bool = False) -> list[Op]:
    """The ops removing FOUND; GOES: its namespace is deleted by the plan (only its upstream
    processes need stopping: they would keep the namespace alive)."""
    ops: list[Op] = [UpstreamProcStop(found.ns, proc=p) for p in found.processes]
    if goes:
        return ops
    ops += [UpstreamIptablesDel(found.ns, family=f, table=t, jumps=j, chains=c, drop_table=d)
            for f, t, j, c, d in found.iptables]
    ops += [UpstreamRuleDel(found.ns, rule=r) for r in sorted(found.rules, key=lambda r: (r.priority, r.src or ""))]
    ops += [UpstreamRouteDel(found.ns, route=r) for r in sorted(found.routes, key=lambda r: (r.table, r.dst))]
    ops += [UpstreamSysctlReset(found.ns, key=k, value=d, was=v) for k, v, d in found.sysctls]
    return ops


# --- ports kept instead of replaced ---------------------------------------------------------------
UPSTREAM_TAP = "tap"          # the Linux-bridge agent's name of a port's bridge end: tap + port id[:11]


@dataclass(frozen=True)
class UpstreamPeerAdopt(Op):
    """Rename the bridge end of one of upstream's ports (`tap<port>`) to dvrnet's (`dv-<port>`,
    with dvrnet's MAC) instead of replacing the port: its namespace end, with its addresses and
    routes, keeps carrying traffic. `live_line`: renamed while up (kernels from 6.2 on allow it:
    no interruption at all); `down_line`, `rename_line`, `up_line`: the fallback for a kernel
    that refuses that (kernel/takeover.py `rename`)."""
    old: str = ""
    new: str = ""
    mac: str | None = None
    stage: ClassVar[int] = 1
    tool: ClassVar[str] = "neutron"

    def live_line(self) -> str:
        return self.rename_line()

    def rename_line(self) -> str:
        mac = f" address {self.mac}" if self.mac else ""
        return f"link set dev {self.old} name {self.new}{mac}"

    def down_line(self) -> str:
        return f"link set dev {self.old} down"

    def up_line(self, renamed: bool = True) -> str:
        return f"link set dev {self.new if renamed else self.old} up"

    def line(self) -> str:
        return f"link rename {self.old} to {self.new}" + (f" address {self.mac}" if self.mac else "")

    def describe(self) -> str:
        return f"{self.ns} link {self.new}: desired it, found neutron-l3-agent's bridge end {self.old}"


def adopt_peers(desired: HostState, observed: HostState) -> tuple[list[UpstreamPeerAdopt], HostState]:
    """The ports whose namespace end dvrnet wants as it is but whose bridge end is upstream's
    `tap<port>` where dvrnet wants `dv-<port>`: the renames, and OBSERVED as it is after them (so
    the diff keeps those ports)."""
    ops: list[UpstreamPeerAdopt] = []
    nss = dict(observed.namespaces)
    for name, d in sorted(desired.namespaces.items()):
        o = nss.get(name)
        if not d.managed or o is None:
            continue
        for dev, want in sorted(d.links.items()):
            have = o.links.get(dev)
            if (have is None or want.kind != "veth" or have.kind != "veth" or not want.peer
                    or not want.peer.startswith(BRIDGE_SIDE_DEV) or want.peer_netns != have.peer_netns
                    or have.peer != UPSTREAM_TAP + want.peer[len(BRIDGE_SIDE_DEV):]):
                continue
            bname = want.peer_netns or ""
            b, bd = nss.get(bname), desired.namespaces.get(bname)
            if b is None or have.peer not in b.links or want.peer in b.links:
                continue
            peer_want = bd.links.get(want.peer) if bd is not None else None
            mac = peer_want.mac if peer_want is not None else None
            ops.append(UpstreamPeerAdopt(bname, old=have.peer, new=want.peer, mac=mac))
            tap = b.links[have.peer]
            blinks = {k: v for k, v in b.links.items() if k != have.peer}
            blinks[want.peer] = replace(tap, name=want.peer, mac=mac or tap.mac)
            nss[bname] = replace(b, links=blinks)
            o = replace(o, links={**o.links, dev: replace(have, peer=want.peer)})
            nss[name] = o
    if not ops:
        return [], observed
    return ops, HostState(observed.host, nss, observed.orphans)


@dataclass(frozen=True)
class VethRekey(Op):
    """New MACs for the two ends of a kept veth (upstream's rfp-/fpr- pair) and then every
    permanent neighbour on both ends, in one go (kernel/takeover.py: two netlink sockets, one per
    namespace, no process in between): a MAC change flushes the device's own neighbours, and the
    other end's entry names the old MAC until it is rewritten — microseconds instead of the time
    between two `ip -batch` runs."""
    dev: str = ""
    mac: str | None = None
    peer_ns: str = ""
    peer: str = ""
    peer_mac: str | None = None
    neighbours: tuple[tuple[str, Neighbour], ...] = ()      # (namespace, neighbour) on either end
    stage: ClassVar[int] = 1
    tool: ClassVar[str] = "neutron"

    def line(self) -> str:
        macs = [f"{d} address {m}" for d, m in ((self.dev, self.mac), (f"{self.peer_ns}/{self.peer}", self.peer_mac)) if m]
        return f"veth {self.dev}: link set {', '.join(macs)}; then {len(self.neighbours)} permanent neighbours"

    def describe(self) -> str:
        macs = " and ".join(f"{d} address {m}" for d, m in ((self.dev, self.mac), (f"{self.peer_ns}/{self.peer}",
                                                                                 self.peer_mac)) if m)
        return f"{self.ns} link {self.dev}: desired {macs}, found neutron-l3-agent's"


def rekey_veths(plan: Plan, desired: HostState) -> Plan:
    """Turn the MAC changes of kept veth pairs (before the replacement groups) and the neighbours
    on their ends into one `VethRekey` per pair, where the first of those MAC changes was."""
    first = plan.groups[0][0] if plan.groups else len(plan.ops)
    peer: dict[tuple[str, str], tuple[str, str]] = {}
    for ns, d in desired.namespaces.items():
        for dev, lk in d.links.items():
            if lk.kind == "veth" and lk.peer and (lk.peer_netns or ns) in desired.namespaces:
                peer[(ns, dev)] = (lk.peer_netns or ns, lk.peer)
    macs: dict[tuple[str, str], str] = {}
    for op in plan.ops[:first]:
        if isinstance(op, LinkSet) and op.mac and (op.ns, op.name) in peer:
            macs[(op.ns, op.name)] = op.mac
    pairs: dict[tuple[tuple[str, str], tuple[str, str]], None] = {}
    for end in macs:
        other = peer[end]
        pairs[(end, other) if end <= other else (other, end)] = None      # one key per pair, either end first
    if not pairs:
        return plan
    rekeyed = {e for pair in pairs for e in pair}

    def neighbours(end: tuple[str, str]) -> list[tuple[str, Neighbour]]:
        d = desired.namespaces[end[0]]
        return [(end[0], n) for n in sorted(d.neighbours) if n.dev == end[1]]
    op_of = {}
    for (a, b) in pairs:
        op_of[a] = op_of[b] = VethRekey(a[0], dev=a[1], mac=macs.get(a), peer_ns=b[0], peer=b[1], peer_mac=macs.get(b),
                                        neighbours=tuple(neighbours(a) + neighbours(b)))
    out: list[Op] = []
    done: set[int] = set()
    for op in plan.ops[:first]:
        if isinstance(op, NeighReplace) and (op.ns, op.neigh.dev) in rekeyed:
            continue
        if isinstance(op, LinkSet) and (op.ns, op.name) in macs:
            r = op_of[(op.ns, op.name)]
            if id(r) not in done:
                out.append(r)
                done.add(id(r))
            rest = replace(op, mac=None)
            if any(v is not None for v in (rest.mtu, rest.master, rest.up)):
                out.append(rest)
            continue
        out.append(op)
    shift = len(out) - first
    return Plan(tuple(out) + plan.ops[first:], plan.conflicts, tuple((x + shift, y + shift) for x, y in plan.groups))


_DELETE_PHASE = (NftDelTable, NeighDel, RuleDel, RouteDel, AddrDel, LinkDel, ProcStop, NetnsDel)


def _deletes_start(plan: Plan) -> int:
    """Index of the first op of the plan's deletes (the trailing run of delete ops after the
    creates and replacement groups: reconcile/diff.py's order)."""
    i = len(plan.ops)
    floor = plan.groups[-1][1] if plan.groups else 0
    while i > floor and isinstance(plan.ops[i - 1], _DELETE_PHASE) and not isinstance(plan.ops[i - 1], LinkReplaceDel):
        i -= 1
    return i


def merge(plan: Plan, found: Iterable[Found], adopt: Sequence[UpstreamPeerAdopt] = ()) -> Plan:
    """PLAN with ADOPT's renames first and the removal of FOUND after dvrnet's creates and
    replacement groups and before its deletes (make-before-break; see the module docstring)."""
    goes = {op.ns for op in plan.ops if isinstance(op, NetnsDel)}
    extra: list[Op] = []
    for f in sorted(found, key=lambda f: f.ns):
        extra += removal_ops(f, f.ns in goes)
    at = _deletes_start(plan)
    n = len(adopt)
    groups = tuple((a + n, b + n) for a, b in plan.groups)
    return Plan(tuple(adopt) + plan.ops[:at] + tuple(extra) + plan.ops[at:], plan.conflicts, groups)


def takeover_plan(desired: HostState, observed: HostState, found: Sequence[Found],
                  diff: Callable[[HostState], Plan]) -> Plan:
    """The first plan of a takeover: upstream's ports kept where only their bridge end's name
    differs (`adopt_peers`), DIFF of DESIRED against the node as it is after those renames, the
    MAC changes of kept veth pairs done with their neighbours in one go (`rekey_veths`),
    upstream's objects removed once dvrnet's are in (`merge`)."""
    adopt, seen = adopt_peers(desired, observed)
    return merge(rekey_veths(diff(seen), desired), found, adopt)


__all__ = ["Found", "Seen", "SeenChain", "SeenProcess", "SeenRoute", "SeenRule", "Upstream",
           "adopt_peers", "find", "merge", "rekey_veths", "removal_ops", "takeover_plan"]
