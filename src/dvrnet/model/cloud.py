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
Indexes are computed once per snapshot (cached properties); a snapshot is never mutated.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from ipaddress import IPv4Address
from typing import Protocol, TypeVar

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
    def subnets_by_network(self) -> KeyLookup[tuple[Subnet, ...]]: ...
    @property
    def ports_by_device(self) -> KeyLookup[tuple[Port, ...]]: ...
    @property
    def ports_by_subnet(self) -> KeyLookup[tuple[Port, ...]]: ...
    @property
    def fips_by_router(self) -> KeyLookup[tuple[FloatingIP, ...]]: ...


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

    # ---- indexes --------------------------------------------------------------------
    @cached_property
    def subnets_by_network(self) -> Mapping[str, tuple[Subnet, ...]]:
        out: dict[str, list[Subnet]] = defaultdict(list)
        for s in self.subnets.values():
            out[s.network_id].append(s)
        return {k: tuple(sorted(v, key=lambda s: (s.cidr, s.id))) for k, v in out.items()}

    @cached_property
    def ports_by_device(self) -> Mapping[str, tuple[Port, ...]]:
        out: dict[str, list[Port]] = defaultdict(list)
        for p in self.ports.values():
            if p.device_id:
                out[p.device_id].append(p)
        return {k: tuple(sorted(v, key=lambda p: p.id)) for k, v in out.items()}

    @cached_property
    def ports_by_subnet(self) -> Mapping[str, tuple[Port, ...]]:
        out: dict[str, list[Port]] = defaultdict(list)
        for p in self.ports.values():
            for f in p.fixed_ips:
                out[f.subnet_id].append(p)
        return {k: tuple(sorted(set(v), key=lambda p: p.id)) for k, v in out.items()}

    @cached_property
    def fips_by_port(self) -> Mapping[str, tuple[FloatingIP, ...]]:
        out: dict[str, list[FloatingIP]] = defaultdict(list)
        for f in self.floatingips.values():
            if f.port_id:
                out[f.port_id].append(f)
        return {k: tuple(sorted(v, key=lambda f: f.floating_ip_address)) for k, v in out.items()}

    @cached_property
    def fips_by_router(self) -> Mapping[str, tuple[FloatingIP, ...]]:
        out: dict[str, list[FloatingIP]] = defaultdict(list)
        for f in self.floatingips.values():
            if f.router_id:
                out[f.router_id].append(f)
        return {k: tuple(sorted(v, key=lambda f: f.floating_ip_address)) for k, v in out.items()}

    # ---- cross-resource validation ----------------------------------------------------
    def validate(self) -> Cloud:
        for s in self.subnets.values():
            net = self.networks.get(s.network_id)
            if net is None:
                raise InvalidInput("network_id", f"subnet {s.id} names network {s.network_id}, which does not exist")
        for net_id, subs in self.subnets_by_network.items():
            for i, a in enumerate(subs):
                for b in subs[i + 1:]:
                    if a.cidr.overlaps(b.cidr):
                        raise InvalidInput("cidr", f"subnet {b.id} ({b.cidr}) overlaps subnet {a.id} ({a.cidr}) on network {net_id}")
        held: dict[tuple[str, IPv4Address], str] = {}
        for p in self.ports.values():
            if p.network_id not in self.networks:
                raise InvalidInput("network_id", f"port {p.id} names network {p.network_id}, which does not exist")
            for f in p.fixed_ips:
                ps = self.subnets.get(f.subnet_id)
                if ps is None or ps.network_id != p.network_id:
                    raise InvalidInput("fixed_ips", f"port {p.id}: subnet {f.subnet_id} is not on network {p.network_id}")
                if f.ip_address not in ps.cidr:
                    raise InvalidInput("fixed_ips", f"port {p.id}: {f.ip_address} is outside {ps.cidr}")
                key = (p.network_id, f.ip_address)
                if key in held:
                    raise InvalidInput("fixed_ips", f"port {p.id}: {f.ip_address} is already held by {held[key]}")
                held[key] = f"port {p.id}"
        for r in self.routers.values():
            gw_ports = self.router_ports(r.id, DeviceOwner.ROUTER_GATEWAY)
            if r.gateway is None:
                if gw_ports:
                    raise InvalidInput("external_gateway_info", f"router {r.id} has no external gateway but gateway port {gw_ports[0].id}")
                continue
            net = self.networks.get(r.gateway.network_id)
            if net is None or not net.external:
                raise InvalidInput("external_gateway_info", f"router {r.id}: network {r.gateway.network_id} is not an external network")
            if len(gw_ports) != 1:
                raise InvalidInput("external_gateway_info", f"router {r.id}: its external gateway needs exactly one gateway port, not {len(gw_ports)}")
            gp = gw_ports[0]
            if gp.network_id != net.id or gp.fixed_ips != r.gateway.external_fixed_ips:
                raise InvalidInput("external_fixed_ips", f"router {r.id}: gateway addresses {[str(f.ip_address) for f in r.gateway.external_fixed_ips]} "
                                                         f"are not those its gateway port {gp.id} holds on network {net.id}")
        for fip in self.floatingips.values():
            net = self.networks.get(fip.floating_network_id)
            if net is None or not net.external:
                raise InvalidInput("floating_network_id", f"floating IP {fip.id}: network {fip.floating_network_id} is not an external network")
            fs = self.subnets.get(fip.subnet_id)
            if fs is None or fs.network_id != net.id or fip.floating_ip_address not in fs.cidr:
                raise InvalidInput("floating_ip_address", f"floating IP {fip.id}: {fip.floating_ip_address} is not in subnet {fip.subnet_id} of network {net.id}")
            key = (net.id, fip.floating_ip_address)
            if key in held:
                raise InvalidInput("floating_ip_address", f"{fip.floating_ip_address} is already held by {held[key]}")
            held[key] = f"floating IP {fip.id}"
            if fip.port_id is not None:
                port = self.ports.get(fip.port_id)
                if port is None:
                    raise InvalidInput("port_id", f"floating IP {fip.id}: port {fip.port_id} does not exist")
                if fip.fixed_ip_address is None or not port.has_ip(fip.fixed_ip_address):
                    raise InvalidInput("fixed_ip_address", f"floating IP {fip.id}: {fip.fixed_ip_address} is not an address of port {fip.port_id}")
        return self
