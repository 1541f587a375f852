"""Address allocation on a mutable set of held addresses, fast enough for tens of thousands.

Invariants:
- `used[network]` maps every address held on the network (a port's fixed IP or a floating IP,
  as an int) to a label naming its holder; nothing held is ever handed out again;
- an automatic pick is the lowest free address, in pool order, of the first candidate subnet with
  room (`candidates.py`): it is inside an allocation pool, so never the gateway, the network or the
  broadcast address. Deterministic: the same state gives the same answer;
- `cursor[subnet]`: every pool address of the subnet below it is held. Picks scan from it (amortised
  O(1) per allocation); releasing an address below it moves it back;
- `pick` only reads (the cursor is a hint); `claim` and `release` are the only mutations, and
  `claim` checks everything before it changes anything.
- an explicit request (`subnet_id` and/or `ip_address`) must name a subnet that serves the owner
  (`candidates.serves`), as Neutron's IPAM checks it; addresses the caller already holds
  (`keep`) are not checked again (a subnet's service types may change under them).
Errors: `InvalidInput` naming the request's field for an address outside the subnet/network or in
a subnet that does not serve the owner,
`IpAddressAlreadyAllocated` for a held address, `IpAddressGenerationFailure` (naming the network
and the subnets tried) when nothing is free, `IpAddressGenerationFailureNoMatchingSubnet` when no
subnet serves the owner.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address

from ..model import Cloud, FixedIP, InvalidInput, IpAddressAlreadyAllocated, IpAddressGenerationFailure, Subnet
from ..model.resources import DeviceOwner, parse_ip
from .candidates import candidate_subnets, serves
from .requests import IpRequest


class IpAddressGenerationFailureNoMatchingSubnet(IpAddressGenerationFailure):
    type = "IpAddressGenerationFailureNoMatchingSubnet"


def _subnets_text(subnets: Iterable[Subnet]) -> str:
    return ", ".join(f"{s.id} ({s.cidr})" for s in subnets)


class Allocator:
    def __init__(self, cloud: Cloud | None = None):
        self._subnets: dict[str, Subnet] = {}
        self._by_network: dict[str, list[Subnet]] = {}
        self._used: dict[str, dict[int, str]] = {}
        self._cursor: dict[str, int] = {}
        if cloud is not None:
            for s in cloud.subnets.values():
                self.add_subnet(s)
            for p in cloud.ports.values():
                self.claim(p.network_id, (f.ip_address for f in p.fixed_ips), f"port {p.id}")
            for f in cloud.floatingips.values():
                self.claim(f.floating_network_id, (f.floating_ip_address,), f"floating IP {f.id}")

    @classmethod
    def from_cloud(cls, cloud: Cloud) -> Allocator:
        return cls(cloud)

    # ---- subnets ---------------------------------------------------------------------
    def add_subnet(self, subnet: Subnet) -> None:
        """Add or replace a subnet (a replaced subnet's cursor restarts at its first pool)."""
        self.remove_subnet(subnet.id)
        self._subnets[subnet.id] = subnet
        subs = self._by_network.setdefault(subnet.network_id, [])
        subs.append(subnet)
        subs.sort(key=lambda s: (s.cidr, s.id))
        self._used.setdefault(subnet.network_id, {})
        self._cursor[subnet.id] = int(subnet.allocation_pools[0].start) if subnet.allocation_pools else 0

    def remove_subnet(self, subnet_id: str) -> None:
        old = self._subnets.pop(subnet_id, None)
        if old is not None:
            self._by_network[old.network_id] = [s for s in self._by_network[old.network_id] if s.id != subnet_id]
            del self._cursor[subnet_id]

    def subnets_of(self, network_id: str) -> tuple[Subnet, ...]:
        return tuple(self._by_network.get(network_id, ()))

    # ---- queries ---------------------------------------------------------------------
    def holder(self, network_id: str, ip: IPv4Address) -> str | None:
        return self._used.get(network_id, {}).get(int(ip))

    def is_used(self, network_id: str, ip: IPv4Address) -> bool:
        return int(ip) in self._used.get(network_id, {})

    def used_count(self, network_id: str) -> int:
        return len(self._used.get(network_id, {}))

    def free_in_pools(self, subnet_id: str) -> int:
        s = self._subnets[subnet_id]
        used = self._used.get(s.network_id, {})
        held = sum(1 for a in used if s.in_pools(IPv4Address(a)))
        return sum(p.size() for p in s.allocation_pools) - held

    # ---- mutations -------------------------------------------------------------------
    def claim_check(self, network_id: str, ips: Iterable[IPv4Address], holder: str) -> None:
        """Raise `IpAddressAlreadyAllocated` if one of `ips` is held by someone else than `holder`."""
        used = self._used.get(network_id, {})
        for ip in ips:
            other = used.get(int(ip))
            if other is not None and other != holder:
                raise IpAddressAlreadyAllocated(
                    f"IP address {ip} already allocated on network {network_id} (held by {other}).")

    def claim(self, network_id: str, ips: Iterable[IPv4Address], holder: str) -> None:
        """Mark `ips` held by `holder`. Re-claiming one's own address is a no-op."""
        ips = list(ips)
        self.claim_check(network_id, ips, holder)
        used = self._used.setdefault(network_id, {})
        for ip in ips:
            used[int(ip)] = holder

    def release(self, network_id: str, ips: Iterable[IPv4Address]) -> None:
        used = self._used.get(network_id, {})
        for ip in ips:
            a = int(ip)
            if used.pop(a, None) is None:
                continue
            for s in self._by_network.get(network_id, ()):
                if ip in s.cidr:
                    if a < self._cursor[s.id] and s.in_pools(ip):
                        self._cursor[s.id] = a
                    break

    def allocate(self, network_id: str, device_owner: str, requests: Sequence[IpRequest] | None,
                 holder: str, *, field: str = "fixed_ips") -> tuple[FixedIP, ...]:
        """`pick` then `claim`."""
        out = self.pick(network_id, device_owner, requests, field=field)
        self.claim(network_id, (f.ip_address for f in out), holder)
        return out

    # ---- picking ---------------------------------------------------------------------
    def pick(self, network_id: str, device_owner: str, requests: Sequence[IpRequest] | None = None,
             *, field: str = "fixed_ips", keep: Iterable[IPv4Address] = ()) -> tuple[FixedIP, ...]:
        """Addresses for one port (or floating IP), in request order; changes nothing.

        `requests=None`: one IPv4 address from the candidate subnets of `device_owner`.
        `keep`: addresses the caller already holds and may request again (a port update).
        """
        if requests is None:
            requests = [IpRequest()]
        keep_set = {int(a) for a in keep}
        used = self._used.get(network_id, {})
        taken: set[int] = set()
        out: list[FixedIP | None] = [None] * len(requests)
        # explicit addresses first, so an automatic pick never takes one requested later
        for i, r in enumerate(requests):
            if r.ip_address is None:
                continue
            ip = parse_ip(field, r.ip_address)
            s = self._subnet_for(network_id, r.subnet_id, ip, field)
            if int(ip) not in keep_set:
                self._check_serves(s, device_owner, field)
            if ip in (s.cidr.network_address, s.cidr.broadcast_address):
                raise InvalidInput(field, f"{ip} is the network or broadcast address of subnet {s.id} ({s.cidr})")
            a = int(ip)
            if a in taken:
                raise InvalidInput(field, f"{ip} is requested twice")
            if a in used and a not in keep_set:
                raise IpAddressAlreadyAllocated(
                    f"IP address {ip} already allocated in subnet {s.id} (held by {used[a]}).")
            taken.add(a)
            out[i] = FixedIP(s.id, ip)
        for i, r in enumerate(requests):
            if r.ip_address is not None:
                continue
            sub, a = self._pick(network_id, r.subnet_id, device_owner, used, taken, field)
            taken.add(a)
            out[i] = FixedIP(sub.id, IPv4Address(a))
        return tuple(out)  # type: ignore[arg-type]  # every None slot was filled in the loop above

    def _pick(self, network_id: str, subnet_id: str | None, device_owner: str, used, taken: set[int],
              field: str) -> tuple[Subnet, int]:
        """The subnet and lowest free address for one automatic request (SUBNET_ID, else by
        service type), or IpAddressGenerationFailure."""
        if subnet_id is not None:
            s = self._subnet_for(network_id, subnet_id, None, field)
            self._check_serves(s, device_owner, field)
            a = self._lowest_free(s, used, taken)
            if a is None:
                raise IpAddressGenerationFailure(
                    f"No more IP addresses available on network {network_id}; subnets tried: {_subnets_text([s])}.")
            return s, a
        cands = candidate_subnets(self._by_network.get(network_id, ()), device_owner)
        if not cands:
            raise IpAddressGenerationFailureNoMatchingSubnet(
                f"No valid service subnet for device owner {device_owner!r} on network {network_id}.")
        for c in cands:
            a = self._lowest_free(c, used, taken)
            if a is not None:
                return c, a
        raise IpAddressGenerationFailure(
            f"No more IP addresses available on network {network_id}; subnets tried: {_subnets_text(cands)}.")

    def pick_routed_gateway(self, network_id: str, *, field: str = "external_fixed_ips") -> tuple[FixedIP, FixedIP]:
        """The automatic addresses of a router gateway port on a routed network (tag dvrnet:routed,
        issue 15): (its private address, from a subnet typed `network:router_gateway`; the router's
        SNAT address, from a public subnet: one without service types). Each is the lowest free
        address of the first such subnet, in (cidr, id) order, with room. Changes nothing."""
        gw = DeviceOwner.ROUTER_GATEWAY.value
        subs = candidate_subnets(self._by_network.get(network_id, ()), gw)
        used = self._used.get(network_id, {})
        out: list[FixedIP] = []
        for what, cands in (("a subnet with service type network:router_gateway (qg-'s private address)",
                             [s for s in subs if gw in s.service_types]),
                            ("a public subnet without service types (the SNAT address)",
                             [s for s in subs if not s.service_types])):
            if not cands:
                raise IpAddressGenerationFailureNoMatchingSubnet(
                    f"Network {network_id} is routed (tag dvrnet:routed): a router gateway needs {what}; "
                    f"the network has none.")
            for c in cands:
                a = self._lowest_free(c, used, set())
                if a is not None:
                    out.append(FixedIP(c.id, IPv4Address(a)))
                    break
            else:
                raise IpAddressGenerationFailure(
                    f"No more IP addresses available on network {network_id}; subnets tried: {_subnets_text(cands)}.")
        return out[0], out[1]

    @staticmethod
    def _check_serves(s: Subnet, device_owner: str, field: str) -> None:
        if not serves(s, device_owner):
            raise InvalidInput(field, f"subnet {s.id} ({s.cidr}) does not serve device owner {device_owner!r}: its "
                                      f"service_types are {', '.join(s.service_types)}")

    def _subnet_for(self, network_id: str, subnet_id: str | None, ip: IPv4Address | None, field: str) -> Subnet:
        if subnet_id is not None:
            s = self._subnets.get(subnet_id)
            if s is None or s.network_id != network_id:
                raise InvalidInput(field, f"subnet {subnet_id} is not a subnet of network {network_id}")
            if ip is not None and ip not in s.cidr:
                raise InvalidInput(field, f"{ip} is not in subnet {s.id} ({s.cidr})")
            return s
        for s in self._by_network.get(network_id, ()):
            if ip in s.cidr:
                return s
        raise InvalidInput(field, f"{ip} is not in any subnet of network {network_id}")

    def _lowest_free(self, s: Subnet, used: dict[int, str], taken: set[int]) -> int | None:
        cursor = self._cursor[s.id]
        first_unheld = None
        for pool in s.allocation_pools:
            end = int(pool.end)
            a = max(int(pool.start), cursor)
            while a <= end:
                if a not in used:
                    if first_unheld is None:
                        first_unheld = a
                    if a not in taken:
                        self._cursor[s.id] = first_unheld
                        return a
                a += 1
        last = int(s.allocation_pools[-1].end) + 1 if s.allocation_pools else cursor
        self._cursor[s.id] = first_unheld if first_unheld is not None else max(cursor, last)
        return None
