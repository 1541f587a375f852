"""The workspace's mutable tables, their indexes, and an undo log.

Invariants:
- every change goes through `put` / `drop`; they keep the indexes (ports by device, by network
  and by owner, compute-port subnets per host, subnets by network, floating IPs by port and by
  router, MACs, agent-gateway ports without an address) and the allocator's held addresses equal to what the tables hold;
- `put` checks that a port's or floating IP's addresses are free before it changes anything;
- inside `transaction()` every change is logged; if the block raises, the log is replayed
  backwards, so tables, indexes and allocator are exactly as before (nothing half-applied);
- `committed` holds the (kind, key) of everything the last successful transaction put or
  dropped (what the Workspace turns into a ChangeSet);
- `placement_dirty` is set by any change that can move `hosts_needing_agent_gateway`
  (hosts, routers, compute and router-interface ports).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from ..ipam import Allocator
from ..model import DeviceOwner, FloatingIP, Host, Network, Port, Router, Subnet
from ..model.resources import ROUTER_INTERFACE_OWNERS, is_compute
from .errors import MacAddressInUse

AGW = DeviceOwner.AGENT_GATEWAY.value
KINDS = ("network", "subnet", "router", "port", "floatingip", "host")


def _key(kind: str, obj) -> str:
    return obj.name if kind == "host" else obj.id


def _affects_placement(p: Port) -> bool:
    return is_compute(p.device_owner) or p.device_owner in ROUTER_INTERFACE_OWNERS


class Store:
    def __init__(self) -> None:
        self.networks: dict[str, Network] = {}
        self.subnets: dict[str, Subnet] = {}
        self.routers: dict[str, Router] = {}
        self.ports: dict[str, Port] = {}
        self.floatingips: dict[str, FloatingIP] = {}
        self.hosts: dict[str, Host] = {}
        self.allocator = Allocator()
        self.ports_by_device: dict[str, set[str]] = {}
        self.ports_by_network: dict[str, set[str]] = {}
        self.ports_by_owner: dict[str, set[str]] = {}
        self.bare_agent_gateways: set[str] = set()     # agent-gateway ports without an address
        self.subnets_by_network: dict[str, set[str]] = {}
        self.compute_subnets_by_host: dict[str, Counter] = {}
        self.fips_by_port: dict[str, set[str]] = {}
        self.fips_by_router: dict[str, set[str]] = {}
        self.macs: dict[str, str] = {}
        self.placement_dirty = False
        self._log: list[tuple[str, str, object]] | None = None
        self.committed: set[tuple[str, str]] = set()

    def table(self, kind: str) -> dict:
        return {"network": self.networks, "subnet": self.subnets, "router": self.routers,
                "port": self.ports, "floatingip": self.floatingips, "host": self.hosts}[kind]

    # ---- changes -----------------------------------------------------------------------
    def put(self, kind: str, obj) -> None:
        key = _key(kind, obj)
        tbl = self.table(kind)
        old = tbl.get(key)
        self._check_addresses(kind, old, obj)
        if old is not None:
            self._unindex(kind, old)
        tbl[key] = obj
        self._index(kind, obj)
        if self._log is not None:
            self._log.append((kind, key, old))

    def drop(self, kind: str, key: str) -> None:
        tbl = self.table(kind)
        old = tbl.pop(key)
        self._unindex(kind, old)
        if self._log is not None:
            self._log.append((kind, key, old))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._log is not None:
            raise RuntimeError("transactions do not nest")
        self._log = []
        dirty = self.placement_dirty
        try:
            yield
        except BaseException:
            log, self._log = self._log, None
            for kind, key, old in reversed(log):
                tbl = self.table(kind)
                cur = tbl.pop(key, None)
                if cur is not None:
                    self._unindex(kind, cur)
                if old is not None:
                    tbl[key] = old
                    self._index(kind, old)
            self.placement_dirty = dirty
            raise
        log, self._log = self._log, None
        self.committed = {(kind, key) for kind, key, _ in log}

    # ---- indexes -----------------------------------------------------------------------
    def _check_addresses(self, kind: str, old, new) -> None:
        if kind == "port":
            self.allocator.claim_check(new.network_id, (f.ip_address for f in new.fixed_ips), f"port {new.id}")
            if new.mac_address and self.macs.get(new.mac_address, new.id) != new.id:
                raise MacAddressInUse(f"Unable to complete operation for port {new.id}: MAC address "
                                      f"{new.mac_address} is in use by port {self.macs[new.mac_address]}.")
        elif kind == "floatingip":
            self.allocator.claim_check(new.floating_network_id, (new.floating_ip_address,), f"floating IP {new.id}")

    def _index(self, kind: str, o) -> None:
        if kind == "port":
            self.ports_by_device.setdefault(o.device_id, set()).add(o.id)
            self.ports_by_network.setdefault(o.network_id, set()).add(o.id)
            self.ports_by_owner.setdefault(o.device_owner, set()).add(o.id)
            if o.device_owner == AGW and not o.fixed_ips:
                self.bare_agent_gateways.add(o.id)
            self.allocator.claim(o.network_id, (f.ip_address for f in o.fixed_ips), f"port {o.id}")
            if o.mac_address:
                self.macs[o.mac_address] = o.id
            if is_compute(o.device_owner) and o.host:
                c = self.compute_subnets_by_host.setdefault(o.host, Counter())
                c.update(f.subnet_id for f in o.fixed_ips)
            if _affects_placement(o):
                self.placement_dirty = True
        elif kind == "floatingip":
            self.allocator.claim(o.floating_network_id, (o.floating_ip_address,), f"floating IP {o.id}")
            if o.port_id:
                self.fips_by_port.setdefault(o.port_id, set()).add(o.id)
            if o.router_id:
                self.fips_by_router.setdefault(o.router_id, set()).add(o.id)
        elif kind == "subnet":
            self.subnets_by_network.setdefault(o.network_id, set()).add(o.id)
            self.allocator.add_subnet(o)
        elif kind in ("router", "host"):
            self.placement_dirty = True

    def _unindex(self, kind: str, o) -> None:
        if kind == "port":
            _discard(self.ports_by_device, o.device_id, o.id)
            _discard(self.ports_by_network, o.network_id, o.id)
            _discard(self.ports_by_owner, o.device_owner, o.id)
            self.bare_agent_gateways.discard(o.id)
            self.allocator.release(o.network_id, (f.ip_address for f in o.fixed_ips))
            if o.mac_address and self.macs.get(o.mac_address) == o.id:
                del self.macs[o.mac_address]
            if is_compute(o.device_owner) and o.host:
                c = self.compute_subnets_by_host[o.host]
                c.subtract(f.subnet_id for f in o.fixed_ips)
                for sid in [s for s, n in c.items() if n <= 0]:
                    del c[sid]
            if _affects_placement(o):
                self.placement_dirty = True
        elif kind == "floatingip":
            self.allocator.release(o.floating_network_id, (o.floating_ip_address,))
            if o.port_id:
                _discard(self.fips_by_port, o.port_id, o.id)
            if o.router_id:
                _discard(self.fips_by_router, o.router_id, o.id)
        elif kind == "subnet":
            _discard(self.subnets_by_network, o.network_id, o.id)
            self.allocator.remove_subnet(o.id)
        elif kind in ("router", "host"):
            self.placement_dirty = True


def _discard(index: dict[str, set[str]], key: str, value: str) -> None:
    s = index.get(key)
    if s is not None:
        s.discard(value)
        if not s:
            del index[key]
