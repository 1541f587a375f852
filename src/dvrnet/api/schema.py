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
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from ..model.errors import InvalidInput
from ..model.resources import parse_cidr, parse_ip
from .errors import BadInput, HTTPBadRequest, MalformedRequestBody


def _s(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, str) else repr(v)


# ---- converters: (attr name, raw value) -> python value, each with its JSON schema -----------
class Conv:
    """A converter and the JSON schema of what it accepts (the canonical form: booleans also
    accept "true"/"false"/0/1 and integers their decimal string, as Neutron's converters do)."""

    def __init__(self, fn: Callable[[str, Any], Any], schema: dict):
        self.fn, self.schema = fn, schema

    def __call__(self, name: str, v: Any) -> Any:
        return self.fn(name, v)


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def string(max_len: int = 255) -> Conv:
    def conv(name: str, v: Any) -> str:
        if not isinstance(v, str):
            raise BadInput(name, f"{_s(v)} is not a valid string")
        if len(v) > max_len:
            raise BadInput(name, f"'{v[:20]}…' exceeds maximum length of {max_len}")
        return v
    return Conv(conv, {"type": "string", "maxLength": max_len})


def _boolean(name: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
        return v.lower() in ("true", "1")
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise BadInput(name, f"{_s(v)} cannot be converted to boolean")


boolean = Conv(_boolean, {"type": "boolean"})


def integer(lo: int, hi: int) -> Conv:
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
    return Conv(conv, {"type": "integer", "minimum": lo, "maximum": hi})


def _wrap(fn: Callable[[str, Any], Any], name: str, v: Any) -> Any:
    try:
        return fn(name, v)
    except InvalidInput as e:
        raise BadInput(name, e.reason) from None


def _ip(name: str, v: Any) -> IPv4Address:
    if not isinstance(v, str):
        raise BadInput(name, f"{_s(v)} is not a valid IP address")
    return _wrap(parse_ip, name, v)


IPV4 = {"type": "string", "format": "ipv4"}
ip = Conv(_ip, IPV4)
ip_or_none = Conv(lambda name, v: None if v is None else _ip(name, v), nullable(IPV4))


def _cidr(name: str, v: Any):
    if not isinstance(v, str):
        raise BadInput(name, f"{_s(v)} is not a valid IP subnet")
    return _wrap(parse_cidr, name, v)


CIDR = {"type": "string", "description": "an IPv4 CIDR, e.g. 192.0.2.0/24"}
cidr = Conv(_cidr, CIDR)


def list_of(item: Conv) -> Conv:
    def conv(name: str, v: Any) -> list:
        if not isinstance(v, list):
            raise BadInput(name, f"{_s(v)} is not a list")
        return [item(name, x) for x in v]
    return Conv(conv, {"type": "array", "items": item.schema})


def obj(keys: dict[str, Conv], required: tuple[str, ...] = (), min_keys: int = 0) -> Conv:
    def conv(name: str, v: Any) -> dict:
        if not isinstance(v, dict):
            raise BadInput(name, f"{_s(v)} is not a dictionary")
        unknown = sorted(set(v) - set(keys))
        if unknown:
            raise BadInput(name, f"unrecognized key(s) {', '.join(unknown)}; expected {', '.join(sorted(keys))}")
        for k in required:
            if k not in v:
                raise BadInput(name, f"'{k}' is required")
        if len(v) < min_keys:
            raise BadInput(name, f"needs at least one of {', '.join(sorted(keys))}")
        return {k: keys[k](f"{name}.{k}", x) for k, x in v.items()}
    schema: dict = {"type": "object", "properties": {k: c.schema for k, c in keys.items()},
                    "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if min_keys:
        schema["minProperties"] = min_keys
    return Conv(conv, schema)


_pool = obj({"start": ip, "end": ip}, ("start", "end"))
pools = Conv(lambda name, v: [(p["start"], p["end"]) for p in list_of(_pool)(name, v)],
             {"type": "array", "items": _pool.schema})
fixed_ips = list_of(obj({"subnet_id": string(), "ip_address": ip}, min_keys=1))
_gateway = obj({"network_id": string(), "enable_snat": boolean, "external_fixed_ips": fixed_ips}, ("network_id",))
gateway_info = Conv(lambda name, v: None if v is None or v == {} else _gateway(name, v),
                    {"anyOf": [_gateway.schema, {"type": "object", "maxProperties": 0}, {"type": "null"}]})
service_type = string()


def only(value: Any) -> Conv:
    """An attribute dvrnet shows but does not vary: only `value` is accepted."""
    def conv(name: str, v: Any) -> Any:
        if v != value:
            raise BadInput(name, f"dvrnet supports only {json.dumps(value)} here, not {_s(v)}")
        return v
    return Conv(conv, {"enum": [value]})


def _ip_version(name: str, v: Any) -> int:
    n = integer(0, 99)(name, v)
    if n != 4:
        raise BadInput(name, f"IP version {n} is not supported (dvrnet is IPv4-only)")
    return n


ip_version = Conv(_ip_version, {"enum": [4]})
HOST_MODES = ("dvr", "dvr_snat")


def _host_mode(name: str, v: Any) -> str:
    if v not in HOST_MODES:
        raise BadInput(name, f"{_s(v)} is not an agent mode; expected dvr or dvr_snat")
    return v


host_mode = Conv(_host_mode, {"enum": list(HOST_MODES)})
# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens, 63 characters
# a label, 253 in all. Host names become device ids and parts of the agent's paths, so nothing
# else (no slash, space or other character that needs quoting) gets in.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def _hostname(name: str, v: Any) -> str:
    s = string(253)(name, v)
    if not HOSTNAME_RE.fullmatch(s):
        raise BadInput(name, f"{_s(v)} is not a valid host name (RFC 1123: dot-separated labels of letters, "
                             f"digits and inner hyphens, at most 63 characters each)")
    return s


hostname = Conv(_hostname, {"type": "string", "maxLength": 253, "pattern": f"^{HOSTNAME_RE.pattern}$"})


# ---- resource specs -----------------------------------------------------------------------
@dataclass(frozen=True)
class Attr:
    conv: Conv
    post: bool = True
    put: bool = False
    required: bool = False
    admin_rule: str | None = None   # only admin may set it: the policy rule named in the 403


@dataclass(frozen=True)
class Spec:
    """A resource: the attributes a request may carry (`attrs`) and every field its GET shows
    (`shown`: name -> JSON schema of the value). What is shown but not in `attrs` is read-only
    (`id` among them: Neutron never lets a client choose it)."""
    singular: str
    collection: str
    attrs: dict[str, Attr]
    shown: dict[str, dict]
    kind: str = ""      # the NotFound kind ("Network", ...) of an unknown id or marker
    key: str = "id"     # the field that identifies one item (markers name it)

    @property
    def read_only(self) -> frozenset[str]:
        return frozenset(self.shown) - frozenset(self.attrs)

    @property
    def sort_keys(self) -> tuple[str, ...]:
        """The fields with scalar values (Neutron sorts by columns, never by lists or objects)."""
        return tuple(k for k, sch in self.shown.items() if _scalar(sch))


def _scalar(schema: dict) -> bool:
    if "anyOf" in schema:
        return all(_scalar(s) for s in schema["anyOf"])
    if "enum" in schema:
        return all(v is None or isinstance(v, (str, int, bool)) for v in schema["enum"])
    return schema.get("type") in ("string", "integer", "boolean", "null")


# JSON schemas of what GET shows
STR, INT, BOOL, NULL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "null"}
NSTR = nullable(STR)
STRS = {"type": "array", "items": STR}
EMPTY_LIST = {"type": "array", "maxItems": 0}
EMPTY_OBJ = {"type": "object", "maxProperties": 0}
FIXED_IPS = {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                        "required": ["subnet_id", "ip_address"],
                                        "properties": {"subnet_id": STR, "ip_address": IPV4}}}
_STD = {"project_id": STR, "tenant_id": STR, "description": STR, "tags": STRS, "created_at": STR,
        "updated_at": STR, "revision_number": INT}
_PROJECT = {"project_id": Attr(string()), "tenant_id": Attr(string())}

NETWORK = Spec("network", "networks", {
    "name": Attr(string(), put=True), **_PROJECT,
    "router:external": Attr(boolean, put=True, admin_rule="create_network:router:external"),
    "shared": Attr(boolean, admin_rule="create_network:shared"),
    "mtu": Attr(integer(68, 65535), put=True),
    "admin_state_up": Attr(only(True), put=True),
    "description": Attr(string(), put=True),
    "availability_zone_hints": Attr(only([])),
    "port_security_enabled": Attr(only(False), put=True),
}, {"id": STR, "name": STR, "status": {"enum": ["ACTIVE"]}, "admin_state_up": BOOL, "subnets": STRS,
    "shared": BOOL, "router:external": BOOL, "mtu": INT, "port_security_enabled": BOOL,
    "availability_zones": EMPTY_LIST, "availability_zone_hints": EMPTY_LIST, "ipv4_address_scope": NULL,
    "ipv6_address_scope": NULL, "l2_adjacency": BOOL, **_STD}, kind="Network")

SUBNET = Spec("subnet", "subnets", {
    "name": Attr(string(), put=True), **_PROJECT,
    "network_id": Attr(string(64), required=True),
    "cidr": Attr(cidr, required=True),
    "ip_version": Attr(ip_version),
    "gateway_ip": Attr(ip_or_none, put=True),
    "allocation_pools": Attr(pools, put=True),
    "service_types": Attr(list_of(service_type), put=True, admin_rule="create_subnet:service_types"),
    "enable_dhcp": Attr(boolean),
    "dns_nameservers": Attr(list_of(Conv(lambda n, v: str(_ip(n, v)), IPV4)), put=True),
    "host_routes": Attr(only([]), put=True),
    "description": Attr(string(), put=True),
    "subnetpool_id": Attr(only(None)), "ipv6_ra_mode": Attr(only(None)), "ipv6_address_mode": Attr(only(None)),
    "use_default_subnetpool": Attr(only(False)),
}, {"id": STR, "name": STR, "network_id": STR, "cidr": CIDR, "ip_version": {"enum": [4]},
    "gateway_ip": nullable(IPV4), "enable_dhcp": BOOL,
    "allocation_pools": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                    "required": ["start", "end"],
                                                    "properties": {"start": IPV4, "end": IPV4}}},
    "dns_nameservers": {"type": "array", "items": IPV4}, "host_routes": EMPTY_LIST, "service_types": STRS,
    "ipv6_ra_mode": NULL, "ipv6_address_mode": NULL, "subnetpool_id": NULL, "segment_id": NULL, **_STD},
    kind="Subnet")

ROUTER = Spec("router", "routers", {
    "name": Attr(string(), put=True), **_PROJECT,
    "external_gateway_info": Attr(gateway_info, put=True),
    "distributed": Attr(boolean, admin_rule="create_router:distributed"),
    "ha": Attr(only(False)),
    "admin_state_up": Attr(only(True), put=True),
    "description": Attr(string(), put=True),
    "routes": Attr(only([]), post=False, put=True),
    "availability_zone_hints": Attr(only([])),
}, {"id": STR, "name": STR, "status": {"enum": ["ACTIVE"]}, "admin_state_up": BOOL,
    "external_gateway_info": nullable({"type": "object", "additionalProperties": False,
                                       "required": ["network_id", "enable_snat", "external_fixed_ips"],
                                       "properties": {"network_id": STR, "enable_snat": BOOL,
                                                      "external_fixed_ips": FIXED_IPS}}),
    "routes": EMPTY_LIST, "distributed": BOOL, "ha": {"enum": [False]}, "availability_zones": EMPTY_LIST,
    "availability_zone_hints": EMPTY_LIST, "flavor_id": NULL, **_STD}, kind="Router")

PORT = Spec("port", "ports", {
    "name": Attr(string(), put=True), **_PROJECT,
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
    # dvrnet-connection-limit: new connections the port's fixed IPs may hold through their router
    # (null: the agent's default, 0: no per-VM limit); admin only, like binding:host_id.
    "connection_limit": Attr(Conv(lambda n, v: None if v is None else integer(0, 2**31 - 1)(n, v),
                                  nullable(integer(0, 2**31 - 1).schema)), put=True,
                             admin_rule="create_port:connection_limit"),
}, {"id": STR, "name": STR, "network_id": STR, "mac_address": STR, "fixed_ips": FIXED_IPS, "device_id": STR,
    "device_owner": STR, "binding:host_id": STR, "binding:vnic_type": {"enum": ["normal"]},
    "binding:vif_type": {"enum": ["ovs", "unbound"]}, "binding:vif_details": EMPTY_OBJ,
    "binding:profile": EMPTY_OBJ, "admin_state_up": BOOL, "status": {"enum": ["ACTIVE", "DOWN", "ERROR"]},
    "security_groups": EMPTY_LIST, "port_security_enabled": BOOL, "allowed_address_pairs": EMPTY_LIST,
    "extra_dhcp_opts": EMPTY_LIST, "connection_limit": nullable(INT), **_STD}, kind="Port")

FLOATINGIP = Spec("floatingip", "floatingips", {
    **_PROJECT,
    "floating_network_id": Attr(string(64), required=True),
    "subnet_id": Attr(string(64)),
    "floating_ip_address": Attr(ip, admin_rule="create_floatingip:floating_ip_address"),
    "port_id": Attr(Conv(lambda n, v: None if v is None else string(64)(n, v), nullable(string(64).schema)), put=True),
    "fixed_ip_address": Attr(ip_or_none, put=True),
    "description": Attr(string(), put=True),
}, {"id": STR, "floating_ip_address": IPV4, "floating_network_id": STR, "subnet_id": STR, "port_id": NSTR,
    "fixed_ip_address": nullable(IPV4), "router_id": NSTR, "status": {"enum": ["ACTIVE", "DOWN", "ERROR"]},
    "port_details": NULL, "qos_policy_id": NULL, **_STD}, kind="Floating IP")

HOST = Spec("host", "hosts", {
    "name": Attr(hostname, required=True),
    "mode": Attr(host_mode),
}, {"name": STR, "mode": {"enum": list(HOST_MODES)}, "agent_id": STR, "created_at": STR, "heartbeat_at": NSTR,
    "alive": BOOL}, kind="Host", key="name")

AGENT = Spec("agent", "agents", {}, {
    "id": STR, "agent_type": {"enum": ["L3 agent"]}, "binary": STR, "host": STR, "topic": STR, "alive": BOOL,
    "admin_state_up": BOOL, "availability_zone": STR,
    "configurations": {"type": "object", "properties": {"agent_mode": {"enum": list(HOST_MODES)}}},
    "created_at": STR, "started_at": STR, "heartbeat_timestamp": NSTR, "description": NULL,
    "resources_synced": NULL}, kind="Agent")

SPECS = {s.collection: s for s in (NETWORK, SUBNET, ROUTER, PORT, FLOATINGIP)}


MAX_DEPTH = 32     # a Neutron body nests 4 deep; deeper is refused before anything walks it


def parse_json(raw: bytes) -> Any:
    """The request body as JSON; 400 MalformedRequestBody for an empty, invalid or too deeply
    nested one (the parser's own recursion limit included)."""
    if not raw.strip():
        raise MalformedRequestBody("the body is empty")
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise MalformedRequestBody(f"nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedRequestBody(f"not valid JSON ({e})") from None
    todo = [(doc, 1)]
    while todo:
        v, depth = todo.pop()
        if isinstance(v, (dict, list)):
            if depth > MAX_DEPTH:
                raise MalformedRequestBody(f"nested deeper than {MAX_DEPTH} levels")
            todo.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return doc


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
