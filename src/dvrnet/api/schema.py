"""Request bodies: which attributes each resource accepts, on POST and PUT, and their types.

Parsing is strict, as Neutron's is: an attribute the resource does not have is 400
"Unrecognized attribute(s) 'x'"; a read-only one is 400 "Attribute 'x' not allowed in POST" /
"Cannot update read-only attribute x"; a value of the wrong type is 400 naming the attribute.
Attributes dvrnet carries but cannot vary (`admin_state_up` of a network, `ha`, `host_routes`, ...)
accept only the value dvrnet implements, so nothing is silently ignored. The result is a dict of
Python values keyed by API attribute name; semantic checks are the Workspace's.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from ..model.errors import InvalidInput
from ..model.resources import parse_cidr, parse_ip
from .errors import BadInput, HTTPBadRequest, MalformedRequestBody

_ANY = object()


def _s(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, str) else repr(v)


# ---- converters: (attr name, raw value) -> python value ---------------------------------
def string(max_len: int = 255) -> Callable[[str, Any], str]:
    def conv(name: str, v: Any) -> str:
        if not isinstance(v, str):
            raise BadInput(name, f"{_s(v)} is not a valid string")
        if len(v) > max_len:
            raise BadInput(name, f"'{v[:20]}…' exceeds maximum length of {max_len}")
        return v
    return conv


def boolean(name: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
        return v.lower() in ("true", "1")
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise BadInput(name, f"{_s(v)} cannot be converted to boolean")


def integer(lo: int, hi: int) -> Callable[[str, Any], int]:
    def conv(name: str, v: Any) -> int:
        if isinstance(v, bool):
            raise BadInput(name, f"{_s(v)} is not an integer")
        if isinstance(v, str):
            try:
                v = int(v)
            except ValueError:
                raise BadInput(name, f"{_s(v)} is not an integer") from None
        if not isinstance(v, int):
            raise BadInput(name, f"{_s(v)} is not an integer")
        if not lo <= v <= hi:
            raise BadInput(name, f"{v} is not in the range {lo}..{hi}")
        return v
    return conv


def _wrap(fn: Callable[[str, Any], Any], name: str, v: Any) -> Any:
    try:
        return fn(name, v)
    except InvalidInput as e:
        raise BadInput(name, e.reason) from None


def ip(name: str, v: Any) -> IPv4Address:
    if not isinstance(v, str):
        raise BadInput(name, f"{_s(v)} is not a valid IP address")
    return _wrap(parse_ip, name, v)


def ip_or_none(name: str, v: Any) -> IPv4Address | None:
    return None if v is None else ip(name, v)


def cidr(name: str, v: Any):
    if not isinstance(v, str):
        raise BadInput(name, f"{_s(v)} is not a valid IP subnet")
    return _wrap(parse_cidr, name, v)


def list_of(item: Callable[[str, Any], Any]) -> Callable[[str, Any], list]:
    def conv(name: str, v: Any) -> list:
        if not isinstance(v, list):
            raise BadInput(name, f"{_s(v)} is not a list")
        return [item(name, x) for x in v]
    return conv


def _obj(name: str, v: Any, keys: dict[str, Callable[[str, Any], Any]], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(v, dict):
        raise BadInput(name, f"{_s(v)} is not a dictionary")
    unknown = sorted(set(v) - set(keys))
    if unknown:
        raise BadInput(name, f"unrecognized key(s) {', '.join(unknown)}; expected {', '.join(sorted(keys))}")
    for k in required:
        if k not in v:
            raise BadInput(name, f"'{k}' is required")
    return {k: keys[k](f"{name}.{k}", x) for k, x in v.items()}


def pools(name: str, v: Any) -> list[tuple[IPv4Address, IPv4Address]]:
    items = list_of(lambda n, x: _obj(n, x, {"start": ip, "end": ip}, ("start", "end")))(name, v)
    return [(p["start"], p["end"]) for p in items]


def fixed_ips(name: str, v: Any) -> list[dict]:
    def one(n: str, x: Any) -> dict:
        d = _obj(n, x, {"subnet_id": string(), "ip_address": ip})
        if not d:
            raise BadInput(n, "each entry needs subnet_id and/or ip_address")
        return d
    return list_of(one)(name, v)


def gateway_info(name: str, v: Any) -> dict | None:
    if v is None or v == {}:
        return None
    d = _obj(name, v, {"network_id": string(), "enable_snat": boolean, "external_fixed_ips": fixed_ips},
             ("network_id",))
    return d


def service_type(name: str, v: Any) -> str:
    return string()(name, v)


def only(value: Any) -> Callable[[str, Any], Any]:
    """An attribute dvrnet shows but does not vary: only `value` is accepted."""
    def conv(name: str, v: Any) -> Any:
        if v != value:
            raise BadInput(name, f"dvrnet supports only {json.dumps(value)} here, not {_s(v)}")
        return v
    return conv


def ip_version(name: str, v: Any) -> int:
    n = integer(0, 99)(name, v)
    if n != 4:
        raise BadInput(name, f"IP version {n} is not supported (dvrnet is IPv4-only)")
    return n


def host_mode(name: str, v: Any) -> str:
    if v not in ("dvr", "dvr_snat"):
        raise BadInput(name, f"{_s(v)} is not an agent mode; expected dvr or dvr_snat")
    return v


# ---- resource specs -----------------------------------------------------------------------
@dataclass(frozen=True)
class Attr:
    conv: Callable[[str, Any], Any]
    post: bool = True
    put: bool = False
    required: bool = False
    admin_rule: str | None = None   # only admin may set it: the policy rule named in the 403


@dataclass(frozen=True)
class Spec:
    singular: str
    collection: str
    attrs: dict[str, Attr]
    read_only: frozenset[str] = field(default_factory=frozenset)


_STD_RO = frozenset({"status", "created_at", "updated_at", "revision_number", "tags"})
_PROJECT = {"project_id": Attr(string()), "tenant_id": Attr(string())}

NETWORK = Spec("network", "networks", {
    "id": Attr(string(64)), "name": Attr(string(), put=True), **_PROJECT,
    "router:external": Attr(boolean, put=True, admin_rule="create_network:router:external"),
    "shared": Attr(boolean, admin_rule="create_network:shared"),
    "mtu": Attr(integer(68, 65535), put=True),
    "admin_state_up": Attr(only(True), put=True),
    "description": Attr(string(), put=True),
    "availability_zone_hints": Attr(only([])),
    "port_security_enabled": Attr(only(False), put=True),
}, _STD_RO | {"subnets", "availability_zones", "ipv4_address_scope", "ipv6_address_scope", "l2_adjacency"})

SUBNET = Spec("subnet", "subnets", {
    "id": Attr(string(64)), "name": Attr(string(), put=True), **_PROJECT,
    "network_id": Attr(string(64), required=True),
    "cidr": Attr(cidr, required=True),
    "ip_version": Attr(ip_version),
    "gateway_ip": Attr(ip_or_none, put=True),
    "allocation_pools": Attr(pools, put=True),
    "service_types": Attr(list_of(service_type), admin_rule="create_subnet:service_types"),
    "enable_dhcp": Attr(boolean),
    "dns_nameservers": Attr(list_of(lambda n, v: str(ip(n, v))), put=True),
    "host_routes": Attr(only([]), put=True),
    "description": Attr(string(), put=True),
    "subnetpool_id": Attr(only(None)), "ipv6_ra_mode": Attr(only(None)), "ipv6_address_mode": Attr(only(None)),
    "use_default_subnetpool": Attr(only(False)),
}, _STD_RO | {"segment_id"})

ROUTER = Spec("router", "routers", {
    "id": Attr(string(64)), "name": Attr(string(), put=True), **_PROJECT,
    "external_gateway_info": Attr(gateway_info, put=True),
    "distributed": Attr(boolean, admin_rule="create_router:distributed"),
    "ha": Attr(only(False)),
    "admin_state_up": Attr(only(True), put=True),
    "description": Attr(string(), put=True),
    "routes": Attr(only([]), post=False, put=True),
    "availability_zone_hints": Attr(only([])),
}, _STD_RO | {"availability_zones", "flavor_id"})

PORT = Spec("port", "ports", {
    "id": Attr(string(64)), "name": Attr(string(), put=True), **_PROJECT,
    "network_id": Attr(string(64), required=True),
    "fixed_ips": Attr(fixed_ips, put=True),
    "mac_address": Attr(string(32)),
    "device_id": Attr(string(), put=True),
    "device_owner": Attr(string(), put=True),
    "binding:host_id": Attr(string(), put=True, admin_rule="create_port:binding:host_id"),
    "binding:vnic_type": Attr(only("normal"), put=True),
    "admin_state_up": Attr(only(True), put=True),
    "description": Attr(string(), put=True),
    "security_groups": Attr(only([]), put=True),
    "port_security_enabled": Attr(only(False), put=True),
}, _STD_RO | {"binding:vif_type", "binding:vif_details", "binding:profile", "allowed_address_pairs",
              "extra_dhcp_opts"})

FLOATINGIP = Spec("floatingip", "floatingips", {
    "id": Attr(string(64)), **_PROJECT,
    "floating_network_id": Attr(string(64), required=True),
    "subnet_id": Attr(string(64)),
    "floating_ip_address": Attr(ip, admin_rule="create_floatingip:floating_ip_address"),
    "port_id": Attr(lambda n, v: None if v is None else string(64)(n, v), put=True),
    "fixed_ip_address": Attr(ip_or_none, put=True),
    "description": Attr(string(), put=True),
}, _STD_RO | {"router_id", "port_details", "qos_policy_id"})

HOST = Spec("host", "hosts", {
    "name": Attr(string(), required=True),
    "mode": Attr(host_mode),
}, frozenset({"created_at", "heartbeat_at", "alive"}))

SPECS = {s.collection: s for s in (NETWORK, SUBNET, ROUTER, PORT, FLOATINGIP)}


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise MalformedRequestBody("the body is empty")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedRequestBody(f"not valid JSON ({e})") from None


def resource_bodies(spec: Spec, body: Any, allow_bulk: bool) -> list[Any]:
    """`{"network": {...}}` -> [{...}]; `{"networks": [...]}` (bulk, POST only) -> [...]."""
    if not isinstance(body, dict):
        raise MalformedRequestBody("expected a JSON object")
    if allow_bulk and spec.collection in body:
        items = body[spec.collection]
        if not isinstance(items, list) or not items:
            raise HTTPBadRequest(f"Resources required: '{spec.collection}' must be a non-empty list")
        if len(body) != 1:
            raise HTTPBadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(set(body) - {spec.collection}))}'")
        return items
    if spec.singular not in body:
        raise HTTPBadRequest(f"Unable to find '{spec.singular}' in request body")
    extra = sorted(set(body) - {spec.singular})
    if extra:
        raise HTTPBadRequest(f"Unrecognized attribute(s) '{', '.join(extra)}'")
    return [body[spec.singular]]


def parse_attrs(spec: Spec, data: Any, method: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise HTTPBadRequest(f"Invalid input for {spec.singular}: expected an object, got {_s(data)}")
    unknown = sorted(k for k in data if k not in spec.attrs and k not in spec.read_only)
    if unknown:
        raise HTTPBadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    out: dict[str, Any] = {}
    for k, v in data.items():
        a = spec.attrs.get(k)
        if method == "POST" and (a is None or not a.post):
            raise HTTPBadRequest(f"Attribute '{k}' not allowed in POST")
        if method == "PUT" and (a is None or not a.put):
            raise HTTPBadRequest(f"Cannot update read-only attribute {k}")
        out[k] = a.conv(k, v)
    if method == "POST":
        missing = [k for k, a in spec.attrs.items() if a.required and k not in data]
        if missing:
            raise HTTPBadRequest(f"Failed to parse request. Required attribute '{missing[0]}' not specified")
    if "project_id" in out and "tenant_id" in out and out["project_id"] != out["tenant_id"]:
        raise HTTPBadRequest("project_id and tenant_id do not match")
    return out


def openapi_body(spec: Spec, method: str) -> dict:
    """A loose JSON schema of the request body, for the OpenAPI document."""
    props = {k: {} for k, a in spec.attrs.items() if (a.post if method == "POST" else a.put)}
    inner = {"type": "object", "properties": props, "additionalProperties": False,
             "required": [k for k, a in spec.attrs.items() if a.required and method == "POST"]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": {spec.singular: inner}, "required": [spec.singular]}}}}}
