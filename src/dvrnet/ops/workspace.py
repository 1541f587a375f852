"""Neutron's resource operations on an in-memory, mutable copy of the model.

Invariants:
- every public method that changes something is one transaction: it checks, applies, then settles
  the side effects; if anything raises, nothing has changed (nothing half-applied);
- each successful change adds one to the revision; `snapshot()` is then a `Cloud` that passes
  `Cloud.validate` (with `check=True` this is verified after every change, and a failure rolls back);
- O(change) snapshots: the first `snapshot()` builds and validates the whole cloud; every later one
  is `changeset.apply` of what the transactions since then put or dropped (the undo log's keys,
  `Store.committed`) onto the previous snapshot, validating the touched part only. `take_changes()`
  is the ChangeSet of everything changed since its previous call (or since the Workspace was made
  from its cloud): what a server writes to its database and change log. `Workspace.verify_incremental`
  (tests) also builds every snapshot from scratch and checks that both agree;
- the DVR side effects (router gateway ports, SNAT scheduling, centralized-SNAT ports, agent-gateway
  ports, settled after every change) are Neutron's DVR server's, in `ops/dvr.py`;
- deleting a port disassociates its floating IPs; a subnet goes only when `check_subnet_delete`
  allows it, and agent-gateway/DHCP ports then lose their addresses in it.
- the port API never sets an owner the server manages (`MANAGED_OWNERS`: router gateway, router
  interfaces, centralized SNAT, agent gateway, floating IP): those ports are made by the router,
  floating IP and agent operations only. A port the server made keeps its device_owner, device_id
  and host while its router (or host) exists; router interface and SNAT ports keep their
  addresses (Neutron's IPAddressChangeNotAllowed); a gateway port's addresses may change and the
  router's gateway follows.
- addresses come from `dvrnet.ipam` (service types, pools, gateway; lowest free address first).
Errors: `dvrnet.model.errors` and `dvrnet.ops.errors` types, with Neutron's names and status codes;
messages name the object or field and the reason. Ids are given or made by `id_factory(kind, name)`
(default: uuid4; server-made ports pass `owner:device_id:subnet-or-network` as the
name, floating IPs their description or address). MAC addresses default to `fa:16:3e:xx:xx:xx` derived from the port id.
"""
from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

from ..ipam import IpRequest, Released, check_subnet_delete
from ..ipam.allocator import IpAddressGenerationFailureNoMatchingSubnet  # noqa: F401  (re-export)
from ..model import (
    AgentMode,
    AllocationPool,
    Cloud,
    DeviceOwner,
    ExternalGateway,
    FixedIP,
    FloatingIP,
    Host,
    InvalidInput,
    Network,
    NotFound,
    Port,
    Router,
    Subnet,
)
from ..model.changeset import ChangeSet, Resource, apply
from ..model.errors import BadRequest as BadRequestError
from ..model.resources import DEFAULT_POOLS, ROUTER_INTERFACE_OWNERS, parse_cidr, parse_ip
from .dvr import Dvr
from .errors import (
    ExternalGatewayForFloatingIPNotFound,
    ExternalNetworkInUse,
    FixedIpInUseByFloatingIP,
    FloatingIPPortAlreadyAssociated,
    GatewayConflictWithAllocationPools,
    GatewayIpInUse,
    IPAddressChangeNotAllowed,
    L3PortInUse,
    NetworkInUse,
    PortInUse,
    ResourceExists,
    RouterInterfaceInUseByFloatingIP,
    RouterInterfaceNotFound,
    RouterInterfaceNotFoundForSubnet,
    RouterInUse,
    SubnetAlreadyAttached,
)
from .store import Store


class _Unset:
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()   # "field not given" (distinct from None, which may mean "clear")

AGW = DeviceOwner.AGENT_GATEWAY.value
GW = DeviceOwner.ROUTER_GATEWAY.value
SNAT = DeviceOwner.ROUTER_SNAT.value
DVR_IF = DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value
LEGACY_IF = DeviceOwner.ROUTER_INTERFACE.value
ROUTER_OWNED = ROUTER_INTERFACE_OWNERS | {GW, SNAT}
# Owners of the ports the server makes and removes itself; the port API never sets them.
MANAGED_OWNERS = {GW: "set the router's external gateway",
                  SNAT: "they come with a distributed router's interfaces and gateway",
                  DVR_IF: "use add_router_interface", LEGACY_IF: "use add_router_interface",
                  AGW: "the server keeps one per host and external network that needs it",
                  DeviceOwner.FLOATINGIP.value: "create a floating IP"}
# Router ports whose addresses only the router API changes (Neutron's IP_UPDATE_NOT_ALLOWED_LIST).
FIXED_ADDRESS_OWNERS = ROUTER_INTERFACE_OWNERS | {SNAT}


def _mutating(fn):
    """Run `fn` as one transaction, settle side effects, count the revision."""
    @functools.wraps(fn)
    def run(self: Workspace, *args, **kwargs):
        with self._st.transaction():
            result = fn(self, *args, **kwargs)
            self._dvr.settle_agent_gateways()
            if self._check:
                self._build_cloud().validate()
        keys = self._st.committed
        self._snap_keys |= keys
        self._change_keys |= keys
        self._revision += 1
        self._snap = None
        return self._fresh(result)
    return run


class Workspace:
    verify_incremental = False      # tests: check every incremental snapshot against a full build

    def __init__(self, cloud: Cloud | None = None, id_factory: Callable[[str, str], str] | None = None,
                 *, check: bool = False):
        self._st = Store()
        self._id_factory = id_factory or (lambda kind, name: str(uuid.uuid4()))
        self._check = check
        self._revision = 0
        self._snap: Cloud | None = None
        self._base: Cloud | None = None          # the last validated snapshot
        self._snap_keys: set[tuple[str, str]] = set()     # (kind, key) changed since _base
        self._change_keys: set[tuple[str, str]] = set()   # ... since the last take_changes()
        if cloud is not None:
            for kind, items in (("host", cloud.hosts), ("network", cloud.networks),
                                ("subnet", cloud.subnets), ("router", cloud.routers),
                                ("port", cloud.ports), ("floatingip", cloud.floatingips)):
                for obj in items.values():
                    self._st.put(kind, obj)
            self._revision = cloud.revision
        self._st.placement_dirty = True   # settle at the first change
        self._dvr = Dvr(self._st, self._new_port)   # the DVR side effects (ops/dvr.py)

    # ---- reading ---------------------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._revision

    def snapshot(self) -> Cloud:
        """The current state as a validated, frozen `Cloud` (cached until the next change); after
        the first, made from the previous one in O(change)."""
        if self._snap is None:
            if self._base is None:
                snap = self._build_cloud().validate()
            else:
                cs = self._changeset(self._snap_keys)
                snap, _ = apply(self._base, ChangeSet(cs.upserts, cs.deletes, self._revision))
                if self.verify_incremental:
                    full = self._build_cloud().validate()
                    if snap != full:
                        raise AssertionError("incremental snapshot differs from the full build")
            self._snap = self._base = snap
            self._snap_keys = set()
        return self._snap

    def take_changes(self) -> ChangeSet:
        """What changed since the previous call (or since this Workspace was made): the current
        value of every resource put, and a delete for every key dropped (a key put and dropped
        again, or put with its old value, appears too: applying it changes nothing)."""
        cs = self._changeset(self._change_keys)
        self._change_keys = set()
        return ChangeSet(cs.upserts, cs.deletes, self._revision)

    def _changeset(self, keys: Iterable[tuple[str, str]]) -> ChangeSet:
        upserts: list[Resource] = []
        deletes: list[tuple[str, str]] = []
        for kind, key in sorted(keys):
            obj = self._st.table(kind).get(key)
            if obj is None:
                deletes.append((kind + "s", key))
            else:
                upserts.append(obj)
        return ChangeSet(tuple(upserts), tuple(deletes))

    def _build_cloud(self) -> Cloud:
        st = self._st
        return Cloud(dict(st.networks), dict(st.subnets), dict(st.routers), dict(st.ports),
                     dict(st.floatingips), dict(st.hosts), self._revision)

    def _fresh(self, result):
        st = self._st
        for cls, table in ((Port, st.ports), (FloatingIP, st.floatingips), (Router, st.routers),
                           (Subnet, st.subnets), (Network, st.networks)):
            if isinstance(result, cls):
                return table.get(result.id, result)
        if isinstance(result, Host):
            return st.hosts.get(result.name, result)
        return result

    def _get(self, kind: str, table: Mapping, ident: str):
        try:
            return table[ident]
        except KeyError:
            raise NotFound(kind, ident) from None

    def _network(self, i: str) -> Network:
        return self._get("Network", self._st.networks, i)

    def _subnet(self, i: str) -> Subnet:
        return self._get("Subnet", self._st.subnets, i)

    def _router(self, i: str) -> Router:
        return self._get("Router", self._st.routers, i)

    def _port(self, i: str) -> Port:
        return self._get("Port", self._st.ports, i)

    def _fip(self, i: str) -> FloatingIP:
        return self._get("FloatingIP", self._st.floatingips, i)

    def _new_id(self, kind: str, name: str, given: str | None) -> str:
        """The given id (which must be new), else `id_factory(kind, name)`; a made id that is
        taken is made again from `name#1`, `name#2`, ... (deterministic factories)."""
        table = self._st.table(kind)
        if given is not None:
            if not given:
                raise InvalidInput("id", "must not be empty")
            if given in table:
                raise ResourceExists(f"A {kind} with id {given} already exists.")
            return given
        ident, n = self._id_factory(kind, name), 0
        while not ident or ident in table:
            n += 1
            ident = self._id_factory(kind, f"{name}#{n}")
        return ident

    def _mac_for(self, port_id: str) -> str:
        n = 0
        while True:
            d = hashlib.sha256(f"{port_id}/{n}".encode()).digest()
            mac = f"fa:16:3e:{d[0]:02x}:{d[1]:02x}:{d[2]:02x}"
            if mac not in self._st.macs:
                return mac
            n += 1

    def _new_port(self, network_id: str, owner: str, device_id: str, host: str,
                  fixed: tuple[FixedIP, ...], hint: str, project_id: str = "") -> Port:
        """A port the server makes (gateway, interface, SNAT, agent gateway): named "" as in
        Neutron; `hint` (owner:device:subnet-or-network) is what `id_factory` gets as the name."""
        pid = self._new_id("port", f"{owner}:{device_id}:{hint}", None)
        port = Port(pid, network_id, owner, device_id, host, fixed, self._mac_for(pid), "", project_id)
        self._st.put("port", port)
        return port

    # ---- hosts -----------------------------------------------------------------------------
    @_mutating
    def register_host(self, name: str, mode: str | AgentMode = "dvr") -> Host:
        try:
            host = Host(name, AgentMode(mode))
        except ValueError:
            raise InvalidInput("mode", f"{mode!r} is not one of dvr, dvr_snat") from None
        self._st.put("host", host)
        if host.mode is AgentMode.DVR_SNAT:
            self._dvr.schedule_unhosted()
        return host

    # ---- networks --------------------------------------------------------------------------
    @_mutating
    def create_network(self, name: str = "", external: bool = False, mtu: int = 1500,
                       project_id: str = "", shared: bool = False, id: str | None = None,
                       tags: Iterable[str] = ()) -> Network:
        net = Network(self._new_id("network", name, id), name, bool(external), int(mtu), project_id, bool(shared),
                      tuple(tags))
        self._st.put("network", net)
        return net

    @_mutating
    def update_network(self, id: str, name: Any = UNSET, external: Any = UNSET, mtu: Any = UNSET,
                       tags: Any = UNSET) -> Network:
        """TAGS: the network's whole tag list (Neutron's PUT .../tags replaces it)."""
        net = self._network(id)
        st = self._st
        changes: dict[str, Any] = {}
        if tags is not UNSET:
            changes["tags"] = tuple(tags)
        if name is not UNSET:
            changes["name"] = name
        if mtu is not UNSET:
            changes["mtu"] = int(mtu)
        if external is not UNSET and bool(external) != net.external:
            users = [st.ports[i] for i in st.ports_by_network.get(id, ())]
            if net.external:
                gws = sorted(p.id for p in users if p.device_owner == GW)
                fips = sorted(f.id for f in st.floatingips.values() if f.floating_network_id == id)
                if gws or fips:
                    raise ExternalNetworkInUse(
                        f"Network {id} cannot be made non-external: router gateway ports {gws} and "
                        f"floating IPs {fips} use it.")
            else:
                ifs = sorted(p.id for p in users if p.device_owner in ROUTER_INTERFACE_OWNERS)
                if ifs:
                    raise BadRequestError(f"Network {id} cannot be made external: router interface ports {ifs} are on it.")
            changes["external"] = bool(external)
        net = replace(net, **changes)
        st.put("network", net)
        return net

    @_mutating
    def delete_network(self, id: str) -> None:
        self._network(id)
        st = self._st
        ports = sorted((st.ports[i] for i in st.ports_by_network.get(id, ())), key=lambda p: p.id)
        blocking = [f"{p.id} ({p.device_owner or 'no owner'})" for p in ports
                    if p.device_owner not in (AGW, DeviceOwner.DHCP.value)]
        blocking += [f"floating IP {f.id} ({f.floating_ip_address})" for f in
                     sorted(st.floatingips.values(), key=lambda f: f.id) if f.floating_network_id == id]
        if blocking:
            raise NetworkInUse(f"Unable to complete operation on network {id}: there are one or more "
                               f"ports still in use on it: {', '.join(blocking)}.")
        for p in ports:
            st.drop("port", p.id)
        for sid in sorted(st.subnets_by_network.get(id, ())):
            st.drop("subnet", sid)
        st.drop("network", id)

    # ---- subnets ---------------------------------------------------------------------------
    @staticmethod
    def _pools(pools: Iterable) -> tuple[AllocationPool, ...]:
        out = []
        for p in pools:
            if isinstance(p, AllocationPool):
                out.append(p)
                continue
            try:
                start, end = (p["start"], p["end"]) if isinstance(p, Mapping) else p
            except (KeyError, TypeError, ValueError):
                raise InvalidInput("allocation_pools", f"{p!r} is not a pool (start, end)") from None
            out.append(AllocationPool(parse_ip("allocation_pools", start), parse_ip("allocation_pools", end)))
        return tuple(out)

    @staticmethod
    def _gateway_vs_pools(gateway: IPv4Address | None, pools: Iterable[AllocationPool]) -> None:
        for p in pools:
            if gateway is not None and gateway in p:
                raise GatewayConflictWithAllocationPools(
                    f"Gateway IP {gateway} conflicts with allocation pool {p.start}-{p.end}.")

    @_mutating
    def create_subnet(self, network_id: str, cidr: Any, gateway_ip: Any = UNSET,
                      allocation_pools: Iterable | None = None, service_types: Iterable[str] = (),
                      name: str = "", project_id: str = "", enable_dhcp: bool = False,
                      dns_nameservers: Iterable[str] = (), id: str | None = None) -> Subnet:
        net = self._network(network_id)
        cidr = parse_cidr("cidr", cidr)
        if gateway_ip is UNSET:
            gateway = cidr.network_address + 1
        elif gateway_ip is None:
            gateway = None
        else:
            gateway = parse_ip("gateway_ip", gateway_ip)
        pools = DEFAULT_POOLS if allocation_pools is None else self._pools(allocation_pools)
        self._gateway_vs_pools(gateway, pools)
        for other in [self._st.subnets[i] for i in sorted(self._st.subnets_by_network.get(net.id, ()))]:
            if cidr.overlaps(other.cidr):
                raise InvalidInput("cidr", f"requested subnet {cidr} overlaps subnet {other.id} "
                                           f"({other.cidr}) of network {net.id}")
        sid = self._new_id("subnet", name, id)
        subnet = Subnet(sid, net.id, cidr, gateway, pools, tuple(service_types), name, project_id,
                        bool(enable_dhcp), tuple(str(d) for d in dns_nameservers))
        self._st.put("subnet", subnet)
        return subnet

    def _holders(self, network_id: str, ip: IPv4Address) -> list[str]:
        st = self._st
        out = [f"port {p.id} ({p.device_owner or 'no owner'})" for p in
               (st.ports[i] for i in sorted(st.ports_by_network.get(network_id, ()))) if p.has_ip(ip)]
        out += [f"floating IP {f.id}" for f in st.floatingips.values()
                if f.floating_network_id == network_id and f.floating_ip_address == ip]
        return out

    @_mutating
    def update_subnet(self, id: str, name: Any = UNSET, gateway_ip: Any = UNSET,
                      allocation_pools: Any = UNSET, dns_nameservers: Any = UNSET,
                      service_types: Any = UNSET) -> Subnet:
        s = self._subnet(id)
        st = self._st
        pools = s.allocation_pools if allocation_pools is UNSET else self._pools(allocation_pools or ())
        gateway = s.gateway_ip
        if gateway_ip is not UNSET:
            gateway = None if gateway_ip is None else parse_ip("gateway_ip", gateway_ip)
        if gateway != s.gateway_ip:
            if s.gateway_ip is not None:
                for i in sorted(st.ports_by_network.get(s.network_id, ())):
                    p = st.ports[i]
                    if p.device_owner in ROUTER_INTERFACE_OWNERS and p.has_ip(s.gateway_ip):
                        raise GatewayIpInUse(
                            f"Gateway IP {s.gateway_ip} of subnet {id} is in use by router interface port "
                            f"{p.id} of router {p.device_id}; remove the router interface first.")
            if gateway is not None:
                held = self._holders(s.network_id, gateway)
                if held:
                    raise GatewayIpInUse(f"Gateway IP {gateway} for subnet {id} is already held by "
                                         f"{', '.join(held)}.")
        self._gateway_vs_pools(gateway, pools)
        changes: dict[str, Any] = {"gateway_ip": gateway, "allocation_pools": pools}
        if name is not UNSET:
            changes["name"] = name
        if dns_nameservers is not UNSET:
            changes["dns_nameservers"] = tuple(str(d) for d in (dns_nameservers or ()))
        if service_types is not UNSET:   # addresses already given stay (as in Neutron)
            changes["service_types"] = tuple(service_types or ())
        s = replace(s, **changes)
        st.put("subnet", s)
        return s

    @_mutating
    def delete_subnet(self, id: str) -> tuple[Released, ...]:
        """Delete a subnet; returns the agent-gateway/DHCP addresses that went with it."""
        self._subnet(id)
        released = check_subnet_delete(self._build_cloud(), id)
        st = self._st
        for r in released:
            p = st.ports[r.port_id]
            st.put("port", replace(p, fixed_ips=tuple(f for f in p.fixed_ips if f.subnet_id != id)))
        st.drop("subnet", id)
        return released

    # ---- ports -----------------------------------------------------------------------------
    @staticmethod
    def _requests(fixed_ips: Iterable | None) -> list[IpRequest] | None:
        if fixed_ips is None:
            return None
        out = []
        for r in fixed_ips:
            if isinstance(r, IpRequest):
                out.append(r)
            elif isinstance(r, FixedIP):
                out.append(IpRequest(r.subnet_id, r.ip_address))
            elif isinstance(r, Mapping):
                unknown = set(r) - {"subnet_id", "ip_address"}
                if unknown:
                    raise InvalidInput("fixed_ips", f"unknown keys {sorted(unknown)}")
                out.append(IpRequest(r.get("subnet_id"), r.get("ip_address")))
            else:
                raise InvalidInput("fixed_ips", f"{r!r} is not a fixed IP request")
        return out

    @_mutating
    def create_port(self, network_id: str, device_owner: str = "", device_id: str = "", host: str = "",
                    fixed_ips: Sequence | None = None, mac_address: str | None = None, name: str = "",
                    project_id: str = "", id: str | None = None, connection_limit: int | None = None) -> Port:
        net = self._network(network_id)
        self._check_owner_settable(device_owner)
        pid = self._new_id("port", name, id)
        fixed = self._st.allocator.pick(net.id, device_owner, self._requests(fixed_ips))
        mac = mac_address.lower() if mac_address else self._mac_for(pid)
        port = Port(pid, net.id, device_owner, device_id, host, fixed, mac, name, project_id,
                    connection_limit=connection_limit)
        self._st.put("port", port)
        return port

    @_mutating
    def update_port(self, id: str, host: Any = UNSET, device_id: Any = UNSET, device_owner: Any = UNSET,
                    fixed_ips: Any = UNSET, name: Any = UNSET, connection_limit: Any = UNSET) -> Port:
        old = self._port(id)
        st = self._st
        changes: dict[str, Any] = {}
        for field, value in (("host", host), ("device_id", device_id), ("device_owner", device_owner),
                             ("name", name)):
            if value is not UNSET:
                changes[field] = value or ""
        if connection_limit is not UNSET:
            changes["connection_limit"] = connection_limit
        new = replace(old, **changes)
        managed = self._manager(old)
        if managed is not None:
            moved = [f for f in ("device_owner", "device_id", "host") if getattr(new, f) != getattr(old, f)]
            if moved:
                raise L3PortInUse(f"Port {id} has owner {old.device_owner} ({managed}): its "
                                  f"{', '.join(moved)} cannot be changed through the port API; "
                                  f"{MANAGED_OWNERS[old.device_owner]}.")
        if new.device_owner != old.device_owner:
            self._check_owner_settable(new.device_owner)
        if fixed_ips is not UNSET:
            fixed = st.allocator.pick(old.network_id, new.device_owner, self._requests(fixed_ips or []),
                                      keep=(f.ip_address for f in old.fixed_ips))
            if managed is not None and old.device_owner in FIXED_ADDRESS_OWNERS and fixed != old.fixed_ips:
                raise IPAddressChangeNotAllowed(
                    f"IP updates for port {id} are not allowed: it is a {old.device_owner} port of {managed}; "
                    f"its addresses change only with the router's interfaces.")
            gone = {f.ip_address for f in old.fixed_ips} - {f.ip_address for f in fixed}
            for fid in sorted(st.fips_by_port.get(id, ())):
                f = st.floatingips[fid]
                if f.fixed_ip_address in gone:
                    raise FixedIpInUseByFloatingIP(
                        f"Fixed IP {f.fixed_ip_address} of port {id} is associated with floating IP "
                        f"{f.id} ({f.floating_ip_address}); disassociate it first.")
            new = replace(new, fixed_ips=fixed)
        st.put("port", new)
        for rid in {old.device_id, new.device_id}:
            if rid in st.routers and (old.device_owner in ROUTER_OWNED or new.device_owner in ROUTER_OWNED):
                self._dvr.sync_gateway_info(rid)
                self._dvr.sync_snat_ports(rid)
        return new

    @staticmethod
    def _check_owner_settable(owner: str) -> None:
        if owner in MANAGED_OWNERS:
            raise InvalidInput("device_owner", f"{owner} ports are made and removed by the server, not "
                                               f"through the port API ({MANAGED_OWNERS[owner]})")

    def _manager(self, p: Port) -> str | None:
        """What manages `p` ("router R", "host H"), when it is a port the server made and its
        router or host exists; else None (an ordinary port, or one left by a loaded cloud)."""
        if p.device_owner in ROUTER_OWNED and p.device_id in self._st.routers:
            return f"router {p.device_id}"
        if p.device_owner == AGW and p.device_id in self._st.hosts:
            return f"host {p.device_id}"
        return None

    @_mutating
    def delete_port(self, id: str) -> None:
        p = self._port(id)
        st = self._st
        if p.device_owner == AGW:
            raise L3PortInUse(f"Port {id} has owner {AGW} and cannot be deleted through the port API: "
                              f"the server manages agent gateway ports.")
        if p.device_owner in ROUTER_OWNED and p.device_id in st.routers:
            hint = {GW: f"clear the external gateway of router {p.device_id}",
                    SNAT: f"it goes with the interfaces or the gateway of router {p.device_id}"}.get(
                p.device_owner, f"use remove_router_interface on router {p.device_id}")
            raise L3PortInUse(f"Port {id} has owner {p.device_owner} and cannot be deleted through "
                              f"the port API; {hint}.")
        for fid in sorted(st.fips_by_port.get(id, ())):
            f = st.floatingips[fid]
            st.put("floatingip", replace(f, port_id=None, fixed_ip_address=None, router_id=None))
        st.drop("port", id)

    # ---- routers ---------------------------------------------------------------------------
    def _parse_gateway(self, info: Mapping) -> tuple[str, list[IpRequest] | None, bool]:
        if isinstance(info, ExternalGateway):
            info = {"network_id": info.network_id, "enable_snat": info.enable_snat,
                    "external_fixed_ips": list(info.external_fixed_ips)}
        if not isinstance(info, Mapping) or not info.get("network_id"):
            raise InvalidInput("external_gateway_info", "network_id is required")
        net = self._network(info["network_id"])
        if not net.external:
            raise InvalidInput("external_gateway_info", f"network {net.id} is not a valid external network")
        reqs = self._requests(info.get("external_fixed_ips") or None)
        for r in reqs or ():
            if r.ip_address is not None:
                ip = parse_ip("external_fixed_ips", r.ip_address)
                for sid in sorted(self._st.subnets_by_network.get(net.id, ())):
                    if self._st.subnets[sid].gateway_ip == ip:
                        raise InvalidInput("external_fixed_ips", f"{ip} is the gateway address of subnet {sid}")
        return net.id, reqs, bool(info.get("enable_snat", True))

    @_mutating
    def create_router(self, name: str = "", distributed: bool = True,
                      external_gateway_info: Mapping | None = None, project_id: str = "",
                      id: str | None = None) -> Router:
        r = Router(self._new_id("router", name, id), name, bool(distributed), None, project_id)
        self._st.put("router", r)
        if external_gateway_info:
            self._dvr.set_gateway(r, *self._parse_gateway(external_gateway_info))
        return r

    @_mutating
    def update_router(self, id: str, name: Any = UNSET, external_gateway_info: Any = UNSET) -> Router:
        r = self._router(id)
        st = self._st
        if name is not UNSET:
            r = replace(r, name=name or "")
            st.put("router", r)
        if external_gateway_info is UNSET:
            return r
        if not external_gateway_info:
            if r.gateway is not None:
                self._dvr.unset_gateway(r)
            return r
        if r.gateway is None:
            self._dvr.set_gateway(r, *self._parse_gateway(external_gateway_info))
            return r
        net_id, reqs, snat = self._parse_gateway(external_gateway_info)
        if net_id != r.gateway.network_id:
            self._dvr.unset_gateway(r)
            self._dvr.set_gateway(st.routers[id], net_id, reqs, snat)
            return r
        self._dvr.change_gateway(r, net_id, reqs, snat)
        return r

    @_mutating
    def delete_router(self, id: str) -> None:
        self._router(id)
        st = self._st
        ifs = self._dvr.interfaces(id)
        if ifs:
            raise RouterInUse(f"Router {id} still has interface ports {', '.join(p.id for p in ifs)}; "
                              f"remove them first.")
        for fid in sorted(st.fips_by_router.get(id, ())):   # cannot normally happen without interfaces
            f = st.floatingips[fid]
            st.put("floatingip", replace(f, port_id=None, fixed_ip_address=None, router_id=None))
        self._dvr.drop_router_ports(id)
        st.drop("router", id)

    @staticmethod
    def _one_of(subnet_id: str | None, port_id: str | None) -> None:
        if (subnet_id is None) == (port_id is None):
            raise BadRequestError("Either subnet_id or port_id must be given, and not both.")

    def _check_attachable(self, router_id: str, subnet: Subnet) -> None:
        net = self._st.networks[subnet.network_id]
        if net.external:
            raise BadRequestError(f"Subnet {subnet.id} is on external network {net.id}: set it as the "
                                  f"router's external gateway instead of adding an interface.")
        for p in self._dvr.interfaces(router_id):
            for f in p.fixed_ips:
                if f.subnet_id == subnet.id:
                    raise SubnetAlreadyAttached(f"Router {router_id} already has an interface on subnet "
                                                f"{subnet.id} (port {p.id}).")
                other = self._st.subnets.get(f.subnet_id)
                if other is not None and other.cidr.overlaps(subnet.cidr):
                    raise BadRequestError(f"CIDR {subnet.cidr} of subnet {subnet.id} overlaps CIDR "
                                          f"{other.cidr} of subnet {other.id}, already on router {router_id}.")

    @_mutating
    def add_router_interface(self, router_id: str, subnet_id: str | None = None,
                             port_id: str | None = None) -> Port:
        r = self._router(router_id)
        self._one_of(subnet_id, port_id)
        st = self._st
        owner = DVR_IF if r.distributed else LEGACY_IF
        if subnet_id is not None:
            s = self._subnet(subnet_id)
            self._check_attachable(router_id, s)
            if s.gateway_ip is None:
                raise InvalidInput("subnet_id", f"subnet {s.id} has no gateway_ip; attach a port by port_id instead")
            held = self._holders(s.network_id, s.gateway_ip)
            if held:
                raise InvalidInput("subnet_id", f"the gateway address {s.gateway_ip} of subnet {s.id} is "
                                                f"already held by {', '.join(held)}")
            port = self._new_port(s.network_id, owner, router_id, "", (FixedIP(s.id, s.gateway_ip),),
                                  s.id, project_id=r.project_id)
        else:
            p = self._port(port_id)
            if p.device_id:
                raise PortInUse(f"Port {p.id} is already in use by device {p.device_id} (owner "
                                f"{p.device_owner or 'none'}).")
            if not p.fixed_ips:
                raise BadRequestError(f"Port {p.id} has no fixed IP; a router port needs one.")
            if len(p.fixed_ips) > 1:
                raise BadRequestError(f"Port {p.id} has addresses in several IPv4 subnets; a router port "
                                      f"may have only one.")
            self._check_attachable(router_id, st.subnets[p.fixed_ips[0].subnet_id])
            port = replace(p, device_owner=owner, device_id=router_id)
            st.put("port", port)
        self._dvr.sync_snat_ports(router_id)
        return port

    @_mutating
    def remove_router_interface(self, router_id: str, subnet_id: str | None = None,
                                port_id: str | None = None) -> Port:
        self._router(router_id)
        self._one_of(subnet_id, port_id)
        st = self._st
        ifs = self._dvr.interfaces(router_id)
        if subnet_id is not None:
            self._subnet(subnet_id)
            found = [p for p in ifs if p.ip_on(subnet_id) is not None]
            if not found:
                raise RouterInterfaceNotFoundForSubnet(f"Router {router_id} has no interface on subnet {subnet_id}.")
            port = found[0]
        else:
            found = [p for p in ifs if p.id == port_id]
            if not found:
                raise RouterInterfaceNotFound(f"Router {router_id} has no interface port {port_id}.")
            port = found[0]
        sids = {f.subnet_id for f in port.fixed_ips}
        users = []
        for fid in sorted(st.fips_by_router.get(router_id, ())):
            f = st.floatingips[fid]
            fp = st.ports.get(f.port_id) if f.port_id else None
            if fp is not None and any(x.subnet_id in sids and x.ip_address == f.fixed_ip_address
                                      for x in fp.fixed_ips):
                users.append(f"{f.id} ({f.floating_ip_address})")
        if users:
            raise RouterInterfaceInUseByFloatingIP(
                f"The interface of router {router_id} on subnet(s) {', '.join(sorted(sids))} cannot be "
                f"removed: floating IPs {', '.join(users)} need it.")
        st.drop("port", port.id)
        self._dvr.sync_snat_ports(router_id)
        return port

    # ---- floating IPs ----------------------------------------------------------------------
    def _association(self, network_id: str, fip_id: str, port_id: str | None,
                     fixed_ip_address: Any) -> tuple[str | None, IPv4Address | None, str | None]:
        st = self._st
        if port_id is None:
            if fixed_ip_address is not None and fixed_ip_address is not UNSET:
                raise BadRequestError("fixed_ip_address needs a port_id.")
            return None, None, None
        p = self._port(port_id)
        if p.device_owner.startswith("network:"):
            raise BadRequestError(f"Port {p.id} has owner {p.device_owner} and cannot have a floating IP.")
        if fixed_ip_address is not None and fixed_ip_address is not UNSET:
            ip = parse_ip("fixed_ip_address", fixed_ip_address)
            if not p.has_ip(ip):
                raise BadRequestError(f"Port {p.id} does not have fixed IP {ip}.")
        else:
            if not p.fixed_ips:
                raise BadRequestError(f"Port {p.id} has no fixed IPv4 address to associate a floating IP with.")
            ip = p.fixed_ips[0].ip_address
        sid = next(f.subnet_id for f in p.fixed_ips if f.ip_address == ip)
        s = st.subnets[sid]
        if s.gateway_ip is None:
            raise BadRequestError(f"Cannot give port {p.id} a floating IP: its subnet {sid} has no gateway_ip.")
        routers = set()
        for owner in ROUTER_INTERFACE_OWNERS:
            for i in st.ports_by_owner.get(owner, ()):
                q = st.ports[i]
                r = st.routers.get(q.device_id)
                if r is not None and r.gateway is not None and r.gateway.network_id == network_id \
                        and q.ip_on(sid) is not None:
                    routers.add(r.id)
        if not routers:
            raise ExternalGatewayForFloatingIPNotFound(
                f"No router connects subnet {sid} of port {p.id} to external network {network_id} (one needs "
                f"an interface on that subnet and its gateway on that network), so the port cannot have a "
                f"floating IP from it.")
        for fid in sorted(st.fips_by_port.get(p.id, ())):
            other = st.floatingips[fid]
            if fid != fip_id and other.fixed_ip_address == ip and other.floating_network_id == network_id:
                raise FloatingIPPortAlreadyAssociated(
                    f"Cannot associate a floating IP with fixed IP {ip} of port {p.id}: it already has "
                    f"floating IP {other.floating_ip_address} ({other.id}) on external network {network_id}.")
        return p.id, ip, min(routers)

    @_mutating
    def create_floatingip(self, floating_network_id: str, subnet_id: str | None = None,
                          floating_ip_address: Any = None, port_id: str | None = None,
                          fixed_ip_address: Any = None, project_id: str = "", description: str = "",
                          id: str | None = None) -> FloatingIP:
        net = self._st.networks.get(floating_network_id)
        if net is None:
            raise NotFound("Network", floating_network_id)
        if not net.external:
            raise InvalidInput("floating_network_id", f"network {net.id} is not a valid external network")
        if subnet_id is not None:
            s = self._subnet(subnet_id)
            if s.network_id != net.id:
                raise InvalidInput("subnet_id", f"subnet {s.id} is not on network {net.id}")
        req = None
        if subnet_id is not None or floating_ip_address is not None:
            req = [IpRequest(subnet_id, floating_ip_address)]
        (fixed,) = self._st.allocator.pick(net.id, DeviceOwner.FLOATINGIP.value, req, field="floating_ip_address")
        fid = self._new_id("floatingip", description or str(fixed.ip_address), id)
        pid, ip, rid = self._association(net.id, fid, port_id, fixed_ip_address)
        fip = FloatingIP(fid, net.id, fixed.ip_address, fixed.subnet_id, pid, ip, rid, project_id, description)
        self._st.put("floatingip", fip)
        return fip

    @_mutating
    def update_floatingip(self, id: str, port_id: Any = UNSET, fixed_ip_address: Any = UNSET,
                          description: Any = UNSET) -> FloatingIP:
        f = self._fip(id)
        changes: dict[str, Any] = {}
        if description is not UNSET:
            changes["description"] = description or ""
        if port_id is not UNSET or fixed_ip_address is not UNSET:
            pid = f.port_id if port_id is UNSET else port_id
            fixed = fixed_ip_address
            if fixed is UNSET and port_id is UNSET:
                fixed = f.fixed_ip_address
            pid, ip, rid = self._association(f.floating_network_id, f.id, pid, fixed)
            changes.update(port_id=pid, fixed_ip_address=ip, router_id=rid)
        f = replace(f, **changes)
        self._st.put("floatingip", f)
        return f

    @_mutating
    def delete_floatingip(self, id: str) -> None:
        self._fip(id)
        self._st.drop("floatingip", id)
