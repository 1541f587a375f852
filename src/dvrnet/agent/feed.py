"""The agent's side of the change feed: register, then follow the host's delta feed.

`next_view(since)` (the `agent.view.Source` interface) follows
`GET /v2.0/dvrnet/hosts/<host>/changes` (docs/feed.md): the first request (no cursor) is a
snapshot of the host view; after that each long-poll answers a delta, which `wire.delta.take`
turns into a `ChangeSet` and applies to the `Cloud` held here (`model.changeset.apply`, O(change)),
and the `View` handed to the loop carries the new Cloud with the touched keys, so the planner
re-plans only the namespaces that read them. A snapshot answer (`"resync": true`: a cursor older
than the server's change log, from another database, or ahead of it after a restore) replaces the
model: it is compared with the held one (`changeset_between`, applied, so the View still carries
exactly what changed; a difference is logged only when the server did not say why). Safety nets:
every `snapshot_interval` seconds (600 by default) the feed asks without a cursor (a snapshot,
compared the same way: a held model that drifted from the server's is logged and corrected); an
answer that cannot be decoded or applied drops the model (the next request is a snapshot); a
server without `/changes` (404 naming no host, or another wire version) is followed through the
snapshot path `GET .../view?since=N&wait=S` (each answer the whole view, `touched=None`), as is a
Feed made with `delta=False`.
An empty delta (nothing for this host, only the cursor moved) keeps the View's revision: the loop
runs no pass for it.

Invariants: a failed request never raises out of `next_view`; it returns None after waiting the
current backoff (0.5 s doubling to `max_backoff`, 5 s by default, with jitter: a server
that comes back is noticed within seconds), so the caller keeps the data plane
as it is and simply asks again. A successful answer resets the backoff. `connect()` (the agent's
`--once`) and `fetch_once()` (inspection) try once, within `ONCE_TIMEOUT`, and raise DvrnetError
naming the server and the reason.
"""
from __future__ import annotations

import logging
import random
import time

import httpx

from ..model import Cloud
from ..model.changeset import apply, changeset_between
from ..model.errors import DvrnetError
from ..wire import cloud_from_json
from ..wire.delta import take
from .view import View

__all__ = ["ONCE_TIMEOUT", "Feed", "View"]

log = logging.getLogger("dvrnet.agent")
ONCE_TIMEOUT = 8.0        # seconds a one-shot request (no long-poll) may take, connecting included


class Feed:
    def __init__(self, server: str, host: str, mode: str, token: str | None = None,
                 wait: float = 25.0, max_backoff: float = 5.0, delta: bool = True,
                 snapshot_interval: float = 600.0):
        self.delta = delta                  # follow /changes (False: the snapshot path, /view)
        self.snapshot_interval = snapshot_interval
        self.model: Cloud | None = None     # the host view held (delta path)
        self.cursor: str | None = None
        self.revision: int | None = None    # the revision of the last View returned
        self._next_snapshot = 0.0
        self.stats = {"snapshots": 0, "deltas": 0, "empty": 0}
        self.server = server.rstrip("/")
        self.host = host
        self.mode = mode
        self.wait = wait
        self.max_backoff = max_backoff
        self.backoff = 0.0
        self.registered = False
        headers = {"X-Auth-Token": token} if token else {}
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=httpx.Timeout(wait + 10, connect=3))

    def close(self) -> None:
        self.http.close()

    def _failed(self, what: str, err: object) -> None:
        self.backoff = min(self.max_backoff, max(0.5, self.backoff * 2))
        delay = self.backoff * random.uniform(0.8, 1.2)
        log.warning("%s failed (%s); data plane left as it is, retrying in %.1f s", what, err, delay)
        time.sleep(delay)

    def _register(self, timeout: float | None = None) -> None:
        kw = {"timeout": timeout} if timeout is not None else {}
        r = self.http.post("/v2.0/dvrnet/hosts", json={"host": {"name": self.host, "mode": self.mode}}, **kw)
        r.raise_for_status()

    def register(self) -> bool:
        try:
            self._register()
        except (httpx.HTTPError, ValueError) as e:
            self._failed("registering with the server", e)
            return False
        self.registered = True
        self.backoff = 0.0
        return True

    def connect(self, timeout: float = ONCE_TIMEOUT) -> View:
        """Register and read the current view, one try each (no backoff, nothing logged): raises
        DvrnetError naming the server and the reason. What `dvrnet agent --once` does."""
        try:
            self._register(timeout)
        except httpx.HTTPStatusError as e:
            raise DvrnetError(f"the server at {self.server} refused to register {self.host}: "
                              f"{e.response.status_code} {e.response.text[:200]}") from None
        except httpx.HTTPError as e:
            raise DvrnetError(f"cannot reach the server at {self.server}: {e or type(e).__name__}") from None
        self.registered = True
        return self.fetch_once(timeout)

    def fetch_once(self, timeout: float = ONCE_TIMEOUT) -> View:
        """One request for the current view; raises DvrnetError with the reason on failure."""
        try:
            r = self.http.get(f"/v2.0/dvrnet/hosts/{self.host}/view", timeout=timeout)
            if r.status_code == 404:
                raise DvrnetError(f"host {self.host} is not known to the server at {self.server}")
            r.raise_for_status()
            body = r.json()
            return View(int(body["revision"]), cloud_from_json(body["cloud"]))
        except httpx.HTTPError as e:
            raise DvrnetError(f"cannot read the view of {self.host} from {self.server}: {e}") from None

    def next_view(self, since: int | None) -> View | None:
        """The host view newer than `since` (None: now), or None after a failure/backoff."""
        if not self.registered and not self.register():
            return None
        if self.delta:
            return self._next_delta(since)
        return self._next_snapshot_view(since)

    def _next_snapshot_view(self, since: int | None) -> View | None:
        params = {"wait": self.wait} if since is not None else {}
        if since is not None:
            params["since"] = since
        try:
            r = self.http.get(f"/v2.0/dvrnet/hosts/{self.host}/view", params=params)
            if r.status_code == 404:
                self.registered = False
            r.raise_for_status()
            body = r.json()
            view = View(int(body["revision"]), cloud_from_json(body["cloud"]))
        except (httpx.HTTPError, ValueError, KeyError) as e:
            self._failed("fetching the host view", e)
            return None
        self.backoff = 0.0
        return view

    def _next_delta(self, since: int | None) -> View | None:
        now = time.monotonic()
        params: dict[str, object] = {}
        if self.model is not None and self.cursor is not None and now < self._next_snapshot:
            params["since"] = self.cursor
            if since is not None:
                params["wait"] = self.wait
        try:
            r = self.http.get(f"/v2.0/dvrnet/hosts/{self.host}/changes", params=params)
            if r.status_code == 404:
                if "HostNotFound" not in r.text:        # a server without the delta feed
                    log.warning("the server has no delta feed (%s): following its snapshots", r.text[:120])
                    self.delta = False
                    return self._next_snapshot_view(since)
                self.registered = False
            r.raise_for_status()
            body = r.json()
            if isinstance(body, dict) and body.get("version") != 1 and "version" in body:
                log.warning("delta feed of version %r: following the server's snapshots", body.get("version"))
                self.delta = False
                return self._next_snapshot_view(since)
            view = self._take(body, now)
        except (httpx.HTTPError, ValueError, KeyError, DvrnetError) as e:
            self.model = self.cursor = None         # unsure what is held: a snapshot next time
            self._failed("following the host's changes", e)
            return None
        self.backoff = 0.0
        return view

    def _take(self, body: dict, now: float) -> View:
        old = self.model
        t = take(old, body)
        touched = t.touched
        if touched is None:                         # a snapshot
            self.stats["snapshots"] += 1
            self._next_snapshot = now + self.snapshot_interval
            new = t.model
            if old is not None:
                try:
                    new, touched = apply(old, changeset_between(old, t.model, t.revision))
                except (ValueError, DvrnetError):
                    new, touched = t.model, None
                if touched and not t.reason:
                    log.warning("the view held by the delta feed differed from the server's snapshot "
                                "in %d keys; corrected", len(touched))
                elif t.reason and t.reason != "no cursor: first contact":
                    log.info("resync: %s", t.reason)
        else:
            self.stats["deltas"] += 1
            new = t.model
        self.model, self.cursor = new, t.cursor
        if touched is not None and not touched and self.revision is not None:
            self.stats["empty"] += 1
            return View(self.revision, new, touched)   # only the cursor moved: the same view
        self.revision = t.revision
        return View(t.revision, new, touched)
