"""Agents and hosts: Neutron's `GET /v2.0/agents` (hosts shown as L3 agents) and dvrnet's own
`/v2.0/dvrnet/...`: host registration, the host view change feed, and the whole cloud.

- `POST /v2.0/dvrnet/hosts {"host": {"name", "mode"}}`: an agent registers on start (idempotent:
  the same name and mode is a no-op 200; a new host or a changed mode is a write, 201/200).
- `GET /v2.0/dvrnet/hosts/<host>/view?since=N&wait=S`: `{"revision", "host", "cloud"}` at once
  when the revision is newer than `since`, else after it moves or `wait` seconds (at most
  `MAX_WAIT`), then 200 with the unchanged revision. `cloud` is `wire.codec.cloud_to_json` of
  `hostview.host_view`. Each call is the host's heartbeat (`alive` in the agent list).
- `GET /v2.0/dvrnet/cloud`: the whole cloud in the same codec (for `dvrnet show` and debugging).
All of these, and the agent list, are admin-only.
"""
from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..model import Host
from ..model.errors import NotFound
from ..wire.codec import cloud_to_json
from . import openapi as doc
from . import policy, query, render
from .auth import Auth
from .feed import Feed
from .hostview import host_view
from .schema import AGENT, HOST, INT, STR, parse_attrs, parse_json, resource_bodies
from .service import Service

AGENT_DOWN_TIME = 75.0     # seconds without a heartbeat before an agent shows alive=false
MAX_WAIT = 300.0


def _alive(beat: str | None) -> bool:
    if not beat:
        return False
    t = datetime.strptime(beat, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - t).total_seconds() <= AGENT_DOWN_TIME


VIEW = {"type": "object", "required": ["revision", "host", "cloud"], "additionalProperties": False,
        "properties": {"revision": INT, "host": STR, "cloud": doc.cloud_schema()}}


def routes(svc: Service, auth: Auth, feed: Feed) -> APIRouter:
    r = APIRouter(tags=["agents"])

    def hosts_rendered(fn):
        state = svc.state()
        beats = svc.store.heartbeats()
        return state, [fn(state, h, beats.get(n), _alive(beats.get(n))) for n, h in sorted(state.cloud.hosts.items())]

    @r.get("/v2.0/agents", summary="List agents (one L3 agent per registered host)",
           openapi_extra=doc.op(200, doc.many(AGENT), (400, 403, 404), query=doc.list_params(AGENT)))
    async def list_agents(request: Request):
        policy.require_admin(auth.context(request), "rule:get_agent")
        _, agents = await run_in_threadpool(hosts_rendered, render.agent)
        return query.apply(agents, list(request.query_params.multi_items()), AGENT, str(request.url.replace(query="")))

    @r.get("/v2.0/agents/{agent_id}", summary="Show an agent (by id or host name)",
           openapi_extra=doc.op(200, doc.one(AGENT), (403, 404), query=[doc.fields_param(AGENT)]))
    async def show_agent(agent_id: str, request: Request):
        policy.require_admin(auth.context(request), "rule:get_agent")
        _, agents = await run_in_threadpool(hosts_rendered, render.agent)
        for a in agents:
            if agent_id in (a["id"], a["host"]):
                return {"agent": query.project(a, list(request.query_params.multi_items()))}
        raise NotFound("Agent", agent_id)

    @r.get("/v2.0/dvrnet/hosts", summary="List registered hosts",
           openapi_extra=doc.op(200, doc.many(HOST), (400, 403, 404), query=doc.list_params(HOST)))
    async def list_hosts(request: Request):
        policy.require_admin(auth.context(request), "rule:get_host")
        _, hosts = await run_in_threadpool(hosts_rendered, render.host)
        return query.apply(hosts, list(request.query_params.multi_items()), HOST, str(request.url.replace(query="")))

    @r.get("/v2.0/dvrnet/hosts/{name}", summary="Show a registered host",
           openapi_extra=doc.op(200, doc.one(HOST), (403, 404)))
    async def show_host(name: str, request: Request):
        policy.require_admin(auth.context(request), "rule:get_host")
        _, hosts = await run_in_threadpool(hosts_rendered, render.host)
        for h in hosts:
            if h["name"] == name:
                return {"host": h}
        raise NotFound("Host", name)

    @r.post("/v2.0/dvrnet/hosts", summary="Register a host (its agent calls this on start)",
            openapi_extra=doc.op((200, 201), doc.one(HOST), (403,), body=doc.create_body(HOST, bulk=False)))
    async def register_host(request: Request):
        policy.require_admin(auth.context(request), "rule:create_host")
        (data,) = resource_bodies(HOST, parse_json(await request.body()), allow_bulk=False)
        a = parse_attrs(HOST, data, "POST")
        name, mode = a["name"], a.get("mode", "dvr")
        Host(name, mode)    # validates (InvalidInput naming the field)

        def register():
            state = svc.state()
            h = state.cloud.hosts.get(name)
            # the agent is here: a known host's heartbeat first (true whatever the write does next)
            beat = svc.store.heartbeat(name, 0.0) if h is not None else None
            if h is not None and h.mode.value == mode:
                return 200, render.host(state, h, beat, True)

            def answer(_result, after):     # inside the write: it commits only with its answer
                return render.host(after, after.cloud.hosts[name], beat or after.host_created.get(name), True)
            body, _ = svc.write(lambda txn: txn.ws.register_host(name, mode=mode), answer)
            return (200 if h is not None else 201), body
        status, body = await run_in_threadpool(register)
        return JSONResponse({"host": body}, status_code=status)

    @r.get("/v2.0/dvrnet/hosts/{name}/view", summary="A host's view of the cloud; long-polls on the revision",
           openapi_extra=doc.op(200, VIEW, (400, 403, 404)))
    async def view(name: str, request: Request,
                   since: int = Query(-1, description="return at once if the revision is newer"),
                   wait: float = Query(0.0, ge=0.0, description="seconds to wait for a newer revision")):
        policy.require_admin(auth.context(request), "rule:get_host_view")
        state = await run_in_threadpool(svc.state)
        if name not in state.cloud.hosts:
            raise NotFound("Host", name)
        await svc.beat(name, getattr(request.state, "request_id", "-"))
        feed.bind()
        feed.observe(state.revision)
        if state.revision <= since and wait > 0:
            await feed.wait_past(since, min(wait, MAX_WAIT))
            state = await run_in_threadpool(svc.state)
        cloud = await run_in_threadpool(lambda: cloud_to_json(host_view(state.cloud, name)))
        return {"revision": state.revision, "host": name, "cloud": cloud}

    @r.get("/v2.0/dvrnet/cloud", summary="The whole cloud, in the agent codec",
           openapi_extra=doc.op(200, {"type": "object", "required": ["revision", "cloud"], "additionalProperties": False,
                                      "properties": {"revision": INT, "cloud": doc.cloud_schema()}}, (403,)))
    async def whole(request: Request):
        policy.require_admin(auth.context(request), "rule:get_cloud")
        state = await run_in_threadpool(svc.state)
        return {"revision": state.revision, "cloud": await run_in_threadpool(cloud_to_json, state.cloud)}

    return r
