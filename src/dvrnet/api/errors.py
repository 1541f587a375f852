"""Neutron's error body for every failure: `{"NeutronError": {"type", "message", "detail": ""}}`.

Model/IPAM errors (`dvrnet.model.errors`) already carry Neutron's type and status and pass through
unchanged. The errors below are the HTTP edge's own (bad bodies, auth, policy). Handlers are
installed for them, for FastAPI's validation errors and for Starlette's 404/405; anything else is
`edge.Edge`'s 500, so no response ever leaves without this shape. A 5xx is logged with the
request id; an error with `retry_after` (the store's `DatabaseUnavailable`) adds `Retry-After`.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..model.errors import Conflict, DvrnetError

log = logging.getLogger("dvrnet.api")


class HTTPBadRequest(DvrnetError):
    type = "HTTPBadRequest"
    status = 400


class BadInput(HTTPBadRequest):
    """A request attribute has the wrong type or value (names the attribute)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"Invalid input for {field}. Reason: {reason}.", field=field)


class MalformedRequestBody(DvrnetError):
    type = "MalformedRequestBody"
    status = 400

    def __init__(self, reason: str):
        super().__init__(f"Malformed request body: {reason}.")


class NotAuthenticated(DvrnetError):
    type = "HTTPUnauthorized"
    status = 401


class PolicyNotAuthorized(DvrnetError):
    type = "PolicyNotAuthorized"
    status = 403

    def __init__(self, rule: str):
        super().__init__(f"({rule}) is disallowed by policy.")
        self.rule = rule


class DeviceIDNotOwnedByTenant(Conflict):
    """A project names another project's router as the device of a router-owned port."""
    type = "DeviceIDNotOwnedByTenant"

    def __init__(self, device_id: str):
        super().__init__(f"The device_id {device_id} is not owned by your project: it is another project's router.")


class ExtensionNotFound(DvrnetError):
    type = "ExtensionNotFound"
    status = 404

    def __init__(self, alias: str):
        super().__init__(f"Extension with alias {alias} does not exist.")


def error_response(status: int, type_: str, message: str) -> JSONResponse:
    return JSONResponse({"NeutronError": {"type": type_, "message": message, "detail": ""}},
                        status_code=status)


_HTTP_TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden",
               404: "HTTPNotFound", 405: "HTTPMethodNotAllowed", 409: "HTTPConflict",
               415: "HTTPUnsupportedMediaType"}


def install(app: FastAPI) -> None:
    """Handlers for the errors requests raise; what none of them handles is `edge.Edge`'s 500."""
    @app.exception_handler(DvrnetError)
    async def _dvrnet(req: Request, e: DvrnetError):
        status = e.status if 400 <= e.status < 600 else 500
        if status >= 500:
            log.warning("request %s: %s %s: %s %s", getattr(req.state, "request_id", "-"), req.method,
                        req.url.path, status, e.log_detail if hasattr(e, "log_detail") else e.message)
        r = error_response(status, e.type, e.message)
        retry = getattr(e, "retry_after", None)
        if retry is not None:
            r.headers["Retry-After"] = str(retry)
        return r

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, e: RequestValidationError):
        parts = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path", "body"))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return error_response(400, "HTTPBadRequest", "Invalid input: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, e: StarletteHTTPException):
        msg = {404: "The resource could not be found.",
               405: "The method is not allowed for this resource."}.get(e.status_code, str(e.detail))
        return error_response(e.status_code, _HTTP_TYPES.get(e.status_code, "HTTPError"), msg)
