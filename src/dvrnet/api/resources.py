"""HTTP routes of the Neutron v2.0 collections: networks, subnets, routers, ports, floatingips.

Per collection: `GET /v2.0/<c>` (filters, fields, sort, paging), `POST` (single or bulk, 201),
`GET/PUT/DELETE /v2.0/<c>/<id>` (204 on delete), plus the router actions
`PUT /v2.0/routers/<id>/add_router_interface` and `.../remove_router_interface` with the bare
`{"subnet_id": ...}` / `{"port_id": ...}` body. Handlers are async; everything that touches the
database or walks the cloud runs in the thread pool. A bulk POST is one transaction. The answer
is rendered inside the write's transaction, so a request that fails did not commit.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from . import actions, policy, query, render
from . import openapi as doc
from .actions import check_admin_attrs
from .auth import Auth
from .schema import NSTR, SPECS, STR, STRS, Spec, parse_attrs, parse_json, resource_bodies
from .service import Service


def _listing(svc: Service, ctx, kind: str, params: list[tuple[str, str]], url: str) -> dict[str, Any]:
    state = svc.state()
    cloud = state.cloud
    objs = [o for o in render.items(cloud, kind) if policy.visible(ctx, cloud, kind, o)]
    rendered = [render.render(state, kind, o) for o in objs]
    rendered.sort(key=lambda d: (d.get("created_at") or "", d["id"]))
    return query.apply(rendered, params, SPECS[kind], url)


def _add_collection(r: APIRouter, svc: Service, auth: Auth, spec: Spec) -> None:
    kind, one = spec.collection, spec.singular
    base = f"/v2.0/{kind}"
    bulk = {"type": "object", "required": [kind], "additionalProperties": False,
            "properties": {kind: {"type": "array", "items": doc.item(spec)}}}

    @r.get(base, summary=f"List {kind}", name=f"list_{kind}",
           openapi_extra=doc.op(200, doc.many(spec), (400, 404), query=doc.list_params(spec)))
    async def list_(request: Request):
        ctx = auth.context(request)
        params = list(request.query_params.multi_items())
        return await run_in_threadpool(_listing, svc, ctx, kind, params, str(request.url.replace(query="")))

    @r.get(base + "/{id_}", summary=f"Show a {one}", name=f"show_{one}",
           openapi_extra=doc.op(200, doc.one(spec), (404,), query=[doc.fields_param(spec)]))
    async def show(id_: str, request: Request):
        ctx = auth.context(request)
        state = await run_in_threadpool(svc.state)
        obj = policy.get(ctx, state.cloud, kind, id_)
        return {one: query.project(render.render(state, kind, obj), list(request.query_params.multi_items()))}

    @r.post(base, status_code=201, summary=f"Create a {one} (or several: {{\"{kind}\": [...]}})",
            name=f"create_{one}", openapi_extra=doc.op(201, {"oneOf": [doc.one(spec), bulk]}, (403, 404, 409),
                                                       body=doc.create_body(spec)))
    async def create(request: Request):
        ctx = auth.context(request)
        body = parse_json(await request.body())
        bulk = isinstance(body, dict) and kind in body
        items = [parse_attrs(spec, d, "POST") for d in resource_bodies(spec, body, allow_bulk=True)]
        for a in items:
            check_admin_attrs(ctx, spec, a, "POST")

        def op(txn):
            return [actions.CREATE[kind](ctx, txn, a) for a in items]

        def answer(ids, state):
            objs = [render.render(state, kind, getattr(state.cloud, kind)[i]) for i in ids]
            return {kind: objs} if bulk else {one: objs[0]}
        body, _ = await run_in_threadpool(svc.write, op, answer)
        return JSONResponse(body, status_code=201)

    @r.put(base + "/{id_}", summary=f"Update a {one}", name=f"update_{one}",
           openapi_extra=doc.op(200, doc.one(spec), (403, 404, 409), body=doc.update_body(spec)))
    async def update(id_: str, request: Request):
        ctx = auth.context(request)
        body = parse_json(await request.body())
        (data,) = resource_bodies(spec, body, allow_bulk=False)
        a = parse_attrs(spec, data, "PUT")
        check_admin_attrs(ctx, spec, a, "PUT")
        body, _ = await run_in_threadpool(
            svc.write, lambda txn: actions.UPDATE[kind](ctx, txn, id_, a),
            lambda _r, state: {one: render.render(state, kind, getattr(state.cloud, kind)[id_])})
        return JSONResponse(body)

    @r.delete(base + "/{id_}", status_code=204, summary=f"Delete a {one}", name=f"delete_{one}",
              openapi_extra=doc.op(204, None, (403, 404, 409)))
    async def delete(id_: str, request: Request):
        ctx = auth.context(request)
        await run_in_threadpool(svc.write, lambda txn: actions.DELETE[kind](ctx, txn, id_))
        return Response(status_code=204)


def _add_router_actions(r: APIRouter, svc: Service, auth: Auth) -> None:
    body = {"type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
            "properties": {"subnet_id": STR, "port_id": STR}}
    answer = {"type": "object", "additionalProperties": False,
              "required": ["id", "tenant_id", "project_id", "port_id", "network_id", "subnet_id", "subnet_ids"],
              "properties": {"id": STR, "tenant_id": STR, "project_id": STR, "port_id": STR, "network_id": STR,
                             "subnet_id": NSTR, "subnet_ids": STRS}}
    body_doc = doc.op(200, answer, (403, 404, 409), body=body)

    for action, add in (("add_router_interface", True), ("remove_router_interface", False)):
        def make(add: bool = add):
            async def handler(id_: str, request: Request):
                ctx = auth.context(request)
                body = parse_json(await request.body())
                result, _ = await run_in_threadpool(
                    svc.write, lambda txn: actions.router_interface(ctx, txn, id_, body, add))
                return result
            return handler
        r.add_api_route(f"/v2.0/routers/{{id_}}/{action}", make(), methods=["PUT"], name=action,
                        summary=f"{'Add' if add else 'Remove'} a router interface (body: subnet_id or port_id)",
                        openapi_extra=body_doc)


def routes(svc: Service, auth: Auth) -> APIRouter:
    r = APIRouter(tags=["neutron"])
    _add_router_actions(r, svc, auth)
    for spec in SPECS.values():
        _add_collection(r, svc, auth, spec)
    return r
