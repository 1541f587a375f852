"""The OpenAPI document (`/openapi.json`): what the server really does, built from the schemas it
validates with, so that clients and fuzzers can rely on it.

- request bodies: the JSON schemas of `schema.Spec` attributes' converters (what `parse_attrs`
  accepts), POST single or bulk, PUT; router actions, host registration and tags likewise;
- success responses: the schema of what GET shows (`Spec.shown`; no field is required, since
  `fields=` may leave any out), lists with their `<collection>_links`; the agents' views in the
  wire codec's shape (`cloud_schema`, derived from the model's dataclasses as the codec is);
- error responses: every status the operation can answer, each with Neutron's error body
  (`NeutronError`): 400 bad body or query, 401 no/unknown token (token mode), 403 policy, 404,
  409 conflict, 413 body over 112 KiB, 503 database unavailable (with Retry-After). FastAPI's own
  422 and its validation schemas are removed: such errors are answered as 400;
- list operations document their query parameters: a filter per shown field, `fields`,
  `sort_key` (one of `Spec.sort_keys`), `sort_dir`, `limit`, `marker`, `page_reverse`;
- every response carries `X-Openstack-Request-Id` (documented as a required header).
A route declares its operation with `op(...)` as FastAPI's `openapi_extra`; `document(app)`
assembles the whole document once. tests/api/test_openapi_fuzz.py fuzzes every operation in it
and checks the server against it.
"""
from __future__ import annotations

import dataclasses
import enum
import ipaddress
import types
import typing
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..wire.codec import COLLECTIONS
from .edge import MAX_BODY
from .schema import INT, STR, Spec

NEUTRON_ERROR = {
    "type": "object", "required": ["NeutronError"], "additionalProperties": False,
    "properties": {"NeutronError": {
        "type": "object", "required": ["type", "message", "detail"], "additionalProperties": False,
        "properties": {"type": STR, "message": STR, "detail": STR}}}}
ERRORS = {
    400: "Bad request: a malformed or too deeply nested body, an invalid attribute, query parameter or value",
    401: "No token or an unknown one (token mode)",
    403: "Not allowed by policy (PolicyNotAuthorized)",
    404: "Not found, or not visible to the project (also an unknown marker)",
    409: "Conflict with the current state (in use, already allocated, ...)",
    413: f"The body is larger than {MAX_BODY} bytes (112 KiB, Neutron's limit)",
    503: "The database is unavailable; retry after the Retry-After seconds",
}
REQUEST_ID = {"X-Openstack-Request-Id": {"required": True, "description": "req-<uuid>, also in the server's log",
                                         "schema": {"type": "string", "pattern": "^req-[0-9a-f-]{36}$"}}}
RETRY_AFTER = {"Retry-After": {"required": True, "description": "seconds to wait before retrying",
                               "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
NO_BODY = "x-dvrnet-no-body"
LINKS = {"type": "array", "items": {"type": "object", "required": ["rel", "href"], "additionalProperties": False,
                                    "properties": {"rel": {"enum": ["next", "previous"]}, "href": STR}}}


def op(status: int | tuple[int, ...], schema: dict | None = None, errors: Iterable[int] = (), *,
       body: dict | None = None, query: list[dict] | None = None, auth: bool = True, db: bool = True) -> dict:
    """The `openapi_extra` of one operation: its success status(es) and schema, its error
    statuses (plus 401 unless `auth=False`, 503 unless `db=False`, 400 and 413 with a body), its
    request body and extra query parameters."""
    responses: dict[str, Any] = {}
    for s in (status,) if isinstance(status, int) else status:
        r: dict[str, Any] = {"description": "Success", "headers": REQUEST_ID}
        if schema is not None:
            r["content"] = {"application/json": {"schema": schema}}
        else:
            r[NO_BODY] = True       # FastAPI documents a JSON body for every non-204 status
        responses[str(s)] = r
    codes = set(errors) | ({401} if auth else set()) | ({503} if db else set()) | ({400, 413} if body else set())
    for c in sorted(codes):
        responses[str(c)] = {"description": ERRORS[c], "headers": {**REQUEST_ID, **(RETRY_AFTER if c == 503 else {})},
                             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NeutronError"}}}}
    extra: dict[str, Any] = {"responses": responses}
    if body is not None:
        extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if query:
        extra["parameters"] = query
    return extra


def _q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema,
            "style": "form", "explode": True}


# ---- resources ------------------------------------------------------------------------------
def item(spec: Spec) -> dict:
    return {"type": "object", "properties": spec.shown, "additionalProperties": False}


def one(spec: Spec) -> dict:
    return {"type": "object", "required": [spec.singular], "additionalProperties": False,
            "properties": {spec.singular: item(spec)}}


def many(spec: Spec) -> dict:
    return {"type": "object", "required": [spec.collection], "additionalProperties": False,
            "properties": {spec.collection: {"type": "array", "items": item(spec)}, f"{spec.collection}_links": LINKS}}


def fields_param(spec: Spec) -> dict:
    return _q("fields", {"type": "array", "items": {"enum": sorted(spec.shown)}}, "only these fields")


def list_params(spec: Spec) -> list[dict]:
    """Every query parameter `query.apply` reads for SPEC's list."""
    out = [fields_param(spec),
           _q("sort_key", {"type": "array", "items": {"enum": list(spec.sort_keys)}}, "sort by (paired with sort_dir)"),
           _q("sort_dir", {"type": "array", "items": {"enum": ["asc", "desc"]}}, "asc or desc, one per sort_key"),
           _q("limit", {"type": "integer", "minimum": 0}, "page size (0: no paging)"),
           _q("marker", STR, "the last item of the previous page (with limit)"),
           _q("page_reverse", {"type": "boolean"}, "page backwards from the marker")]
    out += [_q(k, {"type": "array", "items": STR}, f"only items whose {k} is one of these")
            for k in spec.shown if k not in ("fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse")]
    if "tags" in spec.shown:
        out += [_q(k, STR, f"comma-separated tags: {what}") for k, what in
                (("tags-any", "any of them"), ("not-tags", "not all of them"), ("not-tags-any", "none of them"))]
    return out


def _attrs(spec: Spec, method: str) -> dict:
    attrs = {k: a for k, a in spec.attrs.items() if (a.post if method == "POST" else a.put)}
    inner: dict[str, Any] = {"type": "object", "additionalProperties": False,
                             "properties": {k: a.conv.schema for k, a in attrs.items()}}
    required = [k for k, a in attrs.items() if a.required and method == "POST"]
    if required:
        inner["required"] = required
    return inner


def create_body(spec: Spec, bulk: bool = True) -> dict:
    inner = _attrs(spec, "POST")
    single = {"type": "object", "required": [spec.singular], "additionalProperties": False,
              "properties": {spec.singular: inner}}
    if not bulk:
        return single
    return {"oneOf": [single, {"type": "object", "required": [spec.collection], "additionalProperties": False,
                               "properties": {spec.collection: {"type": "array", "minItems": 1, "items": inner}}}]}


def update_body(spec: Spec) -> dict:
    return {"type": "object", "required": [spec.singular], "additionalProperties": False,
            "properties": {spec.singular: _attrs(spec, "PUT")}}


# ---- the wire codec's cloud, from the model's dataclasses (as the codec reads them) ----------
def _type_schema(tp: Any) -> dict:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _type_schema(args[0])
        return {"anyOf": [inner, {"type": "null"}]} if len(args) == 1 else {}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(typing.get_args(tp)[0])}
    if dataclasses.is_dataclass(tp):
        return dataclass_schema(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if tp is ipaddress.IPv4Address:
        return {"type": "string", "format": "ipv4"}
    return {str: STR, int: INT, bool: {"type": "boolean"}, ipaddress.IPv4Network: STR}.get(tp, {})


def dataclass_schema(cls: type) -> dict:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    return {"type": "object", "additionalProperties": False, "required": [f.name for f in fields],
            "properties": {f.name: _type_schema(hints[f.name]) for f in fields}}


def cloud_schema() -> dict:
    props: dict[str, Any] = {"revision": INT}
    props.update({coll: {"type": "array", "items": dataclass_schema(cls)} for coll, cls in COLLECTIONS.items()})
    return {"type": "object", "additionalProperties": False, "properties": props}


def changes_schema() -> dict:
    """What GET /v2.0/dvrnet/hosts/{name}/changes answers: a snapshot (`resync`) or a delta."""
    resources = {coll: {"type": "array", "items": dataclass_schema(cls)} for coll, cls in COLLECTIONS.items()}
    ids = {coll: {"type": "array", "items": STR} for coll in COLLECTIONS}
    return {"type": "object", "additionalProperties": False,
            "required": ["version", "host", "database", "revision", "cursor", "resync"],
            "properties": {"version": INT, "host": STR, "database": STR, "revision": INT, "cursor": STR,
                           "resync": {"type": "boolean"}, "reason": STR, "cloud": cloud_schema(),
                           "upserts": {"type": "object", "additionalProperties": False, "properties": resources},
                           "deletes": {"type": "object", "additionalProperties": False, "properties": ids}}}


# ---- the whole document ---------------------------------------------------------------------
def document(app: FastAPI) -> dict:
    """FastAPI's document of the routes, with each route's `op(...)` merged in, FastAPI's 422
    and validation schemas removed, and NeutronError added."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for ops in doc.get("paths", {}).values():
        for o in ops.values():
            o.get("responses", {}).pop("422", None)
            for r in o.get("responses", {}).values():
                if r.pop(NO_BODY, False):
                    r.pop("content", None)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["NeutronError"] = NEUTRON_ERROR
    app.openapi_schema = doc
    return doc
