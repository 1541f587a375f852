"""IPAM: address allocation with Neutron's semantics (allocation pools, gateway, service types).

Imports only `dvrnet.model`. `Allocator` holds the per-network set of held addresses and picks
the lowest free address in pool order; `candidate_subnets` is the service-type filter;
`check_subnet_delete` says whether a subnet may go and which addresses go with it.
"""
from .allocator import Allocator, IpAddressGenerationFailureNoMatchingSubnet
from .candidates import candidate_subnets, serves
from .requests import IpRequest
from .subnet_delete import RELEASED_WITH_SUBNET, Released, check_subnet_delete, holder_kind

__all__ = [
    "RELEASED_WITH_SUBNET",
    "Allocator",
    "IpAddressGenerationFailureNoMatchingSubnet",
    "IpRequest",
    "Released",
    "candidate_subnets",
    "check_subnet_delete",
    "holder_kind",
    "serves",
]
