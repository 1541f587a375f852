"""`Cloud`: one consistent snapshot of every resource, with the checks that span resources.

Invariants (checked by `Cloud.validate`, which raises the first violation found):
- subnets of one network do not overlap; every subnet's network exists;
- a port's fixed IPs lie in subnets of the port's network, in the subnet's CIDR, and no address
  is held twice on one network (by ports or floating IPs);
- a router gateway names an external network and is held by exactly one `network:router_gateway`
  port of the router, on that network, whose fixed IPs are the gateway's addresses (so they lie in
  existing subnets and nothing else may take them); a router without a gateway has no gateway
  port; a floating IP is on an external network, in one of its subnets, and its fixed IP is one of
  its port's addresses.
Indexes (`INDEXES` below, plus the held addresses and the compute subnets per host) are computed
once per snapshot (cached properties) or, for a snapshot made by `changeset.apply`, carried over
from its parent with only the touched buckets rebuilt; a snapshot is never mutated. Every index
bucket is a tuple in a fixed order (the spec's sort key ends with the id), so a snapshot computed
from scratch and one built incrementally have equal indexes. `Cloud` equality compares the
collections as mappings (a `dict` and an `immutables.Map` with the same items are equal).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from ipaddress import IPv4Address
from typing import Any, Protocol, TypeVar

import immutables

from .errors import InvalidInput, NotFound
from .resources import (
    ROUTER_INTERFACE_OWNERS,
    DeviceOwner,
    FloatingIP,
    Host,
    Network,
    Port,
    Router,
    Subnet,
    is_compute,
)


def _by_id(items: Iterable, key: str = "id") -> dict:
    return {getattr(i, key): i for i in items}


V_co = TypeVar("V_co", covariant=True)
T = TypeVar("T")


class KeyLookup(Protocol[V_co]):
    """Read one key: what planners may do with a collection (no iteration, so a view that
    records the keys it was asked for sees every read). Every `Mapping[str, V]` is one."""
    def get(self, key: str, default: T, /) -> V_co | T: ...
    def __getitem__(self, key: str, /) -> V_co: ...
    def __contains__(self, key: object, /) -> bool: ...


class Indexed(Protocol):
    """What the lookups read: the collections and per-snapshot indexes of a `Cloud` (or of any
    view answering the same keys, e.g. the incremental planner's tracked view)."""
    @property
    def networks(self) -> KeyLookup[Network]: ...
    @property
    def subnets(self) -> KeyLookup[Subnet]: ...
    @property
    def routers(self) -> KeyLookup[Router]: ...
    @property
    def ports(self) -> KeyLookup[Port]: ...
    @property
    def floatingips(self) -> KeyLookup[FloatingIP]: ...
    @property
    def hosts(self) -> KeyLookup[Host]: ...
    @property
    def subnets_by_network(self) -> KeyLookup[tuple[Subnet, ...]]: ...
    @property
    def ports_by_device(self) -> KeyLookup[tuple[Port, ...]]: ...
    @property
    def ports_by_subnet(self) -> KeyLookup[tuple[Port, ...]]: ...
    @property
    def fips_by_port(self) -> KeyLookup[tuple[FloatingIP, ...]]: ...
    @property
    def fips_by_router(self) -> KeyLookup[tuple[FloatingIP, ...]]: ...
    @property
    def compute_subnets_by_host(self) -> KeyLookup[Mapping[str, int]]: ...


class Lookups:
    """The lookups planners and placement use, written once for anything `Indexed` (`Cloud`,
    the incremental planner's tracked view); a lookup of one id raises NotFound."""
    def network(self: CloudView, id_: str) -> Network:
        try:
            return self.networks[id_]
        except KeyError:
            raise NotFound("Network", id_) from None

    def subnet(self: CloudView, id_: str) -> Subnet:
        try:
            return self.subnets[id_]
        except KeyError:
            raise NotFound("Subnet", id_) from None

    def router(self: CloudView, id_: str) -> Router:
        try:
            return self.routers[id_]
        except KeyError:
            raise NotFound("Router", id_) from None

    def port(self: CloudView, id_: str) -> Port:
        try:
            return self.ports[id_]
        except KeyError:
            raise NotFound("Port", id_) from None

    def subnets_of(self: CloudView, network_id: str) -> tuple[Subnet, ...]:
        return self.subnets_by_network.get(network_id, ())

    def router_ports(self: CloudView, router_id: str, owner: str | DeviceOwner) -> tuple[Port, ...]:
        owner = str(owner)
        return tuple(p for p in self.ports_by_device.get(router_id, ()) if p.device_owner == owner)

    def router_interfaces(self: CloudView, router_id: str) -> tuple[Port, ...]:
        return tuple(p for p in self.ports_by_device.get(router_id, ())
                     if p.device_owner in ROUTER_INTERFACE_OWNERS)

    def gateway_port(self: CloudView, router_id: str) -> Port | None:
        ps = self.router_ports(router_id, DeviceOwner.ROUTER_GATEWAY)
        return ps[0] if ps else None

    def agent_gateway_port(self: CloudView, host: str, network_id: str) -> Port | None:
        for p in self.ports_by_device.get(host, ()):
            if p.device_owner == DeviceOwner.AGENT_GATEWAY.value and p.network_id == network_id:
                return p
        return None

    def subnet_of_ip(self: CloudView, network_id: str, ip: IPv4Address) -> Subnet | None:
        for s in self.subnets_of(network_id):
            if ip in s.cidr:
                return s
        return None


class CloudView(Indexed, Protocol):
    """A read-only cloud as the planners see it: the indexes plus the lookups."""
    def network(self, id_: str) -> Network: ...
    def subnet(self, id_: str) -> Subnet: ...
    def router(self, id_: str) -> Router: ...
    def port(self, id_: str) -> Port: ...
    def subnets_of(self, network_id: str) -> tuple[Subnet, ...]: ...
    def router_ports(self, router_id: str, owner: str | DeviceOwner) -> tuple[Port, ...]: ...
    def router_interfaces(self, router_id: str) -> tuple[Port, ...]: ...
    def gateway_port(self, router_id: str) -> Port | None: ...
    def agent_gateway_port(self, host: str, network_id: str) -> Port | None: ...
    def subnet_of_ip(self, network_id: str, ip: IPv4Address) -> Subnet | None: ...


@dataclass(frozen=True)
class IndexSpec:
    """One index of a collection: each object goes into the buckets `keys(obj)` names, and a
    bucket is the tuple of its objects ordered by `order` (which ends with the id: no ties)."""
    name: str
    collection: str
    keys: Callable[[Any], Iterable[str]]
    order: Callable[[Any], Any]


def _fip_order(f: FloatingIP) -> tuple:
    return (f.floating_ip_address, f.id)


INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("subnets_by_network", "subnets", lambda s: (s.network_id,), lambda s: (s.cidr, s.id)),
    IndexSpec("ports_by_device", "ports", lambda p: (p.device_id,) if p.device_id else (), lambda p: p.id),
    IndexSpec("ports_by_subnet", "ports", lambda p: dict.fromkeys(f.subnet_id for f in p.fixed_ips),
              lambda p: p.id),
    IndexSpec("fips_by_port", "floatingips", lambda f: (f.port_id,) if f.port_id else (), _fip_order),
    IndexSpec("fips_by_router", "floatingips", lambda f: (f.router_id,) if f.router_id else (), _fip_order),
)


def build_index(spec: IndexSpec, items: Mapping[str, Any]) -> dict[str, tuple]:
    out: dict[str, list] = defaultdict(list)
    for o in items.values():
        for k in spec.keys(o):
            out[k].append(o)
    return {k: tuple(sorted(v, key=spec.order)) for k, v in out.items()}


def holds(kind: str, o: Any) -> Iterable[tuple[str, IPv4Address]]:
    """The (network, address) pairs a port or floating IP holds."""
    if kind == "ports":
        return ((o.network_id, f.ip_address) for f in o.fixed_ips)
    if kind == "floatingips":
        return ((o.floating_network_id, o.floating_ip_address),)
    return ()


def compute_subnets(p: Port) -> Iterable[str]:
    """The subnets a port counts for in `compute_subnets_by_host` (compute ports bound to a host)."""
    if p.host and is_compute(p.device_owner):
        return (f.subnet_id for f in p.fixed_ips)
    return ()


def _same_mapping(a: Mapping, b: Mapping) -> bool:
    if a is b:
        return True
    if len(a) != len(b):
        return False
    missing = object()
    get = b.get
    return all((w := get(k, missing)) is v or w == v for k, v in a.items())


COLLECTIONS = ("networks", "subnets", "routers", "ports", "floatingips", "hosts")


@dataclass(frozen=True, eq=False)
class Cloud(Lookups):
    networks: Mapping[str, Network] = field(default_factory=dict)
    subnets: Mapping[str, Subnet] = field(default_factory=dict)
    routers: Mapping[str, Router] = field(default_factory=dict)
    ports: Mapping[str, Port] = field(default_factory=dict)
    floatingips: Mapping[str, FloatingIP] = field(default_factory=dict)
    hosts: Mapping[str, Host] = field(default_factory=dict)
    revision: int = 0

    @classmethod
    def of(cls, networks=(), subnets=(), routers=(), ports=(), floatingips=(), hosts=(), revision=0) -> Cloud:
        return cls(_by_id(networks), _by_id(subnets), _by_id(routers), _by_id(ports),
                   _by_id(floatingips), _by_id(hosts, "name"), revision)

    def with_(self, **kw) -> Cloud:
        return replace(self, **kw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cloud):
            return NotImplemented
        return self.revision == other.revision and all(
            _same_mapping(getattr(self, c), getattr(other, c)) for c in COLLECTIONS)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking mappings: a Cloud is not hashable

    # ---- indexes --------------------------------------------------------------------
    def _index(self, name: str) -> Mapping[str, tuple]:
        spec = next(s for s in INDEXES if s.name == name)
        return build_index(spec, getattr(self, spec.collection))

    @cached_property
    def subnets_by_network(self) -> Mapping[str, tuple[Subnet, ...]]:
        return self._index("subnets_by_network")

    @cached_property
    def ports_by_device(self) -> Mapping[str, tuple[Port, ...]]:
        return self._index("ports_by_device")

    @cached_property
    def ports_by_subnet(self) -> Mapping[str, tuple[Port, ...]]:
        return self._index("ports_by_subnet")

    @cached_property
    def fips_by_port(self) -> Mapping[str, tuple[FloatingIP, ...]]:
        return self._index("fips_by_port")

    @cached_property
    def fips_by_router(self) -> Mapping[str, tuple[FloatingIP, ...]]:
        return self._index("fips_by_router")

    @cached_property
    def compute_subnets_by_host(self) -> Mapping[str, Mapping[str, int]]:
        """host -> {subnet id: fixed IPs of compute ports bound to the host in that subnet}."""
        out: dict[str, dict[str, int]] = {}
        for p in self.ports.values():
            for sid in compute_subnets(p):
                c = out.setdefault(p.host, {})
                c[sid] = c.get(sid, 0) + 1
        return out

    @cached_property
    def held(self) -> Mapping[tuple[str, IPv4Address], tuple[str, str]]:
        """(network, address) -> the (collection, id) holding it (the first one, if held twice); an
        `immutables.Map`, so the first change applied to this cloud derives its own in O(change)."""
        out: dict[tuple[str, IPv4Address], tuple[str, str]] = {}
        for kind in ("ports", "floatingips"):
            for k, o in getattr(self, kind).items():
                for h in holds(kind, o):
                    out.setdefault(h, (kind, k))
        return immutables.Map(out)

    # ---- cross-resource validation ----------------------------------------------------
    def validate(self) -> Cloud:
        for s in self.subnets.values():
            check_subnet_network(self, s)
        for net_id, subs in self.subnets_by_network.items():
            for i, a in enumerate(subs):
                for b in subs[i + 1:]:
                    if a.cidr.overlaps(b.cidr):
                        raise InvalidInput("cidr", f"subnet {b.id} ({b.cidr}) overlaps subnet {a.id} ({a.cidr}) on network {net_id}")
        held: dict[tuple[str, IPv4Address], str] = {}
        for p in self.ports.values():
            check_port(self, p)
            for f in p.fixed_ips:
                key = (p.network_id, f.ip_address)
                if key in held:
                    raise InvalidInput("fixed_ips", f"port {p.id}: {f.ip_address} is already held by {held[key]}")
                held[key] = f"port {p.id}"
        for r in self.routers.values():
            check_router(self, r)
        for fip in self.floatingips.values():
            check_fip(self, fip)
            key = (fip.floating_network_id, fip.floating_ip_address)
            if key in held:
                raise InvalidInput("floating_ip_address", f"{fip.floating_ip_address} is already held by {held[key]}")
            held[key] = f"floating IP {fip.id}"
        return self


# ---- the checks of one resource against the rest (used by validate and changeset.apply) ----
def check_subnet_network(cloud: Cloud, s: Subnet) -> None:
    if s.network_id not in cloud.networks:
        raise InvalidInput("network_id", f"subnet {s.id} names network {s.network_id}, which does not exist")


def check_subnet_overlaps(cloud: Cloud, s: Subnet) -> None:
    for o in cloud.subnets_by_network.get(s.network_id, ()):
        if o.id != s.id and o.cidr.overlaps(s.cidr):
            raise InvalidInput("cidr", f"subnet {s.id} ({s.cidr}) overlaps subnet {o.id} ({o.cidr}) on network {s.network_id}")


def check_port(cloud: Cloud, p: Port) -> None:
    if p.network_id not in cloud.networks:
        raise InvalidInput("network_id", f"port {p.id} names network {p.network_id}, which does not exist")
    for f in p.fixed_ips:
        ps = cloud.subnets.get(f.subnet_id)
        if ps is None or ps.network_id != p.network_id:
            raise InvalidInput("fixed_ips", f"port {p.id}: subnet {f.subnet_id} is not on network {p.network_id}")
        if f.ip_address not in ps.cidr:
            raise InvalidInput("fixed_ips", f"port {p.id}: {f.ip_address} is outside {ps.cidr}")


def check_router(cloud: Cloud, r: Router) -> None:
    gw_ports = cloud.router_ports(r.id, DeviceOwner.ROUTER_GATEWAY)
    if r.gateway is None:
        if gw_ports:
            raise InvalidInput("external_gateway_info", f"router {r.id} has no external gateway but gateway port {gw_ports[0].id}")
        return
    net = cloud.networks.get(r.gateway.network_id)
    if net is None or not net.external:
        raise InvalidInput("external_gateway_info", f"router {r.id}: network {r.gateway.network_id} is not an external network")
    if len(gw_ports) != 1:
        raise InvalidInput("external_gateway_info", f"router {r.id}: its external gateway needs exactly one gateway port, not {len(gw_ports)}")
    gp = gw_ports[0]
    if gp.network_id != net.id or gp.fixed_ips != r.gateway.external_fixed_ips:
        raise InvalidInput("external_fixed_ips", f"router {r.id}: gateway addresses {[str(f.ip_address) for f in r.gateway.external_fixed_ips]} "
                                                 f"are not those its gateway port {gp.id} holds on network {net.id}")


def check_fip(cloud: Cloud, fip: FloatingIP) -> None:
    net = cloud.networks.get(fip.floating_network_id)
    if net is None or not net.external:
        raise InvalidInput("floating_network_id", f"floating IP {fip.id}: network {fip.floating_network_id} is not an external network")
    fs = cloud.subnets.get(fip.subnet_id)
    if fs is None or fs.network_id != net.id or fip.floating_ip_address not in fs.cidr:
        raise InvalidInput("floating_ip_address", f"floating IP {fip.id}: {fip.floating_ip_address} is not in subnet {fip.subnet_id} of network {net.id}")
    if fip.port_id is not None:
        port = cloud.ports.get(fip.port_id)
        if port is None:
            raise InvalidInput("port_id", f"floating IP {fip.id}: port {fip.port_id} does not exist")
        if fip.fixed_ip_address is None or not port.has_ip(fip.fixed_ip_address):
            raise InvalidInput("fixed_ip_address", f"floating IP {fip.id}: {fip.fixed_ip_address} is not an address of port {fip.port_id}")
