"""The dvrnet server as an ASGI app: `create_app(db_url, auth="none", tokens=None)`.

A thin edge around the pure core: requests are parsed (`schema`), authorised (`auth`, `policy`),
turned into Workspace operations (`actions`), persisted (`dvrnet.store`) and rendered back in
Neutron's shape (`render`). Every error leaves as `{"NeutronError": {...}}` (`errors.install`).
The OpenAPI document is at `/openapi.json` (Swagger UI at `/docs`).
The database is opened, and migrated to the newest schema, when the app is created; once it
serves, a background thread builds what the first write would (`Service.warm`).
"""
from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from .. import __version__
from ..store import Store
from ..store.changelog import DEFAULT_KEEP
from . import agents, changes, discovery, errors, openapi, reports, resources, tags
from .auth import Auth
from .edge import Edge
from .feed import Feed
from .recent import Recent
from .service import Service

log = logging.getLogger("dvrnet.api")


def _add_routes(app: FastAPI, r: APIRouter) -> None:
    """R's routes as the app's own, in order. `include_router` keeps R as one nested route that
    FastAPI matches twice per request (whether it matches, then which of its routes), through a
    route context per candidate: ~0.2-0.3 ms of CPU per request with the 60-odd routes here. R's
    routes carry everything they need (their tags, responses, OpenAPI extras are set when they are
    added to R; no prefix or dependencies are given to R)."""
    assert not r.prefix and not r.dependencies, "routes are moved as they are: no prefix or dependencies"
    app.router.routes.extend(r.routes)


def create_app(db_url: str, auth: str = "none", tokens: str | None = None, *,
               feed_poll_interval: float = 1.0, change_log_revisions: int = DEFAULT_KEEP) -> FastAPI:
    authn = Auth(auth, tokens)
    store = Store(db_url, change_log_revisions=change_log_revisions)
    svc = Service(store)
    feed = Feed(store, poll_interval=feed_poll_interval)
    recent = Recent(log_keep=store.changelog.keep)      # this server's own recent writes (recent.py)
    store.add_commit_listener(recent.record)

    def _warm() -> None:
        """In the background at start: what the first write would build (Service.warm). It only
        saves time: when it fails (the database away, the server stopping), the write builds it."""
        try:
            svc.warm()
        except Exception as e:  # noqa: BLE001 - an optimisation; the first write does the same work
            log.info("warm-up skipped: %s: %s", type(e).__name__, e)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        feed.bind()
        feed.observe(store.current_revision())
        threading.Thread(target=_warm, name="dvrnet-warm", daemon=True).start()
        try:
            yield
        finally:
            feed.close()
            store.close()

    app = FastAPI(title="dvrnet", version=__version__, lifespan=lifespan,
                  description="Neutron v2.0-compatible API of the dvrnet distributed virtual router, "
                              "plus the host view change feed its agents follow.")
    app.state.store, app.state.service, app.state.feed, app.state.auth = store, svc, feed, authn
    app.state.recent = recent
    errors.install(app)
    app.add_middleware(Edge)      # request id, body limit, last-resort 500 (edge.py)

    # the agents' long-poll first: a thousand hosts ask it, and routes are matched in order
    for r in (changes.routes(svc, authn, feed, recent), discovery.routes(authn), tags.routes(svc, authn),
              resources.routes(svc, authn), agents.routes(svc, authn, feed), reports.routes(svc, authn)):
        _add_routes(app, r)
    app.openapi = lambda: openapi.document(app)
    return app
