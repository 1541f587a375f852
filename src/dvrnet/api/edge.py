"""The outermost layer of every HTTP request: request id, body size limit, last-resort errors.

Invariants:
- every response carries `X-Openstack-Request-Id: req-<uuid>` (errors and 500s included); the id
  is in `request.state.request_id` and in `REQUEST_ID` (a contextvar the thread pool inherits) for
  whatever logs on the request's behalf;
- a body larger than `MAX_BODY` (Neutron's limit: oslo.middleware's `max_request_body_size`,
  114688 bytes = 112 KiB, as its api-paste sets it) is refused with 413 before it is read: at once
  when Content-Length says so, else as soon as the bytes received pass the limit (the server
  never holds more than the limit of one body); a 413 closes the connection (the rest of the body
  is not read);
- an exception nothing else handled becomes a 500 with Neutron's error body, logged with the
  request id, and `Connection: close` (the connection may be in any state after a bug).
"""
from __future__ import annotations

import contextvars
import json
import logging
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..model.errors import DvrnetError

MAX_BODY = 114688
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("dvrnet.api")


class RequestEntityTooLarge(DvrnetError):
    type = "HTTPRequestEntityTooLarge"
    status = 413

    def __init__(self, limit: int):
        super().__init__(f"Request is too large: the body may have at most {limit} bytes.")


def _error_body(status: int, type_: str, message: str) -> bytes:
    return json.dumps({"NeutronError": {"type": type_, "message": message, "detail": ""}}).encode()


class Edge:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = f"req-{uuid.uuid4()}"
        scope.setdefault("state", {})["request_id"] = rid
        token = REQUEST_ID.set(rid)
        started = False

        async def send_(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=msg)
                headers["X-Openstack-Request-Id"] = rid
                if msg["status"] in (413, 500):
                    headers["Connection"] = "close"
            await send(msg)

        async def reply(status: int, type_: str, message: str) -> None:
            body = _error_body(status, type_, message)
            await send_({"type": "http.response.start", "status": status,
                         "headers": [(b"content-type", b"application/json"),
                                     (b"content-length", str(len(body)).encode())]})
            await send_({"type": "http.response.body", "body": body})

        try:
            length = dict(scope.get("headers") or ()).get(b"content-length")
            if length is not None and length.strip().isdigit() and int(length) > self.max_body:
                e = RequestEntityTooLarge(self.max_body)
                await reply(e.status, e.type, e.message)
                return
            received = 0

            async def receive_() -> Message:
                nonlocal received
                msg = await receive()
                if msg["type"] == "http.request":
                    received += len(msg.get("body", b""))
                    if received > self.max_body:
                        raise RequestEntityTooLarge(self.max_body)
                return msg

            try:
                await self.app(scope, receive_, send_)
            except Exception:
                log.exception("request %s: %s %s failed with an internal error", rid, scope.get("method"),
                              scope.get("path"))
                if not started:
                    await reply(500, "HTTPInternalServerError", "Request Failed: internal server error while "
                                f"processing your request (request id {rid}).")
        finally:
            REQUEST_ID.reset(token)
