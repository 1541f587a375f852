"""The resources, as frozen values with the checks that concern one resource alone.

Field names follow Neutron's API (`router:external` is `Network.external`, `binding:host_id` is
`Port.host`). Addresses are `ipaddress` objects; IPv4 only (as upstream DVR's fip namespace).
Checks that need other resources (overlapping subnets, a FIP on a non-external network, ...) are
in `cloud.py`. Every check raises `InvalidInput` naming the field.
"""
from __future__ import annotations

import enum
import ipaddress
import itertools
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from .errors import InvalidInput


class DeviceOwner(str, enum.Enum):
    ROUTER_GATEWAY = "network:router_gateway"
    ROUTER_INTERFACE_DISTRIBUTED = "network:router_interface_distributed"
    ROUTER_INTERFACE = "network:router_interface"
    ROUTER_SNAT = "network:router_centralized_snat"
    AGENT_GATEWAY = "network:floatingip_agent_gateway"
    FLOATINGIP = "network:floatingip"
    DHCP = "network:dhcp"

    def __str__(self) -> str:
        return self.value


# Owners a subnet's service_types may name; any `compute:<zone>` is also accepted.
SERVICE_TYPES = frozenset(o.value for o in DeviceOwner)
ROUTER_INTERFACE_OWNERS = frozenset({
    DeviceOwner.ROUTER_INTERFACE.value, DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value,
})


def is_compute(owner: str) -> bool:
    return owner.startswith("compute:")


def valid_service_type(st: str) -> bool:
    return st in SERVICE_TYPES or (st.startswith("compute:") and len(st) > len("compute:"))


class AgentMode(str, enum.Enum):
    DVR = "dvr"
    DVR_SNAT = "dvr_snat"

    def __str__(self) -> str:
        return self.value


def _mac_ok(mac: str) -> bool:
    parts = mac.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts)


# The tag that puts an external network in routed mode (S6; docs/routed-mode.md). Set by the
# operator with `openstack network set --tag dvrnet:routed EXT`; untagged networks are `l2`.
ROUTED_TAG = "dvrnet:routed"
# In a routed network, a subnet typed with one of these is *private* (on the segment: the fg- and
# qg- addresses, its gateway the ToR); every other subnet is *public* (FIPs, SNAT addresses, on
# no segment: announced as /32s by BGP).
ROUTED_PRIVATE_SERVICE_TYPES = frozenset({"network:floatingip_agent_gateway", "network:router_gateway"})
MAX_TAG_LEN = 60                    # Neutron's limit for one tag


def check_tag(tag: object) -> str:
    """A tag as Neutron accepts it: a non-empty string of at most 60 characters."""
    if not isinstance(tag, str):
        raise InvalidInput("tags", f"{tag!r} is not a string")
    if not tag:
        raise InvalidInput("tags", "a tag must not be empty")
    if len(tag) > MAX_TAG_LEN:
        raise InvalidInput("tags", f"'{tag[:20]}…' exceeds maximum length of {MAX_TAG_LEN}")
    return tag


@dataclass(frozen=True, slots=True)
class Network:
    id: str
    name: str = ""
    external: bool = False          # router:external
    mtu: int = 1500
    project_id: str = ""
    shared: bool = False
    tags: tuple[str, ...] = ()      # Neutron's resource tags, kept sorted and unique

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidInput("id", "must not be empty")
        if not 68 <= self.mtu <= 65535:
            raise InvalidInput("mtu", f"{self.mtu} is not between 68 and 65535")
        tags = tuple(sorted({check_tag(t) for t in self.tags}))
        if tags != self.tags:
            object.__setattr__(self, "tags", tags)

    @property
    def routed(self) -> bool:
        """External traffic of this network is routed (BGP, S6) rather than bridged (L2, S7)."""
        return ROUTED_TAG in self.tags


@dataclass(frozen=True, slots=True, order=True)
class AllocationPool:
    start: IPv4Address
    end: IPv4Address

    def __contains__(self, ip: IPv4Address) -> bool:
        return self.start <= ip <= self.end

    def size(self) -> int:
        return int(self.end) - int(self.start) + 1


class _DefaultPools(tuple):
    """The `allocation_pools` default: Neutron's pools (the whole CIDR but the gateway). An
    explicitly empty tuple means no pools at all (Neutron's `allocation_pools: []`)."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT_POOLS"


DEFAULT_POOLS: tuple[AllocationPool, ...] = _DefaultPools()


@dataclass(frozen=True, slots=True)
class Subnet:
    id: str
    network_id: str
    cidr: IPv4Network
    gateway_ip: IPv4Address | None = None
    allocation_pools: tuple[AllocationPool, ...] = DEFAULT_POOLS
    service_types: tuple[str, ...] = ()
    name: str = ""
    project_id: str = ""
    enable_dhcp: bool = False
    dns_nameservers: tuple[str, ...] = ()

    @property
    def routed_private(self) -> bool:
        """In a routed network: this subnet is private (ROUTED_PRIVATE_SERVICE_TYPES), not public."""
        return bool(ROUTED_PRIVATE_SERVICE_TYPES.intersection(self.service_types))

    def __post_init__(self) -> None:
        if not isinstance(self.cidr, IPv4Network):
            raise InvalidInput("cidr", f"{self.cidr!r} is not an IPv4 network")
        if self.cidr.prefixlen > 30:
            raise InvalidInput("cidr", f"{self.cidr} is too small: a subnet needs at least /30")
        if self.gateway_ip is not None:
            if self.gateway_ip not in self.cidr:
                raise InvalidInput("gateway_ip", f"{self.gateway_ip} is outside the subnet {self.cidr}")
            if self.gateway_ip in (self.cidr.network_address, self.cidr.broadcast_address):
                raise InvalidInput("gateway_ip", f"{self.gateway_ip} is the network or broadcast address of {self.cidr}")
        pools = sorted(self.allocation_pools)
        for p in pools:
            if p.start > p.end:
                raise InvalidInput("allocation_pools", f"pool {p.start}-{p.end} ends before it starts")
            if p.start not in self.cidr or p.end not in self.cidr:
                raise InvalidInput("allocation_pools", f"pool {p.start}-{p.end} is outside the subnet {self.cidr}")
            if p.start == self.cidr.network_address or p.end == self.cidr.broadcast_address:
                raise InvalidInput("allocation_pools", f"pool {p.start}-{p.end} includes the network or broadcast address")
            if self.gateway_ip is not None and self.gateway_ip in p:
                raise InvalidInput("allocation_pools", f"pool {p.start}-{p.end} contains the gateway {self.gateway_ip}")
        for a, b in itertools.pairwise(pools):
            if b.start <= a.end:
                raise InvalidInput("allocation_pools", f"pools {a.start}-{a.end} and {b.start}-{b.end} overlap")
        for st in self.service_types:
            if not valid_service_type(st):
                raise InvalidInput("service_types", f"unknown service type {st!r}")
        if len(set(self.service_types)) != len(self.service_types):
            raise InvalidInput("service_types", "lists a service type twice")
        if self.allocation_pools is DEFAULT_POOLS:
            object.__setattr__(self, "allocation_pools", default_pools(self.cidr, self.gateway_ip))
        else:
            object.__setattr__(self, "allocation_pools", tuple(pools))

    def in_pools(self, ip: IPv4Address) -> bool:
        return any(ip in p for p in self.allocation_pools)


def default_pools(cidr: IPv4Network, gateway: IPv4Address | None) -> tuple[AllocationPool, ...]:
    """Neutron's default: every host address of the CIDR except the gateway."""
    first = cidr.network_address + 1
    last = cidr.broadcast_address - 1
    if gateway is None or not first <= gateway <= last:
        return (AllocationPool(first, last),)
    pools = []
    if gateway > first:
        pools.append(AllocationPool(first, gateway - 1))
    if gateway < last:
        pools.append(AllocationPool(gateway + 1, last))
    return tuple(pools)


@dataclass(frozen=True, slots=True, order=True)
class FixedIP:
    subnet_id: str
    ip_address: IPv4Address


@dataclass(frozen=True, slots=True)
class Port:
    id: str
    network_id: str
    device_owner: str = ""
    device_id: str = ""
    host: str = ""                  # binding:host_id
    fixed_ips: tuple[FixedIP, ...] = ()
    mac_address: str = ""
    name: str = ""
    project_id: str = ""
    admin_state_up: bool = True
    # New connections its fixed IPs may hold through their router (plan/connlimit.py): None the
    # agent's default, 0 no per-VM limit. API attribute `connection_limit` (an extension of ours).
    connection_limit: int | None = None

    def __post_init__(self) -> None:
        if self.connection_limit is not None and (isinstance(self.connection_limit, bool)
                                                  or not isinstance(self.connection_limit, int)
                                                  or not 0 <= self.connection_limit <= 2**31 - 1):
            raise InvalidInput("connection_limit", f"{self.connection_limit!r} is not null or an integer "
                               "from 0 to 2147483647")
        if self.mac_address and not _mac_ok(self.mac_address):
            raise InvalidInput("mac_address", f"{self.mac_address!r} is not a lower-case MAC address")
        ips = [f.ip_address for f in self.fixed_ips]
        if len(set(ips)) != len(ips):
            raise InvalidInput("fixed_ips", "lists an address twice")

    def ip_on(self, subnet_id: str) -> IPv4Address | None:
        for f in self.fixed_ips:
            if f.subnet_id == subnet_id:
                return f.ip_address
        return None

    def has_ip(self, ip: IPv4Address) -> bool:
        return any(f.ip_address == ip for f in self.fixed_ips)


@dataclass(frozen=True, slots=True)
class ExternalGateway:
    network_id: str
    external_fixed_ips: tuple[FixedIP, ...] = ()
    enable_snat: bool = True


@dataclass(frozen=True, slots=True)
class Router:
    id: str
    name: str = ""
    distributed: bool = True
    gateway: ExternalGateway | None = None      # external_gateway_info
    project_id: str = ""
    admin_state_up: bool = True


@dataclass(frozen=True, slots=True)
class FloatingIP:
    id: str
    floating_network_id: str
    floating_ip_address: IPv4Address
    subnet_id: str
    port_id: str | None = None
    fixed_ip_address: IPv4Address | None = None
    router_id: str | None = None
    project_id: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if (self.port_id is None) != (self.fixed_ip_address is None):
            raise InvalidInput("fixed_ip_address", "is set exactly when port_id is set")


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    mode: AgentMode = AgentMode.DVR

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInput("host", "must not be empty")
        object.__setattr__(self, "mode", AgentMode(self.mode))


def parse_ip(field_name: str, value: object) -> IPv4Address:
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        raise InvalidInput(field_name, f"{value!r} is not a valid IP address") from None
    if not isinstance(ip, IPv4Address):
        raise InvalidInput(field_name, f"{value} is not an IPv4 address (dvrnet is IPv4-only)")
    return ip


def parse_cidr(field_name: str, value: object) -> IPv4Network:
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise InvalidInput(field_name, f"{value!r} is not a valid CIDR") from None
    if not isinstance(net, IPv4Network):
        raise InvalidInput(field_name, f"{value} is not an IPv4 CIDR (dvrnet is IPv4-only)")
    if str(net) != str(value) and "/" in str(value):
        raise InvalidInput(field_name, f"{value} has host bits set; did you mean {net}?")
    return net
