"""Which subnets of a network may give an automatic address to a port, in the order they are tried.

Invariants (Neutron's service-type semantics):
- a subnet whose `service_types` contain the port's `device_owner` is a candidate ("typed");
- a subnet with `enable_dhcp` is also a candidate for a `network:dhcp` port, whatever its types;
- a subnet without service types is a candidate for every port ("untyped");
- typed candidates come first, then untyped; within each group the order is (cidr, id);
- a typed subnet never serves an owner it does not name.
Explicit requests (`subnet_id` or `ip_address`) are checked with `serves` (the allocator refuses a
subnet that does not serve the owner).
"""
from __future__ import annotations

from collections.abc import Iterable

from ..model.resources import DeviceOwner, Subnet


def serves(subnet: Subnet, device_owner: str) -> bool:
    """True when `subnet` may hand an automatic address to a port owned by `device_owner`."""
    if not subnet.service_types:
        return True
    if device_owner in subnet.service_types:
        return True
    return device_owner == DeviceOwner.DHCP.value and subnet.enable_dhcp


def candidate_subnets(subnets: Iterable[Subnet], device_owner: str) -> tuple[Subnet, ...]:
    ordered = sorted(subnets, key=lambda s: (s.cidr, s.id))
    typed = [s for s in ordered if s.service_types and serves(s, device_owner)]
    untyped = [s for s in ordered if not s.service_types]
    return tuple(typed + untyped)
