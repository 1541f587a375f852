"""Discovery documents: `GET /` (versions), `GET /v2.0/` (resources), `GET /v2.0/extensions[/<alias>]`.

`GET /` needs no token (the client sends none there) and its `rel=self` href is where the client
sends every later call. Only extensions dvrnet implements are advertised; in particular never
`external-gateway-multihoming` (the client would switch to the update_external_gateways API).
Unknown aliases are 404 `ExtensionNotFound`.
"""
from __future__ import annotations

from fastapi import APIRouter, Request

from . import openapi as doc
from .auth import Auth
from .errors import ExtensionNotFound
from .schema import SPECS, STR

UPDATED = "2026-01-01T00:00:00-00:00"
EXTENSIONS = {
    "external-net": ("Neutron external network", "Adds external network attribute to network resource."),
    "router": ("Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 networks and gateway."),
    "ext-gw-mode": ("Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway."),
    "dvr": ("Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers."),
    "subnet-service-types": ("Subnet service types", "Provides ability to set the subnet service_types field."),
    "binding": ("Port Binding", "Expose port bindings of a virtual port to external application."),
    "agent": ("agent", "The agent management extension."),
    "dvrnet-connection-limit": ("Port connection limit", ("Adds connection_limit to ports: the new connections "
                                "the port's fixed IPs may hold through their router (null: the agent's default).")),
    "project-id": ("project_id field enabled", "Extension that indicates that project_id field is enabled."),
    "standard-attr-description": ("standard-attr-description", "Extension to add descriptions to standard attributes."),
    "standard-attr-revisions": ("Resource revision numbers", "This extension will display the revision number of neutron resources."),
    "standard-attr-tag": ("Tag support for resources with standard attribute: network", "Enables to set tag on networks (dvrnet reads `dvrnet:routed`)."),
    "standard-attr-timestamp": ("Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."),
}


def _ext(alias: str) -> dict:
    name, desc = EXTENSIONS[alias]
    return {"alias": alias, "name": name, "description": desc, "updated": UPDATED, "links": []}


_LINK = {"type": "object", "required": ["href", "rel"], "additionalProperties": False,
         "properties": {"href": STR, "rel": {"enum": ["self"]}}}
VERSIONS = {"type": "object", "required": ["versions"], "additionalProperties": False, "properties": {"versions": {
    "type": "array", "items": {"type": "object", "required": ["id", "status", "links"], "additionalProperties": False,
                               "properties": {"id": STR, "status": STR, "links": {"type": "array", "items": _LINK}}}}}}
RESOURCES = {"type": "object", "required": ["resources"], "additionalProperties": False, "properties": {"resources": {
    "type": "array", "items": {"type": "object", "required": ["name", "collection", "links"], "additionalProperties": False,
                               "properties": {"name": STR, "collection": STR,
                                              "links": {"type": "array", "items": _LINK}}}}}}
EXTENSION = {"type": "object", "required": ["alias", "name", "description", "updated", "links"],
             "additionalProperties": False, "properties": {"alias": STR, "name": STR, "description": STR, "updated": STR,
                                                           "links": {"type": "array", "maxItems": 0}}}


def routes(auth: Auth) -> APIRouter:
    r = APIRouter(tags=["discovery"])

    @r.get("/", summary="API versions (no token needed)", openapi_extra=doc.op(200, VERSIONS, auth=False, db=False))
    async def versions(request: Request):
        href = str(request.base_url).rstrip("/") + "/v2.0/"
        return {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"href": href, "rel": "self"}]}]}

    async def resources(request: Request):
        auth.context(request)
        base = str(request.base_url).rstrip("/") + "/v2.0/"
        return {"resources": [{"name": s.singular, "collection": s.collection,
                               "links": [{"href": base + s.collection, "rel": "self"}]} for s in SPECS.values()]}
    r.add_api_route("/v2.0", resources, methods=["GET"], summary="Resources of API v2.0",
                    openapi_extra=doc.op(200, RESOURCES, db=False))
    r.add_api_route("/v2.0/", resources, methods=["GET"], include_in_schema=False)

    @r.get("/v2.0/extensions", summary="Supported extensions",
           openapi_extra=doc.op(200, {"type": "object", "required": ["extensions"], "additionalProperties": False,
                                      "properties": {"extensions": {"type": "array", "items": EXTENSION}}}, db=False))
    async def extensions(request: Request):
        auth.context(request)
        return {"extensions": [_ext(a) for a in sorted(EXTENSIONS)]}

    @r.get("/v2.0/extensions/{alias}", summary="One extension (404 when not supported)",
           openapi_extra=doc.op(200, {"type": "object", "required": ["extension"], "additionalProperties": False,
                                      "properties": {"extension": EXTENSION}}, (404,), db=False))
    async def extension(alias: str, request: Request):
        auth.context(request)
        if alias not in EXTENSIONS:
            raise ExtensionNotFound(alias)
        return {"extension": _ext(alias)}

    return r
