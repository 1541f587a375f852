"""Desired (and observed) kernel state as plain values, keyed the way the kernel keys objects.

One `HostState` maps namespace names to `Namespace` values. The same types describe what the
planner wants and what the kernel reader found, so `reconcile.diff(desired, observed)` compares
like with like.

Keys (what makes two objects "the same object" to the kernel):
- Link: (namespace, name)              Address: (dev, ip)        Route: (table, dst, metric)
- Rule: every selector + action        Neighbour: (dev, ip)      Sysctl: key
- NftTable: (family, name); its map elements are compared one by one.  Process: role
  (per namespace; see `Process`).
- OvsPort: (namespace of its ovs-vswitchd, name) — a row of Open vSwitch's database, not a kernel
  object: the port and its one interface, both named after the device.
Every value is frozen and orders deterministically, so the text form (`render.py`) of the same
state is byte-identical run to run.
Addresses and prefixes are canonical strings ("203.0.113.0/24", "default" for 0.0.0.0/0) so that
observed state read from `ip -json` compares equal without conversion.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, ip_network
from socket import inet_aton, inet_ntoa

MAIN_TABLE = 254


@dataclass(frozen=True, slots=True, order=True)
class Link:
    """A network device in a namespace.

    kind: "veth", "macvlan" or "ovs" (an Open vSwitch internal port moved into this namespace) as
    dvrnet creates them, or what the kernel reports for an observed device ("bridge", "vxlan",
    "tun", ...). For a veth, `peer_netns`/`peer` name the other end; the pair is created from the
    end whose (namespace, name) sorts first; for a macvlan they name its lower device, for "ovs"
    the namespace of its ovs-vswitchd and its OVS bridge. `master` is the Linux bridge the device
    is enslaved to (bridge-side ends of router ports). `mac` None means "whatever the kernel chose".
    ovs: the OVS bridge this device is a (system) port of — the bridge end of an `ovs-veth` port.
    carrier: False for an observed "ovs" port that no longer carries traffic (left behind by an
    ovs-vswitchd restart); desired links always say True.
    tx_csum: the device's transmit checksum offload (`ethtool -K DEV tx on|off`) when dvrnet owns
    it (False on the namespace end of an `ovs-veth` port), else None: not read, not compared.
    """
    name: str
    kind: str = "veth"
    peer_netns: str | None = None
    peer: str | None = None
    mac: str | None = None
    mtu: int | None = None
    master: str | None = None
    up: bool = True
    ovs: str | None = None
    carrier: bool = True
    tx_csum: bool | None = None


@dataclass(frozen=True, slots=True, order=True)
class OvsPort:
    """A port of an Open vSwitch bridge with its one interface of the same name (Neutron's
    OVSInterfaceDriver plugs router ports this way): `type` "internal" (a tap ovs-vswitchd creates)
    or "" (a system device, the bridge end of a veth pair); `external_ids` the (key, value) pairs
    dvrnet sets, sorted (Neutron's iface-id, iface-status, attached-mac and dvrnet's owner marker;
    `names.OVS_OWNER_KEY`); `mtu_request` the MTU asked of ovs-vswitchd. The VLAN tag belongs to
    the L2 agent: dvrnet sets only Neutron's "dead VLAN" (4095) when it creates a port, and never
    compares it."""
    name: str
    bridge: str
    type: str = ""
    external_ids: tuple[tuple[str, str], ...] = ()
    mtu_request: int | None = None

    def external_id(self, key: str) -> str | None:
        return next((v for k, v in self.external_ids if k == key), None)


@dataclass(frozen=True, slots=True, order=True)
class Address:
    dev: str
    cidr: str                    # interface form: "100.64.0.5/24"
    noprefixroute: bool = True   # dvrnet adds every connected route itself

    @property
    def ip(self) -> str:
        return self.cidr.split("/")[0]


@dataclass(frozen=True, slots=True, order=True)
class Route:
    table: int
    dst: str                     # "default" or a canonical prefix "203.0.113.0/24", "203.0.113.9/32"
    via: str | None = None
    dev: str | None = None
    scope: str = "global"        # "global" | "link"
    onlink: bool = False
    src: str | None = None
    type: str = "unicast"        # "unicast" | "blackhole" | "unreachable"
    metric: int = 0

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.table, self.dst, self.metric)

    def sort_key(self) -> tuple:
        return (self.table != MAIN_TABLE, self.table, prefix_sort_key(self.dst), self.metric)


@dataclass(frozen=True, slots=True, order=True)
class Rule:
    priority: int
    action: str = "lookup"       # "lookup" | "blackhole" | "unreachable" | "prohibit"
    table: int | None = None     # for "lookup"
    src: str | None = None       # canonical prefix
    dst: str | None = None
    iif: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None

    def sort_key(self) -> tuple:
        return (self.priority, prefix_sort_key(self.src or "0.0.0.0/0"), self.iif or "",
                self.fwmark or 0, self.action, self.table or 0)


@dataclass(frozen=True, slots=True, order=True)
class Neighbour:
    dev: str
    ip: str
    mac: str                     # always permanent


@dataclass(frozen=True, slots=True)
class NftChain:
    name: str
    type: str                    # "filter" | "nat" ("" for a regular chain)
    hook: str                    # "prerouting" | "postrouting" | "output" | "forward" ("": a regular
                                 # chain, reached only by `jump`; priority 0, policy accept)
    priority: int
    rules: tuple[str, ...] = ()  # nft syntax, one statement each, in order
    policy: str = "accept"


@dataclass(frozen=True, slots=True)
class NftMap:
    """A named map (`data_type` set) or set (`data_type` None) with its elements.

    elements: frozenset of (key, value) for maps, of (key, None) for sets; strings as nft prints them.
    dynamic: the packet path owns the elements (`flags dynamic`, filled by `add @set` / `update
    @set` rules: connection counts, drop counters). Such a set is planned without elements and read
    back without them: only its declaration (types, size) is compared.
    size: the set's `size` (its maximum number of elements), None for nft's default.
    """
    name: str
    key_type: str                # "ipv4_addr", "ipv4_addr . mark"
    data_type: str | None = None
    elements: frozenset[tuple[str, str | None]] = frozenset()
    dynamic: bool = False
    size: int | None = None


@dataclass(frozen=True, slots=True)
class NftTable:
    family: str                  # "ip" | "inet" | "bridge"
    name: str
    chains: tuple[NftChain, ...] = ()
    maps: tuple[NftMap, ...] = ()

    def structure(self) -> NftTable:
        """The table without map elements: what must match for elements to be diffed alone."""
        return NftTable(self.family, self.name, self.chains,
                        tuple(NftMap(m.name, m.key_type, m.data_type) for m in self.maps))


@dataclass(frozen=True, slots=True)
class Process:
    """A daemon dvrnet owns inside one namespace (a BIRD per routed fip-/snat- namespace; issue
    13's metadata proxy), keyed by its `role` within the namespace. Generic: nothing here knows
    what the daemon is; `plan/process.py` says how one is named and found, the role's own modules
    (`plan/bird.py`, `kernel/bird.py`) what it runs and how it reloads.

    Desired: `argv` (run inside the namespace), `files` ((path, content) written before it starts
    or reloads; all under its runtime directory) and `digest` (of its configuration, as the role
    computes it). Observed: `argv` as /proc shows it, `digest` as the running process reports it
    ("" when it cannot say), `pid`; `files` are never read back (rebuilt from the plan).
    Same object when `argv` and `digest` are equal; a different `argv` is a restart, a different
    `digest` a reload.
    """
    role: str
    argv: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()
    digest: str = ""
    pid: int | None = None

    def same(self, other: Process) -> bool:
        return self.argv == other.argv and self.digest == other.digest


@dataclass(frozen=True)
class Namespace:
    """Everything dvrnet wants in one network namespace.

    managed=False marks a namespace dvrnet uses but does not own (the node's bridge namespace, the
    root namespace in production): it is never created or deleted, and only the objects listed
    here are changed in it.
    ovs_ports: the Open vSwitch ports of the ovs-vswitchd running in this namespace (the node's
    bridge namespace) that dvrnet plugs; observed: every port the reader found there (foreign
    ones included, so that a name held by a foreign port is a conflict, never a takeover).
    """
    name: str
    links: Mapping[str, Link] = field(default_factory=dict)
    addresses: frozenset[Address] = frozenset()
    routes: frozenset[Route] = frozenset()
    rules: frozenset[Rule] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    nft: Mapping[tuple[str, str], NftTable] = field(default_factory=dict)
    managed: bool = True
    processes: Mapping[str, Process] = field(default_factory=dict)     # role -> Process
    ovs_ports: Mapping[str, OvsPort] = field(default_factory=dict)


@dataclass(frozen=True)
class HostState:
    """`orphans` (observed only): dvrnet's processes whose namespace is gone, or that run in
    another network namespace than the one their runtime directory names (the name was deleted
    and created again): (namespace name, process). The diff stops every owned orphan."""
    host: str
    namespaces: Mapping[str, Namespace] = field(default_factory=dict)
    orphans: tuple[tuple[str, Process], ...] = ()


_PLEN = {str(i): i for i in range(33)}


def parse_v4(p: str) -> tuple[int, int] | None:
    """(address as int, prefix length) of a plain dotted-quad IPv4 prefix "a.b.c.d[/len]" in the
    form `ipaddress` prints (no leading zeros, len 0-32); None for anything else, which then goes
    through `ipaddress` (and its errors). ~10x cheaper than `ip_network` on the 10k-route paths."""
    addr, slash, plen = p.partition("/")
    try:
        packed = inet_aton(addr)
    except (OSError, ValueError):            # ValueError: embedded NUL
        return None
    if inet_ntoa(packed) != addr:            # inet_aton also takes "1.2.3", "0x1.2.3.4", "01.2.3.4"
        return None
    ln = _PLEN.get(plen) if slash else 32
    return None if ln is None else (int.from_bytes(packed, "big"), ln)


def prefix_sort_key(p: str) -> tuple[int, int]:
    if p == "default":
        return (0, 0)
    v = parse_v4(p)
    if v is not None:
        n, ln = v
        return (n & ((0xFFFFFFFF << (32 - ln)) & 0xFFFFFFFF), ln)     # strict=False: host bits off
    net = ip_network(p, strict=False)
    return (int(net.network_address), net.prefixlen)


def ipstr(a) -> str:
    """str() of an IPv4Address (or any address), ~8x cheaper for IPv4 on the 10k-FIP paths."""
    try:
        return inet_ntoa(a.packed) if a.version == 4 else str(a)
    except AttributeError:
        return str(a)


def canon_prefix(net: IPv4Network | str) -> str:
    """'0.0.0.0/0' -> 'default'; '203.0.113.9' -> '203.0.113.9/32'."""
    s = str(net)
    v = parse_v4(s)
    if v is not None:
        n, ln = v
        if n & ~(0xFFFFFFFF << (32 - ln)) & 0xFFFFFFFF == 0:        # else: ipaddress raises below
            if ln == 0:
                return "default"
            return s if "/" in s else s + "/32"
    parsed = ip_network(s, strict=True)
    return "default" if parsed.prefixlen == 0 else str(parsed)
