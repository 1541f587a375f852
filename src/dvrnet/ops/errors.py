"""Errors of the resource operations, named and coded as Neutron names and codes them.

Each is a `dvrnet.model.errors` type (so callers may catch `Conflict`, `NotFound`, ...) with
Neutron's exception `type` and HTTP `status`; messages are dvrnet's own and name the objects.
"""
from __future__ import annotations

from ..model.errors import BadRequest, Conflict, DvrnetError, NotFound


class _NotFound(NotFound):
    """A 404 whose message is free text (NotFound's own takes a kind and an id)."""

    def __init__(self, message: str):
        DvrnetError.__init__(self, message)
        self.type = type(self).__name__


class IPAddressChangeNotAllowed(BadRequest):
    type = "IPAddressChangeNotAllowed"


class ResourceExists(Conflict):
    type = "Conflict"


class NetworkInUse(Conflict):
    type = "NetworkInUse"


class ExternalNetworkInUse(Conflict):
    type = "ExternalNetworkInUse"


class GatewayIpInUse(Conflict):
    type = "GatewayIpInUse"


class GatewayConflictWithAllocationPools(Conflict):
    type = "GatewayConflictWithAllocationPools"


class MacAddressInUse(Conflict):
    type = "MacAddressInUse"


class PortInUse(Conflict):
    type = "PortInUse"


class L3PortInUse(Conflict):
    type = "L3PortInUse"


class RouterInUse(Conflict):
    type = "RouterInUse"


class RouterInterfaceInUseByFloatingIP(Conflict):
    type = "RouterInterfaceInUseByFloatingIP"


class RouterExternalGatewayInUseByFloatingIp(Conflict):
    type = "RouterExternalGatewayInUseByFloatingIp"


class SubnetAlreadyAttached(Conflict):
    type = "SubnetAlreadyAttached"


class FloatingIPPortAlreadyAssociated(Conflict):
    type = "FloatingIPPortAlreadyAssociated"


class FixedIpInUseByFloatingIP(Conflict):
    type = "FixedIpInUseByFloatingIP"


class ExternalGatewayForFloatingIPNotFound(_NotFound):
    pass


class RouterInterfaceNotFound(_NotFound):
    pass


class RouterInterfaceNotFoundForSubnet(_NotFound):
    pass


__all__ = [
    "BadRequest",
    "ExternalGatewayForFloatingIPNotFound",
    "ExternalNetworkInUse",
    "FixedIpInUseByFloatingIP",
    "FloatingIPPortAlreadyAssociated",
    "GatewayConflictWithAllocationPools",
    "GatewayIpInUse",
    "IPAddressChangeNotAllowed",
    "L3PortInUse",
    "MacAddressInUse",
    "NetworkInUse",
    "PortInUse",
    "ResourceExists",
    "RouterExternalGatewayInUseByFloatingIp",
    "RouterInUse",
    "RouterInterfaceInUseByFloatingIP",
    "RouterInterfaceNotFound",
    "RouterInterfaceNotFoundForSubnet",
    "SubnetAlreadyAttached",
]
