"""Per-agent settings the planner needs besides the model."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

PRIVATE_ASN_4B = (4200000000, 4294967294)     # RFC 6996 private 4-byte AS numbers


def default_asn(host: str) -> int:
    """A node's AS when none is configured: a private 4-byte AS derived from its host name
    (crc32 into 4200000000-4294967294), the same on every start."""
    lo, hi = PRIVATE_ASN_4B
    return lo + zlib.crc32(host.encode()) % (hi - lo + 1)


@dataclass(frozen=True)
class BgpPeer:
    address: str
    asn: int
    password: str | None = None           # TCP-MD5


# the bounds of routed mode's settings, for every front end (`dvrnet agent` options, the
# neutron-agent's `[dvrnet]` options): (lowest, highest)
ASN_RANGE = (1, 4294967294)
BFD_MS_RANGE = (10, 10000)
BFD_MULTIPLIER_RANGE = (1, 255)
SECONDS_RANGE = (0.0, 3600.0)         # blackhole and lease seconds


def parse_bgp_peer(item: str) -> BgpPeer:
    """`ADDRESS:AS[:PASSWORD]` (an IPv4 address, an AS in ASN_RANGE, a TCP-MD5 password that may
    itself hold colons) -> BgpPeer; ValueError saying what is wrong."""
    import ipaddress
    addr, sep, rest = item.partition(":")
    asn, _, password = rest.partition(":")
    try:
        ipaddress.IPv4Address(addr)
        n = int(asn)
    except ValueError:
        raise ValueError(f"{item!r}: expected ADDRESS:AS[:PASSWORD] with an IPv4 address and an AS number") from None
    if not sep or not ASN_RANGE[0] <= n <= ASN_RANGE[1]:
        raise ValueError(f"{item!r}: AS must be {ASN_RANGE[0]}-{ASN_RANGE[1]}")
    return BgpPeer(addr, n, password or None)


@dataclass(frozen=True)
class BgpConfig:
    """Routed mode (docs/routed-mode.md): eBGP from every routed fip-/snat- namespace to the ToR.
    local_as: this node's AS (None: `default_asn(host)`); peers: the ToR's sessions (empty: one
    peer, the gateway of the subnet holding the fg-/qg- address, AS `peer_as`); BFD at
    `bfd_ms` x `bfd_multiplier`; BGP hold/keepalive in seconds; `graceful_restart` seconds the
    ToR keeps a restarting node's routes; `blackhole_s` how long a departed FIP stays a blackhole
    on its old node (plan/timed.py); `bird`: the BIRD 2 binary.
    `lease_s`: a routed namespace's watchdog (plan/watchdog.py) makes its BIRD announce with the
    AS path `stale_prepend` times longer when the agent has not renewed its lease for that long;
    `watchdog`: the watchdog's command (the agent sets it; empty, or lease_s 0: no watchdog)."""
    local_as: int | None = None
    peers: tuple[BgpPeer, ...] = ()
    peer_as: int = 65000
    bfd_ms: int = 100
    bfd_multiplier: int = 3
    hold: int = 3
    keepalive: int = 1
    graceful_restart: int = 5
    blackhole_s: float = 3.0
    bird: str = "bird"
    lease_s: float = 5.0
    stale_prepend: int = 3
    watchdog: tuple[str, ...] = ()

    def asn(self, host: str) -> int:
        return self.local_as if self.local_as is not None else default_asn(host)


@dataclass(frozen=True)
class MetadataConfig:
    """The metadata service (plan/metadata.py): a proxy for 169.254.169.254:80 in every qrouter-
    with qr- ports here, forwarding to neutron-metadata-agent. socket: that agent's unix socket
    (Neutron's `metadata_proxy_socket`; None: no metadata service); port: where the proxy listens
    inside the namespace (Neutron's `metadata_port`); user/group: what the proxy runs as once it
    has bound its port (None: the agent's own); haproxy: the binary."""
    socket: str | None = None
    port: int = 9697
    user: str | None = None
    group: str | None = None
    haproxy: str = "haproxy"

    @property
    def enabled(self) -> bool:
        return self.socket is not None


@dataclass(frozen=True)
class PlanConfig:
    """netns_prefix: prepended to every namespace dvrnet creates (empty in production; one per node
    in the lab, so nodes on one machine never see each other's namespaces).
    bridge_netns: the namespace holding the node's bridges, where the `dv-` ends of router ports
    are enslaved (dvrnet uses it but does not own it).
    external_bridge: the bridge attached to the external segment (every fg-/qg- port plugs there).
    Tenant networks plug into `names.tenant_bridge(network_id)`.
    port_kind: the device kind of router ports plugged into a bridge: "veth" or "macvlan" (into
    Linux bridges), "ovs" or "ovs-veth" (into the Open vSwitch bridge `integration_bridge`, as
    Neutron's OVS interface driver plugs them, without and with `ovs_use_veth`) — plan/plug.py,
    docs/port-kinds.md.
    integration_bridge: the OVS bridge every router port plugs into with the OVS kinds (`br-int`;
    the L2 agent connects it to the tenant and external networks).
    bridge_mappings: (external network id, bridge) pairs for external networks that live on a
    segment of their own; every other external network plugs into `external_bridge`.
    dvr_mac: this host's own MAC, the source of routed frames leaving it with a `qr-` MAC
    (plan/l2.py); None: derived from the host name.
    uplinks: names (nft wildcards allowed) of bridge ports that lead off the node besides those
    whose kind says so (plan/l2.py `UPLINK_KINDS`), e.g. a physical NIC of a flat network.
    bgp: routed mode's settings (used by external networks tagged `dvrnet:routed` only).
    conn_limits: connection limits on (plan/connlimit.py); conntrack_max: the namespaces' conntrack
    limit (net.netfilter.nf_conntrack_max; the agent reads it at start, this default is the kernel's
    for a host of this size); router_conn_limit / vm_conn_limit: None derives them from
    conntrack_max (7/8 of it per router, a quarter of that per VM), 0 turns that limit off.
    metadata: the metadata proxies (off unless a metadata agent's socket is given).
    """
    netns_prefix: str = ""
    bridge_netns: str = "dvrnet-bridges"
    external_bridge: str = "br-ex"
    port_kind: str = "veth"
    integration_bridge: str = "br-int"
    bridge_mappings: tuple[tuple[str, str], ...] = ()
    dvr_mac: str | None = None
    uplinks: tuple[str, ...] = ()
    bgp: BgpConfig = field(default_factory=BgpConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    conn_limits: bool = True
    conntrack_max: int = 262144
    router_conn_limit: int | None = None
    vm_conn_limit: int | None = None
    stateless_fips: bool = False
    stateless_mss: int = 1360

    # stateless_fips: FIP NAT without conntrack (plan/qrouter.py `fip_nat_table`, docs/dataplane.md);
    # stateless_mss: the TCP MSS SYNs through a stateless FIP are clamped to (1360: a 1400-byte path).

    def __post_init__(self) -> None:
        for name in ("conntrack_max", "router_conn_limit", "vm_conn_limit", "stateless_mss"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"{name}: {v!r} is not a non-negative integer")

    def router_limit(self) -> int:
        """New connections allowed per router namespace (0: no limit)."""
        if not self.conn_limits:
            return 0
        return self.conntrack_max * 7 // 8 if self.router_conn_limit is None else self.router_conn_limit

    def vm_limit(self) -> int:
        """The agent's limit per fixed IP (0: no limit); a port's connection_limit overrides it."""
        if not self.conn_limits:
            return 0
        if self.vm_conn_limit is not None:
            return self.vm_conn_limit
        return (self.router_limit() or self.conntrack_max * 7 // 8) // 4

    def bridge_for(self, network_id: str) -> str:
        """The bridge the fg-/qg- ports of external network NETWORK_ID plug into."""
        for net, bridge in self.bridge_mappings:
            if net == network_id:
                return bridge
        return self.external_bridge


DEFAULT_CONFIG = PlanConfig()
