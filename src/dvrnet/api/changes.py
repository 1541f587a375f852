"""The per-host delta feed: `GET /v2.0/dvrnet/hosts/<host>/changes?since=CURSOR&wait=S`
(wire format version 1, documented in docs/feed.md).

- No `since`: a snapshot (`"resync": true`, `"reason"`, `"cloud"`: `codec.cloud_to_json` of the
  host view) and a `cursor` to continue from.
- `since=<database id>:<revision>:<stamp>` (a `cursor` from an earlier answer; the stamp is the
  database's random stamp of that revision, `store/changelog.py`): the change of the host's
  view after that revision (`"resync": false`, `"upserts"`: {kind: [resource, ...]} with the
  resources' current values, `"deletes"`: {kind: [id, ...]}), read from the change log
  (`store/changelog.py`) in the same database snapshot as the values. When it is empty and
  `wait` > 0, the request waits (at most `MAX_WAIT` s) for a write that changes *this host's*
  view — writes that concern other hosts do not wake it — then answers (possibly still empty,
  with the newer cursor).
- A cursor from another database, or older than the retained log, or ahead of the database, or
  whose stamp is not the database's for its revision (another timeline: a restored backup): a
  snapshot with `"resync": true` and the reason. A cursor without a stamp (from before stamps)
  is served unchecked.
- A malformed `since` is a 400 NeutronError naming the field; an unknown host a 404.
Each call is the host's heartbeat (as the view is); admin-only.
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from ..model import Cloud, InvalidInput
from ..model.changeset import Key
from ..model.errors import NotFound
from ..model.placement import host_view
from ..store import State
from ..store.store import HostChanges
from ..wire.codec import cloud_to_json, encode_resource
from . import openapi as doc
from . import policy
from .auth import Auth
from .errors import BadInput
from .feed import Feed

if TYPE_CHECKING:
    from .recent import Recent
from .service import Service

WIRE_VERSION = 1
PATH = "/v2.0/dvrnet/hosts/{name}/changes"
MAX_WAIT = 300.0
_DB = re.compile(r"[0-9A-Za-z-]{1,64}")
_STAMP = re.compile(r"[0-9a-f]{1,32}")


class Cursor(NamedTuple):
    """A parsed `since`: the database id, the revision and (cursors handed out since stamps
    exist) the stamp of that revision in the database that handed it out."""
    database: str
    revision: int
    stamp: str | None = None


class Answer(NamedTuple):
    """An answer's bytes, its revision, and whether it is an empty delta (only the cursor moved)."""
    data: bytes
    revision: int
    empty: bool


def cursor_text(database_id: str, revision: int, stamp: str | None) -> str:
    return f"{database_id}:{revision}:{stamp}" if stamp else f"{database_id}:{revision}"


def parse_since(value: str | None) -> Cursor | None:
    """`<database id>:<revision>[:<stamp>]` -> Cursor; None when absent."""
    if value is None:
        return None
    parts = value.split(":")
    db, rev = parts[0], parts[1] if len(parts) > 1 else ""
    stamp = parts[2] if len(parts) == 3 else None
    if len(parts) not in (2, 3) or not _DB.fullmatch(db) or not rev.isdigit() or len(rev) > 18 or \
            (stamp is not None and not _STAMP.fullmatch(stamp)):
        raise InvalidInput("since", f"{value[:80]!r} is not a cursor: expected <database id>:<revision>[:<stamp>], "
                                    "as given in the 'cursor' of an earlier answer")
    return Cursor(db, int(rev), stamp)


def _head(host: str, revision: int, database_id: str, stamp: str | None) -> dict[str, Any]:
    return {"version": WIRE_VERSION, "host": host, "database": database_id, "revision": revision,
            "cursor": cursor_text(database_id, revision, stamp)}


def snapshot_body(host: str, state: State, database_id: str, reason: str, stamp: str | None = None) -> dict[str, Any]:
    return {**_head(host, state.revision, database_id, stamp), "resync": True, "reason": reason,
            "cloud": cloud_to_json(host_view(state.cloud, host))}


def delta_parts(ops: dict[Key, str], cloud: Cloud) -> tuple[dict[str, list], dict[str, list]] | None:
    """(upserts, deletes) of the answer for OPS (the last op per key) with CLOUD's values; None if
    OPS names a resource CLOUD does not hold."""
    upserts: dict[str, list] = {}
    deletes: dict[str, list] = {}
    for (kind, i), op in sorted(ops.items()):
        if op == "delete":
            deletes.setdefault(kind, []).append(i)
            continue
        o = getattr(cloud, kind).get(i)
        if o is None:
            return None
        upserts.setdefault(kind, []).append(encode_resource(o))
    return upserts, deletes


def delta_body(host: str, hc: HostChanges) -> dict[str, Any] | None:
    """The delta answer, or None if the log names a resource the state does not hold."""
    assert hc.ops is not None
    parts = delta_parts(hc.ops, hc.state.cloud)
    if parts is None:
        return None
    return {**_head(host, hc.state.revision, hc.feed.database_id, hc.stamp), "resync": False,
            "upserts": parts[0], "deletes": parts[1]}


def encode_body(body: dict[str, Any]) -> bytes:
    """The answer's bytes (as FastAPI's JSONResponse writes them, without its generic encoder:
    every value here is already JSON's)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def answer(svc: Service, host: str, cursor: Cursor | None) -> tuple[dict[str, Any], bool]:
    """(body, empty delta?) for HOST after CURSOR, read from the database."""
    hc = svc.store.host_changes(host, None if cursor is None else cursor.revision)
    st, fs = hc.state, hc.feed
    if host not in st.cloud.hosts:
        raise NotFound("Host", host)

    def snapshot(reason: str) -> tuple[dict[str, Any], bool]:
        return snapshot_body(host, st, fs.database_id, reason, hc.stamp), False
    if cursor is None:
        return snapshot("no cursor: first contact")
    db, since, stamp = cursor
    if db != fs.database_id:
        return snapshot(f"cursor of database {db}, this is {fs.database_id}")
    if hc.ops is None:
        return snapshot(f"revision {since} is ahead of this database (at {st.revision})" if since > st.revision else
                        f"revision {since} is older than the change log (kept after revision {fs.floor})")
    if stamp is not None and stamp != hc.since_stamp:
        return snapshot(f"revision {since} of this cursor is not this database's revision {since} "
                        "(another timeline: restored from a backup?)")
    body = delta_body(host, hc)
    if body is None:
        return snapshot("the change log names a resource the state does not hold")
    return body, not body["upserts"] and not body["deletes"]


def routes(svc: Service, auth: Auth, feed: Feed, recent: Recent | None = None) -> APIRouter:
    r = APIRouter(tags=["agents"])

    async def reply(name: str, cursor: Cursor | None) -> Answer:
        """From this server's own recent writes when that is provably the database's answer
        (`api/recent.py`: one shared head SELECT), else from the database."""
        if recent is not None and cursor is not None and cursor.stamp is not None:
            try:
                head = await feed.head()
            except Exception:  # noqa: BLE001 - the database path below reports the fault
                head = None
            got = recent.answer(name, cursor, head) if head is not None else None
            if got is not None:
                return got
        body, empty = await run_in_threadpool(answer, svc, name, cursor)
        if recent is not None:
            recent.saw_database(body["database"])
        return Answer(encode_body(body), body["revision"], empty)

    async def serve(name: str, request: Request, since: str | None, wait: float) -> Response:
        policy.require_admin(auth.context(request), "rule:get_host_view")
        cursor = parse_since(since)
        feed.bind()
        # at this server's newest write, nothing newer heard of: wait at once, no head read (api/recent.py)
        parked = wait > 0 and cursor is not None and recent is not None and \
            feed.host_revision.get(name, 0) <= cursor.revision and recent.parks(name, cursor, feed.latest)
        got = None if parked else await reply(name, cursor)
        await svc.beat(name, getattr(request.state, "request_id", "-"))
        if cursor is not None and wait > 0 and (got is None or got.empty):
            start = cursor.revision if got is None else got.revision
            feed.observe(start)
            fresh = start == feed.latest        # waiting from the newest revision heard of (api/recent.py)
            woke = await feed.wait_host(name, start, min(wait, MAX_WAIT))
            # woken: the change; timed out: still nothing for this host, the newer cursor (O(1) bytes)
            got = (woke and fresh and recent is not None and recent.woken(name, cursor, feed.latest)) or \
                await reply(name, cursor)
        assert got is not None
        return Response(got.data, media_type="application/json")

    async def plain(request: Request) -> Response:
        """The route requests take: a plain Starlette endpoint (FastAPI's parameter machinery
        costs ~0.1 ms per request, and a thousand agents long-poll here); the same checks as the
        documented route below, the same errors (NeutronError 400 naming the field)."""
        q = request.query_params
        raw = q.get("wait")
        try:
            wait = float(raw) if raw is not None else 0.0
        except ValueError:
            raise BadInput("wait", f"{raw[:40]!r} is not a number") from None
        if not wait >= 0.0:
            raise BadInput("wait", f"{raw!r} is not a number of seconds >= 0")
        return await serve(request.path_params["name"], request, q.get("since"), wait)

    r.add_route(PATH, plain, methods=["GET"], include_in_schema=False)

    @r.get(PATH, summary="The changes of a host's view since a cursor (delta feed, wire format v1); long-polls",
           openapi_extra=doc.op(200, doc.changes_schema(), (400, 403, 404)))
    async def changes(name: str, request: Request,
                      since: str | None = Query(None, description="cursor <database id>:<revision>:<stamp> of an "
                                                                  "earlier answer; absent: a snapshot"),
                      wait: float = Query(0.0, ge=0.0, description="seconds to wait for a change of this host's view")):
        return await serve(name, request, since, wait)    # (the document's; requests take `plain` above)

    return r
