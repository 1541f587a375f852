"""The agents' status reports (docs/status.md): the agent-facing call and the admin views.

- `PUT /v2.0/dvrnet/hosts/<host>/status {"status": {"revision", "floatingips", "ports", "removed"}}`:
  HOST's agent reports, for FIPs and router gateway ports it serves, what it found in its kernel
  after a pass at view `revision`: `{"id", "status": "ACTIVE"|"ERROR", "reason"}` plus the
  association it applied (a FIP's `port_id` and `fixed_ip_address`, a port's `fixed_ips`);
  `removed` names resources it no longer serves. Entries for resources the server does not
  know (deleted meanwhile) are ignored and named in the answer. Stored by `Store.report` (no
  revision, no change log, no listener: no agent is woken, no long-poll answers); the call is
  also HOST's heartbeat. 200 `{"status": {"host", "revision", "floatingips", "ports", "ignored"}}`
  (the counts of rows now held for HOST).
- `GET /v2.0/dvrnet/hosts/<host>/status`: for every FIP and gateway port HOST serves now or
  has reported, the status the API shows, why, and HOST's report (`dvrnet show` prints it);
  `reported`: the ids of every row held for HOST (what its agent asks after a start).
- `GET /v2.0/dvrnet/floatingips/<id>/status`: one FIP's status, why (the agent's reason for an
  ERROR), the node deciding it and its report.
All admin-only, like the other agent endpoints. A bad body is a 400 naming the field
(`status.floatingips[2].status`).
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ..model.errors import NotFound
from ..store import State
from ..store.statuses import STATUSES, Reported
from . import openapi as doc
from . import policy
from .auth import Auth
from .errors import BadInput, HTTPBadRequest
from .schema import INT, NSTR, STR, Conv, _s, ip, nullable, parse_json, string
from .service import Service
from .status import Shown, fip_shown, port_shown

MAX_REASON = 4096


def _entries(fields: dict[str, Conv], required: tuple[str, ...]) -> Conv:
    """A list of objects with FIELDS; errors name the index (`status.floatingips[3].status`)."""
    def conv(name: str, v: Any) -> list[dict]:
        if not isinstance(v, list):
            raise BadInput(name, f"{_s(v)[:80]} is not a list")
        out = []
        for i, e in enumerate(v):
            where = f"{name}[{i}]"
            if not isinstance(e, dict):
                raise BadInput(where, f"{_s(e)[:80]} is not an object")
            unknown = sorted(set(e) - set(fields))
            if unknown:
                raise BadInput(where, f"unrecognized key(s) {', '.join(unknown)}; expected {', '.join(sorted(fields))}")
            for k in required:
                if k not in e:
                    raise BadInput(f"{where}.{k}", "is required")
            out.append({k: fields[k](f"{where}.{k}", x) for k, x in e.items()})
        return out
    return Conv(conv, {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                  "required": list(required),
                                                  "properties": {k: c.schema for k, c in fields.items()}}})


def _status(name: str, v: Any) -> str:
    if v not in STATUSES:
        raise BadInput(name, f"{_s(v)[:40]} is not one of {', '.join(STATUSES)}")
    return v


def _reason(name: str, v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise BadInput(name, f"{_s(v)[:40]} is not a string")
    if len(v) > MAX_REASON:
        raise BadInput(name, f"longer than {MAX_REASON} characters")
    return v


def _revision(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise BadInput(name, f"{_s(v)[:40]} is not a non-negative integer")
    return v


def _ip_list(name: str, v: Any) -> list[str]:
    if not isinstance(v, list):
        raise BadInput(name, f"{_s(v)[:80]} is not a list")
    return [str(ip(f"{name}[{i}]", x)) for i, x in enumerate(v)]


def _ids(name: str, v: Any) -> list[str]:
    if not isinstance(v, list):
        raise BadInput(name, f"{_s(v)[:80]} is not a list")
    return [string(64)(f"{name}[{i}]", x) for i, x in enumerate(v)]


STATUS_ENUM = {"enum": list(STATUSES)}
REASON = Conv(_reason, {"anyOf": [{"type": "string", "maxLength": MAX_REASON}, {"type": "null"}]})
FIP_ENTRIES = _entries({"id": string(64), "status": Conv(_status, STATUS_ENUM), "reason": REASON,
                        "port_id": Conv(lambda n, v: None if v is None else string(64)(n, v), nullable(string(64).schema)),
                        "fixed_ip_address": Conv(lambda n, v: None if v is None else str(ip(n, v)),
                                                 nullable({"type": "string", "format": "ipv4"}))},
                       ("id", "status", "port_id", "fixed_ip_address"))
PORT_ENTRIES = _entries({"id": string(64), "status": Conv(_status, STATUS_ENUM), "reason": REASON,
                         "fixed_ips": Conv(_ip_list, {"type": "array", "items": {"type": "string", "format": "ipv4"}})},
                        ("id", "status", "fixed_ips"))
IDS = Conv(_ids, {"type": "array", "items": string(64).schema})
REMOVED = {"floatingips": IDS, "ports": IDS}
REPORT_FIELDS: dict[str, Conv] = {"revision": Conv(_revision, {"type": "integer", "minimum": 0}),
                                  "floatingips": FIP_ENTRIES, "ports": PORT_ENTRIES}


def parse_report(body: Any) -> tuple[int, list[dict], list[dict], dict[str, list[str]]]:
    """The body -> (revision, FIP entries, port entries, removed ids per kind); 400 naming the field."""
    if not isinstance(body, dict) or set(body) != {"status"}:
        raise HTTPBadRequest("Unable to find 'status' in request body" if not isinstance(body, dict) or "status" not in body
                             else f"Unrecognized attribute(s) '{', '.join(sorted(set(body) - {'status'}))}'")
    st = body["status"]
    if not isinstance(st, dict):
        raise BadInput("status", f"{_s(st)[:80]} is not an object")
    unknown = sorted(set(st) - set(REPORT_FIELDS) - {"removed"})
    if unknown:
        raise HTTPBadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    if "revision" not in st:
        raise BadInput("status.revision", "is required")
    rev = REPORT_FIELDS["revision"]("status.revision", st["revision"])
    fips = FIP_ENTRIES("status.floatingips", st.get("floatingips", []))
    ports = PORT_ENTRIES("status.ports", st.get("ports", []))
    rm = st.get("removed", {})
    if not isinstance(rm, dict):
        raise BadInput("status.removed", f"{_s(rm)[:80]} is not an object")
    bad = sorted(set(rm) - set(REMOVED))
    if bad:
        raise BadInput("status.removed", f"unrecognized key(s) {', '.join(bad)}; expected floatingips, ports")
    removed = {k: REMOVED[k](f"status.removed.{k}", v) for k, v in rm.items()}
    return rev, fips, ports, removed


REPORT_BODY = {"type": "object", "required": ["status"], "additionalProperties": False, "properties": {"status": {
    "type": "object", "required": ["revision"], "additionalProperties": False,
    "properties": {**{k: c.schema for k, c in REPORT_FIELDS.items()},
                   "removed": {"type": "object", "additionalProperties": False,
                               "properties": {k: c.schema for k, c in REMOVED.items()}}}}}}
REPORT_ANSWER = {"type": "object", "required": ["status"], "additionalProperties": False, "properties": {"status": {
    "type": "object", "additionalProperties": False, "required": ["host", "revision", "floatingips", "ports", "ignored"],
    "properties": {"host": STR, "revision": INT, "floatingips": INT, "ports": INT,
                   "ignored": {"type": "array", "items": STR}}}}}
_REPORTED = {"anyOf": [{"type": "object"}, {"type": "null"}]}
SHOWN = {"type": "object", "additionalProperties": False, "required": ["id", "status", "reason", "host", "reported"],
         "properties": {"id": STR, "floating_ip_address": STR, "status": {"enum": ["ACTIVE", "DOWN", "ERROR"]},
                        "reason": STR, "host": NSTR, "reported": _REPORTED}}
HOST_STATUS = {"type": "object", "required": ["status"], "additionalProperties": False, "properties": {"status": {
    "type": "object", "additionalProperties": False, "required": ["host", "floatingips", "ports", "reported"],
    "properties": {"host": STR, "floatingips": {"type": "array", "items": SHOWN},
                   "ports": {"type": "array", "items": SHOWN},
                   "reported": {"type": "object", "additionalProperties": False, "required": ["floatingips", "ports"],
                                "properties": {"floatingips": {"type": "array", "items": STR},
                                               "ports": {"type": "array", "items": STR}}}}}}}
FIP_STATUS = {"type": "object", "required": ["floatingip_status"], "additionalProperties": False,
              "properties": {"floatingip_status": SHOWN}}


def _fip_json(state: State, fid: str, shown: Shown) -> dict:
    f = state.cloud.floatingips[fid]
    return {"id": fid, "floating_ip_address": str(f.floating_ip_address), **shown.json()}


def host_status(state: State, host: str) -> dict:
    """HOST's FIPs and gateway ports (served now or reported by it): status, why, its report."""
    cloud, st = state.cloud, state.statuses
    reported = {(r.kind, r.id) for r in st.of_host(host)}
    fips = []
    for fid, f in sorted(cloud.floatingips.items()):
        shown = fip_shown(cloud, st, f)
        if shown.host == host or ("floatingips", fid) in reported:
            if shown.host != host:          # served elsewhere now (or nowhere): show HOST's own report
                shown = Shown(shown.status, shown.why, shown.host, st.of("floatingips", fid, host))
            fips.append(_fip_json(state, fid, shown))
    ports = []
    for pid, p in sorted(cloud.ports.items()):
        if p.device_owner != "network:router_gateway":
            continue
        shown = port_shown(cloud, st, p)
        if shown.host == host or ("ports", pid) in reported:
            ports.append({"id": pid, **shown.json()})
    mine = st.of_host(host)
    return {"host": host, "floatingips": fips, "ports": ports,
            "reported": {k: [r.id for r in mine if r.kind == k] for k in ("floatingips", "ports")}}


def routes(svc: Service, auth: Auth) -> APIRouter:
    r = APIRouter(tags=["agents"])

    @r.put("/v2.0/dvrnet/hosts/{name}/status",
           summary="An agent reports what it found in its kernel (FIPs, router gateway ports); wakes nobody",
           openapi_extra=doc.op(200, REPORT_ANSWER, (403, 404), body=REPORT_BODY))
    async def report(name: str, request: Request):
        policy.require_admin(auth.context(request), "rule:update_host_status")
        rev, fips, ports, removed = parse_report(parse_json(await request.body()))

        def store() -> dict:
            state = svc.state()
            if name not in state.cloud.hosts:
                raise NotFound("Host", name)
            cloud = state.cloud
            ups: list[Reported] = []
            ignored: list[str] = []
            for e in fips:
                if e["id"] not in cloud.floatingips:
                    ignored.append(e["id"])
                    continue
                fixed = e["fixed_ip_address"]
                ups.append(Reported(name, "floatingips", e["id"], e["status"], e["port_id"],
                                    (fixed,) if fixed else (), rev, e.get("reason")))
            for e in ports:
                if e["id"] not in cloud.ports:
                    ignored.append(e["id"])
                    continue
                ups.append(Reported(name, "ports", e["id"], e["status"], None, tuple(e["fixed_ips"]), rev,
                                    e.get("reason")))
            gone = [(k, i) for k, ids in removed.items() for i in ids]
            after = svc.store.report(name, ups, gone)
            mine = after.of_host(name)
            return {"host": name, "revision": rev, "floatingips": sum(1 for x in mine if x.kind == "floatingips"),
                    "ports": sum(1 for x in mine if x.kind == "ports"), "ignored": sorted(ignored)}
        answer = await run_in_threadpool(store)
        await svc.beat(name, getattr(request.state, "request_id", "-"))
        return {"status": answer}

    @r.get("/v2.0/dvrnet/hosts/{name}/status",
           summary="The status of every FIP and router gateway port a host serves or reported, and why",
           openapi_extra=doc.op(200, HOST_STATUS, (403, 404)))
    async def show_host_status(name: str, request: Request):
        policy.require_admin(auth.context(request), "rule:get_host_status")
        state = await run_in_threadpool(svc.state)
        if name not in state.cloud.hosts:
            raise NotFound("Host", name)
        return {"status": await run_in_threadpool(host_status, state, name)}

    @r.get("/v2.0/dvrnet/floatingips/{id_}/status",
           summary="A floating IP's status, why (the agent's reason for an ERROR), and the report behind it",
           openapi_extra=doc.op(200, FIP_STATUS, (403, 404)))
    async def show_fip_status(id_: str, request: Request):
        policy.require_admin(auth.context(request), "rule:get_floatingip_status")
        state = await run_in_threadpool(svc.state)
        f = state.cloud.floatingips.get(id_)
        if f is None:
            raise NotFound("Floating IP", id_)
        return {"floatingip_status": _fip_json(state, id_, fip_shown(state.cloud, state.statuses, f))}

    return r
