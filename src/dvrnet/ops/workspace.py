"""CONTRACT STUB (being implemented): Neutron's operations on an in-memory, mutable copy of the model.

Every method validates first and changes nothing when it raises (nothing half-applied).
Errors are `dvrnet.model.errors` types (InvalidInput 400, NotFound 404, Conflict/SubnetInUse/
IpAddressGenerationFailure 409) whose messages name the field or object and the reason.
Ids: given explicitly, or made by `id_factory(kind, name)` (default: uuid4).
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Callable

from ..model import Cloud


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()   # "field not given" (distinct from None, which may mean "clear")


@dataclass(frozen=True)
class IpRequest:
    subnet_id: str | None = None
    ip_address: IPv4Address | None = None


class Workspace:
    def __init__(self, cloud: Cloud | None = None, id_factory: Callable[[str, str], str] | None = None):
        raise NotImplementedError

    def snapshot(self) -> Cloud: ...
