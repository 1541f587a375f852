"""Operations of a plan: plain values, each printable as one readable line.

Invariants:
- Every op is idempotent when executed: an add of something present, a delete of something
  absent, a set to the current value all succeed. Routes, addresses and neighbours are written
  with `replace`; rule adds tolerate EEXIST; deletes tolerate ENOENT/ESRCH/ENODEV.
- `line()` is the exact iproute2 batch command (the kernel layer feeds it to `ip -n NS -batch -`),
  so what the plan prints is what runs. nft ops render their `nft -f` script with `script()`.
- `describe()` is the op as a difference (`NS object: desired X, found Y`), what a verify plan
  reports (`verify.describe_plan`); each op class owns its own.
- `stage` says when an op may run relative to other namespaces: 0 namespace creation (and what
  must hold before links exist: `EarlySysctlSet`, `EarlyNftTable`), 1 links
  (a veth add touches two namespaces) and Open vSwitch ports, 2 everything inside one namespace
  (namespaces may run in parallel; within one, plan order), 3 teardown of obsolete links and
  namespaces.
- Open vSwitch ops (`tool = "ovs"`) name the namespace of the ovs-vswitchd they concern; their
  `words()` are ovs-vsctl commands, and consecutive ones of one namespace run as one ovs-vsctl
  transaction (kernel/ovs.py), never one process per port.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import ClassVar

from dvrnet.plan.numbers import RT_PROTO
from dvrnet.plan.state import Address, Link, Neighbour, NftMap, NftTable, OvsPort, Process, Route, Rule

from .nft_text import element_lines, table_script

Element = tuple[str, str, str | None]     # (map name, key, value or None for a set)


@dataclass(frozen=True)
class Op:
    ns: str
    stage: ClassVar[int] = 2
    tool: ClassVar[str] = "ip"             # "ip" | "nft" | "netns" | "sysctl" | "garp" | "ovs" | "ethtool"

    def line(self) -> str:
        raise NotImplementedError

    def describe(self) -> str | None:
        """What this op would change, as a difference (`NS object: desired X, found Y`), one line;
        None for an op that changes no state (an announcement). A verify plan renders with it."""
        raise NotImplementedError

    def __str__(self) -> str:
        return f"{self.ns}: {self.line()}"


# --- namespaces -------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetnsAdd(Op):
    stage: ClassVar[int] = 0
    tool: ClassVar[str] = "netns"

    def line(self) -> str:
        return f"netns add {self.ns}"

    def describe(self) -> str:
        return f"{self.ns}: namespace desired, found nothing"


@dataclass(frozen=True)
class NetnsDel(Op):
    stage: ClassVar[int] = 3
    tool: ClassVar[str] = "netns"

    def line(self) -> str:
        return f"netns del {self.ns}"

    def describe(self) -> str:
        return f"{self.ns}: namespace desired nothing, found it"


# --- links ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkAdd(Op):
    """Create a link; for a veth, both ends at once, each directly in its namespace."""
    link: Link = field(default_factory=lambda: Link(""))
    peer_link: Link | None = None          # the desired other end (its mac/mtu), if known
    into: str | None = None                # macvlan: the namespace it is created in (op runs in its lower's)
    stage: ClassVar[int] = 1

    def line(self) -> str:
        lk = self.link
        if lk.kind == "macvlan":
            words = ["link add link", lk.peer or "", "name", lk.name, *_mac_mtu(lk)]
            if self.into and self.into != self.ns:
                words += ["netns", self.into]
            return " ".join(words + ["type macvlan mode bridge"])
        words = ["link add", lk.name, *_mac_mtu(lk), "type", lk.kind]
        if lk.kind == "veth":
            words += ["peer name", lk.peer or ""]
            if self.peer_link is not None:
                words += _mac_mtu(self.peer_link)
            if lk.peer_netns and lk.peer_netns != self.ns:
                words += ["netns", lk.peer_netns]
        return " ".join(words)

    def describe(self) -> str:
        return f"{self.into or self.ns} link {self.link.name}: desired {self.link.kind}, found nothing"


@dataclass(frozen=True)
class LinkSet(Op):
    name: str = ""
    mac: str | None = None
    mtu: int | None = None
    master: str | None = None              # "nomaster" to release
    up: bool | None = None
    stage: ClassVar[int] = 1

    def line(self) -> str:
        words = ["link set dev", self.name]
        if self.mac:
            words += ["address", self.mac]
        if self.mtu:
            words += ["mtu", str(self.mtu)]
        if self.master == "nomaster":
            words.append("nomaster")
        elif self.master:
            words += ["master", self.master]
        if self.up is not None:
            words.append("up" if self.up else "down")
        return " ".join(words)

    def describe(self) -> str:
        parts = [_word(n, getattr(self, n)) for n in ("mac", "mtu", "master", "up") if getattr(self, n) is not None]
        return f"{self.ns} link {self.name}: desired {' '.join(parts)}, found otherwise"


@dataclass(frozen=True)
class LinkDel(Op):
    name: str = ""
    why: str = "obsolete"                  # "obsolete" (stage 3) or the reason of a replacement
    stage: ClassVar[int] = 3

    def line(self) -> str:
        return f"link del dev {self.name}"

    def __str__(self) -> str:
        why = "" if self.why == "obsolete" else f"  ({self.why})"
        return f"{self.ns}: {self.line()}{why}"

    def describe(self) -> str:
        return f"{self.ns} link {self.name}: " + ("desired nothing, found it" if self.why == "obsolete" else self.why)


@dataclass(frozen=True)
class LinkReplaceDel(LinkDel):
    """Delete a link of the wrong kind or peer right before it is recreated."""
    stage: ClassVar[int] = 1


# --- Open vSwitch ports, transmit checksum offload -------------------------------------------
DEAD_VLAN = 4095          # Neutron's: a new port carries nothing until the L2 agent tags it


def ovs_port_words(p: OvsPort) -> list[str]:
    """ovs-vsctl commands (separated by "--") that create the port if it is missing — in Neutron's
    dead VLAN, which the L2 agent replaces by the network's local VLAN — and set the interface
    columns dvrnet owns (its other external_ids keys and the Port's tag are left alone)."""
    words = ["--may-exist", "add-port", p.bridge, p.name, f"tag={DEAD_VLAN}", "vlan_mode=trunk",
             f"trunks={DEAD_VLAN}", "--", "set", "Interface", p.name, f'type="{p.type}"']
    words += [f'external_ids:{k}="{v}"' for k, v in p.external_ids]
    if p.mtu_request:
        words.append(f"mtu_request={p.mtu_request}")
    return words


@dataclass(frozen=True)
class OvsPlug(Op):
    """Create an OVS internal port (or find the tap ovs-vswitchd made for it) in namespace `ns`,
    the namespace of its ovs-vswitchd, and move it into `into` with the link's MAC and MTU, up."""
    link: Link = field(default_factory=lambda: Link(""))
    port: OvsPort = field(default_factory=lambda: OvsPort("", ""))
    into: str = ""
    stage: ClassVar[int] = 1
    tool: ClassVar[str] = "ovs"

    def words(self) -> list[str]:
        return ovs_port_words(self.port)

    def move_line(self) -> str:
        return " ".join(["link set dev", self.link.name, "netns", self.into, *_mac_mtu(self.link), "up"])

    def line(self) -> str:
        return f"ovs-vsctl {' '.join(self.words())}; ip {self.move_line()}"

    def describe(self) -> str:
        return (f"{self.into} link {self.link.name}: desired ovs (internal port of {self.port.bridge} in {self.ns}), "
                "found nothing")


@dataclass(frozen=True)
class OvsPortSet(Op):
    """Create an OVS port of a system device (or update an existing one's columns)."""
    port: OvsPort = field(default_factory=lambda: OvsPort("", ""))
    old: OvsPort | None = None
    stage: ClassVar[int] = 1
    tool: ClassVar[str] = "ovs"

    def words(self) -> list[str]:
        return ovs_port_words(self.port)

    def line(self) -> str:
        return "ovs-vsctl " + " ".join(self.words())

    def describe(self) -> str:
        p = self.port
        if self.old is None:
            return f"{self.ns} OVS port {p.name}: desired on {p.bridge}, found nothing"
        d, f = _fieldwise(p, self.old, ("external_ids", "mtu_request"))
        return f"{self.ns} OVS port {p.name}: desired {d}, found {f}"


@dataclass(frozen=True)
class OvsPortDel(Op):
    """Delete an OVS port (ovs-vswitchd destroys an internal port's tap, wherever it is)."""
    bridge: str = ""
    name: str = ""
    why: str = "obsolete"
    stage: ClassVar[int] = 1
    tool: ClassVar[str] = "ovs"

    def words(self) -> list[str]:
        return ["--if-exists", "del-port", self.bridge, self.name]

    def line(self) -> str:
        return "ovs-vsctl " + " ".join(self.words())

    def describe(self) -> str:
        return f"{self.ns} OVS port {self.name} on {self.bridge}: " + (
            "desired nothing, found it" if self.why == "obsolete" else f"to be re-created ({self.why})")


@dataclass(frozen=True)
class EthtoolSet(Op):
    """Transmit checksum offload of one device (`ethtool -K DEV tx on|off`)."""
    dev: str = ""
    tx: bool = True
    tool: ClassVar[str] = "ethtool"

    def line(self) -> str:
        return f"ethtool -K {self.dev} tx {'on' if self.tx else 'off'}"

    def describe(self) -> str:
        return f"{self.ns} link {self.dev}: desired tx-checksumming {'on' if self.tx else 'off'}, found otherwise"


# --- addresses, routes, rules, neighbours ----------------------------------------------------
@dataclass(frozen=True)
class AddrAdd(Op):
    addr: Address = field(default_factory=lambda: Address("", ""))
    old: Address | None = None

    def line(self) -> str:
        a = self.addr
        return f"address replace {a.cidr} dev {a.dev}" + (" noprefixroute" if a.noprefixroute else "")

    def describe(self) -> str:
        a = self.addr
        if self.old is None:
            return f"{self.ns} address {a.ip} on {a.dev}: desired {a.cidr}, found nothing"
        d, f = _fieldwise(a, self.old, ("cidr", "noprefixroute"))
        return f"{self.ns} address {a.ip} on {a.dev}: desired {d}, found {f}"


@dataclass(frozen=True)
class AddrDel(Op):
    addr: Address = field(default_factory=lambda: Address("", ""))

    def line(self) -> str:
        return f"address del {self.addr.cidr} dev {self.addr.dev}"

    def describe(self) -> str:
        return f"{self.ns} address {self.addr.cidr} on {self.addr.dev}: desired nothing, found it"


def route_words(r: Route) -> list[str]:
    w = [] if r.type == "unicast" else [r.type]
    w.append(r.dst)
    if r.via:
        w += ["via", r.via]
    if r.dev:
        w += ["dev", r.dev]
    if r.scope != "global":
        w += ["scope", r.scope]
    if r.src:
        w += ["src", r.src]
    if r.metric:
        w += ["metric", str(r.metric)]
    w += ["table", str(r.table), "proto", str(RT_PROTO)]
    if r.onlink:
        w.append("onlink")
    return w


@dataclass(frozen=True)
class RouteReplace(Op):
    """Add a route, or replace the route with the same (table, dst, metric) in place."""
    route: Route = field(default_factory=lambda: Route(0, ""))
    old: Route | None = None

    def line(self) -> str:
        return "route replace " + " ".join(route_words(self.route))

    def __str__(self) -> str:
        verb = "replace" if self.old else "add"
        return f"{self.ns}: route {verb} " + " ".join(route_words(self.route))

    def describe(self) -> str:
        r = self.route
        head = f"{self.ns} table {r.table} {r.dst}" + (f" metric {r.metric}" if r.metric else "")
        if self.old is None:
            return f"{head}: desired {_route_attrs(r)}, found nothing"
        d, f = _fieldwise(r, self.old, _ROUTE_FIELDS)
        return f"{head}: desired {d}, found {f}"


@dataclass(frozen=True)
class RouteDel(Op):
    route: Route = field(default_factory=lambda: Route(0, ""))

    def line(self) -> str:
        r = self.route
        w = ([] if r.type == "unicast" else [r.type]) + [r.dst, "table", str(r.table)]
        if r.metric:
            w += ["metric", str(r.metric)]
        return "route del " + " ".join(w + ["proto", str(RT_PROTO)])

    def describe(self) -> str:
        r = self.route
        return f"{self.ns} table {r.table} {r.dst}: desired nothing, found {_route_attrs(r)}"


def rule_words(r: Rule) -> list[str]:
    w = ["priority", str(r.priority)]
    if r.src:
        w += ["from", r.src]
    if r.dst:
        w += ["to", r.dst]
    if r.iif:
        w += ["iif", r.iif]
    if r.fwmark is not None:
        w += ["fwmark", f"{r.fwmark:#x}" + (f"/{r.fwmask:#x}" if r.fwmask is not None else "")]
    w += ["lookup", str(r.table)] if r.action == "lookup" else [r.action]
    return w + ["protocol", str(RT_PROTO)]


@dataclass(frozen=True)
class RuleAdd(Op):
    rule: Rule = field(default_factory=lambda: Rule(0))

    def line(self) -> str:
        return "rule add " + " ".join(rule_words(self.rule))

    def describe(self) -> str:
        return f"{self.ns} rule {' '.join(rule_words(self.rule)[:-2])}: desired, found nothing"


@dataclass(frozen=True)
class RuleDel(Op):
    rule: Rule = field(default_factory=lambda: Rule(0))

    def line(self) -> str:
        return "rule del " + " ".join(rule_words(self.rule))

    def describe(self) -> str:
        return f"{self.ns} rule {' '.join(rule_words(self.rule)[:-2])}: desired nothing, found it"


@dataclass(frozen=True)
class NeighReplace(Op):
    neigh: Neighbour = field(default_factory=lambda: Neighbour("", "", ""))
    old: Neighbour | None = None

    def line(self) -> str:
        n = self.neigh
        return f"neigh replace {n.ip} lladdr {n.mac} dev {n.dev} nud permanent"

    def describe(self) -> str:
        n = self.neigh
        found = self.old.mac if self.old else "nothing"
        return f"{self.ns} neighbour {n.ip} on {n.dev}: desired lladdr {n.mac}, found {found}"


@dataclass(frozen=True)
class NeighDel(Op):
    neigh: Neighbour = field(default_factory=lambda: Neighbour("", "", ""))

    def line(self) -> str:
        return f"neigh del {self.neigh.ip} dev {self.neigh.dev}"

    def describe(self) -> str:
        n = self.neigh
        return f"{self.ns} neighbour {n.ip} on {n.dev}: desired nothing, found {n.mac}"


# --- sysctls, nftables, gratuitous ARP --------------------------------------------------------
@dataclass(frozen=True)
class SysctlSet(Op):
    key: str = ""
    value: str = ""
    old: str | None = None
    tool: ClassVar[str] = "sysctl"

    def line(self) -> str:
        was = "" if self.old is None else f" (was {self.old})"
        return f"sysctl {self.key}={self.value}{was}"

    def describe(self) -> str:
        return f"{self.ns} sysctl {self.key}: desired {self.value}, found {self.old if self.old is not None else 'nothing'}"


@dataclass(frozen=True)
class EarlySysctlSet(SysctlSet):
    """A namespace-wide sysctl (`…conf.all.…`, `…conf.default.…`) of a managed namespace, set
    before any link is created (stage 0), so the namespace's devices are born with it."""
    stage: ClassVar[int] = 0


@dataclass(frozen=True)
class NftReplaceTable(Op):
    """Create the table, or replace it whole in one transaction (structure changed)."""
    table: NftTable = field(default_factory=lambda: NftTable("ip", ""))
    exists: bool = False
    tool: ClassVar[str] = "nft"

    def script(self) -> str:
        return table_script(self.table, replace=True)

    def line(self) -> str:
        t = self.table
        n = sum(len(m.elements) for m in t.maps)
        verb = "replace" if self.exists else "add"
        return (f"nft {verb} table {t.family} {t.name} ({len(t.chains)} chains, "
                f"{len(t.maps)} maps, {n} elements)")

    def describe(self) -> str:
        t = self.table
        return f"{self.ns} nft table {t.family} {t.name}: " + (
            "structure differs (chains, rules or map declarations)" if self.exists else "desired, found nothing")


@dataclass(frozen=True)
class EarlyNftTable(NftReplaceTable):
    """A table of a namespace dvrnet does not own (the bridge namespace's L2 guard: plan/l2.py),
    written before any link is created (stage 0): the ports it guards are never up without it."""
    stage: ClassVar[int] = 0


@dataclass(frozen=True)
class NftDelTable(Op):
    family: str = "ip"
    name: str = ""
    tool: ClassVar[str] = "nft"

    def script(self) -> str:
        return f"add table {self.family} {self.name}\ndelete table {self.family} {self.name}\n"

    def line(self) -> str:
        return f"nft delete table {self.family} {self.name}"

    def describe(self) -> str:
        return f"{self.ns} nft table {self.family} {self.name}: desired nothing, found it"


@dataclass(frozen=True)
class NftElements(Op):
    """Element-only change of one table: deletes then adds, one transaction."""
    family: str = "ip"
    table: str = ""
    add: tuple[Element, ...] = ()
    delete: tuple[Element, ...] = ()
    maps: tuple[NftMap, ...] = ()           # declarations, for rendering set vs map
    tool: ClassVar[str] = "nft"

    def script(self) -> str:
        return "".join(element_lines(self.family, self.table, "delete", self.delete)
                       + element_lines(self.family, self.table, "add", self.add))

    def line(self) -> str:
        lines = [s.strip() for s in self.script().splitlines()]
        shown = "; ".join(_clip(s) for s in lines[:4])
        more = f" … (+{len(lines) - 4} statements)" if len(lines) > 4 else ""
        return f"nft {shown}{more}"

    def describe(self) -> str:
        return (f"{self.ns} nft table {self.family} {self.table}: {len(self.add)} elements missing, "
                f"{len(self.delete)} unexpected: " + self.line()[4:])


@dataclass(frozen=True)
class Garp(Op):
    """Announce a FIP from the fg- device (gratuitous ARP), so upstream learns a moved FIP."""
    dev: str = ""
    ip: str = ""
    tool: ClassVar[str] = "garp"

    def line(self) -> str:
        return f"garp {self.ip} dev {self.dev}"

    def describe(self) -> None:
        return None                              # an announcement, not state


# --- processes (plan/process.py) -----------------------------------------------------------
@dataclass(frozen=True)
class ProcStart(Op):
    """Write the process's files and start it in its namespace; `old`: a running instance with
    another command line (or in a dead namespace), stopped first."""
    proc: Process = field(default_factory=lambda: Process("", ()))
    old: Process | None = None
    tool: ClassVar[str] = "proc"

    def line(self) -> str:
        verb = "restart" if self.old is not None else "start"
        return f"process {verb} {self.proc.role} digest {self.proc.digest}: {' '.join(self.proc.argv)}"

    def describe(self) -> str:
        if self.old is not None:
            return (f"{self.ns} process {self.proc.role}: desired {' '.join(self.proc.argv)}, "
                    f"found {' '.join(self.old.argv)}")
        return f"{self.ns} process {self.proc.role}: desired running, found nothing"


@dataclass(frozen=True)
class ProcReload(Op):
    """Write the process's files and have it load them (BIRD: `configure`), without restarting."""
    proc: Process = field(default_factory=lambda: Process("", ()))
    old: Process | None = None
    tool: ClassVar[str] = "proc"

    def line(self) -> str:
        was = self.old.digest if self.old is not None else "?"
        return f"process reload {self.proc.role} digest {self.proc.digest} (running {was or '?'})"

    def describe(self) -> str:
        return (f"{self.ns} process {self.proc.role}: desired configuration {self.proc.digest}, "
                f"found {(self.old.digest if self.old else '') or 'an unknown one'}")


@dataclass(frozen=True)
class ProcStop(Op):
    """Stop an owned process (its namespace goes, or it is no longer desired) and remove its
    runtime directory."""
    proc: Process = field(default_factory=lambda: Process("", ()))
    stage: ClassVar[int] = 3
    tool: ClassVar[str] = "proc"

    def line(self) -> str:
        return f"process stop {self.proc.role} pid {self.proc.pid}"

    def describe(self) -> str:
        return f"{self.ns} process {self.proc.role} pid {self.proc.pid}: desired nothing, found it running"


def _mac_mtu(lk: Link) -> list[str]:
    w = []
    if lk.mac:
        w += ["address", lk.mac]
    if lk.mtu:
        w += ["mtu", str(lk.mtu)]
    return w


def _clip(s: str, n: int = 160) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


# --- descriptions (`describe`) ----------------------------------------------------------------
_ROUTE_FIELDS = ("type", "via", "dev", "scope", "onlink", "src")


def _route_attrs(r: Route) -> str:
    words = route_words(r)
    words = words[: words.index("table")]
    words.remove(r.dst)
    return " ".join(words) or "a route"


def _fieldwise(want, have, names) -> tuple[str, str]:
    d, f = [], []
    for n in names:
        a, b = getattr(want, n), getattr(have, n)
        if a != b:
            d.append(_word(n, a))
            f.append(_word(n, b))
    return " ".join(d), " ".join(f)


def _word(name: str, v) -> str:
    if isinstance(v, bool):
        return name if v else f"no {name}"
    if v is None:
        return f"no {name}"
    return f"{name} {v}"


WRITE_TOOLS = ("ip", "nft", "netns", "sysctl", "ovs", "ethtool")


@dataclass(frozen=True)
class Plan:
    """An ordered tuple of ops plus conflicts diff refused to resolve (foreign holders).

    `groups`: the replacement groups, as [start, end) index ranges into `ops`, ascending and
    adjacent to each other: each is one replaced link's whole life (delete, create, sets,
    addresses, routes, neighbours, sysctls), to be executed in order, one group at a time, between
    the ops before the first group (creates) and those after the last (deletes, teardown)."""
    ops: tuple[Op, ...] = ()
    conflicts: tuple[str, ...] = ()
    groups: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        end = self.groups[0][0] if self.groups else 0
        for a, b in self.groups:
            if a != end or b <= a or b > len(self.ops):
                raise ValueError(f"Plan.groups must be adjacent non-empty ranges of ops: {self.groups}")
            end = b

    def segments(self) -> list[tuple[tuple[Op, ...], bool]]:
        """(ops, is_group) runs in plan order: the ops before the groups, each group, the rest."""
        if not self.groups:
            return [(self.ops, False)] if self.ops else []
        first, last = self.groups[0][0], self.groups[-1][1]
        out = [(self.ops[:first], False)] if first else []
        out += [(self.ops[a:b], True) for a, b in self.groups]
        if last < len(self.ops):
            out.append((self.ops[last:], False))
        return out

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __str__(self) -> str:
        return "\n".join([str(o) for o in self.ops] + [f"conflict: {c}" for c in self.conflicts])

    @property
    def writes(self) -> int:
        return sum(1 for o in self.ops if o.tool in WRITE_TOOLS)


def op_fields(op: Op) -> dict[str, object]:
    return {f.name: getattr(op, f.name) for f in fields(op)}
