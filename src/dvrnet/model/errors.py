"""Errors of the model and IPAM, shaped like Neutron's so the API can return them unchanged.

Each error carries Neutron's exception `type`, the HTTP `status` Neutron uses for it, and a
`message` that names the object or field and the reason. `field` is set when one input field is
at fault.
"""
from __future__ import annotations


class DvrnetError(Exception):
    type = "NeutronException"
    status = 500

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:  # one line, for the CLI
        return self.message


class InvalidInput(DvrnetError):
    """400: a field's value is wrong. The message reads `Invalid input for <field>. Reason: <why>.`"""
    type = "InvalidInput"
    status = 400

    def __init__(self, field: str, reason: str):
        super().__init__(f"Invalid input for {field}. Reason: {reason}.", field=field)
        self.reason = reason


class BadRequest(DvrnetError):
    type = "BadRequest"
    status = 400


class NotFound(DvrnetError):
    type = "NotFound"
    status = 404

    def __init__(self, kind: str, ident: str):
        super().__init__(f"{kind} {ident} could not be found.")
        self.type = f"{kind.replace(' ', '')}NotFound"
        self.kind = kind
        self.ident = ident


class Conflict(DvrnetError):
    type = "Conflict"
    status = 409


class SubnetInUse(Conflict):
    type = "SubnetInUse"

    def __init__(self, subnet_id: str, reason: str):
        super().__init__(f"Unable to complete operation on subnet {subnet_id}: {reason}.")
        self.subnet_id = subnet_id


class IpAddressGenerationFailure(Conflict):
    type = "IpAddressGenerationFailure"


class IpAddressAlreadyAllocated(Conflict):
    type = "IpAddressAlreadyAllocated"
