"""Neutron's resource tags on networks (the `standard-attr-tag` extension), as the real client
uses them: `openstack network set --tag T` replaces the list (`PUT .../tags {"tags": [...]}`),
`openstack network list --tags T` filters (`?tags=`, `tags-any`, `not-tags`, `not-tags-any`:
comma-separated; handled in `query.py`).

    GET    /v2.0/networks/{id}/tags          200 {"tags": [...]}
    PUT    /v2.0/networks/{id}/tags          200 {"tags": [...]}   (replaces them all)
    POST   /v2.0/networks/{id}/tags          201 {"tags": [...]}   (adds these)
    DELETE /v2.0/networks/{id}/tags          204
    GET    /v2.0/networks/{id}/tags/{tag}    204, or 404 TagNotFound
    PUT    /v2.0/networks/{id}/tags/{tag}    201 (adding one already there is fine)
    DELETE /v2.0/networks/{id}/tags/{tag}    204, or 404 TagNotFound

A tag is a non-empty string of at most 60 characters (`model.resources.check_tag`). Changing
tags is an update of the network: its owner or an admin, one write, one revision. dvrnet reads
one tag itself: `dvrnet:routed` puts an external network in routed mode (docs/routed-mode.md).
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ..model.errors import DvrnetError
from ..model.resources import MAX_TAG_LEN, check_tag
from . import openapi as doc
from . import policy
from .auth import Auth
from .schema import STRS, parse_json
from .service import Service


class TagNotFound(DvrnetError):
    type = "TagNotFound"
    status = 404

    def __init__(self, tag: str, net_id: str):
        super().__init__(f"Tag {tag} could not be found for network {net_id}.")


def _tag_list(body: Any) -> list[str]:
    from .errors import BadInput
    if not isinstance(body, dict) or set(body) != {"tags"} or not isinstance(body["tags"], list):
        raise BadInput("tags", 'the body must be {"tags": [...]}')
    return [check_tag(t) for t in body["tags"]]


TAGS = {"type": "object", "required": ["tags"], "additionalProperties": False, "properties": {"tags": STRS}}
TAG_BODY = {"type": "object", "required": ["tags"], "additionalProperties": False, "properties": {"tags": {
    "type": "array", "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LEN}}}}


def routes(svc: Service, auth: Auth) -> APIRouter:
    r = APIRouter(tags=["neutron"])
    base = "/v2.0/networks/{id_}/tags"

    def _set(ctx, id_: str, fn) -> list[str]:
        def op(txn):
            net = policy.get_owned(ctx, txn.cloud, "networks", id_, "update")
            tags = fn(list(net.tags))
            txn.ws.update_network(id_, tags=tags)
            return id_
        _, state = svc.write(op)
        return list(state.cloud.networks[id_].tags)

    @r.get(base, name="list_network_tags", summary="Tags of a network", openapi_extra=doc.op(200, TAGS, (404,)))
    async def list_(id_: str, request: Request):
        ctx = auth.context(request)
        state = await run_in_threadpool(svc.state)
        return {"tags": list(policy.get(ctx, state.cloud, "networks", id_).tags)}

    @r.put(base, name="replace_network_tags", summary="Replace the tags of a network",
           openapi_extra=doc.op(200, TAGS, (403, 404), body=TAG_BODY))
    async def replace(id_: str, request: Request):
        ctx = auth.context(request)
        tags = _tag_list(parse_json(await request.body()))
        return {"tags": await run_in_threadpool(_set, ctx, id_, lambda _old: tags)}

    @r.post(base, status_code=201, name="add_network_tags", summary="Add tags to a network",
            openapi_extra=doc.op(201, TAGS, (403, 404), body=TAG_BODY))
    async def add(id_: str, request: Request):
        ctx = auth.context(request)
        tags = _tag_list(parse_json(await request.body()))
        return {"tags": await run_in_threadpool(_set, ctx, id_, lambda old: old + tags)}

    @r.delete(base, status_code=204, name="remove_network_tags", summary="Remove every tag of a network",
              openapi_extra=doc.op(204, None, (403, 404)))
    async def clear(id_: str, request: Request):
        ctx = auth.context(request)
        await run_in_threadpool(_set, ctx, id_, lambda _old: [])
        return Response(status_code=204)

    @r.get(base + "/{tag}", status_code=204, name="check_network_tag", summary="Whether a network has a tag",
           openapi_extra=doc.op(204, None, (404,)))
    async def check(id_: str, tag: str, request: Request):
        ctx = auth.context(request)
        state = await run_in_threadpool(svc.state)
        if tag not in policy.get(ctx, state.cloud, "networks", id_).tags:
            raise TagNotFound(tag, id_)
        return Response(status_code=204)

    @r.put(base + "/{tag}", status_code=201, name="add_network_tag", summary="Add one tag to a network",
           openapi_extra=doc.op(201, None, (400, 403, 404)))
    async def add_one(id_: str, tag: str, request: Request):
        ctx = auth.context(request)
        check_tag(tag)
        await run_in_threadpool(_set, ctx, id_, lambda old: old + [tag])
        return Response(status_code=201)

    @r.delete(base + "/{tag}", status_code=204, name="remove_network_tag", summary="Remove one tag of a network",
              openapi_extra=doc.op(204, None, (403, 404)))
    async def remove_one(id_: str, tag: str, request: Request):
        ctx = auth.context(request)

        def drop(old: list[str]) -> list[str]:
            if tag not in old:
                raise TagNotFound(tag, id_)
            return [t for t in old if t != tag]
        await run_in_threadpool(_set, ctx, id_, drop)
        return Response(status_code=204)

    return r
