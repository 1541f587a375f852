"""What a caller may ask IPAM for: `IpRequest`, one entry of a port's `fixed_ips`.

Invariants:
- `subnet_id` only: any free pool address of that subnet, which must serve the port's owner;
- `ip_address` (with or without `subnet_id`): exactly that address, which must be free and inside
  the subnet (or inside some subnet of the network when `subnet_id` is absent), which must serve
  the port's owner;
- neither: one address chosen as for a port without `fixed_ips`.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address


@dataclass(frozen=True)
class IpRequest:
    subnet_id: str | None = None
    ip_address: IPv4Address | str | None = None
