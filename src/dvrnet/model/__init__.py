"""Resource model: frozen values for networks, subnets, routers, ports, floating IPs and hosts.

Invariants:
- every value is immutable and hashable; a `Cloud` is a consistent snapshot of all of them;
- nothing here does I/O; validation errors name the field and the reason (`errors.InvalidInput`).
"""
from .errors import (
    DvrnetError, InvalidInput, NotFound, Conflict, SubnetInUse, IpAddressGenerationFailure,
    IpAddressAlreadyAllocated,
)
from .resources import (
    DeviceOwner, AgentMode, Network, Subnet, AllocationPool, FixedIP, Port, ExternalGateway,
    Router, FloatingIP, Host, SERVICE_TYPES,
)
from .cloud import Cloud

__all__ = [
    "DvrnetError", "InvalidInput", "NotFound", "Conflict", "SubnetInUse",
    "IpAddressGenerationFailure", "IpAddressAlreadyAllocated",
    "DeviceOwner", "AgentMode", "Network", "Subnet", "AllocationPool", "FixedIP", "Port",
    "ExternalGateway", "Router", "FloatingIP", "Host", "SERVICE_TYPES", "Cloud",
]
