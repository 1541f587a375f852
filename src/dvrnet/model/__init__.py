"""Resource model: frozen values for networks, subnets, routers, ports, floating IPs and hosts.

Invariants:
- every value is immutable and hashable; a `Cloud` is a consistent snapshot of all of them;
- nothing here does I/O; validation errors name the field and the reason (`errors.InvalidInput`).
"""
from .cloud import Cloud
from .errors import (
    Conflict,
    DvrnetError,
    InvalidInput,
    IpAddressAlreadyAllocated,
    IpAddressGenerationFailure,
    NotFound,
    SubnetInUse,
)
from .resources import (
    SERVICE_TYPES,
    AgentMode,
    AllocationPool,
    DeviceOwner,
    ExternalGateway,
    FixedIP,
    FloatingIP,
    Host,
    Network,
    Port,
    Router,
    Subnet,
)

__all__ = [
    "SERVICE_TYPES",
    "AgentMode",
    "AllocationPool",
    "Cloud",
    "Conflict",
    "DeviceOwner",
    "DvrnetError",
    "ExternalGateway",
    "FixedIP",
    "FloatingIP",
    "Host",
    "InvalidInput",
    "IpAddressAlreadyAllocated",
    "IpAddressGenerationFailure",
    "Network",
    "NotFound",
    "Port",
    "Router",
    "Subnet",
    "SubnetInUse",
]
