"""Lossless JSON codec for `Cloud` snapshots: what the server sends agents and what they decode.

Shape: `{"revision": N, "networks": [...], "subnets": [...], "routers": [...], "ports": [...],
"floatingips": [...], "hosts": [...]}`; each resource is an object with exactly its dataclass
fields. Addresses and CIDRs are strings, enums their value, nested values (pools, fixed IPs, the
router gateway) objects, tuples lists. Lists are sorted by id (hosts by name) so equal clouds encode
to equal JSON.

Invariants:
- `cloud_from_json(cloud_to_json(c)) == c` for every Cloud (round-trip tested);
- the codec is driven by the dataclasses' type hints, so a field added to the model is carried
  without touching this file; a type it cannot carry raises `TypeError` at encode time;
- decoding checks types and raises `ValueError` naming the resource and field; it does not run
  `Cloud.validate` (the caller decides).
"""
from __future__ import annotations

import dataclasses
import enum
import ipaddress
import types
import typing
from functools import cache
from typing import Any

from ..model import Cloud, FloatingIP, Host, Network, Port, Router, Subnet

COLLECTIONS: dict[str, type] = {
    "networks": Network,
    "subnets": Subnet,
    "routers": Router,
    "ports": Port,
    "floatingips": FloatingIP,
    "hosts": Host,
}


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def encode_value(value: Any, tp: Any) -> Any:
    optional, inner = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise TypeError(f"None for non-optional type {tp}")
    tp = inner
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, *_rest) = typing.get_args(tp)
        return [encode_value(v, item_tp) for v in value]
    if dataclasses.is_dataclass(tp):
        return encode_resource(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return value.value
    if tp in (ipaddress.IPv4Address, ipaddress.IPv4Network):
        return str(value)
    if tp in (str, int, bool):
        return value
    if tp is typing.Any or typing.get_origin(tp) is typing.Mapping:
        raise TypeError(f"cannot encode {tp}")
    raise TypeError(f"cannot encode type {tp}")


def encode_resource(obj: Any) -> dict[str, Any]:
    hints = _hints(type(obj))
    return {f.name: encode_value(getattr(obj, f.name), hints[f.name]) for f in dataclasses.fields(obj)}


def _decode_value(value: Any, tp: Any, where: str) -> Any:
    optional, inner = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{where}: null is not allowed")
    tp = inner
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        (item_tp, *_rest) = typing.get_args(tp)
        return tuple(_decode_value(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return decode_resource(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not a valid {tp.__name__}") from None
    if tp is ipaddress.IPv4Address:
        try:
            return ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not an IPv4 address") from None
    if tp is ipaddress.IPv4Network:
        try:
            return ipaddress.IPv4Network(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not an IPv4 network") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected a boolean, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    raise ValueError(f"{where}: cannot decode type {tp}")


def decode_resource(cls: type, data: Any, where: str = "") -> Any:
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")  # noqa: TRY004 - malformed input, callers catch ValueError
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    kwargs = {k: _decode_value(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def cloud_to_json(cloud: Cloud) -> dict[str, Any]:
    out: dict[str, Any] = {"revision": cloud.revision}
    for coll in COLLECTIONS:
        items = getattr(cloud, coll)
        out[coll] = [encode_resource(items[k]) for k in sorted(items)]
    return out


def cloud_from_json(data: dict[str, Any]) -> Cloud:
    if not isinstance(data, dict):
        raise ValueError(f"cloud: expected an object, got {type(data).__name__}")  # noqa: TRY004 - malformed input, callers catch ValueError
    unknown = set(data) - set(COLLECTIONS) - {"revision"}
    if unknown:
        raise ValueError(f"cloud: unknown key(s) {', '.join(sorted(unknown))}")
    revision = data.get("revision", 0)
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise ValueError(f"cloud.revision: expected an integer, got {revision!r}")  # noqa: TRY004 - malformed input, callers catch ValueError
    kwargs: dict[str, Any] = {}
    for coll, cls in COLLECTIONS.items():
        items = data.get(coll, [])
        if not isinstance(items, list):
            raise ValueError(f"cloud.{coll}: expected a list")  # noqa: TRY004 - malformed input, callers catch ValueError
        kwargs[coll] = [decode_resource(cls, d, f"{coll}[{i}]") for i, d in enumerate(items)]
    return Cloud.of(revision=revision, **kwargs)
